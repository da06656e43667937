/*
 * TLS for libshoal: OpenSSL 3 over libuv streams through memory BIOs, and
 * the mesh's identities (X.509 leaves whose URI SAN is
 * spiffe://shoal.local/svc/<name>, verified against the mesh CA bundle).
 *
 * Three layers:
 *   - sl_tls_ctx: a reference-counted context (one SSL_CTX plus the
 *     revocation list and the expected peer). Reloading certificates makes a
 *     new context; connections keep the one they started with.
 *   - sl_tls_conn: the engine. Network bytes in (sl_tls_conn_feed), plaintext
 *     out (sl_tls_conn_read), and the reverse (sl_tls_conn_write, then
 *     sl_tls_conn_out). No socket, no loop, no blocking: tests and fuzz
 *     targets pair two engines in memory.
 *   - sl_tls_stream: the engine wrapped around a connected uv_stream_t, with
 *     the read/write/shutdown/close calls of libuv, so that the HTTP server
 *     and client keep their read and write paths and only swap the calls.
 *
 * Threading: a context may be shared by loops (its reference count is
 * atomic); an engine or a stream belongs to one loop thread.
 */
#ifndef SHOAL_TLS_H
#define SHOAL_TLS_H

#include <shoal/common.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct sl_metrics sl_metrics;
typedef struct sl_logger sl_logger;

/* The trust domain of the mesh and the prefix of every service identity. */
#define SL_TLS_SPIFFE_PREFIX "spiffe://shoal.local/svc/"
/* Longest service name in an identity (the same alphabet as service names). */
#define SL_TLS_NAME_MAX 63
/* Longest SPIFFE ID this module writes or accepts. */
#define SL_TLS_SPIFFE_MAX (sizeof SL_TLS_SPIFFE_PREFIX - 1 + SL_TLS_NAME_MAX)

/* Why a handshake was refused; the label of tls_handshake_failures_total{reason}. */
typedef enum sl_tls_reason {
    SL_TLS_OK = 0,
    SL_TLS_NO_CLIENT_CERT, /* "no_client_cert": the client sent no certificate */
    SL_TLS_UNKNOWN_CA,     /* "unknown_ca": not signed by a CA of the bundle */
    SL_TLS_EXPIRED,        /* "expired": past its notAfter */
    SL_TLS_NOT_YET_VALID,  /* "not_yet_valid": before its notBefore */
    SL_TLS_REVOKED,        /* "revoked": its serial is in the revocation list */
    SL_TLS_WRONG_SAN,      /* "wrong_san": another service than the one expected */
    SL_TLS_NO_IDENTITY,    /* "no_identity": no spiffe://shoal.local/svc/ URI SAN */
    SL_TLS_BAD_CERT,       /* "bad_cert": any other verification failure */
    SL_TLS_PROTOCOL,       /* "protocol": not TLS, old version, an alert, a bad record */
    SL_TLS_REASON_COUNT
} sl_tls_reason;

/* Returns the label of `r` ("expired"...), static storage. */
SL_API const char *sl_tls_reason_name(sl_tls_reason r);

/*
 * Maps an X509_V_ERR_* code of OpenSSL's chain verification to a reason
 * (X509_V_OK gives SL_TLS_OK). Pure.
 */
SL_API sl_tls_reason sl_tls_reason_of_verify(long x509_err);

/*
 * Writes "spiffe://shoal.local/svc/<name>" into `out` (`cap` bytes). `name`:
 * 1..SL_TLS_NAME_MAX of [a-z0-9-], not starting with '-'. Returns 0,
 * SL_EINVAL for another name, SL_ELIMIT when `out` is too small.
 */
SL_API int sl_tls_spiffe_format(const char *name, char *out, size_t cap) SL_MUST_CHECK;

/*
 * Reads the service name out of a SPIFFE ID (`uri`, `len` bytes, not
 * NUL-terminated) into `out` (SL_TLS_NAME_MAX + 1 bytes). Returns 0, or
 * SL_EINVAL when it is not exactly the prefix above and a valid name.
 */
SL_API int sl_tls_spiffe_parse(const char *uri, size_t len, char *out) SL_MUST_CHECK;

/* A set of revoked certificate serial numbers (lowercase hex, no leading zeros). */
typedef struct sl_tls_revoked {
    char **serials; /* owned, sorted */
    size_t n;
} sl_tls_revoked;

/*
 * Parses a revocation list: one serial in hex per line, '#' starts a
 * comment, blank lines ignored; at most 100,000 entries of 40 hex digits.
 * Returns 0 and fills `out` (free with sl_tls_revoked_free), SL_EPARSE with
 * the 1-based line in *bad_line, SL_ELIMIT, SL_ENOMEM.
 */
SL_API int sl_tls_revoked_parse(const char *text, size_t len, sl_tls_revoked *out,
                                size_t *bad_line) SL_MUST_CHECK;
/* Returns true when `serial_hex` (any case, leading zeros allowed) is in the set. */
SL_API bool sl_tls_revoked_has(const sl_tls_revoked *r, const char *serial_hex);
SL_API void sl_tls_revoked_free(sl_tls_revoked *r);

/* ---- contexts ---------------------------------------------------------- */

typedef struct sl_tls_ctx sl_tls_ctx;

typedef struct sl_tls_config {
    bool server;                /* a listener's context; false: a client's */
    const char *cert_file;      /* PEM leaf (then its chain); required on a server */
    const char *key_file;       /* PEM private key of cert_file */
    const char *ca_file;        /* PEM bundle of trusted CAs; required to verify peers */
    const char *revoked_file;   /* optional revocation list (format above); absent file = none */
    bool require_client_cert;   /* server: refuse clients without a valid certificate */
    bool mesh;                  /* TLS 1.3 only, and the peer must carry a mesh identity */
    const char *expect_peer;    /* client: the service name the server must have; NULL = any */
    uint32_t ticket_lifetime_s; /* server: session tickets' lifetime; 0 = 300 s */
    sl_metrics *metrics;        /* NULL = not counted; tls_handshake_failures_total{reason},
                                   tls_handshakes_total{resumed} */
    unsigned shard;             /* metrics shard of the loop using the context */
    sl_logger *log;             /* NULL = refusals are not logged */
} sl_tls_config;

/*
 * Loads a context from files. Every string is copied or read now. Returns 0
 * and *out (one reference; sl_tls_ctx_unref), SL_EINVAL for a missing field,
 * SL_ECONFIG when a file cannot be read or the key does not match (the
 * reason in `err`, `errcap` bytes, when given), SL_ENOMEM.
 */
SL_API int sl_tls_ctx_new(const sl_tls_config *cfg, sl_tls_ctx **out, char *err,
                          size_t errcap) SL_MUST_CHECK;
SL_API sl_tls_ctx *sl_tls_ctx_ref(sl_tls_ctx *ctx);
SL_API void sl_tls_ctx_unref(sl_tls_ctx *ctx);
/* Handshakes that failed, per reason, on every connection of `ctx` and of the contexts
 * it was reloaded from (sl_tls_ctx_reload). */
SL_API uint64_t sl_tls_ctx_failures(const sl_tls_ctx *ctx, sl_tls_reason r);
/* Completed handshakes on `ctx`; *resumed (may be NULL) gets how many resumed a session. */
SL_API uint64_t sl_tls_ctx_handshakes(const sl_tls_ctx *ctx, uint64_t *resumed);

/*
 * Loads `cfg` again (after the files changed: renewal, rotation, revocation)
 * into a new context that continues the counters of `old`. Returns 0 and the
 * new context in *out, or an error from sl_tls_ctx_new (then `old` is still
 * the one to use). `old` is borrowed: the caller swaps and unrefs it.
 */
SL_API int sl_tls_ctx_reload(const sl_tls_ctx *old, const sl_tls_config *cfg, sl_tls_ctx **out,
                             char *err, size_t errcap) SL_MUST_CHECK;

/* ---- engine ------------------------------------------------------------ */

typedef struct sl_tls_conn sl_tls_conn;

/* A new engine on `ctx` (takes a reference). Returns 0 and *out, or SL_ENOMEM. */
SL_API int sl_tls_conn_new(sl_tls_ctx *ctx, sl_tls_conn **out) SL_MUST_CHECK;
SL_API void sl_tls_conn_free(sl_tls_conn *c);

/* Network bytes in (borrowed, copied). Returns 0 or SL_ENOMEM. */
SL_API int sl_tls_conn_feed(sl_tls_conn *c, const void *data, size_t len) SL_MUST_CHECK;

/*
 * Advances the handshake with what was fed. Returns 0 once it is complete
 * (the peer verified), SL_EAGAIN when more network bytes are needed, SL_EIO
 * when it failed (sl_tls_conn_reason says why; counted and logged once).
 */
SL_API int sl_tls_conn_handshake(sl_tls_conn *c) SL_MUST_CHECK;

/*
 * Decrypts into `buf` (`cap` bytes). Returns 0 with *n > 0, SL_EAGAIN when
 * no whole record is buffered, SL_ECLOSED after the peer's close_notify,
 * SL_EIO on a failure (handshake included).
 */
SL_API int sl_tls_conn_read(sl_tls_conn *c, void *buf, size_t cap, size_t *n) SL_MUST_CHECK;

/* Encrypts `len` bytes (handshake complete). Returns 0, SL_ESTATE before it, SL_EIO. */
SL_API int sl_tls_conn_write(sl_tls_conn *c, const void *data, size_t len) SL_MUST_CHECK;

/* Queues a close_notify alert. */
SL_API void sl_tls_conn_shutdown(sl_tls_conn *c);

/* Bytes waiting to go to the network. */
SL_API size_t sl_tls_conn_out_pending(const sl_tls_conn *c);
/* Moves up to `cap` of them into `buf`; returns how many. */
SL_API size_t sl_tls_conn_out(sl_tls_conn *c, void *buf, size_t cap);

SL_API bool sl_tls_conn_established(const sl_tls_conn *c);
SL_API bool sl_tls_conn_resumed(const sl_tls_conn *c);
SL_API sl_tls_reason sl_tls_conn_reason(const sl_tls_conn *c);
/* The verified peer's service name ("" when it showed no mesh identity); valid until free. */
SL_API const char *sl_tls_conn_peer(const sl_tls_conn *c);

/* ---- libuv streams ------------------------------------------------------ */

typedef struct sl_tls_stream sl_tls_stream;

/*
 * Wraps `stream`, connected or accepted, in TLS on `ctx` (takes a reference).
 * While wrapped, stream->data belongs to the wrapper; the callbacks given to
 * the calls below see the stream with the data it had before (restored
 * around each callback and for good by sl_tls_stream_close). Returns 0 and
 * *out, or SL_ENOMEM.
 */
SL_API int sl_tls_stream_new(sl_tls_ctx *ctx, uv_stream_t *stream,
                             sl_tls_stream **out) SL_MUST_CHECK;

/* Like uv_read_start / uv_read_stop, with plaintext. A failed handshake reads as UV_EPROTO. */
SL_API int sl_tls_stream_read_start(sl_tls_stream *ts, uv_alloc_cb alloc_cb, uv_read_cb read_cb);
SL_API int sl_tls_stream_read_stop(sl_tls_stream *ts);

/*
 * Like uv_try_write: encrypts everything and returns its plaintext length
 * (the wrapper writes what the socket did not take), or UV_EAGAIN before the
 * handshake completed or while earlier ciphertext still waits for the
 * socket (then use sl_tls_stream_write, whose callback tracks it).
 */
SL_API int sl_tls_stream_try_write(sl_tls_stream *ts, const uv_buf_t bufs[], unsigned nbufs);

/* Like uv_write; before the handshake completes the bytes wait for it. `bufs` is copied. */
SL_API int sl_tls_stream_write(sl_tls_stream *ts, uv_write_t *req, const uv_buf_t bufs[],
                               unsigned nbufs, uv_write_cb cb);

/* Sends close_notify, then like uv_shutdown. */
SL_API int sl_tls_stream_shutdown(sl_tls_stream *ts, uv_shutdown_t *req, uv_shutdown_cb cb);

/* Closes the stream (uv_close) and frees the wrapper; `cb` sees the original data. */
SL_API void sl_tls_stream_close(sl_tls_stream *ts, uv_close_cb cb);

/* The engine (peer identity, reason, resumption). */
SL_API const sl_tls_conn *sl_tls_stream_conn(const sl_tls_stream *ts);

/* ---- mesh certificates (used by `shoal certs`, tests and fuzz targets) --- */

/*
 * Makes a self-signed mesh CA (ECDSA P-256) with common name `cn`, valid from
 * `not_before` to `not_after` (Unix seconds). Writes PEM into *cert_pem and
 * *key_pem (owned, free()). Returns 0, SL_EINVAL, SL_ENOMEM or SL_EIO.
 */
SL_API int sl_tls_pki_make_ca(const char *cn, int64_t not_before, int64_t not_after,
                              char **cert_pem, char **key_pem) SL_MUST_CHECK;

/*
 * Issues a leaf for service `name` (CN = name, URI SAN = its SPIFFE ID,
 * serverAuth and clientAuth) signed by the CA (`ca_cert_pem`, `ca_key_pem`),
 * with a random 128-bit serial. *serial_hex (may be NULL) gets the serial
 * (owned, free()). Returns 0, SL_EINVAL (a bad name, CA or window), SL_ENOMEM,
 * SL_EIO.
 */
SL_API int sl_tls_pki_issue(const char *ca_cert_pem, const char *ca_key_pem, const char *name,
                            int64_t not_before, int64_t not_after, char **cert_pem, char **key_pem,
                            char **serial_hex) SL_MUST_CHECK;

/* What sl_tls_pki_inspect reads out of a PEM certificate. */
typedef struct sl_tls_cert_info {
    char subject[256];
    char issuer[256];
    char san[SL_TLS_SPIFFE_MAX + 1]; /* the first URI SAN, "" when none */
    char serial[64];                 /* lowercase hex */
    int64_t not_before, not_after;   /* Unix seconds */
    bool is_ca;
} sl_tls_cert_info;

/* Reads the first certificate of `pem`. Returns 0, SL_EPARSE or SL_ENOMEM. */
SL_API int sl_tls_pki_inspect(const char *pem, size_t len, sl_tls_cert_info *out) SL_MUST_CHECK;

#endif /* SHOAL_TLS_H */
