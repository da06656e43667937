/*
 * libFuzzer target for reading delivered envelopes (src/lib/bus/envelope_decode.c):
 * whatever the input, the scanner's answer must equal the full parser's
 * (sl_json_parse of the whole envelope): the same accept or refuse, the
 * same attributes byte for byte, the same `data` value.
 */
#include "bus/envelope_decode.h"

#include <shoal/json.h>

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_str(const char *got, const json_t *root, const char *k)
{
    const json_t *v = json_object_get(root, k);
    const char *want = json_is_string(v) ? json_string_value(v) : NULL;
    if ((got == NULL) != (want == NULL)) abort();
    if (got && strcmp(got, want) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192) return 0;
    const char *buf = (const char *)data;
    sl__bus_envelope e;
    char why[200];
    int rc = sl__bus_envelope_decode(buf, size, 8, &e, why, sizeof why);
    sl_json_limits lim = {.max_bytes = size ? size : 1, .max_depth = 8};
    json_t *root = NULL;
    int want = sl_json_parse(buf, size, &lim, &root, NULL);
    if ((rc == 0) != (want == 0)) abort();
    if (rc == 0) {
        same_str(e.id, root, "id");
        same_str(e.type, root, "type");
        same_str(e.source, root, "source");
        same_str(e.subject, root, "subject");
        same_str(e.time, root, "time");
        same_str(e.traceparent, root, "traceparent");
        const json_t *d = json_object_get(root, "data");
        if ((d == NULL) != (e.data == NULL)) abort();
        if (d && !json_equal(d, e.data)) abort();
        sl__bus_envelope_free(&e);
    }
    json_decref(root);
    return 0;
}
