/*
 * Event store over sl_db (docs/data.md): streams of events with per-stream
 * versions (the first event of a stream is version 1) and a global position,
 * optimistic appends with an expected version, reads by stream or from a
 * global position, snapshots, and catch-up subscriptions with checkpoints
 * kept in the subscriber's own transaction.
 *
 * Positions are assigned under a lock held until commit (SQLite's single
 * writer; on PostgreSQL a transaction advisory lock per schema), so they
 * become visible strictly in order on both backends and a catch-up
 * subscriber can never pass over a position that commits later (the gap
 * PostgreSQL sequences would leave). docs/data.md explains the trade-off.
 *
 * Every function runs on the caller's thread over the caller's connection;
 * tables come from the library migrations (sl_db_lib_migrations()).
 */
#ifndef SHOAL_EVENTSTORE_H
#define SHOAL_EVENTSTORE_H

#include <shoal/common.h>
#include <shoal/db.h>

#include <stddef.h>
#include <stdint.h>

/* Expected-version values besides an exact version (>= 1). 0 means SL_ES_NO_STREAM. */
#define SL_ES_ANY           (-1)
#define SL_ES_NO_STREAM     (-2)
#define SL_ES_STREAM_EXISTS (-3)

/* Most events in one append. */
#define SL_ES_BATCH_MAX 1000

/* An event to append; borrowed for the duration of the call. */
typedef struct sl_es_event {
    const char *id;       /* unique across the store; NULL: a new UUIDv7 (then no idempotency) */
    const char *type;     /* required */
    const char *data;     /* required: the payload, usually JSON text */
    const char *metadata; /* optional (NULL) */
} sl_es_event;

typedef struct sl_es_result {
    int64_t version;        /* stream version after the append (its last event) */
    int64_t position;       /* global position of the last event */
    int64_t actual_version; /* on SL_ECONFLICT: the stream's version (0: no stream) */
} sl_es_result;

/*
 * Appends events[0..n) to `stream` inside the caller's open transaction on
 * `tx`, if the stream's version matches `expected` (SL_ES_ANY,
 * SL_ES_NO_STREAM, SL_ES_STREAM_EXISTS or an exact version). All or nothing.
 * Re-sending a batch whose event ids were all already appended, in the same
 * order to the same stream, succeeds again without writing (idempotent),
 * with the original version and position in *res, whatever `expected` says.
 * Caller-supplied ids are unique across the store (a partial unique index);
 * generated ids (id NULL) are UUIDv7 and skip that index, which makes such
 * appends cheaper (docs/data.md).
 * Returns 0; SL_ECONFLICT on a version mismatch (res->actual_version holds
 * the stream's version) or for ids already used otherwise; SL_EINVAL for bad
 * arguments; SL_ESTATE outside a transaction; or a database error. After an
 * error the caller rolls back (on PostgreSQL a failed statement aborts the
 * transaction). Borrows everything.
 */
SL_API int sl_es_append(sl_db *tx, const char *stream, int64_t expected, const sl_es_event *events,
                        size_t n, int64_t now_wall_ms, sl_es_result *res) SL_MUST_CHECK;

/* Stores the stream's version (0 when it does not exist) in *version. */
SL_API int sl_es_stream_version(sl_db *db, const char *stream, int64_t *version) SL_MUST_CHECK;

/* A stored event; every pointer is valid only during the callback. metadata may be NULL. */
typedef struct sl_es_record {
    const char *stream;
    int64_t version;
    int64_t position;
    const char *id;
    const char *type;
    const char *data;
    size_t data_len;
    const char *metadata;
    int64_t created_ms;
} sl_es_record;

/* Called per event read; a non-zero return stops the read and is returned by it. */
typedef int (*sl_es_read_cb)(void *data, const sl_es_record *rec);

enum { SL_ES_FORWARDS = 0, SL_ES_BACKWARDS = 1 };

/*
 * Reads at most `max_count` (1..SL_ES_BATCH_MAX) events of `stream`:
 * forwards from version `from` (inclusive) up, or backwards from `from` down
 * (INT64_MAX: from the end). Calls cb for each; stores how many were read in
 * *count (may be NULL). Returns 0, the callback's non-zero value, SL_EINVAL,
 * or a database error. Call it again from the next version for the next batch.
 */
SL_API int sl_es_read_stream(sl_db *db, const char *stream, int64_t from, int direction,
                             size_t max_count, sl_es_read_cb cb, void *data,
                             size_t *count) SL_MUST_CHECK;

/* Reads at most `max_count` events of every stream with a global position > `after`, in
 * position order. Same returns as sl_es_read_stream. */
SL_API int sl_es_read_all(sl_db *db, int64_t after, size_t max_count, sl_es_read_cb cb, void *data,
                          size_t *count) SL_MUST_CHECK;

/*
 * Snapshots: save stores `data` as the state of `stream` at `version`
 * (replacing older snapshots of the stream); load fetches the latest into
 * *version and *data (returns owned, free with free()), or SL_ENOTFOUND.
 */
SL_API int sl_es_snapshot_save(sl_db *db, const char *stream, int64_t version, const char *data,
                               int64_t now_wall_ms) SL_MUST_CHECK;
SL_API int sl_es_snapshot_load(sl_db *db, const char *stream, int64_t *version,
                               char **data) SL_MUST_CHECK;

/* Returns 1 when an append moving a stream from `old_version` to `new_version` crossed a
 * multiple of `every` (snapshot every N events), 0 otherwise or when every <= 0. */
SL_API int sl_es_snapshot_due(int64_t old_version, int64_t new_version, int64_t every);

/* Handles one event of a catch-up subscription inside the subscriber's transaction `tx`;
 * non-zero aborts the batch (rolled back, checkpoint unchanged) and is returned by poll. */
typedef int (*sl_es_handle_cb)(void *data, sl_db *tx, const sl_es_record *rec);

/*
 * One step of the catch-up subscription `subscriber`: in one transaction,
 * locks and reads its checkpoint (pollers of one subscriber on other
 * connections wait, so each event is handed over once), hands the next events
 * (at most `batch_max`) to cb,
 * stores the new checkpoint and commits. Stores the number handled in
 * *handled; 0 means caught up (poll again after the next append, e.g. from a
 * commit hook with SL_DB_TXF_EVENTS). Returns 0, the handler's error, or a
 * database error. `db` must not be in a transaction.
 */
SL_API int sl_es_subscription_poll(sl_db *db, const char *subscriber, size_t batch_max,
                                   sl_es_handle_cb cb, void *data, size_t *handled) SL_MUST_CHECK;

/* Stores the subscriber's checkpoint (0 if it never ran) in *position. */
SL_API int sl_es_checkpoint(sl_db *db, const char *subscriber, int64_t *position) SL_MUST_CHECK;

#endif /* SHOAL_EVENTSTORE_H */
