/*
 * `shoal deploy k8s` (k8s.c, docs/operations.md "Kubernetes"): the Kubernetes manifests of the
 * shop, generated from the topology that `shoal up --config config/scale.yaml` runs (services,
 * ports, databases, environment, `calls:`) and the gateway's own configuration file, so the
 * manifests and the topology cannot drift apart. The rendering is pure (cli_k8s_render, here)
 * and the YAML writer too (k8s_yaml.c); k8s.c reads the files and writes or compares the tree.
 */
#ifndef SHOAL_CLI_K8S_H
#define SHOAL_CLI_K8S_H

#include <shoal/common.h>

#include <jansson.h>
#include <stddef.h>

/*
 * Writes `docs` (borrowed: an array of non-empty objects) as YAML documents separated by
 * "---" lines. Returns 0 with *out (returns owned, NUL-terminated: free with free()) or
 * SL_ENOMEM (also for an empty or non-object document).
 */
int cli_k8s_yaml(const json_t *docs, char **out);

/*
 * Renders the manifests of the topology `topo` (borrowed: the root of config/scale.yaml) whose
 * gateway runs with the configuration `gateway` (borrowed: the root of its file, NULL when the
 * topology has no gateway). Every service needs a PostgreSQL db_url; `calls:` gives the
 * service-to-service edges. Returns 0 with *files (returns owned: {relative path: YAML text},
 * free with json_decref()), or SL_ECONFIG with err (errcap bytes) naming the field, or
 * SL_ENOMEM.
 */
int cli_k8s_render(const json_t *topo, const json_t *gateway, json_t **files, char *err,
                   size_t errcap);

/* `shoal deploy k8s [--config FILE] [--out DIR] [--check]`; returns the exit status. */
int cli_deploy_main(int argc, char **argv);

#endif
