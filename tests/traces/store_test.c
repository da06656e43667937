/*
 * The trace receiver's pure decoder (src/traces/otlp_json.c) and its store (src/traces/store.c)
 * on a real SQLite file: OTLP JSON in, spans and traces out; refusals name the field; the
 * store keeps each span once, lists by start, duration, errors and order id, and evicts whole
 * traces, oldest arrival first, at its size bound and after its age bound (the clock is a
 * parameter).
 */
#include "traces.h"

#include <shoal/json.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

extern const sl_migration_set sl_migrations_traces;

static json_t *parse(const char *text)
{
    json_t *v = NULL;
    assert_int_equal(sl_json_parse(text, strlen(text), NULL, &v, NULL), 0);
    return v;
}

/* Decodes text; returns the code with field/msg filled. */
static int decode(const char *text, traces_batch *b, char *field, char *msg)
{
    json_t *root = parse(text);
    int rc = traces_decode(root, b, field, msg);
    json_decref(root);
    return rc;
}

/* One request with `n` spans of trace `tid` (span ids <prefix>000...i), the first a root. */
static char *request(const char *service, const char *tid, int n, const char *prefix,
                     long long start, int error, const char *order_id)
{
    json_t *spans = json_array();
    for (int i = 0; i < n; i++) {
        char sid[17], parent[17] = "";
        snprintf(sid, sizeof sid, "%s%012x", prefix, i + 1);
        if (i > 0) snprintf(parent, sizeof parent, "%s%012x", prefix, 1);
        char st[24], en[24];
        snprintf(st, sizeof st, "%lld", start + i);
        snprintf(en, sizeof en, "%lld", start + 1000 * (n - i));
        json_t *attrs = json_array();
        if (order_id)
            json_array_append_new(attrs, json_pack("{s:s, s:{s:s}}", "key", "shoal.order_id",
                                                   "value", "stringValue", order_id));
        json_array_append_new(
            spans, json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:o, s:{s:i}}", "traceId", tid,
                             "spanId", sid, "parentSpanId", parent, "name", i ? "child" : "root",
                             "kind", i ? 3 : 2, "startTimeUnixNano", st, "endTimeUnixNano", en,
                             "attributes", attrs, "status", "code", error && i == n - 1 ? 2 : 0));
    }
    json_t *req = json_pack("{s:[{s:{s:[{s:s, s:{s:s}}]}, s:[{s:{s:s}, s:o}]}]}", "resourceSpans",
                            "resource", "attributes", "key", "service.name", "value", "stringValue",
                            service, "scopeSpans", "scope", "name", "shoal", "spans", spans);
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    return text;
}

static void test_decode_valid(void **state)
{
    (void)state;
    const char *text =
        "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":"
        "{\"stringValue\":\"order\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"s\"},\"spans\":[{"
        "\"traceId\":\"0AF7651916CD43DD8448EB211C80319C\",\"spanId\":\"b7ad6b7169203331\","
        "\"parentSpanId\":\"\",\"name\":\"POST /orders\",\"kind\":\"SPAN_KIND_SERVER\","
        "\"startTimeUnixNano\":\"1700000000000000000\",\"endTimeUnixNano\":1700000000000000100,"
        "\"attributes\":[{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":\"202\"}},"
        "{\"key\":\"ok\",\"value\":{\"boolValue\":true}},{\"key\":\"r\",\"value\":{\"doubleValue\":"
        "0.5}},{\"key\":\"arr\",\"value\":{\"arrayValue\":{}}},{\"key\":\"shoal.order_id\","
        "\"value\":{\"stringValue\":\"o-1\"}}],\"links\":[{\"traceId\":"
        "\"0af7651916cd43dd8448eb211c80319d\",\"spanId\":\"b7ad6b7169203332\"}],\"status\":{"
        "\"code\":2,\"message\":\"boom\"},\"unknownField\":1}]}]}]}";
    traces_batch b = {0};
    char field[TRACES_FIELD_MAX], msg[TRACES_MSG_MAX];
    assert_int_equal(decode(text, &b, field, msg), 0);
    assert_int_equal(b.n, 1);
    const traces_span *s = &b.spans[0];
    assert_string_equal(s->trace_id, "0af7651916cd43dd8448eb211c80319c");
    assert_string_equal(s->span_id, "b7ad6b7169203331");
    assert_string_equal(s->parent_span_id, "");
    assert_string_equal(s->service, "order");
    assert_string_equal(s->name, "POST /orders");
    assert_int_equal(s->kind, TRACES_KIND_SERVER);
    assert_int_equal(s->status, TRACES_STATUS_ERROR);
    assert_string_equal(s->status_message, "boom");
    assert_true(s->start_ns == 1700000000000000000LL && s->end_ns == 1700000000000000100LL);
    assert_string_equal(s->order_id, "o-1");
    assert_int_equal(
        json_integer_value(json_object_get(s->attributes, "http.response.status_code")), 202);
    assert_true(json_is_true(json_object_get(s->attributes, "ok")));
    assert_true(json_real_value(json_object_get(s->attributes, "r")) == 0.5);
    assert_null(json_object_get(s->attributes, "arr"));
    assert_int_equal(b.dropped_attributes, 1);
    assert_int_equal(json_array_size(s->links), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(s->links, 0), "span_id")),
                        "b7ad6b7169203332");
    traces_batch_free(&b);
    /* An empty request is valid and carries nothing. */
    assert_int_equal(decode("{}", &b, field, msg), 0);
    assert_int_equal(b.n, 0);
    traces_batch_free(&b);
}

static void test_decode_refusals_name_the_field(void **state)
{
    (void)state;
    static const struct {
        const char *body, *field, *msg;
    } cases[] = {
        {"{\"resourceSpans\":{}}", "resourceSpans", "array"},
        {"{\"resourceSpans\":[1]}", "resourceSpans[0]", "object"},
        {"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"xyz\"}]}]}]}",
         "resourceSpans[0].scopeSpans[0].spans[0].traceId", "32 hex"},
        {"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
         "\"00000000000000000000000000000000\",\"spanId\":\"b7ad6b7169203331\"}]}]}]}",
         "resourceSpans[0].scopeSpans[0].spans[0].traceId", "not all zero"},
        {"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
         "\"0af7651916cd43dd8448eb211c80319c\",\"spanId\":\"b7ad6b7169203331\","
         "\"startTimeUnixNano\":\"12x\",\"endTimeUnixNano\":\"1\"}]}]}]}",
         "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano", "decimal"},
        {"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
         "\"0af7651916cd43dd8448eb211c80319c\",\"spanId\":\"b7ad6b7169203331\","
         "\"startTimeUnixNano\":\"5\",\"endTimeUnixNano\":\"4\"}]}]}]}",
         "resourceSpans[0].scopeSpans[0].spans[0].endTimeUnixNano", "before"},
        {"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
         "\"0af7651916cd43dd8448eb211c80319c\",\"spanId\":\"b7ad6b7169203331\",\"kind\":9,"
         "\"startTimeUnixNano\":\"5\",\"endTimeUnixNano\":\"6\"}]}]}]}",
         "resourceSpans[0].scopeSpans[0].spans[0].kind", "0..5"},
        {"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
         "\"0af7651916cd43dd8448eb211c80319c\",\"spanId\":\"b7ad6b7169203331\","
         "\"startTimeUnixNano\":\"5\",\"endTimeUnixNano\":\"6\",\"attributes\":[{\"key\":\"k\","
         "\"value\":{\"intValue\":\"99999999999999999999\"}}]}]}]}]}",
         "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value", "64-bit"},
        {"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
         "\"0af7651916cd43dd8448eb211c80319c\",\"spanId\":\"b7ad6b7169203331\","
         "\"startTimeUnixNano\":\"5\",\"endTimeUnixNano\":\"6\",\"status\":{\"code\":7}}]}]}]}",
         "resourceSpans[0].scopeSpans[0].spans[0].status.code", "0..2"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        traces_batch b = {0};
        char field[TRACES_FIELD_MAX], msg[TRACES_MSG_MAX];
        int rc = decode(cases[i].body, &b, field, msg);
        if (rc != SL_EINVAL || strcmp(field, cases[i].field) != 0 || !strstr(msg, cases[i].msg))
            fprintf(stderr, "case %zu: rc %d field '%s' msg '%s'\n", i, rc, field, msg);
        assert_int_equal(rc, SL_EINVAL);
        assert_string_equal(field, cases[i].field);
        assert_non_null(strstr(msg, cases[i].msg));
        traces_batch_free(&b);
    }
}

static void test_decode_bounds(void **state)
{
    (void)state;
    /* Over TRACES_SPANS_MAX spans: refused before anything is built. */
    json_t *spans = json_array();
    for (int i = 0; i <= TRACES_SPANS_MAX; i++)
        json_array_append_new(spans, json_object());
    json_t *root = json_pack("{s:[{s:[{s:o}]}]}", "resourceSpans", "scopeSpans", "spans", spans);
    traces_batch b = {0};
    char field[TRACES_FIELD_MAX], msg[TRACES_MSG_MAX];
    assert_int_equal(traces_decode(root, &b, field, msg), SL_ELIMIT);
    assert_string_equal(field, "resourceSpans");
    assert_int_equal(b.n, 0);
    json_decref(root);
    /* Long strings are cut, extra attributes and links dropped and counted. */
    char name[2000];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    json_t *attrs = json_array(), *links = json_array();
    for (int i = 0; i < TRACES_ATTRS_MAX + 5; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        json_array_append_new(attrs,
                              json_pack("{s:s, s:{s:s}}", "key", k, "value", "stringValue", name));
    }
    for (int i = 0; i < TRACES_LINKS_MAX + 3; i++)
        json_array_append_new(links,
                              json_pack("{s:s, s:s}", "traceId", "0af7651916cd43dd8448eb211c80319c",
                                        "spanId", "b7ad6b7169203331"));
    root = json_pack("{s:[{s:[{s:[{s:s, s:s, s:s, s:s, s:s, s:o, s:o}]}]}]}", "resourceSpans",
                     "scopeSpans", "spans", "traceId", "0af7651916cd43dd8448eb211c80319c", "spanId",
                     "b7ad6b7169203331", "name", name, "startTimeUnixNano", "1", "endTimeUnixNano",
                     "2", "attributes", attrs, "links", links);
    assert_int_equal(traces_decode(root, &b, field, msg), 0);
    json_decref(root);
    assert_int_equal(strlen(b.spans[0].name), TRACES_NAME_MAX);
    assert_int_equal(json_object_size(b.spans[0].attributes), TRACES_ATTRS_MAX);
    assert_int_equal(b.dropped_attributes, 5);
    assert_int_equal(strlen(json_string_value(json_object_get(b.spans[0].attributes, "k0"))),
                     TRACES_ATTR_VALUE_MAX);
    assert_int_equal(json_array_size(b.spans[0].links), TRACES_LINKS_MAX);
    assert_int_equal(b.dropped_links, 3);
    assert_string_equal(b.spans[0].service, "unknown_service");
    traces_batch_free(&b);
}

/* ---- the store ------------------------------------------------------------------------------ */

static char dir[] = "/tmp/shoal-traces-store-XXXXXX";

static sl_db *open_store(void)
{
    char url[128];
    snprintf(url, sizeof url, "sqlite:%s/traces-%d.db", dir, rand());
    sl_db *db = NULL;
    char err[256];
    assert_int_equal(sl_db_open(url, NULL, &db, err, sizeof err), 0);
    int applied = 0;
    assert_int_equal(sl_db_migrate(db, &sl_migrations_traces, &applied), 0);
    return db;
}

static void add(sl_db *db, const char *text, const traces_bounds *bd, int64_t now,
                traces_add_result *r)
{
    traces_batch b = {0};
    char field[TRACES_FIELD_MAX], msg[TRACES_MSG_MAX];
    assert_int_equal(decode(text, &b, field, msg), 0);
    assert_int_equal(traces_store_add(db, &b, bd, now, r), 0);
    traces_batch_free(&b);
}

static const char *T1 = "11111111111111111111111111111111",
                  *T2 = "22222222222222222222222222222222",
                  *T3 = "33333333333333333333333333333333";

static void test_store_list_get_and_dedup(void **state)
{
    (void)state;
    sl_db *db = open_store();
    traces_bounds bd = {.max_spans = 1000, .max_age_ns = 0};
    traces_add_result r;
    char *a = request("gateway", T1, 3, "aaaa", 1000, 0, "order-1");
    char *b = request("order", T2, 2, "bbbb", 5000, 1, NULL);
    add(db, a, &bd, 1, &r);
    assert_int_equal(r.stored, 3);
    add(db, a, &bd, 2, &r); /* the same spans again: stored once */
    assert_int_equal(r.stored, 0);
    add(db, b, &bd, 3, &r);
    assert_int_equal(r.stored, 2);
    traces_stats st;
    assert_int_equal(traces_store_stats(db, &st), 0);
    assert_int_equal(st.spans, 5);
    assert_int_equal(st.traces, 2);

    json_t *out = NULL;
    traces_query q = {.limit = 10};
    assert_int_equal(traces_store_list(db, &q, &out), 0);
    json_t *ts = json_object_get(out, "traces");
    assert_int_equal(json_array_size(ts), 2);
    json_t *t = json_array_get(ts, 0); /* newest start first */
    assert_string_equal(json_string_value(json_object_get(t, "trace_id")), T2);
    assert_string_equal(json_string_value(json_object_get(t, "root_service")), "order");
    assert_string_equal(json_string_value(json_object_get(t, "root_name")), "root");
    assert_int_equal(json_integer_value(json_object_get(t, "span_count")), 2);
    assert_int_equal(json_integer_value(json_object_get(t, "duration_ns")), 2000);
    assert_true(json_is_true(json_object_get(t, "error")));
    t = json_array_get(ts, 1);
    assert_int_equal(json_integer_value(json_object_get(t, "start_ns")), 1000);
    assert_true(json_is_false(json_object_get(t, "error")));
    json_decref(out);

    q.slowest = 1; /* T1 lasts 3000 ns, T2 2000 */
    assert_int_equal(traces_store_list(db, &q, &out), 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(out, "traces"), 0), "trace_id")),
                        T1);
    json_decref(out);
    q = (traces_query){.limit = 10, .errors = 1};
    assert_int_equal(traces_store_list(db, &q, &out), 0);
    assert_int_equal(json_array_size(json_object_get(out, "traces")), 1);
    json_decref(out);
    q = (traces_query){.limit = 10, .order_id = "order-1"};
    assert_int_equal(traces_store_list(db, &q, &out), 0);
    ts = json_object_get(out, "traces");
    assert_int_equal(json_array_size(ts), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ts, 0), "trace_id")), T1);
    json_decref(out);
    q = (traces_query){.limit = 1};
    assert_int_equal(traces_store_list(db, &q, &out), 0);
    assert_int_equal(json_array_size(json_object_get(out, "traces")), 1);
    json_decref(out);

    assert_int_equal(traces_store_get(db, T1, &out), 0);
    json_t *spans = json_object_get(out, "spans");
    assert_int_equal(json_array_size(spans), 3);
    json_t *root = json_array_get(spans, 0);
    assert_string_equal(json_string_value(json_object_get(root, "parent_span_id")), "");
    assert_string_equal(json_string_value(json_object_get(root, "kind")), "server");
    assert_string_equal(json_string_value(json_object_get(root, "status")), "unset");
    assert_string_equal(json_string_value(json_object_get(root, "service")), "gateway");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(root, "attributes"), "shoal.order_id")),
        "order-1");
    assert_string_equal(json_string_value(json_object_get(json_array_get(spans, 1), "kind")),
                        "client");
    json_decref(out);
    assert_int_equal(traces_store_get(db, T3, &out), SL_ENOTFOUND);
    free(a);
    free(b);
    sl_db_close(db);
}

static void test_store_evicts_oldest_whole_traces(void **state)
{
    (void)state;
    sl_db *db = open_store();
    traces_bounds bd = {.max_spans = 100, .max_age_ns = 0};
    traces_add_result r;
    char *a = request("gateway", T1, 40, "aaaa", 9000, 0, NULL); /* arrives first, starts last */
    char *b = request("gateway", T2, 40, "bbbb", 1000, 0, NULL);
    char *c = request("gateway", T3, 40, "cccc", 5000, 0, NULL);
    add(db, a, &bd, 1, &r);
    add(db, b, &bd, 2, &r);
    assert_int_equal(r.evicted_traces, 0);
    add(db, c, &bd, 3, &r); /* 120 > 100: the first to arrive goes, whole */
    assert_int_equal(r.stored, 40);
    assert_int_equal(r.evicted_traces, 1);
    assert_int_equal(r.evicted_spans, 40);
    json_t *out = NULL;
    assert_int_equal(traces_store_get(db, T1, &out), SL_ENOTFOUND);
    assert_int_equal(traces_store_get(db, T2, &out), 0);
    json_decref(out);
    traces_stats st;
    assert_int_equal(traces_store_stats(db, &st), 0);
    assert_int_equal(st.spans, 80);
    assert_int_equal(st.traces, 2);
    assert_int_equal(st.evicted_traces, 1);
    assert_int_equal(st.evicted_spans, 40);

    /* Age: nothing added to T2 and T3 for longer than max_age → both go at the next add. */
    bd.max_age_ns = 1000;
    char *d = request("gateway", T1, 2, "dddd", 100, 0, NULL);
    add(db, d, &bd, 3 + 1001, &r);
    assert_int_equal(r.evicted_traces, 2);
    assert_int_equal(traces_store_stats(db, &st), 0);
    assert_int_equal(st.spans, 2);
    assert_int_equal(st.traces, 1);
    assert_int_equal(st.evicted_traces, 3);
    free(a);
    free(b);
    free(c);
    free(d);
    sl_db_close(db);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_valid),
        cmocka_unit_test(test_decode_refusals_name_the_field),
        cmocka_unit_test(test_decode_bounds),
        cmocka_unit_test(test_store_list_get_and_dedup),
        cmocka_unit_test(test_store_evicts_oldest_whole_traces),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
