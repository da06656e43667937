/*
 * Error names and descriptions for the SL_E* table in common.h, plus the
 * small slice helpers every parser uses.
 */
#include <shoal/common.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *sl_strerror(int code)
{
    switch (code) {
#define SL_ERR_TEXT_(name, value, text)                                                            \
    case (value):                                                                                  \
        return (text);
        SL_ERRNO_MAP(SL_ERR_TEXT_)
#undef SL_ERR_TEXT_
    case 0:
        return "success";
    default:
        break;
    }
    if (code < 0 && code > -4096)
        return strerror(-code); /* glibc returns static strings for known values */
    return "unknown error";
}

const char *sl_errname(int code)
{
    switch (code) {
#define SL_ERR_NAME_(name, value, text)                                                            \
    case (value):                                                                                  \
        return "SL_" #name;
        SL_ERRNO_MAP(SL_ERR_NAME_)
#undef SL_ERR_NAME_
    case 0:
        return "OK";
    case -ECONNREFUSED:
        return "ECONNREFUSED";
    case -ECONNRESET:
        return "ECONNRESET";
    case -ETIMEDOUT:
        return "ETIMEDOUT";
    case -EPIPE:
        return "EPIPE";
    case -ENOENT:
        return "ENOENT";
    case -EACCES:
        return "EACCES";
    case -EADDRINUSE:
        return "EADDRINUSE";
    default:
        return "EUNKNOWN";
    }
}

int sl_slice_eq(sl_slice a, const char *s)
{
    size_t n = strlen(s);
    return a.len == n && (n == 0 || memcmp(a.ptr, s, n) == 0);
}

int sl_slice_case_eq(sl_slice a, const char *s)
{
    /* No strlen first: most calls compare a header name against a list and differ early. */
    size_t i = 0;
    for (; i < a.len; i++) {
        unsigned char x = (unsigned char)a.ptr[i], y = (unsigned char)s[i];
        if (y == '\0') return 0; /* a is longer */
        if (x >= 'A' && x <= 'Z') x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z') y = (unsigned char)(y + 32);
        if (x != y) return 0;
    }
    return s[i] == '\0';
}

void sl_assert_fail(const char *cond, const char *file, int line, const char *func)
{
    fprintf(stderr, "%s:%d: %s: assertion failed: %s\n", file, line, func, cond);
    fflush(stderr);
    abort();
}
