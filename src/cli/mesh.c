/* The mesh plan of `shoal up --mesh` (mesh.h): ports and sidecar configurations. Pure. */
#include "mesh.h"

#include <shoal/tls.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cli_mesh_plan(cli_mesh_svc *svcs, size_t n, char *err, size_t cap)
{
    return cli_mesh_plan_ports(svcs, n, &CLI_MESH_PORTS_DEFAULT, err, cap);
}

int cli_mesh_plan_ports(cli_mesh_svc *svcs, size_t n, const cli_mesh_ports *ports, char *err,
                        size_t cap)
{
    if (n > CLI_MESH_SVCS_MAX) {
        snprintf(err, cap, "mesh: at most %d services", CLI_MESH_SVCS_MAX);
        return -1;
    }
    const int off = ports->local_offset, ob = ports->outbound_base, ab = ports->admin_base;
    if (off < 1 || off > 55535) {
        snprintf(err, cap, "mesh_ports.local_offset: must be 1..55535 (not %d)", off);
        return -1;
    }
    if (ob < 1024 || ob > 65536 - (int)n * CLI_MESH_SVCS_MAX) {
        snprintf(err, cap, "mesh_ports.outbound_base: must be 1024..%d for %zu services (not %d)",
                 65536 - (int)n * CLI_MESH_SVCS_MAX, n, ob);
        return -1;
    }
    if (ab < 1024 || ab > 65536 - (int)n) {
        snprintf(err, cap, "mesh_ports.admin_base: must be 1024..%d for %zu services (not %d)",
                 65536 - (int)n, n, ab);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        cli_mesh_svc *s = &svcs[i];
        char id[SL_TLS_SPIFFE_MAX + 1];
        if (sl_tls_spiffe_format(s->name, id, sizeof id) != 0) {
            snprintf(err, cap, "mesh: '%s' is not a service identity (a-z, 0-9, '-')", s->name);
            return -1;
        }
        if (s->port + off > 65535) {
            snprintf(err, cap, "mesh: %s: port %d + %d passes 65535", s->name, s->port, off);
            return -1;
        }
        /* The gateway's edge stays on its port; every other service's sidecar takes it over. */
        s->inbound_port = s->gateway ? s->port + off : s->port;
        s->local_port = s->gateway ? s->port : s->port + off;
        s->admin_port = ab + (int)i;
        for (size_t j = 0; j < n; j++) {
            bool call = j != i && !svcs[j].gateway && (s->gateway || s->calls[j]);
            s->out_port[j] = call ? ob + (int)(i * CLI_MESH_SVCS_MAX + j) : 0;
        }
    }
    return 0;
}

typedef struct buf {
    char *p;
    size_t cap, len;
    int over;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...)
{
    if (b->over) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len)
        b->over = 1;
    else
        b->len += (size_t)n;
}

int cli_mesh_sidecar_yaml(const cli_mesh_svc *svcs, size_t n, size_t i, const char *mesh_dir,
                          char *out, size_t cap)
{
    const cli_mesh_svc *s = &svcs[i];
    buf b = {.p = out, .cap = cap};
    if (cap) out[0] = '\0';
    put(&b, "# The sidecar of %s, written by `shoal up --mesh` (docs/mesh.md).\n", s->name);
    put(&b, "service: {host: 127.0.0.1, port: %d, workers: 1}\n", s->inbound_port);
    put(&b, "admin: {host: 127.0.0.1, port: %d}\n", s->admin_port);
    put(&b, "clusters:\n");
    char breaker[64] = "";
    if (s->breaker_recovery_ms > 0)
        snprintf(breaker, sizeof breaker, ", breaker: {recovery_timeout_ms: %d}",
                 s->breaker_recovery_ms);
    put(&b, "  %s-local: {endpoints: [\"127.0.0.1:%d\"]%s}\n", s->name, s->local_port, breaker);
    for (size_t j = 0; j < n; j++)
        if (s->out_port[j])
            put(&b, "  %s: {endpoints: [\"127.0.0.1:%d\"]%s}\n", svcs[j].name, svcs[j].inbound_port,
                breaker);
    put(&b, "sidecar:\n");
    put(&b, "  service: %s\n  local: %s-local\n", s->name, s->name);
    put(&b, "  cert_file: %s/certs/%s.pem\n  key_file: %s/certs/%s.key\n", mesh_dir, s->name,
        mesh_dir, s->name);
    put(&b, "  ca_file: %s/bundle.pem\n  revoked_file: %s/revoked.txt\n", mesh_dir, mesh_dir);
    int outbound = 0;
    for (size_t j = 0; j < n; j++)
        if (s->out_port[j]) {
            if (!outbound++) put(&b, "  outbound:\n");
            put(&b, "    - {cluster: %s, port: %d}\n", svcs[j].name, s->out_port[j]);
        }
    int rules = 0;
    for (size_t j = 0; j < n && !s->gateway; j++) {
        if (j == i || !(svcs[j].gateway || svcs[j].calls[i])) continue;
        if (!rules++) put(&b, "  allow:\n");
        put(&b, "    - {caller: %s, routes: [%s]}\n", svcs[j].name,
            svcs[j].gateway ? "public, admin, ops" : "public");
    }
    if (!rules) put(&b, "  allow: []\n");
    return b.over ? -1 : (int)b.len;
}
