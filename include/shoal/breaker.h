/*
 * Circuit breaker: closed → open → half-open (docs/resilience.md).
 *
 * Closed: every call is admitted and its result recorded. The breaker trips
 * (→ open) on `failure_threshold` consecutive failures, or when, over a
 * sliding window of the last N calls (count-based) or the last N seconds
 * (time-based, one bucket per second) holding at least `minimum_calls`
 * results, the failure rate or the slow-call rate reaches its threshold.
 * Open: every call is refused at once (no I/O) for `recovery_timeout_ms`.
 * Half-open: at most `half_open_max_calls` trial calls are admitted; when
 * they have all succeeded → closed, on the first failure → open again, and a
 * trial without a verdict after `half_open_timeout_ms` → open again (the
 * breaker never hangs in half-open waiting for a lost call).
 *
 * Use: before a call, sl_breaker_allow() hands out a permit; after it,
 * sl_breaker_on_result() (or _on_success / _on_failure) reports the verdict
 * with that permit, or sl_breaker_release() returns it without one (the call
 * was cancelled). A permit remembers the breaker generation it was issued in
 * (the generation changes with every state change), so a result that arrives
 * after the state changed is counted as stale and ignored: it can neither
 * trip a fresh closed window nor be mistaken for a half-open trial.
 *
 * Time-driven transitions (open → half-open, half-open timeout) happen
 * lazily, inside whichever call first observes the time has come.
 *
 * Observability: an optional transition callback (from, to, reason) runs
 * synchronously inside the call that caused the change; counters are read
 * with sl_breaker_stats(). The client wires them to logs and to the metrics
 * `circuit_breaker_state{upstream}` and the transitions counter.
 *
 * Pure module (src/lib/resilience): no I/O, time from an injected sl_clock.
 * NOT thread-safe: one breaker per upstream per worker thread (loop).
 */
#ifndef SHOAL_BREAKER_H
#define SHOAL_BREAKER_H

#include <shoal/clock.h>
#include <shoal/common.h>
#include <shoal/outcome.h>

#include <stdbool.h>
#include <stdint.h>

/* States, with printable names. */
#define SL_BREAKER_STATE_MAP(X)                                                                    \
    X(CLOSED, "closed")                                                                            \
    X(OPEN, "open")                                                                                \
    X(HALF_OPEN, "half_open")

typedef enum sl_breaker_state {
#define SL_BREAKER_STATE_ENUM_(name, text) SL_BREAKER_##name,
    SL_BREAKER_STATE_MAP(SL_BREAKER_STATE_ENUM_)
#undef SL_BREAKER_STATE_ENUM_
        SL_BREAKER_STATE_COUNT
} sl_breaker_state;

/* Why a transition happened, with printable names (for the log line). */
#define SL_BREAKER_REASON_MAP(X)                                                                   \
    X(CONSECUTIVE_FAILURES, "consecutive_failures") /* closed → open */                          \
    X(FAILURE_RATE, "failure_rate")                 /* closed → open */                          \
    X(SLOW_CALL_RATE, "slow_call_rate")             /* closed → open */                          \
    X(RECOVERY_TIMEOUT, "recovery_timeout")         /* open → half-open */                       \
    X(TRIAL_FAILED, "trial_failed")                 /* half-open → open */                       \
    X(TRIAL_TIMEOUT, "trial_timeout")               /* half-open → open */                       \
    X(TRIALS_SUCCEEDED, "trials_succeeded")         /* half-open → closed */                     \
    X(RESET, "reset")                               /* any → closed, sl_breaker_reset() */

typedef enum sl_breaker_reason {
#define SL_BREAKER_REASON_ENUM_(name, text) SL_BREAKER_REASON_##name,
    SL_BREAKER_REASON_MAP(SL_BREAKER_REASON_ENUM_)
#undef SL_BREAKER_REASON_ENUM_
        SL_BREAKER_REASON_COUNT
} sl_breaker_reason;

/* Returns the static name of a state ("half_open"), or "unknown". */
SL_API const char *sl_breaker_state_name(sl_breaker_state state);

/* Returns the static name of a reason ("failure_rate"), or "unknown". */
SL_API const char *sl_breaker_reason_name(sl_breaker_reason reason);

/* Sliding-window kinds. */
typedef enum sl_breaker_window {
    SL_BREAKER_WINDOW_COUNT, /* the last window_size calls */
    SL_BREAKER_WINDOW_TIME,  /* the last window_size seconds, one bucket per second */
} sl_breaker_window;

/* Which outcomes count as failures (bit set for sl_breaker_classify). */
#define SL_BREAKER_FAIL_CONNECT (1u << 0) /* SL_OUTCOME_CONNECT_ERROR */
#define SL_BREAKER_FAIL_TIMEOUT (1u << 1) /* SL_OUTCOME_TIMEOUT */
#define SL_BREAKER_FAIL_IO      (1u << 2) /* SL_OUTCOME_IO_ERROR */
#define SL_BREAKER_FAIL_5XX     (1u << 3) /* 500-599, and any status outside 100-599 */
#define SL_BREAKER_FAIL_4XX     (1u << 4) /* 400-499, 429 included */
#define SL_BREAKER_FAIL_429     (1u << 5) /* 429 only (an overloaded upstream) */
/* The default: transport errors, timeouts and 5xx; 4xx are the caller's fault, not the upstream's.
 */
#define SL_BREAKER_FAIL_DEFAULT                                                                    \
    (SL_BREAKER_FAIL_CONNECT | SL_BREAKER_FAIL_TIMEOUT | SL_BREAKER_FAIL_IO | SL_BREAKER_FAIL_5XX)

/* Limits enforced by sl_breaker_new(). */
#define SL_BREAKER_WINDOW_COUNT_MAX 100000u /* calls in a count window */
#define SL_BREAKER_WINDOW_TIME_MAX  3600u   /* seconds in a time window */
#define SL_BREAKER_HALF_OPEN_MAX    1000u   /* trial calls */

typedef struct sl_breaker_config {
    uint32_t failure_threshold;   /* consecutive failures that trip; 0 = off. Default 5 */
    sl_breaker_window window;     /* default SL_BREAKER_WINDOW_COUNT */
    uint32_t window_size;         /* calls or seconds; default 100 */
    uint32_t minimum_calls;       /* results needed before rates apply; default 20 */
    uint32_t failure_rate_pct;    /* trip at >= this % failures; 0 = off. Default 50 */
    uint32_t slow_call_rate_pct;  /* trip at >= this % slow calls; 0 = off. Default 0 (off) */
    int64_t slow_call_ms;         /* a call longer than this is slow; default 2000 */
    int64_t recovery_timeout_ms;  /* time spent open; default 30000 */
    uint32_t half_open_max_calls; /* trial calls in half-open; default 3 */
    int64_t half_open_timeout_ms; /* a trial without verdict after this → open; default 60000 */
    uint32_t failure_set;         /* SL_BREAKER_FAIL_* bits; default SL_BREAKER_FAIL_DEFAULT */
} sl_breaker_config;

/* Fills `cfg` with the defaults above. */
SL_API void sl_breaker_config_default(sl_breaker_config *cfg);

/*
 * Classifies one outcome against a failure set (SL_BREAKER_FAIL_* bits).
 * Returns true for a failure, false for a success. Pure; thread-safe.
 */
SL_API bool sl_breaker_classify(sl_outcome outcome, uint32_t failure_set);

/*
 * A permit from sl_breaker_allow(): caller's storage (embed it in the call's
 * state), fields private. Report or release it exactly once; a second report
 * on the same permit is ignored.
 */
typedef struct sl_breaker_permit {
    uint64_t _generation;
    uint32_t _slot;  /* trial slot in half-open */
    uint8_t _state;  /* state the permit was issued in */
    uint8_t _active; /* 1 until reported or released */
} sl_breaker_permit;

/*
 * Transition callback: runs synchronously inside the breaker call that made
 * the change, on the breaker's thread. It may read the breaker
 * (sl_breaker_state_peek, sl_breaker_stats_get) but must not call any function
 * that can change it (allow, report, release, reset, state).
 */
typedef void (*sl_breaker_transition_cb)(sl_breaker_state from, sl_breaker_state to,
                                         sl_breaker_reason reason, void *data);

/* Counters, monotonically increasing over the breaker's life. */
typedef struct sl_breaker_stats {
    uint64_t allowed;   /* permits handed out */
    uint64_t rejected;  /* calls refused (open, or half-open with every trial slot taken) */
    uint64_t successes; /* results counted as success (current generation) */
    uint64_t failures;  /* results counted as failure (current generation) */
    uint64_t slow;      /* results slower than slow_call_ms (current generation) */
    uint64_t stale;     /* results ignored because the state changed since their allow() */
    uint64_t released;  /* permits returned without a verdict */
    uint64_t transitions[SL_BREAKER_STATE_COUNT][SL_BREAKER_STATE_COUNT]; /* [from][to] */
} sl_breaker_stats;

typedef struct sl_breaker sl_breaker;

/*
 * Creates a breaker in the closed state. `cfg` is copied; `clock` is
 * borrowed and must outlive the breaker. `cb` (may be NULL) and `data` are
 * the transition callback. Returns 0 and stores a breaker owned by the caller
 * (free with sl_breaker_free) in *out; SL_ECONFIG for an invalid configuration
 * (a size of 0 or above the SL_BREAKER_*_MAX limits, a percentage above 100,
 * a non-positive time, minimum_calls above a count window); SL_ENOMEM.
 */
SL_API int sl_breaker_new(const sl_breaker_config *cfg, const sl_clock *clock,
                          sl_breaker_transition_cb cb, void *data, sl_breaker **out) SL_MUST_CHECK;

/* Frees `b` (NULL is fine). Outstanding permits become meaningless. */
SL_API void sl_breaker_free(sl_breaker *b);

/*
 * Asks to make a call. Applies due time-driven transitions first. Returns 0
 * and fills `permit` when the call may go ahead; SL_EUNAVAIL when it must fail
 * fast (open, or half-open with every trial slot taken); `permit` is then
 * left inactive and need not be reported.
 */
SL_API int sl_breaker_allow(sl_breaker *b, sl_breaker_permit *permit) SL_MUST_CHECK;

/*
 * Reports the verdict of a permitted call: `failed` (usually from
 * sl_breaker_classify) and how long it took, `duration_ms` (compared with
 * slow_call_ms). Consumes the permit. A result from an earlier generation
 * only bumps the `stale` counter. In half-open, a slow call counts as a
 * failed trial when slow_call_rate_pct is set. Returns 0, or SL_ESTATE when
 * the permit was not active (never issued, or already reported/released),
 * in which case nothing changes.
 */
SL_API int sl_breaker_on_result(sl_breaker *b, sl_breaker_permit *permit, bool failed,
                                int64_t duration_ms);

/* Shorthands for sl_breaker_on_result(b, permit, false/true, duration_ms). */
SL_API int sl_breaker_on_success(sl_breaker *b, sl_breaker_permit *permit, int64_t duration_ms);
SL_API int sl_breaker_on_failure(sl_breaker *b, sl_breaker_permit *permit, int64_t duration_ms);

/*
 * Returns a permit without a verdict (the caller gave up before the call
 * finished, or never made it). A half-open trial slot becomes free again.
 * Returns 0, or SL_ESTATE when the permit was not active.
 */
SL_API int sl_breaker_release(sl_breaker *b, sl_breaker_permit *permit);

/* Forces the breaker closed with a fresh window (operator action). */
SL_API void sl_breaker_reset(sl_breaker *b);

/* Returns the state after applying due time-driven transitions (may run the callback). */
SL_API sl_breaker_state sl_breaker_state_now(sl_breaker *b);

/* Returns the state as last computed, without looking at the clock (safe inside the callback). */
SL_API sl_breaker_state sl_breaker_state_peek(const sl_breaker *b);

/*
 * Returns how long a refused caller should wait before trying again, in ms
 * rounded up (for a 503's Retry-After): the rest of the open period; in
 * half-open, the time until the oldest trial times out; 0 when closed.
 */
SL_API int64_t sl_breaker_retry_after_ms(sl_breaker *b);

/* Copies the counters into *out. */
SL_API void sl_breaker_stats_get(const sl_breaker *b, sl_breaker_stats *out);

#endif /* SHOAL_BREAKER_H */
