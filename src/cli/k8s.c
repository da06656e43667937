/*
 * `shoal deploy k8s` (k8s.h): reads the topology (config/scale.yaml by default) and the
 * gateway's configuration file it names, renders the manifests (k8s_model.c) and writes them
 * under deploy/k8s, or with --check compares them with what is there and fails on any
 * difference (the ctest deploy.k8s_drift runs that, so the committed manifests always match
 * the topology). `shoal deploy keys` writes the identity key files that the manifests' Secrets
 * hold (keys.c, as `shoal up` does for its children).
 */
#include "k8s.h"
#include "keys.h"

#include <shoal/config.h>

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MAX_BYTES ((size_t)1 << 20)

static void usage(FILE *to)
{
    fprintf(to,
            "usage: shoal deploy k8s [--config FILE] [--out DIR] [--check]\n"
            "  Kubernetes manifests (Kustomize base and overlays local, scale) from the\n"
            "  topology; default --config config/scale.yaml, --out deploy/k8s.\n"
            "  --check: write nothing, exit 1 when DIR differs from what FILE gives.\n"
            "       shoal deploy keys [--config FILE] --out DIR\n"
            "  The identity master secret (DIR/identity.master) and each process's key\n"
            "  file (DIR/keys/<name>.keys, mode 0600) for the shoal-identity-<name> Secrets.\n");
}

/* The whole file at `path` into *out (owned, NUL-terminated), or NULL when it cannot be read. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(FILE_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, FILE_MAX_BYTES + 1, f) : 0;
    fclose(f);
    if (!buf || n > FILE_MAX_BYTES) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static int mkdirs_for(const char *file)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", file);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) return SL_EIO;
        *p = '/';
    }
    return 0;
}

static int write_file(const char *path, const char *text)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (mkdirs_for(path) != 0) return SL_EIO;
    FILE *f = fopen(tmp, "wb");
    if (!f) return SL_EIO;
    size_t n = strlen(text);
    int bad = fwrite(text, 1, n, f) != n;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return SL_EIO;
    }
    return 0;
}

/* Counts the .yaml files under dir/sub that `files` does not hold (printing each). */
static int extras(const char *out, const char *sub, const json_t *files)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/%s", out, sub);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        char rel[PATH_MAX];
        if (len < 5 || strcmp(e->d_name + len - 5, ".yaml") != 0) continue;
        snprintf(rel, sizeof rel, "%s/%s", sub, e->d_name);
        if (!json_object_get(files, rel)) {
            fprintf(stderr, "shoal deploy: %s/%s is not generated from the topology\n", out, rel);
            n++;
        }
    }
    closedir(d);
    return n;
}

/* Renders the manifests of the topology at `config`: 0 with *files, or 2 (the reason printed). */
static int render(const char *config, json_t **files)
{
    char err[SL_CONFIG_ERR_MAX];
    sl_config *topo = NULL, *gw = NULL;
    int rc = sl_config_load_file(config, &topo, err);
    if (rc != 0) {
        fprintf(stderr, "shoal deploy: %s\n", err);
        return 2;
    }
    /* The gateway's own file: services[i].config of the entry named gateway, as `shoal up`
     * passes it (relative to the working directory). */
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(sl_config_root(topo), "services"), i, it)
    {
        const char *name = json_string_value(json_object_get(it, "name"));
        const char *file = json_string_value(json_object_get(it, "config"));
        if (!name || strcmp(name, "gateway") != 0 || !file) continue;
        if (sl_config_load_file(file, &gw, err) != 0) {
            fprintf(stderr, "shoal deploy: %s\n", err);
            sl_config_free(topo);
            return 2;
        }
    }
    char why[512];
    rc = cli_k8s_render(sl_config_root(topo), gw ? sl_config_root(gw) : NULL, files, why,
                        sizeof why);
    sl_config_free(gw);
    sl_config_free(topo);
    if (rc != 0) {
        fprintf(stderr, "shoal deploy: %s: %s\n", config, why);
        return 2;
    }
    return 0;
}

static int k8s_main(int argc, char **argv)
{
    const char *config = "config/scale.yaml", *out = "deploy/k8s";
    int check = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--check") == 0)
            check = 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    json_t *files = NULL;
    int rc = render(config, &files);
    if (rc != 0) return rc;
    char src[PATH_MAX];
    snprintf(src, sizeof src, "%s", config);
    const char *base = basename(src);
    int drift = 0, failed = 0;
    const char *rel;
    json_t *text;
    json_object_foreach(files, rel, text)
    {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", out, rel);
        size_t len = strlen(json_string_value(text)) + 256;
        char *body = malloc(len);
        if (!body) abort();
        snprintf(body, len,
                 "# Generated by `shoal deploy k8s` from the topology %s: do not edit.\n%s", base,
                 json_string_value(text));
        char *have = slurp(path);
        int same = have && strcmp(have, body) == 0;
        free(have);
        if (!same && check) {
            fprintf(stderr, "shoal deploy: %s differs from what %s gives\n", path, config);
            drift++;
        } else if (!same && write_file(path, body) != 0) {
            fprintf(stderr, "shoal deploy: cannot write %s: %s\n", path, strerror(errno));
            failed = 1;
        }
        free(body);
    }
    if (check) {
        drift += extras(out, "base", files);
        drift += extras(out, "overlays/local", files);
        drift += extras(out, "overlays/scale", files);
    }
    size_t n = json_object_size(files);
    json_decref(files);
    if (failed) return 2;
    if (drift) {
        fprintf(
            stderr,
            "shoal deploy: %d file(s) out of date: run `shoal deploy k8s --config %s --out %s`\n",
            drift, config, out);
        return 1;
    }
    printf("shoal deploy: %zu files %s in %s\n", n, check ? "up to date" : "written", out);
    return 0;
}

static int keys_main(int argc, char **argv)
{
    const char *config = "config/scale.yaml", *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out = argv[++i];
        else {
            usage(stderr);
            return 2;
        }
    }
    if (!out) {
        usage(stderr);
        return 2;
    }
    char err[SL_CONFIG_ERR_MAX];
    sl_config *topo = NULL;
    if (mkdir(out, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "shoal deploy: cannot create %s: %s\n", out, strerror(errno));
        return 2;
    }
    if (sl_config_load_file(config, &topo, err) != 0 || cli_keys_distribute(topo, out, err) != 0) {
        fprintf(stderr, "shoal deploy: %s\n", err);
        sl_config_free(topo);
        return 2;
    }
    sl_config_free(topo);
    printf("shoal deploy: identity keys written in %s/keys (master: %s/identity.master)\n", out,
           out);
    return 0;
}

int cli_deploy_main(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "k8s") == 0) return k8s_main(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "keys") == 0) return keys_main(argc - 1, argv + 1);
    usage(argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) ? stdout
                                                                                      : stderr);
    return argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) ? 0 : 2;
}
