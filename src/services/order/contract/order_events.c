/*
 * The decoder of the order events (order_events.h), for the order service's
 * own read model and for every consumer of the events.
 */
#include "order_events.h"

#include <shoal/id.h>
#include <shoal/service.h>

#include <stdio.h>
#include <string.h>

int order_event_id_valid(const char *s, size_t len)
{
    return sl_id_text_valid(s, len, ORDER_EV_ID_MAX);
}

static int known_type(const char *type)
{
    static const char *const types[] = {ORDER_EV_CREATED, ORDER_EV_CONFIRMED, ORDER_EV_CANCELLED,
                                        ORDER_EV_SHIPPED, ORDER_EV_DELIVERED};
    for (size_t i = 0; type && i < SL_ARRAY_LEN(types); i++)
        if (strcmp(type, types[i]) == 0) return 1;
    return 0;
}

static int read_items(const json_t *items, unsigned flags, order_event_view *out,
                      sl_json_errors *errs)
{
    int prices = (flags & ORDER_READ_PRICES) != 0;
    out->nitems = json_array_size(items);
    SL_ASSERT(out->nitems <= ORDER_EV_ITEMS_MAX); /* bounded by the caller's table row */
    for (size_t i = 0; i < out->nitems; i++) {
        order_event_item *it = &out->items[i];
        json_t *price = NULL;
        char prefix[32], at[48];
        const sl_json_field f[] = {
            {.name = "product_id",
             .kind = SL_JSON_STRING,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = ORDER_EV_ID_MAX,
             .max_bytes = ORDER_EV_ID_MAX,
             .out = &it->product_id},
            {.name = "qty",
             .kind = SL_JSON_INT,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = ORDER_EV_QTY_MAX,
             .out = &it->qty},
            {.name = "unit_price",
             .kind = SL_JSON_OBJECT,
             .flags = SL_JSON_REQUIRED,
             .out = &price},
        };
        if (sl_json_path_index(prefix, sizeof prefix, "items", i) != 0 ||
            sl_json_read_at(json_array_get(items, i), prefix, f, prices ? 3 : 2, 0, errs) != 0)
            return SL_EPARSE;
        snprintf(at, sizeof at, "%s.unit_price", prefix);
        if (prices && sl_json_read_money(price, at, 0, ORDER_EV_AMOUNT_MAX, &it->unit_price,
                                         it->currency, errs) != 0)
            return SL_EPARSE;
    }
    return 0;
}

int order_event_decode(const char *type, const json_t *data, unsigned flags, order_event_view *out,
                       char *reason, size_t reason_cap)
{
    SL_ASSERT(out != NULL);
    memset(out, 0, sizeof *out);
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (!known_type(type)) {
        sl_json_errors_add(&errs, "type", "is not an order event");
        return sl_event_refuse(reason, reason_cap, type ? type : "event", &errs);
    }
    if (!json_is_object(data)) return sl_event_refuse(reason, reason_cap, type, NULL);
    int prices = (flags & ORDER_READ_PRICES) != 0;
    json_t *items = NULL, *total = NULL;
    const sl_json_field f[] = {
        {.name = "order_id",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = ORDER_EV_ID_MAX,
         .max_bytes = ORDER_EV_ID_MAX,
         .out = &out->order_id},
        {.name = "user_id",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = ORDER_EV_ID_MAX,
         .max_bytes = ORDER_EV_ID_MAX,
         .out = &out->user_id},
        {.name = "items",
         .kind = SL_JSON_ARRAY,
         .flags = SL_JSON_NULLABLE,
         .min = 1,
         .max = ORDER_EV_ITEMS_MAX,
         .out = &items},
        {.name = "reason",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_NULLABLE,
         .min = 1,
         .max = ORDER_EV_REASON_MAX - 1,
         .max_bytes = ORDER_EV_REASON_MAX - 1,
         .out = &out->reason},
        {.name = "total_amount", .kind = SL_JSON_OBJECT, .flags = SL_JSON_NULLABLE, .out = &total},
    };
    /* reason belongs to cancelled; total_amount is read only with ORDER_READ_PRICES. */
    int cancelled = strcmp(type, ORDER_EV_CANCELLED) == 0;
    sl_json_field rows[SL_ARRAY_LEN(f)] = {f[0], f[1], f[2]};
    size_t n = 3;
    if (cancelled) rows[n++] = f[3];
    if (prices) rows[n++] = f[4];
    if (sl_json_read(data, rows, n, 0, &errs) != 0 ||
        (items && read_items(items, flags, out, &errs) != 0) ||
        (total && sl_json_read_money(total, "total_amount", 0, ORDER_EV_AMOUNT_MAX, &out->total,
                                     out->currency, &errs) != 0))
        return sl_event_refuse(reason, reason_cap, type, &errs);
    if (!order_event_id_valid(out->order_id, strlen(out->order_id))) {
        sl_json_errors_add(&errs, "order_id", "is not a valid id");
        return sl_event_refuse(reason, reason_cap, type, &errs);
    }
    out->has_items = items != NULL;
    out->has_total = total != NULL;
    return 0;
}
