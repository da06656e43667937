/*
 * shoal-proxy's sidecar role (sidecar.c), beside the gateway's pipeline
 * (forward.h) on the same workers, generations and clusters:
 *
 *   inbound   the instance's public port, mTLS (TLS 1.3, client certificate
 *             required, verified against the mesh CA): the caller's identity
 *             comes from its certificate and is checked against the policy
 *             (policy.h); an allowed call goes to the local service with
 *             X-Shoal-Peer-Service set to that identity (any incoming copy
 *             is dropped first); a denied one gets 403 problem+json, a count
 *             in mesh_policy_denied_total{caller,callee} and a log line.
 *   outbound  one loopback port per upstream cluster, plain HTTP from the
 *             local service; the call leaves through the cluster (balancing,
 *             outlier ejection, timeouts, retries with budget, breaker) with
 *             mTLS: this instance's certificate, the upstream's identity
 *             expected.
 *
 * Headers pass through unchanged apart from hop-by-hop and framing ones and
 * those the HTTP client sets itself (trace, request id, deadline,
 * Idempotency-Key); the end user's signed identity headers are kept.
 */
#ifndef SHOAL_PROXY_SIDECAR_H
#define SHOAL_PROXY_SIDECAR_H

#include "request.h"

/* The header carrying the caller service's identity to the local service. */
#define PX_PEER_SERVICE_HEADER "x-shoal-peer-service"

/*
 * Loads the TLS contexts of `cfg`'s sidecar section (nothing without one):
 * the inbound server context and one client context per outbound cluster
 * (expecting that cluster's name as the peer identity), and points the
 * clusters' upstreams at them. With `prev` (the configuration being
 * replaced) the contexts continue its counters. Main thread. Returns 0, or
 * an SL_E code with the reason in `err` (`cap` bytes); `cfg` then holds
 * nothing new (the old configuration keeps serving).
 */
int px_sidecar_load_tls(px_config *cfg, const px_config *prev, sl_metrics *metrics, sl_logger *log,
                        char *err, size_t cap) SL_MUST_CHECK;

/* One listener of a sidecar worker: the inbound one (route 0) or an outbound one. */
typedef struct px_sc_listener {
    px_worker *w;
    int route; /* index into the configuration's sidecar.routes */
    sl_http_server *srv;
} px_sc_listener;

/* The HTTP server callbacks of a sidecar listener (data: its px_sc_listener). */
int px_sidecar_on_headers(sl_http_req *req, void *data);
void px_sidecar_on_request(sl_http_req *req, void *data);
void px_sidecar_on_response(sl_http_req *req, int status, size_t body_len, void *data);

#endif
