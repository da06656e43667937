/*
 * The outbox and inbox tables: writing CloudEvents envelopes in the caller's
 * transaction, claiming consumed event ids, backlog and retention queries.
 * The relay that drains the outbox is in relay.c.
 */
#include <shoal/outbox.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int step_done(sl_db_stmt *st, int rc)
{
    if (rc == 0) rc = sl_db_step(st);
    return rc == SL_DB_DONE ? 0 : (rc == SL_DB_ROW ? SL_EINVAL : rc);
}

/* Builds the CloudEvents 1.0 structured envelope (DESIGN §7). Returns owned JSON text (free). */
static int build_envelope(const sl_outbox_event *ev, const char *id, int64_t now_wall_ns,
                          char **out)
{
    char time[SL_RFC3339_MAX];
    if (sl_rfc3339_format(now_wall_ns, time, sizeof time) < 0) return SL_EINVAL;
    json_t *env = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "specversion", "1.0", "id", id,
                            "source", ev->source, "type", ev->type, "subject", ev->subject, "time",
                            time, "datacontenttype",
                            ev->datacontenttype ? ev->datacontenttype : "application/json");
    if (env == NULL) return SL_ENOMEM;
    int rc = 0;
    if (ev->traceparent &&
        json_object_set_new(env, "traceparent", json_string(ev->traceparent)) != 0)
        rc = SL_EINVAL;
    if (rc == 0 && ev->data_json) {
        json_error_t err;
        json_t *data = json_loads(ev->data_json, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
        if (data == NULL || json_object_set_new(env, "data", data) != 0) rc = SL_EINVAL;
    }
    if (rc == 0) {
        *out = json_dumps(env, JSON_COMPACT);
        if (*out == NULL) rc = SL_ENOMEM;
    }
    json_decref(env);
    return rc;
}

int sl_outbox_add(sl_db *tx, const sl_outbox_event *ev, int64_t now_wall_ns,
                  char id_out[SL_DB_UUID_STR])
{
    if (!sl_db_in_tx(tx)) return SL_ESTATE;
    if (ev == NULL || !ev->source || !ev->type || !ev->subject || !ev->source[0] || !ev->type[0] ||
        !ev->subject[0])
        return SL_EINVAL;
    char id[SL_DB_UUID_STR];
    if (ev->id) {
        size_t n = strlen(ev->id);
        if (n == 0 || n >= sizeof id) return SL_EINVAL;
        memcpy(id, ev->id, n + 1);
    } else {
        int rc = sl_db_uuid7(now_wall_ns / 1000000, id);
        if (rc) return rc;
    }
    char *env = NULL;
    int rc = build_envelope(ev, id, now_wall_ns, &env);
    if (rc) return rc;
    if (strlen(env) > SL_OUTBOX_ENVELOPE_MAX) {
        free(env);
        return SL_ELIMIT;
    }
    sl_db_stmt *st;
    rc = sl_db_prepare(tx,
                       "INSERT INTO outbox (id, subject, type, envelope, created_ms) "
                       "VALUES (?, ?, ?, ?, ?)",
                       &st);
    if (rc == 0) {
        if ((rc = sl_db_bind_text(st, 1, id, SIZE_MAX)) == 0 &&
            (rc = sl_db_bind_text(st, 2, ev->subject, SIZE_MAX)) == 0 &&
            (rc = sl_db_bind_text(st, 3, ev->type, SIZE_MAX)) == 0 &&
            (rc = sl_db_bind_text(st, 4, env, SIZE_MAX)) == 0)
            rc = sl_db_bind_int64(st, 5, now_wall_ns / 1000000);
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
    return prune(db, "DELETE FROM outbox WHERE published_ms IS NOT NULL AND published_ms < ?",
                 cutoff_wall_ms, removed);
}

int sl_inbox_prune(sl_db *db, int64_t cutoff_wall_ms, int64_t *removed)
{
    return prune(db, "DELETE FROM inbox WHERE received_ms < ?", cutoff_wall_ms, removed);
}
