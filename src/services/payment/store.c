/*
 * The payment service's SQL: wallets as event streams in the library event
 * store (load = snapshot + fold of the tail), history with balances from
 * the fold, writer locks, the balances read model fed by a catch-up
 * subscription, and the audit that replays every wallet. Prepared
 * statements only, through include/shoal/db.h.
 */
#include "payment.h"

#include <shoal/eventstore.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_BATCH 500

void pay_stream_name(const char *user_id, char out[PAY_STREAM_MAX])
{
    snprintf(out, PAY_STREAM_MAX, "account-%s", user_id);
}

void pay_charge_event_id(const char *order_id, char out[PAY_ORDER_ID_MAX + 16])
{
    snprintf(out, PAY_ORDER_ID_MAX + 16, "charge-%s", order_id);
}

/* ---- loading ----------------------------------------------------------------------------- */

typedef struct fold_ctx {
    pay_account *a;
    int64_t as_of_ms;
    int stopped; /* reached an event later than as_of */
    int64_t last_version;
    /* history */
    int64_t lo, hi;
    pay_history_cb cb;
    void *cb_data;
} fold_ctx;

static int fold_one(void *data, const sl_es_record *rec)
{
    fold_ctx *c = data;
    c->last_version = rec->version;
    if (rec->created_ms > c->as_of_ms) {
        c->stopped = 1;
        return 1; /* stop the read */
    }
    pay_event ev;
    int rc = pay_event_decode(rec->type, rec->data, rec->data_len, &ev);
    if (rc) return rc;
    if ((rc = pay_fold(c->a, &ev, rec->version, rec->created_ms)) != 0) return rc;
    if (c->cb && rec->version >= c->lo && rec->version <= c->hi) {
        pay_history_item it = {&ev, rec->version, rec->position, rec->created_ms, c->a->balance};
        return c->cb(c->cb_data, &it);
    }
    return 0;
}

/* Folds the events of `stream` after a->version, up to version `hi`. */
static int fold_stream(sl_db *db, const char *stream, fold_ctx *c, int64_t hi)
{
    for (;;) {
        size_t n = 0;
        int64_t from = c->a->version + 1;
        if (from > hi) return 0;
        int rc = sl_es_read_stream(db, stream, from, SL_ES_FORWARDS, READ_BATCH, fold_one, c, &n);
        if (rc == 1 && c->stopped) return 0;
        if (rc) return rc;
        if (n < READ_BATCH) return 0;
    }
}

int pay_load(sl_db *db, const char *user_id, int64_t as_of_ms, int snapshots, pay_account *a)
{
    char stream[PAY_STREAM_MAX];
    pay_stream_name(user_id, stream);
    if (snapshots) {
        int64_t sv;
        char *text = NULL;
        int rc = sl_es_snapshot_load(db, stream, &sv, &text);
        if (rc == 0) {
            pay_account snap;
            pay_account_init(&snap);
            /* A snapshot that does not decode is ignored: the events are the truth. */
            if (pay_account_decode(text, strlen(text), &snap) == 0 && snap.version == sv &&
                snap.at_ms <= as_of_ms) {
                pay_account_free(a);
                *a = snap;
            } else {
                pay_account_free(&snap);
            }
            free(text);
        } else if (rc != SL_ENOTFOUND) {
            return rc;
        }
    }
    fold_ctx c = {.a = a, .as_of_ms = as_of_ms};
    return fold_stream(db, stream, &c, INT64_MAX);
}

/* Collects the page's items (they arrive oldest first) to hand them out newest first. */
typedef struct hist_item {
    pay_event ev;
    pay_history_item it;
} hist_item;

typedef struct hist_buf {
    hist_item *items;
    size_t n, cap;
} hist_buf;

static int hist_keep(void *data, const pay_history_item *it)
{
    hist_buf *b = data;
    if (b->n == b->cap) return SL_ELIMIT;
    b->items[b->n].ev = *it->ev;
    b->items[b->n].it = *it;
    b->items[b->n].it.ev = &b->items[b->n].ev;
    b->n++;
    return 0;
}

int pay_history(sl_db *db, const char *user_id, int64_t lo, int64_t hi, pay_history_cb cb,
                void *data)
{
    if (lo < 1 || hi < lo || hi - lo >= 1000) return SL_EINVAL;
    char stream[PAY_STREAM_MAX];
    pay_stream_name(user_id, stream);
    hist_buf b = {calloc((size_t)(hi - lo + 1), sizeof(hist_item)), 0, (size_t)(hi - lo + 1)};
    if (!b.items) return SL_ENOMEM;
    pay_account a;
    pay_account_init(&a);
    fold_ctx c = {
        .a = &a, .as_of_ms = INT64_MAX, .lo = lo, .hi = hi, .cb = hist_keep, .cb_data = &b};
    int rc = fold_stream(db, stream, &c, hi);
    for (size_t i = b.n; rc == 0 && i > 0; i--)
        rc = cb(data, &b.items[i - 1].it);
    pay_account_free(&a);
    free(b.items);
    return rc;
}

/* ---- writing ----------------------------------------------------------------------------- */

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* FNV-1a of the stream name: the advisory lock key (collisions only serialise more). */
static int64_t lock_key(const char *user_id)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = "account-"; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    for (const char *p = user_id; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return (int64_t)(h >> 1);
}

int pay_lock_wallets(sl_db *tx, const char *const *user_ids, size_t n)
{
    if (sl_db_kind(tx) != SL_DB_POSTGRES) return 0;
    int64_t keys[4];
    if (n > SL_ARRAY_LEN(keys)) return SL_EINVAL;
    for (size_t i = 0; i < n; i++)
        keys[i] = lock_key(user_ids[i]);
    qsort(keys, n, sizeof keys[0], cmp_i64);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && keys[i] == keys[i - 1]) continue;
        sl_db_stmt *st;
        int rc = sl_db_prepare(tx, "SELECT pg_advisory_xact_lock(?)", &st);
        if (rc) return rc;
        rc = sl_db_bind_int64(st, 1, keys[i]);
        if (rc == 0) rc = sl_db_step(st);
        sl_db_stmt_done(st);
        if (rc < 0) return rc;
    }
    return 0;
}

int pay_append(sl_db *tx, const char *user_id, int64_t expected, const pay_event *evs, size_t n,
               const char *first_id, int64_t now_ms, sl_es_result *res)
{
    char stream[PAY_STREAM_MAX];
    sl_es_event es[3];
    char *texts[3] = {0};
    if (n == 0 || n > SL_ARRAY_LEN(es)) return SL_EINVAL;
    pay_stream_name(user_id, stream);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        texts[i] = pay_event_encode(&evs[i]);
        if (!texts[i]) rc = SL_ENOMEM;
        es[i] = (sl_es_event){
            .id = i == 0 ? first_id : NULL, .type = pay_kind_name(evs[i].kind), .data = texts[i]};
    }
    if (rc == 0) rc = sl_es_append(tx, stream, expected, es, n, now_ms, res);
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    return rc;
}

int pay_snapshot_maybe(sl_db *tx, const char *user_id, const pay_account *a, int64_t old_version,
                       int64_t every, int64_t now_ms)
{
    if (!sl_es_snapshot_due(old_version, a->version, every)) return 0;
    char stream[PAY_STREAM_MAX];
    pay_stream_name(user_id, stream);
    char *text = pay_account_encode(a);
    if (!text) return SL_ENOMEM;
    int rc = sl_es_snapshot_save(tx, stream, a->version, text, now_ms);
    free(text);
    return rc;
}

int pay_event_stream(sl_db *db, const char *event_id, char out[PAY_STREAM_MAX], int *found)
{
    *found = 0;
    out[0] = '\0';
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, "SELECT stream FROM es_events WHERE id = ?", &st);
    if (rc) return rc;
    rc = sl_db_bind_text(st, 1, event_id, SIZE_MAX);
    if (rc == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        size_t len;
        const char *s = sl_db_column_text(st, 0, &len);
        if (len < PAY_STREAM_MAX) {
            memcpy(out, s, len + 1);
            *found = 1;
        }
        rc = 0;
    }
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* ---- the balances read model ------------------------------------------------------------- */

static int64_t balance_delta(const pay_event *ev)
{
    switch (ev->kind) {
    case PAY_EV_DEPOSITED:
    case PAY_EV_REFUNDED:
        return ev->amount;
    case PAY_EV_WITHDRAWN:
    case PAY_EV_CHARGED:
        return -ev->amount;
    default:
        return 0;
    }
}

static int project_one(void *data, sl_db *tx, const sl_es_record *rec)
{
    (void)data;
    if (strncmp(rec->stream, "account-", 8) != 0) return 0;
    pay_event ev;
    /* A malformed event stops the projection (and is reported by the audit) rather than
     * being skipped, so the read model never silently diverges. */
    int rc = pay_event_decode(rec->type, rec->data, rec->data_len, &ev);
    if (rc) return rc;
    sl_db_stmt *st;
    rc = sl_db_prepare(tx,
                       "INSERT INTO wallet_balances (user_id, balance, version, position, "
                       "updated_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET "
                       "balance = wallet_balances.balance + excluded.balance, version = "
                       "excluded.version, position = excluded.position, updated_ms = "
                       "excluded.updated_ms",
                       &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_text(st, 1, rec->stream + 8, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_int64(st, 2, balance_delta(&ev))) == 0 &&
        (rc = sl_db_bind_int64(st, 3, rec->version)) == 0 &&
        (rc = sl_db_bind_int64(st, 4, rec->position)) == 0)
        rc = sl_db_bind_int64(st, 5, rec->created_ms);
    if (rc == 0) rc = sl_db_step(st);
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

int pay_project_poll(sl_db *db, size_t batch_max, size_t *handled)
{
    return sl_es_subscription_poll(db, PAY_ES_SUBSCRIBER, batch_max, project_one, NULL, handled);
}

int pay_view_list(sl_db *db, int64_t offset, int64_t limit, pay_view_cb cb, void *data,
                  int64_t *total)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, "SELECT count(*) FROM wallet_balances", &st);
    if (rc) return rc;
    rc = sl_db_step(st);
    if (rc == SL_DB_ROW) *total = sl_db_column_int64(st, 0);
    sl_db_stmt_done(st);
    if (rc < 0) return rc;
    rc = sl_db_prepare(db,
                       "SELECT user_id, balance, version, position, updated_ms FROM "
                       "wallet_balances ORDER BY user_id LIMIT ? OFFSET ?",
                       &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_int64(st, 1, limit)) == 0) rc = sl_db_bind_int64(st, 2, offset);
    while (rc == 0 && (rc = sl_db_step(st)) == SL_DB_ROW) {
        pay_view_row r = {sl_db_column_text(st, 0, NULL), sl_db_column_int64(st, 1),
                          sl_db_column_int64(st, 2), sl_db_column_int64(st, 3),
                          sl_db_column_int64(st, 4)};
        rc = cb(data, &r);
    }
    sl_db_stmt_done(st);
    return rc < 0 ? rc : (rc == SL_DB_DONE ? 0 : rc);
}
