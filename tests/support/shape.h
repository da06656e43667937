/*
 * The shop's hosting shapes for the suites that start it with `shoal up`
 * (docs/architecture.md, "Hosting"), chosen by SHOAL_E2E_SHAPE:
 *   separate (default)  every service its own process
 *   monolith            all seven services in one shoal-shop process named "shop"
 *   mixed               order and payment their own processes, the other five in "shop"
 */
#ifndef SHOAL_TEST_SHAPE_H
#define SHOAL_TEST_SHAPE_H

#include <stdio.h>

typedef enum { TH_SHAPE_SEPARATE, TH_SHAPE_MONOLITH, TH_SHAPE_MIXED } th_shape;

/* The shape SHOAL_E2E_SHAPE names; aborts on an unknown name. */
th_shape th_shape_get(void);

const char *th_shape_name(th_shape s);

/* Writes the topology's `hosting:` block for `s` (nothing for separate) to f. */
void th_shape_write_hosting(FILE *f, th_shape s);

/* The process (as `shoal up` names it) that runs `service` in shape s. */
const char *th_shape_process_of(th_shape s, const char *service);

/* How many processes `shoal up` runs for the seven services in shape s. */
int th_shape_service_procs(th_shape s);

/*
 * Mesh mode (docs/mesh.md), chosen by SHOAL_E2E_MESH=1: the suite writes
 * `mesh: true` into its topology, so every service runs behind its sidecar
 * with mTLS and NATS with TLS and one user per service. Separate shape only
 * (`shoal up` refuses hosting groups in mesh mode). Aborts on a value other
 * than 0, 1 or empty.
 */
int th_mesh_on(void);

/* The offset of a service's own loopback port from its topology port in the suites' meshes
 * (their `mesh_ports.local_offset`). */
#define TH_MESH_LOCAL_OFFSET 100

/*
 * Picks, in mesh mode, the ports of a mesh of `n` processes (the topology's services and the
 * gateway): a base B below the kernel's ephemeral range (where th_free_port and every
 * outgoing connection take theirs, so they cannot collide) such that all of B..B+511 can be
 * bound now. The processes get B..B+n-1, their own ports B+100.., the sidecars' outbound
 * listeners B+200.. (32 per process) and admin listeners B+500... n <= 8. Writes the
 * topology's `mesh:` and `mesh_ports:` lines into `lines` (`cap` bytes), with the sidecars'
 * breakers recovering after 2 s as the suites' gateway clusters do, and returns B; aborts when
 * no range is free.
 */
int th_mesh_ports(int n, char *lines, size_t cap);

#endif
