/*
 * Revoked sessions of one worker (revoke.h). The set is rebuilt without
 * expired entries whenever it would pass three quarters full, so it never
 * holds more than the sessions revoked within one access-token lifetime
 * (bounded further by PX_REVOKE_MAX: past it a revocation is dropped and
 * counted, and its tokens live until they expire, as before revocation
 * existed). Until the first successful poll nothing is known; requests are
 * served as before (the feed starts from 0, so the first poll brings every
 * revocation whose tokens may still be valid).
 */
#include "revoke.h"

#include <shoal/clock.h>
#include <shoal/identity.h>
#include <shoal/json.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REVOKE_TIMEOUT_MS 5000

static const px_config *cur_cfg(const px_revoke *rv)
{
    return (*rv->cur)->gen->cfg;
}

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static px_revoke_entry *find(const px_revoke *rv, const char *sid, size_t n)
{
    if (!rv->slots) return NULL;
    for (size_t i = hash(sid, n) & (rv->cap - 1);; i = (i + 1) & (rv->cap - 1)) {
        px_revoke_entry *e = &rv->slots[i];
        if (!e->sid[0]) return NULL;
        if (strlen(e->sid) == n && memcmp(e->sid, sid, n) == 0) return e;
    }
}

static void put(px_revoke_entry *slots, size_t cap, const char *sid, int64_t until)
{
    size_t n = strlen(sid);
    size_t i = hash(sid, n) & (cap - 1);
    while (slots[i].sid[0])
        i = (i + 1) & (cap - 1);
    memcpy(slots[i].sid, sid, n + 1);
    slots[i].until_ms = until;
}

/* Rebuilds into a table of `cap` slots keeping live entries. */
static int rebuild(px_revoke *rv, size_t cap, int64_t now_ms)
{
    px_revoke_entry *slots = calloc(cap, sizeof *slots);
    if (!slots) return SL_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < rv->cap; i++)
        if (rv->slots[i].sid[0] && rv->slots[i].until_ms > now_ms) {
            put(slots, cap, rv->slots[i].sid, rv->slots[i].until_ms);
            n++;
        }
    free(rv->slots);
    rv->slots = slots;
    rv->cap = cap;
    rv->n = n;
    return 0;
}

int px_revoke_add(px_revoke *rv, const char *sid, int64_t until_ms, int64_t now_ms)
{
    size_t n = strlen(sid);
    if (n == 0 || n > PX_SID_MAX) return SL_EINVAL;
    if (until_ms <= now_ms) return 0; /* its tokens have expired */
    px_revoke_entry *e = find(rv, sid, n);
    if (e) {
        if (until_ms > e->until_ms) e->until_ms = until_ms;
        return 0;
    }
    if ((rv->n + 1) * 4 > rv->cap * 3) {
        size_t live = 0;
        for (size_t i = 0; i < rv->cap; i++)
            live += rv->slots[i].sid[0] && rv->slots[i].until_ms > now_ms;
        if (live >= PX_REVOKE_MAX) return SL_ELIMIT;
        size_t cap = 64;
        while ((live + 1) * 2 > cap)
            cap *= 2;
        int rc = rebuild(rv, cap, now_ms);
        if (rc != 0) return rc;
    }
    put(rv->slots, rv->cap, sid, until_ms);
    rv->n++;
    return 0;
}

int px_revoke_has(const px_revoke *rv, const char *sid, size_t len, int64_t now_ms)
{
    if (len == 0 || len > PX_SID_MAX) return 0;
    const px_revoke_entry *e = find(rv, sid, len);
    return e && e->until_ms > now_ms;
}

/* ---- the poll ------------------------------------------------------------------------------ */

static void apply(px_revoke *rv, const char *body, size_t len)
{
    sl_json_limits lim = {.max_bytes = 4 * 1024 * 1024, .max_depth = 4};
    json_t *doc = NULL;
    if (sl_json_parse(body, len, &lim, &doc, NULL) != 0) {
        rv->failures++;
        return;
    }
    json_t *items = json_object_get(doc, "items");
    json_t *last = json_object_get(doc, "last");
    if (!json_is_array(items) || !json_is_integer(last) || json_integer_value(last) < rv->after) {
        rv->failures++;
        json_decref(doc);
        return;
    }
    int64_t now = sl_clock_wall_ms(sl_clock_system());
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *it = json_array_get(items, i);
        const char *sid = json_string_value(json_object_get(it, "sid"));
        json_t *until = json_object_get(it, "until_ms");
        if (!sid || !json_is_integer(until)) continue;
        int rc = px_revoke_add(rv, sid, json_integer_value(until), now);
        if (rc == SL_ELIMIT || rc == SL_ENOMEM) rv->dropped++;
    }
    rv->after = json_integer_value(last);
    rv->synced = 1;
    json_decref(doc);
}

static void on_feed(sl_http_handle *call, const sl_http_result *res, void *data)
{
    (void)call;
    px_revoke *rv = data;
    px_wgen *wg = rv->poll_wg;
    rv->poll_wg = NULL;
    rv->polling = 0;
    if (rv->open) {
        rv->polls++;
        if (res->kind == SL_HTTP_RESULT_OK && res->response->status == 200) {
            apply(rv, res->response->body.ptr, res->response->body.len);
        } else {
            rv->failures++;
            SL_LOG_DEBUG(rv->log, NULL, "revoked sessions poll failed",
                         SL_LOG_STR("result", sl_http_result_kind_name(res->kind)),
                         SL_LOG_INT("status", res->response ? res->response->status : 0));
        }
    }
    px_wgen_unref(wg);
}

static void on_tick(uv_timer_t *t)
{
    px_revoke *rv = t->data;
    const px_config *cfg = cur_cfg(rv);
    if (rv->polling || !cfg->revoke_path || cfg->jwks_cluster < 0) return;
    const sl_identity_edge *edge = cfg->clusters[cfg->jwks_cluster].identity_edge;
    if (!edge) return;
    char target[1100];
    int n =
        snprintf(target, sizeof target, "%s?after=%lld", cfg->revoke_path, (long long)rv->after);
    if (n <= 0 || (size_t)n >= sizeof target) return;
    char proof[SL_IDENTITY_PROOF_MAX];
    sl_http_header hs[SL_IDENTITY_NHEADERS];
    sl_identity_msg m = {
        .callee = edge->callee, .method = SL_HTTP_GET, .target = {target, (size_t)n}};
    if (sl_identity_headers(edge, "svc:gateway", "service", &m, sl_clock_wall_ms(sl_clock_system()),
                            proof, hs) != 0)
        return;
    px_wgen *wg = px_wgen_hold(*rv->cur);
    sl_http_request rq = {.method = SL_HTTP_GET,
                          .target = {target, (size_t)n},
                          .headers = hs,
                          .nheaders = SL_IDENTITY_NHEADERS};
    sl_http_call_opts o = {.timeout_ms = REVOKE_TIMEOUT_MS};
    if (sl_http_call(wg->clusters[cfg->jwks_cluster].up, &rq, &o, on_feed, rv, NULL) != 0) {
        px_wgen_unref(wg);
        return;
    }
    rv->poll_wg = wg;
    rv->polling = 1;
}

void px_revoke_init(px_revoke *rv, uv_loop_t *loop, sl_logger *log, px_wgen *const *cur)
{
    SL_ASSERT(rv && loop && cur && *cur);
    memset(rv, 0, sizeof *rv);
    rv->loop = loop;
    rv->log = log;
    rv->cur = cur;
    rv->open = 1;
    uv_timer_init(loop, &rv->timer);
    rv->timer.data = rv;
    uint32_t every = cur_cfg(rv)->revoke_poll_ms ? cur_cfg(rv)->revoke_poll_ms : 1000;
    uv_timer_start(&rv->timer, on_tick, 0, every);
}

void px_revoke_close(px_revoke *rv)
{
    if (!rv->open) return;
    rv->open = 0;
    uv_close((uv_handle_t *)&rv->timer, NULL);
    free(rv->slots);
    rv->slots = NULL;
    rv->cap = rv->n = 0;
}
