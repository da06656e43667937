/*
 * Static files the gateway serves (the storefront at /, the operations
 * console at /ops/): configuration entries `static: [{prefix, root}]`, a
 * pure path resolver, and an in-memory copy of every servable file taken
 * when the configuration is loaded (docs/gateway.md, "Static files").
 *
 * The files are read once, on the main thread, by px_config_load, and live
 * in the px_config: the loop threads only look them up and answer from
 * memory, and a reload (SIGHUP) picks up new or changed files. Only regular
 * files of a known type under the root are taken; symbolic links, hidden
 * names (".git", ".env") and anything over the bounds below are not. The
 * lookup can therefore only ever find a file that was under the root when it
 * was loaded: the resolver is a second line that refuses anything that could
 * mean another path (dot segments, encoded dots or slashes, backslashes, NUL).
 */
#ifndef SHOAL_PROXY_STATIC_H
#define SHOAL_PROXY_STATIC_H

#include <shoal/common.h>

#include <stddef.h>
#include <stdint.h>

#define PX_STATIC_MAX            8                   /* entries in `static:` */
#define PX_STATIC_PATH_MAX       512                 /* a resolved relative path, bytes */
#define PX_STATIC_DEPTH_MAX      8                   /* directory levels under a root */
#define PX_STATIC_FILES_MAX      1024                /* files per root */
#define PX_STATIC_FILE_MAX_BYTES (4u * 1024 * 1024)  /* one file */
#define PX_STATIC_TOTAL_MAX      (32u * 1024 * 1024) /* every root together */

typedef struct px_static_file {
    char *rel;  /* "index.html", "css/app.css" */
    char *data; /* the whole file */
    size_t len;
    const char *ctype; /* static string */
    char etag[64];     /* quoted: "\"<inode>-<size>-<mtime ns>\"" in hex */
    int html;
} px_static_file;

typedef struct px_static_site {
    char *prefix; /* "/" or "/ops/": starts and ends with '/' */
    char *root;   /* as configured: absolute, or relative to the working directory */
    uint32_t max_age_s;
    px_static_file *files; /* sorted by rel */
    size_t nfiles;
    size_t bytes;
    int missing; /* the root did not exist at load: serves nothing */
} px_static_site;

/*
 * Resolves the request path `path` (no query) against `prefix` into the
 * relative file path `out` (cap bytes, NUL-terminated): percent escapes are
 * decoded; "" or a trailing '/' names "index.html". Pure.
 * Returns the length, SL_ENOTFOUND when `path` is not under `prefix`, or
 * SL_EINVAL when the path is refused: an empty, "." or ".." segment (or any
 * segment starting with '.'), an encoded '.', '/', '\' or NUL, a bad escape,
 * a backslash, a control byte; SL_ELIMIT when it does not fit.
 */
int px_static_resolve(sl_slice path, const char *prefix, char *out, size_t cap);

/* Returns the Content-Type for a file name by its extension, or NULL (not served). */
const char *px_static_content_type(const char *name);

/*
 * Returns 1 when the If-None-Match header value `inm` matches `etag` (weak
 * comparison; "*" matches any), else 0. Pure.
 */
int px_static_etag_match(sl_slice inm, const char *etag);

/*
 * Reads every servable file under site->root into site (files, bytes). A
 * missing root is not an error: site->missing is set and `note` (256 bytes)
 * says so. *total counts the bytes of every site loaded so far (bounded by
 * PX_STATIC_TOTAL_MAX). Returns 0, or SL_ELIMIT / SL_EIO / SL_ENOMEM with a
 * message in `err` (PX_ERR_MAX bytes).
 */
int px_static_load(px_static_site *site, size_t *total, char *note, char *err, size_t errcap);

/* Frees what a site owns (not the site itself). */
void px_static_site_free(px_static_site *site);

/* Finds the file named `rel` in `site`, or NULL. */
const px_static_file *px_static_find(const px_static_site *site, const char *rel);

typedef enum px_static_hit {
    PX_STATIC_MISS,     /* no file: the caller answers 404 */
    PX_STATIC_FILE,     /* *file and *site set */
    PX_STATIC_REDIRECT, /* path + "/" names a directory's index: answer 301 */
} px_static_hit;

/*
 * Looks `path` up in the `n` sites: the site with the longest matching
 * prefix owns the path. A refused path is a miss. Pure (over loaded sites).
 */
px_static_hit px_static_lookup(const px_static_site *sites, size_t n, sl_slice path,
                               const px_static_site **site, const px_static_file **file);

#endif
