/*
 * Several outbox relays on one database. On PostgreSQL three relays, each on its own
 * connection, share one outbox: exactly one holds the relay lease and publishes, each row
 * once; a holder killed with SIGKILL after publishing (before marking) is replaced as soon as
 * the server dropped its session, the replacement publishes what was left (the killed
 * holder's unmarked rows again) and the consumer's inbox applies every event once; a clean
 * stop hands the lease over; a holder whose session lost the lock stands by at its next
 * check; through in-process buses on one broker with the libuv driver, one consumer group gets
 * every event once. On SQLite (one instance by design) a relay is always the publisher.
 */
#include "db_harness.h"

#include <shoal/bus.h>
#include <shoal/outbox.h>

#include <signal.h>
#include <sys/wait.h>

#define NREC    512
#define POLL_MS 200

typedef struct recpub {
    char ids[NREC][SL_DB_UUID_STR];
    int n;
    int hold;     /* never confirm (the child): published, not marked */
    int write_fd; /* child: report ids through a pipe */
} recpub;

static int rec_publish(void *ctx, const sl_outbox_msg *m, size_t n, sl_outbox_done_cb done,
                       void *dd)
{
    recpub *p = ctx;
    for (size_t i = 0; i < n; i++) {
        if (p->write_fd > 0) {
            char line[64];
            int k = snprintf(line, sizeof line, "%s\n", m[i].id);
            if (write(p->write_fd, line, (size_t)k) != k) _exit(3);
        }
        if (p->n < NREC) snprintf(p->ids[p->n++], SL_DB_UUID_STR, "%s", m[i].id);
    }
    if (!p->hold) done(dd, 0);
    return 0;
}

typedef struct relay {
    sl_db *db;
    sl_outbox_relay *r;
    recpub pub;
    int taken, lost; /* "lease" hook reports */
} relay;

static void on_hook(void *data, const char *what, int64_t v)
{
    relay *x = data;
    if (strcmp(what, "lease") == 0) *(v ? &x->taken : &x->lost) += 1;
}

static void relay_open(relay *x, const char *url, sl_fake_clock *fc)
{
    memset(x, 0, sizeof *x);
    harness_open_url(url, &x->db);
    sl_outbox_publisher pub = {rec_publish, &x->pub};
    sl_outbox_relay_options o = {
        .batch_max = 16, .poll_ms = POLL_MS, .clock = &fc->clock, .hook = on_hook, .hook_data = x};
    HARNESS_OK(x->db, sl_outbox_relay_new(x->db, &pub, &o, &x->r));
}

static void relay_close(relay *x)
{
    sl_outbox_relay_free(x->r);
    sl_db_close(x->db);
}

static void add_events(sl_db *db, int n)
{
    for (int i = 0; i < n; i++) {
        sl_outbox_event ev = {.source = "/shoal/test",
                              .type = "shop.test.happened.v1",
                              .subject = "k",
                              .data_json = "{}"};
        char id[SL_DB_UUID_STR];
        HARNESS_OK(db, sl_db_begin(db));
        HARNESS_OK(db, sl_outbox_add(db, &ev, (int64_t)1795869296 * 1000000000, id));
        HARNESS_OK(db, sl_db_commit(db));
    }
}

static int64_t unpublished(sl_db *db)
{
    return harness_int(db, "SELECT count(*) FROM outbox WHERE published_ms IS NULL");
}

/* Pumps every relay in turn, `rounds` times, advancing the clock past the lease retry each
 * round; returns the events handed to publishers. */
static int pump_all(relay *xs, int n, sl_fake_clock *fc, int rounds)
{
    int total = 0;
    for (int k = 0; k < rounds; k++) {
        for (int i = 0; i < n; i++) {
            if (xs[i].r == NULL) continue;
            for (int j = 0; j < 64; j++) {
                int64_t next;
                int got = sl_outbox_relay_pump(xs[i].r, &next);
                assert_true(got >= 0);
                total += got;
                if (got == 0) break;
            }
        }
        sl_fake_clock_advance(fc, (int64_t)POLL_MS * 1000000);
    }
    return total;
}

/* Every published id of the relays, each counted: returns how many were published twice. */
static int duplicates(relay *xs, int n, int *total)
{
    int dup = 0;
    *total = 0;
    for (int i = 0; i < n; i++)
        for (int a = 0; a < xs[i].pub.n; a++) {
            (*total)++;
            for (int j = 0; j <= i; j++)
                for (int b = 0; b < (j == i ? a : xs[j].pub.n); b++)
                    dup += strcmp(xs[i].pub.ids[a], xs[j].pub.ids[b]) == 0;
        }
    return dup;
}

static void test_sqlite_single_relay(void **state)
{
    (void)state;
    if (harness_g.pg) skip(); /* the PostgreSQL tests below cover this backend */
    char url[600];
    sl_db *db = harness_fresh_lib(url);
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, (int64_t)1795869296 * 1000000000);
    relay x;
    relay_open(&x, url, &fc);
    add_events(db, 20);
    assert_int_equal(pump_all(&x, 1, &fc, 1), 20);
    assert_int_equal(sl_outbox_relay_leader(x.r), 1);
    assert_int_equal(unpublished(db), 0);
    relay_close(&x);
    sl_db_close(db);
}

/* Three relays on one outbox: one leader, each row published once, the others idle. */
static void test_three_relays_publish_once(void **state)
{
    (void)state;
    if (!harness_g.pg) skip(); /* SQLite: one instance, one relay (test_sqlite_single_relay) */
    char url[600];
    sl_db *db = harness_fresh_lib(url);
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, (int64_t)1795869296 * 1000000000);
    static relay xs[3];
    for (int i = 0; i < 3; i++)
        relay_open(&xs[i], url, &fc);
    add_events(db, 100);
    int got = pump_all(xs, 3, &fc, 3);
    assert_int_equal(got, 100);
    assert_int_equal(unpublished(db), 0);
    int leaders = 0, leader = -1;
    for (int i = 0; i < 3; i++)
        if (sl_outbox_relay_leader(xs[i].r)) leaders++, leader = i;
    assert_int_equal(leaders, 1);
    assert_int_equal(xs[leader].pub.n, 100);
    /* Checked every round, taken once: the check sees the lock it holds. */
    assert_int_equal(xs[leader].taken, 1);
    assert_int_equal(xs[leader].lost, 0);
    int total;
    assert_int_equal(duplicates(xs, 3, &total), 0);
    assert_int_equal(total, 100);

    /* A clean stop hands the lease over at the others' next attempt. */
    relay_close(&xs[leader]);
    xs[leader].r = NULL;
    add_events(db, 40);
    assert_int_equal(pump_all(xs, 3, &fc, 2), 40);
    assert_int_equal(unpublished(db), 0);
    int next = -1;
    for (int i = 0; i < 3; i++)
        if (xs[i].r && sl_outbox_relay_leader(xs[i].r)) next = i;
    assert_true(next >= 0 && next != leader);
    assert_int_equal(duplicates(xs, 3, &total), 0);
    assert_int_equal(total, 140);

    /* The holder's session loses the lock (as with a replaced connection): another relay takes
     * it, and the old holder finds out at its next check and stands by. */
    HARNESS_OK(xs[next].db, sl_db_exec(xs[next].db, "SELECT pg_advisory_unlock_all()"));
    sl_fake_clock_advance(&fc, (int64_t)POLL_MS * 1000000);
    int other = -1;
    for (int i = 0; i < 3; i++)
        if (xs[i].r && i != next) other = i;
    int64_t nx;
    assert_int_equal(sl_outbox_relay_pump(xs[other].r, &nx), 0); /* takes the lease */
    assert_int_equal(sl_outbox_relay_leader(xs[other].r), 1);
    assert_int_equal(sl_outbox_relay_pump(xs[next].r, &nx), 0); /* checks: lost */
    assert_int_equal(sl_outbox_relay_leader(xs[next].r), 0);
    assert_int_equal(xs[next].lost, 1);
    int before = xs[next].pub.n;
    add_events(db, 10);
    assert_int_equal(pump_all(xs, 3, &fc, 2), 10);
    assert_int_equal(xs[next].pub.n, before);
    assert_int_equal(duplicates(xs, 3, &total), 0);
    assert_int_equal(total, 150);
    for (int i = 0; i < 3; i++)
        if (xs[i].r) relay_close(&xs[i]);
    sl_db_close(db);
}

/* ---- the same over a bus: three relays publish through three in-process buses on one broker
 * with the libuv driver, and one consumer group counts what it receives. */

#define BUS_EVENTS 60

typedef struct consumer {
    char ids[NREC][SL_DB_UUID_STR];
    int n; /* deliveries */
    uv_loop_t *loop;
    sl_outbox_relay **relays; /* 3 */
} consumer;

static void on_msg(void *data, const sl_bus_msg *msg, sl_bus_reply *reply)
{
    consumer *c = data;
    if (c->n < NREC) snprintf(c->ids[c->n], SL_DB_UUID_STR, "%s", msg->id);
    c->n++;
    reply->verdict = SL_BUS_ACK;
}

static void on_tick(uv_timer_t *t)
{
    consumer *c = t->data;
    static int ticks;
    int busy = 0;
    for (int i = 0; i < 3; i++)
        busy += sl_outbox_relay_busy(c->relays[i]);
    /* Done (everything delivered and acknowledged), or 10 s: fail below. */
    if ((c->n >= BUS_EVENTS && busy == 0) || ++ticks > 1000) uv_stop(c->loop);
}

static void on_bus_closed(sl_bus *bus, void *data)
{
    (void)bus;
    ++*(int *)data;
}

static void test_three_relays_over_bus(void **state)
{
    (void)state;
    if (!harness_g.pg) skip(); /* SQLite: one instance, one relay (test_sqlite_single_relay) */
    char url[600];
    sl_db *db = harness_fresh_lib(url);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_bus_broker *broker;
    assert_int_equal(sl_bus_broker_new(10000, &broker), 0);
    sl_bus_options bo = {.url = "inproc:", .broker = broker};
    sl_bus *buses[4];
    char err[256];
    for (int i = 0; i < 4; i++)
        assert_int_equal(sl_bus_open(&loop, &bo, &buses[i], err, sizeof err), 0);
    static consumer c;
    c.loop = &loop;
    sl_bus_sub *sub;
    assert_int_equal(
        sl_bus_subscribe(buses[3], "shop.test.happened.v1", "counter", NULL, on_msg, &c, &sub), 0);
    sl_db *rdb[3];
    sl_outbox_relay *rs[3];
    for (int i = 0; i < 3; i++) {
        harness_open_url(url, &rdb[i]);
        sl_outbox_publisher pub = sl_bus_outbox_publisher(buses[i]);
        sl_outbox_relay_options o = {.batch_max = 8, .poll_ms = 20};
        HARNESS_OK(rdb[i], sl_outbox_relay_new(rdb[i], &pub, &o, &rs[i]));
        assert_int_equal(sl_outbox_relay_start(rs[i], &loop), 0);
    }
    c.relays = rs;
    add_events(db, BUS_EVENTS);
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    tick.data = &c;
    uv_timer_start(&tick, on_tick, 10, 10);
    uv_run(&loop, UV_RUN_DEFAULT);
    /* Every event delivered once, by one relay. */
    assert_int_equal(c.n, BUS_EVENTS);
    for (int a = 0; a < c.n; a++)
        for (int b = 0; b < a; b++)
            assert_string_not_equal(c.ids[a], c.ids[b]);
    assert_int_equal(unpublished(db), 0);
    int leaders = 0;
    uint64_t sent = 0; /* what the relays handed to the bus (its dedup would hide copies) */
    for (int i = 0; i < 3; i++) {
        leaders += sl_outbox_relay_leader(rs[i]);
        sl_bus_stats st;
        sl_bus_get_stats(buses[i], &st);
        sent += st.published;
    }
    assert_int_equal(leaders, 1);
    assert_int_equal(sent, BUS_EVENTS);

    for (int i = 0; i < 3; i++)
        sl_outbox_relay_stop(rs[i]);
    (void)sub; /* closed with its bus */
    int closed = 0;
    for (int i = 0; i < 4; i++)
        sl_bus_close(buses[i], on_bus_closed, &closed);
    /* The tick keeps the loop turning while the buses wind down (bounded: 2000 turns). */
    for (int i = 0; i < 2000 && closed < 4; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(closed, 4);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 3; i++) {
        sl_outbox_relay_free(rs[i]);
        sl_db_close(rdb[i]);
    }
    sl_bus_broker_free(broker);
    assert_int_equal(uv_loop_close(&loop), 0);
    sl_db_close(db);
}

/* The child: the first relay, holding the lease; publishes 16 rows, never confirms them. */
static void relay_child(const char *url, int fd)
{
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, (int64_t)1795869296 * 1000000000);
    static relay x;
    sl_db *db;
    char err[256];
    if (sl_db_open(url, NULL, &db, err, sizeof err) != 0) _exit(2);
    x.db = db;
    x.pub.hold = 1;
    x.pub.write_fd = fd;
    sl_outbox_publisher pub = {rec_publish, &x.pub};
    sl_outbox_relay_options o = {.batch_max = 16, .max_inflight = 1, .clock = &fc.clock};
    if (sl_outbox_relay_new(db, &pub, &o, &x.r) != 0) _exit(2);
    int64_t next;
    if (sl_outbox_relay_pump(x.r, &next) != 16) _exit(2);
    for (;;)
        pause(); /* killed here: published, not marked, lease held */
}

static int consume(sl_db *db, const char *event_id)
{
    HARNESS_OK(db, sl_db_begin(db));
    int first = sl_inbox_claim(db, "billing", event_id, 1000);
    assert_true(first >= 0);
    if (first) HARNESS_OK(db, sl_db_exec(db, "UPDATE counter SET n = n + 1"));
    HARNESS_OK(db, sl_db_commit(db));
    return first;
}

/* The holder is killed with SIGKILL between publish and mark: the standbys publish nothing
 * while it lives, one takes over once the server dropped its session and republishes its
 * unmarked rows; the consumer's inbox applies each event once. */
static void test_killed_holder(void **state)
{
    (void)state;
    if (!harness_g.pg) skip(); /* SQLite: one instance (db.outbox covers a killed relay) */
    char url[600];
    sl_db *db = harness_fresh_lib(url);
    HARNESS_OK(db, sl_db_exec(db, "CREATE TABLE counter (n BIGINT); INSERT INTO counter VALUES "
                                  "(0)"));
    add_events(db, 30);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(60); /* gone by itself should the parent fail before killing it */
        close(fds[0]);
        relay_child(url, fds[1]);
    }
    close(fds[1]);
    static char buf[16 * 37 + 1];
    size_t got = 0;
    while (got < sizeof buf - 1) {
        ssize_t k = read(fds[0], buf + got, sizeof buf - 1 - got);
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fds[0]);
    assert_int_equal(got, 16 * 37); /* the child published 16 */
    buf[got] = '\0';

    sl_fake_clock fc;
    sl_fake_clock_init(&fc, (int64_t)1795869296 * 1000000000);
    static relay xs[2];
    for (int i = 0; i < 2; i++)
        relay_open(&xs[i], url, &fc);
    assert_int_equal(pump_all(xs, 2, &fc, 2), 0); /* the child holds the lease */
    assert_int_equal(unpublished(db), 30);

    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    /* The server drops the dead session's lock when it sees the socket close: a bounded wait
     * for that, then one of the standbys takes over. */
    int published = 0;
    for (int i = 0; i < 500 && unpublished(db) > 0; i++) {
        published += pump_all(xs, 2, &fc, 1);
        if (unpublished(db) > 0) usleep(10 * 1000);
    }
    assert_int_equal(unpublished(db), 0);
    assert_int_equal(published, 30); /* the child's 16 again, and the 14 it never sent */
    int total;
    assert_int_equal(duplicates(xs, 2, &total), 0);
    assert_int_equal(sl_outbox_relay_leader(xs[0].r) + sl_outbox_relay_leader(xs[1].r), 1);

    /* The consumer sees the child's 16, then everything from the new holder: 46 deliveries,
     * 30 applied. */
    int applied = 0, deliveries = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        applied += consume(db, line);
        deliveries++;
    }
    for (int i = 0; i < 2; i++)
        for (int a = 0; a < xs[i].pub.n; a++) {
            applied += consume(db, xs[i].pub.ids[a]);
            deliveries++;
        }
    assert_int_equal(deliveries, 46);
    assert_int_equal(applied, 30);
    assert_int_equal(harness_int(db, "SELECT n FROM counter"), 30);
    for (int i = 0; i < 2; i++)
        relay_close(&xs[i]);
    sl_db_close(db);
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlite_single_relay),
        cmocka_unit_test(test_three_relays_publish_once),
        cmocka_unit_test(test_three_relays_over_bus),
        cmocka_unit_test(test_killed_holder),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    harness_done();
    return rc;
}
