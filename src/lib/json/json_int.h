/*
 * Internals shared by the files of the json module: UTF-8 decoding and the
 * bounded, UTF-8-safe string copy used for error fields and messages.
 */
#ifndef SHOAL_JSON_INT_H
#define SHOAL_JSON_INT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Decodes one UTF-8 sequence at `s` (`len` > 0 bytes available). Returns its length in bytes
 * (1..4) and the code point in `*cp`, or 0 when the bytes there are not valid UTF-8
 * (truncated sequence, overlong form, surrogate, above U+10FFFF).
 */
size_t sl__json_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);

/*
 * Copies `len` bytes of `src` into `dst` of `cap` (> 0) bytes, always NUL-terminated and
 * valid UTF-8: invalid bytes become '?', and a cut never splits a sequence.
 */
void sl__json_utf8_copy(char *dst, size_t cap, const char *src, size_t len);

#endif /* SHOAL_JSON_INT_H */
