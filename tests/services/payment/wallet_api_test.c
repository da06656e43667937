/*
 * shoal-payment over real sockets, on SQLite (argv[1] = sqlite) and
 * PostgreSQL (pg): the binary runs on a free port against a fresh database
 * with a test identity key (snapshots every 4 events, so loads go through
 * snapshots). Lazy opening, deposits, transfers, every refusal answered as a
 * problem with no event appended (stream versions checked on the test's own
 * connection), history pagination with balances from the fold, balance as
 * of a past time, charges and refunds with their idempotency, the
 * Idempotency-Key of the public API, the audit (ok, then violations after
 * injecting a bad event and a tampered read model).
 */
#include "db_harness.h"
#include "harness.h"
#include "identity_harness.h"
#include "payment.h"

#include <shoal/bus.h>
#include <shoal/clock.h>
#include <shoal/eventstore.h>
#include <shoal/identity.h>

#include <sys/wait.h>
#include <time.h>

static struct {
    char url[600];
    char key_path[256];
    th_idkeys key;
    int port;
    pid_t pid;
    sl_db *db;
} g;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup(void **state)
{
    (void)state;
    snprintf(g.key_path, sizeof g.key_path, "/tmp/payment-api-%ld.key", (long)getpid());
    char err[256];
    if (th_idkeys_make(g.key_path, "payment", &g.key, err) != 0) return -1;
    harness_fresh_url(g.url, sizeof g.url);
    g.port = th_free_port();
    char portbuf[16], dbenv[700], keyenv[300];
    snprintf(portbuf, sizeof portbuf, "%d", g.port);
    snprintf(dbenv, sizeof dbenv, "SHOAL_DB__URL=%s", g.url);
    snprintf(keyenv, sizeof keyenv, "SHOAL_IDENTITY__KEY_FILE=%s", g.key_path);
    char *argv[] = {"shoal-payment", "--port", portbuf, NULL};
    char *env[] = {dbenv, keyenv, "SHOAL_LOG__LEVEL=warn", "SHOAL_PAYMENT__SNAPSHOT_EVERY=4", NULL};
    g.pid = th_spawn(argv, env, "wallet_api_test.server.log");
    if (th_wait_port(g.port, 15000) != 0) fail_msg("shoal-payment did not start (see the log)");
    harness_open_url(g.url, &g.db);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sl_db_close(g.db);
    int st = th_stop(g.pid, SIGTERM, 10000);
    unlink(g.key_path);
    return (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) ? 0 : -1;
}

/* One request as user `uid` with `role` (NULL: no identity); extra header lines in `hdrs`. */
static int call(const char *method, const char *target, const char *uid, const char *role,
                const char *hdrs, const char *body, th_response *res)
{
    static char raw[64 * 1024];
    char ident[512] = "";
    if (role) {
        sl_http_method m = strcmp(method, "GET") == 0 ? SL_HTTP_GET : SL_HTTP_POST;
        char proof[SL_IDENTITY_PROOF_MAX], idem[128];
        assert_int_equal(th_idsign(&g.key, uid, role, m, target,
                                   th_idem_of(hdrs, idem, sizeof idem), body,
                                   body ? strlen(body) : 0, now_ms(), proof),
                         0);
        snprintf(ident, sizeof ident,
                 "x-user-id: %s\r\nx-user-role: %s\r\nx-shoal-identity: %s\r\n", uid, role, proof);
    }
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(raw, sizeof raw,
                     "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s%s%s"
                     "Content-Length: %zu\r\n\r\n",
                     method, target, ident, hdrs ? hdrs : "",
                     body ? "Content-Type: application/json\r\n" : "", blen);
    assert_true(n > 0 && (size_t)n + blen < sizeof raw);
    if (body) memcpy(raw + n, body, blen);
    th_response tmp;
    th_response *r = res ? res : &tmp;
    int status = th_roundtrip(g.port, raw, (size_t)n + blen, r, 10000);
    if (!res) th_response_free(&tmp);
    return status;
}

static json_t *call_json(const char *method, const char *target, const char *uid, const char *role,
                         const char *hdrs, const char *body, int want)
{
    th_response r;
    int st = call(method, target, uid, role, hdrs, body, &r);
    if (st != want)
        fail_msg("%s %s %s: status %d, want %d: %s", method, target, body ? body : "", st, want,
                 r.body ? r.body : "");
    json_error_t e;
    json_t *v = json_loads(r.body ? r.body : "", 0, &e);
    if (!v) fail_msg("not JSON: %s", r.body ? r.body : "");
    if (want >= 400) assert_string_equal(th_header(&r, "content-type"), "application/problem+json");
    th_response_free(&r);
    return v;
}

static int64_t amount_of(json_t *v, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(v, key), "amount"));
}

static int64_t stream_version(const char *uid)
{
    char s[PAY_STREAM_MAX];
    pay_stream_name(uid, s);
    int64_t v = -1;
    if (sl_es_stream_version(g.db, s, &v) != 0) fail_msg("version: %s", sl_db_errmsg(g.db));
    return v;
}

static int64_t total_events(void)
{
    return harness_int(g.db, "SELECT count(*) FROM es_events");
}

/* Expects a problem of `status` naming `field` (NULL: any) and no event appended. */
static void expect_refused(const char *method, const char *target, const char *uid,
                           const char *role, const char *body, int status, const char *field)
{
    int64_t before = total_events();
    json_t *v = call_json(method, target, uid, role, NULL, body, status);
    if (field) {
        json_t *errs = json_object_get(v, "errors");
        int found = 0;
        for (size_t i = 0; i < json_array_size(errs); i++)
            found |= strcmp(json_string_value(json_object_get(json_array_get(errs, i), "field")),
                            field) == 0;
        if (!found) fail_msg("%s %s: no error on '%s'", target, body ? body : "", field);
    }
    json_decref(v);
    assert_int_equal(total_events(), before);
}

static int64_t deposit(const char *uid, int64_t amount)
{
    char body[64];
    snprintf(body, sizeof body, "{\"amount\":%lld}", (long long)amount);
    json_t *v = call_json("POST", "/wallet/deposits", uid, "customer", NULL, body, 200);
    int64_t bal = amount_of(v, "balance");
    json_decref(v);
    return bal;
}

static void test_identity_required(void **state)
{
    (void)state;
    assert_int_equal(call("GET", "/wallet", NULL, NULL, NULL, NULL, NULL), 401);
    assert_int_equal(call("POST", "/wallet/deposits", NULL, NULL, NULL, "{\"amount\":5}", NULL),
                     401);
    assert_int_equal(call("POST", "/charges", "u-c", "customer", NULL, "{}", NULL), 403);
    assert_int_equal(call("POST", "/charges/o1/refund", "u-c", "customer", NULL, NULL, NULL), 403);
    assert_int_equal(call("GET", "/admin/audit", "u-c", "customer", NULL, NULL, NULL), 403);
    assert_int_equal(total_events(), 0);
}

/* A wallet exists from the first request on: GET and deposits open it on the spot; the later
 * registration event finds it and does nothing. */
static void test_lazy_open_and_registration(void **state)
{
    (void)state;
    json_t *v = call_json("GET", "/wallet", "alice", "customer", NULL, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(v, "account_id")), "alice");
    assert_int_equal(amount_of(v, "balance"), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(v, "balance"), "currency")), "JPY");
    assert_int_equal(json_integer_value(json_object_get(v, "version")), 1);
    json_decref(v);
    /* A deposit straight after registration (no AccountOpened yet): opened + deposited. */
    assert_int_equal(deposit("bob", 700), 700);
    assert_int_equal(stream_version("bob"), 2);
    /* The registration events arriving afterwards change nothing. */
    for (int i = 0; i < 2; i++) {
        HARNESS_OK(g.db, sl_db_begin(g.db));
        json_t *data = json_pack("{s:s,s:s}", "user_id", i ? "bob" : "carol", "email", "x@y");
        sl_bus_msg msg = {.id = "ev-1", .type = "shop.user.registered.v1", .data = data};
        char reason[128];
        HARNESS_OK(g.db, pay_apply_user_registered(NULL, g.db, &msg, reason, sizeof reason));
        HARNESS_OK(g.db, sl_db_commit(g.db));
        json_decref(data);
    }
    assert_int_equal(stream_version("bob"), 2);
    assert_int_equal(stream_version("carol"), 1);
}

static void test_deposits_and_bad_input(void **state)
{
    (void)state;
    assert_int_equal(deposit("alice", 1000), 1000);
    json_t *v = call_json("POST", "/wallet/deposits", "alice", "customer", NULL,
                          "{\"amount\":{\"amount\":500,\"currency\":\"JPY\"}}", 200);
    assert_int_equal(amount_of(v, "balance"), 1500);
    assert_int_equal(json_integer_value(json_object_get(v, "version")), 3);
    json_decref(v);
    const char *bad[][2] = {
        {"{\"amount\":0}", "amount"},
        {"{\"amount\":-5}", "amount"},
        {"{\"amount\":1000000001}", "amount"},
        {"{\"amount\":1.5}", "amount"},
        {"{\"amount\":\"5\"}", "amount"},
        {"{}", "amount"},
        {"{\"amount\":5,\"extra\":1}", "extra"},
        {"{\"amount\":{\"amount\":5,\"currency\":\"USD\"}}", "amount.currency"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
        expect_refused("POST", "/wallet/deposits", "alice", "customer", bad[i][0], 400, bad[i][1]);
    expect_refused("POST", "/wallet/deposits", "alice", "customer", "{\"amount\":", 400, NULL);
    expect_refused("POST", "/wallet/deposits", "alice", "customer", "{\"amount\":\"\xff\"}", 400,
                   NULL);
    /* The deposited event went to the outbox with the new balance. */
    assert_int_equal(
        harness_int(g.db, "SELECT count(*) FROM outbox WHERE type = 'shop.payment.deposited.v1'"),
        3);
}

static void test_transfers(void **state)
{
    (void)state;
    /* alice 1500, bob 700, carol 0 */
    json_t *v = call_json("POST", "/wallet/transfers", "alice", "customer", NULL,
                          "{\"to_user_id\":\"bob\",\"amount\":400}", 200);
    assert_int_equal(amount_of(v, "balance"), 1100);
    json_decref(v);
    v = call_json("GET", "/wallet", "bob", "customer", NULL, NULL, 200);
    assert_int_equal(amount_of(v, "balance"), 1100);
    json_decref(v);
    int64_t va = stream_version("alice"), vb = stream_version("bob");
    expect_refused("POST", "/wallet/transfers", "alice", "customer",
                   "{\"to_user_id\":\"alice\",\"amount\":1}", 400, "to_user_id");
    expect_refused("POST", "/wallet/transfers", "alice", "customer",
                   "{\"to_user_id\":\"nobody\",\"amount\":1}", 422, "to_user_id");
    expect_refused("POST", "/wallet/transfers", "alice", "customer",
                   "{\"to_user_id\":\"bob\",\"amount\":1101}", 409, "amount");
    expect_refused("POST", "/wallet/transfers", "carol", "customer",
                   "{\"to_user_id\":\"bob\",\"amount\":1}", 409, "amount");
    expect_refused("POST", "/wallet/transfers", "alice", "customer",
                   "{\"to_user_id\":\"bob\",\"amount\":0}", 400, "amount");
    expect_refused("POST", "/wallet/transfers", "alice", "customer",
                   "{\"to_user_id\":\"bob\",\"amount\":-3}", 400, "amount");
    expect_refused("POST", "/wallet/transfers", "alice", "customer",
                   "{\"to_user_id\":\"bob\",\"amount\":10000000000000}", 400, "amount");
    expect_refused("POST", "/wallet/transfers", "alice", "customer", "{\"amount\":1}", 400,
                   "to_user_id");
    expect_refused("POST", "/wallet/transfers", "alice", "customer",
                   "{\"to_user_id\":\"a b\",\"amount\":1}", 400, "to_user_id");
    char longid[200];
    snprintf(longid, sizeof longid, "{\"to_user_id\":\"%0100d\",\"amount\":1}", 0);
    expect_refused("POST", "/wallet/transfers", "alice", "customer", longid, 400, "to_user_id");
    expect_refused("POST", "/wallet/transfers", "alice", "customer",
                   "{\"to_user_id\":7,\"amount\":1}", 400, "to_user_id");
    json_t *p = call_json("POST", "/wallet/transfers", "alice", "customer", NULL,
                          "{\"to_user_id\":\"bob\",\"amount\":999999}", 409);
    assert_string_equal(json_string_value(json_object_get(p, "reason")), "insufficient_funds");
    json_decref(p);
    assert_int_equal(stream_version("alice"), va);
    assert_int_equal(stream_version("bob"), vb);
}

static void test_public_idempotency_key(void **state)
{
    (void)state;
    const char *hdr = "Idempotency-Key: dep-1\r\n";
    json_t *a =
        call_json("POST", "/wallet/deposits", "carol", "customer", hdr, "{\"amount\":300}", 200);
    int64_t v = stream_version("carol");
    json_t *b =
        call_json("POST", "/wallet/deposits", "carol", "customer", hdr, "{\"amount\":300}", 200);
    assert_true(json_equal(a, b));
    assert_int_equal(stream_version("carol"), v);
    json_decref(
        call_json("POST", "/wallet/deposits", "carol", "customer", hdr, "{\"amount\":301}", 422));
    assert_int_equal(stream_version("carol"), v);
    json_decref(a);
    json_decref(b);
}

static void test_history_pagination(void **state)
{
    (void)state;
    /* dave: opened + 7 deposits of 10..70 → versions 1..8 (snapshots at 4 and 8). */
    for (int i = 1; i <= 7; i++)
        deposit("dave", i * 10);
    json_t *v =
        call_json("GET", "/wallet/history?page=1&per_page=3", "dave", "customer", NULL, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 8);
    json_t *items = json_object_get(v, "items");
    assert_int_equal(json_array_size(items), 3);
    json_t *first = json_array_get(items, 0);
    assert_int_equal(json_integer_value(json_object_get(first, "version")), 8);
    assert_string_equal(json_string_value(json_object_get(first, "type")), "MoneyDeposited");
    assert_int_equal(amount_of(first, "amount"), 70);
    assert_int_equal(amount_of(first, "balance_after"), 280);
    assert_int_equal(amount_of(json_array_get(items, 2), "balance_after"), 150);
    assert_non_null(json_string_value(json_object_get(first, "at")));
    assert_true(json_integer_value(json_object_get(first, "position")) >
                json_integer_value(json_object_get(json_array_get(items, 1), "position")));
    json_decref(v);
    v = call_json("GET", "/wallet/history?page=3&per_page=3", "dave", "customer", NULL, NULL, 200);
    items = json_object_get(v, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 1), "type")),
                        "AccountOpened");
    assert_int_equal(amount_of(json_array_get(items, 0), "balance_after"), 10);
    json_decref(v);
    v = call_json("GET", "/wallet/history?page=4&per_page=3", "dave", "customer", NULL, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(v, "items")), 0);
    json_decref(v);
    json_decref(
        call_json("GET", "/wallet/history?per_page=101", "dave", "customer", NULL, NULL, 400));
    json_decref(call_json("GET", "/wallet/history?page=0", "dave", "customer", NULL, NULL, 400));
    /* A deep page is refused (page * per_page > 10000) before any scan. */
    json_decref(
        call_json("GET", "/wallet/history?page=1000000", "dave", "customer", NULL, NULL, 400));
    json_decref(call_json("GET", "/wallet/history?page=101&per_page=100", "dave", "customer", NULL,
                          NULL, 400));
}

static void test_balance_as_of(void **state)
{
    (void)state;
    deposit("erin", 100);
    int64_t t1 = now_ms();
    while (now_ms() <= t1 + 2) { /* the next event gets a later millisecond */
    }
    deposit("erin", 50);
    char t[SL_RFC3339_MAX], target[128];
    sl_rfc3339_format(t1 * 1000000, t, sizeof t);
    snprintf(target, sizeof target, "/wallet/balance?as_of=%s", t);
    json_t *v = call_json("GET", target, "erin", "customer", NULL, NULL, 200);
    assert_int_equal(amount_of(v, "balance"), 100);
    assert_int_equal(json_integer_value(json_object_get(v, "version")), 2);
    json_decref(v);
    /* Percent-encoded colons, and a time before the wallet existed. */
    v = call_json("GET", "/wallet/balance?as_of=2001-01-01T00%3A00%3A00Z", "erin", "customer", NULL,
                  NULL, 200);
    assert_int_equal(amount_of(v, "balance"), 0);
    assert_int_equal(json_integer_value(json_object_get(v, "version")), 0);
    json_decref(v);
    v = call_json("GET", "/wallet/balance?as_of=2200-01-01T00:00:00Z", "erin", "customer", NULL,
                  NULL, 200);
    assert_int_equal(amount_of(v, "balance"), 150);
    json_decref(v);
    json_decref(call_json("GET", "/wallet/balance", "erin", "customer", NULL, NULL, 400));
    json_decref(
        call_json("GET", "/wallet/balance?as_of=yesterday", "erin", "customer", NULL, NULL, 400));
}

static json_t *charge(const char *key, const char *order, const char *uid, int64_t amount, int want)
{
    char hdr[300], body[300];
    snprintf(hdr, sizeof hdr, "idempotency-key: %s\r\n", key);
    snprintf(body, sizeof body,
             "{\"order_id\":\"%s\",\"user_id\":\"%s\",\"amount\":{\"amount\":%lld,"
             "\"currency\":\"JPY\"}}",
             order, uid, (long long)amount);
    return call_json("POST", "/charges", "svc-order", "service", hdr, body, want);
}

static json_t *refund(const char *key, const char *order, const char *body, int want)
{
    char hdr[300], target[200];
    snprintf(hdr, sizeof hdr, "idempotency-key: %s\r\n", key);
    snprintf(target, sizeof target, "/charges/%s/refund", order);
    return call_json("POST", target, "svc-order", "service", hdr, body, want);
}

static void test_charges_and_refunds(void **state)
{
    (void)state;
    deposit("fay", 1000);
    json_t *c = charge("s1:charge:action", "order-1", "fay", 300, 201);
    assert_string_equal(json_string_value(json_object_get(c, "order_id")), "order-1");
    assert_int_equal(amount_of(c, "balance"), 700);
    int64_t v = stream_version("fay");
    /* The same key again: the stored answer, no second charge. */
    json_t *c2 = charge("s1:charge:action", "order-1", "fay", 300, 201);
    assert_true(json_equal(c, c2));
    json_decref(c2);
    /* Another key, same order: still one charge per order. */
    c2 = charge("s9:charge:action", "order-1", "fay", 300, 200);
    assert_int_equal(amount_of(c2, "balance"), 700);
    json_decref(c2);
    json_decref(charge("s9b:charge:action", "order-1", "fay", 301, 409));
    json_decref(charge("s9c:charge:action", "order-1", "bob", 300, 409));
    assert_int_equal(stream_version("fay"), v);
    /* Insufficient funds: a stored business refusal, even after money arrives. */
    json_t *r = charge("s2:charge:action", "order-2", "fay", 5000, 409);
    assert_string_equal(json_string_value(json_object_get(r, "reason")), "insufficient_funds");
    json_decref(r);
    deposit("fay", 10000);
    v = stream_version("fay");
    r = charge("s2:charge:action", "order-2", "fay", 5000, 409);
    assert_string_equal(json_string_value(json_object_get(r, "reason")), "insufficient_funds");
    json_decref(r);
    assert_int_equal(stream_version("fay"), v);
    /* Refund: exactly what was charged, once. */
    r = refund("s1:charge:compensation", "order-1", NULL, 200);
    assert_int_equal(amount_of(r, "amount"), 300);
    assert_int_equal(amount_of(r, "balance"), 11000);
    json_decref(r);
    r = refund("s1:charge:compensation", "order-1", NULL, 200);
    assert_int_equal(amount_of(r, "amount"), 300); /* replayed answer */
    json_decref(r);
    r = refund("other-key", "order-1", NULL, 200);
    assert_int_equal(amount_of(r, "amount"), 0); /* nothing left to refund */
    assert_int_equal(amount_of(r, "refunded_total"), 300);
    json_decref(r);
    assert_int_equal(stream_version("fay"), v + 1);
    /* Never charged: 200 with 0; with a user a tombstone refuses a late charge. */
    r = refund("s3:charge:compensation", "order-3", NULL, 200);
    assert_int_equal(amount_of(r, "amount"), 0);
    assert_true(json_is_null(json_object_get(r, "user_id")));
    json_decref(r);
    r = refund("s4:charge:compensation", "order-4", "{\"user_id\":\"fay\"}", 200);
    assert_int_equal(amount_of(r, "amount"), 0);
    json_decref(r);
    r = charge("s4:charge:action", "order-4", "fay", 10, 409);
    assert_string_equal(json_string_value(json_object_get(r, "reason")), "order_refunded");
    json_decref(r);
    /* Bad input: nothing appended. */
    const char *bad[][2] = {
        {"{\"order_id\":\"o\",\"user_id\":\"fay\",\"amount\":0}", "amount"},
        {"{\"order_id\":\"o\",\"user_id\":\"fay\",\"amount\":{\"amount\":-1}}", "amount.amount"},
        {"{\"order_id\":\"o/x\",\"user_id\":\"fay\",\"amount\":1}", "order_id"},
        {"{\"user_id\":\"fay\",\"amount\":1}", "order_id"},
        {"{\"order_id\":\"o\",\"amount\":1}", "user_id"},
        {"{\"order_id\":\"o\",\"user_id\":\"fay\",\"amount\":1,\"x\":1}", "x"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
        expect_refused("POST", "/charges", "svc", "service", bad[i][0], 400, bad[i][1]);
    assert_int_equal(call("POST", "/charges", "svc", "service", "idempotency-key: \x01\r\n",
                          "{\"order_id\":\"o\",\"user_id\":\"fay\",\"amount\":1}", NULL),
                     400);
    /* The outbox got one charged and one refunded event. */
    assert_int_equal(
        harness_int(g.db, "SELECT count(*) FROM outbox WHERE type = 'shop.payment.charged.v1'"), 1);
    assert_int_equal(
        harness_int(g.db, "SELECT count(*) FROM outbox WHERE type = 'shop.payment.refunded.v1'"),
        1);
    json_decref(c);
}

static json_t *audit(void)
{
    return call_json("GET", "/admin/audit", "root", "admin", NULL, NULL, 200);
}

static void test_audit(void **state)
{
    (void)state;
    json_t *a = audit();
    if (!json_is_true(json_object_get(a, "ok"))) fail_msg("audit: %s", json_dumps(a, 0));
    json_t *t = json_object_get(a, "totals");
    assert_int_equal(json_integer_value(json_object_get(t, "balances")),
                     json_integer_value(json_object_get(t, "deposited")) -
                         json_integer_value(json_object_get(t, "charged")) +
                         json_integer_value(json_object_get(t, "refunded")));
    json_decref(a);
    /* The read model lists every wallet with the replayed balance. */
    json_t *l = call_json("GET", "/admin/wallets?per_page=100", "root", "admin", NULL, NULL, 200);
    assert_true(json_integer_value(json_object_get(l, "total")) >= 6);
    json_decref(l);

    /* Inject a withdrawal with no matching deposit that overdraws erin. */
    HARNESS_OK(g.db, sl_db_begin(g.db));
    sl_es_event ev = {.type = "MoneyWithdrawn",
                      .data = "{\"amount\":1000,\"to_user_id\":\"x\",\"transfer_id\":\"t\"}"};
    sl_es_result res;
    HARNESS_OK(g.db, sl_es_append(g.db, "account-erin", SL_ES_ANY, &ev, 1, now_ms(), &res));
    HARNESS_OK(g.db, sl_db_commit(g.db));
    a = audit();
    assert_false(json_is_true(json_object_get(a, "ok")));
    char *text = json_dumps(a, 0);
    assert_non_null(strstr(text, "negative balance"));
    assert_non_null(strstr(text, "transfers do not pair up"));
    free(text);
    json_decref(a);

    /* A tampered read model is reported too. */
    HARNESS_OK(g.db, sl_db_exec(g.db, "UPDATE wallet_balances SET balance = balance + 1 WHERE "
                                      "user_id = 'alice'"));
    a = audit();
    text = json_dumps(a, 0);
    assert_non_null(strstr(text, "read model says"));
    free(text);
    json_decref(a);
}

/* Deposits stand in for a payment provider: an owner's own deposits are capped per UTC day
 * (409 deposit_limit, nothing appended), an admin may credit any wallet past the cap, and
 * every deposit leaves an audit row (who, when, amount, request id). */
static void test_deposit_limit_audit_admin(void **state)
{
    (void)state;
    /* The default limit (10^6 a day), whatever was deposited before today. */
    assert_int_equal(deposit("gus", 600000), 600000);
    json_t *v = call_json("POST", "/wallet/deposits", "gus", "customer",
                          "x-request-id: req-gus-2\r\n", "{\"amount\":400000}", 200);
    assert_int_equal(amount_of(v, "balance"), 1000000);
    json_decref(v);
    int64_t before = stream_version("gus");
    v = call_json("POST", "/wallet/deposits", "gus", "customer", NULL, "{\"amount\":1}", 409);
    assert_string_equal(json_string_value(json_object_get(v, "reason")), "deposit_limit");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(v, "errors"), 0), "field")),
                        "amount");
    json_decref(v);
    assert_int_equal(stream_version("gus"), before);
    /* Another wallet has its own allowance. */
    assert_int_equal(deposit("hal", 1000000), 1000000);

    /* The admin path: customers get 403; an admin passes the cap (and does not use it up). */
    expect_refused("POST", "/admin/wallets/gus/deposits", "gus", "customer", "{\"amount\":5}", 403,
                   NULL);
    v = call_json("POST", "/admin/wallets/gus/deposits", "root", "admin",
                  "x-request-id: req-admin-1\r\n", "{\"amount\":50000000}", 200);
    assert_int_equal(amount_of(v, "balance"), 51000000);
    json_decref(v);
    expect_refused("POST", "/admin/wallets/gus/deposits", "root", "admin", "{\"amount\":0}", 400,
                   "amount");
    char longpath[200];
    snprintf(longpath, sizeof longpath, "/admin/wallets/%070d/deposits", 0);
    expect_refused("POST", longpath, "root", "admin", "{\"amount\":5}", 400, "user_id");
    v = call_json("POST", "/wallet/deposits", "gus", "customer", NULL, "{\"amount\":1}", 409);
    json_decref(v);

    /* The audit trail: one row per deposit, with its actor, amount, request id and version. */
    assert_int_equal(harness_int(g.db, "SELECT count(*) FROM deposit_audit WHERE user_id = 'gus'"),
                     3);
    assert_int_equal(harness_int(g.db, "SELECT amount FROM deposit_audit WHERE user_id = 'gus' "
                                       "AND actor_id = 'root' AND actor_role = 'admin' AND "
                                       "request_id = 'req-admin-1'"),
                     50000000);
    assert_int_equal(harness_int(g.db, "SELECT count(*) FROM deposit_audit WHERE user_id = 'gus' "
                                       "AND actor_id = 'gus' AND request_id = 'req-gus-2' AND "
                                       "amount = 400000"),
                     1);
    assert_int_equal(harness_int(g.db, "SELECT max(version) FROM deposit_audit WHERE user_id = "
                                       "'gus'"),
                     stream_version("gus"));
    int64_t at = harness_int(g.db, "SELECT min(at_ms) FROM deposit_audit WHERE user_id = 'gus'");
    assert_true(at > now_ms() - 600000 && at <= now_ms());
}

/* The history's keyset cursor walks every event once, newest first, though deposits land
 * between pages; a foreign or malformed cursor is a 400 naming it. */
static void test_history_cursor(void **state)
{
    (void)state;
    for (int i = 1; i <= 23; i++)
        deposit("ivy", i);
    int64_t top = stream_version("ivy"); /* 24: opened + 23 deposits */
    char target[1400] = "/wallet/history?per_page=10";
    int64_t want = top, pages = 0;
    for (;;) {
        json_t *v = call_json("GET", target, "ivy", "customer", NULL, NULL, 200);
        json_t *items = json_object_get(v, "items");
        for (size_t i = 0; i < json_array_size(items); i++)
            assert_int_equal(
                json_integer_value(json_object_get(json_array_get(items, i), "version")), want--);
        pages++;
        deposit("ivy", 1000); /* newer than anything the walk has left to serve */
        json_t *next = json_object_get(v, "next_cursor");
        if (json_is_null(next)) {
            json_decref(v);
            break;
        }
        snprintf(target, sizeof target, "/wallet/history?per_page=10&cursor=%s",
                 json_string_value(next));
        json_decref(v);
    }
    assert_int_equal(want, 0);
    assert_int_equal(pages, 3);
    json_decref(
        call_json("GET", "/wallet/history?cursor=bm9wZQ", "ivy", "customer", NULL, NULL, 400));
    json_decref(call_json("GET", "/wallet/history?cursor=!!", "ivy", "customer", NULL, NULL, 400));
    json_decref(call_json("GET", "/wallet/history?page=2&cursor=d2gKMTA", "ivy", "customer", NULL,
                          NULL, 400));
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_required),
        cmocka_unit_test(test_lazy_open_and_registration),
        cmocka_unit_test(test_deposits_and_bad_input),
        cmocka_unit_test(test_deposit_limit_audit_admin),
        cmocka_unit_test(test_transfers),
        cmocka_unit_test(test_public_idempotency_key),
        cmocka_unit_test(test_history_pagination),
        cmocka_unit_test(test_history_cursor),
        cmocka_unit_test(test_balance_as_of),
        cmocka_unit_test(test_charges_and_refunds),
        cmocka_unit_test(test_audit),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    harness_done();
    return rc;
}
