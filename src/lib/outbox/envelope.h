/*
 * Internal: the CloudEvents envelope writer behind sl_outbox_add, exposed to
 * the fuzz target (tests/fuzz/envelope_fuzz.c).
 */
#ifndef SHOAL_OUTBOX_ENVELOPE_H
#define SHOAL_OUTBOX_ENVELOPE_H

#include <shoal/outbox.h>

/*
 * Builds the CloudEvents 1.0 structured envelope (DESIGN §7) of `ev` with
 * `id` and the time `now_wall_ns` as compact JSON text: the attributes are
 * escaped here, `data_json` is checked with the JSON parser (duplicate keys
 * refused, as the consumers' parser refuses them) and copied as given.
 * Returns 0 with *out (owned, free) and its length, SL_EINVAL (a field
 * that is not UTF-8, data that is not JSON) or SL_ENOMEM.
 */
int sl_outbox_envelope(const sl_outbox_event *ev, const char *id, int64_t now_wall_ns, char **out,
                       size_t *out_len);

#endif /* SHOAL_OUTBOX_ENVELOPE_H */
