/*
 * Deadlines (include/shoal/deadline.h): arithmetic on absolute monotonic
 * instants, saturating so that no input can wrap a deadline into the past or
 * the far future, and the x-shoal-deadline-ms wire form.
 */
#include <shoal/deadline.h>

#include "resilience_int.h"


sl_deadline sl_deadline_after(const sl_clock *clock, int64_t timeout_ms)
{
    int64_t now = sl_clock_mono_ns(clock);
    if (timeout_ms <= 0) return (sl_deadline){now};
    int64_t at = sl__resilience_sat_add(now, sl__resilience_ms_to_ns(timeout_ms));
    /* A saturated sum would read as "none"; keep it a real (if distant) deadline. */
    if (at == SL_DEADLINE_NONE_NS) at = SL_DEADLINE_NONE_NS - 1;
    return (sl_deadline){at};
}

sl_deadline sl_deadline_child(sl_deadline parent, const sl_clock *clock, int64_t timeout_ms)
{
    if (timeout_ms <= 0) return parent;
    return sl_deadline_min(parent, sl_deadline_after(clock, timeout_ms));
}

int64_t sl_deadline_remaining_ns(sl_deadline d, const sl_clock *clock)
{
    if (sl_deadline_is_none(d)) return INT64_MAX;
    int64_t now = sl_clock_mono_ns(clock);
    if (d.at_ns <= now) return 0;
    return d.at_ns - now;
}

int64_t sl_deadline_remaining_ms(sl_deadline d, const sl_clock *clock)
{
    int64_t ns = sl_deadline_remaining_ns(d, clock);
    if (ns == INT64_MAX) return INT64_MAX;
    return ns / SL_NS_PER_MS;
}

bool sl_deadline_expired(sl_deadline d, const sl_clock *clock)
{
    return sl_deadline_remaining_ns(d, clock) == 0;
}

int sl_deadline_format_header(sl_deadline d, const sl_clock *clock, char *buf, size_t cap)
{
    if (sl_deadline_is_none(d) || buf == NULL) return SL_EINVAL;
    int64_t ms = sl_deadline_remaining_ms(d, clock);
    if (ms > SL_DEADLINE_HEADER_MAX_MS) ms = SL_DEADLINE_HEADER_MAX_MS;
    /* By hand: this runs for every outgoing call. */
    char tmp[24];
    size_t n = 0;
    uint64_t v = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (ms < 0) tmp[n++] = '-';
    if (n >= cap) {
        if (cap > 0) buf[0] = '\0';
        return SL_EINVAL;
    }
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return (int)n;
}

int sl_deadline_parse_header(const char *s, size_t len, int64_t *remaining_ms)
{
    if (s == NULL) return SL_EPARSE;
    s = sl__resilience_trim_ows(s, &len);
    int64_t v;
    int rc = sl__resilience_parse_digits(s, len, SL_DEADLINE_HEADER_MAX_MS, &v);
    if (rc != 0) return rc;
    *remaining_ms = v;
    return 0;
}

sl_deadline sl_deadline_from_header(const sl_clock *clock, int64_t remaining_ms, int64_t max_ms)
{
    if (remaining_ms > SL_DEADLINE_HEADER_MAX_MS) remaining_ms = SL_DEADLINE_HEADER_MAX_MS;
    if (max_ms > 0 && remaining_ms > max_ms) remaining_ms = max_ms;
    return sl_deadline_after(clock, remaining_ms);
}
