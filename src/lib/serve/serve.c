/*
 * The host plumbing shared by the service host and the gateway (serve.h).
 * The per-response path does no allocation once a worker has seen a
 * (method, status) pair: its series are looked up once and cached in the
 * worker, and the per-request records are recycled.
 */
#include <shoal/clock.h>
#include <shoal/id.h>
#include <shoal/serve.h>

/* build_info's commit: written by CMake at configure time (CMakeLists.txt). */
#if __has_include("shoal_commit.h")
#include "shoal_commit.h"
#endif
#ifndef SHOAL_COMMIT
#define SHOAL_COMMIT "unknown"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sl_serve_families_register(sl_metrics *reg, sl_serve_families *out)
{
    static const char *const req_labels[] = {"service", "method", "route", "status"};
    static const char *const dur_labels[] = {"service", "method", "route"};
    SL_ASSERT(reg && out);
    memset(out, 0, sizeof *out);
    int rc = sl_metrics_counter(reg, "service_requests_total",
                                "HTTP requests answered, by method, route template and status.",
                                req_labels, 4, &out->req_total);
    if (rc == 0)
        rc = sl_metrics_histogram(reg, "service_request_duration_seconds",
                                  "Time from the first byte of a request to its response.",
                                  dur_labels, 3, NULL, 0, &out->req_duration);
    if (rc == 0)
        rc = sl_metrics_gauge(reg, "http_server_connections", "Open client connections.", NULL, 0,
                              &out->connections);
    /* What the operations view shows of each process: its version and when it started. */
    static const char *const ver_labels[] = {"version", "commit"};
    static const char *const ver[] = {SHOAL_VERSION, SHOAL_COMMIT};
    sl_metric_family *info = NULL, *start = NULL;
    if (rc == 0)
        rc = sl_metrics_gauge(reg, "build_info",
                              "Always 1; the build's version and commit as labels.", ver_labels, 2,
                              &info);
    if (rc == 0)
        rc = sl_metrics_gauge(reg, "process_start_time_seconds",
                              "Start time of the process, Unix seconds.", NULL, 0, &start);
    sl_series *s = rc == 0 ? sl_metric_series(info, ver) : NULL;
    if (s) sl_gauge_set(s, 1);
    s = rc == 0 ? sl_metric_series(start, NULL) : NULL;
    if (s) sl_gauge_set(s, (double)sl_clock_wall_ms(sl_clock_system()) / 1000.0);
    if (rc == 0) sl_metrics_enable_process(reg);
    return rc;
}

/* ---- request series, by (route, method, status) ---------------------------------------------- */

/* status 0 keys the duration histogram of (route, method). */
typedef struct series_slot {
    uint64_t hash;
    char *route; /* owned copy; NULL: a free slot */
    unsigned method, status;
    sl_series *series;
} series_slot;

struct sl_serve_series_cache {
    size_t n;
    series_slot slots[SL_SERVE_SERIES_CACHE];
};

static uint64_t series_hash(const char *route, unsigned method, unsigned status)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)route; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    h = (h ^ method) * 1099511628211ULL;
    return (h ^ status) * 1099511628211ULL;
}

/* The series of (route, method, status) in `fam`: from the worker's cache, else the registry. */
static sl_series *request_series(sl_serve_worker *w, sl_metric_family *fam, const char *route,
                                 unsigned method, unsigned status)
{
    if (!w->series) w->series = calloc(1, sizeof *w->series);
    sl_serve_series_cache *c = w->series;
    uint64_t h = series_hash(route, method, status);
    size_t mask = SL_SERVE_SERIES_CACHE - 1, i = (size_t)h & mask;
    for (; c && c->slots[i].route; i = (i + 1) & mask) {
        series_slot *sl = &c->slots[i];
        if (sl->hash == h && sl->method == method && sl->status == status &&
            strcmp(sl->route, route) == 0)
            return sl->series;
    }
    char code[8];
    snprintf(code, sizeof code, "%u", status);
    const char *method_name = sl_http_method_name((sl_http_method)method);
    const char *labels[] = {w->service, method_name, route, code};
    sl_series *s = sl_metric_series(fam, labels);
    /* Keep it unless the cache is three quarters full (then the registry answers each time). */
    if (c && c->n < SL_SERVE_SERIES_CACHE / 4 * 3) {
        char *copy = strdup(route);
        if (copy) {
            c->slots[i] = (series_slot){h, copy, method, status, s};
            c->n++;
        }
    }
    return s;
}

static void series_cache_free(sl_serve_worker *w)
{
    if (!w->series) return;
    for (size_t i = 0; i < SL_SERVE_SERIES_CACHE; i++)
        free(w->series->slots[i].route);
    free(w->series);
    w->series = NULL;
}

int sl_serve_request_id_valid(sl_slice v)
{
    return sl_id_text_valid(v.ptr, v.len, SL_SERVE_REQUEST_ID_MAX);
}

/* ---- recycled records ------------------------------------------------------------------------ */

void sl_serve_freelist_init(sl_serve_freelist *fl, size_t size, size_t max)
{
    SL_ASSERT(fl && size >= sizeof(void *));
    fl->head = NULL;
    fl->n = 0;
    fl->max = max;
    fl->size = size;
}

void *sl_serve_freelist_get(sl_serve_freelist *fl)
{
    SL_ASSERT(fl->size >= sizeof(void *));
    void *rec = fl->head;
    if (!rec) return calloc(1, fl->size);
    memcpy(&fl->head, rec, sizeof fl->head);
    fl->n--;
    memset(rec, 0, fl->size);
    return rec;
}

void sl_serve_freelist_put(sl_serve_freelist *fl, void *rec)
{
    if (!rec) return;
    if (fl->n >= fl->max) {
        free(rec);
        return;
    }
    memcpy(rec, &fl->head, sizeof fl->head);
    fl->head = rec;
    fl->n++;
}

void sl_serve_freelist_clear(sl_serve_freelist *fl)
{
    while (fl->head) {
        void *rec = fl->head;
        memcpy(&fl->head, rec, sizeof fl->head);
        free(rec);
    }
    fl->n = 0;
}

/* ---- workers --------------------------------------------------------------------------------- */

int sl_serve_worker_init(sl_serve_worker *w, sl_worker *rw, const sl_serve_worker_config *cfg)
{
    SL_ASSERT(w && rw && cfg && cfg->service);
    w->rw = rw;
    w->index = sl_worker_index(rw);
    w->service = cfg->service;
    w->families = cfg->families;
    sl_serve_freelist_init(&w->records, cfg->record_size, cfg->records_max);
    int rc = sl_rand_seed_os(&w->rand);
    if (rc != 0) return rc;
    sl_idgen_init(&w->idgen, sl_clock_system(), NULL, NULL);
    sl_tracer_config tc;
    sl_tracer_config_init(&tc);
    tc.service = cfg->service;
    tc.clock = sl_clock_system();
    tc.rand = &w->rand;
    tc.sample_ratio = cfg->sample_ratio;
    if (cfg->buffer_spans) tc.buffer_spans = cfg->buffer_spans;
    tc.keep_errors = cfg->keep_errors;
    tc.keep_slow_ns = cfg->keep_slow_ns;
    tc.record_off = cfg->record_off;
    if (tc.record_off) tc.buffer_spans = 1; /* nothing is ever buffered */
    return sl_tracer_new(&tc, &w->tracer);
}

int sl_serve_worker_listen(sl_serve_worker *w, int fd, const sl_http_limits *limits,
                           const sl_http_callbacks *cbs)
{
    SL_ASSERT(w->rw && !w->http);
    int rc = sl_http_server_new(sl_worker_loop(w->rw), limits, cbs, &w->http);
    if (rc != 0) return rc;
    return sl_http_server_listen_fd(w->http, fd);
}

static void drained(void *data)
{
    sl_serve_worker *w = data;
    sl_worker_drained(w->rw);
}

void sl_serve_worker_drain(sl_serve_worker *w)
{
    if (!w->http) {
        sl_worker_drained(w->rw);
        return;
    }
    sl_http_server_drain(w->http, drained, w);
}

void sl_serve_worker_stop(sl_serve_worker *w)
{
    if (w->http) sl_http_server_close(w->http, NULL, NULL);
    w->http = NULL;
}

void sl_serve_worker_free(sl_serve_worker *w)
{
    sl_tracer_free(w->tracer);
    w->tracer = NULL;
    sl_serve_freelist_clear(&w->records);
    series_cache_free(w);
}

/* ---- per request ----------------------------------------------------------------------------- */

/* /healthz, /readyz and /metrics: what orchestrators and scrapers poll. */
static int is_ops_path(sl_slice path)
{
    static const char *const ops[] = {"/healthz", "/readyz", "/metrics"};
    for (size_t i = 0; i < SL_ARRAY_LEN(ops); i++)
        if (path.len == strlen(ops[i]) && memcmp(path.ptr, ops[i], path.len) == 0) return 1;
    return 0;
}

void sl_serve_begin(sl_serve_worker *w, sl_http_req *req, const char *name, sl_span **span)
{
    SL_ASSERT(w && req && span);
    sl_slice rid;
    if (sl_http_req_header(req, "x-request-id", &rid) && sl_serve_request_id_valid(rid)) {
        memcpy(req->request_id, rid.ptr, rid.len);
        req->request_id[rid.len] = '\0';
    } else if (sl_uuid7_new(&w->idgen, req->request_id) != 0) {
        req->request_id[0] = '\0';
    }
    /* W3C Trace Context: join the caller's trace when its traceparent is valid. */
    sl_slice tp;
    sl_trace_ctx parent;
    const sl_trace_ctx *pp = NULL;
    if (sl_http_req_header(req, "traceparent", &tp) &&
        sl_traceparent_parse(tp.ptr, tp.len, &parent) == 0)
        pp = &parent;
    /* Probes and scrapes are operations traffic: their traces are quiet (trace.h). */
    if (is_ops_path(req->path))
        sl_span_start_quiet(w->tracer, name, SL_SPAN_SERVER, pp, span);
    else
        sl_span_start(w->tracer, name, SL_SPAN_SERVER, pp, span);
    sl_traceparent_format(sl_span_context(*span), req->traceparent);
}

void sl_serve_finish(sl_serve_worker *w, const sl_http_req *req, int status, size_t body_len,
                     sl_span **span, const sl_serve_outcome *o)
{
    SL_ASSERT(w && req && span && o);
    unsigned m = (unsigned)req->method;
    if (m >= SL_HTTP_METHOD_COUNT || req->method_token.len == 0) m = SL_HTTP_OTHER;
    const char *method = sl_http_method_name((sl_http_method)m);
    int st = status >= 100 && status < SL_SERVE_STATUS_MAX ? status : 599;
    double secs = req->start_ns ? (double)((int64_t)uv_hrtime() - req->start_ns) / 1e9 : 0;
    if (w->families) {
        const char *route = o->route ? o->route : SL_SERVE_ROUTE_UNMATCHED;
        sl_counter_inc(request_series(w, w->families->req_total, route, m, (unsigned)st),
                       (unsigned)w->index);
        sl_histogram_observe(request_series(w, w->families->req_duration, route, m, 0),
                             (unsigned)w->index, secs);
    }
    if (!*span) return;
    if (sl_span_is_recording(*span)) {
        sl_span_set_attr_str(*span, "http.request.method", method);
        if (o->route) sl_span_set_attr_str(*span, "http.route", o->route);
        char up[SL_SPAN_ATTR_STR_MAX + 1];
        size_t un = req->path.len < sizeof up - 1 ? req->path.len : sizeof up - 1;
        if (un) memcpy(up, req->path.ptr, un);
        up[un] = '\0';
        sl_span_set_attr_str(*span, "url.path", up);
        sl_span_set_attr_int(*span, "http.response.status_code", status);
        if (status >= 500) sl_span_set_status(*span, SL_SPAN_STATUS_ERROR, sl_http_reason(status));
    }
    if (o->log && sl_log_enabled(o->log, o->level)) {
        char path[256];
        size_t n = req->path.len < sizeof path - 1 ? req->path.len : sizeof path - 1;
        memcpy(path, req->path.ptr, n);
        path[n] = '\0';
        sl_log_field f[16] = {
            SL_LOG_STR("method", method),   SL_LOG_STR("path", path),
            SL_LOG_INT("status", status),   SL_LOG_INT("bytes", (int64_t)body_len),
            SL_LOG_DBL("duration_s", secs), SL_LOG_STR("request_id", req->request_id),
        };
        size_t nf = 6;
        SL_ASSERT(o->nextra <= SL_ARRAY_LEN(f) - nf);
        for (size_t i = 0; i < o->nextra; i++)
            f[nf++] = o->extra[i];
        sl_log_write(o->log, o->level, sl_span_context(*span), o->msg, f, nf);
    }
    sl_span_end(*span);
    *span = NULL;
}
