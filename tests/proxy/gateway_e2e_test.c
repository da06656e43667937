/*
 * End-to-end tests of shoal-proxy over real processes and sockets: the
 * gateway binary (build/bin/shoal-proxy) in front of raw test upstreams
 * (this binary re-executed as "upstream", see upstream.inc.h) that count
 * what reaches them and verify the identity proof with sl_identity_verify.
 *
 * Covered: routing and rewrites, header hygiene, 404/405/413/429 shapes,
 * 401/403 with real Ed25519 tokens and a JWKS served by an upstream (and key
 * rotation), identity stripping and re-signing, breaker + bulkhead isolation
 * and recovery, aggregation with a slow, failing or breaker-open part,
 * request smuggling (CL.TE, TE.CL, TE.TE, duplicate CL), SIGHUP reload with
 * a request in flight and with a bad file, CORS and the admin listener.
 */
#include "upstream.inc.h"

#include "harness.h"

#include <shoal/auth.h>
#include <shoal/clock.h>
#include <shoal/identity.h>
#include <shoal/rand.h>

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static char self_exe[4096];

typedef struct env {
    char dir[256];
    pid_t gw;
    int port, admin;
    pid_t ups[4];
    int up_ports[4];
    const char *up_names[4];
    int nups;
    sl_auth_key *key; /* signs test tokens */
} env;

/* The current test's environment: a teardown stops its processes even after a failed assertion. */
static env g_env;
static int g_env_live;

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char tmp[520];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

static void publish_keys(env *e, sl_auth_key *const *keys, size_t n)
{
    sl_keyset *ks;
    assert_int_equal(sl_keyset_new(&ks), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(sl_keyset_add(ks, keys[i]), 0);
    char *doc;
    assert_int_equal(sl_jwks_dump(ks, &doc, NULL), 0);
    write_file(e->dir, "jwks.json", doc);
    free(doc);
    sl_keyset_free(ks);
}

static char *token(const sl_auth_key *key, const char *sub, const char *role)
{
    int64_t now = sl_clock_wall_ms(sl_clock_system()) / 1000;
    sl_jwt_claims c = {.sub = sub, .role = role, .iat = now, .exp = now + 3600};
    char *t = NULL;
    assert_int_equal(sl_jwt_sign(key, &c, &t, NULL), 0);
    return t;
}

static void env_init(env *e)
{
    memset(e, 0, sizeof *e);
    g_env_live = 1;
    snprintf(e->dir, sizeof e->dir, "/tmp/shoal-gw-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    char kp[300], err[256];
    snprintf(kp, sizeof kp, "%s/identity.key", e->dir);
    /* The gateway's key file, as `shoal up` writes it: an edge to every test upstream. */
    sl_identity_key master;
    assert_int_equal(sl_rand_secure_bytes(master.k, sizeof master.k), 0);
    static const char *const names[] = {"a", "b", "users", "user", "order", "product"};
    sl_identity_edge edges[SL_ARRAY_LEN(names)];
    for (size_t i = 0; i < SL_ARRAY_LEN(names); i++)
        assert_int_equal(
            sl_identity_edge_derive(&master, "gateway", names[i], "customer,admin", &edges[i]), 0);
    assert_int_equal(sl_identity_keyring_write(kp, edges, SL_ARRAY_LEN(names), err), 0);
    assert_int_equal(sl_auth_key_generate(&e->key), 0);
    publish_keys(e, &e->key, 1);
    e->port = th_free_port();
    e->admin = th_free_port();
}

static int up_start(env *e, const char *name)
{
    int i = e->nups++;
    e->up_names[i] = name;
    if (!e->up_ports[i]) e->up_ports[i] = th_free_port();
    char port[16], log[400];
    snprintf(port, sizeof port, "%d", e->up_ports[i]);
    snprintf(log, sizeof log, "%s/%s.log", e->dir, name);
    char *argv[] = {self_exe, "upstream", port, (char *)name, e->dir, NULL};
    e->ups[i] = th_spawn(argv, NULL, log);
    assert_int_equal(th_wait_port(e->up_ports[i], 5000), 0);
    return e->up_ports[i];
}

static void up_restart(env *e, int i)
{
    char port[16], log[400];
    snprintf(port, sizeof port, "%d", e->up_ports[i]);
    snprintf(log, sizeof log, "%s/%s.log", e->dir, e->up_names[i]);
    char *argv[] = {self_exe, "upstream", port, (char *)e->up_names[i], e->dir, NULL};
    e->ups[i] = th_spawn(argv, NULL, log);
    assert_int_equal(th_wait_port(e->up_ports[i], 5000), 0);
}

static void up_mode(env *e, const char *name, const char *mode)
{
    char f[80];
    snprintf(f, sizeof f, "%s.mode", name);
    write_file(e->dir, f, mode);
}

/* Writes gw.yaml from a template whose %1$d is the gateway port, %2$d the admin port. */
static void gw_config(env *e, const char *yaml)
{
    write_file(e->dir, "gw.yaml", yaml);
}

static void gw_start(env *e)
{
    char cfg[400], log[400], key[400];
    snprintf(cfg, sizeof cfg, "%s/gw.yaml", e->dir);
    snprintf(log, sizeof log, "%s/gateway.log", e->dir);
    snprintf(key, sizeof key, "SHOAL_IDENTITY__KEY_FILE=%s/identity.key", e->dir);
    char port[48], admin[48];
    snprintf(port, sizeof port, "SHOAL_SERVICE__PORT=%d", e->port);
    snprintf(admin, sizeof admin, "SHOAL_ADMIN__PORT=%d", e->admin);
    char *env_[] = {key, port, admin, NULL};
    char *argv[] = {"shoal-proxy", "--config", cfg, NULL};
    e->gw = th_spawn(argv, env_, log);
    assert_int_equal(th_wait_port(e->port, 5000), 0);
    assert_int_equal(th_wait_port(e->admin, 5000), 0);
}

static void env_fini(env *e)
{
    if (!g_env_live) return;
    g_env_live = 0;
    if (e->gw && th_stop(e->gw, SIGTERM, 5000) == -1) th_stop(e->gw, SIGKILL, 2000);
    for (int i = 0; i < e->nups; i++)
        if (e->ups[i]) th_stop(e->ups[i], SIGKILL, 2000);
    sl_auth_key_free(e->key);
    char cmd[300];
    if (getenv("GW_KEEP")) return; /* keep the logs for inspection */
    snprintf(cmd, sizeof cmd, "rm -rf %s", e->dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", e->dir);
}

/* One request; returns the status (the response stays in *res; free it). */
static int req(int port, th_response *res, const char *fmt, ...)
{
    char raw[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    memset(res, 0, sizeof *res);
    return th_roundtrip(port, raw, (size_t)n, res, 10000);
}

static int get(int port, const char *path, const char *extra, th_response *res)
{
    return req(port, res, "GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n", path, extra ? extra : "");
}

static json_t *body_json(const th_response *res)
{
    json_t *j = json_loadb(res->body ? res->body : "", res->body_len, 0, NULL);
    assert_non_null(j);
    return j;
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static long up_count(int port)
{
    th_response r;
    assert_int_equal(get(port, "/count", NULL, &r), 200);
    json_t *j = body_json(&r);
    long n = (long)json_integer_value(json_object_get(j, "requests"));
    assert_int_equal(json_integer_value(json_object_get(j, "errors")), 0);
    json_decref(j);
    th_response_free(&r);
    return n;
}

/* ---- routing, rewriting, hygiene, shapes --------------------------------------------------------
 */

static const char *routing_yaml =
    "gateway: {route_timeout_ms: 2000}\n"
    "clusters:\n"
    "  a: {endpoints: [127.0.0.1:%d]}\n"
    "  b: {endpoints: [127.0.0.1:%d]}\n"
    "routes:\n"
    "  - {name: canary, match: {prefix: /api/things, headers: {x-canary: \"1\"}}, rewrite: "
    "/canary, cluster: b}\n"
    "  - {name: thing, match: {template: \"/api/things/{id}/parts/{part}\", methods: [GET]}, "
    "rewrite: \"/t/{part}/{id}\", cluster: a}\n"
    "  - {name: things, match: {prefix: /api/things}, rewrite: /things, cluster: a}\n"
    "  - {name: exact, match: {path: /api/exact, methods: [POST, PUT]}, rewrite: /e, cluster: a, "
    "body_max_bytes: 100}\n"
    "  - {name: limited, match: {path: /api/limited}, cluster: a, rate_limit: {rate: 1, burst: "
    "2}}\n";

static void start_routing(env *e)
{
    env_init(e);
    int a = up_start(e, "a"), b = up_start(e, "b");
    char yaml[4096];
    snprintf(yaml, sizeof yaml, routing_yaml, a, b);
    gw_config(e, yaml);
    gw_start(e);
}

static void test_routing_and_rewrite(void **state)
{
    (void)state;
    env *e = &g_env;
    start_routing(e);
    th_response r;
    assert_int_equal(get(e->port, "/api/things/7/parts/wheel?x=1", NULL, &r), 200);
    json_t *j = body_json(&r);
    assert_string_equal(jstr(j, "upstream"), "a");
    assert_string_equal(jstr(j, "target"), "/t/wheel/7?x=1");
    json_decref(j);
    th_response_free(&r);

    assert_int_equal(get(e->port, "/api/things/x/y", NULL, &r), 200);
    j = body_json(&r);
    assert_string_equal(jstr(j, "target"), "/things/x/y");
    json_decref(j);
    th_response_free(&r);

    assert_int_equal(get(e->port, "/api/things/x", "x-canary: 1\r\n", &r), 200);
    j = body_json(&r);
    assert_string_equal(jstr(j, "upstream"), "b");
    assert_string_equal(jstr(j, "target"), "/canary/x");
    json_decref(j);
    th_response_free(&r);

    /* 404, 405 with Allow, 413: problem+json, request id echoed, traceparent present. */
    assert_int_equal(get(e->port, "/nowhere", "x-request-id: abc-123\r\n", &r), 404);
    assert_non_null(strstr(th_header(&r, "content-type"), "problem+json"));
    assert_string_equal(th_header(&r, "x-request-id"), "abc-123");
    assert_non_null(th_header(&r, "traceparent"));
    th_response_free(&r);
    assert_int_equal(get(e->port, "/api/exact", NULL, &r), 405);
    assert_string_equal(th_header(&r, "allow"), "POST, PUT");
    th_response_free(&r);
    char big[300];
    memset(big, 'x', 200);
    big[200] = '\0';
    assert_int_equal(req(e->port, &r,
                         "POST /api/exact HTTP/1.1\r\nHost: t\r\nContent-Length: 200\r\n\r\n%s",
                         big),
                     413);
    assert_non_null(th_header(&r, "x-request-id"));
    th_response_free(&r);
    assert_int_equal(
        req(e->port, &r, "POST /api/exact HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"),
        200);
    j = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "body_len")), 5);
    json_decref(j);
    th_response_free(&r);
    env_fini(e);
}

static void test_header_hygiene(void **state)
{
    (void)state;
    env *e = &g_env;
    start_routing(e);
    th_response r;
    assert_int_equal(get(e->port, "/api/things",
                         "x-user-id: root\r\nx-user-role: admin\r\nx-shoal-identity: v1.1.aa\r\n"
                         "Connection: keep-alive, x-secret\r\nx-secret: s\r\nKeep-Alive: 5\r\n"
                         "Upgrade: h2c\r\nX-Forwarded-For: 10.0.0.1\r\nx-keep: yes\r\n",
                         &r),
                     200);
    json_t *j = body_json(&r);
    assert_string_equal(jstr(j, "user_id"), "");
    assert_string_equal(jstr(j, "role"), "");
    assert_string_equal(jstr(j, "identity"), "none");
    assert_string_equal(jstr(j, "xff"), "10.0.0.1, 127.0.0.1");
    assert_string_equal(jstr(j, "via"), "1.1 shoal");
    json_t *names = json_object_get(j, "headers");
    size_t i;
    json_t *n;
    int keep = 0;
    json_array_foreach(names, i, n)
    {
        const char *s = json_string_value(n);
        assert_true(strcasecmp(s, "x-secret") && strcasecmp(s, "keep-alive") &&
                    strcasecmp(s, "upgrade") && strcasecmp(s, "x-user-id") &&
                    strcasecmp(s, "x-shoal-identity") && strcasecmp(s, "connection"));
        keep |= strcasecmp(s, "x-keep") == 0;
    }
    assert_true(keep);
    json_decref(j);
    th_response_free(&r);
    env_fini(e);
}

static void test_rate_limit(void **state)
{
    (void)state;
    env *e = &g_env;
    start_routing(e);
    th_response r;
    int statuses[4];
    for (int i = 0; i < 4; i++) {
        statuses[i] = get(e->port, "/api/limited", NULL, &r);
        if (statuses[i] == 429) {
            assert_non_null(strstr(th_header(&r, "content-type"), "problem+json"));
            assert_true(atoi(th_header(&r, "retry-after")) >= 1);
        }
        th_response_free(&r);
    }
    assert_int_equal(statuses[0], 200);
    assert_int_equal(statuses[1], 200);
    assert_int_equal(statuses[3], 429); /* burst 2 at 1/s: the fourth in a row is refused */
    env_fini(e);
}

/* ---- smuggling ----------------------------------------------------------------------------------
 */

static void refused(env *e, int up_port, const char *raw)
{
    long before = up_count(up_port);
    th_response r;
    memset(&r, 0, sizeof r);
    int st = th_roundtrip(e->port, raw, strlen(raw), &r, 5000);
    assert_true(st == 400 || st == 501);
    th_response_free(&r);
    assert_int_equal(up_count(up_port), before); /* nothing reached the upstream */
}

static void test_smuggling(void **state)
{
    (void)state;
    env *e = &g_env;
    start_routing(e);
    int up = e->up_ports[0];
    /* CL.TE */
    refused(e, up,
            "POST /api/things HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG");
    /* TE.CL */
    refused(e, up,
            "POST /api/things HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            "Content-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n");
    /* TE.TE, obfuscated */
    refused(e, up,
            "POST /api/things HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            "Transfer-Encoding: x\r\n\r\n0\r\n\r\n");
    refused(e, up,
            "POST /api/things HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n"
            "0\r\n\r\n");
    refused(e, up,
            "POST /api/things HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n"
            "0\r\n\r\n");
    refused(e, up,
            "POST /api/things HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\tchunked\r\n"
            " , identity\r\n\r\n0\r\n\r\n");
    /* duplicate Content-Length */
    refused(e, up,
            "POST /api/things HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
            "Content-Length: 6\r\n\r\nhello!");
    refused(e, up, "POST /api/things HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello");

    /* A body that looks like a request is a body: one request upstream, never two. */
    long before = up_count(up);
    const char *inner = "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
    th_response r;
    assert_int_equal(req(e->port, &r,
                         "POST /api/things HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n%s",
                         strlen(inner), inner),
                     200);
    th_response_free(&r);
    /* Chunked from the client becomes Content-Length upstream (re-serialised). */
    assert_int_equal(
        req(e->port, &r,
            "POST /api/things HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n0\r\n\r\n"),
        200);
    json_t *j = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "body_len")), 5);
    json_decref(j);
    th_response_free(&r);
    assert_int_equal(up_count(up), before + 2);
    assert_int_equal(get(up, "/count", NULL, &r), 200);
    assert_null(strstr(r.body, "/smuggled"));
    assert_null(strstr(r.body, "ransfer-"));
    th_response_free(&r);
    env_fini(e);
}

/* ---- auth ---------------------------------------------------------------------------------------
 */

/* One worker: each worker keeps its own JWKS cache and refetch interval. */
static const char *auth_yaml =
    "service: {workers: 1}\n"
    "auth: {jwks: {cluster: users, path: /.well-known/jwks.json, min_refetch_ms: 1000}}\n"
    "clusters:\n"
    "  users: {endpoints: [127.0.0.1:%d]}\n"
    "  a: {endpoints: [127.0.0.1:%d]}\n"
    "routes:\n"
    "  - {name: pub, match: {prefix: /api/pub}, rewrite: /pub, cluster: a}\n"
    "  - {name: me, match: {prefix: /api/me}, rewrite: /me, cluster: a, auth: authenticated}\n"
    "  - {name: adm, match: {prefix: /api/admin}, rewrite: /admin, cluster: a, auth: admin}\n";

static int jwks_fetches(int up)
{
    th_response r;
    assert_int_equal(get(up, "/count", NULL, &r), 200);
    int n = 0;
    for (const char *p = r.body; (p = strstr(p, "GET /.well-known/jwks.json")); p++)
        n++;
    th_response_free(&r);
    return n;
}

static void test_auth_and_identity(void **state)
{
    (void)state;
    env *e = &g_env;
    env_init(e);
    int users = up_start(e, "users"), a = up_start(e, "a");
    char yaml[2048], hdr[10000];
    snprintf(yaml, sizeof yaml, auth_yaml, users, a);
    gw_config(e, yaml);
    gw_start(e);
    th_response r;
    assert_int_equal(get(e->port, "/api/me", NULL, &r), 401);
    assert_non_null(th_header(&r, "www-authenticate"));
    assert_non_null(strstr(th_header(&r, "content-type"), "problem+json"));
    th_response_free(&r);
    assert_int_equal(get(e->port, "/api/me", "Authorization: Bearer not.a.token\r\n", &r), 401);
    th_response_free(&r);

    char *cust = token(e->key, "user-1", "customer");
    snprintf(hdr, sizeof hdr,
             "Authorization: Bearer %s\r\nx-user-id: admin-0\r\nx-user-role: admin\r\n", cust);
    assert_int_equal(get(e->port, "/api/me/profile", hdr, &r), 200);
    json_t *j = body_json(&r);
    assert_string_equal(jstr(j, "user_id"), "user-1"); /* the token's, not the client's */
    assert_string_equal(jstr(j, "role"), "customer");
    assert_string_equal(jstr(j, "identity"), "ok"); /* verified with sl_identity_verify */
    json_t *names = json_object_get(j, "headers");
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n) assert_true(strcasecmp(json_string_value(n), "authorization"));
    json_decref(j);
    th_response_free(&r);
    assert_int_equal(get(e->port, "/api/admin/x", hdr, &r), 403);
    th_response_free(&r);

    char *adm = token(e->key, "admin-1", "admin");
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", adm);
    assert_int_equal(get(e->port, "/api/admin/x", hdr, &r), 200);
    th_response_free(&r);
    /* Public routes ignore a bad token rather than refusing. */
    assert_int_equal(get(e->port, "/api/pub", "Authorization: Bearer nope\r\n", &r), 200);
    th_response_free(&r);

    /* Rotation: the user service publishes a new key and signs with it. */
    sl_auth_key *k2;
    assert_int_equal(sl_auth_key_generate(&k2), 0);
    sl_auth_key *both[] = {e->key, k2};
    publish_keys(e, both, 2);
    usleep(1100 * 1000); /* past min_refetch_ms since the start-up fetch */
    int before = jwks_fetches(users);
    char *t2 = token(k2, "user-2", "customer");
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", t2);
    assert_int_equal(get(e->port, "/api/me", hdr, &r), 200);
    j = body_json(&r);
    assert_string_equal(jstr(j, "user_id"), "user-2");
    json_decref(j);
    th_response_free(&r);
    assert_int_equal(jwks_fetches(users), before + 1);
    /* Another unknown kid right after: refused without another fetch (rate-limited). */
    sl_auth_key *k3;
    assert_int_equal(sl_auth_key_generate(&k3), 0);
    char *t3 = token(k3, "user-3", "customer");
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", t3);
    assert_int_equal(get(e->port, "/api/me", hdr, &r), 401);
    th_response_free(&r);
    assert_int_equal(jwks_fetches(users), before + 1);
    free(cust);
    free(adm);
    free(t2);
    free(t3);
    sl_auth_key_free(k2);
    sl_auth_key_free(k3);
    env_fini(e);
}

/* auth.jwks.pin_kid: a JWKS that serves an extra key; tokens signed by it are refused. */
static void test_jwks_pin(void **state)
{
    (void)state;
    env *e = &g_env;
    env_init(e);
    sl_auth_key *rogue;
    assert_int_equal(sl_auth_key_generate(&rogue), 0);
    sl_auth_key *both[] = {e->key, rogue};
    publish_keys(e, both, 2);
    int users = up_start(e, "users"), a = up_start(e, "a");
    char yaml[2048], tmpl[1024], hdr[4096];
    snprintf(tmpl, sizeof tmpl,
             "service: {workers: 1}\n"
             "auth: {jwks: {cluster: users, min_refetch_ms: 1000, pin_kid: [\"%s\"]}}\n"
             "clusters:\n"
             "  users: {endpoints: [127.0.0.1:%%d]}\n"
             "  a: {endpoints: [127.0.0.1:%%d]}\n"
             "routes:\n"
             "  - {name: me, match: {prefix: /api/me}, rewrite: /me, cluster: a, auth: "
             "authenticated}\n",
             sl_auth_key_kid(e->key));
    snprintf(yaml, sizeof yaml, tmpl, users, a);
    gw_config(e, yaml);
    gw_start(e);
    th_response r;
    char *good = token(e->key, "user-1", "customer");
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", good);
    assert_int_equal(get(e->port, "/api/me", hdr, &r), 200);
    th_response_free(&r);
    char *bad = token(rogue, "admin-9", "admin");
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", bad);
    assert_int_equal(get(e->port, "/api/me", hdr, &r), 401);
    assert_non_null(strstr(th_header(&r, "content-type"), "problem+json"));
    th_response_free(&r);
    assert_int_equal(up_count(a), 1); /* only the pinned key's request reached the service */
    free(good);
    free(bad);
    sl_auth_key_free(rogue);
    env_fini(e);
}

/* ---- breaker, bulkhead, recovery, admin ---------------------------------------------------------
 */

static const char *breaker_yaml =
    "service: {workers: 1}\n"
    "clusters:\n"
    "  a:\n"
    "    endpoints: [127.0.0.1:%d]\n"
    "    retry: {max_retries: 0}\n"
    "    breaker: {failure_threshold: 3, recovery_timeout_ms: 1500, half_open_max_calls: 1}\n"
    "  b: {endpoints: [127.0.0.1:%d]}\n"
    "routes:\n"
    "  - {name: a, match: {prefix: /a}, cluster: a}\n"
    "  - {name: b, match: {prefix: /b}, cluster: b}\n";

static const char *cluster_breaker(int admin, const char *name)
{
    static char state[32];
    th_response r;
    assert_int_equal(get(admin, "/admin/clusters", NULL, &r), 200);
    json_t *j = body_json(&r);
    size_t i;
    json_t *c;
    state[0] = '\0';
    json_array_foreach(json_object_get(j, "clusters"), i, c) if (strcmp(jstr(c, "name"), name) == 0)
        snprintf(state, sizeof state, "%s", jstr(c, "breaker"));
    json_decref(j);
    th_response_free(&r);
    return state;
}

static void test_breaker_isolation_recovery(void **state)
{
    (void)state;
    env *e = &g_env;
    env_init(e);
    int a = up_start(e, "a"), b = up_start(e, "b");
    char yaml[2048];
    snprintf(yaml, sizeof yaml, breaker_yaml, a, b);
    gw_config(e, yaml);
    gw_start(e);
    th_response r;
    assert_int_equal(get(e->port, "/a", NULL, &r), 200);
    th_response_free(&r);
    th_stop(e->ups[0], SIGKILL, 2000);
    e->ups[0] = 0;
    for (int i = 0; i < 3; i++) { /* connection refused → 503 with Retry-After */
        assert_int_equal(get(e->port, "/a", NULL, &r), 503);
        assert_non_null(th_header(&r, "retry-after"));
        th_response_free(&r);
    }
    /* Open now: fails fast with the rest of the open period as Retry-After. */
    assert_int_equal(get(e->port, "/a", NULL, &r), 503);
    assert_non_null(strstr(r.body, "breaker_open"));
    assert_true(atoi(th_header(&r, "retry-after")) >= 1);
    th_response_free(&r);
    usleep(300 * 1000); /* the admin view is published every 250 ms */
    assert_string_equal(cluster_breaker(e->admin, "a"), "open");
    assert_string_equal(cluster_breaker(e->admin, "b"), "closed");
    /* The other cluster is unaffected. */
    assert_int_equal(get(e->port, "/b", NULL, &r), 200);
    th_response_free(&r);
    /* The upstream comes back; after the open period a trial closes the breaker. */
    up_restart(e, 0);
    usleep(1600 * 1000);
    int ok = 0;
    for (int i = 0; i < 20 && !ok; i++) {
        ok = get(e->port, "/a", NULL, &r) == 200;
        th_response_free(&r);
        if (!ok) usleep(200 * 1000);
    }
    assert_true(ok);
    usleep(300 * 1000);
    assert_string_equal(cluster_breaker(e->admin, "a"), "closed");
    assert_int_equal(get(e->admin, "/admin/config", NULL, &r), 200);
    assert_non_null(strstr(r.body, "\"generation\":1"));
    th_response_free(&r);
    env_fini(e);
}

/* `promtool check metrics` (Debian prometheus) accepts the exposition `text`. */
static void promtool_check_metrics(const char *text, size_t len)
{
    FILE *p = popen("promtool check metrics > gw_promtool.out 2>&1", "w");
    assert_non_null(p);
    fwrite(text, 1, len, p);
    int st = pclose(p);
    if (st != 0) {
        char out[4096] = {0};
        FILE *f = fopen("gw_promtool.out", "r");
        if (f) {
            out[fread(out, 1, sizeof out - 1, f)] = 0;
            fclose(f);
        }
        fprintf(stderr, "promtool check metrics failed:\n%s\n", out);
    }
    assert_int_equal(st, 0);
}

/* The public port keeps the probes but not the metrics; the admin listener serves them. */
static void test_metrics_admin_only(void **state)
{
    (void)state;
    env *e = &g_env;
    start_routing(e);
    th_response r;
    assert_int_equal(get(e->port, "/healthz", NULL, &r), 200);
    th_response_free(&r);
    assert_int_equal(get(e->port, "/api/things/x", NULL, &r), 200); /* counted in the metrics */
    th_response_free(&r);
    assert_int_equal(get(e->port, "/metrics", NULL, &r), 404);
    assert_non_null(strstr(th_header(&r, "content-type"), "problem+json"));
    assert_null(strstr(r.body, "http_server_connections"));
    th_response_free(&r);
    assert_int_equal(get(e->port, "/nowhere-5150/x", NULL, &r), 404);
    th_response_free(&r);
    assert_int_equal(get(e->admin, "/metrics", NULL, &r), 200);
    assert_non_null(strstr(r.body, "http_server_connections"));
    /* The route label is the matched route's path or template, never the raw path. */
    assert_non_null(strstr(r.body, "service_requests_total{service=\"gateway\",method=\"GET\","
                                   "route=\"/api/things\",status=\"200\"} 1\n"));
    assert_non_null(strstr(r.body, "route=\"/healthz\",status=\"200\"} 1\n"));
    assert_non_null(strstr(r.body, "route=\"unmatched\",status=\"404\"}"));
    assert_null(strstr(r.body, "5150"));
    assert_non_null(strstr(r.body, "\nprocess_open_fds "));
    assert_non_null(strstr(r.body, "\nbuild_info{version=\""));
    promtool_check_metrics(r.body, r.body_len);
    th_response_free(&r);
    int ready = 0;
    for (int i = 0; i < 50 && !ready; i++) {
        ready = get(e->port, "/readyz", NULL, &r) == 200;
        th_response_free(&r);
        if (!ready) usleep(100 * 1000);
    }
    assert_true(ready);
    env_fini(e);
}

/* ---- aggregation --------------------------------------------------------------------------------
 */

static const char *agg_yaml =
    "service: {workers: 1}\n"
    "clusters:\n"
    "  user: {endpoints: [127.0.0.1:%d], retry: {max_retries: 0}}\n"
    "  order: {endpoints: [127.0.0.1:%d], retry: {max_retries: 0}}\n"
    "  product: {endpoints: [127.0.0.1:%d], retry: {max_retries: 0},\n"
    "            breaker: {failure_threshold: 2, recovery_timeout_ms: 60000}}\n"
    "auth: {jwks: {cluster: user}}\n"
    "aggregates:\n"
    "  user_orders:\n"
    "    parts:\n"
    "      - {name: user, cluster: user, path: \"/users/{user_id}\", share: 0.5}\n"
    "      - {name: orders, cluster: order, path: \"/orders?user_id={user_id}&per_page=100\", "
    "select: items, share: 0.5}\n"
    "    enrich:\n"
    "      - {name: product_details, cluster: product, target: orders, list: items, id: "
    "product_id,\n"
    "         set: product_details, path: \"/products?ids={ids}\", result: items, key: "
    "product_id,\n"
    "         share: 0.4, on_error: degrade}\n"
    "routes:\n"
    "  - {name: user-orders, match: {template: \"/api/v1/users/{user_id}/orders\", methods: "
    "[GET]},\n"
    "     aggregate: user_orders, auth: authenticated, owner_param: user_id, timeout_ms: 1000}\n";

static json_t *agg_get(env *e, const char *tok, const char *uid, int want)
{
    char hdr[4096], path[128];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", tok);
    snprintf(path, sizeof path, "/api/v1/users/%s/orders", uid);
    th_response r;
    assert_int_equal(get(e->port, path, hdr, &r), want);
    json_t *j = body_json(&r);
    th_response_free(&r);
    return j;
}

static void test_aggregation(void **state)
{
    (void)state;
    env *e = &g_env;
    env_init(e);
    int u = up_start(e, "user"), o = up_start(e, "order"), p = up_start(e, "product");
    char yaml[4096];
    snprintf(yaml, sizeof yaml, agg_yaml, u, o, p);
    gw_config(e, yaml);
    gw_start(e);
    char *tok = token(e->key, "u1", "customer");

    json_t *j = agg_get(e, tok, "u1", 200);
    char *s = json_dumps(j, JSON_COMPACT);
    /* Declared order, product_details aligned with items (unknown p9 → null), identity forwarded.
     */
    assert_non_null(strstr(s, "{\"user\":{"));
    assert_non_null(strstr(s, "\"orders\":[{\"order_id\":\"o1\""));
    assert_null(json_object_get(j, "warnings"));
    assert_string_equal(jstr(json_object_get(j, "user"), "identity"), "ok");
    json_t *o1 = json_array_get(json_object_get(j, "orders"), 0);
    assert_string_equal(jstr(o1, "identity"), "ok");
    json_t *pd = json_object_get(o1, "product_details");
    assert_int_equal(json_array_size(pd), 2);
    assert_string_equal(jstr(json_array_get(pd, 0), "product_id"), "p1");
    assert_true(json_is_null(json_array_get(pd, 1)));
    json_t *pd2 =
        json_object_get(json_array_get(json_object_get(j, "orders"), 1), "product_details");
    assert_string_equal(jstr(json_array_get(pd2, 0), "product_id"), "p2");
    assert_string_equal(jstr(json_array_get(pd2, 1), "product_id"), "p1");
    free(s);
    json_decref(j);

    /* Not the caller's: 403 at the edge. A 4xx from a required part passes through. */
    json_decref(agg_get(e, tok, "u2", 403));
    char *adm = token(e->key, "boss", "admin");
    json_decref(agg_get(e, adm, "missing", 404));

    /* Product failing: degraded, null + a warning. */
    up_mode(e, "product", "fail");
    j = agg_get(e, tok, "u1", 200);
    o1 = json_array_get(json_object_get(j, "orders"), 0);
    assert_true(json_is_null(json_object_get(o1, "product_details")));
    json_t *w = json_array_get(json_object_get(j, "warnings"), 0);
    assert_string_equal(jstr(w, "part"), "product_details");
    assert_string_equal(jstr(w, "reason"), "http_500");
    json_decref(j);
    j = agg_get(e, tok, "u1", 200);
    w = json_array_get(json_object_get(j, "warnings"), 0);
    assert_string_equal(jstr(w, "reason"), "http_500");
    json_decref(j);
    /* Two failures opened the product breaker: degraded without calling it. */
    long calls = up_count(e->up_ports[2]);
    j = agg_get(e, tok, "u1", 200);
    w = json_array_get(json_object_get(j, "warnings"), 0);
    assert_string_equal(jstr(w, "reason"), "breaker_open");
    json_decref(j);
    assert_int_equal(up_count(e->up_ports[2]), calls);
    /* A required part failing fails the request: 5xx → 502, slow → 504. */
    up_mode(e, "user", "fail");
    json_decref(agg_get(e, tok, "u1", 502));
    up_mode(e, "user", "slow");
    json_decref(agg_get(e, tok, "u1", 504));
    free(tok);
    free(adm);
    env_fini(e);
}

static void test_aggregation_slow_part(void **state)
{
    (void)state;
    env *e = &g_env;
    env_init(e);
    int u = up_start(e, "user"), o = up_start(e, "order"), p = up_start(e, "product");
    char yaml[4096];
    snprintf(yaml, sizeof yaml, agg_yaml, u, o, p);
    gw_config(e, yaml);
    gw_start(e);
    char *tok = token(e->key, "u1", "customer");
    up_mode(e, "product", "slow"); /* 3 s, the part's share is 0.4 × 1 s */
    json_t *j = agg_get(e, tok, "u1", 200);
    json_t *w = json_array_get(json_object_get(j, "warnings"), 0);
    assert_string_equal(jstr(w, "part"), "product_details");
    assert_string_equal(jstr(w, "reason"), "timeout");
    assert_non_null(json_object_get(j, "user"));
    json_decref(j);
    free(tok);
    env_fini(e);
}

/* ---- reload -------------------------------------------------------------------------------------
 */

static const char *reload_yaml =
    "service: {workers: 2}\n"
    "clusters:\n"
    "  a: {endpoints: [127.0.0.1:%d], retry: {per_try_timeout_ms: 5000}}\n"
    "routes:\n"
    "  - {name: slow, match: {path: /slow}, cluster: a, timeout_ms: 5000}\n"
    "  - {name: %s, match: {prefix: /api}, rewrite: %s, cluster: a}\n";

static void test_reload(void **state)
{
    (void)state;
    env *e = &g_env;
    env_init(e);
    int a = up_start(e, "a");
    char yaml[2048];
    snprintf(yaml, sizeof yaml, reload_yaml, a, "v1", "/v1");
    gw_config(e, yaml);
    gw_start(e);
    /* A request in flight (1.5 s upstream) across the reload. */
    int fd = th_connect(e->port);
    assert_true(fd >= 0);
    const char *slow = "GET /slow?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(th_send(fd, slow, strlen(slow)), 0);
    usleep(200 * 1000);
    snprintf(yaml, sizeof yaml, reload_yaml, a, "v2", "/v2");
    gw_config(e, yaml);
    assert_int_equal(kill(e->gw, SIGHUP), 0);
    th_response r;
    int switched = 0;
    for (int i = 0; i < 50 && !switched; i++) {
        usleep(50 * 1000);
        assert_int_equal(get(e->port, "/api/x", NULL, &r), 200);
        switched = strstr(r.body, "\"target\":\"/v2/x\"") != NULL;
        th_response_free(&r);
    }
    assert_true(switched);
    th_reader rb;
    th_reader_init(&rb, fd);
    assert_int_equal(th_read_response(&rb, &r, 5000), 0);
    assert_int_equal(r.status, 200); /* finished on the old generation */
    th_response_free(&r);
    close(fd);

    /* A bad file is rejected; the current configuration keeps serving. */
    gw_config(e, "routes: [{match: {prefix: /x}, cluster: nosuch}]\n");
    assert_int_equal(kill(e->gw, SIGHUP), 0);
    usleep(300 * 1000);
    assert_int_equal(get(e->port, "/api/y", NULL, &r), 200);
    assert_non_null(strstr(r.body, "\"target\":\"/v2/y\""));
    th_response_free(&r);
    char logp[400];
    snprintf(logp, sizeof logp, "%s/gateway.log", e->dir);
    FILE *f = fopen(logp, "r");
    assert_non_null(f);
    char line[2048];
    int rejected = 0;
    while (fgets(line, sizeof line, f))
        rejected |= strstr(line, "configuration rejected") && strstr(line, "names no cluster");
    fclose(f);
    assert_true(rejected);
    env_fini(e);
}

/* ---- CORS
 * ----------------------------------------------------------------------------------------- */

static void test_cors(void **state)
{
    (void)state;
    env *e = &g_env;
    env_init(e);
    int a = up_start(e, "a");
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "cors: {allow_origins: [\"http://shop.test\"]}\n"
             "clusters: {a: {endpoints: [127.0.0.1:%d]}}\n"
             "routes: [{name: x, match: {prefix: /api}, cluster: a}]\n",
             a);
    gw_config(e, yaml);
    gw_start(e);
    th_response r;
    long before = up_count(a);
    assert_int_equal(req(e->port, &r,
                         "OPTIONS /api/x HTTP/1.1\r\nHost: t\r\nOrigin: http://shop.test\r\n"
                         "Access-Control-Request-Method: POST\r\n\r\n"),
                     204);
    assert_string_equal(th_header(&r, "access-control-allow-origin"), "http://shop.test");
    assert_non_null(th_header(&r, "access-control-allow-methods"));
    th_response_free(&r);
    assert_int_equal(req(e->port, &r,
                         "OPTIONS /api/x HTTP/1.1\r\nHost: t\r\nOrigin: http://evil.test\r\n"
                         "Access-Control-Request-Method: POST\r\n\r\n"),
                     403);
    th_response_free(&r);
    assert_int_equal(up_count(a), before); /* preflights are answered at the edge */
    assert_int_equal(get(e->port, "/api/x", "Origin: http://shop.test\r\n", &r), 200);
    assert_string_equal(th_header(&r, "access-control-allow-origin"), "http://shop.test");
    th_response_free(&r);
    env_fini(e);
}

static int teardown(void **state)
{
    (void)state;
    env_fini(&g_env);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "upstream") == 0) return upstream_main(argc, argv);
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (n <= 0) return 1;
    self_exe[n] = '\0';
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_routing_and_rewrite, teardown),
        cmocka_unit_test_teardown(test_header_hygiene, teardown),
        cmocka_unit_test_teardown(test_rate_limit, teardown),
        cmocka_unit_test_teardown(test_smuggling, teardown),
        cmocka_unit_test_teardown(test_auth_and_identity, teardown),
        cmocka_unit_test_teardown(test_jwks_pin, teardown),
        cmocka_unit_test_teardown(test_breaker_isolation_recovery, teardown),
        cmocka_unit_test_teardown(test_metrics_admin_only, teardown),
        cmocka_unit_test_teardown(test_aggregation, teardown),
        cmocka_unit_test_teardown(test_aggregation_slow_part, teardown),
        cmocka_unit_test_teardown(test_reload, teardown),
        cmocka_unit_test_teardown(test_cors, teardown),
    };
    if (getenv("GW_TEST")) cmocka_set_test_filter(getenv("GW_TEST"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
