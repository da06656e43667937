/*
 * sl_db_pool on its own, on a real libuv loop: on PostgreSQL a task waiting
 * for the server is suspended and the next one starts (on SQLite each task
 * runs to its end before the next); a full pool queues, then refuses
 * (SL_EBUSY); a task started inside another task (an in-process call) nests;
 * a task that leaves a transaction open has it rolled back; a lost connection
 * is replaced for the next task; freeing the pool finishes a suspended task
 * with blocking I/O and hands queued ones SL_ECLOSED.
 */
#include "db_harness.h"

static char g_url[600];
static char g_log[64]; /* what happened, in order: "s1 e1 ..." */

static void note(const char *what)
{
    size_t n = strlen(g_log);
    snprintf(g_log + n, sizeof g_log - n, "%s%s", n ? " " : "", what);
}

static const char *sleep_sql(void)
{
    return harness_g.pg ? "SELECT pg_sleep(0.3)" : "SELECT 1";
}

static int run_sql(sl_db *db, const char *sql)
{
    sl_db_stmt *st;
    SL_DB_PREP(db, sql, st);
    int rc;
    while ((rc = sl_db_step(st)) == SL_DB_ROW) {
    }
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

typedef struct task {
    sl_db_pool *pool;
    const char *start, *end; /* notes */
    int rc;                  /* the task's own outcome */
    int got_rc;              /* the rc the pool handed it */
    int ran;
    int db_null;
} task;

static void sleeper(void *arg, sl_db *db, int rc)
{
    task *t = arg;
    t->ran = 1;
    t->got_rc = rc;
    t->db_null = db == NULL;
    if (!db) return;
    note(t->start);
    assert_ptr_equal(sl_db_pool_current(t->pool), db);
    t->rc = run_sql(db, sleep_sql());
    assert_ptr_equal(sl_db_pool_current(t->pool), db); /* the same task after its wait */
    note(t->end);
}

static sl_db_pool *new_pool(uv_loop_t *loop, unsigned size, unsigned queue_max)
{
    sl_db_pool_config c = {.url = g_url, .size = size, .queue_max = queue_max};
    sl_db_pool *p = NULL;
    assert_int_equal(sl_db_pool_new(loop, &c, &p), 0);
    return p;
}

static void free_pool(uv_loop_t *loop, sl_db_pool *p)
{
    sl_db_pool_free(p);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0); /* the socket watchers close */
}

static void test_waiting_task_lets_the_next_run(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_db_pool *p = new_pool(&loop, 2, 0);
    g_log[0] = '\0';
    task a = {.pool = p, .start = "s1", .end = "e1"}, b = {.pool = p, .start = "s2", .end = "e2"};
    assert_int_equal(sl_db_pool_run(p, sleeper, &a), 0);
    assert_null(sl_db_pool_current(p)); /* back on the loop's own stack */
    assert_int_equal(sl_db_pool_run(p, sleeper, &b), 0);
    if (harness_g.pg) assert_string_equal(g_log, "s1 s2"); /* both in flight at once */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    if (harness_g.pg) {
        assert_true(strcmp(g_log, "s1 s2 e1 e2") == 0 || strcmp(g_log, "s1 s2 e2 e1") == 0);
    } else {
        assert_string_equal(g_log, "s1 e1 s2 e2");
    }
    sl_db_pool_stats st;
    sl_db_pool_get_stats(p, &st);
    assert_int_equal(st.started, 2);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.open, harness_g.pg ? 2 : 1); /* SQLite: the first slot was free again */
    if (harness_g.pg) assert_true(st.waits >= 2);
    free_pool(&loop, p);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_full_pool_queues_then_refuses(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_db_pool *p = new_pool(&loop, 1, 1);
    g_log[0] = '\0';
    task a = {.pool = p, .start = "s1", .end = "e1"}, b = {.pool = p, .start = "s2", .end = "e2"},
         c = {.pool = p, .start = "s3", .end = "e3"};
    assert_int_equal(sl_db_pool_run(p, sleeper, &a), 0);
    assert_int_equal(sl_db_pool_run(p, sleeper, &b), 0);
    int rc = sl_db_pool_run(p, sleeper, &c);
    sl_db_pool_stats st;
    sl_db_pool_get_stats(p, &st);
    if (harness_g.pg) { /* a waits on the server: b is queued, c refused */
        assert_int_equal(rc, SL_EBUSY);
        assert_int_equal(st.waiting, 1);
        assert_int_equal(st.refused, 1);
    } else { /* each ran to its end at once */
        assert_int_equal(rc, 0);
        assert_int_equal(st.refused, 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(a.ran && b.ran);
    assert_int_equal(c.ran, !harness_g.pg);
    assert_string_equal(g_log, harness_g.pg ? "s1 e1 s2 e2" : "s1 e1 s2 e2 s3 e3");
    sl_db_pool_get_stats(p, &st);
    assert_int_equal(st.open, 1);
    free_pool(&loop, p);
    assert_int_equal(uv_loop_close(&loop), 0);
}

typedef struct outer {
    sl_db_pool *mine, *other;
    task inner;
    int ok;
} outer;

static void outer_task(void *arg, sl_db *db, int rc)
{
    outer *o = arg;
    assert_int_equal(rc, 0);
    note("so");
    /* An in-process call: the other pool's task starts inside this one. */
    assert_int_equal(sl_db_pool_run(o->other, sleeper, &o->inner), 0);
    assert_ptr_equal(sl_db_pool_current(o->mine), db); /* this task again, not the inner one */
    assert_null(sl_db_pool_current(o->other));
    o->ok = run_sql(db, sleep_sql()) == 0;
    note("eo");
}

static void test_task_inside_a_task(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_db_pool *p1 = new_pool(&loop, 1, 0), *p2 = new_pool(&loop, 1, 0);
    g_log[0] = '\0';
    outer o = {.mine = p1, .other = p2, .inner = {.pool = p2, .start = "si", .end = "ei"}};
    assert_int_equal(sl_db_pool_run(p1, outer_task, &o), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(o.ok);
    assert_int_equal(o.inner.rc, 0);
    if (harness_g.pg)
        assert_true(strcmp(g_log, "so si eo ei") == 0 || strcmp(g_log, "so si ei eo") == 0);
    else
        assert_string_equal(g_log, "so si ei eo");
    free_pool(&loop, p2);
    free_pool(&loop, p1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void leave_open(void *arg, sl_db *db, int rc)
{
    int *out = arg;
    assert_int_equal(rc, 0);
    *out = sl_db_begin(db);
    if (*out == 0) *out = run_sql(db, "INSERT INTO pool_rows (v) VALUES ('x')");
    if (*out == 0) *out = run_sql(db, sleep_sql());
    /* returns with the transaction open */
}

static void test_open_transaction_is_rolled_back(void **state)
{
    (void)state;
    sl_db *check = harness_fresh(g_url);
    assert_int_equal(sl_db_exec(check, "CREATE TABLE pool_rows (v TEXT NOT NULL)"), 0);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_db_pool *p = new_pool(&loop, 1, 4);
    int r1 = -1, r2 = -1;
    assert_int_equal(sl_db_pool_run(p, leave_open, &r1), 0);
    assert_int_equal(sl_db_pool_run(p, leave_open, &r2), 0); /* same connection, after r1 */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r1, 0);
    assert_int_equal(r2, 0); /* its begin did not meet r1's transaction */
    assert_int_equal(harness_int(check, "SELECT count(*) FROM pool_rows"), 0);
    free_pool(&loop, p);
    assert_int_equal(uv_loop_close(&loop), 0);
    sl_db_close(check);
}

static void test_free_finishes_suspended_and_queued(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_db_pool *p = new_pool(&loop, 1, 2);
    g_log[0] = '\0';
    task a = {.pool = p, .start = "s1", .end = "e1"}, b = {.pool = p, .start = "s2", .end = "e2"};
    assert_int_equal(sl_db_pool_run(p, sleeper, &a), 0);
    assert_int_equal(sl_db_pool_run(p, sleeper, &b), 0);
    sl_db_pool_free(p); /* without running the loop first */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(a.rc, 0); /* finished, blocking */
    assert_int_equal(a.got_rc, 0);
    if (harness_g.pg) { /* b never got a connection */
        assert_true(b.ran && b.db_null);
        assert_int_equal(b.got_rc, SL_ECLOSED);
        assert_string_equal(g_log, "s1 e1");
    } else {
        assert_int_equal(b.rc, 0);
        assert_string_equal(g_log, "s1 e1 s2 e2");
    }
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void run_given(void *arg, sl_db *db, int rc)
{
    task *t = arg;
    t->got_rc = rc;
    t->db_null = db == NULL;
    t->rc = db ? run_sql(db, t->start) : rc;
}

static void test_lost_connection_is_replaced(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_db_pool *p = new_pool(&loop, 1, 0);
    task kill = {.start =
                     harness_g.pg ? "SELECT pg_terminate_backend(pg_backend_pid())" : "SELECT 1"},
         next = {.start = "SELECT 1"};
    assert_int_equal(sl_db_pool_run(p, run_given, &kill), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (harness_g.pg) assert_int_equal(kill.rc, SL_EUNAVAIL);
    assert_int_equal(sl_db_pool_run(p, run_given, &next), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(next.db_null);
    assert_int_equal(next.rc, 0); /* a new connection */
    sl_db_pool_stats st;
    sl_db_pool_get_stats(p, &st);
    assert_int_equal(st.open, 1);
    free_pool(&loop, p);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_bad_config(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_db_pool *p = NULL;
    sl_db_pool_config c = {.url = g_url, .size = 0};
    assert_int_equal(sl_db_pool_new(&loop, &c, &p), SL_EINVAL);
    c.size = 65;
    assert_int_equal(sl_db_pool_new(&loop, &c, &p), SL_EINVAL);
    c.size = 1;
    c.queue_max = 65537;
    assert_int_equal(sl_db_pool_new(&loop, &c, &p), SL_EINVAL);
    assert_null(p);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static int setup(void **state)
{
    (void)state;
    sl_db *db = harness_fresh(g_url);
    sl_db_close(db);
    return 0;
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_waiting_task_lets_the_next_run, setup),
        cmocka_unit_test_setup(test_full_pool_queues_then_refuses, setup),
        cmocka_unit_test_setup(test_task_inside_a_task, setup),
        cmocka_unit_test(test_open_transaction_is_rolled_back),
        cmocka_unit_test_setup(test_free_finishes_suspended_and_queued, setup),
        cmocka_unit_test_setup(test_lost_connection_is_replaced, setup),
        cmocka_unit_test_setup(test_bad_config, setup),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    harness_done();
    return rc;
}
