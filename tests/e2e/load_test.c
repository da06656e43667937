/*
 * `shoal load` against the whole shop (`shoal up` on a fresh data directory, every process
 * real): what it reports equals what the shop itself records. Checkout, closed loop: the
 * orders it reports accepted are exactly the orders its users have (read back as the admin
 * through the gateway's aggregation route), the confirmed ones match (up to those it gave up
 * polling), and its request counts equal the gateway's own counters (cart PUTs, 202s, calls to
 * the order service). Then the mix, open loop: the schedule is kept and its checkouts are
 * accounted for the same way.
 *
 * SHOAL_E2E_SHAPE (tests/support/shape.h) hosts the services in one of the other shapes; the
 * counts must agree the same way in each (the gateway is always its own process). With
 * SHOAL_E2E_MESH=1 (separate shape) every process runs behind its sidecar, with mTLS between
 * them and NATS with TLS and one user per service: the counts must agree there too.
 */
#include "harness.h"
#include "shape.h"

#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[] = "/tmp/shoal-e2e-load-XXXXXX";
static int gw, admin_port;
static pid_t up;
static char creds[700];

static const char *const names[] = {"user",  "product", "cart",        "inventory",
                                    "order", "payment", "notification"};

/* ---- plain HTTP --------------------------------------------------------------------------- */

static int call(int port, const char *method, const char *path, const char *auth, const char *body,
                json_t **json, char **text)
{
    char req[8192];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%sContent-Length: %zu\r\n\r\n%s",
                     method, path, auth ? "Authorization: " : "", auth ? auth : "",
                     auth ? "\r\n" : "", blen, body ? body : "");
    assert_true(n > 0 && (size_t)n < sizeof req);
    th_response r;
    int st = th_roundtrip(port, req, (size_t)n, &r, 30000);
    if (json) *json = NULL;
    if (text) *text = NULL;
    if (st > 0) {
        if (json && r.body_len) *json = json_loadb(r.body, r.body_len, 0, NULL);
        if (text) {
            *text = r.body;
            r.body = NULL;
        }
        th_response_free(&r);
    }
    return st;
}

/* Sum of the gateway's counter lines that start with `prefix` and contain `needle`. */
static long long metric(const char *prefix, const char *needle)
{
    char *text = NULL;
    assert_int_equal(call(admin_port, "GET", "/metrics", NULL, NULL, NULL, &text), 200);
    long long sum = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, prefix, strlen(prefix)) != 0 || !strstr(line, needle)) continue;
        const char *sp = strrchr(line, ' ');
        if (sp) sum += atoll(sp + 1);
    }
    free(text);
    return sum;
}

typedef struct counters {
    long long put, accepted, order_calls;
} counters;

static void read_counters_once(counters *c)
{
    c->put = metric("service_requests_total{service=\"gateway\",method=\"PUT\"", "status=\"200\"");
    c->accepted = metric("service_requests_total{service=\"gateway\"", "status=\"202\"");
    /* Every call the gateway made to the order service, answered or not (a bulkhead or breaker
     * refusal is a call that ended without reaching it, and the client's 503). */
    c->order_calls = metric("http_client_requests_total{upstream=\"order\"", "result=");
}

/* The counters once they stopped moving (the gateway counts a response as it finishes it, which
 * may be a moment after the generator has it): two reads 100 ms apart agree, within 5 s. */
static void read_counters(counters *c)
{
    counters prev;
    read_counters_once(&prev);
    for (int i = 0; i < 50; i++) {
        usleep(100000);
        read_counters_once(c);
        if (memcmp(c, &prev, sizeof *c) == 0) return;
        prev = *c;
    }
}

static char *admin_auth(void)
{
    char line[256], email[128] = "", pw[128] = "";
    FILE *f = fopen(creds, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "email: %127s", email);
        sscanf(line, "password: %127s", pw);
    }
    fclose(f);
    char body[400];
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}", email, pw);
    json_t *j;
    assert_int_equal(call(gw, "POST", "/api/v1/auth/login", NULL, body, &j, NULL), 200);
    static char auth[4096];
    snprintf(auth, sizeof auth, "Bearer %s", json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
    return auth;
}

/* ---- running shoal load ------------------------------------------------------------------- */

static json_t *run_load(char *const extra[])
{
    char out[800], err[800], target[64], cmd[4096];
    snprintf(out, sizeof out, "%s/load.json", dir);
    snprintf(err, sizeof err, "%s/load.err", dir);
    snprintf(target, sizeof target, "http://127.0.0.1:%d", gw);
    int n = snprintf(cmd, sizeof cmd,
                     "exec %s load --json --quiet --warmup 0 --target %s --admin-credentials %s",
                     th_bin("shoal"), target, creds);
    for (int i = 0; extra[i]; i++)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " %s", extra[i]);
    snprintf(cmd + n, sizeof cmd - (size_t)n, " > %s 2> %s", out, err);
    int st = system(cmd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char show[1200];
        snprintf(show, sizeof show, "cat %s >&2", err);
        if (system(show) != 0) fprintf(stderr, "(no stderr)\n");
        fail_msg("shoal load failed (status %d)", st);
    }
    json_error_t je;
    json_t *r = json_load_file(out, 0, &je);
    if (!r) fail_msg("shoal load's output is not JSON: %s", je.text);
    return r;
}

static long long iget(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static long long op_count(const json_t *r, const char *name)
{
    return iget(json_object_get(json_object_get(r, "operations"), name), "count");
}

static long long op_status(const json_t *r, const char *name, const char *status)
{
    json_t *o = json_object_get(json_object_get(r, "operations"), name);
    return iget(json_object_get(o, "status"), status);
}

/* The requests for the order service the generator reports, less those the gateway answers
 * itself before calling it (its rate limits: 429; authentication: 401). */
static long long order_calls(const json_t *r)
{
    long long n = 0;
    const char *ops[] = {"order", "poll"};
    for (size_t i = 0; i < 2; i++)
        n += op_count(r, ops[i]) - op_status(r, ops[i], "429") - op_status(r, ops[i], "401");
    return n;
}

typedef struct shop_orders {
    long long total, confirmed, cancelled, pending;
} shop_orders;

/* What the shop has for the run's users, read as the admin. */
static void orders_of(const json_t *report, shop_orders *o)
{
    memset(o, 0, sizeof *o);
    const char *auth = admin_auth();
    json_t *ids = json_object_get(report, "user_ids");
    assert_true(json_array_size(ids) > 0);
    for (size_t i = 0; i < json_array_size(ids); i++) {
        char path[256];
        snprintf(path, sizeof path, "/api/v1/users/%s/orders",
                 json_string_value(json_array_get(ids, i)));
        json_t *j;
        assert_int_equal(call(gw, "GET", path, auth, NULL, &j, NULL), 200);
        json_t *orders = json_object_get(j, "orders");
        /* The aggregation reads one page of 100: the runs stay below that per user (the
         * generator's users take turns). */
        assert_true(json_array_size(orders) < 100);
        for (size_t k = 0; k < json_array_size(orders); k++) {
            const char *s = json_string_value(json_object_get(json_array_get(orders, k), "status"));
            o->total++;
            if (s && strcmp(s, "confirmed") == 0) o->confirmed++;
            if (s && strcmp(s, "cancelled") == 0) o->cancelled++;
            if (s && strcmp(s, "pending") == 0) o->pending++;
        }
        json_decref(j);
    }
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_checkout_closed_loop_counts(void **state)
{
    (void)state;
    counters before, after;
    read_counters(&before);
    json_t *r = run_load((char *[]){"--scenario", "checkout", "--conns", "3", "--users", "20",
                                    "--duration", "3s", NULL});
    read_counters(&after);
    json_t *co = json_object_get(r, "checkout");
    long long accepted = iget(co, "accepted"), confirmed = iget(co, "confirmed");
    long long cancelled = iget(co, "cancelled"), pending = iget(co, "pending_at_end");
    shop_orders so;
    orders_of(r, &so);
    fprintf(stderr,
            "generator: %lld accepted, %lld confirmed, %lld cancelled, %lld pending, %lld "
            "unfinished, %lld cart 200s, %lld order-service requests; gateway: %lld PUT 200s, "
            "%lld 202s, %lld order-service calls; shop: %lld orders, %lld confirmed, %lld "
            "cancelled, %lld pending\n",
            accepted, confirmed, cancelled, pending, iget(co, "unfinished"),
            op_status(r, "cart_put", "200"), order_calls(r), after.put - before.put,
            after.accepted - before.accepted, after.order_calls - before.order_calls, so.total,
            so.confirmed, so.cancelled, so.pending);
    assert_true(accepted > 0);
    /* Every transaction ended within the drain (20 s): nothing was cut off. */
    assert_int_equal(iget(co, "unfinished"), 0);
    assert_int_equal(accepted, confirmed + cancelled + pending);
    /* The gateway saw exactly what the generator says it sent. */
    /* The set-up's one successful PUT (quantity 0: the cart knows the product) and the run's. */
    assert_int_equal(after.put - before.put - 1, op_status(r, "cart_put", "200"));
    assert_int_equal(after.accepted - before.accepted, accepted);
    assert_int_equal(after.order_calls - before.order_calls, order_calls(r));
    /* The shop has exactly the accepted orders for the run's users; those the generator saw
     * confirmed or cancelled are so (more may be, if it gave up polling some). */
    assert_int_equal(so.total, accepted);
    assert_true(so.confirmed >= confirmed && so.confirmed <= confirmed + pending);
    assert_true(so.cancelled >= cancelled && so.cancelled <= cancelled + pending);
    /* Saga latency for each order seen terminal. */
    assert_int_equal(iget(json_object_get(co, "saga"), "count"), confirmed + cancelled);
    json_decref(r);
}

static void test_mix_open_loop(void **state)
{
    (void)state;
    counters before, after;
    read_counters(&before);
    json_t *r = run_load((char *[]){"--scenario", "mix", "--rate", "40/s", "--users", "4", "--mix",
                                    "browse=50,cart=25,checkout=25", "--duration", "3s", NULL});
    read_counters(&after);
    assert_string_equal(json_string_value(json_object_get(r, "mode")), "open");
    assert_int_equal(iget(r, "scheduled"), 120);
    json_t *tx = json_object_get(r, "transactions");
    assert_int_equal(
        iget(tx, "browse") + iget(tx, "cart") + iget(tx, "checkout") + iget(r, "not_sent"), 120);
    json_t *co = json_object_get(r, "checkout");
    long long accepted = iget(co, "accepted");
    shop_orders so;
    orders_of(r, &so);
    fprintf(stderr,
            "generator: %lld not sent, %lld accepted, %lld confirmed, %lld pending, %lld cart "
            "200s; gateway: %lld PUT 200s, %lld 202s; shop: %lld orders, %lld confirmed\n",
            iget(r, "not_sent"), accepted, iget(co, "confirmed"), iget(co, "pending_at_end"),
            op_status(r, "cart_put", "200"), after.put - before.put,
            after.accepted - before.accepted, so.total, so.confirmed);
    /* The set-up's one successful PUT (quantity 0: the cart knows the product) and the run's. */
    assert_int_equal(after.put - before.put - 1, op_status(r, "cart_put", "200"));
    assert_int_equal(after.accepted - before.accepted, accepted);
    assert_int_equal(so.total, accepted);
    assert_true(so.confirmed >= iget(co, "confirmed"));
    assert_true(so.confirmed <= iget(co, "confirmed") + iget(co, "pending_at_end"));
    json_decref(r);
}

/* ---- set-up: `shoal up` with free ports --------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir)) return -1;
    const char *src = getenv("SHOAL_SOURCE_DIR");
    /* SHOAL_E2E_MESH=1: every process behind its sidecar (the ports are the sidecars'). */
    int mesh = th_mesh_on();
    if (mesh && th_shape_get() != TH_SHAPE_SEPARATE) {
        fprintf(stderr, "SHOAL_E2E_MESH=1 needs the separate shape\n");
        return -1;
    }
    char mesh_lines[256] = "";
    int mesh_base = mesh ? th_mesh_ports(8, mesh_lines, sizeof mesh_lines) : 0;
    int ports[7];
    for (int i = 0; i < 7; i++)
        ports[i] = mesh ? mesh_base + i : th_free_port();
    gw = mesh ? mesh_base + 7 : th_free_port();
    admin_port = th_free_port();
    int nats = th_free_port();
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd, "sed -e 's/port: 9901/port: %d/'", admin_port);
    for (int i = 0; i < 7; i++)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " -e 's/127.0.0.1:%d/127.0.0.1:%d/g'",
                      8101 + i, ports[i]);
    snprintf(cmd + n, sizeof cmd - (size_t)n, " %s/config/gateway.yaml > %s/gateway.yaml",
             src ? src : ".", dir);
    if (system(cmd) != 0) return -1;
    char local[800];
    snprintf(local, sizeof local, "%s/local.yaml", dir);
    FILE *f = fopen(local, "w");
    if (!f) return -1;
    fprintf(f, "data_dir: %s/data\nnats:\n  port: %d\n%sservices:\n", dir, nats, mesh_lines);
    for (int i = 0; i < 7; i++) {
        char extra[400] = "";
        if (strcmp(names[i], "user") == 0)
            snprintf(extra, sizeof extra,
                     ", SHOAL_USER__BOOTSTRAP_ADMIN: \"true\", SHOAL_USER__PASSWORD_COST: min");
        if (strcmp(names[i], "order") == 0)
            snprintf(extra, sizeof extra,
                     ", SHOAL_UPSTREAMS__INVENTORY__URL: \"http://127.0.0.1:%d\", "
                     "SHOAL_UPSTREAMS__PAYMENT__URL: \"http://127.0.0.1:%d\"",
                     ports[3], ports[5]);
        fprintf(f, "  - {name: %s, port: %d%s, env: {SHOAL_LOG__LEVEL: warn%s}}\n", names[i],
                ports[i], strcmp(names[i], "order") == 0 ? ", calls: [inventory, payment]" : "",
                extra);
    }
    fprintf(f,
            "  - {name: gateway, port: %d, config: %s/gateway.yaml, env: {SHOAL_LOG__LEVEL: "
            "warn}}\n",
            gw, dir);
    th_shape_write_hosting(f, th_shape_get());
    fclose(f);
    snprintf(creds, sizeof creds, "%s/data/admin-credentials", dir);
    snprintf(cmd, sizeof cmd, "exec %s up --config %s > %s/up.log 2>&1", th_bin("shoal"), local,
             dir);
    char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    up = th_spawn(sh, NULL, NULL);
    for (int i = 0; i < 600; i++) {
        if (call(gw, "GET", "/readyz", NULL, NULL, NULL, NULL) == 200 &&
            call(admin_port, "GET", "/readyz", NULL, NULL, NULL, NULL) == 200 &&
            access(creds, R_OK) == 0)
            return 0;
        usleep(100000);
    }
    fprintf(stderr, "the shop did not come up (gateway port %d, admin port %d); its logs:\n", gw,
            admin_port);
    snprintf(cmd, sizeof cmd,
             "tail -n 20 %s/up.log >&2; for f in %s/data/logs/*.log; do echo \"== $f\" >&2; "
             "tail -n 10 \"$f\" >&2; done",
             dir, dir);
    if (system(cmd) != 0) fprintf(stderr, "(could not show the logs)\n");
    return -1;
}

static int teardown(void **state)
{
    (void)state;
    int st = th_stop(up, SIGTERM, 60000);
    if (getenv("SHOAL_E2E_KEEP") == NULL) {
        char cmd[800];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) return -1;
    }
    return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkout_closed_loop_counts),
        cmocka_unit_test(test_mix_open_loop),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
