/*
 * The event store (include/shoal/eventstore.h) over plain sl_db SQL that
 * runs unchanged on SQLite and PostgreSQL. Optimistic concurrency is one
 * conditional UPDATE/INSERT of es_streams; global positions come from the
 * single es_head row, updated by every append and so locked until commit,
 * which makes positions commit in order (no gaps for catch-up readers).
 */
#include <shoal/eventstore.h>

#include <stdlib.h>
#include <string.h>

/* Runs `st` (already bound) expecting at most one row; stores column 0 in *v and sets *found. */
static int one_int(sl_db_stmt *st, int64_t *v, int *found)
{
    int rc = sl_db_step(st);
    *found = rc == SL_DB_ROW;
    if (rc == SL_DB_ROW) {
        *v = sl_db_column_int64(st, 0);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = 0;
    }
    sl_db_stmt_done(st);
    return rc;
}

int sl_es_stream_version(sl_db *db, const char *stream, int64_t *version)
{
    *version = 0;
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, "SELECT version FROM es_streams WHERE stream = ?", &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_text(st, 1, stream, SIZE_MAX)) != 0) {
        sl_db_stmt_done(st);
        return rc;
    }
    int found;
    return one_int(st, version, &found);
}

/*
 * Idempotency: were events[] all appended, in order, to `stream`? Sets *same and, if so,
 * res. A partial match or ids used elsewhere is a conflict (the caller reports it).
 */
static int already_appended(sl_db *tx, const char *stream, const sl_es_event *ev, size_t n,
                            int *same, sl_es_result *res)
{
    *same = 0;
    int64_t first = 0, pos = 0;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].id == NULL) return 0;
        sl_db_stmt *st;
        int rc =
            sl_db_prepare(tx, "SELECT version, position, stream FROM es_events WHERE id = ?", &st);
        if (rc) return rc;
        rc = sl_db_bind_text(st, 1, ev[i].id, SIZE_MAX);
        if (rc == 0) rc = sl_db_step(st);
        int match = 0;
        if (rc == SL_DB_ROW) {
            int64_t v = sl_db_column_int64(st, 0);
            if (i == 0) first = v;
            match = strcmp(sl_db_column_text(st, 2, NULL), stream) == 0 && v == first + (int64_t)i;
            pos = sl_db_column_int64(st, 1);
            rc = 0;
        }
        sl_db_stmt_done(st);
        if (rc < 0) return rc;
        if (!match) return 0;
    }
    *same = 1;
    res->version = first + (int64_t)n - 1;
    res->position = pos;
    return 0;
}

/* Moves the stream's version per `expected`; sets *base to the version before the append, or
 * *ok = 0 on a mismatch. */
static int claim_versions(sl_db *tx, const char *stream, int64_t expected, size_t n, int *ok,
                          int64_t *base)
{
    static const char *const upsert =
        "INSERT INTO es_streams (stream, version) VALUES (?, ?) ON CONFLICT (stream) DO "
        "UPDATE SET version = es_streams.version + excluded.version RETURNING version";
    static const char *const create = "INSERT INTO es_streams (stream, version) VALUES (?, ?) "
                                      "ON CONFLICT (stream) DO NOTHING RETURNING version";
    static const char *const bump =
        "UPDATE es_streams SET version = version + ? WHERE stream = ? RETURNING version";
    static const char *const exact = "UPDATE es_streams SET version = version + ? WHERE stream "
                                     "= ? AND version = ? RETURNING version";
    const char *sql = expected == SL_ES_ANY             ? upsert
                      : expected == SL_ES_NO_STREAM     ? create
                      : expected == SL_ES_STREAM_EXISTS ? bump
                                                        : exact;
    sl_db_stmt *st;
    int rc = sl_db_prepare(tx, sql, &st);
    if (rc) return rc;
    int64_t k = (int64_t)n, after = 0;
    if (sql == upsert || sql == create) {
        if ((rc = sl_db_bind_text(st, 1, stream, SIZE_MAX)) == 0) rc = sl_db_bind_int64(st, 2, k);
    } else {
        if ((rc = sl_db_bind_int64(st, 1, k)) == 0) rc = sl_db_bind_text(st, 2, stream, SIZE_MAX);
        if (rc == 0 && sql == exact) rc = sl_db_bind_int64(st, 3, expected);
    }
    if (rc) {
        sl_db_stmt_done(st);
        return rc;
    }
    rc = one_int(st, &after, ok);
    *base = after - k;
    return rc;
}

static int next_positions(sl_db *tx, size_t n, int64_t *last)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(
        tx, "UPDATE es_head SET position = position + ? WHERE one = 1 RETURNING position", &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_int64(st, 1, (int64_t)n)) != 0) {
        sl_db_stmt_done(st);
        return rc;
    }
    int found;
    rc = one_int(st, last, &found);
    return rc ? rc : (found ? 0 : SL_EIO); /* es_head is seeded by the migration */
}

static int insert_event(sl_db *tx, const char *stream, const sl_es_event *ev, int64_t version,
                        int64_t position, int64_t now_ms)
{
    char gen[SL_DB_UUID_STR];
    const char *id = ev->id;
    if (id == NULL) {
        int rc = sl_db_uuid7(now_ms, gen);
        if (rc) return rc;
        id = gen;
    }
    sl_db_stmt *st;
    int rc = sl_db_prepare(tx,
                           "INSERT INTO es_events (position, stream, version, id, type, data, "
                           "metadata, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_int64(st, 1, position)) == 0 &&
        (rc = sl_db_bind_text(st, 2, stream, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_int64(st, 3, version)) == 0 &&
        (rc = sl_db_bind_text(st, 4, id, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_text(st, 5, ev->type, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_text(st, 6, ev->data, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_text(st, 7, ev->metadata, SIZE_MAX)) == 0)
        rc = sl_db_bind_int64(st, 8, now_ms);
    if (rc == 0) rc = sl_db_step(st);
    sl_db_stmt_done(st);
    return rc == SL_DB_DONE ? 0 : (rc < 0 ? rc : SL_EIO);
}

static int check_args(const char *stream, int64_t expected, const sl_es_event *ev, size_t n)
{
    if (stream == NULL || stream[0] == '\0' || ev == NULL || n == 0 || n > SL_ES_BATCH_MAX)
        return SL_EINVAL;
    if (expected < SL_ES_STREAM_EXISTS) return SL_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (ev[i].type == NULL || ev[i].type[0] == '\0' || ev[i].data == NULL) return SL_EINVAL;
    return 0;
}

int sl_es_append(sl_db *tx, const char *stream, int64_t expected, const sl_es_event *events,
                 size_t n, int64_t now_wall_ms, sl_es_result *res)
{
    memset(res, 0, sizeof *res);
    if (!sl_db_in_tx(tx)) return SL_ESTATE;
    int rc = check_args(stream, expected, events, n);
    if (rc) return rc;
    if (expected == 0) expected = SL_ES_NO_STREAM;
    int same = 0;
    /* With ANY the version cannot reveal a re-send, so look the ids up first. */
    if (expected == SL_ES_ANY && (rc = already_appended(tx, stream, events, n, &same, res)) != 0)
        return rc;
    if (same) return 0;
    int ok = 0;
    int64_t base = 0;
    if ((rc = claim_versions(tx, stream, expected, n, &ok, &base)) != 0) return rc;
    if (!ok) {
        /* A mismatch may be our own earlier append of this very batch. */
        if ((rc = already_appended(tx, stream, events, n, &same, res)) != 0) return rc;
        if (same) return 0;
        int64_t actual;
        if ((rc = sl_es_stream_version(tx, stream, &actual)) != 0) return rc;
        memset(res, 0, sizeof *res);
        res->actual_version = actual;
        return SL_ECONFLICT;
    }
    int64_t last_pos;
    if ((rc = next_positions(tx, n, &last_pos)) != 0) return rc;
    int64_t first_pos = last_pos - (int64_t)n + 1;
    for (size_t i = 0; i < n; i++) {
        rc = insert_event(tx, stream, &events[i], base + 1 + (int64_t)i, first_pos + (int64_t)i,
                          now_wall_ms);
        if (rc) return rc; /* e.g. SL_ECONFLICT: an id used by another stream */
    }
    sl_db_tx_mark(tx, SL_DB_TXF_EVENTS);
    res->version = base + (int64_t)n;
    res->position = last_pos;
    return 0;
}

static int run_read(sl_db_stmt *st, sl_es_read_cb cb, void *data, size_t *count)
{
    size_t n = 0;
    int rc;
    while ((rc = sl_db_step(st)) == SL_DB_ROW) {
        sl_es_record r = {0};
        r.position = sl_db_column_int64(st, 0);
        r.stream = sl_db_column_text(st, 1, NULL);
        r.version = sl_db_column_int64(st, 2);
        r.id = sl_db_column_text(st, 3, NULL);
        r.type = sl_db_column_text(st, 4, NULL);
        r.data = sl_db_column_text(st, 5, &r.data_len);
        r.metadata = sl_db_column_is_null(st, 6) ? NULL : sl_db_column_text(st, 6, NULL);
        r.created_ms = sl_db_column_int64(st, 7);
        n++;
        if ((rc = cb(data, &r)) != 0) break;
    }
    sl_db_stmt_done(st);
    if (count) *count = n;
    return rc == SL_DB_DONE ? 0 : rc;
}

#define ES_COLUMNS "SELECT position, stream, version, id, type, data, metadata, created_ms "

int sl_es_read_stream(sl_db *db, const char *stream, int64_t from, int direction, size_t max_count,
                      sl_es_read_cb cb, void *data, size_t *count)
{
    if (count) *count = 0;
    if (!stream || !cb || max_count == 0 || max_count > SL_ES_BATCH_MAX) return SL_EINVAL;
    const char *sql = direction == SL_ES_BACKWARDS
                          ? ES_COLUMNS "FROM es_events WHERE stream = ? AND version <= ? "
                                       "ORDER BY version DESC LIMIT ?"
                          : ES_COLUMNS "FROM es_events WHERE stream = ? AND version >= ? "
                                       "ORDER BY version LIMIT ?";
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_text(st, 1, stream, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_int64(st, 2, from)) == 0)
        rc = sl_db_bind_int64(st, 3, (int64_t)max_count);
    if (rc) {
        sl_db_stmt_done(st);
        return rc;
    }
    return run_read(st, cb, data, count);
}

int sl_es_read_all(sl_db *db, int64_t after, size_t max_count, sl_es_read_cb cb, void *data,
                   size_t *count)
{
    if (count) *count = 0;
    if (!cb || max_count == 0 || max_count > SL_ES_BATCH_MAX) return SL_EINVAL;
    sl_db_stmt *st;
    int rc = sl_db_prepare(
        db, ES_COLUMNS "FROM es_events WHERE position > ? ORDER BY position LIMIT ?", &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_int64(st, 1, after)) == 0)
        rc = sl_db_bind_int64(st, 2, (int64_t)max_count);
    if (rc) {
        sl_db_stmt_done(st);
        return rc;
    }
    return run_read(st, cb, data, count);
}

static int exec_bound(sl_db *db, const char *sql, const char *s, int64_t a, const char *t,
                      int64_t b)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc) return rc;
    rc = sl_db_bind_text(st, 1, s, SIZE_MAX);
    if (rc == 0) rc = sl_db_bind_int64(st, 2, a);
    if (rc == 0 && t) rc = sl_db_bind_text(st, 3, t, SIZE_MAX);
    if (rc == 0 && t) rc = sl_db_bind_int64(st, 4, b);
    if (rc == 0) rc = sl_db_step(st);
    sl_db_stmt_done(st);
    return rc == SL_DB_DONE ? 0 : (rc < 0 ? rc : SL_EIO);
}

int sl_es_snapshot_save(sl_db *db, const char *stream, int64_t version, const char *data,
                        int64_t now_wall_ms)
{
    if (!stream || !data || version <= 0) return SL_EINVAL;
    int own = !sl_db_in_tx(db);
    int rc = own ? sl_db_begin(db) : 0;
    if (rc) return rc;
    rc = exec_bound(db, "DELETE FROM es_snapshots WHERE stream = ? AND version <= ?", stream,
                    version, NULL, 0);
    if (rc == 0)
        rc = exec_bound(db,
                        "INSERT INTO es_snapshots (stream, version, data, created_ms) VALUES "
                        "(?, ?, ?, ?)",
                        stream, version, data, now_wall_ms);
    if (!own) return rc;
    if (rc == 0) return sl_db_commit(db);
    sl_db_rollback(db);
    return rc;
}

int sl_es_snapshot_load(sl_db *db, const char *stream, int64_t *version, char **data)
{
    *data = NULL;
    *version = 0;
    sl_db_stmt *st;
    int rc = sl_db_prepare(db,
                           "SELECT version, data FROM es_snapshots WHERE stream = ? "
                           "ORDER BY version DESC LIMIT 1",
                           &st);
    if (rc) return rc;
    rc = sl_db_bind_text(st, 1, stream, SIZE_MAX);
    if (rc == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        size_t len;
        const char *d = sl_db_column_text(st, 1, &len);
        *version = sl_db_column_int64(st, 0);
        *data = strndup(d, len);
        rc = *data ? 0 : SL_ENOMEM;
    } else if (rc == SL_DB_DONE) {
        rc = SL_ENOTFOUND;
    }
    sl_db_stmt_done(st);
    return rc;
}

int sl_es_snapshot_due(int64_t old_version, int64_t new_version, int64_t every)
{
    if (every <= 0 || new_version <= old_version || old_version < 0) return 0;
    return new_version / every > old_version / every;
}

int sl_es_checkpoint(sl_db *db, const char *subscriber, int64_t *position)
{
    *position = 0;
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, "SELECT position FROM es_checkpoints WHERE subscriber = ?", &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_text(st, 1, subscriber, SIZE_MAX)) != 0) {
        sl_db_stmt_done(st);
        return rc;
    }
    int found;
    return one_int(st, position, &found);
}

typedef struct sub_ctx {
    sl_db *db;
    sl_es_handle_cb cb;
    void *data;
    int64_t last;
} sub_ctx;

static int sub_each(void *data, const sl_es_record *rec)
{
    sub_ctx *c = data;
    int rc = c->cb(c->data, c->db, rec);
    if (rc == 0) c->last = rec->position;
    return rc;
}

int sl_es_subscription_poll(sl_db *db, const char *subscriber, size_t batch_max, sl_es_handle_cb cb,
                            void *data, size_t *handled)
{
    *handled = 0;
    if (!subscriber || !subscriber[0] || !cb) return SL_EINVAL;
    if (sl_db_in_tx(db)) return SL_ESTATE;
    int rc = sl_db_begin(db);
    if (rc) return rc;
    sub_ctx c = {db, cb, data, 0};
    size_t n = 0;
    rc = sl_es_checkpoint(db, subscriber, &c.last);
    int64_t start = c.last;
    if (rc == 0) rc = sl_es_read_all(db, start, batch_max, sub_each, &c, &n);
    if (rc == 0 && n > 0)
        rc = exec_bound(db,
                        "INSERT INTO es_checkpoints (subscriber, position) VALUES (?, ?) "
                        "ON CONFLICT (subscriber) DO UPDATE SET position = excluded.position",
                        subscriber, c.last, NULL, 0);
    if (rc == 0)
        rc = sl_db_commit(db);
    else
        sl_db_rollback(db);
    if (rc == 0) *handled = n;
    return rc;
}
