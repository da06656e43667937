/*
 * Sagas (docs/sagas.md): orchestrated, durable multi-step transactions.
 *
 * Three layers, from pure to wired:
 *
 * 1. The engine (src/lib/saga/engine.c, state.c): a pure state machine.
 *    sl_saga_apply(def, state, event, now, rand, out) takes one event ("step
 *    S replied ok", "refused", "failed transiently", "timer fired",
 *    "resume") and writes the commands to run ("send step S action with
 *    idempotency-key K", "wake me at T", "finished with outcome X") and the
 *    history entries of the transition into `out`. No I/O, no clock, no
 *    allocation; randomness (backoff jitter) from an injected sl_rand.
 * 2. The store (store.c): the state and its history in the orchestrator's
 *    database through sl_db (tables saga_instances and saga_history, library
 *    migration 0003). sl_saga_store_apply() loads, applies and saves in one
 *    transaction with optimistic concurrency, so the state is written before
 *    a step is sent and after each reply.
 * 3. The driver (driver.c, uvtimer.c): runs the commands through an abstract
 *    executor (the HTTP client, plugged in by the service) and an abstract
 *    timer (a libuv implementation is provided), feeds replies back as
 *    events, resumes unfinished sagas at start, sweeps for sagas nobody
 *    drives, wakes waiting retries when a participant answers again, and
 *    aborts before the pivot (an admin, or the definition's deadline).
 *
 * A definition is an ordered list of steps. Steps before the pivot are
 * compensable (each has an action and a compensation); the pivot is the point
 * of no return (its refusal compensates the steps before it; it has no
 * compensation); steps after the pivot are retried until they succeed and are
 * never compensated. docs/sagas.md describes the model, the states, what is
 * persisted when, and what `stuck` means for an operator.
 *
 * Threading: definitions are immutable and may be shared; a state, a store
 * call's connection and a driver belong to one thread (the driver to one
 * loop).
 */
#ifndef SHOAL_SAGA_H
#define SHOAL_SAGA_H

#include <shoal/clock.h>
#include <shoal/common.h>
#include <shoal/db.h>
#include <shoal/metrics.h>
#include <shoal/rand.h>
#include <shoal/retry.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define SL_SAGA_STEPS_MAX    16  /* steps per definition */
#define SL_SAGA_NAME_MAX     32  /* step and type names, [a-z0-9_-], without NUL */
#define SL_SAGA_ID_MAX       64  /* saga ids, [A-Za-z0-9_.-], without NUL */
#define SL_SAGA_REASON_MAX   256 /* refusal / stuck reasons, truncated beyond, with NUL */
#define SL_SAGA_KEY_MAX      (SL_SAGA_ID_MAX + SL_SAGA_NAME_MAX + 16)
#define SL_SAGA_COMMANDS_MAX 4    /* commands one transition can emit */
#define SL_SAGA_HISTORY_MAX  4    /* history entries one transition can append */
#define SL_SAGA_DETAIL_MAX   1024 /* bytes of a reply summary kept in the history */

/* ---- Printable enums (one X-macro table each) ---- */

/* Saga status. running/compensating are unfinished; completed/compensated are final; stuck
 * waits for an operator. */
#define SL_SAGA_STATUS_MAP(X)                                                                      \
    X(RUNNING, "running")                                                                          \
    X(COMPENSATING, "compensating")                                                                \
    X(COMPLETED, "completed")                                                                      \
    X(COMPENSATED, "compensated")                                                                  \
    X(STUCK, "stuck")

typedef enum sl_saga_status {
#define SL_SAGA_STATUS_ENUM_(name, text) SL_SAGA_##name,
    SL_SAGA_STATUS_MAP(SL_SAGA_STATUS_ENUM_)
#undef SL_SAGA_STATUS_ENUM_
        SL_SAGA_STATUS_COUNT
} sl_saga_status;

/* Per-step status. */
#define SL_SAGA_STEP_STATUS_MAP(X)                                                                 \
    X(PENDING, "pending")           /* not started */                                              \
    X(ACTING, "acting")             /* action sent or waiting for a retry */                       \
    X(DONE, "done")                 /* action replied ok */                                        \
    X(REFUSED, "refused")           /* action refused (business error): had no effect */           \
    X(COMPENSATING, "compensating") /* compensation sent or waiting for a retry */                 \
    X(COMPENSATED, "compensated")   /* compensation replied ok */

typedef enum sl_saga_step_status {
#define SL_SAGA_STEP_STATUS_ENUM_(name, text) SL_SAGA_STEP_##name,
    SL_SAGA_STEP_STATUS_MAP(SL_SAGA_STEP_STATUS_ENUM_)
#undef SL_SAGA_STEP_STATUS_ENUM_
        SL_SAGA_STEP_STATUS_COUNT
} sl_saga_step_status;

/* Which call of a step. */
typedef enum sl_saga_call_kind { SL_SAGA_ACTION = 0, SL_SAGA_COMPENSATION = 1 } sl_saga_call_kind;

/* History entry kinds. */
#define SL_SAGA_HIST_MAP(X)                                                                        \
    X(CREATED, "created")         /* the instance was stored */                                    \
    X(SENT, "sent")               /* a call was handed to the executor */                          \
    X(REPLIED, "replied")         /* the call replied ok (detail: reply summary) */                \
    X(REFUSED, "refused")         /* business refusal (detail: reason) */                          \
    X(FAILED, "failed")           /* transient failure (detail: why) */                            \
    X(TIMEOUT, "timeout")         /* no reply before the step's timeout */                         \
    X(RETRY, "retry")             /* a retry is scheduled (detail: delay) */                       \
    X(RESUMED, "resumed")         /* resumed after a restart (or an admin resume) */               \
    X(STUCK, "stuck")             /* parked for an operator (detail: why) */                       \
    X(COMPLETED, "completed")     /* every step done */                                            \
    X(COMPENSATED, "compensated") /* every done step compensated */                                \
    X(ABORTED, "aborted")         /* deadline passed or admin abort: compensating (detail: why) */

typedef enum sl_saga_hist_kind {
#define SL_SAGA_HIST_ENUM_(name, text) SL_SAGA_HIST_##name,
    SL_SAGA_HIST_MAP(SL_SAGA_HIST_ENUM_)
#undef SL_SAGA_HIST_ENUM_
        SL_SAGA_HIST_COUNT
} sl_saga_hist_kind;

/* Static printable names ("running", "done", "refused", "action"), or "unknown". */
SL_API const char *sl_saga_status_name(sl_saga_status s);
SL_API const char *sl_saga_step_status_name(sl_saga_step_status s);
SL_API const char *sl_saga_hist_kind_name(sl_saga_hist_kind k);
SL_API const char *sl_saga_call_name(sl_saga_call_kind c);
/* Parses a status name; returns 0 and *out, or SL_EPARSE. */
SL_API int sl_saga_status_parse(const char *s, sl_saga_status *out) SL_MUST_CHECK;

/* True for completed and compensated. */
SL_API bool sl_saga_status_final(sl_saga_status s);

/* ---- Definitions ---- */

typedef struct sl_saga_step_def {
    const char *name;       /* [a-z0-9_-]{1,SL_SAGA_NAME_MAX}, unique in the definition */
    sl_retry_config retry;  /* backoff between attempts: base_ms, cap_ms, jitter (other fields
                               are not used: the bounds below replace max_retries) */
    int64_t timeout_ms;     /* one attempt's timeout (> 0); no reply by then = transient failure */
    uint32_t max_attempts;  /* attempts of one call (action or compensation) before the saga is
                               parked as stuck; 0 = no bound */
    int64_t stuck_after_ms; /* stuck when a call has failed for this long since its first
                               attempt; 0 = no bound */
} sl_saga_step_def;

typedef struct sl_saga_def {
    const char *type; /* [a-z0-9_-]{1,SL_SAGA_NAME_MAX} ("checkout") */
    const sl_saga_step_def *steps;
    size_t n_steps; /* 1..SL_SAGA_STEPS_MAX */
    size_t pivot;   /* index of the pivot step (< n_steps); steps before it are compensable */
    /* The saga must pass the pivot within this many ms of its creation, else it aborts on its
     * own (compensates with reason "timeout"); 0 = no deadline. */
    int64_t deadline_ms;
    /* The pivot has a compensation that is safe whether or not the pivot took effect and that
     * makes a late pivot attempt fail (a refund that leaves a tombstone). Only then can a saga
     * whose pivot was sent but not answered be aborted; the compensation is never sent for a
     * pivot that replied ok. */
    bool pivot_compensable;
} sl_saga_def;

/*
 * Returns 0 when `def` is usable, SL_ECONFIG otherwise (bad counts or names,
 * duplicate step names, pivot out of range, timeout <= 0, invalid backoff per
 * sl_retry_config_valid, negative bounds). Borrows `def`. Pure.
 */
SL_API int sl_saga_def_valid(const sl_saga_def *def) SL_MUST_CHECK;

/* ---- Instance state ---- */

/* Where the current call is. */
typedef enum sl_saga_phase {
    SL_SAGA_PHASE_IDLE = 0, /* created, nothing sent yet (a START or RESUME sends) */
    SL_SAGA_PHASE_INFLIGHT, /* attempt `attempt` sent; wake_at_ms is its timeout */
    SL_SAGA_PHASE_WAITING,  /* attempt `attempt` failed; the next one is sent at wake_at_ms */
    SL_SAGA_PHASE_NONE,     /* final or stuck: nothing pending */
} sl_saga_phase;

/*
 * One instance's state: plain data, caller's storage, copyable (a copy is a
 * snapshot). Fields are read freely; only the engine writes them.
 */
typedef struct sl_saga_state {
    char id[SL_SAGA_ID_MAX + 1];
    sl_saga_status status;
    sl_saga_status stuck_from; /* running or compensating: where an admin resume continues */
    uint32_t step;             /* the step whose call is current */
    sl_saga_call_kind call;    /* action while running, compensation while compensating */
    sl_saga_phase phase;
    uint32_t attempt;         /* number of the current call's last attempt sent (1, 2, …) */
    uint32_t bound_base;      /* attempts before this run of the call (an admin resume
                                 restarts the bound without reusing attempt numbers) */
    int64_t first_attempt_ms; /* wall ms of the current call's first attempt */
    int64_t wake_at_ms;       /* timeout or retry time of the current call; 0 = none */
    int64_t prev_delay_ms;    /* last backoff delay (decorrelated jitter) */
    uint32_t n_steps;         /* the definition's step count */
    uint8_t step_status[SL_SAGA_STEPS_MAX]; /* sl_saga_step_status, n_steps used */
    uint32_t attempts_total;                /* every attempt of every call (history and metrics) */
    uint32_t history_seq;                   /* seq of the last history entry */
    int64_t deadline_at_ms;          /* wall ms by which the pivot must be passed; 0 = none */
    uint64_t version;                /* store's optimistic-concurrency version (0 before create) */
    char reason[SL_SAGA_REASON_MAX]; /* the business refusal that caused compensation */
    char stuck_reason[SL_SAGA_REASON_MAX]; /* why it is (or last was) stuck */
} sl_saga_state;

/*
 * Initialises `st` for a new instance of `def` with id `id` (copied;
 * [A-Za-z0-9_.-]{1,SL_SAGA_ID_MAX}): running, step 0, nothing sent. Appends
 * no history (the store writes the `created` entry). Returns 0 or SL_EINVAL
 * for a bad id.
 */
SL_API int sl_saga_state_init(sl_saga_state *st, const sl_saga_def *def,
                              const char *id) SL_MUST_CHECK;

/*
 * Serialises `st` (without id and version, which the store keeps in
 * columns) as a JSON object. Returns 0 and *out (returns owned: free with
 * free(); NUL-terminated), or SL_ENOMEM.
 */
SL_API int sl_saga_state_to_json(const sl_saga_state *st, char **out) SL_MUST_CHECK;

/*
 * Parses `len` bytes of JSON written by sl_saga_state_to_json into `st`,
 * checking every field against `def` (database contents are outside input:
 * never asserted). `id` and `version` are set by the caller. Returns 0, or
 * SL_EPARSE (malformed, a field missing, of the wrong type or out of range).
 */
SL_API int sl_saga_state_from_json(sl_saga_state *st, const sl_saga_def *def, const char *json,
                                   size_t len) SL_MUST_CHECK;

/* ---- Events, commands, history ---- */

typedef enum sl_saga_event_kind {
    SL_SAGA_EV_START,   /* first kick after creation */
    SL_SAGA_EV_OK,      /* the call replied ok; data = reply summary */
    SL_SAGA_EV_REFUSED, /* business refusal (409/422); data = reason */
    SL_SAGA_EV_FAILED,  /* transient failure (timeout, 503, breaker open); data = why */
    SL_SAGA_EV_TIMER,   /* the timer armed for wake_at_ms fired */
    SL_SAGA_EV_RESUME,  /* the process restarted (or lost an event): re-send what was in flight */
    SL_SAGA_EV_ADMIN_RESUME, /* an operator resumes a stuck saga */
    SL_SAGA_EV_WAKE,  /* the participant of the waiting call is back: retry now, not at wake_at */
    SL_SAGA_EV_ABORT, /* an operator aborts: compensate now (only before the pivot is passed) */
} sl_saga_event_kind;

typedef struct sl_saga_event {
    sl_saga_event_kind kind;
    /* Replies (OK, REFUSED, FAILED) name the call they answer; a reply for any other call or
     * attempt is stale and ignored. */
    uint32_t step;
    sl_saga_call_kind call;
    uint32_t attempt;
    sl_slice data;          /* borrowed; reply summary, reason or failure text */
    int64_t retry_after_ms; /* FAILED: the participant's Retry-After (0 = none) */
} sl_saga_event;

typedef enum sl_saga_cmd_kind {
    SL_SAGA_CMD_SEND,     /* send step `step`'s `call` with `key`, attempt `attempt` */
    SL_SAGA_CMD_SCHEDULE, /* wake the saga (TIMER event) at `at_ms` */
    SL_SAGA_CMD_FINISHED, /* the saga reached `outcome` (completed, compensated or stuck) */
} sl_saga_cmd_kind;

typedef struct sl_saga_command {
    sl_saga_cmd_kind kind;
    uint32_t step;
    sl_saga_call_kind call;
    uint32_t attempt;
    int64_t timeout_ms;
    int64_t at_ms;
    sl_saga_status outcome;
    char key[SL_SAGA_KEY_MAX]; /* idempotency-key: "<saga id>:<step name>:<action|compensation>" */
} sl_saga_command;

typedef struct sl_saga_history_entry {
    uint32_t seq; /* 1, 2, … per saga */
    int64_t at_ms;
    sl_saga_hist_kind kind;
    int32_t step; /* -1 for saga-level entries */
    sl_saga_call_kind call;
    uint32_t attempt;
    sl_slice detail; /* borrowed from the event or static; valid until the event's data is */
} sl_saga_history_entry;

/* What one transition produced. Caller's storage; sl_saga_apply resets it. */
typedef struct sl_saga_output {
    sl_saga_command cmds[SL_SAGA_COMMANDS_MAX];
    size_t n_cmds;
    sl_saga_history_entry hist[SL_SAGA_HISTORY_MAX];
    size_t n_hist;
    sl_saga_status from; /* status before the transition (for metrics) */
    char _text[SL_SAGA_HISTORY_MAX][SL_SAGA_REASON_MAX]; /* storage for formatted details */
} sl_saga_output;

/* sl_saga_apply result besides 0 (applied): the event did not apply and nothing changed. */
enum { SL_SAGA_IGNORED = 1 };

/*
 * The transition function. Applies `ev` at wall time `now_ms` to `st`
 * (modified in place) under `def`, drawing backoff jitter from `rand`, and
 * writes the resulting commands and history entries to `out`.
 * Returns 0 when the event applied (`st` changed, at least one history entry),
 * SL_SAGA_IGNORED for a stale or irrelevant event (a reply to an older
 * attempt, a timer before its time, anything after the end; `st` unchanged,
 * `out` empty), SL_ESTATE for an ABORT the saga cannot take (past the pivot,
 * finished, or a sent pivot without a compensation; `st` unchanged), or
 * SL_EINVAL for an event that names a step out of range.
 * `st` must come from sl_saga_state_init or sl_saga_state_from_json with the
 * same `def`. Pure; borrows everything; history details borrow ev->data.
 */
SL_API int sl_saga_apply(const sl_saga_def *def, sl_saga_state *st, const sl_saga_event *ev,
                         int64_t now_ms, sl_rand *rand, sl_saga_output *out) SL_MUST_CHECK;

/*
 * When the saga next needs a TIMER event: the earlier of its call's wake_at_ms and, while the
 * deadline can still abort it, deadline_at_ms. 0 = never (idle, final or stuck). Pure.
 */
SL_API int64_t sl_saga_due_ms(const sl_saga_def *def, const sl_saga_state *st);

/* True when an ABORT (or the deadline) can still compensate `st`: running, the pivot not
 * passed, and the current call compensable (see sl_saga_def.pivot_compensable). Pure. */
SL_API bool sl_saga_abortable(const sl_saga_def *def, const sl_saga_state *st);

/* ---- Store (sl_db) ---- */

/* The saga tables ship in the library migrations (sl_db_lib_migrations(), version 3). */

/*
 * Creates instance `id` of `def` with its immutable `input_json` (borrowed,
 * any JSON text the executor needs to build requests) in the caller's open
 * transaction `tx` (so the business row and its saga commit together), with
 * a `created` history entry. Does not send anything: after commit, call
 * sl_saga_driver_start (if that fails, sl_saga_driver_sweep picks it up). Returns 0,
 * SL_ESTATE outside a transaction, SL_EINVAL (bad id), SL_ECONFLICT (id
 * taken), or a mapped database error.
 */
SL_API int sl_saga_store_create(sl_db *tx, const sl_saga_def *def, const char *id,
                                const char *input_json, int64_t now_ms) SL_MUST_CHECK;

/*
 * Loads instance `id` (its state and version) into *st. Returns 0,
 * SL_ENOTFOUND, SL_EPARSE (stored state unreadable or of another type), or a
 * database error.
 */
SL_API int sl_saga_store_load(sl_db *db, const sl_saga_def *def, const char *id,
                              sl_saga_state *st) SL_MUST_CHECK;

/*
 * Reads instance `id`'s input. Returns 0 and *out (returns owned: free with
 * free()), SL_ENOTFOUND, SL_ENOMEM or a database error.
 */
SL_API int sl_saga_store_input(sl_db *db, const char *id, char **out) SL_MUST_CHECK;

/*
 * Writes `st` (an instance of `def`: the result of applying events to the
 * state loaded at version st->version) and the `n_hist` entries of `hist` (details truncated to
 * SL_SAGA_DETAIL_MAX bytes), only if the stored version is still
 * st->version; the row's version becomes st->version + 1 and so does
 * st->version. Uses the caller's transaction when one is open (if the caller
 * then rolls back, st->version is ahead: reload), else its own.
 * Returns 0, SL_ECONFLICT (someone saved first, or the row is gone; nothing
 * written), SL_ENOMEM or a database error.
 */
SL_API int sl_saga_store_save(sl_db *db, const sl_saga_def *def, sl_saga_state *st,
                              const sl_saga_history_entry *hist, size_t n_hist,
                              int64_t now_ms) SL_MUST_CHECK;

/*
 * load → sl_saga_apply → save in ONE transaction (db must not be in one):
 * the way to feed an event. On 0 stores the new state in *st and the
 * transition in *out; the commands are to be executed after this returns
 * (the state is durable before anything is sent). When the event is ignored
 * returns SL_SAGA_IGNORED and writes nothing. Returns the errors of load,
 * apply and save (SL_ECONFLICT after another writer; retry from the start).
 */
SL_API int sl_saga_store_apply(sl_db *db, const sl_saga_def *def, const char *id,
                               const sl_saga_event *ev, int64_t now_ms, sl_rand *rand,
                               sl_saga_state *st, sl_saga_output *out) SL_MUST_CHECK;

/*
 * Leases (several instances on one database; docs/sagas.md "Several instances"). A driver
 * instance (`owner`, unique per driver) claims a saga before it drives it: the claim takes a
 * lease nobody holds, one `owner` holds, or one that expired at `now_ms` (wall clock), makes it
 * `owner`'s until now_ms + lease_ms and bumps the row's lease version, stored in
 * *lease_version. Returns 0, SL_EBUSY (another owner's lease is live, or another instance
 * claimed it at the same moment), SL_ENOTFOUND, SL_EINVAL or a database error.
 */
SL_API int sl_saga_store_claim(sl_db *db, const char *id, const char *owner, int64_t now_ms,
                               int64_t lease_ms, int64_t *lease_version) SL_MUST_CHECK;

/* Longest owner name. */
#define SL_SAGA_OWNER_MAX 63

/*
 * Owner liveness, so a dead instance's live leases need not be waited out: a driver declares
 * its owner up while it runs (on PostgreSQL: a session advisory lock keyed by the name, which
 * the server drops with the session when the process dies; in any case a process-wide list).
 * sl_saga_store_claim also takes a live lease whose owner is neither up in this process nor,
 * on PostgreSQL, holding its lock (on SQLite, one process per file, every other owner is
 * gone). up: 0, SL_EBUSY (another session holds the name), SL_ELIMIT, SL_EINVAL or a
 * database error; down: no error.
 */
SL_API int sl_saga_store_owner_up(sl_db *db, const char *owner) SL_MUST_CHECK;
SL_API void sl_saga_store_owner_down(sl_db *db, const char *owner);

/* Extends every lease `owner` holds on sagas of `type` to now_ms + lease_ms; the rows in
 * *renewed (may be NULL). A lease another instance took over is not touched. */
SL_API int sl_saga_store_renew(sl_db *db, const char *type, const char *owner, int64_t now_ms,
                               int64_t lease_ms, int64_t *renewed) SL_MUST_CHECK;

/* Gives back every lease `owner` holds on sagas of `type` (a clean stop: another instance may
 * claim them at once). */
SL_API int sl_saga_store_release(sl_db *db, const char *type, const char *owner) SL_MUST_CHECK;

/*
 * sl_saga_store_apply fenced by a lease: the write happens only while the row's lease version
 * is still `lease_version` (what sl_saga_store_claim returned), checked in the same
 * transaction and again by the UPDATE. Returns SL_EBUSY when another instance claimed the saga
 * since (this one must stop driving it), else as sl_saga_store_apply. A saga that leaves
 * running/compensating gives its lease back in the same write.
 */
SL_API int sl_saga_store_apply_leased(sl_db *db, const sl_saga_def *def, const char *id,
                                      int64_t lease_version, const sl_saga_event *ev,
                                      int64_t now_ms, sl_rand *rand, sl_saga_state *st,
                                      sl_saga_output *out) SL_MUST_CHECK;

/* One row of a listing; strings are copies. */
typedef struct sl_saga_summary {
    char id[SL_SAGA_ID_MAX + 1];
    char type[SL_SAGA_NAME_MAX + 1];
    sl_saga_status status;
    int64_t created_ms, updated_ms;
    int64_t next_wake_ms; /* 0 = none */
    char stuck_reason[SL_SAGA_REASON_MAX];
    int32_t step; /* current step index (sl_saga_store_page only; -1 elsewhere or unreadable) */
} sl_saga_summary;

typedef enum sl_saga_filter {
    SL_SAGA_LIST_UNFINISHED, /* running and compensating: resumed at start */
    SL_SAGA_LIST_STUCK,      /* for the admin endpoint */
} sl_saga_filter;

/*
 * Lists instances of `type` (NULL: every type) matching `filter`, by id,
 * strictly after `after_id` (NULL or "" from the start: keyset paging), at
 * most `cap` into `out`; stores the count in *n. Returns 0 or a database
 * error.
 */
SL_API int sl_saga_store_list(sl_db *db, const char *type, sl_saga_filter filter,
                              const char *after_id, sl_saga_summary *out, size_t cap,
                              size_t *n) SL_MUST_CHECK;

/*
 * Lists unfinished instances of `type` due at or before `due_before_ms` (their stored next
 * wake-up, or their creation for an unstarted one, lies that far in the past: nobody is
 * driving them), by id, strictly after `after_id`, at most `cap`; the count in *n. For the
 * sweep. Returns 0 or a database error.
 */
SL_API int sl_saga_store_list_due(sl_db *db, const char *type, int64_t due_before_ms,
                                  const char *after_id, sl_saga_summary *out, size_t cap,
                                  size_t *n) SL_MUST_CHECK;

/*
 * Lists unfinished instances of `type` that were claimed once and whose lease expired at
 * `now_ms` (the instance that drove them stopped renewing: crashed, stalled or cut off) or was
 * given back (a clean stop, sl_saga_store_release), by id, strictly
 * after `after_id`, at most `cap`; the count in *n. For the sweep's takeover. Returns 0 or a
 * database error.
 */
SL_API int sl_saga_store_list_orphaned(sl_db *db, const char *type, int64_t now_ms,
                                       const char *after_id, sl_saga_summary *out, size_t cap,
                                       size_t *n) SL_MUST_CHECK;

/*
 * One page (1-based `page`, `per_page` rows, at most `cap` into `out`) of instances, newest
 * update first, filtered by `type` (NULL: all) and `status` (SL_SAGA_STATUS_COUNT: all); the
 * rows in *n, the number matching in *total; each summary's `step` is read from its state.
 * For the admin listing. Returns 0 or a database error.
 */
SL_API int sl_saga_store_page(sl_db *db, const char *type, sl_saga_status status, int64_t page,
                              int64_t per_page, sl_saga_summary *out, size_t cap, size_t *n,
                              int64_t *total) SL_MUST_CHECK;

/* A stored history row; strings borrowed for the callback's duration. */
typedef struct sl_saga_history_row {
    uint32_t seq;
    int64_t at_ms;
    const char *kind; /* sl_saga_hist_kind name */
    const char *step; /* step name, "" for saga-level entries */
    const char *call; /* "action", "compensation" or "" */
    uint32_t attempt;
    const char *detail;
} sl_saga_history_row;

typedef int (*sl_saga_history_cb)(void *data, const sl_saga_history_row *row);

/*
 * Calls `cb` for instance `id`'s history rows with seq > after_seq in seq
 * order, at most `limit` rows (0: 1000). `cb` must not use `db`; a non-zero
 * return stops the walk and is returned. Returns 0 or a database error.
 */
SL_API int sl_saga_store_history(sl_db *db, const char *id, uint32_t after_seq, size_t limit,
                                 sl_saga_history_cb cb, void *data) SL_MUST_CHECK;

/*
 * Counts instances per (type, status) and calls `cb` for each group (strings
 * borrowed for the call), e.g. to initialise the saga_instances gauge.
 * Returns 0 or a database error.
 */
SL_API int sl_saga_store_count(sl_db *db,
                               void (*cb)(void *data, const char *type, sl_saga_status status,
                                          int64_t count),
                               void *data) SL_MUST_CHECK;

/* ---- Metrics ---- */

/*
 * Status-change hook: `from` is SL_SAGA_STATUS_COUNT for a saga the driver
 * started (it was created just before). Runs on the driver's thread.
 */
typedef void (*sl_saga_metrics_cb)(void *data, const char *type, sl_saga_status from,
                                   sl_saga_status to);

/*
 * Prometheus wiring: `saga_instances{type,status}` (gauge) and
 * `saga_transitions_total{type,from,to}` (counter; from="new" for a started
 * saga). Caller's storage; fields private.
 */
typedef struct sl_saga_metrics {
    sl_metric_family *_instances;
    sl_metric_family *_transitions;
    unsigned _shard;
} sl_saga_metrics;

/*
 * Registers the two families in `reg` (once per registry: every saga type
 * shares them, so one sl_saga_metrics serves every driver of a worker).
 * `shard` is the calling worker's metrics shard. Returns 0 or the errors of
 * sl_metrics_gauge / sl_metrics_counter (SL_EEXIST when already registered).
 * Use sl_saga_metrics_hook as the driver's metrics_cb with `m` as its data;
 * it looks series up under the registry mutex, which is fine at saga rates
 * (a few transitions per saga), not per request.
 */
SL_API int sl_saga_metrics_init(sl_saga_metrics *m, sl_metrics *reg, unsigned shard) SL_MUST_CHECK;
/* Moves one instance of `type` from gauge `from` (none when SL_SAGA_STATUS_COUNT) to `to` and
 * counts the transition. `m` is an sl_saga_metrics. */
SL_API void sl_saga_metrics_hook(void *m, const char *type, sl_saga_status from, sl_saga_status to);
/* Sets the gauge of (type, status) to `count`; fits sl_saga_store_count's callback. */
SL_API void sl_saga_metrics_set(void *m, const char *type, sl_saga_status status, int64_t count);

/* ---- Driver ---- */

/* One call for the executor to make; everything borrowed for the duration of send(). */
typedef struct sl_saga_call {
    const char *saga_id;
    const char *saga_type;
    uint32_t step;
    const char *step_name;
    sl_saga_call_kind call;
    uint32_t attempt;
    const char *idempotency_key; /* send as `idempotency-key` */
    const char *input_json;      /* the saga's input (sl_saga_store_create) */
    int64_t timeout_ms;          /* the step's per-attempt timeout */
} sl_saga_call;

typedef enum sl_saga_reply_kind {
    SL_SAGA_REPLY_OK,      /* 2xx */
    SL_SAGA_REPLY_REFUSED, /* business refusal: 409/422 with a reason */
    SL_SAGA_REPLY_FAILED,  /* transient: timeout, connect error, 5xx, 429, breaker open */
} sl_saga_reply_kind;

typedef struct sl_saga_reply {
    sl_saga_reply_kind kind;
    const char *data; /* summary of the response or of the failure (borrowed; copied) */
    size_t len;
    int64_t retry_after_ms; /* FAILED: Retry-After in ms, 0 = none */
} sl_saga_reply;

/* Delivers a call's outcome. Must be called exactly once per successful send(), on the
 * driver's thread, possibly from inside send(). */
typedef void (*sl_saga_reply_cb)(void *done_data, const sl_saga_reply *reply);

typedef struct sl_saga_executor {
    void *ctx;
    /* Starts `call`. Returns 0 and later calls done(done_data, reply) once; or returns an error
     * and never calls done (the driver then treats the attempt as a transient failure). */
    int (*send)(void *ctx, const sl_saga_call *call, sl_saga_reply_cb done, void *done_data);
} sl_saga_executor;

typedef void (*sl_saga_timer_cb)(void *data);

/* One re-armable timer. arm() replaces any earlier arming. */
typedef struct sl_saga_timer {
    void *ctx;
    int (*arm)(void *ctx, int64_t delay_ms, sl_saga_timer_cb cb, void *data);
    void (*disarm)(void *ctx);
} sl_saga_timer;

/* libuv implementation of sl_saga_timer: caller's storage, loop thread only. */
typedef struct sl_saga_uv_timer {
    uv_timer_t _t;
    sl_saga_timer_cb _cb;
    void *_data;
    int _init;
} sl_saga_uv_timer;

/* Initialises `t` on `loop` and fills `out` with its vtable. Returns 0 or SL_EINVAL. */
SL_API int sl_saga_uv_timer_init(sl_saga_uv_timer *t, uv_loop_t *loop,
                                 sl_saga_timer *out) SL_MUST_CHECK;
/* Closes the timer handle; `t` stays in use until the loop ran the close callback (run the
 * loop once more before freeing it). */
SL_API void sl_saga_uv_timer_close(sl_saga_uv_timer *t);

/*
 * A process-wide set of the saga ids that drivers are tracking, shared by every driver of the
 * process (one per saga type and worker thread): a saga is tracked by at most one driver at a
 * time, so a sweep or an admin action on one worker never drives a saga another worker is
 * driving. Its size is the process's backlog of running sagas (admission control).
 * Thread-safe.
 */
typedef struct sl_saga_registry sl_saga_registry;

/* Creates a registry. Returns 0 and *out (returns owned: free with sl_saga_registry_free after
 * every driver using it), or SL_ENOMEM. */
SL_API int sl_saga_registry_new(sl_saga_registry **out) SL_MUST_CHECK;
SL_API void sl_saga_registry_free(sl_saga_registry *r);
/* Number of sagas tracked by the registry's drivers. */
SL_API size_t sl_saga_registry_count(sl_saga_registry *r);
/* Wall-clock ms at which the longest-tracked saga was claimed by a driver of this process (the
 * drivers' clock), or 0 when none is tracked. Scans the set under its mutex: for a scrape, not a
 * hot path. */
SL_API int64_t sl_saga_registry_oldest_ms(sl_saga_registry *r);

typedef struct sl_saga_driver_options {
    sl_db *db;                 /* borrowed; the driver's thread's connection */
    const sl_saga_def *def;    /* borrowed, must be valid; one driver per saga type */
    sl_saga_executor executor; /* copied */
    sl_saga_timer timer;       /* copied */
    const sl_clock *clock;     /* borrowed; wall time is used (persisted times) */
    uint64_t seed;             /* backoff jitter seed (0: from the OS) */
    size_t max_active;         /* sagas tracked at once; 0 → 10000 */
    int64_t store_retry_ms; /* delay before retrying a saga whose store call failed; 0 → 1000 */
    sl_saga_metrics_cb metrics_cb; /* may be NULL */
    void *metrics_data;
    sl_saga_registry *registry; /* borrowed, may be NULL (then this driver claims alone) */
    /* Database lease of each driven saga (sl_saga_store_claim): held for lease_ms, renewed every
     * lease_ms / 3 while the driver runs; 0 → 15000. Another instance takes a saga over once
     * its lease expired, so this bounds how long a crashed instance's sagas wait. */
    int64_t lease_ms;
    /* This driver's lease owner name (copied, at most 63 bytes); NULL or "" → a random one.
     * Must differ between drivers. */
    const char *owner;
} sl_saga_driver_options;

typedef struct sl_saga_driver sl_saga_driver;

/*
 * Creates a driver and declares its owner up (sl_saga_store_owner_up). Returns 0 and *out
 * (returns owned: free with sl_saga_driver_free), SL_ECONFIG (invalid definition), SL_EEXIST
 * (another session holds the owner name), SL_EINVAL, SL_ENOMEM or a database error.
 */
SL_API int sl_saga_driver_new(const sl_saga_driver_options *opt,
                              sl_saga_driver **out) SL_MUST_CHECK;

/* Frees the driver. Calls still in flight complete into the void (their callbacks are safe). */
SL_API void sl_saga_driver_free(sl_saga_driver *d);

/*
 * Resumes every unfinished saga of the driver's type (at start): each gets a
 * RESUME event, which re-sends what was in flight. Stores the number resumed
 * in *resumed (may be NULL). Returns 0, SL_ELIMIT when more than max_active
 * are unfinished (the first max_active are resumed), or a database error.
 */
SL_API int sl_saga_driver_recover(sl_saga_driver *d, size_t *resumed) SL_MUST_CHECK;

/*
 * Starts saga `id` (created with sl_saga_store_create and committed): its first step is sent
 * before this returns (the executor may even have answered). Returns 0 (also when it was
 * already started), SL_ELIMIT (too many active), or a store error; after a store error the
 * saga stays tracked and is re-driven with RESUME after store_retry_ms.
 */
SL_API int sl_saga_driver_start(sl_saga_driver *d, const char *id) SL_MUST_CHECK;

/* Resumes stuck saga `id` (admin). Returns 0, SL_ESTATE when it is not stuck, SL_ELIMIT, or a
 * store error. */
SL_API int sl_saga_driver_resume_stuck(sl_saga_driver *d, const char *id) SL_MUST_CHECK;

/*
 * Aborts saga `id` (admin): it compensates at once, its order's reason "aborted". Returns 0
 * (also when it is already compensating or compensated), SL_ESTATE when it is past the pivot
 * (or completed), SL_ENOTFOUND, or a store error. When another driver of the registry tracks
 * the saga, this driver sends the first compensation and that driver keeps its timers.
 */
SL_API int sl_saga_driver_abort(sl_saga_driver *d, const char *id) SL_MUST_CHECK;

/*
 * Wakes every tracked saga waiting to retry a call of a step in `step_mask` (bit i = step i):
 * the retry is sent now instead of at the end of its backoff. Call it when a participant
 * answers again (any reply that is not a transient failure). Stores the number woken in
 * *woken (may be NULL).
 */
SL_API void sl_saga_driver_wake(sl_saga_driver *d, uint32_t step_mask, size_t *woken);

/*
 * The sweep: picks up every unfinished saga of the driver's type that nobody tracks (in the
 * registry) and that is due for more than `grace_ms` (never started, or its timer long
 * overdue), or whose lease expired (its instance stopped renewing it), and drives it with
 * RESUME; each through sl_saga_store_claim, so a saga another instance holds is left alone.
 * Stores the number picked up in *picked (may be NULL).
 * Returns 0, SL_ELIMIT when the driver is full (the rest waits for the next sweep), or a
 * database error.
 */
SL_API int sl_saga_driver_sweep(sl_saga_driver *d, int64_t grace_ms, size_t *picked) SL_MUST_CHECK;

/* Number of sagas the driver is tracking (unfinished, not stuck). */
SL_API size_t sl_saga_driver_active(const sl_saga_driver *d);

#endif /* SHOAL_SAGA_H */
