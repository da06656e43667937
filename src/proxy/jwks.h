/*
 * The JWKS cache of one worker (jwks.c): the user service's key set, fetched
 * through a configured cluster of the worker's current generation. Requests
 * that must wait for a fetch are parked here as px_waiter links embedded in
 * the caller's records; the cache hands them back through px_jwks_hooks, so
 * it never calls the request pipeline above it. Loop thread only.
 */
#ifndef SHOAL_PROXY_JWKS_H
#define SHOAL_PROXY_JWKS_H

#include "generation.h"

#include <shoal/auth.h>
#include <shoal/log.h>

#include <stdint.h>

/* A parked request's link; embedded in the caller's record. */
typedef struct px_waiter {
    struct px_waiter *next;
} px_waiter;

typedef struct px_jwks_hooks {
    /* The fetch a waiter waited for ended (the key set may or may not have changed). */
    void (*resume)(px_waiter *wt);
    /* The cache is closing: answer the waiter without it. */
    void (*abandon)(px_waiter *wt);
} px_jwks_hooks;

typedef struct px_jwks {
    sl_keyset *ks;               /* NULL until the first successful fetch */
    sl_jwt_sig_cache *sig_cache; /* signatures verified by this worker (NULL: out of memory) */
    int open;                    /* between px_jwks_init and px_jwks_close */
    int fetching;
    px_wgen *fetch_wg;     /* the generation the running fetch holds */
    int64_t last_fetch_ms; /* monotonic, start of the last fetch */
    int64_t last_ok_ms;
    uv_timer_t refresh;
    uv_loop_t *loop;
    sl_logger *log;
    int worker;
    px_wgen *const *cur; /* the worker's current generation (borrowed slot) */
    px_jwks_hooks hooks;
    px_waiter *waiters, *waiters_tail;
    uint32_t nwaiters;
    uint64_t fetches, failures;
    size_t ignored_logged; /* unpinned keys last reported, so the warning is logged once */
} px_jwks;

/* Starts the cache and its refresh timer. `cur` must hold a generation while the cache is open. */
void px_jwks_init(px_jwks *j, uv_loop_t *loop, sl_logger *log, int worker, px_wgen *const *cur,
                  const px_jwks_hooks *hooks);
/* Stops the timer, abandons the waiters and frees the key set. */
void px_jwks_close(px_jwks *j);
/* Starts a fetch unless one runs or the last started less than min_refetch_ms ago. */
void px_jwks_fetch(px_jwks *j);
/* Parks `wt` until the running fetch ends. Returns 0, or SL_ELIMIT when too many wait. */
int px_jwks_wait(px_jwks *j, px_waiter *wt);

#endif
