/*
 * Who is calling: identity passed from the gateway (or a calling service) to
 * a service. The caller forwards
 *   x-user-id: <id>            x-user-role: <customer|admin|service>
 *   x-shoal-identity: v2.<caller>.<unix ms>.<nonce: 24 hex>.<hex HMAC-SHA256>
 * where the HMAC covers the caller's and the callee's names, the time, the
 * nonce, the user id, the role, the method, the full request target (path
 * and query), the Idempotency-Key and the SHA-256 of the body, under the key
 * of that caller→callee edge.
 *
 * Keys: one per edge, K = HMAC-SHA256(master, "shoal-identity-v2|" caller "|"
 * callee), derived by `shoal up` (or a test harness) from a master secret
 * only it holds. Each process gets a key file (`identity.key_file`, mode 0600)
 * with only the keys of its own edges, as caller and as callee, one line per
 * edge: "v2 <caller> <callee> <roles> <64 hex>", where <roles> is the comma
 * list of roles the caller may assert to the callee ("*": any). So a
 * compromised service can sign only for its own edges, and only the roles
 * its callees allow it: the order service cannot mint `admin` for payment.
 *
 * A callee accepts a proof when its caller has a key for this callee, the
 * MAC verifies (constant time), the time is within the window (a few
 * seconds), the role is one the caller may assert, and the nonce was not
 * seen before (sl_identity_replay), unless the request is one the HTTP
 * client may retry with the same headers and the callee absorbs anyway: an
 * idempotent method (sl_retry_method_idempotent: GET, HEAD, OPTIONS, TRACE,
 * PUT, DELETE), or one with an Idempotency-Key (bound into the MAC, so it
 * cannot be changed). Pure besides reading and writing
 * key files; the replay cache holds a mutex.
 */
#ifndef SHOAL_IDENTITY_H
#define SHOAL_IDENTITY_H

#include <shoal/common.h>
#include <shoal/http_types.h>

#include <stdint.h>

#define SL_IDENTITY_KEY_BYTES   32
#define SL_IDENTITY_ID_MAX      64    /* bytes of a user id */
#define SL_IDENTITY_ROLE_MAX    16    /* bytes of a role */
#define SL_IDENTITY_NAME_MAX    31    /* bytes of a caller's or callee's name: [a-z0-9_-] */
#define SL_IDENTITY_ROLES_MAX   63    /* bytes of an edge's role list */
#define SL_IDENTITY_EDGES_MAX   32    /* edges in one key file */
#define SL_IDENTITY_NONCE_BYTES 12    /* 96 random bits */
#define SL_IDENTITY_PROOF_MAX   160   /* bytes of the x-shoal-identity value, NUL included */
#define SL_IDENTITY_WINDOW_MS   10000 /* default accepted age (and clock skew) of a proof */

typedef struct sl_identity_key {
    uint8_t k[SL_IDENTITY_KEY_BYTES];
} sl_identity_key;

typedef struct sl_identity {
    char user_id[SL_IDENTITY_ID_MAX + 1];
    char role[SL_IDENTITY_ROLE_MAX + 1];
    char caller[SL_IDENTITY_NAME_MAX + 1]; /* who signed: "gateway", "order", ... */
} sl_identity;

/* One caller→callee edge and its key. */
typedef struct sl_identity_edge {
    char caller[SL_IDENTITY_NAME_MAX + 1];
    char callee[SL_IDENTITY_NAME_MAX + 1];
    char roles[SL_IDENTITY_ROLES_MAX + 1]; /* "*" or "a,b" */
    sl_identity_key key;
} sl_identity_edge;

/* The edges of one process. Plain data: zero it before use, sodium_memzero it after. */
typedef struct sl_identity_keyring {
    size_t n;
    sl_identity_edge e[SL_IDENTITY_EDGES_MAX];
} sl_identity_keyring;

/* What a proof is bound to, besides the identity and the time. Everything is borrowed. */
typedef struct sl_identity_msg {
    const char *callee; /* the service called */
    sl_http_method method;
    sl_slice target;          /* origin-form: path and query as sent */
    sl_slice idempotency_key; /* the Idempotency-Key sent, or empty */
    const void *body;
    size_t body_len;
} sl_identity_msg;

/*
 * Loads a key file of 64 hex characters (optionally followed by a newline): the master secret.
 * Returns 0, SL_EIO when it cannot be read (message in err, 256 bytes), or SL_EINVAL when its
 * content is not a key.
 */
SL_API int sl_identity_key_load(const char *path, sl_identity_key *key, char *err) SL_MUST_CHECK;

/*
 * Creates a new random key file at `path` with mode 0600 unless one exists
 * (then it is loaded). Returns 0 or an error as sl_identity_key_load.
 */
SL_API int sl_identity_key_ensure(const char *path, sl_identity_key *key, char *err) SL_MUST_CHECK;

/* 1 when `s` (`len` bytes) is a valid caller or callee name: 1..31 of [a-z0-9_-]. Pure. */
SL_API int sl_identity_name_valid(const char *s, size_t len);

/*
 * Fills *out with the edge caller→callee: its key derived from `master` and `roles` ("*" or a
 * comma list of roles). Returns 0, or SL_EINVAL for a bad name or role list. Pure.
 */
SL_API int sl_identity_edge_derive(const sl_identity_key *master, const char *caller,
                                   const char *callee, const char *roles,
                                   sl_identity_edge *out) SL_MUST_CHECK;

/*
 * Writes `n` edges to a key file at `path` (mode 0600, replacing it through a temporary file).
 * Returns 0, SL_ELIMIT for more than SL_IDENTITY_EDGES_MAX, or SL_EIO (message in err).
 */
SL_API int sl_identity_keyring_write(const char *path, const sl_identity_edge *edges, size_t n,
                                     char *err) SL_MUST_CHECK;

/*
 * Loads a key file into *ring. Returns 0, SL_EIO when it cannot be read, or SL_EINVAL for a
 * malformed line (message in err, 256 bytes; never the key).
 */
SL_API int sl_identity_keyring_load(const char *path, sl_identity_keyring *ring,
                                    char *err) SL_MUST_CHECK;

/* The edge caller→callee of `ring`, or NULL. Borrowed from ring. */
SL_API const sl_identity_edge *sl_identity_keyring_find(const sl_identity_keyring *ring,
                                                        const char *caller, size_t caller_len,
                                                        const char *callee);

/* 1 when `edge` lets its caller assert `role` (`len` bytes). Pure. */
SL_API int sl_identity_edge_allows(const sl_identity_edge *edge, const char *role, size_t len);

/*
 * Writes the x-shoal-identity value for (user_id, role) on the request `m` over `edge` at
 * `now_ms` with `nonce` into `out`. Returns 0, or SL_EINVAL for an id or role that is empty, too
 * long or not visible ASCII, or an `m->callee` that is not the edge's. Pure.
 */
SL_API int sl_identity_sign(const sl_identity_edge *edge, const char *user_id, const char *role,
                            const sl_identity_msg *m, int64_t now_ms,
                            const uint8_t nonce[SL_IDENTITY_NONCE_BYTES],
                            char out[SL_IDENTITY_PROOF_MAX]) SL_MUST_CHECK;

#define SL_IDENTITY_NHEADERS 3 /* x-user-id, x-user-role, x-shoal-identity */

/*
 * The one builder of the signed identity headers, for the gateway and for a
 * service calling another: signs as sl_identity_sign with a fresh random
 * nonce into `proof` and fills out[0..SL_IDENTITY_NHEADERS) with x-user-id,
 * x-user-role and x-shoal-identity. The headers borrow user_id, role and
 * proof, which must outlive them. Returns 0, or SL_EINVAL (as
 * sl_identity_sign) with `out` untouched.
 */
SL_API int sl_identity_headers(const sl_identity_edge *edge, const char *user_id, const char *role,
                               const sl_identity_msg *m, int64_t now_ms,
                               char proof[SL_IDENTITY_PROOF_MAX],
                               sl_http_header out[SL_IDENTITY_NHEADERS]) SL_MUST_CHECK;

/* ---- Replays ----------------------------------------------------------------------------------
 */

/*
 * The nonces seen within the window, process-wide (thread-safe), in a fixed
 * table: an entry is free again once its proof has expired. When no slot is
 * free among those a nonce may use, the check refuses (SL_ELIMIT): a proof
 * is never accepted unchecked.
 */
typedef struct sl_identity_replay sl_identity_replay;

/* Returns 0 and a cache for about `max_entries` live nonces in *out (returns owned: free with
 * sl_identity_replay_free), SL_EINVAL for 0, SL_ENOMEM. */
SL_API int sl_identity_replay_new(size_t max_entries, sl_identity_replay **out) SL_MUST_CHECK;
SL_API void sl_identity_replay_free(sl_identity_replay *c);

/*
 * Records `nonce`, live until `expires_ms`. Returns 0 when it was not live, SL_EEXIST when it
 * is (a replay), SL_ELIMIT when the table has no room for it now.
 */
SL_API int sl_identity_replay_check(sl_identity_replay *c,
                                    const uint8_t nonce[SL_IDENTITY_NONCE_BYTES],
                                    int64_t expires_ms, int64_t now_ms) SL_MUST_CHECK;

/*
 * Verifies the identity headers among `headers` of a request `m` received by
 * `m->callee` at `now_ms`. Returns 0 and fills *out when x-user-id,
 * x-user-role and a valid proof are present; SL_ENOTFOUND when no identity
 * header is present at all; SL_EINVAL for a malformed, forged (another body,
 * target, callee or key) or stale proof (older than `window_ms` or more than
 * that in the future), or a caller without a key here; SL_ECONFLICT for a
 * role the caller may not assert; SL_EEXIST for a replayed nonce and
 * SL_ELIMIT when the replay cache is full (`replay` NULL: no replay check).
 */
SL_API int sl_identity_verify(const sl_identity_keyring *ring, const sl_http_header *headers,
                              size_t nheaders, const sl_identity_msg *m, int64_t now_ms,
                              int64_t window_ms, sl_identity_replay *replay,
                              sl_identity *out) SL_MUST_CHECK;

/*
 * The mesh's local hop (docs/mesh.md). Behind a shoal-proxy sidecar a
 * service learns its caller service from the sidecar, which verified the
 * caller's certificate:
 *   x-shoal-peer-service: <the caller's identity, from its certificate>
 *   x-shoal-peer-token:   <the hop's token, 64 hex>
 * The token is a random secret shared by one service and its sidecar only,
 * in a file of mode 0600 or stricter (made like a key file, 64 hex): another
 * local user cannot read it, so cannot make a service believe a caller
 * identity by calling its loopback port. A sidecar drops both headers from
 * whatever it receives, in both directions, so the token never leaves the
 * hop.
 */
#define SL_IDENTITY_PEER_SERVICE_HEADER "x-shoal-peer-service"
#define SL_IDENTITY_PEER_TOKEN_HEADER   "x-shoal-peer-token"
#define SL_IDENTITY_PEER_MAX            63 /* bytes of a mesh identity's service name */

/*
 * Loads a hop token file (64 hex, optionally a newline). Returns 0; SL_EIO
 * when it cannot be opened (a symbolic link is not followed); SL_EINVAL when
 * it is not a regular file, others than its owner may read or write it, or
 * its content is not a token. The reason goes to `err` (256 bytes).
 */
SL_API int sl_identity_peer_token_load(const char *path, sl_identity_key *token,
                                       char *err) SL_MUST_CHECK;

/* Writes the header value of `token` (64 hex and a NUL) into `out`. */
SL_API void sl_identity_peer_token_hex(const sl_identity_key *token, char out[65]);

/*
 * The caller service named by a sidecar: 0 and the name in `out` (`cap`
 * bytes, at least SL_IDENTITY_PEER_MAX + 1) when the token header is present
 * once and equal to `token` (constant time) and the service header is present
 * once and a mesh identity name (1..63 of a-z, 0-9, '-', not starting with
 * '-'); SL_ENOTFOUND when neither header is present; SL_EINVAL otherwise (a
 * wrong or repeated token, a service header without the token or the reverse,
 * a malformed name). Pure.
 */
SL_API int sl_identity_peer_verify(const sl_identity_key *token, const sl_http_header *headers,
                                   size_t nheaders, char *out, size_t cap) SL_MUST_CHECK;

#endif /* SHOAL_IDENTITY_H */
