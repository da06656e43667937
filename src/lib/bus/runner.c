/*
 * The transactional consumer runner: applies each delivered event inside a
 * database transaction together with its inbox claim (sl_inbox_claim), so
 * an event's effect happens once even when the bus delivers it again, and
 * acks only after the commit. The messages of one delivery batch share a
 * transaction (up to batch_max). They run without savepoints first; when
 * one fails, the transaction is rolled back and the batch runs again with
 * a savepoint per message, so a failing event rolls back alone. Loop
 * thread.
 */
#include "bus/bus_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Messages per transaction at most (batch_max is capped to it). */
#define BUS_RUNNER_CHUNK_MAX 256

struct sl_bus_runner {
    sl_bus_sub *sub;
    sl_db *db;
    char consumer[SL_BUS_GROUP_MAX + 1];
    sl_bus_runner_options o;
    sl_bus_apply_cb apply;
    void *data;
};

static void nack_all(sl_bus_reply *r, size_t n, const char *why)
{
    for (size_t i = 0; i < n; i++) {
        if (r[i].verdict != SL_BUS_ACK) continue;
        r[i].verdict = SL_BUS_NACK;
        snprintf(r[i].reason, sizeof r[i].reason, "%s", why);
    }
}

/* Applies one message under a savepoint; fills its reply. Returns 0, or a database error that
 * spoils the whole transaction. */
static int apply_one(sl_bus_runner *r, const sl_bus_msg *m, sl_bus_reply *rep, int64_t now)
{
    int rc = sl_db_savepoint(r->db, "sl_bus_msg");
    if (rc != 0) return rc;
    int claim = sl_inbox_claim(r->db, r->consumer, m->id, now);
    if (claim == 1) {
        rc = r->apply(r->data, r->db, m, rep->reason, sizeof rep->reason);
        if (rc == 0) return sl_db_release(r->db, "sl_bus_msg");
        rep->verdict = rc == SL_EPARSE ? SL_BUS_REJECT : SL_BUS_NACK;
        if (rep->reason[0] == '\0')
            snprintf(rep->reason, sizeof rep->reason, "apply failed: %s", sl_strerror(rc));
    } else if (claim == 0) {
        return sl_db_release(r->db, "sl_bus_msg"); /* already applied: ack */
    } else {
        rep->verdict = SL_BUS_NACK;
        snprintf(rep->reason, sizeof rep->reason, "inbox claim failed: %s", sl_strerror(claim));
    }
    rc = sl_db_rollback_to(r->db, "sl_bus_msg");
    if (rc == 0) rc = sl_db_release(r->db, "sl_bus_msg");
    return rc;
}

/* The fast pass: every message of the chunk without savepoints (two statements fewer per
 * message). Returns 0 when all applied (or were duplicates) and the commit is up to the
 * caller, or 1 when an apply or a claim failed (the caller rolls back and runs the careful
 * pass, which finds out which message it was and why). */
static int fast_pass(sl_bus_runner *r, const sl_bus_msg *const *msgs, sl_bus_reply *replies,
                     size_t n, int64_t now)
{
    /* The whole chunk's claims in a few statements (sl_inbox_claim_many), then the effects. */
    const char *ids[BUS_RUNNER_CHUNK_MAX] = {0};
    unsigned char claimed[BUS_RUNNER_CHUNK_MAX];
    for (size_t i = 0; i < n; i++)
        ids[i] = msgs[i]->id;
    if (sl_inbox_claim_many(r->db, r->consumer, ids, n, now, claimed) != 0) return 1;
    for (size_t i = 0; i < n; i++) {
        if (!claimed[i]) continue; /* already applied */
        if (r->apply(r->data, r->db, msgs[i], replies[i].reason, sizeof replies[i].reason) != 0)
            return 1;
    }
    return 0;
}

static void run_chunk(sl_bus_runner *r, const sl_bus_msg *const *msgs, sl_bus_reply *replies,
                      size_t n)
{
    int64_t now = sl_clock_wall_ms(r->o.clock);
    int rc = sl_db_begin(r->db);
    if (rc != 0) {
        nack_all(replies, n, "begin failed");
        return;
    }
    rc = fast_pass(r, msgs, replies, n, now);
    if (rc == 0) {
        if (sl_db_commit(r->db) != 0) nack_all(replies, n, "transaction failed");
        return;
    }
    /* One message failed: run the chunk again, each message under its own savepoint, so
     * only the failing ones roll back (apply runs again for the others: its effects are in
     * the transaction only). */
    sl_db_rollback(r->db);
    memset(replies, 0, n * sizeof *replies);
    rc = sl_db_begin(r->db);
    if (rc != 0) {
        nack_all(replies, n, "begin failed");
        return;
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = apply_one(r, msgs[i], &replies[i], now);
    if (rc == 0) rc = sl_db_commit(r->db);
    if (rc != 0) {
        sl_db_rollback(r->db);
        /* Nothing of the batch is committed: even rejects must be retried, as their
         * dead-lettering is fine but acks are not. */
        nack_all(replies, n, "transaction failed");
    }
}

static void on_batch(void *data, const sl_bus_msg *const *msgs, sl_bus_reply *replies, size_t n)
{
    sl_bus_runner *r = data;
    for (size_t i = 0; i < n; i += r->o.batch_max) {
        size_t k = n - i < r->o.batch_max ? n - i : r->o.batch_max;
        run_chunk(r, msgs + i, replies + i, k);
    }
}

int sl_bus_runner_new(sl_bus *bus, sl_db *db, const char *topic, const char *group,
                      const sl_bus_sub_options *sub_opt, const sl_bus_runner_options *opt,
                      sl_bus_apply_cb apply, void *data, sl_bus_runner **out)
{
    *out = NULL;
    if (bus == NULL || db == NULL || apply == NULL || group == NULL) return SL_EINVAL;
    sl_bus_runner *r = calloc(1, sizeof *r);
    if (r == NULL) return SL_ENOMEM;
    if (opt) r->o = *opt;
    const char *consumer = r->o.consumer ? r->o.consumer : group;
    if (strlen(consumer) > SL_BUS_GROUP_MAX) {
        free(r);
        return SL_EINVAL;
    }
    snprintf(r->consumer, sizeof r->consumer, "%s", consumer);
    r->o.consumer = r->consumer;
    if (r->o.batch_max == 0) r->o.batch_max = 64;
    if (r->o.batch_max > BUS_RUNNER_CHUNK_MAX) r->o.batch_max = BUS_RUNNER_CHUNK_MAX;
    if (r->o.clock == NULL) r->o.clock = sl_clock_system();
    r->db = db;
    r->apply = apply;
    r->data = data;
    int rc = sl__bus_subscribe_batch(bus, topic, group, sub_opt, on_batch, r, &r->sub);
    if (rc != 0) {
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void sl_bus_runner_free(sl_bus_runner *r)
{
    if (r == NULL) return;
    sl_bus_unsubscribe(r->sub);
    free(r);
}

void sl__bus_runner_keep_dead(sl_bus_runner *r, sl__bus_dead_keep_cb keep, void *data)
{
    r->sub->dead_keep = keep;
    r->sub->dead_keep_data = data;
}
