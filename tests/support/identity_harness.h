/*
 * Identity keys and proofs for tests, made the way `shoal up` makes them
 * (include/shoal/identity.h): a random master secret, and for the service
 * under test (`callee`) a key file with the edges gateway→callee (end-user
 * roles: customer, admin) and order→callee (`service`). Proofs are signed by
 * the gateway, or by the order service when the role is `service`, bound to
 * the full target, the Idempotency-Key and the body. For callee `order`, the
 * file also holds the saga's edges order→inventory and order→payment, which
 * fake participants verify with. Header-only.
 */
#ifndef SHOAL_TESTS_IDENTITY_HARNESS_H
#define SHOAL_TESTS_IDENTITY_HARNESS_H

#include <shoal/identity.h>
#include <shoal/rand.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct th_idkeys {
    sl_identity_keyring ring;
    sl_identity_key master;
    char callee[SL_IDENTITY_NAME_MAX + 1];
} th_idkeys;

/* Writes the key file of `callee` at `path` and keeps its edges in *k. Returns 0 or an error
 * (message in err, 256 bytes). */
static inline int th_idkeys_make(const char *path, const char *callee, th_idkeys *k, char *err)
{
    memset(k, 0, sizeof *k);
    snprintf(k->callee, sizeof k->callee, "%s", callee);
    if (sl_rand_secure_bytes(k->master.k, sizeof k->master.k) != 0) {
        snprintf(err, 256, "no randomness");
        return SL_EIO;
    }
    int rc =
        sl_identity_edge_derive(&k->master, "gateway", callee, "customer,admin", &k->ring.e[0]);
    if (rc == 0)
        rc = sl_identity_edge_derive(&k->master, "order", callee, "service", &k->ring.e[1]);
    if (rc != 0) {
        snprintf(err, 256, "bad callee name %s", callee);
        return rc;
    }
    k->ring.n = 2;
    if (strcmp(callee, "order") == 0) {
        rc = sl_identity_edge_derive(&k->master, "order", "inventory", "service", &k->ring.e[2]);
        if (rc == 0)
            rc = sl_identity_edge_derive(&k->master, "order", "payment", "service", &k->ring.e[3]);
        if (rc != 0) return rc;
        k->ring.n = 4;
    }
    return sl_identity_keyring_write(path, k->ring.e, k->ring.n, err);
}

/* The edge a test caller signs over: order's for `service`, else the gateway's. */
static inline const sl_identity_edge *th_idkeys_edge(const th_idkeys *k, const char *role)
{
    return &k->ring.e[strcmp(role, "service") == 0 ? 1 : 0];
}

/*
 * Signs (user, role) on `method` `target` (path and query as sent) with the Idempotency-Key
 * `idem` (NULL: none) and `body` (NULL: none) at `now_ms` with a random nonce. Returns 0 or
 * sl_identity_sign's error.
 */
static inline int th_idsign(const th_idkeys *k, const char *user, const char *role,
                            sl_http_method method, const char *target, const char *idem,
                            const char *body, size_t body_len, int64_t now_ms,
                            char proof[SL_IDENTITY_PROOF_MAX])
{
    uint8_t nonce[SL_IDENTITY_NONCE_BYTES];
    randombytes_buf(nonce, sizeof nonce);
    sl_identity_msg m = {.callee = k->callee,
                         .method = method,
                         .target = {target, strlen(target)},
                         .idempotency_key = {idem, idem ? strlen(idem) : 0},
                         .body = body,
                         .body_len = body ? body_len : 0};
    return sl_identity_sign(th_idkeys_edge(k, role), user, role, &m, now_ms, nonce, proof);
}

/* The value of the Idempotency-Key header among raw header lines `extra` ("Name: v\r\n..."),
 * copied into buf (cap bytes), or NULL. */
static inline const char *th_idem_of(const char *extra, char *buf, size_t cap)
{
    if (!extra) return NULL;
    for (const char *p = extra; *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > 16 && strncasecmp(p, "idempotency-key:", 16) == 0) {
            const char *v = p + 16;
            size_t vl = len - 16;
            while (vl && (*v == ' ' || *v == '\t')) {
                v++;
                vl--;
            }
            if (vl >= cap) vl = cap - 1;
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            return buf;
        }
        p += len + (eol ? 2 : 0);
    }
    return NULL;
}

#endif
