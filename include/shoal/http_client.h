/*
 * The asynchronous HTTP/1.1 client of libshoal, on a worker's libuv loop.
 *
 * An sl_upstream is one named upstream service as seen from one worker
 * thread: its endpoints (host:port, picked round robin per attempt), a
 * keep-alive connection pool, a DNS cache, and the resilience policies
 * (docs/resilience.md) composed as deadline → bulkhead → circuit breaker →
 * retry → attempt (docs/http-client.md says why in that order). sl_http_call() sends
 * one request through that stack and reports the final response or a
 * classified error to a callback.
 *
 * Responses are parsed strictly (http-parser in response mode plus the
 * checks the server applies to requests: no CL with TE, TE only "chunked",
 * CRLF line endings, no obs-fold, bounded headers and body). Requests are
 * serialised canonically by the client; the caller's hop-by-hop headers are
 * dropped and header values with CR, LF or NUL are refused.
 *
 * Propagated per attempt: `traceparent` (a client span per attempt, child of
 * the caller's context), `tracestate` (the caller's, unchanged), `x-request-id`,
 * `x-shoal-deadline-ms` (the remaining budget) and `idempotency-key` (which makes a POST
 * retry-safe).
 *
 * Threading: an upstream, its calls and fan-outs belong to the loop thread
 * that created them; nothing here is thread-safe. Callbacks never run inside
 * the function that started the work: they always come from the loop.
 */
#ifndef SHOAL_HTTP_CLIENT_H
#define SHOAL_HTTP_CLIENT_H

#include <shoal/breaker.h>
#include <shoal/bulkhead.h>
#include <shoal/clock.h>
#include <shoal/common.h>
#include <shoal/deadline.h>
#include <shoal/http.h>
#include <shoal/http_types.h>
#include <shoal/rand.h>
#include <shoal/retry.h>
#include <shoal/trace.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct sl_tls_ctx sl_tls_ctx;

typedef struct sl_logger sl_logger;
typedef struct sl_metrics sl_metrics;

/* Limits enforced by sl_upstream_new(). */
#define SL_UPSTREAM_ENDPOINTS_MAX      64
#define SL_UPSTREAM_HOST_MAX           253 /* DNS name or address, without the port */
#define SL_UPSTREAM_NAME_MAX           63
#define SL_HTTP_CLIENT_HEAD_MAX        (64 * 1024) /* serialised request line + headers */
#define SL_HTTP_CLIENT_HEADERS_MAX     100         /* header fields in a response */
#define SL_HTTP_CLIENT_CONNECTIONS_MAX 100000u

/*
 * How a call ended, with printable names (metrics label `result`, logs).
 * The matching error codes are listed with sl_http_result.
 */
#define SL_HTTP_RESULT_MAP(X)                                                                      \
    X(OK, "ok")                       /* a response arrived (any status) */                        \
    X(BREAKER_OPEN, "breaker_open")   /* the circuit breaker refused the attempt */                \
    X(BULKHEAD_FULL, "bulkhead_full") /* no permit (queue full or wait expired) */                 \
    X(TIMEOUT, "timeout")             /* per-try timeout or deadline */                            \
    X(CONNECT, "connect_error")       /* resolution, connection refused or connect timeout */      \
    X(IO, "io_error")                 /* the connection broke after the request left */            \
    X(TOO_LARGE, "too_large")         /* the response exceeded a limit */                          \
    X(PROTOCOL, "protocol_error")     /* a malformed response */                                   \
    X(POOL_FULL, "pool_full")         /* too many calls waiting for a connection */                \
    X(CANCELED, "canceled")           /* the upstream was closed */

typedef enum sl_http_result_kind {
#define SL_HTTP_RESULT_ENUM_(name, text) SL_HTTP_RESULT_##name,
    SL_HTTP_RESULT_MAP(SL_HTTP_RESULT_ENUM_)
#undef SL_HTTP_RESULT_ENUM_
        SL_HTTP_RESULT_COUNT
} sl_http_result_kind;

/* Returns the static name of `kind` ("breaker_open"), or "unknown". */
SL_API const char *sl_http_result_kind_name(sl_http_result_kind kind);

typedef struct sl_upstream_config {
    const char *name;              /* metrics label and logs; copied; required */
    const char *const *endpoints;  /* "host:port" (IPv6 as "[::1]:80"); copied; >= 1 */
    size_t nendpoints;             /* 1..SL_UPSTREAM_ENDPOINTS_MAX */
    const char *host_header;       /* Host sent; NULL = the endpoint's host:port. Copied */
    uint32_t max_connections;      /* open connections over all endpoints; default 64 */
    uint32_t max_idle;             /* idle keep-alive connections kept; default 16 */
    uint32_t idle_timeout_ms;      /* an idle connection is closed after this; default 30000 */
    uint32_t connect_timeout_ms;   /* default 1000 */
    uint32_t dns_ttl_ms;           /* a resolved address is reused this long; default 30000 */
    uint32_t max_pending;          /* calls waiting for a connection; default 1024 */
    int64_t timeout_ms;            /* overall budget per call when opts give none; default 5000 */
    size_t header_max_bytes;       /* response status line + headers; default 16 KiB */
    size_t response_max_bytes;     /* response body; default 1 MiB */
    size_t request_body_max_bytes; /* request body accepted by sl_http_call; default 8 MiB */
    bool policies;                 /* false: no bulkhead, breaker nor retries; default true */
    sl_tls_ctx *tls;               /* client TLS context (shoal/tls.h), referenced; NULL = plain */
    sl_breaker_config breaker;
    sl_retry_config retry;
    sl_retry_budget_config budget;
    sl_bulkhead_config bulkhead;
} sl_upstream_config;

/* Fills `cfg` with the defaults above and each policy's own defaults (no name, no endpoints). */
SL_API void sl_upstream_config_default(sl_upstream_config *cfg);

/* What an upstream borrows from its worker. Every pointer must outlive the upstream. */
typedef struct sl_upstream_env {
    uv_loop_t *loop;       /* required: the worker's loop */
    const sl_clock *clock; /* policies' time; NULL = sl_clock_system() */
    sl_rand *rand;         /* jitter and span ids; NULL = an internal generator seeded by the OS */
    sl_metrics *metrics;   /* NULL = no metrics */
    unsigned shard;        /* this worker's metrics shard */
    sl_logger *log;        /* NULL = breaker transitions are not logged */
    sl_tracer *tracer;     /* NULL = no spans (the caller's context is still propagated) */
} sl_upstream_env;

typedef struct sl_upstream sl_upstream;
typedef struct sl_http_call sl_http_handle; /* a running call */

/* A request to send. Everything is borrowed for the duration of sl_http_call (copied). */
typedef struct sl_http_request {
    sl_http_method method; /* not SL_HTTP_OTHER */
    sl_slice target;       /* origin-form: "/orders/42?x=1"; visible ASCII only */
    const sl_http_header *headers;
    size_t nheaders;
    const void *body;
    size_t body_len;
} sl_http_request;

/* Per-call options; a zeroed struct (or NULL) means the defaults. */
typedef struct sl_http_call_opts {
    int64_t timeout_ms;          /* overall budget; 0 = the upstream's timeout_ms */
    const sl_deadline *deadline; /* the caller's deadline (borrowed); NULL = none */
    const sl_trace_ctx *trace;   /* the caller's span context (borrowed); NULL = none */
    sl_slice tracestate;         /* the incoming request's tracestate, e.g. from
                                    sl_http_req_header(req, "tracestate", ...) (copied); sent
                                    beside traceparent on every attempt when `trace` is set and
                                    it is valid (sl_tracestate_validate), else dropped whole;
                                    empty = none. Do not also pass it in the request's headers. */
    const char *request_id;      /* x-request-id (copied); NULL = not sent */
    const char *idempotency_key; /* idempotency-key (copied); makes any method retry-safe */
} sl_http_call_opts;

/* A response: valid only until the callback returns (the client owns it). */
typedef struct sl_http_response {
    int status;
    int http_minor;
    const sl_http_header *headers; /* trimmed values; slices into the client's buffers */
    size_t nheaders;
    sl_slice body; /* de-chunked; empty for HEAD, 1xx, 204 and 304 */
} sl_http_response;

/*
 * The result of a call, handed to the callback (borrowed for its duration).
 * `error` is 0 with `kind` OK and a response (whatever its status, including
 * a 503 that was retried until the policy gave up), or a negative code:
 *   BREAKER_OPEN, BULKHEAD_FULL → SL_EUNAVAIL, with `retry_after_ms` (≥ 1000
 *                                  for a bulkhead) to suggest in a 503;
 *   TIMEOUT → SL_ETIMEDOUT; IO → SL_EIO; TOO_LARGE → SL_ELIMIT;
 *   PROTOCOL → SL_EPARSE; POOL_FULL → SL_ELIMIT; CANCELED → SL_ECANCELED;
 *   CONNECT → the libuv code (UV_ECONNREFUSED, UV_ETIMEDOUT, UV_EAI_NONAME...).
 */
typedef struct sl_http_result {
    int error;
    sl_http_result_kind kind;
    const sl_http_response *response; /* non-NULL exactly when kind == OK */
    int64_t retry_after_ms;           /* suggestion with SL_EUNAVAIL; 0 otherwise */
    uint32_t attempts;                /* attempts that reached the breaker's permission */
} sl_http_result;

typedef void (*sl_http_call_cb)(sl_http_handle *call, const sl_http_result *res, void *data);

/*
 * Creates an upstream on env->loop. `cfg` and the strings it points to are
 * copied; `env`'s pointers are borrowed (see sl_upstream_env). Registers the
 * client metric families in env->metrics on first use (each worker's
 * upstream shares them). Returns 0 and *out (close with sl_upstream_close),
 * SL_ECONFIG for an invalid configuration (no endpoint, a malformed
 * host:port, an invalid policy configuration), SL_EINVAL for a missing loop,
 * SL_ENOMEM. Loop thread only.
 */
SL_API int sl_upstream_new(const sl_upstream_config *cfg, const sl_upstream_env *env,
                           sl_upstream **out) SL_MUST_CHECK;

/*
 * Closes the upstream: every call still running ends with CANCELED (its
 * callback runs, from the loop), connections are closed, and `done` (may be
 * NULL) runs once everything is released; then the upstream is freed. New
 * calls are refused with SL_ECLOSED from then on. Loop thread only.
 */
SL_API void sl_upstream_close(sl_upstream *up, void (*done)(void *data), void *data);

/* Counters of an upstream, for tests and diagnostics (the metrics carry the same). */
typedef struct sl_upstream_stats {
    uint64_t requests;           /* calls accepted by sl_http_call */
    uint64_t attempts;           /* attempts sent (or tried) after the breaker allowed them */
    uint64_t retries;            /* retries granted by the retry policy */
    uint64_t budget_exhausted;   /* retries refused by the retry budget */
    uint64_t breaker_rejections; /* attempts refused by the open breaker */
    uint64_t bulkhead_rejections;
    uint64_t connections_opened; /* TCP connections established */
    uint64_t connections_reused; /* attempts sent on a pooled keep-alive connection */
    uint64_t results[SL_HTTP_RESULT_COUNT];
    uint32_t connections_open; /* now */
    uint32_t connections_idle; /* now */
    uint32_t in_flight;        /* calls not finished now */
    uint64_t local_attempts;   /* attempts dispatched in process (sl_http_local_register) */
} sl_upstream_stats;

/* Copies the counters into *out. */
SL_API void sl_upstream_stats_get(const sl_upstream *up, sl_upstream_stats *out);

/* Returns the upstream's circuit breaker (borrowed; for inspection and sl_breaker_reset). */
SL_API sl_breaker *sl_upstream_breaker(sl_upstream *up);

/*
 * Starts a call. `req` and `opts` (may be NULL) are borrowed and copied
 * before return. On success returns 0, stores the call handle in *call_out
 * (may be NULL), and `cb` runs exactly once later, from the loop, unless the
 * call is cancelled first. The handle is valid until the callback returns or
 * sl_http_call_cancel. On failure the callback never runs: SL_EINVAL (unknown
 * method, a target not in origin-form, a header name that is not a token, a
 * header value or option with CR, LF or NUL), SL_ELIMIT (head over
 * SL_HTTP_CLIENT_HEAD_MAX or body over request_body_max_bytes), SL_ECLOSED
 * (the upstream is closing), SL_ENOMEM. Loop thread only.
 */
SL_API int sl_http_call(sl_upstream *up, const sl_http_request *req, const sl_http_call_opts *opts,
                        sl_http_call_cb cb, void *data, sl_http_handle **call_out) SL_MUST_CHECK;

/*
 * Cancels a call that has not completed: its callback will not run, an
 * attempt in flight is abandoned (its connection closed, its breaker permit
 * returned without a verdict), and a queued bulkhead waiter is withdrawn.
 * Must not be called from the call's own callback. Loop thread only.
 */
SL_API void sl_http_call_cancel(sl_http_handle *call);

/* Finds a response header (case-insensitive). Returns 1 and its value, or 0. */
SL_API int sl_http_response_header(const sl_http_response *res, const char *name, sl_slice *value);

/* ---- Endpoint choice ---------------------------------------------------------------------- */

/*
 * An optional balancer replaces the round robin over an upstream's endpoints
 * (the gateway's least-request choice, health checks and outlier ejection).
 * `pick` returns the endpoint index (into the configured endpoints, in order)
 * for the next attempt of a call (`attempt` counts from 1); an index out of
 * range falls back to round robin. `report` runs exactly once for every
 * attempt that `pick` chose, when it ends: with its outcome, or with NULL when
 * the attempt ended without a verdict (cancelled, closed, a stale pooled
 * connection re-sent, local pool congestion). Both run on the loop thread,
 * from inside the client: they must not call into this upstream.
 */
typedef struct sl_upstream_balancer {
    int (*pick)(void *data, uint32_t attempt);
    void (*report)(void *data, size_t index, const sl_outcome *outcome);
    void *data;
} sl_upstream_balancer;

/*
 * Installs `b` (copied; NULL restores round robin). Call before the first
 * sl_http_call. Loop thread only.
 */
SL_API void sl_upstream_set_balancer(sl_upstream *up, const sl_upstream_balancer *b);

/* ---- Fan-out ---------------------------------------------------------------------------- */

typedef struct sl_http_fanout sl_http_fanout;

/* One call of a fan-out; everything is borrowed for the duration of sl_http_fanout_start. */
typedef struct sl_http_fanout_item {
    sl_upstream *upstream;
    sl_http_request request;
    const sl_http_call_opts *opts; /* may be NULL */
} sl_http_fanout_item;

/* Runs once, when every call of the fan-out has finished. */
typedef void (*sl_http_fanout_cb)(sl_http_fanout *fo, void *data);

/*
 * Starts `n` (1..1024) calls at once and calls `cb` once when all are done.
 * A call refused synchronously is recorded as that item's result (kind
 * PROTOCOL for SL_EINVAL/SL_ELIMIT, CANCELED for SL_ECLOSED, with its error
 * code) and the others still run. Returns 0 and *out (free with
 * sl_http_fanout_free, inside the callback or later), or an error when
 * nothing was started and `cb` will not run: SL_EINVAL (n out of range), the
 * first item's refusal when every item was refused, SL_ENOMEM. Loop thread.
 */
SL_API int sl_http_fanout_start(const sl_http_fanout_item *items, size_t n, sl_http_fanout_cb cb,
                                void *data, sl_http_fanout **out) SL_MUST_CHECK;

/* Returns the number of items. */
SL_API size_t sl_http_fanout_count(const sl_http_fanout *fo);

/*
 * Returns item `i`'s result (once the callback has run): the response's
 * headers and body are copies owned by the fan-out, valid until
 * sl_http_fanout_free. NULL when `i` is out of range or still running.
 */
SL_API const sl_http_result *sl_http_fanout_result(const sl_http_fanout *fo, size_t i);

/*
 * Frees the fan-out. Called before its callback ran, it cancels the calls
 * still running and the callback never runs. NULL is a no-op.
 */
SL_API void sl_http_fanout_free(sl_http_fanout *fo);

/*
 * In-process upstreams (docs/architecture.md, "Hosting"). A server whose
 * callbacks run on this thread registers its port; from then on an attempt of
 * any upstream on this thread whose endpoint is 127.0.0.1, ::1 or localhost
 * with that port is dispatched into those callbacks (sl_http_local_request)
 * instead of a connection: the same head (identity proof, x-shoal-deadline-ms,
 * traceparent, x-request-id, idempotency-key) and body, the same response,
 * and the breaker, bulkhead, retries, per-try timeout and deadline applied as
 * for the network. `cbs` is borrowed until unregistered; body_max is the
 * server's default body limit. Per thread: at most 64 ports; returns 0,
 * SL_EEXIST (the port is registered) or SL_ELIMIT.
 */
SL_API int sl_http_local_register(int port, const sl_http_callbacks *cbs, size_t body_max);

/* Removes `port` from this thread's registry (calls go over the network again). */
SL_API void sl_http_local_unregister(int port);

#endif /* SHOAL_HTTP_CLIENT_H */
