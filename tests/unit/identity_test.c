/* Unit tests for signed identity headers: sign/verify, forgery, staleness, key files. */
#include <shoal/identity.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static sl_slice S(const char *s)
{
    return (sl_slice){s, strlen(s)};
}

static sl_identity_key key1, key2;
static const int64_t NOW = 1795869296000;

static int setup(void **state)
{
    (void)state;
    memset(key1.k, 1, sizeof key1.k);
    memset(key2.k, 2, sizeof key2.k);
    return 0;
}

static int check(const char *uid, const char *role, const char *proof, sl_http_method m,
                 const char *path, int64_t now, sl_identity *out)
{
    sl_http_header h[3] = {
        {S("X-User-Id"), S(uid)}, {S("x-user-role"), S(role)}, {S("x-shoal-identity"), S(proof)}};
    return sl_identity_verify(&key1, h, 3, m, S(path), now, 60000, out);
}

static void test_round_trip(void **state)
{
    (void)state;
    char proof[SL_IDENTITY_PROOF_MAX];
    assert_int_equal(
        sl_identity_sign(&key1, "u-123", "customer", SL_HTTP_GET, S("/cart"), NOW, proof), 0);
    assert_memory_equal(proof, "v1.1795869296000.", 17);
    sl_identity id;
    assert_int_equal(check("u-123", "customer", proof, SL_HTTP_GET, "/cart", NOW + 1000, &id), 0);
    assert_string_equal(id.user_id, "u-123");
    assert_string_equal(id.role, "customer");
}

static void test_forgeries_rejected(void **state)
{
    (void)state;
    char proof[SL_IDENTITY_PROOF_MAX], other[SL_IDENTITY_PROOF_MAX];
    assert_int_equal(
        sl_identity_sign(&key1, "u-123", "customer", SL_HTTP_GET, S("/cart"), NOW, proof), 0);
    sl_identity id;
    /* Another user, role, method or path under the same proof. */
    assert_int_equal(check("u-124", "customer", proof, SL_HTTP_GET, "/cart", NOW, &id), SL_EINVAL);
    assert_int_equal(check("u-123", "admin", proof, SL_HTTP_GET, "/cart", NOW, &id), SL_EINVAL);
    assert_int_equal(check("u-123", "customer", proof, SL_HTTP_PUT, "/cart", NOW, &id), SL_EINVAL);
    assert_int_equal(check("u-123", "customer", proof, SL_HTTP_GET, "/carts", NOW, &id), SL_EINVAL);
    /* Stale or from the future. */
    assert_int_equal(check("u-123", "customer", proof, SL_HTTP_GET, "/cart", NOW + 60001, &id),
                     SL_EINVAL);
    assert_int_equal(check("u-123", "customer", proof, SL_HTTP_GET, "/cart", NOW - 60001, &id),
                     SL_EINVAL);
    /* Signed with another key. */
    assert_int_equal(
        sl_identity_sign(&key2, "u-123", "customer", SL_HTTP_GET, S("/cart"), NOW, other), 0);
    assert_int_equal(check("u-123", "customer", other, SL_HTTP_GET, "/cart", NOW, &id), SL_EINVAL);
    /* A flipped digit of the MAC, a changed time, garbage. */
    proof[strlen(proof) - 1] = proof[strlen(proof) - 1] == '0' ? '1' : '0';
    assert_int_equal(check("u-123", "customer", proof, SL_HTTP_GET, "/cart", NOW, &id), SL_EINVAL);
    const char *garbage[] = {
        "", "v1.", "v2.1.abc", "v1.x.0000", "v1.1795869296000.zz", "v1.1795869296000"};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++)
        assert_int_equal(check("u-123", "customer", garbage[i], SL_HTTP_GET, "/cart", NOW, &id),
                         SL_EINVAL);
    /* Headers without a proof, or a proof without headers. */
    sl_http_header only_user[1] = {{S("x-user-id"), S("u-1")}};
    assert_int_equal(sl_identity_verify(&key1, only_user, 1, SL_HTTP_GET, S("/"), NOW, 60000, &id),
                     SL_EINVAL);
    sl_http_header none[1] = {{S("accept"), S("*/*")}};
    assert_int_equal(sl_identity_verify(&key1, none, 1, SL_HTTP_GET, S("/"), NOW, 60000, &id),
                     SL_ENOTFOUND);
    /* Ids and roles must be visible ASCII and bounded. */
    assert_int_equal(sl_identity_sign(&key1, "", "customer", SL_HTTP_GET, S("/"), NOW, other),
                     SL_EINVAL);
    assert_int_equal(sl_identity_sign(&key1, "a b", "customer", SL_HTTP_GET, S("/"), NOW, other),
                     SL_EINVAL);
}

static void test_key_files(void **state)
{
    (void)state;
    char path[] = "/tmp/shoal-idkey-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    sl_identity_key a, b;
    char err[256];
    assert_int_equal(sl_identity_key_ensure(path, &a, err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(sl_identity_key_ensure(path, &b, err), 0); /* loads the existing one */
    assert_memory_equal(a.k, b.k, sizeof a.k);
    FILE *f = fopen(path, "w");
    fputs("not hex\n", f);
    fclose(f);
    assert_int_equal(sl_identity_key_load(path, &b, err), SL_EINVAL);
    unlink(path);
    assert_int_equal(sl_identity_key_load(path, &b, err), SL_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_forgeries_rejected),
        cmocka_unit_test(test_key_files),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
