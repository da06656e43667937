/*
 * libFuzzer target for the option parsers of `shoal load` (src/cli/load_args.c, compiled into
 * this target: the command's sources are not in libshoal). The first byte picks the parser;
 * the rest is the text (for the whole command line: arguments separated by newlines). Every
 * accepted value is checked against its contract: durations and rates in range, at least one
 * mix weight, a port in range, and a remote target only with --allow-remote.
 */
#include "../../src/cli/load_args.c"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 4096) return 0;
    char *text = malloc(size);
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char err[CLI_LOAD_ERR_MAX];
    cli_load_opts o;
    cli_load_opts_default(&o);
    switch (data[0] % 5) {
    case 0: {
        int64_t ms = -1;
        if (cli_load_parse_duration(text, &ms, err) == 0 &&
            (ms < 0 || ms > CLI_LOAD_DURATION_MAX_MS))
            abort();
        break;
    }
    case 1: {
        double r = -1;
        if (cli_load_parse_rate(text, &r, err) == 0 && !(r > 0 && r <= CLI_LOAD_RATE_MAX)) abort();
        break;
    }
    case 2:
        if (cli_load_parse_mix(text, &o, err) == 0 &&
            (o.w_browse + o.w_cart + o.w_checkout == 0 || o.w_browse > CLI_LOAD_WEIGHT_MAX ||
             o.w_cart > CLI_LOAD_WEIGHT_MAX || o.w_checkout > CLI_LOAD_WEIGHT_MAX))
            abort();
        break;
    case 3:
        if (cli_load_parse_target(text, &o, err) == 0 &&
            (o.port < 1 || o.port > 65535 || o.host[0] == '\0' ||
             strlen(o.host) > CLI_LOAD_HOST_MAX))
            abort();
        break;
    default: {
        char *argv[16];
        int argc = 0;
        for (char *p = text; argc < 16;) {
            argv[argc++] = p;
            char *nl = strchr(p, '\n');
            if (!nl) break;
            *nl = '\0';
            p = nl + 1;
        }
        int rc = cli_load_parse_args(argc, argv, &o, err);
        if (rc == 0) {
            if (!o.loopback && !o.allow_remote) abort();
            if (o.rate < 0 || o.rate > CLI_LOAD_RATE_MAX) abort();
            if (o.conns < 1 || o.conns > CLI_LOAD_CONNS_MAX) abort();
            if (o.users < 0 || o.users > CLI_LOAD_USERS_MAX) abort();
            if (o.duration_ms < 1 || o.warmup_ms < 0) abort();
        } else if (rc != 1 && err[0] == '\0') {
            abort(); /* a refusal always says why */
        }
        break;
    }
    }
    free(text);
    return 0;
}
