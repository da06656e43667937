/* Unit tests for gateway routing: exact, prefix, template, headers, order, 405, rewrites. */
#include "route.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static sl_slice S(const char *s)
{
    return (sl_slice){s, strlen(s)};
}

static px_routes table;

static void add(const char *name, unsigned methods, px_match_kind kind, const char *path,
                const char *rewrite, const char *hname, const char *hvalue)
{
    if (table.n == table.cap) {
        table.cap = table.cap ? table.cap * 2 : 8;
        table.items = realloc(table.items, table.cap * sizeof(px_route));
    }
    px_route *r = &table.items[table.n++];
    memset(r, 0, sizeof *r);
    r->name = strdup(name);
    r->methods = methods;
    r->kind = kind;
    r->path = strdup(path);
    r->rewrite = rewrite ? strdup(rewrite) : NULL;
    if (hname) {
        r->headers[0].name = strdup(hname);
        r->headers[0].value = hvalue ? strdup(hvalue) : NULL;
        r->nheaders = 1;
    }
    assert_int_equal(px_route_compile(r), 0);
}

#define M(m) (1u << SL_HTTP_##m)

static int setup(void **state)
{
    (void)state;
    add("canary", 0, PX_MATCH_PREFIX, "/api/v1/products", "/products", "x-canary", "1");
    add("order-cancel", M(POST), PX_MATCH_TEMPLATE, "/api/v1/orders/{id}/cancel",
        "/orders/{id}/cancel", NULL, NULL);
    add("order-get", M(GET), PX_MATCH_TEMPLATE, "/api/v1/orders/{id}", "/orders/{id}", NULL, NULL);
    add("register", M(POST), PX_MATCH_EXACT, "/api/v1/auth/register", "/register", NULL, NULL);
    add("products", M(GET), PX_MATCH_PREFIX, "/api/v1/products", "/products", NULL, NULL);
    add("debug", M(GET), PX_MATCH_PREFIX, "/debug", NULL, "x-debug", NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < table.n; i++)
        px_route_free(&table.items[i]);
    free(table.items);
    return 0;
}

static void test_match_kinds(void **state)
{
    (void)state;
    sl_route_params p;
    unsigned allowed;
    const px_route *r =
        px_routes_match(&table, SL_HTTP_POST, S("/api/v1/auth/register"), NULL, 0, &p, &allowed);
    assert_non_null(r);
    assert_string_equal(r->name, "register");
    assert_null(
        px_routes_match(&table, SL_HTTP_POST, S("/api/v1/auth/register/x"), NULL, 0, &p, &allowed));
    r = px_routes_match(&table, SL_HTTP_GET, S("/api/v1/products/abc"), NULL, 0, &p, &allowed);
    assert_string_equal(r->name, "products");
    r = px_routes_match(&table, SL_HTTP_GET, S("/api/v1/orders/o-1"), NULL, 0, &p, &allowed);
    assert_string_equal(r->name, "order-get");
    assert_int_equal(p.n, 1);
    assert_true(sl_slice_eq(sl_route_param(&p, "id"), "o-1"));
    r = px_routes_match(&table, SL_HTTP_POST, S("/api/v1/orders/o-1/cancel"), NULL, 0, &p,
                        &allowed);
    assert_string_equal(r->name, "order-cancel");
    /* HEAD is served by GET routes. */
    r = px_routes_match(&table, SL_HTTP_HEAD, S("/api/v1/orders/o-1"), NULL, 0, &p, &allowed);
    assert_string_equal(r->name, "order-get");
}

static void test_headers_and_order(void **state)
{
    (void)state;
    sl_route_params p;
    unsigned allowed;
    sl_http_header canary[] = {{S("X-Canary"), S("1")}};
    sl_http_header other[] = {{S("X-Canary"), S("0")}};
    const px_route *r =
        px_routes_match(&table, SL_HTTP_GET, S("/api/v1/products"), canary, 1, &p, &allowed);
    assert_string_equal(r->name, "canary"); /* first match wins */
    r = px_routes_match(&table, SL_HTTP_GET, S("/api/v1/products"), other, 1, &p, &allowed);
    assert_string_equal(r->name, "products");
    assert_null(px_routes_match(&table, SL_HTTP_GET, S("/debug/x"), NULL, 0, &p, &allowed));
    sl_http_header dbg[] = {{S("x-debug"), S("anything")}};
    r = px_routes_match(&table, SL_HTTP_GET, S("/debug/x"), dbg, 1, &p, &allowed);
    assert_string_equal(r->name, "debug");
}

static void test_405_and_404(void **state)
{
    (void)state;
    sl_route_params p;
    unsigned allowed = 99;
    assert_null(
        px_routes_match(&table, SL_HTTP_DELETE, S("/api/v1/orders/o-1"), NULL, 0, &p, &allowed));
    assert_int_equal(allowed, M(GET) | M(HEAD));
    assert_null(px_routes_match(&table, SL_HTTP_GET, S("/api/v2/anything"), NULL, 0, &p, &allowed));
    assert_int_equal(allowed, 0);
    assert_null(
        px_routes_match(&table, SL_HTTP_GET, S("/api/v1/orders//cancel"), NULL, 0, &p, &allowed));
}

static void test_rewrite(void **state)
{
    (void)state;
    sl_route_params p;
    char out[PX_PATH_MAX];
    const px_route *r =
        px_routes_match(&table, SL_HTTP_GET, S("/api/v1/products/p9"), NULL, 0, &p, NULL);
    assert_int_equal(
        px_route_target(r, S("/api/v1/products/p9"), S("q=shoe&page=2"), &p, out, sizeof out),
        (int)strlen("/products/p9?q=shoe&page=2"));
    assert_string_equal(out, "/products/p9?q=shoe&page=2");
    r = px_routes_match(&table, SL_HTTP_POST, S("/api/v1/orders/o%2F1/cancel"), NULL, 0, &p, NULL);
    px_route_target(r, S("/api/v1/orders/o%2F1/cancel"), S(""), &p, out, sizeof out);
    assert_string_equal(out, "/orders/o%2F1/cancel");
    /* A target that does not fit is refused, not truncated. */
    assert_int_equal(px_route_target(r, S("/api/v1/orders/o/cancel"), S(""), &p, out, 8),
                     SL_ELIMIT);
    /* No rewrite: the path is kept. */
    sl_http_header dbg[] = {{S("x-debug"), S("1")}};
    r = px_routes_match(&table, SL_HTTP_GET, S("/debug/vars"), dbg, 1, &p, NULL);
    px_route_target(r, S("/debug/vars"), S(""), &p, out, sizeof out);
    assert_string_equal(out, "/debug/vars");
}

static void test_bad_templates(void **state)
{
    (void)state;
    px_route r;
    memset(&r, 0, sizeof r);
    r.kind = PX_MATCH_TEMPLATE;
    r.path = "no-slash";
    assert_int_equal(px_route_compile(&r), SL_EINVAL);
    r.path = "/a/{b";
    assert_int_equal(px_route_compile(&r), SL_EINVAL);
    for (size_t i = 0; i < r.nsegs; i++)
        free(r.segs[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_kinds),   cmocka_unit_test(test_headers_and_order),
        cmocka_unit_test(test_405_and_404),   cmocka_unit_test(test_rewrite),
        cmocka_unit_test(test_bad_templates),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
