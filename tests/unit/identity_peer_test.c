/*
 * The mesh's local hop (identity.h): which header sets name a caller service
 * (sl_identity_peer_verify), and which token files are accepted
 * (sl_identity_peer_token_load).
 */
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

static sl_identity_key tok;
static char hex[65];

#define H(n, v) ((sl_http_header){SL_SLICE_LIT(n), {(v), strlen(v)}})

static int verify(const sl_http_header *h, size_t n, char *out)
{
    return sl_identity_peer_verify(&tok, h, n, out, SL_IDENTITY_PEER_MAX + 1);
}

static void test_verify(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof tok.k; i++)
        tok.k[i] = (uint8_t)(i * 7 + 1);
    sl_identity_peer_token_hex(&tok, hex);
    assert_int_equal(strlen(hex), 64);
    char out[SL_IDENTITY_PEER_MAX + 1];
    /* the sidecar's pair, header names in any case, among other headers */
    sl_http_header ok[] = {H("Host", "x"), H("X-Shoal-Peer-Service", "order"),
                           H("x-shoal-peer-token", hex)};
    assert_int_equal(verify(ok, 3, out), 0);
    assert_string_equal(out, "order");
    /* neither header */
    assert_int_equal(verify(ok, 1, out), SL_ENOTFOUND);
    assert_string_equal(out, "");
    /* one without the other */
    assert_int_equal(verify(ok, 2, out), SL_EINVAL);
    sl_http_header only_tok[] = {H("x-shoal-peer-token", hex)};
    assert_int_equal(verify(only_tok, 1, out), SL_EINVAL);
    /* a wrong token: one character off, shorter, longer */
    char wrong[66];
    memcpy(wrong, hex, 65);
    wrong[63] = wrong[63] == '0' ? '1' : '0';
    sl_http_header bad[] = {H("x-shoal-peer-service", "order"), H("x-shoal-peer-token", wrong)};
    assert_int_equal(verify(bad, 2, out), SL_EINVAL);
    wrong[63] = hex[63];
    bad[1].value.len = 63;
    assert_int_equal(verify(bad, 2, out), SL_EINVAL);
    wrong[64] = '0';
    wrong[65] = '\0';
    bad[1].value.len = 65;
    assert_int_equal(verify(bad, 2, out), SL_EINVAL);
    /* repeated headers: a forged copy next to the sidecar's */
    sl_http_header twice[] = {H("x-shoal-peer-service", "order"), H("x-shoal-peer-token", hex),
                              H("x-shoal-peer-service", "gateway")};
    assert_int_equal(verify(twice, 3, out), SL_EINVAL);
    sl_http_header twice_tok[] = {H("x-shoal-peer-service", "order"), H("x-shoal-peer-token", hex),
                                  H("x-shoal-peer-token", hex)};
    assert_int_equal(verify(twice_tok, 3, out), SL_EINVAL);
    /* names that are no mesh identity */
    static const char *const names[] = {
        "",       "-order",  "Order",
        "or der", "order/x", "a234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        sl_http_header h[] = {H("x-shoal-peer-service", names[i]), H("x-shoal-peer-token", hex)};
        assert_int_equal(verify(h, 2, out), SL_EINVAL);
        assert_string_equal(out, "");
    }
    /* the longest name that is one */
    const char *longest = "a23456789012345678901234567890123456789012345678901234567890123";
    sl_http_header h[] = {H("x-shoal-peer-service", longest), H("x-shoal-peer-token", hex)};
    assert_int_equal(verify(h, 2, out), 0);
    assert_string_equal(out, longest);
}

static void test_token_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/shoal-peer-XXXXXX", path[64], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.token", dir);
    sl_identity_key made, got;
    assert_int_equal(sl_identity_key_ensure(path, &made, err), 0);
    assert_int_equal(sl_identity_peer_token_load(path, &got, err), 0);
    assert_memory_equal(made.k, got.k, sizeof made.k);
    /* others may read it: refused, naming the mode */
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(sl_identity_peer_token_load(path, &got, err), SL_EINVAL);
    assert_non_null(strstr(err, "0600"));
    /* a symbolic link to it is not followed */
    char link[80];
    snprintf(link, sizeof link, "%s/link.token", dir);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(sl_identity_peer_token_load(link, &got, err), SL_EIO);
    assert_int_equal(unlink(link), 0);
    /* not a key */
    assert_int_equal(chmod(path, 0600), 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not a token\n", f);
    fclose(f);
    assert_int_equal(sl_identity_peer_token_load(path, &got, err), SL_EINVAL);
    /* a directory, and a missing file */
    assert_int_equal(sl_identity_peer_token_load(dir, &got, err), SL_EINVAL);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(sl_identity_peer_token_load(path, &got, err), SL_EIO);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_token_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
