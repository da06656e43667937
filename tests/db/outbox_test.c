/*
 * Conformance suite for the transactional outbox, the relay and the inbox,
 * on SQLite and PostgreSQL: envelopes written in the caller's transaction,
 * ordered publishing with whole-batch retries and backoff, marking only
 * after confirmation, a relay killed with SIGKILL between publish and mark
 * (the event is published again, never lost), an idempotent consumer, the
 * libuv driver woken by the commit hook, and retention.
 */
#include "db_harness.h"

#include <shoal/json.h>
#include <shoal/outbox.h>

#include <jansson.h>
#include <signal.h>
#include <sys/wait.h>

#define MAXREC 256

typedef struct recpub {
    char ids[MAXREC][SL_DB_UUID_STR];
    char subjects[MAXREC][16];
    int n, calls, fail_next, async;
    sl_outbox_done_cb pending;
    void *pending_data;
    int npend; /* async: every completion not yet called, in publish order */
    sl_outbox_done_cb pend_cb[16];
    void *pend_data[16];
    size_t pend_n[16];
    uv_loop_t *stop_loop_at; /* stop this loop after a successful publish */
    int write_fd;            /* child: report ids through a pipe */
} recpub;

static int rec_publish(void *ctx, const sl_outbox_msg *m, size_t n, sl_outbox_done_cb done,
                       void *dd)
{
    recpub *p = ctx;
    p->calls++;
    if (p->fail_next > 0) {
        p->fail_next--;
        done(dd, SL_EUNAVAIL);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (p->write_fd > 0) {
            char line[64];
            int k = snprintf(line, sizeof line, "%s\n", m[i].id);
            if (write(p->write_fd, line, (size_t)k) != k) _exit(3);
        }
        if (p->n < MAXREC) {
            snprintf(p->ids[p->n], SL_DB_UUID_STR, "%s", m[i].id);
            snprintf(p->subjects[p->n], 16, "%s", m[i].subject);
            p->n++;
        }
    }
    if (p->async) {
        p->pending = done;
        p->pending_data = dd;
        if (p->npend < 16) {
            p->pend_cb[p->npend] = done;
            p->pend_data[p->npend] = dd;
            p->pend_n[p->npend++] = n;
        }
        return 0;
    }
    done(dd, 0);
    if (p->stop_loop_at) uv_stop(p->stop_loop_at);
    return 0;
}

static void add_event(sl_db *db, const char *subject, const char *data, char id[SL_DB_UUID_STR])
{
    sl_outbox_event ev = {.source = "/shoal/test",
                          .type = "shop.test.happened.v1",
                          .subject = subject,
                          .data_json = data,
                          .traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"};
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, sl_outbox_add(db, &ev, (int64_t)1795869296 * 1000000000, id));
    HARNESS_OK(db, sl_db_commit(db));
}

static int64_t backlog(sl_db *db)
{
    int64_t n, age;
    HARNESS_OK(db, sl_outbox_backlog(db, 1795869296000 + 5000, &n, &age));
    if (n > 0) assert_int_equal(age, 5000);
    return n;
}

static void test_add_writes_envelope_in_tx(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    sl_outbox_event ev = {.source = "/shoal/order", .type = "t", .subject = "o-1"};
    char id[SL_DB_UUID_STR];
    assert_int_equal(sl_outbox_add(db, &ev, 0, id), SL_ESTATE); /* needs a transaction */
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, sl_outbox_add(db, &ev, 0, id));
    sl_db_rollback(db);
    assert_int_equal(backlog(db), 0);

    add_event(db, "o-1", "{\"total\":1250,\"currency\":\"EUR\"}", id);
    assert_int_equal(backlog(db), 1);
    sl_db_stmt *st;
    HARNESS_OK(db, sl_db_prepare(db, "SELECT envelope, id, subject FROM outbox", &st));
    assert_int_equal(sl_db_step(st), SL_DB_ROW);
    json_error_t err;
    json_t *env = json_loads(sl_db_column_text(st, 0, NULL), 0, &err);
    assert_non_null(env);
    assert_string_equal(sl_db_column_text(st, 1, NULL), id);
    assert_string_equal(sl_db_column_text(st, 2, NULL), "o-1");
    sl_db_stmt_done(st);
    assert_string_equal(json_string_value(json_object_get(env, "specversion")), "1.0");
    assert_string_equal(json_string_value(json_object_get(env, "id")), id);
    assert_int_equal(id[14], '7'); /* UUIDv7 */
    assert_string_equal(json_string_value(json_object_get(env, "source")), "/shoal/test");
    assert_string_equal(json_string_value(json_object_get(env, "type")), "shop.test.happened.v1");
    assert_string_equal(json_string_value(json_object_get(env, "subject")), "o-1");
    assert_string_equal(json_string_value(json_object_get(env, "time")),
                        "2026-11-28T12:34:56.000Z");
    assert_string_equal(json_string_value(json_object_get(env, "datacontenttype")),
                        "application/json");
    assert_string_equal(json_string_value(json_object_get(env, "traceparent")),
                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    json_t *data = json_object_get(env, "data");
    assert_int_equal(json_integer_value(json_object_get(data, "total")), 1250);
    json_decref(env);

    /* Bad input. */
    HARNESS_OK(db, sl_db_begin(db));
    ev.data_json = "{not json";
    assert_int_equal(sl_outbox_add(db, &ev, 0, NULL), SL_EINVAL);
    ev.data_json = NULL;
    ev.type = "";
    assert_int_equal(sl_outbox_add(db, &ev, 0, NULL), SL_EINVAL);
    ev.type = "t";
    ev.id = "given-1"; /* a caller-given id twice */
    assert_int_equal(sl_outbox_add(db, &ev, 0, NULL), 0);
    assert_int_equal(sl_outbox_add(db, &ev, 0, NULL), SL_ECONFLICT);
    sl_db_rollback(db);
    sl_db_close(db);
}

/* Attributes are escaped, data is kept as given (checked, not rewritten), and what the
 * consumers' parser would refuse is refused here. */
static void test_add_escapes_and_checks(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    sl_outbox_event ev = {.source = "/shoal/t\\x",
                          .type = "shop.test.happened.v1",
                          .subject = "caf\xc3\xa9 \"q\"\n\x01",
                          .data_json = " [1, {\"k\": \"v\\u00e9\"}] "};
    char id[SL_DB_UUID_STR];
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, sl_outbox_add(db, &ev, 0, id));
    HARNESS_OK(db, sl_db_commit(db));
    sl_db_stmt *st;
    HARNESS_OK(db, sl_db_prepare(db, "SELECT envelope FROM outbox", &st));
    assert_int_equal(sl_db_step(st), SL_DB_ROW);
    json_t *env = json_loads(sl_db_column_text(st, 0, NULL), JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(strstr(sl_db_column_text(st, 0, NULL), "\\u0001"));
    sl_db_stmt_done(st);
    assert_non_null(env);
    assert_string_equal(json_string_value(json_object_get(env, "subject")), ev.subject);
    assert_string_equal(json_string_value(json_object_get(env, "source")), ev.source);
    json_t *want = json_loads(ev.data_json, 0, NULL);
    assert_true(json_equal(json_object_get(env, "data"), want));
    json_decref(want);
    json_decref(env);

    HARNESS_OK(db, sl_db_begin(db));
    ev.subject = "bad \xc3";
    assert_int_equal(sl_outbox_add(db, &ev, 0, NULL), SL_EINVAL); /* not UTF-8 */
    ev.subject = "s";
    ev.data_json = "{\"a\":1,\"a\":2}";
    assert_int_equal(sl_outbox_add(db, &ev, 0, NULL), SL_EINVAL); /* duplicate key */
    ev.data_json = "{\"a\":1} x";
    assert_int_equal(sl_outbox_add(db, &ev, 0, NULL), SL_EINVAL); /* trailing bytes */
    sl_db_rollback(db);
    sl_db_close(db);
}

/* Writes data nested `depth` arrays deep around `leaf`. */
static char *nested(int depth, const char *leaf)
{
    size_t n = strlen(leaf);
    char *b = malloc((size_t)depth * 2 + n + 1);
    memset(b, '[', (size_t)depth);
    memcpy(b + depth, leaf, n);
    memset(b + depth + n, ']', (size_t)depth);
    b[depth * 2 + n] = '\0';
    return b;
}

/* Every envelope the outbox writes is one consumers can read under the default depth limit:
 * data sits one level inside the envelope, so it may nest one level less. Both the quick proof
 * (plain data) and the full parse (a \u escape) hold that line. */
static void test_add_bounds_data_depth(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    const char *leaves[] = {"1", "\"\\u00e9\""};
    for (size_t k = 0; k < 2; k++) {
        for (int depth = (int)SL_JSON_DEFAULT_MAX_DEPTH - 2;
             depth <= (int)SL_JSON_DEFAULT_MAX_DEPTH; depth++) {
            char *data = nested(depth, leaves[k]);
            sl_outbox_event ev = {
                .source = "/t", .type = "shop.test.deep.v1", .subject = "s", .data_json = data};
            HARNESS_OK(db, sl_db_begin(db));
            int rc = sl_outbox_add(db, &ev, 0, NULL);
            if (depth < (int)SL_JSON_DEFAULT_MAX_DEPTH) {
                assert_int_equal(rc, 0);
                sl_db_stmt *st;
                HARNESS_OK(db, sl_db_prepare(db,
                                             "SELECT envelope FROM outbox ORDER BY seq DESC "
                                             "LIMIT 1",
                                             &st));
                assert_int_equal(sl_db_step(st), SL_DB_ROW);
                size_t len = 0;
                const char *env = sl_db_column_text(st, 0, &len);
                json_t *root = NULL;
                assert_int_equal(sl_json_parse(env, len, NULL, &root, NULL), 0);
                json_decref(root);
                sl_db_stmt_done(st);
            } else {
                assert_int_equal(rc, SL_EINVAL);
            }
            sl_db_rollback(db);
            free(data);
        }
    }
    sl_db_close(db);
}

static void test_relay_publishes_in_order_and_marks(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    char ids[10][SL_DB_UUID_STR];
    for (int i = 0; i < 10; i++)
        add_event(db, i % 2 ? "odd" : "even", "{}", ids[i]);
    recpub p = {0};
    sl_outbox_publisher pub = {rec_publish, &p};
    sl_outbox_relay_options o = {.batch_max = 4};
    sl_outbox_relay *r;
    assert_int_equal(sl_outbox_relay_new(db, &pub, &o, &r), 0);
    int64_t next;
    assert_int_equal(sl_outbox_relay_pump(r, &next), 4);
    assert_int_equal(next, 0);
    assert_int_equal(backlog(db), 6);
    assert_int_equal(sl_outbox_relay_pump(r, &next), 4);
    assert_int_equal(sl_outbox_relay_pump(r, &next), 2);
    assert_int_equal(sl_outbox_relay_pump(r, &next), 0);
    assert_int_equal(next, -1);
    assert_int_equal(p.n, 10);
    for (int i = 0; i < 10; i++)
        assert_string_equal(p.ids[i], ids[i]);
    assert_int_equal(backlog(db), 0);
    sl_outbox_relay_free(r);
    sl_db_close(db);
}

static void test_relay_retries_with_backoff_keeping_order(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    char ids[6][SL_DB_UUID_STR];
    for (int i = 0; i < 6; i++)
        add_event(db, "same-subject", "{}", ids[i]);
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 1795869296000000000);
    recpub p = {.fail_next = 3};
    sl_outbox_publisher pub = {rec_publish, &p};
    sl_outbox_relay_options o = {.batch_max = 4, .retry_base_ms = 100, .clock = &fc.clock};
    sl_outbox_relay *r;
    assert_int_equal(sl_outbox_relay_new(db, &pub, &o, &r), 0);
    int64_t next, expect[] = {100, 200, 400};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(sl_outbox_relay_pump(r, &next), 4);
        assert_int_equal(sl_outbox_relay_failures(r), k + 1);
        assert_int_equal(next, expect[k]);
        /* Before the backoff expires nothing is attempted. */
        assert_int_equal(sl_outbox_relay_pump(r, &next), 0);
        assert_int_equal(next, expect[k]);
        sl_fake_clock_advance(&fc, (expect[k] - 1) * 1000000);
        assert_int_equal(sl_outbox_relay_pump(r, &next), 0);
        assert_int_equal(next, 1);
        sl_fake_clock_advance(&fc, 1000000);
    }
    assert_int_equal(p.calls, 3);
    assert_int_equal(backlog(db), 6); /* nothing marked while failing */
    assert_int_equal(sl_outbox_relay_pump(r, &next), 4);
    assert_int_equal(sl_outbox_relay_failures(r), 0);
    assert_int_equal(sl_outbox_relay_pump(r, &next), 2);
    assert_int_equal(p.n, 6);
    for (int i = 0; i < 6; i++)
        assert_string_equal(p.ids[i], ids[i]); /* the subject's order survived the retries */
    sl_outbox_relay_free(r);
    sl_db_close(db);
}

static void test_relay_marks_only_after_confirmation(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    char id[SL_DB_UUID_STR];
    add_event(db, "s", "{}", id);
    recpub p = {.async = 1};
    sl_outbox_publisher pub = {rec_publish, &p};
    sl_outbox_relay *r;
    assert_int_equal(sl_outbox_relay_new(db, &pub, NULL, &r), 0);
    int64_t next;
    assert_int_equal(sl_outbox_relay_pump(r, &next), 1);
    assert_int_equal(next, -1);
    assert_true(sl_outbox_relay_busy(r));
    assert_int_equal(sl_outbox_relay_pump(r, &next), 0); /* one batch in flight at a time */
    assert_int_equal(backlog(db), 1);
    p.pending(p.pending_data, 0);
    assert_false(sl_outbox_relay_busy(r));
    assert_int_equal(backlog(db), 0);
    /* A failed asynchronous completion keeps the row. */
    add_event(db, "s", "{}", id);
    assert_int_equal(sl_outbox_relay_pump(r, &next), 1);
    p.pending(p.pending_data, SL_ETIMEDOUT);
    assert_int_equal(backlog(db), 1);
    assert_int_equal(sl_outbox_relay_failures(r), 1);
    sl_outbox_relay_free(r);
    sl_db_close(db);
}

/* Several batches are with the publisher at once; each is marked when it completes, in any
 * order; a failure stops new batches until the pipeline is empty, then the relay resends from
 * the oldest unpublished row. */
static void test_relay_pipelines_batches(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    char ids[20][SL_DB_UUID_STR];
    for (int i = 0; i < 20; i++)
        add_event(db, i % 2 ? "odd" : "even", "{}", ids[i]);
    recpub p = {.async = 1};
    sl_outbox_publisher pub = {rec_publish, &p};
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 1795869296000000000);
    sl_outbox_relay_options o = {
        .batch_max = 4, .max_inflight = 3, .retry_base_ms = 100, .clock = &fc.clock};
    sl_outbox_relay *r;
    assert_int_equal(sl_outbox_relay_new(db, &pub, &o, &r), 0);
    int64_t next;
    assert_int_equal(sl_outbox_relay_pump(r, &next), 4);
    assert_int_equal(next, 0); /* full batch and room: more now */
    assert_int_equal(sl_outbox_relay_pump(r, &next), 4);
    assert_int_equal(sl_outbox_relay_pump(r, &next), 4);
    assert_int_equal(next, -1); /* the pipeline is full */
    assert_int_equal(sl_outbox_relay_busy(r), 3);
    assert_int_equal(sl_outbox_relay_pump(r, &next), 0);
    for (int i = 0; i < 12; i++)
        assert_string_equal(p.ids[i], ids[i]); /* each batch follows the previous one */
    /* The second completes first: only its rows are marked. */
    p.pend_cb[1](p.pend_data[1], 0);
    assert_int_equal(backlog(db), 16);
    assert_int_equal(sl_outbox_relay_busy(r), 2);
    assert_int_equal(sl_outbox_relay_pump(r, &next), 4); /* rows 12..15 */
    assert_string_equal(p.ids[12], ids[12]);
    /* The first fails: nothing new starts while the others are out. */
    p.pend_cb[0](p.pend_data[0], SL_ETIMEDOUT);
    assert_int_equal(sl_outbox_relay_failures(r), 1);
    assert_int_equal(sl_outbox_relay_pump(r, &next), 0);
    p.pend_cb[2](p.pend_data[2], 0); /* a success while draining keeps the failure count */
    assert_int_equal(sl_outbox_relay_failures(r), 1);
    assert_int_equal(sl_outbox_relay_pump(r, &next), 0);
    p.pend_cb[3](p.pend_data[3], 0);
    assert_int_equal(sl_outbox_relay_busy(r), 0);
    assert_int_equal(backlog(db), 8); /* rows 0..3 and 16..19 */
    /* After the backoff the relay starts again at the oldest row: the failed batch first. */
    int calls = p.calls;
    assert_int_equal(sl_outbox_relay_pump(r, &next), 0);
    assert_int_equal(next, 100);
    sl_fake_clock_advance(&fc, 100 * 1000000);
    assert_int_equal(sl_outbox_relay_pump(r, &next), 4);
    assert_int_equal(p.calls, calls + 1);
    assert_string_equal(p.ids[16], ids[0]);
    assert_string_equal(p.ids[19], ids[3]);
    assert_int_equal(sl_outbox_relay_pump(r, &next), 4);
    assert_string_equal(p.ids[20], ids[16]);
    p.pend_cb[4](p.pend_data[4], 0);
    p.pend_cb[5](p.pend_data[5], 0);
    assert_int_equal(backlog(db), 0);
    assert_int_equal(sl_outbox_relay_failures(r), 0);
    sl_outbox_relay_free(r);
    sl_db_close(db);
}

/* The child: a relay whose publisher reports ids through a pipe and never confirms. */
static void relay_child(const char *url, int fd)
{
    sl_db *db;
    char err[256];
    if (sl_db_open(url, NULL, &db, err, sizeof err) != 0) _exit(2);
    recpub *p = calloc(1, sizeof *p);
    p->async = 1;
    p->write_fd = fd;
    sl_outbox_publisher pub = {rec_publish, p};
    sl_outbox_relay *r;
    if (sl_outbox_relay_new(db, &pub, NULL, &r) != 0) _exit(2);
    int64_t next;
    if (sl_outbox_relay_pump(r, &next) != 5) _exit(2);
    for (;;)
        pause(); /* killed here: published, not marked */
}

static void test_relay_killed_between_publish_and_mark(void **state)
{
    (void)state;
    char url[600];
    sl_db *db = harness_fresh_lib(url);
    char ids[5][SL_DB_UUID_STR];
    for (int i = 0; i < 5; i++)
        add_event(db, "k", "{}", ids[i]);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        relay_child(url, fds[1]);
    }
    close(fds[1]);
    char buf[5 * 37 + 1];
    size_t got = 0;
    while (got < sizeof buf - 1) {
        ssize_t k = read(fds[0], buf + got, sizeof buf - 1 - got);
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fds[0]);
    assert_int_equal(got, 5 * 37); /* the child published all five */
    buf[got] = '\0';
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    for (int i = 0; i < 5; i++)
        assert_non_null(strstr(buf, ids[i]));

    assert_int_equal(backlog(db), 5); /* never marked */
    recpub p = {0};
    sl_outbox_publisher pub = {rec_publish, &p};
    sl_outbox_relay *r;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_outbox_relay_options o = {.poll_ms = 10, .clock = &fc.clock};
    assert_int_equal(sl_outbox_relay_new(db, &pub, &o, &r), 0);
    int64_t next;
    /* PostgreSQL: the child's session held the relay lease; the server drops it once it saw
     * the socket close (a bounded wait), then this relay takes over. */
    int n = 0;
    for (int i = 0; i < 500 && n == 0; i++) {
        n = sl_outbox_relay_pump(r, &next);
        if (n == 0) {
            assert_true(harness_g.pg);
            assert_false(sl_outbox_relay_leader(r));
            usleep(10 * 1000);
            sl_fake_clock_advance(&fc, INT64_C(10) * 1000000);
        }
    }
    assert_int_equal(n, 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(p.ids[i], ids[i]); /* published again, in order */
    assert_int_equal(backlog(db), 0);
    sl_outbox_relay_free(r);
    sl_db_close(db);
}

/* An idempotent consumer: claim + effect in one transaction. Returns 1 if applied. */
static int consume(sl_db *db, const char *event_id, int fail_after_claim)
{
    HARNESS_OK(db, sl_db_begin(db));
    int first = sl_inbox_claim(db, "billing", event_id, 1000);
    assert_true(first >= 0);
    if (first) HARNESS_OK(db, sl_db_exec(db, "UPDATE counter SET n = n + 1"));
    if (fail_after_claim) {
        sl_db_rollback(db);
        return 0;
    }
    HARNESS_OK(db, sl_db_commit(db));
    return first;
}

static void test_inbox_applies_once(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    HARNESS_OK(db, sl_db_exec(db, "CREATE TABLE counter (n BIGINT); INSERT INTO counter VALUES "
                                  "(0)"));
    assert_int_equal(sl_inbox_claim(db, "c", "e", 0), SL_ESTATE);
    assert_int_equal(consume(db, "ev-1", 1), 0); /* crashed consumer: claim rolled back */
    assert_int_equal(consume(db, "ev-1", 0), 1);
    assert_int_equal(consume(db, "ev-1", 0), 0); /* redelivery */
    assert_int_equal(consume(db, "ev-2", 0), 1);
    assert_int_equal(harness_int(db, "SELECT n FROM counter"), 2);
    /* Another consumer group has its own inbox. */
    HARNESS_OK(db, sl_db_begin(db));
    assert_int_equal(sl_inbox_claim(db, "shipping", "ev-1", 1000), 1);
    HARNESS_OK(db, sl_db_commit(db));
    sl_db_close(db);
}

/* Claims in batches: 150 ids cross every statement size (64, 16, 4, 1); ids claimed before and
 * an id repeated within the batch are 0, each new id exactly once is 1, and a rollback forgets
 * them all. */
static void test_inbox_claim_many(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    enum { N = 150 };
    char buf[N][16];
    const char *ids[N];
    unsigned char claimed[N];
    for (int i = 0; i < N; i++) {
        snprintf(buf[i], sizeof buf[i], "ev-%d", i % 140); /* the last 10 repeat the first 10 */
        ids[i] = buf[i];
    }
    assert_int_equal(sl_inbox_claim_many(db, "c", ids, N, 0, claimed), SL_ESTATE);
    HARNESS_OK(db, sl_db_begin(db));
    assert_int_equal(sl_inbox_claim(db, "c", "ev-7", 5), 1); /* claimed before */
    assert_int_equal(sl_inbox_claim(db, "c", "ev-100", 5), 1);
    HARNESS_OK(db, sl_db_commit(db));

    HARNESS_OK(db, sl_db_begin(db));
    assert_int_equal(sl_inbox_claim_many(db, "c", ids, N, 9, claimed), 0);
    sl_db_rollback(db);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM inbox"), 2);

    HARNESS_OK(db, sl_db_begin(db));
    assert_int_equal(sl_inbox_claim_many(db, "c", ids, N, 9, claimed), 0);
    HARNESS_OK(db, sl_db_commit(db));
    for (int i = 0; i < N; i++) {
        int want = i < 140 && i != 7 && i != 100;
        assert_int_equal(claimed[i], want);
    }
    assert_int_equal(harness_int(db, "SELECT count(*) FROM inbox"), 140);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM inbox WHERE received_ms = 9"), 138);
    /* Everything again: nothing new. Another consumer: everything new. */
    HARNESS_OK(db, sl_db_begin(db));
    assert_int_equal(sl_inbox_claim_many(db, "c", ids, 3, 10, claimed), 0);
    assert_int_equal(claimed[0] + claimed[1] + claimed[2], 0);
    assert_int_equal(sl_inbox_claim_many(db, "d", ids, 3, 10, claimed), 0);
    assert_int_equal(claimed[0] + claimed[1] + claimed[2], 3);
    const char *bad[] = {"ev-1", ""};
    assert_int_equal(sl_inbox_claim_many(db, "c", bad, 2, 10, claimed), SL_EINVAL);
    HARNESS_OK(db, sl_db_commit(db));
    sl_db_close(db);
}

static void test_retention(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    char id[SL_DB_UUID_STR];
    add_event(db, "r", "{}", id);
    add_event(db, "r", "{}", id);
    HARNESS_OK(db, sl_db_exec(db, "UPDATE outbox SET published_ms = 500 WHERE seq = (SELECT "
                                  "min(seq) FROM outbox)"));
    HARNESS_OK(db, sl_db_begin(db));
    assert_int_equal(sl_inbox_claim(db, "c", "old", 100), 1);
    assert_int_equal(sl_inbox_claim(db, "c", "new", 900), 1);
    HARNESS_OK(db, sl_db_commit(db));
    int64_t removed;
    HARNESS_OK(db, sl_outbox_prune(db, 1000, &removed));
    assert_int_equal(removed, 1); /* the unpublished row stays, however old */
    HARNESS_OK(db, sl_inbox_prune(db, 500, &removed));
    assert_int_equal(removed, 1);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM outbox"), 1);
    assert_int_equal(harness_int(db, "SELECT count(*) FROM inbox"), 1);
    sl_db_close(db);
}

/* Retention removes the published prefix by seq: a row published before the cutoff but behind
 * an unpublished one (or one published since the cutoff) waits until the prefix reaches it. */
static void test_retention_prefix(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    char id[SL_DB_UUID_STR];
    for (int i = 0; i < 4; i++)
        add_event(db, "p", "{}", id);
    int64_t first = harness_int(db, "SELECT min(seq) FROM outbox");
    char sql[160];
    /* seq first: old; first+1: unpublished; first+2: old; first+3: recent */
    snprintf(sql, sizeof sql,
             "UPDATE outbox SET published_ms = CASE seq - %lld WHEN 0 THEN 500 WHEN 2 THEN 500 "
             "WHEN 3 THEN 2000 END WHERE seq - %lld IN (0, 2, 3)",
             (long long)first, (long long)first);
    HARNESS_OK(db, sl_db_exec(db, sql));
    int64_t removed = -1;
    HARNESS_OK(db, sl_outbox_prune(db, 1000, &removed));
    assert_int_equal(removed, 1); /* only the prefix before the unpublished row */
    snprintf(sql, sizeof sql, "UPDATE outbox SET published_ms = 600 WHERE seq = %lld",
             (long long)first + 1);
    HARNESS_OK(db, sl_db_exec(db, sql));
    HARNESS_OK(db, sl_outbox_prune(db, 1000, &removed));
    assert_int_equal(removed, 2); /* up to the row published after the cutoff */
    assert_int_equal(harness_int(db, "SELECT count(*) FROM outbox"), 1);
    HARNESS_OK(db, sl_outbox_prune(db, 3000, &removed));
    assert_int_equal(removed, 1);
    HARNESS_OK(db, sl_outbox_prune(db, 3000, &removed));
    assert_int_equal(removed, 0); /* an empty table */
    sl_db_close(db);
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
    fail_msg("the relay was not woken by the commit");
}

static void on_commit_later(uv_timer_t *t)
{
    sl_db *db = t->data;
    char id[SL_DB_UUID_STR];
    add_event(db, "uv", "{}", id); /* the commit hook notifies the relay */
}

static void test_uv_driver_woken_by_commit(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    recpub p = {.stop_loop_at = &loop};
    sl_outbox_publisher pub = {rec_publish, &p};
    /* A poll far beyond the guard: only the wake-up can deliver in time. */
    sl_outbox_relay_options o = {.poll_ms = 3600000};
    sl_outbox_relay *r;
    assert_int_equal(sl_outbox_relay_new(db, &pub, &o, &r), 0);
    assert_int_equal(sl_outbox_relay_start(r, &loop), 0);
    sl_outbox_relay_watch(r, db);
    uv_timer_t later, guard;
    uv_timer_init(&loop, &later);
    uv_timer_init(&loop, &guard);
    later.data = db;
    uv_timer_start(&later, on_commit_later, 20, 0);
    uv_timer_start(&guard, on_guard, 30000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(p.n, 1);
    assert_int_equal(backlog(db), 0);
    sl_outbox_relay_stop(r);
    uv_close((uv_handle_t *)&later, NULL);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    sl_db_set_commit_hook(db, NULL, NULL);
    sl_outbox_relay_free(r);
    sl_db_close(db);
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_writes_envelope_in_tx),
        cmocka_unit_test(test_add_escapes_and_checks),
        cmocka_unit_test(test_add_bounds_data_depth),
        cmocka_unit_test(test_relay_publishes_in_order_and_marks),
        cmocka_unit_test(test_relay_retries_with_backoff_keeping_order),
        cmocka_unit_test(test_relay_marks_only_after_confirmation),
        cmocka_unit_test(test_relay_pipelines_batches),
        cmocka_unit_test(test_retention_prefix),
        cmocka_unit_test(test_relay_killed_between_publish_and_mark),
        cmocka_unit_test(test_inbox_applies_once),
        cmocka_unit_test(test_inbox_claim_many),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_uv_driver_woken_by_commit),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    harness_done();
    return rc;
}
