/*
 * Retry policy and retry budget (include/shoal/retry.h). The policy is a
 * sequence of checks, cheapest and most final first, with the budget charged
 * last so that a retry refused for any other reason costs no token. The
 * budget is a token bucket counted in billionths of a retry, which makes both
 * the per-request deposit (ratio_pct %) and the per-nanosecond floor refill
 * exact integers: no rounding can let it grant more than it promises.
 */
#include <shoal/retry.h>

#include "resilience_int.h"

#include <stdlib.h>

#define TOKEN             INT64_C(1000000000) /* one retry, in budget units */
#define BUDGET_MAX_TOKENS 1000000u

void sl_retry_config_default(sl_retry_config *cfg)
{
    *cfg = (sl_retry_config){
        .max_retries = 3,
        .base_ms = 50,
        .cap_ms = 2000,
        .jitter = SL_RETRY_JITTER_FULL,
        .per_try_timeout_ms = 2000,
        .retry_after_max_ms = 5000,
    };
}

int sl_retry_config_valid(const sl_retry_config *cfg)
{
    if (cfg == NULL || cfg->max_retries > SL_RETRY_LIMIT_RETRIES) return SL_ECONFIG;
    if (cfg->base_ms <= 0 || cfg->cap_ms < cfg->base_ms || cfg->cap_ms > SL_RETRY_LIMIT_CAP_MS)
        return SL_ECONFIG;
    if (cfg->jitter != SL_RETRY_JITTER_FULL && cfg->jitter != SL_RETRY_JITTER_DECORRELATED)
        return SL_ECONFIG;
    if (cfg->per_try_timeout_ms < 0 || cfg->retry_after_max_ms < 0) return SL_ECONFIG;
    return 0;
}

const char *sl_retry_decision_name(sl_retry_decision d)
{
    switch (d) {
#define SL_RETRY_DECISION_NAME_(name, text)                                                        \
    case SL_RETRY_##name:                                                                          \
        return text;
        SL_RETRY_DECISION_MAP(SL_RETRY_DECISION_NAME_)
#undef SL_RETRY_DECISION_NAME_
    default:
        return "unknown";
    }
}

bool sl_retry_method_idempotent(sl_slice method)
{
    static const char *const idempotent[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    for (size_t i = 0; i < SL_ARRAY_LEN(idempotent); i++)
        if (sl_slice_eq(method, idempotent[i])) return true;
    return false;
}

bool sl_retry_outcome_retryable(sl_outcome outcome)
{
    switch (outcome.kind) {
    case SL_OUTCOME_CONNECT_ERROR:
    case SL_OUTCOME_TIMEOUT:
    case SL_OUTCOME_IO_ERROR:
        return true;
    case SL_OUTCOME_RESPONSE:
        return outcome.status == 429 || outcome.status == 502 || outcome.status == 503 ||
               outcome.status == 504;
    default:
        return false;
    }
}

/* ---- Budget ---- */

struct sl_retry_budget {
    sl_retry_budget_config cfg;
    const sl_clock *clock;
    int64_t tokens; /* in TOKEN units; 0 <= tokens <= cap */
    int64_t cap;
    int64_t last_ns; /* time up to which the floor has been credited */
    sl_retry_budget_stats stats;
};

void sl_retry_budget_config_default(sl_retry_budget_config *cfg)
{
    *cfg = (sl_retry_budget_config){.ratio_pct = 20, .min_per_sec = 10, .max_tokens = 10};
}

int sl_retry_budget_new(const sl_retry_budget_config *cfg, const sl_clock *clock,
                        sl_retry_budget **out)
{
    if (cfg == NULL || clock == NULL || out == NULL) return SL_ECONFIG;
    if (cfg->ratio_pct > 100 || cfg->max_tokens == 0 || cfg->max_tokens > BUDGET_MAX_TOKENS)
        return SL_ECONFIG;
    sl_retry_budget *b = calloc(1, sizeof *b);
    if (b == NULL) return SL_ENOMEM;
    b->cfg = *cfg;
    b->clock = clock;
    b->cap = (int64_t)cfg->max_tokens * TOKEN;
    b->tokens = b->cap;
    b->last_ns = sl_clock_mono_ns(clock);
    *out = b;
    return 0;
}

void sl_retry_budget_free(sl_retry_budget *budget)
{
    free(budget);
}

/* Credits the floor: min_per_sec retries per second is exactly min_per_sec units per ns. */
static void budget_refill(sl_retry_budget *b)
{
    int64_t now = sl_clock_mono_ns(b->clock);
    int64_t elapsed = now - b->last_ns;
    if (elapsed <= 0) return;
    b->last_ns = now;
    int64_t rate = b->cfg.min_per_sec;
    int64_t room = b->cap - b->tokens;
    if (rate == 0 || room == 0) return;
    /* Compare before multiplying so a long idle period cannot overflow. */
    if (elapsed >= room / rate + 1)
        b->tokens = b->cap;
    else
        b->tokens += rate * elapsed;
    if (b->tokens > b->cap) b->tokens = b->cap;
}

void sl_retry_budget_on_request(sl_retry_budget *budget)
{
    budget_refill(budget);
    budget->stats.requests++;
    budget->tokens += (int64_t)budget->cfg.ratio_pct * (TOKEN / 100);
    if (budget->tokens > budget->cap) budget->tokens = budget->cap;
}

int sl_retry_budget_withdraw(sl_retry_budget *budget)
{
    budget_refill(budget);
    if (budget->tokens < TOKEN) {
        budget->stats.refused++;
        return SL_ELIMIT;
    }
    budget->tokens -= TOKEN;
    budget->stats.retries++;
    return 0;
}

uint32_t sl_retry_budget_available(sl_retry_budget *budget)
{
    budget_refill(budget);
    return (uint32_t)(budget->tokens / TOKEN);
}

void sl_retry_budget_stats_get(const sl_retry_budget *budget, sl_retry_budget_stats *out)
{
    *out = budget->stats;
}

/* ---- Per-request state ---- */

void sl_retry_state_init(sl_retry_state *st, const sl_retry_config *cfg, const sl_clock *clock,
                         int64_t deadline_ns, bool retry_safe)
{
    SL_ASSERT(sl_retry_config_valid(cfg) == 0);
    *st = (sl_retry_state){
        ._cfg = cfg,
        ._clock = clock,
        ._deadline_ns = deadline_ns,
        ._prev_delay_ms = cfg->base_ms,
        ._retries = 0,
        ._safe = retry_safe,
    };
}

int64_t sl_retry_try_timeout_ms(const sl_retry_state *st)
{
    int64_t t = st->_cfg->per_try_timeout_ms > 0 ? st->_cfg->per_try_timeout_ms : INT64_MAX;
    if (st->_deadline_ns != INT64_MAX) {
        int64_t left = st->_deadline_ns - sl_clock_mono_ns(st->_clock);
        int64_t left_ms = left <= 0 ? 0 : left / SL_NS_PER_MS;
        if (left_ms < t) t = left_ms;
    }
    return t;
}

int64_t sl_retry_backoff_ms(const sl_retry_config *c, uint32_t retry, int64_t prev_delay_ms,
                            sl_rand *rand)
{
    if (c->jitter == SL_RETRY_JITTER_DECORRELATED) {
        /* uniform [base, 3 * previous], then capped; previous starts at base. */
        int64_t prev = prev_delay_ms < c->base_ms ? c->base_ms : prev_delay_ms;
        if (prev > c->cap_ms) prev = c->cap_ms;
        int64_t hi = prev * 3;
        int64_t d = c->base_ms + (int64_t)sl_rand_below(rand, (uint64_t)(hi - c->base_ms + 1));
        return d > c->cap_ms ? c->cap_ms : d;
    }
    /* Full jitter: uniform [0, min(cap, base * 2^n)]; double step by step so nothing overflows. */
    int64_t ceiling = c->base_ms;
    for (uint32_t i = 0; i < retry && ceiling < c->cap_ms; i++)
        ceiling *= 2;
    if (ceiling > c->cap_ms) ceiling = c->cap_ms;
    return (int64_t)sl_rand_below(rand, (uint64_t)ceiling + 1);
}

/* The jittered backoff delay for the next retry, always within [0, cap_ms]. */
static int64_t backoff_ms(sl_retry_state *st, sl_rand *rand)
{
    int64_t d = sl_retry_backoff_ms(st->_cfg, st->_retries, st->_prev_delay_ms, rand);
    st->_prev_delay_ms = d;
    return d;
}

sl_retry_decision sl_retry_next(sl_retry_state *st, sl_outcome outcome, const char *retry_after,
                                size_t retry_after_len, sl_rand *rand, sl_retry_budget *budget,
                                int64_t *delay_ms)
{
    const sl_retry_config *c = st->_cfg;
    *delay_ms = -1;
    if (!sl_retry_outcome_retryable(outcome)) return SL_RETRY_NOT_RETRYABLE;
    if (!st->_safe) return SL_RETRY_NOT_IDEMPOTENT;
    if (st->_retries >= c->max_retries) return SL_RETRY_MAX_RETRIES;

    int64_t delay = backoff_ms(st, rand);
    bool asks_wait =
        outcome.kind == SL_OUTCOME_RESPONSE && (outcome.status == 429 || outcome.status == 503);
    int64_t ra_ms;
    if (asks_wait && retry_after != NULL &&
        sl_retry_after_parse(retry_after, retry_after_len, sl_clock_wall_ns(st->_clock), &ra_ms) ==
            0) {
        /* RFC 9110 §10.2.3: never sooner than asked; beyond our cap, do not retry at all. */
        if (ra_ms > c->retry_after_max_ms) return SL_RETRY_RETRY_AFTER;
        if (ra_ms > delay) delay = ra_ms;
    }

    if (st->_deadline_ns != INT64_MAX) {
        int64_t resume =
            sl__resilience_sat_add(sl_clock_mono_ns(st->_clock), sl__resilience_ms_to_ns(delay));
        if (resume >= st->_deadline_ns) return SL_RETRY_DEADLINE;
    }
    if (budget != NULL && sl_retry_budget_withdraw(budget) != 0) return SL_RETRY_BUDGET;

    st->_retries++;
    *delay_ms = delay;
    return SL_RETRY_RETRY;
}
