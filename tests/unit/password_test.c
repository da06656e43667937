/*
 * Unit tests for password hashing: Argon2id hash/verify/needs_rehash with
 * libsodium's minimum cost (one interactive hash checks the default
 * parameters), and the asynchronous wrapper on a real libuv loop, including
 * the in-flight bound that answers SL_EBUSY.
 */
#include <shoal/auth.h>

#include <setjmp.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_hash_verify(void **state)
{
    (void)state;
    sl_password_cost cheap = sl_password_cost_min();
    char h[SL_PASSWORD_HASH_MAX], h2[SL_PASSWORD_HASH_MAX];
    const char *pw = "correct horse battery staple";
    assert_int_equal(sl_password_hash(pw, strlen(pw), &cheap, h), 0);
    assert_memory_equal(h, "$argon2id$v=19$m=8,t=1,p=1$", 27);
    assert_int_equal(sl_password_verify(h, pw, strlen(pw)), 0);
    assert_int_equal(sl_password_verify(h, "correct horse battery stapl", strlen(pw) - 1),
                     SL_EINVAL);
    assert_int_equal(sl_password_verify(h, "Correct horse battery staple", strlen(pw)), SL_EINVAL);
    assert_int_equal(sl_password_verify(h, "", 0), SL_EINVAL);
    /* A random salt: the same password hashes differently, and both verify. */
    assert_int_equal(sl_password_hash(pw, strlen(pw), &cheap, h2), 0);
    assert_string_not_equal(h, h2);
    assert_int_equal(sl_password_verify(h2, pw, strlen(pw)), 0);
    /* Bytes, not C strings: an embedded NUL counts. */
    assert_int_equal(sl_password_hash("a\0b", 3, &cheap, h), 0);
    assert_int_equal(sl_password_verify(h, "a\0b", 3), 0);
    assert_int_equal(sl_password_verify(h, "a", 1), SL_EINVAL);
    assert_int_equal(sl_password_hash(NULL, 0, &cheap, h), 0);
    assert_int_equal(sl_password_verify(h, NULL, 0), 0);
}

static void test_limits_and_parse(void **state)
{
    (void)state;
    sl_password_cost cheap = sl_password_cost_min();
    char h[SL_PASSWORD_HASH_MAX];
    char *big = calloc(1, SL_PASSWORD_MAX_BYTES + 1);
    assert_int_equal(sl_password_hash(big, SL_PASSWORD_MAX_BYTES, &cheap, h), 0);
    assert_int_equal(sl_password_hash(big, SL_PASSWORD_MAX_BYTES + 1, &cheap, h), SL_ELIMIT);
    assert_int_equal(sl_password_verify(h, big, SL_PASSWORD_MAX_BYTES + 1), SL_ELIMIT);
    free(big);
    sl_password_cost bad = {.opslimit = 0, .memlimit = crypto_pwhash_MEMLIMIT_MIN};
    assert_int_equal(sl_password_hash("x", 1, &bad, h), SL_EINVAL);
    bad = (sl_password_cost){.opslimit = 1, .memlimit = 1024};
    assert_int_equal(sl_password_hash("x", 1, &bad, h), SL_EINVAL);
    /* Not Argon2 strings. */
    static const char *const junk[] = {"", "password", "$2b$10$abcdefghijklmnopqrstuv",
                                       "$argon2d$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA"};
    for (size_t i = 0; i < SL_ARRAY_LEN(junk); i++) {
        assert_int_equal(sl_password_verify(junk[i], "x", 1), SL_EPARSE);
        assert_int_equal(sl_password_needs_rehash(junk[i], NULL), SL_EPARSE);
    }
    char unterminated[SL_PASSWORD_HASH_MAX + 8];
    memset(unterminated, 'a', sizeof unterminated - 1);
    memcpy(unterminated, "$argon2id$", 10);
    unterminated[sizeof unterminated - 1] = '\0';
    assert_int_equal(sl_password_verify(unterminated, "x", 1), SL_EPARSE);
    /* The right prefix with a broken body: undecodable, so it can never match. */
    assert_int_equal(sl_password_verify("$argon2id$v=19$m=8,t=1,p=1$!!$??", "x", 1), SL_EINVAL);
    assert_int_equal(sl_password_needs_rehash("$argon2id$v=19$garbage", NULL), SL_EPARSE);
}

static void test_needs_rehash(void **state)
{
    (void)state;
    sl_password_cost cheap = sl_password_cost_min();
    char h[SL_PASSWORD_HASH_MAX];
    assert_int_equal(sl_password_hash("pw", 2, &cheap, h), 0);
    assert_int_equal(sl_password_needs_rehash(h, &cheap), 0);
    assert_int_equal(sl_password_needs_rehash(h, NULL), 1); /* interactive is stronger */
    sl_password_cost more = {cheap.opslimit + 1, cheap.memlimit};
    assert_int_equal(sl_password_needs_rehash(h, &more), 1);
    /* An older Argon2i hash still verifies but should be upgraded. */
    char h2i[SL_PASSWORD_HASH_MAX];
    assert_int_equal(crypto_pwhash_argon2i_str(h2i, "pw", 2, crypto_pwhash_argon2i_OPSLIMIT_MIN,
                                               crypto_pwhash_argon2i_MEMLIMIT_MIN),
                     0);
    assert_int_equal(sl_password_verify(h2i, "pw", 2), 0);
    assert_int_equal(sl_password_verify(h2i, "pW", 2), SL_EINVAL);
    assert_int_equal(sl_password_needs_rehash(h2i, &cheap), 1);
}

static void test_interactive_default(void **state)
{
    (void)state;
    /* One real-cost hash (~140 ms on a 2-vCPU machine, see shoal/auth.h): t=2, 64 MiB. */
    char h[SL_PASSWORD_HASH_MAX];
    assert_int_equal(sl_password_hash("hunter2", 7, NULL, h), 0);
    assert_memory_equal(h, "$argon2id$v=19$m=65536,t=2,p=1$", 31);
    assert_int_equal(sl_password_needs_rehash(h, NULL), 0);
    sl_password_cost c = sl_password_cost_interactive();
    assert_int_equal(c.opslimit, 2);
    assert_int_equal(c.memlimit, 64u << 20);
}

/* ---- Asynchronous wrapper ------------------------------------------------------------------ */

typedef struct async_ctx {
    uv_thread_t loop_thread;
    sl_password_limiter *lim;
    uv_loop_t *loop;
    int hashes, verifies;
    int last_verify_status;
    char hash[SL_PASSWORD_HASH_MAX];
    int chained; /* submissions made from inside a callback */
} async_ctx;

static void on_hash(int status, const char *hash, void *data)
{
    async_ctx *c = data;
    uv_thread_t self = uv_thread_self();
    assert_true(uv_thread_equal(&self, &c->loop_thread));
    assert_int_equal(status, 0);
    assert_non_null(hash);
    memcpy(c->hash, hash, strlen(hash) + 1);
    c->hashes++;
}

static void on_verify(int status, void *data)
{
    async_ctx *c = data;
    uv_thread_t self = uv_thread_self();
    assert_true(uv_thread_equal(&self, &c->loop_thread));
    c->last_verify_status = status;
    c->verifies++;
}

/* A callback that submits the next operation: the slot it held is already free. */
static void on_hash_chain(int status, const char *hash, void *data)
{
    async_ctx *c = data;
    on_hash(status, hash, data);
    assert_int_equal(c->lim->in_flight, 0);
    assert_int_equal(sl_password_verify_async(c->loop, c->lim, hash, "pw", 2, on_verify, c), 0);
    c->chained++;
}

static void test_async(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sl_password_limiter lim;
    sl_password_limiter_init(&lim, 2);
    async_ctx c = {.loop_thread = uv_thread_self(), .lim = &lim, .loop = &loop};
    sl_password_cost cheap = sl_password_cost_min();

    char pw[8] = "pw";
    assert_int_equal(sl_password_hash_async(&loop, &lim, pw, 2, &cheap, on_hash, &c), 0);
    sodium_memzero(pw, sizeof pw); /* the module took its own copy */
    assert_int_equal(sl_password_hash_async(&loop, &lim, "pw", 2, &cheap, on_hash, &c), 0);
    assert_int_equal(lim.in_flight, 2);
    /* Over the limit: refused at once, and that callback never runs. */
    assert_int_equal(sl_password_hash_async(&loop, &lim, "pw", 2, &cheap, on_hash, &c), SL_EBUSY);
    assert_int_equal(sl_password_verify_async(&loop, &lim, "$argon2id$x", "pw", 2, on_verify, &c),
                     SL_EBUSY);
    assert_int_equal(c.hashes, 0); /* never synchronous */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.hashes, 2);
    assert_int_equal(lim.in_flight, 0);
    assert_int_equal(sl_password_verify(c.hash, "pw", 2), 0);

    /* Verify: right and wrong passwords. */
    char stored[SL_PASSWORD_HASH_MAX];
    memcpy(stored, c.hash, sizeof stored);
    assert_int_equal(sl_password_verify_async(&loop, &lim, stored, "pw", 2, on_verify, &c), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.verifies, 1);
    assert_int_equal(c.last_verify_status, 0);
    assert_int_equal(sl_password_verify_async(&loop, &lim, stored, "pX", 2, on_verify, &c), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.verifies, 2);
    assert_int_equal(c.last_verify_status, SL_EINVAL);

    /* Errors found before queueing leave the limiter untouched and call nothing. */
    assert_int_equal(sl_password_verify_async(&loop, &lim, "plain", "pw", 2, on_verify, &c),
                     SL_EPARSE);
    assert_int_equal(
        sl_password_hash_async(&loop, &lim, "x", SL_PASSWORD_MAX_BYTES + 1, &cheap, on_hash, &c),
        SL_ELIMIT);
    sl_password_cost bad = {0, 0};
    assert_int_equal(sl_password_hash_async(&loop, &lim, "x", 1, &bad, on_hash, &c), SL_EINVAL);
    assert_int_equal(lim.in_flight, 0);

    /* A callback may submit the next operation, even with a limit of one: its slot is free. */
    sl_password_limiter_init(&lim, 1);
    assert_int_equal(sl_password_hash_async(&loop, &lim, "pw", 2, &cheap, on_hash_chain, &c), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.chained, 1);
    assert_int_equal(c.verifies, 3);
    assert_int_equal(c.last_verify_status, 0);
    assert_int_equal(lim.in_flight, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_verify),  cmocka_unit_test(test_limits_and_parse),
        cmocka_unit_test(test_needs_rehash), cmocka_unit_test(test_interactive_default),
        cmocka_unit_test(test_async),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
