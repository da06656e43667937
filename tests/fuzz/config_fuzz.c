/*
 * libFuzzer target for the config module: sl_config_load_string on the input,
 * then (on success) a fixed environment override, a validation of the `http`
 * section and a located lookup, so positions and paths are exercised too.
 */
#include <shoal/config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_config *cfg = NULL;
    char err[SL_CONFIG_ERR_MAX];
    int rc = sl_config_load_string("fuzz.yaml", (const char *)data, size, &cfg, err);
    if (rc != 0) {
        if (cfg || memchr(err, '\0', sizeof err) == NULL) abort();
        return 0;
    }
    char *envp[] = {"SHOAL_HTTP__PORT=8081", "SHOAL_HTTP__TLS__VERIFY=true",
                    "SHOAL_LISTENERS__0__PORT=1", NULL};
    int applied = sl_config_apply_env(cfg, envp, NULL, err);
    if (applied != 0 && applied != SL_ECONFIG && applied != SL_ENOMEM) abort();
    sl_json_field fields[] = {
        {.name = "port", .kind = SL_JSON_INT, .min = 1, .max = 65535},
        {.name = "host", .kind = SL_JSON_STRING, .max = 64},
        {.name = "tls", .kind = SL_JSON_OBJECT},
    };
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    int r1 =
        sl_config_read(cfg, "http", fields, SL_ARRAY_LEN(fields), SL_JSON_REJECT_UNKNOWN, &errs);
    int r2 = sl_config_read(cfg, "listeners[0]", fields, 1, 0, &errs);
    if ((r1 == 0 && r2 == 0) != (sl_json_errors_total(&errs) == 0)) abort();
    char loc[256];
    (void)sl_config_locate(cfg, "listeners[0].port", loc, sizeof loc);
    int64_t v;
    if (sl_config_get_int(cfg, "http.port", 0, 0, 10, &v, err) == 0 && (v < 0 || v > 10)) abort();
    sl_config_free(cfg);
    return 0;
}
