/*
 * `shoal graph`: the service dependency graph and its rules (graph.h,
 * docs/observability.md "Dependency graph"). This file is the I/O: it reads
 * the topology, the gateway's configuration, the service definitions written
 * by shoal-defs and traces (a file, or the local receiver's JSON API), hands
 * them to graph_model.c, prints the graph and the violations, and sets the
 * exit status: 0 no violation, 1 a violation, 2 an error.
 */
#include "graph.h"
#include "cli.h"

#include <shoal/config.h>

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SPANS_FILES_MAX  8
#define SPANS_FILE_MAX   ((size_t)64 << 20) /* bytes of a --spans file */
#define TRACES_LIMIT_MAX 100                /* --limit: the receiver answers at most 100 */
#define RECEIVER_DEFAULT "http://127.0.0.1:4318"
#define RECEIVER_TIMEOUT 10000 /* ms per request */

typedef struct graph_opts {
    const char *config, *gateway, *defs;
    int no_config, no_defs;
    const char *spans[SPANS_FILES_MAX];
    size_t nspans;
    int traces;
    const char *receiver; /* --receiver, else the topology's receiver, else RECEIVER_DEFAULT */
    int receiver_given;
    char receiver_buf[64];
    int64_t limit;
    int dot;
    cli_graph_rules rules;
} graph_opts;

static void usage(FILE *to)
{
    fprintf(to,
            "usage: shoal graph [OPTIONS]\n"
            "  The service dependency graph and its rules: no cycle among synchronous calls, no\n"
            "  request path longer than --max-hops from the gateway, no request calling more\n"
            "  than --max-fanout services, no database shared by two services. Exit status 0\n"
            "  when the rules hold, 1 on a violation (each named on stderr), 2 on an error.\n"
            "  Static sources (unless --no-config):\n"
            "    --config FILE      the topology (default config/local.yaml): services, their\n"
            "                       calls and databases\n"
            "    --gateway FILE     the gateway's configuration (default: the topology's\n"
            "                       gateway `config:`): routes, aggregates, clusters\n"
            "    --defs FILE        the service definitions written by the build (default:\n"
            "                       shoal-defs.json beside this binary): subscriptions and\n"
            "                       published events; --no-defs leaves them out\n"
            "  Traces:\n"
            "    --spans FILE       a JSON array of traces as the receiver's\n"
            "                       GET /api/traces/{id} answers them (up to %d files)\n"
            "    --traces           the recent traces of the local receiver\n"
            "    --receiver URL     the receiver (default: the topology's telemetry.receiver,\n"
            "                       else %s)\n"
            "    --limit N          how many recent traces (default and most: %d)\n"
            "  Rules and output:\n"
            "    --max-hops N       default %d\n"
            "    --max-fanout N     distinct services per request, default %d\n"
            "    --dot              Graphviz dot instead of text\n",
            SPANS_FILES_MAX, RECEIVER_DEFAULT, TRACES_LIMIT_MAX, CLI_GRAPH_DEFAULT_MAX_HOPS,
            CLI_GRAPH_DEFAULT_MAX_FANOUT);
}

static int parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v < min || v > max) return SL_EINVAL;
    *out = v;
    return 0;
}

/* Returns 0, or 2 (usage printed) on a bad argument, or -1 after --help. */
static int parse_args(int argc, char **argv, graph_opts *o)
{
    *o = (graph_opts){
        .config = "config/local.yaml", .receiver = RECEIVER_DEFAULT, .limit = TRACES_LIMIT_MAX};
    cli_graph_rules_init(&o->rules);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return -1;
        } else if (strcmp(a, "--no-config") == 0) {
            o->no_config = 1;
        } else if (strcmp(a, "--no-defs") == 0) {
            o->no_defs = 1;
        } else if (strcmp(a, "--traces") == 0) {
            o->traces = 1;
        } else if (strcmp(a, "--dot") == 0) {
            o->dot = 1;
        } else if (!v) {
            fprintf(stderr, "shoal graph: %s: unknown option or missing value\n", a);
            usage(stderr);
            return 2;
        } else if (strcmp(a, "--config") == 0) {
            o->config = argv[++i];
        } else if (strcmp(a, "--gateway") == 0) {
            o->gateway = argv[++i];
        } else if (strcmp(a, "--defs") == 0) {
            o->defs = argv[++i];
        } else if (strcmp(a, "--receiver") == 0) {
            o->receiver = argv[++i];
            o->receiver_given = 1;
        } else if (strcmp(a, "--spans") == 0) {
            if (o->nspans == SPANS_FILES_MAX) {
                fprintf(stderr, "shoal graph: --spans: at most %d files\n", SPANS_FILES_MAX);
                return 2;
            }
            o->spans[o->nspans++] = argv[++i];
        } else if (strcmp(a, "--limit") == 0 || strcmp(a, "--max-hops") == 0 ||
                   strcmp(a, "--max-fanout") == 0) {
            int64_t max = strcmp(a, "--limit") == 0 ? TRACES_LIMIT_MAX : CLI_GRAPH_NODES_MAX;
            if (parse_int(argv[++i], 1, max, &n) != 0) {
                fprintf(stderr, "shoal graph: %s: must be an integer from 1 to %lld\n", a,
                        (long long)max);
                return 2;
            }
            if (strcmp(a, "--limit") == 0)
                o->limit = n;
            else if (strcmp(a, "--max-hops") == 0)
                o->rules.max_hops = (int)n;
            else
                o->rules.max_fanout = (int)n;
        } else {
            fprintf(stderr, "shoal graph: %s: unknown option\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (o->no_config && o->nspans == 0 && !o->traces) {
        fprintf(stderr, "shoal graph: --no-config needs --spans or --traces\n");
        return 2;
    }
    return 0;
}

static void print_errors(const char *source, const sl_json_errors *errs)
{
    for (size_t i = 0; i < errs->count; i++)
        fprintf(stderr, "shoal graph: %s: %s%s%s\n", source, errs->items[i].field,
                errs->items[i].field[0] ? ": " : "", errs->items[i].message);
    if (errs->dropped) fprintf(stderr, "shoal graph: %s: %zu more errors\n", source, errs->dropped);
}

/* Reads a JSON file of at most `max` bytes. Returns 0 with *out (owned) or an SL_E code (the
 * reason printed). */
static int read_json_file(const char *path, size_t max, json_t **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "shoal graph: cannot read %s: %s\n", path, strerror(errno));
        return SL_EIO;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            if (cap > max + 1) cap = max + 1;
            if (len == cap) {
                fprintf(stderr, "shoal graph: %s: larger than %zu bytes\n", path, max);
                rc = SL_ELIMIT;
                break;
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                rc = SL_ENOMEM;
                break;
            }
            buf = nb;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "shoal graph: cannot read %s\n", path);
        rc = SL_EIO;
    }
    fclose(f);
    if (rc == 0) {
        sl_json_errors errs;
        sl_json_errors_init(&errs);
        sl_json_limits lim = {.max_bytes = max, .max_depth = 16, .allow_any_top = true};
        rc = sl_json_parse(buf, len, &lim, out, &errs);
        if (rc != 0) print_errors(path, &errs);
    }
    free(buf);
    return rc;
}

/* The topology, the gateway's configuration and the definitions. Returns 0 or 2. */
static int load_static(cli_graph *g, graph_opts *o)
{
    char err[SL_CONFIG_ERR_MAX];
    sl_config *topo = NULL, *gw = NULL;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    int rc = sl_config_load_file(o->config, &topo, err);
    /* The same environment overrides `shoal up` applies. */
    static const char *const sections[] = {"nats", "gateway", "services", NULL};
    extern char **environ;
    if (rc == 0) rc = sl_config_apply_env(topo, environ, sections, err);
    if (rc != 0) {
        fprintf(stderr, "shoal graph: %s\n", err);
        sl_config_free(topo);
        return 2;
    }
    if (cli_graph_load_topology(g, sl_config_root(topo), &errs) != 0) {
        print_errors(o->config, &errs);
        sl_config_free(topo);
        return 2;
    }
    /* The local receiver `shoal up` starts: telemetry.receiver.port (docs/observability.md). */
    int64_t port = 0;
    if (!o->receiver_given &&
        sl_config_get_int(topo, "telemetry.receiver.port", 0, 0, 65535, &port, err) == 0 && port) {
        snprintf(o->receiver_buf, sizeof o->receiver_buf, "http://127.0.0.1:%d", (int)port);
        o->receiver = o->receiver_buf;
    }
    /* The gateway: --gateway, else the `config:` of the topology's process "gateway". */
    const char *gw_path = o->gateway;
    size_t i;
    json_t *svc;
    json_array_foreach(json_object_get(sl_config_root(topo), "services"), i, svc)
    {
        const char *name = json_string_value(json_object_get(svc, "name"));
        if (!gw_path && name && strcmp(name, CLI_GRAPH_ENTRY) == 0)
            gw_path = json_string_value(json_object_get(svc, "config"));
    }
    rc = 0;
    if (gw_path) {
        if (sl_config_load_file(gw_path, &gw, err) != 0) {
            fprintf(stderr, "shoal graph: %s\n", err);
            rc = 2;
        } else if (cli_graph_load_gateway(g, CLI_GRAPH_ENTRY, sl_config_root(gw), &errs) != 0) {
            print_errors(gw_path, &errs);
            rc = 2;
        }
    }
    sl_config_free(gw);
    sl_config_free(topo);
    if (rc != 0 || o->no_defs) return rc;
    /* The definitions: --defs, else shoal-defs.json beside this binary. */
    char def_path[PATH_MAX + 32];
    if (o->defs) {
        snprintf(def_path, sizeof def_path, "%s", o->defs);
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) n = 0;
        self[n] = '\0';
        snprintf(def_path, sizeof def_path, "%s/shoal-defs.json", n ? dirname(self) : ".");
        if (access(def_path, R_OK) != 0) {
            fprintf(stderr,
                    "shoal graph: %s is missing (it is written by the build): events are left "
                    "out\n",
                    def_path);
            return 0;
        }
    }
    json_t *defs = NULL;
    if (read_json_file(def_path, SL_JSON_DEFAULT_MAX_BYTES * 4, &defs) != 0) return 2;
    size_t unmatched = 0;
    rc = cli_graph_load_defs(g, defs, 1, &unmatched, &errs);
    json_decref(defs);
    if (rc != 0) {
        print_errors(def_path, &errs);
        return 2;
    }
    return 0;
}

/* A trace id safe in a URL path: hex digits (the receiver's ids). */
static int safe_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= CLI_GRAPH_ID_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdefABCDEF", s[i])) return 0;
    return 1;
}

/* GET base+path as JSON. Returns 0 with *out (owned) or 2 (the reason printed). */
static int get_json(const char *base, const char *path, json_t **out)
{
    char *body = NULL;
    int st = cli_http(base, "GET", path, NULL, NULL, RECEIVER_TIMEOUT, &body);
    if (st < 0) {
        fprintf(stderr,
                "shoal graph: %s%s: %s (is the trace receiver running? `shoal up` starts it)\n",
                base, path, sl_strerror(st));
        return 2;
    }
    if (st != 200) {
        fprintf(stderr, "shoal graph: %s%s: status %d\n", base, path, st);
        free(body);
        return 2;
    }
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    sl_json_limits lim = {.max_bytes = SPANS_FILE_MAX, .max_depth = 16};
    int rc = sl_json_parse(body, strlen(body), &lim, out, &errs);
    free(body);
    if (rc != 0) {
        print_errors(path, &errs);
        return 2;
    }
    return 0;
}

/* The receiver's recent traces as one array of trace objects. Returns 0 or 2. */
static int fetch_traces(const graph_opts *o, json_t **out)
{
    json_t *list = NULL, *all = json_array();
    char path[128];
    snprintf(path, sizeof path, "/api/traces?limit=%lld", (long long)o->limit);
    *out = NULL;
    if (!all || get_json(o->receiver, path, &list) != 0) {
        json_decref(all);
        return 2;
    }
    json_t *items = json_object_get(list, "traces");
    if (!json_is_array(items)) {
        fprintf(stderr, "shoal graph: %s%s: traces: must be an array\n", o->receiver, path);
        json_decref(list);
        json_decref(all);
        return 2;
    }
    size_t i;
    json_t *t;
    int rc = 0;
    json_array_foreach(items, i, t)
    {
        const char *id = json_string_value(json_object_get(t, "trace_id"));
        if (i >= (size_t)o->limit) break;
        if (!safe_id(id)) {
            fprintf(stderr, "shoal graph: %s%s: traces[%zu].trace_id: must be hex digits\n",
                    o->receiver, path, i);
            rc = 2;
            break;
        }
        char one[CLI_GRAPH_ID_MAX + 16];
        snprintf(one, sizeof one, "/api/traces/%s", id);
        json_t *trace = NULL;
        if ((rc = get_json(o->receiver, one, &trace)) != 0) break;
        if (json_array_append_new(all, trace) != 0) {
            rc = 2;
            break;
        }
    }
    json_decref(list);
    if (rc != 0) {
        json_decref(all);
        return rc;
    }
    *out = all;
    return 0;
}

static int load_traces(cli_graph *g, const char *source, json_t *traces)
{
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    cli_graph_trace_stats st;
    if (cli_graph_load_traces(g, traces, &st, &errs) != 0) {
        print_errors(source, &errs);
        return 2;
    }
    fprintf(stderr, "shoal graph: %s: %zu traces, %zu spans", source, st.traces, st.spans);
    if (st.unresolved_calls)
        fprintf(stderr, "; %zu client spans name no callee", st.unresolved_calls);
    if (st.unresolved_links)
        fprintf(stderr, "; %zu consumer spans without their producer", st.unresolved_links);
    fprintf(stderr, "\n");
    return 0;
}

int cli_graph_main(int argc, char **argv)
{
    graph_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) return rc < 0 ? 0 : rc;
    cli_graph *g = NULL;
    if (cli_graph_new(&g) != 0) {
        fprintf(stderr, "shoal graph: out of memory\n");
        return 2;
    }
    if (!o.no_config) rc = load_static(g, &o);
    for (size_t i = 0; rc == 0 && i < o.nspans; i++) {
        json_t *doc = NULL;
        rc = read_json_file(o.spans[i], SPANS_FILE_MAX, &doc) != 0 ? 2 : 0;
        if (rc == 0) rc = load_traces(g, o.spans[i], doc);
        json_decref(doc);
    }
    if (rc == 0 && o.traces) {
        json_t *doc = NULL;
        rc = fetch_traces(&o, &doc);
        if (rc == 0) rc = load_traces(g, o.receiver, doc);
        json_decref(doc);
    }
    cli_violation v[32];
    size_t n = 0;
    char *text = NULL;
    if (rc == 0 &&
        (cli_graph_check(g, &o.rules, v, SL_ARRAY_LEN(v), &n) != 0 ||
         (o.dot ? cli_graph_dot(g, &o.rules, &text) : cli_graph_text(g, &o.rules, &text)) != 0)) {
        fprintf(stderr, "shoal graph: out of memory\n");
        rc = 2;
    }
    cli_graph_free(g);
    if (rc != 0) return rc;
    fputs(text, stdout);
    free(text);
    if (!o.dot) {
        printf("\nrules: at most %d hops from %s, at most %d services per request, no cycle, no "
               "shared database: %s\n",
               o.rules.max_hops, o.rules.entry, o.rules.max_fanout, n ? "VIOLATED" : "ok");
    }
    fflush(stdout);
    for (size_t i = 0; i < n && i < SL_ARRAY_LEN(v); i++)
        fprintf(stderr, "%s\n", v[i].text);
    if (n > SL_ARRAY_LEN(v)) fprintf(stderr, "... and %zu more violations\n", n - SL_ARRAY_LEN(v));
    return n ? 1 : 0;
}
