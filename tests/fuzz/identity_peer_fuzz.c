/*
 * libFuzzer target for the mesh's local hop (identity.h, sl_identity_peer_verify): the input is
 * split at newlines into header lines "name:value", checked against a fixed token. The result
 * must be one of the documented codes; a 0 only with exactly one token header equal to the
 * token and exactly one service header, whose value is the name returned and a mesh identity.
 */
#include <shoal/identity.h>

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SL_IDENTITY_PEER_MAX || s[0] == '-') return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_identity_key tok;
    for (size_t i = 0; i < sizeof tok.k; i++)
        tok.k[i] = (uint8_t)(0xa0 + i);
    char hex[65];
    sl_identity_peer_token_hex(&tok, hex);
    sl_http_header h[16];
    size_t n = 0;
    const char *s = (const char *)data, *end = s + size;
    while (s < end && n < 16) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *e = nl ? nl : end;
        const char *colon = memchr(s, ':', (size_t)(e - s));
        if (colon) {
            h[n].name = (sl_slice){s, (size_t)(colon - s)};
            h[n].value = (sl_slice){colon + 1, (size_t)(e - colon - 1)};
            /* "$T" stands for the right token, so the fuzzer reaches the accepting path */
            if (h[n].value.len == 2 && memcmp(h[n].value.ptr, "$T", 2) == 0)
                h[n].value = (sl_slice){hex, 64};
            n++;
        }
        s = e + 1;
    }
    char out[SL_IDENTITY_PEER_MAX + 1];
    int rc = sl_identity_peer_verify(&tok, h, n, out, sizeof out);
    if (rc != 0 && rc != SL_EINVAL && rc != SL_ENOTFOUND) abort();
    if (rc != 0 && out[0] != '\0') abort();
    if (rc == 0) {
        int ntok = 0, nsvc = 0;
        const sl_http_header *svc = NULL;
        for (size_t i = 0; i < n; i++) {
            if (sl_slice_case_eq(h[i].name, SL_IDENTITY_PEER_TOKEN_HEADER)) {
                ntok++;
                if (h[i].value.len != 64 || memcmp(h[i].value.ptr, hex, 64) != 0) abort();
            }
            if (sl_slice_case_eq(h[i].name, SL_IDENTITY_PEER_SERVICE_HEADER)) {
                nsvc++;
                svc = &h[i];
            }
        }
        if (ntok != 1 || nsvc != 1 || !name_ok(out) || svc->value.len != strlen(out) ||
            memcmp(svc->value.ptr, out, svc->value.len) != 0)
            abort();
    }
    return 0;
}
