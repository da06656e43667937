/*
 * The system and fake clocks, and RFC 3339 conversion without libc's
 * locale- and timezone-dependent functions (days-from-civil arithmetic).
 */
#include <shoal/clock.h>

#include <time.h>

static int64_t sys_mono_ns(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t sys_wall_ns(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const sl_clock system_clock = {.mono_ns = sys_mono_ns, .wall_ns = sys_wall_ns, .ctx = NULL};

const sl_clock *sl_clock_system(void)
{
    return &system_clock;
}

static int64_t fake_mono_ns(void *ctx)
{
    return ((sl_fake_clock *)ctx)->mono_ns;
}

static int64_t fake_wall_ns(void *ctx)
{
    return ((sl_fake_clock *)ctx)->wall_ns;
}

void sl_fake_clock_init(sl_fake_clock *fc, int64_t wall_ns)
{
    fc->clock.mono_ns = fake_mono_ns;
    fc->clock.wall_ns = fake_wall_ns;
    fc->clock.ctx = fc;
    fc->mono_ns = 0;
    fc->wall_ns = wall_ns;
}

void sl_fake_clock_advance(sl_fake_clock *fc, int64_t delta_ns)
{
    SL_ASSERT(delta_ns >= 0);
    fc->mono_ns += delta_ns;
    fc->wall_ns += delta_ns;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void put_digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

int sl_rfc3339_format(int64_t wall_ns, char *out, size_t cap)
{
    if (cap < 25) return SL_EINVAL;
    int64_t secs = wall_ns / 1000000000;
    int64_t ns = wall_ns % 1000000000;
    if (ns < 0) {
        ns += 1000000000;
        secs -= 1;
    }
    int64_t days = secs / 86400;
    int64_t rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days -= 1;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) return SL_EINVAL;
    put_digits(out, (unsigned)y, 4);
    out[4] = '-';
    put_digits(out + 5, m, 2);
    out[7] = '-';
    put_digits(out + 8, d, 2);
    out[10] = 'T';
    put_digits(out + 11, (unsigned)(rem / 3600), 2);
    out[13] = ':';
    put_digits(out + 14, (unsigned)(rem / 60 % 60), 2);
    out[16] = ':';
    put_digits(out + 17, (unsigned)(rem % 60), 2);
    out[19] = '.';
    put_digits(out + 20, (unsigned)(ns / 1000000), 3);
    out[23] = 'Z';
    out[24] = '\0';
    return 24;
}

static int read_num(const char *s, size_t len, size_t *i, int n, unsigned *out)
{
    unsigned v = 0;
    for (int k = 0; k < n; k++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9') return SL_EPARSE;
        v = v * 10 + (unsigned)(s[*i] - '0');
        (*i)++;
    }
    *out = v;
    return 0;
}

static int expect(const char *s, size_t len, size_t *i, char c)
{
    if (*i >= len || s[*i] != c) return SL_EPARSE;
    (*i)++;
    return 0;
}

int sl_rfc3339_parse(const char *s, size_t len, int64_t *wall_ns)
{
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t i = 0;
    unsigned y, mo, d, h, mi, se;
    if (read_num(s, len, &i, 4, &y) || expect(s, len, &i, '-') || read_num(s, len, &i, 2, &mo) ||
        expect(s, len, &i, '-') || read_num(s, len, &i, 2, &d))
        return SL_EPARSE;
    if (i >= len || (s[i] != 'T' && s[i] != 't')) return SL_EPARSE;
    i++;
    if (read_num(s, len, &i, 2, &h) || expect(s, len, &i, ':') || read_num(s, len, &i, 2, &mi) ||
        expect(s, len, &i, ':') || read_num(s, len, &i, 2, &se))
        return SL_EPARSE;
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 60) return SL_EPARSE;
    unsigned maxd = mdays[mo - 1];
    if (mo == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) maxd = 29;
    if (d > maxd) return SL_EPARSE;
    if (se == 60) se = 59; /* a leap second collapses onto the second before it */
    int64_t frac = 0;
    if (i < len && s[i] == '.') {
        i++;
        int digits = 0;
        int64_t scale = 100000000;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (digits < 9) {
                frac += (s[i] - '0') * scale;
                scale /= 10;
            }
            digits++;
            i++;
        }
        if (digits == 0 || digits > 18) return SL_EPARSE;
    }
    int64_t offset = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i] == '-' ? -1 : 1;
        i++;
        unsigned oh, om;
        if (read_num(s, len, &i, 2, &oh) || expect(s, len, &i, ':') ||
            read_num(s, len, &i, 2, &om) || oh > 23 || om > 59)
            return SL_EPARSE;
        offset = sign * (int64_t)(oh * 3600 + om * 60);
    } else {
        return SL_EPARSE;
    }
    if (i != len) return SL_EPARSE;
    int64_t secs = days_from_civil((int64_t)y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
    *wall_ns = secs * 1000000000 + frac;
    return 0;
}
