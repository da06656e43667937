/*
 * Mesh certificates: a self-signed CA and short-lived leaves carrying a
 * SPIFFE URI SAN, all ECDSA P-256 signed with SHA-256, as PEM in memory.
 * `shoal certs` writes them to files; tests and fuzz targets use them as is.
 */
#include "tls_int.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *bio_string(BIO *b)
{
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    if (n < 0) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    memcpy(s, p, (size_t)n);
    s[n] = '\0';
    return s;
}

static int to_pem(X509 *cert, EVP_PKEY *key, char **cert_pem, char **key_pem)
{
    BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
    int rc = SL_ENOMEM;
    if (cb && kb && PEM_write_bio_X509(cb, cert) == 1 &&
        PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) == 1) {
        *cert_pem = bio_string(cb);
        *key_pem = bio_string(kb);
        if (*cert_pem && *key_pem) {
            rc = 0;
        } else {
            free(*cert_pem);
            free(*key_pem);
            *cert_pem = *key_pem = NULL;
        }
    }
    BIO_free(cb);
    BIO_free(kb);
    return rc;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (!ext) return SL_EIO;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : SL_EIO;
}

/* A new certificate with a random positive 128-bit serial, the window and the subject CN. */
static X509 *new_cert(const char *cn, int64_t not_before, int64_t not_after, EVP_PKEY *key)
{
    X509 *x = X509_new();
    if (!x) return NULL;
    unsigned char sb[16];
    BIGNUM *bn = NULL;
    X509_NAME *name = X509_get_subject_name(x);
    if (RAND_bytes(sb, sizeof sb) != 1) goto fail;
    sb[0] = (unsigned char)((sb[0] & 0x7f) | 0x40); /* positive, always 16 bytes */
    bn = BN_bin2bn(sb, sizeof sb, NULL);
    if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) goto fail;
    if (X509_set_version(x, 2) != 1 || !ASN1_TIME_set(X509_getm_notBefore(x), (time_t)not_before) ||
        !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after) ||
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"shoal mesh", -1,
                                   -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                   0) != 1 ||
        X509_set_pubkey(x, key) != 1)
        goto fail;
    BN_free(bn);
    return x;
fail:
    BN_free(bn);
    X509_free(x);
    return NULL;
}

int sl_tls_pki_make_ca(const char *cn, int64_t not_before, int64_t not_after, char **cert_pem,
                       char **key_pem)
{
    *cert_pem = *key_pem = NULL;
    if (!cn || !cn[0] || strlen(cn) > 64 || not_after <= not_before) return SL_EINVAL;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (!key) {
        ERR_clear_error();
        return SL_EIO;
    }
    int rc = SL_EIO;
    X509 *x = new_cert(cn, not_before, not_after, key);
    if (x && X509_set_issuer_name(x, X509_get_subject_name(x)) == 1 &&
        add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") == 0 &&
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") == 0 &&
        add_ext(x, x, NID_subject_key_identifier, "hash") == 0 &&
        X509_sign(x, key, EVP_sha256()) > 0)
        rc = to_pem(x, key, cert_pem, key_pem);
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

int sl_tls_pki_issue(const char *ca_cert_pem, const char *ca_key_pem, const char *name,
                     int64_t not_before, int64_t not_after, char **cert_pem, char **key_pem,
                     char **serial_hex)
{
    *cert_pem = *key_pem = NULL;
    if (serial_hex) *serial_hex = NULL;
    char uri[SL_TLS_SPIFFE_MAX + 1], san[SL_TLS_SPIFFE_MAX + 8];
    if (sl_tls_spiffe_format(name, uri, sizeof uri) != 0 || not_after <= not_before)
        return SL_EINVAL;
    snprintf(san, sizeof san, "URI:%s", uri);
    BIO *cb = BIO_new_mem_buf(ca_cert_pem, -1), *kb = BIO_new_mem_buf(ca_key_pem, -1);
    X509 *ca = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *ca_key = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    BIO_free(cb);
    BIO_free(kb);
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    int rc = SL_EINVAL;
    if (!ca || !ca_key || X509_check_private_key(ca, ca_key) != 1) goto out;
    rc = SL_EIO;
    key = EVP_EC_gen("P-256");
    if (!key) goto out;
    x = new_cert(name, not_before, not_after, key);
    if (x && X509_set_issuer_name(x, X509_get_subject_name(ca)) == 1 &&
        add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
        add_ext(x, ca, NID_key_usage, "critical,digitalSignature") == 0 &&
        add_ext(x, ca, NID_ext_key_usage, "serverAuth,clientAuth") == 0 &&
        add_ext(x, ca, NID_subject_alt_name, san) == 0 &&
        add_ext(x, ca, NID_authority_key_identifier, "keyid") == 0 &&
        X509_sign(x, ca_key, EVP_sha256()) > 0) {
        rc = to_pem(x, key, cert_pem, key_pem);
        if (rc == 0 && serial_hex) {
            char s[64];
            sl__tls_cert_serial(x, s);
            *serial_hex = strdup(s);
            if (!*serial_hex) {
                free(*cert_pem);
                free(*key_pem);
                *cert_pem = *key_pem = NULL;
                rc = SL_ENOMEM;
            }
        }
    }
out:
    ERR_clear_error();
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    return rc;
}

static int64_t asn1_time_unix(const ASN1_TIME *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
    return (int64_t)timegm(&tm);
}

int sl_tls_pki_inspect(const char *pem, size_t len, sl_tls_cert_info *out)
{
    memset(out, 0, sizeof *out);
    if (len > INT32_MAX) return SL_EPARSE;
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    if (!b) return SL_ENOMEM;
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!x) {
        ERR_clear_error();
        return SL_EPARSE;
    }
    X509_NAME_oneline(X509_get_subject_name(x), out->subject, sizeof out->subject);
    X509_NAME_oneline(X509_get_issuer_name(x), out->issuer, sizeof out->issuer);
    char name[SL_TLS_NAME_MAX + 1];
    if (sl__tls_cert_service(x, name) == 0 &&
        sl_tls_spiffe_format(name, out->san, sizeof out->san) != 0)
        out->san[0] = '\0';
    sl__tls_cert_serial(x, out->serial);
    out->not_before = asn1_time_unix(X509_get0_notBefore(x));
    out->not_after = asn1_time_unix(X509_get0_notAfter(x));
    out->is_ca = X509_check_ca(x) > 0;
    X509_free(x);
    ERR_clear_error();
    return 0;
}
