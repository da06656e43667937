/*
 * The payment service definition: HTTP handlers for the wallet (public
 * paths /api/v1/wallet… arrive here as /wallet…), the internal charge and
 * refund endpoints of the checkout saga, the admin audit and balances list,
 * the shop.user.registered.v1 subscription (its applier is in events.c) and
 * the balances projection driven by a timer on worker 0. Handlers validate input, then
 * call the commands of commands.c; they never touch SQL themselves.
 */
#include "payment.h"

#include <shoal/bus.h>
#include <shoal/clock.h>
#include <shoal/config.h>
#include <shoal/cursor.h>
#include <shoal/identity.h>
#include <shoal/log.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROJECTION_POLL_MS 100
#define PROJECTION_BATCH   500
#define PROJECTION_ROUNDS  20 /* batches per tick at most, so a tick stays short */
#define CANON_MAX          512

typedef struct pay_service {
    int64_t snapshot_every;
    int64_t deposit_daily_limit; /* an owner's own deposits per UTC day */
} pay_service;

typedef struct pay_worker {
    uv_timer_t timer; /* worker 0: balances projection */
    sl_svc_worker *w;
} pay_worker;

/* ---- plumbing ------------------------------------------------------------------------------ */

static int emit_cb(void *data, sl_db *tx, const char *type, const char *subject,
                   const json_t *payload)
{
    sl_http_req *req = data;
    return sl_svc_emit(sl_req_worker(req), req, tx, type, subject, payload);
}

static void make_env(sl_http_req *req, sl_svc_worker *w, pay_env *env)
{
    const pay_service *ps = sl_service_data(sl_svc_worker_service(w));
    *env = (pay_env){.db = sl_svc_worker_db(w),
                     .snapshot_every = ps ? ps->snapshot_every : PAY_SNAPSHOT_EVERY,
                     .emit = emit_cb,
                     .emit_data = req};
}

static void respond_answer(sl_http_req *req, int rc, pay_answer *ans)
{
    if (rc != 0) {
        sl_respond_db_error(req, rc, NULL);
        return;
    }
    sl_http_respond_body(req, ans->status,
                         ans->problem ? "application/problem+json" : "application/json", ans->body,
                         ans->len);
    pay_answer_free(ans);
}

/* Answers 403 unless the caller is a service or an admin (internal saga endpoints). */
static int require_service(sl_http_req *req, sl_identity *id)
{
    int rc = sl_req_require_identity(req, 0, id);
    if (rc != 0) return rc;
    if (strcmp(id->role, "service") != 0 && strcmp(id->role, "admin") != 0) {
        sl_respond_problem_ex(req, 403, "this endpoint is for services and admins", NULL);
        return SL_EINVAL;
    }
    return 0;
}

/* Decodes %XX escapes of a query value into out (cap bytes). Returns 0, 1 when the parameter
 * is absent, or SL_EINVAL for a malformed or too long value. */
static int query_value(const sl_http_req *req, const char *name, char *out, size_t cap)
{
    sl_slice v;
    if (!sl_http_query_param(req->query, name, &v)) return 1;
    size_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        char c = v.ptr[i];
        if (c == '%') {
            if (i + 2 >= v.len) return SL_EINVAL;
            char hex[3] = {v.ptr[i + 1], v.ptr[i + 2], 0};
            char *end;
            long x = strtol(hex, &end, 16);
            if (*end != '\0' || x == 0) return SL_EINVAL;
            c = (char)x;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (n + 1 >= cap) return SL_EINVAL;
        out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

/* ---- wallet (the caller's own) ------------------------------------------------------------- */

static void h_wallet(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 0, &id) != 0) return;
    pay_env env;
    make_env(req, w, &env);
    pay_account a;
    pay_account_init(&a);
    int rc = pay_load(env.db, id.user_id, INT64_MAX, 1, &a);
    if (rc == 0 && a.version > 0) {
        sl_respond_owned(req, 200,
                         json_pack("{s:s,s:o,s:I}", "account_id", id.user_id, "balance",
                                   pay_money(a.balance), "version", (json_int_t)a.version));
        pay_account_free(&a);
        return;
    }
    pay_account_free(&a);
    if (rc != 0) {
        sl_respond_db_error(req, rc, NULL);
        return;
    }
    /* No wallet yet: the registration event is still on its way; open it now. */
    pay_answer ans;
    rc = pay_cmd_open(&env, id.user_id, &ans);
    respond_answer(req, rc, &ans);
}

/*
 * One command request with a JSON body: the caller, its Idempotency-Key, the body and, once
 * read, the canonical request text the key is bound to.
 */
typedef struct cmd_request {
    sl_identity id;
    sl_req_idem k;
    json_t *doc; /* the body; owned, released by cmd_finish or cmd_invalid */
    sl_json_errors errs;
    char canon[CANON_MAX];
    pay_idem idem;
    pay_env env;
} cmd_request;

/*
 * Starts a command with a JSON body: a service or an admin when `internal` (key scope "saga"),
 * else any signed-in user (scope "user:<id>"); then the Idempotency-Key, then the body.
 * Returns 0, or nonzero once it has answered (401/403, 400, 413...).
 */
static int cmd_begin(sl_http_req *req, int internal, cmd_request *c)
{
    c->doc = NULL;
    sl_json_errors_init(&c->errs);
    int rc = internal ? require_service(req, &c->id) : sl_req_require_identity(req, 0, &c->id);
    if (rc == 0)
        rc = internal ? sl_req_idem_read(req, &c->k, "saga")
                      : sl_req_idem_read(req, &c->k, "user:%s", c->id.user_id);
    if (rc == 0) rc = sl_req_json_body(req, &c->doc);
    return rc;
}

/*
 * Reads the body by the `n` rows of `f`, other members refused but `amount`, then `amount`
 * (two accepted shapes: pay_read_money) into `*amount`. Returns 1 when anything was invalid
 * (the errors are in c->errs), else 0.
 */
static int cmd_read(cmd_request *c, const sl_json_field *f, size_t n, int64_t *amount)
{
    /* Hide `amount` from the table's check of unknown members; put it back after. */
    json_t *amount_v = json_incref(json_object_get(c->doc, "amount"));
    json_object_del(c->doc, "amount");
    int bad = sl_json_read(c->doc, f, n, SL_JSON_REJECT_UNKNOWN, &c->errs) != 0;
    if (amount_v) json_object_set_new(c->doc, "amount", amount_v);
    bad |= pay_read_money(c->doc, "amount", PAY_AMOUNT_MAX, amount, &c->errs) != 0;
    return bad;
}

/* Answers 400 with c->errs. */
static void cmd_invalid(sl_http_req *req, cmd_request *c)
{
    sl_respond_invalid(req, &c->errs);
    json_decref(c->doc);
}

/* Binds the key to the canonical request text made from `fmt` and sets up c->env. */
static void cmd_prepare(cmd_request *c, sl_http_req *req, sl_svc_worker *w, const char *fmt, ...)
    SL_PRINTF(4, 5);
static void cmd_prepare(cmd_request *c, sl_http_req *req, sl_svc_worker *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->canon, sizeof c->canon, fmt, ap);
    va_end(ap);
    SL_ASSERT(n > 0 && n < CANON_MAX); /* every member is bounded by validation */
    c->idem = (pay_idem){c->k.scope, c->k.has ? c->k.key : NULL, c->canon, (size_t)n};
    make_env(req, w, &c->env);
}

/* Answers with the command's outcome (`rc`, `ans`) and releases the body. */
static void cmd_finish(sl_http_req *req, cmd_request *c, int rc, pay_answer *ans)
{
    json_decref(c->doc);
    respond_answer(req, rc, ans);
}

static void h_deposit(sl_http_req *req, sl_svc_worker *w)
{
    cmd_request c;
    if (cmd_begin(req, 0, &c) != 0) return;
    int64_t amount = 0;
    int bad = pay_read_money(c.doc, "amount", PAY_AMOUNT_MAX, &amount, &c.errs) != 0;
    /* `amount` has two accepted shapes, so unknown keys are checked by hand. */
    const char *name;
    json_t *v;
    json_object_foreach(c.doc, name, v)
    {
        if (strcmp(name, "amount") != 0) {
            sl_json_errors_add(&c.errs, name, "is not allowed");
            bad = 1;
        }
    }
    if (bad) {
        cmd_invalid(req, &c);
        return;
    }
    cmd_prepare(&c, req, w, "POST /wallet/deposits\n%lld", (long long)amount);
    const pay_service *ps = sl_service_data(sl_svc_worker_service(w));
    pay_deposit_ctx dep = {c.id.user_id, c.id.role, req->request_id,
                           ps ? ps->deposit_daily_limit : PAY_DEPOSIT_DAILY_LIMIT};
    pay_answer ans;
    int rc = pay_cmd_deposit(&c.env, &c.idem, c.id.user_id, amount, &dep, &ans);
    cmd_finish(req, &c, rc, &ans);
}

/* POST /admin/wallets/{user_id}/deposits: an admin credits any wallet, past the daily limit
 * (large amounts, corrections); audited with the admin as the actor. */
static void h_admin_deposit(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 1, &id) != 0) return;
    sl_slice uid = sl_route_param(&req->params, "user_id");
    char user_id[PAY_USER_ID_MAX + 1];
    int bad_uid = uid.len == 0 || uid.len > PAY_USER_ID_MAX;
    if (!bad_uid) {
        memcpy(user_id, uid.ptr, uid.len);
        user_id[uid.len] = '\0';
        bad_uid = !pay_user_id_valid(user_id, uid.len);
    }
    if (bad_uid) {
        sl_json_errors errs;
        sl_json_errors_init(&errs);
        sl_json_errors_add(&errs, "user_id", "must be 1..64 visible ASCII characters");
        sl_respond_problem_ex(req, 400, "invalid request", &errs);
        return;
    }
    cmd_request c;
    if (cmd_begin(req, 0, &c) != 0) return;
    int64_t amount = 0;
    int bad = pay_read_money(c.doc, "amount", PAY_AMOUNT_MAX, &amount, &c.errs) != 0;
    const char *name;
    json_t *v;
    json_object_foreach(c.doc, name, v)
    {
        if (strcmp(name, "amount") != 0) {
            sl_json_errors_add(&c.errs, name, "is not allowed");
            bad = 1;
        }
    }
    if (bad) {
        cmd_invalid(req, &c);
        return;
    }
    cmd_prepare(&c, req, w, "POST /admin/wallets/%s/deposits\n%lld", user_id, (long long)amount);
    pay_deposit_ctx dep = {id.user_id, id.role, req->request_id, 0};
    pay_answer ans;
    int rc = pay_cmd_deposit(&c.env, &c.idem, user_id, amount, &dep, &ans);
    cmd_finish(req, &c, rc, &ans);
}

static void h_transfer(sl_http_req *req, sl_svc_worker *w)
{
    cmd_request c;
    if (cmd_begin(req, 0, &c) != 0) return;
    const char *to = NULL;
    int64_t amount = 0;
    const sl_json_field fields[] = {
        {.name = "to_user_id",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = PAY_USER_ID_MAX,
         .max_bytes = PAY_USER_ID_MAX,
         .out = &to},
        {.name = "amount", .kind = SL_JSON_OBJECT}, /* validated below: two accepted shapes */
    };
    int bad = cmd_read(&c, fields, 1, &amount);
    if (!bad && !pay_user_id_valid(to, strlen(to))) {
        sl_json_errors_add(&c.errs, "to_user_id", "is not a user id");
        bad = 1;
    }
    if (!bad && strcmp(to, c.id.user_id) == 0) {
        sl_json_errors_add(&c.errs, "to_user_id", "cannot transfer to yourself");
        bad = 1;
    }
    if (bad) {
        cmd_invalid(req, &c);
        return;
    }
    cmd_prepare(&c, req, w, "POST /wallet/transfers\n%s\n%lld", to, (long long)amount);
    pay_answer ans;
    int rc = pay_cmd_transfer(&c.env, &c.idem, c.id.user_id, to, amount, &ans);
    cmd_finish(req, &c, rc, &ans);
}

typedef struct hist_out {
    json_t *items;
} hist_out;

static int hist_item(void *data, const pay_history_item *it)
{
    hist_out *h = data;
    char at[SL_RFC3339_MAX];
    sl_rfc3339_format(it->at_ms * 1000000, at, sizeof at);
    json_t *o = json_pack("{s:I,s:I,s:s,s:o,s:o,s:s}", "position", (json_int_t)it->position,
                          "version", (json_int_t)it->version, "type", pay_kind_name(it->ev->kind),
                          "amount", pay_money(it->ev->amount), "balance_after",
                          pay_money(it->balance_after), "at", at);
    if (!o) return SL_ENOMEM;
    if (it->ev->order_id[0]) json_object_set_new(o, "order_id", json_string(it->ev->order_id));
    if (it->ev->peer[0])
        json_object_set_new(o, it->ev->kind == PAY_EV_WITHDRAWN ? "to_user_id" : "from_user_id",
                            json_string(it->ev->peer));
    return json_array_append_new(h->items, o) ? SL_ENOMEM : 0;
}

/* Reads ?cursor= of the wallet history ("wh", the version served last). Returns 0 with the
 * version in *before (0: no cursor), or SL_EINVAL with the error in errs. */
static int history_cursor(const sl_http_req *req, int64_t page, int64_t *before,
                          sl_json_errors *errs)
{
    *before = 0;
    sl_slice v;
    if (!sl_http_query_param(req->query, "cursor", &v)) return 0;
    sl_cursor c;
    char *end = NULL;
    long long n = 0;
    if (sl_cursor_decode(v.ptr, v.len, &c) == 0 && c.n == 2 && strcmp(c.f[0], "wh") == 0)
        n = strtoll(c.f[1], &end, 10);
    if (!end || *end || n < 2) {
        sl_json_errors_add(errs, "cursor", "is not a next_cursor of this list");
        return SL_EINVAL;
    }
    if (page != 1) {
        sl_json_errors_add(errs, "cursor", "cannot be combined with page");
        return SL_EINVAL;
    }
    *before = n;
    return 0;
}

static void h_history(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 0, &id) != 0) return;
    int64_t page, per_page, before = 0;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (sl_req_page(req, &page, &per_page, &errs) != 0 ||
        sl_page_depth_check(page, per_page, &errs) != 0 ||
        history_cursor(req, page, &before, &errs) != 0) {
        sl_respond_invalid(req, &errs);
        return;
    }
    sl_db *db = sl_svc_worker_db(w);
    char stream[PAY_STREAM_MAX];
    pay_stream_name(id.user_id, stream);
    int64_t total = 0;
    int rc = sl_es_stream_version(db, stream, &total);
    hist_out h = {json_array()};
    /* Newest first: page 1 holds versions total .. total-per_page+1; a cursor (keyset) holds
     * the version served last, so events appended meanwhile never shift the walk. */
    int64_t hi = before ? before - 1 : total - (page - 1) * per_page, lo = hi - per_page + 1;
    if (hi > total) hi = total;
    if (lo < 1) lo = 1;
    if (rc == 0 && hi >= 1) rc = pay_history(db, id.user_id, lo, hi, hist_item, &h);
    if (rc != 0) {
        json_decref(h.items);
        sl_respond_db_error(req, rc, NULL);
        return;
    }
    char next[SL_CURSOR_MAX + 1] = "", ver[24];
    snprintf(ver, sizeof ver, "%lld", (long long)lo);
    const char *f[] = {"wh", ver};
    if (hi >= 1 && lo > 1 && sl_cursor_encode(f, 2, next, sizeof next) != 0) next[0] = '\0';
    sl_respond_owned(req, 200,
                     json_pack("{s:o,s:I,s:I,s:I,s:o}", "items", h.items, "page", (json_int_t)page,
                               "per_page", (json_int_t)per_page, "total", (json_int_t)total,
                               "next_cursor", next[0] ? json_string(next) : json_null()));
}

static void h_balance_as_of(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 0, &id) != 0) return;
    char text[64];
    int64_t ns = 0;
    int q = query_value(req, "as_of", text, sizeof text);
    if (q != 0 || sl_rfc3339_parse(text, strlen(text), &ns) != 0) {
        sl_json_errors errs;
        sl_json_errors_init(&errs);
        sl_json_errors_add(&errs, "as_of",
                           q == 1 ? "is required" : "must be an RFC 3339 date-time");
        sl_respond_invalid(req, &errs);
        return;
    }
    /* Floor to the millisecond events are stamped with (negative times floor too). */
    int64_t as_of_ms = ns / 1000000 - (ns % 1000000 < 0);
    pay_account a;
    pay_account_init(&a);
    int rc = pay_load(sl_svc_worker_db(w), id.user_id, as_of_ms, 1, &a);
    if (rc != 0) {
        pay_account_free(&a);
        sl_respond_db_error(req, rc, NULL);
        return;
    }
    char at[SL_RFC3339_MAX] = "";
    sl_rfc3339_format(as_of_ms * 1000000, at, sizeof at);
    sl_respond_owned(req, 200,
                     json_pack("{s:o,s:I,s:s}", "balance", pay_money(a.balance), "version",
                               (json_int_t)a.version, "as_of", at));
    pay_account_free(&a);
}

/* ---- internal: charges and refunds (checkout saga) ----------------------------------------- */

static void h_charge(sl_http_req *req, sl_svc_worker *w)
{
    cmd_request c;
    if (cmd_begin(req, 1, &c) != 0) return;
    const char *order_id = NULL, *user_id = NULL;
    int64_t amount = 0;
    const sl_json_field fields[] = {
        {.name = "order_id",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = PAY_ORDER_ID_MAX,
         .max_bytes = PAY_ORDER_ID_MAX,
         .out = &order_id},
        {.name = "user_id",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = PAY_USER_ID_MAX,
         .max_bytes = PAY_USER_ID_MAX,
         .out = &user_id},
    };
    int bad = cmd_read(&c, fields, SL_ARRAY_LEN(fields), &amount);
    if (order_id && !pay_order_id_valid(order_id, strlen(order_id))) {
        sl_json_errors_add(&c.errs, "order_id", "may only hold letters, digits and . _ : -");
        bad = 1;
    }
    if (user_id && !pay_user_id_valid(user_id, strlen(user_id))) {
        sl_json_errors_add(&c.errs, "user_id", "is not a user id");
        bad = 1;
    }
    if (bad) {
        cmd_invalid(req, &c);
        return;
    }
    cmd_prepare(&c, req, w, "POST /charges\n%s\n%s\n%lld", order_id, user_id, (long long)amount);
    pay_answer ans;
    int rc = pay_cmd_charge(&c.env, &c.idem, order_id, user_id, amount, &ans);
    cmd_finish(req, &c, rc, &ans);
}

static void h_refund(sl_http_req *req, sl_svc_worker *w)
{
    cmd_request c;
    c.doc = NULL;
    sl_json_errors_init(&c.errs);
    if (require_service(req, &c.id) != 0 || sl_req_idem_read(req, &c.k, "saga") != 0) return;
    sl_slice p = sl_route_param(&req->params, "order_id");
    char order_id[PAY_ORDER_ID_MAX + 1];
    if (!pay_order_id_valid(p.ptr, p.len)) {
        sl_json_errors_add(&c.errs, "order_id", "is not an order id");
        cmd_invalid(req, &c);
        return;
    }
    memcpy(order_id, p.ptr, p.len);
    order_id[p.len] = '\0';
    const char *user_id = NULL;
    if (req->body.len > 0) {
        if (sl_req_json_body(req, &c.doc) != 0) return;
        const sl_json_field fields[] = {{.name = "user_id",
                                         .kind = SL_JSON_STRING,
                                         .flags = SL_JSON_NULLABLE,
                                         .min = 1,
                                         .max = PAY_USER_ID_MAX,
                                         .max_bytes = PAY_USER_ID_MAX,
                                         .out = &user_id}};
        int bad = sl_json_read(c.doc, fields, 1, SL_JSON_REJECT_UNKNOWN, &c.errs) != 0;
        if (!bad && user_id && !pay_user_id_valid(user_id, strlen(user_id))) {
            sl_json_errors_add(&c.errs, "user_id", "is not a user id");
            bad = 1;
        }
        if (bad) {
            cmd_invalid(req, &c);
            return;
        }
    }
    cmd_prepare(&c, req, w, "POST /charges/%s/refund\n%s", order_id, user_id ? user_id : "");
    pay_answer ans;
    int rc = pay_cmd_refund(&c.env, &c.idem, order_id, user_id, &ans);
    cmd_finish(req, &c, rc, &ans);
}

/* ---- admin ------------------------------------------------------------------------------- */

/* Runs the projection until caught up (bounded); worker 0 only, the projection's owner. */
static int project_catch_up(sl_svc_worker *w)
{
    if (sl_svc_worker_index(w) != 0) return 0;
    for (int i = 0; i < PROJECTION_ROUNDS; i++) {
        size_t handled = 0;
        int rc = pay_project_poll(sl_svc_worker_db(w), PROJECTION_BATCH, &handled);
        if (rc != 0) return rc;
        if (handled < PROJECTION_BATCH) return 0;
    }
    return 0;
}

static void h_audit(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 1, &id) != 0) return;
    int rc = project_catch_up(w);
    json_t *report = NULL;
    if (rc == 0) rc = pay_audit(sl_svc_worker_db(w), &report);
    if (rc != 0) {
        sl_respond_db_error(req, rc, NULL);
        return;
    }
    sl_respond_owned(req, 200, report);
}

static int view_item(void *data, const pay_view_row *r)
{
    json_t *o =
        json_pack("{s:s,s:o,s:I,s:I}", "account_id", r->user_id, "balance", pay_money(r->balance),
                  "version", (json_int_t)r->version, "position", (json_int_t)r->position);
    return o && json_array_append_new(data, o) == 0 ? 0 : SL_ENOMEM;
}

static void h_wallets(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 1, &id) != 0) return;
    int64_t page, per_page, total = 0;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (sl_req_page(req, &page, &per_page, &errs) != 0) {
        sl_respond_invalid(req, &errs);
        return;
    }
    json_t *items = json_array();
    int rc = items ? pay_view_list(sl_svc_worker_db(w), (page - 1) * per_page, per_page, view_item,
                                   items, &total)
                   : SL_ENOMEM;
    if (rc != 0) {
        json_decref(items);
        sl_respond_db_error(req, rc, NULL);
        return;
    }
    sl_respond_owned(req, 200,
                     json_pack("{s:o,s:I,s:I,s:I}", "items", items, "page", (json_int_t)page,
                               "per_page", (json_int_t)per_page, "total", (json_int_t)total));
}

/* ---- lifecycle --------------------------------------------------------------------------- */

static void on_poll(uv_timer_t *t)
{
    pay_worker *pw = t->data;
    int rc = project_catch_up(pw->w);
    if (rc != 0)
        SL_LOG_WARN(sl_svc_worker_log(pw->w), NULL, "balances projection step failed",
                    SL_LOG_STR("code", sl_errname(rc)),
                    SL_LOG_STR("error", sl_db_errmsg(sl_svc_worker_db(pw->w))));
}

static void worker_closed(uv_handle_t *h)
{
    free(h->data);
}

static int worker_init(sl_svc_worker *w)
{
    if (sl_svc_worker_index(w) != 0) return 0;
    pay_worker *pw = calloc(1, sizeof *pw);
    if (!pw) return SL_ENOMEM;
    pw->w = w;
    uv_timer_init(sl_svc_worker_loop(w), &pw->timer);
    pw->timer.data = pw;
    uv_timer_start(&pw->timer, on_poll, PROJECTION_POLL_MS, PROJECTION_POLL_MS);
    sl_svc_worker_set_data(w, pw);
    return 0;
}

static void worker_fini(sl_svc_worker *w)
{
    pay_worker *pw = sl_svc_worker_data(w);
    if (!pw) return;
    uv_timer_stop(&pw->timer);
    uv_close((uv_handle_t *)&pw->timer, worker_closed);
    sl_svc_worker_set_data(w, NULL);
}

static int service_init(sl_service *svc)
{
    pay_service *ps = calloc(1, sizeof *ps);
    if (!ps) return SL_ENOMEM;
    char err[SL_CONFIG_ERR_MAX];
    if (sl_config_get_int(sl_service_config(svc), "payment.snapshot_every", PAY_SNAPSHOT_EVERY, 0,
                          100000, &ps->snapshot_every, err) != 0) {
        SL_LOG_ERROR(sl_service_log(svc), NULL, "bad configuration", SL_LOG_STR("error", err));
        free(ps);
        return SL_ECONFIG;
    }
    if (sl_config_get_int(sl_service_config(svc), "payment.deposit_daily_limit",
                          PAY_DEPOSIT_DAILY_LIMIT, 0, PAY_BALANCE_MAX, &ps->deposit_daily_limit,
                          err) != 0) {
        SL_LOG_ERROR(sl_service_log(svc), NULL, "bad configuration", SL_LOG_STR("error", err));
        free(ps);
        return SL_ECONFIG;
    }
    sl_service_set_data(svc, ps);
    return 0;
}

static void service_fini(sl_service *svc)
{
    free(sl_service_data(svc));
    sl_service_set_data(svc, NULL);
}

static const sl_route_def routes[] = {
    {SL_HTTP_GET, "/wallet", h_wallet, 0},
    {SL_HTTP_POST, "/wallet/deposits", h_deposit, 4096},
    {SL_HTTP_POST, "/admin/wallets/{user_id}/deposits", h_admin_deposit, 4096},
    {SL_HTTP_POST, "/wallet/transfers", h_transfer, 4096},
    {SL_HTTP_GET, "/wallet/history", h_history, 0},
    {SL_HTTP_GET, "/wallet/balance", h_balance_as_of, 0},
    {SL_HTTP_POST, "/charges", h_charge, 4096},
    {SL_HTTP_POST, "/charges/{order_id}/refund", h_refund, 4096},
    {SL_HTTP_GET, "/admin/audit", h_audit, 0},
    {SL_HTTP_GET, "/admin/wallets", h_wallets, 0},
};

static const sl_subscription_def subscriptions[] = {
    {.topic = "shop.user.registered.v1", .apply = pay_apply_user_registered},
};

static const char *const publishes[] = {"payment", NULL};

const sl_service_def payment_service = {
    .name = "payment",
    .default_port = 8106,
    .routes = routes,
    .nroutes = SL_ARRAY_LEN(routes),
    .init = service_init,
    .fini = service_fini,
    .worker_init = worker_init,
    .worker_fini = worker_fini,
    .migrations = &sl_migrations_payment,
    .subscriptions = subscriptions,
    .nsubscriptions = SL_ARRAY_LEN(subscriptions),
    .publishes = publishes,
};
