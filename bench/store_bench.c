/*
 * Event store throughput against its peer, the raw commit rate of the same
 * database in the same run: a one-row INSERT transaction. Usage:
 *   bench_store NAME URL [full] [seconds]
 * Prints `bench <name>: <value> <unit> (<ratio>x <peer>)` lines. Driven by
 * bench/store.sh, which also starts a throwaway PostgreSQL cluster.
 */
#include <shoal/db.h>
#include <shoal/eventstore.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(sl_db *db, const char *what, int rc)
{
    fprintf(stderr, "bench_store: %s: %s: %s\n", what, sl_errname(rc), db ? sl_db_errmsg(db) : "");
    exit(1);
}

static int raw_commit(sl_db *db, int64_t i)
{
    int rc = sl_db_begin(db);
    if (rc) return rc;
    sl_db_stmt *st;
    if ((rc = sl_db_prepare(db, "INSERT INTO raw (v, data) VALUES (?, ?)", &st)) == 0) {
        if ((rc = sl_db_bind_int64(st, 1, i)) == 0)
            rc = sl_db_bind_text(st, 2, "{\"amount\":100}", SIZE_MAX);
        if (rc == 0) rc = sl_db_step(st);
        sl_db_stmt_done(st);
    }
    if (rc < 0) {
        sl_db_rollback(db);
        return rc;
    }
    return sl_db_commit(db);
}

static int append(sl_db *db, const char *stream, int64_t *version, size_t n)
{
    static sl_es_event evs[100];
    for (size_t i = 0; i < n; i++)
        evs[i] = (sl_es_event){NULL, "credited", "{\"amount\":100}", NULL};
    int rc = sl_db_begin(db);
    if (rc) return rc;
    sl_es_result r;
    rc = sl_es_append(db, stream, *version == 0 ? SL_ES_NO_STREAM : *version, evs, n, 0, &r);
    if (rc) {
        sl_db_rollback(db);
        return rc;
    }
    *version = r.version;
    return sl_db_commit(db);
}

/* Runs `kind` (0 raw, 1 single append, 2 batch of 100) for `secs`; returns operations/s. */
static double run(sl_db *db, int kind, double secs)
{
    int64_t version = 0, ops = 0;
    double t0 = now_s(), t;
    do {
        int rc = kind == 0   ? raw_commit(db, ops)
                 : kind == 1 ? append(db, "single", &version, 1)
                             : append(db, "batched", &version, 100);
        if (rc) die(db, kind == 0 ? "raw commit" : "append", rc);
        ops++;
        t = now_s();
    } while (t - t0 < secs);
    return (double)ops / (t - t0);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_store NAME URL [full] [seconds]\n");
        return 2;
    }
    const char *name = argv[1];
    sl_db_options o = {.sqlite_sync_full = argc > 3 && strcmp(argv[3], "full") == 0};
    double secs = argc > 4 ? atof(argv[4]) : 2.0;
    sl_db *db;
    char err[512];
    int rc = sl_db_open(argv[2], &o, &db, err, sizeof err);
    if (rc) {
        fprintf(stderr, "bench_store: open %s: %s\n", argv[2], err);
        return 1;
    }
    if ((rc = sl_db_migrate(db, sl_db_lib_migrations(), NULL)) != 0) die(db, "migrate", rc);
    if ((rc = sl_db_exec(db, "CREATE TABLE raw (v BIGINT PRIMARY KEY, data TEXT NOT NULL)")))
        die(db, "create", rc);
    double raw = run(db, 0, secs);
    double single = run(db, 1, secs);
    double batch = run(db, 2, secs);
    printf("bench %s raw-commit: %.0f tx/s (1.00x raw-commit)\n", name, raw);
    printf("bench %s single-append: %.0f appends/s (%.2fx raw-commit)\n", name, single,
           single / raw);
    printf("bench %s batch100-append: %.0f events/s (%.2fx raw-commit; %.0f batches/s)\n", name,
           batch * 100, batch * 100 / raw, batch);
    sl_db_close(db);
    return 0;
}
