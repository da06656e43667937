/*
 * Checkout throughput and latency of shoal-order (bench/checkout.sh): starts
 * INSTANCES build/bin/shoal-order processes (one worker each) on one fresh
 * database (SQLite by default; a PostgreSQL URL for the shared-database
 * case, where the instances split the sagas through their leases) with FAKE
 * participants (tests/services/order/fake_participant.h, in this process:
 * inventory and payment answer at once and keep one reply per idempotency
 * key in memory), seeds the price replica through the service's own applier,
 * then runs `clients` threads for `seconds`, each placing an order (POST
 * /orders, signed identity; client i posts to instance i mod INSTANCES) and
 * polling GET /orders/{id}, alternating over the instances, until it is
 * `confirmed`. Prints confirmed checkouts per second, p50/p99 of
 * POST→confirmed, and the durable commits per checkout counted from the
 * database (order transaction + saga saves + the local confirm), plus the
 * participants' one commit each that a real inventory and payment make (not
 * measured here: fakes).
 *
 * It also checks the result: every accepted order confirmed (none cancelled,
 * none stuck), one completed saga per confirmed order, and at the fakes
 * exactly one reservation and one charge (one idempotency key each) per
 * confirmed order and no other charge. Any miss is printed and the exit
 * status is 1, so a fast but wrong run cannot pass as a figure.
 *
 *   bench_checkout BIN_DIR TMP_DIR SECONDS CLIENTS [DB_URL [INSTANCES]]
 */
/* A run keeps every key (one reservation and one charge per order): room for 64k orders. */
#define FK_KEYS_MAX 65536

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

#define MAX_INSTANCES 2
#define OID_MAX       80

typedef struct run {
    int ports[MAX_INSTANCES];
    int instances;
    th_idkeys key; /* the gateway's and the saga's edges, as `shoal up` makes them */
    int64_t deadline_ms;
    pthread_mutex_t mu;
    double *lat_ms;
    char (*oids)[OID_MAX]; /* the confirmed orders, for the check at the fakes */
    size_t n, cap;
    size_t errors; /* failed requests, cancelled or never confirmed orders */
    size_t shed;   /* POST /orders answered 503 (the admission limit): no order, no effect */
    int next_client;
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
static int request(run *r, int port, const char *method, const char *path, const char *user,
                   const char *body, json_t **out)
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
    int fd = th_connect(port);
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

static void record(run *r, double ms, int ok, const char *oid)
{
    pthread_mutex_lock(&r->mu);
    if (!ok) {
        r->errors++;
    } else if (r->n < r->cap) {
        r->lat_ms[r->n] = ms;
        snprintf(r->oids[r->n], OID_MAX, "%s", oid);
        r->n++;
    } else {
        r->errors++; /* no room to check it: counted as a miss, never silently dropped */
    }
    pthread_mutex_unlock(&r->mu);
}

static void *client(void *arg)
{
    run *r = arg;
    pthread_mutex_lock(&r->mu);
    int me = r->next_client++;
    pthread_mutex_unlock(&r->mu);
    char user[32];
    snprintf(user, sizeof user, "bench-%d", me);
    int post_port = r->ports[me % r->instances];
    const char *body = "{\"items\":[{\"product_id\":\"b1\",\"qty\":1},{\"product_id\":\"b2\","
                       "\"qty\":2}],\"shipping_address\":{\"name\":\"B\",\"line1\":\"1\","
                       "\"city\":\"C\",\"postal_code\":\"1\",\"country\":\"JP\"}}";
    while (mono_ms() < r->deadline_ms) {
        double t0 = mono_ms_f();
        json_t *v = NULL;
        int st = request(r, post_port, "POST", "/orders", user, body, &v);
        const char *oid = json_string_value(json_object_get(v, "order_id"));
        char id[OID_MAX] = "", path[128];
        if (st == 503) {
            json_decref(v);
            pthread_mutex_lock(&r->mu);
            r->shed++;
            pthread_mutex_unlock(&r->mu);
            usleep(1000);
            continue;
        }
        int ok = st == 202 && oid && strlen(oid) < sizeof id, done = 0;
        if (ok) {
            snprintf(id, sizeof id, "%s", oid);
            snprintf(path, sizeof path, "/orders/%s", id);
        }
        json_decref(v);
        for (int i = 0; ok && !done && i < 100000; i++) {
            json_t *o = NULL;
            st = request(r, r->ports[i % r->instances], "GET", path, user, NULL, &o);
            const char *s = json_string_value(json_object_get(o, "status"));
            done = s && strcmp(s, "confirmed") == 0;
            ok = st == 200 && s && strcmp(s, "cancelled") != 0;
            json_decref(o);
            if (!done) usleep(200);
        }
        if (ok && !done) fprintf(stderr, "bench_checkout: order %s never confirmed\n", id);
        record(r, mono_ms_f() - t0, ok && done, id);
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

/* The check at the fakes: each confirmed order reserved and charged exactly once under one key
 * each, no charge for any other order, no request with a bad identity, no key left unrecorded.
 * Returns the number of misses (each printed). */
static size_t check_effects(run *r, fake *inv, fake *pay)
{
    size_t wrong = 0;
    for (size_t i = 0; i < r->n; i++) {
        int rk = 0, ck = 0;
        int re = fk_effects(inv, FK_RESERVE, r->oids[i], &rk);
        int ce = fk_effects(pay, FK_CHARGE, r->oids[i], &ck);
        if (re != 1 || rk != 1 || ce != 1 || ck != 1) {
            if (wrong < 10)
                fprintf(stderr,
                        "bench_checkout: order %s: %d reservations (%d keys), %d charges "
                        "(%d keys); want 1 each\n",
                        r->oids[i], re, rk, ce, ck);
            wrong++;
        }
    }
    size_t charges = 0;
    pthread_mutex_lock(&pay->mu);
    for (size_t i = 0; i < pay->neff; i++)
        if (pay->eff[i].op == FK_CHARGE) charges += (size_t)pay->eff[i].effects;
    int full = pay->neff >= FK_KEYS_MAX;
    pthread_mutex_unlock(&pay->mu);
    pthread_mutex_lock(&inv->mu);
    full = full || inv->neff >= FK_KEYS_MAX;
    pthread_mutex_unlock(&inv->mu);
    if (charges != r->n) {
        fprintf(stderr,
                "bench_checkout: %zu charges at the payment fake for %zu confirmed orders\n",
                charges, r->n);
        wrong++;
    }
    if (full) {
        fprintf(stderr, "bench_checkout: a fake ran out of key slots (%d); shorten the run\n",
                FK_KEYS_MAX);
        wrong++;
    }
    int bad = fk_bad_identity(inv) + fk_bad_identity(pay);
    if (bad) {
        fprintf(stderr, "bench_checkout: %d participant requests with a bad or no identity/key\n",
                bad);
        wrong++;
    }
    return wrong;
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 7) {
        fprintf(stderr,
                "usage: bench_checkout BIN_DIR TMP_DIR SECONDS CLIENTS [DB_URL [INSTANCES]]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setenv("SHOAL_BIN_DIR", argv[1], 1);
    const char *tmp = argv[2];
    int secs = atoi(argv[3]), clients = atoi(argv[4]);
    int instances = argc > 6 ? atoi(argv[6]) : 1;
    if (secs < 1 || clients < 1 || clients > 1024 || instances < 1 || instances > MAX_INSTANCES) {
        fprintf(stderr, "bench_checkout: SECONDS >= 1, CLIENTS 1..1024, INSTANCES 1..%d\n",
                MAX_INSTANCES);
        return 2;
    }
    fake inv, pay;
    if (fk_start(&inv) != 0 || fk_start(&pay) != 0) return 1;
    run r = {.cap = 200000, .instances = instances};
    pthread_mutex_init(&r.mu, NULL);
    r.lat_ms = malloc(r.cap * sizeof *r.lat_ms);
    r.oids = malloc(r.cap * sizeof *r.oids);
    if (!r.lat_ms || !r.oids) return 1;
    char keypath[600], dburl[600], err[256], env[6][700];
    snprintf(keypath, sizeof keypath, "%s/identity.key", tmp);
    if (argc > 5)
        snprintf(dburl, sizeof dburl, "%s", argv[5]);
    else
        snprintf(dburl, sizeof dburl, "sqlite:%s/order.db", tmp);
    const char *backend = strncmp(dburl, "sqlite:", 7) == 0 ? "sqlite" : "postgres";
    if (th_idkeys_make(keypath, "order", &r.key, err) != 0) return 1;
    fk_set_key(&inv, &r.key.ring);
    fk_set_key(&pay, &r.key.ring);
    snprintf(env[0], sizeof env[0], "SHOAL_DB__URL=%s", dburl);
    snprintf(env[1], sizeof env[1], "SHOAL_IDENTITY__KEY_FILE=%s", keypath);
    snprintf(env[2], sizeof env[2], "SHOAL_UPSTREAMS__INVENTORY__URL=http://127.0.0.1:%d",
             inv.port);
    snprintf(env[3], sizeof env[3], "SHOAL_UPSTREAMS__PAYMENT__URL=http://127.0.0.1:%d", pay.port);
    snprintf(env[4], sizeof env[4], "SHOAL_LOG__LEVEL=warn");
    char *envp[] = {env[0], env[1], env[2], env[3], env[4], NULL};
    pid_t pids[MAX_INSTANCES];
    /* One after the other: the first applies the migrations, the second finds them applied. */
    for (int k = 0; k < instances; k++) {
        char port[16], log[620];
        r.ports[k] = th_free_port();
        snprintf(port, sizeof port, "%d", r.ports[k]);
        snprintf(log, sizeof log, "%s/order-%d.log", tmp, k);
        char *av[] = {"shoal-order", "--port", port, "--workers", "1", NULL};
        pids[k] = th_spawn(av, envp, log);
        if (th_wait_port(r.ports[k], 15000) != 0) {
            fprintf(stderr, "bench_checkout: shoal-order %d did not start (log %s)\n", k, log);
            for (int j = 0; j <= k; j++) /* never leave one running */
                th_stop(pids[j], SIGTERM, 15000);
            return 1;
        }
    }
    sl_db *db;
    if (sl_db_open(dburl, NULL, &db, err, sizeof err) != 0) {
        fprintf(stderr, "bench_checkout: %s\n", err);
        for (int k = 0; k < instances; k++)
            th_stop(pids[k], SIGTERM, 15000);
        return 1;
    }
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
    for (int k = 0; k < instances; k++)
        th_stop(pids[k], SIGTERM, 15000);
    /* Order-side durable commits per checkout: the create transaction (order + saga), the lease
     * claim when the driver takes the saga up after that commit (lease_version counts claims
     * from 0), one per saga save (version counts them from 1 at create), and the local confirm
     * transaction. The lease renewals (one statement per instance every lease_ms / 3) are not
     * per checkout and not counted. */
    sl_db_stmt *st = NULL;
    double saves = 0, claims = 0;
    int64_t sagas = 0, other = -1;
    if (sl_db_prepare(db,
                      "SELECT COUNT(*), CAST(COALESCE(SUM(version - 1), 0) AS BIGINT), "
                      "CAST(COALESCE(SUM(lease_version), 0) AS BIGINT) "
                      "FROM saga_instances WHERE type = 'checkout' AND status = 'completed'",
                      &st) == 0 &&
        sl_db_step(st) == SL_DB_ROW) {
        sagas = sl_db_column_int64(st, 0);
        if (sagas > 0) saves = (double)sl_db_column_int64(st, 1) / (double)sagas;
        if (sagas > 0) claims = (double)sl_db_column_int64(st, 2) / (double)sagas;
    }
    sl_db_stmt_done(st);
    st = NULL;
    if (sl_db_prepare(db,
                      "SELECT COUNT(*) FROM saga_instances "
                      "WHERE type = 'checkout' AND status <> 'completed'",
                      &st) == 0 &&
        sl_db_step(st) == SL_DB_ROW)
        other = sl_db_column_int64(st, 0);
    sl_db_stmt_done(st);
    sl_db_close(db);
    size_t wrong = check_effects(&r, &inv, &pay);
    if (sagas != (int64_t)r.n || other != 0) {
        fprintf(stderr,
                "bench_checkout: %lld completed and %lld other checkout sagas for %zu confirmed "
                "orders\n",
                (long long)sagas, (long long)other, r.n);
        wrong++;
    }
    if (r.errors > 0) wrong++;
    qsort(r.lat_ms, r.n, sizeof *r.lat_ms, cmp_double);
    double p50 = r.n ? r.lat_ms[r.n / 2] : 0, p99 = r.n ? r.lat_ms[(r.n * 99) / 100] : 0;
    double order_commits = 1 + claims + saves + 1;
    printf(
        "checkout db=%s instances=%d confirmed=%zu errors=%zu shed=%zu wrong=%zu "
        "seconds=%.2f clients=%d rate=%.1f p50_ms=%.2f p99_ms=%.2f order_commits=%.2f claims=%.2f "
        "participant_commits=2 completed_sagas=%lld participants=fake-in-process\n",
        backend, instances, r.n, r.errors, r.shed, wrong, elapsed, clients, (double)r.n / elapsed,
        p50, p99, order_commits, claims, (long long)sagas);
    free(t);
    free(r.lat_ms);
    free(r.oids);
    fk_stop(&inv);
    fk_stop(&pay);
    return wrong > 0 || r.n == 0 ? 1 : 0;
}
