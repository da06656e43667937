/*
 * shoal-user's definition (routes, subscriptions, migrations), its thin HTTP
 * handlers (POST /register and /login, GET /.well-known/jwks.json, GET and
 * PATCH /users/me, GET /users/{id}, GET /users; they validate the input and
 * hand over to commands.c and reads.c), and its lifecycle:
 * configuration (`user.*`), the token signing key and the JWKS, the dummy
 * hash that keeps unknown-email logins as slow as wrong passwords, the
 * per-worker state (password limiter, login rate limiter, the local
 * projector's poll), and the bootstrap of the local admin account.
 */
#include "user_int.h"

#include <shoal/config.h>
#include <shoal/cursor.h>
#include <shoal/identity.h>
#include <shoal/log.h>
#include <shoal/rand.h>

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define POLL_MS 1000 /* worker 0's safety poll of the outbox (writes also project at once) */

static const char *const cost_names[] = {"interactive", "min", NULL};
static const char *const feed_names[] = {"outbox", "bus", NULL};

/* ---- configuration ------------------------------------------------------------------------- */

static int read_config(sl_service *svc, user_svc *us, const char **key_file, const char **prev_file)
{
    sl_config *cfg = sl_service_config(svc);
    char err[SL_CONFIG_ERR_MAX] = {0};
    const char *issuer = NULL, *audience = NULL, *cost = NULL, *feed = NULL, *admin = NULL,
               *dir = NULL;
    int64_t ttl, rttl, conc, rate, period, wait, poll, abase, amax, cfree, cbase, cmax, budget;
    bool boot = false;
    unsigned cores = uv_available_parallelism();
    int64_t def_conc = cores < 3 ? (cores ? cores : 1) : 3; /* below the 4 threadpool threads */
    int bad = 0;
    bad |=
        sl_config_get_string(cfg, "user.signing_key_file", "data/user-signing.pem", key_file, err);
    bad |= !bad && sl_config_get_string(cfg, "user.previous_key_file", NULL, prev_file, err);
    bad |= !bad && sl_config_get_string(cfg, "user.issuer", "shoal", &issuer, err);
    bad |= !bad && sl_config_get_string(cfg, "user.audience", "shoal", &audience, err);
    bad |= !bad && sl_config_get_int(cfg, "user.token_ttl_s", 900, 60, 7 * 86400, &ttl, err);
    bad |= !bad &&
           sl_config_get_int(cfg, "user.refresh_ttl_s", 30 * 86400, 60, 365 * 86400, &rttl, err);
    bad |= !bad && sl_config_get_string(cfg, "user.password_cost", "interactive", &cost, err);
    bad |= !bad && sl_config_get_int(cfg, "user.password_concurrency", def_conc, 1, 64, &conc, err);
    bad |= !bad && sl_config_get_int(cfg, "user.login_rate", 5, 1, 100000, &rate, err);
    bad |= !bad && sl_config_get_int(cfg, "user.login_period_s", 900, 1, 86400, &period, err);
    bad |= !bad &&
           sl_config_get_int(cfg, "user.login_account_backoff_ms", 1000, 1, 3600000, &abase, err);
    bad |= !bad &&
           sl_config_get_int(cfg, "user.login_account_backoff_max_s", 60, 1, 86400, &amax, err);
    bad |= !bad && sl_config_get_int(cfg, "user.login_client_free", 20, 1, 100000, &cfree, err);
    bad |= !bad &&
           sl_config_get_int(cfg, "user.login_client_backoff_ms", 1000, 1, 3600000, &cbase, err);
    bad |= !bad &&
           sl_config_get_int(cfg, "user.login_client_backoff_max_s", 3600, 1, 86400, &cmax, err);
    bad |= !bad &&
           sl_config_get_int(cfg, "user.login_global_budget", 1000, 1, 100000000, &budget, err);
    bad |= !bad && sl_config_get_int(cfg, "user.read_wait_ms", 2000, 0, 30000, &wait, err);
    bad |= !bad && sl_config_get_int(cfg, "user.read_poll_ms", 5, 1, 1000, &poll, err);
    bad |= !bad && sl_config_get_string(cfg, "user.read_model_feed", "outbox", &feed, err);
    bad |= !bad && sl_config_get_bool(cfg, "user.bootstrap_admin", false, &boot, err);
    bad |= !bad && sl_config_get_string(cfg, "user.admin_email", "admin@shoal.local", &admin, err);
    bad |= !bad && sl_config_get_string(cfg, "user.data_dir", "data", &dir, err);
    if (!bad && strcmp(cost, cost_names[0]) != 0 && strcmp(cost, cost_names[1]) != 0)
        bad = snprintf(err, sizeof err, "user.password_cost: must be interactive or min") > 0;
    if (!bad && strcmp(feed, feed_names[0]) != 0 && strcmp(feed, feed_names[1]) != 0)
        bad = snprintf(err, sizeof err, "user.read_model_feed: must be outbox or bus") > 0;
    if (!bad && (strlen(issuer) == 0 || strlen(issuer) >= sizeof us->issuer))
        bad = snprintf(err, sizeof err, "user.issuer: must be 1 to 127 bytes") > 0;
    if (!bad && (strlen(audience) == 0 || strlen(audience) >= sizeof us->audience))
        bad = snprintf(err, sizeof err, "user.audience: must be 1 to 127 bytes") > 0;
    if (!bad && strlen(dir) + 32 >= sizeof us->data_dir)
        bad = snprintf(err, sizeof err, "user.data_dir: too long") > 0;
    const char *why = NULL;
    if (!bad && user_email_normalize(admin, strlen(admin), us->admin_email, &why) != 0)
        bad = snprintf(err, sizeof err, "user.admin_email: %s", why) > 0;
    if (bad) {
        SL_LOG_ERROR(sl_service_log(svc), NULL, "configuration", SL_LOG_STR("error", err));
        return SL_ECONFIG;
    }
    snprintf(us->issuer, sizeof us->issuer, "%s", issuer);
    snprintf(us->audience, sizeof us->audience, "%s", audience);
    us->refresh_ttl_s = rttl;
    snprintf(us->data_dir, sizeof us->data_dir, "%s", dir);
    us->token_ttl_s = ttl;
    us->cost = strcmp(cost, "min") == 0 ? sl_password_cost_min() : sl_password_cost_interactive();
    us->pw_concurrency = (uint32_t)conc;
    us->login = (user_login_policy){.account_free = rate,
                                    .account_base_ms = abase,
                                    .account_max_ms = amax * 1000,
                                    .client_free = cfree,
                                    .client_base_ms = cbase,
                                    .client_max_ms = cmax * 1000,
                                    .window_ms = period * 1000,
                                    .global_budget = budget,
                                    .global_window_ms = 60000};
    us->read_wait_ms = wait;
    us->read_poll_ms = poll;
    us->local_projector = strcmp(feed, "outbox") == 0;
    us->bootstrap_admin = boot;
    return 0;
}

/* ---- keys ---------------------------------------------------------------------------------- */

/* mkdir -p for the parent directories of `path` (mode 0700: they hold secrets). */
static void make_parent_dirs(const char *path)
{
    char dir[1024];
    size_t n = strlen(path);
    if (n >= sizeof dir) return;
    memcpy(dir, path, n + 1);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(dir, 0700);
        *p = '/';
    }
}

/* Loads the signing key, creating it (mode 0600) on first start. */
static int ensure_signing_key(sl_service *svc, const char *path, sl_auth_key **out)
{
    sl_logger *log = sl_service_log(svc);
    int rc = sl_auth_key_load_pem(path, out);
    if (rc == -ENOENT) {
        make_parent_dirs(path);
        rc = sl_auth_key_generate(out);
        if (rc == 0) rc = sl_auth_key_save_pem(*out, path);
        if (rc == 0)
            SL_LOG_INFO(log, NULL, "token signing key created", SL_LOG_STR("file", path),
                        SL_LOG_STR("kid", sl_auth_key_kid(*out)));
    }
    if (rc != 0) {
        sl_auth_key_free(*out);
        *out = NULL;
        SL_LOG_ERROR(log, NULL, "cannot load or create the token signing key",
                     SL_LOG_STR("file", path), SL_LOG_STR("error", sl_errname(rc)));
        return rc;
    }
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077) != 0)
        SL_LOG_WARN(log, NULL, "the token signing key is readable by others; chmod 600 it",
                    SL_LOG_STR("file", path));
    return 0;
}

/* The JWKS: the current key, plus the previous one (rotation) when configured. */
static int build_jwks(sl_service *svc, user_svc *us, const char *prev_file)
{
    sl_keyset *ks = NULL;
    sl_auth_key *prev = NULL;
    int rc = sl_keyset_new(&ks);
    if (rc == 0) rc = sl_keyset_add(ks, us->signing);
    if (rc == 0 && prev_file && *prev_file) {
        rc = sl_auth_key_load_pem(prev_file, &prev);
        if (rc == 0) rc = sl_keyset_add(ks, prev);
        if (rc == SL_EEXIST) rc = 0; /* the same key as the current one */
        if (rc != 0)
            SL_LOG_ERROR(sl_service_log(svc), NULL, "cannot load the previous signing key",
                         SL_LOG_STR("file", prev_file), SL_LOG_STR("error", sl_errname(rc)));
    }
    if (rc == 0) rc = sl_jwks_dump(ks, &us->jwks, &us->jwks_len);
    sl_auth_key_free(prev);
    sl_keyset_free(ks);
    return rc;
}

static int svc_init(sl_service *svc)
{
    user_svc *us = calloc(1, sizeof *us);
    if (!us) return SL_ENOMEM;
    sl_service_set_data(svc, us);
    const char *key_file = NULL, *prev_file = NULL;
    int rc = read_config(svc, us, &key_file, &prev_file);
    if (rc == 0) rc = ensure_signing_key(svc, key_file, &us->signing);
    if (rc == 0) rc = build_jwks(svc, us, prev_file);
    if (rc == 0) {
        /* A hash of a random password nobody knows, at the configured cost: an unknown email
         * costs the same verification as a wrong password (no user enumeration by timing). */
        unsigned char pw[24];
        rc = sl_rand_secure_bytes(pw, sizeof pw);
        if (rc == 0) rc = sl_password_hash((const char *)pw, sizeof pw, &us->cost, us->dummy_hash);
        sodium_memzero(pw, sizeof pw);
    }
    return rc;
}

static void svc_fini(sl_service *svc)
{
    user_svc *us = sl_service_data(svc);
    if (!us) return;
    sl_auth_key_free(us->signing);
    free(us->jwks);
    free(us);
    sl_service_set_data(svc, NULL);
}

/* ---- admin bootstrap ----------------------------------------------------------------------- */

/* Writes the credentials file atomically with mode 0600 (mkstemp creates it so). */
static int write_credentials(const char *path, const char *email, const char *password)
{
    char tmp[700];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= sizeof tmp) return SL_ELIMIT;
    int fd = mkstemp(tmp);
    if (fd < 0) return -errno;
    char body[512];
    int n = snprintf(body, sizeof body, "email: %s\npassword: %s\n", email, password);
    int rc = 0;
    if (fchmod(fd, 0600) != 0 || write(fd, body, (size_t)n) != n || fsync(fd) != 0) rc = -errno;
    sodium_memzero(body, sizeof body);
    if (close(fd) != 0 && rc == 0) rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0) rc = -errno;
    if (rc != 0) unlink(tmp);
    return rc;
}

static int create_admin(user_worker *uw, const char *file, char *pw, char *hash)
{
    const user_svc *us = uw->svc;
    unsigned char raw[24];
    size_t pwlen = 0;
    int rc = sl_rand_secure_bytes(raw, sizeof raw);
    if (rc == 0) rc = sl_b64url_encode(raw, sizeof raw, pw, 64, &pwlen);
    sodium_memzero(raw, sizeof raw);
    if (rc == 0) rc = sl_password_hash(pw, pwlen, &us->cost, hash);
    /* The file first: if the commit then fails, the next start makes a new password. */
    if (rc == 0) rc = write_credentials(file, us->admin_email, pw);
    user_state st;
    user_new u = {
        .email = us->admin_email, .name = "Administrator", .role = "admin", .password_hash = hash};
    if (rc == 0)
        rc = user_store_create(sl_svc_worker_db(uw->w), &u, NULL,
                               sl_clock_wall_ns(sl_clock_system()), &st);
    if (rc == 0) /* The password itself is never logged: only the file holds it. */
        SL_LOG_WARN(sl_svc_worker_log(uw->w), NULL,
                    "admin account created; its password is in the credentials file (mode 0600)",
                    SL_LOG_STR("email", us->admin_email), SL_LOG_STR("file", file),
                    SL_LOG_STR("user_id", st.id));
    return rc;
}

static int bootstrap_admin(user_worker *uw)
{
    const user_svc *us = uw->svc;
    int64_t admins = 0;
    int rc = user_store_count_admins(sl_svc_worker_db(uw->w), &admins);
    if (rc != 0 || admins > 0) return rc;
    char file[600];
    snprintf(file, sizeof file, "%s/admin-credentials", us->data_dir);
    make_parent_dirs(file);
    char pw[64] = {0}, hash[SL_PASSWORD_HASH_MAX] = {0};
    rc = create_admin(uw, file, pw, hash);
    sodium_memzero(pw, sizeof pw);
    sodium_memzero(hash, sizeof hash);
    if (rc == SL_ECONFLICT)
        SL_LOG_ERROR(sl_svc_worker_log(uw->w), NULL,
                     "cannot create the admin account: its email belongs to a customer",
                     SL_LOG_STR("email", us->admin_email));
    else if (rc != 0)
        SL_LOG_ERROR(sl_svc_worker_log(uw->w), NULL, "cannot create the admin account",
                     SL_LOG_STR("error", sl_errname(rc)));
    return rc;
}

/* ---- workers ------------------------------------------------------------------------------- */

void user_project_now(user_worker *uw)
{
    if (!uw->svc->local_projector || uw->closing) return;
    int applied = 0, skipped = 0;
    int rc = user_project_outbox(sl_svc_worker_db(uw->w), 100, &applied, &skipped);
    if (rc != 0)
        SL_LOG_ERROR(sl_svc_worker_log(uw->w), NULL, "read model projection failed",
                     SL_LOG_STR("error", sl_errname(rc)));
    if (skipped > 0)
        SL_LOG_ERROR(sl_svc_worker_log(uw->w), NULL, "read model: outbox events skipped as invalid",
                     SL_LOG_INT("count", skipped));
}

static void poll_tick(uv_timer_t *t)
{
    user_project_now(t->data);
}

static void worker_free(user_worker *uw)
{
    free(uw);
}

void user_worker_unref(user_worker *uw)
{
    if (--uw->refs == 0 && uw->closing) worker_free(uw);
}

static void poll_closed(uv_handle_t *h)
{
    user_worker *uw = h->data;
    uw->poll_open = 0;
    user_worker_unref(uw);
}

static int worker_init(sl_svc_worker *w)
{
    const user_svc *us = sl_service_data(sl_svc_worker_service(w));
    user_worker *uw = calloc(1, sizeof *uw);
    if (!uw) return SL_ENOMEM;
    uw->w = w;
    uw->svc = us;
    sl_password_limiter_init(&uw->lim, us->pw_concurrency);
    sl_svc_worker_set_data(w, uw);
    int rc;
    if (sl_svc_worker_index(w) != 0) return 0;
    /* Worker 0: catch the read model up, create the admin, keep polling the outbox. */
    user_project_now(uw);
    if (us->bootstrap_admin && (rc = bootstrap_admin(uw)) != 0) return rc;
    user_project_now(uw);
    if (us->local_projector) {
        uv_timer_init(sl_svc_worker_loop(w), &uw->poll);
        uw->poll.data = uw;
        uw->poll_open = 1;
        uw->refs++;
        uv_timer_start(&uw->poll, poll_tick, POLL_MS, POLL_MS);
    }
    return 0;
}

static void worker_fini(sl_svc_worker *w)
{
    user_worker *uw = sl_svc_worker_data(w);
    if (!uw) return;
    sl_svc_worker_set_data(w, NULL);
    uw->closing = 1;
    user_waits_abort(uw);
    if (uw->poll_open) {
        uv_timer_stop(&uw->poll);
        uv_close((uv_handle_t *)&uw->poll, poll_closed);
    } else if (uw->refs == 0) {
        worker_free(uw);
    }
}

/* ---- HTTP handlers (internal paths; the gateway maps /api/v1/...) -------------------------- */

static user_worker *worker_of(sl_svc_worker *w)
{
    return sl_svc_worker_data(w);
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

/*
 * Checks and normalises the fields present (NULL: absent), in the order email, password, name,
 * into nemail and nname; records each failure in errs. Returns 1 when one failed.
 */
static int check_fields(sl_json_errors *errs, const char *email, char *nemail, const char *pw,
                        const char *name, char *nname)
{
    const char *why = NULL;
    int bad = 0;
    if (email && user_email_normalize(email, strlen(email), nemail, &why) != 0) {
        sl_json_errors_add(errs, "email", "%s", why);
        bad = 1;
    }
    if (pw && user_password_check(pw, strlen(pw), &why) != 0) {
        sl_json_errors_add(errs, "password", "%s", why);
        bad = 1;
    }
    if (name && user_name_check(name, strlen(name), nname, &why) != 0) {
        sl_json_errors_add(errs, "name", "%s", why);
        bad = 1;
    }
    return bad;
}

static void h_register(sl_http_req *req, sl_svc_worker *w)
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
    bad |= check_fields(&errs, email, nemail, pw, name, nname);
    if (bad)
        sl_respond_invalid(req, &errs);
    else
        user_cmd_register(req, uw, nemail, nname, pw, strlen(pw));
    wipe_password(req, doc);
    json_decref(doc);
}

static void h_login(sl_http_req *req, sl_svc_worker *w)
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
    char client[USER_CLIENT_MAX + 1];
    user_client_address(req, client);
    user_cmd_login(req, uw, nemail, email_ok, client, pw, strlen(pw));
out:
    wipe_password(req, doc);
    json_decref(doc);
}

void user_client_address(sl_http_req *req, char out[USER_CLIENT_MAX + 1])
{
    sl_slice xff = {NULL, 0};
    snprintf(out, USER_CLIENT_MAX + 1, "direct");
    if (!sl_http_req_header(req, "x-forwarded-for", &xff) || xff.len == 0) return;
    /* The gateway appends the address it saw; entries before it are the client's word. */
    size_t i = xff.len;
    while (i > 0 && xff.ptr[i - 1] != ',')
        i--;
    while (i < xff.len && xff.ptr[i] == ' ')
        i++;
    size_t n = xff.len - i;
    if (n == 0) return;
    if (n > USER_CLIENT_MAX) n = USER_CLIENT_MAX;
    memcpy(out, xff.ptr + i, n);
    out[n] = '\0';
}

/* Reads {refresh_token} (a string of at most 64 bytes). Returns 0, or nonzero once answered. */
static int read_refresh_body(sl_http_req *req, json_t **doc, const char **token)
{
    if (sl_req_json_body(req, doc) != 0) return 1;
    const sl_json_field fields[] = {
        {.name = "refresh_token",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = 64,
         .out = token},
    };
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (sl_json_read(*doc, fields, SL_ARRAY_LEN(fields), SL_JSON_REJECT_UNKNOWN, &errs) != 0) {
        sl_respond_invalid(req, &errs);
        json_decref(*doc);
        return 1;
    }
    return 0;
}

static void h_refresh(sl_http_req *req, sl_svc_worker *w)
{
    json_t *doc;
    const char *token = NULL;
    if (read_refresh_body(req, &doc, &token) != 0) return;
    user_cmd_refresh(req, worker_of(w), token);
    json_decref(doc);
}

static void h_logout(sl_http_req *req, sl_svc_worker *w)
{
    json_t *doc;
    const char *token = NULL;
    if (read_refresh_body(req, &doc, &token) != 0) return;
    user_cmd_logout(req, worker_of(w), token);
    json_decref(doc);
}

#define REVOKED_PAGE 1000

/* GET /sessions/revoked?after=N (role service or admin): the gateway's poll. */
static void h_revoked(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 0, &id) != 0) return;
    if (strcmp(id.role, "service") != 0 && strcmp(id.role, "admin") != 0) {
        sl_respond_problem_ex(req, 403, "this endpoint is for services", NULL);
        return;
    }
    int64_t after = 0;
    sl_slice v;
    if (sl_http_query_param(req->query, "after", &v)) {
        int ok = v.len > 0 && v.len <= 18;
        for (size_t i = 0; ok && i < v.len; i++) {
            if (v.ptr[i] < '0' || v.ptr[i] > '9') ok = 0;
            after = after * 10 + (v.ptr[i] - '0');
        }
        if (!ok) {
            sl_respond_field(req, 400, "after", "must be a non-negative integer",
                             "invalid query parameter");
            return;
        }
    }
    const user_svc *us = worker_of(w)->svc;
    int64_t keep_ms = us->token_ttl_s * 1000 + SL_JWT_DEFAULT_LEEWAY_S * 1000;
    int64_t now = sl_clock_wall_ms(sl_clock_system());
    user_revoked *rows = malloc(REVOKED_PAGE * sizeof *rows);
    size_t n = 0;
    int64_t last = after;
    int rc = rows ? user_sessions_revoked(sl_svc_worker_db(w), after, now - keep_ms, REVOKED_PAGE,
                                          rows, &n, &last)
                  : SL_ENOMEM;
    json_t *items = rc == 0 ? json_array() : NULL;
    for (size_t i = 0; items && i < n; i++)
        json_array_append_new(items, json_pack("{s:s,s:I}", "sid", rows[i].sid, "until_ms",
                                               (json_int_t)(rows[i].revoked_ms + keep_ms)));
    free(rows);
    if (rc != 0) {
        sl_respond_db_error(req, rc, "revoked sessions");
        return;
    }
    sl_respond_owned(req, 200, json_pack("{s:o,s:I}", "items", items, "last", (json_int_t)last));
}

/* ---- GET /.well-known/jwks.json ------------------------------------------------------------- */

static void h_jwks(sl_http_req *req, sl_svc_worker *w)
{
    const user_svc *us = worker_of(w)->svc;
    sl_http_header hs[2] = {{{"Content-Type", 12}, {"application/json", 16}},
                            {{"Cache-Control", 13}, {"public, max-age=300", 19}}};
    sl_http_respond(req, 200, hs, 2, us->jwks, us->jwks_len);
}

static void h_me_get(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 0, &id) != 0) return;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    read_wait rw;
    int rc = user_read_prepare(req, w, &rw, &errs);
    if (rc == SL_EINVAL) sl_respond_problem_ex(req, 400, "invalid query parameter", &errs);
    if (rc != 0) return;
    size_t n = strlen(id.user_id);
    if (!user_id_valid(id.user_id, n)) { /* a service identity, say: it has no profile */
        sl_respond_problem_ex(req, 404, "no such user", NULL);
        return;
    }
    rw.kind = READ_ONE;
    memcpy(rw.id, id.user_id, n + 1);
    user_read_start(&rw);
}

static void h_get(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 0, &id) != 0) return;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    sl_slice p = sl_route_param(&req->params, "id");
    if (!p.ptr || !user_id_valid(p.ptr, p.len))
        sl_json_errors_add(&errs, "user_id", "must be a user id (a UUID)");
    read_wait rw;
    int rc = user_read_prepare(req, w, &rw, &errs);
    if (rc == 0 && errs.count) rc = SL_EINVAL;
    if (rc == SL_EINVAL) sl_respond_problem_ex(req, 400, "invalid request", &errs);
    if (rc != 0) return;
    rw.kind = READ_ONE;
    memcpy(rw.id, p.ptr, p.len);
    rw.id[p.len] = '\0';
    /* Another customer's id: 404 whether it exists or not (no existence leak). */
    if (!user_may_read(id.user_id, id.role, rw.id)) {
        sl_respond_problem_ex(req, 404, "no such user", NULL);
        return;
    }
    user_read_start(&rw);
}

static void h_list(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 1, &id) != 0) return;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    read_wait rw;
    int rc = user_read_prepare(req, w, &rw, &errs);
    if (rc != 0 && rc != SL_EINVAL) return;
    int bad = rc != 0;
    bad |= sl_req_page(req, &rw.page, &rw.per_page, &errs) != 0 ||
           sl_page_depth_check(rw.page, rw.per_page, &errs) != 0;
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
    user_read_start(&rw);
}

static void h_me_patch(sl_http_req *req, sl_svc_worker *w)
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
    bad |= check_fields(&errs, email, nemail, NULL, name, nname);
    if (!bad && !email && !name) {
        sl_json_errors_add(&errs, "", "must contain name or email");
        bad = 1;
    }
    json_decref(doc);
    if (bad) {
        sl_respond_invalid(req, &errs);
        return;
    }
    user_cmd_update(req, worker_of(w), id.user_id, email ? nemail : NULL, name ? nname : NULL);
}


/* ---- the definition ------------------------------------------------------------------------ */

static const sl_route_def routes[] = {
    {SL_HTTP_POST, "/register", h_register, 16 * 1024},
    {SL_HTTP_POST, "/login", h_login, 16 * 1024},
    {SL_HTTP_POST, "/refresh", h_refresh, 4096},
    {SL_HTTP_POST, "/logout", h_logout, 4096},
    {SL_HTTP_GET, "/sessions/revoked", h_revoked, 0},
    {SL_HTTP_GET, "/.well-known/jwks.json", h_jwks, 0},
    {SL_HTTP_GET, "/users/me", h_me_get, 0},
    {SL_HTTP_PATCH, "/users/me", h_me_patch, 16 * 1024},
    {SL_HTTP_GET, "/users/{id}", h_get, 0},
    {SL_HTTP_GET, "/users", h_list, 0},
};

static const sl_subscription_def subscriptions[] = {
    {.topic = USER_EVENT_REGISTERED, .apply = user_apply_event},
    {.topic = USER_EVENT_UPDATED, .apply = user_apply_event},
};

static const char *const publishes[] = {"user", NULL};

const sl_service_def user_service = {
    .name = "user",
    .default_port = 8101,
    .routes = routes,
    .nroutes = SL_ARRAY_LEN(routes),
    .init = svc_init,
    .fini = svc_fini,
    .worker_init = worker_init,
    .worker_fini = worker_fini,
    .migrations = &sl_migrations_user,
    .subscriptions = subscriptions,
    .nsubscriptions = SL_ARRAY_LEN(subscriptions),
    .publishes = publishes,
};
