/*
 * The cart's pure rules: what a quantity is, how a cart is totalled (one
 * currency, checked arithmetic), how it is shown, and what a confirmed order
 * leaves in the cart. No I/O; tests/services/cart/domain_test.c covers it
 * alone.
 */
#include "cart.h"

#include <stdio.h>
#include <string.h>

int cart_read_qty(const json_t *body, int64_t *qty, sl_json_errors *errs)
{
    SL_ASSERT(qty != NULL);
    const sl_json_field f[] = {{.name = "qty",
                                .kind = SL_JSON_INT,
                                .flags = SL_JSON_REQUIRED,
                                .min = 0,
                                .max = CART_QTY_MAX,
                                .out = qty}};
    return sl_json_read(body, f, 1, SL_JSON_REJECT_UNKNOWN, errs) != 0 ? SL_EINVAL : 0;
}

int cart_total(const cart_line *lines, size_t n, int64_t *amount, char currency[4])
{
    SL_ASSERT(n == 0 || lines != NULL);
    int64_t sum = 0;
    snprintf(currency, 4, "%s", n ? lines[0].currency : CART_CURRENCY_DEF);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(lines[i].currency, currency) != 0) return SL_ECONFLICT;
        int64_t line;
        if (__builtin_mul_overflow(lines[i].qty, lines[i].amount, &line) ||
            __builtin_add_overflow(sum, line, &sum))
            return SL_ELIMIT;
    }
    *amount = sum;
    return 0;
}

int64_t cart_after_order(int64_t in_cart, int64_t ordered)
{
    return ordered >= in_cart ? 0 : in_cart - ordered;
}

json_t *cart_json(const cart_line *lines, size_t n)
{
    json_t *items = json_array();
    for (size_t i = 0; items && i < n; i++) {
        json_t *o = json_pack("{s:s, s:I, s:{s:I, s:s}}", "product_id", lines[i].product_id, "qty",
                              (json_int_t)lines[i].qty, "unit_price", "amount",
                              (json_int_t)lines[i].amount, "currency", lines[i].currency);
        if (!o || json_array_append_new(items, o) != 0) {
            json_decref(items);
            return NULL;
        }
    }
    if (!items) return NULL;
    int64_t amount = 0;
    char currency[4];
    int rc = cart_total(lines, n, &amount, currency);
    if (rc != 0) /* Only reachable when a product's currency changed after it was added. */
        return json_pack("{s:o, s:n, s:s}", "items", items, "total", "total_error",
                         rc == SL_ECONFLICT ? "mixed_currencies" : "overflow");
    return json_pack("{s:o, s:{s:I, s:s}}", "items", items, "total", "amount", (json_int_t)amount,
                     "currency", currency);
}
