/*
 * The sidecar role's request path (sidecar.h): listeners, the policy check
 * of inbound calls, and the forwarded call through the worker's clusters.
 * The lifecycle (workers, reload, admin listener) is the gateway's
 * (gateway.c); the clusters are the gateway's (cluster.c).
 */
#include "sidecar.h"

#include "forward.h"

#include <shoal/deadline.h>
#include <shoal/identity.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- TLS contexts (main thread) ----------------------------------------------------------- */

static int find_prev_client(const px_config *prev, const char *cluster)
{
    if (!prev || !prev->sidecar.on) return -1;
    for (size_t i = 0; i < prev->sidecar.noutbound; i++)
        if (strcmp(prev->clusters[prev->sidecar.outbound[i].cluster].name, cluster) == 0 &&
            prev->sidecar.tls_client[i])
            return (int)i;
    return -1;
}

static int load_one(const sl_tls_config *t, const sl_tls_ctx *old, sl_tls_ctx **out, char *err,
                    size_t cap)
{
    return old ? sl_tls_ctx_reload(old, t, out, err, cap) : sl_tls_ctx_new(t, out, err, cap);
}

/*
 * The local hop's token (identity.h): read once, at the first load, from the file
 * SHOAL_SIDECAR_PEER_TOKEN_FILE names (`shoal up --mesh` sets it), before any worker runs;
 * workers only read it. Without the variable the local service gets no token and trusts no
 * caller service header.
 */
static char hop_token[65];
static int hop_token_loaded;

static int load_hop_token(char *err, size_t cap)
{
    if (hop_token_loaded) return 0;
    const char *path = getenv("SHOAL_SIDECAR_PEER_TOKEN_FILE");
    if (path && path[0]) {
        sl_identity_key k;
        char kerr[256];
        if (sl_identity_peer_token_load(path, &k, kerr) != 0) {
            snprintf(err, cap, "SHOAL_SIDECAR_PEER_TOKEN_FILE: %s", kerr);
            return SL_ECONFIG;
        }
        sl_identity_peer_token_hex(&k, hop_token);
        memset(&k, 0, sizeof k);
    }
    hop_token_loaded = 1;
    return 0;
}

int px_sidecar_load_tls(px_config *cfg, const px_config *prev, sl_metrics *metrics, sl_logger *log,
                        char *err, size_t cap)
{
    px_sidecar_cfg *sc = &cfg->sidecar;
    if (!sc->on) return 0;
    if (load_hop_token(err, cap) != 0) return SL_ECONFIG;
    SL_ASSERT(!sc->tls_server);
    sl_tls_config t = {.server = true,
                       .cert_file = sc->cert_file,
                       .key_file = sc->key_file,
                       .ca_file = sc->ca_file,
                       .revoked_file = sc->revoked_file,
                       .require_client_cert = true,
                       .mesh = true,
                       .metrics = metrics,
                       .log = log};
    const sl_tls_ctx *old = prev && prev->sidecar.on ? prev->sidecar.tls_server : NULL;
    int rc = load_one(&t, old, &sc->tls_server, err, cap);
    for (size_t i = 0; rc == 0 && i < sc->noutbound; i++) {
        px_cluster_cfg *c = &cfg->clusters[sc->outbound[i].cluster];
        t.server = false;
        t.require_client_cert = false;
        t.expect_peer = c->name;
        int p = find_prev_client(prev, c->name);
        rc =
            load_one(&t, p >= 0 ? prev->sidecar.tls_client[p] : NULL, &sc->tls_client[i], err, cap);
        c->up.tls = sc->tls_client[i];
    }
    if (rc == 0) return 0;
    sl_tls_ctx_unref(sc->tls_server);
    sc->tls_server = NULL;
    for (size_t i = 0; i < sc->noutbound; i++) {
        sl_tls_ctx_unref(sc->tls_client[i]);
        sc->tls_client[i] = NULL;
        cfg->clusters[sc->outbound[i].cluster].up.tls = NULL;
    }
    return rc;
}

/* ---- request path (loop thread) ----------------------------------------------------------- */

int px_sidecar_on_headers(sl_http_req *req, void *data)
{
    px_sc_listener *l = data;
    px_worker *w = l->w;
    SL_ASSERT(w->cur);
    px_req *r = sl_serve_freelist_get(&w->sw.records);
    if (!r) return 503;
    r->w = w;
    r->req = req;
    req->host = r;
    r->wg = px_wgen_hold(w->cur);
    w->in_flight++;
    const px_config *cfg = r->wg->gen->cfg;
    const px_sidecar_cfg *sc = &cfg->sidecar;
    SL_ASSERT(sc->on && l->route >= 0 && (size_t)l->route <= sc->noutbound);
    r->route = &sc->routes[l->route];
    r->route_idx = -1;
    req->body_max_bytes = r->route->body_max_bytes;
    if (l->route == 0) {
        /* Decided before the body is read: a refused caller's body is read up to a small limit
         * and dropped. */
        r->verdict = (int)px_policy_decide(&sc->policy, sl_http_req_peer_service(req), req->method,
                                           req->path);
        if (r->verdict != PX_POLICY_ALLOW) {
            r->status = 403;
            req->body_max_bytes = 64 * 1024;
        }
    }
    if (w->in_flight > cfg->max_pending) r->status = 503;
    sl_serve_begin(&w->sw, req, r->route->name, &r->span);
    return 0;
}

static void deny(px_req *r)
{
    const px_sidecar_cfg *sc = &px_cfg(r)->sidecar;
    const char *caller = sl_http_req_peer_service(r->req);
    const char *labels[] = {caller ? caller : "none", sc->service};
    sl_series *s = sl_metric_series(r->w->proc->denied, labels);
    if (s) sl_counter_inc(s, (unsigned)r->w->sw.index);
    const char *why = px_policy_verdict_name((px_policy_verdict)r->verdict);
    char path[256];
    snprintf(path, sizeof path, "%.*s", (int)(r->req->path.len < 255 ? r->req->path.len : 255),
             r->req->path.ptr);
    SL_LOG_WARN(r->w->proc->log, NULL, "call denied by the mesh policy",
                SL_LOG_STR("caller", caller ? caller : "none"), SL_LOG_STR("callee", sc->service),
                SL_LOG_STR("method", sl_http_method_name(r->req->method)), SL_LOG_STR("path", path),
                SL_LOG_STR("reason", why));
    char detail[256];
    if (r->verdict == PX_POLICY_BAD_PATH)
        snprintf(detail, sizeof detail,
                 "the path has dot segments or an encoded '/', '.' or '\\'; refused by the mesh");
    else
        snprintf(detail, sizeof detail, "service '%s' may not call %s on this route of '%s'",
                 caller ? caller : "(no identity)", sl_http_method_name(r->req->method),
                 sc->service);
    px_respond_problem(r, 403, detail, NULL, 0);
}

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
    sl_http_header h[SL_HTTP_CLIENT_HEADERS_MAX];
    size_t n = px_filter_response_headers(rs->headers, rs->nheaders, h, SL_ARRAY_LEN(h));
    sl_http_respond(r->req, rs->status, h, n, rs->body.ptr, rs->body.len);
}

/* What the sidecar does not pass on: hop-by-hop and framing headers, those the client call
 * writes itself from verified values, and any claim to be a caller service. */
static int dropped(sl_slice name, sl_slice conn)
{
    return px_is_hop_by_hop(name, conn) || SL_SLICE_CASE_EQ_LIT(name, "host") ||
           SL_SLICE_CASE_EQ_LIT(name, "content-length") ||
           SL_SLICE_CASE_EQ_LIT(name, "traceparent") ||
           SL_SLICE_CASE_EQ_LIT(name, "x-request-id") ||
           SL_SLICE_CASE_EQ_LIT(name, "idempotency-key") ||
           SL_SLICE_CASE_EQ_LIT(name, SL_DEADLINE_HEADER) ||
           SL_SLICE_CASE_EQ_LIT(name, PX_PEER_SERVICE_HEADER) ||
           SL_SLICE_CASE_EQ_LIT(name, SL_IDENTITY_PEER_TOKEN_HEADER);
}

static void forward(px_req *r, int inbound)
{
    const px_route *rt = r->route;
    sl_http_req *req = r->req;
    px_wcluster *c = &r->wg->clusters[rt->cluster];
    r->upstream_name = c->cfg->name;
    char target[PX_PATH_MAX];
    size_t n = req->path.len + (req->query.len ? 1 + req->query.len : 0);
    if (n >= sizeof target) {
        px_respond_problem(r, 414, "the target is too long", NULL, 0);
        return;
    }
    memcpy(target, req->path.ptr, req->path.len);
    if (req->query.len) {
        target[req->path.len] = '?';
        memcpy(target + req->path.len + 1, req->query.ptr, req->query.len);
    }
    sl_http_header h[PX_FWD_HEADERS_MAX];
    size_t nh = 0;
    sl_slice conn = {NULL, 0};
    (void)sl_http_req_header(req, "connection", &conn);
    for (size_t i = 0; i < req->nheaders && nh < PX_FWD_HEADERS_MAX - 2; i++)
        if (!dropped(req->headers[i].name, conn)) h[nh++] = req->headers[i];
    const char *caller = inbound ? sl_http_req_peer_service(req) : NULL;
    if (caller) {
        h[nh++] = (sl_http_header){SL_SLICE_LIT(PX_PEER_SERVICE_HEADER), {caller, strlen(caller)}};
        if (hop_token[0]) /* proves to the local service that this sidecar names the caller */
            h[nh++] =
                (sl_http_header){SL_SLICE_LIT(SL_IDENTITY_PEER_TOKEN_HEADER), {hop_token, 64}};
    }
    /* The caller's remaining budget, bounded by this hop's timeout. */
    const sl_clock *clk = sl_clock_system();
    sl_slice dl;
    int64_t remaining = 0;
    if (sl_http_req_header(req, SL_DEADLINE_HEADER, &dl) &&
        sl_deadline_parse_header(dl.ptr, dl.len, &remaining) == 0)
        r->deadline = sl_deadline_from_header(clk, remaining, rt->timeout_ms);
    else
        r->deadline = sl_deadline_after(clk, rt->timeout_ms);
    sl_http_request rq = {.method = req->method,
                          .target = {target, n},
                          .headers = h,
                          .nheaders = nh,
                          .body = req->body.ptr,
                          .body_len = req->body.len};
    sl_http_call_opts o;
    px_call_opts(r, rt->timeout_ms, &o);
    /* Version subsets: the weights and the canary header (no user id here: no stickiness). */
    sl_slice canary = {NULL, 0};
    bool want_canary =
        sl_http_req_header(req, "x-shoal-canary", &canary) && sl_slice_eq(canary, "1");
    sl_upstream *up = px_wcluster_choose(c, want_canary, NULL, 0, &r->subset);
    int rc = sl_http_call(up, &rq, &o, on_upstream, r, &r->call);
    if (rc != 0) {
        r->call = NULL;
        px_respond_problem(r, rc == SL_ELIMIT ? 413 : 502, sl_strerror(rc), NULL, 0);
    }
}

void px_sidecar_on_request(sl_http_req *req, void *data)
{
    px_sc_listener *l = data;
    px_req *r = req->host;
    SL_ASSERT(r && r->req == req);
    if (r->status == 503) {
        px_respond_retry_after(r, 503, "the sidecar is at its pending request limit", 1000);
        return;
    }
    if (r->status == 403) {
        deny(r);
        return;
    }
    if (req->method == SL_HTTP_OTHER) {
        px_respond_problem(r, 501, "method not implemented", NULL, 0);
        return;
    }
    forward(r, l->route == 0);
}

void px_sidecar_on_response(sl_http_req *req, int status, size_t body_len, void *data)
{
    px_sc_listener *l = data;
    px_on_response(req, status, body_len, l->w);
}
