/*
 * libFuzzer target for the keyset cursor decoder (cursor.h): cursors come
 * from clients' query strings. Besides memory safety, every accepted cursor
 * must have 1..SL_CURSOR_FIELDS_MAX fields of bounded length and encode back
 * to exactly the input (one spelling per cursor).
 */
#include <shoal/cursor.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_cursor c;
    if (sl_cursor_decode((const char *)data, size, &c) != 0) return 0;
    if (c.n < 1 || c.n > SL_CURSOR_FIELDS_MAX) abort();
    const char *f[SL_CURSOR_FIELDS_MAX];
    for (size_t i = 0; i < c.n; i++) {
        if (strlen(c.f[i]) > SL_CURSOR_FIELD_MAX || strchr(c.f[i], '\n')) abort();
        f[i] = c.f[i];
    }
    char out[SL_CURSOR_MAX + 1];
    if (sl_cursor_encode(f, c.n, out, sizeof out) != 0) abort();
    if (strlen(out) != size || memcmp(out, data, size) != 0) abort();
    return 0;
}
