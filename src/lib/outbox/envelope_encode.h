/*
 * Internal: encoding an event as the CloudEvents envelope stored in an outbox
 * row (the text the relay publishes unchanged), for sl_outbox_add and the
 * fuzz target tests/fuzz/outbox_envelope_fuzz.c. Its counterpart on the
 * consumer's side is the bus's decoder, bus/envelope_decode.h.
 */
#ifndef SHOAL_OUTBOX_ENVELOPE_ENCODE_H
#define SHOAL_OUTBOX_ENVELOPE_ENCODE_H

#include <shoal/outbox.h>

/*
 * Builds the CloudEvents 1.0 structured envelope of `ev` (the attributes
 * specversion, id, source, type, subject, time, datacontenttype, traceparent
 * when set, then data) with `id` and the time `now_wall_ns` as compact JSON
 * text: the attributes are escaped here, `data_json` is checked with the JSON
 * parser (duplicate keys refused, as the consumers' parser refuses them) and
 * copied as given. Returns 0 with *out (owned, free) and its length,
 * SL_EINVAL (a field that is not UTF-8, data that is not JSON) or SL_ENOMEM.
 */
int sl__outbox_envelope_encode(const sl_outbox_event *ev, const char *id, int64_t now_wall_ns,
                               char **out, size_t *out_len);

#endif /* SHOAL_OUTBOX_ENVELOPE_ENCODE_H */
