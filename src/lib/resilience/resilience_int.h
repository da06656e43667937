/*
 * Internals shared by the resilience policies (src/lib/resilience): the small
 * header-value lexers used by both Retry-After and x-shoal-deadline-ms, and
 * saturating arithmetic so that absurd configuration or input values clamp
 * instead of overflowing. Not part of the public API.
 */
#ifndef SHOAL_RESILIENCE_INT_H
#define SHOAL_RESILIENCE_INT_H

#include <shoal/common.h>

#include <stdint.h>

#define SL_NS_PER_MS  INT64_C(1000000)
#define SL_NS_PER_SEC INT64_C(1000000000)

/* Strips optional whitespace (SP / HTAB, RFC 9110 §5.6.3 OWS) from both ends of s[0..*len). */
const char *sl__resilience_trim_ows(const char *s, size_t *len);

/*
 * Parses s[0..len) as 1*DIGIT (no sign, no whitespace). Values above `max`
 * saturate to `max` (so a thousand-digit number is not an error, only
 * capped). Returns 0 and stores the value, or SL_EPARSE for an empty string
 * or any non-digit byte.
 */
int sl__resilience_parse_digits(const char *s, size_t len, int64_t max, int64_t *out);

/* a + b clamped to [INT64_MIN, INT64_MAX]. */
static inline int64_t sl__resilience_sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b) return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b) return INT64_MIN;
    return a + b;
}

/* ms → ns, clamped to INT64_MAX for huge values; negative values give 0. */
static inline int64_t sl__resilience_ms_to_ns(int64_t ms)
{
    if (ms <= 0) return 0;
    if (ms > INT64_MAX / SL_NS_PER_MS) return INT64_MAX;
    return ms * SL_NS_PER_MS;
}

#endif /* SHOAL_RESILIENCE_INT_H */
