/*
 * sl_db_pool: request work on PostgreSQL without blocking the loop.
 *
 * A pool belongs to one libuv loop (one worker). It holds up to `size`
 * slots; a slot is one PostgreSQL connection (opened when first needed) and
 * one coroutine (ucontext, its own mmap'ed stack with a guard page) that runs
 * tasks one after another. sl_db_pool_run() starts a task on a free slot at
 * once, or queues it (at most `queue_max`), or refuses it (SL_EBUSY).
 *
 * While a task runs, sl_db_pool_current() names its connection. When the
 * PostgreSQL backend would block on that connection's socket it calls
 * sl__db_wait(): the coroutine starts a uv_poll_t on the socket and switches
 * back to whoever resumed it (the loop, or another coroutine); the poll
 * callback switches back in. Any other connection, and every call outside a
 * task, keeps the blocking path, so nothing changes for code that does not
 * run in a task. Everything happens on the loop's thread: no locks.
 *
 * Under AddressSanitizer every switch is announced with
 * __sanitizer_start_switch_fiber / __sanitizer_finish_switch_fiber.
 */
#include "db/db_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SL_POOL_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SL_POOL_ASAN 1
#endif

#ifdef SL_POOL_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#define POOL_STACK_DEFAULT (512u * 1024u)
#define POOL_SIZE_MAX      64u
#define POOL_QUEUE_MAX     65536u

typedef struct slot slot;

typedef struct queued {
    sl_db_task_cb fn;
    void *arg;
} queued;

struct sl_db_pool {
    uv_loop_t *loop;
    char *url;
    sl_db_options opt;
    sl_db_open_cb on_open;
    void *on_open_data;
    size_t stack_bytes;
    unsigned size;
    slot *slots;
    queued *queue; /* ring of queue_max entries */
    unsigned queue_max, qhead, qlen;
    int stopping;  /* sl_db_pool_free runs: waits fall back to blocking I/O */
    unsigned refs; /* the pool plus each poll handle not yet closed */
    sl_db_pool_stats stats;
};

struct slot {
    sl_db_pool *p;
    sl_db *db;
    uv_poll_t *poll; /* on db's socket; heap, freed by its close callback */
    int poll_fd;
    ucontext_t ctx;
    ucontext_t *back; /* the resumer's context, where a switch out returns */
    unsigned char *stack;
    size_t stack_len; /* usable bytes above the guard page */
    int started;      /* the coroutine exists (makecontext done) */
    int busy;         /* a task is running or suspended */
    int done;         /* the current task returned */
    int quit;         /* the coroutine must end (pool freed) */
    int waiting;      /* suspended on poll */
    int wait_rc;
    sl_db_task_cb fn;
    void *arg;
    int open_rc;
#ifdef SL_POOL_ASAN
    void *fake_out; /* the resumer's fake stack while the coroutine runs */
    void *fake_in;  /* the coroutine's fake stack while it is switched out */
    const void *from_bottom;
    size_t from_size;
#endif
};

static void poll_drop(slot *s);

/* The task running on this thread (innermost), or NULL. */
static __thread slot *current;

static void pool_unref(sl_db_pool *p)
{
    if (--p->refs > 0) return;
    free(p->slots);
    free(p->queue);
    free(p->url);
    free(p);
}

/* ---- switching ----------------------------------------------------------------------------- */

/* From inside the coroutine: back to its resumer; returns when resumed again. */
static void switch_out(slot *s)
{
#ifdef SL_POOL_ASAN
    __sanitizer_start_switch_fiber(&s->fake_in, s->from_bottom, s->from_size);
#endif
    swapcontext(&s->ctx, s->back);
#ifdef SL_POOL_ASAN
    __sanitizer_finish_switch_fiber(s->fake_in, &s->from_bottom, &s->from_size);
#endif
}

static void trampoline(void)
{
    slot *s = current;
#ifdef SL_POOL_ASAN
    __sanitizer_finish_switch_fiber(NULL, &s->from_bottom, &s->from_size);
#endif
    while (!s->quit) {
        s->fn(s->arg, s->db, s->open_rc);
        s->done = 1;
        switch_out(s);
    }
#ifdef SL_POOL_ASAN
    __sanitizer_start_switch_fiber(NULL, s->from_bottom, s->from_size); /* this stack ends */
#endif
    setcontext(s->back);
}

/* Opens the slot's connection if it has none (a blocking connect, once per slot); open_rc is
 * what its next task is told. */
static void slot_connect(slot *s)
{
    s->open_rc = 0;
    if (s->db) return;
    char err[256];
    s->open_rc = sl_db_open(s->p->url, &s->p->opt, &s->db, err, sizeof err);
    if (s->open_rc == 0 && s->p->on_open) s->p->on_open(s->db, s->p->on_open_data);
}

/* Runs s's coroutine until it switches out; then, while its task is done, hands it the next
 * queued task. */
static void resume(slot *s)
{
    for (;;) {
        ucontext_t here;
        slot *prev = current;
        s->back = &here;
        current = s;
#ifdef SL_POOL_ASAN
        __sanitizer_start_switch_fiber(&s->fake_out, s->stack, s->stack_len);
#endif
        swapcontext(&here, &s->ctx);
#ifdef SL_POOL_ASAN
        __sanitizer_finish_switch_fiber(s->fake_out, NULL, NULL);
#endif
        current = prev;
        if (!s->done || s->quit) return;
        /* A task must not leave a transaction open on a shared connection. */
        if (s->db && sl_db_in_tx(s->db)) sl_db_rollback(s->db);
        if (s->db && sl__db_pg_broken(s->db)) { /* lost: the next task opens a new one */
            poll_drop(s);
            sl_db_close(s->db);
            s->db = NULL;
        }
        s->done = 0;
        s->busy = 0;
        s->p->stats.active--;
        sl_db_pool *p = s->p;
        if (p->qlen == 0 || p->stopping) return;
        queued q = p->queue[p->qhead];
        p->qhead = (p->qhead + 1) % p->queue_max;
        p->qlen--;
        s->busy = 1;
        s->fn = q.fn;
        s->arg = q.arg;
        p->stats.active++;
        slot_connect(s);
    }
}

static int slot_start_coroutine(slot *s)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t len = s->p->stack_bytes + page;
    void *m =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) return SL_ENOMEM;
    if (mprotect(m, page, PROT_NONE) != 0) { /* the guard page under the stack */
        munmap(m, len);
        return SL_ENOMEM;
    }
    s->stack = (unsigned char *)m + page;
    s->stack_len = s->p->stack_bytes;
    if (getcontext(&s->ctx) != 0) {
        munmap(m, len);
        s->stack = NULL;
        return SL_ENOMEM;
    }
    s->ctx.uc_stack.ss_sp = s->stack;
    s->ctx.uc_stack.ss_size = s->stack_len;
    s->ctx.uc_link = NULL;
    makecontext(&s->ctx, trampoline, 0);
    s->started = 1;
    return 0;
}

/* ---- waiting on the socket ----------------------------------------------------------------- */

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)events;
    slot *s = h->data;
    uv_poll_stop(h);
    if (!s || !s->waiting) return;
    s->waiting = 0;
    s->wait_rc = status < 0 ? status : 0;
    resume(s);
}

static void poll_closed(uv_handle_t *h)
{
    sl_db_pool *owner = ((slot *)h->data)->p; /* slots live until the last reference goes */
    free(h);
    pool_unref(owner);
}

static void poll_drop(slot *s)
{
    if (!s->poll) return;
    uv_poll_stop(s->poll);
    uv_close((uv_handle_t *)s->poll, poll_closed);
    s->poll = NULL;
}

int sl__db_async(const sl_db *db)
{
    return current && current->db == db && !current->p->stopping;
}

int sl__db_wait(sl_db *db, int fd, int writable)
{
    slot *s = current;
    if (!s || s->db != db || s->p->stopping) return SL_ESTATE;
    if (s->poll && s->poll_fd != fd) poll_drop(s);
    if (!s->poll) {
        uv_poll_t *h = malloc(sizeof *h);
        if (!h) return SL_ENOMEM;
        int rc = uv_poll_init(s->p->loop, h, fd);
        if (rc != 0) {
            free(h);
            return rc;
        }
        h->data = s;
        s->poll = h;
        s->poll_fd = fd;
        s->p->refs++;
    }
    int rc = uv_poll_start(s->poll, UV_READABLE | (writable ? UV_WRITABLE : 0), on_poll);
    if (rc != 0) return rc;
    s->waiting = 1;
    s->p->stats.waits++;
    switch_out(s);
    if (s->waiting) { /* resumed by sl_db_pool_free: finish with blocking I/O */
        s->waiting = 0;
        uv_poll_stop(s->poll);
        return SL_ECLOSED;
    }
    return s->wait_rc;
}

/* ---- the pool ------------------------------------------------------------------------------ */

int sl_db_pool_new(uv_loop_t *loop, const sl_db_pool_config *cfg, sl_db_pool **out)
{
    SL_ASSERT(loop && cfg && cfg->url && out);
    *out = NULL;
    if (cfg->size < 1 || cfg->size > POOL_SIZE_MAX || cfg->queue_max > POOL_QUEUE_MAX)
        return SL_EINVAL;
    sl_db_pool *p = calloc(1, sizeof *p);
    if (!p) return SL_ENOMEM;
    p->refs = 1;
    p->loop = loop;
    p->size = cfg->size;
    p->queue_max = cfg->queue_max;
    p->stack_bytes = cfg->stack_bytes ? cfg->stack_bytes : POOL_STACK_DEFAULT;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    p->stack_bytes = (p->stack_bytes + page - 1) / page * page;
    if (cfg->opt) p->opt = *cfg->opt;
    p->on_open = cfg->on_open;
    p->on_open_data = cfg->on_open_data;
    p->url = strdup(cfg->url);
    p->slots = calloc(p->size, sizeof *p->slots);
    p->queue = calloc(p->queue_max ? p->queue_max : 1, sizeof *p->queue);
    if (!p->url || !p->slots || !p->queue) {
        pool_unref(p);
        return SL_ENOMEM;
    }
    for (unsigned i = 0; i < p->size; i++)
        p->slots[i].p = p;
    *out = p;
    return 0;
}

int sl_db_pool_run(sl_db_pool *p, sl_db_task_cb fn, void *arg)
{
    SL_ASSERT(p && fn);
    if (p->stopping) return SL_ECLOSED;
    slot *s = NULL;
    for (unsigned i = 0; i < p->size && !s; i++)
        if (!p->slots[i].busy && p->slots[i].db) s = &p->slots[i];
    for (unsigned i = 0; i < p->size && !s; i++) /* else one whose connection is still to open */
        if (!p->slots[i].busy) s = &p->slots[i];
    if (!s) {
        if (p->qlen >= p->queue_max) {
            p->stats.refused++;
            return SL_EBUSY;
        }
        p->queue[(p->qhead + p->qlen) % p->queue_max] = (queued){fn, arg};
        p->qlen++;
        p->stats.queued++;
        return 0;
    }
    if (!s->started) {
        int rc = slot_start_coroutine(s);
        if (rc != 0) return rc;
    }
    slot_connect(s);
    s->busy = 1;
    s->fn = fn;
    s->arg = arg;
    p->stats.active++;
    p->stats.started++;
    resume(s);
    return 0;
}

sl_db *sl_db_pool_current(const sl_db_pool *p)
{
    return p && current && current->p == p ? current->db : NULL;
}

void sl_db_pool_get_stats(const sl_db_pool *p, sl_db_pool_stats *out)
{
    *out = p->stats;
    out->waiting = p->qlen;
    out->open = 0;
    for (unsigned i = 0; i < p->size; i++)
        out->open += p->slots[i].db != NULL;
}

void sl_db_pool_free(sl_db_pool *p)
{
    if (!p) return;
    p->stopping = 1;
    /* Suspended tasks finish now with blocking I/O (their waits return SL_ECLOSED). */
    for (unsigned i = 0; i < p->size; i++) {
        slot *s = &p->slots[i];
        if (s->busy && s->waiting) resume(s);
    }
    /* Queued tasks never started: they run now, without a connection. */
    while (p->qlen > 0) {
        queued q = p->queue[p->qhead];
        p->qhead = (p->qhead + 1) % p->queue_max;
        p->qlen--;
        q.fn(q.arg, NULL, SL_ECLOSED);
    }
    for (unsigned i = 0; i < p->size; i++) {
        slot *s = &p->slots[i];
        if (s->started && !s->busy) { /* let the coroutine return so its stack can go */
            s->quit = 1;
            resume(s);
        }
        poll_drop(s);
        if (s->busy) continue; /* a task that never came back: its stack and connection stay */
        if (s->stack) {
            size_t page = (size_t)sysconf(_SC_PAGESIZE);
            munmap(s->stack - page, s->stack_len + page);
        }
        sl_db_close(s->db);
        s->db = NULL;
    }
    pool_unref(p);
}
