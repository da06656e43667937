/*
 * The price replica's table under its two owners in time: the cart's first
 * migration created product_prices before the product contract owned it,
 * and that migration stays as it was applied (the runner checksums applied
 * scripts). The contract's migration (component "product_contract") then
 * applies as a no-op over a data directory from before, creates nothing
 * twice on a fresh one (the host applies it after the service's own), and
 * is recorded once.
 */
#include "cart.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static sl_db *open_memory(void)
{
    sl_db *db = NULL;
    char err[256];
    assert_int_equal(sl_db_open("sqlite::memory:", NULL, &db, err, sizeof err), 0);
    return db;
}

static int64_t count(sl_db *db, const char *sql)
{
    sl_db_stmt *st;
    assert_int_equal(sl_db_prepare(db, sql, &st), 0);
    assert_int_equal(sl_db_step(st), SL_DB_ROW);
    int64_t n = sl_db_column_int64(st, 0);
    sl_db_stmt_done(st);
    return n;
}

/* Applies `set`, expecting `want_applied` new versions (< 0: any). */
static void migrate(sl_db *db, const sl_migration_set *set, int want_applied)
{
    int applied = -1;
    int rc = sl_db_migrate(db, set, &applied);
    if (rc != 0) fail_msg("%s: %s", set->component, sl_db_errmsg(db));
    if (want_applied >= 0) assert_int_equal(applied, want_applied);
}

static void test_existing_data_directory(void **state)
{
    (void)state;
    sl_db *db = open_memory();
    /* A cart database from before the contract, with a replica row. */
    migrate(db, sl_db_lib_migrations(), -1);
    migrate(db, &sl_migrations_cart, 1);
    assert_int_equal(sl_db_exec(db, "INSERT INTO product_prices (product_id, name, price, "
                                    "currency) VALUES ('p1', 'Kettle', 1200, 'JPY')"),
                     0);
    /* The next start: the cart's own migration is unchanged, the contract's applies once. */
    migrate(db, &sl_migrations_cart, 0);
    migrate(db, &sl_migrations_product_contract, 1);
    migrate(db, &sl_migrations_product_contract, 0);
    assert_int_equal(count(db, "SELECT COUNT(*) FROM schema_migrations WHERE component = "
                               "'product_contract'"),
                     1);
    product_replica_row row;
    assert_int_equal(product_replica_get(db, "p1", &row), 0);
    assert_int_equal(row.amount, 1200);
    assert_string_equal(row.name, "Kettle");
    sl_db_close(db);
}

static void test_contract_alone_creates_the_table(void **state)
{
    (void)state;
    /* A new consumer whose own migrations do not create the table gets it from the contract. */
    sl_db *db = open_memory();
    migrate(db, &sl_migrations_product_contract, 1);
    product_replica_row row;
    assert_int_equal(product_replica_get(db, "p1", &row), SL_ENOTFOUND);
    sl_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_existing_data_directory),
        cmocka_unit_test(test_contract_alone_creates_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
