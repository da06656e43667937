/*
 * shoal-order over real sockets on SQLite and PostgreSQL (argv[1]), with
 * FAKE participants (fake_participant.h: in-process HTTP servers playing
 * inventory and payment, checking every call's signed service identity and
 * storing one reply per idempotency key, so their effect counts are the
 * truth): the happy path to `confirmed`; refusals that cancel with the right
 * reason after the right compensations; payment down then back (the saga
 * waits within its bound), payment silent past the bound (stuck, listed,
 * resumed by an admin); a reply lost on the wire; `kill -9` of shoal-order
 * while payment holds the reply, then a restart that finishes the saga with
 * one charge and one reservation; customer cancel (refund + release, 409
 * while the checkout runs or once shipped); ship/deliver and illegal
 * transitions; Idempotency-Key replay and mismatch; bad input naming the
 * field with nothing stored; the admin saga endpoints; and the event
 * appliers (price replica, order history read model) called directly.
 */
#include "order.h"

#include "../svc_harness.h"
#include "fake_participant.h"

#include <shoal/bus.h>
#include <shoal/outbox.h>

static svc_proc g_svc;
static sl_db *g_db;
static fake g_inv, g_pay;
static char g_env[8][200];

#define ADDR                                                                                       \
    "\"shipping_address\":{\"name\":\"Ann Lee\",\"line1\":\"1 Main St\",\"city\":\"Kyoto\","       \
    "\"postal_code\":\"600-8216\",\"country\":\"JP\"}"

/* ---- helpers -------------------------------------------------------------------------------- */

/* Delivers an event like the bus runner: inbox claim + apply in one transaction. */
static int deliver(sl_event_apply_cb apply, const char *id, const char *type, const char *time,
                   const char *data_json)
{
    json_t *data = json_loads(data_json, 0, NULL);
    assert_non_null(data);
    sl_bus_msg msg = {.topic = type, .id = id, .type = type, .time = time, .data = data};
    char reason[200] = "";
    HARNESS_OK(g_db, sl_db_begin(g_db));
    int rc = sl_inbox_claim(g_db, "order.test", id, sl_clock_wall_ms(sl_clock_system()));
    assert_true(rc >= 0);
    if (rc == 1) rc = apply(NULL, g_db, &msg, reason, sizeof reason) == 0 ? 1 : -1;
    if (rc >= 0)
        HARNESS_OK(g_db, sl_db_commit(g_db));
    else
        sl_db_rollback(g_db);
    json_decref(data);
    return rc;
}

static void product(const char *pid, int64_t amount, const char *currency)
{
    char id[80], data[400];
    snprintf(id, sizeof id, "created-%s", pid);
    snprintf(data, sizeof data,
             "{\"product_id\":\"%s\",\"sku\":\"S-%s\",\"name\":\"Name %s\",\"description\":\"d\","
             "\"category\":\"c\",\"price\":{\"amount\":%lld,\"currency\":\"%s\"},"
             "\"initial_stock\":5}",
             pid, pid, pid, (long long)amount, currency);
    assert_int_equal(deliver(product_replica_apply, id, "shop.product.created.v1", NULL, data), 1);
}

static void start_service(void)
{
    char *env[9];
    snprintf(g_env[0], sizeof g_env[0], "SHOAL_UPSTREAMS__INVENTORY__URL=http://127.0.0.1:%d",
             g_inv.port);
    snprintf(g_env[1], sizeof g_env[1], "SHOAL_UPSTREAMS__PAYMENT__URL=http://127.0.0.1:%d",
             g_pay.port);
    snprintf(g_env[2], sizeof g_env[2], "SHOAL_ORDER__SAGA__STEP_TIMEOUT_MS=400");
    snprintf(g_env[3], sizeof g_env[3], "SHOAL_ORDER__SAGA__BACKOFF_BASE_MS=20");
    snprintf(g_env[4], sizeof g_env[4], "SHOAL_ORDER__SAGA__BACKOFF_CAP_MS=100");
    snprintf(g_env[5], sizeof g_env[5], "SHOAL_ORDER__SAGA__STUCK_AFTER_MS=2500");
    snprintf(g_env[6], sizeof g_env[6], "SHOAL_ORDER__BREAKER_RECOVERY_MS=50");
    for (int i = 0; i < 7; i++)
        env[i] = g_env[i];
    env[7] = NULL;
    svc_start(&g_svc, "order", env, 2);
}

/* Restarts shoal-order on the same database, port and key (after a kill -9). */
static void restart_service(void)
{
    char port[16], dbenv[700], keyenv[700];
    snprintf(port, sizeof port, "%d", g_svc.port);
    snprintf(dbenv, sizeof dbenv, "SHOAL_DB__URL=%s", g_svc.db_url);
    snprintf(keyenv, sizeof keyenv, "SHOAL_IDENTITY__KEY_FILE=%s", g_svc.key_path);
    char *env[10] = {dbenv, keyenv};
    for (int i = 0; i < 7; i++)
        env[2 + i] = g_env[i];
    env[9] = NULL;
    char *argv[] = {"shoal-order", "--port", port, "--workers", "2", NULL};
    char log[620];
    snprintf(log, sizeof log, "%s.restarted", g_svc.log_path);
    g_svc.pid = th_spawn(argv, env, log);
    if (th_wait_port(g_svc.port, 15000) != 0) fail_msg("shoal-order did not restart");
}

static int setup(void **state)
{
    (void)state;
    if (fk_start(&g_inv) != 0 || fk_start(&g_pay) != 0) fail_msg("fake participants");
    start_service();
    fk_set_key(&g_inv, &g_svc.key.ring);
    fk_set_key(&g_pay, &g_svc.key.ring);
    harness_open_url(g_svc.db_url, &g_db);
    product("p1", 1200, "JPY");
    product("p2", 300, "JPY");
    product("p3", 50, "JPY");
    product("e1", 999, "EUR");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sl_db_close(g_db);
    fk_release_holds(&g_pay);
    svc_stop(&g_svc);
    fk_stop(&g_inv);
    fk_stop(&g_pay);
    return 0;
}

static void reset_fakes(void)
{
    for (int op = 0; op < FK_OPS; op++) {
        fk_mode_set(&g_inv, (fk_op)op, FK_OK, 409, NULL);
        fk_mode_set(&g_pay, (fk_op)op, FK_OK, 409, NULL);
    }
}

/* POSTs an order for `user`; returns its id (static buffer per call site copy). */
static void place(const char *user, const char *items, char out[ORDER_ID_MAX + 1])
{
    char body[2048];
    snprintf(body, sizeof body, "{\"items\":%s," ADDR "}", items);
    th_response r;
    int st = svc_req(&g_svc, "POST", "/orders", user, "customer", body, &r);
    if (st != 202) fail_msg("POST /orders: %d %.*s", st, (int)r.body_len, r.body ? r.body : "");
    json_t *v = svc_json(&r);
    snprintf(out, ORDER_ID_MAX + 1, "%s", svc_str(v, "order_id"));
    assert_string_equal(svc_str(v, "status"), "pending");
    char loc[200];
    snprintf(loc, sizeof loc, "/api/v1/orders/%s", out);
    assert_non_null(th_header(&r, "location"));
    assert_string_equal(th_header(&r, "location"), loc);
    json_decref(v);
    th_response_free(&r);
}

/* Polls GET /orders/{id} until its status is `want` (bounded wait, not a timing assertion). */
static json_t *wait_status(const char *user, const char *oid, const char *want)
{
    char path[128];
    snprintf(path, sizeof path, "/orders/%s", oid);
    for (int i = 0; i < 1000; i++) {
        json_t *v = svc_call(&g_svc, "GET", path, user, "customer", NULL, 200);
        if (strcmp(svc_str(v, "status"), want) == 0) return v;
        json_decref(v);
        usleep(10000);
    }
    fail_msg("order %s never became %s", oid, want);
    return NULL;
}

static json_t *saga(const char *prefix, const char *oid)
{
    char path[160];
    snprintf(path, sizeof path, "/admin/sagas/%s%s", prefix, oid);
    return svc_call(&g_svc, "GET", path, "root", "admin", NULL, 200);
}

/* Waits until saga `prefix oid` has status `want`. */
static json_t *wait_saga(const char *prefix, const char *oid, const char *want)
{
    for (int i = 0; i < 1000; i++) {
        json_t *v = saga(prefix, oid);
        if (strcmp(svc_str(v, "status"), want) == 0) return v;
        json_decref(v);
        usleep(10000);
    }
    fail_msg("saga %s%s never became %s", prefix, oid, want);
    return NULL;
}

/* Number of history entries of kind `kind` (and step, when not NULL) in a saga document. */
static int hist_count(const json_t *s, const char *kind, const char *step, const char *call)
{
    int n = 0;
    json_t *h = json_object_get(s, "history");
    for (size_t i = 0; i < json_array_size(h); i++) {
        json_t *e = json_array_get(h, i);
        if (strcmp(svc_str(e, "kind"), kind) != 0) continue;
        if (step && strcmp(svc_str(e, "step"), step) != 0) continue;
        if (call && strcmp(svc_str(e, "call"), call) != 0) continue;
        n++;
    }
    return n;
}

static int64_t count_sql(const char *fmt, const char *arg)
{
    char sql[400];
    snprintf(sql, sizeof sql, fmt, arg);
    return harness_int(g_db, sql);
}

/* ---- checkout -------------------------------------------------------------------------------- */

static void test_happy_path(void **state)
{
    (void)state;
    reset_fakes();
    char oid[ORDER_ID_MAX + 1];
    place("u1", "[{\"product_id\":\"p1\",\"qty\":2},{\"product_id\":\"p2\",\"qty\":3}]", oid);
    json_t *o = wait_status("u1", oid, "confirmed");
    assert_int_equal(svc_int(json_object_get(o, "total_amount"), "amount"), 2 * 1200 + 3 * 300);
    assert_string_equal(svc_str(json_object_get(o, "total_amount"), "currency"), "JPY");
    json_t *it = json_array_get(json_object_get(o, "items"), 1);
    assert_string_equal(svc_str(it, "product_id"), "p2");
    assert_int_equal(svc_int(json_object_get(it, "unit_price"), "amount"), 300);
    assert_true(json_is_null(json_object_get(o, "cancel_reason")));
    assert_string_equal(svc_str(json_object_get(o, "shipping_address"), "city"), "Kyoto");
    json_decref(o);
    /* One reservation and one charge, under the engine's keys, with a valid identity. */
    int keys = 0;
    assert_int_equal(fk_effects(&g_inv, FK_RESERVE, oid, &keys), 1);
    assert_int_equal(keys, 1);
    assert_int_equal(fk_effects(&g_pay, FK_CHARGE, oid, &keys), 1);
    char key[220], want[200];
    assert_true(fk_key_of(&g_pay, FK_CHARGE, oid, key, sizeof key));
    snprintf(want, sizeof want, "checkout.%s:charge:action", oid);
    assert_string_equal(key, want);
    assert_int_equal(fk_effects(&g_inv, FK_RELEASE, oid, NULL), 0);
    assert_int_equal(fk_bad_identity(&g_inv) + fk_bad_identity(&g_pay), 0);
    /* Saga history: every step sent and answered, completed. */
    json_t *s = wait_saga("checkout.", oid, "completed");
    assert_int_equal(hist_count(s, "replied", "reserve", "action"), 1);
    assert_int_equal(hist_count(s, "replied", "charge", "action"), 1);
    assert_int_equal(hist_count(s, "replied", "confirm", "action"), 1);
    assert_int_equal(hist_count(s, "completed", NULL, NULL), 1);
    json_decref(s);
    /* Events in the outbox and the read model, with product names. */
    assert_int_equal(count_sql("SELECT COUNT(*) FROM outbox WHERE subject = '%s' AND type IN "
                               "('shop.order.created.v1','shop.order.confirmed.v1')",
                               oid),
                     2);
    json_t *l = svc_call(&g_svc, "GET", "/orders?user_id=u1", "u1", "customer", NULL, 200);
    json_t *first = json_array_get(json_object_get(l, "items"), 0);
    assert_string_equal(svc_str(first, "order_id"), oid);
    assert_string_equal(svc_str(first, "status"), "confirmed");
    assert_string_equal(svc_str(json_array_get(json_object_get(first, "items"), 0), "name"),
                        "Name p1");
    json_decref(l);
}

/* Places an order with raw extra headers; returns its id. */
static void place_with(const char *user, const char *extra, char out[ORDER_ID_MAX + 1])
{
    const char *body = "{\"items\":[{\"product_id\":\"p1\",\"qty\":1}]," ADDR "}";
    th_response r;
    int st =
        svc_req_raw(&g_svc, "POST", "/orders", user, "customer", body, strlen(body), extra, &r);
    if (st != 202) fail_msg("POST /orders: %d %.*s", st, (int)r.body_len, r.body ? r.body : "");
    json_t *v = svc_json(&r);
    snprintf(out, ORDER_ID_MAX + 1, "%s", svc_str(v, "order_id"));
    json_decref(v);
    th_response_free(&r);
}

/* The checkout's participant calls run after the request was answered, from the saga; they
 * carry the request's trace (the same trace id) and its tracestate unchanged, and an invalid
 * tracestate, or one without a traceparent, is not passed on. */
static void test_trace_context_to_participants(void **state)
{
    (void)state;
    reset_fakes();
    const char *trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    char oid[ORDER_ID_MAX + 1], tp[64], ts[600];
    place_with("u7",
               "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
               "tracestate: rojo=00f067aa0ba902b7,congo=t61rcWkgMzE\r\n",
               oid);
    json_decref(wait_status("u7", oid, "confirmed"));
    fk_last_trace(&g_pay, FK_CHARGE, tp, ts);
    assert_int_equal(strlen(tp), 55);
    assert_memory_equal(tp + 3, trace_id, 32);
    assert_memory_not_equal(tp + 36, "00f067aa0ba902b7", 16); /* the step's span, a child */
    assert_string_equal(ts, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    fk_last_trace(&g_inv, FK_RESERVE, tp, ts);
    assert_memory_equal(tp + 3, trace_id, 32);
    assert_string_equal(ts, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");

    /* An invalid tracestate (upper-case key) is dropped whole; the trace still goes on. */
    place_with("u7",
               "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
               "tracestate: Rojo=1\r\n",
               oid);
    json_decref(wait_status("u7", oid, "confirmed"));
    fk_last_trace(&g_pay, FK_CHARGE, tp, ts);
    assert_memory_equal(tp + 3, trace_id, 32);
    assert_string_equal(ts, "");

    /* A tracestate without a traceparent belongs to no trace the service continues. */
    place_with("u7", "tracestate: rojo=1\r\n", oid);
    json_decref(wait_status("u7", oid, "confirmed"));
    fk_last_trace(&g_pay, FK_CHARGE, tp, ts);
    assert_int_equal(strlen(tp), 55);
    assert_memory_not_equal(tp + 3, trace_id, 32);
    assert_string_equal(ts, "");
}

static void test_insufficient_stock(void **state)
{
    (void)state;
    reset_fakes();
    fk_mode_set(&g_inv, FK_RESERVE, FK_REFUSE, 409, "insufficient_stock");
    char oid[ORDER_ID_MAX + 1];
    place("u2", "[{\"product_id\":\"p1\",\"qty\":1}]", oid);
    json_t *o = wait_status("u2", oid, "cancelled");
    assert_string_equal(svc_str(o, "cancel_reason"), "insufficient_stock");
    json_decref(o);
    /* Nothing was reserved nor charged; the order's own step was compensated (cancel). */
    assert_int_equal(fk_effects(&g_inv, FK_RESERVE, oid, NULL), 0);
    assert_int_equal(fk_requests(&g_pay, FK_CHARGE) >= 0, 1);
    assert_int_equal(fk_effects(&g_pay, FK_CHARGE, oid, NULL), 0);
    json_t *s = wait_saga("checkout.", oid, "compensated");
    assert_int_equal(hist_count(s, "refused", "reserve", "action"), 1);
    assert_int_equal(hist_count(s, "replied", "open", "compensation"), 1);
    json_decref(s);
    assert_int_equal(count_sql("SELECT COUNT(*) FROM outbox WHERE subject = '%s' AND type = "
                               "'shop.order.cancelled.v1'",
                               oid),
                     1);
}

static void test_insufficient_funds(void **state)
{
    (void)state;
    reset_fakes();
    fk_mode_set(&g_pay, FK_CHARGE, FK_REFUSE, 409, "insufficient_funds");
    char oid[ORDER_ID_MAX + 1];
    place("u3", "[{\"product_id\":\"p2\",\"qty\":4}]", oid);
    json_t *o = wait_status("u3", oid, "cancelled");
    assert_string_equal(svc_str(o, "cancel_reason"), "insufficient_funds");
    json_decref(o);
    /* The reservation was made, then released under the compensation's own key. */
    json_t *s = wait_saga("checkout.", oid, "compensated");
    json_decref(s);
    assert_int_equal(fk_effects(&g_inv, FK_RESERVE, oid, NULL), 1);
    assert_int_equal(fk_effects(&g_inv, FK_RELEASE, oid, NULL), 1);
    char key[220], want[200];
    assert_true(fk_key_of(&g_inv, FK_RELEASE, oid, key, sizeof key));
    snprintf(want, sizeof want, "checkout.%s:reserve:compensation", oid);
    assert_string_equal(key, want);
    assert_int_equal(fk_effects(&g_pay, FK_CHARGE, oid, NULL), 0);
    /* Another payment refusal → payment_failed. */
    fk_mode_set(&g_pay, FK_CHARGE, FK_REFUSE, 422, "card_declined");
    place("u3", "[{\"product_id\":\"p2\",\"qty\":1}]", oid);
    o = wait_status("u3", oid, "cancelled");
    assert_string_equal(svc_str(o, "cancel_reason"), "payment_failed");
    json_decref(o);
}

/* Payment answers 503 for a while, then recovers inside the bound: the saga waits and completes. */
static void test_payment_down_then_back(void **state)
{
    (void)state;
    reset_fakes();
    fk_mode_set(&g_pay, FK_CHARGE, FK_503, 0, NULL);
    int before = fk_requests(&g_pay, FK_CHARGE);
    char oid[ORDER_ID_MAX + 1];
    place("u4", "[{\"product_id\":\"p3\",\"qty\":1}]", oid);
    for (int i = 0; i < 1000 && fk_requests(&g_pay, FK_CHARGE) < before + 3; i++)
        usleep(5000);
    assert_true(fk_requests(&g_pay, FK_CHARGE) >= before + 3);
    json_t *o = wait_status("u4", oid, "pending"); /* still waiting, not cancelled */
    json_decref(o);
    fk_mode_set(&g_pay, FK_CHARGE, FK_OK, 0, NULL);
    o = wait_status("u4", oid, "confirmed");
    json_decref(o);
    json_t *s = wait_saga("checkout.", oid, "completed");
    assert_true(hist_count(s, "failed", "charge", "action") >= 2);
    assert_true(hist_count(s, "retry", "charge", "action") >= 2);
    json_decref(s);
    assert_int_equal(fk_effects(&g_pay, FK_CHARGE, oid, NULL), 1);
}

/* Payment never answers: each attempt times out until the bound, then stuck; an admin resumes. */
static void test_payment_silent_then_stuck_and_resumed(void **state)
{
    (void)state;
    reset_fakes();
    fk_mode_set(&g_pay, FK_CHARGE, FK_TIMEOUT, 0, NULL);
    char oid[ORDER_ID_MAX + 1];
    place("u5", "[{\"product_id\":\"p3\",\"qty\":2}]", oid);
    json_t *s = wait_saga("checkout.", oid, "stuck");
    /* Each attempt ends by the client's timeout (failed) or the engine's (timeout). */
    assert_true(hist_count(s, "timeout", "charge", "action") +
                    hist_count(s, "failed", "charge", "action") >=
                2);
    assert_true(strlen(svc_str(s, "stuck_reason")) > 0);
    json_decref(s);
    json_t *o = wait_status("u5", oid, "pending");
    json_decref(o);
    /* Listed as stuck, with its reason. */
    json_t *l = svc_call(&g_svc, "GET", "/admin/sagas?status=stuck", "root", "admin", NULL, 200);
    char sid[120];
    snprintf(sid, sizeof sid, "checkout.%s", oid);
    int listed = 0;
    for (size_t i = 0; i < json_array_size(json_object_get(l, "items")); i++)
        if (strcmp(svc_str(json_array_get(json_object_get(l, "items"), i), "saga_id"), sid) == 0)
            listed = 1;
    assert_true(listed);
    json_decref(l);
    /* A customer cannot cancel while the checkout is undecided. */
    char path[160];
    snprintf(path, sizeof path, "/orders/%s/cancel", oid);
    th_response r;
    assert_int_equal(svc_req(&g_svc, "POST", path, "u5", "customer", "{}", &r), 409);
    assert_non_null(th_header(&r, "retry-after"));
    json_t *p = svc_json(&r);
    assert_string_equal(svc_str(p, "reason"), "checkout_in_progress");
    json_decref(p);
    th_response_free(&r);
    /* The cause is fixed; an admin resumes: the same call under the same key, then confirmed. */
    fk_mode_set(&g_pay, FK_CHARGE, FK_OK, 0, NULL);
    snprintf(path, sizeof path, "/admin/sagas/%s/resume", sid);
    assert_int_equal(svc_req(&g_svc, "POST", path, "u5", "customer", NULL, &r), 403);
    th_response_free(&r);
    json_t *res = svc_call(&g_svc, "POST", path, "root", "admin", NULL, 200);
    json_decref(res);
    o = wait_status("u5", oid, "confirmed");
    json_decref(o);
    s = wait_saga("checkout.", oid, "completed");
    assert_true(hist_count(s, "resumed", NULL, NULL) >= 1);
    json_decref(s);
    assert_int_equal(fk_effects(&g_pay, FK_CHARGE, oid, NULL), 1);
    /* Resuming a saga that is not stuck: 409; an unknown one: 404. */
    assert_int_equal(svc_req(&g_svc, "POST", path, "root", "admin", NULL, &r), 409);
    th_response_free(&r);
    assert_int_equal(
        svc_req(&g_svc, "POST", "/admin/sagas/checkout.nope/resume", "root", "admin", NULL, &r),
        404);
    th_response_free(&r);
    assert_int_equal(svc_req(&g_svc, "GET", "/admin/sagas/other.x", "root", "admin", NULL, &r),
                     404);
    th_response_free(&r);
    assert_int_equal(svc_req(&g_svc, "GET", "/admin/sagas?status=weird", "root", "admin", NULL, &r),
                     400);
    th_response_free(&r);
    json_t *run =
        svc_call(&g_svc, "GET", "/admin/sagas?status=running", "root", "admin", NULL, 200);
    assert_true(json_is_array(json_object_get(run, "items")));
    json_decref(run);
}

/* The charge applies but its reply is lost: the retry gets the stored reply, no second charge. */
static void test_reply_dropped(void **state)
{
    (void)state;
    reset_fakes();
    fk_mode_set(&g_pay, FK_CHARGE, FK_DROP, 0, NULL);
    char oid[ORDER_ID_MAX + 1];
    place("u6", "[{\"product_id\":\"p1\",\"qty\":1}]", oid);
    json_t *o = wait_status("u6", oid, "confirmed");
    json_decref(o);
    int keys = 0;
    assert_int_equal(fk_effects(&g_pay, FK_CHARGE, oid, &keys), 1);
    assert_int_equal(keys, 1);
    json_t *s = saga("checkout.", oid);
    assert_true(hist_count(s, "sent", "charge", "action") >= 2);
    json_decref(s);
}

/* kill -9 while payment holds the charge's reply; the restart resumes and finishes once. */
static void test_kill9_mid_saga(void **state)
{
    (void)state;
    reset_fakes();
    fk_mode_set(&g_pay, FK_CHARGE, FK_HOLD, 0, NULL);
    char oid[ORDER_ID_MAX + 1];
    place("u7", "[{\"product_id\":\"p2\",\"qty\":2}]", oid);
    for (int i = 0; i < 2000 && fk_held(&g_pay) == 0; i++)
        usleep(5000);
    assert_int_equal(fk_held(&g_pay), 1);
    int st = th_stop(g_svc.pid, SIGKILL, 15000);
    assert_true(WIFSIGNALED(st));
    /* The charge took effect; its reply goes to a dead socket. */
    fk_release_holds(&g_pay);
    fk_mode_set(&g_pay, FK_CHARGE, FK_OK, 0, NULL);
    restart_service();
    json_t *o = wait_status("u7", oid, "confirmed");
    json_decref(o);
    json_t *s = wait_saga("checkout.", oid, "completed");
    assert_true(hist_count(s, "resumed", NULL, NULL) >= 1);
    json_decref(s);
    int keys = 0;
    assert_int_equal(fk_effects(&g_pay, FK_CHARGE, oid, &keys), 1); /* no double charge */
    assert_int_equal(keys, 1);
    assert_int_equal(fk_effects(&g_inv, FK_RESERVE, oid, &keys), 1); /* no lost reservation */
    assert_int_equal(fk_effects(&g_inv, FK_RELEASE, oid, NULL), 0);
    assert_int_equal(count_sql("SELECT COUNT(*) FROM outbox WHERE subject = '%s' AND type = "
                               "'shop.order.confirmed.v1'",
                               oid),
                     1);
}

/* ---- cancel, ship, deliver ----------------------------------------------------------------- */

static void test_cancel_ship_deliver(void **state)
{
    (void)state;
    reset_fakes();
    char a[ORDER_ID_MAX + 1], b[ORDER_ID_MAX + 1], path[160];
    place("u8", "[{\"product_id\":\"p1\",\"qty\":1},{\"product_id\":\"p3\",\"qty\":5}]", a);
    place("u8", "[{\"product_id\":\"p2\",\"qty\":1}]", b);
    json_decref(wait_status("u8", a, "confirmed"));
    json_decref(wait_status("u8", b, "confirmed"));
    th_response r;
    /* Someone else's order: 404 for reads and cancels. */
    snprintf(path, sizeof path, "/orders/%s/cancel", a);
    assert_int_equal(svc_req(&g_svc, "POST", path, "intruder", "customer", "{}", &r), 404);
    th_response_free(&r);
    json_t *o =
        svc_call(&g_svc, "POST", path, "u8", "customer", "{\"reason\":\"changed my mind\"}", 200);
    assert_string_equal(svc_str(o, "status"), "cancelled");
    assert_string_equal(svc_str(o, "cancel_reason"), "customer_request");
    json_decref(o);
    json_t *s = wait_saga("cancel.", a, "completed");
    json_decref(s);
    char key[220], want[200];
    assert_int_equal(fk_effects(&g_pay, FK_REFUND, a, NULL), 1);
    assert_int_equal(fk_effects(&g_inv, FK_RELEASE, a, NULL), 1);
    assert_true(fk_key_of(&g_pay, FK_REFUND, a, key, sizeof key));
    snprintf(want, sizeof want, "cancel.%s:refund:action", a);
    assert_string_equal(key, want);
    /* Cancelled is final. */
    assert_int_equal(svc_req(&g_svc, "POST", path, "u8", "customer", "{}", &r), 409);
    json_t *p = svc_json(&r);
    assert_string_equal(svc_str(p, "reason"), "invalid_transition");
    json_decref(p);
    th_response_free(&r);
    /* Ship and deliver b: admin only; illegal transitions are 409. */
    snprintf(path, sizeof path, "/admin/orders/%s/deliver", b);
    assert_int_equal(svc_req(&g_svc, "POST", path, "root", "admin", NULL, &r), 409);
    th_response_free(&r);
    snprintf(path, sizeof path, "/admin/orders/%s/ship", b);
    assert_int_equal(svc_req(&g_svc, "POST", path, "u8", "customer", NULL, &r), 403);
    th_response_free(&r);
    o = svc_call(&g_svc, "POST", path, "root", "admin", NULL, 200);
    assert_string_equal(svc_str(o, "status"), "shipped");
    json_decref(o);
    assert_int_equal(svc_req(&g_svc, "POST", path, "root", "admin", NULL, &r), 409);
    th_response_free(&r);
    snprintf(path, sizeof path, "/orders/%s/cancel", b);
    assert_int_equal(svc_req(&g_svc, "POST", path, "u8", "customer", NULL, &r), 409);
    th_response_free(&r);
    snprintf(path, sizeof path, "/admin/orders/%s/deliver", b);
    o = svc_call(&g_svc, "POST", path, "root", "admin", NULL, 200);
    assert_string_equal(svc_str(o, "status"), "delivered");
    json_decref(o);
    snprintf(path, sizeof path, "/admin/orders/%s/ship", b);
    assert_int_equal(svc_req(&g_svc, "POST", path, "root", "admin", NULL, &r), 409);
    th_response_free(&r);
    assert_int_equal(svc_req(&g_svc, "POST", "/admin/orders/nope/ship", "root", "admin", NULL, &r),
                     404);
    th_response_free(&r);
    assert_int_equal(count_sql("SELECT COUNT(*) FROM outbox WHERE subject = '%s' AND type IN "
                               "('shop.order.shipped.v1','shop.order.delivered.v1')",
                               b),
                     2);
    /* The read model followed, with statuses filtered. */
    json_t *l = svc_call(&g_svc, "GET", "/orders?status=delivered", "u8", "customer", NULL, 200);
    assert_int_equal(svc_int(l, "total"), 1);
    json_decref(l);
    l = svc_call(&g_svc, "GET", "/orders?user_id=u8&status=cancelled&per_page=100", "root", "admin",
                 NULL, 200);
    assert_int_equal(svc_int(l, "total"), 1);
    assert_string_equal(svc_str(json_array_get(json_object_get(l, "items"), 0), "cancel_reason"),
                        "customer_request");
    json_decref(l);
    assert_int_equal(svc_req(&g_svc, "GET", "/orders?user_id=u1", "u8", "customer", NULL, &r), 403);
    th_response_free(&r);
    assert_int_equal(svc_req(&g_svc, "GET", "/orders?status=lost", "u8", "customer", NULL, &r),
                     400);
    th_response_free(&r);
}

/* A pending order (payment holding the charge) cannot be cancelled; it goes on to confirm. */
static void test_cancel_while_pending(void **state)
{
    (void)state;
    reset_fakes();
    fk_mode_set(&g_pay, FK_CHARGE, FK_HOLD, 0, NULL);
    char oid[ORDER_ID_MAX + 1], path[160];
    place("u9", "[{\"product_id\":\"p3\",\"qty\":1}]", oid);
    for (int i = 0; i < 2000 && fk_held(&g_pay) == 0; i++)
        usleep(5000);
    snprintf(path, sizeof path, "/orders/%s/cancel", oid);
    th_response r;
    assert_int_equal(svc_req(&g_svc, "POST", path, "u9", "customer", NULL, &r), 409);
    th_response_free(&r);
    fk_release_holds(&g_pay);
    json_decref(wait_status("u9", oid, "confirmed"));
    json_t *o = svc_call(&g_svc, "POST", path, "u9", "customer", NULL, 200);
    json_decref(o);
    json_decref(wait_saga("cancel.", oid, "completed"));
}

/* ---- idempotency and bad input ------------------------------------------------------------- */

static int64_t digest(void)
{
    return harness_int(g_db, "SELECT (SELECT COUNT(*) FROM orders) * 1000000 + "
                             "(SELECT COUNT(*) FROM order_items) * 1000 + "
                             "(SELECT COUNT(*) FROM saga_instances) * 10 + "
                             "(SELECT COUNT(*) FROM outbox)");
}

static int post_with_key(const char *user, const char *key, const char *body, th_response *r)
{
    char extra[300];
    snprintf(extra, sizeof extra, "Idempotency-Key: %s\r\n", key);
    return svc_req_raw(&g_svc, "POST", "/orders", user, "customer", body, strlen(body), extra, r);
}

static void test_idempotency_key(void **state)
{
    (void)state;
    reset_fakes();
    const char *body = "{\"items\":[{\"product_id\":\"p1\",\"qty\":1}]," ADDR "}";
    th_response r1, r2, r3;
    assert_int_equal(post_with_key("u10", "k-1", body, &r1), 202);
    json_t *a = svc_json(&r1);
    int64_t d = digest();
    /* Same key, same body (different spacing): the first answer, nothing new. */
    const char *same = "{ \"shipping_address\":{\"name\":\"Ann Lee\",\"line1\":\"1 Main St\","
                       "\"city\":\"Kyoto\",\"postal_code\":\"600-8216\",\"country\":\"JP\"},"
                       "\"items\":[{\"product_id\":\"p1\",\"qty\":1}] }";
    assert_int_equal(post_with_key("u10", "k-1", same, &r2), 202);
    json_t *b = svc_json(&r2);
    assert_string_equal(svc_str(a, "order_id"), svc_str(b, "order_id"));
    assert_string_equal(th_header(&r1, "location"), th_header(&r2, "location"));
    /* Let the first checkout finish so the digest compares settled states. */
    json_decref(wait_status("u10", svc_str(a, "order_id"), "confirmed"));
    d = digest();
    assert_int_equal(post_with_key("u10", "k-1", same, &r3), 202);
    th_response_free(&r3);
    assert_int_equal(digest(), d);
    /* Same key, other body: 422, nothing stored. */
    const char *other = "{\"items\":[{\"product_id\":\"p1\",\"qty\":2}]," ADDR "}";
    assert_int_equal(post_with_key("u10", "k-1", other, &r3), 422);
    th_response_free(&r3);
    assert_int_equal(digest(), d);
    /* The same key from another user is another request. */
    assert_int_equal(post_with_key("u11", "k-1", body, &r3), 202);
    json_t *c = svc_json(&r3);
    assert_string_not_equal(svc_str(a, "order_id"), svc_str(c, "order_id"));
    json_decref(wait_status("u11", svc_str(c, "order_id"), "confirmed"));
    json_decref(c);
    th_response_free(&r3);
    assert_int_equal(post_with_key("u10", "bad key\x01", body, &r3), 400);
    th_response_free(&r3);
    json_decref(a);
    json_decref(b);
    th_response_free(&r1);
    th_response_free(&r2);
    /* Idempotent cancel: the same key replays the first 200. */
    char oid[ORDER_ID_MAX + 1], path[160];
    place("u10", "[{\"product_id\":\"p2\",\"qty\":1}]", oid);
    json_decref(wait_status("u10", oid, "confirmed"));
    snprintf(path, sizeof path, "/orders/%s/cancel", oid);
    assert_int_equal(svc_req_raw(&g_svc, "POST", path, "u10", "customer", "{}", 2,
                                 "Idempotency-Key: c-1\r\n", &r1),
                     200);
    assert_int_equal(svc_req_raw(&g_svc, "POST", path, "u10", "customer", "{}", 2,
                                 "Idempotency-Key: c-1\r\n", &r2),
                     200);
    th_response_free(&r1);
    th_response_free(&r2);
    json_decref(wait_saga("cancel.", oid, "completed"));
    assert_int_equal(fk_effects(&g_pay, FK_REFUND, oid, NULL), 1);
}

static void test_bad_input(void **state)
{
    (void)state;
    reset_fakes();
    int64_t d = digest();
    static const struct {
        const char *body;
        int status;
        const char *field;
    } bad[] = {
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":0}]," ADDR "}", 400, "items[0].qty"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":-1}]," ADDR "}", 400, "items[0].qty"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":100}]," ADDR "}", 400, "items[0].qty"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":99999999999999999999}]," ADDR "}", 400,
         NULL /* not even a JSON integer: the parser refuses the document */},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":1e30}]," ADDR "}", 400, "items[0].qty"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":\"1\"}]," ADDR "}", 400, "items[0].qty"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":1},{\"product_id\":\"zz\",\"qty\":1}]," ADDR
         "}",
         422, "items[1].product_id"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":1},{\"product_id\":\"e1\",\"qty\":1}]," ADDR
         "}",
         422, "items[1].product_id"},
        {"{\"items\":[]," ADDR "}", 400, "items"},
        {"{\"items\":{}," ADDR "}", 400, "items"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":1}]}", 400, "shipping_address"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":1}],\"shipping_address\":{\"name\":\"A\","
         "\"line1\":\"l\",\"city\":\"c\",\"postal_code\":\"\",\"country\":\"JP\"}}",
         400, "shipping_address.postal_code"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":1}],\"shipping_address\":{\"name\":\"A\","
         "\"line1\":\"l\",\"city\":\"c\",\"postal_code\":\"1\"}}",
         400, "shipping_address.country"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":1}],\"shipping_address\":{\"name\":7,"
         "\"line1\":\"l\",\"city\":\"c\",\"postal_code\":\"1\",\"country\":\"JP\"}}",
         400, "shipping_address.name"},
    };
    th_response r;
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        int st = svc_req(&g_svc, "POST", "/orders", "u12", "customer", bad[i].body, &r);
        if (st != bad[i].status) fail_msg("case %zu: status %d", i, st);
        json_t *v = svc_json(&r);
        if (bad[i].field && !svc_has_error(v, bad[i].field))
            fail_msg("case %zu: no error for %s", i, bad[i].field);
        json_decref(v);
        th_response_free(&r);
    }
    /* Too many items (51). */
    char big[8192] = "{\"items\":[";
    for (int i = 0; i < 51; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big),
                 "%s{\"product_id\":\"q%d\",\"qty\":1}", i ? "," : "", i);
    snprintf(big + strlen(big), sizeof big - strlen(big), "]," ADDR "}");
    assert_int_equal(svc_req(&g_svc, "POST", "/orders", "u12", "customer", big, &r), 400);
    json_t *v = svc_json(&r);
    assert_true(svc_has_error(v, "items"));
    json_decref(v);
    th_response_free(&r);
    /* Invalid UTF-8 and malformed JSON: 400. */
    const char utf8[] = "{\"items\":[{\"product_id\":\"p1\",\"qty\":1}],\"shipping_address\":{"
                        "\"name\":\"\xc3\x28\",\"line1\":\"l\",\"city\":\"c\",\"postal_code\":"
                        "\"1\",\"country\":\"JP\"}}";
    assert_int_equal(svc_req(&g_svc, "POST", "/orders", "u12", "customer", utf8, &r), 400);
    th_response_free(&r);
    assert_int_equal(svc_req(&g_svc, "POST", "/orders", "u12", "customer", "{\"items\":", &r), 400);
    th_response_free(&r);
    /* No identity: 401. */
    assert_int_equal(svc_req(&g_svc, "POST", "/orders", NULL, NULL, bad[0].body, &r), 401);
    th_response_free(&r);
    assert_int_equal(digest(), d);
    /* Reads: unknown and foreign orders are 404; bad paging is 400. */
    assert_int_equal(svc_req(&g_svc, "GET", "/orders/nope", "u12", "customer", NULL, &r), 404);
    th_response_free(&r);
    assert_int_equal(svc_req(&g_svc, "GET", "/orders/a%20b", "u12", "customer", NULL, &r), 404);
    th_response_free(&r);
    assert_int_equal(svc_req(&g_svc, "GET", "/orders?per_page=1000", "u12", "customer", NULL, &r),
                     400);
    th_response_free(&r);
    /* A deep page is refused (page * per_page > 10000). */
    assert_int_equal(svc_req(&g_svc, "GET", "/orders?page=1000000", "u12", "customer", NULL, &r),
                     400);
    assert_non_null(strstr(r.body, "\"page\""));
    th_response_free(&r);
    assert_int_equal(
        svc_req(&g_svc, "POST", "/orders/x/cancel", "u12", "customer", "{\"reason\":5}", &r), 400);
    th_response_free(&r);
    assert_int_equal(svc_req(&g_svc, "GET", "/admin/sagas", "u12", "customer", NULL, &r), 403);
    th_response_free(&r);
}

/* ---- appliers ------------------------------------------------------------------------------- */

static void test_appliers(void **state)
{
    (void)state;
    assert_int_equal(harness_int(g_db, "SELECT COUNT(*) FROM schema_migrations WHERE "
                                       "component = 'product_contract' AND version = 1"),
                     1);
    /* Replica: once per event id; an older price never overwrites a newer one. */
    assert_int_equal(deliver(product_replica_apply, "pc-1", "shop.product.price_changed.v1",
                             "2030-01-01T00:00:02Z",
                             "{\"product_id\":\"r1\",\"old_price\":{\"amount\":1,\"currency\":"
                             "\"JPY\"},\"new_price\":{\"amount\":700,\"currency\":\"JPY\"}}"),
                     1);
    assert_int_equal(deliver(product_replica_apply, "pc-1", "shop.product.price_changed.v1",
                             "2030-01-01T00:00:02Z",
                             "{\"product_id\":\"r1\",\"new_price\":{\"amount\":1,\"currency\":"
                             "\"JPY\"}}"),
                     0);
    assert_int_equal(deliver(product_replica_apply, "up-old", "shop.product.updated.v1",
                             "2030-01-01T00:00:01Z",
                             "{\"product_id\":\"r1\",\"name\":\"Old\",\"price\":{\"amount\":5,"
                             "\"currency\":\"JPY\"}}"),
                     1);
    assert_int_equal(harness_int(g_db, "SELECT price FROM product_prices WHERE product_id='r1'"),
                     700);
    assert_int_equal(harness_int(g_db, "SELECT COUNT(*) FROM product_prices WHERE name='Old' AND "
                                       "product_id='r1'"),
                     1);
    assert_int_equal(deliver(product_replica_apply, "bad-1", "shop.product.created.v1", NULL,
                             "{\"product_id\":\"a b\"}"),
                     -1);
    assert_int_equal(deliver(product_replica_apply, "bad-2", "shop.product.price_changed.v1", NULL,
                             "{\"product_id\":\"r1\",\"new_price\":{\"amount\":-5,"
                             "\"currency\":\"JPY\"}}"),
                     -1);
    /* Read model: events in any order converge; duplicates are no-ops. */
    const char *items = "\"items\":[{\"product_id\":\"r1\",\"qty\":2,\"unit_price\":{\"amount\":"
                        "700,\"currency\":\"JPY\"}}],\"total_amount\":{\"amount\":1400,"
                        "\"currency\":\"JPY\"}";
    char data[600];
    snprintf(data, sizeof data, "{\"order_id\":\"h1\",\"user_id\":\"hu\",%s}", items);
    assert_int_equal(deliver(order_apply_order_event, "h1-conf", "shop.order.confirmed.v1",
                             "2030-01-01T00:00:05Z", data),
                     1);
    assert_int_equal(deliver(order_apply_order_event, "h1-created", "shop.order.created.v1",
                             "2030-01-01T00:00:04Z", data),
                     1);
    assert_int_equal(harness_int(g_db, "SELECT COUNT(*) FROM order_history WHERE order_id='h1' AND "
                                       "status='confirmed' AND total_amount=1400"),
                     1);
    assert_int_equal(deliver(order_apply_order_event, "h1-ship", "shop.order.shipped.v1",
                             "2030-01-01T00:00:06Z", "{\"order_id\":\"h1\",\"user_id\":\"hu\"}"),
                     1);
    /* Applied twice without the inbox (a second path): still shipped, one row. */
    json_t *d = json_loads("{\"order_id\":\"h1\",\"user_id\":\"hu\"}", 0, NULL);
    char reason[128];
    HARNESS_OK(g_db, sl_db_begin(g_db));
    assert_int_equal(order_hist_apply(g_db, "shop.order.shipped.v1", d, 1, reason, sizeof reason),
                     0);
    assert_int_equal(order_hist_apply(g_db, "shop.order.created.v1", d, 1, reason, sizeof reason),
                     0);
    HARNESS_OK(g_db, sl_db_commit(g_db));
    json_decref(d);
    assert_int_equal(harness_int(g_db, "SELECT COUNT(*) FROM order_history WHERE order_id='h1' "
                                       "AND status='shipped'"),
                     1);
    json_t *l = svc_call(&g_svc, "GET", "/orders", "hu", "customer", NULL, 200);
    assert_int_equal(svc_int(l, "total"), 1);
    json_t *it =
        json_array_get(json_object_get(json_array_get(json_object_get(l, "items"), 0), "items"), 0);
    assert_string_equal(svc_str(it, "name"), "Old");
    json_decref(l);
    assert_int_equal(deliver(order_apply_order_event, "h-bad", "shop.order.cancelled.v1", NULL,
                             "{\"order_id\":\"h1\"}"),
                     -1);
    assert_int_equal(deliver(order_apply_order_event, "h-bad2", "shop.order.unknown.v1", NULL,
                             "{\"order_id\":\"h1\",\"user_id\":\"hu\"}"),
                     -1);
}

/* Adds an order of `user` to the read model, created at `ms`. */
static void hist_row(const char *order_id, const char *user, int64_t ms)
{
    assert_int_equal(sl_db_begin(g_db), 0);
    assert_int_equal(
        order_store_hist_put(g_db, order_id, user, ORDER_PENDING, NULL, 0, 0, "JPY", NULL, ms), 0);
    assert_int_equal(sl_db_commit(g_db), 0);
}

/* GET /orders by keyset cursor: every order once, newest first, though orders arrive
 * between pages (newer, and one with the same millisecond as the page's last). */
static void test_list_cursor(void **state)
{
    (void)state;
    char id[32];
    for (int i = 0; i < 11; i++) {
        snprintf(id, sizeof id, "cw-%02d", i);
        hist_row(id, "ucw", 1000 + (i / 2) * 10); /* pairs share a millisecond */
    }
    char target[5000] = "/orders?per_page=4", seen[2048] = "";
    char last_id[32] = "~";
    int served = 0, extra = 0;
    for (int pages = 0; pages < 20; pages++) {
        json_t *l = svc_call(&g_svc, "GET", target, "ucw", "customer", NULL, 200);
        json_t *items = json_object_get(l, "items");
        for (size_t i = 0; i < json_array_size(items); i++) {
            const char *oid = svc_str(json_array_get(items, i), "order_id");
            char key[40];
            snprintf(key, sizeof key, "|%s|", oid);
            if (strstr(seen, key)) fail_msg("%s served twice", oid);
            strcat(seen, key);
            served++;
            /* Newest first: ids were made in time order, so descending ids. */
            assert_true(strcmp(oid, last_id) < 0);
            snprintf(last_id, sizeof last_id, "%s", oid);
        }
        json_t *next = json_object_get(l, "next_cursor");
        if (json_is_null(next)) {
            json_decref(l);
            break;
        }
        snprintf(target, sizeof target, "/orders?per_page=4&cursor=%s", json_string_value(next));
        json_decref(l);
        snprintf(id, sizeof id, "cx-%02d", extra++);
        hist_row(id, "ucw", 5000 + extra); /* newer than the walk's position */
    }
    assert_int_equal(served, 11);
    for (int i = 0; i < 11; i++) {
        char key[40];
        snprintf(key, sizeof key, "|cw-%02d|", i);
        assert_non_null(strstr(seen, key));
    }
    th_response r;
    /* A well-formed cursor older than every order: an empty page. */
    assert_int_equal(svc_req(&g_svc, "GET", "/orders?cursor=b2gKMQp4", "ucw", "customer", NULL, &r),
                     200);
    th_response_free(&r);
    assert_int_equal(svc_req(&g_svc, "GET", "/orders?cursor=!!", "ucw", "customer", NULL, &r), 400);
    assert_non_null(strstr(r.body, "cursor"));
    th_response_free(&r);
    assert_int_equal(
        svc_req(&g_svc, "GET", "/orders?page=2&cursor=b2gKMQp4", "ucw", "customer", NULL, &r), 400);
    th_response_free(&r);
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_happy_path),
        cmocka_unit_test(test_trace_context_to_participants),
        cmocka_unit_test(test_insufficient_stock),
        cmocka_unit_test(test_insufficient_funds),
        cmocka_unit_test(test_payment_down_then_back),
        cmocka_unit_test(test_payment_silent_then_stuck_and_resumed),
        cmocka_unit_test(test_reply_dropped),
        cmocka_unit_test(test_cancel_ship_deliver),
        cmocka_unit_test(test_cancel_while_pending),
        cmocka_unit_test(test_idempotency_key),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_appliers),
        cmocka_unit_test(test_list_cursor),
        cmocka_unit_test(test_kill9_mid_saga),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    harness_done();
    return rc;
}
