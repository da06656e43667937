/*
 * Prometheus metrics for libshoal: a registry of counter, gauge and histogram
 * families with labels, rendered in the Prometheus text exposition format
 * 0.0.4 for `/metrics`.
 *
 * Hot path: counters and histograms keep one cache-line-padded slot per
 * shard, where a shard is the index of the worker thread, passed explicitly.
 * Only that thread writes its slot (a relaxed atomic load and store: no lock,
 * no locked instruction); the scraper reads every slot with relaxed loads and
 * sums them. Gauges are one atomic value (or a callback evaluated at scrape
 * time). Creating families and series takes the registry mutex; callers look
 * series up once and keep the handle.
 */
#ifndef SHOAL_METRICS_H
#define SHOAL_METRICS_H

#include <shoal/common.h>

#include <stddef.h>
#include <stdint.h>

#define SL_METRICS_LABELS_MAX         8
#define SL_METRICS_FAMILIES_MAX       256
#define SL_METRICS_BUCKETS_MAX        32
#define SL_METRICS_SHARDS_MAX         256
#define SL_METRICS_SERIES_MAX_DEFAULT 10000
#define SL_METRICS_NAME_MAX           200
#define SL_METRICS_HELP_MAX           1024
#define SL_METRICS_LABEL_VALUE_MAX    256 /* longer label values are truncated */
/* Label value given to every label of a family's overflow series. */
#define SL_METRICS_OVERFLOW_VALUE "__overflow__"

typedef struct sl_metrics sl_metrics;
typedef struct sl_metric_family sl_metric_family;
typedef struct sl_series sl_series;

/*
 * Creates a registry whose counters and histograms have `max_shards` slots
 * (1..SL_METRICS_SHARDS_MAX; one per worker thread). Returns 0 and *out
 * (returns owned: free with sl_metrics_free), SL_EINVAL or SL_ENOMEM.
 */
SL_API int sl_metrics_new(unsigned max_shards, sl_metrics **out) SL_MUST_CHECK;

/* Frees the registry, its families and series. No thread may use any handle afterwards. */
SL_API void sl_metrics_free(sl_metrics *reg);

/*
 * Sets the maximum number of series per family created from now on
 * (default SL_METRICS_SERIES_MAX_DEFAULT, at least 1). Thread-safe.
 */
SL_API void sl_metrics_set_series_limit(sl_metrics *reg, size_t max_series);

/*
 * Registers a family. `name` must match [a-zA-Z_:][a-zA-Z0-9_:]*, each label
 * name [a-zA-Z_][a-zA-Z0-9_]* and not start with "__" (nor be "le" for a
 * histogram), no duplicates, at most SL_METRICS_LABELS_MAX. `help` is
 * required (may be ""). Everything is copied. Returns 0 and *out (valid until
 * sl_metrics_free), SL_EINVAL for an invalid name/label/help, SL_EEXIST when
 * the name is taken, SL_ELIMIT beyond SL_METRICS_FAMILIES_MAX, SL_ENOMEM.
 * Thread-safe (takes the registry mutex).
 */
SL_API int sl_metrics_counter(sl_metrics *reg, const char *name, const char *help,
                              const char *const *label_names, size_t n_labels,
                              sl_metric_family **out) SL_MUST_CHECK;
SL_API int sl_metrics_gauge(sl_metrics *reg, const char *name, const char *help,
                            const char *const *label_names, size_t n_labels,
                            sl_metric_family **out) SL_MUST_CHECK;

/*
 * Like sl_metrics_counter, for a histogram with upper bounds `bounds`
 * (`n_bounds` finite values, strictly increasing, at most
 * SL_METRICS_BUCKETS_MAX; +Inf is implicit). `bounds` NULL selects the
 * default latency buckets in seconds: .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10.
 */
SL_API int sl_metrics_histogram(sl_metrics *reg, const char *name, const char *help,
                                const char *const *label_names, size_t n_labels,
                                const double *bounds, size_t n_bounds,
                                sl_metric_family **out) SL_MUST_CHECK;

/*
 * Finds the family registered as `name` (borrowed). Returns 0 and *out (valid
 * until sl_metrics_free), or SL_ENOTFOUND. For modules that keep one instance
 * per worker thread over a shared registry: register the family, and on
 * SL_EEXIST look it up (the caller owns the name, so its type and labels are
 * the ones it registered). Thread-safe (takes the registry mutex).
 */
SL_API int sl_metrics_family_find(sl_metrics *reg, const char *name,
                                  sl_metric_family **out) SL_MUST_CHECK;

/*
 * Returns the series of `fam` for `label_values` (one per label name, in the
 * same order; NULL stands for ""; copied, truncated to
 * SL_METRICS_LABEL_VALUE_MAX bytes). Creates it on first use. Never NULL:
 * beyond the family's series limit (or if memory runs out) it returns the
 * family's shared overflow series, whose labels all read
 * SL_METRICS_OVERFLOW_VALUE, and counts the event. The handle is valid until
 * sl_metrics_free. Thread-safe (takes the registry mutex: cache the handle,
 * do not call this per request).
 */
SL_API sl_series *sl_metric_series(sl_metric_family *fam, const char *const *label_values);

/* Number of times sl_series returned the overflow series. Thread-safe. */
SL_API uint64_t sl_metric_family_overflows(sl_metric_family *fam);

/*
 * Hot path. `shard` < max_shards, and each shard must be written by one
 * thread only (its worker). Lock-free; never blocks.
 */
SL_API void sl_counter_add(sl_series *s, unsigned shard, uint64_t v);
SL_API void sl_counter_inc(sl_series *s, unsigned shard);
/* Records `value` (NaN is ignored). */
SL_API void sl_histogram_observe(sl_series *s, unsigned shard, double value);

/* Gauges: one atomic value, set or added from any thread. */
SL_API void sl_gauge_set(sl_series *s, double value);
SL_API void sl_gauge_add(sl_series *s, double delta);

/* Computes a gauge's value at scrape time. Runs on the rendering thread with the
 * registry mutex held: it must be thread-safe, quick, and not call this module. */
typedef double (*sl_gauge_fn)(void *data);

/*
 * Turns gauge series `s` into a callback gauge: from now on its value is
 * fn(data) at each render; fn NULL reverts to the stored value. `data` is
 * borrowed until the registry is freed or the callback replaced. Thread-safe.
 */
SL_API void sl_gauge_set_fn(sl_series *s, sl_gauge_fn fn, void *data);

/* Current values (sum over shards); any thread; concurrent writes may or may not be seen. */
SL_API uint64_t sl_counter_value(const sl_series *s);
SL_API double sl_gauge_value(const sl_series *s);
/* Histogram total count and sum. */
SL_API uint64_t sl_histogram_count(const sl_series *s);
SL_API double sl_histogram_sum(const sl_series *s);

/*
 * Renders every family in registration order, series sorted by label values,
 * in the text format 0.0.4 (Content-Type "text/plain; version=0.0.4").
 * Returns 0 with *out (returns owned: free with free(); NUL-terminated) and
 * *len, SL_ENOMEM, or SL_ELIMIT when the text would exceed 64 MiB.
 * Thread-safe (takes the registry mutex; workers are never blocked).
 */
SL_API int sl_metrics_render(sl_metrics *reg, char **out, size_t *len) SL_MUST_CHECK;

/*
 * The standard process families, rendered after the registered ones by every
 * sl_metrics_render once enabled: process_cpu_seconds_total (counter),
 * process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_open_fds and process_max_fds (gauges). Values are read at render
 * time from /proc/self/stat, /proc/self/fd and getrlimit(RLIMIT_NOFILE): one
 * file read, one directory listing and one system call per scrape, done
 * before the registry mutex is taken. A value that cannot be read is left out
 * (its family with it). The caller must not register these five names itself.
 * Thread-safe.
 */
SL_API void sl_metrics_enable_process(sl_metrics *reg);

/* What sl_metrics_proc_stat_parse takes from one /proc/<pid>/stat line. */
typedef struct sl_proc_stat {
    uint64_t utime_ticks; /* field 14, clock ticks in user mode */
    uint64_t stime_ticks; /* field 15, clock ticks in kernel mode */
    uint64_t vsize_bytes; /* field 23 */
    uint64_t rss_pages;   /* field 24 */
} sl_proc_stat;

/*
 * Parses the text of /proc/<pid>/stat (`len` bytes, need not be
 * NUL-terminated; at most 4096 are looked at). The command name in
 * parentheses may hold any byte, so fields are counted from the last ')'.
 * Returns 0 and *out, or SL_EPARSE for a text that is not such a line. Pure.
 */
SL_API int sl_metrics_proc_stat_parse(const char *text, size_t len,
                                      sl_proc_stat *out) SL_MUST_CHECK;

#endif /* SHOAL_METRICS_H */
