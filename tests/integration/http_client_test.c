/*
 * The HTTP client over real sockets against a test upstream in the same
 * process: a small raw HTTP/1.1 server on the same libuv loop whose
 * behaviour is chosen by the request path (ok, fail, 503 with Retry-After,
 * flaky, hang, slow, close mid-response, oversize, Connection: close). It
 * counts accepted connections and hits, and keeps the last request's bytes,
 * so each test checks what the upstream really saw: the breaker stops the
 * traffic, the retry budget bounds the load, connections are reused.
 *
 * Every test ends by closing the upstream and the server and closing the
 * loop, which fails if any handle was left open (and LeakSanitizer, in the
 * asan build, reports any allocation left behind).
 */
#include <shoal/http_client.h>
#include <shoal/log.h>
#include <shoal/metrics.h>
#include <shoal/trace.h>

#include <http_parser.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <cmocka.h>

/* ---- the test upstream ------------------------------------------------- */

typedef struct tsrv tsrv;

typedef struct tconn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* /slow */
    tsrv *s;
    http_parser p;
    char url[256];
    size_t url_len;
    char raw[8192]; /* the current request's bytes */
    size_t raw_len;
    struct tconn *next;
    int closing;
} tconn;

struct tsrv {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    int accepts;
    int hits;
    int flaky_left;  /* /flaky answers 503 this many times, then 200 */
    int healthy;     /* /maybe answers 200 when set, 500 otherwise */
    char last[8192]; /* bytes of the last complete request */
    size_t last_len;
    tconn *conns;
    int open;
};

static http_parser_settings tsrv_settings;

static void tconn_closed(uv_handle_t *h)
{
    tconn *c = h->data;
    if (--c->closing == 0) {
        c->s->open--;
        free(c);
    }
}

static void tconn_close(tconn *c)
{
    if (c->closing) return;
    tsrv *s = c->s;
    for (tconn **pp = &s->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    c->closing = 2;
    uv_close((uv_handle_t *)&c->tcp, tconn_closed);
    uv_close((uv_handle_t *)&c->timer, tconn_closed);
}

static void written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void written_close(uv_write_t *w, int status)
{
    (void)status;
    tconn *c = w->data;
    free(w);
    tconn_close(c);
}

static void send_raw(tconn *c, const char *bytes, size_t len, int close_after)
{
    uv_write_t *w = malloc(sizeof *w + len);
    char *copy = (char *)(w + 1);
    memcpy(copy, bytes, len);
    w->data = c;
    uv_buf_t b = uv_buf_init(copy, (unsigned)len);
    if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, close_after ? written_close : written) != 0) {
        free(w);
        tconn_close(c);
    }
}

static void send_text(tconn *c, const char *text, int close_after)
{
    send_raw(c, text, strlen(text), close_after);
}

static void slow_fire(uv_timer_t *t)
{
    send_text(t->data, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow", 0);
}

static int path_is(const tconn *c, const char *p)
{
    size_t n = strlen(p);
    return c->url_len >= n && memcmp(c->url, p, n) == 0 && (c->url_len == n || c->url[n] == '?');
}

static void respond(tconn *c)
{
    tsrv *s = c->s;
    s->hits++;
    memcpy(s->last, c->raw, c->raw_len);
    s->last_len = c->raw_len;
    if (path_is(c, "/ok")) {
        send_text(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0);
    } else if (path_is(c, "/okhead")) {
        send_text(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", 0);
    } else if (path_is(c, "/fail")) {
        send_text(c, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail", 0);
    } else if (path_is(c, "/unavail")) {
        send_text(c,
                  "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n",
                  0);
    } else if (path_is(c, "/flaky")) {
        if (s->flaky_left > 0) {
            s->flaky_left--;
            send_text(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", 0);
        } else {
            send_text(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfixed", 0);
        }
    } else if (path_is(c, "/maybe")) {
        send_text(c,
                  s->healthy ? "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                             : "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
                  0);
    } else if (path_is(c, "/slow")) {
        uv_timer_start(&c->timer, slow_fire, 100, 0);
    } else if (path_is(c, "/midclose")) {
        send_text(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", 1);
    } else if (path_is(c, "/close")) {
        send_text(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye", 1);
    } else if (path_is(c, "/big")) {
        /* 300 KiB in two chunks: over a 256 KiB limit only once the second arrives. */
        size_t half = 150 * 1024;
        char *b = malloc(half * 2 + 256);
        int n = sprintf(b, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n", half);
        memset(b + n, 'a', half);
        n += (int)half;
        n += sprintf(b + n, "\r\n%zx\r\n", half);
        memset(b + n, 'b', half);
        n += (int)half;
        n += sprintf(b + n, "\r\n0\r\n\r\n");
        send_raw(c, b, (size_t)n, 0);
        free(b);
    } else if (path_is(c, "/hang")) {
        /* never answers */
    } else {
        send_text(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 0);
    }
}

static int ts_url(http_parser *p, const char *at, size_t len)
{
    tconn *c = p->data;
    if (c->url_len + len < sizeof c->url) {
        memcpy(c->url + c->url_len, at, len);
        c->url_len += len;
    }
    return 0;
}

static int ts_complete(http_parser *p)
{
    tconn *c = p->data;
    respond(c);
    c->url_len = 0;
    c->raw_len = 0;
    return 0;
}

static void ts_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(hint);
    b->len = hint;
}

static void ts_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    tconn *c = st->data;
    if (n < 0) {
        tconn_close(c);
    } else if (n > 0 && !c->closing) {
        size_t room = sizeof c->raw - c->raw_len;
        size_t k = (size_t)n < room ? (size_t)n : room;
        memcpy(c->raw + c->raw_len, b->base, k);
        c->raw_len += k;
        size_t done = http_parser_execute(&c->p, &tsrv_settings, b->base, (size_t)n);
        if (done != (size_t)n) tconn_close(c);
    }
    free(b->base);
}

static void ts_accept(uv_stream_t *l, int status)
{
    tsrv *s = l->data;
    if (status < 0) return;
    tconn *c = calloc(1, sizeof *c);
    c->s = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        c->closing = 2;
        s->open++;
        uv_close((uv_handle_t *)&c->tcp, tconn_closed);
        uv_close((uv_handle_t *)&c->timer, tconn_closed);
        return;
    }
    s->accepts++;
    s->open++;
    http_parser_init(&c->p, HTTP_REQUEST);
    c->p.data = c;
    c->next = s->conns;
    s->conns = c;
    uv_read_start((uv_stream_t *)&c->tcp, ts_alloc, ts_read);
}

static void tsrv_start(tsrv *s, uv_loop_t *loop)
{
    memset(s, 0, sizeof *s);
    tsrv_settings.on_url = ts_url;
    tsrv_settings.on_message_complete = ts_complete;
    s->loop = loop;
    s->healthy = 1;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&s->listener, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 128, ts_accept), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void tsrv_stop(tsrv *s)
{
    while (s->conns)
        tconn_close(s->conns);
    uv_close((uv_handle_t *)&s->listener, NULL);
}

/* ---- fixture ----------------------------------------------------------- */

typedef struct fx {
    uv_loop_t loop;
    tsrv srv;
    sl_upstream *up;
    sl_upstream_config cfg;
    char ep[64];
    const char *eps[1];
    sl_fake_clock fake;
    sl_rand rand;
    sl_metrics *metrics;
    int up_closed;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    tsrv_start(&f->srv, &f->loop);
    snprintf(f->ep, sizeof f->ep, "127.0.0.1:%d", f->srv.port);
    f->eps[0] = f->ep;
    sl_upstream_config_default(&f->cfg);
    f->cfg.name = "test";
    f->cfg.endpoints = f->eps;
    f->cfg.nendpoints = 1;
    f->cfg.retry.base_ms = 1; /* short backoffs keep the suite fast */
    f->cfg.retry.cap_ms = 5;
    sl_rand_seed(&f->rand, 42);
    sl_fake_clock_init(&f->fake, (int64_t)1767225600 * 1000000000);
    assert_int_equal(sl_metrics_new(1, &f->metrics), 0);
    *state = f;
    return 0;
}

static void up_done(void *data)
{
    ((fx *)data)->up_closed = 1;
}

static void run_until(fx *f, const int *flag, int target);

static int teardown(void **state)
{
    fx *f = *state;
    if (f->up) {
        sl_upstream_close(f->up, up_done, f);
        run_until(f, &f->up_closed, 1);
    }
    tsrv_stop(&f->srv);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&f->loop); /* UV_EBUSY if any handle was left open */
    sl_metrics_free(f->metrics);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void guard_fire(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Runs the loop until *flag >= target; fails the test after 10 s. */
static void run_until(fx *f, const int *flag, int target)
{
    uv_timer_t guard;
    int expired = 0;
    uv_timer_init(&f->loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, guard_fire, 10000, 0);
    uv_unref((uv_handle_t *)&guard);
    while (*flag < target && !expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_false(expired);
}

/* Runs the loop for `ms` of real time (to let a server-side event happen). */
static void run_for(fx *f, int ms)
{
    uv_timer_t t;
    int fired = 0;
    uv_timer_init(&f->loop, &t);
    t.data = &fired;
    uv_timer_start(&t, guard_fire, (uint64_t)ms, 0);
    while (!fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void make_upstream(fx *f, int fake_clock)
{
    sl_upstream_env env = {.loop = &f->loop,
                           .clock = fake_clock ? &f->fake.clock : NULL,
                           .rand = &f->rand,
                           .metrics = f->metrics,
                           .shard = 0};
    assert_int_equal(sl_upstream_new(&f->cfg, &env, &f->up), 0);
}

typedef struct box {
    int done;
    int error;
    sl_http_result_kind kind;
    int status;
    char body[64];
    size_t body_len;
    uint32_t attempts;
    int64_t retry_after_ms;
    int *counter;
} box;

static void on_result(sl_http_handle *call, const sl_http_result *r, void *data)
{
    (void)call;
    box *b = data;
    b->done++;
    b->error = r->error;
    b->kind = r->kind;
    b->attempts = r->attempts;
    b->retry_after_ms = r->retry_after_ms;
    assert_true((r->kind == SL_HTTP_RESULT_OK) == (r->response != NULL));
    assert_true((r->kind == SL_HTTP_RESULT_OK) == (r->error == 0));
    if (r->response) {
        b->status = r->response->status;
        b->body_len = r->response->body.len;
        size_t n = b->body_len < sizeof b->body - 1 ? b->body_len : sizeof b->body - 1;
        memcpy(b->body, r->response->body.ptr, n);
        b->body[n] = '\0';
    }
    if (b->counter) (*b->counter)++;
}

static box call_wait(fx *f, sl_http_method m, const char *path, const sl_http_call_opts *opts)
{
    box b = {0};
    sl_http_request req = {.method = m, .target = {path, strlen(path)}};
    assert_int_equal(sl_http_call(f->up, &req, opts, on_result, &b, NULL), 0);
    assert_int_equal(b.done, 0); /* never synchronous */
    run_until(f, &b.done, 1);
    return b;
}

/* ---- tests ------------------------------------------------------------- */

static void test_reuse_and_head(void **state)
{
    fx *f = *state;
    make_upstream(f, 0);
    for (int i = 0; i < 20; i++) {
        box b = call_wait(f, SL_HTTP_GET, "/ok", NULL);
        assert_int_equal(b.kind, SL_HTTP_RESULT_OK);
        assert_int_equal(b.status, 200);
        assert_string_equal(b.body, "ok");
    }
    /* A response to HEAD has no body even with Content-Length; the connection stays usable. */
    box h = call_wait(f, SL_HTTP_HEAD, "/okhead", NULL);
    assert_int_equal(h.status, 200);
    assert_int_equal(h.body_len, 0);
    box b = call_wait(f, SL_HTTP_GET, "/ok", NULL);
    assert_int_equal(b.status, 200);
    assert_int_equal(f->srv.accepts, 1);
    assert_int_equal(f->srv.hits, 22);
    sl_upstream_stats st;
    sl_upstream_stats_get(f->up, &st);
    assert_int_equal(st.connections_opened, 1);
    assert_int_equal(st.connections_reused, 21);
    assert_int_equal(st.connections_idle, 1);

    /* Ten at once need ten connections; after that they are all reused. */
    int done = 0;
    box bs[10];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 10; i++) {
            bs[i] = (box){.counter = &done};
            sl_http_request req = {.method = SL_HTTP_GET, .target = {"/ok", 3}};
            assert_int_equal(sl_http_call(f->up, &req, NULL, on_result, &bs[i], NULL), 0);
        }
        run_until(f, &done, 10 * (round + 1));
        for (int i = 0; i < 10; i++)
            assert_int_equal(bs[i].status, 200);
    }
    assert_int_equal(f->srv.accepts, 10);
}

static void test_connection_close_honoured(void **state)
{
    fx *f = *state;
    make_upstream(f, 0);
    for (int i = 0; i < 3; i++) {
        box b = call_wait(f, SL_HTTP_GET, "/close", NULL);
        assert_int_equal(b.status, 200);
        assert_string_equal(b.body, "bye");
    }
    assert_int_equal(f->srv.accepts, 3); /* never reused after Connection: close */
}

static void test_propagation(void **state)
{
    fx *f = *state;
    make_upstream(f, 0);
    sl_trace_ctx parent;
    assert_int_equal(sl_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                          55, &parent),
                     0);
    sl_deadline dl = sl_deadline_after(sl_clock_system(), 3000);
    sl_http_call_opts o = {.timeout_ms = 60000,
                           .deadline = &dl,
                           .trace = &parent,
                           .request_id = "rid-7",
                           .idempotency_key = "idem-1",
                           .tracestate = SL_SLICE_LIT("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")};
    sl_http_header hs[] = {{{"Connection", 10}, {"x-secret", 8}},
                           {{"X-Secret", 8}, {"hop", 3}},
                           {{"Accept", 6}, {"text/plain", 10}}};
    sl_http_request req = {.method = SL_HTTP_POST,
                           .target = {"/ok", 3},
                           .headers = hs,
                           .nheaders = 3,
                           .body = "abc",
                           .body_len = 3};
    box b = {0};
    assert_int_equal(sl_http_call(f->up, &req, &o, on_result, &b, NULL), 0);
    run_until(f, &b.done, 1);
    assert_int_equal(b.status, 200);
    f->srv.last[f->srv.last_len] = '\0';
    const char *raw = f->srv.last;
    char host[64];
    snprintf(host, sizeof host, "POST /ok HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", f->srv.port);
    assert_memory_equal(raw, host, strlen(host));
    assert_non_null(strstr(raw, "\r\nAccept: text/plain\r\n"));
    assert_null(strstr(raw, "ecret")); /* named by Connection: hop-by-hop */
    assert_null(strstr(raw, "Connection"));
    assert_non_null(strstr(raw, "\r\nx-request-id: rid-7\r\n"));
    assert_non_null(strstr(raw, "\r\nidempotency-key: idem-1\r\n"));
    assert_non_null(strstr(raw, "\r\nContent-Length: 3\r\n\r\nabc"));
    /* Same trace, a new span id, sampled flag kept. */
    const char *tp = strstr(raw, "\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-");
    assert_non_null(tp);
    tp += strlen("\r\ntraceparent: ");
    assert_memory_not_equal(tp + 36, "00f067aa0ba902b7", 16);
    assert_memory_equal(tp + 52, "-01\r\n", 5);
    /* The caller's tracestate travels beside it, unchanged. */
    assert_non_null(strstr(raw, "\r\ntracestate: rojo=00f067aa0ba902b7,congo=t61rcWkgMzE\r\n"));
    /* The remaining budget: the caller's 3 s deadline, not the 60 s timeout. */
    const char *d = strstr(raw, "\r\nx-shoal-deadline-ms: ");
    assert_non_null(d);
    long ms = strtol(d + strlen("\r\nx-shoal-deadline-ms: "), NULL, 10);
    assert_true(ms > 0 && ms <= 3000);

    /* An invalid tracestate is dropped whole (W3C Trace Context §3.3.1.1); without a trace
     * context none is sent either. */
    sl_http_call_opts bad_ts = {.trace = &parent, .tracestate = SL_SLICE_LIT("Rojo=1,=x")};
    box b2 = {0};
    assert_int_equal(sl_http_call(f->up, &req, &bad_ts, on_result, &b2, NULL), 0);
    run_until(f, &b2.done, 1);
    assert_int_equal(b2.status, 200);
    f->srv.last[f->srv.last_len] = '\0';
    assert_non_null(strstr(f->srv.last, "\r\ntraceparent: "));
    assert_null(strstr(f->srv.last, "tracestate"));
    sl_http_call_opts no_tc = {.tracestate = SL_SLICE_LIT("rojo=1")};
    b2 = (box){0};
    assert_int_equal(sl_http_call(f->up, &req, &no_tc, on_result, &b2, NULL), 0);
    run_until(f, &b2.done, 1);
    f->srv.last[f->srv.last_len] = '\0';
    assert_null(strstr(f->srv.last, "tracestate"));

    /* A header value with CR/LF is refused synchronously: the callback never runs. */
    sl_http_header bad = {{"X-A", 3}, {"a\r\nX-Injected: 1", 17}};
    sl_http_request breq = {
        .method = SL_HTTP_GET, .target = {"/ok", 3}, .headers = &bad, .nheaders = 1};
    box nb = {0};
    assert_int_equal(sl_http_call(f->up, &breq, NULL, on_result, &nb, NULL), SL_EINVAL);
    sl_http_request t2 = {.method = SL_HTTP_GET, .target = {"/a b", 4}};
    assert_int_equal(sl_http_call(f->up, &t2, NULL, on_result, &nb, NULL), SL_EINVAL);
    sl_http_call_opts bad_id = {.request_id = "x\ny"};
    assert_int_equal(sl_http_call(f->up, &req, &bad_id, on_result, &nb, NULL), SL_EINVAL);
    run_for(f, 20);
    assert_int_equal(nb.done, 0);
    assert_int_equal(f->srv.hits, 3);
}

/* The span's attribute `key`; fails the test when absent. */
static const sl_span_attr *span_attr(const sl_span_data *sp, const char *key)
{
    for (uint32_t i = 0; i < sp->n_attrs; i++)
        if (strcmp(sp->attrs[i].key, key) == 0) return &sp->attrs[i];
    fail_msg("span %s has no attribute %s", sp->name, key);
    return NULL;
}

static void keep_span(const sl_span_data *span, void *data)
{
    sl_span_data *out = data;
    if (out[0].name[0] == '\0')
        out[0] = *span;
    else
        out[1] = *span;
}

/* With a tracer, each attempt is a CLIENT span named "HTTP <method>", child of the caller's
 * span, and the traceparent sent upstream carries that span's id. */
static void test_client_spans(void **state)
{
    fx *f = *state;
    sl_tracer_config tc;
    sl_tracer_config_init(&tc);
    tc.service = "caller";
    tc.clock = sl_clock_system();
    tc.rand = &f->rand;
    sl_tracer *t = NULL;
    assert_int_equal(sl_tracer_new(&tc, &t), 0);
    sl_upstream_env env = {.loop = &f->loop, .rand = &f->rand, .tracer = t};
    assert_int_equal(sl_upstream_new(&f->cfg, &env, &f->up), 0);
    sl_trace_ctx parent;
    assert_int_equal(sl_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                          55, &parent),
                     0);
    sl_http_call_opts o = {.trace = &parent};
    box b = call_wait(f, SL_HTTP_POST, "/ok?x=1", &o);
    assert_int_equal(b.status, 200);
    f->srv.last[f->srv.last_len] = '\0';
    const char *tp = strstr(f->srv.last, "\r\ntraceparent: ");
    assert_non_null(tp);
    sl_trace_ctx sent;
    assert_int_equal(sl_traceparent_parse(tp + strlen("\r\ntraceparent: "), 55, &sent), 0);
    b = call_wait(f, SL_HTTP_GET, "/ok", &o);
    assert_int_equal(b.status, 200);
    sl_span_data spans[2];
    memset(spans, 0, sizeof spans);
    assert_int_equal(sl_tracer_drain(t, keep_span, spans, 10), 2);
    assert_string_equal(spans[0].name, "HTTP POST");
    assert_string_equal(spans[1].name, "HTTP GET");
    assert_int_equal(spans[0].kind, SL_SPAN_CLIENT);
    assert_memory_equal(spans[0].ctx.trace_id, parent.trace_id, SL_TRACE_ID_LEN);
    assert_memory_equal(spans[0].parent_span_id, parent.span_id, SL_SPAN_ID_LEN);
    assert_memory_equal(sent.span_id, spans[0].ctx.span_id, SL_SPAN_ID_LEN);
    /* Semantic-convention attributes of a client span. */
    const char *want_str[][2] = {
        {"http.request.method", "POST"}, {"server.address", "127.0.0.1"}, {"url.path", "/ok"}};
    for (size_t k = 0; k < SL_ARRAY_LEN(want_str); k++)
        assert_string_equal(span_attr(&spans[0], want_str[k][0])->s, want_str[k][1]);
    assert_int_equal(span_attr(&spans[0], "server.port")->i, f->srv.port);
    assert_int_equal(span_attr(&spans[0], "http.response.status_code")->i, 200);
    assert_int_equal(spans[0].status, SL_SPAN_STATUS_UNSET);
    /* A failed call: error.type names the status code, and the span is an error. */
    b = call_wait(f, SL_HTTP_GET, "/fail", &o);
    assert_int_equal(b.status, 500);
    sl_span_data failed[2];
    memset(failed, 0, sizeof failed);
    assert_true(sl_tracer_drain(t, keep_span, failed, 10) >= 1);
    assert_string_equal(span_attr(&failed[0], "url.path")->s, "/fail");
    assert_int_equal(span_attr(&failed[0], "http.response.status_code")->i, 500);
    assert_string_equal(span_attr(&failed[0], "error.type")->s, "500");
    assert_int_equal(failed[0].status, SL_SPAN_STATUS_ERROR);
    sl_upstream_close(f->up, up_done, f); /* before the tracer it borrows */
    run_until(f, &f->up_closed, 1);
    f->up = NULL;
    sl_tracer_free(t);
}

static void test_breaker_opens_and_recovers(void **state)
{
    fx *f = *state;
    f->cfg.retry.max_retries = 0;
    f->cfg.breaker.failure_threshold = 5;
    f->cfg.breaker.recovery_timeout_ms = 30000;
    f->cfg.breaker.half_open_max_calls = 2;
    make_upstream(f, 1); /* the policies run on the fake clock: time moves only when told */
    f->srv.healthy = 0;
    for (int i = 0; i < 5; i++) {
        box b = call_wait(f, SL_HTTP_GET, "/maybe", NULL);
        assert_int_equal(b.kind, SL_HTTP_RESULT_OK);
        assert_int_equal(b.status, 500);
    }
    assert_int_equal(sl_breaker_state_peek(sl_upstream_breaker(f->up)), SL_BREAKER_OPEN);
    /* Open: calls fail fast with a Retry-After suggestion, and the upstream sees nothing. */
    for (int i = 0; i < 20; i++) {
        box b = call_wait(f, SL_HTTP_GET, "/maybe", NULL);
        assert_int_equal(b.kind, SL_HTTP_RESULT_BREAKER_OPEN);
        assert_int_equal(b.error, SL_EUNAVAIL);
        assert_int_equal(b.attempts, 0);
        assert_true(b.retry_after_ms > 0 && b.retry_after_ms <= 30000);
    }
    assert_int_equal(f->srv.hits, 5);
    /* After the recovery timeout: half-open trials reach the healed upstream, then closed. */
    f->srv.healthy = 1;
    sl_fake_clock_advance(&f->fake, (int64_t)30001 * 1000000);
    for (int i = 0; i < 2; i++) {
        box b = call_wait(f, SL_HTTP_GET, "/maybe", NULL);
        assert_int_equal(b.status, 200);
    }
    assert_int_equal(sl_breaker_state_peek(sl_upstream_breaker(f->up)), SL_BREAKER_CLOSED);
    assert_int_equal(f->srv.hits, 7);
    sl_upstream_stats st;
    sl_upstream_stats_get(f->up, &st);
    assert_int_equal(st.breaker_rejections, 20);

    /* The state gauge and transition counters are exported. */
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sl_metrics_render(f->metrics, &text, &len), 0);
    assert_non_null(strstr(text, "circuit_breaker_state{upstream=\"test\",worker=\"0\"} 0"));
    assert_non_null(strstr(text,
                           "circuit_breaker_transitions_total{upstream=\"test\",from=\"closed\","
                           "to=\"open\"} 1"));
    assert_non_null(strstr(text, "circuit_breaker_transitions_total{upstream=\"test\",from="
                                 "\"half_open\",to=\"closed\"} 1"));
    assert_non_null(strstr(text, "http_client_breaker_rejections_total{upstream=\"test\"} 20"));
    assert_non_null(strstr(text, "http_client_requests_total{upstream=\"test\",result=\"ok\"} 7"));
    free(text);
}

static void test_breaker_reopens_on_failed_trial(void **state)
{
    fx *f = *state;
    f->cfg.retry.max_retries = 0;
    f->cfg.breaker.failure_threshold = 3;
    make_upstream(f, 1);
    f->srv.healthy = 0;
    for (int i = 0; i < 3; i++)
        (void)call_wait(f, SL_HTTP_GET, "/maybe", NULL);
    assert_int_equal(sl_breaker_state_peek(sl_upstream_breaker(f->up)), SL_BREAKER_OPEN);
    sl_fake_clock_advance(&f->fake, (int64_t)31 * 1000000000);
    box b = call_wait(f, SL_HTTP_GET, "/maybe", NULL); /* the trial fails */
    assert_int_equal(b.status, 500);
    assert_int_equal(sl_breaker_state_peek(sl_upstream_breaker(f->up)), SL_BREAKER_OPEN);
    b = call_wait(f, SL_HTTP_GET, "/maybe", NULL);
    assert_int_equal(b.kind, SL_HTTP_RESULT_BREAKER_OPEN);
    assert_int_equal(f->srv.hits, 4);
}

static void test_retries_on_flaky_upstream(void **state)
{
    fx *f = *state;
    make_upstream(f, 0);
    f->srv.flaky_left = 2;
    box b = call_wait(f, SL_HTTP_GET, "/flaky", NULL);
    assert_int_equal(b.status, 200);
    assert_string_equal(b.body, "fixed");
    assert_int_equal(b.attempts, 3);
    assert_int_equal(f->srv.hits, 3);
    /* A POST without idempotency-key is never retried... */
    f->srv.flaky_left = 1;
    b = call_wait(f, SL_HTTP_POST, "/flaky", NULL);
    assert_int_equal(b.status, 503);
    assert_int_equal(b.attempts, 1);
    assert_int_equal(f->srv.hits, 4);
    /* ...with one it is. */
    f->srv.flaky_left = 1;
    sl_http_call_opts o = {.idempotency_key = "k-1"};
    b = call_wait(f, SL_HTTP_POST, "/flaky", &o);
    assert_int_equal(b.status, 200);
    assert_int_equal(b.attempts, 2);
    /* Retries give up after max_retries and hand back the last response. */
    b = call_wait(f, SL_HTTP_GET, "/unavail", NULL);
    assert_int_equal(b.status, 503);
    assert_int_equal(b.attempts, 4);
    sl_upstream_stats st;
    sl_upstream_stats_get(f->up, &st);
    assert_int_equal(st.retries, 2 + 1 + 3);
    assert_int_equal(f->srv.accepts, 1); /* 503s with Content-Length keep the connection */
}

typedef struct loadgen {
    fx *f;
    int started, done, total, ok;
    box b;
} loadgen;

static void load_next(loadgen *g);

static void load_cb(sl_http_handle *call, const sl_http_result *r, void *data)
{
    (void)call;
    loadgen *g = data;
    g->done++;
    if (r->kind == SL_HTTP_RESULT_OK && r->response->status == 503) g->ok++;
    load_next(g);
}

static void load_next(loadgen *g)
{
    if (g->started >= g->total) return;
    g->started++;
    sl_http_request req = {.method = SL_HTTP_GET, .target = {"/unavail", 8}};
    assert_int_equal(sl_http_call(g->f->up, &req, NULL, load_cb, g, NULL), 0);
}

static void test_dead_upstream_load_bounded(void **state)
{
    fx *f = *state;
    /* Every answer is a retryable 503; the breaker is off so only the budget limits retries.
     * The fake clock stands still, so the budget earns nothing from time: only its 10 saved
     * retries and 20 % of the requests. */
    f->cfg.breaker.failure_threshold = 0;
    f->cfg.breaker.failure_rate_pct = 0;
    f->cfg.bulkhead.max_concurrent = 64;
    make_upstream(f, 1);
    loadgen g = {.f = f, .total = 1000};
    for (int i = 0; i < 32; i++)
        load_next(&g);
    run_until(f, &g.done, g.total);
    assert_int_equal(g.ok, g.total);
    sl_upstream_stats st;
    sl_upstream_stats_get(f->up, &st);
    double ratio = (double)f->srv.hits / g.total;
    printf("dead upstream: %d requests, %d upstream hits (%.3fx), %llu budget refusals\n", g.total,
           f->srv.hits, ratio, (unsigned long long)st.budget_exhausted);
    assert_int_equal((uint64_t)f->srv.hits, st.attempts);
    assert_true(f->srv.hits <= g.total * 12 / 10 + 10); /* without the budget: up to 4x */
    assert_true(st.budget_exhausted > 0);
}

static void test_connect_refused(void **state)
{
    fx *f = *state;
    /* A port that was just free: nothing listens. */
    uv_tcp_t t;
    uv_tcp_init(&f->loop, &t);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&t, (const struct sockaddr *)&a, 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
    snprintf(f->ep, sizeof f->ep, "127.0.0.1:%d", ntohs(((struct sockaddr_in *)&ss)->sin_port));
    uv_close((uv_handle_t *)&t, NULL);
    f->cfg.breaker.failure_threshold = 0;
    make_upstream(f, 0);
    box b = call_wait(f, SL_HTTP_GET, "/ok", NULL);
    assert_int_equal(b.kind, SL_HTTP_RESULT_CONNECT);
    assert_int_equal(b.error, UV_ECONNREFUSED);
    assert_int_equal(b.attempts, 4); /* connect errors are retried: nothing reached the upstream */
}

static void test_resolution(void **state)
{
    fx *f = *state;
    snprintf(f->ep, sizeof f->ep, "localhost:%d", f->srv.port);
    make_upstream(f, 0);
    box b = call_wait(f, SL_HTTP_GET, "/ok", NULL);
    if (b.kind == SL_HTTP_RESULT_CONNECT) {
        /* localhost may resolve to ::1 first while the test server listens on IPv4 only. */
        fprintf(stderr, "localhost resolved to an address without a listener: %s\n",
                sl_errname(b.error));
        return;
    }
    assert_int_equal(b.status, 200);
    f->srv.last[f->srv.last_len] = '\0';
    char host[64];
    snprintf(host, sizeof host, "\r\nHost: localhost:%d\r\n", f->srv.port);
    assert_non_null(strstr(f->srv.last, host));
    b = call_wait(f, SL_HTTP_GET, "/close", NULL); /* a new connection from the cached address */
    assert_int_equal(b.status, 200);
    b = call_wait(f, SL_HTTP_GET, "/ok", NULL);
    assert_int_equal(b.status, 200);
    assert_int_equal(f->srv.accepts, 2);
}

static void test_deadline_cuts_hanging_calls(void **state)
{
    fx *f = *state;
    make_upstream(f, 0);
    /* The overall timeout ends the call although the per-try timeout (2 s) has not passed. */
    sl_http_call_opts o = {.timeout_ms = 150};
    box b = call_wait(f, SL_HTTP_GET, "/hang", &o);
    assert_int_equal(b.kind, SL_HTTP_RESULT_TIMEOUT);
    assert_int_equal(b.error, SL_ETIMEDOUT);
    /* A caller's deadline does the same. */
    sl_deadline dl = sl_deadline_after(sl_clock_system(), 120);
    sl_http_call_opts o2 = {.deadline = &dl};
    b = call_wait(f, SL_HTTP_GET, "/hang", &o2);
    assert_int_equal(b.kind, SL_HTTP_RESULT_TIMEOUT);
    /* Per-try timeouts cut each attempt; retries continue until the deadline. */
    sl_upstream_close(f->up, up_done, f);
    run_until(f, &f->up_closed, 1);
    f->up_closed = 0;
    f->cfg.retry.per_try_timeout_ms = 60;
    make_upstream(f, 0);
    int before = f->srv.hits;
    sl_http_call_opts o3 = {.timeout_ms = 1000};
    b = call_wait(f, SL_HTTP_GET, "/hang", &o3);
    assert_int_equal(b.kind, SL_HTTP_RESULT_TIMEOUT);
    assert_int_equal(b.attempts, 4);
    run_for(f, 20);
    assert_int_equal(f->srv.hits - before, 4);
    /* A deadline already gone: no attempt at all. */
    sl_deadline past = sl_deadline_after(sl_clock_system(), 0);
    sl_http_call_opts o4 = {.deadline = &past};
    b = call_wait(f, SL_HTTP_GET, "/ok", &o4);
    assert_int_equal(b.kind, SL_HTTP_RESULT_TIMEOUT);
    assert_int_equal(b.attempts, 0);
}

static void test_response_too_large(void **state)
{
    fx *f = *state;
    f->cfg.response_max_bytes = 256 * 1024;
    make_upstream(f, 0);
    box b = call_wait(f, SL_HTTP_GET, "/big", NULL);
    assert_int_equal(b.kind, SL_HTTP_RESULT_TOO_LARGE);
    assert_int_equal(b.error, SL_ELIMIT);
    assert_int_equal(f->srv.hits, 1);           /* not retried */
    b = call_wait(f, SL_HTTP_GET, "/ok", NULL); /* the broken connection was not reused */
    assert_int_equal(b.status, 200);
    assert_int_equal(f->srv.accepts, 2);
}

static void test_close_mid_response(void **state)
{
    fx *f = *state;
    f->cfg.breaker.failure_threshold = 0;
    make_upstream(f, 0);
    box b = call_wait(f, SL_HTTP_GET, "/midclose", NULL);
    assert_int_equal(b.kind, SL_HTTP_RESULT_IO);
    assert_int_equal(b.error, SL_EIO);
    assert_int_equal(b.attempts, 4); /* GET is retry-safe */
    assert_int_equal(f->srv.hits, 4);
    b = call_wait(f, SL_HTTP_POST, "/midclose", NULL);
    assert_int_equal(b.kind, SL_HTTP_RESULT_IO);
    assert_int_equal(b.attempts, 1); /* the upstream may have acted on it: not retried */
    assert_int_equal(f->srv.hits, 5);
}

static void test_bulkhead_full(void **state)
{
    fx *f = *state;
    f->cfg.bulkhead.max_concurrent = 1;
    make_upstream(f, 0);
    box slow = {0}, second = {0};
    sl_http_request req = {.method = SL_HTTP_GET, .target = {"/slow", 5}};
    assert_int_equal(sl_http_call(f->up, &req, NULL, on_result, &slow, NULL), 0);
    assert_int_equal(sl_http_call(f->up, &req, NULL, on_result, &second, NULL), 0);
    assert_int_equal(second.done, 0); /* refused, but through the callback, later */
    run_until(f, &second.done, 1);
    assert_int_equal(second.kind, SL_HTTP_RESULT_BULKHEAD_FULL);
    assert_int_equal(second.error, SL_EUNAVAIL);
    assert_true(second.retry_after_ms >= 1000);
    run_until(f, &slow.done, 1);
    assert_int_equal(slow.status, 200);
    assert_int_equal(f->srv.hits, 1);
    sl_upstream_stats st;
    sl_upstream_stats_get(f->up, &st);
    assert_int_equal(st.bulkhead_rejections, 1);
}

static void test_bulkhead_queue(void **state)
{
    fx *f = *state;
    f->cfg.bulkhead.max_concurrent = 1;
    f->cfg.bulkhead.max_queue = 4;
    f->cfg.bulkhead.max_wait_ms = 5000;
    make_upstream(f, 0);
    int done = 0;
    box bs[3] = {{.counter = &done}, {.counter = &done}, {.counter = &done}};
    sl_http_request req = {.method = SL_HTTP_GET, .target = {"/slow", 5}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(sl_http_call(f->up, &req, NULL, on_result, &bs[i], NULL), 0);
    run_until(f, &done, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(bs[i].status, 200);
    assert_int_equal(f->srv.accepts, 1); /* one at a time: one connection */
}

static void test_cancel(void **state)
{
    fx *f = *state;
    make_upstream(f, 0);
    box b = {0};
    sl_http_handle *h = NULL;
    sl_http_request req = {.method = SL_HTTP_GET, .target = {"/hang", 5}};
    assert_int_equal(sl_http_call(f->up, &req, NULL, on_result, &b, &h), 0);
    run_until(f, &f->srv.hits, 1);
    sl_http_call_cancel(h);
    run_for(f, 50);
    assert_int_equal(b.done, 0);
    sl_upstream_stats st;
    sl_upstream_stats_get(f->up, &st);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.connections_open, 0); /* the half-used connection was closed */
    /* Cancelled before its first attempt too. */
    assert_int_equal(sl_http_call(f->up, &req, NULL, on_result, &b, &h), 0);
    sl_http_call_cancel(h);
    run_for(f, 20);
    assert_int_equal(b.done, 0);
}

static void test_close_with_calls_in_flight(void **state)
{
    fx *f = *state;
    make_upstream(f, 0);
    int done = 0;
    box a = {.counter = &done}, c = {.counter = &done};
    sl_http_request req = {.method = SL_HTTP_GET, .target = {"/hang", 5}};
    assert_int_equal(sl_http_call(f->up, &req, NULL, on_result, &a, NULL), 0);
    assert_int_equal(sl_http_call(f->up, &req, NULL, on_result, &c, NULL), 0);
    run_until(f, &f->srv.hits, 2);
    sl_upstream_close(f->up, up_done, f);
    assert_int_equal(sl_http_call(f->up, &req, NULL, on_result, &a, NULL), SL_ECLOSED);
    run_until(f, &f->up_closed, 1);
    f->up = NULL;
    assert_int_equal(done, 2);
    assert_int_equal(a.kind, SL_HTTP_RESULT_CANCELED);
    assert_int_equal(c.error, SL_ECANCELED);
}

static int fanout_done;

static void on_fanout(sl_http_fanout *fo, void *data)
{
    (void)data;
    fanout_done++;
    assert_int_equal(sl_http_fanout_count(fo), 4);
    const sl_http_result *r0 = sl_http_fanout_result(fo, 0);
    assert_int_equal(r0->kind, SL_HTTP_RESULT_OK);
    assert_int_equal(r0->response->status, 200);
    assert_int_equal(r0->response->body.len, 2);
    assert_memory_equal(r0->response->body.ptr, "ok", 2);
    sl_slice v;
    assert_int_equal(sl_http_response_header(r0->response, "content-length", &v), 1);
    assert_int_equal(sl_http_fanout_result(fo, 1)->response->status, 500);
    assert_int_equal(sl_http_fanout_result(fo, 2)->kind, SL_HTTP_RESULT_TOO_LARGE);
    assert_int_equal(sl_http_fanout_result(fo, 3)->error, SL_EINVAL); /* refused at start */
    assert_null(sl_http_fanout_result(fo, 4));
    /* The copies outlive the calls; the fan-out is freed later by the test. */
}

static void test_fanout(void **state)
{
    fx *f = *state;
    f->cfg.response_max_bytes = 1024;
    make_upstream(f, 0);
    sl_http_fanout_item items[4] = {
        {f->up, {.method = SL_HTTP_GET, .target = {"/ok", 3}}, NULL},
        {f->up, {.method = SL_HTTP_GET, .target = {"/fail", 5}}, NULL},
        {f->up, {.method = SL_HTTP_GET, .target = {"/big", 4}}, NULL},
        {f->up, {.method = SL_HTTP_GET, .target = {"bad", 3}}, NULL},
    };
    sl_http_fanout *fo = NULL;
    fanout_done = 0;
    assert_int_equal(sl_http_fanout_start(items, 4, on_fanout, NULL, &fo), 0);
    run_until(f, &fanout_done, 1);
    assert_int_equal(sl_http_fanout_result(fo, 1)->response->body.len, 4);
    sl_http_fanout_free(fo);
    /* Every item refused: an error, and no callback. */
    assert_int_equal(sl_http_fanout_start(&items[3], 1, on_fanout, NULL, &fo), SL_EINVAL);
    /* Freed before completion: the calls are cancelled and the callback never runs. */
    sl_http_fanout_item slow[2] = {
        {f->up, {.method = SL_HTTP_GET, .target = {"/hang", 5}}, NULL},
        {f->up, {.method = SL_HTTP_GET, .target = {"/slow", 5}}, NULL},
    };
    assert_int_equal(sl_http_fanout_start(slow, 2, on_fanout, NULL, &fo), 0);
    sl_http_fanout_free(fo);
    run_for(f, 150);
    assert_int_equal(fanout_done, 1);
}

static void test_policies_off(void **state)
{
    fx *f = *state;
    f->cfg.policies = false;
    f->cfg.bulkhead.max_concurrent = 1;
    make_upstream(f, 0);
    f->srv.flaky_left = 1;
    box b = call_wait(f, SL_HTTP_GET, "/flaky", NULL);
    assert_int_equal(b.status, 503); /* no retry */
    assert_int_equal(b.attempts, 1);
    int done = 0;
    box bs[3] = {{.counter = &done}, {.counter = &done}, {.counter = &done}};
    sl_http_request req = {.method = SL_HTTP_GET, .target = {"/slow", 5}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(sl_http_call(f->up, &req, NULL, on_result, &bs[i], NULL), 0);
    run_until(f, &done, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(bs[i].status, 200); /* no bulkhead either */
}

static void test_pool_limit_queues(void **state)
{
    fx *f = *state;
    f->cfg.max_connections = 2;
    f->cfg.max_idle = 2;
    f->cfg.bulkhead.max_concurrent = 100;
    make_upstream(f, 0);
    int done = 0;
    box bs[8];
    sl_http_request req = {.method = SL_HTTP_GET, .target = {"/slow", 5}};
    for (int i = 0; i < 8; i++) {
        bs[i] = (box){.counter = &done};
        assert_int_equal(sl_http_call(f->up, &req, NULL, on_result, &bs[i], NULL), 0);
    }
    run_until(f, &done, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(bs[i].status, 200);
    assert_int_equal(f->srv.accepts, 2);
}

static void test_config_refusals(void **state)
{
    fx *f = *state;
    sl_upstream_env env = {.loop = &f->loop};
    sl_upstream *up = NULL;
    const char *bad[] = {"nohost", ":80",     "h:",          "h:0",    "h:65536",
                         "h:8x",   "[::1:80", "[nothex]:80", "a b:80", "h\r\n:80"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        f->eps[0] = bad[i];
        assert_int_equal(sl_upstream_new(&f->cfg, &env, &up), SL_ECONFIG);
    }
    f->eps[0] = "[::1]:8080";
    assert_int_equal(sl_upstream_new(&f->cfg, &env, &up), 0);
    sl_upstream_close(up, up_done, f);
    run_until(f, &f->up_closed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reuse_and_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_close_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_spans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_propagation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_breaker_opens_and_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_breaker_reopens_on_failed_trial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries_on_flaky_upstream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_upstream_load_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolution, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_cuts_hanging_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_mid_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bulkhead_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bulkhead_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_calls_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fanout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policies_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_limit_queues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
