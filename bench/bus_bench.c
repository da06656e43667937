/*
 * Bus bench driver (bench/bus.sh runs it). Every mode moves N events, each
 * the same ~290-byte CloudEvents envelope the outbox writes, from a producer
 * to a consumer running at the same time, each on its own thread, and
 * prints one line
 *   "<mode> <events/s> <p50 ms> <p99 ms> <CPU us/event>"
 * where events/s is N over the time from the first publish to the last
 * handled event, latency is publish (or outbox commit) → handled, from a
 * CLOCK_REALTIME stamp carried in the payload, and the CPU time is this
 * process's (every thread; the broker's is bench/bus.sh's to measure).
 *   pipeline URL N UNORDERED DIR  outbox (SQLite) → relay → JetStream → runner + inbox (SQLite)
 *   raw URL N [PARTS]             js_PublishMsgAsync + pull Fetch(256) + Ack, same client; with
 *                                 PARTS > 1 on the bus's subject layout (T.p.<k>, k the bus's
 *                                 partition of the event's subject, consumer filter T.p.*)
 *   redis PORT N                  XADD (pipelined) + XREADGROUP COUNT 256 + XACK over RESP
 * With BUS_SEQ=1 the pipeline mode first writes and relays everything, then times the
 * consumer alone (to see which side limits the concurrent run).
 */
#include <shoal/bus.h>

#include "outbox/envelope_encode.h"

#include <nats/nats.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct result {
    long n, got;
    int64_t t_first, t_last;
    double *lat_ms;
} result;

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Prints: mode, events/s, latency p50 and p99 (ms), and this process's CPU time (user + system,
 * every thread, set-up included) per event in microseconds. */
static void report(const char *mode, result *r)
{
    qsort(r->lat_ms, (size_t)r->got, sizeof(double), cmp_d);
    double secs = (double)(r->t_last - r->t_first) / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_us = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
                    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    printf("%s %.0f %.3f %.3f %.2f\n", mode, (double)r->got / secs, r->lat_ms[r->got / 2],
           r->lat_ms[(long)((double)r->got * 0.99)], r->got ? cpu_us / (double)r->got : 0.0);
}

static void record(result *r, int64_t stamp)
{
    if (r->got < r->n) r->lat_ms[r->got++] = (double)(now_ns() - stamp) / 1e6;
    r->t_last = now_ns();
}

static int64_t stamp_of(const char *p, size_t len)
{
    const char *t = memmem(p, len, "\"t\":", 4);
    return t ? strtoll(t + 4, NULL, 10) : 0;
}

/* Event i's payload as the pipeline's producer writes it, and the envelope the outbox stores
 * and the relay publishes for it: the raw and Redis peers carry these exact bytes (a UUIDv7
 * id, time, datacontenttype), so every path moves the same bytes per event. */
static void bench_data(long i, char data[200], char subj[32])
{
    snprintf(subj, 32, "agg-%ld", i % 1000);
    snprintf(data, 200, "{\"t\":%lld,\"pad\":\"%040d\"}", (long long)now_ns(), 0);
}

static char *bench_envelope(long i, const char *type, char id[SL_DB_UUID_STR], char subj[32],
                            size_t *len)
{
    char data[200];
    bench_data(i, data, subj);
    int64_t now = now_ns();
    char *env = NULL;
    sl_outbox_event ev = {.source = "/bench", .type = type, .subject = subj, .data_json = data};
    if (sl_uuid7_at(now / 1000000, id) != 0 ||
        sl__outbox_envelope_encode(&ev, id, now, &env, len) != 0)
        abort();
    return env;
}

/* ---- pipeline ------------------------------------------------------------------------ */

typedef struct pipe_ctx {
    const char *url, *dir;
    long n;
    int unordered;
    result *r;
    uv_loop_t loop;
    sl_db *db;
    sl_bus *bus;
    sl_outbox_relay *relay;
    sl_bus_runner *runner;
    uv_timer_t timer;
    long written, published; /* published: counted from the relay's hook */
    volatile int stop;
} pipe_ctx;

static void relay_hook(void *data, const char *what, int64_t v)
{
    pipe_ctx *c = data;
    if (strcmp(what, "published") == 0) c->published += v;
}

/* Writes the next 200 events in one transaction while fewer than 4000 wait in the outbox (the
 * backlog comes from the relay's hook: a count(*) per tick would cost more than the relay). */
static void prod_tick(uv_timer_t *t)
{
    pipe_ctx *c = t->data;
    if (c->written >= c->n) {
        if (c->published >= c->n) uv_stop(t->loop);
        return;
    }
    if (c->written - c->published > 4000) return;
    if (sl_db_begin(c->db) != 0) return;
    long end = c->written + 200 < c->n ? c->written + 200 : c->n;
    for (long i = c->written; i < end; i++) {
        char subj[32], data[200];
        if (i == 0) c->r->t_first = now_ns();
        bench_data(i, data, subj);
        /* The id is generated (UUIDv7), as the services' are. */
        sl_outbox_event ev = {
            .source = "/bench", .type = "shop.bench.event.v1", .subject = subj, .data_json = data};
        if (sl_outbox_add(c->db, &ev, now_ns(), NULL) != 0) abort();
    }
    if (sl_db_commit(c->db) != 0) abort();
    c->written = end;
    sl_outbox_notify(c->relay);
}

static int bench_apply(void *data, sl_db *tx, const sl_bus_msg *m, char *reason, size_t cap)
{
    (void)tx;
    (void)reason;
    (void)cap;
    pipe_ctx *c = data;
    record(c->r, (int64_t)json_integer_value(json_object_get(m->data, "t")));
    if (c->r->got >= c->n) uv_stop(&c->loop);
    return 0;
}

static int open_side(pipe_ctx *c, const char *dbname)
{
    char url[600], err[256];
    snprintf(url, sizeof url, "sqlite:%s/%s", c->dir, dbname);
    uv_loop_init(&c->loop);
    const char *ctx[] = {"bench"};
    sl_bus_options o = {.url = c->url, .contexts = ctx, .n_contexts = 1};
    if (sl_db_open(url, NULL, &c->db, err, sizeof err) != 0 ||
        sl_db_migrate(c->db, sl_db_lib_migrations(), NULL) != 0 ||
        sl_bus_open(&c->loop, &o, &c->bus, err, sizeof err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return -1;
    }
    return 0;
}

static void close_side(pipe_ctx *c)
{
    sl_bus_close(c->bus, NULL, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_loop_close(&c->loop);
    sl_db_close(c->db);
}

static void *producer_main(void *arg)
{
    pipe_ctx *c = arg;
    if (open_side(c, "producer.db") != 0) exit(1);
    sl_outbox_publisher pub = sl_bus_outbox_publisher(c->bus);
    sl_outbox_relay_options ro = {
        .batch_max = 512, .poll_ms = 50, .hook = relay_hook, .hook_data = c};
    if (sl_outbox_relay_new(c->db, &pub, &ro, &c->relay) != 0 ||
        sl_outbox_relay_start(c->relay, &c->loop) != 0)
        exit(1);
    uv_timer_init(&c->loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, prod_tick, 1, 1);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&c->timer, NULL);
    sl_outbox_relay_stop(c->relay);
    uv_run(&c->loop, UV_RUN_NOWAIT);
    sl_outbox_relay_free(c->relay);
    close_side(c);
    return NULL;
}

static int ready(sl_bus *b)
{
    return sl_bus_ready(b);
}

static int run_pipeline(const char *url, long n, int unordered, const char *dir)
{
    result r = {.n = n, .lat_ms = calloc((size_t)n, sizeof(double))};
    pipe_ctx cons = {.url = url, .dir = dir, .n = n, .unordered = unordered, .r = &r};
    pipe_ctx prod = {.url = url, .dir = dir, .n = n, .r = &r};
    if (open_side(&cons, "consumer.db") != 0) return 1;
    while (!ready(cons.bus))
        uv_run(&cons.loop, UV_RUN_ONCE);
    sl_bus_sub_options so = {.unordered = unordered};
    sl_bus_runner_options ro = {.batch_max = 256};
    if (sl_bus_runner_new(cons.bus, cons.db, "shop.bench.event.v1", "bench", &so, &ro, bench_apply,
                          &cons, &cons.runner) != 0)
        return 1;
    pthread_t pt;
    pthread_create(&pt, NULL, producer_main, &prod);
    int seq = getenv("BUS_SEQ") != NULL;
    if (seq) {
        pthread_join(pt, NULL);
        fprintf(stderr, "produced+relayed in %.2f s\n", (double)(now_ns() - r.t_first) / 1e9);
        r.t_first = now_ns();
    }
    uv_run(&cons.loop, UV_RUN_DEFAULT);
    if (!seq) pthread_join(pt, NULL);
    sl_bus_runner_free(cons.runner);
    close_side(&cons);
    report(unordered ? "pipeline" : "pipeline_ordered", &r);
    free(r.lat_ms);
    return 0;
}

/* ---- raw JetStream ---------------------------------------------------------------------- */

typedef struct raw_ctx {
    jsCtx *js;
    long n;
    result *r;
    const char *filter;
} raw_ctx;

static void raw_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *c)
{
    (void)js;
    (void)pa;
    (void)pae;
    (void)c;
    natsMsg_Destroy(msg);
}

static void *raw_consumer(void *arg)
{
    raw_ctx *c = arg;
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.MaxAckPending = 20000;
    jsErrCode je;
    if (js_PullSubscribe(&sub, c->js, c->filter, "rawbench", NULL, &so, &je) != NATS_OK) exit(1);
    while (c->r->got < c->n) {
        natsMsgList l = {0};
        if (natsSubscription_Fetch(&l, sub, 256, 1000, &je) != NATS_OK) continue;
        for (int i = 0; i < l.Count; i++) {
            record(c->r,
                   stamp_of(natsMsg_GetData(l.Msgs[i]), (size_t)natsMsg_GetDataLength(l.Msgs[i])));
            natsMsg_Ack(l.Msgs[i], NULL);
        }
        natsMsgList_Destroy(&l);
    }
    natsSubscription_Destroy(sub);
    return NULL;
}

static int run_raw(const char *url, long n, unsigned parts)
{
    natsConnection *nc;
    jsCtx *js;
    if (natsConnection_ConnectTo(&nc, url) != NATS_OK) return 1;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = 8192;
    jo.PublishAsync.AckHandler = raw_ack;
    natsConnection_JetStream(&js, nc, &jo);
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subj[] = {"shop.braw.>"};
    sc.Name = "SHOP_BRAW";
    sc.Subjects = subj;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Duplicates = 120000000000LL;
    jsErrCode je;
    if (js_AddStream(NULL, js, &sc, NULL, &je) != NATS_OK) return 1;
    result r = {.n = n, .lat_ms = calloc((size_t)n, sizeof(double))};
    raw_ctx c = {js, n, &r, parts > 1 ? "shop.braw.event.v1.p.*" : "shop.braw.>"};
    pthread_t ct;
    pthread_create(&ct, NULL, raw_consumer, &c);
    usleep(200000);
    r.t_first = now_ns();
    for (long i = 0; i < n; i++) {
        char id[SL_DB_UUID_STR], agg[32], wire[64] = "shop.braw.event.v1";
        size_t len;
        char *data = bench_envelope(i, "shop.braw.event.v1", id, agg, &len);
        if (parts > 1)
            snprintf(wire, sizeof wire, "shop.braw.event.v1.p.%u", sl_bus_partition(agg, parts));
        natsMsg *m;
        natsMsg_Create(&m, wire, NULL, data, (int)len);
        free(data);
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MsgId = id;
        while (js_PublishMsgAsync(js, &m, &po) != NATS_OK)
            ;
    }
    pthread_join(ct, NULL);
    report(parts > 1 ? "raw_jetstream_partitioned" : "raw_jetstream", &r);
    js_DeleteStream(js, "SHOP_BRAW", NULL, &je);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    free(r.lat_ms);
    return 0;
}

/* ---- Redis Streams over RESP ------------------------------------------------------------ */

static int rconnect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return -1;
    return fd;
}

static void rsend(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w <= 0) exit(1);
        buf += w;
        len -= (size_t)w;
    }
}

static size_t resp_cmd(char *out, size_t cap, int argc, const char **argv)
{
    size_t o = (size_t)snprintf(out, cap, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++)
        o += (size_t)snprintf(out + o, cap - o, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
    return o;
}

/* Reads until `replies` top-level RESP replies are complete; returns the buffer (static). */
typedef struct rbuf {
    char *b;
    size_t len, cap;
} rbuf;

/* Parses one reply at *p; returns 1 when complete (advancing *p), 0 when more bytes needed. */
static int resp_skip(const char **p, const char *end)
{
    const char *s = *p;
    if (s >= end) return 0;
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    if (nl == NULL) return 0;
    char t = *s;
    long v = strtol(s + 1, NULL, 10);
    s = nl + 1;
    if (t == '$') {
        if (v < 0) {
            *p = s;
            return 1;
        }
        if (end - s < v + 2) return 0;
        *p = s + v + 2;
        return 1;
    }
    if (t == '*') {
        for (long i = 0; i < v; i++)
            if (!resp_skip(&s, end)) return 0;
    }
    *p = s;
    return 1;
}

static void read_replies(int fd, rbuf *rb, int replies)
{
    rb->len = 0;
    for (;;) {
        const char *p = rb->b, *end = rb->b + rb->len;
        int k = 0;
        while (k < replies && resp_skip(&p, end))
            k++;
        if (k == replies) return;
        if (rb->cap - rb->len < 65536) {
            rb->cap = rb->cap * 2 + 65536;
            rb->b = realloc(rb->b, rb->cap);
        }
        ssize_t r = read(fd, rb->b + rb->len, rb->cap - rb->len);
        if (r <= 0) exit(1);
        rb->len += (size_t)r;
    }
}

typedef struct redis_ctx {
    int port;
    long n;
    result *r;
} redis_ctx;

static void *redis_consumer(void *arg)
{
    redis_ctx *c = arg;
    int fd = rconnect(c->port);
    rbuf rb = {0};
    char cmd[1 << 16];
    while (c->r->got < c->n) {
        const char *xr[] = {"XREADGROUP", "GROUP", "g",       "c1", "COUNT", "256",
                            "BLOCK",      "1000",  "STREAMS", "bs", ">"};
        rsend(fd, cmd, resp_cmd(cmd, sizeof cmd, 11, xr));
        read_replies(fd, &rb, 1);
        /* Walk the entries: each id ("$..\r\n<ms>-<seq>") then fields, one holds "t":… */
        char ids[256][32];
        int nid = 0;
        const char *p = rb.b, *end = rb.b + rb.len;
        while ((p = memmem(p, (size_t)(end - p), "\r\n*2\r\n$", 7)) != NULL && nid < 256) {
            p += 7;
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *id = nl + 1, *idend = memchr(id, '\r', (size_t)(end - id));
            snprintf(ids[nid], sizeof ids[0], "%.*s", (int)(idend - id), id);
            const char *t = memmem(idend, (size_t)(end - idend), "\"t\":", 4);
            record(c->r, t ? strtoll(t + 4, NULL, 10) : 0);
            nid++;
            p = idend;
        }
        if (nid == 0) continue;
        const char *xa[260] = {"XACK", "bs", "g"};
        for (int i = 0; i < nid; i++)
            xa[3 + i] = ids[i];
        rsend(fd, cmd, resp_cmd(cmd, sizeof cmd, 3 + nid, xa));
        read_replies(fd, &rb, 1);
    }
    free(rb.b);
    close(fd);
    return NULL;
}

static int run_redis(int port, long n)
{
    int fd = rconnect(port);
    if (fd < 0) return 1;
    rbuf rb = {0};
    char cmd[1 << 16];
    const char *del[] = {"DEL", "bs"};
    rsend(fd, cmd, resp_cmd(cmd, sizeof cmd, 2, del));
    read_replies(fd, &rb, 1);
    const char *cg[] = {"XGROUP", "CREATE", "bs", "g", "$", "MKSTREAM"};
    rsend(fd, cmd, resp_cmd(cmd, sizeof cmd, 6, cg));
    read_replies(fd, &rb, 1);
    result r = {.n = n, .lat_ms = calloc((size_t)n, sizeof(double))};
    redis_ctx c = {port, n, &r};
    pthread_t ct;
    pthread_create(&ct, NULL, redis_consumer, &c);
    usleep(200000);
    r.t_first = now_ns();
    for (long i = 0; i < n; i += 100) {
        size_t o = 0;
        int k = 0;
        for (; k < 100 && i + k < n; k++) {
            char id[SL_DB_UUID_STR], agg[32];
            size_t len;
            char *data = bench_envelope(i + k, "shop.bench.event.v1", id, agg, &len);
            const char *xa[] = {"XADD", "bs", "*", "e", data};
            o += resp_cmd(cmd + o, sizeof cmd - o, 5, xa);
            free(data);
        }
        rsend(fd, cmd, o);
        read_replies(fd, &rb, k);
    }
    pthread_join(ct, NULL);
    report("redis_streams", &r);
    free(rb.b);
    close(fd);
    free(r.lat_ms);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && strcmp(argv[1], "pipeline") == 0)
        return run_pipeline(argv[2], atol(argv[3]), atoi(argv[4]), argv[5]);
    if (argc >= 4 && strcmp(argv[1], "raw") == 0)
        return run_raw(argv[2], atol(argv[3]), argc >= 5 ? (unsigned)atoi(argv[4]) : 1);
    if (argc >= 4 && strcmp(argv[1], "redis") == 0) return run_redis(atoi(argv[2]), atol(argv[3]));
    fprintf(stderr,
            "usage: bus_bench pipeline URL N UNORDERED DIR | raw URL N [PARTS] | redis PORT N\n");
    return 2;
}
