/*
 * The engine on a libuv stream. Ciphertext is read into a per-thread buffer
 * and fed to the engine at once; plaintext goes to the owner's alloc/read
 * callbacks exactly as uv_read_start would deliver it. Writes are encrypted
 * when made and the ciphertext written with the wrapper's own requests; the
 * owner's write callback runs when its ciphertext is written. Bytes written
 * before the handshake completes (a client's first request) wait for it.
 *
 * stream->data holds the wrapper; around every owner callback it holds the
 * owner's data again, so the owner's callbacks need no change.
 */
#include "tls_int.h"

#include <stdlib.h>
#include <string.h>

#define RAW_BUF_SIZE (64 * 1024)

static _Thread_local char raw_buf[RAW_BUF_SIZE];

typedef struct wop {
    uv_write_t raw;
    sl_tls_stream *ts;
    uv_write_t *user;
    uv_write_cb cb;
    size_t len;
    char data[];
} wop;

typedef struct early {
    struct early *next;
    uv_write_t *user;
    uv_write_cb cb;
    size_t len;
    char data[];
} early;

struct sl_tls_stream {
    sl_tls_conn *conn;
    uv_stream_t *stream;
    void *owner;
    uv_alloc_cb alloc_cb;
    uv_read_cb read_cb;
    bool reading, raw_reading;
    bool closing, failed_told, eof_told;
    ssize_t eof; /* a raw read error or EOF not yet told to the owner */
    uv_idle_t pump;
    bool pump_on;
    int in_pump;
    int open;
    uint64_t writes; /* raw writes in flight */
    early *early_head, *early_tail;
    uv_close_cb close_cb;
};

static void pump(sl_tls_stream *ts);

/* Owner callbacks see the owner's data. */
#define AS_OWNER(ts, call)                                                                         \
    do {                                                                                           \
        (ts)->stream->data = (ts)->owner;                                                          \
        call;                                                                                      \
        (ts)->stream->data = (ts);                                                                 \
    } while (0)

static void raw_write_cb(uv_write_t *w, int status)
{
    wop *op = w->data;
    sl_tls_stream *ts = op->ts;
    ts->writes--;
    if (op->user) AS_OWNER(ts, op->cb(op->user, status));
    free(op);
}

/* Writes all pending ciphertext; `user`/`cb` (may be NULL) are called when it is written. */
static int flush_out(sl_tls_stream *ts, uv_write_t *user, uv_write_cb cb, bool try_first)
{
    size_t n = sl_tls_conn_out_pending(ts->conn);
    if (n == 0 && !user) return 0;
    wop *op = malloc(sizeof *op + n);
    if (!op) return UV_ENOMEM;
    op->ts = ts;
    op->user = user;
    op->cb = cb;
    op->len = sl_tls_conn_out(ts->conn, op->data, n);
    size_t off = 0;
    if (try_first && !user && ts->stream->write_queue_size == 0 && op->len > 0) {
        uv_buf_t b = uv_buf_init(op->data, (unsigned)op->len);
        int r = uv_try_write(ts->stream, &b, 1);
        if (r > 0) off = (size_t)r;
        if (off == op->len) {
            free(op);
            return 0;
        }
    }
    if (user) user->handle = ts->stream;
    uv_buf_t b = uv_buf_init(op->data + off, (unsigned)(op->len - off));
    op->raw.data = op;
    int rc = uv_write(&op->raw, ts->stream, &b, 1, raw_write_cb);
    if (rc != 0) {
        free(op);
        return rc;
    }
    ts->writes++;
    return 0;
}

static void update_raw_reading(sl_tls_stream *ts);

static void raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)h;
    (void)hint;
    *b = uv_buf_init(raw_buf, RAW_BUF_SIZE);
}

static void raw_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    sl_tls_stream *ts = s->data;
    if (nread == 0 || ts->closing) return;
    if (nread > 0) {
        if (sl_tls_conn_feed(ts->conn, b->base, (size_t)nread) != 0) ts->eof = UV_ENOMEM;
    } else {
        ts->eof = nread;
        uv_read_stop(s);
        ts->raw_reading = false;
    }
    pump(ts);
}

static void pump_cb(uv_idle_t *h)
{
    sl_tls_stream *ts = h->data;
    uv_idle_stop(h);
    ts->pump_on = false;
    pump(ts);
}

static void tell(sl_tls_stream *ts, ssize_t n, const uv_buf_t *b)
{
    uv_buf_t none = uv_buf_init(NULL, 0);
    AS_OWNER(ts, ts->read_cb(ts->stream, n, b ? b : &none));
}

static void pump(sl_tls_stream *ts)
{
    if (ts->in_pump || ts->closing) return;
    ts->in_pump = 1;
    if (!sl_tls_conn_established(ts->conn)) {
        int rc = sl_tls_conn_handshake(ts->conn);
        (void)flush_out(ts, NULL, NULL, true);
        if (rc == 0) {
            /* Bytes the owner wrote before the handshake completed go now, in order. */
            while (ts->early_head && !ts->closing) {
                early *e = ts->early_head;
                ts->early_head = e->next;
                if (!ts->early_head) ts->early_tail = NULL;
                int wr = sl_tls_conn_write(ts->conn, e->data, e->len);
                if (wr != 0 || flush_out(ts, e->user, e->cb, false) != 0) {
                    ts->early_head = e; /* cancelled at close */
                    if (!ts->early_tail) ts->early_tail = e;
                    break;
                }
                free(e);
            }
        } else if (rc != SL_EAGAIN) {
            if (ts->reading && !ts->failed_told) {
                ts->failed_told = true;
                tell(ts, UV_EPROTO, NULL);
            }
            ts->in_pump = 0;
            return;
        }
    }
    while (sl_tls_conn_established(ts->conn) && ts->reading && !ts->closing &&
           sl__tls_conn_has_input(ts->conn)) {
        uv_buf_t b = uv_buf_init(NULL, 0);
        AS_OWNER(ts, ts->alloc_cb((uv_handle_t *)ts->stream, RAW_BUF_SIZE, &b));
        if (!b.base || b.len == 0) {
            tell(ts, UV_ENOBUFS, &b);
            break;
        }
        size_t n = 0;
        int rc = sl_tls_conn_read(ts->conn, b.base, b.len, &n);
        if (rc == 0) {
            tell(ts, (ssize_t)n, &b);
        } else if (rc == SL_EAGAIN) {
            tell(ts, 0, &b);
            break;
        } else {
            ts->failed_told = true;
            tell(ts, rc == SL_ECLOSED ? UV_EOF : UV_EPROTO, &b);
            ts->eof_told = true;
            break;
        }
    }
    if (!ts->closing) (void)flush_out(ts, NULL, NULL, true); /* tickets, alerts, key updates */
    if (!ts->closing && ts->eof && ts->reading && !ts->eof_told &&
        !(sl_tls_conn_established(ts->conn) && sl__tls_conn_has_input(ts->conn))) {
        ts->eof_told = true;
        tell(ts, ts->eof == UV_EOF ? UV_EOF : ts->eof, NULL);
    }
    ts->in_pump = 0;
}

static void update_raw_reading(sl_tls_stream *ts)
{
    bool want = ts->reading && !ts->closing && !ts->eof;
    if (want && !ts->raw_reading) {
        if (uv_read_start(ts->stream, raw_alloc, raw_read) == 0) ts->raw_reading = true;
    } else if (!want && ts->raw_reading) {
        uv_read_stop(ts->stream);
        ts->raw_reading = false;
    }
}

int sl_tls_stream_new(sl_tls_ctx *ctx, uv_stream_t *stream, sl_tls_stream **out)
{
    sl_tls_stream *ts = calloc(1, sizeof *ts);
    if (!ts) return SL_ENOMEM;
    int rc = sl_tls_conn_new(ctx, &ts->conn);
    if (rc != 0) {
        free(ts);
        return rc;
    }
    if (uv_idle_init(stream->loop, &ts->pump) != 0) {
        sl_tls_conn_free(ts->conn);
        free(ts);
        return SL_ENOMEM;
    }
    ts->pump.data = ts;
    ts->stream = stream;
    ts->owner = stream->data;
    stream->data = ts;
    *out = ts;
    /* A client speaks first. */
    if (!ctx->server) {
        int hs = sl_tls_conn_handshake(ts->conn);
        (void)hs; /* SL_EAGAIN until the server answers; a failure is told at the first read */
        (void)flush_out(ts, NULL, NULL, true);
    }
    return 0;
}

int sl_tls_stream_read_start(sl_tls_stream *ts, uv_alloc_cb alloc_cb, uv_read_cb read_cb)
{
    if (ts->closing) return UV_EINVAL;
    ts->alloc_cb = alloc_cb;
    ts->read_cb = read_cb;
    ts->reading = true;
    update_raw_reading(ts);
    /* Plaintext left over from when the owner stopped reading, or an end not told yet. */
    if (!ts->pump_on && (sl__tls_conn_has_input(ts->conn) || (ts->eof && !ts->eof_told))) {
        ts->pump_on = true;
        uv_idle_start(&ts->pump, pump_cb);
    }
    return 0;
}

int sl_tls_stream_read_stop(sl_tls_stream *ts)
{
    ts->reading = false;
    update_raw_reading(ts);
    return 0;
}

int sl_tls_stream_try_write(sl_tls_stream *ts, const uv_buf_t bufs[], unsigned nbufs)
{
    if (ts->closing) return UV_EPIPE;
    /* Like uv_try_write, nothing is taken while earlier bytes wait: the owner's own write
     * request then tracks them, so its back-pressure (unsent output) keeps working. */
    if (!sl_tls_conn_established(ts->conn) || ts->early_head || ts->stream->write_queue_size > 0)
        return UV_EAGAIN;
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++) {
        if (sl_tls_conn_write(ts->conn, bufs[i].base, bufs[i].len) != 0) return UV_EPROTO;
        total += bufs[i].len;
    }
    int rc = flush_out(ts, NULL, NULL, true);
    return rc != 0 ? rc : (int)total;
}

int sl_tls_stream_write(sl_tls_stream *ts, uv_write_t *req, const uv_buf_t bufs[], unsigned nbufs,
                        uv_write_cb cb)
{
    if (ts->closing) return UV_EPIPE;
    if (sl_tls_conn_established(ts->conn) && !ts->early_head) {
        for (unsigned i = 0; i < nbufs; i++)
            if (sl_tls_conn_write(ts->conn, bufs[i].base, bufs[i].len) != 0) return UV_EPROTO;
        return flush_out(ts, req, cb, false);
    }
    size_t total = 0;
    for (unsigned i = 0; i < nbufs; i++)
        total += bufs[i].len;
    early *e = malloc(sizeof *e + total);
    if (!e) return UV_ENOMEM;
    e->next = NULL;
    e->user = req;
    e->cb = cb;
    e->len = 0;
    for (unsigned i = 0; i < nbufs; i++) {
        memcpy(e->data + e->len, bufs[i].base, bufs[i].len);
        e->len += bufs[i].len;
    }
    req->handle = ts->stream;
    if (ts->early_tail)
        ts->early_tail->next = e;
    else
        ts->early_head = e;
    ts->early_tail = e;
    return 0;
}

int sl_tls_stream_shutdown(sl_tls_stream *ts, uv_shutdown_t *req, uv_shutdown_cb cb)
{
    if (ts->closing) return UV_EINVAL;
    sl_tls_conn_shutdown(ts->conn);
    (void)flush_out(ts, NULL, NULL, false);
    return uv_shutdown(req, ts->stream, cb);
}

static void closed_cb(uv_handle_t *h)
{
    sl_tls_stream *ts = h->data;
    if (--ts->open > 0) return;
    /* Writes that never went out are cancelled, before the close callback, as libuv does. */
    while (ts->early_head) {
        early *e = ts->early_head;
        ts->early_head = e->next;
        e->cb(e->user, UV_ECANCELED);
        free(e);
    }
    ts->stream->data = ts->owner;
    uv_close_cb cb = ts->close_cb;
    uv_stream_t *s = ts->stream;
    sl_tls_conn_free(ts->conn);
    free(ts);
    if (cb) cb((uv_handle_t *)s);
}

void sl_tls_stream_close(sl_tls_stream *ts, uv_close_cb cb)
{
    if (ts->closing) return;
    ts->closing = true;
    ts->close_cb = cb;
    ts->open = 2;
    ts->stream->data = ts;
    uv_close((uv_handle_t *)ts->stream, closed_cb);
    uv_close((uv_handle_t *)&ts->pump, closed_cb);
}

const sl_tls_conn *sl_tls_stream_conn(const sl_tls_stream *ts)
{
    return ts->conn;
}
