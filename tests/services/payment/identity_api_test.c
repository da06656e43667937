/*
 * The identity proof against a real service (shoal-payment over real sockets,
 * on SQLite and PostgreSQL by argv[1]), signed the way the gateway and the
 * order service sign (per-edge keys from one master secret): a proof
 * replayed with another body, another query, to another service, after the
 * window, or a second time is refused with 401 problem+json; the order
 * service's key (edge order→payment) cannot produce an admin identity
 * payment accepts (403); every refusal is counted on /metrics
 * (identity_refusals_total by reason).
 */
#include "payment.h"

#include "../svc_harness.h"

static svc_proc g_svc;

static int64_t now_ms(void)
{
    return sl_clock_wall_ms(sl_clock_system());
}

/* Sends `method target` with `body` (NULL: none) and the given identity headers; returns the
 * status, the response in *res. */
static int send_raw(const char *method, const char *target, const char *body, const char *user,
                    const char *role, const char *proof, th_response *res)
{
    char raw[4096];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(raw, sizeof raw,
                     "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nx-user-id: %s\r\n"
                     "x-user-role: %s\r\nx-shoal-identity: %s\r\n%sContent-Length: %zu\r\n\r\n%s",
                     method, target, user, role, proof,
                     body ? "Content-Type: application/json\r\n" : "", blen, body ? body : "");
    assert_true(n > 0 && (size_t)n < sizeof raw);
    memset(res, 0, sizeof *res);
    return th_roundtrip(g_svc.port, raw, (size_t)n, res, 15000);
}

/* Expects `want` with a problem+json body whose reason is `reason` (NULL: any). */
static void expect(int got, th_response *res, int want, const char *reason)
{
    if (got != want) fail_msg("status %d, want %d: %.*s", got, want, (int)res->body_len, res->body);
    if (want >= 400) {
        assert_non_null(strstr(th_header(res, "content-type"), "problem+json"));
        if (reason) {
            json_t *j = svc_json(res);
            assert_string_equal(svc_str(j, "reason"), reason);
            json_decref(j);
        }
    }
    th_response_free(res);
}

static void sign(const sl_identity_edge *edge, const char *user, const char *role,
                 sl_http_method method, const char *target, const char *body, int64_t at,
                 char proof[SL_IDENTITY_PROOF_MAX])
{
    uint8_t nonce[SL_IDENTITY_NONCE_BYTES];
    randombytes_buf(nonce, sizeof nonce);
    sl_identity_msg m = {.callee = edge->callee,
                         .method = method,
                         .target = {target, strlen(target)},
                         .body = body,
                         .body_len = body ? strlen(body) : 0};
    assert_int_equal(sl_identity_sign(edge, user, role, &m, at, nonce, proof), 0);
}

static const sl_identity_edge *gateway_edge(void)
{
    return th_idkeys_edge(&g_svc.key, "customer");
}

static void test_replays_refused(void **state)
{
    (void)state;
    char proof[SL_IDENTITY_PROOF_MAX];
    th_response r;
    const char *body = "{\"amount\":5}";
    /* Accepted once... */
    sign(gateway_edge(), "u-ann", "customer", SL_HTTP_POST, "/wallet/deposits", body, now_ms(),
         proof);
    expect(send_raw("POST", "/wallet/deposits", body, "u-ann", "customer", proof, &r), &r, 200,
           NULL);
    /* ...refused the second time... */
    expect(send_raw("POST", "/wallet/deposits", body, "u-ann", "customer", proof, &r), &r, 401,
           "identity_replayed");
    /* ...and with another body. */
    sign(gateway_edge(), "u-ann", "customer", SL_HTTP_POST, "/wallet/deposits", body, now_ms(),
         proof);
    expect(
        send_raw("POST", "/wallet/deposits", "{\"amount\":500000}", "u-ann", "customer", proof, &r),
        &r, 401, NULL);
    /* Another query. */
    sign(gateway_edge(), "u-ann", "customer", SL_HTTP_GET, "/wallet/history?per_page=1", NULL,
         now_ms(), proof);
    expect(send_raw("GET", "/wallet/history?per_page=1", NULL, "u-ann", "customer", proof, &r), &r,
           200, NULL);
    expect(send_raw("GET", "/wallet/history?per_page=50", NULL, "u-ann", "customer", proof, &r), &r,
           401, NULL);
    /* A proof made for another service (same master, edge gateway→inventory). */
    sl_identity_edge inv;
    assert_int_equal(
        sl_identity_edge_derive(&g_svc.key.master, "gateway", "inventory", "customer,admin", &inv),
        0);
    sign(&inv, "u-ann", "customer", SL_HTTP_GET, "/wallet", NULL, now_ms(), proof);
    expect(send_raw("GET", "/wallet", NULL, "u-ann", "customer", proof, &r), &r, 401, NULL);
    /* After the window (10 s by default). */
    sign(gateway_edge(), "u-ann", "customer", SL_HTTP_GET, "/wallet", NULL, now_ms() - 11000,
         proof);
    expect(send_raw("GET", "/wallet", NULL, "u-ann", "customer", proof, &r), &r, 401, NULL);
}

/* The order service's key cannot mint an admin for payment; the gateway's can. */
static void test_order_key_cannot_mint_admin(void **state)
{
    (void)state;
    char proof[SL_IDENTITY_PROOF_MAX];
    th_response r;
    sign(th_idkeys_edge(&g_svc.key, "service"), "root", "admin", SL_HTTP_GET, "/admin/audit", NULL,
         now_ms(), proof);
    expect(send_raw("GET", "/admin/audit", NULL, "root", "admin", proof, &r), &r, 403,
           "identity_role");
    sign(gateway_edge(), "root", "admin", SL_HTTP_GET, "/admin/audit", NULL, now_ms(), proof);
    expect(send_raw("GET", "/admin/audit", NULL, "root", "admin", proof, &r), &r, 200, NULL);
}

static long long refusals(const char *reason)
{
    th_response r;
    assert_int_equal(svc_req(&g_svc, "GET", "/metrics", NULL, NULL, NULL, &r), 200);
    char pat[128];
    snprintf(pat, sizeof pat, "identity_refusals_total{reason=\"%s\"} ", reason);
    const char *p = strstr(r.body, pat);
    long long n = p ? atoll(p + strlen(pat)) : 0;
    th_response_free(&r);
    return n;
}

static void test_refusals_counted(void **state)
{
    (void)state;
    /* The tests above ran first: one replay, four invalid proofs, one forbidden role. */
    assert_true(refusals("replay") >= 1);
    assert_true(refusals("invalid") >= 4);
    assert_true(refusals("role") >= 1);
}

static int setup(void **state)
{
    (void)state;
    svc_start(&g_svc, "payment", NULL, 2);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    svc_stop(&g_svc);
    return 0;
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replays_refused),
        cmocka_unit_test(test_order_key_cannot_mint_admin),
        cmocka_unit_test(test_refusals_counted),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    harness_done();
    return rc;
}
