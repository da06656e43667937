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

/*
 * Reads the data of `msg` by the `n` rows of `f`, whose first is an id (inv_id_field) checked
 * with inv_id_valid. Returns 0, or refuses the event of `type` (sl_event_refuse).
 */
static int read_event(const sl_bus_msg *msg, const char *type, const sl_json_field *f, size_t n,
                      char *reason, size_t cap)
{
    SL_ASSERT(n > 0 && f[0].kind == SL_JSON_STRING && f[0].out != NULL);
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (!msg->data || sl_json_read(msg->data, f, n, 0, &errs) != 0)
        return sl_event_refuse(reason, cap, type, &errs);
    const char *id = *(const char *const *)f[0].out;
    if (!inv_id_valid(id, strlen(id))) {
        sl_json_errors_add(&errs, f[0].name, "is not a valid id");
        return sl_event_refuse(reason, cap, type, &errs);
    }
    return 0;
}

int inv_apply_product_created(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap)
{
    SL_ASSERT(tx && msg);
    (void)svc;
    const char *pid = NULL;
    int64_t initial = 0;
    const sl_json_field f[] = {
        inv_id_field("product_id", &pid),
        {.name = "initial_stock",
         .kind = SL_JSON_INT,
         .min = 0,
         .max = INV_STOCK_MAX,
         .out = &initial},
    };
    int rc = read_event(msg, "product.created", f, SL_ARRAY_LEN(f), reason, cap);
    if (rc != 0) return rc;
    int64_t now_ms = sl_clock_wall_ms(sl_clock_system());
    int created = 0;
    rc = inv_store_stock_create(tx, pid, initial, now_ms, &created);
    if (rc != 0 || !created) return rc; /* already known: applied once (idempotent by id) */
    inv_stock s = {.stock = initial, .reserved = 0};
    snprintf(s.product_id, sizeof s.product_id, "%s", pid);
    return inv_emit(tx, INV_STOCK_CHANGED, pid, inv_stock_event(&s), msg->traceparent, now_ms);
}

int inv_apply_order_confirmed(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap)
{
    SL_ASSERT(tx && msg);
    const char *oid = NULL;
    const sl_json_field f[] = {inv_id_field("order_id", &oid)};
    int rc = read_event(msg, "order.confirmed", f, SL_ARRAY_LEN(f), reason, cap);
    if (rc != 0) return rc;
    int64_t now_ms = sl_clock_wall_ms(sl_clock_system());
    inv_reservation *r = malloc(sizeof *r);
    if (!r) return SL_ENOMEM;
    inv_action action;
    rc = inv_op_commit_tx(tx, oid, now_ms, msg->traceparent, &action, r);
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
