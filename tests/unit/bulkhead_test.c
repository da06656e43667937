/*
 * Unit tests for the bulkhead (include/shoal/bulkhead.h): fail-fast, FIFO
 * grants, expiry, cancellation and permit return driven with the fake clock,
 * then seeded random sequences against a model that checks permits never
 * leak or go negative.
 */
#include <shoal/bulkhead.h>
#include <shoal/rand.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define MS INT64_C(1000000)

typedef struct slot {
    sl_bulkhead_waiter w;
    int id;
    int last_status; /* 1 = not called yet */
    int calls;
    sl_bulkhead *b;
    int release_in_cb; /* release the permit from inside the callback */
    int *order;        /* grant order log */
    int *norder;
} slot;

static void slot_cb(sl_bulkhead_waiter *w, int status, void *data)
{
    slot *s = data;
    assert_ptr_equal(&s->w, w);
    s->last_status = status;
    s->calls++;
    if (status == 0 && s->order) s->order[(*s->norder)++] = s->id;
    if (status == 0 && s->release_in_cb) assert_int_equal(sl_bulkhead_release(s->b), 0);
}

static sl_bulkhead *make(sl_fake_clock *fc, uint32_t max, uint32_t queue, int64_t wait_ms)
{
    sl_bulkhead_config c = {.max_concurrent = max, .max_queue = queue, .max_wait_ms = wait_ms};
    sl_bulkhead *b;
    assert_int_equal(sl_bulkhead_new(&c, &fc->clock, &b), 0);
    return b;
}

static void test_config(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_bulkhead_config c;
    sl_bulkhead_config_default(&c);
    assert_int_equal(c.max_concurrent, 10);
    sl_bulkhead *b;
    assert_int_equal(sl_bulkhead_new(&c, &fc.clock, &b), 0);
    sl_bulkhead_free(b);
    c.max_concurrent = 0;
    assert_int_equal(sl_bulkhead_new(&c, &fc.clock, &b), SL_ECONFIG);
    c.max_concurrent = 1;
    c.max_queue = 5;
    c.max_wait_ms = 0;
    assert_int_equal(sl_bulkhead_new(&c, &fc.clock, &b), SL_ECONFIG);
}

static void test_fail_fast_without_queue(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_bulkhead *b = make(&fc, 2, 0, 100);
    assert_int_equal(sl_bulkhead_try_acquire(b), 0);
    assert_int_equal(sl_bulkhead_try_acquire(b), 0);
    assert_int_equal(sl_bulkhead_available(b), 0);
    assert_int_equal(sl_bulkhead_try_acquire(b), SL_EBUSY);
    slot s = {.last_status = 1};
    assert_int_equal(sl_bulkhead_enqueue(b, &s.w, slot_cb, &s), SL_ELIMIT);
    assert_int_equal(s.calls, 0);
    assert_int_equal(sl_bulkhead_release(b), 0);
    assert_int_equal(sl_bulkhead_available(b), 1);
    /* A free permit: enqueue says "take it directly". */
    assert_int_equal(sl_bulkhead_enqueue(b, &s.w, slot_cb, &s), SL_EAGAIN);
    assert_int_equal(sl_bulkhead_release(b), 0);
    /* A release with no permit held is refused and changes nothing. */
    assert_int_equal(sl_bulkhead_release(b), SL_ESTATE);
    assert_int_equal(sl_bulkhead_available(b), 2);
    sl_bulkhead_stats st;
    sl_bulkhead_stats_get(b, &st);
    assert_int_equal(st.acquired, 2);
    assert_int_equal(st.released, 2);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.in_flight, 0);
    sl_bulkhead_free(b);
}

static void test_fifo_grants(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_bulkhead *b = make(&fc, 1, 3, 100);
    int order[8], norder = 0;
    slot s[4];
    for (int i = 0; i < 4; i++)
        s[i] = (slot){.id = i, .last_status = 1, .b = b, .order = order, .norder = &norder};
    assert_int_equal(sl_bulkhead_try_acquire(b), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sl_bulkhead_enqueue(b, &s[i].w, slot_cb, &s[i]), 0);
    assert_int_equal(sl_bulkhead_enqueue(b, &s[3].w, slot_cb, &s[3]), SL_ELIMIT);
    assert_int_equal(sl_bulkhead_enqueue(b, &s[0].w, slot_cb, &s[0]), SL_EINVAL); /* queued */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sl_bulkhead_release(b), 0);
        assert_int_equal(norder, i + 1);
        assert_int_equal(order[i], i);
        assert_int_equal(s[i].last_status, 0);
        assert_int_equal(sl_bulkhead_available(b), 0); /* the permit went straight on */
    }
    assert_int_equal(sl_bulkhead_release(b), 0);
    assert_int_equal(sl_bulkhead_available(b), 1);
    sl_bulkhead_free(b);
}

static void test_no_overtaking(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_bulkhead *b = make(&fc, 1, 2, 100);
    slot s = {.last_status = 1};
    assert_int_equal(sl_bulkhead_try_acquire(b), 0);
    assert_int_equal(sl_bulkhead_enqueue(b, &s.w, slot_cb, &s), 0);
    /* A newcomer cannot take a permit while someone waits. */
    assert_int_equal(sl_bulkhead_try_acquire(b), SL_EBUSY);
    assert_int_equal(sl_bulkhead_release(b), 0);
    assert_int_equal(s.last_status, 0);
    assert_int_equal(sl_bulkhead_try_acquire(b), SL_EBUSY);
    assert_int_equal(sl_bulkhead_release(b), 0);
    sl_bulkhead_free(b);
}

static void test_expiry(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_bulkhead *b = make(&fc, 1, 4, 100);
    slot s[3];
    for (int i = 0; i < 3; i++)
        s[i] = (slot){.id = i, .last_status = 1};
    int64_t dl;
    assert_int_equal(sl_bulkhead_next_deadline(b, &dl), SL_ENOTFOUND);
    assert_int_equal(sl_bulkhead_try_acquire(b), 0);
    assert_int_equal(sl_bulkhead_enqueue(b, &s[0].w, slot_cb, &s[0]), 0);
    sl_fake_clock_advance(&fc, 40 * MS);
    assert_int_equal(sl_bulkhead_enqueue(b, &s[1].w, slot_cb, &s[1]), 0);
    assert_int_equal(sl_bulkhead_next_deadline(b, &dl), 0);
    assert_int_equal(dl, 100 * MS);
    sl_fake_clock_advance(&fc, 59 * MS);
    assert_int_equal(sl_bulkhead_expire(b), 0);
    sl_fake_clock_advance(&fc, 1 * MS);
    assert_int_equal(sl_bulkhead_expire(b), 1);
    assert_int_equal(s[0].last_status, SL_ETIMEDOUT);
    assert_int_equal(sl_bulkhead_next_deadline(b, &dl), 0);
    assert_int_equal(dl, 140 * MS);
    /* A release after s[1]'s deadline fails it rather than grant it a permit too late. */
    assert_int_equal(sl_bulkhead_enqueue(b, &s[2].w, slot_cb, &s[2]), 0); /* until 200 ms */
    sl_fake_clock_advance(&fc, 50 * MS);                                  /* 150 ms */
    assert_int_equal(sl_bulkhead_release(b), 0);
    assert_int_equal(s[1].last_status, SL_ETIMEDOUT);
    assert_int_equal(s[2].last_status, 0);
    assert_int_equal(sl_bulkhead_available(b), 0);
    assert_int_equal(sl_bulkhead_release(b), 0);
    sl_bulkhead_stats st;
    sl_bulkhead_stats_get(b, &st);
    assert_int_equal(st.expired, 2);
    assert_int_equal(st.granted, 1);
    assert_int_equal(st.in_flight, 0);
    sl_bulkhead_free(b);
}

static void test_cancel(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_bulkhead *b = make(&fc, 1, 4, 100);
    slot s[3];
    for (int i = 0; i < 3; i++)
        s[i] = (slot){.id = i, .last_status = 1};
    assert_int_equal(sl_bulkhead_try_acquire(b), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sl_bulkhead_enqueue(b, &s[i].w, slot_cb, &s[i]), 0);
    /* Cancel the middle one and the head; the permit goes to the one left. */
    assert_int_equal(sl_bulkhead_cancel(b, &s[1].w), 0);
    assert_int_equal(sl_bulkhead_cancel(b, &s[1].w), SL_ENOTFOUND);
    assert_int_equal(sl_bulkhead_cancel(b, &s[0].w), 0);
    assert_int_equal(sl_bulkhead_release(b), 0);
    assert_int_equal(s[0].calls + s[1].calls, 0);
    assert_int_equal(s[2].last_status, 0);
    /* A granted waiter is no longer cancellable: it holds a permit to release. */
    assert_int_equal(sl_bulkhead_cancel(b, &s[2].w), SL_ENOTFOUND);
    assert_int_equal(sl_bulkhead_release(b), 0);
    assert_int_equal(sl_bulkhead_available(b), 1);
    sl_bulkhead_free(b);
}

static void test_release_from_callback(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_bulkhead *b = make(&fc, 1, 100, 100);
    int order[100], norder = 0;
    static slot s[100];
    for (int i = 0; i < 100; i++) {
        s[i] = (slot){.id = i, .last_status = 1, .b = b, .order = order, .norder = &norder};
        s[i].release_in_cb = 1; /* each call "fails at once" and gives its permit back */
    }
    assert_int_equal(sl_bulkhead_try_acquire(b), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(sl_bulkhead_enqueue(b, &s[i].w, slot_cb, &s[i]), 0);
    /* One release drains the queue in order, iteratively, not by 100 nested calls. */
    assert_int_equal(sl_bulkhead_release(b), 0);
    assert_int_equal(norder, 100);
    for (int i = 0; i < 100; i++)
        assert_int_equal(order[i], i);
    assert_int_equal(sl_bulkhead_available(b), 1);
    sl_bulkhead_free(b);
}

/*
 * The client's pattern: whatever happens to a call (success, error, timeout,
 * the caller giving up while queued), every permit taken is given back.
 */
static void test_permits_always_returned(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_bulkhead *b = make(&fc, 3, 3, 50);
    slot q[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(sl_bulkhead_try_acquire(b), 0); /* success, error, timeout calls */
    for (int i = 0; i < 3; i++) {
        q[i] = (slot){.id = i, .last_status = 1};
        assert_int_equal(sl_bulkhead_enqueue(b, &q[i].w, slot_cb, &q[i]), 0);
    }
    assert_int_equal(sl_bulkhead_cancel(b, &q[0].w), 0); /* the client gave up */
    assert_int_equal(sl_bulkhead_release(b), 0);         /* call 0 succeeded */
    assert_int_equal(q[1].last_status, 0);
    assert_int_equal(sl_bulkhead_release(b), 0); /* call 1 failed with 503 */
    assert_int_equal(q[2].last_status, 0);
    sl_fake_clock_advance(&fc, 1000 * MS);
    assert_int_equal(sl_bulkhead_release(b), 0); /* call 2 timed out */
    assert_int_equal(sl_bulkhead_release(b), 0); /* granted q1 finished */
    assert_int_equal(sl_bulkhead_release(b), 0); /* granted q2 finished */
    sl_bulkhead_stats st;
    sl_bulkhead_stats_get(b, &st);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.acquired + st.granted, st.released);
    assert_int_equal(sl_bulkhead_available(b), 3);
    sl_bulkhead_free(b);
}

/* ---- Randomised invariants ---- */

enum { IDLE, QUEUED, HOLDING };

#define NW 24

typedef struct rmodel {
    sl_bulkhead *b;
    sl_fake_clock *fc;
    int st[NW];
    sl_bulkhead_waiter w[NW];
    uint64_t seq[NW], next_seq, last_granted_seq;
    int64_t enq_at[NW];
    int64_t max_wait;
    int holding, queued;
    int bad;
    int release_in_cb;
    sl_rand *r;
} rmodel;

typedef struct rslot {
    rmodel *m;
    int i;
} rslot;

static void rmodel_cb(sl_bulkhead_waiter *w, int status, void *data)
{
    rslot *s = data;
    rmodel *m = s->m;
    int i = s->i;
    if (w != &m->w[i] || m->st[i] != QUEUED) m->bad = __LINE__;
    m->queued--;
    if (status == 0) {
        /* FIFO: grants go out in enqueue order. */
        if (m->seq[i] < m->last_granted_seq) m->bad = __LINE__;
        m->last_granted_seq = m->seq[i];
        if (m->fc->mono_ns - m->enq_at[i] >= m->max_wait) m->bad = __LINE__; /* granted late */
        m->st[i] = HOLDING;
        m->holding++;
        if (m->release_in_cb && sl_rand_below(m->r, 4) == 0) {
            if (sl_bulkhead_release(m->b) != 0) m->bad = __LINE__;
            m->st[i] = IDLE;
            m->holding--;
        }
    } else {
        if (status != SL_ETIMEDOUT) m->bad = __LINE__;
        if (m->fc->mono_ns - m->enq_at[i] < m->max_wait) m->bad = __LINE__; /* expired early */
        m->st[i] = IDLE;
    }
}

static void run_bulkhead_sequence(uint64_t seed)
{
    sl_rand r;
    sl_rand_seed(&r, seed);
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    uint32_t max = 1 + (uint32_t)sl_rand_below(&r, 6);
    uint32_t qmax = (uint32_t)sl_rand_below(&r, 8);
    int64_t wait_ms = 1 + (int64_t)sl_rand_below(&r, 50);
    rmodel m = {.fc = &fc, .max_wait = wait_ms * MS, .r = &r};
    m.release_in_cb = (int)sl_rand_below(&r, 2);
    m.b = make(&fc, max, qmax, wait_ms);
    rslot slots[NW];
    for (int i = 0; i < NW; i++)
        slots[i] = (rslot){&m, i};
    int step;
    for (step = 0; step < 500 && !m.bad; step++) {
        int i = (int)sl_rand_below(&r, NW);
        switch (sl_rand_below(&r, 6)) {
        case 0: /* a new call, taking a permit or queueing */
            if (m.st[i] != IDLE) break;
            if (sl_bulkhead_try_acquire(m.b) == 0) {
                m.st[i] = HOLDING;
                m.holding++;
                break;
            }
            {
                int rc = sl_bulkhead_enqueue(m.b, &m.w[i], rmodel_cb, &slots[i]);
                if (rc == 0) {
                    m.st[i] = QUEUED;
                    m.queued++;
                    m.seq[i] = ++m.next_seq;
                    m.enq_at[i] = fc.mono_ns;
                } else if (rc != SL_ELIMIT) {
                    m.bad = __LINE__;
                }
            }
            break;
        case 1: /* a call finishes, whatever its outcome */
        case 2:
            if (m.st[i] != HOLDING) break;
            m.st[i] = IDLE;
            m.holding--;
            if (sl_bulkhead_release(m.b) != 0) m.bad = __LINE__;
            break;
        case 3: /* the caller gives up */
            if (m.st[i] != QUEUED) {
                if (sl_bulkhead_cancel(m.b, &m.w[i]) != SL_ENOTFOUND) m.bad = __LINE__;
                break;
            }
            if (sl_bulkhead_cancel(m.b, &m.w[i]) != 0) m.bad = __LINE__;
            m.st[i] = IDLE;
            m.queued--;
            break;
        case 4:
            sl_fake_clock_advance(&fc, (int64_t)sl_rand_below(&r, 30) * MS);
            break;
        default: { /* the caller's timer */
            int64_t dl;
            if (sl_bulkhead_next_deadline(m.b, &dl) == 0 && dl <= fc.mono_ns)
                (void)sl_bulkhead_expire(m.b);
            break;
        }
        }
        sl_bulkhead_stats st;
        sl_bulkhead_stats_get(m.b, &st);
        /* No leak, nothing negative: the bulkhead's count is exactly the permits held. */
        if ((int)st.in_flight != m.holding || st.in_flight > max) m.bad = __LINE__;
        if (st.in_flight + sl_bulkhead_available(m.b) != max) m.bad = __LINE__;
        if ((int)st.queued != m.queued || st.queued > qmax) m.bad = __LINE__;
        if (st.queued > 0 && st.in_flight != max) m.bad = __LINE__; /* nobody waits needlessly */
        if (st.acquired + st.granted != st.released + st.in_flight) m.bad = __LINE__;
    }
    /* Drain: cancel the waiters, finish the calls; every permit comes back. */
    for (int i = 0; i < NW && !m.bad; i++)
        if (m.st[i] == QUEUED && sl_bulkhead_cancel(m.b, &m.w[i]) == 0) {
            m.st[i] = IDLE;
            m.queued--;
        }
    for (int i = 0; i < NW && !m.bad; i++)
        if (m.st[i] == HOLDING) {
            m.st[i] = IDLE;
            m.holding--;
            if (sl_bulkhead_release(m.b) != 0) m.bad = __LINE__;
        }
    if (!m.bad && sl_bulkhead_available(m.b) != max) m.bad = __LINE__;
    sl_bulkhead_free(m.b);
    if (m.bad)
        fail_msg("seed %llu step %d: invariant at line %d broken", (unsigned long long)seed, step,
                 m.bad);
}

static void test_random_sequences(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 3000; seed++)
        run_bulkhead_sequence(seed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_fail_fast_without_queue),
        cmocka_unit_test(test_fifo_grants),
        cmocka_unit_test(test_no_overtaking),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_release_from_callback),
        cmocka_unit_test(test_permits_always_returned),
        cmocka_unit_test(test_random_sequences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
