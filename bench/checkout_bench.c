/*
 * Checkout throughput and latency of shoal-order (bench/checkout.sh): starts
 * build/bin/shoal-order on a fresh SQLite database with FAKE participants
 * (tests/services/order/fake_participant.h, in this process: inventory and
 * payment answer at once and keep one reply per idempotency key in memory),
 * seeds the price replica through the service's own applier, then runs
 * `clients` threads for `seconds`, each placing an order (POST /orders, signed
 * identity) and polling GET /orders/{id} until it is `confirmed`. Prints
 * confirmed checkouts per second, p50/p99 of POST→confirmed, and the durable
 * commits per checkout counted from the database (order transaction + saga
 * saves + the local confirm), plus the participants' one commit each that a
 * real inventory and payment make (not measured here: fakes).
 *
 *   bench_checkout BIN_DIR TMP_DIR SECONDS CLIENTS
 */
#include "order.h"

#include "fake_participant.h"
#include "harness.h"
#include "identity_harness.h"

#include <shoal/bus.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

typedef struct run {
    int port;
    th_idkeys key; /* the gateway's and the saga's edges, as `shoal up` makes them */
    int64_t deadline_ms;
    pthread_mutex_t mu;
    double *lat_ms;
    size_t n, cap;
    size_t errors;
} run;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_ms_f(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One request on its own connection; returns the status and the parsed body (owned). */
static int request(run *r, const char *method, const char *path, const char *user, const char *body,
                   json_t **out)
{
    char proof[SL_IDENTITY_PROOF_MAX], raw[4096];
    sl_http_method m = strcmp(method, "POST") == 0 ? SL_HTTP_POST : SL_HTTP_GET;
    size_t bl = body ? strlen(body) : 0;
    if (th_idsign(&r->key, user, "customer", m, path, NULL, body, bl,
                  sl_clock_wall_ms(sl_clock_system()), proof) != 0)
        return -1;
    int n = snprintf(raw, sizeof raw,
                     "%s %s HTTP/1.1\r\nHost: b\r\nx-user-id: %s\r\nx-user-role: customer\r\n"
                     "x-shoal-identity: %s\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n"
                     "%s",
                     method, path, user, proof, body ? "Content-Type: application/json\r\n" : "",
                     bl, body ? body : "");
    int fd = th_connect(r->port);
    if (fd < 0) return -1;
    th_reader *rb = malloc(sizeof *rb);
    th_response res;
    memset(&res, 0, sizeof res);
    int st = -1;
    th_reader_init(rb, fd);
    if (th_send(fd, raw, (size_t)n) == 0 && th_read_response(rb, &res, 30000) == 0) st = res.status;
    free(rb);
    close(fd);
    *out = st > 0 ? json_loadb(res.body ? res.body : "", res.body_len, 0, NULL) : NULL;
    th_response_free(&res);
    return st;
}

static void record(run *r, double ms, int ok)
{
    pthread_mutex_lock(&r->mu);
    if (!ok) {
        r->errors++;
    } else if (r->n < r->cap) {
        r->lat_ms[r->n++] = ms;
    }
    pthread_mutex_unlock(&r->mu);
}

static void *client(void *arg)
{
    run *r = arg;
    char user[32];
    snprintf(user, sizeof user, "bench-%lu", (unsigned long)pthread_self() % 100000);
    const char *body = "{\"items\":[{\"product_id\":\"b1\",\"qty\":1},{\"product_id\":\"b2\","
                       "\"qty\":2}],\"shipping_address\":{\"name\":\"B\",\"line1\":\"1\","
                       "\"city\":\"C\",\"postal_code\":\"1\",\"country\":\"JP\"}}";
    while (mono_ms() < r->deadline_ms) {
        double t0 = mono_ms_f();
        json_t *v = NULL;
        int st = request(r, "POST", "/orders", user, body, &v);
        const char *oid = json_string_value(json_object_get(v, "order_id"));
        char path[128];
        int ok = st == 202 && oid;
        if (ok) snprintf(path, sizeof path, "/orders/%s", oid);
        json_decref(v);
        for (int i = 0; ok && i < 100000; i++) {
            json_t *o = NULL;
            st = request(r, "GET", path, user, NULL, &o);
            const char *s = json_string_value(json_object_get(o, "status"));
            int done = s && strcmp(s, "confirmed") == 0;
            ok = st == 200 && s && strcmp(s, "cancelled") != 0;
            json_decref(o);
            if (done) break;
            usleep(200);
        }
        record(r, mono_ms_f() - t0, ok);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void seed(sl_db *db, const char *pid, int64_t amount)
{
    char data[256];
    snprintf(data, sizeof data,
             "{\"product_id\":\"%s\",\"name\":\"Bench %s\",\"price\":{\"amount\":%lld,"
             "\"currency\":\"JPY\"}}",
             pid, pid, (long long)amount);
    json_t *d = json_loads(data, 0, NULL);
    sl_bus_msg msg = {.type = PRODUCT_EV_CREATED, .id = pid, .data = d};
    char reason[128];
    if (sl_db_begin(db) != 0 || product_replica_apply(NULL, db, &msg, reason, sizeof reason) != 0 ||
        sl_db_commit(db) != 0) {
        fprintf(stderr, "seed failed\n");
        exit(1);
    }
    json_decref(d);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: bench_checkout BIN_DIR TMP_DIR SECONDS CLIENTS\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setenv("SHOAL_BIN_DIR", argv[1], 1);
    const char *tmp = argv[2];
    int secs = atoi(argv[3]), clients = atoi(argv[4]);
    fake inv, pay;
    if (fk_start(&inv) != 0 || fk_start(&pay) != 0) return 1;
    run r = {.cap = 1000000};
    pthread_mutex_init(&r.mu, NULL);
    r.lat_ms = malloc(r.cap * sizeof *r.lat_ms);
    char keypath[600], dburl[600], err[256], env[6][700];
    snprintf(keypath, sizeof keypath, "%s/identity.key", tmp);
    snprintf(dburl, sizeof dburl, "sqlite:%s/order.db", tmp);
    if (th_idkeys_make(keypath, "order", &r.key, err) != 0) return 1;
    fk_set_key(&inv, &r.key.ring);
    fk_set_key(&pay, &r.key.ring);
    r.port = th_free_port();
    snprintf(env[0], sizeof env[0], "SHOAL_DB__URL=%s", dburl);
    snprintf(env[1], sizeof env[1], "SHOAL_IDENTITY__KEY_FILE=%s", keypath);
    snprintf(env[2], sizeof env[2], "SHOAL_UPSTREAMS__INVENTORY__URL=http://127.0.0.1:%d",
             inv.port);
    snprintf(env[3], sizeof env[3], "SHOAL_UPSTREAMS__PAYMENT__URL=http://127.0.0.1:%d", pay.port);
    snprintf(env[4], sizeof env[4], "SHOAL_LOG__LEVEL=warn");
    char *envp[] = {env[0], env[1], env[2], env[3], env[4], NULL};
    char port[16], log[620];
    snprintf(port, sizeof port, "%d", r.port);
    snprintf(log, sizeof log, "%s/order.log", tmp);
    char *av[] = {"shoal-order", "--port", port, "--workers", "1", NULL};
    pid_t pid = th_spawn(av, envp, log);
    if (th_wait_port(r.port, 15000) != 0) return 1;
    sl_db *db;
    if (sl_db_open(dburl, NULL, &db, err, sizeof err) != 0) return 1;
    seed(db, "b1", 1200);
    seed(db, "b2", 300);
    pthread_t *t = calloc((size_t)clients, sizeof *t);
    int64_t start = mono_ms();
    r.deadline_ms = start + (int64_t)secs * 1000;
    for (int i = 0; i < clients; i++)
        pthread_create(&t[i], NULL, client, &r);
    for (int i = 0; i < clients; i++)
        pthread_join(t[i], NULL);
    double elapsed = (double)(mono_ms() - start) / 1000.0;
    th_stop(pid, SIGTERM, 15000);
    /* Order-side durable commits per checkout: the create transaction (order + saga), one per
     * saga save (version counts them from 1 at create), and the local confirm transaction. */
    sl_db_stmt *st;
    double saves = 0;
    int64_t sagas = 0;
    if (sl_db_prepare(db,
                      "SELECT COUNT(*), COALESCE(SUM(version - 1), 0) FROM saga_instances "
                      "WHERE type = 'checkout' AND status = 'completed'",
                      &st) == 0 &&
        sl_db_step(st) == SL_DB_ROW) {
        sagas = sl_db_column_int64(st, 0);
        if (sagas > 0) saves = (double)sl_db_column_int64(st, 1) / (double)sagas;
    }
    sl_db_stmt_done(st);
    sl_db_close(db);
    qsort(r.lat_ms, r.n, sizeof *r.lat_ms, cmp_double);
    double p50 = r.n ? r.lat_ms[r.n / 2] : 0, p99 = r.n ? r.lat_ms[(r.n * 99) / 100] : 0;
    double order_commits = 1 + saves + 1;
    printf("checkout confirmed=%zu errors=%zu seconds=%.2f clients=%d rate=%.1f p50_ms=%.2f "
           "p99_ms=%.2f order_commits=%.2f participant_commits=2 completed_sagas=%lld "
           "participants=fake-in-process\n",
           r.n, r.errors, elapsed, clients, (double)r.n / elapsed, p50, p99, order_commits,
           (long long)sagas);
    free(t);
    free(r.lat_ms);
    fk_stop(&inv);
    fk_stop(&pay);
    return r.errors > 0 && r.n == 0 ? 1 : 0;
}
