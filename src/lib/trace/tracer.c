/*
 * The per-thread tracer: a preallocated pool of spans, a worker-only free
 * stack, and two single-producer single-consumer rings of span pointers:
 *
 *   worker --(done ring, capacity buffer_spans)--> exporter  (finished spans)
 *   worker <--(back ring, capacity >= pool)------- exporter  (spans to reuse)
 *
 * The worker pushes ended spans into `done`; when it is full the span is
 * dropped and counted, so the worker never waits. The exporter reads spans in
 * place, hands them to its callback, returns them through `back`, then
 * releases the `done` slots. Each ring index is written by one thread only
 * and published with release/acquire, so no locks and no read-modify-write
 * atomics are needed. The pool holds max_active + buffer_spans spans, so a
 * new span is non-recording only when max_active spans are really open.
 *
 * The pool (about 6 KB a span) is allocated zeroed and handed out in order:
 * a span is first written when it is first needed, and freed spans are
 * reused before a new one is touched, so a process holds in memory only as
 * many spans as it had in use at once, not the whole pool (about 7 MB per
 * worker with the defaults).
 */
#include <shoal/trace.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_LINE   64
#define SERVICE_MAX  63
#define RING_MAX     65536u
#define WALL_SYNC_NS 1000000000LL /* a wall clock step shows in span times within 1 s */

struct sl_span {
    sl_tracer *tracer;
    int recording; /* sampled and from the pool: ends up in the done ring */
    int pooled;    /* 0 only for the shared overflow span */
    int tentative; /* unsampled but recording: kept at its end only if an error or slow */
    int64_t start_mono_ns;
    sl_span_data d;
};

/* One SPSC ring. The producer owns `head` and `tail_cache`, the consumer `tail` and
 * `head_cache`; each pair sits on its own cache line. */
typedef struct ring {
    _Alignas(CACHE_LINE) _Atomic size_t head;
    size_t tail_cache;
    _Alignas(CACHE_LINE) _Atomic size_t tail;
    size_t head_cache;
    _Alignas(CACHE_LINE) size_t mask;
    sl_span **slots;
} ring;

struct sl_tracer {
    ring done;
    ring back;
    /* Statistics: written by the worker only (relaxed load + store), read by anyone. */
    _Alignas(CACHE_LINE) _Atomic uint64_t started, recorded, unsampled, pool_exhausted,
        dropped_full, kept_unsampled;
    /* Worker-only state. */
    _Alignas(CACHE_LINE) const sl_clock *clock;
    /* Wall time = monotonic time + wall_off, re-read from the wall clock at most once per
     * WALL_SYNC_NS: a span edge costs one clock read. */
    int64_t wall_off, wall_sync_mono;
    sl_rand *rand;
    double sample_ratio;
    int keep_errors;
    int64_t keep_slow_ns;
    int record_off;
    sl_span *pool;
    size_t n_pool;
    _Atomic size_t n_touched; /* pool[0 .. n_touched) handed out at least once (worker writes) */
    sl_span **free_stack;
    size_t n_free;
    sl_span overflow; /* handed out, non-recording, when the pool is exhausted */
    char service[SERVICE_MAX + 1];
};

static void stat_inc(_Atomic uint64_t *c)
{
    /* Single writer: a relaxed load and store, no locked instruction. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static size_t round_pow2(size_t n)
{
    size_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

static int ring_init(ring *r, size_t cap)
{
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    r->tail_cache = r->head_cache = 0;
    r->mask = cap - 1;
    r->slots = calloc(cap, sizeof *r->slots);
    return r->slots ? 0 : SL_ENOMEM;
}

/* Producer side. Returns 1 when pushed, 0 when full. */
static int ring_push(ring *r, sl_span *s)
{
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (h - r->tail_cache > r->mask) {
        r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (h - r->tail_cache > r->mask) return 0;
    }
    r->slots[h & r->mask] = s;
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    return 1;
}

/* Consumer side: moves up to `max` entries into `out`; returns the count. */
static size_t ring_pop_many(ring *r, sl_span **out, size_t max)
{
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (r->head_cache == t) r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t n = r->head_cache - t;
    if (n > max) n = max;
    for (size_t i = 0; i < n; i++)
        out[i] = r->slots[(t + i) & r->mask];
    atomic_store_explicit(&r->tail, t + n, memory_order_release);
    return n;
}

void sl_tracer_config_init(sl_tracer_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->sample_ratio = 1.0;
    cfg->max_active = 256;
    cfg->buffer_spans = 1024;
}

/* Copies at most `cap - 1` bytes of `src`, cutting only at a UTF-8 character boundary. */
static void copy_bounded(char *dst, size_t cap, const char *src)
{
    if (src == NULL) src = "";
    size_t n = strnlen(src, cap);
    if (n == cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int sl_tracer_new(const sl_tracer_config *cfg, sl_tracer **out)
{
    if (cfg == NULL || out == NULL || cfg->service == NULL || cfg->clock == NULL ||
        cfg->rand == NULL || !(cfg->sample_ratio >= 0.0 && cfg->sample_ratio <= 1.0) ||
        cfg->max_active == 0 || cfg->max_active > RING_MAX || cfg->buffer_spans == 0 ||
        cfg->buffer_spans > RING_MAX)
        return SL_EINVAL;
    size_t size = (sizeof(sl_tracer) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    sl_tracer *t = aligned_alloc(CACHE_LINE, size);
    if (t == NULL) return SL_ENOMEM;
    memset(t, 0, size);
    size_t done_cap = round_pow2(cfg->buffer_spans);
    t->n_pool = (size_t)cfg->max_active + done_cap;
    t->pool = calloc(t->n_pool, sizeof *t->pool);
    t->free_stack = calloc(t->n_pool, sizeof *t->free_stack);
    if (t->pool == NULL || t->free_stack == NULL || ring_init(&t->done, done_cap) != 0 ||
        ring_init(&t->back, round_pow2(t->n_pool)) != 0) {
        sl_tracer_free(t);
        return SL_ENOMEM;
    }
    t->clock = cfg->clock;
    t->rand = cfg->rand;
    t->sample_ratio = cfg->sample_ratio;
    t->keep_errors = cfg->keep_errors;
    t->record_off = cfg->record_off;
    t->keep_slow_ns = cfg->keep_slow_ns > 0 ? cfg->keep_slow_ns : 0;
    t->wall_sync_mono = sl_clock_mono_ns(cfg->clock);
    t->wall_off = sl_clock_wall_ns(cfg->clock) - t->wall_sync_mono;
    copy_bounded(t->service, sizeof t->service, cfg->service);
    t->n_free = 0; /* spans come from the untouched pool first (take_span) */
    t->overflow.tracer = t;
    *out = t;
    return 0;
}

void sl_tracer_free(sl_tracer *tracer)
{
    if (tracer == NULL) return;
    free(tracer->done.slots);
    free(tracer->back.slots);
    free(tracer->free_stack);
    free(tracer->pool);
    free(tracer);
}

const char *sl_tracer_service(const sl_tracer *tracer)
{
    return tracer->service;
}

static sl_span *take_span(sl_tracer *t)
{
    if (t->n_free == 0) t->n_free = ring_pop_many(&t->back, t->free_stack, t->n_pool);
    if (t->n_free) return t->free_stack[--t->n_free];
    size_t n = atomic_load_explicit(&t->n_touched, memory_order_relaxed);
    if (n == t->n_pool) return NULL;
    atomic_store_explicit(&t->n_touched, n + 1, memory_order_relaxed);
    sl_span *s = &t->pool[n]; /* first use: its pages are written only now */
    s->tracer = t;
    s->pooled = 1;
    return s;
}

static int sample_root(sl_tracer *t)
{
    if (t->sample_ratio >= 1.0) return 1;
    if (t->sample_ratio <= 0.0) return 0;
    return sl_rand_unit(t->rand) < t->sample_ratio;
}

/* Starts a span; a new root is sampled by ratio, or never when `quiet`. */
static void span_start(sl_tracer *t, const char *name, sl_span_kind kind,
                       const sl_trace_ctx *parent, int quiet, sl_span **out)
{
    SL_ASSERT(t != NULL && out != NULL);
    stat_inc(&t->started);
    sl_trace_ctx ctx;
    uint8_t parent_id[SL_SPAN_ID_LEN] = {0};
    int sampled;
    if (parent != NULL && sl_trace_ctx_is_valid(parent)) {
        /* A child follows its parent's sampling decision (W3C §3.2.2.5.1). */
        memcpy(ctx.trace_id, parent->trace_id, SL_TRACE_ID_LEN);
        memcpy(parent_id, parent->span_id, SL_SPAN_ID_LEN);
        sampled = (parent->flags & SL_TRACE_FLAG_SAMPLED) != 0;
    } else {
        sl_trace_id_new(t->rand, ctx.trace_id);
        sampled = quiet ? 0 : sample_root(t);
    }
    sl_span_id_new(t->rand, ctx.span_id);
    ctx.flags = sampled ? SL_TRACE_FLAG_SAMPLED : 0;

    sl_span *s = take_span(t);
    if (s == NULL) {
        stat_inc(&t->pool_exhausted);
        s = &t->overflow;
        s->recording = 0;
        s->d.ctx = ctx;
        *out = s;
        return;
    }
    /* Unsampled spans still record when errors or slow spans are kept whatever the sampling;
     * whether one is exported is decided at its end. Its context stays unsampled. */
    s->tentative = !sampled && !t->record_off && (t->keep_errors || t->keep_slow_ns > 0);
    if (!sampled && !s->tentative) stat_inc(&t->unsampled);
    s->recording = !t->record_off && (sampled || s->tentative);
    s->d.ctx = ctx;
    memcpy(s->d.parent_span_id, parent_id, SL_SPAN_ID_LEN);
    if (s->recording) {
        s->d.kind = kind;
        s->d.status = SL_SPAN_STATUS_UNSET;
        s->d.status_message[0] = '\0';
        s->d.n_attrs = s->d.dropped_attrs = 0;
        s->d.n_links = s->d.dropped_links = 0;
        copy_bounded(s->d.name, sizeof s->d.name, name);
        int64_t mono = sl_clock_mono_ns(t->clock);
        if (mono - t->wall_sync_mono >= WALL_SYNC_NS || mono < t->wall_sync_mono) {
            t->wall_off = sl_clock_wall_ns(t->clock) - mono;
            t->wall_sync_mono = mono;
        }
        s->d.start_ns = mono + t->wall_off;
        s->start_mono_ns = mono;
    }
    *out = s;
}

void sl_span_start(sl_tracer *t, const char *name, sl_span_kind kind, const sl_trace_ctx *parent,
                   sl_span **out)
{
    span_start(t, name, kind, parent, 0, out);
}

void sl_span_start_quiet(sl_tracer *t, const char *name, sl_span_kind kind,
                         const sl_trace_ctx *parent, sl_span **out)
{
    span_start(t, name, kind, parent, 1, out);
}

const sl_trace_ctx *sl_span_context(const sl_span *span)
{
    return &span->d.ctx;
}

int sl_span_is_recording(const sl_span *span)
{
    return span->recording;
}

static sl_span_attr *add_attr(sl_span *s, const char *key, sl_span_attr_type type)
{
    if (!s->recording) return NULL;
    if (s->d.n_attrs == SL_SPAN_ATTRS_MAX || key == NULL ||
        strnlen(key, SL_SPAN_ATTR_KEY_MAX + 1) > SL_SPAN_ATTR_KEY_MAX) {
        s->d.dropped_attrs++;
        return NULL;
    }
    sl_span_attr *a = &s->d.attrs[s->d.n_attrs++];
    copy_bounded(a->key, sizeof a->key, key);
    a->type = type;
    return a;
}

void sl_span_set_attr_str(sl_span *span, const char *key, const char *value)
{
    sl_span_attr *a = add_attr(span, key, SL_SPAN_ATTR_STR);
    if (a != NULL) copy_bounded(a->s, sizeof a->s, value);
}

void sl_span_set_attr_strn(sl_span *span, const char *key, const char *value, size_t len)
{
    sl_span_attr *a = add_attr(span, key, SL_SPAN_ATTR_STR);
    if (a == NULL) return;
    size_t n = value ? len : 0;
    if (n >= sizeof a->s) {
        n = sizeof a->s - 1;
        while (n > 0 && ((unsigned char)value[n] & 0xc0) == 0x80)
            n--;
    }
    if (n) memcpy(a->s, value, n);
    a->s[n] = '\0';
}

void sl_span_set_attr_int(sl_span *span, const char *key, int64_t value)
{
    sl_span_attr *a = add_attr(span, key, SL_SPAN_ATTR_INT);
    if (a != NULL) a->i = value;
}

void sl_span_add_link(sl_span *span, const sl_trace_ctx *ctx)
{
    if (!span->recording || ctx == NULL) return;
    if (span->d.n_links == SL_SPAN_LINKS_MAX) {
        span->d.dropped_links++;
        return;
    }
    span->d.links[span->d.n_links++] = *ctx;
}

void sl_span_set_status(sl_span *span, sl_span_status status, const char *message)
{
    if (!span->recording) return;
    span->d.status = status;
    copy_bounded(span->d.status_message, sizeof span->d.status_message, message);
}

void sl_span_end(sl_span *span)
{
    sl_tracer *t = span->tracer;
    if (!span->pooled) return; /* the shared overflow span */
    if (span->recording) {
        int64_t dur = sl_clock_mono_ns(t->clock) - span->start_mono_ns;
        span->d.end_ns = span->d.start_ns + dur;
        if (span->tentative) {
            int keep = (t->keep_errors && span->d.status == SL_SPAN_STATUS_ERROR) ||
                       (t->keep_slow_ns > 0 && dur >= t->keep_slow_ns);
            stat_inc(keep ? &t->kept_unsampled : &t->unsampled);
            if (!keep) {
                SL_ASSERT(t->n_free < t->n_pool);
                t->free_stack[t->n_free++] = span;
                return;
            }
        }
        if (ring_push(&t->done, span)) {
            stat_inc(&t->recorded);
            return;
        }
        stat_inc(&t->dropped_full); /* the exporter is behind: drop the newest */
    }
    SL_ASSERT(t->n_free < t->n_pool);
    t->free_stack[t->n_free++] = span;
}

size_t sl_tracer_drain(sl_tracer *t, sl_span_export_cb cb, void *data, size_t max)
{
    ring *r = &t->done;
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t n = head - tail;
    if (n > max) n = max;
    for (size_t i = 0; i < n; i++) {
        sl_span *s = r->slots[(tail + i) & r->mask];
        cb(&s->d, data);
        /* The back ring holds every pool span at once, so this never fails. */
        int pushed = ring_push(&t->back, s);
        SL_ASSERT(pushed);
        (void)pushed;
    }
    /* Release the slots only now: spans in flight here still count as occupying the
     * done ring, which keeps the pool large enough for max_active open spans. */
    atomic_store_explicit(&r->tail, tail + n, memory_order_release);
    return n;
}

void sl_tracer_stats_get(const sl_tracer *t, sl_tracer_stats *out)
{
    out->started = atomic_load_explicit(&t->started, memory_order_relaxed);
    out->recorded = atomic_load_explicit(&t->recorded, memory_order_relaxed);
    out->unsampled = atomic_load_explicit(&t->unsampled, memory_order_relaxed);
    out->pool_exhausted = atomic_load_explicit(&t->pool_exhausted, memory_order_relaxed);
    out->dropped_full = atomic_load_explicit(&t->dropped_full, memory_order_relaxed);
    out->kept_unsampled = atomic_load_explicit(&t->kept_unsampled, memory_order_relaxed);
    out->pool_touched = atomic_load_explicit(&t->n_touched, memory_order_relaxed);
}

const char *sl_span_kind_name(sl_span_kind kind)
{
    switch (kind) {
#define SL_SPAN_KIND_CASE_(name, text)                                                             \
    case SL_SPAN_##name:                                                                           \
        return text;
        SL_SPAN_KIND_MAP(SL_SPAN_KIND_CASE_)
#undef SL_SPAN_KIND_CASE_
    }
    return "unknown";
}
