/*
 * Unit tests of the wallet's pure rules (src/services/payment/domain.c):
 * the fold over every event kind, rule breaks recorded (negative balance,
 * refund above charge, double charge, events before opening, version gaps),
 * the decisions (funds, one charge per order, refunds never above the
 * charge, tombstones), the event and snapshot codecs (snapshot + tail equals
 * the full fold), and money input checks.
 */
#include "payment.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static pay_event ev_open(void)
{
    pay_event e = {.kind = PAY_EV_OPENED};
    strcpy(e.user_id, "u1");
    return e;
}

static pay_event ev_money(pay_kind k, int64_t amount, const char *order, const char *peer)
{
    pay_event e = {.kind = k, .amount = amount};
    if (order) strcpy(e.order_id, order);
    if (peer) {
        strcpy(e.peer, peer);
        strcpy(e.transfer_id, "0190aaaa-0000-7000-8000-000000000001");
    }
    return e;
}

static void fold_all(pay_account *a, const pay_event *evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pay_fold(a, &evs[i], a->version + 1, 1000 + (int64_t)i), 0);
}

static void test_fold_every_kind(void **state)
{
    (void)state;
    pay_event evs[] = {
        ev_open(),
        ev_money(PAY_EV_DEPOSITED, 1000, NULL, NULL),
        ev_money(PAY_EV_WITHDRAWN, 300, NULL, "u2"),
        ev_money(PAY_EV_DEPOSITED, 50, NULL, "u3"),
        ev_money(PAY_EV_CHARGED, 400, "o-1", NULL),
        ev_money(PAY_EV_REFUNDED, 150, "o-1", NULL),
    };
    pay_account a;
    pay_account_init(&a);
    fold_all(&a, evs, SL_ARRAY_LEN(evs));
    assert_true(a.opened);
    assert_int_equal(a.version, 6);
    assert_int_equal(a.at_ms, 1005);
    assert_int_equal(a.balance, 1000 - 300 + 50 - 400 + 150);
    assert_int_equal(a.deposited, 1000);
    assert_int_equal(a.transfer_in, 50);
    assert_int_equal(a.transfer_out, 300);
    assert_int_equal(a.charged, 400);
    assert_int_equal(a.refunded, 150);
    assert_int_equal(a.violations, 0);
    assert_int_equal(pay_refundable(&a, "o-1"), 250);
    assert_int_equal(pay_refundable(&a, "o-2"), 0);
    /* Conservation inside one wallet. */
    assert_int_equal(a.balance,
                     a.deposited + a.transfer_in - a.transfer_out - a.charged + a.refunded);
    pay_account_free(&a);
}

static void test_fold_records_rule_breaks(void **state)
{
    (void)state;
    pay_account a;
    pay_account_init(&a);
    pay_event d = ev_money(PAY_EV_DEPOSITED, 10, NULL, NULL);
    assert_int_equal(pay_fold(&a, &d, 1, 0), 0);
    assert_int_equal(a.violations, 1);
    assert_non_null(strstr(a.violation, "before AccountOpened"));
    pay_account_free(&a);

    pay_account_init(&a);
    pay_event evs[] = {ev_open(), ev_money(PAY_EV_DEPOSITED, 100, NULL, NULL),
                       ev_money(PAY_EV_WITHDRAWN, 150, NULL, "u2")};
    fold_all(&a, evs, 3);
    assert_int_equal(a.balance, -50);
    assert_non_null(strstr(a.violation, "negative balance"));
    pay_account_free(&a);

    pay_account_init(&a);
    pay_event evs2[] = {ev_open(), ev_money(PAY_EV_DEPOSITED, 100, NULL, NULL),
                        ev_money(PAY_EV_CHARGED, 60, "o", NULL),
                        ev_money(PAY_EV_REFUNDED, 60, "o", NULL),
                        ev_money(PAY_EV_REFUNDED, 1, "o", NULL)};
    fold_all(&a, evs2, 5);
    assert_int_equal(a.violations, 1);
    assert_non_null(strstr(a.violation, "version 5: refund exceeds charge"));
    pay_account_free(&a);

    pay_account_init(&a);
    pay_event evs3[] = {ev_open(), ev_money(PAY_EV_DEPOSITED, 100, NULL, NULL),
                        ev_money(PAY_EV_CHARGED, 10, "o", NULL),
                        ev_money(PAY_EV_CHARGED, 10, "o", NULL), ev_open()};
    fold_all(&a, evs3, 5);
    assert_int_equal(a.violations, 2);
    assert_non_null(strstr(a.violation, "charged twice"));
    pay_account_free(&a);

    pay_account_init(&a);
    pay_event o = ev_open();
    assert_int_equal(pay_fold(&a, &o, 2, 0), 0);
    assert_non_null(strstr(a.violation, "version gap"));
    pay_account_free(&a);
}

static void test_decisions(void **state)
{
    (void)state;
    pay_account a;
    pay_account_init(&a);
    pay_event evs[] = {ev_open(), ev_money(PAY_EV_DEPOSITED, 500, NULL, NULL),
                       ev_money(PAY_EV_CHARGED, 200, "o-1", NULL)};
    fold_all(&a, evs, 3);
    assert_int_equal(pay_check_debit(&a, 300), PAY_OK);
    assert_int_equal(pay_check_debit(&a, 301), PAY_INSUFFICIENT);
    assert_int_equal(pay_check_charge(&a, "o-2", 300), PAY_OK);
    assert_int_equal(pay_check_charge(&a, "o-2", 301), PAY_INSUFFICIENT);
    /* One charge per order: the same amount again is the same charge, another is refused. */
    assert_int_equal(pay_check_charge(&a, "o-1", 200), PAY_ALREADY_CHARGED);
    assert_int_equal(pay_check_charge(&a, "o-1", 100), PAY_CHARGE_MISMATCH);
    assert_int_equal(pay_check_deposit(&a, PAY_AMOUNT_MAX), PAY_OK);
    /* Refunds never exceed the charge: after refunding all, nothing is refundable. */
    assert_int_equal(pay_refundable(&a, "o-1"), 200);
    pay_event r = ev_money(PAY_EV_REFUNDED, 200, "o-1", NULL);
    assert_int_equal(pay_fold(&a, &r, 4, 0), 0);
    assert_int_equal(pay_refundable(&a, "o-1"), 0);
    assert_int_equal(a.violations, 0);
    /* A tombstone (refund of 0 before any charge) makes a late charge refused. */
    pay_event t = ev_money(PAY_EV_REFUNDED, 0, "o-3", NULL);
    assert_int_equal(pay_fold(&a, &t, 5, 0), 0);
    assert_int_equal(a.violations, 0);
    assert_int_equal(pay_check_charge(&a, "o-3", 1), PAY_ORDER_REFUNDED);
    a.balance = PAY_BALANCE_MAX - 5;
    assert_int_equal(pay_check_deposit(&a, 6), PAY_BALANCE_LIMIT);
    assert_int_equal(pay_check_deposit(&a, 5), PAY_OK);
    pay_account_free(&a);
}

static void test_event_codec_round_trip(void **state)
{
    (void)state;
    pay_event evs[] = {ev_open(),
                       ev_money(PAY_EV_DEPOSITED, 7, NULL, NULL),
                       ev_money(PAY_EV_DEPOSITED, 8, NULL, "u9"),
                       ev_money(PAY_EV_WITHDRAWN, 9, NULL, "u9"),
                       ev_money(PAY_EV_CHARGED, 10, "ord-1", NULL),
                       ev_money(PAY_EV_REFUNDED, 0, "ord-1", NULL)};
    for (size_t i = 0; i < SL_ARRAY_LEN(evs); i++) {
        char *text = pay_event_encode(&evs[i]);
        assert_non_null(text);
        pay_event back;
        assert_int_equal(pay_event_decode(pay_kind_name(evs[i].kind), text, strlen(text), &back),
                         0);
        assert_memory_equal(&back, &evs[i], sizeof back);
        free(text);
    }
    pay_event e;
    const char *bad[][2] = {
        {"MoneyDeposited", "{\"amount\":-1}"},
        {"MoneyDeposited", "{\"amount\":1.5}"},
        {"MoneyDeposited", "{\"amount\":10000000001}"},
        {"MoneyWithdrawn", "{\"amount\":5}"}, /* no to_user_id */
        {"PaymentCharged", "{\"amount\":5}"}, /* no order_id */
        {"AccountOpened", "{}"},
        {"MoneyStolen", "{\"amount\":5}"},
        {"MoneyDeposited", "[1]"},
        {"MoneyDeposited", "{\"amount\":1,\"amount\":2}"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
        assert_int_equal(pay_event_decode(bad[i][0], bad[i][1], strlen(bad[i][1]), &e), SL_EPARSE);
}

static void assert_same_state(const pay_account *x, const pay_account *y)
{
    assert_int_equal(x->opened, y->opened);
    assert_int_equal(x->version, y->version);
    assert_int_equal(x->at_ms, y->at_ms);
    assert_int_equal(x->balance, y->balance);
    assert_int_equal(x->deposited, y->deposited);
    assert_int_equal(x->transfer_in, y->transfer_in);
    assert_int_equal(x->transfer_out, y->transfer_out);
    assert_int_equal(x->charged, y->charged);
    assert_int_equal(x->refunded, y->refunded);
    assert_int_equal(x->violations, y->violations);
    assert_string_equal(x->violation, y->violation);
    assert_int_equal(x->norders, y->norders);
    for (size_t i = 0; i < x->norders; i++) {
        assert_string_equal(x->orders[i].order_id, y->orders[i].order_id);
        assert_int_equal(x->orders[i].charged, y->orders[i].charged);
        assert_int_equal(x->orders[i].refunded, y->orders[i].refunded);
        assert_int_equal(x->orders[i].refund_seen, y->orders[i].refund_seen);
    }
}

/* Snapshot after k events, then the tail, equals folding all events, for every k. */
static void test_snapshot_plus_tail_equals_full_fold(void **state)
{
    (void)state;
    enum { N = 60 };
    pay_event evs[N];
    char order[32];
    evs[0] = ev_open();
    for (int i = 1; i < N; i++) {
        snprintf(order, sizeof order, "o-%d", i % 7);
        switch (i % 5) {
        case 0:
            evs[i] = ev_money(PAY_EV_WITHDRAWN, 3, NULL, "u2");
            break;
        case 1:
            evs[i] = ev_money(PAY_EV_DEPOSITED, 100 + i, NULL, i % 2 ? NULL : "u3");
            break;
        case 2:
            evs[i] = ev_money(PAY_EV_CHARGED, 20, order, NULL);
            break;
        case 3:
            evs[i] = ev_money(PAY_EV_REFUNDED, 5, order, NULL);
            break;
        default:
            evs[i] = ev_money(PAY_EV_DEPOSITED, 1, NULL, NULL);
        }
    }
    pay_account full;
    pay_account_init(&full);
    fold_all(&full, evs, N);
    assert_true(full.violations > 0); /* o-x charged twice: rule breaks survive snapshots too */
    for (int k = 0; k <= N; k++) {
        pay_account head;
        pay_account_init(&head);
        fold_all(&head, evs, (size_t)k);
        char *snap = pay_account_encode(&head);
        assert_non_null(snap);
        pay_account resumed;
        pay_account_init(&resumed);
        assert_int_equal(pay_account_decode(snap, strlen(snap), &resumed), 0);
        assert_same_state(&resumed, &head);
        for (int i = k; i < N; i++)
            assert_int_equal(pay_fold(&resumed, &evs[i], i + 1, 1000 + i), 0);
        assert_same_state(&resumed, &full);
        free(snap);
        pay_account_free(&head);
        pay_account_free(&resumed);
    }
    pay_account_free(&full);
    pay_account junk;
    pay_account_init(&junk);
    assert_int_equal(pay_account_decode("{\"v\":2}", 7, &junk), SL_EPARSE);
    assert_int_equal(pay_account_decode("nope", 4, &junk), SL_EPARSE);
}

static void test_read_money(void **state)
{
    (void)state;
    struct {
        const char *json;
        int ok;
        int64_t want;
        const char *field;
    } cases[] = {
        {"{\"amount\":1}", 1, 1, NULL},
        {"{\"amount\":1000000000}", 1, 1000000000, NULL},
        {"{\"amount\":{\"amount\":250,\"currency\":\"JPY\"}}", 1, 250, NULL},
        {"{\"amount\":{\"amount\":250}}", 1, 250, NULL},
        {"{\"amount\":0}", 0, 0, "amount"},
        {"{\"amount\":-5}", 0, 0, "amount"},
        {"{\"amount\":1000000001}", 0, 0, "amount"},
        {"{\"amount\":99999999999999999999}", 0, 0, "amount"},
        {"{\"amount\":1.0}", 0, 0, "amount"},
        {"{\"amount\":\"10\"}", 0, 0, "amount"},
        {"{}", 0, 0, "amount"},
        {"{\"amount\":null}", 0, 0, "amount"},
        {"{\"amount\":{\"amount\":5,\"currency\":\"USD\"}}", 0, 0, "amount.currency"},
        {"{\"amount\":{\"currency\":\"JPY\"}}", 0, 0, "amount.amount"},
        {"{\"amount\":{\"amount\":5,\"x\":1}}", 0, 0, "amount.x"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        json_error_t e;
        json_t *doc = json_loads(cases[i].json, 0, &e);
        int64_t v = 0;
        sl_json_errors errs;
        sl_json_errors_init(&errs);
        if (!doc) { /* a number too large for jansson's integers is a parse error upstream */
            assert_false(cases[i].ok);
            continue;
        }
        int rc = pay_read_money(doc, "amount", PAY_AMOUNT_MAX, &v, &errs);
        if (cases[i].ok) {
            assert_int_equal(rc, 0);
            assert_int_equal(v, cases[i].want);
        } else {
            assert_int_equal(rc, SL_EINVAL);
            assert_int_equal(errs.count, 1);
            assert_string_equal(errs.items[0].field, cases[i].field);
        }
        json_decref(doc);
    }
}

static void test_ids(void **state)
{
    (void)state;
    assert_true(pay_user_id_valid("u-1", 3));
    assert_false(pay_user_id_valid("", 0));
    assert_false(pay_user_id_valid("a b", 3));
    char big[PAY_USER_ID_MAX + 2];
    memset(big, 'a', sizeof big);
    assert_true(pay_user_id_valid(big, PAY_USER_ID_MAX));
    assert_false(pay_user_id_valid(big, PAY_USER_ID_MAX + 1));
    assert_true(pay_order_id_valid("0190aaaa-0000-7000-8000-000000000001", 36));
    assert_false(pay_order_id_valid("o/1", 3));
    assert_false(pay_order_id_valid("o\xc3\xa9", 3));
}

static void test_deposit_daily_limit(void **state)
{
    (void)state;
    assert_int_equal(pay_deposit_over_limit(0, 100, 0), 0); /* no limit */
    assert_int_equal(pay_deposit_over_limit(900, 100, 1000), 0);
    assert_int_equal(pay_deposit_over_limit(901, 100, 1000), 1);
    assert_int_equal(pay_deposit_over_limit(2000, 1, 1000), 1);
    assert_int_equal(pay_deposit_over_limit(0, INT64_MAX, 1000), 1);
    assert_int_equal(pay_day_start_ms(86400000LL * 20000 + 5), 86400000LL * 20000);
    assert_int_equal(pay_day_start_ms(86400000LL * 20000 - 1), 86400000LL * 19999);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deposit_daily_limit),
        cmocka_unit_test(test_fold_every_kind),
        cmocka_unit_test(test_fold_records_rule_breaks),
        cmocka_unit_test(test_decisions),
        cmocka_unit_test(test_event_codec_round_trip),
        cmocka_unit_test(test_snapshot_plus_tail_equals_full_fold),
        cmocka_unit_test(test_read_money),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
