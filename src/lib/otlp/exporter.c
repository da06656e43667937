/*
 * The exporter thread (otlp.h). Every poll_ms it drains each registered
 * tracer into the request body being built; a body leaves when it holds
 * batch_max spans, when its first span has waited flush_ms, or at stop. A
 * request that fails is not retried: its spans are dropped and counted, so a
 * collector that is down costs one bounded attempt per batch and nothing
 * else. Spans the tracers could not hand over (their ring was full while this
 * thread waited on a slow collector) are counted from the tracers' own stats.
 */
#include "otlp_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { DROP_FAILED, DROP_FULL, DROP_LARGE, NDROP };
enum { REQ_OK, REQ_HTTP, REQ_TIMEOUT, REQ_CONNECT, NREQ };

struct sl_otlp_exporter {
    sl_otlp_endpoint ep;
    char service_name[128], service_version[64], instance_id[128];
    sl_otlp_resource res;
    uint32_t batch_max, flush_ms, timeout_ms, poll_ms;
    unsigned shard;
    sl_otlp_enc enc;
    int64_t batch_since_ms; /* when the body's first span was added */
    int fd;                 /* the connection kept for the next request, or -1 */

    pthread_mutex_t mu; /* tracers, ntracers, stop */
    pthread_cond_t cv;
    sl_tracer **tracers;
    uint64_t *seen_full; /* tracer stats.dropped_full already counted (exporter thread) */
    uint32_t ntracers, max_tracers;
    int stop, running;
    pthread_t thread;

    _Atomic uint64_t exported, dropped[NDROP], requests[NREQ];
    sl_series *s_exported, *s_dropped[NDROP], *s_requests[NREQ];
};

void sl_otlp_config_init(sl_otlp_config *cfg)
{
    SL_ASSERT(cfg);
    memset(cfg, 0, sizeof *cfg);
    cfg->batch_max = 512;
    cfg->flush_ms = 1000;
    cfg->timeout_ms = 2000;
    cfg->poll_ms = 20;
    cfg->max_request_bytes = 4u << 20;
    cfg->max_tracers = 64;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count(sl_otlp_exporter *ex, _Atomic uint64_t *c, sl_series *s, uint64_t n)
{
    if (n == 0) return;
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
    if (s) sl_counter_add(s, ex->shard, n);
}

static int register_metrics(sl_otlp_exporter *ex, sl_metrics *reg)
{
    static const char *const reason[] = {"reason"};
    static const char *const result[] = {"result"};
    static const char *const drop_names[NDROP] = {"export_failed", "buffer_full", "too_large"};
    static const char *const req_names[NREQ] = {"ok", "http_error", "timeout", "connect_error"};
    sl_metric_family *fe = NULL, *fd = NULL, *fr = NULL;
    int rc = sl_metrics_counter(reg, "telemetry_spans_exported_total",
                                "Spans an OTLP collector accepted.", NULL, 0, &fe);
    if (rc == 0)
        rc =
            sl_metrics_counter(reg, "telemetry_spans_dropped_total",
                               "Finished spans that were not exported, by reason.", reason, 1, &fd);
    if (rc == 0)
        rc = sl_metrics_counter(reg, "telemetry_export_requests_total",
                                "OTLP export requests, by result.", result, 1, &fr);
    if (rc != 0) return rc;
    ex->s_exported = sl_metric_series(fe, NULL);
    for (int i = 0; i < NDROP; i++) {
        const char *l[] = {drop_names[i]};
        ex->s_dropped[i] = sl_metric_series(fd, l);
    }
    for (int i = 0; i < NREQ; i++) {
        const char *l[] = {req_names[i]};
        ex->s_requests[i] = sl_metric_series(fr, l);
    }
    return 0;
}

int sl_otlp_exporter_new(const sl_otlp_config *cfg, sl_otlp_exporter **out)
{
    SL_ASSERT(cfg && out);
    *out = NULL;
    if (!cfg->endpoint || !cfg->resource.service_name || !cfg->resource.service_name[0] ||
        cfg->batch_max < 1 || cfg->batch_max > 8192 || cfg->flush_ms < 10 ||
        cfg->flush_ms > 60000 || cfg->timeout_ms < 10 || cfg->timeout_ms > 60000 ||
        cfg->poll_ms < 1 || cfg->poll_ms > 1000 || cfg->max_request_bytes < (64u << 10) ||
        cfg->max_request_bytes > (64u << 20) || cfg->max_tracers < 1 || cfg->max_tracers > 1024)
        return SL_EINVAL;
    sl_otlp_exporter *ex = calloc(1, sizeof *ex);
    if (!ex) return SL_ENOMEM;
    if (sl_otlp_endpoint_parse(cfg->endpoint, strlen(cfg->endpoint), &ex->ep) != 0) {
        free(ex);
        return SL_EINVAL;
    }
    snprintf(ex->service_name, sizeof ex->service_name, "%s", cfg->resource.service_name);
    snprintf(ex->service_version, sizeof ex->service_version, "%s",
             cfg->resource.service_version ? cfg->resource.service_version : "");
    snprintf(ex->instance_id, sizeof ex->instance_id, "%s",
             cfg->resource.instance_id ? cfg->resource.instance_id : "");
    ex->res = (sl_otlp_resource){.service_name = ex->service_name,
                                 .service_version = ex->service_version,
                                 .instance_id = ex->instance_id};
    ex->batch_max = cfg->batch_max;
    ex->flush_ms = cfg->flush_ms;
    ex->timeout_ms = cfg->timeout_ms;
    ex->poll_ms = cfg->poll_ms;
    ex->shard = cfg->shard;
    ex->fd = -1;
    ex->max_tracers = cfg->max_tracers;
    sl_otlp_enc_init(&ex->enc, cfg->max_request_bytes);
    ex->tracers = calloc(cfg->max_tracers, sizeof *ex->tracers);
    ex->seen_full = calloc(cfg->max_tracers, sizeof *ex->seen_full);
    pthread_mutex_init(&ex->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ex->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = ex->tracers && ex->seen_full ? 0 : SL_ENOMEM;
    if (rc == 0 && cfg->metrics) rc = register_metrics(ex, cfg->metrics);
    if (rc != 0) {
        sl_otlp_exporter_free(ex);
        return rc;
    }
    *out = ex;
    return 0;
}

int sl_otlp_exporter_add(sl_otlp_exporter *ex, sl_tracer *tracer)
{
    SL_ASSERT(ex && tracer);
    pthread_mutex_lock(&ex->mu);
    int rc = SL_ELIMIT;
    if (ex->ntracers < ex->max_tracers) {
        sl_tracer_stats st;
        sl_tracer_stats_get(tracer, &st);
        ex->seen_full[ex->ntracers] = st.dropped_full;
        ex->tracers[ex->ntracers++] = tracer;
        rc = 0;
    }
    pthread_mutex_unlock(&ex->mu);
    return rc;
}

/* Sends the body being built (if it holds spans) and counts the outcome. */
static void flush(sl_otlp_exporter *ex)
{
    sl_otlp_enc *e = &ex->enc;
    if (e->head_len == 0 || e->nspans == 0) return;
    sl_otlp_enc_end(e);
    int status = 0;
    int rc = sl__otlp_post(&ex->ep, &ex->fd, e->buf, e->len, ex->timeout_ms, &status);
    uint64_t n = e->nspans;
    if (rc == 0 && status >= 200 && status < 300) {
        count(ex, &ex->exported, ex->s_exported, n);
        count(ex, &ex->requests[REQ_OK], ex->s_requests[REQ_OK], 1);
    } else {
        int r = rc == 0 ? REQ_HTTP : rc == SL_ETIMEDOUT ? REQ_TIMEOUT : REQ_CONNECT;
        count(ex, &ex->requests[r], ex->s_requests[r], 1);
        count(ex, &ex->dropped[DROP_FAILED], ex->s_dropped[DROP_FAILED], n);
    }
    e->head_len = 0; /* the next span begins a new body */
    e->nspans = 0;
}

static int add_span(sl_otlp_exporter *ex, const sl_span_data *span)
{
    sl_otlp_enc *e = &ex->enc;
    if (e->head_len == 0 && sl_otlp_enc_begin(e, &ex->res) != 0) return SL_ENOMEM;
    return sl_otlp_enc_span(e, span);
}

static void on_span(const sl_span_data *span, void *data)
{
    sl_otlp_exporter *ex = data;
    int rc = add_span(ex, span);
    if (rc == SL_ELIMIT && ex->enc.nspans > 0) {
        flush(ex); /* the body is full in bytes before in spans: send it and start another */
        rc = add_span(ex, span);
    }
    if (rc != 0) {
        count(ex, &ex->dropped[DROP_LARGE], ex->s_dropped[DROP_LARGE], 1);
        return;
    }
    if (ex->enc.nspans == 1) ex->batch_since_ms = now_ms();
    if (ex->enc.nspans >= ex->batch_max) flush(ex);
}

/* One pass over the tracers: drain what is waiting, count what they dropped. */
static void drain_all(sl_otlp_exporter *ex)
{
    pthread_mutex_lock(&ex->mu);
    uint32_t n = ex->ntracers;
    pthread_mutex_unlock(&ex->mu);
    for (uint32_t i = 0; i < n; i++) {
        sl_tracer *t = ex->tracers[i];
        while (sl_tracer_drain(t, on_span, ex, ex->batch_max) > 0) {
        }
        sl_tracer_stats st;
        sl_tracer_stats_get(t, &st);
        if (st.dropped_full > ex->seen_full[i]) {
            count(ex, &ex->dropped[DROP_FULL], ex->s_dropped[DROP_FULL],
                  st.dropped_full - ex->seen_full[i]);
            ex->seen_full[i] = st.dropped_full;
        }
    }
}

static void *run(void *arg)
{
    sl_otlp_exporter *ex = arg;
    for (;;) {
        pthread_mutex_lock(&ex->mu);
        int stop = ex->stop;
        if (!stop) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += (long)(ex->poll_ms % 1000) * 1000000L;
            ts.tv_sec += ex->poll_ms / 1000 + ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&ex->cv, &ex->mu, &ts);
            stop = ex->stop;
        }
        pthread_mutex_unlock(&ex->mu);
        drain_all(ex);
        if (ex->enc.nspans > 0 && (stop || now_ms() - ex->batch_since_ms >= ex->flush_ms))
            flush(ex);
        if (stop) break;
    }
    sl__otlp_close(&ex->fd);
    return NULL;
}

int sl_otlp_exporter_start(sl_otlp_exporter *ex)
{
    SL_ASSERT(ex && !ex->running);
    int rc = pthread_create(&ex->thread, NULL, run, ex);
    if (rc != 0) return -rc;
    ex->running = 1;
    return 0;
}

void sl_otlp_exporter_stop(sl_otlp_exporter *ex)
{
    if (!ex || !ex->running) return;
    pthread_mutex_lock(&ex->mu);
    ex->stop = 1;
    pthread_cond_signal(&ex->cv);
    pthread_mutex_unlock(&ex->mu);
    pthread_join(ex->thread, NULL);
    ex->running = 0;
}

void sl_otlp_exporter_free(sl_otlp_exporter *ex)
{
    if (!ex) return;
    sl_otlp_exporter_stop(ex);
    pthread_cond_destroy(&ex->cv);
    pthread_mutex_destroy(&ex->mu);
    sl_otlp_enc_free(&ex->enc);
    free(ex->tracers);
    free(ex->seen_full);
    free(ex);
}

void sl_otlp_exporter_stats(const sl_otlp_exporter *ex, sl_otlp_stats *out)
{
    SL_ASSERT(ex && out);
    sl_otlp_exporter *m = (sl_otlp_exporter *)ex;
    out->exported = atomic_load_explicit(&m->exported, memory_order_relaxed);
    out->dropped_failed = atomic_load_explicit(&m->dropped[DROP_FAILED], memory_order_relaxed);
    out->dropped_full = atomic_load_explicit(&m->dropped[DROP_FULL], memory_order_relaxed);
    out->dropped_large = atomic_load_explicit(&m->dropped[DROP_LARGE], memory_order_relaxed);
    out->requests_ok = atomic_load_explicit(&m->requests[REQ_OK], memory_order_relaxed);
    uint64_t f = 0;
    for (int i = REQ_HTTP; i < NREQ; i++)
        f += atomic_load_explicit(&m->requests[i], memory_order_relaxed);
    out->requests_failed = f;
}
