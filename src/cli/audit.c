/*
 * shoal audit [--config FILE] [--target URL] [--admin-credentials FILE] [--settle 60s] [--json]
 *
 * Logs in as the admin (the credentials file `shoal up` leaves in the data
 * directory), reads GET /api/v1/admin/audit through the gateway and prints
 * every check with its value, then each service's dead-letter queue size
 * (GET /api/v1/admin/dlq). With --settle it first waits, at most that
 * long, for the shop to be quiet (cli_audit_read: nothing in flight, every
 * service answering), so that orders between two services are not judged
 * half-way; after that time it judges what it sees and says so.
 *
 * Exit status: 0 every check holds, 1 a violation, 2 an error (no answer,
 * no credentials, refused).
 */
#include "cli.h"

#include <shoal/config.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HTTP_TIMEOUT_MS 60000

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cli_topology(const char *config, char *data_dir, size_t cap, int *gateway_port)
{
    sl_config *cfg = NULL;
    char err[SL_CONFIG_ERR_MAX];
    const char *dd = NULL;
    *gateway_port = 0;
    if (sl_config_load_file(config, &cfg, err) != 0 ||
        sl_config_get_string(cfg, "data_dir", "data", &dd, err) != 0) {
        fprintf(stderr, "shoal: %s\n", err);
        sl_config_free(cfg);
        return SL_ECONFIG;
    }
    snprintf(data_dir, cap, "%s", dd);
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(sl_config_root(cfg), "services"), i, s)
    {
        const char *name = json_string_value(json_object_get(s, "name"));
        json_t *port = json_object_get(s, "port");
        if (name && strcmp(name, "gateway") == 0 && json_is_integer(port))
            *gateway_port = (int)json_integer_value(port);
    }
    sl_config_free(cfg);
    return 0;
}

/* Reads "email: ..." and "password: ..." lines. Returns 0 or SL_EIO / SL_EPARSE. */
static int read_credentials(const char *path, char *email, size_t ecap, char *pw, size_t pcap)
{
    FILE *f = fopen(path, "r");
    if (!f) return SL_EIO;
    char line[512];
    email[0] = pw[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        size_t len = strlen(line);
        if (strncmp(line, "email: ", 7) == 0 && len - 7 < ecap) memcpy(email, line + 7, len - 6);
        if (strncmp(line, "password: ", 10) == 0 && len - 10 < pcap) memcpy(pw, line + 10, len - 9);
    }
    memset(line, 0, sizeof line);
    fclose(f);
    return email[0] && pw[0] ? 0 : SL_EPARSE;
}

/* Logs in; the access token into token (cap bytes). Returns 0 or 2 (the reason printed). */
/* Logs in as the admin. A 429 or 503 (the login route's rate limit; the user service or the
 * gateway's breaker for it still recovering from an outage) is retried a second apart, at least
 * ten times and until `until_ms` (monotonic: the --settle budget). */
static int login(const char *target, const char *cred_path, char *token, size_t cap,
                 int64_t until_ms)
{
    char email[256], pw[256];
    if (read_credentials(cred_path, email, sizeof email, pw, sizeof pw) != 0) {
        fprintf(stderr, "shoal audit: cannot read the admin credentials in %s\n", cred_path);
        return 2;
    }
    json_t *body = json_pack("{s:s,s:s}", "email", email, "password", pw);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    memset(pw, 0, sizeof pw);
    char *resp = NULL;
    int st = SL_ENOMEM;
    /* The login route is rate limited: a few tries a second apart. */
    for (int i = 0; text && (i < 10 || mono_ms() < until_ms); i++) {
        free(resp);
        resp = NULL;
        st = cli_http(target, "POST", "/api/v1/auth/login", NULL, text, HTTP_TIMEOUT_MS, &resp);
        if (st != 429 && st != 503 && st >= 0) break;
        sleep(1);
    }
    if (text) memset(text, 0, strlen(text));
    free(text);
    json_t *doc = st == 200 && resp ? json_loads(resp, 0, NULL) : NULL;
    const char *tok = json_string_value(json_object_get(doc, "access_token"));
    int rc = 0;
    if (!tok || strlen(tok) >= cap) {
        if (st < 0)
            fprintf(stderr, "shoal audit: %s: %s\n", target, sl_strerror(st));
        else
            fprintf(stderr, "shoal audit: login as %s refused (status %d)\n", email, st);
        rc = 2;
    } else {
        snprintf(token, cap, "%s", tok);
    }
    json_decref(doc);
    free(resp);
    return rc;
}

/*
 * Adds to doc's checks, for every service of the topology but the gateway, the size of its
 * dead-letter queue (GET /api/v1/admin/dlq?service=): `<service>.dlq`, informational (a dead
 * letter waits for an operator's redrive; it is not a broken invariant). A service whose list
 * cannot be read gets a null value and the status in the detail.
 */
static void add_dlq_sizes(const char *config, const char *target, const char *token, json_t *doc)
{
    json_t *checks = json_object_get(doc, "checks");
    sl_config *cfg = NULL;
    char err[SL_CONFIG_ERR_MAX];
    if (!json_is_array(checks) || sl_config_load_file(config, &cfg, err) != 0) return;
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(sl_config_root(cfg), "services"), i, s)
    {
        const char *name = json_string_value(json_object_get(s, "name"));
        if (!name || strcmp(name, "gateway") == 0 || strlen(name) > 64) continue;
        char path[160], cname[80];
        snprintf(path, sizeof path, "/api/v1/admin/dlq?service=%s&per_page=1", name);
        snprintf(cname, sizeof cname, "%s.dlq", name);
        char *resp = NULL;
        int st = 0;
        /* A service's dead letters are read by its bus worker: another worker answers 503 and
         * the next connection may reach the right one. */
        for (int t = 0; t < 8 && (t == 0 || st == 503); t++) {
            if (t > 0) usleep(100000);
            free(resp);
            resp = NULL;
            st = cli_http(target, "GET", path, token, NULL, HTTP_TIMEOUT_MS, &resp);
        }
        json_t *d = st == 200 && resp ? json_loads(resp, 0, NULL) : NULL;
        free(resp);
        json_t *total = json_object_get(d, "total");
        json_t *c = json_is_integer(total)
                        ? json_pack("{s:s,s:b,s:O,s:s}", "name", cname, "ok", 1, "value", total,
                                    "detail", "dead letters waiting for a redrive")
                        : json_pack("{s:s,s:b,s:n,s:s}", "name", cname, "ok", 1, "value", "detail",
                                    st < 0 ? "the dead-letter list did not answer"
                                           : "the dead-letter list could not be read");
        if (c) json_array_append_new(checks, c);
        json_decref(d);
    }
    sl_config_free(cfg);
}

static void print_checks(const json_t *doc)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(doc, "checks"), i, c)
    {
        const json_t *v = json_object_get(c, "value");
        char *vs = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        printf("  %-4s %-40s %-24s %s\n", json_is_true(json_object_get(c, "ok")) ? "ok" : "FAIL",
               json_string_value(json_object_get(c, "name")), vs ? vs : "null",
               json_string_value(json_object_get(c, "detail")));
        free(vs);
    }
}

static void usage(FILE *to)
{
    fprintf(to, "usage: shoal audit [--config FILE] [--target URL] [--admin-credentials FILE]\n"
                "                   [--settle DURATION] [--json]\n"
                "  exit 0: every check holds; 1: a violation; 2: an error\n");
}

int cli_audit_main(int argc, char **argv)
{
    const char *config = "config/local.yaml", *target = NULL, *creds = NULL;
    int64_t settle_ms = 60000;
    int as_json = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--config") == 0 && v)
            config = argv[++i];
        else if (strcmp(a, "--target") == 0 && v)
            target = argv[++i];
        else if (strcmp(a, "--admin-credentials") == 0 && v)
            creds = argv[++i];
        else if (strcmp(a, "--settle") == 0 && v) {
            i++;
            if (strcmp(v, "0") == 0)
                settle_ms = 0;
            else if (cli_parse_duration(v, &settle_ms) != 0) {
                fprintf(stderr, "shoal audit: --settle: not a duration: %s\n", v);
                return 2;
            }
        } else if (strcmp(a, "--json") == 0)
            as_json = 1;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    char data_dir[PATH_MAX], url[300], cred_path[PATH_MAX + 32];
    int gw = 0;
    if (cli_topology(config, data_dir, sizeof data_dir, &gw) != 0) return 2;
    if (!target) {
        snprintf(url, sizeof url, "http://127.0.0.1:%d", gw ? gw : 8080);
        target = url;
    }
    if (!creds) {
        snprintf(cred_path, sizeof cred_path, "%s/admin-credentials", data_dir);
        creds = cred_path;
    }
    char token[4096];
    int64_t start = mono_ms(), deadline = start + settle_ms;
    if (login(target, creds, token, sizeof token, deadline) != 0) return 2;

    json_t *doc = NULL;
    int quiet = 0, ok = 0, st = 0;
    for (;;) {
        char *resp = NULL;
        st = cli_http(target, "GET", "/api/v1/admin/audit", token, NULL, HTTP_TIMEOUT_MS, &resp);
        json_decref(doc);
        doc = st == 200 && resp ? json_loads(resp, 0, NULL) : NULL;
        free(resp);
        int parsed = doc && cli_audit_read(doc, &quiet, &ok) == 0;
        if (st == 401 || st == 403) break;
        if (parsed && (quiet || settle_ms == 0)) break;
        if (mono_ms() >= deadline) break;
        sleep(1);
    }
    if (doc && cli_audit_read(doc, &quiet, &ok) == 0) add_dlq_sizes(config, target, token, doc);
    memset(token, 0, sizeof token);
    if (!doc || cli_audit_read(doc, &quiet, &ok) != 0) {
        if (st < 0)
            fprintf(stderr, "shoal audit: %s: %s\n", target, sl_strerror(st));
        else
            fprintf(stderr, "shoal audit: GET /api/v1/admin/audit answered %d\n", st);
        json_decref(doc);
        return 2;
    }
    if (as_json) {
        char *s = json_dumps(doc, JSON_INDENT(2));
        if (s) puts(s);
        free(s);
    } else {
        printf("audit of %s%s\n", target,
               quiet ? "" : " (NOT quiet: work still in flight, judged as seen)");
        print_checks(doc);
        printf("%s (settled in %.1f s)\n", ok ? "audit: clean" : "audit: VIOLATIONS",
               (double)(mono_ms() - start) / 1000.0);
    }
    fflush(stdout);
    json_decref(doc);
    return ok ? 0 : 1;
}
