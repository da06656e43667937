/*
 * UUIDv7 identifiers (RFC 9562 §5.7): time-ordered ids for entities and
 * events, plus validation of UUID strings that arrive from clients (ids in
 * URLs and bodies) and of the looser id texts one service keeps for another's
 * entities.
 *
 * A generator lives in the caller's storage, one per thread. It draws random
 * bytes from a pooled buffer (refilled a few KiB at a time) so one id is not
 * one system call, and it keeps ids strictly increasing within the generator
 * even when several are made in the same millisecond or the clock steps back
 * (RFC 9562 §6.2, method 2: the 74 random bits are incremented by a random
 * amount). Pure module: no I/O except reading the clock and the random source.
 */
#ifndef SHOAL_ID_H
#define SHOAL_ID_H

#include <shoal/clock.h>
#include <shoal/common.h>

#include <stddef.h>
#include <stdint.h>

/* Canonical text form: 36 characters 8-4-4-4-12, plus the NUL. */
#define SL_UUID_STR_LEN 36
#define SL_UUID_STR_MAX 37

/* Bytes of randomness fetched from the source per refill. */
#define SL_IDGEN_POOL_BYTES 4096

/*
 * Source of random bytes: fill `buf` with `len` bytes, return 0 or a negative
 * code. Tests inject a deterministic one; the default is sl_rand_secure_bytes.
 */
typedef int (*sl_idgen_random_fn)(void *data, void *buf, size_t len);

/*
 * Generator state. Caller's storage (about 4 KiB); fields are private. One per
 * thread: not thread-safe.
 */
typedef struct sl_idgen {
    const sl_clock *_clock;
    sl_idgen_random_fn _random;
    void *_random_data;
    uint64_t _last_ms; /* timestamp of the last id */
    uint64_t _rand_hi; /* last rand_a (12 bits) */
    uint64_t _rand_lo; /* last rand_b (62 bits) */
    int _have_last;
    size_t _pool_pos; /* next unused byte of _pool */
    uint8_t _pool[SL_IDGEN_POOL_BYTES];
} sl_idgen;

/*
 * Initialises `gen`. Borrows `clock` (must outlive the generator; its wall
 * time gives the timestamp). `random` may be NULL for the kernel CSPRNG
 * (sl_rand_secure_bytes); otherwise it is called with `random_data` whenever
 * the pool is empty. No random bytes are read until the first id.
 */
SL_API void sl_idgen_init(sl_idgen *gen, const sl_clock *clock, sl_idgen_random_fn random,
                          void *random_data);

/*
 * Generates a UUIDv7 and writes its canonical lowercase form plus a NUL into
 * `out` (SL_UUID_STR_MAX bytes). Ids from one generator compare strictly
 * increasing as strings and as bytes, even within one millisecond or when the
 * wall clock goes backwards (the last timestamp is then reused). Returns 0, or
 * the random source's error (out untouched). Same thread as the generator.
 */
SL_API int sl_uuid7_new(sl_idgen *gen, char out[SL_UUID_STR_MAX]) SL_MUST_CHECK;

/* Like sl_uuid7_new, but returns the 16 bytes instead of text. */
SL_API int sl_uuid7_new_bytes(sl_idgen *gen, uint8_t out[16]) SL_MUST_CHECK;

/*
 * Generates a UUIDv7 whose timestamp is `unix_ms` (the caller's time, e.g. the
 * one it stamps on the row the id names; negative counts as 0) and writes its
 * canonical text into `out` (SL_UUID_STR_MAX bytes). The same generator as
 * sl_uuid7_new, one per thread, kept by the library and started again in a
 * forked child; ids made by one thread within one millisecond are strictly
 * increasing. Returns 0 or the kernel CSPRNG's error (out untouched).
 * Thread-safe.
 */
SL_API int sl_uuid7_at(int64_t unix_ms, char out[SL_UUID_STR_MAX]) SL_MUST_CHECK;

/* Writes the canonical lowercase text of `uuid` plus a NUL into `out`. Thread-safe. */
SL_API void sl_uuid_format(const uint8_t uuid[16], char out[SL_UUID_STR_MAX]);

/*
 * Parses a UUID in canonical 8-4-4-4-12 form of exactly `len` (36) bytes, any
 * version and variant. Hex digits are accepted in either case (RFC 9562 §4:
 * input is case-insensitive); this library always emits lowercase. Returns 0
 * and fills `out`, or SL_EPARSE (out untouched) for any other length, a
 * misplaced hyphen, braces, "urn:uuid:" or a non-hex character. Thread-safe.
 */
SL_API int sl_uuid_parse(const char *s, size_t len, uint8_t out[16]) SL_MUST_CHECK;

/*
 * Returns 1 when `s` (`len` bytes) parses as above AND is a version 7, variant
 * 10xx UUID; 0 otherwise. For ids received from clients. Thread-safe.
 */
SL_API int sl_uuid7_is_valid(const char *s, size_t len);

/* Returns the 48-bit Unix millisecond timestamp of a UUIDv7. */
SL_API uint64_t sl_uuid7_timestamp_ms(const uint8_t uuid[16]);

/*
 * Returns 1 when `len` bytes of `s` form an id text: 1..`max` bytes, each an
 * ASCII letter, digit, '-', '_', '.' or ':' (a UUID is one; so are ids such as
 * "svc:order_1.x"); 0 otherwise, and for a NULL `s`. For ids that name another
 * service's entities, which need not be UUIDs. Thread-safe.
 */
SL_API int sl_id_text_valid(const char *s, size_t len, size_t max);

#endif /* SHOAL_ID_H */
