/*
 * The service host (service.h): sl_service_main reads the settings and
 * flags, applies the migrations, starts the workers and drains them; the
 * HTTP callbacks do the per-request plumbing: routing at end of headers,
 * trace context, deadline and request id, then metrics, span and access log
 * at response time. The router is only read while matching, so every worker
 * shares it.
 */
#include "service_int.h"

#include <shoal/clock.h>
#include <shoal/config.h>
#include <shoal/db.h>
#include <shoal/deadline.h>
#include <shoal/id.h>
#include <shoal/identity.h>
#include <shoal/log.h>
#include <shoal/loop.h>
#include <shoal/metrics.h>
#include <shoal/rand.h>
#include <shoal/trace.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

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
    if (svc->def->migrations) {
        /* DESIGN §4/§6: one connection per worker, opened on its own thread. */
        char err[256] = {0};
        rc = sl_db_open(svc->db_url, &svc->db_opts, &w->db, err, sizeof err);
        if (rc != 0) {
            SL_LOG_ERROR(svc->log, NULL, "worker cannot open the database",
                         SL_LOG_STR("error", err), SL_LOG_STR("code", sl_errname(rc)));
            return rc;
        }
        sl__events_watch(svc->events, w->db);
    }
    if (idx == 0 && (rc = sl__events_start(svc->events, sl_worker_loop(rw))) != 0) return rc;
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
    if (w->index == 0) sl__events_stop(svc->events);
    if (w->http) sl_http_server_close(w->http, NULL, NULL);
    w->http = NULL;
    sl_db_close(w->db);
    w->db = NULL;
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
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) return SL_EINVAL;
    *out = (int)v;
    return 0;
}

/* Top-level sections that SHOAL_<SECTION>__<KEY> variables may override or create, besides
 * the service's own section (named after the service, e.g. SHOAL_INVENTORY__...). */
static const char *const env_sections[] = {"service", "http",      "log",      "trace", "db",
                                           "bus",     "upstreams", "identity", NULL};

/* Reads the sections every service shares; prints located errors. Returns 0 or SL_ECONFIG. */
static int load_settings(sl_service *svc, int argc, char **argv)
{
    char err[SL_CONFIG_ERR_MAX] = {0};
    const char *path = sl_config_path_from_args(argc, argv);
    int rc = path ? sl_config_load_file(path, &svc->cfg, err)
                  : sl_config_load_string("<defaults>", "{}", 2, &svc->cfg, err);
    const char *sections[SL_ARRAY_LEN(env_sections) + 1];
    size_t ns = 0;
    for (; env_sections[ns]; ns++)
        sections[ns] = env_sections[ns];
    sections[ns++] = svc->def->name;
    sections[ns] = NULL;
    if (rc == 0) rc = sl_config_apply_env(svc->cfg, environ, sections, err);
    if (rc != 0) {
        fprintf(stderr, "shoal-%s: configuration: %s\n", svc->def->name, err);
        return SL_ECONFIG;
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
        return SL_ECONFIG;
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
                return SL_ECONFIG;
            }
        } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            if (parse_int_arg(argv[++i], 1, 256, &svc->workers) != 0) {
                fprintf(stderr, "shoal-%s: --workers: must be an integer 1..256\n", svc->def->name);
                return SL_ECONFIG;
            }
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            i++;
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            continue;
        } else {
            fprintf(stderr, "shoal-%s: unknown argument '%s'\n", svc->def->name, argv[i]);
            usage(svc->def, stderr);
            return SL_ECONFIG;
        }
    }
    if (sl_logger_new(svc->def->name, lvl, NULL, NULL, sl_clock_system(), &svc->log) != 0) {
        fprintf(stderr, "shoal-%s: cannot create the logger\n", svc->def->name);
        return SL_ECONFIG;
    }
    return 0;
}

static int build_routes(sl_service *svc)
{
    size_t nb = sl__service_nbuiltin_routes;
    size_t n = nb + svc->def->nroutes;
    svc->routes = calloc(n, sizeof(route_entry));
    svc->router = sl_router_new();
    if (!svc->routes || !svc->router) return SL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const sl_route_def *d = i < nb ? &sl__service_builtin_routes[i] : &svc->def->routes[i - nb];
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
    sl__events_free(svc->events);
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
    if (sl__events_new(&svc, def, svc.cfg, svc.db_url, &svc.db_opts, svc.log, svc.metrics,
                       &svc.events) != 0)
        goto out;
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
