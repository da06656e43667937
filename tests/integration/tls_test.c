/*
 * mTLS over real sockets between processes: this binary re-executed with
 * --serve is a libshoal HTTP server with TLS (the mesh directory's leaf for
 * "inventory", client certificates required), and the test process calls it
 * through the HTTP client's pool with the certificates that `shoal certs`
 * (the real command) made. Checked: the handler sees the caller's identity;
 * keep-alive connections are reused and later handshakes resume a session;
 * no client certificate, another CA, an expired leaf, a revoked leaf and a
 * server with the wrong SAN are each refused and counted under their
 * reason; a SIGHUP reload under a steady stream of requests loses none; a CA
 * rotation accepts old and new leaves during the overlap and refuses the old
 * one after `shoal certs rotate --finish`.
 */
#include "harness.h"

#include <shoal/clock.h>
#include <shoal/http.h>
#include <shoal/http_client.h>
#include <shoal/log.h>
#include <shoal/tls.h>

#include <arpa/inet.h>
#include <jansson.h>
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- the server process (--serve DIR PORT) ----------------------------- */

typedef struct srv {
    uv_loop_t loop;
    sl_http_server *http;
    sl_tls_ctx *ctx;
    sl_tls_config cfg;
    uv_signal_t hup, term;
    int reloads;
    char cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX], revoked[PATH_MAX];
} srv;

static void srv_request(sl_http_req *req, void *data)
{
    srv *s = data;
    char body[1024];
    int n;
    if (req->path.len == 4 && memcmp(req->path.ptr, "/who", 4) == 0) {
        const char *peer = sl_http_req_peer_service(req);
        n = snprintf(body, sizeof body, "%s", peer ? peer : "(none)");
    } else {
        uint64_t resumed = 0, hs = sl_tls_ctx_handshakes(s->ctx, &resumed);
        n = snprintf(body, sizeof body, "{\"reloads\":%d,\"handshakes\":%llu,\"resumed\":%llu",
                     s->reloads, (unsigned long long)hs, (unsigned long long)resumed);
        for (int r = 1; r < SL_TLS_REASON_COUNT; r++)
            n += snprintf(body + n, sizeof body - (size_t)n, ",\"%s\":%llu",
                          sl_tls_reason_name((sl_tls_reason)r),
                          (unsigned long long)sl_tls_ctx_failures(s->ctx, (sl_tls_reason)r));
        n += snprintf(body + n, sizeof body - (size_t)n, "}");
    }
    (void)sl_http_respond_body(req, 200, "text/plain", body, (size_t)n);
}

static void srv_hup(uv_signal_t *h, int sig)
{
    (void)sig;
    srv *s = h->data;
    sl_tls_ctx *n = NULL;
    char err[256];
    if (sl_tls_ctx_reload(s->ctx, &s->cfg, &n, err, sizeof err) != 0) {
        fprintf(stderr, "reload failed: %s\n", err);
        return;
    }
    sl_http_server_set_tls(s->http, n);
    sl_tls_ctx_unref(s->ctx);
    s->ctx = n;
    s->reloads++;
    fprintf(stderr, "reloaded\n");
}

static void srv_term(uv_signal_t *h, int sig)
{
    (void)sig;
    srv *s = h->data;
    uv_stop(&s->loop);
}

static int serve_main(const char *dir, int port)
{
    static srv s;
    sl_logger *log = NULL;
    if (sl_logger_new("tls-test", SL_LOG_LEVEL_INFO, NULL, NULL, sl_clock_system(), &log) != 0) {
        fprintf(stderr, "logger\n");
        return 1;
    }
    snprintf(s.cert, sizeof s.cert, "%s/certs/inventory.pem", dir);
    snprintf(s.key, sizeof s.key, "%s/certs/inventory.key", dir);
    snprintf(s.ca, sizeof s.ca, "%s/bundle.pem", dir);
    snprintf(s.revoked, sizeof s.revoked, "%s/revoked.txt", dir);
    s.cfg = (sl_tls_config){.server = true,
                            .cert_file = s.cert,
                            .key_file = s.key,
                            .ca_file = s.ca,
                            .revoked_file = s.revoked,
                            .require_client_cert = true,
                            .mesh = true,
                            .log = log};
    char err[256];
    if (sl_tls_ctx_new(&s.cfg, &s.ctx, err, sizeof err) != 0) {
        fprintf(stderr, "tls: %s\n", err);
        return 1;
    }
    uv_loop_init(&s.loop);
    sl_http_limits lim;
    sl_http_limits_default(&lim);
    sl_http_callbacks cbs = {.on_request = srv_request, .data = &s};
    if (sl_http_server_new(&s.loop, &lim, &cbs, &s.http) != 0) {
        fprintf(stderr, "server\n");
        return 1;
    }
    sl_http_server_set_tls(s.http, s.ctx);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        sl_http_server_listen_fd(s.http, fd) != 0) {
        fprintf(stderr, "cannot listen on port %d\n", port);
        return 1;
    }
    uv_signal_init(&s.loop, &s.hup);
    uv_signal_init(&s.loop, &s.term);
    s.hup.data = s.term.data = &s;
    uv_signal_start(&s.hup, srv_hup, SIGHUP);
    uv_signal_start(&s.term, srv_term, SIGTERM);
    uv_run(&s.loop, UV_RUN_DEFAULT);
    sl_tls_ctx_unref(s.ctx);
    return 0;
}

/* ---- the test process ---------------------------------------------------- */

static char mesh[256], other[256], tmpdir[128];
static int port;
static pid_t server;

/* `shoal certs ARGS`, which must succeed (output in <tmpdir>/cli.log). */
#define run_cli(...) assert_int_equal(th_certs(tmpdir, __VA_ARGS__), 0)

static void copy_file(const char *from, const char *to)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cp -p %s %s", from, to);
    assert_int_equal(system(cmd), 0);
}

typedef struct res {
    int done, error, status;
    char body[1024];
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

/* A client with the leaf `name` of `dir` (NULL: no certificate), trusting `ca`, expecting
 * the server to be `expect`. */
static void client_open(client *c, const char *dir, const char *name, const char *ca,
                        const char *expect, uint32_t max_idle)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(uv_loop_init(&c->loop), 0);
    char cert[1024], key[1024];
    if (name) {
        snprintf(cert, sizeof cert, "%s/certs/%s.pem", dir, name);
        snprintf(key, sizeof key, "%s/certs/%s.key", dir, name);
    }
    sl_tls_config cfg = {.cert_file = name ? cert : NULL,
                         .key_file = name ? key : NULL,
                         .ca_file = ca,
                         .mesh = true,
                         .expect_peer = expect};
    char err[256];
    int rc = sl_tls_ctx_new(&cfg, &c->ctx, err, sizeof err);
    if (rc != 0) fail_msg("client ctx: %s", err);
    char ep[32];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", port);
    const char *eps[] = {ep};
    sl_upstream_config uc;
    sl_upstream_config_default(&uc);
    uc.name = "inventory";
    uc.endpoints = eps;
    uc.nendpoints = 1;
    uc.policies = false;
    uc.timeout_ms = 10000;
    uc.connect_timeout_ms = 5000;
    if (max_idle) uc.max_idle = max_idle;
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

static void get(client *c, const char *path, res *out)
{
    memset(out, 0, sizeof *out);
    sl_http_request rq = {.method = SL_HTTP_GET, .target = {path, strlen(path)}};
    assert_int_equal(sl_http_call(c->up, &rq, NULL, on_res, out, NULL), 0);
    while (!out->done)
        uv_run(&c->loop, UV_RUN_ONCE);
}

/* The server's counter `name`, through a good client, into *v. Returns false when the call
 * failed. */
static bool stat_try(const char *name, long long *v)
{
    client c;
    char ca[1024];
    snprintf(ca, sizeof ca, "%s/bundle.pem", mesh);
    client_open(&c, mesh, "order", ca, "inventory", 0);
    res r;
    get(&c, "/stats", &r);
    client_close(&c);
    if (r.error != 0) return false;
    json_error_t je;
    json_t *j = json_loads(r.body, 0, &je);
    assert_non_null(j);
    *v = json_integer_value(json_object_get(j, name));
    json_decref(j);
    return true;
}

static long long stat_of(const char *name)
{
    long long v = 0;
    assert_true(stat_try(name, &v));
    return v;
}

static void start_server(void)
{
    char self[PATH_MAX], portstr[16], logp[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(logp, sizeof logp, "%s/server.log", tmpdir);
    char *argv[] = {self, "--serve", mesh, portstr, NULL};
    server = th_spawn(argv, NULL, logp);
    assert_int_equal(th_wait_port(port, 30000), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/shoal-tls-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(mesh, sizeof mesh, "%s/mesh", tmpdir);
    snprintf(other, sizeof other, "%s/other", tmpdir);
    run_cli("--dir %s init", mesh);
    run_cli("--dir %s issue inventory", mesh);
    run_cli("--dir %s issue order", mesh);
    run_cli("--dir %s issue expired --hours 24 --backdate 48", mesh);
    run_cli("--dir %s issue stolen", mesh);
    run_cli("--dir %s revoke stolen", mesh);
    run_cli("--dir %s init", other);
    run_cli("--dir %s issue order", other);
    /* Private keys are the owner's only, and so is the directory. */
    const char *private[] = {"", "/ca.key", "/certs/order.key"};
    const mode_t want[] = {0700, 0600, 0600};
    for (int i = 0; i < 3; i++) {
        char p[512];
        struct stat st;
        snprintf(p, sizeof p, "%s%s", mesh, private[i]);
        if (stat(p, &st) != 0 || (st.st_mode & 0777) != want[i]) {
            fprintf(stderr, "%s: mode %o\n", p, (unsigned)(st.st_mode & 0777));
            return -1;
        }
    }
    port = th_free_port();
    start_server();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (server > 0) assert_int_equal(th_stop(server, SIGTERM, 10000), 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void bundle(char *out, size_t cap)
{
    snprintf(out, cap, "%s/bundle.pem", mesh);
}

static void test_identity_keepalive_resumption(void **state)
{
    (void)state;
    char ca[1024];
    bundle(ca, sizeof ca);
    client c;
    client_open(&c, mesh, "order", ca, "inventory", 0);
    for (int i = 0; i < 5; i++) {
        res r;
        get(&c, "/who", &r);
        assert_int_equal(r.error, 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "order");
    }
    sl_upstream_stats st;
    sl_upstream_stats_get(c.up, &st);
    assert_int_equal(st.connections_opened, 1); /* keep-alive: one handshake for five calls */
    uint64_t resumed = 0;
    assert_int_equal(sl_tls_ctx_handshakes(c.ctx, &resumed), 1);
    assert_int_equal(resumed, 0);
    /* A new connection on the same context resumes the session from the ticket. */
    sl_tls_ctx *keep = sl_tls_ctx_ref(c.ctx);
    sl_upstream_close(c.up, up_done, &c);
    while (!c.closed)
        uv_run(&c.loop, UV_RUN_ONCE);
    char ep[32];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", port);
    const char *eps[] = {ep};
    sl_upstream_config uc;
    sl_upstream_config_default(&uc);
    uc.name = "inventory";
    uc.endpoints = eps;
    uc.nendpoints = 1;
    uc.policies = false;
    uc.tls = keep;
    sl_upstream_env env = {.loop = &c.loop};
    c.closed = 0;
    assert_int_equal(sl_upstream_new(&uc, &env, &c.up), 0);
    res r;
    get(&c, "/who", &r);
    assert_int_equal(r.error, 0);
    assert_string_equal(r.body, "order"); /* the identity survives resumption */
    assert_int_equal(sl_tls_ctx_handshakes(keep, &resumed), 2);
    assert_int_equal(resumed, 1);
    sl_tls_ctx_unref(keep);
    client_close(&c);
}

/* A call with this client is refused, and the server counts `reason` once more. */
static void refused(const char *dir, const char *name, const char *reason)
{
    long long before = stat_of(reason);
    char ca[1024];
    bundle(ca, sizeof ca);
    client c;
    client_open(&c, dir, name, ca, "inventory", 0);
    res r;
    get(&c, "/who", &r);
    assert_int_not_equal(r.error, 0);
    assert_int_equal(r.status, 0);
    client_close(&c);
    assert_int_equal(stat_of(reason), before + 1);
}

static void test_refusals(void **state)
{
    (void)state;
    refused(mesh, NULL, "no_client_cert");
    refused(other, "order", "unknown_ca");
    refused(mesh, "expired", "expired");
    refused(mesh, "stolen", "revoked");
    /* Each refusal is a log line of the server naming its reason. */
    char logp[1024], line[4096];
    snprintf(logp, sizeof logp, "%s/server.log", tmpdir);
    FILE *f = fopen(logp, "r");
    assert_non_null(f);
    int seen[4] = {0};
    const char *want[4] = {"\"reason\":\"no_client_cert\"", "\"reason\":\"unknown_ca\"",
                           "\"reason\":\"expired\"", "\"reason\":\"revoked\""};
    while (fgets(line, sizeof line, f))
        for (int i = 0; i < 4; i++)
            if (strstr(line, "tls handshake refused") && strstr(line, want[i])) seen[i] = 1;
    fclose(f);
    for (int i = 0; i < 4; i++)
        if (!seen[i]) fail_msg("no log line with %s", want[i]);
}

static void test_wrong_san(void **state)
{
    (void)state;
    char ca[1024];
    bundle(ca, sizeof ca);
    client c;
    client_open(&c, mesh, "order", ca, "payment", 0); /* the server is inventory */
    res r;
    get(&c, "/who", &r);
    assert_int_not_equal(r.error, 0);
    assert_int_equal(sl_tls_ctx_failures(c.ctx, SL_TLS_WRONG_SAN), 1);
    client_close(&c);
}

/* Four calls in flight at all times, one idle connection kept: connections (and handshakes)
 * come and go through the reload. */
typedef struct stream {
    client c;
    res r[4];
    int started, finished, failed, target;
    int hup_at;
} stream;

static void stream_cb(sl_http_handle *h, const sl_http_result *res_, void *data);

static void stream_next(stream *s, int slot)
{
    if (s->started >= s->target) return;
    s->started++;
    sl_http_request rq = {.method = SL_HTTP_GET, .target = {"/who", 4}};
    memset(&s->r[slot], 0, sizeof s->r[slot]);
    s->r[slot].status = slot; /* which slot, until the answer overwrites it */
    assert_int_equal(sl_http_call(s->c.up, &rq, NULL, stream_cb, &s->r[slot], NULL), 0);
}

static stream *the_stream;

static void stream_cb(sl_http_handle *h, const sl_http_result *r, void *data)
{
    stream *s = the_stream;
    res *o = data;
    int slot = (int)(o - s->r);
    on_res(h, r, data);
    s->finished++;
    if (r->error != 0 || o->status != 200 || strcmp(o->body, "order") != 0) s->failed++;
    if (s->finished == s->hup_at) kill(server, SIGHUP);
    stream_next(s, slot);
}

static void test_reload_under_load(void **state)
{
    (void)state;
    run_cli("--dir %s issue inventory --hours 48", mesh); /* a new leaf to load */
    long long reloads = stat_of("reloads");
    char ca[1024];
    bundle(ca, sizeof ca);
    static stream s;
    memset(&s, 0, sizeof s);
    the_stream = &s;
    s.target = 200;
    s.hup_at = 60;
    client_open(&s.c, mesh, "order", ca, "inventory", 1);
    for (int i = 0; i < 4; i++)
        stream_next(&s, i);
    while (s.finished < s.target)
        uv_run(&s.c.loop, UV_RUN_ONCE);
    sl_upstream_stats st;
    sl_upstream_stats_get(s.c.up, &st);
    client_close(&s.c);
    assert_int_equal(s.failed, 0);
    assert_true(st.connections_opened > 1); /* handshakes happened across the reload */
    assert_int_equal(stat_of("reloads"), reloads + 1);
}

static void expect_ok(const char *dir, const char *name, const char *ca)
{
    client c;
    client_open(&c, dir, name, ca, "inventory", 0);
    res r;
    get(&c, "/who", &r);
    client_close(&c);
    assert_int_equal(r.error, 0);
    assert_string_equal(r.body, name);
}

/* SIGHUP, then wait until the server has reloaded. */
static void reload_server(void)
{
    long long n = stat_of("reloads"), now = n;
    assert_int_equal(kill(server, SIGHUP), 0);
    for (int i = 0; i < 500 && now == n; i++) {
        usleep(20000);
        assert_true(stat_try("reloads", &now));
    }
    assert_int_equal(now, n + 1);
}

static void test_rotation_overlap(void **state)
{
    (void)state;
    char olddir[256], cmd[4096];
    snprintf(olddir, sizeof olddir, "%s/old", tmpdir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s/certs", olddir);
    assert_int_equal(system(cmd), 0);
    char from[1024], to[1024];
    snprintf(from, sizeof from, "%s/certs/order.pem", mesh);
    snprintf(to, sizeof to, "%s/certs/order.pem", olddir);
    copy_file(from, to);
    snprintf(from, sizeof from, "%s/certs/order.key", mesh);
    snprintf(to, sizeof to, "%s/certs/order.key", olddir);
    copy_file(from, to);

    /* The order of a rotation: trust both CAs everywhere, then reissue every leaf. */
    run_cli("--dir %s rotate", mesh);
    reload_server();
    run_cli("--dir %s renew", mesh); /* every leaf now from the new CA, the server's included */
    reload_server();
    char ca[1024];
    bundle(ca, sizeof ca);
    expect_ok(olddir, "order", ca); /* the old CA's leaf, during the overlap */
    expect_ok(mesh, "order", ca);   /* the new CA's leaf */

    run_cli("--dir %s rotate --finish", mesh);
    reload_server();
    long long before = stat_of("unknown_ca");
    client c;
    client_open(&c, olddir, "order", ca, "inventory", 0);
    res r;
    get(&c, "/who", &r);
    client_close(&c);
    assert_int_not_equal(r.error, 0);
    assert_int_equal(stat_of("unknown_ca"), before + 1);
    expect_ok(mesh, "order", ca);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--serve") == 0) return serve_main(argv[2], atoi(argv[3]));
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_keepalive_resumption),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_wrong_san),
        cmocka_unit_test(test_reload_under_load),
        cmocka_unit_test(test_rotation_overlap),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
