/*
 * The tally's transactions (tally.h): each one begins, changes the write
 * model through store.c, writes its events to the outbox and commits, so
 * that the state change and its events exist together or not at all.
 */
#include "tally.h"

#include <shoal/clock.h>

int tally_increment(sl_svc_worker *w, sl_http_req *req, const char *counter, int64_t amount,
                    char id[SL_DB_UUID_STR])
{
    sl_db *db = sl_svc_worker_db(w);
    int rc = sl_db_uuid7(sl_clock_wall_ms(sl_clock_system()), id);
    if (rc != 0) return rc;
    if ((rc = sl_db_begin(db)) != 0) return rc;
    rc = tally_store_command_add(db, id, counter, amount);
    if (rc == 0) {
        json_t *data = json_pack("{s:s, s:s, s:I}", "command_id", id, "counter", counter, "amount",
                                 (json_int_t)amount);
        rc = data ? sl_svc_emit(w, req, db, TALLY_EV_INCREMENTED, counter, data) : SL_ENOMEM;
        json_decref(data);
    }
    if (rc == 0) rc = sl_db_commit(db);
    if (rc != 0) sl_db_rollback(db);
    return rc;
}
