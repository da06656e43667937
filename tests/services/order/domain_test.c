/*
 * shoal-order's pure rules alone (domain.c): every (status, action) pair of
 * the order state machine, legal or not; the validation of a new order's
 * body naming each bad field; totals in one currency with checked
 * arithmetic; and how participants' answers classify for the saga engine.
 */
#include "order.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

/* The whole transition table: what each action does in each status. */
static void test_every_transition(void **state)
{
    (void)state;
    /* expected[status][action]: the next status, or -1 illegal (409), or -2 retry later. */
    static const int expected[ORDER_STATUS_COUNT][ORDER_ACTION_COUNT] = {
        /*                 confirm          checkout_fail    customer_cancel  ship deliver */
        [ORDER_PENDING] = {ORDER_CONFIRMED, ORDER_CANCELLED, -2, -1, -1},
        [ORDER_CONFIRMED] = {-1, -1, ORDER_CANCELLED, ORDER_SHIPPED, -1},
        [ORDER_SHIPPED] = {-1, -1, -1, -1, ORDER_DELIVERED},
        [ORDER_DELIVERED] = {-1, -1, -1, -1, -1},
        [ORDER_CANCELLED] = {-1, -1, -1, -1, -1},
    };
    int legal = 0;
    for (int s = 0; s < ORDER_STATUS_COUNT; s++) {
        for (int a = 0; a < ORDER_ACTION_COUNT; a++) {
            order_status next = (order_status)99;
            int rc = order_transition((order_status)s, (order_action)a, &next);
            int want = expected[s][a];
            if (want >= 0) {
                assert_int_equal(rc, 0);
                assert_int_equal(next, want);
                legal++;
            } else {
                assert_int_equal(rc, want == -2 ? SL_EAGAIN : SL_ESTATE);
                assert_int_equal(next, 99); /* untouched on refusal */
            }
        }
    }
    assert_int_equal(legal, 5);
    /* Out-of-range actions are refused, never asserted. */
    order_status next;
    assert_int_equal(order_transition(ORDER_PENDING, (order_action)42, &next), SL_ESTATE);
}

static void test_names_and_ranks(void **state)
{
    (void)state;
    for (int s = 0; s < ORDER_STATUS_COUNT; s++) {
        const char *n = order_status_name((order_status)s);
        order_status back;
        assert_int_equal(order_status_parse(n, strlen(n), &back), 0);
        assert_int_equal(back, s);
    }
    order_status st;
    assert_int_equal(order_status_parse("Pending", 7, &st), SL_EINVAL);
    assert_int_equal(order_status_parse("pend", 4, &st), SL_EINVAL);
    assert_string_equal(order_status_name((order_status)77), "unknown");
    assert_string_equal(order_action_name(ORDER_ACT_SHIP), "ship");
    /* The read model's order: each legal transition raises the rank. */
    for (int s = 0; s < ORDER_STATUS_COUNT; s++)
        for (int a = 0; a < ORDER_ACTION_COUNT; a++) {
            order_status next;
            if (order_transition((order_status)s, (order_action)a, &next) == 0)
                assert_true(order_status_rank(next) > order_status_rank((order_status)s));
        }
}

static int read_req(const char *text, order_request *rq, sl_json_errors *errs)
{
    json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    sl_json_errors_init(errs);
    int rc = order_read_request(v, rq, errs);
    json_decref(v);
    return rc;
}

static int has_error(const sl_json_errors *errs, const char *field)
{
    for (size_t i = 0; i < errs->count; i++)
        if (strcmp(errs->items[i].field, field) == 0) return 1;
    return 0;
}

#define ADDR                                                                                       \
    "\"shipping_address\":{\"name\":\"Ann\",\"line1\":\"1 Main St\",\"city\":\"Kyoto\","           \
    "\"postal_code\":\"600-8216\",\"country\":\"JP\"}"

static void test_request_validation(void **state)
{
    (void)state;
    order_request *rq = malloc(sizeof *rq);
    sl_json_errors errs;
    assert_int_equal(read_req("{\"items\":[{\"product_id\":\"p1\",\"qty\":2},{\"product_id\":"
                              "\"p2\",\"qty\":99}]," ADDR "}",
                              rq, &errs),
                     0);
    assert_int_equal(rq->n, 2);
    assert_string_equal(rq->items[1].product_id, "p2");
    assert_int_equal(rq->items[1].qty, 99);
    assert_string_equal(rq->addr.city, "Kyoto");
    static const struct {
        const char *body;
        const char *field;
    } bad[] = {
        {"{" ADDR "}", "items"},
        {"{\"items\":[]," ADDR "}", "items"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":0}]," ADDR "}", "items[0].qty"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":-3}]," ADDR "}", "items[0].qty"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":100}]," ADDR "}", "items[0].qty"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":1e30}]," ADDR "}", "items[0].qty"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":1.5}]," ADDR "}", "items[0].qty"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":\"2\"}]," ADDR "}", "items[0].qty"},
        {"{\"items\":[{\"qty\":1}]," ADDR "}", "items[0].product_id"},
        {"{\"items\":[{\"product_id\":\"a b\",\"qty\":1}]," ADDR "}", "items[0].product_id"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":1,\"x\":1}]," ADDR "}", "items[0].x"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":1},{\"product_id\":\"p1\",\"qty\":1}]," ADDR
         "}",
         "items[1].product_id"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":1}]}", "shipping_address"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":1}],\"shipping_address\":{\"name\":\"A\","
         "\"line1\":\"l\",\"city\":\"\",\"postal_code\":\"1\",\"country\":\"JP\"}}",
         "shipping_address.city"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":1}],\"shipping_address\":{\"name\":\"A\","
         "\"line1\":\"a\\nb\",\"city\":\"c\",\"postal_code\":\"1\",\"country\":\"JP\"}}",
         "shipping_address.line1"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":1}],\"shipping_address\":{\"name\":\" \","
         "\"line1\":\"l\",\"city\":\"c\",\"postal_code\":\"1\",\"country\":\"JP\"}}",
         "shipping_address.name"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":1}],\"shipping_address\":{\"name\":\"A\","
         "\"line1\":\"l\",\"city\":\"c\",\"postal_code\":1,\"country\":\"JP\"}}",
         "shipping_address.postal_code"},
        {"{\"items\":[{\"product_id\":\"p1\",\"qty\":1}]," ADDR ",\"extra\":1}", "extra"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        assert_int_equal(read_req(bad[i].body, rq, &errs), SL_EINVAL);
        if (!has_error(&errs, bad[i].field))
            fail_msg("case %zu: no error for %s (first: %s)", i, bad[i].field,
                     errs.count ? errs.items[0].field : "none");
    }
    /* 51 items: too many. */
    char big[8192] = "{\"items\":[";
    for (int i = 0; i < 51; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big),
                 "%s{\"product_id\":\"p%d\",\"qty\":1}", i ? "," : "", i);
    snprintf(big + strlen(big), sizeof big - strlen(big), "]," ADDR "}");
    assert_int_equal(read_req(big, rq, &errs), SL_EINVAL);
    assert_true(has_error(&errs, "items"));
    /* An over-long name: 201 characters. */
    char longname[600] = "{\"items\":[{\"product_id\":\"p1\",\"qty\":1}],\"shipping_address\":"
                         "{\"name\":\"";
    for (int i = 0; i < 201; i++)
        strcat(longname, "x");
    strcat(longname,
           "\",\"line1\":\"l\",\"city\":\"c\",\"postal_code\":\"1\",\"country\":\"JP\"}}");
    assert_int_equal(read_req(longname, rq, &errs), SL_EINVAL);
    assert_true(has_error(&errs, "shipping_address.name"));
    free(rq);
}

static void test_totals(void **state)
{
    (void)state;
    order_item it[3] = {{"a", 2, 1200, "JPY"}, {"b", 3, 5, "JPY"}, {"c", 1, 0, "JPY"}};
    int64_t total = -1;
    char cur[4];
    size_t bad = 99;
    assert_int_equal(order_total(it, 3, &total, cur, &bad), 0);
    assert_int_equal(total, 2415);
    assert_string_equal(cur, "JPY");
    strcpy(it[2].currency, "EUR");
    assert_int_equal(order_total(it, 3, &total, cur, &bad), SL_ECONFLICT);
    assert_int_equal(bad, 2);
    order_item huge[2] = {{"a", 99, INT64_MAX / 50, "JPY"}, {"b", 1, 1, "JPY"}};
    assert_int_equal(order_total(huge, 2, &total, cur, &bad), SL_ELIMIT);
    assert_int_equal(bad, 0);
    order_item edge[2] = {{"a", 1, INT64_MAX - 1, "JPY"}, {"b", 1, 2, "JPY"}};
    assert_int_equal(order_total(edge, 2, &total, cur, &bad), SL_ELIMIT);
    assert_int_equal(bad, 1);
}

static void test_classify(void **state)
{
    (void)state;
    char why[ORDER_REASON_MAX];
    assert_int_equal(order_classify(ORDER_CALL_RESERVE, 201, NULL, "reserved", why),
                     SL_SAGA_REPLY_OK);
    assert_int_equal(order_classify(ORDER_CALL_RESERVE, 200, NULL, "released", why),
                     SL_SAGA_REPLY_REFUSED);
    assert_string_equal(why, "reservation_failed");
    assert_int_equal(order_classify(ORDER_CALL_RESERVE, 409, "insufficient_stock", NULL, why),
                     SL_SAGA_REPLY_REFUSED);
    assert_string_equal(why, "insufficient_stock");
    assert_int_equal(order_classify(ORDER_CALL_RESERVE, 409, "reservation_mismatch", NULL, why),
                     SL_SAGA_REPLY_REFUSED);
    assert_string_equal(why, "reservation_failed");
    assert_int_equal(order_classify(ORDER_CALL_CHARGE, 409, "insufficient_funds", NULL, why),
                     SL_SAGA_REPLY_REFUSED);
    assert_string_equal(why, "insufficient_funds");
    assert_int_equal(order_classify(ORDER_CALL_CHARGE, 422, "card_declined", NULL, why),
                     SL_SAGA_REPLY_REFUSED);
    assert_string_equal(why, "payment_failed");
    /* A refusal reason of the other participant does not leak across. */
    assert_int_equal(order_classify(ORDER_CALL_CHARGE, 409, "insufficient_stock", NULL, why),
                     SL_SAGA_REPLY_REFUSED);
    assert_string_equal(why, "payment_failed");
    static const int transient[] = {500, 502, 503, 504, 408, 429, 401, 403, 404, 405, 301};
    for (size_t i = 0; i < SL_ARRAY_LEN(transient); i++)
        assert_int_equal(order_classify(ORDER_CALL_CHARGE, transient[i], NULL, NULL, why),
                         SL_SAGA_REPLY_FAILED);
    assert_int_equal(order_classify(ORDER_CALL_RELEASE, 409, "already_committed", NULL, why),
                     SL_SAGA_REPLY_OK);
    assert_string_equal(why, "already_committed");
    assert_int_equal(order_classify(ORDER_CALL_REFUND, 200, NULL, NULL, why), SL_SAGA_REPLY_OK);
    order_cancel_reason("insufficient_funds: HTTP 409 {...}", why);
    assert_string_equal(why, "insufficient_funds");
    order_cancel_reason("insufficient_stock", why);
    assert_string_equal(why, "insufficient_stock");
    order_cancel_reason("order_missing: x", why);
    assert_string_equal(why, "payment_failed");
    order_cancel_reason("", why);
    assert_string_equal(why, "payment_failed");
    order_cancel_reason("timeout", why); /* the checkout's deadline */
    assert_string_equal(why, "timeout");
    order_cancel_reason("aborted", why); /* an admin abort */
    assert_string_equal(why, "aborted");
}

static void test_saga_definitions(void **state)
{
    (void)state;
    order_saga_config c = {.step_timeout_ms = 1000,
                           .backoff_base_ms = 10,
                           .backoff_cap_ms = 100,
                           .stuck_after_ms = 5000,
                           .deadline_ms = 120000};
    order_sagas s;
    assert_int_equal(order_sagas_init(&s, &c), 0);
    assert_int_equal(s.checkout.pivot, 2);
    /* The checkout has a deadline before the charge and may void an unanswered charge; the
     * cancel saga has neither (it is past its pivot from its first step). */
    assert_int_equal(s.checkout.deadline_ms, 120000);
    assert_true(s.checkout.pivot_compensable);
    assert_int_equal(s.cancel.deadline_ms, 0);
    assert_false(s.cancel.pivot_compensable);
    assert_string_equal(s.checkout.steps[s.checkout.pivot].name, "charge");
    assert_int_equal(s.cancel.pivot, 0);
    char id[SL_SAGA_ID_MAX + 1];
    assert_int_equal(order_saga_id(id, ORDER_SAGA_CHECKOUT, "0190a3f2-7c1e-7000-8000-000000000001"),
                     0);
    assert_ptr_equal(order_saga_def_of(&s, id), &s.checkout);
    assert_int_equal(order_saga_id(id, ORDER_SAGA_CANCEL, "x"), 0);
    assert_ptr_equal(order_saga_def_of(&s, id), &s.cancel);
    assert_null(order_saga_def_of(&s, "other.x"));
    char longid[80];
    memset(longid, 'a', 60);
    longid[60] = '\0';
    assert_int_equal(order_saga_id(id, ORDER_SAGA_CHECKOUT, longid), SL_ELIMIT);
    c.backoff_base_ms = 0; /* invalid backoff: the definition is refused */
    assert_int_equal(order_sagas_init(&s, &c), SL_ECONFIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_transition),   cmocka_unit_test(test_names_and_ranks),
        cmocka_unit_test(test_request_validation), cmocka_unit_test(test_totals),
        cmocka_unit_test(test_classify),           cmocka_unit_test(test_saga_definitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
