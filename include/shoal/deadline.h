/*
 * Deadlines: one absolute point in monotonic time carried through a call
 * tree, so that every hop knows how much of the original budget is left.
 * A child call gets min(parent, now + its own timeout); the remaining budget
 * crosses the wire as `x-shoal-deadline-ms: <remaining ms>` so a server can
 * stop working on a request its caller has already given up on.
 *
 * Pure module (src/lib/resilience): no I/O; time comes from an injected
 * sl_clock. sl_deadline is a plain value; every function is reentrant and
 * safe from any thread as long as the clock is.
 */
#ifndef SHOAL_DEADLINE_H
#define SHOAL_DEADLINE_H

#include <shoal/clock.h>
#include <shoal/common.h>

#include <stdbool.h>
#include <stdint.h>

/* The header that carries the remaining budget, lower case as sent. */
#define SL_DEADLINE_HEADER "x-shoal-deadline-ms"

/*
 * Largest remaining budget accepted from or sent on the wire (10 minutes).
 * A bigger value is capped to this, not rejected: a peer with a generous
 * budget should still be served, but never told "forever".
 */
#define SL_DEADLINE_HEADER_MAX_MS INT64_C(600000)

/* Buffer size that always fits a formatted header value plus its NUL. */
#define SL_DEADLINE_HEADER_BUF 24

/* The "no deadline" instant. */
#define SL_DEADLINE_NONE_NS INT64_MAX

/* An absolute monotonic deadline in ns (the clock's mono_ns scale); SL_DEADLINE_NONE_NS = none. */
typedef struct sl_deadline {
    int64_t at_ns;
} sl_deadline;

/* Returns the absent deadline (never expires). */
static inline sl_deadline sl_deadline_none(void)
{
    return (sl_deadline){SL_DEADLINE_NONE_NS};
}

/* Returns true when `d` is the absent deadline. */
static inline bool sl_deadline_is_none(sl_deadline d)
{
    return d.at_ns == SL_DEADLINE_NONE_NS;
}

/* Returns the earlier of `a` and `b`. */
static inline sl_deadline sl_deadline_min(sl_deadline a, sl_deadline b)
{
    return a.at_ns <= b.at_ns ? a : b;
}

/*
 * Returns now + `timeout_ms` on `clock` (borrowed, read once). A timeout <= 0
 * gives a deadline that has already passed; a huge one saturates (never
 * wraps round into the past).
 */
SL_API sl_deadline sl_deadline_after(const sl_clock *clock, int64_t timeout_ms);

/*
 * Returns the deadline for a child call: min(parent, now + `timeout_ms`).
 * `timeout_ms` <= 0 means "no per-call timeout": the parent is returned as is.
 */
SL_API sl_deadline sl_deadline_child(sl_deadline parent, const sl_clock *clock, int64_t timeout_ms);

/* Returns the ns left before `d` (0 once passed; INT64_MAX for none). */
SL_API int64_t sl_deadline_remaining_ns(sl_deadline d, const sl_clock *clock);

/*
 * Returns the whole milliseconds left before `d`, rounded down so a callee
 * never believes it has more time than the caller (0 once passed or less
 * than 1 ms left; INT64_MAX for none).
 */
SL_API int64_t sl_deadline_remaining_ms(sl_deadline d, const sl_clock *clock);

/* Returns true once `d` has passed (remaining time 0). Never true for none. */
SL_API bool sl_deadline_expired(sl_deadline d, const sl_clock *clock);

/*
 * Formats the value of the x-shoal-deadline-ms header for `d`: the remaining
 * whole milliseconds, capped at SL_DEADLINE_HEADER_MAX_MS, as ASCII digits,
 * NUL-terminated, into `buf` (at least SL_DEADLINE_HEADER_BUF bytes is always
 * enough). Returns the length written (without the NUL), or SL_EINVAL when
 * `d` is none (send no header then) or `cap` is too small.
 */
SL_API int sl_deadline_format_header(sl_deadline d, const sl_clock *clock, char *buf,
                                     size_t cap) SL_MUST_CHECK;

/*
 * Parses an x-shoal-deadline-ms header value of `len` bytes (borrowed):
 * optional whitespace, 1*DIGIT, optional whitespace. Values above
 * SL_DEADLINE_HEADER_MAX_MS are capped to it. "0" is valid (the caller's
 * budget is gone: answer at once). Returns 0 and stores the milliseconds in
 * *remaining_ms, or SL_EPARSE for anything else (sign, fraction, letters,
 * empty, a list): the server then keeps its own default timeout.
 */
SL_API int sl_deadline_parse_header(const char *s, size_t len, int64_t *remaining_ms) SL_MUST_CHECK;

/*
 * Returns the local deadline for an inbound request that carried
 * `remaining_ms` (from sl_deadline_parse_header), bounded by the server's own
 * `max_ms` limit (<= 0: no local limit): min(now + remaining, now + max).
 */
SL_API sl_deadline sl_deadline_from_header(const sl_clock *clock, int64_t remaining_ms,
                                           int64_t max_ms);

#endif /* SHOAL_DEADLINE_H */
