/*
 * The query side: every change of catalog_view comes from an event.
 *
 *   - The product's own events reach it through a catch-up subscription of
 *     the event store (subscriber "product.catalog_view", checkpoint in the
 *     same transaction as the view change): in global position order, in the
 *     service's own database, so an admin sees the change as soon as the
 *     projection has run (right after each command and on a timer).
 *   - Inventory's shop.inventory.stock_changed.v1 comes from the bus
 *     (product_apply_event, run by the host's transactional runner with the
 *     inbox claim); the figures are kept in product_stock and copied into the
 *     row's `available`.
 *
 * Product events carry the stream version; a row only takes an event newer
 * than its version, so a duplicate, a replay or the same event arriving both
 * from the event store and from the bus applies once.
 */
#include "product.h"

#include <shoal/bus.h>
#include <shoal/clock.h>
#include <shoal/eventstore.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int product_project_event(sl_db *tx, const char *type, const json_t *data, char *reason,
                          size_t reason_cap)
{
    if (!type) return SL_EPARSE;
    if (strcmp(type, INVENTORY_EV_STOCK) == 0) {
        stock_event s;
        int rc = product_stock_decode(data, &s, reason, reason_cap);
        if (rc == 0) rc = store_stock_put(tx, &s, sl_clock_wall_ms(sl_clock_system()));
        if (rc == 0) rc = store_view_set_available(tx, s.product_id, s.available);
        return rc;
    }
    product_event_view ev;
    int rc = product_event_decode(type, data, PRODUCT_READ_CATALOG, &ev, reason, reason_cap);
    int applied = 0;
    if (rc == 0) rc = store_view_apply(tx, type, &ev, &applied);
    return rc;
}

int product_apply_event(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason,
                        size_t reason_cap)
{
    (void)svc;
    return product_project_event(tx, msg->type ? msg->type : msg->topic, msg->data, reason,
                                 reason_cap);
}

/* Applies one stored event; data that can never apply is skipped (the same on a rebuild). */
static int apply_record(sl_db *tx, const sl_es_record *rec)
{
    if (strncmp(rec->stream, PRODUCT_STREAM_PREFIX, sizeof PRODUCT_STREAM_PREFIX - 1) != 0)
        return 0;
    json_t *data = json_loadb(rec->data, rec->data_len, JSON_REJECT_DUPLICATES, NULL);
    if (!data) return 0;
    char reason[128];
    int rc = product_project_event(tx, rec->type, data, reason, sizeof reason);
    json_decref(data);
    return rc == SL_EPARSE ? 0 : rc;
}

static int on_subscription(void *data, sl_db *tx, const sl_es_record *rec)
{
    (void)data;
    return apply_record(tx, rec);
}

int product_projection_catch_up(sl_db *db, size_t max_rounds, size_t *handled)
{
    *handled = 0;
    for (size_t i = 0; i < max_rounds; i++) {
        size_t n = 0;
        int rc = sl_es_subscription_poll(db, PRODUCT_PROJECTION, 256, on_subscription, NULL, &n);
        if (rc != 0) return rc;
        *handled += n;
        if (n == 0) break;
    }
    return 0;
}

typedef struct replay_ctx {
    sl_db *tx;
    int64_t last;
    size_t events;
} replay_ctx;

static int on_replay(void *data, const sl_es_record *rec)
{
    replay_ctx *r = data;
    r->last = rec->position;
    r->events++;
    return apply_record(r->tx, rec);
}

int product_rebuild_read_model(sl_db *db, size_t *events)
{
    *events = 0;
    replay_ctx r = {.tx = db};
    int rc = sl_db_begin(db);
    if (rc != 0) return rc;
    rc = store_view_clear(db);
    for (size_t n = SL_ES_BATCH_MAX; rc == 0 && n == SL_ES_BATCH_MAX;)
        rc = sl_es_read_all(db, r.last, SL_ES_BATCH_MAX, on_replay, &r, &n);
    if (rc == 0) {
        rc = sl_db_commit(db);
    } else {
        sl_db_rollback(db);
    }
    if (rc == 0) *events = r.events;
    return rc;
}

typedef struct dump_buf {
    char *p;
    size_t len, cap;
} dump_buf;

#define DUMP_MAX ((size_t)256 << 20)

static int on_dump(void *data, const product_row *r)
{
    dump_buf *b = data;
    size_t need = strlen(r->product_id) + strlen(r->sku) + strlen(r->name) +
                  strlen(r->description) + strlen(r->category) + strlen(r->currency) + 80;
    if (b->len + need > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + need)
            cap *= 2;
        if (cap > DUMP_MAX) return SL_ELIMIT;
        char *p = realloc(b->p, cap);
        if (!p) return SL_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    int n = snprintf(b->p + b->len, b->cap - b->len, "%s|%s|%s|%s|%s|%lld|%s|%lld|%lld\n",
                     r->product_id, r->sku, r->name, r->description, r->category,
                     (long long)r->price_amount, r->currency, (long long)r->available,
                     (long long)r->version);
    b->len += (size_t)n;
    return 0;
}

int product_view_dump(sl_db *db, char **out, size_t *len)
{
    dump_buf b = {0};
    int rc = store_view_scan(db, on_dump, &b);
    if (rc == 0 && !b.p) b.p = calloc(1, 1);
    if (rc == 0 && !b.p) rc = SL_ENOMEM;
    if (rc != 0) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    if (len) *len = b.len;
    return 0;
}
