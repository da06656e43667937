/*
 * shoal-cart's internal interface: pure rules (domain.c), SQL (store.c),
 * the service definition and event appliers (cart.c). Tests link all of it
 * through the svc_cart library. Functions taking an sl_db run on the thread
 * owning that connection; the pure ones are thread-safe.
 */
#ifndef SHOAL_SVC_CART_H
#define SHOAL_SVC_CART_H

#include <shoal/common.h>
#include <shoal/db.h>
#include <shoal/json.h>
#include <shoal/service.h>

#include <stddef.h>
#include <stdint.h>

#define CART_ID_MAX       64              /* bytes of a product or user id */
#define CART_QTY_MAX      99              /* units of one product in a cart */
#define CART_ITEMS_MAX    100             /* distinct products in one cart */
#define CART_NAME_MAX     200             /* characters of a product name */
#define CART_AMOUNT_MAX   1000000000000LL /* minor units of one unit price */
#define CART_ORDER_MAX    1000            /* items read from one order.confirmed */
#define CART_CURRENCY_DEF "JPY"           /* currency of an empty cart's total */

/* ---- domain (pure) ------------------------------------------------------------------------ */

typedef struct cart_line {
    char product_id[CART_ID_MAX + 1];
    int64_t qty;
    int64_t amount; /* unit price, minor units */
    char currency[4];
} cart_line;

/* 1 when `len` bytes of `s` are 1..CART_ID_MAX bytes of [A-Za-z0-9._:-]. */
int cart_id_valid(const char *s, size_t len);

/* 1 when `s` is an ISO 4217-shaped code: three upper-case ASCII letters. */
int cart_currency_valid(const char *s);

/* Validates a PUT body {qty} (0..CART_QTY_MAX, unknown keys rejected). 0 or SL_EINVAL. */
int cart_read_qty(const json_t *body, int64_t *qty, sl_json_errors *errs) SL_MUST_CHECK;

/*
 * Validates a money object {amount, currency} at `field` (borrowed): amount
 * 0..CART_AMOUNT_MAX, currency per cart_currency_valid. 0 or SL_EINVAL (errors in errs).
 */
int cart_read_money(const json_t *v, const char *field, int64_t *amount, char currency[4],
                    sl_json_errors *errs) SL_MUST_CHECK;

/*
 * Totals `n` lines: returns 0 with the sum in *amount and the currency (CART_CURRENCY_DEF
 * for an empty cart), SL_ECONFLICT when lines carry different currencies, SL_ELIMIT on
 * overflow (never reached within the limits, checked anyway).
 */
int cart_total(const cart_line *lines, size_t n, int64_t *amount, char currency[4]) SL_MUST_CHECK;

/* Units left in a cart holding `in_cart` after an order of `ordered` units (never < 0). */
int64_t cart_after_order(int64_t in_cart, int64_t ordered);

/*
 * Whether an event at `event_ms` (< 0: unknown time) may overwrite a value written by an
 * event at `stored_ms`: yes unless it is known to be older.
 */
int cart_event_newer(int64_t stored_ms, int64_t event_ms);

/* ---- store (SQL): 0, SL_ENOTFOUND where stated, or a database error ---------------------- */

typedef struct cart_price {
    int has_price;
    int64_t amount;
    char currency[4];
    int64_t price_ms;
    int64_t name_ms;
} cart_price;

/* The replica row of a product; SL_ENOTFOUND when the cart never heard of it. */
int cart_store_price_get(sl_db *db, const char *product_id, cart_price *out) SL_MUST_CHECK;
/* Writes the replica row: `name` NULL keeps the name; has_price 0 keeps the price. */
int cart_store_price_put(sl_db *db, const char *product_id, int exists, const char *name,
                         int64_t name_ms, int has_price, int64_t amount, const char *currency,
                         int64_t price_ms) SL_MUST_CHECK;
int cart_store_item_set(sl_db *db, const char *user_id, const char *product_id, int64_t qty,
                        int64_t now_ms) SL_MUST_CHECK;
int cart_store_item_delete(sl_db *db, const char *user_id, const char *product_id,
                           int *deleted) SL_MUST_CHECK;
/* The quantity of one item; SL_ENOTFOUND when not in the cart. */
int cart_store_item_qty(sl_db *db, const char *user_id, const char *product_id,
                        int64_t *qty) SL_MUST_CHECK;
/* The user's lines with their current replica prices, by product id. */
int cart_store_lines(sl_db *db, const char *user_id, cart_line *lines, size_t cap,
                     size_t *n) SL_MUST_CHECK;

/* ---- service ------------------------------------------------------------------------------ */

/* {items: [{product_id, qty, unit_price}], total} (returns owned, json_decref). */
json_t *cart_json(const cart_line *lines, size_t n);

/* Event appliers (sl_event_apply_cb), inside the consumer's transaction. */
int cart_apply_product(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap);
int cart_apply_price_changed(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap);
int cart_apply_order_confirmed(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason,
                               size_t cap);

extern const sl_service_def cart_service;
extern const sl_migration_set sl_migrations_cart;

#endif /* SHOAL_SVC_CART_H */
