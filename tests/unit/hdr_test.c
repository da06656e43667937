/*
 * Unit tests for the HDR histogram: percentiles of known distributions (uniform, and
 * exponential with a fixed seed against the exact sorted samples) within the stated precision,
 * recording, merging and resetting, and the bounds.
 */
#include <shoal/hdr.h>
#include <shoal/rand.h>

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define HOUR_US (3600LL * 1000 * 1000)

/* The reported value v for a percentile whose exact value is x: x <= v <= x + slot - 1, and the
 * relative excess is within 10^-digits. */
static void assert_within(const sl_hdr *h, int64_t exact, int64_t got, int digits)
{
    int64_t w = sl_hdr_slot_width(h, exact);
    if (got < exact || got > exact + w - 1)
        fail_msg("reported %lld, exact %lld, slot width %lld", (long long)got, (long long)exact,
                 (long long)w);
    double rel = exact ? (double)(got - exact) / (double)exact : 0;
    assert_true(rel <= pow(10, -digits));
}

static int64_t exact_at(const int64_t *sorted, size_t n, double p)
{
    double want = ceil(p / 100.0 * (double)n);
    size_t k = want < 1 ? 1 : (size_t)want;
    return sorted[k - 1];
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static const double percentiles[] = {0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100};

static void test_uniform(void **state)
{
    (void)state;
    sl_hdr *h;
    assert_int_equal(sl_hdr_new(HOUR_US, 3, &h), 0);
    for (int64_t v = 1; v <= 100000; v++)
        assert_int_equal(sl_hdr_record(h, v), 0);
    assert_int_equal(sl_hdr_count(h), 100000);
    assert_int_equal(sl_hdr_min(h), 1);
    assert_int_equal(sl_hdr_max(h), 100000);
    for (size_t i = 0; i < sizeof percentiles / sizeof *percentiles; i++) {
        double p = percentiles[i];
        double want = ceil(p / 100.0 * 100000);
        int64_t exact = want < 1 ? 1 : (int64_t)want;
        assert_within(h, exact, sl_hdr_value_at(h, p), 3);
    }
    /* Below 2^M (2048 for 3 digits) every value is exact. */
    assert_int_equal(sl_hdr_value_at(h, 1), 1000);
    assert_int_equal(sl_hdr_value_at(h, 100), 100000);
    assert_true(fabs(sl_hdr_mean(h) - 50000.5) / 50000.5 < 1e-3);
    sl_hdr_free(h);
}

static void test_exponential_fixed_seed(void **state)
{
    (void)state;
    enum { N = 200000 };
    int64_t *samples = malloc(N * sizeof *samples);
    assert_non_null(samples);
    sl_rand r;
    sl_rand_seed(&r, 20261207);
    for (int digits = 2; digits <= 4; digits++) {
        sl_hdr *h;
        assert_int_equal(sl_hdr_new(HOUR_US, digits, &h), 0);
        for (size_t i = 0; i < N; i++) {
            /* mean 5 ms in microseconds, with a long tail */
            double u = sl_rand_unit(&r);
            samples[i] = (int64_t)(-log(1.0 - u) * 5000.0);
            assert_int_equal(sl_hdr_record(h, samples[i]), 0);
        }
        qsort(samples, N, sizeof *samples, cmp64);
        for (size_t i = 0; i < sizeof percentiles / sizeof *percentiles; i++)
            assert_within(h, exact_at(samples, N, percentiles[i]),
                          sl_hdr_value_at(h, percentiles[i]), digits);
        assert_int_equal(sl_hdr_max(h), samples[N - 1]);
        assert_int_equal(sl_hdr_min(h), samples[0]);
        double mean = 0;
        for (size_t i = 0; i < N; i++)
            mean += (double)samples[i];
        mean /= N;
        assert_true(fabs(sl_hdr_mean(h) - mean) / mean <= pow(10, -digits));
        sl_hdr_free(h);
    }
    free(samples);
}

static void test_precision_over_the_range(void **state)
{
    (void)state;
    for (int digits = SL_HDR_DIGITS_MIN; digits <= SL_HDR_DIGITS_MAX; digits++) {
        sl_hdr *h;
        int64_t highest = digits == 5 ? ((int64_t)1 << 30) : SL_HDR_HIGHEST_MAX;
        assert_int_equal(sl_hdr_new(highest, digits, &h), 0);
        for (int64_t v = 1; v <= highest / 3; v = v * 3 + 1) {
            int64_t w = sl_hdr_slot_width(h, v);
            assert_true(w >= 1);
            assert_true((double)(w - 1) <= (double)v * pow(10, -digits));
            /* the slot's values all report as one */
            sl_hdr_reset(h);
            assert_int_equal(sl_hdr_record(h, v), 0);
            int64_t got = sl_hdr_value_at(h, 50);
            assert_int_equal(got, v); /* clamped to the largest value recorded */
        }
        sl_hdr_free(h);
    }
}

static void test_merge_and_reset(void **state)
{
    (void)state;
    sl_hdr *a, *b, *all, *other;
    assert_int_equal(sl_hdr_new(HOUR_US, 3, &a), 0);
    assert_int_equal(sl_hdr_new(HOUR_US, 3, &b), 0);
    assert_int_equal(sl_hdr_new(HOUR_US, 3, &all), 0);
    assert_int_equal(sl_hdr_new(HOUR_US, 2, &other), 0);
    sl_rand r;
    sl_rand_seed(&r, 99);
    for (int i = 0; i < 50000; i++) {
        int64_t v = (int64_t)sl_rand_below(&r, 10000000);
        assert_int_equal(sl_hdr_record(i % 3 ? a : b, v), 0);
        assert_int_equal(sl_hdr_record(all, v), 0);
    }
    assert_int_equal(sl_hdr_record_n(b, 42, 7), 0);
    assert_int_equal(sl_hdr_record_n(all, 42, 7), 0);
    assert_int_equal(sl_hdr_merge(a, b), 0);
    assert_int_equal(sl_hdr_count(a), sl_hdr_count(all));
    assert_int_equal(sl_hdr_min(a), sl_hdr_min(all));
    assert_int_equal(sl_hdr_max(a), sl_hdr_max(all));
    for (double p = 0; p <= 100; p += 0.5)
        assert_int_equal(sl_hdr_value_at(a, p), sl_hdr_value_at(all, p));
    /* A histogram of another precision does not merge, and nothing changes. */
    assert_int_equal(sl_hdr_record(other, 5), 0);
    assert_int_equal(sl_hdr_merge(a, other), SL_EINVAL);
    assert_int_equal(sl_hdr_count(a), sl_hdr_count(all));
    /* Merging into an empty one copies. */
    sl_hdr_reset(b);
    assert_int_equal(sl_hdr_count(b), 0);
    assert_int_equal(sl_hdr_value_at(b, 99), 0);
    assert_int_equal(sl_hdr_max(b), 0);
    assert_int_equal(sl_hdr_merge(b, all), 0);
    assert_int_equal(sl_hdr_value_at(b, 99), sl_hdr_value_at(all, 99));
    assert_int_equal(sl_hdr_min(b), sl_hdr_min(all));
    /* Reset keeps the configuration. */
    sl_hdr_reset(a);
    assert_int_equal(sl_hdr_count(a), 0);
    assert_int_equal(sl_hdr_record(a, 1234), 0);
    assert_int_equal(sl_hdr_value_at(a, 100), 1234);
    assert_int_equal(sl_hdr_count(a), 1);
    sl_hdr_free(a);
    sl_hdr_free(b);
    sl_hdr_free(all);
    sl_hdr_free(other);
}

static void test_bounds(void **state)
{
    (void)state;
    sl_hdr *h = (sl_hdr *)&h;
    assert_int_equal(sl_hdr_new(1, 3, &h), SL_EINVAL);
    assert_null(h);
    assert_int_equal(sl_hdr_new(SL_HDR_HIGHEST_MAX + 1, 3, &h), SL_EINVAL);
    assert_int_equal(sl_hdr_new(1000, 0, &h), SL_EINVAL);
    assert_int_equal(sl_hdr_new(1000, 6, &h), SL_EINVAL);
    assert_int_equal(sl_hdr_new(1000000, 3, &h), 0);
    assert_int_equal(sl_hdr_highest(h), 1000000);
    /* Empty. */
    assert_int_equal(sl_hdr_value_at(h, 50), 0);
    assert_true(sl_hdr_mean(h) == 0);
    /* Negative: refused, not recorded. */
    assert_int_equal(sl_hdr_record(h, -1), SL_EINVAL);
    assert_int_equal(sl_hdr_count(h), 0);
    /* Zero is a value like any other. */
    assert_int_equal(sl_hdr_record(h, 0), 0);
    assert_int_equal(sl_hdr_value_at(h, 100), 0);
    /* Above the highest: recorded as the highest, counted as saturated. */
    assert_int_equal(sl_hdr_record(h, 5000000), SL_ELIMIT);
    assert_int_equal(sl_hdr_record_n(h, INT64_MAX, 2), SL_ELIMIT);
    assert_int_equal(sl_hdr_saturated(h), 3);
    assert_int_equal(sl_hdr_count(h), 4);
    assert_int_equal(sl_hdr_max(h), 1000000);
    assert_int_equal(sl_hdr_value_at(h, 100), 1000000);
    assert_int_equal(sl_hdr_value_at(h, 10), 0);
    /* Percentiles outside 0..100 are clamped; NaN counts as 0. */
    assert_int_equal(sl_hdr_value_at(h, -5), 0);
    assert_int_equal(sl_hdr_value_at(h, 500), 1000000);
    assert_int_equal(sl_hdr_value_at(h, NAN), 0);
    /* Zero occurrences change nothing. */
    assert_int_equal(sl_hdr_record_n(h, 7, 0), 0);
    assert_int_equal(sl_hdr_count(h), 4);
    /* Slot widths at the edges. */
    assert_int_equal(sl_hdr_slot_width(h, -3), 1);
    assert_true(sl_hdr_slot_width(h, 1000000) >= 1);
    assert_int_equal(sl_hdr_slot_width(h, 2047), 1);
    assert_int_equal(sl_hdr_slot_width(h, 2048), 2);
    sl_hdr_free(h);
    sl_hdr_free(NULL);
    /* The largest range is usable at low precision. */
    assert_int_equal(sl_hdr_new(SL_HDR_HIGHEST_MAX, 1, &h), 0);
    assert_int_equal(sl_hdr_record(h, SL_HDR_HIGHEST_MAX), 0);
    assert_int_equal(sl_hdr_value_at(h, 50), SL_HDR_HIGHEST_MAX);
    sl_hdr_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uniform),
        cmocka_unit_test(test_exponential_fixed_seed),
        cmocka_unit_test(test_precision_over_the_range),
        cmocka_unit_test(test_merge_and_reset),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
