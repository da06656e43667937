/*
 * Unit tests for the keyed rate limiter (include/shoal/ratelimit.h): bucket
 * arithmetic and Retry-After with the fake clock, LRU eviction without losing
 * a key's debt, then seeded random runs checking that no key is ever
 * admitted more than burst + rate × elapsed and the table stays bounded.
 */
#include <shoal/ratelimit.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define MS INT64_C(1000000)

static sl_ratelimit *make(sl_fake_clock *fc, uint32_t rate, int64_t period_ms, uint32_t burst,
                          uint32_t max_keys)
{
    sl_ratelimit_config c;
    sl_ratelimit_config_default(&c);
    c.rate = rate;
    c.period_ms = period_ms;
    c.burst = burst;
    c.max_keys = max_keys;
    sl_rand r;
    sl_rand_seed(&r, 42);
    sl_ratelimit *rl;
    assert_int_equal(sl_ratelimit_new(&c, &fc->clock, &r, &rl), 0);
    return rl;
}

static int take(sl_ratelimit *rl, const char *key, int64_t *wait)
{
    return sl_ratelimit_take(rl, key, strlen(key), wait);
}

static void test_config(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_rand r;
    sl_rand_seed(&r, 1);
    sl_ratelimit_config c;
    sl_ratelimit_config_default(&c);
    sl_ratelimit *rl;
    assert_int_equal(sl_ratelimit_new(&c, &fc.clock, &r, &rl), 0);
    sl_ratelimit_free(rl);
    sl_ratelimit_config bad[5] = {c, c, c, c, c};
    bad[0].rate = 0;
    bad[1].burst = 0;
    bad[2].max_keys = 0;
    bad[3].period_ms = 0;
    bad[4].rate = 1;
    bad[4].period_ms = SL_RATELIMIT_MAX_PERIOD_MS;
    bad[4].burst = UINT32_MAX; /* burst * period would overflow */
    for (int i = 0; i < 5; i++)
        assert_int_equal(sl_ratelimit_new(&bad[i], &fc.clock, &r, &rl), SL_ECONFIG);
}

static void test_burst_then_rate(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_ratelimit *rl = make(&fc, 10, 1000, 5, 100); /* 10/s, burst 5 */
    int64_t wait = -1;
    for (int i = 0; i < 5; i++)
        assert_int_equal(take(rl, "alice", &wait), 0);
    assert_int_equal(take(rl, "alice", &wait), SL_ELIMIT);
    assert_int_equal(wait, 100); /* one token every 100 ms */
    /* Another key has its own bucket. */
    assert_int_equal(take(rl, "bob", &wait), 0);
    sl_fake_clock_advance(&fc, 99 * MS);
    assert_int_equal(take(rl, "alice", &wait), SL_ELIMIT);
    assert_int_equal(wait, 1);
    sl_fake_clock_advance(&fc, 1 * MS);
    assert_int_equal(take(rl, "alice", &wait), 0);
    assert_int_equal(take(rl, "alice", &wait), SL_ELIMIT);
    /* A long idle refills to burst, not beyond. */
    sl_fake_clock_advance(&fc, 60000 * MS);
    for (int i = 0; i < 5; i++)
        assert_int_equal(take(rl, "alice", NULL), 0);
    assert_int_equal(take(rl, "alice", NULL), SL_ELIMIT);
    sl_ratelimit_stats st;
    sl_ratelimit_stats_get(rl, &st);
    assert_int_equal(st.admitted, 12);
    assert_int_equal(st.refused, 4);
    assert_int_equal(st.keys, 2);
    sl_ratelimit_free(rl);
}

static void test_slow_rate(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_ratelimit *rl = make(&fc, 1, 60000, 1, 10); /* one per minute */
    int64_t wait;
    assert_int_equal(take(rl, "k", &wait), 0);
    assert_int_equal(take(rl, "k", &wait), SL_ELIMIT);
    assert_int_equal(wait, 60000);
    sl_fake_clock_advance(&fc, 59999 * MS);
    assert_int_equal(take(rl, "k", &wait), SL_ELIMIT);
    sl_fake_clock_advance(&fc, 1 * MS);
    assert_int_equal(take(rl, "k", &wait), 0);
    sl_ratelimit_free(rl);
}

static void test_keys_validated(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_ratelimit *rl = make(&fc, 10, 1000, 5, 10);
    char big[200];
    memset(big, 'x', sizeof big);
    assert_int_equal(sl_ratelimit_take(rl, big, 129, NULL), SL_EINVAL);
    assert_int_equal(sl_ratelimit_take(rl, big, 128, NULL), 0);
    assert_int_equal(sl_ratelimit_take(rl, "", 0, NULL), SL_EINVAL);
    /* Keys are bytes: embedded NULs and prefixes are distinct keys. */
    assert_int_equal(sl_ratelimit_take(rl, "a\0b", 3, NULL), 0);
    assert_int_equal(sl_ratelimit_take(rl, "a\0c", 3, NULL), 0);
    assert_int_equal(sl_ratelimit_take(rl, "a", 1, NULL), 0);
    sl_ratelimit_stats st;
    sl_ratelimit_stats_get(rl, &st);
    assert_int_equal(st.keys, 4);
    sl_ratelimit_free(rl);
}

static void test_lru_eviction_keeps_debt(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_ratelimit *rl = make(&fc, 1, 1000, 1, 2); /* two keys, one per second */
    int64_t wait;
    assert_int_equal(take(rl, "a", NULL), 0);
    assert_int_equal(take(rl, "b", NULL), 0);
    assert_int_equal(take(rl, "a", NULL), SL_ELIMIT); /* a is now most recently used */
    assert_int_equal(take(rl, "c", NULL), 0);         /* evicts b, the least recently used */
    sl_ratelimit_stats st;
    sl_ratelimit_stats_get(rl, &st);
    assert_int_equal(st.keys, 2);
    assert_int_equal(st.evictions, 1);
    /* b comes back at once: its bucket was empty, and eviction must not refill it. */
    assert_int_equal(take(rl, "b", &wait), SL_ELIMIT); /* evicts a (its debt is kept too) */
    assert_int_equal(wait, 1000);
    assert_int_equal(take(rl, "a", &wait), SL_ELIMIT);
    assert_int_equal(wait, 1000);
    sl_fake_clock_advance(&fc, 1000 * MS);
    assert_int_equal(take(rl, "a", NULL), 0);
    assert_int_equal(take(rl, "b", NULL), 0);
    sl_ratelimit_stats_get(rl, &st);
    assert_int_equal(st.keys, 2);
    sl_ratelimit_free(rl);
}

/* ---- Randomised invariants ---- */

#define NKEYS 12
#define STEPS 1500

static void run_ratelimit_sequence(uint64_t seed)
{
    static int64_t admits[NKEYS][STEPS];
    int nadmit[NKEYS] = {0};
    sl_rand r;
    sl_rand_seed(&r, seed);
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_ratelimit_config c;
    sl_ratelimit_config_default(&c);
    c.rate = 1 + (uint32_t)sl_rand_below(&r, 20);
    c.period_ms = 1 + (int64_t)sl_rand_below(&r, 2000);
    c.burst = 1 + (uint32_t)sl_rand_below(&r, 8);
    c.max_keys = 1 + (uint32_t)sl_rand_below(&r, NKEYS);
    sl_ratelimit *rl;
    assert_int_equal(sl_ratelimit_new(&c, &fc.clock, &r, &rl), 0);
    int hot = (int)sl_rand_below(&r, 100); /* share of traffic on key 0 */
    for (int s = 0; s < STEPS; s++) {
        if (sl_rand_below(&r, 3) == 0)
            sl_fake_clock_advance(&fc, (int64_t)sl_rand_below(&r, 50) * MS);
        int k = (int)sl_rand_below(&r, 100) < hot ? 0 : (int)sl_rand_below(&r, NKEYS);
        char key[16];
        int n = snprintf(key, sizeof key, "client-%d", k);
        int64_t wait = -1;
        int rc = sl_ratelimit_take(rl, key, (size_t)n, &wait);
        if (rc == 0)
            admits[k][nadmit[k]++] = fc.mono_ns;
        else if (rc != SL_ELIMIT || wait < 1)
            fail_msg("seed %llu step %d: rc %d wait %lld", (unsigned long long)seed, s, rc,
                     (long long)wait);
        sl_ratelimit_stats st;
        sl_ratelimit_stats_get(rl, &st);
        if (st.keys > c.max_keys)
            fail_msg("seed %llu step %d: %u keys > capacity %u", (unsigned long long)seed, s,
                     st.keys, c.max_keys);
    }
    /* For every key and every pair of its admissions i..j:  j - i + 1 <= burst + rate * dt /
     * period. */
    int64_t period_ns = c.period_ms * MS;
    for (int k = 0; k < NKEYS; k++)
        for (int i = 0; i < nadmit[k]; i++)
            for (int j = i; j < nadmit[k]; j++) {
                __int128 count = j - i + 1;
                __int128 dt = admits[k][j] - admits[k][i];
                if ((count - c.burst) * period_ns > dt * c.rate)
                    fail_msg("seed %llu key %d: %d admits in %lld ns (rate %u/%lld ms, burst %u)",
                             (unsigned long long)seed, k, j - i + 1, (long long)dt, c.rate,
                             (long long)c.period_ms, c.burst);
            }
    sl_ratelimit_free(rl);
}

static void test_random_sequences(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 2000; seed++)
        run_ratelimit_sequence(seed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_slow_rate),
        cmocka_unit_test(test_keys_validated),
        cmocka_unit_test(test_lru_eviction_keeps_debt),
        cmocka_unit_test(test_random_sequences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
