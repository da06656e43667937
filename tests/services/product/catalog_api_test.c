/*
 * shoal-product over real sockets, on SQLite (argv[1] = sqlite) and
 * PostgreSQL (pg): the binary runs on a free port against a fresh database
 * with a test identity key. Admin commands, reads, filters, sort, pagination,
 * search order, the batch read, admin-only refusals, every endpoint's bad
 * input with the catalogue unchanged, stock events applied as the bus would,
 * the rebuild (admin endpoint and --rebuild-read-model) ending identical, and
 * the demo catalogue.
 */
#include "db_harness.h"
#include "harness.h"
#include "identity_harness.h"
#include "product.h"

#include <shoal/bus.h>
#include <shoal/identity.h>
#include <shoal/outbox.h>

#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

static struct {
    char url[600];
    char key_path[256];
    th_idkeys key;
    int port;
    pid_t pid;
    sl_db *db; /* the test's own connection to the service's database */
} g;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pid_t start_server(const char *url, int port, int demo)
{
    char portbuf[16], dbenv[700], keyenv[300];
    snprintf(portbuf, sizeof portbuf, "%d", port);
    snprintf(dbenv, sizeof dbenv, "SHOAL_DB__URL=%s", url);
    snprintf(keyenv, sizeof keyenv, "SHOAL_IDENTITY__KEY_FILE=%s", g.key_path);
    char *argv[] = {"shoal-product", "--port", portbuf, NULL};
    char *env[] = {dbenv, keyenv, "SHOAL_LOG__LEVEL=warn",
                   demo ? "SHOAL_PRODUCT__DEMO=true" : "SHOAL_PRODUCT__DEMO=false", NULL};
    pid_t pid = th_spawn(argv, env, "catalog_api_test.server.log");
    if (th_wait_port(port, 15000) != 0) fail_msg("shoal-product did not start (see the log)");
    return pid;
}

static int setup(void **state)
{
    (void)state;
    /* The fixture's directory for SQLite; a per-process file under /tmp for PostgreSQL. */
    snprintf(g.key_path, sizeof g.key_path, "/tmp/product-api-%ld.key", (long)getpid());
    char err[256];
    if (th_idkeys_make(g.key_path, "product", &g.key, err) != 0) return -1;
    harness_fresh_url(g.url, sizeof g.url);
    g.port = th_free_port();
    g.pid = start_server(g.url, g.port, 0);
    harness_open_url(g.url, &g.db);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sl_db_close(g.db);
    int st = th_stop(g.pid, SIGTERM, 10000);
    unlink(g.key_path);
    return (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) ? 0 : -1;
}

/* One request; role NULL sends no identity. Returns the status; *res (may be NULL) keeps the
 * response for the caller (th_response_free). */
static int call_port(int port, const char *method, const char *target, const char *role,
                     const char *body, th_response *res)
{
    static char raw[64 * 1024];
    char ident[512] = "";
    if (role) {
        sl_http_method m = strcmp(method, "GET") == 0    ? SL_HTTP_GET
                           : strcmp(method, "POST") == 0 ? SL_HTTP_POST
                                                         : SL_HTTP_PATCH;
        char proof[SL_IDENTITY_PROOF_MAX];
        const char *uid = strcmp(role, "admin") == 0 ? "u-admin" : "u-cust";
        assert_int_equal(th_idsign(&g.key, uid, role, m, target, NULL, body,
                                   body ? strlen(body) : 0, now_ms(), proof),
                         0);
        snprintf(ident, sizeof ident,
                 "x-user-id: %s\r\nx-user-role: %s\r\nx-shoal-identity: %s\r\n", uid, role, proof);
    }
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(raw, sizeof raw,
                     "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s%s"
                     "Content-Length: %zu\r\n\r\n",
                     method, target, ident, body ? "Content-Type: application/json\r\n" : "", blen);
    assert_true(n > 0 && (size_t)n + blen < sizeof raw);
    if (body) memcpy(raw + n, body, blen);
    th_response tmp;
    th_response *r = res ? res : &tmp;
    int status = th_roundtrip(port, raw, (size_t)n + blen, r, 10000);
    if (!res) th_response_free(&tmp);
    return status;
}

static int call(const char *method, const char *target, const char *role, const char *body,
                th_response *res)
{
    return call_port(g.port, method, target, role, body, res);
}

static json_t *body_json(const th_response *r)
{
    json_error_t e;
    json_t *v = json_loads(r->body ? r->body : "", 0, &e);
    if (!v) fail_msg("response is not JSON: %s", r->body ? r->body : "(none)");
    return v;
}

/* Calls and returns the parsed body, asserting the status. */
static json_t *call_json(const char *method, const char *target, const char *role, const char *body,
                         int want)
{
    th_response r;
    int st = call(method, target, role, body, &r);
    if (st != want)
        fail_msg("%s %s: status %d, want %d: %s", method, target, st, want, r.body ? r.body : "");
    json_t *v = body_json(&r);
    th_response_free(&r);
    return v;
}

/* Expects a 400 problem naming `field`. */
static void expect_400(const char *method, const char *target, const char *body, const char *field)
{
    th_response r;
    int st = call(method, target, "admin", body, &r);
    if (st != 400)
        fail_msg("%s %s %s: status %d: %s", method, target, body ? body : "", st,
                 r.body ? r.body : "");
    assert_string_equal(th_header(&r, "content-type"), "application/problem+json");
    json_t *v = body_json(&r);
    json_t *errs = json_object_get(v, "errors");
    int found = 0;
    for (size_t i = 0; i < json_array_size(errs); i++)
        found |= strcmp(json_string_value(json_object_get(json_array_get(errs, i), "field")),
                        field) == 0;
    if (!found)
        fail_msg("%s %s %s: no error on '%s': %s", method, target, body ? body : "", field, r.body);
    json_decref(v);
    th_response_free(&r);
}

static char *create(const char *sku, const char *name, const char *desc, const char *category,
                    int64_t price)
{
    char body[2048];
    snprintf(body, sizeof body,
             "{\"sku\":\"%s\",\"name\":\"%s\",\"description\":\"%s\",\"category\":\"%s\","
             "\"price\":{\"amount\":%lld,\"currency\":\"JPY\"},\"stock\":5}",
             sku, name, desc, category, (long long)price);
    json_t *v = call_json("POST", "/admin/products", "admin", body, 201);
    char *id = strdup(json_string_value(json_object_get(v, "product_id")));
    json_decref(v);
    return id;
}

/* The whole catalogue as the API lists it (the "database unchanged" probe). */
static char *snapshot(void)
{
    th_response r;
    assert_int_equal(call("GET", "/products?per_page=100&sort=name", NULL, NULL, &r), 200);
    char *s = strdup(r.body);
    th_response_free(&r);
    return s;
}

static char *dump_view(void)
{
    char *d = NULL;
    int rc = product_view_dump(g.db, &d, NULL);
    if (rc != 0) fail_msg("dump: %s", sl_db_errmsg(g.db));
    return d;
}

static const char *names_of(json_t *list, char *buf, size_t cap)
{
    buf[0] = '\0';
    json_t *items = json_object_get(list, "items");
    for (size_t i = 0; i < json_array_size(items); i++) {
        size_t off = strlen(buf);
        snprintf(buf + off, cap - off, "%s%s", i ? "," : "",
                 json_string_value(json_object_get(json_array_get(items, i), "sku")));
    }
    return buf;
}

static char *ids[8];

static void test_admin_only(void **state)
{
    (void)state;
    const char *body = "{\"sku\":\"X-1\",\"name\":\"X\",\"category\":\"misc\",\"price\":100}";
    assert_int_equal(call("POST", "/admin/products", NULL, body, NULL), 401);
    assert_int_equal(call("POST", "/admin/products", "customer", body, NULL), 403);
    const char *some = "/admin/products/01900000-0000-7000-8000-000000000001";
    assert_int_equal(call("PATCH", some, NULL, "{\"name\":\"Y\"}", NULL), 401);
    assert_int_equal(call("PATCH", some, "customer", "{\"name\":\"Y\"}", NULL), 403);
    assert_int_equal(call("POST", "/admin/read-model/rebuild", NULL, NULL, NULL), 401);
    assert_int_equal(call("POST", "/admin/read-model/rebuild", "customer", NULL, NULL), 403);
    /* A forged proof is no identity. */
    char raw[512];
    int n = snprintf(raw, sizeof raw,
                     "POST /admin/products HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                     "x-user-id: u\r\nx-user-role: admin\r\nx-shoal-identity: v1.%lld.%064d\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     (long long)now_ms(), 0, strlen(body), body);
    th_response r;
    assert_int_equal(th_roundtrip(g.port, raw, (size_t)n, &r, 5000), 401);
    th_response_free(&r);
    json_t *v = call_json("GET", "/products", NULL, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 0);
    json_decref(v);
}

static void test_create_read_update(void **state)
{
    (void)state;
    json_t *v = call_json("POST", "/admin/products", "admin",
                          "{\"sku\":\"LAMP-1\",\"name\":\"Camp Lantern\",\"description\":\"LED, "
                          "warm light.\",\"category\":\"outdoor\",\"price\":{\"amount\":4200,"
                          "\"currency\":\"JPY\"},\"stock\":12}",
                          201);
    ids[0] = strdup(json_string_value(json_object_get(v, "product_id")));
    assert_string_equal(json_string_value(json_object_get(v, "sku")), "LAMP-1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "price"), "amount")),
                     4200);
    json_decref(v);

    char path[128];
    snprintf(path, sizeof path, "/products/%s", ids[0]);
    v = call_json("GET", path, NULL, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(v, "name")), "Camp Lantern");
    assert_string_equal(json_string_value(json_object_get(v, "category")), "outdoor");
    assert_int_equal(json_integer_value(json_object_get(v, "available")), 0);
    json_decref(v);

    /* The created event carries what inventory needs to create the stock row. */
    sl_db_stmt *st;
    HARNESS_OK(g.db, sl_db_prepare(g.db, "SELECT envelope FROM outbox WHERE subject = ?", &st));
    HARNESS_OK(g.db, sl_db_bind_text(st, 1, ids[0], SIZE_MAX));
    assert_int_equal(sl_db_step(st), SL_DB_ROW);
    json_t *env = json_loads(sl_db_column_text(st, 0, NULL), 0, NULL);
    sl_db_stmt_done(st);
    assert_string_equal(json_string_value(json_object_get(env, "type")), PRODUCT_EV_CREATED);
    json_t *data = json_object_get(env, "data");
    assert_int_equal(json_integer_value(json_object_get(data, "initial_stock")), 12);
    assert_string_equal(json_string_value(json_object_get(data, "sku")), "LAMP-1");
    json_decref(env);

    /* 409: the sku is taken; nothing changes. */
    char *before = snapshot();
    th_response r;
    assert_int_equal(call("POST", "/admin/products", "admin",
                          "{\"sku\":\"LAMP-1\",\"name\":\"Other\",\"category\":\"misc\","
                          "\"price\":100}",
                          &r),
                     409);
    assert_non_null(strstr(r.body, "\"sku\""));
    th_response_free(&r);
    char *after = snapshot();
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* Update name, then price: reads follow. */
    snprintf(path, sizeof path, "/admin/products/%s", ids[0]);
    v = call_json("PATCH", path, "admin", "{\"name\":\"Camp Lantern XL\"}", 200);
    assert_string_equal(json_string_value(json_object_get(v, "name")), "Camp Lantern XL");
    json_decref(v);
    v = call_json("PATCH", path, "admin", "{\"price\":{\"amount\":3900,\"currency\":\"JPY\"}}",
                  200);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "price"), "amount")),
                     3900);
    json_decref(v);
    snprintf(path, sizeof path, "/products/%s", ids[0]);
    v = call_json("GET", path, NULL, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(v, "name")), "Camp Lantern XL");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "price"), "amount")),
                     3900);
    assert_string_equal(json_string_value(json_object_get(v, "description")), "LED, warm light.");
    json_decref(v);
    assert_int_equal(harness_int(g.db, "SELECT COUNT(*) FROM outbox WHERE type = "
                                       "'shop.product.price_changed.v1'"),
                     1);

    /* 404s. */
    assert_int_equal(
        call("GET", "/products/01900000-0000-7000-8000-000000000001", NULL, NULL, NULL), 404);
    assert_int_equal(call("GET", "/products/not-an-id", NULL, NULL, NULL), 404);
    assert_int_equal(call("PATCH", "/admin/products/01900000-0000-7000-8000-000000000001", "admin",
                          "{\"name\":\"Z\"}", NULL),
                     404);
}

static void test_list_filters_sort_search(void **state)
{
    (void)state;
    ids[1] = create("T-1", "Green Tea", "Sencha leaves", "tea", 1400);
    ids[2] = create("T-2", "Black Tea", "Assam, strong", "tea", 2200);
    ids[3] = create("K-1", "Kettle", "Boils water for tea", "kitchen", 6800);
    ids[4] = create("K-2", "Tea Cup", "Porcelain", "kitchen", 900);
    ids[5] = create("O-1", "Lantern Hook", "Hang a lantern", "outdoor", 500);
    char buf[512];
    json_t *v = call_json("GET", "/products?category=tea&sort=price", NULL, NULL, 200);
    assert_string_equal(names_of(v, buf, sizeof buf), "T-1,T-2");
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 2);
    json_decref(v);
    v = call_json("GET", "/products?sort=-price", NULL, NULL, 200);
    assert_string_equal(names_of(v, buf, sizeof buf), "K-1,LAMP-1,T-2,T-1,K-2,O-1");
    json_decref(v);
    v = call_json("GET", "/products?min_price=900&max_price=2200&sort=price", NULL, NULL, 200);
    assert_string_equal(names_of(v, buf, sizeof buf), "K-2,T-1,T-2");
    json_decref(v);
    v = call_json("GET", "/products?sort=name&page=2&per_page=2", NULL, NULL, 200);
    /* Names: Black Tea, Camp Lantern XL, Green Tea, Kettle, Lantern Hook, Tea Cup. */
    assert_string_equal(names_of(v, buf, sizeof buf), "T-1,K-1");
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 6);
    assert_int_equal(json_integer_value(json_object_get(v, "page")), 2);
    assert_int_equal(json_integer_value(json_object_get(v, "per_page")), 2);
    json_decref(v);
    v = call_json("GET", "/products?sort=name&page=9", NULL, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(v, "items")), 0);
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 6);
    json_decref(v);

    /* Relevance: a match in the name ranks above one in the description only. */
    v = call_json("GET", "/products?q=lantern", NULL, NULL, 200);
    names_of(v, buf, sizeof buf);
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 2);
    json_decref(v);
    v = call_json("GET", "/products?q=tea", NULL, NULL, 200);
    names_of(v, buf, sizeof buf);
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 4);
    /* Kettle only mentions tea in its description: last. */
    assert_non_null(strstr(buf, ",K-1"));
    assert_int_equal(strcmp(buf + strlen(buf) - 3, "K-1"), 0);
    json_decref(v);
    v = call_json("GET", "/products?q=TEA+kettle", NULL, NULL, 200);
    assert_string_equal(names_of(v, buf, sizeof buf), "K-1");
    json_decref(v);
    v = call_json("GET", "/products?q=tea&category=kitchen&sort=price", NULL, NULL, 200);
    assert_string_equal(names_of(v, buf, sizeof buf), "K-2,K-1");
    json_decref(v);
    /* FTS5 syntax in q is plain words: no error, no operator. */
    v = call_json("GET", "/products?q=tea%20OR%20NEAR(%22x%22*)%20-kettle", NULL, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 0);
    json_decref(v);
    v = call_json("GET", "/products?q=%22%22%22", NULL, NULL, 200); /* nothing searchable */
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 6);
    json_decref(v);

    /* Batch read: in the order asked, unknown ids absent. */
    char target[512];
    snprintf(target, sizeof target, "/products?ids=%s,01900000-0000-7000-8000-000000000001,%s",
             ids[3], ids[1]);
    v = call_json("GET", target, NULL, NULL, 200);
    assert_string_equal(names_of(v, buf, sizeof buf), "K-1,T-1");
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 2);
    json_decref(v);
}

static void test_bad_input_changes_nothing(void **state)
{
    (void)state;
    char *before = snapshot();
    char *dump_before = dump_view();
    int64_t events = harness_int(g.db, "SELECT COUNT(*) FROM es_events");
    const char *ok = "\"name\":\"N\",\"category\":\"misc\",\"price\":100";
    char b[4096];
    snprintf(b, sizeof b, "{%s}", ok);
    expect_400("POST", "/admin/products", b, "sku");
    snprintf(b, sizeof b, "{\"sku\":\"bad sku!\",%s}", ok);
    expect_400("POST", "/admin/products", b, "sku");
    expect_400("POST", "/admin/products", "{\"sku\":\"A\",\"category\":\"misc\",\"price\":1}",
               "name");
    expect_400("POST", "/admin/products",
               "{\"sku\":\"A\",\"name\":7,\"category\":\"misc\",\"price\":1}", "name");
    expect_400("POST", "/admin/products",
               "{\"sku\":\"A\",\"name\":\"N\",\"category\":\"Misc\",\"price\":1}", "category");
    expect_400("POST", "/admin/products",
               "{\"sku\":\"A\",\"name\":\"N\",\"category\":\"misc\",\"price\":-1}", "price");
    expect_400("POST", "/admin/products",
               "{\"sku\":\"A\",\"name\":\"N\",\"category\":\"misc\",\"price\":99999999999999}",
               "price");
    expect_400("POST", "/admin/products",
               "{\"sku\":\"A\",\"name\":\"N\",\"category\":\"misc\",\"price\":{\"amount\":5,"
               "\"currency\":\"EUR\"}}",
               "price.currency");
    snprintf(b, sizeof b, "{\"sku\":\"A\",%s,\"stock\":-3}", ok);
    expect_400("POST", "/admin/products", b, "stock");
    snprintf(b, sizeof b, "{\"sku\":\"A\",%s,\"stock\":100000000}", ok);
    expect_400("POST", "/admin/products", b, "stock");
    snprintf(b, sizeof b, "{\"sku\":\"A\",%s,\"extra\":true}", ok);
    expect_400("POST", "/admin/products", b, "extra");
    char longname[400];
    memset(longname, 'n', 201);
    longname[201] = '\0';
    snprintf(b, sizeof b, "{\"sku\":\"A\",\"name\":\"%s\",\"category\":\"misc\",\"price\":1}",
             longname);
    expect_400("POST", "/admin/products", b, "name");
    /* Invalid UTF-8 and malformed JSON: the body as a whole. */
    expect_400("POST", "/admin/products",
               "{\"sku\":\"A\",\"name\":\"\xff\xfe\",\"category\":\"misc\",\"price\":1}", "");
    expect_400("POST", "/admin/products", "{\"sku\":", "");

    char path[128];
    snprintf(path, sizeof path, "/admin/products/%s", ids[0]);
    expect_400("PATCH", path, "{}", "");
    expect_400("PATCH", path, "{\"name\":\"\"}", "name");
    expect_400("PATCH", path, "{\"price\":0}", "price");
    expect_400("PATCH", path, "{\"price\":{\"amount\":1000000001,\"currency\":\"JPY\"}}",
               "price.amount");
    expect_400("PATCH", path, "{\"sku\":\"NEW\"}", "sku");
    expect_400("PATCH", path, "{\"category\":\"no spaces\"}", "category");

    expect_400("GET", "/products?sort=cheap", NULL, "sort");
    expect_400("GET", "/products?min_price=-1", NULL, "min_price");
    expect_400("GET", "/products?max_price=1e3", NULL, "max_price");
    expect_400("GET", "/products?min_price=10&max_price=1", NULL, "min_price");
    expect_400("GET", "/products?category=UPPER", NULL, "category");
    expect_400("GET", "/products?page=0", NULL, "page");
    expect_400("GET", "/products?per_page=101", NULL, "per_page");
    /* A deep page is refused (page * per_page > 10000), pointing at the cursor. */
    expect_400("GET", "/products?page=1000000", NULL, "page");
    expect_400("GET", "/products?page=101&per_page=100&sort=price", NULL, "page");
    expect_400("GET", "/products?q=%ff", NULL, "q");
    char longq[512] = "/products?q=";
    memset(longq + strlen(longq), 'q', 201);
    expect_400("GET", longq, NULL, "q");
    expect_400("GET", "/products?ids=1,2", NULL, "ids");
    expect_400("GET", "/products?ids=01900000-0000-7000-8000-000000000001&sort=price", NULL, "ids");

    char *after = snapshot();
    assert_string_equal(before, after);
    char *dump_after = dump_view();
    assert_string_equal(dump_before, dump_after);
    assert_int_equal(harness_int(g.db, "SELECT COUNT(*) FROM es_events"), events);
    free(before);
    free(after);
    free(dump_before);
    free(dump_after);
}

/* inventory's stock_changed, applied as the host's bus runner will: inbox claim + apply. */
static void deliver_stock(const char *ev_id, const char *id, int64_t available)
{
    json_t *data = json_pack("{s:s,s:I,s:I,s:I}", "product_id", id, "stock", (json_int_t)available,
                             "reserved", (json_int_t)0, "available", (json_int_t)available);
    sl_bus_msg msg = {
        .topic = INVENTORY_EV_STOCK, .id = ev_id, .type = INVENTORY_EV_STOCK, .data = data};
    HARNESS_OK(g.db, sl_db_begin(g.db));
    int claimed = sl_inbox_claim(g.db, "product.shop.inventory.stock_changed.v1", ev_id,
                                 sl_clock_wall_ms(sl_clock_system()));
    assert_true(claimed >= 0);
    char reason[128];
    if (claimed) HARNESS_OK(g.db, product_apply_event(NULL, g.db, &msg, reason, sizeof reason));
    HARNESS_OK(g.db, sl_db_commit(g.db));
    json_decref(data);
}

static void test_stock_and_rebuild(void **state)
{
    (void)state;
    deliver_stock("inv-1", ids[1], 40);
    deliver_stock("inv-2", ids[3], 3);
    deliver_stock("inv-2", ids[3], 99); /* a redelivery of the same event: ignored */
    char path[128];
    snprintf(path, sizeof path, "/products/%s", ids[3]);
    json_t *v = call_json("GET", path, NULL, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(v, "available")), 3);
    json_decref(v);

    char *before = dump_view();
    char *list_before = snapshot();
    v = call_json("POST", "/admin/read-model/rebuild", "admin", NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(v, "products")), 6);
    assert_int_equal(json_integer_value(json_object_get(v, "events")), 8);
    json_decref(v);
    char *after = dump_view();
    assert_string_equal(before, after);
    free(after);

    /* The same from the command line, on a read model dropped by hand. */
    HARNESS_OK(g.db, sl_db_exec(g.db, "DELETE FROM catalog_view"));
    char dbenv[700];
    snprintf(dbenv, sizeof dbenv, "SHOAL_DB__URL=%s", g.url);
    char *argv[] = {"shoal-product", "--rebuild-read-model", NULL};
    char *env[] = {dbenv, NULL};
    pid_t pid = th_spawn(argv, env, "catalog_api_test.rebuild.log");
    int st = th_stop(pid, 0, 30000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    after = dump_view();
    assert_string_equal(before, after);
    char *list_after = snapshot();
    assert_string_equal(list_before, list_after);
    json_t *s = call_json("GET", "/products?q=lantern", NULL, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(s, "total")), 2);
    json_decref(s);
    free(before);
    free(after);
    free(list_before);
    free(list_after);
}

static void test_demo_catalogue(void **state)
{
    (void)state;
    char url[600];
    harness_fresh_url(url, sizeof url);
    int port = th_free_port();
    pid_t pid = start_server(url, port, 1);
    th_response r;
    assert_int_equal(call_port(port, "GET", "/products?per_page=100", NULL, NULL, &r), 200);
    json_t *v = body_json(&r);
    th_response_free(&r);
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 36);
    json_decref(v);
    assert_int_equal(call_port(port, "GET", "/products?category=coffee&sort=price", NULL, NULL, &r),
                     200);
    v = body_json(&r);
    th_response_free(&r);
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 6);
    json_t *first = json_array_get(json_object_get(v, "items"), 0);
    assert_string_equal(json_string_value(json_object_get(first, "sku")), "COF-005");
    json_decref(v);
    int st = th_stop(pid, SIGTERM, 10000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* A second start does not load it again. */
    pid = start_server(url, port, 1);
    assert_int_equal(call_port(port, "GET", "/products", NULL, NULL, &r), 200);
    v = body_json(&r);
    th_response_free(&r);
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 36);
    json_decref(v);
    st = th_stop(pid, SIGTERM, 10000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Walks `query` with the keyset cursor, 3 per page, creating a product of category "walk"
 * after each page when `insert` (named and priced to land anywhere in the order). Checks
 * that no product comes twice and that the order holds; returns the skus seen, joined. */
static void walk(const char *query, int insert, int by_price, int desc, char *seen, size_t cap)
{
    static int made;
    char target[5000];
    snprintf(target, sizeof target, "/products?category=walk&per_page=3%s", query);
    seen[0] = '\0';
    char last_name[900] = "", last_id[64] = "";
    int64_t last_price = desc ? INT64_MAX : -1;
    for (int pages = 0; pages < 50; pages++) {
        json_t *v = call_json("GET", target, NULL, NULL, 200);
        json_t *items = json_object_get(v, "items");
        for (size_t i = 0; i < json_array_size(items); i++) {
            json_t *it = json_array_get(items, i);
            const char *sku = json_string_value(json_object_get(it, "sku"));
            const char *name = json_string_value(json_object_get(it, "name"));
            const char *id = json_string_value(json_object_get(it, "product_id"));
            int64_t price =
                json_integer_value(json_object_get(json_object_get(it, "price"), "amount"));
            char key[80];
            snprintf(key, sizeof key, "|%s|", sku);
            if (strstr(seen, key)) fail_msg("%s: %s served twice", query, sku);
            size_t off = strlen(seen);
            snprintf(seen + off, cap - off, "%s", key);
            if (by_price) {
                int ok =
                    desc ? price < last_price || (price == last_price && strcmp(id, last_id) > 0)
                         : price > last_price || (price == last_price && strcmp(id, last_id) > 0);
                if (!ok) fail_msg("%s: %s out of order", query, sku);
                last_price = price;
            } else if (query[0] != '&' || strstr(query, "q=") == NULL) {
                int c = strcmp(name, last_name);
                if (c < 0 || (c == 0 && strcmp(id, last_id) <= 0))
                    fail_msg("%s: %s out of order", query, sku);
            }
            snprintf(last_name, sizeof last_name, "%s", name);
            snprintf(last_id, sizeof last_id, "%s", id);
        }
        json_t *next = json_object_get(v, "next_cursor");
        if (json_is_null(next)) {
            json_decref(v);
            return;
        }
        snprintf(target, sizeof target, "/products?category=walk&per_page=3%s&cursor=%s", query,
                 json_string_value(next));
        json_decref(v);
        if (insert) {
            char sku[32], name[64];
            made++;
            snprintf(sku, sizeof sku, "WI-%d", made);
            snprintf(name, sizeof name, "%c walk insert %d", "AMZ"[made % 3], made);
            free(create(sku, name, "inserted", "walk", 100 + (made % 3) * 1000));
        }
    }
    fail_msg("%s: the walk did not end", query);
}

static void test_list_cursor(void **state)
{
    (void)state;
    static const struct {
        const char *sku, *name;
        int64_t price;
    } base[] = {{"W-1", "Birch tray", 1000},    {"W-2", "Ash tray", 1000},
                {"W-3", "Cedar box", 500},      {"W-4", "Birch tray", 2500},
                {"W-5", "Elm stool", 1000},     {"W-6", "Fir crate", 700},
                {"W-7", "Oak walk bench", 4000}};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        free(create(base[i].sku, base[i].name, "walk test", "walk", base[i].price));
    static char seen[8192];
    const char *queries[] = {"&sort=price", "&sort=-price", "&sort=name", ""};
    for (size_t k = 0; k < 4; k++) {
        walk(queries[k], 1, k < 2, k == 1, seen, sizeof seen);
        for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) {
            char key[32];
            snprintf(key, sizeof key, "|%s|", base[i].sku);
            if (!strstr(seen, key)) fail_msg("%s: %s never served", queries[k], base[i].sku);
        }
    }
    /* Relevance order (a search): the cursor carries the position. */
    walk("&q=tray", 0, 0, 0, seen, sizeof seen);
    assert_non_null(strstr(seen, "|W-1|"));
    assert_non_null(strstr(seen, "|W-2|"));
    assert_non_null(strstr(seen, "|W-4|"));
    /* A cursor of another order, a forged one, or one with page: 400 naming cursor. */
    json_t *v = call_json("GET", "/products?category=walk&per_page=3&sort=price", NULL, NULL, 200);
    char target[5000];
    snprintf(target, sizeof target, "/products?sort=name&cursor=%s",
             json_string_value(json_object_get(v, "next_cursor")));
    expect_400("GET", target, NULL, "cursor");
    snprintf(target, sizeof target, "/products?sort=price&page=2&cursor=%s",
             json_string_value(json_object_get(v, "next_cursor")));
    expect_400("GET", target, NULL, "cursor");
    json_decref(v);
    expect_400("GET", "/products?cursor=!!", NULL, "cursor");
    expect_400("GET", "/products?sort=price&cursor=cHAKeAp5", NULL, "cursor");
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admin_only),
        cmocka_unit_test(test_create_read_update),
        cmocka_unit_test(test_list_filters_sort_search),
        cmocka_unit_test(test_bad_input_changes_nothing),
        cmocka_unit_test(test_stock_and_rebuild),
        cmocka_unit_test(test_demo_catalogue),
        cmocka_unit_test(test_list_cursor),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    for (size_t i = 0; i < SL_ARRAY_LEN(ids); i++)
        free(ids[i]);
    harness_done();
    return rc;
}
