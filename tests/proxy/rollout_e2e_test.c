/*
 * Canary rollouts end to end, over real processes and sockets: shoal-proxy in
 * front of two shoal-hello instances, one per version subset of cluster
 * `hello` (v1 healthy; v2 healthy, or answering 500 through SHOAL_HELLO_FAIL),
 * a steady stream of requests from a thread of this test, and the `shoal
 * rollout` command run as a child against the gateway's admin listener:
 *
 *   - a rollout to a failing v2 is rolled back on its own: exit status 1,
 *     the split back at v1 100 / v2 0, and v2 did get calls (5xx) first;
 *   - a rollout to a healthy v2 reaches 100 % (exit 0, v2 100 / v1 0);
 *   - `x-shoal-canary: 1` lands on v2 at weight 0, plain requests on v1;
 *   - sticky: with a 50/50 split and a failing v2, each signed-in user gets
 *     the same answer every time, and both answers occur among the users
 *     (tokens signed by the test, the JWKS served by a raw upstream,
 *     upstream.inc.h);
 *   - PUT /admin/clusters/{name}/split refusals name the field.
 */
#include "upstream.inc.h"

#include "harness.h"

#include <shoal/auth.h>
#include <shoal/clock.h>

#include <pthread.h>
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

static char self_exe[4096];

typedef struct env {
    char dir[256];
    int port, admin, v1_port, v2_port, jwks_port;
    pid_t gw, v1, v2, jwks;
    sl_auth_key *key;
} env;

static env g;
static int g_live;

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g.dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static pid_t hello_start(int port, int fail, const char *name)
{
    char p[16], log[400];
    snprintf(p, sizeof p, "%d", port);
    snprintf(log, sizeof log, "%s/%s.log", g.dir, name);
    char *henv[] = {fail ? "SHOAL_HELLO_FAIL=1" : "SHOAL_HELLO_FAIL=0", NULL};
    char *argv[] = {"shoal-hello", "--port", p, NULL};
    pid_t pid = th_spawn(argv, henv, log);
    assert_int_equal(th_wait_port(port, 10000), 0);
    return pid;
}

/* The gateway over v1 and v2 with `split` (YAML) and, when `auth`, a JWKS upstream. */
static void start(int v2_fails, const char *split, int auth)
{
    memset(&g, 0, sizeof g);
    g_live = 1;
    snprintf(g.dir, sizeof g.dir, "/tmp/shoal-rollout-XXXXXX");
    assert_non_null(mkdtemp(g.dir));
    g.port = th_free_port();
    g.admin = th_free_port();
    g.v1_port = th_free_port();
    g.v2_port = th_free_port();
    g.v1 = hello_start(g.v1_port, 0, "v1");
    g.v2 = hello_start(g.v2_port, v2_fails, "v2");
    char jwks_yaml[256] = "";
    if (auth) {
        assert_int_equal(sl_auth_key_generate(&g.key), 0);
        sl_keyset *ks;
        assert_int_equal(sl_keyset_new(&ks), 0);
        assert_int_equal(sl_keyset_add(ks, g.key), 0);
        char *doc;
        assert_int_equal(sl_jwks_dump(ks, &doc, NULL), 0);
        write_file("jwks.json", doc);
        free(doc);
        sl_keyset_free(ks);
        g.jwks_port = th_free_port();
        char p[16], log[400];
        snprintf(p, sizeof p, "%d", g.jwks_port);
        snprintf(log, sizeof log, "%s/users.log", g.dir);
        char *argv[] = {self_exe, "upstream", p, "users", g.dir, NULL};
        g.jwks = th_spawn(argv, NULL, log);
        assert_int_equal(th_wait_port(g.jwks_port, 5000), 0);
        snprintf(jwks_yaml, sizeof jwks_yaml,
                 "auth: {jwks: {cluster: users, path: /.well-known/jwks.json}}\n");
    }
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "service: {workers: 2}\n"
             "%s"
             "clusters:\n"
             "  users: {endpoints: ['127.0.0.1:%d']}\n"
             "  hello:\n"
             "    endpoints: ['127.0.0.1:%d@v1', '127.0.0.1:%d@v2']\n"
             "    %s\n"
             "    canary: v2\n"
             "    retry: {max_retries: 0}\n"
             "    outlier: {consecutive_5xx: 0}\n"
             "routes:\n"
             "  - {name: hello, match: {path: /hello}, cluster: hello%s}\n",
             jwks_yaml, auth ? g.jwks_port : g.v1_port, g.v1_port, g.v2_port, split,
             auth ? ", auth: authenticated" : "");
    write_file("gw.yaml", yaml);
    char cfg[400], log[400], port[48], admin[48];
    snprintf(cfg, sizeof cfg, "%s/gw.yaml", g.dir);
    snprintf(log, sizeof log, "%s/gateway.log", g.dir);
    snprintf(port, sizeof port, "SHOAL_SERVICE__PORT=%d", g.port);
    snprintf(admin, sizeof admin, "SHOAL_ADMIN__PORT=%d", g.admin);
    char *genv[] = {port, admin, NULL};
    char *argv[] = {"shoal-proxy", "--config", cfg, NULL};
    g.gw = th_spawn(argv, genv, log);
    assert_int_equal(th_wait_port(g.port, 5000), 0);
    assert_int_equal(th_wait_port(g.admin, 5000), 0);
}

static int teardown(void **state)
{
    (void)state;
    if (!g_live) return 0;
    g_live = 0;
    pid_t pids[] = {g.gw, g.v1, g.v2, g.jwks};
    for (size_t i = 0; i < SL_ARRAY_LEN(pids); i++)
        if (pids[i] && th_stop(pids[i], SIGTERM, 5000) == -1) th_stop(pids[i], SIGKILL, 2000);
    sl_auth_key_free(g.key);
    if (getenv("GW_KEEP")) return 0;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g.dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g.dir);
    return 0;
}

static int http(int port, const char *method, const char *path, const char *extra, const char *body,
                th_response *res)
{
    char raw[8192];
    int n =
        snprintf(raw, sizeof raw, "%s %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %zu\r\n\r\n%s",
                 method, path, extra ? extra : "", body ? strlen(body) : 0, body ? body : "");
    memset(res, 0, sizeof *res);
    return th_roundtrip(port, raw, (size_t)n, res, 10000);
}

/* The gateway's counter of calls to `version` with answer class `cls` (NULL: every class). */
static long subset_calls(const char *version, const char *cls)
{
    th_response r;
    assert_int_equal(http(g.admin, "GET", "/metrics", NULL, NULL, &r), 200);
    long total = 0;
    char needle[128];
    snprintf(needle, sizeof needle,
             "gateway_subset_requests_total{cluster=\"hello\",version=\"%s\",class=\"", version);
    for (const char *p = r.body; (p = strstr(p, needle)); p++) {
        const char *c = p + strlen(needle);
        if (cls && strncmp(c, cls, strlen(cls)) != 0) continue;
        const char *sp = strstr(c, "} ");
        if (sp) total += atol(sp + 2);
    }
    th_response_free(&r);
    return total;
}

/* The live weight of `version` from /admin/clusters. */
static long weight_of(const char *version)
{
    th_response r;
    assert_int_equal(http(g.admin, "GET", "/admin/clusters", NULL, NULL, &r), 200);
    json_t *doc = json_loads(r.body, 0, NULL);
    th_response_free(&r);
    assert_non_null(doc);
    long w = -1;
    json_t *cl, *s;
    size_t i, k;
    json_array_foreach(json_object_get(doc, "clusters"), i, cl)
    {
        if (strcmp(json_string_value(json_object_get(cl, "name")), "hello") != 0) continue;
        json_array_foreach(json_object_get(cl, "split"), k, s)
        {
            if (strcmp(json_string_value(json_object_get(s, "subset")), version) == 0)
                w = (long)json_integer_value(json_object_get(s, "weight"));
        }
    }
    json_decref(doc);
    return w;
}

/* ---- the steady stream of requests --------------------------------------------------------- */

typedef struct stream {
    pthread_t t;
    volatile int stop;
    long ok, fail;
} stream;

static void *stream_run(void *arg)
{
    stream *s = arg;
    while (!s->stop) {
        th_response r;
        int st = http(g.port, "GET", "/hello", NULL, NULL, &r);
        th_response_free(&r);
        if (st == 200)
            s->ok++;
        else
            s->fail++;
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* Runs `shoal rollout hello ARGS...` to its end; returns its exit status, its output in out. */
static int rollout(char *out, size_t cap, const char *const *args, size_t nargs)
{
    char admin[64], log[400];
    snprintf(admin, sizeof admin, "http://127.0.0.1:%d", g.admin);
    snprintf(log, sizeof log, "%s/rollout.log", g.dir);
    char *argv[24] = {"shoal", "rollout", "hello", "--admin", admin};
    size_t n = 5;
    for (size_t i = 0; i < nargs && n < 23; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    pid_t pid = th_spawn(argv, NULL, log);
    assert_true(pid > 0);
    int status = 0;
    for (int i = 0; i < 600; i++) { /* a bound of 60 s: the runs here take a few seconds */
        if (waitpid(pid, &status, WNOHANG) == pid) break;
        struct timespec ts = {0, 100 * 1000000};
        nanosleep(&ts, NULL);
        if (i == 599) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("shoal rollout did not finish");
        }
    }
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    size_t len = fread(out, 1, cap - 1, f);
    out[len] = '\0';
    fclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static const char *const fast[] = {"--to",       "v2", "--steps",        "50,100",
                                   "--interval", "1s", "--min-requests", "10"};

static void test_failing_v2_rolled_back(void **state)
{
    (void)state;
    start(1, "split: [{subset: v1, weight: 100}, {subset: v2, weight: 0}]", 0);
    stream s = {0};
    assert_int_equal(pthread_create(&s.t, NULL, stream_run, &s), 0);
    char out[8192];
    int rc = rollout(out, sizeof out, fast, SL_ARRAY_LEN(fast));
    s.stop = 1;
    pthread_join(s.t, NULL);
    if (rc != 1) fail_msg("exit %d:\n%s", rc, out);
    assert_non_null(strstr(out, "step 1/2: v2 at 50%"));
    assert_non_null(strstr(out, "rolled back"));
    assert_null(strstr(out, "step 2/2"));
    assert_int_equal(weight_of("v1"), 100);
    assert_int_equal(weight_of("v2"), 0);
    assert_true(subset_calls("v2", "5xx") > 0); /* v2 was tried before the rollback */
    assert_true(s.fail > 0 && s.ok > 0);
    /* after the rollback every call goes to v1 again */
    long before = subset_calls("v2", NULL);
    for (int i = 0; i < 20; i++) {
        th_response r;
        assert_int_equal(http(g.port, "GET", "/hello", NULL, NULL, &r), 200);
        th_response_free(&r);
    }
    assert_int_equal(subset_calls("v2", NULL), before);
}

static void test_healthy_v2_reaches_100(void **state)
{
    (void)state;
    start(0, "split: [{subset: v1, weight: 100}, {subset: v2, weight: 0}]", 0);
    stream s = {0};
    assert_int_equal(pthread_create(&s.t, NULL, stream_run, &s), 0);
    char out[8192];
    int rc = rollout(out, sizeof out, fast, SL_ARRAY_LEN(fast));
    s.stop = 1;
    pthread_join(s.t, NULL);
    if (rc != 0) fail_msg("exit %d:\n%s", rc, out);
    assert_non_null(strstr(out, "step 2/2: v2 at 100%"));
    assert_non_null(strstr(out, "done"));
    assert_int_equal(weight_of("v2"), 100);
    assert_int_equal(weight_of("v1"), 0);
    assert_int_equal(s.fail, 0);
    long v1 = subset_calls("v1", NULL);
    for (int i = 0; i < 20; i++) {
        th_response r;
        assert_int_equal(http(g.port, "GET", "/hello", NULL, NULL, &r), 200);
        th_response_free(&r);
    }
    assert_int_equal(subset_calls("v1", NULL), v1); /* v1 kept, at weight 0 */

    /* blue/green back to v1: all at once, v1's endpoint being healthy */
    static const char *const bg[] = {"--to",           "v1", "--blue-green", "--interval", "1s",
                                     "--min-requests", "5"};
    s = (stream){0};
    assert_int_equal(pthread_create(&s.t, NULL, stream_run, &s), 0);
    rc = rollout(out, sizeof out, bg, SL_ARRAY_LEN(bg));
    s.stop = 1;
    pthread_join(s.t, NULL);
    if (rc != 0) fail_msg("exit %d:\n%s", rc, out);
    assert_non_null(strstr(out, "ready: 1 of 1 v1 endpoints healthy"));
    assert_non_null(strstr(out, "step 1/1: v1 at 100%"));
    assert_int_equal(weight_of("v1"), 100);
    assert_int_equal(weight_of("v2"), 0);
}

static void test_canary_header_and_admin(void **state)
{
    (void)state;
    start(0, "split: [{subset: v1, weight: 100}, {subset: v2, weight: 0}]", 0);
    long v1 = subset_calls("v1", "2xx"), v2 = subset_calls("v2", "2xx");
    for (int i = 0; i < 10; i++) {
        th_response r;
        assert_int_equal(http(g.port, "GET", "/hello", "x-shoal-canary: 1\r\n", NULL, &r), 200);
        th_response_free(&r);
        assert_int_equal(http(g.port, "GET", "/hello", "x-shoal-canary: 0\r\n", NULL, &r), 200);
        th_response_free(&r);
    }
    assert_int_equal(subset_calls("v2", "2xx"), v2 + 10);
    assert_int_equal(subset_calls("v1", "2xx"), v1 + 10);

    th_response r;
    struct {
        const char *method, *path, *body;
        int status;
        const char *needle;
    } bad[] = {
        {"PUT", "/admin/clusters/nope/split", "{\"split\":[]}", 404, "no such cluster"},
        {"PUT", "/admin/clusters/users/split", "{\"split\":[]}", 404, "no version subsets"},
        {"PUT", "/admin/clusters/hello/split", "{\"split\":[{\"subset\":\"v3\",\"weight\":1}]}",
         422, "split[0].subset"},
        {"PUT", "/admin/clusters/hello/split", "[", 400, "JSON object"},
        {"GET", "/admin/clusters/hello/split", NULL, 405, NULL},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        assert_int_equal(http(g.admin, bad[i].method, bad[i].path, NULL, bad[i].body, &r),
                         bad[i].status);
        if (bad[i].needle && !strstr(r.body, bad[i].needle)) fail_msg("%s", r.body);
        th_response_free(&r);
    }
    assert_int_equal(weight_of("v1"), 100);
}

static char *token(const char *sub)
{
    int64_t now = sl_clock_wall_ms(sl_clock_system()) / 1000;
    sl_jwt_claims c = {.sub = sub, .role = "customer", .iat = now, .exp = now + 3600};
    char *t = NULL;
    assert_int_equal(sl_jwt_sign(g.key, &c, &t, NULL), 0);
    return t;
}

static void test_sticky_users(void **state)
{
    (void)state;
    start(1, "split: [{subset: v1, weight: 50}, {subset: v2, weight: 50}]\n    sticky: true", 1);
    int seen[2] = {0, 0};
    for (int u = 0; u < 16; u++) {
        char sub[32], hdr[2048];
        snprintf(sub, sizeof sub, "user-%d", u);
        char *t = token(sub);
        snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", t);
        free(t);
        /* v1 answers 200; v2 500 (or 503 once its own breaker opened: v1's stays closed) */
        th_response r;
        int first = http(g.port, "GET", "/hello", hdr, NULL, &r) == 200;
        th_response_free(&r);
        for (int i = 0; i < 8; i++) {
            int st = http(g.port, "GET", "/hello", hdr, NULL, &r);
            assert_true(st == 200 || st == 500 || st == 503);
            assert_int_equal(st == 200, first);
            th_response_free(&r);
        }
        seen[first]++;
    }
    assert_true(seen[0] > 0 && seen[1] > 0); /* users spread over both versions */
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "upstream") == 0) return upstream_main(argc, argv);
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (n <= 0) return 1;
    self_exe[n] = '\0';
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_failing_v2_rolled_back, teardown),
        cmocka_unit_test_teardown(test_healthy_v2_reaches_100, teardown),
        cmocka_unit_test_teardown(test_canary_header_and_admin, teardown),
        cmocka_unit_test_teardown(test_sticky_users, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
