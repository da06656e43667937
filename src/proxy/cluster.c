/*
 * Clusters on one worker: the upstream (pool + resilience policies from the
 * HTTP client) plus the gateway's endpoint choice installed as the client's
 * balancer — round robin or least request with two random choices, over the
 * endpoints that are healthy (active checks) and not ejected (passive
 * outlier detection: consecutive 5xx/timeouts or connect failures eject an
 * endpoint for base_ejection_ms × its ejection count, at most
 * max_ejection_pct of the cluster at once). When no endpoint qualifies, all
 * are used ("panic"), so a wrong health signal cannot take a cluster down.
 *
 * Active health checks run on worker 0 only and publish one shared healthy
 * flag per endpoint in the generation (atomics); each worker publishes its
 * breaker state and counters for /admin/clusters the same way.
 */
#include "cluster.h"

#include <shoal/json.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t now_ms(const px_wcluster *c)
{
    return (int64_t)uv_now(c->env.loop);
}

static int ep_usable(const px_wcluster *c, size_t i, int64_t now)
{
    const px_board *g = c->env.board;
    if (!atomic_load_explicit(&g->healthy[g->ep_off[c->idx] + i], memory_order_relaxed)) return 0;
    return c->eps[i].ejected_until_ms <= now;
}

/* Which subsets have an endpoint to send to on this worker. */
static void subsets_usable(const px_wcluster *c, unsigned char *usable)
{
    int64_t now = now_ms(c);
    memset(usable, 0, PX_SUBSETS_MAX);
    for (size_t i = 0; i < c->cfg->nendpoints; i++)
        if (c->cfg->ep_subset[i] >= 0 && ep_usable(c, i, now)) usable[c->cfg->ep_subset[i]] = 1;
}

static int choose_subset(px_wcluster *c, bool canary, const char *user, size_t ulen)
{
    uint32_t w[PX_SUBSETS_MAX];
    unsigned char usable[PX_SUBSETS_MAX];
    const px_board *g = c->env.board;
    for (size_t s = 0; s < c->cfg->nsubsets; s++)
        w[s] = atomic_load_explicit(&g->weights[(size_t)c->idx * PX_SUBSETS_MAX + s],
                                    memory_order_relaxed);
    subsets_usable(c, usable);
    px_subset_input in = {.n = c->cfg->nsubsets,
                          .weights = w,
                          .usable = usable,
                          .canary = c->cfg->canary,
                          .canary_header = canary,
                          .sticky = c->cfg->sticky,
                          .user_id = user,
                          .user_id_len = ulen,
                          .random = sl_rand_next(c->env.rand)};
    return px_subset_choose(&in);
}

sl_upstream *px_wcluster_choose(px_wcluster *c, bool canary_header, const char *user_id,
                                size_t user_id_len, int *subset)
{
    if (!c->cfg->nsubsets) {
        *subset = -1;
        return c->up;
    }
    *subset = choose_subset(c, canary_header, user_id, user_id_len);
    return c->sub_up[*subset];
}

/* The endpoint within `only` (a subset, or -1: the whole cluster); an index into the cluster's. */
static size_t pick_among(px_wcluster *c, int only, uint32_t *rr)
{
    size_t n = c->cfg->nendpoints;
    int64_t now = now_ms(c);
    size_t cand[SL_UPSTREAM_ENDPOINTS_MAX], nc = 0;
    for (size_t i = 0; i < n; i++)
        if ((only < 0 || c->cfg->ep_subset[i] == only) && ep_usable(c, i, now)) cand[nc++] = i;
    if (nc == 0) /* panic: every endpoint is suspect, so none is preferred */
        for (size_t i = 0; i < n; i++)
            if (only < 0 || c->cfg->ep_subset[i] == only) cand[nc++] = i;
    size_t pick;
    if (c->cfg->lb == PX_LB_LEAST_REQUEST && nc > 1) {
        /* Power of two choices: two distinct random candidates, the less loaded wins. */
        size_t a = (size_t)sl_rand_below(c->env.rand, nc);
        size_t b = (size_t)sl_rand_below(c->env.rand, nc - 1);
        if (b >= a) b++;
        pick = c->eps[cand[b]].in_flight < c->eps[cand[a]].in_flight ? cand[b] : cand[a];
    } else {
        pick = cand[(*rr)++ % nc];
    }
    c->eps[pick].in_flight++;
    c->eps[pick].requests++;
    return pick;
}

static int lb_pick(void *data, uint32_t attempt)
{
    SL_ASSERT(data);
    (void)attempt;
    px_wcluster *c = data;
    /* The cluster's own upstream (aggregates' parts) follows the split by its random draw. */
    int only = c->cfg->nsubsets ? choose_subset(c, false, NULL, 0) : -1;
    return (int)pick_among(c, only, &c->rr);
}

/* A subset's upstream: its endpoint indexes are the subset's, mapped to the cluster's. */
static int lb_pick_sub(void *data, uint32_t attempt)
{
    (void)attempt;
    px_subset_ctx *x = data;
    px_wcluster *c = x->c;
    size_t g = pick_among(c, x->s, &c->sub_rr[x->s]);
    for (size_t k = 0; k < c->cfg->nsub_eps[x->s]; k++)
        if (c->cfg->sub_idx[x->s][k] == g) return (int)k;
    return 0; /* not reached: g is in the subset */
}

static void eject(px_wcluster *c, size_t i, const char *why)
{
    size_t n = c->cfg->nendpoints, ejected = 0;
    int64_t now = now_ms(c);
    for (size_t k = 0; k < n; k++)
        ejected += c->eps[k].ejected_until_ms > now;
    size_t max = n * c->cfg->out_max_pct / 100;
    if (max == 0 && c->cfg->out_max_pct > 0) max = 1;
    if (ejected >= max) return;
    px_ep_state *e = &c->eps[i];
    uint32_t mult = e->ejections < 10 ? e->ejections + 1 : 10;
    e->ejections++;
    e->ejected_until_ms = now + (int64_t)c->cfg->out_base_ms * mult;
    e->c5xx = e->cconn = 0;
    SL_LOG_WARN(c->env.log, NULL, "endpoint ejected", SL_LOG_STR("cluster", c->cfg->name),
                SL_LOG_STR("endpoint", c->cfg->endpoints[i]), SL_LOG_STR("reason", why),
                SL_LOG_INT("for_ms", (int64_t)c->cfg->out_base_ms * mult),
                SL_LOG_INT("worker", c->env.worker));
}

static void lb_report(void *data, size_t index, const sl_outcome *o);

static void lb_report_sub(void *data, size_t index, const sl_outcome *o)
{
    px_subset_ctx *x = data;
    if (index >= x->c->cfg->nsub_eps[x->s]) return;
    lb_report(x->c, x->c->cfg->sub_idx[x->s][index], o);
}

static void lb_report(void *data, size_t index, const sl_outcome *o)
{
    px_wcluster *c = data;
    if (index >= c->cfg->nendpoints) return;
    px_ep_state *e = &c->eps[index];
    if (e->in_flight) e->in_flight--;
    if (!o) return;
    if (o->kind == SL_OUTCOME_CONNECT_ERROR) {
        e->failures++;
        e->cconn++;
        if (c->cfg->out_connect && e->cconn >= c->cfg->out_connect)
            eject(c, index, "consecutive connect failures");
    } else if (o->kind != SL_OUTCOME_RESPONSE || o->status >= 500) {
        e->failures++;
        e->c5xx++;
        if (c->cfg->out_5xx && e->c5xx >= c->cfg->out_5xx)
            eject(c, index, "consecutive 5xx or timeouts");
    } else {
        e->c5xx = e->cconn = 0;
        if (e->ejected_until_ms && e->ejected_until_ms <= now_ms(c)) {
            e->ejected_until_ms = 0;
            e->ejections = 0;
        }
    }
}

/* ---- active health checks ------------------------------------------------------------------ */

static void hc_result(sl_http_handle *call, const sl_http_result *res, void *data);

typedef struct hc_ctx {
    px_wcluster *c;
    size_t i;
} hc_ctx;

static void hc_tick(uv_timer_t *t)
{
    px_wcluster *c = t->data;
    for (size_t i = 0; i < c->cfg->nendpoints; i++) {
        if (c->hc_busy[i] || !c->hc[i]) continue;
        hc_ctx *ctx = malloc(sizeof *ctx);
        if (!ctx) return;
        *ctx = (hc_ctx){c, i};
        sl_http_request rq = {.method = SL_HTTP_GET,
                              .target = {c->cfg->hc_path, strlen(c->cfg->hc_path)}};
        sl_http_call_opts o = {.timeout_ms = c->cfg->hc_timeout_ms};
        if (sl_http_call(c->hc[i], &rq, &o, hc_result, ctx, NULL) != 0) {
            free(ctx);
            continue;
        }
        c->hc_busy[i] = 1;
    }
}

static void hc_result(sl_http_handle *call, const sl_http_result *res, void *data)
{
    (void)call;
    hc_ctx *ctx = data;
    px_wcluster *c = ctx->c;
    size_t i = ctx->i;
    free(ctx);
    c->hc_busy[i] = 0;
    if (res->kind == SL_HTTP_RESULT_CANCELED) return;
    px_board *g = c->env.board;
    _Atomic unsigned char *flag = &g->healthy[g->ep_off[c->idx] + i];
    int ok = res->kind == SL_HTTP_RESULT_OK && res->response->status >= 200 &&
             res->response->status < 300;
    if (ok) {
        c->hc_fail[i] = 0;
        if (++c->hc_ok[i] >= c->cfg->hc_healthy && !atomic_load(flag)) {
            atomic_store(flag, 1);
            SL_LOG_INFO(c->env.log, NULL, "endpoint healthy", SL_LOG_STR("cluster", c->cfg->name),
                        SL_LOG_STR("endpoint", c->cfg->endpoints[i]));
        }
    } else {
        c->hc_ok[i] = 0;
        if (++c->hc_fail[i] >= c->cfg->hc_unhealthy && atomic_load(flag)) {
            atomic_store(flag, 0);
            SL_LOG_WARN(c->env.log, NULL, "endpoint unhealthy", SL_LOG_STR("cluster", c->cfg->name),
                        SL_LOG_STR("endpoint", c->cfg->endpoints[i]),
                        SL_LOG_STR("result", sl_http_result_kind_name(res->kind)));
        }
    }
}

static int hc_init(px_wcluster *c)
{
    size_t n = c->cfg->nendpoints;
    c->hc = calloc(n, sizeof *c->hc);
    c->hc_ok = calloc(n, sizeof *c->hc_ok);
    c->hc_fail = calloc(n, sizeof *c->hc_fail);
    c->hc_busy = calloc(n, 1);
    c->hc_timer = malloc(sizeof *c->hc_timer);
    if (!c->hc || !c->hc_ok || !c->hc_fail || !c->hc_busy || !c->hc_timer) return SL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        sl_upstream_config u;
        sl_upstream_config_default(&u);
        char name[SL_UPSTREAM_NAME_MAX + 1];
        snprintf(name, sizeof name, "%.50s-health", c->cfg->name);
        u.name = name;
        u.endpoints = (const char *const *)&c->cfg->endpoints[i];
        u.nendpoints = 1;
        u.policies = false;
        u.max_connections = 1;
        u.max_idle = 1;
        u.connect_timeout_ms = c->cfg->hc_timeout_ms;
        u.timeout_ms = c->cfg->hc_timeout_ms;
        u.retry.per_try_timeout_ms = 0;
        sl_upstream_env env = {.loop = c->env.loop, .rand = c->env.rand};
        int rc = sl_upstream_new(&u, &env, &c->hc[i]);
        if (rc != 0) return rc;
    }
    uv_timer_init(c->env.loop, c->hc_timer);
    c->hc_timer->data = c;
    uv_timer_start(c->hc_timer, hc_tick, 0, c->cfg->hc_interval_ms);
    return 0;
}

/* ---- the board ------------------------------------------------------------------------------ */

int px_board_init(px_board *b, const px_config *cfg, int nworkers)
{
    SL_ASSERT(b && cfg && nworkers >= 1);
    memset(b, 0, sizeof *b);
    b->nworkers = nworkers;
    for (size_t i = 0; i < cfg->nclusters; i++) {
        b->ep_off[i] = b->total_eps;
        b->total_eps += cfg->clusters[i].nendpoints;
    }
    size_t eps = b->total_eps ? b->total_eps : 1, ncl = cfg->nclusters ? cfg->nclusters : 1;
    b->healthy = calloc(eps, sizeof *b->healthy);
    b->pub = calloc(ncl * (size_t)nworkers, sizeof *b->pub);
    b->pub_ep = calloc(eps * (size_t)nworkers, sizeof *b->pub_ep);
    b->weights = calloc(ncl * PX_SUBSETS_MAX, sizeof *b->weights);
    if (!b->healthy || !b->pub || !b->pub_ep || !b->weights) return SL_ENOMEM;
    for (size_t i = 0; i < b->total_eps; i++)
        atomic_init(&b->healthy[i], 1);
    for (size_t i = 0; i < cfg->nclusters; i++)
        for (size_t s = 0; s < cfg->clusters[i].nsubsets; s++)
            atomic_init(&b->weights[i * PX_SUBSETS_MAX + s], cfg->clusters[i].subset_weights[s]);
    return 0;
}

void px_board_deinit(px_board *b)
{
    free(b->healthy);
    free(b->pub);
    free(b->pub_ep);
    free(b->weights);
    b->weights = NULL;
    b->healthy = NULL;
    b->pub = NULL;
    b->pub_ep = NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

int px_wcluster_init(px_wcluster *c, const px_cluster_env *env, const px_config *cfg, int idx)
{
    SL_ASSERT(c && env && env->board && env->pending && env->closed && cfg);
    SL_ASSERT(idx >= 0 && (size_t)idx < cfg->nclusters);
    c->env = *env;
    c->idx = idx;
    c->cfg = &cfg->clusters[idx];
    sl_upstream_env ue = {.loop = env->loop,
                          .rand = env->rand,
                          .metrics = env->metrics,
                          .shard = (unsigned)env->worker,
                          .log = env->log,
                          .tracer = env->tracer};
    int rc = sl_upstream_new(&c->cfg->up, &ue, &c->up);
    if (rc != 0) return rc;
    sl_upstream_balancer b = {.pick = lb_pick, .report = lb_report, .data = c};
    sl_upstream_set_balancer(c->up, &b);
    for (size_t s = 0; s < c->cfg->nsubsets; s++) {
        sl_upstream_config u = c->cfg->up;
        char name[SL_UPSTREAM_NAME_MAX + 1];
        snprintf(name, sizeof name, "%.40s@%s", c->cfg->name, c->cfg->subset_names[s]);
        u.name = name;
        u.endpoints = c->cfg->sub_eps[s];
        u.nendpoints = c->cfg->nsub_eps[s];
        if ((rc = sl_upstream_new(&u, &ue, &c->sub_up[s])) != 0) return rc;
        c->sub_ctx[s] = (px_subset_ctx){c, (int)s};
        sl_upstream_balancer sb = {
            .pick = lb_pick_sub, .report = lb_report_sub, .data = &c->sub_ctx[s]};
        sl_upstream_set_balancer(c->sub_up[s], &sb);
    }
    if (c->cfg->hc_path && env->worker == 0) return hc_init(c);
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    px_wcluster *c = h->data;
    free(h);
    c->env.closed(c->env.closed_data);
}

void px_wcluster_close(px_wcluster *c)
{
    const px_cluster_env *env = &c->env;
    if (c->up) {
        (*env->pending)++;
        sl_upstream_close(c->up, env->closed, env->closed_data);
        c->up = NULL;
    }
    for (size_t s = 0; s < PX_SUBSETS_MAX; s++) {
        if (!c->sub_up[s]) continue;
        (*env->pending)++;
        sl_upstream_close(c->sub_up[s], env->closed, env->closed_data);
        c->sub_up[s] = NULL;
    }
    for (size_t i = 0; c->hc && i < c->cfg->nendpoints; i++) {
        if (!c->hc[i]) continue;
        (*env->pending)++;
        sl_upstream_close(c->hc[i], env->closed, env->closed_data);
        c->hc[i] = NULL;
    }
    if (c->hc_timer) {
        if (uv_is_active((uv_handle_t *)c->hc_timer) || c->hc_timer->loop) {
            (*env->pending)++;
            uv_close((uv_handle_t *)c->hc_timer, timer_closed);
        } else {
            free(c->hc_timer);
        }
        c->hc_timer = NULL;
    }
}

void px_wcluster_free_arrays(px_wcluster *c)
{
    free(c->hc);
    free(c->hc_ok);
    free(c->hc_fail);
    free(c->hc_busy);
    c->hc = NULL;
}

void px_wcluster_publish(px_wcluster *c)
{
    if (!c->up) return;
    px_board *g = c->env.board;
    int w = c->env.worker;
    px_pub_cluster *pc = &g->pub[(size_t)c->idx * (size_t)g->nworkers + (size_t)w];
    sl_upstream_stats st;
    sl_upstream_stats_get(c->up, &st);
    atomic_store(&pc->breaker, (int)sl_breaker_state_peek(sl_upstream_breaker(c->up)));
    atomic_store(&pc->requests, st.requests);
    atomic_store(&pc->retries, st.retries);
    atomic_store(&pc->breaker_rejections, st.breaker_rejections);
    atomic_store(&pc->bulkhead_rejections, st.bulkhead_rejections);
    int64_t now = now_ms(c);
    for (size_t i = 0; i < c->cfg->nendpoints; i++) {
        px_pub_ep *pe = &g->pub_ep[(size_t)w * g->total_eps + g->ep_off[c->idx] + i];
        atomic_store(&pe->ejected, c->eps[i].ejected_until_ms > now);
        atomic_store(&pe->in_flight, c->eps[i].in_flight);
        atomic_store(&pe->requests, c->eps[i].requests);
        atomic_store(&pe->failures, c->eps[i].failures);
    }
}

/* ---- /admin/clusters ------------------------------------------------------------------------ */

static json_t *cluster_doc(const px_config *cfg, const px_board *g, size_t ci)
{
    const px_cluster_cfg *cc = &cfg->clusters[ci];
    json_t *o = json_object(), *workers = json_array(), *eps = json_array();
    const char *worst = "closed";
    for (int w = 0; w < g->nworkers; w++) {
        px_pub_cluster *pc = &g->pub[ci * (size_t)g->nworkers + (size_t)w];
        int st = atomic_load(&pc->breaker);
        const char *name = sl_breaker_state_name((sl_breaker_state)st);
        if (st == SL_BREAKER_OPEN || (st == SL_BREAKER_HALF_OPEN && strcmp(worst, "open") != 0))
            worst = name;
        json_array_append_new(
            workers,
            json_pack("{s:i,s:s,s:I,s:I,s:I,s:I}", "worker", w, "breaker", name, "requests",
                      (json_int_t)atomic_load(&pc->requests), "retries",
                      (json_int_t)atomic_load(&pc->retries), "breaker_rejections",
                      (json_int_t)atomic_load(&pc->breaker_rejections), "bulkhead_rejections",
                      (json_int_t)atomic_load(&pc->bulkhead_rejections)));
    }
    for (size_t i = 0; i < cc->nendpoints; i++) {
        unsigned long long req = 0, fail = 0;
        unsigned inflight = 0;
        int ejected = 0;
        for (int w = 0; w < g->nworkers; w++) {
            px_pub_ep *pe = &g->pub_ep[(size_t)w * g->total_eps + g->ep_off[ci] + i];
            req += atomic_load(&pe->requests);
            fail += atomic_load(&pe->failures);
            inflight += atomic_load(&pe->in_flight);
            ejected += atomic_load(&pe->ejected);
        }
        int healthy = atomic_load(&g->healthy[g->ep_off[ci] + i]);
        json_array_append_new(eps, json_pack("{s:s,s:s,s:b,s:i,s:i,s:I,s:I}", "address",
                                             cc->endpoints[i], "health",
                                             !healthy  ? "unhealthy"
                                             : ejected ? "ejected"
                                                       : "healthy",
                                             "active_check_healthy", healthy, "ejected_on_workers",
                                             ejected, "in_flight", (int)inflight, "requests",
                                             (json_int_t)req, "failures", (json_int_t)fail));
    }
    if (cc->nsubsets) {
        json_t *subs = json_array();
        for (size_t k = 0; k < cc->nsubsets; k++) {
            size_t neps = 0;
            for (size_t i = 0; i < cc->nendpoints; i++)
                neps += cc->ep_subset[i] == (int)k;
            json_array_append_new(
                subs, json_pack("{s:s,s:I,s:I,s:i,s:b}", "subset", cc->subset_names[k], "weight",
                                (json_int_t)atomic_load(&g->weights[ci * PX_SUBSETS_MAX + k]),
                                "configured_weight", (json_int_t)cc->subset_weights[k], "endpoints",
                                (int)neps, "canary", cc->canary == (int)k));
        }
        json_object_set_new(o, "split", subs);
        json_object_set_new(o, "sticky", json_boolean(cc->sticky));
        for (size_t i = 0; i < cc->nendpoints; i++)
            json_object_set_new(json_array_get(eps, i), "version",
                                json_string(cc->subset_names[cc->ep_subset[i]]));
    }
    json_object_set_new(o, "name", json_string(cc->name));
    json_object_set_new(
        o, "lb", json_string(cc->lb == PX_LB_LEAST_REQUEST ? "least_request" : "round_robin"));
    json_object_set_new(o, "breaker", json_string(worst));
    json_object_set_new(o, "workers", workers);
    json_object_set_new(o, "endpoints", eps);
    return o;
}

int px_board_set_split(px_board *b, const px_config *cfg, size_t ci, const char *body, size_t len,
                       char *err)
{
    SL_ASSERT(b && cfg && ci < cfg->nclusters && err);
    const px_cluster_cfg *cc = &cfg->clusters[ci];
    if (!cc->nsubsets) {
        snprintf(err, 256, "cluster %s has no version subsets", cc->name);
        return 404;
    }
    json_error_t je;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    json_t *split = doc ? json_object_get(doc, "split") : NULL;
    if (!doc || !json_is_object(doc)) {
        snprintf(err, 256, "the body must be a JSON object");
        json_decref(doc);
        return 400;
    }
    if (json_object_size(doc) != 1 || !json_is_array(split) || json_array_size(split) == 0 ||
        json_array_size(split) > PX_SUBSETS_MAX) {
        snprintf(err, 256, "split: must be the only member, an array of 1 to %d entries",
                 PX_SUBSETS_MAX);
        json_decref(doc);
        return 422;
    }
    uint32_t w[PX_SUBSETS_MAX] = {0};
    unsigned char seen[PX_SUBSETS_MAX] = {0};
    uint64_t total = 0;
    int status = 0;
    for (size_t i = 0; i < json_array_size(split) && !status; i++) {
        json_t *e = json_array_get(split, i), *name = json_object_get(e, "subset"),
               *weight = json_object_get(e, "weight");
        int s = json_is_string(name)
                    ? px_cluster_subset(cc, json_string_value(name), json_string_length(name))
                    : -1;
        if (!json_is_object(e) || json_object_size(e) != 2 || !json_is_string(name) ||
            !json_is_integer(weight)) {
            snprintf(err, 256, "split[%zu]: must be {\"subset\": name, \"weight\": integer}", i);
            status = 422;
        } else if (s < 0) {
            snprintf(err, 256, "split[%zu].subset: cluster %s has no such subset", i, cc->name);
            status = 422;
        } else if (seen[s]) {
            snprintf(err, 256, "split[%zu].subset: named twice", i);
            status = 422;
        } else if (json_integer_value(weight) < 0 ||
                   json_integer_value(weight) > PX_SUBSET_WEIGHT_MAX) {
            snprintf(err, 256, "split[%zu].weight: must be 0 to %d", i, PX_SUBSET_WEIGHT_MAX);
            status = 422;
        } else {
            seen[s] = 1;
            w[s] = (uint32_t)json_integer_value(weight);
            total += w[s];
        }
    }
    json_decref(doc);
    if (!status && total == 0) {
        snprintf(err, 256, "split: the weights must not all be 0");
        status = 422;
    }
    if (status) return status;
    for (size_t s = 0; s < cc->nsubsets; s++)
        atomic_store(&b->weights[ci * PX_SUBSETS_MAX + s], w[s]);
    return 0;
}

char *px_admin_clusters_doc(const px_config *cfg, const px_board *b, uint64_t generation,
                            size_t *len)
{
    json_t *root = json_object(), *arr = json_array();
    for (size_t i = 0; i < cfg->nclusters; i++)
        json_array_append_new(arr, cluster_doc(cfg, b, i));
    json_object_set_new(root, "generation", json_integer((json_int_t)generation));
    json_object_set_new(root, "clusters", arr);
    char *s = sl_json_dump(root, len);
    json_decref(root);
    return s;
}
