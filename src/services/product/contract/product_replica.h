/*
 * The price replica: a consumer's own copy of product names and prices, kept
 * current by the product events (product_events.h), so that it never calls
 * the product service. The cart prices its lines from it, the order service
 * prices new orders and names the items of its order history.
 *
 * A consumer
 *   - subscribes product_replica_apply to the three product event topics,
 *   - has the table applied by the migrations of component "product_contract"
 *     (sl_migrations_product_contract: table product_prices, one row per
 *     product: product_id, name ('' until known), price and currency (NULL
 *     until known), price_ms and name_ms (event times of the values held)),
 *   - reads it with product_replica_get, or joins product_prices in its own SQL.
 *
 * Functions taking an sl_db run on the thread that owns that connection.
 */
#ifndef SHOAL_PRODUCT_CONTRACT_REPLICA_H
#define SHOAL_PRODUCT_CONTRACT_REPLICA_H

#include "product_events.h"

#include <shoal/db.h>

typedef struct sl_bus_msg sl_bus_msg;

/* One product as the replica holds it. */
typedef struct product_replica_row {
    int has_price;  /* 0 until an event carried a price */
    int64_t amount; /* minor units */
    char currency[4];
    char name[PRODUCT_NAME_MAX * 4 + 1]; /* "" until an event carried a name */
    int64_t price_ms, name_ms;           /* event times of the values held */
} product_replica_row;

/* Reads the row of `product_id` into *out. Returns 0, SL_ENOTFOUND when no event about the
 * product has arrived yet, or a database error. */
int product_replica_get(sl_db *db, const char *product_id, product_replica_row *out) SL_MUST_CHECK;

/*
 * The applier of the three product events (an sl_event_apply_cb: `svc` is unused), inside
 * the consumer's transaction `tx`: created and updated set the name and the price they
 * carry, price_changed the new price; each value only when the event is not older than the
 * one held (by the event's `time`; an event without a readable time always applies).
 * Returns 0, SL_EPARSE with a reason for an event that can never apply (product_event_decode
 * with PRODUCT_READ_REPLICA), or a database error.
 */
int product_replica_apply(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason,
                          size_t reason_cap);

/* Whether an event at `event_ms` (< 0: unknown time) may overwrite a value written by an event
 * at `stored_ms`: yes unless it is known to be older. Pure. */
int product_replica_newer(int64_t stored_ms, int64_t event_ms);

/* The replica's table (embedded from contract/migrations/). */
extern const sl_migration_set sl_migrations_product_contract;

#endif /* SHOAL_PRODUCT_CONTRACT_REPLICA_H */
