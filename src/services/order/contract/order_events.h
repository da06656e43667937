/*
 * The order service's events, as it publishes them: what any service may
 * rely on. A consumer links the library order_contract and includes this
 * header, never the order service's own files.
 *
 * Each event is a CloudEvent from source ORDER_EV_SOURCE whose type is also
 * its bus topic (the stream of context "order"), and whose subject is the
 * order id. Payloads (`data`):
 *
 *   shop.order.created.v1    the order was placed (pending; the checkout starts)
 *   shop.order.confirmed.v1  stock reserved and payment taken
 *     order_id       string, the order's id (1..ORDER_EV_ID_MAX bytes of [A-Za-z0-9._:-])
 *     user_id        string, the customer's id (1..ORDER_EV_ID_MAX bytes)
 *     items          1..ORDER_EV_ITEMS_MAX of {product_id, qty 1..ORDER_EV_QTY_MAX,
 *                    unit_price {amount, currency}}
 *     total_amount   {amount, currency}: amount in minor units, currency three upper-case
 *                    letters (ISO 4217)
 *
 *   shop.order.cancelled.v1  order_id, user_id, reason (1..ORDER_EV_REASON_MAX - 1 bytes:
 *                            insufficient_stock, reservation_failed, insufficient_funds,
 *                            payment_failed, or the customer's "customer_request")
 *   shop.order.shipped.v1    order_id, user_id
 *   shop.order.delivered.v1  order_id, user_id
 *
 * Readers tolerate members they do not know; removing or changing a member
 * needs a new type (".v2").
 */
#ifndef SHOAL_ORDER_CONTRACT_EVENTS_H
#define SHOAL_ORDER_CONTRACT_EVENTS_H

#include <shoal/common.h>
#include <shoal/json.h>

#include <stddef.h>
#include <stdint.h>

#define ORDER_EV_SOURCE "/shoal/order"

/* Event types (= bus topics). */
#define ORDER_EV_CREATED   "shop.order.created.v1"
#define ORDER_EV_CONFIRMED "shop.order.confirmed.v1"
#define ORDER_EV_CANCELLED "shop.order.cancelled.v1"
#define ORDER_EV_SHIPPED   "shop.order.shipped.v1"
#define ORDER_EV_DELIVERED "shop.order.delivered.v1"

/* Bounds of the payload members. */
#define ORDER_EV_ID_MAX     64              /* bytes of an order, user or product id */
#define ORDER_EV_ITEMS_MAX  50              /* items of one order */
#define ORDER_EV_QTY_MAX    99              /* units of one item */
#define ORDER_EV_AMOUNT_MAX 1000000000000LL /* minor units of a unit price or total */
#define ORDER_EV_REASON_MAX 32              /* bytes of a cancel reason, with NUL */

/* order_event_decode() flags */
#define ORDER_READ_PRICES 0x1u /* also read every item's unit_price (required) and total_amount */

typedef struct order_event_item {
    const char *product_id;
    int64_t qty;
    int64_t unit_price; /* with ORDER_READ_PRICES */
    char currency[4];
} order_event_item;

/* A decoded order event; strings borrow from the event data. */
typedef struct order_event_view {
    const char *order_id, *user_id;
    const char *reason; /* cancelled: the cancel reason, else NULL */
    int has_items;      /* `items` was present (created and confirmed carry it) */
    size_t nitems;
    order_event_item items[ORDER_EV_ITEMS_MAX];
    int has_total; /* with ORDER_READ_PRICES: `total_amount` was present */
    int64_t total;
    char currency[4];
} order_event_view;

/* 1 when `len` bytes of `s` are 1..ORDER_EV_ID_MAX bytes of [A-Za-z0-9._:-]. */
int order_event_id_valid(const char *s, size_t len);

/*
 * Decodes and checks the data (borrowed) of an order event of `type`: order_id and user_id
 * are required, items and (with ORDER_READ_PRICES) total_amount are read when present,
 * reason for cancelled; other members are ignored. Returns 0 with *out filled, or SL_EPARSE
 * for an unknown type or data that can never apply, with "<type>: <field> <problem>" in
 * `reason` (sl_event_refuse; `reason` may be NULL).
 */
int order_event_decode(const char *type, const json_t *data, unsigned flags, order_event_view *out,
                       char *reason, size_t reason_cap) SL_MUST_CHECK;

#endif /* SHOAL_ORDER_CONTRACT_EVENTS_H */
