/*
 * Header-value lexing shared by the Retry-After and x-shoal-deadline-ms
 * parsers (resilience_int.h). Both inputs come from the network, so every
 * function here is total: bad bytes give SL_EPARSE, big numbers saturate.
 */
#include "resilience_int.h"

const char *sl__resilience_trim_ows(const char *s, size_t *len)
{
    size_t n = *len;
    while (n > 0 && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    *len = n;
    return s;
}

int sl__resilience_parse_digits(const char *s, size_t len, int64_t max, int64_t *out)
{
    if (len == 0) return SL_EPARSE;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < '0' || c > '9') return SL_EPARSE;
        int d = c - '0';
        /* Saturate instead of overflowing; keep scanning so trailing garbage is still caught. */
        if (d > max || v > (max - d) / 10)
            v = max;
        else
            v = v * 10 + d;
    }
    *out = v;
    return 0;
}
