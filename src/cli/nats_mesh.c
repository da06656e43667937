/*
 * The nats-server configuration of mesh mode (nats_mesh.h). Pure: JSON in,
 * text out. Each service's permissions follow what src/lib/bus/nats.c does
 * with its connection (docs/mesh.md lists and explains every subject):
 *
 * - publish its own contexts' events: `shop.<context>.>`;
 * - dead-letter what it consumes: `<topic>.dlq`;
 * - declare the streams it declares at start (its own contexts and those it
 *   consumes from): `$JS.API.STREAM.CREATE|UPDATE.<stream>`;
 * - for each durable consumer of each subscription (one per ordering
 *   partition, or one unordered): create it, read its info (bind, lag),
 *   pull from it, and ack/nak/term its messages;
 * - administer the dead letters of each topic it consumes (list them with a
 *   pull consumer of a fixed name, `<service>__dlq__<topic, dots as dashes>`,
 *   filtered on `<topic>.dlq`): create that consumer with that filter, read
 *   its info, pull from it and delete it;
 * - receive replies on its own inbox prefix `_INBOX.<service>.>` (the bus
 *   sets that prefix whenever it has credentials).
 *
 * Everything else is denied, including other services' inboxes and events.
 */
#include "nats_mesh.h"

#include <shoal/bus.h>
#include <shoal/common.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PARTITIONS 8

/* A service name: 1-63 of a-z 0-9 -, not starting with '-' (the certificate identity rule). */
static int name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63 || s[0] == '-') return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

/* Safe inside a double-quoted nats-server string, and a subject token set: no quotes,
 * backslashes, spaces, control bytes or wildcards. */
static int plain_ok(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '*' || c == '>' || c == '\'')
            return 0;
    }
    return 1;
}

/* A file path written into the configuration: printable, no quote or backslash. */
static int path_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 4096) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < ' ' || c == 0x7f || c == '"' || c == '\\') return 0;
    }
    return 1;
}

/* The bus group of a subscription, as the service host names it (src/lib/service/events.c):
 * the definition's own group, or "<service>-<topic>" with dots as dashes, at most
 * SL_BUS_GROUP_MAX bytes. shoal-defs writes the latter as "<service>.<topic>". */
static void bus_group(const char *def_group, char *out, size_t cap)
{
    snprintf(out, cap < SL_BUS_GROUP_MAX + 1 ? cap : SL_BUS_GROUP_MAX + 1, "%s", def_group);
    for (char *p = out; *p; p++)
        if (*p == '.') *p = '-';
}

/* The durable consumer name the NATS bus uses (src/lib/bus/bus.c, sl__bus_durable_name). */
static int durable_name(const char *group, const char *topic, int part, char *out, size_t cap)
{
    int n = part < 0 ? snprintf(out, cap, "%s__%s", group, topic)
                     : snprintf(out, cap, "%s__%s__p%d", group, topic, part);
    if (n < 0 || (size_t)n >= cap) return SL_ELIMIT;
    for (char *p = out; *p; p++)
        if (*p == '.') *p = '_';
    return 0;
}

/* A growing list of distinct lines. */
typedef struct lines {
    char **v;
    size_t n, cap;
    int oom;
} lines;

static void add(lines *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(lines *l, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) {
        l->oom = 1;
        return;
    }
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], buf) == 0) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        if (v == NULL) {
            l->oom = 1;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    if ((l->v[l->n] = strdup(buf)) == NULL)
        l->oom = 1;
    else
        l->n++;
}

static void lines_free(lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

/* "shop.<context>.x" → "SHOP_<CONTEXT>". */
static int context_stream(const char *ctx, char *out, size_t cap)
{
    char topic[96];
    if (!name_ok(ctx) || snprintf(topic, sizeof topic, "shop.%s.x", ctx) >= (int)sizeof topic)
        return SL_EPARSE;
    return sl_bus_stream_name(topic, out, cap) == 0 ? 0 : SL_EPARSE;
}

static int publish_lines(const json_t *svc, unsigned partitions, lines *l, char *err, size_t errlen)
{
    const char *name = json_string_value(json_object_get(svc, "name"));
    if (!name_ok(name)) {
        snprintf(err, errlen, "a service name is missing or not [a-z0-9-]{1,63}");
        return SL_EPARSE;
    }
    const json_t *pubs = json_object_get(svc, "publishes");
    const json_t *subs = json_object_get(svc, "subscriptions");
    if (!json_is_array(pubs) || !json_is_array(subs)) {
        snprintf(err, errlen, "service %s: publishes and subscriptions must be arrays", name);
        return SL_EPARSE;
    }
    size_t i;
    const json_t *v;
    char stream[80];
    json_array_foreach(pubs, i, v)
    {
        const char *ctx = json_string_value(v);
        if (context_stream(ctx, stream, sizeof stream) != 0) {
            snprintf(err, errlen, "service %s: publishes[%zu] is not a context name", name, i);
            return SL_EPARSE;
        }
        add(l, "shop.%s.>", ctx);
        add(l, "$JS.API.STREAM.CREATE.%s", stream);
        add(l, "$JS.API.STREAM.UPDATE.%s", stream);
    }
    json_array_foreach(subs, i, v)
    {
        const char *topic = json_string_value(json_object_get(v, "topic"));
        const char *g = json_string_value(json_object_get(v, "group"));
        char group[SL_BUS_GROUP_MAX + 1];
        if (topic == NULL || !sl_bus_topic_valid(topic) || !plain_ok(topic, SL_BUS_TOPIC_MAX) ||
            sl_bus_stream_name(topic, stream, sizeof stream) != 0) {
            snprintf(err, errlen, "service %s: subscriptions[%zu].topic is not a topic", name, i);
            return SL_EPARSE;
        }
        if (!plain_ok(g, 255)) {
            snprintf(err, errlen, "service %s: subscriptions[%zu].group is not a group", name, i);
            return SL_EPARSE;
        }
        bus_group(g, group, sizeof group);
        add(l, "%s.dlq", topic);
        /* The dead-letter scan's consumer (src/lib/bus/nats.c, dlq_consumer_name). */
        char dc[64 + SL_BUS_TOPIC_MAX + 16];
        snprintf(dc, sizeof dc, "%s__dlq__%s", name, topic);
        for (char *c = dc; *c; c++)
            if (*c == '.') *c = '-';
        add(l, "$JS.API.CONSUMER.CREATE.%s.%s.%s.dlq", stream, dc, topic);
        add(l, "$JS.API.CONSUMER.INFO.%s.%s", stream, dc);
        add(l, "$JS.API.CONSUMER.MSG.NEXT.%s.%s", stream, dc);
        add(l, "$JS.API.CONSUMER.DELETE.%s.%s", stream, dc);
        add(l, "$JS.API.STREAM.CREATE.%s", stream);
        add(l, "$JS.API.STREAM.UPDATE.%s", stream);
        for (int p = -1; p < (int)partitions; p++) {
            char d[SL_BUS_GROUP_MAX + SL_BUS_TOPIC_MAX + 16], filter[SL_BUS_TOPIC_MAX + 16];
            if (durable_name(group, topic, p, d, sizeof d) != 0) {
                snprintf(err, errlen, "service %s: subscriptions[%zu]: name too long", name, i);
                return SL_EPARSE;
            }
            if (p < 0)
                snprintf(filter, sizeof filter, "%s.p.*", topic);
            else
                snprintf(filter, sizeof filter, "%s.p.%d", topic, p);
            add(l, "$JS.API.CONSUMER.CREATE.%s.%s.%s", stream, d, filter);
            add(l, "$JS.API.CONSUMER.DURABLE.CREATE.%s.%s", stream, d);
            add(l, "$JS.API.CONSUMER.INFO.%s.%s", stream, d);
            add(l, "$JS.API.CONSUMER.MSG.NEXT.%s.%s", stream, d);
            add(l, "$JS.ACK.%s.%s.>", stream, d);
        }
    }
    if (l->oom) {
        snprintf(err, errlen, "service %s: out of memory or a subject too long", name);
        return SL_ENOMEM;
    }
    return 0;
}

int cli_nats_mesh_publish_allow(const json_t *svc, unsigned partitions, char **out, char *err,
                                size_t errlen)
{
    lines l = {0};
    *out = NULL;
    if (partitions == 0) partitions = DEFAULT_PARTITIONS;
    if (partitions > SL_BUS_PARTITIONS_MAX) {
        snprintf(err, errlen, "partitions: at most %d", SL_BUS_PARTITIONS_MAX);
        return SL_EPARSE;
    }
    int rc = publish_lines(svc, partitions, &l, err, errlen);
    size_t len = 1;
    for (size_t i = 0; rc == 0 && i < l.n; i++)
        len += strlen(l.v[i]) + 1;
    char *s = rc == 0 ? malloc(len) : NULL;
    if (rc == 0 && s == NULL) rc = SL_ENOMEM;
    if (rc == 0) {
        char *p = s;
        for (size_t i = 0; i < l.n; i++)
            p += sprintf(p, "%s\n", l.v[i]);
        *p = '\0';
        *out = s;
    }
    lines_free(&l);
    return rc;
}

static int included(const char *name, const char *const *only)
{
    if (only == NULL) return 1;
    for (; *only; only++)
        if (strcmp(*only, name) == 0) return 1;
    return 0;
}

int cli_nats_mesh_config(const json_t *defs, const cli_nats_mesh_opts *o, char **out, char *err,
                         size_t errlen)
{
    *out = NULL;
    const json_t *svcs = json_object_get(defs, "services");
    if (!json_is_array(svcs)) {
        snprintf(err, errlen, "services: missing or not an array");
        return SL_EPARSE;
    }
    if (!plain_ok(o->listen, 255) || !path_ok(o->store_dir) || !path_ok(o->cert_file) ||
        !path_ok(o->key_file) || !path_ok(o->ca_file)) {
        snprintf(err, errlen, "listen address or a file path is empty or holds a quote");
        return SL_EPARSE;
    }
    unsigned partitions = o->partitions ? o->partitions : DEFAULT_PARTITIONS;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL) return SL_ENOMEM;
    fprintf(f,
            "# nats-server configuration of mesh mode, written by `shoal up` from the service\n"
            "# definitions (bin/shoal-defs.json) at every start: edits are lost.\n"
            "listen: \"%s\"\n"
            "max_payload: 2MB\n"
            "jetstream {\n  store_dir: \"%s\"\n}\n"
            "tls {\n"
            "  cert_file: \"%s\"\n  key_file: \"%s\"\n  ca_file: \"%s\"\n"
            "  # a client must present a certificate of the mesh CA; its URI SAN is its user\n"
            "  verify_and_map: true\n"
            "  timeout: 2\n"
            "}\n"
            "authorization {\n  users = [\n",
            o->listen, o->store_dir, o->cert_file, o->key_file, o->ca_file);
    int rc = 0;
    size_t i;
    const json_t *svc;
    json_array_foreach(svcs, i, svc)
    {
        const char *name = json_string_value(json_object_get(svc, "name"));
        if (name_ok(name) && !included(name, o->only)) continue;
        char *allow = NULL;
        rc = cli_nats_mesh_publish_allow(svc, partitions, &allow, err, errlen);
        if (rc != 0) break;
        fprintf(f,
                "    {\n      user: \"%s%s\"\n      permissions: {\n"
                "        publish: { allow: [\n",
                CLI_NATS_MESH_ID_PREFIX, name);
        for (char *save = NULL, *t = strtok_r(allow, "\n", &save); t;
             t = strtok_r(NULL, "\n", &save))
            fprintf(f, "          \"%s\"\n", t);
        fprintf(f,
                "        ] }\n"
                "        subscribe: { allow: [\"_INBOX.%s.>\"] }\n"
                "      }\n    }\n",
                name);
        free(allow);
    }
    fprintf(f, "  ]\n}\n");
    if (fclose(f) != 0 && rc == 0) rc = SL_ENOMEM;
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    return 0;
}
