/*
 * base64url without padding (RFC 4648 §5), as JOSE uses it (RFC 7515 §2).
 * The decoder is strict on purpose: it refuses padding, foreign characters
 * and non-canonical trailing bits, so a token has exactly one accepted
 * spelling and a tampered signature cannot hide in the unused bits.
 */
#include <shoal/auth.h>

#include <stdint.h>

static const char alphabet[64] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Returns the 6-bit value of `c`, or -1 for a character outside the alphabet. */
static int sextet(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

int sl_b64url_encode(const void *src, size_t len, char *out, size_t cap, size_t *out_len)
{
    SL_ASSERT(src != NULL || len == 0);
    SL_ASSERT(out != NULL || cap == 0);
    if (len > (SIZE_MAX - 8) / 4 * 3) return SL_ELIMIT;
    size_t need = SL_B64URL_ENCODED_LEN(len);
    if (cap < need + 1) return SL_ELIMIT;
    const unsigned char *p = src;
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
    }
    SL_ASSERT(o == need);
    out[o] = '\0';
    if (out_len) *out_len = o;
    return 0;
}

int sl_b64url_decode(const char *src, size_t len, void *out, size_t cap, size_t *out_len)
{
    SL_ASSERT(src != NULL || len == 0);
    SL_ASSERT(out_len != NULL);
    *out_len = 0;
    /* A lone character carries 6 bits: never a whole byte. */
    if (len % 4 == 1) return SL_EPARSE;
    if (SL_B64URL_DECODED_MAX(len) > cap) return SL_ELIMIT;
    unsigned char *q = out;
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = sextet((unsigned char)src[i]);
        if (v < 0) return SL_EPARSE; /* includes '=', '+', '/', whitespace, NUL */
        acc = (acc << 6 | (uint32_t)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            q[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* RFC 4648 §3.5: the left-over bits must be zero for a canonical encoding
     * (auth_test.c test_b64url_rejects covers "QR" and "QUF"). */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return SL_EPARSE;
    *out_len = o;
    return 0;
}
