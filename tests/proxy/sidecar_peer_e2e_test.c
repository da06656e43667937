/*
 * The caller service's identity behind a sidecar (docs/mesh.md, "The local
 * hop"), with real processes, real mTLS and certificates from the real
 * `shoal certs`:
 *
 *   test (mTLS, leaf "gateway" or "order") ══▶ hello sidecar ──token──▶ shoal-hello (mesh mode)
 *   test ──plain, straight to the loopback port──▶ shoal-hello (mesh mode)
 *   test ──plain──▶ shoal-hello (no mesh: as `make run`)
 *
 * shoal-hello's GET /caller answers with the caller service it trusts (sl_req_peer_service)
 * and the signed identity it accepted. Checked: through the sidecar, the caller service is
 * the certificate's, whatever headers the caller forges; a proof signed by another service
 * than the certificate's is refused; straight to the service's port, a forged
 * x-shoal-peer-service (with no token or a wrong one) names no caller, and even a valid
 * signed proof is refused, counted by reason; without mesh mode nothing changes; a token file
 * that others may read stops the service at start.
 */
#include "harness.h"
#include "identity_harness.h"

#include <shoal/clock.h>
#include <shoal/http_client.h>
#include <shoal/tls.h>

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
#include <unistd.h>

#include <cmocka.h>

static char tmpdir[128], mesh[256], keyfile[256], token[256];
static int p_hello, p_plain, p_hin, p_hadm;
static pid_t pids[3];
static th_idkeys keys;

/* `shoal certs ARGS`, which must succeed (output in <tmpdir>/cli.log). */
#define run_cli(...) assert_int_equal(th_certs(tmpdir, __VA_ARGS__), 0)

static pid_t spawn_hello(int port, int with_token, const char *name)
{
    char sport[16], logp[512], kenv[300], tenv[300];
    snprintf(sport, sizeof sport, "%d", port);
    snprintf(logp, sizeof logp, "%s/%s.log", tmpdir, name);
    snprintf(kenv, sizeof kenv, "SHOAL_IDENTITY__KEY_FILE=%s", keyfile);
    snprintf(tenv, sizeof tenv, "SHOAL_MESH__PEER_TOKEN_FILE=%s", token);
    char *env[] = {kenv, with_token ? tenv : NULL, NULL};
    char *argv[] = {"shoal-hello", "--port", sport, "--workers", "1", NULL};
    return th_spawn(argv, env, logp);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/shoal-sidecar-peer-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(mesh, sizeof mesh, "%s/mesh", tmpdir);
    snprintf(keyfile, sizeof keyfile, "%s/hello.identity", tmpdir);
    snprintf(token, sizeof token, "%s/hello.token", tmpdir);
    run_cli("--dir %s init", mesh);
    run_cli("--dir %s issue hello", mesh);
    run_cli("--dir %s issue gateway", mesh);
    run_cli("--dir %s issue order", mesh);
    char err[256];
    sl_identity_key k;
    if (th_idkeys_make(keyfile, "hello", &keys, err) != 0 ||
        sl_identity_key_ensure(token, &k, err) != 0) {
        fprintf(stderr, "keys: %s\n", err);
        return -1;
    }
    p_hello = th_free_port();
    p_plain = th_free_port();
    p_hin = th_free_port();
    p_hadm = th_free_port();
    char path[512];
    snprintf(path, sizeof path, "%s/hello.yaml", tmpdir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f,
            "service: {host: 127.0.0.1, port: %d}\n"
            "admin: {host: 127.0.0.1, port: %d}\n"
            "clusters:\n"
            "  local: {endpoints: [\"127.0.0.1:%d\"]}\n"
            "sidecar:\n"
            "  service: hello\n"
            "  local: local\n"
            "  cert_file: %s/certs/hello.pem\n"
            "  key_file: %s/certs/hello.key\n"
            "  ca_file: %s/bundle.pem\n"
            "  allow:\n"
            "    - {caller: gateway, routes: [public]}\n"
            "    - {caller: order, routes: [public]}\n",
            p_hin, p_hadm, p_hello, mesh, mesh, mesh);
    fclose(f);
    pids[0] = spawn_hello(p_hello, 1, "hello-mesh");
    pids[1] = spawn_hello(p_plain, 0, "hello-plain");
    char tenv[300], logp[512];
    snprintf(tenv, sizeof tenv, "SHOAL_SIDECAR_PEER_TOKEN_FILE=%s", token);
    snprintf(logp, sizeof logp, "%s/sidecar.log", tmpdir);
    char *env[] = {tenv, NULL};
    char *argv[] = {"shoal-proxy", "--role", "sidecar", "--config", path, NULL};
    pids[2] = th_spawn(argv, env, logp);
    const int ports[] = {p_hello, p_plain, p_hin, p_hadm};
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
    int st[3] = {0};
    for (int i = 2; i >= 0; i--)
        if (pids[i] > 0) st[i] = th_stop(pids[i], SIGTERM, 10000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(st[i], 0);
    sodium_memzero(&keys, sizeof keys);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- calls -------------------------------------------------------------------------------- */

/* Signed identity headers for GET /caller: the gateway's edge for a customer, order's for
 * `service`. `out` borrows `proof`. */
static void sign(const char *user, const char *role, char proof[SL_IDENTITY_PROOF_MAX],
                 sl_http_header out[SL_IDENTITY_NHEADERS])
{
    sl_identity_msg m = {
        .callee = "hello", .method = SL_HTTP_GET, .target = SL_SLICE_LIT("/caller")};
    assert_int_equal(sl_identity_headers(th_idkeys_edge(&keys, role), user, role, &m,
                                         sl_clock_wall_ms(sl_clock_system()), proof, out),
                     0);
}

/* A plain GET /caller straight to `port` with the raw header lines `extra`; the status. */
static int plain_caller(int port, const sl_http_header *h, size_t nh, const char *extra,
                        th_response *r)
{
    char raw[2048];
    int n = snprintf(raw, sizeof raw, "GET /caller HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for (size_t i = 0; i < nh; i++)
        n += snprintf(raw + n, sizeof raw - (size_t)n, "%.*s: %.*s\r\n", (int)h[i].name.len,
                      h[i].name.ptr, (int)h[i].value.len, h[i].value.ptr);
    n += snprintf(raw + n, sizeof raw - (size_t)n, "%s\r\n", extra ? extra : "");
    return th_roundtrip(port, raw, (size_t)n, r, 10000);
}

/* The value of `series` in the /metrics of `port`; 0 when absent. */
static double metric(int port, const char *series)
{
    double v;
    assert_int_equal(th_metric(port, series, &v), 200);
    return v;
}

typedef struct res {
    int done, status;
    char body[1024];
} res;

static void on_res(sl_http_handle *h, const sl_http_result *r, void *data)
{
    (void)h;
    res *o = data;
    o->done = 1;
    if (r->response) {
        o->status = r->response->status;
        size_t n =
            r->response->body.len < sizeof o->body - 1 ? r->response->body.len : sizeof o->body - 1;
        memcpy(o->body, r->response->body.ptr, n);
        o->body[n] = '\0';
    }
}

static void up_done(void *data)
{
    *(int *)data = 1;
}

/* GET /caller through the hello sidecar with mTLS as service `leaf`, with headers `h`. */
static void mesh_caller(const char *leaf, const sl_http_header *h, size_t nh, res *out)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char cert[512], key[512], ca[512], err[256], ep[32];
    snprintf(cert, sizeof cert, "%s/certs/%s.pem", mesh, leaf);
    snprintf(key, sizeof key, "%s/certs/%s.key", mesh, leaf);
    snprintf(ca, sizeof ca, "%s/bundle.pem", mesh);
    sl_tls_config tc = {
        .cert_file = cert, .key_file = key, .ca_file = ca, .mesh = true, .expect_peer = "hello"};
    sl_tls_ctx *ctx = NULL;
    if (sl_tls_ctx_new(&tc, &ctx, err, sizeof err) != 0) fail_msg("client ctx: %s", err);
    snprintf(ep, sizeof ep, "127.0.0.1:%d", p_hin);
    const char *eps[] = {ep};
    sl_upstream_config uc;
    sl_upstream_config_default(&uc);
    uc.name = "hello";
    uc.endpoints = eps;
    uc.nendpoints = 1;
    uc.policies = false;
    uc.timeout_ms = 10000;
    uc.tls = ctx;
    sl_upstream_env env = {.loop = &loop};
    sl_upstream *up = NULL;
    assert_int_equal(sl_upstream_new(&uc, &env, &up), 0);
    memset(out, 0, sizeof *out);
    sl_http_request rq = {
        .method = SL_HTTP_GET, .target = SL_SLICE_LIT("/caller"), .headers = h, .nheaders = nh};
    assert_int_equal(sl_http_call(up, &rq, NULL, on_res, out, NULL), 0);
    while (!out->done)
        uv_run(&loop, UV_RUN_ONCE);
    int closed = 0;
    sl_upstream_close(up, up_done, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    sl_tls_ctx_unref(ctx);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Whether the JSON `body` has `name` equal to `want` (NULL: JSON null). */
static int has(const char *body, const char *name, const char *want)
{
    json_t *doc = json_loads(body, 0, NULL);
    json_t *v = doc ? json_object_get(doc, name) : NULL;
    int ok = v && (want ? json_is_string(v) && strcmp(json_string_value(v), want) == 0
                        : json_is_null(v));
    if (!ok) fprintf(stderr, "body %s: %s is not %s\n", body, name, want ? want : "null");
    json_decref(doc);
    return ok;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_caller_from_certificate(void **state)
{
    (void)state;
    char proof[SL_IDENTITY_PROOF_MAX];
    sl_http_header h[SL_IDENTITY_NHEADERS + 2];
    sign("user-7", "customer", proof, h);
    /* forged claims of the caller: the sidecar drops both before adding its own */
    h[3] = (sl_http_header){SL_SLICE_LIT("X-Shoal-Peer-Service"), SL_SLICE_LIT("order")};
    h[4] = (sl_http_header){SL_SLICE_LIT("X-Shoal-Peer-Token"), SL_SLICE_LIT("0123")};
    res r;
    mesh_caller("gateway", h, SL_ARRAY_LEN(h), &r);
    assert_int_equal(r.status, 200);
    assert_true(has(r.body, "peer", "gateway"));
    assert_true(has(r.body, "signer", "gateway"));
    assert_true(has(r.body, "user", "user-7"));
    /* no identity headers: the caller service is still known */
    mesh_caller("order", NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_true(has(r.body, "peer", "order"));
    assert_true(has(r.body, "signer", NULL));
}

static void test_signer_must_be_the_peer(void **state)
{
    (void)state;
    const char *series = "identity_refusals_total{reason=\"peer\"}";
    double before = metric(p_hello, series);
    char proof[SL_IDENTITY_PROOF_MAX];
    sl_http_header h[SL_IDENTITY_NHEADERS];
    /* order holds a certificate, and (say) the gateway's edge key: it still cannot pass as it */
    sign("user-7", "customer", proof, h);
    res r;
    mesh_caller("order", h, SL_ARRAY_LEN(h), &r);
    assert_int_equal(r.status, 401);
    assert_true(metric(p_hello, series) == before + 1);
    /* its own edge, its own certificate: accepted */
    sign("saga", "service", proof, h);
    mesh_caller("order", h, SL_ARRAY_LEN(h), &r);
    assert_int_equal(r.status, 200);
    assert_true(has(r.body, "peer", "order"));
    assert_true(has(r.body, "signer", "order"));
}

static void test_straight_to_the_service(void **state)
{
    (void)state;
    th_response r;
    /* a forged caller service with no token names nobody, and is counted */
    const char *tok = "identity_refusals_total{reason=\"peer_token\"}";
    double f0 = metric(p_hello, tok);
    assert_int_equal(plain_caller(p_hello, NULL, 0, "X-Shoal-Peer-Service: gateway\r\n", &r), 200);
    assert_true(has(r.body, "peer", NULL));
    th_response_free(&r);
    assert_true(metric(p_hello, tok) == f0 + 1);
    /* a valid proof of the gateway's edge, sent without the sidecar: refused */
    const char *peer = "identity_refusals_total{reason=\"peer\"}";
    double p0 = metric(p_hello, peer), t0 = metric(p_hello, tok);
    char proof[SL_IDENTITY_PROOF_MAX];
    sl_http_header h[SL_IDENTITY_NHEADERS];
    sign("user-7", "customer", proof, h);
    assert_int_equal(
        plain_caller(p_hello, h, SL_ARRAY_LEN(h), "X-Shoal-Peer-Service: gateway\r\n", &r), 401);
    assert_non_null(strstr(r.body, "identity could not be verified"));
    th_response_free(&r);
    assert_true(metric(p_hello, peer) == p0 + 1);
    assert_true(metric(p_hello, tok) == t0 + 1); /* a caller service header without a token */
    /* with a guessed token: the headers are refused, and so is the proof */
    sign("user-7", "customer", proof, h);
    char extra[256];
    snprintf(extra, sizeof extra, "X-Shoal-Peer-Service: gateway\r\nX-Shoal-Peer-Token: %064d\r\n",
             0);
    assert_int_equal(plain_caller(p_hello, h, SL_ARRAY_LEN(h), extra, &r), 401);
    th_response_free(&r);
    assert_true(metric(p_hello, tok) == t0 + 2);
    assert_true(metric(p_hello, peer) == p0 + 2);
}

static void test_without_mesh_unchanged(void **state)
{
    (void)state;
    char proof[SL_IDENTITY_PROOF_MAX];
    sl_http_header h[SL_IDENTITY_NHEADERS];
    sign("user-9", "customer", proof, h);
    th_response r;
    /* the signed proof alone is the check, and no header names a caller service */
    assert_int_equal(
        plain_caller(p_plain, h, SL_ARRAY_LEN(h), "X-Shoal-Peer-Service: order\r\n", &r), 200);
    assert_true(has(r.body, "peer", NULL));
    assert_true(has(r.body, "signer", "gateway"));
    assert_true(has(r.body, "user", "user-9"));
    th_response_free(&r);
}

static void test_token_file_others_can_read(void **state)
{
    (void)state;
    char loose[512], cmd[2048];
    snprintf(loose, sizeof loose, "%s/loose.token", tmpdir);
    snprintf(cmd, sizeof cmd, "cp %s %s && chmod 0644 %s", token, loose, loose);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "SHOAL_MESH__PEER_TOKEN_FILE=%s SHOAL_IDENTITY__KEY_FILE=%s timeout 20 %s --port %d "
             ">%s/loose.log 2>&1",
             loose, keyfile, th_bin("shoal-hello"), th_free_port(), tmpdir);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) != 0 && WEXITSTATUS(rc) != 124);
    snprintf(cmd, sizeof cmd, "grep -q 'mesh.peer_token_file: .*mode 0600' %s/loose.log", tmpdir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caller_from_certificate),
        cmocka_unit_test(test_signer_must_be_the_peer),
        cmocka_unit_test(test_straight_to_the_service),
        cmocka_unit_test(test_without_mesh_unchanged),
        cmocka_unit_test(test_token_file_others_can_read),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
