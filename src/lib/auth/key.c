/*
 * Ed25519 keys for the auth module: generation, raw import, PKCS#8 PEM files
 * written atomically with mode 0600, RFC 7638 thumbprints as key ids, and the
 * one-shot sign/verify calls (Ed25519 in OpenSSL 3.0 is one-shot only, with a
 * NULL digest).
 */
#include "auth/auth_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sl__auth_thumbprint(const uint8_t pub[SL_AUTH_PUBLIC_KEY_BYTES], char kid[SL_AUTH_KID_MAX + 1])
{
    /* RFC 7638 §3.2 / RFC 8037 §2: required members only, sorted, no whitespace. */
    char x[SL_B64URL_ENCODED_LEN(SL_AUTH_PUBLIC_KEY_BYTES) + 1];
    if (sl_b64url_encode(pub, SL_AUTH_PUBLIC_KEY_BYTES, x, sizeof x, NULL) != 0) return SL_EIO;
    char json[96];
    int n = snprintf(json, sizeof json, "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", x);
    SL_ASSERT(n > 0 && (size_t)n < sizeof json);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(json, (size_t)n, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32) {
        ERR_clear_error();
        return SL_EIO;
    }
    return sl_b64url_encode(md, md_len, kid, SL_AUTH_KID_MAX + 1, NULL);
}

/* Wraps `pkey` (takes ownership, also on failure) in a new key with its thumbprint. */
static int wrap_pkey(EVP_PKEY *pkey, bool has_private, sl_auth_key **out)
{
    *out = NULL;
    if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(pkey);
        return SL_EINVAL;
    }
    sl_auth_key *k = calloc(1, sizeof *k);
    if (!k) {
        EVP_PKEY_free(pkey);
        return SL_ENOMEM;
    }
    k->pkey = pkey;
    k->has_private = has_private;
    size_t len = sizeof k->pub;
    if (EVP_PKEY_get_raw_public_key(pkey, k->pub, &len) != 1 || len != sizeof k->pub) {
        ERR_clear_error();
        sl_auth_key_free(k);
        return SL_EIO;
    }
    int rc = sl__auth_thumbprint(k->pub, k->kid);
    if (rc != 0) {
        sl_auth_key_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

int sl_auth_key_generate(sl_auth_key **out)
{
    SL_ASSERT(out != NULL);
    *out = NULL;
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!pkey) {
        ERR_clear_error();
        return SL_EIO;
    }
    return wrap_pkey(pkey, true, out);
}

int sl_auth_key_from_seed(const uint8_t seed[SL_AUTH_SEED_BYTES], sl_auth_key **out)
{
    SL_ASSERT(seed != NULL && out != NULL);
    *out = NULL;
    EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, SL_AUTH_SEED_BYTES);
    if (!pkey) {
        ERR_clear_error();
        return SL_EIO;
    }
    return wrap_pkey(pkey, true, out);
}

int sl_auth_key_from_public(const uint8_t pub[SL_AUTH_PUBLIC_KEY_BYTES], const char *kid,
                            sl_auth_key **out)
{
    SL_ASSERT(pub != NULL && out != NULL);
    *out = NULL;
    if (kid && strlen(kid) > SL_AUTH_KID_MAX) return SL_EINVAL;
    EVP_PKEY *pkey =
        EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, SL_AUTH_PUBLIC_KEY_BYTES);
    if (!pkey) {
        ERR_clear_error();
        return SL_EINVAL;
    }
    int rc = wrap_pkey(pkey, false, out);
    if (rc == 0 && kid) memcpy((*out)->kid, kid, strlen(kid) + 1);
    return rc;
}

void sl_auth_key_free(sl_auth_key *key)
{
    if (!key) return;
    EVP_PKEY_free(key->pkey); /* OpenSSL cleanses the private key on free */
    free(key);
}

const uint8_t *sl_auth_key_public(const sl_auth_key *key)
{
    SL_ASSERT(key != NULL);
    return key->pub;
}

const char *sl_auth_key_kid(const sl_auth_key *key)
{
    SL_ASSERT(key != NULL);
    return key->kid;
}

bool sl_auth_key_has_private(const sl_auth_key *key)
{
    SL_ASSERT(key != NULL);
    return key->has_private;
}

/* PEM password callback that refuses: without it OpenSSL would prompt on the terminal for an
 * encrypted key. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* Reads at most `max` bytes of the regular file `fd` into `buf`. */
static int read_bounded(int fd, char *buf, size_t max, size_t *len)
{
    size_t n = 0;
    for (;;) {
        /* Ask for one byte more than allowed to notice a file that grew past the bound. */
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n > max) return SL_ELIMIT;
    }
    *len = n;
    return 0;
}

int sl_auth_key_load_pem(const char *path, sl_auth_key **out)
{
    SL_ASSERT(path != NULL && out != NULL);
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc;
    BIO *bio = NULL;
    char *buf = malloc(SL_AUTH_PEM_MAX_BYTES + 1);
    size_t len = 0;
    if (!buf) {
        rc = SL_ENOMEM;
        goto out;
    }
    rc = read_bounded(fd, buf, SL_AUTH_PEM_MAX_BYTES, &len);
    if (rc != 0) goto out;
    bio = BIO_new_mem_buf(buf, (int)len);
    if (!bio) {
        rc = SL_ENOMEM;
        goto out;
    }
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    if (!pkey) {
        ERR_clear_error();
        rc = SL_EPARSE;
        goto out;
    }
    rc = wrap_pkey(pkey, true, out);
out:
    BIO_free(bio);
    if (buf) OPENSSL_clear_free(buf, SL_AUTH_PEM_MAX_BYTES + 1);
    close(fd);
    return rc;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* fsyncs the directory holding `path`, so the rename itself survives a crash. */
static int sync_parent_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        memcpy(dir, ".", 2);
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int sl_auth_key_save_pem(const sl_auth_key *key, const char *path)
{
    SL_ASSERT(key != NULL && path != NULL);
    if (!key->has_private) return SL_EINVAL;
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof tmp) return -ENAMETOOLONG;

    int rc = 0, fd = -1;
    bool created = false;
    /* Secure-heap memory BIO: OpenSSL wipes the PEM text when it frees it. */
    BIO *bio = BIO_new(BIO_s_secmem());
    if (!bio) return SL_ENOMEM;
    /* PKCS#8 "BEGIN PRIVATE KEY", unencrypted: the file mode is the protection. */
    if (PEM_write_bio_PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL, NULL) != 1) {
        ERR_clear_error();
        rc = SL_EIO;
        goto out;
    }
    char *pem = NULL;
    long pem_len = BIO_get_mem_data(bio, &pem);
    if (pem_len <= 0) {
        rc = SL_EIO;
        goto out;
    }
    fd = mkstemp(tmp); /* creates the file 0600, O_EXCL */
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    created = true;
    if (fchmod(fd, 0600) != 0 || (rc = write_all(fd, pem, (size_t)pem_len)) != 0 ||
        fsync(fd) != 0) {
        if (rc == 0) rc = -errno;
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = -errno;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = -errno;
        goto out;
    }
    created = false;
    rc = sync_parent_dir(path);
out:
    if (fd >= 0) close(fd);
    if (created) unlink(tmp);
    BIO_free(bio);
    return rc;
}

int sl__auth_ed25519_sign(const sl_auth_key *key, const void *msg, size_t len,
                          uint8_t sig[SL_AUTH_SIGNATURE_BYTES])
{
    SL_ASSERT(key != NULL && key->has_private);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) return SL_ENOMEM;
    size_t sig_len = SL_AUTH_SIGNATURE_BYTES;
    int rc = 0;
    /* OpenSSL 3.0: the digest must be NULL for Ed25519, and only the one-shot call works. */
    if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key->pkey) != 1 ||
        EVP_DigestSign(ctx, sig, &sig_len, msg, len) != 1 || sig_len != SL_AUTH_SIGNATURE_BYTES) {
        ERR_clear_error();
        rc = SL_EIO;
    }
    EVP_MD_CTX_free(ctx);
    return rc;
}

int sl__auth_ed25519_verify(const sl_auth_key *key, const void *msg, size_t len,
                            const uint8_t sig[SL_AUTH_SIGNATURE_BYTES])
{
    SL_ASSERT(key != NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) return 0;
    int ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key->pkey) == 1 &&
             /* 1 = valid; 0 = bad signature; negative = error. Only 1 passes. */
             EVP_DigestVerify(ctx, sig, SL_AUTH_SIGNATURE_BYTES, msg, len) == 1;
    if (!ok) ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    return ok;
}
