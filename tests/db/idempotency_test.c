/*
 * Idempotency keys on SQLite and PostgreSQL: first claim, replay with the
 * stored answer, mismatch for another request, a rollback forgets the key,
 * two concurrent claimants (real threads, own connections) give exactly one
 * NEW and one REPLAY, validation and retention.
 */
#include "db_harness.h"

#include <shoal/idempotency.h>

#include <pthread.h>

static const int64_t NOW = 1795869296000;

static void claim_and_finish(sl_db *db, const char *key, const char *req, int status,
                             const char *body)
{
    sl_idem_result r;
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, sl_idem_begin(db, "user:u1", key, req, strlen(req), NOW, &r));
    assert_int_equal(r.state, SL_IDEM_NEW);
    HARNESS_OK(db, sl_idem_finish(db, "user:u1", key, status, body, strlen(body)));
    HARNESS_OK(db, sl_db_commit(db));
}

static void test_new_replay_mismatch(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    claim_and_finish(db, "k-1", "POST /orders {\"a\":1}", 202, "{\"order_id\":\"o1\"}");

    sl_idem_result r;
    HARNESS_OK(db, sl_db_begin(db));
    const char *same = "POST /orders {\"a\":1}";
    HARNESS_OK(db, sl_idem_begin(db, "user:u1", "k-1", same, strlen(same), NOW, &r));
    assert_int_equal(r.state, SL_IDEM_REPLAY);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.body, "{\"order_id\":\"o1\"}");
    sl_idem_result_free(&r);

    const char *other = "POST /orders {\"a\":2}";
    HARNESS_OK(db, sl_idem_begin(db, "user:u1", "k-1", other, strlen(other), NOW, &r));
    assert_int_equal(r.state, SL_IDEM_MISMATCH);
    /* The same key from another principal is a different key. */
    HARNESS_OK(db, sl_idem_begin(db, "user:u2", "k-1", other, strlen(other), NOW, &r));
    assert_int_equal(r.state, SL_IDEM_NEW);
    HARNESS_OK(db, sl_db_commit(db));
    sl_db_close(db);
}

static void test_rollback_forgets(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    sl_idem_result r;
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, sl_idem_begin(db, "saga", "s1:reserve", "x", 1, NOW, &r));
    assert_int_equal(r.state, SL_IDEM_NEW);
    sl_db_rollback(db);
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, sl_idem_begin(db, "saga", "s1:reserve", "x", 1, NOW, &r));
    assert_int_equal(r.state, SL_IDEM_NEW);
    HARNESS_OK(db, sl_idem_finish(db, "saga", "s1:reserve", 200, NULL, 0));
    /* Finishing twice, or a key never claimed, is an error. */
    assert_int_equal(sl_idem_finish(db, "saga", "s1:reserve", 200, NULL, 0), SL_ENOTFOUND);
    assert_int_equal(sl_idem_finish(db, "saga", "nope", 200, NULL, 0), SL_ENOTFOUND);
    HARNESS_OK(db, sl_db_commit(db));
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, sl_idem_begin(db, "saga", "s1:reserve", "x", 1, NOW, &r));
    assert_int_equal(r.state, SL_IDEM_REPLAY);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "");
    sl_idem_result_free(&r);
    HARNESS_OK(db, sl_db_commit(db));
    sl_db_close(db);
}

static void test_validation_and_prune(void **state)
{
    (void)state;
    sl_db *db = harness_fresh_lib(NULL);
    sl_idem_result r;
    assert_int_equal(sl_idem_begin(db, "s", "k", "x", 1, NOW, &r), SL_ESTATE);
    HARNESS_OK(db, sl_db_begin(db));
    char longkey[SL_IDEM_KEY_MAX + 2];
    memset(longkey, 'a', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    const char *bad[] = {"", "has space", "tab\tkey", "caf\xc3\xa9", longkey};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sl_idem_begin(db, "s", bad[i], "x", 1, NOW, &r), SL_EINVAL);
    assert_int_equal(sl_idem_begin(db, "", "k", "x", 1, NOW, &r), SL_EINVAL);
    longkey[SL_IDEM_KEY_MAX] = 0;
    HARNESS_OK(db, sl_idem_begin(db, "s", longkey, "x", 1, NOW - 10000, &r));
    assert_int_equal(r.state, SL_IDEM_NEW);
    HARNESS_OK(db, sl_idem_begin(db, "s", "recent", "x", 1, NOW, &r));
    HARNESS_OK(db, sl_db_commit(db));
    int64_t removed = -1;
    HARNESS_OK(db, sl_idem_prune(db, NOW - 5000, &removed));
    assert_int_equal(removed, 1);
    assert_int_equal(harness_int(db, "SELECT COUNT(*) FROM idempotency_keys"), 1);
    sl_db_close(db);
}

typedef struct racer {
    const char *url;
    int round;
    int state;
    int status;
    pthread_barrier_t *barrier;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    sl_db *db;
    harness_open_url(r->url, &db);
    char key[32];
    snprintf(key, sizeof key, "race-%d", r->round);
    pthread_barrier_wait(r->barrier);
    for (int attempt = 0; attempt < 50; attempt++) {
        if (sl_db_begin(db) != 0) {
            usleep(1000);
            continue;
        }
        sl_idem_result res;
        int rc = sl_idem_begin(db, "user:race", key, "same", 4, NOW, &res);
        if (rc == 0 && res.state == SL_IDEM_NEW) {
            usleep(2000); /* hold the claim a little so the other one waits on it */
            rc = sl_idem_finish(db, "user:race", key, 201, "first", 5);
        }
        if (rc == 0)
            rc = sl_db_commit(db);
        else
            sl_db_rollback(db);
        if (rc == 0) {
            r->state = res.state;
            r->status = res.state == SL_IDEM_REPLAY ? res.status : 201;
            if (res.state == SL_IDEM_REPLAY) assert_string_equal(res.body, "first");
            sl_idem_result_free(&res);
            break;
        }
        sl_idem_result_free(&res);
        usleep(1000);
    }
    sl_db_close(db);
    return NULL;
}

static void test_concurrent_claims(void **state)
{
    (void)state;
    char url[600];
    sl_db *db = harness_fresh_lib(url);
    for (int round = 0; round < 20; round++) {
        pthread_barrier_t b;
        pthread_barrier_init(&b, NULL, 2);
        racer a = {url, round, -1, 0, &b}, c = {url, round, -1, 0, &b};
        pthread_t ta, tc;
        pthread_create(&ta, NULL, race, &a);
        pthread_create(&tc, NULL, race, &c);
        pthread_join(ta, NULL);
        pthread_join(tc, NULL);
        pthread_barrier_destroy(&b);
        /* Exactly one did the work; the other got its answer. */
        assert_int_equal((a.state == SL_IDEM_NEW) + (c.state == SL_IDEM_NEW), 1);
        assert_int_equal((a.state == SL_IDEM_REPLAY) + (c.state == SL_IDEM_REPLAY), 1);
        assert_int_equal(a.status, 201);
        assert_int_equal(c.status, 201);
    }
    sl_db_close(db);
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_replay_mismatch),
        cmocka_unit_test(test_rollback_forgets),
        cmocka_unit_test(test_validation_and_prune),
        cmocka_unit_test(test_concurrent_claims),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    harness_done();
    return rc;
}
