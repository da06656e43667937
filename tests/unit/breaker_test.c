/*
 * Unit tests for the circuit breaker (include/shoal/breaker.h): every
 * transition driven deterministically with the fake clock, then thousands of
 * seeded random event sequences checked against the breaker's invariants.
 */
#include <shoal/breaker.h>
#include <shoal/rand.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define MS INT64_C(1000000)

typedef struct recorder {
    int n;
    sl_breaker_state from[16], to[16];
    sl_breaker_reason reason[16];
    const sl_breaker *b; /* to check the state is already updated inside the callback */
    int peek_ok;
} recorder;

static void record_cb(sl_breaker_state from, sl_breaker_state to, sl_breaker_reason reason,
                      void *data)
{
    recorder *r = data;
    if (r->n < 16) {
        r->from[r->n] = from;
        r->to[r->n] = to;
        r->reason[r->n] = reason;
    }
    r->n++;
    if (r->b && sl_breaker_state_peek(r->b) != to) r->peek_ok = 0;
}

typedef struct fixture {
    sl_fake_clock fc;
    sl_breaker_config cfg;
    sl_breaker *b;
    recorder rec;
} fixture;

static void fx_open(fixture *f, const sl_breaker_config *cfg)
{
    memset(f, 0, sizeof *f);
    sl_fake_clock_init(&f->fc, 0);
    if (cfg)
        f->cfg = *cfg;
    else
        sl_breaker_config_default(&f->cfg);
    f->rec.peek_ok = 1;
    assert_int_equal(sl_breaker_new(&f->cfg, &f->fc.clock, record_cb, &f->rec, &f->b), 0);
    f->rec.b = f->b;
}

static void fx_close(fixture *f)
{
    assert_true(f->rec.peek_ok);
    sl_breaker_free(f->b);
}

/* One complete call: allow, then report. Returns allow's result. */
static int call(fixture *f, bool failed, int64_t duration_ms)
{
    sl_breaker_permit p;
    int rc = sl_breaker_allow(f->b, &p);
    if (rc == 0) assert_int_equal(sl_breaker_on_result(f->b, &p, failed, duration_ms), 0);
    return rc;
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(sl_breaker_state_name(SL_BREAKER_CLOSED), "closed");
    assert_string_equal(sl_breaker_state_name(SL_BREAKER_OPEN), "open");
    assert_string_equal(sl_breaker_state_name(SL_BREAKER_HALF_OPEN), "half_open");
    assert_string_equal(sl_breaker_state_name((sl_breaker_state)42), "unknown");
    assert_string_equal(sl_breaker_reason_name(SL_BREAKER_REASON_TRIAL_TIMEOUT), "trial_timeout");
    assert_string_equal(sl_breaker_reason_name((sl_breaker_reason)-1), "unknown");
    assert_string_equal(sl_outcome_kind_name(SL_OUTCOME_CONNECT_ERROR), "connect_error");
}

static void test_classify(void **state)
{
    (void)state;
    uint32_t def = SL_BREAKER_FAIL_DEFAULT;
    assert_true(sl_breaker_classify(sl_outcome_of(SL_OUTCOME_CONNECT_ERROR), def));
    assert_true(sl_breaker_classify(sl_outcome_of(SL_OUTCOME_TIMEOUT), def));
    assert_true(sl_breaker_classify(sl_outcome_of(SL_OUTCOME_IO_ERROR), def));
    assert_true(sl_breaker_classify(sl_outcome_response(500), def));
    assert_true(sl_breaker_classify(sl_outcome_response(503), def));
    assert_true(sl_breaker_classify(sl_outcome_response(999), def)); /* broken status */
    assert_true(sl_breaker_classify(sl_outcome_response(0), def));
    assert_false(sl_breaker_classify(sl_outcome_response(200), def));
    assert_false(sl_breaker_classify(sl_outcome_response(304), def));
    assert_false(sl_breaker_classify(sl_outcome_response(404), def));
    assert_false(sl_breaker_classify(sl_outcome_response(429), def));
    /* Opting in. */
    assert_true(sl_breaker_classify(sl_outcome_response(429), def | SL_BREAKER_FAIL_429));
    assert_false(sl_breaker_classify(sl_outcome_response(404), def | SL_BREAKER_FAIL_429));
    assert_true(sl_breaker_classify(sl_outcome_response(404), SL_BREAKER_FAIL_4XX));
    assert_true(sl_breaker_classify(sl_outcome_response(429), SL_BREAKER_FAIL_4XX));
    /* Opting out. */
    assert_false(sl_breaker_classify(sl_outcome_of(SL_OUTCOME_TIMEOUT), SL_BREAKER_FAIL_5XX));
    assert_false(sl_breaker_classify(sl_outcome_response(500), SL_BREAKER_FAIL_CONNECT));
}

static void test_config_validation(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_breaker *b = NULL;
    sl_breaker_config c;
    sl_breaker_config_default(&c);
    assert_int_equal(c.failure_threshold, 5);
    assert_int_equal(c.window_size, 100);
    assert_int_equal(c.minimum_calls, 20);
    assert_int_equal(c.failure_rate_pct, 50);
    assert_int_equal(c.slow_call_ms, 2000);
    assert_int_equal(c.recovery_timeout_ms, 30000);
    assert_int_equal(c.half_open_max_calls, 3);
    assert_int_equal(sl_breaker_new(&c, &fc.clock, NULL, NULL, &b), 0);
    sl_breaker_free(b);

    sl_breaker_config bad[8];
    for (int i = 0; i < 8; i++)
        bad[i] = c;
    bad[0].window_size = 0;
    bad[1].minimum_calls = 101; /* more than a count window holds */
    bad[2].failure_rate_pct = 101;
    bad[3].recovery_timeout_ms = 0;
    bad[4].half_open_max_calls = 0;
    bad[5].half_open_max_calls = SL_BREAKER_HALF_OPEN_MAX + 1;
    bad[6].window = SL_BREAKER_WINDOW_TIME;
    bad[6].window_size = SL_BREAKER_WINDOW_TIME_MAX + 1;
    bad[7].half_open_timeout_ms = -1;
    for (int i = 0; i < 8; i++)
        assert_int_equal(sl_breaker_new(&bad[i], &fc.clock, NULL, NULL, &b), SL_ECONFIG);
    /* A time window may ask for more calls than it has seconds. */
    c.window = SL_BREAKER_WINDOW_TIME;
    c.window_size = 10;
    assert_int_equal(sl_breaker_new(&c, &fc.clock, NULL, NULL, &b), 0);
    sl_breaker_free(b);
}

static void test_consecutive_failures_trip(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, NULL);
    /* Four failures then a success: the streak resets. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(call(&f, true, 1), 0);
    assert_int_equal(call(&f, false, 1), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(call(&f, true, 1), 0);
    assert_int_equal(f.rec.n, 0);
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_CLOSED);
    /* The fifth consecutive failure trips it. */
    assert_int_equal(call(&f, true, 1), 0);
    assert_int_equal(f.rec.n, 1);
    assert_int_equal(f.rec.from[0], SL_BREAKER_CLOSED);
    assert_int_equal(f.rec.to[0], SL_BREAKER_OPEN);
    assert_int_equal(f.rec.reason[0], SL_BREAKER_REASON_CONSECUTIVE_FAILURES);
    /* Open: refused without a permit, with the rest of the open period as Retry-After. */
    sl_breaker_permit p;
    assert_int_equal(sl_breaker_allow(f.b, &p), SL_EUNAVAIL);
    assert_int_equal(sl_breaker_retry_after_ms(f.b), 30000);
    sl_fake_clock_advance(&f.fc, 29999 * MS);
    assert_int_equal(sl_breaker_allow(f.b, &p), SL_EUNAVAIL);
    assert_int_equal(sl_breaker_retry_after_ms(f.b), 1);
    assert_int_equal(sl_breaker_on_success(f.b, &p, 1), SL_ESTATE); /* refused permit */
    sl_breaker_stats st;
    sl_breaker_stats_get(f.b, &st);
    assert_int_equal(st.rejected, 2);
    assert_int_equal(st.allowed, 10);
    assert_int_equal(st.failures, 9);
    assert_int_equal(st.successes, 1);
    assert_int_equal(st.transitions[SL_BREAKER_CLOSED][SL_BREAKER_OPEN], 1);
    fx_close(&f);
}

static void trip(fixture *f)
{
    for (uint32_t i = 0; i < f->cfg.failure_threshold; i++)
        assert_int_equal(call(f, true, 1), 0);
    assert_int_equal(sl_breaker_state_peek(f->b), SL_BREAKER_OPEN);
}

static void test_half_open_success_closes(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, NULL);
    trip(&f);
    sl_fake_clock_advance(&f.fc, 30000 * MS);
    sl_breaker_permit p[4];
    for (int i = 0; i < 3; i++)
        assert_int_equal(sl_breaker_allow(f.b, &p[i]), 0);
    assert_int_equal(f.rec.n, 2);
    assert_int_equal(f.rec.to[1], SL_BREAKER_HALF_OPEN);
    assert_int_equal(f.rec.reason[1], SL_BREAKER_REASON_RECOVERY_TIMEOUT);
    /* No more than three trials. */
    assert_int_equal(sl_breaker_allow(f.b, &p[3]), SL_EUNAVAIL);
    assert_int_equal(sl_breaker_retry_after_ms(f.b), 60000); /* until the oldest trial times out */
    assert_int_equal(sl_breaker_on_success(f.b, &p[0], 5), 0);
    assert_int_equal(sl_breaker_on_success(f.b, &p[1], 5), 0);
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_HALF_OPEN);
    /* Completed trials do not free their slot: still only three trials this round. */
    assert_int_equal(sl_breaker_allow(f.b, &p[3]), SL_EUNAVAIL);
    assert_int_equal(sl_breaker_on_success(f.b, &p[2], 5), 0);
    assert_int_equal(f.rec.n, 3);
    assert_int_equal(f.rec.to[2], SL_BREAKER_CLOSED);
    assert_int_equal(f.rec.reason[2], SL_BREAKER_REASON_TRIALS_SUCCEEDED);
    assert_int_equal(sl_breaker_retry_after_ms(f.b), 0);
    /* Closed again with a fresh count: four failures do not trip. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(call(&f, true, 1), 0);
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_CLOSED);
    fx_close(&f);
}

static void test_half_open_failure_reopens(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, NULL);
    trip(&f);
    sl_fake_clock_advance(&f.fc, 30000 * MS);
    sl_breaker_permit a, b2;
    assert_int_equal(sl_breaker_allow(f.b, &a), 0);
    assert_int_equal(sl_breaker_allow(f.b, &b2), 0);
    assert_int_equal(sl_breaker_on_success(f.b, &a, 5), 0);
    assert_int_equal(sl_breaker_on_failure(f.b, &b2, 5), 0);
    assert_int_equal(f.rec.to[f.rec.n - 1], SL_BREAKER_OPEN);
    assert_int_equal(f.rec.reason[f.rec.n - 1], SL_BREAKER_REASON_TRIAL_FAILED);
    /* The open period starts again from the failure. */
    sl_breaker_permit p;
    sl_fake_clock_advance(&f.fc, 29000 * MS);
    assert_int_equal(sl_breaker_allow(f.b, &p), SL_EUNAVAIL);
    sl_fake_clock_advance(&f.fc, 1000 * MS);
    assert_int_equal(sl_breaker_allow(f.b, &p), 0);
    assert_int_equal(sl_breaker_state_peek(f.b), SL_BREAKER_HALF_OPEN);
    fx_close(&f);
}

static void test_half_open_timeout_reopens(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, NULL);
    trip(&f);
    sl_fake_clock_advance(&f.fc, 30000 * MS);
    sl_breaker_permit lost, late;
    assert_int_equal(sl_breaker_allow(f.b, &lost), 0);
    sl_fake_clock_advance(&f.fc, 59999 * MS);
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_HALF_OPEN);
    sl_fake_clock_advance(&f.fc, 1 * MS);
    /* The lost trial never reported: the breaker gives up on it rather than hang. */
    assert_int_equal(sl_breaker_allow(f.b, &late), SL_EUNAVAIL);
    assert_int_equal(f.rec.to[f.rec.n - 1], SL_BREAKER_OPEN);
    assert_int_equal(f.rec.reason[f.rec.n - 1], SL_BREAKER_REASON_TRIAL_TIMEOUT);
    /* Its verdict, arriving now, is stale and changes nothing. */
    assert_int_equal(sl_breaker_on_success(f.b, &lost, 1), 0);
    sl_breaker_stats st;
    sl_breaker_stats_get(f.b, &st);
    assert_int_equal(st.stale, 1);
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_OPEN);
    fx_close(&f);
}

static void test_half_open_idle_does_not_time_out(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, NULL);
    trip(&f);
    sl_fake_clock_advance(&f.fc, 30000 * MS);
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_HALF_OPEN);
    /* Nobody called for an hour: with no trial outstanding there is nothing to time out. */
    sl_fake_clock_advance(&f.fc, 3600000 * MS);
    sl_breaker_permit p;
    assert_int_equal(sl_breaker_allow(f.b, &p), 0);
    assert_int_equal(sl_breaker_state_peek(f.b), SL_BREAKER_HALF_OPEN);
    fx_close(&f);
}

static void test_release_frees_trial_slot(void **state)
{
    (void)state;
    sl_breaker_config c;
    sl_breaker_config_default(&c);
    c.half_open_max_calls = 1;
    fixture f;
    fx_open(&f, &c);
    trip(&f);
    sl_fake_clock_advance(&f.fc, 30000 * MS);
    sl_breaker_permit a, b2;
    assert_int_equal(sl_breaker_allow(f.b, &a), 0);
    assert_int_equal(sl_breaker_allow(f.b, &b2), SL_EUNAVAIL);
    assert_int_equal(sl_breaker_release(f.b, &a), 0);
    assert_int_equal(sl_breaker_release(f.b, &a), SL_ESTATE); /* once only */
    assert_int_equal(sl_breaker_allow(f.b, &b2), 0);
    assert_int_equal(sl_breaker_on_success(f.b, &b2, 1), 0);
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_CLOSED);
    fx_close(&f);
}

static void test_stale_results_ignored(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, NULL);
    /* Ten calls admitted while closed; the first five fail and trip the breaker. */
    sl_breaker_permit early[10];
    for (int i = 0; i < 10; i++)
        assert_int_equal(sl_breaker_allow(f.b, &early[i]), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(sl_breaker_on_failure(f.b, &early[i], 1), 0);
    assert_int_equal(sl_breaker_state_peek(f.b), SL_BREAKER_OPEN);
    sl_fake_clock_advance(&f.fc, 30000 * MS);
    sl_breaker_permit trial[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(sl_breaker_allow(f.b, &trial[i]), 0);
    /* Late closed-state successes must not count as trials (that would close early)… */
    for (int i = 5; i < 8; i++)
        assert_int_equal(sl_breaker_on_success(f.b, &early[i], 1), 0);
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_HALF_OPEN);
    /* …nor late failures re-open it. */
    assert_int_equal(sl_breaker_on_failure(f.b, &early[8], 1), 0);
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_HALF_OPEN);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sl_breaker_on_success(f.b, &trial[i], 1), 0);
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_CLOSED);
    /* And a late failure from before the trip does not touch the fresh closed window. */
    assert_int_equal(sl_breaker_on_failure(f.b, &early[9], 1), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(call(&f, true, 1), 0);
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_CLOSED);
    sl_breaker_stats st;
    sl_breaker_stats_get(f.b, &st);
    assert_int_equal(st.stale, 5);
    assert_int_equal(sl_breaker_on_failure(f.b, &early[9], 1), SL_ESTATE); /* reported already */
    fx_close(&f);
}

static void test_failure_rate_count_window(void **state)
{
    (void)state;
    sl_breaker_config c;
    sl_breaker_config_default(&c);
    c.failure_threshold = 0; /* rate only */
    fixture f;
    fx_open(&f, &c);
    /* 19 calls, 10 failing: below minimum_calls, no verdict yet. */
    for (int i = 0; i < 19; i++)
        assert_int_equal(call(&f, i % 2 == 0, 1), 0);
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_CLOSED);
    /* The 20th call is a success: 10/20 = 50 % reaches the threshold. */
    assert_int_equal(call(&f, false, 1), 0);
    assert_int_equal(sl_breaker_state_peek(f.b), SL_BREAKER_OPEN);
    assert_int_equal(f.rec.reason[0], SL_BREAKER_REASON_FAILURE_RATE);
    fx_close(&f);

    /* 9 failures in 20 stays closed. */
    fx_open(&f, &c);
    for (int i = 0; i < 20; i++)
        assert_int_equal(call(&f, i < 9, 1), 0);
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_CLOSED);
    fx_close(&f);
}

static void test_count_window_slides(void **state)
{
    (void)state;
    sl_breaker_config c;
    sl_breaker_config_default(&c);
    c.failure_threshold = 0;
    c.window_size = 10;
    c.minimum_calls = 10;
    fixture f;
    fx_open(&f, &c);
    /* F F F F S S S S S S: 40 %. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(call(&f, i < 4, 1), 0);
    /* Each new failure pushes an old failure out: still four in the last ten… */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(call(&f, true, 1), 0);
        assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_CLOSED);
    }
    /* …until the oldest entry is a success: the fifth failure makes 50 %. */
    assert_int_equal(call(&f, true, 1), 0);
    assert_int_equal(sl_breaker_state_peek(f.b), SL_BREAKER_OPEN);
    fx_close(&f);
}

static void test_time_window(void **state)
{
    (void)state;
    sl_breaker_config c;
    sl_breaker_config_default(&c);
    c.failure_threshold = 0;
    c.window = SL_BREAKER_WINDOW_TIME;
    c.window_size = 10; /* seconds */
    c.minimum_calls = 4;
    fixture f;
    fx_open(&f, &c);
    /* Two failures, then two successes 11 s later: the failures have left the window. */
    assert_int_equal(call(&f, true, 1), 0);
    assert_int_equal(call(&f, true, 1), 0);
    sl_fake_clock_advance(&f.fc, 11000 * MS);
    assert_int_equal(call(&f, false, 1), 0);
    assert_int_equal(call(&f, false, 1), 0);
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_CLOSED);
    /* Two more failures within the window: 2 of 4 → open. */
    sl_fake_clock_advance(&f.fc, 3000 * MS);
    assert_int_equal(call(&f, true, 1), 0);
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_CLOSED);
    assert_int_equal(call(&f, true, 1), 0);
    assert_int_equal(sl_breaker_state_peek(f.b), SL_BREAKER_OPEN);
    fx_close(&f);

    /* Within the window, results a few seconds apart do add up. */
    fx_open(&f, &c);
    assert_int_equal(call(&f, true, 1), 0);
    assert_int_equal(call(&f, true, 1), 0);
    sl_fake_clock_advance(&f.fc, 5000 * MS);
    assert_int_equal(call(&f, false, 1), 0);
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_CLOSED);
    assert_int_equal(call(&f, false, 1), 0);
    assert_int_equal(sl_breaker_state_peek(f.b), SL_BREAKER_OPEN);
    fx_close(&f);
}

static void test_slow_call_rate(void **state)
{
    (void)state;
    sl_breaker_config c;
    sl_breaker_config_default(&c);
    c.failure_threshold = 0;
    c.window_size = 5;
    c.minimum_calls = 5;
    fixture f;
    /* Off by default: slow successes never trip. */
    fx_open(&f, &c);
    for (int i = 0; i < 50; i++)
        assert_int_equal(call(&f, false, 2500), 0);
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_CLOSED);
    sl_breaker_stats st;
    sl_breaker_stats_get(f.b, &st);
    assert_int_equal(st.slow, 50);
    fx_close(&f);

    c.slow_call_rate_pct = 100;
    fx_open(&f, &c);
    for (int i = 0; i < 4; i++)
        assert_int_equal(call(&f, false, 2001), 0);
    assert_int_equal(call(&f, false, 2000), 0); /* exactly 2 s is not "over 2 s" */
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_CLOSED);
    /* Once the fast call has slid out of the five-call window, 100 % are slow. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(call(&f, false, 2001), 0);
    assert_int_equal(sl_breaker_state_now(f.b), SL_BREAKER_CLOSED);
    assert_int_equal(call(&f, false, 2001), 0);
    assert_int_equal(sl_breaker_state_peek(f.b), SL_BREAKER_OPEN);
    assert_int_equal(f.rec.reason[0], SL_BREAKER_REASON_SLOW_CALL_RATE);
    /* In half-open a slow trial counts as failed when slow calls matter. */
    sl_fake_clock_advance(&f.fc, 30000 * MS);
    assert_int_equal(call(&f, false, 2500), 0);
    assert_int_equal(sl_breaker_state_peek(f.b), SL_BREAKER_OPEN);
    assert_int_equal(f.rec.reason[f.rec.n - 1], SL_BREAKER_REASON_TRIAL_FAILED);
    fx_close(&f);
}

static void test_reset(void **state)
{
    (void)state;
    fixture f;
    fx_open(&f, NULL);
    trip(&f);
    sl_breaker_reset(f.b);
    assert_int_equal(sl_breaker_state_peek(f.b), SL_BREAKER_CLOSED);
    assert_int_equal(f.rec.reason[f.rec.n - 1], SL_BREAKER_REASON_RESET);
    assert_int_equal(call(&f, false, 1), 0);
    fx_close(&f);
}

/* ---- Randomised invariants ---- */

#define MAXP 32

typedef struct model {
    sl_fake_clock *fc;
    const sl_breaker_config *cfg;
    sl_breaker_state state; /* mirrored from the callback */
    uint64_t epoch;         /* bumped on every transition */
    int64_t open_since;
    int64_t trials_out, trials_ok; /* current half-open round, as the test sees it */
    uint64_t seed;
    int step;
    int bad; /* first invariant broken, 0 if none */
} model;

#define CHECK(m, cond)                                                                             \
    do {                                                                                           \
        if (!(cond) && !(m)->bad) {                                                                \
            (m)->bad = __LINE__;                                                                   \
            print_error("seed %llu step %d: %s\n", (unsigned long long)(m)->seed, (m)->step,       \
                        #cond);                                                                    \
        }                                                                                          \
    } while (0)

static void model_cb(sl_breaker_state from, sl_breaker_state to, sl_breaker_reason reason,
                     void *data)
{
    model *m = data;
    int64_t now = m->fc->mono_ns;
    CHECK(m, from == m->state);
    if (to == SL_BREAKER_HALF_OPEN) {
        /* An open breaker stays open for its whole recovery timeout. */
        CHECK(m, now - m->open_since >= m->cfg->recovery_timeout_ms * MS);
        CHECK(m, reason == SL_BREAKER_REASON_RECOVERY_TIMEOUT);
        m->trials_out = m->trials_ok = 0;
    }
    if (to == SL_BREAKER_OPEN) m->open_since = now;
    if (to == SL_BREAKER_CLOSED && reason == SL_BREAKER_REASON_TRIALS_SUCCEEDED)
        CHECK(m, m->trials_ok + 1 == (int64_t)m->cfg->half_open_max_calls);
    m->state = to;
    m->epoch++;
}

typedef struct held {
    sl_breaker_permit p;
    uint64_t epoch;
    sl_breaker_state state;
    int64_t admitted;
} held;

static void run_sequence(uint64_t seed)
{
    sl_rand r;
    sl_rand_seed(&r, seed);
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_breaker_config c;
    sl_breaker_config_default(&c);
    c.failure_threshold = (uint32_t)sl_rand_below(&r, 6);
    c.window = sl_rand_below(&r, 2) ? SL_BREAKER_WINDOW_TIME : SL_BREAKER_WINDOW_COUNT;
    c.window_size = 1 + (uint32_t)sl_rand_below(&r, 20);
    c.minimum_calls = 1 + (uint32_t)sl_rand_below(&r, c.window_size);
    c.failure_rate_pct = (uint32_t)sl_rand_below(&r, 101);
    c.slow_call_rate_pct = (uint32_t)sl_rand_below(&r, 3) == 0 ? 0 : 50;
    c.slow_call_ms = 100;
    c.recovery_timeout_ms = 1 + (int64_t)sl_rand_below(&r, 1000);
    c.half_open_max_calls = 1 + (uint32_t)sl_rand_below(&r, 5);
    c.half_open_timeout_ms = 1 + (int64_t)sl_rand_below(&r, 2000);
    model m = {.fc = &fc, .cfg = &c, .state = SL_BREAKER_CLOSED, .seed = seed};
    sl_breaker *b;
    assert_int_equal(sl_breaker_new(&c, &fc.clock, model_cb, &m, &b), 0);
    held h[MAXP];
    int nh = 0;
    uint64_t reported = 0, released = 0;
    int fail_pct = (int)sl_rand_below(&r, 101);
    for (m.step = 0; m.step < 400 && !m.bad; m.step++) {
        switch (sl_rand_below(&r, 5)) {
        case 0:
            sl_fake_clock_advance(&fc, (int64_t)sl_rand_below(&r, 400) * MS);
            break;
        case 1:
        case 2: {
            if (nh == MAXP) break;
            sl_breaker_state before = m.state;
            int rc = sl_breaker_allow(b, &h[nh].p);
            (void)before;
            if (rc == 0) {
                /* Admitted only when closed or half-open, never while open. */
                CHECK(&m, m.state != SL_BREAKER_OPEN);
                h[nh].epoch = m.epoch;
                h[nh].state = m.state;
                h[nh].admitted = fc.mono_ns;
                if (m.state == SL_BREAKER_HALF_OPEN) m.trials_out++;
                nh++;
            } else {
                CHECK(&m, rc == SL_EUNAVAIL);
                CHECK(&m, m.state != SL_BREAKER_CLOSED);
            }
            break;
        }
        default: {
            if (nh == 0) break;
            int i = (int)sl_rand_below(&r, (uint64_t)nh);
            bool current = h[i].epoch == m.epoch && h[i].state == SL_BREAKER_HALF_OPEN;
            int64_t dur = (int64_t)sl_rand_below(&r, 200);
            if (sl_rand_below(&r, 8) == 0) {
                CHECK(&m, sl_breaker_release(b, &h[i].p) == 0);
                released++;
                if (current && m.epoch == h[i].epoch) m.trials_out--;
            } else {
                bool failed = (int)sl_rand_below(&r, 100) < fail_pct;
                uint64_t epoch_before = m.epoch;
                CHECK(&m, sl_breaker_on_result(b, &h[i].p, failed, dur) == 0);
                reported++;
                /* The report may first have timed the round out (new epoch): then it is stale. */
                if (current && epoch_before == h[i].epoch) {
                    if (m.epoch == epoch_before) {
                        m.trials_out--;
                        m.trials_ok++;
                    }
                }
            }
            h[i] = h[--nh];
            break;
        }
        }
        /* Half-open never has more than the configured trials in play. */
        if (m.state == SL_BREAKER_HALF_OPEN)
            CHECK(&m, m.trials_out + m.trials_ok <= (int64_t)c.half_open_max_calls);
        /* Half-open never sits on a trial older than its bound. */
        if (sl_breaker_state_now(b) == SL_BREAKER_HALF_OPEN)
            for (int i = 0; i < nh; i++)
                if (h[i].epoch == m.epoch && h[i].state == SL_BREAKER_HALF_OPEN)
                    CHECK(&m, fc.mono_ns - h[i].admitted < c.half_open_timeout_ms * MS);
        CHECK(&m, sl_breaker_state_peek(b) == m.state);
        sl_breaker_stats st;
        sl_breaker_stats_get(b, &st);
        CHECK(&m, st.allowed == reported + released + (uint64_t)nh);
        CHECK(&m, st.successes + st.failures + st.stale == reported);
    }
    sl_breaker_free(b);
    if (m.bad) fail_msg("invariant broken (line %d), seed %llu", m.bad, (unsigned long long)seed);
}

static void test_random_sequences(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 3000; seed++)
        run_sequence(seed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_config_validation),
        cmocka_unit_test(test_consecutive_failures_trip),
        cmocka_unit_test(test_half_open_success_closes),
        cmocka_unit_test(test_half_open_failure_reopens),
        cmocka_unit_test(test_half_open_timeout_reopens),
        cmocka_unit_test(test_half_open_idle_does_not_time_out),
        cmocka_unit_test(test_release_frees_trial_slot),
        cmocka_unit_test(test_stale_results_ignored),
        cmocka_unit_test(test_failure_rate_count_window),
        cmocka_unit_test(test_count_window_slides),
        cmocka_unit_test(test_time_window),
        cmocka_unit_test(test_slow_call_rate),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_random_sequences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
