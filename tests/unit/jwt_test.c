/*
 * Unit tests for EdDSA JWTs: a fixed token for a fixed key (cross-checked
 * with `openssl pkeyutl -sign -rawin`), sign → verify round trips, every
 * rejection reason the gateway maps to 401, and key rotation through a key
 * set and through JWKS. Time comes from a fake clock.
 */
#include <shoal/auth.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NOW_S ((int64_t)1795869296) /* 2026-11-28T12:34:56Z */
#define SEC   ((int64_t)1000000000)

/* The RFC 8037 A.1 key, whose thumbprint is kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k. */
static sl_auth_key *fixed_key(void)
{
    const char *d = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    uint8_t seed[40];
    size_t n;
    assert_int_equal(sl_b64url_decode(d, strlen(d), seed, sizeof seed, &n), 0);
    sl_auth_key *k = NULL;
    assert_int_equal(sl_auth_key_from_seed(seed, &k), 0);
    return k;
}

typedef struct fixture {
    sl_auth_key *key;
    sl_keyset *ks;
    sl_fake_clock fc;
    sl_jwt_verify_opts opts;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->key = fixed_key();
    assert_int_equal(sl_keyset_new(&f->ks), 0);
    assert_int_equal(sl_keyset_add(f->ks, f->key), 0);
    sl_fake_clock_init(&f->fc, NOW_S * SEC + 123456789);
    sl_jwt_verify_opts_init(&f->opts, &f->fc.clock);
    f->opts.issuer = "shoal-user";
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sl_keyset_free(f->ks);
    sl_auth_key_free(f->key);
    free(f);
    return 0;
}

static sl_jwt_claims std_claims(void)
{
    return (sl_jwt_claims){
        .sub = "user-1", .role = "customer", .iss = "shoal-user", .iat = NOW_S, .exp = NOW_S + 900};
}

static char *sign(const sl_auth_key *k, const sl_jwt_claims *c)
{
    char *tok = NULL;
    int rc = sl_jwt_sign(k, c, &tok, NULL);
    assert_int_equal(rc, 0);
    return tok;
}

/* Signs arbitrary header and payload text with a real Ed25519 signature. */
static char *craft(const sl_auth_key *k, const char *header, const char *payload)
{
    char *tok = NULL;
    int rc = sl_jws_sign(k, header, strlen(header), payload, strlen(payload), &tok, NULL);
    assert_int_equal(rc, 0);
    return tok;
}

/* Verifies `tok` and returns the reason; checks the return code agrees with it. */
static sl_jwt_reason check(fixture *f, const char *tok, size_t len)
{
    sl_jwt_verified v;
    sl_jwt_reason r = (sl_jwt_reason)99;
    int rc = sl_jwt_verify(f->ks, tok, len, &f->opts, &v, &r);
    if (r == SL_JWT_OK) {
        assert_int_equal(rc, 0);
        assert_non_null(v.claims);
    } else {
        assert_int_equal(rc, SL_EINVAL);
        assert_null(v.claims);
        assert_null(v.sub);
    }
    sl_jwt_verified_deinit(&v);
    return r;
}

static sl_jwt_reason check_str(fixture *f, const char *tok)
{
    return check(f, tok, strlen(tok));
}

#define HDR_OK                                                                                     \
    "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\"}"
#define CLAIMS_OK                                                                                  \
    "{\"iss\":\"shoal-user\",\"sub\":\"user-1\",\"iat\":1795869296,\"exp\":1795870196}"

static void test_fixed_token(void **state)
{
    fixture *f = *state;
    sl_jwt_claims c = std_claims();
    char *tok = sign(f->key, &c);
    /* Ed25519 is deterministic: this exact token, whose signature `openssl pkeyutl -sign
     * -rawin` reproduces over the first two parts. */
    assert_string_equal(
        tok, "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCIsImtpZCI6ImtQcktfcW14VldhWVZBOXd3QkY2SXVvM3ZWeno3"
             "VHhIQ1R3WEJ5Z3JTNGsifQ."
             "eyJpc3MiOiJzaG9hbC11c2VyIiwic3ViIjoidXNlci0xIiwicm9sZSI6ImN1c3RvbWVyIiwiaWF0IjoxNzk1"
             "ODY5Mjk2LCJleHAiOjE3OTU4NzAxOTZ9."
             "Vf_wcIcsI1ibp03WAUUjbJKviddD9u26QqrisM3BeaPq1fwM6utPSm8UqjhJaEyOl8opRWfEJMLOTKF0Z63q"
             "Ag");
    free(tok);
}

static void test_round_trip(void **state)
{
    fixture *f = *state;
    json_t *extra = json_pack("{s:s, s:i}", "tenant", "eu", "ver", 3);
    sl_jwt_claims c = std_claims();
    c.extra = extra;
    char *tok = NULL;
    size_t len = 0;
    assert_int_equal(sl_jwt_sign(f->key, &c, &tok, &len), 0);
    assert_int_equal(len, strlen(tok));
    sl_jwt_verified v;
    sl_jwt_reason r;
    assert_int_equal(sl_jwt_verify(f->ks, tok, len, &f->opts, &v, &r), 0);
    assert_int_equal(r, SL_JWT_OK);
    assert_string_equal(v.sub, "user-1");
    assert_string_equal(v.role, "customer");
    assert_string_equal(v.iss, "shoal-user");
    assert_int_equal(v.iat, NOW_S);
    assert_int_equal(v.exp, NOW_S + 900);
    assert_string_equal(v.kid, sl_auth_key_kid(f->key));
    assert_string_equal(json_string_value(json_object_get(v.claims, "tenant")), "eu");
    assert_int_equal(json_integer_value(json_object_get(v.claims, "ver")), 3);
    sl_jwt_verified_deinit(&v);
    assert_null(v.claims);
    sl_jwt_verified_deinit(&v); /* idempotent */
    /* Not NUL-terminated input: the length is what counts. */
    char *copy = malloc(len);
    memcpy(copy, tok, len);
    assert_int_equal(check(f, copy, len), SL_JWT_OK);
    free(copy);
    free(tok);
    json_decref(extra);

    /* Optional claims may be absent, and no issuer check when none is expected. */
    c = (sl_jwt_claims){.sub = "u", .iat = 0, .exp = NOW_S + 60};
    tok = sign(f->key, &c);
    assert_int_equal(check_str(f, tok), SL_JWT_BAD_ISSUER);
    f->opts.issuer = NULL;
    assert_int_equal(sl_jwt_verify(f->ks, tok, strlen(tok), &f->opts, &v, &r), 0);
    assert_null(v.role);
    assert_null(v.iss);
    sl_jwt_verified_deinit(&v);
    free(tok);
}

static void test_sign_rejects(void **state)
{
    fixture *f = *state;
    char *tok = (char *)"unchanged";
    sl_jwt_claims c = std_claims();
    c.sub = "";
    assert_int_equal(sl_jwt_sign(f->key, &c, &tok, NULL), SL_EINVAL);
    assert_null(tok);
    c = std_claims();
    c.sub = NULL;
    assert_int_equal(sl_jwt_sign(f->key, &c, &tok, NULL), SL_EINVAL);
    c = std_claims();
    c.exp = c.iat;
    assert_int_equal(sl_jwt_sign(f->key, &c, &tok, NULL), SL_EINVAL);
    c = std_claims();
    c.role = "\xff"; /* not UTF-8 */
    assert_int_equal(sl_jwt_sign(f->key, &c, &tok, NULL), SL_EINVAL);
    /* extra may not override a registered claim, and must be an object. */
    c = std_claims();
    c.extra = json_pack("{s:s}", "sub", "admin");
    assert_int_equal(sl_jwt_sign(f->key, &c, &tok, NULL), SL_EINVAL);
    json_decref(c.extra);
    c.extra = json_array();
    assert_int_equal(sl_jwt_sign(f->key, &c, &tok, NULL), SL_EINVAL);
    json_decref(c.extra);
    /* We never issue a token we would refuse as too long. */
    char *big = malloc(7000);
    memset(big, 'a', 6999);
    big[6999] = '\0';
    c.extra = json_pack("{s:s}", "blob", big);
    assert_int_equal(sl_jwt_sign(f->key, &c, &tok, NULL), SL_ELIMIT);
    json_decref(c.extra);
    free(big);
    /* A public key cannot sign. */
    sl_auth_key *pub = NULL;
    assert_int_equal(sl_auth_key_from_public(sl_auth_key_public(f->key), NULL, &pub), 0);
    c = std_claims();
    assert_int_equal(sl_jwt_sign(pub, &c, &tok, NULL), SL_EINVAL);
    sl_auth_key_free(pub);
}

static void test_tampering(void **state)
{
    fixture *f = *state;
    sl_jwt_claims c = std_claims();
    char *tok = sign(f->key, &c);
    assert_int_equal(check_str(f, tok), SL_JWT_OK);
    /* Offsets of the two dots (indices rather than pointers: GCC 12's -Wdangling-pointer
     * misreads pointers derived from the helper's result). */
    size_t d1 = strcspn(tok, "."), d2 = d1 + 1 + strcspn(tok + d1 + 1, ".");

    /* Payload swapped for one that says admin, signature kept. */
    c.role = "admin";
    char *other = sign(f->key, &c);
    size_t o1 = strcspn(other, "."), o2 = o1 + 1 + strcspn(other + o1 + 1, ".");
    char forged[2048];
    snprintf(forged, sizeof forged, "%.*s%.*s%s", (int)d1, tok, (int)(o2 - o1), other + o1,
             tok + d2);
    assert_int_equal(check_str(f, forged), SL_JWT_BAD_SIGNATURE);
    free(other);

    /* One payload character changed. */
    char *t2 = strdup(tok);
    t2[d1 + 5] ^= 0x01; /* stays in the alphabet: letters flip case pairs */
    assert_int_equal(check_str(f, t2), SL_JWT_BAD_SIGNATURE);
    free(t2);

    /* One signature character changed, and the signature's last bits made non-canonical. */
    t2 = strdup(tok);
    size_t s = d2 + 10;
    t2[s] = t2[s] == 'A' ? 'B' : 'A';
    assert_int_equal(check_str(f, t2), SL_JWT_BAD_SIGNATURE);
    free(t2);
    t2 = strdup(tok);
    size_t last = strlen(t2) - 1; /* "Ag": 'g' carries 4 bits and 2 zero bits */
    t2[last] = 'h';
    assert_int_equal(check_str(f, t2), SL_JWT_MALFORMED);
    free(t2);

    /* Signature truncated or extended: wrong length. */
    t2 = strdup(tok);
    t2[strlen(t2) - 4] = '\0';
    assert_int_equal(check_str(f, t2), SL_JWT_MALFORMED);
    free(t2);
    /* Signed by another key that claims our kid. */
    sl_auth_key *evil = NULL;
    assert_int_equal(sl_auth_key_generate(&evil), 0);
    char *e = craft(evil, HDR_OK, CLAIMS_OK);
    assert_int_equal(check_str(f, e), SL_JWT_BAD_SIGNATURE);
    free(e);
    sl_auth_key_free(evil);
    free(tok);
}

static void test_bad_alg(void **state)
{
    fixture *f = *state;
    static const char *const headers[] = {
        "{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"kPrK_"
        "qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\"}",
        "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"kPrK_"
        "qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\"}",
        "{\"alg\":\"eddsa\",\"kid\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\"}",
        "{\"alg\":\"EdDSA \",\"kid\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\"}",
        "{\"alg\":\"ES256\",\"kid\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\"}",
        "{\"alg\":null,\"kid\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\"}",
        "{\"alg\":[\"EdDSA\"],\"kid\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\"}",
        "{\"kid\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\"}",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(headers); i++) {
        /* A genuine Ed25519 signature over the token: only the alg is wrong. */
        char *tok = craft(f->key, headers[i], CLAIMS_OK);
        assert_int_equal(check_str(f, tok), SL_JWT_BAD_ALG);
        free(tok);
    }
    /* The classic unsigned token: empty signature, judged on its alg. */
    char hdr[128], pay[256], tok[512];
    const char *none = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    assert_int_equal(sl_b64url_encode(none, strlen(none), hdr, sizeof hdr, NULL), 0);
    assert_int_equal(sl_b64url_encode(CLAIMS_OK, strlen(CLAIMS_OK), pay, sizeof pay, NULL), 0);
    snprintf(tok, sizeof tok, "%s.%s.", hdr, pay);
    assert_int_equal(check_str(f, tok), SL_JWT_BAD_ALG);
    /* An HS256 token with a 32-byte MAC. */
    const char *hs = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    assert_int_equal(sl_b64url_encode(hs, strlen(hs), hdr, sizeof hdr, NULL), 0);
    snprintf(tok, sizeof tok, "%s.%s.%s", hdr, pay, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    assert_int_equal(check_str(f, tok), SL_JWT_BAD_ALG);
    /* An empty signature with the right alg is malformed. */
    assert_int_equal(sl_b64url_encode(HDR_OK, strlen(HDR_OK), hdr, sizeof hdr, NULL), 0);
    snprintf(tok, sizeof tok, "%s.%s.", hdr, pay);
    assert_int_equal(check_str(f, tok), SL_JWT_MALFORMED);
}

static void test_header_rules(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *hdr;
        sl_jwt_reason r;
    } cases[] = {
        {"{\"alg\":\"EdDSA\",\"typ\":\"jwt\",\"kid\":\"kPrK_"
         "qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\"}",
         SL_JWT_OK},
        {"{\"alg\":\"EdDSA\",\"kid\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\"}", SL_JWT_OK},
        {"{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\",\"kid\":\"kPrK_"
         "qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\"}",
         SL_JWT_MALFORMED},
        {"{\"alg\":\"EdDSA\",\"crit\":[\"exp\"],\"exp\":1,"
         "\"kid\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\"}",
         SL_JWT_MALFORMED},
        /* Duplicate names: the JSON parser refuses them, so "last one wins" cannot smuggle. */
        {"{\"alg\":\"EdDSA\",\"alg\":\"none\",\"kid\":\"kPrK_"
         "qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\"}",
         SL_JWT_MALFORMED},
        {"[\"EdDSA\"]", SL_JWT_MALFORMED},
        {"{\"alg\":\"EdDSA\"", SL_JWT_MALFORMED},
        {"{\"alg\":\"EdDSA\"}", SL_JWT_UNKNOWN_KID},
        {"{\"alg\":\"EdDSA\",\"kid\":7}", SL_JWT_UNKNOWN_KID},
        {"{\"alg\":\"EdDSA\",\"kid\":\"other\"}", SL_JWT_UNKNOWN_KID},
        {"{\"alg\":\"EdDSA\",\"kid\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4\"}",
         SL_JWT_UNKNOWN_KID},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        char *tok = craft(f->key, cases[i].hdr, CLAIMS_OK);
        sl_jwt_reason r = check_str(f, tok);
        if (r != cases[i].r)
            fail_msg("case %zu %s: got %s", i, cases[i].hdr, sl_jwt_reason_name(r));
        free(tok);
    }
}

static void test_shape(void **state)
{
    fixture *f = *state;
    sl_jwt_claims c = std_claims();
    char *good = sign(f->key, &c);
    char buf[4096];
    static const char *const bad[] = {
        "",
        ".",
        "..",
        "...",
        "a.b",
        "abc",
        "a.b.c.d",
        "eyJ!.eyJ.AAAA",              /* garbage base64url */
        "eyJhbGciOiJFZERTQSJ9..AAAA", /* empty payload */
        ".eyJ.AAAA",                  /* empty header */
        "eyJhbGciOiJFZERTQSJ9=.eyJ.AAAA",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
        assert_int_equal(check_str(f, bad[i]), SL_JWT_MALFORMED);
    /* Extra parts around a valid token. */
    snprintf(buf, sizeof buf, "%s.", good);
    assert_int_equal(check_str(f, buf), SL_JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%s.AAAA", good);
    assert_int_equal(check_str(f, buf), SL_JWT_MALFORMED);
    snprintf(buf, sizeof buf, " %s", good);
    assert_int_equal(check_str(f, buf), SL_JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%s\n", good);
    assert_int_equal(check_str(f, buf), SL_JWT_MALFORMED);
    /* Over-long: refused on length alone, before decoding. */
    size_t n = SL_JWT_MAX_BYTES + 1;
    char *huge = malloc(n);
    memset(huge, 'A', n);
    memcpy(huge, good, strlen(good));
    assert_int_equal(check(f, huge, n), SL_JWT_MALFORMED);
    free(huge);
    /* A tighter configured bound applies too. */
    f->opts.max_bytes = strlen(good) - 1;
    assert_int_equal(check_str(f, good), SL_JWT_MALFORMED);
    f->opts.max_bytes = strlen(good);
    assert_int_equal(check_str(f, good), SL_JWT_OK);
    /* A header over SL_JWT_HEADER_MAX_BYTES. */
    char *hdr = malloc(1200);
    snprintf(hdr, 1200,
             "{\"alg\":\"EdDSA\",\"kid\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\","
             "\"pad\":\"%01050d\"}",
             0);
    char *tok = craft(f->key, hdr, CLAIMS_OK);
    assert_int_equal(check_str(f, tok), SL_JWT_MALFORMED);
    free(tok);
    free(hdr);
    free(good);
}

static void test_payload_and_claims(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *payload;
        sl_jwt_reason r;
    } cases[] = {
        {CLAIMS_OK, SL_JWT_OK},
        {"not json", SL_JWT_MALFORMED},
        {"[1,2]", SL_JWT_MALFORMED},
        {"{\"sub\":\"u\",\"sub\":\"admin\",\"iss\":\"shoal-user\",\"exp\":1795870196}",
         SL_JWT_MALFORMED},
        {"{\"iss\":\"shoal-user\",\"sub\":\"user-1\"}", SL_JWT_BAD_CLAIMS},
        {"{\"iss\":\"shoal-user\",\"sub\":\"user-1\",\"exp\":1795870196.0}", SL_JWT_BAD_CLAIMS},
        {"{\"iss\":\"shoal-user\",\"sub\":\"user-1\",\"exp\":\"1795870196\"}", SL_JWT_BAD_CLAIMS},
        {"{\"iss\":\"shoal-user\",\"sub\":\"user-1\",\"exp\":-1}", SL_JWT_BAD_CLAIMS},
        {"{\"iss\":\"shoal-user\",\"sub\":\"user-1\",\"exp\":9223372036854775807}",
         SL_JWT_BAD_CLAIMS},
        {"{\"iss\":\"shoal-user\",\"sub\":\"user-1\",\"exp\":1795870196,\"iat\":\"x\"}",
         SL_JWT_BAD_CLAIMS},
        {"{\"iss\":\"shoal-user\",\"sub\":\"user-1\",\"exp\":1795870196,\"nbf\":1.5}",
         SL_JWT_BAD_CLAIMS},
        {"{\"iss\":\"shoal-user\",\"exp\":1795870196}", SL_JWT_BAD_CLAIMS},
        {"{\"iss\":\"shoal-user\",\"sub\":\"\",\"exp\":1795870196}", SL_JWT_BAD_CLAIMS},
        {"{\"iss\":\"shoal-user\",\"sub\":42,\"exp\":1795870196}", SL_JWT_BAD_CLAIMS},
        {"{\"iss\":\"shoal-user\",\"sub\":\"u\",\"role\":1,\"exp\":1795870196}", SL_JWT_BAD_CLAIMS},
        {"{\"iss\":7,\"sub\":\"u\",\"exp\":1795870196}", SL_JWT_BAD_CLAIMS},
        {"{\"iss\":\"shoal-evil\",\"sub\":\"u\",\"exp\":1795870196}", SL_JWT_BAD_ISSUER},
        {"{\"iss\":\"shoal-user \",\"sub\":\"u\",\"exp\":1795870196}", SL_JWT_BAD_ISSUER},
        {"{\"sub\":\"u\",\"exp\":1795870196}", SL_JWT_BAD_ISSUER},
        /* The claim checks come before the issuer check. */
        {"{\"iss\":\"shoal-evil\",\"sub\":\"u\",\"exp\":1795869000}", SL_JWT_EXPIRED},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        char *tok = craft(f->key, HDR_OK, cases[i].payload);
        sl_jwt_reason r = check_str(f, tok);
        if (r != cases[i].r)
            fail_msg("case %zu %s: got %s", i, cases[i].payload, sl_jwt_reason_name(r));
        free(tok);
    }
}

static void test_times(void **state)
{
    fixture *f = *state;
    sl_jwt_claims c = std_claims(); /* iat = now, exp = now + 900 */
    char *tok = sign(f->key, &c);
    assert_int_equal(check_str(f, tok), SL_JWT_OK);
    /* exp + leeway is the first instant refused (the clock is .123 s past NOW_S). */
    sl_fake_clock_advance(&f->fc, (900 + 29) * SEC);
    assert_int_equal(check_str(f, tok), SL_JWT_OK);
    sl_fake_clock_advance(&f->fc, 1 * SEC);
    assert_int_equal(check_str(f, tok), SL_JWT_EXPIRED);
    f->opts.leeway_s = 0;
    sl_fake_clock_init(&f->fc, (NOW_S + 899) * SEC);
    assert_int_equal(check_str(f, tok), SL_JWT_OK);
    sl_fake_clock_init(&f->fc, (NOW_S + 900) * SEC);
    assert_int_equal(check_str(f, tok), SL_JWT_EXPIRED);
    free(tok);

    /* iat in the future: tolerated up to the leeway. */
    f->opts.leeway_s = 30;
    sl_fake_clock_init(&f->fc, NOW_S * SEC);
    c.iat = NOW_S + 30;
    tok = sign(f->key, &c);
    assert_int_equal(check_str(f, tok), SL_JWT_OK);
    free(tok);
    c.iat = NOW_S + 31;
    tok = sign(f->key, &c);
    assert_int_equal(check_str(f, tok), SL_JWT_NOT_YET_VALID);
    sl_fake_clock_advance(&f->fc, 1 * SEC);
    assert_int_equal(check_str(f, tok), SL_JWT_OK);
    free(tok);

    /* nbf (not issued by us, but honoured). */
    sl_fake_clock_init(&f->fc, NOW_S * SEC);
    char *t2 =
        craft(f->key, HDR_OK,
              "{\"iss\":\"shoal-user\",\"sub\":\"u\",\"exp\":1795870196,\"nbf\":1795869400}");
    assert_int_equal(check_str(f, t2), SL_JWT_NOT_YET_VALID);
    sl_fake_clock_advance(&f->fc, 100 * SEC);
    assert_int_equal(check_str(f, t2), SL_JWT_OK);
    free(t2);

    /* Invalid options are a configuration error, not a token verdict. */
    sl_jwt_verified v;
    sl_jwt_reason r;
    f->opts.leeway_s = SL_JWT_MAX_LEEWAY_S + 1;
    assert_int_equal(sl_jwt_verify(f->ks, "a.b.c", 5, &f->opts, &v, &r), SL_ECONFIG);
    f->opts.leeway_s = -1;
    assert_int_equal(sl_jwt_verify(f->ks, "a.b.c", 5, &f->opts, &v, &r), SL_ECONFIG);
    f->opts.leeway_s = 0;
    f->opts.max_bytes = SL_JWT_MAX_BYTES + 1;
    assert_int_equal(sl_jwt_verify(f->ks, "a.b.c", 5, &f->opts, &v, &r), SL_ECONFIG);
    sl_jwt_verify_opts_init(&f->opts, NULL);
    assert_int_equal(sl_jwt_verify(f->ks, "a.b.c", 5, &f->opts, &v, &r), SL_ECONFIG);
}

/* The verified-signature cache skips only the signature check: a repeat of a token verified
 * before hits; tampered bytes, a key retired from the set and an expired token are refused
 * exactly as without it. */
static void test_sig_cache(void **state)
{
    fixture *f = *state;
    sl_jwt_sig_cache *c = NULL;
    assert_int_equal(sl_jwt_sig_cache_new(0, &c), SL_EINVAL);
    assert_int_equal(sl_jwt_sig_cache_new(5, &c), 0); /* 8 slots */
    f->opts.sig_cache = c;
    sl_jwt_claims cl = std_claims();
    char *tok = sign(f->key, &cl);
    assert_int_equal(check_str(f, tok), SL_JWT_OK);
    assert_int_equal(sl_jwt_sig_cache_hits(c), 0);
    assert_int_equal(check_str(f, tok), SL_JWT_OK);
    assert_int_equal(check_str(f, tok), SL_JWT_OK);
    assert_int_equal(sl_jwt_sig_cache_hits(c), 2);
    /* a flipped signature byte, after the good one is cached: verified, and refused */
    size_t n = strlen(tok);
    char *bad = strdup(tok);
    bad[n - 3] = bad[n - 3] == 'A' ? 'B' : 'A';
    assert_int_equal(check_str(f, bad), SL_JWT_BAD_SIGNATURE);
    assert_int_equal(check_str(f, bad), SL_JWT_BAD_SIGNATURE);
    assert_int_equal(sl_jwt_sig_cache_hits(c), 2);
    free(bad);
    /* many other tokens push it out of its slot: it is verified again, and still passes */
    for (int i = 0; i < 64; i++) {
        sl_jwt_claims o = std_claims();
        o.iat = NOW_S - i;
        char *t = sign(f->key, &o);
        assert_int_equal(check_str(f, t), SL_JWT_OK);
        free(t);
    }
    assert_int_equal(check_str(f, tok), SL_JWT_OK);
    /* claims are read on every call: past exp, the cached token is expired */
    sl_fake_clock_advance(&f->fc, 3600 * SEC);
    assert_int_equal(check_str(f, tok), SL_JWT_EXPIRED);
    sl_fake_clock_init(&f->fc, NOW_S * SEC + 123456789);
    assert_int_equal(check_str(f, tok), SL_JWT_OK);
    /* the key retired from the set: refused although its signature is cached */
    assert_int_equal(sl_keyset_remove(f->ks, sl_auth_key_kid(f->key)), 0);
    assert_int_equal(check_str(f, tok), SL_JWT_UNKNOWN_KID);
    assert_int_equal(sl_keyset_add(f->ks, f->key), 0);
    f->opts.sig_cache = NULL;
    sl_jwt_sig_cache_free(c);
    free(tok);
}

static void test_rotation(void **state)
{
    fixture *f = *state;
    sl_auth_key *old_key = f->key, *new_key = NULL;
    assert_int_equal(sl_auth_key_generate(&new_key), 0);
    sl_jwt_claims c = std_claims();
    char *old_tok = sign(old_key, &c);
    char *new_tok = sign(new_key, &c);
    /* Before the new key is published, its tokens are unknown. */
    assert_int_equal(check_str(f, new_tok), SL_JWT_UNKNOWN_KID);
    assert_int_equal(sl_keyset_add(f->ks, new_key), 0);
    assert_int_equal(check_str(f, old_tok), SL_JWT_OK);
    assert_int_equal(check_str(f, new_tok), SL_JWT_OK);

    /* The gateway's view: the set travels as JWKS. */
    char *doc = NULL;
    size_t len = 0;
    assert_int_equal(sl_jwks_dump(f->ks, &doc, &len), 0);
    sl_keyset *gw = NULL;
    assert_int_equal(sl_jwks_parse(doc, len, &gw, NULL), 0);
    free(doc);
    sl_jwt_verified v;
    sl_jwt_reason r;
    assert_int_equal(sl_jwt_verify(gw, old_tok, strlen(old_tok), &f->opts, &v, &r), 0);
    assert_string_equal(v.kid, sl_auth_key_kid(old_key));
    sl_jwt_verified_deinit(&v);
    assert_int_equal(sl_jwt_verify(gw, new_tok, strlen(new_tok), &f->opts, &v, &r), 0);
    assert_string_equal(v.kid, sl_auth_key_kid(new_key));
    sl_jwt_verified_deinit(&v);
    sl_keyset_free(gw);

    /* The old key retired: its tokens stop verifying, the new ones carry on. */
    assert_int_equal(sl_keyset_remove(f->ks, sl_auth_key_kid(old_key)), 0);
    assert_int_equal(sl_jwks_dump(f->ks, &doc, &len), 0);
    assert_int_equal(sl_jwks_parse(doc, len, &gw, NULL), 0);
    free(doc);
    assert_int_equal(check_str(f, old_tok), SL_JWT_UNKNOWN_KID);
    assert_int_equal(check_str(f, new_tok), SL_JWT_OK);
    assert_int_equal(sl_jwt_verify(gw, old_tok, strlen(old_tok), &f->opts, &v, &r), SL_EINVAL);
    assert_int_equal(r, SL_JWT_UNKNOWN_KID);
    assert_int_equal(sl_jwt_verify(gw, new_tok, strlen(new_tok), &f->opts, &v, &r), 0);
    sl_jwt_verified_deinit(&v);
    sl_keyset_free(gw);
    free(old_tok);
    free(new_tok);
    sl_auth_key_free(new_key);
}

static void test_reason_names(void **state)
{
    (void)state;
    assert_string_equal(sl_jwt_reason_name(SL_JWT_OK), "ok");
    assert_string_equal(sl_jwt_reason_name(SL_JWT_MALFORMED), "malformed");
    assert_string_equal(sl_jwt_reason_name(SL_JWT_BAD_ALG), "bad_alg");
    assert_string_equal(sl_jwt_reason_name(SL_JWT_UNKNOWN_KID), "unknown_kid");
    assert_string_equal(sl_jwt_reason_name(SL_JWT_BAD_SIGNATURE), "bad_signature");
    assert_string_equal(sl_jwt_reason_name(SL_JWT_EXPIRED), "expired");
    assert_string_equal(sl_jwt_reason_name(SL_JWT_NOT_YET_VALID), "not_yet_valid");
    assert_string_equal(sl_jwt_reason_name(SL_JWT_BAD_ISSUER), "bad_issuer");
    assert_string_equal(sl_jwt_reason_name(SL_JWT_BAD_CLAIMS), "bad_claims");
    assert_string_equal(sl_jwt_reason_name((sl_jwt_reason)42), "unknown");
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_fixed_token), T(test_round_trip),   T(test_sign_rejects), T(test_tampering),
        T(test_bad_alg),     T(test_header_rules), T(test_shape),        T(test_payload_and_claims),
        T(test_times),       T(test_rotation),     T(test_sig_cache),    T(test_reason_names),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
