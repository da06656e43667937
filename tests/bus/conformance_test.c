/*
 * The bus conformance suite: one source, run unchanged on `inproc:` (argv[1]
 * "inproc") and on the fixture's nats-server (argv[1] "nats", URL from
 * $SHOAL_NATS_DIR/url; a missing server fails loudly). Every case uses its
 * own topics (a per-process context), so durable groups from other cases
 * never interfere. Waits are liveness bounds (the loop runs until a
 * condition holds or a generous deadline passes); nothing asserts speed.
 */
#include "bus/bus_int.h"
#include <shoal/bus.h>

#include <nats/nats.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static struct {
    int nats;
    char url[256];
    char ctx[32];
    sl_bus_broker *broker;
    int seq;
} g;

static void topic_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "shop.%s.%s%d.v1", g.ctx, name, ++g.seq);
}

static sl_bus *open_bus(uv_loop_t *loop, size_t max_msg_bytes)
{
    const char *ctxs[] = {g.ctx};
    sl_bus_options o = {.url = g.url,
                        .contexts = ctxs,
                        .n_contexts = 1,
                        .partitions = 4,
                        .max_msg_bytes = max_msg_bytes,
                        .broker = g.broker};
    sl_bus *bus = NULL;
    char err[256];
    int rc = sl_bus_open(loop, &o, &bus, err, sizeof err);
    if (rc != 0) fprintf(stderr, "open: %s\n", err);
    assert_int_equal(rc, 0);
    return bus;
}

static uint64_t g_tick;

typedef int (*cond_fn)(void *);
static int cond_true_never(void *p)
{
    (void)p;
    return 0;
}

static void on_check(uv_timer_t *t)
{
    void **c = t->data;
    cond_fn f = (cond_fn)(uintptr_t)c[0];
    if (f(c[1])) uv_stop(t->loop);
}

/* Runs the loop until cond(arg) holds or `ms` pass. Returns cond's final value. */
static int run_until(uv_loop_t *loop, cond_fn cond, void *arg, int64_t ms)
{
    void *c[2] = {(void *)(uintptr_t)cond, arg};
    uv_timer_t t;
    uv_timer_init(loop, &t);
    t.data = c;
    uv_timer_start(&t, on_check, 5, 5);
    uint64_t end = uv_now(loop) + (uint64_t)ms;
    while (uv_now(loop) < end && !cond(arg)) {
        uv_run(loop, UV_RUN_ONCE);
        uv_update_time(loop);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return cond(arg);
}

static int ready_cond(void *p)
{
    return sl_bus_ready(p);
}

static void wait_ready(uv_loop_t *loop, sl_bus *bus)
{
    assert_true(run_until(loop, ready_cond, bus, 20000));
}

static void on_closed(sl_bus *bus, void *data)
{
    (void)bus;
    (*(int *)data)++;
}
static int int_pos(void *p)
{
    return *(int *)p > 0;
}

static void close_bus(uv_loop_t *loop, sl_bus *bus)
{
    int done = 0;
    sl_bus_close(bus, on_closed, &done);
    assert_true(run_until(loop, int_pos, &done, 20000));
}

/* ---- publishing helpers ------------------------------------------------------------------- */

typedef struct pubstate {
    int pending, ok, failed;
} pubstate;

static void on_pub(void *data, int status)
{
    pubstate *p = data;
    p->pending--;
    if (status == 0)
        p->ok++;
    else
        p->failed++;
}

static int pubs_done(void *p)
{
    return ((pubstate *)p)->pending == 0;
}

static char *envelope(const char *topic, const char *id, const char *subject, int n)
{
    char *buf = malloc(512);
    snprintf(buf, 512,
             "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"/test\",\"type\":\"%s\","
             "\"subject\":\"%s\",\"datacontenttype\":\"application/json\",\"data\":{\"n\":%d}}",
             id, topic, subject, n);
    return buf;
}

/* Publishes one event with `id` and waits for its ack. */
static void publish1(uv_loop_t *loop, sl_bus *bus, const char *topic, const char *id,
                     const char *subject, int n)
{
    char *env = envelope(topic, id, subject, n);
    sl_bus_out m = {topic, id, subject, env, strlen(env)};
    pubstate ps = {1, 0, 0};
    assert_int_equal(sl_bus_publish(bus, &m, 1, on_pub, &ps), 0);
    free(env);
    assert_true(run_until(loop, pubs_done, &ps, 20000));
    assert_int_equal(ps.ok, 1);
}

static void publish_raw(uv_loop_t *loop, sl_bus *bus, const char *topic, const char *id,
                        const char *bytes, size_t len)
{
    sl_bus_out m = {topic, id, id, bytes, len};
    pubstate ps = {1, 0, 0};
    assert_int_equal(sl_bus_publish(bus, &m, 1, on_pub, &ps), 0);
    assert_true(run_until(loop, pubs_done, &ps, 20000));
    assert_int_equal(ps.ok, 1);
}

/* Publishes n events "<prefix>-<i>" with subjects "s<i % nsubj>" in batches of 100. */
static void publish_n(uv_loop_t *loop, sl_bus *bus, const char *topic, const char *prefix, int n,
                      int nsubj)
{
    pubstate ps = {0, 0, 0};
    for (int i = 0; i < n; i += 100) {
        sl_bus_out m[100];
        char ids[100][64], subj[100][32];
        char *envs[100];
        int k = n - i < 100 ? n - i : 100;
        for (int j = 0; j < k; j++) {
            snprintf(ids[j], sizeof ids[j], "%s-%d", prefix, i + j);
            snprintf(subj[j], sizeof subj[j], "s%d", (i + j) % nsubj);
            envs[j] = envelope(topic, ids[j], subj[j], i + j);
            m[j] = (sl_bus_out){topic, ids[j], subj[j], envs[j], strlen(envs[j])};
        }
        ps.pending++;
        assert_int_equal(sl_bus_publish(bus, m, (size_t)k, on_pub, &ps), 0);
        for (int j = 0; j < k; j++)
            free(envs[j]);
    }
    assert_true(run_until(loop, pubs_done, &ps, 30000));
    assert_int_equal(ps.failed, 0);
}

/* ---- a recording handler --------------------------------------------------------------------- */

#define REC_MAX 4000
typedef struct rec {
    int count;
    int n[REC_MAX];
    unsigned deliveries[REC_MAX];
    char subject[REC_MAX][16];
    uint64_t at_ms[REC_MAX];
    uint64_t tick[REC_MAX]; /* global handling order across instances */
    int seen[REC_MAX];      /* per n: times acked */
    /* behaviour */
    int drop_first; /* DROP first delivery (ack_wait redelivery) */
    int nack_first; /* NACK first delivery with nack_delay */
    int64_t nack_delay;
    int always_nack;
    int nack_every; /* NACK every k-th first delivery (ordering stress) */
    uv_loop_t *loop;
} rec;

static void rec_handler(void *data, const sl_bus_msg *m, sl_bus_reply *r)
{
    rec *x = data;
    json_t *n = json_object_get(m->data, "n");
    int v = (int)json_integer_value(n);
    if (x->count < REC_MAX) {
        x->n[x->count] = v;
        x->deliveries[x->count] = m->deliveries;
        snprintf(x->subject[x->count], sizeof x->subject[0], "%s", m->subject);
        x->at_ms[x->count] = uv_now(x->loop);
        x->tick[x->count] = ++g_tick;
        x->count++;
    }
    if (x->always_nack) {
        r->verdict = SL_BUS_NACK;
        r->delay_ms = 50;
        snprintf(r->reason, sizeof r->reason, "always failing");
        return;
    }
    if (m->deliveries == 1 && x->drop_first) {
        r->verdict = SL_BUS_DROP;
        return;
    }
    if (m->deliveries == 1 && (x->nack_first || (x->nack_every && v % x->nack_every == 0))) {
        r->verdict = SL_BUS_NACK;
        r->delay_ms = x->nack_delay;
        return;
    }
    if (v >= 0 && v < REC_MAX) x->seen[v]++;
}

static int acked_total(const rec *x, int n)
{
    int t = 0;
    for (int i = 0; i < n; i++)
        t += x->seen[i] > 0;
    return t;
}

typedef struct want {
    rec *r[4];
    int nr, n;
} want;

static int all_seen(void *p)
{
    want *w = p;
    int total = 0;
    for (int i = 0; i < w->n; i++) {
        int c = 0;
        for (int k = 0; k < w->nr; k++)
            c += w->r[k]->seen[i];
        total += c > 0;
    }
    return total == w->n;
}

static sl_bus_sub_options fast_opts(void)
{
    return (sl_bus_sub_options){
        .ack_wait_ms = 400, .max_deliver = 5, .backoff_base_ms = 50, .backoff_max_ms = 400};
}

/* ---- cases ------------------------------------------------------------------------------------
 */

static void test_fanout(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_bus *bus = open_bus(&loop, 0);
    wait_ready(&loop, bus);
    char topic[128];
    topic_of(topic, sizeof topic, "fanout");
    static rec a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.loop = b.loop = &loop;
    sl_bus_sub_options o = fast_opts();
    sl_bus_sub *sa, *sb;
    assert_int_equal(sl_bus_subscribe(bus, topic, "ga", &o, rec_handler, &a, &sa), 0);
    assert_int_equal(sl_bus_subscribe(bus, topic, "gb", &o, rec_handler, &b, &sb), 0);
    publish_n(&loop, bus, topic, "fan", 200, 10);
    want wa = {{&a}, 1, 200}, wb = {{&b}, 1, 200};
    assert_true(run_until(&loop, all_seen, &wa, 30000));
    assert_true(run_until(&loop, all_seen, &wb, 30000));
    for (int i = 0; i < 200; i++) {
        assert_int_equal(a.seen[i], 1);
        assert_int_equal(b.seen[i], 1);
    }
    sl_bus_stats st;
    sl_bus_get_stats(bus, &st);
    assert_true(st.published >= 200);
    assert_true(st.acked >= 200);
    assert_true(st.delivered >= 400);
    close_bus(&loop, bus);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_competing(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_bus *bus = open_bus(&loop, 0);
    wait_ready(&loop, bus);
    char topic[128];
    topic_of(topic, sizeof topic, "compete");
    static rec a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.loop = b.loop = &loop;
    sl_bus_sub_options o = fast_opts();
    o.unordered = 1; /* plain competing consumers */
    o.max_inflight = 8;
    o.fetch_batch = 4;
    sl_bus_sub *sa, *sb;
    assert_int_equal(sl_bus_subscribe(bus, topic, "workers", &o, rec_handler, &a, &sa), 0);
    assert_int_equal(sl_bus_subscribe(bus, topic, "workers", &o, rec_handler, &b, &sb), 0);
    publish_n(&loop, bus, topic, "cmp", 400, 50);
    want w = {{&a, &b}, 2, 400};
    assert_true(run_until(&loop, all_seen, &w, 30000));
    for (int i = 0; i < 400; i++)
        assert_int_equal(a.seen[i] + b.seen[i], 1); /* each message to exactly one member */
    assert_true(a.count > 0);
    assert_true(b.count > 0);
    close_bus(&loop, bus);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_redelivery_after_ack_wait(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_bus *bus = open_bus(&loop, 0);
    wait_ready(&loop, bus);
    char topic[128];
    topic_of(topic, sizeof topic, "ackwait");
    static rec a;
    memset(&a, 0, sizeof a);
    a.loop = &loop;
    a.drop_first = 1;
    sl_bus_sub_options o = fast_opts();
    sl_bus_sub *sa;
    assert_int_equal(sl_bus_subscribe(bus, topic, "g", &o, rec_handler, &a, &sa), 0);
    publish1(&loop, bus, topic, "aw-1", "x", 0);
    want w = {{&a}, 1, 1};
    assert_true(run_until(&loop, all_seen, &w, 20000));
    assert_int_equal(a.count, 2);
    assert_int_equal(a.deliveries[0], 1);
    assert_int_equal(a.deliveries[1], 2);
    /* Came back only after ack_wait (a lower bound: the semantics, not speed). */
    assert_true(a.at_ms[1] - a.at_ms[0] >= 350);
    close_bus(&loop, bus);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_nack_with_delay(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_bus *bus = open_bus(&loop, 0);
    wait_ready(&loop, bus);
    char topic[128];
    topic_of(topic, sizeof topic, "nack");
    static rec a;
    memset(&a, 0, sizeof a);
    a.loop = &loop;
    a.nack_first = 1;
    a.nack_delay = 300;
    sl_bus_sub_options o = fast_opts();
    o.ack_wait_ms = 5000; /* the nack delay, not ack_wait, must drive the redelivery */
    sl_bus_sub *sa;
    assert_int_equal(sl_bus_subscribe(bus, topic, "g", &o, rec_handler, &a, &sa), 0);
    publish1(&loop, bus, topic, "nk-1", "x", 0);
    want w = {{&a}, 1, 1};
    assert_true(run_until(&loop, all_seen, &w, 20000));
    assert_int_equal(a.count, 2);
    assert_int_equal(a.deliveries[1], 2);
    assert_true(a.at_ms[1] - a.at_ms[0] >= 250);
    close_bus(&loop, bus);
    assert_int_equal(uv_loop_close(&loop), 0);
}

typedef struct deadlist {
    int done, status;
    size_t n;
    sl_bus_dead items[16];
} deadlist;

static void on_list(void *data, int status, const sl_bus_dead *items, size_t n)
{
    deadlist *d = data;
    d->done++;
    d->status = status;
    d->n = n < 16 ? n : 16;
    memcpy(d->items, items, d->n * sizeof *items);
}

static int done_cond(void *p)
{
    return ((deadlist *)p)->done > 0;
}

static void list_dead(uv_loop_t *loop, sl_bus *bus, const char *topic, deadlist *d)
{
    memset(d, 0, sizeof *d);
    assert_int_equal(sl_bus_dlq_list(bus, topic, 16, on_list, d), 0);
    assert_true(run_until(loop, done_cond, d, 20000));
    assert_int_equal(d->status, 0);
}

/* Waits until the DLQ of `topic` holds `n` letters. */
static void wait_dead(uv_loop_t *loop, sl_bus *bus, const char *topic, size_t n, deadlist *d)
{
    for (int i = 0; i < 200; i++) {
        list_dead(loop, bus, topic, d);
        if (d->n >= n) break;
        run_until(loop, cond_true_never, NULL, 100);
    }
    for (size_t i = 0; i < d->n; i++)
        fprintf(stderr, "dead letter %s: %s\n", d->items[i].id, d->items[i].reason);
    assert_int_equal(d->n, n);
}

typedef struct admin_res {
    int done, status;
    size_t count;
} admin_res;

static void on_admin(void *data, int status, size_t count)
{
    admin_res *a = data;
    a->done++;
    a->status = status;
    a->count = count;
}

static int admin_done(void *p)
{
    return ((admin_res *)p)->done > 0;
}

static void test_dead_letter_and_redrive(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_bus *bus = open_bus(&loop, 0);
    wait_ready(&loop, bus);
    char topic[128];
    topic_of(topic, sizeof topic, "dlq");
    static rec a;
    memset(&a, 0, sizeof a);
    a.loop = &loop;
    a.always_nack = 1;
    sl_bus_sub_options o = fast_opts();
    o.max_deliver = 3;
    sl_bus_sub *sa;
    assert_int_equal(sl_bus_subscribe(bus, topic, "g", &o, rec_handler, &a, &sa), 0);
    publish1(&loop, bus, topic, "dl-1", "x", 7);
    deadlist d;
    wait_dead(&loop, bus, topic, 1, &d);
    assert_int_equal(a.count, 3); /* exactly max_deliver attempts, then dead-lettered */
    assert_string_equal(d.items[0].id, "dl-1");
    assert_string_equal(d.items[0].group, "g");
    assert_int_equal(d.items[0].deliveries, 3);
    assert_non_null(strstr(d.items[0].reason, "always failing"));
    sl_bus_stats st;
    sl_bus_get_stats(bus, &st);
    assert_int_equal(st.dead_lettered, 1);
    /* Nothing more comes (it was terminated, not left to loop). */
    run_until(&loop, cond_true_never, NULL, 600);
    assert_int_equal(a.count, 3);
    /* Fix the handler, redrive: the event is handled and leaves the DLQ. */
    a.always_nack = 0;
    admin_res ar = {0};
    assert_int_equal(sl_bus_dlq_redrive(bus, topic, d.items[0].dlq_seq, on_admin, &ar), 0);
    assert_true(run_until(&loop, admin_done, &ar, 20000));
    assert_int_equal(ar.status, 0);
    assert_int_equal(ar.count, 1);
    want w = {{&a}, 1, 8};
    (void)w;
    for (int i = 0; i < 400 && a.seen[7] == 0; i++)
        run_until(&loop, cond_true_never, NULL, 50);
    assert_int_equal(a.seen[7], 1);
    list_dead(&loop, bus, topic, &d);
    assert_int_equal(d.n, 0);
    close_bus(&loop, bus);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_ordering_two_instances(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_bus *bus = open_bus(&loop, 0);
    sl_bus *bus2 = open_bus(&loop, 0); /* the second instance: its own connection */
    wait_ready(&loop, bus);
    wait_ready(&loop, bus2);
    char topic[128];
    topic_of(topic, sizeof topic, "order");
    static rec a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.loop = b.loop = &loop;
    a.nack_every = b.nack_every = 7; /* some first deliveries fail and come back */
    a.nack_delay = b.nack_delay = 30;
    sl_bus_sub_options o = fast_opts();
    sl_bus_sub *sa, *sb;
    assert_int_equal(sl_bus_subscribe(bus, topic, "proj", &o, rec_handler, &a, &sa), 0);
    assert_int_equal(sl_bus_subscribe(bus2, topic, "proj", &o, rec_handler, &b, &sb), 0);
    const int n = 600, nsubj = 12;
    publish_n(&loop, bus, topic, "ord", n, nsubj);
    want w = {{&a, &b}, 2, n};
    assert_true(run_until(&loop, all_seen, &w, 60000));
    /* Merge the acked handling of both instances in time order: per subject, handled values
     * must be strictly increasing (n = i, subject = s(i % nsubj)). */
    int last[64];
    for (int s = 0; s < nsubj; s++)
        last[s] = -1;
    int ia = 0, ib = 0;
    rec *rs[2] = {&a, &b};
    (void)rs;
    while (ia < a.count || ib < b.count) {
        rec *x;
        int *ix;
        if (ib >= b.count || (ia < a.count && a.tick[ia] < b.tick[ib])) {
            x = &a;
            ix = &ia;
        } else {
            x = &b;
            ix = &ib;
        }
        int v = x->n[*ix];
        int nacked = x->deliveries[*ix] == 1 && v % 7 == 0;
        (*ix)++;
        if (nacked) continue;
        int s = v % nsubj;
        assert_true(v > last[s]);
        last[s] = v;
    }
    for (int i = 0; i < n; i++)
        assert_int_equal(a.seen[i] + b.seen[i], 1);
    assert_true(a.count > 0 && b.count > 0);
    close_bus(&loop, bus2);
    close_bus(&loop, bus);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_duplicate_dropped(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_bus *bus = open_bus(&loop, 0);
    wait_ready(&loop, bus);
    char topic[128];
    topic_of(topic, sizeof topic, "dup");
    static rec a;
    memset(&a, 0, sizeof a);
    a.loop = &loop;
    sl_bus_sub_options o = fast_opts();
    sl_bus_sub *sa;
    assert_int_equal(sl_bus_subscribe(bus, topic, "g", &o, rec_handler, &a, &sa), 0);
    publish1(&loop, bus, topic, "dup-1", "x", 0);
    publish1(&loop, bus, topic, "dup-1", "x", 0); /* re-sent after a "relay crash" */
    publish1(&loop, bus, topic, "dup-2", "x", 1); /* same subject: handled after the above */
    want w = {{&a}, 1, 2};
    assert_true(run_until(&loop, all_seen, &w, 20000));
    assert_int_equal(a.seen[0], 1);
    assert_int_equal(a.count, 2);
    close_bus(&loop, bus);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_consumer_restart(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_bus *bus = open_bus(&loop, 0);
    wait_ready(&loop, bus);
    char topic[128];
    topic_of(topic, sizeof topic, "restart");
    static rec a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.loop = b.loop = &loop;
    sl_bus_sub_options o = fast_opts();
    sl_bus_sub *sa, *sb;
    assert_int_equal(sl_bus_subscribe(bus, topic, "g", &o, rec_handler, &a, &sa), 0);
    publish_n(&loop, bus, topic, "rs", 300, 20);
    /* Stop mid-stream, then a new instance of the same group carries on. */
    for (int i = 0; i < 4000 && acked_total(&a, 300) < 50; i++)
        run_until(&loop, cond_true_never, NULL, 5);
    sl_bus_unsubscribe(sa);
    int got = acked_total(&a, 300);
    assert_true(got >= 50);
    sl_bus *bus2 = open_bus(&loop, 0);
    wait_ready(&loop, bus2);
    assert_int_equal(sl_bus_subscribe(bus2, topic, "g", &o, rec_handler, &b, &sb), 0);
    want w = {{&a, &b}, 2, 300};
    assert_true(run_until(&loop, all_seen, &w, 30000));
    for (int i = 0; i < 300; i++)
        assert_int_equal(a.seen[i] + b.seen[i], 1); /* none lost, none applied twice */
    close_bus(&loop, bus2);
    close_bus(&loop, bus);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_bad_input(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_bus *big = open_bus(&loop, 0);    /* a publisher with the default 1 MiB limit */
    sl_bus *bus = open_bus(&loop, 4096); /* the consumer's limit: 4 KiB */
    wait_ready(&loop, big);
    wait_ready(&loop, bus);
    char topic[128];
    topic_of(topic, sizeof topic, "bad");
    static rec a;
    memset(&a, 0, sizeof a);
    a.loop = &loop;
    sl_bus_sub_options o = fast_opts();
    const char *types[] = {topic, NULL};
    o.types = types;
    sl_bus_sub *sa;
    assert_int_equal(sl_bus_subscribe(bus, topic, "g", &o, rec_handler, &a, &sa), 0);
    publish_raw(&loop, big, topic, "bad-json", "{not json", 9);
    const char *missing = "{\"id\":\"bad-missing\",\"type\":\"x\"}";
    publish_raw(&loop, big, topic, "bad-missing", missing, strlen(missing));
    char *unknown = envelope("shop.other.thing.v1", "bad-type", "s", 1);
    publish_raw(&loop, big, topic, "bad-type", unknown, strlen(unknown));
    free(unknown);
    size_t blen = 8000;
    char *huge = malloc(blen + 1);
    memset(huge, ' ', blen);
    memcpy(huge, "{\"id\":\"bad-big\"}", 16);
    huge[blen] = '\0';
    publish_raw(&loop, big, topic, "bad-big", huge, blen);
    free(huge);
    publish1(&loop, big, topic, "good-1", "s", 0);
    want w = {{&a}, 1, 1};
    assert_true(run_until(&loop, all_seen, &w, 20000));
    deadlist d;
    wait_dead(&loop, bus, topic, 4, &d);
    assert_int_equal(a.count, 1); /* the handler saw only the good one */
    int json = 0, miss = 0, type = 0, size = 0;
    for (size_t i = 0; i < d.n; i++) {
        json += strstr(d.items[i].reason, "malformed envelope: invalid JSON") != NULL;
        miss += strstr(d.items[i].reason, "missing or invalid 'source'") != NULL;
        type += strstr(d.items[i].reason, "unknown event type") != NULL;
        size += strstr(d.items[i].reason, "oversized") != NULL;
    }
    assert_int_equal(json, 1);
    assert_int_equal(miss, 1);
    assert_int_equal(type, 1);
    assert_int_equal(size, 1);
    close_bus(&loop, bus);
    close_bus(&loop, big);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- the transactional runner -------------------------------------------------------------- */

typedef struct applied {
    int calls, fail_once_n;
} applied;

static int apply_event(void *data, sl_db *tx, const sl_bus_msg *m, char *reason, size_t cap)
{
    applied *ap = data;
    ap->calls++;
    int n = (int)json_integer_value(json_object_get(m->data, "n"));
    if (n == ap->fail_once_n && m->deliveries == 1) {
        snprintf(reason, cap, "transient");
        return SL_EUNAVAIL;
    }
    sl_db_stmt *st;
    int rc = sl_db_prepare(tx, "INSERT INTO effects(n) VALUES (?)", &st);
    if (rc) return rc;
    rc = sl_db_bind_int64(st, 1, n);
    if (rc == 0) rc = sl_db_step(st);
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

static int64_t scalar(sl_db *db, const char *sql)
{
    sl_db_stmt *st;
    assert_int_equal(sl_db_prepare(db, sql, &st), 0);
    assert_int_equal(sl_db_step(st), SL_DB_ROW);
    int64_t v = sl_db_column_int64(st, 0);
    sl_db_stmt_done(st);
    return v;
}

typedef struct dbwait {
    sl_db *db;
    int64_t n;
} dbwait;

static int effects_reach(void *p)
{
    dbwait *w = p;
    return scalar(w->db, "SELECT count(*) FROM effects") >= w->n;
}

static void test_runner_once(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char dir[] = "/tmp/shoal-bus-XXXXXX", url[128];
    assert_non_null(mkdtemp(dir));
    snprintf(url, sizeof url, "sqlite:%s/c.db", dir);
    sl_db *db;
    assert_int_equal(sl_db_open(url, NULL, &db, NULL, 0), 0);
    assert_int_equal(sl_db_migrate(db, sl_db_lib_migrations(), NULL), 0);
    assert_int_equal(sl_db_exec(db, "CREATE TABLE effects(n INTEGER NOT NULL)"), 0);
    sl_bus *bus = open_bus(&loop, 0);
    wait_ready(&loop, bus);
    char topic[128];
    topic_of(topic, sizeof topic, "runner");
    applied ap = {.fail_once_n = 5};
    sl_bus_sub_options o = fast_opts();
    sl_bus_runner_options ro = {.consumer = "effects"};
    sl_bus_runner *r1, *r2;
    /* Two groups with the same inbox consumer name: the second finds every event claimed. */
    assert_int_equal(sl_bus_runner_new(bus, db, topic, "g1", &o, &ro, apply_event, &ap, &r1), 0);
    assert_int_equal(sl_bus_runner_new(bus, db, topic, "g2", &o, &ro, apply_event, &ap, &r2), 0);
    publish_n(&loop, bus, topic, "run", 100, 10);
    dbwait w = {db, 100};
    assert_true(run_until(&loop, effects_reach, &w, 30000));
    run_until(&loop, cond_true_never, NULL, 500); /* let stragglers (g2, retries) settle */
    assert_int_equal(scalar(db, "SELECT count(*) FROM effects"), 100);
    assert_int_equal(scalar(db, "SELECT count(DISTINCT n) FROM effects"), 100);
    assert_int_equal(scalar(db, "SELECT count(*) FROM effects WHERE n = 5"), 1);
    sl_bus_runner_free(r1);
    sl_bus_runner_free(r2);
    close_bus(&loop, bus);
    sl_db_close(db);
    assert_int_equal(uv_loop_close(&loop), 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(sl_bus_topic_valid("shop.order.confirmed.v1"));
    assert_false(sl_bus_topic_valid("shop.order"));
    assert_false(sl_bus_topic_valid("shop.order.>"));
    assert_false(sl_bus_topic_valid("shop..x"));
    assert_false(sl_bus_topic_valid("other.order.x"));
    char s[32];
    assert_int_equal(sl_bus_stream_name("shop.order.confirmed.v1", s, sizeof s), 0);
    assert_string_equal(s, "SHOP_ORDER");
    assert_int_equal(sl_bus_stream_name("shop.order.confirmed.v1", s, 5), SL_ELIMIT);
    assert_int_equal(sl_bus_partition("abc", 1), 0);
    assert_true(sl_bus_partition("abc", 8) < 8);
    assert_int_equal(sl_bus_partition("abc", 8), sl_bus_partition("abc", 8));
}

/* NATS only. A fetch thread whose pull fails (here: its consumer is deleted under it; after a
 * server restart pulls fail too) drops its subscription and binds again, while the loop still
 * holds a message fetched through it. Acking that message reads the subscription (nats.c keeps
 * a bare pointer to it in the message): the subscription must live until the loop has settled
 * everything fetched through it. Were it destroyed first, nb_settle's check that the message
 * came through the live subscription aborts (after the ack has read freed memory). The handler
 * deletes the consumer and stays on the loop long enough for the fetch threads to see the failed
 * pull. */
typedef struct held_ctx {
    jsCtx *js;
    char stream[64], durable[SL_BUS_GROUP_MAX + SL_BUS_TOPIC_MAX + 16];
    int calls;
} held_ctx;

static void held_handler(void *data, const sl_bus_msg *m, sl_bus_reply *r)
{
    (void)m;
    held_ctx *h = data;
    if (h->calls++ == 0) {
        /* Both fetch threads' pulls are with the server (the one holding this message has room
         * left, so it pulls again): deleting the consumer fails both at once. A pull sent
         * after the delete would only time out. */
        jsErrCode jerr = 0;
        int64_t waiting = 0;
        for (int i = 0; i < 2000 && waiting < 2; i++) {
            jsConsumerInfo *ci = NULL;
            assert_int_equal(js_GetConsumerInfo(&ci, h->js, h->stream, h->durable, NULL, &jerr),
                             NATS_OK);
            waiting = ci->NumWaiting;
            jsConsumerInfo_Destroy(ci);
            if (waiting < 2) usleep(1000);
        }
        assert_int_equal(waiting, 2);
        assert_int_equal(js_DeleteConsumer(h->js, h->stream, h->durable, NULL, &jerr), NATS_OK);
        usleep(1500 * 1000); /* three fetch waits: each fetch thread's pull has failed */
    }
    r->verdict = SL_BUS_ACK;
}

static int two_calls(void *p)
{
    return ((held_ctx *)p)->calls >= 2;
}

static void test_fetch_error_while_held(void **state)
{
    (void)state;
    if (!g.nats) skip();
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_bus *bus = open_bus(&loop, 0);
    wait_ready(&loop, bus);
    char topic[128];
    topic_of(topic, sizeof topic, "held");
    natsConnection *nc = NULL;
    static held_ctx h;
    memset(&h, 0, sizeof h);
    assert_int_equal(natsConnection_ConnectTo(&nc, g.url), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&h.js, nc, NULL), NATS_OK);
    assert_int_equal(sl_bus_stream_name(topic, h.stream, sizeof h.stream), 0);
    assert_int_equal(sl__bus_durable_name("g", topic, -1, h.durable, sizeof h.durable), 0);
    publish1(&loop, bus, topic, "held-1", "s1", 1);
    sl_bus_sub_options o = fast_opts();
    o.unordered = 1;
    o.max_inflight = 8; /* a fetch thread holding one message still has room: it pulls again */
    sl_bus_sub *s;
    assert_int_equal(sl_bus_subscribe(bus, topic, "g", &o, held_handler, &h, &s), 0);
    /* The ack went to the deleted consumer: the fetch threads bind again, the consumer is
     * made anew and delivers the message again. */
    assert_true(run_until(&loop, two_calls, &h, 30000));
    sl_bus_unsubscribe(s);
    close_bus(&loop, bus);
    assert_int_equal(uv_loop_close(&loop), 0);
    jsCtx_Destroy(h.js);
    natsConnection_Destroy(nc);
}

/* ---- a confirming broker (inproc only: the hosted shape) ----------------------------------- */

/* A bus on its own confirming broker (max_queued 0: the default). */
static sl_bus *open_confirming(uv_loop_t *loop, sl_bus_broker **broker, size_t max_queued)
{
    sl_bus_broker_options bo = {.confirm = 1, .max_queued = max_queued};
    assert_int_equal(sl_bus_broker_new_opts(&bo, broker), 0);
    const char *ctxs[] = {g.ctx};
    sl_bus_options o = {
        .url = "inproc:", .contexts = ctxs, .n_contexts = 1, .partitions = 4, .broker = *broker};
    sl_bus *bus = NULL;
    assert_int_equal(sl_bus_open(loop, &o, &bus, NULL, 0), 0);
    wait_ready(loop, bus);
    return bus;
}

/* Starts publishing one event; the caller waits for ps. */
static void publish_async(sl_bus *bus, const char *topic, const char *id, const char *subject,
                          int n, pubstate *ps)
{
    char *env = envelope(topic, id, subject, n);
    sl_bus_out m = {topic, id, subject, env, strlen(env)};
    ps->pending++;
    int rc = sl_bus_publish(bus, &m, 1, on_pub, ps);
    free(env);
    if (rc != 0) ps->pending--;
    assert_int_equal(rc, 0);
}

typedef struct seen_pub {
    pubstate *ps;
    int committed; /* effects rows seen committed by the time the publish was acked */
    sl_db *db;
    int acked_in_apply; /* publish acks already seen while an apply ran (must stay 0) */
} seen_pub;

static int apply_watch(void *data, sl_db *tx, const sl_bus_msg *m, char *reason, size_t cap)
{
    seen_pub *w = data;
    w->acked_in_apply += w->ps->ok + w->ps->failed;
    return apply_event(&(applied){.fail_once_n = 1}, tx, m, reason, cap);
}

static void on_pub_db(void *data, int status)
{
    seen_pub *w = data;
    w->committed = (int)scalar(w->db, "SELECT count(*) FROM effects");
    on_pub(w->ps, status);
}

/* The publish is acknowledged only after the runner committed the event's effect (the first
 * delivery fails and is retried: still no ack in between). */
static void test_confirm_after_commit(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char dir[] = "/tmp/shoal-bus-XXXXXX", url[128];
    assert_non_null(mkdtemp(dir));
    snprintf(url, sizeof url, "sqlite:%s/c.db", dir);
    sl_db *db;
    assert_int_equal(sl_db_open(url, NULL, &db, NULL, 0), 0);
    assert_int_equal(sl_db_migrate(db, sl_db_lib_migrations(), NULL), 0);
    assert_int_equal(sl_db_exec(db, "CREATE TABLE effects(n INTEGER NOT NULL)"), 0);
    sl_bus_broker *broker;
    sl_bus *bus = open_confirming(&loop, &broker, 0);
    char topic[128];
    topic_of(topic, sizeof topic, "confirm");
    pubstate ps = {0, 0, 0};
    seen_pub w = {.ps = &ps, .db = db};
    sl_bus_sub_options o = fast_opts();
    sl_bus_runner_options ro = {.consumer = "effects", .batch_max = 1};
    sl_bus_runner *r;
    assert_int_equal(sl_bus_runner_new(bus, db, topic, "g1", &o, &ro, apply_watch, &w, &r), 0);
    run_until(&loop, cond_true_never, NULL, 50); /* the group exists before the publish */
    char *env = envelope(topic, "c-1", "s1", 1);
    sl_bus_out m = {topic, "c-1", "s1", env, strlen(env)};
    ps.pending = 1;
    assert_int_equal(sl_bus_publish(bus, &m, 1, on_pub_db, &w), 0);
    free(env);
    assert_true(run_until(&loop, pubs_done, &ps, 20000));
    assert_int_equal(ps.ok, 1);
    assert_int_equal(w.committed, 1);      /* the effect was committed before the ack */
    assert_int_equal(w.acked_in_apply, 0); /* never acked while an attempt ran */
    assert_int_equal(sl_bus_broker_queued(broker), 0);
    sl_bus_runner_free(r);
    close_bus(&loop, bus);
    sl_bus_broker_free(broker);
    sl_db_close(db);
    assert_int_equal(uv_loop_close(&loop), 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* Every group owes the message: the publish waits for the slowest one; a duplicate publish of
 * the same id waits for the original and the handler runs once per group. */
static void test_confirm_every_group(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_bus_broker *broker;
    sl_bus *bus = open_confirming(&loop, &broker, 0);
    char topic[128];
    topic_of(topic, sizeof topic, "groups");
    rec a = {.loop = &loop}, b = {.loop = &loop, .drop_first = 1};
    sl_bus_sub_options o = fast_opts(); /* b's first delivery comes back after 400 ms */
    sl_bus_sub *sa, *sb;
    assert_int_equal(sl_bus_subscribe(bus, topic, "ga", &o, rec_handler, &a, &sa), 0);
    assert_int_equal(sl_bus_subscribe(bus, topic, "gb", &o, rec_handler, &b, &sb), 0);
    run_until(&loop, cond_true_never, NULL, 50);
    pubstate ps = {0, 0, 0}, dup = {0, 0, 0};
    publish_async(bus, topic, "e-1", "s1", 0, &ps);
    want wa = {{&a}, 1, 1};
    assert_true(run_until(&loop, all_seen, &wa, 20000));
    publish_async(bus, topic, "e-1", "s1", 0, &dup); /* the relay sending it again */
    run_until(&loop, cond_true_never, NULL, 100);
    assert_int_equal(ps.pending, 1); /* gb has not settled it yet */
    assert_int_equal(dup.pending, 1);
    assert_int_equal(sl_bus_broker_queued(broker), 1);
    assert_true(run_until(&loop, pubs_done, &ps, 20000));
    assert_true(run_until(&loop, pubs_done, &dup, 20000));
    assert_int_equal(ps.ok, 1);
    assert_int_equal(dup.ok, 1);
    assert_int_equal(b.count, 2); /* dropped once, then acked */
    assert_int_equal(b.seen[0], 1);
    assert_int_equal(a.seen[0], 1);
    assert_int_equal(sl_bus_broker_queued(broker), 0);
    /* Settled, it is gone: a publish of the same id within the window is acked at once. */
    publish_async(bus, topic, "e-1", "s1", 0, &dup);
    assert_true(run_until(&loop, pubs_done, &dup, 20000));
    assert_int_equal(dup.ok, 2);
    run_until(&loop, cond_true_never, NULL, 100);
    assert_int_equal(a.count, 1);
    sl_bus_unsubscribe(sa);
    sl_bus_unsubscribe(sb);
    close_bus(&loop, bus);
    sl_bus_broker_free(broker);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A handler that keeps failing: redelivered with backoff up to max_deliver, then dead-lettered;
 * only then is the publish acknowledged. */
static void test_confirm_dead_letter(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_bus_broker *broker;
    sl_bus *bus = open_confirming(&loop, &broker, 0);
    char topic[128];
    topic_of(topic, sizeof topic, "poison");
    rec a = {.loop = &loop, .always_nack = 1};
    sl_bus_sub_options o = fast_opts();
    o.max_deliver = 3;
    sl_bus_sub *sa;
    assert_int_equal(sl_bus_subscribe(bus, topic, "ga", &o, rec_handler, &a, &sa), 0);
    run_until(&loop, cond_true_never, NULL, 50);
    pubstate ps = {0, 0, 0};
    publish_async(bus, topic, "p-1", "s1", 1, &ps);
    assert_true(run_until(&loop, pubs_done, &ps, 20000));
    assert_int_equal(ps.ok, 1);
    assert_int_equal(a.count, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(a.deliveries[i], (unsigned)i + 1);
    deadlist d;
    wait_dead(&loop, bus, topic, 1, &d);
    assert_string_equal(d.items[0].id, "p-1");
    assert_int_equal(d.items[0].deliveries, 3);
    assert_non_null(strstr(d.items[0].reason, "always failing"));
    assert_int_equal(sl_bus_broker_queued(broker), 0);
    sl_bus_unsubscribe(sa);
    close_bus(&loop, bus);
    sl_bus_broker_free(broker);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Dead letters kept by the consumer (the hosted services' database): the message is settled,
 * and the publish acknowledged, only once the keep hook wrote it; a refusal (the table full)
 * leaves it unsettled and it comes back, nothing goes to `.dlq`. */
typedef struct keeper {
    sl_db *db;
    int64_t max;
    int refused, kept;
    pubstate *ps;
    int acked_before_kept; /* publish acks seen before the row was written (must stay 0) */
} keeper;

static int keep_hook(void *data, const char *topic, const char *group, const char *key,
                     const char *letter, size_t len)
{
    keeper *k = data;
    k->acked_before_kept += k->ps->ok;
    int rc = sl__dead_store_put(k->db, group, key, topic, letter, len, 1, k->max);
    if (rc == 0)
        k->kept++;
    else
        k->refused++;
    return rc;
}

static int refused_twice(void *p)
{
    return ((keeper *)p)->refused >= 2;
}

static int apply_poison(void *data, sl_db *tx, const sl_bus_msg *m, char *reason, size_t cap)
{
    (void)data;
    (void)tx;
    (void)m;
    snprintf(reason, cap, "poison");
    return SL_EPARSE;
}

static void test_confirm_dead_letter_kept(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char dir[] = "/tmp/shoal-bus-XXXXXX", url[128];
    assert_non_null(mkdtemp(dir));
    snprintf(url, sizeof url, "sqlite:%s/k.db", dir);
    sl_db *db;
    assert_int_equal(sl_db_open(url, NULL, &db, NULL, 0), 0);
    assert_int_equal(sl_db_migrate(db, sl_db_lib_migrations(), NULL), 0);
    /* One dead letter already there and a cap of 1: the table is full. */
    assert_int_equal(sl__dead_store_put(db, "other", "old", "shop.x.y.v1", "{}", 2, 1, 10), 0);
    sl_bus_broker *broker;
    sl_bus *bus = open_confirming(&loop, &broker, 0);
    char topic[128];
    topic_of(topic, sizeof topic, "kept");
    pubstate ps = {0, 0, 0};
    keeper k = {.db = db, .max = 1, .ps = &ps};
    sl_bus_sub_options o = fast_opts();
    sl_bus_runner_options ro = {.consumer = "gk"};
    sl_bus_runner *r;
    assert_int_equal(sl_bus_runner_new(bus, db, topic, "gk", &o, &ro, apply_poison, NULL, &r), 0);
    sl__bus_runner_keep_dead(r, keep_hook, &k);
    run_until(&loop, cond_true_never, NULL, 50);
    publish_async(bus, topic, "k-1", "s1", 1, &ps);
    /* Refused: the message comes back, the publish stays unacknowledged. */
    assert_true(run_until(&loop, refused_twice, &k, 20000));
    assert_int_equal(ps.pending, 1);
    assert_int_equal(sl_bus_broker_queued(broker), 1);
    /* Room again: kept, then settled and acknowledged. */
    k.max = 10;
    assert_true(run_until(&loop, pubs_done, &ps, 20000));
    assert_int_equal(ps.ok, 1);
    assert_int_equal(k.kept, 1);
    assert_int_equal(k.acked_before_kept, 0);
    assert_int_equal(sl_bus_broker_queued(broker), 0);
    sl_bus_dead items[4];
    size_t n = 0;
    assert_int_equal(sl__dead_store_list(db, topic, 4, items, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(items[0].id, "k-1");
    assert_string_equal(items[0].group, "gk");
    assert_string_equal(items[0].reason, "poison");
    deadlist d;
    list_dead(&loop, bus, topic, &d); /* nothing went to the in-memory `.dlq` */
    assert_int_equal(d.n, 0);
    sl_bus_runner_free(r);
    close_bus(&loop, bus);
    sl_bus_broker_free(broker);
    sl_db_close(db);
    assert_int_equal(uv_loop_close(&loop), 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A full queue refuses publishes (SL_ELIMIT) until the groups catch up; ordered subjects stay
 * in publish order. */
static void test_confirm_bounded_ordered(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_bus_broker *broker;
    sl_bus *bus = open_confirming(&loop, &broker, 50);
    char topic[128];
    topic_of(topic, sizeof topic, "bounded");
    rec a = {.loop = &loop, .nack_every = 7, .nack_delay = 20};
    sl_bus_sub_options o = fast_opts();
    sl_bus_sub *sa;
    assert_int_equal(sl_bus_subscribe(bus, topic, "ga", &o, rec_handler, &a, &sa), 0);
    run_until(&loop, cond_true_never, NULL, 50);
    pubstate ps = {0, 0, 0};
    int sent = 0, refused = 0;
    while (sent < 300) {
        char id[32], subj[8];
        snprintf(id, sizeof id, "b-%d", sent);
        snprintf(subj, sizeof subj, "s%d", sent % 5);
        char *env = envelope(topic, id, subj, sent);
        sl_bus_out m = {topic, id, subj, env, strlen(env)};
        int rc = sl_bus_publish(bus, &m, 1, on_pub, &ps);
        free(env);
        if (rc == SL_ELIMIT) {
            refused++;
            assert_true(sl_bus_broker_queued(broker) <= 50);
            run_until(&loop, cond_true_never, NULL, 20); /* back off: the handler catches up */
            continue;
        }
        assert_int_equal(rc, 0);
        ps.pending++;
        sent++;
    }
    assert_true(refused > 0);
    assert_true(run_until(&loop, pubs_done, &ps, 30000));
    assert_int_equal(ps.ok, 300);
    assert_int_equal(acked_total(&a, 300), 300);
    /* Per subject, the acknowledged handling is in publish order. */
    int last[5] = {-1, -1, -1, -1, -1};
    for (int i = 0; i < a.count; i++) {
        if (a.deliveries[i] == 1 && a.n[i] % 7 == 0) continue; /* the nacked attempt */
        int sj = a.n[i] % 5;
        assert_true(a.n[i] > last[sj]);
        last[sj] = a.n[i];
    }
    assert_int_equal(sl_bus_broker_queued(broker), 0);
    sl_bus_unsubscribe(sa);
    close_bus(&loop, bus);
    sl_bus_broker_free(broker);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A publisher that closes fails its waiting publishes (SL_ECANCELED: the outbox row stays
 * unpublished); the group still gets the message. */
static void test_confirm_close(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_bus_broker *broker;
    sl_bus *cons = open_confirming(&loop, &broker, 0);
    const char *ctxs[] = {g.ctx};
    sl_bus_options o = {
        .url = "inproc:", .contexts = ctxs, .n_contexts = 1, .partitions = 4, .broker = broker};
    sl_bus *prod = NULL;
    assert_int_equal(sl_bus_open(&loop, &o, &prod, NULL, 0), 0);
    char topic[128];
    topic_of(topic, sizeof topic, "close");
    rec a = {.loop = &loop, .drop_first = 1};
    sl_bus_sub_options so = fast_opts();
    sl_bus_sub *sa;
    assert_int_equal(sl_bus_subscribe(cons, topic, "ga", &so, rec_handler, &a, &sa), 0);
    run_until(&loop, cond_true_never, NULL, 50);
    pubstate ps = {0, 0, 0};
    publish_async(prod, topic, "x-1", "s1", 0, &ps);
    want wa = {{&a}, 1, 1};
    run_until(&loop, cond_true_never, NULL, 100);
    close_bus(&loop, prod);
    assert_int_equal(ps.pending, 0);
    assert_int_equal(ps.failed, 1);
    assert_true(run_until(&loop, all_seen, &wa, 20000)); /* redelivered after ack_wait */
    assert_int_equal(sl_bus_broker_queued(broker), 0);
    sl_bus_unsubscribe(sa);
    close_bus(&loop, cons);
    sl_bus_broker_free(broker);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(int argc, char **argv)
{
    const char *b = argc > 1 ? argv[1] : "inproc";
    g.nats = strcmp(b, "nats") == 0;
    snprintf(g.ctx, sizeof g.ctx, "t%d", (int)getpid());
    if (g.nats) {
        const char *dir = getenv("SHOAL_NATS_DIR");
        char path[512];
        snprintf(path, sizeof path, "%s/url", dir ? dir : "");
        FILE *f = fopen(path, "r");
        if (f == NULL || fgets(g.url, sizeof g.url, f) == NULL) {
            fprintf(stderr,
                    "FAIL: no nats-server: %s missing (the ctest fixture "
                    "bus.nats.fixture.start must run first)\n",
                    path);
            return 1;
        }
        fclose(f);
        g.url[strcspn(g.url, "\r\n")] = '\0';
    } else {
        snprintf(g.url, sizeof g.url, "inproc:");
        if (sl_bus_broker_new(0, &g.broker) != 0) return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_fanout),
        cmocka_unit_test(test_competing),
        cmocka_unit_test(test_redelivery_after_ack_wait),
        cmocka_unit_test(test_nack_with_delay),
        cmocka_unit_test(test_dead_letter_and_redrive),
        cmocka_unit_test(test_ordering_two_instances),
        cmocka_unit_test(test_duplicate_dropped),
        cmocka_unit_test(test_consumer_restart),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_runner_once),
        cmocka_unit_test(test_fetch_error_while_held),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (!g.nats) {
        const struct CMUnitTest confirm[] = {
            cmocka_unit_test(test_confirm_after_commit),
            cmocka_unit_test(test_confirm_every_group),
            cmocka_unit_test(test_confirm_dead_letter),
            cmocka_unit_test(test_confirm_dead_letter_kept),
            cmocka_unit_test(test_confirm_bounded_ordered),
            cmocka_unit_test(test_confirm_close),
        };
        rc |= cmocka_run_group_tests_name("confirming broker", confirm, NULL, NULL);
    }
    sl_bus_broker_free(g.broker);
    return rc;
}
