/*
 * Unit tests for the pure saga engine (include/shoal/saga.h): definition
 * checks, every transition of sl_saga_apply (start, replies, stale replies,
 * retries and timeouts, bounds → stuck, refusals before/at/after the pivot,
 * compensation in reverse order, resume after restart, admin resume), the
 * JSON state codec, and a randomised simulated world (see sim_* below).
 */
#include <shoal/saga.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#define T0 INT64_C(1795869296000)

static sl_saga_step_def steps3[3];
static sl_saga_def def3;

static void step_init(sl_saga_step_def *s, const char *name)
{
    memset(s, 0, sizeof *s);
    s->name = name;
    sl_retry_config_default(&s->retry);
    s->retry.base_ms = 10;
    s->retry.cap_ms = 100;
    s->timeout_ms = 1000;
    s->max_attempts = 4;
}

static int setup(void **state)
{
    (void)state;
    step_init(&steps3[0], "reserve");
    step_init(&steps3[1], "charge");
    step_init(&steps3[2], "confirm");
    def3 = (sl_saga_def){.type = "checkout", .steps = steps3, .n_steps = 3, .pivot = 1};
    return 0;
}

typedef struct harness {
    const sl_saga_def *def;
    sl_saga_state st;
    sl_saga_output out;
    sl_rand rand;
    int64_t now;
} harness;

static void h_init(harness *h, const sl_saga_def *def)
{
    h->def = def;
    h->now = T0;
    sl_rand_seed(&h->rand, 7);
    assert_int_equal(sl_saga_state_init(&h->st, def, "s1"), 0);
}

static int h_ev(harness *h, sl_saga_event_kind kind)
{
    sl_saga_event ev = {.kind = kind};
    return sl_saga_apply(h->def, &h->st, &ev, h->now, &h->rand, &h->out);
}

/* A reply to the current call. */
static int h_reply(harness *h, sl_saga_event_kind kind, const char *data)
{
    sl_saga_event ev = {.kind = kind,
                        .step = h->st.step,
                        .call = h->st.call,
                        .attempt = h->st.attempt,
                        .data = {data, strlen(data)}};
    return sl_saga_apply(h->def, &h->st, &ev, h->now, &h->rand, &h->out);
}

static void expect_send(const harness *h, uint32_t step, sl_saga_call_kind call, uint32_t attempt,
                        const char *key)
{
    assert_int_equal(h->out.n_cmds, 1);
    const sl_saga_command *c = &h->out.cmds[0];
    assert_int_equal(c->kind, SL_SAGA_CMD_SEND);
    assert_int_equal(c->step, step);
    assert_int_equal(c->call, call);
    assert_int_equal(c->attempt, attempt);
    assert_string_equal(c->key, key);
    assert_int_equal(c->timeout_ms, 1000);
    assert_int_equal(h->st.phase, SL_SAGA_PHASE_INFLIGHT);
    assert_int_equal(h->st.wake_at_ms, h->now + 1000);
}

static void expect_finished(const harness *h, sl_saga_status outcome)
{
    assert_int_equal(h->out.n_cmds, 1);
    assert_int_equal(h->out.cmds[0].kind, SL_SAGA_CMD_FINISHED);
    assert_int_equal(h->out.cmds[0].outcome, outcome);
    assert_int_equal(h->st.status, outcome);
    assert_int_equal(h->st.phase, SL_SAGA_PHASE_NONE);
    assert_int_equal(h->st.wake_at_ms, 0);
}

static void expect_hist(const harness *h, sl_saga_hist_kind a, sl_saga_hist_kind b)
{
    assert_int_equal(h->out.n_hist, b == SL_SAGA_HIST_COUNT ? 1 : 2);
    assert_int_equal(h->out.hist[0].kind, a);
    if (b != SL_SAGA_HIST_COUNT) assert_int_equal(h->out.hist[1].kind, b);
    assert_int_equal(h->out.hist[0].seq, h->st.history_seq - (h->out.n_hist - 1));
}

static void test_def_valid(void **state)
{
    (void)state;
    assert_int_equal(sl_saga_def_valid(&def3), 0);
    sl_saga_def d = def3;
    d.pivot = 3;
    assert_int_equal(sl_saga_def_valid(&d), SL_ECONFIG);
    d = def3;
    d.n_steps = 0;
    assert_int_equal(sl_saga_def_valid(&d), SL_ECONFIG);
    d = def3;
    d.type = "Check out";
    assert_int_equal(sl_saga_def_valid(&d), SL_ECONFIG);
    sl_saga_step_def bad[2];
    step_init(&bad[0], "a");
    step_init(&bad[1], "a");
    d = (sl_saga_def){.type = "t", .steps = bad, .n_steps = 2, .pivot = 0};
    assert_int_equal(sl_saga_def_valid(&d), SL_ECONFIG); /* duplicate names */
    step_init(&bad[1], "b");
    assert_int_equal(sl_saga_def_valid(&d), 0);
    bad[1].timeout_ms = 0;
    assert_int_equal(sl_saga_def_valid(&d), SL_ECONFIG);
    step_init(&bad[1], "b");
    bad[1].retry.cap_ms = 1; /* below base */
    assert_int_equal(sl_saga_def_valid(&d), SL_ECONFIG);
    sl_saga_state st;
    assert_int_equal(sl_saga_state_init(&st, &def3, "bad id"), SL_EINVAL);
    assert_int_equal(sl_saga_state_init(&st, &def3, ""), SL_EINVAL);
}

static void test_happy_path(void **state)
{
    (void)state;
    harness h;
    h_init(&h, &def3);
    assert_int_equal(h.st.status, SL_SAGA_RUNNING);
    assert_int_equal(h.st.phase, SL_SAGA_PHASE_IDLE);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_START), 0);
    expect_send(&h, 0, SL_SAGA_ACTION, 1, "s1:reserve:action");
    expect_hist(&h, SL_SAGA_HIST_SENT, SL_SAGA_HIST_COUNT);
    assert_int_equal(h.st.step_status[0], SL_SAGA_STEP_ACTING);
    /* A second START is stale. */
    sl_saga_state before = h.st;
    assert_int_equal(h_ev(&h, SL_SAGA_EV_START), SL_SAGA_IGNORED);
    assert_memory_equal(&before, &h.st, sizeof before);
    assert_int_equal(h.out.n_cmds + h.out.n_hist, 0);

    h.now += 5;
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, "{\"reservation\":\"r1\"}"), 0);
    expect_hist(&h, SL_SAGA_HIST_REPLIED, SL_SAGA_HIST_SENT);
    assert_int_equal(h.out.hist[0].step, 0);
    assert_int_equal(h.out.hist[0].detail.len, strlen("{\"reservation\":\"r1\"}"));
    assert_int_equal(h.out.hist[1].step, 1);
    expect_send(&h, 1, SL_SAGA_ACTION, 1, "s1:charge:action");
    assert_int_equal(h.st.step_status[0], SL_SAGA_STEP_DONE);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, "paid"), 0);
    expect_send(&h, 2, SL_SAGA_ACTION, 1, "s1:confirm:action");
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, "ok"), 0);
    expect_hist(&h, SL_SAGA_HIST_REPLIED, SL_SAGA_HIST_COMPLETED);
    assert_int_equal(h.out.hist[1].step, -1);
    expect_finished(&h, SL_SAGA_COMPLETED);
    assert_int_equal(h.out.from, SL_SAGA_RUNNING);
    for (int i = 0; i < 3; i++)
        assert_int_equal(h.st.step_status[i], SL_SAGA_STEP_DONE);
    assert_int_equal(h.st.history_seq, 7);
    assert_int_equal(h.st.attempts_total, 3);
    /* Everything after the end is ignored. */
    assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), SL_SAGA_IGNORED);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_RESUME), SL_SAGA_IGNORED);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_ADMIN_RESUME), SL_SAGA_IGNORED);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, ""), SL_SAGA_IGNORED);
}

static void test_stale_replies(void **state)
{
    (void)state;
    harness h;
    h_init(&h, &def3);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_START), 0);
    sl_saga_state before = h.st;
    sl_saga_event ev = {.kind = SL_SAGA_EV_OK, .step = 0, .call = SL_SAGA_ACTION, .attempt = 2};
    assert_int_equal(sl_saga_apply(&def3, &h.st, &ev, h.now, &h.rand, &h.out), SL_SAGA_IGNORED);
    ev.attempt = 1;
    ev.step = 1;
    assert_int_equal(sl_saga_apply(&def3, &h.st, &ev, h.now, &h.rand, &h.out), SL_SAGA_IGNORED);
    ev.step = 0;
    ev.call = SL_SAGA_COMPENSATION;
    assert_int_equal(sl_saga_apply(&def3, &h.st, &ev, h.now, &h.rand, &h.out), SL_SAGA_IGNORED);
    assert_memory_equal(&before, &h.st, sizeof before);
    ev.step = 9;
    assert_int_equal(sl_saga_apply(&def3, &h.st, &ev, h.now, &h.rand, &h.out), SL_EINVAL);
    /* While waiting for a retry, even the current attempt's late reply is stale. */
    assert_int_equal(h_reply(&h, SL_SAGA_EV_FAILED, "503"), 0);
    ev = (sl_saga_event){.kind = SL_SAGA_EV_OK, .step = 0, .call = SL_SAGA_ACTION, .attempt = 1};
    assert_int_equal(sl_saga_apply(&def3, &h.st, &ev, h.now, &h.rand, &h.out), SL_SAGA_IGNORED);
}

static void test_transient_retry_and_timeout(void **state)
{
    (void)state;
    harness h;
    h_init(&h, &def3);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_START), 0);
    h.now += 20;
    assert_int_equal(h_reply(&h, SL_SAGA_EV_FAILED, "503 Service Unavailable"), 0);
    expect_hist(&h, SL_SAGA_HIST_FAILED, SL_SAGA_HIST_RETRY);
    assert_int_equal(h.st.phase, SL_SAGA_PHASE_WAITING);
    assert_int_equal(h.out.n_cmds, 1);
    assert_int_equal(h.out.cmds[0].kind, SL_SAGA_CMD_SCHEDULE);
    assert_int_equal(h.out.cmds[0].at_ms, h.st.wake_at_ms);
    /* First retry: full jitter within [0, base]. */
    assert_in_range(h.st.wake_at_ms, h.now, h.now + 10);
    /* A timer before its time does nothing. */
    int64_t wake = h.st.wake_at_ms;
    if (wake > h.now) {
        assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), SL_SAGA_IGNORED);
    }
    h.now = wake;
    assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), 0);
    expect_send(&h, 0, SL_SAGA_ACTION, 2, "s1:reserve:action");
    /* No reply before the timeout: the timer turns it into a transient failure. */
    h.now = h.st.wake_at_ms;
    assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), 0);
    expect_hist(&h, SL_SAGA_HIST_TIMEOUT, SL_SAGA_HIST_RETRY);
    assert_int_equal(h.out.hist[0].attempt, 2);
    assert_int_equal(h.st.phase, SL_SAGA_PHASE_WAITING);
    assert_in_range(h.st.wake_at_ms, h.now, h.now + 20); /* second retry: [0, 2 * base] */
    /* Retry-After is honoured (above the cap, within retry_after_max_ms). */
    h.now = h.st.wake_at_ms;
    assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), 0);
    sl_saga_event ev = {.kind = SL_SAGA_EV_FAILED,
                        .step = 0,
                        .attempt = 3,
                        .data = SL_SLICE_LIT("429"),
                        .retry_after_ms = 700};
    assert_int_equal(sl_saga_apply(&def3, &h.st, &ev, h.now, &h.rand, &h.out), 0);
    assert_int_equal(h.st.wake_at_ms, h.now + 700);
    h.now += 700;
    assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), 0);
    expect_send(&h, 0, SL_SAGA_ACTION, 4, "s1:reserve:action");
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, ""), 0);
    expect_send(&h, 1, SL_SAGA_ACTION, 1, "s1:charge:action"); /* attempts restart per call */
    assert_int_equal(h.st.attempts_total, 5);
}

static void test_max_attempts_parks_stuck(void **state)
{
    (void)state;
    harness h;
    h_init(&h, &def3);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_START), 0);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(h_reply(&h, SL_SAGA_EV_FAILED, "timeout"), 0);
        h.now = h.st.wake_at_ms;
        assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), 0);
    }
    assert_int_equal(h.st.attempt, 4);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_FAILED, "timeout"), 0);
    expect_hist(&h, SL_SAGA_HIST_FAILED, SL_SAGA_HIST_STUCK);
    expect_finished(&h, SL_SAGA_STUCK);
    assert_int_equal(h.st.stuck_from, SL_SAGA_RUNNING);
    assert_string_equal(h.st.stuck_reason, "action of reserve failed 4 times");
    assert_string_equal(h.out.hist[1].detail.ptr, h.st.stuck_reason);
    /* Stuck ignores everything but an admin resume. */
    assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), SL_SAGA_IGNORED);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_RESUME), SL_SAGA_IGNORED);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_ADMIN_RESUME), 0);
    expect_hist(&h, SL_SAGA_HIST_RESUMED, SL_SAGA_HIST_SENT);
    assert_int_equal(h.out.from, SL_SAGA_STUCK);
    assert_int_equal(h.st.status, SL_SAGA_RUNNING);
    /* Attempt numbers continue (old replies stay stale); the bound restarts. */
    expect_send(&h, 0, SL_SAGA_ACTION, 5, "s1:reserve:action");
    assert_int_equal(h_reply(&h, SL_SAGA_EV_FAILED, "timeout"), 0);
    assert_int_equal(h.st.status, SL_SAGA_RUNNING);
    h.now = h.st.wake_at_ms;
    assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), 0);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, ""), 0);
    assert_int_equal(h.st.step, 1);
}

static void test_deadline_parks_stuck(void **state)
{
    (void)state;
    sl_saga_step_def s[1];
    step_init(&s[0], "only");
    s[0].max_attempts = 0;
    s[0].stuck_after_ms = 5000;
    sl_saga_def d = {.type = "t", .steps = s, .n_steps = 1, .pivot = 0};
    harness h;
    h_init(&h, &d);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_START), 0);
    int n = 0;
    while (h.st.status == SL_SAGA_RUNNING) {
        h.now = h.st.wake_at_ms; /* every attempt times out */
        assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), 0);
        n++;
        assert_true(n < 100);
    }
    assert_int_equal(h.st.status, SL_SAGA_STUCK);
    assert_true(h.now - T0 >= 5000);
    assert_non_null(strstr(h.st.stuck_reason, "still failing after"));
}

static void test_refusal_first_step(void **state)
{
    (void)state;
    harness h;
    h_init(&h, &def3);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_START), 0);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_REFUSED, "out of stock"), 0);
    expect_hist(&h, SL_SAGA_HIST_REFUSED, SL_SAGA_HIST_COMPENSATED);
    expect_finished(&h, SL_SAGA_COMPENSATED);
    assert_string_equal(h.st.reason, "out of stock");
    assert_int_equal(h.st.step_status[0], SL_SAGA_STEP_REFUSED);
    assert_int_equal(h.st.step_status[1], SL_SAGA_STEP_PENDING);
}

static void test_refusal_at_pivot_compensates(void **state)
{
    (void)state;
    harness h;
    h_init(&h, &def3);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_START), 0);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, ""), 0);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_REFUSED, "card declined"), 0);
    expect_hist(&h, SL_SAGA_HIST_REFUSED, SL_SAGA_HIST_SENT);
    assert_int_equal(h.st.status, SL_SAGA_COMPENSATING);
    assert_int_equal(h.out.from, SL_SAGA_RUNNING);
    expect_send(&h, 0, SL_SAGA_COMPENSATION, 1, "s1:reserve:compensation");
    assert_int_equal(h.st.step_status[0], SL_SAGA_STEP_COMPENSATING);
    assert_int_equal(h.st.step_status[1], SL_SAGA_STEP_REFUSED);
    /* Compensations retry on transient failures like actions. */
    assert_int_equal(h_reply(&h, SL_SAGA_EV_FAILED, "503"), 0);
    assert_int_equal(h.st.status, SL_SAGA_COMPENSATING);
    h.now = h.st.wake_at_ms;
    assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), 0);
    expect_send(&h, 0, SL_SAGA_COMPENSATION, 2, "s1:reserve:compensation");
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, "released"), 0);
    expect_finished(&h, SL_SAGA_COMPENSATED);
    assert_int_equal(h.out.from, SL_SAGA_COMPENSATING);
    assert_int_equal(h.st.step_status[0], SL_SAGA_STEP_COMPENSATED);
    assert_string_equal(h.st.reason, "card declined");
}

static void test_refusal_after_pivot_parks(void **state)
{
    (void)state;
    harness h;
    h_init(&h, &def3);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_START), 0);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, ""), 0);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, ""), 0);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_REFUSED, "order cancelled"), 0);
    expect_finished(&h, SL_SAGA_STUCK);
    assert_string_equal(h.st.stuck_reason, "step confirm refused after the pivot: order cancelled");
    assert_string_equal(h.st.reason, ""); /* not a compensation reason */
    assert_int_equal(h.st.step_status[1], SL_SAGA_STEP_DONE);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_ADMIN_RESUME), 0);
    expect_send(&h, 2, SL_SAGA_ACTION, 2, "s1:confirm:action");
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, ""), 0);
    expect_finished(&h, SL_SAGA_COMPLETED);
}

static void test_compensation_refused_parks(void **state)
{
    (void)state;
    harness h;
    h_init(&h, &def3);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_START), 0);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, ""), 0);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_REFUSED, "declined"), 0);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_REFUSED, "reservation unknown"), 0);
    expect_finished(&h, SL_SAGA_STUCK);
    assert_int_equal(h.st.stuck_from, SL_SAGA_COMPENSATING);
    assert_string_equal(h.st.stuck_reason, "compensation of reserve refused: reservation unknown");
    assert_int_equal(h_ev(&h, SL_SAGA_EV_ADMIN_RESUME), 0);
    assert_int_equal(h.st.status, SL_SAGA_COMPENSATING);
    expect_send(&h, 0, SL_SAGA_COMPENSATION, 2, "s1:reserve:compensation");
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, ""), 0);
    expect_finished(&h, SL_SAGA_COMPENSATED);
    assert_string_equal(h.st.reason, "declined");
}

static void test_reverse_order(void **state)
{
    (void)state;
    sl_saga_step_def s[5];
    static const char *const names[] = {"a", "b", "c", "pivot", "after"};
    for (int i = 0; i < 5; i++)
        step_init(&s[i], names[i]);
    sl_saga_def d = {.type = "five", .steps = s, .n_steps = 5, .pivot = 3};
    harness h;
    h_init(&h, &d);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_START), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, ""), 0);
    assert_int_equal(h.st.step, 3);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_REFUSED, "no"), 0);
    for (int i = 2; i >= 0; i--) {
        char key[64];
        snprintf(key, sizeof key, "s1:%s:compensation", names[i]);
        expect_send(&h, (uint32_t)i, SL_SAGA_COMPENSATION, 1, key);
        assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, ""), 0);
    }
    expect_finished(&h, SL_SAGA_COMPENSATED);
    assert_int_equal(h.st.step_status[4], SL_SAGA_STEP_PENDING);
}

static void test_resume_after_restart(void **state)
{
    (void)state;
    harness h;
    h_init(&h, &def3);
    /* Created, never started: RESUME starts it. */
    assert_int_equal(h_ev(&h, SL_SAGA_EV_RESUME), 0);
    expect_hist(&h, SL_SAGA_HIST_RESUMED, SL_SAGA_HIST_SENT);
    expect_send(&h, 0, SL_SAGA_ACTION, 1, "s1:reserve:action");
    /* In flight: re-sent under the same key as a new attempt; the old attempt's reply is stale. */
    assert_int_equal(h_ev(&h, SL_SAGA_EV_RESUME), 0);
    expect_send(&h, 0, SL_SAGA_ACTION, 2, "s1:reserve:action");
    sl_saga_event ev = {.kind = SL_SAGA_EV_OK, .step = 0, .attempt = 1};
    assert_int_equal(sl_saga_apply(&def3, &h.st, &ev, h.now, &h.rand, &h.out), SL_SAGA_IGNORED);
    /* Waiting for a retry: RESUME only re-arms the timer. */
    assert_int_equal(h_reply(&h, SL_SAGA_EV_FAILED, "x"), 0);
    int64_t wake = h.st.wake_at_ms;
    assert_int_equal(h_ev(&h, SL_SAGA_EV_RESUME), 0);
    assert_int_equal(h.out.n_cmds, 1);
    assert_int_equal(h.out.cmds[0].kind, SL_SAGA_CMD_SCHEDULE);
    assert_int_equal(h.out.cmds[0].at_ms, wake);
    assert_int_equal(h.st.phase, SL_SAGA_PHASE_WAITING);
    /* Running but an admin resume is meaningless. */
    assert_int_equal(h_ev(&h, SL_SAGA_EV_ADMIN_RESUME), SL_SAGA_IGNORED);
}

static void test_json_round_trip(void **state)
{
    (void)state;
    harness h;
    h_init(&h, &def3);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_START), 0);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, ""), 0);
    /* A reason with invalid UTF-8, a NUL and a control byte is sanitised on the way in. */
    static const char bad[] = "d\xc3\xa9"
                              "clin\xff\x00x\x01";
    sl_saga_event ev = {
        .kind = SL_SAGA_EV_REFUSED, .step = 1, .attempt = 1, .data = {bad, sizeof bad - 1}};
    assert_int_equal(sl_saga_apply(&def3, &h.st, &ev, h.now, &h.rand, &h.out), 0);
    assert_string_equal(h.st.reason, "d\xc3\xa9"
                                     "clin??x?");
    h.st.version = 42;
    char *json;
    assert_int_equal(sl_saga_state_to_json(&h.st, &json), 0);
    sl_saga_state back;
    memset(&back, 0, sizeof back);
    strcpy(back.id, "s1");
    back.version = 42;
    assert_int_equal(sl_saga_state_from_json(&back, &def3, json, strlen(json)), 0);
    assert_memory_equal(&back, &h.st, sizeof back);
    free(json);
    /* The text is exactly jansson's compact dump of itself (the writer builds it by hand), with
     * every kind of character a reason can hold, with and without a deadline. */
    static const char *const reasons[] = {"", "plain\ttab", "q\"uote\\back/slash",
                                          "ctl\x01\x1f\n\t\r\b\f",
                                          "d\xc3\xa9j\xc3\xa0 \xe2\x82\xac"};
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
        sl_saga_state t = h.st;
        memset(t.reason, 0, sizeof t.reason);
        memset(t.stuck_reason, 0, sizeof t.stuck_reason);
        snprintf(t.reason, sizeof t.reason, "%s", reasons[i]);
        snprintf(t.stuck_reason, sizeof t.stuck_reason, "%s", reasons[(i + 2) % 5]);
        t.deadline_at_ms = i % 2 ? 1700000000123 : 0;
        t.wake_at_ms = (int64_t)i * 1000003;
        assert_int_equal(sl_saga_state_to_json(&t, &json), 0);
        json_t *o = json_loads(json, 0, NULL);
        assert_non_null(o);
        char *again = json_dumps(o, JSON_COMPACT);
        /* byte for byte, but for the hex digits' case in \u00XX (lower here, upper in jansson)
         * of control characters, which stored reasons never hold (sl__saga_text_copy) */
        int ctl = i == 3 || (i + 2) % 5 == 3;
        if (!ctl) assert_string_equal(json, again);
        free(again);
        json_decref(o);
        memset(&back, 0, sizeof back);
        strcpy(back.id, "s1");
        back.version = 42;
        assert_int_equal(sl_saga_state_from_json(&back, &def3, json, strlen(json)), 0);
        /* control characters read back as '?' (sl__saga_text_copy); the rest is equal */
        if (!ctl) assert_memory_equal(&back, &t, sizeof back);
        free(json);
    }

    static const char *const broken[] = {
        "", "[]", "{}", "{\"status\":\"running\"}", "not json",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(broken); i++)
        assert_int_equal(sl_saga_state_from_json(&back, &def3, broken[i], strlen(broken[i])),
                         SL_EPARSE);
    /* Field by field corruption of a valid document. */
    assert_int_equal(sl_saga_state_to_json(&h.st, &json), 0);
    static const char *const swaps[][2] = {
        {"\"step\":0", "\"step\":3"},         {"\"step\":0", "\"step\":-1"},
        {"\"running\"", "\"walking\""},       {"\"compensating\"", "\"done\""},
        {"\"inflight\"", "\"flying\""},       {"\"action\"", "\"act\""},
        {"\"compensated\"", "\"compensat\""}, {"\"attempt\":1", "\"attempt\":\"1\""},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(swaps); i++) {
        char *p = strstr(json, swaps[i][0]);
        if (p == NULL) continue;
        char buf[4096];
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - json), json, swaps[i][1],
                 p + strlen(swaps[i][0]));
        sl_saga_state tmp = back;
        assert_int_equal(sl_saga_state_from_json(&tmp, &def3, buf, strlen(buf)), SL_EPARSE);
        assert_memory_equal(&tmp, &back, sizeof tmp); /* untouched on failure */
    }
    /* A state of a 3-step definition does not load under a 1-step one. */
    sl_saga_def one = def3;
    one.n_steps = 1;
    one.pivot = 0;
    assert_int_equal(sl_saga_state_from_json(&back, &one, json, strlen(json)), SL_EPARSE);
    free(json);
}

/* ------------------------------------------------------------------------------------------
 * Randomised simulated world.
 *
 * Steps: reserve stock (compensable), [hold a coupon (compensable), only in the 4-step
 * variant], charge (the pivot), confirm (after the pivot). Each participant keeps the
 * replies it gave per idempotency key: a re-sent call returns the stored reply and has no
 * effect; refusals are stored too (a key refused once stays refused, so a delayed earlier
 * attempt cannot apply after the orchestrator took the refusal). Every call may be lost
 * before the participant, fail with 503, be refused, apply and lose its reply, or apply and
 * reply (possibly after the orchestrator's timeout). The orchestrator persists the state as
 * JSON (the "database") and may crash before a save, after a save but before running its
 * commands, or at any moment: it then reloads the saved JSON, drops every reply still on
 * the wire (requests already sent still reach the participants), and applies RESUME. A saga
 * that parks as stuck is healed (failures off, the stuck call's stored refusal forgotten,
 * as an operator would fix the participant) and resumed through ADMIN_RESUME.
 * ------------------------------------------------------------------------------------------ */

#define SIM_MAXKEYS  32
#define SIM_MAXNET   256
#define SIM_STOCK    100
#define SIM_MONEY    1000
#define SIM_PRICE    10
#define SIM_MAXSTEPS 4

typedef struct sim_key {
    char key[SL_SAGA_KEY_MAX];
    int refused; /* stored reply: 1 refused, 0 ok */
    int effects; /* times this key changed a participant's counters */
} sim_key;

typedef enum { NET_REQUEST, NET_REPLY } net_kind;

typedef struct net_msg {
    int64_t at;
    net_kind kind;
    uint32_t step, attempt;
    sl_saga_call_kind call;
    char key[SL_SAGA_KEY_MAX];
    int epoch;      /* replies of an older orchestrator incarnation are dropped */
    int deliver;    /* request: 0 lost on the way in; reply kind otherwise */
    int lose_reply; /* request: the participant applies it but the reply is lost */
    sl_saga_event_kind reply;
} net_msg;

typedef struct sim {
    const sl_saga_def *def;
    sl_rand r;
    /* participants */
    int64_t pool_a[SIM_MAXSTEPS], pool_b[SIM_MAXSTEPS]; /* e.g. stock available / reserved */
    int64_t unit[SIM_MAXSTEPS];
    sim_key keys[SIM_MAXKEYS];
    int n_keys;
    int comp_order[SIM_MAXSTEPS];
    int n_comp;
    int comp_without_action; /* a compensation reached a participant whose action never applied */
    /* failure probabilities in percent */
    int p_lost, p_503, p_refuse, p_lose_reply, p_late, p_crash;
    /* orchestrator */
    char *saved; /* the "database": the state as JSON */
    uint32_t saved_seq;
    sl_saga_state st;
    int epoch;
    int64_t now;
    net_msg net[SIM_MAXNET];
    int n_net;
    int crashes, stuck_parks, stale, events;
} sim;

static bool chance(sim *s, int pct)
{
    return (int)sl_rand_below(&s->r, 100) < pct;
}

static sim_key *sim_key_find(sim *s, const char *key)
{
    for (int i = 0; i < s->n_keys; i++)
        if (strcmp(s->keys[i].key, key) == 0) return &s->keys[i];
    return NULL;
}

static sim_key *sim_key_add(sim *s, const char *key, int refused)
{
    assert_true(s->n_keys < SIM_MAXKEYS);
    sim_key *k = &s->keys[s->n_keys++];
    snprintf(k->key, sizeof k->key, "%s", key);
    k->refused = refused;
    k->effects = 0;
    return k;
}

static void net_push(sim *s, const net_msg *m)
{
    assert_true(s->n_net < SIM_MAXNET);
    s->net[s->n_net++] = *m;
}

/* The participant of `m->step` handles a request; returns the reply kind. */
static sl_saga_event_kind participant(sim *s, const net_msg *m)
{
    sim_key *k = sim_key_find(s, m->key);
    if (k != NULL) return k->refused ? SL_SAGA_EV_REFUSED : SL_SAGA_EV_OK; /* idempotent */
    uint32_t i = m->step;
    if (m->call == SL_SAGA_ACTION) {
        /* Only the steps up to the pivot may refuse in business terms; confirm rarely. */
        int p = i <= s->def->pivot ? s->p_refuse : s->p_refuse / 4;
        if (chance(s, p)) {
            sim_key_add(s, m->key, 1);
            return SL_SAGA_EV_REFUSED;
        }
        k = sim_key_add(s, m->key, 0);
        s->pool_a[i] -= s->unit[i];
        s->pool_b[i] += s->unit[i];
        k->effects++;
        return SL_SAGA_EV_OK;
    }
    if (chance(s, s->p_refuse / 4)) {
        sim_key_add(s, m->key, 1);
        return SL_SAGA_EV_REFUSED;
    }
    k = sim_key_add(s, m->key, 0);
    char action[SL_SAGA_KEY_MAX];
    snprintf(action, sizeof action, "%s:%s:action", s->st.id, s->def->steps[i].name);
    sim_key *a = sim_key_find(s, action);
    if (a == NULL || a->refused) {
        s->comp_without_action++;
        return SL_SAGA_EV_OK; /* nothing to undo */
    }
    s->pool_a[i] += s->unit[i];
    s->pool_b[i] -= s->unit[i];
    k->effects++;
    assert_true(s->n_comp < SIM_MAXSTEPS);
    s->comp_order[s->n_comp++] = (int)i;
    return SL_SAGA_EV_OK;
}

/* Executes a SEND command: puts the request (and maybe an executor-side failure) on the wire. */
static void sim_send(sim *s, const sl_saga_command *c)
{
    net_msg m = {.kind = NET_REQUEST,
                 .step = c->step,
                 .attempt = c->attempt,
                 .call = c->call,
                 .epoch = s->epoch};
    snprintf(m.key, sizeof m.key, "%s", c->key);
    int64_t timeout = c->timeout_ms;
    if (chance(s, s->p_lost)) {
        /* Never reaches the participant; the client may report a connect error or time out. */
        if (chance(s, 50)) {
            m.kind = NET_REPLY;
            m.reply = SL_SAGA_EV_FAILED;
            m.at = s->now + (int64_t)sl_rand_below(&s->r, (uint64_t)timeout);
            net_push(s, &m);
        }
        return;
    }
    if (chance(s, s->p_503)) {
        m.kind = NET_REPLY;
        m.reply = SL_SAGA_EV_FAILED;
        m.at = s->now + 1 + (int64_t)sl_rand_below(&s->r, 50);
        net_push(s, &m);
        return;
    }
    /* Delivered, possibly late (beyond the timeout: the reply will be stale). */
    int64_t delay =
        1 + (int64_t)sl_rand_below(&s->r, chance(s, s->p_late) ? 2 * (uint64_t)timeout : 100);
    m.at = s->now + delay;
    m.lose_reply = chance(s, s->p_lose_reply);
    net_push(s, &m);
}

/* Persists the state (the sim's database write), checking that history seqs are contiguous. */
static void sim_save(sim *s, const sl_saga_state *st, const sl_saga_output *out)
{
    for (size_t i = 0; i < out->n_hist; i++)
        assert_int_equal(out->hist[i].seq, s->saved_seq + 1 + i);
    s->saved_seq += (uint32_t)out->n_hist;
    free(s->saved);
    assert_int_equal(sl_saga_state_to_json(st, &s->saved), 0);
}

static void sim_crash(sim *s)
{
    s->crashes++;
    s->epoch++;
    /* Drop every reply on the wire: the connections died with the process. */
    int w = 0;
    for (int i = 0; i < s->n_net; i++)
        if (s->net[i].kind == NET_REQUEST) s->net[w++] = s->net[i];
    s->n_net = w;
    sl_saga_state back;
    memset(&back, 0, sizeof back);
    snprintf(back.id, sizeof back.id, "%s", s->st.id);
    assert_int_equal(sl_saga_state_from_json(&back, s->def, s->saved, strlen(s->saved)), 0);
    s->st = back;
}

/* Applies one event the way the driver does: apply, (crash?), save, (crash?), run commands. */
static void sim_event(sim *s, const sl_saga_event *ev)
{
    sl_saga_state next = s->st;
    sl_saga_output out;
    s->events++;
    int rc = sl_saga_apply(s->def, &next, ev, s->now, &s->r, &out);
    assert_true(rc == 0 || rc == SL_SAGA_IGNORED);
    if (rc == SL_SAGA_IGNORED) {
        s->stale++;
        assert_memory_equal(&next, &s->st, sizeof next);
        return;
    }
    if (chance(s, s->p_crash)) { /* crash before the write: the transition is lost */
        sim_crash(s);
        sl_saga_event resume = {.kind = SL_SAGA_EV_RESUME};
        sim_event(s, &resume);
        return;
    }
    sim_save(s, &next, &out);
    s->st = next;
    if (chance(s, s->p_crash)) { /* crash after the write, before sending anything */
        sim_crash(s);
        sl_saga_event resume = {.kind = SL_SAGA_EV_RESUME};
        sim_event(s, &resume);
        return;
    }
    for (size_t i = 0; i < out.n_cmds; i++)
        if (out.cmds[i].kind == SL_SAGA_CMD_SEND) sim_send(s, &out.cmds[i]);
}

/* Delivers the earliest message on the wire, or fires the orchestrator's timer. */
static void sim_tick(sim *s)
{
    int best = -1;
    for (int i = 0; i < s->n_net; i++)
        if (best < 0 || s->net[i].at < s->net[best].at) best = i;
    int64_t wake = s->st.wake_at_ms;
    if (best < 0 || (wake > 0 && wake <= s->net[best].at)) {
        assert_true(wake > 0); /* something must be pending */
        if (wake > s->now) s->now = wake;
        sl_saga_event ev = {.kind = SL_SAGA_EV_TIMER};
        sim_event(s, &ev);
        return;
    }
    net_msg m = s->net[best];
    s->net[best] = s->net[--s->n_net];
    if (m.at > s->now) s->now = m.at;
    if (m.kind == NET_REQUEST) {
        sl_saga_event_kind reply = participant(s, &m);
        if (m.lose_reply) return;
        m.kind = NET_REPLY;
        m.reply = reply;
        m.at = s->now + 1 + (int64_t)sl_rand_below(&s->r, 20);
        net_push(s, &m);
        return;
    }
    if (m.epoch != s->epoch) return; /* the process that sent it is gone */
    sl_saga_event ev = {.kind = m.reply,
                        .step = m.step,
                        .call = m.call,
                        .attempt = m.attempt,
                        .data = SL_SLICE_LIT("sim")};
    sim_event(s, &ev);
    /* A random crash at an arbitrary moment, besides the ones around writes. */
    if (s->st.status != SL_SAGA_COMPLETED && s->st.status != SL_SAGA_COMPENSATED &&
        s->st.status != SL_SAGA_STUCK && chance(s, s->p_crash / 2)) {
        sim_crash(s);
        sl_saga_event resume = {.kind = SL_SAGA_EV_RESUME};
        sim_event(s, &resume);
    }
}

static void sim_heal(sim *s)
{
    s->p_lost = s->p_503 = s->p_refuse = s->p_lose_reply = s->p_late = s->p_crash = 0;
    /* The operator fixes the participant of the stuck call: its stored refusal is forgotten. */
    char key[SL_SAGA_KEY_MAX];
    snprintf(key, sizeof key, "%s:%s:%s", s->st.id, s->def->steps[s->st.step].name,
             sl_saga_call_name(s->st.call));
    sim_key *k = sim_key_find(s, key);
    if (k != NULL && k->refused) *k = s->keys[--s->n_keys];
}

typedef struct sim_totals {
    int completed, compensated, stuck_then_healed, crashes, stale;
} sim_totals;

static void sim_run(const sl_saga_def *def, uint64_t seed, sim_totals *tot)
{
    sim *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->def = def;
    sl_rand_seed(&s->r, seed);
    s->p_lost = (int)sl_rand_below(&s->r, 20);
    s->p_503 = (int)sl_rand_below(&s->r, 20);
    s->p_refuse = (int)sl_rand_below(&s->r, 25);
    s->p_lose_reply = (int)sl_rand_below(&s->r, 25);
    s->p_late = (int)sl_rand_below(&s->r, 20);
    s->p_crash = (int)sl_rand_below(&s->r, 12);
    for (size_t i = 0; i < def->n_steps; i++) {
        s->unit[i] = i == def->pivot ? SIM_PRICE : 1;
        s->pool_a[i] = i == def->pivot ? SIM_MONEY : SIM_STOCK;
    }
    char id[32];
    snprintf(id, sizeof id, "saga-%llu", (unsigned long long)seed);
    assert_int_equal(sl_saga_state_init(&s->st, def, id), 0);
    s->now = T0;
    sl_saga_output created = {.n_hist = 0};
    sim_save(s, &s->st, &created);
    sl_saga_event start = {.kind = SL_SAGA_EV_START};
    if (chance(s, 10)) start.kind = SL_SAGA_EV_RESUME; /* crashed right after create */
    sim_event(s, &start);
    int healed = 0;
    for (int guard = 0;; guard++) {
        assert_true(guard < 20000);
        sl_saga_status stt = s->st.status;
        if (stt == SL_SAGA_COMPLETED || stt == SL_SAGA_COMPENSATED) break;
        if (stt == SL_SAGA_STUCK) {
            assert_true(healed < 3);
            healed++;
            sim_heal(s);
            sl_saga_event ev = {.kind = SL_SAGA_EV_ADMIN_RESUME};
            sim_event(s, &ev);
            continue;
        }
        sim_tick(s);
    }
    /* Let every request still on the wire reach its participant: late duplicates must be
     * no-ops. */
    while (s->n_net > 0) {
        net_msg m = s->net[--s->n_net];
        if (m.kind == NET_REQUEST) (void)participant(s, &m);
    }
    /* Conservation per participant, and the effect of each outcome. */
    int applied[SIM_MAXSTEPS] = {0};
    for (size_t i = 0; i < def->n_steps; i++) {
        int64_t a0 = i == def->pivot ? SIM_MONEY : SIM_STOCK;
        assert_int_equal(s->pool_a[i] + s->pool_b[i], a0);
        assert_true(s->pool_b[i] == 0 || s->pool_b[i] == s->unit[i]);
        applied[i] = s->pool_b[i] != 0;
    }
    for (int i = 0; i < s->n_keys; i++)
        assert_true(s->keys[i].effects <=
                    1); /* each action/compensation took effect at most once */
    assert_int_equal(s->comp_without_action, 0); /* only completed steps were compensated */
    for (int i = 1; i < s->n_comp; i++)
        assert_true(s->comp_order[i] < s->comp_order[i - 1]); /* in reverse order */
    if (s->st.status == SL_SAGA_COMPLETED) {
        tot->completed++;
        for (size_t i = 0; i < def->n_steps; i++)
            assert_int_equal(applied[i], 1);
        assert_int_equal(s->n_comp, 0);
    } else {
        tot->compensated++;
        for (size_t i = 0; i < def->n_steps; i++)
            assert_int_equal(applied[i], 0); /* stock back, nothing charged, nothing confirmed */
        assert_true(s->st.reason[0] != '\0');
    }
    tot->stuck_then_healed += healed > 0;
    tot->crashes += s->crashes;
    tot->stale += s->stale;
    free(s->saved);
    free(s);
}

static void test_randomised_world(void **state)
{
    (void)state;
    sl_saga_step_def s4[4];
    step_init(&s4[0], "reserve");
    step_init(&s4[1], "coupon");
    step_init(&s4[2], "charge");
    step_init(&s4[3], "confirm");
    sl_saga_def def4 = {.type = "checkout4", .steps = s4, .n_steps = 4, .pivot = 2};
    sim_totals t3 = {0}, t4 = {0};
    for (uint64_t seed = 1; seed <= 4000; seed++)
        sim_run(&def3, seed, &t3);
    for (uint64_t seed = 1; seed <= 2000; seed++)
        sim_run(&def4, 100000 + seed, &t4);
    print_message("3 steps: %d completed, %d compensated, %d stuck then healed, %d crashes, "
                  "%d stale events\n",
                  t3.completed, t3.compensated, t3.stuck_then_healed, t3.crashes, t3.stale);
    print_message("4 steps: %d completed, %d compensated, %d stuck then healed, %d crashes, "
                  "%d stale events\n",
                  t4.completed, t4.compensated, t4.stuck_then_healed, t4.crashes, t4.stale);
    /* The runs exercised every ending and the crash/stale paths, not just the happy one. */
    sim_totals *all[] = {&t3, &t4};
    for (int i = 0; i < 2; i++) {
        assert_true(all[i]->completed > 100);
        assert_true(all[i]->compensated > 100);
        assert_true(all[i]->stuck_then_healed > 10);
        assert_true(all[i]->crashes > 100);
        assert_true(all[i]->stale > 100);
    }
}

/* ---- retry without parking, wake, deadline, abort ---- */

/* A 4-step checkout like the order service's: open → reserve → charge (pivot, compensable by
 * an abort) → confirm; no attempt bounds, a deadline of 5 s. */
static sl_saga_step_def steps4[4];
static sl_saga_def def4;

static void def4_init(int64_t deadline_ms, bool pivot_compensable)
{
    static const char *const names[] = {"open", "reserve", "charge", "confirm"};
    for (int i = 0; i < 4; i++) {
        step_init(&steps4[i], names[i]);
        steps4[i].max_attempts = 0;
        steps4[i].stuck_after_ms = 0;
    }
    def4 = (sl_saga_def){.type = "checkout",
                         .steps = steps4,
                         .n_steps = 4,
                         .pivot = 2,
                         .deadline_ms = deadline_ms,
                         .pivot_compensable = pivot_compensable};
    assert_int_equal(sl_saga_def_valid(&def4), 0);
}

/* Drives a def4 saga to the charge's first attempt in flight. */
static void to_charge(harness *h)
{
    h_init(h, &def4);
    assert_int_equal(h_ev(h, SL_SAGA_EV_START), 0);
    assert_int_equal(h_reply(h, SL_SAGA_EV_OK, "open"), 0);
    assert_int_equal(h_reply(h, SL_SAGA_EV_OK, "reserved"), 0);
    assert_int_equal(h->st.step, 2);
    assert_int_equal(h->st.phase, SL_SAGA_PHASE_INFLIGHT);
}

static void test_transient_never_parks(void **state)
{
    (void)state;
    def4_init(0, true);
    harness h;
    to_charge(&h);
    /* An outage of many hours: every failure schedules a retry within the cap, never stuck. */
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(h_reply(&h, SL_SAGA_EV_FAILED, "transport: connect_error"), 0);
        assert_int_equal(h.st.status, SL_SAGA_RUNNING);
        assert_int_equal(h.st.phase, SL_SAGA_PHASE_WAITING);
        assert_int_equal(h.out.cmds[0].kind, SL_SAGA_CMD_SCHEDULE);
        assert_in_range(h.st.wake_at_ms - h.now, 0, 100); /* capped backoff */
        h.now = h.st.wake_at_ms + 60000;                  /* the timer fires late, even */
        assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), 0);
        assert_int_equal(h.out.cmds[0].kind, SL_SAGA_CMD_SEND);
        /* a timeout instead of a reply is transient too */
        if (i % 2) {
            h.now = h.st.wake_at_ms;
            assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), 0);
            assert_int_equal(h.st.phase, SL_SAGA_PHASE_WAITING);
            h.now = h.st.wake_at_ms;
            assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), 0);
        }
    }
    assert_int_equal(h.st.status, SL_SAGA_RUNNING);
    assert_true(h.st.attempt > 2000);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, "charged"), 0);
    assert_int_equal(h.st.step, 3);
}

static void test_wake_retries_now(void **state)
{
    (void)state;
    def4_init(0, true);
    harness h;
    to_charge(&h);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_WAKE), SL_SAGA_IGNORED); /* in flight: nothing to do */
    steps4[2].retry.base_ms = 100000;
    steps4[2].retry.cap_ms = 100000;
    steps4[2].retry.jitter = SL_RETRY_JITTER_DECORRELATED;
    assert_int_equal(h_reply(&h, SL_SAGA_EV_FAILED, "HTTP 503"), 0);
    assert_true(h.st.wake_at_ms > h.now + 1000);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), SL_SAGA_IGNORED); /* too early */
    h.now += 5;
    assert_int_equal(h_ev(&h, SL_SAGA_EV_WAKE), 0); /* the participant is back */
    expect_send(&h, 2, SL_SAGA_ACTION, 2, "s1:charge:action");
}

static void test_deadline_before_pivot_compensates(void **state)
{
    (void)state;
    def4_init(5000, true);
    harness h;
    to_charge(&h);
    assert_int_equal(h.st.deadline_at_ms, T0 + 5000);
    /* The charge keeps failing; the saga's next wake-up never lies beyond the deadline. */
    while (h.now < T0 + 5000) {
        assert_int_equal(h_reply(&h, SL_SAGA_EV_FAILED, "HTTP 503"), 0);
        assert_true(sl_saga_due_ms(&def4, &h.st) <= T0 + 5000);
        if (h.st.status != SL_SAGA_RUNNING) break;
        h.now = sl_saga_due_ms(&def4, &h.st);
        assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), 0);
    }
    /* At the deadline: aborted with reason timeout; the charge may have reached payment, so its
     * compensation (a refund leaving a tombstone) goes first, then reserve, then open. */
    assert_int_equal(h.st.status, SL_SAGA_COMPENSATING);
    assert_string_equal(h.st.reason, "timeout");
    expect_send(&h, 2, SL_SAGA_COMPENSATION, 1, "s1:charge:compensation");
    int aborted = 0;
    for (size_t i = 0; i < h.out.n_hist; i++)
        aborted += h.out.hist[i].kind == SL_SAGA_HIST_ABORTED;
    assert_int_equal(aborted, 1);
    /* A late reply of the charge is stale. */
    sl_saga_event late = {
        .kind = SL_SAGA_EV_OK, .step = 2, .call = SL_SAGA_ACTION, .attempt = h.st.attempt};
    assert_int_equal(sl_saga_apply(&def4, &h.st, &late, h.now, &h.rand, &h.out), SL_SAGA_IGNORED);
    /* Compensations retry until they succeed, past the deadline. */
    assert_int_equal(h_reply(&h, SL_SAGA_EV_FAILED, "HTTP 503"), 0);
    assert_int_equal(h.st.status, SL_SAGA_COMPENSATING);
    h.now = h.st.wake_at_ms;
    assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), 0);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, "refunded 0"), 0);
    expect_send(&h, 1, SL_SAGA_COMPENSATION, 1, "s1:reserve:compensation");
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, "released"), 0);
    expect_send(&h, 0, SL_SAGA_COMPENSATION, 1, "s1:open:compensation");
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, "order cancelled"), 0);
    expect_finished(&h, SL_SAGA_COMPENSATED);
    assert_string_equal(h.st.reason, "timeout");

    /* A deadline while reserve is in flight: reserve's compensation first (a release of a
     * reservation that may exist), then open; the charge is never sent. */
    h_init(&h, &def4);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_START), 0);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, "open"), 0);
    assert_int_equal(sl_saga_due_ms(&def4, &h.st), T0 + 1000); /* reserve's timeout first */
    h.now = T0 + 5000;
    assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), 0);
    expect_send(&h, 1, SL_SAGA_COMPENSATION, 1, "s1:reserve:compensation");

    /* reserve replies ok after the deadline, before the timer: too late to go on; it is
     * compensated (released), never charged. */
    h_init(&h, &def4);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_START), 0);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, "open"), 0);
    h.now = T0 + 5000;
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, "reserved"), 0);
    assert_int_equal(h.st.status, SL_SAGA_COMPENSATING);
    assert_string_equal(h.st.reason, "timeout");
    expect_send(&h, 1, SL_SAGA_COMPENSATION, 1, "s1:reserve:compensation");

    /* A saga never started before its deadline (a backlog) ends compensated at once via its
     * first step's compensation. */
    h_init(&h, &def4);
    h.st.deadline_at_ms = T0 - 1;
    assert_int_equal(h_ev(&h, SL_SAGA_EV_RESUME), 0);
    expect_send(&h, 0, SL_SAGA_COMPENSATION, 1, "s1:open:compensation");
}

static void test_after_pivot_goes_forward(void **state)
{
    (void)state;
    def4_init(5000, true);
    harness h;
    to_charge(&h);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, "charged"), 0);
    assert_int_equal(h.st.step, 3);
    assert_int_equal(sl_saga_due_ms(&def4, &h.st), h.st.wake_at_ms); /* no deadline any more */
    assert_false(sl_saga_abortable(&def4, &h.st));
    for (int i = 0; i < 50; i++) {
        assert_int_equal(h_reply(&h, SL_SAGA_EV_FAILED, "database: busy"), 0);
        h.now = h.st.wake_at_ms + 10000; /* far past the deadline */
        assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), 0);
        assert_int_equal(h.st.status, SL_SAGA_RUNNING);
        assert_int_equal(h.st.step, 3);
    }
    sl_saga_state before = h.st;
    assert_int_equal(h_ev(&h, SL_SAGA_EV_ABORT), SL_ESTATE);
    assert_memory_equal(&before, &h.st, sizeof before);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, "confirmed"), 0);
    expect_finished(&h, SL_SAGA_COMPLETED);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_ABORT), SL_ESTATE);
}

static void test_abort(void **state)
{
    (void)state;
    def4_init(0, true);
    harness h;
    /* Before the pivot: reserve in flight → compensate reserve, then open. */
    h_init(&h, &def4);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_START), 0);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, "open"), 0);
    assert_true(sl_saga_abortable(&def4, &h.st));
    assert_int_equal(h_ev(&h, SL_SAGA_EV_ABORT), 0);
    assert_string_equal(h.st.reason, "aborted");
    expect_send(&h, 1, SL_SAGA_COMPENSATION, 1, "s1:reserve:compensation");
    assert_int_equal(h_ev(&h, SL_SAGA_EV_ABORT), SL_SAGA_IGNORED); /* already going back */
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, "released"), 0);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, "cancelled"), 0);
    expect_finished(&h, SL_SAGA_COMPENSATED);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_ABORT), SL_SAGA_IGNORED);

    /* A stuck saga before the pivot can be aborted too. */
    steps4[1].max_attempts = 1;
    h_init(&h, &def4);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_START), 0);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_OK, "open"), 0);
    assert_int_equal(h_reply(&h, SL_SAGA_EV_FAILED, "down"), 0);
    assert_int_equal(h.st.status, SL_SAGA_STUCK);
    assert_int_equal(h_ev(&h, SL_SAGA_EV_ABORT), 0);
    assert_int_equal(h.st.status, SL_SAGA_COMPENSATING);
    expect_send(&h, 1, SL_SAGA_COMPENSATION, 1, "s1:reserve:compensation");

    /* A pivot without a safe compensation cannot be aborted once sent, not even by the
     * deadline: it goes on until the pivot answers. */
    def4_init(5000, false);
    to_charge(&h);
    assert_false(sl_saga_abortable(&def4, &h.st));
    assert_int_equal(h_ev(&h, SL_SAGA_EV_ABORT), SL_ESTATE);
    h.now = T0 + 6000;
    assert_int_equal(h_ev(&h, SL_SAGA_EV_TIMER), 0); /* the charge's timeout, not an abort */
    assert_int_equal(h.st.status, SL_SAGA_RUNNING);
    assert_int_equal(h.st.phase, SL_SAGA_PHASE_WAITING);
}

static void test_deadline_json(void **state)
{
    (void)state;
    def4_init(5000, true);
    harness h;
    to_charge(&h);
    char *json = NULL;
    assert_int_equal(sl_saga_state_to_json(&h.st, &json), 0);
    sl_saga_state back;
    memset(&back, 0, sizeof back);
    assert_int_equal(sl_saga_state_from_json(&back, &def4, json, strlen(json)), 0);
    assert_int_equal(back.deadline_at_ms, T0 + 5000);
    free(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_def_valid),
        cmocka_unit_test(test_happy_path),
        cmocka_unit_test(test_stale_replies),
        cmocka_unit_test(test_transient_retry_and_timeout),
        cmocka_unit_test(test_max_attempts_parks_stuck),
        cmocka_unit_test(test_deadline_parks_stuck),
        cmocka_unit_test(test_refusal_first_step),
        cmocka_unit_test(test_refusal_at_pivot_compensates),
        cmocka_unit_test(test_refusal_after_pivot_parks),
        cmocka_unit_test(test_compensation_refused_parks),
        cmocka_unit_test(test_reverse_order),
        cmocka_unit_test(test_resume_after_restart),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_randomised_world),
        cmocka_unit_test(test_transient_never_parks),
        cmocka_unit_test(test_wake_retries_now),
        cmocka_unit_test(test_deadline_before_pivot_compensates),
        cmocka_unit_test(test_after_pivot_goes_forward),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_deadline_json),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
