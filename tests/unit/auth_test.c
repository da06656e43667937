/*
 * Unit tests for the auth module's building blocks: base64url (RFC 4648
 * vectors and strict rejects), Ed25519 keys (RFC 8037 Appendix A known
 * answers, PEM files written atomically with mode 0600), key sets and JWKS.
 * JWT verification is in jwt_test.c, passwords in password_test.c.
 */
#include <shoal/auth.h>

#include <dirent.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* RFC 8037 Appendix A.1: the example Ed25519 key. */
static const char rfc8037_d[] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
static const char rfc8037_x[] = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

static sl_auth_key *rfc8037_key(void)
{
    uint8_t seed[64];
    size_t n = 0;
    assert_int_equal(sl_b64url_decode(rfc8037_d, strlen(rfc8037_d), seed, sizeof seed, &n), 0);
    assert_int_equal(n, 32);
    sl_auth_key *k = NULL;
    assert_int_equal(sl_auth_key_from_seed(seed, &k), 0);
    return k;
}

static void test_b64url_vectors(void **state)
{
    (void)state;
    /* RFC 4648 §10, without the padding, plus the two characters that differ from base64. */
    static const struct {
        const char *raw;
        size_t raw_len;
        const char *enc;
    } v[] = {
        {"", 0, ""},
        {"f", 1, "Zg"},
        {"fo", 2, "Zm8"},
        {"foo", 3, "Zm9v"},
        {"foob", 4, "Zm9vYg"},
        {"fooba", 5, "Zm9vYmE"},
        {"foobar", 6, "Zm9vYmFy"},
        {"\xfb\xff", 2, "-_8"},
        {"\xff\xff\xfe", 3, "___-"},
        {"\x00\x00", 2, "AAA"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(v); i++) {
        char enc[32];
        size_t n = 99;
        assert_int_equal(sl_b64url_encode(v[i].raw, v[i].raw_len, enc, sizeof enc, &n), 0);
        assert_string_equal(enc, v[i].enc);
        assert_int_equal(n, strlen(v[i].enc));
        assert_int_equal(n, SL_B64URL_ENCODED_LEN(v[i].raw_len));
        uint8_t dec[32];
        assert_int_equal(sl_b64url_decode(enc, n, dec, sizeof dec, &n), 0);
        assert_int_equal(n, v[i].raw_len);
        assert_memory_equal(dec, v[i].raw, n);
    }
    /* Every length from 0 to 64 round-trips, and the capacity macros are exact. */
    uint8_t raw[64], back[64];
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof raw; len++) {
        char enc[100];
        size_t n, m;
        assert_int_equal(sl_b64url_encode(raw, len, enc, SL_B64URL_ENCODED_LEN(len) + 1, &n), 0);
        assert_int_equal(sl_b64url_encode(raw, len, enc, SL_B64URL_ENCODED_LEN(len), &n),
                         SL_ELIMIT);
        assert_int_equal(sl_b64url_encode(raw, len, enc, sizeof enc, &n), 0);
        assert_int_equal(sl_b64url_decode(enc, n, back, SL_B64URL_DECODED_MAX(n), &m), 0);
        assert_int_equal(m, len);
        assert_memory_equal(back, raw, len);
    }
}

static void test_b64url_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zg==",   "Zm8=",  "Zg=",  /* padding */
        "Z",      "Zm9vY",         /* 1 modulo 4 */
        "Zh",     "Zm9",   "QR",   /* non-zero unused bits: canonical are Zg, Zm8, QQ */
        "QUF",    "Zm+v",  "Zm/v", /* standard base64 alphabet */
        "Zm9v\n", " Zm9",  "Zm.v", "Zm\x80v", "Zm9\xc3\xa9",
    };
    uint8_t out[16];
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        size_t n = 99;
        assert_int_equal(sl_b64url_decode(bad[i], strlen(bad[i]), out, sizeof out, &n), SL_EPARSE);
        assert_int_equal(n, 0);
    }
    size_t n;
    assert_int_equal(sl_b64url_decode("Zm\0v", 4, out, sizeof out, &n), SL_EPARSE);
    /* The canonical forms of the rejected ones decode. */
    assert_int_equal(sl_b64url_decode("QQ", 2, out, sizeof out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 'A');
    assert_int_equal(sl_b64url_decode("QUE", 3, out, sizeof out, &n), 0);
    assert_int_equal(n, 2);
    /* Bounded output: 8 characters need 6 bytes. */
    assert_int_equal(sl_b64url_decode("Zm9vYmFy", 8, out, 5, &n), SL_ELIMIT);
    assert_int_equal(sl_b64url_decode("Zm9vYmFy", 8, out, 6, &n), 0);
}

static void test_rfc8037_key_and_thumbprint(void **state)
{
    (void)state;
    sl_auth_key *k = rfc8037_key();
    char x[64];
    assert_int_equal(sl_b64url_encode(sl_auth_key_public(k), 32, x, sizeof x, NULL), 0);
    assert_string_equal(x, rfc8037_x);
    /* RFC 8037 A.3: the RFC 7638 thumbprint of that key. */
    assert_string_equal(sl_auth_key_kid(k), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    assert_true(sl_auth_key_has_private(k));
    sl_auth_key_free(k);
}

static void test_rfc8037_signature(void **state)
{
    (void)state;
    sl_auth_key *k = rfc8037_key();
    static const char payload[] = "Example of Ed25519 signing";
    char *tok = NULL;
    size_t len = 0;
    assert_int_equal(
        sl_jws_sign(k, "{\"alg\":\"EdDSA\"}", 15, payload, strlen(payload), &tok, &len), 0);
    /* RFC 8037 A.4, byte for byte (Ed25519 is deterministic). */
    assert_string_equal(tok, "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
                             "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsP"
                             "t9g7sVvpAr_MuM0KAg");
    assert_int_equal(len, strlen(tok));
    free(tok);
    sl_auth_key_free(k);
}

static void test_key_generate_and_public(void **state)
{
    (void)state;
    sl_auth_key *a = NULL, *b = NULL, *pub = NULL;
    assert_int_equal(sl_auth_key_generate(&a), 0);
    assert_int_equal(sl_auth_key_generate(&b), 0);
    assert_memory_not_equal(sl_auth_key_public(a), sl_auth_key_public(b), 32);
    assert_string_not_equal(sl_auth_key_kid(a), sl_auth_key_kid(b));
    assert_int_equal(strlen(sl_auth_key_kid(a)), 43);
    assert_int_equal(sl_auth_key_from_public(sl_auth_key_public(a), NULL, &pub), 0);
    assert_false(sl_auth_key_has_private(pub));
    assert_string_equal(sl_auth_key_kid(pub), sl_auth_key_kid(a));
    char *tok = NULL;
    assert_int_equal(sl_jws_sign(pub, "{}", 2, "x", 1, &tok, NULL), SL_EINVAL);
    assert_null(tok);
    sl_auth_key_free(pub);
    char longkid[SL_AUTH_KID_MAX + 2];
    memset(longkid, 'k', sizeof longkid - 1);
    longkid[sizeof longkid - 1] = '\0';
    assert_int_equal(sl_auth_key_from_public(sl_auth_key_public(a), longkid, &pub), SL_EINVAL);
    assert_int_equal(sl_auth_key_from_public(sl_auth_key_public(a), "mine", &pub), 0);
    assert_string_equal(sl_auth_key_kid(pub), "mine");
    sl_auth_key_free(pub);
    sl_auth_key_free(a);
    sl_auth_key_free(b);
}

/* A fresh private directory for key files, removed by rm_dir(). */
static void make_dir(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/shoal-auth-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void test_pem_save_load(void **state)
{
    (void)state;
    char dir[64], path[128];
    make_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/signing.pem", dir);
    sl_auth_key *a = rfc8037_key(), *b = NULL, *loaded = NULL;
    assert_int_equal(sl_auth_key_generate(&b), 0);

    umask(022); /* the file must be 0600 whatever the umask allows */
    assert_int_equal(sl_auth_key_save_pem(a, path), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(count_entries(dir), 1); /* no temporary file left behind */
    FILE *f = fopen(path, "r");
    char line[64] = {0};
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_string_equal(line, "-----BEGIN PRIVATE KEY-----\n"); /* PKCS#8 */

    assert_int_equal(sl_auth_key_load_pem(path, &loaded), 0);
    assert_true(sl_auth_key_has_private(loaded));
    assert_string_equal(sl_auth_key_kid(loaded), sl_auth_key_kid(a));
    assert_memory_equal(sl_auth_key_public(loaded), sl_auth_key_public(a), 32);
    sl_auth_key_free(loaded);

    /* Replacing the file: readers get the new key, still one file, still 0600. */
    assert_int_equal(sl_auth_key_save_pem(b, path), 0);
    assert_int_equal(sl_auth_key_load_pem(path, &loaded), 0);
    assert_string_equal(sl_auth_key_kid(loaded), sl_auth_key_kid(b));
    assert_int_equal(count_entries(dir), 1);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    sl_auth_key_free(loaded);

    /* A public-only key cannot be saved; a missing directory fails without leftovers. */
    sl_auth_key *pub = NULL;
    assert_int_equal(sl_auth_key_from_public(sl_auth_key_public(a), NULL, &pub), 0);
    assert_int_equal(sl_auth_key_save_pem(pub, path), SL_EINVAL);
    char nodir[160];
    snprintf(nodir, sizeof nodir, "%s/missing/k.pem", dir);
    assert_int_equal(sl_auth_key_save_pem(a, nodir), -ENOENT);
    assert_int_equal(count_entries(dir), 1);
    sl_auth_key_free(pub);
    sl_auth_key_free(a);
    sl_auth_key_free(b);
    rm_dir(dir);
}

static void test_pem_load_rejects(void **state)
{
    (void)state;
    char dir[64], path[128];
    make_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/k.pem", dir);
    sl_auth_key *k = NULL;
    assert_int_equal(sl_auth_key_load_pem(path, &k), -ENOENT);
    write_file(path, "not a key\n", 10);
    assert_int_equal(sl_auth_key_load_pem(path, &k), SL_EPARSE);
    assert_null(k);

    /* A PUBLIC KEY PEM holds no private key. */
    sl_auth_key *a = rfc8037_key();
    EVP_PKEY *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, sl_auth_key_public(a), 32);
    FILE *f = fopen(path, "w");
    assert_int_equal(PEM_write_PUBKEY(f, pub), 1);
    fclose(f);
    EVP_PKEY_free(pub);
    assert_int_equal(sl_auth_key_load_pem(path, &k), SL_EPARSE);

    /* An encrypted key is refused without prompting for a passphrase. */
    EVP_PKEY *priv = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    f = fopen(path, "w");
    assert_int_equal(
        PEM_write_PKCS8PrivateKey(f, priv, EVP_aes_256_cbc(), NULL, 0, NULL, (void *)"secret-pass"),
        1);
    fclose(f);
    EVP_PKEY_free(priv);
    assert_int_equal(sl_auth_key_load_pem(path, &k), SL_EPARSE);

    /* A private key of another type. */
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(ec);
    f = fopen(path, "w");
    assert_int_equal(PEM_write_PrivateKey(f, ec, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    EVP_PKEY_free(ec);
    assert_int_equal(sl_auth_key_load_pem(path, &k), SL_EINVAL);

    /* Too large: refused before parsing. */
    char *big = malloc(SL_AUTH_PEM_MAX_BYTES + 1);
    memset(big, 'A', SL_AUTH_PEM_MAX_BYTES + 1);
    write_file(path, big, SL_AUTH_PEM_MAX_BYTES + 1);
    free(big);
    assert_int_equal(sl_auth_key_load_pem(path, &k), SL_ELIMIT);
    assert_null(k);
    sl_auth_key_free(a);
    rm_dir(dir);
}

static void test_keyset(void **state)
{
    (void)state;
    sl_keyset *ks = NULL;
    assert_int_equal(sl_keyset_new(&ks), 0);
    sl_auth_key *keys[SL_KEYSET_MAX + 1];
    for (size_t i = 0; i < SL_ARRAY_LEN(keys); i++)
        assert_int_equal(sl_auth_key_generate(&keys[i]), 0);
    for (size_t i = 0; i < SL_KEYSET_MAX; i++)
        assert_int_equal(sl_keyset_add(ks, keys[i]), 0);
    assert_int_equal(sl_keyset_add(ks, keys[SL_KEYSET_MAX]), SL_ELIMIT);
    assert_int_equal(sl_keyset_add(ks, keys[3]), SL_EEXIST);
    assert_int_equal(sl_keyset_count(ks), SL_KEYSET_MAX);
    const char *kid3 = sl_auth_key_kid(keys[3]);
    const sl_auth_key *found = sl_keyset_find(ks, kid3, strlen(kid3));
    assert_non_null(found);
    assert_false(sl_auth_key_has_private(found)); /* the set keeps public keys only */
    assert_memory_equal(sl_auth_key_public(found), sl_auth_key_public(keys[3]), 32);
    assert_null(sl_keyset_find(ks, kid3, strlen(kid3) - 1)); /* no prefix matches */
    assert_int_equal(sl_keyset_remove(ks, kid3), 0);
    assert_int_equal(sl_keyset_remove(ks, kid3), SL_ENOTFOUND);
    assert_null(sl_keyset_find(ks, kid3, strlen(kid3)));
    assert_int_equal(sl_keyset_add(ks, keys[SL_KEYSET_MAX]), 0);
    const char *k0 = sl_auth_key_kid(keys[0]);
    assert_non_null(sl_keyset_find(ks, k0, strlen(k0)));
    for (size_t i = 0; i < SL_ARRAY_LEN(keys); i++)
        sl_auth_key_free(keys[i]);
    sl_keyset_free(ks);
}

static void test_jwks_round_trip(void **state)
{
    (void)state;
    sl_auth_key *a = rfc8037_key(), *b = NULL;
    assert_int_equal(sl_auth_key_generate(&b), 0);
    sl_keyset *ks = NULL, *back = NULL;
    assert_int_equal(sl_keyset_new(&ks), 0);
    assert_int_equal(sl_keyset_add(ks, a), 0);
    assert_int_equal(sl_keyset_add(ks, b), 0);
    char *doc = NULL;
    size_t len = 0;
    assert_int_equal(sl_jwks_dump(ks, &doc, &len), 0);
    assert_int_equal(len, strlen(doc));
    /* The RFC 8037 key comes first, exactly in this form; never a "d". */
    const char *first = "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
                        "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\","
                        "\"kid\":\"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\","
                        "\"alg\":\"EdDSA\",\"use\":\"sig\"},{";
    assert_memory_equal(doc, first, strlen(first));
    assert_null(strstr(doc, "\"d\""));
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    assert_int_equal(sl_jwks_parse(doc, len, &back, &errs), 0);
    assert_int_equal(sl_keyset_count(back), 2);
    const sl_auth_key *kb = sl_keyset_find(back, sl_auth_key_kid(b), 43);
    assert_non_null(kb);
    assert_memory_equal(sl_auth_key_public(kb), sl_auth_key_public(b), 32);
    free(doc);
    sl_keyset_free(back);

    /* An empty set dumps to an empty list, which parses. */
    sl_keyset *empty = NULL;
    assert_int_equal(sl_keyset_new(&empty), 0);
    assert_int_equal(sl_jwks_dump(empty, &doc, NULL), 0);
    assert_string_equal(doc, "{\"keys\":[]}");
    assert_int_equal(sl_jwks_parse(doc, strlen(doc), &back, NULL), 0);
    assert_int_equal(sl_keyset_count(back), 0);
    free(doc);
    sl_keyset_free(back);
    sl_keyset_free(empty);
    sl_keyset_free(ks);
    sl_auth_key_free(a);
    sl_auth_key_free(b);
}

static void test_jwks_ignores_foreign_keys(void **state)
{
    (void)state;
    const char *doc =
        "{\"keys\":["
        "{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\",\"kid\":\"rsa\"},"
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"},"
        "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"AA\"},"
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"use\":\"enc\",\"x\":\"AA\"},"
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"alg\":\"Ed448\",\"x\":\"AA\"},"
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_"
        "7TyWQHOg7hcvPapiMlrwIaaPcHURo\"},"
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"named\",\"use\":\"sig\",\"alg\":\"EdDSA\","
        "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\",\"extra\":[1,2]}"
        "],\"other\":true}";
    sl_keyset *ks = NULL;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    assert_int_equal(sl_jwks_parse(doc, strlen(doc), &ks, &errs), 0);
    assert_int_equal(errs.count, 0);
    assert_int_equal(sl_keyset_count(ks), 2);
    /* Without a kid, a key is known by its thumbprint. */
    assert_non_null(sl_keyset_find(ks, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", 43));
    assert_non_null(sl_keyset_find(ks, "named", 5));
    assert_null(sl_keyset_find(ks, "rsa", 3));
    sl_keyset_free(ks);
}

#define JWK_X "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\""
#define ED    "\"kty\":\"OKP\",\"crv\":\"Ed25519\""

static void test_jwks_rejects(void **state)
{
    (void)state;
    static const struct {
        const char *doc;
        int rc;
        const char *field;
    } bad[] = {
        {"", SL_EPARSE, ""},
        {"{\"keys\":", SL_EPARSE, ""},
        {"[]", SL_EINVAL, ""},
        {"{}", SL_EINVAL, "keys"},
        {"{\"keys\":{}}", SL_EINVAL, "keys"},
        {"{\"keys\":[1]}", SL_EINVAL, "keys[0]"},
        {"{\"keys\":[{\"crv\":\"Ed25519\"}]}", SL_EINVAL, "keys[0]"},
        {"{\"keys\":[{\"kty\":7}]}", SL_EINVAL, "keys[0]"},
        {"{\"keys\":[{" ED "}]}", SL_EINVAL, "keys[0]"},
        {"{\"keys\":[{" ED ",\"x\":5}]}", SL_EINVAL, "keys[0]"},
        {"{\"keys\":[{" ED ",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHUR\"}]}", SL_EINVAL,
         "keys[0]"},
        {"{\"keys\":[{" ED ",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"}]}", SL_EINVAL,
         "keys[0]"},
        {"{\"keys\":[{" ED ",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURp\"}]}", SL_EINVAL,
         "keys[0]"},
        {"{\"keys\":[{" ED "," JWK_X ",\"d\":\"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\"}]}",
         SL_EINVAL, "keys[0]"},
        {"{\"keys\":[{" ED "," JWK_X ",\"kid\":3}]}", SL_EINVAL, "keys[0]"},
        {"{\"keys\":[{" ED "," JWK_X ",\"kid\":\"\"}]}", SL_EINVAL, "keys[0]"},
        {"{\"keys\":[{" ED "," JWK_X ",\"kid\":\"a\"},{" ED "," JWK_X ",\"kid\":\"a\"}]}",
         SL_EINVAL, "keys[1]"},
        {"{\"keys\":[{" ED "," JWK_X ",\"use\":false}]}", SL_EINVAL, "keys[0]"},
        {"{\"keys\":[{" ED "," JWK_X "}],\"keys\":[]}", SL_EPARSE, ""}, /* duplicate key */
        {"{\"keys\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}", SL_ELIMIT, "keys"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        sl_keyset *ks = (sl_keyset *)&ks; /* must be reset to NULL */
        sl_json_errors errs;
        sl_json_errors_init(&errs);
        int rc = sl_jwks_parse(bad[i].doc, strlen(bad[i].doc), &ks, &errs);
        if (rc != bad[i].rc) fail_msg("case %zu: %s: rc %d", i, bad[i].doc, rc);
        assert_null(ks);
        assert_int_equal(errs.count, 1);
        assert_string_equal(errs.items[0].field, bad[i].field);
    }
    /* A 64-kid is fine, 65 is not. */
    char doc[256];
    snprintf(doc, sizeof doc, "{\"keys\":[{" ED "," JWK_X ",\"kid\":\"%.*s\"}]}", 64,
             "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk");
    sl_keyset *ks = NULL;
    assert_int_equal(sl_jwks_parse(doc, strlen(doc), &ks, NULL), 0);
    sl_keyset_free(ks);
    snprintf(doc, sizeof doc, "{\"keys\":[{" ED "," JWK_X ",\"kid\":\"%.*s\"}]}", 65,
             "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk");
    assert_int_equal(sl_jwks_parse(doc, strlen(doc), &ks, NULL), SL_EINVAL);
    /* Too large a document is refused before parsing. */
    size_t big_len = SL_JWKS_MAX_BYTES + 1;
    char *big = malloc(big_len);
    memset(big, ' ', big_len);
    big[0] = '{';
    big[big_len - 1] = '}';
    assert_int_equal(sl_jwks_parse(big, big_len, &ks, NULL), SL_ELIMIT);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_vectors),
        cmocka_unit_test(test_b64url_rejects),
        cmocka_unit_test(test_rfc8037_key_and_thumbprint),
        cmocka_unit_test(test_rfc8037_signature),
        cmocka_unit_test(test_key_generate_and_public),
        cmocka_unit_test(test_pem_save_load),
        cmocka_unit_test(test_pem_load_rejects),
        cmocka_unit_test(test_keyset),
        cmocka_unit_test(test_jwks_round_trip),
        cmocka_unit_test(test_jwks_ignores_foreign_keys),
        cmocka_unit_test(test_jwks_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
