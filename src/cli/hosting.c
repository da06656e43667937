/*
 * The topology's `hosting:` block (cli.h, docs/configuration.md): which
 * services `shoal up` runs together in one shoal-shop process. Pure: reads
 * the parsed topology, writes nothing.
 *
 *   hosting:
 *     - {name: shop, services: [user, product, cart, inventory, notification], bus: auto}
 *
 * A service named in no group runs as its own process, as without the block.
 * `bus:` (auto | nats | inproc) says whether the group's events go through
 * the process's in-process broker or through NATS (cli_hosting_buses).
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

/* A process name: 1..CLI_NAME_MAX-1 bytes of [a-z0-9-], starting with a letter. */
static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= CLI_NAME_MAX || s[0] < 'a' || s[0] > 'z') return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

/* 1 when `name` is one of the topology's services (the gateway excluded). */
static int is_service(const json_t *root, const char *name)
{
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(root, "services"), i, item)
    {
        const char *n = json_string_value(json_object_get(item, "name"));
        if (n && strcmp(n, name) == 0 && strcmp(n, "gateway") != 0) return 1;
    }
    return 0;
}

int cli_hosting_read(const json_t *root, cli_hosting_group *out, size_t cap, size_t *n, char *err,
                     size_t errcap)
{
    *n = 0;
    const json_t *h = json_object_get(root, "hosting");
    if (!h || json_is_null(h)) return 0;
    if (!json_is_array(h)) {
        snprintf(err, errcap, "hosting: must be a list of {name, services}");
        return SL_EINVAL;
    }
    if (json_array_size(h) > cap) {
        snprintf(err, errcap, "hosting: at most %zu groups", cap);
        return SL_EINVAL;
    }
    size_t i;
    json_t *g;
    json_array_foreach(h, i, g)
    {
        cli_hosting_group *grp = &out[i];
        memset(grp, 0, sizeof *grp);
        const char *name = json_string_value(json_object_get(g, "name"));
        if (!json_is_object(g) || !name || !name_ok(name)) {
            snprintf(err, errcap,
                     "hosting[%zu].name: must be 1..%d characters of a-z, 0-9 and '-', starting "
                     "with a letter",
                     i, CLI_NAME_MAX - 1);
            return SL_EINVAL;
        }
        if (is_service(root, name) || strcmp(name, "gateway") == 0 ||
            strcmp(name, "nats-server") == 0) {
            snprintf(err, errcap, "hosting[%zu].name: '%s' is already a process's name", i, name);
            return SL_EINVAL;
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(out[k].name, name) == 0) {
                snprintf(err, errcap, "hosting[%zu].name: '%s' is used twice", i, name);
                return SL_EINVAL;
            }
        snprintf(grp->name, sizeof grp->name, "%s", name);
        const json_t *bus = json_object_get(g, "bus");
        const char *bs = json_string_value(bus);
        if (!bus || (bs && strcmp(bs, "auto") == 0))
            grp->bus = CLI_BUS_AUTO;
        else if (bs && strcmp(bs, "nats") == 0)
            grp->bus = CLI_BUS_NATS;
        else if (bs && strcmp(bs, "inproc") == 0)
            grp->bus = CLI_BUS_INPROC;
        else {
            snprintf(err, errcap, "hosting[%zu].bus: must be auto, nats or inproc", i);
            return SL_EINVAL;
        }
        const json_t *svcs = json_object_get(g, "services");
        if (!json_is_array(svcs) || json_array_size(svcs) == 0 ||
            json_array_size(svcs) > CLI_HOSTING_MEMBERS_MAX) {
            snprintf(err, errcap, "hosting[%zu].services: must be a list of 1..%d service names", i,
                     CLI_HOSTING_MEMBERS_MAX);
            return SL_EINVAL;
        }
        size_t k;
        json_t *m;
        json_array_foreach(svcs, k, m)
        {
            const char *sn = json_string_value(m);
            if (!sn || !is_service(root, sn)) {
                snprintf(err, errcap, "hosting[%zu].services[%zu]: must name one of the services",
                         i, k);
                return SL_EINVAL;
            }
            for (size_t a = 0; a <= i; a++)
                for (size_t b = 0; b < out[a].n; b++)
                    if (strcmp(out[a].members[b], sn) == 0) {
                        snprintf(err, errcap,
                                 "hosting[%zu].services[%zu]: '%s' is already hosted in '%s'", i, k,
                                 sn, out[a].name);
                        return SL_EINVAL;
                    }
            snprintf(grp->members[grp->n++], CLI_NAME_MAX, "%s", sn);
        }
        (*n)++;
    }
    return 0;
}

int cli_hosting_group_of(const cli_hosting_group *g, size_t n, const char *service)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < g[i].n; k++)
            if (strcmp(g[i].members[k], service) == 0) return (int)i;
    return -1;
}

int cli_service_uses_bus(const json_t *defs, const char *name)
{
    if (strcmp(name, "gateway") == 0) return 0;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(defs, "services"), i, d)
    {
        const char *n = json_string_value(json_object_get(d, "name"));
        if (!n || strcmp(n, name) != 0) continue;
        return json_array_size(json_object_get(d, "subscriptions")) > 0 ||
               json_array_size(json_object_get(d, "publishes")) > 0;
    }
    return 1; /* unknown: assume it does */
}

int cli_hosting_buses(const json_t *root, const json_t *defs, cli_hosting_group *g, size_t n,
                      int *need_nats, char *err, size_t errcap)
{
    for (size_t i = 0; i < n; i++) {
        /* The first service outside the group that uses the bus, if any. */
        const char *outside = NULL;
        size_t k;
        json_t *item;
        json_array_foreach(json_object_get(root, "services"), k, item)
        {
            const char *name = json_string_value(json_object_get(item, "name"));
            if (!outside && name && cli_service_uses_bus(defs, name) &&
                cli_hosting_group_of(&g[i], 1, name) < 0)
                outside = name;
        }
        if (g[i].bus == CLI_BUS_INPROC && outside) {
            snprintf(err, errcap,
                     "hosting[%zu].bus: inproc, but %s runs outside '%s' and uses events", i,
                     outside, g[i].name);
            return SL_EINVAL;
        }
        g[i].inproc = g[i].bus != CLI_BUS_NATS && !outside;
    }
    if (need_nats) {
        *need_nats = 0;
        size_t k;
        json_t *item;
        json_array_foreach(json_object_get(root, "services"), k, item)
        {
            const char *name = json_string_value(json_object_get(item, "name"));
            if (!name || !cli_service_uses_bus(defs, name)) continue;
            int gi = cli_hosting_group_of(g, n, name);
            if (gi < 0 || !g[gi].inproc) *need_nats = 1;
        }
    }
    return 0;
}
