/* Unit tests for the random module: determinism, bounds and rough uniformity. */
#include <shoal/rand.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void test_seed_is_deterministic(void **state)
{
    (void)state;
    sl_rand a, b, c;
    sl_rand_seed(&a, 42);
    sl_rand_seed(&b, 42);
    sl_rand_seed(&c, 43);
    int differs = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = sl_rand_next(&a);
        assert_true(x == sl_rand_next(&b));
        differs |= x != sl_rand_next(&c);
    }
    assert_true(differs);
}

static void test_below_bounds_and_uniformity(void **state)
{
    (void)state;
    sl_rand r;
    sl_rand_seed(&r, 7);
    int counts[10] = {0};
    for (int i = 0; i < 100000; i++) {
        uint64_t v = sl_rand_below(&r, 10);
        assert_true(v < 10);
        counts[v]++;
    }
    for (int i = 0; i < 10; i++)
        assert_true(counts[i] > 9000 && counts[i] < 11000);
    for (int i = 0; i < 1000; i++) {
        double u = sl_rand_unit(&r);
        assert_true(u >= 0.0 && u < 1.0);
        assert_int_equal(sl_rand_below(&r, 1), 0);
    }
}

static void test_secure_bytes(void **state)
{
    (void)state;
    unsigned char a[32] = {0}, b[32] = {0};
    assert_int_equal(sl_rand_secure_bytes(a, sizeof a), 0);
    assert_int_equal(sl_rand_secure_bytes(b, sizeof b), 0);
    assert_memory_not_equal(a, b, sizeof a);
    sl_rand r;
    assert_int_equal(sl_rand_seed_os(&r), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_is_deterministic),
        cmocka_unit_test(test_below_bounds_and_uniformity),
        cmocka_unit_test(test_secure_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
