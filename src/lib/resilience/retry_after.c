/*
 * Retry-After parsing (include/shoal/retry.h): RFC 9110 §10.2.3 allows
 * delta-seconds or an HTTP-date, and §5.6.7 obliges recipients to accept all
 * three date forms: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), the
 * obsolete RFC 850 form ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime
 * ("Sun Nov  6 08:49:37 1994"). The input is network bytes, so the parser is
 * a bounded cursor that checks every byte and every range.
 */
#include <shoal/retry.h>

#include "resilience_int.h"

#include <string.h>

typedef struct cursor {
    const char *s;
    size_t len, pos;
} cursor;

static const char *const day_short[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const day_long[7] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                        "Friday", "Saturday", "Sunday"};
static const char *const month_name[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int eat(cursor *c, char ch)
{
    if (c->pos < c->len && c->s[c->pos] == ch) {
        c->pos++;
        return 1;
    }
    return 0;
}

static int eat_word(cursor *c, const char *w)
{
    size_t n = strlen(w);
    if (c->len - c->pos < n || memcmp(c->s + c->pos, w, n) != 0) return 0;
    c->pos += n;
    return 1;
}

/* Matches one of `count` names (longest first is not needed: no name is a prefix of another). */
static int eat_name(cursor *c, const char *const *names, int count)
{
    for (int i = 0; i < count; i++)
        if (eat_word(c, names[i])) return i;
    return -1;
}

/* Exactly `n` digits. */
static int eat_digits(cursor *c, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (c->pos >= c->len) return 0;
        unsigned char ch = (unsigned char)c->s[c->pos];
        if (ch < '0' || ch > '9') return 0;
        v = v * 10 + (ch - '0');
        c->pos++;
    }
    *out = v;
    return 1;
}

/* time-of-day = hour ":" minute ":" second; second may be 60 (leap second, §5.6.7). */
static int eat_time(cursor *c, int *h, int *m, int *s)
{
    return eat_digits(c, 2, h) && eat(c, ':') && eat_digits(c, 2, m) && eat(c, ':') &&
           eat_digits(c, 2, s) && *h <= 23 && *m <= 59 && *s <= 60;
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1-12). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The year (proleptic Gregorian) containing `days` since the epoch. */
static int64_t year_of_days(int64_t days)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    return yoe + era * 400 + (mp >= 10);
}

typedef struct civil {
    int64_t year;
    int month, day, hour, min, sec;
} civil;

/* IMF-fixdate after the day name: ", 06 Nov 1994 08:49:37 GMT". */
static int parse_imf_rest(cursor *c, civil *t)
{
    int y;
    if (!eat(c, ',') || !eat(c, ' ') || !eat_digits(c, 2, &t->day) || !eat(c, ' ')) return 0;
    if ((t->month = eat_name(c, month_name, 12) + 1) == 0) return 0;
    if (!eat(c, ' ') || !eat_digits(c, 4, &y) || !eat(c, ' ')) return 0;
    t->year = y;
    return eat_time(c, &t->hour, &t->min, &t->sec) && eat_word(c, " GMT");
}

/* RFC 850 after the long day name: ", 06-Nov-94 08:49:37 GMT" (two-digit year resolved later). */
static int parse_rfc850_rest(cursor *c, civil *t)
{
    int y;
    if (!eat(c, ',') || !eat(c, ' ') || !eat_digits(c, 2, &t->day) || !eat(c, '-')) return 0;
    if ((t->month = eat_name(c, month_name, 12) + 1) == 0) return 0;
    if (!eat(c, '-') || !eat_digits(c, 2, &y) || !eat(c, ' ')) return 0;
    t->year = y;
    return eat_time(c, &t->hour, &t->min, &t->sec) && eat_word(c, " GMT");
}

/* asctime after the day name: " Nov  6 08:49:37 1994" (day is 2DIGIT or SP DIGIT). */
static int parse_asctime_rest(cursor *c, civil *t)
{
    int y;
    if (!eat(c, ' ')) return 0;
    if ((t->month = eat_name(c, month_name, 12) + 1) == 0) return 0;
    if (!eat(c, ' ')) return 0;
    if (eat(c, ' ')) {
        if (!eat_digits(c, 1, &t->day)) return 0;
    } else if (!eat_digits(c, 2, &t->day)) {
        return 0;
    }
    if (!eat(c, ' ') || !eat_time(c, &t->hour, &t->min, &t->sec)) return 0;
    if (!eat(c, ' ') || !eat_digits(c, 4, &y)) return 0;
    t->year = y;
    return 1;
}

/* Parses an HTTP-date into seconds since the epoch. */
static int parse_http_date(const char *s, size_t len, int64_t now_wall_ns, int64_t *epoch_s)
{
    cursor c = {s, len, 0};
    civil t = {0};
    int ok;
    /* Long names first: "Sunday" would otherwise match "Sun" and fail later. */
    if (eat_name(&c, day_long, 7) >= 0) {
        ok = parse_rfc850_rest(&c, &t);
        if (ok) {
            /* §5.6.7: a two-digit year more than 50 years ahead is in the previous century. */
            int64_t now_year = year_of_days(now_wall_ns / SL_NS_PER_SEC / 86400);
            int64_t y = now_year - now_year % 100 + t.year;
            if (y > now_year + 50) y -= 100;
            t.year = y;
        }
    } else if (eat_name(&c, day_short, 7) >= 0) {
        ok = (c.pos < c.len && c.s[c.pos] == ',') ? parse_imf_rest(&c, &t)
                                                  : parse_asctime_rest(&c, &t);
    } else {
        return SL_EPARSE;
    }
    if (!ok || c.pos != c.len) return SL_EPARSE;
    if (t.day < 1 || t.day > days_in_month(t.year, t.month)) return SL_EPARSE;
    int64_t days = days_from_civil(t.year, t.month, t.day);
    *epoch_s = days * 86400 + t.hour * 3600 + t.min * 60 + t.sec;
    return 0;
}

int sl_retry_after_parse(const char *s, size_t len, int64_t now_wall_ns, int64_t *delay_ms)
{
    if (s == NULL) return SL_EPARSE;
    s = sl__resilience_trim_ows(s, &len);
    if (len == 0) return SL_EPARSE;
    if (s[0] >= '0' && s[0] <= '9') {
        int64_t secs;
        int rc = sl__resilience_parse_digits(s, len, SL_RETRY_AFTER_PARSE_MAX_MS / 1000, &secs);
        if (rc != 0) return rc;
        *delay_ms = secs * 1000;
        return 0;
    }
    /* Every date form is 24 to 30 bytes long; refuse to scan anything much longer. */
    if (len > 64) return SL_EPARSE;
    int64_t at_s;
    int rc = parse_http_date(s, len, now_wall_ns, &at_s);
    if (rc != 0) return rc;
    /* Work in seconds first: a year-9999 date in ns would overflow int64. */
    int64_t now_s = now_wall_ns / SL_NS_PER_SEC, now_frac = now_wall_ns % SL_NS_PER_SEC;
    if (now_frac < 0) {
        now_s--;
        now_frac += SL_NS_PER_SEC;
    }
    int64_t delta_s = at_s - now_s;
    if (delta_s > SL_RETRY_AFTER_PARSE_MAX_MS / 1000) {
        *delay_ms = SL_RETRY_AFTER_PARSE_MAX_MS;
        return 0;
    }
    int64_t delta_ns = delta_s <= 0 ? 0 : delta_s * SL_NS_PER_SEC - now_frac;
    if (delta_ns <= 0) {
        *delay_ms = 0;
        return 0;
    }
    int64_t ms = delta_ns / SL_NS_PER_MS + (delta_ns % SL_NS_PER_MS != 0);
    *delay_ms = ms > SL_RETRY_AFTER_PARSE_MAX_MS ? SL_RETRY_AFTER_PARSE_MAX_MS : ms;
    return 0;
}
