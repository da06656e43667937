/*
 * The pure parts of `shoal deploy k8s` (k8s.h): the YAML writer gives back, through the
 * project's own YAML loader, exactly the tree it was given (strings that look like numbers,
 * booleans or null, punctuation, multi-line text); the renderer refuses a topology it cannot
 * deploy, naming the field, and derives each service's database and upstreams from it, and
 * NATS's file store from the number of services.
 */
#include "k8s.h"

#include <shoal/config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Writes `tree` as one document and reads it back with sl_config; asserts they are equal. */
static void round_trip(json_t *tree)
{
    json_t *docs = json_pack("[O]", tree);
    char *text = NULL;
    assert_int_equal(cli_k8s_yaml(docs, &text), 0);
    sl_config *cfg = NULL;
    char err[SL_CONFIG_ERR_MAX];
    if (sl_config_load_string("t.yaml", text, strlen(text), &cfg, err) != 0)
        fail_msg("%s\n%s", err, text);
    if (!json_equal(sl_config_root(cfg), tree)) fail_msg("not the same tree:\n%s", text);
    sl_config_free(cfg);
    free(text);
    json_decref(docs);
}

static void test_yaml_round_trip(void **state)
{
    (void)state;
    json_t *t = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:f,s:b,s:n,s:{},s:[],s:[s,i,{s:s,s:[s]}],s:{s:{s:s}},"
        "s:s,s:s,s:s}",
        "plain", "/usr/local/bin/shoal-order", "number", "8105", "bool", "true", "yes", "yes",
        "null", "null", "colon", "http://inventory:8104", "braces", "/users/{user_id}", "int", 42,
        "real", 0.4, "flag", 0, "nothing", "empty", "list0", "list", "a", 7, "k", "v", "deep", "x",
        "nested", "a", "b", "c", "text", "line one\n  indented: two\n\nafter a blank\n",
        "no_final_break", "a\nb", "leading", " x\ny");
    round_trip(t);
    json_decref(t);
    /* An empty document is refused. */
    json_t *bad = json_pack("[{}]");
    char *text = NULL;
    assert_int_equal(cli_k8s_yaml(bad, &text), SL_ENOMEM);
    assert_null(text);
    json_decref(bad);
}

static json_t *topology(const char *order_db, const char *calls)
{
    return json_pack("{s:[{s:s,s:i,s:s},{s:s,s:i,s:s},{s:s,s:i,s:s,s:[s]},{s:s,s:i,s:s}]}",
                     "services", "name", "inventory", "port", 8104, "db_url",
                     "postgresql://shoal@10.0.0.20:5432/shoal_inventory", "name", "payment", "port",
                     8106, "db_url", "postgresql://shoal@10.0.0.20:5432/shoal_payment", "name",
                     "order", "port", 8105, "db_url", order_db, "calls", calls, "name", "gateway",
                     "port", 8080, "config", "gateway.yaml");
}

static void test_render_refuses(void **state)
{
    (void)state;
    json_t *gw = json_pack("{s:{s:{s:[s]}}}", "clusters", "order", "endpoints", "127.0.0.1:8105");
    json_t *files = NULL;
    char err[512];
    json_t *t = topology("sqlite:data/order.db", "inventory");
    assert_int_equal(cli_k8s_render(t, gw, &files, err, sizeof err), SL_ECONFIG);
    assert_non_null(strstr(err, "order: db_url must be a postgresql:// URL"));
    json_decref(t);
    t = topology("postgresql://shoal@db/shoal_order", "shipping");
    assert_int_equal(cli_k8s_render(t, gw, &files, err, sizeof err), SL_ECONFIG);
    assert_non_null(strstr(err, "order: calls: shipping is not a service"));
    json_decref(t);
    t = topology("postgresql://shoal@db/shoal_order", "inventory");
    assert_int_equal(cli_k8s_render(t, NULL, &files, err, sizeof err), SL_ECONFIG);
    assert_non_null(strstr(err, "gateway"));
    assert_null(files);
    json_decref(t);
    json_decref(gw);
}

static void test_render_derives(void **state)
{
    (void)state;
    json_t *gw = json_pack("{s:{s:{s:[s]}}}", "clusters", "order", "endpoints", "127.0.0.1:8105");
    json_t *t = topology("postgresql://shoal@10.0.0.20:5432/shoal_order", "inventory");
    json_t *files = NULL;
    char err[512];
    assert_int_equal(cli_k8s_render(t, gw, &files, err, sizeof err), 0);
    const char *order = json_string_value(json_object_get(files, "base/order.yaml"));
    assert_non_null(order);
    assert_non_null(
        strstr(order, "SHOAL_DB__URL: \"postgresql://shoal@postgres:5432/shoal_order\""));
    assert_non_null(strstr(order, "SHOAL_UPSTREAMS__INVENTORY__URL: \"http://inventory:8104\""));
    assert_null(strstr(order, "SHOAL_UPSTREAMS__PAYMENT"));
    const char *pg = json_string_value(json_object_get(files, "base/postgres.yaml"));
    assert_non_null(strstr(pg, "CREATE DATABASE shoal_order OWNER shoal;"));
    const char *gateway = json_string_value(json_object_get(files, "base/gateway.yaml"));
    assert_non_null(strstr(gateway, "- \"order:8105\""));
    assert_non_null(json_object_get(files, "overlays/scale/kustomization.yaml"));
    /* Each of the three services' streams reserves 1 GiB on every NATS node: room for all. */
    const char *nats = json_string_value(json_object_get(files, "base/nats.yaml"));
    assert_non_null(nats);
    assert_non_null(strstr(nats, "max_file_store: 4GB"));
    json_decref(files);
    json_decref(t);
    json_decref(gw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_round_trip),
        cmocka_unit_test(test_render_refuses),
        cmocka_unit_test(test_render_derives),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
