/*
 * The order service's adaptive admission limit alone (admission.c), on a fake clock: it comes
 * down while saga latency rises, grows back when latency falls, stays within its bounds, does
 * not grow while the shop is under it, and holds a modelled shop at twice its capacity near
 * the latency the shop shows at 80 % load.
 */
#include "admission.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static order_limit_config cfg(int64_t min, int64_t max)
{
    order_limit_config c;
    order_limit_config_default(&c);
    c.min_limit = min;
    c.max_limit = max;
    return c;
}

/* One window at `*now`: the limit reached (`reached`: an admission refused) or not, then
 * `n` samples of `latency_ms` spread over it; returns the limit after it. */
static int64_t window(order_limit *l, int64_t *now, int reached, int64_t latency_ms, int n)
{
    int64_t cur = order_limit_current(l);
    if (reached)
        assert_int_equal(order_limit_admit(l, cur), 0);
    else
        assert_int_equal(order_limit_admit(l, cur / 2 > 0 ? cur / 2 - 1 : 0), 1);
    int64_t step = l->c.window_ms / n + 1;
    for (int i = 0; i < n; i++) {
        *now += step;
        order_limit_sample(l, latency_ms, *now);
    }
    return order_limit_current(l);
}

static void test_defaults_and_clamps(void **state)
{
    (void)state;
    order_limit l;
    order_limit_config c = cfg(4, 256);
    order_limit_init(&l, &c, 0);
    assert_int_equal(order_limit_current(&l), 256); /* starts at the maximum */
    /* min above max, zero and negative values, absurd factors: all clamped */
    c = (order_limit_config){.min_limit = 50,
                             .max_limit = 3,
                             .initial_limit = -1,
                             .window_ms = 0,
                             .min_samples = 0,
                             .target_ms = -5,
                             .tolerance = 0.1,
                             .backoff = 7.0,
                             .growth = -1.0};
    order_limit_init(&l, &c, 0);
    assert_int_equal(l.c.max_limit, 3);
    assert_int_equal(l.c.min_limit, 3);
    assert_int_equal(order_limit_current(&l), 3);
    assert_int_equal(l.c.window_ms, 1);
    assert_int_equal(l.c.min_samples, 1);
    assert_int_equal(l.c.target_ms, 0);
    assert_true(l.c.tolerance >= 1.0 && l.c.backoff <= 0.99 && l.c.growth == 0.0);
    c = cfg(2, 100);
    c.initial_limit = 10;
    order_limit_init(&l, &c, 0);
    assert_int_equal(order_limit_current(&l), 10);
    /* the fixed limit's behaviour at the boundary: running == limit is refused */
    assert_int_equal(order_limit_admit(&l, 9), 1);
    assert_int_equal(order_limit_admit(&l, 10), 0);
    assert_int_equal(order_limit_admit(&l, 11), 0);
}

static void test_converges_down_under_rising_latency(void **state)
{
    (void)state;
    order_limit l;
    order_limit_config c = cfg(4, 256);
    int64_t now = 1000;
    order_limit_init(&l, &c, now);
    /* learn the shop's latency while under the limit: 20 ms, the limit does not move */
    for (int i = 0; i < 10; i++)
        assert_int_equal(window(&l, &now, 0, 20, 16), 256);
    assert_true(l.baseline_ms > 19.0 && l.baseline_ms < 21.0);
    /* latency rises while the limit holds the load: the limit comes down, every window */
    int64_t prev = 256, lat = 60;
    for (int i = 0; i < 8; i++, lat += 40) {
        int64_t cur = window(&l, &now, 1, lat, 16);
        assert_true(cur < prev);
        prev = cur;
    }
    /* and keeps going down to its minimum, never below */
    for (int i = 0; i < 40; i++)
        assert_true(window(&l, &now, 1, 2000, 16) >= 4);
    assert_int_equal(order_limit_current(&l), 4);
    assert_true(l.decreases >= 8);
    /* a window too short, or with too few samples, moves nothing */
    int64_t t0 = now;
    for (int i = 0; i < 100; i++)
        order_limit_sample(&l, 1, t0 + 1);
    assert_int_equal(order_limit_current(&l), 4);
    order_limit_init(&l, &c, now);
    window(&l, &now, 0, 20, 16); /* the first window only sets the baseline */
    now += 10000;
    for (int i = 0; i < 7; i++)
        order_limit_sample(&l, 5000, now);
    assert_int_equal(order_limit_current(&l), 256);
    order_limit_sample(&l, 5000, now); /* the eighth closes it */
    assert_int_equal(order_limit_current(&l), 192);
}

static void test_recovers_when_latency_falls(void **state)
{
    (void)state;
    order_limit l;
    order_limit_config c = cfg(4, 256);
    int64_t now = 0;
    order_limit_init(&l, &c, now);
    for (int i = 0; i < 4; i++)
        window(&l, &now, 0, 20, 16);
    for (int i = 0; i < 30; i++)
        window(&l, &now, 1, 500, 16);
    assert_int_equal(order_limit_current(&l), 4);
    /* latency falls back while orders are still refused: the limit grows, window after window,
     * up to its maximum and no further */
    int64_t prev = 4;
    int windows = 0;
    while (order_limit_current(&l) < 256) {
        int64_t cur = window(&l, &now, 1, 20, 16);
        assert_true(cur > prev);
        prev = cur;
        assert_true(++windows < 200);
    }
    for (int i = 0; i < 10; i++)
        assert_int_equal(window(&l, &now, 1, 20, 16), 256);
    assert_true(l.increases >= (uint64_t)windows);
}

static void test_no_growth_below_the_limit(void **state)
{
    (void)state;
    order_limit l;
    order_limit_config c = cfg(4, 256);
    c.initial_limit = 32;
    int64_t now = 0;
    order_limit_init(&l, &c, now);
    /* fast sagas, but nothing ever asked for more than the limit: it stays */
    for (int i = 0; i < 50; i++)
        assert_int_equal(window(&l, &now, 0, 10, 16), 32);
    assert_int_equal(l.increases, 0);
    /* latency under the target (50 ms) is never too slow, even at 4x the baseline */
    for (int i = 0; i < 10; i++)
        assert_true(window(&l, &now, 1, 45, 16) > 32);
}

/* A modelled shop: sagas share a capacity of `mu` per second, each needs at least `s` ms, so
 * with `running` sagas each takes max(s, running / mu). Offered twice its capacity, the limit
 * must hold the admitted sagas' latency within twice what it was at 80 % load. */
static void test_holds_latency_at_twice_capacity(void **state)
{
    (void)state;
    order_limit l;
    order_limit_config c = cfg(4, 256);
    const double mu = 200.0; /* sagas/s */
    const double s = 20.0;   /* ms */
    int64_t now = 0;
    order_limit_init(&l, &c, now);
    /* 80 % load: 160/s x 20 ms = 3.2 sagas running, far under the limit */
    double at80 = s;
    for (int i = 0; i < 20; i++)
        window(&l, &now, 0, (int64_t)at80, 16);
    /* 2x: the backlog fills to the limit */
    double worst_late = 0;
    for (int i = 0; i < 400; i++) {
        double running = (double)order_limit_current(&l);
        double lat = running / mu * 1000.0;
        if (lat < s) lat = s;
        window(&l, &now, 1, (int64_t)lat, 16);
        if (i >= 100 && lat > worst_late) worst_late = lat;
    }
    /* once settled, no window's latency is above max(target, 2 x the 80 % latency) by more
     * than one growth step */
    double bound = c.target_ms > 2 * at80 ? (double)c.target_ms : 2 * at80;
    assert_true(worst_late <= bound * (1.0 + c.growth) + 5.0);
    /* and the limit still lets the shop work at capacity: enough sagas to keep it busy */
    assert_true((double)order_limit_current(&l) >= 0.5 * mu * s / 1000.0);
    assert_true(order_limit_current(&l) >= 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_clamps),
        cmocka_unit_test(test_converges_down_under_rising_latency),
        cmocka_unit_test(test_recovers_when_latency_falls),
        cmocka_unit_test(test_no_growth_below_the_limit),
        cmocka_unit_test(test_holds_latency_at_twice_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
