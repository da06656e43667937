/*
 * Conformance suite for the event store on SQLite and PostgreSQL: expected
 * versions, idempotent re-sends, reads, snapshots, several streams in one
 * transaction, two real concurrent appenders with the same expectation
 * (exactly one wins, many rounds), and catch-up subscriptions that never
 * skip an event whose transaction commits late nor hand one event to two
 * pollers of one subscriber.
 */
#include "db_harness.h"

#include <shoal/eventstore.h>

#include <pthread.h>
#include <time.h>

static int append1(sl_db *db, const char *stream, int64_t expected, const char *id,
                   sl_es_result *res)
{
    sl_es_event ev = {.id = id, .type = "t", .data = "{\"v\":1}"};
    int rc = sl_db_begin(db);
    if (rc) return rc;
    rc = sl_es_append(db, stream, expected, &ev, 1, 1000, res);
    if (rc == 0) return sl_db_commit(db);
    sl_db_rollback(db);
    return rc;
}

static void test_expected_versions(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    sl_es_result r;
    assert_int_equal(append1(db, "acc-1", SL_ES_STREAM_EXISTS, NULL, &r), SL_ECONFLICT);
    assert_int_equal(r.actual_version, 0);
    assert_int_equal(append1(db, "acc-1", 3, NULL, &r), SL_ECONFLICT);
    assert_int_equal(append1(db, "acc-1", SL_ES_NO_STREAM, NULL, &r), 0);
    assert_int_equal(r.version, 1);
    assert_int_equal(r.position, 1);
    assert_int_equal(append1(db, "acc-1", SL_ES_NO_STREAM, NULL, &r), SL_ECONFLICT);
    assert_int_equal(r.actual_version, 1);
    assert_int_equal(append1(db, "acc-1", 1, NULL, &r), 0);
    assert_int_equal(r.version, 2);
    assert_int_equal(append1(db, "acc-1", 1, NULL, &r), SL_ECONFLICT);
    assert_int_equal(r.actual_version, 2);
    assert_int_equal(append1(db, "acc-1", SL_ES_STREAM_EXISTS, NULL, &r), 0);
    assert_int_equal(r.version, 3);
    assert_int_equal(append1(db, "acc-1", SL_ES_ANY, NULL, &r), 0);
    assert_int_equal(r.version, 4);
    assert_int_equal(append1(db, "acc-2", SL_ES_ANY, NULL, &r), 0);
    assert_int_equal(r.version, 1);
    assert_int_equal(r.position, 5);
    int64_t v;
    HARNESS_OK(db, sl_es_stream_version(db, "acc-1", &v));
    assert_int_equal(v, 4);
    HARNESS_OK(db, sl_es_stream_version(db, "nope", &v));
    assert_int_equal(v, 0);
    /* Bad input. */
    sl_es_event bad = {.type = "", .data = "{}"};
    HARNESS_OK(db, sl_db_begin(db));
    assert_int_equal(sl_es_append(db, "x", SL_ES_ANY, &bad, 1, 0, &r), SL_EINVAL);
    assert_int_equal(sl_es_append(db, "x", SL_ES_ANY, &bad, 0, 0, &r), SL_EINVAL);
    assert_int_equal(sl_es_append(db, "x", -7, &bad, 1, 0, &r), SL_EINVAL);
    sl_db_rollback(db);
    assert_int_equal(sl_es_append(db, "x", SL_ES_ANY, &bad, 1, 0, &r), SL_ESTATE);
    sl_db_close(db);
}

static void test_batch_all_or_nothing_and_idempotent(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    sl_es_event evs[3] = {{"e-1", "opened", "{}", NULL},
                          {"e-2", "credited", "{\"amount\":5}", "{\"by\":\"test\"}"},
                          {"e-3", "debited", "{\"amount\":2}", NULL}};
    sl_es_result r;
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, sl_es_append(db, "acc", SL_ES_NO_STREAM, evs, 3, 1000, &r));
    HARNESS_OK(db, sl_db_commit(db));
    assert_int_equal(r.version, 3);
    assert_int_equal(r.position, 3);
    /* Re-sent with the same expectation, or with ANY: same answer, nothing written. */
    int64_t modes[] = {SL_ES_NO_STREAM, SL_ES_ANY};
    for (int i = 0; i < 2; i++) {
        sl_es_result again;
        HARNESS_OK(db, sl_db_begin(db));
        HARNESS_OK(db, sl_es_append(db, "acc", modes[i], evs, 3, 2000, &again));
        HARNESS_OK(db, sl_db_commit(db));
        assert_int_equal(again.version, 3);
        assert_int_equal(again.position, 3);
    }
    assert_int_equal(harness_int(db, "SELECT count(*) FROM es_events"), 3);
    /* A batch overlapping an earlier one is a conflict, and leaves nothing. */
    sl_es_event overlap[2] = {{"e-3", "debited", "{}", NULL}, {"e-4", "debited", "{}", NULL}};
    HARNESS_OK(db, sl_db_begin(db));
    assert_int_equal(sl_es_append(db, "acc", SL_ES_ANY, overlap, 2, 0, &r), SL_ECONFLICT);
    sl_db_rollback(db);
    /* A batch whose second event fails writes nothing (one transaction). */
    sl_es_event dup[2] = {{"e-5", "x", "{}", NULL}, {"e-1", "x", "{}", NULL}};
    HARNESS_OK(db, sl_db_begin(db));
    assert_int_equal(sl_es_append(db, "other", SL_ES_NO_STREAM, dup, 2, 0, &r), SL_ECONFLICT);
    sl_db_rollback(db);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM es_events"), 3);
    int64_t v;
    HARNESS_OK(db, sl_es_stream_version(db, "other", &v));
    assert_int_equal(v, 0);
    sl_db_close(db);
}

/* Idempotency is decided by comparing ids after an insert wrote nothing (no pre-check): every
 * expectation mode, a stream that moved on, reordered ids, and ids used by another stream. */
static void test_resend_compares_ids(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    sl_es_event evs[2] = {{"k-1", "opened", "{}", NULL}, {"k-2", "credited", "{}", NULL}};
    sl_es_result r;
    HARNESS_OK(db, append1(db, "acc", SL_ES_NO_STREAM, "k-0", &r));
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, sl_es_append(db, "acc", 1, evs, 2, 0, &r));
    HARNESS_OK(db, sl_db_commit(db));
    assert_int_equal(r.version, 3);
    assert_int_equal(r.position, 3);
    HARNESS_OK(db, append1(db, "acc", SL_ES_ANY, NULL, &r)); /* the stream moves on: v4 */
    /* The same batch again, under each expectation, even a stale exact one: same answer. */
    int64_t modes[] = {1, SL_ES_ANY, SL_ES_STREAM_EXISTS, SL_ES_NO_STREAM, 4};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        sl_es_result again;
        HARNESS_OK(db, sl_db_begin(db));
        HARNESS_OK(db, sl_es_append(db, "acc", modes[i], evs, 2, 0, &again));
        HARNESS_OK(db, sl_db_commit(db));
        assert_int_equal(again.version, 3);
        assert_int_equal(again.position, 3);
    }
    assert_int_equal(harness_int(db, "SELECT count(*) FROM es_events"), 4);
    /* Reordered ids are not a re-send: a conflict that reports the stream's version. */
    sl_es_event swapped[2] = {evs[1], evs[0]};
    HARNESS_OK(db, sl_db_begin(db));
    assert_int_equal(sl_es_append(db, "acc", 4, swapped, 2, 0, &r), SL_ECONFLICT);
    sl_db_rollback(db);
    HARNESS_OK(db, sl_db_begin(db));
    assert_int_equal(sl_es_append(db, "acc", 1, swapped, 2, 0, &r), SL_ECONFLICT);
    assert_int_equal(r.actual_version, 4);
    sl_db_rollback(db);
    /* An id of "acc" sent to another stream, first or later in a batch: a conflict. */
    assert_int_equal(append1(db, "other", SL_ES_NO_STREAM, "k-1", &r), SL_ECONFLICT);
    assert_int_equal(r.actual_version, 0);
    assert_int_equal(append1(db, "other", SL_ES_ANY, "k-2", &r), SL_ECONFLICT);
    /* A new id at a taken version is a plain conflict, not a re-send. */
    assert_int_equal(append1(db, "acc", 2, "k-9", &r), SL_ECONFLICT);
    assert_int_equal(r.actual_version, 4);
    /* Generated ids are stored (and returned by reads) but skip the caller-id index. */
    assert_int_equal(harness_int(db, "SELECT count(*) FROM es_events WHERE id_given = 0"), 1);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM es_events WHERE length(id) = 36"), 1);
    int64_t v;
    HARNESS_OK(db, sl_es_stream_version(db, "other", &v));
    assert_int_equal(v, 0);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM es_events"), 4);
    sl_db_close(db);
}

typedef struct collected {
    int n;
    int64_t versions[64], positions[64];
    char streams[64][16];
    int with_metadata;
} collected;

static int collect(void *data, const sl_es_record *rec)
{
    collected *c = data;
    if (c->n < 64) {
        c->versions[c->n] = rec->version;
        c->positions[c->n] = rec->position;
        snprintf(c->streams[c->n], 16, "%s", rec->stream);
    }
    c->with_metadata += rec->metadata != NULL;
    c->n++;
    return 0;
}

static void test_reads(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    sl_es_result r;
    /* Interleave two streams: a1 a2 b1 a3 b2 a4 */
    const char *order[] = {"a", "a", "b", "a", "b", "a"};
    for (int i = 0; i < 6; i++)
        HARNESS_OK(db, append1(db, order[i], SL_ES_ANY, NULL, &r));
    collected c = {0};
    size_t n;
    HARNESS_OK(db, sl_es_read_stream(db, "a", 2, SL_ES_FORWARDS, 2, collect, &c, &n));
    assert_int_equal(n, 2);
    assert_int_equal(c.versions[0], 2);
    assert_int_equal(c.versions[1], 3);
    assert_int_equal(c.positions[1], 4);
    memset(&c, 0, sizeof c);
    HARNESS_OK(db, sl_es_read_stream(db, "a", INT64_MAX, SL_ES_BACKWARDS, 3, collect, &c, &n));
    assert_int_equal(n, 3);
    assert_int_equal(c.versions[0], 4);
    assert_int_equal(c.versions[2], 2);
    /* All, in batches of 4 from a position. */
    memset(&c, 0, sizeof c);
    HARNESS_OK(db, sl_es_read_all(db, 0, 4, collect, &c, &n));
    assert_int_equal(n, 4);
    HARNESS_OK(db, sl_es_read_all(db, c.positions[3], 4, collect, &c, &n));
    assert_int_equal(n, 2);
    assert_int_equal(c.n, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(c.positions[i], i + 1);
        assert_string_equal(c.streams[i], order[i]);
    }
    assert_int_equal(sl_es_read_all(db, 0, 0, collect, &c, &n), SL_EINVAL);
    sl_db_close(db);
}

static void test_snapshots(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    int64_t v;
    char *data;
    assert_int_equal(sl_es_snapshot_load(db, "acc", &v, &data), SL_ENOTFOUND);
    HARNESS_OK(db, sl_es_snapshot_save(db, "acc", 5, "{\"balance\":5}", 0));
    HARNESS_OK(db, sl_es_snapshot_save(db, "acc", 10, "{\"balance\":10}", 0));
    HARNESS_OK(db, sl_es_snapshot_load(db, "acc", &v, &data));
    assert_int_equal(v, 10);
    assert_string_equal(data, "{\"balance\":10}");
    free(data);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM es_snapshots"), 1);
    assert_int_equal(sl_es_snapshot_due(4, 5, 5), 1);
    assert_int_equal(sl_es_snapshot_due(5, 6, 5), 0);
    assert_int_equal(sl_es_snapshot_due(3, 12, 5), 1);
    assert_int_equal(sl_es_snapshot_due(3, 12, 0), 0);
    sl_db_close(db);
}

static void test_several_streams_one_transaction(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    sl_es_result r;
    sl_es_event debit = {NULL, "debited", "{\"amount\":7}", NULL};
    sl_es_event credit = {NULL, "credited", "{\"amount\":7}", NULL};
    HARNESS_OK(db, append1(db, "from", SL_ES_NO_STREAM, NULL, &r));
    /* A transfer: both or neither. */
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, sl_es_append(db, "from", 1, &debit, 1, 0, &r));
    HARNESS_OK(db, sl_es_append(db, "to", SL_ES_ANY, &credit, 1, 0, &r));
    HARNESS_OK(db, sl_db_commit(db));
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, sl_es_append(db, "to", SL_ES_ANY, &credit, 1, 0, &r));
    assert_int_equal(sl_es_append(db, "from", 1, &debit, 1, 0, &r), SL_ECONFLICT);
    sl_db_rollback(db);
    int64_t v;
    HARNESS_OK(db, sl_es_stream_version(db, "to", &v));
    assert_int_equal(v, 1);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM es_events"), 3);
    sl_db_close(db);
}

/* ---- two concurrent appenders ---- */

#define ROUNDS 40

typedef struct racer {
    const char *url;
    pthread_barrier_t *barrier;
    int rc[ROUNDS];
    int64_t actual[ROUNDS];
} racer;

static void *race(void *arg)
{
    racer *me = arg;
    sl_db *db;
    char err[256];
    if (sl_db_open(me->url, NULL, &db, err, sizeof err) != 0) {
        for (int i = 0; i < ROUNDS; i++)
            me->rc[i] = -99999;
        pthread_barrier_wait(me->barrier); /* keep the other thread from waiting forever */
        return NULL;
    }
    pthread_barrier_wait(me->barrier);
    for (int i = 0; i < ROUNDS; i++) {
        pthread_barrier_wait(me->barrier);
        sl_es_result r;
        me->rc[i] = append1(db, "contended", i == 0 ? SL_ES_NO_STREAM : i, NULL, &r);
        me->actual[i] = r.actual_version;
    }
    sl_db_close(db);
    return NULL;
}

static void test_concurrent_appenders_one_wins(void **state)
{
    (void)state;
    char url[600];
    sl_db *db = harness_fresh_lib(url);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    racer a = {.url = url, .barrier = &barrier}, b = a;
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, race, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, race, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&barrier);
    int wins_a = 0, wins_b = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int ok_a = a.rc[i] == 0, ok_b = b.rc[i] == 0;
        if (ok_a + ok_b != 1)
            fail_msg("round %d: rc %s / %s", i, sl_errname(a.rc[i]), sl_errname(b.rc[i]));
        racer *loser = ok_a ? &b : &a;
        assert_int_equal(loser->rc[i], SL_ECONFLICT);
        assert_int_equal(loser->actual[i], i + 1);
        wins_a += ok_a;
        wins_b += ok_b;
    }
    int64_t v;
    HARNESS_OK(db, sl_es_stream_version(db, "contended", &v));
    assert_int_equal(v, ROUNDS);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM es_events"), ROUNDS);
    print_message("concurrent appenders: %d rounds, wins %d / %d\n", ROUNDS, wins_a, wins_b);
    sl_db_close(db);
}

/* ANY never conflicts, even when two connections append to one stream at once (on PostgreSQL
 * the loser of the fast path's lock takes the waiting path); versions and positions stay
 * dense. */
#define ANY_ROUNDS 60

typedef struct any_writer {
    const char *url;
    int rc;
} any_writer;

static void *append_any(void *arg)
{
    any_writer *w = arg;
    sl_db *db;
    char err[256];
    if ((w->rc = sl_db_open(w->url, NULL, &db, err, sizeof err)) != 0) return NULL;
    for (int i = 0; i < ANY_ROUNDS && w->rc == 0; i++) {
        sl_es_result r;
        w->rc = append1(db, "shared", SL_ES_ANY, NULL, &r);
    }
    sl_db_close(db);
    return NULL;
}

static void test_concurrent_any_appenders_all_win(void **state)
{
    (void)state;
    char url[600];
    sl_db *db = harness_fresh_lib(url);
    any_writer a = {.url = url}, b = a;
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, append_any, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, append_any, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    int64_t v;
    HARNESS_OK(db, sl_es_stream_version(db, "shared", &v));
    assert_int_equal(v, 2 * ANY_ROUNDS);
    assert_int_equal(harness_int(db, "SELECT count(DISTINCT version) FROM es_events"),
                     2 * ANY_ROUNDS);
    assert_int_equal(harness_int(db, "SELECT max(position) FROM es_events"), 2 * ANY_ROUNDS);
    sl_db_close(db);
}

/* Databases written by the first layout (migration 0002: es_streams, es_head) keep their
 * events, ids and positions through 0004, and appends continue after them. */
static void test_upgrade_from_first_layout(void **state)
{
    (void)state;
    sl_db *db = harness_fresh(NULL);
    const sl_migration_set *lib = sl_db_lib_migrations();
    sl_migration old[8];
    size_t n = 0;
    for (size_t i = 0; i < lib->count && n < 8; i++)
        if (lib->items[i].version <= 2) old[n++] = lib->items[i];
    sl_migration_set first = {lib->component, old, n};
    HARNESS_OK(db, sl_db_migrate(db, &first, NULL));
    HARNESS_OK(db, sl_db_exec(db, "UPDATE es_head SET position = 2"));
    HARNESS_OK(db, sl_db_exec(db, "INSERT INTO es_streams (stream, version) VALUES ('acc', 2)"));
    HARNESS_OK(db, sl_db_exec(db, "INSERT INTO es_events (position, stream, version, id, type, "
                                  "data, created_ms) VALUES (1, 'acc', 1, 'o-1', 't', '{}', 0), "
                                  "(2, 'acc', 2, 'o-2', 't', '{}', 0)"));
    int applied = 0;
    HARNESS_OK(db, sl_db_migrate(db, lib, &applied));
    size_t later = 0; /* every library version after the first layout (one without a script
                         for this backend is recorded too) */
    for (size_t i = 0; i < lib->count; i++) {
        int dup = 0;
        for (size_t j = 0; j < i; j++)
            dup |= lib->items[j].version == lib->items[i].version;
        if (lib->items[i].version > 2 && !dup) later++;
    }
    assert_int_equal(applied, (int)later);
    sl_es_event evs[2] = {{"o-1", "t", "{}", NULL}, {"o-2", "t", "{}", NULL}};
    sl_es_result r;
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, sl_es_append(db, "acc", SL_ES_ANY, evs, 2, 0, &r)); /* a re-send */
    HARNESS_OK(db, sl_db_commit(db));
    assert_int_equal(r.version, 2);
    assert_int_equal(r.position, 2);
    assert_int_equal(append1(db, "elsewhere", SL_ES_ANY, "o-1", &r), SL_ECONFLICT);
    HARNESS_OK(db, append1(db, "acc", 2, NULL, &r));
    assert_int_equal(r.version, 3);
    assert_int_equal(r.position, 3);
    sl_db_close(db);
}

/* ---- catch-up subscriptions ---- */

static int project(void *data, sl_db *tx, const sl_es_record *rec)
{
    int64_t *fail_at = data;
    if (*fail_at && rec->position == *fail_at) return SL_EIO;
    sl_db_stmt *st;
    int rc = sl_db_prepare(tx, "INSERT INTO seen (position) VALUES (?)", &st);
    if (rc) return rc;
    rc = sl_db_bind_int64(st, 1, rec->position);
    if (rc == 0) rc = sl_db_step(st);
    sl_db_stmt_done(st);
    return rc == SL_DB_DONE ? 0 : rc;
}

static size_t poll_all(sl_db *db, int64_t *fail_at)
{
    size_t total = 0, n;
    do {
        HARNESS_OK(db, sl_es_subscription_poll(db, "proj", 3, project, fail_at, &n));
        total += n;
    } while (n > 0);
    return total;
}

static void test_subscription_checkpoint_in_own_tx(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    HARNESS_OK(db, sl_db_exec(db, "CREATE TABLE seen (position BIGINT PRIMARY KEY)"));
    sl_es_result r;
    for (int i = 0; i < 7; i++)
        HARNESS_OK(db, append1(db, i % 2 ? "x" : "y", SL_ES_ANY, NULL, &r));
    int64_t fail_at = 5, cp;
    size_t n;
    HARNESS_OK(db, sl_es_subscription_poll(db, "proj", 3, project, &fail_at, &n));
    assert_int_equal(n, 3);
    /* The handler fails on position 5: the batch 4..6 and its checkpoint roll back together. */
    assert_int_equal(sl_es_subscription_poll(db, "proj", 3, project, &fail_at, &n), SL_EIO);
    HARNESS_OK(db, sl_es_checkpoint(db, "proj", &cp));
    assert_int_equal(cp, 3);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM seen"), 3);
    fail_at = 0;
    assert_int_equal(poll_all(db, &fail_at), 4);
    HARNESS_OK(db, sl_es_checkpoint(db, "proj", &cp));
    assert_int_equal(cp, 7);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM seen"), 7);
    sl_db_close(db);
}

typedef struct late {
    const char *url;
    int rc;
    int64_t position;
} late;

static void *append_other(void *arg)
{
    late *l = arg;
    sl_db *db;
    char err[256];
    l->rc = sl_db_open(l->url, NULL, &db, err, sizeof err);
    if (l->rc) return NULL;
    sl_es_result r;
    l->rc = append1(db, "second", SL_ES_ANY, NULL, &r);
    l->position = r.position;
    sl_db_close(db);
    return NULL;
}

static void test_subscription_never_skips_late_commit(void **state)
{
    (void)state;
    char url[600];
    sl_db *a = harness_fresh_lib(url), *sub;
    harness_open_url(url, &sub);
    HARNESS_OK(sub, sl_db_exec(sub, "CREATE TABLE seen (position BIGINT PRIMARY KEY)"));
    /* Transaction A takes position 1 and stays open. */
    sl_es_event ev = {NULL, "t", "{}", NULL};
    sl_es_result ra;
    HARNESS_OK(a, sl_db_begin(a));
    HARNESS_OK(a, sl_es_append(a, "first", SL_ES_ANY, &ev, 1, 0, &ra));
    assert_int_equal(ra.position, 1);
    /* Transaction B starts later on another connection; with a sequence it would take
     * position 2 and commit first, and a subscriber would checkpoint past 1 for good. */
    late b = {.url = url};
    pthread_t tb;
    assert_int_equal(pthread_create(&tb, NULL, append_other, &b), 0);
    struct timespec pause_ts = {0, 100 * 1000 * 1000};
    nanosleep(&pause_ts, NULL);
    /* Nothing is visible to a reader yet: B is held back behind A. (The subscriber reads as
     * its poll does; on SQLite its poll itself would wait for the single writer.) */
    collected c = {0};
    size_t n;
    HARNESS_OK(sub, sl_es_read_all(sub, 0, 10, collect, &c, &n));
    assert_int_equal(n, 0);
    int64_t no_fail = 0;
    HARNESS_OK(a, sl_db_commit(a));
    pthread_join(tb, NULL);
    assert_int_equal(b.rc, 0);
    assert_int_equal(b.position, 2); /* B's position follows A's commit */
    assert_int_equal(poll_all(sub, &no_fail), 2);
    assert_int_equal(harness_int(sub, "SELECT count(*) FROM seen"), 2);
    sl_db_close(sub);
    sl_db_close(a);
}

#define WRITERS    2
#define PER_WRITER 150

static void *writer(void *arg)
{
    late *l = arg;
    sl_db *db;
    char err[256];
    l->rc = sl_db_open(l->url, NULL, &db, err, sizeof err);
    if (l->rc) return NULL;
    char stream[32];
    snprintf(stream, sizeof stream, "w-%p", arg);
    sl_es_event evs[3] = {
        {NULL, "t", "{}", NULL}, {NULL, "t", "{}", NULL}, {NULL, "t", "{}", NULL}};
    for (int i = 0; i < PER_WRITER / 3 && l->rc == 0; i++) {
        sl_es_result r;
        if ((l->rc = sl_db_begin(db)) != 0) break;
        l->rc = sl_es_append(db, stream, SL_ES_ANY, evs, 3, 0, &r);
        if (l->rc == 0)
            l->rc = sl_db_commit(db);
        else
            sl_db_rollback(db);
    }
    sl_db_close(db);
    return NULL;
}

static void test_subscription_under_concurrent_writers(void **state)
{
    (void)state;
    char url[600];
    sl_db *sub = harness_fresh_lib(url);
    HARNESS_OK(sub, sl_db_exec(sub, "CREATE TABLE seen (position BIGINT PRIMARY KEY)"));
    late w[WRITERS];
    pthread_t t[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        w[i] = (late){.url = url};
        assert_int_equal(pthread_create(&t[i], NULL, writer, &w[i]), 0);
    }
    /* Poll while they write; `seen`'s primary key catches a double delivery. */
    int64_t no_fail = 0;
    size_t total = 0;
    for (int k = 0; k < 200 && total < WRITERS * PER_WRITER; k++)
        total += poll_all(sub, &no_fail);
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].rc, 0);
    }
    total += poll_all(sub, &no_fail);
    assert_int_equal(total, WRITERS * PER_WRITER);
    assert_int_equal(harness_int(sub, "SELECT count(*) FROM seen"), WRITERS * PER_WRITER);
    assert_int_equal(harness_int(sub, "SELECT max(position) FROM seen"), WRITERS * PER_WRITER);
    sl_db_close(sub);
}

/* Two pollers of one subscriber on two connections (two instances of a service): each event
 * is handled once. `applied` has no key, so a double application would show as a row too many
 * (a delta projection would silently count it twice). */
#define POLLED_EVENTS 240

typedef struct poller {
    const char *url;
    int rc;
    size_t handled;
} poller;

static int apply_plain(void *data, sl_db *tx, const sl_es_record *rec)
{
    (void)data;
    sl_db_stmt *st;
    int rc = sl_db_prepare(tx, "INSERT INTO applied (position) VALUES (?)", &st);
    if (rc) return rc;
    rc = sl_db_bind_int64(st, 1, rec->position);
    if (rc == 0) rc = sl_db_step(st);
    sl_db_stmt_done(st);
    return rc == SL_DB_DONE ? 0 : rc;
}

static void *poll_until_caught_up(void *arg)
{
    poller *p = arg;
    sl_db *db;
    char err[256];
    p->rc = sl_db_open(p->url, NULL, &db, err, sizeof err);
    if (p->rc) return NULL;
    size_t n;
    do {
        p->rc = sl_es_subscription_poll(db, "proj", 2, apply_plain, NULL, &n);
        p->handled += n;
    } while (p->rc == 0 && n > 0);
    sl_db_close(db);
    return NULL;
}

static void test_subscription_two_pollers_apply_once(void **state)
{
    (void)state;
    char url[600];
    sl_db *db = harness_fresh_lib(url);
    HARNESS_OK(db, sl_db_exec(db, "CREATE TABLE applied (position BIGINT NOT NULL)"));
    sl_es_event evs[4] = {{NULL, "t", "{}", NULL},
                          {NULL, "t", "{}", NULL},
                          {NULL, "t", "{}", NULL},
                          {NULL, "t", "{}", NULL}};
    for (int i = 0; i < POLLED_EVENTS / 4; i++) {
        sl_es_result r;
        HARNESS_OK(db, sl_db_begin(db));
        HARNESS_OK(db, sl_es_append(db, "s", SL_ES_ANY, evs, 4, 0, &r));
        HARNESS_OK(db, sl_db_commit(db));
    }
    poller p[2] = {{.url = url}, {.url = url}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, poll_until_caught_up, &p[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(p[i].rc, 0);
    }
    assert_int_equal(p[0].handled + p[1].handled, POLLED_EVENTS);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM applied"), POLLED_EVENTS);
    assert_int_equal(harness_int(db, "SELECT count(DISTINCT position) FROM applied"),
                     POLLED_EVENTS);
    sl_db_close(db);
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expected_versions),
        cmocka_unit_test(test_batch_all_or_nothing_and_idempotent),
        cmocka_unit_test(test_reads),
        cmocka_unit_test(test_snapshots),
        cmocka_unit_test(test_several_streams_one_transaction),
        cmocka_unit_test(test_resend_compares_ids),
        cmocka_unit_test(test_concurrent_appenders_one_wins),
        cmocka_unit_test(test_concurrent_any_appenders_all_win),
        cmocka_unit_test(test_upgrade_from_first_layout),
        cmocka_unit_test(test_subscription_checkpoint_in_own_tx),
        cmocka_unit_test(test_subscription_never_skips_late_commit),
        cmocka_unit_test(test_subscription_under_concurrent_writers),
        cmocka_unit_test(test_subscription_two_pollers_apply_once),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    harness_done();
    return rc;
}
