/*
 * JSON-lines logger. A line is assembled in a fixed stack buffer by a small
 * bounded writer (`lbuf`) that never writes past `limit`; room for the
 * closing `,"truncated":true}\n` is always kept, so a line that does not fit
 * is cut at a field boundary (or inside a string value, which is then closed)
 * and is still one valid JSON object. Guarded by test_truncation_sweep.
 */
#include <shoal/log.h>

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TRUNC_TAIL     ",\"truncated\":true}\n"
#define TRUNC_TAIL_LEN (sizeof(TRUNC_TAIL) - 1)
/* Room kept while writing `msg` so trace_id and span_id still fit after it. */
#define TRACE_IDS_ROOM (sizeof(",\"trace_id\":\"\",\"span_id\":\"\"") - 1 + 32 + 16)
/* An escaped service name: each byte may become \u00XX (6), plus quotes. */
#define SERVICE_JSON_MAX (SL_LOG_SERVICE_MAX * 6 + 3)

struct sl_logger {
    _Atomic int level;
    sl_log_sink_fn sink;
    void *sink_data;
    const sl_clock *clock;
    size_t service_json_len;
    char service_json[SERVICE_JSON_MAX];
};

typedef struct lbuf {
    char *p;
    size_t len;
    size_t limit; /* content never goes beyond this */
} lbuf;

static int put(lbuf *b, const char *s, size_t n)
{
    if (b->len + n > b->limit) return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is invalid
 * (overlong forms, surrogates, code points above U+10FFFF, truncated sequences). */
static size_t utf8_valid_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c < 0x80) return 1;
    if (c < 0xc2) return 0;
    if (c < 0xe0) {
        need = 1;
    } else if (c < 0xf0) {
        need = 2;
        if (c == 0xe0) lo = 0xa0; /* overlong */
        if (c == 0xed) hi = 0x9f; /* surrogates */
    } else if (c < 0xf5) {
        need = 3;
        if (c == 0xf0) lo = 0x90; /* overlong */
        if (c == 0xf4) hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < need + 1) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i <= need; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return need + 1;
}

/*
 * Writes `s` (NUL-terminated; NULL writes null) as a JSON string. Returns 1
 * when complete, 0 when the string was cut (it is still closed with a quote),
 * -1 when not even an empty string fits (nothing written).
 */
static int put_json_string(lbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    if (s == NULL) return put(b, "null", 4) == 0 ? 1 : -1;
    if (b->len + 2 > b->limit) return -1;
    b->p[b->len++] = '"';
    const unsigned char *u = (const unsigned char *)s;
    size_t rest = strlen(s);
    int complete = 1;
    while (rest > 0) {
        /* Fast path: copy a run of printable ASCII that needs no escaping in one go. */
        size_t run = 0;
        while (run < rest && u[run] >= 0x20 && u[run] < 0x7f && u[run] != '"' && u[run] != '\\')
            run++;
        if (run > 0) {
            size_t room = b->limit - b->len - 1; /* keep room for the closing quote */
            if (run > room) {
                run = room;
                complete = 0;
            }
            memcpy(b->p + b->len, u, run);
            b->len += run;
            u += run;
            rest -= run;
            if (!complete) break;
            continue;
        }
        char esc[6];
        const char *out = esc;
        size_t olen, consumed = 1;
        unsigned char c = *u;
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, olen = 2;
        } else if (c == '\n') {
            esc[0] = '\\', esc[1] = 'n', olen = 2;
        } else if (c == '\r') {
            esc[0] = '\\', esc[1] = 'r', olen = 2;
        } else if (c == '\t') {
            esc[0] = '\\', esc[1] = 't', olen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4], esc[5] = hex[c & 0xf], olen = 6;
        } else {
            consumed = utf8_valid_len(u, rest);
            if (consumed == 0) { /* invalid byte → U+FFFD, resynchronise on the next */
                out = "\xef\xbf\xbd", olen = 3, consumed = 1;
            } else {
                out = (const char *)u, olen = consumed;
            }
        }
        if (b->len + olen + 1 > b->limit) { /* keep room for the closing quote */
            complete = 0;
            break;
        }
        memcpy(b->p + b->len, out, olen);
        b->len += olen;
        u += consumed;
        rest -= consumed;
    }
    b->p[b->len++] = '"';
    return complete;
}

/* Writes `,"key":` ; returns 0, or -1 (rolled back) when the key does not fit whole. */
static int put_key(lbuf *b, const char *key)
{
    size_t mark = b->len;
    if (put(b, ",", 1) != 0 || put_json_string(b, key ? key : "") != 1 || put(b, ":", 1) != 0) {
        b->len = mark;
        return -1;
    }
    return 0;
}

static int put_number(lbuf *b, const sl_log_field *f)
{
    char num[40];
    int n;
    if (f->type == SL_LOG_FIELD_INT) {
        /* By hand: snprintf costs more than the rest of a typical field. */
        uint64_t m = f->v.i < 0 ? 0 - (uint64_t)f->v.i : (uint64_t)f->v.i;
        char *e = num + sizeof num, *q = e;
        do {
            *--q = (char)('0' + m % 10);
            m /= 10;
        } while (m != 0);
        if (f->v.i < 0) *--q = '-';
        return put(b, q, (size_t)(e - q));
    } else if (!isfinite(f->v.d)) {
        n = snprintf(num, sizeof num, "null"); /* JSON has no NaN or infinities */
    } else {
        /* Shortest of %.15g/%.17g that round-trips. (Assumes the "C" numeric locale,
         * which a program has unless it calls setlocale.) */
        n = snprintf(num, sizeof num, "%.15g", f->v.d);
        if (strtod(num, NULL) != f->v.d) n = snprintf(num, sizeof num, "%.17g", f->v.d);
    }
    return put(b, num, (size_t)n);
}

/* Appends one field. Returns 0, or -1 when the line is full (field dropped or cut). */
static int put_field(lbuf *b, const sl_log_field *f)
{
    size_t mark = b->len;
    if (f->type == SL_LOG_FIELD_NONE) return 0;
    if (put_key(b, f->key) != 0) return -1;
    int rc;
    switch (f->type) {
    case SL_LOG_FIELD_STR:
        rc = put_json_string(b, f->v.s);
        if (rc == 0) return -1; /* kept, but cut: nothing more fits */
        rc = rc == 1 ? 0 : -1;
        break;
    case SL_LOG_FIELD_INT:
    case SL_LOG_FIELD_DBL:
        rc = put_number(b, f);
        break;
    case SL_LOG_FIELD_BOOL:
        rc = f->v.b ? put(b, "true", 4) : put(b, "false", 5);
        break;
    default:
        rc = put(b, "null", 4);
        break;
    }
    if (rc != 0) b->len = mark;
    return rc;
}

static void put_hex_member(lbuf *b, const char *prefix, const uint8_t *id, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[64];
    size_t plen = strlen(prefix), o = plen;
    memcpy(tmp, prefix, plen);
    for (size_t i = 0; i < n; i++) {
        tmp[o++] = hex[id[i] >> 4];
        tmp[o++] = hex[id[i] & 0xf];
    }
    tmp[o++] = '"';
    (void)put(b, tmp, o); /* room was reserved while writing msg */
}

void sl_log_write(sl_logger *lg, sl_log_level level, const sl_trace_ctx *tc, const char *msg,
                  const sl_log_field *fields, size_t n)
{
    char line[SL_LOG_LINE_MAX];
    lbuf b = {.p = line, .len = 0, .limit = sizeof line - TRUNC_TAIL_LEN};
    int truncated = 0;

    char ts[SL_RFC3339_MAX];
    if (sl_rfc3339_format(sl_clock_wall_ns(lg->clock), ts, sizeof ts) < 0) strcpy(ts, "invalid");
    /* The fixed prefix is far below the limit (ts 24, level 5, service <= 381 bytes). */
    (void)put(&b, "{\"ts\":\"", 7);
    (void)put(&b, ts, strlen(ts));
    (void)put(&b, "\",\"level\":\"", 11);
    const char *lname = sl_log_level_name(level);
    (void)put(&b, lname, strlen(lname));
    (void)put(&b, "\",\"service\":", 12);
    (void)put(&b, lg->service_json, lg->service_json_len);
    (void)put(&b, ",\"msg\":", 7);

    size_t full_limit = b.limit;
    if (tc != NULL) b.limit -= TRACE_IDS_ROOM;
    if (put_json_string(&b, msg ? msg : "") != 1) truncated = 1;
    b.limit = full_limit;
    if (tc != NULL) {
        put_hex_member(&b, ",\"trace_id\":\"", tc->trace_id, SL_TRACE_ID_LEN);
        put_hex_member(&b, ",\"span_id\":\"", tc->span_id, SL_SPAN_ID_LEN);
    }
    for (size_t i = 0; i < n && !truncated; i++)
        if (put_field(&b, &fields[i]) != 0) truncated = 1;

    /* The tail always fits: `limit` kept TRUNC_TAIL_LEN bytes free. */
    if (truncated) {
        memcpy(line + b.len, TRUNC_TAIL, TRUNC_TAIL_LEN);
        b.len += TRUNC_TAIL_LEN;
    } else {
        memcpy(line + b.len, "}\n", 2);
        b.len += 2;
    }
    SL_ASSERT(b.len <= sizeof line);
    lg->sink(lg->sink_data, line, b.len);
}

static void stderr_sink(void *data, const char *line, size_t len)
{
    (void)data;
    /* One write per line; loop only for the rare partial write or signal. */
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, line, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return; /* nowhere left to report it */
        }
        line += w;
        len -= (size_t)w;
    }
}

int sl_logger_new(const char *service, sl_log_level level, sl_log_sink_fn sink, void *sink_data,
                  const sl_clock *clock, sl_logger **out)
{
    if (service == NULL || clock == NULL || out == NULL || (int)level < SL_LOG_LEVEL_DEBUG ||
        level > SL_LOG_LEVEL_ERROR)
        return SL_EINVAL;
    sl_logger *lg = calloc(1, sizeof *lg);
    if (lg == NULL) return SL_ENOMEM;
    atomic_init(&lg->level, (int)level);
    lg->sink = sink ? sink : stderr_sink;
    lg->sink_data = sink_data;
    lg->clock = clock;
    char name[SL_LOG_SERVICE_MAX + 1];
    size_t n = strnlen(service, SL_LOG_SERVICE_MAX);
    memcpy(name, service, n);
    name[n] = '\0';
    lbuf b = {.p = lg->service_json, .len = 0, .limit = sizeof lg->service_json};
    int rc = put_json_string(&b, name);
    SL_ASSERT(rc == 1); /* 6 bytes per input byte plus quotes always fit */
    (void)rc;
    lg->service_json_len = b.len;
    *out = lg;
    return 0;
}

void sl_logger_free(sl_logger *logger)
{
    free(logger);
}

void sl_logger_set_level(sl_logger *logger, sl_log_level level)
{
    atomic_store_explicit(&logger->level, (int)level, memory_order_relaxed);
}

sl_log_level sl_logger_level(const sl_logger *logger)
{
    return (sl_log_level)atomic_load_explicit(&logger->level, memory_order_relaxed);
}

bool sl_log_enabled(const sl_logger *logger, sl_log_level level)
{
    return (int)level >= atomic_load_explicit(&logger->level, memory_order_relaxed);
}

const char *sl_log_level_name(sl_log_level level)
{
    switch (level) {
#define SL_LOG_LEVEL_CASE_(name, text)                                                             \
    case SL_LOG_LEVEL_##name:                                                                      \
        return text;
        SL_LOG_LEVEL_MAP(SL_LOG_LEVEL_CASE_)
#undef SL_LOG_LEVEL_CASE_
    }
    return "unknown";
}

int sl_log_level_parse(const char *s, sl_log_level *out)
{
    if (s == NULL) return SL_EINVAL;
    sl_slice in = {s, strlen(s)};
#define SL_LOG_LEVEL_PARSE_(name, text)                                                            \
    if (sl_slice_case_eq(in, text)) {                                                              \
        *out = SL_LOG_LEVEL_##name;                                                                \
        return 0;                                                                                  \
    }
    SL_LOG_LEVEL_MAP(SL_LOG_LEVEL_PARSE_)
#undef SL_LOG_LEVEL_PARSE_
    if (sl_slice_case_eq(in, "warning")) {
        *out = SL_LOG_LEVEL_WARN;
        return 0;
    }
    return SL_EINVAL;
}
