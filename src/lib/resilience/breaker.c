/*
 * Circuit breaker (include/shoal/breaker.h). A small state machine over an
 * injected clock: a sliding window of results while closed (a ring of
 * per-call bits, or one bucket per second), a deadline while open, and a
 * fixed array of trial slots while half-open. Every state change bumps a
 * generation number that permits carry, which is how late results are
 * recognised and ignored.
 */
#include <shoal/breaker.h>

#include "resilience_int.h"

#include <stdlib.h>
#include <string.h>

enum { RING_FAIL = 1, RING_SLOW = 2 };
enum { TRIAL_FREE = 0, TRIAL_OUT, TRIAL_OK };

typedef struct bucket {
    int64_t sec;
    uint32_t calls, failures, slow;
} bucket;

typedef struct trial {
    int64_t admitted_ns;
    uint8_t state;
} trial;

struct sl_breaker {
    sl_breaker_config cfg;
    const sl_clock *clock;
    sl_breaker_transition_cb cb;
    void *cb_data;
    int in_cb; /* guards against the callback re-entering a mutating call */

    sl_breaker_state state;
    uint64_t generation;
    int64_t since_ns; /* when the current state was entered */
    uint32_t consecutive;

    /* Sliding window totals, kept in step with the ring or the buckets. */
    uint32_t win_calls, win_failures, win_slow;
    uint8_t *ring; /* count window: one byte of RING_* bits per call */
    uint32_t ring_pos, ring_len;
    bucket *buckets;  /* time window: bucket[sec % window_size] */
    int64_t head_sec; /* newest second the buckets have been advanced to */

    trial *trials; /* half-open trial slots */
    uint32_t trials_ok;

    sl_breaker_stats stats;
};

const char *sl_breaker_state_name(sl_breaker_state state)
{
    switch (state) {
#define SL_BREAKER_STATE_NAME_(name, text)                                                         \
    case SL_BREAKER_##name:                                                                        \
        return text;
        SL_BREAKER_STATE_MAP(SL_BREAKER_STATE_NAME_)
#undef SL_BREAKER_STATE_NAME_
    default:
        return "unknown";
    }
}

const char *sl_breaker_reason_name(sl_breaker_reason reason)
{
    switch (reason) {
#define SL_BREAKER_REASON_NAME_(name, text)                                                        \
    case SL_BREAKER_REASON_##name:                                                                 \
        return text;
        SL_BREAKER_REASON_MAP(SL_BREAKER_REASON_NAME_)
#undef SL_BREAKER_REASON_NAME_
    default:
        return "unknown";
    }
}

void sl_breaker_config_default(sl_breaker_config *cfg)
{
    *cfg = (sl_breaker_config){
        .failure_threshold = 5,
        .window = SL_BREAKER_WINDOW_COUNT,
        .window_size = 100,
        .minimum_calls = 20,
        .failure_rate_pct = 50,
        .slow_call_rate_pct = 0,
        .slow_call_ms = 2000,
        .recovery_timeout_ms = 30000,
        .half_open_max_calls = 3,
        .half_open_timeout_ms = 60000,
        .failure_set = SL_BREAKER_FAIL_DEFAULT,
    };
}

bool sl_breaker_classify(sl_outcome outcome, uint32_t failure_set)
{
    switch (outcome.kind) {
    case SL_OUTCOME_CONNECT_ERROR:
        return (failure_set & SL_BREAKER_FAIL_CONNECT) != 0;
    case SL_OUTCOME_TIMEOUT:
        return (failure_set & SL_BREAKER_FAIL_TIMEOUT) != 0;
    case SL_OUTCOME_IO_ERROR:
        return (failure_set & SL_BREAKER_FAIL_IO) != 0;
    case SL_OUTCOME_RESPONSE:
        break;
    default:
        /* An unknown kind is a broken exchange: treat it like a transport error. */
        return (failure_set & SL_BREAKER_FAIL_IO) != 0;
    }
    int s = outcome.status;
    if (s == 429) return (failure_set & (SL_BREAKER_FAIL_429 | SL_BREAKER_FAIL_4XX)) != 0;
    if (s >= 400 && s <= 499) return (failure_set & SL_BREAKER_FAIL_4XX) != 0;
    /* A status outside 100-599 means the upstream is broken; count it with 5xx. */
    if (s >= 500 || s < 100) return (failure_set & SL_BREAKER_FAIL_5XX) != 0;
    return false;
}

static int config_valid(const sl_breaker_config *c)
{
    uint32_t max = c->window == SL_BREAKER_WINDOW_COUNT ? SL_BREAKER_WINDOW_COUNT_MAX
                                                        : SL_BREAKER_WINDOW_TIME_MAX;
    if (c->window != SL_BREAKER_WINDOW_COUNT && c->window != SL_BREAKER_WINDOW_TIME) return 0;
    if (c->window_size == 0 || c->window_size > max) return 0;
    if (c->minimum_calls == 0) return 0;
    /* A count window can never hold more than window_size results. */
    if (c->window == SL_BREAKER_WINDOW_COUNT && c->minimum_calls > c->window_size) return 0;
    if (c->failure_rate_pct > 100 || c->slow_call_rate_pct > 100) return 0;
    if (c->slow_call_ms < 0 || c->recovery_timeout_ms <= 0 || c->half_open_timeout_ms <= 0)
        return 0;
    if (c->half_open_max_calls == 0 || c->half_open_max_calls > SL_BREAKER_HALF_OPEN_MAX) return 0;
    return 1;
}

static int64_t now_ns(const sl_breaker *b)
{
    return sl_clock_mono_ns(b->clock);
}

static int64_t sec_of(int64_t ns)
{
    /* Floor division, so a clock that starts below zero still maps to distinct seconds. */
    int64_t s = ns / SL_NS_PER_SEC;
    return (ns % SL_NS_PER_SEC < 0) ? s - 1 : s;
}

static uint32_t bucket_index(const sl_breaker *b, int64_t sec)
{
    int64_t n = b->cfg.window_size;
    return (uint32_t)(((sec % n) + n) % n);
}

static void window_clear(sl_breaker *b, int64_t now)
{
    b->win_calls = b->win_failures = b->win_slow = 0;
    b->ring_pos = b->ring_len = 0;
    if (b->buckets) {
        memset(b->buckets, 0, sizeof *b->buckets * b->cfg.window_size);
        b->head_sec = sec_of(now);
        for (uint32_t i = 0; i < b->cfg.window_size; i++)
            b->buckets[i].sec = INT64_MIN;
    }
}

/* Time window: drops the buckets that fell out of the last window_size seconds. */
static void window_advance(sl_breaker *b, int64_t now)
{
    int64_t sec = sec_of(now);
    if (sec <= b->head_sec) return;
    if (sec - b->head_sec >= (int64_t)b->cfg.window_size) {
        window_clear(b, now);
        return;
    }
    for (int64_t s = b->head_sec + 1; s <= sec; s++) {
        bucket *bk = &b->buckets[bucket_index(b, s)];
        b->win_calls -= bk->calls;
        b->win_failures -= bk->failures;
        b->win_slow -= bk->slow;
        *bk = (bucket){.sec = s};
    }
    b->head_sec = sec;
}

static void window_record(sl_breaker *b, int64_t now, bool failed, bool slow)
{
    if (b->ring) {
        if (b->ring_len == b->cfg.window_size) {
            uint8_t old = b->ring[b->ring_pos];
            b->win_calls--;
            b->win_failures -= (old & RING_FAIL) ? 1 : 0;
            b->win_slow -= (old & RING_SLOW) ? 1 : 0;
        } else {
            b->ring_len++;
        }
        b->ring[b->ring_pos] = (uint8_t)((failed ? RING_FAIL : 0) | (slow ? RING_SLOW : 0));
        b->ring_pos = (b->ring_pos + 1) % b->cfg.window_size;
    } else {
        window_advance(b, now);
        bucket *bk = &b->buckets[bucket_index(b, b->head_sec)];
        bk->calls++;
        bk->failures += failed;
        bk->slow += slow;
    }
    b->win_calls++;
    b->win_failures += failed;
    b->win_slow += slow;
}

static void transition(sl_breaker *b, sl_breaker_state to, sl_breaker_reason reason, int64_t now)
{
    sl_breaker_state from = b->state;
    b->state = to;
    b->generation++;
    b->since_ns = now;
    b->consecutive = 0;
    if (to == SL_BREAKER_CLOSED) window_clear(b, now);
    if (to == SL_BREAKER_HALF_OPEN) {
        memset(b->trials, 0, sizeof *b->trials * b->cfg.half_open_max_calls);
        b->trials_ok = 0;
    }
    b->stats.transitions[from][to]++;
    if (b->cb) {
        b->in_cb = 1;
        b->cb(from, to, reason, b->cb_data);
        b->in_cb = 0;
    }
}

/* Applies the transitions that only the passage of time causes. */
static void tick(sl_breaker *b, int64_t now)
{
    if (b->state == SL_BREAKER_OPEN &&
        now - b->since_ns >= sl__resilience_ms_to_ns(b->cfg.recovery_timeout_ms))
        transition(b, SL_BREAKER_HALF_OPEN, SL_BREAKER_REASON_RECOVERY_TIMEOUT, now);
    if (b->state == SL_BREAKER_HALF_OPEN) {
        int64_t bound = sl__resilience_ms_to_ns(b->cfg.half_open_timeout_ms);
        for (uint32_t i = 0; i < b->cfg.half_open_max_calls; i++) {
            if (b->trials[i].state == TRIAL_OUT && now - b->trials[i].admitted_ns >= bound) {
                transition(b, SL_BREAKER_OPEN, SL_BREAKER_REASON_TRIAL_TIMEOUT, now);
                break;
            }
        }
    }
}

int sl_breaker_new(const sl_breaker_config *cfg, const sl_clock *clock, sl_breaker_transition_cb cb,
                   void *data, sl_breaker **out)
{
    if (cfg == NULL || clock == NULL || out == NULL || !config_valid(cfg)) return SL_ECONFIG;
    sl_breaker *b = calloc(1, sizeof *b);
    if (b == NULL) return SL_ENOMEM;
    b->cfg = *cfg;
    b->clock = clock;
    b->cb = cb;
    b->cb_data = data;
    if (cfg->window == SL_BREAKER_WINDOW_COUNT)
        b->ring = calloc(cfg->window_size, sizeof *b->ring);
    else
        b->buckets = calloc(cfg->window_size, sizeof *b->buckets);
    b->trials = calloc(cfg->half_open_max_calls, sizeof *b->trials);
    if ((b->ring == NULL && b->buckets == NULL) || b->trials == NULL) {
        sl_breaker_free(b);
        return SL_ENOMEM;
    }
    b->state = SL_BREAKER_CLOSED;
    b->generation = 1;
    b->since_ns = now_ns(b);
    window_clear(b, b->since_ns);
    *out = b;
    return 0;
}

void sl_breaker_free(sl_breaker *b)
{
    if (b == NULL) return;
    free(b->ring);
    free(b->buckets);
    free(b->trials);
    free(b);
}

int sl_breaker_allow(sl_breaker *b, sl_breaker_permit *permit)
{
    SL_ASSERT(!b->in_cb);
    int64_t now = now_ns(b);
    tick(b, now);
    *permit = (sl_breaker_permit){._generation = b->generation, ._state = (uint8_t)b->state};
    if (b->state == SL_BREAKER_CLOSED) {
        permit->_active = 1;
        b->stats.allowed++;
        return 0;
    }
    if (b->state == SL_BREAKER_HALF_OPEN) {
        for (uint32_t i = 0; i < b->cfg.half_open_max_calls; i++) {
            if (b->trials[i].state != TRIAL_FREE) continue;
            b->trials[i] = (trial){.admitted_ns = now, .state = TRIAL_OUT};
            permit->_slot = i;
            permit->_active = 1;
            b->stats.allowed++;
            return 0;
        }
    }
    b->stats.rejected++;
    return SL_EUNAVAIL;
}

static void closed_result(sl_breaker *b, int64_t now, bool failed, bool slow)
{
    window_record(b, now, failed, slow);
    b->consecutive = failed ? b->consecutive + 1 : 0;
    const sl_breaker_config *c = &b->cfg;
    if (c->failure_threshold > 0 && b->consecutive >= c->failure_threshold) {
        transition(b, SL_BREAKER_OPEN, SL_BREAKER_REASON_CONSECUTIVE_FAILURES, now);
        return;
    }
    if (b->win_calls < c->minimum_calls) return;
    uint64_t calls = b->win_calls;
    if (c->failure_rate_pct > 0 && (uint64_t)b->win_failures * 100 >= c->failure_rate_pct * calls)
        transition(b, SL_BREAKER_OPEN, SL_BREAKER_REASON_FAILURE_RATE, now);
    else if (c->slow_call_rate_pct > 0 &&
             (uint64_t)b->win_slow * 100 >= c->slow_call_rate_pct * calls)
        transition(b, SL_BREAKER_OPEN, SL_BREAKER_REASON_SLOW_CALL_RATE, now);
}

static void trial_result(sl_breaker *b, uint32_t slot, int64_t now, bool failed, bool slow)
{
    SL_ASSERT(slot < b->cfg.half_open_max_calls && b->trials[slot].state == TRIAL_OUT);
    if (failed || (slow && b->cfg.slow_call_rate_pct > 0)) {
        transition(b, SL_BREAKER_OPEN, SL_BREAKER_REASON_TRIAL_FAILED, now);
        return;
    }
    b->trials[slot].state = TRIAL_OK;
    if (++b->trials_ok == b->cfg.half_open_max_calls)
        transition(b, SL_BREAKER_CLOSED, SL_BREAKER_REASON_TRIALS_SUCCEEDED, now);
}

int sl_breaker_on_result(sl_breaker *b, sl_breaker_permit *permit, bool failed, int64_t duration_ms)
{
    SL_ASSERT(!b->in_cb);
    if (!permit->_active) return SL_ESTATE;
    permit->_active = 0;
    int64_t now = now_ns(b);
    tick(b, now);
    if (permit->_generation != b->generation || b->state == SL_BREAKER_OPEN) {
        b->stats.stale++;
        return 0;
    }
    bool slow = duration_ms > b->cfg.slow_call_ms;
    if (failed)
        b->stats.failures++;
    else
        b->stats.successes++;
    b->stats.slow += slow;
    if (b->state == SL_BREAKER_CLOSED)
        closed_result(b, now, failed, slow);
    else
        trial_result(b, permit->_slot, now, failed, slow);
    return 0;
}

int sl_breaker_on_success(sl_breaker *b, sl_breaker_permit *permit, int64_t duration_ms)
{
    return sl_breaker_on_result(b, permit, false, duration_ms);
}

int sl_breaker_on_failure(sl_breaker *b, sl_breaker_permit *permit, int64_t duration_ms)
{
    return sl_breaker_on_result(b, permit, true, duration_ms);
}

int sl_breaker_release(sl_breaker *b, sl_breaker_permit *permit)
{
    SL_ASSERT(!b->in_cb);
    if (!permit->_active) return SL_ESTATE;
    permit->_active = 0;
    b->stats.released++;
    int64_t now = now_ns(b);
    tick(b, now);
    if (permit->_generation == b->generation && b->state == SL_BREAKER_HALF_OPEN) {
        SL_ASSERT(permit->_slot < b->cfg.half_open_max_calls);
        b->trials[permit->_slot].state = TRIAL_FREE;
    }
    return 0;
}

void sl_breaker_reset(sl_breaker *b)
{
    SL_ASSERT(!b->in_cb);
    transition(b, SL_BREAKER_CLOSED, SL_BREAKER_REASON_RESET, now_ns(b));
}

sl_breaker_state sl_breaker_state_now(sl_breaker *b)
{
    SL_ASSERT(!b->in_cb);
    tick(b, now_ns(b));
    return b->state;
}

sl_breaker_state sl_breaker_state_peek(const sl_breaker *b)
{
    return b->state;
}

static int64_t ceil_ms(int64_t ns)
{
    if (ns <= 0) return 0;
    return ns / SL_NS_PER_MS + (ns % SL_NS_PER_MS != 0);
}

int64_t sl_breaker_retry_after_ms(sl_breaker *b)
{
    SL_ASSERT(!b->in_cb);
    int64_t now = now_ns(b);
    tick(b, now);
    if (b->state == SL_BREAKER_OPEN)
        return ceil_ms(b->since_ns + sl__resilience_ms_to_ns(b->cfg.recovery_timeout_ms) - now);
    if (b->state == SL_BREAKER_HALF_OPEN) {
        int64_t best = INT64_MAX;
        for (uint32_t i = 0; i < b->cfg.half_open_max_calls; i++) {
            if (b->trials[i].state == TRIAL_FREE) return 0; /* a slot is free: come now */
            if (b->trials[i].state != TRIAL_OUT) continue;
            int64_t left = b->trials[i].admitted_ns +
                           sl__resilience_ms_to_ns(b->cfg.half_open_timeout_ms) - now;
            if (left < best) best = left;
        }
        return best == INT64_MAX ? 0 : ceil_ms(best);
    }
    return 0;
}

void sl_breaker_stats_get(const sl_breaker *b, sl_breaker_stats *out)
{
    *out = b->stats;
}
