/*
 * libFuzzer target for src/lib/json/json_quick.c: whenever sl_json_quick_valid
 * says "valid", jansson (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, the
 * outbox's rules) must accept the same bytes. It may say "cannot tell" about
 * valid input, never "valid" about invalid input. sl_json_quick_load must
 * give the same verdict, and its value must be the one jansson makes: equal,
 * of the same types, and serialised to the same bytes (key order included).
 */
#include <shoal/json.h>

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192) return 0;
    const char *buf = (const char *)data;
    int valid = sl_json_quick_valid(buf, size);
    json_t *quick = NULL;
    int loaded = sl_json_quick_load(buf, size, &quick);
    if (loaded != valid || (loaded != (quick != NULL))) abort();
    if (!valid) return 0;
    json_error_t err;
    json_t *v = json_loadb(buf, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (v == NULL || !json_equal(v, quick)) abort();
    char *a = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    char *b = json_dumps(quick, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    if (a == NULL || b == NULL || strcmp(a, b) != 0) abort();
    free(a);
    free(b);
    json_decref(v);
    json_decref(quick);
    return 0;
}
