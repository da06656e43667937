/*
 * Transactional outbox and idempotent inbox (docs/events.md, docs/data.md).
 *
 * A service writes its events with sl_outbox_add() in the same transaction
 * as its state change; a relay drains the `outbox` table in order and hands
 * batches to a publisher (the bus, or a test double), marking rows published
 * only after the publisher confirmed them. A consumer records each event id
 * with sl_inbox_claim() in the transaction that applies the event, so a
 * redelivered event is applied once. Tables come from the library
 * migrations (sl_db_lib_migrations()).
 *
 * The relay is a pump object the caller drives (sl_outbox_relay_pump), plus
 * a thin libuv driver (timer + uv_async wake-ups). See docs/data.md.
 */
#ifndef SHOAL_OUTBOX_H
#define SHOAL_OUTBOX_H

#include <shoal/clock.h>
#include <shoal/common.h>
#include <shoal/db.h>

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* An event to publish. Every string is borrowed for the duration of the call. */
typedef struct sl_outbox_event {
    const char *id;              /* NULL: a new UUIDv7 is generated */
    const char *source;          /* required, e.g. "/shoal/order" */
    const char *type;            /* required, e.g. "shop.order.confirmed.v1" */
    const char *subject;         /* required: the aggregate id; order is kept per subject */
    const char *data_json;       /* the `data` member as JSON text; NULL: no data */
    const char *traceparent;     /* the request's W3C traceparent; NULL: none */
    const char *datacontenttype; /* NULL: "application/json" */
} sl_outbox_event;

/* Largest envelope accepted by sl_outbox_add. */
#define SL_OUTBOX_ENVELOPE_MAX (256 * 1024)

/*
 * Writes `ev` as a CloudEvents 1.0 structured JSON envelope (specversion, id,
 * source, type, subject, time, datacontenttype, traceparent, data) into the
 * outbox, inside the caller's open transaction on `tx`, and marks the
 * transaction with SL_DB_TXF_OUTBOX (so a watching relay wakes after the
 * commit). `now_wall_ns` is the event time. When `id_out` is not NULL the
 * event id is copied there. Returns 0, SL_ESTATE outside a transaction,
 * SL_EINVAL for a missing field or data that is not JSON (or nests deeper than
 * SL_JSON_DEFAULT_MAX_DEPTH - 1, so that consumers can read the envelope), SL_ELIMIT for an
 * envelope over SL_OUTBOX_ENVELOPE_MAX, SL_ECONFLICT for a caller-given id
 * given before (generated UUIDv7 ids are unique by construction and are
 * not checked), or a database error. Caller's thread; borrows everything.
 */
SL_API int sl_outbox_add(sl_db *tx, const sl_outbox_event *ev, int64_t now_wall_ns,
                         char id_out[SL_DB_UUID_STR]) SL_MUST_CHECK;

/*
 * Records that `consumer` processed `event_id`, inside the caller's open
 * transaction. Returns 1 the first time (apply the event, then commit), 0
 * for a duplicate (skip it), SL_ESTATE outside a transaction, or a database
 * error. A rollback forgets the claim, so the event is applied on its next
 * delivery.
 */
SL_API int sl_inbox_claim(sl_db *tx, const char *consumer, const char *event_id,
                          int64_t now_wall_ms) SL_MUST_CHECK;

/*
 * sl_inbox_claim for `n` events at once, in fewer statements: claimed[i] is set to 1 when
 * event_ids[i] is claimed now (apply it), 0 when it was claimed before or earlier in this same
 * list (skip it). Returns 0, SL_ESTATE outside a transaction, SL_EINVAL for an empty consumer or
 * id, or a database error (the transaction must then be rolled back).
 */
SL_API int sl_inbox_claim_many(sl_db *tx, const char *consumer, const char *const *event_ids,
                               size_t n, int64_t now_wall_ms, unsigned char *claimed) SL_MUST_CHECK;

/* Counts unpublished outbox rows into *count and the age of the oldest (0 if none) into
 * *oldest_age_ms, relative to `now_wall_ms`. Returns 0 or a database error. */
SL_API int sl_outbox_backlog(sl_db *db, int64_t now_wall_ms, int64_t *count,
                             int64_t *oldest_age_ms) SL_MUST_CHECK;

/* Retention: deletes published outbox rows published before `cutoff_wall_ms` / inbox ids
 * received before it, storing the number removed in *removed (may be NULL). Unpublished rows
 * are never removed. Returns 0 or a database error; `db` must not be in a transaction. */
SL_API int sl_outbox_prune(sl_db *db, int64_t cutoff_wall_ms, int64_t *removed) SL_MUST_CHECK;
SL_API int sl_inbox_prune(sl_db *db, int64_t cutoff_wall_ms, int64_t *removed) SL_MUST_CHECK;

/* One outbox row handed to a publisher; the pointers are valid until its done callback. */
typedef struct sl_outbox_msg {
    int64_t seq;
    const char *id;
    const char *subject;
    const char *type;
    const char *envelope; /* the CloudEvents JSON, NUL-terminated */
    size_t envelope_len;
} sl_outbox_msg;

/* Completion of one publish: status 0 when every message of the batch was accepted. */
typedef void (*sl_outbox_done_cb)(void *done_data, int status);

/*
 * Where the relay sends events. publish() takes a batch in outbox order and
 * must call done(done_data, status) exactly once, on the relay's thread,
 * either before returning or later. If publish() returns non-zero, done is
 * never called and the batch is retried after a backoff.
 */
typedef struct sl_outbox_publisher {
    int (*publish)(void *ctx, const sl_outbox_msg *msgs, size_t n, sl_outbox_done_cb done,
                   void *done_data);
    void *ctx;
} sl_outbox_publisher;

/* Metrics hook (until the metrics module is wired): `what` is "published" (value = batch
 * size), "publish_failed" (value = consecutive failures), "pruned" (rows removed) or "lease"
 * (1: this relay took the PostgreSQL relay lease, 0: it found it lost). */
typedef void (*sl_outbox_hook_cb)(void *data, const char *what, int64_t value);

typedef struct sl_outbox_relay_options {
    unsigned batch_max;    /* rows per publish; 0 → 64, at most 1024 */
    unsigned max_inflight; /* batches with the publisher at once: 0 → 4, at most 64 */
    int64_t retry_base_ms; /* first backoff; 0 → 100 */
    int64_t retry_max_ms;  /* backoff cap; 0 → 30000 */
    int64_t poll_ms;       /* uv driver: safety poll when idle; 0 → 1000 */
    int64_t retention_ms;  /* prune published outbox rows and inbox ids older; 0 → keep */
    const sl_clock *clock; /* NULL → sl_clock_system() */
    sl_outbox_hook_cb hook;
    void *hook_data;
} sl_outbox_relay_options;

typedef struct sl_outbox_relay sl_outbox_relay;

/*
 * Creates a relay over `db` (borrowed; the relay uses it only between the
 * caller's transactions, on the caller's thread). `pub` and `opt` are copied;
 * opt may be NULL. Returns 0 and the relay in *out (returns owned, free with
 * sl_outbox_relay_free), SL_EINVAL or SL_ENOMEM. Not thread-safe: one thread
 * drives it, except sl_outbox_notify.
 */
SL_API int sl_outbox_relay_new(sl_db *db, const sl_outbox_publisher *pub,
                               const sl_outbox_relay_options *opt,
                               sl_outbox_relay **out) SL_MUST_CHECK;

/*
 * Frees the relay. It must not be started (or must be stopped with its close
 * callbacks run) and its publisher must not hold a batch. NULL is ignored.
 */
SL_API void sl_outbox_relay_free(sl_outbox_relay *r);

/*
 * Does one step of work: when fewer than max_inflight batches are with the
 * publisher and no backoff is pending, reads the next unpublished rows (at
 * most batch_max, in `seq` order, after those already in flight; rows that
 * became visible below them, which PostgreSQL's concurrent commits allow,
 * go first) and publishes them; prunes when retention is due. Batches
 * complete in any order and each is marked published on its own. When one
 * fails, no new batch starts until every batch in flight has completed;
 * then, after the backoff, the relay starts again from the oldest
 * unpublished row. Stores in *next_ms when to pump again: 0 now, > 0 after
 * that many ms, -1 when idle (until notified or a batch completes).
 * Returns the number of events handed to the publisher, or a database
 * error (the relay retries later).
 *
 * On PostgreSQL a relay publishes only while it holds the database's relay
 * lease (a session advisory lock; docs/events.md "Several instances"): it
 * takes the lease, or checks it still holds it, whenever nothing is in
 * flight, at most every poll_ms; without it the pump returns 0 and
 * *next_ms says when to try again (poll_ms).
 */
SL_API int sl_outbox_relay_pump(sl_outbox_relay *r, int64_t *next_ms) SL_MUST_CHECK;

/* 1 when the relay may publish (it holds the relay lease, as last checked, or the backend is
 * SQLite), 0 when it stands by. */
SL_API int sl_outbox_relay_leader(const sl_outbox_relay *r);

/* Returns the number of batches with the publisher (0 when none). */
SL_API int sl_outbox_relay_busy(const sl_outbox_relay *r);

/* Consecutive failed publishes (0 after a success); drives the backoff. */
SL_API int sl_outbox_relay_failures(const sl_outbox_relay *r);

/*
 * The libuv driver: pumps on `loop` (borrowed; it must outlive the relay's
 * handles) from a timer and a uv_async wake-up. Returns 0 or a libuv error.
 * Loop thread only.
 */
SL_API int sl_outbox_relay_start(sl_outbox_relay *r, uv_loop_t *loop) SL_MUST_CHECK;

/* Closes the driver's handles; they are gone after the loop runs their close callbacks
 * (run the loop once more before sl_outbox_relay_free). Loop thread only. */
SL_API void sl_outbox_relay_stop(sl_outbox_relay *r);

/* Wakes a started relay (after a commit that added events). Safe from any thread while the
 * relay is started; a no-op when it is not. */
SL_API void sl_outbox_notify(sl_outbox_relay *r);

/* Installs a commit hook on `db` (one per connection) that notifies `r` after every commit
 * that called sl_outbox_add. `db` must be used on the relay's loop thread or the hook's
 * notify crosses threads through uv_async (safe). */
SL_API void sl_outbox_relay_watch(sl_outbox_relay *r, sl_db *db);

#endif /* SHOAL_OUTBOX_H */
