/*
 * Unit tests for `shoal load`'s option parsers (src/cli/load_args.c, compiled into this test:
 * the command's sources are not in libshoal): values, units, limits, the loopback rule and the
 * messages that name what was wrong.
 */
#include "../../src/cli/load_args.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static char err[CLI_LOAD_ERR_MAX];

static void test_durations(void **state)
{
    (void)state;
    int64_t ms = -1;
    assert_int_equal(cli_load_parse_duration("250ms", &ms, err), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(cli_load_parse_duration("5s", &ms, err), 0);
    assert_int_equal(ms, 5000);
    assert_int_equal(cli_load_parse_duration("10", &ms, err), 0);
    assert_int_equal(ms, 10000);
    assert_int_equal(cli_load_parse_duration("1.5m", &ms, err), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(cli_load_parse_duration("0", &ms, err), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(cli_load_parse_duration("1440m", &ms, err), 0);
    assert_int_equal(ms, CLI_LOAD_DURATION_MAX_MS);
    const char *bad[] = {"", "s", "-5s", "5x", "5 s", "5h", "1441m", "99999999999999", ".5s"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        assert_int_equal(cli_load_parse_duration(bad[i], &ms, err), SL_EINVAL);
        assert_true(err[0] != '\0');
    }
    assert_int_equal(cli_load_parse_duration("5x", &ms, err), SL_EINVAL);
    assert_non_null(strstr(err, "'x'"));
}

static void test_rates(void **state)
{
    (void)state;
    double r = 0;
    assert_int_equal(cli_load_parse_rate("800/s", &r, err), 0);
    assert_true(r == 800);
    assert_int_equal(cli_load_parse_rate("0.5", &r, err), 0);
    assert_true(r == 0.5);
    assert_int_equal(cli_load_parse_rate("100000/s", &r, err), 0);
    const char *bad[] = {"",     "/s",   "0",   "0/s", "-1/s", "100001",
                         "fast", "10/m", "1e3", "nan", "inf"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        double before = r;
        if (strcmp(bad[i], "1e3") == 0) {
            /* strtod reads exponents: 1000/s is a valid rate */
            assert_int_equal(cli_load_parse_rate(bad[i], &r, err), 0);
            assert_true(r == 1000);
            continue;
        }
        assert_int_equal(cli_load_parse_rate(bad[i], &r, err), SL_EINVAL);
        assert_true(r == before);
    }
}

static void test_mix(void **state)
{
    (void)state;
    cli_load_opts o;
    cli_load_opts_default(&o);
    assert_int_equal(cli_load_parse_mix("checkout=1", &o, err), 0);
    assert_int_equal(o.w_browse, 0);
    assert_int_equal(o.w_cart, 0);
    assert_int_equal(o.w_checkout, 1);
    assert_int_equal(cli_load_parse_mix("cart=3,browse=7,checkout=0", &o, err), 0);
    assert_int_equal(o.w_browse, 7);
    assert_int_equal(o.w_cart, 3);
    assert_int_equal(o.w_checkout, 0);
    assert_int_equal(cli_load_parse_mix("browse=0,cart=0", &o, err), SL_EINVAL);
    assert_int_equal(o.w_browse, 7); /* unchanged on error */
    assert_int_equal(cli_load_parse_mix("browse=1,browse=2", &o, err), SL_EINVAL);
    assert_non_null(strstr(err, "twice"));
    assert_int_equal(cli_load_parse_mix("shoes=1", &o, err), SL_EINVAL);
    assert_non_null(strstr(err, "shoes"));
    assert_int_equal(cli_load_parse_mix("browse=1,", &o, err), SL_EINVAL);
    assert_int_equal(cli_load_parse_mix("browse=", &o, err), SL_EINVAL);
    assert_int_equal(cli_load_parse_mix("browse=1000001", &o, err), SL_EINVAL);
    assert_int_equal(cli_load_parse_mix("browse=-1", &o, err), SL_EINVAL);
    assert_int_equal(cli_load_parse_mix("", &o, err), SL_EINVAL);
}

static void test_targets(void **state)
{
    (void)state;
    cli_load_opts o;
    cli_load_opts_default(&o);
    assert_int_equal(cli_load_parse_target("http://127.0.0.1:8080", &o, err), 0);
    assert_string_equal(o.host, "127.0.0.1");
    assert_int_equal(o.port, 8080);
    assert_true(o.loopback && !o.ipv6);
    assert_int_equal(cli_load_parse_target("http://localhost/", &o, err), 0);
    assert_int_equal(o.port, 80);
    assert_true(o.loopback);
    assert_int_equal(cli_load_parse_target("http://[::1]:9000", &o, err), 0);
    assert_string_equal(o.host, "::1");
    assert_true(o.loopback && o.ipv6);
    assert_int_equal(cli_load_parse_target("http://127.255.0.9:1", &o, err), 0);
    assert_true(o.loopback);
    /* Not loopback: parsed, but marked so. */
    const char *remote[] = {"http://10.0.0.1:80",           "http://127.0.0.256", "http://127.0.0",
                            "http://127.0.0.1.example.com", "http://[::2]:80",    "http://shop:80",
                            "http://localhost.example.com"};
    for (size_t i = 0; i < sizeof remote / sizeof *remote; i++) {
        assert_int_equal(cli_load_parse_target(remote[i], &o, err), 0);
        assert_false(o.loopback);
    }
    const char *bad[] = {"https://127.0.0.1",    "127.0.0.1:8080",         "http://",
                         "http://:80",           "http://127.0.0.1:0",     "http://127.0.0.1:65536",
                         "http://127.0.0.1:80x", "http://127.0.0.1/api",   "http://[::1",
                         "http://a b",           "http://127.0.0.1:8080//"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        assert_int_equal(cli_load_parse_target(bad[i], &o, err), SL_EINVAL);
        assert_true(err[0] != '\0');
    }
}

static int parse(char **argv, int argc, cli_load_opts *o)
{
    err[0] = '\0';
    return cli_load_parse_args(argc, argv, o, err);
}

static void test_args(void **state)
{
    (void)state;
    cli_load_opts o;
    assert_int_equal(parse(NULL, 0, &o), 0);
    assert_int_equal(o.scenario, CLI_SC_CHECKOUT);
    assert_true(o.rate == 0);
    assert_int_equal(o.conns, 16);
    assert_int_equal(o.duration_ms, 60000);
    assert_int_equal(o.warmup_ms, 5000);
    assert_string_equal(o.admin_file, "data/admin-credentials");

    char *a[] = {"--scenario=mix", "--rate",   "250/s",    "--duration",      "2m",
                 "--warmup=0",     "--users",  "40",       "--json",          "--quiet",
                 "--mix",          "browse=1", "--target", "http://[::1]:81", "--admin-credentials",
                 "/x/creds"};
    assert_int_equal(parse(a, (int)(sizeof a / sizeof *a), &o), 0);
    assert_int_equal(o.scenario, CLI_SC_MIX);
    assert_true(o.rate == 250);
    assert_int_equal(o.duration_ms, 120000);
    assert_int_equal(o.warmup_ms, 0);
    assert_int_equal(o.users, 40);
    assert_true(o.json && o.quiet && !o.allow_remote);
    assert_int_equal(o.w_browse, 1);
    assert_int_equal(o.port, 81);
    assert_string_equal(o.admin_file, "/x/creds");

    char *help[] = {"--json", "--help"};
    assert_int_equal(parse(help, 2, &o), 1);

    char *both[] = {"--rate", "5", "--conns", "2"};
    assert_int_equal(parse(both, 4, &o), SL_EINVAL);
    assert_non_null(strstr(err, "--rate"));
    char *remote[] = {"--target", "http://192.0.2.7:8080"};
    assert_int_equal(parse(remote, 2, &o), SL_EINVAL);
    assert_non_null(strstr(err, "--allow-remote"));
    char *remote_ok[] = {"--target", "http://192.0.2.7:8080", "--allow-remote"};
    assert_int_equal(parse(remote_ok, 3, &o), 0);
    assert_false(o.loopback);
    char *missing[] = {"--duration"};
    assert_int_equal(parse(missing, 1, &o), SL_EINVAL);
    assert_non_null(strstr(err, "--duration needs a value"));
    char *zero[] = {"--duration", "0s"};
    assert_int_equal(parse(zero, 2, &o), SL_EINVAL);
    char *conns[] = {"--conns", "10001"};
    assert_int_equal(parse(conns, 2, &o), SL_EINVAL);
    assert_non_null(strstr(err, "--conns"));
    char *users[] = {"--users", "12a"};
    assert_int_equal(parse(users, 2, &o), SL_EINVAL);
    char *scen[] = {"--scenario", "buy"};
    assert_int_equal(parse(scen, 2, &o), SL_EINVAL);
    assert_non_null(strstr(err, "'buy'"));
    char *unknown[] = {"--rates", "5"};
    assert_int_equal(parse(unknown, 2, &o), SL_EINVAL);
    assert_non_null(strstr(err, "--rates"));
    char *positional[] = {"checkout"};
    assert_int_equal(parse(positional, 1, &o), SL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations), cmocka_unit_test(test_rates), cmocka_unit_test(test_mix),
        cmocka_unit_test(test_targets),   cmocka_unit_test(test_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
