/*
 * In-process requests (http.h, sl_http_local_request): a request that never
 * touched a socket, run through a server's callbacks as if a connection had
 * delivered it. The record owns a copy of the head and body, the parsed
 * header array, and the sl_http_req the handler sees.
 */
#include <shoal/http.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOCAL_HEADERS_MAX 100

struct sl_http_local {
    sl_http_req req; /* first: req->_local points at the record */
    const sl_http_callbacks *cbs;
    sl_http_local_done_cb done; /* NULL once detached */
    void *data;
    sl_http_header headers[LOCAL_HEADERS_MAX];
    char *buf; /* head, then body */
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The next line of [p, end) ending in CRLF: its length, or -1. */
static long line_len(const char *p, const char *end)
{
    for (const char *q = p; q + 1 < end; q++)
        if (q[0] == '\r' && q[1] == '\n') return (long)(q - p);
    return -1;
}

static int value_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 0;
    return 1;
}

/* Parses the canonical head in l->buf into l->req. Returns 0 or SL_EINVAL. */
static int parse_head(sl_http_local *l, size_t head_len)
{
    const char *p = l->buf, *end = l->buf + head_len;
    long n = line_len(p, end);
    if (n <= 0 || !value_ok(p, (size_t)n)) return SL_EINVAL;
    const char *sp1 = memchr(p, ' ', (size_t)n);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(p + n - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || (size_t)(p + n - sp2 - 1) != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return SL_EINVAL;
    sl_http_req *r = &l->req;
    r->method_token = (sl_slice){p, (size_t)(sp1 - p)};
    r->method = sl_http_method_parse(r->method_token);
    r->target = (sl_slice){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
    if (r->target.len == 0 || r->target.ptr[0] != '/') return SL_EINVAL;
    const char *qm = memchr(r->target.ptr, '?', r->target.len);
    r->path = (sl_slice){r->target.ptr, qm ? (size_t)(qm - r->target.ptr) : r->target.len};
    r->query = qm ? (sl_slice){qm + 1, r->target.len - r->path.len - 1} : (sl_slice){"", 0};
    r->http_minor = sp2[8] - '0';
    p += n + 2;
    size_t nh = 0;
    for (;;) {
        n = line_len(p, end);
        if (n < 0) return SL_EINVAL;
        if (n == 0) break;
        /* A bare CR or LF (or a NUL) inside a line would smuggle a header past the parser. */
        if (!value_ok(p, (size_t)n)) return SL_EINVAL;
        const char *colon = memchr(p, ':', (size_t)n);
        if (!colon || colon == p || nh == LOCAL_HEADERS_MAX) return SL_EINVAL;
        const char *v = colon + 1, *ve = p + n;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        l->headers[nh++] = (sl_http_header){{p, (size_t)(colon - p)}, {v, (size_t)(ve - v)}};
        p += n + 2;
    }
    r->headers = l->headers;
    r->nheaders = nh;
    return 0;
}

static void local_free(sl_http_local *l)
{
    free(l->buf);
    free(l);
}

int sl_http_local_request(const sl_http_callbacks *cbs, size_t body_max, const char *head,
                          size_t head_len, const void *body, size_t body_len,
                          sl_http_local_done_cb done, void *data, sl_http_local **out)
{
    sl_http_local *l = calloc(1, sizeof *l);
    if (!l) return SL_ENOMEM;
    l->buf = malloc(head_len + body_len + 1);
    if (!l->buf) {
        free(l);
        return SL_ENOMEM;
    }
    memcpy(l->buf, head, head_len);
    if (body_len) memcpy(l->buf + head_len, body, body_len);
    l->buf[head_len + body_len] = '\0';
    if (parse_head(l, head_len) != 0) {
        local_free(l);
        return SL_EINVAL;
    }
    l->cbs = cbs;
    l->done = done;
    l->data = data;
    sl_http_req *r = &l->req;
    r->_local = l;
    r->body = (sl_slice){l->buf + head_len, body_len};
    r->start_ns = mono_ns();
    r->body_max_bytes = body_max;
    *out = l;
    int st = cbs->on_headers ? cbs->on_headers(r, cbs->data) : 0;
    if (st != 0) {
        sl_http_respond_problem(r, st, NULL);
        return 0;
    }
    if (body_len > r->body_max_bytes) {
        sl_http_respond_problem(r, 413, "request body too large");
        return 0;
    }
    cbs->on_request(r, cbs->data);
    return 0;
}

void sl_http_local_detach(sl_http_local *l)
{
    if (!l) return;
    l->done = NULL;
    l->req._cancelled = 1;
}

int sl__http_local_respond(sl_http_req *req, int status, const sl_http_header *headers,
                           size_t nheaders, const void *body, size_t body_len)
{
    sl_http_local *l = req->_local;
    for (size_t i = 0; i < nheaders; i++)
        if (!value_ok(headers[i].name.ptr, headers[i].name.len) ||
            !value_ok(headers[i].value.ptr, headers[i].value.len))
            return sl_http_respond_problem(req, 500, "handler produced an invalid header");
    if (req->method == SL_HTTP_HEAD) body_len = 0;
    int rc = 0;
    if (l->done) {
        /* The identifiers the server would add to the response. */
        sl_http_header all[LOCAL_HEADERS_MAX + 2];
        size_t n = 0;
        for (size_t i = 0; i < nheaders && n < LOCAL_HEADERS_MAX; i++)
            all[n++] = headers[i];
        if (req->request_id[0])
            all[n++] =
                (sl_http_header){{"x-request-id", 12}, {req->request_id, strlen(req->request_id)}};
        if (req->traceparent[0])
            all[n++] =
                (sl_http_header){{"traceparent", 11}, {req->traceparent, strlen(req->traceparent)}};
        l->done(l->data, status, all, n, body, body_len);
    } else {
        rc = SL_ECANCELED;
    }
    if (l->cbs->on_response)
        l->cbs->on_response(req, l->done ? status : 499, body_len, l->cbs->data);
    local_free(l);
    return rc;
}
