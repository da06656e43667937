/*
 * The gateway's own admin API routes (admin_services.h): the services view
 * from a scraper of every endpoint, and the dead-letter routes to the
 * services' /admin/dlq.
 */
#include "admin_services.h"

#include <shoal/clock.h>
#include <shoal/json.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Prometheus text (pure) ---------------------------------------------------------------- */

/* Finds label `name`'s value in "{a="x",b="y"}" (lab .. end). Returns its length or -1. */
static int label(const char *lab, const char *end, const char *name, const char **val)
{
    size_t nl = strlen(name);
    const char *p = lab;
    while (p && p < end) {
        while (p < end && (*p == '{' || *p == ',' || *p == ' '))
            p++;
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (!eq || eq + 1 >= end || eq[1] != '"') return -1;
        const char *v = eq + 2, *q = v;
        while (q < end && *q != '"') {
            if (*q == '\\' && q + 1 < end) q++;
            q++;
        }
        if (q >= end) return -1;
        if ((size_t)(eq - p) == nl && memcmp(p, name, nl) == 0) {
            *val = v;
            return (int)(q - v);
        }
        p = q + 1;
    }
    return -1;
}

static int starts(const char *line, size_t len, const char *name, const char **rest)
{
    size_t n = strlen(name);
    if (len <= n || memcmp(line, name, n) != 0 || (line[n] != '{' && line[n] != ' ')) return 0;
    *rest = line + n;
    return 1;
}

static double num(const char *s, const char *end)
{
    char buf[64];
    size_t n = (size_t)(end - s);
    if (n == 0 || n >= sizeof buf) return NAN;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (strcmp(buf, "+Inf") == 0) return INFINITY;
    char *e = NULL;
    double d = strtod(buf, &e);
    return e == buf ? NAN : d;
}

static void add_bucket(px_prom_sample *o, double le, double v)
{
    for (size_t i = 0; i < o->nbuckets; i++)
        if (o->le[i] == le) {
            o->count[i] += v;
            return;
        }
    if (o->nbuckets == PX_PROM_BUCKETS_MAX) return;
    size_t i = o->nbuckets++;
    while (i > 0 && o->le[i - 1] > le) {
        o->le[i] = o->le[i - 1];
        o->count[i] = o->count[i - 1];
        i--;
    }
    o->le[i] = le;
    o->count[i] = v;
}

void px_prom_parse(const char *text, size_t len, px_prom_sample *out)
{
    memset(out, 0, sizeof *out);
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t n = (size_t)(le - p);
        const char *rest = NULL;
        if (n && p[0] != '#') {
            /* the value: after the labels' closing brace (or the name), up to a space */
            const char *lab = NULL, *lab_end = NULL, *v = NULL;
            const char *brace = memchr(p, '{', n);
            const char *sp = memchr(p, ' ', n);
            if (brace && (!sp || brace < sp)) {
                const char *close = brace;
                int inq = 0;
                for (; close < le; close++) {
                    if (*close == '\\' && close + 1 < le) {
                        close++;
                        continue;
                    }
                    if (*close == '"') inq = !inq;
                    if (*close == '}' && !inq) break;
                }
                lab = brace;
                lab_end = close;
                v = close < le ? close + 1 : le;
            } else {
                v = sp ? sp : le;
            }
            while (v < le && *v == ' ')
                v++;
            const char *ve = v;
            while (ve < le && *ve != ' ')
                ve++;
            double val = num(v, ve);
            const char *lv = NULL;
            int ll;
            if (!isfinite(val) || val < 0) {
                /* not a sample we use */
            } else if (starts(p, n, "service_requests_total", &rest)) {
                out->requests += val;
                if (lab && (ll = label(lab, lab_end, "status", &lv)) > 0 && lv[0] == '5')
                    out->errors += val;
            } else if (starts(p, n, "service_request_duration_seconds_bucket", &rest)) {
                if (lab && (ll = label(lab, lab_end, "le", &lv)) > 0) {
                    double b = num(lv, lv + ll);
                    if (!isnan(b) && b >= 0) add_bucket(out, b, val);
                }
            } else if (starts(p, n, "outbox_backlog", &rest)) {
                out->outbox_backlog += val;
                out->has_outbox = 1;
            } else if (starts(p, n, "bus_consumer_lag", &rest)) {
                out->consumer_lag += val;
                out->has_lag = 1;
            } else if (starts(p, n, "process_start_time_seconds", &rest)) {
                out->start_time_s = val;
            } else if (starts(p, n, "build_info", &rest)) {
                if (lab && (ll = label(lab, lab_end, "version", &lv)) > 0)
                    snprintf(out->version, sizeof out->version, "%.*s", ll, lv);
            }
        }
        p = nl ? nl + 1 : end;
    }
}

static void rates(const px_prom_sample *prev, const px_prom_sample *cur, double dt_s, double *rate,
                  double *error_ratio, double *p99_s);

void px_prom_rates(const px_prom_sample *prev, const px_prom_sample *cur, double dt_s, double *rate,
                   double *error_ratio, double *p99_s)
{
    rates(prev, cur, dt_s, rate, error_ratio, p99_s);
    /* absurd counters (overflowing sums) give no figure rather than a NaN */
    if (!isfinite(*rate)) *rate = 0;
    if (!isfinite(*error_ratio) || *error_ratio < 0) *error_ratio = 0;
    if (*error_ratio > 1) *error_ratio = 1;
    if (!isfinite(*p99_s)) *p99_s = -1;
}

static void rates(const px_prom_sample *prev, const px_prom_sample *cur, double dt_s, double *rate,
                  double *error_ratio, double *p99_s)
{
    int reset = cur->requests < prev->requests;
    double dreq = reset ? cur->requests : cur->requests - prev->requests;
    double derr = reset ? cur->errors : cur->errors - prev->errors;
    if (derr < 0) derr = 0;
    *rate = dt_s > 0 ? dreq / dt_s : 0;
    *error_ratio = dreq > 0 ? derr / dreq : 0;
    *p99_s = -1;
    /* bucket deltas by le (the same bounds in both samples, else from zero) */
    double d[PX_PROM_BUCKETS_MAX];
    size_t nb = cur->nbuckets;
    if (nb == 0) return;
    int same = !reset && prev->nbuckets == nb;
    for (size_t i = 0; same && i < nb; i++)
        same = prev->le[i] == cur->le[i] && prev->count[i] <= cur->count[i];
    for (size_t i = 0; i < nb; i++)
        d[i] = same ? cur->count[i] - prev->count[i] : cur->count[i];
    double total = d[nb - 1];
    if (total <= 0) return;
    double want = 0.99 * total;
    for (size_t i = 0; i < nb; i++) {
        if (d[i] < want) continue;
        if (isinf(cur->le[i])) { /* beyond the highest finite bound: report that bound */
            *p99_s = i > 0 ? cur->le[i - 1] : 0;
            return;
        }
        double lo = i > 0 ? cur->le[i - 1] : 0, below = i > 0 ? d[i - 1] : 0;
        double in = d[i] - below;
        *p99_s = in > 0 ? lo + (cur->le[i] - lo) * (want - below) / in : cur->le[i];
        return;
    }
}

/* ---- the scraper (worker 0's loop) ----------------------------------------------------------- */

typedef struct scrape_ep {
    char cluster[64];
    char endpoint[128];
    sl_upstream *up;
    int busy; /* calls in flight (0..2) */
    /* published under the scraper's mutex */
    int seen;      /* at least one scrape answered */
    int reachable; /* the last /metrics answered */
    int ready;     /* the last /readyz answered 2xx */
    int64_t at_ms;
    px_prom_sample prev, cur;
    int64_t prev_at_ms;
    double rate, error_ratio, p99_s;
} scrape_ep;

struct px_scraper {
    pthread_mutex_t mu;
    uv_timer_t timer;
    scrape_ep *eps;
    size_t n;
    size_t closing;
    int stopping;
};

static int64_t wall_ms(void)
{
    return sl_clock_wall_ms(sl_clock_system());
}

typedef struct scrape_call {
    px_scraper *s;
    size_t i;
    int metrics; /* 1: /metrics, 0: /readyz */
} scrape_call;

static void scraped(sl_http_handle *call, const sl_http_result *res, void *data)
{
    (void)call;
    scrape_call *c = data;
    px_scraper *s = c->s;
    scrape_ep *e = &s->eps[c->i];
    int metrics = c->metrics;
    free(c);
    e->busy--;
    if (res->kind == SL_HTTP_RESULT_CANCELED) return;
    int ok = res->kind == SL_HTTP_RESULT_OK && res->response->status >= 200 &&
             res->response->status < 300;
    pthread_mutex_lock(&s->mu);
    if (!metrics) {
        e->ready = ok;
        if (!ok && res->kind != SL_HTTP_RESULT_OK) e->reachable = 0;
    } else if (!ok) {
        e->reachable = 0;
    } else {
        px_prom_sample smp;
        px_prom_parse(res->response->body.ptr, res->response->body.len, &smp);
        int64_t now = wall_ms();
        if (e->seen) {
            e->prev = e->cur;
            e->prev_at_ms = e->at_ms;
        } else {
            e->prev = smp;
            e->prev_at_ms = now;
        }
        e->cur = smp;
        e->at_ms = now;
        e->seen = 1;
        e->reachable = 1;
        double dt = (double)(e->at_ms - e->prev_at_ms) / 1000.0;
        px_prom_rates(&e->prev, &e->cur, dt, &e->rate, &e->error_ratio, &e->p99_s);
    }
    pthread_mutex_unlock(&s->mu);
}

static void scrape_one(px_scraper *s, size_t i, int metrics)
{
    scrape_ep *e = &s->eps[i];
    scrape_call *c = malloc(sizeof *c);
    if (!c) return;
    *c = (scrape_call){s, i, metrics};
    const char *path = metrics ? "/metrics" : "/readyz";
    sl_http_request rq = {.method = SL_HTTP_GET, .target = {path, strlen(path)}};
    sl_http_call_opts o = {.timeout_ms = PX_SCRAPE_TIMEOUT_MS};
    if (sl_http_call(e->up, &rq, &o, scraped, c, NULL) != 0) {
        free(c);
        return;
    }
    e->busy++;
}

static void tick(uv_timer_t *t)
{
    px_scraper *s = t->data;
    for (size_t i = 0; i < s->n; i++) {
        if (s->eps[i].busy || !s->eps[i].up) continue;
        scrape_one(s, i, 0);
        scrape_one(s, i, 1);
    }
}

px_scraper *px_scraper_start(uv_loop_t *loop, sl_rand *rand, const px_config *cfg)
{
    /* Scrape only for a configuration that serves the services view: a gateway without that
     * route sends its upstreams nothing but its clients' requests and health checks. */
    int wanted = 0;
    for (size_t i = 0; i < cfg->routes.n && !wanted; i++)
        wanted = cfg->routes.items[i].handler == PX_HANDLER_ADMIN_SERVICES;
    if (!wanted) return NULL;
    px_scraper *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    size_t n = 0;
    for (size_t c = 0; c < cfg->nclusters; c++)
        n += cfg->clusters[c].nendpoints;
    s->eps = calloc(n ? n : 1, sizeof *s->eps);
    if (!s->eps) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    for (size_t c = 0; c < cfg->nclusters; c++) {
        const px_cluster_cfg *cc = &cfg->clusters[c];
        for (size_t k = 0; k < cc->nendpoints; k++) {
            scrape_ep *e = &s->eps[s->n++];
            snprintf(e->cluster, sizeof e->cluster, "%s", cc->name);
            snprintf(e->endpoint, sizeof e->endpoint, "%s", cc->endpoints[k]);
            e->p99_s = -1;
            sl_upstream_config u;
            sl_upstream_config_default(&u);
            char name[SL_UPSTREAM_NAME_MAX + 1];
            snprintf(name, sizeof name, "%.50s-scrape", cc->name);
            u.name = name;
            u.endpoints = (const char *const *)&cc->endpoints[k];
            u.nendpoints = 1;
            u.policies = false;
            u.max_connections = 2;
            u.max_idle = 2;
            u.connect_timeout_ms = PX_SCRAPE_TIMEOUT_MS;
            u.timeout_ms = PX_SCRAPE_TIMEOUT_MS;
            u.retry.per_try_timeout_ms = 0;
            sl_upstream_env env = {.loop = loop, .rand = rand};
            if (sl_upstream_new(&u, &env, &e->up) != 0) e->up = NULL;
        }
    }
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, tick, 0, PX_SCRAPE_INTERVAL_MS);
    return s;
}

static void maybe_free(px_scraper *s)
{
    if (s->closing > 0) return;
    pthread_mutex_destroy(&s->mu);
    free(s->eps);
    free(s);
}

static void up_closed(void *data)
{
    px_scraper *s = data;
    s->closing--;
    maybe_free(s);
}

static void timer_closed(uv_handle_t *h)
{
    up_closed(h->data);
}

void px_scraper_stop(px_scraper *s)
{
    if (!s) return;
    s->stopping = 1;
    s->closing = 1; /* the timer */
    for (size_t i = 0; i < s->n; i++)
        if (s->eps[i].up) s->closing++;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, timer_closed);
    for (size_t i = 0; i < s->n; i++)
        if (s->eps[i].up) {
            sl_upstream_close(s->eps[i].up, up_closed, s);
            s->eps[i].up = NULL;
        }
}

/* ---- GET /api/v1/admin/services ------------------------------------------------------------ */

static json_t *num_or_null(double v, int have)
{
    return have && isfinite(v) ? json_real(v) : json_null();
}

static void services(px_req *r)
{
    const px_gen *g = r->wg->gen;
    const px_config *cfg = g->cfg;
    size_t len = 0;
    char *cl = px_admin_clusters_doc(cfg, &g->board, g->id, &len);
    json_t *doc = cl ? json_loadb(cl, len, 0, NULL) : NULL;
    free(cl);
    json_t *clusters = doc ? json_object_get(doc, "clusters") : NULL;
    json_t *items = json_array();
    px_scraper *s = atomic_load(&r->w->proc->scraper);
    int64_t now = wall_ms();
    if (s) pthread_mutex_lock(&s->mu);
    for (size_t c = 0; c < cfg->nclusters && items; c++) {
        const px_cluster_cfg *cc = &cfg->clusters[c];
        json_t *gw = json_array_get(clusters, c);
        json_t *insts = json_array();
        int nready = 0, nseen = 0;
        unsigned in_flight = 0;
        double srate = 0, serr = 0, sp99 = -1, sbacklog = 0, slag = 0;
        int nbacklog = 0, nlag = 0;
        const char *sversion = NULL;
        json_t *eps = json_object_get(gw, "endpoints");
        for (size_t k = 0; k < cc->nendpoints; k++) {
            json_t *ge = json_array_get(eps, k);
            in_flight += (unsigned)json_integer_value(json_object_get(ge, "in_flight"));
            const scrape_ep *e = NULL;
            for (size_t i = 0; s && i < s->n; i++)
                if (strcmp(s->eps[i].cluster, cc->name) == 0 &&
                    strcmp(s->eps[i].endpoint, cc->endpoints[k]) == 0)
                    e = &s->eps[i];
            int seen = e && e->seen;
            int ready = e && e->ready && e->reachable;
            nready += ready;
            if (seen) { /* the service's figures: rates summed, errors weighted, worst p99 */
                nseen++;
                srate += e->rate;
                serr += e->rate * e->error_ratio;
                if (e->p99_s > sp99) sp99 = e->p99_s;
                if (!sversion && e->cur.version[0]) sversion = e->cur.version;
                if (e->cur.has_outbox) {
                    sbacklog += e->cur.outbox_backlog;
                    nbacklog++;
                }
                if (e->cur.has_lag) {
                    slag += e->cur.consumer_lag;
                    nlag++;
                }
            }
            double uptime =
                seen && e->cur.start_time_s > 0 ? (double)now / 1000.0 - e->cur.start_time_s : NAN;
            json_t *o = json_object();
            json_object_set_new(o, "endpoint", json_string(cc->endpoints[k]));
            json_object_set_new(o, "ready", json_boolean(ready));
            json_object_set_new(o, "reachable", json_boolean(e && e->reachable));
            json_object_set_new(o, "health", json_incref(json_object_get(ge, "health")));
            json_object_set_new(o, "version",
                                seen && e->cur.version[0] ? json_string(e->cur.version)
                                                          : json_null());
            json_object_set_new(o, "uptime_s", num_or_null(floor(uptime), seen));
            json_object_set_new(o, "request_rate", num_or_null(e ? e->rate : 0, seen));
            json_object_set_new(o, "error_ratio", num_or_null(e ? e->error_ratio : 0, seen));
            json_object_set_new(o, "p99_ms",
                                num_or_null(e ? e->p99_s * 1000.0 : 0, seen && e->p99_s >= 0));
            json_object_set_new(
                o, "outbox_backlog",
                num_or_null(e ? e->cur.outbox_backlog : 0, seen && e->cur.has_outbox));
            json_object_set_new(o, "consumer_lag",
                                num_or_null(e ? e->cur.consumer_lag : 0, seen && e->cur.has_lag));
            char at[SL_RFC3339_MAX];
            if (seen && sl_rfc3339_format(e->at_ms * 1000000, at, sizeof at) > 0)
                json_object_set_new(o, "scraped_at", json_string(at));
            else
                json_object_set_new(o, "scraped_at", json_null());
            json_array_append_new(insts, o);
        }
        unsigned long long rejected = 0;
        json_t *ws = json_object_get(gw, "workers"), *wv;
        size_t wi;
        json_array_foreach(ws, wi, wv)
        {
            rejected +=
                (unsigned long long)json_integer_value(json_object_get(wv, "bulkhead_rejections"));
        }
        json_t *bh = json_pack("{s:i, s:i, s:I}", "in_flight", (int)in_flight, "max_concurrent",
                               (int)(cc->up.policies ? cc->up.bulkhead.max_concurrent : 0),
                               "rejections", (json_int_t)rejected);
        json_t *svc = json_object();
        json_object_set_new(svc, "service", json_string(cc->name));
        json_object_set_new(svc, "ready", json_boolean(nready > 0));
        json_object_set_new(svc, "instances", json_integer((json_int_t)cc->nendpoints));
        json_object_set_new(svc, "ready_instances", json_integer(nready));
        json_object_set_new(svc, "version", sversion ? json_string(sversion) : json_null());
        json_object_set_new(svc, "request_rate", num_or_null(srate, nseen));
        json_object_set_new(svc, "error_ratio", num_or_null(srate > 0 ? serr / srate : 0, nseen));
        json_object_set_new(svc, "p99_ms", num_or_null(sp99 * 1000.0, nseen && sp99 >= 0));
        /* The bus figures of the last scrape (gauges: summed over the instances that have them). */
        json_object_set_new(svc, "outbox_backlog", num_or_null(sbacklog, nbacklog));
        json_object_set_new(svc, "consumer_lag", num_or_null(slag, nlag));
        json_object_set_new(svc, "breaker",
                            json_incref(json_object_get(gw, "breaker")
                                            ? json_object_get(gw, "breaker")
                                            : json_null()));
        json_object_set_new(svc, "breakers", json_incref(ws ? ws : json_null()));
        json_object_set_new(svc, "bulkhead", bh);
        json_object_set_new(svc, "endpoints", insts);
        json_array_append_new(items, svc);
    }
    if (s) pthread_mutex_unlock(&s->mu);
    json_t *out =
        json_pack("{s:o, s:i, s:I}", "items", items ? items : json_array(), "scrape_interval_ms",
                  PX_SCRAPE_INTERVAL_MS, "generation", (json_int_t)g->id);
    json_decref(doc);
    char *body = out ? sl_json_dump(out, &len) : NULL;
    json_decref(out);
    if (!body) {
        px_respond_problem(r, 500, "out of memory", NULL, 0);
        return;
    }
    sl_http_header h[8];
    size_t n = 0;
    h[n++] = (sl_http_header){SL_SLICE_LIT("Content-Type"), SL_SLICE_LIT("application/json")};
    h[n++] = (sl_http_header){SL_SLICE_LIT("Cache-Control"), SL_SLICE_LIT("no-store")};
    n = px_cors_headers(r, h, n, SL_ARRAY_LEN(h));
    sl_http_respond(r->req, 200, h, n, body, len);
    free(body);
}

/* ---- the dead-letter queue ----------------------------------------------------------------- */

/* One call to a service's /admin/dlq route; `fan` gathers the calls of one request. */
typedef struct dlq_fan {
    px_req *r;
    size_t pending;
    long long redriven;
    json_t *errors; /* {service: detail} */
} dlq_fan;

typedef struct dlq_call {
    dlq_fan *fan; /* NULL: a single call whose answer is relayed */
    px_req *r;
    const char *service;
} dlq_call;

static void relay(px_req *r, const sl_http_result *res)
{
    if (res->kind != SL_HTTP_RESULT_OK) {
        px_respond_upstream_error(r, res, NULL);
        return;
    }
    const sl_http_response *rs = res->response;
    r->upstream_status = rs->status;
    sl_http_header h[SL_HTTP_CLIENT_HEADERS_MAX + 8];
    size_t n = px_filter_response_headers(rs->headers, rs->nheaders, h, SL_HTTP_CLIENT_HEADERS_MAX);
    h[n++] = (sl_http_header){SL_SLICE_LIT("Via"), SL_SLICE_LIT("1.1 shoal")};
    n = px_cors_headers(r, h, n, SL_ARRAY_LEN(h));
    sl_http_respond(r->req, rs->status, h, n, rs->body.ptr, rs->body.len);
}

static void fan_done(dlq_fan *f)
{
    px_req *r = f->r;
    json_t *doc = json_pack("{s:I, s:O}", "redriven", (json_int_t)f->redriven, "errors", f->errors);
    json_decref(f->errors);
    free(f);
    size_t len = 0;
    char *body = doc ? sl_json_dump(doc, &len) : NULL;
    json_decref(doc);
    if (!body) {
        px_respond_problem(r, 500, "out of memory", NULL, 0);
        return;
    }
    sl_http_header h[6];
    size_t n = 0;
    h[n++] = (sl_http_header){SL_SLICE_LIT("Content-Type"), SL_SLICE_LIT("application/json")};
    n = px_cors_headers(r, h, n, SL_ARRAY_LEN(h));
    sl_http_respond(r->req, 200, h, n, body, len);
    free(body);
}

static void dlq_answered(sl_http_handle *call, const sl_http_result *res, void *data)
{
    (void)call;
    dlq_call *c = data;
    px_req *r = c->r;
    dlq_fan *f = c->fan;
    if (!f) {
        r->call = NULL;
        free(c);
        relay(r, res);
        return;
    }
    if (res->kind == SL_HTTP_RESULT_OK && res->response->status == 200) {
        json_t *o = json_loadb(res->response->body.ptr, res->response->body.len, 0, NULL);
        f->redriven += (long long)json_integer_value(json_object_get(o, "redriven"));
        json_decref(o);
    } else {
        char detail[96];
        if (res->kind == SL_HTTP_RESULT_OK)
            snprintf(detail, sizeof detail, "status %d", res->response->status);
        else
            snprintf(detail, sizeof detail, "%s", sl_http_result_kind_name(res->kind));
        json_object_set_new(f->errors, c->service, json_string(detail));
    }
    free(c);
    if (--f->pending == 0) fan_done(f);
}

/* Calls `target` on cluster `ci` for r; the answer goes to f or, without f, back to the client. */
static int dlq_call_cluster(px_req *r, dlq_fan *f, int ci, sl_http_method method,
                            const char *target)
{
    px_wcluster *c = &r->wg->clusters[ci];
    dlq_call *call = malloc(sizeof *call);
    if (!call) return SL_ENOMEM;
    *call = (dlq_call){f, r, c->cfg->name};
    px_out_headers oh;
    px_build_headers(r, ci, method, (sl_slice){target, strlen(target)}, (sl_slice){NULL, 0}, 0,
                     &oh);
    sl_http_request rq = {.method = method,
                          .target = {target, strlen(target)},
                          .headers = oh.fwd.h,
                          .nheaders = oh.fwd.n};
    sl_http_call_opts o;
    px_call_opts(r, r->route->timeout_ms, &o);
    /* The client's Idempotency-Key (if any) is bound into the proof: it goes with the call. */
    sl_http_handle **hp = f ? NULL : &r->call;
    if (!f) r->upstream_name = c->cfg->name;
    int rc = sl_http_call(c->up, &rq, &o, dlq_answered, call, hp);
    if (rc != 0) {
        if (!f) r->call = NULL;
        free(call);
    }
    return rc;
}

/* Reads query parameter `name` into out (cap bytes). Returns its length, 0 absent, -1 too long. */
static int query_param(sl_slice q, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = q.ptr, *end = q.ptr + q.len;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if ((size_t)(e - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t vl = (size_t)(e - p - nl - 1);
            if (vl >= cap) return -1;
            memcpy(out, p + nl + 1, vl);
            out[vl] = '\0';
            return (int)vl;
        }
        p = amp ? amp + 1 : end;
    }
    return 0;
}

static void field_error(px_req *r, int status, const char *field, const char *message)
{
    json_t *doc = json_pack("{s:s, s:s, s:i, s:s, s:[{s:s, s:s}]}", "type", "about:blank", "title",
                            status == 404 ? "Not Found" : "Bad Request", "status", status, "detail",
                            message, "errors", "field", field, "message", message);
    size_t len = 0;
    char *body = doc ? sl_json_dump(doc, &len) : NULL;
    json_decref(doc);
    sl_http_header h[6];
    size_t n = 0;
    h[n++] =
        (sl_http_header){SL_SLICE_LIT("Content-Type"), SL_SLICE_LIT("application/problem+json")};
    n = px_cors_headers(r, h, n, SL_ARRAY_LEN(h));
    sl_http_respond(r->req, status, h, n, body ? body : "", body ? len : 0);
    free(body);
}

/* The cluster named by `service`, or -1 after answering 400/404 naming `field`. */
static int service_cluster(px_req *r, const char *service, const char *field)
{
    int ci = px_config_cluster(px_cfg(r), service);
    if (ci < 0) field_error(r, 404, field, "names no service");
    return ci;
}

static void dlq(px_req *r)
{
    sl_http_req *req = r->req;
    const px_config *cfg = px_cfg(r);
    char service[64], target[PX_PATH_MAX];
    sl_slice mid = sl_route_param(&r->params, "message_id");
    int sl = query_param(req->query, "service", service, sizeof service);
    if (sl < 0) {
        field_error(r, 400, "service", "is too long");
        return;
    }
    if (mid.len) { /* POST /api/v1/admin/dlq/{message_id}/redrive: the id names the service */
        const char *t = memchr(mid.ptr, '~', mid.len);
        size_t n = t ? (size_t)(t - mid.ptr) : 0;
        if (!t || n == 0 || n >= sizeof service || mid.len > 512) {
            field_error(r, 404, "message_id", "no such dead letter");
            return;
        }
        memcpy(service, mid.ptr, n);
        service[n] = '\0';
        int ci = px_config_cluster(cfg, service);
        if (ci < 0) {
            field_error(r, 404, "message_id", "no such dead letter");
            return;
        }
        snprintf(target, sizeof target, "/admin/dlq/%.*s/redrive", (int)mid.len, mid.ptr);
        if (dlq_call_cluster(r, NULL, ci, SL_HTTP_POST, target) != 0)
            px_respond_problem(r, 502, "could not call the service", NULL, 0);
        return;
    }
    if (req->method == SL_HTTP_GET) { /* the list of one service */
        if (sl == 0) {
            field_error(r, 400, "service", "is required: the dead letters of which service");
            return;
        }
        int ci = service_cluster(r, service, "service");
        if (ci < 0) return;
        int n = snprintf(target, sizeof target, "/admin/dlq%s%.*s", req->query.len ? "?" : "",
                         (int)req->query.len, req->query.ptr);
        if (n < 0 || (size_t)n >= sizeof target) {
            px_respond_problem(r, 414, "the query is too long", NULL, 0);
            return;
        }
        if (dlq_call_cluster(r, NULL, ci, SL_HTTP_GET, target) != 0)
            px_respond_problem(r, 502, "could not call the service", NULL, 0);
        return;
    }
    /* POST /api/v1/admin/dlq/redrive[?service=]: one service, or every one */
    if (sl > 0) {
        int ci = service_cluster(r, service, "service");
        if (ci < 0) return;
        if (dlq_call_cluster(r, NULL, ci, SL_HTTP_POST, "/admin/dlq/redrive") != 0)
            px_respond_problem(r, 502, "could not call the service", NULL, 0);
        return;
    }
    dlq_fan *f = calloc(1, sizeof *f);
    if (!f || !(f->errors = json_object())) {
        free(f);
        px_respond_problem(r, 500, "out of memory", NULL, 0);
        return;
    }
    f->r = r;
    f->pending = 1; /* held while the calls start */
    for (size_t i = 0; i < cfg->nclusters; i++) {
        f->pending++;
        if (dlq_call_cluster(r, f, (int)i, SL_HTTP_POST, "/admin/dlq/redrive") != 0) {
            f->pending--;
            json_object_set_new(f->errors, cfg->clusters[i].name, json_string("not called"));
        }
    }
    if (--f->pending == 0) fan_done(f);
}

void px_admin_handle(px_req *r)
{
    SL_ASSERT(r->route && r->route->handler != PX_HANDLER_NONE);
    if (r->route->handler == PX_HANDLER_ADMIN_SERVICES)
        services(r);
    else
        dlq(r);
}
