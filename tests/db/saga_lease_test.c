/*
 * Saga leases with several instances on one database (SQLite and PostgreSQL): three drivers,
 * each with its own connection, executor and timer, standing for three order instances. Each
 * saga is driven by exactly one of them (checked on the executors and on saga_history); a
 * live owner renews its leases; once an owner stalls past its lease another instance's sweep
 * takes its sagas over and the stalled owner's late writes are refused (fencing) so it stops;
 * a child process that claims sagas and is killed with SIGKILL leaves them to another
 * instance at once (its owner is gone, the leases need not expire); a clean stop hands them
 * over at once. A fake clock drives every
 * lease, so nothing here waits.
 */
#include "db_harness.h"

#include <shoal/saga.h>

#include <signal.h>
#include <sys/wait.h>

#define T0       INT64_C(1795869296000)
#define LEASE_MS 3000
#define NSAGAS   30
#define MAXCALLS 128

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
        steps[i].timeout_ms = 60000; /* longer than any lease here: no timeout resends */
        steps[i].max_attempts = 3;
    }
    def = (sl_saga_def){.type = "checkout", .steps = steps, .n_steps = 3, .pivot = 1};
    return 0;
}

/* Executor whose calls all stay pending until the test answers them. */
typedef struct call_rec {
    char key[SL_SAGA_KEY_MAX];
    sl_saga_reply_cb done; /* NULL once answered */
    void *done_data;
} call_rec;

typedef struct inst {
    sl_db *db;
    sl_saga_driver *d;
    int n;
    call_rec calls[MAXCALLS];
    int t_armed;
    sl_saga_timer_cb t_cb;
    void *t_data;
} inst;

static int exec_send(void *ctx, const sl_saga_call *call, sl_saga_reply_cb done, void *dd)
{
    inst *x = ctx;
    assert_true(x->n < MAXCALLS);
    call_rec *c = &x->calls[x->n++];
    snprintf(c->key, sizeof c->key, "%s", call->idempotency_key);
    c->done = done;
    c->done_data = dd;
    return 0;
}

static int t_arm(void *ctx, int64_t delay_ms, sl_saga_timer_cb cb, void *data)
{
    (void)delay_ms;
    inst *x = ctx;
    x->t_armed = 1;
    x->t_cb = cb;
    x->t_data = data;
    return 0;
}

static void t_disarm(void *ctx)
{
    ((inst *)ctx)->t_armed = 0;
}

static void fire(inst *x)
{
    if (x->t_armed) x->t_cb(x->t_data);
}

static void inst_open(inst *x, const char *url, sl_fake_clock *fc, const char *owner,
                      size_t max_active)
{
    memset(x, 0, sizeof *x);
    harness_open_url(url, &x->db);
    sl_saga_driver_options o = {
        .db = x->db,
        .def = &def,
        .executor = {.ctx = x, .send = exec_send},
        .timer = {.ctx = x, .arm = t_arm, .disarm = t_disarm},
        .clock = &fc->clock,
        .seed = 3,
        .max_active = max_active,
        .lease_ms = LEASE_MS,
        .owner = owner,
    };
    HARNESS_OK(x->db, sl_saga_driver_new(&o, &x->d));
}

static void inst_close(inst *x)
{
    sl_saga_driver_free(x->d);
    sl_db_close(x->db);
}

/* Answers the oldest unanswered call of `x` with OK; returns 0 when none was pending. */
static int answer_one(inst *x)
{
    static const sl_saga_reply ok = {.kind = SL_SAGA_REPLY_OK, .data = "ok", .len = 2};
    for (int i = 0; i < x->n; i++) {
        if (x->calls[i].done == NULL) continue;
        sl_saga_reply_cb done = x->calls[i].done;
        x->calls[i].done = NULL;
        done(x->calls[i].done_data, &ok);
        return 1;
    }
    return 0;
}

static void create(sl_db *db, const char *id)
{
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, sl_saga_store_create(db, &def, id, "{\"order\":1}", T0));
    HARNESS_OK(db, sl_db_commit(db));
}

static int sent_by(const inst *x, const char *key)
{
    int n = 0;
    for (int i = 0; i < x->n; i++)
        n += strcmp(x->calls[i].key, key) == 0;
    return n;
}

static int64_t q(sl_db *db, const char *fmt, const char *arg)
{
    char sql[300];
    snprintf(sql, sizeof sql, fmt, arg);
    return harness_int(db, sql);
}

/* Three instances recover the same 30 unfinished sagas at once: each claims a third (their
 * tables hold 10), none can start or sweep another's, and replies answered round-robin drive
 * every saga to the end with each call sent by one instance only. */
static void test_concurrent_claim(void **state)
{
    (void)state;
    char url[600];
    sl_db *db = harness_fresh_lib(url);
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, T0 * 1000000);
    char id[16];
    for (int i = 0; i < NSAGAS; i++) {
        snprintf(id, sizeof id, "s%02d", i);
        create(db, id);
    }
    static inst in[3];
    const char *owners[3] = {"order-a", "order-b", "order-c"};
    for (int i = 0; i < 3; i++)
        inst_open(&in[i], url, &fc, owners[i], NSAGAS / 3);
    size_t resumed[3];
    for (int i = 0; i < 3; i++) {
        int rc = sl_saga_driver_recover(in[i].d, &resumed[i]);
        assert_true(rc == 0 || rc == SL_ELIMIT);
        assert_int_equal(resumed[i], NSAGAS / 3);
        assert_int_equal(in[i].n, NSAGAS / 3);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            q(db, "SELECT count(*) FROM saga_instances WHERE lease_owner = '%s'", owners[i]),
            NSAGAS / 3);
    /* Nobody steals: not due, leases live. */
    for (int i = 0; i < 3; i++) {
        size_t picked = 9;
        HARNESS_OK(in[i].db, sl_saga_driver_sweep(in[i].d, 0, &picked));
        assert_int_equal(picked, 0);
    }
    /* b cannot claim a saga a drives. */
    char held[SL_SAGA_ID_MAX + 1];
    snprintf(held, sizeof held, "%.*s", (int)strcspn(in[0].calls[0].key, ":"), in[0].calls[0].key);
    int64_t lv = 0;
    assert_int_equal(
        sl_saga_store_claim(in[1].db, held, "order-b", sl_clock_wall_ms(&fc.clock), LEASE_MS, &lv),
        SL_EBUSY);

    for (int progress = 1; progress;) {
        progress = 0;
        for (int i = 0; i < 3; i++)
            progress |= answer_one(&in[i]);
    }
    assert_int_equal(q(db, "SELECT count(*) FROM saga_instances WHERE status = '%s'", "completed"),
                     NSAGAS);
    assert_int_equal(in[0].n + in[1].n + in[2].n, NSAGAS * 3);
    /* Every call went out once, and all of a saga's calls from the same instance. */
    for (int s = 0; s < NSAGAS; s++) {
        int from = -1;
        for (int k = 0; k < 3; k++) {
            char key[SL_SAGA_KEY_MAX];
            snprintf(key, sizeof key, "s%02d:%s:action", s, steps[k].name);
            int total = 0;
            for (int i = 0; i < 3; i++) {
                int n = sent_by(&in[i], key);
                if (n > 0) {
                    if (from < 0) from = i;
                    assert_int_equal(from, i);
                }
                total += n;
            }
            assert_int_equal(total, 1);
        }
    }
    /* The step log agrees: one "sent" and one "replied" per saga and step. */
    assert_int_equal(harness_int(db, "SELECT count(*) FROM saga_history WHERE kind = 'sent'"),
                     NSAGAS * 3);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM (SELECT saga_id, step FROM saga_history "
                                     "WHERE kind = 'sent' OR kind = 'replied' GROUP BY saga_id, "
                                     "step, kind HAVING count(*) > 1) AS twice"),
                     0);
    /* Finished sagas gave their leases back. */
    assert_int_equal(harness_int(db, "SELECT count(*) FROM saga_instances WHERE lease_owner <> ''"),
                     0);
    for (int i = 0; i < 3; i++)
        inst_close(&in[i]);
    sl_db_close(db);
}

/* a renews while it is alive; once it stalls past its lease b's sweep takes the saga over and
 * re-sends the call in flight under the same key; a's late reply and timer are refused by the
 * fence, so a stops without writing or sending; b finishes the saga. */
static void test_takeover_and_fencing(void **state)
{
    (void)state;
    char url[600];
    sl_db *db = harness_fresh_lib(url);
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, T0 * 1000000);
    static inst a, b;
    inst_open(&a, url, &fc, "order-a", 0);
    inst_open(&b, url, &fc, "order-b", 0);
    create(db, "s1");
    HARNESS_OK(a.db, sl_saga_driver_start(a.d, "s1"));
    assert_int_equal(a.n, 1);
    assert_string_equal(a.calls[0].key, "s1:reserve:action");
    assert_int_equal(harness_int(db, "SELECT lease_version FROM saga_instances"), 1);

    /* Alive: a's timer renews the lease before it expires; b can take nothing. */
    assert_true(a.t_armed);
    sl_fake_clock_advance(&fc, INT64_C(1500) * 1000000);
    fire(&a);
    assert_int_equal(harness_int(db, "SELECT lease_until_ms FROM saga_instances"),
                     T0 + 1500 + LEASE_MS);
    sl_fake_clock_advance(&fc, INT64_C(2000) * 1000000); /* past the first expiry */
    size_t picked = 9;
    HARNESS_OK(b.db, sl_saga_driver_sweep(b.d, 600000, &picked));
    assert_int_equal(picked, 0);
    assert_int_equal(b.n, 0);

    /* a stalls (its timer does not run) past the renewed lease: b takes over. */
    sl_fake_clock_advance(&fc, INT64_C(1001) * 1000000);
    HARNESS_OK(b.db, sl_saga_driver_sweep(b.d, 600000, &picked));
    assert_int_equal(picked, 1);
    assert_int_equal(b.n, 1);
    assert_string_equal(b.calls[0].key, "s1:reserve:action"); /* the participant dedupes it */
    assert_int_equal(harness_int(db, "SELECT lease_version FROM saga_instances"), 2);
    assert_int_equal(
        q(db, "SELECT count(*) FROM saga_instances WHERE lease_owner = '%s'", "order-b"), 1);
    int64_t version = harness_int(db, "SELECT version FROM saga_instances");

    /* a wakes up: its reply is refused by the fence; it lets the saga go and sends nothing. */
    assert_int_equal(sl_saga_driver_active(a.d), 1);
    assert_int_equal(answer_one(&a), 1);
    assert_int_equal(sl_saga_driver_active(a.d), 0);
    assert_int_equal(a.n, 1);
    assert_int_equal(harness_int(db, "SELECT version FROM saga_instances"), version);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM saga_history WHERE kind = 'replied'"),
                     0);
    /* A direct write under the old lease version is refused too. */
    sl_rand r;
    sl_rand_seed(&r, 1);
    sl_saga_state st;
    sl_saga_output out;
    sl_saga_event tick = {.kind = SL_SAGA_EV_TIMER};
    assert_int_equal(sl_saga_store_apply_leased(a.db, &def, "s1", 1, &tick,
                                                sl_clock_wall_ms(&fc.clock) + 120000, &r, &st,
                                                &out),
                     SL_EBUSY);
    assert_int_equal(out.n_cmds, 0);
    assert_int_equal(harness_int(db, "SELECT version FROM saga_instances"), version);
    /* Nor can a claim it back while b's lease is live. */
    int64_t lv = 0;
    assert_int_equal(
        sl_saga_store_claim(a.db, "s1", "order-a", sl_clock_wall_ms(&fc.clock), LEASE_MS, &lv),
        SL_EBUSY);

    /* b drives it to the end. */
    while (answer_one(&b)) {
    }
    assert_int_equal(q(db, "SELECT count(*) FROM saga_instances WHERE status = '%s'", "completed"),
                     1);
    assert_int_equal(b.n, 3);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM saga_history WHERE kind = 'replied'"),
                     3);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM saga_history WHERE kind = 'sent' AND "
                                     "step = 'reserve'"),
                     2); /* a's first send and b's resend, one key */
    assert_int_equal(sl_saga_driver_active(b.d), 0);
    inst_close(&a);
    inst_close(&b);
    sl_db_close(db);
}

/* An instance that just stops: a child process claims five sagas, sends their first calls
 * and is killed with SIGKILL (no release, no reply). On PostgreSQL b leaves them alone while
 * the child lives (its owner lock is held); once it is dead b takes all five over at once,
 * without waiting out the leases (the server dropped the child's session and its owner lock;
 * on SQLite, one process per file, an owner outside this process is gone). */
static void test_killed_owner(void **state)
{
    (void)state;
    char url[600];
    sl_db *db = harness_fresh_lib(url);
    char id[16];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "k%d", i);
        create(db, id);
    }
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(60); /* gone by itself should the parent fail before killing it */
        close(fds[0]);
        sl_fake_clock cfc;
        sl_fake_clock_init(&cfc, T0 * 1000000);
        static inst c;
        inst_open(&c, url, &cfc, "order-killed", 0);
        for (int i = 0; i < 5; i++) {
            snprintf(id, sizeof id, "k%d", i);
            if (sl_saga_driver_start(c.d, id) != 0) _exit(2);
        }
        if (c.n != 5 || write(fds[1], "s", 1) != 1) _exit(3);
        for (;;)
            pause(); /* killed here */
    }
    close(fds[1]);
    char ready = 0;
    assert_int_equal(read(fds[0], &ready, 1), 1);
    close(fds[0]);
    assert_int_equal(
        q(db, "SELECT count(*) FROM saga_instances WHERE lease_owner = '%s'", "order-killed"), 5);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM saga_history WHERE kind = 'sent'"), 5);

    sl_fake_clock fc;
    sl_fake_clock_init(&fc, T0 * 1000000);
    static inst b;
    inst_open(&b, url, &fc, "order-b", 0);
    size_t picked = 9;
    if (harness_g.pg) { /* alive: its leases hold */
        HARNESS_OK(b.db, sl_saga_driver_sweep(b.d, 600000, &picked));
        assert_int_equal(picked, 0);
        size_t resumed = 9;
        HARNESS_OK(b.db, sl_saga_driver_recover(b.d, &resumed));
        assert_int_equal(resumed, 0);
        assert_int_equal(b.n, 0);
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* No clock advance: the leases are still live. A bounded wait for the server to see the
     * dead session go (PostgreSQL), then a restart's recovery takes them all. */
    size_t resumed = 0;
    for (int i = 0; i < 500 && resumed == 0; i++) {
        HARNESS_OK(b.db, sl_saga_driver_recover(b.d, &resumed));
        if (resumed == 0) usleep(10 * 1000);
    }
    assert_int_equal(resumed, 5);
    assert_int_equal(b.n, 5);
    while (answer_one(&b)) {
    }
    assert_int_equal(q(db, "SELECT count(*) FROM saga_instances WHERE status = '%s'", "completed"),
                     5);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM saga_history WHERE kind = 'replied'"),
                     15);
    inst_close(&b);
    sl_db_close(db);
}

/* A clean stop gives the leases back: another instance's sweep takes the saga at once, with
 * neither the lease nor the step timeout to wait out. */
static void test_clean_stop_hands_over(void **state)
{
    (void)state;
    char url[600];
    sl_db *db = harness_fresh_lib(url);
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, T0 * 1000000);
    static inst a, b;
    inst_open(&a, url, &fc, "order-a", 0);
    inst_open(&b, url, &fc, "order-b", 0);
    create(db, "s1");
    HARNESS_OK(a.db, sl_saga_driver_start(a.d, "s1"));
    size_t picked = 9;
    HARNESS_OK(b.db, sl_saga_driver_sweep(b.d, 600000, &picked));
    assert_int_equal(picked, 0);
    sl_saga_driver_free(a.d); /* drain: the call in flight completes into the void */
    a.d = NULL;
    assert_int_equal(answer_one(&a), 1);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM saga_instances WHERE lease_owner = ''"),
                     1);
    HARNESS_OK(b.db, sl_saga_driver_sweep(b.d, 600000, &picked));
    assert_int_equal(picked, 1);
    assert_int_equal(b.n, 1);
    assert_string_equal(b.calls[0].key, "s1:reserve:action");
    while (answer_one(&b)) {
    }
    assert_int_equal(q(db, "SELECT count(*) FROM saga_instances WHERE status = '%s'", "completed"),
                     1);
    inst_close(&a);
    inst_close(&b);
    sl_db_close(db);
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_claim),
        cmocka_unit_test(test_takeover_and_fencing),
        cmocka_unit_test(test_killed_owner),
        cmocka_unit_test(test_clean_stop_hands_over),
    };
    int rc = cmocka_run_group_tests(tests, setup, NULL);
    harness_done();
    return rc;
}
