/*
 * Shared set-up for the sl_db conformance suites (tests/db/): each suite is
 * run twice by ctest, `<test> sqlite` and `<test> pg`. For SQLite every
 * fresh database is a file in a private temporary directory; for PostgreSQL
 * it is a new schema on the fixture's throwaway cluster (URL read from the
 * file named by SHOAL_PG_URL_FILE), selected through the URL's
 * `options=-csearch_path=` so that every connection (threads, forked
 * children) sees the same tables. A missing cluster fails the test loudly.
 */
#ifndef SHOAL_TESTS_DB_HARNESS_H
#define SHOAL_TESTS_DB_HARNESS_H

#include <shoal/db.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static struct {
    int pg;
    char base[512]; /* pg: cluster URL; sqlite: temporary directory */
    int n;
} harness_g;

/* Reads argv[1] ("sqlite" or "pg"); exits non-zero with a message when the pg cluster is
 * not available. */
static inline void harness_init(int argc, char **argv)
{
    const char *b = argc > 1 ? argv[1] : getenv("SHOAL_DB_BACKEND");
    harness_g.pg = b != NULL && strcmp(b, "pg") == 0;
    if (!harness_g.pg) {
        snprintf(harness_g.base, sizeof harness_g.base, "/tmp/shoal-db-XXXXXX");
        if (mkdtemp(harness_g.base) == NULL) {
            perror("mkdtemp");
            exit(1);
        }
        return;
    }
    const char *file = getenv("SHOAL_PG_URL_FILE");
    FILE *f = file ? fopen(file, "r") : NULL;
    if (f == NULL || fgets(harness_g.base, sizeof harness_g.base, f) == NULL) {
        fprintf(stderr,
                "FAIL: no PostgreSQL test cluster: SHOAL_PG_URL_FILE=%s is missing or empty "
                "(the ctest fixture db.pg.fixture.start must run first; see "
                "scripts/pg-fixture.sh)\n",
                file ? file : "(unset)");
        exit(1);
    }
    fclose(f);
    harness_g.base[strcspn(harness_g.base, "\r\n")] = '\0';
}

static inline void harness_done(void)
{
    if (!harness_g.pg && harness_g.base[0]) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", harness_g.base);
        if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", harness_g.base);
    }
}

static inline void harness_open_url(const char *url, sl_db **db)
{
    char err[512];
    int rc = sl_db_open(url, NULL, db, err, sizeof err);
    if (rc != 0) fail_msg("sl_db_open(%s): %s: %s", url, sl_errname(rc), err);
}

/* Writes the URL of a new, empty database into `url`. */
static inline void harness_fresh_url(char *url, size_t cap)
{
    int n = ++harness_g.n;
    if (!harness_g.pg) {
        snprintf(url, cap, "sqlite:%s/db%d.db", harness_g.base, n);
        return;
    }
    char schema[64], sql[200];
    snprintf(schema, sizeof schema, "t_%ld_%d", (long)getpid(), n);
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", schema, schema);
    sl_db *admin;
    harness_open_url(harness_g.base, &admin);
    int rc = sl_db_exec(admin, sql);
    if (rc != 0) fail_msg("create schema: %s", sl_db_errmsg(admin));
    sl_db_close(admin);
    snprintf(url, cap, "%s?options=-csearch_path%%3D%s", harness_g.base, schema);
}

/* Opens a new, empty database; when `url` is not NULL its URL is kept there (512 bytes). */
static inline sl_db *harness_fresh(char *url)
{
    char buf[600];
    if (url == NULL) url = buf;
    harness_fresh_url(url, 600);
    sl_db *db;
    harness_open_url(url, &db);
    return db;
}

/* Same as harness_fresh, with the library migrations applied. */
static inline sl_db *harness_fresh_lib(char *url)
{
    sl_db *db = harness_fresh(url);
    int rc = sl_db_migrate(db, sl_db_lib_migrations(), NULL);
    if (rc != 0) fail_msg("library migrations: %s", sl_db_errmsg(db));
    return db;
}

/* Runs one statement expected to return one integer. */
static inline int64_t harness_int(sl_db *db, const char *sql)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc != 0) fail_msg("prepare %s: %s", sql, sl_db_errmsg(db));
    rc = sl_db_step(st);
    if (rc != SL_DB_ROW) fail_msg("step %s: %d %s", sql, rc, sl_db_errmsg(db));
    int64_t v = sl_db_column_int64(st, 0);
    sl_db_stmt_done(st);
    return v;
}

#define HARNESS_OK(db, expr)                                                                       \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ < 0) fail_msg("%s: %s: %s", #expr, sl_errname(rc_), sl_db_errmsg(db));             \
    } while (0)

#endif
