/*
 * The OTLP/JSON encoder (otlp.h): one ExportTraceServiceRequest with one
 * resource and one scope, spans appended one by one into a bounded buffer.
 * The closing brackets are always reserved, so a body that refused a span is
 * still complete once sl_otlp_enc_end closes it.
 *
 * Two writers of the same bytes: the fast one reserves an upper bound of a
 * span's size once and writes without further checks (no snprintf, a table
 * for hex); the checked one (every write bounded) runs only when the bound
 * does not fit, so a body is filled exactly to its limit.
 */
#include "otlp_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char CLOSE[] = "]}]}]}"; /* spans, scopeSpans[0], scopeSpans, resourceSpans[0],
                                         resourceSpans, the request */
#define CLOSE_LEN (sizeof CLOSE - 1)

void sl_otlp_enc_init(sl_otlp_enc *e, size_t max)
{
    SL_ASSERT(e);
    memset(e, 0, sizeof *e);
    e->max = max < 1024 ? 1024 : max;
}

void sl_otlp_enc_free(sl_otlp_enc *e)
{
    if (!e) return;
    free(e->buf);
    e->buf = NULL;
    e->len = e->cap = e->nspans = e->head_len = 0;
}

/* Makes room for n more bytes while keeping CLOSE_LEN in reserve. */
static int reserve(sl_otlp_enc *e, size_t n)
{
    if (n > e->max || e->len + n > e->max - CLOSE_LEN) return SL_ELIMIT;
    size_t need = e->len + n + CLOSE_LEN;
    if (need <= e->cap) return 0;
    size_t cap = e->cap ? e->cap : 4096;
    while (cap < need)
        cap *= 2;
    if (cap > e->max) cap = e->max;
    char *p = realloc(e->buf, cap);
    if (!p) return SL_ENOMEM;
    e->buf = p;
    e->cap = cap;
    return 0;
}

static int put(sl_otlp_enc *e, const char *s, size_t n)
{
    int rc = reserve(e, n);
    if (rc != 0) return rc;
    memcpy(e->buf + e->len, s, n);
    e->len += n;
    return 0;
}

static int puts_(sl_otlp_enc *e, const char *s)
{
    return put(e, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one (RFC 3629). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

/* A JSON string of s[0..n): quotes, RFC 8259 escapes, invalid UTF-8 as U+FFFD. */
static int put_str_n(sl_otlp_enc *e, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    int rc = put(e, "\"", 1);
    size_t i = 0;
    while (rc == 0 && i < n) {
        size_t run = i;
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
            run++;
        if (run > i) {
            rc = put(e, (const char *)s + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            rc = put(e, esc, 2);
            i++;
        } else if (c < 0x20) {
            const char *named = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
            if (named) {
                rc = put(e, named, 2);
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                rc = put(e, esc, 6);
            }
            i++;
        } else {
            size_t k = utf8_seq(s + i, n - i);
            if (k == 0) {
                rc = put(e, "\xef\xbf\xbd", 3);
                i++;
            } else {
                rc = put(e, (const char *)s + i, k);
                i += k;
            }
        }
    }
    return rc ? rc : put(e, "\"", 1);
}

static int put_str(sl_otlp_enc *e, const char *s)
{
    return put_str_n(e, s, strlen(s));
}

static int put_kv_str(sl_otlp_enc *e, const char *key, const char *value)
{
    int rc = puts_(e, "{\"key\":");
    if (rc == 0) rc = put_str(e, key);
    if (rc == 0) rc = puts_(e, ",\"value\":{\"stringValue\":");
    if (rc == 0) rc = put_str(e, value);
    return rc ? rc : puts_(e, "}}");
}

static int put_kv_int(sl_otlp_enc *e, const char *key, int64_t value)
{
    char num[32];
    snprintf(num, sizeof num, "%" PRId64, value);
    int rc = puts_(e, "{\"key\":");
    if (rc == 0) rc = put_str(e, key);
    if (rc == 0) rc = puts_(e, ",\"value\":{\"intValue\":\"");
    if (rc == 0) rc = puts_(e, num);
    return rc ? rc : puts_(e, "\"}}");
}

int sl_otlp_enc_begin(sl_otlp_enc *e, const sl_otlp_resource *res)
{
    SL_ASSERT(e && res);
    if (!res->service_name || !res->service_name[0]) return SL_EINVAL;
    e->len = 0;
    e->nspans = 0;
    e->head_len = 0;
    int rc = puts_(e, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    if (rc == 0) rc = put_kv_str(e, "service.name", res->service_name);
    if (rc == 0 && res->instance_id && res->instance_id[0]) {
        rc = put(e, ",", 1);
        if (rc == 0) rc = put_kv_str(e, "service.instance.id", res->instance_id);
    }
    if (rc == 0 && res->service_version && res->service_version[0]) {
        rc = put(e, ",", 1);
        if (rc == 0) rc = put_kv_str(e, "service.version", res->service_version);
    }
    if (rc == 0) rc = puts_(e, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"shoal\"");
    if (rc == 0 && res->service_version && res->service_version[0]) {
        rc = puts_(e, ",\"version\":");
        if (rc == 0) rc = put_str(e, res->service_version);
    }
    if (rc == 0) rc = puts_(e, "},\"spans\":[");
    if (rc != 0) {
        e->len = 0;
        return rc;
    }
    e->head_len = e->len;
    return 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static int put_ids(sl_otlp_enc *e, const uint8_t tid[SL_TRACE_ID_LEN],
                   const uint8_t sid[SL_SPAN_ID_LEN])
{
    char t[33], s[17];
    sl_trace_id_hex(tid, t);
    sl_span_id_hex(sid, s);
    int rc = puts_(e, "\"traceId\":\"");
    if (rc == 0) rc = put(e, t, 32);
    if (rc == 0) rc = puts_(e, "\",\"spanId\":\"");
    if (rc == 0) rc = put(e, s, 16);
    return rc ? rc : put(e, "\"", 1);
}

static int put_span(sl_otlp_enc *e, const sl_span_data *sp)
{
    char num[64];
    int rc = e->nspans ? put(e, ",{", 2) : put(e, "{", 1);
    if (rc == 0) rc = put_ids(e, sp->ctx.trace_id, sp->ctx.span_id);
    if (rc == 0 && !all_zero(sp->parent_span_id, SL_SPAN_ID_LEN)) {
        char p[17];
        sl_span_id_hex(sp->parent_span_id, p);
        rc = puts_(e, ",\"parentSpanId\":\"");
        if (rc == 0) rc = put(e, p, 16);
        if (rc == 0) rc = put(e, "\"", 1);
    }
    if (rc == 0) rc = puts_(e, ",\"name\":");
    if (rc == 0) rc = put_str(e, sp->name);
    /* OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer (0 unspecified). */
    int kind = sp->kind <= SL_SPAN_CONSUMER ? (int)sp->kind + 1 : 0;
    int64_t end = sp->end_ns >= sp->start_ns ? sp->end_ns : sp->start_ns;
    snprintf(num, sizeof num, ",\"kind\":%d,\"startTimeUnixNano\":\"%" PRId64 "\"", kind,
             sp->start_ns > 0 ? sp->start_ns : 0);
    if (rc == 0) rc = puts_(e, num);
    snprintf(num, sizeof num, ",\"endTimeUnixNano\":\"%" PRId64 "\"", end > 0 ? end : 0);
    if (rc == 0) rc = puts_(e, num);
    if (rc == 0) rc = puts_(e, ",\"attributes\":[");
    uint32_t na = sp->n_attrs < SL_SPAN_ATTRS_MAX ? sp->n_attrs : SL_SPAN_ATTRS_MAX;
    for (uint32_t i = 0; rc == 0 && i < na; i++) {
        const sl_span_attr *a = &sp->attrs[i];
        if (i) rc = put(e, ",", 1);
        if (rc != 0) break;
        rc =
            a->type == SL_SPAN_ATTR_INT ? put_kv_int(e, a->key, a->i) : put_kv_str(e, a->key, a->s);
    }
    if (rc == 0) rc = put(e, "]", 1);
    if (rc == 0 && sp->dropped_attrs) {
        snprintf(num, sizeof num, ",\"droppedAttributesCount\":%" PRIu32, sp->dropped_attrs);
        rc = puts_(e, num);
    }
    uint32_t nl = sp->n_links < SL_SPAN_LINKS_MAX ? sp->n_links : SL_SPAN_LINKS_MAX;
    if (rc == 0 && nl) {
        rc = puts_(e, ",\"links\":[");
        for (uint32_t i = 0; rc == 0 && i < nl; i++) {
            rc = put(e, i ? ",{" : "{", i ? 2 : 1);
            if (rc == 0) rc = put_ids(e, sp->links[i].trace_id, sp->links[i].span_id);
            if (rc == 0) rc = put(e, "}", 1);
        }
        if (rc == 0) rc = put(e, "]", 1);
    }
    if (rc == 0 && sp->dropped_links) {
        snprintf(num, sizeof num, ",\"droppedLinksCount\":%" PRIu32, sp->dropped_links);
        rc = puts_(e, num);
    }
    /* Status: 0 unset, 1 ok, 2 error; the message only for an error. */
    int code = sp->status <= SL_SPAN_STATUS_ERROR ? (int)sp->status : 0;
    snprintf(num, sizeof num, ",\"status\":{\"code\":%d", code);
    if (rc == 0) rc = puts_(e, num);
    if (rc == 0 && code == SL_SPAN_STATUS_ERROR && sp->status_message[0]) {
        rc = puts_(e, ",\"message\":");
        if (rc == 0) rc = put_str(e, sp->status_message);
    }
    return rc ? rc : puts_(e, "}}");
}

/* ---- the fast path: one bound check per span, then unchecked writes -------------------- */

/* Bytes JSON takes as they are: printable ASCII other than '"' and '\\'. */
#define PL_(c)   ((c) >= 0x20 && (c) < 0x80 && (c) != '"' && (c) != '\\')
#define PL4_(c)  PL_(c), PL_(c + 1), PL_(c + 2), PL_(c + 3)
#define PL16_(c) PL4_(c), PL4_(c + 4), PL4_(c + 8), PL4_(c + 12)
#define PL64_(c) PL16_(c), PL16_(c + 16), PL16_(c + 32), PL16_(c + 48)
static const uint8_t PLAIN[256] = {PL64_(0), PL64_(64), PL64_(128), PL64_(192)};
#undef PL64_
#undef PL16_
#undef PL4_
#undef PL_

/* The same bytes as put_str_n for the NUL-terminated string in `str` (at most `cap` bytes
 * read), written at `p` (room for 2 + 6 * cap bytes); returns the end. */
static char *w_str(char *p, const char *str, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    *p++ = '"';
    size_t i = 0;
    for (;;) {
        size_t run = i;
        while (run < cap && PLAIN[s[run]])
            run++;
        memcpy(p, s + i, run - i);
        p += run - i;
        i = run;
        if (i == cap || s[i] == 0) break;
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
            i++;
        } else if (c < 0x20) {
            *p++ = '\\';
            if (c == '\n') {
                *p++ = 'n';
            } else if (c == '\r') {
                *p++ = 'r';
            } else if (c == '\t') {
                *p++ = 't';
            } else {
                memcpy(p, "u00", 3);
                p[3] = hex[c >> 4];
                p[4] = hex[c & 15];
                p += 5;
            }
            i++;
        } else {
            size_t k = utf8_seq(s + i, strnlen((const char *)s + i, cap - i));
            if (k == 0) {
                memcpy(p, "\xef\xbf\xbd", 3);
                p += 3;
                i++;
            } else {
                memcpy(p, s + i, k);
                p += k;
                i += k;
            }
        }
    }
    *p++ = '"';
    return p;
}

#define W_LIT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)

/* "00" "01" ... "ff" and "00" ... "99": two output bytes per table read. */
#define HX_(c)   "0123456789abcdef"[(c) >> 4], "0123456789abcdef"[(c)&15]
#define HX4_(c)  HX_(c), HX_(c + 1), HX_(c + 2), HX_(c + 3)
#define HX16_(c) HX4_(c), HX4_(c + 4), HX4_(c + 8), HX4_(c + 12)
#define HX64_(c) HX16_(c), HX16_(c + 16), HX16_(c + 32), HX16_(c + 48)
static const char HEX2[512] = {HX64_(0), HX64_(64), HX64_(128), HX64_(192)};
#undef HX64_
#undef HX16_
#undef HX4_
#undef HX_
#define DG_(c) (char)('0' + (c) / 10), (char)('0' + (c) % 10)
#define DG10_(c)                                                                                   \
    DG_(c), DG_(c + 1), DG_(c + 2), DG_(c + 3), DG_(c + 4), DG_(c + 5), DG_(c + 6), DG_(c + 7),    \
        DG_(c + 8), DG_(c + 9)
static const char DEC2[200] = {DG10_(0),  DG10_(10), DG10_(20), DG10_(30), DG10_(40),
                               DG10_(50), DG10_(60), DG10_(70), DG10_(80), DG10_(90)};
#undef DG10_
#undef DG_

static char *w_hex(char *p, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        memcpy(p + 2 * i, HEX2 + 2 * b[i], 2);
    return p + 2 * n;
}

/* Decimal of an unsigned value (at most 20 digits), two digits per step. */
static char *w_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = sizeof tmp;
    while (v >= 100) {
        n -= 2;
        memcpy(tmp + n, DEC2 + 2 * (v % 100), 2);
        v /= 100;
    }
    if (v >= 10) {
        n -= 2;
        memcpy(tmp + n, DEC2 + 2 * v, 2);
    } else {
        tmp[--n] = (char)('0' + v);
    }
    memcpy(p, tmp + n, sizeof tmp - n);
    return p + sizeof tmp - n;
}

static char *w_i64(char *p, int64_t v)
{
    if (v >= 0) return w_u64(p, (uint64_t)v);
    *p++ = '-';
    return w_u64(p, (uint64_t)0 - (uint64_t)v);
}

static char *w_ids(char *p, const uint8_t tid[SL_TRACE_ID_LEN], const uint8_t sid[SL_SPAN_ID_LEN])
{
    p = W_LIT(p, "\"traceId\":\"");
    p = w_hex(p, tid, SL_TRACE_ID_LEN);
    p = W_LIT(p, "\",\"spanId\":\"");
    p = w_hex(p, sid, SL_SPAN_ID_LEN);
    *p++ = '"';
    return p;
}

/* The fixed bytes of a span without its strings, attributes and links, with room to spare:
 * ids, parent, kind, two times, counts and status (well under 400), one attribute's framing
 * and integer (under 64), one link (under 80). */
#define SPAN_FIXED_MAX 400
#define ATTR_FIXED_MAX 64
#define LINK_MAX       80

/* An upper bound of the bytes put_span writes for `sp`, from its shape alone (every string
 * at its longest, each byte escaped to 6): no string is read twice. */
static size_t span_bound(const sl_span_data *sp)
{
    uint32_t na = sp->n_attrs < SL_SPAN_ATTRS_MAX ? sp->n_attrs : SL_SPAN_ATTRS_MAX;
    uint32_t nl = sp->n_links < SL_SPAN_LINKS_MAX ? sp->n_links : SL_SPAN_LINKS_MAX;
    size_t attr = ATTR_FIXED_MAX + 6 * (SL_SPAN_ATTR_KEY_MAX + SL_SPAN_ATTR_STR_MAX);
    return SPAN_FIXED_MAX + 6 * (SL_SPAN_NAME_MAX + SL_SPAN_STATUS_MAX) + na * attr +
           (size_t)nl * LINK_MAX;
}

/* Writes the span at `p` with room for span_bound() bytes: the same bytes as put_span. */
static char *w_span(char *p, const sl_span_data *sp, int first)
{
    if (!first) *p++ = ',';
    *p++ = '{';
    p = w_ids(p, sp->ctx.trace_id, sp->ctx.span_id);
    if (!all_zero(sp->parent_span_id, SL_SPAN_ID_LEN)) {
        p = W_LIT(p, ",\"parentSpanId\":\"");
        p = w_hex(p, sp->parent_span_id, SL_SPAN_ID_LEN);
        *p++ = '"';
    }
    p = W_LIT(p, ",\"name\":");
    p = w_str(p, sp->name, sizeof sp->name);
    int kind = sp->kind <= SL_SPAN_CONSUMER ? (int)sp->kind + 1 : 0;
    int64_t end = sp->end_ns >= sp->start_ns ? sp->end_ns : sp->start_ns;
    p = W_LIT(p, ",\"kind\":");
    *p++ = (char)('0' + kind);
    p = W_LIT(p, ",\"startTimeUnixNano\":\"");
    p = w_i64(p, sp->start_ns > 0 ? sp->start_ns : 0);
    p = W_LIT(p, "\",\"endTimeUnixNano\":\"");
    p = w_i64(p, end > 0 ? end : 0);
    p = W_LIT(p, "\",\"attributes\":[");
    uint32_t na = sp->n_attrs < SL_SPAN_ATTRS_MAX ? sp->n_attrs : SL_SPAN_ATTRS_MAX;
    for (uint32_t i = 0; i < na; i++) {
        const sl_span_attr *a = &sp->attrs[i];
        if (i) *p++ = ',';
        p = W_LIT(p, "{\"key\":");
        p = w_str(p, a->key, sizeof a->key);
        if (a->type == SL_SPAN_ATTR_INT) {
            p = W_LIT(p, ",\"value\":{\"intValue\":\"");
            p = w_i64(p, a->i);
            p = W_LIT(p, "\"}}");
        } else {
            p = W_LIT(p, ",\"value\":{\"stringValue\":");
            p = w_str(p, a->s, sizeof a->s);
            p = W_LIT(p, "}}");
        }
    }
    *p++ = ']';
    if (sp->dropped_attrs) {
        p = W_LIT(p, ",\"droppedAttributesCount\":");
        p = w_u64(p, sp->dropped_attrs);
    }
    uint32_t nl = sp->n_links < SL_SPAN_LINKS_MAX ? sp->n_links : SL_SPAN_LINKS_MAX;
    if (nl) {
        p = W_LIT(p, ",\"links\":[");
        for (uint32_t i = 0; i < nl; i++) {
            if (i) *p++ = ',';
            *p++ = '{';
            p = w_ids(p, sp->links[i].trace_id, sp->links[i].span_id);
            *p++ = '}';
        }
        *p++ = ']';
    }
    if (sp->dropped_links) {
        p = W_LIT(p, ",\"droppedLinksCount\":");
        p = w_u64(p, sp->dropped_links);
    }
    int code = sp->status <= SL_SPAN_STATUS_ERROR ? (int)sp->status : 0;
    p = W_LIT(p, ",\"status\":{\"code\":");
    *p++ = (char)('0' + code);
    if (code == SL_SPAN_STATUS_ERROR && sp->status_message[0]) {
        p = W_LIT(p, ",\"message\":");
        p = w_str(p, sp->status_message, sizeof sp->status_message);
    }
    return W_LIT(p, "}}");
}

int sl__otlp_enc_span_checked(sl_otlp_enc *e, const sl_span_data *span)
{
    SL_ASSERT(e && span && e->head_len > 0);
    size_t mark = e->len;
    int rc = put_span(e, span);
    if (rc != 0) {
        e->len = mark; /* the body stays as it was before this span */
        return rc;
    }
    e->nspans++;
    return 0;
}

int sl_otlp_enc_span(sl_otlp_enc *e, const sl_span_data *span)
{
    SL_ASSERT(e && span && e->head_len > 0);
    size_t bound = span_bound(span);
    /* Room for the worst case: write without further checks. Otherwise (near the body's
     * bound) the checked path decides exactly whether the span fits. */
    if (reserve(e, bound) != 0) return sl__otlp_enc_span_checked(e, span);
    char *p = w_span(e->buf + e->len, span, e->nspans == 0);
    e->len = (size_t)(p - e->buf);
    e->nspans++;
    return 0;
}

void sl_otlp_enc_end(sl_otlp_enc *e)
{
    SL_ASSERT(e && e->head_len > 0 && e->len + CLOSE_LEN <= e->cap);
    memcpy(e->buf + e->len, CLOSE, CLOSE_LEN);
    e->len += CLOSE_LEN;
}
