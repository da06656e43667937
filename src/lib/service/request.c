/*
 * The service kit's request side (service.h): accessors of the host's
 * contexts, request helpers (identity, paging, body, deadline, events) and
 * the answers every service shares.
 */
#include "service_int.h"

#include <shoal/clock.h>
#include <shoal/db.h>
#include <shoal/idempotency.h>
#include <shoal/log.h>
#include <shoal/outbox.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- accessors -------------------------------------------------------- */

const sl_service_def *sl_service_def_of(const sl_service *svc)
{
    return svc->def;
}
sl_config *sl_service_config(sl_service *svc)
{
    return svc->cfg;
}
sl_logger *sl_service_log(sl_service *svc)
{
    return svc->log;
}
void *sl_service_data(sl_service *svc)
{
    return svc->data;
}
void sl_service_set_data(sl_service *svc, void *data)
{
    svc->data = data;
}
sl_service *sl_svc_worker_service(sl_svc_worker *w)
{
    return w->svc;
}
uv_loop_t *sl_svc_worker_loop(sl_svc_worker *w)
{
    return sl_worker_loop(w->sw.rw);
}
int sl_svc_worker_index(const sl_svc_worker *w)
{
    return w->sw.index;
}
sl_logger *sl_svc_worker_log(sl_svc_worker *w)
{
    return w->svc->log;
}
sl_metrics *sl_svc_worker_metrics(sl_svc_worker *w)
{
    return w->svc->metrics;
}
sl_tracer *sl_svc_worker_tracer(sl_svc_worker *w)
{
    return w->sw.tracer;
}
void *sl_svc_worker_data(sl_svc_worker *w)
{
    return w->data;
}
void sl_svc_worker_set_data(sl_svc_worker *w, void *data)
{
    w->data = data;
}
sl_db *sl_svc_worker_db(sl_svc_worker *w)
{
    /* Inside a request handler on PostgreSQL: the handler task's own connection. */
    sl_db *task = sl_db_pool_current(w->pool);
    return task ? task : w->db;
}
sl_svc_worker *sl_req_worker(sl_http_req *req)
{
    return req->host ? *(sl_svc_worker **)req->host : NULL;
}

void sl_req_span_attr_str(sl_http_req *req, const char *key, const char *value)
{
    req_host *h = req ? req->host : NULL;
    if (h && h->span) sl_span_set_attr_str(h->span, key, value);
}

const sl_trace_ctx *sl_req_trace(sl_http_req *req)
{
    req_host *h = req->host;
    return h && h->span ? sl_span_context(h->span) : NULL;
}

static const char *refusal_reason(int rc)
{
    switch (rc) {
    case SL_ECONFLICT:
        return "role";
    case SL_EEXIST:
        return "replay";
    case SL_ELIMIT:
        return "replay_full";
    default:
        return "invalid";
    }
}

/* The sidecar's headers (identity.h, mesh mode), checked once per request. */
static void peer_check(sl_http_req *req, req_host *h, const sl_service *svc, unsigned worker)
{
    if (h->peer_checked) return;
    h->peer_checked = 1;
    h->peer_rc = svc->have_peer_token
                     ? sl_identity_peer_verify(&svc->peer_token, req->headers, req->nheaders,
                                               h->peer, sizeof h->peer)
                     : SL_ENOTFOUND;
    if (h->peer_rc == SL_EINVAL) {
        const char *reason = "peer_token";
        sl_series *s = sl_metric_series(svc->identity_refusals, &reason);
        if (s) sl_counter_inc(s, worker);
        SL_LOG_WARN(svc->log, sl_req_trace(req), "caller service headers refused",
                    SL_LOG_STR("reason", "not from this service's sidecar"));
    }
}

const char *sl_req_peer_service(sl_http_req *req)
{
    sl_svc_worker *w = sl_req_worker(req);
    if (!w || !w->svc->have_peer_token) return NULL;
    req_host *h = req->host;
    peer_check(req, h, w->svc, (unsigned)w->sw.index);
    return h->peer_rc == 0 ? h->peer : NULL;
}

int sl_req_identity(sl_http_req *req, sl_identity *out)
{
    sl_svc_worker *w = sl_req_worker(req);
    if (!w || !w->svc->have_identity_key) return SL_EUNAVAIL;
    req_host *h = req->host;
    if (!h->id_checked) {
        const sl_service *svc = w->svc;
        sl_slice ik = {NULL, 0};
        (void)sl_http_req_header(req, "idempotency-key", &ik);
        sl_identity_msg m = {.callee = svc->def->name,
                             .method = req->method,
                             .target = req->target,
                             .idempotency_key = ik,
                             .body = req->body.ptr,
                             .body_len = req->body.len};
        h->id_rc = sl_identity_verify(&svc->identity_ring, req->headers, req->nheaders, &m,
                                      sl_clock_wall_ms(sl_clock_system()), svc->identity_window_ms,
                                      svc->identity_replay, &h->id);
        h->id_checked = 1;
        /* Mesh mode: the service that signed must be the one whose certificate the sidecar
         * verified; a proof arriving any other way (no sidecar, another caller) is refused. */
        if (h->id_rc == 0 && svc->have_peer_token) {
            peer_check(req, h, svc, (unsigned)w->sw.index);
            if (h->peer_rc != 0 || strcmp(h->peer, h->id.caller) != 0) {
                SL_LOG_WARN(svc->log, sl_req_trace(req), "identity proof refused",
                            SL_LOG_STR("reason", "peer"), SL_LOG_STR("signer", h->id.caller),
                            SL_LOG_STR("peer", h->peer_rc == 0 ? h->peer : "none"));
                const char *reason = "peer";
                sl_series *s = sl_metric_series(svc->identity_refusals, &reason);
                if (s) sl_counter_inc(s, (unsigned)w->sw.index);
                h->id_rc = SL_EINVAL;
                memset(&h->id, 0, sizeof h->id);
                return h->id_rc;
            }
        }
        if (h->id_rc != 0 && h->id_rc != SL_ENOTFOUND) {
            const char *reason = refusal_reason(h->id_rc);
            sl_series *s = sl_metric_series(svc->identity_refusals, &reason);
            if (s) sl_counter_inc(s, (unsigned)w->sw.index);
            SL_LOG_WARN(svc->log, sl_req_trace(req), "identity proof refused",
                        SL_LOG_STR("reason", reason));
        }
    }
    if (h->id_rc == 0) *out = h->id;
    return h->id_rc;
}

int sl_req_require_identity(sl_http_req *req, int admin_only, sl_identity *out)
{
    SL_ASSERT(req && out);
    int rc = sl_req_identity(req, out);
    if (rc == SL_ELIMIT) { /* never accepted unchecked: the caller retries */
        sl_respond_problem_reason(req, 503, "identity_busy",
                                  "too many identity proofs to check for replays; retry later",
                                  NULL, 1);
        return rc;
    }
    if (rc == SL_ECONFLICT) {
        sl_respond_problem_reason(req, 403, "identity_role",
                                  "this caller may not assert the identity's role", NULL, 0);
        return rc;
    }
    if (rc != 0) {
        sl_respond_problem_reason(req, 401, rc == SL_EEXIST ? "identity_replayed" : NULL,
                                  rc == SL_ENOTFOUND ? "authentication required"
                                  : rc == SL_EEXIST  ? "this identity proof was already used"
                                                    : "the caller's identity could not be verified",
                                  NULL, 0);
        return rc;
    }
    if (admin_only && strcmp(out->role, "admin") != 0) {
        sl_respond_problem_ex(req, 403, "this operation needs the admin role", NULL);
        return SL_EINVAL;
    }
    return 0;
}

static int query_int(const sl_http_req *req, const char *name, int64_t def, int64_t lo, int64_t hi,
                     int64_t *out, sl_json_errors *errs)
{
    sl_slice v;
    *out = def;
    if (!sl_http_query_param(req->query, name, &v)) return 0;
    int64_t n = 0;
    int ok = v.len > 0 && v.len <= 12;
    for (size_t i = 0; ok && i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            ok = 0;
        else
            n = n * 10 + (v.ptr[i] - '0');
    }
    if (!ok || n < lo || n > hi) {
        sl_json_errors_add(errs, name, "must be an integer between %lld and %lld", (long long)lo,
                           (long long)hi);
        return SL_EINVAL;
    }
    *out = n;
    return 0;
}

int sl_req_page(const sl_http_req *req, int64_t *page, int64_t *per_page, sl_json_errors *errs)
{
    int a = query_int(req, "page", 1, 1, 1000000, page, errs);
    int b = query_int(req, "per_page", 20, 1, 100, per_page, errs);
    return a || b ? SL_EINVAL : 0;
}

static int emit(sl_svc_worker *w, const char *traceparent, sl_db *tx, const char *type,
                const char *subject, const json_t *data)
{
    char *json = NULL;
    if (data && !(json = sl_json_dump(data, NULL))) return SL_ENOMEM;
    sl_outbox_event ev = {.source = w->svc->source,
                          .type = type,
                          .subject = subject,
                          .data_json = json,
                          .traceparent = traceparent};
    int rc = sl_outbox_add(tx, &ev, sl_clock_wall_ns(sl_clock_system()), NULL);
    free(json);
    return rc;
}

int sl_svc_emit(sl_svc_worker *w, sl_http_req *req, sl_db *tx, const char *type,
                const char *subject, const json_t *data)
{
    return emit(w, req && req->traceparent[0] ? req->traceparent : NULL, tx, type, subject, data);
}

int sl_svc_emit_trace(sl_svc_worker *w, const sl_trace_ctx *trace, sl_db *tx, const char *type,
                      const char *subject, const json_t *data)
{
    char tp[SL_TRACEPARENT_MAX];
    int has = trace && sl_trace_ctx_is_valid(trace) && sl_traceparent_format(trace, tp) > 0;
    return emit(w, has ? tp : NULL, tx, type, subject, data);
}

sl_deadline sl_req_deadline(const sl_http_req *req)
{
    const req_host *h = req->host;
    return h ? h->deadline : sl_deadline_none();
}

/* ---- responses -------------------------------------------------------- */

int sl_respond_json(sl_http_req *req, int status, const char *body, size_t len)
{
    return sl_http_respond_body(req, status, "application/json", body, len);
}

int sl_respond_json_value(sl_http_req *req, int status, const json_t *value)
{
    size_t len = 0;
    char *body = value ? sl_json_dump(value, &len) : NULL;
    if (!body) return sl_http_respond_problem(req, 500, "could not serialise the response");
    int rc = sl_respond_json(req, status, body, len);
    free(body);
    return rc;
}

int sl_respond_problem_ex(sl_http_req *req, int status, const char *detail,
                          const sl_json_errors *errs)
{
    size_t len = 0;
    char *body = sl_problem_body(status, NULL, detail, errs, &len);
    if (!body) return sl_http_respond_problem(req, status, detail);
    int rc = sl_http_respond_body(req, status, "application/problem+json", body, len);
    free(body);
    return rc;
}

int sl_respond_invalid(sl_http_req *req, const sl_json_errors *errs)
{
    return sl_respond_problem_ex(req, 400, "the request body is invalid", errs);
}

static int is_json_type(sl_slice ct)
{
    /* application/json, optionally with parameters, or any application/<x>+json. */
    size_t n = ct.len;
    const char *semi = memchr(ct.ptr, ';', ct.len);
    if (semi) n = (size_t)(semi - ct.ptr);
    while (n && (ct.ptr[n - 1] == ' ' || ct.ptr[n - 1] == '\t'))
        n--;
    sl_slice base = {ct.ptr, n};
    if (sl_slice_case_eq(base, "application/json")) return 1;
    return n > 17 && strncasecmp(base.ptr, "application/", 12) == 0 &&
           strncasecmp(base.ptr + n - 5, "+json", 5) == 0;
}

int sl_req_json_body(sl_http_req *req, json_t **out)
{
    sl_slice ct;
    if (sl_http_req_header(req, "content-type", &ct) && !is_json_type(ct)) {
        sl_respond_problem_ex(req, 415, "the body must be application/json", NULL);
        return SL_EINVAL;
    }
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    sl_json_limits lim = {.max_bytes = req->body_max_bytes};
    if (req->body.len == 0) {
        sl_json_errors_add(&errs, "", "a JSON object body is required");
        sl_respond_problem_ex(req, 400, "the request body is empty", &errs);
        return SL_EINVAL;
    }
    if (sl_json_parse(req->body.ptr, req->body.len, &lim, out, &errs) != 0) {
        sl_respond_problem_ex(req, 400, "the request body is not a valid JSON object", &errs);
        return SL_EPARSE;
    }
    return 0;
}

/* ---- the service kit: shared answers ---------------------------------- */

int sl_svc_db_transient(int rc)
{
    switch (rc) {
    case SL_EBUSY:
    case SL_EUNAVAIL:
    case SL_ETIMEDOUT:
    case SL_EAGAIN:
    case SL_EIO:
    case SL_ECLOSED:
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -ECONNABORTED:
    case -EPIPE:
    case -ENOTCONN:
    case -ETIMEDOUT:
        return 1;
    default:
        return 0;
    }
}

int sl_respond_db_error(sl_http_req *req, int rc, const char *what)
{
    SL_ASSERT(req);
    sl_svc_worker *w = sl_req_worker(req);
    SL_ASSERT(w); /* only a request the host routed reaches a handler */
    SL_LOG_ERROR(w->svc->log, sl_req_trace(req), what ? what : "database error",
                 SL_LOG_STR("code", sl_errname(rc)),
                 SL_LOG_STR("error", sl_svc_worker_db(w) ? sl_db_errmsg(sl_svc_worker_db(w)) : ""));
    char detail[128];
    snprintf(detail, sizeof detail, "the %s database is unavailable; retry later",
             w->svc->def->name);
    int64_t retry = sl_svc_db_transient(rc) ? 1 : 0;
    return sl_respond_problem_owned(req, 503, sl_svc_problem(503, NULL, detail, NULL), retry);
}

int sl_respond_owned(sl_http_req *req, int status, json_t *v)
{
    SL_ASSERT(req);
    if (!v) return sl_respond_problem_ex(req, 500, "could not build the response", NULL);
    int rc = sl_respond_json_value(req, status, v);
    json_decref(v);
    return rc;
}

int sl_respond_field(sl_http_req *req, int status, const char *field, const char *message,
                     const char *detail)
{
    SL_ASSERT(req && field && message);
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    sl_json_errors_add(&errs, field, "%s", message);
    return sl_respond_problem_ex(req, status, detail, &errs);
}

/* A JSON string of s, or "" when s is not valid UTF-8 (as in sl_problem_body). */
static json_t *text_or_empty(const char *s)
{
    json_t *v = json_string(s);
    return v ? v : json_string("");
}

json_t *sl_svc_problem(int status, const char *reason, const char *detail,
                       const sl_json_errors *errs)
{
    json_t *doc = json_object();
    const char *title = sl_problem_title(status);
    int bad = !doc || json_object_set_new(doc, "type", json_string("about:blank")) != 0 ||
              (title && json_object_set_new(doc, "title", json_string(title)) != 0) ||
              json_object_set_new(doc, "status", json_integer(status)) != 0 ||
              (detail && json_object_set_new(doc, "detail", text_or_empty(detail)) != 0);
    if (!bad && errs && sl_json_errors_total(errs) > 0) {
        json_t *list = json_array();
        bad = json_object_set_new(doc, "errors", list) != 0;
        for (size_t i = 0; !bad && i < errs->count; i++) {
            json_t *one = json_object();
            bad = json_array_append_new(list, one) != 0 ||
                  json_object_set_new(one, "field", text_or_empty(errs->items[i].field)) != 0 ||
                  json_object_set_new(one, "message", text_or_empty(errs->items[i].message)) != 0;
        }
        if (!bad && errs->dropped > 0)
            bad =
                json_object_set_new(doc, "errors_dropped", json_integer((json_int_t)errs->dropped));
    }
    if (!bad && reason) bad = json_object_set_new(doc, "reason", text_or_empty(reason)) != 0;
    if (bad) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

int sl_respond_problem_owned(sl_http_req *req, int status, json_t *doc, int64_t retry_after_s)
{
    SL_ASSERT(req);
    size_t len = 0;
    char *body = doc ? sl_json_dump(doc, &len) : NULL;
    json_decref(doc);
    if (!body) return sl_respond_problem_ex(req, 500, "could not build the response", NULL);
    char ra[24];
    int n = snprintf(ra, sizeof ra, "%lld", (long long)retry_after_s);
    sl_http_header hs[2] = {
        {SL_SLICE_LIT("content-type"), SL_SLICE_LIT("application/problem+json")},
        {SL_SLICE_LIT("retry-after"), {ra, (size_t)n}}};
    int rc = sl_http_respond(req, status, hs, retry_after_s > 0 ? 2 : 1, body, len);
    free(body);
    return rc;
}

int sl_respond_problem_reason(sl_http_req *req, int status, const char *reason, const char *detail,
                              const sl_json_errors *errs, int64_t retry_after_s)
{
    return sl_respond_problem_owned(req, status, sl_svc_problem(status, reason, detail, errs),
                                    retry_after_s);
}

#define STORED_EXTRA_MAX 8

int sl_respond_stored(sl_http_req *req, int status, const char *body, size_t len,
                      const sl_http_header *extra, size_t nextra)
{
    SL_ASSERT(req && nextra <= STORED_EXTRA_MAX && (extra || nextra == 0));
    sl_http_header hs[1 + STORED_EXTRA_MAX];
    hs[0] = status >= 400
                ? (sl_http_header){SL_SLICE_LIT("content-type"),
                                   SL_SLICE_LIT("application/problem+json")}
                : (sl_http_header){SL_SLICE_LIT("content-type"), SL_SLICE_LIT("application/json")};
    for (size_t i = 0; i < nextra; i++)
        hs[1 + i] = extra[i];
    return sl_http_respond(req, status, hs, 1 + nextra, body ? body : "", body ? len : 0);
}

int sl_req_path_id(sl_http_req *req, const char *name, const char *what, sl_id_valid_fn valid,
                   char *out, size_t cap)
{
    SL_ASSERT(req && name && what && valid && out && cap > 0);
    sl_slice v = sl_route_param(&req->params, name);
    if (!v.ptr || v.len >= cap || !valid(v.ptr, v.len)) {
        sl_json_errors errs;
        sl_json_errors_init(&errs);
        sl_json_errors_add(&errs, name, "no such %s", what);
        sl_respond_problem_ex(req, 404, "no such resource", &errs);
        return SL_ENOTFOUND;
    }
    memcpy(out, v.ptr, v.len);
    out[v.len] = '\0';
    return 0;
}

/* ---- the service kit: Idempotency-Key --------------------------------- */

int sl_req_idem_read(sl_http_req *req, sl_req_idem *k, const char *scope_fmt, ...)
{
    SL_ASSERT(req && k && scope_fmt);
    memset(k, 0, sizeof *k);
    va_list ap;
    va_start(ap, scope_fmt);
    int n = vsnprintf(k->scope, sizeof k->scope, scope_fmt, ap);
    va_end(ap);
    SL_ASSERT(n > 0 && (size_t)n < sizeof k->scope); /* scopes are the caller's own text */
    sl_slice v;
    if (!sl_http_req_header(req, "idempotency-key", &v)) return 0;
    if (!sl_idem_key_valid(v.ptr, v.len)) {
        sl_respond_field(req, 400, "Idempotency-Key", "must be 1..200 visible ASCII bytes",
                         "invalid Idempotency-Key header");
        return SL_EINVAL;
    }
    memcpy(k->key, v.ptr, v.len);
    k->key[v.len] = '\0';
    k->has = 1;
    return 0;
}

json_t *sl_svc_idem_mismatch(void)
{
    return sl_svc_problem(422, "idempotency_key_reused",
                          "this Idempotency-Key was used with another request", NULL);
}

int sl_req_idem_claim(sl_http_req *req, sl_db *tx, const sl_req_idem *k, const void *canon,
                      size_t len, sl_idem_replay_cb replay)
{
    SL_ASSERT(req && tx && k && (canon || len == 0));
    if (!k->has) return 0;
    sl_idem_result r = {0};
    int rc =
        sl_idem_begin(tx, k->scope, k->key, canon, len, sl_clock_wall_ms(sl_clock_system()), &r);
    if (rc != 0) return rc;
    if (r.state == SL_IDEM_NEW) return 0;
    sl_db_rollback(tx); /* the claim wrote nothing: the stored row answers */
    if (r.state == SL_IDEM_MISMATCH)
        sl_respond_problem_owned(req, 422, sl_svc_idem_mismatch(), 0);
    else if (replay)
        replay(req, r.status, r.body, r.body_len);
    else
        sl_respond_stored(req, r.status, r.body, r.body_len, NULL, 0);
    sl_idem_result_free(&r);
    return 1;
}

int sl_req_idem_finish(sl_db *tx, const sl_req_idem *k, int status, const json_t *body)
{
    SL_ASSERT(tx && k);
    if (!k->has) return 0;
    char *text = NULL;
    size_t len = 0;
    if (body && !(text = sl_json_dump(body, &len))) return SL_ENOMEM;
    int rc = sl_idem_finish(tx, k->scope, k->key, status, text, len);
    free(text);
    return rc;
}
