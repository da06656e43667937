/*
 * The gateway's request path, on the worker's loop:
 *
 *   on_headers  request id, route match (404/405 decided here, the body
 *               limit set for 413), server span, generation reference;
 *   on_request  operations routes and CORS preflight, bounded pending
 *               requests (503), per-client then per-route rate limits (429),
 *               authentication (auth.c: 401/403, possibly parked while the
 *               JWKS is refetched), then one upstream call through the
 *               cluster's policies or an aggregate (aggregate.c);
 *   on_response metrics, JSON access log, span end, references released
 *               (the shared host plumbing, serve.h).
 */
#include "forward.h"

#include "admin_services.h"
#include "aggregate.h"
#include "auth.h"
#include "static_serve.h"

#include <shoal/json.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the proxied call ------------------------------------------------------------------------ */

/* The per-subset metrics: bounded, as only configured subsets are ever named. */
static void subset_metrics(px_req *r, const sl_http_result *res)
{
    if (r->subset < 0) return;
    const px_cluster_cfg *cc = &px_cfg(r)->clusters[r->route->cluster];
    px_proc *p = r->w->proc;
    unsigned shard = (unsigned)r->w->sw.index;
    static const char *const classes[] = {"error", "1xx", "2xx", "3xx", "4xx", "5xx"};
    int st = res->kind == SL_HTTP_RESULT_OK ? res->response->status : 0;
    const char *labels[] = {cc->name, cc->subset_names[r->subset],
                            classes[st >= 100 && st < 600 ? st / 100 : 0]};
    sl_series *s = p->subset_req ? sl_metric_series(p->subset_req, labels) : NULL;
    if (s) sl_counter_inc(s, shard);
    s = p->subset_dur ? sl_metric_series(p->subset_dur, labels) : NULL;
    if (s) sl_histogram_observe(s, shard, (double)(uv_hrtime() - r->subset_start_ns) / 1e9);
}

static void on_upstream(sl_http_handle *call, const sl_http_result *res, void *data)
{
    (void)call;
    px_req *r = data;
    r->call = NULL;
    if (res->kind != SL_HTTP_RESULT_CANCELED) subset_metrics(r, res);
    if (res->kind != SL_HTTP_RESULT_OK) {
        px_respond_upstream_error(r, res, NULL);
        return;
    }
    const sl_http_response *rs = res->response;
    r->upstream_status = rs->status;
    sl_http_header h[SL_HTTP_CLIENT_HEADERS_MAX + 8];
    size_t n = px_filter_response_headers(rs->headers, rs->nheaders, h, SL_HTTP_CLIENT_HEADERS_MAX);
    h[n++] = (sl_http_header){SL_SLICE_LIT("Via"), SL_SLICE_LIT("1.1 shoal")};
    n = px_cors_headers(r, h, n, SL_ARRAY_LEN(h));
    sl_http_respond(r->req, rs->status, h, n, rs->body.ptr, rs->body.len);
}

static void forward(px_req *r)
{
    SL_ASSERT(r->route && r->route->aggregate < 0 && !r->call);
    const px_route *rt = r->route;
    sl_http_req *req = r->req;
    px_wcluster *c = &r->wg->clusters[rt->cluster];
    r->upstream_name = c->cfg->name;
    char target[PX_PATH_MAX];
    int n = px_route_target(rt, req->path, req->query, &r->params, target, sizeof target);
    if (n < 0) {
        px_respond_problem(r, n == SL_ELIMIT ? 414 : 400, "the rewritten target is invalid", NULL,
                           0);
        return;
    }
    px_out_headers oh;
    px_build_headers(r, rt->cluster, req->method, (sl_slice){target, (size_t)n}, req->body, 1, &oh);
    sl_http_request rq = {.method = req->method,
                          .target = {target, (size_t)n},
                          .headers = oh.fwd.h,
                          .nheaders = oh.fwd.n,
                          .body = req->body.ptr,
                          .body_len = req->body.len};
    sl_http_call_opts o;
    px_call_opts(r, rt->timeout_ms, &o);
    sl_slice canary = {NULL, 0};
    bool want_canary =
        sl_http_req_header(req, "x-shoal-canary", &canary) && sl_slice_eq(canary, "1");
    const char *user = r->authed ? r->id.user_id : NULL;
    sl_upstream *up = px_wcluster_choose(c, want_canary, user, user ? strlen(user) : 0, &r->subset);
    r->subset_start_ns = uv_hrtime();
    int rc = sl_http_call(up, &rq, &o, on_upstream, r, &r->call);
    if (rc != 0) {
        r->call = NULL;
        px_respond_problem(r, rc == SL_ELIMIT ? 413 : 502, sl_strerror(rc), NULL, 0);
    }
}

/* ---- operations and CORS ----------------------------------------------------------------------
 */

static void ops(px_req *r)
{
    px_worker *w = r->w;
    SL_ASSERT(r->op != PX_OP_NONE);
    if (r->op == PX_OP_HEALTHZ) {
        static const char body[] = "{\"status\":\"ok\"}";
        sl_http_respond_body(r->req, 200, "application/json", body, sizeof body - 1);
    } else if (r->op == PX_OP_READYZ) {
        char body[128];
        int ready = w->started && !atomic_load(&w->proc->stopping);
        int n = snprintf(body, sizeof body, "{\"status\":\"%s\",\"generation\":%llu,\"jwks\":%s}",
                         ready ? "ready" : "not ready", (unsigned long long)r->wg->gen->id,
                         w->jwks.ks ? "true" : "false");
        sl_http_respond_body(r->req, ready ? 200 : 503, "application/json", body, (size_t)n);
    } else {
        const px_config *cfg = px_cfg(r);
        sl_slice origin = {NULL, 0};
        (void)sl_http_req_header(r->req, "origin", &origin);
        if (!px_origin_allowed(cfg, origin)) {
            px_respond_problem(r, 403, "this origin is not allowed", NULL, 0);
            return;
        }
        char age[16];
        snprintf(age, sizeof age, "%u", cfg->cors_max_age_s);
        sl_http_header h[6];
        size_t n = 0;
        h[n++] = (sl_http_header){SL_SLICE_LIT("Access-Control-Allow-Origin"), origin};
        h[n++] = (sl_http_header){SL_SLICE_LIT("Access-Control-Allow-Methods"),
                                  {cfg->cors_methods, strlen(cfg->cors_methods)}};
        h[n++] = (sl_http_header){SL_SLICE_LIT("Access-Control-Allow-Headers"),
                                  {cfg->cors_headers, strlen(cfg->cors_headers)}};
        h[n++] = (sl_http_header){SL_SLICE_LIT("Access-Control-Max-Age"), {age, strlen(age)}};
        h[n++] = (sl_http_header){SL_SLICE_LIT("Vary"), SL_SLICE_LIT("Origin")};
        if (cfg->cors_credentials)
            h[n++] = (sl_http_header){SL_SLICE_LIT("Access-Control-Allow-Credentials"),
                                      SL_SLICE_LIT("true")};
        sl_http_respond(r->req, 204, h, n, NULL, 0);
    }
}

/* ---- server callbacks --------------------------------------------------------------------- */

/* After no API route matched: a static file (never under /api/), or 405 for other methods. */
static void static_match(px_req *r)
{
    const px_config *cfg = px_cfg(r);
    sl_http_req *req = r->req;
    if (!cfg->nstatics || (req->path.len >= 5 && memcmp(req->path.ptr, "/api/", 5) == 0)) return;
    px_static_hit hit =
        px_static_lookup(cfg->statics, cfg->nstatics, req->path, &r->ssite, &r->sfile);
    if (hit == PX_STATIC_MISS) return;
    if (req->method != SL_HTTP_GET && req->method != SL_HTTP_HEAD) {
        r->status = 405;
        r->allowed = (1u << SL_HTTP_GET) | (1u << SL_HTTP_HEAD);
        return;
    }
    r->status = 0;
    r->op = hit == PX_STATIC_FILE ? PX_OP_STATIC : PX_OP_REDIRECT;
}

int px_on_headers(sl_http_req *req, void *data)
{
    px_worker *w = data;
    SL_ASSERT(w->cur);
    px_req *r = sl_serve_freelist_get(&w->sw.records);
    if (!r) return 503;
    r->w = w;
    r->req = req;
    req->host = r;
    r->wg = px_wgen_hold(w->cur);
    w->in_flight++;
    const px_config *cfg = r->wg->gen->cfg;

    if (req->method == SL_HTTP_GET) {
        if (sl_slice_eq(req->path, "/healthz")) r->op = PX_OP_HEALTHZ;
        if (sl_slice_eq(req->path, "/readyz")) r->op = PX_OP_READYZ;
    }
    sl_slice acrm;
    if (req->method == SL_HTTP_OPTIONS && cfg->ncors_origins &&
        sl_http_req_header(req, "access-control-request-method", &acrm) &&
        sl_http_req_header(req, "origin", &acrm))
        r->op = PX_OP_PREFLIGHT;
    if (r->op == PX_OP_NONE) {
        r->route = px_routes_match(&cfg->routes, req->method, req->path, req->headers,
                                   req->nheaders, &r->params, &r->allowed);
        if (!r->route) {
            r->status = r->allowed ? 405 : 404;
            req->body_max_bytes = 64 * 1024; /* read and dropped */
            if (!r->allowed) static_match(r);
        } else {
            r->route_idx = (int)(r->route - cfg->routes.items);
            req->body_max_bytes = r->route->body_max_bytes;
        }
    }
    if (w->in_flight > cfg->max_pending) r->status = 503;
    sl_serve_begin(&w->sw, req, r->route ? r->route->name : (r->sfile ? "static" : "HTTP gateway"),
                   &r->span);
    return 0;
}

static void respond_405(px_req *r)
{
    char allow[128];
    size_t n = sl_router_allow_header(r->allowed, allow, sizeof allow);
    sl_http_header h = {SL_SLICE_LIT("Allow"), {allow, n}};
    px_respond_problem(r, 405, "method not allowed for this resource", &h, 1);
}

static int rate_limited(px_req *r)
{
    px_gen *g = r->wg->gen;
    sl_ratelimit *lims[2] = {g->client_rl, g->route_rl ? g->route_rl[r->route_idx] : NULL};
    if (!lims[0] && !lims[1]) return 0;
    char ip[64] = "";
    if (sl_http_req_peer(r->req, ip, sizeof ip) != 0) snprintf(ip, sizeof ip, "unknown");
    for (int i = 0; i < 2; i++) {
        int64_t ra = 0;
        if (!lims[i]) continue;
        pthread_mutex_lock(&g->rl_mu);
        int rc = sl_ratelimit_take(lims[i], ip, strlen(ip), &ra);
        pthread_mutex_unlock(&g->rl_mu);
        if (rc != SL_ELIMIT) continue;
        const char *labels[] = {i == 0 ? "client" : "route"};
        sl_series *s = sl_metric_series(r->w->proc->rejected, labels);
        if (s) sl_counter_inc(s, (unsigned)r->w->sw.index);
        px_respond_retry_after(
            r, 429,
            i == 0 ? "too many requests from this client" : "too many requests to this route", ra);
        return 1;
    }
    return 0;
}

/* After authentication: the upstream call or the aggregate. */
static void dispatch(px_req *r)
{
    SL_ASSERT(r->route && r->status == 0);
    r->deadline = sl_deadline_after(sl_clock_system(), r->route->timeout_ms);
    if (r->route->handler != PX_HANDLER_NONE)
        px_admin_handle(r);
    else if (r->route->aggregate >= 0)
        px_aggregate_start(r, &px_cfg(r)->aggregates[r->route->aggregate]);
    else
        forward(r);
}

void px_resume(px_waiter *wt)
{
    px_req *r = (px_req *)(void *)((char *)wt - offsetof(px_req, wait));
    if (px_authenticate(r) == PX_AUTHN_PASS) dispatch(r);
}

void px_abandon(px_waiter *wt)
{
    px_req *r = (px_req *)(void *)((char *)wt - offsetof(px_req, wait));
    sl_http_respond_problem(r->req, 503, "the gateway is stopping");
}

void px_on_request(sl_http_req *req, void *data)
{
    SL_ASSERT(req->host && ((px_req *)req->host)->req == req);
    (void)data;
    px_req *r = req->host;
    if (r->status == 503) {
        px_respond_retry_after(r, 503, "the gateway is at its pending request limit", 1000);
        return;
    }
    if (r->op == PX_OP_STATIC || r->op == PX_OP_REDIRECT) {
        if (r->op == PX_OP_STATIC)
            px_static_respond(r);
        else
            px_static_redirect(r);
        return;
    }
    if (r->op != PX_OP_NONE) {
        ops(r);
        return;
    }
    if (r->status == 404) {
        px_respond_problem(r, 404, "no such resource", NULL, 0);
        return;
    }
    if (r->status == 405) {
        respond_405(r);
        return;
    }
    if (req->method == SL_HTTP_OTHER) {
        px_respond_problem(r, 501, "method not implemented", NULL, 0);
        return;
    }
    if (rate_limited(r)) return;
    if (px_authenticate(r) != PX_AUTHN_PASS) return;
    dispatch(r);
}


/* The route label of the request metrics: the route's template, or what answered it; never the
 * raw path (NULL counts as unmatched). */
static const char *metric_route(const px_req *r)
{
    if (r->route) return r->route->path;
    if (r->op == PX_OP_HEALTHZ) return "/healthz";
    if (r->op == PX_OP_READYZ) return "/readyz";
    if (r->op == PX_OP_STATIC || r->op == PX_OP_REDIRECT) return "static";
    if (r->op == PX_OP_PREFLIGHT) return "preflight";
    return NULL;
}

void px_on_response(sl_http_req *req, int status, size_t body_len, void *data)
{
    px_worker *w = data;
    px_req *r = req->host;
    if (!r) return;
    SL_ASSERT(r->w == w && w->in_flight > 0);
    sl_serve_outcome o = {.route = metric_route(r)};
    char ip[64]; /* written only when the access log is on: no per-request cost otherwise */
    sl_log_field extra[4];
    if (r->span && px_cfg(r)->access_log && sl_log_enabled(w->proc->log, SL_LOG_LEVEL_INFO)) {
        ip[0] = '\0';
        (void)sl_http_req_peer(req, ip, sizeof ip);
        extra[0] = SL_LOG_STR("route", r->route ? r->route->name : NULL);
        extra[1] = SL_LOG_STR("upstream", r->upstream_name);
        extra[2] = SL_LOG_STR("client", ip);
        extra[3] = SL_LOG_STR("user_id", r->authed ? r->id.user_id : NULL);
        o.log = w->proc->log;
        o.level = SL_LOG_LEVEL_INFO;
        o.msg = "access";
        o.extra = extra;
        o.nextra = SL_ARRAY_LEN(extra);
    }
    sl_serve_finish(&w->sw, req, status, body_len, &r->span, &o);
    if (r->call) sl_http_call_cancel(r->call);
    r->call = NULL;
    px_agg_free(r->agg);
    r->agg = NULL;
    req->host = NULL;
    w->in_flight--;
    px_wgen_unref(r->wg);
    sl_serve_freelist_put(&w->sw.records, r);
}
