/*
 * Internal: decoding a CloudEvents envelope as it arrives off the wire (the
 * text an outbox row holds, written by outbox/envelope_encode.c). The common
 * envelope (a flat object whose string members have no escapes) is read by a
 * small scanner that copies the attributes and hands only `data` to jansson;
 * anything else goes to the full parser (sl_json_parse), so what is
 * accepted, and how, never differs from parsing the whole envelope. The
 * fuzz target tests/fuzz/bus_envelope_fuzz.c checks exactly that.
 */
#ifndef SHOAL_BUS_ENVELOPE_DECODE_H
#define SHOAL_BUS_ENVELOPE_DECODE_H

#include <jansson.h>
#include <stddef.h>

typedef struct sl__bus_envelope {
    /* The attributes when present and strings, else NULL; valid until sl__bus_envelope_free. */
    const char *id, *type, *source, *subject, *time, *traceparent;
    json_t *data; /* the `data` member (a reference owned here); NULL when absent */
    json_t *root; /* full parser: the whole envelope; NULL on the scanner's path */
    char *mem;    /* scanner: the attributes' copies */
    int scanned;  /* 1 when the scanner read it (tests) */
} sl__bus_envelope;

/*
 * Reads `len` bytes at `buf` as a JSON object with at most `max_depth`
 * levels (0 → SL_JSON_DEFAULT_MAX_DEPTH). Returns 0 and fills *out (free
 * with sl__bus_envelope_free), or SL_EPARSE / SL_ELIMIT / SL_EINVAL (not an
 * object) / SL_ENOMEM with a message in `why`; *out is then empty.
 */
int sl__bus_envelope_decode(const char *buf, size_t len, unsigned max_depth, sl__bus_envelope *out,
                            char *why, size_t why_len);

void sl__bus_envelope_free(sl__bus_envelope *e);

#endif /* SHOAL_BUS_ENVELOPE_DECODE_H */
