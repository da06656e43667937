/*
 * Authentication primitives for libshoal: base64url, Ed25519 signing keys and
 * key sets (with JWKS, RFC 7517 / RFC 8037), JSON Web Tokens signed with
 * EdDSA only (RFC 7515 / RFC 7519), and Argon2id password hashing with an
 * asynchronous wrapper on the libuv threadpool.
 *
 * The user service issues tokens (sl_jwt_sign) and hashes passwords; the
 * gateway verifies tokens (sl_jwt_verify) against a key set it loads from a
 * JWKS document, and maps every rejection reason to 401.
 *
 * Crypto comes from OpenSSL 3 (Ed25519, SHA-256) and libsodium (Argon2id,
 * constant-time comparison, wiping). No globals, no logging: the module never
 * prints anything, least of all a secret.
 */
#ifndef SHOAL_AUTH_H
#define SHOAL_AUTH_H

#include <shoal/clock.h>
#include <shoal/common.h>
#include <shoal/json.h>

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* ---- base64url (RFC 4648 §5, no padding) -------------------------------------------------- */

/* Characters needed to encode `n` bytes without padding (NUL not included). */
#define SL_B64URL_ENCODED_LEN(n) ((((size_t)(n)) / 3) * 4 + ((((size_t)(n)) % 3) * 4 + 2) / 3)
/* Upper bound on the bytes decoded from `n` characters. */
#define SL_B64URL_DECODED_MAX(n) ((((size_t)(n)) / 4) * 3 + (((size_t)(n)) % 4) * 3 / 4)

/*
 * Encodes `len` bytes of `src` as unpadded base64url into `out` (capacity `cap`), followed
 * by a NUL. Stores the length without the NUL in *out_len (may be NULL).
 * Returns 0, or SL_ELIMIT when `cap` < SL_B64URL_ENCODED_LEN(len) + 1 (nothing is written).
 * Borrows everything; thread-safe.
 */
SL_API int sl_b64url_encode(const void *src, size_t len, char *out, size_t cap,
                            size_t *out_len) SL_MUST_CHECK;

/*
 * Decodes `len` characters of unpadded base64url into `out` (capacity `cap`), storing the
 * byte count in *out_len. Strict: '=' padding, characters outside [A-Za-z0-9-_], a length
 * of 1 modulo 4, and non-zero unused trailing bits (non-canonical encodings) are all
 * rejected, so each byte string has exactly one accepted encoding.
 * Returns 0; SL_EPARSE for malformed input; SL_ELIMIT when the result does not fit in `cap`.
 * On failure `out` may hold garbage. Borrows everything; thread-safe.
 */
SL_API int sl_b64url_decode(const char *src, size_t len, void *out, size_t cap,
                            size_t *out_len) SL_MUST_CHECK;

/* ---- Ed25519 keys ------------------------------------------------------------------------ */

#define SL_AUTH_PUBLIC_KEY_BYTES 32
#define SL_AUTH_SEED_BYTES       32
#define SL_AUTH_SIGNATURE_BYTES  64
/* Longest key id accepted from a JWKS or a token header. Our own kids are 43 characters. */
#define SL_AUTH_KID_MAX 64
/* Largest PEM file sl_auth_key_load_pem() reads. */
#define SL_AUTH_PEM_MAX_BYTES 16384

/*
 * An Ed25519 key: a private key (can sign and verify) or a public key only (can verify).
 * Each key has a key id: the RFC 7638 JWK thumbprint (base64url of SHA-256 over
 * {"crv":"Ed25519","kty":"OKP","x":"<public key>"}), or the `kid` a JWKS gave it.
 * Immutable after creation: sharing one key between threads for signing and verifying is
 * safe; freeing it is not while another thread uses it.
 */
typedef struct sl_auth_key sl_auth_key;

/* Generates a new private key from the OpenSSL CSPRNG. Returns 0 and a key in *out (returns
 * owned: free with sl_auth_key_free()), SL_ENOMEM, or SL_EIO when OpenSSL fails. */
SL_API int sl_auth_key_generate(sl_auth_key **out) SL_MUST_CHECK;

/* Builds a private key from a 32-byte RFC 8032 seed (borrowed; the caller wipes it). Meant for
 * tests and known-answer vectors. Returns 0 and *out (returns owned: free with
 * sl_auth_key_free()), SL_ENOMEM or SL_EIO. */
SL_API int sl_auth_key_from_seed(const uint8_t seed[SL_AUTH_SEED_BYTES],
                                 sl_auth_key **out) SL_MUST_CHECK;

/* Builds a public-only key from 32 raw bytes with the thumbprint as kid (or `kid`, when not
 * NULL: at most SL_AUTH_KID_MAX bytes, else SL_EINVAL). Returns 0 and *out (returns owned:
 * free with sl_auth_key_free()), SL_EINVAL for a point OpenSSL refuses, SL_ENOMEM. */
SL_API int sl_auth_key_from_public(const uint8_t pub[SL_AUTH_PUBLIC_KEY_BYTES], const char *kid,
                                   sl_auth_key **out) SL_MUST_CHECK;

/*
 * Loads an Ed25519 private key from a PEM file (PKCS#8, "BEGIN PRIVATE KEY"), at most
 * SL_AUTH_PEM_MAX_BYTES. Encrypted PEM is refused (no passphrase prompt ever happens).
 * Returns 0 and *out (returns owned: free with sl_auth_key_free()); a negated errno when the
 * file cannot be opened or read; SL_ELIMIT when it is too large; SL_EPARSE when it holds no
 * private key; SL_EINVAL when the key is not Ed25519. Blocking file I/O: not on a loop thread
 * that serves requests (call it at start-up).
 */
SL_API int sl_auth_key_load_pem(const char *path, sl_auth_key **out) SL_MUST_CHECK;

/*
 * Saves the private key `key` (borrowed) as PKCS#8 PEM at `path`, mode 0600, atomically: the
 * PEM goes to a temporary file in the same directory (created 0600, written, fsync'd) that is
 * then renamed over `path`, so readers see the old file or the new one, never a partial one.
 * Returns 0; SL_EINVAL for a public-only key; a negated errno on I/O failure (the temporary
 * file is removed); SL_EIO when OpenSSL fails. Blocking file I/O.
 */
SL_API int sl_auth_key_save_pem(const sl_auth_key *key, const char *path) SL_MUST_CHECK;

/* Frees `key` (NULL is fine); the private key material is wiped by OpenSSL. */
SL_API void sl_auth_key_free(sl_auth_key *key);

/* The raw 32-byte public key, valid while `key` lives. */
SL_API const uint8_t *sl_auth_key_public(const sl_auth_key *key);

/* The key id (NUL-terminated), valid while `key` lives. */
SL_API const char *sl_auth_key_kid(const sl_auth_key *key);

/* True when `key` holds a private key (can sign). */
SL_API bool sl_auth_key_has_private(const sl_auth_key *key);

/* ---- Key sets and JWKS -------------------------------------------------------------------- */

#define SL_KEYSET_MAX         16
#define SL_JWKS_MAX_BYTES     65536
#define SL_JWKS_MAX_KEY_ITEMS 16 /* entries of "keys", counted before any is ignored */

/*
 * A set of public keys looked up by kid, for verification and rotation: publish the new key
 * next to the old one, switch the signer, remove the old key once its tokens have expired.
 * At most SL_KEYSET_MAX keys. Not thread-safe for mutation; concurrent lookups and
 * sl_jwt_verify() calls on a set nobody mutates are safe. To rotate on a running gateway,
 * build a new set and swap the pointer the workers use (the owner's job).
 */
typedef struct sl_keyset sl_keyset;

/* Returns 0 and an empty set in *out (returns owned: free with sl_keyset_free()), or
 * SL_ENOMEM. */
SL_API int sl_keyset_new(sl_keyset **out) SL_MUST_CHECK;

/* Frees `ks` and its keys (NULL is fine). */
SL_API void sl_keyset_free(sl_keyset *ks);

/*
 * Adds the public part of `key` (borrowed; the set keeps its own copy, never the private key)
 * under the key's kid. Returns 0; SL_EEXIST when the kid is already present; SL_ELIMIT when
 * the set holds SL_KEYSET_MAX keys; SL_ENOMEM / SL_EIO.
 */
SL_API int sl_keyset_add(sl_keyset *ks, const sl_auth_key *key) SL_MUST_CHECK;

/* Removes the key with id `kid`. Returns 0 or SL_ENOTFOUND. */
SL_API int sl_keyset_remove(sl_keyset *ks, const char *kid);

/* Number of keys in the set. */
SL_API size_t sl_keyset_count(const sl_keyset *ks);

/* The key with id `kid` (`kid_len` bytes, not NUL-terminated), or NULL. Borrowed: valid until
 * the key is removed or the set freed. */
SL_API const sl_auth_key *sl_keyset_find(const sl_keyset *ks, const char *kid, size_t kid_len);

/*
 * Serialises the set as a JWKS document:
 *   {"keys":[{"kty":"OKP","crv":"Ed25519","x":"…","kid":"…","alg":"EdDSA","use":"sig"},…]}
 * in insertion order. Returns 0 and a NUL-terminated string in *out with its length in
 * *out_len (may be NULL) (returns owned: free with free()), or SL_ENOMEM.
 */
SL_API int sl_jwks_dump(const sl_keyset *ks, char **out, size_t *out_len) SL_MUST_CHECK;

/*
 * Parses a JWKS document of `len` bytes (at most SL_JWKS_MAX_BYTES) into a new key set.
 * Keys that are not for us are ignored: "kty" other than "OKP", "crv" other than "Ed25519",
 * "use" present and not "sig", "alg" present and not "EdDSA". An Ed25519 key that is malformed
 * rejects the whole document, so a gateway keeps its previous set rather than half a new one:
 * "x" missing or not 32 bytes of canonical base64url, "d" present (a private key published by
 * mistake), "kid" not a string or longer than SL_AUTH_KID_MAX, a duplicate kid. A key without
 * "kid" gets its thumbprint.
 *
 * On failure the reason goes to `errs` (may be NULL) with the field path ("keys[2].x").
 * Returns 0 and *out (returns owned: free with sl_keyset_free()); SL_ELIMIT when the input
 * is too large or "keys" has more than SL_JWKS_MAX_KEY_ITEMS entries; SL_EPARSE for
 * malformed JSON; SL_EINVAL for a malformed document or key; SL_ENOMEM. Thread-safe.
 */
SL_API int sl_jwks_parse(const char *buf, size_t len, sl_keyset **out,
                         sl_json_errors *errs) SL_MUST_CHECK;

/* ---- JSON Web Tokens (EdDSA only) ---------------------------------------------------------- */

#define SL_JWT_MAX_BYTES          8192 /* longest token issued or accepted */
#define SL_JWT_DEFAULT_LEEWAY_S   30
#define SL_JWT_MAX_LEEWAY_S       300
#define SL_JWT_HEADER_MAX_BYTES   1024               /* decoded header */
#define SL_JWT_MAX_NUMERIC_DATE_S ((int64_t)1 << 40) /* larger exp/iat/nbf are malformed claims */

/*
 * Every reason a token is rejected; the gateway answers 401 for all of them and logs the name.
 * One table so sl_jwt_reason_name() cannot drift.
 */
#define SL_JWT_REASON_MAP(X)                                                                       \
    X(OK, "ok")                       /* valid */                                                  \
    X(MALFORMED, "malformed")         /* shape, size, base64url, JSON, crit */                     \
    X(BAD_ALG, "bad_alg")             /* alg is not exactly "EdDSA" (none, HS256...) */            \
    X(UNKNOWN_KID, "unknown_kid")     /* kid missing or not in the key set */                      \
    X(BAD_SIGNATURE, "bad_signature") /* EVP_DigestVerify != 1 */                                  \
    X(EXPIRED, "expired")             /* now >= exp + leeway */                                    \
    X(NOT_YET_VALID, "not_yet_valid") /* iat or nbf later than now + leeway */                     \
    X(BAD_ISSUER, "bad_issuer")       /* iss differs from the expected issuer */                   \
    X(BAD_CLAIMS, "bad_claims")       /* exp missing, sub empty, a claim of the wrong type */

typedef enum sl_jwt_reason {
#define SL_JWT_REASON_ENUM_(name, text) SL_JWT_##name,
    SL_JWT_REASON_MAP(SL_JWT_REASON_ENUM_)
#undef SL_JWT_REASON_ENUM_
} sl_jwt_reason;

/* Returns the short name of `r` ("expired"), static storage; "unknown" outside the table. */
SL_API const char *sl_jwt_reason_name(sl_jwt_reason r);

/*
 * Claims to sign. Times are NumericDate seconds since the epoch. Strings are borrowed for the
 * call. `extra` (may be NULL; borrowed) is an object whose members are added to the payload;
 * it may not contain a registered claim we set ("sub", "role", "iss", "iat", "exp", "nbf").
 */
typedef struct sl_jwt_claims {
    const char *sub;  /* required, non-empty */
    const char *role; /* NULL: omitted */
    const char *iss;  /* NULL: omitted */
    int64_t iat;
    int64_t exp; /* must be > iat */
    json_t *extra;
} sl_jwt_claims;

/*
 * Signs `claims` with the private key `key` (borrowed) as a compact JWS with header
 * {"alg":"EdDSA","typ":"JWT","kid":"<kid of key>"}. Ed25519 is deterministic: the same key
 * and claims always give the same token.
 * Returns 0 and a NUL-terminated token in *token, its length in *token_len (may be NULL)
 * (returns owned: free with free()); SL_EINVAL for a public-only key or invalid claims;
 * SL_ELIMIT when the token would exceed SL_JWT_MAX_BYTES; SL_ENOMEM; SL_EIO. Thread-safe.
 */
SL_API int sl_jwt_sign(const sl_auth_key *key, const sl_jwt_claims *claims, char **token,
                       size_t *token_len) SL_MUST_CHECK;

/*
 * Lower level: signs `payload` (`payload_len` bytes, any content) under the protected header
 * `header_json` (`header_len` bytes, used verbatim) and returns "b64url(header).b64url(payload)
 * .b64url(signature)". For known-answer tests and JWS uses other than JWT; it checks nothing
 * about the header. Same returns and ownership as sl_jwt_sign().
 */
SL_API int sl_jws_sign(const sl_auth_key *key, const char *header_json, size_t header_len,
                       const void *payload, size_t payload_len, char **token,
                       size_t *token_len) SL_MUST_CHECK;

/*
 * Signatures already verified, so that a client's token, sent with each of its requests, costs
 * one Ed25519 verification rather than one per request. An entry is the SHA-256 of the
 * verifying key's public bytes and the whole token: a hit means these exact bytes passed
 * EVP_DigestVerify under this exact key, so only the signature check is skipped; parsing, the
 * kid lookup (a key no longer in the set is still refused) and every claim (exp, nbf, iss...)
 * are checked on every call. Fixed size, direct-mapped (a newer entry replaces an older one).
 * Not thread-safe: one per thread.
 */
typedef struct sl_jwt_sig_cache sl_jwt_sig_cache;

/* Creates a cache of `entries` (rounded up to a power of two, 1 .. 1048576) digests of 32
 * bytes. Returns 0 with *out (returns owned: free with sl_jwt_sig_cache_free), SL_EINVAL,
 * SL_ENOMEM. */
SL_API int sl_jwt_sig_cache_new(size_t entries, sl_jwt_sig_cache **out) SL_MUST_CHECK;
SL_API void sl_jwt_sig_cache_free(sl_jwt_sig_cache *c);
/* Verifications the cache saved so far. */
SL_API uint64_t sl_jwt_sig_cache_hits(const sl_jwt_sig_cache *c);

/* Verification options. Initialise with sl_jwt_verify_opts_init(), then override. */
typedef struct sl_jwt_verify_opts {
    const sl_clock *clock; /* wall clock for exp/iat/nbf; required */
    const char *issuer;    /* expected "iss"; NULL: not checked (but must be a string if present) */
    int64_t leeway_s;      /* clock skew allowed, [0, SL_JWT_MAX_LEEWAY_S] */
    size_t max_bytes;      /* longest token, at most SL_JWT_MAX_BYTES */
    sl_jwt_sig_cache *sig_cache; /* NULL (default): every call verifies the signature */
} sl_jwt_verify_opts;

/* Sets the defaults: `clock`, no issuer, SL_JWT_DEFAULT_LEEWAY_S, SL_JWT_MAX_BYTES. */
SL_API void sl_jwt_verify_opts_init(sl_jwt_verify_opts *opts, const sl_clock *clock);

/* What a valid token says. Release with sl_jwt_verified_deinit(). */
typedef struct sl_jwt_verified {
    json_t *claims;   /* the whole payload (owned by this struct) */
    const char *sub;  /* non-empty; borrowed from `claims` */
    const char *role; /* NULL when absent; borrowed from `claims` */
    const char *iss;  /* NULL when absent; borrowed from `claims` */
    int64_t iat;      /* 0 when absent */
    int64_t exp;
    char kid[SL_AUTH_KID_MAX + 1]; /* the key that signed it */
} sl_jwt_verified;

/*
 * Verifies the compact JWS `token` (`len` bytes, not necessarily NUL-terminated) against the
 * key set `ks` (borrowed), in this order, stopping at the first failure:
 *   1. shape: at most opts->max_bytes, three base64url parts, header and payload non-empty,
 *      header at most SL_JWT_HEADER_MAX_BYTES decoded                         → MALFORMED
 *   2. header: a JSON object without duplicate keys                          → MALFORMED
 *   3. "alg" exactly "EdDSA", checked before anything else in the header and before any
 *      cryptography                                                          → BAD_ALG
 *   4. no "crit"; "typ" absent or "JWT" (any case)                             → MALFORMED
 *   5. "kid" a string naming a key of `ks` (a missing kid counts as unknown)  → UNKNOWN_KID
 *   6. signature exactly 64 bytes (so "alg":"none" with an empty one is BAD_ALG at 3)
 *                                                                             → MALFORMED
 *   7. EVP_DigestVerify(...) == 1 over the first two parts as received        → BAD_SIGNATURE
 *   8. payload a JSON object                                                  → MALFORMED
 *   9. claims: "exp" an integer (reals are refused), "iat"/"nbf" integers when present, all
 *      in [0, SL_JWT_MAX_NUMERIC_DATE_S]; "sub" a non-empty string; "role"/"iss" strings
 *      when present                                                           → BAD_CLAIMS
 *  10. now >= exp + leeway                                                    → EXPIRED
 *  11. iat or nbf > now + leeway                                              → NOT_YET_VALID
 *  12. opts->issuer set and "iss" absent or different                         → BAD_ISSUER
 * Returns 0 with *reason = SL_JWT_OK and *out filled (release with sl_jwt_verified_deinit());
 * SL_EINVAL when the token is rejected (*reason says why; *out is zeroed); SL_ENOMEM
 * (*reason = SL_JWT_MALFORMED, but the caller should answer 5xx, not 401); SL_ECONFIG when
 * `opts` is invalid (no clock, leeway or max_bytes out of range). `opts` is required.
 * Thread-safe as long as nobody mutates `ks` meanwhile.
 */
SL_API int sl_jwt_verify(const sl_keyset *ks, const char *token, size_t len,
                         const sl_jwt_verify_opts *opts, sl_jwt_verified *out,
                         sl_jwt_reason *reason) SL_MUST_CHECK;

/* Releases what sl_jwt_verify() stored in `v` and zeroes it. Safe on a zeroed struct. */
SL_API void sl_jwt_verified_deinit(sl_jwt_verified *v);

/* ---- Passwords (Argon2id via libsodium) ---------------------------------------------------- */

#define SL_PASSWORD_HASH_MAX  128  /* crypto_pwhash_STRBYTES, NUL included */
#define SL_PASSWORD_MAX_BYTES 1024 /* longer passwords are refused (SL_ELIMIT) */

/*
 * Argon2id cost. Measured on a 2-vCPU machine:
 *   sl_password_cost_interactive(): t=2, 64 MiB, ~140 ms per hash or verify per core, 64 MiB
 *     of memory per operation in flight. The default for real accounts.
 *   sl_password_cost_min(): t=1, 8 KiB (libsodium's minimum), well under 1 ms. For tests only:
 *     offers no protection against offline guessing.
 */
typedef struct sl_password_cost {
    unsigned long long opslimit;
    size_t memlimit;
} sl_password_cost;

SL_API sl_password_cost sl_password_cost_interactive(void);
SL_API sl_password_cost sl_password_cost_min(void);

/*
 * Hashes the password `pw` (`len` bytes, borrowed, any bytes) with Argon2id and a random salt
 * at `cost` (NULL: interactive) into `out` (capacity SL_PASSWORD_HASH_MAX), as the encoded
 * "$argon2id$v=19$m=…,t=…,p=1$salt$hash" string, NUL-terminated.
 * Returns 0; SL_ELIMIT when `len` > SL_PASSWORD_MAX_BYTES; SL_EINVAL for a cost outside
 * libsodium's bounds; SL_ENOMEM when the memory for the hash cannot be had. CPU- and
 * memory-heavy: never on a loop thread (see sl_password_hash_async()). Thread-safe.
 */
SL_API int sl_password_hash(const char *pw, size_t len, const sl_password_cost *cost,
                            char out[SL_PASSWORD_HASH_MAX]) SL_MUST_CHECK;

/*
 * Checks the password `pw` (`len` bytes) against the stored hash `stored` (NUL-terminated),
 * in constant time (libsodium). Returns 0 ONLY when the password matches; SL_EINVAL when it
 * does not; SL_EPARSE when `stored` is not an Argon2 hash string; SL_ELIMIT when `len` >
 * SL_PASSWORD_MAX_BYTES. Same cost as hashing; never on a loop thread. Thread-safe.
 */
SL_API int sl_password_verify(const char *stored, const char *pw, size_t len) SL_MUST_CHECK;

/*
 * Returns 1 when `stored` was made with other parameters than `cost` (NULL: interactive) or
 * with Argon2i, so it should be replaced by a fresh hash after the next successful login;
 * 0 when it is current; SL_EPARSE when it is not an Argon2 hash string. Cheap. Thread-safe.
 */
SL_API int sl_password_needs_rehash(const char *stored, const sl_password_cost *cost);

/*
 * A bound on the password operations in flight for one caller (each holds up to 64 MiB and a
 * threadpool thread). Caller's storage; loop thread only; it must outlive its operations.
 */
typedef struct sl_password_limiter {
    uint32_t in_flight;
    uint32_t max;
} sl_password_limiter;

/* Initialises `lim` to allow `max` (>= 1) operations in flight. */
SL_API void sl_password_limiter_init(sl_password_limiter *lim, uint32_t max);

/* Result of sl_password_hash_async(): `status` as sl_password_hash() returns it, or
 * SL_ECANCELED when the work was cancelled before it ran; `hash` is the encoded hash when
 * status is 0 (else NULL), valid only during the callback. */
typedef void (*sl_password_hash_cb)(int status, const char *hash, void *data);

/* Result of sl_password_verify_async(): `status` as sl_password_verify() returns it (0 only
 * on a match), or SL_ECANCELED when the work was cancelled before it ran. */
typedef void (*sl_password_verify_cb)(int status, void *data);

/*
 * Runs sl_password_hash() on the libuv threadpool of `loop` (uv_queue_work). The password is
 * copied (the caller may wipe its buffer on return); the copy is wiped with sodium_memzero
 * when the work is done. `cost` is copied (NULL: interactive).
 * Returns 0, and `cb` later runs on the loop thread, never synchronously; SL_EBUSY when `lim`
 * already has `max` operations in flight (answer 503 at once); SL_ELIMIT for an over-long
 * password; SL_EINVAL for a cost outside libsodium's bounds; SL_ENOMEM; or a libuv error.
 * On failure `cb` is never called. Loop thread only. Each operation occupies one threadpool
 * thread (UV_THREADPOOL_SIZE, 4 by default, shared with file and DNS work): keep the
 * limiter's `max` below it.
 */
SL_API int sl_password_hash_async(uv_loop_t *loop, sl_password_limiter *lim, const char *pw,
                                  size_t len, const sl_password_cost *cost, sl_password_hash_cb cb,
                                  void *data) SL_MUST_CHECK;

/*
 * Runs sl_password_verify() on the threadpool, like sl_password_hash_async(): `stored` and
 * `pw` are copied (the password copy is wiped afterwards). Same returns, plus SL_EPARSE at once
 * when `stored` is not an Argon2 hash string; `cb` runs on the loop thread, never
 * synchronously. Loop thread only.
 */
SL_API int sl_password_verify_async(uv_loop_t *loop, sl_password_limiter *lim, const char *stored,
                                    const char *pw, size_t len, sl_password_verify_cb cb,
                                    void *data) SL_MUST_CHECK;

#endif /* SHOAL_AUTH_H */
