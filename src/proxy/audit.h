/*
 * The audit join, a stage of the request pipeline (audit.c): the answers of
 * the audited aggregate's parts (each service's /admin/audit) become one
 * {ok, checks} document.
 */
#ifndef SHOAL_PROXY_AUDIT_H
#define SHOAL_PROXY_AUDIT_H

#include "gwconfig.h"

#include <jansson.h>

/* Checks one service may report; more are reported as one failed check. */
#define PX_AUDIT_CHECKS_MAX 64

/*
 * Joins `doc` (borrowed: {<part name>: answer or null, ..., "warnings": [{part, reason}]}, as
 * the aggregate of `a` builds it) under `au`: every part's checks prefixed "<part>.", a failed
 * "<part>.audit" check for a part that did not answer (with the reason) or answered without
 * usable checks, then the cross checks; ok = every check ok. Pure. Returns a new reference
 * ({ok, checks}) or NULL (out of memory).
 */
json_t *px_audit_join(const px_aggregate_cfg *a, const px_audit_cfg *au, const json_t *doc);

#endif
