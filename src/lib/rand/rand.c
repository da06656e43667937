/*
 * xoshiro256** (public-domain algorithm by Blackman and Vigna), seeded with
 * splitmix64, plus the kernel CSPRNG for secrets.
 */
#include <shoal/rand.h>

#include <errno.h>
#include <sys/random.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sl_rand_seed(sl_rand *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

int sl_rand_seed_os(sl_rand *r)
{
    uint64_t seed;
    int rc = sl_rand_secure_bytes(&seed, sizeof seed);
    if (rc != 0) return rc;
    sl_rand_seed(r, seed);
    return 0;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sl_rand_next(sl_rand *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t sl_rand_below(sl_rand *r, uint64_t bound)
{
    /* Rejection sampling: discard the top partial range so every value is equally likely. */
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t x = sl_rand_next(r);
        if (x >= threshold) return x % bound;
    }
}

double sl_rand_unit(sl_rand *r)
{
    return (double)(sl_rand_next(r) >> 11) * 0x1.0p-53;
}

int sl_rand_secure_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
