/*
 * Inventory's operations and event appliers against a real database, run
 * on SQLite and on PostgreSQL (the `_api` suffix makes ctest run a suite on
 * both backends): product.created creates a stock row once (duplicates
 * through the inbox and re-sent events alike), order.confirmed commits a
 * reservation once and records, without going negative, a confirmation
 * whose units were already released; two connections racing for the last
 * unit on many rounds: exactly one wins every time; expiry at an injected
 * time; the audit finds violations injected by SQL.
 */
#include "inventory.h"

#include "db_harness.h"

#include <shoal/bus.h>
#include <shoal/outbox.h>

#include <pthread.h>

static char g_url[600];

static int64_t count(sl_db *db, const char *sql)
{
    return harness_int(db, sql);
}

/* Delivers an event to `apply` like the bus runner: inbox claim + apply in one transaction. */
static int deliver(sl_db *db, sl_event_apply_cb apply, const char *id, const char *type,
                   const char *data_json)
{
    json_t *data = json_loads(data_json, 0, NULL);
    assert_non_null(data);
    sl_bus_msg msg = {.topic = type, .id = id, .type = type, .subject = "s", .data = data};
    char reason[200] = "";
    HARNESS_OK(db, sl_db_begin(db));
    int rc = sl_inbox_claim(db, "inventory.test", id, sl_clock_wall_ms(sl_clock_system()));
    assert_true(rc >= 0);
    if (rc == 1) rc = apply(NULL, db, &msg, reason, sizeof reason) == 0 ? 1 : -1;
    if (rc >= 0)
        HARNESS_OK(db, sl_db_commit(db));
    else
        sl_db_rollback(db);
    json_decref(data);
    return rc; /* 1 applied, 0 duplicate, -1 refused */
}

static void seed(sl_db *db, const char *pid, int64_t initial)
{
    char id[80], data[200];
    snprintf(id, sizeof id, "ev-created-%s", pid);
    snprintf(data, sizeof data, "{\"product_id\":\"%s\",\"sku\":\"S\",\"initial_stock\":%lld}", pid,
             (long long)initial);
    assert_int_equal(deliver(db, inv_apply_product_created, id, "shop.product.created.v1", data),
                     1);
}

static sl_db *fresh(void)
{
    sl_db *db = harness_fresh_lib(g_url);
    HARNESS_OK(db, sl_db_migrate(db, &sl_migrations_inventory, NULL));
    return db;
}

static void reserve(sl_db *db, const char *order, const char *pid, int64_t qty, int64_t now,
                    inv_reserve_outcome want)
{
    inv_item it = {.qty = qty};
    snprintf(it.product_id, sizeof it.product_id, "%s", pid);
    inv_reserve_result *res = malloc(sizeof *res);
    HARNESS_OK(db, inv_op_reserve(db, order, &it, 1, now, 1000, NULL, res));
    assert_int_equal(res->outcome, want);
    free(res);
}

static void test_product_created_applies_once(void **state)
{
    (void)state;
    sl_db *db = fresh();
    seed(db, "p1", 7);
    assert_int_equal(count(db, "SELECT stock FROM stock WHERE product_id = 'p1'"), 7);
    /* The same event again: the inbox drops it. */
    assert_int_equal(deliver(db, inv_apply_product_created, "ev-created-p1",
                             "shop.product.created.v1",
                             "{\"product_id\":\"p1\",\"initial_stock\":7}"),
                     0);
    /* A second event for the same product (re-published): idempotent by product id. */
    assert_int_equal(deliver(db, inv_apply_product_created, "ev-other", "shop.product.created.v1",
                             "{\"product_id\":\"p1\",\"initial_stock\":99}"),
                     1);
    assert_int_equal(count(db, "SELECT stock FROM stock WHERE product_id = 'p1'"), 7);
    assert_int_equal(count(db, "SELECT COUNT(*) FROM outbox WHERE type = "
                               "'shop.inventory.stock_changed.v1'"),
                     1);
    /* Data that can never apply is refused (dead-lettered), and changes nothing. */
    assert_int_equal(deliver(db, inv_apply_product_created, "ev-bad1", "shop.product.created.v1",
                             "{\"product_id\":\"\",\"initial_stock\":1}"),
                     -1);
    assert_int_equal(deliver(db, inv_apply_product_created, "ev-bad2", "shop.product.created.v1",
                             "{\"product_id\":\"p9\",\"initial_stock\":-1}"),
                     -1);
    assert_int_equal(deliver(db, inv_apply_product_created, "ev-bad3", "shop.product.created.v1",
                             "{\"product_id\":\"a b\",\"initial_stock\":1}"),
                     -1);
    assert_int_equal(count(db, "SELECT COUNT(*) FROM stock"), 1);
    assert_int_equal(count(db, "SELECT COUNT(*) FROM inbox"), 2);
    sl_db_close(db);
}

static void test_order_confirmed_commits_once(void **state)
{
    (void)state;
    sl_db *db = fresh();
    seed(db, "p1", 5);
    reserve(db, "o1", "p1", 2, 1000, INV_RES_CREATED);
    const char *data = "{\"order_id\":\"o1\",\"user_id\":\"u\",\"items\":[{\"product_id\":\"p1\","
                       "\"qty\":2}]}";
    assert_int_equal(
        deliver(db, inv_apply_order_confirmed, "ev-c1", "shop.order.confirmed.v1", data), 1);
    assert_int_equal(
        deliver(db, inv_apply_order_confirmed, "ev-c1", "shop.order.confirmed.v1", data), 0);
    /* Another delivery under a new id (the saga's direct commit raced it): no second effect. */
    assert_int_equal(
        deliver(db, inv_apply_order_confirmed, "ev-c1b", "shop.order.confirmed.v1", data), 1);
    assert_int_equal(count(db, "SELECT stock FROM stock WHERE product_id = 'p1'"), 3);
    assert_int_equal(count(db, "SELECT reserved FROM stock WHERE product_id = 'p1'"), 0);
    assert_int_equal(count(db, "SELECT COUNT(*) FROM outbox WHERE type = "
                               "'shop.inventory.committed.v1'"),
                     1);

    /* Confirmed after its reservation expired: recorded, nothing taken, never negative. */
    reserve(db, "o2", "p1", 3, 1000, INV_RES_CREATED);
    size_t released = 0;
    HARNESS_OK(db, inv_op_expire_due(db, 5000, 10, &released, NULL, NULL));
    assert_int_equal(released, 1);
    assert_int_equal(deliver(db, inv_apply_order_confirmed, "ev-c2", "shop.order.confirmed.v1",
                             "{\"order_id\":\"o2\",\"items\":[]}"),
                     1);
    assert_int_equal(deliver(db, inv_apply_order_confirmed, "ev-c3", "shop.order.confirmed.v1",
                             "{\"order_id\":\"never\",\"items\":[]}"),
                     1);
    assert_int_equal(count(db, "SELECT stock FROM stock WHERE product_id = 'p1'"), 3);
    assert_int_equal(count(db, "SELECT reserved FROM stock WHERE product_id = 'p1'"), 0);
    assert_int_equal(count(db, "SELECT COUNT(*) FROM commit_anomalies WHERE order_id = 'o2' AND "
                               "kind = 'confirmed_after_expiry'"),
                     1);
    assert_int_equal(count(db, "SELECT COUNT(*) FROM commit_anomalies WHERE order_id = 'never' "
                               "AND kind = 'confirmed_without_reservation'"),
                     1);
    assert_int_equal(deliver(db, inv_apply_order_confirmed, "ev-bad", "shop.order.confirmed.v1",
                             "{\"order\":\"o1\"}"),
                     -1);
    sl_db_close(db);
}

static void test_expiry_at_injected_time(void **state)
{
    (void)state;
    sl_db *db = fresh();
    seed(db, "p1", 2);
    reserve(db, "o1", "p1", 2, 10000, INV_RES_CREATED); /* expires at 11000 */
    reserve(db, "o2", "p1", 1, 10000, INV_RES_INSUFFICIENT);
    size_t released = 0;
    HARNESS_OK(db, inv_op_expire_due(db, 10999, 10, &released, NULL, NULL));
    assert_int_equal(released, 0);
    HARNESS_OK(db, inv_op_expire_due(db, 11000, 10, &released, NULL, NULL));
    assert_int_equal(released, 1);
    HARNESS_OK(db, inv_op_expire_due(db, 12000, 10, &released, NULL, NULL));
    assert_int_equal(released, 0);
    inv_reservation *r = malloc(sizeof *r);
    HARNESS_OK(db, inv_store_res_get(db, "o1", r));
    assert_int_equal(r->status, INV_ST_RELEASED);
    assert_string_equal(r->reason, "expired");
    free(r);
    assert_int_equal(count(db, "SELECT COUNT(*) FROM outbox WHERE type = "
                               "'shop.inventory.released.v1' AND envelope LIKE "
                               "'%\"reason\":\"expired\"%'"),
                     1);
    /* The units are free again. */
    reserve(db, "o3", "p1", 2, 12000, INV_RES_CREATED);
    sl_db_close(db);
}

/* ---- two connections racing for the last unit ---- */

#define ROUNDS 150

typedef struct racer {
    pthread_barrier_t *bar;
    const char *tag;
    int wins[ROUNDS];
    int fails;
} racer;

static void *race(void *arg)
{
    racer *rc = arg;
    sl_db *db;
    char err[256];
    if (sl_db_open(g_url, NULL, &db, err, sizeof err) != 0) {
        rc->fails++;
        return NULL;
    }
    inv_reserve_result *res = malloc(sizeof *res);
    for (int i = 0; i < ROUNDS; i++) {
        inv_item it = {.qty = 1};
        snprintf(it.product_id, sizeof it.product_id, "last-%d", i);
        char order[64];
        snprintf(order, sizeof order, "%s-%d", rc->tag, i);
        pthread_barrier_wait(rc->bar);
        int e = inv_op_reserve(db, order, &it, 1, 1000 + i, 60000, NULL, res);
        if (e != 0)
            rc->fails++;
        else
            rc->wins[i] = res->outcome == INV_RES_CREATED        ? 1
                          : res->outcome == INV_RES_INSUFFICIENT ? 0
                                                                 : -1;
    }
    free(res);
    sl_db_close(db);
    return NULL;
}

static void test_last_unit_exactly_one_wins(void **state)
{
    (void)state;
    sl_db *db = fresh();
    for (int i = 0; i < ROUNDS; i++) {
        char pid[32];
        snprintf(pid, sizeof pid, "last-%d", i);
        seed(db, pid, 1);
    }
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    racer a = {.bar = &bar, .tag = "a"}, b = {.bar = &bar, .tag = "b"};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, race, &a);
    pthread_create(&tb, NULL, race, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&bar);
    assert_int_equal(a.fails + b.fails, 0);
    int awins = 0;
    for (int i = 0; i < ROUNDS; i++) {
        assert_true(a.wins[i] >= 0 && b.wins[i] >= 0);
        assert_int_equal(a.wins[i] + b.wins[i], 1); /* exactly one winner per round */
        awins += a.wins[i];
    }
    print_message("last unit: %d rounds, connection a won %d, b won %d\n", ROUNDS, awins,
                  ROUNDS - awins);
    assert_int_equal(count(db, "SELECT COUNT(*) FROM stock WHERE reserved = 1 AND stock = 1"),
                     ROUNDS);
    assert_int_equal(count(db, "SELECT COUNT(*) FROM reservations"), ROUNDS);
    inv_violation v[8];
    size_t n = 9, dropped = 9;
    HARNESS_OK(db, inv_store_audit(db, v, 8, &n, &dropped));
    assert_int_equal(n + dropped, 0);
    sl_db_close(db);
}

static void test_audit_finds_injected_violations(void **state)
{
    (void)state;
    sl_db *db = fresh();
    seed(db, "p1", 5);
    seed(db, "p2", 5);
    reserve(db, "o1", "p1", 2, 1000, INV_RES_CREATED);
    inv_violation v[16];
    size_t n = 0, dropped = 0;
    HARNESS_OK(db, inv_store_audit(db, v, 16, &n, &dropped));
    assert_int_equal(n, 0);

    /* The counter drifts from the reservations. */
    HARNESS_OK(db, sl_db_exec(db, "UPDATE stock SET reserved = reserved + 1 WHERE product_id = "
                                  "'p1'"));
    HARNESS_OK(db, inv_store_audit(db, v, 16, &n, &dropped));
    assert_int_equal(n, 1);
    assert_string_equal(v[0].check, "reserved_mismatch");
    assert_string_equal(v[0].subject, "p1");
    HARNESS_OK(db, sl_db_exec(db, "UPDATE stock SET reserved = reserved - 1 WHERE product_id = "
                                  "'p1'"));

    /* Negative stock and an orphan item need the constraints out of the way first. */
    if (sl_db_kind(db) == SL_DB_SQLITE) {
        HARNESS_OK(db, sl_db_exec(db, "PRAGMA ignore_check_constraints = ON; "
                                      "PRAGMA foreign_keys = OFF"));
    } else {
        HARNESS_OK(db, sl_db_exec(db, "ALTER TABLE stock DROP CONSTRAINT stock_nonneg, "
                                      "DROP CONSTRAINT reserved_le_stock; "
                                      "ALTER TABLE reservation_items DROP CONSTRAINT "
                                      "items_order_fk"));
    }
    HARNESS_OK(db, sl_db_exec(db, "UPDATE stock SET stock = -1 WHERE product_id = 'p2'"));
    HARNESS_OK(db, sl_db_exec(db, "INSERT INTO reservation_items (order_id, product_id, qty) "
                                  "VALUES ('ghost', 'p2', 1)"));
    HARNESS_OK(db, inv_store_audit(db, v, 16, &n, &dropped));
    int neg = 0, orphan = 0;
    for (size_t i = 0; i < n; i++) {
        neg += strcmp(v[i].check, "stock_negative") == 0 && strcmp(v[i].subject, "p2") == 0;
        orphan += strcmp(v[i].check, "orphan_item") == 0 && strcmp(v[i].subject, "ghost") == 0;
    }
    assert_int_equal(neg, 1);
    assert_int_equal(orphan, 1);
    sl_db_close(db);
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_product_created_applies_once),
        cmocka_unit_test(test_order_confirmed_commits_once),
        cmocka_unit_test(test_expiry_at_injected_time),
        cmocka_unit_test(test_last_unit_exactly_one_wins),
        cmocka_unit_test(test_audit_finds_injected_violations),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    harness_done();
    return rc;
}
