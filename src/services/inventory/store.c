/*
 * Inventory's SQL, through sl_db prepared statements only. Each function is
 * one small query; the transactions that combine them live in commands.c. The
 * conditional UPDATE in inv_store_try_reserve is what makes two concurrent
 * reservations of the last unit safe on both backends: SQLite serialises
 * writers at BEGIN IMMEDIATE, and PostgreSQL re-checks the WHERE clause on
 * the row after waiting for the other writer's lock (READ COMMITTED).
 */
#include "inventory.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

int inv_store_stock_get(sl_db *db, const char *product_id, inv_stock *out)
{
    sl_db_stmt *st;
    SL_DB_PREP(db, "SELECT stock, reserved FROM stock WHERE product_id = ?", st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, product_id, SIZE_MAX));
    int rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        snprintf(out->product_id, sizeof out->product_id, "%s", product_id);
        out->stock = sl_db_column_int64(st, 0);
        out->reserved = sl_db_column_int64(st, 1);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = SL_ENOTFOUND;
    }
    sl_db_stmt_done(st);
    return rc;
}

int inv_store_stock_create(sl_db *db, const char *product_id, int64_t initial, int64_t now_ms,
                           int *created)
{
    sl_db_stmt *st;
    SL_DB_PREP(db,
               "INSERT INTO stock (product_id, stock, reserved, received, updated_ms) "
               "VALUES (?, ?, 0, ?, ?) "
               "ON CONFLICT (product_id) DO NOTHING",
               st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, product_id, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_int64(st, 2, initial));
    SL_DB_BIND(st, sl_db_bind_int64(st, 3, initial));
    SL_DB_BIND(st, sl_db_bind_int64(st, 4, now_ms));
    int64_t ch = 0;
    int rc = sl_db_run(st, &ch);
    if (rc == 0) *created = ch == 1;
    return rc;
}

int inv_store_stock_add(sl_db *db, const char *product_id, int64_t qty, int64_t now_ms, int *ok)
{
    /* One atomic statement, so concurrent restocks never lose an update; the cap keeps
     * stock within INV_STOCK_MAX. */
    sl_db_stmt *st;
    SL_DB_PREP(db,
               "UPDATE stock SET stock = stock + ?, received = received + ?, updated_ms = ? "
               "WHERE product_id = ? AND stock <= ?",
               st);
    SL_DB_BIND(st, sl_db_bind_int64(st, 1, qty));
    SL_DB_BIND(st, sl_db_bind_int64(st, 2, qty));
    SL_DB_BIND(st, sl_db_bind_int64(st, 3, now_ms));
    SL_DB_BIND(st, sl_db_bind_text(st, 4, product_id, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_int64(st, 5, INV_STOCK_MAX - qty));
    int64_t ch = 0;
    int rc = sl_db_run(st, &ch);
    if (rc == 0) *ok = ch == 1;
    return rc;
}

int inv_store_try_reserve(sl_db *db, const char *product_id, int64_t qty, int64_t now_ms, int *ok)
{
    sl_db_stmt *st;
    SL_DB_PREP(db,
               "UPDATE stock SET reserved = reserved + ?, updated_ms = ? "
               "WHERE product_id = ? AND stock - reserved >= ?",
               st);
    SL_DB_BIND(st, sl_db_bind_int64(st, 1, qty));
    SL_DB_BIND(st, sl_db_bind_int64(st, 2, now_ms));
    SL_DB_BIND(st, sl_db_bind_text(st, 3, product_id, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_int64(st, 4, qty));
    int64_t ch = 0;
    int rc = sl_db_run(st, &ch);
    if (rc == 0) *ok = ch == 1;
    return rc;
}

int inv_store_unreserve(sl_db *db, const char *product_id, int64_t qty, int consume, int64_t now_ms)
{
    /* A commit consumes the units (stock and reserved both drop); a release only frees them.
     * The WHERE clause refuses to go negative (reserved <= stock holds by constraint); the
     * caller treats 0 rows as a broken invariant. */
    sl_db_stmt *st;
    int i = 1;
    if (consume) {
        SL_DB_PREP(db,
                   "UPDATE stock SET stock = stock - ?, committed = committed + ?, "
                   "reserved = reserved - ?, updated_ms = ? WHERE product_id = ? AND reserved >= ?",
                   st);
        SL_DB_BIND(st, sl_db_bind_int64(st, i++, qty));
        SL_DB_BIND(st, sl_db_bind_int64(st, i++, qty));
    } else {
        SL_DB_PREP(db,
                   "UPDATE stock SET reserved = reserved - ?, updated_ms = ? "
                   "WHERE product_id = ? AND reserved >= ?",
                   st);
    }
    SL_DB_BIND(st, sl_db_bind_int64(st, i++, qty));
    SL_DB_BIND(st, sl_db_bind_int64(st, i++, now_ms));
    SL_DB_BIND(st, sl_db_bind_text(st, i++, product_id, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_int64(st, i, qty));
    int64_t ch = 0;
    int rc = sl_db_run(st, &ch);
    return rc != 0 ? rc : ch == 1 ? 0 : SL_ESTATE;
}

int inv_store_res_get(sl_db *db, const char *order_id, inv_reservation *out)
{
    sl_db_stmt *st;
    SL_DB_PREP(db,
               "SELECT status, reason, created_ms, expires_ms FROM reservations WHERE order_id = ?",
               st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, order_id, SIZE_MAX));
    int rc = sl_db_step(st);
    if (rc != SL_DB_ROW) {
        sl_db_stmt_done(st);
        return rc == SL_DB_DONE ? SL_ENOTFOUND : rc;
    }
    memset(out, 0, offsetof(inv_reservation, items));
    snprintf(out->order_id, sizeof out->order_id, "%s", order_id);
    char status[16];
    sl_db_column_copy(st, 0, status, sizeof status);
    sl_db_column_copy(st, 1, out->reason, sizeof out->reason);
    out->created_ms = sl_db_column_int64(st, 2);
    out->expires_ms = sl_db_column_int64(st, 3);
    sl_db_stmt_done(st);
    if (inv_status_parse(status, &out->status) != 0) return SL_EIO; /* database content */

    SL_DB_PREP(
        db, "SELECT product_id, qty FROM reservation_items WHERE order_id = ? ORDER BY product_id",
        st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, order_id, SIZE_MAX));
    while ((rc = sl_db_step(st)) == SL_DB_ROW) {
        if (out->n >= INV_ITEMS_MAX) {
            rc = SL_ELIMIT;
            break;
        }
        inv_item *it = &out->items[out->n];
        sl_db_column_copy(st, 0, it->product_id, sizeof it->product_id);
        it->qty = sl_db_column_int64(st, 1);
        it->index = out->n++;
    }
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

int inv_store_res_insert(sl_db *db, const inv_reservation *r, int64_t now_ms)
{
    sl_db_stmt *st;
    SL_DB_PREP(db,
               "INSERT INTO reservations (order_id, status, reason, created_ms, expires_ms, "
               "updated_ms) VALUES (?, ?, ?, ?, ?, ?)",
               st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, r->order_id, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 2, inv_status_name(r->status), SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 3, r->reason, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_int64(st, 4, r->created_ms));
    SL_DB_BIND(st, sl_db_bind_int64(st, 5, r->expires_ms));
    SL_DB_BIND(st, sl_db_bind_int64(st, 6, now_ms));
    int rc = sl_db_run(st, NULL);
    for (size_t i = 0; rc == 0 && i < r->n; i++) {
        SL_DB_PREP(db, "INSERT INTO reservation_items (order_id, product_id, qty) VALUES (?, ?, ?)",
                   st);
        SL_DB_BIND(st, sl_db_bind_text(st, 1, r->order_id, SIZE_MAX));
        SL_DB_BIND(st, sl_db_bind_text(st, 2, r->items[i].product_id, SIZE_MAX));
        SL_DB_BIND(st, sl_db_bind_int64(st, 3, r->items[i].qty));
        rc = sl_db_run(st, NULL);
    }
    return rc;
}

int inv_store_res_set_status(sl_db *db, const char *order_id, inv_status from, inv_status to,
                             const char *reason, int64_t now_ms, int *changed)
{
    sl_db_stmt *st;
    SL_DB_PREP(db,
               "UPDATE reservations SET status = ?, reason = ?, updated_ms = ? "
               "WHERE order_id = ? AND status = ?",
               st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, inv_status_name(to), SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 2, reason ? reason : "", SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_int64(st, 3, now_ms));
    SL_DB_BIND(st, sl_db_bind_text(st, 4, order_id, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 5, inv_status_name(from), SIZE_MAX));
    int64_t ch = 0;
    int rc = sl_db_run(st, &ch);
    if (rc == 0) *changed = ch == 1;
    return rc;
}

int inv_store_due(sl_db *db, int64_t now_ms, char (*ids)[INV_ID_MAX + 1], size_t cap, size_t *n)
{
    sl_db_stmt *st;
    SL_DB_PREP(db,
               "SELECT order_id FROM reservations WHERE status = 'reserved' AND expires_ms <= ? "
               "ORDER BY expires_ms, order_id LIMIT ?",
               st);
    SL_DB_BIND(st, sl_db_bind_int64(st, 1, now_ms));
    SL_DB_BIND(st, sl_db_bind_int64(st, 2, (int64_t)cap));
    int rc;
    *n = 0;
    while ((rc = sl_db_step(st)) == SL_DB_ROW && *n < cap)
        sl_db_column_copy(st, 0, ids[(*n)++], INV_ID_MAX + 1);
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

int inv_store_anomaly_add(sl_db *db, const char *order_id, const char *kind, const char *event_id,
                          int64_t now_ms)
{
    sl_db_stmt *st;
    SL_DB_PREP(db,
               "INSERT INTO commit_anomalies (event_id, order_id, kind, at_ms) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (event_id) DO NOTHING",
               st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, event_id, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 2, order_id, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 3, kind, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_int64(st, 4, now_ms));
    return sl_db_run(st, NULL);
}

/* Appends one finding per row of `sql` (columns: subject, detail) under `check`. */
static int audit_rows(sl_db *db, const char *sql, const char *check, inv_violation *out, size_t cap,
                      size_t *n, size_t *dropped)
{
    sl_db_stmt *st;
    SL_DB_PREP(db, sql, st);
    int rc;
    while ((rc = sl_db_step(st)) == SL_DB_ROW) {
        if (*n >= cap) {
            (*dropped)++;
            continue;
        }
        inv_violation *v = &out[(*n)++];
        snprintf(v->check, sizeof v->check, "%s", check);
        sl_db_column_copy(st, 0, v->subject, sizeof v->subject);
        sl_db_column_copy(st, 1, v->detail, sizeof v->detail);
    }
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

int inv_store_audit(sl_db *db, inv_violation *out, size_t cap, size_t *n, size_t *dropped)
{
    *n = 0;
    *dropped = 0;
    sl_db_stmt *st;
    /* Stock rows against the sum of their active reservations (domain: inv_audit_stock_row). */
    SL_DB_PREP(db,
               "SELECT s.product_id, s.stock, s.reserved, "
               "CAST(COALESCE((SELECT SUM(i.qty) FROM reservation_items i JOIN reservations r "
               "ON r.order_id = i.order_id WHERE i.product_id = s.product_id "
               "AND r.status = 'reserved'), 0) AS BIGINT) "
               "FROM stock s ORDER BY s.product_id",
               st);
    int rc;
    while ((rc = sl_db_step(st)) == SL_DB_ROW) {
        char pid[INV_ID_MAX + 1];
        sl_db_column_copy(st, 0, pid, sizeof pid);
        inv_audit_stock_row(pid, sl_db_column_int64(st, 1), sl_db_column_int64(st, 2),
                            sl_db_column_int64(st, 3), out, cap, n, dropped);
    }
    sl_db_stmt_done(st);
    if (rc < 0) return rc;
    /* Every reservation item belongs to exactly one existing reservation (order). */
    rc = audit_rows(db,
                    "SELECT i.order_id, 'item ' || i.product_id || ' has no reservation' "
                    "FROM reservation_items i LEFT JOIN reservations r ON r.order_id = i.order_id "
                    "WHERE r.order_id IS NULL ORDER BY i.order_id",
                    "orphan_item", out, cap, n, dropped);
    /* A live or committed reservation holds items (only release tombstones are empty). */
    if (rc == 0)
        rc = audit_rows(db,
                        "SELECT r.order_id, 'status ' || r.status || ' without items' "
                        "FROM reservations r WHERE r.status <> 'released' AND NOT EXISTS "
                        "(SELECT 1 FROM reservation_items i WHERE i.order_id = r.order_id) "
                        "ORDER BY r.order_id",
                        "empty_reservation", out, cap, n, dropped);
    /* Items of active reservations name products that have stock rows. */
    if (rc == 0)
        rc = audit_rows(db,
                        "SELECT i.order_id, 'item names unknown product ' || i.product_id "
                        "FROM reservation_items i JOIN reservations r ON r.order_id = i.order_id "
                        "LEFT JOIN stock s ON s.product_id = i.product_id "
                        "WHERE r.status = 'reserved' AND s.product_id IS NULL ORDER BY i.order_id",
                        "unknown_product", out, cap, n, dropped);
    return rc;
}
