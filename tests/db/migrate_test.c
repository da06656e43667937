/*
 * Conformance suite for migrations on SQLite and PostgreSQL: the embedded
 * library set applies once, a failing script leaves nothing behind, an
 * edited applied script and an unknown applied version are errors at start,
 * backend-specific scripts are picked per backend.
 */
#include "db_harness.h"

static int table_exists(sl_db *db, const char *name)
{
    sl_db_stmt *st;
    const char *sql = sl_db_kind(db) == SL_DB_POSTGRES
                          ? "SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
                            "AND table_schema = current_schema()"
                          : "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?";
    HARNESS_OK(db, sl_db_prepare(db, sql, &st));
    HARNESS_OK(db, sl_db_bind_text(st, 1, name, SIZE_MAX));
    assert_int_equal(sl_db_step(st), SL_DB_ROW);
    int n = (int)sl_db_column_int64(st, 0);
    sl_db_stmt_done(st);
    return n;
}

static void test_library_set(void **state)
{
    (void)state;
    sl_db *db = harness_fresh(NULL);
    const sl_migration_set *lib = sl_db_lib_migrations();
    assert_string_equal(lib->component, "shoal");
    assert_true(lib->count >= 8);
    int applied = -1;
    HARNESS_OK(db, sl_db_migrate(db, lib, &applied));
    /* Every version counts on every backend (one without a script for it is recorded). */
    assert_int_equal(applied, 8);
    assert_true(table_exists(db, "idempotency_keys"));
    assert_true(table_exists(db, "outbox"));
    assert_true(table_exists(db, "inbox"));
    assert_true(table_exists(db, "es_events"));
    assert_true(table_exists(db, "saga_instances"));
    assert_true(table_exists(db, "saga_history"));
    assert_true(table_exists(db, "dead_letters"));
    HARNESS_OK(db, sl_db_migrate(db, lib, &applied));
    assert_int_equal(applied, 0);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM schema_migrations"), 8);
    sl_db_close(db);
}

static const sl_migration good[] = {
    {1, "0001_a.sql", NULL, "CREATE TABLE a (x BIGINT); INSERT INTO a VALUES (1)"},
    {2, "0002_b.sql", NULL, "CREATE TABLE b (y BIGINT)"},
};

static void test_failing_migration_leaves_nothing(void **state)
{
    (void)state;
    sl_db *db = harness_fresh(NULL);
    const sl_migration bad[] = {
        good[0],
        {2, "0002_bad.sql", NULL, "CREATE TABLE b (y BIGINT); INSERT INTO nowhere VALUES (1)"},
    };
    sl_migration_set set = {"svc", bad, 2};
    int applied = -1;
    assert_int_equal(sl_db_migrate(db, &set, &applied), SL_EINVAL);
    assert_int_equal(applied, 0);
    assert_non_null(strstr(sl_db_errmsg(db), "0002_bad.sql"));
    assert_false(table_exists(db, "a"));
    assert_false(table_exists(db, "b"));
    assert_false(table_exists(db, "schema_migrations"));
    assert_false(sl_db_in_tx(db));
    /* The fixed set then applies cleanly. */
    set.items = good;
    HARNESS_OK(db, sl_db_migrate(db, &set, &applied));
    assert_int_equal(applied, 2);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM a"), 1);
    sl_db_close(db);
}

static void test_changed_migration_is_an_error(void **state)
{
    (void)state;
    sl_db *db = harness_fresh(NULL);
    sl_migration_set set = {"svc", good, 1};
    HARNESS_OK(db, sl_db_migrate(db, &set, NULL));
    const sl_migration edited[] = {
        {1, "0001_a.sql", NULL, "CREATE TABLE a (x BIGINT); INSERT INTO a VALUES (2)"},
        good[1],
    };
    set.items = edited;
    set.count = 2;
    assert_int_equal(sl_db_migrate(db, &set, NULL), SL_ESTATE);
    assert_non_null(strstr(sl_db_errmsg(db), "changed after it was applied"));
    assert_false(table_exists(db, "b")); /* nothing newer ran either */
    /* A database that has a migration this binary does not know. */
    set.items = good;
    HARNESS_OK(db, sl_db_migrate(db, &set, NULL));
    set.count = 1;
    assert_int_equal(sl_db_migrate(db, &set, NULL), SL_ESTATE);
    assert_non_null(strstr(sl_db_errmsg(db), "unknown"));
    /* Components are independent. */
    sl_migration_set other = {"other", good, 1};
    const sl_migration other_items[] = {{1, "0001_c.sql", NULL, "CREATE TABLE c (z BIGINT)"}};
    other.items = other_items;
    HARNESS_OK(db, sl_db_migrate(db, &other, NULL));
    assert_true(table_exists(db, "c"));
    sl_db_close(db);
}

static void test_backend_specific(void **state)
{
    (void)state;
    sl_db *db = harness_fresh(NULL);
    const sl_migration items[] = {
        {1, "0001_t.sqlite.sql", "sqlite", "CREATE TABLE on_sqlite (x INTEGER)"},
        {1, "0001_t.postgres.sql", "postgres", "CREATE TABLE on_postgres (x BIGINT)"},
        {2, "0002_u.sql", NULL, "CREATE TABLE both_backends (x BIGINT)"},
    };
    sl_migration_set set = {"svc", items, 3};
    int applied;
    HARNESS_OK(db, sl_db_migrate(db, &set, &applied));
    assert_int_equal(applied, 2);
    int pg = sl_db_kind(db) == SL_DB_POSTGRES;
    assert_int_equal(table_exists(db, "on_sqlite"), !pg);
    assert_int_equal(table_exists(db, "on_postgres"), pg);
    assert_true(table_exists(db, "both_backends"));
    HARNESS_OK(db, sl_db_begin(db));
    assert_int_equal(sl_db_migrate(db, &set, NULL), SL_ESTATE);
    sl_db_rollback(db);
    sl_db_close(db);
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_library_set),
        cmocka_unit_test(test_failing_migration_leaves_nothing),
        cmocka_unit_test(test_changed_migration_is_an_error),
        cmocka_unit_test(test_backend_specific),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    harness_done();
    return rc;
}
