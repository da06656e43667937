/*
 * Static files (static.h): the pure path resolver and helpers, and the
 * loader that copies a root's servable files into memory. Answers are in
 * static_serve.c.
 */
#include "static.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- pure helpers ------------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int px_static_resolve(sl_slice path, const char *prefix, char *out, size_t cap)
{
    SL_ASSERT(prefix && out && cap > 0);
    size_t plen = strlen(prefix);
    if (!path.ptr || path.len < plen || memcmp(path.ptr, prefix, plen) != 0) return SL_ENOTFOUND;
    const char *p = path.ptr + plen, *end = path.ptr + path.len;
    size_t n = 0;
    size_t seg = 0; /* start of the current segment in out */
    out[0] = '\0';
    while (p < end) {
        unsigned char c = (unsigned char)*p++;
        int encoded = 0;
        if (c == '%') {
            if (end - p < 2) return SL_EINVAL;
            int hi = hexval(p[0]), lo = hexval(p[1]);
            if (hi < 0 || lo < 0) return SL_EINVAL;
            c = (unsigned char)(hi * 16 + lo);
            p += 2;
            encoded = 1;
        }
        if (c < 0x20 || c == 0x7f || c == '\\') return SL_EINVAL;
        if (encoded && (c == '.' || c == '/')) return SL_EINVAL;
        if (c == '/') {
            if (n == seg) return SL_EINVAL; /* empty segment: "//" or a leading '/' */
            if (n + 1 >= cap) return SL_ELIMIT;
            out[n++] = '/';
            seg = n;
            continue;
        }
        if (c == '.' && n == seg) return SL_EINVAL; /* ".", "..", hidden names */
        if (n + 1 >= cap) return SL_ELIMIT;
        out[n++] = (char)c;
    }
    if (n == seg) { /* "" or a trailing '/': the directory's index */
        static const char idx[] = "index.html";
        if (n + sizeof idx > cap) return SL_ELIMIT;
        memcpy(out + n, idx, sizeof idx);
        return (int)(n + sizeof idx - 1);
    }
    out[n] = '\0';
    return (int)n;
}

const char *px_static_content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".json", "application/json"},
        {".webmanifest", "application/manifest+json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".webp", "image/webp"},
        {".ico", "image/x-icon"},
        {".woff2", "font/woff2"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    const char *slash = strrchr(name, '/');
    if (!dot || (slash && dot < slash)) return NULL;
    for (size_t i = 0; i < SL_ARRAY_LEN(types); i++)
        if (strcmp(dot, types[i].ext) == 0) return types[i].type;
    return NULL;
}

int px_static_etag_match(sl_slice inm, const char *etag)
{
    const char *p = inm.ptr, *end = inm.ptr + inm.len;
    /* compare without the weak prefix on either side */
    const char *want = strncmp(etag, "W/", 2) == 0 ? etag + 2 : etag;
    size_t wlen = strlen(want);
    while (p && p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *s = p;
        while (p < end && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e - s == 1 && *s == '*') return 1;
        if (e - s >= 2 && s[0] == 'W' && s[1] == '/') s += 2;
        if ((size_t)(e - s) == wlen && memcmp(s, want, wlen) == 0) return 1;
    }
    return 0;
}

/* ---- loading ------------------------------------------------------------------------------ */

typedef struct walker {
    px_static_site *site;
    size_t *total;
    size_t cap;
    char *err;
    size_t errcap;
} walker;

static int add_file(walker *w, int fd, const struct stat *st, const char *rel, const char *ctype)
{
    px_static_site *s = w->site;
    if (st->st_size < 0 || (uint64_t)st->st_size > PX_STATIC_FILE_MAX_BYTES) {
        snprintf(w->err, w->errcap, "static %s: %s/%s is larger than %u bytes", s->prefix, s->root,
                 rel, PX_STATIC_FILE_MAX_BYTES);
        return SL_ELIMIT;
    }
    size_t size = (size_t)st->st_size;
    if (s->nfiles >= PX_STATIC_FILES_MAX) {
        snprintf(w->err, w->errcap, "static %s: %s has more than %d files", s->prefix, s->root,
                 PX_STATIC_FILES_MAX);
        return SL_ELIMIT;
    }
    if (*w->total + size > PX_STATIC_TOTAL_MAX) {
        snprintf(w->err, w->errcap, "static %s: the static files exceed %u bytes in all", s->prefix,
                 PX_STATIC_TOTAL_MAX);
        return SL_ELIMIT;
    }
    if (s->nfiles == w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 32;
        px_static_file *nf = realloc(s->files, ncap * sizeof *nf);
        if (!nf) return SL_ENOMEM;
        s->files = nf;
        w->cap = ncap;
    }
    px_static_file *f = &s->files[s->nfiles];
    memset(f, 0, sizeof *f);
    f->rel = strdup(rel);
    f->data = malloc(size ? size : 1);
    if (!f->rel || !f->data) {
        free(f->rel);
        free(f->data);
        return SL_ENOMEM;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, f->data + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (got != size) {
        snprintf(w->err, w->errcap, "static %s: could not read %s/%s", s->prefix, s->root, rel);
        free(f->rel);
        free(f->data);
        return SL_EIO;
    }
    f->len = size;
    f->ctype = ctype;
    f->html = strncmp(ctype, "text/html", 9) == 0;
    int64_t mns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    snprintf(f->etag, sizeof f->etag, "\"%llx-%llx-%llx\"", (unsigned long long)st->st_ino,
             (unsigned long long)size, (unsigned long long)mns);
    s->nfiles++;
    s->bytes += size;
    *w->total += size;
    return 0;
}

/* Walks the directory `dfd` (owned: closed here) whose relative path is `rel` ("" at the root). */
static int walk(walker *w, int dfd, const char *rel, int depth)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return SL_EIO;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue; /* ".", "..", hidden names */
        char sub[PX_STATIC_PATH_MAX];
        int n = snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        if (n < 0 || (size_t)n >= sizeof sub) continue; /* too long to be asked for */
        char probe[PX_STATIC_PATH_MAX + 2];
        snprintf(probe, sizeof probe, "/%s", sub);
        char back[PX_STATIC_PATH_MAX];
        /* Only names the resolver would map back to themselves can be served. */
        if (px_static_resolve((sl_slice){probe, strlen(probe)}, "/", back, sizeof back) < 0 ||
            strcmp(back, sub) != 0 || strchr(e->d_name, '%'))
            continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) continue; /* a symbolic link (ELOOP), gone, or unreadable: not served */
        struct stat st;
        if (fstat(fd, &st) != 0) {
            close(fd);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (depth + 1 >= PX_STATIC_DEPTH_MAX) {
                close(fd);
                continue;
            }
            rc = walk(w, fd, sub, depth + 1);
            continue;
        }
        const char *ctype = px_static_content_type(e->d_name);
        if (S_ISREG(st.st_mode) && ctype) rc = add_file(w, fd, &st, sub, ctype);
        close(fd);
    }
    closedir(d);
    return rc;
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const px_static_file *)a)->rel, ((const px_static_file *)b)->rel);
}

int px_static_load(px_static_site *site, size_t *total, char *note, char *err, size_t errcap)
{
    SL_ASSERT(site && site->root && total && note && err);
    int dfd = open(site->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        if (errno == ENOENT) {
            site->missing = 1;
            snprintf(note, 256, "static %s: %s does not exist (from %s); nothing served there",
                     site->prefix, site->root,
                     site->root[0] == '/' ? "/" : "the working directory");
            return 0;
        }
        snprintf(err, errcap, "static %s: cannot open %s: %s", site->prefix, site->root,
                 strerror(errno));
        return SL_EIO;
    }
    walker w = {.site = site, .total = total, .err = err, .errcap = errcap};
    int rc = walk(&w, dfd, "", 0);
    if (rc == SL_ENOMEM) snprintf(err, errcap, "static %s: out of memory", site->prefix);
    if (rc == SL_EIO && !err[0])
        snprintf(err, errcap, "static %s: cannot read %s", site->prefix, site->root);
    if (rc != 0) return rc;
    if (site->nfiles) qsort(site->files, site->nfiles, sizeof *site->files, cmp_file);
    return 0;
}

void px_static_site_free(px_static_site *site)
{
    if (!site) return;
    for (size_t i = 0; i < site->nfiles; i++) {
        free(site->files[i].rel);
        free(site->files[i].data);
    }
    free(site->files);
    free(site->prefix);
    free(site->root);
    memset(site, 0, sizeof *site);
}

const px_static_file *px_static_find(const px_static_site *site, const char *rel)
{
    size_t lo = 0, hi = site->nfiles;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(rel, site->files[mid].rel);
        if (c == 0) return &site->files[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static const px_static_site *owner(const px_static_site *sites, size_t n, sl_slice path)
{
    const px_static_site *best = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t pl = strlen(sites[i].prefix);
        if (path.len >= pl && memcmp(path.ptr, sites[i].prefix, pl) == 0 &&
            (!best || pl > strlen(best->prefix)))
            best = &sites[i];
    }
    return best;
}

px_static_hit px_static_lookup(const px_static_site *sites, size_t n, sl_slice path,
                               const px_static_site **site, const px_static_file **file)
{
    char rel[PX_STATIC_PATH_MAX];
    *site = NULL;
    *file = NULL;
    if (path.len == 0 || path.len >= PX_STATIC_PATH_MAX) return PX_STATIC_MISS;
    const px_static_site *s = owner(sites, n, path);
    if (s && px_static_resolve(path, s->prefix, rel, sizeof rel) >= 0 &&
        (*file = px_static_find(s, rel)) != NULL) {
        *site = s;
        return PX_STATIC_FILE;
    }
    /* "/ops" or "/ops/orders": a directory with an index, asked for without its slash */
    if (path.ptr[path.len - 1] == '/') return PX_STATIC_MISS;
    char dir[PX_STATIC_PATH_MAX + 1];
    memcpy(dir, path.ptr, path.len);
    dir[path.len] = '/';
    sl_slice d = {dir, path.len + 1};
    s = owner(sites, n, d);
    if (s && px_static_resolve(d, s->prefix, rel, sizeof rel) >= 0 && px_static_find(s, rel)) {
        *site = s;
        return PX_STATIC_REDIRECT;
    }
    return PX_STATIC_MISS;
}
