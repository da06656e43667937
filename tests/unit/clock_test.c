/* Unit tests for the clock module: fake clock and RFC 3339 conversion. */
#include <shoal/clock.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void test_fake_clock(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 1000);
    assert_int_equal(sl_clock_mono_ns(&fc.clock), 0);
    assert_int_equal(sl_clock_wall_ns(&fc.clock), 1000);
    sl_fake_clock_advance(&fc, 5000000);
    assert_int_equal(sl_clock_mono_ms(&fc.clock), 5);
    assert_int_equal(sl_clock_wall_ns(&fc.clock), 5001000);
}

static void test_system_clock_moves(void **state)
{
    (void)state;
    const sl_clock *c = sl_clock_system();
    int64_t a = sl_clock_mono_ns(c), b = sl_clock_mono_ns(c);
    assert_true(b >= a);
    assert_true(sl_clock_wall_ns(c) > (int64_t)1600000000 * 1000000000);
}

static void test_format(void **state)
{
    (void)state;
    char buf[SL_RFC3339_MAX];
    assert_int_equal(sl_rfc3339_format(0, buf, sizeof buf), 24);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    /* 2026-11-28T12:34:56.789Z */
    int64_t t = (int64_t)1795869296 * 1000000000 + 789000000;
    sl_rfc3339_format(t, buf, sizeof buf);
    assert_string_equal(buf, "2026-11-28T12:34:56.789Z");
    /* leap day and a time before the epoch */
    int64_t leap;
    assert_int_equal(sl_rfc3339_parse("2024-02-29T23:59:59Z", 20, &leap), 0);
    sl_rfc3339_format(leap, buf, sizeof buf);
    assert_string_equal(buf, "2024-02-29T23:59:59.000Z");
    sl_rfc3339_format(-1000000, buf, sizeof buf);
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    assert_int_equal(sl_rfc3339_format(0, buf, 10), SL_EINVAL);
}

static void test_parse(void **state)
{
    (void)state;
    int64_t t;
    const char *ok = "2026-11-28T12:34:56.789Z";
    assert_int_equal(sl_rfc3339_parse(ok, strlen(ok), &t), 0);
    assert_int_equal(t, (int64_t)1795869296 * 1000000000 + 789000000);
    const char *off = "2026-11-28T21:34:56.789+09:00";
    int64_t t2;
    assert_int_equal(sl_rfc3339_parse(off, strlen(off), &t2), 0);
    assert_int_equal(t, t2);
    const char *lower = "2026-11-28t12:34:56.789z";
    assert_int_equal(sl_rfc3339_parse(lower, strlen(lower), &t2), 0);
    assert_int_equal(t, t2);

    const char *bad[] = {
        "",
        "2026-11-28",
        "2026-11-28T12:34:56",      /* no offset */
        "2026-13-01T00:00:00Z",     /* month 13 */
        "2025-02-29T00:00:00Z",     /* not a leap year */
        "2026-11-28T24:00:00Z",     /* hour 24 */
        "2026-11-28T12:34:56.Z",    /* empty fraction */
        "2026-11-28T12:34:56Zjunk", /* trailing bytes */
        "2026-11-28T12:34:56+0900", /* offset without colon */
        "2026-11-28 12:34:56Z",     /* space separator */
        "20x6-11-28T12:34:56Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sl_rfc3339_parse(bad[i], strlen(bad[i]), &t), SL_EPARSE);
}

static void test_round_trip(void **state)
{
    (void)state;
    char buf[SL_RFC3339_MAX];
    /* Every day boundary over 40 years, plus odd milliseconds, survives a round trip. */
    for (int64_t day = 0; day < 365 * 40; day += 7) {
        int64_t t = (day * 86400 + 3723) * 1000000000 + (day % 1000) * 1000000;
        int n = sl_rfc3339_format(t, buf, sizeof buf);
        assert_int_equal(n, 24);
        int64_t back;
        assert_int_equal(sl_rfc3339_parse(buf, (size_t)n, &back), 0);
        assert_int_equal(back, t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fake_clock), cmocka_unit_test(test_system_clock_moves),
        cmocka_unit_test(test_format),     cmocka_unit_test(test_parse),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
