/*
 * Durability of the outbox → bus → inbox pipeline (label nats). Each case
 * starts its own nats-server(s) (scripts/nats-fixture.sh, or a 3-node
 * cluster on loopback), runs the helper programs bus_producer (outbox +
 * relay) and bus_consumer (transactional runner) from build/bin, and kills
 * things with SIGKILL mid-run:
 *  - test_pipeline_kills: the producer, then the consumer, then
 *    nats-server are kill -9-ed and restarted;
 *  - test_cluster_node_loss: replicas 3 on a 3-node cluster, one node
 *    killed for good;
 *  - test_open_before_server: a bus opened while no server listens at its
 *    address returns at once and connects once one does;
 *  - test_inflight_bound: while its loop is busy, an unordered instance
 *    holds exactly max_inflight unacknowledged messages (the server's own
 *    count of the consumer's pending acks), however its fetch threads
 *    split that window, and an ordered one exactly one per partition.
 * Then every event must be applied exactly once: `effects` (no unique
 * constraint; only the inbox claim protects it) holds each number once.
 * Event counts: SHOAL_PIPELINE_EVENTS (default 100000; 20000 under ASan)
 * and SHOAL_CLUSTER_EVENTS (default 20000; 5000 under ASan). The consumer
 * runs unordered (the throughput mode); ordering is covered by the
 * conformance suite. Waits are liveness bounds, never speed assertions.
 */
#include "harness.h"

#include "bus/bus_int.h"
#include "outbox/envelope_encode.h"

#include <shoal/bus.h>
#include <shoal/db.h>

#include <nats/nats.h>

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif
#ifndef ASAN
#define ASAN 0
#endif

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    return v && atol(v) > 0 ? atol(v) : def;
}

static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    assert_int_equal(system(cmd), 0);
}

static void read_file(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(out, (int)cap, f));
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
}

/* count(*) and count(DISTINCT n) of effects in the consumer's database; 0 before it exists. */
static void effects(const char *db_url, long *total, long *distinct)
{
    *total = *distinct = 0;
    sl_db *db;
    if (sl_db_open(db_url, NULL, &db, NULL, 0) != 0) return;
    sl_db_stmt *st;
    if (sl_db_prepare(db, "SELECT count(*), count(DISTINCT n) FROM effects", &st) == 0) {
        if (sl_db_step(st) == SL_DB_ROW) {
            *total = (long)sl_db_column_int64(st, 0);
            *distinct = (long)sl_db_column_int64(st, 1);
        }
        sl_db_stmt_done(st);
    }
    sl_db_close(db);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Waits until effects reach `n` (or the producer `*prod` exits, which is reaped and cleared);
 * returns the count reached. Bounded by timeout_s. */
static long wait_effects(const char *db_url, long n, pid_t *prod, int timeout_s)
{
    long t = 0, d = 0;
    for (int i = 0; i < timeout_s * 10; i++) {
        effects(db_url, &t, &d);
        if (t >= n) break;
        if (prod && *prod > 0) {
            int st;
            if (waitpid(*prod, &st, WNOHANG) == *prod) {
                assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
                *prod = 0;
            }
        }
        sleep_ms(100);
    }
    return t;
}

/* Every process a test starts, and the NATS fixture it runs, so that a failed assertion (which
 * leaves the test at once) still stops them in the teardown: a consumer or nats-server left
 * running would load every later test. */
enum { TRACKED_MAX = 64 };
static pid_t tracked[TRACKED_MAX];
static size_t ntracked;
static char fixture_dir[512]; /* a nats-fixture.sh store to stop, or "" */

static pid_t spawn_tracked(char *const argv[], char *const env[], const char *log)
{
    pid_t pid = th_spawn(argv, env, log);
    if (ntracked < TRACKED_MAX) tracked[ntracked++] = pid;
    return pid;
}

static int stop_leftovers(void **state)
{
    (void)state;
    for (size_t i = 0; i < ntracked; i++) {
        int st;
        /* Only a child not reaped yet is still ours to kill (th_stop reaps what it stops). */
        if (waitpid(tracked[i], &st, WNOHANG) == 0) {
            kill(tracked[i], SIGKILL);
            waitpid(tracked[i], &st, 0);
        }
    }
    ntracked = 0;
    if (fixture_dir[0]) {
        const char *src = getenv("SHOAL_SOURCE_DIR");
        sh("%s/scripts/nats-fixture.sh stop %s >/dev/null 2>&1 || true", src, fixture_dir);
        fixture_dir[0] = '\0';
    }
    return 0;
}

static pid_t spawn_producer(const char *dir, const char *url, const char *ctx, long n,
                            const char *log)
{
    char db[512], count[32];
    snprintf(db, sizeof db, "sqlite:%s/producer.db", dir);
    snprintf(count, sizeof count, "%ld", n);
    char *argv[] = {"bus_producer", db, (char *)url, (char *)ctx, count, NULL};
    return spawn_tracked(argv, NULL, log);
}

static pid_t spawn_consumer(const char *dir, const char *url, const char *ctx, const char *log)
{
    char db[512];
    snprintf(db, sizeof db, "sqlite:%s/consumer.db", dir);
    char *argv[] = {"bus_consumer", db, (char *)url, (char *)ctx, NULL};
    char *env[] = {"BUS_UNORDERED=1", "BUS_REPLICAS=1", NULL};
    return spawn_tracked(argv, env, log);
}

static void finish(const char *cdb, long n, pid_t *prod, pid_t cons)
{
    /* The producer exits 0 once everything is written and published. */
    long t = wait_effects(cdb, n, prod, 240);
    if (*prod > 0) {
        int st, gone = 0;
        for (int i = 0; i < 1200 && !(gone = waitpid(*prod, &st, WNOHANG) == *prod); i++)
            sleep_ms(100);
        if (!gone) {
            /* Never leave it running (it would load the rest of the suite). */
            th_stop(*prod, SIGKILL, 5000);
            th_stop(cons, SIGKILL, 5000);
            fail_msg("the producer did not publish everything within the bound");
        }
        *prod = 0;
    }
    sleep_ms(1500); /* late redeliveries would show up as duplicates now */
    long d = 0;
    effects(cdb, &t, &d);
    th_stop(cons, SIGTERM, 10000);
    fprintf(stderr, "pipeline: %ld effects, %ld distinct, of %ld events\n", t, d, n);
    assert_int_equal(d, n); /* none lost */
    assert_int_equal(t, n); /* none applied twice */
}

static void test_pipeline_kills(void **state)
{
    (void)state;
    long n = env_long("SHOAL_PIPELINE_EVENTS", ASAN ? 20000 : 100000);
    char dir[] = "/tmp/shoal-pipe-XXXXXX", nats[512], url[256], cdb[600], log[600];
    assert_non_null(mkdtemp(dir));
    const char *src = getenv("SHOAL_SOURCE_DIR");
    snprintf(nats, sizeof nats, "%s/nats", dir);
    sh("%s/scripts/nats-fixture.sh start %s >/dev/null", src, nats);
    snprintf(fixture_dir, sizeof fixture_dir, "%s", nats);
    char p[600];
    snprintf(p, sizeof p, "%s/url", nats);
    read_file(p, url, sizeof url);
    snprintf(cdb, sizeof cdb, "sqlite:%s/consumer.db", dir);
    snprintf(log, sizeof log, "%s/helpers.log", dir);

    pid_t prod = spawn_producer(dir, url, "pipe", n, log);
    pid_t cons = spawn_consumer(dir, url, "pipe", log);
    /* (a) the producer dies mid-stream and comes back */
    assert_true(wait_effects(cdb, n / 10, &prod, 120) >= n / 10);
    if (prod > 0) {
        th_stop(prod, SIGKILL, 5000);
        prod = spawn_producer(dir, url, "pipe", n, log);
    }
    /* (b) the consumer dies mid-stream and comes back */
    assert_true(wait_effects(cdb, 3 * n / 10, &prod, 120) >= 3 * n / 10);
    th_stop(cons, SIGKILL, 5000);
    cons = spawn_consumer(dir, url, "pipe", log);
    /* (c) nats-server dies mid-stream and comes back on the same port and store */
    assert_true(wait_effects(cdb, n / 2, &prod, 120) >= n / 2);
    char pid[32];
    snprintf(p, sizeof p, "%s/pid", nats);
    read_file(p, pid, sizeof pid);
    kill((pid_t)atol(pid), SIGKILL);
    sleep_ms(500);
    sh("%s/scripts/nats-fixture.sh restart %s >/dev/null", src, nats);
    finish(cdb, n, &prod, cons);
    sh("%s/scripts/nats-fixture.sh stop %s >/dev/null; rm -rf %s", src, nats, dir);
    fixture_dir[0] = '\0';
}

/* Finds nats-server on PATH (Debian installs it in /usr/sbin). */
static const char *nats_server_path(void)
{
    static char path[512];
    const char *env = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s:/usr/sbin:/usr/bin", env ? env : "");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(path, sizeof path, "%s/nats-server", d);
        if (access(path, X_OK) == 0) return path;
    }
    fail_msg("nats-server not found on PATH");
    return NULL;
}

static void test_cluster_node_loss(void **state)
{
    (void)state;
    long n = env_long("SHOAL_CLUSTER_EVENTS", ASAN ? 5000 : 20000);
    char dir[] = "/tmp/shoal-cluster-XXXXXX", url[512] = "", cdb[600], log[600];
    assert_non_null(mkdtemp(dir));
    int port[3], cport[3];
    pid_t srv[3];
    for (int i = 0; i < 3; i++) {
        port[i] = th_free_port();
        cport[i] = th_free_port();
    }
    for (int i = 0; i < 3; i++) {
        char ps[16], cl[64], routes[160], sd[600], name[16], slog[600];
        snprintf(ps, sizeof ps, "%d", port[i]);
        snprintf(cl, sizeof cl, "nats://127.0.0.1:%d", cport[i]);
        snprintf(routes, sizeof routes, "nats://127.0.0.1:%d,nats://127.0.0.1:%d",
                 cport[(i + 1) % 3], cport[(i + 2) % 3]);
        snprintf(sd, sizeof sd, "%s/n%d", dir, i);
        snprintf(name, sizeof name, "n%d", i);
        snprintf(slog, sizeof slog, "%s/n%d.log", dir, i);
        char *argv[] = {(char *)nats_server_path(),
                        "-a",
                        "127.0.0.1",
                        "-p",
                        ps,
                        "-js",
                        "-sd",
                        sd,
                        "--server_name",
                        name,
                        "--cluster_name",
                        "shoal",
                        "--cluster",
                        cl,
                        "--routes",
                        routes,
                        NULL};
        srv[i] = spawn_tracked(argv, NULL, slog);
        char one[64];
        snprintf(one, sizeof one, "%snats://127.0.0.1:%d", i ? "," : "", port[i]);
        strcat(url, one);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(th_wait_port(port[i], 10000), 0);
    snprintf(cdb, sizeof cdb, "sqlite:%s/consumer.db", dir);
    snprintf(log, sizeof log, "%s/helpers.log", dir);
    char db[600], count[32];
    snprintf(db, sizeof db, "sqlite:%s/producer.db", dir);
    snprintf(count, sizeof count, "%ld", n);
    char *pargv[] = {"bus_producer", db, url, "clu", count, NULL};
    char *cargv[] = {"bus_consumer", cdb, url, "clu", NULL};
    char *env[] = {"BUS_UNORDERED=1", "BUS_REPLICAS=3", NULL};
    pid_t prod = spawn_tracked(pargv, env, log);
    pid_t cons = spawn_tracked(cargv, env, log);
    assert_true(wait_effects(cdb, n / 4, &prod, 180) >= n / 4);
    /* One node dies for good; the other two keep the R3 stream's quorum. */
    th_stop(srv[1], SIGKILL, 5000);
    finish(cdb, n, &prod, cons);
    th_stop(srv[0], SIGTERM, 10000);
    th_stop(srv[2], SIGTERM, 10000);
    sh("rm -rf %s", dir);
}

/* Starts one nats-server with JetStream on `port`, its store and log under `dir`. */
static pid_t start_server(const char *dir, int port)
{
    char ps[16], sd[600], slog[600];
    snprintf(ps, sizeof ps, "%d", port);
    snprintf(sd, sizeof sd, "%s/store", dir);
    snprintf(slog, sizeof slog, "%s/server.log", dir);
    char *argv[] = {
        (char *)nats_server_path(), "-a", "127.0.0.1", "-p", ps, "-js", "-sd", sd, NULL};
    pid_t srv = spawn_tracked(argv, NULL, slog);
    assert_int_equal(th_wait_port(port, 10000), 0);
    return srv;
}

/* Runs the loop until the bus is ready (connected, its streams declared): 30 s liveness bound. */
static void wait_bus_ready(uv_loop_t *loop, sl_bus *bus)
{
    uv_update_time(loop);
    for (uint64_t until = uv_now(loop) + 30000; !sl_bus_ready(bus) && uv_now(loop) < until;) {
        uv_run(loop, UV_RUN_NOWAIT);
        sleep_ms(20);
        uv_update_time(loop);
    }
    assert_true(sl_bus_ready(bus));
}

/* No server at the bus's address when it opens (the broker restarting, or started after the
 * service): sl_bus_open must return at once, as the bus being down may not keep a service
 * from starting and serving, and the bus connects and declares its streams in the background
 * once a server listens there. nats.c's Connect with retry-on-failed-connect blocks until it
 * connects unless it has a connected callback; without one this case never got past open. */
static void test_open_before_server(void **state)
{
    (void)state;
    char dir[] = "/tmp/shoal-late-XXXXXX", url[64], err[256] = "";
    assert_non_null(mkdtemp(dir));
    int port = th_free_port();
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    const char *ctx[] = {"late"};
    sl_bus_options o = {.url = url, .contexts = ctx, .n_contexts = 1, .reconnect_wait_ms = 50};
    sl_bus *bus = NULL;
    alarm(60); /* a liveness bound: a blocked open or close ends the test (SIGALRM) */
    /* A bus that never reached its server closes all the same. */
    assert_int_equal(sl_bus_open(&loop, &o, &bus, err, sizeof err), 0);
    sl_bus_close(bus, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(sl_bus_open(&loop, &o, &bus, err, sizeof err), 0);
    alarm(0);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_false(sl_bus_ready(bus));

    pid_t srv = start_server(dir, port);
    wait_bus_ready(&loop, bus); /* connected, and the context's stream declared */

    sl_bus_close(bus, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    th_stop(srv, SIGTERM, 10000);
    sh("rm -rf %s", dir);
}

/* ---- back-pressure ----------------------------------------------------------------------------
 */

static void count_handler(void *data, const sl_bus_msg *m, sl_bus_reply *r)
{
    (void)m;
    (void)r;
    ++*(int *)data;
}

static void on_published(void *data, int status)
{
    *(int *)data = status == 0 ? 1 : -1;
}

/* Runs the loop until *flag reaches `want` or `ms` (a liveness bound) passed. */
static void run_until_set(uv_loop_t *loop, const int *flag, int want, uint64_t ms)
{
    uv_update_time(loop);
    for (uint64_t until = uv_now(loop) + ms; *flag < want && uv_now(loop) < until;) {
        uv_run(loop, UV_RUN_NOWAIT);
        sleep_ms(5);
        uv_update_time(loop);
    }
}

static void test_inflight_bound(void **state)
{
    (void)state;
    enum { N = 60, MAX_INFLIGHT = 6, PARTS = 8 };
    char dir[] = "/tmp/shoal-infl-XXXXXX", url[64], err[256] = "";
    assert_non_null(mkdtemp(dir));
    int port = th_free_port();
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
    pid_t srv = start_server(dir, port);

    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    const char *ctx[] = {"infl"}, *topic = "shop.infl.thing.v1";
    sl_bus_options o = {.url = url, .contexts = ctx, .n_contexts = 1, .partitions = PARTS};
    sl_bus *bus = NULL;
    assert_int_equal(sl_bus_open(&loop, &o, &bus, err, sizeof err), 0);
    wait_bus_ready(&loop, bus);

    sl_bus_out out[N];
    char ids[N][40], subj[N][16], *envs[N];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "infl-%d", i);
        snprintf(subj[i], sizeof subj[i], "s%d", i);
        sl_outbox_event ev = {
            .source = "/test", .type = topic, .subject = subj[i], .data_json = "{\"n\":1}"};
        size_t len;
        assert_int_equal(sl__outbox_envelope_encode(&ev, ids[i], 0, &envs[i], &len), 0);
        out[i] = (sl_bus_out){topic, ids[i], subj[i], envs[i], len};
    }
    int published = 0;
    assert_int_equal(sl_bus_publish(bus, out, N, on_published, &published), 0);
    for (int i = 0; i < N; i++)
        free(envs[i]);
    run_until_set(&loop, &published, 1, 30000);
    assert_int_equal(published, 1);

    /* A small batch, so the window fills over several pulls of both threads. And an ordered
     * group, whose partition consumers must each hold one message at most, though each
     * partition's thread sends its next pull before the loop settles the message it has. */
    sl_bus_sub_options so = {.unordered = 1, .max_inflight = MAX_INFLIGHT, .fetch_batch = 2};
    sl_bus_sub_options oo = {.unordered = 0};
    int handled = 0, handled_o = 0;
    sl_bus_sub *sub = NULL, *osub = NULL;
    assert_int_equal(sl_bus_subscribe(bus, topic, "g", &so, count_handler, &handled, &sub), 0);
    assert_int_equal(sl_bus_subscribe(bus, topic, "o", &oo, count_handler, &handled_o, &osub), 0);
    run_until_set(&loop, &handled, 1, 30000);
    run_until_set(&loop, &handled_o, 1, 30000);
    assert_true(handled >= 1 && handled_o >= 1);

    /* The loop now stands still: the fetch threads fill the window and must stop there. The
     * server counts what it delivered to this instance and has no ack for. */
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    assert_int_equal(natsConnection_ConnectTo(&nc, url), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    char stream[64], durable[128];
    assert_int_equal(sl_bus_stream_name(topic, stream, sizeof stream), 0);
    assert_int_equal(sl__bus_durable_name("g", topic, -1, durable, sizeof durable), 0);
    int64_t most = 0, most_part = 0, most_all_parts = 0;
    int at_most = 0;                                /* polls that saw both windows full */
    for (int i = 0; i < 100 && at_most < 10; i++) { /* up to 5 s; 0.5 s once full */
        jsConsumerInfo *ci = NULL;
        jsErrCode jerr = 0;
        assert_int_equal(js_GetConsumerInfo(&ci, js, stream, durable, NULL, &jerr), NATS_OK);
        int64_t pending = ci->NumAckPending, all_parts = 0;
        jsConsumerInfo_Destroy(ci);
        for (unsigned p = 0; p < PARTS; p++) {
            char pd[128];
            assert_int_equal(sl__bus_durable_name("o", topic, (int)p, pd, sizeof pd), 0);
            assert_int_equal(js_GetConsumerInfo(&ci, js, stream, pd, NULL, &jerr), NATS_OK);
            if (ci->NumAckPending > most_part) most_part = ci->NumAckPending;
            all_parts += ci->NumAckPending;
            jsConsumerInfo_Destroy(ci);
        }
        if (pending > most) most = pending;
        if (all_parts > most_all_parts) most_all_parts = all_parts;
        at_most += pending == MAX_INFLIGHT && all_parts == PARTS;
        sleep_ms(50);
    }
    assert_int_equal(most, MAX_INFLIGHT);
    assert_int_equal(most_part, 1);
    assert_int_equal(most_all_parts, PARTS); /* every partition has messages (s0 … s59) */
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);

    /* And the rest still flows once the loop runs. */
    run_until_set(&loop, &handled, N, 30000);
    run_until_set(&loop, &handled_o, N, 30000);
    assert_int_equal(handled, N);
    assert_int_equal(handled_o, N);

    sl_bus_unsubscribe(sub);
    sl_bus_unsubscribe(osub);
    sl_bus_close(bus, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    th_stop(srv, SIGTERM, 10000);
    sh("rm -rf %s", dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_pipeline_kills, stop_leftovers),
        cmocka_unit_test_teardown(test_cluster_node_loss, stop_leftovers),
        cmocka_unit_test_teardown(test_open_before_server, stop_leftovers),
        cmocka_unit_test_teardown(test_inflight_bound, stop_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
