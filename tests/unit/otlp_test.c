/*
 * Unit tests for the otlp module: the exact JSON shape of a span, string
 * escaping, the body bound, the endpoint and status-line parsers, and the
 * exporter against a real receiver socket (export, a receiver that is down,
 * one that never answers, and the tracers' full rings counted as drops).
 */
#include <shoal/clock.h>
#include <shoal/metrics.h>
#include <shoal/otlp.h>
#include <shoal/rand.h>
#include <shoal/trace.h>

#include "otlp/otlp_int.h"
#include "otlp_rx.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static const sl_otlp_resource RES = {
    .service_name = "hello", .service_version = "1.2.3", .instance_id = "host:42"};

static void sample_span(sl_span_data *d)
{
    memset(d, 0, sizeof *d);
    for (int i = 0; i < 16; i++)
        d->ctx.trace_id[i] = (uint8_t)(0xa0 + i);
    for (int i = 0; i < 8; i++) {
        d->ctx.span_id[i] = (uint8_t)(0x10 + i);
        d->parent_span_id[i] = (uint8_t)(0x20 + i);
    }
    d->ctx.flags = 1;
    d->kind = SL_SPAN_SERVER;
    d->status = SL_SPAN_STATUS_ERROR;
    d->start_ns = 1700000000000000000;
    d->end_ns = 1700000000001500000;
    snprintf(d->name, sizeof d->name, "GET /hello/{name}");
    snprintf(d->status_message, sizeof d->status_message, "Internal Server Error");
    d->n_attrs = 2;
    snprintf(d->attrs[0].key, sizeof d->attrs[0].key, "http.route");
    d->attrs[0].type = SL_SPAN_ATTR_STR;
    snprintf(d->attrs[0].s, sizeof d->attrs[0].s, "/hello/{name}");
    snprintf(d->attrs[1].key, sizeof d->attrs[1].key, "http.response.status_code");
    d->attrs[1].type = SL_SPAN_ATTR_INT;
    d->attrs[1].i = 500;
    d->n_links = 1;
    memset(d->links[0].trace_id, 0x11, 16);
    memset(d->links[0].span_id, 0x22, 8);
}

static void test_encode_exact_shape(void **state)
{
    (void)state;
    sl_otlp_enc e;
    sl_otlp_enc_init(&e, 1 << 20);
    sl_span_data d;
    sample_span(&d);
    assert_int_equal(sl_otlp_enc_begin(&e, &RES), 0);
    assert_int_equal(sl_otlp_enc_span(&e, &d), 0);
    /* A root span: no parentSpanId; an internal span with unset status: no message. */
    memset(d.parent_span_id, 0, 8);
    d.kind = SL_SPAN_INTERNAL;
    d.status = SL_SPAN_STATUS_UNSET;
    d.n_attrs = 0;
    d.n_links = 0;
    d.dropped_attrs = 3;
    assert_int_equal(sl_otlp_enc_span(&e, &d), 0);
    sl_otlp_enc_end(&e);
    assert_int_equal(e.nspans, 2);
    const char *want =
        "{\"resourceSpans\":[{\"resource\":{\"attributes\":["
        "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"hello\"}},"
        "{\"key\":\"service.instance.id\",\"value\":{\"stringValue\":\"host:42\"}},"
        "{\"key\":\"service.version\",\"value\":{\"stringValue\":\"1.2.3\"}}]},"
        "\"scopeSpans\":[{\"scope\":{\"name\":\"shoal\",\"version\":\"1.2.3\"},\"spans\":["
        "{\"traceId\":\"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf\",\"spanId\":\"1011121314151617\","
        "\"parentSpanId\":\"2021222324252627\",\"name\":\"GET /hello/{name}\",\"kind\":2,"
        "\"startTimeUnixNano\":\"1700000000000000000\",\"endTimeUnixNano\":\"1700000000001500000\","
        "\"attributes\":[{\"key\":\"http.route\",\"value\":{\"stringValue\":\"/hello/{name}\"}},"
        "{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":\"500\"}}],"
        "\"links\":[{\"traceId\":\"11111111111111111111111111111111\",\"spanId\":"
        "\"2222222222222222\"}],"
        "\"status\":{\"code\":2,\"message\":\"Internal Server Error\"}},"
        "{\"traceId\":\"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf\",\"spanId\":\"1011121314151617\","
        "\"name\":\"GET /hello/{name}\",\"kind\":1,"
        "\"startTimeUnixNano\":\"1700000000000000000\",\"endTimeUnixNano\":\"1700000000001500000\","
        "\"attributes\":[],\"droppedAttributesCount\":3,\"status\":{\"code\":0}}"
        "]}]}]}";
    assert_int_equal(e.len, strlen(want));
    assert_memory_equal(e.buf, want, e.len);
    /* And the independent receiver's checks accept it. */
    json_error_t jerr;
    json_t *doc = json_loadb(e.buf, e.len, 0, &jerr);
    assert_non_null(doc);
    char why[256] = "";
    assert_int_equal(th_otlp_validate(doc, why, sizeof why), 0);
    json_decref(doc);
    sl_otlp_enc_free(&e);
}

static void test_encode_escaping(void **state)
{
    (void)state;
    sl_otlp_enc e;
    sl_otlp_enc_init(&e, 1 << 20);
    sl_span_data d;
    sample_span(&d);
    /* quote, backslash, newline, tab, a control byte, valid UTF-8, invalid UTF-8 (a lone
     * continuation byte, an overlong form, a surrogate), DEL kept as is */
    snprintf(d.attrs[0].s, sizeof d.attrs[0].s,
             "a\"b\\c\nd\te\x01"
             "f\xc3\xa9g\x80h\xc0\xafi\xed\xa0\x80j\x7f");
    assert_int_equal(sl_otlp_enc_begin(&e, &RES), 0);
    assert_int_equal(sl_otlp_enc_span(&e, &d), 0);
    sl_otlp_enc_end(&e);
    char *body = strndup(e.buf, e.len);
    assert_non_null(strstr(body, "\"a\\\"b\\\\c\\nd\\te\\u0001f\xc3\xa9g\xef\xbf\xbdh\xef\xbf\xbd"
                                 "\xef\xbf\xbdi\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdj\x7f\""));
    json_error_t jerr;
    json_t *doc = json_loadb(e.buf, e.len, 0, &jerr); /* jansson rejects invalid UTF-8 */
    assert_non_null(doc);
    json_t *attr = json_array_get(
        json_object_get(
            json_array_get(
                json_object_get(
                    json_array_get(
                        json_object_get(json_array_get(json_object_get(doc, "resourceSpans"), 0),
                                        "scopeSpans"),
                        0),
                    "spans"),
                0),
            "attributes"),
        0);
    const char *v =
        json_string_value(json_object_get(json_object_get(attr, "value"), "stringValue"));
    assert_non_null(v);
    assert_int_equal(strncmp(v,
                             "a\"b\\c\nd\te\x01"
                             "f\xc3\xa9g",
                             13),
                     0);
    json_decref(doc);
    free(body);
    sl_otlp_enc_free(&e);
}

/* The fast writer and the checked one give the same bytes, escapes, extremes and counts
 * included. */
static void test_encode_writers_agree(void **state)
{
    (void)state;
    sl_otlp_enc fast, checked;
    sl_otlp_enc_init(&fast, 1 << 20);
    sl_otlp_enc_init(&checked, 1 << 20);
    assert_int_equal(sl_otlp_enc_begin(&fast, &RES), 0);
    assert_int_equal(sl_otlp_enc_begin(&checked, &RES), 0);
    sl_span_data d;
    for (int round = 0; round < 4; round++) {
        sample_span(&d);
        snprintf(d.attrs[0].s, sizeof d.attrs[0].s,
                 "a\"b\\c\nd\te\x01\x1f\r\xc3\xa9\x80\xed\xa0\x80\x7f");
        snprintf(d.name, sizeof d.name, "%s", round & 1 ? "\xf0\x9f\x90\x9f fish\x02" : "GET /");
        d.attrs[1].i = round == 0 ? INT64_MIN : round == 1 ? INT64_MAX : round == 2 ? -1 : 0;
        d.start_ns = round == 3 ? -5 : INT64_MAX - 1;
        d.end_ns = round == 2 ? 0 : INT64_MAX;
        d.kind = (sl_span_kind)(round + 2);
        d.status = (sl_span_status)(round % 3);
        d.dropped_attrs = (uint32_t)round * 1000000000u;
        d.dropped_links = round == 1 ? UINT32_MAX : 0;
        d.n_links = (uint32_t)round + 1;
        d.n_attrs = round == 3 ? SL_SPAN_ATTRS_MAX : 2;
        for (uint32_t i = 2; i < d.n_attrs; i++) {
            snprintf(d.attrs[i].key, sizeof d.attrs[i].key, "k%u", i);
            d.attrs[i].type = i & 1 ? SL_SPAN_ATTR_INT : SL_SPAN_ATTR_STR;
            d.attrs[i].i = -(int64_t)i;
            memset(d.attrs[i].s, '"', sizeof d.attrs[i].s - 1);
            d.attrs[i].s[sizeof d.attrs[i].s - 1] = '\0';
        }
        assert_int_equal(sl_otlp_enc_span(&fast, &d), 0);
        assert_int_equal(sl__otlp_enc_span_checked(&checked, &d), 0);
    }
    sl_otlp_enc_end(&fast);
    sl_otlp_enc_end(&checked);
    assert_int_equal(fast.nspans, 4);
    assert_int_equal(checked.nspans, 4);
    assert_int_equal(fast.len, checked.len);
    assert_memory_equal(fast.buf, checked.buf, fast.len);
    static const char min[] = "\"intValue\":\"-9223372036854775808\"";
    assert_non_null(memmem(fast.buf, fast.len, min, sizeof min - 1));
    json_error_t jerr;
    json_t *doc = json_loadb(fast.buf, fast.len, 0, &jerr);
    assert_non_null(doc);
    json_decref(doc);
    sl_otlp_enc_free(&fast);
    sl_otlp_enc_free(&checked);
}

static void test_encode_limit(void **state)
{
    (void)state;
    sl_otlp_enc e;
    sl_otlp_enc_init(&e, 4096);
    sl_span_data d;
    sample_span(&d);
    assert_int_equal(sl_otlp_enc_begin(&e, &RES), 0);
    int rc = 0;
    size_t added = 0;
    while ((rc = sl_otlp_enc_span(&e, &d)) == 0)
        added++;
    assert_int_equal(rc, SL_ELIMIT);
    assert_true(added >= 2);
    assert_int_equal(e.nspans, added);
    sl_otlp_enc_end(&e);
    assert_true(e.len <= 4096);
    json_error_t jerr;
    json_t *doc = json_loadb(e.buf, e.len, 0, &jerr); /* still one complete request */
    assert_non_null(doc);
    char why[256];
    assert_int_equal(th_otlp_validate(doc, why, sizeof why), 0);
    json_decref(doc);
    /* The minimum bound still takes the resource, and a resource without a name is refused. */
    sl_otlp_resource none = {.service_name = ""};
    assert_int_equal(sl_otlp_enc_begin(&e, &none), SL_EINVAL);
    sl_otlp_enc_free(&e);
}

static void test_endpoint_parse(void **state)
{
    (void)state;
    sl_otlp_endpoint ep;
#define P(s) sl_otlp_endpoint_parse(s, strlen(s), &ep)
    assert_int_equal(P("http://127.0.0.1:4318"), 0);
    assert_string_equal(ep.host, "127.0.0.1");
    assert_int_equal(ep.port, 4318);
    assert_string_equal(ep.path, "/v1/traces");
    assert_int_equal(P("http://collector/"), 0);
    assert_string_equal(ep.host, "collector");
    assert_int_equal(ep.port, 4318);
    assert_string_equal(ep.path, "/v1/traces");
    assert_int_equal(P("http://[::1]:9999/otlp/v1/traces"), 0);
    assert_string_equal(ep.host, "::1");
    assert_int_equal(ep.port, 9999);
    assert_string_equal(ep.path, "/otlp/v1/traces");
    const char *bad[] = {"",
                         "http://",
                         "https://127.0.0.1:4318",
                         "http://:4318",
                         "http://h:0",
                         "http://h:65536",
                         "http://h:12a",
                         "http://h/a b",
                         "http://h/a?b",
                         "ftp://h",
                         "http://h x",
                         "http://[::1",
                         "http://h:"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(P(bad[i]), SL_EPARSE);
#undef P
}

static void test_response_status(void **state)
{
    (void)state;
    int st = 0;
#define R(s) sl_otlp_response_status(s, strlen(s), &st)
    assert_int_equal(R("HTTP/1.1 200 OK\r\n"), 0);
    assert_int_equal(st, 200);
    assert_int_equal(R("HTTP/1.0 503\r\n"), 0);
    assert_int_equal(st, 503);
    assert_int_equal(R("HTTP/1.1 20"), SL_EAGAIN);
    assert_int_equal(R("HTTP/"), SL_EAGAIN);
    assert_int_equal(R("HTTP/2 200 OK\r\n"), SL_EPARSE);
    assert_int_equal(R("HTTP/1.1 2x0 OK\r\n"), SL_EPARSE);
    assert_int_equal(R("HTTP/1.1 099 OK\r\n"), SL_EPARSE);
    assert_int_equal(R("SSH-2.0-x\r\n"), SL_EPARSE);
#undef R
    /* The head: where it ends, the body's length, and whether the connection may be kept. */
    sl__otlp_head h;
#define H(s) sl__otlp_response_head(s, strlen(s), &h)
    const char *keep = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                       "content-length:  2 \r\n\r\n{}";
    assert_int_equal(H(keep), 0);
    assert_int_equal(h.status, 200);
    assert_int_equal(h.head_len, strlen(keep) - 2);
    assert_int_equal(h.body_len, 2);
    assert_int_equal(h.keep, 1);
    assert_int_equal(H("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"), 0);
    assert_int_equal(h.keep, 0);
    assert_int_equal(H("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), 0);
    assert_int_equal(h.keep, 0);
    assert_int_equal(H("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
    assert_int_equal(h.keep, 0);
    assert_int_equal(H("HTTP/1.1 200 OK\r\n\r\n"), 0); /* no length: read to the close */
    assert_int_equal(h.keep, 0);
    assert_int_equal(H("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"), SL_EAGAIN);
    assert_int_equal(H("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), SL_EPARSE);
    assert_int_equal(H("HTTP/1.1 200 OK\r\nContent-Length: 9999999999\r\n\r\n"), SL_EPARSE);
#undef H
}

/* ---- the exporter against a real socket ------------------------------------------------ */

typedef struct fixture {
    sl_rand rand;
    sl_tracer *tracer;
    sl_metrics *metrics;
    sl_otlp_exporter *ex;
} fixture;

static void make_tracer(fixture *f, uint32_t buffer)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(sl_rand_seed_os(&f->rand), 0);
    sl_tracer_config tc;
    sl_tracer_config_init(&tc);
    tc.service = "hello";
    tc.clock = sl_clock_system();
    tc.rand = &f->rand;
    tc.buffer_spans = buffer;
    assert_int_equal(sl_tracer_new(&tc, &f->tracer), 0);
    assert_int_equal(sl_metrics_new(2, &f->metrics), 0);
}

static void make_exporter(fixture *f, int port, uint32_t batch, uint32_t timeout_ms)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    sl_otlp_config oc;
    sl_otlp_config_init(&oc);
    oc.endpoint = url;
    oc.resource = RES;
    oc.batch_max = batch;
    oc.flush_ms = 50;
    oc.timeout_ms = timeout_ms;
    oc.poll_ms = 5;
    oc.metrics = f->metrics;
    oc.shard = 1;
    assert_int_equal(sl_otlp_exporter_new(&oc, &f->ex), 0);
    assert_int_equal(sl_otlp_exporter_add(f->ex, f->tracer), 0);
    assert_int_equal(sl_otlp_exporter_start(f->ex), 0);
}

static void fixture_free(fixture *f)
{
    sl_otlp_exporter_free(f->ex);
    sl_tracer_free(f->tracer);
    sl_metrics_free(f->metrics);
}

static void spans(fixture *f, int n, int with_parent)
{
    sl_span *root;
    sl_span_start(f->tracer, "root", SL_SPAN_SERVER, NULL, &root);
    sl_trace_ctx rc = *sl_span_context(root);
    for (int i = 1; i < n; i++) {
        sl_span *s;
        sl_span_start(f->tracer, "child", SL_SPAN_CLIENT, with_parent ? &rc : NULL, &s);
        sl_span_set_attr_int(s, "i", i);
        sl_span_end(s);
    }
    sl_span_end(root);
}

static int wait_until(size_t (*get)(void *), void *arg, size_t want, int ms)
{
    for (int t = 0; t < ms; t += 10) {
        if (get(arg) >= want) return 1;
        usleep(10000);
    }
    return get(arg) >= want;
}

static size_t rx_spans(void *a)
{
    return th_otlp_rx_span_count(a);
}

static size_t ex_dropped_failed(void *a)
{
    sl_otlp_stats st;
    sl_otlp_exporter_stats(a, &st);
    return st.dropped_failed;
}

static void test_exporter_delivers(void **state)
{
    (void)state;
    th_otlp_rx *rx = th_otlp_rx_start(TH_OTLP_OK);
    fixture f;
    make_tracer(&f, 1024);
    make_exporter(&f, th_otlp_rx_port(rx), 64, 5000);
    spans(&f, 300, 1); /* several batches of at most 64 */
    assert_true(wait_until(rx_spans, rx, 300, 60000));
    char first[512];
    assert_int_equal(th_otlp_rx_violations(rx, first, sizeof first), 0);
    assert_true(th_otlp_rx_requests(rx) >= 300 / 64);
    json_t *all = th_otlp_rx_spans(rx);
    assert_int_equal(json_array_size(all), 300);
    json_t *sp = json_array_get(all, 299); /* the root ends last */
    assert_string_equal(json_string_value(json_object_get(sp, "name")), "root");
    assert_string_equal(json_string_value(json_object_get(sp, "service")), "hello");
    assert_null(json_object_get(sp, "parentSpanId"));
    json_decref(all);
    sl_otlp_exporter_stop(f.ex);
    sl_otlp_stats st;
    sl_otlp_exporter_stats(f.ex, &st);
    assert_int_equal(st.exported, 300);
    assert_int_equal(st.dropped_failed + st.dropped_full + st.dropped_large, 0);
    /* The counters are on the registry. */
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sl_metrics_render(f.metrics, &text, &len), 0);
    assert_non_null(strstr(text, "telemetry_spans_exported_total 300"));
    assert_non_null(strstr(text, "telemetry_export_requests_total{result=\"ok\"}"));
    free(text);
    fixture_free(&f);
    th_otlp_rx_stop(rx);
}

static void test_exporter_collector_down(void **state)
{
    (void)state;
    /* A port nobody listens on: every request fails at once; spans are dropped and counted. */
    th_otlp_rx *rx = th_otlp_rx_start(TH_OTLP_OK);
    int port = th_otlp_rx_port(rx);
    th_otlp_rx_stop(rx);
    fixture f;
    make_tracer(&f, 1024);
    make_exporter(&f, port, 16, 1000);
    spans(&f, 40, 1);
    assert_true(wait_until(ex_dropped_failed, f.ex, 40, 60000));
    sl_otlp_stats st;
    sl_otlp_exporter_stats(f.ex, &st);
    assert_int_equal(st.exported, 0);
    assert_true(st.requests_failed >= 3);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sl_metrics_render(f.metrics, &text, &len), 0);
    assert_non_null(strstr(text, "telemetry_spans_dropped_total{reason=\"export_failed\"} 40"));
    assert_non_null(strstr(text, "telemetry_export_requests_total{result=\"connect_error\"}"));
    free(text);
    fixture_free(&f);
}

static void test_exporter_collector_silent(void **state)
{
    (void)state;
    /* A collector that accepts and never answers: each request costs the exporter thread one
     * timeout; meanwhile the tracer's small ring fills and the worker drops (and counts)
     * instead of waiting. Ending spans never blocks. */
    th_otlp_rx *rx = th_otlp_rx_start(TH_OTLP_SILENT);
    fixture f;
    make_tracer(&f, 16);
    make_exporter(&f, th_otlp_rx_port(rx), 8, 300);
    for (int round = 0; round < 5; round++) {
        spans(&f, 40, 1);
        usleep(100000);
    }
    sl_otlp_exporter_stop(f.ex);
    sl_otlp_stats st;
    sl_otlp_exporter_stats(f.ex, &st);
    sl_tracer_stats ts;
    sl_tracer_stats_get(f.tracer, &ts);
    assert_int_equal(st.exported, 0);
    assert_true(st.dropped_failed > 0);
    assert_true(ts.dropped_full > 0);
    assert_int_equal(st.dropped_full, ts.dropped_full);
    /* Every recorded span is accounted for: failed, or dropped by the full ring. */
    assert_int_equal(st.dropped_failed + st.dropped_full, ts.recorded + ts.dropped_full);
    char first[256];
    assert_int_equal(th_otlp_rx_violations(rx, first, sizeof first), 0);
    fixture_free(&f);
    th_otlp_rx_stop(rx);
}

static void test_exporter_rejects_bad_settings(void **state)
{
    (void)state;
    sl_otlp_config oc;
    sl_otlp_config_init(&oc);
    sl_otlp_exporter *ex = NULL;
    oc.resource = RES;
    oc.endpoint = "https://127.0.0.1:4318";
    assert_int_equal(sl_otlp_exporter_new(&oc, &ex), SL_EINVAL);
    oc.endpoint = "http://127.0.0.1:4318";
    oc.batch_max = 0;
    assert_int_equal(sl_otlp_exporter_new(&oc, &ex), SL_EINVAL);
    oc.batch_max = 10;
    oc.max_tracers = 1;
    assert_int_equal(sl_otlp_exporter_new(&oc, &ex), 0);
    fixture f;
    make_tracer(&f, 16);
    assert_int_equal(sl_otlp_exporter_add(ex, f.tracer), 0);
    assert_int_equal(sl_otlp_exporter_add(ex, f.tracer), SL_ELIMIT);
    sl_otlp_exporter_free(ex); /* never started: nothing to stop */
    fixture_free(&f);
}

static void count_cb(const sl_span_data *span, void *data)
{
    char *names = data;
    strcat(names, span->name);
    strcat(names, ";");
}

/* Head sampling at 0 with tail keep: only the error span and the slow span are exported; their
 * contexts stay unsampled, so callees follow the head decision. */
static void test_tail_keep(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 1700000000000000000);
    sl_rand r;
    sl_rand_seed(&r, 7);
    sl_tracer_config tc;
    sl_tracer_config_init(&tc);
    tc.service = "hello";
    tc.clock = &fc.clock;
    tc.rand = &r;
    tc.sample_ratio = 0.0;
    tc.keep_errors = 1;
    tc.keep_slow_ns = 50 * 1000000LL;
    sl_tracer *t = NULL;
    assert_int_equal(sl_tracer_new(&tc, &t), 0);
    sl_span *ok, *err, *slow;
    sl_span_start(t, "ok", SL_SPAN_SERVER, NULL, &ok);
    assert_int_equal(sl_span_context(ok)->flags & SL_TRACE_FLAG_SAMPLED, 0);
    assert_true(sl_span_is_recording(ok)); /* tentatively */
    sl_span_end(ok);
    sl_span_start(t, "err", SL_SPAN_SERVER, NULL, &err);
    sl_span_set_status(err, SL_SPAN_STATUS_ERROR, "boom");
    sl_span_end(err);
    sl_span_start(t, "slow", SL_SPAN_SERVER, NULL, &slow);
    sl_fake_clock_advance(&fc, 50 * 1000000LL);
    sl_span_end(slow);
    char names[128] = "";
    assert_int_equal(sl_tracer_drain(t, count_cb, names, 16), 2);
    assert_string_equal(names, "err;slow;");
    sl_tracer_stats st;
    sl_tracer_stats_get(t, &st);
    assert_int_equal(st.kept_unsampled, 2);
    assert_int_equal(st.unsampled, 1);
    assert_int_equal(st.recorded, 2);
    sl_tracer_free(t);

    /* Without tail keep an unsampled span does not record at all. */
    tc.keep_errors = 0;
    tc.keep_slow_ns = 0;
    assert_int_equal(sl_tracer_new(&tc, &t), 0);
    sl_span_start(t, "err", SL_SPAN_SERVER, NULL, &err);
    assert_false(sl_span_is_recording(err));
    sl_span_set_status(err, SL_SPAN_STATUS_ERROR, "boom");
    sl_span_end(err);
    assert_int_equal(sl_tracer_drain(t, count_cb, names, 16), 0);
    sl_tracer_free(t);
}

static void test_settings(void **state)
{
    (void)state;
    sl_config *c = NULL;
    char err[SL_CONFIG_ERR_MAX];
    const char *y = "telemetry:\n  otlp_endpoint: http://127.0.0.1:4318\n  batch_max: 100\n";
    assert_int_equal(sl_config_load_string("t.yaml", y, strlen(y), &c, err), 0);
    sl_otlp_settings s;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    assert_int_equal(sl_otlp_settings_read(c, 0.25, &s, &errs), 0);
    assert_string_equal(s.endpoint, "http://127.0.0.1:4318");
    assert_int_equal(s.batch_max, 100);
    assert_true(s.sample_ratio == 0.25);
    assert_int_equal(s.flush_ms, 1000);
    sl_config_free(c);
    const char *bad[] = {"telemetry:\n  otlp_endpoint: https://x\n",
                         "telemetry:\n  sample_ratio: 2\n", "telemetry:\n  nope: 1\n",
                         "telemetry:\n  batch_max: 0\n"};
    const char *field[] = {"telemetry.otlp_endpoint", "telemetry.sample_ratio", "telemetry.nope",
                           "telemetry.batch_max"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(sl_config_load_string("t.yaml", bad[i], strlen(bad[i]), &c, err), 0);
        sl_json_errors_init(&errs);
        assert_int_equal(sl_otlp_settings_read(c, 1.0, &s, &errs), SL_EINVAL);
        assert_true(errs.count >= 1);
        assert_non_null(strstr(errs.items[0].message, field[i]));
        assert_non_null(strstr(errs.items[0].message, "t.yaml:2"));
        sl_config_free(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_exact_shape),
        cmocka_unit_test(test_encode_escaping),
        cmocka_unit_test(test_encode_writers_agree),
        cmocka_unit_test(test_encode_limit),
        cmocka_unit_test(test_endpoint_parse),
        cmocka_unit_test(test_response_status),
        cmocka_unit_test(test_exporter_delivers),
        cmocka_unit_test(test_exporter_collector_down),
        cmocka_unit_test(test_exporter_collector_silent),
        cmocka_unit_test(test_exporter_rejects_bad_settings),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_tail_keep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
