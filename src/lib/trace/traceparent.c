/*
 * W3C Trace Context Level 1 (https://www.w3.org/TR/trace-context/): parsing
 * and formatting of `traceparent`, validation of `tracestate`, and random id
 * generation. Pure functions over bytes; the tracer (tracer.c) uses them.
 */
#include <shoal/trace.h>

#include <string.h>

static const char hex_digits[] = "0123456789abcdef";

/* Lowercase hex digit value plus one, 0 for any other byte: the specification allows lowercase
 * only (§3.2.2). */
static const uint8_t lhex1[256] = {
    ['0'] = 1, ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

/* Decodes 2*n lowercase hex chars into n bytes; returns 0, or SL_EPARSE on any other char. */
static int decode_hex(const char *s, uint8_t *out, size_t n)
{
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned h = lhex1[(unsigned char)s[2 * i]], l = lhex1[(unsigned char)s[2 * i + 1]];
        bad |= (h == 0) | (l == 0);
        out[i] = (uint8_t)((h - 1) << 4 | ((l - 1) & 15));
    }
    return bad ? SL_EPARSE : 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

int sl_traceparent_parse(const char *s, size_t len, sl_trace_ctx *out)
{
    /* §3.2.4: shorter than 55 characters → do not parse, restart the trace. */
    if (s == NULL || len < SL_TRACEPARENT_LEN) return SL_EPARSE;
    uint8_t version;
    if (decode_hex(s, &version, 1) != 0) return SL_EPARSE;
    if (version == 0xff) return SL_EPARSE; /* §3.2.2.1: ff is forbidden */
    /* §3.2.2: version 00 is exactly 55 characters. */
    if (version == 0x00 && len != SL_TRACEPARENT_LEN) return SL_EPARSE;
    /* §3.2.4: a higher version may continue, but only after a dash following the flags.
     * Guarded by test_traceparent_future_versions. */
    if (len > SL_TRACEPARENT_LEN && s[SL_TRACEPARENT_LEN] != '-') return SL_EPARSE;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-') return SL_EPARSE;

    sl_trace_ctx c;
    uint8_t flags;
    if (decode_hex(s + 3, c.trace_id, SL_TRACE_ID_LEN) != 0) return SL_EPARSE;
    if (decode_hex(s + 36, c.span_id, SL_SPAN_ID_LEN) != 0) return SL_EPARSE;
    if (decode_hex(s + 53, &flags, 1) != 0) return SL_EPARSE;
    /* §3.2.2.3, §3.2.2.4: all-zero trace-id or parent-id is invalid. */
    if (all_zero(c.trace_id, SL_TRACE_ID_LEN) || all_zero(c.span_id, SL_SPAN_ID_LEN))
        return SL_EPARSE;
    c.flags = flags;
    *out = c;
    return 0;
}

static size_t encode_hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_digits[p[i] >> 4];
        out[2 * i + 1] = hex_digits[p[i] & 0x0f];
    }
    return 2 * n;
}

int sl_traceparent_format(const sl_trace_ctx *ctx, char out[SL_TRACEPARENT_MAX])
{
    size_t o = 0;
    out[o++] = '0';
    out[o++] = '0';
    out[o++] = '-';
    o += encode_hex(ctx->trace_id, SL_TRACE_ID_LEN, out + o);
    out[o++] = '-';
    o += encode_hex(ctx->span_id, SL_SPAN_ID_LEN, out + o);
    out[o++] = '-';
    o += encode_hex(&ctx->flags, 1, out + o);
    out[o] = '\0';
    return (int)o;
}

void sl_trace_id_hex(const uint8_t id[SL_TRACE_ID_LEN], char out[33])
{
    out[encode_hex(id, SL_TRACE_ID_LEN, out)] = '\0';
}

void sl_span_id_hex(const uint8_t id[SL_SPAN_ID_LEN], char out[17])
{
    out[encode_hex(id, SL_SPAN_ID_LEN, out)] = '\0';
}

int sl_trace_ctx_is_valid(const sl_trace_ctx *ctx)
{
    return !all_zero(ctx->trace_id, SL_TRACE_ID_LEN) && !all_zero(ctx->span_id, SL_SPAN_ID_LEN);
}

/* ---- tracestate (§3.3) ---------------------------------------------------------------- */

static int is_lcalpha(char c)
{
    return c >= 'a' && c <= 'z';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* lcalpha / DIGIT / "_" / "-" / "*" / "/" */
static int is_key_char(char c)
{
    return is_lcalpha(c) || is_digit(c) || c == '_' || c == '-' || c == '*' || c == '/';
}

/* Checks `first` rule on s[0], key chars on the rest, and 1 <= len <= max. */
static int valid_key_part(const char *s, size_t len, size_t max, int digit_first)
{
    if (len == 0 || len > max) return 0;
    if (!(is_lcalpha(s[0]) || (digit_first && is_digit(s[0])))) return 0;
    for (size_t i = 1; i < len; i++)
        if (!is_key_char(s[i])) return 0;
    return 1;
}

static int valid_key(const char *k, size_t len)
{
    const char *at = memchr(k, '@', len);
    if (at == NULL) return valid_key_part(k, len, 256, 0); /* simple-key */
    size_t tlen = (size_t)(at - k);
    /* multi-tenant-key: tenant-id (<= 241, lcalpha/digit first) "@" system-id (<= 14). */
    return valid_key_part(k, tlen, 241, 1) && valid_key_part(at + 1, len - tlen - 1, 14, 0);
}

/* value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr excludes ',' and '='. */
static int valid_value(const char *v, size_t len)
{
    if (len == 0 || len > 256 || v[len - 1] == ' ') return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return 0;
    }
    return 1;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

int sl_tracestate_validate(const char *s, size_t len)
{
    if (len == 0) return 0; /* §3.3.1.1: an empty header is accepted */
    if (s == NULL || len > SL_TRACESTATE_MAX_BYTES) return SL_EPARSE;
    const char *keys[SL_TRACESTATE_MAX_MEMBERS];
    size_t key_lens[SL_TRACESTATE_MAX_MEMBERS];
    size_t members = 0, pos = 0;
    while (pos <= len) {
        const char *comma = memchr(s + pos, ',', len - pos);
        size_t end = comma ? (size_t)(comma - s) : len;
        size_t b = pos, e = end;
        while (b < e && is_ows(s[b]))
            b++;
        while (e > b && is_ows(s[e - 1]))
            e--;
        if (b < e) { /* empty members are allowed and not counted */
            const char *eq = memchr(s + b, '=', e - b);
            if (eq == NULL) return SL_EPARSE;
            size_t klen = (size_t)(eq - (s + b));
            if (!valid_key(s + b, klen) || !valid_value(eq + 1, e - b - klen - 1)) return SL_EPARSE;
            if (members == SL_TRACESTATE_MAX_MEMBERS) return SL_EPARSE; /* §3.3.1.1: max 32 */
            for (size_t i = 0; i < members; i++) /* §3.3.1.1: keys are unique */
                if (key_lens[i] == klen && memcmp(keys[i], s + b, klen) == 0) return SL_EPARSE;
            keys[members] = s + b;
            key_lens[members] = klen;
            members++;
        }
        pos = end + 1;
    }
    return 0;
}

int sl_tracestate_set(sl_tracestate *ts, const char *s, size_t len)
{
    ts->len = 0;
    ts->value[0] = '\0';
    int rc = sl_tracestate_validate(s, len);
    if (rc != 0) return rc;
    if (len > 0) memcpy(ts->value, s, len);
    ts->value[len] = '\0';
    ts->len = len;
    return 0;
}

/* ---- ids ------------------------------------------------------------------------------ */

/* Fills `out` with random bytes; an all-zero result (probability 2^-64 per word) is
 * replaced so that an id is never invalid (§3.2.2.3). */
static void random_id(sl_rand *r, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t x = sl_rand_next(r);
        for (size_t j = 0; j < 8 && i + j < n; j++)
            out[i + j] = (uint8_t)(x >> (8 * j));
    }
    if (all_zero(out, n)) out[n - 1] = 1;
}

void sl_trace_id_new(sl_rand *r, uint8_t out[SL_TRACE_ID_LEN])
{
    random_id(r, out, SL_TRACE_ID_LEN);
}

void sl_span_id_new(sl_rand *r, uint8_t out[SL_SPAN_ID_LEN])
{
    random_id(r, out, SL_SPAN_ID_LEN);
}
