/*
 * The tally's transactions (tally.h): each one begins, claims the request's
 * Idempotency-Key, changes the write model through store.c, writes its
 * events to the outbox, stores its answer with the key and commits, so that
 * the state change, its events and its answer exist together or not at all.
 */
#include "tally.h"

#include <stdio.h>

int tally_increment(sl_svc_worker *w, sl_http_req *req, const sl_req_idem *k, const char *counter,
                    int64_t amount, json_t **answer)
{
    SL_ASSERT(k != NULL && counter != NULL && answer != NULL);
    *answer = NULL;
    sl_db *db = sl_svc_worker_db(w);
    char id[SL_UUID_STR_MAX];
    int rc = sl_uuid7_new(tally_worker_ids(w), id);
    if (rc != 0) return rc;
    /* What makes two requests with one key the same request. */
    char canon[TALLY_NAME_MAX + 64];
    int len = snprintf(canon, sizeof canon, "POST /counters/%s\n%lld", counter, (long long)amount);
    SL_ASSERT(len > 0 && (size_t)len < sizeof canon);
    if ((rc = sl_db_begin(db)) != 0) return rc;
    rc = sl_req_idem_claim(req, db, k, canon, (size_t)len, NULL);
    if (rc == 1) return 1; /* answered and rolled back */
    json_t *out = NULL;
    if (rc == 0) rc = tally_store_command_add(db, id, counter, amount);
    if (rc == 0) {
        json_t *data = tally_command_json(id, counter, amount);
        rc = data ? sl_svc_emit(w, req, db, TALLY_EV_INCREMENTED, counter, data) : SL_ENOMEM;
        json_decref(data);
    }
    if (rc == 0) rc = (out = tally_command_json(id, counter, amount)) ? 0 : SL_ENOMEM;
    if (rc == 0) rc = sl_req_idem_finish(db, k, 202, out);
    if (rc == 0) rc = sl_db_commit(db);
    if (rc != 0) {
        sl_db_rollback(db);
        json_decref(out);
        return rc;
    }
    *answer = out;
    return 0;
}
