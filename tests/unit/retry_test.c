/*
 * Unit tests for the retry policy, the Retry-After parser and the retry
 * budget (include/shoal/retry.h): each rule deterministically with the fake
 * clock and a seeded generator, then seeded random runs checking that delays
 * stay in bounds and the budget never grants more than 20 % + floor.
 */
#include <shoal/retry.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define MS   INT64_C(1000000)
#define SEC  INT64_C(1000000000)
#define NONE INT64_MAX

/* Sun, 06 Nov 1994 08:49:37 GMT */
#define T1994 (INT64_C(784111777) * SEC)

static sl_retry_decision next(sl_retry_state *st, sl_outcome o, const char *ra, sl_rand *r,
                              sl_retry_budget *bud, int64_t *delay)
{
    return sl_retry_next(st, o, ra, ra ? strlen(ra) : 0, r, bud, delay);
}

static void test_config(void **state)
{
    (void)state;
    sl_retry_config c;
    sl_retry_config_default(&c);
    assert_int_equal(c.max_retries, 3);
    assert_int_equal(c.base_ms, 50);
    assert_int_equal(c.cap_ms, 2000);
    assert_int_equal(c.jitter, SL_RETRY_JITTER_FULL);
    assert_int_equal(sl_retry_config_valid(&c), 0);
    sl_retry_config bad = c;
    bad.max_retries = SL_RETRY_LIMIT_RETRIES + 1;
    assert_int_equal(sl_retry_config_valid(&bad), SL_ECONFIG);
    bad = c;
    bad.base_ms = 0;
    assert_int_equal(sl_retry_config_valid(&bad), SL_ECONFIG);
    bad = c;
    bad.cap_ms = 10; /* below base */
    assert_int_equal(sl_retry_config_valid(&bad), SL_ECONFIG);
    bad = c;
    bad.per_try_timeout_ms = -1;
    assert_int_equal(sl_retry_config_valid(&bad), SL_ECONFIG);
    assert_string_equal(sl_retry_decision_name(SL_RETRY_BUDGET), "budget_exhausted");
    assert_string_equal(sl_retry_decision_name(SL_RETRY_RETRY), "retry");
    assert_string_equal(sl_retry_decision_name((sl_retry_decision)99), "unknown");
}

static void test_methods_and_outcomes(void **state)
{
    (void)state;
    const char *yes[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    const char *no[] = {"POST", "PATCH", "CONNECT", "get", "", "GETS"};
    for (size_t i = 0; i < SL_ARRAY_LEN(yes); i++)
        assert_true(sl_retry_method_idempotent((sl_slice){yes[i], strlen(yes[i])}));
    for (size_t i = 0; i < SL_ARRAY_LEN(no); i++)
        assert_false(sl_retry_method_idempotent((sl_slice){no[i], strlen(no[i])}));

    assert_true(sl_retry_outcome_retryable(sl_outcome_of(SL_OUTCOME_CONNECT_ERROR)));
    assert_true(sl_retry_outcome_retryable(sl_outcome_of(SL_OUTCOME_TIMEOUT)));
    assert_true(sl_retry_outcome_retryable(sl_outcome_of(SL_OUTCOME_IO_ERROR)));
    int retry_status[] = {429, 502, 503, 504};
    int final_status[] = {200, 201, 400, 404, 409, 500, 501, 505};
    for (size_t i = 0; i < SL_ARRAY_LEN(retry_status); i++)
        assert_true(sl_retry_outcome_retryable(sl_outcome_response(retry_status[i])));
    for (size_t i = 0; i < SL_ARRAY_LEN(final_status); i++)
        assert_false(sl_retry_outcome_retryable(sl_outcome_response(final_status[i])));
}

static void test_decisions(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, T1994);
    sl_rand r;
    sl_rand_seed(&r, 7);
    sl_retry_config c;
    sl_retry_config_default(&c);
    sl_retry_state st;
    int64_t d;

    /* A POST without idempotency-key is never retried, whatever happened. */
    sl_retry_state_init(&st, &c, &fc.clock, NONE, false);
    assert_int_equal(next(&st, sl_outcome_response(503), NULL, &r, NULL, &d),
                     SL_RETRY_NOT_IDEMPOTENT);
    assert_int_equal(d, -1);
    assert_int_equal(next(&st, sl_outcome_of(SL_OUTCOME_TIMEOUT), NULL, &r, NULL, &d),
                     SL_RETRY_NOT_IDEMPOTENT);
    /* Final outcomes are not retried even when safe. */
    sl_retry_state_init(&st, &c, &fc.clock, NONE, true);
    assert_int_equal(next(&st, sl_outcome_response(500), NULL, &r, NULL, &d),
                     SL_RETRY_NOT_RETRYABLE);
    assert_int_equal(next(&st, sl_outcome_response(404), NULL, &r, NULL, &d),
                     SL_RETRY_NOT_RETRYABLE);
    /* Three retries, then stop. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(next(&st, sl_outcome_of(SL_OUTCOME_CONNECT_ERROR), NULL, &r, NULL, &d),
                         SL_RETRY_RETRY);
        assert_in_range(d, 0, 50 << i);
        assert_int_equal(sl_retry_count(&st), i + 1);
    }
    assert_int_equal(next(&st, sl_outcome_response(502), NULL, &r, NULL, &d), SL_RETRY_MAX_RETRIES);
    assert_int_equal(sl_retry_count(&st), 3);
}

static void test_full_jitter_spread(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_retry_config c;
    sl_retry_config_default(&c);
    c.max_retries = 8;
    int64_t lo[8], hi[8];
    for (int i = 0; i < 8; i++) {
        lo[i] = INT64_MAX;
        hi[i] = -1;
    }
    for (uint64_t seed = 1; seed <= 2000; seed++) {
        sl_rand r;
        sl_rand_seed(&r, seed);
        sl_retry_state st;
        sl_retry_state_init(&st, &c, &fc.clock, NONE, true);
        for (int i = 0; i < 8; i++) {
            int64_t d;
            assert_int_equal(next(&st, sl_outcome_response(503), NULL, &r, NULL, &d),
                             SL_RETRY_RETRY);
            if (d < lo[i]) lo[i] = d;
            if (d > hi[i]) hi[i] = d;
        }
    }
    /* Retry n is uniform over [0, min(2000, 50 * 2^n)]: 2000 draws reach both ends closely. */
    for (int i = 0; i < 8; i++) {
        int64_t ceiling = (50 << i) > 2000 ? 2000 : (50 << i);
        assert_true(lo[i] >= 0 && lo[i] <= ceiling / 50);
        assert_true(hi[i] <= ceiling && hi[i] >= ceiling - ceiling / 50);
    }
}

static void test_decorrelated_jitter(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_retry_config c;
    sl_retry_config_default(&c);
    c.jitter = SL_RETRY_JITTER_DECORRELATED;
    c.max_retries = 10;
    int hit_cap = 0;
    for (uint64_t seed = 1; seed <= 1000; seed++) {
        sl_rand r;
        sl_rand_seed(&r, seed);
        sl_retry_state st;
        sl_retry_state_init(&st, &c, &fc.clock, NONE, true);
        int64_t prev = c.base_ms;
        for (int i = 0; i < 10; i++) {
            int64_t d;
            assert_int_equal(next(&st, sl_outcome_of(SL_OUTCOME_TIMEOUT), NULL, &r, NULL, &d),
                             SL_RETRY_RETRY);
            assert_true(d >= c.base_ms && d <= c.cap_ms);
            assert_true(d <= prev * 3);
            hit_cap += d == c.cap_ms;
            prev = d;
        }
    }
    assert_true(hit_cap > 0);
}

static void test_retry_after_honoured(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, T1994 - 3 * SEC);
    sl_rand r;
    sl_rand_seed(&r, 1);
    sl_retry_config c;
    sl_retry_config_default(&c);
    sl_retry_state st;
    int64_t d;
    sl_retry_state_init(&st, &c, &fc.clock, NONE, true);
    /* Delta-seconds on 503: at least what was asked. */
    assert_int_equal(next(&st, sl_outcome_response(503), "2", &r, NULL, &d), SL_RETRY_RETRY);
    assert_int_equal(d, 2000);
    /* HTTP-date on 429, three seconds from now. */
    assert_int_equal(
        next(&st, sl_outcome_response(429), "Sun, 06 Nov 1994 08:49:37 GMT", &r, NULL, &d),
        SL_RETRY_RETRY);
    assert_int_equal(d, 3000);
    /* Asking for more than retry_after_max_ms (5 s): give up instead of retrying early. */
    assert_int_equal(next(&st, sl_outcome_response(503), "6", &r, NULL, &d), SL_RETRY_RETRY_AFTER);
    assert_int_equal(sl_retry_count(&st), 2);
    /* Retry-After on other statuses is ignored, as is a malformed one. */
    sl_retry_state_init(&st, &c, &fc.clock, NONE, true);
    assert_int_equal(next(&st, sl_outcome_response(502), "60", &r, NULL, &d), SL_RETRY_RETRY);
    assert_in_range(d, 0, 50);
    assert_int_equal(next(&st, sl_outcome_response(503), "soon", &r, NULL, &d), SL_RETRY_RETRY);
    assert_in_range(d, 0, 100);
    /* A past date or 0 means "now": the jittered backoff still applies. */
    assert_int_equal(next(&st, sl_outcome_response(503), "0", &r, NULL, &d), SL_RETRY_RETRY);
    assert_in_range(d, 0, 200);
}

static void test_deadline_and_try_timeout(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, T1994);
    sl_rand r;
    sl_rand_seed(&r, 3);
    sl_retry_config c;
    sl_retry_config_default(&c);
    sl_retry_state st;
    int64_t d;
    sl_retry_state_init(&st, &c, &fc.clock, 1500 * MS, true);
    assert_int_equal(sl_retry_try_timeout_ms(&st), 1500); /* deadline < per-try 2000 */
    /* A 1 s Retry-After fits in 1.5 s… */
    assert_int_equal(next(&st, sl_outcome_response(503), "1", &r, NULL, &d), SL_RETRY_RETRY);
    sl_fake_clock_advance(&fc, 1000 * MS);
    assert_int_equal(sl_retry_try_timeout_ms(&st), 500);
    /* …but with 0.5 s left, waiting 1 s would end past the deadline. */
    assert_int_equal(next(&st, sl_outcome_response(503), "1", &r, NULL, &d), SL_RETRY_DEADLINE);
    assert_int_equal(d, -1);
    /* Ending exactly at the deadline is too late as well (no time left for the attempt). */
    sl_retry_state_init(&st, &c, &fc.clock, fc.mono_ns + 2000 * MS, true);
    assert_int_equal(next(&st, sl_outcome_response(429), "2", &r, NULL, &d), SL_RETRY_DEADLINE);
    sl_fake_clock_advance(&fc, 2500 * MS);
    assert_int_equal(sl_retry_try_timeout_ms(&st), 0);
    /* No deadline: the per-try timeout alone; neither: unbounded. */
    sl_retry_state_init(&st, &c, &fc.clock, NONE, true);
    assert_int_equal(sl_retry_try_timeout_ms(&st), 2000);
    c.per_try_timeout_ms = 0;
    assert_int_equal(sl_retry_try_timeout_ms(&st), INT64_MAX);
}

static void test_retry_after_parse(void **state)
{
    (void)state;
    int64_t now = T1994 - 10 * SEC;
    int64_t d;
    struct {
        const char *in;
        int64_t want;
    } ok[] = {
        {"0", 0},
        {"120", 120000},
        {" \t7 ", 7000},
        {"00009", 9000},
        {"99999999999999999999999999", SL_RETRY_AFTER_PARSE_MAX_MS}, /* saturates */
        {"Sun, 06 Nov 1994 08:49:37 GMT", 10000},
        {"Sunday, 06-Nov-94 08:49:37 GMT", 10000},
        {"Sun Nov  6 08:49:37 1994", 10000},
        {"Sun, 06 Nov 1994 08:49:27 GMT", 0}, /* now */
        {"Sat, 01 Jan 1994 00:00:00 GMT", 0}, /* past */
        {"Tue, 01 Jan 2030 00:00:00 GMT", 0}, /* future: checked below */
        {"Sun, 06 Nov 1994 08:49:37 GMT ", 10000},
        {"Mon, 29 Feb 1996 00:00:00 GMT", 0}, /* leap year (weekday is not checked) */
        {"Mon, 31 Dec 9999 23:59:60 GMT", SL_RETRY_AFTER_PARSE_MAX_MS}, /* leap second, cap */
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(ok); i++) {
        d = -5;
        int rc = sl_retry_after_parse(ok[i].in, strlen(ok[i].in), now, &d);
        if (rc != 0) fail_msg("rejected \"%s\"", ok[i].in);
        if (i == 10) {
            /* 2030-01-01T00:00:00Z minus now, in ms. */
            assert_int_equal(d, (INT64_C(1893456000) * SEC - now) / MS);
        } else if (i == 12) {
            assert_int_equal(d, (INT64_C(825552000) * SEC - now) / MS);
        } else if (d != ok[i].want) {
            fail_msg("\"%s\": %lld, want %lld", ok[i].in, (long long)d, (long long)ok[i].want);
        }
    }
    const char *bad[] = {
        "",
        "   ",
        "-1",
        "+5",
        "1.5",
        "5s",
        "1 2",
        "0x10",
        "Sun, 06 Nov 1994 08:49:37 UTC",  /* zone must be GMT */
        "Sun, 06 nov 1994 08:49:37 GMT",  /* month names are case-sensitive */
        "Sun, 31 Nov 1994 08:49:37 GMT",  /* 31 November */
        "Mon, 29 Feb 1995 08:49:37 GMT",  /* not a leap year */
        "Sun, 06 Nov 1994 24:00:00 GMT",  /* hour 24 */
        "Sun, 06 Nov 1994 08:60:00 GMT",  /* minute 60 */
        "Sun, 6 Nov 1994 08:49:37 GMT",   /* one-digit day in IMF-fixdate */
        "Sun, 06 Nov 94 08:49:37 GMT",    /* two-digit year in IMF-fixdate */
        "Sun, 06 Nov 1994 08:49:37 GMTX", /* trailing bytes */
        "Sun, 06-Nov-94 08:49:37 GMT",    /* RFC 850 needs the long day name */
        "Sunday, 06 Nov 1994 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994", /* asctime pads the day with a space */
        "Sun Nov  6 08:49:37 94",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun,",
        "S",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        int rc = sl_retry_after_parse(bad[i], strlen(bad[i]), now, &d);
        if (rc != SL_EPARSE) fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_int_equal(sl_retry_after_parse(NULL, 0, now, &d), SL_EPARSE);
    /* An embedded NUL is just a bad byte. */
    assert_int_equal(sl_retry_after_parse("1\0", 2, now, &d), SL_EPARSE);
}

static void test_rfc850_century(void **state)
{
    (void)state;
    /* "now" in 2026: 94 → 1994 (past), 30 → 2030, 76 → 2076 (50 years ahead), 77 → 1977. */
    int64_t now = INT64_C(1767225600) * SEC; /* 2026-01-01T00:00:00Z */
    int64_t d;
    assert_int_equal(sl_retry_after_parse("Sunday, 06-Nov-94 08:49:37 GMT", 30, now, &d), 0);
    assert_int_equal(d, 0);
    const char *y2030 = "Tuesday, 01-Jan-30 00:00:00 GMT";
    assert_int_equal(sl_retry_after_parse(y2030, strlen(y2030), now, &d), 0);
    assert_int_equal(d, (INT64_C(1893456000) * SEC - now) / MS);
    const char *y2076 = "Wednesday, 01-Jan-76 00:00:00 GMT";
    assert_int_equal(sl_retry_after_parse(y2076, strlen(y2076), now, &d), 0);
    assert_int_equal(d, (INT64_C(3345062400) * SEC - now) / MS);
    const char *y1977 = "Saturday, 01-Jan-77 00:00:00 GMT";
    assert_int_equal(sl_retry_after_parse(y1977, strlen(y1977), now, &d), 0);
    assert_int_equal(d, 0);
}

/* ---- Budget ---- */

static void test_budget_basics(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_retry_budget_config bc;
    sl_retry_budget_config_default(&bc);
    assert_int_equal(bc.ratio_pct, 20);
    assert_int_equal(bc.min_per_sec, 10);
    sl_retry_budget *b;
    assert_int_equal(sl_retry_budget_new(&bc, &fc.clock, &b), 0);
    /* Starts full: max_tokens retries, then empty. */
    assert_int_equal(sl_retry_budget_available(b), 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(sl_retry_budget_withdraw(b), 0);
    assert_int_equal(sl_retry_budget_withdraw(b), SL_ELIMIT);
    /* The floor: 10 per second is one per 100 ms, not a nanosecond earlier. */
    sl_fake_clock_advance(&fc, 99 * MS);
    assert_int_equal(sl_retry_budget_withdraw(b), SL_ELIMIT);
    sl_fake_clock_advance(&fc, 1 * MS);
    assert_int_equal(sl_retry_budget_withdraw(b), 0);
    assert_int_equal(sl_retry_budget_withdraw(b), SL_ELIMIT);
    /* The ratio: five requests earn one retry. */
    for (int i = 0; i < 4; i++)
        sl_retry_budget_on_request(b);
    assert_int_equal(sl_retry_budget_withdraw(b), SL_ELIMIT);
    sl_retry_budget_on_request(b);
    assert_int_equal(sl_retry_budget_withdraw(b), 0);
    /* Savings are capped at max_tokens. */
    sl_fake_clock_advance(&fc, 3600 * SEC);
    for (int i = 0; i < 1000; i++)
        sl_retry_budget_on_request(b);
    assert_int_equal(sl_retry_budget_available(b), 10);
    sl_retry_budget_stats bs;
    sl_retry_budget_stats_get(b, &bs);
    assert_int_equal(bs.requests, 1005);
    assert_int_equal(bs.retries, 12);
    assert_int_equal(bs.refused, 4);
    sl_retry_budget_free(b);

    bc.ratio_pct = 101;
    assert_int_equal(sl_retry_budget_new(&bc, &fc.clock, &b), SL_ECONFIG);
    bc.ratio_pct = 20;
    bc.max_tokens = 0;
    assert_int_equal(sl_retry_budget_new(&bc, &fc.clock, &b), SL_ECONFIG);
}

static void test_budget_charged_only_for_real_retries(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_retry_budget_config bc = {.ratio_pct = 0, .min_per_sec = 0, .max_tokens = 1};
    sl_retry_budget *b;
    assert_int_equal(sl_retry_budget_new(&bc, &fc.clock, &b), 0);
    sl_rand r;
    sl_rand_seed(&r, 9);
    sl_retry_config c;
    sl_retry_config_default(&c);
    sl_retry_state st;
    int64_t d;
    sl_retry_state_init(&st, &c, &fc.clock, NONE, false);
    assert_int_equal(next(&st, sl_outcome_response(503), NULL, &r, b, &d), SL_RETRY_NOT_IDEMPOTENT);
    sl_retry_state_init(&st, &c, &fc.clock, 10 * MS, true);
    assert_int_equal(next(&st, sl_outcome_response(503), "1", &r, b, &d), SL_RETRY_DEADLINE);
    assert_int_equal(sl_retry_budget_available(b), 1);
    sl_retry_state_init(&st, &c, &fc.clock, NONE, true);
    assert_int_equal(next(&st, sl_outcome_response(503), NULL, &r, b, &d), SL_RETRY_RETRY);
    assert_int_equal(next(&st, sl_outcome_response(503), NULL, &r, b, &d), SL_RETRY_BUDGET);
    assert_int_equal(d, -1);
    assert_int_equal(sl_retry_count(&st), 1);
    sl_retry_budget_free(b);
}

/*
 * A dead upstream: 1000 requests per second for 10 s, every attempt fails with
 * 503, each request would retry up to 3 times. Without a budget it would see
 * 4× the load; with one, about 1.2×.
 */
static void test_budget_bounds_load_on_dead_upstream(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_retry_budget_config bc;
    sl_retry_budget_config_default(&bc);
    sl_retry_budget *b;
    assert_int_equal(sl_retry_budget_new(&bc, &fc.clock, &b), 0);
    sl_rand r;
    sl_rand_seed(&r, 11);
    sl_retry_config c;
    sl_retry_config_default(&c);
    int64_t attempts = 0, requests = 0;
    for (int ms = 0; ms < 10000; ms++) {
        sl_retry_budget_on_request(b);
        requests++;
        sl_retry_state st;
        sl_retry_state_init(&st, &c, &fc.clock, NONE, true);
        attempts++;
        int64_t d;
        while (next(&st, sl_outcome_response(503), NULL, &r, b, &d) == SL_RETRY_RETRY)
            attempts++;
        sl_fake_clock_advance(&fc, 1 * MS);
    }
    double ratio = (double)attempts / (double)requests;
    print_message("dead upstream: %lld requests -> %lld attempts (%.3fx)\n", (long long)requests,
                  (long long)attempts, ratio);
    /* 20 % of 10000 + 10/s * 10 s + 10 saved = 2110 retries at most. */
    assert_true(attempts - requests <= 2110);
    assert_true(attempts - requests >= 2000);
    sl_retry_budget_free(b);
}

/* ---- Randomised invariants ---- */

static void test_random_delays_within_bounds(void **state)
{
    (void)state;
    const char *ras[] = {NULL, "0", "1", "3", "30", "garbage", "Sun, 06 Nov 1994 08:49:40 GMT"};
    int outcomes[] = {0, 429, 502, 503, 504, 500, 200, -1, -2, -3};
    for (uint64_t seed = 1; seed <= 5000; seed++) {
        sl_rand r;
        sl_rand_seed(&r, seed);
        sl_fake_clock fc;
        sl_fake_clock_init(&fc, T1994);
        sl_retry_config c;
        sl_retry_config_default(&c);
        c.jitter = sl_rand_below(&r, 2) ? SL_RETRY_JITTER_DECORRELATED : SL_RETRY_JITTER_FULL;
        c.base_ms = 1 + (int64_t)sl_rand_below(&r, 200);
        c.cap_ms = c.base_ms + (int64_t)sl_rand_below(&r, 5000);
        c.max_retries = (uint32_t)sl_rand_below(&r, SL_RETRY_LIMIT_RETRIES + 1);
        c.retry_after_max_ms = (int64_t)sl_rand_below(&r, 10000);
        int64_t deadline = sl_rand_below(&r, 3) == 0 ? NONE : (int64_t)sl_rand_below(&r, 20) * SEC;
        sl_retry_state st;
        sl_retry_state_init(&st, &c, &fc.clock, deadline, sl_rand_below(&r, 4) != 0);
        for (int i = 0; i < 20; i++) {
            int o = outcomes[sl_rand_below(&r, SL_ARRAY_LEN(outcomes))];
            sl_outcome out = o > 0 ? sl_outcome_response(o)
                                   : sl_outcome_of(o == 0    ? SL_OUTCOME_CONNECT_ERROR
                                                   : o == -1 ? SL_OUTCOME_TIMEOUT
                                                   : o == -2 ? SL_OUTCOME_IO_ERROR
                                                             : SL_OUTCOME_RESPONSE);
            const char *ra = ras[sl_rand_below(&r, SL_ARRAY_LEN(ras))];
            int64_t d;
            uint32_t before = sl_retry_count(&st);
            sl_retry_decision dec = next(&st, out, ra, &r, NULL, &d);
            int ok = 1;
            if (dec == SL_RETRY_RETRY) {
                /* Within [0, cap], or up to the honoured Retry-After cap when the server asked. */
                int64_t hi =
                    ra ? (c.cap_ms > c.retry_after_max_ms ? c.cap_ms : c.retry_after_max_ms)
                       : c.cap_ms;
                ok = d >= 0 && d <= hi && sl_retry_count(&st) == before + 1 &&
                     sl_retry_count(&st) <= c.max_retries &&
                     (deadline == NONE || fc.mono_ns + d * MS < deadline);
            } else {
                ok = d == -1 && sl_retry_count(&st) == before;
            }
            if (!ok)
                fail_msg("seed %llu step %d: decision %s delay %lld", (unsigned long long)seed, i,
                         sl_retry_decision_name(dec), (long long)d);
            if (dec == SL_RETRY_RETRY) sl_fake_clock_advance(&fc, d * MS);
        }
    }
}

#define EVENTS 600

static void test_random_budget_windows(void **state)
{
    (void)state;
    static int64_t t[EVENTS + 1], req[EVENTS + 1], ret[EVENTS + 1]; /* prefix sums */
    for (uint64_t seed = 1; seed <= 2000; seed++) {
        sl_rand r;
        sl_rand_seed(&r, seed);
        sl_fake_clock fc;
        sl_fake_clock_init(&fc, 0);
        sl_retry_budget_config bc = {
            .ratio_pct = (uint32_t)sl_rand_below(&r, 101),
            .min_per_sec = (uint32_t)sl_rand_below(&r, 50),
            .max_tokens = 1 + (uint32_t)sl_rand_below(&r, 20),
        };
        sl_retry_budget *b;
        assert_int_equal(sl_retry_budget_new(&bc, &fc.clock, &b), 0);
        int retry_bias = (int)sl_rand_below(&r, 100);
        t[0] = req[0] = ret[0] = 0;
        for (int i = 1; i <= EVENTS; i++) {
            if (sl_rand_below(&r, 4) == 0)
                sl_fake_clock_advance(&fc, (int64_t)sl_rand_below(&r, 300) * MS);
            req[i] = req[i - 1];
            ret[i] = ret[i - 1];
            if ((int)sl_rand_below(&r, 100) < retry_bias) {
                if (sl_retry_budget_withdraw(b) == 0) ret[i]++;
            } else {
                sl_retry_budget_on_request(b);
                req[i]++;
            }
            t[i] = fc.mono_ns;
        }
        /* Over every window of events (i, j]: retries <= saved + ratio * requests + floor * time.
         */
        for (int i = 0; i < EVENTS; i++) {
            for (int j = i + 1; j <= EVENTS; j++) {
                __int128 lhs = (__int128)(ret[j] - ret[i]) * 1000000000;
                __int128 rhs = (__int128)bc.max_tokens * 1000000000 +
                               (__int128)(req[j] - req[i]) * bc.ratio_pct * 10000000 +
                               (__int128)bc.min_per_sec * (t[j] - t[i]);
                if (lhs > rhs)
                    fail_msg("seed %llu window (%d, %d]: %lld retries for %lld requests",
                             (unsigned long long)seed, i, j, (long long)(ret[j] - ret[i]),
                             (long long)(req[j] - req[i]));
            }
        }
        sl_retry_budget_free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_methods_and_outcomes),
        cmocka_unit_test(test_decisions),
        cmocka_unit_test(test_full_jitter_spread),
        cmocka_unit_test(test_decorrelated_jitter),
        cmocka_unit_test(test_retry_after_honoured),
        cmocka_unit_test(test_deadline_and_try_timeout),
        cmocka_unit_test(test_retry_after_parse),
        cmocka_unit_test(test_rfc850_century),
        cmocka_unit_test(test_budget_basics),
        cmocka_unit_test(test_budget_charged_only_for_real_retries),
        cmocka_unit_test(test_budget_bounds_load_on_dead_upstream),
        cmocka_unit_test(test_random_delays_within_bounds),
        cmocka_unit_test(test_random_budget_windows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
