/*
 * shoal-order's internal interface: the pure rules (domain.c: the order state
 * machine, request validation, totals, how a participant's answer maps onto a
 * saga reply), the SQL (store.c), the event appliers and emission (events.c),
 * the transactions of the HTTP API (commands.c), the checkout and cancel
 * sagas with their executor (saga.c) and the service definition with its
 * handlers (order.c). Tests link all of it through the svc_order library;
 * nothing here is part of libshoal. docs/services/order.md documents it.
 *
 * Threading: functions taking an sl_db run on the thread owning that
 * connection; the pure functions are thread-safe.
 */
#ifndef SHOAL_SVC_ORDER_H
#define SHOAL_SVC_ORDER_H

#include "admission.h"
#include "order/contract/order_events.h"
#include "product/contract/product_replica.h"

#include <shoal/common.h>
#include <shoal/db.h>
#include <shoal/identity.h>
#include <shoal/json.h>
#include <shoal/saga.h>
#include <shoal/service.h>

#include <stddef.h>
#include <stdint.h>

/* ---- limits (docs/services/order.md) ------------------------------------------------------ */

/* The bounds the order's events carry are the contract's (contract/order_events.h). */
#define ORDER_ID_MAX     ORDER_EV_ID_MAX     /* bytes of an order, product or user id */
#define ORDER_ITEMS_MAX  ORDER_EV_ITEMS_MAX  /* items of one order */
#define ORDER_QTY_MAX    ORDER_EV_QTY_MAX    /* units of one item */
#define ORDER_NOTE_MAX   500                 /* characters of a customer's cancel reason */
#define ORDER_REASON_MAX ORDER_EV_REASON_MAX /* bytes of a cancel_reason, with NUL */
#define ORDER_SOURCE     ORDER_EV_SOURCE     /* the events: contract/order_events.h */

/* Saga ids are "<prefix><order id>" (the engine allows [A-Za-z0-9_.-], 64 bytes). */
#define ORDER_SAGA_CHECKOUT "checkout."
#define ORDER_SAGA_CANCEL   "cancel."

/* Shipping address field bounds, in characters. */
#define ORDER_ADDR_NAME_MAX    200
#define ORDER_ADDR_LINE_MAX    200
#define ORDER_ADDR_CITY_MAX    100
#define ORDER_ADDR_POSTAL_MAX  20
#define ORDER_ADDR_COUNTRY_MAX 64

/* ---- domain: the order state machine (pure) ---------------------------------------------- */

#define ORDER_STATUS_MAP(X)                                                                        \
    X(PENDING, "pending")                                                                          \
    X(CONFIRMED, "confirmed")                                                                      \
    X(SHIPPED, "shipped")                                                                          \
    X(DELIVERED, "delivered")                                                                      \
    X(CANCELLED, "cancelled")

typedef enum order_status {
#define ORDER_STATUS_ENUM_(name, text) ORDER_##name,
    ORDER_STATUS_MAP(ORDER_STATUS_ENUM_)
#undef ORDER_STATUS_ENUM_
        ORDER_STATUS_COUNT
} order_status;

/* What happens to an order. */
#define ORDER_ACTION_MAP(X)                                                                        \
    X(CONFIRM, "confirm")                 /* the checkout saga took the payment */                 \
    X(CHECKOUT_FAIL, "checkout_fail")     /* the checkout saga was refused and compensated */      \
    X(CUSTOMER_CANCEL, "customer_cancel") /* the customer (or an admin) cancels */                 \
    X(SHIP, "ship")                                                                                \
    X(DELIVER, "deliver")

typedef enum order_action {
#define ORDER_ACTION_ENUM_(name, text) ORDER_ACT_##name,
    ORDER_ACTION_MAP(ORDER_ACTION_ENUM_)
#undef ORDER_ACTION_ENUM_
        ORDER_ACTION_COUNT
} order_action;

/* Static printable names, or "unknown". */
const char *order_status_name(order_status s);
const char *order_action_name(order_action a);
/* Parses a status name (exact, lower case). Returns 0 or SL_EINVAL. */
int order_status_parse(const char *s, size_t len, order_status *out) SL_MUST_CHECK;

/*
 * The state machine. Stores the status after `a` in *next and returns 0 when
 * `a` is legal in `from`; otherwise returns SL_ESTATE (illegal: the API
 * answers 409) or, for a customer cancel of a pending order whose checkout
 * is still running, SL_EAGAIN (the API answers 409 "checkout in progress,
 * retry"; see docs/services/order.md). Legal:
 *   pending   --confirm--> confirmed      pending   --checkout_fail--> cancelled
 *   confirmed --customer_cancel--> cancelled
 *   confirmed --ship--> shipped           shipped   --deliver--> delivered
 */
int order_transition(order_status from, order_action a, order_status *next) SL_MUST_CHECK;

/* Ordering of statuses along an order's life, for the read model's monotonic updates:
 * pending 0 < confirmed 1 < shipped 2 < delivered 3; cancelled 4 (only reachable from pending
 * and confirmed, so it never competes with shipped or delivered). */
int order_status_rank(order_status s);

/* ---- domain: requests (pure) ---------------------------------------------------------------- */

/* 1 when `len` bytes of `s` are 1..ORDER_ID_MAX bytes of [A-Za-z0-9._:-] (order_event_id_valid). */
int order_id_valid(const char *s, size_t len);

typedef struct order_item {
    char product_id[ORDER_ID_MAX + 1];
    int64_t qty;
    int64_t unit_price; /* minor units; filled from the replica */
    char currency[4];
} order_item;

typedef struct order_address {
    char name[ORDER_ADDR_NAME_MAX * 4 + 1];
    char line1[ORDER_ADDR_LINE_MAX * 4 + 1];
    char city[ORDER_ADDR_CITY_MAX * 4 + 1];
    char postal_code[ORDER_ADDR_POSTAL_MAX * 4 + 1];
    char country[ORDER_ADDR_COUNTRY_MAX * 4 + 1];
} order_address;

typedef struct order_request {
    size_t n;
    order_item items[ORDER_ITEMS_MAX];
    order_address addr;
} order_request;

/*
 * Validates a POST /orders body (borrowed): {items: [{product_id, qty}] 1..50 items, qty
 * 1..99, ids per order_id_valid, no product twice; shipping_address {name, line1, city,
 * postal_code, country}, each a non-empty string within its bound without control
 * characters}; unknown keys rejected. Fills *out (prices left 0). Returns 0 or SL_EINVAL
 * with every problem in `errs` ("items[1].qty", "shipping_address.city").
 */
int order_read_request(const json_t *body, order_request *out, sl_json_errors *errs) SL_MUST_CHECK;

/*
 * Totals `n` priced items: 0 with the sum of qty × unit_price in *total and the common
 * currency; SL_ECONFLICT when items carry different currencies (the index of the first
 * offending item in *bad); SL_ELIMIT on int64 overflow. Pure.
 */
int order_total(const order_item *items, size_t n, int64_t *total, char currency[4],
                size_t *bad) SL_MUST_CHECK;

/* ---- domain: saga replies (pure) ------------------------------------------------------------ */

/* Which participant call a step makes. */
typedef enum order_call {
    ORDER_CALL_RESERVE, /* inventory POST /reservations */
    ORDER_CALL_RELEASE, /* inventory POST /reservations/{id}/release */
    ORDER_CALL_CHARGE,  /* payment POST /charges */
    ORDER_CALL_REFUND,  /* payment POST /charges/{id}/refund */
} order_call;

/*
 * Classifies a participant's HTTP answer for the saga engine. `status` is the
 * HTTP status; `reason` the problem's `reason` member (NULL when absent);
 * `res_status` the `status` member of a 2xx reservation body (NULL when
 * absent). Returns SL_SAGA_REPLY_OK, _REFUSED (with the order's cancel reason
 * written to `cancel_reason`, ORDER_REASON_MAX bytes: insufficient_stock,
 * reservation_failed, insufficient_funds, payment_failed) or _FAILED (transient:
 * 5xx, 408, 429, and 401/403/404/405, which are configuration faults an
 * operator fixes while the saga retries). A release answered 409 `already_committed`
 * is OK with "already_committed" in `cancel_reason` (nothing left to release; the
 * caller logs it). Pure. See docs/services/order.md.
 */
sl_saga_reply_kind order_classify(order_call call, int status, const char *reason,
                                  const char *res_status, char *cancel_reason);

/* Maps the saga's refusal text (what order_classify wrote, or the engine's "timeout" for the
 * deadline and "aborted" for an admin abort) to a cancel reason: its part before ':' when it is
 * a known reason, else "payment_failed". Writes ORDER_REASON_MAX bytes. */
void order_cancel_reason(const char *saga_reason, char *out);

/* ---- store (SQL): 0, SL_ENOTFOUND where stated, or a database error ---------------------- */

typedef struct order_row {
    char order_id[ORDER_ID_MAX + 1];
    char user_id[ORDER_ID_MAX + 1];
    order_status status;
    int64_t total;
    char currency[4];
    order_address addr;
    char cancel_reason[ORDER_REASON_MAX];
    int64_t created_ms, updated_ms;
    size_t n;
    order_item items[ORDER_ITEMS_MAX];
} order_row;

/* Product names and prices: the price replica of product/contract/product_replica.h. */
int order_store_insert(sl_db *tx, const order_row *o) SL_MUST_CHECK;
/* The order with its items; SL_ENOTFOUND. */
int order_store_get(sl_db *db, const char *order_id, order_row *out) SL_MUST_CHECK;
/* Moves the order from `from` to `to` (compare-and-set); *changed = 0 when it was not in
 * `from`. `reason`/`note` NULL keep the stored values. */
int order_store_set_status(sl_db *tx, const char *order_id, order_status from, order_status to,
                           const char *reason, const char *note, int64_t now_ms,
                           int *changed) SL_MUST_CHECK;

/* One row of the read model. */
typedef struct order_hist_row {
    char order_id[ORDER_ID_MAX + 1];
    char user_id[ORDER_ID_MAX + 1];
    char status[16];
    char *items_json; /* owned by the listing (order_hist_list_free) */
    int64_t total;
    char currency[4];
    char cancel_reason[ORDER_REASON_MAX];
    int64_t created_ms, updated_ms;
} order_hist_row;

/*
 * The read model's upsert, monotonic in status rank: creates the row when absent; otherwise
 * sets items/total when `items_json` is given and the row has none, and the status (with
 * `reason`) only when `rank` is higher than the stored one. Idempotent.
 */
int order_store_hist_put(sl_db *tx, const char *order_id, const char *user_id, order_status st,
                         const char *items_json, int has_total, int64_t total, const char *currency,
                         const char *reason, int64_t at_ms) SL_MUST_CHECK;
/* A keyset cursor of the history: the order served last (newest first). */
typedef struct order_hist_after {
    int64_t created_ms;
    char order_id[ORDER_ID_MAX + 1];
} order_hist_after;

/* A page of a user's history, newest first; status NULL for all; with `after` (may be NULL)
 * the page of orders older than it (then `page` is not used). */
int order_store_hist_list(sl_db *db, const char *user_id, const char *status, int64_t page,
                          int64_t per_page, const order_hist_after *after, order_hist_row *rows,
                          size_t *n, int64_t *total) SL_MUST_CHECK;
void order_hist_rows_free(order_hist_row *rows, size_t n);

/* ---- events (events.c) -------------------------------------------------------------------- */

/*
 * Emits one of the order's events for `o` (its current status decides the type's data:
 * created/confirmed carry the items and total; cancelled the reason; shipped/delivered only
 * ids) into the outbox within `tx`, and applies it to the read model in the same transaction
 * (read-your-writes; the same event arriving from the bus later is a no-op). `w` and `req`
 * may be NULL (then the outbox is written directly). Returns 0 or an error.
 */
int order_emit(sl_svc_worker *w, sl_http_req *req, sl_db *tx, const char *type,
               const order_row *o) SL_MUST_CHECK;
/* order_emit from a saga step: the envelope carries `trace` (the step's span; may be NULL). */
int order_emit_trace(sl_svc_worker *w, const sl_trace_ctx *trace, sl_db *tx, const char *type,
                     const order_row *o) SL_MUST_CHECK;

/* Applies an order event's data to the read model (product names from the replica). */
int order_hist_apply(sl_db *tx, const char *type, const json_t *data, int64_t at_ms, char *reason,
                     size_t cap) SL_MUST_CHECK;

/* sl_event_apply_cb applier of the read model from an order event (order_hist_apply with the
 * event's time). The service does not subscribe it: every order event is applied in the
 * transaction that emits it (order_emit). It is the applier for an order event that arrives from
 * outside that transaction, in any order (the read-model tests drive it). SL_EPARSE (dead
 * letter) for data that can never apply. */
int order_apply_order_event(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap);

/* ---- JSON ---------------------------------------------------------------------------------- */

/* The API's order object (returns owned, json_decref; NULL when out of memory). */
json_t *order_json(const order_row *o);

/* ---- sagas (saga.c) ------------------------------------------------------------------------ */

/* Saga timing, from config `order.saga.*` (docs/services/order.md). */
typedef struct order_saga_config {
    int64_t step_timeout_ms;
    int64_t backoff_base_ms;
    int64_t backoff_cap_ms;
    int64_t stuck_after_ms; /* 0 (default): transient failures never park a saga */
    uint32_t max_attempts;  /* 0 (default): no bound */
    int64_t deadline_ms;    /* checkout: the charge must be passed by then, else "timeout" */
} order_saga_config;

/* The two saga definitions, built once from the configuration (process-wide, read-only). */
typedef struct order_sagas {
    sl_saga_step_def checkout_steps[4];
    sl_saga_step_def cancel_steps[3];
    sl_saga_def checkout;
    sl_saga_def cancel;
} order_sagas;

/* Fills `s` from `c`. Returns 0 or SL_ECONFIG when a definition is invalid. */
int order_sagas_init(order_sagas *s, const order_saga_config *c) SL_MUST_CHECK;

/* Writes "<prefix><order id>" into out; SL_ELIMIT when it does not fit (never for the
 * order service's own UUIDv7 order ids). */
int order_saga_id(char out[SL_SAGA_ID_MAX + 1], const char *prefix,
                  const char *order_id) SL_MUST_CHECK;

/* The definition a saga id belongs to (by prefix), or NULL. */
const sl_saga_def *order_saga_def_of(const order_sagas *s, const char *saga_id);

/* Saga inputs: {order_id, user_id, items: [{product_id, qty}], amount: {amount, currency}},
 * plus the request's `traceparent` (from `trace`) and, when `req` carried a valid one beside a
 * valid `traceparent`, its `tracestate` (W3C Trace Context), so the steps' calls carry both.
 * `req` may be NULL. Returns owned text (free()). */
char *order_saga_input(const order_row *o, const sl_trace_ctx *trace, const sl_http_req *req);

typedef struct order_worker order_worker;

/* Which checkout/cancel steps call inventory and payment (bit i = step i), for
 * sl_saga_driver_wake when a participant answers again. */
#define ORDER_CHECKOUT_INVENTORY_STEPS (1u << 1) /* reserve (and its release) */
#define ORDER_CHECKOUT_PAYMENT_STEPS   (1u << 2) /* charge (and its refund) */
#define ORDER_CANCEL_INVENTORY_STEPS   (1u << 2) /* release */
#define ORDER_CANCEL_PAYMENT_STEPS     (1u << 1) /* refund */

/* Per-worker saga machinery (upstreams, drivers, timers); created in worker_init. */
int order_worker_new(sl_svc_worker *w, order_worker **out) SL_MUST_CHECK;
/* Stops it: drivers freed, calls cancelled; memory released once the loop closed handles. */
void order_worker_close(order_worker *ow);
sl_saga_driver *order_worker_driver(order_worker *ow, const sl_saga_def *def);

/* ---- service ------------------------------------------------------------------------------- */

/* Process-wide settings (read-only after init). */
typedef struct order_config {
    order_sagas sagas;
    order_saga_config saga;
    size_t max_active;        /* sagas one driver tracks (order.saga.max_active) */
    int64_t max_backlog;      /* admission: running sagas of the process before 503 */
    order_limit_config limit; /* adaptive admission (admission.h); max_limit = max_backlog */
    int adaptive;             /* order.admission.adaptive: the limit follows saga latency */
    struct order_admission *admission; /* the process's limit and its mutex (saga.c) */
    int64_t sweep_interval_ms;         /* how often worker 0 sweeps for undriven sagas */
    int64_t sweep_grace_ms;            /* how overdue a saga must be for the sweep to take it */
    sl_saga_registry *registry;        /* process-wide claims of tracked sagas (the backlog) */
    char inventory_url[256];
    char payment_url[256];
    int64_t breaker_recovery_ms;
    int have_key;
    sl_identity_keyring keys; /* signs the saga's calls (edges order→inventory, order→payment) */
} order_config;

extern const sl_service_def order_service;
extern const sl_migration_set sl_migrations_order;

/* The process-wide settings of the service `w` belongs to (order.c). */
const order_config *order_config_of(sl_svc_worker *w);

/* Admission control: 1 when the process's backlog of running sagas is at its limit (the new
 * order must be refused with 503): `max_backlog`, or the adaptive limit below it when
 * order.admission.adaptive is on. Counts the shed request in the metric. */
int order_overloaded(sl_svc_worker *w);

/* The process's admission state (saga.c): made in init, freed in fini. */
int order_admission_new(order_config *c) SL_MUST_CHECK;
void order_admission_free(order_config *c);

/* Answers an idempotent replay; a created order (202) gets its Location again (order.c). */
void order_replay(sl_http_req *req, int status, const char *body, size_t len);

/* ---- commands (commands.c): the transactions of the HTTP API ----------------------------- */

enum {
    ORDER_CMD_ANSWERED = 1, /* the Idempotency-Key's record answered the request; rolled back */
    ORDER_CMD_REFUSED = 2,  /* the state machine refused the change; rolled back */
};

/*
 * The transaction of a new order `o` (id, owner, status pending, items and address set):
 * prices the items from the replica, stores the order with its created event and its
 * checkout saga, and the answer {order_id, status} (*answer, returns owned) under the
 * Idempotency-Key `k`. Returns 0 (committed), ORDER_CMD_ANSWERED, SL_ENOTFOUND with
 * `errs` naming the items that cannot be ordered, or a database error (rolled back).
 */
int order_cmd_create(sl_svc_worker *w, sl_http_req *req, order_row *o, const sl_req_idem *k,
                     const char *canon, json_t **answer, sl_json_errors *errs) SL_MUST_CHECK;

/* A change of an order's status requested over the API. */
typedef struct order_change {
    order_action action;
    const char *event;  /* the event emitted with the change */
    const char *reason; /* cancel_reason, or NULL */
    const char *note;   /* the customer's text, or NULL */
    int saga;           /* 1: start the cancel saga */
} order_change;

/*
 * Applies `c` to the order o->order_id in one transaction: re-reads it into *o, runs the
 * state machine, writes the status, the event and (c->saga) the cancel saga, and the answer
 * (the order after the change) under `k`. Returns 0 (committed; *o is the changed order),
 * ORDER_CMD_ANSWERED, ORDER_CMD_REFUSED with order_transition's code in *refusal and *o as
 * stored, SL_ENOTFOUND, or a database error (rolled back).
 */
int order_cmd_change(sl_svc_worker *w, sl_http_req *req, order_row *o, const order_change *c,
                     const sl_req_idem *k, const char *canon, int *refusal) SL_MUST_CHECK;

#endif /* SHOAL_SVC_ORDER_H */
