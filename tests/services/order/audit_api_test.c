/*
 * The order service's audit checks (src/services/order/audit.c) over a real
 * database, SQLite and PostgreSQL: the charge digest covers exactly the
 * confirmed, shipped and delivered orders with their totals; sagas past the
 * deadline, stuck ones and overdue pending orders are counted; in_flight is
 * 0 only when nothing runs.
 */
#include "audit.h"
#include "db_harness.h"
#include "order.h"

#include <shoal/audit.h>

static sl_db *g_db;

static void put_order(const char *id, const char *status, int64_t total, int64_t created)
{
    char sql[600];
    snprintf(sql, sizeof sql,
             "INSERT INTO orders (order_id, user_id, status, total_amount, currency, ship_name, "
             "ship_line1, ship_city, ship_postal_code, ship_country, created_ms, updated_ms) "
             "VALUES ('%s', 'u1', '%s', %lld, 'JPY', 'n', 'l', 'c', 'p', 'JP', %lld, %lld)",
             id, status, (long long)total, (long long)created, (long long)created);
    HARNESS_OK(g_db, sl_db_exec(g_db, sql));
}

static void put_saga(const char *id, const char *status, int64_t created)
{
    char sql[600];
    snprintf(sql, sizeof sql,
             "INSERT INTO saga_instances (id, type, status, input, state, stuck_reason, version, "
             "created_ms, updated_ms) VALUES ('%s', 'checkout', '%s', '{}', '{}', '', 1, %lld, "
             "%lld)",
             id, status, (long long)created, (long long)created);
    HARNESS_OK(g_db, sl_db_exec(g_db, sql));
}

static const json_t *check(const json_t *checks, const char *name)
{
    for (size_t i = 0; i < json_array_size(checks); i++) {
        const json_t *c = json_array_get(checks, i);
        if (strcmp(json_string_value(json_object_get(c, "name")), name) == 0) return c;
    }
    fail_msg("no check %s", name);
    return NULL;
}

static int64_t value(const json_t *checks, const char *name)
{
    return (int64_t)json_integer_value(json_object_get(check(checks, name), "value"));
}

static int ok(const json_t *checks, const char *name)
{
    return json_is_true(json_object_get(check(checks, name), "ok"));
}

static void test_checks(void **state)
{
    (void)state;
    const int64_t now = 10000000, deadline = 60000;
    json_t *checks = NULL;
    /* Empty: everything holds, nothing in flight. */
    HARNESS_OK(g_db, order_audit_checks(g_db, now, deadline, &checks));
    assert_true(ok(checks, "sagas_overdue") && ok(checks, "sagas_stuck") &&
                ok(checks, "pending_overdue") && ok(checks, "outbox_backlog"));
    assert_int_equal(value(checks, "in_flight"), 0);
    json_decref(checks);

    put_order("o1", "confirmed", 100, now - 1000);
    put_order("o2", "shipped", 250, now - 1000);
    put_order("o3", "delivered", 40, now - 1000);
    put_order("o4", "cancelled", 999, now - 1000);
    put_order("o5", "pending", 70, now - 1000);         /* recent: in its saga */
    put_order("o6", "pending", 80, now - deadline - 1); /* past the deadline */
    put_saga("checkout.o5", "running", now - 1000);
    put_saga("checkout.o6", "running", now - deadline - 1);
    put_saga("checkout.o7", "stuck", now - 5000);
    put_saga("checkout.o1", "completed", now - 1000);
    HARNESS_OK(g_db, order_audit_checks(g_db, now, deadline, &checks));
    sl_audit_digest d = {0};
    sl_audit_digest_add(&d, "o1", 2, 100);
    sl_audit_digest_add(&d, "o2", 2, 250);
    sl_audit_digest_add(&d, "o3", 2, 40);
    json_t *want = sl_audit_digest_json(&d);
    assert_true(json_equal(json_object_get(check(checks, "charge_digest"), "value"), want));
    json_decref(want);
    assert_int_equal(value(checks, "sagas_overdue"), 1);
    assert_false(ok(checks, "sagas_overdue"));
    assert_int_equal(value(checks, "sagas_stuck"), 1);
    assert_false(ok(checks, "sagas_stuck"));
    assert_int_equal(value(checks, "pending_overdue"), 1);
    assert_false(ok(checks, "pending_overdue"));
    assert_int_equal(value(checks, "in_flight"), 2);
    assert_true(ok(checks, "in_flight"));
    json_decref(checks);
}

static int setup(void **state)
{
    (void)state;
    g_db = harness_fresh_lib(NULL);
    int rc = sl_db_migrate(g_db, &sl_migrations_order, NULL);
    if (rc != 0) fail_msg("order migrations: %s", sl_db_errmsg(g_db));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sl_db_close(g_db);
    return 0;
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_checks)};
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    harness_done();
    return rc;
}
