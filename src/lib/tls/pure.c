/*
 * The pure parts of the TLS module: refusal reasons, SPIFFE IDs and the
 * revocation list. No OpenSSL state, so unit tests and fuzz targets can use
 * them directly.
 */
#include "tls_int.h"

#include <openssl/x509_vfy.h>
#include <stdlib.h>
#include <string.h>

#define REVOKED_MAX    100000
#define SERIAL_HEX_MAX 40

static const char *const reason_names[SL_TLS_REASON_COUNT] = {
    [SL_TLS_OK] = "ok",
    [SL_TLS_NO_CLIENT_CERT] = "no_client_cert",
    [SL_TLS_UNKNOWN_CA] = "unknown_ca",
    [SL_TLS_EXPIRED] = "expired",
    [SL_TLS_NOT_YET_VALID] = "not_yet_valid",
    [SL_TLS_REVOKED] = "revoked",
    [SL_TLS_WRONG_SAN] = "wrong_san",
    [SL_TLS_NO_IDENTITY] = "no_identity",
    [SL_TLS_BAD_CERT] = "bad_cert",
    [SL_TLS_PROTOCOL] = "protocol",
};

const char *sl_tls_reason_name(sl_tls_reason r)
{
    if ((unsigned)r >= SL_TLS_REASON_COUNT) return "unknown";
    return reason_names[r];
}

sl_tls_reason sl_tls_reason_of_verify(long e)
{
    switch (e) {
    case X509_V_OK:
        return SL_TLS_OK;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CRL_HAS_EXPIRED:
        return SL_TLS_EXPIRED;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return SL_TLS_NOT_YET_VALID;
    case X509_V_ERR_CERT_REVOKED:
        return SL_TLS_REVOKED;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        return SL_TLS_UNKNOWN_CA;
    case X509_V_ERR_HOSTNAME_MISMATCH:
        return SL_TLS_WRONG_SAN;
    default:
        return SL_TLS_BAD_CERT;
    }
}

static bool name_ok(const char *s, size_t len)
{
    if (len == 0 || len > SL_TLS_NAME_MAX || s[0] == '-') return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-')) return false;
    }
    return true;
}

int sl_tls_spiffe_format(const char *name, char *out, size_t cap)
{
    if (!name || !name_ok(name, strlen(name))) return SL_EINVAL;
    size_t need = sizeof SL_TLS_SPIFFE_PREFIX - 1 + strlen(name) + 1;
    if (need > cap) return SL_ELIMIT;
    memcpy(out, SL_TLS_SPIFFE_PREFIX, sizeof SL_TLS_SPIFFE_PREFIX - 1);
    memcpy(out + sizeof SL_TLS_SPIFFE_PREFIX - 1, name, strlen(name) + 1);
    return 0;
}

int sl_tls_spiffe_parse(const char *uri, size_t len, char *out)
{
    size_t pl = sizeof SL_TLS_SPIFFE_PREFIX - 1;
    if (!uri || len <= pl || memcmp(uri, SL_TLS_SPIFFE_PREFIX, pl) != 0) return SL_EINVAL;
    if (!name_ok(uri + pl, len - pl)) return SL_EINVAL;
    memcpy(out, uri + pl, len - pl);
    out[len - pl] = '\0';
    return 0;
}

/* Normalises a hex serial: lowercase, no leading zeros ("0" for zero). Returns false if not hex. */
static bool norm_serial(const char *s, size_t len, char *out)
{
    if (len == 0 || len > SERIAL_HEX_MAX) return false;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'F') ch = (char)(ch - 'A' + 'a');
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return false;
        if (o == 0 && ch == '0') continue;
        out[o++] = ch;
    }
    if (o == 0) out[o++] = '0';
    out[o] = '\0';
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int sl_tls_revoked_parse(const char *text, size_t len, sl_tls_revoked *out, size_t *bad_line)
{
    memset(out, 0, sizeof *out);
    if (bad_line) *bad_line = 0;
    size_t cap = 0, line = 0, i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && text[j] != '\n')
            j++;
        line++;
        size_t a = i, b = j;
        for (size_t k = a; k < b; k++)
            if (text[k] == '#') {
                b = k;
                break;
            }
        while (a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r'))
            a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r'))
            b--;
        i = j + 1;
        if (a == b) continue;
        char norm[SERIAL_HEX_MAX + 1];
        if (!norm_serial(text + a, b - a, norm)) {
            if (bad_line) *bad_line = line;
            sl_tls_revoked_free(out);
            return SL_EPARSE;
        }
        if (out->n == REVOKED_MAX) {
            sl_tls_revoked_free(out);
            return SL_ELIMIT;
        }
        if (out->n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **n = realloc(out->serials, ncap * sizeof *n);
            if (!n) {
                sl_tls_revoked_free(out);
                return SL_ENOMEM;
            }
            out->serials = n;
            cap = ncap;
        }
        out->serials[out->n] = strdup(norm);
        if (!out->serials[out->n]) {
            sl_tls_revoked_free(out);
            return SL_ENOMEM;
        }
        out->n++;
    }
    if (out->n) qsort(out->serials, out->n, sizeof *out->serials, cmp_str);
    return 0;
}

bool sl_tls_revoked_has(const sl_tls_revoked *r, const char *serial_hex)
{
    char norm[SERIAL_HEX_MAX + 1];
    if (!r || r->n == 0 || !serial_hex || !norm_serial(serial_hex, strlen(serial_hex), norm))
        return false;
    const char *key = norm;
    return bsearch(&key, r->serials, r->n, sizeof *r->serials, cmp_str) != NULL;
}

void sl_tls_revoked_free(sl_tls_revoked *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->serials[i]);
    free(r->serials);
    r->serials = NULL;
    r->n = 0;
}
