/*
 * Environment overrides for a loaded configuration: SHOAL_HTTP__PORT=8081
 * sets http.port. Segments match keys ignoring ASCII case; values are typed
 * like plain YAML scalars; each applied variable becomes the source of the
 * nodes it sets, so later errors name the variable.
 */
#include "config/config_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PREFIX     "SHOAL_"
#define PREFIX_LEN (sizeof PREFIX - 1)

/* Not overrides: the config file path and the test suites' directories. */
static const char *const reserved[] = {"SHOAL_CONFIG", "SHOAL_BIN_DIR", "SHOAL_SOURCE_DIR", NULL};

/* One "__"-separated segment of a variable name. */
typedef struct env_seg {
    const char *p;
    size_t len;
} env_seg;

/* Splits `name` (after the prefix) at "__". Returns the number of segments, or SL_ELIMIT when
 * there are more than SL_CONFIG_MAX_DEPTH. */
static int split(const char *name, size_t len, env_seg *segs)
{
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && !(name[i] == '_' && i + 1 < len && name[i + 1] == '_')) continue;
        if (n == SL_CONFIG_MAX_DEPTH) return SL_ELIMIT;
        segs[n++] = (env_seg){name + start, i - start};
        start = i + 2;
        i++;
    }
    return n;
}

/* Finds the key of `obj` equal to `seg` ignoring ASCII case, or NULL. */
static const char *find_key(json_t *obj, env_seg seg)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (strlen(key) == seg.len && strncasecmp(key, seg.p, seg.len) == 0) return key;
    }
    return NULL;
}

static bool applies(json_t *root, env_seg first, const char *const *sections)
{
    if (find_key(root, first)) return true;
    for (size_t i = 0; sections && sections[i]; i++)
        if (strlen(sections[i]) == first.len && strncasecmp(sections[i], first.p, first.len) == 0)
            return true;
    return false;
}

/* The state of one variable being applied. */
typedef struct env_apply {
    sl_config *cfg;
    const char *var; /* "SHOAL_HTTP__PORT" as a NUL-terminated copy */
    uint32_t source;
    char *err;
    char path[SL_CONFIG_PATH_MAX]; /* dotted path so far, for messages */
} env_apply;

static void path_add(env_apply *A, const char *key, size_t len, size_t index)
{
    size_t used = strlen(A->path);
    if (key)
        snprintf(A->path + used, sizeof A->path - used, "%s%.*s", used ? "." : "", (int)len, key);
    else
        snprintf(A->path + used, sizeof A->path - used, "[%zu]", index);
}

/*
 * Resolves segment `seg` of container `cur` to a key (the existing key's spelling, else
 * lower case) in `key`, or an array index. Returns 0 or SL_ECONFIG.
 */
static int resolve(env_apply *A, json_t *cur, env_seg seg, cfg_seg *s, char *key, size_t cap)
{
    if (seg.len == 0) {
        sl__config_errf(A->err, "env %s: empty name segment", A->var);
        return SL_ECONFIG;
    }
    if (json_is_array(cur)) {
        size_t idx = 0, i = 0;
        while (i < seg.len && isdigit((unsigned char)seg.p[i]) && idx < SIZE_MAX / 10 - 10)
            idx = idx * 10 + (size_t)(seg.p[i++] - '0');
        if (i != seg.len || idx >= json_array_size(cur)) {
            sl__config_errf(A->err, "env %s: %s: no element %.*s", A->var, A->path, (int)seg.len,
                            seg.p);
            return SL_ECONFIG;
        }
        *s = (cfg_seg){.is_index = true, .index = idx};
        return 0;
    }
    if (seg.len >= cap) {
        sl__config_errf(A->err, "env %s: name segment too long", A->var);
        return SL_ECONFIG;
    }
    const char *found = find_key(cur, seg);
    for (size_t i = 0; i < seg.len; i++)
        key[i] = found ? found[i] : (char)tolower((unsigned char)seg.p[i]);
    key[seg.len] = '\0';
    *s = (cfg_seg){.key = key, .key_len = seg.len};
    return 0;
}

/*
 * Sets `v` (takes ownership) as child `s` of container `cur` (side-table node `*node`),
 * replacing and re-sourcing an existing child. On return `*node` is the child's node.
 */
static int set_child(env_apply *A, json_t *cur, int32_t *node, const cfg_seg *s, json_t *v)
{
    int rc = s->is_index ? json_array_set_new(cur, s->index, v)
                         : json_object_setn_new(cur, s->key, s->key_len, v);
    if (rc != 0) return SL_ENOMEM;
    int32_t child = sl__config_node_child(A->cfg, *node, s);
    if (child >= 0) {
        sl__config_node_kill_below(A->cfg, child);
        A->cfg->nodes[child].line = 0;
        A->cfg->nodes[child].col = 0;
        A->cfg->nodes[child].source = A->source;
    } else {
        child = sl__config_node_add(A->cfg, *node, s->is_index ? NULL : s->key, s->key_len,
                                    s->index, 0, 0, A->source);
        if (child < 0) return child;
    }
    *node = child;
    return 0;
}

/* Applies one variable: walks/creates `segs[0..n-2]`, then sets the last to `value`. */
static int apply_one(env_apply *A, const env_seg *segs, int n, const char *value)
{
    json_t *cur = A->cfg->root;
    int32_t node = 0; /* the root is always node 0 */
    char key[256];
    cfg_seg s;
    for (int i = 0; i < n - 1; i++) {
        int rc = resolve(A, cur, segs[i], &s, key, sizeof key);
        if (rc != 0) return rc;
        path_add(A, s.is_index ? NULL : s.key, s.key_len, s.index);
        json_t *next =
            s.is_index ? json_array_get(cur, s.index) : json_object_getn(cur, s.key, s.key_len);
        if (!next || json_is_null(next)) {
            next = json_object();
            if (!next) return SL_ENOMEM;
            rc = set_child(A, cur, &node, &s, json_incref(next));
            json_decref(next);
            if (rc != 0) return rc;
        } else if (json_is_object(next) || json_is_array(next)) {
            node = sl__config_node_child(A->cfg, node, &s);
            if (node < 0) return SL_ESTATE; /* every loaded value has a node */
        } else {
            sl__config_errf(A->err, "env %s: %s: is not an object", A->var, A->path);
            return SL_ECONFIG;
        }
        cur = next;
    }
    int rc = resolve(A, cur, segs[n - 1], &s, key, sizeof key);
    if (rc != 0) return rc;
    path_add(A, s.is_index ? NULL : s.key, s.key_len, s.index);
    json_t *v;
    const char *why = NULL;
    rc = sl__config_scalar(value, strlen(value), &v, &why);
    if (rc == SL_ECONFIG) sl__config_errf(A->err, "env %s: %s: %s", A->var, A->path, why);
    if (rc != 0) return rc;
    return set_child(A, cur, &node, &s, v);
}

static bool is_reserved(const char *name, size_t len)
{
    for (size_t i = 0; reserved[i]; i++)
        if (strlen(reserved[i]) == len && memcmp(reserved[i], name, len) == 0) return true;
    return false;
}

int sl_config_apply_env(sl_config *cfg, char *const *envp, const char *const *sections, char *err)
{
    for (size_t i = 0; envp && envp[i]; i++) {
        const char *e = envp[i], *eq = strchr(e, '=');
        if (!eq || strncmp(e, PREFIX, PREFIX_LEN) != 0) continue;
        size_t name_len = (size_t)(eq - e);
        if (is_reserved(e, name_len) || name_len == PREFIX_LEN) continue;
        env_seg segs[SL_CONFIG_MAX_DEPTH];
        int n = split(e + PREFIX_LEN, name_len - PREFIX_LEN, segs);
        if (n != 0 && !applies(cfg->root, segs[0], sections)) continue;
        env_apply A = {.cfg = cfg, .err = err};
        char var[SL_CONFIG_PATH_MAX];
        snprintf(var, sizeof var, "%.*s", (int)name_len, e);
        A.var = var;
        if (n < 0) {
            sl__config_errf(err, "env %s: nests deeper than %d levels", var, SL_CONFIG_MAX_DEPTH);
            return SL_ECONFIG;
        }
        char source[SL_CONFIG_PATH_MAX + 8];
        snprintf(source, sizeof source, "env %s", var);
        int64_t src = sl__config_source_add(cfg, source);
        if (src < 0) return (int)src;
        A.source = (uint32_t)src;
        int rc = apply_one(&A, segs, n, eq + 1);
        if (rc != 0) return rc;
    }
    return 0;
}
