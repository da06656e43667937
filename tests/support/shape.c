/* The shop's hosting shapes for the end-to-end suites (shape.h). */
#include "shape.h"

#include <stdlib.h>
#include <string.h>

th_shape th_shape_get(void)
{
    const char *v = getenv("SHOAL_E2E_SHAPE");
    if (!v || !*v || strcmp(v, "separate") == 0) return TH_SHAPE_SEPARATE;
    if (strcmp(v, "monolith") == 0) return TH_SHAPE_MONOLITH;
    if (strcmp(v, "mixed") == 0) return TH_SHAPE_MIXED;
    fprintf(stderr, "SHOAL_E2E_SHAPE: must be separate, monolith or mixed (not '%s')\n", v);
    abort();
}

const char *th_shape_name(th_shape s)
{
    return s == TH_SHAPE_MONOLITH ? "monolith" : s == TH_SHAPE_MIXED ? "mixed" : "separate";
}

void th_shape_write_hosting(FILE *f, th_shape s)
{
    if (s == TH_SHAPE_MONOLITH)
        fputs("hosting:\n  - {name: shop, services: [user, product, cart, inventory, order, "
              "payment, notification]}\n",
              f);
    else if (s == TH_SHAPE_MIXED)
        fputs("hosting:\n  - {name: shop, services: [user, product, cart, inventory, "
              "notification]}\n",
              f);
}

const char *th_shape_process_of(th_shape s, const char *service)
{
    if (s == TH_SHAPE_MONOLITH) return "shop";
    if (s == TH_SHAPE_MIXED && strcmp(service, "order") != 0 && strcmp(service, "payment") != 0)
        return "shop";
    return service;
}

int th_shape_service_procs(th_shape s)
{
    return s == TH_SHAPE_MONOLITH ? 1 : s == TH_SHAPE_MIXED ? 3 : 7;
}
