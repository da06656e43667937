/*
 * The HDR histogram (include/shoal/hdr.h). Slot index of a value v:
 *   p = floor(log2(v | (2^M - 1)))   (at least M - 1)
 *   b = p - (M - 1)                  (the power-of-two range; 0 for v < 2^M)
 *   index = b * 2^(M-1) + (v >> b)
 * so range 0 uses indices 0 .. 2^M - 1 and range b >= 1 uses
 * (b + 1) * 2^(M-1) .. (b + 2) * 2^(M-1) - 1, each slot 2^b wide.
 */
#include <shoal/hdr.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sl_hdr {
    int64_t highest;
    int digits;
    int magnitude; /* M: 2^M >= 2 * 10^digits */
    int64_t half;  /* 2^(M-1) */
    size_t nslots; /* (ranges + 1) * half */
    uint64_t total;
    uint64_t saturated;
    int64_t min, max;
    uint64_t *counts;
};

static int floor_log2(uint64_t v)
{
    SL_ASSERT(v != 0);
    return 63 - __builtin_clzll(v);
}

static size_t slot_of(const sl_hdr *h, int64_t v)
{
    uint64_t u = (uint64_t)v;
    int p = floor_log2(u | (((uint64_t)1 << h->magnitude) - 1));
    int b = p - (h->magnitude - 1);
    return (size_t)((uint64_t)b * (uint64_t)h->half + (u >> b));
}

/* Lowest value and width of slot `i`. */
static void slot_range(const sl_hdr *h, size_t i, int64_t *lowest, int64_t *width)
{
    int64_t idx = (int64_t)i;
    if (idx < 2 * h->half) {
        *lowest = idx;
        *width = 1;
        return;
    }
    int64_t b = idx / h->half - 1;
    *lowest = (idx - b * h->half) << b;
    *width = (int64_t)1 << b;
}

int sl_hdr_new(int64_t highest, int digits, sl_hdr **out)
{
    SL_ASSERT(out != NULL);
    *out = NULL;
    if (highest < 2 || highest > SL_HDR_HIGHEST_MAX || digits < SL_HDR_DIGITS_MIN ||
        digits > SL_HDR_DIGITS_MAX)
        return SL_EINVAL;
    int64_t need = 2;
    for (int i = 0; i < digits; i++)
        need *= 10;
    int m = 1;
    while (((int64_t)1 << m) < need)
        m++;
    int ranges = floor_log2((uint64_t)highest) + 2 - m;
    if (ranges < 1) ranges = 1;
    sl_hdr *h = calloc(1, sizeof *h);
    if (!h) return SL_ENOMEM;
    h->highest = highest;
    h->digits = digits;
    h->magnitude = m;
    h->half = (int64_t)1 << (m - 1);
    h->nslots = (size_t)(ranges + 1) * (size_t)h->half;
    h->counts = calloc(h->nslots, sizeof *h->counts);
    if (!h->counts) {
        free(h);
        return SL_ENOMEM;
    }
    SL_ASSERT(slot_of(h, highest) < h->nslots);
    *out = h;
    return 0;
}

void sl_hdr_free(sl_hdr *h)
{
    if (!h) return;
    free(h->counts);
    free(h);
}

int sl_hdr_record_n(sl_hdr *h, int64_t value, uint64_t n)
{
    SL_ASSERT(h != NULL);
    if (value < 0) return SL_EINVAL;
    int rc = 0;
    if (value > h->highest) {
        value = h->highest;
        h->saturated += n;
        rc = SL_ELIMIT;
    }
    if (n == 0) return rc;
    h->counts[slot_of(h, value)] += n;
    if (h->total == 0 || value < h->min) h->min = value;
    if (h->total == 0 || value > h->max) h->max = value;
    h->total += n;
    return rc;
}

int sl_hdr_record(sl_hdr *h, int64_t value)
{
    return sl_hdr_record_n(h, value, 1);
}

int64_t sl_hdr_value_at(const sl_hdr *h, double percentile)
{
    SL_ASSERT(h != NULL);
    if (h->total == 0) return 0;
    if (!(percentile > 0)) percentile = 0; /* NaN too */
    if (percentile > 100) percentile = 100;
    double want = ceil(percentile / 100.0 * (double)h->total);
    uint64_t target = want < 1 ? 1 : (uint64_t)want;
    if (target > h->total) target = h->total;
    uint64_t seen = 0;
    for (size_t i = 0; i < h->nslots; i++) {
        seen += h->counts[i];
        if (seen >= target) {
            int64_t lo, w;
            slot_range(h, i, &lo, &w);
            int64_t v = lo + w - 1;
            return v > h->max ? h->max : v;
        }
    }
    return h->max; /* not reached: the counts sum to total */
}

uint64_t sl_hdr_count(const sl_hdr *h)
{
    return h->total;
}

int64_t sl_hdr_min(const sl_hdr *h)
{
    return h->total ? h->min : 0;
}

int64_t sl_hdr_max(const sl_hdr *h)
{
    return h->total ? h->max : 0;
}

double sl_hdr_mean(const sl_hdr *h)
{
    if (h->total == 0) return 0;
    double sum = 0;
    for (size_t i = 0; i < h->nslots; i++) {
        if (!h->counts[i]) continue;
        int64_t lo, w;
        slot_range(h, i, &lo, &w);
        sum += (double)h->counts[i] * ((double)lo + (double)(w - 1) / 2.0);
    }
    return sum / (double)h->total;
}

uint64_t sl_hdr_saturated(const sl_hdr *h)
{
    return h->saturated;
}

int64_t sl_hdr_highest(const sl_hdr *h)
{
    return h->highest;
}

int64_t sl_hdr_slot_width(const sl_hdr *h, int64_t value)
{
    if (value < 0) value = 0;
    if (value > h->highest) value = h->highest;
    int64_t lo, w;
    slot_range(h, slot_of(h, value), &lo, &w);
    return w;
}

int sl_hdr_merge(sl_hdr *dst, const sl_hdr *src)
{
    SL_ASSERT(dst != NULL && src != NULL);
    if (dst->highest != src->highest || dst->digits != src->digits) return SL_EINVAL;
    if (src->total == 0) {
        dst->saturated += src->saturated;
        return 0;
    }
    for (size_t i = 0; i < dst->nslots; i++)
        dst->counts[i] += src->counts[i];
    if (dst->total == 0 || src->min < dst->min) dst->min = src->min;
    if (dst->total == 0 || src->max > dst->max) dst->max = src->max;
    dst->total += src->total;
    dst->saturated += src->saturated;
    return 0;
}

void sl_hdr_reset(sl_hdr *h)
{
    memset(h->counts, 0, h->nslots * sizeof *h->counts);
    h->total = h->saturated = 0;
    h->min = h->max = 0;
}
