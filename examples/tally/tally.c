/*
 * shoal-tally: the service template, and CQRS in miniature.
 *
 *   POST /counters/{name}   {"amount": n}  → writes the command and, in the same
 *                                            transaction, the event
 *                                            shop.tally.incremented.v1 to the outbox
 *   GET  /counters/{name}                  → the read model, fed only by that event
 *                                            coming back through the bus
 *
 * It shows the layout every service follows (docs/architecture.md): this
 * file holds the definition and thin handlers; domain.c the pure rules,
 * store.c the SQL, commands.c the transaction, events.c the applier,
 * contract/ the event's name and decoder, migrations/ the schema. A read
 * model lags its write model until the event arrives.
 *   build/bin/shoal-tally --port 8090   (with SHOAL_BUS__URL=nats://127.0.0.1:4222)
 */
#include "tally.h"

#include <shoal/log.h>

static void respond_db_error(sl_http_req *req, sl_svc_worker *w, int rc, const char *detail)
{
    SL_LOG_ERROR(sl_svc_worker_log(w), sl_req_trace(req), "database error",
                 SL_LOG_STR("code", sl_errname(rc)),
                 SL_LOG_STR("error", sl_db_errmsg(sl_svc_worker_db(w))));
    sl_respond_problem_ex(req, 503, detail, NULL);
}

static void increment(sl_http_req *req, sl_svc_worker *w)
{
    char counter[TALLY_NAME_MAX + 1];
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (tally_counter_name(sl_route_param(&req->params, "name"), counter) != 0) {
        sl_json_errors_add(&errs, "name", "must be 1-%d characters of a-z, 0-9, - and _",
                           TALLY_NAME_MAX);
        sl_respond_invalid(req, &errs);
        return;
    }
    json_t *doc;
    if (sl_req_json_body(req, &doc) != 0) return; /* already answered */
    int64_t amount = 0;
    int rc = tally_read_increment(doc, &amount, &errs);
    json_decref(doc);
    if (rc != 0) {
        sl_respond_invalid(req, &errs);
        return;
    }
    char id[SL_DB_UUID_STR];
    rc = tally_increment(w, req, counter, amount, id);
    if (rc != 0) {
        respond_db_error(req, w, rc, "could not record the command");
        return;
    }
    json_t *out = json_pack("{s:s, s:s, s:I}", "command_id", id, "counter", counter, "amount",
                            (json_int_t)amount);
    sl_respond_json_value(req, 202, out);
    json_decref(out);
}

static void show(sl_http_req *req, sl_svc_worker *w)
{
    char counter[TALLY_NAME_MAX + 1];
    if (tally_counter_name(sl_route_param(&req->params, "name"), counter) != 0) {
        sl_respond_problem_ex(req, 404, "no such counter", NULL);
        return;
    }
    int64_t total = 0, events = 0;
    int rc = tally_store_view_get(sl_svc_worker_db(w), counter, &total, &events);
    if (rc != 0 && rc != SL_ENOTFOUND) { /* a counter no event reached yet reads as zero */
        respond_db_error(req, w, rc, "database unavailable");
        return;
    }
    json_t *out = json_pack("{s:s, s:I, s:I}", "counter", counter, "total", (json_int_t)total,
                            "events", (json_int_t)events);
    sl_respond_json_value(req, 200, out);
    json_decref(out);
}

static const sl_route_def routes[] = {
    {SL_HTTP_POST, "/counters/{name}", increment, 4096},
    {SL_HTTP_GET, "/counters/{name}", show, 0},
};

static const sl_subscription_def subscriptions[] = {
    {.topic = TALLY_EV_INCREMENTED, .apply = tally_apply_incremented},
};

static const char *const publishes[] = {"tally", NULL};

const sl_service_def tally_service = {
    .name = "tally",
    .default_port = 8090,
    .routes = routes,
    .nroutes = SL_ARRAY_LEN(routes),
    .migrations = &sl_migrations_tally,
    .subscriptions = subscriptions,
    .nsubscriptions = SL_ARRAY_LEN(subscriptions),
    .publishes = publishes,
};
