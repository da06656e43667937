/*
 * shoal-inventory's internal interface: the pure rules (domain.c), the SQL
 * (store.c), the transactional operations that combine them with the outbox
 * (commands.c), the event appliers (events.c) and the service definition
 * (inventory.c). Tests link all of it through the svc_inventory library;
 * nothing here is part of libshoal.
 *
 * Threading: every function that takes an sl_db runs on the thread owning
 * that connection; the pure functions are thread-safe.
 */
#ifndef SHOAL_SVC_INVENTORY_H
#define SHOAL_SVC_INVENTORY_H

#include "order/contract/order_events.h"
#include "product/contract/product_events.h"

#include <shoal/common.h>
#include <shoal/db.h>
#include <shoal/json.h>
#include <shoal/service.h>

#include <stddef.h>
#include <stdint.h>

/* ---- limits (docs/services/inventory.md) ------------------------------------------------ */

#define INV_ID_MAX         64                 /* bytes of an order or product id */
#define INV_ITEMS_MAX      100                /* items of one reservation */
#define INV_QTY_MAX        1000000            /* units of one item */
#define INV_RESTOCK_MAX    1000000            /* units added by one restock */
#define INV_STOCK_MAX      1000000000000LL    /* units on hand of one product */
#define INV_TTL_DEFAULT_MS 900000             /* inventory.reservation_ttl_ms */
#define INV_AUDIT_MAX      100                /* violations reported by one audit */
#define INV_SOURCE         "/shoal/inventory" /* CloudEvents source */
#define INV_STOCK_CHANGED  "shop.inventory.stock_changed.v1"
#define INV_RESERVED       "shop.inventory.reserved.v1"
#define INV_RELEASED       "shop.inventory.released.v1"
#define INV_COMMITTED      "shop.inventory.committed.v1"

/* ---- domain (pure) ------------------------------------------------------------------------ */

typedef struct inv_item {
    char product_id[INV_ID_MAX + 1];
    int64_t qty;
    size_t index; /* position in the request, for error paths ("items[1].product_id") */
} inv_item;

typedef enum inv_status { INV_ST_RESERVED = 0, INV_ST_COMMITTED, INV_ST_RELEASED } inv_status;

typedef struct inv_reservation {
    char order_id[INV_ID_MAX + 1];
    inv_status status;
    char reason[16]; /* released: "requested" or "expired"; else "" */
    int64_t created_ms;
    int64_t expires_ms;
    size_t n;
    inv_item items[INV_ITEMS_MAX]; /* sorted by product_id */
} inv_reservation;

/* What a release or commit request does to a reservation in a given state. */
typedef enum inv_action {
    INV_ACT_APPLY = 0, /* change the state (and the stock) */
    INV_ACT_NOOP,      /* already done: answer with the current state */
    INV_ACT_REFUSE,    /* 409: the other outcome already happened */
    INV_ACT_TOMBSTONE, /* release of an unknown order: remember it as released */
    INV_ACT_UNKNOWN,   /* commit of an unknown order: 404 */
    INV_ACT_RETURN,    /* release of a committed order (cancelled before shipping): the
                          units go back to stock */
} inv_action;

/* Returns 1 when `len` bytes of `s` form an id: 1..INV_ID_MAX bytes of [A-Za-z0-9._:-]. */
int inv_id_valid(const char *s, size_t len);

/* The table row of a required id member `name`, 1..INV_ID_MAX bytes, read into `*out`
 * (borrowed from the document); the characters are checked after with inv_id_valid. */
sl_json_field inv_id_field(const char *name, const char **out);

/* "reserved", "committed", "released". */
const char *inv_status_name(inv_status st);

/* Parses a status name; returns 0 or SL_EINVAL. */
int inv_status_parse(const char *s, inv_status *out) SL_MUST_CHECK;

/*
 * Validates a reservation request body (borrowed): {order_id, items: [{product_id, qty}]},
 * unknown keys rejected, 1..INV_ITEMS_MAX items, qty 1..INV_QTY_MAX, ids per inv_id_valid,
 * no product twice. Copies the order id into `order_id` and the items, sorted by product id
 * (the lock order), into `items` (INV_ITEMS_MAX entries). Returns 0, or SL_EINVAL with every
 * problem in `errs` (paths like "items[1].qty").
 */
int inv_read_reservation(const json_t *body, char order_id[INV_ID_MAX + 1], inv_item *items,
                         size_t *n, sl_json_errors *errs) SL_MUST_CHECK;

/* Sorts items by product id (insertion sort: at most INV_ITEMS_MAX). */
void inv_items_sort(inv_item *items, size_t n);

/* Returns 1 when two sorted item lists name the same products with the same quantities. */
int inv_items_equal(const inv_item *a, size_t na, const inv_item *b, size_t nb);

/* Decisions for release / commit, given whether the reservation exists and its state. */
inv_action inv_release_decide(int exists, inv_status st);
inv_action inv_commit_decide(int exists, inv_status st);

/* Returns 1 when a reservation in state `st` expiring at `expires_ms` is due at `now_ms`. */
int inv_is_expired(inv_status st, int64_t expires_ms, int64_t now_ms);

/* Computes stock + qty into *out; SL_EINVAL for qty outside 1..INV_RESTOCK_MAX, SL_ELIMIT
 * when the result would exceed INV_STOCK_MAX. */
int inv_restock_apply(int64_t stock, int64_t qty, int64_t *out) SL_MUST_CHECK;

/* One audit finding. */
typedef struct inv_violation {
    char check[24];               /* "stock_negative", "reserved_mismatch", ... */
    char subject[INV_ID_MAX + 1]; /* product or order id */
    char detail[160];
} inv_violation;

/*
 * Checks one stock row: stock >= 0, reserved >= 0, reserved <= stock (available >= 0) and
 * reserved == `active_sum` (the quantities of its items in active reservations). Appends
 * findings to out[*n] while *n < cap (more are counted in *dropped). Pure.
 */
void inv_audit_stock_row(const char *product_id, int64_t stock, int64_t reserved,
                         int64_t active_sum, inv_violation *out, size_t cap, size_t *n,
                         size_t *dropped);

/* ---- store (SQL) -------------------------------------------------------------------------- */

typedef struct inv_stock {
    char product_id[INV_ID_MAX + 1];
    int64_t stock;
    int64_t reserved;
} inv_stock;

int inv_store_stock_get(sl_db *db, const char *product_id, inv_stock *out) SL_MUST_CHECK;
int inv_store_stock_create(sl_db *db, const char *product_id, int64_t initial, int64_t now_ms,
                           int *created) SL_MUST_CHECK;
int inv_store_stock_add(sl_db *db, const char *product_id, int64_t qty, int64_t now_ms,
                        int *ok) SL_MUST_CHECK;
int inv_store_try_reserve(sl_db *db, const char *product_id, int64_t qty, int64_t now_ms,
                          int *ok) SL_MUST_CHECK;
int inv_store_unreserve(sl_db *db, const char *product_id, int64_t qty, int consume,
                        int64_t now_ms) SL_MUST_CHECK;
int inv_store_res_get(sl_db *db, const char *order_id, inv_reservation *out) SL_MUST_CHECK;
int inv_store_res_insert(sl_db *db, const inv_reservation *r, int64_t now_ms) SL_MUST_CHECK;
int inv_store_res_set_status(sl_db *db, const char *order_id, inv_status from, inv_status to,
                             const char *reason, int64_t now_ms, int *changed) SL_MUST_CHECK;
int inv_store_due(sl_db *db, int64_t now_ms, char (*ids)[INV_ID_MAX + 1], size_t cap,
                  size_t *n) SL_MUST_CHECK;
int inv_store_anomaly_add(sl_db *db, const char *order_id, const char *kind, const char *event_id,
                          int64_t now_ms) SL_MUST_CHECK;
int inv_store_audit(sl_db *db, inv_violation *out, size_t cap, size_t *n,
                    size_t *dropped) SL_MUST_CHECK;

/* ---- operations (transactions + outbox) --------------------------------------------------- */

typedef enum inv_reserve_outcome {
    INV_RES_CREATED = 0,      /* 201 */
    INV_RES_EXISTING,         /* 200: same order, same items */
    INV_RES_MISMATCH,         /* 409 reservation_mismatch */
    INV_RES_ALREADY_RELEASED, /* 409 already_released (released before it was reserved) */
    INV_RES_INSUFFICIENT,     /* 409 insufficient_stock */
    INV_RES_UNKNOWN_PRODUCT,  /* 422 */
} inv_reserve_outcome;

typedef struct inv_shortage {
    size_t index;
    char product_id[INV_ID_MAX + 1];
    int64_t requested;
    int64_t available;
} inv_shortage;

typedef struct inv_reserve_result {
    inv_reserve_outcome outcome;
    inv_reservation res; /* CREATED / EXISTING / MISMATCH: the stored reservation */
    size_t nshort;       /* INSUFFICIENT / UNKNOWN_PRODUCT: the items at fault */
    inv_shortage short_items[INV_ITEMS_MAX];
} inv_reserve_result;

/*
 * Reserves `n` sorted items for `order_id` all-or-nothing in one transaction (retried on
 * SL_EBUSY/SL_ECONFLICT), writing the reservation, the stock counters and the events
 * reserved + stock_changed. Idempotent per order id. Returns 0 with the outcome in *out, or
 * a database error. `traceparent` may be NULL.
 */
int inv_op_reserve(sl_db *db, const char *order_id, const inv_item *items, size_t n, int64_t now_ms,
                   int64_t ttl_ms, const char *traceparent, inv_reserve_result *out) SL_MUST_CHECK;

/*
 * Release (reason "requested" or "expired") and commit of an order's reservation in one
 * transaction each, with their events. *action tells what happened (inv_release_decide /
 * inv_commit_decide); *out holds the reservation afterwards (for UNKNOWN: only order_id).
 * An expiry only applies to a reservation that is still reserved and due at `now_ms`.
 */
int inv_op_release(sl_db *db, const char *order_id, const char *reason, int64_t now_ms,
                   const char *traceparent, inv_action *action, inv_reservation *out) SL_MUST_CHECK;
int inv_op_commit(sl_db *db, const char *order_id, int64_t now_ms, const char *traceparent,
                  inv_action *action, inv_reservation *out) SL_MUST_CHECK;

/*
 * Restocks a product by `qty`: returns 0 with the row after the change, SL_ENOTFOUND for an
 * unknown product, SL_EINVAL / SL_ELIMIT per inv_restock_apply, or a database error.
 */
int inv_op_restock(sl_db *db, const char *product_id, int64_t qty, int64_t now_ms,
                   const char *traceparent, inv_stock *out) SL_MUST_CHECK;
/* The same inside the caller's open transaction (for Idempotency-Key handling). */
int inv_op_restock_tx(sl_db *tx, const char *product_id, int64_t qty, int64_t now_ms,
                      const char *traceparent, inv_stock *out) SL_MUST_CHECK;

#define INV_CMD_ANSWERED 1 /* the Idempotency-Key's record answered the request; rolled back */

/*
 * POST /stock/{product_id}/restock in one transaction with its Idempotency-Key `k`: claims
 * the key, restocks, stores the answer {product_id, available} under the key. Returns 0 with
 * *status 200 and *body (returns owned) after the commit, or with *status 404 (unknown
 * product) or 409 (over the stock's maximum) and nothing written or remembered;
 * INV_CMD_ANSWERED; or a database error (rolled back).
 */
int inv_cmd_restock(sl_http_req *req, sl_db *db, const sl_req_idem *k, const char *product_id,
                    int64_t qty, int64_t now_ms, int *status, json_t **body) SL_MUST_CHECK;

/*
 * Releases every reservation due at `now_ms` (at most `max` per call), each in its own
 * transaction, with reason "expired". Stores the number released in *released. The
 * `on_expired` callback (may be NULL) runs after each commit (logging).
 */
int inv_op_expire_due(sl_db *db, int64_t now_ms, size_t max, size_t *released,
                      void (*on_expired)(void *data, const inv_reservation *r),
                      void *data) SL_MUST_CHECK;

/* The commit of inv_op_commit inside the caller's open transaction `tx` (an event applier's). */
int inv_op_commit_tx(sl_db *tx, const char *order_id, int64_t now_ms, const char *traceparent,
                     inv_action *action, inv_reservation *out) SL_MUST_CHECK;

/* Writes one event (source INV_SOURCE) into the outbox of the open transaction `tx`; takes
 * ownership of `data_json`, the event's data as JSON text (NULL: SL_ENOMEM). `traceparent` may
 * be NULL. Returns sl_outbox_add's codes. */
int inv_emit(sl_db *tx, const char *type, const char *subject, char *data_json,
             const char *traceparent, int64_t now_ms) SL_MUST_CHECK;

/* The data of stock_changed, {product_id, stock, reserved, available}, and of reserved,
 * committed and released, {order_id, items: [{product_id, qty}], reason?} (reason omitted when
 * NULL), as compact JSON text written directly: the same bytes as inv_stock_json and jansson's
 * compact dump of the same object (domain_test.c compares them). Return malloc'd text (free),
 * or NULL when out of memory. Pure. */
char *inv_stock_event(const inv_stock *s);
char *inv_order_event(const inv_reservation *r, const char *reason);

/* Builds {order_id, status, items, expires_at, reason} (returns owned, json_decref). */
json_t *inv_reservation_json(const inv_reservation *r);

/* Builds {product_id, stock, reserved, available} (returns owned, json_decref). */
json_t *inv_stock_json(const inv_stock *s);

/* Event appliers (events.c; sl_event_apply_cb): run inside the consumer's transaction. */
int inv_apply_product_created(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason,
                              size_t cap);
int inv_apply_order_confirmed(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason,
                              size_t cap);

/* The service definition (inventory.c) and its migrations (generated). */
extern const sl_service_def inventory_service;
extern const sl_migration_set sl_migrations_inventory;

#endif /* SHOAL_SVC_INVENTORY_H */
