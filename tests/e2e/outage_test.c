/*
 * Outages end to end: `shoal up` starts the whole shop (every service, nats-server and the
 * gateway as real processes, on free ports, in a temporary data directory), with the order
 * service configured for a quick test: a checkout deadline of 8 s, a retry cap of 500 ms, a
 * sweep every 500 ms and at most 4 sagas tracked per driver (so bursts fill the driver and the
 * sweep has to pick up the rest). Through the gateway only:
 * - inventory frozen (SIGSTOP) for longer than the retry cap and than the deadline while
 *   orders arrive, then thawed: every order ends confirmed or cancelled `timeout` (those whose
 *   deadline passed during the outage are cancelled), no saga is stuck or left running, and
 *   stock and money are exact (available = before − confirmed units; wallet = before −
 *   confirmed × price);
 * - payment killed (SIGKILL) every few seconds while orders keep coming, for a bounded time
 *   (SHOAL_E2E_FLAP_S, 60 s by default; the supervisor restarts it with its backoff): once it
 *   stays up, every order is terminal and the same invariants hold exactly.
 *
 * SHOAL_E2E_SHAPE (tests/support/shape.h) hosts the services in other shapes. Mixed: payment
 * is still its own process and flaps alone; inventory shares the shoal-shop process with user,
 * product, cart and notification, so the whole process is frozen (order, its own process, keeps
 * taking orders and times them out). The monolith has no participant to take down alone (a
 * frozen or killed participant is the whole shop, and nothing takes orders): both scenarios are
 * skipped there, and e2e.shop's kill -9 of the monolith mid-checkout covers its outage.
 */
#include "harness.h"
#include "shape.h"

#include <jansson.h>
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

static char dir[] = "/tmp/shoal-outage-XXXXXX";
static int gw;   /* gateway port */
static pid_t up; /* shoal up */
static char uplog[600];

static const char *const names[] = {"user",  "product", "cart",        "inventory",
                                    "order", "payment", "notification"};
static int ports[7];
static th_shape shape;

#define DEADLINE_MS 8000
#define MAX_ORDERS  400

/* ---- HTTP through the gateway ----------------------------------------- */

typedef struct resp {
    int status;
    json_t *json;
} resp;

static void resp_free(resp *r)
{
    json_decref(r->json);
    r->json = NULL;
}

static int call(const char *method, const char *path, const char *token, const char *body,
                const char *extra, resp *out)
{
    char req[16384];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%s%s"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, token ? "Authorization: Bearer " : "", token ? token : "",
                     token ? "\r\n" : "", extra ? extra : "", blen);
    if (body && (size_t)n + blen < sizeof req) {
        memcpy(req + n, body, blen);
        n += (int)blen;
    }
    th_response r;
    memset(out, 0, sizeof *out);
    out->status = th_roundtrip(gw, req, (size_t)n, &r, 20000);
    if (out->status > 0) {
        out->json = r.body_len ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
        th_response_free(&r);
    }
    return out->status;
}

static const char *jstr(const json_t *v, const char *k)
{
    const char *s = json_string_value(json_object_get(v, k));
    return s ? s : "";
}

static long long jint(const json_t *v, const char *k)
{
    return (long long)json_integer_value(json_object_get(v, k));
}

static long long money(const json_t *v, const char *k)
{
    json_t *m = json_object_get(v, k);
    return json_is_integer(m) ? (long long)json_integer_value(m)
                              : (long long)json_integer_value(json_object_get(m, "amount"));
}

static void expect(const char *what, resp *r, int status)
{
    if (r->status != status) {
        char *b = r->json ? json_dumps(r->json, JSON_COMPACT) : NULL;
        fprintf(stderr, "%s: status %d, want %d: %s\n", what, r->status, status, b ? b : "");
        free(b);
    }
    assert_int_equal(r->status, status);
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static pid_t child_pid(const char *name)
{
    char line[512], pat[64];
    snprintf(pat, sizeof pat, "%s ", name);
    FILE *f = fopen(uplog, "r");
    pid_t pid = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *q = strstr(line, "started (pid ");
        if (q && strstr(line, pat)) pid = atoi(q + 13);
    }
    if (f) fclose(f);
    return pid;
}

/* The state letter of pid in /proc/<pid>/stat (R, S, T, ...), or '?'. */
static char process_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *end = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    return end && end[1] == ' ' && end[2] ? end[2] : '?';
}

/* ---- the shop's state ------------------------------------------------------ */

static char user[2048], admin[2048];
static char product_id[64];
static long long price;

static long long wallet_balance(void)
{
    resp r;
    /* Right after an outage a gateway worker's breaker may still be open: 503 with Retry-After,
     * which a client honours (bounded: 60 s). */
    for (int i = 0; i < 600 && call("GET", "/api/v1/wallet", user, NULL, NULL, &r) == 503; i++) {
        resp_free(&r);
        usleep(100000);
    }
    expect("wallet", &r, 200);
    long long b = money(r.json, "balance");
    resp_free(&r);
    return b;
}

static long long available(void)
{
    char p[128];
    snprintf(p, sizeof p, "/api/v1/products/%s", product_id);
    resp r;
    call("GET", p, NULL, NULL, NULL, &r);
    expect("product", &r, 200);
    long long a = jint(r.json, "available");
    resp_free(&r);
    return a;
}

/* Waits (bounded, 60 s) until the catalogue shows `want` available; returns the last value. */
static long long wait_available(long long want)
{
    long long a = available();
    for (int i = 0; i < 600 && a != want; i++, usleep(100000))
        a = available();
    return a;
}

/* Places one order of one unit; returns 1 with its id, 0 when shed (503 overloaded). */
static int order_one(char *order_id)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"items\":[{\"product_id\":\"%s\",\"qty\":1}],\"shipping_address\":{\"name\":"
             "\"Ann\",\"line1\":\"1-2-3 Shibuya\",\"city\":\"Tokyo\",\"postal_code\":"
             "\"150-0002\",\"country\":\"JP\"}}",
             product_id);
    resp r;
    call("POST", "/api/v1/orders", user, body, NULL, &r);
    if (r.status == 503) {
        resp_free(&r);
        return 0;
    }
    expect("order", &r, 202);
    snprintf(order_id, 64, "%s", jstr(r.json, "order_id"));
    resp_free(&r);
    return 1;
}

typedef struct tally {
    int confirmed, cancelled_timeout;
} tally;

/* Waits (bounded: 240 s in all) until every order is confirmed or cancelled; every cancel must
 * be `timeout` (stock and funds are ample). Counts both. */
static void wait_all_terminal(char (*ids)[64], int n, tally *t)
{
    memset(t, 0, sizeof *t);
    int64_t until = now_ms() + 240000;
    for (int i = 0; i < n; i++) {
        char p[160];
        snprintf(p, sizeof p, "/api/v1/orders/%s", ids[i]);
        for (;;) {
            resp r;
            call("GET", p, user, NULL, NULL, &r);
            const char *st = r.status == 200 ? jstr(r.json, "status") : "";
            if (strcmp(st, "confirmed") == 0) {
                t->confirmed++;
                resp_free(&r);
                break;
            }
            if (strcmp(st, "cancelled") == 0) {
                if (strcmp(jstr(r.json, "cancel_reason"), "timeout") != 0)
                    fail_msg("order %s cancelled for %s", ids[i], jstr(r.json, "cancel_reason"));
                t->cancelled_timeout++;
                resp_free(&r);
                break;
            }
            resp_free(&r);
            if (now_ms() > until) fail_msg("order %s still %s", ids[i], st[0] ? st : "unknown");
            usleep(100000);
        }
    }
}

/* Total of the admin saga listing for a status (through the gateway's admin-sagas route). */
static long long sagas_with(const char *status)
{
    char p[160];
    snprintf(p, sizeof p, "/api/v1/admin/sagas?status=%s&per_page=1", status);
    resp r;
    call("GET", p, admin, NULL, NULL, &r);
    expect("admin sagas", &r, 200);
    long long n = jint(r.json, "total");
    resp_free(&r);
    return n;
}

/* Nothing stuck, nothing left running or compensating (bounded wait: the last transitions of
 * a saga may trail its order's by a moment). */
static void expect_sagas_settled(void)
{
    for (int i = 0; i < 300 && sagas_with("running") + sagas_with("compensating") > 0; i++)
        usleep(100000);
    assert_int_equal(sagas_with("stuck"), 0);
    assert_int_equal(sagas_with("running"), 0);
    assert_int_equal(sagas_with("compensating"), 0);
}

/* Stock and money exact for `confirmed` orders of one unit since (avail0, wallet0). */
static void expect_exact(long long avail0, long long wallet0, int confirmed)
{
    assert_int_equal(wait_available(avail0 - confirmed), avail0 - confirmed);
    assert_int_equal(wallet_balance(), wallet0 - confirmed * price);
}

static void wait_ready(const char *path)
{
    for (int i = 0; i < 1200; i++, usleep(100000)) {
        resp r;
        int st = call("GET", path, user, NULL, NULL, &r);
        resp_free(&r);
        if (st == 200) return;
    }
    fail_msg("%s never answered 200 again", path);
}

/* ---- the tests ------------------------------------------------------------------------------ */

static void test_setup_shop(void **state)
{
    (void)state;
    resp r;
    call("POST", "/api/v1/auth/register", NULL,
         "{\"email\":\"ann@example.com\",\"password\":\"correct horse\",\"name\":\"Ann\"}", NULL,
         &r);
    expect("register", &r, 201);
    char user_id[128];
    snprintf(user_id, sizeof user_id, "%s", jstr(r.json, "user_id"));
    resp_free(&r);
    call("POST", "/api/v1/auth/login", NULL,
         "{\"email\":\"ann@example.com\",\"password\":\"correct horse\"}", NULL, &r);
    expect("login", &r, 200);
    snprintf(user, sizeof user, "%s", jstr(r.json, "access_token"));
    resp_free(&r);
    char path[700], line[256], email[128] = "", password[128] = "", body[400];
    snprintf(path, sizeof path, "%s/data/admin-credentials", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "email: %127s", email);
        sscanf(line, "password: %127s", password);
    }
    fclose(f);
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
    call("POST", "/api/v1/auth/login", NULL, body, NULL, &r);
    expect("admin login", &r, 200);
    snprintf(admin, sizeof admin, "%s", jstr(r.json, "access_token"));
    resp_free(&r);
    /* Money for every order of both tests: past a customer's daily deposit limit, so through
     * the admin path. */
    char dpath[256];
    snprintf(dpath, sizeof dpath, "/api/v1/admin/wallets/%s/deposits", user_id);
    for (int i = 0; i < 4; i++) {
        call("POST", dpath, admin, "{\"amount\":1000000000}", NULL, &r);
        expect("deposit", &r, 200);
        resp_free(&r);
    }
    /* A product with a price; stock for every order of both tests. */
    for (int i = 0; i < 300 && !product_id[0]; i++, usleep(100000)) {
        call("GET", "/api/v1/products?per_page=100&sort=price", NULL, NULL, NULL, &r);
        json_t *items = json_object_get(r.json, "items");
        for (size_t k = 0; k < json_array_size(items); k++) {
            json_t *it = json_array_get(items, k);
            if (jint(it, "available") > 0 && money(it, "price") > 0) {
                snprintf(product_id, sizeof product_id, "%s", jstr(it, "product_id"));
                price = money(it, "price");
                break;
            }
        }
        resp_free(&r);
    }
    assert_true(product_id[0] != '\0');
    long long a0 = available();
    snprintf(path, sizeof path, "/api/v1/admin/products/%s/restock", product_id);
    call("POST", path, admin, "{\"quantity\":5000}", NULL, &r);
    expect("restock", &r, 200);
    resp_free(&r);
    assert_int_equal(wait_available(a0 + 5000), a0 + 5000);
    /* The order service prices from its replica of the catalogue: wait until it has it. */
    char id[64];
    int ok = 0;
    for (int i = 0; i < 300 && !ok; i++) {
        snprintf(body, sizeof body,
                 "{\"items\":[{\"product_id\":\"%s\",\"qty\":1}],\"shipping_address\":{\"name\":"
                 "\"Ann\",\"line1\":\"1\",\"city\":\"Tokyo\",\"postal_code\":\"1\",\"country\":"
                 "\"JP\"}}",
                 product_id);
        call("POST", "/api/v1/orders", user, body, NULL, &r);
        ok = r.status == 202;
        if (ok) snprintf(id, sizeof id, "%s", jstr(r.json, "order_id"));
        resp_free(&r);
        if (!ok) usleep(100000);
    }
    assert_true(ok);
    tally t;
    char ids[1][64];
    snprintf(ids[0], sizeof ids[0], "%s", id);
    wait_all_terminal(ids, 1, &t);
    assert_int_equal(t.confirmed, 1);
}

static char ids[MAX_ORDERS][64];

static void test_inventory_outage(void **state)
{
    (void)state;
    if (shape == TH_SHAPE_MONOLITH) skip();
    expect_sagas_settled();
    long long avail0 = available(), wallet0 = wallet_balance();
    pid_t inv = child_pid(th_shape_process_of(shape, "inventory"));
    assert_true(inv > 0);
    assert_int_equal(kill(inv, SIGSTOP), 0);
    /* Stopped (state T) before the first order goes in; bounded: 5 s. */
    char st = process_state(inv);
    for (int i = 0; i < 50 && st != 'T'; i++, usleep(100000))
        st = process_state(inv);
    if (st != 'T')
        fail_msg("%s (pid %d) is in state %c after SIGSTOP, not T",
                 th_shape_process_of(shape, "inventory"), (int)inv, st);
    /* Batch 1; inventory stays frozen past its deadline (16 retry caps); batch 2 arrives
     * shortly before inventory is back, with most of its deadline left. */
    int n = 0, batch1;
    for (int i = 0; i < 10; i++)
        n += order_one(ids[n]);
    batch1 = n;
    int64_t last1 = now_ms();
    while (now_ms() < last1 + DEADLINE_MS + 1000)
        usleep(100000);
    for (int i = 0; i < 10; i++)
        n += order_one(ids[n]);
    usleep(2000000);
    assert_int_equal(kill(inv, SIGCONT), 0);
    assert_true(batch1 > 0);
    tally t;
    wait_all_terminal(ids, batch1, &t);
    /* Inventory was frozen well past their deadline: cancelled `timeout`, released. */
    if (t.cancelled_timeout != batch1) {
        for (int i = 0; i < batch1; i++) {
            char p[200];
            snprintf(p, sizeof p, "/api/v1/admin/sagas/checkout.%.64s", ids[i]);
            resp r;
            call("GET", p, admin, NULL, NULL, &r);
            char *d = r.json ? json_dumps(r.json, JSON_COMPACT) : NULL;
            if (d && strstr(d, "\"status\":\"completed\"")) fprintf(stderr, "%s\n", d);
            free(d);
            resp_free(&r);
        }
    }
    assert_int_equal(t.cancelled_timeout, batch1);
    wait_all_terminal(ids, n, &t);
    fprintf(stderr, "inventory outage: %d orders, %d confirmed, %d cancelled (timeout)\n", n,
            t.confirmed, t.cancelled_timeout);
    expect_sagas_settled();
    expect_exact(avail0, wallet0, t.confirmed);
}

static void test_flapping_payment(void **state)
{
    (void)state;
    if (shape == TH_SHAPE_MONOLITH) skip();
    expect_sagas_settled();
    long long avail0 = available(), wallet0 = wallet_balance();
    const char *env = getenv("SHOAL_E2E_FLAP_S");
    int flap_s = env ? atoi(env) : 60;
    if (flap_s < 5) flap_s = 5;
    if (flap_s > 600) flap_s = 600;
    int64_t end = now_ms() + (int64_t)flap_s * 1000, next_kill = now_ms() + 1000;
    int n = 0, kills = 0, shed = 0;
    while (now_ms() < end && n < MAX_ORDERS) {
        if (now_ms() >= next_kill) {
            pid_t pay = child_pid(th_shape_process_of(shape, "payment"));
            if (pay > 0 && kill(pay, SIGKILL) == 0) kills++;
            next_kill = now_ms() + 3000;
        }
        if (order_one(ids[n]))
            n++;
        else
            shed++;
        usleep(300000);
    }
    /* The flapping stops; payment comes back when the supervisor's backoff allows. */
    wait_ready("/api/v1/wallet");
    tally t;
    wait_all_terminal(ids, n, &t);
    fprintf(stderr,
            "flapping payment for %d s: %d kills, %d orders (%d shed), %d confirmed, %d "
            "cancelled (timeout)\n",
            flap_s, kills, n, shed, t.confirmed, t.cancelled_timeout);
    assert_true(kills >= 2);
    expect_sagas_settled();
    expect_exact(avail0, wallet0, t.confirmed);
}

/* ---- set-up: configuration with free ports, then `shoal up` ------------- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void replace_all(char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to);
    for (char *p = strstr(s, from); p; p = strstr(p + tl, from)) {
        size_t rest = strlen(p + fl);
        if ((size_t)(p - s) + tl + rest + 1 > (1 << 20)) abort();
        memmove(p + tl, p + fl, rest + 1);
        memcpy(p, to, tl);
    }
}

static int free_port5(void)
{
    for (;;) {
        int p = th_free_port();
        if (p >= 10000 && p <= 65535) return p;
    }
}

static int setup(void **state)
{
    (void)state;
    shape = th_shape_get();
    if (!mkdtemp(dir)) return -1;
    const char *src = getenv("SHOAL_SOURCE_DIR");
    char path[800];
    snprintf(path, sizeof path, "%s/config/gateway.yaml", src ? src : ".");
    char *gwcfg = slurp(path);
    if (!gwcfg) return -1;
    for (int i = 0; i < 7; i++) {
        ports[i] = free_port5();
        char from[32], to[96];
        snprintf(from, sizeof from, "127.0.0.1:%d]\n", 8101 + i);
        /* Every cluster's breaker recovers as quickly as payment's below (the default is
         * 30 s): a process killed and restarted (in the monolith, all seven services) is
         * reached again soon after it is back. */
        snprintf(to, sizeof to, "127.0.0.1:%d]\n%s", ports[i],
                 strcmp(names[i], "payment") == 0 ? ""
                                                  : "    breaker: {recovery_timeout_ms: 1000}\n");
        replace_all(gwcfg, from, to);
    }
    char to[32];
    snprintf(to, sizeof to, "port: %d", free_port5());
    replace_all(gwcfg, "port: 9901", to);
    replace_all(gwcfg, "recovery_timeout_ms: 30000", "recovery_timeout_ms: 1000");
    snprintf(path, sizeof path, "%s/gateway.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs(gwcfg, f);
    fclose(f);
    free(gwcfg);

    gw = free_port5();
    char local[800];
    snprintf(local, sizeof local, "%s/local.yaml", dir);
    f = fopen(local, "w");
    fprintf(f, "data_dir: %s/data\nnats:\n  port: %d\nservices:\n", dir, free_port5());
    const char *common = "SHOAL_BUS__ACK_WAIT_MS: \"3000\", SHOAL_LOG__LEVEL: warn";
    for (int i = 0; i < 7; i++) {
        char extra[900] = "";
        if (strcmp(names[i], "user") == 0)
            snprintf(extra, sizeof extra,
                     ", SHOAL_USER__BOOTSTRAP_ADMIN: \"true\", SHOAL_USER__PASSWORD_COST: min");
        if (strcmp(names[i], "product") == 0)
            snprintf(extra, sizeof extra, ", SHOAL_PRODUCT__DEMO: \"true\"");
        if (strcmp(names[i], "order") == 0)
            snprintf(extra, sizeof extra,
                     ", SHOAL_UPSTREAMS__INVENTORY__URL: \"http://127.0.0.1:%d\", "
                     "SHOAL_UPSTREAMS__PAYMENT__URL: \"http://127.0.0.1:%d\", "
                     "SHOAL_ORDER__SAGA__DEADLINE_MS: \"%d\", "
                     "SHOAL_ORDER__SAGA__STEP_TIMEOUT_MS: \"1000\", "
                     "SHOAL_ORDER__SAGA__BACKOFF_BASE_MS: \"50\", "
                     "SHOAL_ORDER__SAGA__BACKOFF_CAP_MS: \"500\", "
                     "SHOAL_ORDER__BREAKER_RECOVERY_MS: \"500\", "
                     "SHOAL_ORDER__SAGA__SWEEP_INTERVAL_MS: \"500\", "
                     "SHOAL_ORDER__SAGA__SWEEP_GRACE_MS: \"2000\", "
                     "SHOAL_ORDER__SAGA__MAX_ACTIVE: \"4\"",
                     ports[3], ports[5], DEADLINE_MS);
        fprintf(f, "  - {name: %s, port: %d%s, env: {%s%s}}\n", names[i], ports[i],
                strcmp(names[i], "order") == 0 ? ", calls: [inventory, payment]" : "", common,
                extra);
    }
    fprintf(f, "  - {name: gateway, port: %d, config: %s, env: {SHOAL_LOG__LEVEL: warn}}\n", gw,
            path);
    th_shape_write_hosting(f, shape);
    fclose(f);
    snprintf(uplog, sizeof uplog, "%s/up.log", dir);
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "exec %s up --config %s > %s 2>&1", th_bin("shoal"), local, uplog);
    char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    up = th_spawn(sh, NULL, NULL);
    for (int i = 0; i < 600; i++) {
        th_response r;
        const char rq[] = "GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n";
        int st = th_roundtrip(gw, rq, sizeof rq - 1, &r, 2000);
        if (st > 0) th_response_free(&r);
        if (st == 200) return 0;
        usleep(100000);
    }
    fprintf(stderr, "the shop did not come up; see %s\n", uplog);
    return -1;
}

static int teardown(void **state)
{
    (void)state;
    /* A stopped child would keep `shoal up` from stopping it. */
    pid_t inv = child_pid(th_shape_process_of(shape, "inventory"));
    if (inv > 0) kill(inv, SIGCONT);
    int st = th_stop(up, SIGTERM, 60000);
    char cmd[800];
    if (getenv("SHOAL_E2E_KEEP") == NULL) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) return -1;
    } else {
        fprintf(stderr, "kept %s\n", dir);
    }
    return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_setup_shop),
        cmocka_unit_test(test_inventory_outage),
        cmocka_unit_test(test_flapping_payment),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
