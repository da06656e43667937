/*
 * shoal-cart's internal interface: pure rules (domain.c), SQL (store.c), the
 * PUT transaction (commands.c), the appliers of the order events it consumes
 * (events.c) and the service definition with its handlers (cart.c). Product
 * names and prices come from the product contract's price replica
 * (product/contract/product_replica.h). Tests link all of it through the
 * svc_cart library. Functions taking an sl_db run on the thread owning that
 * connection; the pure ones are thread-safe.
 */
#ifndef SHOAL_SVC_CART_H
#define SHOAL_SVC_CART_H

#include "order/contract/order_events.h"
#include "product/contract/product_replica.h"

#include <shoal/common.h>
#include <shoal/db.h>
#include <shoal/json.h>
#include <shoal/service.h>

#include <stddef.h>
#include <stdint.h>

#define CART_ID_MAX       PRODUCT_ID_MAX /* bytes of a product id */
#define CART_QTY_MAX      99             /* units of one product in a cart */
#define CART_ITEMS_MAX    100            /* distinct products in one cart */
#define CART_CURRENCY_DEF "JPY"          /* currency of an empty cart's total */

/* ---- domain (pure) ------------------------------------------------------------------------ */

typedef struct cart_line {
    char product_id[CART_ID_MAX + 1];
    int64_t qty;
    int64_t amount; /* unit price, minor units */
    char currency[4];
} cart_line;

/* Validates a PUT body {qty} (0..CART_QTY_MAX, unknown keys rejected). 0 or SL_EINVAL. */
int cart_read_qty(const json_t *body, int64_t *qty, sl_json_errors *errs) SL_MUST_CHECK;

/*
 * Totals `n` lines: returns 0 with the sum in *amount and the currency (CART_CURRENCY_DEF
 * for an empty cart), SL_ECONFLICT when lines carry different currencies, SL_ELIMIT on
 * overflow (never reached within the limits, checked anyway).
 */
int cart_total(const cart_line *lines, size_t n, int64_t *amount, char currency[4]) SL_MUST_CHECK;

/* Units left in a cart holding `in_cart` after an order of `ordered` units (never < 0). */
int64_t cart_after_order(int64_t in_cart, int64_t ordered);

/* {items: [{product_id, qty, unit_price}], total} (returns owned, json_decref). */
json_t *cart_json(const cart_line *lines, size_t n);

/* ---- store (SQL): 0, SL_ENOTFOUND where stated, or a database error ---------------------- */

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

/* ---- commands (transactions) ------------------------------------------------------------- */

/* Why cart_cmd_set refused. */
typedef enum cart_refusal {
    CART_OK = 0,
    CART_NO_PRODUCT, /* the replica has no price for the product */
    CART_FULL,       /* a new product in a cart of CART_ITEMS_MAX products */
    CART_CURRENCY,   /* the product is priced in another currency than the cart */
} cart_refusal;

/*
 * Sets the quantity of `product_id` in the cart of `user_id` to `qty` (0 removes it) in one
 * transaction on `db` (not in a transaction). Returns 0 with *why CART_OK when done or the
 * refusal in *why (nothing written), or a database error (rolled back).
 */
int cart_cmd_set(sl_db *db, const char *user_id, const char *product_id, int64_t qty,
                 cart_refusal *why) SL_MUST_CHECK;

/* ---- events ------------------------------------------------------------------------------- */

/* Applier (sl_event_apply_cb) of shop.order.confirmed.v1: takes the ordered units out of the
 * user's cart, inside the consumer's transaction. */
int cart_apply_order_confirmed(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason,
                               size_t cap);

/* ---- service ------------------------------------------------------------------------------ */

extern const sl_service_def cart_service;
extern const sl_migration_set sl_migrations_cart;

#endif /* SHOAL_SVC_CART_H */
