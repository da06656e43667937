/*
 * A checkout's trace, end to end: `shoal up` (free ports, a fresh data directory, a
 * `telemetry:` block) starts the local trace receiver with the shop; one checkout through the
 * gateway; then the receiver's API and `shoal trace --order ID` show ONE trace for the order
 * whose spans cover the gateway, the order service, its calls to inventory and payment, the
 * saga steps, the events published and their consumers in notification and cart, every span's
 * parent inside the trace.
 *
 * SHOAL_E2E_SHAPE (tests/support/shape.h) hosts the services in one of the other shapes: the
 * trace must be the same one tree, its spans named by service whichever process runs them. In
 * the monolith every consumer is local, so the bus may be the in-process one: the producer's
 * messaging.system is checked to be there, not to be "nats".
 *
 * SHOAL_E2E_MESH=1 (separate shape) runs every process behind its sidecar: the same one tree,
 * with the sidecars' own spans (`<service>-sidecar`) between each caller and callee.
 */
#include "harness.h"
#include "shape.h"

#include <shoal/common.h>

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

static char dir[] = "/tmp/shoal-e2e-trace-XXXXXX";
static int gw, rx; /* gateway and receiver ports */
static pid_t up;
static char uplog[600];

static const char *const names[] = {"user",  "product", "cart",        "inventory",
                                    "order", "payment", "notification"};
static int ports[7];
static int mesh; /* SHOAL_E2E_MESH=1 */

static int http(int port, const char *method, const char *path, const char *token, const char *body,
                json_t **out)
{
    char req[8192];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%sContent-Type: "
                     "application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, token ? "Authorization: Bearer " : "", token ? token : "",
                     token ? "\r\n" : "", blen, body ? body : "");
    assert_true(n > 0 && (size_t)n < sizeof req);
    th_response r;
    int status = th_roundtrip(port, req, (size_t)n, &r, 20000);
    *out = NULL;
    if (status > 0) {
        *out = r.body_len ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
        th_response_free(&r);
    }
    return status;
}

static const char *jstr(const json_t *v, const char *k)
{
    const char *s = json_string_value(json_object_get(v, k));
    return s ? s : "";
}

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

/* ---- the checkout ------------------------------------------------------------------------- */

static char order_id[64];

static void checkout(void)
{
    json_t *v;
    int st = http(gw, "POST", "/api/v1/auth/register", NULL,
                  "{\"email\":\"tracy@example.com\",\"password\":\"correct horse\","
                  "\"name\":\"Tracy\"}",
                  &v);
    assert_int_equal(st, 201);
    json_decref(v);
    st = http(gw, "POST", "/api/v1/auth/login", NULL,
              "{\"email\":\"tracy@example.com\",\"password\":\"correct horse\"}", &v);
    assert_int_equal(st, 200);
    char token[2048];
    snprintf(token, sizeof token, "%s", jstr(v, "access_token"));
    json_decref(v);
    st = http(gw, "POST", "/api/v1/wallet/deposits", token, "{\"amount\":1000000}", &v);
    assert_int_equal(st, 200);
    json_decref(v);
    st = http(gw, "GET", "/api/v1/products?per_page=1", NULL, NULL, &v);
    assert_int_equal(st, 200);
    char product[64], body[1024];
    snprintf(product, sizeof product, "%s",
             jstr(json_array_get(json_object_get(v, "items"), 0), "product_id"));
    json_decref(v);
    snprintf(body, sizeof body,
             "{\"items\":[{\"product_id\":\"%s\",\"qty\":1}],\"shipping_address\":{\"name\":"
             "\"Tracy\",\"line1\":\"1-2-3 Shibuya\",\"city\":\"Tokyo\",\"postal_code\":"
             "\"150-0002\",\"country\":\"JP\"}}",
             product);
    /* The order service's catalogue replica may lag right after start: 422 until it has the
     * product, and nothing is kept. */
    for (int i = 0; i < 100; i++) {
        st = http(gw, "POST", "/api/v1/orders", token, body, &v);
        if (st != 422) break;
        json_decref(v);
        usleep(100000);
    }
    assert_int_equal(st, 202);
    snprintf(order_id, sizeof order_id, "%s", jstr(v, "order_id"));
    json_decref(v);
    char path[160];
    snprintf(path, sizeof path, "/api/v1/orders/%s", order_id);
    int confirmed = 0;
    for (int i = 0; i < 400 && !confirmed; i++) {
        if (http(gw, "GET", path, token, NULL, &v) == 200)
            confirmed = strcmp(jstr(v, "status"), "confirmed") == 0;
        json_decref(v);
        if (!confirmed) usleep(100000);
    }
    assert_true(confirmed);
}

/* ---- the trace ---------------------------------------------------------------------------- */

static int has(const json_t *spans, const char *service, const char *kind, const char *attr,
               const char *value)
{
    size_t i;
    const json_t *s;
    json_array_foreach(spans, i, s)
    {
        if (service && strcmp(jstr(s, "service"), service) != 0) continue;
        if (kind && strcmp(jstr(s, "kind"), kind) != 0) continue;
        const json_t *a = json_object_get(json_object_get(s, "attributes"), attr ? attr : "");
        if (attr && !a) continue;
        if (attr && value && (!json_is_string(a) || strcmp(json_string_value(a), value) != 0))
            continue;
        return 1;
    }
    return 0;
}

/* The order's trace once its consumers' spans arrived (bounded: 60 s); NULL otherwise. */
static json_t *order_trace(size_t *ntraces)
{
    char path[200];
    snprintf(path, sizeof path, "/api/traces?order_id=%s", order_id);
    for (int i = 0; i < 600; i++) {
        json_t *list = NULL;
        if (http(rx, "GET", path, NULL, NULL, &list) == 200) {
            json_t *ts = json_object_get(list, "traces");
            *ntraces = json_array_size(ts);
            if (*ntraces >= 1) {
                char tp[96];
                snprintf(tp, sizeof tp, "/api/traces/%s", jstr(json_array_get(ts, 0), "trace_id"));
                json_t *tr = NULL;
                if (http(rx, "GET", tp, NULL, NULL, &tr) == 200) {
                    const json_t *spans = json_object_get(tr, "spans");
                    if (has(spans, "notification", "consumer", NULL, NULL) &&
                        has(spans, "cart", "consumer", NULL, NULL)) {
                        json_decref(list);
                        return tr;
                    }
                }
                json_decref(tr);
            }
        }
        json_decref(list);
        usleep(100000);
    }
    return NULL;
}

static void test_checkout_is_one_trace(void **state)
{
    (void)state;
    checkout();
    size_t ntraces = 0;
    json_t *tr = order_trace(&ntraces);
    if (!tr) { /* what the receiver has of the order, and its log */
        char path[200], cmd[700];
        snprintf(path, sizeof path, "/api/traces?order_id=%s", order_id);
        json_t *list = NULL;
        http(rx, "GET", path, NULL, NULL, &list);
        char *text = list ? json_dumps(list, JSON_COMPACT) : NULL;
        fprintf(stderr, "receiver: %s\n", text ? text : "(no answer)");
        free(text);
        json_decref(list);
        snprintf(cmd, sizeof cmd, "tail -n 20 %s/data/logs/traces.log >&2", dir);
        if (system(cmd) != 0) fprintf(stderr, "(no receiver log)\n");
    }
    assert_non_null(tr);
    assert_int_equal(ntraces, 1);
    const json_t *spans = json_object_get(tr, "spans");
    /* gateway → order → inventory and payment → saga steps → events → consumers */
    assert_true(has(spans, "gateway", "server", NULL, NULL));
    assert_true(has(spans, "gateway", "client", NULL, NULL));
    assert_true(has(spans, "order", "server", "shoal.order_id", order_id));
    assert_true(has(spans, "order", "client", NULL, NULL));
    assert_true(has(spans, "inventory", "server", NULL, NULL));
    assert_true(has(spans, "payment", "server", NULL, NULL));
    assert_true(has(spans, "order", NULL, "shoal.saga.step", NULL));
    assert_true(has(spans, "order", NULL, "shoal.saga.call", "action"));
    const char *bus = th_shape_get() == TH_SHAPE_MONOLITH ? NULL : "nats";
    assert_true(has(spans, NULL, "producer", "messaging.system", bus));
    assert_true(has(spans, "notification", "consumer", "messaging.system", bus));
    assert_true(has(spans, "cart", "consumer", "messaging.system", bus));
    if (mesh) { /* each hop through the caller's sidecar (client) and the callee's (server) */
        assert_true(has(spans, "gateway-sidecar", "client", NULL, NULL));
        assert_true(has(spans, "order-sidecar", "server", NULL, NULL));
        assert_true(has(spans, "order-sidecar", "client", NULL, NULL));
        assert_true(has(spans, "inventory-sidecar", "server", NULL, NULL));
        assert_true(has(spans, "payment-sidecar", "server", NULL, NULL));
    }
    /* One tree: one root, every other span's parent in the trace. */
    size_t roots = 0, i;
    const json_t *s;
    json_array_foreach(spans, i, s)
    {
        const char *parent = jstr(s, "parent_span_id");
        if (!parent[0]) {
            roots++;
            continue;
        }
        int found = 0;
        size_t j;
        const json_t *p;
        json_array_foreach(spans, j, p) found |= strcmp(jstr(p, "span_id"), parent) == 0;
        if (!found)
            fprintf(stderr, "span %s (%s %s): parent %s not in the trace\n", jstr(s, "span_id"),
                    jstr(s, "service"), jstr(s, "name"), parent);
        assert_true(found);
    }
    assert_int_equal(roots, 1);
    json_decref(tr);

    /* The same through `shoal trace --order`. */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "%s trace --order %s --receiver http://127.0.0.1:%d 2>&1",
             th_bin("shoal"), order_id, rx);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char *out = calloc(1, 1 << 20);
    size_t n = fread(out, 1, (1 << 20) - 1, f);
    out[n] = '\0';
    int rc = pclose(f);
    if (rc != 0) fprintf(stderr, "%s\n", out);
    assert_int_equal(rc, 0);
    assert_int_equal(strstr(out, "trace ") == out, 1);
    assert_null(strstr(out + 1, "\ntrace ")); /* one trace drawn */
    const char *want[] = {"gateway",      "order", "inventory",  "payment",
                          "notification", "cart",  "(producer)", "(consumer)"};
    for (size_t k = 0; k < SL_ARRAY_LEN(want); k++) {
        if (!strstr(out, want[k])) fprintf(stderr, "missing %s in:\n%s\n", want[k], out);
        assert_non_null(strstr(out, want[k]));
    }
    free(out);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir)) return -1;
    mesh = th_mesh_on();
    if (mesh && th_shape_get() != TH_SHAPE_SEPARATE) {
        fprintf(stderr, "SHOAL_E2E_MESH=1 needs the separate shape\n");
        return -1;
    }
    char mesh_lines[256] = "";
    int mesh_base = mesh ? th_mesh_ports(8, mesh_lines, sizeof mesh_lines) : 0;
    const char *src = getenv("SHOAL_SOURCE_DIR");
    char path[800];
    snprintf(path, sizeof path, "%s/config/gateway.yaml", src ? src : ".");
    char *gwcfg = slurp(path);
    if (!gwcfg) return -1;
    for (int i = 0; i < 7; i++) {
        ports[i] = mesh ? mesh_base + i : free_port5();
        char from[32], to[32];
        snprintf(from, sizeof from, "127.0.0.1:%d", 8101 + i);
        snprintf(to, sizeof to, "127.0.0.1:%d", ports[i]);
        replace_all(gwcfg, from, to);
    }
    char to[32];
    snprintf(to, sizeof to, "port: %d", free_port5());
    replace_all(gwcfg, "port: 9901", to);
    snprintf(path, sizeof path, "%s/gateway.yaml", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(gwcfg, f);
    fclose(f);
    free(gwcfg);

    gw = mesh ? mesh_base + 7 : free_port5();
    rx = free_port5();
    int nats = free_port5();
    char local[800];
    snprintf(local, sizeof local, "%s/local.yaml", dir);
    f = fopen(local, "w");
    if (!f) return -1;
    fprintf(f,
            "data_dir: %s/data\nready_stock_path: /api/v1/products?per_page=1\nnats:\n  port: %d\n"
            "telemetry:\n  receiver: {port: %d}\n%sservices:\n",
            dir, nats, rx, mesh_lines);
    /* Spans leave every 100 ms, so the test waits little for them. */
    const char *common =
        "SHOAL_BUS__ACK_WAIT_MS: \"3000\", SHOAL_LOG__LEVEL: warn, SHOAL_TELEMETRY__FLUSH_MS: 100";
    for (int i = 0; i < 7; i++) {
        char extra[256] = "";
        if (strcmp(names[i], "user") == 0)
            snprintf(extra, sizeof extra, ", SHOAL_USER__PASSWORD_COST: min");
        if (strcmp(names[i], "product") == 0)
            snprintf(extra, sizeof extra, ", SHOAL_PRODUCT__DEMO: \"true\"");
        if (strcmp(names[i], "order") == 0)
            snprintf(extra, sizeof extra,
                     ", SHOAL_UPSTREAMS__INVENTORY__URL: \"http://127.0.0.1:%d\", "
                     "SHOAL_UPSTREAMS__PAYMENT__URL: \"http://127.0.0.1:%d\"",
                     ports[3], ports[5]);
        fprintf(f, "  - {name: %s, port: %d, env: {%s%s}%s}\n", names[i], ports[i], common, extra,
                strcmp(names[i], "order") == 0 ? ", calls: [inventory, payment]" : "");
    }
    fprintf(f,
            "  - {name: gateway, port: %d, config: %s, env: {SHOAL_LOG__LEVEL: warn, "
            "SHOAL_TELEMETRY__FLUSH_MS: 100}}\n",
            gw, path);
    th_shape_write_hosting(f, th_shape_get());
    fclose(f);
    snprintf(uplog, sizeof uplog, "%s/up.log", dir);
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "exec %s up --config %s > %s 2>&1", th_bin("shoal"), local, uplog);
    char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    up = th_spawn(sh, NULL, NULL);
    for (int i = 0; i < 1800; i++) {
        char *log = slurp(uplog);
        int ready = log && strstr(log, "the shop is ready") != NULL;
        free(log);
        if (ready) return 0;
        usleep(100000);
    }
    fprintf(stderr, "the shop did not come up; the end of %s and of every log:\n", uplog);
    snprintf(cmd, sizeof cmd,
             "tail -n 40 %s >&2; for f in %s/data/logs/*.log; do echo \"== $f\" >&2; "
             "tail -n 15 \"$f\" >&2; done",
             uplog, dir);
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
        cmocka_unit_test(test_checkout_is_one_trace),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
