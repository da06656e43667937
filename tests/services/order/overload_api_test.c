/*
 * shoal-order under overload and outages, over real sockets on SQLite and PostgreSQL
 * (argv[1]), with the fake participants of fake_participant.h. Each test starts its own
 * shoal-order (two workers) with the configuration it needs:
 * - admission control: with the saga backlog full, POST /orders answers 503 with Retry-After
 *   and reason "overloaded" and writes nothing (no order, no idempotency record); the same
 *   Idempotency-Key succeeds once there is room;
 * - the deadline before the pivot: a charge that never answers ends with the order cancelled
 *   `timeout`, its reservation released and the charge voided by a refund naming the wallet;
 * - the driver full: sagas whose start failed after the 202 are picked up by the sweep and
 *   every order reaches a terminal state without a restart;
 * - admin abort (before the pivot: compensates, reason "aborted"; past it: 409) and the admin
 *   listing with its filters.
 */
#include "order.h"

#include "../svc_harness.h"
#include "fake_participant.h"

#include <shoal/bus.h>

static svc_proc g_svc;
static sl_db *g_db;
static fake g_inv, g_pay;

#define ADDR                                                                                       \
    "\"shipping_address\":{\"name\":\"Ann Lee\",\"line1\":\"1 Main St\",\"city\":\"Kyoto\","       \
    "\"postal_code\":\"600-8216\",\"country\":\"JP\"}"
#define ORDER_BODY "{\"items\":[{\"product_id\":\"p1\",\"qty\":1}]," ADDR "}"

static void product(const char *pid)
{
    char data[400];
    snprintf(data, sizeof data,
             "{\"product_id\":\"%s\",\"sku\":\"S-%s\",\"name\":\"N\",\"description\":\"d\","
             "\"category\":\"c\",\"price\":{\"amount\":100,\"currency\":\"JPY\"},"
             "\"initial_stock\":5}",
             pid, pid);
    json_t *d = json_loads(data, 0, NULL);
    assert_non_null(d);
    sl_bus_msg msg = {.topic = "shop.product.created.v1",
                      .id = "c-p1",
                      .type = "shop.product.created.v1",
                      .data = d};
    char reason[200] = "";
    HARNESS_OK(g_db, sl_db_begin(g_db));
    assert_int_equal(product_replica_apply(NULL, g_db, &msg, reason, sizeof reason), 0);
    HARNESS_OK(g_db, sl_db_commit(g_db));
    json_decref(d);
}

static void reap(void);

/* Starts shoal-order against the fakes with `extra` settings (NULL-terminated "K=V"). */
static void start(char *const *extra)
{
    static char env[16][200];
    char *list[17];
    int n = 0;
    snprintf(env[n++], sizeof env[0], "SHOAL_UPSTREAMS__INVENTORY__URL=http://127.0.0.1:%d",
             g_inv.port);
    snprintf(env[n++], sizeof env[0], "SHOAL_UPSTREAMS__PAYMENT__URL=http://127.0.0.1:%d",
             g_pay.port);
    snprintf(env[n++], sizeof env[0], "SHOAL_ORDER__SAGA__STEP_TIMEOUT_MS=400");
    snprintf(env[n++], sizeof env[0], "SHOAL_ORDER__SAGA__BACKOFF_BASE_MS=20");
    snprintf(env[n++], sizeof env[0], "SHOAL_ORDER__SAGA__BACKOFF_CAP_MS=100");
    snprintf(env[n++], sizeof env[0], "SHOAL_ORDER__BREAKER_RECOVERY_MS=50");
    snprintf(env[n++], sizeof env[0], "SHOAL_ORDER__SAGA__SWEEP_INTERVAL_MS=100");
    snprintf(env[n++], sizeof env[0], "SHOAL_ORDER__SAGA__SWEEP_GRACE_MS=200");
    for (int i = 0; extra && extra[i] && n < 16; i++)
        snprintf(env[n++], sizeof env[0], "%s", extra[i]);
    for (int i = 0; i < n; i++)
        list[i] = env[i];
    list[n] = NULL;
    reap();
    for (int op = 0; op < FK_OPS; op++) {
        fk_mode_set(&g_inv, (fk_op)op, FK_OK, 409, NULL);
        fk_mode_set(&g_pay, (fk_op)op, FK_OK, 409, NULL);
    }
    svc_start(&g_svc, "order", list, 2);
    fk_set_key(&g_inv, &g_svc.key);
    fk_set_key(&g_pay, &g_svc.key);
    harness_open_url(g_svc.db_url, &g_db);
    product("p1");
}

static void stop(void)
{
    sl_db_close(g_db);
    g_db = NULL;
    fk_release_holds(&g_inv);
    fk_release_holds(&g_pay);
    for (int op = 0; op < FK_OPS; op++) {
        fk_mode_set(&g_inv, (fk_op)op, FK_OK, 409, NULL);
        fk_mode_set(&g_pay, (fk_op)op, FK_OK, 409, NULL);
    }
    svc_stop(&g_svc);
    g_svc.pid = 0;
}

/* A test that failed half-way left its shoal-order running: stop it. */
static void reap(void)
{
    if (g_svc.pid <= 0) return;
    kill(g_svc.pid, SIGKILL);
    waitpid(g_svc.pid, NULL, 0);
    g_svc.pid = 0;
    if (g_db) sl_db_close(g_db);
    g_db = NULL;
}

static int setup(void **state)
{
    (void)state;
    if (fk_start(&g_inv) != 0 || fk_start(&g_pay) != 0) fail_msg("fake participants");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fk_release_holds(&g_inv);
    fk_release_holds(&g_pay);
    reap();
    fk_stop(&g_inv);
    fk_stop(&g_pay);
    return 0;
}

/* POSTs an order with Idempotency-Key `key`; returns the status, the order id in `oid`. */
static int place(const char *user, const char *key, char oid[ORDER_ID_MAX + 1], th_response *r)
{
    char extra[120];
    snprintf(extra, sizeof extra, "Idempotency-Key: %s\r\n", key);
    int st = svc_req_raw(&g_svc, "POST", "/orders", user, "customer", ORDER_BODY,
                         strlen(ORDER_BODY), extra, r);
    oid[0] = '\0';
    if (st == 202) {
        json_t *v = svc_json(r);
        snprintf(oid, ORDER_ID_MAX + 1, "%s", svc_str(v, "order_id"));
        json_decref(v);
    }
    return st;
}

/* Polls until the order is confirmed or cancelled (bounded wait); returns the order. */
static json_t *wait_terminal(const char *user, const char *oid)
{
    char path[128];
    snprintf(path, sizeof path, "/orders/%s", oid);
    for (int i = 0; i < 3000; i++) {
        json_t *v = svc_call(&g_svc, "GET", path, user, "customer", NULL, 200);
        const char *s = svc_str(v, "status");
        if (strcmp(s, "confirmed") == 0 || strcmp(s, "cancelled") == 0) return v;
        json_decref(v);
        usleep(10000);
    }
    fail_msg("order %s never reached a terminal state", oid);
    return NULL;
}

static int64_t count(const char *sql)
{
    return harness_int(g_db, sql);
}

/* ---- admission control and the deadline ---------------------------------------------------- */

static void test_admission_and_deadline(void **state)
{
    (void)state;
    char *cfg[] = {"SHOAL_ORDER__ADMISSION__MAX_BACKLOG=3", "SHOAL_ORDER__SAGA__DEADLINE_MS=3000",
                   NULL};
    start(cfg);
    fk_mode_set(&g_pay, FK_CHARGE, FK_TIMEOUT, 0, NULL); /* payment takes charges, never answers */
    char oids[12][ORDER_ID_MAX + 1];
    int accepted = 0, shed = 0;
    th_response r;
    for (int i = 0; i < 12 && !shed; i++) {
        char key[32];
        snprintf(key, sizeof key, "k-%d", i);
        int64_t orders = count("SELECT COUNT(*) FROM orders");
        int64_t idem = count("SELECT COUNT(*) FROM idempotency_keys");
        int64_t sagas = count("SELECT COUNT(*) FROM saga_instances");
        int st = place("u1", key, oids[accepted], &r);
        if (st == 202) {
            accepted++;
        } else {
            assert_int_equal(st, 503);
            assert_non_null(th_header(&r, "retry-after"));
            json_t *p = svc_json(&r);
            assert_string_equal(svc_str(p, "reason"), "overloaded");
            json_decref(p);
            /* Nothing written: no order, no idempotency claim, no saga. */
            assert_int_equal(count("SELECT COUNT(*) FROM orders"), orders);
            assert_int_equal(count("SELECT COUNT(*) FROM idempotency_keys"), idem);
            assert_int_equal(count("SELECT COUNT(*) FROM saga_instances"), sagas);
            shed = 1;
            /* The same key, once there is room again (the deadline frees the backlog). */
            char again[ORDER_ID_MAX + 1];
            th_response r2 = {0};
            int st2 = 503;
            for (int k = 0; k < 2000 && st2 == 503; k++) {
                th_response_free(&r2);
                st2 = place("u1", key, again, &r2);
                if (st2 == 503) usleep(10000);
            }
            assert_int_equal(st2, 202);
            th_response_free(&r2);
            snprintf(oids[accepted++], ORDER_ID_MAX + 1, "%s", again);
        }
        th_response_free(&r);
    }
    assert_true(shed);
    assert_true(accepted >= 4);
    /* The metric counts the shed request. */
    th_response m;
    assert_int_equal(svc_req(&g_svc, "GET", "/metrics", NULL, NULL, NULL, &m), 200);
    assert_non_null(strstr(m.body, "order_orders_shed_total"));
    assert_non_null(strstr(m.body, "order_saga_backlog"));
    th_response_free(&m);
    /* Payment never answered: every order is cancelled `timeout` by its deadline, with its
     * reservation released and the charge voided, and nothing stuck. */
    fk_mode_set(&g_pay, FK_CHARGE, FK_OK, 0, NULL);
    for (int i = 0; i < accepted; i++) {
        json_t *o = wait_terminal("u1", oids[i]);
        if (strcmp(svc_str(o, "status"), "cancelled") == 0) {
            assert_string_equal(svc_str(o, "cancel_reason"), "timeout");
            assert_int_equal(fk_effects(&g_inv, FK_RELEASE, oids[i], NULL), 1);
            assert_int_equal(fk_effects(&g_pay, FK_REFUND, oids[i], NULL), 1);
        }
        json_decref(o);
    }
    /* The first orders were sent to payment while it hung: they timed out. */
    json_t *first = wait_terminal("u1", oids[0]);
    assert_string_equal(svc_str(first, "status"), "cancelled");
    json_decref(first);
    assert_int_equal(count("SELECT COUNT(*) FROM saga_instances WHERE status = 'stuck'"), 0);
    stop();
}

/* ---- the driver full: the sweep drives what could not be started -------------------------- */

static void test_driver_full_sweep(void **state)
{
    (void)state;
    char *cfg[] = {"SHOAL_ORDER__SAGA__MAX_ACTIVE=1", NULL};
    start(cfg);
    fk_mode_set(&g_inv, FK_RESERVE, FK_HOLD, 0, NULL);
    char oids[8][ORDER_ID_MAX + 1];
    th_response r;
    for (int i = 0; i < 8; i++) {
        char key[32];
        snprintf(key, sizeof key, "f-%d", i);
        assert_int_equal(place("u2", key, oids[i], &r), 202);
        th_response_free(&r);
    }
    /* At most one checkout per worker is tracked; the others were accepted but not started. */
    assert_true(count("SELECT COUNT(*) FROM saga_history WHERE kind = 'sent'") <= 2 * 2);
    fk_mode_set(&g_inv, FK_RESERVE, FK_OK, 0, NULL);
    fk_release_holds(&g_inv);
    for (int i = 0; i < 8; i++) {
        json_t *o = wait_terminal("u2", oids[i]);
        assert_string_equal(svc_str(o, "status"), "confirmed");
        json_decref(o);
        assert_int_equal(fk_effects(&g_pay, FK_CHARGE, oids[i], NULL), 1);
    }
    stop();
}

/* ---- admin abort and listing ---------------------------------------------------------------- */

static void test_abort_and_list(void **state)
{
    (void)state;
    start(NULL);
    fk_mode_set(&g_inv, FK_RESERVE, FK_TIMEOUT, 0, NULL); /* inventory hangs */
    char oid[ORDER_ID_MAX + 1], done[ORDER_ID_MAX + 1], path[200];
    th_response r;
    int reserves = fk_requests(&g_inv, FK_RESERVE);
    assert_int_equal(place("u3", "a-1", oid, &r), 202);
    th_response_free(&r);
    /* Abort once the reservation was asked for (its outcome unknown: inventory hangs). */
    for (int i = 0; i < 1000 && fk_requests(&g_inv, FK_RESERVE) == reserves; i++)
        usleep(5000);
    assert_true(fk_requests(&g_inv, FK_RESERVE) > reserves);
    snprintf(path, sizeof path, "/admin/sagas/checkout.%s/abort", oid);
    assert_int_equal(svc_req(&g_svc, "POST", path, "u3", "customer", NULL, &r), 403);
    th_response_free(&r);
    json_t *s = svc_call(&g_svc, "POST", path, "root", "admin", NULL, 200);
    const char *st = svc_str(s, "status");
    assert_true(strcmp(st, "compensating") == 0 || strcmp(st, "compensated") == 0);
    json_decref(s);
    json_t *o = wait_terminal("u3", oid);
    assert_string_equal(svc_str(o, "status"), "cancelled");
    assert_string_equal(svc_str(o, "cancel_reason"), "aborted");
    json_decref(o);
    assert_int_equal(fk_effects(&g_inv, FK_RELEASE, oid, NULL), 1); /* released (tombstone) */
    assert_int_equal(fk_effects(&g_pay, FK_CHARGE, oid, NULL), 0);
    /* Past the pivot: 409; unknown: 404. */
    fk_mode_set(&g_inv, FK_RESERVE, FK_OK, 0, NULL);
    assert_int_equal(place("u3", "a-2", done, &r), 202);
    th_response_free(&r);
    o = wait_terminal("u3", done);
    assert_string_equal(svc_str(o, "status"), "confirmed");
    json_decref(o);
    snprintf(path, sizeof path, "/admin/sagas/checkout.%s/abort", done);
    assert_int_equal(svc_req(&g_svc, "POST", path, "root", "admin", NULL, &r), 409);
    json_t *p = svc_json(&r);
    assert_string_equal(svc_str(p, "reason"), "past_pivot");
    json_decref(p);
    th_response_free(&r);
    assert_int_equal(
        svc_req(&g_svc, "POST", "/admin/sagas/checkout.nope/abort", "root", "admin", NULL, &r),
        404);
    th_response_free(&r);
    /* The listing: filters, paging and the documented fields. */
    json_t *l = svc_call(&g_svc, "GET", "/admin/sagas?status=compensated&type=checkout&per_page=5",
                         "root", "admin", NULL, 200);
    assert_int_equal(svc_int(l, "total"), 1);
    assert_int_equal(svc_int(l, "per_page"), 5);
    json_t *it = json_array_get(json_object_get(l, "items"), 0);
    char sid[120];
    snprintf(sid, sizeof sid, "checkout.%s", oid);
    assert_string_equal(svc_str(it, "saga_id"), sid);
    assert_string_equal(svc_str(it, "type"), "checkout");
    assert_string_equal(svc_str(it, "status"), "compensated");
    assert_string_equal(svc_str(it, "step"), "open");
    assert_true(json_is_string(json_object_get(it, "updated_at")));
    assert_true(json_is_null(json_object_get(it, "stuck_reason")));
    json_decref(l);
    l = svc_call(&g_svc, "GET", "/admin/sagas?page=1&per_page=1", "root", "admin", NULL, 200);
    assert_int_equal(svc_int(l, "total"), 2);
    assert_int_equal(json_array_size(json_object_get(l, "items")), 1);
    json_decref(l);
    assert_int_equal(svc_req(&g_svc, "GET", "/admin/sagas?type=x", "root", "admin", NULL, &r), 400);
    assert_true(svc_has_error(p = svc_json(&r), "type"));
    json_decref(p);
    th_response_free(&r);
    stop();
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admission_and_deadline),
        cmocka_unit_test(test_driver_full_sweep),
        cmocka_unit_test(test_abort_and_list),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    harness_done();
    return rc;
}
