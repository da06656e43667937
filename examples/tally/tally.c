/*
 * shoal-tally: the service template, and CQRS in miniature.
 *
 *   POST /counters/{name}   {"amount": n}  → writes the command and, in the same
 *                                            transaction, the event
 *                                            shop.tally.incremented.v1 to the outbox
 *                                            (with an Idempotency-Key, a repeat
 *                                            gets the first answer back)
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

#include <shoal/clock.h>

#include <stdlib.h>
#include <string.h>

/* The field message below spells the bound out. */
_Static_assert(TALLY_NAME_MAX == 64, "tally.c's message for a bad name says 1-64");

static void increment(sl_http_req *req, sl_svc_worker *w)
{
    char counter[TALLY_NAME_MAX + 1];
    sl_slice name = sl_route_param(&req->params, "name");
    if (!tally_name_valid(name.ptr, name.len)) {
        sl_respond_field(req, 400, "name", "must be 1-64 characters of a-z, 0-9, - and _",
                         "the counter's name is invalid");
        return;
    }
    memcpy(counter, name.ptr, name.len);
    counter[name.len] = '\0';
    sl_req_idem k;
    if (sl_req_idem_read(req, &k, "anonymous") != 0) return; /* answered 400 */
    json_t *doc;
    if (sl_req_json_body(req, &doc) != 0) return; /* answered 400 or 415 */
    int64_t amount = 0;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    int rc = tally_read_increment(doc, &amount, &errs);
    json_decref(doc);
    if (rc != 0) {
        sl_respond_invalid(req, &errs);
        return;
    }
    json_t *answer;
    rc = tally_increment(w, req, &k, counter, amount, &answer);
    if (rc == 1) return; /* a replay, or a key reused with another request */
    if (rc != 0) {
        sl_respond_db_error(req, rc, "could not record the command");
        return;
    }
    sl_respond_owned(req, 202, answer);
}

static void show(sl_http_req *req, sl_svc_worker *w)
{
    char counter[TALLY_NAME_MAX + 1];
    if (sl_req_path_id(req, "name", "counter", tally_name_valid, counter, sizeof counter) != 0)
        return; /* answered 404 */
    int64_t total = 0, events = 0;
    int rc = tally_store_view_get(sl_svc_worker_db(w), counter, &total, &events);
    if (rc != 0 && rc != SL_ENOTFOUND) { /* a counter no event reached yet reads as zero */
        sl_respond_db_error(req, rc, "could not read the counter");
        return;
    }
    sl_respond_owned(req, 200, tally_view_json(counter, total, events));
}

/* Per-worker state: what a worker's handlers use and no other thread touches. */
static int worker_init(sl_svc_worker *w)
{
    sl_idgen *ids = malloc(sizeof *ids);
    if (!ids) return SL_ENOMEM;
    sl_idgen_init(ids, sl_clock_system(), NULL, NULL);
    sl_svc_worker_set_data(w, ids);
    return 0;
}

static void worker_fini(sl_svc_worker *w)
{
    free(sl_svc_worker_data(w));
    sl_svc_worker_set_data(w, NULL);
}

sl_idgen *tally_worker_ids(sl_svc_worker *w)
{
    sl_idgen *ids = sl_svc_worker_data(w);
    SL_ASSERT(ids != NULL);
    return ids;
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
    .worker_init = worker_init,
    .worker_fini = worker_fini,
    .migrations = &sl_migrations_tally,
    .subscriptions = subscriptions,
    .nsubscriptions = SL_ARRAY_LEN(subscriptions),
    .publishes = publishes,
};
