/*
 * shoal: runs and checks the whole shop on one machine.
 *
 *   shoal up [--config FILE]      start nats-server, every service and the gateway as
 *                                 children, wait for /readyz, print where everything is,
 *                                 restart a crashed child with backoff; Ctrl-C or SIGTERM
 *                                 stops everything (gateway first, nats-server last)
 *   shoal down [--config FILE]    stop a running `shoal up`
 *   shoal status [--config FILE]  probe every process's /readyz and print a table
 *   shoal logs [NAME] [--config]  follow the logs (all, or one process)
 *   shoal audit [OPTIONS]         the cross-service audit through the gateway (audit.c)
 *   shoal chaos [OPTIONS]         a bounded round of faults, then the audit (chaos.c)
 *   shoal load [OPTIONS]          drive the shop through the gateway (load.c, docs/load.md)
 *   shoal deploy k8s [OPTIONS]    Kubernetes manifests from the topology (k8s.c,
 *                                 docs/operations.md)
 *
 * The topology (ports, data directory, backends, extra environment per
 * process) comes from the configuration (config/local.yaml); the binaries
 * get theirs through SHOAL_* environment variables, so nothing is
 * hard-coded in them. Children's stderr goes to <data_dir>/logs/<name>.log.
 */
#include "certs.h"
#include "cli.h"
#include "graph.h"
#include "k8s.h"
#include "keys.h"
#include "load.h"
#include "mesh.h"
#include "nats_mesh.h"
#include "ready.h"
#include "rollout.h"
#include "trace.h"

#include <shoal/config.h>
#include <shoal/identity.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define MAX_PROCS 32
#define MAX_ENV   160 /* a shoal-shop process carries its services' settings */

typedef enum { P_NATS, P_SERVICE, P_GATEWAY } proc_kind;

typedef struct proc {
    char name[32];
    proc_kind kind;
    char bin[PATH_MAX];
    char *argv[16];
    int argc;
    char *env[MAX_ENV];
    int nenv;
    int port;                           /* probed for readiness */
    int ports[CLI_HOSTING_MEMBERS_MAX]; /* a shoal-shop: every hosted service's, probed in turn */
    int nports, probe_at;
    int http_ready; /* 1: GET /readyz; 0: TCP accept is enough */
    int admin_port; /* a sidecar's admin listener (mesh mode); 0: none */
    char leaf[64];  /* the mesh leaf (data/mesh/certs/<leaf>.pem) it serves with; "": none */
    int leaf_hup;   /* 1: SIGHUP makes it load a renewed leaf (a sidecar, nats-server) */
    int hup_due;    /* renewed while it was starting: SIGHUP once it is ready */
    int missing;    /* binary not built */
    uv_process_t handle;
    int running;
    int ready;
    int restarts;
    uint64_t started_ms;
    uint64_t backoff_ms;
    uv_timer_t restart_timer;
    uv_timer_t probe_timer;
    int probing;
    int timers_init;
    struct supervisor *sup;
} proc;

typedef struct supervisor {
    uv_loop_t *loop;
    proc procs[MAX_PROCS];
    int n;
    char data_dir[PATH_MAX];
    char log_dir[PATH_MAX];
    int stopping;
    int announced;
    const char *ready_stock_path; /* topology's ready_stock_path: NULL, no catalogue check */
    int64_t ready_timeout_ms;     /* how long the catalogue check may hold the announcement */
    uint64_t all_ready_ms, next_check_ms;
    uv_signal_t sigint, sigterm;
    uv_timer_t kill_timer;
    int gateway_port, admin_port;
    /* `shoal up --mesh` (mesh.h): the plan, the processes of the topology in its order */
    int mesh;
    cli_mesh_svc msvc[CLI_MESH_SVCS_MAX];
    size_t nmsvc;
    int64_t leaf_lifetime_s; /* `mesh_certs.lifetime_s`: the leaves it issues and renews */
    uv_timer_t renew_timer;  /* renews the processes' leaves (renew_tick) */
} supervisor;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void say(const char *fmt, ...) SL_PRINTF(1, 2);
static void say(const char *fmt, ...)
{
    char ts[16];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%H:%M:%S", &tm);
    printf("[shoal %s] ", ts);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p) abort();
    return p;
}

static void add_env(proc *p, const char *k, const char *v)
{
    SL_ASSERT(p != NULL && k != NULL && v != NULL);
    if (p->nenv >= MAX_ENV - 1) return;
    size_t n = strlen(k) + strlen(v) + 2;
    char *e = malloc(n);
    if (!e) abort();
    snprintf(e, n, "%s=%s", k, v);
    p->env[p->nenv++] = e;
}

/* ---- configuration ---------------------------------------------------- */

typedef struct topology {
    sl_config *cfg;
    const char *data_dir;
    const char *bin_dir;
    const char *nats_url;
    int nats_port;
    int nats_external;
    int mesh;                     /* `mesh: true` in the topology, or `shoal up --mesh` */
    cli_mesh_ports mesh_ports;    /* `mesh_ports:` (mesh.h), the defaults without it */
    int mesh_breaker_recovery_ms; /* `mesh_sidecars.breaker_recovery_ms`; 0: the default */
    int64_t mesh_lifetime_s;      /* `mesh_certs.lifetime_s`: a leaf's life (renewed at 2/3) */
} topology;

/* Sets (or replaces) one environment entry of `p`. */
static void set_env(proc *p, const char *k, const char *v)
{
    size_t kl = strlen(k);
    for (int i = 0; i < p->nenv; i++)
        if (strncmp(p->env[i], k, kl) == 0 && p->env[i][kl] == '=') {
            free(p->env[i]);
            p->env[i] = p->env[--p->nenv];
        }
    add_env(p, k, v);
}

static const char *self_dir(void)
{
    static char dir[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n <= 0) return "build/bin";
    dir[n] = '\0';
    return dirname(dir);
}

static int load_topology_checked(const char *path, topology *t);

/* Loads and checks the topology; on failure nothing stays allocated (t->cfg is NULL). Returns 0,
 * or the loader's error or SL_ECONFIG, the reason printed. */
static int load_topology(const char *path, topology *t)
{
    SL_ASSERT(path != NULL && t != NULL && t->cfg == NULL);
    int rc = load_topology_checked(path, t);
    if (rc != 0) {
        sl_config_free(t->cfg);
        t->cfg = NULL;
    }
    return rc;
}

static int load_topology_checked(const char *path, topology *t)
{
    char err[SL_CONFIG_ERR_MAX];
    int rc = sl_config_load_file(path, &t->cfg, err);
    if (rc != 0) {
        fprintf(stderr, "shoal: %s\n", err);
        return rc;
    }
    static const char *const sections[] = {"nats", "gateway", "services", "telemetry", NULL};
    extern char **environ;
    int64_t port;
    int external = 0;
    bool ext = false, mesh = false;
    if (sl_config_apply_env(t->cfg, environ, sections, err) != 0 ||
        sl_config_get_string(t->cfg, "data_dir", "data", &t->data_dir, err) != 0 ||
        sl_config_get_string(t->cfg, "bin_dir", self_dir(), &t->bin_dir, err) != 0 ||
        sl_config_get_int(t->cfg, "nats.port", 4222, 1, 65535, &port, err) != 0 ||
        sl_config_get_bool(t->cfg, "nats.external", false, &ext, err) != 0 ||
        sl_config_get_bool(t->cfg, "mesh", t->mesh != 0, &mesh, err) != 0 ||
        sl_config_get_string(t->cfg, "nats.url", NULL, &t->nats_url, err) != 0) {
        fprintf(stderr, "shoal: %s\n", err);
        goto fail;
    }
    int64_t mp[3];
    const cli_mesh_ports d = CLI_MESH_PORTS_DEFAULT;
    if (sl_config_get_int(t->cfg, "mesh_ports.local_offset", d.local_offset, 1, 65535, &mp[0],
                          err) != 0 ||
        sl_config_get_int(t->cfg, "mesh_ports.outbound_base", d.outbound_base, 1, 65535, &mp[1],
                          err) != 0 ||
        sl_config_get_int(t->cfg, "mesh_ports.admin_base", d.admin_base, 1, 65535, &mp[2], err) !=
            0) {
        fprintf(stderr, "shoal: %s\n", err);
        goto fail;
    }
    t->mesh_ports = (cli_mesh_ports){(int)mp[0], (int)mp[1], (int)mp[2]};
    int64_t recovery;
    if (sl_config_get_int(t->cfg, "mesh_sidecars.breaker_recovery_ms", 0, 0, 3600000, &recovery,
                          err) != 0) {
        fprintf(stderr, "shoal: %s\n", err);
        goto fail;
    }
    t->mesh_breaker_recovery_ms = (int)recovery;
    if (sl_config_get_int(t->cfg, "mesh_certs.lifetime_s", (int64_t)CLI_CERTS_HOURS_DEFAULT * 3600,
                          CLI_CERTS_LIFETIME_MIN_S, (int64_t)CLI_CERTS_HOURS_MAX * 3600,
                          &t->mesh_lifetime_s, err) != 0) {
        fprintf(stderr, "shoal: %s\n", err);
        goto fail;
    }
    external = ext;
    t->mesh = mesh;
    t->nats_port = (int)port;
    t->nats_external = external;
    json_t *svcs = json_object_get(sl_config_root(t->cfg), "services");
    if (!json_is_array(svcs) || json_array_size(svcs) == 0) {
        char where[256];
        sl_config_locate(t->cfg, "services", where, sizeof where);
        fprintf(stderr, "shoal: %s: services: must be a non-empty list\n", where);
        goto fail;
    }
    return 0;
fail:
    /* Callers return at once on failure: the tree is released here (ASan: integration.cli). */
    sl_config_free(t->cfg);
    t->cfg = NULL;
    return SL_ECONFIG;
}

/* Empties the process's NATS bus URLs (SHOAL_BUS__URL, SHOAL_HOSTED_<NAME>__BUS__URL): its
 * services use no bus. */
static void clear_nats_urls(proc *p)
{
    for (int e = 0; e < p->nenv; e++) {
        char *eq = strchr(p->env[e], '=');
        size_t kl = eq ? (size_t)(eq - p->env[e]) : 0;
        if (kl < 8 || strncmp(eq - 8, "BUS__URL", 8) != 0 || strcmp(eq + 1, "inproc:") == 0)
            continue;
        eq[1] = '\0'; /* "KEY=" */
    }
}

/* The topology's `hosting:` groups (cli_hosting_read): each group's services leave s->procs and
 * become one shoal-shop process, in the place of the first of them, that carries their settings
 * as SHOAL_HOSTED_<NAME>__* (their SHOAL_* variables renamed) and is ready when all their ports
 * answer /readyz. A group on the in-process bus (cli_hosting_buses) gets bus.url `inproc:`; when
 * no service left uses NATS, nats-server is not started. Returns 0 or SL_ECONFIG (the reason
 * printed). */
static int apply_hosting(supervisor *s, topology *t)
{
    cli_hosting_group g[CLI_HOSTING_GROUPS_MAX];
    size_t ng = 0;
    char err[256];
    if (cli_hosting_read(sl_config_root(t->cfg), g, CLI_HOSTING_GROUPS_MAX, &ng, err, sizeof err)) {
        fprintf(stderr, "shoal: %s\n", err);
        return SL_ECONFIG;
    }
    if (ng == 0) return 0;
    /* Which services use events: the definitions the build wrote next to the binaries. */
    char defs_path[PATH_MAX + 32];
    snprintf(defs_path, sizeof defs_path, "%s/shoal-defs.json", t->bin_dir);
    json_t *defs = json_load_file(defs_path, 0, NULL);
    int need_nats = 1;
    int brc = cli_hosting_buses(sl_config_root(t->cfg), defs, g, ng, &need_nats, err, sizeof err);
    if (brc != 0) {
        json_decref(defs);
        fprintf(stderr, "shoal: %s\n", err);
        return SL_ECONFIG;
    }
    for (size_t gi = 0; gi < ng; gi++) {
        proc shop = {0}, *first = NULL;
        _Static_assert(sizeof shop.name == CLI_NAME_MAX, "process names");
        memcpy(shop.name, g[gi].name, sizeof shop.name);
        shop.kind = P_SERVICE;
        snprintf(shop.bin, sizeof shop.bin, "%s/shoal-shop", t->bin_dir);
        shop.argv[shop.argc++] = xstrdup(shop.bin);
        shop.argv[shop.argc++] = xstrdup("--services");
        char list[CLI_HOSTING_MEMBERS_MAX * CLI_NAME_MAX] = "";
        for (size_t m = 0; m < g[gi].n; m++) {
            proc *p = NULL;
            for (int i = 0; i < s->n && !p; i++)
                if (s->procs[i].kind == P_SERVICE &&
                    strcmp(s->procs[i].name, g[gi].members[m]) == 0)
                    p = &s->procs[i];
            SL_ASSERT(p != NULL); /* cli_hosting_read checked the names */
            if (p->argc > 1) {
                fprintf(stderr,
                        "shoal: hosting: %s has its own configuration file; a hosted "
                        "service takes its settings from the environment only\n",
                        p->name);
                return SL_ECONFIG;
            }
            char up[CLI_NAME_MAX];
            size_t u = 0;
            for (; p->name[u]; u++)
                up[u] =
                    (char)(p->name[u] >= 'a' && p->name[u] <= 'z' ? p->name[u] - 32 : p->name[u]);
            up[u] = '\0';
            for (int e = 0; e < p->nenv; e++) {
                char *eq = strchr(p->env[e], '=');
                char key[256];
                if (!eq) continue;
                const char *value = eq + 1;
                if (g[gi].inproc && strncmp(p->env[e], "SHOAL_BUS__URL=", 15) == 0)
                    value = "inproc:"; /* the process's own broker */
                if (strncmp(p->env[e], "SHOAL_", 6) == 0)
                    snprintf(key, sizeof key, "SHOAL_HOSTED_%s__%.*s", up,
                             (int)(eq - p->env[e] - 6), p->env[e] + 6);
                else
                    snprintf(key, sizeof key, "%.*s", (int)(eq - p->env[e]), p->env[e]);
                if (shop.nenv >= MAX_ENV - 1) {
                    fprintf(stderr, "shoal: hosting[%zu]: too many settings for one process\n", gi);
                    return SL_ECONFIG;
                }
                add_env(&shop, key, value);
                free(p->env[e]);
            }
            for (int a = 0; a < p->argc; a++)
                free(p->argv[a]);
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", m ? "," : "",
                     p->name);
            shop.ports[shop.nports++] = p->port;
            p->kind = P_NATS + P_SERVICE + P_GATEWAY; /* marked: removed below */
            if (!first) first = p;
        }
        shop.argv[shop.argc++] = xstrdup(list);
        shop.port = shop.ports[0];
        shop.http_ready = 1;
        shop.missing = access(shop.bin, X_OK) != 0;
        *first = shop;
        int k = 0;
        for (int i = 0; i < s->n; i++)
            if (s->procs[i].kind != P_NATS + P_SERVICE + P_GATEWAY) s->procs[k++] = s->procs[i];
        s->n = k;
    }
    if (!need_nats) {
        /* Every service that uses events is on an in-process bus: no nats-server, and the
         * processes left (which use no bus) get none. */
        int k = 0;
        for (int i = 0; i < s->n; i++) {
            proc *p = &s->procs[i];
            if (p->kind == P_NATS) {
                for (int a = 0; a < p->argc; a++)
                    free(p->argv[a]);
                for (int e = 0; e < p->nenv; e++)
                    free(p->env[e]);
                continue;
            }
            clear_nats_urls(p);
            s->procs[k++] = *p;
        }
        s->n = k;
    }
    json_decref(defs);
    return 0;
}

/* Fills s->procs from the topology: nats-server first (unless external), then every service in
 * order. Returns 0, SL_ECONFIG (a service without a name or port) or SL_ELIMIT (too many). */
static void upper_of(const char *name, char *out, size_t cap)
{
    size_t u = 0;
    for (; name[u] && u < cap - 1; u++)
        out[u] = (char)(name[u] >= 'a' && name[u] <= 'z' ? name[u] - 32
                        : name[u] == '-'                 ? '_'
                                                         : name[u]);
    out[u] = '\0';
}

/* Mesh mode (mesh.h): every process of the topology from `first` on gets a sidecar (placed just
 * before it); services move to their loopback port and call their upstreams through their
 * sidecar; the gateway's clusters point at its sidecar's outbound listeners. The files (the
 * certificates and the sidecars' configurations) are written by mesh_files. Returns 0 or
 * SL_ECONFIG (the reason printed). */
static int mesh_procs(supervisor *s, topology *t, int first)
{
    if (json_object_get(sl_config_root(t->cfg), "hosting")) {
        fprintf(stderr, "shoal: mesh: hosting groups are not supported in mesh mode\n");
        return SL_ECONFIG;
    }
    s->mesh = 1;
    size_t n = (size_t)(s->n - first);
    if (n > CLI_MESH_SVCS_MAX || s->n + (int)n > MAX_PROCS) {
        fprintf(stderr, "shoal: mesh: too many processes\n");
        return SL_ECONFIG;
    }
    json_t *list = json_object_get(sl_config_root(t->cfg), "services");
    for (size_t i = 0; i < n; i++) {
        cli_mesh_svc *m = &s->msvc[i];
        const proc *p = &s->procs[first + (int)i];
        snprintf(m->name, sizeof m->name, "%s", p->name);
        m->port = p->port;
        m->gateway = p->kind == P_GATEWAY;
        m->breaker_recovery_ms = t->mesh_breaker_recovery_ms;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *calls = json_object_get(json_array_get(list, i), "calls"), *c;
        size_t k;
        json_array_foreach(calls, k, c)
        {
            for (size_t j = 0; j < n; j++)
                if (json_is_string(c) && strcmp(json_string_value(c), s->msvc[j].name) == 0)
                    s->msvc[i].calls[j] = true;
        }
    }
    s->nmsvc = n;
    char err[256];
    if (cli_mesh_plan_ports(s->msvc, n, &t->mesh_ports, err, sizeof err) != 0) {
        fprintf(stderr, "shoal: %s\n", err);
        return SL_ECONFIG;
    }
    proc *copy = malloc(n * sizeof *copy);
    if (!copy) abort();
    memcpy(copy, &s->procs[first], n * sizeof *copy);
    int k = first;
    for (size_t i = 0; i < n; i++) {
        const cli_mesh_svc *m = &s->msvc[i];
        proc *sc = &s->procs[k++];
        memset(sc, 0, sizeof *sc);
        snprintf(sc->name, sizeof sc->name, "%.20s-sidecar", m->name);
        sc->kind = P_SERVICE;
        snprintf(sc->bin, sizeof sc->bin, "%s/shoal-proxy", t->bin_dir);
        char cfg[PATH_MAX + 96];
        snprintf(cfg, sizeof cfg, "%s/mesh/sidecars/%s.yaml", s->data_dir, m->name);
        const char *args[] = {sc->bin, "--role", "sidecar", "--config", cfg};
        for (size_t a = 0; a < SL_ARRAY_LEN(args); a++)
            sc->argv[sc->argc++] = xstrdup(args[a]);
        sc->port = m->inbound_port; /* TLS: a TCP accept is its readiness */
        sc->admin_port = m->admin_port;
        snprintf(sc->leaf, sizeof sc->leaf, "%s", m->name); /* its service's leaf, reloaded */
        sc->leaf_hup = 1;
        sc->missing = access(sc->bin, X_OK) != 0;
        proc *p = &s->procs[k++];
        *p = copy[i];
        p->leaf[0] = '\0'; /* the same file as its sidecar's: renewed once, for the sidecar */
        /* Its sidecar exports its spans as the service does, to the same receiver with the same
         * settings (every SHOAL_TELEMETRY__*, in order), as service.name <name>-sidecar. */
        static const char tel[] = "SHOAL_TELEMETRY__";
        for (int e = 0; e < p->nenv; e++) {
            const char *eq = strchr(p->env[e], '=');
            char key[128];
            if (strncmp(p->env[e], tel, sizeof tel - 1) != 0 || !eq ||
                (size_t)(eq - p->env[e]) >= sizeof key)
                continue;
            snprintf(key, sizeof key, "%.*s", (int)(eq - p->env[e]), p->env[e]);
            set_env(sc, key, eq + 1);
        }
        char v[128], key[160], up[80];
        if (!m->gateway) { /* the local hop's token (mesh_files): only these two can read it */
            char tok[PATH_MAX + 128];
            snprintf(tok, sizeof tok, "%s/mesh/tokens/%s.token", s->data_dir, m->name);
            set_env(sc, "SHOAL_SIDECAR_PEER_TOKEN_FILE", tok);
            set_env(p, "SHOAL_MESH__PEER_TOKEN_FILE", tok);
        }
        if (!m->gateway) {
            snprintf(v, sizeof v, "%d", m->local_port);
            set_env(p, "SHOAL_SERVICE__PORT", v);
            set_env(p, "SHOAL_SERVICE__HOST", "127.0.0.1");
            p->port = m->local_port;
        }
        for (size_t j = 0; j < n; j++) {
            if (!m->out_port[j]) continue;
            upper_of(s->msvc[j].name, up, sizeof up);
            if (m->gateway) {
                snprintf(key, sizeof key, "SHOAL_CLUSTERS__%s__ENDPOINTS__0", up);
                snprintf(v, sizeof v, "127.0.0.1:%d", m->out_port[j]);
            } else {
                snprintf(key, sizeof key, "SHOAL_UPSTREAMS__%s__URL", up);
                snprintf(v, sizeof v, "http://127.0.0.1:%d", m->out_port[j]);
            }
            set_env(p, key, v);
        }
    }
    free(copy);
    s->n = k;
    return 0;
}

static int build_procs(supervisor *s, topology *t)
{
    SL_ASSERT(s != NULL && s->n == 0 && t != NULL && t->cfg != NULL);
    char url[256];
    if (t->nats_url)
        snprintf(url, sizeof url, "%s", t->nats_url);
    else
        snprintf(url, sizeof url, "nats://127.0.0.1:%d", t->nats_port);
    /* Mesh mode (`mesh: true` or --mesh) — nats-server with TLS and one user per service
     * (nats_up.c, docs/mesh.md). */
    int mesh = t->mesh || cli_nats_mesh_on(sl_config_root(t->cfg)) == 1;
    char mesh_conf[PATH_MAX + 16] = "";
    if (mesh && !t->nats_external) {
        const char *names[MAX_PROCS + 1];
        size_t nn = 0;
        size_t k;
        json_t *it;
        json_array_foreach(json_object_get(sl_config_root(t->cfg), "services"), k, it)
        {
            const char *nm = json_string_value(json_object_get(it, "name"));
            if (nm && nn < MAX_PROCS) names[nn++] = nm;
        }
        names[nn] = NULL;
        if (cli_nats_mesh_up(s->data_dir, t->bin_dir, t->nats_port, names, mesh_conf,
                             sizeof mesh_conf) != 0)
            return SL_ECONFIG;
    }
    if (!t->nats_external) {
        proc *p = &s->procs[s->n++];
        snprintf(p->name, sizeof p->name, "nats-server");
        p->kind = P_NATS;
        /* Debian installs it in /usr/sbin, which is not on an ordinary user's PATH. */
        snprintf(p->bin, sizeof p->bin, "%s",
                 access("/usr/sbin/nats-server", X_OK) == 0 ? "/usr/sbin/nats-server"
                                                            : "nats-server");
        char sd[PATH_MAX + 8], port[16];
        snprintf(sd, sizeof sd, "%s/nats", s->data_dir);
        snprintf(port, sizeof port, "%d", t->nats_port);
        const char *args[] = {"nats-server", "-a", "127.0.0.1", "-p", port, "-js", "-sd", sd};
        const char *margs[] = {"nats-server", "-c", mesh_conf};
        for (size_t i = 0; !mesh && i < SL_ARRAY_LEN(args); i++)
            p->argv[p->argc++] = xstrdup(args[i]);
        for (size_t i = 0; mesh && i < SL_ARRAY_LEN(margs); i++)
            p->argv[p->argc++] = xstrdup(margs[i]);
        p->port = t->nats_port;
        if (mesh) { /* nats-server reloads its TLS files on SIGHUP */
            snprintf(p->leaf, sizeof p->leaf, "nats");
            p->leaf_hup = 1;
        }
    }
    /* telemetry: the OTLP endpoint every process exports to (cli_telemetry, telemetry.c), and
     * the local receiver when the spans stay on this machine. */
    cli_telemetry tel;
    if (cli_telemetry_read(t->cfg, s->data_dir, &tel) != 0) return SL_ECONFIG;
    if (tel.receiver_port) {
        proc *p = &s->procs[s->n++];
        snprintf(p->name, sizeof p->name, "traces");
        p->kind = P_SERVICE;
        snprintf(p->bin, sizeof p->bin, "%s/shoal-traces", t->bin_dir);
        p->argv[p->argc++] = xstrdup(p->bin);
        p->port = tel.receiver_port;
        p->http_ready = 1;
        p->missing = access(p->bin, X_OK) != 0;
        for (size_t k = 0; k < tel.nreceiver_env; k++)
            add_env(p, tel.receiver_env_key[k], tel.receiver_env_val[k]);
    }

    json_t *svcs = json_object_get(sl_config_root(t->cfg), "services");
    size_t i;
    json_t *item;
    int first = s->n;
    json_array_foreach(svcs, i, item)
    {
        char path[64], err[SL_CONFIG_ERR_MAX];
        const char *name = NULL, *db = NULL;
        int64_t port = 0;
        snprintf(path, sizeof path, "services[%zu]", i);
        char pname[80], pport[80], pdb[80];
        snprintf(pname, sizeof pname, "%s.name", path);
        snprintf(pport, sizeof pport, "%s.port", path);
        snprintf(pdb, sizeof pdb, "%s.db_url", path);
        if (sl_config_get_string(t->cfg, pname, NULL, &name, err) != 0 || !name ||
            sl_config_get_int(t->cfg, pport, 0, 1, 65535, &port, err) != 0 || port == 0 ||
            sl_config_get_string(t->cfg, pdb, NULL, &db, err) != 0) {
            char where[256];
            sl_config_locate(t->cfg, path, where, sizeof where);
            fprintf(stderr, "shoal: %s: %s: each service needs a name and a port (%s)\n", where,
                    path, err[0] ? err : "missing");
            return SL_ECONFIG;
        }
        if (s->n >= MAX_PROCS - 1) {
            fprintf(stderr, "shoal: too many services (at most %d)\n", MAX_PROCS - 2);
            return SL_ELIMIT;
        }
        proc *p = &s->procs[s->n++];
        snprintf(p->name, sizeof p->name, "%s", name);
        p->kind = strcmp(name, "gateway") == 0 ? P_GATEWAY : P_SERVICE;
        snprintf(p->bin, sizeof p->bin, "%s/shoal-%s", t->bin_dir,
                 p->kind == P_GATEWAY ? "proxy" : name);
        p->argv[p->argc++] = xstrdup(p->bin);
        p->port = (int)port;
        p->http_ready = 1;
        p->missing = access(p->bin, X_OK) != 0;
        char v[PATH_MAX + 64];
        snprintf(v, sizeof v, "%d", p->port);
        add_env(p, "SHOAL_SERVICE__PORT", v);
        if (db)
            snprintf(v, sizeof v, "%s", db);
        else
            snprintf(v, sizeof v, "sqlite:%s/%s.db", s->data_dir, name);
        add_env(p, "SHOAL_DB__URL", v);
        add_env(p, "SHOAL_BUS__URL", url);
        if (mesh) { /* its certificate is its NATS user */
            snprintf(v, sizeof v, "%s/mesh/bundle.pem", s->data_dir);
            add_env(p, "SHOAL_BUS__TLS_CA_FILE", v);
            add_env(p, "SHOAL_BUS__TLS_SERVER_NAME", "nats"); /* the CN of its certificate */
            snprintf(v, sizeof v, "%s/mesh/certs/%s.pem", s->data_dir, name);
            add_env(p, "SHOAL_BUS__TLS_CERT_FILE", v);
            snprintf(v, sizeof v, "%s/mesh/certs/%s.key", s->data_dir, name);
            add_env(p, "SHOAL_BUS__TLS_KEY_FILE", v);
            /* Renewed on disk for its next connection; the bus loads it once, at start. */
            snprintf(p->leaf, sizeof p->leaf, "%s", name);
        }
        if (tel.endpoint[0]) add_env(p, "SHOAL_TELEMETRY__OTLP_ENDPOINT", tel.endpoint);
        snprintf(v, sizeof v, "%s/keys/%s.keys", s->data_dir, name); /* its edges' keys */
        add_env(p, "SHOAL_IDENTITY__KEY_FILE", v);
        /* Files a service keeps besides its database live in the data directory too. */
        char key[96], upper[40];
        size_t u = 0;
        for (; name[u] && u < sizeof upper - 1; u++)
            upper[u] = (char)(name[u] >= 'a' && name[u] <= 'z' ? name[u] - 32 : name[u]);
        upper[u] = '\0';
        snprintf(key, sizeof key, "SHOAL_%s__DATA_DIR", upper);
        if (p->kind == P_SERVICE) add_env(p, key, s->data_dir);
        if (strcmp(name, "user") == 0) {
            snprintf(v, sizeof v, "%s/user-signing.pem", s->data_dir);
            add_env(p, "SHOAL_USER__SIGNING_KEY_FILE", v);
        } else if (strcmp(name, "notification") == 0) {
            snprintf(v, sizeof v, "%s/mailboxes", s->data_dir);
            add_env(p, "SHOAL_NOTIFICATION__MAILBOX_DIR", v);
        }
        if (p->kind == P_GATEWAY) s->gateway_port = p->port;
        /* services[i].config: the process's own configuration file. */
        const char *own = json_string_value(json_object_get(item, "config"));
        if (own) {
            p->argv[p->argc++] = xstrdup("--config");
            p->argv[p->argc++] = xstrdup(own);
        }
        /* Extra environment for this process: services[i].env: {KEY: value}. */
        json_t *env = json_object_get(item, "env");
        const char *k;
        json_t *val;
        json_object_foreach(env, k, val)
        {
            char buf[256];
            if (json_is_string(val))
                snprintf(buf, sizeof buf, "%s", json_string_value(val));
            else if (json_is_integer(val))
                snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(val));
            else if (json_is_boolean(val))
                snprintf(buf, sizeof buf, "%s", json_is_true(val) ? "true" : "false");
            else
                continue;
            add_env(p, k, buf);
        }
    }
    if (t->mesh) return mesh_procs(s, t, first);
    return apply_hosting(s, t);
}

/* The pid table (<data_dir>/pids, cli.h) after a child started or exited: what `shoal chaos`
 * may signal. */
static void record_pids(supervisor *s)
{
    cli_pid t[MAX_PROCS];
    size_t n = 0;
    for (int i = 0; i < s->n; i++)
        if (s->procs[i].running) {
            snprintf(t[n].name, sizeof t[n].name, "%s", s->procs[i].name);
            t[n++].pid = s->procs[i].handle.pid;
        }
    if (cli_pids_write(s->data_dir, (int)getpid(), t, n) != 0)
        say("cannot write the pid table %s/pids", s->data_dir);
}

/* ---- readiness probes --------------------------------------------------- */

typedef struct probe {
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wr;
    proc *p;
    char buf[64];
    size_t len;
    int ok;
} probe;

static void probe_closed(uv_handle_t *h)
{
    probe *pr = h->data;
    proc *p = pr->p;
    p->probing = 0;
    if (pr->ok && p->nports && ++p->probe_at < p->nports) pr->ok = 0; /* the next port */
    if (pr->ok && !p->ready && p->running) {
        p->ready = 1;
        say("%-14s ready (pid %d, port %d)", p->name, p->handle.pid, p->port);
        if (p->hup_due) { /* a leaf renewed while it started (renew_tick) */
            p->hup_due = 0;
            uv_process_kill(&p->handle, SIGHUP);
            say("%-14s reloading its renewed certificate %s", p->name, p->leaf);
        }
    }
    free(pr);
}

static void probe_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)sz;
    probe *pr = h->data;
    SL_ASSERT(pr->len < sizeof pr->buf);
    *b = uv_buf_init(pr->buf + pr->len, (unsigned)(sizeof pr->buf - 1 - pr->len));
}

static void probe_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    probe *pr = st->data;
    if (n > 0) pr->len += (size_t)n;
    pr->buf[pr->len] = '\0';
    if (n < 0 || pr->len >= 12 || pr->len == sizeof pr->buf - 1) {
        pr->ok = strncmp(pr->buf, "HTTP/1.1 200", 12) == 0;
        uv_close((uv_handle_t *)&pr->tcp, probe_closed);
    }
}

static void probe_written(uv_write_t *w, int status)
{
    probe *pr = w->data;
    if (status < 0 || uv_read_start((uv_stream_t *)&pr->tcp, probe_alloc, probe_read) != 0)
        uv_close((uv_handle_t *)&pr->tcp, probe_closed);
}

static void probe_connected(uv_connect_t *c, int status)
{
    probe *pr = c->data;
    if (status < 0) {
        uv_close((uv_handle_t *)&pr->tcp, probe_closed);
        return;
    }
    if (!pr->p->http_ready) {
        pr->ok = 1;
        uv_close((uv_handle_t *)&pr->tcp, probe_closed);
        return;
    }
    static char req[] = "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    uv_buf_t b = uv_buf_init(req, sizeof req - 1);
    pr->wr.data = pr;
    if (uv_write(&pr->wr, (uv_stream_t *)&pr->tcp, &b, 1, probe_written) != 0)
        uv_close((uv_handle_t *)&pr->tcp, probe_closed);
}

static void start_probe(proc *p)
{
    if (p->probing || !p->running) return;
    probe *pr = calloc(1, sizeof *pr);
    if (!pr) return;
    pr->p = p;
    uv_tcp_init(p->sup->loop, &pr->tcp);
    pr->tcp.data = pr;
    pr->conn.data = pr;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", p->nports ? p->ports[p->probe_at] : p->port, &a);
    p->probing = 1;
    if (uv_tcp_connect(&pr->conn, &pr->tcp, (struct sockaddr *)&a, probe_connected) != 0)
        uv_close((uv_handle_t *)&pr->tcp, probe_closed);
}

/* ---- processes ---------------------------------------------------------- */

static void spawn_proc(proc *p);
static void maybe_start_gateway(supervisor *s);

static void restart_cb(uv_timer_t *t)
{
    proc *p = t->data;
    if (!p->sup->stopping) spawn_proc(p);
}
static void print_table(supervisor *s);

static void on_exit_cb(uv_process_t *h, int64_t status, int sig)
{
    proc *p = h->data;
    supervisor *s = p->sup;
    SL_ASSERT(p->running);
    p->running = 0;
    p->ready = 0;
    uv_close((uv_handle_t *)h, NULL);
    record_pids(s);
    if (s->stopping) {
        say("%-14s stopped", p->name);
        return;
    }
    say("%-14s exited (status %lld, signal %d); restarting in %llu ms", p->name, (long long)status,
        sig, (unsigned long long)p->backoff_ms);
    p->restarts++;
    uv_timer_start(&p->restart_timer, restart_cb, p->backoff_ms, 0);
}

/* Every process is ready: is the README's walk possible yet (ready.h)? Bounded: after
 * ready_timeout_ms the shop is announced anyway, with a warning. */
static int shop_walk_ready(supervisor *s)
{
    uint64_t now = now_ms();
    if (!s->ready_stock_path || !s->gateway_port) return 1;
    if (!s->all_ready_ms) s->all_ready_ms = now;
    if (now < s->next_check_ms) return 0;
    s->next_check_ms = now + 250;
    if (cli_ready_stock(s->gateway_port, s->ready_stock_path)) return 1;
    if (now - s->all_ready_ms < (uint64_t)s->ready_timeout_ms) return 0;
    say("the catalogue (%s) shows no stock after %lld ms; announcing the shop anyway",
        s->ready_stock_path, (long long)s->ready_timeout_ms);
    return 1;
}

static void probe_tick(uv_timer_t *t)
{
    proc *p = t->data;
    supervisor *s = p->sup;
    if (p->running && !p->ready) start_probe(p);
    if (p->running && p->ready && now_ms() - p->started_ms > 30000)
        p->backoff_ms = 500; /* stayed up: the next crash restarts quickly again */
    maybe_start_gateway(s);
    if (!s->announced) {
        int all = 1;
        for (int i = 0; i < s->n; i++)
            if (!s->procs[i].missing && !s->procs[i].ready) all = 0;
        if (all && shop_walk_ready(s)) {
            s->announced = 1;
            print_table(s);
        }
    }
}

static void spawn_proc(proc *p)
{
    supervisor *s = p->sup;
    char logpath[PATH_MAX + 40];
    snprintf(logpath, sizeof logpath, "%s/%s.log", s->log_dir, p->name);
    /* Owner-only: a log may carry personal data. A file an earlier version left wider is
     * tightened. */
    int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        say("%-14s cannot open %s: %s", p->name, logpath, strerror(errno));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0 && fchmod(fd, 0600) != 0)
        say("%-14s cannot make %s owner-only: %s", p->name, logpath, strerror(errno));
    /* Children inherit our environment plus their own SHOAL_* settings. */
    extern char **environ;
    char *env[400 + MAX_ENV];
    int ne = 0;
    for (char **e = environ; *e && ne < 400; e++)
        env[ne++] = *e;
    SL_ASSERT(ne + p->nenv < (int)SL_ARRAY_LEN(env));
    for (int i = 0; i < p->nenv; i++)
        env[ne++] = p->env[i];
    env[ne] = NULL;
    SL_ASSERT(p->argc < (int)SL_ARRAY_LEN(p->argv));
    p->argv[p->argc] = NULL;
    uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
                                     {.flags = UV_INHERIT_FD, .data.fd = fd},
                                     {.flags = UV_INHERIT_FD, .data.fd = fd}};
    uv_process_options_t o = {.exit_cb = on_exit_cb,
                              .file = p->kind == P_NATS ? p->bin : p->argv[0],
                              .args = p->argv,
                              .env = env,
                              .stdio_count = 3,
                              .stdio = stdio};
    p->handle.data = p;
    int rc = uv_spawn(s->loop, &p->handle, &o);
    close(fd);
    if (rc != 0) {
        say("%-14s cannot start %s: %s", p->name, p->argv[0], uv_strerror(rc));
        uv_close((uv_handle_t *)&p->handle, NULL);
        uv_timer_start(&p->restart_timer, restart_cb, p->backoff_ms, 0);
        p->backoff_ms = p->backoff_ms * 2 > 30000 ? 30000 : p->backoff_ms * 2;
        return;
    }
    p->running = 1;
    p->ready = 0;
    p->hup_due = 0; /* it reads its leaf as it starts */
    p->probe_at = 0;
    p->started_ms = now_ms();
    say("%-14s started (pid %d), log %s", p->name, p->handle.pid, logpath);
    record_pids(s);
    p->backoff_ms = p->backoff_ms * 2 > 30000 ? 30000 : p->backoff_ms * 2;
}

static void maybe_start_gateway(supervisor *s)
{
    /* The gateway starts once every service is ready, so its first requests find them. */
    proc *gw = NULL;
    for (int i = 0; i < s->n; i++) {
        proc *p = &s->procs[i];
        if (p->kind == P_GATEWAY)
            gw = p;
        else if (!p->missing && !p->ready)
            return;
    }
    if (gw && !gw->missing && !gw->running && gw->restarts == 0 && gw->started_ms == 0)
        spawn_proc(gw);
}

static void print_table(supervisor *s)
{
    SL_ASSERT(s->n > 0);
    printf("\n  %-14s %-8s %-6s %s\n", "process", "pid", "port", "state");
    for (int i = 0; i < s->n; i++) {
        proc *p = &s->procs[i];
        printf("  %-14s %-8d %-6d %s\n", p->name, p->running ? p->handle.pid : 0, p->port,
               p->missing ? "not built yet" : (p->ready ? "ready" : "starting"));
    }
    printf("\n");
    if (s->gateway_port && !s->procs[s->n - 1].missing)
        printf("  The shop:  http://127.0.0.1:%d/api/v1/products\n", s->gateway_port);
    for (int i = 0; i < s->n; i++)
        if (s->procs[i].kind == P_SERVICE && !s->procs[i].missing)
            printf("  %-10s http://127.0.0.1:%d/healthz  /metrics\n", s->procs[i].name,
                   s->procs[i].admin_port ? s->procs[i].admin_port : s->procs[i].port);
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->procs[i].name, "traces") == 0 && !s->procs[i].missing)
            printf("  Traces:    shoal trace --last   (http://127.0.0.1:%d/api/traces)\n",
                   s->procs[i].port);
    printf("  Logs: %s/   Stop: Ctrl-C (or `shoal down`)\n\n", s->log_dir);
    fflush(stdout);
    say("the shop is ready");
}

static void kill_all(uv_timer_t *t)
{
    supervisor *s = t->data;
    for (int i = 0; i < s->n; i++)
        if (s->procs[i].running) {
            say("%-14s did not stop in time; killing it", s->procs[i].name);
            uv_process_kill(&s->procs[i].handle, SIGKILL);
        }
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void stop_tick(uv_timer_t *t);

static void on_signal(uv_signal_t *sg, int signum)
{
    supervisor *s = sg->data;
    if (s->stopping) {
        kill_all(&s->kill_timer);
        return;
    }
    say("signal %d: stopping everything", signum);
    s->stopping = 1;
    uv_timer_stop(&s->renew_timer);
    for (int i = 0; i < s->n; i++) {
        uv_timer_stop(&s->procs[i].restart_timer);
        uv_timer_stop(&s->procs[i].probe_timer);
    }
    /* Gateway first (no new traffic), then services, nats-server last (relays flush). */
    for (int i = s->n - 1; i >= 0; i--)
        if (s->procs[i].running && s->procs[i].kind != P_NATS)
            uv_process_kill(&s->procs[i].handle, SIGTERM);
    uv_timer_start(&s->kill_timer, stop_tick, 100, 100);
}

static void stop_tick(uv_timer_t *t)
{
    supervisor *s = t->data;
    static uint64_t began;
    if (!began) began = now_ms();
    int others = 0;
    for (int i = 0; i < s->n; i++)
        if (s->procs[i].running && s->procs[i].kind != P_NATS) others++;
    for (int i = 0; i < s->n; i++) {
        proc *p = &s->procs[i];
        if (p->running && p->kind == P_NATS && others == 0 && !p->probing) {
            uv_process_kill(&p->handle, SIGTERM);
            p->probing = 1; /* reused as "asked to stop" */
        }
    }
    int any = 0;
    for (int i = 0; i < s->n; i++)
        any |= s->procs[i].running;
    if (!any) {
        uv_timer_stop(t);
        uv_walk(s->loop, walk_close, NULL);
        return;
    }
    if (now_ms() - began > 20000) kill_all(t);
}

static int write_pidfile(supervisor *s)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/shoal.pid", s->data_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        int pid = 0;
        if (fscanf(f, "%d", &pid) == 1 && pid > 0 && kill(pid, 0) == 0) {
            fclose(f);
            fprintf(stderr, "shoal: already running (pid %d); `shoal down` stops it\n", pid);
            return SL_EBUSY;
        }
        fclose(f);
    }
    f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "shoal: cannot write %s: %s\n", path, strerror(errno));
        return SL_EIO;
    }
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    return 0;
}

/* mkdir -p `path`; what it creates is owner-only (0700). */
static void mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0700);
            *p = '/';
        }
    mkdir(tmp, 0700);
}

/* Creates `path` if need be and makes it owner-only: the data directory holds the keys, the
 * admin credentials, the databases (password hashes) and the logs. A directory an earlier
 * version made 0755 is tightened. */
static int private_dir(const char *path)
{
    mkdirs(path);
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "shoal: cannot create the directory %s: %s\n", path, strerror(errno));
        return SL_EIO;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "shoal: %s is not a directory\n", path);
        return SL_EIO;
    }
    if ((st.st_mode & 077) != 0 && chmod(path, st.st_mode & 0700) != 0) {
        fprintf(stderr, "shoal: cannot make %s owner-only: %s\n", path, strerror(errno));
        return SL_EIO;
    }
    return 0;
}

/* Mesh mode: the CA (made once), a fresh leaf per process (mesh_certs.lifetime_s, 24 h by
 * default; renew_tick renews them while the shop runs) and each sidecar's
 * configuration, all under <data>/mesh (0700; keys and configurations 0600). */
static int mesh_files(supervisor *s)
{
    char dir[PATH_MAX + 8], sub[PATH_MAX + 32], path[PATH_MAX + 128];
    snprintf(dir, sizeof dir, "%s/mesh", s->data_dir);
    snprintf(sub, sizeof sub, "%s/sidecars", dir);
    snprintf(path, sizeof path, "%s/ca.pem", dir);
    if (access(path, F_OK) != 0) {
        char *argv[] = {"--dir", dir, "init", NULL};
        if (cli_certs_main(3, argv) != 0) return SL_EIO;
    }
    char toks[PATH_MAX + 32];
    snprintf(toks, sizeof toks, "%s/tokens", dir);
    if (private_dir(dir) != 0 || private_dir(sub) != 0 || private_dir(toks) != 0) return SL_EIO;
    static char yaml[16384];
    for (size_t i = 0; i < s->nmsvc; i++) {
        const cli_mesh_svc *m = &s->msvc[i];
        if (!m->gateway) { /* a fresh token for each service's local hop at every start */
            sl_identity_key k;
            char kerr[256];
            snprintf(path, sizeof path, "%s/%s.token", toks, m->name);
            if ((unlink(path) != 0 && errno != ENOENT) ||
                sl_identity_key_ensure(path, &k, kerr) != 0) {
                fprintf(stderr, "shoal: mesh: cannot write %s\n", path);
                return SL_EIO;
            }
            sodium_memzero(&k, sizeof k);
        }
        if (cli_certs_issue(dir, m->name, s->leaf_lifetime_s) != 0) return SL_EIO;
        int len = cli_mesh_sidecar_yaml(s->msvc, s->nmsvc, i, dir, yaml, sizeof yaml);
        snprintf(path, sizeof path, "%s/%s.yaml", sub, m->name);
        int fd = len < 0 ? -1 : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, yaml, (size_t)len) != len || close(fd) != 0) {
            fprintf(stderr, "shoal: mesh: cannot write %s\n", path);
            return SL_EIO;
        }
    }
    return 0;
}

/* Mesh mode: renews each process's leaf two thirds into its life (cli_certs_should_renew), the
 * key and then the certificate written atomically, and sends SIGHUP to a process that reloads
 * it (a sidecar, nats-server); then waits until the earliest leaf is due again. */
static void renew_tick(uv_timer_t *t)
{
    supervisor *s = t->data;
    if (s->stopping) return;
    char dir[PATH_MAX + 8];
    snprintf(dir, sizeof dir, "%s/mesh", s->data_dir);
    int64_t now = (int64_t)time(NULL), due = INT64_MAX;
    for (int i = 0; i < s->n; i++) {
        proc *p = &s->procs[i];
        if (!p->leaf[0]) continue;
        int64_t nb, na;
        bool current;
        int rc = cli_certs_leaf_state(dir, p->leaf, &nb, &na, &current);
        if (rc == 0 && cli_certs_should_renew(now, nb, na, current)) {
            rc = cli_certs_issue(dir, p->leaf, s->leaf_lifetime_s);
            if (rc == 0) rc = cli_certs_leaf_state(dir, p->leaf, &nb, &na, &current);
            if (rc == 0 && p->leaf_hup && p->running && !p->ready) {
                p->hup_due = 1; /* its SIGHUP handler may not be in place yet */
            } else if (rc == 0 && p->leaf_hup && p->running) {
                uv_process_kill(&p->handle, SIGHUP);
                say("%-14s certificate %s renewed; reloading", p->name, p->leaf);
            } else if (rc == 0) {
                say("%-14s certificate %s renewed (read at its next start)", p->name, p->leaf);
            }
        }
        if (rc != 0) {
            say("%-14s cannot renew the certificate %s/certs/%s.pem; trying again in 1 s", p->name,
                dir, p->leaf);
            if (now + 1 < due) due = now + 1;
        } else if (cli_certs_renew_at(nb, na) < due) {
            due = cli_certs_renew_at(nb, na);
        }
    }
    if (due == INT64_MAX) return;
    /* Wall-clock seconds: a leaf due at second `due` is renewed in that second's first ms. */
    int64_t wait = cli_certs_next_check_ms(now * 1000, due * 1000);
    uv_timer_start(t, renew_tick, (uint64_t)wait, 0);
}

static int cmd_up(const char *config_path, int mesh)
{
    topology t = {.mesh = mesh};
    if (load_topology(config_path, &t) != 0) return 2;
    static supervisor s;
    memset(&s, 0, sizeof s);
    char err[SL_CONFIG_ERR_MAX];
    snprintf(s.data_dir, sizeof s.data_dir, "%s", t.data_dir);
    snprintf(s.log_dir, sizeof s.log_dir, "%s/logs", t.data_dir);
    s.leaf_lifetime_s = t.mesh_lifetime_s;
    int bad =
        sl_config_get_string(t.cfg, "ready_stock_path", NULL, &s.ready_stock_path, err) != 0 ||
        sl_config_get_int(t.cfg, "ready_timeout_ms", 60000, 0, 3600000, &s.ready_timeout_ms, err) !=
            0;
    const char *rp = s.ready_stock_path;
    if (!bad && rp && (rp[0] != '/' || strlen(rp) > 1000 || strcspn(rp, " \t\r\n") != strlen(rp))) {
        snprintf(err, sizeof err, "ready_stock_path: must be a request target (/..., no spaces)");
        bad = 1;
    }
    if (bad) {
        fprintf(stderr, "shoal: %s\n", err);
        sl_config_free(t.cfg);
        return 2;
    }
    char nats_dir[PATH_MAX + 8];
    snprintf(nats_dir, sizeof nats_dir, "%s/nats", t.data_dir);
    if (private_dir(s.data_dir) != 0 || private_dir(s.log_dir) != 0 || private_dir(nats_dir) != 0 ||
        build_procs(&s, &t) != 0 || (s.mesh && mesh_files(&s) != 0) || write_pidfile(&s) != 0) {
        sl_config_free(t.cfg);
        return 2;
    }
    /* Each process gets the keys of its own identity edges (keys.h; 0600, never printed). */
    if (cli_keys_distribute(t.cfg, s.data_dir, err) != 0) {
        fprintf(stderr, "shoal: %s\n", err);
        return 1;
    }

    s.loop = uv_default_loop();
    uv_signal_init(s.loop, &s.sigint);
    uv_signal_init(s.loop, &s.sigterm);
    s.sigint.data = s.sigterm.data = &s;
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_timer_init(s.loop, &s.kill_timer);
    s.kill_timer.data = &s;
    uv_timer_init(s.loop, &s.renew_timer);
    s.renew_timer.data = &s;
    uv_timer_start(&s.renew_timer, renew_tick, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < s.n; i++) {
        proc *p = &s.procs[i];
        p->sup = &s;
        p->backoff_ms = 500;
        uv_timer_init(s.loop, &p->restart_timer);
        uv_timer_init(s.loop, &p->probe_timer);
        p->restart_timer.data = p->probe_timer.data = p;
        uv_timer_start(&p->probe_timer, probe_tick, 200, 200);
        if (p->missing) {
            say("%-14s not built yet (%s): skipped", p->name, p->bin);
            continue;
        }
        if (p->kind != P_GATEWAY) spawn_proc(p);
    }
    uv_run(s.loop, UV_RUN_DEFAULT);
    char pidpath[PATH_MAX + 16];
    snprintf(pidpath, sizeof pidpath, "%s/shoal.pid", s.data_dir);
    unlink(pidpath);
    snprintf(pidpath, sizeof pidpath, "%s/pids", s.data_dir);
    unlink(pidpath);
    for (int i = 0; i < s.n; i++) {
        for (int k = 0; k < s.procs[i].argc; k++)
            free(s.procs[i].argv[k]);
        for (int k = 0; k < s.procs[i].nenv; k++)
            free(s.procs[i].env[k]);
    }
    uv_loop_close(s.loop);
    sl_config_free(t.cfg);
    say("all stopped");
    return 0;
}

/* A blocking GET /readyz for `shoal status`: returns the status code or 0. */
static int get_status(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int code = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        const char req[] = "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        char buf[64] = {0};
        if (write(fd, req, sizeof req - 1) == (ssize_t)sizeof req - 1 &&
            read(fd, buf, sizeof buf - 1) >= 12)
            sscanf(buf, "HTTP/1.%*d %d", &code);
    }
    close(fd);
    return code;
}

static int cmd_status(const char *config_path, int mesh)
{
    topology t = {.mesh = mesh};
    if (load_topology(config_path, &t) != 0) return 2;
    static supervisor s;
    snprintf(s.data_dir, sizeof s.data_dir, "%s", t.data_dir);
    if (build_procs(&s, &t) != 0) return 2;
    int bad = 0;
    printf("  %-14s %-6s %s\n", "process", "port", "state");
    for (int i = 0; i < s.n; i++) {
        proc *p = &s.procs[i];
        const char *state;
        if (p->missing) {
            state = "not built";
        } else if (p->kind == P_NATS || (s.mesh && !p->http_ready)) { /* a sidecar: mTLS */
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a;
            uv_ip4_addr("127.0.0.1", p->port, &a);
            state = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 ? "up" : "down";
            close(fd);
        } else {
            int code = get_status(p->port);
            for (int k = 1; k < p->nports && code == 200; k++)
                code = get_status(p->ports[k]);
            state = code == 200 ? "ready" : code ? "not ready" : "down";
        }
        bad |= strcmp(state, "ready") != 0 && strcmp(state, "up") != 0 &&
               strcmp(state, "not built") != 0;
        printf("  %-14s %-6d %s\n", p->name, p->port, state);
    }
    sl_config_free(t.cfg);
    return bad ? 1 : 0;
}

static int cmd_down(const char *config_path)
{
    topology t = {0};
    if (load_topology(config_path, &t) != 0) return 2;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/shoal.pid", t.data_dir);
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (!f || fscanf(f, "%d", &pid) != 1 || pid <= 0 || kill(pid, 0) != 0) {
        printf("shoal: not running\n");
        if (f) fclose(f);
        sl_config_free(t.cfg);
        return 0;
    }
    fclose(f);
    kill(pid, SIGTERM);
    /* `shoal up` removes its pid file as its last act (its parent may not have reaped it). */
    for (int i = 0; i < 300 && kill(pid, 0) == 0 && access(path, F_OK) == 0; i++)
        usleep(100000);
    sl_config_free(t.cfg);
    if (access(path, F_OK) == 0 && kill(pid, 0) == 0) {
        fprintf(stderr, "shoal: pid %d is still running after 30 s\n", pid);
        return 1;
    }
    printf("shoal: stopped\n");
    return 0;
}

static int cmd_logs(const char *config_path, const char *name)
{
    topology t = {0};
    if (load_topology(config_path, &t) != 0) return 2;
    char pattern[PATH_MAX + 64];
    char *argv[64];
    int n = 0;
    argv[n++] = "tail";
    argv[n++] = "-n";
    argv[n++] = "20";
    argv[n++] = "-F";
    if (name) {
        snprintf(pattern, sizeof pattern, "%s/logs/%s.log", t.data_dir, name);
        argv[n++] = pattern;
    } else {
        static char paths[MAX_PROCS][PATH_MAX + 64];
        static supervisor s;
        snprintf(s.data_dir, sizeof s.data_dir, "%s", t.data_dir);
        if (build_procs(&s, &t) != 0) return 2;
        for (int i = 0; i < s.n && n < 60; i++) {
            snprintf(paths[i], sizeof paths[i], "%s/logs/%s.log", t.data_dir, s.procs[i].name);
            argv[n++] = paths[i];
        }
    }
    argv[n] = NULL;
    execvp("tail", argv);
    perror("shoal: tail");
    return 1;
}

static void usage(FILE *to)
{
    fprintf(to, "usage: shoal up|down|status|logs [NAME] [--config FILE] [--mesh]\n"
                "  --mesh (or `mesh: true` in the topology): every service behind its sidecar\n"
                "       shoal audit|chaos [OPTIONS] (--help lists them)\n"
                "  default configuration: config/local.yaml\n"
                "       shoal load [OPTIONS] (shoal load --help)\n"
                "       shoal trace [TRACE_ID | --last | --slowest N | --errors] [--order ID]\n"
                "       shoal graph [OPTIONS] (shoal graph --help)\n"
                "       shoal rollout SERVICE --to VERSION [OPTIONS] (shoal rollout --help)\n"
                "       shoal deploy k8s [OPTIONS] (shoal deploy --help)\n");
}

int main(int argc, char **argv)
{
    const char *config = "config/local.yaml";
    const char *cmd = NULL, *arg = NULL;
    int mesh = 0;
    if (argc > 1 && strcmp(argv[1], "audit") == 0) return cli_audit_main(argc - 2, argv + 2);
    if (argc > 1 && strcmp(argv[1], "chaos") == 0) return cli_chaos_main(argc - 2, argv + 2);
    if (argc > 1 && strcmp(argv[1], "rollout") == 0) return cli_rollout_main(argc - 2, argv + 2);
    if (argc > 1 && strcmp(argv[1], "graph") == 0) return cli_graph_main(argc - 2, argv + 2);
    if (argc > 1 && strcmp(argv[1], "load") == 0) return cli_load_main(argc - 2, argv + 2);
    if (argc > 1 && strcmp(argv[1], "trace") == 0) return cli_trace_main(argc - 2, argv + 2);
    if (argc > 1 && strcmp(argv[1], "certs") == 0) return cli_certs_main(argc - 2, argv + 2);
    if (argc > 1 && strcmp(argv[1], "deploy") == 0) return cli_deploy_main(argc - 2, argv + 2);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            config = argv[i] + 9;
        else if (strcmp(argv[i], "--mesh") == 0)
            mesh = 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (!cmd)
            cmd = argv[i];
        else if (!arg)
            arg = argv[i];
        else {
            usage(stderr);
            return 2;
        }
    }
    if (!cmd) {
        usage(stderr);
        return 2;
    }
    if (strcmp(cmd, "up") == 0) return cmd_up(config, mesh);
    if (strcmp(cmd, "down") == 0) return cmd_down(config);
    if (strcmp(cmd, "status") == 0) return cmd_status(config, mesh);
    if (strcmp(cmd, "logs") == 0) return cmd_logs(config, arg);
    usage(stderr);
    return 2;
}
