/*
 * The operations routes every service answers (service.h): /healthz (liveness: the process
 * answers), /readyz (readiness: what serving needs is there; 503 problem+json naming what is
 * missing) and /metrics.
 */
#include "service_int.h"

#include <shoal/metrics.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- built-in routes -------------------------------------------------- */

static void op_healthz(sl_http_req *req, sl_svc_worker *w)
{
    (void)w;
    static const char body[] = "{\"status\":\"ok\"}";
    sl_respond_json(req, 200, body, sizeof body - 1);
}

/*
 * What a worker needs to serve, as /readyz sees it. The database: one cheap query on the worker's
 * own connection (bounded by its busy timeout on SQLite and by the server's answer on
 * PostgreSQL), which also shows that every migration the host applied is still recorded; for
 * SQLite, the file at the configured path must still be the one the connection opened (a removed
 * or replaced file would leave the service writing into a ghost). The bus, when the service has
 * one. Then the service's own hook. Fills `missing` and returns how many are missing.
 */
static size_t not_ready(sl_svc_worker *w, const char *missing[4])
{
    const sl_service *svc = w->svc;
    size_t n = 0;
    if (!w->started) missing[n++] = "worker";
    if (w->db) {
        sl_db_stmt *st = NULL;
        int64_t applied = -1;
        if (sl_db_prepare(w->db, "SELECT count(*) FROM schema_migrations", &st) == 0) {
            if (sl_db_step(st) == SL_DB_ROW) applied = sl_db_column_int64(st, 0);
            sl_db_stmt_done(st);
        }
        struct stat fs;
        int file_ok = svc->db_file[0] == '\0' ||
                      (stat(svc->db_file, &fs) == 0 && (uint64_t)fs.st_dev == svc->db_dev &&
                       (uint64_t)fs.st_ino == svc->db_ino);
        if (applied < 0 || !file_ok)
            missing[n++] = "database";
        else if (applied < svc->migrations_expected)
            missing[n++] = "migrations";
    }
    if (!sl__events_bus_ok(svc->events)) missing[n++] = "bus";
    const sl_service_def *def = svc->def;
    if (n < 4 && def->ready && def->ready(w) != 0) missing[n++] = def->name;
    return n;
}

static void op_readyz(sl_http_req *req, sl_svc_worker *w)
{
    const char *missing[4];
    size_t n = not_ready(w, missing);
    if (n == 0) {
        static const char body[] = "{\"status\":\"ready\"}";
        sl_respond_json(req, 200, body, sizeof body - 1);
        return;
    }
    char detail[128] = "not ready:";
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(detail);
        snprintf(detail + len, sizeof detail - len, "%s %s", i ? "," : "", missing[i]);
        if (list) json_array_append_new(list, json_string(missing[i]));
    }
    json_t *doc = sl_svc_problem(503, "not_ready", detail, NULL);
    if (doc && list)
        json_object_set_new(doc, "missing", list);
    else
        json_decref(list);
    sl_respond_problem_owned(req, 503, doc, 1);
}

static void op_metrics(sl_http_req *req, sl_svc_worker *w)
{
    char *text = NULL;
    size_t len = 0;
    sl_series *conns = sl_metric_series(w->svc->fam.connections, NULL);
    if (conns) {
        double total = 0;
        for (int i = 0; i < w->svc->workers; i++)
            if (w->svc->w[i].sw.http)
                total += (double)sl_http_server_connections(w->svc->w[i].sw.http);
        sl_gauge_set(conns, total);
    }
    if (sl_metrics_render(w->svc->metrics, &text, &len) != 0) {
        sl_http_respond_problem(req, 500, "could not render metrics");
        return;
    }
    sl_http_respond_body(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

const sl_route_def sl__service_builtin_routes[] = {
    {SL_HTTP_GET, "/healthz", op_healthz, 0},
    {SL_HTTP_GET, "/readyz", op_readyz, 0},
    {SL_HTTP_GET, "/metrics", op_metrics, 0},
};

const size_t sl__service_nbuiltin_routes = SL_ARRAY_LEN(sl__service_builtin_routes);
