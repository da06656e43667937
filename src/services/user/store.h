/*
 * The user context's SQL (through include/shoal/db.h, prepared statements
 * only): the write model (users, the write sequence, events into the
 * outbox), the read model (user_view, its watermark), the apply function the
 * read model's subscriptions run, and the local projector that feeds the
 * read model from this database's own outbox.
 *
 * Every function runs on the caller's thread with the caller's connection
 * (one per worker) and borrows its arguments.
 */
#ifndef SHOAL_SVC_USER_STORE_H
#define SHOAL_SVC_USER_STORE_H

#include "domain.h"

#include <shoal/auth.h>
#include <shoal/bus.h>
#include <shoal/db.h>

/* A row of the write model. */
typedef struct user_row {
    user_state s; /* s.position: the last write of this user */
    int64_t version;
    char password_hash[SL_PASSWORD_HASH_MAX];
} user_row;

/* What CreateUser needs. */
typedef struct user_new {
    const char *email; /* normalised */
    const char *name;  /* checked */
    const char *role;  /* "customer" or "admin" */
    const char *password_hash;
} user_new;

/*
 * CreateUser: in one transaction, takes the next position, inserts the user
 * (a new UUIDv7 id, version 1) and writes shop.user.registered.v1 to the
 * outbox (`traceparent` may be NULL). `now_ns` is the wall time. Returns 0
 * with the new state in *out; SL_ECONFLICT when the email is taken (nothing
 * written); SL_ESTATE when `db` is already in a transaction; a database error.
 */
int user_store_create(sl_db *db, const user_new *u, const char *traceparent, int64_t now_ns,
                      user_state *out) SL_MUST_CHECK;

/*
 * UpdateUser: changes the email and/or name (NULL: keep) of user `id` in one
 * transaction with shop.user.updated.v1. When nothing would change, nothing is
 * written and *out holds the current state (its position unchanged).
 * Returns 0; SL_ENOTFOUND; SL_ECONFLICT when the new email belongs to another
 * user (nothing written); a database error.
 */
int user_store_update(sl_db *db, const char *id, const char *email, const char *name,
                      const char *traceparent, int64_t now_ns, user_state *out) SL_MUST_CHECK;

/* Reads the write-model row with this (normalised) email. Returns 0, SL_ENOTFOUND or an error. */
int user_store_by_email(sl_db *db, const char *email, user_row *out) SL_MUST_CHECK;

/* Reads the write-model row with this id. Returns 0, SL_ENOTFOUND or an error. */
int user_store_by_id(sl_db *db, const char *id, user_row *out) SL_MUST_CHECK;

/* Stores in *n the number of users with role "admin" in the write model. */
int user_store_count_admins(sl_db *db, int64_t *n) SL_MUST_CHECK;

/* Stores the last position handed out by a command (0 before the first). */
int user_store_last_position(sl_db *db, int64_t *pos) SL_MUST_CHECK;

/* ---- read model ---------------------------------------------------------------------------- */

/*
 * GetUser on the read model. Returns 0 with the user in *out (out->position
 * is the row's position); SL_ENOTFOUND; an error.
 */
int user_view_get(sl_db *db, const char *id, user_state *out) SL_MUST_CHECK;

/* The view's watermark: every position up to it has been applied. */
int user_view_watermark(sl_db *db, int64_t *wm) SL_MUST_CHECK;

/*
 * ListUsers on the read model, oldest first, optionally only `role` (NULL:
 * all). Appends user objects to `items` (borrowed array) and stores the total
 * number of matching users in *total. Returns 0 or an error (SL_ENOMEM).
 */
int user_view_list(sl_db *db, const char *role, int64_t page, int64_t per_page, json_t *items,
                   int64_t *total) SL_MUST_CHECK;

/* The public JSON of a user: {user_id, email, name, role, created_at, updated_at}. Returns
 * owned (json_decref) or NULL when out of memory. */
json_t *user_json(const user_state *u);

/*
 * Writes `u` into the read model inside `tx`: an upsert of user_view guarded by position (an
 * older state never replaces a newer one), then the watermark moves past every contiguous
 * applied position. Returns 0 or a database error.
 */
int user_view_put(sl_db *tx, const user_state *u) SL_MUST_CHECK;

/*
 * The apply function (events.c) of the read model's subscriptions to shop.user.registered.v1 and
 * shop.user.updated.v1 (sl_event_apply_cb; `svc` is unused). Runs inside the caller's
 * transaction `tx`: an upsert of user_view guarded by position (an older state never
 * replaces a newer one, so redeliveries and reordering are harmless), then the watermark
 * moves past every contiguous applied position. Returns 0; SL_EPARSE with `reason` for data
 * that can never apply (dead letter); another negative code to retry later.
 */
int user_apply_event(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap);

/* The inbox consumer name of the local projector. */
#define USER_PROJECTOR_CONSUMER "user.read_model.local"
#define USER_PROJECTOR_BATCH    100

/*
 * The local projector: applies this database's own outbox rows of the two
 * user event types after the checkpoint `user_view_state.outbox_seq`, in seq
 * order, each through sl_inbox_claim + user_apply_event, up to
 * USER_PROJECTOR_BATCH rows per transaction, until none is left (at most
 * `max_batches`). Serialised between connections by a row lock on
 * user_view_state (commands serialise on user_position, so their outbox
 * rows commit in seq order and none is skipped). An outbox row that can
 * never apply is skipped (it would block every later one), and counted in
 * *skipped. Stores the number applied in *applied (either may be NULL).
 * `db` must not be in a transaction. Returns 0 or a database error.
 */
int user_project_outbox(sl_db *db, int max_batches, int *applied, int *skipped) SL_MUST_CHECK;

/* ---- login throttling (throttle.c) -------------------------------------------------------- */

/*
 * Before a password is checked: in one transaction (serialised across workers and instances
 * on the global counter's row), decides the attempt with user_login_admit() on the counters of
 * `email` (normalised; NULL when malformed), `client` (the client's address) and the global
 * budget, and saves them. Returns 0 (admitted, counted as a failure); SL_ELIMIT with the wait
 * in *retry_ms; a database error. `db` must not be in a transaction.
 */
int user_login_begin(sl_db *db, const user_login_policy *p, const char *email, const char *client,
                     int64_t now_ms, int64_t *retry_ms) SL_MUST_CHECK;

/* After a verified password: user_login_succeeded() on the same counters, and rows quiet for
 * longer than the window are pruned. Returns 0 or a database error. */
int user_login_success(sl_db *db, const user_login_policy *p, const char *email, const char *client,
                       int64_t now_ms) SL_MUST_CHECK;

/* ---- sessions and refresh tokens (sessions.c) ---------------------------------------------- */

#define USER_REFRESH_TOKEN_MAX 48 /* base64url of 32 random bytes: 43 characters */

/* Opens a session of `user_id` lasting `ttl_ms` with its first refresh token. Returns 0 with
 * the session id in `sid` and the token in `token`, or a database error. */
int user_session_open(sl_db *db, const char *user_id, int64_t now_ms, int64_t ttl_ms,
                      char sid[SL_DB_UUID_STR],
                      char token[USER_REFRESH_TOKEN_MAX + 1]) SL_MUST_CHECK;

typedef struct user_refreshed {
    char sid[SL_DB_UUID_STR];
    char user_id[USER_ID_MAX + 1];
    char refresh_token[USER_REFRESH_TOKEN_MAX + 1];
} user_refreshed;

/*
 * Spends refresh token `token` and issues the next one of its session. Returns 0 with *out
 * filled; SL_ESTATE for an unknown token, a revoked or expired session, or a token spent
 * already (which revokes its session); a database error.
 */
int user_session_refresh(sl_db *db, const char *token, int64_t now_ms,
                         user_refreshed *out) SL_MUST_CHECK;

/* Revokes the session of refresh token `token` (spent or not). An unknown token is not an
 * error. Returns 0 or a database error. */
int user_session_logout(sl_db *db, const char *token, int64_t now_ms) SL_MUST_CHECK;

/* Revokes every live session of `user_id` inside the caller's transaction `tx`. */
int user_sessions_revoke_user(sl_db *tx, const char *user_id, int64_t now_ms) SL_MUST_CHECK;

typedef struct user_revoked {
    char sid[SL_DB_UUID_STR];
    int64_t revoked_ms;
} user_revoked;

/*
 * Revocations numbered after `after`, in order, at most `max` read: those revoked at or after
 * `since_ms` go to out[0..*n) (older ones' access tokens have expired), and *last is the
 * number to ask after next (`after` when none; one less than the last read when a full read
 * may have cut its group, so sessions may come twice). Returns 0 or a database error.
 */
int user_sessions_revoked(sl_db *db, int64_t after, int64_t since_ms, size_t max, user_revoked *out,
                          size_t *n, int64_t *last) SL_MUST_CHECK;

/* The number of the last revocation (0 before the first). */
int user_sessions_revoked_head(sl_db *db, int64_t *seq) SL_MUST_CHECK;

#endif /* SHOAL_SVC_USER_STORE_H */
