/*
 * The multi-service host (service.h, sl_service_host_main): several service
 * definitions in one process. Each keeps what it has when alone — its own
 * settings (its environment is the process's shared SHOAL_* variables plus its
 * own SHOAL_HOSTED_<NAME>__* ones, renamed), port, database and migrations,
 * logger (`service` field), metrics registry (/metrics on its port), tracer,
 * identity keys and replay record, bus connection, outbox relay and consumers.
 * The process has one runtime: every worker loop hosts every service (one
 * listening socket per service per worker, SO_REUSEPORT), so whatever a
 * service does for a request stays on the loop thread that received it.
 * Signals belong to the runtime: SIGTERM drains every service's servers on
 * every worker, then stops them in the reverse order of their start.
 */
#include "service_int.h"

#include <shoal/bus.h>
#include <shoal/http.h>
#include <shoal/log.h>
#include <shoal/loop.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

extern char **environ;

#define HOSTED_PREFIX "SHOAL_HOSTED_"

typedef struct shop_host shop_host;

/* One worker's share of the host (worker thread only). */
typedef struct host_worker {
    shop_host *h;
    sl_worker *rw;
    int pending;   /* servers still draining */
    int attempted; /* services whose start hook ran (they are owed a stop) */
} host_worker;

struct shop_host {
    sl_service *svcs;
    size_t n;
    int workers;
    int *fds; /* fds[k * workers + i]: service k's socket for worker i (k >= 1); -1 once taken */
    host_worker *hw;
};

/* ---- environment ---------------------------------------------------------------------------- */

/* "order" → "ORDER" into out (cap bytes). */
static void upper_name(const char *name, char *out, size_t cap)
{
    size_t i = 0;
    for (; name[i] && i + 1 < cap; i++)
        out[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    out[i] = '\0';
}

/* The length of the variable's name (up to '='). */
static size_t var_name_len(const char *v)
{
    const char *eq = strchr(v, '=');
    return eq ? (size_t)(eq - v) : strlen(v);
}

/*
 * The environment service `name` reads its settings from: its own
 * SHOAL_HOSTED_<NAME>__X=v as SHOAL_X=v, then every other variable but the
 * SHOAL_HOSTED_* ones and those its own replace. Returns an owned
 * NULL-terminated array (free with free_env), or NULL without memory.
 */
static char **service_env(const char *name, char **env)
{
    char up[64], prefix[96];
    upper_name(name, up, sizeof up);
    snprintf(prefix, sizeof prefix, HOSTED_PREFIX "%s__", up);
    size_t plen = strlen(prefix), n = 0;
    for (char **e = env; *e; e++)
        n++;
    char **out = calloc(n + 1, sizeof *out);
    if (!out) return NULL;
    size_t k = 0;
    for (char **e = env; *e; e++) {
        if (strncmp(*e, prefix, plen) != 0) continue;
        size_t len = strlen(*e) - plen + 6;
        char *v = malloc(len + 1);
        if (!v) goto fail;
        snprintf(v, len + 1, "SHOAL_%s", *e + plen);
        out[k++] = v;
    }
    size_t own = k;
    for (char **e = env; *e; e++) {
        if (strncmp(*e, HOSTED_PREFIX, strlen(HOSTED_PREFIX)) == 0) continue;
        size_t nl = var_name_len(*e);
        int replaced = 0;
        for (size_t i = 0; i < own && !replaced; i++)
            replaced = var_name_len(out[i]) == nl && strncmp(out[i], *e, nl) == 0;
        if (replaced) continue;
        if (!(out[k++] = strdup(*e))) goto fail;
    }
    return out;
fail:
    for (size_t i = 0; i < k; i++)
        free(out[i]);
    free(out);
    return NULL;
}

static void free_env(char **env)
{
    if (!env) return;
    for (char **e = env; *e; e++)
        free(*e);
    free(env);
}

/* ---- sockets -------------------------------------------------------------------------------- */

/* 0 when nothing listens on host:port (port 0 always passes), else a negated errno. The
 * workers' sockets share their port through SO_REUSEPORT, which another process could join. */
static int port_free(const char *host, int port)
{
    if (port == 0) return 0;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    socklen_t len;
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
    int one = 1, rc = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* Binds every worker's socket of the services after the first (the runtime binds the first's). */
static int bind_others(shop_host *h)
{
    for (size_t k = 1; k < h->n; k++) {
        sl_service *svc = &h->svcs[k];
        int port = svc->port, rc = port_free(svc->host, port);
        for (int i = 0; i < h->workers && rc == 0; i++)
            rc = sl_listen_socket(svc->host, port, &h->fds[k * (size_t)h->workers + (size_t)i],
                                  &port);
        if (rc != 0) {
            SL_LOG_ERROR(svc->log, NULL, "cannot listen", SL_LOG_STR("host", svc->host),
                         SL_LOG_INT("port", svc->port), SL_LOG_STR("error", sl_strerror(rc)));
            return rc;
        }
        sl__service_on_bound(port, svc);
    }
    return 0;
}

static void close_fds(shop_host *h)
{
    for (size_t i = 0; h->fds && i < h->n * (size_t)h->workers; i++)
        if (h->fds[i] >= 0) {
            close(h->fds[i]);
            h->fds[i] = -1;
        }
}

/* ---- the runtime's hooks, each over every service ------------------------------------------- */

static int host_start(sl_worker *rw, int fd, void *data)
{
    shop_host *h = data;
    int idx = sl_worker_index(rw);
    host_worker *hw = &h->hw[idx];
    hw->h = h;
    hw->rw = rw;
    int rc = 0;
    for (size_t k = 0; k < h->n && rc == 0; k++) {
        int sfd = fd;
        if (k > 0) {
            sfd = h->fds[k * (size_t)h->workers + (size_t)idx];
            h->fds[k * (size_t)h->workers + (size_t)idx] = -1;
        }
        hw->attempted++;
        rc = sl__service_worker_start(rw, sfd, &h->svcs[k]);
    }
    /* A failed start leaves the sockets of the services after it to close here. */
    for (size_t k = 1; k < h->n; k++) {
        int *f = &h->fds[k * (size_t)h->workers + (size_t)idx];
        if (*f >= 0) close(*f);
        *f = -1;
    }
    return rc;
}

static void one_drained(void *data)
{
    host_worker *hw = data;
    if (--hw->pending == 0) sl_worker_drained(hw->rw);
}

static void host_drain(sl_worker *rw, void *data)
{
    shop_host *h = data;
    host_worker *hw = &h->hw[sl_worker_index(rw)];
    hw->rw = rw;
    hw->pending = 1; /* held until every server was asked, in case one finishes at once */
    for (size_t k = 0; k < h->n; k++) {
        sl_serve_worker *sw = &h->svcs[k].w[sl_worker_index(rw)].sw;
        if (!sw->http) continue;
        hw->pending++;
        sl_http_server_drain(sw->http, one_drained, hw);
    }
    one_drained(hw);
}

static void host_stop(sl_worker *rw, void *data)
{
    shop_host *h = data;
    host_worker *hw = &h->hw[sl_worker_index(rw)];
    for (int k = hw->attempted - 1; k >= 0; k--)
        sl__service_worker_stop(rw, &h->svcs[k]);
    hw->attempted = 0;
}

static void host_reload(void *data)
{
    shop_host *h = data;
    for (size_t k = 0; k < h->n; k++)
        sl__service_on_reload(&h->svcs[k]);
}

static void host_bound(int port, void *data)
{
    shop_host *h = data;
    sl__service_on_bound(port, &h->svcs[0]);
}

/* ---- main ----------------------------------------------------------------------------------- */

static void host_usage(FILE *to)
{
    fprintf(to, "usage: shoal-shop [--services NAME,NAME...] [--workers N]\n"
                "  Hosts the named services (default: all) in one process, each on its own\n"
                "  port with its own database. Each reads the shared SHOAL_<SECTION>__<KEY>\n"
                "  variables and its own SHOAL_HOSTED_<NAME>__<SECTION>__<KEY> ones, which\n"
                "  win. See docs/architecture.md (Hosting) and docs/configuration.md.\n");
}

/* Picks the definitions named in `list` ("a,b,c") out of `known`, in the list's order, into
 * out (cap entries). Returns how many, or a negative SL_E code after printing why. */
static int pick(const char *list, const sl_service_def *const *known, size_t nknown,
                const sl_service_def **out, size_t cap)
{
    size_t n = 0;
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const sl_service_def *d = NULL;
        for (size_t i = 0; i < nknown && !d; i++)
            if (strlen(known[i]->name) == len && strncmp(known[i]->name, p, len) == 0) d = known[i];
        if (!d) {
            fprintf(stderr, "shoal-shop: --services: no service named '%.*s'\n", (int)len, p);
            return SL_EINVAL;
        }
        for (size_t i = 0; i < n; i++)
            if (out[i] == d) {
                fprintf(stderr, "shoal-shop: --services: '%s' is listed twice\n", d->name);
                return SL_EINVAL;
            }
        if (n == cap) return SL_ELIMIT;
        out[n++] = d;
        p = end ? end + 1 : p + len;
    }
    if (n == 0) {
        fprintf(stderr, "shoal-shop: --services: must name at least one service\n");
        return SL_EINVAL;
    }
    return (int)n;
}

int sl_service_host_main(const sl_service_def *const *known, size_t nknown, int argc, char **argv)
{
    const char *list = NULL;
    int workers = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            host_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--services") == 0 && i + 1 < argc) {
            list = argv[++i];
        } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*argv[i] == '\0' || *end != '\0' || v < 1 || v > 256) {
                fprintf(stderr, "shoal-shop: --workers: must be an integer 1..256\n");
                return 2;
            }
            workers = (int)v;
        } else {
            fprintf(stderr, "shoal-shop: unknown argument '%s'\n", argv[i]);
            host_usage(stderr);
            return 2;
        }
    }
    const sl_service_def *defs[32];
    int n = 0;
    if (list) {
        n = pick(list, known, nknown, defs, SL_ARRAY_LEN(defs));
        if (n < 0) return 2;
    } else {
        for (size_t i = 0; i < nknown && i < SL_ARRAY_LEN(defs); i++)
            defs[n++] = known[i];
    }
    shop_host h;
    memset(&h, 0, sizeof h);
    sl_bus_broker *broker = NULL; /* the hosted services' in-process bus, when theirs */
    int status = 2;
    h.svcs = calloc((size_t)n, sizeof *h.svcs);
    if (!h.svcs) return 1;
    /* Settings first (all of them, so that a configuration error stops before anything ran).
     * Hosted services take no flags of their own: argv[0] only. */
    char *argv0[] = {argv[0], NULL};
    int maxw = 1;
    for (int k = 0; k < n; k++) {
        char **env = service_env(defs[k]->name, environ);
        int rc = env ? sl__service_load(&h.svcs[k], defs[k], 1, argv0, env) : SL_ENOMEM;
        free_env(env);
        h.n = (size_t)k + 1;
        if (rc != 0) goto out;
        if (h.svcs[k].workers > maxw) maxw = h.svcs[k].workers;
        for (int j = 0; j < k; j++)
            if (h.svcs[j].port != 0 && h.svcs[j].port == h.svcs[k].port) {
                fprintf(stderr, "shoal-shop: %s and %s are both configured on port %d\n",
                        h.svcs[j].def->name, h.svcs[k].def->name, h.svcs[k].port);
                goto out;
            }
    }
    h.workers = workers ? workers : maxw;
    status = 1;
    for (size_t k = 0; k < h.n; k++)
        h.svcs[k].workers = h.workers; /* one runtime: every worker hosts every service */
    for (size_t k = 0; k < h.n; k++)
        if (sl__service_prepare(&h.svcs[k]) != 0) goto out;
    /* Services on the in-process bus share one confirming broker: a publish is acknowledged
     * (its outbox row marked published) only once every hosted consumer group settled it. */
    int inproc = 0;
    for (size_t k = 0; k < h.n; k++)
        inproc |= sl__events_share_broker(h.svcs[k].events, NULL);
    if (inproc) {
        sl_bus_broker_options bo = {.confirm = 1};
        if (sl_bus_broker_new_opts(&bo, &broker) != 0) goto out;
        for (size_t k = 0; k < h.n; k++)
            (void)sl__events_share_broker(h.svcs[k].events, broker);
        SL_LOG_INFO(h.svcs[0].log, NULL,
                    "events between the hosted services go through the "
                    "in-process bus");
    }
    h.fds = malloc(h.n * (size_t)h.workers * sizeof *h.fds);
    h.hw = calloc((size_t)h.workers, sizeof *h.hw);
    if (!h.fds || !h.hw) goto out;
    for (size_t i = 0; i < h.n * (size_t)h.workers; i++)
        h.fds[i] = -1;
    if (bind_others(&h) != 0) goto out;
    sl_service *first = &h.svcs[0];
    uint32_t drain = 0;
    for (size_t k = 0; k < h.n; k++)
        if (h.svcs[k].drain_ms > drain) drain = h.svcs[k].drain_ms;
    sl_runtime_config rc = {
        .workers = h.workers, .host = first->host, .port = first->port, .drain_timeout_ms = drain};
    sl_worker_hooks hooks = {.start = host_start,
                             .drain = host_drain,
                             .stop = host_stop,
                             .reload = host_reload,
                             .bound = host_bound,
                             .data = &h};
    int err = sl_runtime_run(&rc, &hooks);
    for (size_t k = 0; k < h.n; k++) /* the last spans leave; the tracers are still there */
        sl_otlp_exporter_stop(h.svcs[k].exporter);
    close_fds(&h);
    if (err != 0) {
        SL_LOG_ERROR(first->log, NULL, "stopped with an error",
                     SL_LOG_STR("error", sl_strerror(err)), SL_LOG_INT("port", first->port));
        goto out;
    }
    for (size_t k = 0; k < h.n; k++)
        SL_LOG_INFO(h.svcs[k].log, NULL, "stopped");
    status = 0;
out:
    close_fds(&h);
    for (size_t k = h.n; k-- > 0;) {
        if (h.svcs[k].inited && h.svcs[k].def->fini) h.svcs[k].def->fini(&h.svcs[k]);
        sl__service_free(&h.svcs[k]);
    }
    sl_bus_broker_free(broker); /* every bus using it closed with its service */
    free(h.fds);
    free(h.hw);
    free(h.svcs);
    return status;
}
