/*
 * The tally service's events, as it publishes them: what any consumer may
 * rely on. A consumer links the library tally_contract and includes this
 * header, never the service's own files.
 *
 * Each event is a CloudEvent from source "/shoal/tally" whose type is also
 * its bus topic, and whose subject is the counter's name. Payload (`data`):
 *
 *   shop.tally.incremented.v1
 *     command_id   string, the id of the command that caused it (a UUIDv7)
 *     counter      string, 1..TALLY_NAME_MAX characters of [a-z0-9_-]
 *     amount       integer, 1..TALLY_AMOUNT_MAX
 *
 * Readers tolerate members they do not know, so a member may be added
 * without a new type; removing or changing one needs a new type (".v2").
 */
#ifndef SHOAL_TALLY_CONTRACT_EVENTS_H
#define SHOAL_TALLY_CONTRACT_EVENTS_H

#include <shoal/common.h>
#include <shoal/json.h>

#include <stddef.h>
#include <stdint.h>

/* Event types (= bus topics). */
#define TALLY_EV_INCREMENTED "shop.tally.incremented.v1"

/* Bounds of the payload members (the service validates its input against the same ones). */
#define TALLY_NAME_MAX   64      /* bytes of a counter's name */
#define TALLY_AMOUNT_MAX 1000000 /* one increment */

/* A decoded shop.tally.incremented.v1; strings borrow from the event data. */
typedef struct tally_incremented {
    const char *command_id; /* NULL when absent */
    const char *counter;
    int64_t amount;
} tally_incremented;

/* 1 when `len` bytes of `s` are 1..TALLY_NAME_MAX characters of [a-z0-9_-], else 0. */
int tally_name_valid(const char *s, size_t len);

/*
 * Decodes and checks the data (borrowed) of a shop.tally.incremented.v1. Returns 0 with *out
 * filled, or SL_EPARSE for data that can never apply, with the reason in `reason` (cap bytes;
 * may be NULL), which dead-letters the event when an applier returns it.
 */
int tally_incremented_decode(const json_t *data, tally_incremented *out, char *reason,
                             size_t cap) SL_MUST_CHECK;

#endif /* SHOAL_TALLY_CONTRACT_EVENTS_H */
