/*
 * The request pipeline's entry (forward.c): the HTTP server callbacks of a
 * gateway worker, and the hooks through which the JWKS cache hands parked
 * requests back. The worker's server is created with data = its px_worker.
 */
#ifndef SHOAL_PROXY_FORWARD_H
#define SHOAL_PROXY_FORWARD_H

#include "request.h"

int px_on_headers(sl_http_req *req, void *data);
void px_on_request(sl_http_req *req, void *data);
void px_on_response(sl_http_req *req, int status, size_t body_len, void *data);

/* The JWKS cache's hooks for parked requests (jwks.h). */
void px_resume(px_waiter *wt);
void px_abandon(px_waiter *wt);

#endif
