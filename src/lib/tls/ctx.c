/*
 * TLS contexts: one SSL_CTX per loaded set of files, reference-counted so
 * that a reload (SIGHUP) gives new handshakes the new files while every
 * established connection keeps the context it started with.
 */
#include "tls_int.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REVOKED_FILE_MAX        (8 * 1024 * 1024)
#define TICKET_LIFETIME_DEFAULT 300

static pthread_mutex_t session_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;
static int conn_index = -1;

static void make_index(void)
{
    conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

int sl__tls_conn_index(void)
{
    pthread_once(&index_once, make_index);
    return conn_index;
}

static void set_err(char *err, size_t cap, const char *what, const char *path)
{
    if (!err || cap == 0) return;
    unsigned long e = ERR_peek_last_error();
    char ossl[160] = "";
    if (e) ERR_error_string_n(e, ossl, sizeof ossl);
    snprintf(err, cap, "%s%s%s%s%s", what, path ? " " : "", path ? path : "", ossl[0] ? ": " : "",
             ossl);
    ERR_clear_error();
}

int sl__tls_cert_service(X509 *cert, char *out)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (!names) return SL_ENOTFOUND;
    int rc = SL_ENOTFOUND;
    for (int i = 0; i < sk_GENERAL_NAME_num(names) && rc != 0; i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type != GEN_URI) continue;
        const ASN1_IA5STRING *u = gn->d.uniformResourceIdentifier;
        if (sl_tls_spiffe_parse((const char *)ASN1_STRING_get0_data(u),
                                (size_t)ASN1_STRING_length(u), out) == 0)
            rc = 0;
    }
    GENERAL_NAMES_free(names);
    return rc;
}

void sl__tls_cert_serial(X509 *cert, char *out)
{
    out[0] = '\0';
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    if (!bn) return;
    char *hex = BN_bn2hex(bn);
    if (hex) {
        size_t j = 0;
        const char *p = hex;
        while (*p == '0' && p[1]) /* BN_bn2hex pads to whole bytes */
            p++;
        for (; *p && j < 63; p++)
            out[j++] = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
        out[j] = '\0';
        OPENSSL_free(hex);
    }
    BN_free(bn);
}

/* Chain verification with the mesh's own checks on top: revocation and identity. */
static int verify_cb(int ok, X509_STORE_CTX *x)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    sl_tls_conn *c = ssl ? SSL_get_ex_data(ssl, sl__tls_conn_index()) : NULL;
    if (!c) return ok;
    if (!ok) {
        if (c->reason == SL_TLS_OK)
            c->reason = sl_tls_reason_of_verify(X509_STORE_CTX_get_error(x));
        return 0;
    }
    X509 *cert = X509_STORE_CTX_get_current_cert(x);
    char serial[64];
    sl__tls_cert_serial(cert, serial);
    if (sl_tls_revoked_has(&c->ctx->revoked, serial)) {
        X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REVOKED);
        if (c->reason == SL_TLS_OK) c->reason = SL_TLS_REVOKED;
        return 0;
    }
    if (X509_STORE_CTX_get_error_depth(x) != 0) return 1;
    char name[SL_TLS_NAME_MAX + 1];
    if (sl__tls_cert_service(cert, name) != 0) {
        if (!c->ctx->mesh) return 1;
        X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
        if (c->reason == SL_TLS_OK) c->reason = SL_TLS_NO_IDENTITY;
        return 0;
    }
    if (c->ctx->expect_peer[0] && strcmp(name, c->ctx->expect_peer) != 0) {
        X509_STORE_CTX_set_error(x, X509_V_ERR_HOSTNAME_MISMATCH);
        if (c->reason == SL_TLS_OK) c->reason = SL_TLS_WRONG_SAN;
        snprintf(c->peer, sizeof c->peer, "%s", name); /* for the log line */
        return 0;
    }
    snprintf(c->peer, sizeof c->peer, "%s", name);
    return 1;
}

/* Client: keeps the newest ticket so that the next connection resumes. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    sl_tls_conn *c = SSL_get_ex_data(ssl, sl__tls_conn_index());
    if (!c) return 0;
    pthread_mutex_lock(&session_mu);
    SSL_SESSION *old = c->ctx->session;
    c->ctx->session = sess;
    pthread_mutex_unlock(&session_mu);
    if (old) SSL_SESSION_free(old);
    return 1; /* we keep the reference */
}

void sl__tls_offer_session(sl_tls_ctx *ctx, SSL *ssl)
{
    pthread_mutex_lock(&session_mu);
    if (ctx->session && SSL_SESSION_is_resumable(ctx->session))
        (void)SSL_set_session(ssl, ctx->session);
    pthread_mutex_unlock(&session_mu);
}

static int load_revoked(sl_tls_ctx *ctx, const char *path, char *err, size_t errcap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return 0;
        snprintf(err ? err : (char[1]){0}, err ? errcap : 1, "cannot read %s", path);
        return SL_ECONFIG;
    }
    char *buf = malloc(REVOKED_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return SL_ENOMEM;
    }
    size_t n = fread(buf, 1, REVOKED_FILE_MAX + 1, f);
    fclose(f);
    if (n > REVOKED_FILE_MAX) {
        free(buf);
        if (err) snprintf(err, errcap, "%s: larger than %d bytes", path, REVOKED_FILE_MAX);
        return SL_ECONFIG;
    }
    size_t bad = 0;
    int rc = sl_tls_revoked_parse(buf, n, &ctx->revoked, &bad);
    free(buf);
    if (rc == SL_EPARSE || rc == SL_ELIMIT) {
        if (err) snprintf(err, errcap, "%s: line %zu is not a hex serial", path, bad);
        return SL_ECONFIG;
    }
    return rc;
}

static void ctx_free(sl_tls_ctx *ctx)
{
    if (ctx->ssl) SSL_CTX_free(ctx->ssl);
    if (ctx->session) SSL_SESSION_free(ctx->session);
    sl_tls_revoked_free(&ctx->revoked);
    if (ctx->counters && atomic_fetch_sub(&ctx->counters->refs, 1) == 1) free(ctx->counters);
    free(ctx);
}

static int ctx_load(const sl_tls_config *cfg, sl__tls_counters *counters, sl_tls_ctx **out,
                    char *err, size_t errcap)
{
    if (err && errcap) err[0] = '\0';
    if (!cfg || (cfg->server && (!cfg->cert_file || !cfg->key_file)) ||
        (!cfg->cert_file != !cfg->key_file) || (cfg->require_client_cert && !cfg->ca_file) ||
        (cfg->expect_peer && (cfg->server || !cfg->ca_file))) {
        if (err) snprintf(err, errcap, "incomplete TLS configuration");
        return SL_EINVAL;
    }
    char probe[SL_TLS_SPIFFE_MAX + 1];
    if (cfg->expect_peer && sl_tls_spiffe_format(cfg->expect_peer, probe, sizeof probe) != 0) {
        if (err)
            snprintf(err, errcap, "expected peer '%s' is not a service name", cfg->expect_peer);
        return SL_EINVAL;
    }
    sl_tls_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return SL_ENOMEM;
    atomic_init(&ctx->refs, 1);
    ctx->server = cfg->server;
    ctx->mesh = cfg->mesh;
    ctx->require_client_cert = cfg->require_client_cert;
    ctx->shard = cfg->shard;
    ctx->log = cfg->log;
    if (cfg->expect_peer)
        snprintf(ctx->expect_peer, sizeof ctx->expect_peer, "%s", cfg->expect_peer);
    if (counters) {
        atomic_fetch_add(&counters->refs, 1);
    } else {
        counters = calloc(1, sizeof *counters);
        if (!counters) {
            free(ctx);
            return SL_ENOMEM;
        }
        atomic_init(&counters->refs, 1);
    }
    ctx->counters = counters;
    int rc = SL_ECONFIG;
    ERR_clear_error();
    ctx->ssl = SSL_CTX_new(cfg->server ? TLS_server_method() : TLS_client_method());
    if (!ctx->ssl) {
        rc = SL_ENOMEM;
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx->ssl, cfg->mesh ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx->ssl, SSL_MODE_RELEASE_BUFFERS);
    if (cfg->cert_file) {
        if (SSL_CTX_use_certificate_chain_file(ctx->ssl, cfg->cert_file) != 1) {
            set_err(err, errcap, "cannot load certificate", cfg->cert_file);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx->ssl, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
            set_err(err, errcap, "cannot load key", cfg->key_file);
            goto fail;
        }
        if (SSL_CTX_check_private_key(ctx->ssl) != 1) {
            set_err(err, errcap, "key does not match certificate", cfg->key_file);
            goto fail;
        }
    }
    if (cfg->ca_file) {
        if (SSL_CTX_load_verify_locations(ctx->ssl, cfg->ca_file, NULL) != 1) {
            set_err(err, errcap, "cannot load CA bundle", cfg->ca_file);
            goto fail;
        }
        int mode = SSL_VERIFY_PEER;
        if (cfg->server && cfg->require_client_cert) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ctx->ssl, mode, verify_cb);
    } else {
        SSL_CTX_set_verify(ctx->ssl, SSL_VERIFY_NONE, NULL);
    }
    if (cfg->revoked_file) {
        rc = load_revoked(ctx, cfg->revoked_file, err, errcap);
        if (rc != 0) goto fail;
    }
    if (cfg->server) {
        /* Resumed sessions must belong to this application (required with client certs). */
        static const unsigned char sid_ctx[] = "shoal";
        SSL_CTX_set_session_id_context(ctx->ssl, sid_ctx, sizeof sid_ctx - 1);
        SSL_CTX_set_timeout(ctx->ssl, cfg->ticket_lifetime_s ? (long)cfg->ticket_lifetime_s
                                                             : TICKET_LIFETIME_DEFAULT);
        SSL_CTX_set_num_tickets(ctx->ssl, 1);
    } else {
        SSL_CTX_set_session_cache_mode(ctx->ssl,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx->ssl, new_session_cb);
    }
    if (cfg->metrics) {
        static const char *const fail_labels[] = {"reason"};
        static const char *const hs_labels[] = {"resumed"};
        int r1 =
            sl_metrics_counter(cfg->metrics, "tls_handshake_failures_total",
                               "TLS handshakes refused, by reason", fail_labels, 1, &ctx->fail_fam);
        if (r1 == SL_EEXIST)
            r1 = sl_metrics_family_find(cfg->metrics, "tls_handshake_failures_total",
                                        &ctx->fail_fam);
        int r2 = sl_metrics_counter(cfg->metrics, "tls_handshakes_total",
                                    "TLS handshakes completed, by session resumption", hs_labels, 1,
                                    &ctx->hs_fam);
        if (r2 == SL_EEXIST)
            r2 = sl_metrics_family_find(cfg->metrics, "tls_handshakes_total", &ctx->hs_fam);
        if (r1 != 0) ctx->fail_fam = NULL;
        if (r2 != 0) ctx->hs_fam = NULL;
    }
    *out = ctx;
    return 0;
fail:
    ERR_clear_error();
    ctx_free(ctx);
    return rc;
}

int sl_tls_ctx_new(const sl_tls_config *cfg, sl_tls_ctx **out, char *err, size_t errcap)
{
    return ctx_load(cfg, NULL, out, err, errcap);
}

int sl_tls_ctx_reload(const sl_tls_ctx *old, const sl_tls_config *cfg, sl_tls_ctx **out, char *err,
                      size_t errcap)
{
    return ctx_load(cfg, old ? old->counters : NULL, out, err, errcap);
}

sl_tls_ctx *sl_tls_ctx_ref(sl_tls_ctx *ctx)
{
    if (ctx) atomic_fetch_add(&ctx->refs, 1);
    return ctx;
}

void sl_tls_ctx_unref(sl_tls_ctx *ctx)
{
    if (ctx && atomic_fetch_sub(&ctx->refs, 1) == 1) ctx_free(ctx);
}

uint64_t sl_tls_ctx_failures(const sl_tls_ctx *ctx, sl_tls_reason r)
{
    if (!ctx || (unsigned)r >= SL_TLS_REASON_COUNT) return 0;
    return atomic_load(&ctx->counters->failures[r]);
}

uint64_t sl_tls_ctx_handshakes(const sl_tls_ctx *ctx, uint64_t *resumed)
{
    if (resumed) *resumed = ctx ? atomic_load(&ctx->counters->resumed) : 0;
    return ctx ? atomic_load(&ctx->counters->handshakes) : 0;
}

void sl__tls_count_failure(sl_tls_ctx *ctx, sl_tls_reason r, const char *detail)
{
    atomic_fetch_add(&ctx->counters->failures[r], 1);
    if (ctx->fail_fam) {
        const char *lv[] = {sl_tls_reason_name(r)};
        sl_series *s = sl_metric_series(ctx->fail_fam, lv);
        if (s) sl_counter_inc(s, ctx->shard);
    }
    if (ctx->log)
        SL_LOG_WARN(ctx->log, NULL, "tls handshake refused",
                    SL_LOG_STR("reason", sl_tls_reason_name(r)),
                    SL_LOG_STR("side", ctx->server ? "server" : "client"),
                    SL_LOG_STR("detail", detail ? detail : ""));
}

void sl__tls_count_handshake(sl_tls_ctx *ctx, bool resumed)
{
    atomic_fetch_add(&ctx->counters->handshakes, 1);
    if (resumed) atomic_fetch_add(&ctx->counters->resumed, 1);
    if (ctx->hs_fam) {
        const char *lv[] = {resumed ? "true" : "false"};
        sl_series *s = sl_metric_series(ctx->hs_fam, lv);
        if (s) sl_counter_inc(s, ctx->shard);
    }
}
