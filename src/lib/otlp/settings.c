/*
 * The `telemetry:` section (otlp.h), read the same way by the service host and the gateway.
 */
#include <shoal/otlp.h>

#include <stdio.h>
#include <string.h>

#ifndef SHOAL_VERSION
#define SHOAL_VERSION "0.0.0-dev"
#endif

int sl_otlp_settings_read(const sl_config *cfg, double default_ratio, sl_otlp_settings *out,
                          sl_json_errors *errs)
{
    SL_ASSERT(cfg && out);
    const char *endpoint = "", *version = SHOAL_VERSION;
    double ratio = default_ratio;
    int64_t batch = 512, queue = 2048, flush = 1000, timeout = 2000, slow = 0;
    const sl_json_field f[] = {
        {.name = "otlp_endpoint",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_NULLABLE,
         .max = SL_OTLP_ENDPOINT_MAX,
         .max_bytes = SL_OTLP_ENDPOINT_MAX,
         .out = &endpoint},
        {.name = "sample_ratio", .kind = SL_JSON_NUMBER, .min = 0, .max = 1, .out = &ratio},
        {.name = "service_version",
         .kind = SL_JSON_STRING,
         .min = 1,
         .max = 63,
         .max_bytes = 63,
         .out = &version},
        {.name = "batch_max", .kind = SL_JSON_INT, .min = 1, .max = 8192, .out = &batch},
        {.name = "queue_spans", .kind = SL_JSON_INT, .min = 16, .max = 65536, .out = &queue},
        {.name = "flush_ms", .kind = SL_JSON_INT, .min = 10, .max = 60000, .out = &flush},
        {.name = "export_timeout_ms",
         .kind = SL_JSON_INT,
         .min = 10,
         .max = 60000,
         .out = &timeout},
        {.name = "slow_ms", .kind = SL_JSON_INT, .min = 0, .max = 3600000, .out = &slow},
    };
    int rc = sl_config_read(cfg, "telemetry", f, SL_ARRAY_LEN(f), SL_JSON_REJECT_UNKNOWN, errs);
    if (rc != 0) return SL_EINVAL;
    sl_otlp_endpoint ep;
    if (endpoint[0] && sl_otlp_endpoint_parse(endpoint, strlen(endpoint), &ep) != 0) {
        char where[256] = "";
        sl_config_locate(cfg, "telemetry.otlp_endpoint", where, sizeof where);
        sl_json_errors_add(errs, "telemetry.otlp_endpoint",
                           "%s: telemetry.otlp_endpoint: must be http://HOST[:PORT][/PATH]", where);
        return SL_EINVAL;
    }
    memset(out, 0, sizeof *out);
    snprintf(out->endpoint, sizeof out->endpoint, "%s", endpoint);
    snprintf(out->service_version, sizeof out->service_version, "%s", version);
    out->sample_ratio = ratio;
    out->batch_max = (uint32_t)batch;
    out->queue_spans = (uint32_t)queue;
    out->flush_ms = (uint32_t)flush;
    out->export_timeout_ms = (uint32_t)timeout;
    out->slow_ms = (uint32_t)slow;
    return 0;
}
