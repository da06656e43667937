/*
 * shoal-proxy: the API gateway, or with --role sidecar a mesh sidecar (sidecar.h). Parses the
 * command line and runs the gateway (gateway.c); everything else lives in proxy_core so the tests
 * can link it.
 */
#include "gateway.h"
#include "gwconfig.h"

#include <shoal/config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static void usage(FILE *to)
{
    fprintf(to,
            "usage: shoal-proxy [--role gateway|sidecar] [--config FILE] [--port N] [--workers N]\n"
            "                   [--check]\n"
            "  Configuration: YAML (--config or SHOAL_CONFIG), then SHOAL_<SECTION>__<KEY>\n"
            "  environment overrides, then flags. --check validates and exits.\n"
            "  SIGHUP reloads the file; see docs/gateway.md.\n");
}

static int int_arg(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) return SL_EINVAL;
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    int workers = 0, port = -1, check = 0, sidecar = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            if (int_arg(argv[++i], 0, 65535, &port) != 0) {
                fprintf(stderr, "shoal-proxy: --port: must be an integer 0..65535\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            if (int_arg(argv[++i], 1, 256, &workers) != 0) {
                fprintf(stderr, "shoal-proxy: --workers: must be an integer 1..256\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--role") == 0 && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "sidecar") != 0 && strcmp(argv[i], "gateway") != 0) {
                fprintf(stderr, "shoal-proxy: --role: must be gateway or sidecar\n");
                return 2;
            }
            sidecar = strcmp(argv[i], "sidecar") == 0;
        } else if (strcmp(argv[i], "--check") == 0) {
            check = 1;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            i++;
        } else if (strncmp(argv[i], "--config=", 9) != 0) {
            fprintf(stderr, "shoal-proxy: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    const char *path = sl_config_path_from_args(argc, argv);
    if (check) {
        char err[PX_ERR_MAX] = "";
        px_config *cfg = NULL;
        if (px_config_load(path, environ, &cfg, err) != 0) {
            fprintf(stderr, "shoal-proxy: configuration: %s\n", err);
            return 2;
        }
        px_config_free(cfg);
        printf("configuration OK\n");
        return 0;
    }
    return px_gateway_run(path, environ, workers, port, sidecar);
}
