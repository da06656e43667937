/*
 * The cart's pure rules alone (domain.c): quantity validation naming the
 * field, totals in one currency with checked arithmetic, and what a
 * confirmed order leaves in the cart. The price replica's rules (money,
 * ids, last-writer-wins by event time) are tested with the product
 * contract (tests/services/product/contract_test.c).
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

static void test_after_order(void **state)
{
    (void)state;
    assert_int_equal(cart_after_order(3, 1), 2);
    assert_int_equal(cart_after_order(3, 3), 0);
    assert_int_equal(cart_after_order(3, 7), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qty_bounds),
        cmocka_unit_test(test_totals),
        cmocka_unit_test(test_after_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
