/*
 * Dead letters kept in a consuming service's own database (library
 * migration 0007, table `dead_letters`), for the in-process broker of the
 * hosted shape, where a `.dlq` topic lives in memory only. The bus core
 * hands a subscription's dead letters to a store hook instead of publishing
 * them to `<topic>.dlq`; the message is settled only once the hook wrote
 * the dead letter (so the publisher's outbox row is marked published only
 * then). Loop thread; `db` is never inside another transaction.
 */
#ifndef SHOAL_BUS_DEAD_STORE_H
#define SHOAL_BUS_DEAD_STORE_H

#include <shoal/bus.h>
#include <shoal/db.h>

/* Keeps one dead letter (the JSON document `letter` of bus.c's dead_letter_json) of `group`
 * on `topic`; `key` names the message (its event id, or "seq:<n>"). Returns 0 once it is
 * durable, or an error (the message is then nacked and comes back). */
typedef int (*sl__bus_dead_keep_cb)(void *data, const char *topic, const char *group,
                                    const char *key, const char *letter, size_t len);

/* Sends the dead letters of runner `r`'s subscription to `keep` (NULL: back to `<topic>.dlq`).
 * Loop thread, before the first delivery matters (right after sl_bus_runner_new). */
void sl__bus_runner_keep_dead(sl_bus_runner *r, sl__bus_dead_keep_cb keep, void *data);

/*
 * Writes one dead letter in its own transaction, replacing the row of the same consumer and
 * key (the replacement gets a new seq). Returns 0, SL_ELIMIT when the table already holds
 * `max` rows (nothing written), or a database error.
 */
int sl__dead_store_put(sl_db *db, const char *consumer, const char *key, const char *topic,
                       const char *letter, size_t len, int64_t now_ms, int64_t max);

/* Lists at most `max` dead letters of `topic`, oldest first, into out[] (dlq_seq: the row's
 * seq); *n the number. Rows that do not parse are skipped. Returns 0 or a database error. */
int sl__dead_store_list(sl_db *db, const char *topic, size_t max, sl_bus_dead *out, size_t *n);

/* The original envelope of row `seq` of `topic` (*env: owned, free()), and its subject
 * (ordering key; "" when the envelope has none) in subject[SL_BUS_ID_MAX + 1]. Returns 0,
 * SL_ENOTFOUND, SL_EPARSE (kept without its envelope: cannot be redriven) or a database
 * error. */
int sl__dead_store_envelope(sl_db *db, const char *topic, int64_t seq, char **env, size_t *len,
                            char *subject);

/* Deletes row `seq` (absent: nothing). Returns 0 or a database error. */
int sl__dead_store_delete(sl_db *db, int64_t seq);

/* The number of rows in *n. Returns 0 or a database error. */
int sl__dead_store_count(sl_db *db, int64_t *n);

#endif
