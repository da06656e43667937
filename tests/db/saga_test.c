/*
 * Conformance suite for the saga store and driver on SQLite and PostgreSQL:
 * creation inside the caller's transaction (atomic with a business row),
 * load/apply/save round trips, optimistic concurrency between two
 * connections, listing unfinished sagas after a restart (with paging), stuck
 * and admin resume, history order and sanitised details, per-status counts,
 * and the driver with a scripted executor and a manual timer (start, retry on
 * the timer, a "crash" with a call in flight then recovery that re-sends
 * under the same idempotency key, metrics hook), plus the libuv timer.
 */
#include "db_harness.h"

#include <shoal/saga.h>

#include <uv.h>

#define T0 INT64_C(1795869296000)

static sl_saga_step_def steps[3];
static sl_saga_def def;

static int setup(void **state)
{
    (void)state;
    static const char *const names[] = {"reserve", "charge", "confirm"};
    for (int i = 0; i < 3; i++) {
        memset(&steps[i], 0, sizeof steps[i]);
        steps[i].name = names[i];
        sl_retry_config_default(&steps[i].retry);
        steps[i].retry.base_ms = 10;
        steps[i].retry.cap_ms = 100;
        steps[i].timeout_ms = 1000;
        steps[i].max_attempts = 3;
    }
    def = (sl_saga_def){.type = "checkout", .steps = steps, .n_steps = 3, .pivot = 1};
    return 0;
}

static void create(sl_db *db, const char *id)
{
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, sl_saga_store_create(db, &def, id, "{\"order\":1}", T0));
    HARNESS_OK(db, sl_db_commit(db));
}

/* Feeds one event through the store; returns sl_saga_store_apply's result. */
static int feed(sl_db *db, const char *id, sl_saga_event_kind kind, int64_t now, sl_saga_state *st)
{
    sl_saga_state cur;
    sl_saga_event ev = {.kind = kind, .data = SL_SLICE_LIT("reply")};
    if (kind == SL_SAGA_EV_OK || kind == SL_SAGA_EV_REFUSED || kind == SL_SAGA_EV_FAILED) {
        HARNESS_OK(db, sl_saga_store_load(db, &def, id, &cur));
        ev.step = cur.step;
        ev.call = cur.call;
        ev.attempt = cur.attempt;
    }
    sl_rand r;
    sl_rand_seed(&r, 1);
    sl_saga_output out;
    sl_saga_state tmp;
    return sl_saga_store_apply(db, &def, id, &ev, now, &r, st ? st : &tmp, &out);
}

static void test_create_in_caller_tx(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    HARNESS_OK(db, sl_db_exec(db, "CREATE TABLE orders (id TEXT PRIMARY KEY)"));
    /* Outside a transaction: refused. */
    assert_int_equal(sl_saga_store_create(db, &def, "o1", "{}", T0), SL_ESTATE);
    /* Rolled back with the business row. */
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, sl_db_exec(db, "INSERT INTO orders VALUES ('o1')"));
    HARNESS_OK(db, sl_saga_store_create(db, &def, "o1", "{}", T0));
    sl_db_rollback(db);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM saga_instances"), 0);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM saga_history"), 0);
    /* Committed with it. */
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, sl_db_exec(db, "INSERT INTO orders VALUES ('o1')"));
    HARNESS_OK(db, sl_saga_store_create(db, &def, "o1", "{\"order\":\"o1\"}", T0));
    HARNESS_OK(db, sl_db_commit(db));
    sl_saga_state st;
    HARNESS_OK(db, sl_saga_store_load(db, &def, "o1", &st));
    assert_string_equal(st.id, "o1");
    assert_int_equal(st.version, 1);
    assert_int_equal(st.status, SL_SAGA_RUNNING);
    assert_int_equal(st.phase, SL_SAGA_PHASE_IDLE);
    assert_int_equal(st.history_seq, 1);
    char *input;
    HARNESS_OK(db, sl_saga_store_input(db, "o1", &input));
    assert_string_equal(input, "{\"order\":\"o1\"}");
    free(input);
    /* Same id again: conflict; unknown ids: not found. */
    HARNESS_OK(db, sl_db_begin(db));
    assert_int_equal(sl_saga_store_create(db, &def, "o1", "{}", T0), SL_ECONFLICT);
    sl_db_rollback(db);
    assert_int_equal(sl_saga_store_load(db, &def, "nope", &st), SL_ENOTFOUND);
    assert_int_equal(sl_saga_store_input(db, "nope", &input), SL_ENOTFOUND);
    /* A saga of another type does not load under this definition. */
    sl_saga_def other = def;
    other.type = "refund";
    assert_int_equal(sl_saga_store_load(db, &other, "o1", &st), SL_EPARSE);
    sl_db_close(db);
}

static void test_round_trip(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    create(db, "s1");
    sl_saga_state st, back;
    HARNESS_OK(db, feed(db, "s1", SL_SAGA_EV_START, T0 + 1, &st));
    assert_int_equal(st.version, 2);
    HARNESS_OK(db, sl_saga_store_load(db, &def, "s1", &back));
    assert_memory_equal(&st, &back, sizeof st);
    HARNESS_OK(db, feed(db, "s1", SL_SAGA_EV_OK, T0 + 2, &st));
    HARNESS_OK(db, feed(db, "s1", SL_SAGA_EV_FAILED, T0 + 3, &st));
    assert_int_equal(st.phase, SL_SAGA_PHASE_WAITING);
    HARNESS_OK(db, sl_saga_store_load(db, &def, "s1", &back));
    assert_memory_equal(&st, &back, sizeof st);
    assert_int_equal(back.version, 4);
    /* next_wake_ms mirrors the state; an ignored event writes nothing. */
    assert_int_equal(harness_int(db, "SELECT next_wake_ms FROM saga_instances"), st.wake_at_ms);
    assert_int_equal(feed(db, "s1", SL_SAGA_EV_START, T0 + 4, NULL), SL_SAGA_IGNORED);
    assert_int_equal(harness_int(db, "SELECT version FROM saga_instances"), 4);
    assert_false(sl_db_in_tx(db));
    /* Corrupt stored state: an error, never a crash. */
    HARNESS_OK(db, sl_db_exec(db, "UPDATE saga_instances SET state = '{\"status\":1}'"));
    assert_int_equal(sl_saga_store_load(db, &def, "s1", &back), SL_EPARSE);
    sl_db_close(db);
}

static void test_optimistic_concurrency(void **state)
{
    (void)state;
    char url[600];
    sl_db *a = harness_fresh_lib(url);
    sl_db *b;
    harness_open_url(url, &b);
    create(a, "s1");
    sl_saga_state sa, sb;
    HARNESS_OK(a, sl_saga_store_load(a, &def, "s1", &sa));
    HARNESS_OK(b, sl_saga_store_load(b, &def, "s1", &sb));
    assert_int_equal(sa.version, sb.version);
    sl_rand r;
    sl_rand_seed(&r, 3);
    sl_saga_event start = {.kind = SL_SAGA_EV_START};
    sl_saga_output oa, ob;
    HARNESS_OK(a, sl_saga_apply(&def, &sa, &start, T0, &r, &oa));
    HARNESS_OK(b, sl_saga_apply(&def, &sb, &start, T0, &r, &ob));
    HARNESS_OK(a, sl_saga_store_save(a, &def, &sa, oa.hist, oa.n_hist, T0));
    assert_int_equal(sa.version, 2);
    assert_int_equal(sl_saga_store_save(b, &def, &sb, ob.hist, ob.n_hist, T0), SL_ECONFLICT);
    assert_int_equal(sb.version, 1);
    assert_false(sl_db_in_tx(b));
    /* The loser wrote nothing: one `sent` row, not two. */
    assert_int_equal(harness_int(a, "SELECT count(*) FROM saga_history"), 2);
    /* Reloading and applying again works. */
    HARNESS_OK(b, sl_saga_store_load(b, &def, "s1", &sb));
    assert_int_equal(sb.version, 2);
    sl_saga_event ok = {.kind = SL_SAGA_EV_OK, .step = 0, .attempt = 1};
    HARNESS_OK(b, sl_saga_apply(&def, &sb, &ok, T0, &r, &ob));
    HARNESS_OK(b, sl_saga_store_save(b, &def, &sb, ob.hist, ob.n_hist, T0));
    assert_int_equal(sb.version, 3);
    sl_db_close(b);
    sl_db_close(a);
}

static void drive_to_completed(sl_db *db, const char *id)
{
    HARNESS_OK(db, feed(db, id, SL_SAGA_EV_START, T0, NULL));
    for (int i = 0; i < 3; i++)
        HARNESS_OK(db, feed(db, id, SL_SAGA_EV_OK, T0 + i, NULL));
}

static void drive_to_stuck(sl_db *db, const char *id)
{
    HARNESS_OK(db, feed(db, id, SL_SAGA_EV_START, T0, NULL));
    HARNESS_OK(db, feed(db, id, SL_SAGA_EV_OK, T0, NULL));
    HARNESS_OK(db, feed(db, id, SL_SAGA_EV_OK, T0, NULL));
    HARNESS_OK(db, feed(db, id, SL_SAGA_EV_REFUSED, T0, NULL)); /* confirm, after the pivot */
}

static void test_list_after_restart(void **state)
{
    (void)state;
    char url[600];
    sl_db *db = harness_fresh_lib(url);
    static const char *const ids[] = {"a1", "a2", "a3", "a4", "a5", "a6"};
    for (int i = 0; i < 6; i++)
        create(db, ids[i]);
    drive_to_completed(db, "a2");
    drive_to_stuck(db, "a4");
    HARNESS_OK(db, feed(db, "a5", SL_SAGA_EV_START, T0, NULL));
    HARNESS_OK(db, feed(db, "a5", SL_SAGA_EV_OK, T0, NULL));
    HARNESS_OK(db, feed(db, "a5", SL_SAGA_EV_REFUSED, T0, NULL)); /* compensating */
    HARNESS_OK(db, feed(db, "a6", SL_SAGA_EV_START, T0, NULL));
    HARNESS_OK(db, feed(db, "a6", SL_SAGA_EV_REFUSED, T0, NULL)); /* compensated at once */
    sl_db_close(db);                                              /* "restart" */
    harness_open_url(url, &db);
    sl_saga_summary out[8];
    size_t n;
    HARNESS_OK(db, sl_saga_store_list(db, "checkout", SL_SAGA_LIST_UNFINISHED, NULL, out, 8, &n));
    assert_int_equal(n, 3);
    assert_string_equal(out[0].id, "a1");
    assert_string_equal(out[1].id, "a3");
    assert_string_equal(out[2].id, "a5");
    assert_int_equal(out[2].status, SL_SAGA_COMPENSATING);
    assert_int_equal(out[0].next_wake_ms, T0); /* created: due at once */
    assert_string_equal(out[0].type, "checkout");
    /* Keyset paging. */
    HARNESS_OK(db, sl_saga_store_list(db, NULL, SL_SAGA_LIST_UNFINISHED, NULL, out, 2, &n));
    assert_int_equal(n, 2);
    HARNESS_OK(db, sl_saga_store_list(db, NULL, SL_SAGA_LIST_UNFINISHED, out[1].id, out, 2, &n));
    assert_int_equal(n, 1);
    assert_string_equal(out[0].id, "a5");
    HARNESS_OK(db, sl_saga_store_list(db, "refund", SL_SAGA_LIST_UNFINISHED, NULL, out, 8, &n));
    assert_int_equal(n, 0);
    sl_db_close(db);
}

static void test_stuck_and_resume(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    create(db, "s1");
    drive_to_stuck(db, "s1");
    sl_saga_summary out[4];
    size_t n;
    HARNESS_OK(db, sl_saga_store_list(db, "checkout", SL_SAGA_LIST_STUCK, NULL, out, 4, &n));
    assert_int_equal(n, 1);
    assert_int_equal(out[0].status, SL_SAGA_STUCK);
    assert_string_equal(out[0].stuck_reason, "step confirm refused after the pivot: reply");
    assert_int_equal(out[0].next_wake_ms, 0);
    HARNESS_OK(db, sl_saga_store_list(db, NULL, SL_SAGA_LIST_UNFINISHED, NULL, out, 4, &n));
    assert_int_equal(n, 0);
    /* Only an admin resume moves it. */
    assert_int_equal(feed(db, "s1", SL_SAGA_EV_RESUME, T0, NULL), SL_SAGA_IGNORED);
    sl_saga_state st;
    HARNESS_OK(db, feed(db, "s1", SL_SAGA_EV_ADMIN_RESUME, T0 + 10, &st));
    assert_int_equal(st.status, SL_SAGA_RUNNING);
    assert_int_equal(st.phase, SL_SAGA_PHASE_INFLIGHT);
    HARNESS_OK(db, sl_saga_store_list(db, NULL, SL_SAGA_LIST_STUCK, NULL, out, 4, &n));
    assert_int_equal(n, 0);
    HARNESS_OK(db, sl_saga_store_list(db, NULL, SL_SAGA_LIST_UNFINISHED, NULL, out, 4, &n));
    assert_int_equal(n, 1);
    HARNESS_OK(db, feed(db, "s1", SL_SAGA_EV_OK, T0 + 11, &st));
    assert_int_equal(st.status, SL_SAGA_COMPLETED);
    sl_db_close(db);
}

typedef struct hist_rows {
    int n;
    uint32_t seq[32];
    char kind[32][16];
    char step[32][16];
    char detail[32][64];
} hist_rows;

static int collect(void *data, const sl_saga_history_row *row)
{
    hist_rows *h = data;
    if (h->n >= 32) return 1;
    h->seq[h->n] = row->seq;
    snprintf(h->kind[h->n], 16, "%s", row->kind);
    snprintf(h->step[h->n], 16, "%s", row->step);
    snprintf(h->detail[h->n], 64, "%s", row->detail);
    h->n++;
    return 0;
}

static void test_history_order(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    create(db, "s1");
    HARNESS_OK(db, feed(db, "s1", SL_SAGA_EV_START, T0, NULL));
    HARNESS_OK(db, feed(db, "s1", SL_SAGA_EV_OK, T0 + 1, NULL));
    /* A refusal whose body is not valid UTF-8 and holds a NUL: stored sanitised. */
    sl_saga_state cur;
    HARNESS_OK(db, sl_saga_store_load(db, &def, "s1", &cur));
    static const char body[] = "no\xff\x00money";
    sl_saga_event ev = {.kind = SL_SAGA_EV_REFUSED,
                        .step = cur.step,
                        .attempt = cur.attempt,
                        .data = {body, sizeof body - 1}};
    sl_rand r;
    sl_rand_seed(&r, 1);
    sl_saga_output out;
    HARNESS_OK(db, sl_saga_store_apply(db, &def, "s1", &ev, T0 + 2, &r, &cur, &out));
    HARNESS_OK(db, feed(db, "s1", SL_SAGA_EV_OK, T0 + 3, NULL));
    hist_rows h = {0};
    HARNESS_OK(db, sl_saga_store_history(db, "s1", 0, 0, collect, &h));
    static const char *const kinds[] = {"created", "sent", "replied", "sent",
                                        "refused", "sent", "replied", "compensated"};
    static const char *const stepn[] = {"",       "reserve", "reserve", "charge",
                                        "charge", "reserve", "reserve", ""};
    assert_int_equal(h.n, 8);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(h.seq[i], (uint32_t)i + 1);
        assert_string_equal(h.kind[i], kinds[i]);
        assert_string_equal(h.step[i], stepn[i]);
    }
    assert_string_equal(h.detail[1], "s1:reserve:action");
    assert_string_equal(h.detail[4], "no??money");
    assert_string_equal(h.detail[5], "s1:reserve:compensation");
    /* Paging from a seq, and a limit. */
    hist_rows tail = {0};
    HARNESS_OK(db, sl_saga_store_history(db, "s1", 5, 2, collect, &tail));
    assert_int_equal(tail.n, 2);
    assert_int_equal(tail.seq[0], 6);
    assert_int_equal(tail.seq[1], 7);
    sl_db_close(db);
}

static void count_cb(void *data, const char *type, sl_saga_status status, int64_t count)
{
    int64_t *c = data;
    assert_string_equal(type, "checkout");
    c[status] += count;
}

static void test_count(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    create(db, "c1");
    create(db, "c2");
    create(db, "c3");
    drive_to_completed(db, "c2");
    drive_to_stuck(db, "c3");
    int64_t c[SL_SAGA_STATUS_COUNT] = {0};
    HARNESS_OK(db, sl_saga_store_count(db, count_cb, c));
    assert_int_equal(c[SL_SAGA_RUNNING], 1);
    assert_int_equal(c[SL_SAGA_COMPLETED], 1);
    assert_int_equal(c[SL_SAGA_STUCK], 1);
    assert_int_equal(c[SL_SAGA_COMPENSATED], 0);
    sl_db_close(db);
}

/* ---- driver ---- */

typedef struct call_rec {
    char key[SL_SAGA_KEY_MAX];
    uint32_t attempt;
    sl_saga_reply_cb done;
    void *done_data;
} call_rec;

/* Scripted executor: replies synchronously with script[i] for call i, or keeps the call
 * pending (script 'p') for the test to answer. 'o' ok, 'r' refused, 'f' failed, 'e' send
 * error. */
typedef struct exec {
    const char *script;
    int n;
    call_rec calls[32];
    char input[64];
} exec;

static int exec_send(void *ctx, const sl_saga_call *call, sl_saga_reply_cb done, void *dd)
{
    exec *x = ctx;
    assert_true(x->n < 32);
    char action = x->script[x->n] ? x->script[x->n] : 'p';
    call_rec *c = &x->calls[x->n++];
    snprintf(c->key, sizeof c->key, "%s", call->idempotency_key);
    snprintf(x->input, sizeof x->input, "%s", call->input_json);
    c->attempt = call->attempt;
    c->done = done;
    c->done_data = dd;
    sl_saga_reply r = {.data = "x", .len = 1};
    switch (action) {
    case 'o':
        r.kind = SL_SAGA_REPLY_OK;
        break;
    case 'r':
        r.kind = SL_SAGA_REPLY_REFUSED;
        break;
    case 'f':
        r.kind = SL_SAGA_REPLY_FAILED;
        break;
    case 'e':
        c->done = NULL;
        return SL_EUNAVAIL;
    default:
        return 0; /* pending */
    }
    c->done = NULL;
    done(dd, &r); /* synchronous reply, from inside send() */
    return 0;
}

typedef struct manual_timer {
    int armed;
    int64_t delay;
    sl_saga_timer_cb cb;
    void *data;
} manual_timer;

static int mt_arm(void *ctx, int64_t delay_ms, sl_saga_timer_cb cb, void *data)
{
    manual_timer *t = ctx;
    t->armed = 1;
    t->delay = delay_ms;
    t->cb = cb;
    t->data = data;
    return 0;
}

static void mt_disarm(void *ctx)
{
    ((manual_timer *)ctx)->armed = 0;
}

typedef struct trans_log {
    int n;
    sl_saga_status from[16], to[16];
} trans_log;

static void on_transition(void *data, const char *type, sl_saga_status from, sl_saga_status to)
{
    trans_log *l = data;
    assert_string_equal(type, "checkout");
    if (l->n < 16) {
        l->from[l->n] = from;
        l->to[l->n] = to;
        l->n++;
    }
}

static sl_saga_driver *driver(sl_db *db, exec *x, manual_timer *t, sl_fake_clock *fc,
                              trans_log *log)
{
    sl_saga_driver_options o = {
        .db = db,
        .def = &def,
        .executor = {.ctx = x, .send = exec_send},
        .timer = {.ctx = t, .arm = mt_arm, .disarm = mt_disarm},
        .clock = &fc->clock,
        .seed = 5,
        .metrics_cb = on_transition,
        .metrics_data = log,
    };
    sl_saga_driver *d;
    HARNESS_OK(db, sl_saga_driver_new(&o, &d));
    return d;
}

static sl_saga_status status_of(sl_db *db, const char *id)
{
    sl_saga_state st;
    HARNESS_OK(db, sl_saga_store_load(db, &def, id, &st));
    return st.status;
}

static void test_driver_runs_and_recovers(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, T0 * 1000000);
    manual_timer t = {0};
    trans_log log = {0};
    /* reserve ok (sync), charge fails (sync), retry is left pending. */
    exec x = {.script = "ofp"};
    sl_saga_driver *d = driver(db, &x, &t, &fc, &log);
    create(db, "d1");
    HARNESS_OK(db, sl_saga_driver_start(d, "d1"));
    assert_int_equal(x.n, 2);
    assert_string_equal(x.calls[0].key, "d1:reserve:action");
    assert_string_equal(x.calls[1].key, "d1:charge:action");
    assert_string_equal(x.input, "{\"order\":1}");
    assert_int_equal(sl_saga_driver_active(d), 1);
    assert_true(t.armed);
    assert_in_range(t.delay, 0, 10); /* the first backoff */
    sl_fake_clock_advance(&fc, (t.delay + 1) * 1000000);
    t.cb(t.data);
    assert_int_equal(x.n, 3);
    assert_string_equal(x.calls[2].key, "d1:charge:action");
    assert_int_equal(x.calls[2].attempt, 2);
    assert_true(t.armed);
    assert_int_equal(t.delay, 1000); /* its timeout */

    /* "Crash" with the call in flight: the driver goes, a new one recovers from the DB. */
    call_rec orphan = x.calls[2];
    sl_saga_driver_free(d);
    sl_saga_reply late = {.kind = SL_SAGA_REPLY_OK};
    orphan.done(orphan.done_data, &late); /* a reply after the crash goes nowhere */
    exec y = {.script = "oo"};
    d = driver(db, &y, &t, &fc, &log);
    size_t resumed = 0;
    HARNESS_OK(db, sl_saga_driver_recover(d, &resumed));
    assert_int_equal(resumed, 1);
    assert_int_equal(y.n, 2);
    /* Re-sent under the same key (a new attempt), then the next step. */
    assert_string_equal(y.calls[0].key, "d1:charge:action");
    assert_int_equal(y.calls[0].attempt, 3);
    assert_string_equal(y.calls[1].key, "d1:confirm:action");
    assert_int_equal(status_of(db, "d1"), SL_SAGA_COMPLETED);
    assert_int_equal(sl_saga_driver_active(d), 0);
    assert_false(t.armed);
    /* Metrics: new → running, running → completed. */
    assert_int_equal(log.n, 2);
    assert_int_equal(log.from[0], SL_SAGA_STATUS_COUNT);
    assert_int_equal(log.to[0], SL_SAGA_RUNNING);
    assert_int_equal(log.from[1], SL_SAGA_RUNNING);
    assert_int_equal(log.to[1], SL_SAGA_COMPLETED);

    /* A refusal at the pivot compensates; a send error counts as a transient failure. */
    exec z = {.script = "ore"};
    sl_saga_driver_free(d);
    d = driver(db, &z, &t, &fc, &log);
    create(db, "d2");
    HARNESS_OK(db, sl_saga_driver_start(d, "d2"));
    assert_int_equal(z.n, 3);
    assert_string_equal(z.calls[2].key, "d2:reserve:compensation");
    assert_int_equal(status_of(db, "d2"), SL_SAGA_COMPENSATING);
    assert_true(t.armed);
    sl_fake_clock_advance(&fc, (t.delay + 1) * 1000000);
    z.script = "oreo";
    t.cb(t.data);
    assert_int_equal(z.n, 4);
    assert_int_equal(status_of(db, "d2"), SL_SAGA_COMPENSATED);

    /* Stuck then admin resume, with an asynchronous reply. */
    exec w = {.script = "oorp"};
    sl_saga_driver_free(d);
    d = driver(db, &w, &t, &fc, &log);
    create(db, "d3");
    HARNESS_OK(db, sl_saga_driver_start(d, "d3"));
    assert_int_equal(status_of(db, "d3"), SL_SAGA_STUCK);
    assert_int_equal(sl_saga_driver_active(d), 0);
    assert_int_equal(sl_saga_driver_resume_stuck(d, "d2"), SL_ESTATE);
    HARNESS_OK(db, sl_saga_driver_resume_stuck(d, "d3"));
    assert_int_equal(w.n, 4);
    assert_string_equal(w.calls[3].key, "d3:confirm:action");
    assert_int_equal(status_of(db, "d3"), SL_SAGA_RUNNING);
    sl_saga_reply ok = {.kind = SL_SAGA_REPLY_OK, .data = "done", .len = 4};
    w.calls[3].done(w.calls[3].done_data, &ok);
    assert_int_equal(status_of(db, "d3"), SL_SAGA_COMPLETED);
    sl_saga_driver_free(d);
    sl_db_close(db);
}

static void uv_fired(void *data)
{
    int *n = data;
    (*n)++;
}

static void test_uv_timer(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_saga_uv_timer t;
    sl_saga_timer vt;
    assert_int_equal(sl_saga_uv_timer_init(&t, &loop, &vt), 0);
    int n = 0;
    assert_int_equal(vt.arm(vt.ctx, 5000, uv_fired, &n), 0);
    assert_int_equal(vt.arm(vt.ctx, 1, uv_fired, &n), 0); /* re-arming replaces */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(n, 1);
    assert_int_equal(vt.arm(vt.ctx, 1, uv_fired, &n), 0);
    vt.disarm(vt.ctx);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(n, 1);
    sl_saga_uv_timer_close(&t);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_metrics(void **state)
{
    (void)state;
    sl_metrics *reg;
    assert_int_equal(sl_metrics_new(1, &reg), 0);
    sl_saga_metrics m;
    assert_int_equal(sl_saga_metrics_init(&m, reg, 0), 0);
    sl_saga_metrics_set(&m, "checkout", SL_SAGA_STUCK, 2);
    sl_saga_metrics_hook(&m, "checkout", SL_SAGA_STATUS_COUNT, SL_SAGA_RUNNING);
    sl_saga_metrics_hook(&m, "checkout", SL_SAGA_RUNNING, SL_SAGA_COMPLETED);
    char *text;
    size_t len;
    assert_int_equal(sl_metrics_render(reg, &text, &len), 0);
    assert_non_null(strstr(text, "saga_instances{type=\"checkout\",status=\"stuck\"} 2"));
    assert_non_null(strstr(text, "saga_instances{type=\"checkout\",status=\"running\"} 0"));
    assert_non_null(strstr(text, "saga_instances{type=\"checkout\",status=\"completed\"} 1"));
    assert_non_null(
        strstr(text, "saga_transitions_total{type=\"checkout\",from=\"new\",to=\"running\"} 1"));
    assert_non_null(strstr(
        text, "saga_transitions_total{type=\"checkout\",from=\"running\",to=\"completed\"} 1"));
    free(text);
    sl_metrics_free(reg);
}

static sl_saga_driver *driver_reg(sl_db *db, exec *x, manual_timer *t, sl_fake_clock *fc,
                                  sl_saga_registry *reg)
{
    sl_saga_driver_options o = {
        .db = db,
        .def = &def,
        .executor = {.ctx = x, .send = exec_send},
        .timer = {.ctx = t, .arm = mt_arm, .disarm = mt_disarm},
        .clock = &fc->clock,
        .seed = 9,
        .registry = reg,
        .lease_ms = 600000, /* renewals far beyond the backoffs this test reads off the timer */
    };
    sl_saga_driver *d;
    HARNESS_OK(db, sl_saga_driver_new(&o, &d));
    return d;
}

/* Two drivers of one process (two workers) over one database and one registry: the sweep picks
 * up a saga whose start never happened, the other driver can neither sweep nor start it, a
 * participant's return wakes the waiting retry at once, and an admin abort from the other
 * driver compensates. */
static void test_sweep_registry_wake_abort(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        steps[i].max_attempts = 0; /* transient failures never park */
    sl_db *db = harness_fresh_lib(NULL);
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, T0 * 1000000);
    sl_saga_registry *reg;
    assert_int_equal(sl_saga_registry_new(&reg), 0);
    manual_timer ta = {0}, tb = {0};
    exec xa = {.script = "pfpppp"}, xb = {.script = "o"};
    sl_saga_driver *a = driver_reg(db, &xa, &ta, &fc, reg);
    sl_saga_driver *b = driver_reg(db, &xb, &tb, &fc, reg);

    create(db, "s1"); /* committed with its order, but sl_saga_driver_start never ran */
    size_t picked = 9;
    HARNESS_OK(db, sl_saga_driver_sweep(a, 1000, &picked));
    assert_int_equal(picked, 0); /* not overdue yet: maybe a driver is about to start it */
    sl_fake_clock_advance(&fc, INT64_C(2000) * 1000000);
    HARNESS_OK(db, sl_saga_driver_sweep(a, 1000, &picked));
    assert_int_equal(picked, 1);
    assert_int_equal(xa.n, 1);
    assert_string_equal(xa.calls[0].key, "s1:reserve:action");
    assert_int_equal(sl_saga_registry_count(reg), 1);
    /* The registry remembers when the saga was picked up (the age gauge of the order service). */
    int64_t picked_ms = sl_clock_wall_ms(&fc.clock);
    assert_int_equal(sl_saga_registry_oldest_ms(reg), picked_ms);
    /* The other worker's driver never drives it at the same time. */
    HARNESS_OK(db, sl_saga_driver_sweep(b, 0, &picked));
    assert_int_equal(picked, 0);
    assert_int_equal(sl_saga_driver_start(b, "s1"), SL_EBUSY);
    assert_int_equal(xb.n, 0);
    assert_int_equal(sl_saga_driver_active(b), 0);

    /* reserve ok → charge fails (payment down): a retry waits out its backoff... */
    steps[1].retry.base_ms = 60000;
    steps[1].retry.cap_ms = 60000;
    steps[1].retry.jitter = SL_RETRY_JITTER_DECORRELATED;
    sl_saga_reply ok = {.kind = SL_SAGA_REPLY_OK, .data = "ok", .len = 2};
    xa.calls[0].done(xa.calls[0].done_data, &ok);
    assert_int_equal(xa.n, 2);
    assert_true(ta.armed);
    assert_int_equal(ta.delay, 60000);
    /* ...until payment answers another call: the waiting saga retries now. */
    size_t woken = 0;
    sl_saga_driver_wake(a, 1u << 0, &woken); /* reserve's participant: not this one */
    assert_int_equal(woken, 0);
    sl_saga_driver_wake(a, 1u << 1, &woken);
    assert_int_equal(woken, 1);
    assert_int_equal(xa.n, 3);
    assert_string_equal(xa.calls[2].key, "s1:charge:action");
    assert_int_equal(xa.calls[2].attempt, 2);
    sl_saga_driver_wake(a, 1u << 1, &woken); /* in flight now: nothing to wake */
    assert_int_equal(woken, 0);
    /* The charge (this definition's pivot, not compensable) is in flight: no abort. */
    assert_int_equal(sl_saga_driver_abort(b, "s1"), SL_ESTATE);
    xa.calls[2].done(xa.calls[2].done_data, &ok);
    assert_int_equal(xa.n, 4); /* confirm, pending */
    xa.calls[3].done(xa.calls[3].done_data, &ok);
    assert_int_equal(status_of(db, "s1"), SL_SAGA_COMPLETED);
    assert_int_equal(sl_saga_registry_count(reg), 0);
    assert_int_equal(sl_saga_registry_oldest_ms(reg), 0);       /* none tracked */
    assert_int_equal(sl_saga_driver_abort(b, "s1"), SL_ESTATE); /* completed */

    /* Abort from the other driver while `a` drives the saga: b sends the compensation. */
    xa.script = "pfpppppp";
    xa.n = 4;
    create(db, "s2");
    HARNESS_OK(db, sl_saga_driver_start(a, "s2"));
    assert_int_equal(xa.n, 5);
    assert_string_equal(xa.calls[4].key, "s2:reserve:action");
    HARNESS_OK(db, sl_saga_driver_abort(b, "s2"));
    assert_int_equal(xb.n, 1);
    assert_string_equal(xb.calls[0].key, "s2:reserve:compensation");
    assert_int_equal(status_of(db, "s2"), SL_SAGA_COMPENSATED);
    HARNESS_OK(db, sl_saga_driver_abort(b, "s2")); /* again: nothing more to do */
    assert_int_equal(xb.n, 1);
    /* The reserve's late reply at `a` is stale; `a` lets the saga go. */
    xa.calls[4].done(xa.calls[4].done_data, &ok);
    assert_int_equal(sl_saga_driver_active(a), 0);
    assert_int_equal(sl_saga_registry_count(reg), 0);
    assert_int_equal(sl_saga_driver_abort(b, "nope"), SL_ENOTFOUND);

    sl_saga_driver_free(a);
    sl_saga_driver_free(b);
    sl_saga_registry_free(reg);
    sl_db_close(db);
    steps[1].retry.base_ms = 10;
    steps[1].retry.cap_ms = 100;
    steps[1].retry.jitter = SL_RETRY_JITTER_FULL;
    for (int i = 0; i < 3; i++)
        steps[i].max_attempts = 3;
}

/* The admin listing: filters by status and type, pages, and the current step. */
static void test_page(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    create(db, "p1");
    create(db, "p2");
    drive_to_completed(db, "p2");
    sl_saga_summary rows[4];
    size_t n = 0;
    int64_t total = 0;
    HARNESS_OK(db, sl_saga_store_page(db, NULL, SL_SAGA_STATUS_COUNT, 1, 4, rows, 4, &n, &total));
    assert_int_equal(n, 2);
    assert_int_equal(total, 2);
    HARNESS_OK(db,
               sl_saga_store_page(db, "checkout", SL_SAGA_COMPLETED, 1, 4, rows, 4, &n, &total));
    assert_int_equal(n, 1);
    assert_int_equal(total, 1);
    assert_string_equal(rows[0].id, "p2");
    assert_int_equal(rows[0].step, 2);
    HARNESS_OK(db,
               sl_saga_store_page(db, "cancel", SL_SAGA_STATUS_COUNT, 1, 4, rows, 4, &n, &total));
    assert_int_equal(n, 0);
    HARNESS_OK(db, sl_saga_store_page(db, NULL, SL_SAGA_STATUS_COUNT, 2, 1, rows, 4, &n, &total));
    assert_int_equal(n, 1);
    assert_int_equal(total, 2);
    sl_db_close(db);
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_in_caller_tx),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_optimistic_concurrency),
        cmocka_unit_test(test_list_after_restart),
        cmocka_unit_test(test_stuck_and_resume),
        cmocka_unit_test(test_history_order),
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_driver_runs_and_recovers),
        cmocka_unit_test(test_uv_timer),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_sweep_registry_wake_abort),
        cmocka_unit_test(test_page),
    };
    int rc = cmocka_run_group_tests(tests, setup, NULL);
    harness_done();
    return rc;
}
