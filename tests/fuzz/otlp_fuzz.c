/*
 * libFuzzer target for the otlp module's parsers and encoder. The first byte
 * picks what the rest feeds:
 *   0  the endpoint parser: an accepted URL has a host, a port 1..65535 and a
 *      path starting with '/';
 *   1  the response status-line and head parsers: an accepted status is 100..599,
 *      an accepted head ends with its blank line inside the input;
 *   2  the encoder: the rest, split at NUL bytes, becomes a span's name,
 *      attribute keys and values and status message; the body (small bound,
 *      so the limit path runs) must always be JSON that jansson accepts, with
 *      the right number of spans; and the fast and the checked writers give
 *      the same bytes.
 */
#include "otlp/otlp_int.h"

#include <shoal/otlp.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Copies the next NUL-separated piece of [*p, end) into dst (cap bytes, NUL-terminated). */
static void piece(const uint8_t **p, const uint8_t *end, char *dst, size_t cap)
{
    size_t n = 0;
    while (*p < end && **p != 0) {
        if (n + 1 < cap) dst[n++] = (char)**p;
        (*p)++;
    }
    if (*p < end) (*p)++;
    dst[n] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] % 3 == 0) {
        sl_otlp_endpoint ep;
        if (sl_otlp_endpoint_parse(s, n, &ep) == 0) {
            if (!ep.host[0] || ep.port < 1 || ep.port > 65535 || ep.path[0] != '/') abort();
        }
        return 0;
    }
    if (data[0] % 3 == 1) {
        int st = 0;
        if (sl_otlp_response_status(s, n, &st) == 0 && (st < 100 || st > 599)) abort();
        sl__otlp_head h;
        if (sl__otlp_response_head(s, n, &h) == 0 &&
            (h.status < 100 || h.status > 599 || h.head_len > n || h.head_len < 17 ||
             memcmp(s + h.head_len - 4, "\r\n\r\n", 4) != 0 || (h.keep && s[7] != '1')))
            abort();
        return 0;
    }
    const uint8_t *p = data + 1, *end = data + size;
    sl_span_data d;
    memset(&d, 0, sizeof d);
    memset(d.ctx.trace_id, 0xab, sizeof d.ctx.trace_id);
    memset(d.ctx.span_id, 0xcd, sizeof d.ctx.span_id);
    d.kind = (sl_span_kind)(size % 7); /* out-of-range kinds too */
    d.status = (sl_span_status)(size % 4);
    d.start_ns = (int64_t)size * 1000;
    d.end_ns = (int64_t)size * 999; /* may be before the start */
    piece(&p, end, d.name, sizeof d.name);
    piece(&p, end, d.status_message, sizeof d.status_message);
    while (p < end && d.n_attrs < SL_SPAN_ATTRS_MAX) {
        sl_span_attr *a = &d.attrs[d.n_attrs++];
        piece(&p, end, a->key, sizeof a->key);
        a->type = (p < end && (*p & 1)) ? SL_SPAN_ATTR_INT : SL_SPAN_ATTR_STR;
        if (a->type == SL_SPAN_ATTR_INT)
            a->i = (int64_t)(p < end ? *p : 0) * -1234567890123LL;
        else
            piece(&p, end, a->s, sizeof a->s);
    }
    sl_otlp_enc e;
    sl_otlp_enc_init(&e, 2048);
    sl_otlp_resource res = {.service_name = d.name[0] ? d.name : "x",
                            .service_version = d.status_message};
    if (sl_otlp_enc_begin(&e, &res) == 0) {
        size_t added = 0;
        for (int i = 0; i < 3; i++)
            added += sl_otlp_enc_span(&e, &d) == 0;
        sl_otlp_enc_end(&e);
        if (e.len > 2048 || e.nspans != added) abort();
        json_error_t jerr;
        json_t *doc = json_loadb(e.buf, e.len, 0, &jerr);
        if (!doc) abort();
        json_t *spans = json_object_get(
            json_array_get(json_object_get(json_array_get(json_object_get(doc, "resourceSpans"), 0),
                                           "scopeSpans"),
                           0),
            "spans");
        if (json_array_size(spans) != added) abort();
        json_decref(doc);
    }
    /* The fast writer (sl_otlp_enc_span with room to spare) and the checked one agree. */
    sl_otlp_enc f, c;
    sl_otlp_enc_init(&f, 1 << 20);
    sl_otlp_enc_init(&c, 1 << 20);
    if (sl_otlp_enc_begin(&f, &res) == 0 && sl_otlp_enc_begin(&c, &res) == 0) {
        if (sl_otlp_enc_span(&f, &d) != 0 || sl__otlp_enc_span_checked(&c, &d) != 0) abort();
        if (f.len != c.len || memcmp(f.buf, c.buf, f.len) != 0) abort();
    }
    sl_otlp_enc_free(&f);
    sl_otlp_enc_free(&c);
    sl_otlp_enc_free(&e);
    return 0;
}
