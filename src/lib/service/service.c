/*
 * The service host (service.h): configuration, workers, the built-in
 * operations routes, and per-request plumbing — routing at end of headers,
 * trace context and request id, metrics and the access log at response time.
 *
 * Process-wide state (sl_service) is written on the main thread before the
 * workers start and read-only afterwards; the router is only read while
 * matching, so every worker shares it. Everything mutable per request lives
 * in the sl_svc_worker of the loop thread that owns the connection.
 */
#include <shoal/clock.h>
#include <shoal/config.h>
#include <shoal/db.h>
#include <shoal/deadline.h>
#include <shoal/id.h>
#include <shoal/identity.h>
#include <shoal/log.h>
#include <shoal/loop.h>
#include <shoal/metrics.h>
#include <shoal/outbox.h>
#include <shoal/rand.h>
#include <shoal/service.h>
#include <shoal/trace.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

#define MAX_STATUS 600

typedef struct route_entry {
    const sl_route_def *def;
    char name[96]; /* span name: "GET /orders/{id}" */
} route_entry;

struct sl_service {
    const sl_service_def *def;
    sl_config *cfg;
    sl_logger *log;
    sl_metrics *metrics;
    sl_metric_family *req_total;
    sl_metric_family *req_duration;
    sl_metric_family *connections;
    sl_http_limits limits;
    sl_router *router;
    route_entry *routes;
    size_t nroutes;
    char host[64];
    int port;
    int workers;
    uint32_t drain_ms;
    double sample_ratio;
    sl_svc_worker *w;
    char db_url[1024];
    sl_db_options db_opts;
    sl_identity_key identity_key;
    int have_identity_key;
    char identity_note[256]; /* why no key was loaded */
    char source[80];         /* CloudEvents source: "/shoal/<name>" */
    void *data;
};

typedef struct req_host {
    sl_svc_worker *w; /* first member: sl_req_worker reads it */
    sl_span *span;
    const route_entry *route;
    int route_status;
    unsigned allowed;
    sl_deadline deadline; /* from x-shoal-deadline-ms; none when absent or malformed */
    struct req_host *next_free;
} req_host;

#define HOST_FREE_MAX 1024

struct sl_svc_worker {
    sl_service *svc;
    sl_worker *rw;
    int index;
    sl_http_server *http;
    sl_tracer *tracer;
    sl_rand rand;
    sl_idgen idgen;
    sl_series *req_series[SL_HTTP_METHOD_COUNT][MAX_STATUS];
    sl_series *dur_series[SL_HTTP_METHOD_COUNT];
    req_host *free_hosts; /* recycled per-request records, at most HOST_FREE_MAX */
    size_t nfree_hosts;
    int started;
    sl_db *db;
    void *data;
};

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
    return sl_worker_loop(w->rw);
}
int sl_svc_worker_index(const sl_svc_worker *w)
{
    return w->index;
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
    return w->tracer;
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
    return w->db;
}
sl_svc_worker *sl_req_worker(sl_http_req *req)
{
    return req->host ? *(sl_svc_worker **)req->host : NULL;
}

const sl_trace_ctx *sl_req_trace(sl_http_req *req)
{
    req_host *h = req->host;
    return h && h->span ? sl_span_context(h->span) : NULL;
}

int sl_req_identity(sl_http_req *req, sl_identity *out)
{
    sl_svc_worker *w = sl_req_worker(req);
    if (!w || !w->svc->have_identity_key) return SL_EUNAVAIL;
    return sl_identity_verify(&w->svc->identity_key, req->headers, req->nheaders, req->method,
                              req->path, sl_clock_wall_ms(sl_clock_system()), 60000, out);
}

int sl_req_require_identity(sl_http_req *req, int admin_only, sl_identity *out)
{
    int rc = sl_req_identity(req, out);
    if (rc != 0) {
        sl_respond_problem_ex(req, 401,
                              rc == SL_ENOTFOUND ? "authentication required"
                                                 : "the caller's identity could not be verified",
                              NULL);
        return -1;
    }
    if (admin_only && strcmp(out->role, "admin") != 0) {
        sl_respond_problem_ex(req, 403, "this operation needs the admin role", NULL);
        return -1;
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

int sl_svc_emit(sl_svc_worker *w, sl_http_req *req, sl_db *tx, const char *type,
                const char *subject, const json_t *data)
{
    char *json = NULL;
    if (data && !(json = sl_json_dump(data, NULL))) return SL_ENOMEM;
    sl_outbox_event ev = {.source = w->svc->source,
                          .type = type,
                          .subject = subject,
                          .data_json = json,
                          .traceparent = req && req->traceparent[0] ? req->traceparent : NULL};
    int rc = sl_outbox_add(tx, &ev, sl_clock_wall_ns(sl_clock_system()), NULL);
    free(json);
    return rc;
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
        return -1;
    }
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    sl_json_limits lim = {.max_bytes = req->body_max_bytes};
    if (req->body.len == 0) {
        sl_json_errors_add(&errs, "", "a JSON object body is required");
        sl_respond_problem_ex(req, 400, "the request body is empty", &errs);
        return -1;
    }
    if (sl_json_parse(req->body.ptr, req->body.len, &lim, out, &errs) != 0) {
        sl_respond_problem_ex(req, 400, "the request body is not a valid JSON object", &errs);
        return -1;
    }
    return 0;
}

/* ---- built-in routes -------------------------------------------------- */

static void op_healthz(sl_http_req *req, sl_svc_worker *w)
{
    (void)w;
    static const char body[] = "{\"status\":\"ok\"}";
    sl_respond_json(req, 200, body, sizeof body - 1);
}

static void op_readyz(sl_http_req *req, sl_svc_worker *w)
{
    const sl_service_def *def = w->svc->def;
    if (def->ready && def->ready(w) != 0) {
        static const char body[] = "{\"status\":\"not ready\"}";
        sl_respond_json(req, 503, body, sizeof body - 1);
        return;
    }
    static const char body[] = "{\"status\":\"ready\"}";
    sl_respond_json(req, 200, body, sizeof body - 1);
}

static void op_metrics(sl_http_req *req, sl_svc_worker *w)
{
    char *text = NULL;
    size_t len = 0;
    sl_series *conns = sl_metric_series(w->svc->connections, NULL);
    if (conns) {
        double total = 0;
        for (int i = 0; i < w->svc->workers; i++)
            if (w->svc->w[i].http) total += (double)sl_http_server_connections(w->svc->w[i].http);
        sl_gauge_set(conns, total);
    }
    if (sl_metrics_render(w->svc->metrics, &text, &len) != 0) {
        sl_http_respond_problem(req, 500, "could not render metrics");
        return;
    }
    sl_http_respond_body(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

static const sl_route_def builtin_routes[] = {
    {SL_HTTP_GET, "/healthz", op_healthz, 0},
    {SL_HTTP_GET, "/readyz", op_readyz, 0},
    {SL_HTTP_GET, "/metrics", op_metrics, 0},
};

/* ---- per-request plumbing -------------------------------------------- */


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

static int on_headers(sl_http_req *req, void *data)
{
    sl_svc_worker *w = data;
    sl_service *svc = w->svc;
    req_host *h = calloc(1, sizeof *h);
    if (!h) return 503;
    h->w = w;
    req->host = h;

    const void *value = NULL;
    sl_route_result rr =
        sl_router_match(svc->router, req->method, req->path, &value, &req->params, &h->allowed);
    if (rr == SL_ROUTE_FOUND) {
        h->route = value;
        req->route = value;
        if (h->route->def->body_max_bytes) req->body_max_bytes = h->route->def->body_max_bytes;
    } else {
        h->route_status = rr == SL_ROUTE_NOT_FOUND ? 404 : 405;
        req->body_max_bytes = 64 * 1024; /* the body is read and dropped */
    }

    /* W3C Trace Context: join the caller's trace when its traceparent is valid. */
    sl_slice tp;
    sl_trace_ctx parent;
    const sl_trace_ctx *pp = NULL;
    if (sl_http_req_header(req, "traceparent", &tp) &&
        sl_traceparent_parse(tp.ptr, tp.len, &parent) == 0)
        pp = &parent;
    sl_span_start(w->tracer, h->route ? h->route->name : "HTTP unrouted", SL_SPAN_SERVER, pp,
                  &h->span);
    sl_traceparent_format(sl_span_context(h->span), req->traceparent);

    /* The caller's remaining budget (docs/resilience.md); a malformed value is ignored. */
    sl_slice dv;
    int64_t ms;
    h->deadline = sl_deadline_none();
    if (sl_http_req_header(req, SL_DEADLINE_HEADER, &dv) &&
        sl_deadline_parse_header(dv.ptr, dv.len, &ms) == 0)
        h->deadline = sl_deadline_from_header(sl_clock_system(), ms, 0);

    sl_slice rid;
    if (sl_http_req_header(req, "x-request-id", &rid) && valid_request_id(rid)) {
        memcpy(req->request_id, rid.ptr, rid.len);
        req->request_id[rid.len] = '\0';
    } else if (sl_uuid7_new(&w->idgen, req->request_id) != 0) {
        req->request_id[0] = '\0';
    }
    return 0;
}

static void on_request(sl_http_req *req, void *data)
{
    sl_svc_worker *w = data;
    req_host *h = req->host;
    /* Nobody waits for this answer any more: do not run the handler. */
    if (sl_deadline_expired(h->deadline, sl_clock_system())) {
        sl_respond_problem_ex(req, 504, "the caller's deadline has passed", NULL);
        return;
    }
    if (h->route) {
        h->route->def->handler(req, w);
        return;
    }
    if (h->route_status == 405) {
        char allow[128];
        size_t n = sl_router_allow_header(h->allowed, allow, sizeof allow);
        size_t len = 0;
        char *body = sl_problem_body(405, NULL, "method not allowed for this resource", NULL, &len);
        sl_http_header hs[2] = {{{"Content-Type", 12}, {"application/problem+json", 24}},
                                {{"Allow", 5}, {allow, n}}};
        sl_http_respond(req, 405, hs, 2, body ? body : "", body ? len : 0);
        free(body);
        return;
    }
    sl_respond_problem_ex(req, 404, "no such resource", NULL);
}

static void on_response(sl_http_req *req, int status, size_t body_len, void *data)
{
    sl_svc_worker *w = data;
    sl_service *svc = w->svc;
    req_host *h = req->host;
    unsigned m = (unsigned)req->method;
    if (m >= SL_HTTP_METHOD_COUNT || req->method_token.len == 0) m = SL_HTTP_OTHER;
    int st = status >= 100 && status < MAX_STATUS ? status : 599;
    sl_series *cnt = w->req_series[m][st];
    if (!cnt) {
        char code[8];
        snprintf(code, sizeof code, "%d", st);
        const char *labels[] = {svc->def->name, sl_http_method_name((sl_http_method)m), code};
        cnt = w->req_series[m][st] = sl_metric_series(svc->req_total, labels);
    }
    if (!w->dur_series[m]) {
        const char *labels[] = {svc->def->name, sl_http_method_name((sl_http_method)m)};
        w->dur_series[m] = sl_metric_series(svc->req_duration, labels);
    }
    double secs = 0;
    if (req->start_ns) secs = (double)((int64_t)uv_hrtime() - req->start_ns) / 1e9;
    if (cnt) sl_counter_inc(cnt, (unsigned)w->index);
    if (w->dur_series[m]) sl_histogram_observe(w->dur_series[m], (unsigned)w->index, secs);

    if (h && h->span) {
        if (sl_span_is_recording(h->span)) {
            sl_span_set_attr_str(h->span, "http.request.method",
                                 sl_http_method_name((sl_http_method)m));
            if (h->route) sl_span_set_attr_str(h->span, "http.route", h->route->def->path);
            sl_span_set_attr_int(h->span, "http.response.status_code", status);
            if (status >= 500)
                sl_span_set_status(h->span, SL_SPAN_STATUS_ERROR, sl_http_reason(status));
        }
        if (sl_log_enabled(svc->log, SL_LOG_LEVEL_DEBUG)) {
            char path[256];
            size_t n = req->path.len < sizeof path - 1 ? req->path.len : sizeof path - 1;
            memcpy(path, req->path.ptr, n);
            path[n] = '\0';
            SL_LOG_DEBUG(svc->log, sl_span_context(h->span), "request",
                         SL_LOG_STR("method", sl_http_method_name((sl_http_method)m)),
                         SL_LOG_STR("path", path), SL_LOG_INT("status", status),
                         SL_LOG_INT("bytes", (int64_t)body_len), SL_LOG_DBL("duration_s", secs),
                         SL_LOG_STR("request_id", req->request_id));
        }
        sl_span_end(h->span);
        h->span = NULL;
    }
    req->host = NULL;
    if (h && w->nfree_hosts < HOST_FREE_MAX) {
        h->next_free = w->free_hosts;
        w->free_hosts = h;
        w->nfree_hosts++;
    } else {
        free(h);
    }
}

/* ---- workers ---------------------------------------------------------- */

static int worker_start(sl_worker *rw, int fd, void *data)
{
    sl_service *svc = data;
    int idx = sl_worker_index(rw);
    sl_svc_worker *w = &svc->w[idx];
    w->svc = svc;
    w->rw = rw;
    w->index = idx;
    int rc = sl_rand_seed_os(&w->rand);
    if (rc != 0) return rc;
    sl_idgen_init(&w->idgen, sl_clock_system(), NULL, NULL);
    sl_tracer_config tc;
    sl_tracer_config_init(&tc);
    tc.service = svc->def->name;
    tc.clock = sl_clock_system();
    tc.rand = &w->rand;
    tc.sample_ratio = svc->sample_ratio;
    rc = sl_tracer_new(&tc, &w->tracer);
    if (rc != 0) return rc;
    sl_http_callbacks cbs = {
        .on_headers = on_headers, .on_request = on_request, .on_response = on_response, .data = w};
    rc = sl_http_server_new(sl_worker_loop(rw), &svc->limits, &cbs, &w->http);
    if (rc != 0) return rc;
    rc = sl_http_server_listen_fd(w->http, fd);
    if (rc != 0) return rc;
    if (svc->def->worker_init && (rc = svc->def->worker_init(w)) != 0) return rc;
    w->started = 1;
    return 0;
}

static void worker_drained(void *data)
{
    sl_svc_worker *w = data;
    sl_worker_drained(w->rw);
}

static void worker_drain(sl_worker *rw, void *data)
{
    sl_service *svc = data;
    sl_svc_worker *w = &svc->w[sl_worker_index(rw)];
    if (!w->http) {
        sl_worker_drained(rw);
        return;
    }
    sl_http_server_drain(w->http, worker_drained, w);
}

static void worker_stop(sl_worker *rw, void *data)
{
    sl_service *svc = data;
    sl_svc_worker *w = &svc->w[sl_worker_index(rw)];
    if (w->started && svc->def->worker_fini) svc->def->worker_fini(w);
    if (w->http) sl_http_server_close(w->http, NULL, NULL);
    w->http = NULL;
}

static void on_bound(int port, void *data)
{
    sl_service *svc = data;
    svc->port = port;
    SL_LOG_INFO(svc->log, NULL, "listening", SL_LOG_STR("host", svc->host),
                SL_LOG_INT("port", port), SL_LOG_INT("workers", svc->workers));
}

static void on_reload(void *data)
{
    sl_service *svc = data;
    SL_LOG_INFO(svc->log, NULL, "SIGHUP received; this service has nothing to reload");
}

/* ---- configuration ---------------------------------------------------- */

static void usage(const sl_service_def *def, FILE *to)
{
    fprintf(to,
            "usage: shoal-%s [--config FILE] [--port N] [--workers N]\n"
            "  Configuration: YAML file (--config or SHOAL_CONFIG), then SHOAL_<SECTION>__<KEY>\n"
            "  environment overrides (e.g. SHOAL_HTTP__IDLE_TIMEOUT_MS=5000), then flags.\n"
            "  See docs/configuration.md.\n",
            def->name);
}

static int parse_int_arg(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

/* Top-level sections that SHOAL_<SECTION>__<KEY> variables may override or create. */
static const char *const env_sections[] = {"service", "http", "log",       "trace",
                                           "db",      "bus",  "upstreams", NULL};

/* Reads the sections every service shares; prints located errors. */
static int load_settings(sl_service *svc, int argc, char **argv)
{
    char err[SL_CONFIG_ERR_MAX] = {0};
    const char *path = sl_config_path_from_args(argc, argv);
    int rc = path ? sl_config_load_file(path, &svc->cfg, err)
                  : sl_config_load_string("<defaults>", "{}", 2, &svc->cfg, err);
    if (rc == 0) rc = sl_config_apply_env(svc->cfg, environ, env_sections, err);
    if (rc != 0) {
        fprintf(stderr, "shoal-%s: configuration: %s\n", svc->def->name, err);
        return -1;
    }
    int64_t port, workers, drain, hdr, body, idle, maxconn, maxhdr, linger;
    int64_t bodymax;
    double ratio;
    const char *host = NULL, *level = NULL;
    sl_http_limits d;
    sl_http_limits_default(&d);
    int bad = 0;
    bad |= sl_config_get_string(svc->cfg, "service.host", "127.0.0.1", &host, err);
    bad |= !bad && sl_config_get_int(svc->cfg, "service.port", svc->def->default_port, 0, 65535,
                                     &port, err);
    bad |= !bad && sl_config_get_int(svc->cfg, "service.workers", 1, 1, 256, &workers, err);
    bad |= !bad &&
           sl_config_get_int(svc->cfg, "service.drain_timeout_ms", 10000, 0, 600000, &drain, err);
    bad |= !bad && sl_config_get_int(svc->cfg, "http.header_timeout_ms", d.header_timeout_ms, 1,
                                     3600000, &hdr, err);
    bad |= !bad && sl_config_get_int(svc->cfg, "http.body_timeout_ms", d.body_timeout_ms, 1,
                                     3600000, &body, err);
    bad |= !bad && sl_config_get_int(svc->cfg, "http.idle_timeout_ms", d.idle_timeout_ms, 1,
                                     3600000, &idle, err);
    bad |=
        !bad && sl_config_get_int(svc->cfg, "http.linger_ms", d.linger_ms, 0, 60000, &linger, err);
    bad |= !bad && sl_config_get_int(svc->cfg, "http.max_connections", d.max_connections, 1,
                                     1000000, &maxconn, err);
    bad |= !bad && sl_config_get_int(svc->cfg, "http.max_header_bytes", (int64_t)d.max_header_bytes,
                                     1024, 1 << 20, &maxhdr, err);
    bad |= !bad && sl_config_get_int(svc->cfg, "http.body_max_bytes", (int64_t)d.body_max_bytes, 0,
                                     1 << 30, &bodymax, err);
    bad |= !bad && sl_config_get_string(svc->cfg, "log.level", "info", &level, err);
    bad |= !bad && sl_config_get_number(svc->cfg, "trace.sample_ratio", 1.0, &ratio, err);
    if (!bad && !(ratio >= 0.0 && ratio <= 1.0)) {
        char where[256];
        sl_config_locate(svc->cfg, "trace.sample_ratio", where, sizeof where);
        snprintf(err, sizeof err, "%s: trace.sample_ratio: must be between 0 and 1", where);
        bad = 1;
    }
    const char *db_url = NULL, *db_sync = NULL;
    char def_url[256];
    snprintf(def_url, sizeof def_url, "sqlite:data/%s.db", svc->def->name);
    bad |= !bad && sl_config_get_string(svc->cfg, "db.url", def_url, &db_url, err);
    bad |= !bad && sl_config_get_string(svc->cfg, "db.synchronous", "normal", &db_sync, err);
    if (!bad && strcmp(db_sync, "normal") != 0 && strcmp(db_sync, "full") != 0) {
        char where[256];
        sl_config_locate(svc->cfg, "db.synchronous", where, sizeof where);
        snprintf(err, sizeof err, "%s: db.synchronous: must be normal or full", where);
        bad = 1;
    }
    if (!bad && strlen(db_url) >= sizeof svc->db_url) {
        snprintf(err, sizeof err, "db.url: must be shorter than %zu bytes", sizeof svc->db_url);
        bad = 1;
    }
    if (!bad) {
        snprintf(svc->db_url, sizeof svc->db_url, "%s", db_url);
        svc->db_opts.sqlite_sync_full = strcmp(db_sync, "full") == 0;
    }
    const char *key_file = NULL;
    bad |= !bad &&
           sl_config_get_string(svc->cfg, "identity.key_file", "data/identity.key", &key_file, err);
    if (!bad) {
        char kerr[256];
        svc->have_identity_key = sl_identity_key_load(key_file, &svc->identity_key, kerr) == 0;
        if (!svc->have_identity_key)
            snprintf(svc->identity_note, sizeof svc->identity_note, "%s", kerr);
    }
    snprintf(svc->source, sizeof svc->source, "/shoal/%s", svc->def->name);
    sl_log_level lvl = SL_LOG_LEVEL_INFO;
    if (!bad && sl_log_level_parse(level, &lvl) != 0) {
        char where[256];
        sl_config_locate(svc->cfg, "log.level", where, sizeof where);
        snprintf(err, sizeof err, "%s: log.level: must be one of debug, info, warn, error", where);
        bad = 1;
    }
    if (bad) {
        fprintf(stderr, "shoal-%s: configuration: %s\n", svc->def->name, err);
        return -1;
    }
    snprintf(svc->host, sizeof svc->host, "%s", host);
    svc->port = (int)port;
    svc->workers = (int)workers;
    svc->drain_ms = (uint32_t)drain;
    svc->sample_ratio = ratio;
    svc->limits = d;
    svc->limits.header_timeout_ms = (uint32_t)hdr;
    svc->limits.body_timeout_ms = (uint32_t)body;
    svc->limits.idle_timeout_ms = (uint32_t)idle;
    svc->limits.linger_ms = (uint32_t)linger;
    svc->limits.max_connections = (uint32_t)maxconn;
    svc->limits.max_header_bytes = (size_t)maxhdr;
    svc->limits.body_max_bytes = (size_t)bodymax;

    /* Flags win over file and environment. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            if (parse_int_arg(argv[++i], 0, 65535, &svc->port) != 0) {
                fprintf(stderr, "shoal-%s: --port: must be an integer 0..65535\n", svc->def->name);
                return -1;
            }
        } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            if (parse_int_arg(argv[++i], 1, 256, &svc->workers) != 0) {
                fprintf(stderr, "shoal-%s: --workers: must be an integer 1..256\n", svc->def->name);
                return -1;
            }
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            i++;
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            continue;
        } else {
            fprintf(stderr, "shoal-%s: unknown argument '%s'\n", svc->def->name, argv[i]);
            usage(svc->def, stderr);
            return -1;
        }
    }
    if (sl_logger_new(svc->def->name, lvl, NULL, NULL, sl_clock_system(), &svc->log) != 0) {
        fprintf(stderr, "shoal-%s: cannot create the logger\n", svc->def->name);
        return -1;
    }
    return 0;
}

static int build_routes(sl_service *svc)
{
    size_t n = SL_ARRAY_LEN(builtin_routes) + svc->def->nroutes;
    svc->routes = calloc(n, sizeof(route_entry));
    svc->router = sl_router_new();
    if (!svc->routes || !svc->router) return SL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const sl_route_def *d = i < SL_ARRAY_LEN(builtin_routes)
                                    ? &builtin_routes[i]
                                    : &svc->def->routes[i - SL_ARRAY_LEN(builtin_routes)];
        route_entry *e = &svc->routes[svc->nroutes++];
        e->def = d;
        snprintf(e->name, sizeof e->name, "%s %s", sl_http_method_name(d->method), d->path);
        int rc = sl_router_add(svc->router, d->method, d->path, e);
        if (rc != 0) {
            SL_LOG_ERROR(svc->log, NULL, "invalid route", SL_LOG_STR("path", d->path),
                         SL_LOG_STR("error", sl_strerror(rc)));
            return rc;
        }
    }
    return 0;
}

static int setup_metrics(sl_service *svc)
{
    static const char *const req_labels[] = {"service", "method", "status"};
    static const char *const dur_labels[] = {"service", "method"};
    int rc = sl_metrics_new((unsigned)svc->workers, &svc->metrics);
    if (rc == 0)
        rc = sl_metrics_counter(svc->metrics, "service_requests_total",
                                "HTTP requests answered, by method and status.", req_labels, 3,
                                &svc->req_total);
    if (rc == 0)
        rc = sl_metrics_histogram(svc->metrics, "service_request_duration_seconds",
                                  "Time from the first byte of a request to its response.",
                                  dur_labels, 2, NULL, 0, &svc->req_duration);
    if (rc == 0)
        rc = sl_metrics_gauge(svc->metrics, "http_server_connections", "Open client connections.",
                              NULL, 0, &svc->connections);
    return rc;
}

/* Creates the directory of a `sqlite:` path (data/ by default) so a first start just works. */
static void make_sqlite_dir(const char *url)
{
    if (strncmp(url, "sqlite:", 7) != 0 || strcmp(url, "sqlite::memory:") == 0) return;
    const char *path = url + 7;
    if (strncmp(path, "//", 2) == 0) path += 2;
    char dir[1100];
    size_t n = strlen(path);
    if (n >= sizeof dir) return;
    memcpy(dir, path, n + 1);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(dir, 0755);
        *p = '/';
    }
}

/* Applies the library's and the service's migrations; all-or-nothing per set. */
static int migrate(sl_service *svc)
{
    char err[256] = {0};
    sl_db *db = NULL;
    make_sqlite_dir(svc->db_url);
    int rc = sl_db_open(svc->db_url, &svc->db_opts, &db, err, sizeof err);
    if (rc != 0) {
        SL_LOG_ERROR(svc->log, NULL, "cannot open the database", SL_LOG_STR("error", err),
                     SL_LOG_STR("code", sl_errname(rc)));
        return rc;
    }
    const sl_migration_set *sets[] = {sl_db_lib_migrations(), svc->def->migrations};
    for (size_t i = 0; i < SL_ARRAY_LEN(sets); i++) {
        int applied = 0;
        rc = sl_db_migrate(db, sets[i], &applied);
        if (rc != 0) {
            SL_LOG_ERROR(svc->log, NULL, "migration failed; nothing of it was applied",
                         SL_LOG_STR("component", sets[i]->component),
                         SL_LOG_STR("error", sl_db_errmsg(db)), SL_LOG_STR("code", sl_errname(rc)));
            break;
        }
        if (applied > 0)
            SL_LOG_INFO(svc->log, NULL, "migrations applied",
                        SL_LOG_STR("component", sets[i]->component), SL_LOG_INT("count", applied));
    }
    sl_db_close(db);
    return rc;
}

static void service_free(sl_service *svc)
{
    sodium_memzero(&svc->identity_key, sizeof svc->identity_key);
    if (svc->w) {
        for (int i = 0; i < svc->workers; i++) {
            sl_tracer_free(svc->w[i].tracer);
            while (svc->w[i].free_hosts) {
                req_host *h = svc->w[i].free_hosts;
                svc->w[i].free_hosts = h->next_free;
                free(h);
            }
        }
        free(svc->w);
    }
    sl_router_free(svc->router);
    free(svc->routes);
    sl_metrics_free(svc->metrics);
    sl_logger_free(svc->log);
    sl_config_free(svc->cfg);
}

int sl_service_main(const sl_service_def *def, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(def, stdout);
            return 0;
        }
    }
    sl_service svc;
    memset(&svc, 0, sizeof svc);
    svc.def = def;
    int status = 2;
    if (load_settings(&svc, argc, argv) != 0) goto out;
    status = 1;
    if (build_routes(&svc) != 0 || setup_metrics(&svc) != 0) goto out;
    svc.w = calloc((size_t)svc.workers, sizeof(sl_svc_worker));
    if (!svc.w) goto out;
    if (!svc.have_identity_key)
        SL_LOG_INFO(svc.log, NULL,
                    "no identity key: requests that need a caller's identity will be refused",
                    SL_LOG_STR("reason", svc.identity_note));
    if (def->migrations && migrate(&svc) != 0) goto out;
    if (def->init && def->init(&svc) != 0) {
        SL_LOG_ERROR(svc.log, NULL, "service init failed");
        goto out;
    }
    sl_runtime_config rc = {.workers = svc.workers,
                            .host = svc.host,
                            .port = svc.port,
                            .drain_timeout_ms = svc.drain_ms};
    sl_worker_hooks hooks = {.start = worker_start,
                             .drain = worker_drain,
                             .stop = worker_stop,
                             .reload = on_reload,
                             .bound = on_bound,
                             .data = &svc};
    int err = sl_runtime_run(&rc, &hooks);
    if (def->fini) def->fini(&svc);
    if (err != 0) {
        SL_LOG_ERROR(svc.log, NULL, "stopped with an error", SL_LOG_STR("error", sl_strerror(err)),
                     SL_LOG_INT("port", svc.port));
        goto out;
    }
    SL_LOG_INFO(svc.log, NULL, "stopped");
    status = 0;
out:
    service_free(&svc);
    return status;
}
