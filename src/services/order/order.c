/*
 * shoal-order's definition: the internal HTTP API (orders for customers,
 * ship/deliver and saga inspection for admins), the events it consumes (the
 * product price replica, its own order events for the history read model),
 * its configuration (participants' URLs, saga timing) and the per-worker saga
 * machinery (saga.c). A new order is stored `pending` with its checkout saga
 * in one transaction (commands.c), answered 202 at once, and the saga started
 * right after the answer. docs/services/order.md documents the API and the
 * decisions.
 */
#include "order.h"
#include "audit.h"

#include <shoal/bus.h>
#include <shoal/clock.h>
#include <shoal/config.h>
#include <shoal/cursor.h>
#include <shoal/identity.h>
#include <shoal/log.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const order_config *order_config_of(sl_svc_worker *w)
{
    return sl_service_data(sl_svc_worker_service(w));
}

static int64_t now_ms(void)
{
    return sl_clock_wall_ms(sl_clock_system());
}

static int is_admin(const sl_identity *id)
{
    return strcmp(id->role, "admin") == 0;
}

/* Answers 202 for the order `oid` with its Location: a first answer or its replay. */
static void respond_accepted(sl_http_req *req, const char *oid, const char *body, size_t len)
{
    char loc[128];
    snprintf(loc, sizeof loc, "/api/v1/orders/%s", oid);
    sl_http_header h = {SL_SLICE_LIT("location"), {loc, strlen(loc)}};
    sl_respond_stored(req, 202, body, len, &h, 1);
}

void order_replay(sl_http_req *req, int status, const char *body, size_t len)
{
    json_t *v = status == 202 ? json_loadb(body ? body : "", len, 0, NULL) : NULL;
    const char *oid = json_string_value(json_object_get(v, "order_id"));
    if (oid)
        respond_accepted(req, oid, body, len);
    else
        sl_respond_stored(req, status, body, len, NULL, 0);
    json_decref(v);
}

/* ---- POST /orders --------------------------------------------------------------------------- */

static void h_create(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    sl_req_idem k;
    if (sl_req_require_identity(req, 0, &id) != 0) return;
    /* Admission control, before anything is read or written (no order, no idempotency claim):
     * the same Idempotency-Key may be retried after Retry-After. */
    if (order_overloaded(w)) {
        sl_respond_problem_reason(req, 503, "overloaded",
                                  "the shop is at capacity; retry the same request shortly", NULL,
                                  1);
        return;
    }
    if (sl_req_idem_read(req, &k, "user:%s", id.user_id) != 0) return;
    json_t *body;
    if (sl_req_json_body(req, &body) != 0) return;
    order_request *rq = malloc(sizeof *rq);
    order_row *o = calloc(1, sizeof *o);
    char *canon_body = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    json_t *answer = NULL;
    int rc = rq && o && canon_body ? order_read_request(body, rq, &errs) : SL_ENOMEM;
    json_decref(body);
    char *canon = NULL;
    if (rc == SL_EINVAL) {
        sl_respond_invalid(req, &errs);
        goto done;
    }
    if (rc == 0 && (canon = malloc(strlen(canon_body) + 16)) == NULL) rc = SL_ENOMEM;
    if (rc == 0) sprintf(canon, "POST /orders %s", canon_body);
    if (rc == 0) rc = sl_uuid7_at(now_ms(), o->order_id) == 0 ? 0 : SL_EIO;
    if (rc != 0) {
        sl_respond_problem_ex(req, 503, "out of memory", NULL);
        goto done;
    }
    snprintf(o->user_id, sizeof o->user_id, "%s", id.user_id);
    o->status = ORDER_PENDING;
    o->created_ms = o->updated_ms = now_ms();
    o->addr = rq->addr;
    o->n = rq->n;
    memcpy(o->items, rq->items, rq->n * sizeof rq->items[0]);
    rc = order_cmd_create(w, req, o, &k, canon, &answer, &errs);
    if (rc == ORDER_CMD_ANSWERED) goto done;
    if (rc == SL_ENOTFOUND) {
        sl_respond_problem_ex(req, 422, "an item cannot be ordered", &errs);
        goto done;
    }
    if (rc != 0) {
        sl_respond_db_error(req, rc, NULL);
        goto done;
    }
    size_t len = 0;
    char *text = sl_json_dump(answer, &len);
    respond_accepted(req, o->order_id, text, text ? len : 0);
    free(text);
    /* Answered: now the checkout. Its first step runs here; the rest follows on the loop. */
    char sid[SL_SAGA_ID_MAX + 1];
    rc = order_saga_id(sid, ORDER_SAGA_CHECKOUT, o->order_id);
    order_worker *ow = sl_svc_worker_data(w);
    if (rc == 0)
        rc =
            sl_saga_driver_start(order_worker_driver(ow, &order_config_of(w)->sagas.checkout), sid);
    if (rc != 0)
        SL_LOG_WARN(sl_svc_worker_log(w), NULL,
                    "checkout saga not started now; the sweep picks it up",
                    SL_LOG_STR("saga_id", sid), SL_LOG_STR("code", sl_errname(rc)));
done:
    json_decref(answer);
    free(canon);
    free(canon_body);
    free(rq);
    free(o);
}

/* ---- reads ---------------------------------------------------------------------------------- */

/* Loads the order the caller may see (owner or admin; others get 404). Answers on failure. */
static int load_visible(sl_http_req *req, sl_svc_worker *w, const sl_identity *id, order_row *o)
{
    char oid[ORDER_ID_MAX + 1];
    if (sl_req_path_id(req, "order_id", "order", order_id_valid, oid, sizeof oid) != 0)
        return SL_ENOTFOUND;
    int rc = order_store_get(sl_svc_worker_db(w), oid, o);
    if (rc == 0 && !is_admin(id) && strcmp(o->user_id, id->user_id) != 0) rc = SL_ENOTFOUND;
    if (rc == SL_ENOTFOUND) {
        sl_respond_field(req, 404, "order_id", "no such order", "no such resource");
        return rc;
    }
    if (rc != 0) sl_respond_db_error(req, rc, NULL);
    return rc;
}

static void h_get(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 0, &id) != 0) return;
    order_row *o = malloc(sizeof *o);
    if (!o) {
        sl_respond_problem_ex(req, 503, "out of memory", NULL);
        return;
    }
    if (load_visible(req, w, &id, o) == 0) sl_respond_owned(req, 200, order_json(o));
    free(o);
}

static json_t *hist_json(const order_hist_row *r)
{
    json_t *items = r->items_json ? json_loads(r->items_json, 0, NULL) : NULL;
    char c[40], u[40];
    if (sl_rfc3339_format(r->created_ms * 1000000, c, sizeof c) < 0) c[0] = '\0';
    if (sl_rfc3339_format(r->updated_ms * 1000000, u, sizeof u) < 0) u[0] = '\0';
    return json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:s}", "order_id", r->order_id, "user_id", r->user_id,
        "status", r->status, "items", items ? items : json_array(), "total_amount",
        r->currency[0]
            ? json_pack("{s:I, s:s}", "amount", (json_int_t)r->total, "currency", r->currency)
            : json_null(),
        "cancel_reason", r->cancel_reason[0] ? json_string(r->cancel_reason) : json_null(),
        "created_at", c, "updated_at", u);
}

/* Reads ?user_id= and ?status=; answers and returns SL_EINVAL on a bad value. */
static int list_params(sl_http_req *req, const sl_identity *id, char *user, char *status)
{
    sl_slice v;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    snprintf(user, ORDER_ID_MAX + 1, "%s", id->user_id);
    status[0] = '\0';
    if (sl_http_query_param(req->query, "user_id", &v)) {
        if (!order_id_valid(v.ptr, v.len)) {
            sl_json_errors_add(&errs, "user_id", "must be 1..64 characters of [A-Za-z0-9._:-]");
        } else {
            memcpy(user, v.ptr, v.len);
            user[v.len] = '\0';
        }
    }
    order_status st;
    if (sl_http_query_param(req->query, "status", &v) && v.len > 0) {
        if (order_status_parse(v.ptr, v.len, &st) != 0)
            sl_json_errors_add(&errs, "status",
                               "must be pending, confirmed, shipped, delivered or cancelled");
        else
            snprintf(status, 16, "%s", order_status_name(st));
    }
    if (errs.count > 0) {
        sl_respond_invalid(req, &errs);
        return SL_EINVAL;
    }
    if (!is_admin(id) && strcmp(user, id->user_id) != 0) {
        sl_respond_problem_ex(req, 403, "a customer may only list their own orders", NULL);
        return SL_EINVAL;
    }
    return 0;
}

/* For the list routes: when the query failed (`rc`), frees its `rows` buffer, answers the
 * error and returns 1; else returns 0. */
static int list_failed(sl_http_req *req, int rc, void *rows)
{
    if (rc == 0) return 0;
    free(rows);
    sl_respond_db_error(req, rc, NULL);
    return 1;
}

/* Reads ?cursor= ("oh", created_ms, order_id of the order served last). Returns 1 with *a
 * filled, 0 when absent, or SL_EINVAL with the error in errs. */
static int list_cursor(const sl_http_req *req, int64_t page, order_hist_after *a,
                       sl_json_errors *errs)
{
    sl_slice v;
    if (!sl_http_query_param(req->query, "cursor", &v)) return 0;
    sl_cursor c;
    char *end = NULL;
    int ok = sl_cursor_decode(v.ptr, v.len, &c) == 0 && c.n == 3 && strcmp(c.f[0], "oh") == 0 &&
             order_id_valid(c.f[2], strlen(c.f[2]));
    if (ok) a->created_ms = strtoll(c.f[1], &end, 10);
    if (!ok || !end || *end || c.f[1][0] == '\0') {
        sl_json_errors_add(errs, "cursor", "is not a next_cursor of this list");
        return SL_EINVAL;
    }
    if (page != 1) {
        sl_json_errors_add(errs, "cursor", "cannot be combined with page");
        return SL_EINVAL;
    }
    memcpy(a->order_id, c.f[2], strlen(c.f[2]) + 1); /* order_id_valid: <= ORDER_ID_MAX */
    return 1;
}

static void h_list(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 0, &id) != 0) return;
    char user[ORDER_ID_MAX + 1], status[16];
    int64_t page = 1, per_page = 20;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    order_hist_after after;
    int has_after = 0;
    if (sl_req_page(req, &page, &per_page, &errs) != 0 ||
        sl_page_depth_check(page, per_page, &errs) != 0 ||
        (has_after = list_cursor(req, page, &after, &errs)) < 0) {
        sl_respond_invalid(req, &errs);
        return;
    }
    if (list_params(req, &id, user, status) != 0) return;
    order_hist_row *rows = calloc((size_t)per_page, sizeof *rows);
    size_t n = 0;
    int64_t total = 0;
    int rc = rows
                 ? order_store_hist_list(sl_svc_worker_db(w), user, status[0] ? status : NULL, page,
                                         per_page, has_after ? &after : NULL, rows, &n, &total)
                 : SL_ENOMEM;
    if (list_failed(req, rc, rows)) return;
    json_t *items = json_array();
    for (size_t i = 0; items && i < n; i++)
        json_array_append_new(items, hist_json(&rows[i]));
    /* A full page: the cursor of its last order (keyset, newest first). */
    char next[SL_CURSOR_MAX + 1] = "", ms[24];
    if (n > 0 && n == (size_t)per_page) {
        snprintf(ms, sizeof ms, "%lld", (long long)rows[n - 1].created_ms);
        const char *f[] = {"oh", ms, rows[n - 1].order_id};
        if (sl_cursor_encode(f, 3, next, sizeof next) != 0) next[0] = '\0';
    }
    order_hist_rows_free(rows, n);
    free(rows);
    sl_respond_owned(req, 200,
                     items ? json_pack("{s:o, s:I, s:I, s:I, s:o}", "items", items, "page",
                                       (json_int_t)page, "per_page", (json_int_t)per_page, "total",
                                       (json_int_t)total, "next_cursor",
                                       next[0] ? json_string(next) : json_null())
                           : NULL);
}

/* ---- state changes: cancel, ship, deliver --------------------------------------------------- */

/* Answers the refusal of `a` on an order in `from`. */
static void respond_illegal(sl_http_req *req, order_status from, order_action a, int rc)
{
    char detail[160];
    if (rc == SL_EAGAIN) {
        sl_respond_problem_reason(
            req, 409, "checkout_in_progress",
            "the order's checkout is still running; retry once it is confirmed or "
            "cancelled",
            NULL, 1);
        return;
    }
    snprintf(detail, sizeof detail, "an order that is %s cannot be %s", order_status_name(from),
             a == ORDER_ACT_SHIP      ? "shipped"
             : a == ORDER_ACT_DELIVER ? "delivered"
                                      : "cancelled");
    sl_respond_problem_reason(req, 409, "invalid_transition", detail, NULL, 0);
}

static void run_change(sl_http_req *req, sl_svc_worker *w, const sl_identity *id,
                       const order_change *c)
{
    sl_req_idem k;
    if (sl_req_idem_read(req, &k, "user:%s", id->user_id) != 0) return;
    order_row *o = malloc(sizeof *o);
    if (!o) {
        sl_respond_problem_ex(req, 503, "out of memory", NULL);
        return;
    }
    if (load_visible(req, w, id, o) != 0) {
        free(o);
        return;
    }
    char canon[256];
    snprintf(canon, sizeof canon, "POST %s %s %s", order_action_name(c->action), o->order_id,
             c->note ? c->note : "");
    int refusal = 0;
    int rc = order_cmd_change(w, req, o, c, &k, canon, &refusal);
    if (rc == ORDER_CMD_REFUSED) {
        respond_illegal(req, o->status, c->action, refusal);
    } else if (rc == 0) {
        sl_respond_owned(req, 200, order_json(o));
        if (c->saga) {
            char sid[SL_SAGA_ID_MAX + 1];
            rc = order_saga_id(sid, ORDER_SAGA_CANCEL, o->order_id);
            order_worker *ow = sl_svc_worker_data(w);
            if (rc == 0)
                rc = sl_saga_driver_start(
                    order_worker_driver(ow, &order_config_of(w)->sagas.cancel), sid);
            if (rc != 0)
                SL_LOG_WARN(sl_svc_worker_log(w), NULL,
                            "cancel saga not started now; the sweep picks it up",
                            SL_LOG_STR("saga_id", sid), SL_LOG_STR("code", sl_errname(rc)));
        }
    } else if (rc != ORDER_CMD_ANSWERED) {
        sl_respond_db_error(req, rc, NULL);
    }
    free(o);
}

static void h_cancel(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 0, &id) != 0) return;
    const char *note = NULL;
    json_t *body = NULL;
    if (req->body.len > 0) {
        if (sl_req_json_body(req, &body) != 0) return;
        const sl_json_field f[] = {{.name = "reason",
                                    .kind = SL_JSON_STRING,
                                    .flags = SL_JSON_NULLABLE,
                                    .max = ORDER_NOTE_MAX,
                                    .max_bytes = ORDER_NOTE_MAX * 4,
                                    .out = &note}};
        sl_json_errors errs;
        sl_json_errors_init(&errs);
        if (sl_json_read(body, f, 1, SL_JSON_REJECT_UNKNOWN, &errs) != 0) {
            sl_respond_invalid(req, &errs);
            json_decref(body);
            return;
        }
    }
    order_change c = {.action = ORDER_ACT_CUSTOMER_CANCEL,
                      .event = ORDER_EV_CANCELLED,
                      .reason = "customer_request",
                      .note = note ? note : "",
                      .saga = 1};
    run_change(req, w, &id, &c);
    json_decref(body);
}

static void h_ship(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 1, &id) != 0) return;
    order_change c = {.action = ORDER_ACT_SHIP, .event = ORDER_EV_SHIPPED};
    run_change(req, w, &id, &c);
}

static void h_deliver(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 1, &id) != 0) return;
    order_change c = {.action = ORDER_ACT_DELIVER, .event = ORDER_EV_DELIVERED};
    run_change(req, w, &id, &c);
}

/* ---- admin: sagas --------------------------------------------------------------------------- */

static json_t *ms_json(int64_t ms)
{
    char buf[40];
    if (ms <= 0 || sl_rfc3339_format(ms * 1000000, buf, sizeof buf) < 0) return json_null();
    return json_string(buf);
}

static json_t *summary_json(const order_sagas *defs, const sl_saga_summary *s)
{
    const sl_saga_def *def = order_saga_def_of(defs, s->id);
    const char *step =
        def && s->step >= 0 && (size_t)s->step < def->n_steps ? def->steps[s->step].name : NULL;
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "saga_id", s->id, "type", s->type,
                     "status", sl_saga_status_name(s->status), "step",
                     step ? json_string(step) : json_null(), "created_at", ms_json(s->created_ms),
                     "updated_at", ms_json(s->updated_ms), "stuck_reason",
                     s->stuck_reason[0] ? json_string(s->stuck_reason) : json_null());
}

/* GET /admin/sagas?status=&type=&page=&per_page=: every saga, newest update first. */
static void h_sagas(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 1, &id) != 0) return;
    sl_slice v;
    sl_saga_status status = SL_SAGA_STATUS_COUNT; /* all */
    const char *type = NULL;
    int64_t page = 1, per_page = 20;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    (void)sl_req_page(req, &page, &per_page, &errs);
    if (sl_http_query_param(req->query, "status", &v) && v.len > 0) {
        char b[16] = "";
        if (v.len < sizeof b) memcpy(b, v.ptr, v.len);
        if (sl_saga_status_parse(b, &status) != 0)
            sl_json_errors_add(&errs, "status",
                               "must be running, compensating, completed, compensated or stuck");
    }
    if (sl_http_query_param(req->query, "type", &v) && v.len > 0) {
        if (v.len == 8 && memcmp(v.ptr, "checkout", 8) == 0)
            type = "checkout";
        else if (v.len == 6 && memcmp(v.ptr, "cancel", 6) == 0)
            type = "cancel";
        else
            sl_json_errors_add(&errs, "type", "must be checkout or cancel");
    }
    if (errs.count) {
        sl_respond_invalid(req, &errs);
        return;
    }
    sl_saga_summary *rows = calloc((size_t)per_page, sizeof *rows);
    size_t n = 0;
    int64_t total = 0;
    int rc = rows ? sl_saga_store_page(sl_svc_worker_db(w), type, status, page, per_page, rows,
                                       (size_t)per_page, &n, &total)
                  : SL_ENOMEM;
    if (list_failed(req, rc, rows)) return;
    json_t *items = json_array();
    for (size_t i = 0; items && i < n; i++)
        json_array_append_new(items, summary_json(&order_config_of(w)->sagas, &rows[i]));
    free(rows);
    sl_respond_owned(req, 200,
                     items ? json_pack("{s:o, s:I, s:I, s:I}", "items", items, "page",
                                       (json_int_t)page, "per_page", (json_int_t)per_page, "total",
                                       (json_int_t)total)
                           : NULL);
}

static int hist_row(void *data, const sl_saga_history_row *r)
{
    json_t *a = data;
    return json_array_append_new(a, json_pack("{s:I, s:o, s:s, s:s, s:s, s:I, s:s}", "seq",
                                              (json_int_t)r->seq, "at", ms_json(r->at_ms), "kind",
                                              r->kind, "step", r->step, "call", r->call, "attempt",
                                              (json_int_t)r->attempt, "detail",
                                              r->detail ? r->detail : "")) == 0
               ? 0
               : SL_ENOMEM;
}

static json_t *state_json(const sl_saga_def *def, const sl_saga_state *st, const char *input)
{
    json_t *steps = json_array();
    for (uint32_t i = 0; steps && i < st->n_steps; i++)
        json_array_append_new(
            steps, json_pack("{s:s, s:s}", "name", def->steps[i].name, "status",
                             sl_saga_step_status_name((sl_saga_step_status)st->step_status[i])));
    json_t *in = input ? json_loads(input, 0, NULL) : NULL;
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:s, s:s, s:o, s:o}", "saga_id", st->id,
                     "type", def->type, "status", sl_saga_status_name(st->status), "step",
                     st->step < def->n_steps ? def->steps[st->step].name : "", "call",
                     sl_saga_call_name(st->call), "attempt", (json_int_t)st->attempt, "steps",
                     steps ? steps : json_array(), "reason", st->reason, "stuck_reason",
                     st->stuck_reason, "next_wake_at", ms_json(st->wake_at_ms), "input",
                     in ? in : json_null());
}

/* Loads saga {saga_id} for an admin endpoint; answers 404 itself. */
static const sl_saga_def *load_saga(sl_http_req *req, sl_svc_worker *w, sl_saga_state *st)
{
    sl_slice v = sl_route_param(&req->params, "saga_id");
    char sid[SL_SAGA_ID_MAX + 1];
    const sl_saga_def *def = NULL;
    if (v.len > 0 && v.len <= SL_SAGA_ID_MAX) {
        memcpy(sid, v.ptr, v.len);
        sid[v.len] = '\0';
        def = order_saga_def_of(&order_config_of(w)->sagas, sid);
    }
    int rc = def ? sl_saga_store_load(sl_svc_worker_db(w), def, sid, st) : SL_ENOTFOUND;
    if (rc == SL_ENOTFOUND || rc == SL_EINVAL) {
        sl_respond_field(req, 404, "saga_id", "no such saga", "no such resource");
        return NULL;
    }
    if (rc != 0) {
        sl_respond_db_error(req, rc, NULL);
        return NULL;
    }
    return def;
}

static void h_saga(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 1, &id) != 0) return;
    sl_saga_state st;
    const sl_saga_def *def = load_saga(req, w, &st);
    if (!def) return;
    sl_db *db = sl_svc_worker_db(w);
    char *input = NULL;
    json_t *hist = json_array();
    int rc = sl_saga_store_input(db, st.id, &input);
    /* Up to 1000 entries per request; ?after_seq= pages further. */
    sl_slice v;
    uint32_t after = 0;
    if (sl_http_query_param(req->query, "after_seq", &v) && v.len > 0 && v.len < 10) {
        char b[12] = {0};
        memcpy(b, v.ptr, v.len);
        after = (uint32_t)strtoul(b, NULL, 10);
    }
    if (rc == 0)
        rc = hist ? sl_saga_store_history(db, st.id, after, 1000, hist_row, hist) : SL_ENOMEM;
    if (rc != 0) {
        free(input);
        json_decref(hist);
        sl_respond_db_error(req, rc, NULL);
        return;
    }
    json_t *doc = state_json(def, &st, input);
    free(input);
    if (doc)
        json_object_set_new(doc, "history", hist);
    else
        json_decref(hist);
    sl_respond_owned(req, 200, doc);
}

static void h_saga_resume(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 1, &id) != 0) return;
    sl_saga_state st;
    const sl_saga_def *def = load_saga(req, w, &st);
    if (!def) return;
    if (st.status != SL_SAGA_STUCK) {
        sl_respond_problem_reason(req, 409, "not_stuck", "only a stuck saga can be resumed", NULL,
                                  0);
        return;
    }
    int rc = sl_saga_driver_resume_stuck(order_worker_driver(sl_svc_worker_data(w), def), st.id);
    if (rc == SL_ESTATE) {
        sl_respond_problem_reason(req, 409, "not_stuck", "only a stuck saga can be resumed", NULL,
                                  0);
        return;
    }
    if (rc != 0) {
        sl_respond_db_error(req, rc, NULL);
        return;
    }
    if (sl_saga_store_load(sl_svc_worker_db(w), def, st.id, &st) != 0) {
        sl_respond_db_error(req, SL_EIO, NULL);
        return;
    }
    sl_respond_owned(req, 200, state_json(def, &st, NULL));
}

/* POST /admin/sagas/{saga_id}/abort: compensate now; 409 past the pivot. */
static void h_saga_abort(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 1, &id) != 0) return;
    sl_saga_state st;
    const sl_saga_def *def = load_saga(req, w, &st);
    if (!def) return;
    int rc = sl_saga_driver_abort(order_worker_driver(sl_svc_worker_data(w), def), st.id);
    if (rc == SL_ESTATE) {
        sl_respond_problem_reason(req, 409, "past_pivot",
                                  "the saga is past its point of no return (or finished) and "
                                  "can only go forward",
                                  NULL, 0);
        return;
    }
    if (rc != 0 && rc != SL_ENOTFOUND) {
        sl_respond_db_error(req, rc, NULL);
        return;
    }
    if ((rc = sl_saga_store_load(sl_svc_worker_db(w), def, st.id, &st)) != 0) {
        sl_respond_db_error(req, rc, NULL);
        return;
    }
    sl_respond_owned(req, 200, state_json(def, &st, NULL));
}

/* ---- configuration and lifecycle ------------------------------------------------------------ */

/* "http://host:port" → "host:port" in out. */
static int endpoint_of(const char *url, char *out, size_t cap)
{
    if (strncmp(url, "http://", 7) != 0) return SL_ECONFIG;
    const char *hp = url + 7;
    size_t n = strcspn(hp, "/");
    if (n == 0 || n >= cap || strchr(hp, ':') == NULL) return SL_ECONFIG;
    memcpy(out, hp, n);
    out[n] = '\0';
    return 0;
}

/* A number key within [lo, hi]; *out holds the default on entry. */
static int get_ratio(sl_config *cfg, const char *path, double lo, double hi, double *out, char *err)
{
    int rc = sl_config_get_number(cfg, path, *out, out, err);
    if (rc == 0 && !(*out >= lo && *out <= hi)) {
        snprintf(err, SL_CONFIG_ERR_MAX, "%s: must be within %g .. %g", path, lo, hi);
        rc = SL_ECONFIG;
    }
    return rc;
}

/* The adaptive admission limit's keys (admission.h; docs/services/order.md). */
static int read_admission(sl_config *cfg, order_config *c, char *err)
{
    order_limit_config *l = &c->limit;
    order_limit_config_default(l);
    bool on = false;
    int rc = sl_config_get_bool(cfg, "order.admission.adaptive", false, &on, err);
    if (rc == 0)
        rc = sl_config_get_int(cfg, "order.admission.min_limit", l->min_limit, 1, 1000000,
                               &l->min_limit, err);
    if (rc == 0)
        rc = sl_config_get_int(cfg, "order.admission.initial_limit", 0, 0, 1000000,
                               &l->initial_limit, err);
    if (rc == 0)
        rc = sl_config_get_int(cfg, "order.admission.window_ms", l->window_ms, 10, 60000,
                               &l->window_ms, err);
    if (rc == 0)
        rc = sl_config_get_int(cfg, "order.admission.min_samples", l->min_samples, 1, 100000,
                               &l->min_samples, err);
    if (rc == 0)
        rc = sl_config_get_int(cfg, "order.admission.target_ms", l->target_ms, 0, 3600000,
                               &l->target_ms, err);
    if (rc == 0) rc = get_ratio(cfg, "order.admission.tolerance", 1.0, 100.0, &l->tolerance, err);
    if (rc == 0) rc = get_ratio(cfg, "order.admission.backoff", 0.05, 0.99, &l->backoff, err);
    if (rc == 0) rc = get_ratio(cfg, "order.admission.growth", 0.0, 1.0, &l->growth, err);
    c->adaptive = on;
    return rc;
}

static int read_config(sl_config *cfg, order_config *c, char *err)
{
    const char *inv = NULL, *pay = NULL, *key_file = NULL;
    int64_t v[11];
    int rc =
        sl_config_get_string(cfg, "upstreams.inventory.url", "http://127.0.0.1:8104", &inv, err);
    if (rc == 0)
        rc = sl_config_get_string(cfg, "upstreams.payment.url", "http://127.0.0.1:8106", &pay, err);
    if (rc == 0)
        rc = sl_config_get_int(cfg, "order.saga.step_timeout_ms", 5000, 10, 600000, &v[0], err);
    if (rc == 0)
        rc = sl_config_get_int(cfg, "order.saga.backoff_base_ms", 200, 1, 60000, &v[1], err);
    if (rc == 0)
        rc = sl_config_get_int(cfg, "order.saga.backoff_cap_ms", 10000, 1, 600000, &v[2], err);
    if (rc == 0)
        rc = sl_config_get_int(cfg, "order.saga.stuck_after_ms", 0, 0, 7LL * 86400000, &v[3], err);
    if (rc == 0) rc = sl_config_get_int(cfg, "order.saga.max_attempts", 0, 0, 1000000, &v[4], err);
    if (rc == 0)
        rc = sl_config_get_int(cfg, "order.breaker_recovery_ms", 5000, 10, 600000, &v[5], err);
    if (rc == 0)
        rc =
            sl_config_get_int(cfg, "order.saga.deadline_ms", 120000, 0, 7LL * 86400000, &v[6], err);
    if (rc == 0)
        rc = sl_config_get_int(cfg, "order.saga.max_active", 10000, 1, 1000000, &v[7], err);
    if (rc == 0)
        rc = sl_config_get_int(cfg, "order.admission.max_backlog", 256, 1, 1000000, &v[8], err);
    if (rc == 0)
        rc = sl_config_get_int(cfg, "order.saga.sweep_interval_ms", 5000, 10, 3600000, &v[9], err);
    if (rc == 0)
        rc = sl_config_get_int(cfg, "order.saga.sweep_grace_ms", 30000, 0, 86400000, &v[10], err);
    if (rc == 0)
        rc = sl_config_get_string(cfg, "identity.key_file", "data/identity.key", &key_file, err);
    if (rc == 0) rc = read_admission(cfg, c, err);
    if (rc != 0) return rc;
    if (endpoint_of(inv, c->inventory_url, sizeof c->inventory_url) != 0 ||
        endpoint_of(pay, c->payment_url, sizeof c->payment_url) != 0) {
        snprintf(err, SL_CONFIG_ERR_MAX, "upstreams.*.url: must be http://host:port");
        return SL_ECONFIG;
    }
    if (v[2] < v[1]) v[2] = v[1];
    c->saga = (order_saga_config){.step_timeout_ms = v[0],
                                  .backoff_base_ms = v[1],
                                  .backoff_cap_ms = v[2],
                                  .stuck_after_ms = v[3],
                                  .max_attempts = (uint32_t)v[4],
                                  .deadline_ms = v[6]};
    c->breaker_recovery_ms = v[5];
    c->max_active = (size_t)v[7];
    c->max_backlog = v[8];
    c->limit.max_limit = v[8];
    c->sweep_interval_ms = v[9];
    c->sweep_grace_ms = v[10];
    char kerr[256];
    c->have_key = sl_identity_keyring_load(key_file, &c->keys, kerr) == 0;
    return order_sagas_init(&c->sagas, &c->saga);
}

static int init(sl_service *svc)
{
    order_config *c = calloc(1, sizeof *c);
    if (!c) return SL_ENOMEM;
    char err[SL_CONFIG_ERR_MAX] = "";
    int rc = read_config(sl_service_config(svc), c, err);
    if (rc == 0 && (rc = sl_saga_registry_new(&c->registry)) != 0)
        snprintf(err, sizeof err, "saga registry: out of memory");
    if (rc == 0 && (rc = order_admission_new(c)) != 0)
        snprintf(err, sizeof err, "admission: out of memory");
    if (rc != 0) {
        SL_LOG_ERROR(sl_service_log(svc), NULL, "configuration", SL_LOG_STR("error", err),
                     SL_LOG_STR("code", sl_errname(rc)));
        sl_saga_registry_free(c->registry);
        free(c);
        return rc;
    }
    if (!c->have_key)
        SL_LOG_WARN(sl_service_log(svc), NULL,
                    "no identity key: saga calls go unsigned and participants will refuse them");
    SL_LOG_INFO(sl_service_log(svc), NULL, "participants",
                SL_LOG_STR("inventory", c->inventory_url), SL_LOG_STR("payment", c->payment_url),
                SL_LOG_INT("step_timeout_ms", c->saga.step_timeout_ms),
                SL_LOG_INT("stuck_after_ms", c->saga.stuck_after_ms));
    sl_service_set_data(svc, c);
    return 0;
}

static void fini(sl_service *svc)
{
    order_config *c = sl_service_data(svc);
    if (c) {
        memset(&c->keys, 0, sizeof c->keys);
        sl_saga_registry_free(c->registry);
        order_admission_free(c);
    }
    free(c);
    sl_service_set_data(svc, NULL);
}

static int worker_init(sl_svc_worker *w)
{
    order_worker *ow = NULL;
    int rc = order_worker_new(w, &ow);
    sl_svc_worker_set_data(w, ow);
    return rc;
}

static void worker_fini(sl_svc_worker *w)
{
    order_worker_close(sl_svc_worker_data(w));
    sl_svc_worker_set_data(w, NULL);
}

/* ---- definition ----------------------------------------------------------------------------- */

static const sl_route_def routes[] = {
    {SL_HTTP_POST, "/orders", h_create, 64 * 1024},
    {SL_HTTP_GET, "/orders", h_list, 0},
    {SL_HTTP_GET, "/orders/{order_id}", h_get, 0},
    {SL_HTTP_POST, "/orders/{order_id}/cancel", h_cancel, 8192},
    {SL_HTTP_POST, "/admin/orders/{order_id}/ship", h_ship, 4096},
    {SL_HTTP_POST, "/admin/orders/{order_id}/deliver", h_deliver, 4096},
    {SL_HTTP_GET, "/admin/sagas", h_sagas, 0},
    {SL_HTTP_GET, "/admin/sagas/{saga_id}", h_saga, 0},
    {SL_HTTP_POST, "/admin/sagas/{saga_id}/resume", h_saga_resume, 4096},
    {SL_HTTP_POST, "/admin/sagas/{saga_id}/abort", h_saga_abort, 4096},
    {SL_HTTP_GET, "/admin/audit", order_h_audit, 0},
};

static const sl_subscription_def subscriptions[] = {
    {.topic = PRODUCT_EV_CREATED, .apply = product_replica_apply},
    {.topic = PRODUCT_EV_UPDATED, .apply = product_replica_apply},
    {.topic = PRODUCT_EV_PRICE_CHANGED, .apply = product_replica_apply},
    /* Not its own order events: each is applied to order_history in the transaction that emits
     * it (order_emit), so their delivery from the bus changed nothing (docs/events.md). */
};

static const char *const publishes[] = {"order", NULL};
static const sl_migration_set *const replicas[] = {&sl_migrations_product_contract, NULL};

const sl_service_def order_service = {
    .name = "order",
    .default_port = 8105,
    .routes = routes,
    .nroutes = SL_ARRAY_LEN(routes),
    .init = init,
    .fini = fini,
    .worker_init = worker_init,
    .worker_fini = worker_fini,
    .migrations = &sl_migrations_order,
    .contract_migrations = replicas,
    .subscriptions = subscriptions,
    .nsubscriptions = SL_ARRAY_LEN(subscriptions),
    .publishes = publishes,
};
