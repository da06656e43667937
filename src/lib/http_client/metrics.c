/*
 * Metrics and breaker-transition logging of the HTTP client.
 *
 * Families are registered once per registry; every worker's upstream (and
 * every upstream) looks them up when they already exist and caches its own
 * series, so the hot path is a sharded counter add. The breaker state gauge
 * has a `worker` label because each worker has its own breaker.
 *
 *   http_client_requests_total{upstream,result}     calls by final result
 *   http_client_attempts_total{upstream,outcome}    attempts by outcome
 *   http_client_retries_total{upstream}
 *   http_client_retry_budget_exhausted_total{upstream}
 *   http_client_breaker_rejections_total{upstream}
 *   http_client_bulkhead_rejections_total{upstream}
 *   http_client_local_attempts_total{upstream}     attempts dispatched in process
 *   http_client_bulkhead_in_flight{upstream}        permits held (all workers)
 *   http_client_request_duration_seconds{upstream}  whole call, retries included
 *   circuit_breaker_state{upstream,worker}          0 closed, 1 open, 2 half-open
 *   circuit_breaker_transitions_total{upstream,from,to}
 */
#include "client_int.h"

#include <stdio.h>

void sl__http_metrics_inc(sl_series *s, const up_metrics *m)
{
    if (s) sl_counter_inc(s, m->shard);
}

typedef enum { FAM_COUNTER, FAM_GAUGE, FAM_HISTOGRAM } fam_type;

static int family(sl_metrics *reg, fam_type type, const char *name, const char *help,
                  const char *const *labels, size_t n, sl_metric_family **out)
{
    int rc;
    if (type == FAM_COUNTER)
        rc = sl_metrics_counter(reg, name, help, labels, n, out);
    else if (type == FAM_GAUGE)
        rc = sl_metrics_gauge(reg, name, help, labels, n, out);
    else
        rc = sl_metrics_histogram(reg, name, help, labels, n, NULL, 0, out);
    if (rc == SL_EEXIST) rc = sl_metrics_family_find(reg, name, out);
    return rc;
}

static int simple(sl_metrics *reg, fam_type type, const char *name, const char *help,
                  const char *upstream, sl_series **out)
{
    static const char *const labels[] = {"upstream"};
    sl_metric_family *f;
    int rc = family(reg, type, name, help, labels, 1, &f);
    if (rc != 0) return rc;
    const char *values[] = {upstream};
    *out = sl_metric_series(f, values);
    return 0;
}

int sl__http_metrics_setup(sl_upstream *up, sl_metrics *reg, unsigned shard)
{
    up_metrics *m = &up->m;
    m->shard = shard;
    up->metrics = reg;
    sl_metric_family *f;
    static const char *const res_labels[] = {"upstream", "result"};
    int rc = family(reg, FAM_COUNTER, "http_client_requests_total",
                    "HTTP client calls by final result.", res_labels, 2, &f);
    if (rc != 0) return rc;
    for (int k = 0; k < SL_HTTP_RESULT_COUNT; k++) {
        const char *v[] = {up->name, sl_http_result_kind_name((sl_http_result_kind)k)};
        m->requests[k] = sl_metric_series(f, v);
    }
    static const char *const out_labels[] = {"upstream", "outcome"};
    rc = family(reg, FAM_COUNTER, "http_client_attempts_total", "HTTP client attempts by outcome.",
                out_labels, 2, &f);
    if (rc != 0) return rc;
    for (int k = 0; k < SL_OUTCOME_KIND_COUNT; k++) {
        const char *v[] = {up->name, sl_outcome_kind_name((sl_outcome_kind)k)};
        m->attempts[k] = sl_metric_series(f, v);
    }
    if ((rc = simple(reg, FAM_COUNTER, "http_client_retries_total", "Retries granted.", up->name,
                     &m->retries)) ||
        (rc = simple(reg, FAM_COUNTER, "http_client_retry_budget_exhausted_total",
                     "Retries refused by the retry budget.", up->name, &m->budget_exhausted)) ||
        (rc = simple(reg, FAM_COUNTER, "http_client_breaker_rejections_total",
                     "Attempts refused by an open circuit breaker.", up->name,
                     &m->breaker_rejections)) ||
        (rc = simple(reg, FAM_COUNTER, "http_client_bulkhead_rejections_total",
                     "Calls refused by a full bulkhead.", up->name, &m->bulkhead_rejections)) ||
        (rc = simple(reg, FAM_COUNTER, "http_client_local_attempts_total",
                     "Attempts dispatched in process to a co-located server (no socket).", up->name,
                     &m->local_attempts)) ||
        (rc = simple(reg, FAM_GAUGE, "http_client_bulkhead_in_flight",
                     "Bulkhead permits held, all workers.", up->name, &m->in_flight)) ||
        (rc = simple(reg, FAM_HISTOGRAM, "http_client_request_duration_seconds",
                     "Duration of HTTP client calls, retries included.", up->name, &m->duration)))
        return rc;
    static const char *const st_labels[] = {"upstream", "worker"};
    rc = family(reg, FAM_GAUGE, "circuit_breaker_state",
                "Circuit breaker state: 0 closed, 1 open, 2 half-open.", st_labels, 2, &f);
    if (rc != 0) return rc;
    char worker[16];
    snprintf(worker, sizeof worker, "%u", shard);
    const char *sv[] = {up->name, worker};
    m->breaker_state = sl_metric_series(f, sv);
    sl_gauge_set(m->breaker_state, 0);
    static const char *const tr_labels[] = {"upstream", "from", "to"};
    rc = family(reg, FAM_COUNTER, "circuit_breaker_transitions_total",
                "Circuit breaker state changes.", tr_labels, 3, &f);
    if (rc != 0) return rc;
    for (int a = 0; a < SL_BREAKER_STATE_COUNT; a++)
        for (int b = 0; b < SL_BREAKER_STATE_COUNT; b++) {
            if (a == b) continue;
            const char *v[] = {up->name, sl_breaker_state_name((sl_breaker_state)a),
                               sl_breaker_state_name((sl_breaker_state)b)};
            m->transitions[a][b] = sl_metric_series(f, v);
        }
    return 0;
}

void sl__http_breaker_transition(sl_breaker_state from, sl_breaker_state to,
                                 sl_breaker_reason reason, void *data)
{
    sl_upstream *up = data;
    if (up->m.breaker_state) sl_gauge_set(up->m.breaker_state, (double)to);
    if ((unsigned)from < SL_BREAKER_STATE_COUNT && (unsigned)to < SL_BREAKER_STATE_COUNT)
        sl__http_metrics_inc(up->m.transitions[from][to], &up->m);
    if (!up->log) return;
    sl_log_level level = to == SL_BREAKER_OPEN ? SL_LOG_LEVEL_WARN : SL_LOG_LEVEL_INFO;
    SL_LOG_AT(up->log, level, NULL, "circuit breaker state change",
              SL_LOG_STR("upstream", up->name), SL_LOG_STR("from", sl_breaker_state_name(from)),
              SL_LOG_STR("to", sl_breaker_state_name(to)),
              SL_LOG_STR("reason", sl_breaker_reason_name(reason)));
}
