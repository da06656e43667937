/* Unit tests for the gateway configuration: defaults, the shop's file, and located refusals. */
#include "gwconfig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void expect_error(const char *yaml, const char *needle)
{
    px_config *cfg = NULL;
    char err[PX_ERR_MAX] = "";
    assert_int_not_equal(px_config_load_string("t.yaml", yaml, NULL, &cfg, err), 0);
    assert_null(cfg);
    if (!strstr(err, needle)) fail_msg("error '%s' lacks '%s'", err, needle);
}

static void test_defaults(void **state)
{
    (void)state;
    px_config *cfg = NULL;
    char err[PX_ERR_MAX] = "";
    assert_int_equal(px_config_load_string("t.yaml", "{}", NULL, &cfg, err), 0);
    assert_int_equal(cfg->port, 8080);
    assert_int_equal(cfg->limits.header_timeout_ms, 10000); /* bounded edge defaults */
    assert_int_equal(cfg->default_timeout_ms, 15000);
    assert_int_equal(cfg->max_pending, 4096);
    assert_int_equal(cfg->jwks_cluster, -1);
    assert_int_equal(cfg->routes.n, 0);
    px_config_free(cfg);
}

static void test_cluster_and_route(void **state)
{
    (void)state;
    const char *yaml = "clusters:\n"
                       "  a:\n"
                       "    endpoints: [127.0.0.1:1, 127.0.0.1:2]\n"
                       "    lb: least_request\n"
                       "    retry: {max_retries: 1}\n"
                       "    bulkhead: {max_concurrent: 7}\n"
                       "    outlier: {consecutive_5xx: 2}\n"
                       "routes:\n"
                       "  - {name: r, match: {template: \"/x/{id}\", methods: [GET, POST]}, "
                       "rewrite: \"/y/{id}\",\n"
                       "     cluster: a, auth: admin, rate_limit: {rate: 3}}\n";
    px_config *cfg = NULL;
    char err[PX_ERR_MAX] = "";
    assert_int_equal(px_config_load_string("t.yaml", yaml, NULL, &cfg, err), 0);
    assert_int_equal(cfg->nclusters, 1);
    assert_int_equal(cfg->clusters[0].lb, PX_LB_LEAST_REQUEST);
    assert_int_equal(cfg->clusters[0].nendpoints, 2);
    assert_int_equal(cfg->clusters[0].up.retry.max_retries, 1);
    assert_int_equal(cfg->clusters[0].up.bulkhead.max_concurrent, 7);
    assert_int_equal(cfg->clusters[0].out_5xx, 2);
    const px_route *r = &cfg->routes.items[0];
    assert_int_equal(r->kind, PX_MATCH_TEMPLATE);
    assert_int_equal(r->auth, PX_AUTH_ADMIN);
    assert_int_equal(r->methods, (1u << SL_HTTP_GET) | (1u << SL_HTTP_POST));
    assert_int_equal(r->rate, 3);
    assert_int_equal(r->cluster, 0);
    px_config_free(cfg);
}

static void test_shop_file(void **state)
{
    (void)state;
    char path[1024];
    const char *src = getenv("SHOAL_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/config/gateway.yaml", src ? src : ".");
    px_config *cfg = NULL;
    char err[PX_ERR_MAX] = "";
    if (px_config_load(path, NULL, &cfg, err) != 0) fail_msg("%s", err);
    assert_int_equal(cfg->admin_port, 9901);
    assert_int_equal(cfg->naggregates, 2);
    assert_int_equal(cfg->aggregates[0].nparts, 3);
    assert_int_equal(cfg->aggregates[0].parts[2].target_idx, 1);
    /* The audit: the second aggregate, joined, with one cross check. */
    assert_int_equal(cfg->audit.aggregate, 1);
    assert_int_equal(cfg->audit.ncross, 1);
    assert_true(cfg->jwks_cluster >= 0);
    px_config_free(cfg);
}

static void test_refusals(void **state)
{
    (void)state;
    expect_error("clusters: {a: {endpoints: [nohost]}}\n", "t.yaml:1:28: clusters.a.endpoints[0]");
    expect_error("clusters: {a: {endpoints: [h:1], retyr: {}}}\n", "retyr");
    expect_error("routes: [{match: {prefix: /x}, cluster: nope}]\n",
                 "routes[0].cluster: names no cluster");
    expect_error("routes: [{match: {prefix: /x, path: /y}, cluster: a}]\nclusters: {a: {endpoints: "
                 "[h:1]}}\n",
                 "exactly one of path, prefix, template");
    expect_error("routes: [{match: {prefix: x}, cluster: a}]\nclusters: {a: {endpoints: [h:1]}}\n",
                 "invalid path");
    expect_error("bogus: 1\n", "unknown section");
    expect_error("service: {port: 70000}\n", "service.port");
    expect_error("auth: {jwks: {cluster: none}}\n", "auth.jwks.cluster");
    expect_error(
        "clusters: {a: {endpoints: [h:1]}}\naggregates: {x: {parts: [{name: p, cluster: a, path: "
        "/p}],"
        " enrich: [{name: e, cluster: a, target: q, list: l, id: i, set: s, result: r, key: k,"
        " path: \"/e?ids={ids}\"}]}}\n",
        "target names no part");
    expect_error("clusters: {a: {endpoints: [h:1]}}\naggregates: {x: {parts: [{name: p, cluster: "
                 "a, path: /p,"
                 " share: 1.5}]}}\n",
                 "share");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_cluster_and_route),
        cmocka_unit_test(test_shop_file),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
