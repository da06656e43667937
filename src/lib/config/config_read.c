/*
 * Reading a loaded configuration: source locations of paths, validation of a
 * section with the json module's field tables (errors become located lines
 * such as "local.yaml:12:9: http.port: must be at most 65535"), getters with
 * defaults, and finding the configuration file from argv and SHOAL_CONFIG.
 */
#include "config/config_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sl_config_locate(const sl_config *cfg, const char *path, char *buf, size_t cap)
{
    int32_t node = 0; /* the root */
    cfg_seg s;
    while (sl__config_path_next(&path, &s) > 0) {
        int32_t child = sl__config_node_child(cfg, node, &s);
        if (child < 0) break; /* nearest existing ancestor */
        node = child;
    }
    const cfg_node *n = &cfg->nodes[node];
    const char *src = cfg->sources[n->source];
    int w = n->line ? snprintf(buf, cap, "%s:%" PRIu32 ":%" PRIu32, src, n->line, n->col)
                    : snprintf(buf, cap, "%s", src);
    return (w < 0 || (size_t)w >= cap) ? SL_ELIMIT : 0;
}

/* Writes "location: path: message" (or "location: message" for the root) into `out`. */
static void located(const sl_config *cfg, const char *path, const char *msg, char *out, size_t cap)
{
    char loc[SL_CONFIG_ERR_MAX / 2]; /* a long file name is cut, the message is kept */
    (void)sl_config_locate(cfg, path, loc, sizeof loc);
    /* Truncation is acceptable here: the location and path come first. */
    int w = *path ? snprintf(out, cap, "%s: %s: %s", loc, path, msg)
                  : snprintf(out, cap, "%s: %s", loc, msg);
    (void)w;
}

int sl_config_read(const sl_config *cfg, const char *path, const sl_json_field *fields, size_t n,
                   unsigned flags, sl_json_errors *errs)
{
    json_t *obj = sl__config_path_get(cfg->root, path);
    json_t *empty = NULL;
    if (!obj || json_is_null(obj)) obj = empty = json_object();
    if (!obj) return SL_ENOMEM;
    sl_json_errors tmp;
    sl_json_errors_init(&tmp);
    int rc = sl_json_read_at(obj, path, fields, n, flags, &tmp);
    json_decref(empty);
    for (size_t i = 0; i < tmp.count; i++) {
        char line[SL_JSON_MESSAGE_MAX];
        located(cfg, tmp.items[i].field, tmp.items[i].message, line, sizeof line);
        sl_json_errors_add(errs, tmp.items[i].field, "%s", line);
    }
    if (errs) errs->dropped += tmp.dropped;
    return rc;
}

/* Fetches `path`; returns 1 with the value when present and non-null, 0 otherwise. */
static int lookup(const sl_config *cfg, const char *path, json_t **v)
{
    *v = sl__config_path_get(cfg->root, path);
    return *v && !json_is_null(*v);
}

static int bad(const sl_config *cfg, const char *path, char *err, const char *msg)
{
    if (err) located(cfg, path, msg, err, SL_CONFIG_ERR_MAX);
    return SL_EINVAL;
}

int sl_config_get_int(const sl_config *cfg, const char *path, int64_t def, int64_t min, int64_t max,
                      int64_t *out, char *err)
{
    json_t *v;
    char msg[64];
    *out = def;
    if (!lookup(cfg, path, &v)) return 0;
    if (!json_is_integer(v)) return bad(cfg, path, err, "must be an integer");
    int64_t x = (int64_t)json_integer_value(v);
    if (x < min) {
        snprintf(msg, sizeof msg, "must be at least %" PRId64, min);
        return bad(cfg, path, err, msg);
    }
    if (x > max) {
        snprintf(msg, sizeof msg, "must be at most %" PRId64, max);
        return bad(cfg, path, err, msg);
    }
    *out = x;
    return 0;
}

int sl_config_get_bool(const sl_config *cfg, const char *path, bool def, bool *out, char *err)
{
    json_t *v;
    *out = def;
    if (!lookup(cfg, path, &v)) return 0;
    if (!json_is_boolean(v)) return bad(cfg, path, err, "must be a boolean");
    *out = json_is_true(v);
    return 0;
}

int sl_config_get_string(const sl_config *cfg, const char *path, const char *def, const char **out,
                         char *err)
{
    json_t *v;
    *out = def;
    if (!lookup(cfg, path, &v)) return 0;
    if (!json_is_string(v)) return bad(cfg, path, err, "must be a string");
    *out = json_string_value(v);
    return 0;
}

int sl_config_get_number(const sl_config *cfg, const char *path, double def, double *out, char *err)
{
    json_t *v;
    *out = def;
    if (!lookup(cfg, path, &v)) return 0;
    if (!json_is_number(v)) return bad(cfg, path, err, "must be a number");
    *out = json_number_value(v);
    return 0;
}

const char *sl_config_path_from_args(int argc, char *const *argv)
{
    const char *found = NULL;
    for (int i = 1; i < argc && argv[i]; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) break;
        if (strcmp(a, "--config") == 0 && i + 1 < argc)
            found = argv[++i];
        else if (strncmp(a, "--config=", 9) == 0)
            found = a + 9;
    }
    if (found) return found;
    const char *env = getenv("SHOAL_CONFIG");
    return env && *env ? env : NULL;
}
