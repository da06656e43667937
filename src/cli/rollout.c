/*
 * `shoal rollout SERVICE --to VERSION`: shifts the traffic of a gateway
 * cluster with version subsets to VERSION step by step through the admin
 * listener (PUT /admin/clusters/{name}/split), watches each step's calls in
 * the gateway's /metrics (gateway_subset_* series) and rolls back (VERSION
 * at weight 0) when the new version is worse than the limits, or when the
 * command is interrupted. The decisions are rollout_plan.c's.
 */
#include "rollout.h"
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HTTP_TIMEOUT_MS 5000
#define WAITS_MAX       3 /* intervals in a row with too few calls before giving up */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Sleeps `ms` in short slices; returns 1 when interrupted. */
static int nap(int64_t ms)
{
    while (ms > 0 && !interrupted) {
        int64_t d = ms < 100 ? ms : 100;
        struct timespec ts = {d / 1000, (d % 1000) * 1000000};
        nanosleep(&ts, NULL);
        ms -= d;
    }
    return interrupted != 0;
}

typedef struct subsets {
    char name[4][32];
    long weight[4];
    int healthy[4], endpoints[4];
    size_t n;
} subsets;

/* GET /admin/clusters, the cluster `name`'s subsets. 0, or 2 with a message printed. */
static int read_cluster(const cli_rollout_opts *o, subsets *out)
{
    char *body = NULL;
    int st = cli_http(o->admin, "GET", "/admin/clusters", NULL, NULL, HTTP_TIMEOUT_MS, &body);
    if (st != 200) {
        fprintf(stderr, "shoal rollout: %s/admin/clusters: %s\n", o->admin,
                st < 0 ? sl_strerror(st) : "unexpected status");
        free(body);
        return 2;
    }
    json_t *doc = json_loads(body, 0, NULL);
    free(body);
    json_t *cl, *found = NULL;
    size_t i;
    json_array_foreach(json_object_get(doc, "clusters"), i, cl)
    {
        const char *n = json_string_value(json_object_get(cl, "name"));
        if (n && strcmp(n, o->service) == 0) found = cl;
    }
    json_t *split = json_object_get(found, "split");
    if (!found || !json_is_array(split) || json_array_size(split) == 0) {
        fprintf(stderr, "shoal rollout: the gateway has no cluster %s with version subsets\n",
                o->service);
        json_decref(doc);
        return 2;
    }
    memset(out, 0, sizeof *out);
    json_t *s;
    json_array_foreach(split, i, s)
    {
        if (out->n == 4) break;
        snprintf(out->name[out->n], sizeof out->name[0], "%s",
                 json_string_value(json_object_get(s, "subset")) ?: "");
        out->weight[out->n] = (long)json_integer_value(json_object_get(s, "weight"));
        out->endpoints[out->n] = (int)json_integer_value(json_object_get(s, "endpoints"));
        out->n++;
    }
    json_t *ep;
    json_array_foreach(json_object_get(found, "endpoints"), i, ep)
    {
        const char *v = json_string_value(json_object_get(ep, "version"));
        const char *h = json_string_value(json_object_get(ep, "health"));
        for (size_t k = 0; v && h && k < out->n; k++)
            if (strcmp(out->name[k], v) == 0 && strcmp(h, "healthy") == 0) out->healthy[k]++;
    }
    json_decref(doc);
    return 0;
}

static int set_split(const cli_rollout_opts *o, const char *old, uint32_t pct)
{
    char path[160], body[256];
    snprintf(path, sizeof path, "/admin/clusters/%s/split", o->service);
    snprintf(body, sizeof body,
             "{\"split\":[{\"subset\":\"%s\",\"weight\":%u},{\"subset\":\"%s\",\"weight\":%u}]}",
             o->to, pct, old, 100 - pct);
    char *resp = NULL;
    int st = cli_http(o->admin, "PUT", path, NULL, body, HTTP_TIMEOUT_MS, &resp);
    if (st != 200)
        fprintf(stderr, "shoal rollout: PUT %s: %s %s\n", path,
                st < 0 ? sl_strerror(st) : "refused:",
                st < 0 ? ""
                : resp ? resp
                       : "");
    free(resp);
    return st == 200 ? 0 : -1;
}

static int sample(const cli_rollout_opts *o, const char *old, cli_rollout_sample *nw,
                  cli_rollout_sample *ow)
{
    char *text = NULL;
    int st = cli_http(o->admin, "GET", "/metrics", NULL, NULL, HTTP_TIMEOUT_MS, &text);
    if (st != 200) {
        fprintf(stderr, "shoal rollout: %s/metrics: %s\n", o->admin,
                st < 0 ? sl_strerror(st) : "unexpected status");
        free(text);
        return -1;
    }
    cli_rollout_sample_parse(text, strlen(text), o->service, o->to, nw);
    cli_rollout_sample_parse(text, strlen(text), o->service, old, ow);
    free(text);
    return 0;
}

static int rollback(const cli_rollout_opts *o, const char *old, const char *why)
{
    printf("rollback: %s; %s back to 100%%, %s at 0%%\n", why, old, o->to);
    if (set_split(o, old, 0) != 0) {
        fprintf(stderr, "shoal rollout: the rollback itself failed: set the split by hand\n");
        return 2;
    }
    printf("rolled back: %s serves all of %s\n", old, o->service);
    return 1;
}

/* Blue/green: waits until every endpoint of the new version is healthy (one interval at most). */
static int wait_ready(const cli_rollout_opts *o, int to)
{
    int64_t waited = 0;
    for (;;) {
        subsets ss;
        if (read_cluster(o, &ss) != 0) return -1;
        if (ss.healthy[to] == ss.endpoints[to] && ss.endpoints[to] > 0) {
            printf("ready: %d of %d %s endpoints healthy\n", ss.healthy[to], ss.endpoints[to],
                   o->to);
            return 0;
        }
        if (waited >= o->interval_ms || nap(500)) {
            printf("not ready: %d of %d %s endpoints healthy\n", ss.healthy[to], ss.endpoints[to],
                   o->to);
            return -1;
        }
        waited += 500;
    }
}

int cli_rollout_main(int argc, char **argv)
{
    cli_rollout_opts o;
    char err[256];
    int rc = cli_rollout_args(argc, argv, &o, err);
    if (rc == 1) return 0;
    if (rc != 0) {
        fprintf(stderr, "shoal rollout: %s (shoal rollout --help)\n", err);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    subsets ss;
    if (read_cluster(&o, &ss) != 0) return 2;
    int to = -1, from = -1;
    for (size_t k = 0; k < ss.n; k++) {
        if (strcmp(ss.name[k], o.to) == 0)
            to = (int)k;
        else if (o.from ? strcmp(ss.name[k], o.from) == 0
                        : (from < 0 || ss.weight[k] > ss.weight[from]))
            from = (int)k;
    }
    if (to < 0 || from < 0) {
        fprintf(stderr, "shoal rollout: cluster %s has no subset %s\n", o.service,
                to < 0   ? o.to
                : o.from ? o.from
                         : "to move traffic from");
        return 2;
    }
    const char *old = ss.name[from];
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    printf("rollout of %s: %s (now %ld%%) -> %s (now %ld%%)%s\n", o.service, old, ss.weight[from],
           o.to, ss.weight[to], o.blue_green ? ", blue/green" : "");
    if (o.blue_green) {
        if (wait_ready(&o, to) != 0) {
            printf("%s is not ready; nothing changed\n", o.to);
            return 1;
        }
        o.steps[0] = 100;
        o.nsteps = 1;
    }
    for (size_t i = 0; i < o.nsteps; i++) {
        uint32_t pct = o.steps[i];
        if (set_split(&o, old, pct) != 0) return rollback(&o, old, "the split was refused");
        printf("step %zu/%zu: %s at %u%%, %s at %u%%\n", i + 1, o.nsteps, o.to, pct, old,
               100 - pct);
        cli_rollout_sample nb, ob, na, oa;
        if (sample(&o, old, &nb, &ob) != 0) return rollback(&o, old, "the metrics are unreadable");
        for (int waits = 0;; waits++) {
            if (nap(o.interval_ms)) return rollback(&o, old, "interrupted");
            if (sample(&o, old, &na, &oa) != 0)
                return rollback(&o, old, "the metrics are unreadable");
            cli_rollout_window nw, ow;
            cli_rollout_window_of(&nb, &na, &nw);
            cli_rollout_window_of(&ob, &oa, &ow);
            char why[256];
            cli_rollout_verdict v = cli_rollout_judge(&o, &nw, &ow, why);
            if (v == CLI_ROLLOUT_ROLLBACK) return rollback(&o, old, why);
            if (v == CLI_ROLLOUT_PROCEED) {
                printf("  ok: %s\n", why);
                break;
            }
            printf("  waiting: %s\n", why);
            if (waits + 1 == WAITS_MAX)
                return rollback(&o, old, "too few calls reached the new version");
        }
    }
    printf("done: %s serves all of %s; %s kept at weight 0 for a rollback\n", o.to, o.service, old);
    return 0;
}
