/*
 * Gateway configuration loading and validation (gwconfig.h). Sections are
 * read with table-driven validation (sl_config_read, unknown keys rejected),
 * then cross-references (route → cluster/aggregate, part → cluster/target)
 * are resolved. The first error found is returned with its location.
 */
#include "gwconfig.h"

#include <shoal/auth.h>
#include <shoal/config.h>
#include <shoal/log.h>
#include <shoal/ratelimit.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct loader {
    sl_config *c;
    px_config *cfg;
    sl_json_errors errs;
    char *err;
    int failed;
} loader;

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* sub = a + b, truncated to SL_CONFIG_PATH_MAX (paths are only used in messages). */
static void join(char *sub, const char *a, const char *b)
{
    size_t la = strnlen(a, SL_CONFIG_PATH_MAX - 1), lb = strlen(b);
    if (la + lb > SL_CONFIG_PATH_MAX - 1) lb = SL_CONFIG_PATH_MAX - 1 - la;
    memmove(sub, a, la);
    memcpy(sub + la, b, lb);
    sub[la + lb] = '\0';
}

/* Records a located error unless one is already recorded. */
static void fail(loader *l, const char *path, const char *msg)
{
    if (l->failed) return;
    l->failed = 1;
    char where[256] = "";
    sl_config_locate(l->c, path, where, sizeof where);
    if (snprintf(l->err, PX_ERR_MAX, "%s: %s: %s", where, path, msg) >= PX_ERR_MAX)
        l->err[PX_ERR_MAX - 2] = '.'; /* cut; still one readable line */
}

/* Reads `n` fields at `path`; moves the first validation error into l->err. */
static int read_obj(loader *l, const char *path, const sl_json_field *f, size_t n)
{
    if (l->failed) return SL_ECONFIG;
    sl_json_errors_init(&l->errs);
    if (sl_config_read(l->c, path, f, n, SL_JSON_REJECT_UNKNOWN, &l->errs) == 0) return 0;
    l->failed = 1;
    snprintf(l->err, PX_ERR_MAX, "%s", l->errs.items[0].message);
    return SL_ECONFIG;
}

static json_t *node(loader *l, const char *path)
{
    /* sl_config has no public lookup by path: walk the tree here (paths are a.b or a[i]). */
    json_t *cur = sl_config_root(l->c);
    char buf[SL_CONFIG_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf; cur && *p;) {
        if (*p == '.') p++;
        if (*p == '[') {
            size_t i = strtoul(p + 1, &p, 10);
            if (*p == ']') p++;
            cur = json_is_array(cur) ? json_array_get(cur, i) : NULL;
            continue;
        }
        size_t len = strcspn(p, ".[");
        char save = p[len];
        p[len] = '\0';
        cur = json_is_object(cur) ? json_object_get(cur, p) : NULL;
        p[len] = save;
        p += len;
    }
    return cur;
}

/* ---- sections ---------------------------------------------------------------------------- */

static void read_service(loader *l)
{
    px_config *cfg = l->cfg;
    const char *host = "127.0.0.1";
    int64_t port = 8080, workers = 0, drain = 10000;
    const sl_json_field f[] = {
        {.name = "host", .kind = SL_JSON_STRING, .min = 1, .max = 63, .out = &host},
        {.name = "port", .kind = SL_JSON_INT, .min = 0, .max = 65535, .out = &port},
        {.name = "workers", .kind = SL_JSON_INT, .min = 0, .max = 256, .out = &workers},
        {.name = "drain_timeout_ms", .kind = SL_JSON_INT, .min = 0, .max = 600000, .out = &drain},
    };
    if (read_obj(l, "service", f, SL_ARRAY_LEN(f)) != 0) return;
    snprintf(cfg->host, sizeof cfg->host, "%s", host);
    cfg->port = (int)port;
    if (workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        workers = n > 0 ? (n > 64 ? 64 : n) : 1;
    }
    cfg->workers = (int)workers;
    cfg->drain_ms = (uint32_t)drain;
}

static void read_http(loader *l)
{
    sl_http_limits *d = &l->cfg->limits;
    sl_http_limits_default(d);
    int64_t hdr = d->header_timeout_ms, body = d->body_timeout_ms, idle = d->idle_timeout_ms,
            linger = d->linger_ms, maxconn = d->max_connections,
            maxhdr = (int64_t)d->max_header_bytes, bodymax = (int64_t)d->body_max_bytes;
    const sl_json_field f[] = {
        {.name = "header_timeout_ms", .kind = SL_JSON_INT, .min = 1, .max = 3600000, .out = &hdr},
        {.name = "body_timeout_ms", .kind = SL_JSON_INT, .min = 1, .max = 3600000, .out = &body},
        {.name = "idle_timeout_ms", .kind = SL_JSON_INT, .min = 1, .max = 3600000, .out = &idle},
        {.name = "linger_ms", .kind = SL_JSON_INT, .min = 0, .max = 60000, .out = &linger},
        {.name = "max_connections", .kind = SL_JSON_INT, .min = 1, .max = 1000000, .out = &maxconn},
        {.name = "max_header_bytes",
         .kind = SL_JSON_INT,
         .min = 1024,
         .max = 1 << 20,
         .out = &maxhdr},
        {.name = "body_max_bytes", .kind = SL_JSON_INT, .min = 0, .max = 1 << 30, .out = &bodymax},
    };
    if (read_obj(l, "http", f, SL_ARRAY_LEN(f)) != 0) return;
    d->header_timeout_ms = (uint32_t)hdr;
    d->body_timeout_ms = (uint32_t)body;
    d->idle_timeout_ms = (uint32_t)idle;
    d->linger_ms = (uint32_t)linger;
    d->max_connections = (uint32_t)maxconn;
    d->max_header_bytes = (size_t)maxhdr;
    d->body_max_bytes = (size_t)bodymax;
}

static void read_misc(loader *l)
{
    px_config *cfg = l->cfg;
    int64_t pending = 4096, timeout = 15000;
    const sl_json_field g[] = {
        {.name = "max_pending_requests",
         .kind = SL_JSON_INT,
         .min = 1,
         .max = 1000000,
         .out = &pending},
        {.name = "route_timeout_ms", .kind = SL_JSON_INT, .min = 1, .max = 600000, .out = &timeout},
    };
    if (read_obj(l, "gateway", g, SL_ARRAY_LEN(g)) != 0) return;
    cfg->max_pending = (uint32_t)pending;
    cfg->default_timeout_ms = (uint32_t)timeout;

    const char *ahost = "127.0.0.1";
    int64_t aport = 0;
    const sl_json_field a[] = {
        {.name = "host", .kind = SL_JSON_STRING, .min = 1, .max = 63, .out = &ahost},
        {.name = "port", .kind = SL_JSON_INT, .min = 0, .max = 65535, .out = &aport},
    };
    if (read_obj(l, "admin", a, SL_ARRAY_LEN(a)) != 0) return;
    snprintf(cfg->admin_host, sizeof cfg->admin_host, "%s", ahost);
    cfg->admin_port = (int)aport;

    const char *key_file = "data/identity.key", *id_name = "gateway";
    const sl_json_field id[] = {
        {.name = "key_file", .kind = SL_JSON_STRING, .min = 1, .max = 1024, .out = &key_file},
        {.name = "name", .kind = SL_JSON_STRING, .min = 1, .max = 31, .out = &id_name},
    };
    if (read_obj(l, "identity", id, SL_ARRAY_LEN(id)) != 0) return;
    if (!sl_identity_name_valid(id_name, strlen(id_name))) {
        fail(l, "identity.name", "must be 1..31 of a-z, 0-9, _ and -");
        return;
    }
    snprintf(cfg->identity_name, sizeof cfg->identity_name, "%s", id_name);
    char kerr[256] = "";
    cfg->have_identity_key = sl_identity_keyring_load(key_file, &cfg->identity_ring, kerr) == 0;
    if (!cfg->have_identity_key)
        snprintf(cfg->identity_note, sizeof cfg->identity_note, "%s", kerr);

    const char *level = "info";
    bool access = true;
    double ratio = 1.0;
    const sl_json_field lg[] = {
        {.name = "level",
         .kind = SL_JSON_STRING,
         .out = &level,
         .allowed = (const char *const[]){"debug", "info", "warn", "error", NULL}},
        {.name = "access_log", .kind = SL_JSON_BOOL, .out = &access},
    };
    const sl_json_field tr[] = {
        {.name = "sample_ratio", .kind = SL_JSON_NUMBER, .min = 0, .max = 1, .out = &ratio},
    };
    if (read_obj(l, "log", lg, SL_ARRAY_LEN(lg)) != 0) return;
    if (read_obj(l, "trace", tr, SL_ARRAY_LEN(tr)) != 0) return;
    sl_log_level lvl = SL_LOG_LEVEL_INFO;
    if (sl_log_level_parse(level, &lvl) != 0) lvl = SL_LOG_LEVEL_INFO; /* `allowed` checked it */
    cfg->log_level = (int)lvl;
    cfg->access_log = access;
    cfg->sample_ratio = ratio;
    sl_json_errors_init(&l->errs);
    if (sl_otlp_settings_read(l->c, ratio, &cfg->telemetry, &l->errs) != 0) {
        l->failed = 1;
        snprintf(l->err, PX_ERR_MAX, "%s",
                 l->errs.count ? l->errs.items[0].message : "telemetry: invalid");
        return;
    }
    cfg->sample_ratio = cfg->telemetry.sample_ratio;
}

static void read_auth(loader *l, const char **jwks_cluster)
{
    px_config *cfg = l->cfg;
    json_t *jwks = NULL, *revocation = NULL;
    const char *issuer = NULL, *audience = NULL;
    int64_t leeway = SL_JWT_DEFAULT_LEEWAY_S;
    const sl_json_field f[] = {
        {.name = "jwks", .kind = SL_JSON_OBJECT, .out = &jwks},
        {.name = "issuer", .kind = SL_JSON_STRING, .min = 1, .max = 256, .out = &issuer},
        {.name = "audience", .kind = SL_JSON_STRING, .min = 1, .max = 256, .out = &audience},
        {.name = "revocation", .kind = SL_JSON_OBJECT, .out = &revocation},
        {.name = "leeway_s",
         .kind = SL_JSON_INT,
         .min = 0,
         .max = SL_JWT_MAX_LEEWAY_S,
         .out = &leeway},
    };
    if (read_obj(l, "auth", f, SL_ARRAY_LEN(f)) != 0) return;
    cfg->issuer = dup_or_null(issuer);
    cfg->audience = dup_or_null(audience);
    cfg->leeway_s = leeway;
    const char *rpath = NULL;
    int64_t rpoll = 1000;
    const sl_json_field rv[] = {
        {.name = "path", .kind = SL_JSON_STRING, .min = 1, .max = 1000, .out = &rpath},
        {.name = "poll_ms", .kind = SL_JSON_INT, .min = 100, .max = 60000, .out = &rpoll},
    };
    if (revocation && read_obj(l, "auth.revocation", rv, SL_ARRAY_LEN(rv)) != 0) return;
    if (revocation && (!rpath || rpath[0] != '/'))
        fail(l, "auth.revocation.path", "is required and must start with /");
    cfg->revoke_path = dup_or_null(rpath);
    cfg->revoke_poll_ms = (uint32_t)rpoll;
    const char *path = "/.well-known/jwks.json";
    int64_t refresh = 300000, refetch = 5000, waiters = 1024;
    /* pin_kid is one key id or a list of them. */
    int pin_list = json_is_array(node(l, "auth.jwks.pin_kid"));
    json_t *pins = NULL;
    const char *pin = NULL;
    const sl_json_field j[] = {
        {.name = "pin_kid",
         .kind = pin_list ? SL_JSON_ARRAY : SL_JSON_STRING,
         .min = 1,
         .max = pin_list ? PX_JWKS_PINS_MAX : SL_AUTH_KID_MAX,
         .out = pin_list ? (void *)&pins : (void *)&pin},
        {.name = "cluster", .kind = SL_JSON_STRING, .min = 1, .max = 63, .out = jwks_cluster},
        {.name = "path", .kind = SL_JSON_STRING, .min = 1, .max = 1024, .out = &path},
        {.name = "refresh_ms", .kind = SL_JSON_INT, .min = 1000, .max = 86400000, .out = &refresh},
        {.name = "min_refetch_ms", .kind = SL_JSON_INT, .min = 0, .max = 3600000, .out = &refetch},
        {.name = "max_waiting", .kind = SL_JSON_INT, .min = 0, .max = 100000, .out = &waiters},
    };
    if (jwks && read_obj(l, "auth.jwks", j, SL_ARRAY_LEN(j)) != 0) return;
    if (path[0] != '/') fail(l, "auth.jwks.path", "must start with /");
    cfg->jwks_path = strdup(path);
    cfg->jwks_refresh_ms = (uint32_t)refresh;
    cfg->jwks_min_refetch_ms = (uint32_t)refetch;
    cfg->jwks_waiters_max = (uint32_t)waiters;
    if (pin) cfg->jwks_pins[cfg->njwks_pins++] = strdup(pin);
    size_t i;
    json_t *o;
    json_array_foreach(pins, i, o)
    {
        if (!json_is_string(o) || json_string_length(o) == 0 ||
            json_string_length(o) > SL_AUTH_KID_MAX) {
            fail(l, "auth.jwks.pin_kid",
                 "must be a key id or a list of key ids (1..64 characters)");
            return;
        }
        cfg->jwks_pins[cfg->njwks_pins++] = strdup(json_string_value(o));
    }
}

static void read_limits_cors(loader *l)
{
    px_config *cfg = l->cfg;
    json_t *pc = NULL;
    int64_t max_keys = 10000;
    const sl_json_field f[] = {
        {.name = "per_client", .kind = SL_JSON_OBJECT, .out = &pc},
        {.name = "max_keys",
         .kind = SL_JSON_INT,
         .min = 1,
         .max = SL_RATELIMIT_MAX_KEYS,
         .out = &max_keys},
    };
    if (read_obj(l, "rate_limit", f, SL_ARRAY_LEN(f)) != 0) return;
    cfg->rl_max_keys = (uint32_t)max_keys;
    int64_t rate = 0, burst = 0;
    const sl_json_field p[] = {
        {.name = "rate", .kind = SL_JSON_INT, .min = 0, .max = 1000000, .out = &rate},
        {.name = "burst", .kind = SL_JSON_INT, .min = 0, .max = 1000000, .out = &burst},
    };
    if (pc && read_obj(l, "rate_limit.per_client", p, SL_ARRAY_LEN(p)) != 0) return;
    cfg->client_rate = (uint32_t)rate;
    cfg->client_burst = (uint32_t)(burst ? burst : rate * 2);

    json_t *origins = NULL;
    const char *methods = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
    const char *headers = "Authorization, Content-Type, Idempotency-Key, X-Request-Id, traceparent";
    const char *expose = "x-request-id, traceparent, Retry-After, Location";
    int64_t max_age = 600;
    bool creds = false;
    const sl_json_field c[] = {
        {.name = "allow_origins",
         .kind = SL_JSON_ARRAY,
         .max = PX_CORS_ORIGINS_MAX,
         .out = &origins},
        {.name = "allow_methods", .kind = SL_JSON_STRING, .min = 1, .max = 512, .out = &methods},
        {.name = "allow_headers", .kind = SL_JSON_STRING, .min = 1, .max = 1024, .out = &headers},
        {.name = "expose_headers", .kind = SL_JSON_STRING, .min = 1, .max = 1024, .out = &expose},
        {.name = "max_age_s", .kind = SL_JSON_INT, .min = 0, .max = 86400, .out = &max_age},
        {.name = "allow_credentials", .kind = SL_JSON_BOOL, .out = &creds},
    };
    if (read_obj(l, "cors", c, SL_ARRAY_LEN(c)) != 0) return;
    size_t i;
    json_t *o;
    json_array_foreach(origins, i, o)
    {
        if (!json_is_string(o) || json_string_length(o) == 0 || json_string_length(o) > 256) {
            fail(l, "cors.allow_origins", "must be a list of origins (\"*\" allows any)");
            return;
        }
        cfg->cors_origins[cfg->ncors_origins++] = strdup(json_string_value(o));
    }
    cfg->cors_methods = strdup(methods);
    cfg->cors_headers = strdup(headers);
    cfg->cors_expose = strdup(expose);
    cfg->cors_max_age_s = (uint32_t)max_age;
    cfg->cors_credentials = creds;
}

/* ---- clusters ---------------------------------------------------------------------------- */

static int endpoint_ok(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1]) return 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    return *end == '\0' && port > 0 && port < 65536 && (size_t)(colon - s) <= SL_UPSTREAM_HOST_MAX;
}

int px_cluster_subset(const px_cluster_cfg *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->nsubsets; i++)
        if (strlen(c->subset_names[i]) == len && memcmp(c->subset_names[i], name, len) == 0)
            return (int)i;
    return -1;
}

/* `split: [{subset: v1, weight: 95}, {subset: v2, weight: 5}]` */
static int read_split(loader *l, const char *path, json_t *split, px_cluster_cfg *c)
{
    char sub[SL_CONFIG_PATH_MAX];
    uint64_t total = 0;
    for (size_t i = 0; i < json_array_size(split); i++) {
        char idx[48];
        snprintf(idx, sizeof idx, ".split[%zu]", i);
        join(sub, path, idx);
        const char *name = NULL;
        int64_t weight = -1;
        const sl_json_field f[] = {
            {.name = "subset",
             .kind = SL_JSON_STRING,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = PX_SUBSET_NAME_MAX,
             .out = &name},
            {.name = "weight",
             .kind = SL_JSON_INT,
             .flags = SL_JSON_REQUIRED,
             .min = 0,
             .max = PX_SUBSET_WEIGHT_MAX,
             .out = &weight},
        };
        if (read_obj(l, sub, f, SL_ARRAY_LEN(f)) != 0) return SL_ECONFIG;
        if (!px_subset_name_ok(name, strlen(name))) {
            fail(l, sub, "subset must be 1-15 of a-z, 0-9, '.', '_', '-'");
            return SL_ECONFIG;
        }
        if (px_cluster_subset(c, name, strlen(name)) >= 0) {
            fail(l, sub, "the same subset twice");
            return SL_ECONFIG;
        }
        snprintf(c->subset_names[c->nsubsets], sizeof c->subset_names[0], "%s", name);
        c->subset_weights[c->nsubsets++] = (uint32_t)weight;
        total += (uint64_t)weight;
    }
    if (total == 0) {
        join(sub, path, ".split");
        fail(l, sub, "the weights must not all be 0");
        return SL_ECONFIG;
    }
    return 0;
}

static void read_cluster(loader *l, const char *name, px_cluster_cfg *c)
{
    char path[SL_CONFIG_PATH_MAX], sub[SL_CONFIG_PATH_MAX];
    snprintf(path, sizeof path, "clusters.%s", name);
    c->name = strdup(name);
    sl_upstream_config *u = &c->up;
    sl_upstream_config_default(u);
    u->bulkhead.max_concurrent = 100;
    u->bulkhead.max_queue = 100;
    u->bulkhead.max_wait_ms = 100;
    json_t *eps = NULL, *retry = NULL, *budget = NULL, *breaker = NULL, *bulk = NULL, *hc = NULL,
           *out = NULL, *split = NULL;
    const char *lb = "round_robin", *host = NULL, *canary = NULL;
    bool sticky = false;
    int64_t timeout = u->timeout_ms, ct = u->connect_timeout_ms, maxc = u->max_connections,
            maxidle = u->max_idle, idle = u->idle_timeout_ms, pend = u->max_pending,
            resp = (int64_t)u->response_max_bytes;
    const sl_json_field f[] = {
        {.name = "endpoints",
         .kind = SL_JSON_ARRAY,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = SL_UPSTREAM_ENDPOINTS_MAX,
         .out = &eps},
        {.name = "lb",
         .kind = SL_JSON_STRING,
         .out = &lb,
         .allowed = (const char *const[]){"round_robin", "least_request", NULL}},
        {.name = "host_header", .kind = SL_JSON_STRING, .min = 1, .max = 255, .out = &host},
        {.name = "timeout_ms", .kind = SL_JSON_INT, .min = 1, .max = 600000, .out = &timeout},
        {.name = "connect_timeout_ms", .kind = SL_JSON_INT, .min = 1, .max = 60000, .out = &ct},
        {.name = "max_connections", .kind = SL_JSON_INT, .min = 1, .max = 100000, .out = &maxc},
        {.name = "max_idle", .kind = SL_JSON_INT, .min = 0, .max = 100000, .out = &maxidle},
        {.name = "idle_timeout_ms", .kind = SL_JSON_INT, .min = 1, .max = 3600000, .out = &idle},
        {.name = "max_pending", .kind = SL_JSON_INT, .min = 1, .max = 1000000, .out = &pend},
        {.name = "response_max_bytes", .kind = SL_JSON_INT, .min = 1, .max = 1 << 30, .out = &resp},
        {.name = "retry", .kind = SL_JSON_OBJECT, .out = &retry},
        {.name = "retry_budget", .kind = SL_JSON_OBJECT, .out = &budget},
        {.name = "breaker", .kind = SL_JSON_OBJECT, .out = &breaker},
        {.name = "bulkhead", .kind = SL_JSON_OBJECT, .out = &bulk},
        {.name = "health_check", .kind = SL_JSON_OBJECT, .out = &hc},
        {.name = "outlier", .kind = SL_JSON_OBJECT, .out = &out},
        {.name = "split", .kind = SL_JSON_ARRAY, .min = 1, .max = PX_SUBSETS_MAX, .out = &split},
        {.name = "canary", .kind = SL_JSON_STRING, .min = 1, .max = 63, .out = &canary},
        {.name = "sticky", .kind = SL_JSON_BOOL, .out = &sticky},
    };
    if (read_obj(l, path, f, SL_ARRAY_LEN(f)) != 0) return;
    c->canary = -1;
    c->sticky = sticky;
    if (split && read_split(l, path, split, c) != 0) return;
    if (canary) c->canary = px_cluster_subset(c, canary, strlen(canary));
    c->lb = strcmp(lb, "least_request") == 0 ? PX_LB_LEAST_REQUEST : PX_LB_ROUND_ROBIN;
    c->endpoints = calloc(json_array_size(eps), sizeof(char *));
    size_t i;
    json_t *e;
    json_array_foreach(eps, i, e)
    {
        char idx[48];
        snprintf(idx, sizeof idx, ".endpoints[%zu]", i);
        join(sub, path, idx);
        const char *ver = NULL, *es = json_is_string(e) ? json_string_value(e) : NULL;
        size_t alen = es ? px_subset_split_endpoint(es, &ver) : 0;
        char addr[SL_UPSTREAM_HOST_MAX + 16];
        if (!es || alen >= sizeof addr) {
            fail(l, sub, "must be \"host:port\" or \"host:port@version\"");
            return;
        }
        memcpy(addr, es, alen);
        addr[alen] = '\0';
        if (!endpoint_ok(addr) || (ver && !px_subset_name_ok(ver, strlen(ver)))) {
            fail(l, sub, "must be \"host:port\" or \"host:port@version\"");
            return;
        }
        int si = ver ? px_cluster_subset(c, ver, strlen(ver)) : -1;
        if (c->nsubsets && si < 0) {
            fail(l, sub,
                 ver ? "names a version that is not in split"
                     : "needs @version: the cluster has a split");
            return;
        }
        if (!c->nsubsets && ver) {
            fail(l, sub, "has a version but the cluster has no split");
            return;
        }
        size_t k = c->nendpoints;
        c->endpoints[c->nendpoints++] = strdup(addr);
        c->ep_subset[k] = si;
        if (si >= 0) {
            c->sub_eps[si][c->nsub_eps[si]] = c->endpoints[k];
            c->sub_idx[si][c->nsub_eps[si]++] = k;
        }
    }
    for (size_t s = 0; s < c->nsubsets; s++)
        if (!c->nsub_eps[s]) {
            join(sub, path, ".split");
            fail(l, sub, "a subset has no endpoint");
            return;
        }
    if (canary && c->canary < 0) {
        join(sub, path, ".canary");
        fail(l, sub, "names no subset of split");
        return;
    }
    u->name = c->name;
    u->endpoints = (const char *const *)c->endpoints;
    u->nendpoints = c->nendpoints;
    u->host_header = NULL;
    (void)host; /* kept for the dump; the client sends the endpoint's host:port when NULL */
    u->timeout_ms = timeout;
    u->connect_timeout_ms = (uint32_t)ct;
    u->max_connections = (uint32_t)maxc;
    u->max_idle = (uint32_t)maxidle;
    u->idle_timeout_ms = (uint32_t)idle;
    u->max_pending = (uint32_t)pend;
    u->response_max_bytes = (size_t)resp;

    int64_t mr = u->retry.max_retries, base = u->retry.base_ms, cap = u->retry.cap_ms,
            ptt = u->retry.per_try_timeout_ms, ram = u->retry.retry_after_max_ms;
    const sl_json_field r[] = {
        {.name = "max_retries",
         .kind = SL_JSON_INT,
         .min = 0,
         .max = SL_RETRY_LIMIT_RETRIES,
         .out = &mr},
        {.name = "base_ms", .kind = SL_JSON_INT, .min = 1, .max = 60000, .out = &base},
        {.name = "cap_ms", .kind = SL_JSON_INT, .min = 1, .max = 600000, .out = &cap},
        {.name = "per_try_timeout_ms", .kind = SL_JSON_INT, .min = 0, .max = 600000, .out = &ptt},
        {.name = "retry_after_max_ms", .kind = SL_JSON_INT, .min = 0, .max = 600000, .out = &ram},
    };
    join(sub, path, ".retry");
    if (retry && read_obj(l, sub, r, SL_ARRAY_LEN(r)) != 0) return;
    u->retry.max_retries = (uint32_t)mr;
    u->retry.base_ms = base;
    u->retry.cap_ms = cap;
    u->retry.per_try_timeout_ms = ptt;
    u->retry.retry_after_max_ms = ram;

    int64_t ratio = u->budget.ratio_pct, minps = u->budget.min_per_sec, tok = u->budget.max_tokens;
    const sl_json_field b[] = {
        {.name = "ratio_pct", .kind = SL_JSON_INT, .min = 0, .max = 100, .out = &ratio},
        {.name = "min_per_sec", .kind = SL_JSON_INT, .min = 0, .max = 100000, .out = &minps},
        {.name = "max_tokens", .kind = SL_JSON_INT, .min = 1, .max = 1000000, .out = &tok},
    };
    join(sub, path, ".retry_budget");
    if (budget && read_obj(l, sub, b, SL_ARRAY_LEN(b)) != 0) return;
    u->budget.ratio_pct = (uint32_t)ratio;
    u->budget.min_per_sec = (uint32_t)minps;
    u->budget.max_tokens = (uint32_t)tok;

    sl_breaker_config *bk = &u->breaker;
    int64_t ft = bk->failure_threshold, frp = bk->failure_rate_pct, ws = bk->window_size,
            mc = bk->minimum_calls, rt = bk->recovery_timeout_ms, ho = bk->half_open_max_calls;
    const sl_json_field br[] = {
        {.name = "failure_threshold", .kind = SL_JSON_INT, .min = 0, .max = 100000, .out = &ft},
        {.name = "failure_rate_pct", .kind = SL_JSON_INT, .min = 0, .max = 100, .out = &frp},
        {.name = "window_size",
         .kind = SL_JSON_INT,
         .min = 1,
         .max = SL_BREAKER_WINDOW_COUNT_MAX,
         .out = &ws},
        {.name = "minimum_calls",
         .kind = SL_JSON_INT,
         .min = 1,
         .max = SL_BREAKER_WINDOW_COUNT_MAX,
         .out = &mc},
        {.name = "recovery_timeout_ms", .kind = SL_JSON_INT, .min = 1, .max = 3600000, .out = &rt},
        {.name = "half_open_max_calls",
         .kind = SL_JSON_INT,
         .min = 1,
         .max = SL_BREAKER_HALF_OPEN_MAX,
         .out = &ho},
    };
    join(sub, path, ".breaker");
    if (breaker && read_obj(l, sub, br, SL_ARRAY_LEN(br)) != 0) return;
    bk->failure_threshold = (uint32_t)ft;
    bk->failure_rate_pct = (uint32_t)frp;
    bk->window_size = (uint32_t)ws;
    bk->minimum_calls = (uint32_t)mc;
    bk->recovery_timeout_ms = rt;
    bk->half_open_max_calls = (uint32_t)ho;
    if (bk->minimum_calls > bk->window_size)
        fail(l, sub, "minimum_calls must not exceed window_size");

    int64_t bmc = u->bulkhead.max_concurrent, bmq = u->bulkhead.max_queue,
            bmw = u->bulkhead.max_wait_ms;
    const sl_json_field bh[] = {
        {.name = "max_concurrent",
         .kind = SL_JSON_INT,
         .min = 1,
         .max = SL_BULKHEAD_MAX_CONCURRENT,
         .out = &bmc},
        {.name = "max_queue",
         .kind = SL_JSON_INT,
         .min = 0,
         .max = SL_BULKHEAD_MAX_QUEUE,
         .out = &bmq},
        {.name = "max_wait_ms", .kind = SL_JSON_INT, .min = 1, .max = 60000, .out = &bmw},
    };
    join(sub, path, ".bulkhead");
    if (bulk && read_obj(l, sub, bh, SL_ARRAY_LEN(bh)) != 0) return;
    u->bulkhead.max_concurrent = (uint32_t)bmc;
    u->bulkhead.max_queue = (uint32_t)bmq;
    u->bulkhead.max_wait_ms = bmw;

    const char *hpath = NULL;
    int64_t hi = 5000, hto = 1000, hu = 2, hh = 1;
    const sl_json_field h[] = {
        {.name = "path", .kind = SL_JSON_STRING, .min = 1, .max = 1024, .out = &hpath},
        {.name = "interval_ms", .kind = SL_JSON_INT, .min = 100, .max = 3600000, .out = &hi},
        {.name = "timeout_ms", .kind = SL_JSON_INT, .min = 10, .max = 60000, .out = &hto},
        {.name = "unhealthy_threshold", .kind = SL_JSON_INT, .min = 1, .max = 100, .out = &hu},
        {.name = "healthy_threshold", .kind = SL_JSON_INT, .min = 1, .max = 100, .out = &hh},
    };
    join(sub, path, ".health_check");
    if (hc && read_obj(l, sub, h, SL_ARRAY_LEN(h)) != 0) return;
    if (hc && (!hpath || hpath[0] != '/')) fail(l, sub, "path is required and must start with /");
    c->hc_path = dup_or_null(hpath);
    c->hc_interval_ms = (uint32_t)hi;
    c->hc_timeout_ms = (uint32_t)hto;
    c->hc_unhealthy = (uint32_t)hu;
    c->hc_healthy = (uint32_t)hh;

    int64_t o5 = 5, oc = 3, ob = 10000, op = 50;
    const sl_json_field ol[] = {
        {.name = "consecutive_5xx", .kind = SL_JSON_INT, .min = 0, .max = 10000, .out = &o5},
        {.name = "consecutive_connect_failures",
         .kind = SL_JSON_INT,
         .min = 0,
         .max = 10000,
         .out = &oc},
        {.name = "base_ejection_ms", .kind = SL_JSON_INT, .min = 1, .max = 3600000, .out = &ob},
        {.name = "max_ejection_pct", .kind = SL_JSON_INT, .min = 0, .max = 100, .out = &op},
    };
    join(sub, path, ".outlier");
    if (out && read_obj(l, sub, ol, SL_ARRAY_LEN(ol)) != 0) return;
    c->out_5xx = (uint32_t)o5;
    c->out_connect = (uint32_t)oc;
    c->out_base_ms = (uint32_t)ob;
    c->out_max_pct = (uint32_t)op;
}

static void read_clusters(loader *l)
{
    json_t *cl = node(l, "clusters");
    if (!cl) return;
    if (!json_is_object(cl)) {
        fail(l, "clusters", "must be a mapping of cluster name to cluster");
        return;
    }
    const char *name;
    json_t *v;
    json_object_foreach(cl, name, v)
    {
        if (l->failed) return;
        if (l->cfg->nclusters == PX_CLUSTERS_MAX) {
            fail(l, "clusters", "too many clusters");
            return;
        }
        read_cluster(l, name, &l->cfg->clusters[l->cfg->nclusters++]);
    }
}

/* ---- aggregates -------------------------------------------------------------------------- */

static void read_part(loader *l, const char *path, px_part_cfg *p, int enrich)
{
    const char *name = NULL, *cluster = NULL, *tpath = NULL, *select = NULL, *on_error = "fail";
    const char *target = NULL, *list = NULL, *id = NULL, *set = NULL, *result = NULL, *key = NULL;
    double share = enrich ? 0.4 : 0.6;
    int64_t batch = 100, batches = 8;
    const sl_json_field f[] = {
        {.name = "name",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = 63,
         .out = &name},
        {.name = "cluster",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = 63,
         .out = &cluster},
        {.name = "path",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = 1024,
         .out = &tpath},
        {.name = "select", .kind = SL_JSON_STRING, .min = 1, .max = 63, .out = &select},
        {.name = "share", .kind = SL_JSON_NUMBER, .out = &share},
        {.name = "on_error",
         .kind = SL_JSON_STRING,
         .out = &on_error,
         .allowed = (const char *const[]){"fail", "degrade", NULL}},
        {.name = "target",
         .kind = SL_JSON_STRING,
         .flags = enrich ? SL_JSON_REQUIRED : 0,
         .min = 1,
         .max = 63,
         .out = &target},
        {.name = "list",
         .kind = SL_JSON_STRING,
         .flags = enrich ? SL_JSON_REQUIRED : 0,
         .min = 1,
         .max = 63,
         .out = &list},
        {.name = "id",
         .kind = SL_JSON_STRING,
         .flags = enrich ? SL_JSON_REQUIRED : 0,
         .min = 1,
         .max = 63,
         .out = &id},
        {.name = "set",
         .kind = SL_JSON_STRING,
         .flags = enrich ? SL_JSON_REQUIRED : 0,
         .min = 1,
         .max = 63,
         .out = &set},
        {.name = "result",
         .kind = SL_JSON_STRING,
         .flags = enrich ? SL_JSON_REQUIRED : 0,
         .min = 1,
         .max = 63,
         .out = &result},
        {.name = "key",
         .kind = SL_JSON_STRING,
         .flags = enrich ? SL_JSON_REQUIRED : 0,
         .min = 1,
         .max = 63,
         .out = &key},
        {.name = "batch_max", .kind = SL_JSON_INT, .min = 1, .max = 1000, .out = &batch},
        {.name = "batches_max", .kind = SL_JSON_INT, .min = 1, .max = 64, .out = &batches},
    };
    if (read_obj(l, path, f, SL_ARRAY_LEN(f)) != 0) return;
    char sub[SL_CONFIG_PATH_MAX];
    if (!(share > 0 && share <= 1)) {
        join(sub, path, ".share");
        fail(l, sub, "must be in (0, 1]");
    }
    if (tpath[0] != '/') {
        join(sub, path, ".path");
        fail(l, sub, "must start with /");
    }
    if (enrich && !strstr(tpath, "{ids}")) {
        join(sub, path, ".path");
        fail(l, sub, "an enrichment path must contain {ids}");
    }
    p->name = strdup(name);
    p->cluster = px_config_cluster(l->cfg, cluster);
    if (p->cluster < 0) {
        join(sub, path, ".cluster");
        fail(l, sub, "names no cluster");
    }
    p->path = strdup(tpath);
    p->select = dup_or_null(select);
    p->share = share;
    p->on_error = strcmp(on_error, "degrade") == 0 ? PX_ON_ERROR_DEGRADE : PX_ON_ERROR_FAIL;
    p->target = dup_or_null(target);
    p->list = dup_or_null(list);
    p->id = dup_or_null(id);
    p->set = dup_or_null(set);
    p->result = dup_or_null(result);
    p->key = dup_or_null(key);
    p->batch_max = (uint32_t)batch;
    p->batches_max = (uint32_t)batches;
    p->target_idx = -1;
}

static void read_aggregates(loader *l)
{
    json_t *ag = node(l, "aggregates");
    if (!ag) return;
    if (!json_is_object(ag)) {
        fail(l, "aggregates", "must be a mapping of aggregate name to aggregate");
        return;
    }
    const char *name;
    json_t *v;
    json_object_foreach(ag, name, v)
    {
        if (l->failed) return;
        if (l->cfg->naggregates == PX_AGGREGATES_MAX) {
            fail(l, "aggregates", "too many aggregates");
            return;
        }
        px_aggregate_cfg *a = &l->cfg->aggregates[l->cfg->naggregates++];
        a->name = strdup(name);
        char path[SL_CONFIG_PATH_MAX];
        snprintf(path, sizeof path, "aggregates.%s", name);
        json_t *parts = NULL, *enrich = NULL;
        const sl_json_field f[] = {
            {.name = "parts",
             .kind = SL_JSON_ARRAY,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = PX_PARTS_MAX,
             .out = &parts},
            {.name = "enrich", .kind = SL_JSON_ARRAY, .max = PX_PARTS_MAX, .out = &enrich},
        };
        if (read_obj(l, path, f, SL_ARRAY_LEN(f)) != 0) return;
        size_t np = json_array_size(parts), ne = json_array_size(enrich);
        if (np + ne > PX_PARTS_MAX) {
            fail(l, path, "too many parts");
            return;
        }
        for (size_t i = 0; i < np + ne && !l->failed; i++) {
            char sub[SL_CONFIG_PATH_MAX];
            char idx[48];
            snprintf(idx, sizeof idx, ".%s[%zu]", i < np ? "parts" : "enrich", i < np ? i : i - np);
            join(sub, path, idx);
            px_part_cfg *p = &a->parts[a->nparts++];
            read_part(l, sub, p, i >= np);
            if (l->failed) return;
            for (size_t k = 0; k + 1 < a->nparts; k++)
                if (strcmp(a->parts[k].name, p->name) == 0) fail(l, sub, "duplicate part name");
            if (i >= np) {
                for (size_t k = 0; k < np; k++)
                    if (strcmp(a->parts[k].name, p->target) == 0) p->target_idx = (int)k;
                if (p->target_idx < 0) fail(l, sub, "target names no part of this aggregate");
            }
        }
    }
}

/* ---- audit (the join is audit.c's) ------------------------------------------------------ */

/* Returns 1 when `ref` is "<part>.<check>" with <part> a part of aggregate `a`. */
static int audit_ref_ok(const px_aggregate_cfg *a, const char *ref)
{
    const char *dot = strchr(ref, '.');
    if (!dot || dot == ref || !dot[1]) return 0;
    for (size_t i = 0; i < a->nparts; i++)
        if (!a->parts[i].target && strlen(a->parts[i].name) == (size_t)(dot - ref) &&
            memcmp(a->parts[i].name, ref, (size_t)(dot - ref)) == 0)
            return 1;
    return 0;
}

static void read_audit(loader *l)
{
    px_audit_cfg *au = &l->cfg->audit;
    au->aggregate = -1;
    if (!node(l, "audit")) return;
    const char *aggregate = NULL;
    json_t *cross = NULL;
    const sl_json_field f[] = {
        {.name = "aggregate",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = 63,
         .out = &aggregate},
        {.name = "cross", .kind = SL_JSON_ARRAY, .max = PX_AUDIT_CROSS_MAX, .out = &cross},
    };
    if (read_obj(l, "audit", f, SL_ARRAY_LEN(f)) != 0) return;
    for (size_t i = 0; i < l->cfg->naggregates; i++)
        if (strcmp(l->cfg->aggregates[i].name, aggregate) == 0) au->aggregate = (int)i;
    if (au->aggregate < 0) {
        fail(l, "audit.aggregate", "names no aggregate");
        return;
    }
    const px_aggregate_cfg *a = &l->cfg->aggregates[au->aggregate];
    for (size_t i = 0; i < a->nparts; i++)
        if (a->parts[i].on_error != PX_ON_ERROR_DEGRADE) {
            /* A service that does not answer is a failed check, never the whole audit's 5xx. */
            fail(l, "audit.aggregate",
                 "every part of the audited aggregate needs on_error: degrade");
            return;
        }
    for (size_t i = 0; i < json_array_size(cross) && !l->failed; i++) {
        char path[SL_CONFIG_PATH_MAX];
        snprintf(path, sizeof path, "audit.cross[%zu]", i);
        const char *name = NULL;
        json_t *equal = NULL;
        const sl_json_field cf[] = {
            {.name = "name",
             .kind = SL_JSON_STRING,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = 63,
             .out = &name},
            {.name = "equal",
             .kind = SL_JSON_ARRAY,
             .flags = SL_JSON_REQUIRED,
             .min = 2,
             .max = 2,
             .out = &equal},
        };
        if (read_obj(l, path, cf, SL_ARRAY_LEN(cf)) != 0) return;
        px_audit_cross *c = &au->cross[au->ncross++];
        c->name = strdup(name);
        for (size_t k = 0; k < 2; k++) {
            const char *ref = json_string_value(json_array_get(equal, k));
            char sub[SL_CONFIG_PATH_MAX], idx[32];
            snprintf(idx, sizeof idx, ".equal[%zu]", k);
            join(sub, path, idx);
            if (!ref || strlen(ref) > 127 || !audit_ref_ok(a, ref)) {
                fail(l, sub, "must be \"<part>.<check>\" naming a part of the audited aggregate");
                return;
            }
            c->equal[k] = strdup(ref);
        }
        if (!c->name || !c->equal[0] || !c->equal[1]) fail(l, path, "out of memory");
    }
}

/* ---- routes ------------------------------------------------------------------------------ */

static unsigned parse_methods(json_t *arr, int *bad)
{
    unsigned mask = 0;
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        sl_http_method meth = SL_HTTP_OTHER;
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            meth = sl_http_method_parse((sl_slice){s, strlen(s)});
        }
        if (meth == SL_HTTP_OTHER) *bad = 1;
        mask |= 1u << meth;
    }
    return mask;
}

static void read_route(loader *l, size_t idx, px_route *r)
{
    char path[SL_CONFIG_PATH_MAX], sub[SL_CONFIG_PATH_MAX];
    snprintf(path, sizeof path, "routes[%zu]", idx);
    const char *name = NULL, *rewrite = NULL, *cluster = NULL, *aggregate = NULL, *auth = "public";
    const char *owner = NULL, *handler = NULL;
    json_t *match = NULL, *rl = NULL;
    int64_t timeout = l->cfg->default_timeout_ms, body = (int64_t)l->cfg->limits.body_max_bytes;
    const sl_json_field f[] = {
        {.name = "name", .kind = SL_JSON_STRING, .min = 1, .max = 63, .out = &name},
        {.name = "match", .kind = SL_JSON_OBJECT, .flags = SL_JSON_REQUIRED, .out = &match},
        {.name = "rewrite", .kind = SL_JSON_STRING, .min = 1, .max = 1024, .out = &rewrite},
        {.name = "cluster", .kind = SL_JSON_STRING, .min = 1, .max = 63, .out = &cluster},
        {.name = "aggregate", .kind = SL_JSON_STRING, .min = 1, .max = 63, .out = &aggregate},
        {.name = "auth",
         .kind = SL_JSON_STRING,
         .out = &auth,
         .allowed = (const char *const[]){"public", "authenticated", "admin", NULL}},
        {.name = "owner_param", .kind = SL_JSON_STRING, .min = 1, .max = 63, .out = &owner},
        {.name = "timeout_ms", .kind = SL_JSON_INT, .min = 1, .max = 600000, .out = &timeout},
        {.name = "body_max_bytes", .kind = SL_JSON_INT, .min = 0, .max = 1 << 30, .out = &body},
        {.name = "rate_limit", .kind = SL_JSON_OBJECT, .out = &rl},
        {.name = "handler",
         .kind = SL_JSON_STRING,
         .out = &handler,
         .allowed = (const char *const[]){"admin_services", "admin_dlq", NULL}},
    };
    if (read_obj(l, path, f, SL_ARRAY_LEN(f)) != 0) return;
    const char *exact = NULL, *prefix = NULL, *tmpl = NULL;
    json_t *methods = NULL, *headers = NULL;
    const sl_json_field m[] = {
        {.name = "path", .kind = SL_JSON_STRING, .min = 1, .max = PX_PATH_MAX - 1, .out = &exact},
        {.name = "prefix",
         .kind = SL_JSON_STRING,
         .min = 1,
         .max = PX_PATH_MAX - 1,
         .out = &prefix},
        {.name = "template",
         .kind = SL_JSON_STRING,
         .min = 1,
         .max = PX_PATH_MAX - 1,
         .out = &tmpl},
        {.name = "methods", .kind = SL_JSON_ARRAY, .min = 1, .max = 8, .out = &methods},
        {.name = "headers", .kind = SL_JSON_OBJECT, .out = &headers},
    };
    join(sub, path, ".match");
    if (read_obj(l, sub, m, SL_ARRAY_LEN(m)) != 0) return;
    if (!!exact + !!prefix + !!tmpl != 1) {
        fail(l, sub, "needs exactly one of path, prefix, template");
        return;
    }
    r->kind = exact ? PX_MATCH_EXACT : prefix ? PX_MATCH_PREFIX : PX_MATCH_TEMPLATE;
    r->path = strdup(exact ? exact : prefix ? prefix : tmpl);
    char nm[64];
    snprintf(nm, sizeof nm, "route-%zu", idx);
    r->name = strdup(name ? name : nm);
    int bad = 0;
    r->methods = methods ? parse_methods(methods, &bad) : 0;
    if (bad) fail(l, sub, "methods: each must be one of GET HEAD POST PUT PATCH DELETE OPTIONS");
    const char *hn;
    json_t *hv;
    json_object_foreach(headers, hn, hv)
    {
        if (r->nheaders == PX_ROUTE_HEADERS_MAX || !(json_is_string(hv) || json_is_true(hv))) {
            fail(l, sub, "headers: at most 4, each a value or true (present)");
            return;
        }
        r->headers[r->nheaders].name = strdup(hn);
        r->headers[r->nheaders++].value = json_is_string(hv) ? strdup(json_string_value(hv)) : NULL;
    }
    if (px_route_compile(r) != 0) fail(l, sub, "invalid path or template");
    if (rewrite && rewrite[0] != '/') {
        join(sub, path, ".rewrite");
        fail(l, sub, "must start with /");
    }
    r->rewrite = dup_or_null(rewrite);
    r->auth = strcmp(auth, "admin") == 0           ? PX_AUTH_ADMIN
              : strcmp(auth, "authenticated") == 0 ? PX_AUTH_AUTHENTICATED
                                                   : PX_AUTH_PUBLIC;
    r->owner_param = dup_or_null(owner);
    if (owner && r->auth == PX_AUTH_PUBLIC)
        fail(l, path, "owner_param needs auth other than public");
    r->timeout_ms = (uint32_t)timeout;
    r->body_max_bytes = (size_t)body;
    r->cluster = r->aggregate = -1;
    if (!!cluster + !!aggregate + !!handler != 1) {
        fail(l, path, "needs exactly one of cluster, aggregate, handler");
        return;
    }
    if (handler) {
        r->handler = strcmp(handler, "admin_services") == 0 ? PX_HANDLER_ADMIN_SERVICES
                                                            : PX_HANDLER_ADMIN_DLQ;
        if (r->auth != PX_AUTH_ADMIN) fail(l, path, "a handler route needs auth: admin");
    }
    if (cluster && (r->cluster = px_config_cluster(l->cfg, cluster)) < 0) {
        join(sub, path, ".cluster");
        fail(l, sub, "names no cluster");
    }
    for (size_t i = 0; aggregate && i < l->cfg->naggregates; i++)
        if (strcmp(l->cfg->aggregates[i].name, aggregate) == 0) r->aggregate = (int)i;
    if (aggregate && r->aggregate < 0) {
        join(sub, path, ".aggregate");
        fail(l, sub, "names no aggregate");
    }
    int64_t rate = 0, burst = 0;
    const sl_json_field q[] = {
        {.name = "rate",
         .kind = SL_JSON_INT,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = 1000000,
         .out = &rate},
        {.name = "burst", .kind = SL_JSON_INT, .min = 1, .max = 1000000, .out = &burst},
    };
    join(sub, path, ".rate_limit");
    if (rl && read_obj(l, sub, q, SL_ARRAY_LEN(q)) != 0) return;
    r->rate = (uint32_t)rate;
    r->burst = (uint32_t)(burst ? burst : rate);
}

static void read_routes(loader *l)
{
    json_t *rs = node(l, "routes");
    if (!rs) return;
    if (!json_is_array(rs) || json_array_size(rs) > PX_ROUTES_MAX) {
        fail(l, "routes", "must be a list of at most 512 routes");
        return;
    }
    px_routes *t = &l->cfg->routes;
    t->cap = json_array_size(rs);
    t->items = calloc(t->cap ? t->cap : 1, sizeof(px_route));
    for (size_t i = 0; i < t->cap && !l->failed; i++)
        read_route(l, i, &t->items[t->n++]);
}

/* static: [{prefix: /, root: web/shop, max_age_s: 300}] (static.h) */
static void read_statics(loader *l)
{
    json_t *arr = node(l, "static");
    if (!arr || l->failed) return;
    if (!json_is_array(arr) || json_array_size(arr) > PX_STATIC_MAX) {
        fail(l, "static", "must be a list of at most 8 {prefix, root} entries");
        return;
    }
    for (size_t i = 0; i < json_array_size(arr) && !l->failed; i++) {
        char path[64];
        snprintf(path, sizeof path, "static[%zu]", i);
        const char *prefix = NULL, *root = NULL;
        int64_t max_age = 300;
        const sl_json_field f[] = {
            {.name = "prefix",
             .kind = SL_JSON_STRING,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = 128,
             .out = &prefix},
            {.name = "root",
             .kind = SL_JSON_STRING,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = 1024,
             .out = &root},
            {.name = "max_age_s", .kind = SL_JSON_INT, .min = 0, .max = 31536000, .out = &max_age},
        };
        if (read_obj(l, path, f, SL_ARRAY_LEN(f)) != 0) return;
        size_t pl = strlen(prefix);
        char back[PX_STATIC_PATH_MAX], probe[160];
        snprintf(probe, sizeof probe, "%sx", prefix);
        char sub[80];
        snprintf(sub, sizeof sub, "%s.prefix", path);
        if (prefix[0] != '/' || prefix[pl - 1] != '/' ||
            (pl > 1 && px_static_resolve((sl_slice){probe + 1, strlen(probe) - 1}, "", back,
                                         sizeof back) < 0)) {
            fail(l, sub, "must start and end with '/' and have plain segments (\"/\", \"/ops/\")");
            return;
        }
        if (strncmp(prefix, "/api/", 5) == 0) {
            fail(l, sub, "must not be under /api/ (API routes only)");
            return;
        }
        for (size_t k = 0; k < l->cfg->nstatics; k++)
            if (strcmp(l->cfg->statics[k].prefix, prefix) == 0) {
                fail(l, sub, "is used by another static entry");
                return;
            }
        px_static_site *st = &l->cfg->statics[l->cfg->nstatics++];
        st->prefix = strdup(prefix);
        st->root = strdup(root);
        st->max_age_s = (uint32_t)max_age;
    }
}

/* ---- sidecar ----------------------------------------------------------------------------- */

static void read_outbound(loader *l, json_t *list)
{
    px_sidecar_cfg *sc = &l->cfg->sidecar;
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o)
    {
        char path[SL_CONFIG_PATH_MAX];
        snprintf(path, sizeof path, "sidecar.outbound[%zu]", i);
        const char *cluster = NULL;
        int64_t port = 0;
        const sl_json_field f[] = {
            {.name = "cluster",
             .kind = SL_JSON_STRING,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = SL_TLS_NAME_MAX,
             .out = &cluster},
            {.name = "port", .kind = SL_JSON_INT, .min = 0, .max = 65535, .out = &port},
        };
        if (read_obj(l, path, f, SL_ARRAY_LEN(f)) != 0) return;
        px_outbound_cfg *ob = &sc->outbound[sc->noutbound];
        ob->cluster = px_config_cluster(l->cfg, cluster);
        ob->port = (int)port;
        char name[SL_TLS_SPIFFE_MAX + 1];
        if (ob->cluster < 0) {
            fail(l, path, "cluster names no cluster");
            return;
        }
        if (sl_tls_spiffe_format(cluster, name, sizeof name) != 0) {
            fail(l, path, "cluster must be a service name (a-z, 0-9, '-'): its identity");
            return;
        }
        for (size_t k = 0; k < sc->noutbound; k++)
            if (sc->outbound[k].cluster == ob->cluster || (port && sc->outbound[k].port == port)) {
                fail(l, path, "the same cluster or port twice");
                return;
            }
        sc->noutbound++;
    }
}

static void read_sidecar(loader *l)
{
    px_sidecar_cfg *sc = &l->cfg->sidecar;
    sc->local_cluster = -1;
    if (!node(l, "sidecar")) return;
    const char *service = NULL, *local = NULL, *cert = NULL, *key = NULL, *ca = NULL,
               *revoked = NULL;
    json_t *outbound = NULL, *allow = NULL;
    const sl_json_field f[] = {
        {.name = "service",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = SL_TLS_NAME_MAX,
         .out = &service},
        {.name = "local",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = 255,
         .out = &local},
        {.name = "cert_file",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = 4096,
         .out = &cert},
        {.name = "key_file",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = 4096,
         .out = &key},
        {.name = "ca_file",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = 4096,
         .out = &ca},
        {.name = "revoked_file", .kind = SL_JSON_STRING, .min = 1, .max = 4096, .out = &revoked},
        {.name = "outbound", .kind = SL_JSON_ARRAY, .max = PX_OUTBOUND_MAX, .out = &outbound},
        {.name = "allow", .kind = SL_JSON_ARRAY, .max = PX_POLICY_RULES_MAX, .out = &allow},
    };
    if (read_obj(l, "sidecar", f, SL_ARRAY_LEN(f)) != 0) return;
    char spiffe[SL_TLS_SPIFFE_MAX + 1];
    if (sl_tls_spiffe_format(service, spiffe, sizeof spiffe) != 0) {
        fail(l, "sidecar.service", "must be a service name (a-z, 0-9, '-'; not starting with '-')");
        return;
    }
    sc->on = true;
    snprintf(sc->service, sizeof sc->service, "%s", service);
    if ((sc->local_cluster = px_config_cluster(l->cfg, local)) < 0) {
        fail(l, "sidecar.local", "names no cluster");
        return;
    }
    sc->cert_file = strdup(cert);
    sc->key_file = strdup(key);
    sc->ca_file = strdup(ca);
    sc->revoked_file = dup_or_null(revoked);
    if (outbound) read_outbound(l, outbound);
    if (l->failed) return;
    char perr[PX_POLICY_ERR_MAX] = "";
    if (px_policy_parse(allow, &sc->policy, perr) != 0) {
        char where[SL_CONFIG_PATH_MAX];
        snprintf(where, sizeof where, "sidecar.%.200s", perr);
        fail(l, "sidecar.allow", where);
        return;
    }
    const sl_http_limits *lim = &l->cfg->limits;
    for (size_t i = 0; i <= sc->noutbound; i++) {
        px_route *r = &sc->routes[i];
        char label[SL_TLS_NAME_MAX + 16];
        int c = i == 0 ? sc->local_cluster : sc->outbound[i - 1].cluster;
        snprintf(label, sizeof label, i == 0 ? "inbound" : "outbound:%s", l->cfg->clusters[c].name);
        r->name = strdup(label);
        r->path = strdup(label);
        r->kind = PX_MATCH_PREFIX;
        r->cluster = c;
        r->aggregate = -1;
        r->timeout_ms = l->cfg->default_timeout_ms;
        r->body_max_bytes = lim->body_max_bytes;
        if (!r->name || !r->path || !sc->cert_file || !sc->key_file || !sc->ca_file ||
            (revoked && !sc->revoked_file)) {
            fail(l, "sidecar", "out of memory");
            return;
        }
    }
}

static void check_top(loader *l)
{
    static const char *const known[] = {
        "service",    "http",   "gateway", "admin",     "identity", "auth",
        "rate_limit", "cors",   "log",     "trace",     "clusters", "routes",
        "aggregates", "static", "audit",   "telemetry", "sidecar",  NULL};
    const char *k;
    json_t *v;
    json_object_foreach(sl_config_root(l->c), k, v)
    {
        int ok = 0;
        for (size_t i = 0; known[i]; i++)
            ok |= strcmp(known[i], k) == 0;
        if (!ok) {
            fail(l, k, "unknown section");
            return;
        }
    }
}

static int finish_load(sl_config *c, px_config **out, char *err, const char *name)
{
    px_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        sl_config_free(c);
        snprintf(err, PX_ERR_MAX, "out of memory");
        return SL_ENOMEM;
    }
    cfg->jwks_cluster = -1;
    cfg->source = strdup(name);
    loader l = {.c = c, .cfg = cfg, .err = err};
    const char *jwks_cluster = NULL;
    check_top(&l);
    read_service(&l);
    read_http(&l);
    read_misc(&l);
    read_auth(&l, &jwks_cluster);
    read_limits_cors(&l);
    read_clusters(&l);
    read_aggregates(&l);
    read_audit(&l);
    read_routes(&l);
    read_statics(&l);
    read_sidecar(&l);
    for (size_t i = 0; cfg->have_identity_key && i < cfg->nclusters; i++)
        cfg->clusters[i].identity_edge =
            sl_identity_keyring_find(&cfg->identity_ring, cfg->identity_name,
                                     strlen(cfg->identity_name), cfg->clusters[i].name);
    if (!l.failed && jwks_cluster && (cfg->jwks_cluster = px_config_cluster(cfg, jwks_cluster)) < 0)
        fail(&l, "auth.jwks.cluster", "names no cluster");
    if (!l.failed) cfg->json = sl_json_dump(sl_config_root(c), NULL);
    sl_config_free(c);
    if (l.failed) {
        px_config_free(cfg);
        return SL_ECONFIG;
    }
    *out = cfg;
    return 0;
}

static const char *const env_sections[] = {"service",  "http",       "gateway", "admin", "identity",
                                           "auth",     "rate_limit", "cors",    "log",   "trace",
                                           "clusters", "telemetry",  "sidecar", NULL};

int px_config_load_string(const char *name, const char *yaml, char *const *envp, px_config **out,
                          char *err)
{
    sl_config *c = NULL;
    char cerr[SL_CONFIG_ERR_MAX] = "";
    *out = NULL;
    int rc = sl_config_load_string(name, yaml, strlen(yaml), &c, cerr);
    if (rc == 0 && envp) rc = sl_config_apply_env(c, envp, env_sections, cerr);
    if (rc != 0) {
        sl_config_free(c);
        snprintf(err, PX_ERR_MAX, "%s", cerr);
        return rc;
    }
    return finish_load(c, out, err, name);
}

int px_config_load(const char *path, char *const *envp, px_config **out, char *err)
{
    sl_config *c = NULL;
    char cerr[SL_CONFIG_ERR_MAX] = "";
    *out = NULL;
    int rc = path ? sl_config_load_file(path, &c, cerr)
                  : sl_config_load_string("<defaults>", "{}", 2, &c, cerr);
    if (rc == 0 && envp) rc = sl_config_apply_env(c, envp, env_sections, cerr);
    if (rc != 0) {
        sl_config_free(c);
        snprintf(err, PX_ERR_MAX, "%s", cerr);
        return rc;
    }
    rc = finish_load(c, out, err, path ? path : "<defaults>");
    if (rc != 0) return rc;
    /* The static files are read here, on the loading (main) thread, never on a loop. */
    size_t total = 0;
    px_config *cfg = *out;
    for (size_t i = 0; i < cfg->nstatics && rc == 0; i++) {
        char note[256] = "";
        rc = px_static_load(&cfg->statics[i], &total, note, err, PX_ERR_MAX);
        if (note[0] && !cfg->static_note[0])
            snprintf(cfg->static_note, sizeof cfg->static_note, "%s", note);
    }
    if (rc != 0) {
        px_config_free(cfg);
        *out = NULL;
    }
    return rc;
}

int px_config_cluster(const px_config *cfg, const char *name)
{
    SL_ASSERT(cfg && name);
    for (size_t i = 0; i < cfg->nclusters; i++)
        if (cfg->clusters[i].name && strcmp(cfg->clusters[i].name, name) == 0) return (int)i;
    return -1;
}

static void part_free(px_part_cfg *p)
{
    free(p->name);
    free(p->path);
    free(p->select);
    free(p->target);
    free(p->list);
    free(p->id);
    free(p->set);
    free(p->result);
    free(p->key);
}

void px_config_free(px_config *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < cfg->nclusters; i++) {
        px_cluster_cfg *c = &cfg->clusters[i];
        free(c->name);
        for (size_t k = 0; k < c->nendpoints; k++)
            free(c->endpoints[k]);
        free(c->endpoints);
        free(c->hc_path);
    }
    for (size_t i = 0; i < cfg->routes.n; i++)
        px_route_free(&cfg->routes.items[i]);
    free(cfg->routes.items);
    for (size_t i = 0; i < cfg->naggregates; i++) {
        free(cfg->aggregates[i].name);
        for (size_t k = 0; k < cfg->aggregates[i].nparts; k++)
            part_free(&cfg->aggregates[i].parts[k]);
    }
    for (size_t i = 0; i < cfg->audit.ncross; i++) {
        free(cfg->audit.cross[i].name);
        free(cfg->audit.cross[i].equal[0]);
        free(cfg->audit.cross[i].equal[1]);
    }
    for (size_t i = 0; i < cfg->ncors_origins; i++)
        free(cfg->cors_origins[i]);
    free(cfg->cors_methods);
    free(cfg->cors_headers);
    free(cfg->cors_expose);
    for (size_t i = 0; i < cfg->nstatics; i++)
        px_static_site_free(&cfg->statics[i]);
    free(cfg->jwks_path);
    for (size_t i = 0; i < cfg->njwks_pins; i++)
        free(cfg->jwks_pins[i]);
    free(cfg->issuer);
    free(cfg->audience);
    free(cfg->revoke_path);
    free(cfg->source);
    free(cfg->json);
    px_sidecar_cfg *sc = &cfg->sidecar;
    free(sc->cert_file);
    free(sc->key_file);
    free(sc->ca_file);
    free(sc->revoked_file);
    for (size_t i = 0; i < SL_ARRAY_LEN(sc->routes); i++) {
        free(sc->routes[i].name);
        free(sc->routes[i].path);
    }
    px_policy_free(&sc->policy);
    sl_tls_ctx_unref(sc->tls_server);
    for (size_t i = 0; i < PX_OUTBOUND_MAX; i++)
        sl_tls_ctx_unref(sc->tls_client[i]);
    sodium_memzero(&cfg->identity_ring, sizeof cfg->identity_ring);
    free(cfg);
}
