/*
 * The cart's SQL, through sl_db prepared statements: the cart items, priced
 * by joining the price replica's table (product/contract/product_replica.h).
 * Transactions are opened by the callers (commands.c, events.c).
 */
#include "cart.h"

#include <stdio.h>
#include <string.h>

int cart_store_item_set(sl_db *db, const char *user_id, const char *product_id, int64_t qty,
                        int64_t now_ms)
{
    sl_db_stmt *st;
    SL_DB_PREP(db,
               "INSERT INTO cart_items (user_id, product_id, qty, added_ms) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (user_id, product_id) DO UPDATE SET qty = excluded.qty",
               st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, user_id, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 2, product_id, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_int64(st, 3, qty));
    SL_DB_BIND(st, sl_db_bind_int64(st, 4, now_ms));
    return sl_db_run(st, NULL);
}

int cart_store_item_delete(sl_db *db, const char *user_id, const char *product_id, int *deleted)
{
    sl_db_stmt *st;
    SL_DB_PREP(db, "DELETE FROM cart_items WHERE user_id = ? AND product_id = ?", st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, user_id, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 2, product_id, SIZE_MAX));
    int64_t ch = 0;
    int rc = sl_db_run(st, &ch);
    if (rc == 0 && deleted) *deleted = ch > 0;
    return rc;
}

int cart_store_item_qty(sl_db *db, const char *user_id, const char *product_id, int64_t *qty)
{
    sl_db_stmt *st;
    SL_DB_PREP(db, "SELECT qty FROM cart_items WHERE user_id = ? AND product_id = ?", st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, user_id, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 2, product_id, SIZE_MAX));
    int rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        *qty = sl_db_column_int64(st, 0);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = SL_ENOTFOUND;
    }
    sl_db_stmt_done(st);
    return rc;
}

int cart_store_lines(sl_db *db, const char *user_id, cart_line *lines, size_t cap, size_t *n)
{
    sl_db_stmt *st;
    SL_DB_PREP(db,
               "SELECT c.product_id, c.qty, p.price, p.currency FROM cart_items c "
               "JOIN product_prices p ON p.product_id = c.product_id "
               "WHERE c.user_id = ? AND p.price IS NOT NULL ORDER BY c.product_id",
               st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, user_id, SIZE_MAX));
    int rc;
    *n = 0;
    while ((rc = sl_db_step(st)) == SL_DB_ROW) {
        if (*n >= cap) {
            rc = SL_ELIMIT;
            break;
        }
        cart_line *l = &lines[(*n)++];
        sl_db_column_copy(st, 0, l->product_id, sizeof l->product_id);
        l->qty = sl_db_column_int64(st, 1);
        l->amount = sl_db_column_int64(st, 2);
        sl_db_column_copy(st, 3, l->currency, sizeof l->currency);
    }
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}
