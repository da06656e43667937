/*
 * The gateway's request path, on the worker's loop:
 *
 *   on_headers  request id, route match (404/405 decided here, the body
 *               limit set for 413), server span, generation reference;
 *   on_request  operations routes and CORS preflight, bounded pending
 *               requests (503), per-client then per-route rate limits (429),
 *               authentication (401/403, possibly parked while the JWKS is
 *               refetched), then one upstream call through the cluster's
 *               policies or an aggregate;
 *   on_response metrics, JSON access log, span end, references released.
 *
 * The request is never forwarded as bytes: the client's parsed fields are
 * filtered (hop-by-hop, identity, forwarding and framing headers removed)
 * and the HTTP client serialises a fresh request (docs/gateway.md,
 * "Hygiene").
 */
#include "gateway.h"

#include <shoal/json.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PX_REQ_FREE_MAX 1024

/* ---- helpers ------------------------------------------------------------------------------- */

static const px_config *cfg_of(const px_req *r)
{
    return r->wg->gen->cfg;
}

static int origin_allowed(const px_config *cfg, sl_slice origin)
{
    for (size_t i = 0; i < cfg->ncors_origins; i++)
        if (strcmp(cfg->cors_origins[i], "*") == 0 || sl_slice_eq(origin, cfg->cors_origins[i]))
            return 1;
    return 0;
}

/* Appends the CORS headers of an actual (non-preflight) response. Returns the new count. */
static size_t cors_headers(const px_req *r, sl_http_header *h, size_t n, size_t cap)
{
    const px_config *cfg = cfg_of(r);
    sl_slice origin;
    if (cfg->ncors_origins == 0 || !sl_http_req_header(r->req, "origin", &origin) ||
        !origin_allowed(cfg, origin) || n + 4 > cap)
        return n;
    h[n++] = (sl_http_header){SL_SLICE_LIT("Access-Control-Allow-Origin"), origin};
    h[n++] = (sl_http_header){SL_SLICE_LIT("Vary"), SL_SLICE_LIT("Origin")};
    h[n++] = (sl_http_header){SL_SLICE_LIT("Access-Control-Expose-Headers"),
                              {cfg->cors_expose, strlen(cfg->cors_expose)}};
    if (cfg->cors_credentials)
        h[n++] = (sl_http_header){SL_SLICE_LIT("Access-Control-Allow-Credentials"),
                                  SL_SLICE_LIT("true")};
    return n;
}

/* Answers with a problem body, plus `extra` headers, plus CORS. */
static void respond_problem(px_req *r, int status, const char *detail, const sl_http_header *extra,
                            size_t nextra)
{
    size_t len = 0;
    char *body = sl_problem_body(status, NULL, detail, NULL, &len);
    sl_http_header h[16];
    size_t n = 0;
    h[n++] =
        (sl_http_header){SL_SLICE_LIT("Content-Type"), SL_SLICE_LIT("application/problem+json")};
    for (size_t i = 0; i < nextra && n < 10; i++)
        h[n++] = extra[i];
    n = cors_headers(r, h, n, SL_ARRAY_LEN(h));
    sl_http_respond(r->req, status, h, n, body ? body : "", body ? len : 0);
    free(body);
}

static void respond_retry_after(px_req *r, int status, const char *detail, int64_t retry_ms)
{
    char ra[24];
    int64_t s = retry_ms > 0 ? (retry_ms + 999) / 1000 : 1;
    snprintf(ra, sizeof ra, "%lld", (long long)s);
    sl_http_header h = {SL_SLICE_LIT("Retry-After"), {ra, strlen(ra)}};
    respond_problem(r, status, detail, &h, 1);
}

void px_respond_upstream_error(px_req *r, const sl_http_result *res, const char *part)
{
    char detail[160];
    const char *kind = sl_http_result_kind_name(res->kind);
    if (part)
        snprintf(detail, sizeof detail, "upstream %s (%s): %s",
                 r->upstream_name ? r->upstream_name : "", part, kind);
    else
        snprintf(detail, sizeof detail, "upstream %s: %s", r->upstream_name ? r->upstream_name : "",
                 kind);
    switch (res->kind) {
    case SL_HTTP_RESULT_BREAKER_OPEN:
    case SL_HTTP_RESULT_BULKHEAD_FULL:
    case SL_HTTP_RESULT_POOL_FULL:
    case SL_HTTP_RESULT_CONNECT:
    case SL_HTTP_RESULT_CANCELED:
        respond_retry_after(r, 503, detail, res->retry_after_ms);
        return;
    case SL_HTTP_RESULT_TIMEOUT:
        respond_problem(r, 504, detail, NULL, 0);
        return;
    default:
        respond_problem(r, 502, detail, NULL, 0);
        return;
    }
}

/* ---- outgoing headers ------------------------------------------------------------------------ */

void px_build_headers(px_req *r, sl_http_method method, sl_slice path, int forward_client,
                      px_out_headers *out)
{
    char ip[64] = "";
    (void)sl_http_req_peer(r->req, ip, sizeof ip);
    if (!ip[0]) snprintf(ip, sizeof ip, "unknown");
    if (forward_client)
        px_filter_request_headers(r->req->headers, r->req->nheaders, ip, &out->fwd);
    else
        px_filter_request_headers(NULL, 0, ip, &out->fwd);
    /* Services trust the signed identity below, never the bearer token: do not pass it on. */
    size_t k = 0;
    for (size_t i = 0; i < out->fwd.n; i++)
        if (!sl_slice_case_eq(out->fwd.h[i].name, "authorization")) out->fwd.h[k++] = out->fwd.h[i];
    out->fwd.n = k;
    if (!r->authed || !cfg_of(r)->have_identity_key) return;
    int64_t now = sl_clock_wall_ms(sl_clock_system());
    if (sl_identity_sign(&cfg_of(r)->identity_key, r->id.user_id, r->id.role, method, path, now,
                         out->proof) != 0)
        return;
    sl_http_header *h = out->fwd.h;
    h[out->fwd.n++] =
        (sl_http_header){SL_SLICE_LIT("x-user-id"), {r->id.user_id, strlen(r->id.user_id)}};
    h[out->fwd.n++] =
        (sl_http_header){SL_SLICE_LIT("x-user-role"), {r->id.role, strlen(r->id.role)}};
    h[out->fwd.n++] =
        (sl_http_header){SL_SLICE_LIT("x-shoal-identity"), {out->proof, strlen(out->proof)}};
}

void px_call_opts(px_req *r, int64_t timeout_ms, sl_http_call_opts *o)
{
    memset(o, 0, sizeof *o);
    o->timeout_ms = timeout_ms;
    o->deadline = &r->deadline;
    o->trace = r->span ? sl_span_context(r->span) : NULL;
    o->request_id = r->req->request_id[0] ? r->req->request_id : NULL;
    sl_slice ik;
    if (sl_http_req_header(r->req, "idempotency-key", &ik) && ik.len > 0 &&
        ik.len < sizeof r->idem) {
        memcpy(r->idem, ik.ptr, ik.len);
        r->idem[ik.len] = '\0';
        o->idempotency_key = r->idem;
    }
}

/* ---- the proxied call ------------------------------------------------------------------------ */

static void on_upstream(sl_http_handle *call, const sl_http_result *res, void *data)
{
    (void)call;
    px_req *r = data;
    r->call = NULL;
    if (res->kind != SL_HTTP_RESULT_OK) {
        px_respond_upstream_error(r, res, NULL);
        return;
    }
    const sl_http_response *rs = res->response;
    r->upstream_status = rs->status;
    sl_http_header h[SL_HTTP_CLIENT_HEADERS_MAX + 8];
    size_t n = px_filter_response_headers(rs->headers, rs->nheaders, h, SL_HTTP_CLIENT_HEADERS_MAX);
    h[n++] = (sl_http_header){SL_SLICE_LIT("Via"), SL_SLICE_LIT("1.1 shoal")};
    n = cors_headers(r, h, n, SL_ARRAY_LEN(h));
    sl_http_respond(r->req, rs->status, h, n, rs->body.ptr, rs->body.len);
}

static void forward(px_req *r)
{
    const px_route *rt = r->route;
    sl_http_req *req = r->req;
    px_wcluster *c = &r->wg->clusters[rt->cluster];
    r->upstream_name = c->cfg->name;
    char target[PX_PATH_MAX];
    int n = px_route_target(rt, req->path, req->query, &r->params, target, sizeof target);
    if (n < 0) {
        respond_problem(r, n == SL_ELIMIT ? 414 : 400, "the rewritten target is invalid", NULL, 0);
        return;
    }
    const char *q = memchr(target, '?', (size_t)n);
    sl_slice tpath = {target, q ? (size_t)(q - target) : (size_t)n};
    px_out_headers oh;
    px_build_headers(r, req->method, tpath, 1, &oh);
    sl_http_request rq = {.method = req->method,
                          .target = {target, (size_t)n},
                          .headers = oh.fwd.h,
                          .nheaders = oh.fwd.n,
                          .body = req->body.ptr,
                          .body_len = req->body.len};
    sl_http_call_opts o;
    px_call_opts(r, rt->timeout_ms, &o);
    int rc = sl_http_call(c->up, &rq, &o, on_upstream, r, &r->call);
    if (rc != 0) {
        r->call = NULL;
        respond_problem(r, rc == SL_ELIMIT ? 413 : 502, sl_strerror(rc), NULL, 0);
    }
}

/* ---- authentication ----------------------------------------------------------------------------
 */

static int visible_ascii(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) return 0;
    return 1;
}

static void respond_401(px_req *r, const char *detail, const char *reason)
{
    px_gateway *gw = r->w->gw;
    const char *labels[] = {reason};
    sl_series *s = sl_metric_series(gw->auth_fail, labels);
    if (s) sl_counter_inc(s, (unsigned)r->w->index);
    sl_http_header h = {SL_SLICE_LIT("WWW-Authenticate"),
                        SL_SLICE_LIT("Bearer error=\"invalid_token\"")};
    respond_problem(r, 401, detail, &h, 1);
}

/* Returns 0 to go on, 1 when parked (px_resume continues), -1 when answered. */
static int authenticate(px_req *r)
{
    const px_route *rt = r->route;
    px_worker *w = r->w;
    const px_config *cfg = cfg_of(r);
    int required = rt->auth != PX_AUTH_PUBLIC;
    sl_slice a;
    if (!sl_http_req_header(r->req, "authorization", &a) || a.len < 8 ||
        strncasecmp(a.ptr, "bearer ", 7) != 0) {
        if (!required) return 0;
        respond_401(r, "a bearer token is required", "missing");
        return -1;
    }
    sl_slice tok = {a.ptr + 7, a.len - 7};
    while (tok.len && tok.ptr[0] == ' ') {
        tok.ptr++;
        tok.len--;
    }
    if (!w->jwks.ks) {
        if (cfg->jwks_cluster >= 0 && !r->kid_retried) {
            px_jwks_fetch(w, 1);
            r->kid_retried = 1;
            if (w->jwks.fetching && px_jwks_wait(w, r) == 0) return 1;
        }
        if (!required) return 0;
        respond_problem(r, 503, "the signing keys are not available yet", NULL, 0);
        return -1;
    }
    sl_jwt_verify_opts opts;
    sl_jwt_verify_opts_init(&opts, sl_clock_system());
    opts.issuer = cfg->issuer;
    opts.leeway_s = cfg->leeway_s;
    sl_jwt_verified v;
    sl_jwt_reason reason = SL_JWT_MALFORMED;
    int rc = sl_jwt_verify(w->jwks.ks, tok.ptr, tok.len, &opts, &v, &reason);
    if (rc == SL_EINVAL && reason == SL_JWT_UNKNOWN_KID && !r->kid_retried) {
        /* Rotation: a kid we do not know may be a new key. Refetch (rate-limited) and retry once.
         */
        r->kid_retried = 1;
        px_jwks_fetch(w, 0);
        if (w->jwks.fetching && px_jwks_wait(w, r) == 0) return 1;
    }
    if (rc == SL_ENOMEM) {
        respond_problem(r, 503, "out of memory", NULL, 0);
        return -1;
    }
    if (rc != 0) {
        if (!required) return 0;
        SL_LOG_INFO(w->gw->log, r->span ? sl_span_context(r->span) : NULL, "token rejected",
                    SL_LOG_STR("reason", sl_jwt_reason_name(reason)),
                    SL_LOG_STR("request_id", r->req->request_id));
        respond_401(r, "the bearer token is not valid", sl_jwt_reason_name(reason));
        return -1;
    }
    const char *role = v.role ? v.role : "customer";
    int ok = visible_ascii(v.sub, SL_IDENTITY_ID_MAX) && visible_ascii(role, SL_IDENTITY_ROLE_MAX);
    if (ok) {
        snprintf(r->id.user_id, sizeof r->id.user_id, "%s", v.sub);
        snprintf(r->id.role, sizeof r->id.role, "%s", role);
        r->authed = 1;
    }
    sl_jwt_verified_deinit(&v);
    if (!ok) {
        if (!required) return 0;
        respond_401(r, "the token's subject or role is not usable", "bad_claims");
        return -1;
    }
    int admin = strcmp(r->id.role, "admin") == 0;
    if (rt->auth == PX_AUTH_ADMIN && !admin) {
        respond_problem(r, 403, "this operation needs the admin role", NULL, 0);
        return -1;
    }
    if (rt->owner_param && !admin) {
        for (size_t i = 0; i < r->params.n; i++)
            if (strcmp(r->params.p[i].name, rt->owner_param) == 0 &&
                !sl_slice_eq(r->params.p[i].value, r->id.user_id)) {
                respond_problem(r, 403, "only the owner or an admin may do this", NULL, 0);
                return -1;
            }
    }
    return 0;
}

/* ---- operations and CORS ----------------------------------------------------------------------
 */

static void ops(px_req *r)
{
    px_worker *w = r->w;
    if (r->ops == 1) {
        static const char body[] = "{\"status\":\"ok\"}";
        sl_http_respond_body(r->req, 200, "application/json", body, sizeof body - 1);
    } else if (r->ops == 2) {
        char body[128];
        int ready = w->started && !atomic_load(&w->gw->stopping);
        int n = snprintf(body, sizeof body, "{\"status\":\"%s\",\"generation\":%llu,\"jwks\":%s}",
                         ready ? "ready" : "not ready", (unsigned long long)r->wg->gen->id,
                         w->jwks.ks ? "true" : "false");
        sl_http_respond_body(r->req, ready ? 200 : 503, "application/json", body, (size_t)n);
    } else if (r->ops == 3) {
        px_gateway *gw = w->gw;
        double conns = 0;
        for (int i = 0; i < gw->nworkers; i++)
            conns += (double)atomic_load(&gw->w[i].connections);
        sl_series *s = sl_metric_series(gw->connections, NULL);
        if (s) sl_gauge_set(s, conns);
        char *text = NULL;
        size_t len = 0;
        if (sl_metrics_render(gw->metrics, &text, &len) != 0) {
            sl_http_respond_problem(r->req, 500, "could not render metrics");
            return;
        }
        sl_http_respond_body(r->req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
        free(text);
    } else {
        const px_config *cfg = cfg_of(r);
        sl_slice origin = {NULL, 0};
        (void)sl_http_req_header(r->req, "origin", &origin);
        if (!origin_allowed(cfg, origin)) {
            respond_problem(r, 403, "this origin is not allowed", NULL, 0);
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

/* ---- server callbacks --------------------------------------------------------------------------
 */

static int valid_request_id(sl_slice v)
{
    if (v.len == 0 || v.len > 63) return 0;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return 0;
    }
    return 1;
}

int px_on_headers(sl_http_req *req, void *data)
{
    px_worker *w = data;
    px_req *r = w->free_reqs;
    if (r) {
        w->free_reqs = r->next;
        w->nfree--;
    } else if (!(r = malloc(sizeof *r))) {
        return 503;
    }
    memset(r, 0, sizeof *r);
    r->w = w;
    r->req = req;
    req->host = r;
    r->wg = px_wgen_current(w);
    w->in_flight++;
    const px_config *cfg = r->wg->gen->cfg;

    sl_slice rid;
    if (sl_http_req_header(req, "x-request-id", &rid) && valid_request_id(rid)) {
        memcpy(req->request_id, rid.ptr, rid.len);
        req->request_id[rid.len] = '\0';
    } else if (sl_uuid7_new(&w->idgen, req->request_id) != 0) {
        req->request_id[0] = '\0';
    }

    if (req->method == SL_HTTP_GET) {
        if (sl_slice_eq(req->path, "/healthz")) r->ops = 1;
        if (sl_slice_eq(req->path, "/readyz")) r->ops = 2;
        if (sl_slice_eq(req->path, "/metrics")) r->ops = 3;
    }
    sl_slice acrm;
    if (req->method == SL_HTTP_OPTIONS && cfg->ncors_origins &&
        sl_http_req_header(req, "access-control-request-method", &acrm) &&
        sl_http_req_header(req, "origin", &acrm))
        r->ops = 4;
    if (!r->ops) {
        r->route = px_routes_match(&cfg->routes, req->method, req->path, req->headers,
                                   req->nheaders, &r->params, &r->allowed);
        if (!r->route) {
            r->status = r->allowed ? 405 : 404;
            req->body_max_bytes = 64 * 1024; /* read and dropped */
        } else {
            r->route_idx = (int)(r->route - cfg->routes.items);
            req->body_max_bytes = r->route->body_max_bytes;
        }
    }
    if (w->in_flight > cfg->max_pending) r->status = 503;

    sl_slice tp;
    sl_trace_ctx parent;
    const sl_trace_ctx *pp = NULL;
    if (sl_http_req_header(req, "traceparent", &tp) &&
        sl_traceparent_parse(tp.ptr, tp.len, &parent) == 0)
        pp = &parent;
    sl_span_start(w->tracer, r->route ? r->route->name : "HTTP gateway", SL_SPAN_SERVER, pp,
                  &r->span);
    sl_traceparent_format(sl_span_context(r->span), req->traceparent);
    return 0;
}

static void respond_405(px_req *r)
{
    char allow[128];
    size_t n = sl_router_allow_header(r->allowed, allow, sizeof allow);
    sl_http_header h = {SL_SLICE_LIT("Allow"), {allow, n}};
    respond_problem(r, 405, "method not allowed for this resource", &h, 1);
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
        sl_series *s = sl_metric_series(r->w->gw->rejected, labels);
        if (s) sl_counter_inc(s, (unsigned)r->w->index);
        respond_retry_after(
            r, 429,
            i == 0 ? "too many requests from this client" : "too many requests to this route", ra);
        return 1;
    }
    return 0;
}

/* After authentication: the upstream call or the aggregate. */
static void dispatch(px_req *r)
{
    r->deadline = sl_deadline_after(sl_clock_system(), r->route->timeout_ms);
    if (r->route->aggregate >= 0)
        px_aggregate_start(r, &cfg_of(r)->aggregates[r->route->aggregate]);
    else
        forward(r);
}

void px_resume(px_req *r)
{
    if (authenticate(r) == 0) dispatch(r);
}

void px_on_request(sl_http_req *req, void *data)
{
    (void)data;
    px_req *r = req->host;
    if (r->status == 503) {
        respond_retry_after(r, 503, "the gateway is at its pending request limit", 1000);
        return;
    }
    if (r->ops) {
        ops(r);
        return;
    }
    if (r->status == 404) {
        respond_problem(r, 404, "no such resource", NULL, 0);
        return;
    }
    if (r->status == 405) {
        respond_405(r);
        return;
    }
    if (req->method == SL_HTTP_OTHER) {
        respond_problem(r, 501, "method not implemented", NULL, 0);
        return;
    }
    if (rate_limited(r)) return;
    if (authenticate(r) != 0) return;
    dispatch(r);
}

void px_on_response(sl_http_req *req, int status, size_t body_len, void *data)
{
    px_worker *w = data;
    px_req *r = req->host;
    if (!r) return;
    px_gateway *gw = w->gw;
    unsigned m = (unsigned)req->method;
    if (m >= SL_HTTP_METHOD_COUNT || req->method_token.len == 0) m = SL_HTTP_OTHER;
    int st = status >= 100 && status < PX_MAX_STATUS ? status : 599;
    sl_series *cnt = w->req_series[m][st];
    if (!cnt) {
        char code[8];
        snprintf(code, sizeof code, "%d", st);
        const char *labels[] = {"gateway", sl_http_method_name((sl_http_method)m), code};
        cnt = w->req_series[m][st] = sl_metric_series(gw->req_total, labels);
    }
    if (!w->dur_series[m]) {
        const char *labels[] = {"gateway", sl_http_method_name((sl_http_method)m)};
        w->dur_series[m] = sl_metric_series(gw->req_duration, labels);
    }
    double secs = req->start_ns ? (double)((int64_t)uv_hrtime() - req->start_ns) / 1e9 : 0;
    if (cnt) sl_counter_inc(cnt, (unsigned)w->index);
    if (w->dur_series[m]) sl_histogram_observe(w->dur_series[m], (unsigned)w->index, secs);
    if (r->span) {
        if (sl_span_is_recording(r->span)) {
            sl_span_set_attr_str(r->span, "http.request.method",
                                 sl_http_method_name((sl_http_method)m));
            if (r->route) sl_span_set_attr_str(r->span, "http.route", r->route->path);
            sl_span_set_attr_int(r->span, "http.response.status_code", status);
            if (status >= 500)
                sl_span_set_status(r->span, SL_SPAN_STATUS_ERROR, sl_http_reason(status));
        }
        if (r->wg->gen->cfg->access_log && sl_log_enabled(gw->log, SL_LOG_LEVEL_INFO)) {
            char path[256];
            size_t n = req->path.len < sizeof path - 1 ? req->path.len : sizeof path - 1;
            memcpy(path, req->path.ptr, n);
            path[n] = '\0';
            char ip[64] = "";
            (void)sl_http_req_peer(req, ip, sizeof ip);
            SL_LOG_INFO(gw->log, sl_span_context(r->span), "access",
                        SL_LOG_STR("method", sl_http_method_name((sl_http_method)m)),
                        SL_LOG_STR("path", path), SL_LOG_INT("status", status),
                        SL_LOG_INT("bytes", (int64_t)body_len), SL_LOG_DBL("duration_s", secs),
                        SL_LOG_STR("request_id", req->request_id),
                        SL_LOG_STR("route", r->route ? r->route->name : NULL),
                        SL_LOG_STR("upstream", r->upstream_name), SL_LOG_STR("client", ip),
                        SL_LOG_STR("user_id", r->authed ? r->id.user_id : NULL));
        }
        sl_span_end(r->span);
        r->span = NULL;
    }
    if (r->call) sl_http_call_cancel(r->call);
    r->call = NULL;
    if (r->agg) px_agg_free(r->agg);
    r->agg = NULL;
    req->host = NULL;
    w->in_flight--;
    px_wgen_unref(r->wg);
    if (w->nfree < PX_REQ_FREE_MAX) {
        r->next = w->free_reqs;
        w->free_reqs = r;
        w->nfree++;
    } else {
        free(r);
    }
}
