/*
 * shoal-proxy's lifecycle: worker start/drain/stop on the runtime (loop.h,
 * with the host plumbing shared with the service host, serve.h),
 * configuration reload on SIGHUP, the admin listener, and the periodic
 * publication of each worker's cluster state.
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

#include "admin_services.h"
#include "cluster.h"
#include "forward.h"
#include "generation.h"
#include "gwconfig.h"
#include "jwks.h"
#include "request.h"
#include "sidecar.h"

#include <shoal/json.h>
#include <shoal/serve.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REQ_FREE_MAX 1024

typedef struct gateway gateway;

/* A worker: what the request pipeline reads (first member), plus the lifecycle's own. */
typedef struct gw_worker {
    px_worker px;
    gateway *gw;
    sl_http_server *admin;
    uv_async_t async;
    int async_on;
    _Atomic(px_gen *) mailbox; /* a new generation for this worker (owned reference) */
    uv_timer_t tick;
    px_sc_listener sc[1 + PX_OUTBOUND_MAX]; /* sidecar role: [0] inbound, [1 + i] outbound i */
} gw_worker;

struct gateway {
    px_proc proc;
    sl_metric_family *reloads;
    gw_worker *w;
    int nworkers;
    _Atomic(px_gen *) current;
    atomic_ullong next_id;
    const char *config_path;
    char *const *envp;
    px_config *boot; /* listener settings fixed at start (the first generation's config) */
    sl_otlp_exporter *exporter; /* telemetry.otlp_endpoint at start; NULL: export off */
    int admin_fd, admin_port;
    int port;
    int sidecar;                     /* the sidecar role (sidecar.h) */
    char name[SL_TLS_NAME_MAX + 16]; /* "gateway", or "<service>-sidecar": logs, metrics, spans */
    int out_fd[PX_OUTBOUND_MAX];     /* sidecar: the outbound listeners' sockets until adopted */
    pthread_mutex_t mu; /* guards every worker's async_on against uv_async_send after close */
};

/* ---- worker side ------------------------------------------------------------------------------
 */

/* Adopts the generation waiting in the mailbox, if any. */
static int adopt(gw_worker *w)
{
    px_gen *g = atomic_exchange(&w->mailbox, NULL);
    if (!g) return 0;
    px_wgen *wg = NULL;
    uint64_t id = g->id;
    px_wgen_env env = {.loop = w->px.loop,
                       .rand = &w->px.sw.rand,
                       .metrics = w->gw->proc.metrics,
                       .log = w->gw->proc.log,
                       .tracer = w->px.sw.tracer,
                       .worker = w->px.sw.index};
    int rc = px_wgen_new(g, &env, &wg);
    if (rc != 0) {
        SL_LOG_ERROR(w->gw->proc.log, NULL,
                     "could not apply the configuration on a worker; it keeps the previous one",
                     SL_LOG_INT("worker", w->px.sw.index), SL_LOG_INT("generation", (int64_t)id),
                     SL_LOG_STR("error", sl_strerror(rc)));
        return rc;
    }
    px_wgen *old = w->px.cur;
    w->px.cur = wg;
    /* A reloaded certificate serves new connections; open ones keep theirs. */
    if (w->gw->sidecar && w->px.sw.http)
        sl_http_server_set_tls(w->px.sw.http, g->cfg->sidecar.tls_server);
    if (old) px_wgen_unref(old);
    if (old && w->px.sw.index == 0)
        SL_LOG_INFO(w->gw->proc.log, NULL, "configuration generation active",
                    SL_LOG_INT("generation", (int64_t)id));
    return 0;
}

static void on_async(uv_async_t *a)
{
    (void)adopt(a->data);
}

static void on_tick(uv_timer_t *t)
{
    gw_worker *w = t->data;
    px_wgen *cur = w->px.cur;
    for (size_t i = 0; i < cur->gen->cfg->nclusters; i++)
        px_wcluster_publish(&cur->clusters[i]);
    atomic_store(&w->gw->proc.connections[w->px.sw.index],
                 w->px.sw.http ? sl_http_server_connections(w->px.sw.http) : 0);
}

/* PUT /admin/clusters/{name}/split: the live weights of a cluster's version subsets (until the
 * next reload, which applies the file's). */
static void admin_split(sl_http_req *req, px_gen *cur, sl_slice name, sl_logger *log)
{
    if (req->method != SL_HTTP_PUT) {
        sl_http_header h = {SL_SLICE_LIT("Allow"), SL_SLICE_LIT("PUT")};
        sl_http_respond(req, 405, &h, 1, NULL, 0);
        return;
    }
    const px_config *cfg = cur->cfg;
    int ci = -1;
    for (size_t i = 0; i < cfg->nclusters && ci < 0; i++)
        if (sl_slice_eq(name, cfg->clusters[i].name)) ci = (int)i;
    if (ci < 0) {
        sl_http_respond_problem(req, 404, "no such cluster");
        return;
    }
    char err[256];
    int st = px_board_set_split(&cur->board, cfg, (size_t)ci, req->body.ptr, req->body.len, err);
    if (st != 0) {
        sl_http_respond_problem(req, st, err);
        return;
    }
    const px_cluster_cfg *cc = &cfg->clusters[ci];
    char split[PX_SUBSETS_MAX * (PX_SUBSET_NAME_MAX + 12)] = "";
    for (size_t k = 0, n = 0; k < cc->nsubsets && n < sizeof split; k++)
        n += (size_t)snprintf(split + n, sizeof split - n, "%s%s=%u", k ? "," : "",
                              cc->subset_names[k],
                              atomic_load(&cur->board.weights[(size_t)ci * PX_SUBSETS_MAX + k]));
    SL_LOG_INFO(log, NULL, "split changed", SL_LOG_STR("cluster", cc->name),
                SL_LOG_STR("split", split));
    size_t len = 0;
    char *doc = px_admin_clusters_doc(cfg, &cur->board, cur->id, &len);
    if (!doc) {
        sl_http_respond_problem(req, 500, "out of memory");
        return;
    }
    sl_http_respond_body(req, 200, "application/json", doc, len);
    free(doc);
}

static void admin_request(sl_http_req *req, void *data)
{
    gw_worker *w = data;
    px_gen *cur = w->px.cur->gen;
    static const char prefix[] = "/admin/clusters/", suffix[] = "/split";
    sl_slice p = req->path;
    if (p.len > sizeof prefix - 1 + sizeof suffix - 1 &&
        memcmp(p.ptr, prefix, sizeof prefix - 1) == 0 &&
        memcmp(p.ptr + p.len - (sizeof suffix - 1), suffix, sizeof suffix - 1) == 0) {
        admin_split(req, cur,
                    (sl_slice){p.ptr + sizeof prefix - 1,
                               p.len - (sizeof prefix - 1) - (sizeof suffix - 1)},
                    w->gw->proc.log);
        return;
    }
    if (req->method != SL_HTTP_GET && req->method != SL_HTTP_HEAD) {
        sl_http_header h = {SL_SLICE_LIT("Allow"), SL_SLICE_LIT("GET, HEAD")};
        sl_http_respond(req, 405, &h, 1, NULL, 0);
        return;
    }
    if (sl_slice_eq(req->path, "/admin/clusters")) {
        size_t len = 0;
        char *doc = px_admin_clusters_doc(cur->cfg, &cur->board, cur->id, &len);
        if (!doc) {
            sl_http_respond_problem(req, 500, "out of memory");
            return;
        }
        sl_http_respond_body(req, 200, "application/json", doc, len);
        free(doc);
    } else if (sl_slice_eq(req->path, "/admin/config")) {
        const px_config *cfg = cur->cfg;
        char head[128];
        int n = snprintf(head, sizeof head,
                         "{\"generation\":%llu,\"source\":", (unsigned long long)cur->id);
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
        /* Metrics only here, never on the public port: they describe the shop's traffic. */
        px_proc *proc = &w->gw->proc;
        double conns = 0;
        for (int i = 0; i < proc->nworkers; i++)
            conns += (double)atomic_load(&proc->connections[i]);
        sl_series *s = sl_metric_series(proc->fam.connections, NULL);
        if (s) sl_gauge_set(s, conns);
        char *text = NULL;
        size_t len = 0;
        if (sl_metrics_render(w->gw->proc.metrics, &text, &len) != 0) {
            sl_http_respond_problem(req, 500, "could not render metrics");
            return;
        }
        sl_http_respond_body(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
        free(text);
    } else {
        sl_http_respond_problem(req, 404, "no such admin resource");
    }
}

/* The sidecar's TLS on the inbound server and its plain loopback outbound servers (one worker). */
static int sidecar_listen(gateway *gw, gw_worker *w)
{
    const px_sidecar_cfg *sc = &w->px.cur->gen->cfg->sidecar;
    sl_http_server_set_tls(w->px.sw.http, sc->tls_server);
    for (size_t i = 0; i < gw->boot->sidecar.noutbound; i++) {
        px_sc_listener *l = &w->sc[1 + i];
        *l = (px_sc_listener){.w = &w->px, .route = (int)(1 + i)};
        sl_http_callbacks cbs = {.on_headers = px_sidecar_on_headers,
                                 .on_request = px_sidecar_on_request,
                                 .on_response = px_sidecar_on_response,
                                 .data = l};
        int rc = sl_http_server_new(w->px.loop, &gw->boot->limits, &cbs, &l->srv);
        if (rc == 0) rc = sl_http_server_listen_fd(l->srv, gw->out_fd[i]);
        gw->out_fd[i] = -1;
        if (rc != 0) return rc;
    }
    return 0;
}

/* At drain: the outbound listeners stop accepting and let their calls in flight finish (the
 * worker's drain waits for the inbound server only; worker_stop closes what is left). */
static void sidecar_drain(gw_worker *w)
{
    for (size_t i = 1; i < SL_ARRAY_LEN(w->sc); i++)
        if (w->sc[i].srv) sl_http_server_drain(w->sc[i].srv, NULL, NULL);
}

static void sidecar_close(gw_worker *w)
{
    for (size_t i = 1; i < SL_ARRAY_LEN(w->sc); i++)
        if (w->sc[i].srv) {
            sl_http_server_close(w->sc[i].srv, NULL, NULL);
            w->sc[i].srv = NULL;
        }
}


static int worker_start(sl_worker *rw, int fd, void *data)
{
    gateway *gw = data;
    int idx = sl_worker_index(rw);
    SL_ASSERT(idx >= 0 && idx < gw->nworkers);
    gw_worker *w = &gw->w[idx];
    w->gw = gw;
    w->px.proc = &gw->proc;
    w->px.loop = sl_worker_loop(rw);
    sl_serve_worker_config sc = {.service = gw->name,
                                 .sample_ratio = gw->boot->sample_ratio,
                                 .buffer_spans = gw->boot->telemetry.queue_spans,
                                 .keep_errors = gw->boot->telemetry.endpoint[0] != '\0',
                                 .keep_slow_ns = (int64_t)gw->boot->telemetry.slow_ms * 1000000,
                                 .record_off = gw->exporter == NULL,
                                 .families = &gw->proc.fam,
                                 .record_size = sizeof(px_req),
                                 .records_max = REQ_FREE_MAX};
    int rc = sl_serve_worker_init(&w->px.sw, rw, &sc);
    if (rc == 0 && gw->exporter) rc = sl_otlp_exporter_add(gw->exporter, w->px.sw.tracer);
    if (rc != 0) return rc;
    if ((rc = adopt(w)) != 0 || !w->px.cur) return rc ? rc : SL_ESTATE;
    sl_http_callbacks cbs = {.on_headers = px_on_headers,
                             .on_request = px_on_request,
                             .on_response = px_on_response,
                             .data = &w->px};
    if (gw->sidecar) {
        w->sc[0] = (px_sc_listener){.w = &w->px, .route = 0};
        cbs = (sl_http_callbacks){.on_headers = px_sidecar_on_headers,
                                  .on_request = px_sidecar_on_request,
                                  .on_response = px_sidecar_on_response,
                                  .data = &w->sc[0]};
    }
    if ((rc = sl_serve_worker_listen(&w->px.sw, fd, &gw->boot->limits, &cbs)) != 0) return rc;
    if (gw->sidecar && (rc = sidecar_listen(gw, w)) != 0) return rc;
    if (idx == 0 && gw->admin_fd >= 0) {
        sl_http_limits al;
        sl_http_limits_default(&al);
        al.max_connections = 64;
        sl_http_callbacks acb = {.on_request = admin_request, .data = w};
        if ((rc = sl_http_server_new(w->px.loop, &al, &acb, &w->admin)) != 0) return rc;
        rc = sl_http_server_listen_fd(w->admin, gw->admin_fd);
        gw->admin_fd = -1;
        if (rc != 0) return rc;
    }
    if (idx == 0 && !gw->sidecar) /* a sidecar does not poll the services for the admin view */
        atomic_store(&gw->proc.scraper,
                     px_scraper_start(w->px.loop, &w->px.sw.rand, w->px.cur->gen->cfg));
    uv_timer_init(w->px.loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, on_tick, 250, 250);
    px_jwks_hooks hooks = {.resume = px_resume, .abandon = px_abandon};
    px_jwks_init(&w->px.jwks, w->px.loop, gw->proc.log, idx, &w->px.cur, &hooks);
    px_revoke_init(&w->px.revoke, w->px.loop, gw->proc.log, &w->px.cur);
    uv_async_init(w->px.loop, &w->async, on_async);
    w->async.data = w;
    pthread_mutex_lock(&gw->mu);
    w->async_on = 1;
    pthread_mutex_unlock(&gw->mu);
    w->px.started = 1;
    return 0;
}

static void worker_drain(sl_worker *rw, void *data)
{
    gateway *gw = data;
    gw_worker *w = &gw->w[sl_worker_index(rw)];
    atomic_store(&gw->proc.stopping, 1);
    if (w->admin) {
        sl_http_server_close(w->admin, NULL, NULL);
        w->admin = NULL;
    }
    sidecar_drain(w);
    sl_serve_worker_drain(&w->px.sw);
}

static void worker_stop(sl_worker *rw, void *data)
{
    gateway *gw = data;
    gw_worker *w = &gw->w[sl_worker_index(rw)];
    pthread_mutex_lock(&gw->mu);
    int had_async = w->async_on;
    w->async_on = 0;
    pthread_mutex_unlock(&gw->mu);
    if (had_async) uv_close((uv_handle_t *)&w->async, NULL);
    if (w->admin) sl_http_server_close(w->admin, NULL, NULL);
    w->admin = NULL;
    sidecar_close(w);
    if (w->px.sw.index == 0) px_scraper_stop(atomic_exchange(&gw->proc.scraper, NULL));
    sl_serve_worker_stop(&w->px.sw);
    if (w->px.started) {
        uv_close((uv_handle_t *)&w->tick, NULL);
        px_jwks_close(&w->px.jwks);
        px_revoke_close(&w->px.revoke);
    }
    px_gen *pending = atomic_exchange(&w->mailbox, NULL);
    px_gen_unref(pending);
    if (w->px.cur) {
        /* Requests still in flight keep their reference; the pools close after the last. */
        px_wgen_unref(w->px.cur);
    }
    w->px.started = 0;
    w->px.cur = NULL;
}

/* ---- main thread ------------------------------------------------------------------------------
 */

static void count_reload(gateway *gw, const char *result)
{
    const char *labels[] = {result};
    sl_series *s = sl_metric_series(gw->reloads, labels);
    if (s) sl_counter_inc(s, 0);
}

/* Hands `g` (one reference per worker taken here) to every worker. Consumes the caller's ref. */
static void publish(gateway *gw, px_gen *g)
{
    for (int i = 0; i < gw->nworkers; i++) {
        gw_worker *w = &gw->w[i];
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

/* The new configuration's sidecar must keep the listeners (fixed at start); its certificates are
 * loaded again. Returns 0 or an SL_E code (logged). */
static int sidecar_reload(gateway *gw, px_config *cfg)
{
    const px_sidecar_cfg *b = &gw->boot->sidecar, *n = &cfg->sidecar;
    int same = n->on && n->noutbound == b->noutbound;
    for (size_t i = 0; same && i < b->noutbound; i++)
        same = n->outbound[i].port == b->outbound[i].port &&
               strcmp(cfg->clusters[n->outbound[i].cluster].name,
                      gw->boot->clusters[b->outbound[i].cluster].name) == 0;
    if (!same) {
        SL_LOG_ERROR(gw->proc.log, NULL,
                     "configuration rejected: the sidecar section and its outbound listeners "
                     "change only on restart; the previous one keeps serving",
                     SL_LOG_STR("file", gw->config_path));
        return SL_ECONFIG;
    }
    char err[256] = "";
    px_gen *cur = atomic_load(&gw->current);
    int rc = px_sidecar_load_tls(cfg, cur ? cur->cfg : NULL, gw->proc.metrics, gw->proc.log, err,
                                 sizeof err);
    if (rc != 0)
        SL_LOG_ERROR(gw->proc.log, NULL,
                     "certificates not reloaded; the previous ones keep serving",
                     SL_LOG_STR("error", err));
    return rc;
}

static void on_reload(void *data)
{
    gateway *gw = data;
    char err[PX_ERR_MAX] = "";
    px_config *cfg = NULL;
    int rc = px_config_load(gw->config_path, gw->envp, &cfg, err);
    if (rc != 0) {
        SL_LOG_ERROR(gw->proc.log, NULL, "configuration rejected; the previous one keeps serving",
                     SL_LOG_STR("error", err), SL_LOG_STR("file", gw->config_path));
        count_reload(gw, "rejected");
        return;
    }
    const px_config *b = gw->boot;
    if (gw->sidecar && sidecar_reload(gw, cfg) != 0) {
        px_config_free(cfg);
        count_reload(gw, "rejected");
        return;
    }
    if (gw->sidecar) cfg->workers = 1;
    if (cfg->port != gw->port || strcmp(cfg->host, b->host) != 0 || cfg->workers != b->workers ||
        cfg->admin_port != b->admin_port || strcmp(cfg->admin_host, b->admin_host) != 0)
        SL_LOG_WARN(
            gw->proc.log, NULL,
            "listener, workers and admin settings change only on restart; kept as they were");
    if (cfg->static_note[0]) SL_LOG_WARN(gw->proc.log, NULL, cfg->static_note);
    uint64_t id = atomic_fetch_add(&gw->next_id, 1);
    px_gen *g = px_gen_new(cfg, gw->nworkers, id);
    if (!g) {
        SL_LOG_ERROR(gw->proc.log, NULL, "configuration reload failed: out of memory");
        count_reload(gw, "failed");
        return;
    }
    publish(gw, g);
    count_reload(gw, "applied");
    SL_LOG_INFO(gw->proc.log, NULL, "configuration reloaded", SL_LOG_INT("generation", (int64_t)id),
                SL_LOG_STR("file", gw->config_path));
}

static void on_bound(int port, void *data)
{
    gateway *gw = data;
    gw->port = port;
    SL_LOG_INFO(gw->proc.log, NULL, "listening", SL_LOG_STR("host", gw->boot->host),
                SL_LOG_INT("port", port), SL_LOG_INT("workers", gw->nworkers),
                SL_LOG_INT("admin_port", gw->admin_port));
}

static int setup_metrics(gateway *gw)
{
    static const char *const scope[] = {"scope"};
    static const char *const reason[] = {"reason"};
    static const char *const result[] = {"result"};
    static const char *const peers[] = {"caller", "callee"};
    /* One shard per worker, and the last for the span exporter's thread. */
    int rc = sl_metrics_new((unsigned)gw->nworkers + 1, &gw->proc.metrics);
    if (rc == 0) rc = sl_serve_families_register(gw->proc.metrics, &gw->proc.fam);
    if (rc == 0)
        rc = sl_metrics_counter(gw->proc.metrics, "gateway_rate_limited_total",
                                "Requests refused with 429, by limit.", scope, 1,
                                &gw->proc.rejected);
    if (rc == 0)
        rc = sl_metrics_counter(gw->proc.metrics, "gateway_auth_failures_total",
                                "Requests refused with 401, by reason.", reason, 1,
                                &gw->proc.auth_fail);
    if (rc == 0)
        rc = sl_metrics_counter(gw->proc.metrics, "gateway_config_reloads_total",
                                "Configuration reloads, by result.", result, 1, &gw->reloads);
    if (rc == 0)
        rc = sl_metrics_counter(gw->proc.metrics, "mesh_policy_denied_total",
                                "Calls the sidecar refused by its authorization policy.", peers, 2,
                                &gw->proc.denied);
    static const char *const sub_req[] = {"cluster", "version", "class"};
    /* finer than the default buckets below 5 ms: a rollout compares p99s there */
    static const double sub_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5,     10};
    if (rc == 0)
        rc = sl_metrics_counter(gw->proc.metrics, "gateway_subset_requests_total",
                                "Calls to a cluster's version subsets, by answer class (2xx, 3xx, "
                                "4xx, 5xx, error).",
                                sub_req, 3, &gw->proc.subset_req);
    if (rc == 0)
        rc = sl_metrics_histogram(gw->proc.metrics, "gateway_subset_request_duration_seconds",
                                  "Duration of calls to a cluster's version subsets.", sub_req, 2,
                                  sub_bounds, SL_ARRAY_LEN(sub_bounds), &gw->proc.subset_dur);
    return rc;
}

/* At start: the certificates and the outbound listeners' sockets. */
static int sidecar_boot(gateway *gw, px_config *first)
{
    char err[256] = "";
    int rc = px_sidecar_load_tls(first, NULL, gw->proc.metrics, gw->proc.log, err, sizeof err);
    if (rc != 0) {
        SL_LOG_ERROR(gw->proc.log, NULL, "cannot load the certificates", SL_LOG_STR("error", err));
        return rc;
    }
    const px_sidecar_cfg *sc = &gw->boot->sidecar;
    for (size_t i = 0; i < sc->noutbound; i++) {
        const char *name = gw->boot->clusters[sc->outbound[i].cluster].name;
        int port = 0;
        rc = sl_listen_socket("127.0.0.1", sc->outbound[i].port, &gw->out_fd[i], &port);
        if (rc != 0) {
            SL_LOG_ERROR(gw->proc.log, NULL, "cannot bind an outbound listener",
                         SL_LOG_STR("cluster", name), SL_LOG_INT("port", sc->outbound[i].port),
                         SL_LOG_STR("error", sl_strerror(rc)));
            return rc;
        }
        SL_LOG_INFO(gw->proc.log, NULL, "outbound listening", SL_LOG_STR("cluster", name),
                    SL_LOG_STR("host", "127.0.0.1"), SL_LOG_INT("port", port));
    }
    SL_LOG_INFO(gw->proc.log, NULL, "sidecar", SL_LOG_STR("identity", sc->service),
                SL_LOG_STR("local", gw->boot->clusters[sc->local_cluster].name),
                SL_LOG_INT("rules", (int64_t)first->sidecar.policy.n));
    return 0;
}

/* The span exporter (telemetry.otlp_endpoint set at start; a reload does not change it). */
static int setup_exporter(gateway *gw)
{
    const sl_otlp_settings *t = &gw->boot->telemetry;
    if (!t->endpoint[0]) return 0;
    char instance[128], hostname[64] = "localhost";
    gethostname(hostname, sizeof hostname - 1);
    snprintf(instance, sizeof instance, "%s:%ld", hostname, (long)getpid());
    sl_otlp_config oc;
    sl_otlp_config_init(&oc);
    oc.endpoint = t->endpoint;
    oc.resource = (sl_otlp_resource){
        .service_name = gw->name, .service_version = t->service_version, .instance_id = instance};
    oc.batch_max = t->batch_max;
    oc.flush_ms = t->flush_ms;
    oc.timeout_ms = t->export_timeout_ms;
    oc.max_tracers = (uint32_t)gw->nworkers;
    oc.metrics = gw->proc.metrics;
    oc.shard = (unsigned)gw->nworkers;
    int rc = sl_otlp_exporter_new(&oc, &gw->exporter);
    if (rc == 0) rc = sl_otlp_exporter_start(gw->exporter);
    if (rc != 0)
        SL_LOG_ERROR(gw->proc.log, NULL, "cannot start the span exporter",
                     SL_LOG_STR("error", sl_strerror(rc)));
    else
        SL_LOG_INFO(gw->proc.log, NULL, "exporting spans", SL_LOG_STR("endpoint", t->endpoint));
    return rc;
}

int px_gateway_run(const char *config_path, char *const *envp, int workers_flag, int port_flag,
                   int sidecar)
{
    gateway gw;
    memset(&gw, 0, sizeof gw);
    gw.admin_fd = -1;
    gw.sidecar = sidecar;
    for (size_t i = 0; i < PX_OUTBOUND_MAX; i++)
        gw.out_fd[i] = -1;
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
    if (cfg->sidecar.on != (sidecar != 0)) {
        fprintf(stderr, "shoal-proxy: configuration: %s\n",
                sidecar ? "--role sidecar needs a sidecar section"
                        : "a sidecar section needs --role sidecar");
        px_config_free(cfg);
        return 2;
    }
    if (workers_flag > 0) cfg->workers = workers_flag;
    if (port_flag >= 0) cfg->port = port_flag;
    /* A sidecar serves one instance: one loop thread, so that its outbound listeners and its
     * pools are one set and its memory stays small. */
    if (sidecar) cfg->workers = 1;
    status = 1;
    snprintf(gw.name, sizeof gw.name, "%s%s", sidecar ? cfg->sidecar.service : "gateway",
             sidecar ? "-sidecar" : "");
    if (sl_logger_new(gw.name, (sl_log_level)cfg->log_level, NULL, NULL, sl_clock_system(),
                      &gw.proc.log) != 0) {
        px_config_free(cfg);
        return 1;
    }
    gw.nworkers = cfg->workers;
    gw.port = cfg->port;
    gw.boot = cfg;
    px_gen *g = NULL;
    gw.proc.nworkers = gw.nworkers;
    gw.w = calloc((size_t)gw.nworkers, sizeof *gw.w);
    gw.proc.connections = calloc((size_t)gw.nworkers, sizeof *gw.proc.connections);
    if (!gw.w || !gw.proc.connections || setup_metrics(&gw) != 0 || setup_exporter(&gw) != 0)
        goto out;
    if (!sidecar && !cfg->have_identity_key)
        SL_LOG_WARN(gw.proc.log, NULL,
                    "no identity key: services will not trust the identities this gateway forwards",
                    SL_LOG_STR("reason", cfg->identity_note));
    if (cfg->admin_port > 0) {
        int rc = sl_listen_socket(cfg->admin_host, cfg->admin_port, &gw.admin_fd, &gw.admin_port);
        if (rc != 0) {
            SL_LOG_ERROR(gw.proc.log, NULL, "cannot bind the admin listener",
                         SL_LOG_STR("host", cfg->admin_host), SL_LOG_INT("port", cfg->admin_port),
                         SL_LOG_STR("error", sl_strerror(rc)));
            goto out;
        }
    }
    /* The first generation keeps its own copy of the configuration: boot stays for the listener. */
    px_config *first = NULL;
    if (px_config_load(config_path, envp, &first, err) != 0) goto out;
    if (first->static_note[0]) SL_LOG_WARN(gw.proc.log, NULL, first->static_note);
    if (sidecar && sidecar_boot(&gw, first) != 0) {
        px_config_free(first);
        goto out;
    }
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
    sl_otlp_exporter_stop(gw.exporter); /* the last spans leave while the tracers exist */
    if (err2 != 0) {
        SL_LOG_ERROR(gw.proc.log, NULL, "stopped with an error",
                     SL_LOG_STR("error", sl_strerror(err2)), SL_LOG_INT("port", cfg->port));
        goto out;
    }
    SL_LOG_INFO(gw.proc.log, NULL, "stopped");
    status = 0;
out:
    sl_otlp_exporter_free(gw.exporter);
    if (gw.admin_fd >= 0) close(gw.admin_fd);
    for (size_t i = 0; i < PX_OUTBOUND_MAX; i++)
        if (gw.out_fd[i] >= 0) close(gw.out_fd[i]);
    px_gen_unref(atomic_exchange(&gw.current, NULL));
    if (gw.w) {
        for (int i = 0; i < gw.nworkers; i++) {
            px_gen_unref(atomic_exchange(&gw.w[i].mailbox, NULL));
            sl_serve_worker_free(&gw.w[i].px.sw);
        }
    }
    free(gw.w);
    free(gw.proc.connections);
    sl_metrics_free(gw.proc.metrics);
    sl_logger_free(gw.proc.log);
    px_config_free(cfg);
    pthread_mutex_destroy(&gw.mu);
    return status;
}
