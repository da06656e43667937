/*
 * The cart's pure rules: what a quantity and a price are, how a cart is
 * totalled (one currency, checked arithmetic), what a confirmed order leaves
 * in the cart, and when a replicated value may be overwritten by an event.
 * No I/O; tests/services/cart/domain_test.c covers it alone.
 */
#include "cart.h"

#include <stdio.h>
#include <string.h>

int cart_id_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > CART_ID_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.' || c == ':';
        if (!ok) return 0;
    }
    return 1;
}

int cart_currency_valid(const char *s)
{
    if (s == NULL || strlen(s) != 3) return 0;
    for (int i = 0; i < 3; i++)
        if (s[i] < 'A' || s[i] > 'Z') return 0;
    return 1;
}

int cart_read_qty(const json_t *body, int64_t *qty, sl_json_errors *errs)
{
    const sl_json_field f[] = {{.name = "qty",
                                .kind = SL_JSON_INT,
                                .flags = SL_JSON_REQUIRED,
                                .min = 0,
                                .max = CART_QTY_MAX,
                                .out = qty}};
    return sl_json_read(body, f, 1, SL_JSON_REJECT_UNKNOWN, errs) != 0 ? SL_EINVAL : 0;
}

int cart_read_money(const json_t *v, const char *field, int64_t *amount, char currency[4],
                    sl_json_errors *errs)
{
    const char *cur = NULL;
    const sl_json_field f[] = {
        {.name = "amount",
         .kind = SL_JSON_INT,
         .flags = SL_JSON_REQUIRED,
         .min = 0,
         .max = CART_AMOUNT_MAX,
         .out = amount},
        {.name = "currency",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 3,
         .max = 3,
         .max_bytes = 3,
         .out = &cur},
    };
    if (sl_json_read_at(v, field, f, SL_ARRAY_LEN(f), SL_JSON_REJECT_UNKNOWN, errs) != 0)
        return SL_EINVAL;
    if (!cart_currency_valid(cur)) {
        char path[64];
        snprintf(path, sizeof path, "%s.currency", field);
        sl_json_errors_add(errs, path, "must be three upper-case letters (ISO 4217)");
        return SL_EINVAL;
    }
    memcpy(currency, cur, 4);
    return 0;
}

int cart_total(const cart_line *lines, size_t n, int64_t *amount, char currency[4])
{
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

int cart_event_newer(int64_t stored_ms, int64_t event_ms)
{
    return event_ms < 0 || event_ms >= stored_ms;
}
