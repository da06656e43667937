/*
 * Time for libshoal: a clock interface that every time-dependent module
 * takes as a parameter (so tests can substitute a fake one), the real clock,
 * a manually advanced fake clock, and RFC 3339 formatting and parsing.
 *
 * Pure module: no I/O besides reading the system clocks.
 */
#ifndef SHOAL_CLOCK_H
#define SHOAL_CLOCK_H

#include <shoal/common.h>

#include <stdint.h>

/*
 * A clock. `mono_ns` is monotonic (for timeouts and durations), `wall_ns`
 * is nanoseconds since the Unix epoch in UTC (for timestamps). Both take the
 * `ctx` of the clock. A clock must be safe to call from any thread that the
 * module using it runs on; sl_clock_system() is safe from every thread.
 */
typedef struct sl_clock {
    int64_t (*mono_ns)(void *ctx);
    int64_t (*wall_ns)(void *ctx);
    void *ctx;
} sl_clock;

/* Returns the process-wide system clock (CLOCK_MONOTONIC, CLOCK_REALTIME). Static storage. */
SL_API const sl_clock *sl_clock_system(void);

static inline int64_t sl_clock_mono_ns(const sl_clock *c)
{
    return c->mono_ns(c->ctx);
}
static inline int64_t sl_clock_mono_ms(const sl_clock *c)
{
    return c->mono_ns(c->ctx) / 1000000;
}
static inline int64_t sl_clock_wall_ns(const sl_clock *c)
{
    return c->wall_ns(c->ctx);
}
static inline int64_t sl_clock_wall_ms(const sl_clock *c)
{
    return c->wall_ns(c->ctx) / 1000000;
}

/*
 * A fake clock for tests: time stands still until advanced. Caller's storage;
 * not thread-safe (tests drive it from one thread).
 */
typedef struct sl_fake_clock {
    sl_clock clock; /* pass &fc.clock wherever a clock is expected */
    int64_t mono_ns;
    int64_t wall_ns;
} sl_fake_clock;

/* Initialises `fc` at monotonic 0 and the given wall time (ns since the epoch). */
SL_API void sl_fake_clock_init(sl_fake_clock *fc, int64_t wall_ns);

/* Moves both clocks forward by `delta_ns` (must be >= 0). */
SL_API void sl_fake_clock_advance(sl_fake_clock *fc, int64_t delta_ns);

/* Room for "YYYY-MM-DDTHH:MM:SS.mmmZ" plus the NUL. */
#define SL_RFC3339_MAX 32

/*
 * Formats `wall_ns` as RFC 3339 UTC with millisecond precision
 * ("2026-11-28T12:00:00.123Z") into `out` (at least SL_RFC3339_MAX bytes).
 * Returns the length written, or SL_EINVAL for a time outside years 0000-9999.
 */
SL_API int sl_rfc3339_format(int64_t wall_ns, char *out, size_t cap);

/*
 * Parses an RFC 3339 date-time ("2026-11-28T12:00:00Z", fractional seconds
 * and numeric offsets allowed; 'T'/'t' and 'Z'/'z' accepted) of `len` bytes.
 * On success stores nanoseconds since the epoch in *wall_ns and returns 0;
 * returns SL_EPARSE on any malformed or out-of-range input.
 */
SL_API int sl_rfc3339_parse(const char *s, size_t len, int64_t *wall_ns) SL_MUST_CHECK;

#endif /* SHOAL_CLOCK_H */
