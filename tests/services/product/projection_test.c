/*
 * The command side and the projection over a real SQLite database (the same
 * code runs on PostgreSQL in catalog_api_test): commands write the write
 * model, the event store and the outbox but never the view; events (from the
 * event store's catch-up subscription or as bus messages) build the view;
 * duplicates apply once; stock events set `available` whatever the order;
 * and a rebuild from the events ends byte-identical.
 */
#include "db_harness.h"
#include "product.h"

#include <shoal/bus.h>
#include <shoal/outbox.h>

extern const sl_migration_set sl_migrations_product;

static sl_db *fresh_db(void)
{
    sl_db *db = harness_fresh_lib(NULL);
    HARNESS_OK(db, sl_db_migrate(db, &sl_migrations_product, NULL));
    return db;
}

static const product_cmd_ctx ctx = {.source = "/shoal/product"};

static product *create(sl_db *db, const char *sku, const char *name, const char *category,
                       int64_t price)
{
    static product p;
    product_input in = {.sku = sku,
                        .name = name,
                        .description = "",
                        .category = category,
                        .price_amount = price,
                        .currency = "JPY",
                        .stock = 3};
    HARNESS_OK(db, product_cmd_create(db, &ctx, &in, &p));
    return &p;
}

static int64_t count(sl_db *db, const char *table)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", table);
    return harness_int(db, sql);
}

static void catch_up(sl_db *db)
{
    size_t n;
    HARNESS_OK(db, product_projection_catch_up(db, 100, &n));
}

static int keep_row(void *data, const product_row *r)
{
    product_row *out = data;
    *out = *r;
    out->name = strdup(r->name);
    out->product_id = out->sku = out->description = out->category = out->currency = NULL;
    return 0;
}

static int count_rows(void *data, const product_row *r)
{
    (void)r;
    (*(int *)data)++;
    return 0;
}

/* Reads the view row of `id`: returns 0 and its name (caller frees), price, available. */
static int view_row(sl_db *db, const char *id, product_row *r)
{
    memset(r, 0, sizeof *r);
    return store_view_get(db, id, keep_row, r);
}

/* Applies `data` as a bus message with event id `ev_id` the way the host's runner does:
 * inbox claim and apply in one transaction. Returns 1 applied, 0 duplicate. */
static int deliver(sl_db *db, const char *ev_id, const char *type, json_t *data)
{
    sl_bus_msg msg = {.topic = type, .id = ev_id, .type = type, .data = data};
    HARNESS_OK(db, sl_db_begin(db));
    int claimed = sl_inbox_claim(db, "product.test", ev_id, sl_clock_wall_ms(sl_clock_system()));
    assert_true(claimed >= 0);
    char reason[128] = "";
    if (claimed) {
        int rc = product_apply_event(NULL, db, &msg, reason, sizeof reason);
        if (rc != 0) {
            sl_db_rollback(db);
            return rc;
        }
    }
    HARNESS_OK(db, sl_db_commit(db));
    return claimed;
}

static json_t *stock(const char *id, int64_t available)
{
    return json_pack("{s:s,s:I,s:I,s:I}", "product_id", id, "stock", (json_int_t)(available + 1),
                     "reserved", (json_int_t)1, "available", (json_int_t)available);
}

static void test_command_side_never_writes_the_view(void **state)
{
    (void)state;
    sl_db *db = fresh_db();
    product *p = create(db, "K-1", "Kettle", "kitchen", 3000);
    char id[SL_DB_UUID_STR];
    memcpy(id, p->id, sizeof id);
    assert_int_equal(count(db, "products"), 1);
    assert_int_equal(count(db, "es_events"), 1);
    assert_int_equal(count(db, "outbox"), 1);
    assert_int_equal(count(db, "catalog_view"), 0);
    /* The same event id in the event store and the outbox. */
    assert_int_equal(harness_int(db, "SELECT COUNT(*) FROM es_events e JOIN outbox o ON o.id = "
                                     "e.id WHERE e.stream LIKE 'product-%'"),
                     1);
    catch_up(db);
    product_row r;
    assert_int_equal(view_row(db, id, &r), 0);
    assert_string_equal(r.name, "Kettle");
    assert_int_equal(r.price_amount, 3000);
    assert_int_equal(r.available, 0); /* until inventory says otherwise */
    assert_int_equal(r.version, 1);
    free((char *)r.name);

    /* A patch that changes name and price: two events, versions 2 and 3. */
    product_patch patch = {
        .name = "Big Kettle", .has_price = 1, .price_amount = 3500, .currency = "JPY"};
    product out;
    HARNESS_OK(db, product_cmd_update(db, &ctx, id, &patch, &out));
    assert_int_equal(out.version, 3);
    assert_int_equal(count(db, "es_events"), 3);
    assert_int_equal(count(db, "outbox"), 3);
    /* The same patch again changes nothing and records nothing. */
    HARNESS_OK(db, product_cmd_update(db, &ctx, id, &patch, &out));
    assert_int_equal(out.version, 3);
    assert_int_equal(count(db, "es_events"), 3);
    catch_up(db);
    assert_int_equal(view_row(db, id, &r), 0);
    assert_string_equal(r.name, "Big Kettle");
    assert_int_equal(r.price_amount, 3500);
    assert_int_equal(r.version, 3);
    free((char *)r.name);

    const char *unknown = "01900000-0000-7000-8000-000000000001";
    assert_int_equal(product_cmd_update(db, &ctx, unknown, &patch, &out), SL_ENOTFOUND);
    sl_db_close(db);
}

static void test_sku_conflict_writes_nothing(void **state)
{
    (void)state;
    sl_db *db = fresh_db();
    create(db, "DUP", "One", "misc", 100);
    product_input in = {.sku = "DUP",
                        .name = "Two",
                        .description = "",
                        .category = "misc",
                        .price_amount = 200,
                        .currency = "JPY"};
    product p;
    assert_int_equal(product_cmd_create(db, &ctx, &in, &p), SL_ECONFLICT);
    assert_int_equal(count(db, "products"), 1);
    assert_int_equal(count(db, "es_events"), 1);
    assert_int_equal(count(db, "outbox"), 1);
    sl_db_close(db);
}

static void test_bus_events_apply_once(void **state)
{
    (void)state;
    sl_db *db = fresh_db();
    product p = {.id = "01900000-0000-7000-8000-0000000000aa",
                 .sku = "B-1",
                 .name = "Bag",
                 .description = "Canvas",
                 .category = "outdoor",
                 .price_amount = 5000,
                 .currency = "JPY",
                 .version = 1};
    json_t *created = product_event_created(&p, 4);
    assert_int_equal(deliver(db, "ev-1", PRODUCT_EV_CREATED, created), 1);
    assert_int_equal(deliver(db, "ev-1", PRODUCT_EV_CREATED, created), 0); /* redelivery */
    assert_int_equal(count(db, "catalog_view"), 1);

    p.version = 2;
    p.price_amount = 4500;
    json_t *priced = product_event_price_changed(&p, 5000, "JPY");
    assert_int_equal(deliver(db, "ev-2", PRODUCT_EV_PRICE_CHANGED, priced), 1);
    /* Even without the inbox (say, the same event through the event store and the bus), the
     * version check applies an event once: a replayed older event changes nothing. */
    p.version = 3;
    snprintf(p.name, sizeof p.name, "Tote");
    json_t *renamed = product_event_updated(&p, PRODUCT_CHANGED_NAME);
    assert_int_equal(deliver(db, "ev-3", PRODUCT_EV_UPDATED, renamed), 1);
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, product_project_event(db, PRODUCT_EV_PRICE_CHANGED, priced, NULL, 0));
    HARNESS_OK(db, product_project_event(db, PRODUCT_EV_CREATED, created, NULL, 0));
    HARNESS_OK(db, sl_db_commit(db));
    product_row r;
    assert_int_equal(view_row(db, p.id, &r), 0);
    assert_string_equal(r.name, "Tote");
    assert_int_equal(r.price_amount, 4500);
    assert_int_equal(r.version, 3);
    free((char *)r.name);

    /* Data that can never apply is refused (dead-lettered by the runner); nothing changes. */
    json_t *bad = json_pack("{s:s,s:i}", "product_id", "x", "version", 9);
    assert_int_equal(deliver(db, "ev-4", PRODUCT_EV_UPDATED, bad), SL_EPARSE);
    assert_int_equal(harness_int(db, "SELECT COUNT(*) FROM inbox WHERE event_id = 'ev-4'"), 0);
    json_decref(bad);
    json_decref(created);
    json_decref(priced);
    json_decref(renamed);
    sl_db_close(db);
}

static void test_stock_events(void **state)
{
    (void)state;
    sl_db *db = fresh_db();
    /* A stock figure may arrive before the product reaches the view. */
    product *p = create(db, "S-1", "Stove", "outdoor", 5400);
    char id[SL_DB_UUID_STR];
    memcpy(id, p->id, sizeof id);
    json_t *s = stock(id, 13);
    assert_int_equal(deliver(db, "st-1", INVENTORY_EV_STOCK, s), 1);
    json_decref(s);
    assert_int_equal(count(db, "catalog_view"), 0);
    catch_up(db);
    product_row r;
    assert_int_equal(view_row(db, id, &r), 0);
    assert_int_equal(r.available, 13);
    free((char *)r.name);
    s = stock(id, 2);
    assert_int_equal(deliver(db, "st-2", INVENTORY_EV_STOCK, s), 1);
    assert_int_equal(deliver(db, "st-2", INVENTORY_EV_STOCK, s), 0);
    json_decref(s);
    assert_int_equal(view_row(db, id, &r), 0);
    assert_int_equal(r.available, 2);
    assert_int_equal(r.version, 1); /* stock does not move the product's version */
    free((char *)r.name);
    sl_db_close(db);
}

static void test_rebuild_is_identical(void **state)
{
    (void)state;
    sl_db *db = fresh_db();
    size_t created = 0;
    HARNESS_OK(db, product_demo_load(db, &ctx, &created));
    assert_int_equal(created, 36);
    HARNESS_OK(db, product_demo_load(db, &ctx, &created)); /* only on an empty catalogue */
    assert_int_equal(created, 0);
    catch_up(db);
    /* Some history: updates, price changes and stock figures. */
    char ids[3][SL_DB_UUID_STR];
    for (int i = 0; i < 3; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT id FROM products ORDER BY sku LIMIT 1 OFFSET %d", i * 7);
        sl_db_stmt *st;
        HARNESS_OK(db, sl_db_prepare(db, sql, &st));
        assert_int_equal(sl_db_step(st), SL_DB_ROW);
        memcpy(ids[i], sl_db_column_text(st, 0, NULL), SL_DB_UUID_STR);
        sl_db_stmt_done(st);
        product_patch patch = {.description = "Revised description.",
                               .has_price = i != 1,
                               .price_amount = 777 + i,
                               .currency = "JPY"};
        product out;
        HARNESS_OK(db, product_cmd_update(db, &ctx, ids[i], &patch, &out));
        char ev[16];
        snprintf(ev, sizeof ev, "stock-%d", i);
        json_t *s = stock(ids[i], 10 * i + 1);
        assert_int_equal(deliver(db, ev, INVENTORY_EV_STOCK, s), 1);
        json_decref(s);
    }
    catch_up(db);
    char *before = NULL, *after = NULL;
    HARNESS_OK(db, product_view_dump(db, &before, NULL));
    assert_int_equal(count(db, "catalog_view"), 36);
    assert_non_null(strstr(before, "Revised description.|books|"));

    size_t events = 0;
    HARNESS_OK(db, product_rebuild_read_model(db, &events));
    assert_int_equal(events, 36 + 5);
    HARNESS_OK(db, product_view_dump(db, &after, NULL));
    assert_string_equal(before, after);
    free(after);

    /* Dropped by hand, then rebuilt: identical again, and search works on the new rows. */
    HARNESS_OK(db, sl_db_exec(db, "DELETE FROM catalog_view"));
    assert_int_equal(count(db, "catalog_view"), 0);
    HARNESS_OK(db, product_rebuild_read_model(db, &events));
    HARNESS_OK(db, product_view_dump(db, &after, NULL));
    assert_string_equal(before, after);
    product_query q;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    const char *qs = "q=matcha";
    assert_int_equal(product_query_parse((sl_slice){qs, strlen(qs)}, &q, &errs), 0);
    int64_t total = 0;
    int rows = 0;
    HARNESS_OK(db, store_view_list(db, &q, count_rows, &rows, &total));
    assert_int_equal(total, 3); /* Uji Matcha, Genmaicha with Matcha, Bamboo Matcha Whisk */
    assert_int_equal(rows, 3);
    /* The projection's later catch-up over the same events changes nothing. */
    catch_up(db);
    free(after);
    HARNESS_OK(db, product_view_dump(db, &after, NULL));
    assert_string_equal(before, after);
    free(before);
    free(after);
    sl_db_close(db);
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_command_side_never_writes_the_view),
        cmocka_unit_test(test_sku_conflict_writes_nothing),
        cmocka_unit_test(test_bus_events_apply_once),
        cmocka_unit_test(test_stock_events),
        cmocka_unit_test(test_rebuild_is_identical),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    harness_done();
    return rc;
}
