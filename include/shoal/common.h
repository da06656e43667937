/*
 * Shared definitions for every libshoal module: error codes, export and
 * attribute macros, and the byte slice type used by the parsers.
 *
 * Conventions (docs/architecture.md): functions return int, 0 on
 * success and a negative SL_E* code on failure; results go through
 * out-parameters. A code outside the SL_E* range is a negated errno value
 * (libuv uses the same convention, so its codes pass through unchanged).
 */
#ifndef SHOAL_COMMON_H
#define SHOAL_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define SL_API          __attribute__((visibility("default")))
#define SL_MUST_CHECK   __attribute__((warn_unused_result))
#define SL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define SL_UNUSED       __attribute__((unused))
#else
#define SL_API
#define SL_MUST_CHECK
#define SL_PRINTF(a, b)
#define SL_UNUSED
#endif

#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * SL_ASSERT(cond): a precondition or invariant that holds unless the program
 * itself is wrong. It stays on in every build type whatever NDEBUG says (the
 * project's own release flags leave NDEBUG undefined, so assert(3) runs too,
 * but a library user's build may not): a broken invariant aborts with the
 * file, line and condition rather than corrupting state. Never use it for outside
 * input, which gets an error code. Cost: one predicted branch.
 */
#define SL_ASSERT(cond) ((cond) ? (void)0 : sl_assert_fail(#cond, __FILE__, __LINE__, __func__))

/*
 * The error table. One X-macro so that sl_strerror() and sl_errname() can
 * never drift from the codes. Values live below -1000 so they never collide
 * with negated errno values.
 */
#define SL_ERRNO_MAP(X)                                                                            \
    X(EINVAL, -1001, "invalid argument")                                                           \
    X(ENOMEM, -1002, "out of memory")                                                              \
    X(ELIMIT, -1003, "limit exceeded")                                                             \
    X(ENOTFOUND, -1004, "not found")                                                               \
    X(EEXIST, -1005, "already exists")                                                             \
    X(ECONFLICT, -1006, "conflict")                                                                \
    X(EAGAIN, -1007, "try again")                                                                  \
    X(ETIMEDOUT, -1008, "timed out")                                                               \
    X(EIO, -1009, "input/output error")                                                            \
    X(EPARSE, -1010, "parse error")                                                                \
    X(ECANCELED, -1011, "canceled")                                                                \
    X(EBUSY, -1012, "busy")                                                                        \
    X(ECLOSED, -1013, "closed")                                                                    \
    X(EUNAVAIL, -1014, "unavailable")                                                              \
    X(ESTATE, -1015, "invalid state")                                                              \
    X(ECONFIG, -1016, "invalid configuration")

enum {
#define SL_ERR_ENUM_(name, value, text) SL_##name = (value),
    SL_ERRNO_MAP(SL_ERR_ENUM_)
#undef SL_ERR_ENUM_
};

/* Prints "assertion failed" with the condition and its place to stderr, then abort()s. */
SL_API void sl_assert_fail(const char *cond, const char *file, int line, const char *func)
    __attribute__((noreturn, cold));

/* Returns a static description of `code` (an SL_E* value or a negated errno). Thread-safe. */
SL_API const char *sl_strerror(int code);

/* Returns the symbolic name of `code` ("SL_ETIMEDOUT", "ECONNREFUSED"), static storage. */
SL_API const char *sl_errname(int code);

/*
 * A borrowed byte range. Parsers hand these out as views into their input
 * buffer: valid only as long as that buffer, never NUL-terminated.
 */
typedef struct sl_slice {
    const char *ptr;
    size_t len;
} sl_slice;

#define SL_SLICE_LIT(s) ((sl_slice){(s), sizeof(s) - 1})

/* Returns 1 when `a` equals the NUL-terminated `s` byte for byte, 0 otherwise. */
SL_API int sl_slice_eq(sl_slice a, const char *s);

/* Returns 1 when `a` equals `s` ignoring ASCII case, 0 otherwise. */
SL_API int sl_slice_case_eq(sl_slice a, const char *s);

/* Like sl_slice_case_eq for `b`, whose length is known, so that names of another length cost
 * one comparison (header filters test every field against lists of names). */
static inline int sl_slice_case_eq_slice(sl_slice a, sl_slice b)
{
    if (a.len != b.len) return 0;
    for (size_t i = 0; i < a.len; i++) {
        unsigned char x = (unsigned char)a.ptr[i], y = (unsigned char)b.ptr[i];
        if (x >= 'A' && x <= 'Z') x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z') y = (unsigned char)(y + 32);
        if (x != y) return 0;
    }
    return 1;
}

/* sl_slice_case_eq_slice against a string literal. */
#define SL_SLICE_CASE_EQ_LIT(a, lit) sl_slice_case_eq_slice((a), SL_SLICE_LIT(lit))

#endif /* SHOAL_COMMON_H */
