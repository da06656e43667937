/*
 * shoal-defs FILE: writes the service definitions of every svc_<name> library
 * as JSON to FILE (defs.h). Run by the build after linking, never by hand;
 * `shoal graph` reads the file (its --defs option).
 */
#include "defs.h"

#include <shoal/http_types.h>

#include <stdio.h>
#include <string.h>

static int add_service(json_t *list, const sl_service_def *d)
{
    json_t *routes = json_array(), *subs = json_array(), *pubs = json_array();
    json_t *svc = json_object();
    int bad = !routes || !subs || !pubs || !svc;
    for (size_t i = 0; !bad && i < d->nroutes; i++)
        bad |= json_array_append_new(routes, json_pack("{s:s, s:s}", "method",
                                                       sl_http_method_name(d->routes[i].method),
                                                       "path", d->routes[i].path)) != 0;
    for (size_t i = 0; !bad && i < d->nsubscriptions; i++) {
        char group[256];
        const sl_subscription_def *s = &d->subscriptions[i];
        if (s->group)
            snprintf(group, sizeof group, "%s", s->group);
        else
            snprintf(group, sizeof group, "%s.%s", d->name, s->topic);
        bad |= json_array_append_new(
                   subs, json_pack("{s:s, s:s}", "topic", s->topic, "group", group)) != 0;
    }
    for (size_t i = 0; !bad && d->publishes && d->publishes[i]; i++)
        bad |= json_array_append_new(pubs, json_string(d->publishes[i])) != 0;
    if (!bad)
        bad = json_object_set_new(svc, "name", json_string(d->name)) != 0 ||
              json_object_set(svc, "routes", routes) != 0 ||
              json_object_set(svc, "subscriptions", subs) != 0 ||
              json_object_set(svc, "publishes", pubs) != 0 ||
              json_object_set_new(svc, "database", json_boolean(d->migrations != NULL)) != 0 ||
              json_array_append(list, svc) != 0;
    json_decref(routes);
    json_decref(subs);
    json_decref(pubs);
    json_decref(svc);
    return bad ? SL_ENOMEM : 0;
}

int cli_defs_json(const sl_service_def *const *defs, json_t **out)
{
    json_t *list = json_array();
    *out = NULL;
    if (!list) return SL_ENOMEM;
    for (size_t i = 0; defs[i]; i++)
        if (add_service(list, defs[i]) != 0) {
            json_decref(list);
            return SL_ENOMEM;
        }
    *out = json_pack("{s:o}", "services", list);
    return *out ? 0 : SL_ENOMEM;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: shoal-defs FILE\n");
        return 2;
    }
    json_t *doc = NULL;
    if (cli_defs_json(cli_defs_all, &doc) != 0) {
        fprintf(stderr, "shoal-defs: out of memory\n");
        return 1;
    }
    /* Written whole to a temporary name, then renamed: a reader never sees half a file. */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    int rc = json_dump_file(doc, tmp, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(doc);
    if (rc != 0 || rename(tmp, argv[1]) != 0) {
        fprintf(stderr, "shoal-defs: cannot write %s\n", argv[1]);
        remove(tmp);
        return 1;
    }
    return 0;
}
