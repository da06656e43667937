/*
 * Process runtime: one libuv loop per worker thread, each with its own
 * listening socket on the same port (SO_REUSEPORT, the kernel spreads
 * connections), plus the main thread's loop for signals:
 *   SIGTERM / SIGINT → graceful drain of every worker, bounded by a deadline,
 *                      then a forced stop; a second signal stops at once;
 *   SIGHUP           → the reload hook (on the main thread).
 *
 * Threading: hooks named "on the worker thread" run on that worker's loop
 * thread; everything they create belongs to that loop.
 */
#ifndef SHOAL_LOOP_H
#define SHOAL_LOOP_H

#include <shoal/common.h>

#include <stdint.h>
#include <uv.h>

typedef struct sl_worker sl_worker;

typedef struct sl_runtime_config {
    int workers;               /* >= 1 */
    const char *host;          /* listen address, numeric ("127.0.0.1", "::") */
    int port;                  /* 0 = any free port (all workers share the one chosen) */
    uint32_t drain_timeout_ms; /* graceful drain deadline (default 10 s when 0) */
} sl_runtime_config;

typedef struct sl_worker_hooks {
    /* On the worker thread, before its loop runs: set up servers on `listen_fd`
     * (takes ownership of the fd). Non-zero stops the whole process with an error. */
    int (*start)(sl_worker *w, int listen_fd, void *data);
    /* On the worker thread: begin a graceful drain; call sl_worker_drained(w) when done
     * (possibly synchronously). */
    void (*drain)(sl_worker *w, void *data);
    /* On the worker thread: close everything this worker owns (after the drain or at the
     * deadline). The loop then runs until its handles are closed. */
    void (*stop)(sl_worker *w, void *data);
    /* On the main thread, on SIGHUP. Optional. */
    void (*reload)(void *data);
    /* On the main thread once the port is bound, before workers start. Optional. */
    void (*bound)(int port, void *data);
    void *data;
} sl_worker_hooks;

/*
 * Binds the listening sockets, starts the workers and blocks until they have
 * all stopped. Returns 0 after a clean shutdown, or a negative error (bind
 * failure, a worker's start hook failing), after stopping the others. A port
 * another socket already listens on is refused with -EADDRINUSE before any
 * worker starts, even if that socket has SO_REUSEPORT too.
 */
SL_API int sl_runtime_run(const sl_runtime_config *cfg, const sl_worker_hooks *hooks);

/* The worker's loop / index (0-based) / user pointer slot. Worker thread only. */
SL_API uv_loop_t *sl_worker_loop(sl_worker *w);
SL_API int sl_worker_index(const sl_worker *w);
SL_API void **sl_worker_slot(sl_worker *w);

/* Reports that this worker's drain finished. Worker thread only. */
SL_API void sl_worker_drained(sl_worker *w);

/*
 * Creates a TCP socket bound to host:port with SO_REUSEADDR and
 * SO_REUSEPORT (not yet listening). Stores the fd and the bound port.
 * Returns 0 or a negated errno (SL_EINVAL for a non-numeric host).
 */
SL_API int sl_listen_socket(const char *host, int port, int *fd, int *bound_port) SL_MUST_CHECK;

#endif /* SHOAL_LOOP_H */
