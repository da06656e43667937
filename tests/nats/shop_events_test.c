/*
 * Choreography between real shop processes over a real nats-server:
 * product, inventory and cart each with their own database. A product
 * created by an admin reaches inventory (initial stock) and then the
 * catalogue (available); a price change reaches the cart's replica and the
 * catalogue; a restock changes `available` in the catalogue.
 */
#include "svc_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static char dir[] = "/tmp/shoal-shop-events-XXXXXX";
static pid_t nats;
static char bus_env[80];
static svc_proc product, inventory, cart;

/* Polls GET `path` on `p` until `ok(json)` holds (bounded: 20 s); returns the last JSON. */
static json_t *poll_until(const svc_proc *p, const char *path, const char *user, const char *role,
                          int (*ok)(const json_t *, const void *), const void *arg)
{
    json_t *last = NULL;
    for (int i = 0; i < 400; i++) {
        th_response r;
        int st = svc_req(p, "GET", path, user, role, NULL, &r);
        json_decref(last);
        last = st == 200 ? svc_json(&r) : NULL;
        th_response_free(&r);
        if (last && ok(last, arg)) return last;
        usleep(50000);
    }
    fail_msg("GET %s never reached the expected state: %s", path,
             last ? json_dumps(last, JSON_COMPACT) : "(no 200)");
    return NULL;
}

static int available_is(const json_t *v, const void *want)
{
    return json_integer_value(json_object_get(v, "available")) == *(const int64_t *)want;
}

static int price_is(const json_t *v, const void *want)
{
    json_t *price = json_object_get(v, "price");
    return json_integer_value(json_object_get(price, "amount")) == *(const int64_t *)want;
}

static int cart_unit_price_is(const json_t *v, const void *want)
{
    json_t *item = json_array_get(json_object_get(v, "items"), 0);
    json_t *price = json_object_get(item, "unit_price");
    return json_integer_value(json_object_get(price, "amount")) == *(const int64_t *)want;
}

static void test_price_and_stock_flow(void **state)
{
    (void)state;
    json_t *created = svc_call(&product, "POST", "/admin/products", "admin-1", "admin",
                               "{\"sku\":\"EV-1\",\"name\":\"Event Lamp\",\"description\":\"d\","
                               "\"category\":\"home\",\"price\":{\"amount\":1000,\"currency\":"
                               "\"JPY\"},\"stock\":5}",
                               201);
    char id[64], path[128];
    snprintf(id, sizeof id, "%s", svc_str(created, "product_id"));
    json_decref(created);

    /* product.created → inventory's stock row → stock_changed → the catalogue's available. */
    int64_t five = 5;
    snprintf(path, sizeof path, "/stock/%s", id);
    json_decref(poll_until(&inventory, path, "admin-1", "admin", available_is, &five));
    snprintf(path, sizeof path, "/products/%s", id);
    json_decref(poll_until(&product, path, NULL, NULL, available_is, &five));

    /* The cart learns the product (and its price) from product.created. */
    snprintf(path, sizeof path, "/cart/items/%s", id);
    int st = 0;
    for (int i = 0; i < 400 && st != 200; i++, usleep(50000)) {
        th_response r;
        st = svc_req(&cart, "PUT", path, "u-1", "customer", "{\"qty\":2}", &r);
        th_response_free(&r);
    }
    assert_int_equal(st, 200);
    int64_t p1000 = 1000, p1500 = 1500;
    json_decref(poll_until(&cart, "/cart", "u-1", "customer", cart_unit_price_is, &p1000));

    /* A price change reaches the cart's replica and the catalogue. */
    snprintf(path, sizeof path, "/admin/products/%s", id);
    json_decref(svc_call(&product, "PATCH", path, "admin-1", "admin",
                         "{\"price\":{\"amount\":1500,\"currency\":\"JPY\"}}", 200));
    json_decref(poll_until(&cart, "/cart", "u-1", "customer", cart_unit_price_is, &p1500));
    snprintf(path, sizeof path, "/products/%s", id);
    json_decref(poll_until(&product, path, NULL, NULL, price_is, &p1500));

    /* A restock changes available in the catalogue. */
    snprintf(path, sizeof path, "/stock/%s/restock", id);
    json_decref(svc_call(&inventory, "POST", path, "admin-1", "admin", "{\"quantity\":10}", 200));
    int64_t fifteen = 15;
    snprintf(path, sizeof path, "/products/%s", id);
    json_decref(poll_until(&product, path, NULL, NULL, available_is, &fifteen));
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir)) return -1;
    int port = th_free_port();
    char p[16], sd[600];
    snprintf(p, sizeof p, "%d", port);
    snprintf(sd, sizeof sd, "%s/js", dir);
    char *argv[] = {"/usr/sbin/nats-server", "-a", "127.0.0.1", "-p", p, "-js", "-sd", sd, NULL};
    nats = th_spawn(argv, NULL, "shop_events.nats.log");
    if (th_wait_port(port, 15000) != 0) return -1;
    snprintf(bus_env, sizeof bus_env, "SHOAL_BUS__URL=nats://127.0.0.1:%d", port);
    char *env[] = {bus_env, "SHOAL_BUS__ACK_WAIT_MS=2000", "SHOAL_LOG__LEVEL=warn", NULL};
    svc_start(&inventory, "inventory", env, 1);
    svc_start(&product, "product", env, 1);
    svc_start(&cart, "cart", env, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    svc_stop(&cart);
    svc_stop(&product);
    svc_stop(&inventory);
    th_stop(nats, SIGTERM, 10000);
    harness_done();
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    char *args[] = {"shop_events", "sqlite", NULL};
    harness_init(2, args);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_price_and_stock_flow),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
