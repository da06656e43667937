/*
 * Configuration for Shoal executables: a YAML file (libyaml) converted into a
 * jansson tree, so configuration and request bodies share one validator
 * (sl_json_read). Every node keeps its source position, so errors read
 * `config/local.yaml:12:9: listeners[0].port: must be at most 65535`.
 * Environment variables `SHOAL_<SECTION>__<KEY>` override values.
 *
 * YAML accepted: one document whose top level is a mapping (an empty file is {}), block or
 * flow style. Rejected: anchors and aliases (alias bombs), tags, duplicate keys, non-scalar
 * keys, several documents, nesting deeper than SL_CONFIG_MAX_DEPTH, inputs over
 * SL_CONFIG_MAX_BYTES, NUL characters in strings.
 *
 * Plain (unquoted) scalars are typed: "", ~, null, Null, NULL → null; true/True/TRUE,
 * false/False/FALSE → boolean (YAML 1.2: yes/no/on/off stay strings); [-+]?[0-9]+ → integer
 * (out of int64 range is an error); decimal numbers with a '.' or an exponent → real;
 * anything else (including .inf and .nan) → string. Quoted scalars are always strings.
 *
 * An sl_config is not thread-safe: load and apply overrides on one thread, then read it from
 * any number of threads as long as nobody modifies it.
 */
#ifndef SHOAL_CONFIG_H
#define SHOAL_CONFIG_H

#include <shoal/common.h>
#include <shoal/json.h>

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_CONFIG_MAX_BYTES ((size_t)1 << 20) /* larger files are rejected */
#define SL_CONFIG_MAX_DEPTH 32                /* nested mappings/sequences */
#define SL_CONFIG_PATH_MAX  512               /* bytes of a dotted path such as a.b[3].c */
#define SL_CONFIG_ERR_MAX   512               /* size of every `err` buffer below */

typedef struct sl_config sl_config;

/*
 * Parses `len` bytes of YAML `text` (need not be NUL-terminated); `name` (borrowed, copied)
 * is the source name used in messages, usually the file path.
 * `err`: NULL or a buffer of SL_CONFIG_ERR_MAX bytes that receives one message on failure,
 * such as "local.yaml:10:1: did not find expected ',' or ']' (while parsing a flow sequence
 * started at 9:8)".
 * Returns 0 and `*out` (returns owned: free with sl_config_free()); SL_ELIMIT (too large or too
 * deep), SL_EPARSE (YAML syntax), SL_ECONFIG (a rejected construct, see above) or SL_ENOMEM.
 * On failure `*out` is NULL.
 */
SL_API SL_MUST_CHECK int sl_config_load_string(const char *name, const char *text, size_t len,
                                               sl_config **out, char *err);

/* Reads the file at `path` and calls sl_config_load_string() with `path` as the name. Also
 * returns SL_EIO (with the reason in `err`) when the file cannot be read. */
SL_API SL_MUST_CHECK int sl_config_load_file(const char *path, sl_config **out, char *err);

/* Frees `cfg` and everything borrowed from it. NULL is a no-op. */
SL_API void sl_config_free(sl_config *cfg);

/* Returns the root object (borrowed, valid until sl_config_free(); do not modify it). */
SL_API json_t *sl_config_root(const sl_config *cfg);

/*
 * Applies environment overrides from `envp` (borrowed; a NULL-terminated "NAME=value" array,
 * e.g. `environ`; tests pass their own). `SHOAL_HTTP__PORT=8081` sets `http.port`: the part
 * after `SHOAL_` is split at `__`; each segment matches an existing key ignoring ASCII case
 * (and keeps that key's spelling), or creates a lower-case key; a segment of digits indexes
 * an existing array element; missing intermediate objects are created. The value is typed
 * like a plain YAML scalar ("8081" → integer, "" → null). Its source in later messages is
 * `env SHOAL_HTTP__PORT`.
 *
 * Which variables apply: only those whose first segment is a top-level key of the loaded
 * tree or one of `sections` (NULL or a NULL-terminated list of lower-case names). Others are
 * ignored, because the environment holds unrelated SHOAL_* variables. SHOAL_CONFIG (the
 * config file path, see sl_config_path_from_args), SHOAL_BIN_DIR and SHOAL_SOURCE_DIR (used
 * by the test suites) are never overrides.
 *
 * Returns 0; SL_ECONFIG with a message in `err` (NULL or SL_CONFIG_ERR_MAX bytes) when a
 * variable cannot be applied (an empty segment, a path through a scalar, an index out of
 * range, a value out of range, too deep); SL_ENOMEM. Variables before the failing one stay
 * applied.
 */
SL_API SL_MUST_CHECK int sl_config_apply_env(sl_config *cfg, char *const *envp,
                                             const char *const *sections, char *err);

/*
 * Writes where the value at dotted `path` came from into `buf` (`cap` bytes): "file:line:col"
 * or "env SHOAL_X". A path that does not exist gets the location of its nearest existing
 * ancestor. Returns 0 or SL_ELIMIT when `buf` is too small (it still holds a truncated text).
 */
SL_API int sl_config_locate(const sl_config *cfg, const char *path, char *buf, size_t cap);

/*
 * Validates the object at dotted `path` ("" for the root) with sl_json_read_at() and records
 * every error in `errs` (which may hold earlier errors) with `field` set to the full path and
 * `message` to a located line: "local.yaml:12:9: http.port: must be at most 65535". A missing
 * object is validated as an empty one (so its required fields are reported).
 * Returns 0, or SL_EINVAL when an error was found. Outputs borrow from `cfg`.
 */
SL_API SL_MUST_CHECK int sl_config_read(const sl_config *cfg, const char *path,
                                        const sl_json_field *fields, size_t n, unsigned flags,
                                        sl_json_errors *errs);

/*
 * Getters with defaults. A value that is absent or null yields `def`. The result goes to
 * `*out` (strings: borrowed from `cfg`). Returns 0, or SL_EINVAL with a located message in
 * `err` (NULL or SL_CONFIG_ERR_MAX bytes) when the value has the wrong type or is outside
 * [min, max]; `*out` is then set to `def`.
 */
SL_API SL_MUST_CHECK int sl_config_get_int(const sl_config *cfg, const char *path, int64_t def,
                                           int64_t min, int64_t max, int64_t *out, char *err);
SL_API SL_MUST_CHECK int sl_config_get_bool(const sl_config *cfg, const char *path, bool def,
                                            bool *out, char *err);
SL_API SL_MUST_CHECK int sl_config_get_string(const sl_config *cfg, const char *path,
                                              const char *def, const char **out, char *err);
SL_API SL_MUST_CHECK int sl_config_get_number(const sl_config *cfg, const char *path, double def,
                                              double *out, char *err);

/*
 * Returns the configuration file named by `--config FILE` or `--config=FILE` in argv (the
 * last one wins; scanning stops at "--"), else the value of the SHOAL_CONFIG environment
 * variable, else NULL. The result borrows from argv or the environment.
 */
SL_API const char *sl_config_path_from_args(int argc, char *const *argv);

#endif /* SHOAL_CONFIG_H */
