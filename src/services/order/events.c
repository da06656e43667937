/*
 * shoal-order's events: the order events it emits (outbox, in the
 * transaction of the state change) and the appliers of the events it
 * consumes: the order's own events feed the order_history read model (with
 * product names from the price replica, which product_replica_apply of the
 * product contract keeps; new orders are priced from it). An emitted event
 * is also applied to the read model in its own transaction, so a customer
 * reads their order history at once; the same event delivered later by the bus applies again
 * as a no-op (the upsert is monotonic in status rank), which is also how a
 * rebuild from the stream converges to the same rows.
 */
#include "order.h"

#include <shoal/bus.h>
#include <shoal/clock.h>
#include <shoal/outbox.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON ----------------------------------------------------------------------------------- */

static json_t *money(int64_t amount, const char *currency)
{
    return json_pack("{s:I, s:s}", "amount", (json_int_t)amount, "currency", currency);
}

static json_t *time_json(int64_t ms)
{
    char buf[40];
    if (sl_rfc3339_format(ms * 1000000, buf, sizeof buf) < 0) return json_null();
    return json_string(buf);
}

static json_t *items_json(const order_row *o)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < o->n; i++) {
        const order_item *it = &o->items[i];
        if (json_array_append_new(a, json_pack("{s:s, s:I, s:o}", "product_id", it->product_id,
                                               "qty", (json_int_t)it->qty, "unit_price",
                                               money(it->unit_price, it->currency))) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

json_t *order_json(const order_row *o)
{
    json_t *items = items_json(o);
    if (!items) return NULL;
    return json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:{s:s, s:s, s:s, s:s, s:s}, s:o, s:o, s:o}", "order_id",
        o->order_id, "user_id", o->user_id, "status", order_status_name(o->status), "items", items,
        "total_amount", money(o->total, o->currency), "shipping_address", "name", o->addr.name,
        "line1", o->addr.line1, "city", o->addr.city, "postal_code", o->addr.postal_code, "country",
        o->addr.country, "cancel_reason",
        o->cancel_reason[0] ? json_string(o->cancel_reason) : json_null(), "created_at",
        time_json(o->created_ms), "updated_at", time_json(o->updated_ms));
}

/* The data of `type` for `o` (returns owned). */
static json_t *event_data(const char *type, const order_row *o)
{
    if (strcmp(type, ORDER_EV_CREATED) == 0 || strcmp(type, ORDER_EV_CONFIRMED) == 0) {
        json_t *items = items_json(o);
        if (!items) return NULL;
        return json_pack("{s:s, s:s, s:o, s:o}", "order_id", o->order_id, "user_id", o->user_id,
                         "items", items, "total_amount", money(o->total, o->currency));
    }
    if (strcmp(type, ORDER_EV_CANCELLED) == 0)
        return json_pack("{s:s, s:s, s:s}", "order_id", o->order_id, "user_id", o->user_id,
                         "reason", o->cancel_reason);
    return json_pack("{s:s, s:s}", "order_id", o->order_id, "user_id", o->user_id);
}

static int emit(sl_svc_worker *w, sl_http_req *req, const sl_trace_ctx *trace, sl_db *tx,
                const char *type, const order_row *o)
{
    json_t *data = event_data(type, o);
    if (!data) return SL_ENOMEM;
    int rc;
    if (w) {
        rc = req ? sl_svc_emit(w, req, tx, type, o->order_id, data)
                 : sl_svc_emit_trace(w, trace, tx, type, o->order_id, data);
    } else {
        char *text = sl_json_dump(data, NULL);
        sl_outbox_event ev = {
            .source = ORDER_SOURCE, .type = type, .subject = o->order_id, .data_json = text};
        rc = text ? sl_outbox_add(tx, &ev, sl_clock_wall_ns(sl_clock_system()), NULL) : SL_ENOMEM;
        free(text);
    }
    if (rc == 0) {
        char reason[128];
        rc = order_hist_apply(tx, type, data, o->updated_ms, reason, sizeof reason);
    }
    json_decref(data);
    return rc;
}

int order_emit(sl_svc_worker *w, sl_http_req *req, sl_db *tx, const char *type, const order_row *o)
{
    return emit(w, req, NULL, tx, type, o);
}

int order_emit_trace(sl_svc_worker *w, const sl_trace_ctx *trace, sl_db *tx, const char *type,
                     const order_row *o)
{
    return emit(w, NULL, trace, tx, type, o);
}

/* ---- read model ----------------------------------------------------------------------------- */

static int type_status(const char *type, order_status *out)
{
    static const struct {
        const char *type;
        order_status st;
    } map[] = {{ORDER_EV_CREATED, ORDER_PENDING},
               {ORDER_EV_CONFIRMED, ORDER_CONFIRMED},
               {ORDER_EV_CANCELLED, ORDER_CANCELLED},
               {ORDER_EV_SHIPPED, ORDER_SHIPPED},
               {ORDER_EV_DELIVERED, ORDER_DELIVERED}};
    for (size_t i = 0; type && i < SL_ARRAY_LEN(map); i++) {
        if (strcmp(type, map[i].type) == 0) {
            *out = map[i].st;
            return 0;
        }
    }
    return SL_EINVAL;
}

/* The items of an order event with product names from the replica (returns owned text). */
static int named_items(sl_db *tx, const order_event_view *ev, char **out)
{
    json_t *a = json_array();
    if (!a) return SL_ENOMEM;
    for (size_t i = 0; i < ev->nitems; i++) {
        const order_event_item *it = &ev->items[i];
        product_replica_row p;
        int rc = product_replica_get(tx, it->product_id, &p);
        if (rc != 0 && rc != SL_ENOTFOUND) {
            json_decref(a);
            return rc;
        }
        json_t *name = rc == 0 && p.name[0] ? json_string(p.name) : json_null();
        json_array_append_new(a, json_pack("{s:s, s:o, s:I, s:o}", "product_id", it->product_id,
                                           "name", name, "qty", (json_int_t)it->qty, "unit_price",
                                           money(it->unit_price, it->currency)));
    }
    *out = sl_json_dump(a, NULL);
    json_decref(a);
    return *out ? 0 : SL_ENOMEM;
}

int order_hist_apply(sl_db *tx, const char *type, const json_t *data, int64_t at_ms, char *reason,
                     size_t cap)
{
    SL_ASSERT(tx != NULL);
    order_status st = ORDER_PENDING;
    order_event_view *ev = malloc(sizeof *ev);
    if (!ev) return SL_ENOMEM;
    int rc = order_event_decode(type, data, ORDER_READ_PRICES, ev, reason, cap);
    if (rc == 0) {
        int known = type_status(type, &st) == 0;
        SL_ASSERT(known); /* the decoder refuses every other type */
    }
    char *items = NULL;
    if (rc == 0 && ev->has_items) rc = named_items(tx, ev, &items);
    if (rc == 0)
        rc =
            order_store_hist_put(tx, ev->order_id, ev->user_id, st, items, ev->has_total, ev->total,
                                 ev->currency, st == ORDER_CANCELLED ? ev->reason : NULL, at_ms);
    free(items);
    free(ev);
    return rc;
}

/* The event's time in ms, or -1 when absent or unreadable. */
static int64_t event_ms(const sl_bus_msg *msg)
{
    int64_t ns;
    if (msg->time && sl_rfc3339_parse(msg->time, strlen(msg->time), &ns) == 0) return ns / 1000000;
    return -1;
}

int order_apply_order_event(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap)
{
    (void)svc;
    int64_t t = event_ms(msg);
    if (t < 0) t = msg->published_ms > 0 ? msg->published_ms : sl_clock_wall_ms(sl_clock_system());
    return order_hist_apply(tx, msg->type, msg->data, t, reason, cap);
}
