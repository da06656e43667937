/*
 * libFuzzer target for what the audit reads from the network: the gateway's
 * join of the services' /admin/audit answers (src/proxy/audit.c; the input is
 * the aggregate's document, whose part values are the services' bodies) and
 * `shoal audit`'s reading of the joined document (src/cli/plan.c). Besides
 * memory safety, the join's contract: it always answers {ok, checks}, every
 * check has a name, a boolean ok and a string detail, and ok is true exactly
 * when every check holds.
 */
#include "audit.h"
#include "cli.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static px_config *config(void)
{
    static px_config *cfg;
    if (cfg) return cfg;
    static const char yaml[] =
        "clusters:\n"
        "  o: {endpoints: [127.0.0.1:1]}\n"
        "  p: {endpoints: [127.0.0.1:2]}\n"
        "aggregates:\n"
        "  au:\n"
        "    parts:\n"
        "      - {name: order, cluster: o, path: /admin/audit, on_error: degrade}\n"
        "      - {name: payment, cluster: p, path: /admin/audit, on_error: degrade}\n"
        "audit:\n"
        "  aggregate: au\n"
        "  cross:\n"
        "    - {name: once, equal: [order.charge_digest, payment.charge_digest]}\n";
    char err[PX_ERR_MAX];
    if (px_config_load_string("fuzz.yaml", yaml, NULL, &cfg, err) != 0) abort();
    return cfg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    px_config *cfg = config();
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return 0;
    }
    json_t *out = px_audit_join(&cfg->aggregates[cfg->audit.aggregate], &cfg->audit, doc);
    if (!out) abort();
    const json_t *checks = json_object_get(out, "checks");
    if (!json_is_array(checks) || !json_is_boolean(json_object_get(out, "ok"))) abort();
    int all = 1;
    for (size_t i = 0; i < json_array_size(checks); i++) {
        const json_t *c = json_array_get(checks, i);
        if (!json_is_string(json_object_get(c, "name")) ||
            !json_is_boolean(json_object_get(c, "ok")) ||
            !json_is_string(json_object_get(c, "detail")) || !json_object_get(c, "value"))
            abort();
        all &= json_is_true(json_object_get(c, "ok"));
    }
    if (all != json_is_true(json_object_get(out, "ok"))) abort();
    int quiet = -1, ok = -1;
    if (cli_audit_read(out, &quiet, &ok) != 0 || ok != all) abort();
    (void)cli_audit_read(doc, &quiet, &ok); /* any document: an answer, never a crash */
    json_decref(out);
    json_decref(doc);
    return 0;
}
