/*
 * shoal-product: the catalogue service definition. Internal HTTP API (the
 * gateway maps /api/v1/products… and /api/v1/admin/products… here):
 *
 *   GET   /products?q=&category=&min_price=&max_price=&sort=&page=&per_page=
 *   GET   /products?ids=<id>,<id>,…          batch read (≤ 100; unknown ids absent)
 *   GET   /products/{id}
 *   POST  /admin/products                    admin: create (201; 409 sku taken)
 *   PATCH /admin/products/{id}               admin: update (200; 404)
 *   POST  /admin/read-model/rebuild          admin: drop and rebuild catalog_view
 *
 * Reads come from the read model only; admin writes go through commands.c,
 * after which the projection runs at once on the same worker (and on a timer
 * on worker 0), so reads follow writes closely. Configuration: `product.demo`
 * (bool, default false) loads the demo catalogue into an empty write model at
 * start. docs/services/product.md has the details.
 */
#include "product.h"

#include <shoal/config.h>
#include <shoal/cursor.h>
#include <shoal/identity.h>
#include <shoal/log.h>
#include <shoal/service.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;
extern const sl_migration_set sl_migrations_product;

#define PROJECTION_POLL_MS 1000
#define CATCH_UP_ROUNDS    64

typedef struct product_worker {
    uv_timer_t timer; /* worker 0: projection safety poll */
    int has_timer;
} product_worker;

/* ---- helpers ------------------------------------------------------------------------------- */

/* 404 for an id that is malformed or names no product: the same answer either way. */
static void respond_not_found(sl_http_req *req)
{
    sl_respond_field(req, 404, "id", "no such product", "no such resource");
}

/* Runs the projection after a command so the change shows in reads at once. A failure is only
 * logged: the timer on worker 0 catches up later. */
static void project_now(sl_svc_worker *w, sl_http_req *req)
{
    size_t n = 0;
    int rc = product_projection_catch_up(sl_svc_worker_db(w), CATCH_UP_ROUNDS, &n);
    if (rc != 0)
        SL_LOG_WARN(sl_svc_worker_log(w), req ? sl_req_trace(req) : NULL,
                    "catalogue projection failed; it will catch up later",
                    SL_LOG_STR("code", sl_errname(rc)));
}

static int64_t local_available(sl_db *db, const char *id)
{
    int64_t a = 0;
    return store_stock_available(db, id, &a) == 0 ? a : 0;
}

static product_cmd_ctx cmd_ctx(sl_http_req *req)
{
    return (product_cmd_ctx){.source = "/shoal/product",
                             .traceparent = req->traceparent[0] ? req->traceparent : NULL};
}

/* ---- queries ------------------------------------------------------------------------------- */

static int add_item(void *data, const product_row *r)
{
    json_t *item = product_row_json(r);
    if (!item) return SL_ENOMEM;
    return json_array_append_new(data, item) == 0 ? 0 : SL_ENOMEM;
}

static int add_keyed(void *data, const product_row *r)
{
    json_t *item = product_row_json(r);
    if (!item) return SL_ENOMEM;
    return json_object_set_new(data, r->product_id, item) == 0 ? 0 : SL_ENOMEM;
}

/* The cursor kind of a query's order: name, price up, price down, relevance (offset). */
static const char *cursor_kind(const product_query *q)
{
    switch (q->sort) {
    case PRODUCT_SORT_PRICE:
        return "pp";
    case PRODUCT_SORT_PRICE_DESC:
        return "pd";
    case PRODUCT_SORT_NAME:
        return "pn";
    case PRODUCT_SORT_DEFAULT:
        break;
    }
    return q->has_q ? "pr" : "pn";
}

/* Reads ?cursor= into q (after the other parameters). Returns 0 or SL_EINVAL (in errs). */
static int read_cursor(const sl_http_req *req, product_query *q, sl_json_errors *errs)
{
    sl_slice v;
    if (!sl_http_query_param(req->query, "cursor", &v)) return 0;
    sl_cursor c;
    const char *why = "is not a next_cursor of this list and sort order";
    int ok = sl_cursor_decode(v.ptr, v.len, &c) == 0 && strcmp(c.f[0], cursor_kind(q)) == 0;
    char *end = NULL;
    if (ok && strcmp(c.f[0], "pr") == 0) {
        ok = c.n == 2;
        q->after_offset = ok ? strtoll(c.f[1], &end, 10) : 0;
        ok = ok && *end == '\0' && q->after_offset > 0;
    } else if (ok) {
        ok = c.n == 3 && strlen(c.f[2]) == SL_DB_UUID_STR - 1;
        if (ok && c.f[0][1] == 'n') {
            ok = strlen(c.f[1]) < sizeof q->after_name;
            if (ok) snprintf(q->after_name, sizeof q->after_name, "%s", c.f[1]);
        } else if (ok) {
            q->after_price = strtoll(c.f[1], &end, 10);
            ok = *end == '\0' && c.f[1][0] != '\0';
        }
        if (ok) memcpy(q->after_id, c.f[2], sizeof q->after_id); /* 36 bytes and its NUL */
    }
    if (ok && q->nids) ok = 0, why = "cannot be combined with ids";
    if (ok && q->page != 1) ok = 0, why = "cannot be combined with page";
    if (!ok) {
        sl_json_errors_add(errs, "cursor", "%s", why);
        return SL_EINVAL;
    }
    q->has_after = 1;
    return 0;
}

/* A page being listed, and the sort key of its last row (for next_cursor). */
typedef struct page_out {
    json_t *items;
    size_t n;
    char name[PRODUCT_NAME_MAX * 4 + 1];
    int64_t price;
    char id[SL_DB_UUID_STR];
} page_out;

static int add_page_item(void *data, const product_row *r)
{
    page_out *p = data;
    p->n++;
    snprintf(p->name, sizeof p->name, "%s", r->name);
    snprintf(p->id, sizeof p->id, "%s", r->product_id);
    p->price = r->price_amount;
    return add_item(p->items, r);
}

/* next_cursor after a full page, else JSON null. */
static json_t *next_cursor(const product_query *q, const page_out *p)
{
    if (q->nids || p->n < (size_t)q->per_page) return json_null();
    const char *kind = cursor_kind(q);
    char a[32], out[SL_CURSOR_MAX + 1];
    const char *f[3] = {kind, a, p->id};
    size_t n = 3;
    if (kind[1] == 'r') {
        int64_t done = q->has_after ? q->after_offset : (q->page - 1) * q->per_page;
        snprintf(a, sizeof a, "%lld", (long long)(done + (int64_t)p->n));
        n = 2;
    } else if (kind[1] == 'n') {
        f[1] = p->name;
    } else {
        snprintf(a, sizeof a, "%lld", (long long)p->price);
    }
    return sl_cursor_encode(f, n, out, sizeof out) == 0 ? json_string(out) : json_null();
}

static void h_list(sl_http_req *req, sl_svc_worker *w)
{
    product_query *q = malloc(sizeof *q);
    json_t *items = json_array(), *found = json_object();
    if (!q || !items || !found) {
        sl_respond_problem_ex(req, 500, "out of memory", NULL);
        goto out;
    }
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    int bad = product_query_parse(req->query, q, &errs) != 0;
    bad |= sl_req_page(req, &q->page, &q->per_page, &errs) != 0 ||
           sl_page_depth_check(q->page, q->per_page, &errs) != 0;
    q->has_after = 0;
    if (!bad) bad = read_cursor(req, q, &errs) != 0;
    if (bad) {
        sl_respond_problem_ex(req, 400, "the query is invalid", &errs);
        goto out;
    }
    int64_t total = 0;
    page_out po = {.items = items};
    int rc = store_view_list(sl_svc_worker_db(w), q, q->nids ? add_keyed : add_page_item,
                             q->nids ? (void *)found : (void *)&po, &total);
    if (rc != 0) {
        sl_respond_db_error(req, rc, "listing products failed");
        goto out;
    }
    /* A batch answers in the order asked, each id once, unknown ids left out. */
    for (size_t i = 0; i < q->nids; i++) {
        json_t *it = json_object_get(found, q->ids[i]);
        if (it) json_array_append(items, it);
    }
    if (q->nids) {
        q->page = 1;
        q->per_page = (int64_t)q->nids;
    }
    sl_respond_owned(req, 200,
                     json_pack("{s:O,s:I,s:I,s:I,s:o}", "items", items, "page", (json_int_t)q->page,
                               "per_page", (json_int_t)q->per_page, "total", (json_int_t)total,
                               "next_cursor", next_cursor(q, &po)));
out:
    json_decref(items);
    json_decref(found);
    free(q);
}

static int keep_one(void *data, const product_row *r)
{
    json_t **out = data;
    *out = product_row_json(r);
    return *out ? 0 : SL_ENOMEM;
}

static void h_get(sl_http_req *req, sl_svc_worker *w)
{
    char id[SL_DB_UUID_STR];
    if (sl_req_path_id(req, "id", "product", product_id_valid, id, sizeof id) != 0) return;
    json_t *item = NULL;
    int rc = store_view_get(sl_svc_worker_db(w), id, keep_one, &item);
    if (rc == SL_ENOTFOUND)
        respond_not_found(req);
    else if (rc != 0)
        sl_respond_db_error(req, rc, "reading a product failed");
    else
        sl_respond_owned(req, 200, item);
    if (rc != 0) json_decref(item);
}

/* ---- commands ------------------------------------------------------------------------------ */

static void h_create(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity who;
    if (sl_req_require_identity(req, 1, &who) != 0) return;
    json_t *body;
    if (sl_req_json_body(req, &body) != 0) return;
    product *p = malloc(sizeof *p);
    product_input in;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (!p) {
        sl_respond_problem_ex(req, 500, "out of memory", NULL);
    } else if (product_read_create(body, &in, &errs) != 0) {
        sl_respond_invalid(req, &errs);
    } else {
        product_cmd_ctx c = cmd_ctx(req);
        sl_db *db = sl_svc_worker_db(w);
        int rc = product_cmd_create(db, &c, &in, p);
        if (rc == SL_ECONFLICT) {
            sl_json_errors_add(&errs, "sku", "is already taken");
            sl_respond_problem_ex(req, 409, "a product with this sku exists", &errs);
        } else if (rc != 0) {
            sl_respond_db_error(req, rc, "creating a product failed");
        } else {
            SL_LOG_INFO(sl_svc_worker_log(w), sl_req_trace(req), "product created",
                        SL_LOG_STR("product_id", p->id), SL_LOG_STR("sku", p->sku),
                        SL_LOG_STR("by", who.user_id));
            project_now(w, req);
            sl_respond_owned(req, 201, product_json(p, local_available(db, p->id)));
        }
    }
    free(p);
    json_decref(body);
}

static void h_update(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity who;
    if (sl_req_require_identity(req, 1, &who) != 0) return;
    char id[SL_DB_UUID_STR];
    if (sl_req_path_id(req, "id", "product", product_id_valid, id, sizeof id) != 0) return;
    json_t *body;
    if (sl_req_json_body(req, &body) != 0) return;
    product *p = malloc(sizeof *p);
    product_patch patch;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (!p) {
        sl_respond_problem_ex(req, 500, "out of memory", NULL);
    } else if (product_read_patch(body, &patch, &errs) != 0) {
        sl_respond_invalid(req, &errs);
    } else {
        product_cmd_ctx c = cmd_ctx(req);
        sl_db *db = sl_svc_worker_db(w);
        int rc = product_cmd_update(db, &c, id, &patch, p);
        if (rc == SL_ENOTFOUND) {
            respond_not_found(req);
        } else if (rc == SL_ECONFLICT) {
            sl_respond_problem_ex(req, 409, "the product changed concurrently; retry", NULL);
        } else if (rc != 0) {
            sl_respond_db_error(req, rc, "updating a product failed");
        } else {
            project_now(w, req);
            sl_respond_owned(req, 200, product_json(p, local_available(db, p->id)));
        }
    }
    free(p);
    json_decref(body);
}

static void h_rebuild(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity who;
    if (sl_req_require_identity(req, 1, &who) != 0) return;
    size_t events = 0;
    sl_db *db = sl_svc_worker_db(w);
    int rc = product_rebuild_read_model(db, &events);
    int64_t products = 0;
    if (rc == 0) rc = store_product_count(db, &products);
    if (rc != 0) {
        sl_respond_db_error(req, rc, "rebuilding the read model failed");
        return;
    }
    SL_LOG_INFO(sl_svc_worker_log(w), sl_req_trace(req), "read model rebuilt",
                SL_LOG_INT("events", (int64_t)events), SL_LOG_STR("by", who.user_id));
    sl_respond_owned(
        req, 200,
        json_pack("{s:I,s:I}", "events", (json_int_t)events, "products", (json_int_t)products));
}

/* ---- hosting ------------------------------------------------------------------------------- */

static void on_poll(uv_timer_t *t)
{
    project_now(t->data, NULL);
}

static void worker_closed(uv_handle_t *h)
{
    free((product_worker *)h); /* the timer is the first member */
}

static int worker_init(sl_svc_worker *w)
{
    if (sl_svc_worker_index(w) != 0) return 0;
    sl_db *db = sl_svc_worker_db(w);
    sl_service *svc = sl_svc_worker_service(w);
    bool demo = false;
    char err[SL_CONFIG_ERR_MAX];
    if (sl_config_get_bool(sl_service_config(svc), "product.demo", false, &demo, err) != 0) {
        SL_LOG_ERROR(sl_service_log(svc), NULL, "configuration", SL_LOG_STR("error", err));
        return SL_ECONFIG;
    }
    if (demo) {
        product_cmd_ctx c = {.source = "/shoal/product"};
        size_t created = 0;
        int rc = product_demo_load(db, &c, &created);
        if (rc != 0) {
            SL_LOG_ERROR(sl_service_log(svc), NULL, "loading the demo catalogue failed",
                         SL_LOG_STR("code", sl_errname(rc)), SL_LOG_STR("error", sl_db_errmsg(db)));
            return rc;
        }
        if (created)
            SL_LOG_INFO(sl_service_log(svc), NULL, "demo catalogue loaded",
                        SL_LOG_INT("products", (int64_t)created));
    }
    project_now(w, NULL);
    product_worker *pw = calloc(1, sizeof *pw);
    if (!pw) return SL_ENOMEM;
    uv_timer_init(sl_svc_worker_loop(w), &pw->timer);
    pw->timer.data = w;
    pw->has_timer = 1;
    uv_timer_start(&pw->timer, on_poll, PROJECTION_POLL_MS, PROJECTION_POLL_MS);
    sl_svc_worker_set_data(w, pw);
    return 0;
}

static void worker_fini(sl_svc_worker *w)
{
    product_worker *pw = sl_svc_worker_data(w);
    if (!pw) return;
    sl_svc_worker_set_data(w, NULL);
    uv_timer_stop(&pw->timer);
    uv_close((uv_handle_t *)&pw->timer, worker_closed);
}

static const sl_route_def routes[] = {
    {SL_HTTP_GET, "/products", h_list, 0},
    {SL_HTTP_GET, "/products/{id}", h_get, 0},
    {SL_HTTP_POST, "/admin/products", h_create, 64 * 1024},
    {SL_HTTP_PATCH, "/admin/products/{id}", h_update, 64 * 1024},
    {SL_HTTP_POST, "/admin/read-model/rebuild", h_rebuild, 1024},
};

/* Inventory's stock figures arrive over the bus; the product events feed the view through the
 * event store (projection.c), so they need no bus subscription of their own. */
static const sl_subscription_def subscriptions[] = {
    {.topic = INVENTORY_EV_STOCK, .apply = product_apply_event},
};

static const char *const publishes[] = {"product", NULL};

const sl_service_def product_service = {
    .name = "product",
    .default_port = 8082,
    .routes = routes,
    .nroutes = SL_ARRAY_LEN(routes),
    .worker_init = worker_init,
    .worker_fini = worker_fini,
    .migrations = &sl_migrations_product,
    .subscriptions = subscriptions,
    .nsubscriptions = SL_ARRAY_LEN(subscriptions),
    .publishes = publishes,
};

/* ---- --rebuild-read-model -------------------------------------------------------------------- */

static int open_configured(int argc, char **argv, sl_db **db)
{
    char err[SL_CONFIG_ERR_MAX] = {0};
    sl_config *cfg = NULL;
    const char *path = sl_config_path_from_args(argc, argv);
    static const char *const sections[] = {"db", NULL};
    int rc = path ? sl_config_load_file(path, &cfg, err)
                  : sl_config_load_string("<defaults>", "{}", 2, &cfg, err);
    if (rc == 0) rc = sl_config_apply_env(cfg, environ, sections, err);
    const char *url = NULL;
    if (rc == 0) rc = sl_config_get_string(cfg, "db.url", "sqlite:data/product.db", &url, err);
    if (rc != 0) {
        fprintf(stderr, "shoal-product: configuration: %s\n", err);
        sl_config_free(cfg);
        return 2;
    }
    rc = sl_db_open(url, NULL, db, err, sizeof err);
    sl_config_free(cfg);
    if (rc != 0) {
        fprintf(stderr, "shoal-product: cannot open the database: %s\n", err);
        return 1;
    }
    return 0;
}

int product_rebuild_main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            i++;
        } else if (strncmp(argv[i], "--config=", 9) != 0 &&
                   strcmp(argv[i], "--rebuild-read-model") != 0) {
            fprintf(stderr, "usage: shoal-product --rebuild-read-model [--config FILE]\n");
            return 2;
        }
    }
    sl_db *db = NULL;
    int status = open_configured(argc, argv, &db);
    if (status != 0) return status;
    const sl_migration_set *sets[] = {sl_db_lib_migrations(), &sl_migrations_product};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < SL_ARRAY_LEN(sets); i++)
        rc = sl_db_migrate(db, sets[i], NULL);
    size_t events = 0;
    int64_t products = 0;
    if (rc == 0) rc = product_rebuild_read_model(db, &events);
    if (rc == 0) rc = store_product_count(db, &products);
    if (rc != 0) {
        fprintf(stderr, "shoal-product: rebuild failed: %s: %s\n", sl_errname(rc),
                sl_db_errmsg(db));
        sl_db_close(db);
        return 1;
    }
    printf("read model rebuilt: %zu events replayed, %lld products\n", events, (long long)products);
    sl_db_close(db);
    return 0;
}
