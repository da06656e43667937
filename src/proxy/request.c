/*
 * What every stage of the request pipeline answers and sends with
 * (request.h): problem answers with CORS, the mapping of upstream failures
 * to 502/503/504, and the headers and options of an upstream call. The
 * request is never forwarded as bytes: the client's parsed fields are
 * filtered (hop-by-hop, identity, forwarding and framing headers removed)
 * and the HTTP client serialises a fresh request (docs/gateway.md,
 * "Hygiene").
 */
#include "request.h"

#include <shoal/json.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int px_origin_allowed(const px_config *cfg, sl_slice origin)
{
    for (size_t i = 0; i < cfg->ncors_origins; i++)
        if (strcmp(cfg->cors_origins[i], "*") == 0 || sl_slice_eq(origin, cfg->cors_origins[i]))
            return 1;
    return 0;
}

size_t px_cors_headers(const px_req *r, sl_http_header *h, size_t n, size_t cap)
{
    const px_config *cfg = px_cfg(r);
    sl_slice origin;
    if (cfg->ncors_origins == 0 || !sl_http_req_header(r->req, "origin", &origin) ||
        !px_origin_allowed(cfg, origin) || n + 4 > cap)
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

void px_respond_problem(px_req *r, int status, const char *detail, const sl_http_header *extra,
                        size_t nextra)
{
    SL_ASSERT(r && r->req && status >= 400 && status <= 599);
    size_t len = 0;
    char *body = sl_problem_body(status, NULL, detail, NULL, &len);
    sl_http_header h[16];
    size_t n = 0;
    h[n++] =
        (sl_http_header){SL_SLICE_LIT("Content-Type"), SL_SLICE_LIT("application/problem+json")};
    for (size_t i = 0; i < nextra && n < 10; i++)
        h[n++] = extra[i];
    n = px_cors_headers(r, h, n, SL_ARRAY_LEN(h));
    sl_http_respond(r->req, status, h, n, body ? body : "", body ? len : 0);
    free(body);
}

void px_respond_retry_after(px_req *r, int status, const char *detail, int64_t retry_ms)
{
    char ra[24];
    int64_t s = retry_ms > 0 ? (retry_ms + 999) / 1000 : 1;
    snprintf(ra, sizeof ra, "%lld", (long long)s);
    sl_http_header h = {SL_SLICE_LIT("Retry-After"), {ra, strlen(ra)}};
    px_respond_problem(r, status, detail, &h, 1);
}

void px_respond_upstream_error(px_req *r, const sl_http_result *res, const char *part)
{
    SL_ASSERT(res && res->kind != SL_HTTP_RESULT_OK);
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
        px_respond_retry_after(r, 503, detail, res->retry_after_ms);
        return;
    case SL_HTTP_RESULT_TIMEOUT:
        px_respond_problem(r, 504, detail, NULL, 0);
        return;
    default:
        px_respond_problem(r, 502, detail, NULL, 0);
        return;
    }
}

void px_build_headers(px_req *r, int cluster, sl_http_method method, sl_slice target, sl_slice body,
                      int forward_client, px_out_headers *out)
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
    const sl_identity_edge *edge = px_cfg(r)->clusters[cluster].identity_edge;
    if (!r->authed || !edge) return;
    SL_ASSERT(out->fwd.n + SL_IDENTITY_NHEADERS <= SL_ARRAY_LEN(out->fwd.h));
    /* The Idempotency-Key px_call_opts forwards, bound into the proof. */
    sl_slice ik = {NULL, 0};
    if (!sl_http_req_header(r->req, "idempotency-key", &ik) || ik.len >= sizeof r->idem)
        ik = (sl_slice){NULL, 0};
    sl_identity_msg m = {.callee = edge->callee,
                         .method = method,
                         .target = target,
                         .idempotency_key = ik,
                         .body = body.ptr,
                         .body_len = body.len};
    int64_t now = sl_clock_wall_ms(sl_clock_system());
    if (sl_identity_headers(edge, r->id.user_id, r->id.role, &m, now, out->proof,
                            &out->fwd.h[out->fwd.n]) == 0)
        out->fwd.n += SL_IDENTITY_NHEADERS;
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
