/*
 * shoal-proxy's lifecycle: generations and their per-worker instances,
 * worker start/drain/stop on the runtime (loop.h), configuration reload on
 * SIGHUP, the admin listener, and the periodic publication of each worker's
 * cluster state.
 *
 * Reload: the main thread loads and validates the new file; a bad one is
 * logged and nothing changes. A good one becomes a new px_gen; the main
 * thread takes one reference per worker, drops it in each worker's mailbox
 * and wakes the worker (uv_async). The worker builds its px_wgen (new
 * upstreams and pools), makes it current, and drops the old one's "current"
 * reference: requests that started on the old generation finish on it, and
 * its pools close when the last of them is done.
 */
#include "gateway.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- generations ------------------------------------------------------------------------------
 */

static int limiter(sl_rand *rnd, uint32_t rate, uint32_t burst, uint32_t max_keys,
                   sl_ratelimit **out)
{
    sl_ratelimit_config rc;
    sl_ratelimit_config_default(&rc);
    rc.rate = rate;
    rc.period_ms = 1000;
    rc.burst = burst ? burst : rate;
    rc.max_keys = max_keys;
    rc.key_max_len = 64;
    return sl_ratelimit_new(&rc, sl_clock_system(), rnd, out);
}

px_gen *px_gen_new(px_config *cfg, int nworkers, uint64_t id)
{
    px_gen *g = calloc(1, sizeof *g);
    if (!g) goto fail;
    atomic_init(&g->refs, 1);
    g->id = id;
    g->cfg = cfg;
    g->nworkers = nworkers;
    for (size_t i = 0; i < cfg->nclusters; i++) {
        g->ep_off[i] = g->total_eps;
        g->total_eps += cfg->clusters[i].nendpoints;
    }
    size_t eps = g->total_eps ? g->total_eps : 1, ncl = cfg->nclusters ? cfg->nclusters : 1;
    g->healthy = calloc(eps, sizeof *g->healthy);
    g->pub = calloc(ncl * (size_t)nworkers, sizeof *g->pub);
    g->pub_ep = calloc(eps * (size_t)nworkers, sizeof *g->pub_ep);
    if (!g->healthy || !g->pub || !g->pub_ep) goto fail;
    for (size_t i = 0; i < g->total_eps; i++)
        atomic_init(&g->healthy[i], 1);
    pthread_mutex_init(&g->rl_mu, NULL);
    g->route_rl = calloc(cfg->routes.n ? cfg->routes.n : 1, sizeof *g->route_rl);
    sl_rand rnd;
    if (!g->route_rl || sl_rand_seed_os(&rnd) != 0) goto fail_rl;
    if (cfg->client_rate &&
        limiter(&rnd, cfg->client_rate, cfg->client_burst, cfg->rl_max_keys, &g->client_rl) != 0)
        goto fail_rl;
    for (size_t i = 0; i < cfg->routes.n; i++)
        if (cfg->routes.items[i].rate &&
            limiter(&rnd, cfg->routes.items[i].rate, cfg->routes.items[i].burst, cfg->rl_max_keys,
                    &g->route_rl[i]) != 0)
            goto fail_rl;
    return g;
fail_rl:
    px_gen_unref(g); /* refs is 1: frees the limiters made so far and cfg */
    return NULL;
fail:
    if (g) {
        free(g->healthy);
        free(g->pub);
        free(g->pub_ep);
        free(g);
    }
    px_config_free(cfg);
    return NULL;
}

void px_gen_ref(px_gen *g)
{
    atomic_fetch_add(&g->refs, 1);
}

void px_gen_unref(px_gen *g)
{
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1) return;
    sl_ratelimit_free(g->client_rl);
    for (size_t i = 0; g->route_rl && g->cfg && i < g->cfg->routes.n; i++)
        sl_ratelimit_free(g->route_rl[i]);
    free(g->route_rl);
    pthread_mutex_destroy(&g->rl_mu);
    px_config_free(g->cfg);
    free(g->healthy);
    free(g->pub);
    free(g->pub_ep);
    free(g);
}

/* ---- per-worker generations -------------------------------------------------------------------
 */

static void wgen_free(px_wgen *wg)
{
    for (size_t i = 0; wg->clusters && i < wg->gen->cfg->nclusters; i++)
        px_wcluster_free_arrays(&wg->clusters[i]);
    free(wg->clusters);
    px_gen_unref(wg->gen);
    free(wg);
}

void px_wgen_closed_one(void *data)
{
    px_wgen *wg = data;
    if (--wg->closing_pending == 0) wgen_free(wg);
}

static void wgen_close(px_wgen *wg)
{
    wg->closing = 1;
    wg->closing_pending = 1; /* held until every close below has been started */
    for (size_t i = 0; wg->clusters && i < wg->gen->cfg->nclusters; i++)
        px_wcluster_close(&wg->clusters[i]);
    px_wgen_closed_one(wg);
}

px_wgen *px_wgen_current(px_worker *w)
{
    w->cur->refs++;
    return w->cur;
}

void px_wgen_unref(px_wgen *wg)
{
    if (--wg->refs == 0) wgen_close(wg);
}

/* Builds worker `w`'s instance of `g` (takes ownership of one reference of g). */
static int wgen_new(px_worker *w, px_gen *g, px_wgen **out)
{
    const px_config *cfg = g->cfg;
    px_wgen *wg = calloc(1, sizeof *wg);
    if (!wg) {
        px_gen_unref(g);
        return SL_ENOMEM;
    }
    wg->w = w;
    wg->gen = g;
    wg->refs = 1;
    int rc = 0;
    wg->clusters = calloc(cfg->nclusters ? cfg->nclusters : 1, sizeof *wg->clusters);
    if (!wg->clusters) rc = SL_ENOMEM;
    for (size_t i = 0; rc == 0 && i < cfg->nclusters; i++)
        rc = px_wcluster_init(&wg->clusters[i], wg, (int)i);
    if (rc != 0) {
        wg->refs = 0;
        wgen_close(wg);
        return rc;
    }
    *out = wg;
    return 0;
}

/* ---- worker side ------------------------------------------------------------------------------
 */

/* Adopts the generation waiting in the mailbox, if any. */
static int adopt(px_worker *w)
{
    px_gen *g = atomic_exchange(&w->mailbox, NULL);
    if (!g) return 0;
    px_wgen *wg = NULL;
    uint64_t id = g->id;
    int rc = wgen_new(w, g, &wg);
    if (rc != 0) {
        SL_LOG_ERROR(w->gw->log, NULL,
                     "could not apply the configuration on a worker; it keeps the previous one",
                     SL_LOG_INT("worker", w->index), SL_LOG_INT("generation", (int64_t)id),
                     SL_LOG_STR("error", sl_strerror(rc)));
        return rc;
    }
    px_wgen *old = w->cur;
    w->cur = wg;
    if (old) px_wgen_unref(old);
    if (old && w->index == 0)
        SL_LOG_INFO(w->gw->log, NULL, "configuration generation active",
                    SL_LOG_INT("generation", (int64_t)id));
    return 0;
}

static void on_async(uv_async_t *a)
{
    (void)adopt(a->data);
}

static void on_tick(uv_timer_t *t)
{
    px_worker *w = t->data;
    for (size_t i = 0; i < w->cur->gen->cfg->nclusters; i++)
        px_wcluster_publish(&w->cur->clusters[i]);
    atomic_store(&w->connections, w->http ? sl_http_server_connections(w->http) : 0);
}

static void admin_request(sl_http_req *req, void *data)
{
    px_worker *w = data;
    if (req->method != SL_HTTP_GET && req->method != SL_HTTP_HEAD) {
        sl_http_header h = {SL_SLICE_LIT("Allow"), SL_SLICE_LIT("GET, HEAD")};
        sl_http_respond(req, 405, &h, 1, NULL, 0);
        return;
    }
    if (sl_slice_eq(req->path, "/admin/clusters")) {
        size_t len = 0;
        char *doc = px_admin_clusters_doc(w->cur->gen, &len);
        if (!doc) {
            sl_http_respond_problem(req, 500, "out of memory");
            return;
        }
        sl_http_respond_body(req, 200, "application/json", doc, len);
        free(doc);
    } else if (sl_slice_eq(req->path, "/admin/config")) {
        const px_config *cfg = w->cur->gen->cfg;
        char head[128];
        int n = snprintf(head, sizeof head,
                         "{\"generation\":%llu,\"source\":", (unsigned long long)w->cur->gen->id);
        json_t *src = json_string(cfg->source);
        char *s = sl_json_dump(src, NULL);
        json_decref(src);
        size_t cap = (size_t)n + (s ? strlen(s) : 4) + strlen(cfg->json ? cfg->json : "{}") + 32;
        char *body = malloc(cap);
        if (!body) {
            free(s);
            sl_http_respond_problem(req, 500, "out of memory");
            return;
        }
        int len = snprintf(body, cap, "%s%s,\"config\":%s}", head, s ? s : "null",
                           cfg->json ? cfg->json : "{}");
        sl_http_respond_body(req, 200, "application/json", body, (size_t)len);
        free(body);
        free(s);
    } else if (sl_slice_eq(req->path, "/healthz") || sl_slice_eq(req->path, "/readyz")) {
        static const char body[] = "{\"status\":\"ok\"}";
        sl_http_respond_body(req, 200, "application/json", body, sizeof body - 1);
    } else if (sl_slice_eq(req->path, "/metrics")) {
        char *text = NULL;
        size_t len = 0;
        if (sl_metrics_render(w->gw->metrics, &text, &len) != 0) {
            sl_http_respond_problem(req, 500, "could not render metrics");
            return;
        }
        sl_http_respond_body(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
        free(text);
    } else {
        sl_http_respond_problem(req, 404, "no such admin resource");
    }
}

static int worker_start(sl_worker *rw, int fd, void *data)
{
    px_gateway *gw = data;
    int idx = sl_worker_index(rw);
    px_worker *w = &gw->w[idx];
    w->gw = gw;
    w->rw = rw;
    w->index = idx;
    w->loop = sl_worker_loop(rw);
    int rc = sl_rand_seed_os(&w->rand);
    if (rc != 0) return rc;
    sl_idgen_init(&w->idgen, sl_clock_system(), NULL, NULL);
    sl_tracer_config tc;
    sl_tracer_config_init(&tc);
    tc.service = "gateway";
    tc.clock = sl_clock_system();
    tc.rand = &w->rand;
    tc.sample_ratio = gw->boot->sample_ratio;
    if ((rc = sl_tracer_new(&tc, &w->tracer)) != 0) return rc;
    if ((rc = adopt(w)) != 0 || !w->cur) return rc ? rc : SL_ESTATE;
    sl_http_callbacks cbs = {.on_headers = px_on_headers,
                             .on_request = px_on_request,
                             .on_response = px_on_response,
                             .data = w};
    if ((rc = sl_http_server_new(w->loop, &gw->boot->limits, &cbs, &w->http)) != 0) return rc;
    if ((rc = sl_http_server_listen_fd(w->http, fd)) != 0) return rc;
    if (idx == 0 && gw->admin_fd >= 0) {
        sl_http_limits al;
        sl_http_limits_default(&al);
        al.max_connections = 64;
        sl_http_callbacks acb = {.on_request = admin_request, .data = w};
        if ((rc = sl_http_server_new(w->loop, &al, &acb, &w->admin)) != 0) return rc;
        rc = sl_http_server_listen_fd(w->admin, gw->admin_fd);
        gw->admin_fd = -1;
        if (rc != 0) return rc;
    }
    uv_timer_init(w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, on_tick, 250, 250);
    px_jwks_init(w);
    uv_async_init(w->loop, &w->async, on_async);
    w->async.data = w;
    pthread_mutex_lock(&gw->mu);
    w->async_on = 1;
    pthread_mutex_unlock(&gw->mu);
    w->started = 1;
    return 0;
}

static void worker_drained(void *data)
{
    px_worker *w = data;
    sl_worker_drained(w->rw);
}

static void worker_drain(sl_worker *rw, void *data)
{
    px_gateway *gw = data;
    px_worker *w = &gw->w[sl_worker_index(rw)];
    atomic_store(&gw->stopping, 1);
    if (w->admin) {
        sl_http_server_close(w->admin, NULL, NULL);
        w->admin = NULL;
    }
    if (!w->http) {
        sl_worker_drained(rw);
        return;
    }
    sl_http_server_drain(w->http, worker_drained, w);
}

static void worker_stop(sl_worker *rw, void *data)
{
    px_gateway *gw = data;
    px_worker *w = &gw->w[sl_worker_index(rw)];
    pthread_mutex_lock(&gw->mu);
    int had_async = w->async_on;
    w->async_on = 0;
    pthread_mutex_unlock(&gw->mu);
    if (had_async) uv_close((uv_handle_t *)&w->async, NULL);
    if (w->admin) sl_http_server_close(w->admin, NULL, NULL);
    w->admin = NULL;
    if (w->http) sl_http_server_close(w->http, NULL, NULL);
    w->http = NULL;
    if (w->started) {
        uv_close((uv_handle_t *)&w->tick, NULL);
        px_jwks_close(w);
    }
    px_gen *pending = atomic_exchange(&w->mailbox, NULL);
    px_gen_unref(pending);
    if (w->cur) {
        px_wgen *cur = w->cur;
        /* Requests still in flight keep their reference; the pools close after the last. */
        px_wgen_unref(cur);
    }
    w->started = 0;
    w->cur = NULL;
}

/* ---- main thread ------------------------------------------------------------------------------
 */

static void count_reload(px_gateway *gw, const char *result)
{
    const char *labels[] = {result};
    sl_series *s = sl_metric_series(gw->reloads, labels);
    if (s) sl_counter_inc(s, 0);
}

/* Hands `g` (one reference per worker taken here) to every worker. Consumes the caller's ref. */
static void publish(px_gateway *gw, px_gen *g)
{
    for (int i = 0; i < gw->nworkers; i++) {
        px_worker *w = &gw->w[i];
        px_gen_ref(g);
        px_gen *old = atomic_exchange(&w->mailbox, g);
        px_gen_unref(old);
        pthread_mutex_lock(&gw->mu);
        if (w->async_on) uv_async_send(&w->async);
        pthread_mutex_unlock(&gw->mu);
    }
    px_gen *old = atomic_exchange(&gw->current, g);
    px_gen_unref(old);
}

static void on_reload(void *data)
{
    px_gateway *gw = data;
    char err[PX_ERR_MAX] = "";
    px_config *cfg = NULL;
    int rc = px_config_load(gw->config_path, gw->envp, &cfg, err);
    if (rc != 0) {
        SL_LOG_ERROR(gw->log, NULL, "configuration rejected; the previous one keeps serving",
                     SL_LOG_STR("error", err), SL_LOG_STR("file", gw->config_path));
        count_reload(gw, "rejected");
        return;
    }
    const px_config *b = gw->boot;
    if (cfg->port != gw->port || strcmp(cfg->host, b->host) != 0 || cfg->workers != b->workers ||
        cfg->admin_port != b->admin_port || strcmp(cfg->admin_host, b->admin_host) != 0)
        SL_LOG_WARN(
            gw->log, NULL,
            "listener, workers and admin settings change only on restart; kept as they were");
    uint64_t id = atomic_fetch_add(&gw->next_id, 1);
    px_gen *g = px_gen_new(cfg, gw->nworkers, id);
    if (!g) {
        SL_LOG_ERROR(gw->log, NULL, "configuration reload failed: out of memory");
        count_reload(gw, "failed");
        return;
    }
    publish(gw, g);
    count_reload(gw, "applied");
    SL_LOG_INFO(gw->log, NULL, "configuration reloaded", SL_LOG_INT("generation", (int64_t)id),
                SL_LOG_STR("file", gw->config_path));
}

static void on_bound(int port, void *data)
{
    px_gateway *gw = data;
    gw->port = port;
    SL_LOG_INFO(gw->log, NULL, "listening", SL_LOG_STR("host", gw->boot->host),
                SL_LOG_INT("port", port), SL_LOG_INT("workers", gw->nworkers),
                SL_LOG_INT("admin_port", gw->admin_port));
}

static int setup_metrics(px_gateway *gw)
{
    static const char *const req_labels[] = {"service", "method", "status"};
    static const char *const dur_labels[] = {"service", "method"};
    static const char *const scope[] = {"scope"};
    static const char *const reason[] = {"reason"};
    static const char *const result[] = {"result"};
    int rc = sl_metrics_new((unsigned)gw->nworkers, &gw->metrics);
    if (rc == 0)
        rc = sl_metrics_counter(gw->metrics, "service_requests_total",
                                "HTTP requests answered, by method and status.", req_labels, 3,
                                &gw->req_total);
    if (rc == 0)
        rc = sl_metrics_histogram(gw->metrics, "service_request_duration_seconds",
                                  "Time from the first byte of a request to its response.",
                                  dur_labels, 2, NULL, 0, &gw->req_duration);
    if (rc == 0)
        rc = sl_metrics_gauge(gw->metrics, "http_server_connections", "Open client connections.",
                              NULL, 0, &gw->connections);
    if (rc == 0)
        rc = sl_metrics_counter(gw->metrics, "gateway_rate_limited_total",
                                "Requests refused with 429, by limit.", scope, 1, &gw->rejected);
    if (rc == 0)
        rc = sl_metrics_counter(gw->metrics, "gateway_auth_failures_total",
                                "Requests refused with 401, by reason.", reason, 1, &gw->auth_fail);
    if (rc == 0)
        rc = sl_metrics_counter(gw->metrics, "gateway_config_reloads_total",
                                "Configuration reloads, by result.", result, 1, &gw->reloads);
    return rc;
}

int px_gateway_run(const char *config_path, char *const *envp, int workers_flag, int port_flag)
{
    px_gateway gw;
    memset(&gw, 0, sizeof gw);
    gw.admin_fd = -1;
    gw.config_path = config_path;
    gw.envp = envp;
    pthread_mutex_init(&gw.mu, NULL);
    atomic_init(&gw.next_id, 1);
    int status = 2;
    char err[PX_ERR_MAX] = "";
    px_config *cfg = NULL;
    if (px_config_load(config_path, envp, &cfg, err) != 0) {
        fprintf(stderr, "shoal-proxy: configuration: %s\n", err);
        return 2;
    }
    if (workers_flag > 0) cfg->workers = workers_flag;
    if (port_flag >= 0) cfg->port = port_flag;
    status = 1;
    if (sl_logger_new("gateway", (sl_log_level)cfg->log_level, NULL, NULL, sl_clock_system(),
                      &gw.log) != 0) {
        px_config_free(cfg);
        return 1;
    }
    gw.nworkers = cfg->workers;
    gw.port = cfg->port;
    gw.boot = cfg;
    px_gen *g = NULL;
    gw.w = calloc((size_t)gw.nworkers, sizeof *gw.w);
    if (!gw.w || setup_metrics(&gw) != 0) goto out;
    if (!cfg->have_identity_key)
        SL_LOG_WARN(gw.log, NULL,
                    "no identity key: services will not trust the identities this gateway forwards",
                    SL_LOG_STR("reason", cfg->identity_note));
    if (cfg->admin_port > 0) {
        int rc = sl_listen_socket(cfg->admin_host, cfg->admin_port, &gw.admin_fd, &gw.admin_port);
        if (rc != 0) {
            SL_LOG_ERROR(gw.log, NULL, "cannot bind the admin listener",
                         SL_LOG_STR("host", cfg->admin_host), SL_LOG_INT("port", cfg->admin_port),
                         SL_LOG_STR("error", sl_strerror(rc)));
            goto out;
        }
    }
    /* The first generation keeps its own copy of the configuration: boot stays for the listener. */
    px_config *first = NULL;
    if (px_config_load(config_path, envp, &first, err) != 0) goto out;
    g = px_gen_new(first, gw.nworkers, atomic_fetch_add(&gw.next_id, 1));
    if (!g) goto out;
    atomic_store(&gw.current, NULL);
    publish(&gw, g);
    sl_runtime_config rc = {.workers = gw.nworkers,
                            .host = cfg->host,
                            .port = cfg->port,
                            .drain_timeout_ms = cfg->drain_ms};
    sl_worker_hooks hooks = {.start = worker_start,
                             .drain = worker_drain,
                             .stop = worker_stop,
                             .reload = on_reload,
                             .bound = on_bound,
                             .data = &gw};
    int err2 = sl_runtime_run(&rc, &hooks);
    if (err2 != 0) {
        SL_LOG_ERROR(gw.log, NULL, "stopped with an error", SL_LOG_STR("error", sl_strerror(err2)),
                     SL_LOG_INT("port", cfg->port));
        goto out;
    }
    SL_LOG_INFO(gw.log, NULL, "stopped");
    status = 0;
out:
    if (gw.admin_fd >= 0) close(gw.admin_fd);
    px_gen_unref(atomic_exchange(&gw.current, NULL));
    if (gw.w) {
        for (int i = 0; i < gw.nworkers; i++) {
            px_gen_unref(atomic_exchange(&gw.w[i].mailbox, NULL));
            sl_tracer_free(gw.w[i].tracer);
            while (gw.w[i].free_reqs) {
                px_req *r = gw.w[i].free_reqs;
                gw.w[i].free_reqs = r->next;
                free(r);
            }
        }
    }
    free(gw.w);
    sl_metrics_free(gw.metrics);
    sl_logger_free(gw.log);
    px_config_free(cfg);
    pthread_mutex_destroy(&gw.mu);
    return status;
}
