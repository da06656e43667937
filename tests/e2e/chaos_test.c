/*
 * Chaos and the audit, end to end with real processes: `shoal up` on a fresh
 * data directory; GET /api/v1/admin/audit is the admin's only (401 without a
 * token, 403 for a customer) and clean on a quiet shop; then, under a load
 * of orders (some cancelled, so refunds too) placed through the gateway by a
 * child process, `shoal chaos` kills, pauses and slows random processes of
 * the shop (nats-server and the gateway included) for a bounded round
 * (SHOAL_CHAOS_SECONDS, 60 s by default), waits for the shop to settle and
 * runs the audit, which must be clean (exit 0). Last, two real violations
 * written into the services' SQLite databases (an order's amount that no
 * longer matches its charge, a stock row whose reserved count matches no
 * reservation) make `shoal audit` exit 1 naming the checks.
 *
 * SHOAL_E2E_SHAPE (tests/support/shape.h) runs the same round against the
 * shop hosted in one shoal-shop process: its kills take every service down
 * at once, and the audit must still be clean (nothing lost, charged once).
 */
#include "harness.h"
#include "shape.h"

#include <shoal/db.h>

#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[] = "/tmp/shoal-chaos-XXXXXX";
static char local[800];
static int gw;   /* gateway port */
static pid_t up; /* shoal up */
static char uplog[600];

static const char *const names[] = {"user",  "product", "cart",        "inventory",
                                    "order", "payment", "notification"};
static int ports[7];

#define USERS 4

static char admin[2048];
static char tokens[USERS][2048];
static char product_id[64];

/* ---- HTTP through the gateway ------------------------------------------------------------- */

typedef struct resp {
    int status;
    json_t *json;
} resp;

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

static void login(const char *email, const char *password, char *token)
{
    char body[256];
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
    resp r;
    for (int i = 0; i < 50; i++) {
        call("POST", "/api/v1/auth/login", NULL, body, NULL, &r);
        if (r.status != 429) break;
        json_decref(r.json);
        usleep(200000);
    }
    expect("login", &r, 200);
    snprintf(token, 2048, "%s", jstr(r.json, "access_token"));
    json_decref(r.json);
}

/* Runs `shoal <args>` (a shell word list) with its output into `out`; returns the exit status. */
static int shoal(const char *args, const char *out)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s --config %s > %s 2>&1", th_bin("shoal"), args, local, out);
    int st = system(cmd);
    char show[1200];
    snprintf(show, sizeof show, "cat %s >&2", out);
    if (system(show) != 0) fprintf(stderr, "(no output)\n");
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[2048];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* ---- the suite ---------------------------------------------------------------------------- */

static void test_audit_route(void **state)
{
    (void)state;
    char path[700], line[256], email[128] = "", password[128] = "";
    snprintf(path, sizeof path, "%s/data/admin-credentials", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "email: %127s", email);
        sscanf(line, "password: %127s", password);
    }
    fclose(f);
    login(email, password, admin);
    for (int u = 0; u < USERS; u++) {
        char body[256], mail[64];
        snprintf(mail, sizeof mail, "chaos%d@example.com", u);
        snprintf(body, sizeof body,
                 "{\"email\":\"%s\",\"password\":\"correct horse\",\"name\":\"C%d\"}", mail, u);
        resp r;
        call("POST", "/api/v1/auth/register", NULL, body, NULL, &r);
        expect("register", &r, 201);
        json_decref(r.json);
        login(mail, "correct horse", tokens[u]);
    }
    resp r;
    call("GET", "/api/v1/admin/audit", NULL, NULL, NULL, &r);
    expect("audit without a token", &r, 401);
    json_decref(r.json);
    call("GET", "/api/v1/admin/audit", tokens[0], NULL, NULL, &r);
    expect("audit as a customer", &r, 403);
    json_decref(r.json);
    call("GET", "/api/v1/admin/audit", admin, NULL, NULL, &r);
    expect("audit as the admin", &r, 200);
    assert_true(json_is_boolean(json_object_get(r.json, "ok")));
    json_t *checks = json_object_get(r.json, "checks");
    assert_true(json_array_size(checks) > 5);
    int digest = 0, cross = 0;
    for (size_t i = 0; i < json_array_size(checks); i++) {
        const char *n = jstr(json_array_get(checks, i), "name");
        digest |= strcmp(n, "payment.charge_digest") == 0;
        cross |= strcmp(n, "charged_exactly_once") == 0;
        assert_non_null(json_object_get(json_array_get(checks, i), "value"));
        assert_true(json_is_string(json_object_get(json_array_get(checks, i), "detail")));
    }
    assert_true(digest && cross);
    json_decref(r.json);

    /* A product of the demo catalogue with stock, restocked for the load; money in every
     * wallet. */
    for (int i = 0; i < 300 && !product_id[0]; i++, usleep(100000)) {
        call("GET", "/api/v1/products?per_page=100&sort=price", NULL, NULL, NULL, &r);
        json_t *items = json_object_get(r.json, "items");
        for (size_t k = 0; k < json_array_size(items) && !product_id[0]; k++) {
            json_t *it = json_array_get(items, k);
            if (json_integer_value(json_object_get(it, "available")) > 0 && money(it, "price") > 0)
                snprintf(product_id, sizeof product_id, "%s", jstr(it, "product_id"));
        }
        json_decref(r.json);
    }
    assert_true(product_id[0] != '\0');
    char p[200];
    snprintf(p, sizeof p, "/api/v1/admin/products/%s/restock", product_id);
    call("POST", p, admin, "{\"quantity\":100000}", NULL, &r);
    expect("restock", &r, 200);
    json_decref(r.json);
    for (int u = 0; u < USERS; u++) {
        call("POST", "/api/v1/wallet/deposits", tokens[u], "{\"amount\":100000000}", NULL, &r);
        expect("deposit", &r, 200);
        json_decref(r.json);
    }
    /* A quiet shop audits clean. */
    snprintf(path, sizeof path, "%s/audit0.out", dir);
    assert_int_equal(shoal("audit --settle 60s", path), 0);
    assert_true(file_has(path, "charged_exactly_once"));
    assert_true(file_has(path, "inventory.stock_ledger"));
    assert_true(file_has(path, "notification.dlq")); /* the dead-letter sizes, per service */
}

/* The load: orders round-robin over the users for `seconds`, about 20 a second, and a
 * cancellation after every fifth. Runs in a child process; prints its counts. */
static void load(int seconds)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"items\":[{\"product_id\":\"%s\",\"qty\":1}],\"shipping_address\":{\"name\":"
             "\"C\",\"line1\":\"1-2-3 Shibuya\",\"city\":\"Tokyo\",\"postal_code\":"
             "\"150-0002\",\"country\":\"JP\"}}",
             product_id);
    time_t end = time(NULL) + seconds;
    long accepted = 0, failed = 0, cancels = 0;
    char recent[8][64] = {{0}};
    int recent_user[8] = {0};
    for (long i = 0; time(NULL) < end; i++) {
        char key[96];
        snprintf(key, sizeof key, "Idempotency-Key: chaos-%ld-%d\r\n", i, (int)getpid());
        resp r;
        int u = (int)(i % USERS);
        call("POST", "/api/v1/orders", tokens[u], body, key, &r);
        if (r.status == 202) {
            int slot = (int)(accepted % 8);
            /* Every fifth order, cancel the one accepted eight orders ago (confirmed by now,
             * most likely: its cancellation refunds it). */
            if (accepted % 5 == 0 && recent[slot][0]) {
                char p[200];
                resp c;
                snprintf(p, sizeof p, "/api/v1/orders/%s/cancel", recent[slot]);
                call("POST", p, tokens[recent_user[slot]], "{}", NULL, &c);
                cancels += c.status >= 200 && c.status < 300;
                json_decref(c.json);
            }
            snprintf(recent[slot], sizeof recent[slot], "%s", jstr(r.json, "order_id"));
            recent_user[slot] = u;
            accepted++;
        } else {
            failed++;
        }
        json_decref(r.json);
        usleep(40000); /* about 20 orders a second: a load, not a flood, on a shared machine */
    }
    printf("load: %ld orders accepted, %ld refused or failed, %ld cancels accepted\n", accepted,
           failed, cancels);
    fflush(stdout);
}

static void test_chaos_round(void **state)
{
    (void)state;
    const char *env = getenv("SHOAL_CHAOS_SECONDS");
    int seconds = env ? atoi(env) : 60;
    if (seconds < 10 || seconds > 3600) seconds = 60;
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        load(seconds);
        _exit(0);
    }
    char args[256], out[700];
    snprintf(args, sizeof args,
             "chaos --duration %ds --kill-every 5s --pause --latency --seed 21 --settle 300s",
             seconds);
    snprintf(out, sizeof out, "%s/chaos.out", dir);
    int st = shoal(args, out);
    int cst = 0;
    waitpid(child, &cst, 0);
    assert_true(WIFEXITED(cst) && WEXITSTATUS(cst) == 0);
    /* It did something, said what and when, only to the shop's processes, and the audit after
     * the round is clean. */
    assert_true(file_has(out, "kill (SIGKILL)") || file_has(out, "pause (SIGSTOP)") ||
                file_has(out, "slow (SIGSTOP/SIGCONT"));
    assert_true(file_has(out, "round over"));
    assert_true(file_has(out, "audit: clean"));
    assert_int_equal(st, 0);
    /* The load got orders through: the audit compared real charges. */
    resp r;
    call("GET", "/api/v1/admin/audit", admin, NULL, NULL, &r);
    expect("audit after the round", &r, 200);
    json_t *checks = json_object_get(r.json, "checks");
    long long charged = -1;
    for (size_t i = 0; i < json_array_size(checks); i++)
        if (strcmp(jstr(json_array_get(checks, i), "name"), "order.charge_digest") == 0)
            charged = (long long)json_integer_value(
                json_object_get(json_object_get(json_array_get(checks, i), "value"), "count"));
    fprintf(stderr, "orders charged after the round: %lld\n", charged);
    assert_true(charged > 0);
    json_decref(r.json);
}

/* Runs one statement on a service's SQLite database (live: WAL and a busy timeout). */
static void tamper(const char *service, const char *sql)
{
    char url[800], err[256];
    snprintf(url, sizeof url, "sqlite:%s/data/%s.db", dir, service);
    sl_db *db = NULL;
    sl_db_options o = {.busy_timeout_ms = 20000};
    assert_int_equal(sl_db_open(url, &o, &db, err, sizeof err), 0);
    assert_int_equal(sl_db_exec(db, sql), 0);
    sl_db_close(db);
}

static void test_audit_catches_violations(void **state)
{
    (void)state;
    char out[700];
    snprintf(out, sizeof out, "%s/audit1.out", dir);
    /* An order now claims another amount than the one charged for it. */
    tamper("order", "UPDATE orders SET total_amount = total_amount + 1 WHERE order_id = "
                    "(SELECT order_id FROM orders WHERE status = 'confirmed' LIMIT 1)");
    assert_int_equal(shoal("audit --settle 60s", out), 1);
    assert_true(file_has(out, "FAIL charged_exactly_once"));
    assert_true(file_has(out, "audit: VIOLATIONS"));
    /* A stock row holds one unit more than its reservations. */
    char sql[400];
    snprintf(sql, sizeof sql,
             "UPDATE stock SET reserved = reserved + 1 WHERE product_id = '%s' AND reserved < "
             "stock",
             product_id);
    tamper("inventory", sql);
    assert_int_equal(shoal("audit --settle 5s", out), 1);
    assert_true(file_has(out, "FAIL inventory.stock"));
    assert_true(file_has(out, "reserved_mismatch"));
}

/* ---- set-up: configuration with free ports, then `shoal up` ------------------------------- */

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
                                                  : "    breaker: {recovery_timeout_ms: 2000}\n");
        replace_all(gwcfg, from, to);
    }
    char to[32];
    snprintf(to, sizeof to, "port: %d", free_port5());
    replace_all(gwcfg, "port: 9901", to);
    /* Breakers recover quickly after a killed process comes back. */
    replace_all(gwcfg, "recovery_timeout_ms: 30000", "recovery_timeout_ms: 2000");
    snprintf(path, sizeof path, "%s/gateway.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs(gwcfg, f);
    fclose(f);
    free(gwcfg);

    gw = free_port5();
    int nats = free_port5();
    snprintf(local, sizeof local, "%s/local.yaml", dir);
    f = fopen(local, "w");
    fprintf(f, "data_dir: %s/data\nnats:\n  port: %d\nservices:\n", dir, nats);
    const char *common = "SHOAL_BUS__ACK_WAIT_MS: \"3000\", SHOAL_LOG__LEVEL: warn";
    for (int i = 0; i < 7; i++) {
        char extra[400] = "";
        if (strcmp(names[i], "user") == 0)
            snprintf(extra, sizeof extra,
                     ", SHOAL_USER__BOOTSTRAP_ADMIN: \"true\", SHOAL_USER__PASSWORD_COST: min");
        if (strcmp(names[i], "product") == 0)
            snprintf(extra, sizeof extra, ", SHOAL_PRODUCT__DEMO: \"true\"");
        /* The wallets are funded once with more than a customer's daily deposit limit. */
        if (strcmp(names[i], "payment") == 0)
            snprintf(extra, sizeof extra, ", SHOAL_PAYMENT__DEPOSIT_DAILY_LIMIT: \"1000000000\"");
        if (strcmp(names[i], "order") == 0)
            snprintf(extra, sizeof extra,
                     ", SHOAL_UPSTREAMS__INVENTORY__URL: \"http://127.0.0.1:%d\", "
                     "SHOAL_UPSTREAMS__PAYMENT__URL: \"http://127.0.0.1:%d\"",
                     ports[3], ports[5]);
        fprintf(f, "  - {name: %s, port: %d%s, env: {%s%s}}\n", names[i], ports[i],
                strcmp(names[i], "order") == 0 ? ", calls: [inventory, payment]" : "", common,
                extra);
    }
    fprintf(f, "  - {name: gateway, port: %d, config: %s, env: {SHOAL_LOG__LEVEL: warn}}\n", gw,
            path);
    th_shape_write_hosting(f, th_shape_get());
    fclose(f);
    snprintf(uplog, sizeof uplog, "%s/up.log", dir);
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "exec %s up --config %s > %s 2>&1", th_bin("shoal"), local, uplog);
    char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    up = th_spawn(sh, NULL, NULL);
    for (int i = 0; i < 600; i++) {
        th_response r;
        const char rq[] = "GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n";
        int st = th_connect(gw) >= 0 ? th_roundtrip(gw, rq, sizeof rq - 1, &r, 2000) : -1;
        if (st > 0) th_response_free(&r);
        if (st == 200) {
            /* The pid table is the supervisor's and owner-only. */
            struct stat sb;
            snprintf(path, sizeof path, "%s/data/pids", dir);
            if (stat(path, &sb) != 0 || (sb.st_mode & 077) != 0) return -1;
            return 0;
        }
        usleep(100000);
    }
    fprintf(stderr, "the shop did not come up; the end of %s:\n", uplog);
    snprintf(cmd, sizeof cmd, "tail -n 40 %s >&2", uplog);
    if (system(cmd) != 0) fprintf(stderr, "(could not show it)\n");
    return -1;
}

static int teardown(void **state)
{
    (void)state;
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
        cmocka_unit_test(test_audit_route),
        cmocka_unit_test(test_chaos_round),
        cmocka_unit_test(test_audit_catches_violations),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
