/*
 * shoal chaos [--config FILE] [--duration 5m] [--kill-every 10s] [--targets a,b,...]
 *             [--pause] [--latency] [--seed N] [--load "ARGS"] [--settle 120s]
 *
 * A bounded round of faults on the processes of a running `shoal up`, then
 * the audit. At random intervals (cli_chaos_plan, deterministic in --seed)
 * one of the targets is killed (SIGKILL; the supervisor restarts it),
 * paused (--pause: SIGSTOP, SIGCONT 1–5 s later) or slowed (--latency:
 * alternately stopped and continued in 100 ms slices for 1–5 s, so each
 * request it serves meanwhile waits up to that much longer; nothing a request
 * can turn on). Only pids listed in the supervisor's pid table
 * (<data_dir>/pids, owner-only) and still children of that supervisor are
 * ever signalled; every paused process is continued before the round ends,
 * Ctrl-C included. With --load it runs `shoal load ARGS` meanwhile. Then it
 * waits (at most --settle) for every process to be ready again and runs
 * `shoal audit --settle` with what is left of that time: its exit status
 * is the audit's (2 when the shop did not come back).
 */
#include "cli.h"

#include <shoal/config.h>

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>

#define SLICE_MS      100
#define LOAD_ARGS_MAX 32

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct held {
    char name[CLI_NAME_MAX];
    int pid;
    cli_fault fault;
    int64_t until_ms; /* monotonic */
    int stopped;      /* currently SIGSTOPped */
    int64_t next_ms;  /* slow: next toggle */
} held;

typedef struct round {
    int64_t t0;
    const char *data_dir;
    int sup; /* the supervisor's pid */
    held held[64];
    size_t nheld;
    int kills, pauses, slows, skipped;
} round;

static void say(const round *r, const char *fmt, ...) SL_PRINTF(2, 3);
static void say(const round *r, const char *fmt, ...)
{
    printf("[chaos +%7.1fs] ", (double)(mono_ms() - r->t0) / 1000.0);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* The pid of `name` if the table lists it and it is still the supervisor's child; else 0. */
static int find_target(const round *r, const char *name)
{
    cli_pid pids[CLI_PIDS_MAX];
    size_t n = 0;
    int sup = 0;
    if (cli_pids_read(r->data_dir, &sup, pids, CLI_PIDS_MAX, &n) != 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(pids[i].name, name) == 0 && cli_pid_is_child(pids[i].pid, sup))
            return pids[i].pid;
    return 0;
}

static int is_held(const round *r, int pid)
{
    for (size_t i = 0; i < r->nheld; i++)
        if (r->held[i].pid == pid) return 1;
    return 0;
}

static void release(round *r, size_t i, const char *why)
{
    held *h = &r->held[i];
    /* Only while it is still the supervisor's child (a stopped process cannot exit by itself). */
    if (h->stopped && cli_pid_is_child(h->pid, r->sup)) kill(h->pid, SIGCONT);
    say(r, "%-12s pid %-7d %s over%s", h->name, h->pid, cli_fault_name(h->fault), why);
    r->held[i] = r->held[--r->nheld];
}

static void apply_step(round *r, const cli_chaos_step *s, const char *name)
{
    int pid = find_target(r, name);
    if (pid == 0 || is_held(r, pid)) {
        r->skipped++;
        say(r, "%-12s %s skipped: %s", name, cli_fault_name(s->fault),
            pid ? "already held" : "not running (restarting?)");
        return;
    }
    if (s->fault == CLI_FAULT_KILL) {
        if (kill(pid, SIGKILL) == 0) r->kills++;
        say(r, "%-12s pid %-7d kill (SIGKILL)", name, pid);
        return;
    }
    if (r->nheld == SL_ARRAY_LEN(r->held)) {
        r->skipped++;
        return;
    }
    if (kill(pid, SIGSTOP) != 0) return;
    held *h = &r->held[r->nheld++];
    snprintf(h->name, sizeof h->name, "%s", name);
    h->pid = pid;
    h->fault = s->fault;
    h->stopped = 1;
    h->until_ms = mono_ms() + s->hold_ms;
    h->next_ms = mono_ms() + SLICE_MS;
    if (s->fault == CLI_FAULT_PAUSE) {
        r->pauses++;
        say(r, "%-12s pid %-7d pause (SIGSTOP) for %.1f s", name, pid, (double)s->hold_ms / 1000);
    } else {
        r->slows++;
        say(r, "%-12s pid %-7d slow (SIGSTOP/SIGCONT every %d ms) for %.1f s", name, pid, SLICE_MS,
            (double)s->hold_ms / 1000);
    }
}

static void tick_held(round *r)
{
    int64_t now = mono_ms();
    for (size_t i = 0; i < r->nheld;) {
        held *h = &r->held[i];
        if (now >= h->until_ms) {
            release(r, i, "");
            continue;
        }
        if (h->fault == CLI_FAULT_SLOW && now >= h->next_ms) {
            if (cli_pid_is_child(h->pid, r->sup)) kill(h->pid, h->stopped ? SIGCONT : SIGSTOP);
            h->stopped = !h->stopped;
            h->next_ms = now + SLICE_MS;
        }
        i++;
    }
}

/* Splits `spec` (comma-separated) into names[]. Returns the count or -1. */
static int split_targets(char *spec, char names[][CLI_NAME_MAX], int cap)
{
    int n = 0;
    for (char *save = NULL, *t = strtok_r(spec, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == cap || strlen(t) >= CLI_NAME_MAX || !*t) return -1;
        snprintf(names[n++], CLI_NAME_MAX, "%s", t);
    }
    return n;
}

/* GET /readyz answering 200 on every service port, TCP accept on nats's. */
static int tcp_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

static int all_ready(const int *ports, int nports, int nats_port, char *which, size_t cap)
{
    if (nats_port && !tcp_open(nats_port)) {
        snprintf(which, cap, "nats-server");
        return 0;
    }
    for (int i = 0; i < nports; i++) {
        char base[64], *resp = NULL;
        snprintf(base, sizeof base, "http://127.0.0.1:%d", ports[i]);
        int st = cli_http(base, "GET", "/readyz", NULL, NULL, 3000, &resp);
        free(resp);
        if (st != 200) {
            snprintf(which, cap, "port %d", ports[i]);
            return 0;
        }
    }
    return 1;
}

/* The ports to probe after the round: every HTTP process and nats (unless external or not
 * started: every service that uses events is hosted on an in-process bus). */
static int read_ports(const char *config, int *ports, int cap, int *nports, int *nats_port)
{
    sl_config *cfg = NULL;
    char err[SL_CONFIG_ERR_MAX];
    if (sl_config_load_file(config, &cfg, err) != 0) {
        fprintf(stderr, "shoal chaos: %s\n", err);
        return SL_ECONFIG;
    }
    json_t *root = sl_config_root(cfg);
    json_t *nats = json_object_get(root, "nats");
    *nats_port = json_is_true(json_object_get(nats, "external"))
                     ? 0
                     : (json_is_integer(json_object_get(nats, "port"))
                            ? (int)json_integer_value(json_object_get(nats, "port"))
                            : 4222);
    /* No nats-server when every service that uses events is hosted on an in-process bus
     * (shoal up's rule: cli_hosting_buses, the definitions next to this binary). */
    cli_hosting_group g[CLI_HOSTING_GROUPS_MAX];
    size_t ng = 0;
    char herr[256], self[PATH_MAX], defs_path[PATH_MAX + 32];
    if (*nats_port &&
        cli_hosting_read(root, g, CLI_HOSTING_GROUPS_MAX, &ng, herr, sizeof herr) == 0 && ng) {
        const char *bin = NULL;
        if (sl_config_get_string(cfg, "bin_dir", NULL, &bin, err) != 0 || !bin) {
            ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
            self[n > 0 ? n : 0] = '\0';
            bin = n > 0 ? dirname(self) : "build/bin";
        }
        snprintf(defs_path, sizeof defs_path, "%s/shoal-defs.json", bin);
        json_t *defs = json_load_file(defs_path, 0, NULL);
        int need = 1;
        if (cli_hosting_buses(root, defs, g, ng, &need, herr, sizeof herr) == 0 && !need)
            *nats_port = 0;
        json_decref(defs);
    }
    *nports = 0;
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(root, "services"), i, s)
    {
        json_t *port = json_object_get(s, "port");
        if (json_is_integer(port) && *nports < cap)
            ports[(*nports)++] = (int)json_integer_value(port);
    }
    sl_config_free(cfg);
    return 0;
}

/* Runs `shoal load ARGS` against the shop's gateway (--target and --admin-credentials are
 * added unless ARGS has them). `args` is split in place on spaces. */
static pid_t start_load(const char *target, const char *creds, char *args)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return -1;
    self[n] = '\0';
    char *argv[LOAD_ARGS_MAX + 8];
    int k = 0, has_target = 0, has_creds = 0;
    argv[k++] = self;
    argv[k++] = "load";
    for (char *save = NULL, *t = strtok_r(args, " ", &save); t && k < LOAD_ARGS_MAX + 2;
         t = strtok_r(NULL, " ", &save)) {
        has_target |= strncmp(t, "--target", 8) == 0;
        has_creds |= strncmp(t, "--admin-credentials", 19) == 0;
        argv[k++] = t;
    }
    if (!has_target) {
        argv[k++] = "--target";
        argv[k++] = (char *)target;
    }
    if (!has_creds) {
        argv[k++] = "--admin-credentials";
        argv[k++] = (char *)creds;
    }
    argv[k] = NULL;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execv(self, argv);
        _exit(127);
    }
    return pid;
}

static void usage(FILE *to)
{
    fprintf(to, "usage: shoal chaos [--config FILE] [--duration 5m] [--kill-every 10s]\n"
                "                   [--targets NAME,...] [--pause] [--latency] [--seed N]\n"
                "                   [--load \"ARGS\"] [--settle 120s]\n"
                "  exit status: the audit's after the round (0 clean, 1 violation, 2 error)\n");
}

int cli_chaos_main(int argc, char **argv)
{
    const char *config = "config/local.yaml";
    char *targets_spec = NULL, *load_args = NULL;
    int64_t duration = 300000, every = 10000, settle = 120000;
    int pause = 0, slow = 0, have_seed = 0;
    uint64_t seed = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t *dst = NULL;
        if (strcmp(a, "--config") == 0 && v)
            config = argv[++i];
        else if (strcmp(a, "--targets") == 0 && v)
            targets_spec = argv[++i];
        else if (strcmp(a, "--load") == 0 && v)
            load_args = argv[++i];
        else if (strcmp(a, "--pause") == 0)
            pause = 1;
        else if (strcmp(a, "--latency") == 0)
            slow = 1;
        else if (strcmp(a, "--seed") == 0 && v) {
            char *end = NULL;
            seed = strtoull(v, &end, 10);
            if (!*v || *end) {
                fprintf(stderr, "shoal chaos: --seed: not a number: %s\n", v);
                return 2;
            }
            have_seed = 1;
            i++;
        } else if (strcmp(a, "--duration") == 0 && v)
            dst = &duration;
        else if (strcmp(a, "--kill-every") == 0 && v)
            dst = &every;
        else if (strcmp(a, "--settle") == 0 && v)
            dst = &settle;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
        if (dst) {
            if (cli_parse_duration(v, dst) != 0 || (dst == &every && *dst < 100)) {
                fprintf(stderr, "shoal chaos: %s: not a duration (at least 100ms): %s\n", a, v);
                return 2;
            }
            i++;
        }
    }
    char data_dir[PATH_MAX];
    int gw = 0;
    if (cli_topology(config, data_dir, sizeof data_dir, &gw) != 0) return 2;
    round r = {.data_dir = data_dir};
    cli_pid pids[CLI_PIDS_MAX];
    size_t npids = 0;
    int sup = 0;
    int rc = cli_pids_read(data_dir, &sup, pids, CLI_PIDS_MAX, &npids);
    if (rc != 0 || kill(sup, 0) != 0) {
        fprintf(stderr, "shoal chaos: no running `shoal up` for %s (%s/pids: %s)\n", config,
                data_dir, rc ? sl_strerror(rc) : "its supervisor is gone");
        return 2;
    }
    r.sup = sup;
    char names[CLI_PIDS_MAX][CLI_NAME_MAX];
    int ntargets = 0;
    if (targets_spec) {
        char *spec = strdup(targets_spec);
        ntargets = spec ? split_targets(spec, names, CLI_PIDS_MAX) : -1;
        free(spec);
        for (int i = 0; i < ntargets; i++) {
            int known = 0;
            for (size_t k = 0; k < npids; k++)
                known |= strcmp(pids[k].name, names[i]) == 0;
            if (!known) {
                fprintf(stderr, "shoal chaos: --targets: %s is not a process of this shop\n",
                        names[i]);
                return 2;
            }
        }
    } else {
        for (size_t k = 0; k < npids; k++)
            memcpy(names[ntargets++], pids[k].name, CLI_NAME_MAX);
    }
    if (ntargets <= 0) {
        fprintf(stderr, "shoal chaos: no targets\n");
        return 2;
    }
    if (!have_seed) seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    size_t cap = (size_t)(duration / (every / 2) + 2);
    if (cap > CLI_CHAOS_STEPS_MAX) cap = CLI_CHAOS_STEPS_MAX;
    cli_chaos_step *plan = calloc(cap, sizeof *plan);
    size_t nsteps = 0;
    if (!plan || cli_chaos_plan(seed, duration, every, ntargets, pause, slow, plan, cap, &nsteps)) {
        free(plan);
        fprintf(stderr, "shoal chaos: cannot plan the round\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_interrupt};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    r.t0 = mono_ms();
    say(&r, "round of %.0f s, a fault every %.1f s on average, %d targets, seed %llu, %zu faults",
        (double)duration / 1000, (double)every / 1000, ntargets, (unsigned long long)seed, nsteps);
    pid_t load = -1;
    char *largs = load_args ? strdup(load_args) : NULL;
    if (largs) {
        char url[64], creds[PATH_MAX + 32];
        snprintf(url, sizeof url, "http://127.0.0.1:%d", gw ? gw : 8080);
        snprintf(creds, sizeof creds, "%s/admin-credentials", data_dir);
        load = start_load(url, creds, largs);
        say(&r, "load: shoal load %s (pid %d)", load_args, (int)load);
    }
    size_t next = 0;
    while (!interrupted) {
        int64_t t = mono_ms() - r.t0;
        while (next < nsteps && plan[next].at_ms <= t && !interrupted)
            apply_step(&r, &plan[next], names[plan[next].target]), next++;
        tick_held(&r);
        if (t >= duration && r.nheld == 0) break;
        usleep(20000);
    }
    while (r.nheld > 0)
        release(&r, 0, interrupted ? " (interrupted)" : "");
    free(plan);
    say(&r, "round over: %d kills, %d pauses, %d slowdowns, %d skipped", r.kills, r.pauses, r.slows,
        r.skipped);
    int64_t round_end = mono_ms(); /* what follows is measured from here */
    if (load > 0) {
        /* The load stops by itself; bounded all the same. */
        int st = 0;
        int64_t until = mono_ms() + 120000;
        while (waitpid(load, &st, WNOHANG) == 0) {
            if (mono_ms() > until || interrupted) {
                kill(load, SIGTERM);
                waitpid(load, &st, 0);
                break;
            }
            usleep(100000);
        }
        say(&r, "load finished (%s %d)", WIFEXITED(st) ? "status" : "signal",
            WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    }
    free(largs);
    if (interrupted) return 2;

    /* Settle: every process ready again, then the audit with what is left of the time. */
    int ports[CLI_PIDS_MAX], nports = 0, nats_port = 0;
    if (read_ports(config, ports, CLI_PIDS_MAX, &nports, &nats_port) != 0) return 2;
    int64_t s0 = mono_ms();
    char which[64] = "";
    while (!all_ready(ports, nports, nats_port, which, sizeof which)) {
        if (mono_ms() - s0 > settle || interrupted) {
            say(&r, "the shop did not come back within %.0f s (%s not ready)",
                (double)settle / 1000, which);
            return 2;
        }
        usleep(250000);
    }
    say(&r, "every process ready %.1f s after the round's end",
        (double)(mono_ms() - round_end) / 1000.0);
    int64_t left = settle - (mono_ms() - s0);
    char settle_arg[32];
    snprintf(settle_arg, sizeof settle_arg, "%lldms", (long long)(left > 1000 ? left : 1000));
    char *aargv[] = {"--config", (char *)config, "--settle", settle_arg, NULL};
    int st = cli_audit_main(4, aargv);
    say(&r, "time to settle and audit: %.1f s after the round's end; audit exit status %d",
        (double)(mono_ms() - round_end) / 1000.0, st);
    return st;
}
