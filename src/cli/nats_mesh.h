/*
 * The NATS side of mesh mode (docs/mesh.md, "NATS in mesh mode"): the
 * nats-server configuration written from the service definitions
 * (bin/shoal-defs.json), with TLS and one user per service whose
 * permissions are exactly the subjects its bus uses.
 */
#ifndef SHOAL_CLI_NATS_MESH_H
#define SHOAL_CLI_NATS_MESH_H

#include <jansson.h>
#include <stddef.h>

/* The identity prefix of a service's certificate (and so of its NATS user). */
#define CLI_NATS_MESH_ID_PREFIX "spiffe://shoal.local/svc/"

typedef struct cli_nats_mesh_opts {
    const char *listen;      /* "127.0.0.1:4222" */
    const char *store_dir;   /* JetStream store directory */
    const char *cert_file;   /* the server's certificate and key (from the mesh CA) */
    const char *key_file;    /*  */
    const char *ca_file;     /* the bundle clients' certificates must chain to */
    unsigned partitions;     /* the bus's ordering partitions: 0 → 8 */
    const char *const *only; /* NULL-terminated services to include; NULL → every one */
} cli_nats_mesh_opts;

/*
 * Writes the nats-server configuration for `defs` (the parsed
 * shoal-defs.json: {"services": [{name, publishes, subscriptions}]}) into
 * *out (returns owned, free()). Pure. Returns 0, or SL_EPARSE (a definition
 * missing a field, a name, topic, group or path with characters that cannot
 * be used) with a message naming it in err, or SL_ENOMEM.
 */
int cli_nats_mesh_config(const json_t *defs, const cli_nats_mesh_opts *o, char **out, char *err,
                         size_t errlen);

/*
 * The subjects service `svc` (one element of defs.services) may publish to,
 * one per line, into *out (returns owned). Pure; what the configuration's
 * publish allow list holds. Returns 0, SL_EPARSE or SL_ENOMEM.
 */
int cli_nats_mesh_publish_allow(const json_t *svc, unsigned partitions, char **out, char *err,
                                size_t errlen);

/* ---- `shoal up` in mesh mode (nats_up.c: files, not pure) ---- */

/* 1 when the topology (its root) says `mesh: true`, 0 when not; -1 (printed) when `mesh` is
 * there and not a boolean. */
int cli_nats_mesh_on(const json_t *topology_root);

/*
 * Prepares mesh mode's nats-server for `shoal up`: under <data_dir>/mesh
 * makes the CA and the certificates of `nats` and of each of `services`
 * (NULL-terminated) that are missing (as `shoal certs init|issue` would),
 * renews those due (`shoal certs renew`), and writes <data_dir>/mesh/nats.conf (0600) from
 * <bin_dir>/shoal-defs.json, listening on 127.0.0.1:`port`, with the
 * JetStream store in <data_dir>/nats. The path of the file goes to
 * conf (cap bytes). Returns 0, or an SL_E* code with the reason printed.
 */
int cli_nats_mesh_up(const char *data_dir, const char *bin_dir, int port,
                     const char *const *services, char *conf, size_t cap);

#endif
