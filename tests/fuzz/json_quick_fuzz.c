/*
 * libFuzzer target for sl_json_quick_valid (src/lib/json/json_quick.c):
 * whenever it says "valid", jansson (JSON_REJECT_DUPLICATES |
 * JSON_DECODE_ANY, the outbox's rules) must accept the same bytes. It may
 * say "cannot tell" about valid input, never "valid" about invalid input.
 */
#include <shoal/json.h>

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192) return 0;
    const char *buf = (const char *)data;
    if (!sl_json_quick_valid(buf, size)) return 0;
    json_error_t err;
    json_t *v = json_loadb(buf, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (v == NULL) abort();
    json_decref(v);
    return 0;
}
