/*
 * JSON Web Tokens as compact JWS (RFC 7515, RFC 7519) with one algorithm,
 * EdDSA over Ed25519 (RFC 8037). Signing builds the header and claims with
 * jansson; verification parses the three parts within fixed bounds, refuses
 * any other "alg" before touching a key (the "alg":"none" / HS256 key
 * confusion attacks), selects the key by "kid", and checks the time claims
 * against an injected clock.
 */
#include "auth/auth_int.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const reason_names[] = {
#define SL_JWT_REASON_NAME_(name, text) text,
    SL_JWT_REASON_MAP(SL_JWT_REASON_NAME_)
#undef SL_JWT_REASON_NAME_
};

const char *sl_jwt_reason_name(sl_jwt_reason r)
{
    if ((unsigned)r >= SL_ARRAY_LEN(reason_names)) return "unknown";
    return reason_names[r];
}

/* ---- verified-signature cache ---- */

typedef struct sig_entry {
    uint8_t d[crypto_hash_sha256_BYTES];
    bool used;
} sig_entry;

struct sl_jwt_sig_cache {
    size_t mask;
    uint64_t hits;
    sig_entry *e;
};

int sl_jwt_sig_cache_new(size_t entries, sl_jwt_sig_cache **out)
{
    SL_ASSERT(out != NULL);
    *out = NULL;
    if (entries == 0 || entries > (1u << 20)) return SL_EINVAL;
    size_t n = 1;
    while (n < entries)
        n <<= 1;
    sl_jwt_sig_cache *c = calloc(1, sizeof *c);
    if (!c || !(c->e = calloc(n, sizeof *c->e))) {
        free(c);
        return SL_ENOMEM;
    }
    c->mask = n - 1;
    *out = c;
    return 0;
}

void sl_jwt_sig_cache_free(sl_jwt_sig_cache *c)
{
    if (!c) return;
    free(c->e);
    free(c);
}

uint64_t sl_jwt_sig_cache_hits(const sl_jwt_sig_cache *c)
{
    return c ? c->hits : 0;
}

/* SHA-256 of the key's public bytes and the whole token, and its slot. */
static sig_entry *sig_slot(sl_jwt_sig_cache *c, const sl_auth_key *key, const char *token,
                           size_t len, uint8_t d[crypto_hash_sha256_BYTES])
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, key->pub, sizeof key->pub);
    crypto_hash_sha256_update(&st, (const unsigned char *)token, len);
    crypto_hash_sha256_final(&st, d);
    uint64_t h;
    memcpy(&h, d, sizeof h);
    return &c->e[h & c->mask];
}

/* Whether `key` signed `token`: from the cache when these bytes passed before. */
static bool signature_ok(sl_jwt_sig_cache *c, const sl_auth_key *key, const char *token, size_t len,
                         size_t signing_len, const uint8_t *sig)
{
    if (!c) return sl__auth_ed25519_verify(key, token, signing_len, sig);
    uint8_t d[crypto_hash_sha256_BYTES];
    sig_entry *e = sig_slot(c, key, token, len, d);
    if (e->used && sodium_memcmp(e->d, d, sizeof d) == 0) {
        c->hits++;
        return true;
    }
    if (!sl__auth_ed25519_verify(key, token, signing_len, sig)) return false;
    memcpy(e->d, d, sizeof d);
    e->used = true;
    return true;
}

void sl_jwt_verify_opts_init(sl_jwt_verify_opts *opts, const sl_clock *clock)
{
    SL_ASSERT(opts != NULL);
    *opts = (sl_jwt_verify_opts){
        .clock = clock,
        .issuer = NULL,
        .leeway_s = SL_JWT_DEFAULT_LEEWAY_S,
        .max_bytes = SL_JWT_MAX_BYTES,
    };
}

void sl_jwt_verified_deinit(sl_jwt_verified *v)
{
    if (!v) return;
    json_decref(v->claims);
    memset(v, 0, sizeof *v);
}

int sl_jws_sign(const sl_auth_key *key, const char *header_json, size_t header_len,
                const void *payload, size_t payload_len, char **token, size_t *token_len)
{
    SL_ASSERT(key != NULL && token != NULL);
    SL_ASSERT(header_json != NULL && (payload != NULL || payload_len == 0));
    *token = NULL;
    if (!key->has_private) return SL_EINVAL;
    if (header_len > SL_JWT_MAX_BYTES || payload_len > SL_JWT_MAX_BYTES) return SL_ELIMIT;
    size_t eh = SL_B64URL_ENCODED_LEN(header_len), ep = SL_B64URL_ENCODED_LEN(payload_len);
    size_t es = SL_B64URL_ENCODED_LEN(SL_AUTH_SIGNATURE_BYTES);
    size_t total = eh + 1 + ep + 1 + es;
    if (total > SL_JWT_MAX_BYTES) return SL_ELIMIT;
    char *buf = malloc(total + 1);
    if (!buf) return SL_ENOMEM;
    size_t o = 0, n = 0;
    int rc = sl_b64url_encode(header_json, header_len, buf, total + 1, &n);
    o += n;
    buf[o++] = '.';
    if (rc == 0) rc = sl_b64url_encode(payload, payload_len, buf + o, total + 1 - o, &n);
    o += n;
    uint8_t sig[SL_AUTH_SIGNATURE_BYTES];
    /* RFC 7515 §5.1: the signing input is the ASCII of the first two encoded parts. */
    if (rc == 0) rc = sl__auth_ed25519_sign(key, buf, o, sig);
    buf[o++] = '.';
    if (rc == 0) rc = sl_b64url_encode(sig, sizeof sig, buf + o, total + 1 - o, &n);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    o += n;
    SL_ASSERT(o == total && buf[o] == '\0');
    *token = buf;
    if (token_len) *token_len = o;
    return 0;
}

static bool is_reserved_claim(const char *k)
{
    static const char *const reserved[] = {"sub", "role", "iss", "iat", "exp", "nbf"};
    for (size_t i = 0; i < SL_ARRAY_LEN(reserved); i++)
        if (strcmp(k, reserved[i]) == 0) return true;
    return false;
}

/* Builds the payload object of `c`, or returns SL_EINVAL / SL_ENOMEM. */
static int build_claims(const sl_jwt_claims *c, json_t **out)
{
    *out = NULL;
    if (!c->sub || c->sub[0] == '\0') return SL_EINVAL;
    if (c->iat < 0 || c->exp <= c->iat || c->exp > SL_JWT_MAX_NUMERIC_DATE_S) return SL_EINVAL;
    if (c->extra) {
        if (!json_is_object(c->extra)) return SL_EINVAL;
        const char *k;
        json_t *v;
        json_object_foreach(c->extra, k, v)
        {
            if (is_reserved_claim(k)) return SL_EINVAL;
        }
    }
    json_t *o = json_object();
    if (!o) return SL_ENOMEM;
    int bad = 0;
    if (c->iss) bad |= json_object_set_new(o, "iss", json_string(c->iss));
    bad |= json_object_set_new(o, "sub", json_string(c->sub));
    if (c->role) bad |= json_object_set_new(o, "role", json_string(c->role));
    bad |= json_object_set_new(o, "iat", json_integer((json_int_t)c->iat));
    bad |= json_object_set_new(o, "exp", json_integer((json_int_t)c->exp));
    if (c->extra) bad |= json_object_update(o, c->extra);
    if (bad) {
        /* json_string() refuses invalid UTF-8, the likelier cause than memory. */
        json_decref(o);
        return SL_EINVAL;
    }
    *out = o;
    return 0;
}

int sl_jwt_sign(const sl_auth_key *key, const sl_jwt_claims *claims, char **token,
                size_t *token_len)
{
    SL_ASSERT(key != NULL && claims != NULL && token != NULL);
    *token = NULL;
    if (!key->has_private) return SL_EINVAL;
    json_t *payload = NULL;
    int rc = build_claims(claims, &payload);
    if (rc != 0) return rc;
    json_t *hdr = json_pack("{s:s, s:s, s:s}", "alg", "EdDSA", "typ", "JWT", "kid", key->kid);
    size_t hlen = 0, plen = 0;
    char *h = hdr ? sl_json_dump(hdr, &hlen) : NULL;
    char *p = sl_json_dump(payload, &plen);
    if (!h || !p)
        rc = SL_ENOMEM;
    else
        rc = sl_jws_sign(key, h, hlen, p, plen, token, token_len);
    free(h);
    free(p);
    json_decref(hdr);
    json_decref(payload);
    return rc;
}

/* ---- Verification -------------------------------------------------------------------------- */

/* The three parts of a compact JWS, decoded. Lives on the verifier's stack. */
typedef struct jws_parts {
    size_t signing_input_len; /* bytes of "header.payload" */
    uint8_t header[SL_JWT_HEADER_MAX_BYTES];
    size_t header_len;
    uint8_t payload[SL_B64URL_DECODED_MAX(SL_JWT_MAX_BYTES)];
    size_t payload_len;
    uint8_t sig[SL_AUTH_SIGNATURE_BYTES + 2];
    size_t sig_len;
} jws_parts;

/* Splits and decodes `token`. Returns 0 or SL_EPARSE (malformed). */
static int split_token(const char *token, size_t len, jws_parts *p)
{
    const char *d1 = memchr(token, '.', len);
    if (!d1) return SL_EPARSE;
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
    if (!d2) return SL_EPARSE;
    const char *end = token + len;
    /* A third dot is a JWE (five parts) or garbage; an empty payload is a detached one. An
     * empty signature ("alg":"none") passes here so that the header check names it bad_alg;
     * the signature length is checked once the header is accepted. */
    if (memchr(d2 + 1, '.', (size_t)(end - d2 - 1))) return SL_EPARSE;
    size_t hl = (size_t)(d1 - token), pl = (size_t)(d2 - d1 - 1), sl = (size_t)(end - d2 - 1);
    if (hl == 0 || pl == 0) return SL_EPARSE;
    if (sl_b64url_decode(token, hl, p->header, sizeof p->header, &p->header_len) != 0 ||
        sl_b64url_decode(d1 + 1, pl, p->payload, sizeof p->payload, &p->payload_len) != 0 ||
        sl_b64url_decode(d2 + 1, sl, p->sig, sizeof p->sig, &p->sig_len) != 0)
        return SL_EPARSE;
    p->signing_input_len = (size_t)(d2 - token);
    return 0;
}

/*
 * Checks the protected header and finds the key. Returns SL_JWT_OK with *key set, or the
 * reason. The order matters: "alg" is judged before "kid" selects any key.
 */
static sl_jwt_reason check_header(const jws_parts *p, const sl_keyset *ks, const sl_auth_key **key,
                                  int *rc)
{
    json_t *hdr = NULL;
    sl_json_limits lim = {.max_bytes = SL_JWT_HEADER_MAX_BYTES, .max_depth = 4};
    *rc = sl_json_parse((const char *)p->header, p->header_len, &lim, &hdr, NULL);
    if (*rc != 0) {
        if (*rc != SL_ENOMEM) *rc = SL_EINVAL;
        return SL_JWT_MALFORMED;
    }
    sl_jwt_reason r = SL_JWT_OK;
    const json_t *alg = json_object_get(hdr, "alg");
    const json_t *typ = json_object_get(hdr, "typ");
    const json_t *kid = json_object_get(hdr, "kid");
    /* RFC 8725 §3.1: a fixed algorithm, compared exactly ("none", "HS256", "eddsa" fail). */
    if (!json_is_string(alg) || strcmp(json_string_value(alg), "EdDSA") != 0) r = SL_JWT_BAD_ALG;
    /* RFC 7515 §4.1.11: we understand no extension, so any "crit" must be refused. */
    else if (json_object_get(hdr, "crit"))
        r = SL_JWT_MALFORMED;
    /* RFC 7515 §4.1.9 recommends comparing "typ" without case. */
    else if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0))
        r = SL_JWT_MALFORMED;
    else if (!json_is_string(kid) ||
             !(*key = sl_keyset_find(ks, json_string_value(kid), json_string_length(kid))))
        r = SL_JWT_UNKNOWN_KID;
    json_decref(hdr);
    *rc = r == SL_JWT_OK ? 0 : SL_EINVAL;
    return r;
}

/* Reads the NumericDate claim `name`: 0 and *v when valid, 1 when absent, -1 when invalid. */
static int numeric_date(const json_t *claims, const char *name, int64_t *v)
{
    const json_t *j = json_object_get(claims, name);
    if (!j) return 1;
    /* Integers only: we issue integers, and reals would bring rounding into the checks. */
    if (!json_is_integer(j)) return -1;
    json_int_t x = json_integer_value(j);
    if (x < 0 || x > SL_JWT_MAX_NUMERIC_DATE_S) return -1;
    *v = (int64_t)x;
    return 0;
}

/* Validates the claims of `claims` into `out` (borrowing strings from it). */
static sl_jwt_reason check_claims(const json_t *claims, const sl_jwt_verify_opts *opts,
                                  sl_jwt_verified *out)
{
    int64_t exp = 0, iat = 0, nbf = 0;
    int has_exp = numeric_date(claims, "exp", &exp);
    int has_iat = numeric_date(claims, "iat", &iat);
    int has_nbf = numeric_date(claims, "nbf", &nbf);
    if (has_exp != 0 || has_iat < 0 || has_nbf < 0) return SL_JWT_BAD_CLAIMS;
    const json_t *sub = json_object_get(claims, "sub");
    const json_t *role = json_object_get(claims, "role");
    const json_t *iss = json_object_get(claims, "iss");
    if (!json_is_string(sub) || json_string_length(sub) == 0) return SL_JWT_BAD_CLAIMS;
    if ((role && !json_is_string(role)) || (iss && !json_is_string(iss))) return SL_JWT_BAD_CLAIMS;

    int64_t now = sl_clock_wall_ns(opts->clock) / 1000000000;
    /* RFC 7519 §4.1.4: the token is valid only before exp (plus our leeway). */
    if (now >= exp + opts->leeway_s) return SL_JWT_EXPIRED;
    if (has_iat == 0 && iat > now + opts->leeway_s) return SL_JWT_NOT_YET_VALID;
    if (has_nbf == 0 && nbf > now + opts->leeway_s) return SL_JWT_NOT_YET_VALID;
    if (opts->issuer && (!iss || strcmp(json_string_value(iss), opts->issuer) != 0))
        return SL_JWT_BAD_ISSUER;

    out->sub = json_string_value(sub);
    out->role = role ? json_string_value(role) : NULL;
    out->iss = iss ? json_string_value(iss) : NULL;
    out->iat = has_iat == 0 ? iat : 0;
    out->exp = exp;
    return SL_JWT_OK;
}

static int reject(sl_jwt_reason *reason, sl_jwt_reason r, int rc)
{
    *reason = r;
    return rc;
}

int sl_jwt_verify(const sl_keyset *ks, const char *token, size_t len,
                  const sl_jwt_verify_opts *opts, sl_jwt_verified *out, sl_jwt_reason *reason)
{
    SL_ASSERT(ks != NULL && opts != NULL && out != NULL && reason != NULL);
    SL_ASSERT(token != NULL || len == 0);
    memset(out, 0, sizeof *out);
    *reason = SL_JWT_MALFORMED;
    if (!opts->clock || opts->leeway_s < 0 || opts->leeway_s > SL_JWT_MAX_LEEWAY_S ||
        opts->max_bytes > SL_JWT_MAX_BYTES)
        return SL_ECONFIG;
    if (len == 0 || len > opts->max_bytes) return reject(reason, SL_JWT_MALFORMED, SL_EINVAL);

    jws_parts *p = malloc(sizeof *p);
    if (!p) return SL_ENOMEM;
    int rc;
    sl_jwt_reason r = SL_JWT_MALFORMED;
    const sl_auth_key *key = NULL;
    json_t *claims = NULL;
    if (split_token(token, len, p) != 0) {
        rc = SL_EINVAL;
        goto out;
    }
    r = check_header(p, ks, &key, &rc);
    if (r != SL_JWT_OK) goto out;
    if (p->sig_len != SL_AUTH_SIGNATURE_BYTES) {
        r = SL_JWT_MALFORMED;
        rc = SL_EINVAL;
        goto out;
    }
    if (!signature_ok(opts->sig_cache, key, token, len, p->signing_input_len, p->sig)) {
        r = SL_JWT_BAD_SIGNATURE;
        rc = SL_EINVAL;
        goto out;
    }
    sl_json_limits lim = {.max_bytes = sizeof p->payload, .max_depth = 16};
    rc = sl_json_parse((const char *)p->payload, p->payload_len, &lim, &claims, NULL);
    if (rc != 0) {
        r = SL_JWT_MALFORMED;
        if (rc != SL_ENOMEM) rc = SL_EINVAL;
        goto out;
    }
    r = check_claims(claims, opts, out);
    if (r != SL_JWT_OK) {
        memset(out, 0, sizeof *out);
        rc = SL_EINVAL;
        goto out;
    }
    out->claims = claims;
    claims = NULL;
    memcpy(out->kid, key->kid, strlen(key->kid) + 1);
    rc = 0;
out:
    json_decref(claims);
    free(p);
    *reason = r;
    return rc;
}
