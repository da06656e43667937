/*
 * A cheap proof that bytes are JSON jansson accepts, for hot paths (the
 * outbox checks every event's `data` before it writes it), and the same
 * pass building the jansson value (a consumer reads every delivered
 * event's `data`; json_loadb costs about five times more on small
 * documents). One pass, bounded stack; the proof allocates nothing. It
 * proves only the plain cases: anything it cannot decide exactly as
 * jansson would (escapes in keys, \u escapes, exponents, long numbers,
 * deep nesting, many keys) makes it answer "cannot tell", and the caller
 * asks jansson.
 */
#include "json/json_int.h"

#include <shoal/json.h>

#include <locale.h>
#include <stdlib.h>
#include <string.h>

/* Nesting proven here; deeper is jansson's to judge. */
#define QUICK_DEPTH SL_JSON_QUICK_MAX_DEPTH
#define QUICK_KEYS  64 /* keys of all open objects remembered for the duplicate check */

typedef struct span {
    const char *p;
    size_t n;
} span;

/* The functions below also make each value they prove when given `json_t **out` (NULL: prove
 * only, allocating nothing). */
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

/* The value of the string between `p` and `end` (the quotes excluded), whose escapes are the
 * simple ones string() let through. */
static json_t *make_string(const unsigned char *p, const unsigned char *end, int plain)
{
    if (plain) return json_stringn_nocheck((const char *)p, (size_t)(end - p));
    char stackbuf[256] = {0}, *buf = stackbuf; /* zeroed: gcc cannot see the loop runs */
    size_t cap = (size_t)(end - p);
    if (cap > sizeof stackbuf && (buf = calloc(1, cap)) == NULL) return NULL;
    size_t n = 0;
    while (p < end) {
        if (*p != '\\') {
            buf[n++] = (char)*p++;
            continue;
        }
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        buf[n++] = to[strchr(from, p[1]) - from];
        p += 2;
    }
    json_t *v = json_stringn_nocheck(buf, n);
    if (buf != stackbuf) free(buf);
    return v;
}

/* A string at q->s (its opening quote). `plain` is set when it has no escape at all. */
static int string(quick *q, int *plain, json_t **out)
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
        size_t k = sl__json_utf8_decode(p, (size_t)(q->end - p), &cp);
        if (k == 0) return UNSURE;
        p += k;
    }
    if (out && (*out = make_string(q->s + 1, p, *plain)) == NULL) return UNSURE;
    q->s = p + 1;
    return SURE;
}

/* Integers that fit in 64 bits (jansson's json_int_t) and decimals without an exponent that are
 * far too short to overflow a double: values jansson reads without a range error. */
static int number(quick *q, json_t **out)
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
    if (out) {
        if (frac) {
            /* strtod as jansson calls it, on a terminated copy; only where '.' is the decimal
             * point (jansson rewrites it for other locales). */
            char text[304];
            const char *point = localeconv()->decimal_point;
            if (point[0] != '.' || point[1] != '\0') return UNSURE;
            memcpy(text, start, (size_t)(p - start));
            text[p - start] = '\0';
            *out = json_real(strtod(text, NULL));
        } else {
            uint64_t u = 0;
            for (const unsigned char *d = digits; d < p; d++)
                u = u * 10 + (uint64_t)(*d - '0');
            *out = json_integer(neg ? (json_int_t)(0 - u) : (json_int_t)u);
        }
        if (*out == NULL) return UNSURE;
    }
    q->s = p;
    return SURE;
}

static int literal(quick *q, const char *word, size_t n, json_t *(*make)(void), json_t **out)
{
    if ((size_t)(q->end - q->s) < n || memcmp(q->s, word, n) != 0) return UNSURE;
    if (out && (*out = make()) == NULL) return UNSURE;
    q->s += n;
    return SURE;
}

static int value(quick *q, json_t **out);

/* On UNSURE the container made so far is released here: *out is then NULL. */
static int fail(json_t **out)
{
    if (out) {
        json_decref(*out);
        *out = NULL;
    }
    return UNSURE;
}

static int object(quick *q, json_t **out)
{
    if (++q->depth > QUICK_DEPTH) return UNSURE;
    if (out && (*out = json_object()) == NULL) return UNSURE;
    size_t first = q->nkeys;
    q->s++;
    skip_ws(q);
    if (q->s < q->end && *q->s == '}') {
        q->s++;
        q->depth--;
        return SURE;
    }
    for (;;) {
        if (q->s >= q->end || *q->s != '"') return fail(out);
        const unsigned char *k = q->s + 1;
        int plain;
        if (string(q, &plain, NULL) != SURE || !plain) return fail(out);
        span key = {(const char *)k, (size_t)(q->s - 1 - k)};
        for (size_t i = first; i < q->nkeys; i++)
            if (q->keys[i].n == key.n && memcmp(q->keys[i].p, key.p, key.n) == 0) return fail(out);
        if (q->nkeys == QUICK_KEYS) return fail(out);
        q->keys[q->nkeys++] = key;
        skip_ws(q);
        if (q->s >= q->end || *q->s != ':') return fail(out);
        q->s++;
        json_t *v = NULL;
        if (value(q, out ? &v : NULL) != SURE) return fail(out);
        if (out && json_object_setn_new_nocheck(*out, key.p, key.n, v) != 0) return fail(out);
        skip_ws(q);
        if (q->s >= q->end) return fail(out);
        if (*q->s == '}') break;
        if (*q->s != ',') return fail(out);
        q->s++;
        skip_ws(q);
    }
    q->s++;
    q->nkeys = first;
    q->depth--;
    return SURE;
}

static int array(quick *q, json_t **out)
{
    if (++q->depth > QUICK_DEPTH) return UNSURE;
    if (out && (*out = json_array()) == NULL) return UNSURE;
    q->s++;
    skip_ws(q);
    if (q->s < q->end && *q->s == ']') {
        q->s++;
        q->depth--;
        return SURE;
    }
    for (;;) {
        json_t *v = NULL;
        if (value(q, out ? &v : NULL) != SURE) return fail(out);
        if (out && json_array_append_new(*out, v) != 0) return fail(out);
        skip_ws(q);
        if (q->s >= q->end) return fail(out);
        if (*q->s == ']') break;
        if (*q->s != ',') return fail(out);
        q->s++;
    }
    q->s++;
    q->depth--;
    return SURE;
}

static int value(quick *q, json_t **out)
{
    skip_ws(q);
    if (q->s >= q->end) return UNSURE;
    int plain;
    switch (*q->s) {
    case '{':
        return object(q, out);
    case '[':
        return array(q, out);
    case '"':
        return string(q, &plain, out);
    case 't':
        return literal(q, "true", 4, json_true, out);
    case 'f':
        return literal(q, "false", 5, json_false, out);
    case 'n':
        return literal(q, "null", 4, json_null, out);
    default:
        return number(q, out);
    }
}

int sl_json_quick_valid(const char *buf, size_t len)
{
    if (buf == NULL) return 0;
    quick q = {.s = (const unsigned char *)buf, .end = (const unsigned char *)buf + len};
    if (value(&q, NULL) != SURE) return 0;
    skip_ws(&q);
    return q.s == q.end;
}

int sl_json_quick_load(const char *buf, size_t len, json_t **out)
{
    *out = NULL;
    if (buf == NULL) return 0;
    quick q = {.s = (const unsigned char *)buf, .end = (const unsigned char *)buf + len};
    json_t *v = NULL;
    if (value(&q, &v) != SURE) return 0;
    skip_ws(&q);
    if (q.s != q.end) {
        json_decref(v);
        return 0;
    }
    *out = v;
    return 1;
}
