/*
 * The product contract alone (src/services/product/contract/): the event
 * decoder for both readers (the catalogue projection requires what it
 * stores, a price replica only the id and the prices, each refusal naming
 * its field), the ids each reader accepts, and the replica's last-writer-wins
 * rule by event time. The replica's applier against a database is covered
 * by the cart's and the order's API suites.
 */
#include "product/contract/product_replica.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static json_t *parse(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    return v;
}

static json_t *g_data;

/* Decodes `text` (kept in g_data) as an event of `type`; returns the result code. */
static int decode(const char *type, const char *text, product_event_reader reader,
                  product_event_view *ev, char *reason, size_t cap)
{
    json_t *d = parse(text);
    json_decref(g_data); /* the decoded strings borrow from the data: kept until the next call */
    g_data = d;
    return product_event_decode(type, d, reader, ev, reason, cap);
}

static void test_replica_reads_id_name_and_price(void **state)
{
    (void)state;
    product_event_view ev;
    char reason[128] = "";
    json_t *d = parse("{\"product_id\":\"r1\",\"name\":\"Kettle\",\"price\":{\"amount\":1200,"
                      "\"currency\":\"JPY\",\"tax\":0},\"sku\":7}");
    assert_int_equal(
        product_event_decode(PRODUCT_EV_CREATED, d, PRODUCT_READ_REPLICA, &ev, reason, 128), 0);
    assert_string_equal(ev.product_id, "r1");
    assert_string_equal(ev.name, "Kettle");
    assert_true(ev.has_price);
    assert_int_equal(ev.price_amount, 1200);
    assert_string_equal(ev.currency, "JPY");
    assert_null(ev.sku); /* not read by a replica, so a bad one does not matter */
    assert_int_equal(ev.version, 0);
    json_decref(d);
    /* An update without a price keeps the price; a price change reads new_price. */
    assert_int_equal(decode(PRODUCT_EV_UPDATED, "{\"product_id\":\"r1\",\"name\":\"New\"}",
                            PRODUCT_READ_REPLICA, &ev, reason, sizeof reason),
                     0);
    assert_false(ev.has_price);
    assert_int_equal(decode(PRODUCT_EV_PRICE_CHANGED,
                            "{\"product_id\":\"r1\",\"old_price\":{\"amount\":1,\"currency\":"
                            "\"JPY\"},\"new_price\":{\"amount\":1500,\"currency\":\"JPY\"}}",
                            PRODUCT_READ_REPLICA, &ev, reason, sizeof reason),
                     0);
    assert_int_equal(ev.price_amount, 1500);
    assert_null(ev.name);
}

static void test_refusals_name_the_field(void **state)
{
    (void)state;
    static const struct {
        const char *type, *data, *reason;
    } cases[] = {
        {PRODUCT_EV_CREATED, "{\"name\":\"x\"}", "shop.product.created.v1: product_id is required"},
        {PRODUCT_EV_CREATED, "{\"product_id\":\"a b\"}",
         "shop.product.created.v1: product_id is not a valid id"},
        {PRODUCT_EV_CREATED,
         "{\"product_id\":\"r9\",\"price\":{\"amount\":-1,\"currency\":\"JPY\"}}", NULL},
        {PRODUCT_EV_CREATED,
         "{\"product_id\":\"r9\",\"price\":{\"amount\":1000000001,"
         "\"currency\":\"JPY\"}}",
         NULL},
        {PRODUCT_EV_CREATED,
         "{\"product_id\":\"r9\",\"price\":{\"amount\":1,\"currency\":\"jpy\"}}",
         "shop.product.created.v1: price.currency must be three upper-case letters (ISO 4217)"},
        {PRODUCT_EV_CREATED,
         "{\"product_id\":\"r9\",\"price\":{\"amount\":1,\"currency\":\"YENS\"}}", NULL},
        {PRODUCT_EV_CREATED, "{\"product_id\":\"r9\",\"price\":{\"amount\":1}}", NULL},
        {PRODUCT_EV_CREATED, "{\"product_id\":\"r9\",\"price\":\"1000\"}", NULL},
        {PRODUCT_EV_PRICE_CHANGED, "{\"product_id\":\"r1\"}",
         "shop.product.price_changed.v1: new_price is required"},
        {PRODUCT_EV_CREATED, "[1]", "shop.product.created.v1: data is missing or invalid"},
        {"shop.product.deleted.v1", "{\"product_id\":\"r1\"}",
         "shop.product.deleted.v1: type is not a product event"},
    };
    const char *field[] = {NULL,
                           NULL,
                           "price.amount",
                           "price.amount",
                           NULL,
                           "price.currency",
                           "price.currency",
                           "price",
                           NULL,
                           NULL,
                           NULL};
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        product_event_view ev;
        char reason[128] = "";
        assert_int_equal(
            decode(cases[i].type, cases[i].data, PRODUCT_READ_REPLICA, &ev, reason, sizeof reason),
            SL_EPARSE);
        if (cases[i].reason) assert_string_equal(reason, cases[i].reason);
        if (field[i]) {
            char want[64];
            snprintf(want, sizeof want, "%s: %s ", cases[i].type, field[i]);
            assert_memory_equal(reason, want, strlen(want));
        }
    }
    /* No reason buffer: still refused. */
    product_event_view ev;
    json_t *d = parse("{}");
    assert_int_equal(product_event_decode(NULL, d, PRODUCT_READ_REPLICA, &ev, NULL, 0), SL_EPARSE);
    json_decref(d);
}

static void test_catalog_requires_what_it_stores(void **state)
{
    (void)state;
    product_event_view ev;
    char reason[128] = "";
    /* What a replica accepts, the catalogue refuses without a version. */
    assert_int_equal(decode(PRODUCT_EV_UPDATED, "{\"product_id\":\"r1\",\"name\":\"New\"}",
                            PRODUCT_READ_CATALOG, &ev, reason, sizeof reason),
                     SL_EPARSE);
    assert_string_equal(reason, "shop.product.updated.v1: version is required");
    const char *full = "{\"product_id\":\"01900000-0000-7000-8000-000000000009\",\"sku\":\"K-1\","
                       "\"name\":\"Kettle\",\"description\":\"\",\"category\":\"kitchen\","
                       "\"price\":{\"amount\":3000,\"currency\":\"JPY\"},\"version\":2}";
    assert_int_equal(
        decode(PRODUCT_EV_CREATED, full, PRODUCT_READ_CATALOG, &ev, reason, sizeof reason), 0);
    assert_string_equal(ev.sku, "K-1");
    assert_int_equal(ev.version, 2);
    assert_true(ev.has_price);
    /* The catalogue takes no price and no sku from an update. */
    assert_int_equal(
        decode(PRODUCT_EV_UPDATED, full, PRODUCT_READ_CATALOG, &ev, reason, sizeof reason), 0);
    assert_false(ev.has_price);
    assert_null(ev.sku);
    assert_string_equal(ev.category, "kitchen");
    /* The catalogue requires the UUIDs the service issues; a replica takes any plain id. */
    const char *short_id = "{\"product_id\":\"r1\",\"name\":\"K\",\"description\":\"\","
                           "\"category\":\"c\",\"version\":3}";
    assert_int_equal(
        decode(PRODUCT_EV_UPDATED, short_id, PRODUCT_READ_CATALOG, &ev, reason, sizeof reason),
        SL_EPARSE);
    assert_string_equal(reason, "shop.product.updated.v1: product_id is not a valid id");
    assert_int_equal(
        decode(PRODUCT_EV_UPDATED, short_id, PRODUCT_READ_REPLICA, &ev, reason, sizeof reason), 0);
    /* A replica reading the same update takes its price. */
    assert_int_equal(
        decode(PRODUCT_EV_UPDATED, full, PRODUCT_READ_REPLICA, &ev, reason, sizeof reason), 0);
    assert_true(ev.has_price);
    assert_null(ev.category);
}

static void test_ids_and_event_order(void **state)
{
    (void)state;
    assert_true(product_id_valid("01900000-0000-7000-8000-000000000009", 36));
    assert_false(product_id_valid("0190a3f2-7c1e", 13));
    assert_true(product_id_text_valid("0190a3f2-7c1e", 13));
    assert_true(product_id_text_valid("01900000-0000-7000-8000-000000000009", 36));
    assert_false(product_id_text_valid("a/b", 3));
    assert_false(product_id_text_valid("", 0));
    assert_false(product_id_text_valid(NULL, 0));
    char longid[PRODUCT_ID_MAX + 2];
    memset(longid, 'a', sizeof longid);
    assert_true(product_id_text_valid(longid, PRODUCT_ID_MAX));
    assert_false(product_id_text_valid(longid, PRODUCT_ID_MAX + 1));
    assert_true(product_replica_newer(100, 100));
    assert_true(product_replica_newer(100, 101));
    assert_false(product_replica_newer(100, 99));
    assert_true(product_replica_newer(100, -1)); /* unknown time: applied */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replica_reads_id_name_and_price),
        cmocka_unit_test(test_refusals_name_the_field),
        cmocka_unit_test(test_catalog_requires_what_it_stores),
        cmocka_unit_test(test_ids_and_event_order),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    json_decref(g_data);
    return rc;
}
