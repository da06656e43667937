/*
 * Bulkhead: a cap on the calls in flight to one upstream (for example
 * user 10, order 20, payment 5; docs/resilience.md), with a bounded FIFO
 * queue of callers waiting for a permit, each for at most `max_wait_ms`. When
 * the queue is full the caller fails fast (the edge answers 503 with
 * Retry-After).
 *
 * The module is pure, so waiting is the caller's business: a waiter is a
 * struct in the caller's storage (intrusive list, nothing allocated), and
 * the module calls the waiter's callback when a permit is granted or its wait
 * has expired. Nothing here owns a timer: the caller arms one timer at
 * sl_bulkhead_next_deadline() and calls sl_bulkhead_expire() when it fires.
 * A waiter can be cancelled while queued (the client gave up).
 *
 * Permit accounting: every successful sl_bulkhead_try_acquire() and every
 * grant (callback with status 0) hands out one permit, which the caller must
 * give back with exactly one sl_bulkhead_release(), whatever the call's
 * outcome. Invariant: 0 <= in_flight <= max_concurrent, and the queue is
 * non-empty only while in_flight == max_concurrent.
 *
 * Pure module (src/lib/resilience): no I/O, time from an injected sl_clock.
 * NOT thread-safe: one bulkhead per upstream per worker thread (loop).
 */
#ifndef SHOAL_BULKHEAD_H
#define SHOAL_BULKHEAD_H

#include <shoal/clock.h>
#include <shoal/common.h>

#include <stdint.h>

/* Limits enforced by sl_bulkhead_new(). */
#define SL_BULKHEAD_MAX_CONCURRENT 1000000u
#define SL_BULKHEAD_MAX_QUEUE      1000000u

typedef struct sl_bulkhead_config {
    uint32_t max_concurrent; /* permits; default 10; >= 1 */
    uint32_t max_queue;      /* waiters; default 0 (no queue: fail fast at once) */
    int64_t max_wait_ms;     /* longest wait in the queue; default 100; > 0 when max_queue > 0 */
} sl_bulkhead_config;

/* Fills `cfg` with the defaults above. */
SL_API void sl_bulkhead_config_default(sl_bulkhead_config *cfg);

typedef struct sl_bulkhead sl_bulkhead;
typedef struct sl_bulkhead_waiter sl_bulkhead_waiter;

/*
 * Waiter callback. `status` 0: a permit was granted to this waiter (release
 * it later); SL_ETIMEDOUT: max_wait_ms passed first (no permit). Runs
 * synchronously inside sl_bulkhead_release() or sl_bulkhead_expire() (never
 * inside sl_bulkhead_enqueue), on the bulkhead's thread. The waiter is no
 * longer queued when it runs, so the callback may reuse or free it, and may
 * call any sl_bulkhead_* function (a release from inside a callback is
 * granted to the next waiter by the outer loop, not by recursion).
 */
typedef void (*sl_bulkhead_cb)(sl_bulkhead_waiter *w, int status, void *data);

/* A queued caller: caller's storage, fields private; valid while queued. */
struct sl_bulkhead_waiter {
    sl_bulkhead_waiter *_prev, *_next;
    sl_bulkhead *_owner; /* non-NULL while queued */
    sl_bulkhead_cb _cb;
    void *_data;
    int64_t _deadline_ns;
};

/* Counters, monotonically increasing, and the current levels. */
typedef struct sl_bulkhead_stats {
    uint32_t in_flight; /* permits held now */
    uint32_t queued;    /* waiters now */
    uint64_t acquired;  /* permits handed out directly by try_acquire */
    uint64_t granted;   /* permits handed to waiters */
    uint64_t released;  /* permits given back */
    uint64_t rejected;  /* enqueue refused: queue full (or no queue) */
    uint64_t expired;   /* waiters failed with SL_ETIMEDOUT */
    uint64_t cancelled; /* waiters cancelled */
} sl_bulkhead_stats;

/*
 * Creates a bulkhead. `cfg` is copied; `clock` is borrowed and must outlive
 * it. Returns 0 and stores a bulkhead owned by the caller (free with
 * sl_bulkhead_free) in *out; SL_ECONFIG for max_concurrent 0, sizes above the
 * limits, or a queue with max_wait_ms <= 0; SL_ENOMEM.
 */
SL_API int sl_bulkhead_new(const sl_bulkhead_config *cfg, const sl_clock *clock,
                           sl_bulkhead **out) SL_MUST_CHECK;

/*
 * Frees `b` (NULL is fine). Waiters still queued are unlinked without their
 * callback running: the caller tears them down itself.
 */
SL_API void sl_bulkhead_free(sl_bulkhead *b);

/*
 * Takes a permit if one is free and nobody is queued ahead. Returns 0 (the
 * caller now holds a permit) or SL_EBUSY (none free; enqueue or fail fast).
 */
SL_API int sl_bulkhead_try_acquire(sl_bulkhead *b) SL_MUST_CHECK;

/*
 * Queues `w` (caller's storage, borrowed until its callback runs or it is
 * cancelled) to wait at most max_wait_ms for a permit; `cb` runs exactly
 * once later unless the waiter is cancelled. Returns 0 when queued;
 * SL_ELIMIT when the queue is full or disabled (fail fast: the callback will
 * not run); SL_EAGAIN when a permit is free (call sl_bulkhead_try_acquire);
 * SL_EINVAL when `w` is already queued.
 */
SL_API int sl_bulkhead_enqueue(sl_bulkhead *b, sl_bulkhead_waiter *w, sl_bulkhead_cb cb,
                               void *data) SL_MUST_CHECK;

/*
 * Removes a queued waiter without running its callback. Returns 0, or
 * SL_ENOTFOUND when `w` is not queued here (already granted or expired:
 * a granted waiter holds a permit that must still be released).
 */
SL_API int sl_bulkhead_cancel(sl_bulkhead *b, sl_bulkhead_waiter *w);

/*
 * Gives one permit back. Waiters whose wait has expired are failed first
 * (callback SL_ETIMEDOUT), then free permits go to the oldest waiters
 * (callback 0). Returns 0, or SL_ESTATE when no permit is held (a double
 * release: the counts are left unchanged).
 */
SL_API int sl_bulkhead_release(sl_bulkhead *b) SL_MUST_CHECK;

/* Fails every waiter whose max wait has passed (callback SL_ETIMEDOUT). Returns how many. */
SL_API uint32_t sl_bulkhead_expire(sl_bulkhead *b);

/*
 * Stores in *deadline_ns the monotonic time at which the oldest waiter
 * expires (for the caller's timer) and returns 0, or returns SL_ENOTFOUND
 * when the queue is empty.
 */
SL_API int sl_bulkhead_next_deadline(const sl_bulkhead *b, int64_t *deadline_ns);

/* Returns the permits free now (max_concurrent - in_flight). */
SL_API uint32_t sl_bulkhead_available(const sl_bulkhead *b);

/* Copies the counters and levels into *out. */
SL_API void sl_bulkhead_stats_get(const sl_bulkhead *b, sl_bulkhead_stats *out);

#endif /* SHOAL_BULKHEAD_H */
