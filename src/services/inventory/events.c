/*
 * Inventory's event appliers (sl_event_apply_cb): a new product gets its
 * stock row (with the initial stock, announced as stock_changed), and a
 * confirmed order commits its reservation through the same transaction as
 * POST /reservations/{order_id}/commit (commands.c). Both run inside the
 * consumer's transaction, after the inbox claim.
 */
#include "inventory.h"

#include <shoal/bus.h>
#include <shoal/clock.h>
#include <shoal/log.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int inv_apply_product_created(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap)
{
    SL_ASSERT(tx && msg);
    (void)svc;
    const char *pid = NULL;
    int64_t initial = 0;
    const sl_json_field f[] = {
        {.name = "product_id",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = INV_ID_MAX,
         .max_bytes = INV_ID_MAX,
         .out = &pid},
        {.name = "initial_stock",
         .kind = SL_JSON_INT,
         .min = 0,
         .max = INV_STOCK_MAX,
         .out = &initial},
    };
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (!msg->data || sl_json_read(msg->data, f, SL_ARRAY_LEN(f), 0, &errs) != 0)
        return sl_event_refuse(reason, cap, "product.created", &errs);
    if (!inv_id_valid(pid, strlen(pid))) {
        sl_json_errors_add(&errs, "product_id", "is not a valid id");
        return sl_event_refuse(reason, cap, "product.created", &errs);
    }
    int64_t now_ms = sl_clock_wall_ms(sl_clock_system());
    int created = 0;
    int rc = inv_store_stock_create(tx, pid, initial, now_ms, &created);
    if (rc != 0 || !created) return rc; /* already known: applied once (idempotent by id) */
    inv_stock s = {.stock = initial, .reserved = 0};
    snprintf(s.product_id, sizeof s.product_id, "%s", pid);
    return inv_emit(tx, INV_STOCK_CHANGED, pid, inv_stock_json(&s), msg->traceparent, now_ms);
}

int inv_apply_order_confirmed(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap)
{
    SL_ASSERT(tx && msg);
    const char *oid = NULL;
    const sl_json_field f[] = {
        {.name = "order_id",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = INV_ID_MAX,
         .max_bytes = INV_ID_MAX,
         .out = &oid},
    };
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (!msg->data || sl_json_read(msg->data, f, SL_ARRAY_LEN(f), 0, &errs) != 0)
        return sl_event_refuse(reason, cap, "order.confirmed", &errs);
    if (!inv_id_valid(oid, strlen(oid))) {
        sl_json_errors_add(&errs, "order_id", "is not a valid id");
        return sl_event_refuse(reason, cap, "order.confirmed", &errs);
    }
    int64_t now_ms = sl_clock_wall_ms(sl_clock_system());
    inv_reservation *r = malloc(sizeof *r);
    if (!r) return SL_ENOMEM;
    inv_action action;
    int rc = inv_op_commit_tx(tx, oid, now_ms, msg->traceparent, &action, r);
    if (rc == 0 && (action == INV_ACT_REFUSE || action == INV_ACT_UNKNOWN)) {
        /* The order was confirmed but its units are no longer (or never were) held: never
         * take them now (stock could go negative); record it for an operator instead. */
        const char *kind = action == INV_ACT_UNKNOWN           ? "confirmed_without_reservation"
                           : strcmp(r->reason, "expired") == 0 ? "confirmed_after_expiry"
                                                               : "confirmed_after_release";
        rc = inv_store_anomaly_add(tx, oid, kind, msg->id ? msg->id : oid, now_ms);
        if (rc == 0 && svc)
            SL_LOG_WARN(sl_service_log(svc), NULL, "order confirmed without held stock",
                        SL_LOG_STR("order_id", oid), SL_LOG_STR("anomaly", kind));
    }
    free(r);
    return rc;
}
