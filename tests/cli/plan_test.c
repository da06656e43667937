/*
 * The pure parts of `shoal audit` and `shoal chaos` (src/cli/plan.c):
 * durations, the chaos schedule with a seed, the reading of an audit
 * document (quiet / verdict).
 */
#include "cli.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static void test_durations(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_int_equal(cli_parse_duration("90", &ms), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(cli_parse_duration("90s", &ms), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(cli_parse_duration("500ms", &ms), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(cli_parse_duration("5m", &ms), 0);
    assert_int_equal(ms, 300000);
    assert_int_equal(cli_parse_duration("1h", &ms), 0);
    assert_int_equal(ms, 3600000);
    const char *bad[] = {"",    "s",  "-5s", "5x", "0", "0ms", "25h", "99999999999999999999",
                         " 5s", "5 s"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(cli_parse_duration(bad[i], &ms), SL_EINVAL);
}

static void test_plan_is_deterministic_and_bounded(void **state)
{
    (void)state;
    cli_chaos_step a[200], b[200], c[200];
    size_t na = 0, nb = 0, nc = 0;
    assert_int_equal(cli_chaos_plan(42, 300000, 10000, 9, 1, 1, a, 200, &na), 0);
    assert_int_equal(cli_chaos_plan(42, 300000, 10000, 9, 1, 1, b, 200, &nb), 0);
    assert_int_equal(cli_chaos_plan(43, 300000, 10000, 9, 1, 1, c, 200, &nc), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    assert_true(nc != na || memcmp(a, c, na * sizeof *a) != 0);
    /* 0.5–1.5 × every between faults: 300 s / 10 s is about 30 faults, never below 20 or
     * above 60. */
    assert_true(na >= 20 && na <= 60);
    int kinds[3] = {0};
    int64_t prev = 0;
    for (size_t i = 0; i < na; i++) {
        assert_true(a[i].at_ms - prev >= 5000 && a[i].at_ms - prev <= 15000);
        assert_true(a[i].at_ms < 300000);
        assert_true(a[i].target >= 0 && a[i].target < 9);
        kinds[a[i].fault]++;
        if (a[i].fault == CLI_FAULT_KILL)
            assert_int_equal(a[i].hold_ms, 0);
        else
            assert_true(a[i].hold_ms >= 1 && a[i].hold_ms <= 5000 &&
                        a[i].at_ms + a[i].hold_ms <= 300000);
        prev = a[i].at_ms;
    }
    assert_true(kinds[CLI_FAULT_KILL] > 0 && kinds[CLI_FAULT_PAUSE] > 0 &&
                kinds[CLI_FAULT_SLOW] > 0);
    /* Kills only unless pauses or slowdowns are asked for. */
    assert_int_equal(cli_chaos_plan(42, 300000, 10000, 9, 0, 0, a, 200, &na), 0);
    for (size_t i = 0; i < na; i++)
        assert_int_equal(a[i].fault, CLI_FAULT_KILL);
    /* The capacity bounds it; nonsense is refused. */
    assert_int_equal(cli_chaos_plan(1, 3600000, 100, 3, 1, 0, a, 200, &na), 0);
    assert_int_equal(na, 200);
    assert_int_equal(cli_chaos_plan(1, 0, 1000, 3, 0, 0, a, 200, &na), SL_EINVAL);
    assert_int_equal(cli_chaos_plan(1, 1000, 99, 3, 0, 0, a, 200, &na), SL_EINVAL);
    assert_int_equal(cli_chaos_plan(1, 1000, 1000, 0, 0, 0, a, 200, &na), SL_EINVAL);
    assert_string_equal(cli_fault_name(CLI_FAULT_PAUSE), "pause");
}

static json_t *doc(const char *text)
{
    json_t *d = json_loads(text, 0, NULL);
    assert_non_null(d);
    return d;
}

static void test_audit_read(void **state)
{
    (void)state;
    int quiet = -1, ok = -1;
    json_t *d = doc("{\"ok\":true,\"checks\":[{\"name\":\"order.in_flight\",\"ok\":true,"
                    "\"value\":0},{\"name\":\"payment.in_flight\",\"ok\":true,\"value\":0},"
                    "{\"name\":\"x\",\"ok\":true,\"value\":5}]}");
    assert_int_equal(cli_audit_read(d, &quiet, &ok), 0);
    assert_int_equal(quiet, 1);
    assert_int_equal(ok, 1);
    json_decref(d);
    /* Work in flight somewhere: not quiet, whatever the verdict. */
    d = doc("{\"ok\":false,\"checks\":[{\"name\":\"order.in_flight\",\"ok\":true,\"value\":3},"
            "{\"name\":\"charged_exactly_once\",\"ok\":false,\"value\":null}]}");
    assert_int_equal(cli_audit_read(d, &quiet, &ok), 0);
    assert_int_equal(quiet, 0);
    assert_int_equal(ok, 0);
    json_decref(d);
    /* A service that did not answer is not quiet either. */
    d = doc("{\"ok\":false,\"checks\":[{\"name\":\"payment.audit\",\"ok\":false,\"value\":null}]}");
    assert_int_equal(cli_audit_read(d, &quiet, &ok), 0);
    assert_int_equal(quiet, 0);
    json_decref(d);
    /* A non-integer in_flight is not 0. */
    d = doc("{\"ok\":true,\"checks\":[{\"name\":\"a.in_flight\",\"ok\":true,\"value\":\"0\"}]}");
    assert_int_equal(cli_audit_read(d, &quiet, &ok), 0);
    assert_int_equal(quiet, 0);
    json_decref(d);
    const char *bad[] = {"{}", "{\"ok\":1,\"checks\":[]}", "{\"ok\":true,\"checks\":{}}",
                         "{\"ok\":true,\"checks\":[{\"ok\":true}]}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        d = doc(bad[i]);
        assert_int_equal(cli_audit_read(d, &quiet, &ok), SL_EPARSE);
        json_decref(d);
    }
}

static void test_pid_table(void **state)
{
    (void)state;
    char dir[] = "/tmp/shoal-pids-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int sup = 0;
    cli_pid out[4];
    size_t n = 9;
    assert_int_equal(cli_pids_read(dir, &sup, out, 4, &n), SL_ENOTFOUND);
    cli_pid in[2] = {{"order", 4242}, {"nats-server", 4243}};
    assert_int_equal(cli_pids_write(dir, 4000, in, 2), 0);
    assert_int_equal(cli_pids_read(dir, &sup, out, 4, &n), 0);
    assert_int_equal(sup, 4000);
    assert_int_equal(n, 2);
    assert_string_equal(out[1].name, "nats-server");
    assert_int_equal(out[1].pid, 4243);
    /* A table others could have written names nothing to signal. */
    char path[128];
    snprintf(path, sizeof path, "%s/pids", dir);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(cli_pids_read(dir, &sup, out, 4, &n), SL_EIO);
    /* We are our parent's child, and nobody else's. */
    assert_int_equal(cli_pid_is_child(getpid(), getppid()), 1);
    assert_int_equal(cli_pid_is_child(getpid(), 1 == getppid() ? 2 : 1), 0);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_plan_is_deterministic_and_bounded),
        cmocka_unit_test(test_audit_read),
        cmocka_unit_test(test_pid_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
