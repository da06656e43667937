/*
 * OTLP trace export for libshoal: finished spans (trace.h) leave the process
 * as OTLP/HTTP requests with the JSON encoding (an ExportTraceServiceRequest
 * POSTed to `<endpoint>/v1/traces`, Content-Type application/json).
 *
 * Two layers:
 *   - pure: the JSON encoder (sl_otlp_enc_*), the endpoint parser and the
 *     response status-line parser. Thread-safe on distinct objects; fuzzed.
 *   - I/O: the exporter, ONE thread per process that drains every worker's
 *     tracer (sl_tracer_drain), batches the spans and POSTs each batch with a
 *     blocking HTTP/1.1 request over a plain TCP socket (http:// only, meant
 *     for a collector on this machine or a trusted network), kept open for
 *     the next batch when the collector's answer allows it. A slow or absent
 *     collector costs the workers nothing: the exporter waits at most the
 *     export timeout, the tracers' rings fill and further spans are dropped
 *     and counted. Memory is bounded by the rings and one request buffer.
 *
 * Encoding (the OTLP JSON mapping): traceId/spanId/parentSpanId are lowercase
 * hex (32/16 characters; parentSpanId omitted for a root span); kind is the
 * integer SpanKind (1 internal .. 5 consumer); startTimeUnixNano and
 * endTimeUnixNano are decimal strings; attribute values are {"stringValue"}
 * or {"intValue": "<decimal string>"}; status is {"code": 0|1|2, "message"}.
 * Strings are escaped per RFC 8259 and invalid UTF-8 becomes U+FFFD.
 */
#ifndef SHOAL_OTLP_H
#define SHOAL_OTLP_H

#include <shoal/common.h>
#include <shoal/metrics.h>
#include <shoal/trace.h>

#include <stddef.h>
#include <stdint.h>

/* ---- the encoder (pure) ------------------------------------------------------------------- */

/* What the resource of every exported span says (semantic conventions). All borrowed. */
typedef struct sl_otlp_resource {
    const char *service_name;    /* service.name (required) */
    const char *service_version; /* service.version; NULL or "": omitted */
    const char *instance_id;     /* service.instance.id; NULL or "": omitted */
} sl_otlp_resource;

/*
 * One request body being built: begin, then spans, then end. The buffer grows
 * up to `max` bytes; a span that would not fit is refused (SL_ELIMIT) and the
 * body stays valid without it. Caller's storage; free with sl_otlp_enc_free.
 */
typedef struct sl_otlp_enc {
    char *buf;
    size_t len, cap, max;
    size_t nspans;
    size_t head_len; /* length after begin: the body is empty of spans when len == head_len */
} sl_otlp_enc;

/* Prepares an empty encoder whose bodies never exceed `max` bytes (at least 1024). */
SL_API void sl_otlp_enc_init(sl_otlp_enc *e, size_t max);
SL_API void sl_otlp_enc_free(sl_otlp_enc *e);

/* Starts a body for `res` (discarding any previous one). 0, SL_EINVAL (no service name),
 * SL_ENOMEM or SL_ELIMIT (the resource alone exceeds max). */
SL_API int sl_otlp_enc_begin(sl_otlp_enc *e, const sl_otlp_resource *res) SL_MUST_CHECK;

/* Appends one span (borrowed; copied into the body). 0, SL_ELIMIT (would exceed max: the span
 * is not added) or SL_ENOMEM. Requires begin. */
SL_API int sl_otlp_enc_span(sl_otlp_enc *e, const sl_span_data *span) SL_MUST_CHECK;

/*
 * Closes the body: on success e->buf holds e->len bytes of JSON (not NUL-terminated) and
 * e->nspans spans. The closing bytes are reserved by begin and span, so this cannot fail.
 */
SL_API void sl_otlp_enc_end(sl_otlp_enc *e);

/* ---- endpoint and response (pure) ---------------------------------------------------------- */

#define SL_OTLP_HOST_MAX 255
#define SL_OTLP_PATH_MAX 255

typedef struct sl_otlp_endpoint {
    char host[SL_OTLP_HOST_MAX + 1];
    int port;
    char path[SL_OTLP_PATH_MAX + 1];
} sl_otlp_endpoint;

/*
 * Parses `http://HOST[:PORT][/PATH]` (`len` bytes). HOST is a name or an IPv4
 * address (letters, digits, '.', '-'), or an IPv6 address in brackets; PORT
 * 1..65535 (default 4318); PATH printable ASCII without spaces, '?' or '#'. A missing
 * or "/" path becomes "/v1/traces"; any other path is used as given. Returns
 * 0 or SL_EPARSE (https:// included: this exporter speaks plain HTTP only).
 */
SL_API int sl_otlp_endpoint_parse(const char *url, size_t len, sl_otlp_endpoint *out) SL_MUST_CHECK;

/*
 * Reads the status code of an HTTP/1.x response from its first `len` bytes
 * ("HTTP/1.1 200 OK\r\n..."). Returns 0 and *status (100..599), SL_EAGAIN when
 * the status line is not complete yet, or SL_EPARSE.
 */
SL_API int sl_otlp_response_status(const char *buf, size_t len, int *status) SL_MUST_CHECK;

/* ---- the exporter (I/O) ------------------------------------------------------------------- */

typedef struct sl_otlp_exporter sl_otlp_exporter;

typedef struct sl_otlp_config {
    const char *endpoint;      /* http://host:port[/path]; copied */
    sl_otlp_resource resource; /* copied */
    uint32_t batch_max;        /* spans per request (1..8192; default 512) */
    uint32_t flush_ms;         /* a partial batch leaves after this long (10..60000; 1000) */
    uint32_t timeout_ms;       /* connect + send + answer of one request (10..60000; 2000) */
    uint32_t poll_ms;          /* how often the tracers are drained (1..1000; 20) */
    size_t max_request_bytes;  /* body bound (64 KiB..64 MiB; 4 MiB) */
    uint32_t max_tracers;      /* tracers that may be added (1..1024; 64) */
    sl_metrics *metrics;       /* borrowed, may be NULL: registers the telemetry_* families */
    unsigned shard;            /* the metrics shard the exporter thread writes (its own) */
} sl_otlp_config;

/* Fills `cfg` with the defaults above; no endpoint, no resource, no metrics. */
SL_API void sl_otlp_config_init(sl_otlp_config *cfg);

/*
 * Creates an exporter (not started). Registers in cfg->metrics, when given:
 *   telemetry_spans_exported_total               spans a collector accepted (2xx)
 *   telemetry_spans_dropped_total{reason}        export_failed (the request failed or was
 *                                                refused), buffer_full (a tracer's ring was full),
 *                                                too_large (one span above the body bound)
 *   telemetry_export_requests_total{result}      ok, http_error, timeout, connect_error
 * Returns 0 and *out (returns owned: free with sl_otlp_exporter_free), SL_EINVAL (bad
 * settings or endpoint), SL_ENOMEM, or a metrics error.
 */
SL_API int sl_otlp_exporter_new(const sl_otlp_config *cfg, sl_otlp_exporter **out) SL_MUST_CHECK;

/*
 * Adds a tracer to drain (borrowed: it must outlive sl_otlp_exporter_stop). Any thread, before
 * or after start. Returns 0 or SL_ELIMIT (max_tracers reached).
 */
SL_API int sl_otlp_exporter_add(sl_otlp_exporter *ex, sl_tracer *tracer) SL_MUST_CHECK;

/* Starts the exporter thread. 0 or a negated errno. */
SL_API int sl_otlp_exporter_start(sl_otlp_exporter *ex) SL_MUST_CHECK;

/*
 * Stops the thread after one last drain and export (bounded by timeout_ms), so spans of a clean
 * shutdown leave. After it returns the tracers are no longer touched. Idempotent; NULL no-op.
 */
SL_API void sl_otlp_exporter_stop(sl_otlp_exporter *ex);

/* Stops (if needed) and frees. NULL is a no-op. */
SL_API void sl_otlp_exporter_free(sl_otlp_exporter *ex);

/* Counters since creation, any thread (relaxed). */
typedef struct sl_otlp_stats {
    uint64_t exported;       /* spans accepted by the collector */
    uint64_t dropped_failed; /* spans of failed requests */
    uint64_t dropped_full;   /* spans the tracers dropped because their ring was full */
    uint64_t dropped_large;  /* single spans larger than the body bound */
    uint64_t requests_ok, requests_failed;
} sl_otlp_stats;

SL_API void sl_otlp_exporter_stats(const sl_otlp_exporter *ex, sl_otlp_stats *out);


/* ---- settings (the `telemetry:` section) --------------------------------------------------- */

#include <shoal/config.h>
#include <shoal/json.h>

#define SL_OTLP_ENDPOINT_MAX 300

/* The `telemetry:` keys a service host and the gateway share (docs/configuration.md). */
typedef struct sl_otlp_settings {
    char endpoint[SL_OTLP_ENDPOINT_MAX + 1]; /* otlp_endpoint; "" = export off */
    double sample_ratio;                     /* sample_ratio, [0, 1] */
    char service_version[64];                /* service_version */
    uint32_t batch_max;                      /* batch_max: spans per request */
    uint32_t queue_spans;                    /* queue_spans: finished spans each worker holds */
    uint32_t flush_ms;                       /* flush_ms */
    uint32_t export_timeout_ms;              /* export_timeout_ms */
    uint32_t slow_ms; /* slow_ms: an unsampled span this long or longer is kept; 0: none */
} sl_otlp_settings;

/*
 * Reads the `telemetry` object of `cfg` (absent: every default; unknown keys are errors).
 * `default_ratio` is the sample ratio when telemetry.sample_ratio is absent (the older
 * trace.sample_ratio). Returns 0, or SL_EINVAL with located messages added to `errs`.
 */
SL_API int sl_otlp_settings_read(const sl_config *cfg, double default_ratio, sl_otlp_settings *out,
                                 sl_json_errors *errs) SL_MUST_CHECK;

#endif /* SHOAL_OTLP_H */
