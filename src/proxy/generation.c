/*
 * Generations and their per-worker instances (generation.h). A px_wgen's
 * closing is counted: one for each upstream and handle its clusters close,
 * plus one held while the closes are being started, so it is freed exactly
 * once, after the last of them.
 */
#include "generation.h"

#include <stdlib.h>

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
    SL_ASSERT(cfg && nworkers >= 1);
    px_gen *g = calloc(1, sizeof *g);
    if (!g) {
        px_config_free(cfg);
        return NULL;
    }
    atomic_init(&g->refs, 1);
    g->id = id;
    g->cfg = cfg;
    if (px_board_init(&g->board, cfg, nworkers) != 0) {
        px_board_deinit(&g->board);
        free(g);
        px_config_free(cfg);
        return NULL;
    }
    pthread_mutex_init(&g->rl_mu, NULL);
    g->route_rl = calloc(cfg->routes.n ? cfg->routes.n : 1, sizeof *g->route_rl);
    sl_rand rnd;
    if (!g->route_rl || sl_rand_seed_os(&rnd) != 0) goto fail;
    if (cfg->client_rate &&
        limiter(&rnd, cfg->client_rate, cfg->client_burst, cfg->rl_max_keys, &g->client_rl) != 0)
        goto fail;
    for (size_t i = 0; i < cfg->routes.n; i++)
        if (cfg->routes.items[i].rate &&
            limiter(&rnd, cfg->routes.items[i].rate, cfg->routes.items[i].burst, cfg->rl_max_keys,
                    &g->route_rl[i]) != 0)
            goto fail;
    return g;
fail:
    px_gen_unref(g); /* refs is 1: frees the limiters made so far and cfg */
    return NULL;
}

void px_gen_ref(px_gen *g)
{
    SL_ASSERT(atomic_load(&g->refs) > 0);
    atomic_fetch_add(&g->refs, 1);
}

void px_gen_unref(px_gen *g)
{
    if (!g) return;
    int before = atomic_fetch_sub(&g->refs, 1);
    SL_ASSERT(before > 0);
    if (before != 1) return;
    sl_ratelimit_free(g->client_rl);
    for (size_t i = 0; g->route_rl && g->cfg && i < g->cfg->routes.n; i++)
        sl_ratelimit_free(g->route_rl[i]);
    free(g->route_rl);
    pthread_mutex_destroy(&g->rl_mu);
    px_config_free(g->cfg);
    px_board_deinit(&g->board);
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

/* Close callback of a wgen's upstreams and handles (data = the px_wgen). */
static void closed_one(void *data)
{
    px_wgen *wg = data;
    SL_ASSERT(wg->closing && wg->closing_pending > 0);
    if (--wg->closing_pending == 0) wgen_free(wg);
}

static void wgen_close(px_wgen *wg)
{
    wg->closing = 1;
    wg->closing_pending = 1; /* held until every close below has been started */
    for (size_t i = 0; wg->clusters && i < wg->gen->cfg->nclusters; i++)
        px_wcluster_close(&wg->clusters[i]);
    closed_one(wg);
}

px_wgen *px_wgen_hold(px_wgen *wg)
{
    SL_ASSERT(wg && !wg->closing && wg->refs > 0);
    wg->refs++;
    return wg;
}

void px_wgen_unref(px_wgen *wg)
{
    SL_ASSERT(wg->refs > 0);
    if (--wg->refs == 0) wgen_close(wg);
}

int px_wgen_new(px_gen *g, const px_wgen_env *env, px_wgen **out)
{
    SL_ASSERT(g && env && out);
    const px_config *cfg = g->cfg;
    px_wgen *wg = calloc(1, sizeof *wg);
    if (!wg) {
        px_gen_unref(g);
        return SL_ENOMEM;
    }
    wg->gen = g;
    wg->refs = 1;
    int rc = 0;
    wg->clusters = calloc(cfg->nclusters ? cfg->nclusters : 1, sizeof *wg->clusters);
    if (!wg->clusters) rc = SL_ENOMEM;
    px_cluster_env ce = {.loop = env->loop,
                         .rand = env->rand,
                         .metrics = env->metrics,
                         .log = env->log,
                         .tracer = env->tracer,
                         .worker = env->worker,
                         .board = &g->board,
                         .pending = &wg->closing_pending,
                         .closed = closed_one,
                         .closed_data = wg};
    for (size_t i = 0; rc == 0 && i < cfg->nclusters; i++)
        rc = px_wcluster_init(&wg->clusters[i], &ce, cfg, (int)i);
    if (rc != 0) {
        wg->refs = 0;
        wgen_close(wg);
        return rc;
    }
    *out = wg;
    return 0;
}
