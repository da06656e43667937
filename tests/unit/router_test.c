/* Unit tests for the router and the small HTTP helpers it shares. */
#include <shoal/router.h>

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

static const int R_LIST = 1, R_GET = 2, R_MINE = 3, R_DEL = 4, R_ITEM = 5, R_POST = 6;

static sl_router *make(void)
{
    sl_router *r = sl_router_new();
    assert_non_null(r);
    assert_int_equal(sl_router_add(r, SL_HTTP_GET, "/orders", &R_LIST), 0);
    assert_int_equal(sl_router_add(r, SL_HTTP_POST, "/orders", &R_POST), 0);
    assert_int_equal(sl_router_add(r, SL_HTTP_GET, "/orders/{id}", &R_GET), 0);
    assert_int_equal(sl_router_add(r, SL_HTTP_GET, "/orders/mine", &R_MINE), 0);
    assert_int_equal(sl_router_add(r, SL_HTTP_DELETE, "/orders/{id}", &R_DEL), 0);
    assert_int_equal(sl_router_add(r, SL_HTTP_PUT, "/carts/{cart}/items/{item}", &R_ITEM), 0);
    return r;
}

static void test_match_and_params(void **state)
{
    (void)state;
    sl_router *r = make();
    const void *v = NULL;
    sl_route_params p;
    unsigned allowed = 0;
    assert_int_equal(sl_router_match(r, SL_HTTP_GET, S("/orders"), &v, &p, &allowed),
                     SL_ROUTE_FOUND);
    assert_ptr_equal(v, &R_LIST);
    assert_int_equal(p.n, 0);
    assert_int_equal(sl_router_match(r, SL_HTTP_GET, S("/orders/abc"), &v, &p, &allowed),
                     SL_ROUTE_FOUND);
    assert_ptr_equal(v, &R_GET);
    sl_slice id = sl_route_param(&p, "id");
    assert_true(sl_slice_eq(id, "abc"));
    assert_null(sl_route_param(&p, "nope").ptr);
    assert_int_equal(sl_router_match(r, SL_HTTP_PUT, S("/carts/c1/items/p%2F9"), &v, &p, &allowed),
                     SL_ROUTE_FOUND);
    assert_ptr_equal(v, &R_ITEM);
    assert_true(sl_slice_eq(sl_route_param(&p, "cart"), "c1"));
    assert_true(sl_slice_eq(sl_route_param(&p, "item"), "p%2F9"));
    sl_router_free(r);
}

static void test_literal_beats_param(void **state)
{
    (void)state;
    sl_router *r = make();
    const void *v = NULL;
    sl_route_params p;
    assert_int_equal(sl_router_match(r, SL_HTTP_GET, S("/orders/mine"), &v, &p, NULL),
                     SL_ROUTE_FOUND);
    assert_ptr_equal(v, &R_MINE);
    /* DELETE has only the parameter route: "mine" is an id there. */
    assert_int_equal(sl_router_match(r, SL_HTTP_DELETE, S("/orders/mine"), &v, &p, NULL),
                     SL_ROUTE_FOUND);
    assert_ptr_equal(v, &R_DEL);
    sl_router_free(r);
}

static void test_not_found_and_405(void **state)
{
    (void)state;
    sl_router *r = make();
    const void *v = NULL;
    sl_route_params p;
    unsigned allowed = 0;
    const char *missing[] = {"/", "/order", "/orders/", "/orders/a/b", "", "orders", "/orders//"};
    for (size_t i = 0; i < SL_ARRAY_LEN(missing); i++)
        assert_int_equal(sl_router_match(r, SL_HTTP_GET, S(missing[i]), &v, &p, &allowed),
                         SL_ROUTE_NOT_FOUND);
    assert_int_equal(sl_router_match(r, SL_HTTP_PATCH, S("/orders/x"), &v, &p, &allowed),
                     SL_ROUTE_METHOD_NOT_ALLOWED);
    char allow[64];
    sl_router_allow_header(allowed, allow, sizeof allow);
    assert_string_equal(allow, "GET, HEAD, DELETE");
    assert_int_equal(sl_router_match(r, SL_HTTP_DELETE, S("/orders"), &v, &p, &allowed),
                     SL_ROUTE_METHOD_NOT_ALLOWED);
    sl_router_allow_header(allowed, allow, sizeof allow);
    assert_string_equal(allow, "GET, HEAD, POST");
    sl_router_free(r);
}

static void test_head_uses_get(void **state)
{
    (void)state;
    sl_router *r = make();
    const void *v = NULL;
    sl_route_params p;
    assert_int_equal(sl_router_match(r, SL_HTTP_HEAD, S("/orders/7"), &v, &p, NULL),
                     SL_ROUTE_FOUND);
    assert_ptr_equal(v, &R_GET);
    assert_int_equal(sl_router_match(r, SL_HTTP_HEAD, S("/carts/a/items/b"), &v, &p, NULL),
                     SL_ROUTE_METHOD_NOT_ALLOWED);
    sl_router_free(r);
}

static void test_bad_templates(void **state)
{
    (void)state;
    sl_router *r = sl_router_new();
    const char *bad[] = {"orders", "/a/{", "/a/{}", "/a/{x", "/a/x}", "/a/{x}y{z}"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
        assert_int_equal(sl_router_add(r, SL_HTTP_GET, bad[i], NULL), SL_EINVAL);
    assert_int_equal(sl_router_add(r, SL_HTTP_GET, "/a/{x}", NULL), 0);
    assert_int_equal(sl_router_add(r, SL_HTTP_GET, "/a/{y}", NULL), SL_EEXIST);
    assert_int_equal(sl_router_add(r, SL_HTTP_POST, "/a/{y}", NULL), 0);
    char many[256] = "";
    for (int i = 0; i < 9; i++) {
        char seg[16];
        snprintf(seg, sizeof seg, "/{p%d}", i);
        strcat(many, seg);
    }
    assert_int_equal(sl_router_add(r, SL_HTTP_GET, many, NULL), SL_EINVAL);
    sl_router_free(r);
}

static void test_http_helpers(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(sl_http_pct_decode(S("a%20b+c"), 1, out, sizeof out), 5);
    assert_memory_equal(out, "a b c", 5);
    assert_int_equal(sl_http_pct_decode(S("a+b"), 0, out, sizeof out), 3);
    assert_memory_equal(out, "a+b", 3);
    assert_int_equal(sl_http_pct_decode(S("%2"), 0, out, sizeof out), SL_EPARSE);
    assert_int_equal(sl_http_pct_decode(S("%zz"), 0, out, sizeof out), SL_EPARSE);
    assert_int_equal(sl_http_pct_decode(S("%00"), 0, out, sizeof out), SL_EPARSE);
    assert_int_equal(sl_http_pct_decode(S("abc"), 0, out, 2), SL_ELIMIT);
    sl_slice v;
    assert_true(sl_http_query_param(S("q=shoes&page=2&flag"), "page", &v));
    assert_true(sl_slice_eq(v, "2"));
    assert_true(sl_http_query_param(S("q=shoes&page=2&flag"), "flag", &v));
    assert_int_equal(v.len, 0);
    assert_false(sl_http_query_param(S("q=shoes"), "pag", &v));
    assert_false(sl_http_query_param(S(""), "q", &v));
    assert_int_equal(sl_http_method_parse(S("PATCH")), SL_HTTP_PATCH);
    assert_int_equal(sl_http_method_parse(S("patch")), SL_HTTP_OTHER);
    assert_string_equal(sl_http_reason(431), "Request Header Fields Too Large");
    assert_true(sl_http_is_tchar('~'));
    assert_false(sl_http_is_tchar(' '));
    assert_false(sl_http_is_tchar(':'));
    /* Field values: every byte value at every offset of a value longer than one 8-byte word. */
    for (int c = 0; c < 256; c++) {
        int ok = !((c < 0x20 && c != '\t') || c == 0x7f);
        for (size_t at = 0; at < 21; at++) {
            char val[21];
            memset(val, 'v', sizeof val);
            val[at] = (char)c;
            assert_int_equal(sl_http_value_ok(val, sizeof val), ok);
            assert_int_equal(sl_http_value_ok(val, at), 1); /* the bytes before it alone */
        }
    }
    /* Every byte against the RFC 9110 §5.6.2 definition. */
    for (int c = 0; c < 256; c++) {
        int want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
        assert_int_equal(sl_http_is_tchar((unsigned char)c), want);
    }
    assert_false(sl_http_is_tchar(0));
    /* Case-insensitive slice compare: equal, prefix either way, empty, embedded NUL. */
    assert_true(sl_slice_case_eq(S("Content-Length"), "content-length"));
    assert_false(sl_slice_case_eq(S("Content-Len"), "content-length"));
    assert_false(sl_slice_case_eq(S("Content-Lengths"), "content-length"));
    assert_true(sl_slice_case_eq(S(""), ""));
    assert_false(sl_slice_case_eq(S(""), "via"));
    assert_true(SL_SLICE_CASE_EQ_LIT(S("X-Request-ID"), "x-request-id"));
    assert_false(SL_SLICE_CASE_EQ_LIT(S("X-Request-IE"), "x-request-id"));
    assert_false(SL_SLICE_CASE_EQ_LIT(S("X-Request-I"), "x-request-id"));
    assert_false(SL_SLICE_CASE_EQ_LIT(S("X-Request-IDs"), "x-request-id"));
    assert_true(sl_slice_case_eq_slice(S(""), SL_SLICE_LIT("")));
    assert_false(sl_slice_case_eq_slice(S("te"), SL_SLICE_LIT("tE ")));
    assert_false(sl_slice_case_eq((sl_slice){"via\0", 4}, "via"));
    assert_false(sl_slice_case_eq(S("vib"), "via"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_and_params),  cmocka_unit_test(test_literal_beats_param),
        cmocka_unit_test(test_not_found_and_405), cmocka_unit_test(test_head_uses_get),
        cmocka_unit_test(test_bad_templates),     cmocka_unit_test(test_http_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
