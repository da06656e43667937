/*
 * Prometheus wiring for sagas (docs/sagas.md, "Driver and wiring"): the gauge
 * saga_instances{type,status} and the counter
 * saga_transitions_total{type,from,to}, fed by the driver's status-change
 * hook. Series are looked up per transition (registry mutex): a saga makes a
 * handful of transitions in its life, far from a hot path.
 */
#include "saga/saga_int.h"

int sl_saga_metrics_init(sl_saga_metrics *m, sl_metrics *reg, unsigned shard)
{
    static const char *const inst_labels[] = {"type", "status"};
    static const char *const trans_labels[] = {"type", "from", "to"};
    m->_instances = NULL;
    m->_transitions = NULL;
    m->_shard = shard;
    int rc = sl_metrics_gauge(reg, "saga_instances",
                              "Saga instances by type and status (running, compensating, "
                              "completed, compensated, stuck).",
                              inst_labels, 2, &m->_instances);
    if (rc != 0) return rc;
    return sl_metrics_counter(reg, "saga_transitions_total",
                              "Saga status changes; from=\"new\" for a started saga.", trans_labels,
                              3, &m->_transitions);
}

void sl_saga_metrics_hook(void *data, const char *type, sl_saga_status from, sl_saga_status to)
{
    sl_saga_metrics *m = data;
    if (m == NULL || m->_instances == NULL || m->_transitions == NULL) return;
    const char *from_name = from == SL_SAGA_STATUS_COUNT ? "new" : sl_saga_status_name(from);
    if (from != SL_SAGA_STATUS_COUNT) {
        const char *const lv[] = {type, from_name};
        sl_gauge_add(sl_metric_series(m->_instances, lv), -1);
    }
    const char *const lt[] = {type, sl_saga_status_name(to)};
    sl_gauge_add(sl_metric_series(m->_instances, lt), 1);
    const char *const lc[] = {type, from_name, sl_saga_status_name(to)};
    sl_counter_inc(sl_metric_series(m->_transitions, lc), m->_shard);
}

void sl_saga_metrics_set(void *data, const char *type, sl_saga_status status, int64_t count)
{
    sl_saga_metrics *m = data;
    if (m == NULL || m->_instances == NULL) return;
    const char *const lv[] = {type, sl_saga_status_name(status)};
    sl_gauge_set(sl_metric_series(m->_instances, lv), (double)count);
}
