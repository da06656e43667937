/*
 * The config module's data structure: the sl_config with its side table of
 * node positions (see config_int.h), dotted paths, and the typing of plain
 * YAML scalars shared by the loader and the environment overrides.
 */
#include "config/config_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sl__config_errf(char *err, const char *fmt, ...)
{
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, SL_CONFIG_ERR_MAX, fmt, ap);
    va_end(ap);
}

sl_config *sl__config_new(const char *name)
{
    sl_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) return NULL;
    if (sl__config_source_add(cfg, name) < 0) {
        free(cfg);
        return NULL;
    }
    return cfg;
}

void sl_config_free(sl_config *cfg)
{
    if (!cfg) return;
    json_decref(cfg->root);
    for (size_t i = 0; i < cfg->n_sources; i++)
        free(cfg->sources[i]);
    free(cfg->sources);
    free(cfg->nodes);
    free(cfg->keys);
    free(cfg);
}

json_t *sl_config_root(const sl_config *cfg)
{
    return cfg->root;
}

int64_t sl__config_source_add(sl_config *cfg, const char *name)
{
    if (cfg->n_sources == cfg->cap_sources) {
        size_t cap = cfg->cap_sources ? cfg->cap_sources * 2 : 4;
        if (cap > UINT32_MAX) return SL_ELIMIT;
        char **s = realloc(cfg->sources, cap * sizeof *s);
        if (!s) return SL_ENOMEM;
        cfg->sources = s;
        cfg->cap_sources = cap;
    }
    char *copy = strdup(name);
    if (!copy) return SL_ENOMEM;
    cfg->sources[cfg->n_sources] = copy;
    return (int64_t)cfg->n_sources++;
}

int32_t sl__config_node_add(sl_config *cfg, int32_t parent, const char *key, size_t key_len,
                            size_t index, uint32_t line, uint32_t col, uint32_t source)
{
    SL_ASSERT(parent >= -1 && (parent < 0 || (size_t)parent < cfg->n_nodes));
    /* Inputs are at most SL_CONFIG_MAX_BYTES, so these bounds are never reached by a file. */
    if (cfg->n_nodes >= INT32_MAX || cfg->keys_len + key_len >= UINT32_MAX || index >= UINT32_MAX)
        return SL_ELIMIT;
    if (cfg->n_nodes == cfg->cap_nodes) {
        size_t cap = cfg->cap_nodes ? cfg->cap_nodes * 2 : 64;
        cfg_node *n = realloc(cfg->nodes, cap * sizeof *n);
        if (!n) return SL_ENOMEM;
        cfg->nodes = n;
        cfg->cap_nodes = cap;
    }
    cfg_node *n = &cfg->nodes[cfg->n_nodes];
    *n = (cfg_node){.parent = parent,
                    .key_off = CFG_NO_KEY,
                    .index = (uint32_t)index,
                    .line = line,
                    .col = col,
                    .source = source};
    if (key) {
        if (cfg->keys_len + key_len > cfg->keys_cap) {
            size_t cap = cfg->keys_cap ? cfg->keys_cap : 256;
            while (cap < cfg->keys_len + key_len)
                cap *= 2;
            char *k = realloc(cfg->keys, cap);
            if (!k) return SL_ENOMEM;
            cfg->keys = k;
            cfg->keys_cap = cap;
        }
        memcpy(cfg->keys + cfg->keys_len, key, key_len);
        n->key_off = (uint32_t)cfg->keys_len;
        n->key_len = (uint32_t)key_len;
        cfg->keys_len += key_len;
    }
    return (int32_t)cfg->n_nodes++;
}

int32_t sl__config_node_child(const sl_config *cfg, int32_t parent, const cfg_seg *s)
{
    /* Linear: lookups only happen to locate errors and apply overrides, never per request. */
    for (size_t i = 0; i < cfg->n_nodes; i++) {
        const cfg_node *n = &cfg->nodes[i];
        if (n->parent != parent) continue;
        if (s->is_index) {
            if (n->key_off == CFG_NO_KEY && n->index == s->index) return (int32_t)i;
        } else if (n->key_off != CFG_NO_KEY && n->key_len == s->key_len &&
                   memcmp(cfg->keys + n->key_off, s->key, s->key_len) == 0) {
            return (int32_t)i;
        }
    }
    return SL_ENOTFOUND;
}

void sl__config_node_kill_below(sl_config *cfg, int32_t x)
{
    SL_ASSERT(x >= 0 && (size_t)x < cfg->n_nodes);
    /* Parents always precede children, and the chain is at most SL_CONFIG_MAX_DEPTH long. */
    for (size_t i = (size_t)x + 1; i < cfg->n_nodes; i++) {
        int32_t p = cfg->nodes[i].parent;
        for (int hops = 0; p >= 0 && p != x && hops <= SL_CONFIG_MAX_DEPTH + 1; hops++)
            p = cfg->nodes[p].parent;
        if (p == x) cfg->nodes[i].parent = CFG_DEAD;
    }
}

int sl__config_path_next(const char **p, cfg_seg *s)
{
    const char *c = *p;
    if (*c == '\0') return 0;
    if (*c == '.') c++; /* separator before a key; a leading one is tolerated */
    if (*c == '[') {
        char *end;
        if (c[1] < '0' || c[1] > '9') return SL_EINVAL;
        errno = 0;
        unsigned long long v = strtoull(c + 1, &end, 10);
        if (errno || *end != ']' || v > UINT32_MAX) return SL_EINVAL;
        *s = (cfg_seg){.is_index = true, .index = (size_t)v};
        *p = end + 1;
        return 1;
    }
    size_t len = strcspn(c, ".[");
    if (len == 0) return SL_EINVAL;
    *s = (cfg_seg){.key = c, .key_len = len};
    *p = c + len;
    return 1;
}

json_t *sl__config_path_get(json_t *root, const char *path)
{
    json_t *cur = root;
    cfg_seg s;
    int r;
    while (cur && (r = sl__config_path_next(&path, &s)) != 0) {
        if (r < 0) return NULL;
        if (s.is_index)
            cur = json_is_array(cur) ? json_array_get(cur, s.index) : NULL;
        else
            cur = json_is_object(cur) ? json_object_getn(cur, s.key, s.key_len) : NULL;
    }
    return cur;
}

int sl__config_string(const char *s, size_t len, json_t **out, const char **why)
{
    if (memchr(s, '\0', len)) {
        *why = "strings must not contain NUL characters";
        return SL_ECONFIG;
    }
    if (!sl_utf8_valid(s, len)) {
        *why = "invalid UTF-8";
        return SL_ECONFIG;
    }
    *out = json_stringn(s, len);
    return *out ? 0 : SL_ENOMEM;
}

static bool is_one_of(const char *s, size_t len, const char *const *words)
{
    for (size_t i = 0; words[i]; i++)
        if (strlen(words[i]) == len && memcmp(words[i], s, len) == 0) return true;
    return false;
}

static size_t digits(const char *s, size_t len, size_t i)
{
    size_t start = i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    return i - start;
}

/* YAML 1.2 core schema: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? with a '.' or
 * an exponent (otherwise it is an integer). */
static bool looks_real(const char *s, size_t len)
{
    size_t i = (len > 0 && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
    size_t ip = digits(s, len, i), fp = 0;
    bool dot = false, exp = false;
    i += ip;
    if (i < len && s[i] == '.') {
        dot = true;
        fp = digits(s, len, i + 1);
        i += 1 + fp;
    }
    if (ip == 0 && fp == 0) return false;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        exp = true;
        i++;
        if (i < len && (s[i] == '-' || s[i] == '+')) i++;
        size_t ep = digits(s, len, i);
        if (ep == 0) return false;
        i += ep;
    }
    return i == len && (dot || exp);
}

int sl__config_scalar(const char *s, size_t len, json_t **out, const char **why)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    *out = NULL;
    if (is_one_of(s, len, nulls)) return (*out = json_null()) ? 0 : SL_ENOMEM;
    if (is_one_of(s, len, trues)) return (*out = json_true()) ? 0 : SL_ENOMEM;
    if (is_one_of(s, len, falses)) return (*out = json_false()) ? 0 : SL_ENOMEM;
    size_t sign = (len > 0 && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
    bool integer = len > sign && digits(s, len, sign) == len - sign;
    if (!integer && !looks_real(s, len)) return sl__config_string(s, len, out, why);
    /* strtoll/strtod need a terminator; numbers longer than this buffer are out of range. */
    char buf[128];
    if (len >= sizeof buf) {
        *why = integer ? "integer out of range" : "number out of range";
        return SL_ECONFIG;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    if (integer) {
        long long v = strtoll(buf, NULL, 10);
        if (errno == ERANGE) {
            *why = "integer out of range";
            return SL_ECONFIG;
        }
        *out = json_integer(v);
    } else {
        double d = strtod(buf, NULL);
        if (!isfinite(d)) {
            *why = "number out of range";
            return SL_ECONFIG;
        }
        *out = json_real(d);
    }
    return *out ? 0 : SL_ENOMEM;
}
