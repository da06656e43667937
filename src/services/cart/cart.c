/*
 * shoal-cart's definition: the per-user cart API (GET /cart, PUT and DELETE
 * /cart/items/{product_id}) for the caller named by the gateway's signed
 * identity, and the event appliers that keep the cart's replica of product
 * prices current (product created / updated / price_changed) and take the
 * items of a confirmed order out of its user's cart. The cart never calls
 * the product service. docs/services/cart.md documents the API.
 */
#include "cart.h"

#include <shoal/bus.h>
#include <shoal/clock.h>
#include <shoal/identity.h>
#include <shoal/log.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- answers -------------------------------------------------------------------------------- */

json_t *cart_json(const cart_line *lines, size_t n)
{
    json_t *items = json_array();
    for (size_t i = 0; items && i < n; i++) {
        json_t *o = json_pack("{s:s, s:I, s:{s:I, s:s}}", "product_id", lines[i].product_id, "qty",
                              (json_int_t)lines[i].qty, "unit_price", "amount",
                              (json_int_t)lines[i].amount, "currency", lines[i].currency);
        if (!o || json_array_append_new(items, o) != 0) {
            json_decref(items);
            return NULL;
        }
    }
    if (!items) return NULL;
    int64_t amount = 0;
    char currency[4];
    int rc = cart_total(lines, n, &amount, currency);
    if (rc != 0) /* Only reachable when a product's currency changed after it was added. */
        return json_pack("{s:o, s:n, s:s}", "items", items, "total", "total_error",
                         rc == SL_ECONFLICT ? "mixed_currencies" : "overflow");
    return json_pack("{s:o, s:{s:I, s:s}}", "items", items, "total", "amount", (json_int_t)amount,
                     "currency", currency);
}

static void respond_db_error(sl_http_req *req, sl_svc_worker *w, int rc)
{
    SL_LOG_ERROR(sl_svc_worker_log(w), sl_req_trace(req), "database error",
                 SL_LOG_STR("code", sl_errname(rc)),
                 SL_LOG_STR("error", sl_db_errmsg(sl_svc_worker_db(w))));
    sl_respond_problem_ex(req, 503, "the cart database is unavailable; retry later", NULL);
}

static void respond_field(sl_http_req *req, int status, const char *field, const char *msg,
                          const char *detail)
{
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    sl_json_errors_add(&errs, field, "%s", msg);
    sl_respond_problem_ex(req, status, detail, &errs);
}

/* Answers 200 with the user's cart as it is now. */
static void respond_cart(sl_http_req *req, sl_svc_worker *w, const char *user)
{
    cart_line *lines = calloc(CART_ITEMS_MAX, sizeof *lines);
    size_t n = 0;
    int rc =
        lines ? cart_store_lines(sl_svc_worker_db(w), user, lines, CART_ITEMS_MAX, &n) : SL_ENOMEM;
    json_t *v = rc == 0 ? cart_json(lines, n) : NULL;
    free(lines);
    if (rc != 0) {
        respond_db_error(req, w, rc);
        return;
    }
    if (!v) {
        sl_respond_problem_ex(req, 500, "could not build the response", NULL);
        return;
    }
    sl_respond_json_value(req, 200, v);
    json_decref(v);
}

/* Copies {product_id} into out when it is a valid id; else answers 404. */
static int path_product(sl_http_req *req, char out[CART_ID_MAX + 1])
{
    sl_slice v = sl_route_param(&req->params, "product_id");
    if (!cart_id_valid(v.ptr, v.len)) {
        respond_field(req, 404, "product_id", "no such product", "no such resource");
        return -1;
    }
    memcpy(out, v.ptr, v.len);
    out[v.len] = '\0';
    return 0;
}

/* ---- handlers ------------------------------------------------------------------------------- */

static void h_get(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 0, &id) != 0) return;
    respond_cart(req, w, id.user_id);
}

/* Refusal checks of a PUT inside its transaction: 0 to go on, else the status answered. */
static int put_checks(sl_http_req *req, sl_db *db, const char *user, const char *pid,
                      const cart_price *price, int *status)
{
    int64_t cur = 0;
    int rc = cart_store_item_qty(db, user, pid, &cur);
    if (rc != 0 && rc != SL_ENOTFOUND) return rc;
    int in_cart = rc == 0;
    cart_line *lines = calloc(CART_ITEMS_MAX, sizeof *lines);
    size_t n = 0;
    rc = lines ? cart_store_lines(db, user, lines, CART_ITEMS_MAX, &n) : SL_ENOMEM;
    if (rc != 0) {
        free(lines);
        return rc;
    }
    *status = 0;
    if (!in_cart && n >= CART_ITEMS_MAX) {
        *status = 409;
        respond_field(req, 409, "product_id", "the cart already holds 100 products",
                      "the cart is full");
    }
    for (size_t i = 0; *status == 0 && i < n; i++) {
        if (strcmp(lines[i].product_id, pid) != 0 &&
            strcmp(lines[i].currency, price->currency) != 0) {
            *status = 409;
            respond_field(req, 409, "product_id", "is priced in another currency than the cart",
                          "a cart holds products of one currency");
        }
    }
    free(lines);
    return 0;
}

static void h_put(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    char pid[CART_ID_MAX + 1];
    if (sl_req_require_identity(req, 0, &id) != 0 || path_product(req, pid) != 0) return;
    json_t *body;
    if (sl_req_json_body(req, &body) != 0) return;
    int64_t qty = 0;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    int rc = cart_read_qty(body, &qty, &errs);
    json_decref(body);
    if (rc != 0) {
        sl_respond_invalid(req, &errs);
        return;
    }
    sl_db *db = sl_svc_worker_db(w);
    if ((rc = sl_db_begin(db)) != 0) goto fail;
    cart_price price;
    rc = cart_store_price_get(db, pid, &price);
    if (rc == SL_ENOTFOUND || (rc == 0 && !price.has_price)) {
        sl_db_rollback(db);
        respond_field(req, 404, "product_id", "no such product", "no such resource");
        return;
    }
    if (rc != 0) goto fail;
    if (qty == 0) {
        rc = cart_store_item_delete(db, id.user_id, pid, NULL);
    } else {
        int status = 0;
        if ((rc = put_checks(req, db, id.user_id, pid, &price, &status)) != 0) goto fail;
        if (status != 0) {
            sl_db_rollback(db);
            return;
        }
        rc = cart_store_item_set(db, id.user_id, pid, qty, sl_clock_wall_ms(sl_clock_system()));
    }
    if (rc != 0 || (rc = sl_db_commit(db)) != 0) goto fail;
    respond_cart(req, w, id.user_id);
    return;
fail:
    sl_db_rollback(db);
    respond_db_error(req, w, rc);
}

static void h_delete(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    char pid[CART_ID_MAX + 1];
    if (sl_req_require_identity(req, 0, &id) != 0 || path_product(req, pid) != 0) return;
    sl_db *db = sl_svc_worker_db(w);
    int deleted = 0;
    int rc = cart_store_item_delete(db, id.user_id, pid, &deleted);
    if (rc == 0 && !deleted) {
        /* Idempotent for a known product; an id the cart never heard of is 404. */
        cart_price price;
        rc = cart_store_price_get(db, pid, &price);
        if (rc == SL_ENOTFOUND) {
            respond_field(req, 404, "product_id", "no such product", "no such resource");
            return;
        }
    }
    if (rc != 0) {
        respond_db_error(req, w, rc);
        return;
    }
    respond_cart(req, w, id.user_id);
}

/* ---- consumed events ------------------------------------------------------------------------ */

static int refuse(char *reason, size_t cap, const char *what, const sl_json_errors *errs)
{
    if (reason && cap)
        snprintf(reason, cap, "%s: %s %s", what, errs->count ? errs->items[0].field : "data",
                 errs->count ? errs->items[0].message : "is missing or invalid");
    return SL_EPARSE;
}

/* The event's time in ms, or -1 when absent or unreadable. */
static int64_t event_ms(const sl_bus_msg *msg)
{
    int64_t ns;
    if (msg->time && sl_rfc3339_parse(msg->time, strlen(msg->time), &ns) == 0) return ns / 1000000;
    return -1;
}

/* Applies a name and/or price to the replica, each only if the event is not older. */
static int put_replica(sl_db *tx, const char *pid, const char *name, const json_t *price_v,
                       const char *price_field, const sl_bus_msg *msg, char *reason, size_t cap)
{
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    int64_t amount = 0;
    char currency[4] = "";
    if (price_v && cart_read_money(price_v, price_field, &amount, currency, &errs) != 0)
        return refuse(reason, cap, msg->type, &errs);
    cart_price row = {0};
    int rc = cart_store_price_get(tx, pid, &row);
    if (rc != 0 && rc != SL_ENOTFOUND) return rc;
    int exists = rc == 0;
    int64_t t = event_ms(msg);
    int set_name = name && (!exists || cart_event_newer(row.name_ms, t));
    int set_price = price_v && (!exists || cart_event_newer(row.price_ms, t));
    return cart_store_price_put(tx, pid, exists, set_name ? name : NULL, t < 0 ? row.name_ms : t,
                                set_price, amount, currency, t < 0 ? row.price_ms : t);
}

int cart_apply_product(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap)
{
    (void)svc;
    const char *pid = NULL, *name = NULL;
    json_t *price = NULL;
    const sl_json_field f[] = {
        {.name = "product_id",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = CART_ID_MAX,
         .max_bytes = CART_ID_MAX,
         .out = &pid},
        {.name = "name",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_NULLABLE,
         .min = 1,
         .max = CART_NAME_MAX,
         .max_bytes = CART_NAME_MAX * 4,
         .out = &name},
        {.name = "price", .kind = SL_JSON_OBJECT, .flags = SL_JSON_NULLABLE, .out = &price},
    };
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (!msg->data || sl_json_read(msg->data, f, SL_ARRAY_LEN(f), 0, &errs) != 0)
        return refuse(reason, cap, msg->type, &errs);
    if (!cart_id_valid(pid, strlen(pid))) {
        sl_json_errors_add(&errs, "product_id", "is not a valid id");
        return refuse(reason, cap, msg->type, &errs);
    }
    return put_replica(tx, pid, name, price, "price", msg, reason, cap);
}

int cart_apply_price_changed(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap)
{
    (void)svc;
    const char *pid = NULL;
    json_t *price = NULL;
    const sl_json_field f[] = {
        {.name = "product_id",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = CART_ID_MAX,
         .max_bytes = CART_ID_MAX,
         .out = &pid},
        {.name = "new_price", .kind = SL_JSON_OBJECT, .flags = SL_JSON_REQUIRED, .out = &price},
    };
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (!msg->data || sl_json_read(msg->data, f, SL_ARRAY_LEN(f), 0, &errs) != 0)
        return refuse(reason, cap, msg->type, &errs);
    if (!cart_id_valid(pid, strlen(pid))) {
        sl_json_errors_add(&errs, "product_id", "is not a valid id");
        return refuse(reason, cap, msg->type, &errs);
    }
    return put_replica(tx, pid, NULL, price, "new_price", msg, reason, cap);
}

/* Takes `qty` units of one product out of the user's cart. */
static int take_out(sl_db *tx, const char *user, const char *pid, int64_t qty)
{
    int64_t cur = 0;
    int rc = cart_store_item_qty(tx, user, pid, &cur);
    if (rc == SL_ENOTFOUND) return 0; /* not (or no longer) in the cart */
    if (rc != 0) return rc;
    int64_t left = cart_after_order(cur, qty);
    if (left == 0) return cart_store_item_delete(tx, user, pid, NULL);
    return cart_store_item_set(tx, user, pid, left, sl_clock_wall_ms(sl_clock_system()));
}

int cart_apply_order_confirmed(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason,
                               size_t cap)
{
    (void)svc;
    const char *user = NULL;
    json_t *items = NULL;
    const sl_json_field f[] = {
        {.name = "user_id",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = SL_IDENTITY_ID_MAX,
         .max_bytes = SL_IDENTITY_ID_MAX,
         .out = &user},
        {.name = "items",
         .kind = SL_JSON_ARRAY,
         .flags = SL_JSON_REQUIRED,
         .max = CART_ORDER_MAX,
         .out = &items},
    };
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (!msg->data || sl_json_read(msg->data, f, SL_ARRAY_LEN(f), 0, &errs) != 0)
        return refuse(reason, cap, msg->type, &errs);
    /* Validate every item before changing anything. */
    for (size_t i = 0; i < json_array_size(items); i++) {
        char prefix[32];
        const sl_json_field itf[] = {
            {.name = "product_id",
             .kind = SL_JSON_STRING,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = CART_ID_MAX,
             .max_bytes = CART_ID_MAX},
            {.name = "qty",
             .kind = SL_JSON_INT,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = 1000000},
        };
        if (sl_json_path_index(prefix, sizeof prefix, "items", i) != 0 ||
            sl_json_read_at(json_array_get(items, i), prefix, itf, 2, 0, &errs) != 0)
            return refuse(reason, cap, msg->type, &errs);
    }
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *it = json_array_get(items, i);
        const char *pid = json_string_value(json_object_get(it, "product_id"));
        int64_t qty = (int64_t)json_integer_value(json_object_get(it, "qty"));
        int rc = take_out(tx, user, pid, qty);
        if (rc != 0) return rc;
    }
    return 0;
}

/* ---- definition ----------------------------------------------------------------------------- */

static const sl_route_def routes[] = {
    {SL_HTTP_GET, "/cart", h_get, 0},
    {SL_HTTP_PUT, "/cart/items/{product_id}", h_put, 4096},
    {SL_HTTP_DELETE, "/cart/items/{product_id}", h_delete, 4096},
};

static const sl_subscription_def subscriptions[] = {
    {.topic = "shop.product.created.v1", .apply = cart_apply_product},
    {.topic = "shop.product.updated.v1", .apply = cart_apply_product},
    {.topic = "shop.product.price_changed.v1", .apply = cart_apply_price_changed},
    {.topic = "shop.order.confirmed.v1", .apply = cart_apply_order_confirmed},
};

const sl_service_def cart_service = {
    .name = "cart",
    .default_port = 8083,
    .routes = routes,
    .nroutes = SL_ARRAY_LEN(routes),
    .migrations = &sl_migrations_cart,
    .subscriptions = subscriptions,
    .nsubscriptions = SL_ARRAY_LEN(subscriptions),
};
