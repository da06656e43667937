/*
 * shoal-cart on SQLite and PostgreSQL (argv[1]): the event appliers against
 * the service's database (product events fill the price replica once, a
 * late older event never overwrites a newer price, order.confirmed takes the
 * ordered units out of the user's cart once), and the HTTP API over real
 * sockets: set, remove, totals at the replica's current prices, users see
 * only their own cart, and bad input on every endpoint answered with
 * problem+json naming the field while the database stays unchanged.
 */
#include "cart.h"

#include "../svc_harness.h"

#include <shoal/bus.h>
#include <shoal/outbox.h>

static svc_proc g_svc;
static sl_db *g_db;

/* Delivers an event like the bus runner: inbox claim + apply in one transaction. */
static int deliver(sl_event_apply_cb apply, const char *id, const char *type, const char *time,
                   const char *data_json)
{
    json_t *data = json_loads(data_json, 0, NULL);
    assert_non_null(data);
    sl_bus_msg msg = {.topic = type, .id = id, .type = type, .time = time, .data = data};
    char reason[200] = "";
    HARNESS_OK(g_db, sl_db_begin(g_db));
    int rc = sl_inbox_claim(g_db, "cart.test", id, sl_clock_wall_ms(sl_clock_system()));
    assert_true(rc >= 0);
    if (rc == 1) rc = apply(NULL, g_db, &msg, reason, sizeof reason) == 0 ? 1 : -1;
    if (rc >= 0)
        HARNESS_OK(g_db, sl_db_commit(g_db));
    else
        sl_db_rollback(g_db);
    json_decref(data);
    return rc;
}

static void product(const char *pid, int64_t amount, const char *currency, const char *time)
{
    char id[80], data[300];
    snprintf(id, sizeof id, "created-%s", pid);
    snprintf(data, sizeof data,
             "{\"product_id\":\"%s\",\"sku\":\"S-%s\",\"name\":\"Name %s\",\"description\":\"d\","
             "\"category\":\"c\",\"price\":{\"amount\":%lld,\"currency\":\"%s\"},"
             "\"initial_stock\":5}",
             pid, pid, pid, (long long)amount, currency);
    assert_int_equal(deliver(product_replica_apply, id, "shop.product.created.v1", time, data), 1);
}

static int64_t digest(void)
{
    return harness_int(g_db, "SELECT (SELECT COUNT(*) FROM product_prices) * 1000000 + "
                             "(SELECT COALESCE(SUM(price), 0) FROM product_prices) + "
                             "(SELECT COUNT(*) FROM cart_items) * 10000 + "
                             "(SELECT COALESCE(SUM(qty), 0) FROM cart_items) * 100");
}

static int setup(void **state)
{
    (void)state;
    svc_start(&g_svc, "cart", NULL, 1);
    harness_open_url(g_svc.db_url, &g_db);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sl_db_close(g_db);
    svc_stop(&g_svc);
    return 0;
}

static void test_replica_applies_once_and_in_time_order(void **state)
{
    (void)state;
    /* The host applied the product contract's migration after the cart's own. */
    assert_int_equal(harness_int(g_db, "SELECT COUNT(*) FROM schema_migrations WHERE "
                                       "component = 'product_contract' AND version = 1"),
                     1);
    product("r1", 1000, "JPY", "2026-01-01T00:00:01Z");
    assert_int_equal(harness_int(g_db, "SELECT price FROM product_prices WHERE product_id='r1'"),
                     1000);
    /* The same event again: the inbox drops it. */
    assert_int_equal(deliver(product_replica_apply, "created-r1", "shop.product.created.v1", NULL,
                             "{\"product_id\":\"r1\",\"price\":{\"amount\":5,\"currency\":"
                             "\"JPY\"}}"),
                     0);
    assert_int_equal(deliver(product_replica_apply, "pc-1", "shop.product.price_changed.v1",
                             "2026-01-01T00:00:03Z",
                             "{\"product_id\":\"r1\",\"old_price\":{\"amount\":1000,\"currency\":"
                             "\"JPY\"},\"new_price\":{\"amount\":1500,\"currency\":\"JPY\"}}"),
                     1);
    assert_int_equal(harness_int(g_db, "SELECT price FROM product_prices WHERE product_id='r1'"),
                     1500);
    /* An update older than the price change but newer than the name: the price stays, the
     * name (each value is ordered by its own event time) changes. */
    assert_int_equal(deliver(product_replica_apply, "upd-old", "shop.product.updated.v1",
                             "2026-01-01T00:00:02Z",
                             "{\"product_id\":\"r1\",\"name\":\"Old\",\"price\":{\"amount\":"
                             "1200,\"currency\":\"JPY\"}}"),
                     1);
    assert_int_equal(harness_int(g_db, "SELECT price FROM product_prices WHERE product_id='r1'"),
                     1500);
    assert_int_equal(harness_int(g_db, "SELECT COUNT(*) FROM product_prices WHERE "
                                       "product_id='r1' AND name = 'Old'"),
                     1);
    /* A newer rename without a price keeps the price. */
    assert_int_equal(deliver(product_replica_apply, "upd-new", "shop.product.updated.v1",
                             "2026-01-01T00:00:04Z", "{\"product_id\":\"r1\",\"name\":\"New\"}"),
                     1);
    assert_int_equal(harness_int(g_db, "SELECT COUNT(*) FROM product_prices WHERE "
                                       "product_id='r1' AND name = 'New' AND price = 1500"),
                     1);
    /* Events that can never apply are refused and change nothing. */
    int64_t before = digest();
    const char *bad[] = {
        "{\"name\":\"x\"}",
        "{\"product_id\":\"a b\",\"price\":{\"amount\":1,\"currency\":\"JPY\"}}",
        "{\"product_id\":\"r9\",\"price\":{\"amount\":-1,\"currency\":\"JPY\"}}",
        "{\"product_id\":\"r9\",\"price\":{\"amount\":1,\"currency\":\"yen\"}}",
        "{\"product_id\":\"r9\",\"price\":\"1000\"}",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        char id[32];
        snprintf(id, sizeof id, "bad-%zu", i);
        assert_int_equal(
            deliver(product_replica_apply, id, "shop.product.created.v1", NULL, bad[i]), -1);
    }
    assert_int_equal(deliver(product_replica_apply, "bad-pc", "shop.product.price_changed.v1", NULL,
                             "{\"product_id\":\"r1\"}"),
                     -1);
    assert_int_equal(digest(), before);
}

static void test_cart_over_http(void **state)
{
    (void)state;
    product("c1", 1200, "JPY", NULL);
    product("c2", 300, "JPY", NULL);
    json_t *r = svc_call(&g_svc, "GET", "/cart", "u1", "customer", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(r, "items")), 0);
    assert_int_equal(svc_int(json_object_get(r, "total"), "amount"), 0);
    json_decref(r);
    json_decref(svc_call(&g_svc, "PUT", "/cart/items/c1", "u1", "customer", "{\"qty\":2}", 200));
    r = svc_call(&g_svc, "PUT", "/cart/items/c2", "u1", "customer", "{\"qty\":3}", 200);
    assert_int_equal(json_array_size(json_object_get(r, "items")), 2);
    json_t *it = json_array_get(json_object_get(r, "items"), 0);
    assert_string_equal(svc_str(it, "product_id"), "c1");
    assert_int_equal(svc_int(it, "qty"), 2);
    assert_int_equal(svc_int(json_object_get(it, "unit_price"), "amount"), 1200);
    assert_int_equal(svc_int(json_object_get(r, "total"), "amount"), 2 * 1200 + 3 * 300);
    assert_string_equal(svc_str(json_object_get(r, "total"), "currency"), "JPY");
    json_decref(r);
    /* Setting is absolute, not additive. */
    r = svc_call(&g_svc, "PUT", "/cart/items/c1", "u1", "customer", "{\"qty\":1}", 200);
    assert_int_equal(svc_int(json_object_get(r, "total"), "amount"), 1200 + 900);
    json_decref(r);
    /* Prices come from the replica: a price change shows at once. */
    assert_int_equal(deliver(product_replica_apply, "pc-c1", "shop.product.price_changed.v1", NULL,
                             "{\"product_id\":\"c1\",\"old_price\":{\"amount\":1200,\"currency\":"
                             "\"JPY\"},\"new_price\":{\"amount\":1000,\"currency\":\"JPY\"}}"),
                     1);
    r = svc_call(&g_svc, "GET", "/cart", "u1", "customer", NULL, 200);
    assert_int_equal(svc_int(json_object_get(r, "total"), "amount"), 1000 + 900);
    json_decref(r);
    /* Another user sees an empty cart. */
    r = svc_call(&g_svc, "GET", "/cart", "u2", "customer", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(r, "items")), 0);
    json_decref(r);
    /* qty 0 removes; DELETE removes and is idempotent for a known product. */
    r = svc_call(&g_svc, "PUT", "/cart/items/c1", "u1", "customer", "{\"qty\":0}", 200);
    assert_int_equal(json_array_size(json_object_get(r, "items")), 1);
    json_decref(r);
    r = svc_call(&g_svc, "DELETE", "/cart/items/c2", "u1", "customer", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(r, "items")), 0);
    json_decref(r);
    json_decref(svc_call(&g_svc, "DELETE", "/cart/items/c2", "u1", "customer", NULL, 200));
    /* A product in another currency does not join a JPY cart. */
    product("usd1", 5, "USD", NULL);
    json_decref(svc_call(&g_svc, "PUT", "/cart/items/c2", "u1", "customer", "{\"qty\":1}", 200));
    r = svc_call(&g_svc, "PUT", "/cart/items/usd1", "u1", "customer", "{\"qty\":1}", 409);
    assert_true(svc_has_error(r, "product_id"));
    json_decref(r);
    json_decref(svc_call(&g_svc, "DELETE", "/cart/items/c2", "u1", "customer", NULL, 200));
}

static void test_order_confirmed_takes_items_out(void **state)
{
    (void)state;
    product("o1", 100, "JPY", NULL);
    product("o2", 200, "JPY", NULL);
    json_decref(svc_call(&g_svc, "PUT", "/cart/items/o1", "buyer", "customer", "{\"qty\":3}", 200));
    json_decref(svc_call(&g_svc, "PUT", "/cart/items/o2", "buyer", "customer", "{\"qty\":1}", 200));
    json_decref(svc_call(&g_svc, "PUT", "/cart/items/o1", "other", "customer", "{\"qty\":3}", 200));
    const char *ev = "{\"order_id\":\"ord-1\",\"user_id\":\"buyer\",\"items\":["
                     "{\"product_id\":\"o1\",\"qty\":2},{\"product_id\":\"o2\",\"qty\":1},"
                     "{\"product_id\":\"never-in-cart\",\"qty\":4}],\"total_amount\":400}";
    assert_int_equal(
        deliver(cart_apply_order_confirmed, "conf-1", "shop.order.confirmed.v1", NULL, ev), 1);
    assert_int_equal(
        deliver(cart_apply_order_confirmed, "conf-1", "shop.order.confirmed.v1", NULL, ev), 0);
    json_t *r = svc_call(&g_svc, "GET", "/cart", "buyer", "customer", NULL, 200);
    json_t *items = json_object_get(r, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(svc_str(json_array_get(items, 0), "product_id"), "o1");
    assert_int_equal(svc_int(json_array_get(items, 0), "qty"), 1);
    json_decref(r);
    r = svc_call(&g_svc, "GET", "/cart", "other", "customer", NULL, 200);
    assert_int_equal(svc_int(json_array_get(json_object_get(r, "items"), 0), "qty"), 3);
    json_decref(r);
    int64_t before = digest();
    assert_int_equal(deliver(cart_apply_order_confirmed, "conf-bad", "shop.order.confirmed.v1",
                             NULL,
                             "{\"user_id\":\"buyer\",\"items\":[{\"product_id\":\"o1\",\"qty\":1},"
                             "{\"product_id\":\"o2\",\"qty\":-1}]}"),
                     -1);
    assert_int_equal(digest(), before);
}

static void expect_bad(const char *method, const char *path, const char *role, const char *body,
                       size_t len, int status, const char *field)
{
    th_response res;
    int st = svc_req_raw(&g_svc, method, path, "u7", role, body, len, NULL, &res);
    if (st != status)
        fail_msg("%s %s %.*s: status %d, want %d: %s", method, path, (int)len, body ? body : "", st,
                 status, res.body ? res.body : "");
    assert_non_null(strstr(th_header(&res, "content-type"), "application/problem+json"));
    json_t *v = svc_json(&res);
    if (field && !svc_has_error(v, field))
        fail_msg("%s %s: no error for %s: %s", method, path, field, res.body);
    json_decref(v);
    th_response_free(&res);
}

static void test_bad_input_everywhere(void **state)
{
    (void)state;
    product("x1", 10, "JPY", NULL);
    json_decref(svc_call(&g_svc, "PUT", "/cart/items/x1", "u7", "customer", "{\"qty\":2}", 200));
    int64_t before = digest();
    const char *bodies[] = {"{}",
                            "{\"qty\":-1}",
                            "{\"qty\":100}",
                            "{\"qty\":\"2\"}",
                            "{\"qty\":1.5}",
                            "{\"qty\":1e40}",
                            "{\"qty\":null}",
                            "{\"qty\":1,\"x\":2}"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bodies); i++)
        expect_bad("PUT", "/cart/items/x1", "customer", bodies[i], strlen(bodies[i]), 400,
                   i == SL_ARRAY_LEN(bodies) - 1 ? "x" : "qty");
    const char bad_utf8[] = "{\"qty\":1,\"\xc3\x28\":1}";
    expect_bad("PUT", "/cart/items/x1", "customer", bad_utf8, sizeof bad_utf8 - 1, 400, NULL);
    expect_bad("PUT", "/cart/items/x1", "customer", "{\"qty\":", 7, 400, NULL);
    /* Beyond int64 the parser itself refuses the document (field ""). */
    expect_bad("PUT", "/cart/items/x1", "customer", "{\"qty\":99999999999999999999}", 29, 400,
               NULL);
    expect_bad("PUT", "/cart/items/x1", "customer", NULL, 0, 400, NULL);
    expect_bad("PUT", "/cart/items/ghost", "customer", "{\"qty\":1}", 9, 404, "product_id");
    expect_bad("PUT", "/cart/items/bad%20id", "customer", "{\"qty\":1}", 9, 404, "product_id");
    char longpath[120];
    snprintf(longpath, sizeof longpath, "/cart/items/%0*d", 65, 7);
    expect_bad("PUT", longpath, "customer", "{\"qty\":1}", 9, 404, "product_id");
    expect_bad("DELETE", "/cart/items/ghost", "customer", NULL, 0, 404, "product_id");
    expect_bad("DELETE", longpath, "customer", NULL, 0, 404, "product_id");
    expect_bad("GET", "/cart", NULL, NULL, 0, 401, NULL);
    expect_bad("PUT", "/cart/items/x1", NULL, "{\"qty\":1}", 9, 401, NULL);
    expect_bad("DELETE", "/cart/items/x1", NULL, NULL, 0, 401, NULL);
    assert_int_equal(digest(), before);
    json_t *r = svc_call(&g_svc, "GET", "/cart", "u7", "customer", NULL, 200);
    assert_int_equal(svc_int(json_array_get(json_object_get(r, "items"), 0), "qty"), 2);
    json_decref(r);
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replica_applies_once_and_in_time_order),
        cmocka_unit_test(test_cart_over_http),
        cmocka_unit_test(test_order_confirmed_takes_items_out),
        cmocka_unit_test(test_bad_input_everywhere),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    harness_done();
    return rc;
}
