/*
 * Set digests and the check shape (include/shoal/audit.h): order does not
 * matter, any difference in the set (a member missing, one more, another
 * amount, another id) changes the digest, and checks have their four members.
 */
#include <shoal/audit.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void add(sl_audit_digest *d, const char *id, int64_t amount)
{
    sl_audit_digest_add(d, id, strlen(id), amount);
}

static void test_digest_is_a_set_function(void **state)
{
    (void)state;
    sl_audit_digest a = {0}, b = {0};
    char id[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "order-%d", i);
        add(&a, id, 100 + i);
    }
    for (int i = 999; i >= 0; i--) {
        snprintf(id, sizeof id, "order-%d", i);
        add(&b, id, 100 + i);
    }
    assert_int_equal(a.count, 1000);
    assert_int_equal(a.amount, b.amount);
    assert_true(a.digest == b.digest);

    /* One amount moved from one order to another: same count and sum, another digest. */
    sl_audit_digest c = {0};
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "order-%d", i);
        add(&c, id, 100 + i + (i == 3 ? 1 : i == 4 ? -1 : 0));
    }
    assert_int_equal(c.count, a.count);
    assert_int_equal(c.amount, a.amount);
    assert_true(c.digest != a.digest);

    /* A member charged twice is not the same as once. */
    sl_audit_digest d = b;
    add(&d, "order-7", 107);
    assert_true(d.digest != a.digest);
    /* The id and the amount are hashed apart: moving a digit between them changes it. */
    assert_true(sl_audit_hash("order-1", 7, 23) != sl_audit_hash("order-12", 8, 3));
    assert_true(sl_audit_hash("x", 1, 5) != sl_audit_hash("x", 1, 6));
    assert_true(sl_audit_hash("", 0, 0) != 0);
}

static void test_json_shapes(void **state)
{
    (void)state;
    sl_audit_digest d = {0};
    add(&d, "a", 5);
    json_t *v = sl_audit_digest_json(&d);
    assert_int_equal(json_integer_value(json_object_get(v, "count")), 1);
    assert_int_equal(json_integer_value(json_object_get(v, "amount")), 5);
    const char *hex = json_string_value(json_object_get(v, "digest"));
    assert_non_null(hex);
    assert_int_equal(strlen(hex), 16);
    char want[17];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)d.digest);
    assert_string_equal(hex, want);

    json_t *c = sl_audit_check_new("charge_digest", true, v, "%d orders", 1);
    assert_string_equal(json_string_value(json_object_get(c, "name")), "charge_digest");
    assert_true(json_is_true(json_object_get(c, "ok")));
    assert_ptr_equal(json_object_get(c, "value"), v);
    assert_string_equal(json_string_value(json_object_get(c, "detail")), "1 orders");
    json_decref(c);
    c = sl_audit_check_new("x", false, NULL, NULL);
    assert_true(json_is_null(json_object_get(c, "value")));
    assert_true(json_is_false(json_object_get(c, "ok")));
    assert_string_equal(json_string_value(json_object_get(c, "detail")), "");
    json_decref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_is_a_set_function),
        cmocka_unit_test(test_json_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
