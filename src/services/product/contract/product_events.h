/*
 * The product service's events, as it publishes them: what any service may
 * rely on. A service that consumes product events links the library
 * product_contract and includes this header (and product_replica.h for the
 * price replica), never the product service's own files.
 *
 * Each event is a CloudEvent from source "/shoal/product" whose type is also
 * its bus topic, and whose subject is the product id. Payloads (`data`):
 *
 *   shop.product.created.v1
 *     product_id    string, the product's id (a UUIDv7 in canonical text)
 *     sku           string, 1..PRODUCT_SKU_MAX characters of [A-Za-z0-9_-]
 *     name          string, 1..PRODUCT_NAME_MAX code points
 *     description   string, 0..PRODUCT_DESC_MAX code points
 *     category      string, 1..PRODUCT_CATEGORY_MAX characters (lowercase slug)
 *     price         {amount, currency}: amount in minor units 1..PRODUCT_PRICE_MAX,
 *                   currency three upper-case letters (ISO 4217)
 *     initial_stock integer, the stock the product was created with
 *     version       integer >= 1, the version of the product's event stream
 *
 *   shop.product.updated.v1 (name, description or category changed)
 *     the members of created but initial_stock, and `changed`: an array naming
 *     the members that changed ("name", "description", "category"); `price` is
 *     the price at the time of the change
 *
 *   shop.product.price_changed.v1
 *     product_id, old_price and new_price ({amount, currency} as above), version
 *
 * A product's events carry increasing versions. Readers tolerate members
 * they do not know, so a member may be added to a payload without a new
 * type; removing or changing one needs a new type (".v2").
 */
#ifndef SHOAL_PRODUCT_CONTRACT_EVENTS_H
#define SHOAL_PRODUCT_CONTRACT_EVENTS_H

#include <shoal/common.h>
#include <shoal/json.h>

#include <stddef.h>
#include <stdint.h>

/* Event types (= bus topics). */
#define PRODUCT_EV_CREATED       "shop.product.created.v1"
#define PRODUCT_EV_UPDATED       "shop.product.updated.v1"
#define PRODUCT_EV_PRICE_CHANGED "shop.product.price_changed.v1"

/* Bounds of the payload members. */
#define PRODUCT_ID_MAX       64           /* bytes of a product id as readers accept it */
#define PRODUCT_SKU_MAX      64           /* characters (ASCII) */
#define PRODUCT_NAME_MAX     200          /* code points */
#define PRODUCT_DESC_MAX     2000         /* code points */
#define PRODUCT_CATEGORY_MAX 50           /* characters (ASCII slug) */
#define PRODUCT_PRICE_MAX    1000000000LL /* minor units */

/* Who reads an event, which decides the members product_event_decode requires. */
typedef enum product_event_reader {
    /*
     * The product service's own catalogue projection: product_id per product_id_valid,
     * `version` is required, and so are
     * sku, name, description, category and price in created, name, description and
     * category in updated (whose price it ignores), new_price in price_changed.
     */
    PRODUCT_READ_CATALOG,
    /*
     * A replica of names and prices (product_replica.h): only product_id (per
     * product_id_text_valid) is required, besides new_price in price_changed; name and price are
     * read when present, every other member is ignored.
     */
    PRODUCT_READ_REPLICA,
} product_event_reader;

/* A decoded product event; strings borrow from the event data. */
typedef struct product_event_view {
    const char *product_id;
    int64_t version;                                 /* 0 when the reader does not read it */
    const char *sku, *name, *description, *category; /* NULL when absent or not read */
    int has_price;                                   /* price (new_price) was read */
    int64_t price_amount;
    char currency[4];
} product_event_view;

/* 1 when `s` of `len` bytes is a canonical lowercase UUID (8-4-4-4-12 hex): the ids the product
 * service issues, as its catalogue reader requires them. */
int product_id_valid(const char *s, size_t len);

/* 1 when `len` bytes of `s` are 1..PRODUCT_ID_MAX bytes of [A-Za-z0-9._:-]: the product ids a
 * replica accepts (every id product_id_valid accepts is one). */
int product_id_text_valid(const char *s, size_t len);

/*
 * Decodes and checks the data (borrowed) of a product event of `type` for `reader`. Returns
 * 0 with *out filled, or SL_EPARSE for an unknown type or data that can never apply, with
 * "<type>: <field> <problem>" in `reason` (sl_event_refuse; `reason` may be NULL).
 */
int product_event_decode(const char *type, const json_t *data, product_event_reader reader,
                         product_event_view *out, char *reason, size_t reason_cap) SL_MUST_CHECK;

#endif /* SHOAL_PRODUCT_CONTRACT_EVENTS_H */
