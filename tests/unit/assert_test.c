/* Unit tests for SL_ASSERT and assert(3): both stay on in the build that the suite runs. */
#include <shoal/common.h>

#include <assert.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* Runs fn in a child with stderr on a pipe; returns its wait status and what it printed. */
static int run_child(void (*fn)(int), int arg, char *err, size_t cap)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fds[0], err + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    err[n] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void check_positive(int v)
{
    SL_ASSERT(v > 0);
}

static void libc_assert(int v)
{
    assert(v > 0);
}

static void test_sl_assert_holds(void **state)
{
    (void)state;
    char err[512];
    int st = run_child(check_positive, 1, err, sizeof err);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(err, "");
}

static void test_sl_assert_aborts_with_place(void **state)
{
    (void)state;
    char err[512];
    int st = run_child(check_positive, 0, err, sizeof err);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    assert_non_null(strstr(err, "assert_test.c:"));
    assert_non_null(strstr(err, "check_positive"));
    assert_non_null(strstr(err, "assertion failed: v > 0"));
}

/* The normal build (RelWithDebInfo) must not define NDEBUG: assert(3) in libshoal runs too. */
static void test_libc_assert_is_on(void **state)
{
    (void)state;
    char err[512];
    int st = run_child(libc_assert, 0, err, sizeof err);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sl_assert_holds),
        cmocka_unit_test(test_sl_assert_aborts_with_place),
        cmocka_unit_test(test_libc_assert_is_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
