/*
 * The price replica (product_replica.h): its applier and its SQL over the
 * table product_prices (contract/migrations/).
 */
#include "product_replica.h"

#include <shoal/bus.h>
#include <shoal/clock.h>

#include <string.h>

int product_replica_get(sl_db *db, const char *product_id, product_replica_row *out)
{
    SL_ASSERT(db != NULL && product_id != NULL && out != NULL);
    sl_db_stmt *st;
    SL_DB_PREP(db,
               "SELECT price, currency, price_ms, name_ms, name FROM product_prices "
               "WHERE product_id = ?",
               st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, product_id, SIZE_MAX));
    int rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        out->has_price = !sl_db_column_is_null(st, 0);
        out->amount = sl_db_column_int64(st, 0);
        sl_db_column_copy(st, 1, out->currency, sizeof out->currency);
        out->price_ms = sl_db_column_int64(st, 2);
        out->name_ms = sl_db_column_int64(st, 3);
        sl_db_column_copy(st, 4, out->name, sizeof out->name);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = SL_ENOTFOUND;
    }
    sl_db_stmt_done(st);
    return rc;
}

/* Writes the row of `product_id` (created first unless `exists`): `name` NULL keeps the name,
 * a `price` without has_price keeps the price. */
static int put(sl_db *tx, const char *product_id, int exists, const char *name, int64_t name_ms,
               const product_event_view *price, int64_t price_ms)
{
    sl_db_stmt *st;
    int rc = 0;
    if (!exists) {
        SL_DB_PREP(tx, "INSERT INTO product_prices (product_id) VALUES (?)", st);
        SL_DB_BIND(st, sl_db_bind_text(st, 1, product_id, SIZE_MAX));
        if ((rc = sl_db_run(st, NULL)) != 0) return rc;
    }
    if (name) {
        SL_DB_PREP(tx, "UPDATE product_prices SET name = ?, name_ms = ? WHERE product_id = ?", st);
        SL_DB_BIND(st, sl_db_bind_text(st, 1, name, SIZE_MAX));
        SL_DB_BIND(st, sl_db_bind_int64(st, 2, name_ms));
        SL_DB_BIND(st, sl_db_bind_text(st, 3, product_id, SIZE_MAX));
        if ((rc = sl_db_run(st, NULL)) != 0) return rc;
    }
    if (price->has_price) {
        SL_DB_PREP(tx,
                   "UPDATE product_prices SET price = ?, currency = ?, price_ms = ? "
                   "WHERE product_id = ?",
                   st);
        SL_DB_BIND(st, sl_db_bind_int64(st, 1, price->price_amount));
        SL_DB_BIND(st, sl_db_bind_text(st, 2, price->currency, SIZE_MAX));
        SL_DB_BIND(st, sl_db_bind_int64(st, 3, price_ms));
        SL_DB_BIND(st, sl_db_bind_text(st, 4, product_id, SIZE_MAX));
        rc = sl_db_run(st, NULL);
    }
    return rc;
}

/* The event's time in ms, or -1 when absent or unreadable. */
static int64_t event_ms(const sl_bus_msg *msg)
{
    int64_t ns;
    if (msg->time && sl_rfc3339_parse(msg->time, strlen(msg->time), &ns) == 0) return ns / 1000000;
    return -1;
}

int product_replica_newer(int64_t stored_ms, int64_t event_ms)
{
    return event_ms < 0 || event_ms >= stored_ms;
}

int product_replica_apply(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason,
                          size_t reason_cap)
{
    (void)svc;
    SL_ASSERT(tx != NULL && msg != NULL);
    product_event_view ev;
    int rc = product_event_decode(msg->type ? msg->type : msg->topic, msg->data,
                                  PRODUCT_READ_REPLICA, &ev, reason, reason_cap);
    if (rc != 0) return rc;
    product_replica_row row;
    memset(&row, 0, sizeof row);
    rc = product_replica_get(tx, ev.product_id, &row);
    if (rc != 0 && rc != SL_ENOTFOUND) return rc;
    int exists = rc == 0;
    int64_t t = event_ms(msg);
    const char *name =
        ev.name && (!exists || product_replica_newer(row.name_ms, t)) ? ev.name : NULL;
    if (exists && !product_replica_newer(row.price_ms, t)) ev.has_price = 0;
    return put(tx, ev.product_id, exists, name, t < 0 ? row.name_ms : t, &ev,
               t < 0 ? row.price_ms : t);
}
