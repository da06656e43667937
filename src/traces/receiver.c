/*
 * The receiver's service definition (traces.h; docs/observability.md, "Local trace view"):
 *
 *   POST /v1/traces              OTLP/HTTP JSON ExportTraceServiceRequest → 200 {}
 *                                (400 naming the bad field, 413 over the body limit, 415 for
 *                                any content type but JSON: protobuf is not supported)
 *   GET  /api/traces             ?limit=N (1..100, default 20) &errors=1 &slowest=1 &order_id=ID
 *   GET  /api/traces/{trace_id}  one trace's spans; 404 for an unknown id
 *
 * Settings: traces.max_spans (default 100000), traces.max_age_s (default 86400; 0: no age
 * bound). It exports nothing itself (`shoal up` runs it without an export endpoint).
 */
#include "traces.h"

#include <shoal/config.h>
#include <shoal/http_types.h>
#include <shoal/metrics.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct settings {
    traces_bounds bounds;
} settings;

typedef struct tworker {
    sl_series *received, *stored, *evicted_traces, *evicted_spans, *rejected;
} tworker;

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int init(sl_service *svc)
{
    char err[SL_CONFIG_ERR_MAX];
    int64_t max_spans, max_age_s;
    sl_config *cfg = sl_service_config(svc);
    if (sl_config_get_int(cfg, "traces.max_spans", 100000, 100, 100000000, &max_spans, err) ||
        sl_config_get_int(cfg, "traces.max_age_s", 86400, 0, 365 * 86400, &max_age_s, err)) {
        fprintf(stderr, "shoal-traces: %s\n", err);
        return SL_ECONFIG;
    }
    settings *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    s->bounds.max_spans = max_spans;
    s->bounds.max_age_ns = max_age_s * 1000000000;
    sl_service_set_data(svc, s);
    return 0;
}

static void fini(sl_service *svc)
{
    free(sl_service_data(svc));
}

static sl_series *counter(sl_metrics *reg, const char *name, const char *help)
{
    sl_metric_family *f = NULL;
    int rc = sl_metrics_counter(reg, name, help, NULL, 0, &f);
    if (rc == SL_EEXIST) rc = sl_metrics_family_find(reg, name, &f);
    return rc == 0 ? sl_metric_series(f, NULL) : NULL;
}

static int worker_init(sl_svc_worker *w)
{
    tworker *tw = calloc(1, sizeof *tw);
    if (!tw) return SL_ENOMEM;
    sl_metrics *reg = sl_svc_worker_metrics(w);
    tw->received = counter(reg, "traces_spans_received_total", "Spans received in valid requests");
    tw->stored = counter(reg, "traces_spans_stored_total", "Spans stored (a repeated span once)");
    tw->evicted_traces = counter(reg, "traces_evicted_traces_total",
                                 "Traces removed from the store by its size or age bound");
    tw->evicted_spans = counter(reg, "traces_evicted_spans_total",
                                "Spans removed from the store with their traces");
    tw->rejected = counter(reg, "traces_requests_rejected_total",
                           "Export requests refused as malformed (400)");
    sl_svc_worker_set_data(w, tw);
    return 0;
}

static void worker_fini(sl_svc_worker *w)
{
    free(sl_svc_worker_data(w));
}

static void add(sl_series *s, sl_svc_worker *w, int64_t v)
{
    if (s && v > 0) sl_counter_add(s, (unsigned)sl_svc_worker_index(w), (uint64_t)v);
}

static void h_export(sl_http_req *req, sl_svc_worker *w)
{
    tworker *tw = sl_svc_worker_data(w);
    json_t *root = NULL;
    if (sl_req_json_body(req, &root) != 0) { /* answered: 415, or 400 naming the problem */
        if (tw) add(tw->rejected, w, 1);
        return;
    }
    traces_batch b = {0};
    char field[TRACES_FIELD_MAX], msg[TRACES_MSG_MAX];
    int rc = traces_decode(root, &b, field, msg);
    json_decref(root);
    if (rc == SL_EINVAL || rc == SL_ELIMIT) {
        traces_batch_free(&b);
        if (tw) add(tw->rejected, w, 1);
        sl_respond_field(req, 400, field, msg, "the body is not a valid OTLP JSON trace export");
        return;
    }
    if (rc != 0) {
        traces_batch_free(&b);
        sl_respond_problem_ex(req, 500, "out of memory", NULL);
        return;
    }
    const settings *s = sl_service_data(sl_svc_worker_service(w));
    traces_add_result r;
    rc = traces_store_add(sl_svc_worker_db(w), &b, &s->bounds, wall_ns(), &r);
    size_t n = b.n;
    traces_batch_free(&b);
    if (rc != 0) {
        sl_respond_db_error(req, rc, "storing spans");
        return;
    }
    if (tw) {
        add(tw->received, w, (int64_t)n);
        add(tw->stored, w, r.stored);
        add(tw->evicted_traces, w, r.evicted_traces);
        add(tw->evicted_spans, w, r.evicted_spans);
    }
    sl_respond_json(req, 200, "{}", 2);
}

/* A boolean flag: absent or "0" → 0, "1" or "true" → 1; anything else is an error. */
static int flag(const sl_http_req *req, const char *name, int *out, sl_json_errors *errs)
{
    sl_slice v;
    *out = 0;
    if (!sl_http_query_param(req->query, name, &v)) return 0;
    if ((v.len == 1 && v.ptr[0] == '1') || (v.len == 4 && memcmp(v.ptr, "true", 4) == 0)) {
        *out = 1;
        return 0;
    }
    if ((v.len == 1 && v.ptr[0] == '0') || (v.len == 5 && memcmp(v.ptr, "false", 5) == 0)) return 0;
    sl_json_errors_add(errs, name, "must be 1 or 0");
    return SL_EINVAL;
}

static void h_list(sl_http_req *req, sl_svc_worker *w)
{
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    traces_query q = {.limit = 20};
    char order_id[TRACES_ORDER_ID_MAX + 1] = "";
    sl_slice v;
    if (sl_http_query_param(req->query, "limit", &v)) {
        int64_t n = 0;
        size_t i = 0;
        for (; i < v.len && i < 4 && v.ptr[i] >= '0' && v.ptr[i] <= '9'; i++)
            n = n * 10 + (v.ptr[i] - '0');
        if (v.len == 0 || i != v.len || n < 1 || n > 100)
            sl_json_errors_add(&errs, "limit", "must be an integer 1..100");
        q.limit = n;
    }
    if (sl_http_query_param(req->query, "order_id", &v)) {
        int n = sl_http_pct_decode(v, 1, order_id, sizeof order_id - 1);
        order_id[n > 0 ? n : 0] = '\0';
        if (n <= 0)
            sl_json_errors_add(&errs, "order_id", "must be 1..%d bytes", TRACES_ORDER_ID_MAX);
        q.order_id = order_id;
    }
    (void)flag(req, "errors", &q.errors, &errs);
    (void)flag(req, "slowest", &q.slowest, &errs);
    if (sl_json_errors_total(&errs) > 0) {
        sl_respond_invalid(req, &errs);
        return;
    }
    json_t *out = NULL;
    int rc = traces_store_list(sl_svc_worker_db(w), &q, &out);
    if (rc != 0) {
        sl_respond_db_error(req, rc, "listing traces");
        return;
    }
    sl_respond_owned(req, 200, out);
}

static int trace_id_valid(const char *s, size_t len)
{
    if (len != 32) return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

static void h_get(sl_http_req *req, sl_svc_worker *w)
{
    char id[33];
    if (sl_req_path_id(req, "trace_id", "trace", trace_id_valid, id, sizeof id) != 0) return;
    json_t *out = NULL;
    int rc = traces_store_get(sl_svc_worker_db(w), id, &out);
    if (rc == SL_ENOTFOUND) {
        sl_respond_field(req, 404, "trace_id", "no such trace", "no trace with this id is stored");
        return;
    }
    if (rc != 0) {
        sl_respond_db_error(req, rc, "reading a trace");
        return;
    }
    sl_respond_owned(req, 200, out);
}

extern const sl_migration_set sl_migrations_traces;

static const sl_route_def routes[] = {
    {SL_HTTP_POST, "/v1/traces", h_export, TRACES_BODY_MAX},
    {SL_HTTP_GET, "/api/traces", h_list, 0},
    {SL_HTTP_GET, "/api/traces/{trace_id}", h_get, 0},
};

const sl_service_def traces_service = {
    .name = "traces",
    .default_port = 4318,
    .routes = routes,
    .nroutes = SL_ARRAY_LEN(routes),
    .init = init,
    .fini = fini,
    .worker_init = worker_init,
    .worker_fini = worker_fini,
    .migrations = &sl_migrations_traces,
};
