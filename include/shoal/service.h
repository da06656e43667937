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
#include <shoal/idempotency.h>
#include <shoal/json.h>

typedef struct sl_service sl_service;
typedef struct sl_svc_worker sl_svc_worker;
typedef struct sl_logger sl_logger;
typedef struct sl_metrics sl_metrics;
typedef struct sl_tracer sl_tracer;
typedef struct sl_config sl_config;
typedef struct sl_db sl_db;
typedef struct sl_migration_set sl_migration_set;
typedef struct sl_identity sl_identity;
typedef struct sl_bus_msg sl_bus_msg;

/*
 * An event subscription of a service: the host runs it through the bus's
 * transactional consumer runner (inbox claim + `apply` in one transaction,
 * ack after commit) on worker 0's loop and database connection. `apply`
 * gets the sl_service as `data`; its return codes are sl_bus_apply_cb's:
 * 0 applied, negative to retry later, SL_EPARSE to dead-letter.
 */
typedef int (*sl_event_apply_cb)(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason,
                                 size_t reason_cap);

/*
 * The one way to refuse an event an applier cannot use (missing or invalid
 * data): writes "<what>: <field> <message>" from the first of errs (or
 * "<what>: data is missing or invalid" when errs is NULL or empty) into
 * reason (cap bytes, always NUL-terminated when cap > 0; reason may be NULL)
 * and returns SL_EPARSE, which dead-letters the message.
 */
SL_API int sl_event_refuse(char *reason, size_t cap, const char *what, const sl_json_errors *errs);

typedef struct sl_subscription_def {
    const char *topic;       /* "shop.product.price_changed.v1" */
    const char *group;       /* NULL → "<service>.<topic>" */
    sl_event_apply_cb apply; /* required */
    int unordered;           /* 1: no per-subject ordering needed (more throughput) */
} sl_subscription_def;

/* A route handler: runs on the worker's loop thread; must answer req (now or later). On
 * PostgreSQL it runs as a coroutine with its own connection from the worker's pool (db.pool_size):
 * a query waiting for the server suspends it while the loop serves other requests. */
typedef void (*sl_handler_cb)(sl_http_req *req, sl_svc_worker *w);

typedef struct sl_route_def {
    sl_http_method method;
    const char *path; /* template, "/orders/{id}" */
    sl_handler_cb handler;
    size_t body_max_bytes; /* 0 = the server default (http.body_max_bytes, 1 MiB) */
} sl_route_def;

/* The most contract migration sets one service definition may list. */
#define SL_SERVICE_CONTRACTS_MAX 8

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
    /*
     * The service's own schema. When set, the host opens the database named by
     * `db.url` (default `sqlite:data/<name>.db`), applies the library's and these
     * migrations at start (a failure stops the process with status 1 and a clear
     * message, leaving nothing half-applied), and gives each worker its own
     * connection (sl_svc_worker_db).
     */
    const sl_migration_set *migrations;
    /*
     * The migrations of other services' contracts whose tables this service
     * keeps (a replica of their data), NULL-terminated; applied after
     * `migrations`, each under its own component; at most
     * SL_SERVICE_CONTRACTS_MAX sets. Optional.
     */
    const sl_migration_set *const *contract_migrations;
    /* Events this service consumes (needs `migrations`, for the inbox). */
    const sl_subscription_def *subscriptions;
    size_t nsubscriptions;
    /* Bounded contexts whose events this service publishes (streams declared at start). */
    const char *const *publishes; /* NULL-terminated, e.g. {"order", NULL} */
} sl_service_def;

/*
 * Runs the service until SIGTERM/SIGINT. Flags: --config FILE, --port N,
 * --workers N, --help. Returns the process exit status (0 clean, 1 runtime
 * error, 2 usage or configuration error).
 */
SL_API int sl_service_main(const sl_service_def *def, int argc, char **argv);

/*
 * Hosts several service definitions in one process (docs/architecture.md,
 * "Hosting"): the ones named by `--services a,b,c` (default: all of
 * `known`), each with its own settings, port, database, migrations, logs,
 * metrics, identity keys, bus connection and consumers, all on one runtime
 * whose every worker loop serves every hosted service. A hosted service
 * reads the shared SHOAL_<SECTION>__<KEY> variables and its own
 * SHOAL_HOSTED_<NAME>__<SECTION>__<KEY> ones, which win. Flags: --services,
 * --workers N (default: the largest service.workers), --help. Returns the
 * exit status as sl_service_main does.
 */
SL_API int sl_service_host_main(const sl_service_def *const *known, size_t nknown, int argc,
                                char **argv);

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
/* The worker's database connection (NULL when the service has no migrations). Inside a request
 * handler on PostgreSQL: the handler's own connection from the worker's pool. */
SL_API sl_db *sl_svc_worker_db(sl_svc_worker *w);
SL_API void sl_svc_worker_set_data(sl_svc_worker *w, void *data);

/* The worker a request belongs to. */
SL_API sl_svc_worker *sl_req_worker(sl_http_req *req);

typedef struct sl_trace_ctx sl_trace_ctx;

/*
 * The request's server span context (valid until the response): pass it as
 * `tc` to the log macros and as the parent of client spans, so logs and
 * downstream calls carry the request's trace.
 */
SL_API const sl_trace_ctx *sl_req_trace(sl_http_req *req);

/* Adds a string attribute to the request's server span (`key`, `value` copied; a no-op when the
 * span does not record), e.g. the id of what the request created. */
SL_API void sl_req_span_attr_str(sl_http_req *req, const char *key, const char *value);

/*
 * The caller's identity, as proven by the gateway (include/shoal/identity.h;
 * edge keys from `identity.key_file`), checked once per request (its nonce is
 * then spent; later calls return the same result). Returns 0 and fills *out;
 * SL_ENOTFOUND when the request carries no identity; SL_EINVAL for a forged
 * or stale proof; SL_ECONFLICT for a role its caller may not assert;
 * SL_EEXIST for a replay; SL_ELIMIT when the replay record is full;
 * SL_EUNAVAIL when this service has no identity keys configured.
 */
SL_API int sl_req_identity(sl_http_req *req, sl_identity *out);

/*
 * Mesh mode (`mesh.peer_token_file` set, docs/mesh.md): the caller service,
 * from the certificate its sidecar verified, when the request came through
 * this service's sidecar (its hop token matches); NULL otherwise, and always
 * without mesh mode. In mesh mode sl_req_identity also refuses (SL_EINVAL) a
 * proof signed by another service than this one.
 */
SL_API const char *sl_req_peer_service(sl_http_req *req);

/*
 * Copies the request's valid identity into *out and returns 0; otherwise
 * answers 401 (no, invalid or replayed identity), 403 (a role the caller may
 * not assert) or 503 (replay record full), returning sl_req_identity's code,
 * or, with `admin_only` and a non-admin identity, 403 (returns SL_EINVAL).
 */
SL_API int sl_req_require_identity(sl_http_req *req, int admin_only, sl_identity *out);

/*
 * Reads `page` (default 1, 1..1000000) and `per_page` (default 20, 1..100)
 * from the query string. On a bad value records a field error in `errs` and
 * returns SL_EINVAL (the caller answers sl_respond_invalid).
 */
SL_API int sl_req_page(const sl_http_req *req, int64_t *page, int64_t *per_page,
                       sl_json_errors *errs);

/*
 * Writes an event to the outbox inside the open transaction `tx`
 * (include/shoal/outbox.h): source "/shoal/<service>", the given type and
 * subject, `data` serialised (borrowed; may be NULL), and the request's
 * traceparent when `req` is not NULL. Returns sl_outbox_add's codes.
 */
SL_API int sl_svc_emit(sl_svc_worker *w, sl_http_req *req, sl_db *tx, const char *type,
                       const char *subject, const json_t *data) SL_MUST_CHECK;

/* sl_svc_emit outside a request: the envelope carries `trace` (borrowed; NULL: none), e.g. the
 * span of a saga step, so the event's consumers join that trace. */
SL_API int sl_svc_emit_trace(sl_svc_worker *w, const sl_trace_ctx *trace, sl_db *tx,
                             const char *type, const char *subject,
                             const json_t *data) SL_MUST_CHECK;

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
 * Returns 0 with *out owned by the caller (json_decref), or a negative SL_E
 * code after answering the request itself: 415 when Content-Type is present
 * and not JSON (SL_EINVAL), 400 for a missing (SL_EINVAL) or a malformed,
 * too deep or non-object body (SL_EPARSE).
 */
SL_API int sl_req_json_body(sl_http_req *req, json_t **out);

/* Answers 400 application/problem+json with `errors[]` from errs (borrowed). */
SL_API int sl_respond_invalid(sl_http_req *req, const sl_json_errors *errs);

/* Answers with a problem body: status, its title, detail and optional errors (borrowed). */
SL_API int sl_respond_problem_ex(sl_http_req *req, int status, const char *detail,
                                 const sl_json_errors *errs);

/* ---- The service kit: the answers and request steps every service shares ---------------------
 *
 * Handlers answer with these instead of private copies, so that the same
 * failure reads the same in every service. Request helpers return 0 to go
 * on, or a negative SL_E code after answering the request themselves (the
 * handler then only returns). Worker thread; `req` is always required.
 */

/*
 * Answers a failure `rc` (an SL_E code) of the worker's database. Logs `what`
 * (NULL: "database error") at error level with the request's trace, the code
 * and the database's own message, then answers 503 problem+json "the <service>
 * database is unavailable; retry later" (<service>: the definition's name).
 * Transient codes (sl_svc_db_transient) add Retry-After: 1. Returns
 * sl_http_respond's code.
 */
SL_API int sl_respond_db_error(sl_http_req *req, int rc, const char *what);

/*
 * Returns 1 when a database failure `rc` may go away by itself: SL_EBUSY,
 * SL_EUNAVAIL, SL_ETIMEDOUT, SL_EAGAIN, SL_EIO, SL_ECLOSED and a lost
 * connection's negated errno (ECONNREFUSED, ECONNRESET, ECONNABORTED, EPIPE,
 * ENOTCONN, ETIMEDOUT). Pure.
 */
SL_API int sl_svc_db_transient(int rc);

/*
 * Answers with `v` serialised compactly and takes ownership of it (it is
 * freed before this returns). NULL `v` (a failed builder) answers 500
 * "could not build the response".
 */
SL_API int sl_respond_owned(sl_http_req *req, int status, json_t *v);

/* Answers a problem with one field error: {"detail": detail, "errors": [{field, message}]}. */
SL_API int sl_respond_field(sl_http_req *req, int status, const char *field, const char *message,
                            const char *detail);

/*
 * Builds a problem document (the members of sl_problem_body: type
 * "about:blank", title, status, detail when not NULL, errors when errs holds
 * any, errors_dropped) followed by a machine-readable `reason` when `reason`
 * is not NULL. Callers such as the checkout saga branch on `reason`. Text
 * that is not valid UTF-8 becomes "". Returns owned (json_decref), or NULL
 * when out of memory. Pure.
 */
SL_API json_t *sl_svc_problem(int status, const char *reason, const char *detail,
                              const sl_json_errors *errs);

/*
 * Answers the problem document `doc` (takes ownership; NULL answers 500
 * "could not build the response") as application/problem+json, with
 * Retry-After: retry_after_s when it is > 0.
 */
SL_API int sl_respond_problem_owned(sl_http_req *req, int status, json_t *doc,
                                    int64_t retry_after_s);

/* sl_respond_problem_owned(req, status, sl_svc_problem(status, reason, detail, errs), ...). */
SL_API int sl_respond_problem_reason(sl_http_req *req, int status, const char *reason,
                                     const char *detail, const sl_json_errors *errs,
                                     int64_t retry_after_s);

/*
 * Answers a stored body (an idempotent replay): `status`, Content-Type
 * application/problem+json when status >= 400 else application/json, plus
 * the `nextra` borrowed headers of `extra` (at most 8; may be NULL when
 * nextra is 0).
 */
SL_API int sl_respond_stored(sl_http_req *req, int status, const char *body, size_t len,
                             const sl_http_header *extra, size_t nextra);

/* An id check of a service: 1 when s[0..len) is a well-formed id. */
typedef int (*sl_id_valid_fn)(const char *s, size_t len);

/*
 * Copies the route parameter `name` into out (cap bytes, NUL-terminated)
 * when valid(value) accepts it and it fits. Returns 0, or SL_ENOTFOUND after
 * answering 404 "no such resource" with the field error `name`: "no such
 * <what>".
 */
SL_API int sl_req_path_id(sl_http_req *req, const char *name, const char *what,
                          sl_id_valid_fn valid, char *out, size_t cap);

/* ---- Idempotency-Key (include/shoal/idempotency.h at request level) ---------------------------
 *
 * A handler that changes state reads the header before its transaction,
 * claims the key inside it, and stores its answer with the key before
 * committing:
 *     sl_req_idem k;
 *     if (sl_req_idem_read(req, &k, "user:%s", id.user_id) != 0) return;  // answered 400
 *     begin; rc = sl_req_idem_claim(req, tx, &k, canon, len, NULL);
 *     if (rc == 1) return;          // answered: replay or 422; rolled back
 *     if (rc < 0) { rollback; sl_respond_db_error(...); return; }
 *     ... the work ...; sl_req_idem_finish(tx, &k, status, body); commit; answer.
 * A refusal that changes nothing is usually not stored (the key may be
 * retried). Without the header every step is a no-op.
 */

typedef struct sl_req_idem {
    int has;                         /* 1: the request carries a key */
    char key[SL_IDEM_KEY_MAX + 1];   /* the header's value */
    char scope[SL_IDEM_KEY_MAX + 1]; /* "user:<id>", "saga" */
} sl_req_idem;

/*
 * Reads the optional Idempotency-Key header into *k, with the scope printed
 * from scope_fmt ("user:%s" with the caller's id, or "saga"; at most
 * SL_IDEM_KEY_MAX bytes): the same key in another scope is another request.
 * Returns 0 (k->has tells whether a key came), or SL_EINVAL after answering
 * 400 "invalid Idempotency-Key header" with the field error
 * "Idempotency-Key": "must be 1..200 visible ASCII bytes".
 */
SL_API int sl_req_idem_read(sl_http_req *req, sl_req_idem *k, const char *scope_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Answers a replay from its stored status and body (see sl_req_idem_claim). */
typedef void (*sl_idem_replay_cb)(sl_http_req *req, int status, const char *body, size_t len);

/*
 * Claims k's key for the canonical request bytes canon[0..len) inside the
 * open transaction `tx`. Returns 0 to go on (no key, or a first claim), 1
 * when it answered the request and rolled `tx` back: a replay of the stored
 * answer (through `replay`, or sl_respond_stored when NULL), or 422 with
 * reason "idempotency_key_reused" "this Idempotency-Key was used with
 * another request"; or a negative database error with `tx` still open.
 */
SL_API int sl_req_idem_claim(sl_http_req *req, sl_db *tx, const sl_req_idem *k, const void *canon,
                             size_t len, sl_idem_replay_cb replay);

/*
 * Stores the answer (status and `body` serialised; borrowed, may be NULL) of
 * a first claim in `tx`. Returns 0 (also without a key), SL_ENOMEM, or
 * sl_idem_finish's codes.
 */
SL_API int sl_req_idem_finish(sl_db *tx, const sl_req_idem *k, int status, const json_t *body);

/* The 422 problem of a key reused with another request (sl_svc_problem; returns owned). */
SL_API json_t *sl_svc_idem_mismatch(void);

#endif /* SHOAL_SERVICE_H */
