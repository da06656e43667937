/*
 * Unit tests for the pure parts of the gateway's services view
 * (admin_services.h): reading a service's /metrics text, and the request
 * rate, error ratio and p99 between two scrapes (including a restart).
 */
#include "admin_services.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static const char before[] =
    "# HELP service_requests_total HTTP requests answered, by method and status.\n"
    "# TYPE service_requests_total counter\n"
    "service_requests_total{service=\"order\",method=\"GET\",status=\"200\"} 90\n"
    "service_requests_total{service=\"order\",method=\"POST\",status=\"202\"} 10\n"
    "service_requests_total{service=\"order\",method=\"GET\",status=\"503\"} 0\n"
    "service_request_duration_seconds_bucket{service=\"order\",method=\"GET\",le=\"0.01\"} 50\n"
    "service_request_duration_seconds_bucket{service=\"order\",method=\"GET\",le=\"0.1\"} 90\n"
    "service_request_duration_seconds_bucket{service=\"order\",method=\"GET\",le=\"+Inf\"} 90\n"
    "service_request_duration_seconds_bucket{service=\"order\",method=\"POST\",le=\"0.01\"} 0\n"
    "service_request_duration_seconds_bucket{service=\"order\",method=\"POST\",le=\"0.1\"} 10\n"
    "service_request_duration_seconds_bucket{service=\"order\",method=\"POST\",le=\"+Inf\"} 10\n"
    "service_request_duration_seconds_sum{service=\"order\",method=\"GET\"} 1.5\n"
    "build_info{version=\"1.2.3\"} 1\n"
    "process_start_time_seconds 1700000000.5\n"
    "service_requests_totalx{status=\"500\"} 1000\n"
    "garbage line without value\n";

/* 100 more requests: 10 of them 5xx; 98 under 0.1 s, 2 in +Inf. */
static const char after[] =
    "service_requests_total{service=\"order\",method=\"GET\",status=\"200\"} 180\n"
    "service_requests_total{service=\"order\",method=\"POST\",status=\"202\"} 10\n"
    "service_requests_total{service=\"order\",method=\"GET\",status=\"503\"} 10\n"
    "service_request_duration_seconds_bucket{service=\"order\",method=\"GET\",le=\"0.01\"} 60\n"
    "service_request_duration_seconds_bucket{service=\"order\",method=\"GET\",le=\"0.1\"} 188\n"
    "service_request_duration_seconds_bucket{service=\"order\",method=\"GET\",le=\"+Inf\"} 190\n"
    "service_request_duration_seconds_bucket{service=\"order\",method=\"POST\",le=\"0.01\"} 0\n"
    "service_request_duration_seconds_bucket{service=\"order\",method=\"POST\",le=\"0.1\"} 10\n"
    "service_request_duration_seconds_bucket{service=\"order\",method=\"POST\",le=\"+Inf\"} 10\n"
    "build_info{version=\"1.2.3\"} 1\n"
    "process_start_time_seconds 1700000000.5\n"
    "outbox_backlog 4\n"
    "bus_consumer_lag{topic=\"shop.order.created.v1\",group=\"payment\"} 3\n"
    "bus_consumer_lag{topic=\"shop.order.cancelled.v1\",group=\"payment\"} 2\n";

static void test_parse(void **state)
{
    (void)state;
    px_prom_sample s;
    px_prom_parse(before, sizeof before - 1, &s);
    assert_true(s.requests == 100);
    assert_true(s.errors == 0);
    assert_string_equal(s.version, "1.2.3");
    assert_true(fabs(s.start_time_s - 1700000000.5) < 1e-6);
    assert_int_equal(s.nbuckets, 3);
    assert_true(s.le[0] == 0.01 && s.count[0] == 50);
    assert_true(s.le[1] == 0.1 && s.count[1] == 100);
    assert_true(isinf(s.le[2]) && s.count[2] == 100);
    assert_false(s.has_outbox || s.has_lag); /* absent gauges are not zeros */
    px_prom_parse(after, sizeof after - 1, &s);
    assert_true(s.has_outbox && s.outbox_backlog == 4);
    assert_true(s.has_lag && s.consumer_lag == 5);
    px_prom_parse("", 0, &s);
    assert_true(s.requests == 0 && s.nbuckets == 0 && s.version[0] == '\0');
    /* no trailing newline, escaped quotes in labels */
    const char odd[] = "build_info{version=\"a\\\"b\"} 1\nservice_requests_total{status=\"500\"} 7";
    px_prom_parse(odd, sizeof odd - 1, &s);
    assert_true(s.requests == 7 && s.errors == 7);
    assert_string_equal(s.version, "a\\\"b");
}

static void test_rates(void **state)
{
    (void)state;
    px_prom_sample a, b;
    px_prom_parse(before, sizeof before - 1, &a);
    px_prom_parse(after, sizeof after - 1, &b);
    double rate, err, p99;
    px_prom_rates(&a, &b, 2.0, &rate, &err, &p99);
    assert_true(fabs(rate - 50.0) < 1e-9);
    assert_true(fabs(err - 0.10) < 1e-9);
    /* 100 new: 10 ≤ 0.01, 98 ≤ 0.1, 100 total; the 99th is beyond the last finite bound */
    assert_true(fabs(p99 - 0.1) < 1e-9);
    /* no traffic: rate 0, no p99 */
    px_prom_rates(&b, &b, 2.0, &rate, &err, &p99);
    assert_true(rate == 0 && err == 0 && p99 == -1);
    /* interpolation inside a bucket: 100 requests, 50 ≤ 0.01, 100 ≤ 0.1 → 0.01 + 0.09*49/50 */
    px_prom_sample z;
    memset(&z, 0, sizeof z);
    z.nbuckets = a.nbuckets;
    memcpy(z.le, a.le, sizeof z.le);
    px_prom_rates(&z, &a, 1.0, &rate, &err, &p99);
    assert_true(fabs(p99 - (0.01 + 0.09 * 49.0 / 50.0)) < 1e-9);
    /* a restart (counters went down) counts from zero */
    px_prom_rates(&b, &a, 1.0, &rate, &err, &p99);
    assert_true(fabs(rate - 100.0) < 1e-9);
    assert_true(err == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_rates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
