/*
 * Distributed tracing for libshoal: W3C Trace Context Level 1 (the
 * `traceparent` and `tracestate` headers), trace and span id generation, and
 * a per-thread tracer that records finished spans into a bounded
 * single-producer single-consumer ring that an exporter thread drains without
 * locks. Export (OTLP) lives elsewhere; this module only hands finished spans
 * to a callback.
 *
 * Threading: parsing and formatting are pure and thread-safe. A tracer and
 * its spans belong to ONE worker thread; only sl_tracer_drain() and
 * sl_tracer_stats() may be called from one other thread (the exporter).
 */
#ifndef SHOAL_TRACE_H
#define SHOAL_TRACE_H

#include <shoal/clock.h>
#include <shoal/common.h>
#include <shoal/rand.h>

#include <stddef.h>
#include <stdint.h>

#define SL_TRACE_ID_LEN       16
#define SL_SPAN_ID_LEN        8
#define SL_TRACE_FLAG_SAMPLED 0x01
/* "00-" 32 hex "-" 16 hex "-" 2 hex: 55 characters; the buffer adds the NUL. */
#define SL_TRACEPARENT_LEN 55
#define SL_TRACEPARENT_MAX 56

/* A span context: what travels between services. Public so callers embed it. */
typedef struct sl_trace_ctx {
    uint8_t trace_id[SL_TRACE_ID_LEN];
    uint8_t span_id[SL_SPAN_ID_LEN];
    uint8_t flags; /* SL_TRACE_FLAG_SAMPLED, other bits as received */
} sl_trace_ctx;

/*
 * Parses a `traceparent` header value of `len` bytes (W3C Trace Context
 * Level 1 §3.2): version 2 lowercase hex and not "ff"; version 00 must be
 * exactly 55 characters; a higher version may carry more after a '-' that
 * follows the flags (the first four fields are parsed, the rest ignored);
 * trace-id 32 and parent-id 16 lowercase hex, neither all zeros; flags 2
 * lowercase hex. Returns 0 and fills `out`, or SL_EPARSE (out untouched): the
 * caller then starts a new trace. Thread-safe.
 */
SL_API int sl_traceparent_parse(const char *s, size_t len, sl_trace_ctx *out) SL_MUST_CHECK;

/* Writes "00-<trace-id>-<span-id>-<flags>" plus a NUL into `out`; returns 55. Thread-safe. */
SL_API int sl_traceparent_format(const sl_trace_ctx *ctx, char out[SL_TRACEPARENT_MAX]);

/* Lowercase hex of a trace id (32 chars) or span id (16 chars) plus a NUL. Thread-safe. */
SL_API void sl_trace_id_hex(const uint8_t id[SL_TRACE_ID_LEN], char out[33]);
SL_API void sl_span_id_hex(const uint8_t id[SL_SPAN_ID_LEN], char out[17]);

/* Returns 1 when neither id is all zeros. */
SL_API int sl_trace_ctx_is_valid(const sl_trace_ctx *ctx);

/* Limits for tracestate (W3C §3.3): we keep at most 512 bytes and 32 members. */
#define SL_TRACESTATE_MAX_BYTES   512
#define SL_TRACESTATE_MAX_MEMBERS 32

/*
 * Validates a `tracestate` header value (W3C Trace Context Level 1 §3.3.1):
 * comma-separated list members `key=value` with optional spaces/tabs around
 * commas; empty members are allowed and not counted. Keys are simple
 * (lcalpha then up to 255 of lcalpha, digit, `_-*` `/`) or multi-tenant
 * (`tenant@system`: tenant up to 241 chars starting with lcalpha or digit,
 * system up to 14 starting with lcalpha). Values are 1-256 printable ASCII
 * characters without `,` or `=`, not ending in a space. At most 32 members,
 * no duplicate keys, and (our bound) at most 512 bytes in total.
 * Returns 0 when valid, SL_EPARSE otherwise (the caller then discards the
 * whole header, as the specification requires). Thread-safe.
 */
SL_API int sl_tracestate_validate(const char *s, size_t len) SL_MUST_CHECK;

/* A bounded copy of a validated tracestate value. Caller's storage. */
typedef struct sl_tracestate {
    size_t len;
    char value[SL_TRACESTATE_MAX_BYTES + 1]; /* NUL-terminated */
} sl_tracestate;

/*
 * Validates `s` (`len` bytes) and copies it into `ts`. On SL_EPARSE `ts` is
 * left empty (len 0): the header is discarded. Thread-safe on distinct `ts`.
 */
SL_API int sl_tracestate_set(sl_tracestate *ts, const char *s, size_t len);

/* Fresh random ids from `r`; never all zeros. `r` is borrowed (not thread-safe). */
SL_API void sl_trace_id_new(sl_rand *r, uint8_t out[SL_TRACE_ID_LEN]);
SL_API void sl_span_id_new(sl_rand *r, uint8_t out[SL_SPAN_ID_LEN]);

/* ---- Spans ---------------------------------------------------------------------------- */

/* Span kinds (OpenTelemetry), one X-macro table for their printable names. */
#define SL_SPAN_KIND_MAP(X)                                                                        \
    X(INTERNAL, "internal")                                                                        \
    X(SERVER, "server")                                                                            \
    X(CLIENT, "client")                                                                            \
    X(PRODUCER, "producer")                                                                        \
    X(CONSUMER, "consumer")

typedef enum sl_span_kind {
#define SL_SPAN_KIND_ENUM_(name, text) SL_SPAN_##name,
    SL_SPAN_KIND_MAP(SL_SPAN_KIND_ENUM_)
#undef SL_SPAN_KIND_ENUM_
} sl_span_kind;

/* Returns "server", "client", ...; "unknown" for an out-of-range value. Static storage. */
SL_API const char *sl_span_kind_name(sl_span_kind kind);

typedef enum sl_span_status {
    SL_SPAN_STATUS_UNSET = 0,
    SL_SPAN_STATUS_OK,
    SL_SPAN_STATUS_ERROR,
} sl_span_status;

/* Bounds of one recorded span. Longer strings are truncated (on a UTF-8 boundary). */
#define SL_SPAN_NAME_MAX     63
#define SL_SPAN_ATTRS_MAX    16
#define SL_SPAN_ATTR_KEY_MAX 31  /* a longer key drops the attribute (counted) */
#define SL_SPAN_ATTR_STR_MAX 127 /* a longer string value is truncated */
#define SL_SPAN_LINKS_MAX    4
#define SL_SPAN_STATUS_MAX   127

typedef enum sl_span_attr_type {
    SL_SPAN_ATTR_STR = 1,
    SL_SPAN_ATTR_INT,
} sl_span_attr_type;

typedef struct sl_span_attr {
    char key[SL_SPAN_ATTR_KEY_MAX + 1];
    sl_span_attr_type type;
    int64_t i;                        /* SL_SPAN_ATTR_INT */
    char s[SL_SPAN_ATTR_STR_MAX + 1]; /* SL_SPAN_ATTR_STR, NUL-terminated */
} sl_span_attr;

/* A finished span as handed to the exporter. Read-only for the callback. */
typedef struct sl_span_data {
    sl_trace_ctx ctx;                       /* this span's ids and flags */
    uint8_t parent_span_id[SL_SPAN_ID_LEN]; /* all zeros for a root span */
    sl_span_kind kind;
    sl_span_status status;
    int64_t start_ns; /* wall clock, ns since the epoch (the tracer reads the wall clock at most
                         once a second and adds the monotonic time elapsed since) */
    int64_t end_ns;   /* start_ns plus the monotonic duration */
    char name[SL_SPAN_NAME_MAX + 1];
    char status_message[SL_SPAN_STATUS_MAX + 1];
    uint32_t n_attrs, dropped_attrs;
    uint32_t n_links, dropped_links;
    sl_span_attr attrs[SL_SPAN_ATTRS_MAX];
    sl_trace_ctx links[SL_SPAN_LINKS_MAX];
} sl_span_data;

typedef struct sl_tracer sl_tracer;
typedef struct sl_span sl_span;

typedef struct sl_tracer_config {
    const char *service;   /* copied (truncated to 63 bytes) */
    const sl_clock *clock; /* borrowed; must outlive the tracer */
    sl_rand *rand;         /* borrowed; used only on the tracer's thread */
    double sample_ratio;   /* probability a new root trace is sampled, [0, 1] */
    uint32_t max_active;   /* spans open at once before new ones are non-recording */
    uint32_t buffer_spans; /* finished spans waiting for the exporter (rounded up to 2^k) */
    /* Tail keep: with either set, spans of unsampled traces record too, and at their end those
     * with an error status (keep_errors) or lasting keep_slow_ns or more are exported anyway;
     * the others are discarded. Their context stays unsampled downstream. 0: off. */
    int keep_errors;
    int64_t keep_slow_ns;
    /* 1 when nothing will drain this tracer (no exporter): spans still get and propagate their
     * context (the sampled flag follows the parent or the ratio), but none records, so none is
     * buffered. Setters do nothing and sl_span_is_recording gives 0. */
    int record_off;
} sl_tracer_config;

/* Fills `cfg` with defaults: sample_ratio 1.0, max_active 256, buffer_spans 1024, no tail keep;
 * no clock/rand. */
SL_API void sl_tracer_config_init(sl_tracer_config *cfg);

/*
 * Creates a tracer for one worker thread. Requires cfg->service, ->clock and
 * ->rand; sample_ratio in [0, 1]; 1 <= max_active, buffer_spans <= 65536.
 * Allocates max_active + buffer_spans spans (about 6 KiB each) zeroed; a span's memory is
 * first written when it is first handed out, and freed spans are reused first, so the memory
 * in use follows the spans in use at once.
 * Returns 0 and *out (returns owned: free with sl_tracer_free), SL_EINVAL, or
 * SL_ENOMEM.
 */
SL_API int sl_tracer_new(const sl_tracer_config *cfg, sl_tracer **out) SL_MUST_CHECK;

/*
 * Frees the tracer and every span. Call after the exporter thread has stopped
 * calling sl_tracer_drain and no span of it is in use. NULL is a no-op.
 */
SL_API void sl_tracer_free(sl_tracer *tracer);

/* Returns the tracer's service name (valid until sl_tracer_free). Any thread. */
SL_API const char *sl_tracer_service(const sl_tracer *tracer);

/*
 * Starts a span named `name` (copied, truncated to SL_SPAN_NAME_MAX). With a
 * `parent` (borrowed; a remote context from sl_traceparent_parse or a local
 * span's sl_span_context) that is valid, the span joins its trace and follows
 * its sampled flag; otherwise it starts a new trace, sampled with the
 * tracer's sample_ratio. Never fails and never gives NULL: when the span is
 * unsampled, or all max_active spans are open, *out is a non-recording span
 * whose context is still valid for propagation and whose setters do nothing.
 * (When the pool is exhausted every such span shares one object, so read its
 * context right after starting it.) The span belongs to the tracer's thread
 * until sl_span_end.
 */
SL_API void sl_span_start(sl_tracer *tracer, const char *name, sl_span_kind kind,
                          const sl_trace_ctx *parent, sl_span **out);

/*
 * The same as sl_span_start, except that without a valid `parent` the new
 * trace is never head-sampled: for work done on no request's behalf (probes,
 * scrapes, background polls), which would otherwise fill the trace store.
 * Such a span is still exported when it fails or is slow (the tracer's
 * keep_errors and keep_slow_ns), and its context tells callees to do the same.
 */
SL_API void sl_span_start_quiet(sl_tracer *tracer, const char *name, sl_span_kind kind,
                                const sl_trace_ctx *parent, sl_span **out);

/* Returns the span's context (valid until sl_span_end). */
SL_API const sl_trace_ctx *sl_span_context(const sl_span *span);

/* Returns 1 when the span records (sampled and pooled), 0 for a non-recording span. */
SL_API int sl_span_is_recording(const sl_span *span);

/*
 * Adds an attribute; `key` and `value` are copied. Beyond SL_SPAN_ATTRS_MAX,
 * or with a key longer than SL_SPAN_ATTR_KEY_MAX, the attribute is dropped and
 * counted in dropped_attrs. Setting an existing key again adds another entry.
 */
SL_API void sl_span_set_attr_str(sl_span *span, const char *key, const char *value);
SL_API void sl_span_set_attr_int(sl_span *span, const char *key, int64_t value);
/* The same as sl_span_set_attr_str for the `len` bytes at `value` (need not be NUL-terminated). */
SL_API void sl_span_set_attr_strn(sl_span *span, const char *key, const char *value, size_t len);

/* Links the span to another context (e.g. a consumer span to its producer). Bounded, counted. */
SL_API void sl_span_add_link(sl_span *span, const sl_trace_ctx *ctx);

/* Sets the status; `message` (may be NULL) is copied and truncated. */
SL_API void sl_span_set_status(sl_span *span, sl_span_status status, const char *message);

/*
 * Ends the span: stamps its end time and hands it to the tracer's finished
 * buffer. If that buffer is full (the exporter is behind), the span is dropped
 * and counted; the worker never blocks. The span must not be used afterwards.
 */
SL_API void sl_span_end(sl_span *span);

/* Receives one finished span; `span` is borrowed for the duration of the call. */
typedef void (*sl_span_export_cb)(const sl_span_data *span, void *data);

/*
 * Exporter side: hands up to `max` finished spans, oldest first, to `cb` and
 * returns how many it delivered (0 when none are waiting). Call it from ONE
 * thread other than the worker (or from the worker itself), never from two
 * threads at once. Lock-free and wait-free with respect to the worker: the
 * worker never waits for it and it never waits for the worker. `cb` runs
 * synchronously on the caller's thread and must not call tracer functions.
 */
SL_API size_t sl_tracer_drain(sl_tracer *tracer, sl_span_export_cb cb, void *data, size_t max);

/* Counters since creation. Readable from any thread (relaxed, may lag slightly). */
typedef struct sl_tracer_stats {
    uint64_t started;        /* every sl_span_start */
    uint64_t recorded;       /* recording spans ended and queued for export */
    uint64_t unsampled;      /* not exported because not sampled (and not kept at the end) */
    uint64_t pool_exhausted; /* non-recording because max_active spans were open */
    uint64_t dropped_full;   /* ended recording spans dropped because the buffer was full */
    uint64_t kept_unsampled; /* unsampled spans kept at their end (error or slow) */
    uint64_t pool_touched;   /* pool spans ever handed out: how many are in memory, of
                                max_active + buffer_spans (freed spans are reused first) */
} sl_tracer_stats;

SL_API void sl_tracer_stats_get(const sl_tracer *tracer, sl_tracer_stats *out);

#endif /* SHOAL_TRACE_H */
