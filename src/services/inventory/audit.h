/*
 * The inventory's joinable audit checks (audit.c), added to GET /admin/audit.
 */
#ifndef SHOAL_SVC_INVENTORY_AUDIT_H
#define SHOAL_SVC_INVENTORY_AUDIT_H

#include "inventory.h"

#include <jansson.h>
#include <stdint.h>

/*
 * Builds the checks {name, ok, value, detail} from the findings v[0..n) (`dropped` more) of
 * inv_store_audit and reads the rest over `db` at wall time `now_ms`: `stock` (those findings),
 * `reservations_overdue` (active past their expiry by more than `grace_ms`: the sweep is
 * late), `in_flight` (active reservations plus unpublished events) and `outbox_backlog`.
 * Returns 0 with *checks (new reference, an array) or an error.
 */
int inv_audit_checks(sl_db *db, const inv_violation *v, size_t n, size_t dropped, int64_t now_ms,
                     int64_t grace_ms, json_t **checks) SL_MUST_CHECK;

#endif
