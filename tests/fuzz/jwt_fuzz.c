/*
 * libFuzzer target for the auth module's parsers of outside input: the
 * input goes whole through sl_jwt_verify (against a fixed key set and a fake
 * clock at which the corpus tokens are valid) and through sl_jwks_parse, and
 * each of its dot-separated pieces through sl_b64url_decode. Invariants
 * checked: a verified token has a non-empty sub and a kid of the set, every
 * rejection has a named reason, a parsed JWKS dumps and parses back to the
 * same number of keys, and decoded base64url re-encodes to its input.
 */
#include <shoal/auth.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The RFC 8037 A.1 key: the corpus tokens are signed with it. */
static const uint8_t seed[32] = {0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a,
                                 0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32,
                                 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60};

static void fuzz_jwt(const char *s, size_t n)
{
    sl_auth_key *k = NULL;
    sl_keyset *ks = NULL;
    if (sl_auth_key_from_seed(seed, &k) != 0 || sl_keyset_new(&ks) != 0 ||
        sl_keyset_add(ks, k) != 0)
        abort();
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, (int64_t)1795869296 * 1000000000);
    sl_jwt_verify_opts opts;
    sl_jwt_verify_opts_init(&opts, &fc.clock);
    opts.issuer = "shoal-user";
    sl_jwt_verified v;
    sl_jwt_reason r;
    int rc = sl_jwt_verify(ks, s, n, &opts, &v, &r);
    if (rc == 0) {
        if (r != SL_JWT_OK || !v.sub || !v.sub[0] || !v.claims) abort();
        if (!sl_keyset_find(ks, v.kid, strlen(v.kid))) abort();
    } else if (rc == SL_EINVAL) {
        if (r == SL_JWT_OK || strcmp(sl_jwt_reason_name(r), "unknown") == 0 || v.claims) abort();
    } else if (rc != SL_ENOMEM) {
        abort();
    }
    sl_jwt_verified_deinit(&v);
    sl_keyset_free(ks);
    sl_auth_key_free(k);
}

static void fuzz_jwks(const char *s, size_t n)
{
    sl_keyset *ks = NULL;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    int rc = sl_jwks_parse(s, n, &ks, &errs);
    if (rc != 0) {
        if (ks || sl_json_errors_total(&errs) == 0) abort();
        return;
    }
    if (sl_keyset_count(ks) > SL_KEYSET_MAX) abort();
    char *doc = NULL;
    size_t len = 0;
    sl_keyset *back = NULL;
    if (sl_jwks_dump(ks, &doc, &len) != 0) abort();
    if (sl_jwks_parse(doc, len, &back, NULL) != 0) abort();
    if (sl_keyset_count(back) != sl_keyset_count(ks)) abort();
    free(doc);
    sl_keyset_free(back);
    sl_keyset_free(ks);
}

static void fuzz_b64url(const char *s, size_t n)
{
    uint8_t out[SL_B64URL_DECODED_MAX(SL_JWT_MAX_BYTES)];
    char back[SL_JWT_MAX_BYTES + 1];
    size_t m = 0, k = 0;
    if (n > SL_JWT_MAX_BYTES) return;
    if (sl_b64url_decode(s, n, out, sizeof out, &m) != 0) return;
    /* Strict decoding means one spelling per byte string. */
    if (sl_b64url_encode(out, m, back, sizeof back, &k) != 0) abort();
    if (k != n || memcmp(back, s, n) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    fuzz_jwt(s, size);
    fuzz_jwks(s, size);
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i == size || s[i] == '.') {
            fuzz_b64url(s + start, i - start);
            start = i + 1;
        }
    }
    return 0;
}
