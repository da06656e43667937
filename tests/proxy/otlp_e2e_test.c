/*
 * Span export end to end, over real processes and sockets: shoal-proxy in
 * front of shoal-hello, both exporting to an OTLP/HTTP receiver that runs in
 * this test (tests/support/otlp_rx.c, which checks every request's shape
 * against the OTLP JSON encoding). One started pair serves every check:
 *
 *   - a request through the gateway gives one trace: the gateway's server
 *     span (child of the client's traceparent), its client span to hello
 *     (peer.service "hello") and hello's server span (http.route), linked
 *     parent to child, service.name from the resource;
 *   - a request without traceparent gives one tree with one root;
 *   - the client span carries the semantic-convention attributes, and error.type when the
 *     call fails;
 *   - with the receiver gone, requests still answer 200 at once and the drop
 *     counter rises on both processes' /metrics.
 */
#include "harness.h"
#include "otlp_rx.h"

#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define TRACE_ID  "4bf92f3577b34da6a3ce929d0e0e4736"
#define TRACE_ID2 "5cf92f3577b34da6a3ce929d0e0e4737"
#define CALLER    "00f067aa0ba902b7"

typedef struct shop {
    char dir[128];
    th_otlp_rx *rx;
    pid_t hello, gw;
    int hello_port, gw_port, admin_port;
} shop;

static shop g;
static int g_live;

static void start(shop *s)
{
    memset(s, 0, sizeof *s);
    g_live = 1;
    snprintf(s->dir, sizeof s->dir, "/tmp/shoal-otlp-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    s->rx = th_otlp_rx_start(TH_OTLP_OK);
    s->hello_port = th_free_port();
    s->gw_port = th_free_port();
    s->admin_port = th_free_port();
    char ep[96], hp[16], log[256], cfg[256];
    snprintf(ep, sizeof ep, "SHOAL_TELEMETRY__OTLP_ENDPOINT=http://127.0.0.1:%d",
             th_otlp_rx_port(s->rx));
    snprintf(hp, sizeof hp, "%d", s->hello_port);
    snprintf(log, sizeof log, "%s/hello.log", s->dir);
    char *henv[] = {ep, "SHOAL_TELEMETRY__FLUSH_MS=50", "SHOAL_TELEMETRY__EXPORT_TIMEOUT_MS=500",
                    NULL};
    char *hargv[] = {"shoal-hello", "--port", hp, NULL};
    s->hello = th_spawn(hargv, henv, log);
    assert_int_equal(th_wait_port(s->hello_port, 10000), 0);

    snprintf(cfg, sizeof cfg, "%s/gw.yaml", s->dir);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fprintf(f,
            "service: {port: %d, workers: 2}\n"
            "admin: {port: %d}\n"
            "telemetry: {otlp_endpoint: \"http://127.0.0.1:%d\", flush_ms: 50, "
            "export_timeout_ms: 500}\n"
            "clusters:\n"
            "  hello: {endpoints: [127.0.0.1:%d]}\n"
            "  dead: {endpoints: [127.0.0.1:%d]}\n"
            "routes:\n"
            "  - {name: hello, match: {prefix: /api/hello}, rewrite: /hello, cluster: hello}\n"
            "  - {name: dead, match: {prefix: /api/dead}, cluster: dead}\n",
            s->gw_port, s->admin_port, th_otlp_rx_port(s->rx), s->hello_port, th_free_port());
    fclose(f);
    snprintf(log, sizeof log, "%s/gateway.log", s->dir);
    char key[300];
    snprintf(key, sizeof key, "SHOAL_IDENTITY__KEY_FILE=%s/none.key", s->dir);
    char *genv[] = {key, NULL};
    char *gargv[] = {"shoal-proxy", "--config", cfg, NULL};
    s->gw = th_spawn(gargv, genv, log);
    assert_int_equal(th_wait_port(s->gw_port, 10000), 0);
    assert_int_equal(th_wait_port(s->admin_port, 10000), 0);
}

static void stop(shop *s)
{
    if (!g_live) return;
    g_live = 0;
    if (s->gw && th_stop(s->gw, SIGTERM, 10000) == -1) th_stop(s->gw, SIGKILL, 2000);
    if (s->hello && th_stop(s->hello, SIGTERM, 10000) == -1) th_stop(s->hello, SIGKILL, 2000);
    th_otlp_rx_stop(s->rx);
    s->rx = NULL;
    char cmd[200];
    if (getenv("OTLP_KEEP")) return;
    snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", s->dir);
}

static int teardown(void **state)
{
    (void)state;
    stop(&g);
    return 0;
}

static int get(int port, const char *path, const char *extra, th_response *r)
{
    char raw[2048];
    int n =
        snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n", path, extra ? extra : "");
    memset(r, 0, sizeof *r);
    return th_roundtrip(port, raw, (size_t)n, r, 10000);
}

/* The spans received so far of trace `tid`. Returns owned. */
static json_t *trace_spans(th_otlp_rx *rx, const char *tid)
{
    json_t *all = th_otlp_rx_spans(rx), *out = json_array();
    size_t i;
    json_t *sp;
    json_array_foreach(all, i, sp)
    {
        if (strcmp(json_string_value(json_object_get(sp, "traceId")), tid) == 0)
            json_array_append(out, sp);
    }
    json_decref(all);
    return out;
}

static json_t *wait_trace(th_otlp_rx *rx, const char *tid, size_t want)
{
    for (int i = 0; i < 300; i++) {
        json_t *t = trace_spans(rx, tid);
        if (json_array_size(t) >= want) return t;
        json_decref(t);
        usleep(50 * 1000);
    }
    return trace_spans(rx, tid);
}

static json_t *find(json_t *spans, const char *service, int kind)
{
    size_t i;
    json_t *sp;
    json_array_foreach(spans, i, sp)
    {
        if (strcmp(json_string_value(json_object_get(sp, "service")), service) == 0 &&
            json_integer_value(json_object_get(sp, "kind")) == kind)
            return sp;
    }
    return NULL;
}

static const char *str(json_t *sp, const char *k)
{
    const char *v = json_string_value(json_object_get(sp, k));
    return v ? v : "";
}

/* An attribute's value as text ({"stringValue": s} or {"intValue": "n"}), or "". */
static const char *attr_text(json_t *sp, const char *key);

static json_t *attr(json_t *sp, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(sp, "attributes"), i, a)
    {
        if (strcmp(str(a, "key"), key) == 0) return json_object_get(a, "value");
    }
    return NULL;
}

static const char *attr_text(json_t *sp, const char *key)
{
    json_t *v = attr(sp, key);
    const char *s = json_string_value(json_object_get(v, "stringValue"));
    if (!s) s = json_string_value(json_object_get(v, "intValue"));
    return s ? s : "";
}

/* Every parentSpanId names a span of the set except the single root's. */
static void assert_one_tree(json_t *spans, const char *outside_parent)
{
    size_t i, roots = 0;
    json_t *sp;
    json_array_foreach(spans, i, sp)
    {
        const char *p = str(sp, "parentSpanId");
        if (!*p || (outside_parent && strcmp(p, outside_parent) == 0)) {
            roots++;
            continue;
        }
        int found = 0;
        size_t k;
        json_t *q;
        json_array_foreach(spans, k, q) found |= strcmp(str(q, "spanId"), p) == 0;
        if (!found)
            fail_msg("span %s has a parent %s that is not in the trace", str(sp, "name"), p);
    }
    assert_int_equal(roots, 1);
}

static long metric(int port, const char *path, const char *series)
{
    th_response r;
    if (get(port, path, NULL, &r) != 200) {
        th_response_free(&r);
        return -1;
    }
    const char *p = r.body ? strstr(r.body, series) : NULL;
    long v = p ? strtol(p + strlen(series), NULL, 10) : 0;
    th_response_free(&r);
    return v;
}

static void test_one_trace_through_gateway_and_drops(void **state)
{
    (void)state;
    start(&g);
    th_response r;

    /* 1. The client's sampled traceparent: everything joins its trace. */
    assert_int_equal(
        get(g.gw_port, "/api/hello", "traceparent: 00-" TRACE_ID "-" CALLER "-01\r\n", &r), 200);
    th_response_free(&r);
    json_t *t = wait_trace(g.rx, TRACE_ID, 3);
    assert_int_equal(json_array_size(t), 3);
    json_t *gs = find(t, "gateway", 2), *gc = find(t, "gateway", 3), *hs = find(t, "hello", 2);
    assert_non_null(gs);
    assert_non_null(gc);
    assert_non_null(hs);
    assert_string_equal(str(gs, "parentSpanId"), CALLER);
    assert_string_equal(str(gc, "parentSpanId"), str(gs, "spanId"));
    assert_string_equal(str(hs, "parentSpanId"), str(gc, "spanId"));
    assert_string_equal(attr_text(gc, "peer.service"), "hello");
    /* The client span's semantic-convention attributes. */
    char port[16];
    snprintf(port, sizeof port, "%d", g.hello_port);
    assert_string_equal(attr_text(gc, "http.request.method"), "GET");
    assert_string_equal(attr_text(gc, "server.address"), "127.0.0.1");
    assert_string_equal(attr_text(gc, "server.port"), port);
    assert_string_equal(attr_text(gc, "url.path"), "/hello");
    assert_string_equal(attr_text(gc, "http.response.status_code"), "200");
    assert_null(attr(gc, "error.type"));
    assert_string_equal(attr_text(hs, "http.route"), "/hello");
    assert_string_equal(attr_text(hs, "http.request.method"), "GET");
    assert_string_equal(attr_text(hs, "http.response.status_code"), "200");
    assert_one_tree(t, CALLER);
    json_decref(t);

    /* 2. No traceparent: the gateway starts the trace; one tree, one root. */
    assert_int_equal(get(g.gw_port, "/api/hello", NULL, &r), 200);
    const char *tp = th_header(&r, "traceparent");
    assert_non_null(tp);
    char tid[33];
    assert_true(strlen(tp) == 55);
    memcpy(tid, tp + 3, 32);
    tid[32] = '\0';
    th_response_free(&r);
    t = wait_trace(g.rx, tid, 3);
    assert_int_equal(json_array_size(t), 3);
    assert_one_tree(t, NULL);
    assert_string_equal(str(find(t, "gateway", 2), "parentSpanId"), "");
    json_decref(t);
    /* A call that fails (nothing listens behind the dead cluster): the client span names the
     * failure in error.type and has an error status. */
    int dead = get(g.gw_port, "/api/dead", "traceparent: 00-" TRACE_ID2 "-" CALLER "-01\r\n", &r);
    assert_true(dead == 502 || dead == 503);
    th_response_free(&r);
    t = wait_trace(g.rx, TRACE_ID2, 2);
    json_t *dc = find(t, "gateway", 3);
    assert_non_null(dc);
    assert_string_equal(attr_text(dc, "error.type"), "connect_error");
    assert_string_equal(attr_text(dc, "url.path"), "/api/dead");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(dc, "status"), "code")), 2);
    json_decref(t);
    char first[512];
    assert_int_equal(th_otlp_rx_violations(g.rx, first, sizeof first), 0);

    /* 3. The collector goes away: requests still answer, the drops are counted. */
    th_otlp_rx_stop(g.rx);
    g.rx = NULL;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(get(g.gw_port, "/api/hello", NULL, &r), 200);
        th_response_free(&r);
    }
    const char *series = "telemetry_spans_dropped_total{reason=\"export_failed\"} ";
    long gw_drop = 0, hello_drop = 0;
    for (int i = 0; i < 300 && (gw_drop < 40 || hello_drop < 20); i++) {
        usleep(50 * 1000);
        gw_drop = metric(g.admin_port, "/metrics", series);
        hello_drop = metric(g.hello_port, "/metrics", series);
    }
    assert_true(gw_drop >= 40); /* a server and a client span per request */
    assert_true(hello_drop >= 20);
    long exported = metric(g.admin_port, "/metrics", "\ntelemetry_spans_exported_total ");
    if (exported < 4) fail_msg("exported %ld", exported);
    stop(&g);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_one_trace_through_gateway_and_drops, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
