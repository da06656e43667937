/* The topology's `telemetry:` block, as `shoal up` applies it (trace.h). */
#include "trace.h"

#include <shoal/config.h>

#include <stdio.h>
#include <string.h>

/* The next environment slot of the receiver, named `key`; its value is written by the caller. */
static char *slot(cli_telemetry *t, const char *key)
{
    SL_ASSERT(t->nreceiver_env < CLI_TELEMETRY_ENV_MAX);
    size_t i = t->nreceiver_env++;
    t->receiver_env_key[i] = key;
    return t->receiver_env_val[i];
}

#define VAL_CAP (PATH_MAX + 16)

int cli_telemetry_read(const sl_config *cfg, const char *data_dir, cli_telemetry *out)
{
    SL_ASSERT(cfg != NULL && data_dir != NULL && out != NULL);
    memset(out, 0, sizeof *out);
    if (!json_object_get(sl_config_root(cfg), "telemetry")) return 0;
    char err[SL_CONFIG_ERR_MAX];
    const char *endpoint = NULL;
    int64_t port, max_spans, max_age;
    if (sl_config_get_string(cfg, "telemetry.otlp_endpoint", "", &endpoint, err) != 0 ||
        sl_config_get_int(cfg, "telemetry.receiver.port", 4318, 1, 65535, &port, err) != 0 ||
        sl_config_get_int(cfg, "telemetry.receiver.max_spans", 100000, 100, 100000000, &max_spans,
                          err) != 0 ||
        sl_config_get_int(cfg, "telemetry.receiver.max_age_s", 86400, 0, 365 * 86400, &max_age,
                          err) != 0) {
        fprintf(stderr, "shoal: %s\n", err);
        return SL_ECONFIG;
    }
    if (endpoint[0]) {
        if ((strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0) ||
            strlen(endpoint) >= sizeof out->endpoint || strpbrk(endpoint, " \t\r\n")) {
            fprintf(stderr,
                    "shoal: telemetry.otlp_endpoint: must be an http:// or https:// URL of at "
                    "most %zu bytes\n",
                    sizeof out->endpoint - 1);
            return SL_ECONFIG;
        }
        snprintf(out->endpoint, sizeof out->endpoint, "%s", endpoint);
        return 0;
    }
    out->receiver_port = (int)port;
    snprintf(out->endpoint, sizeof out->endpoint, "http://127.0.0.1:%d", out->receiver_port);
    snprintf(slot(out, "SHOAL_SERVICE__PORT"), VAL_CAP, "%lld", (long long)port);
    snprintf(slot(out, "SHOAL_DB__URL"), VAL_CAP, "sqlite:%s/traces.db", data_dir);
    snprintf(slot(out, "SHOAL_TRACES__MAX_SPANS"), VAL_CAP, "%lld", (long long)max_spans);
    snprintf(slot(out, "SHOAL_TRACES__MAX_AGE_S"), VAL_CAP, "%lld", (long long)max_age);
    /* The receiver exports nothing, not even to itself. */
    slot(out, "SHOAL_TELEMETRY__OTLP_ENDPOINT")[0] = '\0';
    return 0;
}
