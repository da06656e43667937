/*
 * shoal-user's commands: register, login and a change of one's own profile.
 * Register and patch write the write model (store.c; the event goes to the
 * outbox in the same transaction) and answer with the write's `position`,
 * which a later read may wait for (reads.c). Argon2id hashing and
 * verification run on the libuv threadpool, bounded per worker; a login
 * with an unknown email verifies against a dummy hash so that it takes as
 * long as a wrong password.
 *
 * Passwords are never logged; the request's copies are wiped once handed to
 * the hashing work, which wipes its own.
 */
#include "user_int.h"

#include <shoal/log.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DETAIL_BAD_LOGIN "the email or password is wrong"


/* 409 for an email another account holds (register, and a change of email). */
static void respond_email_taken(sl_http_req *req)
{
    sl_respond_field(req, 409, "email", "is already registered", "the email is already registered");
}

void user_respond_user(sl_http_req *req, int status, const user_state *u)
{
    json_t *j = user_json(u);
    if (j) json_object_set_new(j, "position", json_integer(u->position));
    sl_respond_json_value(req, status, j);
    json_decref(j);
}


/* ---- password operations ------------------------------------------------------------------ */

/* Returns a zeroed operation of `size` bytes (free with free()), or NULL once it has answered
 * 503. */
static void *op_alloc(sl_http_req *req, size_t size)
{
    void *op = calloc(1, size);
    if (!op) sl_respond_problem_reason(req, 503, NULL, "out of memory", NULL, 1);
    return op;
}

/* After handing `op` to the threadpool (`rc`): on success its callback holds a reference on
 * `uw` and answers; on failure `op` is freed and the answer is 503. */
static void op_submitted(sl_http_req *req, user_worker *uw, void *op, int rc)
{
    if (rc != 0) {
        free(op);
        sl_respond_problem_reason(req, 503, NULL, "too many password operations in progress", NULL,
                                  1);
        return;
    }
    uw->refs++;
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
        sl_respond_problem_reason(req, 503, NULL, "the service cannot register now", NULL, 1);
        goto out;
    }
    user_new u = {.email = op->email, .name = op->name, .role = "customer", .password_hash = hash};
    user_state st;
    int rc = user_store_create(sl_svc_worker_db(uw->w), &u,
                               req->traceparent[0] ? req->traceparent : NULL,
                               sl_clock_wall_ns(sl_clock_system()), &st);
    if (rc == SL_ECONFLICT) {
        respond_email_taken(req);
    } else if (rc != 0) {
        sl_respond_db_error(req, rc, "register failed");
    } else {
        user_project_now(uw);
        SL_LOG_INFO(sl_svc_worker_log(uw->w), NULL, "user registered",
                    SL_LOG_STR("user_id", st.id));
        user_respond_user(req, 201, &st);
    }
out:
    sodium_memzero(op, sizeof *op);
    free(op);
    user_worker_unref(uw);
}

void user_cmd_register(sl_http_req *req, user_worker *uw, const char *email, const char *name,
                       const char *pw, size_t pwlen)
{
    user_row row;
    int rc = user_store_by_email(sl_svc_worker_db(uw->w), email, &row);
    sodium_memzero(row.password_hash, sizeof row.password_hash);
    if (rc == 0) {
        respond_email_taken(req);
        return;
    }
    if (rc != SL_ENOTFOUND) {
        sl_respond_db_error(req, rc, "register lookup failed");
        return;
    }
    reg_op *op = op_alloc(req, sizeof *op);
    if (!op) return;
    op->req = req;
    op->uw = uw;
    snprintf(op->email, sizeof op->email, "%s", email);
    snprintf(op->name, sizeof op->name, "%s", name);
    rc = sl_password_hash_async(sl_svc_worker_loop(uw->w), &uw->lim, pw, pwlen, &uw->svc->cost,
                                reg_hashed, op);
    op_submitted(req, uw, op, rc);
}


/* ---- POST /login --------------------------------------------------------------------------- */

typedef struct login_op {
    sl_http_req *req;
    user_worker *uw;
    int known;    /* the email belongs to a user (else the dummy hash was verified) */
    int email_ok; /* the email is well-formed (it names an account, known or not) */
    char email[USER_EMAIL_MAX + 1];
    char client[USER_CLIENT_MAX + 1];
    char user_id[USER_ID_MAX + 1];
    char role[USER_ROLE_MAX + 1];
} login_op;

/* Answers 200 with an access token for (user_id, role) in session `sid`; with `refresh`
 * (may be NULL) beside it. */
static void respond_token(sl_http_req *req, user_worker *uw, const char *user_id, const char *role,
                          const char *sid, const char *refresh, int with_user)
{
    const user_svc *us = uw->svc;
    sl_jwt_claims claims;
    char *token = NULL;
    int64_t now_s = sl_clock_wall_ms(sl_clock_system()) / 1000;
    int rc = user_claims_make(user_id, role, us->issuer, now_s, us->token_ttl_s, &claims);
    json_t *extra = json_pack("{s:s, s:s}", "aud", us->audience, "sid", sid);
    if (!extra && rc == 0) rc = SL_ENOMEM;
    claims.extra = extra;
    if (rc == 0) rc = sl_jwt_sign(us->signing, &claims, &token, NULL);
    json_decref(extra);
    if (rc != 0) {
        SL_LOG_ERROR(sl_svc_worker_log(uw->w), sl_req_trace(req), "token signing failed",
                     SL_LOG_STR("error", sl_errname(rc)));
        sl_respond_problem_ex(req, 500, "internal error", NULL);
        return;
    }
    json_t *j = json_pack("{s:s, s:s, s:I}", "access_token", token, "token_type", "Bearer",
                          "expires_in", (json_int_t)us->token_ttl_s);
    if (j && with_user) json_object_set_new(j, "user_id", json_string(user_id));
    if (j && refresh) json_object_set_new(j, "refresh_token", json_string(refresh));
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
    sodium_memzero(body, strlen(body));
    free(body);
}

static void login_verified(int status, void *data)
{
    login_op *op = data;
    user_worker *uw = op->uw;
    if (uw->closing) {
        sl_respond_problem_reason(op->req, 503, NULL, "the service is stopping", NULL, 1);
    } else if (status == 0 && op->known) {
        int rc = user_login_success(sl_svc_worker_db(uw->w), &uw->svc->login, op->email, op->client,
                                    sl_clock_wall_ms(sl_clock_system()));
        if (rc != 0) /* the login stands; the counters keep one failure too many */
            SL_LOG_ERROR(sl_svc_worker_log(uw->w), NULL, "login counters not updated",
                         SL_LOG_STR("error", sl_errname(rc)));
        char sid[SL_DB_UUID_STR], refresh[USER_REFRESH_TOKEN_MAX + 1];
        int64_t now = sl_clock_wall_ms(sl_clock_system());
        rc = user_session_open(sl_svc_worker_db(uw->w), op->user_id, now,
                               uw->svc->refresh_ttl_s * 1000, sid, refresh);
        if (rc != 0)
            sl_respond_db_error(op->req, rc, "login session failed");
        else
            respond_token(op->req, uw, op->user_id, op->role, sid, refresh, 1);
        sodium_memzero(refresh, sizeof refresh);
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

void user_cmd_login(sl_http_req *req, user_worker *uw, const char *email, int email_ok,
                    const char *client, const char *pw, size_t pwlen)
{
    int64_t wait_ms = 0;
    int rc = user_login_begin(sl_svc_worker_db(uw->w), &uw->svc->login, email_ok ? email : NULL,
                              client, sl_clock_wall_ms(sl_clock_system()), &wait_ms);
    if (rc == SL_ELIMIT) {
        SL_LOG_INFO(sl_svc_worker_log(uw->w), sl_req_trace(req), "login throttled",
                    SL_LOG_INT("retry_ms", wait_ms));
        sl_respond_problem_reason(req, 429, NULL, "too many failed logins; try again later", NULL,
                                  user_retry_after_s(wait_ms));
        return;
    }
    if (rc != 0) {
        sl_respond_db_error(req, rc, "login throttling failed");
        return;
    }
    login_op *op = op_alloc(req, sizeof *op);
    if (!op) return;
    op->req = req;
    op->uw = uw;
    op->email_ok = email_ok;
    snprintf(op->email, sizeof op->email, "%s", email_ok ? email : "");
    snprintf(op->client, sizeof op->client, "%s", client);
    user_row row;
    memset(&row, 0, sizeof row);
    rc = email_ok ? user_store_by_email(sl_svc_worker_db(uw->w), email, &row) : SL_ENOTFOUND;
    if (rc != 0 && rc != SL_ENOTFOUND) {
        free(op);
        sl_respond_db_error(req, rc, "login lookup failed");
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
    op_submitted(req, uw, op, rc);
}


/* ---- POST /refresh, POST /logout ----------------------------------------------------------- */

void user_cmd_refresh(sl_http_req *req, user_worker *uw, const char *token)
{
    sl_db *db = sl_svc_worker_db(uw->w);
    user_refreshed r;
    int rc = user_session_refresh(db, token, sl_clock_wall_ms(sl_clock_system()), &r);
    user_row row;
    memset(&row, 0, sizeof row);
    if (rc == 0) rc = user_store_by_id(db, r.user_id, &row);
    sodium_memzero(row.password_hash, sizeof row.password_hash);
    if (rc == SL_ESTATE || rc == SL_ENOTFOUND) {
        sl_respond_problem_ex(req, 401, "the refresh token is not valid", NULL);
    } else if (rc != 0) {
        sl_respond_db_error(req, rc, "refresh failed");
    } else {
        /* The role as it is now: a role change shows at the next refresh at the latest. */
        respond_token(req, uw, r.user_id, row.s.role, r.sid, r.refresh_token, 0);
    }
    sodium_memzero(&r, sizeof r);
}

void user_cmd_logout(sl_http_req *req, user_worker *uw, const char *token)
{
    int rc =
        user_session_logout(sl_svc_worker_db(uw->w), token, sl_clock_wall_ms(sl_clock_system()));
    if (rc != 0) {
        sl_respond_db_error(req, rc, "logout failed");
        return;
    }
    sl_http_respond(req, 204, NULL, 0, NULL, 0);
}

/* ---- PATCH /users/me ----------------------------------------------------------------------- */

static void respond_update_error(sl_http_req *req, int rc)
{
    if (rc == SL_ENOTFOUND) {
        sl_respond_problem_ex(req, 404, "no such user", NULL);
    } else if (rc == SL_ECONFLICT) {
        respond_email_taken(req);
    } else {
        sl_respond_db_error(req, rc, "update user failed");
    }
}


void user_cmd_update(sl_http_req *req, user_worker *uw, const char *user_id, const char *email,
                     const char *name)
{
    SL_ASSERT(req && uw && user_id && (email || name));
    user_state st;
    int rc = user_store_update(sl_svc_worker_db(uw->w), user_id, email, name,
                               req->traceparent[0] ? req->traceparent : NULL,
                               sl_clock_wall_ns(sl_clock_system()), &st);
    if (rc != 0) {
        respond_update_error(req, rc);
        return;
    }
    user_project_now(uw);
    user_respond_user(req, 200, &st);
}
