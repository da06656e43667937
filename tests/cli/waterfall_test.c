/*
 * The waterfall of `shoal trace` (src/cli/waterfall.c) and the telemetry block of `shoal up`
 * (src/cli/telemetry.c): spans in, text out; settings in, receiver and endpoint out.
 */
#include "trace.h"

#include <shoal/config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static json_t *span(const char *id, const char *parent, const char *service, const char *name,
                    long long start, long long end, const char *status)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s}", "span_id", id,
                     "parent_span_id", parent, "service", service, "name", name, "kind", "server",
                     "start_ns", (json_int_t)start, "end_ns", (json_int_t)end, "status", status,
                     "status_message", strcmp(status, "error") == 0 ? "boom" : "");
}

static char *render(json_t *spans, int width)
{
    json_t *t =
        json_pack("{s:s, s:o}", "trace_id", "0af7651916cd43dd8448eb211c80319c", "spans", spans);
    char *out = NULL;
    assert_int_equal(cli_waterfall(t, width, &out), 0);
    json_decref(t);
    assert_non_null(out);
    return out;
}

/* The n-th line (0-based) of text, copied into buf. */
static const char *nth_line(const char *text, int n, char *buf, size_t cap)
{
    const char *p = text;
    for (int i = 0; i < n && p; i++) {
        p = strchr(p, '\n');
        if (p) p++;
    }
    assert_non_null(p);
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    assert_true(len < cap);
    memcpy(buf, p, len);
    buf[len] = '\0';
    return buf;
}

/* The bar of a line: the text between the first and the last '|'. */
static void bar_of(const char *line, char *bar, size_t cap)
{
    const char *a = strchr(line, '|'), *b = strrchr(line, '|');
    assert_non_null(a);
    assert_true(b > a && (size_t)(b - a - 1) < cap);
    memcpy(bar, a + 1, (size_t)(b - a - 1));
    bar[b - a - 1] = '\0';
}

static void test_tree_order_indent_and_bars(void **state)
{
    (void)state;
    /* Given out of order: children are drawn under their parent, earliest first. */
    json_t *spans = json_array();
    json_array_append_new(spans, span("c2", "b1", "payment", "POST /charges", 60, 100, "ok"));
    json_array_append_new(spans, span("a1", "", "gateway", "POST /api/v1/orders", 0, 100, "unset"));
    json_array_append_new(spans,
                          span("c1", "b1", "inventory", "POST /reservations", 10, 50, "error"));
    json_array_append_new(spans, span("b1", "a1", "order", "POST /orders", 0, 100, "unset"));
    char *out = render(spans, 10);
    char l[512], bar[64];
    assert_non_null(strstr(nth_line(out, 0, l, sizeof l), "0af7651916cd43dd8448eb211c80319c"));
    assert_non_null(strstr(l, "4 spans"));
    assert_non_null(strstr(l, "error"));
    assert_non_null(strstr(nth_line(out, 1, l, sizeof l), "SERVICE"));
    /* Depth 0, 1, 2, 2: the name column is indented by two per level. */
    assert_non_null(strstr(nth_line(out, 2, l, sizeof l), "gateway        POST /api/v1/orders"));
    bar_of(l, bar, sizeof bar);
    assert_string_equal(bar, "##########");
    assert_non_null(strstr(nth_line(out, 3, l, sizeof l), "order            POST /orders"));
    assert_non_null(strstr(nth_line(out, 4, l, sizeof l), "inventory          POST /reservations"));
    bar_of(l, bar, sizeof bar);
    assert_string_equal(bar, " ####     "); /* 10..50 of 0..100 in 10 columns */
    assert_non_null(strstr(l, "error: boom"));
    assert_non_null(strstr(nth_line(out, 5, l, sizeof l), "payment            POST /charges"));
    bar_of(l, bar, sizeof bar);
    assert_string_equal(bar, "      ####");
    assert_non_null(strstr(l, "  ok"));
    assert_non_null(strstr(l, "40ns"));
    free(out);
}

static void test_orphans_cycles_and_tiny_spans(void **state)
{
    (void)state;
    json_t *spans = json_array();
    /* A parent that is not in the trace: drawn as a root. */
    json_array_append_new(
        spans, span("o1", "ffffffffffffffff", "cart", "consume", 1000000, 2000000000, "unset"));
    /* Two spans naming each other as parent: both drawn once. */
    json_array_append_new(spans, span("x1", "x2", "a", "one", 5, 6, "unset"));
    json_array_append_new(spans, span("x2", "x1", "b", "two", 7, 7, "unset"));
    char *out = render(spans, 20);
    int lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 2 + 3);
    assert_non_null(strstr(out, "cart           consume"));
    assert_non_null(strstr(out, "2.00s"));
    /* A zero-length span still gets one column of bar. */
    char l[512], bar[64];
    for (int i = 2; i < 5; i++) {
        bar_of(nth_line(out, i, l, sizeof l), bar, sizeof bar);
        assert_int_equal(strlen(bar), 20);
        assert_non_null(strchr(bar, '#'));
    }
    free(out);
}

static void test_long_names_are_cut_on_characters(void **state)
{
    (void)state;
    char name[200];
    strcpy(name, "GET /");
    for (int i = 0; i < 60; i++)
        strcat(name, "\xc3\xa9"); /* é, two bytes */
    json_t *spans = json_array();
    json_array_append_new(spans, span("a", "", "a-very-long-service-name", name, 0, 10, "unset"));
    char *out = render(spans, 10);
    char l[512];
    nth_line(out, 2, l, sizeof l);
    /* Service cut to 14 columns, name to its column: no broken UTF-8 sequence. */
    assert_non_null(strstr(l, "a-very-long-se "));
    for (const char *p = l; *p; p++)
        if ((unsigned char)*p == 0xc3) assert_true((unsigned char)p[1] == 0xa9);
    free(out);
}

static void test_bad_shapes(void **state)
{
    (void)state;
    char *out = NULL;
    json_t *t = json_pack("{s:s}", "trace_id", "x");
    assert_int_equal(cli_waterfall(t, 40, &out), SL_EINVAL);
    json_decref(t);
    t = json_pack("{s:[{s:s}]}", "spans", "span_id", "a"); /* no times */
    assert_int_equal(cli_waterfall(t, 40, &out), SL_EINVAL);
    json_decref(t);
    assert_null(out);
    t = json_pack("{s:s, s:[]}", "trace_id", "t", "spans");
    assert_int_equal(cli_waterfall(t, 40, &out), 0);
    assert_non_null(strstr(out, "0 spans"));
    free(out);
    json_decref(t);
}

static void test_durations(void **state)
{
    (void)state;
    char b[32];
    cli_trace_duration(850, b, sizeof b);
    assert_string_equal(b, "850ns");
    cli_trace_duration(850000, b, sizeof b);
    assert_string_equal(b, "850us");
    cli_trace_duration(12345678, b, sizeof b);
    assert_string_equal(b, "12.3ms");
    cli_trace_duration(1250000000, b, sizeof b);
    assert_string_equal(b, "1.25s");
    cli_trace_duration(-5, b, sizeof b);
    assert_string_equal(b, "0ns");
}

static sl_config *yaml(const char *text)
{
    sl_config *cfg = NULL;
    char err[SL_CONFIG_ERR_MAX];
    assert_int_equal(sl_config_load_string("t.yaml", text, strlen(text), &cfg, err), 0);
    return cfg;
}

static void test_telemetry_block(void **state)
{
    (void)state;
    cli_telemetry t;
    /* No block: nothing exported, no receiver. */
    sl_config *cfg = yaml("data_dir: d\n");
    assert_int_equal(cli_telemetry_read(cfg, "/tmp/d", &t), 0);
    assert_int_equal(t.receiver_port, 0);
    assert_string_equal(t.endpoint, "");
    sl_config_free(cfg);
    /* The local receiver: its port, store and bounds; every process exports to it. */
    cfg = yaml("telemetry:\n  receiver: {port: 14318, max_spans: 500}\n");
    assert_int_equal(cli_telemetry_read(cfg, "/tmp/d", &t), 0);
    assert_int_equal(t.receiver_port, 14318);
    assert_string_equal(t.endpoint, "http://127.0.0.1:14318");
    int seen = 0;
    for (size_t i = 0; i < t.nreceiver_env; i++) {
        if (strcmp(t.receiver_env_key[i], "SHOAL_DB__URL") == 0) {
            assert_string_equal(t.receiver_env_val[i], "sqlite:/tmp/d/traces.db");
            seen |= 1;
        } else if (strcmp(t.receiver_env_key[i], "SHOAL_TRACES__MAX_SPANS") == 0) {
            assert_string_equal(t.receiver_env_val[i], "500");
            seen |= 2;
        } else if (strcmp(t.receiver_env_key[i], "SHOAL_TELEMETRY__OTLP_ENDPOINT") == 0) {
            assert_string_equal(t.receiver_env_val[i], ""); /* it exports nothing */
            seen |= 4;
        }
    }
    assert_int_equal(seen, 7);
    sl_config_free(cfg);
    /* An external collector: no receiver. */
    cfg = yaml("telemetry:\n  otlp_endpoint: http://jaeger:4318\n");
    assert_int_equal(cli_telemetry_read(cfg, "d", &t), 0);
    assert_int_equal(t.receiver_port, 0);
    assert_string_equal(t.endpoint, "http://jaeger:4318");
    sl_config_free(cfg);
    /* Refused: not a URL, a bad port. */
    cfg = yaml("telemetry:\n  otlp_endpoint: jaeger:4318\n");
    assert_int_equal(cli_telemetry_read(cfg, "d", &t), SL_ECONFIG);
    sl_config_free(cfg);
    cfg = yaml("telemetry:\n  receiver: {port: 70000}\n");
    assert_int_equal(cli_telemetry_read(cfg, "d", &t), SL_ECONFIG);
    sl_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree_order_indent_and_bars),
        cmocka_unit_test(test_orphans_cycles_and_tiny_spans),
        cmocka_unit_test(test_long_names_are_cut_on_characters),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_telemetry_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
