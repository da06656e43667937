/*
 * The JWKS cache of one worker: the user service's key set, fetched through
 * the configured cluster (so with its pool, breaker and retries), refreshed
 * every refresh_ms, and refetched early when a token names a kid we do not
 * know — at most once per min_refetch_ms, so a client sending random kids
 * cannot make the gateway hammer the user service. Requests that met the
 * unknown kid wait for that fetch (a bounded queue) and are verified again
 * against the new set: a key rotation never produces a burst of 401s.
 *
 * A fetched document that fails to parse keeps the previous set
 * (sl_jwks_parse rejects the whole document). Loop thread only.
 */
#include "gateway.h"

#include <stdlib.h>
#include <string.h>

#define JWKS_TICK_MS    1000
#define JWKS_TIMEOUT_MS 5000

static const px_config *cur_cfg(px_worker *w)
{
    return w->cur->gen->cfg;
}

static void release_waiters(px_worker *w)
{
    px_req *list = w->jwks.waiters;
    w->jwks.waiters = w->jwks.waiters_tail = NULL;
    w->jwks.nwaiters = 0;
    while (list) {
        px_req *r = list;
        list = r->next;
        r->next = NULL;
        px_resume(r);
    }
}

static void on_jwks(sl_http_handle *call, const sl_http_result *res, void *data)
{
    (void)call;
    px_wgen *wg = data;
    px_worker *w = wg->w;
    w->jwks.fetching = 0;
    int ok = 0;
    if (!w->started) { /* stopped meanwhile: the cache is gone */
        px_wgen_unref(wg);
        return;
    }
    if (res->kind == SL_HTTP_RESULT_OK && res->response->status == 200) {
        sl_keyset *ks = NULL;
        sl_json_errors errs;
        sl_json_errors_init(&errs);
        if (sl_jwks_parse(res->response->body.ptr, res->response->body.len, &ks, &errs) == 0) {
            sl_keyset_free(w->jwks.ks);
            w->jwks.ks = ks;
            w->jwks.last_ok_ms = (int64_t)uv_now(w->loop);
            ok = 1;
            SL_LOG_DEBUG(w->gw->log, NULL, "jwks loaded",
                         SL_LOG_INT("keys", (int64_t)sl_keyset_count(ks)),
                         SL_LOG_INT("worker", w->index));
        } else {
            SL_LOG_WARN(w->gw->log, NULL, "jwks rejected; keeping the previous key set",
                        SL_LOG_STR("error", errs.count ? errs.items[0].message : "parse error"));
        }
    } else {
        SL_LOG_WARN(w->gw->log, NULL, "jwks fetch failed",
                    SL_LOG_STR("result", sl_http_result_kind_name(res->kind)),
                    SL_LOG_INT("status", res->response ? res->response->status : 0));
    }
    w->jwks.fetches++;
    if (!ok) w->jwks.failures++;
    release_waiters(w);
    px_wgen_unref(wg);
}

static void fetch(px_worker *w)
{
    const px_config *cfg = cur_cfg(w);
    if (w->jwks.fetching || cfg->jwks_cluster < 0) return;
    px_wgen *wg = px_wgen_current(w);
    sl_http_request rq = {.method = SL_HTTP_GET,
                          .target = {cfg->jwks_path, strlen(cfg->jwks_path)}};
    sl_http_call_opts o = {.timeout_ms = JWKS_TIMEOUT_MS};
    w->jwks.last_fetch_ms = (int64_t)uv_now(w->loop);
    if (sl_http_call(wg->clusters[cfg->jwks_cluster].up, &rq, &o, on_jwks, wg, NULL) != 0) {
        px_wgen_unref(wg);
        return;
    }
    w->jwks.fetching = 1;
}

void px_jwks_fetch(px_worker *w, int forced)
{
    (void)forced;
    int64_t now = (int64_t)uv_now(w->loop);
    /* Every early fetch is rate-limited; only the periodic timer bypasses the limit. */
    if (w->jwks.last_fetch_ms && now - w->jwks.last_fetch_ms < cur_cfg(w)->jwks_min_refetch_ms)
        return;
    fetch(w);
}

static void on_tick(uv_timer_t *t)
{
    px_worker *w = t->data;
    const px_config *cfg = cur_cfg(w);
    int64_t now = (int64_t)uv_now(w->loop);
    int due = !w->jwks.ks ? now - w->jwks.last_fetch_ms >= 1000 || !w->jwks.last_fetch_ms
                          : now - w->jwks.last_ok_ms >= cfg->jwks_refresh_ms &&
                                now - w->jwks.last_fetch_ms >= 1000;
    if (due) fetch(w);
}

void px_jwks_init(px_worker *w)
{
    uv_timer_init(w->loop, &w->jwks.refresh);
    w->jwks.refresh.data = w;
    uv_timer_start(&w->jwks.refresh, on_tick, 0, JWKS_TICK_MS);
}

int px_jwks_wait(px_worker *w, px_req *r)
{
    if (w->jwks.nwaiters >= cur_cfg(w)->jwks_waiters_max) return SL_ELIMIT;
    r->next = NULL;
    if (w->jwks.waiters_tail)
        w->jwks.waiters_tail->next = r;
    else
        w->jwks.waiters = r;
    w->jwks.waiters_tail = r;
    w->jwks.nwaiters++;
    return 0;
}

void px_jwks_close(px_worker *w)
{
    uv_close((uv_handle_t *)&w->jwks.refresh, NULL);
    px_req *list = w->jwks.waiters;
    w->jwks.waiters = w->jwks.waiters_tail = NULL;
    w->jwks.nwaiters = 0;
    while (list) {
        px_req *r = list;
        list = r->next;
        sl_http_respond_problem(r->req, 503, "the gateway is stopping");
    }
    sl_keyset_free(w->jwks.ks);
    w->jwks.ks = NULL;
}
