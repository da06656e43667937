/*
 * The Kubernetes manifests of the shop as data (k8s.h: cli_k8s_render), pure: the topology of
 * config/scale.yaml and the gateway's configuration in, {path: YAML} out. What it makes:
 *
 *   base/            a Deployment, Service, ConfigMap (its SHOAL_* environment),
 *                    PodDisruptionBudget, HorizontalPodAutoscaler and NetworkPolicy per service
 *                    and for the gateway; a NATS JetStream cluster (StatefulSet of 3 with its
 *                    configuration); a demonstration PostgreSQL (StatefulSet, one database per
 *                    service created by an init script); the kustomization listing them.
 *                    The base's autoscalers keep each service at one instance (several are not
 *                    yet safe: docs/operations.md, "Scale-out") and let the gateway grow to four.
 *   overlays/local   one instance of everything, small volumes.
 *   overlays/scale   two instances of every Deployment, autoscaled up to six (eight gateways).
 *
 * The network policies allow exactly the edges of the dependency graph: the gateway to every
 * service, a service to the services of its `calls:`, every service to NATS and PostgreSQL,
 * the NATS nodes to each other, and DNS; nothing else reaches a pod but the public gateway port.
 * Secrets are referenced by name, never written here (docs/operations.md says how to make them).
 */
#include "k8s.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMAGE          "shoal:latest"
#define NATS_IMAGE     "nats:2.10.24-alpine"
#define POSTGRES_IMAGE "postgres:15.10-bookworm"
#define NATS_REPLICAS  3
#define APP_UID        10001
#define PG_UID         999 /* the postgres user of the official image */
#define SVC_MAX        32
#define NAME_MAX_LEN   32

/* Requests and limits per process. The requests are the measured footprint under the shop
 * mix (deploy/footprint.sh; docs/operations.md "Resources"): CPU rounded up from the cores
 * used at about 3,000 requests/s through the gateway, memory from the idle resident size; the
 * limits leave room for bursts (the user service's peak is its password hashing). */
typedef struct res {
    const char *name, *cpu_req, *mem_req, *cpu_lim, *mem_lim;
} res;

static const res resources[] = {
    {"user", "50m", "32Mi", "1", "256Mi"},          {"product", "250m", "32Mi", "1", "128Mi"},
    {"cart", "100m", "32Mi", "1", "128Mi"},         {"inventory", "100m", "32Mi", "1", "128Mi"},
    {"order", "250m", "32Mi", "1", "128Mi"},        {"payment", "100m", "32Mi", "1", "128Mi"},
    {"notification", "100m", "32Mi", "1", "128Mi"}, {"gateway", "150m", "32Mi", "1", "128Mi"},
    {"nats", "300m", "64Mi", "1", "512Mi"},         {"postgres", "250m", "256Mi", "2", "1Gi"},
    {NULL, "100m", "32Mi", "1", "128Mi"}, /* a service not measured yet */
};

typedef struct svc {
    const char *name;
    int port;
    int gateway;
    char db[64];   /* its database ("" for the gateway) */
    char user[64]; /* the database role */
    const json_t *item;
} svc;

typedef struct model {
    svc s[SVC_MAX];
    size_t n;
    const json_t *gateway_cfg;
    char *err;
    size_t errcap;
} model;

/* Appends v to a: the manifests are small, so running out of memory (or a malformed json_pack
 * format, a programming error) while building them ends the command, as xstrdup does. */
static void push(json_t *a, json_t *v)
{
    if (!a || !v || json_array_append_new(a, v) != 0) abort();
}

static const res *res_of(const char *name)
{
    size_t i = 0;
    while (resources[i].name && strcmp(resources[i].name, name) != 0)
        i++;
    return &resources[i];
}

static json_t *labels(const char *name)
{
    return json_pack("{s:s,s:s}", "app.kubernetes.io/name", name, "app.kubernetes.io/part-of",
                     "shoal");
}

static json_t *meta(const char *name)
{
    return json_pack("{s:s,s:o}", "name", name, "labels", labels(name));
}

static json_t *selector(const char *name)
{
    return json_pack("{s:{s:s}}", "matchLabels", "app.kubernetes.io/name", name);
}

static json_t *resources_of(const char *name)
{
    const res *r = res_of(name);
    return json_pack("{s:{s:s,s:s},s:{s:s,s:s}}", "requests", "cpu", r->cpu_req, "memory",
                     r->mem_req, "limits", "cpu", r->cpu_lim, "memory", r->mem_lim);
}

/* What every container gets: no privilege, nothing writable but its volumes. */
static json_t *container_security(void)
{
    return json_pack("{s:b,s:b,s:b,s:{s:[s]}}", "allowPrivilegeEscalation", 0,
                     "readOnlyRootFilesystem", 1, "runAsNonRoot", 1, "capabilities", "drop", "ALL");
}

static json_t *pod_security(int uid)
{
    return json_pack("{s:b,s:i,s:i,s:i,s:{s:s}}", "runAsNonRoot", 1, "runAsUser", uid, "runAsGroup",
                     uid, "fsGroup", uid, "seccompProfile", "type", "RuntimeDefault");
}

static json_t *http_probe(const char *path, int period, int failures)
{
    return json_pack("{s:{s:s,s:s},s:i,s:i,s:i}", "httpGet", "path", path, "port", "http",
                     "periodSeconds", period, "timeoutSeconds", 2, "failureThreshold", failures);
}

static json_t *port_rule(int port)
{
    return json_pack("{s:s,s:i}", "protocol", "TCP", "port", port);
}

static json_t *peer(const char *name)
{
    return json_pack("{s:o}", "podSelector", selector(name));
}

/* Egress to the cluster's DNS (every pod resolves its peers' Service names). */
static json_t *dns_egress(void)
{
    return json_pack("{s:[{s:{},s:{s:{s:s}}}],s:[{s:s,s:i},{s:s,s:i}]}", "to", "namespaceSelector",
                     "podSelector", "matchLabels", "k8s-app", "kube-dns", "ports", "protocol",
                     "UDP", "port", 53, "protocol", "TCP", "port", 53);
}

static json_t *policy(const char *name, json_t *ingress, json_t *egress)
{
    return json_pack("{s:s,s:s,s:o,s:{s:o,s:[s,s],s:o,s:o}}", "apiVersion", "networking.k8s.io/v1",
                     "kind", "NetworkPolicy", "metadata", meta(name), "spec", "podSelector",
                     selector(name), "policyTypes", "Ingress", "Egress", "ingress", ingress,
                     "egress", egress);
}

static int fail(const model *m, const char *fmt, ...) SL_PRINTF(2, 3);
static int fail(const model *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->err, m->errcap, fmt, ap);
    va_end(ap);
    return SL_ECONFIG;
}

static const svc *find(const model *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->s[i].name, name) == 0) return &m->s[i];
    return NULL;
}

/* Whether `caller` lists `callee` in its calls:. */
static int calls(const svc *caller, const char *callee)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(caller->item, "calls"), i, c)
    {
        if (json_is_string(c) && strcmp(json_string_value(c), callee) == 0) return 1;
    }
    return 0;
}

/* postgresql://user[:...]@host[:port]/database → user and database. */
static int parse_db(model *m, svc *s, const char *url)
{
    const char *p = NULL;
    if (strncmp(url, "postgresql://", 13) == 0)
        p = url + 13;
    else if (strncmp(url, "postgres://", 11) == 0)
        p = url + 11;
    if (!p)
        return fail(m, "services: %.40s: db_url must be a postgresql:// URL on Kubernetes",
                    s->name);
    const char *at = strchr(p, '@'), *slash = strchr(p, '/');
    if (!at || !slash || at > slash || !slash[1])
        return fail(m, "services: %.40s: db_url needs a user and a database (%.100s)", s->name,
                    url);
    size_t ulen = strcspn(p, ":@");
    size_t dlen = strcspn(slash + 1, "?");
    if (ulen == 0 || ulen >= sizeof s->user || dlen >= sizeof s->db)
        return fail(m, "services: %.40s: db_url user or database too long (%.100s)", s->name, url);
    for (size_t i = 0; i < dlen; i++) {
        char c = slash[1 + i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return fail(m, "services: %.40s: database names are [a-z0-9_] (%.100s)", s->name, url);
    }
    memcpy(s->user, p, ulen);
    s->user[ulen] = '\0';
    memcpy(s->db, slash + 1, dlen);
    s->db[dlen] = '\0';
    return 0;
}

static int read_model(model *m, const json_t *topo)
{
    json_t *svcs = json_object_get(topo, "services");
    if (!json_is_array(svcs) || json_array_size(svcs) == 0)
        return fail(m, "services: must be a non-empty list");
    if (json_array_size(svcs) > SVC_MAX) return fail(m, "services: more than 32");
    size_t i;
    json_t *item;
    json_array_foreach(svcs, i, item)
    {
        svc *s = &m->s[m->n++];
        s->item = item;
        s->name = json_string_value(json_object_get(item, "name"));
        json_t *port = json_object_get(item, "port");
        if (!s->name || !s->name[0] || strlen(s->name) >= NAME_MAX_LEN)
            return fail(m, "services: an entry without a name (or one too long)");
        for (const char *c = s->name; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
                return fail(m, "services: %.40s: names are [a-z0-9-] on Kubernetes", s->name);
        if (!json_is_integer(port) || json_integer_value(port) < 1 ||
            json_integer_value(port) > 65535)
            return fail(m, "services: %.40s: port must be 1..65535", s->name);
        s->port = (int)json_integer_value(port);
        s->gateway = strcmp(s->name, "gateway") == 0;
        if (find(m, s->name) != s) return fail(m, "services: %.40s is listed twice", s->name);
        const char *db = json_string_value(json_object_get(item, "db_url"));
        if (!s->gateway) {
            if (!db) return fail(m, "services: %.40s: db_url is needed on Kubernetes", s->name);
            int rc = parse_db(m, s, db);
            if (rc != 0) return rc;
        }
        size_t k;
        json_t *c;
        json_array_foreach(json_object_get(item, "calls"), k, c)
        {
            (void)k;
            if (!json_is_string(c)) return fail(m, "services: %.40s: calls: names only", s->name);
        }
    }
    for (size_t a = 0; a < m->n; a++) {
        size_t k;
        json_t *c;
        json_array_foreach(json_object_get(m->s[a].item, "calls"), k, c)
        {
            const svc *to = find(m, json_string_value(c));
            if (!to || to->gateway)
                return fail(m, "services: %.40s: calls: %.40s is not a service of the topology",
                            m->s[a].name, json_string_value(c));
        }
    }
    return 0;
}

/* ---- a service or the gateway ------------------------------------------------------------- */

static char *upper(const char *name, char *buf, size_t cap)
{
    size_t i = 0;
    for (; name[i] && i < cap - 1; i++)
        buf[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    buf[i] = '\0';
    return buf;
}

static int set_str(json_t *o, const char *k, const char *v)
{
    return json_object_set_new(o, k, json_string(v));
}

/* The SHOAL_* environment of a process: what `shoal up` gives it (src/cli/shoal.c), with
 * in-cluster addresses. */
static json_t *environment(const model *m, const svc *s)
{
    json_t *env = json_object();
    char v[512], k[96], up[NAME_MAX_LEN + 1];
    if (!env) return NULL;
    int bad = set_str(env, "SHOAL_SERVICE__HOST", "0.0.0.0");
    snprintf(v, sizeof v, "%d", s->port);
    bad |= set_str(env, "SHOAL_SERVICE__PORT", v);
    snprintf(v, sizeof v, "/etc/shoal/identity/%s.keys", s->name);
    bad |= set_str(env, "SHOAL_IDENTITY__KEY_FILE", v);
    if (!s->gateway) {
        snprintf(v, sizeof v, "postgresql://%s@postgres:5432/%s", s->user, s->db);
        bad |= set_str(env, "SHOAL_DB__URL", v);
        v[0] = '\0';
        for (int i = 0; i < NATS_REPLICAS; i++)
            snprintf(v + strlen(v), sizeof v - strlen(v), "%snats://nats-%d.nats:4222",
                     i ? "," : "", i);
        bad |= set_str(env, "SHOAL_BUS__URL", v);
        snprintf(k, sizeof k, "SHOAL_%s__DATA_DIR", upper(s->name, up, sizeof up));
        bad |= set_str(env, k, "/var/lib/shoal");
    }
    if (strcmp(s->name, "user") == 0)
        bad |= set_str(env, "SHOAL_USER__SIGNING_KEY_FILE", "/etc/shoal/signing/user-signing.pem");
    if (strcmp(s->name, "notification") == 0)
        bad |= set_str(env, "SHOAL_NOTIFICATION__MAILBOX_DIR", "/var/lib/shoal/mailboxes");
    for (size_t i = 0; i < m->n; i++)
        if (calls(s, m->s[i].name)) {
            snprintf(k, sizeof k, "SHOAL_UPSTREAMS__%s__URL", upper(m->s[i].name, up, sizeof up));
            snprintf(v, sizeof v, "http://%s:%d", m->s[i].name, m->s[i].port);
            bad |= set_str(env, k, v);
        }
    const char *key;
    json_t *val;
    json_object_foreach(json_object_get(s->item, "env"), key, val)
    {
        if (json_is_string(val))
            bad |= set_str(env, key, json_string_value(val));
        else if (json_is_integer(val))
            snprintf(v, sizeof v, "%lld", (long long)json_integer_value(val)),
                bad |= set_str(env, key, v);
        else if (json_is_boolean(val))
            bad |= set_str(env, key, json_is_true(val) ? "true" : "false");
    }
    if (bad) {
        json_decref(env);
        return NULL;
    }
    return env;
}

static json_t *secret_volume(const char *name, const char *secret)
{
    return json_pack("{s:s,s:{s:s,s:i}}", "name", name, "secret", "secretName", secret,
                     "defaultMode", 0400);
}

static json_t *deployment(const svc *s)
{
    char bin[80], cm[64], secret[80];
    snprintf(bin, sizeof bin, "/usr/local/bin/shoal-%s", s->gateway ? "proxy" : s->name);
    snprintf(cm, sizeof cm, "%s-env", s->name);
    snprintf(secret, sizeof secret, "shoal-identity-%s", s->name);
    json_t *command = s->gateway
                          ? json_pack("[s,s,s]", bin, "--config", "/etc/shoal/config/gateway.yaml")
                          : json_pack("[s]", bin);
    json_t *mounts = json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s,s:b}]", "name", "data", "mountPath",
                               "/var/lib/shoal", "name", "tmp", "mountPath", "/tmp", "name",
                               "identity", "mountPath", "/etc/shoal/identity", "readOnly", 1);
    json_t *volumes = json_pack("[{s:s,s:{}},{s:s,s:{}},o]", "name", "data", "emptyDir", "name",
                                "tmp", "emptyDir", secret_volume("identity", secret));
    json_t *env = json_array();
    if (!s->gateway)
        push(env, json_pack("{s:s,s:{s:{s:s,s:s}}}", "name", "PGPASSWORD", "valueFrom",
                            "secretKeyRef", "name", "shoal-postgres", "key", "password"));
    if (strcmp(s->name, "user") == 0) {
        push(mounts, json_pack("{s:s,s:s,s:b}", "name", "signing", "mountPath",
                               "/etc/shoal/signing", "readOnly", 1));
        push(volumes, secret_volume("signing", "shoal-user-signing"));
    }
    if (s->gateway) {
        push(mounts, json_pack("{s:s,s:s,s:b}", "name", "config", "mountPath", "/etc/shoal/config",
                               "readOnly", 1));
        push(volumes,
             json_pack("{s:s,s:{s:s}}", "name", "config", "configMap", "name", "gateway-config"));
    }
    json_t *c = json_pack(
        "{s:s,s:s,s:o,s:[{s:s,s:i,s:s}],s:[{s:{s:s}}],s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "name",
        s->name, "image", IMAGE, "command", command, "ports", "name", "http", "containerPort",
        s->port, "protocol", "TCP", "envFrom", "configMapRef", "name", cm, "env", env,
        "startupProbe", http_probe("/healthz", 2, 60), "readinessProbe",
        http_probe("/readyz", 5, 2), "livenessProbe", http_probe("/healthz", 10, 3), "resources",
        resources_of(s->name), "securityContext", container_security(), "volumeMounts", mounts);
    return json_pack("{s:s,s:s,s:o,s:{s:i,s:o,s:{s:{s:o},s:{s:b,s:i,s:o,s:[o],s:o}}}}",
                     "apiVersion", "apps/v1", "kind", "Deployment", "metadata", meta(s->name),
                     "spec", "replicas", 1, "selector", selector(s->name), "template", "metadata",
                     "labels", labels(s->name), "spec", "automountServiceAccountToken", 0,
                     "terminationGracePeriodSeconds", 30, "securityContext", pod_security(APP_UID),
                     "containers", c, "volumes", volumes);
}

static json_t *service_obj(const char *name, int port, const char *port_name, int headless)
{
    json_t *spec = json_pack("{s:o,s:[{s:s,s:i,s:s,s:s}]}", "selector",
                             json_pack("{s:s}", "app.kubernetes.io/name", name), "ports", "name",
                             port_name, "port", port, "targetPort", port_name, "protocol", "TCP");
    if (spec && headless) {
        json_object_set_new(spec, "clusterIP", json_string("None"));
        json_object_set_new(spec, "publishNotReadyAddresses", json_true());
    }
    return json_pack("{s:s,s:s,s:o,s:o}", "apiVersion", "v1", "kind", "Service", "metadata",
                     meta(name), "spec", spec);
}

static json_t *pdb(const char *name)
{
    return json_pack("{s:s,s:s,s:o,s:{s:i,s:o}}", "apiVersion", "policy/v1", "kind",
                     "PodDisruptionBudget", "metadata", meta(name), "spec", "maxUnavailable", 1,
                     "selector", selector(name));
}

static json_t *hpa(const char *name, int max)
{
    return json_pack("{s:s,s:s,s:o,s:{s:{s:s,s:s,s:s},s:i,s:i,s:[{s:s,s:{s:s,s:{s:s,s:i}}}]}}",
                     "apiVersion", "autoscaling/v2", "kind", "HorizontalPodAutoscaler", "metadata",
                     meta(name), "spec", "scaleTargetRef", "apiVersion", "apps/v1", "kind",
                     "Deployment", "name", name, "minReplicas", 1, "maxReplicas", max, "metrics",
                     "type", "Resource", "resource", "name", "cpu", "target", "type", "Utilization",
                     "averageUtilization", 70);
}

/* A StatefulSet's one claim, "data", of `size`: the whole list, since a patch replaces it. */
static json_t *claims(const char *size)
{
    return json_pack("[{s:{s:s},s:{s:[s],s:{s:{s:s}}}}]", "metadata", "name", "data", "spec",
                     "accessModes", "ReadWriteOnce", "resources", "requests", "storage", size);
}

/* A ConfigMap `name` of the process `app` (labelled as that app). */
static json_t *config_map(const char *name, const char *app, json_t *data)
{
    return json_pack("{s:s,s:s,s:{s:s,s:o},s:o}", "apiVersion", "v1", "kind", "ConfigMap",
                     "metadata", "name", name, "labels", labels(app), "data", data);
}

/* Who may reach `s`, and whom `s` may reach: the edges of the dependency graph. */
static json_t *service_policy(const model *m, const svc *s)
{
    json_t *in = json_array(), *out = json_array();
    if (s->gateway) {
        /* The public entry: any source, its port only. */
        push(in, json_pack("{s:[o]}", "ports", port_rule(s->port)));
    } else {
        json_t *from = json_array();
        for (size_t i = 0; i < m->n; i++)
            if (m->s[i].gateway || calls(&m->s[i], s->name)) push(from, peer(m->s[i].name));
        push(in, json_pack("{s:o,s:[o]}", "from", from, "ports", port_rule(s->port)));
    }
    for (size_t i = 0; i < m->n; i++)
        if (!m->s[i].gateway && (s->gateway || calls(s, m->s[i].name)))
            push(out, json_pack("{s:[o],s:[o]}", "to", peer(m->s[i].name), "ports",
                                port_rule(m->s[i].port)));
    if (!s->gateway) {
        push(out, json_pack("{s:[o],s:[o]}", "to", peer("nats"), "ports", port_rule(4222)));
        push(out, json_pack("{s:[o],s:[o]}", "to", peer("postgres"), "ports", port_rule(5432)));
    }
    push(out, dns_egress());
    return policy(s->name, in, out);
}

static int add_file(json_t *files, const char *path, json_t *docs)
{
    char *text = NULL;
    int rc = docs ? cli_k8s_yaml(docs, &text) : SL_ENOMEM;
    json_decref(docs);
    if (rc != 0) return rc;
    rc = json_object_set_new(files, path, json_string(text)) ? SL_ENOMEM : 0;
    free(text);
    return rc;
}

/* The gateway's configuration for the cluster: every cluster's endpoint is its Service. */
static json_t *gateway_config(const model *m)
{
    json_t *g = json_deep_copy(m->gateway_cfg);
    if (!g) return NULL;
    json_t *service = json_object_get(g, "service");
    if (json_is_object(service)) {
        json_object_set_new(service, "host", json_string("0.0.0.0"));
        json_object_del(service, "port"); /* SHOAL_SERVICE__PORT from the topology */
    }
    const char *name;
    json_t *cluster;
    json_object_foreach(json_object_get(g, "clusters"), name, cluster)
    {
        const svc *s = find(m, name);
        char ep[96];
        if (!s || !json_is_object(cluster)) continue;
        snprintf(ep, sizeof ep, "%s:%d", s->name, s->port);
        json_object_set_new(cluster, "endpoints", json_pack("[s]", ep));
    }
    char *text = NULL;
    json_t *docs = json_pack("[o]", g);
    int rc = docs ? cli_k8s_yaml(docs, &text) : SL_ENOMEM;
    json_decref(docs);
    if (rc != 0) return NULL;
    json_t *data = json_pack("{s:s}", "gateway.yaml", text);
    free(text);
    return data;
}

static int render_service(const model *m, const svc *s, json_t *files)
{
    char path[96], cm[64];
    snprintf(path, sizeof path, "base/%s.yaml", s->name);
    snprintf(cm, sizeof cm, "%s-env", s->name);
    json_t *env = config_map(cm, s->name, environment(m, s));
    json_t *deploy =
        json_pack("[o,o,o,o,o]", deployment(s), service_obj(s->name, s->port, "http", 0),
                  pdb(s->name), hpa(s->name, s->gateway ? 4 : 1), service_policy(m, s));
    /* json_pack releases its "o" arguments on failure too: a NULL anywhere fails the file. */
    json_t *docs = s->gateway ? json_pack("[o,o]", env,
                                          config_map("gateway-config", s->name, gateway_config(m)))
                              : json_pack("[o]", env);
    if (!deploy || (docs && json_array_extend(docs, deploy) != 0)) {
        json_decref(docs);
        docs = NULL;
    }
    json_decref(deploy);
    return add_file(files, path, docs);
}

/* ---- NATS --------------------------------------------------------------------------------- */

/* Each stream a service declares reserves its retention (the bus's 1 GiB) of max_file_store on
 * every node that holds a replica, and with 3 replicas on 3 nodes that is every node: the store
 * allows one stream per service plus 1 GiB for the partition leases and headroom. */
static json_t *nats_conf(const model *m)
{
    int services = 0;
    for (size_t i = 0; i < m->n; i++)
        services += !m->s[i].gateway;
    char routes[512] = "";
    for (int i = 0; i < NATS_REPLICAS; i++)
        snprintf(routes + strlen(routes), sizeof routes - strlen(routes),
                 "    nats-route://nats-%d.nats:6222\n", i);
    char conf[2048];
    snprintf(conf, sizeof conf,
             "# One node of the shop's JetStream cluster; SERVER_NAME is the pod's name.\n"
             "server_name: $SERVER_NAME\n"
             "port: 4222\n"
             "http_port: 8222\n"
             "lame_duck_duration: 30s\n"
             "jetstream {\n"
             "  store_dir: /data\n"
             "  max_memory_store: 64MB\n"
             "  max_file_store: %dGB\n"
             "}\n"
             "cluster {\n"
             "  name: shoal\n"
             "  port: 6222\n"
             "  routes: [\n%s  ]\n"
             "}\n",
             services + 1, routes);
    return json_pack("{s:s}", "nats.conf", conf);
}

static int render_nats(const model *m, json_t *files)
{
    json_t *ports =
        json_pack("[{s:s,s:i,s:s},{s:s,s:i,s:s},{s:s,s:i,s:s}]", "name", "client", "containerPort",
                  4222, "protocol", "TCP", "name", "cluster", "containerPort", 6222, "protocol",
                  "TCP", "name", "monitor", "containerPort", 8222, "protocol", "TCP");
    json_t *probe_ready = json_pack("{s:{s:s,s:s},s:i,s:i,s:i}", "httpGet", "path",
                                    "/healthz?js-enabled-only=true", "port", "monitor",
                                    "periodSeconds", 5, "timeoutSeconds", 2, "failureThreshold", 3);
    json_t *probe_live = json_pack("{s:{s:s,s:s},s:i,s:i,s:i}", "httpGet", "path",
                                   "/healthz?js-enabled-only=true", "port", "monitor",
                                   "periodSeconds", 10, "timeoutSeconds", 2, "failureThreshold", 3);
    json_t *probe_start = json_pack(
        "{s:{s:s,s:s},s:i,s:i,s:i}", "httpGet", "path", "/healthz?js-enabled-only=true", "port",
        "monitor", "periodSeconds", 2, "timeoutSeconds", 2, "failureThreshold", 60);
    json_t *c = json_pack("{s:s,s:s,s:[s,s,s],s:o,s:[{s:s,s:{s:{s:s}}}],s:o,s:o,s:o,s:o,s:o,s:[{s:"
                          "s,s:s},{s:s,s:s,s:b}]}",
                          "name", "nats", "image", NATS_IMAGE, "command", "nats-server", "--config",
                          "/etc/nats/nats.conf", "ports", ports, "env", "name", "SERVER_NAME",
                          "valueFrom", "fieldRef", "fieldPath", "metadata.name", "startupProbe",
                          probe_start, "readinessProbe", probe_ready, "livenessProbe", probe_live,
                          "resources", resources_of("nats"), "securityContext",
                          container_security(), "volumeMounts", "name", "data", "mountPath",
                          "/data", "name", "config", "mountPath", "/etc/nats", "readOnly", 1);
    json_t *sts = json_pack(
        "{s:s,s:s,s:o,s:{s:s,s:i,s:s,s:o,s:{s:{s:o},s:{s:b,s:i,s:o,s:[o],s:[{s:s,s:{s:s}}]}},"
        "s:o}}",
        "apiVersion", "apps/v1", "kind", "StatefulSet", "metadata", meta("nats"), "spec",
        "serviceName", "nats", "replicas", NATS_REPLICAS, "podManagementPolicy", "Parallel",
        "selector", selector("nats"), "template", "metadata", "labels", labels("nats"), "spec",
        "automountServiceAccountToken", 0, "terminationGracePeriodSeconds", 60, "securityContext",
        pod_security(APP_UID), "containers", c, "volumes", "name", "config", "configMap", "name",
        "nats-config", "volumeClaimTemplates", claims("10Gi"));
    json_t *headless = json_pack(
        "{s:s,s:s,s:o,s:{s:s,s:b,s:{s:s},s:[{s:s,s:i,s:s},{s:s,s:i,s:s},{s:s,s:i,s:s}]}}",
        "apiVersion", "v1", "kind", "Service", "metadata", meta("nats"), "spec", "clusterIP",
        "None", "publishNotReadyAddresses", 1, "selector", "app.kubernetes.io/name", "nats",
        "ports", "name", "client", "port", 4222, "targetPort", "client", "name", "cluster", "port",
        6222, "targetPort", "cluster", "name", "monitor", "port", 8222, "targetPort", "monitor");
    /* Clients: every service on 4222; routes: the other nodes on 6222. */
    json_t *from = json_array();
    for (size_t i = 0; i < m->n; i++)
        if (!m->s[i].gateway) push(from, peer(m->s[i].name));
    json_t *in = json_pack("[{s:o,s:[o]},{s:[o],s:[o]}]", "from", from, "ports", port_rule(4222),
                           "from", peer("nats"), "ports", port_rule(6222));
    json_t *out =
        json_pack("[{s:[o],s:[o]},o]", "to", peer("nats"), "ports", port_rule(6222), dns_egress());
    json_t *docs = json_pack("[o,o,o,o,o]", config_map("nats-config", "nats", nats_conf(m)),
                             headless, sts, pdb("nats"), policy("nats", in, out));
    return add_file(files, "base/nats.yaml", docs);
}

/* ---- PostgreSQL (demonstration) ----------------------------------------------------------- */

static int render_postgres(const model *m, json_t *files)
{
    char sql[4096] = "-- One database per service (docs/operations.md \"PostgreSQL\").\n";
    const char *owner = NULL;
    for (size_t i = 0; i < m->n; i++) {
        if (m->s[i].gateway) continue;
        if (owner && strcmp(owner, m->s[i].user) != 0) {
            snprintf(m->err, m->errcap,
                     "services: %.40s: every db_url names the same role on the demonstration "
                     "server (%.60s)",
                     m->s[i].name, owner);
            return SL_ECONFIG;
        }
        owner = m->s[i].user;
        snprintf(sql + strlen(sql), sizeof sql - strlen(sql), "CREATE DATABASE %s OWNER %s;\n",
                 m->s[i].db, m->s[i].user);
    }
    if (!owner) owner = "shoal";
    json_t *ready = json_pack("{s:{s:[s,s,s,s,s,s,s]},s:i,s:i,s:i}", "exec", "command",
                              "pg_isready", "-h", "127.0.0.1", "-U", owner, "-d", "postgres",
                              "periodSeconds", 5, "timeoutSeconds", 3, "failureThreshold", 3);
    json_t *live = json_deep_copy(ready);
    json_object_set_new(live, "periodSeconds", json_integer(10));
    json_t *start = json_deep_copy(ready);
    json_object_set_new(start, "periodSeconds", json_integer(2));
    json_object_set_new(start, "failureThreshold", json_integer(90));
    json_t *c = json_pack(
        "{s:s,s:s,s:[{s:s,s:i,s:s}],s:[{s:s,s:s},{s:s,s:s},{s:s,s:{s:{s:s,s:s}}}],s:o,s:o,s:o,s:o,"
        "s:o,s:[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s,s:b}]}",
        "name", "postgres", "image", POSTGRES_IMAGE, "ports", "name", "postgres", "containerPort",
        5432, "protocol", "TCP", "env", "name", "POSTGRES_USER", "value", owner, "name", "PGDATA",
        "value", "/var/lib/postgresql/data/pgdata", "name", "POSTGRES_PASSWORD", "valueFrom",
        "secretKeyRef", "name", "shoal-postgres", "key", "password", "startupProbe", start,
        "readinessProbe", ready, "livenessProbe", live, "resources", resources_of("postgres"),
        "securityContext", container_security(), "volumeMounts", "name", "data", "mountPath",
        "/var/lib/postgresql/data", "name", "run", "mountPath", "/var/run/postgresql", "name",
        "tmp", "mountPath", "/tmp", "name", "init", "mountPath", "/docker-entrypoint-initdb.d",
        "readOnly", 1);
    json_t *sts = json_pack(
        "{s:s,s:s,s:o,s:{s:s,s:i,s:o,s:{s:{s:o},s:{s:b,s:o,s:[o],s:[{s:s,s:{}},{s:s,s:{}},"
        "{s:s,s:{s:s}}]}},s:o}}",
        "apiVersion", "apps/v1", "kind", "StatefulSet", "metadata", meta("postgres"), "spec",
        "serviceName", "postgres", "replicas", 1, "selector", selector("postgres"), "template",
        "metadata", "labels", labels("postgres"), "spec", "automountServiceAccountToken", 0,
        "securityContext", pod_security(PG_UID), "containers", c, "volumes", "name", "run",
        "emptyDir", "name", "tmp", "emptyDir", "name", "init", "configMap", "name", "postgres-init",
        "volumeClaimTemplates", claims("5Gi"));
    json_t *from = json_array();
    for (size_t i = 0; i < m->n; i++)
        if (!m->s[i].gateway) push(from, peer(m->s[i].name));
    json_t *in = json_pack("[{s:o,s:[o]}]", "from", from, "ports", port_rule(5432));
    json_t *docs = json_pack(
        "[o,o,o,o]",
        config_map("postgres-init", "postgres", json_pack("{s:s}", "01-databases.sql", sql)),
        service_obj("postgres", 5432, "postgres", 0), sts, policy("postgres", in, json_array()));
    return add_file(files, "base/postgres.yaml", docs);
}

/* ---- kustomizations ----------------------------------------------------------------------- */

static json_t *kustomization(void)
{
    return json_pack("{s:s,s:s}", "apiVersion", "kustomize.config.k8s.io/v1beta1", "kind",
                     "Kustomization");
}

/* An inline strategic-merge patch: the object's kind and name with `spec`. */
static json_t *patch(const char *api, const char *kind, const char *name, json_t *spec)
{
    json_t *doc = json_pack("[{s:s,s:s,s:{s:s},s:o}]", "apiVersion", api, "kind", kind, "metadata",
                            "name", name, "spec", spec);
    char *text = NULL;
    int rc = doc ? cli_k8s_yaml(doc, &text) : SL_ENOMEM;
    json_decref(doc);
    if (rc != 0) return NULL;
    json_t *p = json_pack("{s:s}", "patch", text);
    free(text);
    return p;
}

static int render_kustomize(const model *m, json_t *files)
{
    json_t *base = kustomization();
    json_t *list = json_pack("[s,s]", "nats.yaml", "postgres.yaml");
    for (size_t i = 0; i < m->n; i++) {
        char f[64];
        snprintf(f, sizeof f, "%s.yaml", m->s[i].name);
        push(list, json_string(f));
    }
    json_object_set_new(base, "resources", list);
    int rc = add_file(files, "base/kustomization.yaml", json_pack("[o]", base));
    static const struct {
        const char *name;
        int replicas, min, max, gw_max;
        const char *nats_disk, *pg_disk;
    } shapes[] = {{"local", 1, 1, 1, 1, "10Gi", "2Gi"}, {"scale", 2, 2, 6, 8, "20Gi", "50Gi"}};
    for (size_t o = 0; rc == 0 && o < SL_ARRAY_LEN(shapes); o++) {
        json_t *k = kustomization(), *reps = json_array(), *patches = json_array();
        json_object_set_new(k, "namespace", json_string("shoal"));
        json_object_set_new(k, "resources", json_pack("[s]", "../../base"));
        for (size_t i = 0; i < m->n; i++) {
            const char *n = m->s[i].name;
            push(reps, json_pack("{s:s,s:i}", "name", n, "count", shapes[o].replicas));
            push(patches, patch("autoscaling/v2", "HorizontalPodAutoscaler", n,
                                json_pack("{s:i,s:i}", "minReplicas", shapes[o].min, "maxReplicas",
                                          m->s[i].gateway ? shapes[o].gw_max : shapes[o].max)));
        }
        push(patches,
             patch("apps/v1", "StatefulSet", "nats",
                   json_pack("{s:o}", "volumeClaimTemplates", claims(shapes[o].nats_disk))));
        push(patches, patch("apps/v1", "StatefulSet", "postgres",
                            json_pack("{s:o}", "volumeClaimTemplates", claims(shapes[o].pg_disk))));
        json_object_set_new(k, "replicas", reps);
        json_object_set_new(k, "patches", patches);
        char path[64];
        snprintf(path, sizeof path, "overlays/%s/kustomization.yaml", shapes[o].name);
        rc = add_file(files, path, json_pack("[o]", k));
    }
    return rc;
}

int cli_k8s_render(const json_t *topo, const json_t *gateway, json_t **files, char *err,
                   size_t errcap)
{
    SL_ASSERT(topo != NULL && files != NULL && err != NULL && errcap > 0);
    model *m = calloc(1, sizeof *m);
    if (!m) return SL_ENOMEM;
    m->err = err;
    m->errcap = errcap;
    m->gateway_cfg = gateway;
    err[0] = '\0';
    json_t *out = json_object();
    int rc = out ? read_model(m, topo) : SL_ENOMEM;
    for (size_t i = 0; rc == 0 && i < m->n; i++) {
        if (m->s[i].gateway && !gateway) {
            rc = fail(m, "services: gateway: config (its configuration file) is needed");
            break;
        }
        rc = render_service(m, &m->s[i], out);
    }
    if (rc == 0) rc = render_nats(m, out);
    if (rc == 0) rc = render_postgres(m, out);
    if (rc == 0) rc = render_kustomize(m, out);
    free(m);
    if (rc != 0) {
        json_decref(out);
        if (rc != SL_ECONFIG && !err[0]) snprintf(err, errcap, "out of memory");
        return rc;
    }
    *files = out;
    return 0;
}
