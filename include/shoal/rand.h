/*
 * Random numbers for libshoal. Policies (jitter, sampling) take an sl_rand
 * so tests can seed them deterministically. The generator is xoshiro256**:
 * fast and statistically good, NOT for secrets; ids and tokens that must be
 * unguessable use sl_rand_secure_bytes().
 */
#ifndef SHOAL_RAND_H
#define SHOAL_RAND_H

#include <shoal/common.h>

#include <stdint.h>

/* Generator state; caller's storage, one per thread (not thread-safe). */
typedef struct sl_rand {
    uint64_t s[4];
} sl_rand;

/* Seeds `r` deterministically from `seed` (splitmix64 expansion). */
SL_API void sl_rand_seed(sl_rand *r, uint64_t seed);

/* Seeds `r` from the operating system's entropy. Returns 0 or a negated errno. */
SL_API int sl_rand_seed_os(sl_rand *r) SL_MUST_CHECK;

/* Returns the next 64 random bits. */
SL_API uint64_t sl_rand_next(sl_rand *r);

/* Returns a uniform integer in [0, bound) without modulo bias; bound must be > 0. */
SL_API uint64_t sl_rand_below(sl_rand *r, uint64_t bound);

/* Returns a uniform double in [0, 1). */
SL_API double sl_rand_unit(sl_rand *r);

/* Fills `buf` with `len` bytes from the kernel CSPRNG (getrandom). Returns 0 or a negated errno. */
SL_API int sl_rand_secure_bytes(void *buf, size_t len) SL_MUST_CHECK;

#endif /* SHOAL_RAND_H */
