/* Internals of the TLS module shared between its files. */
#ifndef SHOAL_TLS_INT_H
#define SHOAL_TLS_INT_H

#include <shoal/log.h>
#include <shoal/metrics.h>
#include <shoal/tls.h>

#include <openssl/ssl.h>
#include <stdatomic.h>

/* Counters that survive reloads: every context reloaded from another shares them. */
typedef struct sl__tls_counters {
    atomic_uint refs;
    atomic_uint_least64_t failures[SL_TLS_REASON_COUNT];
    atomic_uint_least64_t handshakes, resumed;
} sl__tls_counters;

struct sl_tls_ctx {
    atomic_uint refs;
    SSL_CTX *ssl;
    bool server, mesh, require_client_cert;
    char expect_peer[SL_TLS_NAME_MAX + 1]; /* "" = any */
    sl_tls_revoked revoked;
    sl__tls_counters *counters;
    sl_metric_family *fail_fam, *hs_fam;
    unsigned shard;
    sl_logger *log;
    /* Client: the newest session ticket, offered by the next connection. */
    SSL_SESSION *session;
};

struct sl_tls_conn {
    sl_tls_ctx *ctx;
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    bool established, failed, counted, resumed;
    sl_tls_reason reason;
    char peer[SL_TLS_NAME_MAX + 1];
};

/* The ex_data index of an SSL's sl_tls_conn (set up once). */
int sl__tls_conn_index(void);

/* Counts and logs one refusal on `ctx`; `peer` may be "". */
void sl__tls_count_failure(sl_tls_ctx *ctx, sl_tls_reason r, const char *detail);
/* Counts one completed handshake. */
void sl__tls_count_handshake(sl_tls_ctx *ctx, bool resumed);

/* The service name in `cert`'s SPIFFE URI SAN into `out` (SL_TLS_NAME_MAX + 1 bytes). Returns 0,
 * SL_ENOTFOUND when it has none. */
int sl__tls_cert_service(X509 *cert, char *out);

/* The lowercase hex serial of `cert` without leading zeros into `out` (64 bytes). */
void sl__tls_cert_serial(X509 *cert, char *out);

/* Client: offers the context's newest session ticket to `ssl`. */
void sl__tls_offer_session(sl_tls_ctx *ctx, SSL *ssl);

/* True when plaintext or unread records are buffered. */
bool sl__tls_conn_has_input(const sl_tls_conn *c);

#endif
