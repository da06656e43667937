/*
 * Bulkhead (include/shoal/bulkhead.h): a permit counter and an intrusive
 * FIFO of waiters. Every waiter waits the same max_wait_ms from its enqueue
 * time and the clock is monotonic, so queue order is also deadline order:
 * expiry only ever looks at the head. Callbacks run from one dispatch loop
 * guarded by a flag, so a callback that releases or enqueues never recurses.
 */
#include <shoal/bulkhead.h>

#include "resilience_int.h"

#include <stdlib.h>

struct sl_bulkhead {
    sl_bulkhead_config cfg;
    const sl_clock *clock;
    uint32_t in_flight;
    uint32_t queued;
    sl_bulkhead_waiter *head, *tail;
    int dispatching;
    sl_bulkhead_stats stats;
};

void sl_bulkhead_config_default(sl_bulkhead_config *cfg)
{
    *cfg = (sl_bulkhead_config){.max_concurrent = 10, .max_queue = 0, .max_wait_ms = 100};
}

int sl_bulkhead_new(const sl_bulkhead_config *cfg, const sl_clock *clock, sl_bulkhead **out)
{
    if (cfg == NULL || clock == NULL || out == NULL) return SL_ECONFIG;
    if (cfg->max_concurrent == 0 || cfg->max_concurrent > SL_BULKHEAD_MAX_CONCURRENT ||
        cfg->max_queue > SL_BULKHEAD_MAX_QUEUE || (cfg->max_queue > 0 && cfg->max_wait_ms <= 0))
        return SL_ECONFIG;
    sl_bulkhead *b = calloc(1, sizeof *b);
    if (b == NULL) return SL_ENOMEM;
    b->cfg = *cfg;
    b->clock = clock;
    *out = b;
    return 0;
}

static void unlink_waiter(sl_bulkhead *b, sl_bulkhead_waiter *w)
{
    SL_ASSERT(w->_owner == b && b->queued > 0);
    if (w->_prev)
        w->_prev->_next = w->_next;
    else
        b->head = w->_next;
    if (w->_next)
        w->_next->_prev = w->_prev;
    else
        b->tail = w->_prev;
    w->_prev = w->_next = NULL;
    w->_owner = NULL;
    b->queued--;
}

void sl_bulkhead_free(sl_bulkhead *b)
{
    if (b == NULL) return;
    while (b->head)
        unlink_waiter(b, b->head);
    free(b);
}

int sl_bulkhead_try_acquire(sl_bulkhead *b)
{
    /* FIFO: with anyone queued, a newcomer may not overtake them. */
    if (b->in_flight >= b->cfg.max_concurrent || b->head != NULL) return SL_EBUSY;
    b->in_flight++;
    b->stats.acquired++;
    return 0;
}

int sl_bulkhead_enqueue(sl_bulkhead *b, sl_bulkhead_waiter *w, sl_bulkhead_cb cb, void *data)
{
    SL_ASSERT(cb != NULL);
    if (w->_owner != NULL) return SL_EINVAL;
    if (b->in_flight < b->cfg.max_concurrent && b->head == NULL) return SL_EAGAIN;
    if (b->queued >= b->cfg.max_queue) {
        b->stats.rejected++;
        return SL_ELIMIT;
    }
    int64_t now = sl_clock_mono_ns(b->clock);
    *w = (sl_bulkhead_waiter){
        ._prev = b->tail,
        ._owner = b,
        ._cb = cb,
        ._data = data,
        ._deadline_ns = sl__resilience_sat_add(now, sl__resilience_ms_to_ns(b->cfg.max_wait_ms)),
    };
    if (b->tail)
        b->tail->_next = w;
    else
        b->head = w;
    b->tail = w;
    b->queued++;
    return 0;
}

int sl_bulkhead_cancel(sl_bulkhead *b, sl_bulkhead_waiter *w)
{
    if (w->_owner != b) return SL_ENOTFOUND;
    unlink_waiter(b, w);
    b->stats.cancelled++;
    return 0;
}

/*
 * Fails expired waiters, then grants free permits in FIFO order, until
 * neither applies. Callbacks may release, enqueue or cancel; their effects
 * are picked up by the next turn of this loop instead of a nested dispatch.
 */
static uint32_t dispatch(sl_bulkhead *b)
{
    if (b->dispatching) return 0;
    b->dispatching = 1;
    uint32_t expired = 0;
    for (;;) {
        sl_bulkhead_waiter *w = b->head;
        if (w == NULL) break;
        int64_t now = sl_clock_mono_ns(b->clock);
        if (w->_deadline_ns <= now) {
            unlink_waiter(b, w);
            b->stats.expired++;
            expired++;
            w->_cb(w, SL_ETIMEDOUT, w->_data);
        } else if (b->in_flight < b->cfg.max_concurrent) {
            unlink_waiter(b, w);
            b->in_flight++;
            b->stats.granted++;
            w->_cb(w, 0, w->_data);
        } else {
            break;
        }
    }
    b->dispatching = 0;
    return expired;
}

int sl_bulkhead_release(sl_bulkhead *b)
{
    if (b->in_flight == 0) return SL_ESTATE;
    b->in_flight--;
    b->stats.released++;
    dispatch(b);
    return 0;
}

uint32_t sl_bulkhead_expire(sl_bulkhead *b)
{
    return dispatch(b);
}

int sl_bulkhead_next_deadline(const sl_bulkhead *b, int64_t *deadline_ns)
{
    if (b->head == NULL) return SL_ENOTFOUND;
    *deadline_ns = b->head->_deadline_ns;
    return 0;
}

uint32_t sl_bulkhead_available(const sl_bulkhead *b)
{
    return b->cfg.max_concurrent - b->in_flight;
}

void sl_bulkhead_stats_get(const sl_bulkhead *b, sl_bulkhead_stats *out)
{
    *out = b->stats;
    out->in_flight = b->in_flight;
    out->queued = b->queued;
}
