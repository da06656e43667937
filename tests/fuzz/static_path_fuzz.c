/*
 * libFuzzer target for the gateway's static path resolver (src/proxy/static.c):
 * the request path comes from the network. Besides memory safety, every
 * accepted path is checked against the contract: the result is relative, has
 * no empty, "." or ".." segment, no hidden name, no backslash or control byte,
 * fits the buffer, and resolving it again (when it holds no '%') gives itself.
 * The If-None-Match matcher and the content-type table read the same bytes.
 */
#include "static.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *out, int n)
{
    if (n <= 0 || (size_t)n >= PX_STATIC_PATH_MAX || strlen(out) != (size_t)n) abort();
    if (out[0] == '/' || out[n - 1] == '/') abort();
    const char *seg = out;
    for (int i = 0; i <= n; i++) {
        unsigned char c = (unsigned char)out[i];
        if (i < n && (c < 0x20 || c == 0x7f || c == '\\')) abort();
        if (i == n || c == '/') {
            if (out + i == seg || *seg == '.') abort();
            seg = out + i + 1;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const prefixes[] = {"/", "/ops/"};
    sl_slice path = {(const char *)data, size};
    for (size_t k = 0; k < 2; k++) {
        char out[PX_STATIC_PATH_MAX];
        int n = px_static_resolve(path, prefixes[k], out, sizeof out);
        if (n < 0) {
            if (n != SL_EINVAL && n != SL_ENOTFOUND && n != SL_ELIMIT) abort();
            continue;
        }
        check(out, n);
        if (!strchr(out, '%')) {
            char again[PX_STATIC_PATH_MAX + 1], back[PX_STATIC_PATH_MAX];
            again[0] = '/';
            memcpy(again + 1, out, (size_t)n);
            if ((size_t)n + 1 < PX_STATIC_PATH_MAX) {
                int m = px_static_resolve((sl_slice){again, (size_t)n + 1}, "/", back, sizeof back);
                if (m != n || memcmp(back, out, (size_t)n) != 0) abort();
            }
        }
        (void)px_static_content_type(out);
    }
    (void)px_static_etag_match(path, "\"1a-2b-3c\"");
    return 0;
}
