/*
 * Signed identity headers (identity.h): HMAC-SHA256 (libsodium, like the
 * rest of the module) under the edge's key over
 *   "shoal-identity-v2\n" caller "\n" callee "\n" ms "\n" nonce "\n" user "\n"
 *   role "\n" METHOD "\n" target "\n" idempotency key "\n" hex(SHA-256(body))
 * Every field is free of "\n" (names, ids and roles are checked; a target
 * and an idempotency key are header-safe text), so the message parses one
 * way only. Edge keys: HMAC-SHA256(master, "shoal-identity-v2|" caller "|"
 * callee). The replay cache is an open-addressed table probed a bounded
 * number of slots.
 */
#include <shoal/identity.h>
#include <shoal/rand.h>
#include <shoal/retry.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

int sl_identity_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > SL_IDENTITY_NAME_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return 0;
    }
    return 1;
}

/* "*" or "role[,role...]" of visible ASCII without commas in a role. */
static int roles_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > SL_IDENTITY_ROLES_MAX) return 0;
    if (strcmp(s, "*") == 0) return 1;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == ',') {
            if (!visible(s + start, i - start, SL_IDENTITY_ROLE_MAX)) return 0;
            start = i + 1;
        }
    }
    return 1;
}

int sl_identity_edge_derive(const sl_identity_key *master, const char *caller, const char *callee,
                            const char *roles, sl_identity_edge *out)
{
    SL_ASSERT(master && caller && callee && roles && out);
    if (!sl_identity_name_valid(caller, strlen(caller)) ||
        !sl_identity_name_valid(callee, strlen(callee)) || !roles_valid(roles))
        return SL_EINVAL;
    sodium_ready();
    memset(out, 0, sizeof *out);
    snprintf(out->caller, sizeof out->caller, "%.31s", caller);
    snprintf(out->callee, sizeof out->callee, "%.31s", callee);
    snprintf(out->roles, sizeof out->roles, "%.63s", roles);
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, master->k, sizeof master->k);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)"shoal-identity-v2|", 18);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)caller, strlen(caller));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)"|", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)callee, strlen(callee));
    crypto_auth_hmacsha256_final(&st, out->key.k);
    sodium_memzero(&st, sizeof st);
    return 0;
}

int sl_identity_keyring_write(const char *path, const sl_identity_edge *edges, size_t n, char *err)
{
    if (n > SL_IDENTITY_EDGES_MAX) {
        snprintf(err, 256, "%s: more than %d identity edges", path, SL_IDENTITY_EDGES_MAX);
        return SL_ELIMIT;
    }
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        snprintf(err, 256, "identity key file path too long");
        return SL_EIO;
    }
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, 256, "%.200s: %s", tmp, strerror(errno));
        return SL_EIO;
    }
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        char hex[2 * SL_IDENTITY_KEY_BYTES + 1], line[256];
        sodium_bin2hex(hex, sizeof hex, edges[i].key.k, sizeof edges[i].key.k);
        int len = snprintf(line, sizeof line, "v2 %s %s %s %s\n", edges[i].caller, edges[i].callee,
                           edges[i].roles, hex);
        ok = len > 0 && len < (int)sizeof line && write(fd, line, (size_t)len) == len;
        sodium_memzero(hex, sizeof hex);
        sodium_memzero(line, sizeof line);
    }
    ok = ok && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, 256, "%s: cannot write the identity keys", path);
        unlink(tmp);
        return SL_EIO;
    }
    return 0;
}

int sl_identity_keyring_load(const char *path, sl_identity_keyring *ring, char *err)
{
    memset(ring, 0, sizeof *ring);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, 256, "%s: %s", path, strerror(errno));
        return SL_EIO;
    }
    char line[256];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char caller[64], callee[64], roles[80], hex[80];
        if (line[0] == '\n' || line[0] == '#') continue;
        size_t bin_len = 0;
        if (ring->n == SL_IDENTITY_EDGES_MAX) {
            rc = SL_EINVAL;
        } else if (sscanf(line, "v2 %63s %63s %79s %79s", caller, callee, roles, hex) != 4 ||
                   strlen(hex) != 2 * SL_IDENTITY_KEY_BYTES ||
                   !sl_identity_name_valid(caller, strlen(caller)) ||
                   !sl_identity_name_valid(callee, strlen(callee)) || !roles_valid(roles)) {
            rc = SL_EINVAL;
        } else {
            sl_identity_edge *e = &ring->e[ring->n];
            if (sodium_hex2bin(e->key.k, sizeof e->key.k, hex, strlen(hex), NULL, &bin_len, NULL) !=
                    0 ||
                bin_len != SL_IDENTITY_KEY_BYTES) {
                rc = SL_EINVAL;
            } else {
                snprintf(e->caller, sizeof e->caller, "%.31s", caller);
                snprintf(e->callee, sizeof e->callee, "%.31s", callee);
                snprintf(e->roles, sizeof e->roles, "%.63s", roles);
                ring->n++;
            }
        }
        sodium_memzero(hex, sizeof hex);
        sodium_memzero(line, sizeof line);
    }
    fclose(f);
    if (rc != 0) {
        snprintf(err, 256,
                 "%s:%d: not an identity edge (\"v2 <caller> <callee> <roles> <64 hex>\")", path,
                 lineno);
        sodium_memzero(ring, sizeof *ring);
    }
    return rc;
}

const sl_identity_edge *sl_identity_keyring_find(const sl_identity_keyring *ring,
                                                 const char *caller, size_t caller_len,
                                                 const char *callee)
{
    for (size_t i = 0; i < ring->n; i++) {
        const sl_identity_edge *e = &ring->e[i];
        if (strlen(e->caller) == caller_len && memcmp(e->caller, caller, caller_len) == 0 &&
            strcmp(e->callee, callee) == 0)
            return e;
    }
    return NULL;
}

int sl_identity_edge_allows(const sl_identity_edge *edge, const char *role, size_t len)
{
    if (strcmp(edge->roles, "*") == 0) return 1;
    const char *p = edge->roles;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == len && memcmp(p, role, len) == 0) return 1;
        if (!comma) return 0;
        p = comma + 1;
    }
}

static void upd(crypto_auth_hmacsha256_state *st, const void *p, size_t n)
{
    crypto_auth_hmacsha256_update(st, (const unsigned char *)p, n);
    crypto_auth_hmacsha256_update(st, (const unsigned char *)"\n", 1);
}

/* The MAC of a proof, as 64 hex characters and a NUL. */
static void mac_hex(const sl_identity_edge *edge, int64_t ms, const char *nonce_hex,
                    const char *user, size_t ulen, const char *role, size_t rlen,
                    const sl_identity_msg *m, char out[2 * crypto_auth_hmacsha256_BYTES + 1])
{
    sodium_ready();
    /* SHA-256 of the empty body (most calls: every GET), spared on the gateway's path. */
    static const char empty_hex[] =
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    unsigned char digest[crypto_hash_sha256_BYTES];
    char digest_hex[2 * crypto_hash_sha256_BYTES + 1];
    if (m->body_len == 0) {
        memcpy(digest_hex, empty_hex, sizeof digest_hex);
    } else {
        crypto_hash_sha256(digest, (const unsigned char *)m->body, m->body_len);
        sodium_bin2hex(digest_hex, sizeof digest_hex, digest, sizeof digest);
    }
    char ms_text[24];
    int n = snprintf(ms_text, sizeof ms_text, "%lld", (long long)ms);
    const char *meth = sl_http_method_name(m->method);
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, edge->key.k, sizeof edge->key.k);
    upd(&st, "shoal-identity-v2", 17);
    upd(&st, edge->caller, strlen(edge->caller));
    upd(&st, edge->callee, strlen(edge->callee));
    upd(&st, ms_text, (size_t)n);
    upd(&st, nonce_hex, 2 * SL_IDENTITY_NONCE_BYTES);
    upd(&st, user, ulen);
    upd(&st, role, rlen);
    upd(&st, meth, strlen(meth));
    upd(&st, m->target.ptr, m->target.len);
    upd(&st, m->idempotency_key.ptr, m->idempotency_key.len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)digest_hex, 64);
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(out, 2 * crypto_auth_hmacsha256_BYTES + 1, mac, sizeof mac);
}

/* Text a proof may bind: no newline (it separates the fields). */
static int bindable(sl_slice s)
{
    return s.len == 0 || memchr(s.ptr, '\n', s.len) == NULL;
}

int sl_identity_sign(const sl_identity_edge *edge, const char *user_id, const char *role,
                     const sl_identity_msg *m, int64_t now_ms,
                     const uint8_t nonce[SL_IDENTITY_NONCE_BYTES], char out[SL_IDENTITY_PROOF_MAX])
{
    SL_ASSERT(edge && user_id && role && m && nonce && out);
    size_t ulen = strlen(user_id), rlen = strlen(role);
    if (!visible(user_id, ulen, SL_IDENTITY_ID_MAX) || !visible(role, rlen, SL_IDENTITY_ROLE_MAX) ||
        now_ms < 0 || !m->callee || strcmp(m->callee, edge->callee) != 0 || !bindable(m->target) ||
        !bindable(m->idempotency_key))
        return SL_EINVAL;
    char nonce_hex[2 * SL_IDENTITY_NONCE_BYTES + 1];
    sodium_bin2hex(nonce_hex, sizeof nonce_hex, nonce, SL_IDENTITY_NONCE_BYTES);
    char mac[2 * crypto_auth_hmacsha256_BYTES + 1];
    mac_hex(edge, now_ms, nonce_hex, user_id, ulen, role, rlen, m, mac);
    snprintf(out, SL_IDENTITY_PROOF_MAX, "v2.%s.%lld.%s.%s", edge->caller, (long long)now_ms,
             nonce_hex, mac);
    return 0;
}

int sl_identity_headers(const sl_identity_edge *edge, const char *user_id, const char *role,
                        const sl_identity_msg *m, int64_t now_ms, char proof[SL_IDENTITY_PROOF_MAX],
                        sl_http_header out[SL_IDENTITY_NHEADERS])
{
    SL_ASSERT(edge && user_id && role && m && proof && out);
    /* The nonce must be unique, not secret (it travels in the header and the MAC covers it):
     * a per-thread generator seeded by the OS gives 96 bits without a system call per request
     * (getrandom per call cost more than the MAC on the gateway's path). */
    static _Thread_local sl_rand gen;
    static _Thread_local int seeded;
    if (!seeded) {
        if (sl_rand_seed_os(&gen) != 0) abort(); /* no OS randomness: nothing secure can follow */
        seeded = 1;
    }
    uint64_t a = sl_rand_next(&gen), b = sl_rand_next(&gen);
    uint8_t nonce[SL_IDENTITY_NONCE_BYTES];
    memcpy(nonce, &a, 8);
    memcpy(nonce + 8, &b, 4);
    int rc = sl_identity_sign(edge, user_id, role, m, now_ms, nonce, proof);
    if (rc != 0) return rc;
    out[0] = (sl_http_header){SL_SLICE_LIT("x-user-id"), {user_id, strlen(user_id)}};
    out[1] = (sl_http_header){SL_SLICE_LIT("x-user-role"), {role, strlen(role)}};
    out[2] = (sl_http_header){SL_SLICE_LIT("x-shoal-identity"), {proof, strlen(proof)}};
    return 0;
}

/* ---- replay cache -----------------------------------------------------------------------------
 */

#define REPLAY_PROBES 64 /* slots a nonce may use: bounds the work per check */

typedef struct replay_slot {
    uint8_t nonce[SL_IDENTITY_NONCE_BYTES];
    int64_t expires_ms; /* 0: never used */
} replay_slot;

struct sl_identity_replay {
    pthread_mutex_t mu;
    size_t mask;
    replay_slot *slots;
};

int sl_identity_replay_new(size_t max_entries, sl_identity_replay **out)
{
    *out = NULL;
    if (max_entries == 0 || max_entries > ((size_t)1 << 26)) return SL_EINVAL;
    size_t cap = 64;
    while (cap < 2 * max_entries)
        cap <<= 1;
    sl_identity_replay *c = calloc(1, sizeof *c);
    if (!c) return SL_ENOMEM;
    c->slots = calloc(cap, sizeof *c->slots);
    if (!c->slots) {
        free(c);
        return SL_ENOMEM;
    }
    c->mask = cap - 1;
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return 0;
}

void sl_identity_replay_free(sl_identity_replay *c)
{
    if (!c) return;
    pthread_mutex_destroy(&c->mu);
    free(c->slots);
    free(c);
}

int sl_identity_replay_check(sl_identity_replay *c, const uint8_t nonce[SL_IDENTITY_NONCE_BYTES],
                             int64_t expires_ms, int64_t now_ms)
{
    /* The nonce is random: its first bytes are a good hash. */
    uint64_t h = 0;
    memcpy(&h, nonce, sizeof h);
    pthread_mutex_lock(&c->mu);
    replay_slot *free_slot = NULL;
    int rc = 0;
    for (size_t i = 0; i < REPLAY_PROBES; i++) {
        replay_slot *s = &c->slots[(h + i) & c->mask];
        int live = s->expires_ms >= now_ms;
        if (live && memcmp(s->nonce, nonce, SL_IDENTITY_NONCE_BYTES) == 0) {
            rc = SL_EEXIST;
            break;
        }
        if (!live && !free_slot) free_slot = s;
        if (s->expires_ms == 0) break; /* never used: nothing was placed beyond it */
    }
    if (rc == 0 && !free_slot) rc = SL_ELIMIT;
    if (rc == 0) {
        memcpy(free_slot->nonce, nonce, SL_IDENTITY_NONCE_BYTES);
        free_slot->expires_ms = expires_ms > 0 ? expires_ms : 1;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- verification -----------------------------------------------------------------------------
 */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int sl_identity_verify(const sl_identity_keyring *ring, const sl_http_header *headers,
                       size_t nheaders, const sl_identity_msg *m, int64_t now_ms, int64_t window_ms,
                       sl_identity_replay *replay, sl_identity *out)
{
    sl_slice uid, role, proof;
    int have_u = sl_http_header_find(headers, nheaders, "x-user-id", &uid);
    int have_r = sl_http_header_find(headers, nheaders, "x-user-role", &role);
    int have_p = sl_http_header_find(headers, nheaders, "x-shoal-identity", &proof);
    if (!have_u && !have_r && !have_p) return SL_ENOTFOUND;
    if (!have_u || !have_r || !have_p || !visible(uid.ptr, uid.len, SL_IDENTITY_ID_MAX) ||
        !visible(role.ptr, role.len, SL_IDENTITY_ROLE_MAX) || !m->callee ||
        proof.len >= SL_IDENTITY_PROOF_MAX || proof.len < 3 || memcmp(proof.ptr, "v2.", 3) != 0)
        return SL_EINVAL;
    /* "v2." caller "." digits "." 24 hex "." 64 hex */
    const char *p = proof.ptr + 3, *end = proof.ptr + proof.len;
    const char *dot = memchr(p, '.', (size_t)(end - p));
    if (!dot || !sl_identity_name_valid(p, (size_t)(dot - p))) return SL_EINVAL;
    const sl_identity_edge *edge = sl_identity_keyring_find(ring, p, (size_t)(dot - p), m->callee);
    if (!edge) return SL_EINVAL;
    p = dot + 1;
    int64_t ms = 0;
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9' && p - digits < 15)
        ms = ms * 10 + (*p++ - '0');
    if (p == digits || p >= end || *p != '.') return SL_EINVAL;
    p++;
    if (end - p != 2 * SL_IDENTITY_NONCE_BYTES + 1 + 64 || p[2 * SL_IDENTITY_NONCE_BYTES] != '.')
        return SL_EINVAL;
    char nonce_hex[2 * SL_IDENTITY_NONCE_BYTES + 1];
    uint8_t nonce[SL_IDENTITY_NONCE_BYTES];
    for (size_t i = 0; i < SL_IDENTITY_NONCE_BYTES; i++) {
        int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);
        if (hi < 0 || lo < 0) return SL_EINVAL;
        nonce[i] = (uint8_t)(hi << 4 | lo);
    }
    memcpy(nonce_hex, p, 2 * SL_IDENTITY_NONCE_BYTES);
    nonce_hex[2 * SL_IDENTITY_NONCE_BYTES] = '\0';
    const char *mac_got = p + 2 * SL_IDENTITY_NONCE_BYTES + 1;
    if (ms < now_ms - window_ms || ms > now_ms + window_ms) return SL_EINVAL;
    if (!bindable(m->target) || !bindable(m->idempotency_key)) return SL_EINVAL;
    char mac[2 * crypto_auth_hmacsha256_BYTES + 1];
    mac_hex(edge, ms, nonce_hex, uid.ptr, uid.len, role.ptr, role.len, m, mac);
    if (sodium_memcmp(mac, mac_got, 64) != 0) return SL_EINVAL;
    if (!sl_identity_edge_allows(edge, role.ptr, role.len)) return SL_ECONFLICT;
    /* What the HTTP client may retry with the same headers, and the callee absorbs anyway (an
     * idempotent method, or a command deduplicated by its bound key), may repeat. */
    const char *meth = sl_http_method_name(m->method);
    int absorbed =
        sl_retry_method_idempotent((sl_slice){meth, strlen(meth)}) || m->idempotency_key.len > 0;
    if (replay && !absorbed) {
        int rc = sl_identity_replay_check(replay, nonce, ms + window_ms, now_ms);
        if (rc != 0) return rc;
    }
    memcpy(out->user_id, uid.ptr, uid.len);
    out->user_id[uid.len] = '\0';
    memcpy(out->role, role.ptr, role.len);
    out->role[role.len] = '\0';
    snprintf(out->caller, sizeof out->caller, "%s", edge->caller);
    return 0;
}
