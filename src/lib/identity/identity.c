/*
 * Signed identity headers (identity.h): HMAC-SHA256 (libsodium) over
 * "v1\n<ms>\n<user>\n<role>\n<METHOD>\n<path>".
 */
#include <shoal/identity.h>
#include <shoal/rand.h>

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* libsodium must be initialised before use; sodium_init is idempotent and thread-safe. */
static void sodium_ready(void)
{
    if (sodium_init() < 0)
        abort(); /* no usable randomness or CPU support: nothing secure can follow */
}

static int visible(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max) return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) return 0;
    return 1;
}

int sl_identity_key_load(const char *path, sl_identity_key *key, char *err)
{
    char buf[80];
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, 256, "%s: %s", path, strerror(errno));
        return SL_EIO;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    size_t bin_len = 0;
    if (n != 2 * SL_IDENTITY_KEY_BYTES ||
        sodium_hex2bin(key->k, sizeof key->k, buf, n, NULL, &bin_len, NULL) != 0 ||
        bin_len != SL_IDENTITY_KEY_BYTES) {
        snprintf(err, 256, "%s: not an identity key (64 hex characters expected)", path);
        sodium_memzero(buf, sizeof buf);
        return SL_EINVAL;
    }
    sodium_memzero(buf, sizeof buf);
    return 0;
}

int sl_identity_key_ensure(const char *path, sl_identity_key *key, char *err)
{
    sodium_ready();
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        if (errno == EEXIST) return sl_identity_key_load(path, key, err);
        snprintf(err, 256, "%s: %s", path, strerror(errno));
        return SL_EIO;
    }
    int rc = sl_rand_secure_bytes(key->k, sizeof key->k);
    char hex[2 * SL_IDENTITY_KEY_BYTES + 2];
    sodium_bin2hex(hex, sizeof hex, key->k, sizeof key->k);
    size_t len = strlen(hex);
    hex[len++] = '\n';
    if (rc != 0 || write(fd, hex, len) != (ssize_t)len || fsync(fd) != 0) {
        snprintf(err, 256, "%s: cannot write the key", path);
        close(fd);
        unlink(path);
        sodium_memzero(hex, sizeof hex);
        return SL_EIO;
    }
    close(fd);
    sodium_memzero(hex, sizeof hex);
    return 0;
}

static void mac_hex(const sl_identity_key *key, int64_t ms, const char *user, size_t ulen,
                    const char *role, size_t rlen, sl_http_method method, sl_slice path,
                    char out[2 * crypto_auth_hmacsha256_BYTES + 1])
{
    crypto_auth_hmacsha256_state st;
    char head[32];
    sodium_ready();
    int n = snprintf(head, sizeof head, "v1\n%lld\n", (long long)ms);
    const char *m = sl_http_method_name(method);
    crypto_auth_hmacsha256_init(&st, key->k, sizeof key->k);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)head, (size_t)n);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)user, ulen);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)"\n", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)role, rlen);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)"\n", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)m, strlen(m));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)"\n", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)path.ptr, path.len);
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(out, 2 * crypto_auth_hmacsha256_BYTES + 1, mac, sizeof mac);
}

int sl_identity_sign(const sl_identity_key *key, const char *user_id, const char *role,
                     sl_http_method method, sl_slice path, int64_t now_ms,
                     char out[SL_IDENTITY_PROOF_MAX])
{
    size_t ulen = strlen(user_id), rlen = strlen(role);
    if (!visible(user_id, ulen, SL_IDENTITY_ID_MAX) || !visible(role, rlen, SL_IDENTITY_ROLE_MAX) ||
        now_ms < 0)
        return SL_EINVAL;
    char mac[2 * crypto_auth_hmacsha256_BYTES + 1];
    mac_hex(key, now_ms, user_id, ulen, role, rlen, method, path, mac);
    snprintf(out, SL_IDENTITY_PROOF_MAX, "v1.%lld.%s", (long long)now_ms, mac);
    return 0;
}

int sl_identity_headers(const sl_identity_key *key, const char *user_id, const char *role,
                        sl_http_method method, sl_slice path, int64_t now_ms,
                        char proof[SL_IDENTITY_PROOF_MAX], sl_http_header out[SL_IDENTITY_NHEADERS])
{
    SL_ASSERT(key && user_id && role && proof && out);
    int rc = sl_identity_sign(key, user_id, role, method, path, now_ms, proof);
    if (rc != 0) return rc;
    out[0] = (sl_http_header){SL_SLICE_LIT("x-user-id"), {user_id, strlen(user_id)}};
    out[1] = (sl_http_header){SL_SLICE_LIT("x-user-role"), {role, strlen(role)}};
    out[2] = (sl_http_header){SL_SLICE_LIT("x-shoal-identity"), {proof, strlen(proof)}};
    return 0;
}

int sl_identity_verify(const sl_identity_key *key, const sl_http_header *headers, size_t nheaders,
                       sl_http_method method, sl_slice path, int64_t now_ms, int64_t max_age_ms,
                       sl_identity *out)
{
    sl_slice uid, role, proof;
    int have_u = sl_http_header_find(headers, nheaders, "x-user-id", &uid);
    int have_r = sl_http_header_find(headers, nheaders, "x-user-role", &role);
    int have_p = sl_http_header_find(headers, nheaders, "x-shoal-identity", &proof);
    if (!have_u && !have_r && !have_p) return SL_ENOTFOUND;
    if (!have_u || !have_r || !have_p || !visible(uid.ptr, uid.len, SL_IDENTITY_ID_MAX) ||
        !visible(role.ptr, role.len, SL_IDENTITY_ROLE_MAX))
        return SL_EINVAL;
    /* "v1." <digits> "." <64 hex> */
    if (proof.len < 3 + 1 + 1 + 64 || proof.len >= SL_IDENTITY_PROOF_MAX ||
        memcmp(proof.ptr, "v1.", 3) != 0)
        return SL_EINVAL;
    size_t i = 3;
    int64_t ms = 0;
    while (i < proof.len && proof.ptr[i] >= '0' && proof.ptr[i] <= '9' && i < 3 + 15)
        ms = ms * 10 + (proof.ptr[i++] - '0');
    if (i == 3 || i >= proof.len || proof.ptr[i] != '.' || proof.len - i - 1 != 64)
        return SL_EINVAL;
    if (ms < now_ms - max_age_ms || ms > now_ms + max_age_ms) return SL_EINVAL;
    char mac[2 * crypto_auth_hmacsha256_BYTES + 1];
    mac_hex(key, ms, uid.ptr, uid.len, role.ptr, role.len, method, path, mac);
    if (sodium_memcmp(mac, proof.ptr + i + 1, 64) != 0) return SL_EINVAL;
    memcpy(out->user_id, uid.ptr, uid.len);
    out->user_id[uid.len] = '\0';
    memcpy(out->role, role.ptr, role.len);
    out->role[role.len] = '\0';
    return 0;
}
