/*
 * GET /admin/audit of the order service: its own invariants and a digest the
 * payment service's can be compared with (include/shoal/audit.h).
 *
 *   charge_digest   over the orders that must have been charged (confirmed,
 *                   shipped, delivered): count, total amount and the set
 *                   digest of (order id, total); the payment service reports
 *                   the same over its net charges, and the gateway compares
 *                   the two (config/gateway.yaml, audit.cross)
 *   sagas_overdue   sagas still running or compensating longer than the
 *                   checkout deadline (order.saga.deadline_ms, plus one step
 *                   timeout and one backoff cap)
 *   sagas_stuck     sagas waiting for an operator
 *   pending_overdue orders still pending past the deadline
 *   in_flight       running sagas plus unpublished events: 0 when the order
 *                   service is quiet (`shoal audit --settle` waits for it)
 *   outbox_backlog  unpublished events and the age of the oldest
 *
 * Reads only; one snapshot per statement (the caller judges only a quiet
 * shop, see docs/operations.md "Audit").
 */
#include "audit.h"

#include "order.h"

#include <shoal/audit.h>
#include <shoal/clock.h>
#include <shoal/outbox.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int charge_digest(sl_db *db, sl_audit_digest *d)
{
    sl_db_stmt *st;
    SL_DB_PREP(db,
               "SELECT order_id, total_amount FROM orders "
               "WHERE status IN ('confirmed', 'shipped', 'delivered')",
               st);
    int rc;
    while ((rc = sl_db_step(st)) == SL_DB_ROW) {
        size_t len = 0;
        const char *id = sl_db_column_text(st, 0, &len);
        sl_audit_digest_add(d, id ? id : "", id ? len : 0, sl_db_column_int64(st, 1));
    }
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* One integer from `sql` with an optional text then an optional integer parameter (NULL,
 * INT64_MIN: none). */
static int count_of(sl_db *db, const char *sql, const char *text, int64_t num, int64_t *out)
{
    sl_db_stmt *st;
    *out = 0;
    SL_DB_PREP(db, sql, st);
    int idx = 1;
    if (text) SL_DB_BIND(st, sl_db_bind_text(st, idx++, text, SIZE_MAX));
    if (num != INT64_MIN) SL_DB_BIND(st, sl_db_bind_int64(st, idx, num));
    int rc = sl_db_step(st);
    if (rc == SL_DB_ROW) *out = sl_db_column_int64(st, 0);
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}


int order_audit_checks(sl_db *db, int64_t now_ms, int64_t deadline_ms, json_t **checks)
{
    SL_ASSERT(db && checks && deadline_ms > 0);
    *checks = NULL;
    sl_audit_digest d = {0};
    int64_t overdue = 0, stuck = 0, running = 0, pending = 0, backlog = 0, oldest = 0;
    int64_t cutoff = now_ms - deadline_ms;
    int rc = charge_digest(db, &d);
    if (rc == 0)
        rc = count_of(db,
                      "SELECT count(*) FROM saga_instances WHERE status IN ('running', "
                      "'compensating') AND created_ms < ?",
                      NULL, cutoff, &overdue);
    if (rc == 0)
        rc = count_of(db, "SELECT count(*) FROM saga_instances WHERE status = ?", "stuck",
                      INT64_MIN, &stuck);
    if (rc == 0)
        rc = count_of(db,
                      "SELECT count(*) FROM saga_instances WHERE status IN ('running', "
                      "'compensating')",
                      NULL, INT64_MIN, &running);
    if (rc == 0)
        rc = count_of(db, "SELECT count(*) FROM orders WHERE status = ? AND created_ms < ?",
                      "pending", cutoff, &pending);
    if (rc == 0) rc = sl_outbox_backlog(db, now_ms, &backlog, &oldest);
    if (rc != 0) return rc;
    json_t *arr = json_array();
    if (!arr) return SL_ENOMEM;
    rc = sl_audit_append(arr, sl_audit_check_new("charge_digest", true, sl_audit_digest_json(&d),
                                                 "%lld orders must have been charged, %lld in all",
                                                 (long long)d.count, (long long)d.amount));
    if (rc == 0)
        rc = sl_audit_append(arr, sl_audit_check_new("sagas_overdue", overdue == 0,
                                                     json_integer(overdue),
                                                     "%lld sagas unfinished after %lld ms",
                                                     (long long)overdue, (long long)deadline_ms));
    if (rc == 0)
        rc = sl_audit_append(arr, sl_audit_check_new("sagas_stuck", stuck == 0, json_integer(stuck),
                                                     "%lld sagas wait for an operator",
                                                     (long long)stuck));
    if (rc == 0)
        rc = sl_audit_append(arr, sl_audit_check_new("pending_overdue", pending == 0,
                                                     json_integer(pending),
                                                     "%lld orders pending for more than %lld ms",
                                                     (long long)pending, (long long)deadline_ms));
    if (rc == 0)
        rc = sl_audit_append(arr,
                             sl_audit_check_new("in_flight", true, json_integer(running + backlog),
                                                "%lld sagas running, %lld events unpublished",
                                                (long long)running, (long long)backlog));
    if (rc == 0) rc = sl_audit_append(arr, sl_audit_outbox_check(backlog, oldest));
    if (rc != 0) {
        json_decref(arr);
        return rc;
    }
    *checks = arr;
    return 0;
}

void order_h_audit(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 1, &id) != 0) return;
    const order_config *cfg = order_config_of(w);
    /* A checkout must pass its pivot by order.saga.deadline_ms or compensate; give it one more
     * step timeout and backoff cap to get there (without a deadline, two minutes). */
    int64_t deadline = cfg->saga.deadline_ms > 0 ? cfg->saga.deadline_ms : 120000;
    deadline += cfg->saga.step_timeout_ms + cfg->saga.backoff_cap_ms;
    json_t *checks = NULL;
    int rc = order_audit_checks(sl_svc_worker_db(w), sl_clock_wall_ms(sl_clock_system()), deadline,
                                &checks);
    if (rc != 0) {
        sl_respond_db_error(req, rc, NULL);
        return;
    }
    int ok = 1;
    size_t i;
    json_t *c;
    json_array_foreach(checks, i, c) ok &= json_is_true(json_object_get(c, "ok"));
    sl_respond_owned(req, 200, json_pack("{s:b,s:o}", "ok", ok, "checks", checks));
}
