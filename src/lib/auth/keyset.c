/*
 * Key sets (lookup by kid, bounded, for rotation) and their JWKS form
 * (RFC 7517 with the OKP key type of RFC 8037). Parsing is strict about the
 * Ed25519 keys it keeps and ignores keys meant for other algorithms.
 */
#include "auth/auth_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sl_keyset_new(sl_keyset **out)
{
    SL_ASSERT(out != NULL);
    *out = calloc(1, sizeof **out);
    return *out ? 0 : SL_ENOMEM;
}

void sl_keyset_free(sl_keyset *ks)
{
    if (!ks) return;
    for (size_t i = 0; i < ks->count; i++)
        sl_auth_key_free(ks->keys[i]);
    free(ks);
}

const sl_auth_key *sl_keyset_find(const sl_keyset *ks, const char *kid, size_t kid_len)
{
    SL_ASSERT(ks != NULL && (kid != NULL || kid_len == 0));
    if (kid_len > SL_AUTH_KID_MAX) return NULL;
    for (size_t i = 0; i < ks->count; i++) {
        const char *k = ks->keys[i]->kid;
        if (strlen(k) == kid_len && memcmp(k, kid, kid_len) == 0) return ks->keys[i];
    }
    return NULL;
}

int sl_keyset_add(sl_keyset *ks, const sl_auth_key *key)
{
    SL_ASSERT(ks != NULL && key != NULL);
    if (sl_keyset_find(ks, key->kid, strlen(key->kid))) return SL_EEXIST;
    if (ks->count == SL_KEYSET_MAX) return SL_ELIMIT;
    sl_auth_key *copy = NULL;
    int rc = sl_auth_key_from_public(key->pub, key->kid, &copy);
    if (rc != 0) return rc == SL_EINVAL ? SL_EIO : rc;
    ks->keys[ks->count++] = copy;
    return 0;
}

int sl_keyset_remove(sl_keyset *ks, const char *kid)
{
    SL_ASSERT(ks != NULL && kid != NULL);
    for (size_t i = 0; i < ks->count; i++) {
        if (strcmp(ks->keys[i]->kid, kid) != 0) continue;
        sl_auth_key_free(ks->keys[i]);
        memmove(&ks->keys[i], &ks->keys[i + 1], (ks->count - i - 1) * sizeof ks->keys[0]);
        ks->count--;
        return 0;
    }
    return SL_ENOTFOUND;
}

size_t sl_keyset_count(const sl_keyset *ks)
{
    SL_ASSERT(ks != NULL);
    return ks->count;
}

/* Builds the public JWK of `k`. Returns a new reference or NULL when out of memory. */
static json_t *jwk_of(const sl_auth_key *k)
{
    char x[SL_B64URL_ENCODED_LEN(SL_AUTH_PUBLIC_KEY_BYTES) + 1];
    if (sl_b64url_encode(k->pub, sizeof k->pub, x, sizeof x, NULL) != 0) return NULL;
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "OKP", "crv", "Ed25519", "x", x,
                     "kid", k->kid, "alg", "EdDSA", "use", "sig");
}

int sl_jwks_dump(const sl_keyset *ks, char **out, size_t *out_len)
{
    SL_ASSERT(ks != NULL && out != NULL);
    *out = NULL;
    json_t *keys = json_array();
    json_t *doc = json_pack("{s:o}", "keys", keys);
    if (!doc) return SL_ENOMEM; /* json_pack "o" stole `keys` even on failure */
    for (size_t i = 0; i < ks->count; i++) {
        if (json_array_append_new(keys, jwk_of(ks->keys[i])) != 0) {
            json_decref(doc);
            return SL_ENOMEM;
        }
    }
    *out = sl_json_dump(doc, out_len);
    json_decref(doc);
    return *out ? 0 : SL_ENOMEM;
}

/* Reads the optional string member `name` of `jwk`. Returns 0 with *s (NULL when absent), or
 * SL_EINVAL (recorded) when it is present but not a string. */
static int opt_string(const json_t *jwk, const char *name, const char *path, const char **s,
                      sl_json_errors *errs)
{
    const json_t *v = json_object_get(jwk, name);
    *s = NULL;
    if (!v) return 0;
    if (!json_is_string(v)) {
        sl_json_errors_add(errs, path, "%s must be a string", name);
        return SL_EINVAL;
    }
    *s = json_string_value(v);
    return 0;
}

/*
 * Turns entry `jwk` of the document into a public key in *out, or leaves *out NULL for a key
 * meant for something else. Returns 0, SL_EINVAL (recorded in `errs`) or SL_ENOMEM.
 */
static int parse_jwk(const json_t *jwk, const char *path, sl_auth_key **out, sl_json_errors *errs)
{
    *out = NULL;
    if (!json_is_object(jwk)) {
        sl_json_errors_add(errs, path, "must be an object");
        return SL_EINVAL;
    }
    const char *kty, *crv, *use, *alg, *x, *kid;
    if (opt_string(jwk, "kty", path, &kty, errs) != 0) return SL_EINVAL;
    if (!kty) {
        sl_json_errors_add(errs, path, "kty is required"); /* RFC 7517 §4.1 */
        return SL_EINVAL;
    }
    if (strcmp(kty, "OKP") != 0) return 0; /* RSA, EC, oct: not ours */
    if (opt_string(jwk, "crv", path, &crv, errs) != 0 ||
        opt_string(jwk, "use", path, &use, errs) != 0 ||
        opt_string(jwk, "alg", path, &alg, errs) != 0 ||
        opt_string(jwk, "x", path, &x, errs) != 0 || opt_string(jwk, "kid", path, &kid, errs) != 0)
        return SL_EINVAL;
    /* RFC 8037 §2: X25519/Ed448 share kty OKP; only Ed25519 signing keys are ours. */
    if (!crv || strcmp(crv, "Ed25519") != 0) return 0;
    if (use && strcmp(use, "sig") != 0) return 0;
    if (alg && strcmp(alg, "EdDSA") != 0) return 0;
    if (json_object_get(jwk, "d")) {
        sl_json_errors_add(errs, path, "d (a private key) must not be published");
        return SL_EINVAL;
    }
    uint8_t pub[SL_AUTH_PUBLIC_KEY_BYTES + 3];
    size_t pub_len = 0;
    if (!x || sl_b64url_decode(x, strlen(x), pub, sizeof pub, &pub_len) != 0 ||
        pub_len != SL_AUTH_PUBLIC_KEY_BYTES) {
        sl_json_errors_add(errs, path, "x must be 32 bytes of base64url");
        return SL_EINVAL;
    }
    if (kid && (kid[0] == '\0' || strlen(kid) > SL_AUTH_KID_MAX)) {
        sl_json_errors_add(errs, path, "kid must have 1 to %d bytes", SL_AUTH_KID_MAX);
        return SL_EINVAL;
    }
    int rc = sl_auth_key_from_public(pub, kid, out);
    if (rc == SL_EINVAL) sl_json_errors_add(errs, path, "x is not an Ed25519 public key");
    return rc;
}

int sl_jwks_parse(const char *buf, size_t len, sl_keyset **out, sl_json_errors *errs)
{
    SL_ASSERT(buf != NULL || len == 0);
    SL_ASSERT(out != NULL);
    *out = NULL;
    if (len > SL_JWKS_MAX_BYTES) {
        sl_json_errors_add(errs, NULL, "JWKS larger than %d bytes", SL_JWKS_MAX_BYTES);
        return SL_ELIMIT;
    }
    json_t *doc = NULL;
    sl_json_limits lim = {.max_bytes = SL_JWKS_MAX_BYTES, .max_depth = 8};
    int rc = sl_json_parse(buf, len, &lim, &doc, errs);
    if (rc != 0) return rc == SL_ENOMEM ? rc : (rc == SL_EINVAL ? SL_EINVAL : SL_EPARSE);
    sl_keyset *ks = NULL;
    const json_t *keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        sl_json_errors_add(errs, "keys", "must be an array");
        rc = SL_EINVAL;
        goto out;
    }
    if (json_array_size(keys) > SL_JWKS_MAX_KEY_ITEMS) {
        sl_json_errors_add(errs, "keys", "more than %d keys", SL_JWKS_MAX_KEY_ITEMS);
        rc = SL_ELIMIT;
        goto out;
    }
    if ((rc = sl_keyset_new(&ks)) != 0) goto out;
    for (size_t i = 0; i < json_array_size(keys); i++) {
        char path[32];
        snprintf(path, sizeof path, "keys[%zu]", i);
        sl_auth_key *k = NULL;
        if ((rc = parse_jwk(json_array_get(keys, i), path, &k, errs)) != 0) goto out;
        if (!k) continue;
        /* The set and the document are both bounded by 16, so only a duplicate can fail. */
        rc = sl_keyset_add(ks, k);
        sl_auth_key_free(k);
        if (rc == SL_EEXIST) sl_json_errors_add(errs, path, "duplicate kid");
        if (rc != 0) {
            rc = rc == SL_EEXIST ? SL_EINVAL : rc;
            goto out;
        }
    }
    *out = ks;
    ks = NULL;
out:
    sl_keyset_free(ks);
    json_decref(doc);
    return rc;
}
