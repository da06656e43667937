/*
 * The cart's transactions: setting a product's quantity checks the replica's
 * price and the cart's limits and writes in one transaction.
 */
#include "cart.h"

#include <shoal/clock.h>

#include <stdlib.h>
#include <string.h>

/* The refusal of adding (or changing) `pid`, priced in `currency`, to the user's cart. */
static int check_add(sl_db *tx, const char *user, const char *pid, const char *currency,
                     cart_refusal *why)
{
    int64_t cur = 0;
    int rc = cart_store_item_qty(tx, user, pid, &cur);
    if (rc != 0 && rc != SL_ENOTFOUND) return rc;
    int in_cart = rc == 0;
    cart_line *lines = calloc(CART_ITEMS_MAX, sizeof *lines);
    size_t n = 0;
    rc = lines ? cart_store_lines(tx, user, lines, CART_ITEMS_MAX, &n) : SL_ENOMEM;
    if (rc == 0 && !in_cart && n >= CART_ITEMS_MAX) *why = CART_FULL;
    for (size_t i = 0; rc == 0 && *why == CART_OK && i < n; i++)
        if (strcmp(lines[i].product_id, pid) != 0 && strcmp(lines[i].currency, currency) != 0)
            *why = CART_CURRENCY;
    free(lines);
    return rc;
}

int cart_cmd_set(sl_db *db, const char *user_id, const char *product_id, int64_t qty,
                 cart_refusal *why)
{
    SL_ASSERT(db != NULL && user_id != NULL && product_id != NULL && why != NULL);
    SL_ASSERT(qty >= 0 && qty <= CART_QTY_MAX);
    *why = CART_OK;
    int rc = sl_db_begin(db);
    if (rc != 0) return rc;
    product_replica_row price;
    rc = product_replica_get(db, product_id, &price);
    if (rc == SL_ENOTFOUND || (rc == 0 && !price.has_price)) {
        *why = CART_NO_PRODUCT;
        rc = 0;
    } else if (rc == 0 && qty == 0) {
        rc = cart_store_item_delete(db, user_id, product_id, NULL);
    } else if (rc == 0) {
        rc = check_add(db, user_id, product_id, price.currency, why);
        if (rc == 0 && *why == CART_OK)
            rc = cart_store_item_set(db, user_id, product_id, qty,
                                     sl_clock_wall_ms(sl_clock_system()));
    }
    if (rc == 0 && *why == CART_OK) rc = sl_db_commit(db);
    if (rc != 0 || *why != CART_OK) sl_db_rollback(db);
    return rc;
}
