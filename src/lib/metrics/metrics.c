/*
 * The metrics registry: families in an array (registration order), each with
 * an open-addressing hash of its series (bounded by the series limit) and an
 * array of them in creation order. Series values live in per-shard cells of
 * one cache line or more, written by one thread with relaxed load+store.
 * Rendering (render.c) takes the same mutex as series creation, so the set of
 * series is stable while it reads; the values themselves are read lock-free.
 */
#include "metrics_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double default_bounds[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};

int sl_metrics_new(unsigned max_shards, sl_metrics **out)
{
    if (out == NULL || max_shards == 0 || max_shards > SL_METRICS_SHARDS_MAX) return SL_EINVAL;
    sl_metrics *reg = calloc(1, sizeof *reg);
    if (reg == NULL) return SL_ENOMEM;
    if (pthread_mutex_init(&reg->mu, NULL) != 0) {
        free(reg);
        return SL_ENOMEM;
    }
    reg->shards = max_shards;
    reg->series_limit = SL_METRICS_SERIES_MAX_DEFAULT;
    *out = reg;
    return 0;
}

static void series_free(sl_series *s)
{
    if (s == NULL) return;
    free(s->cells);
    free(s);
}

static void family_free(sl_metric_family *f)
{
    for (size_t i = 0; i < f->n_series; i++)
        series_free(f->series[i]);
    series_free(f->overflow);
    free(f->series);
    free(f->table);
    free(f);
}

void sl_metrics_free(sl_metrics *reg)
{
    if (reg == NULL) return;
    for (size_t i = 0; i < reg->n_families; i++)
        family_free(reg->families[i]);
    pthread_mutex_destroy(&reg->mu);
    free(reg);
}

void sl_metrics_set_series_limit(sl_metrics *reg, size_t max_series)
{
    pthread_mutex_lock(&reg->mu);
    reg->series_limit = max_series ? max_series : 1;
    pthread_mutex_unlock(&reg->mu);
}

static int valid_name(const char *s, int allow_colon)
{
    size_t n = strnlen(s, SL_METRICS_NAME_MAX + 1);
    if (n == 0 || n > SL_METRICS_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (allow_colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok) return 0;
    }
    return 1;
}

static int valid_labels(const char *const *names, size_t n, sl_metric_type type)
{
    if (n > SL_METRICS_LABELS_MAX || (n > 0 && names == NULL)) return 0;
    for (size_t i = 0; i < n; i++) {
        if (names[i] == NULL || !valid_name(names[i], 0)) return 0;
        if (strncmp(names[i], "__", 2) == 0) return 0; /* reserved for Prometheus */
        if (type == SL_METRIC_HISTOGRAM && strcmp(names[i], "le") == 0) return 0;
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0) return 0;
    }
    return 1;
}

/* Allocates a series with copies of `values` (NULL = all "") and zeroed cells. */
static sl_series *series_new(sl_metric_family *f, const char *const *values)
{
    size_t strings = 0, lens[SL_METRICS_LABELS_MAX];
    for (size_t i = 0; i < f->n_labels; i++) {
        const char *v = values && values[i] ? values[i] : "";
        lens[i] = strnlen(v, SL_METRICS_LABEL_VALUE_MAX);
        strings += lens[i] + 1;
    }
    sl_series *s = calloc(1, sizeof *s + strings);
    if (s == NULL) return NULL;
    s->fam = f;
    char *p = (char *)(s + 1);
    for (size_t i = 0; i < f->n_labels; i++) {
        const char *v = values && values[i] ? values[i] : "";
        memcpy(p, v, lens[i]);
        p[lens[i]] = '\0';
        s->values[i] = p;
        p += lens[i] + 1;
    }
    if (f->type != SL_METRIC_GAUGE) {
        size_t bytes = (size_t)f->reg->shards * f->stride * sizeof(uint64_t);
        s->cells = aligned_alloc(CACHE_LINE, bytes);
        if (s->cells == NULL) {
            free(s);
            return NULL;
        }
        for (size_t i = 0; i < (size_t)f->reg->shards * f->stride; i++)
            atomic_init(&s->cells[i], 0);
    }
    atomic_init(&s->gauge_bits, 0); /* the bits of +0.0 */
    return s;
}

static int family_new(sl_metrics *reg, sl_metric_type type, const char *name, const char *help,
                      const char *const *labels, size_t n_labels, const double *bounds,
                      size_t n_bounds, sl_metric_family **out)
{
    if (reg == NULL || out == NULL || name == NULL || help == NULL || !valid_name(name, 1) ||
        strnlen(help, SL_METRICS_HELP_MAX + 1) > SL_METRICS_HELP_MAX ||
        !valid_labels(labels, n_labels, type))
        return SL_EINVAL;
    if (type == SL_METRIC_HISTOGRAM) {
        if (bounds == NULL) bounds = default_bounds, n_bounds = SL_ARRAY_LEN(default_bounds);
        if (n_bounds == 0 || n_bounds > SL_METRICS_BUCKETS_MAX) return SL_EINVAL;
        for (size_t i = 0; i < n_bounds; i++)
            if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) return SL_EINVAL;
    }
    sl_metric_family *f = calloc(1, sizeof *f);
    if (f == NULL) return SL_ENOMEM;
    f->reg = reg;
    f->type = type;
    strcpy(f->name, name);
    strcpy(f->help, help);
    f->n_labels = n_labels;
    for (size_t i = 0; i < n_labels; i++)
        strcpy(f->labels[i], labels[i]);
    f->n_bounds = type == SL_METRIC_HISTOGRAM ? n_bounds : 0;
    for (size_t i = 0; i < f->n_bounds; i++)
        f->bounds[i] = bounds[i];
    /* Cells per shard: the counter value, or n_bounds+1 bucket counts plus the sum;
     * rounded up to whole cache lines so shards never share one. */
    size_t words = type == SL_METRIC_HISTOGRAM ? f->n_bounds + 2 : 1;
    size_t per_line = CACHE_LINE / sizeof(uint64_t);
    f->stride = (words + per_line - 1) / per_line * per_line;

    const char *ov[SL_METRICS_LABELS_MAX];
    for (size_t i = 0; i < n_labels; i++)
        ov[i] = SL_METRICS_OVERFLOW_VALUE;
    f->overflow = series_new(f, ov);
    if (f->overflow == NULL) {
        free(f);
        return SL_ENOMEM;
    }
    atomic_init(&f->overflows, 0);

    int rc = 0;
    pthread_mutex_lock(&reg->mu);
    f->max_series = reg->series_limit;
    for (size_t i = 0; i < reg->n_families && rc == 0; i++)
        if (strcmp(reg->families[i]->name, name) == 0) rc = SL_EEXIST;
    if (rc == 0 && reg->n_families == SL_METRICS_FAMILIES_MAX) rc = SL_ELIMIT;
    if (rc == 0) reg->families[reg->n_families++] = f;
    pthread_mutex_unlock(&reg->mu);
    if (rc != 0) {
        family_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

int sl_metrics_counter(sl_metrics *reg, const char *name, const char *help,
                       const char *const *label_names, size_t n_labels, sl_metric_family **out)
{
    return family_new(reg, SL_METRIC_COUNTER, name, help, label_names, n_labels, NULL, 0, out);
}

int sl_metrics_gauge(sl_metrics *reg, const char *name, const char *help,
                     const char *const *label_names, size_t n_labels, sl_metric_family **out)
{
    return family_new(reg, SL_METRIC_GAUGE, name, help, label_names, n_labels, NULL, 0, out);
}

int sl_metrics_histogram(sl_metrics *reg, const char *name, const char *help,
                         const char *const *label_names, size_t n_labels, const double *bounds,
                         size_t n_bounds, sl_metric_family **out)
{
    return family_new(reg, SL_METRIC_HISTOGRAM, name, help, label_names, n_labels, bounds, n_bounds,
                      out);
}

int sl_metrics_family_find(sl_metrics *reg, const char *name, sl_metric_family **out)
{
    int rc = SL_ENOTFOUND;
    pthread_mutex_lock(&reg->mu);
    for (size_t i = 0; i < reg->n_families; i++) {
        if (strcmp(reg->families[i]->name, name) == 0) {
            *out = reg->families[i];
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&reg->mu);
    return rc;
}

/* FNV-1a over the label values, each followed by a 0xff separator (never in UTF-8 text). */
static uint64_t hash_values(const sl_metric_family *f, const char *const *values)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < f->n_labels; i++) {
        const char *v = values && values[i] ? values[i] : "";
        size_t n = strnlen(v, SL_METRICS_LABEL_VALUE_MAX);
        for (size_t k = 0; k < n; k++)
            h = (h ^ (unsigned char)v[k]) * 0x100000001b3ULL;
        h = (h ^ 0xff) * 0x100000001b3ULL;
    }
    return h;
}

static int series_matches(const sl_series *s, const char *const *values)
{
    for (size_t i = 0; i < s->fam->n_labels; i++) {
        const char *v = values && values[i] ? values[i] : "";
        size_t n = strnlen(v, SL_METRICS_LABEL_VALUE_MAX);
        if (strncmp(s->values[i], v, n) != 0 || s->values[i][n] != '\0') return 0;
    }
    return 1;
}

/* Grows the table (power of two, at most half full). Returns 0 or SL_ENOMEM. */
static int table_reserve(sl_metric_family *f)
{
    if ((f->n_series + 1) * 2 <= f->table_cap) return 0;
    size_t cap = f->table_cap ? f->table_cap * 2 : 16;
    sl_series **t = calloc(cap, sizeof *t);
    sl_series **arr = realloc(f->series, cap / 2 * sizeof *arr);
    if (t == NULL || arr == NULL) {
        free(t);
        if (arr != NULL) f->series = arr;
        return SL_ENOMEM;
    }
    f->series = arr;
    for (size_t i = 0; i < f->n_series; i++) {
        size_t j = f->series[i]->hash & (cap - 1);
        while (t[j] != NULL)
            j = (j + 1) & (cap - 1);
        t[j] = f->series[i];
    }
    free(f->table);
    f->table = t;
    f->table_cap = cap;
    return 0;
}

sl_series *sl_metric_series(sl_metric_family *f, const char *const *values)
{
    uint64_t h = hash_values(f, values);
    sl_series *found = NULL;
    pthread_mutex_lock(&f->reg->mu);
    if (f->table_cap > 0) {
        for (size_t j = h & (f->table_cap - 1); f->table[j] != NULL;
             j = (j + 1) & (f->table_cap - 1)) {
            if (f->table[j]->hash == h && series_matches(f->table[j], values)) {
                found = f->table[j];
                break;
            }
        }
    }
    if (found == NULL && f->n_series < f->max_series && table_reserve(f) == 0) {
        sl_series *s = series_new(f, values);
        if (s != NULL) {
            s->hash = h;
            size_t j = h & (f->table_cap - 1);
            while (f->table[j] != NULL)
                j = (j + 1) & (f->table_cap - 1);
            f->table[j] = s;
            f->series[f->n_series++] = s;
            found = s;
        }
    }
    pthread_mutex_unlock(&f->reg->mu);
    if (found == NULL) {
        atomic_fetch_add_explicit(&f->overflows, 1, memory_order_relaxed);
        found = f->overflow;
    }
    return found;
}

uint64_t sl_metric_family_overflows(sl_metric_family *fam)
{
    return atomic_load_explicit(&fam->overflows, memory_order_relaxed);
}

/* ---- hot path ------------------------------------------------------------------------- */

static inline void cell_add(_Atomic uint64_t *c, uint64_t v)
{
    /* One writer per cell: a relaxed load and store, no locked read-modify-write. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

void sl_counter_add(sl_series *s, unsigned shard, uint64_t v)
{
    SL_ASSERT(s->fam->type == SL_METRIC_COUNTER && shard < s->fam->reg->shards);
    cell_add(&s->cells[(size_t)shard * s->fam->stride], v);
}

void sl_counter_inc(sl_series *s, unsigned shard)
{
    sl_counter_add(s, shard, 1);
}

static inline double bits_to_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static inline uint64_t double_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

void sl_histogram_observe(sl_series *s, unsigned shard, double value)
{
    const sl_metric_family *f = s->fam;
    SL_ASSERT(f->type == SL_METRIC_HISTOGRAM && shard < f->reg->shards);
    if (isnan(value)) return;
    size_t b = 0;
    while (b < f->n_bounds && value > f->bounds[b]) /* le: value <= bound */
        b++;
    _Atomic uint64_t *cells = &s->cells[(size_t)shard * f->stride];
    cell_add(&cells[b], 1);
    _Atomic uint64_t *sum = &cells[f->n_bounds + 1];
    double total = bits_to_double(atomic_load_explicit(sum, memory_order_relaxed)) + value;
    atomic_store_explicit(sum, double_to_bits(total), memory_order_relaxed);
}

void sl_gauge_set(sl_series *s, double value)
{
    SL_ASSERT(s->fam->type == SL_METRIC_GAUGE);
    atomic_store_explicit(&s->gauge_bits, double_to_bits(value), memory_order_relaxed);
}

void sl_gauge_add(sl_series *s, double delta)
{
    SL_ASSERT(s->fam->type == SL_METRIC_GAUGE);
    /* Gauges may have several writers: compare-and-swap. */
    uint64_t old = atomic_load_explicit(&s->gauge_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&s->gauge_bits, &old,
                                                  double_to_bits(bits_to_double(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

void sl_gauge_set_fn(sl_series *s, sl_gauge_fn fn, void *data)
{
    SL_ASSERT(s->fam->type == SL_METRIC_GAUGE);
    pthread_mutex_lock(&s->fam->reg->mu);
    s->fn = fn;
    s->fn_data = data;
    pthread_mutex_unlock(&s->fam->reg->mu);
}

uint64_t sl_counter_value(const sl_series *s)
{
    uint64_t total = 0;
    for (size_t i = 0; i < s->fam->reg->shards; i++)
        total += atomic_load_explicit(&s->cells[i * s->fam->stride], memory_order_relaxed);
    return total;
}

double metrics_gauge_read(const sl_series *s)
{
    if (s->fn != NULL) return s->fn(s->fn_data);
    return bits_to_double(atomic_load_explicit(&s->gauge_bits, memory_order_relaxed));
}

double sl_gauge_value(const sl_series *s)
{
    pthread_mutex_lock(&s->fam->reg->mu);
    double v = metrics_gauge_read(s);
    pthread_mutex_unlock(&s->fam->reg->mu);
    return v;
}

void metrics_histogram_read(const sl_series *s, uint64_t *buckets, double *sum)
{
    const sl_metric_family *f = s->fam;
    for (size_t b = 0; b <= f->n_bounds; b++)
        buckets[b] = 0;
    *sum = 0;
    for (size_t i = 0; i < f->reg->shards; i++) {
        const _Atomic uint64_t *cells = &s->cells[i * f->stride];
        for (size_t b = 0; b <= f->n_bounds; b++)
            buckets[b] += atomic_load_explicit(&cells[b], memory_order_relaxed);
        *sum += bits_to_double(atomic_load_explicit(&cells[f->n_bounds + 1], memory_order_relaxed));
    }
}

uint64_t sl_histogram_count(const sl_series *s)
{
    uint64_t b[SL_METRICS_BUCKETS_MAX + 1], n = 0;
    double sum;
    metrics_histogram_read(s, b, &sum);
    for (size_t i = 0; i <= s->fam->n_bounds; i++)
        n += b[i];
    return n;
}

double sl_histogram_sum(const sl_series *s)
{
    uint64_t b[SL_METRICS_BUCKETS_MAX + 1];
    double sum;
    metrics_histogram_read(s, b, &sum);
    return sum;
}
