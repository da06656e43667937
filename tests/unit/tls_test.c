/*
 * The TLS module without sockets: the pure parts (reasons, SPIFFE IDs, the
 * revocation list) and two engines exchanging real TLS 1.3 records in
 * memory, with certificates made by sl_tls_pki_* into a scratch directory:
 * the server sees the client's identity, a second connection resumes the
 * session, and each kind of bad peer is refused with its reason.
 */
#include <shoal/metrics.h>
#include <shoal/tls.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[64];

static void put(const char *name, const char *text)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static char *ca_pem, *ca_key;

/* Issues `name` by the main CA (or `other` CA) into <name>.pem/.key; returns the serial. */
static char *issue(const char *file, const char *svc, const char *cacert, const char *cakey,
                   int64_t nb, int64_t na)
{
    char *cert = NULL, *key = NULL, *serial = NULL, f[64];
    assert_int_equal(sl_tls_pki_issue(cacert, cakey, svc, nb, na, &cert, &key, &serial), 0);
    snprintf(f, sizeof f, "%s.pem", file);
    put(f, cert);
    snprintf(f, sizeof f, "%s.key", file);
    put(f, key);
    free(cert);
    free(key);
    return serial;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/shoal-tls-unit-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    int64_t now = (int64_t)time(NULL);
    if (sl_tls_pki_make_ca("unit CA", now - 60, now + 86400, &ca_pem, &ca_key) != 0) return -1;
    put("ca.pem", ca_pem);
    char *ocert, *okey;
    if (sl_tls_pki_make_ca("other CA", now - 60, now + 86400, &ocert, &okey) != 0) return -1;
    free(issue("server", "inventory", ca_pem, ca_key, now - 60, now + 3600));
    free(issue("client", "order", ca_pem, ca_key, now - 60, now + 3600));
    free(issue("expired", "order", ca_pem, ca_key, now - 7200, now - 3600));
    free(issue("foreign", "order", ocert, okey, now - 60, now + 3600));
    char *serial = issue("revoked", "order", ca_pem, ca_key, now - 60, now + 3600);
    char list[256];
    snprintf(list, sizeof list, "# revoked\n%s # order\n", serial);
    put("revoked.txt", list);
    free(serial);
    free(ocert);
    free(okey);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(ca_pem);
    free(ca_key);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static sl_tls_ctx *server_ctx(void)
{
    char cert[128], key[128], ca[128], rev[128];
    path(cert, sizeof cert, "server.pem");
    path(key, sizeof key, "server.key");
    path(ca, sizeof ca, "ca.pem");
    path(rev, sizeof rev, "revoked.txt");
    sl_tls_config cfg = {.server = true,
                         .cert_file = cert,
                         .key_file = key,
                         .ca_file = ca,
                         .revoked_file = rev,
                         .require_client_cert = true,
                         .mesh = true};
    sl_tls_ctx *ctx = NULL;
    char err[256];
    int rc = sl_tls_ctx_new(&cfg, &ctx, err, sizeof err);
    if (rc != 0) fail_msg("server ctx: %s", err);
    return ctx;
}

static sl_tls_ctx *client_ctx(const char *leaf, const char *expect)
{
    char cert[128], key[128], ca[128], f[64];
    snprintf(f, sizeof f, "%s.pem", leaf ? leaf : "");
    path(cert, sizeof cert, f);
    snprintf(f, sizeof f, "%s.key", leaf ? leaf : "");
    path(key, sizeof key, f);
    path(ca, sizeof ca, "ca.pem");
    sl_tls_config cfg = {.cert_file = leaf ? cert : NULL,
                         .key_file = leaf ? key : NULL,
                         .ca_file = ca,
                         .mesh = true,
                         .expect_peer = expect};
    sl_tls_ctx *ctx = NULL;
    char err[256];
    int rc = sl_tls_ctx_new(&cfg, &ctx, err, sizeof err);
    if (rc != 0) fail_msg("client ctx: %s", err);
    return ctx;
}

/* Moves every pending byte from `a`'s output to `b`'s input. */
static size_t pass(sl_tls_conn *a, sl_tls_conn *b)
{
    char buf[16384];
    size_t total = 0, n;
    while ((n = sl_tls_conn_out(a, buf, sizeof buf)) > 0) {
        assert_int_equal(sl_tls_conn_feed(b, buf, n), 0);
        total += n;
    }
    return total;
}

/* Runs both sides until neither has anything to say; then sends "ping" client→server and
 * "pong" back. Returns 0 when both got their message, else the failing side's code. */
static int exchange(sl_tls_conn *cl, sl_tls_conn *sv)
{
    char buf[64];
    size_t n = 0;
    int crc = SL_EAGAIN, src = SL_EAGAIN;
    for (int round = 0; round < 20; round++) {
        if (crc == SL_EAGAIN) crc = sl_tls_conn_handshake(cl);
        size_t moved = pass(cl, sv);
        if (src == SL_EAGAIN) src = sl_tls_conn_handshake(sv);
        moved += pass(sv, cl);
        if (crc != SL_EAGAIN && src != SL_EAGAIN && moved == 0) break;
    }
    if (crc != 0) return crc;
    if (src != 0) return src;
    if (sl_tls_conn_write(cl, "ping", 4) != 0) return SL_EIO;
    pass(cl, sv);
    int rc = sl_tls_conn_read(sv, buf, sizeof buf, &n);
    pass(sv, cl);
    if (rc != 0) return rc;
    if (n != 4 || memcmp(buf, "ping", 4) != 0) return SL_EPARSE;
    if (sl_tls_conn_write(sv, "pong", 4) != 0) return SL_EIO;
    pass(sv, cl);
    rc = sl_tls_conn_read(cl, buf, sizeof buf, &n);
    if (rc != 0) return rc;
    return n == 4 && memcmp(buf, "pong", 4) == 0 ? 0 : SL_EPARSE;
}

static void test_pure(void **state)
{
    (void)state;
    char id[SL_TLS_SPIFFE_MAX + 1], name[SL_TLS_NAME_MAX + 1];
    assert_int_equal(sl_tls_spiffe_format("order", id, sizeof id), 0);
    assert_string_equal(id, "spiffe://shoal.local/svc/order");
    assert_int_equal(sl_tls_spiffe_parse(id, strlen(id), name), 0);
    assert_string_equal(name, "order");
    assert_int_equal(sl_tls_spiffe_format("Order", id, sizeof id), SL_EINVAL);
    assert_int_equal(sl_tls_spiffe_format("-x", id, sizeof id), SL_EINVAL);
    assert_int_equal(sl_tls_spiffe_format("", id, sizeof id), SL_EINVAL);
    assert_int_equal(sl_tls_spiffe_format("order", id, 10), SL_ELIMIT);
    const char *bad[] = {"spiffe://shoal.local/svc/", "spiffe://other/svc/order",
                         "spiffe://shoal.local/svc/a/b", "spiffe://shoal.local/svc/a b",
                         "https://shoal.local/svc/order"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(sl_tls_spiffe_parse(bad[i], strlen(bad[i]), name), SL_EINVAL);
    assert_string_equal(sl_tls_reason_name(SL_TLS_WRONG_SAN), "wrong_san");
    assert_string_equal(sl_tls_reason_name(SL_TLS_REASON_COUNT), "unknown");
    assert_int_equal(sl_tls_reason_of_verify(10 /* X509_V_ERR_CERT_HAS_EXPIRED */), SL_TLS_EXPIRED);
    assert_int_equal(sl_tls_reason_of_verify(20 /* UNABLE_TO_GET_ISSUER_CERT_LOCALLY */),
                     SL_TLS_UNKNOWN_CA);
    assert_int_equal(sl_tls_reason_of_verify(0), SL_TLS_OK);

    sl_tls_revoked r;
    size_t bad_line = 0;
    const char *txt = "# list\n\n00AbC1 # order\r\n  ff\n";
    assert_int_equal(sl_tls_revoked_parse(txt, strlen(txt), &r, &bad_line), 0);
    assert_int_equal(r.n, 2);
    assert_true(sl_tls_revoked_has(&r, "abc1"));
    assert_true(sl_tls_revoked_has(&r, "0ABC1"));
    assert_true(sl_tls_revoked_has(&r, "FF"));
    assert_false(sl_tls_revoked_has(&r, "abc"));
    sl_tls_revoked_free(&r);
    const char *junk = "ab\nnot-hex\n";
    assert_int_equal(sl_tls_revoked_parse(junk, strlen(junk), &r, &bad_line), SL_EPARSE);
    assert_int_equal(bad_line, 2);
    const char *longer = "0123456789012345678901234567890123456789a\n";
    assert_int_equal(sl_tls_revoked_parse(longer, strlen(longer), &r, &bad_line), SL_EPARSE);
}

static void test_pki_inspect(void **state)
{
    (void)state;
    char p[128];
    path(p, sizeof p, "client.pem");
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    char pem[4096];
    size_t n = fread(pem, 1, sizeof pem, f);
    fclose(f);
    sl_tls_cert_info info;
    assert_int_equal(sl_tls_pki_inspect(pem, n, &info), 0);
    assert_string_equal(info.san, "spiffe://shoal.local/svc/order");
    assert_false(info.is_ca);
    assert_true(info.not_after - info.not_before == 3660);
    assert_non_null(strstr(info.issuer, "unit CA"));
    assert_int_equal(sl_tls_pki_inspect("junk", 4, &info), SL_EPARSE);
    char *c = NULL, *k = NULL;
    assert_int_equal(sl_tls_pki_issue(ca_pem, ca_key, "Bad Name", 0, 10, &c, &k, NULL), SL_EINVAL);
    assert_int_equal(sl_tls_pki_issue(ca_pem, ca_key, "ok", 10, 10, &c, &k, NULL), SL_EINVAL);
    assert_int_equal(sl_tls_pki_make_ca("x", 10, 5, &c, &k), SL_EINVAL);
}

static void test_identity_and_resumption(void **state)
{
    (void)state;
    sl_tls_ctx *sctx = server_ctx(), *cctx = client_ctx("client", "inventory");
    sl_tls_conn *sv, *cl;
    assert_int_equal(sl_tls_conn_new(sctx, &sv), 0);
    assert_int_equal(sl_tls_conn_new(cctx, &cl), 0);
    assert_int_equal(exchange(cl, sv), 0);
    assert_string_equal(sl_tls_conn_peer(sv), "order");
    assert_string_equal(sl_tls_conn_peer(cl), "inventory");
    assert_false(sl_tls_conn_resumed(cl));
    sl_tls_conn_free(sv);
    sl_tls_conn_free(cl);
    /* The ticket the client kept resumes the next connection; the identity comes along. */
    assert_int_equal(sl_tls_conn_new(sctx, &sv), 0);
    assert_int_equal(sl_tls_conn_new(cctx, &cl), 0);
    assert_int_equal(exchange(cl, sv), 0);
    assert_true(sl_tls_conn_resumed(cl));
    assert_true(sl_tls_conn_resumed(sv));
    assert_string_equal(sl_tls_conn_peer(sv), "order");
    uint64_t resumed = 0;
    assert_int_equal(sl_tls_ctx_handshakes(sctx, &resumed), 2);
    assert_int_equal(resumed, 1);
    sl_tls_conn_free(sv);
    sl_tls_conn_free(cl);
    sl_tls_ctx_unref(sctx);
    sl_tls_ctx_unref(cctx);
}

/* A client with `leaf` expecting `expect` is refused; the side that refuses counts `r`. */
static void refused(const char *leaf, const char *expect, sl_tls_reason r, bool by_client)
{
    sl_tls_ctx *sctx = server_ctx(), *cctx = client_ctx(leaf, expect);
    sl_tls_conn *sv, *cl;
    assert_int_equal(sl_tls_conn_new(sctx, &sv), 0);
    assert_int_equal(sl_tls_conn_new(cctx, &cl), 0);
    assert_int_equal(exchange(cl, sv), SL_EIO);
    sl_tls_ctx *judge = by_client ? cctx : sctx;
    assert_int_equal(sl_tls_ctx_failures(judge, r), 1);
    assert_int_equal(sl_tls_conn_reason(by_client ? cl : sv), r);
    uint64_t hs = sl_tls_ctx_handshakes(sctx, NULL);
    assert_int_equal(hs, 0);
    sl_tls_conn_free(sv);
    sl_tls_conn_free(cl);
    sl_tls_ctx_unref(sctx);
    sl_tls_ctx_unref(cctx);
}

/* The counters reach the metrics registry given to the context. */
static void test_metrics(void **state)
{
    (void)state;
    sl_metrics *reg = NULL;
    assert_int_equal(sl_metrics_new(1, &reg), 0);
    char cert[128], key[128], ca[128];
    path(cert, sizeof cert, "server.pem");
    path(key, sizeof key, "server.key");
    path(ca, sizeof ca, "ca.pem");
    sl_tls_config cfg = {.server = true,
                         .cert_file = cert,
                         .key_file = key,
                         .ca_file = ca,
                         .require_client_cert = true,
                         .mesh = true,
                         .metrics = reg};
    sl_tls_ctx *sctx = NULL, *again = NULL;
    assert_int_equal(sl_tls_ctx_new(&cfg, &sctx, NULL, 0), 0);
    assert_int_equal(sl_tls_ctx_reload(sctx, &cfg, &again, NULL, 0), 0); /* families reused */
    sl_tls_ctx *good = client_ctx("client", "inventory"), *bare = client_ctx(NULL, NULL);
    sl_tls_conn *sv, *cl;
    assert_int_equal(sl_tls_conn_new(again, &sv), 0);
    assert_int_equal(sl_tls_conn_new(good, &cl), 0);
    assert_int_equal(exchange(cl, sv), 0);
    sl_tls_conn_free(sv);
    sl_tls_conn_free(cl);
    assert_int_equal(sl_tls_conn_new(sctx, &sv), 0);
    assert_int_equal(sl_tls_conn_new(bare, &cl), 0);
    assert_int_equal(exchange(cl, sv), SL_EIO);
    sl_tls_conn_free(sv);
    sl_tls_conn_free(cl);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sl_metrics_render(reg, &text, &len), 0);
    assert_non_null(strstr(text, "tls_handshake_failures_total{reason=\"no_client_cert\"} 1"));
    assert_non_null(strstr(text, "tls_handshakes_total{resumed=\"false\"} 1"));
    free(text);
    sl_tls_ctx_unref(sctx);
    sl_tls_ctx_unref(again);
    sl_tls_ctx_unref(good);
    sl_tls_ctx_unref(bare);
    sl_metrics_free(reg);
}

static void test_refusals(void **state)
{
    (void)state;
    refused(NULL, "inventory", SL_TLS_NO_CLIENT_CERT, false);
    refused("foreign", "inventory", SL_TLS_UNKNOWN_CA, false);
    refused("expired", "inventory", SL_TLS_EXPIRED, false);
    refused("revoked", "inventory", SL_TLS_REVOKED, false);
    refused("client", "payment", SL_TLS_WRONG_SAN, true);
}

static void test_reload_keeps_counters(void **state)
{
    (void)state;
    sl_tls_ctx *a = server_ctx();
    sl_tls_ctx *cctx = client_ctx(NULL, NULL);
    sl_tls_conn *sv, *cl;
    assert_int_equal(sl_tls_conn_new(a, &sv), 0);
    assert_int_equal(sl_tls_conn_new(cctx, &cl), 0);
    assert_int_equal(exchange(cl, sv), SL_EIO);
    sl_tls_conn_free(cl);
    char cert[128], key[128], ca[128];
    path(cert, sizeof cert, "server.pem");
    path(key, sizeof key, "server.key");
    path(ca, sizeof ca, "ca.pem");
    sl_tls_config cfg = {.server = true,
                         .cert_file = cert,
                         .key_file = key,
                         .ca_file = ca,
                         .require_client_cert = true,
                         .mesh = true};
    sl_tls_ctx *b = NULL;
    assert_int_equal(sl_tls_ctx_reload(a, &cfg, &b, NULL, 0), 0);
    sl_tls_ctx_unref(a); /* the connection still holds it */
    assert_int_equal(sl_tls_ctx_failures(b, SL_TLS_NO_CLIENT_CERT), 1);
    sl_tls_conn_free(sv);
    cfg.key_file = ca; /* not a key */
    char err[256];
    sl_tls_ctx *c = NULL;
    assert_int_equal(sl_tls_ctx_reload(b, &cfg, &c, err, sizeof err), SL_ECONFIG);
    assert_non_null(strstr(err, "key"));
    sl_tls_ctx_unref(b);
    sl_tls_ctx_unref(cctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pure),
        cmocka_unit_test(test_pki_inspect),
        cmocka_unit_test(test_identity_and_resumption),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_reload_keeps_counters),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
