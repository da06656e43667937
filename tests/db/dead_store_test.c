/*
 * The dead_letters table of the in-process broker's durable dead letters
 * (src/lib/bus/dead_store.c) on SQLite and PostgreSQL: a write replaces the
 * consumer's row for the same message under a new seq, the cap refuses a
 * new row but not a replacement, listing is per topic and oldest first,
 * and a redrive reads the original envelope and subject back.
 */
#include "db_harness.h"

#include "bus/dead_store.h"

#define T1 "shop.order.placed.v1"
#define T2 "shop.payment.charged.v1"

static const char letter_a[] =
    "{\"topic\":\"" T1 "\",\"group\":\"ledger-g\",\"id\":\"ev-a\",\"deliveries\":3,"
    "\"reason\":\"first\",\"at\":\"2026-01-01T00:00:00Z\","
    "\"envelope\":\"{\\\"id\\\":\\\"ev-a\\\",\\\"subject\\\":\\\"ord-1\\\"}\"}";
static const char letter_a2[] =
    "{\"topic\":\"" T1 "\",\"group\":\"ledger-g\",\"id\":\"ev-a\",\"deliveries\":5,"
    "\"reason\":\"again\",\"at\":\"2026-01-01T00:01:00Z\","
    "\"envelope\":\"{\\\"id\\\":\\\"ev-a\\\",\\\"subject\\\":\\\"ord-1\\\"}\"}";
static const char letter_b[] = "{\"topic\":\"" T2 "\",\"group\":\"ledger-h\",\"id\":\"ev-b\","
                               "\"deliveries\":1,\"reason\":\"big\",\"envelope_bytes\":99999}";

static int put(sl_db *db, const char *consumer, const char *key, const char *topic,
               const char *letter, int64_t max)
{
    return sl__dead_store_put(db, consumer, key, topic, letter, strlen(letter), 1000, max);
}

static void test_put_replace_cap_list(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    HARNESS_OK(db, put(db, "ledger-g", "ev-a", T1, letter_a, 2));
    HARNESS_OK(db, put(db, "ledger-h", "ev-b", T2, letter_b, 2));
    int64_t n = 0;
    HARNESS_OK(db, sl__dead_store_count(db, &n));
    assert_int_equal(n, 2);
    /* At the cap: a new message is refused and nothing is written... */
    assert_int_equal(put(db, "ledger-g", "ev-c", T1, letter_a, 2), SL_ELIMIT);
    HARNESS_OK(db, sl__dead_store_count(db, &n));
    assert_int_equal(n, 2);
    /* ...but the same message dead-lettered again replaces its row, under a new seq. */
    int64_t old = harness_int(db, "SELECT seq FROM dead_letters WHERE dkey = 'ev-a'");
    HARNESS_OK(db, put(db, "ledger-g", "ev-a", T1, letter_a2, 2));
    HARNESS_OK(db, sl__dead_store_count(db, &n));
    assert_int_equal(n, 2);
    int64_t now = harness_int(db, "SELECT seq FROM dead_letters WHERE dkey = 'ev-a'");
    assert_true(now > old);

    sl_bus_dead items[4];
    size_t k = 0;
    HARNESS_OK(db, sl__dead_store_list(db, T1, 4, items, &k));
    assert_int_equal(k, 1);
    assert_int_equal(items[0].dlq_seq, (uint64_t)now);
    assert_string_equal(items[0].group, "ledger-g");
    assert_string_equal(items[0].id, "ev-a");
    assert_string_equal(items[0].reason, "again");
    assert_string_equal(items[0].subject, "ord-1");
    assert_int_equal(items[0].deliveries, 5);
    HARNESS_OK(db, sl__dead_store_list(db, "shop.none.v1", 4, items, &k));
    assert_int_equal(k, 0);
    sl_db_close(db);
}

static void test_envelope_and_delete(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    HARNESS_OK(db, put(db, "ledger-g", "ev-a", T1, letter_a, 10));
    HARNESS_OK(db, put(db, "ledger-h", "ev-b", T2, letter_b, 10));
    int64_t a = harness_int(db, "SELECT seq FROM dead_letters WHERE dkey = 'ev-a'");
    int64_t b = harness_int(db, "SELECT seq FROM dead_letters WHERE dkey = 'ev-b'");
    char *env = NULL, subject[SL_BUS_ID_MAX + 1];
    size_t len = 0;
    HARNESS_OK(db, sl__dead_store_envelope(db, T1, a, &env, &len, subject));
    assert_string_equal(env, "{\"id\":\"ev-a\",\"subject\":\"ord-1\"}");
    assert_int_equal(len, strlen(env));
    assert_string_equal(subject, "ord-1");
    free(env);
    /* The wrong topic, an unknown seq, a letter kept without its envelope. */
    assert_int_equal(sl__dead_store_envelope(db, T2, a, &env, &len, subject), SL_ENOTFOUND);
    assert_int_equal(sl__dead_store_envelope(db, T1, a + b + 10, &env, &len, subject),
                     SL_ENOTFOUND);
    assert_int_equal(sl__dead_store_envelope(db, T2, b, &env, &len, subject), SL_EPARSE);
    assert_null(env);
    HARNESS_OK(db, sl__dead_store_delete(db, a));
    HARNESS_OK(db, sl__dead_store_delete(db, a)); /* already gone: nothing */
    int64_t n = 0;
    HARNESS_OK(db, sl__dead_store_count(db, &n));
    assert_int_equal(n, 1);
    sl_db_close(db);
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_replace_cap_list),
        cmocka_unit_test(test_envelope_and_delete),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    harness_done();
    return rc;
}
