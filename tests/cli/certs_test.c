/* The pure decisions of `shoal certs` (src/cli/certs.h): validity windows, renewal, hours. */
#include "certs.h"

#include <shoal/common.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void test_window(void **state)
{
    (void)state;
    int64_t nb = 0, na = 0;
    assert_int_equal(cli_certs_window(1000000, 24, 0, &nb, &na), 0);
    assert_int_equal(nb, 1000000);
    assert_int_equal(na, 1000000 + 24 * 3600);
    /* Backdated past its own length: an expired certificate, for tests. */
    assert_int_equal(cli_certs_window(1000000, 24, 48, &nb, &na), 0);
    assert_int_equal(nb, 1000000 - 48 * 3600);
    assert_true(na < 1000000);
    assert_int_equal(cli_certs_window(1000000, 0, 0, &nb, &na), SL_EINVAL);
    assert_int_equal(cli_certs_window(1000000, CLI_CERTS_HOURS_MAX + 1, 0, &nb, &na), SL_EINVAL);
    assert_int_equal(cli_certs_window(1000000, 1, -1, &nb, &na), SL_EINVAL);
    assert_int_equal(cli_certs_window(1000000, CLI_CERTS_HOURS_MAX, CLI_CERTS_HOURS_MAX, &nb, &na),
                     0);
}

static void test_should_renew(void **state)
{
    (void)state;
    const int64_t nb = 0, na = 24 * 3600; /* 24 h: renew from hour 16 */
    assert_false(cli_certs_should_renew(0, nb, na, true));
    assert_false(cli_certs_should_renew(16 * 3600 - 1, nb, na, true));
    assert_true(cli_certs_should_renew(16 * 3600, nb, na, true));
    assert_true(cli_certs_should_renew(30 * 3600, nb, na, true)); /* expired */
    assert_true(cli_certs_should_renew(0, nb, na, false));        /* signed by the previous CA */
    assert_true(cli_certs_should_renew(0, na, nb, true));         /* nonsense window */
}

/* `shoal up --mesh` renews at 2/3 of a leaf's life and looks again when the earliest is due. */
static void test_renew_at(void **state)
{
    (void)state;
    assert_int_equal(cli_certs_renew_at(0, 24 * 3600), 16 * 3600);
    assert_int_equal(cli_certs_renew_at(1000, 1006), 1004); /* a 6 s leaf: at 4 s */
    assert_int_equal(cli_certs_renew_at(1000, 1000), 1000); /* nonsense window: at once */
    assert_false(cli_certs_should_renew(1003, 1000, 1006, true));
    assert_true(cli_certs_should_renew(1004, 1000, 1006, true));
    assert_int_equal(cli_certs_next_check_ms(1000, 4000), 3000);
    assert_int_equal(cli_certs_next_check_ms(1000, 1100), 200);        /* soon, not in a spin */
    assert_int_equal(cli_certs_next_check_ms(5000, 1000), 200);        /* overdue or failed */
    assert_int_equal(cli_certs_next_check_ms(0, 16 * 3600000), 60000); /* at most a minute */
}

static void test_parse_hours(void **state)
{
    (void)state;
    int64_t h = -1;
    assert_int_equal(cli_certs_parse_hours("24", &h), 0);
    assert_int_equal(h, 24);
    assert_int_equal(cli_certs_parse_hours("0", &h), 0);
    assert_int_equal(h, 0);
    const char *bad[] = {"", "-1", "1h", "+2", " 3", "99999999999999999999", "8785"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(cli_certs_parse_hours(bad[i], &h), SL_EINVAL);
    assert_int_equal(cli_certs_parse_hours(NULL, &h), SL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_should_renew),
        cmocka_unit_test(test_renew_at),
        cmocka_unit_test(test_parse_hours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
