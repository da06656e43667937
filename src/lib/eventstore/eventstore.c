/*
 * The event store (include/shoal/eventstore.h) over sl_db. An append is one
 * statement per event, with the expected-version check folded in. SQLite: an
 * INSERT … SELECT whose rowid is the global position (the single writer makes
 * rowid order commit order). PostgreSQL: an INSERT that only tries the
 * append lock (a transaction advisory lock held until commit, so positions,
 * max + 1, become visible in commit order: no gaps for catch-up readers),
 * else es_append_one() (migration 0004), which waits for it. A stream's
 * version is the largest version in its (stream, version) index.
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
    int rc =
        sl_db_prepare(db, "SELECT coalesce(max(version), 0) FROM es_events WHERE stream = ?", &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_text(st, 1, stream, SIZE_MAX)) != 0) {
        sl_db_stmt_done(st);
        return rc;
    }
    int found;
    return one_int(st, version, &found);
}

/*
 * Idempotency, checked only after an insert wrote nothing: were events[] all appended, in
 * order, to `stream`? The first id is found through the partial unique index on caller ids,
 * then the ids stored at the following versions of the stream are compared with ours. Sets
 * *same and, if so, res. Generated ids (NULL) never match: no idempotency without ids.
 */
static int already_appended(sl_db *tx, const char *stream, const sl_es_event *ev, size_t n,
                            int *same, sl_es_result *res)
{
    *same = 0;
    for (size_t i = 0; i < n; i++)
        if (ev[i].id == NULL) return 0;
    sl_db_stmt *st;
    int rc = sl_db_prepare(
        tx, "SELECT stream, version FROM es_events WHERE id = ? AND id_given = 1", &st);
    if (rc) return rc;
    int64_t first = 0;
    int found = 0;
    if ((rc = sl_db_bind_text(st, 1, ev[0].id, SIZE_MAX)) == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        found = strcmp(sl_db_column_text(st, 0, NULL), stream) == 0;
        first = sl_db_column_int64(st, 1);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = 0;
    }
    sl_db_stmt_done(st);
    if (rc || !found) return rc;
    rc = sl_db_prepare(tx,
                       "SELECT id, id_given, position FROM es_events WHERE stream = ? AND "
                       "version >= ? ORDER BY version LIMIT ?",
                       &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_text(st, 1, stream, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_int64(st, 2, first)) == 0)
        rc = sl_db_bind_int64(st, 3, (int64_t)n);
    size_t k = 0;
    int64_t pos = 0;
    /* Versions are dense (each insert checks its predecessor), so row k is version first+k. */
    while (rc == 0 && (rc = sl_db_step(st)) == SL_DB_ROW) {
        if (sl_db_column_int64(st, 1) != 1 || strcmp(sl_db_column_text(st, 0, NULL), ev[k].id))
            break;
        pos = sl_db_column_int64(st, 2);
        k++;
        rc = 0;
    }
    sl_db_stmt_done(st);
    if (rc < 0) return rc;
    if (k == n) {
        *same = 1;
        res->version = first + (int64_t)n - 1;
        res->position = pos;
    }
    return 0;
}

/*
 * One event, normally one statement. `expected` is SL_ES_ANY, SL_ES_STREAM_EXISTS or an exact
 * version (0: no stream). Sets *written and, when 1, the event's version and position. Not
 * written means nothing changed: a version mismatch, or an id or (stream, version) already
 * stored (ON CONFLICT DO NOTHING, which also keeps a PostgreSQL transaction usable for the
 * idempotency check that follows).
 */
typedef int (*append_one_fn)(sl_db *tx, const char *stream, int64_t expected, const sl_es_event *ev,
                             const char *id, int64_t now_ms, int *written, int64_t *version,
                             int64_t *position);

/* Binds the event columns shared by the insert statements at `idx`: id, id_given, type,
 * data, metadata, created_ms. */
static int bind_event(sl_db_stmt *st, int idx, const sl_es_event *ev, const char *id,
                      int64_t now_ms)
{
    int rc;
    if ((rc = sl_db_bind_text(st, idx, id, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_int64(st, idx + 1, ev->id != NULL)) == 0 &&
        (rc = sl_db_bind_text(st, idx + 2, ev->type, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_text(st, idx + 3, ev->data, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_text(st, idx + 4, ev->metadata, SIZE_MAX)) == 0)
        rc = sl_db_bind_int64(st, idx + 5, now_ms);
    return rc;
}

/* SQLite: the single writer (BEGIN IMMEDIATE) makes a read inside the transaction exact, so the
 * check is plain C between two cheap statements: the stream's version (the largest of its
 * (stream, version) index) with the last position (the largest rowid), then a plain INSERT at
 * rowid max + 1, which is commit order. No INSERT … SELECT: SQLite would stage its rows in a
 * temporary table because the SELECT reads the table written. */
static int append_one_sqlite(sl_db *tx, const char *stream, int64_t expected, const sl_es_event *ev,
                             const char *id, int64_t now_ms, int *written, int64_t *version,
                             int64_t *position)
{
    *written = 0;
    sl_db_stmt *st;
    int rc = sl_db_prepare(tx,
                           "SELECT coalesce((SELECT version FROM es_events WHERE stream = ? ORDER "
                           "BY version DESC LIMIT 1), 0), coalesce((SELECT max(position) FROM "
                           "es_events), 0)",
                           &st);
    if (rc) return rc;
    int64_t cur = 0, last = 0;
    if ((rc = sl_db_bind_text(st, 1, stream, SIZE_MAX)) == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        cur = sl_db_column_int64(st, 0);
        last = sl_db_column_int64(st, 1);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = SL_EIO; /* a SELECT without FROM returns one row */
    }
    sl_db_stmt_done(st);
    if (rc) return rc;
    int ok =
        expected == SL_ES_ANY || (expected == SL_ES_STREAM_EXISTS && cur > 0) || cur == expected;
    if (!ok) return 0;
    rc = sl_db_prepare(tx,
                       "INSERT INTO es_events (position, stream, version, id, id_given, type, "
                       "data, metadata, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON "
                       "CONFLICT DO NOTHING",
                       &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_int64(st, 1, last + 1)) == 0 &&
        (rc = sl_db_bind_text(st, 2, stream, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_int64(st, 3, cur + 1)) == 0)
        rc = bind_event(st, 4, ev, id, now_ms);
    if (rc == 0) rc = sl_db_step(st);
    if (rc == SL_DB_DONE) {
        *written = sl_db_changes(st) == 1;
        *version = cur + 1;
        *position = last + 1;
        rc = 0;
    }
    sl_db_stmt_done(st);
    return rc < 0 ? rc : (rc ? SL_EIO : 0);
}

/*
 * PostgreSQL slow path: es_append_one() (migration 0004) waits for the append lock and decides
 * on fresh snapshots. Runs only when the fast path wrote nothing (lock busy, a conflict, a
 * re-send, or a commit that slipped in between its snapshot and its lock).
 */
static int append_one_pg_wait(sl_db *tx, const char *stream, int64_t expected,
                              const sl_es_event *ev, const char *id, int64_t now_ms, int *written,
                              int64_t *version, int64_t *position)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(
        tx, "SELECT o_status, o_version, o_position FROM es_append_one(?, ?, ?, ?, ?, ?, ?, ?)",
        &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_text(st, 1, stream, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_int64(st, 2, expected)) == 0)
        rc = bind_event(st, 3, ev, id, now_ms);
    if (rc == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        *written = sl_db_column_int64(st, 0) == 0;
        *version = sl_db_column_int64(st, 1);
        *position = sl_db_column_int64(st, 2);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = SL_EIO; /* the function always returns one row */
    }
    sl_db_stmt_done(st);
    return rc;
}

/*
 * PostgreSQL fast path, one round trip of a server-side prepared statement: only TRIES the
 * append lock (a transaction advisory lock, held to commit: positions become visible in commit
 * order), then checks and inserts at max(position) + 1 on the statement's snapshot. If the lock
 * was free but an append committed between that snapshot and the lock, the position taken is
 * that append's, so the primary key conflicts and nothing is written (ON CONFLICT DO NOTHING
 * keeps the transaction usable); the slow path then decides.
 */
static int append_one_pg(sl_db *tx, const char *stream, int64_t expected, const sl_es_event *ev,
                         const char *id, int64_t now_ms, int *written, int64_t *version,
                         int64_t *position)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(
        tx,
        "WITH lk AS (SELECT pg_try_advisory_xact_lock(es_lock_key()) AS got), cur AS (SELECT "
        "coalesce((SELECT version FROM es_events WHERE stream = ? ORDER BY version DESC LIMIT "
        "1), 0) AS v, coalesce((SELECT position FROM es_events ORDER BY position DESC LIMIT 1), "
        "0) AS p) INSERT INTO es_events (position, stream, version, id, id_given, type, data, "
        "metadata, created_ms) SELECT cur.p + 1, ?, cur.v + 1, ?, ?, ?, ?, ?, ? FROM lk, cur "
        "WHERE lk.got AND CASE ? WHEN -1 THEN true WHEN -3 THEN cur.v > 0 ELSE cur.v = ? END "
        "ON CONFLICT DO NOTHING RETURNING version, position",
        &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_text(st, 1, stream, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_text(st, 2, stream, SIZE_MAX)) == 0 &&
        (rc = bind_event(st, 3, ev, id, now_ms)) == 0 &&
        (rc = sl_db_bind_int64(st, 9, expected)) == 0)
        rc = sl_db_bind_int64(st, 10, expected);
    if (rc == 0) rc = sl_db_step(st);
    *written = rc == SL_DB_ROW;
    if (rc == SL_DB_ROW) {
        *version = sl_db_column_int64(st, 0);
        *position = sl_db_column_int64(st, 1);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = 0;
    }
    sl_db_stmt_done(st);
    if (rc || *written) return rc;
    return append_one_pg_wait(tx, stream, expected, ev, id, now_ms, written, version, position);
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

/* The first event wrote nothing: a re-send of this very batch (success, nothing written), or a
 * conflict with the stream's actual version. */
static int first_not_written(sl_db *tx, const char *stream, const sl_es_event *events, size_t n,
                             sl_es_result *res)
{
    int same = 0;
    int rc = already_appended(tx, stream, events, n, &same, res);
    if (rc || same) return rc;
    int64_t actual;
    if ((rc = sl_es_stream_version(tx, stream, &actual)) != 0) return rc;
    memset(res, 0, sizeof *res);
    res->actual_version = actual;
    return SL_ECONFLICT;
}

int sl_es_append(sl_db *tx, const char *stream, int64_t expected, const sl_es_event *events,
                 size_t n, int64_t now_wall_ms, sl_es_result *res)
{
    memset(res, 0, sizeof *res);
    if (!sl_db_in_tx(tx)) return SL_ESTATE;
    int rc = check_args(stream, expected, events, n);
    if (rc) return rc;
    if (expected == SL_ES_NO_STREAM) expected = 0;
    append_one_fn one = sl_db_kind(tx) == SL_DB_POSTGRES ? append_one_pg : append_one_sqlite;
    int64_t version = 0, position = 0;
    for (size_t i = 0; i < n; i++) {
        char gen[SL_DB_UUID_STR];
        const char *id = events[i].id;
        if (id == NULL) {
            if ((rc = sl_uuid7_at(now_wall_ms, gen)) != 0) return rc;
            id = gen;
        }
        /* After the first event the stream is at `version`, so the rest expect exactly that. */
        int written = 0;
        rc = one(tx, stream, i == 0 ? expected : version, &events[i], id, now_wall_ms, &written,
                 &version, &position);
        if (rc) return rc;
        if (!written && i == 0) return first_not_written(tx, stream, events, n, res);
        /* Later events can only collide on an id stored before: the caller rolls back. */
        if (!written) return SL_ECONFLICT;
    }
    sl_db_tx_mark(tx, SL_DB_TXF_EVENTS);
    res->version = version;
    res->position = position;
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
    /* On PostgreSQL, lock the subscriber's checkpoint row before reading it: pollers of one
     * subscriber in several processes (or workers) then take turns, and each reads the position
     * the last one committed. Without the lock two pollers read the same position and both apply
     * the same events (a projection adding deltas counts them twice). SQLite's transactions
     * begin IMMEDIATE, which already makes them take turns: no write needed there. */
    if (sl_db_kind(db) == SL_DB_POSTGRES)
        rc = exec_bound(db,
                        "INSERT INTO es_checkpoints (subscriber, position) VALUES (?, ?) "
                        "ON CONFLICT (subscriber) DO UPDATE SET position = es_checkpoints.position",
                        subscriber, 0, NULL, 0);
    if (rc == 0) rc = sl_es_checkpoint(db, subscriber, &c.last);
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
