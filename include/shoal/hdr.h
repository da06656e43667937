/*
 * A high-dynamic-range histogram of non-negative integer values (latencies in
 * microseconds, typically): constant-time recording, fixed memory chosen at
 * creation, and percentiles with a stated relative precision over the whole
 * range.
 *
 * Layout: values below 2^M (M = the sub-bucket magnitude, from the
 * significant digits asked for) are counted exactly; above, each power-of-two
 * range [2^(M+b-1), 2^(M+b)) is cut into 2^(M-1) equal slots of width 2^b. So
 * a value and every other value sharing its slot differ by less than
 * 1 / 2^(M-1) of it, which is at most 10^-digits: with 3 digits, 0.1 %.
 * sl_hdr_value_at() returns the highest value of the slot that holds the
 * percentile, so a reported percentile is never below the exact one and
 * exceeds it by at most that relative precision (sl_hdr_slot_width() gives
 * the exact width at any value).
 *
 * Pure module: no I/O, no globals, no threads. A histogram belongs to one
 * thread at a time.
 */
#ifndef SHOAL_HDR_H
#define SHOAL_HDR_H

#include <shoal/common.h>

#include <stdint.h>

#define SL_HDR_DIGITS_MIN  1
#define SL_HDR_DIGITS_MAX  5
#define SL_HDR_HIGHEST_MAX ((int64_t)1 << 60)

typedef struct sl_hdr sl_hdr;

/*
 * Creates an empty histogram for values 0..highest (2 .. SL_HDR_HIGHEST_MAX) with `digits`
 * (SL_HDR_DIGITS_MIN..SL_HDR_DIGITS_MAX) significant decimal digits of precision. Returns 0
 * and *out (returns owned, free with sl_hdr_free), SL_EINVAL for a bound out of range,
 * SL_ENOMEM. Memory: about 8 * 2^M * (log2(highest) - M + 2) / 2 bytes (3 digits up to one
 * hour in microseconds: 184 KiB).
 */
SL_API int sl_hdr_new(int64_t highest, int digits, sl_hdr **out) SL_MUST_CHECK;

/* Frees `h`; NULL is a no-op. */
SL_API void sl_hdr_free(sl_hdr *h);

/*
 * Records `n` occurrences of `value`. A value above the histogram's highest is recorded as the
 * highest and counted as saturated (sl_hdr_saturated) and SL_ELIMIT is returned; a negative
 * value is not recorded and SL_EINVAL is returned. Returns 0 otherwise.
 */
SL_API int sl_hdr_record_n(sl_hdr *h, int64_t value, uint64_t n);

/* sl_hdr_record_n(h, value, 1). */
SL_API int sl_hdr_record(sl_hdr *h, int64_t value);

/*
 * Returns the value at `percentile` (0..100; out-of-range values are clamped): the highest value
 * of the slot where the running count first reaches ceil(percentile / 100 * count) (at least 1),
 * never above the largest value recorded. 0 for an empty histogram.
 */
SL_API int64_t sl_hdr_value_at(const sl_hdr *h, double percentile);

/* Values recorded (saturated ones included). */
SL_API uint64_t sl_hdr_count(const sl_hdr *h);

/* Exact smallest and largest values recorded (after saturation); 0 when empty. */
SL_API int64_t sl_hdr_min(const sl_hdr *h);
SL_API int64_t sl_hdr_max(const sl_hdr *h);

/* Mean of the recorded values, each taken as the middle of its slot; 0 when empty. */
SL_API double sl_hdr_mean(const sl_hdr *h);

/* Values recorded as the highest because they were above it. */
SL_API uint64_t sl_hdr_saturated(const sl_hdr *h);

/* The highest value the histogram was created for. */
SL_API int64_t sl_hdr_highest(const sl_hdr *h);

/* Width of the slot that holds `value` (1 below 2^M): values within one slot are
 * indistinguishable. `value` is clamped to 0..highest. */
SL_API int64_t sl_hdr_slot_width(const sl_hdr *h, int64_t value);

/*
 * Adds every count of `src` to `dst`. Both must have been created with the same highest and
 * digits: otherwise SL_EINVAL and `dst` is unchanged. Returns 0.
 */
SL_API int sl_hdr_merge(sl_hdr *dst, const sl_hdr *src);

/* Empties `h` (keeps its configuration and memory). */
SL_API void sl_hdr_reset(sl_hdr *h);

#endif /* SHOAL_HDR_H */
