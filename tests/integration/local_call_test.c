/*
 * In-process calls (http_client.h, sl_http_local_register): a real libshoal
 * HTTP server listening on a real socket, and an upstream on the same loop.
 * Before its port is registered a call goes over the network; after, it is
 * dispatched into the server's callbacks without a connection. The handler
 * echoes what it received, so each test checks what the server really saw:
 * the same answer both ways, the identity proof, deadline, trace context and
 * idempotency key carried, the breaker and the bulkhead still applied, a
 * per-try timeout ending a slow handler's attempt, and an upstream on another
 * port still going over the network.
 */
#include <shoal/http.h>
#include <shoal/http_client.h>
#include <shoal/loop.h>
#include <shoal/trace.h>

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <cmocka.h>

/* ---- the server --------------------------------------------------------------------------- */

typedef struct srv {
    uv_loop_t *loop;
    sl_http_server *http;
    sl_http_callbacks cbs;
    int port;
    int hits;
    int responses; /* on_response calls */
    uv_timer_t slow;
    sl_http_req *slow_req;
} srv;

static void put_header(json_t *o, const sl_http_req *req, const char *name)
{
    sl_slice v;
    if (sl_http_req_header(req, name, &v)) json_object_set_new(o, name, json_stringn(v.ptr, v.len));
}

static void echo(sl_http_req *req)
{
    json_t *o = json_object();
    json_object_set_new(o, "method", json_string(sl_http_method_name(req->method)));
    json_object_set_new(o, "path", json_stringn(req->path.ptr, req->path.len));
    json_object_set_new(o, "query", json_stringn(req->query.ptr, req->query.len));
    json_object_set_new(o, "body", json_stringn(req->body.ptr, req->body.len));
    put_header(o, req, "x-shoal-identity");
    put_header(o, req, "x-shoal-deadline-ms");
    put_header(o, req, "traceparent");
    put_header(o, req, "idempotency-key");
    put_header(o, req, "x-request-id");
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    sl_http_header h[2] = {{{"Content-Type", 12}, {"application/json", 16}},
                           {{"X-Echo", 6}, {"yes", 3}}};
    sl_http_respond(req, 200, h, 2, text, strlen(text));
    free(text);
}

static void slow_fire(uv_timer_t *t)
{
    srv *s = t->data;
    sl_http_req *req = s->slow_req;
    s->slow_req = NULL;
    sl_http_respond_body(req, 200, "text/plain", "slow", 4);
}

static void on_request(sl_http_req *req, void *data)
{
    srv *s = data;
    s->hits++;
    if (req->path.len == 5 && memcmp(req->path.ptr, "/fail", 5) == 0) {
        sl_http_respond_problem(req, 503, "failing on purpose");
    } else if (req->path.len == 5 && memcmp(req->path.ptr, "/slow", 5) == 0) {
        assert_null(s->slow_req);
        s->slow_req = req;
        uv_timer_start(&s->slow, slow_fire, 300, 0);
    } else {
        echo(req);
    }
}

static void on_response(sl_http_req *req, int status, size_t body_len, void *data)
{
    (void)req, (void)status, (void)body_len;
    srv *s = data;
    s->responses++;
}

static void srv_start(srv *s, uv_loop_t *loop)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->cbs = (sl_http_callbacks){.on_request = on_request, .on_response = on_response, .data = s};
    sl_http_limits lim;
    sl_http_limits_default(&lim);
    assert_int_equal(sl_http_server_new(loop, &lim, &s->cbs, &s->http), 0);
    int fd;
    assert_int_equal(sl_listen_socket("127.0.0.1", 0, &fd, &s->port), 0);
    assert_int_equal(sl_http_server_listen_fd(s->http, fd), 0);
    uv_timer_init(loop, &s->slow);
    s->slow.data = s;
}

static void srv_stop(srv *s)
{
    sl_http_server_close(s->http, NULL, NULL);
    uv_close((uv_handle_t *)&s->slow, NULL);
}

/* ---- calls -------------------------------------------------------------------------------- */

typedef struct result {
    int done;
    int error;
    sl_http_result_kind kind;
    int status;
    char body[4096];
    char echo_header[8];
} result;

static void on_result(sl_http_handle *call, const sl_http_result *res, void *data)
{
    (void)call;
    result *r = data;
    r->done = 1;
    r->error = res->error;
    r->kind = res->kind;
    if (res->response) {
        r->status = res->response->status;
        size_t n = res->response->body.len < sizeof r->body - 1 ? res->response->body.len
                                                                : sizeof r->body - 1;
        memcpy(r->body, res->response->body.ptr, n);
        r->body[n] = '\0';
        sl_slice v;
        if (sl_http_response_header(res->response, "x-echo", &v) && v.len < sizeof r->echo_header)
            memcpy(r->echo_header, v.ptr, v.len);
    }
}

static sl_upstream *upstream_to(uv_loop_t *loop, int port, const sl_upstream_config *base)
{
    char ep[32];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", port);
    const char *eps[] = {ep};
    sl_upstream_config cfg;
    if (base)
        cfg = *base;
    else
        sl_upstream_config_default(&cfg);
    cfg.name = "target";
    cfg.endpoints = eps;
    cfg.nendpoints = 1;
    sl_upstream_env env = {.loop = loop};
    sl_upstream *up = NULL;
    assert_int_equal(sl_upstream_new(&cfg, &env, &up), 0);
    return up;
}

static void run_until(uv_loop_t *loop, const int *flag)
{
    for (int i = 0; i < 100000 && !*flag; i++)
        uv_run(loop, UV_RUN_ONCE);
    assert_true(*flag);
}

static void start_call(sl_upstream *up, const char *target, const char *body,
                       const sl_http_call_opts *opts, result *r)
{
    static const sl_http_header hs[] = {{{"x-shoal-identity", 16}, {"proof-of-caller", 15}}};
    sl_http_request req = {.method = body ? SL_HTTP_POST : SL_HTTP_GET,
                           .target = {target, strlen(target)},
                           .headers = hs,
                           .nheaders = 1,
                           .body = body,
                           .body_len = body ? strlen(body) : 0};
    memset(r, 0, sizeof *r);
    assert_int_equal(sl_http_call(up, &req, opts, on_result, r, NULL), 0);
}

static void do_call(uv_loop_t *loop, sl_upstream *up, const char *target, const char *body,
                    const sl_http_call_opts *opts, result *r)
{
    start_call(up, target, body, opts, r);
    run_until(loop, &r->done);
}

static void close_all(uv_loop_t *loop, sl_upstream *up, srv *s)
{
    sl_upstream_close(up, NULL, NULL);
    srv_stop(s);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* Drops the members that differ between any two calls: the attempt's span id and request id. */
static json_t *stable(const char *text)
{
    json_t *o = json_loads(text, 0, NULL);
    assert_non_null(o);
    json_object_del(o, "traceparent");
    json_object_del(o, "x-request-id");
    json_object_del(o, "x-shoal-deadline-ms");
    return o;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_same_answer_as_the_network(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    srv s;
    srv_start(&s, &loop);
    sl_upstream *up = upstream_to(&loop, s.port, NULL);
    result net, local;
    do_call(&loop, up, "/things/7?x=1", "{\"a\":1}", NULL, &net);
    assert_int_equal(sl_http_local_register(s.port, &s.cbs, 1 << 20), 0);
    do_call(&loop, up, "/things/7?x=1", "{\"a\":1}", NULL, &local);
    sl_http_local_unregister(s.port);

    assert_int_equal(net.kind, SL_HTTP_RESULT_OK);
    assert_int_equal(local.kind, SL_HTTP_RESULT_OK);
    assert_int_equal(net.status, 200);
    assert_int_equal(local.status, 200);
    assert_string_equal(local.echo_header, "yes");
    json_t *a = stable(net.body), *b = stable(local.body);
    assert_true(json_equal(a, b));
    assert_string_equal(json_string_value(json_object_get(b, "path")), "/things/7");
    assert_string_equal(json_string_value(json_object_get(b, "query")), "x=1");
    assert_string_equal(json_string_value(json_object_get(b, "body")), "{\"a\":1}");
    json_decref(a);
    json_decref(b);
    assert_int_equal(s.hits, 2);
    assert_int_equal(s.responses, 2); /* the server's response hook saw both */

    sl_upstream_stats st;
    sl_upstream_stats_get(up, &st);
    assert_int_equal(st.connections_opened, 1); /* the network call's only */
    assert_int_equal(st.local_attempts, 1);
    close_all(&loop, up, &s);
}

static void test_identity_deadline_trace_carried(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    srv s;
    srv_start(&s, &loop);
    sl_upstream *up = upstream_to(&loop, s.port, NULL);
    assert_int_equal(sl_http_local_register(s.port, &s.cbs, 1 << 20), 0);
    sl_trace_ctx parent;
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_int_equal(sl_traceparent_parse(tp, strlen(tp), &parent), 0);
    sl_deadline dl = sl_deadline_after(sl_clock_system(), 4000);
    sl_http_call_opts o = {
        .deadline = &dl, .trace = &parent, .request_id = "req-42", .idempotency_key = "idem-1"};
    result r;
    do_call(&loop, up, "/echo", "{}", &o, &r);
    sl_http_local_unregister(s.port);
    assert_int_equal(r.status, 200);
    json_t *e = json_loads(r.body, 0, NULL);
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "x-shoal-identity")),
                        "proof-of-caller");
    assert_string_equal(json_string_value(json_object_get(e, "idempotency-key")), "idem-1");
    assert_string_equal(json_string_value(json_object_get(e, "x-request-id")), "req-42");
    const char *got_tp = json_string_value(json_object_get(e, "traceparent"));
    assert_non_null(got_tp);
    assert_memory_equal(got_tp, tp, 35); /* same version and trace id, a new span id */
    const char *ms = json_string_value(json_object_get(e, "x-shoal-deadline-ms"));
    assert_non_null(ms);
    long left = strtol(ms, NULL, 10);
    assert_true(left > 0 && left <= 4000);
    json_decref(e);
    close_all(&loop, up, &s);
}

static void test_breaker_still_opens(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    srv s;
    srv_start(&s, &loop);
    sl_upstream_config cfg;
    sl_upstream_config_default(&cfg);
    cfg.retry.max_retries = 0;
    cfg.breaker.failure_threshold = 3;
    cfg.breaker.recovery_timeout_ms = 60000;
    sl_upstream *up = upstream_to(&loop, s.port, &cfg);
    assert_int_equal(sl_http_local_register(s.port, &s.cbs, 1 << 20), 0);
    result r;
    for (int i = 0; i < 3; i++) {
        do_call(&loop, up, "/fail", NULL, NULL, &r);
        assert_int_equal(r.kind, SL_HTTP_RESULT_OK);
        assert_int_equal(r.status, 503);
    }
    do_call(&loop, up, "/fail", NULL, NULL, &r);
    assert_int_equal(r.kind, SL_HTTP_RESULT_BREAKER_OPEN);
    assert_int_equal(r.error, SL_EUNAVAIL);
    assert_int_equal(s.hits, 3); /* the open breaker kept the fourth from the handler */
    sl_http_local_unregister(s.port);
    close_all(&loop, up, &s);
}

static void test_bulkhead_and_timeout_still_apply(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    srv s;
    srv_start(&s, &loop);
    sl_upstream_config cfg;
    sl_upstream_config_default(&cfg);
    cfg.retry.max_retries = 0;
    cfg.breaker.failure_threshold = 0;
    cfg.breaker.failure_rate_pct = 0;
    cfg.bulkhead.max_concurrent = 1;
    sl_upstream *up = upstream_to(&loop, s.port, &cfg);
    assert_int_equal(sl_http_local_register(s.port, &s.cbs, 1 << 20), 0);
    result slow, second;
    start_call(up, "/slow", NULL, NULL, &slow);
    start_call(up, "/echo", NULL, NULL, &second);
    run_until(&loop, &second.done);
    assert_int_equal(second.kind, SL_HTTP_RESULT_BULKHEAD_FULL);
    run_until(&loop, &slow.done);
    assert_int_equal(slow.kind, SL_HTTP_RESULT_OK);
    assert_string_equal(slow.body, "slow");

    /* A per-try timeout ends the attempt; the handler's late answer goes nowhere. */
    sl_http_call_opts o = {.timeout_ms = 50};
    result late;
    do_call(&loop, up, "/slow", NULL, &o, &late);
    assert_int_equal(late.kind, SL_HTTP_RESULT_TIMEOUT);
    int before = s.responses;
    while (s.slow_req)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(s.responses, before + 1); /* answered (to nobody) and released */
    sl_http_local_unregister(s.port);
    close_all(&loop, up, &s);
}

static void test_remote_upstream_uses_the_network(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    srv local_srv, remote;
    srv_start(&local_srv, &loop);
    srv_start(&remote, &loop);
    assert_int_equal(sl_http_local_register(local_srv.port, &local_srv.cbs, 1 << 20), 0);
    sl_upstream *up = upstream_to(&loop, remote.port, NULL);
    result r;
    do_call(&loop, up, "/echo", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    sl_upstream_stats st;
    sl_upstream_stats_get(up, &st);
    assert_int_equal(st.local_attempts, 0);
    assert_int_equal(st.connections_opened, 1);
    assert_int_equal(remote.hits, 1);
    assert_int_equal(local_srv.hits, 0);
    /* A second registration of a port is refused. */
    assert_int_equal(sl_http_local_register(local_srv.port, &local_srv.cbs, 1 << 20), SL_EEXIST);
    sl_http_local_unregister(local_srv.port);
    sl_upstream_close(up, NULL, NULL);
    srv_stop(&local_srv);
    srv_stop(&remote);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_answer_as_the_network),
        cmocka_unit_test(test_identity_deadline_trace_carried),
        cmocka_unit_test(test_breaker_still_opens),
        cmocka_unit_test(test_bulkhead_and_timeout_still_apply),
        cmocka_unit_test(test_remote_upstream_uses_the_network),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
