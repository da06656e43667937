/*
 * A cheap proof that bytes are JSON jansson accepts, for hot paths that
 * only need to know (the outbox checks every event's `data` before it
 * writes it). One pass, no allocation, bounded stack. It proves only the
 * plain cases: anything it cannot decide exactly as jansson would (escapes
 * in keys, \u escapes, exponents, long numbers, deep nesting, many keys)
 * makes it answer "cannot tell", and the caller asks jansson.
 */
#include "json/json_int.h"

#include <shoal/json.h>

#include <string.h>

/* Nesting proven here; deeper is jansson's to judge. */
#define QUICK_DEPTH SL_JSON_QUICK_MAX_DEPTH
#define QUICK_KEYS  64 /* keys of all open objects remembered for the duplicate check */

typedef struct span {
    const char *p;
    size_t n;
} span;

typedef struct quick {
    const unsigned char *s, *end;
    unsigned depth;
    size_t nkeys;
    span keys[QUICK_KEYS];
} quick;

enum { SURE = 1, UNSURE = 0 };

static void skip_ws(quick *q)
{
    while (q->s < q->end && (*q->s == ' ' || *q->s == '\n' || *q->s == '\r' || *q->s == '\t'))
        q->s++;
}

/* A string at q->s (its opening quote). `plain` is set when it has no escape at all. */
static int string(quick *q, int *plain)
{
    const unsigned char *p = q->s + 1;
    *plain = 1;
    for (;;) {
        if (p >= q->end) return UNSURE;
        unsigned char c = *p;
        if (c == '"') break;
        if (c < 0x20) return UNSURE;
        if (c == '\\') {
            if (p + 1 >= q->end) return UNSURE;
            /* \u needs the NUL and surrogate rules: left to jansson. */
            if (!strchr("\"\\/bfnrt", p[1]) || p[1] == '\0') return UNSURE;
            *plain = 0;
            p += 2;
            continue;
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        uint32_t cp;
        size_t k = sl_utf8_decode(p, (size_t)(q->end - p), &cp);
        if (k == 0) return UNSURE;
        p += k;
    }
    q->s = p + 1;
    return SURE;
}

/* Integers that fit in 64 bits (jansson's json_int_t) and decimals without an exponent that are
 * far too short to overflow a double: values jansson reads without a range error. */
static int number(quick *q)
{
    const unsigned char *p = q->s, *start = p;
    int neg = p < q->end && *p == '-';
    if (neg) p++;
    const unsigned char *digits = p;
    if (p >= q->end) return UNSURE;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < q->end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return UNSURE;
    }
    size_t ndigits = (size_t)(p - digits);
    int frac = p < q->end && *p == '.';
    if (frac) {
        p++;
        const unsigned char *f = p;
        while (p < q->end && *p >= '0' && *p <= '9')
            p++;
        if (p == f) return UNSURE;
    }
    if (p < q->end && (*p == 'e' || *p == 'E')) return UNSURE;
    if (frac) {
        if (p - start > 300) return UNSURE; /* a double overflows only past 308 digits */
    } else if (ndigits > 19) {
        return UNSURE;
    } else if (ndigits == 19 &&
               memcmp(digits, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0) {
        return UNSURE;
    }
    q->s = p;
    return SURE;
}

static int literal(quick *q, const char *word, size_t n)
{
    if ((size_t)(q->end - q->s) < n || memcmp(q->s, word, n) != 0) return UNSURE;
    q->s += n;
    return SURE;
}

static int value(quick *q);

static int object(quick *q)
{
    if (++q->depth > QUICK_DEPTH) return UNSURE;
    size_t first = q->nkeys;
    q->s++;
    skip_ws(q);
    if (q->s < q->end && *q->s == '}') {
        q->s++;
        q->depth--;
        return SURE;
    }
    for (;;) {
        if (q->s >= q->end || *q->s != '"') return UNSURE;
        const unsigned char *k = q->s + 1;
        int plain;
        if (string(q, &plain) != SURE || !plain) return UNSURE;
        span key = {(const char *)k, (size_t)(q->s - 1 - k)};
        for (size_t i = first; i < q->nkeys; i++)
            if (q->keys[i].n == key.n && memcmp(q->keys[i].p, key.p, key.n) == 0) return UNSURE;
        if (q->nkeys == QUICK_KEYS) return UNSURE;
        q->keys[q->nkeys++] = key;
        skip_ws(q);
        if (q->s >= q->end || *q->s != ':') return UNSURE;
        q->s++;
        if (value(q) != SURE) return UNSURE;
        skip_ws(q);
        if (q->s >= q->end) return UNSURE;
        if (*q->s == '}') break;
        if (*q->s != ',') return UNSURE;
        q->s++;
        skip_ws(q);
    }
    q->s++;
    q->nkeys = first;
    q->depth--;
    return SURE;
}

static int array(quick *q)
{
    if (++q->depth > QUICK_DEPTH) return UNSURE;
    q->s++;
    skip_ws(q);
    if (q->s < q->end && *q->s == ']') {
        q->s++;
        q->depth--;
        return SURE;
    }
    for (;;) {
        if (value(q) != SURE) return UNSURE;
        skip_ws(q);
        if (q->s >= q->end) return UNSURE;
        if (*q->s == ']') break;
        if (*q->s != ',') return UNSURE;
        q->s++;
    }
    q->s++;
    q->depth--;
    return SURE;
}

static int value(quick *q)
{
    skip_ws(q);
    if (q->s >= q->end) return UNSURE;
    int plain;
    switch (*q->s) {
    case '{':
        return object(q);
    case '[':
        return array(q);
    case '"':
        return string(q, &plain);
    case 't':
        return literal(q, "true", 4);
    case 'f':
        return literal(q, "false", 5);
    case 'n':
        return literal(q, "null", 4);
    default:
        return number(q);
    }
}

int sl_json_quick_valid(const char *buf, size_t len)
{
    if (buf == NULL) return 0;
    quick q = {.s = (const unsigned char *)buf, .end = (const unsigned char *)buf + len};
    if (value(&q) != SURE) return 0;
    skip_ws(&q);
    return q.s == q.end;
}
