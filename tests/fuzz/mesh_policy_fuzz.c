/*
 * libFuzzer target for the sidecar's authorization policy
 * (src/proxy/policy.c). The input is split at its first NUL: before it, a
 * request path (from the network) decided against a fixed policy; after it,
 * a rule list (JSON, from the configuration) parsed and then asked about the
 * same path. Besides memory safety, the contract: a path is classed as
 * admin exactly when, with no dot, empty or encoded segment, it is /admin or
 * below; a denied class never comes out allowed; a failed parse leaves
 * nothing; every caller the parsed policy allows is one it names (or "*").
 */
#include "policy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fixed[] = "[{\"caller\":\"gateway\",\"routes\":[\"public\"]},"
                            " {\"caller\":\"order\",\"routes\":[\"public\"],\"methods\":[\"POST\"],"
                            "  \"paths\":[\"/reservations\"]}]";

static void check_fixed(sl_slice path)
{
    static px_policy p;
    static int loaded;
    if (!loaded) {
        char err[PX_POLICY_ERR_MAX];
        json_t *j = json_loads(fixed, 0, NULL);
        if (!j || px_policy_parse(j, &p, err) != 0) abort();
        json_decref(j);
        loaded = 1;
    }
    unsigned cls = px_policy_class(path);
    if (cls != 0 && cls != PX_CLASS_PUBLIC && cls != PX_CLASS_ADMIN && cls != PX_CLASS_OPS) abort();
    int admin_prefix = path.len >= 6 && memcmp(path.ptr, "/admin", 6) == 0 &&
                       (path.len == 6 || path.ptr[6] == '/');
    if (cls == PX_CLASS_ADMIN && !admin_prefix) abort();
    if (cls == PX_CLASS_PUBLIC && admin_prefix) abort();
    /* No rule of the fixed policy allows admin routes, nor order outside its prefix. */
    px_policy_verdict g = px_policy_decide(&p, "gateway", SL_HTTP_GET, path);
    if (g == PX_POLICY_ALLOW && cls != PX_CLASS_PUBLIC) abort();
    px_policy_verdict o = px_policy_decide(&p, "order", SL_HTTP_POST, path);
    if (o == PX_POLICY_ALLOW &&
        !(cls == PX_CLASS_PUBLIC && path.len >= 13 && memcmp(path.ptr, "/reservations", 13) == 0))
        abort();
    if (px_policy_decide(&p, "cart", SL_HTTP_GET, path) == PX_POLICY_ALLOW) abort();
    if (px_policy_decide(&p, NULL, SL_HTTP_GET, path) != PX_POLICY_NO_IDENTITY) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t plen = nul ? (size_t)(nul - data) : size;
    sl_slice path = {(const char *)data, plen};
    check_fixed(path);
    if (!nul) return 0;
    json_t *j = json_loadb((const char *)nul + 1, size - plen - 1, JSON_REJECT_DUPLICATES, NULL);
    if (!j) return 0;
    px_policy p;
    char err[PX_POLICY_ERR_MAX] = "";
    int rc = px_policy_parse(j, &p, err);
    json_decref(j);
    if (rc != 0) {
        if (p.n != 0 || err[0] == '\0') abort();
        return 0;
    }
    for (const char *caller = "gateway"; caller; caller = strcmp(caller, "gateway") ? NULL : "x") {
        if (px_policy_decide(&p, caller, SL_HTTP_GET, path) != PX_POLICY_ALLOW) continue;
        int named = 0;
        for (size_t i = 0; i < p.n; i++)
            named |= strcmp(p.rules[i].caller, caller) == 0 || strcmp(p.rules[i].caller, "*") == 0;
        if (!named) abort();
    }
    px_policy_free(&p);
    return 0;
}
