/*
 * Who is calling: identity passed from the gateway (or a calling service) to
 * a service. The gateway verifies the user's JWT and forwards
 *   x-user-id: <id>            x-user-role: <customer|admin|service>
 *   x-shoal-identity: v1.<unix ms>.<hex HMAC-SHA256>
 * where the HMAC covers version, time, user id, role, method and path under a
 * key shared by the gateway and the services (`identity.key_file`, 32 random
 * bytes written by `shoal up`; never logged). A service trusts x-user-* only
 * when the proof verifies and is at most `max_age_ms` old, so a client that
 * reaches a service directly cannot claim to be anyone. Pure: no I/O besides
 * reading the key file.
 */
#ifndef SHOAL_IDENTITY_H
#define SHOAL_IDENTITY_H

#include <shoal/common.h>
#include <shoal/http_types.h>

#include <stdint.h>

#define SL_IDENTITY_KEY_BYTES 32
#define SL_IDENTITY_ID_MAX    64  /* bytes of a user id */
#define SL_IDENTITY_ROLE_MAX  16  /* bytes of a role */
#define SL_IDENTITY_PROOF_MAX 100 /* bytes of the x-shoal-identity value, NUL included */

typedef struct sl_identity_key {
    uint8_t k[SL_IDENTITY_KEY_BYTES];
} sl_identity_key;

typedef struct sl_identity {
    char user_id[SL_IDENTITY_ID_MAX + 1];
    char role[SL_IDENTITY_ROLE_MAX + 1];
} sl_identity;

/*
 * Loads a key file: 64 hex characters (optionally followed by a newline).
 * Returns 0, SL_EIO when it cannot be read (message in err, 256 bytes), or
 * SL_EINVAL when its content is not a key.
 */
SL_API int sl_identity_key_load(const char *path, sl_identity_key *key, char *err) SL_MUST_CHECK;

/*
 * Creates a new random key file at `path` with mode 0600 unless one exists
 * (then it is loaded). Returns 0 or an error as sl_identity_key_load.
 */
SL_API int sl_identity_key_ensure(const char *path, sl_identity_key *key, char *err) SL_MUST_CHECK;

/*
 * Writes the x-shoal-identity value for (user_id, role) on a request
 * `method` `path` at `now_ms` into `out` (SL_IDENTITY_PROOF_MAX bytes).
 * Returns 0, or SL_EINVAL for an id or role that is empty, too long or not
 * visible ASCII.
 */
SL_API int sl_identity_sign(const sl_identity_key *key, const char *user_id, const char *role,
                            sl_http_method method, sl_slice path, int64_t now_ms,
                            char out[SL_IDENTITY_PROOF_MAX]) SL_MUST_CHECK;

#define SL_IDENTITY_NHEADERS 3 /* x-user-id, x-user-role, x-shoal-identity */

/*
 * The one builder of the signed identity headers, for the gateway and for a
 * service calling another: signs (user_id, role, method, path, now_ms) into
 * `proof` (as sl_identity_sign) and fills out[0..SL_IDENTITY_NHEADERS) with
 * x-user-id, x-user-role and x-shoal-identity. The headers borrow user_id,
 * role and proof, which must outlive them. Returns 0, or SL_EINVAL (as
 * sl_identity_sign) with `out` untouched.
 */
SL_API int sl_identity_headers(const sl_identity_key *key, const char *user_id, const char *role,
                               sl_http_method method, sl_slice path, int64_t now_ms,
                               char proof[SL_IDENTITY_PROOF_MAX],
                               sl_http_header out[SL_IDENTITY_NHEADERS]) SL_MUST_CHECK;

/*
 * Verifies the identity headers among `headers`: returns 0 and fills *out
 * when x-user-id, x-user-role and a valid proof no older than `max_age_ms`
 * (and not more than that in the future) are present; SL_ENOTFOUND when no
 * identity headers are present at all; SL_EINVAL for a malformed, forged or
 * stale proof (constant-time comparison).
 */
SL_API int sl_identity_verify(const sl_identity_key *key, const sl_http_header *headers,
                              size_t nheaders, sl_http_method method, sl_slice path, int64_t now_ms,
                              int64_t max_age_ms, sl_identity *out) SL_MUST_CHECK;

#endif /* SHOAL_IDENTITY_H */
