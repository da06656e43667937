/*
 * Decoding delivered envelopes (see envelope_decode.h). The scanner accepts only
 * what it can read exactly: a top-level object whose keys and string values
 * hold no escapes or control characters and are valid UTF-8, without
 * duplicate keys, each other value handed to jansson on its own bytes (so
 * jansson checks it). On anything else it gives up and the whole envelope
 * goes to sl_json_parse, whose verdict and error message then stand.
 */
#include "bus/envelope_decode.h"

#include <shoal/common.h>
#include <shoal/json.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { K_ID, K_TYPE, K_SOURCE, K_SUBJECT, K_TIME, K_TRACEPARENT, K_DATA, K_N };
static const char *const known[K_N] = {"id",   "type",        "source", "subject",
                                       "time", "traceparent", "data"};
static const size_t known_len[K_N] = {2, 4, 6, 7, 4, 11, 4};
#define OTHER_MAX 16 /* distinct other members the scanner tracks for duplicates */

typedef struct span {
    const char *p;
    size_t n;
} span;

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* A string without escapes at p (the opening quote): its contents in *s and the byte after
 * the closing quote; NULL when the scanner cannot read it exactly. */
static const char *plain_string(const char *p, const char *end, span *s)
{
    const char *q = p + 1;
    unsigned char high = 0;
    while (q < end && *q != '"') {
        unsigned char c = (unsigned char)*q;
        if (c == '\\' || c < 0x20) return NULL;
        high |= c;
        q++;
    }
    if (q >= end) return NULL;
    s->p = p + 1;
    s->n = (size_t)(q - p - 1);
    /* ASCII needs no UTF-8 check. */
    return !(high & 0x80) || sl_utf8_valid(s->p, s->n) ? q + 1 : NULL;
}

/* The end of the (non-string) value at p: a container's closing bracket, nesting at most
 * `depth_left`, or a scalar's last byte; NULL when unsure. jansson checks the bytes after. */
static const char *value_end(const char *p, const char *end, unsigned depth_left)
{
    if (*p == '{' || *p == '[') {
        unsigned depth = 0;
        int in_str = 0;
        for (const char *q = p; q < end; q++) {
            char c = *q;
            if (in_str) {
                if (c == '\\')
                    q++;
                else if (c == '"')
                    in_str = 0;
            } else if (c == '"') {
                in_str = 1;
            } else if (c == '{' || c == '[') {
                if (++depth > depth_left) return NULL;
            } else if (c == '}' || c == ']') {
                if (--depth == 0) return q + 1;
            }
        }
        return NULL;
    }
    const char *q = p;
    while (q < end && *q != ',' && *q != '}' && *q != ' ' && *q != '\t' && *q != '\n' && *q != '\r')
        q++;
    return q > p ? q : NULL;
}

static int key_index(span k)
{
    for (int i = 0; i < K_N; i++)
        if (known_len[i] == k.n && memcmp(known[i], k.p, k.n) == 0) return i;
    return K_N;
}

/* The scanner. Returns 1 with *e filled, 0 to leave the envelope to the full parser, or
 * SL_ENOMEM. */
static int scan(const char *buf, size_t len, unsigned max_depth, sl__bus_envelope *e)
{
    const char *p = buf, *end = buf + len;
    span val[K_N] = {{0}};
    int is_str[K_N] = {0};
    unsigned seen = 0;
    span other[OTHER_MAX];
    int nother = 0;
    p = skip_ws(p, end);
    if (p == end || *p != '{') return 0;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') {
        p++;
    } else {
        for (;;) {
            span k, v;
            if (p == end || *p != '"' || (p = plain_string(p, end, &k)) == NULL) return 0;
            p = skip_ws(p, end);
            if (p == end || *p != ':') return 0;
            p = skip_ws(p + 1, end);
            if (p == end) return 0;
            int str = *p == '"';
            const char *vend = str ? plain_string(p, end, &v) : value_end(p, end, max_depth - 1);
            if (vend == NULL) return 0;
            if (!str) v = (span){p, (size_t)(vend - p)};
            int ki = key_index(k);
            if (ki < K_N) {
                if (seen & (1u << ki)) return 0; /* duplicate: the full parser refuses it */
                seen |= 1u << ki;
                val[ki] = v;
                is_str[ki] = str;
            } else {
                for (int i = 0; i < nother; i++)
                    if (other[i].n == k.n && memcmp(other[i].p, k.p, k.n) == 0) return 0;
                if (nother == OTHER_MAX) return 0;
                other[nother++] = k;
            }
            /* Every non-string value except `data` only has to be valid JSON. */
            if (!str && ki != K_DATA) {
                json_t *chk = json_loadb(v.p, v.n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
                if (chk == NULL) return 0;
                json_decref(chk);
            }
            p = skip_ws(vend, end);
            if (p < end && *p == ',') {
                p = skip_ws(p + 1, end);
                continue;
            }
            if (p < end && *p == '}') {
                p++;
                break;
            }
            return 0;
        }
    }
    if (skip_ws(p, end) != end) return 0;
    json_t *data = NULL;
    if (seen & (1u << K_DATA)) {
        /* A string `data` was read without its quotes. */
        if (is_str[K_DATA])
            data = json_stringn(val[K_DATA].p, val[K_DATA].n);
        else if (!sl_json_quick_load(val[K_DATA].p, val[K_DATA].n, &data))
            data = json_loadb(val[K_DATA].p, val[K_DATA].n,
                              JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
        if (data == NULL) return 0;
    }
    size_t total = 0;
    for (int i = 0; i < K_DATA; i++)
        if (is_str[i]) total += val[i].n + 1;
    char *mem = malloc(total ? total : 1);
    if (mem == NULL) {
        json_decref(data);
        return SL_ENOMEM;
    }
    const char **dst[K_DATA] = {&e->id,      &e->type, &e->source,
                                &e->subject, &e->time, &e->traceparent};
    char *cur = mem;
    for (int i = 0; i < K_DATA; i++) {
        if (!is_str[i]) continue;
        memcpy(cur, val[i].p, val[i].n);
        cur[val[i].n] = '\0';
        *dst[i] = cur;
        cur += val[i].n + 1;
    }
    e->data = data;
    e->mem = mem;
    e->scanned = 1;
    return 1;
}

static const char *jstr(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int sl__bus_envelope_decode(const char *buf, size_t len, unsigned max_depth, sl__bus_envelope *e,
                            char *why, size_t why_len)
{
    SL_ASSERT(e != NULL && (buf != NULL || len == 0) && why != NULL && why_len > 0);
    memset(e, 0, sizeof *e);
    if (max_depth == 0) max_depth = SL_JSON_DEFAULT_MAX_DEPTH;
    int rc = scan(buf, len, max_depth, e);
    if (rc == 1) return 0;
    if (rc < 0) {
        snprintf(why, why_len, "out of memory");
        return rc;
    }
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    sl_json_limits lim = {.max_bytes = len ? len : 1, .max_depth = max_depth};
    rc = sl_json_parse(buf, len, &lim, &e->root, &errs);
    if (rc != 0) {
        snprintf(why, why_len, "%s", errs.count ? errs.items[0].message : "not a JSON object");
        return rc;
    }
    e->id = jstr(e->root, "id");
    e->type = jstr(e->root, "type");
    e->source = jstr(e->root, "source");
    e->subject = jstr(e->root, "subject");
    e->time = jstr(e->root, "time");
    e->traceparent = jstr(e->root, "traceparent");
    e->data = json_incref(json_object_get(e->root, "data"));
    return 0;
}

void sl__bus_envelope_free(sl__bus_envelope *e)
{
    json_decref(e->data);
    json_decref(e->root);
    free(e->mem);
    memset(e, 0, sizeof *e);
}
