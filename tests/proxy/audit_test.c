/*
 * The gateway's audit: the `audit` section's validation (located refusals)
 * and the join (src/proxy/audit.c) of the parts' answers into {ok, checks},
 * with a missing service, malformed answers and the cross checks.
 */
#include "audit.h"
#include "gwconfig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char base[] =
    "clusters:\n"
    "  o: {endpoints: [127.0.0.1:1]}\n"
    "  p: {endpoints: [127.0.0.1:2]}\n"
    "aggregates:\n"
    "  au:\n"
    "    parts:\n"
    "      - {name: order, cluster: o, path: /admin/audit, on_error: degrade}\n"
    "      - {name: payment, cluster: p, path: /admin/audit, on_error: degrade}\n"
    "  strict:\n"
    "    parts:\n"
    "      - {name: order, cluster: o, path: /admin/audit}\n";

static px_config *load(const char *audit)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "%s%s", base, audit);
    px_config *cfg = NULL;
    char err[PX_ERR_MAX] = "";
    if (px_config_load_string("t.yaml", yaml, NULL, &cfg, err) != 0) fail_msg("%s", err);
    return cfg;
}

static void expect_error(const char *audit, const char *needle)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "%s%s", base, audit);
    px_config *cfg = NULL;
    char err[PX_ERR_MAX] = "";
    assert_int_not_equal(px_config_load_string("t.yaml", yaml, NULL, &cfg, err), 0);
    assert_null(cfg);
    if (!strstr(err, needle)) fail_msg("error '%s' lacks '%s'", err, needle);
}

static void test_config(void **state)
{
    (void)state;
    px_config *cfg = load("");
    assert_int_equal(cfg->audit.aggregate, -1);
    px_config_free(cfg);
    cfg = load("audit:\n  aggregate: au\n  cross:\n"
               "    - {name: once, equal: [order.charge_digest, payment.charge_digest]}\n");
    assert_int_equal(cfg->audit.aggregate, 0);
    assert_int_equal(cfg->audit.ncross, 1);
    assert_string_equal(cfg->audit.cross[0].equal[1], "payment.charge_digest");
    px_config_free(cfg);
    expect_error("audit: {aggregate: nope}\n", "audit.aggregate: names no aggregate");
    expect_error("audit: {aggregate: strict}\n", "on_error: degrade");
    expect_error("audit: {cross: []}\n", "aggregate");
    expect_error("audit: {aggregate: au, cross: [{name: x, equal: [order.a, cart.b]}]}\n",
                 "audit.cross[0].equal[1]");
    expect_error("audit: {aggregate: au, cross: [{name: x, equal: [order.a]}]}\n", "equal");
    expect_error("audit: {aggregate: au, cross: [{name: x, equal: [order, payment.b]}]}\n",
                 "audit.cross[0].equal[0]");
    expect_error("audit: {aggregate: au, extra: 1}\n", "extra");
}

static const json_t *check(const json_t *out, const char *name)
{
    const json_t *checks = json_object_get(out, "checks");
    for (size_t i = 0; i < json_array_size(checks); i++) {
        const json_t *c = json_array_get(checks, i);
        if (strcmp(json_string_value(json_object_get(c, "name")), name) == 0) return c;
    }
    fail_msg("no check %s", name);
    return NULL;
}

static json_t *join(const px_config *cfg, const char *doc_text)
{
    json_t *doc = json_loads(doc_text, 0, NULL);
    assert_non_null(doc);
    json_t *out = px_audit_join(&cfg->aggregates[cfg->audit.aggregate], &cfg->audit, doc);
    json_decref(doc);
    assert_non_null(out);
    return out;
}

#define DIGEST(n, a, d) "{\"count\":" #n ",\"amount\":" #a ",\"digest\":\"" d "\"}"

static void test_join(void **state)
{
    (void)state;
    px_config *cfg = load("audit:\n  aggregate: au\n  cross:\n"
                          "    - {name: once, equal: [order.charge_digest, "
                          "payment.charge_digest]}\n");
    /* Both answer, digests equal: ok, prefixed names, the cross check carries the value. */
    json_t *out = join(
        cfg, "{\"order\":{\"ok\":true,\"checks\":[{\"name\":\"charge_digest\","
             "\"ok\":true,\"value\":" DIGEST(
                 2, 30, "ab") ",\"detail\":\"d\"},"
                              "{\"name\":\"in_flight\",\"ok\":true,\"value\":0,\"detail\":\"\"}]},"
                              "\"payment\":{\"ok\":true,\"checks\":[{\"name\":\"charge_digest\","
                              "\"ok\":true,\"value\":" DIGEST(2, 30, "ab") ",\"detail\":\"\"}]}}");
    assert_true(json_is_true(json_object_get(out, "ok")));
    assert_int_equal(json_array_size(json_object_get(out, "checks")), 4);
    assert_string_equal(
        json_string_value(json_object_get(check(out, "order.charge_digest"), "detail")), "d");
    assert_true(json_is_true(json_object_get(check(out, "once"), "ok")));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(check(out, "once"), "value"), "count")),
        2);
    json_decref(out);

    /* Digests differ: the cross check fails and its detail gives both sides. */
    out = join(cfg,
               "{\"order\":{\"checks\":[{\"name\":\"charge_digest\",\"ok\":true,\"value\":" DIGEST(
                   3, 40, "ac") "}]},\"payment\":{\"checks\":[{\"name\":\"charge_digest\","
                                "\"ok\":true,\"value\":" DIGEST(2, 30, "ab") "}]}}");
    assert_true(json_is_false(json_object_get(out, "ok")));
    const json_t *once = check(out, "once");
    assert_true(json_is_false(json_object_get(once, "ok")));
    const char *detail = json_string_value(json_object_get(once, "detail"));
    assert_non_null(strstr(detail, "\"count\":3"));
    assert_non_null(strstr(detail, "\"count\":2"));
    json_decref(out);

    /* Payment did not answer: a failed payment.audit with the reason, and the cross check
     * fails naming what is missing; never an error of the whole join. */
    out = join(
        cfg, "{\"order\":{\"checks\":[{\"name\":\"charge_digest\",\"ok\":true,\"value\":" DIGEST(
                 1, 1, "01") "}]},\"payment\":null,"
                             "\"warnings\":[{\"part\":\"payment\",\"reason\":\"connect_error\"}]}");
    assert_true(json_is_false(json_object_get(out, "ok")));
    const json_t *pa = check(out, "payment.audit");
    assert_true(json_is_false(json_object_get(pa, "ok")));
    assert_non_null(strstr(json_string_value(json_object_get(pa, "detail")), "connect_error"));
    assert_non_null(strstr(json_string_value(json_object_get(check(out, "once"), "detail")),
                           "payment.charge_digest is missing"));
    json_decref(out);

    /* A failed service check fails the whole; malformed answers are failed checks. */
    out = join(cfg, "{\"order\":{\"checks\":[{\"name\":\"stock\",\"ok\":false,\"value\":1}]},"
                    "\"payment\":{\"checks\":[{\"name\":7,\"ok\":true}]}}");
    assert_true(json_is_false(json_object_get(out, "ok")));
    assert_true(json_is_false(json_object_get(check(out, "order.stock"), "ok")));
    assert_true(json_is_false(json_object_get(check(out, "payment.audit"), "ok")));
    json_decref(out);
    out = join(cfg, "{\"order\":{\"ok\":true},\"payment\":[1,2]}");
    assert_non_null(strstr(json_string_value(json_object_get(check(out, "order.audit"), "detail")),
                           "no checks"));
    json_decref(out);
    /* Too many checks from one service. */
    json_t *many = json_array();
    for (int i = 0; i < PX_AUDIT_CHECKS_MAX + 1; i++)
        json_array_append_new(many, json_pack("{s:s,s:b}", "name", "c", "ok", 1));
    json_t *doc = json_pack("{s:{s:o},s:n}", "order", "checks", many, "payment");
    out = px_audit_join(&cfg->aggregates[0], &cfg->audit, doc);
    assert_true(json_is_false(json_object_get(check(out, "order.audit"), "ok")));
    json_decref(out);
    json_decref(doc);
    px_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_join),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
