/*
 * Rate limiter: a token bucket per key (client id, route, or both joined by
 * the caller), as the gateway uses it (docs/gateway.md): `rate` requests per
 * `period_ms` sustained, `burst` at once. A refused request gets the wait
 * until it would be admitted, for the 429's Retry-After.
 *
 * Memory is bounded: at most `max_keys` keys live in a fixed-capacity hash
 * table; a new key beyond that evicts the least recently used one. So that
 * eviction can never hand a busy key a fresh bucket (which would let a
 * client exceed its rate by cycling other keys through the table), the
 * evicted bucket's state is folded into a fixed array of "ghost" entries
 * indexed by hash, and a key entering the table starts from its ghost. A
 * ghost shared by two keys can only make the limiter stricter, never looser.
 *
 * The bucket is kept in GCRA form (one "theoretical arrival time" per key),
 * which is exactly a token bucket of capacity `burst` refilled at
 * rate/period: over any interval of length T a key is admitted at most
 * burst + rate * T / period times.
 *
 * Keys are hashed with SipHash (libsodium crypto_shorthash) under a key drawn
 * from the caller's sl_rand, so clients cannot aim their keys at one chain.
 *
 * Pure module (src/lib/resilience): no I/O, time from an injected sl_clock.
 * NOT thread-safe: one limiter per worker thread (loop).
 */
#ifndef SHOAL_RATELIMIT_H
#define SHOAL_RATELIMIT_H

#include <shoal/clock.h>
#include <shoal/common.h>
#include <shoal/rand.h>

#include <stdint.h>

/* Limits enforced by sl_ratelimit_new(). */
#define SL_RATELIMIT_MAX_KEYS      (1u << 22)
#define SL_RATELIMIT_MAX_KEY_LEN   1024u
#define SL_RATELIMIT_MAX_PERIOD_MS INT64_C(86400000) /* one day */

typedef struct sl_ratelimit_config {
    uint32_t rate;        /* requests per period; default 10; >= 1 */
    int64_t period_ms;    /* default 1000; 1 .. one day */
    uint32_t burst;       /* bucket capacity; default 20; >= 1 */
    uint32_t max_keys;    /* table capacity; default 10000 */
    uint32_t key_max_len; /* longest key in bytes; default 128 */
} sl_ratelimit_config;

/* Fills `cfg` with the defaults above. */
SL_API void sl_ratelimit_config_default(sl_ratelimit_config *cfg);

typedef struct sl_ratelimit sl_ratelimit;

typedef struct sl_ratelimit_stats {
    uint32_t keys;      /* keys in the table now (<= max_keys) */
    uint64_t admitted;  /* requests admitted */
    uint64_t refused;   /* requests refused */
    uint64_t evictions; /* keys evicted to make room */
} sl_ratelimit_stats;

/*
 * Creates a limiter; everything it will ever use is allocated here. `cfg` is
 * copied; `clock` is borrowed and must outlive it; `rand` is borrowed for this
 * call only (it seeds the hash key). Returns 0 and stores a limiter owned by
 * the caller (free with sl_ratelimit_free) in *out; SL_ECONFIG for a zero or
 * out-of-range field (or a burst so large that burst * period / rate
 * exceeds about 73 years); SL_ENOMEM; SL_EIO when libsodium cannot initialise.
 */
SL_API int sl_ratelimit_new(const sl_ratelimit_config *cfg, const sl_clock *clock, sl_rand *rand,
                            sl_ratelimit **out) SL_MUST_CHECK;

/* Frees `rl` (NULL is fine). */
SL_API void sl_ratelimit_free(sl_ratelimit *rl);

/*
 * Takes one token for `key` (`len` bytes, borrowed; copied into the table).
 * Returns 0 when admitted; SL_ELIMIT when refused, with the ms until the
 * request would be admitted (rounded up, >= 1) in *retry_after_ms (may be
 * NULL); SL_EINVAL for an empty key or one longer than key_max_len (nothing
 * is recorded).
 */
SL_API int sl_ratelimit_take(sl_ratelimit *rl, const char *key, size_t len,
                             int64_t *retry_after_ms) SL_MUST_CHECK;

/* Copies the counters into *out. */
SL_API void sl_ratelimit_stats_get(const sl_ratelimit *rl, sl_ratelimit_stats *out);

#endif /* SHOAL_RATELIMIT_H */
