/*
 * UUIDv7 generation, formatting and parsing (RFC 9562). The generator keeps
 * the last timestamp and the 74 bits of rand_a/rand_b; ids within one
 * millisecond add a random increment to those bits (RFC 9562 §6.2, method 2),
 * which keeps them strictly increasing while still unguessable. Also the
 * id-text rule for ids that need not be UUIDs.
 */
#include <shoal/id.h>
#include <shoal/rand.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#define RAND_LO_BITS 62
#define RAND_LO_MOD  ((uint64_t)1 << RAND_LO_BITS)
#define RAND_HI_MAX  0xfffu
#define TS_MASK      (((uint64_t)1 << 48) - 1)

static int default_random(void *data, void *buf, size_t len)
{
    (void)data;
    return sl_rand_secure_bytes(buf, len);
}

void sl_idgen_init(sl_idgen *gen, const sl_clock *clock, sl_idgen_random_fn random,
                   void *random_data)
{
    SL_ASSERT(gen != NULL && clock != NULL);
    memset(gen, 0, sizeof *gen);
    gen->_clock = clock;
    gen->_random = random ? random : default_random;
    gen->_random_data = random_data;
    gen->_pool_pos = SL_IDGEN_POOL_BYTES; /* empty: filled on first use */
}

/* Takes `n` (<= 8) pooled random bytes as a big-endian integer; refills the pool when short. */
static int take_random(sl_idgen *gen, size_t n, uint64_t *out)
{
    SL_ASSERT(n <= 8);
    if (gen->_pool_pos + n > SL_IDGEN_POOL_BYTES) {
        int rc = gen->_random(gen->_random_data, gen->_pool, SL_IDGEN_POOL_BYTES);
        if (rc != 0) return rc;
        gen->_pool_pos = 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | gen->_pool[gen->_pool_pos + i];
    gen->_pool_pos += n;
    *out = v;
    return 0;
}

/* Fresh random bits for a new millisecond. The top bit of rand_a starts at 0
 * so that roughly 2^73 increments fit before the field overflows. */
static int fresh_random(sl_idgen *gen)
{
    uint64_t hi, lo;
    int rc = take_random(gen, 2, &hi);
    if (rc == 0) rc = take_random(gen, 8, &lo);
    if (rc != 0) return rc;
    gen->_rand_hi = hi & 0x7ffu;
    gen->_rand_lo = lo & (RAND_LO_MOD - 1);
    return 0;
}

static uint64_t ts_of(int64_t unix_ms)
{
    return unix_ms < 0 ? 0 : ((uint64_t)unix_ms & TS_MASK);
}

/*
 * The one UUIDv7 generator behind every entry point: the next id of `gen` at
 * the millisecond `ms`. A later millisecond starts fresh random bits; the
 * generator's last millisecond increments them. An earlier one keeps the last
 * timestamp when `hold_order` (a clock that stepped back) and otherwise starts
 * fresh at `ms` (a timestamp the caller chose).
 */
static int next_id(sl_idgen *gen, uint64_t ms, bool hold_order, uint8_t out[16])
{
    SL_ASSERT(ms <= TS_MASK);
    int rc;
    if (!gen->_have_last || ms > gen->_last_ms || (ms < gen->_last_ms && !hold_order)) {
        rc = fresh_random(gen);
        if (rc != 0) return rc;
    } else {
        /* Same millisecond, or the clock went back: keep the last timestamp and
         * add a random increment in [1, 2^32] (RFC 9562 §6.2 method 2). Guarded
         * by test_monotonic_frozen_clock and test_clock_backwards. */
        uint64_t inc;
        rc = take_random(gen, 4, &inc);
        if (rc != 0) return rc;
        ms = gen->_last_ms;
        uint64_t hi = gen->_rand_hi, lo = gen->_rand_lo + inc + 1;
        if (lo >= RAND_LO_MOD) {
            lo -= RAND_LO_MOD;
            hi++;
        }
        if (hi > RAND_HI_MAX) {
            /* The 74 bits are exhausted: borrow the next millisecond (§6.2 allows it). */
            ms = (ms + 1) & TS_MASK;
            rc = fresh_random(gen);
            if (rc != 0) return rc;
        } else {
            gen->_rand_hi = hi;
            gen->_rand_lo = lo;
        }
    }
    gen->_last_ms = ms;
    gen->_have_last = 1;

    for (int i = 0; i < 6; i++)
        out[i] = (uint8_t)(ms >> (40 - 8 * i));
    out[6] = (uint8_t)(0x70 | ((gen->_rand_hi >> 8) & 0x0f)); /* version 7 */
    out[7] = (uint8_t)gen->_rand_hi;
    out[8] = (uint8_t)(0x80 | ((gen->_rand_lo >> 56) & 0x3f)); /* variant 10 */
    for (int i = 0; i < 7; i++)
        out[9 + i] = (uint8_t)(gen->_rand_lo >> (48 - 8 * i));
    return 0;
}

int sl_uuid7_new_bytes(sl_idgen *gen, uint8_t out[16])
{
    SL_ASSERT(gen != NULL && gen->_clock != NULL);
    return next_id(gen, ts_of(sl_clock_wall_ms(gen->_clock)), true, out);
}

int sl_uuid7_new(sl_idgen *gen, char out[SL_UUID_STR_MAX])
{
    uint8_t b[16];
    int rc = sl_uuid7_new_bytes(gen, b);
    if (rc != 0) return rc;
    sl_uuid_format(b, out);
    return 0;
}

/* sl_uuid7_at's generator: one per thread, started again in a forked child (fork bumps the
 * generation) so that a child never repeats the random bits its parent has yet to use. */
static atomic_uint fork_gen;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void after_fork(void)
{
    atomic_fetch_add(&fork_gen, 1);
}
static void watch_forks(void)
{
    (void)pthread_atfork(NULL, NULL, after_fork);
}
static _Thread_local struct {
    sl_idgen gen;
    unsigned fork_gen;
    bool ready;
} thread_gen;

int sl_uuid7_at(int64_t unix_ms, char out[SL_UUID_STR_MAX])
{
    pthread_once(&fork_once, watch_forks);
    unsigned fg = atomic_load(&fork_gen);
    if (!thread_gen.ready || thread_gen.fork_gen != fg) {
        sl_idgen_init(&thread_gen.gen, sl_clock_system(), NULL, NULL);
        thread_gen.fork_gen = fg;
        thread_gen.ready = true;
    }
    uint8_t b[16];
    int rc = next_id(&thread_gen.gen, ts_of(unix_ms), false, b);
    if (rc != 0) return rc;
    sl_uuid_format(b, out);
    return 0;
}

void sl_uuid_format(const uint8_t uuid[16], char out[SL_UUID_STR_MAX])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hex[uuid[i] >> 4];
        out[o++] = hex[uuid[i] & 0x0f];
    }
    out[o] = '\0';
    SL_ASSERT(o == SL_UUID_STR_LEN);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int sl_uuid_parse(const char *s, size_t len, uint8_t out[16])
{
    if (s == NULL || len != SL_UUID_STR_LEN) return SL_EPARSE;
    uint8_t b[16];
    size_t i = 0;
    for (int k = 0; k < 16; k++) {
        if (k == 4 || k == 6 || k == 8 || k == 10) {
            if (s[i] != '-') return SL_EPARSE;
            i++;
        }
        int h = hex_value(s[i]), l = hex_value(s[i + 1]);
        if (h < 0 || l < 0) return SL_EPARSE;
        b[k] = (uint8_t)(h << 4 | l);
        i += 2;
    }
    memcpy(out, b, 16);
    return 0;
}

int sl_uuid7_is_valid(const char *s, size_t len)
{
    uint8_t b[16];
    if (sl_uuid_parse(s, len, b) != 0) return 0;
    return (b[6] >> 4) == 7 && (b[8] & 0xc0) == 0x80;
}

int sl_id_text_valid(const char *s, size_t len, size_t max)
{
    if (s == NULL || len == 0 || len > max) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.' || c == ':';
        if (!ok) return 0;
    }
    return 1;
}

uint64_t sl_uuid7_timestamp_ms(const uint8_t uuid[16])
{
    uint64_t ms = 0;
    for (int i = 0; i < 6; i++)
        ms = (ms << 8) | uuid[i];
    return ms;
}
