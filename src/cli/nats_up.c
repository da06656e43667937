/* `shoal up` in mesh mode, the NATS part (nats_mesh.h): certificates and nats.conf. */
#include "certs.h"
#include "nats_mesh.h"

#include <shoal/common.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_nats_mesh_on(const json_t *root)
{
    const json_t *m = json_object_get(root, "mesh");
    if (m == NULL) return 0;
    if (!json_is_boolean(m)) {
        fprintf(stderr, "shoal: mesh: must be true or false\n");
        return -1;
    }
    return json_is_true(m) ? 1 : 0;
}

/* Runs `shoal certs ARGS... --dir DIR`; returns its exit status. */
static int certs(const char *dir, const char *cmd, const char *name)
{
    char *argv[5];
    int argc = 0;
    argv[argc++] = (char *)cmd;
    if (name) argv[argc++] = (char *)name;
    argv[argc++] = "--dir";
    argv[argc++] = (char *)dir;
    argv[argc] = NULL;
    return cli_certs_main(argc, argv);
}

static int ensure_leaf(const char *dir, const char *name)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/certs/%s.pem", dir, name) >= (int)sizeof path)
        return SL_ELIMIT;
    if (access(path, R_OK) == 0) return 0;
    return certs(dir, "issue", name) == 0 ? 0 : SL_EIO;
}

int cli_nats_mesh_up(const char *data_dir, const char *bin_dir, int port,
                     const char *const *services, char *conf, size_t cap)
{
    char dir[PATH_MAX - 64], path[PATH_MAX], store[PATH_MAX], cert[PATH_MAX], key[PATH_MAX],
        ca[PATH_MAX], listen[32];
    if (snprintf(dir, sizeof dir, "%s/mesh", data_dir) >= (int)sizeof dir ||
        snprintf(store, sizeof store, "%s/nats", data_dir) >= (int)sizeof store ||
        snprintf(path, sizeof path, "%s/shoal-defs.json", bin_dir) >= (int)sizeof path) {
        fprintf(stderr, "shoal: mesh: data_dir or bin_dir too long\n");
        return SL_ELIMIT;
    }
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    if (access(ca, R_OK) != 0 && certs(dir, "init", NULL) != 0) return SL_EIO;
    if (ensure_leaf(dir, "nats") != 0) return SL_EIO;
    for (const char *const *s = services; s && *s; s++)
        if (ensure_leaf(dir, *s) != 0) return SL_EIO;
    /* Leaves in the last third of their life, expired, or of a previous CA: reissued now, so
     * a restart is what renews them (nothing reloads them while running yet). */
    if (certs(dir, "renew", NULL) != 0) return SL_EIO;

    json_error_t jerr;
    json_t *defs = json_load_file(path, 0, &jerr);
    if (defs == NULL) {
        fprintf(stderr, "shoal: mesh: cannot read %s (%s); build first\n", path, jerr.text);
        return SL_EIO;
    }
    snprintf(cert, sizeof cert, "%s/certs/nats.pem", dir);
    snprintf(key, sizeof key, "%s/certs/nats.key", dir);
    snprintf(ca, sizeof ca, "%s/bundle.pem", dir);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    cli_nats_mesh_opts o = {.listen = listen,
                            .store_dir = store,
                            .cert_file = cert,
                            .key_file = key,
                            .ca_file = ca,
                            .only = services};
    char *text = NULL, err[256] = {0};
    int rc = cli_nats_mesh_config(defs, &o, &text, err, sizeof err);
    json_decref(defs);
    if (rc != 0) {
        fprintf(stderr, "shoal: mesh: %s: %s\n", path, err);
        return rc;
    }
    char tmp[PATH_MAX + 8];
    if (snprintf(conf, cap, "%s/nats.conf", dir) >= (int)cap) {
        free(text);
        return SL_ELIMIT;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", conf);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    size_t len = strlen(text);
    int ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;
    if (fd >= 0 && close(fd) != 0) ok = 0;
    free(text);
    if (!ok || rename(tmp, conf) != 0) {
        fprintf(stderr, "shoal: mesh: cannot write %s: %s\n", conf, strerror(errno));
        unlink(tmp);
        return SL_EIO;
    }
    return 0;
}
