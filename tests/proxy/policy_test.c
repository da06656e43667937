/*
 * The sidecar's authorization policy (src/proxy/policy.c): parsing the
 * `sidecar.allow` rules with located errors, the class of a path, and
 * decisions by caller, class, method and path prefix.
 */
#include "policy.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static json_t *load(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j) fail_msg("bad test JSON: %s", je.text);
    return j;
}

/* Parses `text`; expects failure with `want` in the message, or success when want is NULL. */
static void parse(const char *text, px_policy *p, const char *want)
{
    json_t *j = load(text);
    char err[PX_POLICY_ERR_MAX] = "";
    int rc = px_policy_parse(j, p, err);
    json_decref(j);
    if (!want) {
        if (rc != 0) fail_msg("%s: %s", text, err);
        return;
    }
    assert_int_not_equal(rc, 0);
    if (!strstr(err, want)) fail_msg("%s: got '%s', want '%s'", text, err, want);
    assert_int_equal(p->n, 0); /* nothing left to free */
}

static px_policy_verdict decide(const px_policy *p, const char *caller, sl_http_method m,
                                const char *path)
{
    return px_policy_decide(p, caller, m, (sl_slice){path, strlen(path)});
}

static void test_classes(void **state)
{
    (void)state;
    const struct {
        const char *path;
        unsigned cls;
    } cases[] = {
        {"/products", PX_CLASS_PUBLIC},
        {"/", PX_CLASS_PUBLIC},
        {"/administrator", PX_CLASS_PUBLIC},
        {"/admin", PX_CLASS_ADMIN},
        {"/admin/", PX_CLASS_ADMIN},
        {"/admin/orders/1/ship", PX_CLASS_ADMIN},
        {"/healthz", PX_CLASS_OPS},
        {"/metrics", PX_CLASS_OPS},
        {"/metrics/x", PX_CLASS_PUBLIC},
        {"/x/../admin/orders", 0},
        {"/./admin", 0},
        {"/x/..", 0},
        {"/x/%2e%2e/admin", 0},
        {"/x%2Fadmin", 0},
        {"/x%5cadmin", 0},
        {"/x%2", 0},
        {"/x\\admin", 0},
        {"//admin", 0},
        {"", 0},
        {"admin", 0},
        {"/a%20b", PX_CLASS_PUBLIC},
        {"/..x", PX_CLASS_PUBLIC},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        unsigned got = px_policy_class((sl_slice){cases[i].path, strlen(cases[i].path)});
        if (got != cases[i].cls)
            fail_msg("%s: class %u, want %u", cases[i].path, got, cases[i].cls);
    }
}

static void test_decide(void **state)
{
    (void)state;
    px_policy p;
    parse("[{\"caller\":\"gateway\",\"routes\":[\"public\",\"admin\"]},"
          " {\"caller\":\"order\",\"routes\":[\"public\"],\"methods\":[\"POST\",\"DELETE\"],"
          "  \"paths\":[\"/reservations\",\"/stock/\"]},"
          " {\"caller\":\"*\",\"routes\":[\"ops\"],\"methods\":[\"GET\"]}]",
          &p, NULL);
    assert_int_equal(p.n, 3);
    assert_int_equal(decide(&p, "gateway", SL_HTTP_GET, "/products/7"), PX_POLICY_ALLOW);
    assert_int_equal(decide(&p, "gateway", SL_HTTP_POST, "/admin/products"), PX_POLICY_ALLOW);
    assert_int_equal(decide(&p, "gateway", SL_HTTP_GET, "/healthz"), PX_POLICY_ALLOW); /* "*" */
    /* order: its methods, under its prefixes, never admin */
    assert_int_equal(decide(&p, "order", SL_HTTP_POST, "/reservations"), PX_POLICY_ALLOW);
    assert_int_equal(decide(&p, "order", SL_HTTP_DELETE, "/reservations/r-1"), PX_POLICY_ALLOW);
    assert_int_equal(decide(&p, "order", SL_HTTP_POST, "/stock/9"), PX_POLICY_ALLOW);
    assert_int_equal(decide(&p, "order", SL_HTTP_POST, "/stock"), PX_POLICY_ALLOW);
    assert_int_equal(decide(&p, "order", SL_HTTP_POST, "/reservationsx"), PX_POLICY_NO_RULE);
    assert_int_equal(decide(&p, "order", SL_HTTP_GET, "/reservations"), PX_POLICY_NO_RULE);
    assert_int_equal(decide(&p, "order", SL_HTTP_OTHER, "/reservations"), PX_POLICY_NO_RULE);
    assert_int_equal(decide(&p, "order", SL_HTTP_POST, "/admin/reservations"), PX_POLICY_NO_RULE);
    assert_int_equal(decide(&p, "order", SL_HTTP_GET, "/healthz"), PX_POLICY_ALLOW);
    assert_int_equal(decide(&p, "order", SL_HTTP_POST, "/healthz"), PX_POLICY_NO_RULE);
    /* unknown callers, no identity, paths whose class cannot be told */
    assert_int_equal(decide(&p, "cart", SL_HTTP_GET, "/products"), PX_POLICY_NO_RULE);
    assert_int_equal(decide(&p, NULL, SL_HTTP_GET, "/products"), PX_POLICY_NO_IDENTITY);
    assert_int_equal(decide(&p, "", SL_HTTP_GET, "/products"), PX_POLICY_NO_IDENTITY);
    assert_int_equal(decide(&p, "order", SL_HTTP_POST, "/reservations/../admin/x"),
                     PX_POLICY_BAD_PATH);
    assert_int_equal(decide(&p, "gateway", SL_HTTP_GET, "/x/%2e%2e/admin"), PX_POLICY_BAD_PATH);
    assert_string_equal(px_policy_verdict_name(PX_POLICY_NO_RULE), "no_rule");
    px_policy_free(&p);
    /* No rules: nothing is allowed. */
    parse("[]", &p, NULL);
    assert_int_equal(decide(&p, "gateway", SL_HTTP_GET, "/products"), PX_POLICY_NO_RULE);
    px_policy_free(&p);
    char err[PX_POLICY_ERR_MAX];
    assert_int_equal(px_policy_parse(NULL, &p, err), 0);
    assert_int_equal(p.n, 0);
}

static void test_parse_errors(void **state)
{
    (void)state;
    px_policy p;
    parse("{}", &p, "allow: must be a list");
    parse("[1]", &p, "allow[0]: must be an object");
    parse("[{\"routes\":[\"public\"]}]", &p, "allow[0].caller");
    parse("[{\"caller\":\"Order\",\"routes\":[\"public\"]}]", &p, "allow[0].caller");
    parse("[{\"caller\":\"-x\",\"routes\":[\"public\"]}]", &p, "allow[0].caller");
    parse("[{\"caller\":\"order\"}]", &p, "allow[0].routes: is required");
    parse("[{\"caller\":\"order\",\"routes\":[]}]", &p, "allow[0].routes: must be a non-empty");
    parse("[{\"caller\":\"order\",\"routes\":[\"private\"]}]", &p, "allow[0].routes");
    parse("[{\"caller\":\"order\",\"routes\":\"public\"}]", &p, "allow[0].routes");
    parse("[{\"caller\":\"order\",\"routes\":[\"public\"],\"methods\":[\"FETCH\"]}]", &p,
          "allow[0].methods");
    parse("[{\"caller\":\"order\",\"routes\":[\"public\"],\"methods\":[1]}]", &p,
          "allow[0].methods: must hold strings");
    parse("[{\"caller\":\"order\",\"routes\":[\"public\"],\"paths\":[\"x\"]}]", &p,
          "allow[0].paths");
    /* A rule that already owns paths when a later member fails frees them (ASan checks). */
    parse("[{\"caller\":\"a\",\"routes\":[\"public\"],\"paths\":[\"/a\"]},"
          " {\"caller\":\"b\",\"routes\":[\"public\"],\"paths\":[\"/b\",\"/../c\"]}]",
          &p, "allow[1].paths");
    parse("[{\"caller\":\"order\",\"routes\":[\"public\"],\"verbs\":[\"GET\"]}]", &p,
          "allow[0]: unknown member 'verbs'");
    /* Limits: rules and paths per rule. */
    char big[8192] = "[";
    for (int i = 0; i <= PX_POLICY_RULES_MAX; i++)
        strcat(big, i ? ",{\"caller\":\"a\",\"routes\":[\"ops\"]}"
                      : "{\"caller\":\"a\",\"routes\":[\"ops\"]}");
    strcat(big, "]");
    parse(big, &p, "at most 64 rules");
    char paths[4096] = "[{\"caller\":\"a\",\"routes\":[\"public\"],\"paths\":[";
    for (int i = 0; i <= PX_POLICY_PATHS_MAX; i++)
        strcat(paths, i ? ",\"/p\"" : "\"/p\"");
    strcat(paths, "]}]");
    parse(paths, &p, "allow[0].paths: has too many entries");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_parse_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
