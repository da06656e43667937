/*
 * The order service's audit (audit.c): GET /admin/audit, admin or service
 * identity. docs/services/order.md lists its checks.
 */
#ifndef SHOAL_SVC_ORDER_AUDIT_H
#define SHOAL_SVC_ORDER_AUDIT_H

#include <shoal/db.h>
#include <shoal/http.h>
#include <shoal/service.h>

#include <jansson.h>
#include <stdint.h>

/* Grace before an unpublished outbox row counts as a backlog violation. */

/*
 * Reads the order's checks over `db` at wall time `now_ms`: the charge digest of the orders
 * that must have been charged, sagas past `deadline_ms` or stuck, orders pending past it, work
 * in flight and the outbox backlog. Returns 0 with *checks (new reference: an array of
 * {name, ok, value, detail}) or an error.
 */
int order_audit_checks(sl_db *db, int64_t now_ms, int64_t deadline_ms,
                       json_t **checks) SL_MUST_CHECK;

/* GET /admin/audit: {ok, checks}. */
void order_h_audit(sl_http_req *req, sl_svc_worker *w);

#endif
