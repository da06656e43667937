/*
 * HTTP/1.1 server: connections, strict request parsing on top of
 * http-parser, response writing, timeouts and graceful drain.
 *
 * Buffers: a connection reads into its worker's shared 64 KiB buffer and
 * parses in place; only bytes that must outlive the read callback (a
 * partial request, the headers of a request whose handler answers later, or
 * pipelined bytes not parsed yet) are copied into a per-connection buffer of
 * at most max_header_bytes + 16 KiB, which is freed again once the
 * connection is idle. An idle keep-alive connection therefore holds no
 * buffer at all. Bodies are copied into their own buffer, bounded by the
 * route's limit.
 *
 * Timeouts: every connection waiting on a timeout sits in one of four lists
 * (idle, headers, body, linger). Each list has one duration, so appending
 * keeps it sorted by deadline and one periodic sweep pops expired heads in
 * O(expired), without a timer per connection.
 *
 * http-parser's own checks are completed here: tchar-only field names,
 * no obs-fold, CRLF line endings only, Transfer-Encoding exactly "chunked",
 * one Host for HTTP/1.1, HTTP/1.x only. Requests are dispatched only at
 * message completion (the parser reports some errors after headers complete),
 * and the parser is paused there so a connection handles one request at a
 * time and pipelined responses keep their order.
 */
#include "http_int.h"

#include <shoal/http.h>
#include <shoal/json.h>
#include <shoal/tls.h>

#include "http/fast_head.h"

#include <http_parser.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define READ_BUF_SIZE   (64 * 1024)
#define CONN_BUF_SLACK  (16 * 1024)
#define SPARE_BUFS      64
#define MAX_HEADERS_CAP 256

enum conn_state {
    ST_IDLE,       /* between requests */
    ST_HEADERS,    /* reading request line and headers */
    ST_BODY,       /* reading the body */
    ST_DISPATCHED, /* the handler has the request */
    ST_LINGER,     /* final response written; discarding input until close */
};

enum timeout_list { TL_NONE = -1, TL_IDLE, TL_HEADERS, TL_BODY, TL_LINGER, TL_COUNT };

typedef struct conn conn;

struct conn {
    uv_tcp_t tcp;
    sl_http_server *srv;
    conn *prev, *next;   /* all connections */
    conn *tprev, *tnext; /* timeout list */
    int tlist;
    uint64_t deadline;

    http_parser parser;
    enum conn_state state;

    /* Bytes being parsed: either the worker's shared buffer or `buf`. */
    char *data;
    size_t data_len;
    size_t parse_off; /* parsed up to here */
    size_t req_start; /* current request's first byte */
    size_t hdr_end;   /* end of its header block, once known */
    char *buf;        /* owned leftover buffer, NULL when nothing is kept */
    size_t buf_len, buf_cap;

    sl_http_req req;
    sl_http_header *headers;
    size_t nheaders;
    const char *last_end; /* end of the last url/field/value piece */
    int last_cb;          /* 0 none, 1 field, 2 value */
    int error_status;     /* set by callbacks: answer this and close */
    const char *error_detail;
    int message_done;
    int expect_continue;
    int te_count, host_count;
    char peer[48]; /* the client's address, filled on first sl_http_req_peer */

    char *body;
    size_t body_len, body_cap;

    /* Output: `out` accumulates; `wbuf` is being written by uv_write. */
    char *out;
    size_t out_len, out_cap;
    char *wbuf;
    size_t wbuf_len, wbuf_cap;
    uv_write_t wreq;
    int writing;
    int reading;

    int keep_alive;
    int close_after_write;
    int closing; /* uv_close called */
    int handler_pending;
    int handle_closed; /* uv_close finished; memory waits for a pending handler */
    int in_process;
    uv_shutdown_t sreq;
    int shutting_down;
    sl_tls_stream *tls; /* NULL: plain */
};

struct sl_http_server {
    uv_loop_t *loop;
    sl_http_limits lim;
    sl_http_callbacks cbs;
    uv_tcp_t listener;
    int listening;
    uv_timer_t sweep;
    uint64_t sweep_ms;
    conn *conns;
    size_t nconns;
    size_t nrejecting;
    conn *tl_head[TL_COUNT], *tl_tail[TL_COUNT];
    uint32_t tl_ms[TL_COUNT];
    char *rbuf; /* shared read buffer */
    int rbuf_busy;
    /* Request buffers of the usual size (conn_keep) that connections gave back: a proxied
     * request takes one while it waits for its answer, so reuse spares a malloc and a free
     * of max_header_bytes + CONN_BUF_SLACK per request, and idle connections keep none. */
    char *spare[SPARE_BUFS];
    size_t nspare;
    char date[64];
    size_t date_len;
    time_t date_sec;
    int draining;
    void (*drain_cb)(void *);
    void *drain_data;
    int closing;
    int open_handles; /* libuv handles plus connections whose memory is still held */
    void (*close_cb)(void *);
    void *close_data;
    http_parser_settings settings;
    sl_tls_ctx *tls;   /* new connections speak TLS with it; NULL: plain */
    bool no_fast;      /* tests: every request through http-parser */
    size_t fast_taken; /* requests the fast path read */
};

static void conn_close(conn *c);
static void conn_free(conn *c);
static void conn_process(conn *c);
static int out_append(conn *c, const void *p, size_t n);
static void conn_flush(conn *c);
static void conn_update_reading(conn *c);
static void server_maybe_drained(sl_http_server *srv);

void sl_http_limits_default(sl_http_limits *lim)
{
    lim->max_header_bytes = 16 * 1024;
    lim->max_headers = 100;
    lim->body_max_bytes = 1024 * 1024;
    lim->header_timeout_ms = 10000;
    lim->body_timeout_ms = 30000;
    lim->idle_timeout_ms = 60000;
    lim->linger_ms = 2000;
    lim->max_connections = 10000;
    lim->max_output_bytes = 4 * 1024 * 1024;
}

/* ---- timeout lists ---------------------------------------------------- */

static void tl_remove(conn *c)
{
    if (c->tlist == TL_NONE) return;
    sl_http_server *s = c->srv;
    if (c->tprev)
        c->tprev->tnext = c->tnext;
    else
        s->tl_head[c->tlist] = c->tnext;
    if (c->tnext)
        c->tnext->tprev = c->tprev;
    else
        s->tl_tail[c->tlist] = c->tprev;
    c->tprev = c->tnext = NULL;
    c->tlist = TL_NONE;
}

/* Puts `c` at the tail of `list` with deadline now + that list's duration. */
static void tl_set(conn *c, int list)
{
    tl_remove(c);
    sl_http_server *s = c->srv;
    c->tlist = list;
    c->deadline = uv_now(s->loop) + s->tl_ms[list];
    c->tprev = s->tl_tail[list];
    c->tnext = NULL;
    if (s->tl_tail[list])
        s->tl_tail[list]->tnext = c;
    else
        s->tl_head[list] = c;
    s->tl_tail[list] = c;
}

static void send_error(conn *c, int status, const char *detail);

static void sweep_cb(uv_timer_t *t)
{
    sl_http_server *s = t->data;
    uint64_t now = uv_now(s->loop);
    for (int l = 0; l < TL_COUNT; l++) {
        while (s->tl_head[l] && s->tl_head[l]->deadline <= now) {
            conn *c = s->tl_head[l];
            tl_remove(c);
            if ((l == TL_HEADERS && c->state == ST_HEADERS) || l == TL_BODY) {
                /* RFC 9110 §15.5.9: 408 then close; the client was too slow. */
                send_error(c, 408,
                           l == TL_HEADERS ? "request headers not received in time"
                                           : "request body not received in time");
            } else {
                conn_close(c);
            }
        }
    }
}

/* ---- buffers ---------------------------------------------------------- */

static int grow(char **p, size_t *cap, size_t need, size_t max)
{
    if (need <= *cap) return 0;
    if (need > max) return SL_ELIMIT;
    size_t ncap = *cap ? *cap : 1024;
    while (ncap < need)
        ncap *= 2;
    if (ncap > max) ncap = max;
    char *n = realloc(*p, ncap);
    if (!n) return SL_ENOMEM;
    *p = n;
    *cap = ncap;
    return 0;
}

static void rebase_slice(sl_slice *s, const char *old_base, size_t old_len, ptrdiff_t delta)
{
    if (s->ptr >= old_base && s->ptr <= old_base + old_len) s->ptr += delta;
}

static size_t buf_std(const sl_http_server *s)
{
    return s->lim.max_header_bytes + CONN_BUF_SLACK;
}

static char *buf_take(sl_http_server *s, size_t cap)
{
    if (cap == buf_std(s) && s->nspare > 0) return s->spare[--s->nspare];
    return malloc(cap);
}

static void buf_give(sl_http_server *s, char *b, size_t cap)
{
    if (b && cap == buf_std(s) && s->nspare < SPARE_BUFS && !s->closing)
        s->spare[s->nspare++] = b;
    else
        free(b);
}

/*
 * Moves the bytes that must outlive this read — the current request's header
 * region [req_start, keep_end) and the unparsed tail [parse_off, data_len) —
 * to the start of c->buf, and rebases every slice into them.
 */
static int conn_keep(conn *c)
{
    size_t keep_end = c->state == ST_HEADERS ? c->parse_off : c->hdr_end;
    if (c->state == ST_IDLE) keep_end = c->req_start = c->parse_off;
    size_t head = keep_end - c->req_start;
    size_t tail = c->data_len - c->parse_off;
    if (head + tail == 0) {
        buf_give(c->srv, c->buf, c->buf_cap);
        c->buf = NULL;
        c->buf_len = c->buf_cap = 0;
        if (c->data != c->srv->rbuf) {
            c->data = NULL;
        }
        c->data_len = c->parse_off = c->req_start = c->hdr_end = 0;
        return 0;
    }
    /* The unparsed tail of a read can exceed the usual size when a handler answers later. */
    size_t cap = buf_std(c->srv);
    if (head + tail > cap) cap = head + tail;
    if (!c->buf || c->buf_cap < cap) {
        SL_ASSERT(c->data != c->buf || c->buf == NULL);
        buf_give(c->srv, c->buf, c->buf_cap);
        c->buf = buf_take(c->srv, cap);
        if (!c->buf) {
            c->buf_cap = c->buf_len = 0;
            return SL_ENOMEM;
        }
        c->buf_cap = cap;
    }
    const char *old = c->data;
    size_t old_len = c->data_len;
    ptrdiff_t delta = c->buf - (old + c->req_start);
    memmove(c->buf, old + c->req_start, head);
    memmove(c->buf + head, old + c->parse_off, tail);

    /* Slices all lie in the header region, which moved by `delta`. */
    sl_http_req *r = &c->req;
    rebase_slice(&r->method_token, old, old_len, delta);
    rebase_slice(&r->target, old, old_len, delta);
    rebase_slice(&r->path, old, old_len, delta);
    rebase_slice(&r->query, old, old_len, delta);
    for (size_t i = 0; i < c->nheaders; i++) {
        rebase_slice(&c->headers[i].name, old, old_len, delta);
        rebase_slice(&c->headers[i].value, old, old_len, delta);
    }
    for (size_t i = 0; i < r->params.n; i++)
        rebase_slice(&r->params.p[i].value, old, old_len, delta);
    if (c->last_end && c->last_end >= old && c->last_end <= old + old_len) c->last_end += delta;

    c->data = c->buf;
    c->data_len = c->buf_len = head + tail;
    c->parse_off = head;
    if (c->state != ST_HEADERS) c->hdr_end = head;
    c->req_start = 0;
    return 0;
}

/* ---- parser callbacks ------------------------------------------------- */

static int fail(conn *c, int status, const char *detail)
{
    if (!c->error_status) {
        c->error_status = status;
        c->error_detail = detail;
    }
    return -1;
}

static int on_message_begin(http_parser *p)
{
    conn *c = p->data;
    (void)c;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (c->req.target.len == 0) c->req.target.ptr = at;
    c->req.target.len += len;
    c->last_end = at + len;
    return 0;
}

static int check_line_start(conn *c, const char *at)
{
    /* RFC 9112 §2.2: we accept CRLF only; a bare LF before a field is refused. */
    if (at < c->data + c->req_start + 2 || at[-1] != '\n' || at[-2] != '\r')
        return fail(c, 400, "line endings must be CRLF");
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (c->state != ST_HEADERS) return 0; /* trailer fields are read and ignored */
    for (size_t i = 0; i < len; i++)
        if (!sl_http_is_tchar((unsigned char)at[i]))
            /* RFC 9112 §5.1: no whitespace between field name and colon; names are tokens. */
            return fail(c, 400, "invalid character in header name");
    if (c->last_cb == 1 && at == c->last_end) {
        c->headers[c->nheaders - 1].name.len += len; /* split across reads */
    } else {
        if (check_line_start(c, at)) return -1;
        if (c->nheaders == c->srv->lim.max_headers) return fail(c, 431, "too many header fields");
        sl_http_header *h = &c->headers[c->nheaders++];
        h->name = (sl_slice){at, len};
        h->value = (sl_slice){at + len, 0};
    }
    c->last_cb = 1;
    c->last_end = at + len;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (c->state != ST_HEADERS) return 0;
    sl_http_header *h = &c->headers[c->nheaders - 1];
    /* http-parser reports an empty value where the next line starts (for the last field, at
     * the empty line); place it at the end of its own line, before that line's CRLF. */
    if (len == 0 && c->last_cb != 2 && at[-1] == '\n') at -= 2;
    if (c->last_cb == 2) {
        /* A second value piece that does not continue the first is an obs-fold
         * (RFC 9112 §5.2: a server must reject it or replace it; we reject). */
        if (at != c->last_end) return fail(c, 400, "obsolete line folding is not accepted");
        h->value.len += len;
    } else {
        h->value = (sl_slice){at, len};
    }
    if (!sl_http_value_ok(at, len)) return fail(c, 400, "invalid character in header value");
    c->last_cb = 2;
    c->last_end = at + len;
    return 0;
}

static sl_slice trim_ows(sl_slice s)
{
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* Finds the end of the header block after the last piece: "\r\n\r\n" with CRLF only. */
static int find_header_end(conn *c)
{
    const char *p = c->last_end;
    const char *end = c->data + c->data_len;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl || nl == p || nl[-1] != '\r' || nl + 2 >= end || nl[1] != '\r' || nl[2] != '\n')
        return fail(c, 400, "line endings must be CRLF");
    c->hdr_end = (size_t)(nl + 3 - c->data);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    conn *c = p->data;
    sl_http_server *s = c->srv;
    sl_http_req *r = &c->req;
    if (find_header_end(c)) return -1;
    if (c->hdr_end - c->req_start > s->lim.max_header_bytes)
        return fail(c, 431, "request header block too large");
    if (p->http_major != 1) return fail(c, 505, "only HTTP/1.x is supported");
    r->http_minor = p->http_minor;
    r->method_token.ptr = c->data + c->req_start;
    r->method_token.len = strlen(http_method_str((enum http_method)p->method));
    r->method = sl_http_method_parse(r->method_token);
    if (p->method == HTTP_CONNECT || r->method == SL_HTTP_OTHER)
        return fail(c, 501, "method not implemented");
    if (r->target.len == 0 || r->target.ptr[0] != '/')
        return fail(c, 400, "request target must be an absolute path");
    const char *q = memchr(r->target.ptr, '?', r->target.len);
    r->path = (sl_slice){r->target.ptr, q ? (size_t)(q - r->target.ptr) : r->target.len};
    r->query = q ? (sl_slice){q + 1, r->target.len - r->path.len - 1} : (sl_slice){q, 0};
    r->headers = c->headers;
    r->nheaders = c->nheaders;

    int te_chunked = 0;
    for (size_t i = 0; i < c->nheaders; i++) {
        sl_http_header *h = &c->headers[i];
        h->value = trim_ows(h->value);
        if (SL_SLICE_CASE_EQ_LIT(h->name, "transfer-encoding")) {
            c->te_count++;
            te_chunked = sl_slice_case_eq(h->value, "chunked");
        } else if (SL_SLICE_CASE_EQ_LIT(h->name, "host")) {
            c->host_count++;
        } else if (SL_SLICE_CASE_EQ_LIT(h->name, "expect")) {
            if (!sl_slice_case_eq(h->value, "100-continue"))
                return fail(c, 417, "unsupported expectation");
            c->expect_continue = 1;
        }
    }
    /* RFC 9112 §6.1: only "chunked" is supported; anything else is 501. */
    if (c->te_count > 1) return fail(c, 400, "repeated Transfer-Encoding");
    if (c->te_count == 1 && !te_chunked) return fail(c, 501, "unsupported transfer coding");
    if (c->te_count == 1 && p->http_minor == 0)
        return fail(c, 400, "Transfer-Encoding in an HTTP/1.0 request");
    /* RFC 9112 §3.2: a 1.1 request has exactly one Host. */
    if (p->http_minor >= 1 && c->host_count != 1)
        return fail(c, 400, c->host_count ? "more than one Host header" : "missing Host header");

    r->body_max_bytes = s->lim.body_max_bytes;
    if (s->cbs.on_headers) {
        int st = s->cbs.on_headers(r, s->cbs.data);
        if (st) return fail(c, st, NULL);
    }
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > r->body_max_bytes)
        return fail(c, 413, "request body too large");
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > 0) {
        if (grow(&c->body, &c->body_cap, (size_t)p->content_length, r->body_max_bytes))
            return fail(c, 500, "out of memory");
    }
    c->state = ST_BODY;
    tl_set(c, TL_BODY);
    if (c->expect_continue && (te_chunked || p->content_length > 0)) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (out_append(c, cont, sizeof cont - 1) != 0) return fail(c, 500, "out of memory");
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (c->body_len + len > c->req.body_max_bytes) return fail(c, 413, "request body too large");
    if (grow(&c->body, &c->body_cap, c->body_len + len, c->req.body_max_bytes))
        return fail(c, 500, "out of memory");
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    conn *c = p->data;
    c->message_done = 1;
    http_parser_pause(p, 1);
    return 0;
}

/* ---- responses -------------------------------------------------------- */

/* The Date header line, formatted once per second (RFC 9110 §6.6.1 IMF-fixdate). */
static const char *date_line(sl_http_server *s, size_t *len)
{
    time_t now = time(NULL);
    if (now != s->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        s->date_len = strftime(s->date, sizeof s->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        s->date_sec = now;
    }
    *len = s->date_len;
    return s->date;
}

static int out_append(conn *c, const void *p, size_t n)
{
    if (grow(&c->out, &c->out_cap, c->out_len + n, SIZE_MAX)) return SL_ENOMEM;
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

static int valid_header_value(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0') return 0;
    return 1;
}

static char *put(char *p, const void *src, size_t n)
{
    memcpy(p, src, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_uint(char *p, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/*
 * Serialises one response into c->out: sized first, then copied piece by
 * piece (this runs once per request; no formatted printing on this path).
 */
static int write_response(conn *c, int status, const sl_http_header *hs, size_t nh,
                          const void *body, size_t body_len, int head_only)
{
    const char *reason = sl_http_reason(status);
    size_t reason_len = strlen(reason), date_len;
    const char *date = date_line(c->srv, &date_len);
    size_t rid_len = strlen(c->req.request_id), tp_len = strlen(c->req.traceparent);
    size_t need = 13 + reason_len + 2 + date_len + 16 + 20 + 2 + 24 + 2;
    for (size_t i = 0; i < nh; i++)
        need += hs[i].name.len + hs[i].value.len + 4;
    need += rid_len ? 16 + rid_len : 0;
    need += tp_len ? 15 + tp_len : 0;
    if (!head_only) need += body_len;
    if (grow(&c->out, &c->out_cap, c->out_len + need, SIZE_MAX)) return SL_ENOMEM;
    char *p = c->out + c->out_len;
    p = PUT_LIT(p, "HTTP/1.1 ");
    p = put_uint(p, (uint64_t)status);
    *p++ = ' ';
    p = put(p, reason, reason_len);
    p = PUT_LIT(p, "\r\n");
    p = put(p, date, date_len);
    p = PUT_LIT(p, "Content-Length: ");
    p = put_uint(p, body_len);
    p = PUT_LIT(p, "\r\n");
    for (size_t i = 0; i < nh; i++) {
        p = put(p, hs[i].name.ptr, hs[i].name.len);
        p = PUT_LIT(p, ": ");
        p = put(p, hs[i].value.ptr, hs[i].value.len);
        p = PUT_LIT(p, "\r\n");
    }
    if (rid_len) {
        p = PUT_LIT(p, "x-request-id: ");
        p = put(p, c->req.request_id, rid_len);
        p = PUT_LIT(p, "\r\n");
    }
    if (tp_len) {
        p = PUT_LIT(p, "traceparent: ");
        p = put(p, c->req.traceparent, tp_len);
        p = PUT_LIT(p, "\r\n");
    }
    if (!c->keep_alive)
        p = PUT_LIT(p, "Connection: close\r\n");
    else if (c->req.http_minor == 0)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    p = PUT_LIT(p, "\r\n");
    if (!head_only && body_len) p = put(p, body, body_len);
    c->out_len = (size_t)(p - c->out);
    SL_ASSERT(c->out_len <= c->out_cap);
    return 0;
}

static void reset_request(conn *c)
{
    memset(&c->req, 0, sizeof c->req);
    c->nheaders = 0;
    c->req.method = SL_HTTP_OTHER;
    c->last_end = NULL;
    c->last_cb = 0;
    c->message_done = 0;
    c->expect_continue = 0;
    c->te_count = c->host_count = 0;
    c->body_len = 0;
    c->hdr_end = 0;
    c->req._conn = c;
    if (c->body_cap > 64 * 1024) {
        free(c->body);
        c->body = NULL;
        c->body_cap = 0;
    }
}

/* Answers a protocol error and closes after it (the framing can no longer be trusted). */
static void send_error(conn *c, int status, const char *detail)
{
    size_t n = 0;
    char *body = sl_problem_body(status, NULL, detail, NULL, &n);
    static const sl_http_header ct = {{"Content-Type", 12}, {"application/problem+json", 24}};
    c->keep_alive = 0;
    c->req.http_minor = 1;
    write_response(c, status, &ct, 1, body ? body : "", body ? n : 0, 0);
    free(body);
    if (c->srv->cbs.on_response && c->state != ST_IDLE)
        c->srv->cbs.on_response(&c->req, status, n, c->srv->cbs.data);
    c->close_after_write = 1;
    c->state = ST_LINGER;
    tl_set(c, TL_LINGER);
    conn_flush(c);
    conn_update_reading(c);
}

int sl_http_respond(sl_http_req *req, int status, const sl_http_header *headers, size_t nheaders,
                    const void *body, size_t body_len)
{
    if (req->_local) return sl__http_local_respond(req, status, headers, nheaders, body, body_len);
    conn *c = req->_conn;
    SL_ASSERT(c && c->handler_pending);
    c->handler_pending = 0;
    if (c->closing) {
        /* The connection closed while the handler worked; it waited for us to free it. */
        sl_http_server *srv = c->srv;
        if (srv->cbs.on_response) srv->cbs.on_response(req, 499, 0, srv->cbs.data);
        if (c->handle_closed) conn_free(c);
        return SL_ECANCELED;
    }
    for (size_t i = 0; i < nheaders; i++) {
        if (!valid_header_value(headers[i].value.ptr, headers[i].value.len) ||
            !valid_header_value(headers[i].name.ptr, headers[i].name.len)) {
            c->handler_pending = 1;
            sl_http_respond_problem(req, 500, "handler produced an invalid header");
            return SL_EINVAL;
        }
    }
    sl_http_server *s = c->srv;
    if (s->draining || c->parser.upgrade) c->keep_alive = 0;
    int rc =
        write_response(c, status, headers, nheaders, body, body_len, req->method == SL_HTTP_HEAD);
    if (s->cbs.on_response) s->cbs.on_response(req, status, body_len, s->cbs.data);
    if (rc != 0) {
        c->close_after_write = 1;
        c->keep_alive = 0;
    }
    if (!c->keep_alive) c->close_after_write = 1;
    c->state = c->close_after_write ? ST_LINGER : ST_IDLE;
    reset_request(c);
    if (c->state == ST_LINGER) {
        tl_set(c, TL_LINGER);
        conn_flush(c);
        conn_update_reading(c);
        return 0;
    }
    /* Inside conn_process (a synchronous answer) its loop goes on; otherwise resume
     * parsing any pipelined bytes now. */
    if (!c->in_process) conn_process(c);
    return 0;
}

int sl_http_respond_body(sl_http_req *req, int status, const char *content_type, const void *body,
                         size_t body_len)
{
    sl_http_header h = {{"Content-Type", 12}, {content_type, strlen(content_type)}};
    return sl_http_respond(req, status, &h, content_type ? 1 : 0, body, body_len);
}

int sl_http_respond_problem(sl_http_req *req, int status, const char *detail)
{
    size_t n = 0;
    char *body = sl_problem_body(status, NULL, detail, NULL, &n);
    int rc = sl_http_respond_body(req, status, "application/problem+json", body ? body : "",
                                  body ? n : 0);
    free(body);
    return rc;
}

int sl_http_req_cancelled(const sl_http_req *req)
{
    return req->_cancelled;
}

int sl_http_req_peer(const sl_http_req *req, char *out, size_t cap)
{
    conn *c = req->_conn;
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    if (cap) out[0] = '\0';
    if (!c || c->closing) return SL_ENOTFOUND;
    if (!c->peer[0]) {
        if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0) return SL_ENOTFOUND;
        int rc = ss.ss_family == AF_INET6
                     ? uv_ip6_name((const struct sockaddr_in6 *)&ss, c->peer, sizeof c->peer)
                     : uv_ip4_name((const struct sockaddr_in *)&ss, c->peer, sizeof c->peer);
        if (rc != 0) {
            c->peer[0] = '\0';
            return SL_ENOTFOUND;
        }
    }
    size_t n = strlen(c->peer);
    if (n >= cap) return SL_ELIMIT;
    memcpy(out, c->peer, n + 1);
    return 0;
}

int sl_http_req_header(const sl_http_req *req, const char *name, sl_slice *value)
{
    return sl_http_header_find(req->headers, req->nheaders, name, value);
}

/* ---- dispatch and the parse loop ------------------------------------- */

static void dispatch(conn *c)
{
    sl_http_server *s = c->srv;
    c->req.body = (sl_slice){c->body, c->body_len};
    c->keep_alive = http_should_keep_alive(&c->parser) && !s->draining;
    c->state = ST_DISPATCHED;
    c->handler_pending = 1;
    tl_remove(c);
    s->cbs.on_request(&c->req, s->cbs.data);
}

static int map_parser_error(conn *c, enum http_errno e)
{
    switch (e) {
    case HPE_HEADER_OVERFLOW:
        return 431;
    case HPE_INVALID_TRANSFER_ENCODING:
        return 501;
    case HPE_INVALID_METHOD: {
        /* RFC 9110 §9.1: an unknown but well-formed method is 501, garbage is 400. */
        const char *p = c->data + c->req_start;
        size_t n = c->data_len - c->req_start, i = 0;
        while (i < n && sl_http_is_tchar((unsigned char)p[i]))
            i++;
        return (i > 0 && i < n && p[i] == ' ') ? 501 : 400;
    }
    case HPE_INVALID_VERSION:
        return 400;
    default:
        return 400;
    }
}

/* The http-parser method of each method Shoal routes. */
static const unsigned char parser_method[] = {
#define SL_PARSER_METHOD_(name, text) [SL_HTTP_##name] = HTTP_##name,
    SL_HTTP_METHOD_MAP(SL_PARSER_METHOD_)
#undef SL_PARSER_METHOD_
};

/*
 * Fast path (http/fast_head.h): when a whole plain request, head and body, is waiting at
 * parse_off, reads it without http-parser and leaves the parser in the state http-parser would
 * have left (method, version, flags, length) for the same on_headers_complete and dispatch.
 * Returns 1 when the request was taken (dispatch it, or answer c->error_status), 0 to run
 * http-parser.
 */
static int try_fast(conn *c)
{
    sl_http_server *s = c->srv;
    const char *p = c->data + c->parse_off;
    size_t avail = c->data_len - c->parse_off;
    size_t lim = avail < s->lim.max_header_bytes ? avail : s->lim.max_header_bytes;
    sl__fast_request fr;
    if (!sl__http_fast_request(p, lim, c->headers, s->lim.max_headers, &fr)) return 0;
    uint64_t cl = fr.f.has_cl ? fr.f.content_length : 0;
    if (cl > avail - fr.f.end) return 0; /* the body is still on its way */
    http_parser *hp = &c->parser;
    hp->method = parser_method[fr.method];
    hp->http_major = 1;
    hp->http_minor = (unsigned short)fr.http_minor;
    hp->flags = (fr.f.has_cl ? F_CONTENTLENGTH : 0) | (fr.f.conn_close ? F_CONNECTION_CLOSE : 0) |
                (fr.f.conn_keep ? F_CONNECTION_KEEP_ALIVE : 0);
    hp->content_length = fr.f.has_cl ? cl : ULLONG_MAX;
    c->req.target = fr.target;
    c->nheaders = fr.f.nfields;
    c->last_end = p + fr.f.end - 4; /* the last line's CRLF, then the empty line */
    if (on_headers_complete(hp) != 0) return 1;
    if (cl) memcpy(c->body, p + fr.f.end, (size_t)cl);
    c->body_len = (size_t)cl;
    c->parse_off += fr.f.end + (size_t)cl;
    c->message_done = 1;
    s->fast_taken++;
    return 1;
}

/* Answers the error a callback set, if any (and closes after it). */
static bool answer_error(conn *c)
{
    if (!c->error_status) return false;
    int st = c->error_status;
    c->error_status = 0;
    send_error(c, st, c->error_detail);
    return true;
}

static void conn_process_loop(conn *c);

static void conn_process(conn *c)
{
    c->in_process = 1;
    conn_process_loop(c);
    c->in_process = 0;
}

static void conn_process_loop(conn *c)
{
    sl_http_server *s = c->srv;
    while (!c->closing && c->state != ST_DISPATCHED && c->state != ST_LINGER &&
           c->parse_off < c->data_len) {
        if (c->state == ST_IDLE) {
            reset_request(c);
            http_parser_init(&c->parser, HTTP_REQUEST);
            c->parser.data = c;
            c->req_start = c->parse_off;
            c->req.start_ns = (int64_t)uv_hrtime();
            c->state = ST_HEADERS;
            tl_set(c, TL_HEADERS);
        }
        if (c->parse_off == c->req_start && !s->no_fast && try_fast(c)) {
            if (answer_error(c)) return;
            dispatch(c);
            continue;
        }
        size_t avail = c->data_len - c->parse_off;
        size_t n = http_parser_execute(&c->parser, &s->settings, c->data + c->parse_off, avail);
        c->parse_off += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (answer_error(c)) return;
        if (e == HPE_PAUSED && c->message_done) {
            http_parser_pause(&c->parser, 0);
            dispatch(c);
            continue;
        }
        if (e != HPE_OK) {
            send_error(c, map_parser_error(c, e), http_errno_description(e));
            return;
        }
        if (c->parser.upgrade && c->message_done) {
            /* http-parser stops at an Upgrade; we serve the request and close. */
            dispatch(c);
            continue;
        }
        if (c->state == ST_HEADERS && c->data_len - c->req_start > s->lim.max_header_bytes + 4) {
            send_error(c, 431, "request header block too large");
            return;
        }
        if (n < avail && c->state != ST_DISPATCHED) {
            send_error(c, 400, "malformed request");
            return;
        }
    }
    if (c->closing || c->state == ST_LINGER) return;
    if (conn_keep(c) != 0) {
        send_error(c, 500, "out of memory");
        return;
    }
    if (c->state == ST_IDLE && c->data_len == 0) tl_set(c, TL_IDLE);
    conn_flush(c);
    conn_update_reading(c);
    if (s->draining && c->state == ST_IDLE && c->data_len == 0 && !c->writing && c->out_len == 0)
        conn_close(c);
}

/* ---- socket I/O ------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);

/* The stream calls, through TLS when the connection has it. */
static int io_read_start(conn *c)
{
    return c->tls ? sl_tls_stream_read_start(c->tls, on_alloc, on_read)
                  : uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static int io_read_stop(conn *c)
{
    return c->tls ? sl_tls_stream_read_stop(c->tls) : uv_read_stop((uv_stream_t *)&c->tcp);
}

static int io_try_write(conn *c, const uv_buf_t *b)
{
    return c->tls ? sl_tls_stream_try_write(c->tls, b, 1)
                  : uv_try_write((uv_stream_t *)&c->tcp, b, 1);
}

static int io_write(conn *c, const uv_buf_t *b, uv_write_cb cb)
{
    return c->tls ? sl_tls_stream_write(c->tls, &c->wreq, b, 1, cb)
                  : uv_write(&c->wreq, (uv_stream_t *)&c->tcp, b, 1, cb);
}

static void conn_free(conn *c)
{
    sl_http_server *s = c->srv;
    buf_give(s, c->buf, c->buf_cap);
    free(c->body);
    free(c->out);
    free(c->wbuf);
    free(c->headers);
    free(c);
    s->open_handles--;
    server_maybe_drained(s);
}

static void on_close(uv_handle_t *h)
{
    conn *c = h->data;
    c->handle_closed = 1;
    /* A handler still holding the request frees the memory when it answers. */
    if (!c->handler_pending) conn_free(c);
}

static void conn_close(conn *c)
{
    if (c->closing) return;
    tl_remove(c);
    if (c->handler_pending) c->req._cancelled = 1;
    /* A request whose headers the host saw, abandoned before it was dispatched:
     * report it (499, the client closed) so the host can release what it holds. */
    if (c->state == ST_BODY && c->srv->cbs.on_response)
        c->srv->cbs.on_response(&c->req, 499, 0, c->srv->cbs.data);
    c->closing = 1;
    sl_http_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
    if (c->data == s->rbuf) c->data = NULL;
    if (c->tls) {
        sl_tls_stream_close(c->tls, on_close); /* frees the wrapper */
        c->tls = NULL;
    } else {
        uv_close((uv_handle_t *)&c->tcp, on_close);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    conn *c = req->data;
    c->shutting_down = 0;
    /* Lingering close: keep reading (and discarding) until EOF or the linger deadline,
     * so the peer sees our response rather than a reset. */
    if (c->handler_pending || c->closing) return;
    if (!c->reading) conn_close(c);
}

static void on_write(uv_write_t *w, int status)
{
    conn *c = w->data;
    c->writing = 0;
    c->wbuf_len = 0;
    if (status < 0) {
        conn_close(c);
        return;
    }
    conn_flush(c);
    conn_update_reading(c);
    if (c->srv->draining && c->state == ST_IDLE && c->data_len == 0 && !c->writing &&
        c->out_len == 0)
        conn_close(c);
}

static void after_output_drained(conn *c)
{
    if (c->close_after_write && !c->shutting_down && !c->closing) {
        c->shutting_down = 1;
        c->sreq.data = c;
        if ((c->tls ? sl_tls_stream_shutdown(c->tls, &c->sreq, on_shutdown)
                    : uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown)) != 0) {
            c->shutting_down = 0;
            conn_close(c);
        }
    }
}

static void conn_flush(conn *c)
{
    if (c->writing || c->closing) return;
    if (c->out_len == 0) {
        after_output_drained(c);
        return;
    }
    uv_buf_t b = uv_buf_init(c->out, (unsigned)c->out_len);
    int n = io_try_write(c, &b);
    if (n == (int)c->out_len) {
        c->out_len = 0;
        after_output_drained(c);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        c->out_len = 0;
        conn_close(c);
        return;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    /* Swap: the unsent rest goes to wbuf for uv_write; out starts empty. */
    char *tmp = c->wbuf;
    size_t tcap = c->wbuf_cap;
    c->wbuf = c->out;
    c->wbuf_cap = c->out_cap;
    c->out = tmp;
    c->out_cap = tcap;
    c->wbuf_len = c->out_len - done;
    memmove(c->wbuf, c->wbuf + done, c->wbuf_len);
    c->out_len = 0;
    uv_buf_t wb = uv_buf_init(c->wbuf, (unsigned)c->wbuf_len);
    c->wreq.data = c;
    c->writing = 1;
    if (io_write(c, &wb, on_write) != 0) {
        c->writing = 0;
        conn_close(c);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    conn *c = h->data;
    sl_http_server *s = c->srv;
    if (c->buf && c->buf_len > 0 && c->state != ST_LINGER) {
        *b = uv_buf_init(c->buf + c->buf_len, (unsigned)(c->buf_cap - c->buf_len));
        return;
    }
    s->rbuf_busy = 1;
    *b = uv_buf_init(s->rbuf, READ_BUF_SIZE);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    conn *c = st->data;
    sl_http_server *s = c->srv;
    if (nread < 0) {
        s->rbuf_busy = 0;
        if (c->state == ST_HEADERS && nread == UV_EOF && c->data_len > c->req_start &&
            !c->close_after_write) {
            /* The client half-closed mid-request: nothing sensible can follow. */
            conn_close(c);
            return;
        }
        conn_close(c);
        return;
    }
    if (nread == 0) {
        s->rbuf_busy = 0;
        return;
    }
    if (c->state == ST_LINGER) {
        s->rbuf_busy = 0;
        return; /* discard */
    }
    if (b->base == s->rbuf) {
        c->data = s->rbuf;
        c->data_len = (size_t)nread;
        c->parse_off = 0;
        c->req_start = 0;
    } else {
        c->data = c->buf;
        c->buf_len += (size_t)nread;
        c->data_len = c->buf_len;
    }
    conn_process(c);
    s->rbuf_busy = 0;
    if (!c->closing && c->data == s->rbuf) {
        /* Everything parsed from the shared buffer was consumed or kept. */
        c->data = NULL;
        c->data_len = c->parse_off = 0;
    }
}

static void conn_update_reading(conn *c)
{
    if (c->closing) return;
    /* While a handler holds a request, keep reading as long as the connection's buffer has
     * room: pipelined bytes wait there unparsed, and an EOF tells us the client has gone (the
     * request is marked cancelled). Stopping and restarting reads instead cost an epoll_ctl
     * for every asynchronous answer (every proxied request). */
    int dispatched_room = c->state == ST_DISPATCHED && (!c->buf || c->buf_len < c->buf_cap);
    int want = (c->state != ST_DISPATCHED || dispatched_room) &&
               !(c->close_after_write && c->state != ST_LINGER) &&
               c->out_len + c->wbuf_len <= c->srv->lim.max_output_bytes;
    if (c->state == ST_LINGER) want = !c->handler_pending;
    if (want && !c->reading) {
        if (io_read_start(c) == 0) c->reading = 1;
    } else if (!want && c->reading) {
        io_read_stop(c);
        c->reading = 0;
    }
}

static void reject_close_cb(uv_handle_t *h)
{
    free(h);
}

static conn *conn_new(sl_http_server *s)
{
    conn *c = calloc(1, sizeof *c);
    size_t nh = s->lim.max_headers < MAX_HEADERS_CAP ? s->lim.max_headers : MAX_HEADERS_CAP;
    if (c) c->headers = calloc(nh, sizeof(sl_http_header));
    if (!c || !c->headers || uv_tcp_init(s->loop, &c->tcp) != 0) {
        if (c) free(c->headers);
        free(c);
        return NULL;
    }
    c->srv = s;
    c->tcp.data = c;
    c->tlist = TL_NONE;
    c->state = ST_IDLE;
    c->req._conn = c;
    s->open_handles++;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    return c;
}

static void conn_start(conn *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    if (c->srv->tls && sl_tls_stream_new(c->srv->tls, (uv_stream_t *)&c->tcp, &c->tls) != 0) {
        conn_close(c);
        return;
    }
    /* A new connection must send its first request within the header timeout. */
    tl_set(c, TL_HEADERS);
    conn_update_reading(c);
}

static void on_connection(uv_stream_t *ls, int status)
{
    sl_http_server *s = ls->data;
    if (status < 0) return;
    if (s->nconns >= s->lim.max_connections) {
        /* Refuse politely: a short 503 written without waiting, then close. */
        uv_tcp_t *t = malloc(sizeof *t);
        if (!t || uv_tcp_init(s->loop, t) != 0) {
            free(t);
            return;
        }
        t->data = s;
        if (uv_accept(ls, (uv_stream_t *)t) == 0) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                                       "Content-Length: 0\r\nConnection: close\r\n\r\n";
            uv_buf_t b = uv_buf_init((char *)busy, sizeof busy - 1);
            (void)uv_try_write((uv_stream_t *)t, &b, 1);
        }
        uv_close((uv_handle_t *)t, reject_close_cb);
        return;
    }
    conn *c = conn_new(s);
    if (!c) return;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    conn_start(c);
}

void sl_http_server_set_tls(sl_http_server *s, sl_tls_ctx *ctx)
{
    sl_tls_ctx *old = s->tls;
    s->tls = sl_tls_ctx_ref(ctx);
    sl_tls_ctx_unref(old);
}

const char *sl_http_req_peer_service(const sl_http_req *req)
{
    const conn *c = req->_conn;
    if (!c || !c->tls || req->_cancelled) return NULL;
    const char *p = sl_tls_conn_peer(sl_tls_stream_conn(c->tls));
    return p[0] ? p : NULL;
}

void sl__http_server_set_fast(sl_http_server *s, bool on)
{
    s->no_fast = !on;
}

size_t sl__http_server_fast_taken(const sl_http_server *s)
{
    return s->fast_taken;
}

int sl__http_server_adopt(sl_http_server *s, int fd)
{
    conn *c = conn_new(s);
    if (!c) return SL_ENOMEM;
    int rc = uv_tcp_open(&c->tcp, fd);
    if (rc != 0) {
        conn_close(c);
        return rc;
    }
    conn_start(c);
    return 0;
}

/* ---- server lifecycle ------------------------------------------------- */

int sl_http_server_new(uv_loop_t *loop, const sl_http_limits *lim, const sl_http_callbacks *cbs,
                       sl_http_server **out)
{
    sl_http_server *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    s->rbuf = malloc(READ_BUF_SIZE);
    if (!s->rbuf) {
        free(s);
        return SL_ENOMEM;
    }
    s->loop = loop;
    s->lim = *lim;
    if (s->lim.max_headers > MAX_HEADERS_CAP) s->lim.max_headers = MAX_HEADERS_CAP;
    s->cbs = *cbs;
    s->tl_ms[TL_IDLE] = lim->idle_timeout_ms;
    s->tl_ms[TL_HEADERS] = lim->header_timeout_ms;
    s->tl_ms[TL_BODY] = lim->body_timeout_ms;
    s->tl_ms[TL_LINGER] = lim->linger_ms;
    uint32_t min = UINT32_MAX;
    for (int i = 0; i < TL_COUNT; i++)
        if (s->tl_ms[i] < min) min = s->tl_ms[i];
    s->sweep_ms = min / 4 < 5 ? 5 : (min / 4 > 1000 ? 1000 : min / 4);
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_value = on_header_value;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    uv_timer_start(&s->sweep, sweep_cb, s->sweep_ms, s->sweep_ms);
    uv_unref((uv_handle_t *)&s->sweep);
    s->open_handles = 1;
    *out = s;
    return 0;
}

int sl_http_server_listen_fd(sl_http_server *s, int fd)
{
    int rc = uv_tcp_init(s->loop, &s->listener);
    if (rc != 0) return rc;
    s->listener.data = s;
    s->open_handles++;
    rc = uv_tcp_open(&s->listener, fd);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection);
    s->listening = 1;
    return rc;
}

size_t sl_http_server_connections(const sl_http_server *s)
{
    return s->nconns;
}

static void handle_closed(uv_handle_t *h)
{
    sl_http_server *s = h->data;
    s->open_handles--;
    server_maybe_drained(s);
}

static void server_maybe_drained(sl_http_server *s)
{
    if (s->draining && s->nconns == 0 && s->drain_cb) {
        void (*cb)(void *) = s->drain_cb;
        s->drain_cb = NULL;
        cb(s->drain_data);
    }
    if (s->closing && s->open_handles == 0) {
        void (*cb)(void *) = s->close_cb;
        void *data = s->close_data;
        free(s->rbuf);
        sl_tls_ctx_unref(s->tls);
        while (s->nspare > 0)
            free(s->spare[--s->nspare]);
        free(s);
        if (cb) cb(data);
    }
}

static void stop_listening(sl_http_server *s)
{
    if (s->listening) {
        s->listening = 0;
        uv_close((uv_handle_t *)&s->listener, handle_closed);
    }
}

void sl_http_server_drain(sl_http_server *s, void (*done)(void *), void *data)
{
    s->draining = 1;
    s->drain_cb = done;
    s->drain_data = data;
    stop_listening(s);
    conn *next;
    for (conn *c = s->conns; c; c = next) {
        next = c->next;
        if (c->state == ST_IDLE && c->data_len == 0 && !c->writing && c->out_len == 0)
            conn_close(c);
        else if (c->state == ST_HEADERS || c->state == ST_BODY)
            c->keep_alive = 0;
    }
    server_maybe_drained(s);
}

void sl_http_server_close(sl_http_server *s, void (*done)(void *), void *data)
{
    s->closing = 1;
    s->close_cb = done;
    s->close_data = data;
    s->drain_cb = NULL;
    stop_listening(s);
    conn *next;
    for (conn *c = s->conns; c; c = next) {
        next = c->next;
        conn_close(c); /* a handler's later answer finds a cancelled request */
    }
    uv_timer_stop(&s->sweep);
    uv_close((uv_handle_t *)&s->sweep, handle_closed);
}
