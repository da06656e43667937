/*
 * libFuzzer target for mesh mode's nats-server configuration generator
 * (src/cli/nats_mesh.c): the input is a service definitions document as
 * JSON. Besides memory safety: a configuration that is produced has an even
 * number of double quotes on every line (no name, topic or group can end a
 * string early or start a new key), and each user's permissions hold only
 * its own inbox as a subscription.
 */
#include "nats_mesh.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *defs = json_loadb((const char *)data, size, 0, NULL);
    if (defs == NULL) return 0;
    cli_nats_mesh_opts o = {.listen = "127.0.0.1:4222",
                            .store_dir = "/s",
                            .cert_file = "/c",
                            .key_file = "/k",
                            .ca_file = "/a",
                            .partitions = 2};
    char *cfg = NULL, err[256];
    if (cli_nats_mesh_config(defs, &o, &cfg, err, sizeof err) == 0) {
        if (cfg == NULL) abort();
        for (char *line = cfg; *line;) {
            char *end = strchr(line, '\n');
            size_t len = end ? (size_t)(end - line) : strlen(line), q = 0;
            for (size_t i = 0; i < len; i++)
                q += line[i] == '"';
            if (q % 2 != 0) abort();
            if (strncmp(line, "        subscribe:", 18) == 0 &&
                strncmp(line, "        subscribe: { allow: [\"_INBOX.", 37) != 0)
                abort();
            line += len + (end != NULL);
        }
        free(cfg);
    } else if (cfg != NULL || err[0] == '\0') {
        abort();
    }
    json_decref(defs);
    return 0;
}
