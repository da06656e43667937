/*
 * The gateway's own admin API routes (admin_services.c), answered by the
 * gateway rather than forwarded as they come: routes with `handler:` in the
 * configuration (docs/gateway.md, "Admin API").
 *
 *   admin_services  GET /api/v1/admin/services: every cluster and endpoint
 *                   with readiness, version, uptime, request rate, error
 *                   ratio and p99 (from a scraper of each endpoint's /readyz
 *                   and /metrics on worker 0, every PX_SCRAPE_INTERVAL_MS),
 *                   plus the gateway's own breaker and bulkhead state.
 *   admin_dlq       the dead-letter queue of one service, routed by the
 *                   `service` query parameter or the service named in a
 *                   message id, to that service's /admin/dlq routes;
 *                   `POST .../redrive` without a service goes to every one.
 *
 * The Prometheus text reader and the rate/quantile arithmetic are pure.
 */
#ifndef SHOAL_PROXY_ADMIN_SERVICES_H
#define SHOAL_PROXY_ADMIN_SERVICES_H

#include "request.h"

#include <stddef.h>
#include <stdint.h>

#define PX_SCRAPE_INTERVAL_MS 2000
#define PX_SCRAPE_TIMEOUT_MS  1000
#define PX_PROM_BUCKETS_MAX   32

/* What one /metrics text says, summed over the service's labels. */
typedef struct px_prom_sample {
    double requests; /* service_requests_total */
    double errors;   /* service_requests_total with a 5xx status */
    size_t nbuckets; /* service_request_duration_seconds_bucket, by le, ascending */
    double le[PX_PROM_BUCKETS_MAX];
    double count[PX_PROM_BUCKETS_MAX]; /* cumulative */
    double start_time_s;               /* process_start_time_seconds, 0 if absent */
    char version[64];                  /* build_info{version}, "" if absent */
    double outbox_backlog;             /* outbox_backlog: events written, not yet published */
    double consumer_lag;               /* bus_consumer_lag, summed over groups and topics */
    int has_outbox, has_lag;           /* the gauges were present */
} px_prom_sample;

/* Reads Prometheus text `text` (len bytes) into *out. Pure; never fails (unknown lines skip). */
void px_prom_parse(const char *text, size_t len, px_prom_sample *out);

/*
 * Between two samples dt_s apart: requests per second, the share of 5xx, and
 * the 99th percentile latency in seconds (linear within the bucket; the
 * highest finite bound when it falls in +Inf; -1 when there were no
 * requests). A counter that went down (a restart) counts from zero. Pure.
 */
void px_prom_rates(const px_prom_sample *prev, const px_prom_sample *cur, double dt_s, double *rate,
                   double *error_ratio, double *p99_s);

typedef struct px_scraper px_scraper;

/* Starts scraping every endpoint of `cfg` on `loop` (worker 0). Returns NULL without memory. */
px_scraper *px_scraper_start(uv_loop_t *loop, sl_rand *rand, const px_config *cfg);
/* Stops it (loop thread); it frees itself once its handles are closed. NULL is ignored. */
void px_scraper_stop(px_scraper *s);

/* Answers a request whose route has a handler (after authentication). */
void px_admin_handle(px_req *r);

#endif
