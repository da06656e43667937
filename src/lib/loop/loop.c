/*
 * The runtime behind loop.h: worker threads, each running its own libuv
 * loop, and the main thread's loop that turns signals into drain, stop and
 * reload commands. Commands cross threads only through uv_async_t.
 */
#include <shoal/loop.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { CMD_NONE, CMD_DRAIN, CMD_STOP };

typedef struct runtime runtime;

struct sl_worker {
    runtime *rt;
    int index;
    int fd;
    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t async;
    atomic_int cmd;
    int stopped; /* worker thread: stop hook ran */
    int start_rc;
    void *slot;
};

struct runtime {
    const sl_runtime_config *cfg;
    const sl_worker_hooks *hooks;
    sl_worker *workers;
    int n;
    uv_loop_t loop; /* main thread */
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t deadline;
    uv_async_t worker_done;
    atomic_int done_count;
    int draining;
    int rc;
};

uv_loop_t *sl_worker_loop(sl_worker *w)
{
    return &w->loop;
}

int sl_worker_index(const sl_worker *w)
{
    return w->index;
}

void **sl_worker_slot(sl_worker *w)
{
    return &w->slot;
}

static void worker_stop(sl_worker *w)
{
    if (w->stopped) return;
    w->stopped = 1;
    if (w->rt->hooks->stop) w->rt->hooks->stop(w, w->rt->hooks->data);
    uv_close((uv_handle_t *)&w->async, NULL);
}

void sl_worker_drained(sl_worker *w)
{
    worker_stop(w);
}

static void worker_async(uv_async_t *a)
{
    sl_worker *w = a->data;
    int cmd = atomic_exchange(&w->cmd, CMD_NONE);
    if (cmd == CMD_DRAIN && !w->stopped) {
        if (w->rt->hooks->drain)
            w->rt->hooks->drain(w, w->rt->hooks->data);
        else
            worker_stop(w);
    } else if (cmd == CMD_STOP) {
        worker_stop(w);
    }
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void worker_main(void *arg)
{
    sl_worker *w = arg;
    runtime *rt = w->rt;
    w->start_rc = rt->hooks->start ? rt->hooks->start(w, w->fd, rt->hooks->data) : 0;
    if (w->start_rc != 0) worker_stop(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Anything a hook left open is closed so the loop can be freed. */
    uv_walk(&w->loop, walk_close, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    atomic_fetch_add(&rt->done_count, 1);
    uv_async_send(&rt->worker_done);
}

static void send_all(runtime *rt, int cmd)
{
    for (int i = 0; i < rt->n; i++) {
        atomic_store(&rt->workers[i].cmd, cmd);
        uv_async_send(&rt->workers[i].async);
    }
}

static void on_deadline(uv_timer_t *t)
{
    runtime *rt = t->data;
    send_all(rt, CMD_STOP);
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    runtime *rt = s->data;
    if (rt->draining) {
        send_all(rt, CMD_STOP); /* second signal: stop now */
        return;
    }
    rt->draining = 1;
    send_all(rt, CMD_DRAIN);
    uint32_t ms = rt->cfg->drain_timeout_ms ? rt->cfg->drain_timeout_ms : 10000;
    uv_timer_start(&rt->deadline, on_deadline, ms, 0);
}

static void on_hup(uv_signal_t *s, int signum)
{
    (void)signum;
    runtime *rt = s->data;
    if (rt->hooks->reload) rt->hooks->reload(rt->hooks->data);
}

static void on_worker_done(uv_async_t *a)
{
    runtime *rt = a->data;
    for (int i = 0; i < rt->n; i++)
        if (rt->workers[i].start_rc != 0 && rt->rc == 0) rt->rc = rt->workers[i].start_rc;
    if (rt->rc != 0 && !rt->draining) {
        rt->draining = 1;
        send_all(rt, CMD_STOP);
    }
    if (atomic_load(&rt->done_count) == rt->n) uv_walk(&rt->loop, walk_close, NULL);
}

/* A TCP socket bound to host:port with SO_REUSEADDR, and SO_REUSEPORT when `share`. */
static int bind_socket(const char *host, int port, bool share, int *fd_out, int *bound_port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (port < 0 || port > 65535) return SL_EINVAL;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        len = sizeof *in4;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        len = sizeof *in6;
    } else {
        return SL_EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (share && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
        bind(fd, (struct sockaddr *)&ss, len) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    *bound_port = ntohs(ss.ss_family == AF_INET ? in4->sin_port : in6->sin6_port);
    *fd_out = fd;
    return 0;
}

int sl_listen_socket(const char *host, int port, int *fd_out, int *bound_port)
{
    return bind_socket(host, port, true, fd_out, bound_port);
}

/* Refuses a port something already listens on. The workers' sockets share their port through
 * SO_REUSEPORT, which any process of the same user may join: without this check a second
 * service configured with a port in use started without an error and took a share of the
 * first one's connections. A socket without SO_REUSEPORT cannot bind next to a listening one
 * (EADDRINUSE); SO_REUSEADDR keeps a previous run's TIME_WAIT connections from counting. */
static int check_port_free(const char *host, int port)
{
    int fd, bound;
    if (port == 0) return 0; /* the kernel picks an unused one */
    int rc = bind_socket(host, port, false, &fd, &bound);
    if (rc == 0) close(fd);
    return rc;
}

int sl_runtime_run(const sl_runtime_config *cfg, const sl_worker_hooks *hooks)
{
    runtime rt;
    memset(&rt, 0, sizeof rt);
    rt.cfg = cfg;
    rt.hooks = hooks;
    rt.n = cfg->workers > 0 ? cfg->workers : 1;
    rt.workers = calloc((size_t)rt.n, sizeof(sl_worker));
    if (!rt.workers) return SL_ENOMEM;
    const char *host = cfg->host ? cfg->host : "127.0.0.1";
    int port = cfg->port, rc = check_port_free(host, port), nfds = 0;
    for (int i = 0; i < rt.n && rc == 0; i++) {
        rc = sl_listen_socket(host, port, &rt.workers[i].fd, &port);
        if (rc != 0) break;
        nfds++;
    }
    if (rc != 0) {
        for (int i = 0; i < nfds; i++)
            close(rt.workers[i].fd);
        free(rt.workers);
        return rc;
    }
    if (hooks->bound) hooks->bound(port, hooks->data);

    uv_loop_init(&rt.loop);
    uv_signal_init(&rt.loop, &rt.sigterm);
    uv_signal_init(&rt.loop, &rt.sigint);
    uv_signal_init(&rt.loop, &rt.sighup);
    rt.sigterm.data = rt.sigint.data = rt.sighup.data = &rt;
    uv_signal_start(&rt.sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&rt.sigint, on_stop_signal, SIGINT);
    uv_signal_start(&rt.sighup, on_hup, SIGHUP);
    uv_timer_init(&rt.loop, &rt.deadline);
    rt.deadline.data = &rt;
    uv_async_init(&rt.loop, &rt.worker_done, on_worker_done);
    rt.worker_done.data = &rt;
    signal(SIGPIPE, SIG_IGN);

    for (int i = 0; i < rt.n; i++) {
        sl_worker *w = &rt.workers[i];
        w->rt = &rt;
        w->index = i;
        uv_loop_init(&w->loop);
        uv_async_init(&w->loop, &w->async, worker_async);
        w->async.data = w;
        uv_thread_create(&w->thread, worker_main, w);
    }
    uv_run(&rt.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < rt.n; i++) {
        uv_thread_join(&rt.workers[i].thread);
        uv_loop_close(&rt.workers[i].loop);
    }
    uv_loop_close(&rt.loop);
    rc = rt.rc;
    free(rt.workers);
    return rc;
}
