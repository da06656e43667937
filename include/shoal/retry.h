/*
 * Retry policy (docs/resilience.md): after a failed attempt, decide whether to try
 * again and after how long.
 *
 * - At most `max_retries` retries (default 3).
 * - Delay: full jitter over exponential backoff, uniform in
 *   [0, min(cap, base * 2^n)] for retry n = 0, 1, …  (base 50 ms, cap 2 s), or
 *   decorrelated jitter, min(cap, uniform[base, 3 * previous]).
 * - Only retry-safe requests are retried: an idempotent method (GET, HEAD,
 *   OPTIONS, TRACE, PUT, DELETE) or a request carrying `idempotency-key`.
 * - Retryable outcomes: connect errors, 502/503/504, 429, timeouts and
 *   connections broken mid-exchange (the last two only because the request
 *   is retry-safe: the upstream may already have acted on it).
 * - `Retry-After` on 429/503 is honoured (delta-seconds or HTTP-date): the
 *   delay is at least what the server asked for; if it asked for more than
 *   `retry_after_max_ms` the policy gives up rather than retry early.
 * - Never past the deadline: if now + delay would reach the deadline, give up.
 * - A retry budget per upstream (sl_retry_budget) caps retries at 20 % of
 *   requests plus a floor of 10 per second, so a dead upstream sees about
 *   1.2× its normal load instead of (1 + max_retries)×.
 *
 * Use: the client keeps one sl_retry_state per request (caller's storage),
 * calls sl_retry_state_init() before the first attempt,
 * sl_retry_try_timeout_ms() before each attempt, and sl_retry_next() after
 * each failed one; it calls sl_retry_budget_on_request() once per original
 * request.
 *
 * Pure module (src/lib/resilience): no I/O; time from an injected sl_clock,
 * randomness from an injected sl_rand. NOT thread-safe: a state belongs to
 * one request, a budget to one upstream on one worker thread.
 */
#ifndef SHOAL_RETRY_H
#define SHOAL_RETRY_H

#include <shoal/clock.h>
#include <shoal/common.h>
#include <shoal/outcome.h>
#include <shoal/rand.h>

#include <stdbool.h>
#include <stdint.h>

/* Hard limits enforced by sl_retry_config_valid(). */
#define SL_RETRY_LIMIT_RETRIES 10
#define SL_RETRY_LIMIT_CAP_MS  INT64_C(3600000) /* one hour */

/* Largest Retry-After the parser reports (RFC 9111 §1.2.2: 2^31 seconds), in ms. */
#define SL_RETRY_AFTER_PARSE_MAX_MS (INT64_C(2147483648) * 1000)

typedef enum sl_retry_jitter {
    SL_RETRY_JITTER_FULL,         /* uniform [0, min(cap, base * 2^n)] */
    SL_RETRY_JITTER_DECORRELATED, /* min(cap, uniform [base, 3 * previous delay]) */
} sl_retry_jitter;

typedef struct sl_retry_config {
    uint32_t max_retries;       /* retries after the first attempt; default 3 */
    int64_t base_ms;            /* default 50 */
    int64_t cap_ms;             /* upper bound of a backoff delay; default 2000 */
    sl_retry_jitter jitter;     /* default SL_RETRY_JITTER_FULL */
    int64_t per_try_timeout_ms; /* default 2000; 0 = only the deadline bounds an attempt */
    int64_t retry_after_max_ms; /* the longest Retry-After honoured; default 5000 */
} sl_retry_config;

/* Fills `cfg` with the defaults above. */
SL_API void sl_retry_config_default(sl_retry_config *cfg);

/*
 * Returns 0 when `cfg` is usable, SL_ECONFIG otherwise (max_retries above
 * SL_RETRY_LIMIT_RETRIES, base_ms <= 0, cap_ms < base_ms or above
 * SL_RETRY_LIMIT_CAP_MS, a negative timeout or Retry-After maximum).
 */
SL_API int sl_retry_config_valid(const sl_retry_config *cfg) SL_MUST_CHECK;

/* Why sl_retry_next() decided what it did, with printable names (logs, metrics labels). */
#define SL_RETRY_DECISION_MAP(X)                                                                   \
    X(RETRY, "retry")                      /* try again after *delay_ms */                         \
    X(NOT_RETRYABLE, "not_retryable")      /* the outcome is final (e.g. 200, 404, 500) */         \
    X(NOT_IDEMPOTENT, "not_idempotent")    /* the request is not retry-safe */                     \
    X(MAX_RETRIES, "max_retries")          /* max_retries already spent */                         \
    X(DEADLINE, "deadline")                /* the delay would end at or after the deadline */      \
    X(RETRY_AFTER, "retry_after_too_long") /* the server asked for more than we honour */          \
    X(BUDGET, "budget_exhausted")          /* the upstream's retry budget is empty */

typedef enum sl_retry_decision {
#define SL_RETRY_DECISION_ENUM_(name, text) SL_RETRY_##name,
    SL_RETRY_DECISION_MAP(SL_RETRY_DECISION_ENUM_)
#undef SL_RETRY_DECISION_ENUM_
        SL_RETRY_DECISION_COUNT
} sl_retry_decision;

/* Returns the static name of `d` ("budget_exhausted"), or "unknown". */
SL_API const char *sl_retry_decision_name(sl_retry_decision d);

/*
 * Returns true for the idempotent methods of RFC 9110 §9.2.2 (GET, HEAD,
 * OPTIONS, TRACE, PUT, DELETE; exact, case-sensitive as §9.1 says). `method`
 * is borrowed.
 */
SL_API bool sl_retry_method_idempotent(sl_slice method);

/* Returns true when the outcome is one the policy retries (given a retry-safe request). */
SL_API bool sl_retry_outcome_retryable(sl_outcome outcome);

/*
 * Parses a Retry-After value (RFC 9110 §10.2.3) of `len` bytes (borrowed):
 * delta-seconds (1*DIGIT, saturating at SL_RETRY_AFTER_PARSE_MAX_MS) or an
 * HTTP-date (IMF-fixdate, and the obsolete RFC 850 and asctime forms that
 * §5.6.7 says recipients must accept), with optional surrounding whitespace.
 * A date is turned into a delay against `now_wall_ns` (ns since the epoch);
 * a date in the past gives 0. Returns 0 and stores the delay in ms in
 * *delay_ms, or SL_EPARSE for anything else. Pure; thread-safe.
 */
SL_API int sl_retry_after_parse(const char *s, size_t len, int64_t now_wall_ns,
                                int64_t *delay_ms) SL_MUST_CHECK;

/* ---- Retry budget ---- */

typedef struct sl_retry_budget_config {
    uint32_t ratio_pct;   /* each request earns this % of a retry; default 20 */
    uint32_t min_per_sec; /* retries earned per second regardless of traffic; default 10 */
    uint32_t max_tokens;  /* retries the budget can save up (burst); default 10; >= 1 */
} sl_retry_budget_config;

/* Fills `cfg` with the defaults above. */
SL_API void sl_retry_budget_config_default(sl_retry_budget_config *cfg);

typedef struct sl_retry_budget sl_retry_budget;

typedef struct sl_retry_budget_stats {
    uint64_t requests; /* sl_retry_budget_on_request calls */
    uint64_t retries;  /* withdrawals granted */
    uint64_t refused;  /* withdrawals refused */
} sl_retry_budget_stats;

/*
 * Creates a budget, full (max_tokens available). `cfg` is copied; `clock` is
 * borrowed and must outlive the budget. Returns 0 and stores a budget owned
 * by the caller (free with sl_retry_budget_free) in *out; SL_ECONFIG
 * (ratio_pct > 100, max_tokens 0 or above 1000000); SL_ENOMEM.
 */
SL_API int sl_retry_budget_new(const sl_retry_budget_config *cfg, const sl_clock *clock,
                               sl_retry_budget **out) SL_MUST_CHECK;

/* Frees `budget` (NULL is fine). */
SL_API void sl_retry_budget_free(sl_retry_budget *budget);

/* Records one original request (not a retry): deposits ratio_pct % of a retry. */
SL_API void sl_retry_budget_on_request(sl_retry_budget *budget);

/* Takes one retry from the budget. Returns 0, or SL_ELIMIT when the budget is empty. */
SL_API int sl_retry_budget_withdraw(sl_retry_budget *budget) SL_MUST_CHECK;

/* Returns the whole retries currently available. */
SL_API uint32_t sl_retry_budget_available(sl_retry_budget *budget);

/* Copies the counters into *out. */
SL_API void sl_retry_budget_stats_get(const sl_retry_budget *budget, sl_retry_budget_stats *out);

/* ---- Per-request state ---- */

/* One request's retry state: caller's storage, fields private. */
typedef struct sl_retry_state {
    const sl_retry_config *_cfg;
    const sl_clock *_clock;
    int64_t _deadline_ns;
    int64_t _prev_delay_ms;
    uint32_t _retries;
    bool _safe;
} sl_retry_state;

/*
 * Prepares `st` for a new request. `cfg` (valid per sl_retry_config_valid)
 * and `clock` are borrowed for the life of the request. `deadline_ns` is the
 * request's absolute monotonic deadline (INT64_MAX for none). `retry_safe` is
 * sl_retry_method_idempotent(method) || the request has idempotency-key.
 */
SL_API void sl_retry_state_init(sl_retry_state *st, const sl_retry_config *cfg,
                                const sl_clock *clock, int64_t deadline_ns, bool retry_safe);

/*
 * Returns the timeout for the next attempt in ms: min(per_try_timeout_ms,
 * time left before the deadline, rounded down), or INT64_MAX when neither
 * applies. 0 means the deadline has passed: do not start the attempt.
 */
SL_API int64_t sl_retry_try_timeout_ms(const sl_retry_state *st);

/*
 * Decides what to do after a failed attempt with `outcome`. `retry_after`
 * (borrowed, may be NULL) is the response's Retry-After value of
 * `retry_after_len` bytes; it is read only for 429 and 503, and ignored when
 * malformed. `rand` draws the jitter. `budget` (may be NULL: no budget) is
 * charged one retry only when every other check passed. On SL_RETRY_RETRY
 * stores the delay before the next attempt in *delay_ms (within [0, cap_ms],
 * or up to retry_after_max_ms when the server asked for longer) and counts
 * the retry; on any other decision *delay_ms is set to -1 and the request
 * should fail with this attempt's outcome.
 */
SL_API sl_retry_decision sl_retry_next(sl_retry_state *st, sl_outcome outcome,
                                       const char *retry_after, size_t retry_after_len,
                                       sl_rand *rand, sl_retry_budget *budget, int64_t *delay_ms);

/*
 * The jittered backoff delay alone, for callers that keep their own attempt
 * counters (the saga engine): for retry number `retry` (0 for the first
 * retry) returns a delay in [0, cfg->cap_ms] drawn from `rand` with
 * cfg->jitter (full: uniform [0, min(cap, base * 2^retry)]; decorrelated:
 * min(cap, uniform [base, 3 * prev_delay_ms]), prev_delay_ms below base
 * counting as base). `cfg` must be valid (sl_retry_config_valid). Pure.
 */
SL_API int64_t sl_retry_backoff_ms(const sl_retry_config *cfg, uint32_t retry,
                                   int64_t prev_delay_ms, sl_rand *rand);

/* Returns the number of retries granted so far. */
static inline uint32_t sl_retry_count(const sl_retry_state *st)
{
    return st->_retries;
}

#endif /* SHOAL_RETRY_H */
