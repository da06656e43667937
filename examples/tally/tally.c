/*
 * shoal-tally: the chassis' event example, CQRS in miniature.
 *
 *   POST /counters/{name}   {"amount": n}  → writes the command and, in the same
 *                                            transaction, the event
 *                                            shop.tally.incremented.v1 to the outbox
 *   GET  /counters/{name}                  → the read model, fed only by that event
 *                                            coming back through the bus
 *
 * It shows migrations, sl_svc_emit (transactional outbox), a subscription
 * applied exactly once (inbox claim + effect in one transaction), and how a
 * read model lags its write model until the event arrives.
 *   build/bin/shoal-tally --port 8090   (with SHOAL_BUS__URL=nats://127.0.0.1:4222)
 */
#include <shoal/bus.h>
#include <shoal/clock.h>
#include <shoal/db.h>
#include <shoal/json.h>
#include <shoal/service.h>

#include <stdio.h>
#include <string.h>

extern const sl_migration_set sl_migrations_tally;

static int valid_name(sl_slice s)
{
    if (s.len == 0 || s.len > 64) return 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return 0;
    }
    return 1;
}

static void increment(sl_http_req *req, sl_svc_worker *w)
{
    sl_slice name = sl_route_param(&req->params, "name");
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (!valid_name(name)) {
        sl_json_errors_add(&errs, "name", "must be 1-64 characters of a-z, 0-9, - and _");
        sl_respond_invalid(req, &errs);
        return;
    }
    json_t *doc;
    if (sl_req_json_body(req, &doc) != 0) return;
    int64_t amount = 0;
    const sl_json_field fields[] = {{.name = "amount",
                                     .kind = SL_JSON_INT,
                                     .flags = SL_JSON_REQUIRED,
                                     .min = 1,
                                     .max = 1000000,
                                     .out = &amount}};
    if (sl_json_read(doc, fields, 1, SL_JSON_REJECT_UNKNOWN, &errs) != 0) {
        json_decref(doc);
        sl_respond_invalid(req, &errs);
        return;
    }
    json_decref(doc);
    char counter[65];
    memcpy(counter, name.ptr, name.len);
    counter[name.len] = '\0';

    sl_db *db = sl_svc_worker_db(w);
    char id[SL_DB_UUID_STR];
    sl_db_stmt *st = NULL;
    int rc = sl_db_uuid7(sl_clock_wall_ms(sl_clock_system()), id);
    if (rc == 0) rc = sl_db_begin(db);
    if (rc == 0)
        rc = sl_db_prepare(db, "INSERT INTO tally_commands (id, counter, amount) VALUES (?, ?, ?)",
                           &st);
    if (rc == 0 && (rc = sl_db_bind_text(st, 1, id, strlen(id))) == 0 &&
        (rc = sl_db_bind_text(st, 2, counter, name.len)) == 0 &&
        (rc = sl_db_bind_int64(st, 3, amount)) == 0)
        rc = sl_db_step(st);
    sl_db_stmt_done(st);
    if (rc >= 0) {
        json_t *data = json_pack("{s:s, s:s, s:I}", "command_id", id, "counter", counter, "amount",
                                 (json_int_t)amount);
        rc = sl_svc_emit(w, req, db, "shop.tally.incremented.v1", counter, data);
        json_decref(data);
    }
    if (rc >= 0)
        rc = sl_db_commit(db);
    else
        sl_db_rollback(db);
    if (rc < 0) {
        sl_respond_problem_ex(req, 503, "could not record the command", NULL);
        return;
    }
    json_t *out = json_pack("{s:s, s:s, s:I}", "command_id", id, "counter", counter, "amount",
                            (json_int_t)amount);
    sl_respond_json_value(req, 202, out);
    json_decref(out);
}

static void show(sl_http_req *req, sl_svc_worker *w)
{
    sl_slice name = sl_route_param(&req->params, "name");
    if (!valid_name(name)) {
        sl_respond_problem_ex(req, 404, "no such counter", NULL);
        return;
    }
    sl_db *db = sl_svc_worker_db(w);
    sl_db_stmt *st;
    if (sl_db_prepare(db, "SELECT total, events FROM tally_view WHERE counter = ?", &st) != 0 ||
        sl_db_bind_text(st, 1, name.ptr, name.len) != 0) {
        sl_respond_problem_ex(req, 503, "database unavailable", NULL);
        return;
    }
    int rc = sl_db_step(st);
    json_int_t total = 0, events = 0;
    if (rc == SL_DB_ROW) {
        total = sl_db_column_int64(st, 0);
        events = sl_db_column_int64(st, 1);
    }
    sl_db_stmt_done(st);
    json_t *out = json_pack("{s:s%, s:I, s:I}", "counter", name.ptr, name.len, "total", total,
                            "events", events);
    sl_respond_json_value(req, 200, out);
    json_decref(out);
}

/* The read model's projection: runs inside the runner's transaction with the inbox claim. */
static int apply_incremented(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap)
{
    (void)svc;
    json_t *c = json_object_get(msg->data, "counter");
    json_t *a = json_object_get(msg->data, "amount");
    if (!json_is_string(c) || !json_is_integer(a)) {
        snprintf(reason, cap, "data must have counter (string) and amount (integer)");
        return SL_EPARSE;
    }
    sl_db_stmt *st;
    int rc = sl_db_prepare(tx,
                           "INSERT INTO tally_view (counter, total, events) VALUES (?, ?, 1) "
                           "ON CONFLICT (counter) DO UPDATE SET total = tally_view.total + "
                           "excluded.total, events = tally_view.events + 1",
                           &st);
    if (rc != 0) return rc;
    const char *counter = json_string_value(c);
    if ((rc = sl_db_bind_text(st, 1, counter, strlen(counter))) == 0 &&
        (rc = sl_db_bind_int64(st, 2, json_integer_value(a))) == 0)
        rc = sl_db_step(st);
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

static const sl_route_def routes[] = {
    {SL_HTTP_POST, "/counters/{name}", increment, 4096},
    {SL_HTTP_GET, "/counters/{name}", show, 0},
};

static const sl_subscription_def subscriptions[] = {
    {.topic = "shop.tally.incremented.v1", .apply = apply_incremented},
};

static const char *const publishes[] = {"tally", NULL};

static const sl_service_def tally_service = {
    .name = "tally",
    .default_port = 8090,
    .routes = routes,
    .nroutes = SL_ARRAY_LEN(routes),
    .migrations = &sl_migrations_tally,
    .subscriptions = subscriptions,
    .nsubscriptions = SL_ARRAY_LEN(subscriptions),
    .publishes = publishes,
};

int main(int argc, char **argv)
{
    return sl_service_main(&tally_service, argc, argv);
}
