/*
 * The trace receiver as a real process (shoal-traces on a free port, a temporary store) over
 * real sockets, fed handcrafted OTLP JSON: a valid export answers 200 {} and shows in the JSON
 * API; malformed JSON, a bad field, a protobuf body and an oversized body are refused with
 * 400 (naming the field), 415 and 413; at the span bound the oldest trace leaves whole and is
 * counted on /metrics; the store's files are owner-only; `shoal trace` draws what it keeps.
 */
#include "harness.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[] = "/tmp/shoal-traces-e2e-XXXXXX";
static int port;
static pid_t pid;

static int http(const char *method, const char *path, const char *ctype, const char *body,
                th_response *r)
{
    size_t blen = body ? strlen(body) : 0;
    size_t cap = blen + 512;
    char *req = malloc(cap);
    assert_non_null(req);
    int n = snprintf(
        req, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%sContent-Length: %zu\r\n\r\n", method,
        path, ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "", blen);
    memcpy(req + n, body ? body : "", blen);
    int status = th_roundtrip(port, req, (size_t)n + blen, r, 20000);
    free(req);
    return status;
}

static json_t *get_json(const char *path, int want)
{
    th_response r;
    int status = http("GET", path, NULL, NULL, &r);
    if (status != want) fprintf(stderr, "GET %s: %d %s\n", path, status, r.body ? r.body : "");
    assert_int_equal(status, want);
    json_t *v = json_loadb(r.body, r.body_len, 0, NULL);
    th_response_free(&r);
    assert_non_null(v);
    return v;
}

/* An export of one trace: `n` spans of service `svc`, span ids <p>000..i, the first the root. */
static char *export_body(const char *svc, const char *tid, int n, const char *p, const char *oid)
{
    json_t *spans = json_array();
    for (int i = 0; i < n; i++) {
        char sid[17], parent[17] = "", st[24], en[24];
        snprintf(sid, sizeof sid, "%s%012x", p, i + 1);
        if (i) snprintf(parent, sizeof parent, "%s%012x", p, 1);
        snprintf(st, sizeof st, "%lld", 1700000000000000000LL + i * 1000000LL);
        snprintf(en, sizeof en, "%lld", 1700000000000000000LL + (n + 1) * 1000000LL);
        json_t *attrs = json_pack("[{s:s, s:{s:s}}]", "key", "http.request.method", "value",
                                  "stringValue", "POST");
        if (oid && i == 0)
            json_array_append_new(attrs, json_pack("{s:s, s:{s:s}}", "key", "shoal.order_id",
                                                   "value", "stringValue", oid));
        json_array_append_new(
            spans, json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:o, s:{s:i, s:s}}", "traceId",
                             tid, "spanId", sid, "parentSpanId", parent, "name",
                             i ? "POST /reservations" : "POST /orders", "kind", i ? 3 : 2,
                             "startTimeUnixNano", st, "endTimeUnixNano", en, "attributes", attrs,
                             "status", "code", i == 1 ? 2 : 0, "message", i == 1 ? "refused" : ""));
    }
    json_t *req = json_pack("{s:[{s:{s:[{s:s, s:{s:s}}]}, s:[{s:{s:s}, s:o}]}]}", "resourceSpans",
                            "resource", "attributes", "key", "service.name", "value", "stringValue",
                            svc, "scopeSpans", "scope", "name", "test", "spans", spans);
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    return text;
}

static void post_ok(const char *body)
{
    th_response r;
    int status = http("POST", "/v1/traces", "application/json", body, &r);
    if (status != 200) fprintf(stderr, "export: %d %s\n", status, r.body ? r.body : "");
    assert_int_equal(status, 200);
    assert_string_equal(r.body, "{}");
    th_response_free(&r);
}

static const char *T1 = "0af7651916cd43dd8448eb211c80319c",
                  *T2 = "1af7651916cd43dd8448eb211c80319c",
                  *T3 = "2af7651916cd43dd8448eb211c80319c";

static void test_valid_export_and_api(void **state)
{
    (void)state;
    char *b = export_body("order", T1, 3, "b7ad", "ord-42");
    post_ok(b);
    post_ok(b); /* a retried export stores nothing twice */
    free(b);
    json_t *list = get_json("/api/traces?limit=5", 200);
    json_t *ts = json_object_get(list, "traces");
    assert_int_equal(json_array_size(ts), 1);
    json_t *t = json_array_get(ts, 0);
    assert_string_equal(json_string_value(json_object_get(t, "trace_id")), T1);
    assert_string_equal(json_string_value(json_object_get(t, "root_service")), "order");
    assert_string_equal(json_string_value(json_object_get(t, "root_name")), "POST /orders");
    assert_int_equal(json_integer_value(json_object_get(t, "span_count")), 3);
    assert_int_equal(json_integer_value(json_object_get(t, "duration_ns")), 4000000);
    assert_true(json_is_true(json_object_get(t, "error")));
    json_decref(list);
    list = get_json("/api/traces?order_id=ord-42&errors=1&slowest=1", 200);
    assert_int_equal(json_array_size(json_object_get(list, "traces")), 1);
    json_decref(list);
    list = get_json("/api/traces?order_id=ord-43", 200);
    assert_int_equal(json_array_size(json_object_get(list, "traces")), 0);
    json_decref(list);

    char path[128];
    snprintf(path, sizeof path, "/api/traces/%s", T1);
    json_t *tr = get_json(path, 200);
    assert_string_equal(json_string_value(json_object_get(tr, "trace_id")), T1);
    json_t *spans = json_object_get(tr, "spans");
    assert_int_equal(json_array_size(spans), 3);
    json_t *s1 = json_array_get(spans, 1);
    assert_string_equal(json_string_value(json_object_get(s1, "service")), "order");
    assert_string_equal(json_string_value(json_object_get(s1, "kind")), "client");
    assert_string_equal(json_string_value(json_object_get(s1, "status")), "error");
    assert_string_equal(json_string_value(json_object_get(s1, "status_message")), "refused");
    assert_string_equal(json_string_value(json_object_get(s1, "parent_span_id")),
                        "b7ad000000000001");
    assert_string_equal(json_string_value(json_object_get(json_object_get(s1, "attributes"),
                                                          "http.request.method")),
                        "POST");
    assert_true(json_is_array(json_object_get(s1, "links")));
    json_decref(tr);

    /* Unknown and malformed ids: 404 problem+json. */
    snprintf(path, sizeof path, "/api/traces/%s", T3);
    json_t *p = get_json(path, 404);
    assert_int_equal(json_integer_value(json_object_get(p, "status")), 404);
    json_decref(p);
    p = get_json("/api/traces/not-an-id", 404);
    json_decref(p);
    p = get_json("/api/traces?limit=1000", 400);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(p, "errors"), 0), "field")),
                        "limit");
    json_decref(p);
}

static void test_refusals(void **state)
{
    (void)state;
    th_response r;
    assert_int_equal(http("POST", "/v1/traces", "application/json", "{\"resourceSpans\":[", &r),
                     400);
    assert_non_null(strstr(th_header(&r, "content-type"), "application/problem+json"));
    th_response_free(&r);
    assert_int_equal(
        http("POST", "/v1/traces", "application/json",
             "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"abc\"}]}]}]}", &r),
        400);
    json_t *p = json_loadb(r.body, r.body_len, 0, NULL);
    th_response_free(&r);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(p, "errors"), 0), "field")),
                        "resourceSpans[0].scopeSpans[0].spans[0].traceId");
    json_decref(p);
    assert_int_equal(http("POST", "/v1/traces", "application/x-protobuf", "\x0a\x00", &r), 415);
    th_response_free(&r);
    /* Over the 8 MiB body limit: refused from the headers, before the body is read. */
    const char big[] = "POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                       "application/json\r\nContent-Length: 9000000\r\n\r\n{\"resourceSpans\":[";
    assert_int_equal(th_roundtrip(port, big, sizeof big - 1, &r, 20000), 413);
    th_response_free(&r);
    /* Nothing refused was stored. */
    json_t *list = get_json("/api/traces", 200);
    assert_int_equal(json_array_size(json_object_get(list, "traces")), 1);
    json_decref(list);
}

static long long metric(const char *name)
{
    th_response r;
    assert_int_equal(http("GET", "/metrics", NULL, NULL, &r), 200);
    const char *at = strstr(r.body, name);
    long long v = -1;
    while (at && (at != r.body && at[-1] != '\n'))
        at = strstr(at + 1, name);
    if (at) v = atoll(at + strlen(name) + 1);
    th_response_free(&r);
    return v;
}

static void test_eviction_at_the_bound(void **state)
{
    (void)state;
    /* max_spans is 100: T1 holds 3; T2 60; T3 60 → T1, the oldest arrival, then T2 go. */
    char *b2 = export_body("gateway", T2, 60, "c7ad", NULL);
    char *b3 = export_body("gateway", T3, 60, "d7ad", NULL);
    post_ok(b2);
    json_t *list = get_json("/api/traces", 200);
    assert_int_equal(json_array_size(json_object_get(list, "traces")), 2);
    json_decref(list);
    post_ok(b3);
    free(b2);
    free(b3);
    list = get_json("/api/traces", 200);
    json_t *ts = json_object_get(list, "traces");
    assert_int_equal(json_array_size(ts), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ts, 0), "trace_id")), T3);
    json_decref(list);
    char path[128];
    snprintf(path, sizeof path, "/api/traces/%s", T1);
    json_decref(get_json(path, 404));
    assert_int_equal(metric("traces_evicted_traces_total"), 2);
    assert_int_equal(metric("traces_evicted_spans_total"), 63);
    assert_int_equal(metric("traces_spans_stored_total"), 123);
    assert_int_equal(metric("traces_requests_rejected_total"), 3);
}

static void test_store_is_owner_only(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/traces.db", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 077, 0);
}

static void test_shoal_trace_draws_it(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s trace --receiver http://127.0.0.1:%d --width 20 2>&1",
             th_bin("shoal"), port);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char out[16384];
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    int rc = pclose(f);
    if (rc != 0) fprintf(stderr, "%s\n", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, T3));
    assert_non_null(strstr(out, "60 spans"));
    assert_non_null(strstr(out, "gateway        POST /orders"));
    assert_non_null(strstr(out, "gateway          POST /reservations"));
    assert_non_null(strstr(out, "|####################|"));
    assert_non_null(strstr(out, "error: refused"));
    snprintf(cmd, sizeof cmd, "%s trace --receiver http://127.0.0.1:%d --order nothing 2>&1",
             th_bin("shoal"), port);
    f = popen(cmd, "r");
    assert_non_null(f);
    while (fread(out, 1, sizeof out, f) > 0) {
    }
    assert_int_equal(WEXITSTATUS(pclose(f)), 1);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir)) return -1;
    port = th_free_port();
    char portarg[16], db[128], logp[128];
    snprintf(portarg, sizeof portarg, "%d", port);
    snprintf(db, sizeof db, "SHOAL_DB__URL=sqlite:%s/traces.db", dir);
    snprintf(logp, sizeof logp, "%s/traces.log", dir);
    char *argv[] = {"shoal-traces", "--port", portarg, NULL};
    char *env[] = {db, "SHOAL_TRACES__MAX_SPANS=100", "SHOAL_TELEMETRY__OTLP_ENDPOINT=", NULL};
    pid = th_spawn(argv, env, logp);
    if (th_wait_port(port, 30000) != 0) return -1;
    for (int i = 0; i < 300; i++) {
        th_response r;
        int status = http("GET", "/readyz", NULL, NULL, &r);
        if (status > 0) th_response_free(&r);
        if (status == 200) return 0;
        usleep(100000);
    }
    return -1;
}

static int teardown(void **state)
{
    (void)state;
    if (pid > 0) th_stop(pid, SIGTERM, 10000);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_export_and_api),  cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_eviction_at_the_bound), cmocka_unit_test(test_store_is_owner_only),
        cmocka_unit_test(test_shoal_trace_draws_it),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
