/*
 * The service host: a Shoal service is a definition (name, routes, hooks)
 * that sl_service_main() turns into a running process. The host reads the
 * configuration (--config FILE, SHOAL_* environment overrides, --port),
 * starts the worker loops, serves the routes plus /healthz, /readyz and
 * /metrics, gives every request a server span (W3C traceparent in and out),
 * an x-request-id, a JSON log context and the request metrics
 * (service_requests_total, service_request_duration_seconds), and drains
 * gracefully on SIGTERM.
 *
 * Nothing in a service may assume it is alone in its process: state hangs off
 * the sl_service (process-wide, read-only after init) and sl_svc_worker
 * (one per worker thread) contexts.
 */
#ifndef SHOAL_SERVICE_H
#define SHOAL_SERVICE_H

#include <shoal/deadline.h>
#include <shoal/http.h>
#include <shoal/json.h>

typedef struct sl_service sl_service;
typedef struct sl_svc_worker sl_svc_worker;
typedef struct sl_logger sl_logger;
typedef struct sl_metrics sl_metrics;
typedef struct sl_tracer sl_tracer;
typedef struct sl_config sl_config;

/* A route handler: runs on the worker's loop thread; must answer req (now or later). */
typedef void (*sl_handler_cb)(sl_http_req *req, sl_svc_worker *w);

typedef struct sl_route_def {
    sl_http_method method;
    const char *path; /* template, "/orders/{id}" */
    sl_handler_cb handler;
    size_t body_max_bytes; /* 0 = the server default (http.body_max_bytes, 1 MiB) */
} sl_route_def;

typedef struct sl_service_def {
    const char *name; /* "order": logs, metrics, config, trace service name */
    int default_port;
    const sl_route_def *routes;
    size_t nroutes;
    /* Optional hooks. init/fini run on the main thread; worker_* on each worker thread. */
    int (*init)(sl_service *svc);
    void (*fini)(sl_service *svc);
    int (*worker_init)(sl_svc_worker *w);
    void (*worker_fini)(sl_svc_worker *w);
    /* /readyz: return 0 when ready to serve. Worker thread. Optional (always ready). */
    int (*ready)(sl_svc_worker *w);
} sl_service_def;

/*
 * Runs the service until SIGTERM/SIGINT. Flags: --config FILE, --port N,
 * --workers N, --help. Returns the process exit status (0 clean, 1 runtime
 * error, 2 usage or configuration error).
 */
SL_API int sl_service_main(const sl_service_def *def, int argc, char **argv);

/* Process-wide context. */
SL_API const sl_service_def *sl_service_def_of(const sl_service *svc);
SL_API sl_config *sl_service_config(sl_service *svc);
SL_API sl_logger *sl_service_log(sl_service *svc);
SL_API void *sl_service_data(sl_service *svc);
SL_API void sl_service_set_data(sl_service *svc, void *data);

/* Per-worker context (worker thread only). */
SL_API sl_service *sl_svc_worker_service(sl_svc_worker *w);
SL_API uv_loop_t *sl_svc_worker_loop(sl_svc_worker *w);
SL_API int sl_svc_worker_index(const sl_svc_worker *w);
SL_API sl_logger *sl_svc_worker_log(sl_svc_worker *w);
SL_API sl_metrics *sl_svc_worker_metrics(sl_svc_worker *w);
SL_API sl_tracer *sl_svc_worker_tracer(sl_svc_worker *w);
SL_API void *sl_svc_worker_data(sl_svc_worker *w);
SL_API void sl_svc_worker_set_data(sl_svc_worker *w, void *data);

/* The worker a request belongs to. */
SL_API sl_svc_worker *sl_req_worker(sl_http_req *req);

/*
 * The request's absolute deadline on the monotonic system clock, from the
 * caller's `x-shoal-deadline-ms` (measured from the end of the request's
 * headers), or sl_deadline_none() when the header is absent or malformed.
 * The host answers 504 without calling the handler when it has already
 * passed; a handler passes it on to its own calls (sl_http_call_opts) and
 * may stop early. Worker thread; valid until the response is sent.
 */
SL_API sl_deadline sl_req_deadline(const sl_http_req *req);

/* Answers `req` with a JSON body (application/json). `body` is borrowed. */
SL_API int sl_respond_json(sl_http_req *req, int status, const char *body, size_t len);

/* Answers `req` with `value` serialised compactly (borrowed). */
SL_API int sl_respond_json_value(sl_http_req *req, int status, const json_t *value);

/*
 * Parses the request body as a JSON object within the json module's limits.
 * Returns 0 with *out owned by the caller (json_decref), or non-zero after
 * answering the request itself: 415 when Content-Type is present and not
 * JSON, 400 for a missing, malformed, too deep or non-object body.
 */
SL_API int sl_req_json_body(sl_http_req *req, json_t **out);

/* Answers 400 application/problem+json with `errors[]` from errs (borrowed). */
SL_API int sl_respond_invalid(sl_http_req *req, const sl_json_errors *errs);

/* Answers with a problem body: status, its title, detail and optional errors (borrowed). */
SL_API int sl_respond_problem_ex(sl_http_req *req, int status, const char *detail,
                                 const sl_json_errors *errs);

#endif /* SHOAL_SERVICE_H */
