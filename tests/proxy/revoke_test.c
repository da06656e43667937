/*
 * The gateway's set of revoked sessions (revoke.h): membership until each
 * entry's expiry, extension, growth past many entries with expired ones
 * dropped, and refusal of malformed ids.
 */
#include "revoke.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static int has(const px_revoke *rv, const char *sid, int64_t now)
{
    return px_revoke_has(rv, sid, strlen(sid), now);
}

static void test_set(void **state)
{
    (void)state;
    px_revoke rv;
    memset(&rv, 0, sizeof rv);
    assert_int_equal(has(&rv, "a", 0), 0);
    assert_int_equal(px_revoke_add(&rv, "s-1", 2000, 1000), 0);
    assert_int_equal(has(&rv, "s-1", 1000), 1);
    assert_int_equal(has(&rv, "s-1", 1999), 1);
    assert_int_equal(has(&rv, "s-1", 2000), 0); /* its tokens have expired */
    assert_int_equal(has(&rv, "s-2", 1000), 0);
    assert_int_equal(has(&rv, "s-", 1000), 0);
    /* A later expiry extends; an earlier one does not shorten. */
    assert_int_equal(px_revoke_add(&rv, "s-1", 5000, 1000), 0);
    assert_int_equal(px_revoke_add(&rv, "s-1", 3000, 1000), 0);
    assert_int_equal(has(&rv, "s-1", 4999), 1);
    /* Expired on arrival: nothing kept. */
    assert_int_equal(px_revoke_add(&rv, "old", 500, 1000), 0);
    assert_int_equal(has(&rv, "old", 0), 0);
    assert_int_equal(px_revoke_add(&rv, "", 5000, 1000), SL_EINVAL);
    char longid[PX_SID_MAX + 2];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    assert_int_equal(px_revoke_add(&rv, longid, 5000, 1000), SL_EINVAL);
    /* Many entries: all found; once they expire, growth drops them. */
    char sid[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(sid, sizeof sid, "m-%d", i);
        assert_int_equal(px_revoke_add(&rv, sid, 10000, 1000), 0);
    }
    for (int i = 0; i < 5000; i += 7) {
        snprintf(sid, sizeof sid, "m-%d", i);
        assert_int_equal(has(&rv, sid, 9999), 1);
    }
    size_t cap = rv.cap;
    for (int i = 0; i < 5000; i++) {
        snprintf(sid, sizeof sid, "n-%d", i);
        assert_int_equal(px_revoke_add(&rv, sid, 30000, 20000), 0);
    }
    assert_true(rv.n <= 5001 + 1);
    assert_true(rv.cap <= cap * 2);
    assert_int_equal(has(&rv, "m-3", 9999), 0); /* dropped when the set was rebuilt */
    assert_int_equal(has(&rv, "n-4999", 20000), 1);
    free(rv.slots);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
