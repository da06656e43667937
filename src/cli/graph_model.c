/*
 * The pure part of `shoal graph` (graph.h): the graph, its sources, the
 * checks and the renderings. No I/O: the caller loads the trees.
 */
#include "graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct edge {
    int from, to;
    cli_edge_kind kind;
    uint64_t declared, seen;
    char labels[CLI_GRAPH_LABELS_MAX][CLI_GRAPH_LABEL_MAX];
    size_t nlabels, more_labels;
} edge;

typedef struct node {
    char name[CLI_GRAPH_NAME_MAX];
    char db[CLI_GRAPH_DB_MAX];
    size_t fanout; /* distinct callees of the request with the most */
    char fan_where[CLI_GRAPH_LABEL_MAX];
    int fan_callees[CLI_GRAPH_NODES_MAX];
} node;

struct cli_graph {
    node nodes[CLI_GRAPH_NODES_MAX];
    size_t nn;
    edge *edges;
    size_t ne;
};

int cli_graph_new(cli_graph **out)
{
    *out = NULL;
    cli_graph *g = calloc(1, sizeof *g);
    if (!g) return SL_ENOMEM;
    g->edges = calloc(CLI_GRAPH_EDGES_MAX, sizeof *g->edges);
    if (!g->edges) {
        free(g);
        return SL_ENOMEM;
    }
    *out = g;
    return 0;
}

void cli_graph_free(cli_graph *g)
{
    if (!g) return;
    free(g->edges);
    free(g);
}

static int find_node(const cli_graph *g, const char *name)
{
    for (size_t i = 0; i < g->nn; i++)
        if (strcmp(g->nodes[i].name, name) == 0) return (int)i;
    return -1;
}

/* Finds or adds `name`; returns its index or a negative SL_E code. */
static int node_index(cli_graph *g, const char *name)
{
    if (!name) return SL_EINVAL;
    size_t len = strlen(name);
    if (len == 0 || len >= CLI_GRAPH_NAME_MAX) return SL_EINVAL;
    int i = find_node(g, name);
    if (i >= 0) return i;
    if (g->nn == CLI_GRAPH_NODES_MAX) return SL_ELIMIT;
    memcpy(g->nodes[g->nn].name, name, len + 1);
    return (int)g->nn++;
}

int cli_graph_add_node(cli_graph *g, const char *name)
{
    int i = node_index(g, name);
    return i < 0 ? i : 0;
}

int cli_graph_has_node(const cli_graph *g, const char *name)
{
    return name && find_node(g, name) >= 0;
}

/* Copies at most cap - 1 bytes of s, never cutting a UTF-8 sequence. */
static void copy_cut(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
}

int cli_graph_add_edge(cli_graph *g, const char *from, const char *to, cli_edge_kind kind,
                       const char *label, uint64_t declared, uint64_t seen)
{
    int a = node_index(g, from);
    if (a < 0) return a;
    int b = node_index(g, to);
    if (b < 0) return b;
    edge *e = NULL;
    for (size_t i = 0; i < g->ne && !e; i++)
        if (g->edges[i].from == a && g->edges[i].to == b && g->edges[i].kind == kind)
            e = &g->edges[i];
    if (!e) {
        if (g->ne == CLI_GRAPH_EDGES_MAX) return SL_ELIMIT;
        e = &g->edges[g->ne++];
        e->from = a;
        e->to = b;
        e->kind = kind;
    }
    e->declared += declared;
    e->seen += seen;
    if (label && *label) {
        char cut[CLI_GRAPH_LABEL_MAX];
        copy_cut(cut, sizeof cut, label);
        for (size_t i = 0; i < e->nlabels; i++)
            if (strcmp(e->labels[i], cut) == 0) return 0;
        if (e->nlabels < CLI_GRAPH_LABELS_MAX)
            memcpy(e->labels[e->nlabels++], cut, strlen(cut) + 1);
        else
            e->more_labels++;
    }
    return 0;
}

int cli_graph_set_db(cli_graph *g, const char *service, const char *db)
{
    int i = node_index(g, service);
    if (i < 0) return i;
    if (!db || strlen(db) >= CLI_GRAPH_DB_MAX) return SL_EINVAL;
    memcpy(g->nodes[i].db, db, strlen(db) + 1);
    return 0;
}

int cli_graph_add_request(cli_graph *g, const char *service, const char *where,
                          const char *const *callees, size_t n)
{
    int s = node_index(g, service);
    if (s < 0) return s;
    int idx[CLI_GRAPH_NODES_MAX];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int c = node_index(g, callees[i]);
        if (c < 0) return c;
        size_t j = 0;
        while (j < k && idx[j] != c)
            j++;
        if (j == k) idx[k++] = c; /* k <= nodes in the graph <= CLI_GRAPH_NODES_MAX */
    }
    node *nd = &g->nodes[s];
    if (k <= nd->fanout) return 0;
    nd->fanout = k;
    copy_cut(nd->fan_where, sizeof nd->fan_where, where ? where : "");
    memcpy(nd->fan_callees, idx, k * sizeof idx[0]);
    return 0;
}

/* ---- database keys ------------------------------------------------------------------------- */

/* Lexical normalisation of a path: "a//b/./c/../d" -> "a/b/d". Returns 0 or SL_EINVAL. */
static int norm_path(const char *p, char *out, size_t cap)
{
    const char *seg[128];
    size_t len[128], n = 0;
    int abs = p[0] == '/';
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p) break;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t l = (size_t)(p - s);
        if (l == 1 && s[0] == '.') continue;
        if (l == 2 && s[0] == '.' && s[1] == '.' && n > 0 &&
            !(len[n - 1] == 2 && seg[n - 1][0] == '.' && seg[n - 1][1] == '.')) {
            n--;
            continue;
        }
        if (l == 2 && s[0] == '.' && s[1] == '.' && abs) continue; /* "/.." is "/" */
        if (n == SL_ARRAY_LEN(seg)) return SL_EINVAL;
        seg[n] = s;
        len[n++] = l;
    }
    size_t o = 0;
    if (abs) {
        if (cap < 2) return SL_EINVAL;
        out[o++] = '/';
    }
    for (size_t i = 0; i < n; i++) {
        if (o + len[i] + 2 > cap) return SL_EINVAL;
        if (i > 0) out[o++] = '/';
        memcpy(out + o, seg[i], len[i]);
        o += len[i];
    }
    if (o == 0) {
        if (cap < 2) return SL_EINVAL;
        out[o++] = '.';
    }
    out[o] = '\0';
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes n bytes of s into out (cap bytes; '+' stays). Returns 0 or SL_EINVAL. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n) return SL_EINVAL;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0) return SL_EINVAL;
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap) return SL_EINVAL;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* Copies src into dst (cap bytes) when it fits. Returns 0 or SL_EINVAL. */
static int set_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) return SL_EINVAL;
    memcpy(dst, src, n + 1);
    return 0;
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z') *s = (char)(*s + 32);
}

/* postgres(ql)://[user[:password]@][host][:port][/database][?k=v&...] */
static int pg_key(const char *url, char *key, size_t cap)
{
    const char *p = strstr(url, "://") + 3;
    const char *end = p + strcspn(p, "/?");
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@') at = q;
    char user[128] = "", host[128] = "", port[16] = "5432", db[128] = "";
    if (at) { /* the user, never the password */
        size_t ul = strcspn(p, ":@");
        if (pct_decode(p, ul, user, sizeof user) != 0) return SL_EINVAL;
    }
    const char *h = at ? at + 1 : p;
    const char *hp_end = end;
    const char *colon = NULL;
    if (*h == '[') { /* [v6]:port */
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb) return SL_EINVAL;
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        for (const char *q = h; q < end; q++)
            if (*q == ':') colon = q;
    }
    size_t hl = (size_t)((colon ? colon : hp_end) - h);
    if (hl >= sizeof host) return SL_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (colon) {
        size_t pl = (size_t)(hp_end - colon - 1);
        if (pl >= sizeof port) return SL_EINVAL;
        if (pl > 0) {
            memcpy(port, colon + 1, pl);
            port[pl] = '\0';
        }
    }
    const char *rest = end;
    if (*rest == '/') {
        size_t dl = strcspn(rest + 1, "?");
        if (pct_decode(rest + 1, dl, db, sizeof db) != 0) return SL_EINVAL;
        rest += 1 + dl;
    }
    char search[128] = "";
    if (*rest == '?') {
        const char *q = rest + 1;
        while (*q) {
            size_t kl = strcspn(q, "=&");
            size_t vl = q[kl] == '=' ? strcspn(q + kl + 1, "&") : 0;
            const char *v = q + kl + (q[kl] == '=' ? 1 : 0);
            char val[256];
            if (pct_decode(v, vl, val, sizeof val) != 0) return SL_EINVAL;
            int rc = 0;
            if (kl == 4 && strncmp(q, "host", 4) == 0)
                rc = set_str(host, sizeof host, val);
            else if (kl == 4 && strncmp(q, "port", 4) == 0)
                rc = set_str(port, sizeof port, val);
            else if (kl == 6 && strncmp(q, "dbname", 6) == 0)
                rc = set_str(db, sizeof db, val);
            else if (kl == 4 && strncmp(q, "user", 4) == 0)
                rc = set_str(user, sizeof user, val);
            else if (kl == 7 && strncmp(q, "options", 7) == 0) {
                const char *sp = strstr(val, "search_path=");
                if (sp) {
                    sp += strlen("search_path=");
                    size_t sl = strcspn(sp, " ");
                    if (sl >= sizeof search) return SL_EINVAL;
                    memcpy(search, sp, sl);
                    search[sl] = '\0';
                }
            }
            if (rc != 0) return rc;
            q = v + vl;
            if (*q == '&') q++;
        }
    }
    lower(host);
    if (!host[0]) memcpy(host, "localhost", sizeof "localhost");
    if (!db[0]) memcpy(db, user, sizeof db);
    int n = snprintf(key, cap, "postgresql://%s:%s/%s%s%s", host, port, db,
                     search[0] ? "?search_path=" : "", search);
    return n < 0 || (size_t)n >= cap ? SL_EINVAL : 0;
}

int cli_graph_db_key(const char *url, char *key, size_t cap)
{
    if (!url || !*url || cap == 0) return SL_EINVAL;
    key[0] = '\0';
    if (strncmp(url, "sqlite:", 7) == 0) {
        const char *path = url + 7;
        if (strncmp(path, "//", 2) == 0) path += 2; /* sqlite:///abs, as sl_db_open reads it */
        if (!*path) return SL_EINVAL;
        if (strcmp(path, ":memory:") == 0) return 0;
        if (cap < 8) return SL_EINVAL;
        memcpy(key, "sqlite:", 8);
        return norm_path(path, key + 7, cap - 7);
    }
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        return pg_key(url, key, cap);
    return SL_EINVAL; /* what sl_db_open does not open either */
}

/* ---- static sources ------------------------------------------------------------------------ */

/* A string member `key` of `obj` at `path`: NULL when absent or null; "must be a string" when
 * it is something else (*bad set). */
static const char *opt_string(const json_t *obj, const char *key, const char *path,
                              sl_json_errors *errs, int *bad)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return NULL;
    if (!json_is_string(v)) {
        char field[SL_JSON_FIELD_MAX];
        if (sl_json_path_key(field, sizeof field, path, key) != 0) field[0] = '\0';
        sl_json_errors_add(errs, field, "must be a string");
        *bad = 1;
        return NULL;
    }
    return json_string_value(v);
}

/* The graph's error for `rc` at `field`. Returns rc. */
static int graph_err(int rc, sl_json_errors *errs, const char *field, const char *what)
{
    if (rc == SL_ELIMIT)
        sl_json_errors_add(errs, field, "more than %d services or %d edges", CLI_GRAPH_NODES_MAX,
                           CLI_GRAPH_EDGES_MAX);
    else if (rc != 0)
        sl_json_errors_add(errs, field, "must be %s of 1 to %d bytes", what,
                           CLI_GRAPH_NAME_MAX - 1);
    return rc;
}

/* The database of the topology's service `name` at `path`, as `shoal up` hands it over:
 * env's SHOAL_DB__URL (applied last), else db_url, else a SQLite file in the data directory. */
static int service_db(cli_graph *g, const char *name, const char *path, const char *data_dir,
                      const char *db_url, const json_t *env, sl_json_errors *errs)
{
    char field[SL_JSON_FIELD_MAX], url[1200], key[CLI_GRAPH_DB_MAX];
    int bad = 0;
    snprintf(field, sizeof field, "%s.env", path);
    const char *env_url = opt_string(env, "SHOAL_DB__URL", field, errs, &bad);
    if (bad) return SL_EINVAL;
    if (env_url)
        snprintf(url, sizeof url, "%s", env_url);
    else if (db_url)
        snprintf(url, sizeof url, "%s", db_url);
    else
        snprintf(url, sizeof url, "sqlite:%s/%s.db", data_dir, name);
    if (cli_graph_db_key(url, key, sizeof key) != 0) {
        snprintf(field, sizeof field, "%s.%s", path,
                 env_url  ? "env.SHOAL_DB__URL"
                 : db_url ? "db_url"
                          : "data_dir");
        sl_json_errors_add(errs, field, "is not a database URL this tool can read");
        return SL_EINVAL;
    }
    return cli_graph_set_db(g, name, key);
}

int cli_graph_load_topology(cli_graph *g, const json_t *topo, sl_json_errors *errs)
{
    const char *data_dir = "data";
    json_t *svcs = NULL;
    const sl_json_field top[] = {
        {.name = "data_dir", .kind = SL_JSON_STRING, .min = 1, .max = 1024, .out = &data_dir},
        {.name = "services",
         .kind = SL_JSON_ARRAY,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = CLI_GRAPH_NODES_MAX,
         .out = &svcs},
    };
    if (sl_json_read(topo, top, SL_ARRAY_LEN(top), 0, errs) != 0) return SL_EINVAL;
    int bad = 0;
    size_t i;
    json_t *svc;
    json_array_foreach(svcs, i, svc)
    {
        char path[64], field[SL_JSON_FIELD_MAX];
        snprintf(path, sizeof path, "services[%zu]", i);
        const char *name = NULL, *db_url = NULL;
        json_t *calls = NULL, *env = NULL;
        const sl_json_field f[] = {
            {.name = "name",
             .kind = SL_JSON_STRING,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = CLI_GRAPH_NAME_MAX - 1,
             .max_bytes = CLI_GRAPH_NAME_MAX - 1,
             .out = &name},
            {.name = "db_url", .kind = SL_JSON_STRING, .min = 1, .max = 1024, .out = &db_url},
            {.name = "calls", .kind = SL_JSON_ARRAY, .max = CLI_GRAPH_NODES_MAX, .out = &calls},
            {.name = "env", .kind = SL_JSON_OBJECT, .out = &env},
        };
        if (sl_json_read_at(svc, path, f, SL_ARRAY_LEN(f), 0, errs) != 0) {
            bad = 1;
            continue;
        }
        snprintf(field, sizeof field, "%s.name", path);
        int rc = graph_err(cli_graph_add_node(g, name), errs, field, "a name");
        if (rc == SL_ELIMIT) return rc;
        if (rc != 0) {
            bad = 1;
            continue;
        }
        /* The gateway (shoal-proxy) has no database. */
        rc = strcmp(name, CLI_GRAPH_ENTRY) == 0
                 ? 0
                 : service_db(g, name, path, data_dir, db_url, env, errs);
        if (rc == SL_ELIMIT || rc == SL_ENOMEM) return rc;
        bad |= rc != 0;
        const char *callees[CLI_GRAPH_NODES_MAX];
        size_t n = 0, k;
        json_t *c;
        json_array_foreach(calls, k, c)
        {
            snprintf(field, sizeof field, "%s.calls[%zu]", path, k);
            const char *to = json_string_value(c);
            rc = to ? cli_graph_add_edge(g, name, to, CLI_EDGE_SYNC, "calls", 1, 0) : SL_EINVAL;
            if (graph_err(rc, errs, field, "a service name") == SL_ELIMIT) return rc;
            if (rc != 0) {
                bad = 1;
                continue;
            }
            callees[n++] = to;
        }
        if (n > 0 && (rc = cli_graph_add_request(g, name, "calls", callees, n)) != 0) return rc;
    }
    return bad ? SL_EINVAL : 0;
}

/* One gateway route: an edge to each cluster it calls, and the route as one request. */
static int gateway_route(cli_graph *g, const char *gw, const json_t *aggs, const json_t *route,
                         size_t i, sl_json_errors *errs)
{
    char path[64], field[SL_JSON_FIELD_MAX], where[CLI_GRAPH_LABEL_MAX];
    snprintf(path, sizeof path, "routes[%zu]", i);
    const char *name = NULL, *cluster = NULL, *aggregate = NULL;
    const sl_json_field f[] = {
        {.name = "name", .kind = SL_JSON_STRING, .max = 200, .out = &name},
        {.name = "cluster",
         .kind = SL_JSON_STRING,
         .min = 1,
         .max = CLI_GRAPH_NAME_MAX - 1,
         .out = &cluster},
        {.name = "aggregate", .kind = SL_JSON_STRING, .min = 1, .max = 200, .out = &aggregate},
    };
    if (sl_json_read_at(route, path, f, SL_ARRAY_LEN(f), 0, errs) != 0) return SL_EINVAL;
    char label[CLI_GRAPH_LABEL_MAX];
    snprintf(label, sizeof label, "%s", name ? name : path);
    snprintf(where, sizeof where, "route %.*s", CLI_GRAPH_LABEL_MAX - 8, label);
    const char *callees[CLI_GRAPH_NODES_MAX];
    size_t n = 0;
    int rc = 0;
    if (cluster) {
        snprintf(field, sizeof field, "%s.cluster", path);
        rc = graph_err(cli_graph_add_edge(g, gw, cluster, CLI_EDGE_SYNC, label, 1, 0), errs, field,
                       "a cluster name");
        if (rc != 0) return rc;
        callees[n++] = cluster;
    }
    if (aggregate) {
        const json_t *agg = json_object_get(aggs, aggregate);
        snprintf(field, sizeof field, "%s.aggregate", path);
        if (!json_is_object(agg)) {
            sl_json_errors_add(errs, field, "names no aggregate");
            return SL_EINVAL;
        }
        static const char *const lists[] = {"parts", "enrich"};
        for (size_t l = 0; l < SL_ARRAY_LEN(lists); l++) {
            size_t k;
            json_t *part;
            json_array_foreach(json_object_get(agg, lists[l]), k, part)
            {
                snprintf(field, sizeof field, "aggregates.%s.%s[%zu].cluster", aggregate, lists[l],
                         k);
                const char *to = json_string_value(json_object_get(part, "cluster"));
                rc = to ? cli_graph_add_edge(g, gw, to, CLI_EDGE_SYNC, label, 1, 0) : SL_EINVAL;
                if (graph_err(rc, errs, field, "a cluster name") != 0) return rc;
                if (n < CLI_GRAPH_NODES_MAX) callees[n++] = to;
            }
        }
    }
    return n > 0 ? cli_graph_add_request(g, gw, where, callees, n) : 0;
}

int cli_graph_load_gateway(cli_graph *g, const char *gw, const json_t *conf, sl_json_errors *errs)
{
    json_t *routes = NULL, *aggs = NULL, *auth = NULL, *clusters = NULL;
    const sl_json_field top[] = {
        {.name = "clusters", .kind = SL_JSON_OBJECT, .out = &clusters},
        {.name = "routes", .kind = SL_JSON_ARRAY, .max = 4096, .out = &routes},
        {.name = "aggregates", .kind = SL_JSON_OBJECT, .out = &aggs},
        {.name = "auth", .kind = SL_JSON_OBJECT, .out = &auth},
    };
    if (sl_json_read(conf, top, SL_ARRAY_LEN(top), 0, errs) != 0) return SL_EINVAL;
    int rc = graph_err(cli_graph_add_node(g, gw), errs, "", "the gateway's name");
    if (rc != 0) return rc;
    int bad = 0;
    size_t i;
    json_t *route;
    json_array_foreach(routes, i, route)
    {
        rc = gateway_route(g, gw, aggs, route, i, errs);
        if (rc == SL_ELIMIT || rc == SL_ENOMEM) return rc;
        bad |= rc != 0;
    }
    const json_t *jwks = json_object_get(auth, "jwks");
    const char *jc = opt_string(jwks, "cluster", "auth.jwks", errs, &bad);
    if (jc) {
        rc = graph_err(cli_graph_add_edge(g, gw, jc, CLI_EDGE_SYNC, "jwks", 1, 0), errs,
                       "auth.jwks.cluster", "a cluster name");
        if (rc == SL_ELIMIT) return rc;
        bad |= rc != 0;
    }
    /* The identity policy lets the gateway call every cluster (its own operations routes and
     * its scraper reach them all): an edge each, labelled "cluster". */
    const char *cname;
    json_t *cv;
    json_object_foreach(clusters, cname, cv)
    {
        char field[SL_JSON_FIELD_MAX];
        if (sl_json_path_key(field, sizeof field, "clusters", cname) != 0) field[0] = '\0';
        rc = graph_err(cli_graph_add_edge(g, gw, cname, CLI_EDGE_SYNC, "cluster", 1, 0), errs,
                       field, "a cluster name");
        if (rc == SL_ELIMIT) return rc;
        bad |= rc != 0;
    }
    return bad ? SL_EINVAL : 0;
}

/* "shop.<context>.<rest>": the context's length, or 0. */
static size_t topic_context(const char *topic, const char **ctx)
{
    static const char pre[] = "shop.";
    if (strncmp(topic, pre, sizeof pre - 1) != 0) return 0;
    *ctx = topic + sizeof pre - 1;
    const char *dot = strchr(*ctx, '.');
    return dot ? (size_t)(dot - *ctx) : 0;
}

int cli_graph_load_defs(cli_graph *g, const json_t *defs, int only_known, size_t *unmatched,
                        sl_json_errors *errs)
{
    json_t *svcs = NULL;
    const sl_json_field top[] = {
        {.name = "services",
         .kind = SL_JSON_ARRAY,
         .flags = SL_JSON_REQUIRED,
         .max = 256,
         .out = &svcs},
    };
    if (unmatched) *unmatched = 0;
    if (sl_json_read(defs, top, SL_ARRAY_LEN(top), 0, errs) != 0) return SL_EINVAL;
    /* Validate everything first: nothing is added from a document with errors. */
    int bad = 0;
    size_t i, k;
    json_t *svc, *v;
    json_array_foreach(svcs, i, svc)
    {
        char path[64];
        snprintf(path, sizeof path, "services[%zu]", i);
        json_t *subs = NULL, *pubs = NULL;
        const sl_json_field f[] = {
            {.name = "name",
             .kind = SL_JSON_STRING,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = CLI_GRAPH_NAME_MAX - 1,
             .max_bytes = CLI_GRAPH_NAME_MAX - 1},
            {.name = "subscriptions", .kind = SL_JSON_ARRAY, .max = 1024, .out = &subs},
            {.name = "publishes", .kind = SL_JSON_ARRAY, .max = 64, .out = &pubs},
            {.name = "routes", .kind = SL_JSON_ARRAY, .max = 4096},
            {.name = "database", .kind = SL_JSON_BOOL},
        };
        if (sl_json_read_at(svc, path, f, SL_ARRAY_LEN(f), 0, errs) != 0) {
            bad = 1;
            continue;
        }
        json_array_foreach(subs, k, v)
        {
            char sp[SL_JSON_FIELD_MAX];
            snprintf(sp, sizeof sp, "%s.subscriptions[%zu]", path, k);
            const sl_json_field sf[] = {{.name = "topic",
                                         .kind = SL_JSON_STRING,
                                         .flags = SL_JSON_REQUIRED,
                                         .min = 1,
                                         .max = 256}};
            bad |= sl_json_read_at(v, sp, sf, 1, 0, errs) != 0;
        }
        json_array_foreach(pubs, k, v)
        {
            if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < 128)
                continue;
            char sp[SL_JSON_FIELD_MAX];
            snprintf(sp, sizeof sp, "%s.publishes[%zu]", path, k);
            sl_json_errors_add(errs, sp, "must be a context name (1 to 127 bytes)");
            bad = 1;
        }
    }
    if (bad) return SL_EINVAL;
    size_t j;
    json_t *sub_svc;
    json_array_foreach(svcs, j, sub_svc)
    {
        const char *sub = json_string_value(json_object_get(sub_svc, "name"));
        if (only_known && !cli_graph_has_node(g, sub)) continue;
        /* A service without a database of its own (no migrations) shares none. */
        int s = find_node(g, sub);
        if (s >= 0 && json_is_false(json_object_get(sub_svc, "database"))) g->nodes[s].db[0] = '\0';
        json_array_foreach(json_object_get(sub_svc, "subscriptions"), k, v)
        {
            const char *topic = json_string_value(json_object_get(v, "topic")), *ctx = NULL;
            size_t cl = topic_context(topic, &ctx);
            int matched = 0;
            json_array_foreach(svcs, i, svc)
            {
                const char *pub = json_string_value(json_object_get(svc, "name"));
                if (only_known && !cli_graph_has_node(g, pub)) continue;
                size_t p;
                json_t *c;
                json_array_foreach(json_object_get(svc, "publishes"), p, c)
                {
                    const char *name = json_string_value(c);
                    if (cl == 0 || strlen(name) != cl || strncmp(name, ctx, cl) != 0) continue;
                    int rc = cli_graph_add_edge(g, pub, sub, CLI_EDGE_ASYNC, topic, 1, 0);
                    if (rc != 0) return graph_err(rc, errs, "services", "a name");
                    matched = 1;
                }
            }
            if (!matched && unmatched) (*unmatched)++;
        }
    }
    return 0;
}

/* ---- traces -------------------------------------------------------------------------------- */

enum { K_SERVER, K_CLIENT, K_PRODUCER, K_CONSUMER, K_INTERNAL };
static const char *const kinds[] = {"server", "client", "producer", "consumer", "internal", NULL};

typedef struct span {
    const char *trace, *id, *parent, *service, *name;
    const char *peer;    /* attributes."peer.service" */
    const char *dest;    /* attributes."messaging.destination.name" */
    const json_t *links; /* borrowed */
    const char *callee;  /* a client span's callee, once known */
    int kind;
} span;

typedef struct spans {
    span *s;
    size_t n;
    size_t *by_id; /* indexes of s sorted by (trace, id) */
} spans;

static int cmp_trace_id(const span *a, const char *trace, const char *id)
{
    int c = strcmp(a->trace, trace);
    return c ? c : strcmp(a->id, id);
}

static int cmp_by_id(const void *x, const void *y, void *ctx)
{
    const spans *t = ctx;
    const span *a = &t->s[*(const size_t *)x], *b = &t->s[*(const size_t *)y];
    int c = cmp_trace_id(a, b->trace, b->id);
    if (c) return c;
    return *(const size_t *)x < *(const size_t *)y ? -1 : *(const size_t *)x > *(const size_t *)y;
}

/* The span (trace, id), or NULL. The first of duplicates. */
static span *find_span(const spans *t, const char *trace, const char *id)
{
    if (!trace || !id) return NULL;
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_trace_id(&t->s[t->by_id[mid]], trace, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < t->n && cmp_trace_id(&t->s[t->by_id[lo]], trace, id) == 0) return &t->s[t->by_id[lo]];
    return NULL;
}

/* An optional string attribute: NULL when absent or not a short string. */
static const char *attr(const json_t *attrs, const char *key)
{
    const json_t *v = json_object_get(attrs, key);
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) >= CLI_GRAPH_NAME_MAX)
        return NULL;
    return json_string_value(v);
}

/* A mesh sidecar's span (service `<name>-sidecar`, docs/mesh.md): a hop of the mesh, not a
 * service of the graph. */
static bool is_sidecar(const span *s)
{
    size_t n = strlen(s->service);
    return n > 8 && strcmp(s->service + n - 8, "-sidecar") == 0;
}

/* The graph sees through the sidecars: each span under a sidecar's span gets the nearest
 * ancestor that is not a sidecar's as its parent (the caller's client span), and the sidecars'
 * spans are dropped. Then by_id is sorted again. */
static void hide_sidecars(spans *t)
{
    size_t kept = 0;
    for (size_t i = 0; i < t->n; i++) {
        span *s = &t->s[i];
        if (is_sidecar(s)) continue;
        const span *p = find_span(t, s->trace, s->parent);
        for (int depth = 0; p && is_sidecar(p) && depth < 256; depth++) {
            s->parent = p->parent; /* NULL at a root */
            p = find_span(t, p->trace, p->parent);
        }
    }
    for (size_t i = 0; i < t->n; i++)
        if (!is_sidecar(&t->s[i])) t->s[kept++] = t->s[i];
    t->n = kept;
    for (size_t i = 0; i < t->n; i++)
        t->by_id[i] = i;
    qsort_r(t->by_id, t->n, sizeof *t->by_id, cmp_by_id, t);
}

/* Validates one span and fills *out. Returns 0 or SL_EINVAL (errors in errs). */
static int read_span(const json_t *v, const char *trace, const char *path, span *out,
                     sl_json_errors *errs)
{
    const char *id = NULL, *parent = NULL, *service = NULL, *name = "", *kind = NULL;
    json_t *attrs = NULL, *links = NULL;
    const sl_json_field f[] = {
        {.name = "span_id",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = CLI_GRAPH_ID_MAX - 1,
         .max_bytes = CLI_GRAPH_ID_MAX - 1,
         .out = &id},
        {.name = "parent_span_id",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_NULLABLE,
         .max = CLI_GRAPH_ID_MAX - 1,
         .max_bytes = CLI_GRAPH_ID_MAX - 1,
         .out = &parent},
        {.name = "service",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = CLI_GRAPH_NAME_MAX - 1,
         .max_bytes = CLI_GRAPH_NAME_MAX - 1,
         .out = &service},
        {.name = "name",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_NULLABLE,
         .max = 1024,
         .out = &name},
        {.name = "kind",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .allowed = kinds,
         .out = &kind},
        {.name = "attributes", .kind = SL_JSON_OBJECT, .flags = SL_JSON_NULLABLE, .out = &attrs},
        {.name = "links",
         .kind = SL_JSON_ARRAY,
         .flags = SL_JSON_NULLABLE,
         .max = CLI_GRAPH_LINKS_MAX,
         .out = &links},
    };
    if (sl_json_read_at(v, path, f, SL_ARRAY_LEN(f), 0, errs) != 0) return SL_EINVAL;
    int bad = 0;
    size_t k;
    json_t *l;
    json_array_foreach(links, k, l)
    {
        char lp[SL_JSON_FIELD_MAX];
        if (snprintf(lp, sizeof lp, "%s.links[%zu]", path, k) >= (int)sizeof lp) lp[0] = '\0';
        const sl_json_field lf[] = {
            {.name = "trace_id",
             .kind = SL_JSON_STRING,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = CLI_GRAPH_ID_MAX - 1,
             .max_bytes = CLI_GRAPH_ID_MAX - 1},
            {.name = "span_id",
             .kind = SL_JSON_STRING,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = CLI_GRAPH_ID_MAX - 1,
             .max_bytes = CLI_GRAPH_ID_MAX - 1},
        };
        bad |= sl_json_read_at(l, lp, lf, SL_ARRAY_LEN(lf), 0, errs) != 0;
    }
    if (bad) return SL_EINVAL;
    size_t ki = 0;
    while (strcmp(kinds[ki], kind) != 0)
        ki++;
    *out = (span){.trace = trace,
                  .id = id,
                  .parent = parent && *parent ? parent : NULL,
                  .service = service,
                  .name = name ? name : "",
                  .peer = attr(attrs, "peer.service"),
                  .dest = attr(attrs, "messaging.destination.name"),
                  .links = links,
                  .kind = (int)ki};
    return 0;
}

/* Every span of the document into t (borrowing from it). Returns 0, SL_EINVAL, SL_ELIMIT or
 * SL_ENOMEM. */
static int read_traces(const json_t *traces, spans *t, sl_json_errors *errs)
{
    if (!json_is_array(traces)) {
        sl_json_errors_add(errs, "", "must be an array of traces");
        return SL_EINVAL;
    }
    if (json_array_size(traces) > CLI_GRAPH_TRACES_MAX) {
        sl_json_errors_add(errs, "", "more than %d traces", CLI_GRAPH_TRACES_MAX);
        return SL_ELIMIT;
    }
    size_t total = 0, i;
    json_t *tr;
    json_array_foreach(traces, i, tr)
    {
        size_t n = json_array_size(json_object_get(tr, "spans"));
        if (n > CLI_GRAPH_SPANS_MAX - total) {
            sl_json_errors_add(errs, "", "more than %d spans", CLI_GRAPH_SPANS_MAX);
            return SL_ELIMIT;
        }
        total += n;
    }
    t->s = calloc(total ? total : 1, sizeof *t->s);
    t->by_id = calloc(total ? total : 1, sizeof *t->by_id);
    if (!t->s || !t->by_id) return SL_ENOMEM;
    int bad = 0;
    json_array_foreach(traces, i, tr)
    {
        char path[SL_JSON_FIELD_MAX];
        snprintf(path, sizeof path, "[%zu]", i);
        const char *trace = NULL;
        json_t *list = NULL;
        const sl_json_field f[] = {
            {.name = "trace_id",
             .kind = SL_JSON_STRING,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = CLI_GRAPH_ID_MAX - 1,
             .max_bytes = CLI_GRAPH_ID_MAX - 1,
             .out = &trace},
            {.name = "spans", .kind = SL_JSON_ARRAY, .flags = SL_JSON_REQUIRED, .out = &list},
        };
        if (sl_json_read_at(tr, path, f, SL_ARRAY_LEN(f), 0, errs) != 0) {
            bad = 1;
            continue;
        }
        size_t j;
        json_t *v;
        json_array_foreach(list, j, v)
        {
            char sp[SL_JSON_FIELD_MAX];
            snprintf(sp, sizeof sp, "[%zu].spans[%zu]", i, j);
            if (read_span(v, trace, sp, &t->s[t->n], errs) != 0) {
                bad = 1;
                continue;
            }
            t->by_id[t->n] = t->n;
            t->n++;
        }
    }
    if (bad) return SL_EINVAL;
    qsort_r(t->by_id, t->n, sizeof *t->by_id, cmp_by_id, t);
    hide_sidecars(t);
    return 0;
}

/* The span a client span's call belongs to: the nearest server or consumer span above it
 * through internal and client spans of the trace, else the topmost span found. */
static const span *unit_of(const spans *t, const span *c)
{
    const span *u = c;
    for (int depth = 0; depth < 256; depth++) { /* a parent loop in the input ends here */
        const span *p = find_span(t, u->trace, u->parent);
        if (!p) return u;
        u = p;
        if (u->kind == K_SERVER || u->kind == K_CONSUMER) return u;
    }
    return u;
}

typedef struct call {
    const span *unit;
    const char *callee;
} call;

static int cmp_call(const void *x, const void *y)
{
    const call *a = x, *b = y;
    if (a->unit != b->unit) return a->unit < b->unit ? -1 : 1;
    return strcmp(a->callee, b->callee);
}

/* Each request's distinct callees (fan-out). */
static int add_requests(cli_graph *g, const spans *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        n += t->s[i].kind == K_CLIENT && t->s[i].callee;
    call *calls = calloc(n ? n : 1, sizeof *calls);
    if (!calls) return SL_ENOMEM;
    n = 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->s[i].kind == K_CLIENT && t->s[i].callee)
            calls[n++] = (call){unit_of(t, &t->s[i]), t->s[i].callee};
    qsort(calls, n, sizeof *calls, cmp_call);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        const char *callees[CLI_GRAPH_NODES_MAX];
        size_t k = 0, j = i;
        for (; j < n && calls[j].unit == calls[i].unit; j++)
            if (k == 0 || strcmp(callees[k - 1], calls[j].callee) != 0) {
                if (k == CLI_GRAPH_NODES_MAX) break;
                callees[k++] = calls[j].callee;
            }
        while (j < n && calls[j].unit == calls[i].unit)
            j++;
        rc = cli_graph_add_request(g, calls[i].unit->service, calls[i].unit->name, callees, k);
        i = j;
    }
    free(calls);
    return rc;
}

static int add_span_edges(cli_graph *g, spans *t, cli_graph_trace_stats *st)
{
    int rc = 0;
    /* Synchronous: a server span under a client span. */
    for (size_t i = 0; i < t->n && rc == 0; i++) {
        span *s = &t->s[i];
        if (s->kind != K_SERVER) continue;
        span *p = find_span(t, s->trace, s->parent);
        if (!p || p->kind != K_CLIENT) continue;
        if (!p->callee) p->callee = s->service;
        rc = cli_graph_add_edge(g, p->service, s->service, CLI_EDGE_SYNC, s->name, 0, 1);
    }
    /* ... or, lacking that child, peer.service. */
    for (size_t i = 0; i < t->n && rc == 0; i++) {
        span *c = &t->s[i];
        if (c->kind != K_CLIENT || c->callee) continue;
        if (!c->peer) {
            st->unresolved_calls++;
            continue;
        }
        c->callee = c->peer;
        rc = cli_graph_add_edge(g, c->service, c->peer, CLI_EDGE_SYNC, c->name, 0, 1);
    }
    /* Asynchronous: a consumer span whose parent or a link is the publisher's: a producer
     * span, or any span of another service (the context the event was written in). */
    for (size_t i = 0; i < t->n && rc == 0; i++) {
        const span *k = &t->s[i];
        if (k->kind != K_CONSUMER) continue;
        const char *label = k->dest ? k->dest : k->name;
        const span *p = find_span(t, k->trace, k->parent);
        int found = 0;
        if (p && (p->kind == K_PRODUCER || strcmp(p->service, k->service) != 0)) {
            rc = cli_graph_add_edge(g, p->service, k->service, CLI_EDGE_ASYNC, label, 0, 1);
            found = 1;
        }
        size_t j;
        json_t *l;
        json_array_foreach(k->links, j, l)
        {
            const span *q = find_span(t, json_string_value(json_object_get(l, "trace_id")),
                                      json_string_value(json_object_get(l, "span_id")));
            if (rc != 0 || !q || q == p ||
                (q->kind != K_PRODUCER && strcmp(q->service, k->service) == 0))
                continue;
            rc = cli_graph_add_edge(g, q->service, k->service, CLI_EDGE_ASYNC, label, 0, 1);
            found = 1;
        }
        if (!found) st->unresolved_links++;
    }
    return rc == 0 ? add_requests(g, t) : rc;
}

int cli_graph_load_traces(cli_graph *g, const json_t *traces, cli_graph_trace_stats *stats,
                          sl_json_errors *errs)
{
    spans t = {0};
    cli_graph_trace_stats st = {0};
    int rc = read_traces(traces, &t, errs);
    if (rc == 0) {
        st.traces = json_array_size(traces);
        st.spans = t.n;
        rc = add_span_edges(g, &t, &st);
        if (rc != 0) graph_err(rc, errs, "", "a service name");
    } else if (rc == SL_ENOMEM) {
        sl_json_errors_add(errs, "", "out of memory");
    }
    free(t.s);
    free(t.by_id);
    if (stats) *stats = st;
    return rc;
}

/* ---- analysis: cycles, paths --------------------------------------------------------------- */

#define CYCLES_MAX 64

typedef struct analysis {
    int order[CLI_GRAPH_NODES_MAX]; /* node indexes by name */
    int rank[CLI_GRAPH_NODES_MAX];  /* a node's place in order */
    int *sync;                      /* synchronous edges by (from, to) name */
    size_t nsync;
    unsigned char *back, *red; /* per edge: closes a cycle; drawn red */
    int color[CLI_GRAPH_NODES_MAX], stack[CLI_GRAPH_NODES_MAX + 1];
    int cycles[CYCLES_MAX][CLI_GRAPH_NODES_MAX + 1];
    size_t cyclen[CYCLES_MAX], ncycles, more_cycles;
    int longest[CLI_GRAPH_NODES_MAX], next[CLI_GRAPH_NODES_MAX]; /* next: edge or -1 */
    int entries[CLI_GRAPH_NODES_MAX];
    size_t nentries;
} analysis;

static int cmp_rank(const void *x, const void *y, void *ctx)
{
    const cli_graph *g = ctx;
    return strcmp(g->nodes[*(const int *)x].name, g->nodes[*(const int *)y].name);
}

static void add_cycle(const cli_graph *g, analysis *a, size_t from, size_t depth)
{
    int c[CLI_GRAPH_NODES_MAX];
    size_t len = depth - from + 1, start = 0;
    for (size_t i = 0; i < len; i++) {
        c[i] = a->stack[from + i];
        if (a->rank[c[i]] < a->rank[c[start]]) start = i;
    }
    int rot[CLI_GRAPH_NODES_MAX];
    for (size_t i = 0; i < len; i++)
        rot[i] = c[(start + i) % len];
    for (size_t k = 0; k < a->ncycles; k++)
        if (a->cyclen[k] == len && memcmp(a->cycles[k], rot, len * sizeof rot[0]) == 0) return;
    /* Its edges are drawn red. */
    for (size_t i = 0; i < len; i++)
        for (size_t e = 0; e < g->ne; e++)
            if (g->edges[e].kind == CLI_EDGE_SYNC && g->edges[e].from == rot[i] &&
                g->edges[e].to == rot[(i + 1) % len])
                a->red[e] = 1;
    if (a->ncycles == CYCLES_MAX) {
        a->more_cycles++;
        return;
    }
    memcpy(a->cycles[a->ncycles], rot, len * sizeof rot[0]);
    a->cyclen[a->ncycles++] = len;
}

static void dfs(const cli_graph *g, analysis *a, int v, size_t depth)
{
    a->color[v] = 1;
    a->stack[depth] = v;
    for (size_t k = 0; k < a->nsync; k++) {
        const edge *e = &g->edges[a->sync[k]];
        if (e->from != v) continue;
        if (a->color[e->to] == 0) {
            dfs(g, a, e->to, depth + 1);
        } else if (a->color[e->to] == 1) {
            a->back[a->sync[k]] = 1;
            size_t from = 0;
            while (a->stack[from] != e->to)
                from++;
            add_cycle(g, a, from, depth);
        }
    }
    a->color[v] = 2;
}

static int longest_from(const cli_graph *g, analysis *a, int v)
{
    if (a->longest[v] >= 0) return a->longest[v];
    a->longest[v] = 0;
    a->next[v] = -1;
    for (size_t k = 0; k < a->nsync; k++) {
        const edge *e = &g->edges[a->sync[k]];
        if (e->from != v || a->back[a->sync[k]]) continue;
        int l = 1 + longest_from(g, a, e->to);
        if (l > a->longest[v]) {
            a->longest[v] = l;
            a->next[v] = a->sync[k];
        }
    }
    return a->longest[v];
}

static void analysis_free(analysis *a)
{
    if (!a) return;
    free(a->sync);
    free(a->back);
    free(a->red);
    free(a);
}

static int analyse(const cli_graph *g, const cli_graph_rules *r, analysis **out)
{
    analysis *a = calloc(1, sizeof *a);
    if (!a) return SL_ENOMEM;
    a->sync = calloc(g->ne + 1, sizeof *a->sync);
    a->back = calloc(g->ne + 1, 1);
    a->red = calloc(g->ne + 1, 1);
    if (!a->sync || !a->back || !a->red) {
        analysis_free(a);
        return SL_ENOMEM;
    }
    for (size_t i = 0; i < g->nn; i++)
        a->order[i] = (int)i;
    qsort_r(a->order, g->nn, sizeof a->order[0], cmp_rank, (void *)g);
    for (size_t i = 0; i < g->nn; i++)
        a->rank[a->order[i]] = (int)i;
    /* Synchronous edges by (from, to) rank: every walk below is in name order. */
    for (size_t i = 0; i < g->nn; i++)
        for (size_t j = 0; j < g->nn; j++)
            for (size_t e = 0; e < g->ne; e++)
                if (g->edges[e].kind == CLI_EDGE_SYNC && g->edges[e].from == a->order[i] &&
                    g->edges[e].to == a->order[j])
                    a->sync[a->nsync++] = (int)e;
    for (size_t i = 0; i < g->nn; i++)
        if (a->color[a->order[i]] == 0) dfs(g, a, a->order[i], 0);
    for (size_t i = 0; i < g->nn; i++)
        a->longest[i] = -1;
    int entry = r->entry ? find_node(g, r->entry) : -1;
    if (entry >= 0) {
        a->entries[a->nentries++] = entry;
    } else {
        for (size_t i = 0; i < g->nn; i++) {
            int v = a->order[i], called = 0;
            for (size_t k = 0; k < a->nsync && !called; k++)
                called = g->edges[a->sync[k]].to == v;
            if (!called) a->entries[a->nentries++] = v;
        }
    }
    for (size_t i = 0; i < a->nentries; i++) {
        int v = a->entries[i];
        if (longest_from(g, a, v) <= r->max_hops) continue;
        for (int e = a->next[v]; e >= 0; e = a->next[g->edges[e].to])
            a->red[e] = 1;
    }
    *out = a;
    return 0;
}

/* ---- checks and output --------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) SL_PRINTF(2, 3);
static void put(sbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 1024;
        while (cap <= b->len + (size_t)n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

static int finish(sbuf *b, char **out)
{
    if (!b->p && !b->oom) put(b, "%s", "");
    if (b->oom) {
        free(b->p);
        *out = NULL;
        return SL_ENOMEM;
    }
    *out = b->p;
    return 0;
}

void cli_graph_rules_init(cli_graph_rules *r)
{
    r->max_hops = CLI_GRAPH_DEFAULT_MAX_HOPS;
    r->max_fanout = CLI_GRAPH_DEFAULT_MAX_FANOUT;
    r->entry = CLI_GRAPH_ENTRY;
}

/* "a -> b -> c": the longest path from v. */
static void put_path(sbuf *b, const cli_graph *g, const analysis *a, int v)
{
    put(b, "%s", g->nodes[v].name);
    for (int e = a->next[v]; e >= 0; e = a->next[g->edges[e].to])
        put(b, " -> %s", g->nodes[g->edges[e].to].name);
}

/* "a, b, c": the callees of v's widest request, by name. */
static void put_callees(sbuf *b, const cli_graph *g, const analysis *a, int v)
{
    const node *nd = &g->nodes[v];
    int first = 1;
    for (size_t i = 0; i < g->nn; i++)
        for (size_t k = 0; k < nd->fanout; k++)
            if (nd->fan_callees[k] == a->order[i]) {
                put(b, "%s%s", first ? "" : ", ", g->nodes[a->order[i]].name);
                first = 0;
            }
}

/* Calls fn(b, ...) for each violation: the one list behind cli_graph_check and the text. */
static void violations(const cli_graph *g, const cli_graph_rules *r, const analysis *a,
                       void (*fn)(void *, cli_rule, const char *), void *data)
{
    sbuf b = {0};
    for (size_t k = 0; k < a->ncycles; k++) {
        b.len = 0;
        put(&b, "cycle:");
        for (size_t i = 0; i < a->cyclen[k]; i++)
            put(&b, " %s ->", g->nodes[a->cycles[k][i]].name);
        put(&b, " %s", g->nodes[a->cycles[k][0]].name);
        if (!b.oom) fn(data, CLI_RULE_CYCLE, b.p);
    }
    for (size_t i = 0; i < a->nentries; i++) {
        int v = a->entries[i];
        if (a->longest[v] <= r->max_hops) continue;
        b.len = 0;
        put(&b, "path of %d hops: ", a->longest[v]);
        put_path(&b, g, a, v);
        if (!b.oom) fn(data, CLI_RULE_HOPS, b.p);
    }
    for (size_t i = 0; i < g->nn; i++) {
        const node *nd = &g->nodes[a->order[i]];
        if ((int)nd->fanout <= r->max_fanout) continue;
        b.len = 0;
        put(&b, "fan-out of %zu: %s (%s) -> ", nd->fanout, nd->name, nd->fan_where);
        put_callees(&b, g, a, a->order[i]);
        if (!b.oom) fn(data, CLI_RULE_FANOUT, b.p);
    }
    for (size_t i = 0; i < g->nn; i++) {
        const node *nd = &g->nodes[a->order[i]];
        if (!nd->db[0]) continue;
        int earlier = 0, later = 0;
        for (size_t j = 0; j < g->nn; j++)
            if (j != i && strcmp(g->nodes[a->order[j]].db, nd->db) == 0) {
                earlier |= j < i;
                later |= j > i;
            }
        if (earlier || !later) continue; /* each group once, from its first name */
        b.len = 0;
        put(&b, "shared database: %s", nd->name);
        for (size_t j = i + 1; j < g->nn; j++)
            if (strcmp(g->nodes[a->order[j]].db, nd->db) == 0)
                put(&b, ", %s", g->nodes[a->order[j]].name);
        put(&b, " use %s", nd->db);
        if (!b.oom) fn(data, CLI_RULE_SHARED_DB, b.p);
    }
    free(b.p);
}

typedef struct collect {
    cli_violation *out;
    size_t cap, n;
} collect;

static void collect_one(void *data, cli_rule rule, const char *text)
{
    collect *c = data;
    if (c->n < c->cap) {
        c->out[c->n].rule = rule;
        copy_cut(c->out[c->n].text, sizeof c->out[c->n].text, text);
    }
    c->n++;
}

int cli_graph_check(const cli_graph *g, const cli_graph_rules *r, cli_violation *out, size_t cap,
                    size_t *n)
{
    analysis *a = NULL;
    *n = 0;
    int rc = analyse(g, r, &a);
    if (rc != 0) return rc;
    collect c = {out, cap, 0};
    violations(g, r, a, collect_one, &c);
    *n = c.n;
    analysis_free(a);
    return 0;
}

static void put_labels(sbuf *b, const edge *e, const char *sep)
{
    for (size_t i = 0; i < e->nlabels; i++)
        put(b, "%s%s", i ? sep : "", e->labels[i]);
    if (e->more_labels) put(b, "%s+%zu more", sep, e->more_labels);
}

int cli_graph_text(const cli_graph *g, const cli_graph_rules *r, char **out)
{
    analysis *a = NULL;
    int rc = analyse(g, r, &a);
    if (rc != 0) return rc;
    sbuf b = {0};
    put(&b, "services (%zu):", g->nn);
    for (size_t i = 0; i < g->nn; i++)
        put(&b, "%s %s", i ? "," : "", g->nodes[a->order[i]].name);
    put(&b, "\n\nedges (%zu):\n  %-28s %-5s %8s %6s  %s\n", g->ne, "from -> to", "kind", "declared",
        "seen", "via");
    for (int kind = CLI_EDGE_SYNC; kind <= CLI_EDGE_ASYNC; kind++)
        for (size_t i = 0; i < g->nn; i++)
            for (size_t j = 0; j < g->nn; j++)
                for (size_t k = 0; k < g->ne; k++) {
                    const edge *e = &g->edges[k];
                    if ((int)e->kind != kind || e->from != a->order[i] || e->to != a->order[j])
                        continue;
                    char pair[2 * CLI_GRAPH_NAME_MAX + 8];
                    snprintf(pair, sizeof pair, "%s -> %s", g->nodes[e->from].name,
                             g->nodes[e->to].name);
                    put(&b, "  %-28s %-5s %8llu %6llu  ", pair,
                        kind == CLI_EDGE_SYNC ? "sync" : "async", (unsigned long long)e->declared,
                        (unsigned long long)e->seen);
                    put_labels(&b, e, ", ");
                    put(&b, "\n");
                }
    put(&b, "\nfan-out (the request with the most distinct callees):\n");
    int any = 0;
    for (size_t i = 0; i < g->nn; i++) {
        const node *nd = &g->nodes[a->order[i]];
        if (!nd->fanout) continue;
        put(&b, "  %-14s %2zu  %s -> ", nd->name, nd->fanout, nd->fan_where);
        put_callees(&b, g, a, a->order[i]);
        put(&b, "\n");
        any = 1;
    }
    if (!any) put(&b, "  (no calls)\n");
    put(&b, "\ndatabases:\n");
    any = 0;
    for (size_t i = 0; i < g->nn; i++) {
        const node *nd = &g->nodes[a->order[i]];
        if (!nd->db[0]) continue;
        put(&b, "  %-14s %s\n", nd->name, nd->db);
        any = 1;
    }
    if (!any) put(&b, "  (none known)\n");
    int best = -1;
    for (size_t i = 0; i < a->nentries; i++)
        if (best < 0 || a->longest[a->entries[i]] > a->longest[best]) best = a->entries[i];
    put(&b, "\nlongest request path: ");
    if (best < 0) {
        put(&b, "none (no entry)\n");
    } else {
        put(&b, "%d hop%s: ", a->longest[best], a->longest[best] == 1 ? "" : "s");
        put_path(&b, g, a, best);
        put(&b, "\n");
    }
    analysis_free(a);
    return finish(&b, out);
}

/* A dot string: quotes and backslashes escaped, control characters dropped. */
static void put_dot_str(sbuf *b, const char *s)
{
    put(b, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            put(b, "\\%c", *s);
        else if ((unsigned char)*s >= 0x20)
            put(b, "%c", *s);
    }
    put(b, "\"");
}

int cli_graph_dot(const cli_graph *g, const cli_graph_rules *r, char **out)
{
    analysis *a = NULL;
    int rc = analyse(g, r, &a);
    if (rc != 0) return rc;
    sbuf b = {0};
    put(&b, "digraph shoal {\n  rankdir=LR;\n  node [shape=box, fontname=\"sans-serif\"];\n"
            "  edge [fontname=\"sans-serif\", fontsize=10];\n");
    for (size_t i = 0; i < g->nn; i++) {
        const node *nd = &g->nodes[a->order[i]];
        put(&b, "  ");
        put_dot_str(&b, nd->name);
        int entry = r->entry && strcmp(nd->name, r->entry) == 0;
        int wide = (int)nd->fanout > r->max_fanout;
        if (entry || wide)
            put(&b, " [%s%s%s]", entry ? "shape=oval" : "", entry && wide ? ", " : "",
                wide ? "color=red" : "");
        put(&b, ";\n");
    }
    for (int kind = CLI_EDGE_SYNC; kind <= CLI_EDGE_ASYNC; kind++)
        for (size_t i = 0; i < g->nn; i++)
            for (size_t j = 0; j < g->nn; j++)
                for (size_t k = 0; k < g->ne; k++) {
                    const edge *e = &g->edges[k];
                    if ((int)e->kind != kind || e->from != a->order[i] || e->to != a->order[j])
                        continue;
                    put(&b, "  ");
                    put_dot_str(&b, g->nodes[e->from].name);
                    put(&b, " -> ");
                    put_dot_str(&b, g->nodes[e->to].name);
                    sbuf l = {0};
                    if (e->seen) put(&l, "%llu", (unsigned long long)e->seen);
                    put(&b, " [label=");
                    put_dot_str(&b, l.p && !l.oom ? l.p : "");
                    free(l.p);
                    sbuf t = {0};
                    put_labels(&t, e, ", ");
                    put(&b, ", tooltip=");
                    put_dot_str(&b, t.p && !t.oom ? t.p : "");
                    free(t.p);
                    if (kind == CLI_EDGE_ASYNC) put(&b, ", style=dashed");
                    if (a->red[k]) put(&b, ", color=red");
                    put(&b, "];\n");
                }
    put(&b, "}\n");
    analysis_free(a);
    return finish(&b, out);
}
