/*
 * Idempotent commands: the same Idempotency-Key from the same principal with
 * the same request gives back the first answer and has no second effect;
 * with a different request it is a mismatch (the API answers 422). Saga
 * participants use the same table for keys like "<saga id>:<step>", so a step
 * whose reply was lost can be re-sent safely.
 *
 * Usage, all inside one transaction on the service's database:
 *   sl_idem_begin()  → NEW: do the work, then sl_idem_finish() with the answer;
 *                    → REPLAY: answer with the stored status and body;
 *                    → MISMATCH: answer 422.
 *   commit.
 * A rollback forgets the key, so a failed attempt can be retried. Concurrent
 * requests with one key serialise on the key's row: the second sees the
 * first's committed answer. Table `idempotency_keys` comes from the library
 * migrations.
 */
#ifndef SHOAL_IDEMPOTENCY_H
#define SHOAL_IDEMPOTENCY_H

#include <shoal/common.h>
#include <shoal/db.h>

#include <stddef.h>
#include <stdint.h>

#define SL_IDEM_KEY_MAX  200 /* bytes of scope or key */
#define SL_IDEM_BODY_MAX (256 * 1024)

typedef enum sl_idem_state {
    SL_IDEM_NEW = 0,      /* first time: do the work */
    SL_IDEM_REPLAY = 1,   /* done before with the same request: answer as stored */
    SL_IDEM_MISMATCH = 2, /* the key was used with a different request */
} sl_idem_state;

typedef struct sl_idem_result {
    sl_idem_state state;
    int status; /* REPLAY: the stored status */
    char *body; /* REPLAY: the stored body (returns owned: free with free()), NUL-terminated */
    size_t body_len;
} sl_idem_result;

/* Returns 1 when `key` is acceptable as an Idempotency-Key: 1..200 visible ASCII bytes. */
SL_API int sl_idem_key_valid(const char *key, size_t len);

/*
 * Claims (scope, key) for a request whose canonical bytes are `req`
 * (method, path and body, as the caller defines; only its SHA-256 is
 * stored), inside the open transaction on `tx`. `scope` separates
 * principals ("user:<id>") or callers ("saga"). Fills *out. Returns 0,
 * SL_EINVAL for an invalid key or scope, SL_ESTATE outside a transaction, or
 * a database error. Borrows everything.
 */
SL_API int sl_idem_begin(sl_db *tx, const char *scope, const char *key, const void *req,
                         size_t req_len, int64_t now_ms, sl_idem_result *out) SL_MUST_CHECK;

/*
 * Stores the answer of a NEW claim, in the same transaction. `body` may be
 * NULL; it is borrowed. Returns 0, SL_ELIMIT for a body over
 * SL_IDEM_BODY_MAX, SL_ENOTFOUND when (scope, key) was not claimed, or a
 * database error.
 */
SL_API int sl_idem_finish(sl_db *tx, const char *scope, const char *key, int status,
                          const char *body, size_t body_len) SL_MUST_CHECK;

/* Frees the body of a result (NULL-safe). */
SL_API void sl_idem_result_free(sl_idem_result *r);

/* Deletes keys created before `cutoff_ms`; stores the count in *removed when not NULL. */
SL_API int sl_idem_prune(sl_db *db, int64_t cutoff_ms, int64_t *removed) SL_MUST_CHECK;

#endif /* SHOAL_IDEMPOTENCY_H */
