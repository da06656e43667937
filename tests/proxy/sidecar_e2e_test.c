/*
 * Two shoal-proxy sidecars over real sockets and real mTLS, with
 * certificates from the real `shoal certs`:
 *
 *   test ──plain──▶ client sidecar (outbound port "hello") ══mTLS══▶
 *        hello sidecar (inbound) ──plain, loopback──▶ shoal-hello
 *
 * The client sidecar's own local service is this binary re-executed with
 * --echo: it answers with the identity headers it received, so the test sees
 * what a service behind a sidecar gets. Checked: an allowed caller gets 200
 * through both sidecars; no client certificate, another CA, an expired leaf
 * and a server with the wrong SAN are refused and counted; a caller the
 * policy does not allow, or an admin route, gets 403 problem+json, counted in
 * mesh_policy_denied_total and logged with both identities; the caller's
 * identity reaches the local service from the certificate (a forged header is
 * dropped) and the end user's headers pass unchanged; shoal-hello listens on
 * loopback only; SIGHUP reloads of both sidecars under a steady stream of
 * requests lose none.
 */
#include "harness.h"

#include <shoal/clock.h>
#include <shoal/http.h>
#include <shoal/http_client.h>
#include <shoal/loop.h>
#include <shoal/tls.h>

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- the echo service (--echo PORT) ------------------------------------------------------- */

static void echo_request(sl_http_req *req, void *data)
{
    (void)data;
    sl_slice peer = {NULL, 0}, user = {NULL, 0};
    (void)sl_http_req_header(req, "x-shoal-peer-service", &peer);
    (void)sl_http_req_header(req, "x-user-id", &user);
    char body[512];
    int n = snprintf(body, sizeof body, "peer=%.*s;user=%.*s", (int)peer.len,
                     peer.ptr ? peer.ptr : "", (int)user.len, user.ptr ? user.ptr : "");
    sl_http_respond_body(req, 200, "text/plain", body, (size_t)n);
}

static void echo_term(uv_signal_t *h, int sig)
{
    (void)sig;
    uv_stop(h->loop);
}

static int echo_main(int port)
{
    static uv_loop_t loop;
    static uv_signal_t term;
    sl_http_server *http = NULL;
    uv_loop_init(&loop);
    sl_http_limits lim;
    sl_http_limits_default(&lim);
    sl_http_callbacks cbs = {.on_request = echo_request};
    int fd = -1, bound = 0;
    if (sl_http_server_new(&loop, &lim, &cbs, &http) != 0 ||
        sl_listen_socket("127.0.0.1", port, &fd, &bound) != 0 ||
        sl_http_server_listen_fd(http, fd) != 0) {
        fprintf(stderr, "echo: cannot listen on %d\n", port);
        return 1;
    }
    uv_signal_init(&loop, &term);
    uv_signal_start(&term, echo_term, SIGTERM);
    uv_run(&loop, UV_RUN_DEFAULT);
    return 0;
}

/* ---- the test process --------------------------------------------------------------------- */

static char tmpdir[128], mesh[256], other[256];
/* ports: shoal-hello, echo, hello sidecar (inbound, admin), client sidecar (inbound, admin,
 * outbound to hello, outbound to "inventory", which is the hello sidecar: the wrong SAN) */
static int p_hello, p_echo, p_hin, p_hadm, p_cin, p_cadm, p_out_hello, p_out_inv;
static pid_t pids[4];

/* `shoal certs ARGS`, which must succeed (output in <tmpdir>/cli.log). */
#define run_cli(...) assert_int_equal(th_certs(tmpdir, __VA_ARGS__), 0)

/* Writes <tmpdir>/<name>.yaml: a sidecar for `name`, with more clusters and sidecar keys. */
static void write_sidecar(const char *name, int in, int adm, int local, const char *clusters,
                          const char *sidecar)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.yaml", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "service: {host: 127.0.0.1, port: %d}\n"
            "admin: {host: 127.0.0.1, port: %d}\n"
            "clusters:\n"
            "  local: {endpoints: [\"127.0.0.1:%d\"]}\n"
            "%s"
            "sidecar:\n"
            "  service: %s\n"
            "  local: local\n"
            "  cert_file: %s/certs/%s.pem\n"
            "  key_file: %s/certs/%s.key\n"
            "  ca_file: %s/bundle.pem\n"
            "  revoked_file: %s/revoked.txt\n"
            "%s",
            in, adm, local, clusters, name, mesh, name, mesh, name, mesh, mesh, sidecar);
    fclose(f);
}

static pid_t spawn_sidecar(const char *name)
{
    char cfg[512], logp[512];
    snprintf(cfg, sizeof cfg, "%s/%s.yaml", tmpdir, name);
    snprintf(logp, sizeof logp, "%s/%s-sidecar.log", tmpdir, name);
    char *argv[] = {"shoal-proxy", "--role", "sidecar", "--config", cfg, NULL};
    return th_spawn(argv, NULL, logp);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/shoal-sidecar-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(mesh, sizeof mesh, "%s/mesh", tmpdir);
    snprintf(other, sizeof other, "%s/other", tmpdir);
    run_cli("--dir %s init", mesh);
    run_cli("--dir %s issue hello", mesh);
    run_cli("--dir %s issue client", mesh);
    run_cli("--dir %s issue gateway", mesh);
    run_cli("--dir %s issue expired --hours 24 --backdate 48", mesh);
    run_cli("--dir %s init", other);
    run_cli("--dir %s issue client", other);
    p_hello = th_free_port();
    p_echo = th_free_port();
    p_hin = th_free_port();
    p_hadm = th_free_port();
    p_cin = th_free_port();
    p_cadm = th_free_port();
    p_out_hello = th_free_port();
    p_out_inv = th_free_port();
    /* hello: only the client may call it, and only its public routes. */
    write_sidecar("hello", p_hin, p_hadm, p_hello, "",
                  "  allow:\n"
                  "    - {caller: client, routes: [public]}\n");
    /* client: the gateway may call its public routes; it calls hello, and "inventory", whose
     * endpoint is really the hello sidecar. */
    char clusters[512], sc[512];
    snprintf(clusters, sizeof clusters,
             "  hello: {endpoints: [\"127.0.0.1:%d\"]}\n"
             "  inventory: {endpoints: [\"127.0.0.1:%d\"], retry: {max_retries: 0}}\n",
             p_hin, p_hin);
    snprintf(sc, sizeof sc,
             "  outbound:\n"
             "    - {cluster: hello, port: %d}\n"
             "    - {cluster: inventory, port: %d}\n"
             "  allow:\n"
             "    - {caller: gateway, routes: [public]}\n",
             p_out_hello, p_out_inv);
    write_sidecar("client", p_cin, p_cadm, p_echo, clusters, sc);

    char port[16], logp[512], self[PATH_MAX];
    snprintf(port, sizeof port, "%d", p_hello);
    snprintf(logp, sizeof logp, "%s/hello.log", tmpdir);
    char *hello[] = {"shoal-hello", "--port", port, "--workers", "1", NULL};
    pids[0] = th_spawn(hello, NULL, logp);
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    char eport[16];
    snprintf(eport, sizeof eport, "%d", p_echo);
    snprintf(logp, sizeof logp, "%s/echo.log", tmpdir);
    char *echo[] = {self, "--echo", eport, NULL};
    pids[1] = th_spawn(echo, NULL, logp);
    pids[2] = spawn_sidecar("hello");
    pids[3] = spawn_sidecar("client");
    const int ports[] = {p_hello, p_echo, p_hin, p_hadm, p_cin, p_cadm, p_out_hello, p_out_inv};
    for (size_t i = 0; i < SL_ARRAY_LEN(ports); i++)
        if (th_wait_port(ports[i], 10000) != 0) {
            fprintf(stderr, "port %d never opened (logs in %s)\n", ports[i], tmpdir);
            return -1;
        }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    /* Every process is stopped before any status is checked, so none outlives a failure. */
    int st[4] = {0};
    for (int i = 3; i >= 0; i--)
        if (pids[i] > 0) st[i] = th_stop(pids[i], SIGTERM, 10000);
    for (int i = 0; i < 4; i++)
        assert_int_equal(st[i], 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- plain calls -------------------------------------------------------------------------- */

static int plain_get(int port, const char *path, th_response *r)
{
    char raw[512];
    int n =
        snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    return th_roundtrip(port, raw, (size_t)n, r, 10000);
}

/* The value of the series `series` (its full name with labels) in an admin /metrics; 0 when
 * absent. */
static double metric(int admin_port, const char *series)
{
    double v;
    assert_int_equal(th_metric(admin_port, series, &v), 200);
    return v;
}

/* ---- TLS calls (the test as a mesh client) ------------------------------------------------ */

typedef struct res {
    int done, error, status;
    char body[1024];
    char ctype[64];
} res;

static void on_res(sl_http_handle *h, const sl_http_result *r, void *data)
{
    (void)h;
    res *o = data;
    o->done = 1;
    o->error = r->error;
    if (r->response) {
        o->status = r->response->status;
        size_t n =
            r->response->body.len < sizeof o->body - 1 ? r->response->body.len : sizeof o->body - 1;
        memcpy(o->body, r->response->body.ptr, n);
        o->body[n] = '\0';
        sl_slice ct;
        if (sl_http_header_find(r->response->headers, r->response->nheaders, "content-type", &ct))
            snprintf(o->ctype, sizeof o->ctype, "%.*s", (int)ct.len, ct.ptr);
    }
}

typedef struct client {
    uv_loop_t loop;
    sl_tls_ctx *ctx;
    sl_upstream *up;
    int closed;
} client;

static void up_done(void *data)
{
    ((client *)data)->closed = 1;
}

/* A client calling `port`: with TLS (leaf `name` of `dir`, NULL: none; trusting the mesh
 * bundle; expecting `expect`) when dir is given, plain otherwise. */
static void client_open(client *c, int port, const char *dir, const char *name, const char *expect)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(uv_loop_init(&c->loop), 0);
    if (dir) {
        char cert[1024], key[1024], ca[1024];
        snprintf(cert, sizeof cert, "%s/certs/%s.pem", dir, name ? name : "");
        snprintf(key, sizeof key, "%s/certs/%s.key", dir, name ? name : "");
        snprintf(ca, sizeof ca, "%s/bundle.pem", mesh);
        sl_tls_config cfg = {.cert_file = name ? cert : NULL,
                             .key_file = name ? key : NULL,
                             .ca_file = ca,
                             .mesh = true,
                             .expect_peer = expect};
        char err[256];
        if (sl_tls_ctx_new(&cfg, &c->ctx, err, sizeof err) != 0) fail_msg("client ctx: %s", err);
    }
    char ep[32];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", port);
    const char *eps[] = {ep};
    sl_upstream_config uc;
    sl_upstream_config_default(&uc);
    uc.name = "target";
    uc.endpoints = eps;
    uc.nendpoints = 1;
    uc.policies = false;
    uc.timeout_ms = 10000;
    uc.max_idle = 2;
    uc.tls = c->ctx;
    sl_upstream_env env = {.loop = &c->loop};
    assert_int_equal(sl_upstream_new(&uc, &env, &c->up), 0);
}

static void client_close(client *c)
{
    sl_upstream_close(c->up, up_done, c);
    while (!c->closed)
        uv_run(&c->loop, UV_RUN_ONCE);
    sl_tls_ctx_unref(c->ctx);
    uv_run(&c->loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&c->loop), 0);
}

static void call(client *c, const char *path, const sl_http_header *h, size_t nh, res *out)
{
    memset(out, 0, sizeof *out);
    sl_http_request rq = {
        .method = SL_HTTP_GET, .target = {path, strlen(path)}, .headers = h, .nheaders = nh};
    assert_int_equal(sl_http_call(c->up, &rq, NULL, on_res, out, NULL), 0);
    while (!out->done)
        uv_run(&c->loop, UV_RUN_ONCE);
}

/* One call to `port` with that client; returns its result in *out. */
static void call_once(int port, const char *dir, const char *name, const char *expect,
                      const char *path, res *out)
{
    client c;
    client_open(&c, port, dir, name, expect);
    call(&c, path, NULL, 0, out);
    client_close(&c);
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_through_two_sidecars(void **state)
{
    (void)state;
    double before =
        metric(p_hadm, "service_requests_total{service=\"hello-sidecar\",method=\"GET\","
                       "route=\"inbound\",status=\"200\"}");
    th_response r;
    assert_int_equal(plain_get(p_out_hello, "/hello", &r), 200);
    assert_non_null(strstr(r.body, "\"message\":\"hello\""));
    th_response_free(&r);
    /* the hop was counted by both sidecars, and it was mTLS between them */
    assert_true(metric(p_hadm, "service_requests_total{service=\"hello-sidecar\",method=\"GET\","
                               "route=\"inbound\",status=\"200\"}") == before + 1);
    assert_true(metric(p_cadm, "service_requests_total{service=\"client-sidecar\",method=\"GET\","
                               "route=\"outbound:hello\",status=\"200\"}") >= 1);
    assert_true(metric(p_hadm, "tls_handshakes_total{resumed=\"false\"}") >= 1);
    /* The sidecar's plain HTTP never reaches the inbound port: it speaks only TLS. */
    assert_int_equal(plain_get(p_hin, "/hello", &r), -1);
}

static void test_identity_headers(void **state)
{
    (void)state;
    client c;
    client_open(&c, p_cin, mesh, "gateway", "client");
    const sl_http_header h[] = {
        {SL_SLICE_LIT("X-Shoal-Peer-Service"), SL_SLICE_LIT("order")}, /* forged: dropped */
        {SL_SLICE_LIT("X-User-Id"), SL_SLICE_LIT("user-42")},          /* the end user's */
    };
    res r;
    call(&c, "/who", h, SL_ARRAY_LEN(h), &r);
    client_close(&c);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "peer=gateway;user=user-42");
}

/* A call with this client to the hello sidecar is refused, counted under `reason`. */
static void refused(const char *dir, const char *name, const char *reason)
{
    char series[128];
    snprintf(series, sizeof series, "tls_handshake_failures_total{reason=\"%s\"}", reason);
    double before = metric(p_hadm, series);
    res r;
    call_once(p_hin, dir, name, "hello", "/hello", &r);
    assert_int_not_equal(r.error, 0);
    assert_int_equal(r.status, 0);
    assert_true(metric(p_hadm, series) == before + 1);
}

static void test_refusals(void **state)
{
    (void)state;
    refused(mesh, NULL, "no_client_cert");
    refused(other, "client", "unknown_ca");
    refused(mesh, "expired", "expired");
    /* Wrong SAN: the client sidecar's "inventory" endpoint is the hello sidecar. */
    double before = metric(p_cadm, "tls_handshake_failures_total{reason=\"wrong_san\"}");
    th_response r;
    int st = plain_get(p_out_inv, "/hello", &r);
    assert_true(st == 502 || st == 503);
    assert_non_null(strstr(r.body, "\"status\":"));
    th_response_free(&r);
    assert_true(metric(p_cadm, "tls_handshake_failures_total{reason=\"wrong_san\"}") == before + 1);
}

static void test_policy_denied(void **state)
{
    (void)state;
    const char *gw = "mesh_policy_denied_total{caller=\"gateway\",callee=\"hello\"}";
    const char *cl = "mesh_policy_denied_total{caller=\"client\",callee=\"hello\"}";
    double gw0 = metric(p_hadm, gw), cl0 = metric(p_hadm, cl);
    /* The gateway's certificate is valid, but hello's policy does not name it. */
    res r;
    call_once(p_hin, mesh, "gateway", "hello", "/hello", &r);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.status, 403);
    assert_string_equal(r.ctype, "application/problem+json");
    assert_non_null(strstr(r.body, "\"status\":403"));
    assert_non_null(strstr(r.body, "'gateway'"));
    assert_true(metric(p_hadm, gw) == gw0 + 1);
    /* The client may call hello's public routes, not its admin ones, nor a path that hides one. */
    th_response t;
    assert_int_equal(plain_get(p_out_hello, "/admin/products", &t), 403);
    assert_non_null(strstr(t.body, "\"status\":403"));
    th_response_free(&t);
    assert_int_equal(plain_get(p_out_hello, "/x/../admin/products", &t), 403);
    th_response_free(&t);
    assert_int_equal(plain_get(p_out_hello, "/hello", &t), 200);
    th_response_free(&t);
    assert_true(metric(p_hadm, cl) == cl0 + 2);
    /* Each denial is a log line with both identities. */
    char logp[512], line[4096];
    snprintf(logp, sizeof logp, "%s/hello-sidecar.log", tmpdir);
    FILE *f = fopen(logp, "r");
    assert_non_null(f);
    int seen = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "call denied by the mesh policy") &&
            strstr(line, "\"caller\":\"gateway\"") && strstr(line, "\"callee\":\"hello\""))
            seen = 1;
    fclose(f);
    assert_true(seen);
}

/* shoal-hello listens on 127.0.0.1 only: /proc/net/tcp shows its listening socket's address. */
static void test_local_service_loopback_only(void **state)
{
    (void)state;
    FILE *f = fopen("/proc/net/tcp", "r");
    assert_non_null(f);
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned addr, port, st;
        if (sscanf(line, " %*d: %x:%x %*x:%*x %x", &addr, &port, &st) != 3) continue;
        if ((int)port != p_hello || st != 0x0A) continue; /* 0A: LISTEN */
        found = 1;
        assert_int_equal(addr, htonl(INADDR_LOOPBACK));
    }
    fclose(f);
    assert_true(found);
    FILE *f6 = fopen("/proc/net/tcp6", "r");
    while (f6 && fgets(line, sizeof line, f6)) {
        unsigned port, st;
        if (sscanf(line, " %*d: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x", &port, &st) != 2) continue;
        if ((int)port == p_hello && st == 0x0A) fail_msg("shoal-hello listens on IPv6 too");
    }
    if (f6) fclose(f6);
}

/* Four calls in flight through both sidecars while both reload their certificates. */
typedef struct stream {
    client c;
    res r[4];
    int started, finished, failed, target;
} stream;
static stream *the_stream;

static void stream_cb(sl_http_handle *h, const sl_http_result *r, void *data);

static void stream_next(stream *s, int slot)
{
    if (s->started >= s->target) return;
    s->started++;
    sl_http_request rq = {.method = SL_HTTP_GET, .target = {"/hello", 6}};
    memset(&s->r[slot], 0, sizeof s->r[slot]);
    assert_int_equal(sl_http_call(s->c.up, &rq, NULL, stream_cb, &s->r[slot], NULL), 0);
}

static void stream_cb(sl_http_handle *h, const sl_http_result *r, void *data)
{
    stream *s = the_stream;
    res *o = data;
    on_res(h, r, data);
    s->finished++;
    if (r->error != 0 || o->status != 200) s->failed++;
    if (s->finished == 50 || s->finished == 130) kill(pids[2], SIGHUP);
    if (s->finished == 90) kill(pids[3], SIGHUP);
    stream_next(s, (int)(o - s->r));
}

static void test_reload_under_load(void **state)
{
    (void)state;
    run_cli("--dir %s issue hello --hours 48", mesh); /* new leaves to load */
    run_cli("--dir %s issue client --hours 48", mesh);
    const char *applied = "gateway_config_reloads_total{result=\"applied\"}";
    double h0 = metric(p_hadm, applied), c0 = metric(p_cadm, applied);
    static stream s;
    memset(&s, 0, sizeof s);
    the_stream = &s;
    s.target = 200;
    client_open(&s.c, p_out_hello, NULL, NULL, NULL);
    for (int i = 0; i < 4; i++)
        stream_next(&s, i);
    while (s.finished < s.target)
        uv_run(&s.c.loop, UV_RUN_ONCE);
    client_close(&s.c);
    assert_int_equal(s.failed, 0);
    /* Reloads are asynchronous (signal, then the main thread): wait for their counts. */
    for (int i = 0;
         i < 100 && (metric(p_hadm, applied) < h0 + 2 || metric(p_cadm, applied) < c0 + 1); i++)
        usleep(50 * 1000);
    assert_true(metric(p_hadm, applied) == h0 + 2);
    assert_true(metric(p_cadm, applied) == c0 + 1);
    th_response r;
    assert_int_equal(plain_get(p_out_hello, "/hello", &r), 200); /* the new leaves serve */
    th_response_free(&r);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--echo") == 0) return echo_main(atoi(argv[2]));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_through_two_sidecars),
        cmocka_unit_test(test_identity_headers),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_policy_denied),
        cmocka_unit_test(test_local_service_loopback_only),
        cmocka_unit_test(test_reload_under_load),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
