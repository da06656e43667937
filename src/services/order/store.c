/*
 * shoal-order's SQL, through sl_db prepared statements: orders and their
 * items, and the order_history read model (the product price replica's SQL
 * is the product contract's). Transactions are opened by the callers
 * (order.c handlers, saga.c local steps, events.c appliers).
 */
#include "order.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- orders --------------------------------------------------------------------------------- */

int order_store_insert(sl_db *tx, const order_row *o)
{
    sl_db_stmt *st;
    SL_DB_PREP(tx,
               "INSERT INTO orders (order_id, user_id, status, total_amount, currency, ship_name, "
               "ship_line1, ship_city, ship_postal_code, ship_country, created_ms, updated_ms) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, o->order_id, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 2, o->user_id, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 3, order_status_name(o->status), SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_int64(st, 4, o->total));
    SL_DB_BIND(st, sl_db_bind_text(st, 5, o->currency, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 6, o->addr.name, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 7, o->addr.line1, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 8, o->addr.city, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 9, o->addr.postal_code, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 10, o->addr.country, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_int64(st, 11, o->created_ms));
    SL_DB_BIND(st, sl_db_bind_int64(st, 12, o->updated_ms));
    int rc = sl_db_run(st, NULL);
    for (size_t i = 0; rc == 0 && i < o->n; i++) {
        const order_item *it = &o->items[i];
        SL_DB_PREP(
            tx,
            "INSERT INTO order_items (order_id, line, product_id, qty, unit_price, currency) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            st);
        SL_DB_BIND(st, sl_db_bind_text(st, 1, o->order_id, SIZE_MAX));
        SL_DB_BIND(st, sl_db_bind_int64(st, 2, (int64_t)i));
        SL_DB_BIND(st, sl_db_bind_text(st, 3, it->product_id, SIZE_MAX));
        SL_DB_BIND(st, sl_db_bind_int64(st, 4, it->qty));
        SL_DB_BIND(st, sl_db_bind_int64(st, 5, it->unit_price));
        SL_DB_BIND(st, sl_db_bind_text(st, 6, it->currency, SIZE_MAX));
        rc = sl_db_run(st, NULL);
    }
    return rc;
}

static int load_items(sl_db *db, order_row *o)
{
    sl_db_stmt *st;
    SL_DB_PREP(db,
               "SELECT product_id, qty, unit_price, currency FROM order_items WHERE order_id = ? "
               "ORDER BY line",
               st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, o->order_id, SIZE_MAX));
    int rc;
    o->n = 0;
    while ((rc = sl_db_step(st)) == SL_DB_ROW) {
        if (o->n >= ORDER_ITEMS_MAX) {
            rc = SL_ELIMIT; /* database contents are outside input: never assert */
            break;
        }
        order_item *it = &o->items[o->n++];
        sl_db_column_copy(st, 0, it->product_id, sizeof it->product_id);
        it->qty = sl_db_column_int64(st, 1);
        it->unit_price = sl_db_column_int64(st, 2);
        sl_db_column_copy(st, 3, it->currency, sizeof it->currency);
    }
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

int order_store_get(sl_db *db, const char *order_id, order_row *out)
{
    sl_db_stmt *st;
    SL_DB_PREP(db,
               "SELECT user_id, status, total_amount, currency, ship_name, ship_line1, ship_city, "
               "ship_postal_code, ship_country, cancel_reason, created_ms, updated_ms "
               "FROM orders WHERE order_id = ?",
               st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, order_id, SIZE_MAX));
    int rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        char id[ORDER_ID_MAX + 1]; /* order_id may point into *out */
        snprintf(id, sizeof id, "%s", order_id);
        memset(out, 0, sizeof *out);
        memcpy(out->order_id, id, sizeof id);
        sl_db_column_copy(st, 0, out->user_id, sizeof out->user_id);
        size_t len = 0;
        const char *s = sl_db_column_text(st, 1, &len);
        if (order_status_parse(s, len, &out->status) != 0) rc = SL_EPARSE;
        out->total = sl_db_column_int64(st, 2);
        sl_db_column_copy(st, 3, out->currency, sizeof out->currency);
        sl_db_column_copy(st, 4, out->addr.name, sizeof out->addr.name);
        sl_db_column_copy(st, 5, out->addr.line1, sizeof out->addr.line1);
        sl_db_column_copy(st, 6, out->addr.city, sizeof out->addr.city);
        sl_db_column_copy(st, 7, out->addr.postal_code, sizeof out->addr.postal_code);
        sl_db_column_copy(st, 8, out->addr.country, sizeof out->addr.country);
        sl_db_column_copy(st, 9, out->cancel_reason, sizeof out->cancel_reason);
        out->created_ms = sl_db_column_int64(st, 10);
        out->updated_ms = sl_db_column_int64(st, 11);
        if (rc == SL_DB_ROW) rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = SL_ENOTFOUND;
    }
    sl_db_stmt_done(st);
    if (rc == 0) rc = load_items(db, out);
    return rc;
}

int order_store_set_status(sl_db *tx, const char *order_id, order_status from, order_status to,
                           const char *reason, const char *note, int64_t now_ms, int *changed)
{
    sl_db_stmt *st;
    SL_DB_PREP(tx,
               "UPDATE orders SET status = ?, cancel_reason = COALESCE(?, cancel_reason), "
               "cancel_note = COALESCE(?, cancel_note), updated_ms = ? "
               "WHERE order_id = ? AND status = ?",
               st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, order_status_name(to), SIZE_MAX));
    SL_DB_BIND(st, reason ? sl_db_bind_text(st, 2, reason, SIZE_MAX) : sl_db_bind_null(st, 2));
    SL_DB_BIND(st, note ? sl_db_bind_text(st, 3, note, SIZE_MAX) : sl_db_bind_null(st, 3));
    SL_DB_BIND(st, sl_db_bind_int64(st, 4, now_ms));
    SL_DB_BIND(st, sl_db_bind_text(st, 5, order_id, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 6, order_status_name(from), SIZE_MAX));
    int64_t ch = 0;
    int rc = sl_db_run(st, &ch);
    if (rc == 0) *changed = ch > 0;
    return rc;
}

/* ---- read model ----------------------------------------------------------------------------- */

static int hist_insert(sl_db *tx, const char *order_id, const char *user_id, order_status s,
                       const char *items_json, int has_total, int64_t total, const char *currency,
                       const char *reason, int64_t at_ms)
{
    sl_db_stmt *st;
    SL_DB_PREP(tx,
               "INSERT INTO order_history (order_id, user_id, status, status_rank, items, "
               "total_amount, currency, cancel_reason, created_ms, updated_ms) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, order_id, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 2, user_id, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 3, order_status_name(s), SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_int64(st, 4, order_status_rank(s)));
    SL_DB_BIND(st,
               items_json ? sl_db_bind_text(st, 5, items_json, SIZE_MAX) : sl_db_bind_null(st, 5));
    SL_DB_BIND(st, has_total ? sl_db_bind_int64(st, 6, total) : sl_db_bind_null(st, 6));
    SL_DB_BIND(st, has_total ? sl_db_bind_text(st, 7, currency, SIZE_MAX) : sl_db_bind_null(st, 7));
    SL_DB_BIND(st, reason ? sl_db_bind_text(st, 8, reason, SIZE_MAX) : sl_db_bind_null(st, 8));
    SL_DB_BIND(st, sl_db_bind_int64(st, 9, at_ms));
    SL_DB_BIND(st, sl_db_bind_int64(st, 10, at_ms));
    return sl_db_run(st, NULL);
}

int order_store_hist_put(sl_db *tx, const char *order_id, const char *user_id, order_status s,
                         const char *items_json, int has_total, int64_t total, const char *currency,
                         const char *reason, int64_t at_ms)
{
    sl_db_stmt *st;
    SL_DB_PREP(tx, "SELECT status_rank FROM order_history WHERE order_id = ?", st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, order_id, SIZE_MAX));
    int rc = sl_db_step(st);
    int64_t rank = rc == SL_DB_ROW ? sl_db_column_int64(st, 0) : -1;
    sl_db_stmt_done(st);
    if (rc < 0) return rc;
    if (rc == SL_DB_DONE)
        return hist_insert(tx, order_id, user_id, s, items_json, has_total, total, currency, reason,
                           at_ms);
    if (items_json) {
        /* Events of one order carry the same items; fill them in when a later event created
         * the row first (events from the bus may arrive in any order across topics). */
        SL_DB_PREP(tx,
                   "UPDATE order_history SET items = ?, total_amount = ?, currency = ? "
                   "WHERE order_id = ? AND items IS NULL",
                   st);
        SL_DB_BIND(st, sl_db_bind_text(st, 1, items_json, SIZE_MAX));
        SL_DB_BIND(st, has_total ? sl_db_bind_int64(st, 2, total) : sl_db_bind_null(st, 2));
        SL_DB_BIND(st,
                   has_total ? sl_db_bind_text(st, 3, currency, SIZE_MAX) : sl_db_bind_null(st, 3));
        SL_DB_BIND(st, sl_db_bind_text(st, 4, order_id, SIZE_MAX));
        if ((rc = sl_db_run(st, NULL)) != 0) return rc;
    }
    if (order_status_rank(s) <= rank) return 0;
    SL_DB_PREP(tx,
               "UPDATE order_history SET status = ?, status_rank = ?, "
               "cancel_reason = COALESCE(?, cancel_reason), updated_ms = ? WHERE order_id = ?",
               st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, order_status_name(s), SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_int64(st, 2, order_status_rank(s)));
    SL_DB_BIND(st, reason ? sl_db_bind_text(st, 3, reason, SIZE_MAX) : sl_db_bind_null(st, 3));
    SL_DB_BIND(st, sl_db_bind_int64(st, 4, at_ms));
    SL_DB_BIND(st, sl_db_bind_text(st, 5, order_id, SIZE_MAX));
    return sl_db_run(st, NULL);
}

static int hist_count(sl_db *db, const char *user_id, const char *status, int64_t *total)
{
    sl_db_stmt *st;
    if (status) {
        SL_DB_PREP(db, "SELECT COUNT(*) FROM order_history WHERE user_id = ? AND status = ?", st);
        SL_DB_BIND(st, sl_db_bind_text(st, 2, status, SIZE_MAX));
    } else {
        SL_DB_PREP(db, "SELECT COUNT(*) FROM order_history WHERE user_id = ?", st);
    }
    SL_DB_BIND(st, sl_db_bind_text(st, 1, user_id, SIZE_MAX));
    int rc = sl_db_step(st);
    if (rc == SL_DB_ROW) *total = sl_db_column_int64(st, 0);
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

int order_store_hist_list(sl_db *db, const char *user_id, const char *status, int64_t page,
                          int64_t per_page, const order_hist_after *after, order_hist_row *rows,
                          size_t *n, int64_t *total)
{
    *n = 0;
    *total = 0;
    int rc = hist_count(db, user_id, status, total);
    if (rc != 0) return rc;
    sl_db_stmt *st;
    char q[512];
    snprintf(q, sizeof q,
             "SELECT order_id, user_id, status, items, total_amount, currency, cancel_reason, "
             "created_ms, updated_ms FROM order_history WHERE user_id = ?%s%s "
             "ORDER BY created_ms DESC, order_id DESC LIMIT ? OFFSET ?",
             status ? " AND status = ?" : "",
             after ? " AND (created_ms < ? OR (created_ms = ? AND order_id < ?))" : "");
    SL_DB_PREP(db, q, st);
    int i = 2;
    if (status) SL_DB_BIND(st, sl_db_bind_text(st, i++, status, SIZE_MAX));
    if (after) {
        SL_DB_BIND(st, sl_db_bind_int64(st, i++, after->created_ms));
        SL_DB_BIND(st, sl_db_bind_int64(st, i++, after->created_ms));
        SL_DB_BIND(st, sl_db_bind_text(st, i++, after->order_id, SIZE_MAX));
    }
    SL_DB_BIND(st, sl_db_bind_int64(st, i++, per_page));
    SL_DB_BIND(st, sl_db_bind_int64(st, i, after ? 0 : (page - 1) * per_page));
    SL_DB_BIND(st, sl_db_bind_text(st, 1, user_id, SIZE_MAX));
    while ((rc = sl_db_step(st)) == SL_DB_ROW && *n < (size_t)per_page) {
        order_hist_row *r = &rows[*n];
        memset(r, 0, sizeof *r);
        sl_db_column_copy(st, 0, r->order_id, sizeof r->order_id);
        sl_db_column_copy(st, 1, r->user_id, sizeof r->user_id);
        sl_db_column_copy(st, 2, r->status, sizeof r->status);
        size_t len = 0;
        const char *items = sl_db_column_text(st, 3, &len);
        r->items_json = sl_db_column_is_null(st, 3) ? NULL : strndup(items, len);
        r->total = sl_db_column_int64(st, 4);
        sl_db_column_copy(st, 5, r->currency, sizeof r->currency);
        sl_db_column_copy(st, 6, r->cancel_reason, sizeof r->cancel_reason);
        r->created_ms = sl_db_column_int64(st, 7);
        r->updated_ms = sl_db_column_int64(st, 8);
        (*n)++;
    }
    sl_db_stmt_done(st);
    if (rc < 0) {
        order_hist_rows_free(rows, *n);
        *n = 0;
        return rc;
    }
    return 0;
}

void order_hist_rows_free(order_hist_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].items_json);
        rows[i].items_json = NULL;
    }
}
