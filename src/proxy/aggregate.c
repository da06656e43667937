/*
 * Composite routes, declared in configuration (docs/gateway.md,
 * "Aggregation"). Two phases on the worker's loop:
 *
 *   1. every `parts` entry is called at once (one fan-out), each with
 *      share × the route's timeout as its budget, inside the route deadline;
 *   2. every `enrich` entry collects the ids found in its target part
 *      (target[].list[].id), de-duplicates them, and fetches them in batches
 *      of batch_max (one more fan-out), then sets on each target element
 *      `set`: [object or null per list element], in list order.
 *
 * The output object has the parts in declared order (never arrival order),
 * then `warnings` when something was degraded. A failing part with
 * on_error: fail ends the request: a 4xx from it is passed through with its
 * body, a 5xx becomes 502, a timeout 504, an open breaker or full bulkhead
 * 503 with Retry-After. With on_error: degrade its value becomes null and
 * `warnings` gets {"part", "reason"}.
 *
 * Every part carries the caller's identity, signed for that part's method
 * and path. Loop thread only.
 */
#include "aggregate.h"

#include "audit.h"

#include <shoal/json.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AGG_TARGET_MAX  8192
#define AGG_BATCHES_MAX 64

typedef struct batch {
    size_t part;  /* enrichment part index */
    char *target; /* owned */
} batch;

struct px_agg {
    px_req *r;
    const px_aggregate_cfg *a;
    sl_http_fanout *fo1, *fo2;
    size_t idx1[PX_PARTS_MAX]; /* fan-out 1 item → part index */
    size_t n1;
    json_t *values[PX_PARTS_MAX];
    json_t *lookup[PX_PARTS_MAX]; /* enrichment: key → found object */
    int failed[PX_PARTS_MAX];     /* enrichment degraded */
    json_t *warnings;
    batch batches[AGG_BATCHES_MAX];
    size_t nbatches;
};

void px_agg_free(px_agg *g)
{
    if (!g) return;
    sl_http_fanout_free(g->fo1);
    sl_http_fanout_free(g->fo2);
    for (size_t i = 0; i < PX_PARTS_MAX; i++) {
        json_decref(g->values[i]);
        json_decref(g->lookup[i]);
    }
    for (size_t i = 0; i < g->nbatches; i++)
        free(g->batches[i].target);
    json_decref(g->warnings);
    free(g);
}

/* Detaches the aggregate from its request; the caller responds and then frees it. */
static px_req *detach(px_agg *g)
{
    px_req *r = g->r;
    r->agg = NULL;
    return r;
}

static void warn(px_agg *g, const char *part, const char *reason)
{
    if (!g->warnings) g->warnings = json_array();
    json_array_append_new(g->warnings, json_pack("{s:s,s:s}", "part", part, "reason", reason));
}

static int unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '%';
}

/* Appends `v` percent-encoding anything outside unreserved (escapes already present stay). */
static int put_encoded(char *out, size_t cap, size_t *o, const char *v, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (*o + 4 >= cap) return SL_ELIMIT;
        if (unreserved(c)) {
            out[(*o)++] = (char)c;
        } else {
            out[(*o)++] = '%';
            out[(*o)++] = hex[c >> 4];
            out[(*o)++] = hex[c & 15];
        }
    }
    return 0;
}

/* Expands a part's path template with the route's parameters and, for {ids}, `ids`. */
static int expand(const px_req *r, const char *tmpl, const char *ids, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = tmpl; *p;) {
        const char *open = strchr(p, '{');
        const char *close = open ? strchr(open, '}') : NULL;
        size_t lit = open && close ? (size_t)(open - p) : strlen(p);
        if (o + lit >= cap) return SL_ELIMIT;
        memcpy(out + o, p, lit);
        o += lit;
        if (!open || !close) break;
        size_t nlen = (size_t)(close - open - 1);
        if (nlen == 3 && memcmp(open + 1, "ids", 3) == 0 && ids) {
            size_t n = strlen(ids);
            if (o + n >= cap) return SL_ELIMIT;
            memcpy(out + o, ids, n);
            o += n;
        } else {
            for (size_t i = 0; i < r->params.n; i++)
                if (strlen(r->params.p[i].name) == nlen &&
                    memcmp(r->params.p[i].name, open + 1, nlen) == 0 &&
                    put_encoded(out, cap, &o, r->params.p[i].value.ptr, r->params.p[i].value.len))
                    return SL_ELIMIT;
        }
        p = close + 1;
    }
    out[o] = '\0';
    return (int)o;
}

/* Describes a failed result for warnings: "timeout", "breaker_open", "http_503", "invalid_json". */
static void reason_of(const sl_http_result *res, char *buf, size_t cap)
{
    if (res->kind == SL_HTTP_RESULT_OK)
        snprintf(buf, cap, "http_%d", res->response->status);
    else
        snprintf(buf, cap, "%s", sl_http_result_kind_name(res->kind));
}

/* Ends the request with a required part's failure. */
static void fail_with(px_agg *g, const sl_http_result *res, const px_part_cfg *p, int bad_json)
{
    px_req *r = detach(g);
    r->upstream_name = r->wg->gen->cfg->clusters[p->cluster].name;
    if (bad_json) {
        char d[160];
        snprintf(d, sizeof d, "part %s: the upstream answered invalid JSON", p->name);
        sl_http_respond_problem(r->req, 502, d);
    } else if (res->kind == SL_HTTP_RESULT_OK && res->response->status >= 400 &&
               res->response->status < 500) {
        /* A 4xx from a required part is the answer (403 not yours, 404 no such user). */
        const sl_http_response *rs = res->response;
        sl_http_header h[SL_HTTP_CLIENT_HEADERS_MAX];
        size_t n = px_filter_response_headers(rs->headers, rs->nheaders, h, SL_ARRAY_LEN(h));
        sl_http_respond(r->req, rs->status, h, n, rs->body.ptr, rs->body.len);
    } else if (res->kind == SL_HTTP_RESULT_OK) {
        char d[160];
        snprintf(d, sizeof d, "upstream %s (%s): status %d", r->upstream_name, p->name,
                 res->response->status);
        sl_http_respond_problem(r->req, 502, d);
    } else {
        px_respond_upstream_error(r, res, p->name);
    }
    px_agg_free(g);
}

/* Parses a 2xx body and applies `select`. Returns the value (owned) or NULL. */
static json_t *part_value(const px_part_cfg *p, const sl_http_response *rs)
{
    json_t *v = json_loadb(rs->body.ptr, rs->body.len, JSON_REJECT_DUPLICATES, NULL);
    if (!v || !p->select) return v;
    json_t *s = json_object_get(v, p->select);
    json_incref(s);
    json_decref(v);
    return s;
}

static void respond_doc(px_agg *g)
{
    json_t *out = json_object();
    for (size_t i = 0; i < g->a->nparts; i++) {
        const px_part_cfg *p = &g->a->parts[i];
        if (p->target) continue;
        json_object_set(out, p->name, g->values[i] ? g->values[i] : json_null());
    }
    if (g->warnings) json_object_set(out, "warnings", g->warnings);
    const px_config *cfg = px_cfg(g->r);
    if (cfg->audit.aggregate == (int)(g->a - cfg->aggregates)) {
        json_t *joined = px_audit_join(g->a, &cfg->audit, out); /* GET /api/v1/admin/audit */
        json_decref(out);
        out = joined;
    }
    size_t len = 0;
    char *body = out ? sl_json_dump(out, &len) : NULL;
    json_decref(out);
    px_req *r = detach(g);
    if (body)
        sl_http_respond_body(r->req, 200, "application/json", body, len);
    else
        sl_http_respond_problem(r->req, 500, "could not serialise the response");
    free(body);
    px_agg_free(g);
}

/* The id of a list element as a string key (strings as they are, integers in decimal). */
static int id_key(json_t *v, char *buf, size_t cap)
{
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < cap) {
        snprintf(buf, cap, "%s", json_string_value(v));
        return 1;
    }
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
        return 1;
    }
    return 0;
}

/* Sets `set` on every element of the target part from the lookup (or null when degraded). */
static void apply_enrichment(px_agg *g, size_t pi)
{
    const px_part_cfg *p = &g->a->parts[pi];
    json_t *target = g->values[p->target_idx];
    size_t i;
    json_t *el;
    json_array_foreach(target, i, el)
    {
        if (!json_is_object(el)) continue;
        if (g->failed[pi]) {
            json_object_set_new(el, p->set, json_null());
            continue;
        }
        json_t *arr = json_array(), *list = json_object_get(el, p->list);
        size_t k;
        json_t *item;
        json_array_foreach(list, k, item)
        {
            char key[256];
            json_t *found = NULL;
            if (json_is_object(item) && id_key(json_object_get(item, p->id), key, sizeof key))
                found = json_object_get(g->lookup[pi], key);
            json_array_append(arr, found ? found : json_null());
        }
        json_object_set_new(el, p->set, arr);
    }
}

static void on_phase2(sl_http_fanout *fo, void *data)
{
    px_agg *g = data;
    (void)fo;
    for (size_t b = 0; b < g->nbatches; b++) {
        size_t pi = g->batches[b].part;
        const px_part_cfg *p = &g->a->parts[pi];
        const sl_http_result *res = sl_http_fanout_result(g->fo2, b);
        if (g->failed[pi]) continue;
        json_t *doc = NULL;
        int ok = res && res->kind == SL_HTTP_RESULT_OK && res->response->status >= 200 &&
                 res->response->status < 300;
        if (ok && !(doc = json_loadb(res->response->body.ptr, res->response->body.len,
                                     JSON_REJECT_DUPLICATES, NULL)))
            ok = 0;
        if (!ok) {
            if (p->on_error == PX_ON_ERROR_FAIL && res) {
                json_decref(doc);
                fail_with(g, res, p, res->kind == SL_HTTP_RESULT_OK && res->response->status < 300);
                return;
            }
            char why[64] = "invalid_json";
            if (res && !(res->kind == SL_HTTP_RESULT_OK && res->response->status < 300))
                reason_of(res, why, sizeof why);
            warn(g, p->name, why);
            g->failed[pi] = 1;
            json_decref(doc);
            continue;
        }
        size_t i;
        json_t *o;
        json_array_foreach(json_object_get(doc, p->result), i, o)
        {
            char key[256];
            if (json_is_object(o) && id_key(json_object_get(o, p->key), key, sizeof key))
                json_object_set(g->lookup[pi], key, o);
        }
        json_decref(doc);
    }
    for (size_t i = 0; i < g->a->nparts; i++)
        if (g->a->parts[i].target && g->values[g->a->parts[i].target_idx]) apply_enrichment(g, i);
    respond_doc(g);
}

/* Adds the open batch of part `pi` (ids[0..o)) unless the part or the request has no room. */
static void flush(px_agg *g, size_t pi, char *ids, size_t *o, size_t *nids, size_t *nb,
                  size_t *dropped)
{
    if (*nids == 0) return;
    ids[*o] = '\0';
    char *copy = strdup(ids);
    if (copy && *nb < g->a->parts[pi].batches_max && g->nbatches < AGG_BATCHES_MAX) {
        g->batches[g->nbatches++] = (batch){pi, copy};
        (*nb)++;
    } else {
        free(copy);
        *dropped += *nids;
    }
    *o = *nids = 0;
}

/* Plans the batches of enrichment part `pi`: its distinct ids, batch_max per call. */
static void plan_batches(px_agg *g, size_t pi)
{
    const px_part_cfg *p = &g->a->parts[pi];
    json_t *target = g->values[p->target_idx];
    g->lookup[pi] = json_object();
    if (!json_is_array(target)) return; /* nothing to enrich (degraded or not a list) */
    json_t *seen = json_object();
    char *ids = malloc(AGG_TARGET_MAX);
    if (!ids || !seen || !g->lookup[pi]) {
        g->failed[pi] = 1;
        warn(g, p->name, "out_of_memory");
        free(ids);
        json_decref(seen);
        return;
    }
    size_t nids = 0, o = 0, dropped = 0, nb = 0, i, k;
    json_t *el, *item;
    json_array_foreach(target, i, el)
    {
        json_array_foreach(json_object_get(el, p->list), k, item)
        {
            char key[256];
            if (!json_is_object(item) || !id_key(json_object_get(item, p->id), key, sizeof key) ||
                json_object_get(seen, key))
                continue;
            json_object_set_new(seen, key, json_true());
            /* The ids travel in the target: keep it well under the client's head limit. */
            if (nids == p->batch_max || o + strlen(key) * 3 + 2 >= AGG_TARGET_MAX / 2)
                flush(g, pi, ids, &o, &nids, &nb, &dropped);
            if (nb >= p->batches_max || g->nbatches >= AGG_BATCHES_MAX) {
                dropped++;
                continue;
            }
            if (nids) ids[o++] = ',';
            (void)put_encoded(ids, AGG_TARGET_MAX, &o, key, strlen(key));
            nids++;
        }
    }
    flush(g, pi, ids, &o, &nids, &nb, &dropped);
    free(ids);
    json_decref(seen);
    if (dropped) warn(g, p->name, "too_many_ids");
}

static int64_t part_timeout(const px_req *r, const px_part_cfg *p)
{
    int64_t t = (int64_t)((double)r->route->timeout_ms * p->share);
    return t > 0 ? t : 1;
}

static void start_phase2(px_agg *g)
{
    px_req *r = g->r;
    size_t first = g->nbatches;
    for (size_t i = 0; i < g->a->nparts; i++)
        if (g->a->parts[i].target) plan_batches(g, i);
    size_t n = g->nbatches - first;
    if (n == 0) {
        for (size_t i = 0; i < g->a->nparts; i++)
            if (g->a->parts[i].target && g->values[g->a->parts[i].target_idx])
                apply_enrichment(g, i);
        respond_doc(g);
        return;
    }
    sl_http_fanout_item *items = calloc(n, sizeof *items);
    px_out_headers *hdrs = calloc(n, sizeof *hdrs);
    sl_http_call_opts *opts = calloc(n, sizeof *opts);
    char(*targets)[AGG_TARGET_MAX] = calloc(n, AGG_TARGET_MAX);
    int rc = items && hdrs && opts && targets ? 0 : SL_ENOMEM;
    for (size_t b = 0; rc == 0 && b < n; b++) {
        const px_part_cfg *p = &g->a->parts[g->batches[b].part];
        int len = expand(r, p->path, g->batches[b].target, targets[b], AGG_TARGET_MAX);
        if (len < 0) {
            rc = len;
            break;
        }
        const char *q = strchr(targets[b], '?');
        sl_slice path = {targets[b], q ? (size_t)(q - targets[b]) : (size_t)len};
        px_build_headers(r, SL_HTTP_GET, path, 0, &hdrs[b]);
        px_call_opts(r, part_timeout(r, p), &opts[b]);
        items[b] = (sl_http_fanout_item){.upstream = r->wg->clusters[p->cluster].up,
                                         .request = {.method = SL_HTTP_GET,
                                                     .target = {targets[b], (size_t)len},
                                                     .headers = hdrs[b].fwd.h,
                                                     .nheaders = hdrs[b].fwd.n},
                                         .opts = &opts[b]};
    }
    if (rc == 0) rc = sl_http_fanout_start(items, n, on_phase2, g, &g->fo2);
    free(items);
    free(hdrs);
    free(opts);
    free(targets);
    if (rc != 0) {
        px_req *rr = detach(g);
        sl_http_respond_problem(rr->req, 502, "could not start the enrichment calls");
        px_agg_free(g);
    }
}

static void on_phase1(sl_http_fanout *fo, void *data)
{
    px_agg *g = data;
    (void)fo;
    for (size_t k = 0; k < g->n1; k++) {
        size_t pi = g->idx1[k];
        const px_part_cfg *p = &g->a->parts[pi];
        const sl_http_result *res = sl_http_fanout_result(g->fo1, k);
        int ok = res && res->kind == SL_HTTP_RESULT_OK && res->response->status >= 200 &&
                 res->response->status < 300;
        json_t *v = ok ? part_value(p, res->response) : NULL;
        if (ok && !v) {
            if (p->on_error == PX_ON_ERROR_FAIL) {
                fail_with(g, res, p, 1);
                return;
            }
            warn(g, p->name, "invalid_json");
            continue;
        }
        if (!ok) {
            if (p->on_error == PX_ON_ERROR_FAIL && res) {
                fail_with(g, res, p, 0);
                return;
            }
            char why[64] = "failed";
            if (res) reason_of(res, why, sizeof why);
            warn(g, p->name, why);
            continue;
        }
        g->values[pi] = v;
    }
    sl_http_fanout_free(g->fo1);
    g->fo1 = NULL;
    start_phase2(g);
}

void px_aggregate_start(px_req *r, const px_aggregate_cfg *a)
{
    SL_ASSERT(r && a && !r->agg && a->nparts <= PX_PARTS_MAX);
    px_agg *g = calloc(1, sizeof *g);
    if (!g) {
        sl_http_respond_problem(r->req, 503, "out of memory");
        return;
    }
    g->r = r;
    g->a = a;
    r->agg = g;
    r->upstream_name = a->name;
    sl_http_fanout_item items[PX_PARTS_MAX];
    px_out_headers *hdrs = calloc(PX_PARTS_MAX, sizeof *hdrs);
    sl_http_call_opts opts[PX_PARTS_MAX];
    char(*targets)[AGG_TARGET_MAX] = calloc(PX_PARTS_MAX, AGG_TARGET_MAX);
    int rc = hdrs && targets ? 0 : SL_ENOMEM;
    for (size_t i = 0; rc == 0 && i < a->nparts; i++) {
        const px_part_cfg *p = &a->parts[i];
        if (p->target) continue;
        size_t k = g->n1;
        int len = expand(r, p->path, NULL, targets[k], AGG_TARGET_MAX);
        if (len < 0) {
            rc = len;
            break;
        }
        const char *q = strchr(targets[k], '?');
        sl_slice path = {targets[k], q ? (size_t)(q - targets[k]) : (size_t)len};
        px_build_headers(r, SL_HTTP_GET, path, 0, &hdrs[k]);
        px_call_opts(r, part_timeout(r, p), &opts[k]);
        items[k] = (sl_http_fanout_item){.upstream = r->wg->clusters[p->cluster].up,
                                         .request = {.method = SL_HTTP_GET,
                                                     .target = {targets[k], (size_t)len},
                                                     .headers = hdrs[k].fwd.h,
                                                     .nheaders = hdrs[k].fwd.n},
                                         .opts = &opts[k]};
        g->idx1[g->n1++] = i;
    }
    if (rc == 0) rc = sl_http_fanout_start(items, g->n1, on_phase1, g, &g->fo1);
    free(hdrs);
    free(targets);
    if (rc != 0) {
        detach(g);
        sl_http_respond_problem(r->req, rc == SL_ELIMIT ? 414 : 502,
                                "could not start the aggregate's calls");
        px_agg_free(g);
    }
}
