/*
 * Internals shared by user.c (definition, configuration, keys, admin
 * bootstrap, worker lifecycle) and handlers.c (the HTTP handlers).
 */
#ifndef SHOAL_SVC_USER_INT_H
#define SHOAL_SVC_USER_INT_H

#include "domain.h"
#include "store.h"
#include "user.h"

#include <shoal/auth.h>
#include <shoal/ratelimit.h>

#include <stdint.h>
#include <uv.h>

/* Process-wide state: written by init on the main thread, read-only afterwards. */
typedef struct user_svc {
    sl_auth_key *signing; /* current private key */
    char *jwks;           /* the JWKS document served (current + previous public keys) */
    size_t jwks_len;
    char issuer[128];
    int64_t token_ttl_s;
    sl_password_cost cost;
    uint32_t pw_concurrency; /* password operations in flight per worker */
    uint32_t login_rate;     /* login attempts per account per period, per worker */
    int64_t login_period_ms;
    int64_t read_wait_ms; /* longest wait for min_position */
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
    sl_ratelimit *rl;
    uv_timer_t poll; /* worker 0 with the local projector: a safety poll */
    int poll_open;
    unsigned refs; /* operations in flight (password work, read waits) + open poll timer */
    int closing;
    read_wait *waits; /* read-your-writes waits in progress */
} user_worker;

/* Handlers (handlers.c). */
void user_h_register(sl_http_req *req, sl_svc_worker *w);
void user_h_login(sl_http_req *req, sl_svc_worker *w);
void user_h_jwks(sl_http_req *req, sl_svc_worker *w);
void user_h_me_get(sl_http_req *req, sl_svc_worker *w);
void user_h_me_patch(sl_http_req *req, sl_svc_worker *w);
void user_h_get(sl_http_req *req, sl_svc_worker *w);
void user_h_list(sl_http_req *req, sl_svc_worker *w);

/* Answers every read wait of `uw` with 503 (worker stopping). */
void user_waits_abort(user_worker *uw);

/* Drops one reference; frees `uw` when it is closing and the last one is gone. */
void user_worker_unref(user_worker *uw);

/* Runs the local projector after a write (when configured); logs failures. */
void user_project_now(user_worker *uw);

#endif /* SHOAL_SVC_USER_INT_H */
