/*
 * Paging depth and keyset cursors (cursor.h): the depth cap names `page`;
 * cursors round-trip; anything encode could not have produced is refused.
 */
#include <shoal/cursor.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void test_depth(void **state)
{
    (void)state;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    assert_int_equal(sl_page_depth_check(1, 100, &errs), 0);
    assert_int_equal(sl_page_depth_check(100, 100, &errs), 0);
    assert_int_equal(sl_page_depth_check(500, 20, &errs), 0);
    assert_int_equal(errs.count, 0);
    assert_int_equal(sl_page_depth_check(501, 20, &errs), SL_EINVAL);
    assert_int_equal(sl_page_depth_check(1000000, 100, &errs), SL_EINVAL);
    assert_int_equal(errs.count, 2);
    assert_string_equal(errs.items[0].field, "page");
    assert_non_null(strstr(errs.items[0].message, "cursor"));
}

static void test_round_trip(void **state)
{
    (void)state;
    const char *f[] = {"1500", "0190a2b3-0000-7000-8000-000000000001", "", "Ünïcode name"};
    char out[SL_CURSOR_MAX + 1];
    sl_cursor c;
    for (size_t n = 1; n <= 4; n++) {
        assert_int_equal(sl_cursor_encode(f, n, out, sizeof out), 0);
        assert_null(strpbrk(out, "+/=\n"));
        assert_int_equal(sl_cursor_decode(out, strlen(out), &c), 0);
        assert_int_equal(c.n, n);
        for (size_t i = 0; i < n; i++)
            assert_string_equal(c.f[i], f[i]);
    }
    char big[SL_CURSOR_FIELD_MAX + 1];
    memset(big, 'x', SL_CURSOR_FIELD_MAX);
    big[SL_CURSOR_FIELD_MAX] = '\0';
    const char *bigs[] = {big, big, big, big};
    assert_int_equal(sl_cursor_encode(bigs, 4, out, sizeof out), 0);
    assert_int_equal(sl_cursor_decode(out, strlen(out), &c), 0);
    assert_int_equal(c.n, 4);
    assert_int_equal(sl_cursor_encode(bigs, 4, out, 20), SL_ELIMIT);
}

static void test_refused(void **state)
{
    (void)state;
    char out[SL_CURSOR_MAX + 1];
    sl_cursor c;
    const char *nl[] = {"a\nb"};
    assert_int_equal(sl_cursor_encode(nl, 1, out, sizeof out), SL_EINVAL);
    const char *five[] = {"a", "b", "c", "d", "e"};
    assert_int_equal(sl_cursor_encode(five, 5, out, sizeof out), SL_EINVAL);
    const char *empty[] = {""};
    assert_int_equal(sl_cursor_encode(empty, 1, out, sizeof out), SL_EINVAL);
    assert_int_equal(sl_cursor_decode("", 0, &c), SL_EINVAL);
    assert_int_equal(sl_cursor_decode("!!", 2, &c), SL_EINVAL);
    assert_int_equal(sl_cursor_decode("YQpiCmMKZApl", 12, &c), SL_EINVAL); /* 5 fields */
    assert_int_equal(sl_cursor_decode("AA", 2, &c), SL_EINVAL);            /* a NUL byte */
    assert_int_equal(sl_cursor_decode("YR", 2, &c), SL_EINVAL);            /* non-canonical */
    static char huge[SL_CURSOR_MAX + 2];
    memset(huge, 'A', sizeof huge - 1);
    assert_int_equal(sl_cursor_decode(huge, sizeof huge - 1, &c), SL_EINVAL);
    char big[SL_CURSOR_FIELD_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const char *bigs[] = {big};
    assert_int_equal(sl_cursor_encode(bigs, 1, out, sizeof out), SL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
