/*
 * Adaptive admission for new orders: the number of sagas the order process lets run at once
 * (the limit) follows the latency of the sagas that finish, as AIMD on saga latency.
 *
 * Samples (created -> confirmed/cancelled, in ms) gather in windows of `window_ms`; a window
 * closes at the first sample after it has lasted `window_ms` and holds `min_samples` samples.
 * At its close, with `mean` the window's mean latency:
 *   - too slow (mean > max(target_ms, tolerance x baseline)): limit x= backoff, not below
 *     min_limit;
 *   - else, if the limit was reached during the window (an order was refused, or the backlog
 *     touched it): limit += max(1, limit x growth), not above max_limit;
 *   - else the limit stays (a shop under its limit learns nothing about more load).
 * The baseline is the latency the shop shows when the limit is not what holds it: the lowest
 * window mean seen, and it follows a window's mean (by a quarter of the difference) when the
 * limit was not reached in that window, so it tracks a shop that became slower or faster for
 * other reasons without creeping up under sustained overload.
 *
 * Pure: the caller passes the clock and serialises calls (saga.c holds a mutex around it).
 */
#ifndef SHOAL_ORDER_ADMISSION_H
#define SHOAL_ORDER_ADMISSION_H

#include <stdint.h>

typedef struct order_limit_config {
    int64_t min_limit;     /* lower bound, >= 1 (order.admission.min_limit) */
    int64_t max_limit;     /* upper bound (order.admission.max_backlog) */
    int64_t initial_limit; /* the limit at start; 0: max_limit */
    int64_t window_ms;     /* how long samples gather before the limit moves */
    int64_t min_samples;   /* a window closes only with this many samples */
    int64_t target_ms;     /* a window mean up to this is never too slow */
    double tolerance;      /* too slow: mean above tolerance x the baseline (>= 1) */
    double backoff;        /* the multiplicative decrease, in (0, 1) */
    double growth;         /* the increase as a share of the limit, >= 0 (at least 1) */
} order_limit_config;

typedef struct order_limit {
    order_limit_config c;
    double limit;
    double baseline_ms; /* < 0 until the first window closes */
    int64_t win_start_ms;
    int64_t win_n;
    double win_sum_ms;
    int win_reached; /* the limit was reached during the window */
    uint64_t decreases, increases;
} order_limit;

/* The defaults of the configuration keys (docs/services/order.md), max_limit 256. */
void order_limit_config_default(order_limit_config *c);

/* Starts `l` at `now_ms` with `c` (copied; out-of-range values are clamped: min_limit into
 * [1, max_limit], max_limit >= 1, window_ms >= 1, min_samples >= 1, tolerance >= 1,
 * backoff into [0.05, 0.99], growth >= 0). */
void order_limit_init(order_limit *l, const order_limit_config *c, int64_t now_ms);

/* Whether one more saga may start while `running` run: 1 (admit) or 0 (refuse). A refusal,
 * or an admission that fills the limit, marks the window as one where the limit was reached. */
int order_limit_admit(order_limit *l, int64_t running);

/* Records a finished saga's latency at `now_ms`; may close the window and move the limit.
 * Negative latencies (clock steps) count as 0. */
void order_limit_sample(order_limit *l, int64_t latency_ms, int64_t now_ms);

/* The current limit (whole sagas, within [min_limit, max_limit]). */
int64_t order_limit_current(const order_limit *l);

#endif
