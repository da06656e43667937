/*
 * `shoal certs`: the mesh's certificate authority and the services' leaves.
 *
 * <dir> (default data/mesh, mode 0700):
 *   ca.pem, ca.key           the current CA (key 0600)
 *   ca-prev.pem              the previous CA while a rotation overlaps
 *   bundle.pem               what peers trust: ca.pem, then ca-prev.pem if any
 *   certs/<name>.pem, .key   a service's leaf (key 0600)
 *   revoked.txt              revoked serials, one hex per line
 */
#include "certs.h"

#include <shoal/tls.h>

#include <openssl/rand.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FILE_MAX (1024 * 1024)

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("shoal certs: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: shoal certs [--dir DIR] init\n"
            "       shoal certs [--dir DIR] issue NAME [--hours N] [--backdate N]\n"
            "       shoal certs [--dir DIR] renew [--hours N]\n"
            "       shoal certs [--dir DIR] rotate [--finish]\n"
            "       shoal certs [--dir DIR] revoke NAME\n"
            "       shoal certs [--dir DIR] list\n"
            "  DIR defaults to data/mesh; leaves last 24 hours unless --hours says otherwise\n");
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, FILE_MAX + 1, f) : 0;
    fclose(f);
    if (!buf || n > FILE_MAX) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

/* Writes `data` to `path` with `mode`, replacing it atomically. */
static int write_file(const char *path, const char *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return SL_ELIMIT;
    (void)unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) return SL_EIO;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            return SL_EIO;
        }
        off += (size_t)w;
    }
    if (fchmod(fd, mode) != 0 || fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return SL_EIO;
    }
    return 0;
}

static int mkdir_private(const char *path)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) return SL_EIO;
    return chmod(path, 0700) == 0 ? 0 : SL_EIO;
}

/* mkdir -p for the parents of the mesh directory (data/), then the directory itself 0700. */
static int make_dirs(const char *dir)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) return SL_ELIMIT;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) return SL_EIO;
        *s = '/';
    }
    int rc = mkdir_private(p);
    if (rc != 0) return rc;
    char certs[PATH_MAX + 16];
    snprintf(certs, sizeof certs, "%s/certs", p);
    return mkdir_private(certs);
}

static void path_of(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* bundle.pem = ca.pem (+ ca-prev.pem). */
static int write_bundle(const char *dir)
{
    char p[PATH_MAX];
    path_of(p, sizeof p, dir, "ca.pem");
    char *cur = read_file(p, NULL);
    if (!cur) return SL_EIO;
    path_of(p, sizeof p, dir, "ca-prev.pem");
    char *prev = read_file(p, NULL);
    size_t n = strlen(cur) + (prev ? strlen(prev) : 0);
    char *all = malloc(n + 1);
    int rc = SL_ENOMEM;
    if (all) {
        snprintf(all, n + 1, "%s%s", cur, prev ? prev : "");
        path_of(p, sizeof p, dir, "bundle.pem");
        rc = write_file(p, all, n, 0644);
    }
    free(all);
    free(cur);
    free(prev);
    return rc;
}

/* A new CA whose name is unique (the date and a random tag): leaves name their issuer by it. */
static int make_ca(const char *dir)
{
    int64_t now = (int64_t)time(NULL);
    unsigned char tag[4];
    if (RAND_bytes(tag, sizeof tag) != 1) return SL_EIO;
    char cn[64], day[16];
    time_t t = (time_t)now;
    struct tm tm;
    strftime(day, sizeof day, "%Y%m%d", gmtime_r(&t, &tm));
    snprintf(cn, sizeof cn, "shoal mesh CA %s-%02x%02x%02x%02x", day, tag[0], tag[1], tag[2],
             tag[3]);
    char *cert = NULL, *key = NULL;
    int rc =
        sl_tls_pki_make_ca(cn, now - 300, now + (int64_t)CLI_CERTS_CA_DAYS * 86400, &cert, &key);
    if (rc != 0) {
        say("cannot make a CA: %s", sl_strerror(rc));
        return rc;
    }
    char p[PATH_MAX];
    path_of(p, sizeof p, dir, "ca.key");
    rc = write_file(p, key, strlen(key), 0600);
    if (rc == 0) {
        path_of(p, sizeof p, dir, "ca.pem");
        rc = write_file(p, cert, strlen(cert), 0644);
    }
    if (rc != 0) say("cannot write %s", p);
    free(cert);
    free(key);
    return rc;
}

static int cmd_init(const char *dir)
{
    char p[PATH_MAX];
    path_of(p, sizeof p, dir, "ca.pem");
    if (exists(p)) {
        say("%s already holds a CA (shoal certs rotate makes a new one)", dir);
        return 1;
    }
    if (make_dirs(dir) != 0) {
        say("cannot create %s", dir);
        return 1;
    }
    if (make_ca(dir) != 0 || write_bundle(dir) != 0) return 1;
    printf("mesh CA created in %s (ca.pem, ca.key 0600, bundle.pem)\n", dir);
    return 0;
}

/* A leaf for `name` valid [nb, na], the key then the certificate written atomically. */
static int issue_window(const char *dir, const char *name, int64_t nb, int64_t na)
{
    char p[PATH_MAX];
    char probe[SL_TLS_SPIFFE_MAX + 1];
    if (sl_tls_spiffe_format(name, probe, sizeof probe) != 0) {
        say("'%s' is not a service name (1..%d of a-z, 0-9, '-')", name, SL_TLS_NAME_MAX);
        return 2;
    }
    path_of(p, sizeof p, dir, "ca.pem");
    char *ca = read_file(p, NULL);
    path_of(p, sizeof p, dir, "ca.key");
    char *ca_key = read_file(p, NULL);
    if (!ca || !ca_key) {
        free(ca);
        free(ca_key);
        say("no CA in %s: run shoal certs init first", dir);
        return 1;
    }
    char *cert = NULL, *key = NULL, *serial = NULL;
    int rc = sl_tls_pki_issue(ca, ca_key, name, nb, na, &cert, &key, &serial);
    free(ca);
    free(ca_key);
    if (rc != 0) {
        say("cannot issue for %s: %s", name, sl_strerror(rc));
        return 1;
    }
    char kp[PATH_MAX];
    snprintf(kp, sizeof kp, "%s/certs/%s.key", dir, name);
    snprintf(p, sizeof p, "%s/certs/%s.pem", dir, name);
    rc = write_file(kp, key, strlen(key), 0600);
    if (rc == 0) rc = write_file(p, cert, strlen(cert), 0644);
    free(cert);
    free(key);
    if (rc != 0) {
        free(serial);
        say("cannot write %s", p);
        return 1;
    }
    char until[32];
    time_t t = (time_t)na;
    struct tm tm;
    strftime(until, sizeof until, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    printf("%s: %s%s serial %s until %s\n", name, SL_TLS_SPIFFE_PREFIX, name, serial, until);
    free(serial);
    return 0;
}

static int issue(const char *dir, const char *name, int64_t hours, int64_t backdate)
{
    int64_t nb, na;
    if (cli_certs_window((int64_t)time(NULL), hours, backdate, &nb, &na) != 0) {
        say("--hours must be 1..%d and --backdate 0..%d", CLI_CERTS_HOURS_MAX, CLI_CERTS_HOURS_MAX);
        return 2;
    }
    return issue_window(dir, name, nb, na);
}

int cli_certs_issue(const char *dir, const char *name, int64_t seconds)
{
    if (seconds < CLI_CERTS_LIFETIME_MIN_S || seconds > (int64_t)CLI_CERTS_HOURS_MAX * 3600) {
        say("a leaf lives %d..%d seconds (not %lld)", CLI_CERTS_LIFETIME_MIN_S,
            CLI_CERTS_HOURS_MAX * 3600, (long long)seconds);
        return 1;
    }
    int64_t now = (int64_t)time(NULL);
    return issue_window(dir, name, now, now + seconds) == 0 ? 0 : 1;
}

static bool load_info(const char *path, sl_tls_cert_info *info)
{
    size_t len = 0;
    char *pem = read_file(path, &len);
    bool ok = pem && sl_tls_pki_inspect(pem, len, info) == 0;
    free(pem);
    return ok;
}

/* Calls `fn` for every certs/<name>.pem. */
static int each_leaf(const char *dir, int (*fn)(const char *dir, const char *name, void *data),
                     void *data)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/certs", dir);
    DIR *d = opendir(p);
    if (!d) return 0;
    int worst = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || n > SL_TLS_NAME_MAX + 4 || strcmp(e->d_name + n - 4, ".pem") != 0) continue;
        char name[SL_TLS_NAME_MAX + 1];
        memcpy(name, e->d_name, n - 4);
        name[n - 4] = '\0';
        int rc = fn(dir, name, data);
        if (rc > worst) worst = rc;
    }
    closedir(d);
    return worst;
}

typedef struct renew_ctx {
    int64_t hours;
    char ca_subject[256];
    int renewed;
} renew_ctx;

static int renew_one(const char *dir, const char *name, void *data)
{
    renew_ctx *r = data;
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/certs/%s.pem", dir, name);
    sl_tls_cert_info info;
    if (!load_info(p, &info)) {
        say("%s: unreadable, skipped", p);
        return 1;
    }
    bool current = strcmp(info.issuer, r->ca_subject) == 0;
    if (!cli_certs_should_renew((int64_t)time(NULL), info.not_before, info.not_after, current))
        return 0;
    int rc = issue(dir, name, r->hours, 0);
    if (rc == 0) r->renewed++;
    return rc;
}

static int cmd_renew(const char *dir, int64_t hours)
{
    char p[PATH_MAX];
    path_of(p, sizeof p, dir, "ca.pem");
    sl_tls_cert_info ca;
    if (!load_info(p, &ca)) {
        say("no CA in %s: run shoal certs init first", dir);
        return 1;
    }
    renew_ctx r = {.hours = hours};
    snprintf(r.ca_subject, sizeof r.ca_subject, "%s", ca.subject);
    int rc = each_leaf(dir, renew_one, &r);
    printf("%d certificate(s) renewed\n", r.renewed);
    return rc;
}

int cli_certs_leaf_state(const char *dir, const char *name, int64_t *not_before, int64_t *not_after,
                         bool *by_current_ca)
{
    char p[PATH_MAX];
    sl_tls_cert_info ca, leaf;
    path_of(p, sizeof p, dir, "ca.pem");
    if (!load_info(p, &ca)) return SL_EIO;
    if (snprintf(p, sizeof p, "%s/certs/%s.pem", dir, name) >= (int)sizeof p ||
        !load_info(p, &leaf))
        return SL_EIO;
    *not_before = leaf.not_before;
    *not_after = leaf.not_after;
    *by_current_ca = strcmp(leaf.issuer, ca.subject) == 0;
    return 0;
}

static int cmd_rotate(const char *dir, bool finish)
{
    char cur[PATH_MAX], prev[PATH_MAX], key[PATH_MAX];
    path_of(cur, sizeof cur, dir, "ca.pem");
    path_of(prev, sizeof prev, dir, "ca-prev.pem");
    path_of(key, sizeof key, dir, "ca.key");
    if (!exists(cur)) {
        say("no CA in %s: run shoal certs init first", dir);
        return 1;
    }
    if (finish) {
        if (!exists(prev)) {
            say("no rotation in progress");
            return 1;
        }
        if (unlink(prev) != 0 || write_bundle(dir) != 0) {
            say("cannot drop the previous CA");
            return 1;
        }
        printf("previous CA dropped: bundle.pem trusts only the current CA\n");
        return 0;
    }
    if (exists(prev)) {
        say("a rotation is in progress: shoal certs rotate --finish first");
        return 1;
    }
    if (rename(cur, prev) != 0) {
        say("cannot keep the previous CA");
        return 1;
    }
    if (make_ca(dir) != 0 || write_bundle(dir) != 0) {
        (void)rename(prev, cur);
        return 1;
    }
    printf("new CA made; bundle.pem trusts both until shoal certs rotate --finish\n"
           "run shoal certs renew to reissue every leaf with the new CA, then reload (SIGHUP)\n");
    return 0;
}

static int cmd_revoke(const char *dir, const char *name)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/certs/%s.pem", dir, name);
    sl_tls_cert_info info;
    if (strchr(name, '/') || !load_info(p, &info)) {
        say("no certificate for '%s' in %s/certs", name, dir);
        return 1;
    }
    path_of(p, sizeof p, dir, "revoked.txt");
    size_t len = 0;
    char *old = read_file(p, &len);
    if (old) {
        sl_tls_revoked set;
        size_t bad = 0;
        if (sl_tls_revoked_parse(old, len, &set, &bad) != 0) {
            say("%s: line %zu is not a hex serial", p, bad);
            free(old);
            return 1;
        }
        bool had = sl_tls_revoked_has(&set, info.serial);
        sl_tls_revoked_free(&set);
        if (had) {
            free(old);
            printf("%s (serial %s) was already revoked\n", name, info.serial);
            return 0;
        }
    }
    size_t n = len + strlen(name) + strlen(info.serial) + 8;
    char *all = malloc(n);
    if (!all) {
        free(old);
        return 1;
    }
    int w = snprintf(all, n, "%s%s%s # %s\n", old ? old : "",
                     (old && len && old[len - 1] != '\n') ? "\n" : "", info.serial, name);
    free(old);
    int rc = write_file(p, all, (size_t)w, 0644);
    free(all);
    if (rc != 0) {
        say("cannot write %s", p);
        return 1;
    }
    printf("%s (serial %s) revoked; reload the servers (SIGHUP) to apply\n", name, info.serial);
    return 0;
}

static void print_info(const char *file, const sl_tls_cert_info *i, const char *ca_subject,
                       const char *prev_subject, const sl_tls_revoked *rev)
{
    char until[32];
    time_t t = (time_t)i->not_after;
    struct tm tm;
    strftime(until, sizeof until, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    const char *ca = strcmp(i->issuer, ca_subject) == 0                        ? "current"
                     : prev_subject[0] && strcmp(i->issuer, prev_subject) == 0 ? "previous"
                                                                               : "unknown";
    const char *state = i->not_after <= (int64_t)time(NULL)  ? "expired"
                        : sl_tls_revoked_has(rev, i->serial) ? "revoked"
                                                             : "valid";
    printf("%-22s %-40s %-40s %s %-8s %s\n", file, i->subject, i->san[0] ? i->san : "-", until, ca,
           state);
}

typedef struct list_ctx {
    char ca[256], prev[256];
    sl_tls_revoked rev;
} list_ctx;

static int list_one(const char *dir, const char *name, void *data)
{
    list_ctx *l = data;
    char p[PATH_MAX], f[PATH_MAX];
    snprintf(p, sizeof p, "%s/certs/%s.pem", dir, name);
    snprintf(f, sizeof f, "certs/%s.pem", name);
    sl_tls_cert_info info;
    if (!load_info(p, &info)) {
        printf("%-22s unreadable\n", f);
        return 1;
    }
    print_info(f, &info, l->ca, l->prev, &l->rev);
    return 0;
}

static int cmd_list(const char *dir)
{
    list_ctx l;
    memset(&l, 0, sizeof l);
    char p[PATH_MAX];
    sl_tls_cert_info ca, prev;
    path_of(p, sizeof p, dir, "ca.pem");
    if (!load_info(p, &ca)) {
        say("no CA in %s: run shoal certs init first", dir);
        return 1;
    }
    snprintf(l.ca, sizeof l.ca, "%s", ca.subject);
    path_of(p, sizeof p, dir, "ca-prev.pem");
    bool has_prev = load_info(p, &prev);
    if (has_prev) snprintf(l.prev, sizeof l.prev, "%s", prev.subject);
    path_of(p, sizeof p, dir, "revoked.txt");
    size_t len = 0;
    char *txt = read_file(p, &len);
    size_t bad = 0;
    if (txt && sl_tls_revoked_parse(txt, len, &l.rev, &bad) != 0)
        say("%s: line %zu is not a hex serial", p, bad);
    free(txt);
    printf("%-22s %-40s %-40s %-20s %-8s %s\n", "FILE", "SUBJECT", "SAN", "EXPIRES", "CA", "STATE");
    print_info("ca.pem", &ca, l.ca, l.prev, &l.rev);
    if (has_prev) print_info("ca-prev.pem", &prev, l.ca, l.prev, &l.rev);
    int rc = each_leaf(dir, list_one, &l);
    sl_tls_revoked_free(&l.rev);
    return rc;
}

int cli_certs_main(int argc, char **argv)
{
    const char *dir = "data/mesh", *cmd = NULL, *name = NULL;
    int64_t hours = CLI_CERTS_HOURS_DEFAULT, backdate = 0;
    bool finish = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if ((strcmp(a, "--hours") == 0 || strcmp(a, "--backdate") == 0) && i + 1 < argc) {
            int64_t *dst = a[2] == 'h' ? &hours : &backdate;
            if (cli_certs_parse_hours(argv[++i], dst) != 0) {
                say("%s: not a number of hours (0..%d): '%s'", a, CLI_CERTS_HOURS_MAX, argv[i]);
                return 2;
            }
        } else if (strcmp(a, "--finish") == 0) {
            finish = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (a[0] == '-') {
            say("unknown option %s", a);
            usage(stderr);
            return 2;
        } else if (!cmd) {
            cmd = a;
        } else if (!name) {
            name = a;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!cmd) {
        usage(stderr);
        return 2;
    }
    if (strlen(dir) > PATH_MAX - 128) {
        say("--dir: path too long");
        return 2;
    }
    bool needs_name = strcmp(cmd, "issue") == 0 || strcmp(cmd, "revoke") == 0;
    if (needs_name != (name != NULL)) {
        usage(stderr);
        return 2;
    }
    if (strcmp(cmd, "init") == 0) return cmd_init(dir);
    if (strcmp(cmd, "issue") == 0) return issue(dir, name, hours, backdate);
    if (strcmp(cmd, "renew") == 0) return cmd_renew(dir, hours);
    if (strcmp(cmd, "rotate") == 0) return cmd_rotate(dir, finish);
    if (strcmp(cmd, "revoke") == 0) return cmd_revoke(dir, name);
    if (strcmp(cmd, "list") == 0) return cmd_list(dir);
    usage(stderr);
    return 2;
}
