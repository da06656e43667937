/*
 * The TLS engine: one SSL object between two memory BIOs. Network bytes are
 * fed in, plaintext comes out, and whatever OpenSSL wants to send (handshake
 * flights, records, alerts, tickets) waits in the output BIO until the
 * caller takes it. No socket and no loop, so nothing here blocks.
 */
#include "tls_int.h"

#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sl_tls_conn_new(sl_tls_ctx *ctx, sl_tls_conn **out)
{
    sl_tls_conn *c = calloc(1, sizeof *c);
    if (!c) return SL_ENOMEM;
    c->ssl = SSL_new(ctx->ssl);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (!c->ssl || !c->rbio || !c->wbio) {
        if (c->ssl) SSL_free(c->ssl);
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        free(c);
        ERR_clear_error();
        return SL_ENOMEM;
    }
    /* An empty input BIO means "wait for more", not end of stream. */
    BIO_set_mem_eof_return(c->rbio, -1);
    BIO_set_mem_eof_return(c->wbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    c->ctx = sl_tls_ctx_ref(ctx);
    SSL_set_ex_data(c->ssl, sl__tls_conn_index(), c);
    if (ctx->server) {
        SSL_set_accept_state(c->ssl);
    } else {
        SSL_set_connect_state(c->ssl);
        sl__tls_offer_session(ctx, c->ssl);
    }
    *out = c;
    return 0;
}

void sl_tls_conn_free(sl_tls_conn *c)
{
    if (!c) return;
    /* OpenSSL marks the session of a connection freed without a shutdown as not resumable;
     * a healthy connection closed by the pool (idle, keep-alive limit) keeps its ticket. */
    if (c->established && !c->failed)
        SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c->ssl);
    sl_tls_ctx_unref(c->ctx);
    free(c);
}

int sl_tls_conn_feed(sl_tls_conn *c, const void *data, size_t len)
{
    if (len == 0) return 0;
    size_t done = 0;
    if (BIO_write_ex(c->rbio, data, len, &done) != 1 || done != len) {
        ERR_clear_error();
        return SL_ENOMEM;
    }
    return 0;
}

/* Classifies an OpenSSL failure: the verify callback's reason first, then the error queue. */
static sl_tls_reason classify(sl_tls_conn *c, char *detail, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    detail[0] = '\0';
    if (e) ERR_error_string_n(e, detail, cap);
    if (c->reason != SL_TLS_OK) return c->reason;
    long vr = SSL_get_verify_result(c->ssl);
    if (vr != X509_V_OK) return sl_tls_reason_of_verify(vr);
    if (ERR_GET_LIB(e) != ERR_LIB_SSL) return SL_TLS_PROTOCOL;
    switch (ERR_GET_REASON(e)) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
        return SL_TLS_NO_CLIENT_CERT;
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        return SL_TLS_UNKNOWN_CA;
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
        return SL_TLS_EXPIRED;
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
        return SL_TLS_REVOKED;
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
        return SL_TLS_BAD_CERT;
    default:
        return SL_TLS_PROTOCOL;
    }
}

static int fail(sl_tls_conn *c)
{
    char detail[160];
    c->reason = classify(c, detail, sizeof detail);
    c->failed = true;
    ERR_clear_error();
    if (!c->counted) {
        c->counted = true;
        sl__tls_count_failure(c->ctx, c->reason, detail);
    }
    return SL_EIO;
}

/* After the handshake: the identity of a resumed session, and revocation re-checked. */
static int on_established(sl_tls_conn *c)
{
    c->resumed = SSL_session_reused(c->ssl) == 1;
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    if (peer) {
        char serial[64];
        sl__tls_cert_serial(peer, serial);
        if (sl_tls_revoked_has(&c->ctx->revoked, serial)) {
            c->reason = SL_TLS_REVOKED;
            return fail(c);
        }
        if (!c->peer[0]) (void)sl__tls_cert_service(peer, c->peer);
    }
    if (c->ctx->mesh && (c->ctx->require_client_cert || !c->ctx->server) && !c->peer[0]) {
        c->reason = peer ? SL_TLS_NO_IDENTITY : SL_TLS_NO_CLIENT_CERT;
        return fail(c);
    }
    c->established = true;
    sl__tls_count_handshake(c->ctx, c->resumed);
    return 0;
}

int sl_tls_conn_handshake(sl_tls_conn *c)
{
    if (c->failed) return SL_EIO;
    if (c->established) return 0;
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) return on_established(c);
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return SL_EAGAIN;
    return fail(c);
}

int sl_tls_conn_read(sl_tls_conn *c, void *buf, size_t cap, size_t *n)
{
    *n = 0;
    int rc = sl_tls_conn_handshake(c);
    if (rc != 0) return rc;
    ERR_clear_error();
    size_t got = 0;
    int r = SSL_read_ex(c->ssl, buf, cap, &got);
    if (r == 1) {
        *n = got;
        return 0;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return SL_EAGAIN;
    if (e == SSL_ERROR_ZERO_RETURN) return SL_ECLOSED;
    /* With TLS 1.3 a client finishes its handshake before the server has checked the
     * client's certificate: the server's refusal arrives here, as an alert. */
    return fail(c);
}

int sl_tls_conn_write(sl_tls_conn *c, const void *data, size_t len)
{
    if (c->failed) return SL_EIO;
    if (!c->established) return SL_ESTATE;
    if (len == 0) return 0;
    ERR_clear_error();
    size_t done = 0;
    if (SSL_write_ex(c->ssl, data, len, &done) != 1 || done != len) return fail(c);
    return 0;
}

void sl_tls_conn_shutdown(sl_tls_conn *c)
{
    if (!c->established || c->failed) return;
    ERR_clear_error();
    (void)SSL_shutdown(c->ssl);
    ERR_clear_error();
}

size_t sl_tls_conn_out_pending(const sl_tls_conn *c)
{
    return BIO_ctrl_pending(c->wbio);
}

size_t sl_tls_conn_out(sl_tls_conn *c, void *buf, size_t cap)
{
    size_t got = 0;
    if (cap == 0 || BIO_read_ex(c->wbio, buf, cap, &got) != 1) {
        ERR_clear_error();
        return 0;
    }
    return got;
}

bool sl_tls_conn_established(const sl_tls_conn *c)
{
    return c->established;
}

bool sl_tls_conn_resumed(const sl_tls_conn *c)
{
    return c->resumed;
}

sl_tls_reason sl_tls_conn_reason(const sl_tls_conn *c)
{
    return c->reason;
}

const char *sl_tls_conn_peer(const sl_tls_conn *c)
{
    return c->peer;
}

bool sl__tls_conn_has_input(const sl_tls_conn *c)
{
    return SSL_pending(c->ssl) > 0 || BIO_ctrl_pending(c->rbio) > 0;
}
