/*
 * The outbox and inbox tables: writing CloudEvents envelopes in the caller's
 * transaction, claiming consumed event ids, backlog and retention queries.
 * The relay that drains the outbox is in relay.c.
 */
#include "outbox/envelope_encode.h"

#include <shoal/id.h>

#include <stdlib.h>
#include <string.h>

static int step_done(sl_db_stmt *st, int rc)
{
    if (rc == 0) rc = sl_db_step(st);
    return rc == SL_DB_DONE ? 0 : (rc == SL_DB_ROW ? SL_EINVAL : rc);
}

int sl_outbox_add(sl_db *tx, const sl_outbox_event *ev, int64_t now_wall_ns,
                  char id_out[SL_DB_UUID_STR])
{
    if (!sl_db_in_tx(tx)) return SL_ESTATE;
    if (ev == NULL || !ev->source || !ev->type || !ev->subject || !ev->source[0] || !ev->type[0] ||
        !ev->subject[0])
        return SL_EINVAL;
    char id[SL_DB_UUID_STR];
    int given = ev->id != NULL;
    if (ev->id) {
        size_t n = strlen(ev->id);
        if (n == 0 || n >= sizeof id) return SL_EINVAL;
        memcpy(id, ev->id, n + 1);
    } else {
        int rc = sl_uuid7_at(now_wall_ns / 1000000, id);
        if (rc) return rc;
    }
    char *env = NULL;
    size_t env_len = 0;
    int rc = sl__outbox_envelope_encode(ev, id, now_wall_ns, &env, &env_len);
    if (rc) return rc;
    if (env_len > SL_OUTBOX_ENVELOPE_MAX) {
        free(env);
        return SL_ELIMIT;
    }
    sl_db_stmt *st;
    rc = sl_db_prepare(tx,
                       "INSERT INTO outbox (id, id_given, subject, type, envelope, created_ms) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       &st);
    if (rc == 0) {
        if ((rc = sl_db_bind_text(st, 1, id, SIZE_MAX)) == 0 &&
            (rc = sl_db_bind_int64(st, 2, given)) == 0 &&
            (rc = sl_db_bind_text(st, 3, ev->subject, SIZE_MAX)) == 0 &&
            (rc = sl_db_bind_text(st, 4, ev->type, SIZE_MAX)) == 0 &&
            (rc = sl_db_bind_text(st, 5, env, env_len)) == 0)
            rc = sl_db_bind_int64(st, 6, now_wall_ns / 1000000);
        rc = step_done(st, rc);
        sl_db_stmt_done(st);
    }
    free(env);
    if (rc) return rc;
    sl_db_tx_mark(tx, SL_DB_TXF_OUTBOX);
    if (id_out) memcpy(id_out, id, sizeof id);
    return 0;
}

int sl_inbox_claim(sl_db *tx, const char *consumer, const char *event_id, int64_t now_wall_ms)
{
    if (!sl_db_in_tx(tx)) return SL_ESTATE;
    if (!consumer || !event_id || !consumer[0] || !event_id[0]) return SL_EINVAL;
    sl_db_stmt *st;
    /* ON CONFLICT DO NOTHING: a duplicate is not an error, and on PostgreSQL it does not abort
     * the caller's transaction. */
    int rc = sl_db_prepare(tx,
                           "INSERT INTO inbox (consumer, event_id, received_ms) VALUES (?, ?, ?) "
                           "ON CONFLICT (consumer, event_id) DO NOTHING",
                           &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_text(st, 1, consumer, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_text(st, 2, event_id, SIZE_MAX)) == 0)
        rc = sl_db_bind_int64(st, 3, now_wall_ms);
    rc = step_done(st, rc);
    int64_t changed = sl_db_changes(st);
    sl_db_stmt_done(st);
    if (rc) return rc;
    return changed == 1 ? 1 : 0;
}

/* Statement sizes for sl_inbox_claim_many: a batch is cut into these, largest first, so that a
 * connection caches at most four claim statements whatever the batch sizes. */
static const size_t claim_sizes[] = {64, 16, 4, 1};

static int claim_chunk(sl_db *tx, const char *consumer, const char *const *ids, size_t k,
                       int64_t now, unsigned char *claimed)
{
    static const char head[] = "INSERT INTO inbox (consumer, event_id, received_ms) VALUES ",
                      row[] = ", (?, ?, ?)",
                      tail[] = " ON CONFLICT (consumer, event_id) DO NOTHING RETURNING event_id";
    char sql[sizeof head + 64 * (sizeof row - 1) + sizeof tail];
    size_t o = sizeof head - 1;
    memcpy(sql, head, o);
    for (size_t i = 0; i < k; i++) {
        size_t skip = i ? 0 : 2; /* no comma before the first row */
        memcpy(sql + o, row + skip, sizeof row - 1 - skip);
        o += sizeof row - 1 - skip;
    }
    memcpy(sql + o, tail, sizeof tail);
    sl_db_stmt *st;
    int rc = sl_db_prepare(tx, sql, &st);
    if (rc) return rc;
    for (size_t i = 0; i < k && rc == 0; i++) {
        if ((rc = sl_db_bind_text(st, (int)(3 * i + 1), consumer, SIZE_MAX)) == 0 &&
            (rc = sl_db_bind_text(st, (int)(3 * i + 2), ids[i], SIZE_MAX)) == 0)
            rc = sl_db_bind_int64(st, (int)(3 * i + 3), now);
    }
    /* The inserted ids come back, usually in order: look from the last match on. A duplicate
     * within the batch is inserted once, so only its first place is marked. */
    size_t from = 0;
    while (rc == 0 && (rc = sl_db_step(st)) == SL_DB_ROW) {
        size_t len;
        const char *id = sl_db_column_text(st, 0, &len);
        rc = 0;
        for (size_t n = 0; n < k && id; n++) {
            size_t j = (from + n) % k;
            if (!claimed[j] && strlen(ids[j]) == len && memcmp(ids[j], id, len) == 0) {
                claimed[j] = 1;
                from = j + 1;
                break;
            }
        }
    }
    sl_db_stmt_done(st);
    return rc == SL_DB_DONE ? 0 : rc;
}

int sl_inbox_claim_many(sl_db *tx, const char *consumer, const char *const *event_ids, size_t n,
                        int64_t now_wall_ms, unsigned char *claimed)
{
    if (!sl_db_in_tx(tx)) return SL_ESTATE;
    if (!consumer || !consumer[0] || (n && (!event_ids || !claimed))) return SL_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!event_ids[i] || !event_ids[i][0]) return SL_EINVAL;
    memset(claimed, 0, n);
    size_t i = 0;
    while (i < n) {
        size_t k = 1;
        for (size_t c = 0; c < sizeof claim_sizes / sizeof *claim_sizes; c++)
            if (claim_sizes[c] <= n - i) {
                k = claim_sizes[c];
                break;
            }
        int rc = claim_chunk(tx, consumer, event_ids + i, k, now_wall_ms, claimed + i);
        if (rc) return rc;
        i += k;
    }
    return 0;
}

int sl_outbox_backlog(sl_db *db, int64_t now_wall_ms, int64_t *count, int64_t *oldest_age_ms)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(
        db, "SELECT count(*), min(created_ms) FROM outbox WHERE published_ms IS NULL", &st);
    if (rc) return rc;
    rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        *count = sl_db_column_int64(st, 0);
        int64_t oldest = sl_db_column_is_null(st, 1) ? now_wall_ms : sl_db_column_int64(st, 1);
        *oldest_age_ms = now_wall_ms > oldest ? now_wall_ms - oldest : 0;
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = SL_EIO;
    }
    sl_db_stmt_done(st);
    return rc;
}

static int prune(sl_db *db, const char *sql, int64_t cutoff, int64_t *removed)
{
    if (removed) *removed = 0;
    if (sl_db_in_tx(db)) return SL_ESTATE;
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc) return rc;
    rc = step_done(st, sl_db_bind_int64(st, 1, cutoff));
    if (rc == 0 && removed) *removed = sl_db_changes(st);
    sl_db_stmt_done(st);
    return rc;
}

int sl_outbox_prune(sl_db *db, int64_t cutoff_wall_ms, int64_t *removed)
{
    /* The published prefix: every row below the first one to keep (unpublished, or
     * published since the cutoff) goes. A row published early but behind a kept one stays
     * a little longer; retention is a minimum. */
    return prune(db,
                 "DELETE FROM outbox WHERE seq < (SELECT coalesce(min(seq), 9223372036854775807) "
                 "FROM outbox WHERE published_ms IS NULL OR published_ms >= ?)",
                 cutoff_wall_ms, removed);
}

int sl_inbox_prune(sl_db *db, int64_t cutoff_wall_ms, int64_t *removed)
{
    return prune(db, "DELETE FROM inbox WHERE received_ms < ?", cutoff_wall_ms, removed);
}
