/*
 * Canonical request serialisation for the HTTP client (pure, no I/O).
 *
 * The head is always written in the same order: request line, Host, the
 * caller's header fields in their order minus those the client manages or
 * that are hop-by-hop, x-request-id, idempotency-key, traceparent,
 * x-shoal-deadline-ms, Content-Length, blank line. The parts that do not
 * change between attempts are prepared once per call (sl__http_prep_*);
 * Host, traceparent and the remaining deadline change per attempt.
 *
 * Validation refuses what could split or smuggle a request: header names
 * must be RFC 9110 tokens, values and option strings must not contain CR, LF
 * or NUL, and the target must be origin-form visible ASCII.
 */
#include "http_client_int.h"

#include <stdio.h>
#include <string.h>

/* A writer that only counts when `p` is NULL (the measuring pass). */
typedef struct wr {
    char *p;
    size_t len;
} wr;

static void put(wr *w, const char *s, size_t n)
{
    if (w->p) memcpy(w->p + w->len, s, n);
    w->len += n;
}

static void put_str(wr *w, const char *s)
{
    put(w, s, strlen(s));
}

static void put_field(wr *w, const char *name, const char *value, size_t value_len)
{
    put_str(w, name);
    put(w, ": ", 2);
    put(w, value, value_len);
    put(w, "\r\n", 2);
}

/* Fields the client sets itself, and hop-by-hop fields (RFC 9110 §7.6.1). */
static const sl_slice dropped[] = {
    SL_SLICE_LIT("host"),
    SL_SLICE_LIT("content-length"),
    SL_SLICE_LIT("connection"),
    SL_SLICE_LIT("keep-alive"),
    SL_SLICE_LIT("proxy-connection"),
    SL_SLICE_LIT("te"),
    SL_SLICE_LIT("transfer-encoding"),
    SL_SLICE_LIT("trailer"),
    SL_SLICE_LIT("upgrade"),
    SL_SLICE_LIT("traceparent"),
    SL_SLICE_LIT("x-shoal-deadline-ms"),
    SL_SLICE_LIT("x-request-id"),
    SL_SLICE_LIT("idempotency-key"),
};

int sl__http_header_dropped(sl_slice name)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(dropped); i++)
        if (sl_slice_case_eq_slice(name, dropped[i])) return 1;
    return 0;
}

static int value_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 0;
    return 1;
}

static int name_ok(sl_slice n)
{
    if (n.len == 0) return 0;
    for (size_t i = 0; i < n.len; i++)
        if (!sl_http_is_tchar((unsigned char)n.ptr[i])) return 0;
    return 1;
}

/*
 * Returns 1 when `name` is listed in a Connection header of the caller's:
 * RFC 9110 §7.6.1 makes every field it names hop-by-hop too.
 */
static int named_by_connection(const sl_http_request *req, sl_slice name)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!sl_slice_case_eq(req->headers[i].name, "connection")) continue;
        sl_slice v = req->headers[i].value;
        size_t k = 0;
        while (k < v.len) {
            while (k < v.len && (v.ptr[k] == ' ' || v.ptr[k] == '\t' || v.ptr[k] == ','))
                k++;
            size_t start = k;
            while (k < v.len && v.ptr[k] != ',' && v.ptr[k] != ' ' && v.ptr[k] != '\t')
                k++;
            sl_slice tok = {v.ptr + start, k - start};
            if (tok.len == name.len && tok.len && strncasecmp(tok.ptr, name.ptr, tok.len) == 0)
                return 1;
        }
    }
    return 0;
}

/* RFC 9110 §8.6: send Content-Length for a body, and 0 for methods that define content. */
static int wants_length(const sl_http_request *req)
{
    return req->body_len > 0 || req->method == SL_HTTP_POST || req->method == SL_HTTP_PUT ||
           req->method == SL_HTTP_PATCH;
}

static void prep(const sl_http_request *req, const char *rid, const char *key, wr *w,
                 sl__http_prep *out)
{
    put_str(w, sl_http_method_name(req->method));
    put(w, " ", 1);
    put(w, req->target.ptr, req->target.len);
    put(w, " HTTP/1.1\r\n", 11);
    size_t line_len = w->len;
    for (size_t i = 0; i < req->nheaders; i++) {
        const sl_http_header *h = &req->headers[i];
        if (sl__http_header_dropped(h->name) || named_by_connection(req, h->name)) continue;
        put(w, h->name.ptr, h->name.len);
        put(w, ": ", 2);
        put(w, h->value.ptr, h->value.len);
        put(w, "\r\n", 2);
    }
    if (rid) put_field(w, "x-request-id", rid, strlen(rid));
    if (key) put_field(w, "idempotency-key", key, strlen(key));
    size_t tail_off = w->len;
    if (wants_length(req)) {
        char num[32];
        int n = snprintf(num, sizeof num, "%zu", req->body_len);
        put_field(w, "Content-Length", num, (size_t)n);
    }
    put(w, "\r\n", 2);
    if (out) {
        out->buf = w->p;
        out->line_len = line_len;
        out->fields_off = line_len;
        out->fields_len = tail_off - line_len;
        out->tail_off = tail_off;
        out->tail_len = w->len - tail_off;
    }
}

int sl__http_prep_size(const sl_http_request *req, const char *request_id,
                       const char *idempotency_key, size_t *size)
{
    if (req->method < 0 || req->method >= SL_HTTP_OTHER) return SL_EINVAL;
    /* RFC 9112 §3.2.1 origin-form: an absolute path, visible ASCII only. */
    if (req->target.len == 0 || req->target.ptr[0] != '/') return SL_EINVAL;
    for (size_t i = 0; i < req->target.len; i++) {
        unsigned char c = (unsigned char)req->target.ptr[i];
        if (c <= 0x20 || c >= 0x7f) return SL_EINVAL;
    }
    if (req->nheaders && !req->headers) return SL_EINVAL;
    if (req->body_len && !req->body) return SL_EINVAL;
    for (size_t i = 0; i < req->nheaders; i++) {
        const sl_http_header *h = &req->headers[i];
        if (!name_ok(h->name) || !value_ok(h->value.ptr, h->value.len)) return SL_EINVAL;
    }
    if (request_id && !value_ok(request_id, strlen(request_id))) return SL_EINVAL;
    if (idempotency_key && !value_ok(idempotency_key, strlen(idempotency_key))) return SL_EINVAL;
    wr w = {NULL, 0};
    prep(req, request_id, idempotency_key, &w, NULL);
    if (w.len > SL_HTTP_CLIENT_HEAD_MAX) return SL_ELIMIT;
    *size = w.len;
    return 0;
}

void sl__http_prep_write(const sl_http_request *req, const char *request_id,
                         const char *idempotency_key, char *buf, sl__http_prep *out)
{
    wr w = {buf, 0};
    prep(req, request_id, idempotency_key, &w, out);
}

int sl__http_head_write(const sl__http_prep *p, const char *host, const char *traceparent,
                        const char *tracestate, const char *deadline_ms, char *out, size_t cap)
{
    wr w = {NULL, 0};
    for (int pass = 0; pass < 2; pass++) {
        put(&w, p->buf, p->line_len);
        put_field(&w, "Host", host, strlen(host));
        put(&w, p->buf + p->fields_off, p->fields_len);
        if (traceparent) put_field(&w, "traceparent", traceparent, strlen(traceparent));
        if (tracestate) put_field(&w, "tracestate", tracestate, strlen(tracestate));
        if (deadline_ms) put_field(&w, "x-shoal-deadline-ms", deadline_ms, strlen(deadline_ms));
        put(&w, p->buf + p->tail_off, p->tail_len);
        if (pass == 0) {
            if (w.len > cap) return SL_ELIMIT;
            w = (wr){out, 0};
        }
    }
    return (int)w.len;
}
