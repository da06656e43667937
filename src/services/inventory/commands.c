/*
 * Inventory's commands: each one is a database transaction that changes
 * reservations and stock (store.c) under the rules of domain.c and writes
 * its events into the outbox in the same transaction (the transactional
 * outbox, include/shoal/outbox.h). HTTP handlers (inventory.c), the expiry
 * sweep and the event appliers (events.c) all go through here, so every
 * path emits the same events.
 *
 * Transactions that fail with SL_EBUSY (SQLite busy, PostgreSQL
 * serialization failure or deadlock) or SL_ECONFLICT (two first
 * reservations of one order racing on its primary key) are retried a few
 * times from the start; the retry reads what the other writer committed.
 */
#include "inventory.h"

#include <shoal/bus.h>
#include <shoal/clock.h>
#include <shoal/log.h>
#include <shoal/outbox.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TX_TRIES 8

static int retryable(int rc)
{
    return rc == SL_EBUSY || rc == SL_ECONFLICT;
}

/* ---- JSON views ----------------------------------------------------------------------------- */

static json_t *items_json(const inv_item *items, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        json_t *o = json_pack("{s:s, s:I}", "product_id", items[i].product_id, "qty",
                              (json_int_t)items[i].qty);
        if (!o || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

json_t *inv_reservation_json(const inv_reservation *r)
{
    char exp[SL_RFC3339_MAX], created[SL_RFC3339_MAX];
    if (sl_rfc3339_format(r->expires_ms * 1000000, exp, sizeof exp) < 0) exp[0] = '\0';
    if (sl_rfc3339_format(r->created_ms * 1000000, created, sizeof created) < 0) created[0] = '\0';
    json_t *items = items_json(r->items, r->n);
    if (!items) return NULL;
    return json_pack("{s:s, s:s, s:o, s:s, s:s, s:s?}", "order_id", r->order_id, "status",
                     inv_status_name(r->status), "items", items, "created_at", created,
                     "expires_at", exp, "reason", r->reason[0] ? r->reason : NULL);
}

json_t *inv_stock_json(const inv_stock *s)
{
    return json_pack("{s:s, s:I, s:I, s:I}", "product_id", s->product_id, "stock",
                     (json_int_t)s->stock, "reserved", (json_int_t)s->reserved, "available",
                     (json_int_t)(s->stock - s->reserved));
}

/* ---- events --------------------------------------------------------------------------------- */

int inv_emit(sl_db *tx, const char *type, const char *subject, char *json, const char *traceparent,
             int64_t now_ms)
{
    SL_ASSERT(tx && type && subject);
    if (!json) return SL_ENOMEM;
    sl_outbox_event ev = {.source = INV_SOURCE,
                          .type = type,
                          .subject = subject,
                          .data_json = json,
                          .traceparent = traceparent};
    int rc = sl_outbox_add(tx, &ev, now_ms * 1000000, NULL);
    free(json);
    return rc;
}

/* stock_changed for every item's product, with its counters after the change. */
static int emit_stock_changes(sl_db *tx, const inv_item *items, size_t n, const char *tp,
                              int64_t now_ms)
{
    for (size_t i = 0; i < n; i++) {
        inv_stock s;
        int rc = inv_store_stock_get(tx, items[i].product_id, &s);
        if (rc == 0)
            rc = inv_emit(tx, INV_STOCK_CHANGED, s.product_id, inv_stock_event(&s), tp, now_ms);
        if (rc != 0) return rc;
    }
    return 0;
}

/* ---- reserve -------------------------------------------------------------------------------- */

/* Takes every item's units; collects unknown products and shortages in `out`. */
static int take_units(sl_db *tx, const inv_item *items, size_t n, int64_t now_ms,
                      inv_reserve_result *out)
{
    inv_shortage unknown[INV_ITEMS_MAX];
    size_t nunknown = 0;
    out->nshort = 0;
    for (size_t i = 0; i < n; i++) {
        int ok = 0;
        int rc = inv_store_try_reserve(tx, items[i].product_id, items[i].qty, now_ms, &ok);
        if (rc != 0) return rc;
        if (ok) continue;
        inv_stock s;
        rc = inv_store_stock_get(tx, items[i].product_id, &s);
        if (rc != 0 && rc != SL_ENOTFOUND) return rc;
        inv_shortage *sh =
            rc == SL_ENOTFOUND ? &unknown[nunknown++] : &out->short_items[out->nshort++];
        sh->index = items[i].index;
        snprintf(sh->product_id, sizeof sh->product_id, "%s", items[i].product_id);
        sh->requested = items[i].qty;
        sh->available = rc == SL_ENOTFOUND ? 0 : s.stock - s.reserved;
    }
    if (nunknown > 0) {
        /* An unknown product is a bad request (422); it outranks a shortage. */
        memcpy(out->short_items, unknown, nunknown * sizeof unknown[0]);
        out->nshort = nunknown;
        out->outcome = INV_RES_UNKNOWN_PRODUCT;
    } else if (out->nshort > 0) {
        out->outcome = INV_RES_INSUFFICIENT;
    }
    return 0;
}

static int reserve_once(sl_db *db, const char *order_id, const inv_item *items, size_t n,
                        int64_t now_ms, int64_t ttl_ms, const char *tp, inv_reserve_result *out)
{
    int rc = sl_db_begin(db);
    if (rc != 0) return rc;
    inv_reservation *r = &out->res;
    rc = inv_store_res_get(db, order_id, r);
    if (rc == 0) {
        /* Idempotency per order: answer with what exists, write nothing. */
        sl_db_rollback(db);
        if (r->status == INV_ST_RELEASED && r->n == 0)
            out->outcome = INV_RES_ALREADY_RELEASED;
        else
            out->outcome =
                inv_items_equal(r->items, r->n, items, n) ? INV_RES_EXISTING : INV_RES_MISMATCH;
        return 0;
    }
    if (rc != SL_ENOTFOUND) goto fail;
    memset(r, 0, offsetof(inv_reservation, items));
    snprintf(r->order_id, sizeof r->order_id, "%s", order_id);
    r->status = INV_ST_RESERVED;
    r->created_ms = now_ms;
    r->expires_ms = now_ms + ttl_ms;
    r->n = n;
    memcpy(r->items, items, n * sizeof items[0]);
    /* The order's row first: a concurrent first reservation of the same order waits on it
     * (PostgreSQL) and then fails with SL_ECONFLICT, and its retry answers EXISTING. */
    out->outcome = INV_RES_CREATED;
    if ((rc = inv_store_res_insert(db, r, now_ms)) != 0) goto fail;
    if ((rc = take_units(db, items, n, now_ms, out)) != 0) goto fail;
    if (out->outcome != INV_RES_CREATED) {
        sl_db_rollback(db); /* all-or-nothing: no unit stays taken */
        return 0;
    }
    if ((rc = inv_emit(db, INV_RESERVED, order_id, inv_order_event(r, NULL), tp, now_ms)) != 0)
        goto fail;
    if ((rc = emit_stock_changes(db, items, n, tp, now_ms)) != 0) goto fail;
    return sl_db_commit(db);
fail:
    sl_db_rollback(db);
    return rc;
}

int inv_op_reserve(sl_db *db, const char *order_id, const inv_item *items, size_t n, int64_t now_ms,
                   int64_t ttl_ms, const char *traceparent, inv_reserve_result *out)
{
    SL_ASSERT(db && order_id && items && n > 0 && n <= INV_ITEMS_MAX && out);
    if (n == 0 || n > INV_ITEMS_MAX) return SL_EINVAL;
    int rc = SL_EBUSY;
    for (int i = 0; i < TX_TRIES && retryable(rc); i++)
        rc = reserve_once(db, order_id, items, n, now_ms, ttl_ms, traceparent, out);
    return rc;
}

/* ---- release / commit ----------------------------------------------------------------------- */

/* Release inside the open transaction. With `expiry`, only a reservation due at now_ms. */
static int release_in_tx(sl_db *tx, const char *order_id, const char *reason, int expiry,
                         int64_t now_ms, const char *tp, inv_action *action, inv_reservation *r)
{
    int rc = inv_store_res_get(tx, order_id, r);
    if (rc != 0 && rc != SL_ENOTFOUND) return rc;
    int exists = rc == 0;
    if (expiry && !(exists && inv_is_expired(r->status, r->expires_ms, now_ms))) {
        *action = INV_ACT_NOOP;
        return 0;
    }
    *action = inv_release_decide(exists, exists ? r->status : INV_ST_RESERVED);
    if (*action == INV_ACT_TOMBSTONE) {
        memset(r, 0, offsetof(inv_reservation, items));
        snprintf(r->order_id, sizeof r->order_id, "%s", order_id);
        r->status = INV_ST_RELEASED;
        snprintf(r->reason, sizeof r->reason, "%s", reason);
        r->created_ms = r->expires_ms = now_ms;
        return inv_store_res_insert(tx, r, now_ms);
    }
    if (*action == INV_ACT_RETURN) {
        /* Committed units leave stock; a release after the commit puts them back. */
        int changed = 0, ok = 0;
        rc = inv_store_res_set_status(tx, order_id, INV_ST_COMMITTED, INV_ST_RELEASED, "returned",
                                      now_ms, &changed);
        if (rc == 0 && !changed) rc = SL_EBUSY;
        for (size_t i = 0; rc == 0 && i < r->n; i++) {
            rc = inv_store_stock_add(tx, r->items[i].product_id, r->items[i].qty, now_ms, &ok);
            if (rc == 0 && !ok) rc = SL_ELIMIT;
        }
        r->status = INV_ST_RELEASED;
        snprintf(r->reason, sizeof r->reason, "%s", "returned");
        if (rc == 0)
            rc = inv_emit(tx, INV_RELEASED, order_id, inv_order_event(r, "returned"), tp, now_ms);
        if (rc == 0) rc = emit_stock_changes(tx, r->items, r->n, tp, now_ms);
        return rc;
    }
    if (*action != INV_ACT_APPLY) return 0;
    int changed = 0;
    rc = inv_store_res_set_status(tx, order_id, INV_ST_RESERVED, INV_ST_RELEASED, reason, now_ms,
                                  &changed);
    if (rc == 0 && !changed) rc = SL_EBUSY; /* moved on under us: retry from the start */
    for (size_t i = 0; rc == 0 && i < r->n; i++)
        rc = inv_store_unreserve(tx, r->items[i].product_id, r->items[i].qty, 0, now_ms);
    r->status = INV_ST_RELEASED;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    if (rc == 0) rc = inv_emit(tx, INV_RELEASED, order_id, inv_order_event(r, reason), tp, now_ms);
    if (rc == 0) rc = emit_stock_changes(tx, r->items, r->n, tp, now_ms);
    return rc;
}

int inv_op_commit_tx(sl_db *tx, const char *order_id, int64_t now_ms, const char *tp,
                     inv_action *action, inv_reservation *r)
{
    SL_ASSERT(tx && order_id && action && r);
    int rc = inv_store_res_get(tx, order_id, r);
    if (rc != 0 && rc != SL_ENOTFOUND) return rc;
    int exists = rc == 0;
    *action = inv_commit_decide(exists, exists ? r->status : INV_ST_RESERVED);
    if (!exists) {
        memset(r, 0, offsetof(inv_reservation, items));
        snprintf(r->order_id, sizeof r->order_id, "%s", order_id);
    }
    if (*action != INV_ACT_APPLY) return 0;
    int changed = 0;
    rc = inv_store_res_set_status(tx, order_id, INV_ST_RESERVED, INV_ST_COMMITTED, "", now_ms,
                                  &changed);
    if (rc == 0 && !changed) rc = SL_EBUSY;
    for (size_t i = 0; rc == 0 && i < r->n; i++)
        rc = inv_store_unreserve(tx, r->items[i].product_id, r->items[i].qty, 1, now_ms);
    r->status = INV_ST_COMMITTED;
    if (rc == 0) rc = inv_emit(tx, INV_COMMITTED, order_id, inv_order_event(r, NULL), tp, now_ms);
    if (rc == 0) rc = emit_stock_changes(tx, r->items, r->n, tp, now_ms);
    return rc;
}

int inv_op_release(sl_db *db, const char *order_id, const char *reason, int64_t now_ms,
                   const char *traceparent, inv_action *action, inv_reservation *out)
{
    SL_ASSERT(db && order_id && reason && action && out);
    int expiry = strcmp(reason, "expired") == 0;
    int rc = SL_EBUSY;
    for (int i = 0; i < TX_TRIES && retryable(rc); i++) {
        if ((rc = sl_db_begin(db)) != 0) continue;
        rc = release_in_tx(db, order_id, reason, expiry, now_ms, traceparent, action, out);
        if (rc == 0)
            rc = sl_db_commit(db);
        else
            sl_db_rollback(db);
    }
    return rc;
}

int inv_op_commit(sl_db *db, const char *order_id, int64_t now_ms, const char *traceparent,
                  inv_action *action, inv_reservation *out)
{
    SL_ASSERT(db && order_id && action && out);
    int rc = SL_EBUSY;
    for (int i = 0; i < TX_TRIES && retryable(rc); i++) {
        if ((rc = sl_db_begin(db)) != 0) continue;
        rc = inv_op_commit_tx(db, order_id, now_ms, traceparent, action, out);
        if (rc == 0)
            rc = sl_db_commit(db);
        else
            sl_db_rollback(db);
    }
    return rc;
}

/* ---- restock and expiry --------------------------------------------------------------------- */

int inv_op_restock_tx(sl_db *tx, const char *product_id, int64_t qty, int64_t now_ms,
                      const char *traceparent, inv_stock *out)
{
    SL_ASSERT(tx && product_id && out);
    int64_t ignored;
    if (inv_restock_apply(0, qty, &ignored) != 0) return SL_EINVAL;
    int ok = 0;
    int rc = inv_store_stock_add(tx, product_id, qty, now_ms, &ok);
    if (rc == 0) rc = inv_store_stock_get(tx, product_id, out);
    if (rc == 0 && !ok) rc = SL_ELIMIT; /* the row exists: the cap refused the change */
    if (rc == 0)
        rc = inv_emit(tx, INV_STOCK_CHANGED, product_id, inv_stock_event(out), traceparent, now_ms);
    return rc;
}

int inv_op_restock(sl_db *db, const char *product_id, int64_t qty, int64_t now_ms,
                   const char *traceparent, inv_stock *out)
{
    SL_ASSERT(db && product_id && out);
    int rc = SL_EBUSY;
    for (int i = 0; i < TX_TRIES && retryable(rc); i++) {
        if ((rc = sl_db_begin(db)) != 0) continue;
        rc = inv_op_restock_tx(db, product_id, qty, now_ms, traceparent, out);
        if (rc == 0)
            rc = sl_db_commit(db);
        else
            sl_db_rollback(db);
    }
    return rc;
}

int inv_op_expire_due(sl_db *db, int64_t now_ms, size_t max, size_t *released,
                      void (*on_expired)(void *data, const inv_reservation *r), void *data)
{
    SL_ASSERT(db && released);
    char ids[64][INV_ID_MAX + 1];
    size_t n = 0;
    *released = 0;
    if (max > SL_ARRAY_LEN(ids)) max = SL_ARRAY_LEN(ids);
    int rc = inv_store_due(db, now_ms, ids, max, &n);
    inv_reservation *r = malloc(sizeof *r);
    if (!r) return SL_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        inv_action action;
        rc = inv_op_release(db, ids[i], "expired", now_ms, NULL, &action, r);
        if (rc == 0 && action == INV_ACT_APPLY) {
            (*released)++;
            if (on_expired) on_expired(data, r);
        }
    }
    free(r);
    return rc;
}

int inv_cmd_restock(sl_http_req *req, sl_db *db, const sl_req_idem *k, const char *product_id,
                    int64_t qty, int64_t now_ms, int *status, json_t **body)
{
    SL_ASSERT(req && db && k && product_id && status && body);
    *status = 0;
    *body = NULL;
    int rc = sl_db_begin(db);
    if (rc != 0) return rc;
    /* The canonical request: path and the validated quantity. */
    char canon[160];
    int cl = snprintf(canon, sizeof canon, "restock %s %lld", product_id, (long long)qty);
    if ((rc = sl_req_idem_claim(req, db, k, canon, (size_t)cl, NULL)) == 1) return INV_CMD_ANSWERED;
    inv_stock s;
    const char *tp = req->traceparent[0] ? req->traceparent : NULL;
    if (rc == 0) rc = inv_op_restock_tx(db, product_id, qty, now_ms, tp, &s);
    if (rc == SL_ENOTFOUND || rc == SL_ELIMIT) {
        /* A refusal changes nothing and is not remembered: the same key may be retried. */
        sl_db_rollback(db);
        *status = rc == SL_ENOTFOUND ? 404 : 409;
        return 0;
    }
    if (rc == 0) {
        *body = json_pack("{s:s, s:I}", "product_id", product_id, "available",
                          (json_int_t)(s.stock - s.reserved));
        rc = *body ? sl_req_idem_finish(db, k, 200, *body) : SL_ENOMEM;
    }
    if (rc == 0) rc = sl_db_commit(db);
    if (rc != 0) {
        sl_db_rollback(db);
        json_decref(*body);
        *body = NULL;
        return rc;
    }
    *status = 200;
    return 0;
}
