/*
 * Inventory's pure rules alone (domain.c): request validation naming each
 * bad field, item order and equality (idempotency per order), the release
 * and commit decisions for every state, expiry, restock bounds, and the
 * per-row audit checks.
 */
#include "inventory.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static int read_body(const char *text, char *order, inv_item *items, size_t *n,
                     sl_json_errors *errs)
{
    json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    sl_json_errors_init(errs);
    int rc = inv_read_reservation(v, order, items, n, errs);
    json_decref(v);
    return rc;
}

static int has_field(const sl_json_errors *errs, const char *field)
{
    for (size_t i = 0; i < errs->count; i++)
        if (strcmp(errs->items[i].field, field) == 0) return 1;
    return 0;
}

static void test_valid_request_is_sorted(void **state)
{
    (void)state;
    char order[INV_ID_MAX + 1];
    inv_item items[INV_ITEMS_MAX];
    size_t n = 0;
    sl_json_errors errs;
    assert_int_equal(read_body("{\"order_id\":\"o-1\",\"items\":[{\"product_id\":\"b\",\"qty\":2},"
                               "{\"product_id\":\"a\",\"qty\":1}]}",
                               order, items, &n, &errs),
                     0);
    assert_string_equal(order, "o-1");
    assert_int_equal(n, 2);
    assert_string_equal(items[0].product_id, "a");
    assert_int_equal(items[0].index, 1); /* the request position survives the sort */
    assert_string_equal(items[1].product_id, "b");
    assert_int_equal(items[1].qty, 2);
}

static void test_invalid_requests_name_fields(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        const char *field;
    } cases[] = {
        {"{\"items\":[{\"product_id\":\"a\",\"qty\":1}]}", "order_id"},
        {"{\"order_id\":\"o\"}", "items"},
        {"{\"order_id\":\"o\",\"items\":[]}", "items"},
        {"{\"order_id\":7,\"items\":[{\"product_id\":\"a\",\"qty\":1}]}", "order_id"},
        {"{\"order_id\":\"o o\",\"items\":[{\"product_id\":\"a\",\"qty\":1}]}", "order_id"},
        {"{\"order_id\":\"o\",\"items\":[{\"product_id\":\"a\",\"qty\":0}]}", "items[0].qty"},
        {"{\"order_id\":\"o\",\"items\":[{\"product_id\":\"a\",\"qty\":-3}]}", "items[0].qty"},
        {"{\"order_id\":\"o\",\"items\":[{\"product_id\":\"a\",\"qty\":1000001}]}", "items[0].qty"},
        {"{\"order_id\":\"o\",\"items\":[{\"product_id\":\"a\",\"qty\":1.5}]}", "items[0].qty"},
        {"{\"order_id\":\"o\",\"items\":[{\"product_id\":\"a\",\"qty\":\"1\"}]}", "items[0].qty"},
        {"{\"order_id\":\"o\",\"items\":[{\"product_id\":\"a\",\"qty\":1},{\"qty\":1}]}",
         "items[1].product_id"},
        {"{\"order_id\":\"o\",\"items\":[{\"product_id\":\"a\",\"qty\":1},"
         "{\"product_id\":\"a\",\"qty\":2}]}",
         "items[1].product_id"},
        {"{\"order_id\":\"o\",\"items\":[{\"product_id\":\"a/b\",\"qty\":1}]}",
         "items[0].product_id"},
        {"{\"order_id\":\"o\",\"items\":[{\"product_id\":\"a\",\"qty\":1,\"x\":1}]}", "items[0].x"},
        {"{\"order_id\":\"o\",\"items\":[7]}", "items[0]"},
        {"{\"order_id\":\"o\",\"items\":[{\"product_id\":\"a\",\"qty\":1}],\"extra\":true}",
         "extra"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        char order[INV_ID_MAX + 1];
        inv_item items[INV_ITEMS_MAX];
        size_t n = 0;
        sl_json_errors errs;
        assert_int_equal(read_body(cases[i].body, order, items, &n, &errs), SL_EINVAL);
        if (!has_field(&errs, cases[i].field))
            fail_msg("case %zu: no error for %s (first: %s)", i, cases[i].field,
                     errs.count ? errs.items[0].field : "none");
    }
    /* Over-long ids: 65 bytes. */
    char body[300], id[INV_ID_MAX + 2];
    memset(id, 'x', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    snprintf(body, sizeof body,
             "{\"order_id\":\"%s\",\"items\":[{\"product_id\":\"%s\",\"qty\":1}]}", id, id);
    char order[INV_ID_MAX + 1];
    inv_item items[INV_ITEMS_MAX];
    size_t n = 0;
    sl_json_errors errs;
    assert_int_equal(read_body(body, order, items, &n, &errs), SL_EINVAL);
    assert_true(has_field(&errs, "order_id"));
    assert_true(has_field(&errs, "items[0].product_id"));
}

static void test_ids(void **state)
{
    (void)state;
    assert_true(inv_id_valid("0190a3f2-7c1e-7abc-8def-0123456789ab", 36));
    assert_true(inv_id_valid("svc:order_1.x", 13));
    assert_false(inv_id_valid("", 0));
    assert_false(inv_id_valid(NULL, 0));
    assert_false(inv_id_valid("a b", 3));
    assert_false(inv_id_valid("caf\xc3\xa9", 5));
    char long_id[INV_ID_MAX + 1];
    memset(long_id, 'a', sizeof long_id);
    assert_true(inv_id_valid(long_id, INV_ID_MAX));
    assert_false(inv_id_valid(long_id, INV_ID_MAX + 1));
}

static void test_items_equal(void **state)
{
    (void)state;
    inv_item a[2] = {{"a", 1, 0}, {"b", 2, 1}};
    inv_item b[2] = {{"a", 1, 5}, {"b", 2, 6}};
    inv_item c[2] = {{"a", 1, 0}, {"b", 3, 1}};
    assert_true(inv_items_equal(a, 2, b, 2));
    assert_false(inv_items_equal(a, 2, c, 2));
    assert_false(inv_items_equal(a, 2, b, 1));
    inv_item d[3] = {{"c", 1, 0}, {"a", 1, 1}, {"b", 1, 2}};
    inv_items_sort(d, 3);
    assert_string_equal(d[0].product_id, "a");
    assert_string_equal(d[2].product_id, "c");
}

static void test_decisions(void **state)
{
    (void)state;
    assert_int_equal(inv_release_decide(0, INV_ST_RESERVED), INV_ACT_TOMBSTONE);
    assert_int_equal(inv_release_decide(1, INV_ST_RESERVED), INV_ACT_APPLY);
    assert_int_equal(inv_release_decide(1, INV_ST_RELEASED), INV_ACT_NOOP);
    assert_int_equal(inv_release_decide(1, INV_ST_COMMITTED), INV_ACT_RETURN);
    assert_int_equal(inv_commit_decide(0, INV_ST_RESERVED), INV_ACT_UNKNOWN);
    assert_int_equal(inv_commit_decide(1, INV_ST_RESERVED), INV_ACT_APPLY);
    assert_int_equal(inv_commit_decide(1, INV_ST_COMMITTED), INV_ACT_NOOP);
    assert_int_equal(inv_commit_decide(1, INV_ST_RELEASED), INV_ACT_REFUSE);
    assert_true(inv_is_expired(INV_ST_RESERVED, 100, 100));
    assert_false(inv_is_expired(INV_ST_RESERVED, 100, 99));
    assert_false(inv_is_expired(INV_ST_COMMITTED, 100, 1000));
    assert_false(inv_is_expired(INV_ST_RELEASED, 100, 1000));
    inv_status st;
    for (int s = INV_ST_RESERVED; s <= INV_ST_RELEASED; s++) {
        assert_int_equal(inv_status_parse(inv_status_name((inv_status)s), &st), 0);
        assert_int_equal(st, s);
    }
    assert_int_equal(inv_status_parse("pending", &st), SL_EINVAL);
}

static void test_restock_bounds(void **state)
{
    (void)state;
    int64_t out = 0;
    assert_int_equal(inv_restock_apply(5, 10, &out), 0);
    assert_int_equal(out, 15);
    assert_int_equal(inv_restock_apply(5, 0, &out), SL_EINVAL);
    assert_int_equal(inv_restock_apply(5, INV_RESTOCK_MAX + 1, &out), SL_EINVAL);
    assert_int_equal(inv_restock_apply(INV_STOCK_MAX, 1, &out), SL_ELIMIT);
    assert_int_equal(inv_restock_apply(INV_STOCK_MAX - 1, 1, &out), 0);
    assert_int_equal(out, INV_STOCK_MAX);
}

static void test_audit_row(void **state)
{
    (void)state;
    inv_violation v[8];
    size_t n = 0, dropped = 0;
    inv_audit_stock_row("p", 5, 2, 2, v, 8, &n, &dropped);
    assert_int_equal(n, 0);
    inv_audit_stock_row("p", 5, 3, 2, v, 8, &n, &dropped);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].check, "reserved_mismatch");
    n = 0;
    inv_audit_stock_row("q", -1, 0, 0, v, 8, &n, &dropped);
    assert_int_equal(n, 2); /* negative stock, and reserved > stock */
    assert_string_equal(v[0].check, "stock_negative");
    assert_string_equal(v[1].check, "available_negative");
    n = 0;
    inv_audit_stock_row("r", 1, -2, 0, v, 1, &n, &dropped);
    assert_int_equal(n, 1);
    assert_int_equal(dropped, 1); /* bounded: the second finding is only counted */
}

/* The event data written directly is byte for byte jansson's compact dump of the same object. */
static void expect_same(char *direct, json_t *ref)
{
    assert_non_null(direct);
    assert_non_null(ref);
    char *want = json_dumps(ref, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_non_null(want);
    assert_string_equal(direct, want);
    free(want);
    free(direct);
    json_decref(ref);
}

static json_t *items_ref(const inv_reservation *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->n; i++)
        json_array_append_new(a, json_pack("{s:s, s:I}", "product_id", r->items[i].product_id,
                                           "qty", (json_int_t)r->items[i].qty));
    return a;
}

static void test_event_text(void **state)
{
    (void)state;
    inv_stock s = {.product_id = "p-1.a:b_c", .stock = 7, .reserved = 9};
    expect_same(inv_stock_event(&s),
                json_pack("{s:s, s:I, s:I, s:I}", "product_id", s.product_id, "stock",
                          (json_int_t)7, "reserved", (json_int_t)9, "available", (json_int_t)-2));
    /* Escaping (not a valid id, but the writer must still produce what jansson does). */
    snprintf(s.product_id, sizeof s.product_id, "a\"b\\c/d");
    s.stock = INT64_MAX;
    s.reserved = 0;
    expect_same(inv_stock_event(&s), json_pack("{s:s, s:I, s:I, s:I}", "product_id", s.product_id,
                                               "stock", (json_int_t)INT64_MAX, "reserved",
                                               (json_int_t)0, "available", (json_int_t)INT64_MAX));
    static inv_reservation r;
    memset(&r, 0, sizeof r);
    snprintf(r.order_id, sizeof r.order_id, "0190f2a4-7b1c-7d6e-8f00-0123456789ab");
    const size_t sizes[] = {1, 3, INV_ITEMS_MAX};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        r.n = sizes[k];
        for (size_t i = 0; i < r.n; i++) {
            /* "prod-007", padded with x to the longest id (INV_ID_MAX) at the largest size */
            char head[16];
            int hn = snprintf(head, sizeof head, "prod-%03zu", i);
            size_t len = r.n == INV_ITEMS_MAX ? INV_ID_MAX : (size_t)hn;
            memset(r.items[i].product_id, 'x', len);
            memcpy(r.items[i].product_id, head, (size_t)hn);
            r.items[i].product_id[len] = '\0';
            r.items[i].qty = (int64_t)(i * 37 + 1);
        }
        expect_same(inv_order_event(&r, NULL),
                    json_pack("{s:s, s:o}", "order_id", r.order_id, "items", items_ref(&r)));
        expect_same(inv_order_event(&r, "expired"),
                    json_pack("{s:s, s:o, s:s}", "order_id", r.order_id, "items", items_ref(&r),
                              "reason", "expired"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_request_is_sorted),
        cmocka_unit_test(test_invalid_requests_name_fields),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_items_equal),
        cmocka_unit_test(test_decisions),
        cmocka_unit_test(test_restock_bounds),
        cmocka_unit_test(test_audit_row),
        cmocka_unit_test(test_event_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
