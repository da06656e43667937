/*
 * The mesh plan of `shoal up --mesh` (src/cli/mesh.c): ports, and each
 * sidecar's configuration — loaded by the real sidecar configuration loader
 * and checked for its listeners, clusters and policy (derived from the
 * topology's calls: lists; the gateway may call everything).
 */
#include "gwconfig.h"
#include "mesh.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* user, inventory, order (calls inventory and payment), payment, gateway */
static size_t shop(cli_mesh_svc *s)
{
    memset(s, 0, sizeof *s * CLI_MESH_SVCS_MAX);
    const char *names[] = {"user", "inventory", "order", "payment", "gateway"};
    const int ports[] = {8101, 8104, 8105, 8106, 8080};
    for (size_t i = 0; i < 5; i++) {
        snprintf(s[i].name, sizeof s[i].name, "%s", names[i]);
        s[i].port = ports[i];
        s[i].gateway = i == 4;
    }
    s[2].calls[1] = s[2].calls[3] = true;
    return 5;
}

static px_config *load(const cli_mesh_svc *s, size_t n, size_t i)
{
    char yaml[16384], err[PX_ERR_MAX];
    int len = cli_mesh_sidecar_yaml(s, n, i, "/d/mesh", yaml, sizeof yaml);
    assert_true(len > 0);
    px_config *cfg = NULL;
    if (px_config_load_string("mesh", yaml, NULL, &cfg, err) != 0) fail_msg("%s\n%s", err, yaml);
    assert_true(cfg->sidecar.on);
    return cfg;
}

static px_policy_verdict decide(const px_config *c, const char *caller, const char *path)
{
    return px_policy_decide(&c->sidecar.policy, caller, SL_HTTP_GET,
                            (sl_slice){path, strlen(path)});
}

static void test_ports(void **state)
{
    (void)state;
    cli_mesh_svc s[CLI_MESH_SVCS_MAX];
    size_t n = shop(s);
    char err[256];
    assert_int_equal(cli_mesh_plan(s, n, err, sizeof err), 0);
    /* order: its sidecar on 8105, itself on 18105, outbound to inventory and payment only */
    assert_int_equal(s[2].inbound_port, 8105);
    assert_int_equal(s[2].local_port, 18105);
    assert_int_equal(s[2].out_port[1], 20000 + 2 * 32 + 1);
    assert_int_equal(s[2].out_port[3], 20000 + 2 * 32 + 3);
    assert_int_equal(s[2].out_port[0], 0);
    assert_int_equal(s[2].out_port[4], 0);
    assert_int_equal(s[0].out_port[1], 0); /* user calls nobody */
    /* the gateway keeps its port; it reaches every service through its own sidecar */
    assert_int_equal(s[4].local_port, 8080);
    assert_int_equal(s[4].inbound_port, 18080);
    for (size_t j = 0; j < 4; j++)
        assert_int_equal(s[4].out_port[j], 20000 + 4 * 32 + (int)j);
    assert_int_equal(s[4].out_port[4], 0);
    assert_int_equal(s[3].admin_port, 21003);
    /* refusals */
    s[0].port = 60000;
    assert_int_not_equal(cli_mesh_plan(s, n, err, sizeof err), 0);
    assert_non_null(strstr(err, "user"));
    n = shop(s);
    snprintf(s[1].name, sizeof s[1].name, "Inventory");
    assert_int_not_equal(cli_mesh_plan(s, n, err, sizeof err), 0);
    assert_non_null(strstr(err, "Inventory"));
}

static void test_port_bases(void **state)
{
    (void)state;
    cli_mesh_svc s[CLI_MESH_SVCS_MAX];
    size_t n = shop(s);
    char err[256];
    cli_mesh_ports p = {.local_offset = 100, .outbound_base = 12000, .admin_base = 13000};
    assert_int_equal(cli_mesh_plan_ports(s, n, &p, err, sizeof err), 0);
    assert_int_equal(s[2].inbound_port, 8105);
    assert_int_equal(s[2].local_port, 8205);
    assert_int_equal(s[2].out_port[1], 12000 + 2 * 32 + 1);
    assert_int_equal(s[4].inbound_port, 8180);
    assert_int_equal(s[3].admin_port, 13003);
    /* each base out of its range is refused, naming it */
    const cli_mesh_ports bad[] = {{0, 12000, 13000},
                                  {100, 1023, 13000},
                                  {100, 65536 - 5 * 32 + 1, 13000},
                                  {100, 12000, 65536 - 5 + 1}};
    const char *names[] = {"local_offset", "outbound_base", "outbound_base", "admin_base"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        n = shop(s);
        assert_int_not_equal(cli_mesh_plan_ports(s, n, &bad[i], err, sizeof err), 0);
        assert_non_null(strstr(err, names[i]));
    }
    /* the highest bases that fit */
    n = shop(s);
    p = (cli_mesh_ports){100, 65536 - 5 * 32, 65536 - 5};
    assert_int_equal(cli_mesh_plan_ports(s, n, &p, err, sizeof err), 0);
    assert_int_equal(s[4].out_port[3], 65536 - 5 * 32 + 4 * 32 + 3);
    assert_int_equal(s[4].admin_port, 65535);
}

static void test_breaker_recovery(void **state)
{
    (void)state;
    cli_mesh_svc s[CLI_MESH_SVCS_MAX];
    size_t n = shop(s);
    char err[256];
    assert_int_equal(cli_mesh_plan(s, n, err, sizeof err), 0);
    /* the default: the proxy's own */
    px_config *def = load(s, n, 2);
    assert_int_equal(def->clusters[def->sidecar.local_cluster].up.breaker.recovery_timeout_ms,
                     30000);
    px_config_free(def);
    /* set: every cluster of the sidecar, the local one and the upstreams */
    for (size_t i = 0; i < n; i++)
        s[i].breaker_recovery_ms = 2000;
    px_config *order = load(s, n, 2);
    assert_int_equal(order->nclusters, 3);
    for (size_t c = 0; c < order->nclusters; c++)
        assert_int_equal(order->clusters[c].up.breaker.recovery_timeout_ms, 2000);
    px_config_free(order);
}

static void test_sidecar_configs(void **state)
{
    (void)state;
    cli_mesh_svc s[CLI_MESH_SVCS_MAX];
    size_t n = shop(s);
    char err[256];
    assert_int_equal(cli_mesh_plan(s, n, err, sizeof err), 0);
    /* inventory: the gateway (public, admin, ops) and order (public) may call it */
    px_config *inv = load(s, n, 1);
    assert_string_equal(inv->sidecar.service, "inventory");
    assert_int_equal(inv->port, 8104);
    assert_string_equal(inv->sidecar.cert_file, "/d/mesh/certs/inventory.pem");
    assert_string_equal(inv->clusters[inv->sidecar.local_cluster].endpoints[0], "127.0.0.1:18104");
    assert_int_equal(inv->sidecar.noutbound, 0);
    assert_int_equal(decide(inv, "order", "/reservations"), PX_POLICY_ALLOW);
    assert_int_equal(decide(inv, "order", "/admin/stock"), PX_POLICY_NO_RULE);
    assert_int_equal(decide(inv, "gateway", "/admin/stock"), PX_POLICY_ALLOW);
    assert_int_equal(decide(inv, "gateway", "/healthz"), PX_POLICY_ALLOW);
    assert_int_equal(decide(inv, "user", "/reservations"), PX_POLICY_NO_RULE);
    px_config_free(inv);
    /* order: outbound to inventory and payment, each expecting that identity */
    px_config *ord = load(s, n, 2);
    assert_int_equal(ord->sidecar.noutbound, 2);
    const px_cluster_cfg *c = &ord->clusters[ord->sidecar.outbound[0].cluster];
    assert_string_equal(c->name, "inventory");
    assert_string_equal(c->endpoints[0], "127.0.0.1:8104");
    assert_int_equal(ord->sidecar.outbound[0].port, 20000 + 2 * 32 + 1);
    assert_int_equal(decide(ord, "inventory", "/orders"), PX_POLICY_NO_RULE);
    px_config_free(ord);
    /* the gateway's sidecar refuses every inbound call */
    px_config *gw = load(s, n, 4);
    assert_int_equal(gw->sidecar.noutbound, 4);
    assert_int_equal(gw->sidecar.policy.n, 0);
    assert_int_equal(decide(gw, "order", "/"), PX_POLICY_NO_RULE);
    px_config_free(gw);
    /* a buffer too small is an error, not a cut configuration */
    char small[64];
    assert_int_equal(cli_mesh_sidecar_yaml(s, n, 2, "/d/mesh", small, sizeof small), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_port_bases),
        cmocka_unit_test(test_breaker_recovery),
        cmocka_unit_test(test_sidecar_configs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
