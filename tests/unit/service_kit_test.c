/* Unit tests for the service kit's pure helpers (include/shoal/service.h). */
#include <shoal/service.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void test_event_refuse_names_first_error(void **state)
{
    (void)state;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    sl_json_errors_add(&errs, "price", "must be %s", "positive");
    sl_json_errors_add(&errs, "name", "is missing");
    char reason[64];
    assert_int_equal(sl_event_refuse(reason, sizeof reason, "price_changed", &errs), SL_EPARSE);
    assert_string_equal(reason, "price_changed: price must be positive");
}

static void test_event_refuse_without_errors(void **state)
{
    (void)state;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    char reason[64];
    assert_int_equal(sl_event_refuse(reason, sizeof reason, "created", &errs), SL_EPARSE);
    assert_string_equal(reason, "created: data is missing or invalid");
    assert_int_equal(sl_event_refuse(reason, sizeof reason, "created", NULL), SL_EPARSE);
    assert_string_equal(reason, "created: data is missing or invalid");
}

static void test_event_refuse_bounded(void **state)
{
    (void)state;
    char reason[8];
    memset(reason, 'x', sizeof reason);
    assert_int_equal(sl_event_refuse(reason, sizeof reason, "a-long-event-name", NULL), SL_EPARSE);
    assert_int_equal(strlen(reason), sizeof reason - 1);
    assert_int_equal(sl_event_refuse(NULL, 0, "x", NULL), SL_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_refuse_names_first_error),
        cmocka_unit_test(test_event_refuse_without_errors),
        cmocka_unit_test(test_event_refuse_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
