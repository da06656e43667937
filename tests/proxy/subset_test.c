/* Unit tests for version subsets: the choice (subset.h), the split in the configuration and the
 * live split the admin API sets (cluster.h). */
#include "cluster.h"
#include "gwconfig.h"
#include "subset.h"

#include <shoal/rand.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static px_subset_input input(const uint32_t *w, const unsigned char *usable, size_t n)
{
    return (px_subset_input){.n = n, .weights = w, .usable = usable, .canary = -1};
}

/* 95/5 over 100,000 draws from a fixed seed: each share within 0.5 points of its weight. */
static void test_weights_statistically(void **state)
{
    (void)state;
    sl_rand r;
    sl_rand_seed(&r, 42);
    const uint32_t w[] = {95, 5};
    const unsigned char ok[] = {1, 1};
    size_t count[2] = {0, 0};
    for (int i = 0; i < 100000; i++) {
        px_subset_input in = input(w, ok, 2);
        in.random = sl_rand_next(&r);
        count[px_subset_choose(&in)]++;
    }
    assert_in_range(count[1], 4500, 5500);
    assert_in_range(count[0], 94500, 95500);

    /* three subsets, one at weight 0: never chosen */
    const uint32_t w3[] = {1, 0, 3};
    const unsigned char ok3[] = {1, 1, 1};
    size_t c3[3] = {0, 0, 0};
    for (int i = 0; i < 40000; i++) {
        px_subset_input in = input(w3, ok3, 3);
        in.random = sl_rand_next(&r);
        c3[px_subset_choose(&in)]++;
    }
    assert_int_equal(c3[1], 0);
    assert_in_range(c3[0], 9500, 10500);
    assert_in_range(c3[2], 29500, 30500);
}

/* The same user lands on the same subset whatever the random number; users spread by weight. */
static void test_sticky(void **state)
{
    (void)state;
    const uint32_t w[] = {50, 50};
    const unsigned char ok[] = {1, 1};
    size_t on_v2 = 0;
    for (int u = 0; u < 2000; u++) {
        char id[32];
        int n = snprintf(id, sizeof id, "user-%d", u);
        px_subset_input in = input(w, ok, 2);
        in.sticky = true;
        in.user_id = id;
        in.user_id_len = (size_t)n;
        in.random = 0;
        int first = px_subset_choose(&in);
        for (uint64_t k = 1; k < 20; k++) {
            in.random = k * 0x9e3779b97f4a7c15ull;
            assert_int_equal(px_subset_choose(&in), first);
        }
        on_v2 += first == 1;
    }
    assert_in_range(on_v2, 900, 1100);

    /* not sticky: the random number decides (both subsets show up for one user) */
    px_subset_input in = input(w, ok, 2);
    in.user_id = "user-1";
    in.user_id_len = 6;
    int seen[2] = {0, 0};
    for (uint64_t k = 0; k < 64; k++) {
        in.random = k;
        seen[px_subset_choose(&in)] = 1;
    }
    assert_true(seen[0] && seen[1]);

    /* sticky without a user id: random */
    in.sticky = true;
    in.user_id = NULL;
    in.user_id_len = 0;
    seen[0] = seen[1] = 0;
    for (uint64_t k = 0; k < 64; k++) {
        in.random = k;
        seen[px_subset_choose(&in)] = 1;
    }
    assert_true(seen[0] && seen[1]);
}

static void test_canary_header(void **state)
{
    (void)state;
    const uint32_t w[] = {100, 0};
    unsigned char ok[] = {1, 1};
    px_subset_input in = input(w, ok, 2);
    in.canary = 1;
    in.random = 7;
    assert_int_equal(px_subset_choose(&in), 0); /* no header: the weights */
    in.canary_header = true;
    assert_int_equal(px_subset_choose(&in), 1); /* the header wins over weight 0 */
    ok[1] = 0;
    assert_int_equal(px_subset_choose(&in), 0); /* a canary with no usable endpoint: weights */
    ok[1] = 1;
    in.canary = -1;
    assert_int_equal(px_subset_choose(&in), 0); /* no canary configured: the header is ignored */
}

static void test_fallback(void **state)
{
    (void)state;
    const uint32_t w[] = {100, 0};
    unsigned char ok[] = {0, 1};
    px_subset_input in = input(w, ok, 2);
    for (uint64_t k = 0; k < 32; k++) {
        in.random = k;
        assert_int_equal(px_subset_choose(&in), 1); /* v1 has no healthy endpoint: v2 */
    }
    const uint32_t w2[] = {90, 10};
    in.weights = w2;
    ok[0] = 1;
    ok[1] = 0;
    for (uint64_t k = 0; k < 32; k++) {
        in.random = k;
        assert_int_equal(px_subset_choose(&in), 0); /* v2 down: all to v1 */
    }
    ok[0] = 0; /* none usable: the weights alone */
    size_t c[2] = {0, 0};
    for (uint64_t k = 0; k < 100; k++) {
        in.random = k;
        c[px_subset_choose(&in)]++;
    }
    assert_int_equal(c[0], 90);
    assert_int_equal(c[1], 10);
}

static void test_names_and_endpoints(void **state)
{
    (void)state;
    assert_true(px_subset_name_ok("v1", 2));
    assert_true(px_subset_name_ok("2024.1-rc_2", 11));
    assert_false(px_subset_name_ok("", 0));
    assert_false(px_subset_name_ok("V1", 2));
    assert_false(px_subset_name_ok("a b", 3));
    assert_false(px_subset_name_ok("0123456789abcdef", 16));
    const char *v;
    assert_int_equal(px_subset_split_endpoint("127.0.0.1:80@v2", &v), 12);
    assert_string_equal(v, "v2");
    assert_int_equal(px_subset_split_endpoint("127.0.0.1:80", &v), 12);
    assert_null(v);
}

static const char base[] = ""
                           "clusters:\n"
                           "  hello:\n"
                           "    endpoints: ['127.0.0.1:9001@v1', '127.0.0.1:9002@v2', "
                           "'127.0.0.1:9003@v1']\n"
                           "    split: [{subset: v1, weight: 95}, {subset: v2, weight: 5}]\n"
                           "    canary: v2\n"
                           "    sticky: true\n"
                           "routes:\n"
                           "  - {name: hello, match: {path: /hello}, cluster: hello}\n";

static void test_config(void **state)
{
    (void)state;
    char err[PX_ERR_MAX];
    px_config *cfg = NULL;
    int rc = px_config_load_string("t.yaml", base, NULL, &cfg, err);
    if (rc != 0) fail_msg("%s", err);
    const px_cluster_cfg *c = &cfg->clusters[0];
    assert_int_equal(c->nsubsets, 2);
    assert_string_equal(c->subset_names[1], "v2");
    assert_int_equal(c->subset_weights[0], 95);
    assert_int_equal(c->canary, 1);
    assert_true(c->sticky);
    assert_string_equal(c->endpoints[1], "127.0.0.1:9002"); /* the label is not in the address */
    assert_int_equal(c->ep_subset[2], 0);
    assert_int_equal(c->nsub_eps[0], 2);
    assert_int_equal(c->sub_idx[0][1], 2);
    assert_string_equal(c->sub_eps[1][0], "127.0.0.1:9002");

    /* the live split: set, refused, shown */
    px_board b;
    assert_int_equal(px_board_init(&b, cfg, 2), 0);
    char msg[256];
    const char ok[] =
        "{\"split\":[{\"subset\":\"v2\",\"weight\":25},{\"subset\":\"v1\",\"weight\":75}]}";
    assert_int_equal(px_board_set_split(&b, cfg, 0, ok, strlen(ok), msg), 0);
    assert_int_equal(atomic_load(&b.weights[0]), 75);
    assert_int_equal(atomic_load(&b.weights[1]), 25);
    const char only[] = "{\"split\":[{\"subset\":\"v2\",\"weight\":100}]}";
    assert_int_equal(px_board_set_split(&b, cfg, 0, only, strlen(only), msg), 0);
    assert_int_equal(atomic_load(&b.weights[0]), 0); /* not named: 0 */
    struct {
        const char *body;
        int status;
        const char *needle;
    } bad[] = {
        {"nope", 400, "JSON object"},
        {"{\"split\":[]}", 422, "split"},
        {"{\"split\":[{\"subset\":\"v3\",\"weight\":1}]}", 422, "split[0].subset"},
        {"{\"split\":[{\"subset\":\"v1\",\"weight\":-1}]}", 422, "split[0].weight"},
        {"{\"split\":[{\"subset\":\"v1\",\"weight\":1},{\"subset\":\"v1\",\"weight\":2}]}", 422,
         "split[1].subset"},
        {"{\"split\":[{\"subset\":\"v1\",\"weight\":0}]}", 422, "not all be 0"},
        {"{\"split\":[{\"subset\":\"v1\"}]}", 422, "split[0]"},
        {"{\"split\":[],\"x\":1}", 422, "only member"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(px_board_set_split(&b, cfg, 0, bad[i].body, strlen(bad[i].body), msg),
                         bad[i].status);
        if (!strstr(msg, bad[i].needle)) fail_msg("%s: %s", bad[i].body, msg);
    }
    assert_int_equal(atomic_load(&b.weights[1]), 100); /* refusals changed nothing */
    size_t len = 0;
    char *doc = px_admin_clusters_doc(cfg, &b, 1, &len);
    assert_non_null(doc);
    assert_non_null(strstr(doc, "\"subset\":\"v2\""));
    assert_non_null(strstr(doc, "\"version\":\"v1\""));
    free(doc);
    px_board_deinit(&b);
    px_config_free(cfg);
}

static void refused(const char *yaml, const char *needle)
{
    char err[PX_ERR_MAX];
    px_config *cfg = NULL;
    assert_int_not_equal(px_config_load_string("t.yaml", yaml, NULL, &cfg, err), 0);
    if (!strstr(err, needle)) fail_msg("expected %s in: %s", needle, err);
}

static void test_config_refusals(void **state)
{
    (void)state;
    refused("clusters: {a: {endpoints: ['127.0.0.1:1@v1']}}\n", "no split");
    refused("clusters: {a: {endpoints: ['127.0.0.1:1'], split: [{subset: v1, weight: 1}]}}\n",
            "needs @version");
    refused("clusters: {a: {endpoints: ['127.0.0.1:1@v3'], split: [{subset: v1, weight: 1}]}}\n",
            "not in split");
    refused("clusters: {a: {endpoints: ['127.0.0.1:1@v1'], split: [{subset: v1, weight: 1}, "
            "{subset: v2, weight: 1}]}}\n",
            "has no endpoint");
    refused("clusters: {a: {endpoints: ['127.0.0.1:1@v1'], split: [{subset: v1, weight: 0}]}}\n",
            "not all be 0");
    refused("clusters: {a: {endpoints: ['127.0.0.1:1@V1'], split: [{subset: v1, weight: 1}]}}\n",
            "endpoints[0]");
    refused("clusters: {a: {endpoints: ['127.0.0.1:1@v1'], split: [{subset: v1, weight: 1}], "
            "canary: v9}}\n",
            "canary");
    refused("clusters: {a: {endpoints: ['127.0.0.1:1@v1'], split: [{subset: v1, weight: 1}, "
            "{subset: v1, weight: 2}]}}\n",
            "twice");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weights_statistically), cmocka_unit_test(test_sticky),
        cmocka_unit_test(test_canary_header),         cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_names_and_endpoints),   cmocka_unit_test(test_config),
        cmocka_unit_test(test_config_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
