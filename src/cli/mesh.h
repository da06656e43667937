/*
 * `shoal up --mesh` (docs/mesh.md): the plan of the mesh — each process's
 * ports and its sidecar's configuration, derived from the topology's
 * services and their `calls:` lists. Pure (mesh.c); shoal.c writes the files,
 * issues the certificates and starts the processes.
 *
 * Ports, for a service with public port P at position i of the topology
 * (the numbers are the defaults; the topology's `mesh_ports:` changes them):
 *   P           its sidecar's inbound listener (mTLS), what callers reach;
 *   P + 10000   the service itself, on 127.0.0.1 only (local_offset);
 *   20000 + 32i + j   its sidecar's outbound listener for service j (outbound_base);
 *   21000 + i   its sidecar's admin listener (/metrics, /healthz) (admin_base).
 * The gateway keeps its public port (plain HTTP: it is the edge); its own
 * sidecar (identity "gateway") has only outbound listeners that matter, one
 * per service, and refuses every inbound call (inbound port P + 10000).
 *
 * Policy: the gateway may call every service's public, admin and ops routes
 * (it authenticates users and checks their role itself); a service may call
 * the public routes of the services in its `calls:` list; nothing else.
 */
#ifndef SHOAL_CLI_MESH_H
#define SHOAL_CLI_MESH_H

#include <stdbool.h>
#include <stddef.h>

#define CLI_MESH_SVCS_MAX      32
#define CLI_MESH_INTERNAL_OFF  10000
#define CLI_MESH_OUTBOUND_BASE 20000
#define CLI_MESH_ADMIN_BASE    21000

typedef struct cli_mesh_svc {
    char name[64];
    int port; /* the topology's port */
    bool gateway;
    bool calls[CLI_MESH_SVCS_MAX]; /* calls[j]: this service calls service j */
    int breaker_recovery_ms;       /* its sidecar's clusters' breaker recovery; 0: the default */
    /* filled by cli_mesh_plan */
    int inbound_port, local_port, admin_port;
    int out_port[CLI_MESH_SVCS_MAX]; /* 0: no outbound listener to j */
} cli_mesh_svc;

/* The bases of the mesh's ports (above). */
typedef struct cli_mesh_ports {
    int local_offset;  /* 1..55535 */
    int outbound_base; /* 1024..; outbound_base + 32n - 1 <= 65535 */
    int admin_base;    /* 1024..; admin_base + n - 1 <= 65535 */
} cli_mesh_ports;

#define CLI_MESH_PORTS_DEFAULT                                                                     \
    ((cli_mesh_ports){CLI_MESH_INTERNAL_OFF, CLI_MESH_OUTBOUND_BASE, CLI_MESH_ADMIN_BASE})

/*
 * Fills the ports of the `n` services (the gateway calls every other one)
 * from the bases in `ports`. Returns 0, or -1 with a reason in `err` (`cap`
 * bytes) when n is too large, a name is not a service identity, a base is out
 * of its range, or a port would pass 65535.
 */
int cli_mesh_plan_ports(cli_mesh_svc *svcs, size_t n, const cli_mesh_ports *ports, char *err,
                        size_t cap);

/* cli_mesh_plan_ports with the default bases. */
int cli_mesh_plan(cli_mesh_svc *svcs, size_t n, char *err, size_t cap);

/*
 * Writes the sidecar configuration (YAML) of service `i` into `out` (`cap`
 * bytes), its certificate files under `mesh_dir`. Returns the length, or -1
 * when it does not fit.
 */
int cli_mesh_sidecar_yaml(const cli_mesh_svc *svcs, size_t n, size_t i, const char *mesh_dir,
                          char *out, size_t cap);

#endif
