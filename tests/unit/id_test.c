/* Unit tests for the id module: UUIDv7 layout, monotonicity, pooling, parsing, and the
 * per-thread generator behind sl_uuid7_at (fork-safe). */
#include <shoal/id.h>
#include <shoal/rand.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* A deterministic random source that counts refills. */
typedef struct test_source {
    sl_rand r;
    int refills;
    int fail;
} test_source;

static int test_random(void *data, void *buf, size_t len)
{
    test_source *ts = data;
    if (ts->fail) return SL_EIO;
    ts->refills++;
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)sl_rand_next(&ts->r);
    return 0;
}

/* 2026-11-28T12:34:56.789Z */
#define T0_NS ((int64_t)1795869296789 * 1000000)

static void test_format_and_bits(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, T0_NS);
    test_source src = {0};
    sl_rand_seed(&src.r, 1);
    sl_idgen gen;
    sl_idgen_init(&gen, &fc.clock, test_random, &src);

    char s[SL_UUID_STR_MAX];
    assert_int_equal(sl_uuid7_new(&gen, s), 0);
    assert_int_equal(strlen(s), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(s[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", s[i]));
    }
    assert_int_equal(s[14], '7');                /* version nibble */
    assert_non_null(strchr("89ab", s[19]));      /* variant 10xx */
    assert_memory_equal(s, "01a22226-c895", 13); /* 48-bit ms timestamp 0x01a22226c895 */

    uint8_t b[16];
    assert_int_equal(sl_uuid_parse(s, 36, b), 0);
    assert_int_equal(sl_uuid7_timestamp_ms(b), 1795869296789ULL);
    assert_int_equal(b[6] >> 4, 7);
    assert_int_equal(b[8] & 0xc0, 0x80);
    assert_true(sl_uuid7_is_valid(s, 36));

    char again[SL_UUID_STR_MAX];
    sl_uuid_format(b, again);
    assert_string_equal(s, again);
}

static void test_monotonic_frozen_clock(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, T0_NS);
    test_source src = {0};
    sl_rand_seed(&src.r, 2);
    sl_idgen gen;
    sl_idgen_init(&gen, &fc.clock, test_random, &src);

    char prev[SL_UUID_STR_MAX], cur[SL_UUID_STR_MAX];
    assert_int_equal(sl_uuid7_new(&gen, prev), 0);
    for (int i = 0; i < 100000; i++) {
        assert_int_equal(sl_uuid7_new(&gen, cur), 0);
        if (strcmp(prev, cur) >= 0) fail_msg("not increasing at %d: %s >= %s", i, prev, cur);
        assert_true(sl_uuid7_is_valid(cur, 36));
        memcpy(prev, cur, sizeof cur);
    }
    /* Pooled randomness: ~4 bytes per id from a 4 KiB pool, so about 100 refills, not 100,000. */
    assert_true(src.refills > 0 && src.refills < 200);
}

static void test_clock_backwards(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, T0_NS);
    test_source src = {0};
    sl_rand_seed(&src.r, 3);
    sl_idgen gen;
    sl_idgen_init(&gen, &fc.clock, test_random, &src);

    uint8_t a[16], b[16], c[16];
    assert_int_equal(sl_uuid7_new_bytes(&gen, a), 0);
    fc.wall_ns -= (int64_t)5000 * 1000000; /* NTP steps the clock back 5 s */
    assert_int_equal(sl_uuid7_new_bytes(&gen, b), 0);
    assert_true(memcmp(a, b, 16) < 0);
    assert_int_equal(sl_uuid7_timestamp_ms(b), sl_uuid7_timestamp_ms(a));
    fc.wall_ns += (int64_t)6000 * 1000000; /* later than before: a fresh millisecond */
    assert_int_equal(sl_uuid7_new_bytes(&gen, c), 0);
    assert_true(memcmp(b, c, 16) < 0);
    assert_int_equal(sl_uuid7_timestamp_ms(c), 1795869297789ULL);
}

static void test_random_failure(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, T0_NS);
    test_source src = {.fail = 1};
    sl_idgen gen;
    sl_idgen_init(&gen, &fc.clock, test_random, &src);
    char s[SL_UUID_STR_MAX] = "untouched";
    assert_int_equal(sl_uuid7_new(&gen, s), SL_EIO);
    assert_string_equal(s, "untouched");
}

static void test_system_source(void **state)
{
    (void)state;
    sl_idgen gen;
    sl_idgen_init(&gen, sl_clock_system(), NULL, NULL);
    char a[SL_UUID_STR_MAX], b[SL_UUID_STR_MAX];
    assert_int_equal(sl_uuid7_new(&gen, a), 0);
    assert_int_equal(sl_uuid7_new(&gen, b), 0);
    assert_true(strcmp(a, b) < 0);
    assert_true(sl_uuid7_is_valid(a, 36));
}

static void test_parse(void **state)
{
    (void)state;
    uint8_t b[16];
    const char *ok = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f"; /* RFC 9562 Appendix A.6 */
    assert_int_equal(sl_uuid_parse(ok, 36, b), 0);
    assert_int_equal(sl_uuid7_timestamp_ms(b), 0x017f22e279b0ULL);
    assert_true(sl_uuid7_is_valid(ok, 36));

    /* Uppercase is accepted on input; formatting gives lowercase back. */
    const char *upper = "017F22E2-79B0-7CC3-98C4-DC0C0C07398F";
    uint8_t u[16];
    assert_int_equal(sl_uuid_parse(upper, 36, u), 0);
    assert_memory_equal(b, u, 16);
    char s[SL_UUID_STR_MAX];
    sl_uuid_format(u, s);
    assert_string_equal(s, ok);

    /* A valid version 4 UUID parses, but is not a v7. */
    const char *v4 = "919108f7-52d1-4320-9bac-f847db4148a8";
    assert_int_equal(sl_uuid_parse(v4, 36, b), 0);
    assert_false(sl_uuid7_is_valid(v4, 36));
    /* Version 7 with the wrong variant (0xxx, then 110x). */
    assert_false(sl_uuid7_is_valid("017f22e2-79b0-7cc3-18c4-dc0c0c07398f", 36));
    assert_false(sl_uuid7_is_valid("017f22e2-79b0-7cc3-c8c4-dc0c0c07398f", 36));

    const char *bad[] = {
        "",
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398",   /* 35 chars */
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398f0", /* 37 chars */
        "017f22e279b07cc398c4dc0c0c07398f",      /* no hyphens */
        "017f22e2-79b07-cc3-98c4-dc0c0c07398f",  /* hyphen moved */
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398g",  /* non-hex */
        "{17f22e2-79b0-7cc3-98c4-dc0c0c0739}",   /* braces */
        "017f22e2 79b0 7cc3 98c4 dc0c0c07398f",  /* spaces */
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398\xff",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        memset(b, 0xaa, sizeof b);
        if (sl_uuid_parse(bad[i], strlen(bad[i]), b) != SL_EPARSE) fail_msg("accepted %s", bad[i]);
        assert_int_equal(b[0], 0xaa);
        assert_false(sl_uuid7_is_valid(bad[i], strlen(bad[i])));
    }
    /* An embedded NUL with the right length is rejected too. */
    assert_int_equal(sl_uuid_parse("017f22e2-79b0-7cc3-98c4-dc0c0c0739\0f", 36, b), SL_EPARSE);
    assert_int_equal(sl_uuid_parse(NULL, 36, b), SL_EPARSE);
}

/* sl_id_text_valid: 1..max bytes of [A-Za-z0-9._:-]. */
static void test_id_text(void **state)
{
    (void)state;
    assert_true(sl_id_text_valid("0190a3f2-7c1e-7abc-8def-0123456789ab", 36, 64));
    assert_true(sl_id_text_valid("svc:order_1.x", 13, 64));
    assert_true(sl_id_text_valid("AZaz09", 6, 6));
    assert_false(sl_id_text_valid("", 0, 64));
    assert_false(sl_id_text_valid(NULL, 0, 64));
    assert_false(sl_id_text_valid(NULL, 3, 64));
    const char *bad[] = {"a b", "a/b", "caf\xc3\xa9", "a\tb", "a+b", "a@b", "{ab}", "a\x7f"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
        if (sl_id_text_valid(bad[i], strlen(bad[i]), 64)) fail_msg("accepted %s", bad[i]);
    /* Only `len` bytes count: a NUL inside them is refused, bytes after them are not read. */
    assert_false(sl_id_text_valid("ab\0c", 4, 64));
    assert_true(sl_id_text_valid("ab/c", 2, 64));
    char long_id[65];
    memset(long_id, 'a', sizeof long_id);
    assert_true(sl_id_text_valid(long_id, 64, 64));
    assert_false(sl_id_text_valid(long_id, 65, 64));
    assert_false(sl_id_text_valid("ab", 2, 1));
}

/* sl_uuid7_at: the caller's timestamp, the library's per-thread generator. */
static void test_uuid7_at(void **state)
{
    (void)state;
    char a[SL_UUID_STR_MAX], b[SL_UUID_STR_MAX];
    assert_int_equal(sl_uuid7_at(0x0123456789ab, a), 0);
    assert_int_equal(strlen(a), 36);
    assert_memory_equal(a, "01234567-89ab-7", 15);
    assert_true(strchr("89ab", a[19]) != NULL);
    assert_int_equal(sl_uuid7_at(0x0123456789ab, b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(sl_uuid7_at(0x0123456789ac, b), 0);
    assert_true(strcmp(a, b) < 0); /* time-ordered */
    /* Within one millisecond a thread's ids increase, as sl_uuid7_new's do. */
    char prev[SL_UUID_STR_MAX];
    memcpy(prev, b, sizeof prev);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(sl_uuid7_at(0x0123456789ac, a), 0);
        assert_true(strcmp(prev, a) < 0);
        assert_memory_equal(a, "01234567-89ac-7", 15);
        memcpy(prev, a, sizeof prev);
    }
    /* An earlier timestamp is the caller's choice: the id carries it. */
    assert_int_equal(sl_uuid7_at(0x0123456789aa, a), 0);
    assert_memory_equal(a, "01234567-89aa-7", 15);
    assert_true(sl_uuid7_is_valid(a, 36));
}

/* Ids come from a per-thread pool of random bytes: a forked child must not reuse the bytes its
 * parent has left, or both would make the same id in the same millisecond. */
static void test_uuid7_at_after_fork(void **state)
{
    (void)state;
    char a[SL_UUID_STR_MAX], mine[SL_UUID_STR_MAX], theirs[SL_UUID_STR_MAX] = "";
    assert_int_equal(sl_uuid7_at(42, a), 0); /* fills this thread's pool */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c[SL_UUID_STR_MAX];
        int ok = sl_uuid7_at(42, c) == 0 && write(fds[1], c, sizeof c) == (ssize_t)sizeof c;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(read(fds[0], theirs, sizeof theirs), (ssize_t)sizeof theirs);
    close(fds[0]);
    close(fds[1]);
    assert_int_equal(sl_uuid7_at(42, mine), 0);
    assert_string_not_equal(mine, theirs);
    /* Many more than one pool's worth stay distinct. */
    char prev[SL_UUID_STR_MAX];
    memcpy(prev, mine, sizeof prev);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(sl_uuid7_at(42, a), 0);
        assert_string_not_equal(a, prev);
        memcpy(prev, a, sizeof prev);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_and_bits), cmocka_unit_test(test_monotonic_frozen_clock),
        cmocka_unit_test(test_clock_backwards), cmocka_unit_test(test_random_failure),
        cmocka_unit_test(test_system_source),   cmocka_unit_test(test_parse),
        cmocka_unit_test(test_uuid7_at),        cmocka_unit_test(test_uuid7_at_after_fork),
        cmocka_unit_test(test_id_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
