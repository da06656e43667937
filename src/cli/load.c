/*
 * `shoal load` (load.h, docs/load.md): sets up its own users, wallets and product through the
 * gateway's public and admin APIs, then drives one scenario open loop (arrivals on a fixed
 * schedule, latency from each arrival's intended time, a bounded number in flight) or closed
 * loop (N transactions at once, each followed at once by the next), and reports HDR
 * percentiles per operation.
 *
 * Everything runs on one libuv loop with one sl_upstream (policies off: no hidden retries, so
 * every error the shop returns is counted). A transaction (one browse request; a cart visit;
 * a checkout: cart, order, polls until terminal) lives in a slot of a fixed pool, so memory
 * is bounded by the pool and the histograms.
 */
#include "load.h"
#include "load_args.h"

#include <shoal/clock.h>
#include <shoal/hdr.h>
#include <shoal/http_client.h>
#include <shoal/rand.h>

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define STATUS_MAX      600
#define HDR_HIGHEST_US  (3600LL * 1000 * 1000) /* one hour */
#define HDR_DIGITS      3
#define DRAIN_MS        20000 /* after the run, in-flight checkouts get this long to end */
#define POLL_LIMIT_MS   60000 /* an accepted order is polled this long at most */
#define POLL_MAX_GAP_MS 500
#define ORDER_TRIES     3   /* POST /orders attempts when shed with Retry-After */
#define LAG_TRIES       50  /* 422 retries while the order service learns the product */
#define PRICE           100 /* minor units of the product the run creates */
#define NWORDS          16

typedef enum {
    OP_LIST,
    OP_SEARCH,
    OP_PRODUCT,
    OP_CART_PUT,
    OP_CART_GET,
    OP_ORDER,
    OP_POLL,
    OP_COUNT
} op_id;

static const char *const op_names[OP_COUNT] = {"list",     "search", "product", "cart_put",
                                               "cart_get", "order",  "poll"};

typedef struct op_stats {
    sl_hdr *lat; /* microseconds */
    uint64_t count, errors;
    uint64_t status[STATUS_MAX];
    uint64_t failures[SL_HTTP_RESULT_COUNT]; /* no response */
} op_stats;

typedef struct vuser {
    char id[64];
    char *auth;        /* "Bearer <token>" */
    int index;         /* load-<run>-<index>@example.com */
    uint64_t renew_ns; /* log in again from then on (3/4 of the token's life; 1 after a 401) */
    bool renewing;
    struct load *L;
} vuser;

typedef enum { TX_BROWSE, TX_CART, TX_CHECKOUT, TX_KINDS } tx_kind;

static const char *const tx_names[TX_KINDS] = {"browse", "cart", "checkout"};

/* Checkout steps. */
enum { CO_START, CO_CART, CO_ORDER, CO_POLL_WAIT, CO_POLL, CO_ORDER_WAIT };

typedef struct load load;

typedef struct tx {
    load *L;
    tx_kind kind;
    int step;
    int worker;   /* closed loop: its worker; -1 open loop */
    bool busy;    /* a transaction runs in this slot */
    bool pausing; /* closed loop: waiting out a Retry-After before the next transaction */
    bool measured;
    uint64_t intended_ns; /* when the transaction was due */
    uint64_t req_ns;      /* the current request's latency is measured from here */
    vuser *u;
    op_id op;
    sl_http_handle *call;
    uv_timer_t timer;
    int order_tries, lag_tries, polls;
    int64_t pause_ms;
    uint64_t accepted_ns, poll_until_ns;
    char idem[48];
    char order_id[64];
    struct tx *next_free;
} tx;

struct load {
    cli_load_opts o;
    uv_loop_t loop;
    sl_upstream *up;
    sl_rand rng;
    char run_id[20];
    char password[40]; /* the run's users' password: random, never printed */
    bool tty;

    vuser *users;
    int nusers;
    char product_id[64];
    char (*browse_ids)[64];
    int nbrowse;
    char words[NWORDS][32];
    int nwords;

    tx *pool;
    int npool;
    tx *free_list;
    int busy;

    uint64_t start_ns, measure_ns, end_ns;
    uint64_t arrivals; /* open loop: arrivals so far, warm-up included */
    uint64_t next_arrival_ns;
    uint64_t scheduled, not_sent; /* measured arrivals; those the in-flight bound refused */
    uint64_t seq;
    bool stopping, done, drained_by_deadline;
    uv_timer_t arrival_timer, progress_timer, stop_timer, drain_timer;
    uv_signal_t sigint, sigterm;
    bool interrupted;
    bool timers_on;

    op_stats ops[OP_COUNT];
    sl_hdr *all;
    sl_hdr *saga;     /* accepted → terminal, from the order's created_at/updated_at */
    sl_hdr *checkout; /* the whole checkout: intended start → terminal seen */
    uint64_t tx_done[TX_KINDS];
    uint64_t co_started, co_accepted, co_confirmed, co_cancelled, co_shed, co_failed,
        co_pending_end, co_unfinished;
    uint64_t co_shed_responses, co_order_retries, co_lag_retries;
    uint64_t co_overloaded; /* shed responses whose problem says reason "overloaded" */
    char reasons[8][32];
    uint64_t reason_n[8], reason_other;
    uint64_t retry_after[2];             /* 429, 503 responses carrying Retry-After */
    uint64_t renewals, renewal_failures; /* logins again before a token expires */
    uint64_t progress_last;
};

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

/* ---- helpers -------------------------------------------------------------------------- */

/* Retry-After in ms (delta-seconds only; an HTTP-date or nothing counts as 1 s). */
static int64_t retry_after_ms(const sl_http_response *r)
{
    sl_slice v;
    if (!r || !sl_http_response_header(r, "retry-after", &v) || v.len == 0 || v.len > 6)
        return 1000;
    int64_t s = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9') return 1000;
        s = s * 10 + (v.ptr[i] - '0');
    }
    return s * 1000;
}

static json_t *body_json(const sl_http_response *r)
{
    if (!r || r->body.len == 0) return NULL;
    return json_loadb(r->body.ptr, r->body.len, 0, NULL);
}

/* 1 when `s` can go into a request path as it is: 1..63 of A-Z a-z 0-9 '-' '_'. */
static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* ---- synchronous calls for the setup ------------------------------------------------------ */

typedef struct sync_res {
    bool done;
    int error;
    sl_http_result_kind kind;
    int status;
    int64_t retry_after_ms;
    json_t *json;
} sync_res;

static void sync_cb(sl_http_handle *call, const sl_http_result *res, void *data)
{
    (void)call;
    sync_res *r = data;
    r->done = true;
    r->error = res->error;
    r->kind = res->kind;
    if (res->response) {
        r->status = res->response->status;
        r->retry_after_ms = retry_after_ms(res->response);
        r->json = body_json(res->response);
    }
}

/* One request, run to completion on the loop. A POST carries an Idempotency-Key of its own,
 * so that it can be sent again safely: 429 and 503 are waited out (Retry-After), and 502, 504
 * or no answer are tried again after 1 s up to 4 times (two minutes in all at most). Returns 0
 * with *r filled (free r->json), or the refusal's code. */
static int sync_req(load *L, sl_http_method m, const char *path, const char *auth, const char *body,
                    sync_res *r)
{
    int64_t waited = 0;
    int failures = 0;
    char idem[48];
    snprintf(idem, sizeof idem, "load-%s-setup-%llu", L->run_id, (unsigned long long)L->seq++);
    sl_http_call_opts co = {.idempotency_key = m == SL_HTTP_POST ? idem : NULL};
    for (;;) {
        sl_http_header h[2];
        size_t nh = 0;
        if (auth) h[nh++] = (sl_http_header){SL_SLICE_LIT("Authorization"), {auth, strlen(auth)}};
        if (body)
            h[nh++] =
                (sl_http_header){SL_SLICE_LIT("Content-Type"), SL_SLICE_LIT("application/json")};
        sl_http_request req = {.method = m,
                               .target = {path, strlen(path)},
                               .headers = h,
                               .nheaders = nh,
                               .body = body,
                               .body_len = body ? strlen(body) : 0};
        memset(r, 0, sizeof *r);
        int rc = sl_http_call(L->up, &req, &co, sync_cb, r, NULL);
        if (rc != 0) return rc;
        while (!r->done)
            uv_run(&L->loop, UV_RUN_ONCE);
        if ((r->status == 429 || r->status == 503) && waited < 120000) {
            int64_t ms = r->retry_after_ms < 100 ? 100 : r->retry_after_ms;
            if (ms > 5000) ms = 5000;
            json_decref(r->json);
            r->json = NULL;
            usleep((useconds_t)ms * 1000);
            waited += ms;
            continue;
        }
        bool broken = r->kind != SL_HTTP_RESULT_OK || r->status == 502 || r->status == 504;
        /* A gateway that refuses connections is not there: say so at once. */
        if (broken && r->kind != SL_HTTP_RESULT_CONNECT && ++failures < 5 && waited < 120000) {
            json_decref(r->json);
            r->json = NULL;
            usleep(1000000);
            waited += 1000;
            continue;
        }
        return 0;
    }
}

static void describe_failure(const load *L, const sync_res *r, const char *what)
{
    if (r->kind != SL_HTTP_RESULT_OK) {
        fprintf(stderr, "shoal load: %s: no answer from the gateway at %s: %s (%s)\n", what,
                L->o.target, sl_http_result_kind_name(r->kind), sl_strerror(r->error));
        return;
    }
    char *b = r->json ? json_dumps(r->json, JSON_COMPACT) : NULL;
    fprintf(stderr, "shoal load: %s: status %d%s%s\n", what, r->status, b ? ": " : "", b ? b : "");
    free(b);
}

/* ---- setup ---------------------------------------------------------------------------------- */

static bool needs_users(const load *L)
{
    return L->o.scenario == CLI_SC_CHECKOUT ||
           (L->o.scenario == CLI_SC_MIX && (L->o.w_cart > 0 || L->o.w_checkout > 0));
}

static bool needs_checkout(const load *L)
{
    return L->o.scenario == CLI_SC_CHECKOUT || (L->o.scenario == CLI_SC_MIX && L->o.w_checkout > 0);
}

/* Checkouts the run may start, generously: sizes the stock and the deposits. */
static double expected_checkouts(const load *L)
{
    double per_s = L->o.rate > 0 ? L->o.rate : L->o.conns * 500.0;
    double secs = (double)(L->o.duration_ms + L->o.warmup_ms) / 1000.0;
    double share = 1;
    if (L->o.scenario == CLI_SC_MIX)
        share = (double)L->o.w_checkout / (L->o.w_browse + L->o.w_cart + L->o.w_checkout);
    return per_s * secs * share * 1.2 + 100;
}

static int read_admin_file(const char *path, char *email, size_t ecap, char *pw, size_t pcap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr,
                "shoal load: cannot read the admin credentials %s: %s (the file `shoal up` "
                "writes in its data directory; pass --admin-credentials PATH)\n",
                path, strerror(errno));
        return SL_EIO;
    }
    char line[512];
    email[0] = pw[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "email: ", 7) == 0) snprintf(email, ecap, "%s", line + 7);
        if (strncmp(line, "password: ", 10) == 0) snprintf(pw, pcap, "%s", line + 10);
    }
    fclose(f);
    if (!email[0] || !pw[0]) {
        fprintf(stderr, "shoal load: %s has no 'email:' and 'password:' lines\n", path);
        return SL_EPARSE;
    }
    return 0;
}

/* Logs in; returns 0 and a malloc'd "Bearer ..." in *auth, or SL_EUNAVAIL (said why). */
static int login(load *L, const char *email, const char *pw, char **auth, char *user_id,
                 int64_t *ttl_s, const char *who)
{
    json_t *b = json_pack("{s:s,s:s}", "email", email, "password", pw);
    char *body = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    if (!body) return SL_ENOMEM;
    sync_res r;
    int rc = sync_req(L, SL_HTTP_POST, "/api/v1/auth/login", NULL, body, &r);
    free(body);
    if (rc != 0 || r.status != 200 || !json_string_value(json_object_get(r.json, "access_token"))) {
        char what[160];
        snprintf(what, sizeof what, "%s login refused", who);
        describe_failure(L, &r, what);
        json_decref(r.json);
        return SL_EUNAVAIL;
    }
    const char *tok = jstr(r.json, "access_token");
    size_t n = strlen(tok) + 8;
    *auth = malloc(n);
    if (!*auth) {
        json_decref(r.json);
        return SL_ENOMEM;
    }
    snprintf(*auth, n, "Bearer %s", tok);
    if (user_id) snprintf(user_id, 64, "%s", jstr(r.json, "user_id"));
    if (ttl_s) *ttl_s = json_integer_value(json_object_get(r.json, "expires_in"));
    json_decref(r.json);
    return 0;
}

/* The catalogue's first page: ids for the product operation, words for the search. */
static int read_catalogue(load *L)
{
    sync_res r;
    int rc = sync_req(L, SL_HTTP_GET, "/api/v1/products?page=1&per_page=100", NULL, NULL, &r);
    if (rc != 0 || r.status != 200) {
        describe_failure(L, &r, "reading the catalogue");
        json_decref(r.json);
        return SL_EUNAVAIL;
    }
    json_t *items = json_object_get(r.json, "items");
    size_t n = json_array_size(items);
    L->browse_ids = calloc(n + 1, sizeof *L->browse_ids);
    if (!L->browse_ids) {
        json_decref(r.json);
        return SL_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(items, i);
        const char *id = jstr(it, "product_id");
        if (id_ok(id)) snprintf(L->browse_ids[L->nbrowse++], 64, "%s", id);
        const char *name = jstr(it, "name");
        char w[32];
        size_t k = 0;
        for (; name[k] && k < sizeof w - 1; k++) {
            char c = name[k];
            if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) break;
            w[k] = c;
        }
        w[k] = '\0';
        if (k >= 3 && L->nwords < NWORDS) snprintf(L->words[L->nwords++], 32, "%s", w);
    }
    if (L->nwords == 0) snprintf(L->words[L->nwords++], 32, "item");
    json_decref(r.json);
    return 0;
}

/* The run's product, users and deposits, made with the admin's `admin` authorization. */
static int setup_users_as(load *L, const char *admin)
{
    int rc;
    double orders = needs_checkout(L) ? expected_checkouts(L) : 0;
    long long stock = (long long)orders + 10;
    char body[1024], path[256];
    sync_res r;
    snprintf(body, sizeof body,
             "{\"sku\":\"load-%s\",\"name\":\"Load test item %s\",\"description\":\"Made by "
             "shoal load, run %s\",\"category\":\"load-test\",\"price\":{\"amount\":%d,"
             "\"currency\":\"JPY\"},\"stock\":%lld}",
             L->run_id, L->run_id, L->run_id, PRICE, stock > 1000000 ? 1000000LL : stock);
    rc = sync_req(L, SL_HTTP_POST, "/api/v1/admin/products", admin, body, &r);
    if (rc != 0 || r.status != 201 || !id_ok(jstr(r.json, "product_id"))) {
        describe_failure(L, &r, "creating the run's product");
        json_decref(r.json);
        return SL_EUNAVAIL;
    }
    snprintf(L->product_id, sizeof L->product_id, "%s", jstr(r.json, "product_id"));
    json_decref(r.json);
    if (stock > 1000000) {
        snprintf(path, sizeof path, "/api/v1/admin/products/%s/restock", L->product_id);
        snprintf(body, sizeof body, "{\"quantity\":%lld}", stock - 1000000);
        rc = sync_req(L, SL_HTTP_POST, path, admin, body, &r);
        if (rc != 0 || r.status != 200)
            describe_failure(L, &r, "restocking (the run goes on with the stock it has)");
        json_decref(r.json);
    }

    /* Deposits go through the admin path: a run's users need more than a customer's daily
     * deposit limit allows. */
    int64_t deposit = (int64_t)(orders / L->nusers * PRICE * 1.5) + 100000;
    if (deposit > 1000000000) deposit = 1000000000;
    const char *password = L->password;
    bool warned = false;
    for (int i = 0; i < L->nusers; i++) {
        char em[128];
        snprintf(em, sizeof em, "load-%s-%d@example.com", L->run_id, i);
        json_t *b =
            json_pack("{s:s,s:s,s:s}", "email", em, "password", password, "name", "Load test user");
        char *bs = b ? json_dumps(b, JSON_COMPACT) : NULL;
        json_decref(b);
        if (!bs) return SL_ENOMEM;
        rc = sync_req(L, SL_HTTP_POST, "/api/v1/auth/register", NULL, bs, &r);
        free(bs);
        /* The email is the run's own: a 409 is this run's first attempt, which timed out at the
         * gateway but went through. */
        if (rc != 0 || (r.status != 201 && r.status != 409)) {
            describe_failure(L, &r, "registering a user");
            json_decref(r.json);
            return SL_EUNAVAIL;
        }
        json_decref(r.json);
        int64_t ttl = 0;
        rc = login(L, em, password, &L->users[i].auth, L->users[i].id, &ttl, "user");
        if (rc != 0) return rc;
        L->users[i].index = i;
        L->users[i].L = L;
        if (ttl > 0) L->users[i].renew_ns = now_ns() + (uint64_t)ttl * 750000000ULL;
        if (!needs_checkout(L)) continue;
        snprintf(body, sizeof body, "{\"amount\":%lld}", (long long)deposit);
        snprintf(path, sizeof path, "/api/v1/admin/wallets/%s/deposits", L->users[i].id);
        rc = sync_req(L, SL_HTTP_POST, path, admin, body, &r);
        if ((rc != 0 || r.status != 200) && !warned) {
            describe_failure(L, &r, "a deposit (orders may be cancelled for insufficient funds)");
            warned = true;
        }
        json_decref(r.json);
        if (!L->o.quiet && !L->o.json && (i + 1) % 50 == 0)
            fprintf(stderr, "shoal load: %d of %d users ready\n", i + 1, L->nusers);
    }
    /* The catalogue is eventually consistent with the admin's writes: wait for the product. */
    snprintf(path, sizeof path, "/api/v1/products/%s", L->product_id);
    bool seen = false;
    for (int i = 0; i < 300 && !seen; i++) {
        rc = sync_req(L, SL_HTTP_GET, path, NULL, NULL, &r);
        seen = rc == 0 && r.status == 200 &&
               json_integer_value(json_object_get(r.json, "available")) > 0;
        json_decref(r.json);
        if (!seen) usleep(100000);
    }
    if (!seen) {
        fprintf(stderr,
                "shoal load: the run's product %s never showed in the catalogue with stock\n",
                L->product_id);
        return SL_ETIMEDOUT;
    }
    /* The cart knows products from its own replica: it answers 404 until the product reached
     * it. Setting the quantity 0 (no item) changes nothing once it has. */
    snprintf(path, sizeof path, "/api/v1/cart/items/%s", L->product_id);
    for (int i = 0; i < 300; i++) {
        rc = sync_req(L, SL_HTTP_PUT, path, L->users[0].auth, "{\"qty\":0}", &r);
        int st = rc == 0 ? r.status : 0;
        if (st != 200 && st != 404) describe_failure(L, &r, "putting the run's product in a cart");
        json_decref(r.json);
        if (st == 200) return 0;
        if (st != 404) return SL_EUNAVAIL;
        usleep(100000);
    }
    fprintf(stderr, "shoal load: the cart service never learnt the run's product %s\n",
            L->product_id);
    return SL_ETIMEDOUT;
}

static int setup_users(load *L)
{
    char email[512], pw[512], *admin = NULL;
    int rc = read_admin_file(L->o.admin_file, email, sizeof email, pw, sizeof pw);
    if (rc == 0) rc = login(L, email, pw, &admin, NULL, NULL, "admin");
    memset(pw, 0, sizeof pw);
    if (rc == 0) rc = setup_users_as(L, admin);
    free(admin);
    return rc;
}

/* ---- transactions ---------------------------------------------------------------------------- */

static void tx_start(tx *t, uint64_t intended);
static void tx_advance(tx *t, const sl_http_result *res);
static void maybe_done(load *L);

static void on_response(sl_http_handle *call, const sl_http_result *res, void *data)
{
    (void)call;
    tx *t = data;
    load *L = t->L;
    t->call = NULL;
    if (t->measured) {
        op_stats *s = &L->ops[t->op];
        uint64_t now = now_ns();
        int64_t us = (int64_t)((now - t->req_ns) / 1000);
        s->count++;
        (void)sl_hdr_record(s->lat, us);
        (void)sl_hdr_record(L->all, us);
        if (res->kind != SL_HTTP_RESULT_OK) {
            s->errors++;
            s->failures[res->kind]++;
        } else {
            int st = res->response->status;
            if (st >= 400) s->errors++;
            if (st >= 0 && st < STATUS_MAX) s->status[st]++;
            if (st == 429 || st == 503) {
                sl_slice v;
                if (sl_http_response_header(res->response, "retry-after", &v))
                    L->retry_after[st == 503]++;
            }
        }
    }
    if (res->response && res->response->status == 401 && t->u && t->u->renew_ns)
        t->u->renew_ns = 1; /* log in again before its next request */
    tx_advance(t, res);
}

static void on_timer(uv_timer_t *h)
{
    tx *t = h->data;
    if (t->pausing) {
        t->pausing = false;
        t->L->busy--;
        if (!t->L->stopping)
            tx_start(t, now_ns());
        else
            maybe_done(t->L);
        return;
    }
    tx_advance(t, NULL);
}

static void tx_wait(tx *t, int64_t ms)
{
    uv_timer_start(&t->timer, on_timer, (uint64_t)(ms < 0 ? 0 : ms), 0);
}

static void tx_send(tx *t, op_id op, sl_http_method m, const char *path, const char *body,
                    bool auth, const char *idem, uint64_t from_ns)
{
    load *L = t->L;
    sl_http_header h[2];
    size_t nh = 0;
    if (auth && t->u && t->u->auth)
        h[nh++] = (sl_http_header){SL_SLICE_LIT("Authorization"), {t->u->auth, strlen(t->u->auth)}};
    if (body)
        h[nh++] = (sl_http_header){SL_SLICE_LIT("Content-Type"), SL_SLICE_LIT("application/json")};
    sl_http_request req = {.method = m,
                           .target = {path, strlen(path)},
                           .headers = h,
                           .nheaders = nh,
                           .body = body,
                           .body_len = body ? strlen(body) : 0};
    sl_http_call_opts co = {.idempotency_key = idem};
    t->op = op;
    t->req_ns = from_ns;
    int rc = sl_http_call(L->up, &req, &co, on_response, t, &t->call);
    if (rc != 0) {
        /* Refused before it left (cannot happen with the requests made here): the transaction
         * ends as failed, from the loop. */
        t->call = NULL;
        if (t->measured) {
            L->ops[op].count++;
            L->ops[op].errors++;
            L->ops[op].failures[SL_HTTP_RESULT_PROTOCOL]++;
        }
        t->step = -1;
        tx_wait(t, 0);
    }
}

/* The transaction in `t` has ended: the slot is free again, or (closed loop) runs the next. */
static void tx_end(tx *t, int64_t pause_ms)
{
    load *L = t->L;
    if (t->measured) L->tx_done[t->kind]++;
    t->busy = false;
    L->busy--;
    if (t->worker >= 0) {
        if (!L->stopping && now_ns() < L->end_ns) {
            if (pause_ms > 0) {
                /* A real client waits out Retry-After before its next action (the slot counts
                 * as busy meanwhile). */
                t->pausing = true;
                L->busy++;
                tx_wait(t, pause_ms > 5000 ? 5000 : pause_ms);
                return;
            }
            tx_start(t, now_ns());
            return;
        }
    } else {
        t->next_free = L->free_list;
        L->free_list = t;
    }
    maybe_done(L);
}

static void count_reason(load *L, const char *reason)
{
    for (int i = 0; i < 8; i++) {
        if (L->reasons[i][0] == '\0') snprintf(L->reasons[i], sizeof L->reasons[i], "%s", reason);
        if (strcmp(L->reasons[i], reason) == 0) {
            L->reason_n[i]++;
            return;
        }
    }
    L->reason_other++;
}

static void browse_step(tx *t, const sl_http_result *res)
{
    load *L = t->L;
    if (t->step == 0) {
        char path[256];
        uint64_t pick = sl_rand_below(&L->rng, 10);
        t->step = 1;
        if (pick < 4 || L->nbrowse == 0) {
            snprintf(path, sizeof path, "/api/v1/products?page=%u&per_page=20",
                     (unsigned)(1 + sl_rand_below(&L->rng, 3)));
            tx_send(t, OP_LIST, SL_HTTP_GET, path, NULL, false, NULL, t->intended_ns);
        } else if (pick < 6) {
            snprintf(path, sizeof path, "/api/v1/products?q=%s&per_page=20",
                     L->words[sl_rand_below(&L->rng, (uint64_t)L->nwords)]);
            tx_send(t, OP_SEARCH, SL_HTTP_GET, path, NULL, false, NULL, t->intended_ns);
        } else {
            snprintf(path, sizeof path, "/api/v1/products/%s",
                     L->browse_ids[sl_rand_below(&L->rng, (uint64_t)L->nbrowse)]);
            tx_send(t, OP_PRODUCT, SL_HTTP_GET, path, NULL, false, NULL, t->intended_ns);
        }
        return;
    }
    int st = res && res->response ? res->response->status : 0;
    tx_end(t, st == 429 || st == 503 ? retry_after_ms(res->response) : 0);
}

static void cart_put(tx *t)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/cart/items/%s", t->L->product_id);
    tx_send(t, OP_CART_PUT, SL_HTTP_PUT, path, "{\"qty\":1}", true, NULL, t->intended_ns);
}

static void cart_step(tx *t, const sl_http_result *res)
{
    int st = res && res->response ? res->response->status : 0;
    if (t->step == 0) {
        t->step = 1;
        cart_put(t);
    } else if (t->step == 1 && st > 0 && st < 400) {
        t->step = 2;
        tx_send(t, OP_CART_GET, SL_HTTP_GET, "/api/v1/cart", NULL, true, NULL, now_ns());
    } else {
        tx_end(t, st == 429 || st == 503 ? retry_after_ms(res->response) : 0);
    }
}

static void send_order(tx *t)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"items\":[{\"product_id\":\"%s\",\"qty\":1}],\"shipping_address\":{\"name\":"
             "\"Load Test\",\"line1\":\"1-1 Chiyoda\",\"city\":\"Tokyo\",\"postal_code\":"
             "\"100-0001\",\"country\":\"JP\"}}",
             t->L->product_id);
    t->step = CO_ORDER;
    t->order_tries++;
    tx_send(t, OP_ORDER, SL_HTTP_POST, "/api/v1/orders", body, true, t->idem, now_ns());
}

/* The wait before poll number `polls` + 1: 15 ms, then 1.5 times longer each time (so the
 * terminal status is seen at most half its age late), at most POLL_MAX_GAP_MS. */
static int64_t poll_gap_ms(int polls)
{
    double ms = 15;
    for (int i = 0; i < polls && ms < POLL_MAX_GAP_MS; i++)
        ms *= 1.5;
    return ms > POLL_MAX_GAP_MS ? POLL_MAX_GAP_MS : (int64_t)ms;
}

static int64_t time_ms(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    int64_t ns = 0;
    if (!s || sl_rfc3339_parse(s, strlen(s), &ns) != 0) return -1;
    return ns / 1000000;
}

static void checkout_terminal(tx *t, const json_t *order, const char *status)
{
    load *L = t->L;
    if (t->measured) {
        if (strcmp(status, "cancelled") == 0) {
            L->co_cancelled++;
            const char *why = jstr(order, "cancel_reason");
            count_reason(L, why[0] ? why : "unknown");
        } else {
            L->co_confirmed++;
        }
        int64_t c = time_ms(order, "created_at"), u = time_ms(order, "updated_at");
        if (c >= 0 && u >= c) (void)sl_hdr_record(L->saga, (u - c) * 1000);
        (void)sl_hdr_record(L->checkout, (int64_t)((now_ns() - t->intended_ns) / 1000));
    }
    tx_end(t, 0);
}

static void checkout_step(tx *t, const sl_http_result *res)
{
    load *L = t->L;
    int st = res && res->response ? res->response->status : 0;
    switch (t->step) {
    case CO_START:
        if (t->measured) L->co_started++;
        t->step = CO_CART;
        cart_put(t);
        return;
    case CO_CART:
        if (st <= 0 || st >= 400) {
            if (t->measured) L->co_failed++;
            tx_end(t, st == 429 || st == 503 ? retry_after_ms(res->response) : 0);
            return;
        }
        send_order(t);
        return;
    case CO_ORDER_WAIT:
        send_order(t);
        return;
    case CO_ORDER: {
        if (st == 202) {
            json_t *j = body_json(res->response);
            const char *id = jstr(j, "order_id");
            snprintf(t->order_id, sizeof t->order_id, "%s", id_ok(id) ? id : "");
            json_decref(j);
            if (t->measured) L->co_accepted++;
            if (!t->order_id[0]) {
                if (t->measured) L->co_failed++;
                tx_end(t, 0);
                return;
            }
            t->accepted_ns = now_ns();
            t->poll_until_ns = t->accepted_ns + (uint64_t)POLL_LIMIT_MS * 1000000;
            t->step = CO_POLL_WAIT;
            tx_wait(t, poll_gap_ms(0));
            return;
        }
        if (st == 503 && t->measured) {
            /* The order service's own admission control names its reason; a 503 from the
             * gateway (bulkhead, breaker) does not. */
            json_t *j = body_json(res->response);
            if (strcmp(jstr(j, "reason"), "overloaded") == 0) L->co_overloaded++;
            json_decref(j);
        }
        if ((st == 503 || st == 429) && t->order_tries < ORDER_TRIES && !L->stopping) {
            /* Shed: nothing was written; the same key may be sent again after Retry-After. */
            if (t->measured) {
                L->co_shed_responses++;
                L->co_order_retries++;
            }
            int64_t ms = retry_after_ms(res->response);
            t->step = CO_ORDER_WAIT;
            tx_wait(t, ms > 5000 ? 5000 : ms);
            return;
        }
        if (st == 503 || st == 429) {
            if (t->measured) {
                L->co_shed_responses++;
                L->co_shed++;
            }
            tx_end(t, retry_after_ms(res->response));
            return;
        }
        if (st == 422 && t->lag_tries < LAG_TRIES && !L->stopping) {
            /* The order service prices from its replica of the catalogue, which may not have
             * the run's product yet; nothing was kept, so asking again is safe. */
            t->lag_tries++;
            t->order_tries--;
            if (t->measured) L->co_lag_retries++;
            t->step = CO_ORDER_WAIT;
            tx_wait(t, 100);
            return;
        }
        if (t->measured) L->co_failed++;
        tx_end(t, 0);
        return;
    }
    case CO_POLL_WAIT: {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/orders/%s", t->order_id);
        t->step = CO_POLL;
        t->polls++;
        tx_send(t, OP_POLL, SL_HTTP_GET, path, NULL, true, NULL, now_ns());
        return;
    }
    case CO_POLL: {
        if (st == 200) {
            json_t *j = body_json(res->response);
            const char *s = jstr(j, "status");
            if (s[0] && strcmp(s, "pending") != 0) {
                checkout_terminal(t, j, s);
                json_decref(j);
                return;
            }
            json_decref(j);
        }
        if (now_ns() >= t->poll_until_ns) {
            if (t->measured) L->co_pending_end++;
            tx_end(t, 0);
            return;
        }
        t->step = CO_POLL_WAIT;
        tx_wait(t, poll_gap_ms(t->polls));
        return;
    }
    default:
        if (t->measured) L->co_failed++;
        tx_end(t, 0);
    }
}

static void tx_advance(tx *t, const sl_http_result *res)
{
    if (t->step < 0) {
        tx_end(t, 0);
        return;
    }
    switch (t->kind) {
    case TX_BROWSE:
        browse_step(t, res);
        break;
    case TX_CART:
        cart_step(t, res);
        break;
    default:
        checkout_step(t, res);
        break;
    }
}

static tx_kind pick_kind(load *L)
{
    switch (L->o.scenario) {
    case CLI_SC_CHECKOUT:
        return TX_CHECKOUT;
    case CLI_SC_BROWSE:
        return TX_BROWSE;
    default: {
        uint64_t total = (uint64_t)L->o.w_browse + L->o.w_cart + L->o.w_checkout;
        uint64_t r = sl_rand_below(&L->rng, total);
        if (r < L->o.w_browse) return TX_BROWSE;
        if (r < (uint64_t)L->o.w_browse + L->o.w_cart) return TX_CART;
        return TX_CHECKOUT;
    }
    }
}

static void renewed(sl_http_handle *call, const sl_http_result *res, void *data)
{
    (void)call;
    vuser *u = data;
    load *L = u->L;
    u->renewing = false;
    json_t *j = res->response && res->response->status == 200 ? body_json(res->response) : NULL;
    const char *tok = json_string_value(json_object_get(j, "access_token"));
    int64_t ttl = json_integer_value(json_object_get(j, "expires_in"));
    size_t n = tok ? strlen(tok) + 8 : 0;
    char *auth = n ? malloc(n) : NULL;
    if (auth) {
        snprintf(auth, n, "Bearer %s", tok);
        free(u->auth);
        u->auth = auth;
        u->renew_ns = now_ns() + (uint64_t)(ttl > 0 ? ttl : 60) * 750000000ULL;
        L->renewals++;
    } else {
        L->renewal_failures++;
        u->renew_ns = now_ns() + 5000000000ULL; /* try again in 5 s */
    }
    json_decref(j);
}

/* Logs `u` in again, in the background, when its token nears its end (or drew a 401): the
 * requests meanwhile keep the old token. */
static void maybe_renew(load *L, vuser *u)
{
    if (u->renewing || u->renew_ns == 0 || now_ns() < u->renew_ns) return;
    char body[256];
    snprintf(body, sizeof body, "{\"email\":\"load-%s-%d@example.com\",\"password\":\"%s\"}",
             L->run_id, u->index, L->password);
    sl_http_header h[] = {{SL_SLICE_LIT("Content-Type"), SL_SLICE_LIT("application/json")}};
    sl_http_request req = {.method = SL_HTTP_POST,
                           .target = SL_SLICE_LIT("/api/v1/auth/login"),
                           .headers = h,
                           .nheaders = 1,
                           .body = body,
                           .body_len = strlen(body)};
    if (sl_http_call(L->up, &req, NULL, renewed, u, NULL) == 0)
        u->renewing = true;
    else
        L->renewal_failures++;
}

static void tx_start(tx *t, uint64_t intended)
{
    load *L = t->L;
    if (!t->busy) L->busy++;
    t->busy = true;
    t->pausing = false;
    t->kind = pick_kind(L);
    t->step = 0;
    t->measured = intended >= L->measure_ns;
    t->intended_ns = intended;
    t->order_tries = t->lag_tries = t->polls = 0;
    t->order_id[0] = '\0';
    uint64_t seq = L->seq++;
    if (L->nusers > 0) {
        t->u = &L->users[seq % (uint64_t)L->nusers]; /* every user takes turns */
        maybe_renew(L, t->u);
    }
    snprintf(t->idem, sizeof t->idem, "load-%s-%llu", L->run_id, (unsigned long long)seq);
    tx_advance(t, NULL);
}

/* ---- the run ----------------------------------------------------------------------------------
 */

static void progress(load *L, bool final);

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

static void maybe_done(load *L)
{
    if (!L->stopping || L->busy > 0 || L->done) return;
    L->done = true;
    uv_timer_stop(&L->drain_timer);
    uv_timer_stop(&L->progress_timer);
}

static void drain_deadline(uv_timer_t *h)
{
    load *L = h->data;
    L->drained_by_deadline = true;
    for (int i = 0; i < L->npool; i++) {
        tx *t = &L->pool[i];
        if (!t->busy && !t->pausing) continue;
        if (t->call) {
            sl_http_call_cancel(t->call);
            t->call = NULL;
        }
        uv_timer_stop(&t->timer);
        if (t->busy && t->measured && t->kind == TX_CHECKOUT) {
            if (t->step == CO_POLL || t->step == CO_POLL_WAIT)
                L->co_pending_end++;
            else
                L->co_unfinished++;
        }
        t->busy = t->pausing = false;
    }
    L->busy = 0;
    maybe_done(L);
}

static void begin_stop(load *L)
{
    if (L->stopping) return;
    L->stopping = true;
    uv_timer_stop(&L->arrival_timer);
    /* Closed-loop users waiting out a Retry-After do not start again. */
    for (int i = 0; i < L->npool; i++) {
        tx *t = &L->pool[i];
        if (t->pausing) {
            uv_timer_stop(&t->timer);
            t->pausing = false;
            L->busy--;
        }
    }
    if (L->busy > 0) uv_timer_start(&L->drain_timer, drain_deadline, DRAIN_MS, 0);
    maybe_done(L);
}

static void on_stop(uv_timer_t *h)
{
    begin_stop(h->data);
}

/* SIGINT or SIGTERM: the measured window ends now and the run drains as usual (the report is
 * still printed); a second signal ends the drain at once. */
static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    load *L = h->data;
    if (L->stopping) {
        drain_deadline(&L->drain_timer);
        return;
    }
    uint64_t now = now_ns();
    if (now < L->end_ns) L->end_ns = now;
    L->interrupted = true;
    begin_stop(L);
}

/* The measured window's length in seconds (shorter than --duration when interrupted). */
static double window_s(const load *L)
{
    return L->end_ns > L->measure_ns ? (double)(L->end_ns - L->measure_ns) / 1e9 : 0;
}

static double per_s(uint64_t n, double secs)
{
    return secs > 0 ? (double)n / secs : 0;
}

static void on_arrivals(uv_timer_t *h)
{
    load *L = h->data;
    uint64_t now = now_ns();
    while (L->next_arrival_ns <= now && L->next_arrival_ns < L->end_ns) {
        uint64_t due = L->next_arrival_ns;
        L->arrivals++;
        L->next_arrival_ns = L->start_ns + (uint64_t)((double)L->arrivals * 1e9 / L->o.rate + 0.5);
        bool measured = due >= L->measure_ns;
        if (measured) L->scheduled++;
        tx *t = L->free_list;
        if (!t) {
            if (measured) L->not_sent++;
            continue;
        }
        L->free_list = t->next_free;
        tx_start(t, due);
    }
    /* The schedule itself ends the run, so every arrival due before the end was handled. */
    if (L->next_arrival_ns >= L->end_ns) begin_stop(L);
}

static void on_progress(uv_timer_t *h)
{
    progress(h->data, false);
}

static uint64_t total_requests(const load *L, uint64_t *errors)
{
    uint64_t n = 0, e = 0;
    for (int i = 0; i < OP_COUNT; i++) {
        n += L->ops[i].count;
        e += L->ops[i].errors;
    }
    if (errors) *errors = e;
    return n;
}

static void progress(load *L, bool final)
{
    if (L->o.quiet) return;
    uint64_t now = now_ns();
    uint64_t errors;
    uint64_t n = total_requests(L, &errors);
    uint64_t delta = n - L->progress_last;
    L->progress_last = n;
    double t = (double)(now - L->start_ns) / 1e9;
    char line[300];
    int len = snprintf(
        line, sizeof line, "[%5.0fs%s] %6llu req/s  %llu errors  p50 %.1f ms  p99 %.1f ms", t,
        now < L->measure_ns ? " warm-up" : (L->stopping ? " drain" : ""), (unsigned long long)delta,
        (unsigned long long)errors, (double)sl_hdr_value_at(L->all, 50) / 1000.0,
        (double)sl_hdr_value_at(L->all, 99) / 1000.0);
    if (needs_checkout(L) && len > 0 && (size_t)len < sizeof line)
        len += snprintf(line + len, sizeof line - (size_t)len,
                        "  orders %llu accepted %llu confirmed %llu shed",
                        (unsigned long long)L->co_accepted, (unsigned long long)L->co_confirmed,
                        (unsigned long long)L->co_shed_responses);
    if (L->o.rate > 0 && len > 0 && (size_t)len < sizeof line)
        snprintf(line + len, sizeof line - (size_t)len, "  in flight %d  not sent %llu", L->busy,
                 (unsigned long long)L->not_sent);
    if (L->tty)
        fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
    else if (!final)
        fprintf(stderr, "%s\n", line);
    fflush(stderr);
}

static int run(load *L)
{
    uv_update_time(&L->loop);
    uint64_t now = now_ns();
    L->start_ns = now;
    L->measure_ns = now + (uint64_t)L->o.warmup_ms * 1000000;
    L->end_ns = L->measure_ns + (uint64_t)L->o.duration_ms * 1000000;
    L->next_arrival_ns = now;
    uv_timer_init(&L->loop, &L->arrival_timer);
    uv_timer_init(&L->loop, &L->progress_timer);
    uv_timer_init(&L->loop, &L->stop_timer);
    uv_timer_init(&L->loop, &L->drain_timer);
    L->arrival_timer.data = L->progress_timer.data = L->stop_timer.data = L->drain_timer.data = L;
    L->timers_on = true;
    uv_signal_init(&L->loop, &L->sigint);
    uv_signal_init(&L->loop, &L->sigterm);
    L->sigint.data = L->sigterm.data = L;
    uv_signal_start(&L->sigint, on_signal, SIGINT);
    uv_signal_start(&L->sigterm, on_signal, SIGTERM);
    uv_timer_start(&L->progress_timer, on_progress, 1000, 1000);
    if (L->o.rate > 0) {
        uv_timer_start(&L->arrival_timer, on_arrivals, 0, 1);
    } else {
        /* Closed loop: a transaction ending after the end starts no other (tx_end). */
        uv_timer_start(&L->stop_timer, on_stop, (uint64_t)(L->o.warmup_ms + L->o.duration_ms), 0);
        for (int i = 0; i < L->npool; i++)
            tx_start(&L->pool[i], now);
    }
    while (!L->done)
        uv_run(&L->loop, UV_RUN_ONCE);
    progress(L, true);
    return 0;
}

/* ---- report ------------------------------------------------------------------------------------
 */

static double ms(int64_t us)
{
    return (double)us / 1000.0;
}

static json_t *hdr_json(const sl_hdr *h)
{
    return json_pack("{s:I,s:f,s:f,s:f,s:f,s:f,s:f}", "count", (json_int_t)sl_hdr_count(h),
                     "p50_ms", ms(sl_hdr_value_at(h, 50)), "p90_ms", ms(sl_hdr_value_at(h, 90)),
                     "p99_ms", ms(sl_hdr_value_at(h, 99)), "p999_ms", ms(sl_hdr_value_at(h, 99.9)),
                     "max_ms", ms(sl_hdr_max(h)), "mean_ms", sl_hdr_mean(h) / 1000.0);
}

static json_t *report_json(const load *L)
{
    double secs = window_s(L);
    json_t *root = json_object();
    json_object_set_new(root, "scenario",
                        json_string(L->o.scenario == CLI_SC_CHECKOUT ? "checkout"
                                    : L->o.scenario == CLI_SC_BROWSE ? "browse"
                                                                     : "mix"));
    json_object_set_new(root, "mode", json_string(L->o.rate > 0 ? "open" : "closed"));
    json_object_set_new(root, "rate", L->o.rate > 0 ? json_real(L->o.rate) : json_null());
    json_object_set_new(root, "conns", L->o.rate > 0 ? json_null() : json_integer(L->o.conns));
    json_object_set_new(root, "duration_s", json_real(secs));
    json_object_set_new(root, "interrupted", json_boolean(L->interrupted));
    json_object_set_new(root, "warmup_s", json_real((double)L->o.warmup_ms / 1000.0));
    json_object_set_new(root, "target", json_string(L->o.target));
    json_object_set_new(root, "run_id", json_string(L->run_id));
    if (L->o.scenario == CLI_SC_MIX)
        json_object_set_new(root, "mix",
                            json_pack("{s:i,s:i,s:i}", "browse", (int)L->o.w_browse, "cart",
                                      (int)L->o.w_cart, "checkout", (int)L->o.w_checkout));
    uint64_t errors;
    uint64_t n = total_requests(L, &errors);
    json_object_set_new(root, "requests", json_integer((json_int_t)n));
    json_object_set_new(root, "errors", json_integer((json_int_t)errors));
    json_object_set_new(root, "requests_per_s", json_real(per_s(n, secs)));
    if (L->o.rate > 0) {
        json_object_set_new(root, "scheduled", json_integer((json_int_t)L->scheduled));
        json_object_set_new(root, "not_sent", json_integer((json_int_t)L->not_sent));
        json_object_set_new(root, "max_in_flight", json_integer(L->npool));
    }
    json_t *txs = json_object();
    for (int k = 0; k < TX_KINDS; k++)
        json_object_set_new(txs, tx_names[k], json_integer((json_int_t)L->tx_done[k]));
    json_object_set_new(root, "transactions", txs);
    json_object_set_new(root, "retry_after",
                        json_pack("{s:I,s:I}", "429", (json_int_t)L->retry_after[0], "503",
                                  (json_int_t)L->retry_after[1]));
    json_object_set_new(root, "latency", hdr_json(L->all));
    if (L->nusers > 0)
        json_object_set_new(root, "logins_renewed",
                            json_pack("{s:I,s:I}", "ok", (json_int_t)L->renewals, "failed",
                                      (json_int_t)L->renewal_failures));
    json_t *ops = json_object();
    for (int i = 0; i < OP_COUNT; i++) {
        const op_stats *s = &L->ops[i];
        if (s->count == 0) continue;
        json_t *o = hdr_json(s->lat);
        json_object_set_new(o, "rate", json_real(per_s(s->count, secs)));
        json_object_set_new(o, "error_count", json_integer((json_int_t)s->errors));
        json_t *st = json_object(), *er = json_object();
        for (int c = 0; c < STATUS_MAX; c++) {
            if (!s->status[c]) continue;
            char key[8];
            snprintf(key, sizeof key, "%d", c);
            json_object_set_new(st, key, json_integer((json_int_t)s->status[c]));
            if (c >= 400) json_object_set_new(er, key, json_integer((json_int_t)s->status[c]));
        }
        for (int k = 0; k < SL_HTTP_RESULT_COUNT; k++)
            if (s->failures[k])
                json_object_set_new(er, sl_http_result_kind_name((sl_http_result_kind)k),
                                    json_integer((json_int_t)s->failures[k]));
        json_object_set_new(o, "status", st);
        json_object_set_new(o, "errors", er);
        json_object_set_new(ops, op_names[i], o);
    }
    json_object_set_new(root, "operations", ops);
    if (needs_checkout(L)) {
        json_t *co = json_object();
        json_object_set_new(co, "started", json_integer((json_int_t)L->co_started));
        json_object_set_new(co, "accepted", json_integer((json_int_t)L->co_accepted));
        json_object_set_new(co, "confirmed", json_integer((json_int_t)L->co_confirmed));
        json_object_set_new(co, "cancelled", json_integer((json_int_t)L->co_cancelled));
        json_object_set_new(co, "shed", json_integer((json_int_t)L->co_shed));
        json_object_set_new(co, "shed_responses", json_integer((json_int_t)L->co_shed_responses));
        json_object_set_new(co, "shed_overloaded", json_integer((json_int_t)L->co_overloaded));
        json_object_set_new(co, "order_retries", json_integer((json_int_t)L->co_order_retries));
        json_object_set_new(co, "failed", json_integer((json_int_t)L->co_failed));
        json_object_set_new(co, "pending_at_end", json_integer((json_int_t)L->co_pending_end));
        json_object_set_new(co, "unfinished", json_integer((json_int_t)L->co_unfinished));
        json_object_set_new(co, "confirmed_per_s", json_real(per_s(L->co_confirmed, secs)));
        json_object_set_new(co, "accepted_per_s", json_real(per_s(L->co_accepted, secs)));
        json_t *rs = json_object();
        for (int i = 0; i < 8 && L->reasons[i][0]; i++)
            json_object_set_new(rs, L->reasons[i], json_integer((json_int_t)L->reason_n[i]));
        if (L->reason_other)
            json_object_set_new(rs, "other", json_integer((json_int_t)L->reason_other));
        json_object_set_new(co, "cancel_reasons", rs);
        json_object_set_new(co, "saga", hdr_json(L->saga));
        json_object_set_new(co, "checkout", hdr_json(L->checkout));
        json_object_set_new(root, "checkout", co);
    }
    if (L->nusers > 0) {
        json_t *ids = json_array();
        for (int i = 0; i < L->nusers; i++)
            json_array_append_new(ids, json_string(L->users[i].id));
        json_object_set_new(root, "user_ids", ids);
        json_object_set_new(root, "product_id", json_string(L->product_id));
    }
    return root;
}

static void print_hdr_row(FILE *f, const char *name, const sl_hdr *h, uint64_t count,
                          uint64_t errors, double secs)
{
    fprintf(f, "  %-10s %8llu %7llu %9.1f %8.2f %8.2f %8.2f %9.2f %9.2f\n", name,
            (unsigned long long)count, (unsigned long long)errors, per_s(count, secs),
            ms(sl_hdr_value_at(h, 50)), ms(sl_hdr_value_at(h, 90)), ms(sl_hdr_value_at(h, 99)),
            ms(sl_hdr_value_at(h, 99.9)), ms(sl_hdr_max(h)));
}

static void report_text(const load *L, FILE *f)
{
    double secs = window_s(L);
    fprintf(f, "\nshoal load run %s: %s, ", L->run_id,
            L->o.scenario == CLI_SC_CHECKOUT ? "checkout"
            : L->o.scenario == CLI_SC_BROWSE ? "browse"
                                             : "mix");
    if (L->o.rate > 0)
        fprintf(f, "open loop %.0f/s", L->o.rate);
    else
        fprintf(f, "closed loop %d conns", L->o.conns);
    fprintf(f, ", %.1f s measured%s after %.1f s warm-up, %s\n", secs,
            L->interrupted ? " (interrupted)" : "", (double)L->o.warmup_ms / 1000.0, L->o.target);
    fprintf(f, "  %-10s %8s %7s %9s %8s %8s %8s %9s %9s\n", "operation", "count", "errors",
            "rate/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms");
    for (int i = 0; i < OP_COUNT; i++)
        if (L->ops[i].count)
            print_hdr_row(f, op_names[i], L->ops[i].lat, L->ops[i].count, L->ops[i].errors, secs);
    uint64_t errors;
    uint64_t n = total_requests(L, &errors);
    print_hdr_row(f, "all", L->all, n, errors, secs);
    for (int i = 0; i < OP_COUNT; i++) {
        const op_stats *s = &L->ops[i];
        if (!s->errors) continue;
        fprintf(f, "  %s errors:", op_names[i]);
        for (int c = 400; c < STATUS_MAX; c++)
            if (s->status[c]) fprintf(f, " %d×%llu", c, (unsigned long long)s->status[c]);
        for (int k = 0; k < SL_HTTP_RESULT_COUNT; k++)
            if (s->failures[k])
                fprintf(f, " %s×%llu", sl_http_result_kind_name((sl_http_result_kind)k),
                        (unsigned long long)s->failures[k]);
        fprintf(f, "\n");
    }
    if (L->o.rate > 0)
        fprintf(f, "  arrivals: %llu scheduled, %llu not sent (in-flight bound %d)\n",
                (unsigned long long)L->scheduled, (unsigned long long)L->not_sent, L->npool);
    if (needs_checkout(L)) {
        fprintf(f,
                "  checkout: %llu started, %llu accepted, %llu confirmed (%.1f/s), %llu "
                "cancelled, %llu shed (503), %llu failed, %llu pending at end\n",
                (unsigned long long)L->co_started, (unsigned long long)L->co_accepted,
                (unsigned long long)L->co_confirmed, per_s(L->co_confirmed, secs),
                (unsigned long long)L->co_cancelled, (unsigned long long)L->co_shed,
                (unsigned long long)L->co_failed, (unsigned long long)L->co_pending_end);
        for (int i = 0; i < 8 && L->reasons[i][0]; i++)
            fprintf(f, "    cancelled %s: %llu\n", L->reasons[i],
                    (unsigned long long)L->reason_n[i]);
        print_hdr_row(f, "saga", L->saga, sl_hdr_count(L->saga), 0, secs);
        print_hdr_row(f, "checkout", L->checkout, sl_hdr_count(L->checkout), 0, secs);
        fprintf(f, "  (saga: accepted -> confirmed/cancelled, from the order's timestamps; "
                   "checkout: start -> terminal status seen)\n");
    }
}

/* ---- main ---------------------------------------------------------------------------------------
 */

static void upstream_closed(void *data)
{
    *(bool *)data = true;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, close_cb);
}

static int make_run_id(load *L)
{
    unsigned char b[4];
    if (sl_rand_secure_bytes(b, sizeof b) != 0) return SL_EIO;
    snprintf(L->run_id, sizeof L->run_id, "%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
    unsigned char pw[16];
    if (sl_rand_secure_bytes(pw, sizeof pw) != 0) return SL_EIO;
    for (size_t i = 0; i < sizeof pw; i++)
        snprintf(L->password + 2 * i, 3, "%02x", pw[i]);
    return sl_rand_seed_os(&L->rng);
}

static int setup_and_run(load *L)
{
    char ep[CLI_LOAD_HOST_MAX + 16];
    if (L->o.ipv6)
        snprintf(ep, sizeof ep, "[%s]:%d", L->o.host, L->o.port);
    else
        snprintf(ep, sizeof ep, "%s:%d", L->o.host, L->o.port);
    const char *eps[] = {ep};
    if (L->o.rate > 0) {
        double bound = L->o.rate * 5;
        L->npool = bound < 256 ? 256 : bound > 20000 ? 20000 : (int)bound;
    } else {
        L->npool = L->o.conns;
    }
    sl_upstream_config cfg;
    sl_upstream_config_default(&cfg);
    cfg.name = "load";
    cfg.endpoints = eps;
    cfg.nendpoints = 1;
    cfg.policies = false;
    cfg.max_connections = (uint32_t)(L->npool < 512 ? L->npool : 512);
    cfg.max_idle = cfg.max_connections;
    cfg.max_pending = (uint32_t)L->npool + 16;
    cfg.connect_timeout_ms = 3000;
    cfg.timeout_ms = 15000;
    sl_upstream_env env = {.loop = &L->loop};
    int rc = sl_upstream_new(&cfg, &env, &L->up);
    if (rc != 0) {
        fprintf(stderr, "shoal load: cannot set up the HTTP client for %s: %s\n", ep,
                sl_strerror(rc));
        return rc;
    }
    L->pool = calloc((size_t)L->npool, sizeof *L->pool);
    if (!L->pool) return SL_ENOMEM;
    for (int i = L->npool - 1; i >= 0; i--) {
        tx *t = &L->pool[i];
        t->L = L;
        t->worker = L->o.rate > 0 ? -1 : i;
        uv_timer_init(&L->loop, &t->timer);
        t->timer.data = t;
        t->next_free = L->free_list;
        L->free_list = t;
    }
    if (!(L->o.rate > 0)) L->free_list = NULL;
    for (int i = 0; i < OP_COUNT; i++)
        if ((rc = sl_hdr_new(HDR_HIGHEST_US, HDR_DIGITS, &L->ops[i].lat)) != 0) return rc;
    if ((rc = sl_hdr_new(HDR_HIGHEST_US, HDR_DIGITS, &L->all)) != 0 ||
        (rc = sl_hdr_new(HDR_HIGHEST_US, HDR_DIGITS, &L->saga)) != 0 ||
        (rc = sl_hdr_new(HDR_HIGHEST_US, HDR_DIGITS, &L->checkout)) != 0)
        return rc;

    if (!L->o.quiet)
        fprintf(stderr, "shoal load: run %s against %s: setting up\n", L->run_id, L->o.target);
    if ((rc = read_catalogue(L)) != 0) return rc;
    if (needs_users(L)) {
        int n = L->o.users ? L->o.users : (L->o.rate > 0 ? 32 : L->o.conns);
        L->users = calloc((size_t)n, sizeof *L->users);
        if (!L->users) return SL_ENOMEM;
        L->nusers = n;
        if ((rc = setup_users(L)) != 0) return rc;
    }
    if (L->nbrowse == 0 && L->product_id[0]) {
        snprintf(L->browse_ids[0], 64, "%s", L->product_id);
        L->nbrowse = 1;
    }
    if (!L->o.quiet)
        fprintf(stderr, "shoal load: %d users ready; running %.1f s (+%.1f s warm-up)\n", L->nusers,
                (double)L->o.duration_ms / 1000.0, (double)L->o.warmup_ms / 1000.0);
    return run(L);
}

static void release(load *L)
{
    if (L->up) {
        /* The client closes its own handles first (a call still running ends CANCELED); then
         * the loop's remaining handles are ours. */
        bool closed = false;
        sl_upstream_close(L->up, upstream_closed, &closed);
        L->up = NULL;
        while (!closed)
            uv_run(&L->loop, UV_RUN_ONCE);
    }
    uv_walk(&L->loop, walk_close, NULL);
    uv_run(&L->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < OP_COUNT; i++)
        sl_hdr_free(L->ops[i].lat);
    sl_hdr_free(L->all);
    sl_hdr_free(L->saga);
    sl_hdr_free(L->checkout);
    memset(L->password, 0, sizeof L->password);
    for (int i = 0; i < L->nusers; i++)
        free(L->users[i].auth);
    free(L->users);
    free(L->browse_ids);
    free(L->pool);
}

int cli_load_main(int argc, char **argv)
{
    static load L; /* large (per-status counters): not on the stack */
    memset(&L, 0, sizeof L);
    char err[CLI_LOAD_ERR_MAX];
    int rc = cli_load_parse_args(argc, argv, &L.o, err);
    if (rc == 1) {
        fputs(cli_load_usage, stdout);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "shoal load: %s (see shoal load --help)\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    L.tty = isatty(2) == 1;
    if (make_run_id(&L) != 0 || uv_loop_init(&L.loop) != 0) {
        fprintf(stderr, "shoal load: cannot initialise\n");
        return 1;
    }
    rc = setup_and_run(&L);
    if (rc == 0) {
        if (L.o.json) {
            json_t *j = report_json(&L);
            char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10));
            json_decref(j);
            if (s) printf("%s\n", s);
            free(s);
            if (!L.o.quiet) report_text(&L, stderr);
        } else {
            report_text(&L, stdout);
        }
        fflush(stdout);
    }
    release(&L);
    uv_loop_close(&L.loop);
    return rc == 0 ? 0 : 1;
}
