/*
 * shoal-order's events: the order events it emits (outbox, in the
 * transaction of the state change) and the appliers of the events it
 * consumes: product events keep the price replica (new orders are priced
 * from it), and the order's own events feed the order_history read model
 * (with product names from the replica). An emitted event is also applied
 * to the read model in its own transaction, so a customer reads their order
 * history at once; the same event delivered later by the bus applies again
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

int order_emit(sl_svc_worker *w, sl_http_req *req, sl_db *tx, const char *type, const order_row *o)
{
    json_t *data = event_data(type, o);
    if (!data) return SL_ENOMEM;
    int rc;
    if (w) {
        rc = sl_svc_emit(w, req, tx, type, o->order_id, data);
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

/* ---- read model ----------------------------------------------------------------------------- */

static int refuse(char *reason, size_t cap, const char *what, const sl_json_errors *errs)
{
    if (reason && cap)
        snprintf(reason, cap, "%s: %s %s", what, errs->count ? errs->items[0].field : "data",
                 errs->count ? errs->items[0].message : "is missing or invalid");
    return SL_EPARSE;
}

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

/* Validates the items of an order event and returns them with product names (owned). */
static int named_items(sl_db *tx, const json_t *items, json_t **out, sl_json_errors *errs)
{
    json_t *a = json_array();
    if (!a) return SL_ENOMEM;
    for (size_t i = 0; i < json_array_size(items); i++) {
        const char *pid = NULL;
        int64_t qty = 0, amount = 0;
        char currency[4];
        json_t *price = NULL;
        char prefix[32];
        const sl_json_field f[] = {
            {.name = "product_id",
             .kind = SL_JSON_STRING,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = ORDER_ID_MAX,
             .max_bytes = ORDER_ID_MAX,
             .out = &pid},
            {.name = "qty",
             .kind = SL_JSON_INT,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = ORDER_QTY_MAX,
             .out = &qty},
            {.name = "unit_price",
             .kind = SL_JSON_OBJECT,
             .flags = SL_JSON_REQUIRED,
             .out = &price},
        };
        if (sl_json_path_index(prefix, sizeof prefix, "items", i) != 0 ||
            sl_json_read_at(json_array_get(items, i), prefix, f, 3, 0, errs) != 0 ||
            order_read_money(price, "unit_price", &amount, currency, errs) != 0) {
            json_decref(a);
            return SL_EPARSE;
        }
        order_price p;
        int rc = order_store_price_get(tx, pid, &p);
        if (rc != 0 && rc != SL_ENOTFOUND) {
            json_decref(a);
            return rc;
        }
        json_t *name = rc == 0 && p.name[0] ? json_string(p.name) : json_null();
        json_array_append_new(a, json_pack("{s:s, s:o, s:I, s:o}", "product_id", pid, "name", name,
                                           "qty", (json_int_t)qty, "unit_price",
                                           money(amount, currency)));
    }
    *out = a;
    return 0;
}

int order_hist_apply(sl_db *tx, const char *type, const json_t *data, int64_t at_ms, char *reason,
                     size_t cap)
{
    order_status st;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (type_status(type, &st) != 0) {
        sl_json_errors_add(&errs, "type", "is not an order event");
        return refuse(reason, cap, type ? type : "event", &errs);
    }
    const char *oid = NULL, *uid = NULL, *why = NULL;
    json_t *items = NULL, *total = NULL;
    const sl_json_field f[] = {
        {.name = "order_id",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = ORDER_ID_MAX,
         .max_bytes = ORDER_ID_MAX,
         .out = &oid},
        {.name = "user_id",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = ORDER_ID_MAX,
         .max_bytes = ORDER_ID_MAX,
         .out = &uid},
        {.name = "items",
         .kind = SL_JSON_ARRAY,
         .flags = SL_JSON_NULLABLE,
         .min = 1,
         .max = ORDER_ITEMS_MAX,
         .out = &items},
        {.name = "total_amount", .kind = SL_JSON_OBJECT, .flags = SL_JSON_NULLABLE, .out = &total},
        {.name = "reason",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_NULLABLE,
         .min = 1,
         .max = ORDER_REASON_MAX - 1,
         .max_bytes = ORDER_REASON_MAX - 1,
         .out = &why},
    };
    int64_t amount = 0;
    char currency[4] = "";
    if (!data || sl_json_read(data, f, SL_ARRAY_LEN(f), 0, &errs) != 0 ||
        (total && order_read_money(total, "total_amount", &amount, currency, &errs) != 0))
        return refuse(reason, cap, type, &errs);
    if (!order_id_valid(oid, strlen(oid))) {
        sl_json_errors_add(&errs, "order_id", "is not a valid id");
        return refuse(reason, cap, type, &errs);
    }
    json_t *named = NULL;
    if (items) {
        int rc = named_items(tx, items, &named, &errs);
        if (rc == SL_EPARSE) return refuse(reason, cap, type, &errs);
        if (rc != 0) return rc;
    }
    char *text = named ? sl_json_dump(named, NULL) : NULL;
    json_decref(named);
    if (named && !text) return SL_ENOMEM;
    int rc = order_store_hist_put(tx, oid, uid, st, text, total != NULL, amount, currency,
                                  st == ORDER_CANCELLED ? why : NULL, at_ms);
    free(text);
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

/* ---- price replica -------------------------------------------------------------------------- */

/* Whether an event at `event_ms` (< 0: unknown) may overwrite a value from `stored_ms`. */
static int newer(int64_t stored_ms, int64_t event_ms)
{
    return event_ms < 0 || event_ms >= stored_ms;
}

static int put_replica(sl_db *tx, const char *pid, const char *name, const json_t *price_v,
                       const char *price_field, const sl_bus_msg *msg, char *reason, size_t cap)
{
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    int64_t amount = 0;
    char currency[4] = "";
    if (price_v && order_read_money(price_v, price_field, &amount, currency, &errs) != 0)
        return refuse(reason, cap, msg->type, &errs);
    order_price row;
    memset(&row, 0, sizeof row);
    int rc = order_store_price_get(tx, pid, &row);
    if (rc != 0 && rc != SL_ENOTFOUND) return rc;
    int exists = rc == 0;
    int64_t t = event_ms(msg);
    int set_name = name && (!exists || newer(row.name_ms, t));
    int set_price = price_v && (!exists || newer(row.price_ms, t));
    return order_store_price_put(tx, pid, exists, set_name ? name : NULL, t < 0 ? row.name_ms : t,
                                 set_price, amount, currency, t < 0 ? row.price_ms : t);
}

static int read_product_id(const sl_bus_msg *msg, const sl_json_field *extra, size_t nextra,
                           const char **pid, sl_json_errors *errs)
{
    sl_json_field f[4] = {{.name = "product_id",
                           .kind = SL_JSON_STRING,
                           .flags = SL_JSON_REQUIRED,
                           .min = 1,
                           .max = ORDER_ID_MAX,
                           .max_bytes = ORDER_ID_MAX,
                           .out = pid}};
    for (size_t i = 0; i < nextra && i < 3; i++)
        f[1 + i] = extra[i];
    if (!msg->data || sl_json_read(msg->data, f, 1 + nextra, 0, errs) != 0) return SL_EPARSE;
    if (!order_id_valid(*pid, strlen(*pid))) {
        sl_json_errors_add(errs, "product_id", "is not a valid id");
        return SL_EPARSE;
    }
    return 0;
}

int order_apply_product(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap)
{
    (void)svc;
    const char *pid = NULL, *name = NULL;
    json_t *price = NULL;
    const sl_json_field f[] = {
        {.name = "name",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_NULLABLE,
         .min = 1,
         .max = ORDER_NAME_MAX,
         .max_bytes = ORDER_NAME_MAX * 4,
         .out = &name},
        {.name = "price", .kind = SL_JSON_OBJECT, .flags = SL_JSON_NULLABLE, .out = &price},
    };
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (read_product_id(msg, f, 2, &pid, &errs) != 0) return refuse(reason, cap, msg->type, &errs);
    return put_replica(tx, pid, name, price, "price", msg, reason, cap);
}

int order_apply_price_changed(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap)
{
    (void)svc;
    const char *pid = NULL;
    json_t *price = NULL;
    const sl_json_field f[] = {
        {.name = "new_price", .kind = SL_JSON_OBJECT, .flags = SL_JSON_REQUIRED, .out = &price},
    };
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (read_product_id(msg, f, 1, &pid, &errs) != 0) return refuse(reason, cap, msg->type, &errs);
    return put_replica(tx, pid, NULL, price, "new_price", msg, reason, cap);
}
