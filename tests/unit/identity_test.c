/*
 * Unit tests for signed identity headers (v2): what a proof is bound to (callee, method, full
 * target, Idempotency-Key, body), the window, per-edge keys and the caller's role policy, the
 * replay cache (replays refused, a full cache refuses, expired nonces make room), key files.
 */
#include <shoal/identity.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static sl_slice S(const char *s)
{
    return (sl_slice){s, strlen(s)};
}

static const int64_t NOW = 1795869296000;
static const int64_t WINDOW = 10000;
static sl_identity_key master, other_master;
/* payment's key file: gateway→payment (end users), order→payment (service only). */
static sl_identity_keyring payment_ring;
/* order's key file: order→payment, order→inventory. */
static sl_identity_keyring order_ring;
static const uint8_t NONCE1[SL_IDENTITY_NONCE_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

static int setup(void **state)
{
    (void)state;
    memset(master.k, 1, sizeof master.k);
    memset(other_master.k, 2, sizeof other_master.k);
    payment_ring.n = order_ring.n = 2;
    assert_int_equal(sl_identity_edge_derive(&master, "gateway", "payment", "customer,admin",
                                             &payment_ring.e[0]),
                     0);
    assert_int_equal(
        sl_identity_edge_derive(&master, "order", "payment", "service", &payment_ring.e[1]), 0);
    order_ring.e[0] = payment_ring.e[1];
    assert_int_equal(
        sl_identity_edge_derive(&master, "order", "inventory", "service", &order_ring.e[1]), 0);
    return 0;
}

static sl_identity_msg charge(const char *target, const char *body)
{
    return (sl_identity_msg){.callee = "payment",
                             .method = SL_HTTP_POST,
                             .target = S(target),
                             .body = body,
                             .body_len = strlen(body)};
}

static int check(const sl_identity_keyring *ring, const char *uid, const char *role,
                 const char *proof, const sl_identity_msg *m, int64_t now,
                 sl_identity_replay *replay, sl_identity *out)
{
    sl_http_header h[3] = {
        {S("X-User-Id"), S(uid)}, {S("x-user-role"), S(role)}, {S("x-shoal-identity"), S(proof)}};
    return sl_identity_verify(ring, h, 3, m, now, WINDOW, replay, out);
}

static void test_round_trip(void **state)
{
    (void)state;
    char proof[SL_IDENTITY_PROOF_MAX];
    sl_identity_msg m = charge("/wallet/transfers?x=1", "{\"amount\":5}");
    assert_int_equal(
        sl_identity_sign(&payment_ring.e[0], "u-123", "customer", &m, NOW, NONCE1, proof), 0);
    assert_int_equal(strncmp(proof, "v2.gateway.", 11), 0);
    sl_identity id;
    assert_int_equal(check(&payment_ring, "u-123", "customer", proof, &m, NOW + 500, NULL, &id), 0);
    assert_string_equal(id.user_id, "u-123");
    assert_string_equal(id.role, "customer");
    assert_string_equal(id.caller, "gateway");
}

/* A captured proof does not carry over to another body, query, service, method or key. */
static void test_binding(void **state)
{
    (void)state;
    char proof[SL_IDENTITY_PROOF_MAX];
    sl_identity_msg m = charge("/wallet/transfers?to=bob", "{\"amount\":5}");
    assert_int_equal(
        sl_identity_sign(&payment_ring.e[0], "u-1", "customer", &m, NOW, NONCE1, proof), 0);
    sl_identity id;
    sl_identity_msg x = charge("/wallet/transfers?to=bob", "{\"amount\":500}");
    assert_int_equal(check(&payment_ring, "u-1", "customer", proof, &x, NOW, NULL, &id), SL_EINVAL);
    x = charge("/wallet/transfers?to=eve", "{\"amount\":5}");
    assert_int_equal(check(&payment_ring, "u-1", "customer", proof, &x, NOW, NULL, &id), SL_EINVAL);
    x = charge("/wallet/transfers", "{\"amount\":5}");
    assert_int_equal(check(&payment_ring, "u-1", "customer", proof, &x, NOW, NULL, &id), SL_EINVAL);
    x = m;
    x.method = SL_HTTP_PUT;
    assert_int_equal(check(&payment_ring, "u-1", "customer", proof, &x, NOW, NULL, &id), SL_EINVAL);
    x = m;
    x.idempotency_key = S("k-2");
    assert_int_equal(check(&payment_ring, "u-1", "customer", proof, &x, NOW, NULL, &id), SL_EINVAL);
    /* Another service: the same request sent to inventory has no gateway key there... */
    x = m;
    x.callee = "inventory";
    assert_int_equal(check(&order_ring, "u-1", "customer", proof, &x, NOW, NULL, &id), SL_EINVAL);
    /* ...and a key for another edge does not verify as this one. */
    sl_identity_keyring forged = {.n = 1};
    assert_int_equal(
        sl_identity_edge_derive(&other_master, "gateway", "payment", "*", &forged.e[0]), 0);
    assert_int_equal(check(&forged, "u-1", "customer", proof, &m, NOW, NULL, &id), SL_EINVAL);
    /* Another identity under the same proof. */
    assert_int_equal(check(&payment_ring, "u-2", "customer", proof, &m, NOW, NULL, &id), SL_EINVAL);
    assert_int_equal(check(&payment_ring, "u-1", "admin", proof, &m, NOW, NULL, &id), SL_EINVAL);
    /* Tampered MAC, nonce or caller. */
    char bad[SL_IDENTITY_PROOF_MAX];
    snprintf(bad, sizeof bad, "%s", proof);
    bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == '0' ? '1' : '0';
    assert_int_equal(check(&payment_ring, "u-1", "customer", bad, &m, NOW, NULL, &id), SL_EINVAL);
    snprintf(bad, sizeof bad, "%s", proof);
    char *nonce = strchr(strchr(bad + 11, '.') + 1, '.') - 24;
    nonce[0] = nonce[0] == '0' ? '1' : '0';
    assert_int_equal(check(&payment_ring, "u-1", "customer", bad, &m, NOW, NULL, &id), SL_EINVAL);
    snprintf(bad, sizeof bad, "v2.order.%s", proof + 11);
    assert_int_equal(check(&payment_ring, "u-1", "customer", bad, &m, NOW, NULL, &id), SL_EINVAL);
}

static void test_window(void **state)
{
    (void)state;
    char proof[SL_IDENTITY_PROOF_MAX];
    sl_identity_msg m = charge("/charges", "{}");
    assert_int_equal(
        sl_identity_sign(&payment_ring.e[0], "u-1", "customer", &m, NOW, NONCE1, proof), 0);
    sl_identity id;
    assert_int_equal(check(&payment_ring, "u-1", "customer", proof, &m, NOW + WINDOW, NULL, &id),
                     0);
    assert_int_equal(
        check(&payment_ring, "u-1", "customer", proof, &m, NOW + WINDOW + 1, NULL, &id), SL_EINVAL);
    assert_int_equal(
        check(&payment_ring, "u-1", "customer", proof, &m, NOW - WINDOW - 1, NULL, &id), SL_EINVAL);
}

/* The order service's key for order→payment cannot produce an admin identity payment accepts. */
static void test_role_policy(void **state)
{
    (void)state;
    char proof[SL_IDENTITY_PROOF_MAX];
    sl_identity_msg m = charge("/charges", "{\"order_id\":\"o-1\"}");
    const sl_identity_edge *order_pay =
        sl_identity_keyring_find(&order_ring, "order", 5, "payment");
    assert_non_null(order_pay);
    assert_int_equal(sl_identity_sign(order_pay, "root", "admin", &m, NOW, NONCE1, proof), 0);
    sl_identity id;
    assert_int_equal(check(&payment_ring, "root", "admin", proof, &m, NOW, NULL, &id),
                     SL_ECONFLICT);
    assert_int_equal(sl_identity_sign(order_pay, "svc:order", "service", &m, NOW, NONCE1, proof),
                     0);
    assert_int_equal(check(&payment_ring, "svc:order", "service", proof, &m, NOW, NULL, &id), 0);
    /* Nor can order pose as the gateway: the proof names its caller, whose key it lacks. */
    char forged[SL_IDENTITY_PROOF_MAX + 8];
    assert_int_equal(sl_identity_sign(order_pay, "root", "admin", &m, NOW, NONCE1, proof), 0);
    snprintf(forged, sizeof forged, "v2.gateway.%s", proof + strlen("v2.order."));
    assert_int_equal(check(&payment_ring, "root", "admin", forged, &m, NOW, NULL, &id), SL_EINVAL);
    /* The gateway's edge allows end-user roles only. */
    assert_int_equal(sl_identity_sign(&payment_ring.e[0], "x", "service", &m, NOW, NONCE1, proof),
                     0);
    assert_int_equal(check(&payment_ring, "x", "service", proof, &m, NOW, NULL, &id), SL_ECONFLICT);
    /* Signing for a callee the edge is not for is refused. */
    sl_identity_msg inv = m;
    inv.callee = "inventory";
    assert_int_equal(sl_identity_sign(order_pay, "svc:order", "service", &inv, NOW, NONCE1, proof),
                     SL_EINVAL);
}

static void test_replays(void **state)
{
    (void)state;
    sl_identity_replay *rc = NULL;
    assert_int_equal(sl_identity_replay_new(1024, &rc), 0);
    char proof[SL_IDENTITY_PROOF_MAX];
    sl_identity_msg m = charge("/wallet/transfers", "{\"amount\":5}");
    assert_int_equal(
        sl_identity_sign(&payment_ring.e[0], "u-1", "customer", &m, NOW, NONCE1, proof), 0);
    sl_identity id;
    assert_int_equal(check(&payment_ring, "u-1", "customer", proof, &m, NOW, rc, &id), 0);
    assert_int_equal(check(&payment_ring, "u-1", "customer", proof, &m, NOW + 1, rc, &id),
                     SL_EEXIST);
    /* A retry the callee absorbs anyway may repeat: a GET, or a command with its key. */
    sl_identity_msg keyed = m;
    keyed.idempotency_key = S("k-1");
    assert_int_equal(
        sl_identity_sign(&payment_ring.e[0], "u-1", "customer", &keyed, NOW, NONCE1, proof), 0);
    assert_int_equal(check(&payment_ring, "u-1", "customer", proof, &keyed, NOW, rc, &id), 0);
    assert_int_equal(check(&payment_ring, "u-1", "customer", proof, &keyed, NOW, rc, &id), 0);
    /* The same rule as the client's retries: idempotent methods repeat, a POST does not. */
    sl_identity_msg del = {.callee = "payment", .method = SL_HTTP_DELETE, .target = S("/x/1")};
    assert_int_equal(
        sl_identity_sign(&payment_ring.e[0], "u-1", "customer", &del, NOW, NONCE1, proof), 0);
    assert_int_equal(check(&payment_ring, "u-1", "customer", proof, &del, NOW, rc, &id), 0);
    assert_int_equal(check(&payment_ring, "u-1", "customer", proof, &del, NOW, rc, &id), 0);
    sl_identity_replay_free(rc);
}

static void test_replay_cache_bounds(void **state)
{
    (void)state;
    sl_identity_replay *rc = NULL;
    assert_int_equal(sl_identity_replay_new(0, &rc), SL_EINVAL);
    assert_int_equal(sl_identity_replay_new(1, &rc), 0); /* 64 slots */
    uint8_t n[SL_IDENTITY_NONCE_BYTES] = {0};
    /* Nonces that all start at the same slot fill its probe window, then the cache refuses. */
    int full = 0;
    for (int i = 0; i < 200 && !full; i++) {
        n[11] = (uint8_t)i;
        n[10] = (uint8_t)(i >> 8);
        int r = sl_identity_replay_check(rc, n, NOW + 1000, NOW);
        if (r == SL_ELIMIT)
            full = i;
        else
            assert_int_equal(r, 0);
    }
    assert_int_equal(full, 64);
    /* Once those proofs have expired their slots serve again. */
    n[11] = 250;
    assert_int_equal(sl_identity_replay_check(rc, n, NOW + 3000, NOW + 1001), 0);
    assert_int_equal(sl_identity_replay_check(rc, n, NOW + 3000, NOW + 1002), SL_EEXIST);
    sl_identity_replay_free(rc);
}

static void test_malformed(void **state)
{
    (void)state;
    sl_identity id;
    sl_identity_msg m = charge("/charges", "{}");
    sl_http_header only_user[1] = {{S("x-user-id"), S("u")}};
    assert_int_equal(sl_identity_verify(&payment_ring, only_user, 1, &m, NOW, WINDOW, NULL, &id),
                     SL_EINVAL);
    sl_http_header none[1] = {{S("accept"), S("*/*")}};
    assert_int_equal(sl_identity_verify(&payment_ring, none, 1, &m, NOW, WINDOW, NULL, &id),
                     SL_ENOTFOUND);
    const char *bad[] = {"v1.1.aa",          "v2.",
                         "v2.gateway",       "v2.gateway.12",
                         "v2.Gateway.1.x.y", "v2.gateway.1.000000000000000000000000.00"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(check(&payment_ring, "u", "customer", bad[i], &m, NOW, NULL, &id),
                         SL_EINVAL);
    char proof[SL_IDENTITY_PROOF_MAX];
    assert_int_equal(sl_identity_sign(&payment_ring.e[0], "", "customer", &m, NOW, NONCE1, proof),
                     SL_EINVAL);
    assert_int_equal(
        sl_identity_sign(&payment_ring.e[0], "a b", "customer", &m, NOW, NONCE1, proof), SL_EINVAL);
    sl_identity_msg nl = charge("/charges\nx", "{}");
    assert_int_equal(sl_identity_sign(&payment_ring.e[0], "u", "customer", &nl, NOW, NONCE1, proof),
                     SL_EINVAL);
}

static void test_key_files(void **state)
{
    (void)state;
    char path[] = "/tmp/shoal-idkey-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    sl_identity_key a, b;
    char err[256];
    assert_int_equal(sl_identity_key_ensure(path, &a, err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(sl_identity_key_ensure(path, &b, err), 0); /* loads the existing one */
    assert_memory_equal(a.k, b.k, sizeof a.k);
    FILE *f = fopen(path, "w");
    fputs("not hex\n", f);
    fclose(f);
    assert_int_equal(sl_identity_key_load(path, &b, err), SL_EINVAL);
    unlink(path);
    assert_int_equal(sl_identity_key_load(path, &b, err), SL_EIO);

    /* Edge key files: written owner-only, read back identical; a bad line is refused. */
    assert_int_equal(sl_identity_keyring_write(path, payment_ring.e, payment_ring.n, err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    sl_identity_keyring r;
    assert_int_equal(sl_identity_keyring_load(path, &r, err), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.e[1].caller, "order");
    assert_string_equal(r.e[1].callee, "payment");
    assert_string_equal(r.e[1].roles, "service");
    assert_memory_equal(r.e[1].key.k, payment_ring.e[1].key.k, SL_IDENTITY_KEY_BYTES);
    assert_true(sl_identity_edge_allows(&r.e[0], "admin", 5));
    assert_false(sl_identity_edge_allows(&r.e[0], "admi", 4));
    f = fopen(path, "a");
    fputs("v2 order Payment service 00\n", f);
    fclose(f);
    assert_int_equal(sl_identity_keyring_load(path, &r, err), SL_EINVAL);
    assert_null(strstr(err, "00")); /* names the line, never key material */
    unlink(path);
    sl_identity_edge e;
    assert_int_equal(sl_identity_edge_derive(&master, "Order", "payment", "service", &e),
                     SL_EINVAL);
    assert_int_equal(sl_identity_edge_derive(&master, "order", "payment", "a,,b", &e), SL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_binding),
        cmocka_unit_test(test_window),     cmocka_unit_test(test_role_policy),
        cmocka_unit_test(test_replays),    cmocka_unit_test(test_replay_cache_bounds),
        cmocka_unit_test(test_malformed),  cmocka_unit_test(test_key_files),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
