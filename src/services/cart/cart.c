/*
 * shoal-cart's definition: the per-user cart API (GET /cart, PUT and DELETE
 * /cart/items/{product_id}) for the caller named by the gateway's signed
 * identity, and its subscriptions: the product events keep the cart's price
 * replica current (product/contract/), a confirmed order takes its items out
 * of its user's cart (events.c). The cart never calls the product service.
 * docs/services/cart.md documents the API.
 */
#include "cart.h"

#include <shoal/identity.h>

#include <stdlib.h>

static void respond_no_product(sl_http_req *req)
{
    sl_respond_field(req, 404, "product_id", "no such product", "no such resource");
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
    if (rc != 0)
        sl_respond_db_error(req, rc, NULL);
    else
        sl_respond_owned(req, 200, v);
}

/* Copies the path's {product_id} into out; else answers 404 and returns SL_ENOTFOUND. */
static int path_product(sl_http_req *req, char out[CART_ID_MAX + 1])
{
    return sl_req_path_id(req, "product_id", "product", product_id_text_valid, out,
                          CART_ID_MAX + 1);
}

/* ---- handlers ------------------------------------------------------------------------------- */

static void h_get(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 0, &id) != 0) return;
    respond_cart(req, w, id.user_id);
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
    cart_refusal why = CART_OK;
    rc = cart_cmd_set(sl_svc_worker_db(w), id.user_id, pid, qty, &why);
    if (rc != 0) {
        sl_respond_db_error(req, rc, NULL);
        return;
    }
    switch (why) {
    case CART_OK:
        respond_cart(req, w, id.user_id);
        break;
    case CART_NO_PRODUCT:
        respond_no_product(req);
        break;
    case CART_FULL:
        sl_respond_field(req, 409, "product_id", "the cart already holds 100 products",
                         "the cart is full");
        break;
    case CART_CURRENCY:
        sl_respond_field(req, 409, "product_id", "is priced in another currency than the cart",
                         "a cart holds products of one currency");
        break;
    }
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
        product_replica_row price;
        rc = product_replica_get(db, pid, &price);
        if (rc == SL_ENOTFOUND) {
            respond_no_product(req);
            return;
        }
    }
    if (rc != 0) {
        sl_respond_db_error(req, rc, NULL);
        return;
    }
    respond_cart(req, w, id.user_id);
}

/* ---- definition ----------------------------------------------------------------------------- */

static const sl_route_def routes[] = {
    {SL_HTTP_GET, "/cart", h_get, 0},
    {SL_HTTP_PUT, "/cart/items/{product_id}", h_put, 4096},
    {SL_HTTP_DELETE, "/cart/items/{product_id}", h_delete, 4096},
};

static const sl_subscription_def subscriptions[] = {
    {.topic = PRODUCT_EV_CREATED, .apply = product_replica_apply},
    {.topic = PRODUCT_EV_UPDATED, .apply = product_replica_apply},
    {.topic = PRODUCT_EV_PRICE_CHANGED, .apply = product_replica_apply},
    {.topic = ORDER_EV_CONFIRMED, .apply = cart_apply_order_confirmed, .unordered = 1},
};

static const sl_migration_set *const contract_migrations[] = {&sl_migrations_product_contract,
                                                              NULL};

const sl_service_def cart_service = {
    .name = "cart",
    .default_port = 8083,
    .routes = routes,
    .nroutes = SL_ARRAY_LEN(routes),
    .migrations = &sl_migrations_cart,
    .contract_migrations = contract_migrations,
    .subscriptions = subscriptions,
    .nsubscriptions = SL_ARRAY_LEN(subscriptions),
};
