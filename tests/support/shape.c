/* The shop's hosting shapes for the end-to-end suites (shape.h). */
#include "shape.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

int th_mesh_on(void)
{
    const char *v = getenv("SHOAL_E2E_MESH");
    if (!v || !*v || strcmp(v, "0") == 0) return 0;
    if (strcmp(v, "1") == 0) return 1;
    fprintf(stderr, "SHOAL_E2E_MESH: must be 0 or 1 (not '%s')\n", v);
    abort();
}

/* 1 when 127.0.0.1:port can be bound now. */
static int bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

int th_mesh_ports(int n, char *lines, size_t cap)
{
    if (n < 1 || n > 8) abort();
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    for (int attempt = 0; attempt < 200; attempt++) {
        int base = 12000 + 512 * (rand() % 36); /* 12000..29920: below 32768 */
        int ok = 1;
        for (int p = base; ok && p < base + 512; p++)
            ok = bindable(p);
        if (!ok) continue;
        snprintf(lines, cap,
                 "mesh: true\nmesh_ports: {local_offset: %d, outbound_base: %d, admin_base: %d}\n"
                 "mesh_sidecars: {breaker_recovery_ms: 2000}\n",
                 TH_MESH_LOCAL_OFFSET, base + 200, base + 500);
        return base;
    }
    fprintf(stderr, "th_mesh_ports: no free range of 512 ports below 30000\n");
    abort();
}
