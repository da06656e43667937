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
 * (sl_jwks_parse rejects the whole document). With auth.jwks.pin_kid, only
 * the pinned key ids are kept from a document; the others are ignored (and
 * logged when their number changes, not on every refresh). Loop thread only.
 */
#include "jwks.h"

#include <stdlib.h>
#include <string.h>

#define JWKS_TICK_MS    1000
#define JWKS_TIMEOUT_MS 5000

#define PX_SIG_CACHE_ENTRIES 4096 /* verified token signatures per worker (auth.h) */

static const px_config *cur_cfg(const px_jwks *j)
{
    return (*j->cur)->gen->cfg;
}

/* Empties the queue, handing each waiter to `hook` (resume or abandon) in arrival order. */
static void release_waiters(px_jwks *j, void (*hook)(px_waiter *wt))
{
    px_waiter *list = j->waiters;
    j->waiters = j->waiters_tail = NULL;
    j->nwaiters = 0;
    while (list) {
        px_waiter *wt = list;
        list = wt->next;
        wt->next = NULL;
        hook(wt);
    }
}

/*
 * Keeps only the pinned kids of `ks` (consumed) in *out. Returns 0, or an error with *out NULL.
 * A document that carries none of the pinned keys yields an empty set: every token is refused.
 */
static int pin_keys(const px_config *cfg, sl_keyset *ks, sl_keyset **out, size_t *ignored)
{
    *out = NULL;
    *ignored = 0;
    if (cfg->njwks_pins == 0) {
        *out = ks;
        return 0;
    }
    sl_keyset *kept = NULL;
    int rc = sl_keyset_new(&kept);
    size_t n = 0;
    for (size_t i = 0; rc == 0 && i < cfg->njwks_pins; i++) {
        const sl_auth_key *k = sl_keyset_find(ks, cfg->jwks_pins[i], strlen(cfg->jwks_pins[i]));
        if (k && (rc = sl_keyset_add(kept, k)) == 0) n++;
    }
    *ignored = sl_keyset_count(ks) - n;
    sl_keyset_free(ks);
    if (rc != 0) {
        sl_keyset_free(kept);
        return rc;
    }
    *out = kept;
    return 0;
}

static void on_jwks(sl_http_handle *call, const sl_http_result *res, void *data)
{
    (void)call;
    px_jwks *j = data;
    px_wgen *wg = j->fetch_wg;
    j->fetch_wg = NULL;
    j->fetching = 0;
    int ok = 0;
    if (!j->open) { /* closed meanwhile: the cache is gone */
        px_wgen_unref(wg);
        return;
    }
    if (res->kind == SL_HTTP_RESULT_OK && res->response->status == 200) {
        sl_keyset *ks = NULL;
        sl_json_errors errs;
        sl_json_errors_init(&errs);
        size_t ignored = 0;
        int rc = sl_jwks_parse(res->response->body.ptr, res->response->body.len, &ks, &errs);
        if (rc == 0) rc = pin_keys(cur_cfg(j), ks, &ks, &ignored);
        if (rc == 0 && ignored != j->ignored_logged && ignored > 0)
            SL_LOG_WARN(j->log, NULL, "jwks keys not pinned by auth.jwks.pin_kid are ignored",
                        SL_LOG_INT("ignored", (int64_t)ignored),
                        SL_LOG_INT("kept", (int64_t)sl_keyset_count(ks)),
                        SL_LOG_INT("worker", j->worker));
        if (rc == 0) j->ignored_logged = ignored;
        if (rc == 0) {
            sl_keyset_free(j->ks);
            j->ks = ks;
            j->last_ok_ms = (int64_t)uv_now(j->loop);
            ok = 1;
            SL_LOG_DEBUG(j->log, NULL, "jwks loaded",
                         SL_LOG_INT("keys", (int64_t)sl_keyset_count(ks)),
                         SL_LOG_INT("worker", j->worker));
        } else {
            SL_LOG_WARN(j->log, NULL, "jwks rejected; keeping the previous key set",
                        SL_LOG_STR("error", errs.count ? errs.items[0].message : "parse error"));
        }
    } else {
        SL_LOG_WARN(j->log, NULL, "jwks fetch failed",
                    SL_LOG_STR("result", sl_http_result_kind_name(res->kind)),
                    SL_LOG_INT("status", res->response ? res->response->status : 0));
    }
    j->fetches++;
    if (!ok) j->failures++;
    release_waiters(j, j->hooks.resume);
    px_wgen_unref(wg);
}

static void fetch(px_jwks *j)
{
    const px_config *cfg = cur_cfg(j);
    if (j->fetching || cfg->jwks_cluster < 0) return;
    px_wgen *wg = px_wgen_hold(*j->cur);
    sl_http_request rq = {.method = SL_HTTP_GET,
                          .target = {cfg->jwks_path, strlen(cfg->jwks_path)}};
    sl_http_call_opts o = {.timeout_ms = JWKS_TIMEOUT_MS};
    j->last_fetch_ms = (int64_t)uv_now(j->loop);
    if (sl_http_call(wg->clusters[cfg->jwks_cluster].up, &rq, &o, on_jwks, j, NULL) != 0) {
        px_wgen_unref(wg);
        return;
    }
    j->fetch_wg = wg;
    j->fetching = 1;
}

void px_jwks_fetch(px_jwks *j)
{
    SL_ASSERT(j->open);
    int64_t now = (int64_t)uv_now(j->loop);
    /* Every early fetch is rate-limited; only the periodic timer bypasses the limit. */
    if (j->last_fetch_ms && now - j->last_fetch_ms < cur_cfg(j)->jwks_min_refetch_ms) return;
    fetch(j);
}

static void on_tick(uv_timer_t *t)
{
    px_jwks *j = t->data;
    const px_config *cfg = cur_cfg(j);
    int64_t now = (int64_t)uv_now(j->loop);
    int due = !j->ks
                  ? now - j->last_fetch_ms >= 1000 || !j->last_fetch_ms
                  : now - j->last_ok_ms >= cfg->jwks_refresh_ms && now - j->last_fetch_ms >= 1000;
    if (due) fetch(j);
}

void px_jwks_init(px_jwks *j, uv_loop_t *loop, sl_logger *log, int worker, px_wgen *const *cur,
                  const px_jwks_hooks *hooks)
{
    SL_ASSERT(j && loop && cur && *cur && hooks && hooks->resume && hooks->abandon);
    j->loop = loop;
    j->log = log;
    j->worker = worker;
    j->cur = cur;
    j->hooks = *hooks;
    /* A token is verified once per worker and cache slot, not once per request (auth.h). */
    if (sl_jwt_sig_cache_new(PX_SIG_CACHE_ENTRIES, &j->sig_cache) != 0) j->sig_cache = NULL;
    j->open = 1;
    uv_timer_init(loop, &j->refresh);
    j->refresh.data = j;
    uv_timer_start(&j->refresh, on_tick, 0, JWKS_TICK_MS);
}

int px_jwks_wait(px_jwks *j, px_waiter *wt)
{
    SL_ASSERT(j->open && j->fetching);
    if (j->nwaiters >= cur_cfg(j)->jwks_waiters_max) return SL_ELIMIT;
    wt->next = NULL;
    if (j->waiters_tail)
        j->waiters_tail->next = wt;
    else
        j->waiters = wt;
    j->waiters_tail = wt;
    j->nwaiters++;
    return 0;
}

void px_jwks_close(px_jwks *j)
{
    if (!j->open) return;
    j->open = 0;
    uv_close((uv_handle_t *)&j->refresh, NULL);
    release_waiters(j, j->hooks.abandon);
    sl_keyset_free(j->ks);
    j->ks = NULL;
    sl_jwt_sig_cache_free(j->sig_cache);
    j->sig_cache = NULL;
}
