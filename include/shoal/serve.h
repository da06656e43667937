/*
 * Host plumbing shared by the HTTP servers built on libshoal — the service
 * host (service.h) and shoal-proxy's gateway — so that both answer with the
 * same request ids, metrics, spans and log lines:
 *
 *   - the metric families every server publishes (sl_serve_families_register);
 *   - one worker's server, tracer, id generator and recycled per-request
 *     records (sl_serve_worker: init, listen, drain, stop, free);
 *   - at end of headers, the request id (the client's x-request-id when
 *     valid, else a new UUIDv7) and the server span joining the caller's
 *     traceparent (sl_serve_begin);
 *   - at response time, the request counter and duration histogram, the
 *     span's HTTP attributes and status, one log line, and the span's end
 *     (sl_serve_finish).
 *
 * Everything but sl_serve_families_register and sl_serve_worker_free runs on
 * the worker's loop thread. Names of metrics, labels, span attributes and log
 * fields are part of the contract: dashboards and tests read them.
 */
#ifndef SHOAL_SERVE_H
#define SHOAL_SERVE_H

#include <shoal/common.h>
#include <shoal/http.h>
#include <shoal/id.h>
#include <shoal/log.h>
#include <shoal/loop.h>
#include <shoal/metrics.h>
#include <shoal/rand.h>
#include <shoal/trace.h>

#include <stddef.h>

/* Statuses at or above this are counted as 599 (as are those below 100). */
#define SL_SERVE_STATUS_MAX 600

/* A request id is 1..SL_SERVE_REQUEST_ID_MAX bytes of [A-Za-z0-9-_.:]. */
#define SL_SERVE_REQUEST_ID_MAX 63

/* The families every server publishes (borrowed from the registry that owns them). */
typedef struct sl_serve_families {
    sl_metric_family *req_total;    /* service_requests_total{service,method,route,status} */
    sl_metric_family *req_duration; /* service_request_duration_seconds{service,method,route} */
    sl_metric_family *connections;  /* http_server_connections */
} sl_serve_families;

/* The version build_info reports (CMake passes the project's). */
#ifndef SHOAL_VERSION
#define SHOAL_VERSION "0.0.0-dev"
#endif

/* The `route` label of a request that matched no route (never the raw path: labels stay bounded).
 */
#define SL_SERVE_ROUTE_UNMATCHED "unmatched"

/* Request series a worker keeps looked up, by (route, method, status); beyond, it asks the
 * registry. */
#define SL_SERVE_SERIES_CACHE 1024

typedef struct sl_serve_series_cache sl_serve_series_cache;

/*
 * Registers the three families in `reg` (which owns them), plus build_info{version,commit} (1),
 * process_start_time_seconds (set now) and the standard process families
 * (sl_metrics_enable_process). Returns 0 or an SL_E code.
 */
SL_API int sl_serve_families_register(sl_metrics *reg, sl_serve_families *out) SL_MUST_CHECK;

/* Returns 1 when `v` may be used as a request id as sent, 0 otherwise. Pure. */
SL_API int sl_serve_request_id_valid(sl_slice v);

/*
 * Recycled fixed-size records (one per request in flight), at most `max`
 * kept. A record handed back is reused for the next request instead of a
 * malloc; its first pointer-sized bytes link the list while it is free.
 */
typedef struct sl_serve_freelist {
    void *head;
    size_t n, max, size;
} sl_serve_freelist;

/* Prepares an empty list of records of `size` bytes (>= sizeof(void *)), keeping at most `max`. */
SL_API void sl_serve_freelist_init(sl_serve_freelist *fl, size_t size, size_t max);

/* Returns a zeroed record (owned by the caller until put back), or NULL without memory. */
SL_API void *sl_serve_freelist_get(sl_serve_freelist *fl);

/* Takes back `rec` (from sl_serve_freelist_get; NULL is ignored): kept, or freed when full. */
SL_API void sl_serve_freelist_put(sl_serve_freelist *fl, void *rec);

/* Frees every record kept. */
SL_API void sl_serve_freelist_clear(sl_serve_freelist *fl);

/*
 * One worker of a server. The caller embeds it (zeroed) in its own worker
 * record and reads the fields; only the functions below write them.
 */
typedef struct sl_serve_worker {
    sl_worker *rw; /* the runtime's worker (loop.h) */
    int index;
    sl_http_server *http; /* NULL until listening and after stop */
    sl_tracer *tracer;
    sl_rand rand;
    sl_idgen idgen;
    const char *service; /* the `service` label and the tracer's service name, borrowed */
    const sl_serve_families *families; /* borrowed; NULL: no metrics */
    sl_serve_freelist records;
    sl_serve_series_cache *series; /* request series looked up once; owned, made on first use */
} sl_serve_worker;

typedef struct sl_serve_worker_config {
    const char *service;               /* borrowed; outlives the worker */
    double sample_ratio;               /* of the tracer */
    uint32_t buffer_spans;             /* of the tracer (finished spans held); 0: its default */
    int keep_errors;                   /* of the tracer: unsampled error spans are kept */
    int64_t keep_slow_ns;              /* of the tracer: unsampled spans this long are kept */
    int record_off;                    /* of the tracer: no exporter, spans carry context only */
    const sl_serve_families *families; /* borrowed; NULL: no metrics */
    size_t record_size, records_max;   /* the per-request records (sl_serve_freelist) */
} sl_serve_worker_config;

/*
 * On the worker's thread, at its start: seeds the worker's random source and
 * id generator and creates its tracer. Returns 0 or an SL_E code (what was
 * made is freed by sl_serve_worker_free).
 */
SL_API int sl_serve_worker_init(sl_serve_worker *w, sl_worker *rw,
                                const sl_serve_worker_config *cfg) SL_MUST_CHECK;

/* Creates the worker's HTTP server with `limits` and `cbs` and listens on `fd`. 0 or SL_E. */
SL_API int sl_serve_worker_listen(sl_serve_worker *w, int fd, const sl_http_limits *limits,
                                  const sl_http_callbacks *cbs) SL_MUST_CHECK;

/* Drains the server (requests in flight finish), then calls sl_worker_drained. */
SL_API void sl_serve_worker_drain(sl_serve_worker *w);

/* Closes the server (on the worker's thread, at stop). */
SL_API void sl_serve_worker_stop(sl_serve_worker *w);

/* After the runtime returned: frees the tracer and the kept records. */
SL_API void sl_serve_worker_free(sl_serve_worker *w);

/*
 * At end of headers: sets req->request_id (the client's x-request-id when
 * valid, else a new UUIDv7; empty if that fails), starts the server span
 * `name` (a child of the caller's valid traceparent) into *span and writes
 * its traceparent into req->traceparent.
 */
SL_API void sl_serve_begin(sl_serve_worker *w, sl_http_req *req, const char *name, sl_span **span);

/* What sl_serve_finish records besides the counters. */
typedef struct sl_serve_outcome {
    const char *route;  /* the route template (span's http.route, metrics' route); NULL: none */
    sl_logger *log;     /* NULL: no log line */
    sl_log_level level; /* of the log line */
    const char *msg;    /* of the log line */
    const sl_log_field *extra; /* appended to method, path, status, bytes, duration_s, request_id */
    size_t nextra;
} sl_serve_outcome;

/*
 * At response time: counts the response in service_requests_total and
 * service_request_duration_seconds (by method, route template — o->route, or
 * SL_SERVE_ROUTE_UNMATCHED when NULL — and status), and when *span
 * is not NULL sets its HTTP attributes (and error status for 5xx), writes
 * the log line of `o` and ends the span (*span becomes NULL).
 */
SL_API void sl_serve_finish(sl_serve_worker *w, const sl_http_req *req, int status, size_t body_len,
                            sl_span **span, const sl_serve_outcome *o);

#endif
