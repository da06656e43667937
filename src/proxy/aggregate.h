/*
 * Composite routes, a stage of the request pipeline (aggregate.c): parts
 * fetched at once, enrichments in batches, one JSON document answered.
 */
#ifndef SHOAL_PROXY_AGGREGATE_H
#define SHOAL_PROXY_AGGREGATE_H

#include "request.h"

/* Starts aggregate `a` for `r` (r->agg holds it until it answers). Always answers, at once or
 * later. */
void px_aggregate_start(px_req *r, const px_aggregate_cfg *a);
/* Frees an aggregate (NULL is ignored); its calls are cancelled. */
void px_agg_free(px_agg *g);

#endif
