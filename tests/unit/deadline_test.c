/*
 * Unit tests for deadlines (include/shoal/deadline.h): arithmetic with the
 * fake clock, child deadlines, and the x-shoal-deadline-ms wire format
 * (formatting, parsing, rejection of garbage, capping of absurd values).
 */
#include <shoal/deadline.h>
#include <shoal/rand.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define MS INT64_C(1000000)

static void test_arithmetic(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_fake_clock_advance(&fc, 5000 * MS);
    sl_deadline d = sl_deadline_after(&fc.clock, 300);
    assert_int_equal(d.at_ns, 5300 * MS);
    assert_int_equal(sl_deadline_remaining_ms(d, &fc.clock), 300);
    assert_false(sl_deadline_expired(d, &fc.clock));
    sl_fake_clock_advance(&fc, 299 * MS + 1);
    assert_int_equal(sl_deadline_remaining_ms(d, &fc.clock), 0); /* rounded down */
    assert_int_equal(sl_deadline_remaining_ns(d, &fc.clock), MS - 1);
    assert_false(sl_deadline_expired(d, &fc.clock));
    sl_fake_clock_advance(&fc, MS);
    assert_true(sl_deadline_expired(d, &fc.clock));
    assert_int_equal(sl_deadline_remaining_ns(d, &fc.clock), 0);
    /* None never expires. */
    sl_deadline none = sl_deadline_none();
    assert_true(sl_deadline_is_none(none));
    assert_false(sl_deadline_expired(none, &fc.clock));
    assert_int_equal(sl_deadline_remaining_ms(none, &fc.clock), INT64_MAX);
    /* Zero or negative timeouts are already over; huge ones saturate without wrapping. */
    assert_true(sl_deadline_expired(sl_deadline_after(&fc.clock, 0), &fc.clock));
    assert_true(sl_deadline_expired(sl_deadline_after(&fc.clock, -5), &fc.clock));
    sl_deadline far = sl_deadline_after(&fc.clock, INT64_MAX);
    assert_false(sl_deadline_is_none(far));
    assert_true(far.at_ns > fc.mono_ns);
}

static void test_child(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_deadline parent = sl_deadline_after(&fc.clock, 1000);
    /* A shorter per-call timeout wins… */
    assert_int_equal(sl_deadline_child(parent, &fc.clock, 200).at_ns, 200 * MS);
    /* …a longer one cannot extend the parent… */
    assert_int_equal(sl_deadline_child(parent, &fc.clock, 5000).at_ns, 1000 * MS);
    /* …and no per-call timeout keeps the parent. */
    assert_int_equal(sl_deadline_child(parent, &fc.clock, 0).at_ns, 1000 * MS);
    /* Without a parent, the per-call timeout alone. */
    assert_int_equal(sl_deadline_child(sl_deadline_none(), &fc.clock, 50).at_ns, 50 * MS);
    assert_true(sl_deadline_is_none(sl_deadline_child(sl_deadline_none(), &fc.clock, 0)));
    /* Later in time the child shrinks with the parent. */
    sl_fake_clock_advance(&fc, 900 * MS);
    assert_int_equal(sl_deadline_child(parent, &fc.clock, 200).at_ns, 1000 * MS);
}

static void test_format_header(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    char buf[SL_DEADLINE_HEADER_BUF];
    sl_deadline d = {1500 * MS + 900000}; /* 1500.9 ms */
    assert_int_equal(sl_deadline_format_header(d, &fc.clock, buf, sizeof buf), 4);
    assert_string_equal(buf, "1500");
    /* An hour is capped to ten minutes on the wire. */
    d = sl_deadline_after(&fc.clock, 3600000);
    assert_int_equal(sl_deadline_format_header(d, &fc.clock, buf, sizeof buf), 6);
    assert_string_equal(buf, "600000");
    /* Passed: "0", so the callee answers at once. */
    sl_fake_clock_advance(&fc, 7200000 * MS);
    assert_int_equal(sl_deadline_format_header(d, &fc.clock, buf, sizeof buf), 1);
    assert_string_equal(buf, "0");
    /* No deadline: no header. Too small a buffer: refused, buffer left empty. */
    assert_int_equal(sl_deadline_format_header(sl_deadline_none(), &fc.clock, buf, sizeof buf),
                     SL_EINVAL);
    d = sl_deadline_after(&fc.clock, 12345);
    assert_int_equal(sl_deadline_format_header(d, &fc.clock, buf, 5), SL_EINVAL);
    assert_string_equal(buf, "");
    assert_int_equal(sl_deadline_format_header(d, &fc.clock, buf, 6), 5);
    assert_string_equal(buf, "12345");
}

static void test_parse_header(void **state)
{
    (void)state;
    struct {
        const char *in;
        int64_t want;
    } ok[] = {
        {"250", 250},
        {" 250\t", 250},
        {"0", 0},
        {"007", 7},
        {"600000", 600000},
        {"600001", 600000}, /* capped */
        {"99999999999999999999999999999999", 600000},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(ok); i++) {
        int64_t v = -1;
        assert_int_equal(sl_deadline_parse_header(ok[i].in, strlen(ok[i].in), &v), 0);
        assert_int_equal(v, ok[i].want);
    }
    const char *bad[] = {"",    " ",   "-1",  "+5",   "1.5", "1e3",
                         "abc", "1 2", "12a", "0x10", "1,2", "\x31\x80"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        int64_t v = -7;
        assert_int_equal(sl_deadline_parse_header(bad[i], strlen(bad[i]), &v), SL_EPARSE);
        assert_int_equal(v, -7); /* untouched on error */
    }
    int64_t v;
    assert_int_equal(sl_deadline_parse_header(NULL, 0, &v), SL_EPARSE);
    assert_int_equal(sl_deadline_parse_header("5\0", 2, &v), SL_EPARSE);
}

static void test_from_header(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, 0);
    sl_fake_clock_advance(&fc, 10 * MS);
    /* The caller's budget, bounded by the server's own limit. */
    assert_int_equal(sl_deadline_from_header(&fc.clock, 250, 0).at_ns, 260 * MS);
    assert_int_equal(sl_deadline_from_header(&fc.clock, 250, 100).at_ns, 110 * MS);
    assert_int_equal(sl_deadline_from_header(&fc.clock, INT64_MAX, 0).at_ns,
                     10 * MS + SL_DEADLINE_HEADER_MAX_MS * MS);
    assert_true(sl_deadline_expired(sl_deadline_from_header(&fc.clock, 0, 0), &fc.clock));
}

/* Across hops the budget only shrinks, but for transit time: format at the caller, parse at the
 * callee. */
static void test_random_round_trips(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 5000; seed++) {
        sl_rand r;
        sl_rand_seed(&r, seed);
        sl_fake_clock fc;
        sl_fake_clock_init(&fc, 0);
        sl_fake_clock_advance(&fc, (int64_t)sl_rand_below(&r, 1000000) * MS);
        sl_deadline d = sl_deadline_after(&fc.clock, (int64_t)sl_rand_below(&r, 2000000));
        for (int hop = 0; hop < 4; hop++) {
            sl_deadline child = sl_deadline_child(d, &fc.clock, (int64_t)sl_rand_below(&r, 5000));
            char buf[SL_DEADLINE_HEADER_BUF];
            int n = sl_deadline_format_header(child, &fc.clock, buf, sizeof buf);
            int64_t ms = 0;
            if (n <= 0 || sl_deadline_parse_header(buf, (size_t)n, &ms) != 0)
                fail_msg("seed %llu hop %d: format/parse failed", (unsigned long long)seed, hop);
            /* Transit time is invisible to a relative budget: the callee's deadline may end
             * up to that much later than the caller's, never more. */
            int64_t transit = (int64_t)sl_rand_below(&r, 3) * MS;
            sl_fake_clock_advance(&fc, transit);
            sl_deadline remote = sl_deadline_from_header(&fc.clock, ms, 0);
            if (remote.at_ns > child.at_ns + transit || child.at_ns > d.at_ns)
                fail_msg("seed %llu hop %d: budget grew", (unsigned long long)seed, hop);
            d = remote;
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arithmetic),    cmocka_unit_test(test_child),
        cmocka_unit_test(test_format_header), cmocka_unit_test(test_parse_header),
        cmocka_unit_test(test_from_header),   cmocka_unit_test(test_random_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
