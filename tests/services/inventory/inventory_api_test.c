/*
 * shoal-inventory over real sockets, on SQLite and PostgreSQL (argv[1]):
 * the reservation life cycle and its idempotency, business refusals
 * (insufficient stock, mismatch, commit after release), bad input on every
 * endpoint answered with problem+json naming the field and the database
 * unchanged, identity and roles, restock with Idempotency-Key, the audit,
 * two clients racing over HTTP for the last unit against two workers, and
 * the time-to-live sweep with a short TTL.
 */
#include "inventory.h"

#include "../svc_harness.h"

#include <shoal/bus.h>
#include <shoal/outbox.h>

#include <pthread.h>

static svc_proc g_svc;
static sl_db *g_db; /* the test's own connection to the service's database */

static void seed(sl_db *db, const char *pid, int64_t initial)
{
    char data[200];
    snprintf(data, sizeof data, "{\"product_id\":\"%s\",\"initial_stock\":%lld}", pid,
             (long long)initial);
    json_t *d = json_loads(data, 0, NULL);
    sl_bus_msg msg = {.id = pid, .type = "shop.product.created.v1", .data = d};
    char reason[128];
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, inv_apply_product_created(NULL, db, &msg, reason, sizeof reason));
    HARNESS_OK(db, sl_db_commit(db));
    json_decref(d);
}

/* A digest of everything the service stores, to prove that bad input changed nothing. */
static int64_t db_digest(sl_db *db)
{
    return harness_int(db, "SELECT (SELECT COUNT(*) FROM outbox) * 1000000 + "
                           "(SELECT COUNT(*) FROM reservations) * 10000 + "
                           "(SELECT COUNT(*) FROM reservation_items) * 100 + "
                           "(SELECT COALESCE(SUM(stock * 7 + reserved * 3), 0) FROM stock) + "
                           "(SELECT COUNT(*) FROM idempotency_keys) * 100000000");
}

static int setup(void **state)
{
    (void)state;
    svc_start(&g_svc, "inventory", NULL, 1);
    harness_open_url(g_svc.db_url, &g_db);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sl_db_close(g_db);
    svc_stop(&g_svc);
    return 0;
}

#define SVC "svc:order"

static void test_lifecycle(void **state)
{
    (void)state;
    seed(g_db, "p1", 5);
    seed(g_db, "p2", 3);
    const char *body = "{\"order_id\":\"o1\",\"items\":[{\"product_id\":\"p2\",\"qty\":1},"
                       "{\"product_id\":\"p1\",\"qty\":2}]}";
    json_t *r = svc_call(&g_svc, "POST", "/reservations", SVC, "service", body, 201);
    assert_string_equal(svc_str(r, "status"), "reserved");
    assert_string_equal(svc_str(r, "order_id"), "o1");
    assert_int_equal(json_array_size(json_object_get(r, "items")), 2);
    assert_true(strlen(svc_str(r, "expires_at")) >= 20);
    json_decref(r);
    r = svc_call(&g_svc, "GET", "/stock/p1", SVC, "service", NULL, 200);
    assert_int_equal(svc_int(r, "stock"), 5);
    assert_int_equal(svc_int(r, "reserved"), 2);
    assert_int_equal(svc_int(r, "available"), 3);
    json_decref(r);

    /* The same order again (a retried saga step): 200, same reservation, no second effect. */
    r = svc_call(&g_svc, "POST", "/reservations", SVC, "service", body, 200);
    assert_string_equal(svc_str(r, "status"), "reserved");
    json_decref(r);
    assert_int_equal(harness_int(g_db, "SELECT reserved FROM stock WHERE product_id = 'p1'"), 2);
    /* The same order with other items: 409 reservation_mismatch. */
    r = svc_call(&g_svc, "POST", "/reservations", SVC, "service",
                 "{\"order_id\":\"o1\",\"items\":[{\"product_id\":\"p1\",\"qty\":1}]}", 409);
    assert_string_equal(svc_str(r, "reason"), "reservation_mismatch");
    json_decref(r);

    r = svc_call(&g_svc, "POST", "/reservations/o1/commit", SVC, "service", NULL, 200);
    assert_string_equal(svc_str(r, "status"), "committed");
    json_decref(r);
    json_decref(svc_call(&g_svc, "POST", "/reservations/o1/commit", SVC, "service", NULL, 200));
    r = svc_call(&g_svc, "GET", "/stock/p1", SVC, "admin", NULL, 200);
    assert_int_equal(svc_int(r, "stock"), 3);
    assert_int_equal(svc_int(r, "available"), 3);
    json_decref(r);
    /* Cancelled after confirmation (before shipping): releasing returns the units, once. */
    r = svc_call(&g_svc, "POST", "/reservations/o1/release", SVC, "service", NULL, 200);
    assert_string_equal(svc_str(r, "status"), "released");
    json_decref(r);
    json_decref(svc_call(&g_svc, "POST", "/reservations/o1/release", SVC, "service", NULL, 200));
    r = svc_call(&g_svc, "GET", "/stock/p1", SVC, "admin", NULL, 200);
    assert_int_equal(svc_int(r, "stock"), 5);
    assert_int_equal(svc_int(r, "available"), 5);
    json_decref(r);

    /* Release, twice; then a commit is refused so the saga knows. */
    json_decref(svc_call(&g_svc, "POST", "/reservations", SVC, "service",
                         "{\"order_id\":\"o2\",\"items\":[{\"product_id\":\"p2\",\"qty\":2}]}",
                         201));
    r = svc_call(&g_svc, "POST", "/reservations/o2/release", SVC, "service", NULL, 200);
    assert_string_equal(svc_str(r, "status"), "released");
    assert_string_equal(svc_str(r, "reason"), "requested");
    json_decref(r);
    json_decref(svc_call(&g_svc, "POST", "/reservations/o2/release", SVC, "service", NULL, 200));
    r = svc_call(&g_svc, "POST", "/reservations/o2/commit", SVC, "service", NULL, 409);
    assert_string_equal(svc_str(r, "reason"), "already_released");
    json_decref(r);
    r = svc_call(&g_svc, "GET", "/reservations/o2", SVC, "service", NULL, 200);
    assert_string_equal(svc_str(r, "status"), "released");
    json_decref(r);

    /* Releasing an order never reserved (a compensation that overtook its action). */
    r = svc_call(&g_svc, "POST", "/reservations/o3/release", SVC, "service", NULL, 200);
    assert_string_equal(svc_str(r, "status"), "released");
    json_decref(r);
    r = svc_call(&g_svc, "POST", "/reservations", SVC, "service",
                 "{\"order_id\":\"o3\",\"items\":[{\"product_id\":\"p2\",\"qty\":1}]}", 409);
    assert_string_equal(svc_str(r, "reason"), "already_released");
    json_decref(r);
    json_decref(svc_call(&g_svc, "POST", "/reservations/nope/commit", SVC, "service", NULL, 404));
    json_decref(svc_call(&g_svc, "GET", "/reservations/nope", SVC, "service", NULL, 404));

    assert_int_equal(harness_int(g_db, "SELECT COUNT(*) FROM outbox WHERE type = "
                                       "'shop.inventory.reserved.v1'"),
                     2);
    assert_int_equal(harness_int(g_db, "SELECT COUNT(*) FROM outbox WHERE type = "
                                       "'shop.inventory.committed.v1'"),
                     1);
    assert_int_equal(harness_int(g_db, "SELECT COUNT(*) FROM outbox WHERE type = "
                                       "'shop.inventory.released.v1'"),
                     2);
    /* stock_changed: 2 seeds, reserve o1 (2), commit o1 (2), return o1 (2), reserve o2,
     * release o2. */
    assert_int_equal(harness_int(g_db, "SELECT COUNT(*) FROM outbox WHERE type = "
                                       "'shop.inventory.stock_changed.v1'"),
                     10);
    r = svc_call(&g_svc, "GET", "/admin/audit", "admin1", "admin", NULL, 200);
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
}

static void test_refusals_change_nothing(void **state)
{
    (void)state;
    seed(g_db, "q1", 2);
    seed(g_db, "q2", 1);
    int64_t before = db_digest(g_db);
    json_t *r = svc_call(&g_svc, "POST", "/reservations", SVC, "service",
                         "{\"order_id\":\"r1\",\"items\":[{\"product_id\":\"q1\",\"qty\":1},"
                         "{\"product_id\":\"q2\",\"qty\":5}]}",
                         409);
    assert_string_equal(svc_str(r, "reason"), "insufficient_stock");
    assert_true(svc_has_error(r, "items[1].qty"));
    assert_false(svc_has_error(r, "items[0].qty"));
    json_t *it = json_array_get(json_object_get(r, "items"), 0);
    assert_string_equal(svc_str(it, "product_id"), "q2");
    assert_int_equal(svc_int(it, "available"), 1);
    json_decref(r);
    r = svc_call(&g_svc, "POST", "/reservations", SVC, "service",
                 "{\"order_id\":\"r2\",\"items\":[{\"product_id\":\"q1\",\"qty\":1},"
                 "{\"product_id\":\"ghost\",\"qty\":1}]}",
                 422);
    assert_true(svc_has_error(r, "items[1].product_id"));
    json_decref(r);
    assert_int_equal(db_digest(g_db), before);
}

static void expect_bad(const char *method, const char *path, const char *role, const char *body,
                       size_t len, int status, const char *field)
{
    th_response res;
    int st = svc_req_raw(&g_svc, method, path, "u1", role, body, len, NULL, &res);
    if (st != status)
        fail_msg("%s %s %.*s: status %d, want %d: %s", method, path, (int)len, body, st, status,
                 res.body ? res.body : "");
    const char *ct = th_header(&res, "content-type");
    assert_non_null(ct);
    assert_non_null(strstr(ct, "application/problem+json"));
    json_t *v = svc_json(&res);
    if (field && !svc_has_error(v, field))
        fail_msg("%s %s %.*s: no error for field %s: %s", method, path, (int)len, body, field,
                 res.body);
    json_decref(v);
    th_response_free(&res);
}

static void test_bad_input_everywhere(void **state)
{
    (void)state;
    seed(g_db, "b1", 4);
    json_decref(svc_call(&g_svc, "POST", "/reservations", SVC, "service",
                         "{\"order_id\":\"b-o1\",\"items\":[{\"product_id\":\"b1\",\"qty\":1}]}",
                         201));
    int64_t before = db_digest(g_db);
    static const struct {
        const char *body;
        const char *field;
    } res_cases[] = {
        {"{}", "order_id"},
        {"{\"order_id\":\"x\"}", "items"},
        {"{\"order_id\":1,\"items\":[{\"product_id\":\"b1\",\"qty\":1}]}", "order_id"},
        {"{\"order_id\":\"x\",\"items\":{}}", "items"},
        {"{\"order_id\":\"x\",\"items\":[{\"product_id\":\"b1\",\"qty\":-1}]}", "items[0].qty"},
        {"{\"order_id\":\"x\",\"items\":[{\"product_id\":\"b1\",\"qty\":0}]}", "items[0].qty"},
        {"{\"order_id\":\"x\",\"items\":[{\"product_id\":\"b1\",\"qty\":99999999999999999}]}",
         "items[0].qty"},
        {"{\"order_id\":\"x\",\"items\":[{\"product_id\":\"b1\",\"qty\":\"2\"}]}", "items[0].qty"},
        {"{\"order_id\":\"x\",\"items\":[{\"product_id\":null,\"qty\":2}]}", "items[0].product_id"},
        {"{\"order_id\":\"x\",\"items\":[{\"product_id\":\"b1\",\"qty\":1}],\"y\":1}", "y"},
        {"{\"order_id\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\","
         "\"items\":[{\"product_id\":\"b1\",\"qty\":1}]}",
         "order_id"},
        {"{\"order_id\":\"\xc3\xa9t\xc3\xa9\",\"items\":[{\"product_id\":\"b1\",\"qty\":1}]}",
         "order_id"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(res_cases); i++)
        expect_bad("POST", "/reservations", "service", res_cases[i].body, strlen(res_cases[i].body),
                   400, res_cases[i].field);
    /* Invalid UTF-8 and malformed JSON: 400 from the parser. */
    const char bad_utf8[] = "{\"order_id\":\"\xff\xfe\",\"items\":[]}";
    expect_bad("POST", "/reservations", "service", bad_utf8, sizeof bad_utf8 - 1, 400, NULL);
    expect_bad("POST", "/reservations", "service", "{\"order_id\":", 12, 400, NULL);
    expect_bad("POST", "/reservations", "service", "[1]", 3, 400, NULL);

    static const struct {
        const char *body;
        const char *field;
    } rs_cases[] = {
        {"{}", "quantity"},
        {"{\"quantity\":0}", "quantity"},
        {"{\"quantity\":-5}", "quantity"},
        {"{\"quantity\":1000001}", "quantity"},
        {"{\"quantity\":1e30}", "quantity"},
        {"{\"quantity\":2.5}", "quantity"},
        {"{\"quantity\":\"5\"}", "quantity"},
        {"{\"quantity\":5,\"note\":\"x\"}", "note"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(rs_cases); i++)
        expect_bad("POST", "/stock/b1/restock", "admin", rs_cases[i].body, strlen(rs_cases[i].body),
                   400, rs_cases[i].field);
    expect_bad("POST", "/stock/ghost/restock", "admin", "{\"quantity\":1}", 14, 404, "product_id");
    char longpath[200];
    snprintf(longpath, sizeof longpath, "/stock/%0*d/restock", 65, 1);
    expect_bad("POST", longpath, "admin", "{\"quantity\":1}", 14, 404, "product_id");
    expect_bad("GET", "/stock/ghost", "service", NULL, 0, 404, "product_id");
    expect_bad("GET", "/stock/a%20b", "service", NULL, 0, 404, "product_id");
    expect_bad("POST", "/reservations/bad%20id/release", "service", NULL, 0, 404, "order_id");
    expect_bad("POST", "/reservations/bad%ffid/commit", "service", NULL, 0, 404, "order_id");
    expect_bad("GET", "/reservations/ghost", "service", NULL, 0, 404, "order_id");
    assert_int_equal(db_digest(g_db), before);
}

static void test_identity_and_roles(void **state)
{
    (void)state;
    const char *body = "{\"order_id\":\"i1\",\"items\":[{\"product_id\":\"b1\",\"qty\":1}]}";
    int64_t before = db_digest(g_db);
    expect_bad("POST", "/reservations", NULL, body, strlen(body), 401, NULL);
    expect_bad("POST", "/reservations", "customer", body, strlen(body), 403, NULL);
    expect_bad("POST", "/reservations/i1/release", "customer", NULL, 0, 403, NULL);
    expect_bad("GET", "/stock/b1", NULL, NULL, 0, 401, NULL);
    expect_bad("POST", "/stock/b1/restock", "service", "{\"quantity\":1}", 14, 403, NULL);
    expect_bad("POST", "/stock/b1/restock", "customer", "{\"quantity\":1}", 14, 403, NULL);
    expect_bad("GET", "/admin/audit", "service", NULL, 0, 403, NULL);
    /* A forged proof is refused like a missing one. */
    th_response res;
    const char *forged = "x-user-id: a\r\nx-user-role: admin\r\nx-shoal-identity: v1.1.00\r\n";
    assert_int_equal(svc_req_raw(&g_svc, "GET", "/admin/audit", NULL, NULL, NULL, 0, forged, &res),
                     401);
    th_response_free(&res);
    assert_int_equal(db_digest(g_db), before);
}

static void test_restock_idempotency(void **state)
{
    (void)state;
    seed(g_db, "k1", 1);
    json_t *r =
        svc_call(&g_svc, "POST", "/stock/k1/restock", "admin1", "admin", "{\"quantity\":4}", 200);
    assert_int_equal(svc_int(r, "available"), 5);
    json_decref(r);
    const char *key = "Idempotency-Key: rk-1\r\n";
    th_response a, b, c;
    assert_int_equal(svc_req_raw(&g_svc, "POST", "/stock/k1/restock", "admin1", "admin",
                                 "{\"quantity\":10}", 15, key, &a),
                     200);
    assert_int_equal(svc_req_raw(&g_svc, "POST", "/stock/k1/restock", "admin1", "admin",
                                 "{\"quantity\":10}", 15, key, &b),
                     200);
    assert_int_equal(a.body_len, b.body_len);
    assert_memory_equal(a.body, b.body, a.body_len);
    assert_int_equal(harness_int(g_db, "SELECT stock FROM stock WHERE product_id = 'k1'"), 15);
    assert_int_equal(svc_req_raw(&g_svc, "POST", "/stock/k1/restock", "admin1", "admin",
                                 "{\"quantity\":11}", 15, key, &c),
                     422);
    th_response_free(&a);
    th_response_free(&b);
    th_response_free(&c);
    assert_int_equal(harness_int(g_db, "SELECT stock FROM stock WHERE product_id = 'k1'"), 15);
    /* Over the stock cap: 409, unchanged. */
    HARNESS_OK(g_db, sl_db_exec(g_db, "UPDATE stock SET stock = 1000000000000 WHERE product_id = "
                                      "'k1'"));
    r = svc_call(&g_svc, "POST", "/stock/k1/restock", "admin1", "admin", "{\"quantity\":1}", 409);
    assert_string_equal(svc_str(r, "reason"), "stock_limit");
    json_decref(r);
    HARNESS_OK(g_db, sl_db_exec(g_db, "UPDATE stock SET stock = 15 WHERE product_id = 'k1'"));
}

/* The `ok` of the audit check `name` in an /admin/audit answer (fails the test when absent). */
static bool check_ok(const json_t *audit, const char *name)
{
    json_t *checks = json_object_get(audit, "checks"), *c;
    size_t i;
    json_array_foreach(checks, i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "name")), name) == 0)
            return json_is_true(json_object_get(c, "ok"));
    }
    fail_msg("no audit check %s", name);
    return false;
}

static void test_audit_over_http(void **state)
{
    (void)state;
    json_t *r = svc_call(&g_svc, "GET", "/admin/audit", "admin1", "admin", NULL, 200);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_int_equal(json_array_size(json_object_get(r, "violations")), 0);
    json_decref(r);
    HARNESS_OK(g_db, sl_db_exec(g_db, "UPDATE stock SET reserved = reserved + 1 WHERE "
                                      "product_id = 'k1'"));
    r = svc_call(&g_svc, "GET", "/admin/audit", "admin1", "admin", NULL, 200);
    assert_true(json_is_false(json_object_get(r, "ok")));
    json_t *v = json_array_get(json_object_get(r, "violations"), 0);
    assert_string_equal(svc_str(v, "check"), "reserved_mismatch");
    assert_string_equal(svc_str(v, "subject"), "k1");
    json_decref(r);
    HARNESS_OK(g_db, sl_db_exec(g_db, "UPDATE stock SET reserved = reserved - 1 WHERE "
                                      "product_id = 'k1'"));
    r = svc_call(&g_svc, "GET", "/admin/audit", "admin1", "admin", NULL, 200);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_true(check_ok(r, "stock_ledger"));
    json_decref(r);
    /* A unit that appears from nowhere (no restock) breaks the ledger, not the reservations. */
    HARNESS_OK(g_db,
               sl_db_exec(g_db, "UPDATE stock SET stock = stock + 1 WHERE product_id = 'k1'"));
    r = svc_call(&g_svc, "GET", "/admin/audit", "admin1", "admin", NULL, 200);
    assert_false(check_ok(r, "stock_ledger"));
    json_decref(r);
    HARNESS_OK(g_db,
               sl_db_exec(g_db, "UPDATE stock SET stock = stock - 1 WHERE product_id = 'k1'"));
    r = svc_call(&g_svc, "GET", "/admin/audit", "admin1", "admin", NULL, 200);
    assert_true(check_ok(r, "stock_ledger"));
    json_decref(r);
}

/* ---- two HTTP clients, two workers, the last unit ---- */

#define HTTP_ROUNDS 25

typedef struct client {
    const svc_proc *p;
    pthread_barrier_t *bar;
    const char *tag;
    int status[HTTP_ROUNDS];
} client;

static void *client_run(void *arg)
{
    client *c = arg;
    for (int i = 0; i < HTTP_ROUNDS; i++) {
        char body[200];
        snprintf(body, sizeof body,
                 "{\"order_id\":\"%s-%d\",\"items\":[{\"product_id\":\"last-%d\",\"qty\":1}]}",
                 c->tag, i, i);
        th_response r;
        pthread_barrier_wait(c->bar);
        c->status[i] = svc_req(c->p, "POST", "/reservations", SVC, "service", body, &r);
        th_response_free(&r);
    }
    return NULL;
}

static void test_last_unit_over_http(void **state)
{
    (void)state;
    svc_proc p;
    svc_start(&p, "inventory", NULL, 2);
    sl_db *db;
    harness_open_url(p.db_url, &db);
    for (int i = 0; i < HTTP_ROUNDS; i++) {
        char pid[32];
        snprintf(pid, sizeof pid, "last-%d", i);
        seed(db, pid, 1);
    }
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    client a = {.p = &p, .bar = &bar, .tag = "a"}, b = {.p = &p, .bar = &bar, .tag = "b"};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, client_run, &a);
    pthread_create(&tb, NULL, client_run, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&bar);
    for (int i = 0; i < HTTP_ROUNDS; i++) {
        int wins = (a.status[i] == 201) + (b.status[i] == 201);
        int refusals = (a.status[i] == 409) + (b.status[i] == 409);
        if (wins != 1 || refusals != 1)
            fail_msg("round %d: statuses %d and %d", i, a.status[i], b.status[i]);
    }
    assert_int_equal(harness_int(db, "SELECT COUNT(*) FROM stock WHERE reserved = stock"),
                     HTTP_ROUNDS);
    json_t *r = svc_call(&p, "GET", "/admin/audit", "admin1", "admin", NULL, 200);
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    sl_db_close(db);
    svc_stop(&p);
}

/* ---- time-to-live ---- */

static void test_ttl_releases_and_reports(void **state)
{
    (void)state;
    char *env[] = {"SHOAL_INVENTORY__RESERVATION_TTL_MS=300",
                   "SHOAL_INVENTORY__SWEEP_INTERVAL_MS=50", NULL};
    svc_proc p;
    svc_start(&p, "inventory", env, 1);
    sl_db *db;
    harness_open_url(p.db_url, &db);
    seed(db, "t1", 2);
    json_decref(svc_call(&p, "POST", "/reservations", SVC, "service",
                         "{\"order_id\":\"t-o1\",\"items\":[{\"product_id\":\"t1\",\"qty\":2}]}",
                         201));
    /* Wait (bounded) for the sweep; no timing is asserted, only the outcome. */
    const char *status = "reserved";
    json_t *r = NULL;
    for (int i = 0; i < 200 && strcmp(status, "released") != 0; i++) {
        usleep(50 * 1000);
        json_decref(r);
        r = svc_call(&p, "GET", "/reservations/t-o1", SVC, "service", NULL, 200);
        status = svc_str(r, "status");
    }
    assert_string_equal(status, "released");
    assert_string_equal(svc_str(r, "reason"), "expired");
    json_decref(r);
    r = svc_call(&p, "GET", "/stock/t1", SVC, "service", NULL, 200);
    assert_int_equal(svc_int(r, "available"), 2);
    json_decref(r);
    r = svc_call(&p, "POST", "/reservations/t-o1/commit", SVC, "service", NULL, 409);
    assert_string_equal(svc_str(r, "reason"), "already_released");
    json_decref(r);
    assert_int_equal(harness_int(db, "SELECT COUNT(*) FROM outbox WHERE type = "
                                     "'shop.inventory.released.v1' AND envelope LIKE "
                                     "'%\"reason\":\"expired\"%'"),
                     1);
    sl_db_close(db);
    svc_stop(&p);
    FILE *f = fopen(p.log_path, "r");
    assert_non_null(f);
    char line[2048];
    int warned = 0;
    while (fgets(line, sizeof line, f))
        warned |= strstr(line, "reservation expired") != NULL && strstr(line, "t-o1") != NULL &&
                  strstr(line, "\"level\":\"warn\"") != NULL;
    fclose(f);
    assert_true(warned);
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_refusals_change_nothing),
        cmocka_unit_test(test_bad_input_everywhere),
        cmocka_unit_test(test_identity_and_roles),
        cmocka_unit_test(test_restock_idempotency),
        cmocka_unit_test(test_audit_over_http),
    };
    const struct CMUnitTest own[] = {
        cmocka_unit_test(test_last_unit_over_http),
        cmocka_unit_test(test_ttl_releases_and_reports),
    };
    int rc = cmocka_run_group_tests_name("shared", tests, setup, teardown);
    rc |= cmocka_run_group_tests_name("own_process", own, NULL, NULL);
    harness_done();
    return rc;
}
