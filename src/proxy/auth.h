/*
 * Authentication, a stage of the request pipeline (auth.c): the bearer
 * token verified against the worker's JWKS cache, the route's role and owner
 * rules applied, 401/403 answered. A request whose token names a key the
 * cache does not hold yet is parked in the cache (px_req.wait) until a
 * refetch ends; the pipeline then calls px_authenticate again.
 */
#ifndef SHOAL_PROXY_AUTH_H
#define SHOAL_PROXY_AUTH_H

#include "request.h"

typedef enum px_authn {
    PX_AUTHN_PASS,     /* go on: authenticated, or anonymous on a route that allows it */
    PX_AUTHN_PARKED,   /* waiting for the JWKS; the pipeline resumes it */
    PX_AUTHN_ANSWERED, /* refused: the answer was sent */
} px_authn;

px_authn px_authenticate(px_req *r);

#endif
