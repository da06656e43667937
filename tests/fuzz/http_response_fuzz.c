/*
 * libFuzzer target for the HTTP client's response parser (bytes from an
 * upstream). The first byte picks the options (HEAD or not, EOF at the end,
 * feed step); the rest is the response. Besides memory safety, checks the
 * contract: the result does not depend on how the bytes were split, a parsed
 * response respects its limits, and every header slice lies inside the
 * parser's buffer. Differential: a response fed whole may take the fast path;
 * the same bytes with the fast path off (http-parser's path) must give exactly
 * the same result, field by field.
 */
#include "http_client/http_client_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADER_MAX 4096
#define BODY_MAX   4096

static void check(sl__http_resp *r)
{
    const sl_http_response *res = sl__http_resp_get(r);
    if (res->status < 100 || res->status > 599) abort();
    if (res->body.len > BODY_MAX || res->nheaders > SL_HTTP_CLIENT_HEADERS_MAX) abort();
    for (size_t i = 0; i < res->nheaders; i++) {
        const sl_http_header *h = &res->headers[i];
        if (h->name.len == 0) abort();
        if (h->name.ptr < r->hbuf || h->name.ptr + h->name.len > r->hbuf + r->hlen) abort();
        if (h->value.ptr < r->hbuf || h->value.ptr + h->value.len > r->hbuf + r->hlen) abort();
        for (size_t k = 0; k < h->value.len; k++)
            if (h->value.ptr[k] == '\r' || h->value.ptr[k] == '\n') abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t opt = data[0];
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    bool head = opt & 1;
    int eof = (opt >> 1) & 1;
    size_t step = (size_t)(opt >> 2) + 1;

    sl__http_resp whole, split, slow;
    size_t c1 = 0, c2 = 0;
    sl__http_resp_init(&whole, HEADER_MAX, BODY_MAX);
    sl__http_resp_reset(&whole, head);
    int rc1 = sl__http_resp_feed(&whole, in, len, &c1);
    if (rc1 == 0 && eof) rc1 = sl__http_resp_eof(&whole);

    sl__http_resp_init(&slow, HEADER_MAX, BODY_MAX);
    slow.no_fast = true;
    sl__http_resp_reset(&slow, head);
    size_t c3 = 0;
    int rc3 = sl__http_resp_feed(&slow, in, len, &c3);
    if (rc3 == 0 && eof) rc3 = sl__http_resp_eof(&slow);

    sl__http_resp_init(&split, HEADER_MAX, BODY_MAX);
    sl__http_resp_reset(&split, head);
    int rc2 = 0;
    size_t off = 0;
    c2 = 0;
    while (off < len && rc2 == 0) {
        size_t n = step < len - off ? step : len - off;
        size_t c = 0;
        rc2 = sl__http_resp_feed(&split, in + off, n, &c);
        c2 = off + c;
        off += n;
    }
    if (rc2 == 0 && eof) rc2 = sl__http_resp_eof(&split);

    /* Splitting never changes whether a response parses, nor where it ends. */
    if ((rc1 == 1) != (rc2 == 1)) abort();
    if (rc1 == 1) {
        if (c1 != c2) abort();
        check(&whole);
        check(&split);
        const sl_http_response *a = sl__http_resp_get(&whole), *b = sl__http_resp_get(&split);
        if (a->status != b->status || a->nheaders != b->nheaders || a->body.len != b->body.len ||
            memcmp(a->body.ptr, b->body.ptr, a->body.len) != 0 ||
            whole.keep_alive != split.keep_alive)
            abort();
    }
    /* The fast path gives what http-parser's path gives, or steps aside. */
    if (rc1 != rc3) abort();
    if (rc1 == 1) {
        const sl_http_response *a = sl__http_resp_get(&whole), *b = sl__http_resp_get(&slow);
        if (c1 != c3 || a->status != b->status || a->http_minor != b->http_minor ||
            a->nheaders != b->nheaders || a->body.len != b->body.len ||
            memcmp(a->body.ptr, b->body.ptr, a->body.len) != 0 ||
            whole.keep_alive != slow.keep_alive)
            abort();
        for (size_t i = 0; i < a->nheaders; i++) {
            const sl_http_header *x = &a->headers[i], *y = &b->headers[i];
            if (x->name.len != y->name.len || x->value.len != y->value.len ||
                memcmp(x->name.ptr, y->name.ptr, x->name.len) != 0 ||
                memcmp(x->value.ptr, y->value.ptr, x->value.len) != 0)
                abort();
        }
    }
    sl__http_resp_free(&whole);
    sl__http_resp_free(&split);
    sl__http_resp_free(&slow);
    return 0;
}
