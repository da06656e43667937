/*
 * Differential fuzz target for the fast path of request heads
 * (http/fast_head.h): whenever sl__http_fast_request accepts bytes,
 * http-parser must accept the same bytes as a request with the same method,
 * version, target, fields (values compared without surrounding whitespace),
 * framing flags and Content-Length, and end the message where the fast path
 * says (head plus Content-Length bytes). The other direction needs no check:
 * a declined request goes to http-parser as before.
 */
#include "http/fast_head.h"

#include <http_parser.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXH 16

typedef struct seen {
    const char *url;
    size_t url_len;
    sl_http_header h[MAXH + 1];
    size_t n;
    int last; /* 0 none, 1 field, 2 value */
    int headers_done, message_done;
    unsigned method, major, minor, flags, upgrade;
    uint64_t content_length;
} seen;

static int on_url(http_parser *p, const char *at, size_t len)
{
    seen *s = p->data;
    if (!s->url) s->url = at;
    s->url_len += len;
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t len)
{
    seen *s = p->data;
    if (s->last != 1) {
        if (s->n == MAXH + 1) abort(); /* the fast path allows at most MAXH */
        s->h[s->n++] = (sl_http_header){{at, 0}, {at, 0}};
    }
    s->h[s->n - 1].name.len += len;
    s->last = 1;
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
    seen *s = p->data;
    sl_http_header *h = &s->h[s->n - 1];
    if (s->last != 2) h->value.ptr = at;
    h->value.len += len;
    s->last = 2;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    seen *s = p->data;
    s->headers_done = 1;
    s->method = p->method;
    s->major = p->http_major;
    s->minor = p->http_minor;
    s->flags = p->flags;
    s->upgrade = p->upgrade;
    s->content_length = p->content_length;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    seen *s = p->data;
    s->message_done = 1;
    http_parser_pause(p, 1);
    return 0;
}

static sl_slice trim(sl_slice v)
{
    while (v.len && (v.ptr[0] == ' ' || v.ptr[0] == '\t')) {
        v.ptr++;
        v.len--;
    }
    while (v.len && (v.ptr[v.len - 1] == ' ' || v.ptr[v.len - 1] == '\t'))
        v.len--;
    return v;
}

static int slice_eq(sl_slice a, sl_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    sl_http_header hs[MAXH];
    sl__fast_request fr;
    if (!sl__http_fast_request(in, size, hs, MAXH, &fr)) return 0;
    if (fr.f.end > size || fr.f.nfields > MAXH) abort();
    uint64_t cl = fr.f.has_cl ? fr.f.content_length : 0;
    if (cl > size - fr.f.end) return 0; /* the server would wait for the body */

    static const http_parser_settings settings = {.on_url = on_url,
                                                  .on_header_field = on_field,
                                                  .on_header_value = on_value,
                                                  .on_headers_complete = on_headers_complete,
                                                  .on_message_complete = on_message_complete};
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    seen s = {0};
    p.data = &s;
    size_t n = http_parser_execute(&p, &settings, in, size);
    enum http_errno e = HTTP_PARSER_ERRNO(&p);
    if (!s.message_done || (e != HPE_OK && e != HPE_PAUSED)) abort();
    if (n != fr.f.end + cl) abort();
    static const unsigned parser_method[] = {
#define M_(name, text) [SL_HTTP_##name] = HTTP_##name,
        SL_HTTP_METHOD_MAP(M_)
#undef M_
    };
    if (s.method != parser_method[fr.method] || s.major != 1 || (int)s.minor != fr.http_minor ||
        s.upgrade)
        abort();
    if (!slice_eq((sl_slice){s.url, s.url_len}, fr.target)) abort();
    if (s.n != fr.f.nfields) abort();
    for (size_t i = 0; i < s.n; i++)
        if (!slice_eq(s.h[i].name, hs[i].name) || !slice_eq(trim(s.h[i].value), hs[i].value))
            abort();
    if (!!(s.flags & F_CONTENTLENGTH) != fr.f.has_cl || !!(s.flags & F_CHUNKED) ||
        !!(s.flags & F_CONNECTION_CLOSE) != fr.f.conn_close ||
        !!(s.flags & F_CONNECTION_KEEP_ALIVE) != fr.f.conn_keep ||
        !!(s.flags & F_CONNECTION_UPGRADE) || !!(s.flags & F_UPGRADE))
        abort();
    if (s.content_length != (fr.f.has_cl ? cl : ULLONG_MAX)) abort();
    return 0;
}
