/*
 * The order contract alone (src/services/order/contract/): the event decoder
 * reads what a consumer needs (ids and items; prices and totals only when
 * asked), tolerates members it does not read, and refuses data that can
 * never apply with a reason naming the field.
 */
#include "order/contract/order_events.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static json_t *g_data;

/* Decodes `text` (kept in g_data) as an event of `type`; returns the result code. */
static int decode(const char *type, const char *text, unsigned flags, order_event_view *ev,
                  char *reason, size_t cap)
{
    json_t *d = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(d);
    json_decref(g_data); /* the decoded strings borrow from the data: kept until the next call */
    g_data = d;
    return order_event_decode(type, d, flags, ev, reason, cap);
}

static void test_items_with_and_without_prices(void **state)
{
    (void)state;
    order_event_view *ev = malloc(sizeof *ev);
    assert_non_null(ev);
    char reason[160] = "";
    /* A consumer that reads only ids and quantities: total_amount is not read at all. */
    const char *bare = "{\"order_id\":\"ord-1\",\"user_id\":\"buyer\",\"items\":["
                       "{\"product_id\":\"o1\",\"qty\":2},{\"product_id\":\"o2\",\"qty\":1}],"
                       "\"total_amount\":400}";
    assert_int_equal(decode(ORDER_EV_CONFIRMED, bare, 0, ev, reason, sizeof reason), 0);
    assert_string_equal(ev->order_id, "ord-1");
    assert_string_equal(ev->user_id, "buyer");
    assert_true(ev->has_items);
    assert_int_equal(ev->nitems, 2);
    assert_string_equal(ev->items[1].product_id, "o2");
    assert_int_equal(ev->items[0].qty, 2);
    assert_false(ev->has_total);
    /* The same data with prices asked for: total_amount must be money, unit_price is required. */
    assert_int_equal(decode(ORDER_EV_CONFIRMED, bare, ORDER_READ_PRICES, ev, reason, sizeof reason),
                     SL_EPARSE);
    assert_string_equal(reason, "shop.order.confirmed.v1: total_amount must be an object");
    assert_int_equal(decode(ORDER_EV_CONFIRMED,
                            "{\"order_id\":\"o\",\"user_id\":\"u\",\"items\":[{\"product_id\":"
                            "\"o1\",\"qty\":2}]}",
                            ORDER_READ_PRICES, ev, reason, sizeof reason),
                     SL_EPARSE);
    assert_string_equal(reason, "shop.order.confirmed.v1: items[0].unit_price is required");
    const char *priced = "{\"order_id\":\"h1\",\"user_id\":\"hu\",\"items\":[{\"product_id\":"
                         "\"r1\",\"qty\":2,\"unit_price\":{\"amount\":700,\"currency\":\"JPY\"}}],"
                         "\"total_amount\":{\"amount\":1400,\"currency\":\"JPY\"}}";
    assert_int_equal(decode(ORDER_EV_CREATED, priced, ORDER_READ_PRICES, ev, reason, sizeof reason),
                     0);
    assert_int_equal(ev->items[0].unit_price, 700);
    assert_string_equal(ev->items[0].currency, "JPY");
    assert_true(ev->has_total);
    assert_int_equal(ev->total, 1400);
    /* Shipped carries only the ids; cancelled its reason. */
    assert_int_equal(decode(ORDER_EV_SHIPPED, "{\"order_id\":\"h1\",\"user_id\":\"hu\"}", 0, ev,
                            reason, sizeof reason),
                     0);
    assert_false(ev->has_items);
    assert_null(ev->reason);
    assert_int_equal(
        decode(ORDER_EV_CANCELLED,
               "{\"order_id\":\"h1\",\"user_id\":\"hu\",\"reason\":\"payment_failed\"}", 0, ev,
               reason, sizeof reason),
        0);
    assert_string_equal(ev->reason, "payment_failed");
    free(ev);
}

static void test_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *type, *data, *reason;
    } cases[] = {
        {ORDER_EV_CANCELLED, "{\"order_id\":\"h1\"}",
         "shop.order.cancelled.v1: user_id is required"},
        {"shop.order.unknown.v1", "{\"order_id\":\"h1\",\"user_id\":\"hu\"}",
         "shop.order.unknown.v1: type is not an order event"},
        {ORDER_EV_CONFIRMED, "{\"order_id\":\"a b\",\"user_id\":\"hu\"}",
         "shop.order.confirmed.v1: order_id is not a valid id"},
        {ORDER_EV_CONFIRMED,
         "{\"order_id\":\"o\",\"user_id\":\"b\",\"items\":[{\"product_id\":\"o1\",\"qty\":1},"
         "{\"product_id\":\"o2\",\"qty\":-1}]}",
         NULL},
        {ORDER_EV_CONFIRMED, "{\"order_id\":\"o\",\"user_id\":\"b\",\"items\":[]}", NULL},
        {ORDER_EV_CONFIRMED, "7", "shop.order.confirmed.v1: data is missing or invalid"},
        {ORDER_EV_CANCELLED,
         "{\"order_id\":\"o\",\"user_id\":\"b\",\"reason\":\"0123456789012345678901234567890123\"}",
         NULL},
    };
    const char *field[] = {NULL, NULL, NULL, "items[1].qty", "items", NULL, "reason"};
    order_event_view *ev = malloc(sizeof *ev);
    assert_non_null(ev);
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        char reason[160] = "";
        assert_int_equal(decode(cases[i].type, cases[i].data, 0, ev, reason, sizeof reason),
                         SL_EPARSE);
        if (cases[i].reason) assert_string_equal(reason, cases[i].reason);
        if (field[i]) {
            char want[80];
            snprintf(want, sizeof want, "%s: %s ", cases[i].type, field[i]);
            assert_memory_equal(reason, want, strlen(want));
        }
    }
    free(ev);
    assert_true(order_event_id_valid("0190a3f2-7c1e", 13));
    assert_false(order_event_id_valid("a/b", 3));
    assert_false(order_event_id_valid("", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_items_with_and_without_prices),
        cmocka_unit_test(test_refusals),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    json_decref(g_data);
    return rc;
}
