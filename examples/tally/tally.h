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
#include <shoal/json.h>
#include <shoal/service.h>

#include <stddef.h>
#include <stdint.h>

/* ---- domain (pure) ------------------------------------------------------------------------ */

/*
 * Copies the route's {name} into `out` when it is a valid counter name (tally_name_valid).
 * Returns 0, or SL_EINVAL leaving `out` empty.
 */
int tally_counter_name(sl_slice name, char out[TALLY_NAME_MAX + 1]) SL_MUST_CHECK;

/*
 * Validates an increment body {amount} (1..TALLY_AMOUNT_MAX, unknown keys rejected).
 * Returns 0, or SL_EINVAL with the errors in errs.
 */
int tally_read_increment(const json_t *body, int64_t *amount, sl_json_errors *errs) SL_MUST_CHECK;

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
 * shop.tally.incremented.v1 in the outbox, on the worker's connection. Writes the command's
 * id into `id`. Returns 0 or a database error (nothing is written then).
 */
int tally_increment(sl_svc_worker *w, sl_http_req *req, const char *counter, int64_t amount,
                    char id[SL_DB_UUID_STR]) SL_MUST_CHECK;

/* ---- events (appliers, sl_event_apply_cb) ------------------------------------------------- */

/* Applies shop.tally.incremented.v1 to the read model, inside the runner's transaction. */
int tally_apply_incremented(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap);

/* ---- service ------------------------------------------------------------------------------ */

extern const sl_service_def tally_service;
extern const sl_migration_set sl_migrations_tally;

#endif /* SHOAL_TALLY_H */
