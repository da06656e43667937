/* Identity key distribution (keys.h). */
#include "keys.h"

#include <shoal/identity.h>

#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* What a verified end-user token may carry, and `service` for the gateway's own calls (the
 * revoked-sessions poll). */
#define GATEWAY_ROLES "customer,admin,service"
#define SERVICE_ROLES "service"
#define MAX_EDGES     128

typedef struct edges {
    sl_identity_edge e[MAX_EDGES];
    size_t n;
} edges;

static int has_service(json_t *svcs, const char *name)
{
    size_t i;
    json_t *it;
    json_array_foreach(svcs, i, it)
    {
        const char *n = json_string_value(json_object_get(it, "name"));
        if (n && strcmp(n, name) == 0) return 1;
    }
    return 0;
}

static int add_edge(edges *g, const sl_identity_key *master, const char *caller, const char *callee,
                    const char *roles, char *err)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->e[i].caller, caller) == 0 && strcmp(g->e[i].callee, callee) == 0) return 0;
    if (g->n == MAX_EDGES) {
        snprintf(err, SL_CONFIG_ERR_MAX, "more than %d identity edges", MAX_EDGES);
        return SL_ELIMIT;
    }
    if (sl_identity_edge_derive(master, caller, callee, roles, &g->e[g->n]) != 0) {
        snprintf(err, SL_CONFIG_ERR_MAX, "identity edge %.40s -> %.40s: invalid name", caller,
                 callee);
        return SL_ECONFIG;
    }
    g->n++;
    return 0;
}

/* The gateway's edges: one per cluster of its configuration that is a service of the topology. */
static int gateway_edges(json_t *svcs, json_t *gw, const sl_identity_key *master, edges *g,
                         char *err)
{
    const char *path = json_string_value(json_object_get(gw, "config"));
    if (!path) return 0;
    sl_config *c = NULL;
    char cerr[SL_CONFIG_ERR_MAX];
    if (sl_config_load_file(path, &c, cerr) != 0) {
        snprintf(err, SL_CONFIG_ERR_MAX, "%s", cerr);
        return SL_ECONFIG;
    }
    const char *cluster;
    json_t *v;
    int rc = 0;
    json_object_foreach(json_object_get(sl_config_root(c), "clusters"), cluster, v)
    {
        (void)v;
        if (rc == 0 && has_service(svcs, cluster) && strcmp(cluster, "gateway") != 0)
            rc = add_edge(g, master, "gateway", cluster, GATEWAY_ROLES, err);
    }
    sl_config_free(c);
    return rc;
}

static int in_calls(json_t *svc, const char *name)
{
    size_t k;
    json_t *c;
    json_array_foreach(json_object_get(svc, "calls"), k, c)
    {
        if (json_is_string(c) && strcmp(json_string_value(c), name) == 0) return 1;
    }
    return 0;
}

/*
 * A service pointed at another service of the topology through its environment
 * (SHOAL_UPSTREAMS__<NAME>__URL) calls it, so it must list it in `calls`: without that edge
 * its requests carry no proof the callee accepts, and the shop fails at its first call rather
 * than here. Returns 0 or SL_ECONFIG (err says which).
 */
static int check_upstreams(json_t *svcs, size_t i, json_t *svc, const char *name, char *err)
{
    static const char pre[] = "SHOAL_UPSTREAMS__", suf[] = "__URL";
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(svc, "env"), key, v)
    {
        (void)v;
        size_t n = strlen(key);
        if (n <= sizeof pre - 1 + sizeof suf - 1 || strncmp(key, pre, sizeof pre - 1) != 0 ||
            strcmp(key + n - (sizeof suf - 1), suf) != 0)
            continue;
        char to[64];
        size_t len = n - (sizeof pre - 1) - (sizeof suf - 1);
        if (len >= sizeof to) continue;
        for (size_t c = 0; c < len; c++) {
            char ch = key[sizeof pre - 1 + c];
            to[c] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
        }
        to[len] = '\0';
        if (has_service(svcs, to) && !in_calls(svc, to)) {
            snprintf(err, SL_CONFIG_ERR_MAX,
                     "services[%zu] (%.40s) sets %.100s but does not list %s in its calls: add "
                     "`calls: [%s]` so that its requests carry an identity %s accepts",
                     i, name, key, to, to, to);
            return SL_ECONFIG;
        }
    }
    return 0;
}

int cli_keys_distribute(const sl_config *topology, const char *data_dir, char *err)
{
    char path[PATH_MAX + 64], kerr[256];
    snprintf(path, sizeof path, "%s/identity.master", data_dir);
    sl_identity_key master;
    if (sl_identity_key_ensure(path, &master, kerr) != 0) {
        snprintf(err, SL_CONFIG_ERR_MAX, "%s", kerr);
        return SL_EIO;
    }
    static edges g; /* large; `shoal up` runs this once */
    memset(&g, 0, sizeof g);
    json_t *svcs = json_object_get(sl_config_root(topology), "services");
    size_t i;
    json_t *it;
    int rc = 0;
    json_array_foreach(svcs, i, it)
    {
        const char *name = json_string_value(json_object_get(it, "name"));
        if (rc != 0 || !name) continue;
        if (strcmp(name, "gateway") == 0) {
            rc = gateway_edges(svcs, it, &master, &g, err);
            continue;
        }
        if ((rc = check_upstreams(svcs, i, it, name, err)) != 0) break;
        size_t k;
        json_t *callee;
        json_array_foreach(json_object_get(it, "calls"), k, callee)
        {
            const char *to = json_string_value(callee);
            if (rc != 0) break;
            if (!to || !has_service(svcs, to)) {
                snprintf(err, SL_CONFIG_ERR_MAX, "services[%zu].calls[%zu]: names no service", i,
                         k);
                rc = SL_ECONFIG;
                break;
            }
            rc = add_edge(&g, &master, name, to, SERVICE_ROLES, err);
        }
    }
    sodium_memzero(&master, sizeof master);
    snprintf(path, sizeof path, "%s/keys", data_dir);
    if (rc == 0 && mkdir(path, 0700) != 0 && chmod(path, 0700) != 0) {
        snprintf(err, SL_CONFIG_ERR_MAX, "cannot create %.400s", path);
        rc = SL_EIO;
    }
    /* Each process: the edges it is the caller or the callee of. */
    json_array_foreach(svcs, i, it)
    {
        const char *name = json_string_value(json_object_get(it, "name"));
        if (rc != 0 || !name) continue;
        static sl_identity_edge mine[SL_IDENTITY_EDGES_MAX];
        size_t n = 0;
        for (size_t k = 0; k < g.n && rc == 0; k++) {
            if (strcmp(g.e[k].caller, name) != 0 && strcmp(g.e[k].callee, name) != 0) continue;
            if (n == SL_IDENTITY_EDGES_MAX) {
                snprintf(err, SL_CONFIG_ERR_MAX, "%s: more than %d identity edges", name,
                         SL_IDENTITY_EDGES_MAX);
                rc = SL_ELIMIT;
            } else {
                mine[n++] = g.e[k];
            }
        }
        snprintf(path, sizeof path, "%s/keys/%s.keys", data_dir, name);
        if (rc == 0 && (rc = sl_identity_keyring_write(path, mine, n, kerr)) != 0)
            snprintf(err, SL_CONFIG_ERR_MAX, "%s", kerr);
        sodium_memzero(mine, sizeof mine);
    }
    sodium_memzero(&g, sizeof g);
    return rc;
}
