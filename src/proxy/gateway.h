/*
 * shoal-proxy's top layer (gateway.c): the process and its workers —
 * configuration load and reload, generations handed to the workers, the
 * admin listener — above the request pipeline (forward.h), the generations
 * (generation.h), the clusters (cluster.h) and the configuration
 * (gwconfig.h). Each of those headers declares only what the layer above it
 * uses; no lower layer includes a higher one's header
 * (scripts/check-cycles.sh checks that no file calls back up).
 */
#ifndef SHOAL_PROXY_GATEWAY_H
#define SHOAL_PROXY_GATEWAY_H

/*
 * Runs the gateway: loads `config_path` (NULL: defaults) with `envp`
 * overrides, binds, serves until SIGTERM/SIGINT, reloads on SIGHUP.
 * `workers` / `port` override the file when >= 1 / >= 0. `sidecar`: the
 * sidecar role (sidecar.h; the file must have a sidecar section, and one
 * worker runs). Returns the exit
 * status: 0 clean stop, 1 runtime failure, 2 configuration error.
 */
int px_gateway_run(const char *config_path, char *const *envp, int workers, int port, int sidecar);

#endif
