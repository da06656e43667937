/*
 * Differential fuzz target for the server's fast path for plain requests
 * (http/fast_head.h) as the server uses it: the input is sent in one write to
 * a fresh server with the fast path on, then to one with it off (every
 * request through http-parser), and the two must answer byte for byte the
 * same (the handler echoes method, target, version, fields and body; Date
 * lines are cut). A difference means the fast path decided something
 * http-parser's path decides otherwise.
 */
#include "http_exchange.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    size_t taken_fast = 0, taken_slow = 0, la = 0, lb = 0;
    char *a = exchange((const char *)data, size, true, &taken_fast, &la);
    char *b = exchange((const char *)data, size, false, &taken_slow, &lb);
    if (la != lb || memcmp(a, b, la) != 0 || taken_slow != 0) abort();
    free(a);
    free(b);
    return 0;
}
