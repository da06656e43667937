/* Unit tests for the pure part of `shoal rollout` (rollout_plan.c): options, the gateway's
 * per-subset series read from recorded /metrics documents, windows and verdicts. */
#include "cli.h"
#include "rollout.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* Two scrapes of a gateway, 30 s apart: v1 healthy and fast, v2 answering 500s and slower. */
static const char before[] =
    "# TYPE gateway_subset_requests_total counter\n"
    "gateway_subset_requests_total{cluster=\"hello\",version=\"v1\",class=\"2xx\"} 1000\n"
    "gateway_subset_requests_total{cluster=\"hello\",version=\"v2\",class=\"2xx\"} 40\n"
    "gateway_subset_requests_total{cluster=\"hello\",version=\"v2\",class=\"5xx\"} 2\n"
    "gateway_subset_requests_total{cluster=\"other\",version=\"v2\",class=\"5xx\"} 999\n"
    "# TYPE gateway_subset_request_duration_seconds histogram\n"
    "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v1\",le=\"0.005\"} "
    "990\n"
    "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v1\",le=\"0.01\"} "
    "1000\n"
    "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v1\",le=\"+Inf\"} "
    "1000\n"
    "gateway_subset_request_duration_seconds_sum{cluster=\"hello\",version=\"v1\"} 2.5\n"
    "gateway_subset_request_duration_seconds_count{cluster=\"hello\",version=\"v1\"} 1000\n"
    "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v2\",le=\"0.005\"} "
    "0\n"
    "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v2\",le=\"0.01\"} "
    "0\n"
    "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v2\",le=\"0.1\"} "
    "42\n"
    "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v2\",le=\"+Inf\"} "
    "42\n"
    "shoal_http_requests_total{route=\"/hello\",status=\"500\"} 77\n";

static const char after[] =
    "gateway_subset_requests_total{cluster=\"hello\",version=\"v1\",class=\"2xx\"} 1900\n"
    "gateway_subset_requests_total{cluster=\"hello\",version=\"v1\",class=\"error\"} 0\n"
    "gateway_subset_requests_total{cluster=\"hello\",version=\"v2\",class=\"2xx\"} 130\n"
    "gateway_subset_requests_total{cluster=\"hello\",version=\"v2\",class=\"5xx\"} 8\n"
    "gateway_subset_requests_total{cluster=\"hello\",version=\"v2\",class=\"error\"} 4\n"
    "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v1\",le=\"0.005\"} "
    "1880\n"
    "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v1\",le=\"0.01\"} "
    "1900\n"
    "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v1\",le=\"+Inf\"} "
    "1900\n"
    "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v2\",le=\"0.005\"} "
    "0\n"
    "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v2\",le=\"0.01\"} "
    "0\n"
    "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v2\",le=\"0.1\"} "
    "140\n"
    "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v2\",le=\"+Inf\"} "
    "142\n";

static void test_parse_and_window(void **state)
{
    (void)state;
    cli_rollout_sample b2, a2, b1, a1;
    cli_rollout_sample_parse(before, strlen(before), "hello", "v2", &b2);
    assert_true(b2.requests == 42 && b2.errors == 2); /* not the other cluster's */
    assert_int_equal(b2.nbuckets, 4);
    cli_rollout_sample_parse(after, strlen(after), "hello", "v2", &a2);
    assert_true(a2.requests == 142 && a2.errors == 12);
    cli_rollout_sample_parse(before, strlen(before), "hello", "v1", &b1);
    cli_rollout_sample_parse(after, strlen(after), "hello", "v1", &a1);
    cli_rollout_window w2, w1;
    cli_rollout_window_of(&b2, &a2, &w2);
    assert_true(w2.requests == 100 && w2.errors == 10);
    assert_true(w2.error_rate > 0.0999 && w2.error_rate < 0.1001);
    /* 98 of 100 in the 10–100 ms bucket, 2 beyond: the 99th is past 100 ms */
    assert_true(w2.p99_ms >= 100 && w2.p99_ms <= 100.001);
    cli_rollout_window_of(&b1, &a1, &w1);
    assert_true(w1.requests == 900 && w1.errors == 0);
    /* 890 under 5 ms, 10 in 5–10 ms: rank 891 → a tenth of the way into 5–10 ms */
    assert_true(w1.p99_ms > 5.4 && w1.p99_ms < 5.6);

    /* a restarted gateway (counters went down): the later sample alone */
    cli_rollout_window_of(&a2, &b2, &w2);
    assert_true(w2.requests == 42 && w2.errors == 2);
    /* buckets out of order, negative or repeated are not the gateway's: skipped */
    static const char odd[] =
        "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v2\","
        "le=\"0.1\"} 3\n"
        "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v2\","
        "le=\"0.01\"} 2\n"
        "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v2\","
        "le=\"-1\"} 2\n"
        "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v2\","
        "le=\"+Inf\"} 4\n"
        "gateway_subset_request_duration_seconds_bucket{cluster=\"hello\",version=\"v2\","
        "le=\"+Inf\"} 9\n";
    cli_rollout_sample o;
    cli_rollout_sample_parse(odd, strlen(odd), "hello", "v2", &o);
    assert_int_equal(o.nbuckets, 2);
    assert_true(o.le[0] == 0.1 && o.count[1] == 4);
    /* errors that grew more than the calls (scrapes that disagree): a rate of at most 1 */
    cli_rollout_sample e1 = {.requests = 4, .errors = 0}, e2 = {.requests = 9, .errors = 9};
    cli_rollout_window_of(&e1, &e2, &w2);
    assert_true(w2.requests == 5 && w2.errors == 5 && w2.error_rate == 1);
    /* nothing: no calls, no p99 */
    cli_rollout_sample z;
    cli_rollout_sample_parse("", 0, "hello", "v2", &z);
    cli_rollout_window_of(&z, &z, &w2);
    assert_true(w2.requests == 0 && w2.p99_ms < 0);
    /* malformed lines are skipped */
    static const char junk[] = "gateway_subset_requests_total{cluster=\"hello\",version=\"v2\"\n"
                               "gateway_subset_requests_total{cluster=\"hello\",version=\"v2\","
                               "class=\"5xx\"} nope\n"
                               "gateway_subset_requests_total{cluster=\"hello\",version=\"v2\","
                               "class=\"5xx\"} 3";
    cli_rollout_sample_parse(junk, strlen(junk), "hello", "v2", &z);
    assert_true(z.requests == 3 && z.errors == 3);
}

static void test_verdicts(void **state)
{
    (void)state;
    cli_rollout_opts o;
    char err[256], why[256];
    char *argv[] = {"hello", "--to", "v2", "--max-p99-ms", "50"};
    assert_int_equal(cli_rollout_args(5, argv, &o, err), 0);
    cli_rollout_window old = {.requests = 900, .errors = 0, .error_rate = 0, .p99_ms = 5.5};
    cli_rollout_window nw = {.requests = 100, .errors = 10, .error_rate = 0.1, .p99_ms = 20};
    assert_int_equal(cli_rollout_judge(&o, &nw, &old, why), CLI_ROLLOUT_ROLLBACK);
    assert_non_null(strstr(why, "error rate above 1.00%"));
    nw = (cli_rollout_window){.requests = 100, .errors = 1, .error_rate = 0.01, .p99_ms = 20};
    assert_int_equal(cli_rollout_judge(&o, &nw, &old, why), CLI_ROLLOUT_PROCEED);
    nw.p99_ms = 51;
    assert_int_equal(cli_rollout_judge(&o, &nw, &old, why), CLI_ROLLOUT_ROLLBACK);
    assert_non_null(strstr(why, "p99 above 50 ms"));
    /* too few calls: wait, unless their errors already pass the limit */
    nw = (cli_rollout_window){.requests = 5, .errors = 0, .error_rate = 0, .p99_ms = 3};
    assert_int_equal(cli_rollout_judge(&o, &nw, &old, why), CLI_ROLLOUT_WAIT);
    nw = (cli_rollout_window){.requests = 5, .errors = 5, .error_rate = 1, .p99_ms = 3};
    assert_int_equal(cli_rollout_judge(&o, &nw, &old, why), CLI_ROLLOUT_ROLLBACK);
    /* no p99 limit: a slow new version passes */
    char *argv2[] = {"hello", "--to", "v2", "--max-error-rate", "5%"};
    assert_int_equal(cli_rollout_args(5, argv2, &o, err), 0);
    nw = (cli_rollout_window){.requests = 100, .errors = 4, .error_rate = 0.04, .p99_ms = 900};
    assert_int_equal(cli_rollout_judge(&o, &nw, &old, why), CLI_ROLLOUT_PROCEED);
}

static void test_args(void **state)
{
    (void)state;
    cli_rollout_opts o;
    char err[256];
    char *a1[] = {"order", "--to", "v2"};
    assert_int_equal(cli_rollout_args(3, a1, &o, err), 0);
    assert_int_equal(o.nsteps, 4);
    assert_int_equal(o.steps[0], 5);
    assert_int_equal(o.steps[3], 100);
    assert_int_equal(o.interval_ms, 30000);
    assert_true(o.max_error_rate == 0.01);
    assert_string_equal(o.admin, "http://127.0.0.1:9901");
    char *a2[] = {"order",      "--to",      "v2",           "--steps",          "10,100",
                  "--interval", "2s",        "--blue-green", "--max-error-rate", "0.002",
                  "--admin",    "http://x:1"};
    assert_int_equal(cli_rollout_args(12, a2, &o, err), 0);
    assert_int_equal(o.nsteps, 2);
    assert_int_equal(o.interval_ms, 2000);
    assert_true(o.blue_green);
    assert_true(o.max_error_rate == 0.002);
    struct {
        int argc;
        char *argv[5];
        const char *needle;
    } bad[] = {
        {1, {"order"}, "required"},
        {2, {"--to", "v2"}, "required"},
        {4, {"order", "--to", "v2", "--steps"}, "--steps"},
        {5, {"order", "--to", "v2", "--bogus", "1"}, "--bogus"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(cli_rollout_args(bad[i].argc, bad[i].argv, &o, err), 2);
        if (!strstr(err, bad[i].needle)) fail_msg("%s", err);
    }
    const char *vals[][2] = {{"--steps", "50,25,100"},   {"--steps", "5,50"},
                             {"--steps", "0,100"},       {"--steps", "5,,100"},
                             {"--interval", "soon"},     {"--max-error-rate", "101%"},
                             {"--max-error-rate", "-1"}, {"--max-p99-ms", "0"}};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char *av[] = {"order", "--to", "v2", (char *)vals[i][0], (char *)vals[i][1]};
        assert_int_equal(cli_rollout_args(5, av, &o, err), 2);
        if (!strstr(err, vals[i][0])) fail_msg("%s", err);
    }
    double r;
    assert_int_equal(cli_rollout_parse_rate("0.5%", &r), 0);
    assert_true(r == 0.005);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_window),
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
