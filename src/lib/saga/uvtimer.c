/*
 * libuv implementation of sl_saga_timer: one uv_timer_t, re-armed with the
 * delay to the driver's earliest wake-up. uv_update_time() before arming,
 * because a long callback leaves uv_now() stale and the timer would fire
 * early (libuv caches the loop time once per iteration).
 */
#include "saga/saga_int.h"

static void fired(uv_timer_t *h)
{
    sl_saga_uv_timer *t = h->data;
    if (t->_cb != NULL) t->_cb(t->_data);
}

static int arm(void *ctx, int64_t delay_ms, sl_saga_timer_cb cb, void *data)
{
    sl_saga_uv_timer *t = ctx;
    if (!t->_init) return SL_ESTATE;
    t->_cb = cb;
    t->_data = data;
    uv_update_time(uv_handle_get_loop((uv_handle_t *)&t->_t));
    return uv_timer_start(&t->_t, fired, delay_ms < 0 ? 0 : (uint64_t)delay_ms, 0) == 0 ? 0
                                                                                        : SL_EINVAL;
}

static void disarm(void *ctx)
{
    sl_saga_uv_timer *t = ctx;
    if (t->_init) uv_timer_stop(&t->_t);
}

int sl_saga_uv_timer_init(sl_saga_uv_timer *t, uv_loop_t *loop, sl_saga_timer *out)
{
    t->_cb = NULL;
    t->_data = NULL;
    t->_init = 0;
    if (loop == NULL || uv_timer_init(loop, &t->_t) != 0) return SL_EINVAL;
    t->_t.data = t;
    t->_init = 1;
    out->ctx = t;
    out->arm = arm;
    out->disarm = disarm;
    return 0;
}

void sl_saga_uv_timer_close(sl_saga_uv_timer *t)
{
    if (!t->_init) return;
    t->_init = 0;
    uv_close((uv_handle_t *)&t->_t, NULL);
}
