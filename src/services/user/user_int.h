/*
 * Internals shared by user.c (definition, thin HTTP handlers, configuration,
 * keys, admin bootstrap, worker lifecycle), commands.c (register, login,
 * profile changes) and reads.c (reads with read-your-writes).
 */
#ifndef SHOAL_SVC_USER_INT_H
#define SHOAL_SVC_USER_INT_H

#include "domain.h"
#include "store.h"
#include "user.h"

#include <shoal/auth.h>

#include <stdint.h>
#include <uv.h>

/* Process-wide state: written by init on the main thread, read-only afterwards. */
typedef struct user_svc {
    sl_auth_key *signing; /* current private key */
    char *jwks;           /* the JWKS document served (current + previous public keys) */
    size_t jwks_len;
    char issuer[128];
    char audience[128];
    int64_t token_ttl_s;
    int64_t refresh_ttl_s; /* a session's life: its refresh tokens stop working after it */
    sl_password_cost cost;
    uint32_t pw_concurrency; /* password operations in flight per worker */
    user_login_policy login; /* login throttling (the counters are in the database) */
    int64_t read_wait_ms;    /* longest wait for min_position */
    int64_t read_poll_ms;
    int local_projector; /* read_model_feed: outbox */
    int bootstrap_admin;
    char admin_email[USER_EMAIL_MAX + 1];
    char data_dir[512];
    char dummy_hash[SL_PASSWORD_HASH_MAX]; /* verified against when the email is unknown */
} user_svc;

typedef struct read_wait read_wait;

/* Per-worker state (its loop thread only). Freed once closing and nothing refers to it. */
typedef struct user_worker {
    sl_svc_worker *w;
    const user_svc *svc;
    sl_password_limiter lim;
    uv_timer_t poll; /* worker 0 with the local projector: a safety poll */
    int poll_open;
    unsigned refs; /* operations in flight (password work, read waits) + open poll timer */
    int closing;
    read_wait *waits; /* read-your-writes waits in progress */
} user_worker;

/* ---- commands (commands.c): each answers the request, now or when its work is done ------- */

/* Registers (email, name) with the password's hash; 201 with the user, 409 for a taken email. */
void user_cmd_register(sl_http_req *req, user_worker *uw, const char *email, const char *name,
                       const char *pw, size_t pwlen);

/* Verifies the password of `email` (email_ok 0: malformed, names no account) for the client
 * address `client`, throttled (throttle.c); 200 with a token, 401 whether the email is unknown
 * or the password wrong, 429 with Retry-After while the account, the client or the global
 * failure budget is in backoff. */
void user_cmd_login(sl_http_req *req, user_worker *uw, const char *email, int email_ok,
                    const char *client, const char *pw, size_t pwlen);

/* POST /refresh: spends `token` and answers 200 {access_token, refresh_token, expires_in} with
 * the user's current role, or 401. */
void user_cmd_refresh(sl_http_req *req, user_worker *uw, const char *token);

/* POST /logout: revokes the session of `token`; 204 (also for an unknown token). */
void user_cmd_logout(sl_http_req *req, user_worker *uw, const char *token);

/* Changes the email and/or name (NULL: keep) of `user_id`; 200 with the user. */
void user_cmd_update(sl_http_req *req, user_worker *uw, const char *user_id, const char *email,
                     const char *name);

#define USER_CLIENT_MAX 64

/* The client's address: the last X-Forwarded-For entry (the one the gateway appends; earlier
 * ones are the client's own claim), or "direct" without the header (a caller inside the
 * mesh). Truncated to USER_CLIENT_MAX bytes. */
void user_client_address(sl_http_req *req, char out[USER_CLIENT_MAX + 1]);

/* Answers `status` with the user and its write position. */
void user_respond_user(sl_http_req *req, int status, const user_state *u);

/* ---- reads with read-your-writes (reads.c) ------------------------------------------------- */

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

/*
 * Fills the common part of a read (request, worker, ?min_position=). Returns 0; SL_EINVAL
 * with the problem in errs (the caller answers 400); or a database error, answered.
 */
int user_read_prepare(sl_http_req *req, sl_svc_worker *w, read_wait *rw, sl_json_errors *errs);

/* Serves the read now, or waits for the read model on a timer (a copy of `tmpl`). */
void user_read_start(const read_wait *tmpl);

/* Answers every read wait of `uw` with 503 (worker stopping; reads.c). */
void user_waits_abort(user_worker *uw);

/* Drops one reference; frees `uw` when it is closing and the last one is gone. */
void user_worker_unref(user_worker *uw);

/* Runs the local projector after a write (when configured); logs failures. */
void user_project_now(user_worker *uw);

#endif /* SHOAL_SVC_USER_INT_H */
