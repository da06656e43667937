/*
 * shoal-product internals: the catalogue's types and the functions its files
 * share. The service is CQRS, commands and queries on separate models:
 *
 *   command side  commands.c   products table (write model) + one event per
 *                              change, written in the same transaction to the
 *                              event store (stream product-<id>) and the outbox
 *   query side    projection.c catalog_view (+ full-text index), fed only by
 *                              events: the product events through a catch-up
 *                              subscription of the event store, inventory's
 *                              stock_changed through the bus (product_apply_event)
 *   pure rules    domain.c     validation, query parsing, event data, JSON shapes
 *   SQL           store.c      every statement of the service
 *   demo data     demo.c       the deterministic demo catalogue
 *
 * Nothing here is thread-safe beyond "one sl_db per thread": every function
 * runs on the caller's thread over the caller's connection.
 */
#ifndef SHOAL_SVC_PRODUCT_H
#define SHOAL_SVC_PRODUCT_H

#include "product/contract/product_events.h"

#include <shoal/common.h>
#include <shoal/db.h>
#include <shoal/json.h>

#include <stddef.h>
#include <stdint.h>

typedef struct sl_bus_msg sl_bus_msg;
typedef struct sl_clock sl_clock;

/* ---- limits (docs/services/product.md "Invariants") ------------------------------------- */

/* PRODUCT_SKU_MAX, _NAME_MAX, _DESC_MAX, _CATEGORY_MAX, _PRICE_MAX: contract/product_events.h */
#define PRODUCT_STOCK_MAX     1000000LL
#define PRODUCT_Q_MAX         200 /* code points of the search text */
#define PRODUCT_Q_TERMS_MAX   16  /* search terms kept */
#define PRODUCT_IDS_MAX       100 /* ids in one batch read */
#define PRODUCT_CURRENCY      "JPY"
#define PRODUCT_STREAM_PREFIX "product-"

/* Event types (= bus topics): the product's own in contract/product_events.h. */
#define INVENTORY_EV_STOCK "shop.inventory.stock_changed.v1"

/* The catch-up subscriber name of the catalogue projection. */
#define PRODUCT_PROJECTION "product.catalog_view"

/* A product of the write model (storage for strings; UTF-8 up to 4 bytes a code point). */
typedef struct product {
    char id[SL_DB_UUID_STR];
    char sku[PRODUCT_SKU_MAX + 1];
    char name[PRODUCT_NAME_MAX * 4 + 1];
    char description[PRODUCT_DESC_MAX * 4 + 1];
    char category[PRODUCT_CATEGORY_MAX + 1];
    int64_t price_amount;
    char currency[4];
    int64_t version; /* = the version of its event stream */
} product;

/* A product as the read model holds it; pointers borrowed for the duration of a callback. */
typedef struct product_row {
    const char *product_id;
    const char *sku;
    const char *name;
    const char *description;
    const char *category;
    int64_t price_amount;
    const char *currency;
    int64_t available;
    int64_t version;
} product_row;

/* ---- domain.c: pure rules ------------------------------------------------------------------ */

/* A validated create command. Strings borrow from the JSON body it was read from. */
typedef struct product_input {
    const char *sku;
    const char *name;
    const char *description;
    const char *category;
    int64_t price_amount;
    const char *currency;
    int64_t stock;
} product_input;

/* A validated update command: a NULL string / has_price 0 means "leave unchanged". */
typedef struct product_patch {
    const char *name;
    const char *description;
    const char *category;
    int has_price;
    int64_t price_amount;
    const char *currency;
} product_patch;

/* 1 when `s` (NUL-terminated) is 1..64 characters of [A-Za-z0-9_-]. */
int product_sku_valid(const char *s);
/* 1 when `s` is a 1..50 character lowercase slug: [a-z0-9]+ joined by single '-'. */
int product_category_valid(const char *s, size_t len);

/*
 * Validates a create body ({sku, name, description?, category, price, stock?}); price is
 * {amount, currency} or a bare integer amount (currency JPY). Fills *in (borrowing from
 * `body`) and returns 0, or SL_EINVAL with every bad field in `errs`.
 */
int product_read_create(const json_t *body, product_input *in, sl_json_errors *errs);

/* Validates a patch body ({name?, description?, category?, price?}, at least one). Returns 0
 * or SL_EINVAL with the errors in `errs`. */
int product_read_patch(const json_t *body, product_patch *p, sl_json_errors *errs);

/* Applies `patch` to `p` in place; returns a mask of PRODUCT_CHANGED_* for what really
 * changed (0: nothing). */
enum {
    PRODUCT_CHANGED_NAME = 1u << 0,
    PRODUCT_CHANGED_DESCRIPTION = 1u << 1,
    PRODUCT_CHANGED_CATEGORY = 1u << 2,
    PRODUCT_CHANGED_PRICE = 1u << 3,
};
unsigned product_apply_patch(product *p, const product_patch *patch);

/* Sort orders of the list. */
typedef enum product_sort {
    PRODUCT_SORT_DEFAULT = 0, /* relevance with q, else name */
    PRODUCT_SORT_PRICE,
    PRODUCT_SORT_PRICE_DESC,
    PRODUCT_SORT_NAME,
} product_sort;

#define PRODUCT_FTS_MAX (PRODUCT_Q_MAX * 4 + PRODUCT_Q_TERMS_MAX * 3 + 1)

/* A parsed list query (GET /products). */
typedef struct product_query {
    int has_q;
    size_t nterms;               /* 0 with has_q: the text had no searchable term */
    char fts[PRODUCT_FTS_MAX];   /* FTS5 expression: "t1" "t2" (each term quoted) */
    char plain[PRODUCT_FTS_MAX]; /* the terms joined by spaces (PostgreSQL plainto_tsquery) */
    char category[PRODUCT_CATEGORY_MAX + 1]; /* "" = any */
    int64_t min_price;                       /* -1 = none */
    int64_t max_price;                       /* -1 = none */
    product_sort sort;
    int64_t page, per_page;
    /* A keyset cursor (cursor.h): read the rows after (after_name or after_price, after_id) in
     * the sort order; with relevance order, after_offset rows are skipped instead. */
    int has_after;
    char after_name[PRODUCT_NAME_MAX * 4 + 1];
    int64_t after_price, after_offset;
    char after_id[SL_DB_UUID_STR];
    size_t nids; /* > 0: a batch read by id (no other filter allowed) */
    char ids[PRODUCT_IDS_MAX][SL_DB_UUID_STR];
} product_query;

/*
 * Parses the raw query string (percent-encoded, without '?') into *q, except page and
 * per_page (the caller fills them through sl_req_page). Returns 0, or SL_EINVAL with every
 * bad parameter named in `errs`.
 */
int product_query_parse(sl_slice query, product_query *q, sl_json_errors *errs);

/*
 * Turns free text into search terms: runs of ASCII letters and digits or of non-ASCII
 * characters, each at most 64 bytes, at most PRODUCT_Q_TERMS_MAX of them; everything else
 * separates terms, so no user input can become an FTS5 operator. Writes the FTS5 expression
 * (each term double-quoted) to `fts` and the bare terms to `plain` (both PRODUCT_FTS_MAX bytes)
 * and returns the number of terms.
 */
size_t product_search_terms(const char *text, size_t len, char *fts, char *plain);

/* JSON shapes. Each returns a new reference (json_decref) or NULL when out of memory. */
json_t *product_row_json(const product_row *r);            /* the public product */
json_t *product_json(const product *p, int64_t available); /* the same from the write model */
json_t *product_event_created(const product *p, int64_t initial_stock);
json_t *product_event_updated(const product *p, unsigned changed);
json_t *product_event_price_changed(const product *p, int64_t old_amount, const char *old_currency);

/* The product events are decoded by product_event_decode (contract/product_events.h). */

/* inventory's stock_changed data {product_id, stock, reserved, available}. */
typedef struct stock_event {
    const char *product_id;
    int64_t stock, reserved, available;
} stock_event;
int product_stock_decode(const json_t *data, stock_event *out, char *reason, size_t reason_cap);

/* ---- demo.c ------------------------------------------------------------------------------ */

/* The number of demo products, and the i-th (static storage). Deterministic. */
size_t product_demo_count(void);
void product_demo_get(size_t i, product_input *out);

/* ---- store.c: SQL ------------------------------------------------------------------------ */

/* Write model. */
int store_product_insert(sl_db *tx, const product *p, int64_t now_ms) SL_MUST_CHECK;
int store_product_get(sl_db *db, const char *id, product *out) SL_MUST_CHECK; /* SL_ENOTFOUND */
int store_product_update(sl_db *tx, const product *p, int64_t old_version,
                         int64_t now_ms) SL_MUST_CHECK; /* SL_ECONFLICT: version moved */
int store_product_count(sl_db *db, int64_t *n) SL_MUST_CHECK;
/* Local record of inventory's latest stock per product. */
int store_stock_put(sl_db *tx, const stock_event *s, int64_t now_ms) SL_MUST_CHECK;
int store_stock_available(sl_db *db, const char *product_id, int64_t *available) SL_MUST_CHECK;

/* Read model. */
/* Applies a decoded product event of `type` to its row unless the row's version is already at
 * or past ev->version (created: insert unless present; updated: texts; price_changed: price).
 * *applied gets 1 when the row changed. */
int store_view_apply(sl_db *tx, const char *type, const product_event_view *ev,
                     int *applied) SL_MUST_CHECK;
int store_view_set_available(sl_db *tx, const char *product_id, int64_t available) SL_MUST_CHECK;
int store_view_clear(sl_db *tx) SL_MUST_CHECK;
typedef int (*product_row_cb)(void *data, const product_row *r);
int store_view_get(sl_db *db, const char *id, product_row_cb cb, void *data) SL_MUST_CHECK;
/* Lists one page (or the batch of q->nids) in order and stores the total count. */
int store_view_list(sl_db *db, const product_query *q, product_row_cb cb, void *data,
                    int64_t *total) SL_MUST_CHECK;
/* Every row in product_id order, for tests and the rebuild check. */
int store_view_scan(sl_db *db, product_row_cb cb, void *data) SL_MUST_CHECK;
/* Bulk load for the benchmark: a view row written straight into the read model. */
int store_view_load(sl_db *tx, const product_row *r) SL_MUST_CHECK;

/* ---- commands.c: the command side ---------------------------------------------------------- */

typedef struct product_cmd_ctx {
    const char *source;      /* CloudEvents source: "/shoal/product" */
    const char *traceparent; /* the request's, or NULL */
    const sl_clock *clock;   /* NULL → the system clock */
} product_cmd_ctx;

/*
 * Creates a product in one transaction on `db` (not in a transaction): the products row,
 * shop.product.created.v1 appended to stream product-<id> (expected: no stream) and written
 * to the outbox with the same event id. Fills *out. Returns 0, SL_ECONFLICT when the sku is
 * taken, or a database error (nothing written).
 */
int product_cmd_create(sl_db *db, const product_cmd_ctx *c, const product_input *in,
                       product *out) SL_MUST_CHECK;

/*
 * Applies `patch` to product `id` in one transaction: updated.v1 when name, description or
 * category changed, price_changed.v1 when the price did (both possible, in that order), each
 * appended with the expected stream version. A patch that changes nothing writes nothing.
 * Fills *out. Returns 0, SL_ENOTFOUND, SL_ECONFLICT (a concurrent change won; retry) or a
 * database error.
 */
int product_cmd_update(sl_db *db, const product_cmd_ctx *c, const char *id,
                       const product_patch *patch, product *out) SL_MUST_CHECK;

/* Creates the demo catalogue when the write model is empty; *created gets the number made. */
int product_demo_load(sl_db *db, const product_cmd_ctx *c, size_t *created) SL_MUST_CHECK;

/* ---- projection.c: the query side --------------------------------------------------------- */

/*
 * Applies one event to the read model inside the caller's transaction `tx`: the three
 * product events (an event whose version is not newer than the row's is a no-op, so
 * duplicates and replays apply once) and inventory's stock_changed (stored in the local
 * stock record, then copied to the row's `available`). Returns 0, or SL_EPARSE with a
 * reason for data that can never apply, or a database error.
 */
int product_project_event(sl_db *tx, const char *type, const json_t *data, char *reason,
                          size_t reason_cap) SL_MUST_CHECK;

/* The bus subscriptions' apply (sl_event_apply_cb): product_project_event on msg's type. */
int product_apply_event(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason,
                        size_t reason_cap);

/* Runs the catch-up subscription over the event store until caught up (at most `max_rounds`
 * batches); *handled gets the number of events applied. `db` must not be in a transaction. */
int product_projection_catch_up(sl_db *db, size_t max_rounds, size_t *handled) SL_MUST_CHECK;

/*
 * Drops the read model and rebuilds it from the product events of the event store (position
 * order) and the local stock record, in one transaction. *events gets the number replayed.
 */
int product_rebuild_read_model(sl_db *db, size_t *events) SL_MUST_CHECK;

/* Writes a canonical text dump of the read model (one line per row, product_id order) to
 * *out (returns owned, free with free()). */
int product_view_dump(sl_db *db, char **out, size_t *len) SL_MUST_CHECK;

/* ---- product.c ----------------------------------------------------------------------------- */

typedef struct sl_service_def sl_service_def;
/* The service definition hosted by main.c. */
extern const sl_service_def product_service;

/* `shoal-product --rebuild-read-model [--config FILE]`: opens the configured database,
 * migrates, rebuilds, prints a line and returns the exit status (0 ok, 1 failure, 2 usage). */
int product_rebuild_main(int argc, char **argv);

#endif /* SHOAL_SVC_PRODUCT_H */
