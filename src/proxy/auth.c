/*
 * Authentication (auth.h). Services trust the identity the gateway signs
 * from a verified token, never the token itself: an invalid token on a
 * public route is treated as no token, never as an error.
 */
#include "auth.h"

#include <shoal/clock.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int visible_ascii(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return PX_AUTHN_PASS;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) return PX_AUTHN_PASS;
    return 1;
}

static void respond_401(px_req *r, const char *detail, const char *reason)
{
    px_proc *proc = r->w->proc;
    const char *labels[] = {reason};
    sl_series *s = sl_metric_series(proc->auth_fail, labels);
    if (s) sl_counter_inc(s, (unsigned)r->w->sw.index);
    sl_http_header h = {SL_SLICE_LIT("WWW-Authenticate"),
                        SL_SLICE_LIT("Bearer error=\"invalid_token\"")};
    px_respond_problem(r, 401, detail, &h, 1);
}

/* Returns 1 when the token's `aud` (a string, or an array of strings) names `want`. */
static int aud_matches(const json_t *aud, const char *want)
{
    if (json_is_string(aud)) return strcmp(json_string_value(aud), want) == 0;
    for (size_t i = 0; json_is_array(aud) && i < json_array_size(aud); i++) {
        const json_t *a = json_array_get(aud, i);
        if (json_is_string(a) && strcmp(json_string_value(a), want) == 0) return 1;
    }
    return 0;
}

/* The checks after the signature: the configured audience, and a session (`sid`) the user
 * service has revoked. Returns NULL when the token passes, else the reason for the log. */
static const char *audience_and_session(px_req *r, const sl_jwt_verified *v)
{
    const px_config *cfg = px_cfg(r);
    if (cfg->audience && !aud_matches(json_object_get(v->claims, "aud"), cfg->audience))
        return "bad_audience";
    const json_t *sid = json_object_get(v->claims, "sid");
    if (json_is_string(sid) &&
        px_revoke_has(&r->w->revoke, json_string_value(sid), json_string_length(sid),
                      sl_clock_wall_ms(sl_clock_system())))
        return "revoked";
    return NULL;
}

/* Parks `r` for the fetch the cache just started, if one runs and there is room. */
static int park(px_worker *w, px_req *r)
{
    return w->jwks.fetching && px_jwks_wait(&w->jwks, &r->wait) == 0;
}

px_authn px_authenticate(px_req *r)
{
    const px_route *rt = r->route;
    px_worker *w = r->w;
    const px_config *cfg = px_cfg(r);
    int required = rt->auth != PX_AUTH_PUBLIC;
    sl_slice a;
    if (!sl_http_req_header(r->req, "authorization", &a) || a.len < 8 ||
        strncasecmp(a.ptr, "bearer ", 7) != 0) {
        if (!required) return PX_AUTHN_PASS;
        respond_401(r, "a bearer token is required", "missing");
        return PX_AUTHN_ANSWERED;
    }
    sl_slice tok = {a.ptr + 7, a.len - 7};
    while (tok.len && tok.ptr[0] == ' ') {
        tok.ptr++;
        tok.len--;
    }
    if (!w->jwks.ks) {
        if (cfg->jwks_cluster >= 0 && !r->kid_retried) {
            px_jwks_fetch(&w->jwks);
            r->kid_retried = 1;
            if (park(w, r)) return PX_AUTHN_PARKED;
        }
        if (!required) return PX_AUTHN_PASS;
        px_respond_problem(r, 503, "the signing keys are not available yet", NULL, 0);
        return PX_AUTHN_ANSWERED;
    }
    sl_jwt_verify_opts opts;
    sl_jwt_verify_opts_init(&opts, sl_clock_system());
    opts.issuer = cfg->issuer;
    opts.leeway_s = cfg->leeway_s;
    opts.sig_cache = w->jwks.sig_cache;
    sl_jwt_verified v;
    sl_jwt_reason reason = SL_JWT_MALFORMED;
    int rc = sl_jwt_verify(w->jwks.ks, tok.ptr, tok.len, &opts, &v, &reason);
    if (rc == SL_EINVAL && reason == SL_JWT_UNKNOWN_KID && !r->kid_retried) {
        /* Rotation: a kid we do not know may be a new key. Refetch (rate-limited) and retry once.
         */
        r->kid_retried = 1;
        px_jwks_fetch(&w->jwks);
        if (park(w, r)) return PX_AUTHN_PARKED;
    }
    if (rc == SL_ENOMEM) {
        px_respond_problem(r, 503, "out of memory", NULL, 0);
        return PX_AUTHN_ANSWERED;
    }
    if (rc != 0) {
        if (!required) return PX_AUTHN_PASS;
        SL_LOG_INFO(w->proc->log, r->span ? sl_span_context(r->span) : NULL, "token rejected",
                    SL_LOG_STR("reason", sl_jwt_reason_name(reason)),
                    SL_LOG_STR("request_id", r->req->request_id));
        respond_401(r, "the bearer token is not valid", sl_jwt_reason_name(reason));
        return PX_AUTHN_ANSWERED;
    }
    const char *bad = audience_and_session(r, &v);
    if (bad) {
        sl_jwt_verified_deinit(&v);
        if (!required) return PX_AUTHN_PASS;
        SL_LOG_INFO(w->proc->log, r->span ? sl_span_context(r->span) : NULL, "token rejected",
                    SL_LOG_STR("reason", bad), SL_LOG_STR("request_id", r->req->request_id));
        respond_401(r,
                    strcmp(bad, "revoked") == 0 ? "the session has ended"
                                                : "the bearer token is not for this audience",
                    bad);
        return PX_AUTHN_ANSWERED;
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
        if (!required) return PX_AUTHN_PASS;
        respond_401(r, "the token's subject or role is not usable", "bad_claims");
        return PX_AUTHN_ANSWERED;
    }
    int admin = strcmp(r->id.role, "admin") == 0;
    if (rt->auth == PX_AUTH_ADMIN && !admin) {
        px_respond_problem(r, 403, "this operation needs the admin role", NULL, 0);
        return PX_AUTHN_ANSWERED;
    }
    if (rt->owner_param && !admin) {
        for (size_t i = 0; i < r->params.n; i++)
            if (strcmp(r->params.p[i].name, rt->owner_param) == 0 &&
                !sl_slice_eq(r->params.p[i].value, r->id.user_id)) {
                px_respond_problem(r, 403, "only the owner or an admin may do this", NULL, 0);
                return PX_AUTHN_ANSWERED;
            }
    }
    return PX_AUTHN_PASS;
}
