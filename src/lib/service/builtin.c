/* The operations routes every service answers (service.h): /healthz, /readyz and /metrics. */
#include "service_int.h"

#include <shoal/metrics.h>

#include <stdlib.h>

/* ---- built-in routes -------------------------------------------------- */

static void op_healthz(sl_http_req *req, sl_svc_worker *w)
{
    (void)w;
    static const char body[] = "{\"status\":\"ok\"}";
    sl_respond_json(req, 200, body, sizeof body - 1);
}

static void op_readyz(sl_http_req *req, sl_svc_worker *w)
{
    const sl_service_def *def = w->svc->def;
    if (def->ready && def->ready(w) != 0) {
        static const char body[] = "{\"status\":\"not ready\"}";
        sl_respond_json(req, 503, body, sizeof body - 1);
        return;
    }
    static const char body[] = "{\"status\":\"ready\"}";
    sl_respond_json(req, 200, body, sizeof body - 1);
}

static void op_metrics(sl_http_req *req, sl_svc_worker *w)
{
    char *text = NULL;
    size_t len = 0;
    sl_series *conns = sl_metric_series(w->svc->connections, NULL);
    if (conns) {
        double total = 0;
        for (int i = 0; i < w->svc->workers; i++)
            if (w->svc->w[i].http) total += (double)sl_http_server_connections(w->svc->w[i].http);
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
