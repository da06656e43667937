/*
 * Internals of the config module: the sl_config struct, its side table of
 * node positions, dotted-path parsing and plain-scalar typing, shared by the
 * YAML loader, the environment overrides and the readers.
 *
 * The side table mirrors the jansson tree: one cfg_node per value, linked to
 * its parent by index and named by key or array index. Paths are not stored
 * whole (a long prefix repeated for many leaves would multiply memory);
 * lookups walk the table segment by segment. jansson shares null/true/false
 * singletons, so nodes cannot be keyed by json_t pointer.
 */
#ifndef SHOAL_CONFIG_INT_H
#define SHOAL_CONFIG_INT_H

#include <shoal/config.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CFG_NO_KEY UINT32_MAX /* cfg_node.key_off of an array element */
#define CFG_DEAD   (-2)       /* cfg_node.parent of a node replaced by an override */

typedef struct cfg_node {
    int32_t parent;   /* index of the parent node, -1 for the root, CFG_DEAD */
    uint32_t key_off; /* offset of the key in sl_config.keys, or CFG_NO_KEY */
    uint32_t key_len;
    uint32_t index;  /* array index when key_off == CFG_NO_KEY */
    uint32_t line;   /* 1-based; 0 when the source has no position (environment) */
    uint32_t col;    /* 1-based */
    uint32_t source; /* index into sl_config.sources */
} cfg_node;

struct sl_config {
    json_t *root;
    cfg_node *nodes;
    size_t n_nodes, cap_nodes;
    char *keys; /* key bytes of every node, back to back, not NUL-terminated */
    size_t keys_len, keys_cap;
    char **sources; /* [0] = the file name; then "env SHOAL_..." per override */
    size_t n_sources, cap_sources;
};

/* One segment of a dotted path: a key ("port") or an index ("[0]"). */
typedef struct cfg_seg {
    const char *key;
    size_t key_len;
    size_t index;
    bool is_index;
} cfg_seg;

/* Reads the next segment of `*p` and advances it. Returns 1, 0 at the end, SL_EINVAL if
 * malformed. */
int sl__config_path_next(const char **p, cfg_seg *s);

/* Allocates an empty config whose source 0 is `name`. Returns NULL when out of memory. */
sl_config *sl__config_new(const char *name);

/* Appends a source name (copied). Returns its index, SL_ENOMEM, or SL_ELIMIT when full. */
int64_t sl__config_source_add(sl_config *cfg, const char *name);

/* Appends a node under `parent` (-1 for the root). `key` NULL means an array element at
 * `index`. Returns its index, SL_ENOMEM, or SL_ELIMIT past the tree's bounds. */
int32_t sl__config_node_add(sl_config *cfg, int32_t parent, const char *key, size_t key_len,
                            size_t index, uint32_t line, uint32_t col, uint32_t source);

/* Returns the child of node `parent` named by `s`, or SL_ENOTFOUND. */
int32_t sl__config_node_child(const sl_config *cfg, int32_t parent, const cfg_seg *s);

/* Marks every node below `n` dead (the value was replaced). */
void sl__config_node_kill_below(sl_config *cfg, int32_t n);

/* Returns the value at `path` in `root` ("" is the root), or NULL when absent or malformed. */
json_t *sl__config_path_get(json_t *root, const char *path);

/*
 * Types a plain scalar (rules in config.h). Returns 0 with a new reference in `*out`,
 * SL_ECONFIG with a static reason in `*why`, or SL_ENOMEM.
 */
int sl__config_scalar(const char *s, size_t len, json_t **out, const char **why);

/* Makes a string value, refusing NUL characters and invalid UTF-8 like sl__config_scalar(). */
int sl__config_string(const char *s, size_t len, json_t **out, const char **why);

/* vsnprintf into `err` (NULL or SL_CONFIG_ERR_MAX bytes). */
void sl__config_errf(char *err, const char *fmt, ...) SL_PRINTF(2, 3);

#endif /* SHOAL_CONFIG_INT_H */
