/*
 * The wallet commands under real concurrency, on SQLite (argv[1] = sqlite)
 * and PostgreSQL (pg): threads with their own connections race, round after
 * round, (1) transfers out of one wallet that together exceed its balance —
 * exactly one succeeds, the balance never goes negative; (2) one charge
 * re-sent concurrently with the same idempotency key, and one order charged
 * concurrently under different keys — money is taken once. Also the
 * shop.user.registered.v1 consumer applied through the inbox twice (one
 * AccountOpened), and the audit over everything at the end.
 */
#include "db_harness.h"
#include "payment.h"

#include <shoal/bus.h>
#include <shoal/eventstore.h>
#include <shoal/outbox.h>

#include <pthread.h>
#include <time.h>

#define THREADS 4
#define ROUNDS  25

static struct {
    char url[600];
    sl_db *db;
} g;

static int outbox_emit(void *data, sl_db *tx, const char *type, const char *subject,
                       const json_t *payload)
{
    (void)data;
    char *json = sl_json_dump(payload, NULL);
    sl_outbox_event ev = {
        .source = "/shoal/payment", .type = type, .subject = subject, .data_json = json};
    int rc = json ? sl_outbox_add(tx, &ev, 1, NULL) : SL_ENOMEM;
    free(json);
    return rc;
}

static pay_env env_of(sl_db *db)
{
    return (pay_env){.db = db, .snapshot_every = 3, .emit = outbox_emit};
}

static int setup(void **state)
{
    (void)state;
    g.db = harness_fresh_lib(g.url);
    int rc = sl_db_migrate(g.db, &sl_migrations_payment, NULL);
    if (rc != 0) fail_msg("payment migrations: %s", sl_db_errmsg(g.db));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sl_db_close(g.db);
    return 0;
}

static int64_t balance_of(const char *uid)
{
    pay_account a;
    pay_account_init(&a);
    HARNESS_OK(g.db, pay_load(g.db, uid, INT64_MAX, 1, &a));
    int64_t b = a.balance;
    /* Snapshots never change the answer. */
    pay_account b2;
    pay_account_init(&b2);
    HARNESS_OK(g.db, pay_load(g.db, uid, INT64_MAX, 0, &b2));
    assert_int_equal(b2.balance, b);
    assert_int_equal(b2.version, a.version);
    pay_account_free(&a);
    pay_account_free(&b2);
    return b;
}

static void deposit(const char *uid, int64_t amount)
{
    pay_env env = env_of(g.db);
    pay_answer ans;
    pay_deposit_ctx dep = {uid, "customer", "", 0};
    HARNESS_OK(g.db, pay_cmd_deposit(&env, NULL, uid, amount, &dep, &ans));
    assert_int_equal(ans.status, 200);
    pay_answer_free(&ans);
}

typedef enum race_kind { RACE_TRANSFER, RACE_CHARGE_SAME_KEY, RACE_CHARGE_OTHER_KEYS } race_kind;

typedef struct racer {
    pthread_t th;
    pthread_barrier_t *start;
    race_kind kind;
    int idx;
    const char *from, *to, *order;
    int64_t amount;
    int rc, status;
    char body[512];
} racer;

static void *race(void *p)
{
    racer *r = p;
    sl_db *db = NULL;
    char err[256];
    r->rc = sl_db_open(g.url, NULL, &db, err, sizeof err);
    pthread_barrier_wait(r->start);
    if (r->rc != 0) return NULL;
    pay_env env = env_of(db);
    pay_answer ans = {0};
    char key[64];
    snprintf(key, sizeof key, "%s:charge:action:%d", r->order ? r->order : "",
             r->kind == RACE_CHARGE_OTHER_KEYS ? r->idx : 0);
    char canon[128];
    int n =
        snprintf(canon, sizeof canon, "%s/%lld", r->order ? r->order : "", (long long)r->amount);
    pay_idem idem = {"saga", key, canon, (size_t)n};
    if (r->kind == RACE_TRANSFER)
        r->rc = pay_cmd_transfer(&env, NULL, r->from, r->to, r->amount, &ans);
    else
        r->rc = pay_cmd_charge(&env, &idem, r->order, r->from, r->amount, &ans);
    r->status = ans.status;
    snprintf(r->body, sizeof r->body, "%s", ans.body ? ans.body : "");
    pay_answer_free(&ans);
    sl_db_close(db);
    return NULL;
}

static void run_race(racer *rs, int n)
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        rs[i].start = &start;
        rs[i].idx = i;
        assert_int_equal(pthread_create(&rs[i].th, NULL, race, &rs[i]), 0);
    }
    for (int i = 0; i < n; i++)
        pthread_join(rs[i].th, NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < n; i++)
        if (rs[i].rc != 0) fail_msg("racer %d: %s", i, sl_errname(rs[i].rc));
}

static void test_concurrent_transfers_never_overdraw(void **state)
{
    (void)state;
    pay_env env = env_of(g.db);
    pay_answer ans;
    HARNESS_OK(g.db, pay_cmd_open(&env, "sink", &ans));
    pay_answer_free(&ans);
    for (int round = 0; round < ROUNDS; round++) {
        char uid[32];
        snprintf(uid, sizeof uid, "payer-%d", round);
        deposit(uid, 100);
        racer rs[THREADS];
        memset(rs, 0, sizeof rs);
        for (int i = 0; i < THREADS; i++)
            rs[i] = (racer){.kind = RACE_TRANSFER, .from = uid, .to = "sink", .amount = 60};
        run_race(rs, THREADS);
        int ok = 0, refused = 0;
        for (int i = 0; i < THREADS; i++) {
            ok += rs[i].status == 200;
            refused += rs[i].status == 409 && strstr(rs[i].body, "insufficient_funds") != NULL;
        }
        if (ok != 1 || refused != THREADS - 1)
            fail_msg("round %d: %d succeeded, %d refused", round, ok, refused);
        assert_int_equal(balance_of(uid), 40);
    }
    assert_int_equal(balance_of("sink"), 60 * ROUNDS);
}

static void test_concurrent_charges_take_money_once(void **state)
{
    (void)state;
    for (int round = 0; round < ROUNDS; round++) {
        for (int mode = 0; mode < 2; mode++) {
            char uid[32], order[32];
            snprintf(uid, sizeof uid, "buyer-%d-%d", round, mode);
            snprintf(order, sizeof order, "order-%d-%d", round, mode);
            deposit(uid, 100);
            racer rs[THREADS];
            for (int i = 0; i < THREADS; i++)
                rs[i] = (racer){.kind = mode ? RACE_CHARGE_OTHER_KEYS : RACE_CHARGE_SAME_KEY,
                                .from = uid,
                                .order = order,
                                .amount = 70};
            run_race(rs, THREADS);
            int created = 0;
            for (int i = 0; i < THREADS; i++) {
                if (rs[i].status != 201 && rs[i].status != 200)
                    fail_msg("round %d mode %d: status %d %s", round, mode, rs[i].status,
                             rs[i].body);
                created += rs[i].status == 201;
            }
            /* Same key: every answer is the stored 201. Other keys: one 201, the rest 200. */
            assert_int_equal(created, mode ? 1 : THREADS);
            assert_int_equal(balance_of(uid), 30);
        }
    }
    assert_int_equal(harness_int(g.db, "SELECT count(*) FROM es_events WHERE type = "
                                       "'PaymentCharged'"),
                     2 * ROUNDS);
    assert_int_equal(harness_int(g.db, "SELECT count(*) FROM outbox WHERE type = "
                                       "'shop.payment.charged.v1'"),
                     2 * ROUNDS);
}

/* The consumer as the host runs it: inbox claim + apply in one transaction; a redelivery
 * is a duplicate and applies nothing. */
static void test_registered_applied_once(void **state)
{
    (void)state;
    json_t *data = json_pack("{s:s,s:s,s:s,s:s}", "user_id", "newbie", "email", "n@x", "name", "N",
                             "role", "customer");
    sl_bus_msg msg = {.id = "evt-42", .type = "shop.user.registered.v1", .data = data};
    for (int i = 0; i < 2; i++) {
        HARNESS_OK(g.db, sl_db_begin(g.db));
        int claimed = sl_inbox_claim(g.db, "payment.shop.user.registered.v1", msg.id,
                                     sl_clock_wall_ms(sl_clock_system()));
        assert_int_equal(claimed, i == 0 ? 1 : 0);
        char reason[128];
        if (claimed) HARNESS_OK(g.db, pay_apply_user_registered(NULL, g.db, &msg, reason, 128));
        HARNESS_OK(g.db, sl_db_commit(g.db));
    }
    /* Even without the inbox (another event id), a second apply appends nothing. */
    HARNESS_OK(g.db, sl_db_begin(g.db));
    char reason[128];
    HARNESS_OK(g.db, pay_apply_user_registered(NULL, g.db, &msg, reason, 128));
    HARNESS_OK(g.db, sl_db_commit(g.db));
    int64_t v;
    HARNESS_OK(g.db, sl_es_stream_version(g.db, "account-newbie", &v));
    assert_int_equal(v, 1);
    json_decref(data);
    /* A malformed event is poison: SL_EPARSE with a reason. */
    json_t *bad = json_pack("{s:i}", "user_id", 5);
    sl_bus_msg m2 = {.id = "evt-43", .type = "shop.user.registered.v1", .data = bad};
    HARNESS_OK(g.db, sl_db_begin(g.db));
    assert_int_equal(pay_apply_user_registered(NULL, g.db, &m2, reason, 128), SL_EPARSE);
    assert_non_null(strstr(reason, "user_id"));
    sl_db_rollback(g.db);
    json_decref(bad);
}

static void test_projection_and_audit(void **state)
{
    (void)state;
    size_t handled;
    do {
        HARNESS_OK(g.db, pay_project_poll(g.db, 100, &handled));
    } while (handled > 0);
    json_t *rep;
    HARNESS_OK(g.db, pay_audit(g.db, &rep));
    if (!json_is_true(json_object_get(rep, "ok"))) fail_msg("audit: %s", json_dumps(rep, 0));
    assert_int_equal(json_integer_value(json_object_get(rep, "accounts")),
                     harness_int(g.db, "SELECT count(*) FROM wallet_balances"));
    json_decref(rep);
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_transfers_never_overdraw),
        cmocka_unit_test(test_concurrent_charges_take_money_once),
        cmocka_unit_test(test_registered_applied_once),
        cmocka_unit_test(test_projection_and_audit),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    harness_done();
    return rc;
}
