/*
 * shoal-user's HTTP handlers (internal paths; the gateway maps /api/v1/...):
 *   POST /register, POST /login         public; Argon2id work runs on the libuv threadpool
 *   GET  /.well-known/jwks.json         public; the token verification keys
 *   GET/PATCH /users/me, GET /users/{id}, GET /users (admin)   identity from the gateway
 * Commands (register, patch) go to the write model and answer with the write's
 * `position`; reads come from the read model and, given `min_position`, wait on
 * a timer until the read model has reached it (read-your-writes).
 *
 * Passwords are never logged; the request's copies are wiped once handed to the
 * hashing work, which wipes its own.
 */
#include "user_int.h"

#include <shoal/identity.h>
#include <shoal/log.h>
#include <shoal/router.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DETAIL_BAD_LOGIN "the email or password is wrong"

static user_worker *worker_of(sl_svc_worker *w)
{
    return sl_svc_worker_data(w);
}

/* A problem answer with Retry-After (429, 503). */
static void respond_retry(sl_http_req *req, int status, const char *detail, int64_t secs)
{
    size_t len = 0;
    char *body = sl_problem_body(status, NULL, detail, NULL, &len);
    char ra[24];
    int n = snprintf(ra, sizeof ra, "%lld", (long long)secs);
    sl_http_header hs[2] = {{{"Content-Type", 12}, {"application/problem+json", 24}},
                            {{"Retry-After", 11}, {ra, (size_t)n}}};
    sl_http_respond(req, status, hs, 2, body ? body : "", body ? len : 0);
    free(body);
}

static void respond_db_error(sl_http_req *req, sl_svc_worker *w, int rc, const char *what)
{
    SL_LOG_ERROR(sl_svc_worker_log(w), sl_req_trace(req), what, SL_LOG_STR("error", sl_errname(rc)),
                 SL_LOG_STR("db", sl_svc_worker_db(w) ? sl_db_errmsg(sl_svc_worker_db(w)) : ""));
    if (rc == SL_EBUSY || rc == SL_EUNAVAIL)
        respond_retry(req, 503, "the database is busy", 1);
    else
        sl_respond_problem_ex(req, 500, "internal error", NULL);
}

static void respond_user(sl_http_req *req, int status, const user_state *u)
{
    json_t *j = user_json(u);
    if (j) json_object_set_new(j, "position", json_integer(u->position));
    sl_respond_json_value(req, status, j);
    json_decref(j);
}

/* Wipes a password in the parsed document and in the request body. The jansson string and
 * the body bytes are owned by this request and never read again, so the const is cast away
 * only to zero them. */
static void wipe_password(sl_http_req *req, json_t *doc)
{
    json_t *p = json_object_get(doc, "password");
    if (json_is_string(p)) sodium_memzero((char *)json_string_value(p), json_string_length(p));
    if (req->body.len) sodium_memzero((char *)req->body.ptr, req->body.len);
}

static void field_error(sl_json_errors *errs, const char *field, int rc, const char *why)
{
    if (rc != 0) sl_json_errors_add(errs, field, "%s", why);
}

/* ---- POST /register ------------------------------------------------------------------------ */

typedef struct reg_op {
    sl_http_req *req;
    user_worker *uw;
    char email[USER_EMAIL_MAX + 1];
    char name[USER_NAME_MAX_BYTES + 1];
} reg_op;

static void reg_hashed(int status, const char *hash, void *data)
{
    reg_op *op = data;
    user_worker *uw = op->uw;
    sl_http_req *req = op->req;
    if (uw->closing || status != 0) {
        if (status != 0)
            SL_LOG_ERROR(sl_svc_worker_log(uw->w), NULL, "password hashing failed",
                         SL_LOG_STR("error", sl_errname(status)));
        respond_retry(req, 503, "the service cannot register now", 1);
        goto out;
    }
    user_new u = {.email = op->email, .name = op->name, .role = "customer", .password_hash = hash};
    user_state st;
    int rc = user_store_create(sl_svc_worker_db(uw->w), &u,
                               req->traceparent[0] ? req->traceparent : NULL,
                               sl_clock_wall_ns(sl_clock_system()), &st);
    if (rc == SL_ECONFLICT) {
        sl_json_errors errs;
        sl_json_errors_init(&errs);
        sl_json_errors_add(&errs, "email", "is already registered");
        sl_respond_problem_ex(req, 409, "the email is already registered", &errs);
    } else if (rc != 0) {
        respond_db_error(req, uw->w, rc, "register failed");
    } else {
        user_project_now(uw);
        SL_LOG_INFO(sl_svc_worker_log(uw->w), NULL, "user registered",
                    SL_LOG_STR("user_id", st.id));
        respond_user(req, 201, &st);
    }
out:
    sodium_memzero(op, sizeof *op);
    free(op);
    user_worker_unref(uw);
}

/* Starts the hash; answers the request itself on failure. */
static void reg_submit(sl_http_req *req, user_worker *uw, const char *email, const char *name,
                       const char *pw, size_t pwlen)
{
    user_row row;
    int rc = user_store_by_email(sl_svc_worker_db(uw->w), email, &row);
    sodium_memzero(row.password_hash, sizeof row.password_hash);
    if (rc == 0) {
        sl_json_errors errs;
        sl_json_errors_init(&errs);
        sl_json_errors_add(&errs, "email", "is already registered");
        sl_respond_problem_ex(req, 409, "the email is already registered", &errs);
        return;
    }
    if (rc != SL_ENOTFOUND) {
        respond_db_error(req, uw->w, rc, "register lookup failed");
        return;
    }
    reg_op *op = calloc(1, sizeof *op);
    if (!op) {
        respond_retry(req, 503, "out of memory", 1);
        return;
    }
    op->req = req;
    op->uw = uw;
    snprintf(op->email, sizeof op->email, "%s", email);
    snprintf(op->name, sizeof op->name, "%s", name);
    rc = sl_password_hash_async(sl_svc_worker_loop(uw->w), &uw->lim, pw, pwlen, &uw->svc->cost,
                                reg_hashed, op);
    if (rc != 0) {
        free(op);
        respond_retry(req, 503, "too many password operations in progress", 1);
        return;
    }
    uw->refs++;
}

void user_h_register(sl_http_req *req, sl_svc_worker *w)
{
    user_worker *uw = worker_of(w);
    json_t *doc;
    if (sl_req_json_body(req, &doc) != 0) return;
    const char *email = NULL, *pw = NULL, *name = NULL;
    const sl_json_field fields[] = {
        {.name = "email", .kind = SL_JSON_STRING, .flags = SL_JSON_REQUIRED, .out = &email},
        {.name = "password", .kind = SL_JSON_STRING, .flags = SL_JSON_REQUIRED, .out = &pw},
        {.name = "name", .kind = SL_JSON_STRING, .flags = SL_JSON_REQUIRED, .out = &name},
    };
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    int bad = sl_json_read(doc, fields, SL_ARRAY_LEN(fields), SL_JSON_REJECT_UNKNOWN, &errs) != 0;
    char nemail[USER_EMAIL_MAX + 1], nname[USER_NAME_MAX_BYTES + 1];
    const char *why = NULL;
    int rc;
    if (email) {
        rc = user_email_normalize(email, strlen(email), nemail, &why);
        field_error(&errs, "email", rc, why);
        bad |= rc != 0;
    }
    if (pw) {
        rc = user_password_check(pw, strlen(pw), &why);
        field_error(&errs, "password", rc, why);
        bad |= rc != 0;
    }
    if (name) {
        rc = user_name_check(name, strlen(name), nname, &why);
        field_error(&errs, "name", rc, why);
        bad |= rc != 0;
    }
    if (bad)
        sl_respond_invalid(req, &errs);
    else
        reg_submit(req, uw, nemail, nname, pw, strlen(pw));
    wipe_password(req, doc);
    json_decref(doc);
}

/* ---- POST /login --------------------------------------------------------------------------- */

typedef struct login_op {
    sl_http_req *req;
    user_worker *uw;
    int known; /* the email belongs to a user (else the dummy hash was verified) */
    char user_id[USER_ID_MAX + 1];
    char role[USER_ROLE_MAX + 1];
} login_op;

static void respond_token(sl_http_req *req, user_worker *uw, const char *user_id, const char *role)
{
    const user_svc *us = uw->svc;
    sl_jwt_claims claims;
    char *token = NULL;
    int64_t now_s = sl_clock_wall_ms(sl_clock_system()) / 1000;
    int rc = user_claims_make(user_id, role, us->issuer, now_s, us->token_ttl_s, &claims);
    if (rc == 0) rc = sl_jwt_sign(us->signing, &claims, &token, NULL);
    if (rc != 0) {
        SL_LOG_ERROR(sl_svc_worker_log(uw->w), sl_req_trace(req), "token signing failed",
                     SL_LOG_STR("error", sl_errname(rc)));
        sl_respond_problem_ex(req, 500, "internal error", NULL);
        return;
    }
    json_t *j = json_pack("{s:s, s:s, s:I, s:s}", "access_token", token, "token_type", "Bearer",
                          "expires_in", (json_int_t)us->token_ttl_s, "user_id", user_id);
    char *body = j ? sl_json_dump(j, NULL) : NULL;
    json_decref(j);
    free(token);
    if (!body) {
        sl_respond_problem_ex(req, 500, "internal error", NULL);
        return;
    }
    /* RFC 6749 §5.1: responses carrying tokens are not cached. */
    sl_http_header hs[2] = {{{"Content-Type", 12}, {"application/json", 16}},
                            {{"Cache-Control", 13}, {"no-store", 8}}};
    sl_http_respond(req, 200, hs, 2, body, strlen(body));
    free(body);
}

static void login_verified(int status, void *data)
{
    login_op *op = data;
    user_worker *uw = op->uw;
    if (uw->closing) {
        respond_retry(op->req, 503, "the service is stopping", 1);
    } else if (status == 0 && op->known) {
        respond_token(op->req, uw, op->user_id, op->role);
    } else {
        if (status != 0 && status != SL_EINVAL)
            SL_LOG_ERROR(sl_svc_worker_log(uw->w), NULL, "password verification failed",
                         SL_LOG_STR("error", sl_errname(status)));
        /* One answer for an unknown email and a wrong password (no user enumeration). */
        sl_respond_problem_ex(op->req, 401, DETAIL_BAD_LOGIN, NULL);
    }
    free(op);
    user_worker_unref(uw);
}

static void login_submit(sl_http_req *req, user_worker *uw, const char *email, int email_ok,
                         const char *pw, size_t pwlen)
{
    login_op *op = calloc(1, sizeof *op);
    if (!op) {
        respond_retry(req, 503, "out of memory", 1);
        return;
    }
    op->req = req;
    op->uw = uw;
    user_row row;
    memset(&row, 0, sizeof row);
    int rc = email_ok ? user_store_by_email(sl_svc_worker_db(uw->w), email, &row) : SL_ENOTFOUND;
    if (rc != 0 && rc != SL_ENOTFOUND) {
        free(op);
        respond_db_error(req, uw->w, rc, "login lookup failed");
        return;
    }
    op->known = rc == 0;
    snprintf(op->user_id, sizeof op->user_id, "%s", row.s.id);
    snprintf(op->role, sizeof op->role, "%s", row.s.role);
    const char *stored = op->known ? row.password_hash : uw->svc->dummy_hash;
    rc = sl_password_verify_async(sl_svc_worker_loop(uw->w), &uw->lim, stored, pw, pwlen,
                                  login_verified, op);
    sodium_memzero(row.password_hash, sizeof row.password_hash);
    if (rc == SL_EPARSE) {
        /* A stored hash that is not Argon2: nobody can log in with it. */
        SL_LOG_ERROR(sl_svc_worker_log(uw->w), sl_req_trace(req), "stored password hash is invalid",
                     SL_LOG_STR("user_id", op->user_id));
        rc = sl_password_verify_async(sl_svc_worker_loop(uw->w), &uw->lim, uw->svc->dummy_hash, pw,
                                      pwlen, login_verified, op);
        op->known = 0;
    }
    if (rc != 0) {
        free(op);
        respond_retry(req, 503, "too many password operations in progress", 1);
        return;
    }
    uw->refs++;
}

void user_h_login(sl_http_req *req, sl_svc_worker *w)
{
    user_worker *uw = worker_of(w);
    json_t *doc;
    if (sl_req_json_body(req, &doc) != 0) return;
    const char *email = NULL, *pw = NULL;
    const sl_json_field fields[] = {
        {.name = "email",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .max = USER_EMAIL_INPUT_MAX,
         .out = &email},
        {.name = "password",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .max = USER_PASSWORD_MAX_CHARS,
         .max_bytes = USER_PASSWORD_MAX_BYTES,
         .out = &pw},
    };
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (sl_json_read(doc, fields, SL_ARRAY_LEN(fields), SL_JSON_REJECT_UNKNOWN, &errs) != 0) {
        sl_respond_invalid(req, &errs);
        goto out;
    }
    char nemail[USER_EMAIL_MAX + 1];
    int email_ok = user_email_normalize(email, strlen(email), nemail, NULL) == 0;
    int64_t wait_ms = 0;
    /* Per account (the normalised email), per worker. A malformed email names no account. */
    if (email_ok && sl_ratelimit_take(uw->rl, nemail, strlen(nemail), &wait_ms) == SL_ELIMIT) {
        SL_LOG_INFO(sl_svc_worker_log(w), sl_req_trace(req), "login rate limited");
        respond_retry(req, 429, "too many login attempts for this account; try again later",
                      user_retry_after_s(wait_ms));
        goto out;
    }
    login_submit(req, uw, nemail, email_ok, pw, strlen(pw));
out:
    wipe_password(req, doc);
    json_decref(doc);
}

/* ---- GET /.well-known/jwks.json ------------------------------------------------------------- */

void user_h_jwks(sl_http_req *req, sl_svc_worker *w)
{
    const user_svc *us = worker_of(w)->svc;
    sl_http_header hs[2] = {{{"Content-Type", 12}, {"application/json", 16}},
                            {{"Cache-Control", 13}, {"public, max-age=300", 19}}};
    sl_http_respond(req, 200, hs, 2, us->jwks, us->jwks_len);
}

/* ---- reads with read-your-writes ------------------------------------------------------------ */

typedef enum { READ_ONE, READ_LIST } read_kind;

struct read_wait {
    uv_timer_t timer;
    sl_http_req *req;
    user_worker *uw;
    read_kind kind;
    char id[USER_ID_MAX + 1];
    char role[USER_ROLE_MAX + 1]; /* "" = every role */
    int64_t page, per_page, min_position;
    uint64_t deadline; /* uv_now() ms */
    read_wait *next;
};

static void serve_list(read_wait *rw, sl_db *db)
{
    json_t *items = json_array();
    int64_t total = 0;
    int rc = items ? user_view_list(db, rw->role[0] ? rw->role : NULL, rw->page, rw->per_page,
                                    items, &total)
                   : SL_ENOMEM;
    if (rc != 0) {
        json_decref(items);
        respond_db_error(rw->req, rw->uw->w, rc, "list users failed");
        return;
    }
    json_t *j = json_pack("{s:o, s:I, s:I, s:I}", "items", items, "page", (json_int_t)rw->page,
                          "per_page", (json_int_t)rw->per_page, "total", (json_int_t)total);
    sl_respond_json_value(rw->req, 200, j);
    json_decref(j);
}

/* Serves the read if the view has reached min_position (or `final`). Returns 1 when answered. */
static int read_try(read_wait *rw, int final)
{
    sl_db *db = sl_svc_worker_db(rw->uw->w);
    int64_t wm = 0;
    int rc = user_view_watermark(db, &wm);
    user_state u;
    int64_t rowpos = -1;
    if (rc == 0 && rw->kind == READ_ONE) {
        rc = user_view_get(db, rw->id, &u);
        if (rc == 0) rowpos = u.position;
        if (rc == SL_ENOTFOUND) rc = 0;
    }
    if (rc != 0) {
        respond_db_error(rw->req, rw->uw->w, rc, "read model query failed");
        return 1;
    }
    if (!user_position_reached(rw->min_position, wm, rowpos)) {
        if (!final) return 0;
        respond_retry(rw->req, 503, "the read model has not reached min_position yet", 1);
        return 1;
    }
    if (rw->kind == READ_LIST)
        serve_list(rw, db);
    else if (rowpos < 0)
        sl_respond_problem_ex(rw->req, 404, "no such user", NULL);
    else
        respond_user(rw->req, 200, &u);
    return 1;
}

static void wait_closed(uv_handle_t *h)
{
    read_wait *rw = h->data;
    user_worker *uw = rw->uw;
    free(rw);
    user_worker_unref(uw);
}

static void wait_finish(read_wait *rw)
{
    for (read_wait **p = &rw->uw->waits; *p; p = &(*p)->next) {
        if (*p == rw) {
            *p = rw->next;
            break;
        }
    }
    uv_timer_stop(&rw->timer);
    uv_close((uv_handle_t *)&rw->timer, wait_closed);
}

static void wait_tick(uv_timer_t *t)
{
    read_wait *rw = t->data;
    if (sl_http_req_cancelled(rw->req)) {
        sl_respond_problem_ex(rw->req, 503, "the client went away", NULL); /* releases it */
        wait_finish(rw);
        return;
    }
    int final = uv_now(t->loop) >= rw->deadline;
    if (read_try(rw, final)) wait_finish(rw);
}

void user_waits_abort(user_worker *uw)
{
    while (uw->waits) {
        read_wait *rw = uw->waits;
        respond_retry(rw->req, 503, "the service is stopping", 1);
        wait_finish(rw);
    }
}

/* Serves `tmpl` now, or waits for the read model on a timer. */
static void read_start(const read_wait *tmpl)
{
    read_wait first = *tmpl;
    user_worker *uw = tmpl->uw;
    if (read_try(&first, uw->svc->read_wait_ms == 0)) return;
    read_wait *rw = malloc(sizeof *rw);
    if (!rw) {
        respond_retry(tmpl->req, 503, "out of memory", 1);
        return;
    }
    *rw = *tmpl;
    uv_loop_t *loop = sl_svc_worker_loop(uw->w);
    uv_timer_init(loop, &rw->timer);
    rw->timer.data = rw;
    rw->deadline = uv_now(loop) + (uint64_t)uw->svc->read_wait_ms;
    rw->next = uw->waits;
    uw->waits = rw;
    uw->refs++;
    uv_timer_start(&rw->timer, wait_tick, (uint64_t)uw->svc->read_poll_ms,
                   (uint64_t)uw->svc->read_poll_ms);
}

/* Reads ?min_position= (0 when absent): at most the last position handed out. */
static int read_min_position(sl_http_req *req, sl_svc_worker *w, int64_t *out, sl_json_errors *errs)
{
    sl_slice v;
    *out = 0;
    if (!sl_http_query_param(req->query, "min_position", &v)) return 0;
    int64_t n = 0;
    int ok = v.len > 0 && v.len <= 18;
    for (size_t i = 0; ok && i < v.len; i++) {
        ok = v.ptr[i] >= '0' && v.ptr[i] <= '9';
        n = n * 10 + (v.ptr[i] - '0');
    }
    if (!ok) {
        sl_json_errors_add(errs, "min_position", "must be a non-negative integer");
        return SL_EINVAL;
    }
    int64_t last = 0;
    int rc = user_store_last_position(sl_svc_worker_db(w), &last);
    if (rc != 0) return rc;
    if (n > last) {
        sl_json_errors_add(errs, "min_position", "must not exceed the last write position (%lld)",
                           (long long)last);
        return SL_EINVAL;
    }
    *out = n;
    return 0;
}

/* Fills the common part of a read; answers the request and returns non-zero on bad input. */
static int read_prepare(sl_http_req *req, sl_svc_worker *w, read_wait *rw, sl_json_errors *errs)
{
    memset(rw, 0, sizeof *rw);
    rw->req = req;
    rw->uw = worker_of(w);
    int rc = read_min_position(req, w, &rw->min_position, errs);
    if (rc != 0 && rc != SL_EINVAL) {
        respond_db_error(req, w, rc, "position lookup failed");
        return rc;
    }
    return rc;
}

void user_h_me_get(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 0, &id) != 0) return;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    read_wait rw;
    int rc = read_prepare(req, w, &rw, &errs);
    if (rc == SL_EINVAL) sl_respond_problem_ex(req, 400, "invalid query parameter", &errs);
    if (rc != 0) return;
    size_t n = strlen(id.user_id);
    if (!user_id_valid(id.user_id, n)) { /* a service identity, say: it has no profile */
        sl_respond_problem_ex(req, 404, "no such user", NULL);
        return;
    }
    rw.kind = READ_ONE;
    memcpy(rw.id, id.user_id, n + 1);
    read_start(&rw);
}

void user_h_get(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 0, &id) != 0) return;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    sl_slice p = sl_route_param(&req->params, "id");
    if (!p.ptr || !user_id_valid(p.ptr, p.len))
        sl_json_errors_add(&errs, "user_id", "must be a user id (a UUID)");
    read_wait rw;
    int rc = read_prepare(req, w, &rw, &errs);
    if (rc == 0 && errs.count) rc = SL_EINVAL;
    if (rc == SL_EINVAL) sl_respond_problem_ex(req, 400, "invalid request", &errs);
    if (rc != 0) return;
    rw.kind = READ_ONE;
    memcpy(rw.id, p.ptr, p.len);
    rw.id[p.len] = '\0';
    /* Another customer's id: 404 whether it exists or not (API.md: no existence leak). */
    if (!user_may_read(id.user_id, id.role, rw.id)) {
        sl_respond_problem_ex(req, 404, "no such user", NULL);
        return;
    }
    read_start(&rw);
}

void user_h_list(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 1, &id) != 0) return;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    read_wait rw;
    int rc = read_prepare(req, w, &rw, &errs);
    if (rc != 0 && rc != SL_EINVAL) return;
    int bad = rc != 0;
    bad |= sl_req_page(req, &rw.page, &rw.per_page, &errs) != 0;
    sl_slice role;
    if (sl_http_query_param(req->query, "role", &role) && role.len > 0) {
        if (sl_slice_eq(role, "customer") || sl_slice_eq(role, "admin")) {
            memcpy(rw.role, role.ptr, role.len);
            rw.role[role.len] = '\0';
        } else {
            sl_json_errors_add(&errs, "role", "must be customer or admin");
            bad = 1;
        }
    }
    if (bad) {
        sl_respond_problem_ex(req, 400, "invalid query parameter", &errs);
        return;
    }
    rw.kind = READ_LIST;
    read_start(&rw);
}

/* ---- PATCH /users/me ----------------------------------------------------------------------- */

static void respond_update_error(sl_http_req *req, sl_svc_worker *w, int rc)
{
    if (rc == SL_ENOTFOUND) {
        sl_respond_problem_ex(req, 404, "no such user", NULL);
    } else if (rc == SL_ECONFLICT) {
        sl_json_errors errs;
        sl_json_errors_init(&errs);
        sl_json_errors_add(&errs, "email", "is already registered");
        sl_respond_problem_ex(req, 409, "the email is already registered", &errs);
    } else {
        respond_db_error(req, w, rc, "update user failed");
    }
}

void user_h_me_patch(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 0, &id) != 0) return;
    json_t *doc;
    if (sl_req_json_body(req, &doc) != 0) return;
    const char *email = NULL, *name = NULL;
    const sl_json_field fields[] = {
        {.name = "name", .kind = SL_JSON_STRING, .out = &name},
        {.name = "email", .kind = SL_JSON_STRING, .out = &email},
    };
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    int bad = sl_json_read(doc, fields, SL_ARRAY_LEN(fields), SL_JSON_REJECT_UNKNOWN, &errs) != 0;
    char nemail[USER_EMAIL_MAX + 1], nname[USER_NAME_MAX_BYTES + 1];
    const char *why = NULL;
    int rc;
    if (email) {
        rc = user_email_normalize(email, strlen(email), nemail, &why);
        field_error(&errs, "email", rc, why);
        bad |= rc != 0;
    }
    if (name) {
        rc = user_name_check(name, strlen(name), nname, &why);
        field_error(&errs, "name", rc, why);
        bad |= rc != 0;
    }
    if (!bad && !email && !name) {
        sl_json_errors_add(&errs, "", "must contain name or email");
        bad = 1;
    }
    json_decref(doc);
    if (bad) {
        sl_respond_invalid(req, &errs);
        return;
    }
    user_state st;
    rc = user_store_update(sl_svc_worker_db(w), id.user_id, email ? nemail : NULL,
                           name ? nname : NULL, req->traceparent[0] ? req->traceparent : NULL,
                           sl_clock_wall_ns(sl_clock_system()), &st);
    if (rc != 0) {
        respond_update_error(req, w, rc);
        return;
    }
    user_project_now(worker_of(w));
    respond_user(req, 200, &st);
}
