/* Unit tests for the gateway's header filtering. */
#include "headers.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static sl_slice S(const char *s)
{
    return (sl_slice){s, strlen(s)};
}

static int has(const sl_http_header *h, size_t n, const char *name, const char *value)
{
    for (size_t i = 0; i < n; i++)
        if (sl_slice_case_eq(h[i].name, name) && (!value || sl_slice_eq(h[i].value, value)))
            return 1;
    return 0;
}

static void test_request_filter(void **state)
{
    (void)state;
    sl_http_header in[] = {
        {S("Host"), S("shop")},
        {S("Connection"), S("keep-alive, X-Secret-Hop")},
        {S("X-Secret-Hop"), S("1")},
        {S("Keep-Alive"), S("timeout=5")},
        {S("Transfer-Encoding"), S("chunked")},
        {S("Content-Length"), S("5")},
        {S("Upgrade"), S("websocket")},
        {S("TE"), S("trailers")},
        {S("X-User-Id"), S("admin-forged")},
        {S("x-user-role"), S("admin")},
        {S("X-Shoal-Identity"), S("v1.1.ff")},
        {S("X-Forwarded-For"), S("10.0.0.1")},
        {S("Accept"), S("application/json")},
        {S("Content-Type"), S("application/json")},
        {S("Authorization"), S("Bearer t")},
    };
    px_fwd_headers out;
    px_filter_request_headers(in, sizeof in / sizeof in[0], "127.0.0.1", &out);
    const char *dropped[] = {"host",
                             "connection",
                             "x-secret-hop",
                             "keep-alive",
                             "transfer-encoding",
                             "content-length",
                             "upgrade",
                             "te",
                             "x-user-id",
                             "x-user-role",
                             "x-shoal-identity"};
    for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++)
        assert_false(has(out.h, out.n, dropped[i], NULL));
    assert_true(has(out.h, out.n, "accept", "application/json"));
    assert_true(has(out.h, out.n, "content-type", "application/json"));
    assert_true(has(out.h, out.n, "authorization", "Bearer t"));
    assert_true(has(out.h, out.n, "via", "1.1 shoal"));
    assert_true(has(out.h, out.n, "x-forwarded-for", "10.0.0.1, 127.0.0.1"));
    assert_true(has(out.h, out.n, "x-forwarded-proto", "http"));
}

/* X-Forwarded-For: no incoming list → the client alone; a list too long to extend → the client
 * alone, never a cut list. */
static void test_forwarded_for(void **state)
{
    (void)state;
    px_fwd_headers out;
    sl_http_header none[] = {{S("Accept"), S("*/*")}};
    px_filter_request_headers(none, 1, "192.0.2.7", &out);
    assert_true(has(out.h, out.n, "x-forwarded-for", "192.0.2.7"));
    char big[250];
    memset(big, '1', sizeof big);
    sl_http_header longer[] = {{S("X-Forwarded-For"), {big, sizeof big}}};
    px_filter_request_headers(longer, 1, "192.0.2.7", &out);
    assert_true(has(out.h, out.n, "x-forwarded-for", "192.0.2.7"));
    sl_http_header two[] = {{S("X-Forwarded-For"), S("10.0.0.1, 10.0.0.2")}};
    px_filter_request_headers(two, 1, "::1", &out);
    assert_true(has(out.h, out.n, "x-forwarded-for", "10.0.0.1, 10.0.0.2, ::1"));
}

/* tracestate travels on when valid and beside a valid traceparent (which the client call
 * replaces with the gateway's own span); otherwise it is dropped, as W3C Trace Context asks. */
static void test_tracestate_passes(void **state)
{
    (void)state;
    px_fwd_headers out;
    sl_http_header ok[] = {
        {S("traceparent"), S("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
        {S("tracestate"), S("vendor=abc,other@sys=1")}};
    px_filter_request_headers(ok, 2, "127.0.0.1", &out);
    assert_true(has(out.h, out.n, "tracestate", "vendor=abc,other@sys=1"));
    assert_false(has(out.h, out.n, "traceparent", NULL));
    sl_http_header bad_state[] = {
        {S("traceparent"), S("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
        {S("tracestate"), S("Upper=abc")}};
    px_filter_request_headers(bad_state, 2, "127.0.0.1", &out);
    assert_false(has(out.h, out.n, "tracestate", NULL));
    sl_http_header no_parent[] = {{S("tracestate"), S("vendor=abc")}};
    px_filter_request_headers(no_parent, 1, "127.0.0.1", &out);
    assert_false(has(out.h, out.n, "tracestate", NULL));
    sl_http_header bad_parent[] = {{S("traceparent"), S("00-zz-00f067aa0ba902b7-01")},
                                   {S("tracestate"), S("vendor=abc")}};
    px_filter_request_headers(bad_parent, 2, "127.0.0.1", &out);
    assert_false(has(out.h, out.n, "tracestate", NULL));
}

static void test_response_filter(void **state)
{
    (void)state;
    sl_http_header in[] = {{S("Content-Type"), S("application/json")},
                           {S("Connection"), S("close")},
                           {S("Content-Length"), S("10")},
                           {S("Date"), S("x")},
                           {S("Retry-After"), S("3")},
                           {S("x-request-id"), S("upstream")},
                           {S("Location"), S("/orders/1")}};
    sl_http_header out[8];
    size_t n = px_filter_response_headers(in, 7, out, 8);
    assert_int_equal(n, 3);
    assert_true(has(out, n, "content-type", NULL));
    assert_true(has(out, n, "retry-after", "3"));
    assert_true(has(out, n, "location", "/orders/1"));
}

static void test_hop_by_hop_list(void **state)
{
    (void)state;
    assert_true(px_is_hop_by_hop(S("Keep-Alive"), S("")));
    assert_true(px_is_hop_by_hop(S("x-a"), S("close, X-A ,x-b")));
    assert_true(px_is_hop_by_hop(S("x-b"), S("close, X-A ,x-b")));
    assert_false(px_is_hop_by_hop(S("x-c"), S("close, X-A ,x-b")));
    assert_false(px_is_hop_by_hop(S("x"), S("x-a")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_filter),  cmocka_unit_test(test_response_filter),
        cmocka_unit_test(test_forwarded_for),   cmocka_unit_test(test_tracestate_passes),
        cmocka_unit_test(test_hop_by_hop_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
