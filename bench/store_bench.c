/*
 * Event store throughput against its peer, the raw commit rate of the same
 * database in the same run: a one-row INSERT transaction. Usage:
 *   bench_store NAME URL [full] [seconds]
 * Prints `bench <name>: <value> <unit> (<ratio>x <peer>; <what was timed>)`
 * lines. Like with like: the raw peer and the appends run on the same
 * connection (same synchronous mode and settings), in the same transaction
 * shape, taking turns in short slices. Driven by bench/store.sh, which also
 * starts a throwaway PostgreSQL cluster.
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

/* One append transaction of `n` events: BEGIN; sl_es_append; COMMIT. With `ids`, the caller
 * supplies each event's id (the idempotency path: one more index to maintain). */
static int append(sl_db *db, const char *stream, int64_t *version, size_t n, int ids)
{
    static sl_es_event evs[100];
    static char id_text[100][40];
    static int64_t id_seq;
    for (size_t i = 0; i < n; i++) {
        evs[i] = (sl_es_event){NULL, "credited", "{\"amount\":100}", NULL};
        if (ids) {
            /* Time-ordered like the UUIDv7 a caller would send. */
            snprintf(id_text[i], sizeof id_text[i], "cmd-%020lld", (long long)++id_seq);
            evs[i].id = id_text[i];
        }
    }
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

enum { RAW, SINGLE, SINGLE_IDS, BATCH, KINDS };

typedef struct tally {
    int64_t ops;
    double secs;
    int64_t version; /* of the kind's stream */
} tally;

/* Runs `kind` for `secs` more seconds, adding to its tally. */
static void run(sl_db *db, int kind, double secs, tally *t)
{
    double t0 = now_s(), now;
    do {
        int rc = kind == RAW          ? raw_commit(db, t->ops)
                 : kind == SINGLE     ? append(db, "single", &t->version, 1, 0)
                 : kind == SINGLE_IDS ? append(db, "single-ids", &t->version, 1, 1)
                                      : append(db, "batched", &t->version, 100, 0);
        if (rc) die(db, kind == RAW ? "raw commit" : "append", rc);
        t->ops++;
        now = now_s();
    } while (now - t0 < secs);
    t->secs += now - t0;
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
    /* The kinds take turns in short slices, so disk and cache drift (WAL growth,
     * checkpoints, other load on the machine) hits every figure alike. */
    tally t[KINDS] = {{0}};
    const int slices = 10;
    for (int s = 0; s < slices; s++)
        for (int k = 0; k < KINDS; k++)
            run(db, k, secs / slices, &t[k]);
    double rate[KINDS];
    for (int k = 0; k < KINDS; k++)
        rate[k] = (double)t[k].ops / t[k].secs;
    double raw = rate[RAW];
    printf("bench %s raw-commit: %.0f tx/s (1.00x raw-commit; BEGIN, one-row INSERT, COMMIT)\n",
           name, raw);
    printf("bench %s single-append: %.0f appends/s (%.2fx raw-commit; BEGIN, 1-event append, "
           "generated id, COMMIT)\n",
           name, rate[SINGLE], rate[SINGLE] / raw);
    printf("bench %s single-append-ids: %.0f appends/s (%.2fx raw-commit; BEGIN, 1-event append, "
           "caller id, COMMIT)\n",
           name, rate[SINGLE_IDS], rate[SINGLE_IDS] / raw);
    printf("bench %s batch100-append: %.0f events/s (%.2fx raw-commit; %.0f batches/s; BEGIN, "
           "100-event append, COMMIT)\n",
           name, rate[BATCH] * 100, rate[BATCH] * 100 / raw, rate[BATCH]);
    sl_db_close(db);
    return 0;
}
