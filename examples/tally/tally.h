/*
 * shoal-tally's internal interface, shared by its files: pure rules
 * (domain.c), SQL (store.c), transactions (commands.c), the event applier
 * (events.c) and the definition with its handlers (tally.c). Functions taking
 * an sl_db run on the thread owning that connection; the pure ones are
 * thread-safe.
 */
#ifndef SHOAL_TALLY_H
#define SHOAL_TALLY_H

#include "tally/contract/tally_events.h"

#include <shoal/common.h>
#include <shoal/db.h>
#include <shoal/id.h>
#include <shoal/json.h>
#include <shoal/service.h>

#include <stddef.h>
#include <stdint.h>

/* ---- domain (pure) ------------------------------------------------------------------------ */

/*
 * Validates an increment body {amount} (1..TALLY_AMOUNT_MAX, unknown keys rejected).
 * Returns 0, or SL_EINVAL with the errors in errs.
 */
int tally_read_increment(const json_t *body, int64_t *amount, sl_json_errors *errs) SL_MUST_CHECK;

/* The representation of a recorded increment: {command_id, counter, amount} (returns owned,
 * json_decref; NULL without memory). */
json_t *tally_command_json(const char *command_id, const char *counter, int64_t amount);

/* The representation of a counter's read model: {counter, total, events} (returns owned). */
json_t *tally_view_json(const char *counter, int64_t total, int64_t events);

/* ---- store (SQL): 0, SL_ENOTFOUND where stated, or a database error ---------------------- */

/* Records one increment command (the write model). */
int tally_store_command_add(sl_db *tx, const char *id, const char *counter,
                            int64_t amount) SL_MUST_CHECK;

/* Adds `amount` to the counter's read model row (created at the first event). */
int tally_store_view_add(sl_db *tx, const char *counter, int64_t amount) SL_MUST_CHECK;

/* The counter's read model; SL_ENOTFOUND when no event of it was applied yet. */
int tally_store_view_get(sl_db *db, const char *counter, int64_t *total,
                         int64_t *events) SL_MUST_CHECK;

/* ---- commands (transactions) -------------------------------------------------------------- */

/*
 * Records an increment of `counter` by `amount` and, in the same transaction, its event
 * shop.tally.incremented.v1 in the outbox and the answer under the request's
 * Idempotency-Key `k` (sl_req_idem_read), on the worker's connection. Returns 0 with the
 * answer's body in *answer (returns owned, json_decref; status 202); 1 when the request was
 * answered already (a replay of the key's first answer, or 422 for a key reused with another
 * request); or a database error, with nothing written.
 */
int tally_increment(sl_svc_worker *w, sl_http_req *req, const sl_req_idem *k, const char *counter,
                    int64_t amount, json_t **answer) SL_MUST_CHECK;

/* ---- events (appliers, sl_event_apply_cb) ------------------------------------------------- */

/* Applies shop.tally.incremented.v1 to the read model, inside the runner's transaction. */
int tally_apply_incremented(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap);

/* ---- service ------------------------------------------------------------------------------ */

/* The worker's UUIDv7 generator (made by the worker_init hook). Worker thread only. */
sl_idgen *tally_worker_ids(sl_svc_worker *w);

extern const sl_service_def tally_service;
extern const sl_migration_set sl_migrations_tally;

#endif /* SHOAL_TALLY_H */
