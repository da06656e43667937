/*
 * shoal-order's commands: the transactions behind the HTTP API (order.c). A
 * new order is stored pending with its created event and its checkout saga
 * in one transaction; a cancel, ship or deliver re-reads the order, applies
 * the state machine (domain.c), writes the status, its event and (for a
 * cancel) the cancel saga together. Both store their answer under the
 * request's Idempotency-Key in the same transaction.
 */
#include "order.h"

#include <shoal/clock.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prices every item from the replica; on unknown products or mixed currencies fills errs. */
static int price_items(sl_db *db, order_row *o, sl_json_errors *errs)
{
    int bad = 0;
    for (size_t i = 0; i < o->n; i++) {
        product_replica_row p;
        int rc = product_replica_get(db, o->items[i].product_id, &p);
        if (rc != 0 && rc != SL_ENOTFOUND) return rc;
        char f[48];
        snprintf(f, sizeof f, "items[%zu].product_id", i);
        if (rc == SL_ENOTFOUND || !p.has_price) {
            sl_json_errors_add(errs, f, "no such product");
            bad = 1;
            continue;
        }
        o->items[i].unit_price = p.amount;
        memcpy(o->items[i].currency, p.currency, 4);
    }
    if (bad) return SL_ENOTFOUND;
    size_t at = 0;
    int rc = order_total(o->items, o->n, &o->total, o->currency, &at);
    if (rc != 0) {
        char f[48];
        snprintf(f, sizeof f, "items[%zu].product_id", at);
        sl_json_errors_add(errs, f,
                           rc == SL_ECONFLICT ? "is priced in another currency than items[0]"
                                              : "makes the total exceed the largest amount");
        return SL_ENOTFOUND;
    }
    return 0;
}

int order_cmd_create(sl_svc_worker *w, sl_http_req *req, order_row *o, const sl_req_idem *k,
                     const char *canon, json_t **answer, sl_json_errors *errs)
{
    SL_ASSERT(w && req && o && k && canon && answer && errs);
    SL_ASSERT(o->status == ORDER_PENDING && o->n > 0 && o->n <= ORDER_ITEMS_MAX);
    *answer = NULL;
    sl_db *db = sl_svc_worker_db(w);
    int rc = sl_db_begin(db);
    if (rc != 0) return rc;
    if ((rc = sl_req_idem_claim(req, db, k, canon, strlen(canon), order_replay)) == 1)
        return ORDER_CMD_ANSWERED;
    if (rc != 0) goto out;
    if ((rc = price_items(db, o, errs)) != 0) goto out;
    char sid[SL_SAGA_ID_MAX + 1];
    if ((rc = order_saga_id(sid, ORDER_SAGA_CHECKOUT, o->order_id)) != 0) goto out;
    char *input = order_saga_input(o, sl_req_trace(req), req);
    rc = input ? order_store_insert(db, o) : SL_ENOMEM;
    if (rc == 0) rc = order_emit(w, req, db, ORDER_EV_CREATED, o);
    if (rc == 0)
        rc = sl_saga_store_create(db, &order_config_of(w)->sagas.checkout, sid, input,
                                  o->created_ms);
    free(input);
    if (rc != 0) goto out;
    sl_req_span_attr_str(req, "shoal.order_id", o->order_id); /* `shoal trace --order` finds it */
    *answer = json_pack("{s:s, s:s}", "order_id", o->order_id, "status", "pending");
    if (!*answer) {
        rc = SL_ENOMEM;
        goto out;
    }
    if ((rc = sl_req_idem_finish(db, k, 202, *answer)) != 0) goto out;
    rc = sl_db_commit(db);
out:
    if (rc != 0) {
        sl_db_rollback(db);
        json_decref(*answer);
        *answer = NULL;
    }
    return rc;
}

int order_cmd_change(sl_svc_worker *w, sl_http_req *req, order_row *o, const order_change *c,
                     const sl_req_idem *k, const char *canon, int *refusal)
{
    SL_ASSERT(w && req && o && c && c->event && k && canon && refusal);
    *refusal = 0;
    sl_db *db = sl_svc_worker_db(w);
    int rc = sl_db_begin(db);
    if (rc != 0) return rc;
    if ((rc = sl_req_idem_claim(req, db, k, canon, strlen(canon), NULL)) == 1)
        return ORDER_CMD_ANSWERED;
    if (rc != 0) goto out;
    /* Re-read inside the transaction: the status decides. */
    if ((rc = order_store_get(db, o->order_id, o)) != 0) goto out;
    order_status next;
    int legal = order_transition(o->status, c->action, &next);
    if (legal != 0) {
        sl_db_rollback(db);
        *refusal = legal;
        return ORDER_CMD_REFUSED;
    }
    int changed = 0;
    int64_t now = sl_clock_wall_ms(sl_clock_system());
    rc =
        order_store_set_status(db, o->order_id, o->status, next, c->reason, c->note, now, &changed);
    if (rc == 0 && !changed) rc = SL_EBUSY; /* cannot happen inside the transaction */
    if (rc != 0) goto out;
    o->status = next;
    o->updated_ms = now;
    if (c->reason) snprintf(o->cancel_reason, sizeof o->cancel_reason, "%s", c->reason);
    if ((rc = order_emit(w, req, db, c->event, o)) != 0) goto out;
    if (c->saga) {
        char sid[SL_SAGA_ID_MAX + 1], *input = order_saga_input(o, sl_req_trace(req), req);
        rc = order_saga_id(sid, ORDER_SAGA_CANCEL, o->order_id);
        if (rc == 0)
            rc = input
                     ? sl_saga_store_create(db, &order_config_of(w)->sagas.cancel, sid, input, now)
                     : SL_ENOMEM;
        free(input);
        if (rc != 0) goto out;
    }
    json_t *v = order_json(o);
    rc = v ? sl_req_idem_finish(db, k, 200, v) : SL_ENOMEM;
    json_decref(v);
    if (rc == 0) rc = sl_db_commit(db);
out:
    if (rc != 0) sl_db_rollback(db);
    return rc;
}
