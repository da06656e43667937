/*
 * The gateway's configuration: a YAML file (sl_config) turned into plain
 * structures and validated as a whole, so a reload either yields a complete,
 * consistent configuration or a located message and nothing. Every key has a
 * bounded default (docs/gateway.md lists them); unknown keys are errors, so a
 * typo never silently falls back to a default.
 *
 * A px_config is immutable once loaded and shared read-only by every worker
 * through its generation (generation.h).
 */
#ifndef SHOAL_PROXY_GWCONFIG_H
#define SHOAL_PROXY_GWCONFIG_H

#include "policy.h"
#include "route.h"
#include "static.h"
#include "subset.h"

#include <shoal/http.h>
#include <shoal/http_client.h>
#include <shoal/identity.h>
#include <shoal/otlp.h>

#include <stdbool.h>

#define PX_CLUSTERS_MAX     64
#define PX_ROUTES_MAX       512
#define PX_AGGREGATES_MAX   32
#define PX_PARTS_MAX        8
#define PX_CORS_ORIGINS_MAX 16
#define PX_JWKS_PINS_MAX    8 /* auth.jwks.pin_kid entries */
#define PX_ERR_MAX          512

typedef enum px_lb_kind { PX_LB_ROUND_ROBIN, PX_LB_LEAST_REQUEST } px_lb_kind;
typedef enum px_on_error { PX_ON_ERROR_FAIL, PX_ON_ERROR_DEGRADE } px_on_error;

typedef struct px_cluster_cfg {
    char *name;
    char **endpoints;
    size_t nendpoints;
    px_lb_kind lb;
    sl_upstream_config up; /* name/endpoints point into this struct */
    /* active health checks (hc_path NULL: off) */
    char *hc_path;
    uint32_t hc_interval_ms, hc_timeout_ms, hc_unhealthy, hc_healthy;
    /* passive outlier ejection (0: that trigger is off) */
    uint32_t out_5xx, out_connect, out_base_ms, out_max_pct;
    /* the key of the edge gateway→<name> (in px_config.identity_ring), or NULL: no identity */
    const sl_identity_edge *identity_edge;
    /* version subsets (subset.h); nsubsets 0: none. The endpoints hold the addresses without
     * their "@version"; ep_subset[e] is endpoint e's subset. */
    size_t nsubsets;
    char subset_names[PX_SUBSETS_MAX][PX_SUBSET_NAME_MAX + 1];
    uint32_t subset_weights[PX_SUBSETS_MAX]; /* the configured split (the admin API may change
                                                the live one: cluster.h) */
    int canary;                              /* subset of `x-shoal-canary: 1`, or -1 */
    bool sticky;                             /* choose by a hash of the user id */
    int ep_subset[SL_UPSTREAM_ENDPOINTS_MAX];
    /* per subset: its endpoints' addresses and their indexes among the cluster's */
    const char *sub_eps[PX_SUBSETS_MAX][SL_UPSTREAM_ENDPOINTS_MAX];
    size_t sub_idx[PX_SUBSETS_MAX][SL_UPSTREAM_ENDPOINTS_MAX];
    size_t nsub_eps[PX_SUBSETS_MAX];
} px_cluster_cfg;

/* One upstream call of an aggregate. With `target` set it is an enrichment step. */
typedef struct px_part_cfg {
    char *name;   /* member of the output document (or the warning's part name) */
    int cluster;  /* index into clusters */
    char *path;   /* target template: "/users/{user_id}", "/products?ids={ids}" */
    char *select; /* member of the response to keep; NULL = the whole document */
    double share; /* of the route's deadline */
    px_on_error on_error;
    char *target; /* enrichment: the part whose array is enriched */
    int target_idx;
    char *list;   /* member of each target element: an array of objects */
    char *id;     /* member of each list element: the id to look up */
    char *set;    /* member added to each target element */
    char *result; /* member of the batch response: the array of found objects */
    char *key;    /* member of each found object that matches an id */
    uint32_t batch_max;
    uint32_t batches_max;
} px_part_cfg;

typedef struct px_aggregate_cfg {
    char *name;
    px_part_cfg parts[PX_PARTS_MAX];
    size_t nparts;
} px_aggregate_cfg;

/* The audit join (audit.c): which aggregate's answers are joined, and the cross-service checks
 * (`equal`: two checks, "<part>.<check>", whose values must be equal). */
#define PX_AUDIT_CROSS_MAX 16
typedef struct px_audit_cross {
    char *name;
    char *equal[2];
} px_audit_cross;
typedef struct px_audit_cfg {
    int aggregate; /* index into aggregates; -1: no audit */
    px_audit_cross cross[PX_AUDIT_CROSS_MAX];
    size_t ncross;
} px_audit_cfg;

/* The sidecar role (docs/mesh.md): `sidecar:` present means shoal-proxy runs as a sidecar. */
#define PX_OUTBOUND_MAX 32

typedef struct px_outbound_cfg {
    int cluster; /* index into clusters: its name is the identity the upstream must have */
    int port;    /* loopback port the local service's client calls (0: any free one) */
} px_outbound_cfg;

typedef struct px_sidecar_cfg {
    bool on;
    char service[SL_TLS_NAME_MAX + 1]; /* this instance's identity (its leaf's SAN) */
    char *cert_file, *key_file, *ca_file, *revoked_file; /* revoked_file may be NULL */
    int local_cluster; /* the local service, where inbound calls go */
    px_outbound_cfg outbound[PX_OUTBOUND_MAX];
    size_t noutbound;
    /* Names for spans, metrics and logs: [0] inbound, [1 + i] outbound i (route->cluster set). */
    px_route routes[1 + PX_OUTBOUND_MAX];
    px_policy policy; /* who may call the local service (sidecar.allow) */
    /* TLS contexts, loaded by px_sidecar_load_tls (sidecar.h) on the main thread; owned. */
    sl_tls_ctx *tls_server;
    sl_tls_ctx *tls_client[PX_OUTBOUND_MAX];
} px_sidecar_cfg;

typedef struct px_config {
    char *source; /* file path */
    char *json;   /* the effective configuration as JSON (for /admin/config) */
    /* listener */
    char host[64];
    int port, workers;
    uint32_t drain_ms;
    sl_http_limits limits;
    uint32_t max_pending; /* requests in flight per worker; beyond → 503 */
    uint32_t default_timeout_ms;
    /* admin */
    char admin_host[64];
    int admin_port; /* 0: no admin listener */
    /* identity */
    sl_identity_keyring identity_ring;            /* the gateway's edges: gateway→<cluster> */
    char identity_name[SL_IDENTITY_NAME_MAX + 1]; /* identity.name: the caller the proofs name */
    bool have_identity_key;
    char identity_note[256];
    /* auth */
    int jwks_cluster; /* -1: no JWKS (every protected route answers 401) */
    char *jwks_path;
    char *issuer;
    int64_t leeway_s;
    uint32_t jwks_refresh_ms, jwks_min_refetch_ms, jwks_waiters_max;
    char *audience;    /* expected `aud` (NULL: not checked) */
    char *revoke_path; /* revoked-sessions feed on the JWKS cluster (NULL: none) */
    uint32_t revoke_poll_ms;
    char *jwks_pins[PX_JWKS_PINS_MAX]; /* auth.jwks.pin_kid: only these kids are used */
    size_t njwks_pins;                 /* 0: every key of the JWKS */
    /* rate limits */
    uint32_t client_rate, client_burst; /* per second; 0: off */
    uint32_t rl_max_keys;
    /* CORS */
    char *cors_origins[PX_CORS_ORIGINS_MAX];
    size_t ncors_origins; /* 0: CORS off */
    char *cors_methods, *cors_headers, *cors_expose;
    uint32_t cors_max_age_s;
    bool cors_credentials;
    /* observability */
    int log_level; /* sl_log_level */
    bool access_log;
    double sample_ratio;
    sl_otlp_settings telemetry; /* the `telemetry:` section (span export) */
    /* tables */
    px_cluster_cfg clusters[PX_CLUSTERS_MAX];
    size_t nclusters;
    px_routes routes;
    px_aggregate_cfg aggregates[PX_AGGREGATES_MAX];
    size_t naggregates;
    /* static files (static.h): read into memory by px_config_load, not by _load_string */
    px_static_site statics[PX_STATIC_MAX];
    size_t nstatics;
    char static_note[256]; /* a root that does not exist, for the log; "" when none */
    px_audit_cfg audit;
    px_sidecar_cfg sidecar;
} px_config;

/*
 * Loads `path` (or the built-in defaults when NULL), applies `envp`
 * overrides (SHOAL_LISTENER__PORT, SHOAL_SERVICE__PORT as its alias, SHOAL_IDENTITY__KEY_FILE,
 * ...) and validates everything. Returns 0 and *out (free with
 * px_config_free), or an SL_E* code with one located message in `err`
 * (PX_ERR_MAX bytes).
 */
int px_config_load(const char *path, char *const *envp, px_config **out, char *err);

/* Same, from YAML text (tests). */
int px_config_load_string(const char *name, const char *yaml, char *const *envp, px_config **out,
                          char *err);

/* Frees `cfg` (NULL is fine). */
void px_config_free(px_config *cfg);

/* Returns the index of cluster `c`'s subset named `name` (len bytes), or -1. */
int px_cluster_subset(const px_cluster_cfg *c, const char *name, size_t len);

/* Returns the index of the cluster named `name`, or -1. */
int px_config_cluster(const px_config *cfg, const char *name);

#endif
