/*
 * shoal-inventory's definition: the internal HTTP API used by the order
 * saga and the gateway (reservations, stock, restock, audit), the events it
 * consumes, its migrations, and the reservation expiry sweep, a timer on
 * worker 0's loop that releases reservations whose time-to-live ran out
 * (config `inventory.reservation_ttl_ms`, default 15 min), the safety net
 * for an orchestrator that is gone for good. docs/services/inventory.md
 * documents the API; the rules live in domain.c, the transactions in commands.c,
 * the event appliers in events.c.
 */
#include "inventory.h"
#include "audit.h"

#include <shoal/clock.h>
#include <shoal/config.h>
#include <shoal/identity.h>
#include <shoal/log.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Process-wide settings, read in init (main thread), read-only afterwards. */
typedef struct inv_config {
    int64_t ttl_ms;
    int64_t sweep_ms;
} inv_config;

/* Worker 0's sweep timer. Loop thread. */
typedef struct inv_sweeper {
    uv_timer_t timer;
    sl_svc_worker *w;
} inv_sweeper;

static const inv_config *config_of(sl_svc_worker *w)
{
    return sl_service_data(sl_svc_worker_service(w));
}

static int64_t now_ms(void)
{
    return sl_clock_wall_ms(sl_clock_system());
}

static const char *traceparent_of(const sl_http_req *req)
{
    return req->traceparent[0] ? req->traceparent : NULL;
}

/* ---- answers -------------------------------------------------------------------------------- */

/*
 * A refusal the saga branches on: a problem with its `reason` and, when `extra_key` is set,
 * one more member (`extra`, stolen; e.g. the reservation as it stands).
 */
static void respond_refusal(sl_http_req *req, int status, const char *reason, const char *detail,
                            const sl_json_errors *errs, const char *extra_key, json_t *extra)
{
    json_t *doc = sl_svc_problem(status, reason, detail, errs);
    if (doc && extra_key && extra)
        json_object_set_new(doc, extra_key, extra);
    else
        json_decref(extra);
    sl_respond_problem_owned(req, status, doc, 0);
}

/* 401/403 unless the caller is a service (the saga) or an admin. */
static int require_service(sl_http_req *req)
{
    sl_identity id;
    int rc = sl_req_require_identity(req, 0, &id);
    if (rc != 0) return rc;
    if (strcmp(id.role, "service") != 0 && strcmp(id.role, "admin") != 0) {
        sl_respond_problem_ex(req, 403, "this operation needs the service or admin role", NULL);
        return SL_EINVAL;
    }
    return 0;
}

/* ---- reservations --------------------------------------------------------------------------- */

static void answer_reserve(sl_http_req *req, inv_reserve_result *res)
{
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    switch (res->outcome) {
    case INV_RES_CREATED:
    case INV_RES_EXISTING:
        sl_respond_owned(req, res->outcome == INV_RES_CREATED ? 201 : 200,
                         inv_reservation_json(&res->res));
        return;
    case INV_RES_MISMATCH:
        respond_refusal(req, 409, "reservation_mismatch",
                        "this order already holds a reservation with other items", NULL,
                        "reservation", inv_reservation_json(&res->res));
        return;
    case INV_RES_ALREADY_RELEASED:
        respond_refusal(req, 409, "already_released",
                        "this order's reservation was released before it was made", NULL,
                        "reservation", inv_reservation_json(&res->res));
        return;
    case INV_RES_UNKNOWN_PRODUCT:
        for (size_t i = 0; i < res->nshort; i++) {
            char f[48];
            snprintf(f, sizeof f, "items[%zu].product_id", res->short_items[i].index);
            sl_json_errors_add(&errs, f, "no such product");
        }
        sl_respond_problem_ex(req, 422, "an item names an unknown product", &errs);
        return;
    case INV_RES_INSUFFICIENT: {
        json_t *items = json_array();
        for (size_t i = 0; i < res->nshort; i++) {
            const inv_shortage *s = &res->short_items[i];
            char f[48];
            snprintf(f, sizeof f, "items[%zu].qty", s->index);
            sl_json_errors_add(&errs, f, "only %lld available", (long long)s->available);
            json_array_append_new(items, json_pack("{s:s, s:I, s:I}", "product_id", s->product_id,
                                                   "requested", (json_int_t)s->requested,
                                                   "available", (json_int_t)s->available));
        }
        respond_refusal(req, 409, "insufficient_stock", "not enough stock for every item", &errs,
                        "items", items);
        return;
    }
    }
}

static void h_reserve(sl_http_req *req, sl_svc_worker *w)
{
    if (require_service(req) != 0) return;
    json_t *body;
    if (sl_req_json_body(req, &body) != 0) return;
    char order_id[INV_ID_MAX + 1];
    inv_item items[INV_ITEMS_MAX];
    size_t n = 0;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    int rc = inv_read_reservation(body, order_id, items, &n, &errs);
    json_decref(body);
    if (rc != 0) {
        sl_respond_invalid(req, &errs);
        return;
    }
    inv_reserve_result *res = malloc(sizeof *res);
    if (!res) {
        sl_respond_problem_ex(req, 503, "out of memory", NULL);
        return;
    }
    rc = inv_op_reserve(sl_svc_worker_db(w), order_id, items, n, now_ms(), config_of(w)->ttl_ms,
                        traceparent_of(req), res);
    if (rc != 0)
        sl_respond_db_error(req, rc, NULL);
    else
        answer_reserve(req, res);
    free(res);
}

/*
 * For the reservation routes: 401/403 unless a service or an admin calls, 400 for a bad
 * {order_id} (copied into `oid`). Returns a reservation buffer (free with free()), or NULL once
 * it has answered.
 */
static inv_reservation *reservation_request(sl_http_req *req, char oid[INV_ID_MAX + 1])
{
    if (require_service(req) != 0 ||
        sl_req_path_id(req, "order_id", "order", inv_id_valid, oid, INV_ID_MAX + 1) != 0)
        return NULL;
    inv_reservation *r = malloc(sizeof *r);
    if (!r) sl_respond_problem_ex(req, 503, "out of memory", NULL);
    return r;
}

static void respond_no_reservation(sl_http_req *req)
{
    sl_respond_field(req, 404, "order_id", "no such reservation for this order",
                     "no such resource");
}

/* POST /reservations/{order_id}/release, or /commit when `commit` is set. */
static void release_or_commit(sl_http_req *req, sl_svc_worker *w, int commit)
{
    char oid[INV_ID_MAX + 1];
    inv_reservation *r = reservation_request(req, oid);
    if (!r) return;
    sl_db *db = sl_svc_worker_db(w);
    inv_action action;
    int rc = commit
                 ? inv_op_commit(db, oid, now_ms(), traceparent_of(req), &action, r)
                 : inv_op_release(db, oid, "requested", now_ms(), traceparent_of(req), &action, r);
    if (rc != 0)
        sl_respond_db_error(req, rc, NULL);
    else if (commit && action == INV_ACT_UNKNOWN)
        respond_no_reservation(req);
    else if (action == INV_ACT_REFUSE && !commit)
        respond_refusal(req, 409, "already_committed",
                        "this order's reservation is committed and cannot be released", NULL,
                        "reservation", inv_reservation_json(r));
    else if (action == INV_ACT_REFUSE)
        respond_refusal(req, 409, "already_released",
                        strcmp(r->reason, "expired") == 0
                            ? "this order's reservation expired and its units were released"
                            : "this order's reservation was released",
                        NULL, "reservation", inv_reservation_json(r));
    else
        sl_respond_owned(req, 200, inv_reservation_json(r));
    free(r);
}

static void h_release(sl_http_req *req, sl_svc_worker *w)
{
    release_or_commit(req, w, 0);
}

static void h_commit(sl_http_req *req, sl_svc_worker *w)
{
    release_or_commit(req, w, 1);
}

static void h_get_reservation(sl_http_req *req, sl_svc_worker *w)
{
    char oid[INV_ID_MAX + 1];
    inv_reservation *r = reservation_request(req, oid);
    if (!r) return;
    int rc = inv_store_res_get(sl_svc_worker_db(w), oid, r);
    if (rc == SL_ENOTFOUND)
        respond_no_reservation(req);
    else if (rc != 0)
        sl_respond_db_error(req, rc, NULL);
    else
        sl_respond_owned(req, 200, inv_reservation_json(r));
    free(r);
}

/* ---- stock ---------------------------------------------------------------------------------- */

static void h_get_stock(sl_http_req *req, sl_svc_worker *w)
{
    char pid[INV_ID_MAX + 1];
    if (require_service(req) != 0 ||
        sl_req_path_id(req, "product_id", "product", inv_id_valid, pid, sizeof pid) != 0)
        return;
    inv_stock s;
    int rc = inv_store_stock_get(sl_svc_worker_db(w), pid, &s);
    if (rc == SL_ENOTFOUND)
        sl_respond_field(req, 404, "product_id", "no such product", "no such resource");
    else if (rc != 0)
        sl_respond_db_error(req, rc, NULL);
    else
        sl_respond_owned(req, 200, inv_stock_json(&s));
}

static void answer_restock(sl_http_req *req, int status, json_t *body)
{
    if (status == 404)
        sl_respond_field(req, 404, "product_id", "no such product", "no such resource");
    else if (status == 409)
        respond_refusal(req, 409, "stock_limit", "the stock would exceed its maximum", NULL, NULL,
                        NULL);
    else
        sl_respond_json_value(req, status, body);
}

static void h_restock(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    char pid[INV_ID_MAX + 1];
    if (sl_req_require_identity(req, 1, &id) != 0) return;
    if (sl_req_path_id(req, "product_id", "product", inv_id_valid, pid, sizeof pid) != 0) return;
    json_t *doc;
    if (sl_req_json_body(req, &doc) != 0) return;
    int64_t qty = 0;
    const sl_json_field f[] = {{.name = "quantity",
                                .kind = SL_JSON_INT,
                                .flags = SL_JSON_REQUIRED,
                                .min = 1,
                                .max = INV_RESTOCK_MAX,
                                .out = &qty}};
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    int rc = sl_json_read(doc, f, 1, SL_JSON_REJECT_UNKNOWN, &errs);
    json_decref(doc);
    if (rc != 0) {
        sl_respond_invalid(req, &errs);
        return;
    }
    /* Idempotency-Key: same key and request → the first answer, no second effect. */
    sl_req_idem k;
    if (sl_req_idem_read(req, &k, "user:%s", id.user_id) != 0) return;
    int status = 0;
    json_t *body = NULL;
    rc = inv_cmd_restock(req, sl_svc_worker_db(w), &k, pid, qty, now_ms(), &status, &body);
    if (rc == INV_CMD_ANSWERED) return;
    if (rc != 0)
        sl_respond_db_error(req, rc, NULL);
    else
        answer_restock(req, status, body);
    json_decref(body);
}

static void h_audit(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 1, &id) != 0) return;
    inv_violation *v = calloc(INV_AUDIT_MAX, sizeof *v);
    if (!v) {
        sl_respond_problem_ex(req, 503, "out of memory", NULL);
        return;
    }
    size_t n = 0, dropped = 0;
    int rc = inv_store_audit(sl_svc_worker_db(w), v, INV_AUDIT_MAX, &n, &dropped);
    if (rc != 0) {
        free(v);
        sl_respond_db_error(req, rc, NULL);
        return;
    }
    json_t *arr = json_array(), *checks = NULL;
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "check", v[i].check, "subject",
                                             v[i].subject, "detail", v[i].detail));
    /* The joinable checks (audit.c); the sweep may be one period late. */
    rc = inv_audit_checks(sl_svc_worker_db(w), v, n, dropped, now_ms(),
                          2 * config_of(w)->sweep_ms + 1000, &checks);
    free(v);
    if (rc != 0) {
        json_decref(arr);
        sl_respond_db_error(req, rc, NULL);
        return;
    }
    /* `ok` keeps its meaning (the stock findings); the gateway judges the checks. */
    if (!arr) json_decref(checks);
    sl_respond_owned(req, 200,
                     arr ? json_pack("{s:b, s:o, s:I, s:o}", "ok", n == 0 && dropped == 0,
                                     "violations", arr, "violations_dropped", (json_int_t)dropped,
                                     "checks", checks)
                         : NULL);
}

/* ---- expiry sweep --------------------------------------------------------------------------- */

static void log_expired(void *data, const inv_reservation *r)
{
    sl_svc_worker *w = data;
    SL_LOG_WARN(sl_svc_worker_log(w), NULL, "reservation expired; its units were released",
                SL_LOG_STR("order_id", r->order_id), SL_LOG_INT("items", (int64_t)r->n));
}

static void sweep(uv_timer_t *t)
{
    inv_sweeper *s = t->data;
    size_t released = 0;
    int rc = inv_op_expire_due(sl_svc_worker_db(s->w), now_ms(), 64, &released, log_expired, s->w);
    if (rc != 0)
        SL_LOG_ERROR(sl_svc_worker_log(s->w), NULL, "reservation sweep failed",
                     SL_LOG_STR("code", sl_errname(rc)),
                     SL_LOG_STR("error", sl_db_errmsg(sl_svc_worker_db(s->w))));
}

static int worker_init(sl_svc_worker *w)
{
    /* One sweeper per process is enough: worker 0 (each worker runs its own loop). */
    if (sl_svc_worker_index(w) != 0) return 0;
    inv_sweeper *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    s->w = w;
    uv_timer_init(sl_svc_worker_loop(w), &s->timer);
    s->timer.data = s;
    uint64_t every = (uint64_t)config_of(w)->sweep_ms;
    uv_timer_start(&s->timer, sweep, every, every);
    sl_svc_worker_set_data(w, s);
    return 0;
}

static void sweeper_closed(uv_handle_t *h)
{
    free(h->data);
}

static void worker_fini(sl_svc_worker *w)
{
    inv_sweeper *s = sl_svc_worker_data(w);
    if (!s) return;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, sweeper_closed);
    sl_svc_worker_set_data(w, NULL);
}

static int init(sl_service *svc)
{
    inv_config *c = calloc(1, sizeof *c);
    if (!c) return SL_ENOMEM;
    char err[SL_CONFIG_ERR_MAX];
    sl_config *cfg = sl_service_config(svc);
    int rc = sl_config_get_int(cfg, "inventory.reservation_ttl_ms", INV_TTL_DEFAULT_MS, 100,
                               7LL * 24 * 3600 * 1000, &c->ttl_ms, err);
    int64_t def_sweep = c->ttl_ms / 4 < 50 ? 50 : c->ttl_ms / 4 > 30000 ? 30000 : c->ttl_ms / 4;
    if (rc == 0)
        rc = sl_config_get_int(cfg, "inventory.sweep_interval_ms", def_sweep, 10, 3600000,
                               &c->sweep_ms, err);
    if (rc != 0) {
        SL_LOG_ERROR(sl_service_log(svc), NULL, "configuration", SL_LOG_STR("error", err));
        free(c);
        return rc;
    }
    SL_LOG_INFO(sl_service_log(svc), NULL, "reservations", SL_LOG_INT("ttl_ms", c->ttl_ms),
                SL_LOG_INT("sweep_interval_ms", c->sweep_ms));
    sl_service_set_data(svc, c);
    return 0;
}

static void fini(sl_service *svc)
{
    free(sl_service_data(svc));
    sl_service_set_data(svc, NULL);
}

/* ---- definition ----------------------------------------------------------------------------- */

static const sl_route_def routes[] = {
    {SL_HTTP_POST, "/reservations", h_reserve, 64 * 1024},
    {SL_HTTP_GET, "/reservations/{order_id}", h_get_reservation, 0},
    {SL_HTTP_POST, "/reservations/{order_id}/release", h_release, 4096},
    {SL_HTTP_POST, "/reservations/{order_id}/commit", h_commit, 4096},
    {SL_HTTP_GET, "/stock/{product_id}", h_get_stock, 0},
    {SL_HTTP_POST, "/stock/{product_id}/restock", h_restock, 4096},
    {SL_HTTP_GET, "/admin/audit", h_audit, 0},
};

static const sl_subscription_def subscriptions[] = {
    {.topic = PRODUCT_EV_CREATED, .apply = inv_apply_product_created},
    {.topic = ORDER_EV_CONFIRMED, .apply = inv_apply_order_confirmed, .unordered = 1},
};

static const char *const publishes[] = {"inventory", NULL};

const sl_service_def inventory_service = {
    .name = "inventory",
    .default_port = 8085,
    .routes = routes,
    .nroutes = SL_ARRAY_LEN(routes),
    .init = init,
    .fini = fini,
    .worker_init = worker_init,
    .worker_fini = worker_fini,
    .migrations = &sl_migrations_inventory,
    .subscriptions = subscriptions,
    .nsubscriptions = SL_ARRAY_LEN(subscriptions),
    .publishes = publishes,
};
