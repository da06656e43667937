/*
 * Internals of the auth module shared between its files: the key and key set
 * layouts, and the signing/verifying primitives over OpenSSL's EVP API.
 */
#ifndef SHOAL_AUTH_INT_H
#define SHOAL_AUTH_INT_H

#include <shoal/auth.h>

#include <openssl/evp.h>

struct sl_auth_key {
    EVP_PKEY *pkey; /* Ed25519; private or public only */
    bool has_private;
    uint8_t pub[SL_AUTH_PUBLIC_KEY_BYTES];
    char kid[SL_AUTH_KID_MAX + 1];
};

struct sl_keyset {
    size_t count;
    sl_auth_key *keys[SL_KEYSET_MAX]; /* owned, public only, insertion order */
};

/* Writes the RFC 7638 thumbprint of `pub` (43 characters + NUL) into `kid`. */
int sl__auth_thumbprint(const uint8_t pub[SL_AUTH_PUBLIC_KEY_BYTES], char kid[SL_AUTH_KID_MAX + 1]);

/* One-shot Ed25519 signature of `len` bytes into `sig` (64 bytes). 0 or SL_EIO / SL_ENOMEM. */
int sl__auth_ed25519_sign(const sl_auth_key *key, const void *msg, size_t len,
                          uint8_t sig[SL_AUTH_SIGNATURE_BYTES]);

/* Returns 1 only when EVP_DigestVerify says the signature is valid, 0 otherwise. */
int sl__auth_ed25519_verify(const sl_auth_key *key, const void *msg, size_t len,
                            const uint8_t sig[SL_AUTH_SIGNATURE_BYTES]);

#endif /* SHOAL_AUTH_INT_H */
