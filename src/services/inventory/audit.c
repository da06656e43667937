/*
 * The inventory's joinable audit checks (audit.h; include/shoal/audit.h for
 * their shape). Reads only.
 */
#include "audit.h"

#include <shoal/audit.h>
#include <shoal/outbox.h>

#include <stdio.h>


static int count_of(sl_db *db, const char *sql, int64_t arg, int64_t *out)
{
    sl_db_stmt *st;
    *out = 0;
    SL_DB_PREP(db, sql, st);
    if (arg != INT64_MIN) SL_DB_BIND(st, sl_db_bind_int64(st, 1, arg));
    int rc = sl_db_step(st);
    if (rc == SL_DB_ROW) *out = sl_db_column_int64(st, 0);
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}


int inv_audit_checks(sl_db *db, const inv_violation *v, size_t n, size_t dropped, int64_t now_ms,
                     int64_t grace_ms, json_t **checks)
{
    SL_ASSERT(db && checks && (v || n == 0));
    *checks = NULL;
    int64_t overdue = 0, active = 0, backlog = 0, oldest = 0, off_ledger = 0;
    int rc =
        count_of(db, "SELECT count(*) FROM stock WHERE stock <> received - committed OR stock < 0",
                 INT64_MIN, &off_ledger);
    if (rc == 0)
        rc = count_of(db,
                      "SELECT count(*) FROM reservations WHERE status = 'reserved' AND "
                      "expires_ms < ?",
                      now_ms - grace_ms, &overdue);
    if (rc == 0)
        rc = count_of(db, "SELECT count(*) FROM reservations WHERE status = 'reserved'", INT64_MIN,
                      &active);
    if (rc == 0) rc = sl_outbox_backlog(db, now_ms, &backlog, &oldest);
    if (rc != 0) return rc;
    json_t *arr = json_array();
    if (!arr) return SL_ENOMEM;
    if (n > 0)
        rc = sl_audit_append(arr, sl_audit_check_new("stock", false,
                                                     json_integer((json_int_t)(n + dropped)),
                                                     "%s %s: %s (%zu findings)", v[0].check,
                                                     v[0].subject, v[0].detail, n + dropped));
    else
        rc = sl_audit_append(arr,
                             sl_audit_check_new("stock", true, json_integer(0),
                                                "every product: stock >= reserved >= 0, reserved = "
                                                "its active reservations"));
    if (rc == 0)
        rc = sl_audit_append(
            arr, sl_audit_check_new("stock_ledger", off_ledger == 0, json_integer(off_ledger),
                                    "%lld products where stock is not received (initial "
                                    "stock and restocks) - committed, or is negative",
                                    (long long)off_ledger));
    if (rc == 0)
        rc = sl_audit_append(
            arr, sl_audit_check_new("reservations_overdue", overdue == 0, json_integer(overdue),
                                    "%lld active reservations more than %lld ms past "
                                    "their expiry",
                                    (long long)overdue, (long long)grace_ms));
    if (rc == 0)
        rc = sl_audit_append(arr,
                             sl_audit_check_new("in_flight", true, json_integer(active + backlog),
                                                "%lld active reservations, %lld events unpublished",
                                                (long long)active, (long long)backlog));
    if (rc == 0) rc = sl_audit_append(arr, sl_audit_outbox_check(backlog, oldest));
    if (rc != 0) {
        json_decref(arr);
        return rc;
    }
    *checks = arr;
    return 0;
}
