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

#endif
