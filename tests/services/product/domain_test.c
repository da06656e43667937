/*
 * Pure rules of the catalogue (src/services/product/domain.c, demo.c):
 * field validation naming each bad field, patches, search-text sanitising
 * (no user input may become an FTS5 operator), list-query parsing, and the
 * event data round trip through the projection's decoder.
 */
#include "product.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (!v) fail_msg("bad test JSON: %s: %s", text, e.text);
    return v;
}

static int has_field(const sl_json_errors *errs, const char *field)
{
    for (size_t i = 0; i < errs->count; i++)
        if (strcmp(errs->items[i].field, field) == 0) return 1;
    return 0;
}

/* Validates `body` as a create command and expects exactly a failure naming `field`. */
static void create_rejects(const char *body, const char *field)
{
    json_t *b = parse(body);
    product_input in;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    int rc = product_read_create(b, &in, &errs);
    if (rc != SL_EINVAL || !has_field(&errs, field))
        fail_msg("%s: expected an error on '%s' (rc %d, %zu errors, first '%s')", body, field, rc,
                 errs.count, errs.count ? errs.items[0].field : "");
    json_decref(b);
}

static void test_field_checks(void **state)
{
    (void)state;
    assert_true(product_sku_valid("ABC-123_x"));
    assert_false(product_sku_valid(""));
    assert_false(product_sku_valid("has space"));
    assert_false(product_sku_valid("semi;colon"));
    char sku[70];
    memset(sku, 'A', 65);
    sku[65] = '\0';
    assert_false(product_sku_valid(sku));
    sku[64] = '\0';
    assert_true(product_sku_valid(sku));

    assert_true(product_category_valid("coffee", 6));
    assert_true(product_category_valid("home-office2", 12));
    assert_false(product_category_valid("Coffee", 6));
    assert_false(product_category_valid("-coffee", 7));
    assert_false(product_category_valid("coffee-", 7));
    assert_false(product_category_valid("a--b", 4));
    assert_false(product_category_valid("a b", 3));
    assert_false(product_category_valid("", 0));

    const char *id = "01900000-0000-7000-8000-000000000001";
    assert_true(product_id_valid(id, strlen(id)));
    assert_false(product_id_valid("01900000-0000-7000-8000-00000000000G", 36));
    assert_false(product_id_valid("01900000-0000-7000-8000-0000000000011", 37));
    assert_false(product_id_valid("0190000000000-7000-8000-000000000001-", 37));
}

static void test_read_create(void **state)
{
    (void)state;
    json_t *b = parse("{\"sku\":\"S-1\",\"name\":\"Kettle\",\"description\":\"Steel.\","
                      "\"category\":\"kitchen\",\"price\":{\"amount\":1200,\"currency\":\"JPY\"},"
                      "\"stock\":5}");
    product_input in;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    assert_int_equal(product_read_create(b, &in, &errs), 0);
    assert_string_equal(in.sku, "S-1");
    assert_int_equal(in.price_amount, 1200);
    assert_string_equal(in.currency, "JPY");
    assert_int_equal(in.stock, 5);
    json_decref(b);

    /* A bare integer price means JPY; description and stock are optional. */
    b = parse("{\"sku\":\"S-2\",\"name\":\"Pot\",\"category\":\"kitchen\",\"price\":900}");
    assert_int_equal(product_read_create(b, &in, &errs), 0);
    assert_int_equal(in.price_amount, 900);
    assert_string_equal(in.currency, "JPY");
    assert_string_equal(in.description, "");
    assert_int_equal(in.stock, 0);
    json_decref(b);

    const char *ok = "\"name\":\"N\",\"category\":\"c\",\"price\":100";
    char body[4096];
    snprintf(body, sizeof body, "{%s}", ok);
    create_rejects(body, "sku");
    snprintf(body, sizeof body, "{\"sku\":\"a b\",%s}", ok);
    create_rejects(body, "sku");
    snprintf(body, sizeof body, "{\"sku\":12,%s}", ok);
    create_rejects(body, "sku");
    create_rejects("{\"sku\":\"s\",\"category\":\"c\",\"price\":1}", "name");
    create_rejects("{\"sku\":\"s\",\"name\":\"\",\"category\":\"c\",\"price\":1}", "name");
    create_rejects("{\"sku\":\"s\",\"name\":\"   \",\"category\":\"c\",\"price\":1}", "name");
    create_rejects("{\"sku\":\"s\",\"name\":\"a\\u0001b\",\"category\":\"c\",\"price\":1}", "name");
    create_rejects("{\"sku\":\"s\",\"name\":\"n\",\"category\":\"Big\",\"price\":1}", "category");
    create_rejects("{\"sku\":\"s\",\"name\":\"n\",\"price\":1}", "category");
    create_rejects("{\"sku\":\"s\",\"name\":\"n\",\"category\":\"c\"}", "price");
    create_rejects("{\"sku\":\"s\",\"name\":\"n\",\"category\":\"c\",\"price\":0}", "price");
    create_rejects("{\"sku\":\"s\",\"name\":\"n\",\"category\":\"c\",\"price\":-5}", "price");
    create_rejects("{\"sku\":\"s\",\"name\":\"n\",\"category\":\"c\",\"price\":1000000001}",
                   "price");
    create_rejects("{\"sku\":\"s\",\"name\":\"n\",\"category\":\"c\",\"price\":12.5}", "price");
    create_rejects("{\"sku\":\"s\",\"name\":\"n\",\"category\":\"c\",\"price\":\"100\"}", "price");
    create_rejects("{\"sku\":\"s\",\"name\":\"n\",\"category\":\"c\",\"price\":{\"amount\":1,"
                   "\"currency\":\"USD\"}}",
                   "price.currency");
    create_rejects("{\"sku\":\"s\",\"name\":\"n\",\"category\":\"c\",\"price\":{\"amount\":0,"
                   "\"currency\":\"JPY\"}}",
                   "price.amount");
    create_rejects("{\"sku\":\"s\",\"name\":\"n\",\"category\":\"c\",\"price\":{\"currency\":"
                   "\"JPY\"}}",
                   "price.amount");
    snprintf(body, sizeof body, "{%s,\"sku\":\"s\",\"stock\":-1}", ok);
    create_rejects(body, "stock");
    snprintf(body, sizeof body, "{%s,\"sku\":\"s\",\"stock\":1000001}", ok);
    create_rejects(body, "stock");
    snprintf(body, sizeof body, "{%s,\"sku\":\"s\",\"colour\":\"red\"}", ok);
    create_rejects(body, "colour");

    /* Lengths count characters: 200 three-byte characters pass, 201 do not. */
    char name[2 * 201 * 3 + 1] = {0};
    for (int i = 0; i < 200; i++)
        memcpy(name + i * 3, "\xe8\x8c\xb6", 3);
    snprintf(body, sizeof body, "{\"sku\":\"s\",\"name\":\"%s\",\"category\":\"c\",\"price\":1}",
             name);
    b = parse(body);
    sl_json_errors_init(&errs);
    assert_int_equal(product_read_create(b, &in, &errs), 0);
    json_decref(b);
    memcpy(name + 600, "\xe8\x8c\xb6", 3);
    snprintf(body, sizeof body, "{\"sku\":\"s\",\"name\":\"%s\",\"category\":\"c\",\"price\":1}",
             name);
    create_rejects(body, "name");
    char desc[2100];
    memset(desc, 'd', 2001);
    desc[2001] = '\0';
    char big[2400];
    snprintf(big, sizeof big, "{%s,\"sku\":\"s\",\"description\":\"%s\"}", ok, desc);
    create_rejects(big, "description");
}

static void test_read_patch(void **state)
{
    (void)state;
    product_patch p;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    json_t *b = parse("{}");
    assert_int_equal(product_read_patch(b, &p, &errs), SL_EINVAL);
    assert_true(has_field(&errs, ""));
    json_decref(b);

    sl_json_errors_init(&errs);
    b = parse("{\"price\":{\"amount\":2500,\"currency\":\"JPY\"}}");
    assert_int_equal(product_read_patch(b, &p, &errs), 0);
    assert_true(p.has_price);
    assert_int_equal(p.price_amount, 2500);
    assert_null(p.name);
    json_decref(b);

    sl_json_errors_init(&errs);
    b = parse("{\"name\":\"\",\"category\":\"A\",\"price\":0,\"sku\":\"x\"}");
    assert_int_equal(product_read_patch(b, &p, &errs), SL_EINVAL);
    assert_true(has_field(&errs, "name"));
    assert_true(has_field(&errs, "category"));
    assert_true(has_field(&errs, "price"));
    assert_true(has_field(&errs, "sku")); /* the sku never changes */
    json_decref(b);

    product prod = {.price_amount = 100, .currency = "JPY", .version = 1};
    snprintf(prod.name, sizeof prod.name, "Old");
    snprintf(prod.category, sizeof prod.category, "c");
    product_patch same = {.name = "Old", .has_price = 1, .price_amount = 100, .currency = "JPY"};
    assert_int_equal(product_apply_patch(&prod, &same), 0);
    product_patch both = {.name = "New", .has_price = 1, .price_amount = 150, .currency = "JPY"};
    assert_int_equal(product_apply_patch(&prod, &both),
                     PRODUCT_CHANGED_NAME | PRODUCT_CHANGED_PRICE);
    assert_string_equal(prod.name, "New");
    assert_int_equal(prod.price_amount, 150);
}

static void test_search_terms(void **state)
{
    (void)state;
    char fts[PRODUCT_FTS_MAX], plain[PRODUCT_FTS_MAX];
    const char *t = "coffee OR tea";
    assert_int_equal(product_search_terms(t, strlen(t), fts, plain), 3);
    assert_string_equal(fts, "\"coffee\" \"OR\" \"tea\""); /* OR is a word, not an operator */
    assert_string_equal(plain, "coffee OR tea");

    t = "name:kettle* NEAR(\"a\" b) -x ^y {c}";
    size_t n = product_search_terms(t, strlen(t), fts, plain);
    assert_int_equal(n, 8);
    assert_string_equal(fts, "\"name\" \"kettle\" \"NEAR\" \"a\" \"b\" \"x\" \"y\" \"c\"");
    for (const char *p = fts; *p; p++)
        assert_true(strchr("*():^{}-+", *p) == NULL);

    t = "\"\"\" !!! ***";
    assert_int_equal(product_search_terms(t, strlen(t), fts, plain), 0);
    assert_string_equal(fts, "");

    t = "抹茶 ラテ";
    assert_int_equal(product_search_terms(t, strlen(t), fts, plain), 2);
    assert_string_equal(fts, "\"抹茶\" \"ラテ\"");

    /* At most 16 terms; a long term is cut at 64 bytes on a character boundary. */
    t = "a b c d e f g h i j k l m n o p q r s";
    assert_int_equal(product_search_terms(t, strlen(t), fts, plain), PRODUCT_Q_TERMS_MAX);
    char longterm[200] = {0};
    for (int i = 0; i < 30; i++)
        memcpy(longterm + i * 3, "\xe8\x8c\xb6", 3); /* 90 bytes */
    assert_int_equal(product_search_terms(longterm, 90, fts, plain), 1);
    assert_int_equal(strlen(plain), 63); /* 21 whole characters */
    assert_true(sl_utf8_valid(plain, strlen(plain)));
}

static int query_rejects(const char *qs, const char *field)
{
    product_query *q = malloc(sizeof *q);
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    int rc = product_query_parse((sl_slice){qs, strlen(qs)}, q, &errs);
    free(q);
    if (rc != SL_EINVAL || !has_field(&errs, field))
        fail_msg("%s: expected an error on %s (rc %d)", qs, field, rc);
    return 0;
}

static void test_query_parse(void **state)
{
    (void)state;
    product_query *q = malloc(sizeof *q);
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    const char *qs = "q=green+tea%21&category=tea&min_price=100&max_price=2000&sort=-price";
    assert_int_equal(product_query_parse((sl_slice){qs, strlen(qs)}, q, &errs), 0);
    assert_true(q->has_q);
    assert_string_equal(q->fts, "\"green\" \"tea\"");
    assert_string_equal(q->category, "tea");
    assert_int_equal(q->min_price, 100);
    assert_int_equal(q->max_price, 2000);
    assert_int_equal(q->sort, PRODUCT_SORT_PRICE_DESC);

    qs = "q=%20%20&sort=name";
    assert_int_equal(product_query_parse((sl_slice){qs, strlen(qs)}, q, &errs), 0);
    assert_false(q->has_q); /* nothing searchable: ignored */
    assert_int_equal(q->sort, PRODUCT_SORT_NAME);

    qs = "ids=01900000-0000-7000-8000-000000000001,01900000-0000-7000-8000-000000000002,"
         "01900000-0000-7000-8000-000000000001";
    assert_int_equal(product_query_parse((sl_slice){qs, strlen(qs)}, q, &errs), 0);
    assert_int_equal(q->nids, 2);
    free(q);

    query_rejects("sort=cheapest", "sort");
    query_rejects("min_price=-1", "min_price");
    query_rejects("max_price=abc", "max_price");
    query_rejects("min_price=10&max_price=5", "min_price");
    query_rejects("category=Tea", "category");
    query_rejects("q=%FF%FE", "q");
    query_rejects("q=%zz", "q");
    query_rejects("ids=nope", "ids");
    query_rejects("ids=", "ids");
    query_rejects("ids=01900000-0000-7000-8000-000000000001&category=tea", "ids");
    char longq[700] = "q=";
    memset(longq + 2, 'a', 201);
    query_rejects(longq, "q");
    char ids[5000] = "ids=";
    for (int i = 0; i <= PRODUCT_IDS_MAX; i++)
        snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s01900000-0000-7000-8000-%012d",
                 i ? "," : "", i);
    query_rejects(ids, "ids");
}

static void test_event_round_trip(void **state)
{
    (void)state;
    product p = {.id = "01900000-0000-7000-8000-000000000009",
                 .sku = "K-1",
                 .name = "Kettle",
                 .description = "Steel",
                 .category = "kitchen",
                 .price_amount = 3000,
                 .currency = "JPY",
                 .version = 1};
    json_t *d = product_event_created(&p, 7);
    assert_int_equal(json_integer_value(json_object_get(d, "initial_stock")), 7);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "price"), "amount")),
                     3000);
    product_event_view ev;
    char reason[128];
    assert_int_equal(product_event_decode(PRODUCT_EV_CREATED, d, PRODUCT_READ_CATALOG, &ev, reason,
                                          sizeof reason),
                     0);
    assert_string_equal(ev.sku, "K-1");
    assert_int_equal(ev.version, 1);
    assert_int_equal(ev.price_amount, 3000);
    json_decref(d);

    p.version = 2;
    d = product_event_updated(&p, PRODUCT_CHANGED_NAME | PRODUCT_CHANGED_CATEGORY);
    assert_int_equal(json_array_size(json_object_get(d, "changed")), 2);
    assert_int_equal(product_event_decode(PRODUCT_EV_UPDATED, d, PRODUCT_READ_CATALOG, &ev, reason,
                                          sizeof reason),
                     0);
    assert_string_equal(ev.name, "Kettle");
    assert_false(ev.has_price);
    json_decref(d);

    p.version = 3;
    p.price_amount = 3500;
    d = product_event_price_changed(&p, 3000, "JPY");
    assert_int_equal(product_event_decode(PRODUCT_EV_PRICE_CHANGED, d, PRODUCT_READ_CATALOG, &ev,
                                          reason, sizeof reason),
                     0);
    assert_int_equal(ev.price_amount, 3500);
    assert_int_equal(ev.version, 3);
    json_decref(d);

    d = parse("{\"product_id\":\"nope\",\"version\":1}");
    assert_int_equal(product_event_decode(PRODUCT_EV_UPDATED, d, PRODUCT_READ_CATALOG, &ev, reason,
                                          sizeof reason),
                     SL_EPARSE);
    json_decref(d);

    stock_event s;
    d = parse("{\"product_id\":\"01900000-0000-7000-8000-000000000009\",\"stock\":10,"
              "\"reserved\":3,\"available\":7}");
    assert_int_equal(product_stock_decode(d, &s, reason, sizeof reason), 0);
    assert_int_equal(s.available, 7);
    assert_int_equal(s.reserved, 3);
    json_decref(d);
    d = parse("{\"product_id\":\"01900000-0000-7000-8000-000000000009\",\"available\":-1}");
    assert_int_equal(product_stock_decode(d, &s, reason, sizeof reason), SL_EPARSE);
    json_decref(d);
}

static void test_demo_catalogue(void **state)
{
    (void)state;
    assert_int_equal(product_demo_count(), 36);
    const char *cats[8] = {0};
    size_t ncats = 0;
    for (size_t i = 0; i < product_demo_count(); i++) {
        product_input in;
        product_demo_get(i, &in);
        /* Every demo product passes the same validation as an admin's. */
        json_t *b = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "sku", in.sku, "name", in.name,
                              "description", in.description, "category", in.category, "price",
                              (json_int_t)in.price_amount, "stock", (json_int_t)in.stock);
        product_input back;
        sl_json_errors errs;
        sl_json_errors_init(&errs);
        assert_int_equal(product_read_create(b, &back, &errs), 0);
        json_decref(b);
        int seen = 0;
        for (size_t c = 0; c < ncats; c++)
            seen |= strcmp(cats[c], in.category) == 0;
        if (!seen) {
            assert_true(ncats < 8);
            cats[ncats++] = in.category;
        }
    }
    assert_int_equal(ncats, 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_field_checks),   cmocka_unit_test(test_read_create),
        cmocka_unit_test(test_read_patch),     cmocka_unit_test(test_search_terms),
        cmocka_unit_test(test_query_parse),    cmocka_unit_test(test_event_round_trip),
        cmocka_unit_test(test_demo_catalogue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
