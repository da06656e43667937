/*
 * Internals shared by the service host's files:
 *   host.c     sl_service_main: settings and flags, migrations, workers, the HTTP callbacks
 *   request.c  accessors, request helpers and answers (sl_req_*, sl_respond_*)
 *   builtin.c  the operations routes /healthz, /readyz and /metrics
 *   events.c   the outbox relay, the bus and the subscriptions
 *   admin_dlq.c  the dead-letter administration routes (/admin/dlq...)
 *
 * Process-wide state (sl_service) is written on the main thread before the
 * workers start and read-only afterwards; everything mutable per request
 * lives in the sl_svc_worker of the loop thread that owns the connection.
 */
#ifndef SHOAL_SERVICE_INT_H
#define SHOAL_SERVICE_INT_H

#include <shoal/db.h>
#include <shoal/id.h>
#include <shoal/identity.h>
#include <shoal/loop.h>
#include <shoal/metrics.h>
#include <shoal/otlp.h>
#include <shoal/rand.h>
#include <shoal/router.h>
#include <shoal/serve.h>
#include <shoal/service.h>
#include <shoal/trace.h>

typedef struct sl_events sl_events;
struct sl_bus_broker;

typedef struct route_entry {
    const sl_route_def *def;
    char name[96]; /* span name: "GET /orders/{id}" */
} route_entry;

struct sl_service {
    const sl_service_def *def;
    sl_config *cfg;
    sl_logger *log;
    sl_metrics *metrics;
    sl_serve_families fam;
    sl_http_limits limits;
    sl_router *router;
    route_entry *routes;
    size_t nroutes;
    char host[64];
    int port;
    int workers;
    uint32_t drain_ms;
    double sample_ratio;
    sl_otlp_settings telemetry; /* the `telemetry:` section */
    sl_otlp_exporter *exporter; /* NULL: export off */
    sl_svc_worker *w;
    char db_url[1024];
    sl_db_options db_opts;
    unsigned db_pool_size;      /* db.pool_size: handler connections per worker (PostgreSQL) */
    unsigned db_pool_queue_max; /* db.pool_queue_max: requests waiting for one */
    sl_metric_family *db_busy;  /* db_pool_busy_total: requests refused, pool and queue full */
    sl_identity_keyring identity_ring; /* the keys of this service's edges */
    int have_identity_key;
    int64_t identity_window_ms;          /* identity.window_ms */
    sl_identity_replay *identity_replay; /* nonces seen, process-wide */
    sl_metric_family *identity_refusals; /* identity_refusals_total{reason} */
    char identity_note[256];             /* why no key was loaded */
    sl_identity_key peer_token;          /* mesh.peer_token_file: the hop from its sidecar */
    int have_peer_token;                 /* mesh mode: the caller service comes from the sidecar */
    char source[80];                     /* CloudEvents source: "/shoal/<name>" */
    sl_events *events;                   /* outbox relay, bus and subscriptions (events.c) */
    /* /readyz (builtin.c): what the database must show, recorded once migrations applied */
    int64_t migrations_expected; /* rows of schema_migrations the sets account for */
    char db_file[1024];          /* SQLite: the file the connections opened ("" otherwise) */
    uint64_t db_dev, db_ino;     /* and its identity, so a removed or replaced file shows */
    int db_lock_fd;              /* SQLite: the instance lock file's descriptor + 1, 0 = none */
    int inited;                  /* the definition's init ran (its fini is owed) */
    void *data;
};

typedef struct req_host {
    sl_svc_worker *w; /* first member: sl_req_worker reads it */
    sl_span *span;
    const route_entry *route;
    int route_status;
    unsigned allowed;
    sl_deadline deadline; /* from x-shoal-deadline-ms; none when absent or malformed */
    int id_checked;       /* the identity is verified once per request (a nonce is spent) */
    int id_rc;
    sl_identity id;
    int peer_checked; /* the sidecar's x-shoal-peer-* headers, checked once per request */
    int peer_rc;
    char peer[SL_IDENTITY_PEER_MAX + 1];
} req_host;

struct sl_svc_worker {
    sl_service *svc;
    sl_serve_worker sw;    /* index, server, tracer, ids, recycled req_host, series (serve.h) */
    sl_http_callbacks cbs; /* its server's, also run by in-process calls (sl_http_local_register) */
    int local;             /* registered for in-process calls on this thread */
    int started;
    sl_db *db;        /* the worker's own connection: everything outside request handlers */
    sl_db_pool *pool; /* PostgreSQL: the request handlers' connections (db/pool.c), else NULL */
    void *data;
};

/* The built-in operations routes (builtin.c), registered before the service's own. */
extern const sl_route_def sl__service_builtin_routes[];
extern const size_t sl__service_nbuiltin_routes;
/* The dead-letter administration routes (admin_dlq.c), registered after the built-in ones. */
extern const sl_route_def sl__service_dlq_routes[];
extern const size_t sl__service_ndlq_routes;

/*
 * Event plumbing of a service (events.c): the bus, the outbox relay and the
 * subscriptions' transactional runners, all on worker 0's loop.
 *   sl__events_new   main thread, after migrations: reads bus.* settings, opens the relay's
 *                    database connection, creates the relay (not started)
 *   sl__events_watch any worker thread: the relay wakes after that connection's commits
 *   sl__events_start worker 0's thread: opens the bus, starts the relay and the runners
 *   sl__events_stop  worker 0's thread: stops the runners and the relay, closes the bus
 *   sl__events_free  main thread, after the workers stopped
 */
int sl__events_new(sl_service *svc, const sl_service_def *def, sl_config *cfg, const char *db_url,
                   const void *db_opts, sl_logger *log, sl_metrics *metrics, sl_events **out);
void sl__events_watch(sl_events *ev, sl_db *db);
int sl__events_start(sl_events *ev, uv_loop_t *loop);
void sl__events_stop(sl_events *ev);
void sl__events_free(sl_events *ev);
/* The bus once worker 0 opened it, else NULL (worker 0's thread). */
struct sl_bus *sl__events_bus(sl_events *ev);
/* Any thread: 1 when the service needs no bus (none configured) or its bus is connected, as
 * worker 0 last saw it (refreshed every 500 ms). */
int sl__events_bus_ok(const sl_events *ev);
/* Worker 0's thread. The consumer database holding the service's dead letters when they are
 * kept there (the in-process broker of the hosted shape), else NULL (they are in `.dlq`). */
sl_db *sl__events_dead_db(sl_events *ev);
/* Republishes dead letter `seq` of `topic` kept in the database; its row is deleted once every
 * consuming group settled the message. Returns 0, SL_ENOTFOUND, SL_EPARSE (kept without its
 * envelope), SL_EUNAVAIL (no bus) or the errors of sl_bus_publish. Worker 0's thread. */
int sl__events_redrive_dead(sl_events *ev, const char *topic, uint64_t seq);
/* Main thread, before sl__events_start: when the service's bus.url is `inproc:`, its bus will
 * use `broker` (borrowed; shared by the services of one process, all on worker 0's loop) and
 * this returns 1; else it changes nothing and returns 0. */
int sl__events_share_broker(sl_events *ev, struct sl_bus_broker *broker);

/*
 * The host's steps (host.c), shared with the multi-service host (hosting.c):
 *   sl__service_load     reads the settings of `def` from argv and `env` (a NULL-terminated
 *                        environment) into *svc (zeroed first); prints what is wrong and
 *                        returns SL_ECONFIG
 *   sl__service_prepare  routes, metrics, worker records, migrations, events, the init hook
 *   sl__service_free     releases what load and prepare made (not the fini hook)
 * and the runtime hooks of one service, `data` being its sl_service.
 */
int sl__service_load(sl_service *svc, const sl_service_def *def, int argc, char **argv, char **env);
int sl__service_prepare(sl_service *svc);
void sl__service_free(sl_service *svc);
int sl__service_worker_start(sl_worker *rw, int fd, void *data);
void sl__service_worker_stop(sl_worker *rw, void *data);
void sl__service_on_bound(int port, void *data);
void sl__service_on_reload(void *data);

#endif
