/*
 * The whole shop, end to end: `shoal up` starts nats-server, every service
 * and the gateway (on free ports, in a temporary data directory), and this
 * suite drives the public API exactly as docs/openapi.yaml states it, through the
 * gateway only: register and log in, browse, fill the cart, pay into the
 * wallet, check out (the saga confirms the order: stock down, wallet
 * charged, cart cleared, notification written), read the order history
 * through the aggregation route, cancel (refund), refusals (insufficient
 * funds), the error shapes (401/403/404/405/413/422/429), idempotent order
 * creation, and a stopped service: its breaker opens, the gateway answers
 * 503 with Retry-After fast, other routes are unaffected, and it recovers.
 *
 * It runs in every hosting shape (SHOAL_E2E_SHAPE, tests/support/shape.h): all
 * separate, all seven services in one shoal-shop process, and mixed (order and
 * payment separate). Stopping one service alone needs it to be its own
 * process: in the monolith those checks give way to a kill -9 of the whole
 * shop mid-checkout, which must lose nothing and charge once.
 *
 * With SHOAL_E2E_MESH=1 (separate shape) the same journey runs in mesh mode
 * (docs/mesh.md): every call between processes through two sidecars with
 * mTLS, NATS with TLS and one user per service. The suite reaches a service
 * itself (its /metrics) on its own loopback port, behind its sidecar.
 */
#include "graph_check.h"
#include "harness.h"
#include "otlp_rx.h"
#include "shape.h"

#include <dirent.h>
#include <errno.h>
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
#include <time.h>
#include <unistd.h>

#include <shoal/clock.h>
#include <shoal/identity.h>

#include <cmocka.h>

static char dir[] = "/tmp/shoal-e2e-XXXXXX";
static int gw;   /* gateway port */
static pid_t up; /* shoal up */
static char uplog[600];
static int64_t first_read_available = -1; /* the first catalogue read after `shoal up` said ready */

static const char *const names[] = {"user",  "product", "cart",        "inventory",
                                    "order", "payment", "notification"};
static int ports[7];
static th_otlp_rx *otlp;        /* every process exports its spans here */
static char checkout_order[64]; /* the order test_wallet_cart_checkout confirmed */
static int admin_port;          /* the gateway's admin listener */
static th_shape shape;
static int mesh; /* SHOAL_E2E_MESH=1 */

/* Where the suite reaches service i itself: its topology port, or behind its sidecar. */
static int svc_port(int i)
{
    return mesh ? ports[i] + TH_MESH_LOCAL_OFFSET : ports[i];
}

/* ---- HTTP through the gateway ----------------------------------------- */

typedef struct resp {
    int status;
    json_t *json;
    char retry_after[32];
    char location[256];
    int has_request_id, has_traceparent;
} resp;

static void resp_free(resp *r)
{
    json_decref(r->json);
    r->json = NULL;
}

static int call(const char *method, const char *path, const char *token, const char *body,
                const char *extra, resp *out)
{
    char req[65536];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%s%s"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, token ? "Authorization: Bearer " : "", token ? token : "",
                     token ? "\r\n" : "", extra ? extra : "", blen);
    if (body && (size_t)n + blen < sizeof req) {
        memcpy(req + n, body, blen);
        n += (int)blen;
    }
    th_response r;
    memset(out, 0, sizeof *out);
    out->status = th_roundtrip(gw, req, (size_t)n, &r, 20000);
    if (out->status > 0) {
        out->json = r.body_len ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
        const char *ra = th_header(&r, "retry-after");
        if (ra) snprintf(out->retry_after, sizeof out->retry_after, "%s", ra);
        const char *loc = th_header(&r, "location");
        if (loc) snprintf(out->location, sizeof out->location, "%s", loc);
        out->has_request_id = th_header(&r, "x-request-id") != NULL;
        out->has_traceparent = th_header(&r, "traceparent") != NULL;
        th_response_free(&r);
    }
    return out->status;
}

static const char *jstr(const json_t *v, const char *k)
{
    const char *s = json_string_value(json_object_get(v, k));
    return s ? s : "";
}

static long long jint(const json_t *v, const char *k)
{
    return (long long)json_integer_value(json_object_get(v, k));
}

static long long money(const json_t *v, const char *k)
{
    json_t *m = json_object_get(v, k);
    return json_is_integer(m) ? (long long)json_integer_value(m)
                              : (long long)json_integer_value(json_object_get(m, "amount"));
}

/* Expects `status`; prints the body otherwise. */
static void expect(const char *what, resp *r, int status)
{
    if (r->status != status) {
        char *b = r->json ? json_dumps(r->json, JSON_COMPACT) : NULL;
        fprintf(stderr, "%s: status %d, want %d: %s\n", what, r->status, status, b ? b : "");
        free(b);
    }
    assert_int_equal(r->status, status);
    assert_true(r->has_request_id);
    assert_true(r->has_traceparent);
}

static void register_user(const char *email, const char *name, char *id_out)
{
    char body[256];
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"correct horse\",\"name\":\"%s\"}",
             email, name);
    resp r;
    call("POST", "/api/v1/auth/register", NULL, body, NULL, &r);
    expect("register", &r, 201);
    assert_string_equal(jstr(r.json, "role"), "customer");
    snprintf(id_out, 64, "%s", jstr(r.json, "user_id"));
    resp_free(&r);
}

static void login(const char *email, const char *password, char *token)
{
    char body[256];
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
    resp r;
    call("POST", "/api/v1/auth/login", NULL, body, NULL, &r);
    expect("login", &r, 200);
    assert_string_equal(jstr(r.json, "token_type"), "Bearer");
    assert_true(jint(r.json, "expires_in") > 0);
    snprintf(token, 2048, "%s", jstr(r.json, "access_token"));
    resp_free(&r);
}

/* Polls GET path until member `key` equals `want` (bounded: 40 s). */
static int wait_str(const char *path, const char *token, const char *key, const char *want)
{
    for (int i = 0; i < 400; i++) {
        resp r;
        if (call("GET", path, token, NULL, NULL, &r) == 200 &&
            strcmp(jstr(r.json, key), want) == 0) {
            resp_free(&r);
            return 1;
        }
        resp_free(&r);
        usleep(100000);
    }
    return 0;
}

static long long wallet_balance(const char *token)
{
    resp r;
    call("GET", "/api/v1/wallet", token, NULL, NULL, &r);
    expect("wallet", &r, 200);
    long long b = money(r.json, "balance");
    resp_free(&r);
    return b;
}

/* ---- the suite ---------------------------------------------------------- */

static char alice_id[64], bob_id[64];
static char alice[2048], bob[2048], admin[2048];
static char product_id[64];
static long long price, initial_available;

static void test_auth_and_users(void **state)
{
    (void)state;
    register_user("alice@example.com", "Alice", alice_id);
    register_user("bob@example.com", "Bob", bob_id);
    resp r;
    call("POST", "/api/v1/auth/register", NULL,
         "{\"email\":\"ALICE@example.com\",\"password\":\"another one\",\"name\":\"A\"}", NULL, &r);
    expect("duplicate email", &r, 409);
    resp_free(&r);
    call("POST", "/api/v1/auth/register", NULL,
         "{\"email\":\"carol@example.com\",\"password\":\"short\",\"name\":\"C\"}", NULL, &r);
    expect("short password", &r, 400);
    assert_non_null(json_object_get(r.json, "errors"));
    resp_free(&r);
    call("POST", "/api/v1/auth/register", NULL, "{\"email\":", NULL, &r);
    expect("malformed JSON", &r, 400);
    resp_free(&r);

    login("alice@example.com", "correct horse", alice);
    login("bob@example.com", "correct horse", bob);
    call("POST", "/api/v1/auth/login", NULL,
         "{\"email\":\"alice@example.com\",\"password\":\"wrong horse\"}", NULL, &r);
    expect("wrong password", &r, 401);
    resp_free(&r);

    /* The admin account made on first start; its password is in data/admin-credentials. */
    char path[700], line[256], email[128] = "", password[128] = "";
    snprintf(path, sizeof path, "%s/data/admin-credentials", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "email: %127s", email);
        sscanf(line, "password: %127s", password);
    }
    fclose(f);
    login(email, password, admin);

    call("GET", "/api/v1/users/me", NULL, NULL, NULL, &r);
    expect("me without token", &r, 401);
    resp_free(&r);
    call("GET", "/api/v1/users/me", "not.a.token", NULL, NULL, &r);
    expect("me with a bad token", &r, 401);
    resp_free(&r);
    call("GET", "/api/v1/users/me", alice, NULL, NULL, &r);
    expect("me", &r, 200);
    assert_string_equal(jstr(r.json, "email"), "alice@example.com");
    assert_string_equal(jstr(r.json, "user_id"), alice_id);
    resp_free(&r);
    /* A client cannot claim an identity with x-user-* headers. */
    call("GET", "/api/v1/users/me", NULL, NULL, "x-user-id: admin\r\nx-user-role: admin\r\n", &r);
    expect("forged identity headers", &r, 401);
    resp_free(&r);
    call("PATCH", "/api/v1/users/me", alice, "{\"name\":\"Alice A.\"}", NULL, &r);
    expect("patch me", &r, 200);
    assert_string_equal(jstr(r.json, "name"), "Alice A.");
    resp_free(&r);

    call("GET", "/api/v1/users?role=customer", alice, NULL, NULL, &r);
    expect("list users as a customer", &r, 403);
    resp_free(&r);
    call("GET", "/api/v1/users?role=customer&per_page=10", admin, NULL, NULL, &r);
    expect("list users as admin", &r, 200);
    assert_true(jint(r.json, "total") >= 2);
    resp_free(&r);
    char p[128];
    snprintf(p, sizeof p, "/api/v1/users/%s", alice_id);
    call("GET", p, bob, NULL, NULL, &r);
    assert_true(r.status == 403 || r.status == 404);
    resp_free(&r);
}

/* Logs in and copies the access and refresh tokens. */
static void login_pair(const char *email, char *access, char *refresh)
{
    char body[256];
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"correct horse\"}", email);
    resp r;
    call("POST", "/api/v1/auth/login", NULL, body, NULL, &r);
    expect("login", &r, 200);
    snprintf(access, 2048, "%s", jstr(r.json, "access_token"));
    snprintf(refresh, 128, "%s", jstr(r.json, "refresh_token"));
    resp_free(&r);
}

static int refresh_call(const char *path, const char *refresh, char *access, char *next)
{
    char body[256];
    snprintf(body, sizeof body, "{\"refresh_token\":\"%s\"}", refresh);
    resp r;
    int st = call("POST", path, NULL, body, NULL, &r);
    if (st == 200 && access) {
        snprintf(access, 2048, "%s", jstr(r.json, "access_token"));
        snprintf(next, 128, "%s", jstr(r.json, "refresh_token"));
        assert_true(jint(r.json, "expires_in") > 0);
    }
    resp_free(&r);
    return st;
}

/* Polls GET /api/v1/users/me with `token` until it answers 401 (bounded: 30 s; the gateway
 * polls revocations every second). Returns the last status. */
static int wait_rejected(const char *token)
{
    int st = 0;
    for (int i = 0; i < 300 && st != 401; i++) {
        resp r;
        st = call("GET", "/api/v1/users/me", token, NULL, NULL, &r);
        resp_free(&r);
        if (st != 401) usleep(100000);
    }
    return st;
}

/* Sessions through the gateway: refresh rotates; reusing a spent refresh token ends the
 * session; logout ends it; either way the old access tokens stop working shortly after. */
static void test_sessions_and_revocation(void **state)
{
    (void)state;
    char id[64], access[2048], refresh[128], access2[2048], refresh2[128];
    register_user("carol@example.com", "Carol", id);
    login_pair("carol@example.com", access, refresh);
    resp r;
    call("GET", "/api/v1/users/me", access, NULL, NULL, &r);
    expect("me", &r, 200);
    resp_free(&r);
    assert_int_equal(refresh_call("/api/v1/auth/refresh", refresh, access2, refresh2), 200);
    call("GET", "/api/v1/users/me", access2, NULL, NULL, &r);
    expect("me after refresh", &r, 200);
    resp_free(&r);
    /* The spent token again: the session ends, and its newest access token with it. */
    assert_int_equal(refresh_call("/api/v1/auth/refresh", refresh, NULL, NULL), 401);
    assert_int_equal(refresh_call("/api/v1/auth/refresh", refresh2, NULL, NULL), 401);
    assert_int_equal(wait_rejected(access2), 401);
    assert_int_equal(wait_rejected(access), 401);

    /* Logout: 204, then the session's access token stops working; other sessions do not. */
    char other[2048], other_refresh[128];
    login_pair("carol@example.com", access, refresh);
    login_pair("carol@example.com", other, other_refresh);
    assert_int_equal(refresh_call("/api/v1/auth/logout", refresh, NULL, NULL), 204);
    assert_int_equal(wait_rejected(access), 401);
    assert_int_equal(refresh_call("/api/v1/auth/refresh", refresh, NULL, NULL), 401);
    call("GET", "/api/v1/users/me", other, NULL, NULL, &r);
    expect("another session", &r, 200);
    resp_free(&r);
    call("POST", "/api/v1/auth/refresh", NULL, "{}", NULL, &r);
    expect("refresh without a token", &r, 400);
    resp_free(&r);
}

static void test_catalogue(void **state)
{
    (void)state;
    resp r;
    /* `shoal up` announces the shop only once the catalogue shows stock. */
    assert_true(first_read_available > 0);
    /* The demo catalogue reaches the read model (with stock) through the bus. */
    int found = 0;
    for (int i = 0; i < 300 && !found; i++, usleep(100000)) {
        call("GET", "/api/v1/products?per_page=100&sort=price", NULL, NULL, NULL, &r);
        expect("list products", &r, 200);
        json_t *items = json_object_get(r.json, "items");
        for (size_t k = 0; k < json_array_size(items); k++) {
            json_t *it = json_array_get(items, k);
            if (jint(it, "available") >= 5 && money(it, "price") > 0) {
                snprintf(product_id, sizeof product_id, "%s", jstr(it, "product_id"));
                price = money(it, "price");
                initial_available = jint(it, "available");
                found = 1;
                break;
            }
        }
        resp_free(&r);
    }
    assert_true(found);
    char p[128];
    snprintf(p, sizeof p, "/api/v1/products/%s", product_id);
    call("GET", p, NULL, NULL, NULL, &r);
    expect("product", &r, 200);
    assert_int_equal(money(r.json, "price"), price);
    resp_free(&r);
    call("GET", "/api/v1/products/01a22200-0000-7000-8000-000000000000", NULL, NULL, NULL, &r);
    expect("unknown product", &r, 404);
    resp_free(&r);
    call("GET", "/api/v1/products?q=tea&per_page=5", NULL, NULL, NULL, &r);
    expect("search", &r, 200);
    assert_true(json_is_array(json_object_get(r.json, "items")));
    resp_free(&r);
    call("GET", "/api/v1/products?sort=sideways", NULL, NULL, NULL, &r);
    expect("bad sort", &r, 400);
    resp_free(&r);
}

/* http_client_local_attempts_total{upstream} on the order service's /metrics, all workers. */
static long long local_attempts(const char *upstream)
{
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    th_response r;
    assert_int_equal(th_roundtrip(svc_port(4), req, sizeof req - 1, &r, 20000), 200);
    char pat[128];
    snprintf(pat, sizeof pat, "http_client_local_attempts_total{upstream=\"%s\"", upstream);
    long long sum = 0;
    for (const char *q = r.body; q && (q = strstr(q, pat)) != NULL; q++) {
        const char *sp = strchr(q, ' ');
        if (sp) sum += atoll(sp + 1);
    }
    th_response_free(&r);
    return sum;
}

static void test_wallet_cart_checkout(void **state)
{
    (void)state;
    resp r;
    /* A wallet exists from registration on. */
    assert_int_equal(wallet_balance(alice), 0);
    call("POST", "/api/v1/wallet/deposits", alice, "{\"amount\":100000}", NULL, &r);
    expect("deposit", &r, 200);
    assert_int_equal(money(r.json, "balance"), 100000);
    resp_free(&r);
    call("POST", "/api/v1/wallet/deposits", alice, "{\"amount\":0}", NULL, &r);
    expect("zero deposit", &r, 400);
    resp_free(&r);

    char p[256], body[512];
    snprintf(p, sizeof p, "/api/v1/cart/items/%s", product_id);
    call("PUT", p, alice, "{\"qty\":2}", NULL, &r);
    expect("cart put", &r, 200);
    resp_free(&r);
    call("GET", "/api/v1/cart", alice, NULL, NULL, &r);
    expect("cart", &r, 200);
    assert_int_equal(money(r.json, "total"), 2 * price);
    resp_free(&r);
    call("GET", "/api/v1/cart", bob, NULL, NULL, &r);
    expect("bob's cart", &r, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "items")), 0);
    resp_free(&r);

    /* Checkout, idempotent by key. */
    snprintf(body, sizeof body,
             "{\"items\":[{\"product_id\":\"%s\",\"qty\":2}],\"shipping_address\":{\"name\":"
             "\"Alice\",\"line1\":\"1-2-3 Shibuya\",\"city\":\"Tokyo\",\"postal_code\":"
             "\"150-0002\",\"country\":\"JP\"}}",
             product_id);
    /* The order service prices from its own replica of the catalogue, fed by the product
     * events: right after start it may lag the catalogue's read model, which is all
     * test_catalogue waited for. Until it has the product the answer is 422 "no such product",
     * and nothing is kept (not even under the idempotency key), so asking again is safe. */
    for (int i = 0; i < 100; i++) {
        call("POST", "/api/v1/orders", alice, body, "Idempotency-Key: order-key-1\r\n", &r);
        if (r.status != 422) break;
        resp_free(&r);
        usleep(100000);
    }
    expect("create order", &r, 202);
    char order_id[64];
    snprintf(order_id, sizeof order_id, "%s", jstr(r.json, "order_id"));
    snprintf(checkout_order, sizeof checkout_order, "%s", order_id);
    assert_string_equal(jstr(r.json, "status"), "pending");
    assert_non_null(strstr(r.location, order_id));
    resp_free(&r);
    call("POST", "/api/v1/orders", alice, body, "Idempotency-Key: order-key-1\r\n", &r);
    expect("replayed order", &r, 202);
    assert_string_equal(jstr(r.json, "order_id"), order_id);
    resp_free(&r);
    char other[512];
    snprintf(other, sizeof other, "%s", body);
    char *q = strstr(other, "\"qty\":2");
    assert_non_null(q);
    q[6] = '1'; /* the same order with another quantity */
    call("POST", "/api/v1/orders", alice, other, "Idempotency-Key: order-key-1\r\n", &r);
    expect("same key, other body", &r, 422);
    resp_free(&r);

    snprintf(p, sizeof p, "/api/v1/orders/%s", order_id);
    assert_true(wait_str(p, alice, "status", "confirmed"));
    call("GET", p, alice, NULL, NULL, &r);
    expect("order", &r, 200);
    assert_int_equal(money(r.json, "total_amount"), 2 * price);
    resp_free(&r);
    call("GET", p, bob, NULL, NULL, &r);
    assert_true(r.status == 403 || r.status == 404);
    resp_free(&r);
    assert_int_equal(wallet_balance(alice), 100000 - 2 * price);

    /* Choreography: stock down in the catalogue, the cart emptied, a notification. */
    int stock_ok = 0, cart_ok = 0;
    for (int i = 0; i < 300 && !(stock_ok && cart_ok); i++, usleep(100000)) {
        snprintf(p, sizeof p, "/api/v1/products/%s", product_id);
        call("GET", p, NULL, NULL, NULL, &r);
        stock_ok = r.status == 200 && jint(r.json, "available") == initial_available - 2;
        resp_free(&r);
        call("GET", "/api/v1/cart", alice, NULL, NULL, &r);
        cart_ok = r.status == 200 && json_array_size(json_object_get(r.json, "items")) == 0;
        resp_free(&r);
    }
    assert_true(stock_ok);
    assert_true(cart_ok);
    char mailbox[800];
    snprintf(mailbox, sizeof mailbox, "ls %s/data/mailboxes/%s/ 2>/dev/null | grep -q .", dir,
             alice_id);
    int mailed = 0;
    for (int i = 0; i < 100 && !mailed; i++, usleep(100000))
        mailed = system(mailbox) == 0;
    assert_true(mailed);

    /* The aggregation route: user, orders, product details per item. */
    snprintf(p, sizeof p, "/api/v1/users/%s/orders", alice_id);
    call("GET", p, alice, NULL, NULL, &r);
    expect("user orders", &r, 200);
    assert_string_equal(jstr(json_object_get(r.json, "user"), "user_id"), alice_id);
    json_t *orders = json_object_get(r.json, "orders");
    assert_true(json_array_size(orders) >= 1);
    json_t *details = json_object_get(json_array_get(orders, 0), "product_details");
    assert_int_equal(json_array_size(details), 1);
    assert_string_equal(jstr(json_array_get(details, 0), "product_id"), product_id);
    resp_free(&r);
    call("GET", p, bob, NULL, NULL, &r);
    assert_true(r.status == 403 || r.status == 404);
    resp_free(&r);

    /* Cancel before shipping: refunded. */
    snprintf(p, sizeof p, "/api/v1/orders/%s/cancel", order_id);
    call("POST", p, alice, "{\"reason\":\"changed my mind\"}", NULL, &r);
    expect("cancel", &r, 200);
    assert_string_equal(jstr(r.json, "status"), "cancelled");
    resp_free(&r);
    int refunded = 0;
    for (int i = 0; i < 300 && !refunded; i++, usleep(100000))
        refunded = wallet_balance(alice) == 100000;
    assert_true(refunded);
    /* ... and the units went back to stock: the catalogue shows them again. */
    int restocked = 0;
    for (int i = 0; i < 300 && !restocked; i++, usleep(100000)) {
        snprintf(p, sizeof p, "/api/v1/products/%s", product_id);
        call("GET", p, NULL, NULL, NULL, &r);
        restocked = r.status == 200 && jint(r.json, "available") == initial_available;
        resp_free(&r);
    }
    assert_true(restocked);

    /* The saga's calls went in process exactly when order and its participants share one:
     * the monolith (docs/architecture.md, "Hosting"). */
    long long inv = local_attempts("inventory"), pay = local_attempts("payment");
    print_message("in-process attempts of the order service (%s): inventory %lld, payment %lld\n",
                  th_shape_name(shape), inv, pay);
    if (shape == TH_SHAPE_MONOLITH) {
        assert_true(inv > 0);
        assert_true(pay > 0);
    } else {
        assert_int_equal(inv, 0);
        assert_int_equal(pay, 0);
    }
}

/* ---- the checkout's trace, as exported (OTLP/HTTP JSON) to a receiver in this test ---- */

static const char *span_attr(json_t *sp, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(sp, "attributes"), i, a)
    {
        if (strcmp(jstr(a, "key"), key) == 0)
            return jstr(json_object_get(a, "value"), "stringValue");
    }
    return "";
}

/* The spans of the trace whose order server span names `order_id`. Returns owned. */
static json_t *checkout_spans(const char *order_id)
{
    json_t *all = th_otlp_rx_spans(otlp), *out = json_array();
    const char *tid = NULL;
    size_t i;
    json_t *sp;
    json_array_foreach(all, i, sp)
    {
        if (strcmp(jstr(sp, "service"), "order") == 0 &&
            strncmp(jstr(sp, "name"), "POST ", 5) == 0 &&
            strcmp(span_attr(sp, "shoal.order_id"), order_id) == 0)
            tid = jstr(sp, "traceId");
    }
    json_array_foreach(all, i, sp)
    {
        if (tid && strcmp(jstr(sp, "traceId"), tid) == 0) json_array_append(out, sp);
    }
    json_decref(all);
    return out;
}

/* 1 when a span of `service` with `kind` (0: any) whose name starts with `name` is present. */
static int has_span(json_t *spans, const char *service, int kind, const char *name)
{
    size_t i;
    json_t *sp;
    json_array_foreach(spans, i, sp)
    {
        if ((!service || strcmp(jstr(sp, "service"), service) == 0) &&
            (!kind || json_integer_value(json_object_get(sp, "kind")) == kind) &&
            strncmp(jstr(sp, "name"), name, strlen(name)) == 0)
            return 1;
    }
    return 0;
}

static int checkout_complete(json_t *t)
{
    int consumer_elsewhere = 0;
    size_t i;
    json_t *sp;
    json_array_foreach(t, i, sp)
    {
        consumer_elsewhere |= json_integer_value(json_object_get(sp, "kind")) == 5 &&
                              strcmp(jstr(sp, "service"), "order") != 0;
    }
    return has_span(t, "gateway", 2, "") && has_span(t, "gateway", 3, "HTTP POST") &&
           has_span(t, "order", 2, "POST ") && has_span(t, "order", 1, "saga checkout reserve") &&
           has_span(t, "order", 1, "saga checkout charge") &&
           has_span(t, "order", 1, "saga checkout confirm") &&
           has_span(t, "inventory", 2, "POST ") && has_span(t, "payment", 2, "POST ") &&
           has_span(t, "order", 4, "send ") && consumer_elsewhere;
}

static void test_checkout_trace(void **state)
{
    (void)state;
    assert_true(checkout_order[0] != '\0');
    json_t *t = NULL;
    for (int i = 0; i < 300; i++) { /* spans leave every 100 ms; events take a moment */
        json_decref(t);
        t = checkout_spans(checkout_order);
        if (checkout_complete(t)) break;
        usleep(100 * 1000);
    }
    if (!checkout_complete(t)) {
        size_t i;
        json_t *sp;
        json_array_foreach(t, i, sp)
            fprintf(stderr, "  %s %s (kind %lld)\n", jstr(sp, "service"), jstr(sp, "name"),
                    (long long)json_integer_value(json_object_get(sp, "kind")));
        fail_msg("the checkout's trace lacks spans (%zu received)", json_array_size(t));
    }
    /* One tree: a single root (the gateway's server span) and every parent in the trace. In
     * mesh mode the parents of the services' spans are the sidecars' spans, exported as
     * `<name>-sidecar`: the gateway's sidecar and order's, inbound (server) and outbound
     * (client), are in the trace. */
    if (mesh) {
        for (int i = 0; i < 300; i++) { /* the sidecars' spans may leave a moment later */
            if (has_span(t, "gateway-sidecar", 2, "") && has_span(t, "gateway-sidecar", 3, "") &&
                has_span(t, "order-sidecar", 2, "") && has_span(t, "order-sidecar", 3, "") &&
                has_span(t, "payment-sidecar", 2, ""))
                break;
            usleep(100 * 1000);
            json_decref(t);
            t = checkout_spans(checkout_order);
        }
        if (!has_span(t, "gateway-sidecar", 2, "") || !has_span(t, "gateway-sidecar", 3, "") ||
            !has_span(t, "order-sidecar", 2, "") || !has_span(t, "order-sidecar", 3, "") ||
            !has_span(t, "payment-sidecar", 2, "")) {
            size_t k;
            json_t *q;
            json_array_foreach(t, k, q)
                fprintf(stderr, "  %s %s (kind %lld)\n", jstr(q, "service"), jstr(q, "name"),
                        (long long)json_integer_value(json_object_get(q, "kind")));
            fail_msg("the checkout's trace lacks a sidecar's span");
        }
    }
    size_t i, roots = 0;
    json_t *sp;
    json_array_foreach(t, i, sp)
    {
        const char *p = jstr(sp, "parentSpanId");
        if (!*p) {
            roots++;
            assert_string_equal(jstr(sp, "service"), "gateway");
            continue;
        }
        int found = 0;
        size_t k;
        json_t *q;
        json_array_foreach(t, k, q) found |= strcmp(jstr(q, "spanId"), p) == 0;
        if (!found)
            fail_msg("%s %s: parent %s is not in the trace", jstr(sp, "service"), jstr(sp, "name"),
                     p);
    }
    assert_int_equal(roots, 1);
    /* Every saga step span names the order. */
    json_array_foreach(t, i, sp)
    {
        if (strncmp(jstr(sp, "name"), "saga ", 5) == 0)
            assert_string_equal(span_attr(sp, "shoal.order_id"), checkout_order);
    }
    json_decref(t);
    char first[512];
    size_t bad = th_otlp_rx_violations(otlp, first, sizeof first);
    if (bad) fail_msg("%zu OTLP requests broke the encoding rules; first: %s", bad, first);
    /* `shoal graph` over every span exported so far: with the shop's configuration the rules
     * hold, and the spans alone show the checkout's calls and an event of the order service. */
    static char out[65536];
    char args[700];
    snprintf(args, sizeof args, "--config %s/local.yaml", dir);
    json_t *all = th_otlp_rx_spans(otlp);
    int st = th_graph_check_spans(all, dir, args, out, sizeof out);
    if (st != 0) fail_msg("shoal graph %s: exit %d\n%s", args, st, out);
    st = th_graph_check_spans(all, dir, "--no-config", out, sizeof out);
    json_decref(all);
    int ok = 0; /* a line "order -> X  async ...", and the checkout's calls */
    for (const char *l = strstr(out, "\n  order -> "); l; l = strstr(l + 1, "\n  order -> ")) {
        const char *eol = strchr(l + 1, '\n'), *as = strstr(l, " async ");
        ok |= as && (!eol || as < eol);
    }
    static const char *const calls[] = {"gateway -> order", "order -> inventory",
                                        "order -> payment"};
    for (size_t c = 0; c < 3; c++) {
        char want[64];
        snprintf(want, sizeof want, "\n  %-28s sync ", calls[c]);
        ok &= strstr(out, want) != NULL;
    }
    if (st != 0 || !ok) fail_msg("shoal graph --no-config over the spans: exit %d\n%s", st, out);
}

static void test_refusals_and_shipping(void **state)
{
    (void)state;
    resp r;
    char body[512], p[256];
    snprintf(body, sizeof body,
             "{\"items\":[{\"product_id\":\"%s\",\"qty\":1}],\"shipping_address\":{\"name\":"
             "\"Bob\",\"line1\":\"1 Main St\",\"city\":\"Osaka\",\"postal_code\":\"530-0001\","
             "\"country\":\"JP\"}}",
             product_id);
    /* Bob has no money: the saga releases the stock and cancels. */
    call("POST", "/api/v1/orders", bob, body, NULL, &r);
    expect("bob's order", &r, 202);
    snprintf(p, sizeof p, "/api/v1/orders/%s", jstr(r.json, "order_id"));
    resp_free(&r);
    assert_true(wait_str(p, bob, "status", "cancelled"));
    assert_true(wait_str(p, bob, "cancel_reason", "insufficient_funds"));

    /* An unknown product is 422 naming the item. */
    call("POST", "/api/v1/orders", alice,
         "{\"items\":[{\"product_id\":\"01a22200-0000-7000-8000-000000000001\",\"qty\":1}],"
         "\"shipping_address\":{\"name\":\"A\",\"line1\":\"x\",\"city\":\"y\",\"postal_code\":"
         "\"1\",\"country\":\"JP\"}}",
         NULL, &r);
    expect("unknown product in an order", &r, 422);
    resp_free(&r);

    /* Alice orders again; the admin ships; a shipped order cannot be cancelled. */
    snprintf(body, sizeof body,
             "{\"items\":[{\"product_id\":\"%s\",\"qty\":1}],\"shipping_address\":{\"name\":"
             "\"Alice\",\"line1\":\"1-2-3 Shibuya\",\"city\":\"Tokyo\",\"postal_code\":"
             "\"150-0002\",\"country\":\"JP\"}}",
             product_id);
    call("POST", "/api/v1/orders", alice, body, NULL, &r);
    expect("second order", &r, 202);
    char order_id[64];
    snprintf(order_id, sizeof order_id, "%s", jstr(r.json, "order_id"));
    resp_free(&r);
    snprintf(p, sizeof p, "/api/v1/orders/%s", order_id);
    assert_true(wait_str(p, alice, "status", "confirmed"));
    snprintf(p, sizeof p, "/api/v1/admin/orders/%s/ship", order_id);
    call("POST", p, alice, NULL, NULL, &r);
    expect("ship as a customer", &r, 403);
    resp_free(&r);
    call("POST", p, admin, NULL, NULL, &r);
    expect("ship", &r, 200);
    assert_string_equal(jstr(r.json, "status"), "shipped");
    resp_free(&r);
    snprintf(p, sizeof p, "/api/v1/orders/%s/cancel", order_id);
    call("POST", p, alice, "{\"reason\":\"too late\"}", NULL, &r);
    expect("cancel after shipping", &r, 409);
    resp_free(&r);
    call("GET", "/api/v1/orders?status=shipped", alice, NULL, NULL, &r);
    expect("list my orders", &r, 200);
    assert_int_equal(jint(r.json, "total"), 1);
    resp_free(&r);
}

static pid_t child_pid(const char *name);

static void order_one(const char *token, const char *product, int qty, char *order_id)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"items\":[{\"product_id\":\"%s\",\"qty\":%d}],\"shipping_address\":{\"name\":"
             "\"Alice\",\"line1\":\"1-2-3 Shibuya\",\"city\":\"Tokyo\",\"postal_code\":"
             "\"150-0002\",\"country\":\"JP\"}}",
             product, qty);
    resp r;
    call("POST", "/api/v1/orders", token, body, NULL, &r);
    expect("order", &r, 202);
    snprintf(order_id, 64, "%s", jstr(r.json, "order_id"));
    resp_free(&r);
}

static void test_saga_failure_paths(void **state)
{
    (void)state;
    char id[64], p[256];
    /* Not enough stock: inventory refuses, nothing is charged. */
    long long before = wallet_balance(alice);
    order_one(alice, product_id, 99, id);
    snprintf(p, sizeof p, "/api/v1/orders/%s", id);
    assert_true(wait_str(p, alice, "status", "cancelled"));
    assert_true(wait_str(p, alice, "cancel_reason", "insufficient_stock"));
    assert_int_equal(wallet_balance(alice), before);

    if (shape == TH_SHAPE_MONOLITH) {
        /* The whole shop killed mid-checkout and restarted by the supervisor: the order is
         * confirmed and charged once. */
        before = wallet_balance(alice);
        pid_t shop = child_pid("shop");
        assert_true(shop > 0);
        order_one(alice, product_id, 1, id);
        snprintf(p, sizeof p, "/api/v1/orders/%s", id);
        kill(shop, SIGKILL);
        assert_true(wait_str(p, alice, "status", "confirmed"));
        assert_true(child_pid("shop") != shop);
        usleep(500000);
        assert_int_equal(wallet_balance(alice), before - price);
        return;
    }

    /* Payment down, then back: the saga retries the charge and completes. */
    pid_t pay = child_pid("payment");
    assert_true(pay > 0);
    kill(pay, SIGSTOP);
    order_one(alice, product_id, 1, id);
    snprintf(p, sizeof p, "/api/v1/orders/%s", id);
    usleep(1500000);
    resp r;
    call("GET", p, alice, NULL, NULL, &r);
    expect("order while payment is down", &r, 200);
    assert_string_equal(jstr(r.json, "status"), "pending");
    resp_free(&r);
    kill(pay, SIGCONT);
    assert_true(wait_str(p, alice, "status", "confirmed"));
    assert_int_equal(wallet_balance(alice), before - price);

    /* The order service killed mid-saga and restarted by the supervisor: it resumes and
     * finishes, charging once. */
    before = wallet_balance(alice);
    pay = child_pid("payment");
    kill(pay, SIGSTOP);
    order_one(alice, product_id, 1, id);
    snprintf(p, sizeof p, "/api/v1/orders/%s", id);
    usleep(1000000);
    pid_t order = child_pid("order");
    assert_true(order > 0);
    kill(order, SIGKILL);
    usleep(500000);
    kill(pay, SIGCONT);
    assert_true(wait_str(p, alice, "status", "confirmed"));
    assert_true(child_pid("order") != order);
    usleep(500000);
    assert_int_equal(wallet_balance(alice), before - price);
}

static void test_error_shapes(void **state)
{
    (void)state;
    resp r;
    call("GET", "/api/v1/nothing-here", NULL, NULL, NULL, &r);
    expect("unknown route", &r, 404);
    resp_free(&r);
    call("DELETE", "/api/v1/products", NULL, NULL, NULL, &r);
    expect("wrong method", &r, 405);
    resp_free(&r);
    /* 413: a body over the route's limit. */
    char *big = malloc(40000);
    memset(big, 'a', 39999);
    big[0] = '"';
    big[39998] = '"';
    big[39999] = '\0';
    call("POST", "/api/v1/auth/register", NULL, big, NULL, &r);
    expect("body too large", &r, 413);
    resp_free(&r);
    free(big);
    /* 429: login is rate limited per client. */
    int limited = 0;
    for (int i = 0; i < 40 && !limited; i++) {
        call("POST", "/api/v1/auth/login", NULL,
             "{\"email\":\"nobody@example.com\",\"password\":\"whatever1\"}", NULL, &r);
        if (r.status == 429) {
            limited = 1;
            assert_true(atoi(r.retry_after) >= 1);
        }
        resp_free(&r);
    }
    assert_true(limited);
}

/* `promtool check metrics` (Debian prometheus) on `text`; its complaints go to stderr. */
static int promtool_ok(const char *what, const char *text, size_t len)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "tee %s/metrics-%s.txt | promtool check metrics > %s/promtool-%s.out 2>&1", dir, what,
             dir, what);
    FILE *p = popen(cmd, "w");
    if (!p) return 0;
    fwrite(text, 1, len, p);
    int st = pclose(p);
    if (st != 0) {
        snprintf(cmd, sizeof cmd, "cat %s/promtool-%s.out >&2", dir, what);
        if (system(cmd) != 0) fprintf(stderr, "promtool failed on %s\n", what);
    }
    return st == 0;
}

/* Every process's /metrics, after a checkout, as Prometheus scrapes it: the exposition passes
 * `promtool check metrics` and holds the families the alert rules of deploy/prometheus read. */
static void test_metrics_for_prometheus(void **state)
{
    (void)state;
    static const char *const everywhere[] = {
        "\n# TYPE service_requests_total counter\n",
        "\n# TYPE service_request_duration_seconds histogram\n",
        "\n# TYPE process_cpu_seconds_total counter\n",
        "\nprocess_resident_memory_bytes ",
        "\nprocess_open_fds ",
        "\nprocess_max_fds ",
        "\nprocess_start_time_seconds ",
        "\nbuild_info{version=\"",
    };
    for (int i = 0; i <= 7; i++) {
        int port = i < 7 ? svc_port(i) : admin_port;
        const char *name = i < 7 ? names[i] : "gateway";
        const char m[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        th_response r;
        assert_int_equal(th_roundtrip(port, m, sizeof m - 1, &r, 20000), 200);
        if (!promtool_ok(name, r.body, r.body_len))
            fail_msg("promtool rejects %s's /metrics", name);
        for (size_t k = 0; k < sizeof everywhere / sizeof everywhere[0]; k++)
            if (!strstr(r.body, everywhere[k])) fail_msg("%s: no %s", name, everywhere[k]);
        /* Labels stay bounded: route templates, never an id from a path. */
        assert_null(strstr(r.body, product_id));
        if (strcmp(name, "order") == 0) {
            assert_non_null(strstr(r.body, "route=\"/orders/{order_id}\",status=\"200\"}"));
            assert_non_null(
                strstr(r.body, "\nsaga_instances{type=\"checkout\",status=\"completed\"} "));
            assert_non_null(strstr(r.body, "\norder_saga_oldest_age_seconds "));
            assert_non_null(strstr(r.body, "\noutbox_oldest_age_seconds{service=\"order\"} "));
            assert_non_null(strstr(r.body, "\ncircuit_breaker_state{upstream=\"payment\","));
        }
        if (strcmp(name, "notification") == 0) {
            assert_non_null(strstr(r.body, "\nbus_consumer_lag{"));
            assert_non_null(strstr(r.body, "\n# TYPE bus_dead_lettered_total counter\n"));
        }
        if (strcmp(name, "gateway") == 0) {
            assert_non_null(strstr(r.body, "route=\"/api/v1/orders\",status=\"202\"}"));
            assert_non_null(strstr(r.body, "\ncircuit_breaker_state{upstream=\"order\","));
        }
        th_response_free(&r);
    }
}

static pid_t child_pid(const char *name)
{
    char line[512], pat[64];
    snprintf(pat, sizeof pat, "%s ", name);
    FILE *f = fopen(uplog, "r");
    pid_t pid = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *q = strstr(line, "started (pid ");
        if (q && strstr(line, pat)) pid = atoi(q + 13);
    }
    if (f) fclose(f);
    return pid;
}

static void test_stopped_service(void **state)
{
    (void)state;
    if (shape == TH_SHAPE_MONOLITH) {
        print_message("payment is not a process of its own in the monolith: nothing to stop\n");
        skip();
    }
    pid_t pay = child_pid("payment");
    assert_true(pay > 0);
    /* Freeze the payment service: calls time out, its breaker opens, then 503 comes fast. */
    kill(pay, SIGSTOP);
    resp r;
    int fast503 = 0;
    for (int i = 0; i < 40 && !fast503; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        call("GET", "/api/v1/wallet", alice, NULL, NULL, &r);
        clock_gettime(CLOCK_MONOTONIC, &b);
        long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
        if (r.status == 503 && r.retry_after[0] && ms < 1000) fast503 = 1;
        resp_free(&r);
        /* Another route is unaffected meanwhile (bulkheads per cluster). */
        call("GET", "/api/v1/products?per_page=1", NULL, NULL, NULL, &r);
        expect("products while payment is down", &r, 200);
        resp_free(&r);
    }
    kill(pay, SIGCONT);
    assert_true(fast503);
    /* Recovery through half-open once the service answers again. */
    int back = 0;
    for (int i = 0; i < 300 && !back; i++, usleep(100000)) {
        call("GET", "/api/v1/wallet", alice, NULL, NULL, &r);
        back = r.status == 200;
        resp_free(&r);
    }
    assert_true(back);
}

/* A valid proof of the gateway's edge (a process holding the gateway's key file), sent straight
 * to the order service's own port with a forged caller service: without the mesh the proof is
 * the check and passes; in mesh mode it counts only through the sidecar, so it is refused. */
static void test_forged_caller_straight_to_service(void **state)
{
    (void)state;
    char path[700], err[256];
    snprintf(path, sizeof path, "%s/data/keys/gateway.keys", dir);
    static sl_identity_keyring ring;
    assert_int_equal(sl_identity_keyring_load(path, &ring, err), 0);
    const sl_identity_edge *e = sl_identity_keyring_find(&ring, "gateway", 7, "order");
    assert_non_null(e);
    sl_identity_msg m = {
        .callee = "order", .method = SL_HTTP_GET, .target = SL_SLICE_LIT("/orders")};
    char proof[SL_IDENTITY_PROOF_MAX];
    sl_http_header h[SL_IDENTITY_NHEADERS];
    assert_int_equal(sl_identity_headers(e, "u-forged", "customer", &m,
                                         sl_clock_wall_ms(sl_clock_system()), proof, h),
                     0);
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET /orders HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "X-Shoal-Peer-Service: gateway\r\n");
    for (int i = 0; i < SL_IDENTITY_NHEADERS; i++)
        n += snprintf(req + n, sizeof req - (size_t)n, "%.*s: %.*s\r\n", (int)h[i].name.len,
                      h[i].name.ptr, (int)h[i].value.len, h[i].value.ptr);
    n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
    th_response r;
    int status = th_roundtrip(svc_port(4), req, (size_t)n, &r, 20000);
    memset(&ring, 0, sizeof ring);
    if (status > 0) th_response_free(&r);
    print_message("a gateway proof straight to order's own port (%s): %d\n",
                  mesh ? "mesh" : "plain", status);
    assert_int_equal(status, mesh ? 401 : 200);
}

/* ---- secrets on disk ----------------------------------------------------- */

/* 1 if the file at `path` holds `needle` anywhere (it is read whole). */
static int file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (size_t got; (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(f);
    int found = memmem(buf, n, needle, strlen(needle)) != NULL;
    free(buf);
    return found;
}

/* 0 if `path` has exactly the mode `want`, else says so and returns 1. */
static int check_mode(const char *path, mode_t want)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        print_error("stat %s: %s\n", path, strerror(errno));
        return 1;
    }
    if ((st.st_mode & 07777) == want) return 0;
    print_error("%s has mode %04o, want %04o\n", path, (unsigned)(st.st_mode & 07777),
                (unsigned)want);
    return 1;
}

/* The admin password is only in data/admin-credentials; the data directory, its logs/ and
 * nats/ are owner-only, and so is every log file. Every problem is listed, then it fails. */
static void test_secrets_stay_private(void **state)
{
    (void)state;
    char path[1200], line[256], password[128] = "";
    snprintf(path, sizeof path, "%s/data/admin-credentials", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        sscanf(line, "password: %127s", password);
    fclose(f);
    assert_true(strlen(password) >= 16);
    int bad = check_mode(path, 0600);

    snprintf(path, sizeof path, "%s/data", dir);
    bad += check_mode(path, 0700);
    snprintf(path, sizeof path, "%s/data/nats", dir);
    bad += check_mode(path, 0700);
    char logs[800];
    snprintf(logs, sizeof logs, "%s/data/logs", dir);
    bad += check_mode(logs, 0700);
    DIR *d = opendir(logs);
    assert_non_null(d);
    int nlogs = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", logs, e->d_name);
        bad += check_mode(path, 0600);
        if (file_contains(path, password)) {
            print_error("%s contains the admin password\n", path);
            bad++;
        }
        nlogs++;
    }
    closedir(d);
    if (mesh) { /* the CA's key, the leaves' keys and the local hops' tokens */
        static const char *const sub[] = {"mesh", "mesh/certs", "mesh/tokens"};
        for (size_t k = 0; k < sizeof sub / sizeof sub[0]; k++) {
            snprintf(path, sizeof path, "%s/data/%s", dir, sub[k]);
            bad += check_mode(path, 0700);
        }
        snprintf(path, sizeof path, "%s/data/mesh/ca.key", dir);
        bad += check_mode(path, 0600);
        for (int k = 0; k < 7; k++) {
            snprintf(path, sizeof path, "%s/data/mesh/tokens/%s.token", dir, names[k]);
            bad += check_mode(path, 0600);
            snprintf(path, sizeof path, "%s/data/mesh/certs/%s.key", dir, names[k]);
            bad += check_mode(path, 0600);
        }
    }
    /* the service processes (seven when separate), the gateway and nats-server (none in the
     * monolith: its services share the in-process broker) */
    assert_true(nlogs >= (shape == TH_SHAPE_MONOLITH ? 1 : 2) + th_shape_service_procs(shape));
    if (bad) fail_msg("%d file(s) or directories expose secrets (listed above)", bad);
}

/* ---- set-up: configuration with free ports, then `shoal up` ------------- */

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

/* Replaces every `from` in the NUL-terminated s (capacity 1 MiB) by `to`. */
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

static int setup(void **state)
{
    (void)state;
    shape = th_shape_get();
    mesh = th_mesh_on();
    if (mesh && shape != TH_SHAPE_SEPARATE) {
        fprintf(stderr, "SHOAL_E2E_MESH=1 needs the separate shape\n");
        return -1;
    }
    if (!mkdtemp(dir)) return -1;
    char mesh_lines[256] = "";
    int mesh_base = mesh ? th_mesh_ports(8, mesh_lines, sizeof mesh_lines) : 0;
    const char *src = getenv("SHOAL_SOURCE_DIR");
    char path[800];
    snprintf(path, sizeof path, "%s/config/gateway.yaml", src ? src : ".");
    char *gwcfg = slurp(path);
    if (!gwcfg) return -1;
    for (int i = 0; i < 7; i++) {
        ports[i] = mesh ? mesh_base + i : free_port5();
        char from[32], to[96];
        snprintf(from, sizeof from, "127.0.0.1:%d]\n", 8101 + i);
        /* Every cluster's breaker recovers as quickly as payment's below (the default is
         * 30 s): a process killed and restarted (in the monolith, all seven services) is
         * reached again soon after it is back. */
        snprintf(to, sizeof to, "127.0.0.1:%d]\n%s", ports[i],
                 strcmp(names[i], "payment") == 0 ? ""
                                                  : "    breaker: {recovery_timeout_ms: 2000}\n");
        replace_all(gwcfg, from, to);
    }
    admin_port = free_port5();
    char from[32], to[32];
    snprintf(to, sizeof to, "port: %d", admin_port);
    replace_all(gwcfg, "port: 9901", to);
    /* Quick recovery for the stopped-service test. */
    replace_all(gwcfg, "recovery_timeout_ms: 30000", "recovery_timeout_ms: 2000");
    snprintf(path, sizeof path, "%s/gateway.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs(gwcfg, f);
    fclose(f);
    free(gwcfg);
    (void)from;

    gw = mesh ? mesh_base + 7 : free_port5();
    int nats = free_port5();
    char local[800];
    snprintf(local, sizeof local, "%s/local.yaml", dir);
    f = fopen(local, "w");
    fprintf(f,
            "data_dir: %s/data\nready_stock_path: /api/v1/products?per_page=1\nnats:\n  port: %d\n"
            "%sservices:\n",
            dir, nats, mesh_lines);
    otlp = th_otlp_rx_start(TH_OTLP_OK);
    char common[256];
    snprintf(common, sizeof common,
             "SHOAL_BUS__ACK_WAIT_MS: \"3000\", SHOAL_LOG__LEVEL: warn, "
             "SHOAL_TELEMETRY__OTLP_ENDPOINT: \"http://127.0.0.1:%d\", "
             "SHOAL_TELEMETRY__FLUSH_MS: \"100\"",
             th_otlp_rx_port(otlp));
    for (int i = 0; i < 7; i++) {
        const char *extra = "";
        if (strcmp(names[i], "user") == 0)
            extra = ", SHOAL_USER__BOOTSTRAP_ADMIN: \"true\", SHOAL_USER__PASSWORD_COST: min";
        if (strcmp(names[i], "product") == 0) extra = ", SHOAL_PRODUCT__DEMO: \"true\"";
        if (strcmp(names[i], "notification") == 0) extra = "";
        if (strcmp(names[i], "order") == 0) extra = "";
        fprintf(f, "  - {name: %s, port: %d, env: {%s%s}%s}\n", names[i], ports[i], common, extra,
                strcmp(names[i], "order") == 0 ? ", calls: [inventory, payment]" : "");
    }
    fprintf(f, "  - {name: gateway, port: %d, config: %s, env: {%s}}\n", gw, path, common);
    th_shape_write_hosting(f, shape);
    fclose(f);
    /* The order service finds its participants through upstreams.* (defaults: 8104, 8106). */
    char cmd[2400];
    snprintf(cmd, sizeof cmd,
             "sed -i 's|  - {name: order, port: \\([0-9]*\\), env: {|  - {name: order, port: "
             "\\1, env: {SHOAL_UPSTREAMS__INVENTORY__URL: \"http://127.0.0.1:%d\", "
             "SHOAL_UPSTREAMS__PAYMENT__URL: \"http://127.0.0.1:%d\", |' %s",
             ports[3], ports[5], local);
    if (system(cmd) != 0) return -1;
    /* What an earlier version left: data/ and data/logs/ 0755, a log 0644 (tightened on start;
     * nats/ and the other logs are made fresh). */
    snprintf(cmd, sizeof cmd,
             "mkdir -m 0755 %s/data %s/data/logs && : > %s/data/logs/gateway.log && "
             "chmod 0644 %s/data/logs/gateway.log",
             dir, dir, dir, dir);
    if (system(cmd) != 0) return -1;
    snprintf(uplog, sizeof uplog, "%s/up.log", dir);
    snprintf(cmd, sizeof cmd, "exec %s up --config %s > %s 2>&1", th_bin("shoal"), local, uplog);
    char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    up = th_spawn(sh, NULL, NULL);
    /* Ready when `shoal up` says so (every process ready and the catalogue shows stock); the
     * first catalogue read right after must see stock (test_catalogue checks it). */
    for (int i = 0; i < 1800; i++) {
        char *log = slurp(uplog);
        int ready = log && strstr(log, "the shop is ready") != NULL;
        free(log);
        if (ready) {
            resp r;
            call("GET", "/api/v1/products?per_page=1", NULL, NULL, NULL, &r);
            json_t *first = json_array_get(json_object_get(r.json, "items"), 0);
            first_read_available = r.status == 200 ? jint(first, "available") : -1;
            resp_free(&r);
            return 0;
        }
        usleep(100000);
    }
    /* The directory goes with the teardown: put what it says in the test's output. */
    fprintf(stderr, "the shop did not come up; the end of %s and of every log:\n", uplog);
    char cmd2[1400];
    snprintf(cmd2, sizeof cmd2,
             "tail -n 40 %s >&2; for f in %s/data/logs/*.log; do echo \"== $f\" >&2; "
             "tail -n 15 \"$f\" >&2; done",
             uplog, dir);
    if (system(cmd2) != 0) fprintf(stderr, "(could not show the logs)\n");
    return -1;
}

static int teardown(void **state)
{
    (void)state;
    int st = th_stop(up, SIGTERM, 60000);
    th_otlp_rx_stop(otlp);
    char cmd[800];
    if (getenv("SHOAL_E2E_KEEP") == NULL) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) return -1;
    }
    return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_and_users),
        cmocka_unit_test(test_sessions_and_revocation),
        cmocka_unit_test(test_catalogue),
        cmocka_unit_test(test_wallet_cart_checkout),
        cmocka_unit_test(test_checkout_trace),
        cmocka_unit_test(test_refusals_and_shipping),
        cmocka_unit_test(test_saga_failure_paths),
        cmocka_unit_test(test_error_shapes),
        cmocka_unit_test(test_metrics_for_prometheus),
        cmocka_unit_test(test_stopped_service),
        cmocka_unit_test(test_forged_caller_straight_to_service),
        cmocka_unit_test(test_secrets_stay_private),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
