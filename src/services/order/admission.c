/* Adaptive admission: AIMD on saga latency (admission.h). */
#include "admission.h"

void order_limit_config_default(order_limit_config *c)
{
    *c = (order_limit_config){.min_limit = 4,
                              .max_limit = 256,
                              .initial_limit = 0,
                              .window_ms = 250,
                              .min_samples = 8,
                              .target_ms = 50,
                              .tolerance = 2.0,
                              .backoff = 0.75,
                              .growth = 0.05};
}

void order_limit_init(order_limit *l, const order_limit_config *c, int64_t now_ms)
{
    order_limit_config k = *c;
    if (k.max_limit < 1) k.max_limit = 1;
    if (k.min_limit < 1) k.min_limit = 1;
    if (k.min_limit > k.max_limit) k.min_limit = k.max_limit;
    if (k.initial_limit <= 0 || k.initial_limit > k.max_limit) k.initial_limit = k.max_limit;
    if (k.initial_limit < k.min_limit) k.initial_limit = k.min_limit;
    if (k.window_ms < 1) k.window_ms = 1;
    if (k.min_samples < 1) k.min_samples = 1;
    if (k.target_ms < 0) k.target_ms = 0;
    if (!(k.tolerance >= 1.0)) k.tolerance = 1.0;
    if (!(k.backoff >= 0.05)) k.backoff = 0.05;
    if (k.backoff > 0.99) k.backoff = 0.99;
    if (!(k.growth >= 0.0)) k.growth = 0.0;
    *l = (order_limit){
        .c = k, .limit = (double)k.initial_limit, .baseline_ms = -1.0, .win_start_ms = now_ms};
}

int64_t order_limit_current(const order_limit *l)
{
    return (int64_t)l->limit;
}

int order_limit_admit(order_limit *l, int64_t running)
{
    int64_t lim = order_limit_current(l);
    if (running >= lim) {
        l->win_reached = 1;
        return 0;
    }
    if (running + 1 >= lim) l->win_reached = 1;
    return 1;
}

static void close_window(order_limit *l, int64_t now_ms)
{
    const order_limit_config *c = &l->c;
    double mean = l->win_sum_ms / (double)l->win_n;
    if (l->baseline_ms < 0 || mean < l->baseline_ms)
        l->baseline_ms = mean;
    else if (!l->win_reached)
        l->baseline_ms += (mean - l->baseline_ms) / 4.0;
    double slow = c->tolerance * l->baseline_ms;
    if (slow < (double)c->target_ms) slow = (double)c->target_ms;
    if (mean > slow) {
        l->limit *= c->backoff;
        if (l->limit < (double)c->min_limit) l->limit = (double)c->min_limit;
        l->decreases++;
    } else if (l->win_reached) {
        double step = l->limit * c->growth;
        l->limit += step < 1.0 ? 1.0 : step;
        if (l->limit > (double)c->max_limit) l->limit = (double)c->max_limit;
        l->increases++;
    }
    l->win_start_ms = now_ms;
    l->win_n = 0;
    l->win_sum_ms = 0;
    l->win_reached = 0;
}

void order_limit_sample(order_limit *l, int64_t latency_ms, int64_t now_ms)
{
    l->win_sum_ms += (double)(latency_ms > 0 ? latency_ms : 0);
    l->win_n++;
    if (now_ms - l->win_start_ms >= l->c.window_ms && l->win_n >= l->c.min_samples)
        close_window(l, now_ms);
}
