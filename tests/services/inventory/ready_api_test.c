/*
 * /readyz of a real service (shoal-inventory over real sockets, on SQLite
 * and PostgreSQL by argv[1]) follows its database: ready once started; 503
 * problem+json naming `database` while its migrations table is gone (renamed
 * by another connection) and, on SQLite, while its database file is moved
 * away; ready again once they are back. /healthz stays 200 throughout (the
 * process is alive).
 */
#include "inventory.h"

#include "../svc_harness.h"

static svc_proc g_svc;

/* GET path; returns the status and, for 503, checks the problem names `what`. */
static int probe(const char *path, const char *what)
{
    th_response r;
    int st = svc_req(&g_svc, "GET", path, NULL, NULL, NULL, &r);
    if (st == 503) {
        assert_non_null(strstr(th_header(&r, "content-type"), "problem+json"));
        json_t *j = svc_json(&r);
        assert_string_equal(svc_str(j, "reason"), "not_ready");
        json_t *missing = json_object_get(j, "missing");
        int named = 0;
        for (size_t i = 0; i < json_array_size(missing); i++)
            named |= strcmp(json_string_value(json_array_get(missing, i)), what) == 0;
        if (!named) fail_msg("503 without %s: %.*s", what, (int)r.body_len, r.body);
        json_decref(j);
    }
    th_response_free(&r);
    return st;
}

/* Waits (bounded) for /readyz to answer `want`; returns the last status. */
static int wait_ready(int want, const char *what)
{
    int st = 0;
    for (int i = 0; i < 100 && (st = probe("/readyz", what)) != want; i++)
        usleep(100 * 1000);
    return st;
}

static void test_ready_follows_migrations_table(void **state)
{
    (void)state;
    assert_int_equal(wait_ready(200, "database"), 200);
    sl_db *db;
    harness_open_url(g_svc.db_url, &db);
    HARNESS_OK(db,
               sl_db_exec(db, "ALTER TABLE schema_migrations RENAME TO schema_migrations_gone"));
    assert_int_equal(wait_ready(503, "database"), 503);
    assert_int_equal(probe("/healthz", ""), 200);
    HARNESS_OK(db,
               sl_db_exec(db, "ALTER TABLE schema_migrations_gone RENAME TO schema_migrations"));
    assert_int_equal(wait_ready(200, "database"), 200);
    sl_db_close(db);
}

static void test_ready_follows_sqlite_file(void **state)
{
    (void)state;
    if (harness_g.pg) skip();
    const char *file = g_svc.db_url + strlen("sqlite:");
    char moved[2048];
    snprintf(moved, sizeof moved, "%.600s.moved", file);
    assert_int_equal(wait_ready(200, "database"), 200);
    assert_int_equal(rename(file, moved), 0);
    assert_int_equal(wait_ready(503, "database"), 503);
    assert_int_equal(probe("/healthz", ""), 200);
    assert_int_equal(rename(moved, file), 0);
    assert_int_equal(wait_ready(200, "database"), 200);
}

static int setup(void **state)
{
    (void)state;
    svc_start(&g_svc, "inventory", NULL, 2);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    svc_stop(&g_svc);
    return 0;
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_follows_migrations_table),
        cmocka_unit_test(test_ready_follows_sqlite_file),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    harness_done();
    return rc;
}
