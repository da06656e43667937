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
#include <shoal/http_client.h>
#include <shoal/id.h>
#include <shoal/identity.h>
#include <shoal/log.h>
#include <shoal/loop.h>
#include <shoal/metrics.h>
#include <shoal/rand.h>
#include <shoal/trace.h>

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

/* ---- per-request plumbing (the parts shared with the gateway are in serve.h) ---- */

#define HOST_FREE_MAX 1024 /* recycled req_host records kept per worker */

/* PostgreSQL lock_timeout of the connections that block the loop (see start_pool). The loop,
 * with every request and saga step of the worker, waits that long when such a connection
 * meets a row a suspended handler holds; a hot row (one product in every checkout) makes that
 * happen all the time, so it is short: the statement fails with SL_EBUSY and is retried. */
#define BLOCKING_LOCK_TIMEOUT_MS 250

static int on_headers(sl_http_req *req, void *data)
{
    sl_svc_worker *w = data;
    sl_service *svc = w->svc;
    req_host *h = sl_serve_freelist_get(&w->sw.records);
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
    sl_serve_begin(&w->sw, req, h->route ? h->route->name : "HTTP unrouted", &h->span);

    /* The caller's remaining budget (docs/resilience.md); a malformed value is ignored. */
    sl_slice dv;
    int64_t ms;
    h->deadline = sl_deadline_none();
    if (sl_http_req_header(req, SL_DEADLINE_HEADER, &dv) &&
        sl_deadline_parse_header(dv.ptr, dv.len, &ms) == 0)
        h->deadline = sl_deadline_from_header(sl_clock_system(), ms, 0);
    return 0;
}

/* A route of the service's own definition (not a built-in or administration route). */
static int own_route(const sl_service_def *def, const sl_route_def *d)
{
    return def->routes && d >= def->routes && d < def->routes + def->nroutes;
}

/*
 * A request handler as a task of the worker's PostgreSQL pool: inside it
 * sl_svc_worker_db() is the task's own connection, and a query that waits
 * for the server suspends the handler while the loop serves other requests.
 */
static void run_pooled(void *arg, sl_db *db, int rc)
{
    sl_http_req *req = arg;
    req_host *h = req->host;
    if (!db) {
        sl_respond_db_error(req, rc, "cannot open a database connection for the request");
        return;
    }
    /* It may have waited for a connection. */
    if (sl_deadline_expired(h->deadline, sl_clock_system())) {
        sl_respond_problem_ex(req, 504, "the caller's deadline has passed", NULL);
        return;
    }
    h->route->def->handler(req, h->w);
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
    if (h->route && w->pool && own_route(w->svc->def, h->route->def)) {
        int rc = sl_db_pool_run(w->pool, run_pooled, req);
        if (rc == 0) return;
        sl_series *s = rc == SL_EBUSY ? sl_metric_series(w->svc->db_busy, NULL) : NULL;
        if (s) sl_counter_inc(s, (unsigned)w->sw.index);
        sl_respond_problem_reason(req, 503, "database_busy",
                                  rc == SL_EBUSY ? "database busy: every connection of this worker "
                                                   "is in use and the queue is full; retry later"
                                                 : "database busy; retry later",
                                  NULL, 1);
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
    req_host *h = req->host;
    SL_ASSERT(!h || h->w == w);
    sl_span *none = NULL;
    sl_serve_outcome o = {.route = h && h->route ? h->route->def->path : NULL,
                          .log = w->svc->log,
                          .level = SL_LOG_LEVEL_DEBUG,
                          .msg = "request"};
    sl_serve_finish(&w->sw, req, status, body_len, h ? &h->span : &none, &o);
    req->host = NULL;
    sl_serve_freelist_put(&w->sw.records, h);
}

/* ---- workers ---------------------------------------------------------- */

/* Each handler connection wakes the outbox relay after its commits, as the worker's own does. */
static void pool_conn_opened(sl_db *db, void *data)
{
    sl_service *svc = data;
    sl__events_watch(svc->events, db);
}

/*
 * PostgreSQL: request handlers run as tasks of a pool of connections, so a
 * slow query no longer stalls the loop (docs/data.md). The worker's own
 * connection and the event connections stay blocking for everything else
 * (timers, consumers, sagas, the relay); their lock timeout (BLOCKING_LOCK_TIMEOUT_MS,
 * set in sl__service_prepare) bounds how long one of them can wait for a row
 * a suspended handler holds: the loop is blocked meanwhile, so that handler
 * cannot resume and release it.
 */
static int start_pool(sl_svc_worker *w)
{
    sl_service *svc = w->svc;
    sl_db_options handler_opts = svc->db_opts;
    handler_opts.lock_timeout_ms = 0; /* a handler waiting for a lock only waits itself */
    sl_db_pool_config pc = {.url = svc->db_url,
                            .opt = &handler_opts,
                            .size = svc->db_pool_size,
                            .queue_max = svc->db_pool_queue_max,
                            .on_open = pool_conn_opened,
                            .on_open_data = svc};
    int rc = sl_db_pool_new(sl_worker_loop(w->sw.rw), &pc, &w->pool);
    if (rc != 0)
        SL_LOG_ERROR(svc->log, NULL, "worker cannot set up its database pool",
                     SL_LOG_STR("code", sl_errname(rc)));
    return rc;
}

int sl__service_worker_start(sl_worker *rw, int fd, void *data)
{
    sl_service *svc = data;
    int idx = sl_worker_index(rw);
    SL_ASSERT(idx >= 0 && idx < svc->workers);
    sl_svc_worker *w = &svc->w[idx];
    w->svc = svc;
    sl_serve_worker_config sc = {.service = svc->def->name,
                                 .sample_ratio = svc->sample_ratio,
                                 .buffer_spans = svc->telemetry.queue_spans,
                                 /* With export on, errors and slow spans leave whatever the
                                  * sampling decided (decided at each span's end). */
                                 .keep_errors = svc->telemetry.endpoint[0] != '\0',
                                 .keep_slow_ns = (int64_t)svc->telemetry.slow_ms * 1000000,
                                 /* No exporter: no span is ever read, so none records. */
                                 .record_off = svc->exporter == NULL,
                                 .families = &svc->fam,
                                 .record_size = sizeof(req_host),
                                 .records_max = HOST_FREE_MAX};
    int rc = sl_serve_worker_init(&w->sw, rw, &sc);
    if (rc == 0 && svc->exporter) rc = sl_otlp_exporter_add(svc->exporter, w->sw.tracer);
    if (rc != 0) return rc;
    w->cbs = (sl_http_callbacks){
        .on_headers = on_headers, .on_request = on_request, .on_response = on_response, .data = w};
    rc = sl_serve_worker_listen(&w->sw, fd, &svc->limits, &w->cbs);
    if (rc != 0) return rc;
    /* A caller on this thread (another service hosted in this process) reaches this one without
     * a socket (http_client.h, sl_http_local_register). */
    w->local = sl_http_local_register(svc->port, &w->cbs, svc->limits.body_max_bytes) == 0;
    if (svc->def->migrations) {
        /* One connection per worker, opened on its own thread: a connection is never shared
         * between threads (db.h). */
        char err[256] = {0};
        rc = sl_db_open(svc->db_url, &svc->db_opts, &w->db, err, sizeof err);
        if (rc != 0) {
            SL_LOG_ERROR(svc->log, NULL, "worker cannot open the database",
                         SL_LOG_STR("error", err), SL_LOG_STR("code", sl_errname(rc)));
            return rc;
        }
        sl__events_watch(svc->events, w->db);
        if (sl_db_kind(w->db) == SL_DB_POSTGRES && (rc = start_pool(w)) != 0) return rc;
    }
    if (idx == 0 && (rc = sl__events_start(svc->events, sl_worker_loop(rw))) != 0) return rc;
    if (svc->def->worker_init && (rc = svc->def->worker_init(w)) != 0) return rc;
    w->started = 1;
    return 0;
}

static void worker_drain(sl_worker *rw, void *data)
{
    sl_service *svc = data;
    sl_serve_worker_drain(&svc->w[sl_worker_index(rw)].sw);
}

void sl__service_worker_stop(sl_worker *rw, void *data)
{
    sl_service *svc = data;
    sl_svc_worker *w = &svc->w[sl_worker_index(rw)];
    if (w->local) sl_http_local_unregister(svc->port);
    w->local = 0;
    sl_db_pool_free(w->pool); /* handlers still waiting finish first, before the service's fini */
    w->pool = NULL;
    if (w->started && svc->def->worker_fini) svc->def->worker_fini(w);
    if (w->sw.index == 0) sl__events_stop(svc->events);
    sl_serve_worker_stop(&w->sw);
    sl_db_close(w->db);
    w->db = NULL;
}

void sl__service_on_bound(int port, void *data)
{
    sl_service *svc = data;
    svc->port = port;
    SL_LOG_INFO(svc->log, NULL, "listening", SL_LOG_STR("host", svc->host),
                SL_LOG_INT("port", port), SL_LOG_INT("workers", svc->workers));
}

void sl__service_on_reload(void *data)
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
static const char *const env_sections[] = {"service",   "http", "log", "trace",
                                           "telemetry", "db",   "bus", "upstreams",
                                           "identity",  "mesh", NULL};

/* Reads the sections every service shares; prints located errors. Returns 0 or SL_ECONFIG. */
static int load_settings(sl_service *svc, int argc, char **argv, char **env)
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
    if (rc == 0) rc = sl_config_apply_env(svc->cfg, env, sections, err);
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
    if (!bad) {
        sl_json_errors te;
        sl_json_errors_init(&te);
        if (sl_otlp_settings_read(svc->cfg, ratio, &svc->telemetry, &te) != 0) {
            snprintf(err, sizeof err, "%s", te.count ? te.items[0].message : "telemetry: invalid");
            bad = 1;
        }
        ratio = svc->telemetry.sample_ratio;
    }
    const char *db_url = NULL, *db_sync = NULL;
    char def_url[256];
    snprintf(def_url, sizeof def_url, "sqlite:data/%s.db", svc->def->name);
    bad |= !bad && sl_config_get_string(svc->cfg, "db.url", def_url, &db_url, err);
    bad |= !bad && sl_config_get_string(svc->cfg, "db.synchronous", "normal", &db_sync, err);
    int64_t pool_size = 4, pool_queue = 64;
    bad |= !bad && sl_config_get_int(svc->cfg, "db.pool_size", 4, 1, 64, &pool_size, err);
    bad |= !bad && sl_config_get_int(svc->cfg, "db.pool_queue_max", 64, 0, 65536, &pool_queue, err);
    svc->db_pool_size = (unsigned)pool_size;
    svc->db_pool_queue_max = (unsigned)pool_queue;
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
    int64_t window = SL_IDENTITY_WINDOW_MS, replay_max = 65536;
    bad |= !bad &&
           sl_config_get_string(svc->cfg, "identity.key_file", "data/identity.key", &key_file, err);
    bad |= !bad && sl_config_get_int(svc->cfg, "identity.window_ms", SL_IDENTITY_WINDOW_MS, 1000,
                                     60000, &window, err);
    bad |= !bad && sl_config_get_int(svc->cfg, "identity.replay_max", 65536, 1024, 1 << 24,
                                     &replay_max, err);
    if (!bad) {
        char kerr[256];
        svc->identity_window_ms = window;
        svc->have_identity_key =
            sl_identity_keyring_load(key_file, &svc->identity_ring, kerr) == 0 &&
            sl_identity_replay_new((size_t)replay_max, &svc->identity_replay) == 0;
        if (!svc->have_identity_key)
            snprintf(svc->identity_note, sizeof svc->identity_note, "%s", kerr);
    }
    /* Mesh mode (docs/mesh.md): the token its sidecar proves itself with on the local hop. */
    const char *peer_file = NULL;
    bad |= !bad && sl_config_get_string(svc->cfg, "mesh.peer_token_file", "", &peer_file, err);
    if (!bad && peer_file[0]) {
        char kerr[256];
        if (sl_identity_peer_token_load(peer_file, &svc->peer_token, kerr) != 0) {
            snprintf(err, SL_CONFIG_ERR_MAX, "mesh.peer_token_file: %s", kerr);
            bad = 1;
        } else {
            svc->have_peer_token = 1;
        }
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
    size_t nb = sl__service_nbuiltin_routes, nd = sl__service_ndlq_routes;
    size_t n = nb + nd + svc->def->nroutes;
    svc->routes = calloc(n, sizeof(route_entry));
    svc->router = sl_router_new();
    if (!svc->routes || !svc->router) return SL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const sl_route_def *d = i < nb        ? &sl__service_builtin_routes[i]
                                : i < nb + nd ? &sl__service_dlq_routes[i - nb]
                                              : &svc->def->routes[i - nb - nd];
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
    /* One shard per worker, and the last for the span exporter's thread. */
    int rc = sl_metrics_new((unsigned)svc->workers + 1, &svc->metrics);
    if (rc == 0) rc = sl_serve_families_register(svc->metrics, &svc->fam);
    static const char *const labels[] = {"reason"};
    if (rc == 0)
        rc = sl_metrics_counter(svc->metrics, "identity_refusals_total",
                                "Identity proofs refused, by reason (invalid, role, replay, "
                                "replay_full; in mesh mode peer, peer_token).",
                                labels, 1, &svc->identity_refusals);
    if (rc == 0)
        rc = sl_metrics_counter(svc->metrics, "db_pool_busy_total",
                                "Requests answered 503 database busy: every handler connection of "
                                "the worker in use and its queue full (PostgreSQL).",
                                NULL, 0, &svc->db_busy);
    return rc;
}

/* The file of a `sqlite:` URL, or NULL (another backend, or in memory). */
static const char *sqlite_path(const char *url)
{
    if (strncmp(url, "sqlite:", 7) != 0 || strcmp(url, "sqlite::memory:") == 0) return NULL;
    const char *path = url + 7;
    if (strncmp(path, "//", 2) == 0) path += 2;
    return path;
}

/* Creates the directory of a `sqlite:` path (data/ by default) so a first start just works;
 * owner-only (0700), since the databases hold password hashes and personal data. */
static void make_sqlite_dir(const char *url)
{
    const char *path = sqlite_path(url);
    if (!path) return;
    char dir[1100];
    size_t n = strlen(path);
    if (n >= sizeof dir) return;
    memcpy(dir, path, n + 1);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(dir, 0700);
        *p = '/';
    }
}

/* The rows `set` records in schema_migrations: one per distinct version. */
static int64_t distinct_versions(const sl_migration_set *set)
{
    int64_t n = 0;
    for (size_t i = 0; i < set->count; i++) {
        size_t k = 0;
        while (k < i && set->items[k].version != set->items[i].version)
            k++;
        n += k == i;
    }
    return n;
}

/*
 * SQLite is for one instance per database file: the first process holds an exclusive lock on
 * `<file>.instance` for its lifetime (the kernel drops it when the process ends, however it
 * ends); a second one is told so and does not start.
 */
static int lock_sqlite(sl_service *svc)
{
    const char *file = sqlite_path(svc->db_url);
    if (file == NULL || file[0] == '\0' || strcmp(file, ":memory:") == 0) return 0;
    char path[1100];
    if ((size_t)snprintf(path, sizeof path, "%s.instance", file) >= sizeof path) return 0;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        SL_LOG_ERROR(svc->log, NULL, "cannot open the SQLite instance lock",
                     SL_LOG_STR("path", path), SL_LOG_STR("error", strerror(errno)));
        return SL_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) {
            SL_LOG_ERROR(svc->log, NULL,
                         "another instance is using this SQLite database; SQLite serves one "
                         "instance (run several on PostgreSQL)",
                         SL_LOG_STR("database", file), SL_LOG_STR("lock", path));
            return SL_EBUSY;
        }
        SL_LOG_ERROR(svc->log, NULL, "cannot lock the SQLite instance lock",
                     SL_LOG_STR("path", path), SL_LOG_STR("error", strerror(e)));
        return SL_EIO;
    }
    svc->db_lock_fd = fd + 1;
    return 0;
}

/* Applies the library's and the service's migrations; all-or-nothing per set. */
static int migrate(sl_service *svc)
{
    char err[256] = {0};
    sl_db *db = NULL;
    make_sqlite_dir(svc->db_url);
    int lrc = svc->db_lock_fd == 0 ? lock_sqlite(svc) : 0;
    if (lrc != 0) return lrc;
    int rc = sl_db_open(svc->db_url, &svc->db_opts, &db, err, sizeof err);
    if (rc != 0) {
        SL_LOG_ERROR(svc->log, NULL, "cannot open the database", SL_LOG_STR("error", err),
                     SL_LOG_STR("code", sl_errname(rc)));
        return rc;
    }
    /* The library's, the service's own, then those of the contracts whose tables it keeps (in
     * that order: a contract's script may only add to what the service's own scripts made). */
    const sl_migration_set *sets[2 + SL_SERVICE_CONTRACTS_MAX];
    size_t nsets = 0;
    sets[nsets++] = sl_db_lib_migrations();
    sets[nsets++] = svc->def->migrations;
    for (const sl_migration_set *const *c = svc->def->contract_migrations; c && *c; c++) {
        if (nsets == SL_ARRAY_LEN(sets)) {
            SL_LOG_ERROR(svc->log, NULL, "too many contract migration sets",
                         SL_LOG_INT("max", SL_SERVICE_CONTRACTS_MAX));
            sl_db_close(db);
            return SL_ELIMIT;
        }
        sets[nsets++] = *c;
    }
    for (size_t i = 0; i < nsets; i++) {
        const sl_migration_set *set = sets[i];
        int applied = 0;
        rc = sl_db_migrate(db, set, &applied);
        if (rc != 0) {
            SL_LOG_ERROR(svc->log, NULL, "migration failed; nothing of it was applied",
                         SL_LOG_STR("component", set->component),
                         SL_LOG_STR("error", sl_db_errmsg(db)), SL_LOG_STR("code", sl_errname(rc)));
            break;
        }
        if (applied > 0)
            SL_LOG_INFO(svc->log, NULL, "migrations applied",
                        SL_LOG_STR("component", set->component), SL_LOG_INT("count", applied));
        svc->migrations_expected += distinct_versions(set);
    }
    sl_db_close(db);
    /* /readyz checks that the file the workers open is still the one at this path. */
    const char *file = sqlite_path(svc->db_url);
    struct stat st;
    if (rc == 0 && file && strlen(file) < sizeof svc->db_file && stat(file, &st) == 0) {
        snprintf(svc->db_file, sizeof svc->db_file, "%s", file);
        svc->db_dev = (uint64_t)st.st_dev;
        svc->db_ino = (uint64_t)st.st_ino;
    }
    return rc;
}

/* The span exporter (telemetry.otlp_endpoint set): created before the workers add their tracers. */
static int setup_exporter(sl_service *svc)
{
    if (!svc->telemetry.endpoint[0]) return 0;
    char instance[128], hostname[64] = "localhost";
    gethostname(hostname, sizeof hostname - 1);
    snprintf(instance, sizeof instance, "%s:%ld", hostname, (long)getpid());
    sl_otlp_config oc;
    sl_otlp_config_init(&oc);
    oc.endpoint = svc->telemetry.endpoint;
    oc.resource = (sl_otlp_resource){.service_name = svc->def->name,
                                     .service_version = svc->telemetry.service_version,
                                     .instance_id = instance};
    oc.batch_max = svc->telemetry.batch_max;
    oc.flush_ms = svc->telemetry.flush_ms;
    oc.timeout_ms = svc->telemetry.export_timeout_ms;
    oc.max_tracers = (uint32_t)svc->workers;
    oc.metrics = svc->metrics;
    oc.shard = (unsigned)svc->workers;
    int rc = sl_otlp_exporter_new(&oc, &svc->exporter);
    if (rc == 0) rc = sl_otlp_exporter_start(svc->exporter);
    if (rc != 0)
        SL_LOG_ERROR(svc->log, NULL, "cannot start the span exporter",
                     SL_LOG_STR("error", sl_strerror(rc)));
    else
        SL_LOG_INFO(svc->log, NULL, "exporting spans", SL_LOG_STR("endpoint", oc.endpoint));
    return rc;
}

void sl__service_free(sl_service *svc)
{
    sl_otlp_exporter_free(svc->exporter); /* stops the thread before the tracers go */
    sl__events_free(svc->events);
    sodium_memzero(&svc->identity_ring, sizeof svc->identity_ring);
    sodium_memzero(&svc->peer_token, sizeof svc->peer_token);
    sl_identity_replay_free(svc->identity_replay);
    if (svc->w) {
        for (int i = 0; i < svc->workers; i++)
            sl_serve_worker_free(&svc->w[i].sw);
        free(svc->w);
    }
    sl_router_free(svc->router);
    free(svc->routes);
    sl_metrics_free(svc->metrics);
    sl_logger_free(svc->log);
    sl_config_free(svc->cfg);
    if (svc->db_lock_fd > 0) close(svc->db_lock_fd - 1); /* releases the instance lock */
    svc->db_lock_fd = 0;
}

int sl__service_load(sl_service *svc, const sl_service_def *def, int argc, char **argv, char **env)
{
    memset(svc, 0, sizeof *svc);
    svc->def = def;
    return load_settings(svc, argc, argv, env) != 0 ? SL_ECONFIG : 0;
}

int sl__service_prepare(sl_service *svc)
{
    const sl_service_def *def = svc->def;
    if (build_routes(svc) != 0 || setup_metrics(svc) != 0) return SL_ENOMEM;
    int rc = setup_exporter(svc);
    if (rc != 0) return rc;
    svc->w = calloc((size_t)svc->workers, sizeof(sl_svc_worker));
    if (!svc->w) return SL_ENOMEM;
    if (!svc->have_identity_key)
        SL_LOG_INFO(svc->log, NULL,
                    "no identity key: requests that need a caller's identity will be refused",
                    SL_LOG_STR("reason", svc->identity_note));
    if (def->migrations && (rc = migrate(svc)) != 0) return rc;
    /* From here on (not for the migrations, which may wait for each other's advisory lock). */
    svc->db_opts.lock_timeout_ms = BLOCKING_LOCK_TIMEOUT_MS;
    if ((rc = sl__events_new(svc, def, svc->cfg, svc->db_url, &svc->db_opts, svc->log, svc->metrics,
                             &svc->events)) != 0)
        return rc;
    if (def->init && (rc = def->init(svc)) != 0) {
        SL_LOG_ERROR(svc->log, NULL, "service init failed");
        return rc;
    }
    svc->inited = 1;
    return 0;
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
    int status = 2;
    if (sl__service_load(&svc, def, argc, argv, environ) != 0) goto out;
    status = 1;
    if (sl__service_prepare(&svc) != 0) goto out;
    sl_runtime_config rc = {.workers = svc.workers,
                            .host = svc.host,
                            .port = svc.port,
                            .drain_timeout_ms = svc.drain_ms};
    sl_worker_hooks hooks = {.start = sl__service_worker_start,
                             .drain = worker_drain,
                             .stop = sl__service_worker_stop,
                             .reload = sl__service_on_reload,
                             .bound = sl__service_on_bound,
                             .data = &svc};
    int err = sl_runtime_run(&rc, &hooks);
    sl_otlp_exporter_stop(svc.exporter); /* the last spans leave; the tracers are still there */
    if (def->fini) def->fini(&svc);
    if (err != 0) {
        SL_LOG_ERROR(svc.log, NULL, "stopped with an error", SL_LOG_STR("error", sl_strerror(err)),
                     SL_LOG_INT("port", svc.port));
        goto out;
    }
    SL_LOG_INFO(svc.log, NULL, "stopped");
    status = 0;
out:
    sl__service_free(&svc);
    return status;
}
