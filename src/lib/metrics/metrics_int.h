/* Internal definitions shared by the metrics registry (metrics.c) and renderer (render.c). */
#ifndef SHOAL_METRICS_INT_H
#define SHOAL_METRICS_INT_H

#include <shoal/metrics.h>

#include <pthread.h>
#include <stdatomic.h>

#define CACHE_LINE 64

typedef enum sl_metric_type {
    SL_METRIC_COUNTER,
    SL_METRIC_GAUGE,
    SL_METRIC_HISTOGRAM,
} sl_metric_type;

struct sl_series {
    sl_metric_family *fam;
    uint64_t hash;
    /* Counter: cells[shard * stride]. Histogram: per shard n_bounds+1 bucket counts
     * (not cumulative) then the sum's bits. NULL for gauges. */
    _Atomic uint64_t *cells;
    _Atomic uint64_t gauge_bits; /* a double's bits */
    sl_gauge_fn fn;              /* callback gauge; guarded by the registry mutex */
    void *fn_data;
    const char *values[SL_METRICS_LABELS_MAX]; /* point into the same allocation */
};

struct sl_metric_family {
    sl_metrics *reg;
    sl_metric_type type;
    char name[SL_METRICS_NAME_MAX + 1];
    char help[SL_METRICS_HELP_MAX + 1];
    size_t n_labels;
    char labels[SL_METRICS_LABELS_MAX][SL_METRICS_NAME_MAX + 1];
    size_t n_bounds;
    double bounds[SL_METRICS_BUCKETS_MAX];
    size_t stride; /* cells per shard, a whole number of cache lines */
    size_t max_series;
    /* Guarded by the registry mutex: */
    sl_series **series; /* creation order */
    size_t n_series;
    sl_series **table; /* open addressing by hash */
    size_t table_cap;
    sl_series *overflow;
    _Atomic uint64_t overflows;
};

struct sl_metrics {
    pthread_mutex_t mu;
    unsigned shards;
    size_t series_limit;
    size_t n_families;
    sl_metric_family *families[SL_METRICS_FAMILIES_MAX];
    _Atomic int process; /* sl_metrics_enable_process was called */
};

/* The process values of one scrape (process.c); a field is < 0 when it could not be read. */
typedef struct sl__metrics_process_values {
    double cpu_seconds, resident_bytes, virtual_bytes, open_fds, max_fds;
} sl__metrics_process_values;

/* Reads the process values now (no lock held; bounded: one file, one directory, one call). */
void sl__metrics_process_read(sl__metrics_process_values *v);

/* Value readers used by the renderer; the caller holds the registry mutex for gauges. */
double metrics_gauge_read(const sl_series *s);
void metrics_histogram_read(const sl_series *s, uint64_t *buckets, double *sum);

#endif /* SHOAL_METRICS_INT_H */
