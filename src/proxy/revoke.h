/*
 * Revoked sessions, as one worker knows them (revoke.c): the user service's
 * feed GET <auth.revocation.path>?after=N polled every poll_ms through the
 * JWKS cluster with a `service` identity, kept in a hash set of session ids
 * each until its access tokens have expired (until_ms, wall clock). The
 * authentication stage refuses a token whose `sid` is in the set. A revoked
 * session's tokens stop working within about one poll interval plus one
 * round trip. Loop thread only.
 */
#ifndef SHOAL_PROXY_REVOKE_H
#define SHOAL_PROXY_REVOKE_H

#include "generation.h"

#include <shoal/log.h>

#include <stddef.h>
#include <stdint.h>

#define PX_REVOKE_MAX 200000 /* sessions kept at most (bounded memory); see revoke.c */
#define PX_SID_MAX    64

typedef struct px_revoke_entry {
    char sid[PX_SID_MAX + 1]; /* "" = free slot */
    int64_t until_ms;
} px_revoke_entry;

typedef struct px_revoke {
    px_revoke_entry *slots; /* open addressing, `cap` a power of two; NULL until needed */
    size_t cap, n;
    int64_t after; /* the feed's cursor */
    int open, polling, synced;
    px_wgen *poll_wg;
    uv_timer_t timer;
    uv_loop_t *loop;
    sl_logger *log;
    px_wgen *const *cur;
    uint64_t polls, failures, dropped;
} px_revoke;

/* Starts polling (when the configuration names a feed). `cur` as for px_jwks_init. */
void px_revoke_init(px_revoke *rv, uv_loop_t *loop, sl_logger *log, px_wgen *const *cur);
/* Stops the timer and frees the set. */
void px_revoke_close(px_revoke *rv);
/* Returns 1 when session `sid` (`len` bytes) is revoked and may still have live tokens. */
int px_revoke_has(const px_revoke *rv, const char *sid, size_t len, int64_t now_ms);

/* ---- the set, pure (exposed for tests) ----------------------------------------------------- */

/* Adds `sid` until `until_ms` (a later one extends it). Drops expired entries when it grows.
 * Returns 0, SL_EINVAL for a bad sid, SL_ELIMIT when PX_REVOKE_MAX live entries are held, or
 * SL_ENOMEM. */
int px_revoke_add(px_revoke *rv, const char *sid, int64_t until_ms, int64_t now_ms);

#endif
