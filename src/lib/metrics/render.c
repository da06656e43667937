/*
 * Prometheus text exposition format 0.0.4: `# HELP` (with `\\` and `\n`
 * escaped), `# TYPE`, then one line per sample; label values escape `\\`,
 * `\"` and `\n`. Histograms give cumulative `_bucket{le=...}` lines ending in
 * `+Inf`, then `_sum` and `_count` (the count is the +Inf bucket, so the two
 * always agree even while workers write). Series are sorted by label values
 * so the output does not depend on creation order.
 */
#include "metrics_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RENDER_MAX_BYTES ((size_t)64 << 20)

typedef struct dbuf {
    char *p;
    size_t len, cap;
    int err; /* first error; later appends are ignored */
} dbuf;

static void put(dbuf *b, const char *s, size_t n)
{
    if (b->err) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (cap > RENDER_MAX_BYTES) {
            b->err = SL_ELIMIT;
            return;
        }
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->err = SL_ENOMEM;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(dbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Escapes backslash and newline, plus the double quote when `quote` (label values). */
static void put_escaped(dbuf *b, const char *s, int quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        if (*s == '\\') rep = "\\\\";
        if (*s == '\n') rep = "\\n";
        if (*s == '"' && quote) rep = "\\\"";
        if (rep == NULL) continue;
        put(b, run, (size_t)(s - run));
        puts_(b, rep);
        run = s + 1;
    }
    put(b, run, (size_t)(s - run));
}

/* Go-compatible float text: +Inf, -Inf, NaN, else the shortest %g that round-trips. */
static void put_double(dbuf *b, double v)
{
    char num[40];
    if (isnan(v)) {
        puts_(b, "NaN");
        return;
    }
    if (isinf(v)) {
        puts_(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    snprintf(num, sizeof num, "%.15g", v);
    if (strtod(num, NULL) != v) snprintf(num, sizeof num, "%.17g", v);
    puts_(b, num);
}

static void put_u64(dbuf *b, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRIu64, v);
    put(b, num, (size_t)n);
}

/* `name``suffix`{labels[,le="..."]} — braces omitted when there is nothing inside. */
static void put_sample_name(dbuf *b, const sl_series *s, const char *suffix, const double *le)
{
    const sl_metric_family *f = s->fam;
    puts_(b, f->name);
    puts_(b, suffix);
    if (f->n_labels == 0 && le == NULL) {
        put(b, " ", 1);
        return;
    }
    put(b, "{", 1);
    for (size_t i = 0; i < f->n_labels; i++) {
        if (i > 0) put(b, ",", 1);
        puts_(b, f->labels[i]);
        put(b, "=\"", 2);
        put_escaped(b, s->values[i], 1);
        put(b, "\"", 1);
    }
    if (le != NULL) {
        if (f->n_labels > 0) put(b, ",", 1);
        put(b, "le=\"", 4);
        put_double(b, *le);
        put(b, "\"", 1);
    }
    put(b, "} ", 2);
}

static void render_series(dbuf *b, const sl_series *s)
{
    const sl_metric_family *f = s->fam;
    switch (f->type) {
    case SL_METRIC_COUNTER:
        put_sample_name(b, s, "", NULL);
        put_u64(b, sl_counter_value(s));
        put(b, "\n", 1);
        break;
    case SL_METRIC_GAUGE:
        put_sample_name(b, s, "", NULL);
        put_double(b, metrics_gauge_read(s));
        put(b, "\n", 1);
        break;
    case SL_METRIC_HISTOGRAM: {
        uint64_t buckets[SL_METRICS_BUCKETS_MAX + 1], cum = 0;
        double sum;
        metrics_histogram_read(s, buckets, &sum);
        for (size_t i = 0; i <= f->n_bounds; i++) {
            double le = i < f->n_bounds ? f->bounds[i] : INFINITY;
            cum += buckets[i];
            put_sample_name(b, s, "_bucket", &le);
            put_u64(b, cum);
            put(b, "\n", 1);
        }
        put_sample_name(b, s, "_sum", NULL);
        put_double(b, sum);
        put(b, "\n", 1);
        put_sample_name(b, s, "_count", NULL);
        put_u64(b, cum);
        put(b, "\n", 1);
        break;
    }
    }
}

static int compare_series(const void *a, const void *b)
{
    const sl_series *x = *(const sl_series *const *)a;
    const sl_series *y = *(const sl_series *const *)b;
    for (size_t i = 0; i < x->fam->n_labels; i++) {
        int c = strcmp(x->values[i], y->values[i]);
        if (c != 0) return c;
    }
    return 0;
}

static const char *type_name(sl_metric_type t)
{
    switch (t) {
    case SL_METRIC_COUNTER:
        return "counter";
    case SL_METRIC_GAUGE:
        return "gauge";
    case SL_METRIC_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

static void render_family(dbuf *b, const sl_metric_family *f, sl_series **scratch)
{
    puts_(b, "# HELP ");
    puts_(b, f->name);
    put(b, " ", 1);
    put_escaped(b, f->help, 0);
    puts_(b, "\n# TYPE ");
    puts_(b, f->name);
    put(b, " ", 1);
    puts_(b, type_name(f->type));
    put(b, "\n", 1);
    size_t n = f->n_series;
    if (n > 0) memcpy(scratch, f->series, n * sizeof *scratch);
    /* The overflow series appears once it has been handed out. */
    if (atomic_load_explicit(&f->overflows, memory_order_relaxed) > 0) scratch[n++] = f->overflow;
    qsort(scratch, n, sizeof *scratch, compare_series);
    for (size_t i = 0; i < n; i++)
        render_series(b, scratch[i]);
}

/* One unlabelled sample of a process family; left out when the value could not be read. */
static void render_process_one(dbuf *b, const char *name, const char *type, const char *help,
                               double v)
{
    if (v < 0) return;
    puts_(b, "# HELP ");
    puts_(b, name);
    put(b, " ", 1);
    puts_(b, help);
    puts_(b, "\n# TYPE ");
    puts_(b, name);
    put(b, " ", 1);
    puts_(b, type);
    put(b, "\n", 1);
    puts_(b, name);
    put(b, " ", 1);
    put_double(b, v);
    put(b, "\n", 1);
}

static void render_process(dbuf *b, const sl__metrics_process_values *v)
{
    render_process_one(b, "process_cpu_seconds_total", "counter",
                       "Total user and system CPU time spent in seconds.", v->cpu_seconds);
    render_process_one(b, "process_resident_memory_bytes", "gauge",
                       "Resident memory size in bytes.", v->resident_bytes);
    render_process_one(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                       v->virtual_bytes);
    render_process_one(b, "process_open_fds", "gauge", "Number of open file descriptors.",
                       v->open_fds);
    render_process_one(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
                       v->max_fds);
}

int sl_metrics_render(sl_metrics *reg, char **out, size_t *len)
{
    dbuf b = {0};
    sl__metrics_process_values proc;
    int with_process = atomic_load_explicit(&reg->process, memory_order_relaxed);
    if (with_process) sl__metrics_process_read(&proc); /* before the mutex: file I/O */
    sl_series **scratch = NULL;
    size_t scratch_cap = 0;
    put(&b, "", 0); /* an empty registry still gives a NUL-terminated "" */
    pthread_mutex_lock(&reg->mu);
    for (size_t i = 0; i < reg->n_families && !b.err; i++) {
        const sl_metric_family *f = reg->families[i];
        if (f->n_series + 1 > scratch_cap) {
            sl_series **p = realloc(scratch, (f->n_series + 1) * sizeof *p);
            if (p == NULL) {
                b.err = SL_ENOMEM;
                break;
            }
            scratch = p;
            scratch_cap = f->n_series + 1;
        }
        render_family(&b, f, scratch);
    }
    pthread_mutex_unlock(&reg->mu);
    free(scratch);
    if (with_process) render_process(&b, &proc);
    if (b.err) {
        free(b.p);
        return b.err;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}
