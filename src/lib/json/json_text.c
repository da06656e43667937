/*
 * Text helpers of the json module: UTF-8 validation and decoding, the bounded
 * UTF-8-safe copy used by error collection, the JSON string escaper and
 * compact serialisation. Pure functions, no allocation except sl_json_dump.
 */
#include "json/json_int.h"

#include <shoal/json.h>

#include <string.h>

size_t sl__json_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2, v = c & 0x1Fu, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, v = c & 0x0Fu, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, v = c & 0x07u, min = 0x10000;
    } else {
        return 0; /* continuation byte, overlong lead C0/C1, or F5..FF */
    }
    if (len < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return n;
}

int sl_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        /* ASCII runs, eight bytes at a time: most text is all ASCII. */
        uint64_t w;
        while (len - i >= 8 && (memcpy(&w, p + i, 8), (w & 0x8080808080808080ull) == 0))
            i += 8;
        while (i < len && p[i] < 0x80)
            i++;
        if (i == len) break;
        uint32_t cp;
        size_t n = sl__json_utf8_decode(p + i, len - i, &cp);
        if (n == 0) return 0;
        i += n;
    }
    return 1;
}

void sl__json_utf8_copy(char *dst, size_t cap, const char *src, size_t len)
{
    const unsigned char *p = (const unsigned char *)src;
    size_t i = 0, o = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = sl__json_utf8_decode(p + i, len - i, &cp);
        if (n == 0) {
            if (o + 1 >= cap) break;
            dst[o++] = '?';
            i++;
            continue;
        }
        if (o + n >= cap) break; /* never split a sequence */
        memcpy(dst + o, p + i, n);
        o += n;
        i += n;
    }
    dst[o] = '\0';
}

/* Appends `n` bytes to the escaper's output, counting what would have been written. */
static void put(char *out, size_t cap, size_t *pos, const char *b, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (*pos + 1 < cap) out[*pos] = b[k];
        (*pos)++;
    }
}

size_t sl_json_escape(const char *s, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t pos = 0, i = 0;
    while (i < len) {
        unsigned char c = p[i];
        uint32_t cp;
        char esc[6] = {'\\', 'u', '0', '0', 0, 0};
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            put(out, cap, &pos, esc, 2);
        } else if (c < 0x20) {
            const char *named = c == '\n'   ? "\\n"
                                : c == '\r' ? "\\r"
                                : c == '\t' ? "\\t"
                                : c == '\b' ? "\\b"
                                : c == '\f' ? "\\f"
                                            : NULL;
            if (named) {
                put(out, cap, &pos, named, 2);
            } else {
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 0xF];
                put(out, cap, &pos, esc, 6);
            }
        } else if (c < 0x80) {
            put(out, cap, &pos, (const char *)&p[i], 1);
        } else {
            size_t n = sl__json_utf8_decode(p + i, len - i, &cp);
            if (n == 0) {
                put(out, cap, &pos, "\\ufffd", 6);
            } else {
                put(out, cap, &pos, (const char *)&p[i], n);
                i += n;
                continue;
            }
        }
        i++;
    }
    if (cap > 0) out[pos < cap ? pos : cap - 1] = '\0';
    return pos;
}

char *sl_json_dump(const json_t *v, size_t *len)
{
    /* jansson keeps insertion order since 2.8; JSON_PRESERVE_ORDER documents the intent. */
    char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (len) *len = s ? strlen(s) : 0;
    return s;
}
