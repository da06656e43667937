/*
 * Conformance suite for the sl_db core, run on SQLite and on PostgreSQL:
 * URLs and bad input, typed binds and reads, error mapping, transactions,
 * savepoints, the commit hook, the statement cache and placeholder rewriting.
 */
#include "db_harness.h"

#include "db/db_int.h"

#include <fcntl.h>
#include <shoal/clock.h>
#include <unistd.h>

static const char *blob_type(sl_db *db)
{
    return sl_db_kind(db) == SL_DB_POSTGRES ? "BYTEA" : "BLOB";
}

static void make_table(sl_db *db)
{
    char sql[400];
    snprintf(sql, sizeof sql,
             "CREATE TABLE parent (id BIGINT PRIMARY KEY);"
             "CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT NOT NULL UNIQUE, n BIGINT,"
             " data %s, parent BIGINT REFERENCES parent (id));"
             "INSERT INTO parent (id) VALUES (1)",
             blob_type(db));
    HARNESS_OK(db, sl_db_exec(db, sql));
}

static int insert_row(sl_db *db, int64_t id, const char *name, const void *blob, size_t blen,
                      int64_t parent)
{
    sl_db_stmt *st;
    int rc =
        sl_db_prepare(db, "INSERT INTO t (id, name, n, data, parent) VALUES (?, ?, ?, ?, ?)", &st);
    if (rc) return rc;
    assert_int_equal(sl_db_bind_int64(st, 1, id), 0);
    assert_int_equal(sl_db_bind_text(st, 2, name, SIZE_MAX), 0);
    assert_int_equal(sl_db_bind_null(st, 3), 0);
    if (blob)
        assert_int_equal(sl_db_bind_blob(st, 4, blob, blen), 0);
    else
        assert_int_equal(sl_db_bind_null(st, 4), 0);
    if (parent)
        assert_int_equal(sl_db_bind_int64(st, 5, parent), 0);
    else
        assert_int_equal(sl_db_bind_null(st, 5), 0);
    rc = sl_db_step(st);
    if (rc == SL_DB_DONE) assert_int_equal(sl_db_changes(st), 1);
    sl_db_stmt_done(st);
    return rc;
}

static void test_bad_urls(void **state)
{
    (void)state;
    sl_db *db = (sl_db *)1;
    char err[256];
    assert_int_equal(sl_db_open("mysql://x/y", NULL, &db, err, sizeof err), SL_EINVAL);
    assert_null(db);
    assert_non_null(strstr(err, "sqlite:"));
    assert_int_equal(sl_db_open("sqlite:", NULL, &db, err, sizeof err), SL_EINVAL);
    assert_int_equal(
        sl_db_open("postgres://u@h:notaport/db?bogus_option=1", NULL, &db, err, sizeof err),
        SL_EINVAL);
    assert_non_null(strstr(err, "invalid URL"));
    /* Port 1 on loopback: nothing listens there. */
    assert_int_equal(sl_db_open("postgres://postgres@127.0.0.1:1/x", NULL, &db, err, sizeof err),
                     SL_EUNAVAIL);
    assert_non_null(strstr(err, "cannot connect"));
    assert_int_equal(sl_db_open("sqlite:/nonexistent-dir/x/y.db", NULL, &db, err, sizeof err),
                     SL_EUNAVAIL);
}

static void test_corrupt_sqlite_file(void **state)
{
    (void)state;
    char path[600], url[620], err[256];
    snprintf(path, sizeof path, "/tmp/shoal-corrupt-%ld.db", (long)getpid());
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    assert_true(fd >= 0);
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 7 + 3);
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    snprintf(url, sizeof url, "sqlite:%s", path);
    sl_db *db;
    assert_int_equal(sl_db_open(url, NULL, &db, err, sizeof err), SL_EIO);
    assert_non_null(strstr(err, "not a database"));
    unlink(path);
}

static void test_binds_and_reads(void **state)
{
    (void)state;
    sl_db *db = harness_fresh(NULL);
    make_table(db);
    const unsigned char blob[] = {0, 1, 2, 0xff, '?', '\'', 0};
    HARNESS_OK(db, insert_row(db, 1, "one ? 'quoted'", blob, sizeof blob, 1));
    HARNESS_OK(db, insert_row(db, INT64_MAX, "max", NULL, 0, 0));
    HARNESS_OK(db, insert_row(db, -5, "", "", 0, 0));

    sl_db_stmt *st;
    HARNESS_OK(db, sl_db_prepare(db,
                                 "SELECT id, name, n, data, parent FROM t WHERE id <> ? AND "
                                 "name <> '?' ORDER BY id",
                                 &st));
    HARNESS_OK(db, sl_db_bind_int64(st, 1, 42));
    assert_int_equal(sl_db_step(st), SL_DB_ROW);
    assert_int_equal(sl_db_column_count(st), 5);
    assert_int_equal(sl_db_column_int64(st, 0), -5);
    size_t len = 99;
    assert_string_equal(sl_db_column_text(st, 1, &len), "");
    assert_int_equal(len, 0);
    assert_true(sl_db_column_is_null(st, 2));
    assert_false(sl_db_column_is_null(st, 3)); /* empty blob is not NULL */
    sl_db_column_blob(st, 3, &len);
    assert_int_equal(len, 0);

    assert_int_equal(sl_db_step(st), SL_DB_ROW);
    assert_int_equal(sl_db_column_int64(st, 0), 1);
    assert_string_equal(sl_db_column_text(st, 1, &len), "one ? 'quoted'");
    assert_int_equal(len, 14);
    const unsigned char *b = sl_db_column_blob(st, 3, &len);
    assert_int_equal(len, sizeof blob);
    assert_memory_equal(b, blob, sizeof blob);
    assert_int_equal(sl_db_column_int64(st, 4), 1);

    assert_int_equal(sl_db_step(st), SL_DB_ROW);
    assert_int_equal(sl_db_column_int64(st, 0), INT64_MAX);
    assert_true(sl_db_column_is_null(st, 3));
    assert_true(sl_db_column_is_null(st, 4));
    assert_int_equal(sl_db_step(st), SL_DB_DONE);
    /* Run again after a reset with a different bind. */
    sl_db_reset(st);
    HARNESS_OK(db, sl_db_bind_int64(st, 1, 1));
    int rows = 0;
    while (sl_db_step(st) == SL_DB_ROW)
        rows++;
    assert_int_equal(rows, 2);
    assert_int_equal(sl_db_bind_int64(st, 2, 1), SL_EINVAL);
    sl_db_stmt_done(st);

    HARNESS_OK(db, sl_db_prepare(db, "UPDATE t SET n = ? WHERE id > ?", &st));
    HARNESS_OK(db, sl_db_bind_int64(st, 1, 7));
    HARNESS_OK(db, sl_db_bind_int64(st, 2, 0));
    assert_int_equal(sl_db_step(st), SL_DB_DONE);
    assert_int_equal(sl_db_changes(st), 2);
    sl_db_stmt_done(st);
    assert_int_equal(harness_int(db, "SELECT sum(n) FROM t"), 14);
    sl_db_close(db);
}

static void test_error_mapping(void **state)
{
    (void)state;
    sl_db *db = harness_fresh(NULL);
    make_table(db);
    HARNESS_OK(db, insert_row(db, 1, "a", NULL, 0, 0));
    assert_int_equal(insert_row(db, 1, "b", NULL, 0, 0), SL_ECONFLICT); /* primary key */
    assert_true(strlen(sl_db_errmsg(db)) > 0);
    assert_int_equal(insert_row(db, 2, "a", NULL, 0, 0), SL_ECONFLICT);           /* unique */
    assert_int_equal(insert_row(db, 3, "c", NULL, 0, 99), SL_ECONFLICT);          /* foreign key */
    assert_int_equal(sl_db_exec(db, "INSERT INTO t (id) VALUES (5)"), SL_EINVAL); /* not null */
    assert_int_equal(sl_db_exec(db, "SELEKT 1"), SL_EINVAL);
    sl_db_stmt *st;
    assert_int_equal(sl_db_prepare(db, "SELECT 'unterminated", &st), SL_EINVAL);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM t"), 1);
    sl_db_close(db);
}

static int hook_calls;
static unsigned hook_flags;
static void on_commit(void *data, unsigned flags)
{
    (void)data;
    hook_calls++;
    hook_flags = flags;
}

static void test_transactions(void **state)
{
    (void)state;
    sl_db *db = harness_fresh(NULL);
    make_table(db);
    sl_db_set_commit_hook(db, on_commit, NULL);
    hook_calls = 0;
    assert_int_equal(sl_db_commit(db), SL_ESTATE);
    HARNESS_OK(db, sl_db_begin(db));
    assert_true(sl_db_in_tx(db));
    assert_int_equal(sl_db_begin(db), SL_ESTATE);
    HARNESS_OK(db, insert_row(db, 1, "rolled back", NULL, 0, 0));
    sl_db_tx_mark(db, SL_DB_TXF_OUTBOX);
    sl_db_rollback(db);
    assert_false(sl_db_in_tx(db));
    assert_int_equal(hook_calls, 0);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM t"), 0);

    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, insert_row(db, 1, "kept", NULL, 0, 0));
    HARNESS_OK(db, sl_db_savepoint(db, "sp1"));
    HARNESS_OK(db, insert_row(db, 2, "undone", NULL, 0, 0));
    /* A failing statement inside a savepoint can be undone without losing the transaction. */
    assert_int_equal(insert_row(db, 1, "dup", NULL, 0, 0), SL_ECONFLICT);
    HARNESS_OK(db, sl_db_rollback_to(db, "sp1"));
    HARNESS_OK(db, sl_db_release(db, "sp1"));
    assert_int_equal(sl_db_savepoint(db, "bad name"), SL_EINVAL);
    sl_db_tx_mark(db, SL_DB_TXF_EVENTS);
    HARNESS_OK(db, sl_db_commit(db));
    assert_int_equal(hook_calls, 1);
    assert_int_equal(hook_flags, SL_DB_TXF_EVENTS);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM t"), 1);
    assert_int_equal(sl_db_savepoint(db, "sp"), SL_ESTATE);
    sl_db_close(db);
}

static void test_busy(void **state)
{
    (void)state;
    char url[600];
    sl_db *a = harness_fresh(url), *b;
    make_table(a);
    HARNESS_OK(a, insert_row(a, 1, "x", NULL, 0, 0));
    sl_db_options o = {.busy_timeout_ms = 50};
    char err[256];
    assert_int_equal(sl_db_open(url, &o, &b, err, sizeof err), 0);
    HARNESS_OK(a, sl_db_begin(a));
    HARNESS_OK(a, sl_db_exec(a, "UPDATE t SET n = 1 WHERE id = 1"));
    if (sl_db_kind(b) == SL_DB_SQLITE) {
        /* BEGIN IMMEDIATE takes the write lock up front: the second writer waits, then BUSY. */
        assert_int_equal(sl_db_begin(b), SL_EBUSY);
        assert_false(sl_db_in_tx(b));
    } else {
        HARNESS_OK(b, sl_db_begin(b));
        HARNESS_OK(b, sl_db_exec(b, "SET LOCAL lock_timeout = '50ms'"));
        assert_int_equal(sl_db_exec(b, "UPDATE t SET n = 2 WHERE id = 1"), SL_EBUSY);
        sl_db_rollback(b);
    }
    HARNESS_OK(a, sl_db_commit(a));
    HARNESS_OK(b, sl_db_begin(b));
    HARNESS_OK(b, sl_db_exec(b, "UPDATE t SET n = 2 WHERE id = 1"));
    HARNESS_OK(b, sl_db_commit(b));
    assert_int_equal(harness_int(a, "SELECT n FROM t"), 2);
    sl_db_close(b);
    sl_db_close(a);
}

static void test_stmt_cache(void **state)
{
    (void)state;
    char url[600], err[256];
    harness_fresh_url(url, sizeof url);
    sl_db_options o = {.stmt_cache_max = 2};
    sl_db *db;
    assert_int_equal(sl_db_open(url, &o, &db, err, sizeof err), 0);
    sl_db_stmt *s1, *s2, *s3;
    HARNESS_OK(db, sl_db_prepare(db, "SELECT 1", &s1));
    HARNESS_OK(db, sl_db_prepare(db, "SELECT 1", &s2));
    assert_ptr_not_equal(s1, s2); /* the first is checked out */
    assert_int_equal(sl_db_prepare(db, "SELECT 2", &s3), SL_ELIMIT);
    sl_db_stmt_done(s2);
    HARNESS_OK(db, sl_db_prepare(db, "SELECT 1", &s3));
    assert_ptr_equal(s3, s2); /* reused from the cache */
    sl_db_stmt_done(s3);
    HARNESS_OK(db, sl_db_prepare(db, "SELECT 3", &s3)); /* evicts the unused one */
    assert_int_equal(sl_db_step(s3), SL_DB_ROW);
    assert_int_equal(sl_db_column_int64(s3, 0), 3);
    sl_db_stmt_done(s3);
    sl_db_stmt_done(s1);
    sl_db_close(db);
}

static void test_rewrite_params(void **state)
{
    (void)state;
    char out[256];
    const char *in = "SELECT '?''?', ?, \"a?\" -- why?\n, ? /* ? */ FROM x WHERE y=?";
    assert_int_equal(sl__db_rewrite_params(in, out, sizeof out), 3);
    assert_string_equal(out, "SELECT '?''?', $1, \"a?\" -- why?\n, $2 /* ? */ FROM x WHERE y=$3");
    assert_int_equal(sl__db_rewrite_params(in, NULL, 0), 3);
    assert_int_equal(sl__db_rewrite_params("?", out, 2), SL_ELIMIT);
    assert_int_equal(sl__db_rewrite_params("SELECT '", NULL, 0), SL_EINVAL);
    assert_int_equal(sl__db_rewrite_params("SELECT /* ", NULL, 0), SL_EINVAL);
    assert_int_equal(sl__db_rewrite_params("SELECT 1 -- ?", out, sizeof out), 0);
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_urls),        cmocka_unit_test(test_corrupt_sqlite_file),
        cmocka_unit_test(test_binds_and_reads), cmocka_unit_test(test_error_mapping),
        cmocka_unit_test(test_transactions),    cmocka_unit_test(test_busy),
        cmocka_unit_test(test_stmt_cache),      cmocka_unit_test(test_rewrite_params),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    harness_done();
    return rc;
}
