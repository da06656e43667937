/*
 * The command side: create and update products. Each command is one
 * transaction that changes the write model (products), appends the product's
 * event to its stream `product-<id>` in the event store (the service's own
 * event log, what the read model is rebuilt from) and writes the same event,
 * under the same id, to the outbox for the bus. The command side never
 * touches the read model.
 */
#include "product.h"

#include <shoal/clock.h>
#include <shoal/eventstore.h>
#include <shoal/outbox.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_MAX (sizeof PRODUCT_STREAM_PREFIX + SL_DB_UUID_STR)

static int64_t now_ns(const product_cmd_ctx *c)
{
    return sl_clock_wall_ns(c->clock ? c->clock : sl_clock_system());
}

/* Appends one event of product `p` at stream version p->version (expecting the one before) and
 * writes it to the outbox with the same id. Borrows everything. */
static int record_event(sl_db *tx, const product_cmd_ctx *c, const product *p, const char *type,
                        const json_t *data, int64_t ts_ns)
{
    char id[SL_DB_UUID_STR];
    if (sl_uuid7_at(ts_ns / 1000000, id) != 0) return SL_EIO;
    char *json = sl_json_dump(data, NULL);
    if (!json) return SL_ENOMEM;
    char stream[STREAM_MAX];
    snprintf(stream, sizeof stream, "%s%s", PRODUCT_STREAM_PREFIX, p->id);
    sl_es_event ev = {.id = id, .type = type, .data = json};
    sl_es_result res;
    int64_t expected = p->version == 1 ? SL_ES_NO_STREAM : p->version - 1;
    int rc = sl_es_append(tx, stream, expected, &ev, 1, ts_ns / 1000000, &res);
    if (rc == 0) {
        sl_outbox_event oe = {.id = id,
                              .source = c->source ? c->source : "/shoal/product",
                              .type = type,
                              .subject = p->id,
                              .data_json = json,
                              .traceparent = c->traceparent};
        rc = sl_outbox_add(tx, &oe, ts_ns, NULL);
    }
    free(json);
    return rc;
}

/* Fills *out from `in` and writes it with its created event inside the open transaction. */
static int create_in_tx(sl_db *tx, const product_cmd_ctx *c, const product_input *in, product *out,
                        int64_t ts)
{
    memset(out, 0, sizeof *out);
    if (sl_uuid7_at(ts / 1000000, out->id) != 0) return SL_EIO;
    snprintf(out->sku, sizeof out->sku, "%s", in->sku);
    snprintf(out->name, sizeof out->name, "%s", in->name);
    snprintf(out->description, sizeof out->description, "%s", in->description);
    snprintf(out->category, sizeof out->category, "%s", in->category);
    snprintf(out->currency, sizeof out->currency, "%s", in->currency);
    out->price_amount = in->price_amount;
    out->version = 1;
    json_t *data = product_event_created(out, in->stock);
    if (!data) return SL_ENOMEM;
    int rc = store_product_insert(tx, out, ts / 1000000);
    if (rc == 0) rc = record_event(tx, c, out, PRODUCT_EV_CREATED, data, ts);
    json_decref(data);
    return rc;
}

static int finish(sl_db *db, int rc)
{
    if (rc == 0) return sl_db_commit(db);
    sl_db_rollback(db);
    return rc;
}

int product_cmd_create(sl_db *db, const product_cmd_ctx *c, const product_input *in, product *out)
{
    SL_ASSERT(db && c && in && out);
    int rc = sl_db_begin(db);
    if (rc != 0) return rc;
    return finish(db, create_in_tx(db, c, in, out, now_ns(c)));
}

#define TEXT_CHANGES (PRODUCT_CHANGED_NAME | PRODUCT_CHANGED_DESCRIPTION | PRODUCT_CHANGED_CATEGORY)

/* One attempt of an update; SL_ECONFLICT when another writer moved the version first. */
static int update_once(sl_db *db, const product_cmd_ctx *c, const char *id,
                       const product_patch *patch, product *out)
{
    int64_t ts = now_ns(c);
    product *before = malloc(2 * sizeof *before); /* [0] as stored, [1] after the text change */
    if (!before) return SL_ENOMEM;
    product *mid = before + 1;
    json_t *data = NULL;
    int rc = sl_db_begin(db);
    if (rc != 0) goto done;
    if ((rc = store_product_get(db, id, out)) != 0) goto out;
    *before = *out;
    unsigned changed = product_apply_patch(out, patch);
    if (changed == 0) goto out; /* nothing to record: no event, no new version */
    int64_t version = before->version;
    if (changed & TEXT_CHANGES) {
        /* The updated event shows the product as it is at its version: still the old price. */
        *mid = *before;
        snprintf(mid->name, sizeof mid->name, "%s", out->name);
        snprintf(mid->description, sizeof mid->description, "%s", out->description);
        snprintf(mid->category, sizeof mid->category, "%s", out->category);
        mid->version = ++version;
        data = product_event_updated(mid, changed);
        rc = data ? record_event(db, c, mid, PRODUCT_EV_UPDATED, data, ts) : SL_ENOMEM;
        json_decref(data);
        data = NULL;
        if (rc != 0) goto out;
    }
    out->version = version;
    if (changed & PRODUCT_CHANGED_PRICE) {
        out->version = ++version;
        data = product_event_price_changed(out, before->price_amount, before->currency);
        rc = data ? record_event(db, c, out, PRODUCT_EV_PRICE_CHANGED, data, ts) : SL_ENOMEM;
        if (rc != 0) goto out;
    }
    rc = store_product_update(db, out, before->version, ts / 1000000);
out:
    rc = finish(db, rc);
done:
    json_decref(data);
    free(before);
    return rc;
}

int product_cmd_update(sl_db *db, const product_cmd_ctx *c, const char *id,
                       const product_patch *patch, product *out)
{
    SL_ASSERT(db && c && id && patch && out);
    int rc = SL_ECONFLICT;
    /* Optimistic concurrency: a lost race re-reads and re-applies, a few times at most. */
    for (int attempt = 0; attempt < 3 && rc == SL_ECONFLICT; attempt++)
        rc = update_once(db, c, id, patch, out);
    return rc;
}

int product_demo_load(sl_db *db, const product_cmd_ctx *c, size_t *created)
{
    SL_ASSERT(db && c && created);
    *created = 0;
    int64_t n = 0;
    int rc = store_product_count(db, &n);
    if (rc != 0 || n > 0) return rc; /* only an empty catalogue gets the demo */
    product *p = malloc(sizeof *p);
    if (!p) return SL_ENOMEM;
    /* One transaction: a start interrupted half-way leaves no half catalogue behind. */
    rc = sl_db_begin(db);
    int64_t ts = now_ns(c);
    for (size_t i = 0; rc == 0 && i < product_demo_count(); i++) {
        product_input in;
        product_demo_get(i, &in);
        rc = create_in_tx(db, c, &in, p, ts + (int64_t)i); /* distinct, ordered times */
    }
    if (rc == 0 || sl_db_in_tx(db)) rc = finish(db, rc);
    if (rc == 0) *created = product_demo_count();
    free(p);
    return rc;
}
