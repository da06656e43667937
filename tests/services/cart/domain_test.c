/*
 * The cart's pure rules alone (domain.c): quantity and money validation
 * naming the field, totals in one currency with checked arithmetic, what a
 * confirmed order leaves in the cart, and last-writer-wins by event time.
 */
#include "cart.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static int qty_of(const char *text, int64_t *qty, sl_json_errors *errs)
{
    json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    sl_json_errors_init(errs);
    int rc = cart_read_qty(v, qty, errs);
    json_decref(v);
    return rc;
}

static void test_qty_bounds(void **state)
{
    (void)state;
    int64_t q = -1;
    sl_json_errors errs;
    assert_int_equal(qty_of("{\"qty\":0}", &q, &errs), 0);
    assert_int_equal(q, 0);
    assert_int_equal(qty_of("{\"qty\":99}", &q, &errs), 0);
    assert_int_equal(q, 99);
    const char *bad[] = {"{}",
                         "{\"qty\":100}",
                         "{\"qty\":-1}",
                         "{\"qty\":1.5}",
                         "{\"qty\":\"2\"}",
                         "{\"qty\":null}",
                         "{\"qty\":1e40}",
                         "{\"qty\":true}"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        assert_int_equal(qty_of(bad[i], &q, &errs), SL_EINVAL);
        assert_string_equal(errs.items[0].field, "qty");
    }
    assert_int_equal(qty_of("{\"qty\":1,\"note\":1}", &q, &errs), SL_EINVAL);
    assert_string_equal(errs.items[0].field, "note");
}

static void test_money(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *field;
    } cases[] = {
        {"{\"amount\":-1,\"currency\":\"JPY\"}", "p.amount"},
        {"{\"amount\":1000000000001,\"currency\":\"JPY\"}", "p.amount"},
        {"{\"amount\":1,\"currency\":\"jpy\"}", "p.currency"},
        {"{\"amount\":1,\"currency\":\"YENS\"}", "p.currency"},
        {"{\"amount\":1}", "p.currency"},
        {"7", "p"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        json_t *v = json_loads(cases[i].text, JSON_DECODE_ANY, NULL);
        int64_t amount;
        char cur[4];
        sl_json_errors errs;
        sl_json_errors_init(&errs);
        assert_int_equal(cart_read_money(v, "p", &amount, cur, &errs), SL_EINVAL);
        assert_string_equal(errs.items[0].field, cases[i].field);
        json_decref(v);
    }
    json_t *v = json_loads("{\"amount\":1200,\"currency\":\"JPY\"}", 0, NULL);
    int64_t amount = 0;
    char cur[4];
    assert_int_equal(cart_read_money(v, "p", &amount, cur, NULL), 0);
    assert_int_equal(amount, 1200);
    assert_string_equal(cur, "JPY");
    json_decref(v);
}

static void test_totals(void **state)
{
    (void)state;
    int64_t amount = -1;
    char cur[4];
    assert_int_equal(cart_total(NULL, 0, &amount, cur), 0);
    assert_int_equal(amount, 0);
    assert_string_equal(cur, CART_CURRENCY_DEF);
    cart_line l[3] = {{"a", 2, 1200, "JPY"}, {"b", 1, 300, "JPY"}, {"c", 1, 5, "USD"}};
    assert_int_equal(cart_total(l, 2, &amount, cur), 0);
    assert_int_equal(amount, 2700);
    assert_int_equal(cart_total(l, 3, &amount, cur), SL_ECONFLICT);
    cart_line big[2] = {{"a", 99, INT64_MAX / 50, "JPY"}, {"b", 1, 1, "JPY"}};
    assert_int_equal(cart_total(big, 2, &amount, cur), SL_ELIMIT);
}

static void test_order_and_events(void **state)
{
    (void)state;
    assert_int_equal(cart_after_order(3, 1), 2);
    assert_int_equal(cart_after_order(3, 3), 0);
    assert_int_equal(cart_after_order(3, 7), 0);
    assert_true(cart_event_newer(100, 100));
    assert_true(cart_event_newer(100, 101));
    assert_false(cart_event_newer(100, 99));
    assert_true(cart_event_newer(100, -1)); /* unknown time: applied */
    assert_true(cart_id_valid("0190a3f2-7c1e", 13));
    assert_false(cart_id_valid("a/b", 3));
    assert_false(cart_id_valid("", 0));
    assert_true(cart_currency_valid("EUR"));
    assert_false(cart_currency_valid("EU"));
    assert_false(cart_currency_valid(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qty_bounds),
        cmocka_unit_test(test_money),
        cmocka_unit_test(test_totals),
        cmocka_unit_test(test_order_and_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
