/*
 * JSON helpers for libshoal over jansson: parsing request bodies with limits
 * (size, nesting depth, duplicate keys, top-level type), a table-driven field
 * validator that reports every invalid field by path ("items[2].qty"),
 * RFC 9457 problem-details bodies, compact serialisation and a string
 * escaper for writing JSON by hand.
 *
 * Pure module: no I/O, no globals. Every function is thread-safe as long as
 * the caller does not share the objects it passes between threads.
 */
#ifndef SHOAL_JSON_H
#define SHOAL_JSON_H

#include <shoal/common.h>

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Error collection ---------------------------------------------------------------------- */

#define SL_JSON_ERRORS_MAX 16 /* entries kept; further errors only bump `dropped` */
#define SL_JSON_FIELD_MAX                                                                          \
    128 /* bytes of a field path, NUL included (truncated on a UTF-8 boundary) */
#define SL_JSON_MESSAGE_MAX 256 /* bytes of a message, NUL included (truncated the same way) */

/* One invalid field. `field` is a path ("shipping_address.city", "items[2].qty"); "" means the
 * whole document. Both strings are always NUL-terminated valid UTF-8. */
typedef struct sl_json_error {
    char field[SL_JSON_FIELD_MAX];
    char message[SL_JSON_MESSAGE_MAX];
} sl_json_error;

/* Caller storage for the errors of one validation. Initialise with sl_json_errors_init(). */
typedef struct sl_json_errors {
    size_t count;   /* entries used in `items` */
    size_t dropped; /* errors that did not fit */
    sl_json_error items[SL_JSON_ERRORS_MAX];
} sl_json_errors;

/* Empties `errs`. */
SL_API void sl_json_errors_init(sl_json_errors *errs);

/* Returns the number of errors recorded, kept and dropped. */
SL_API size_t sl_json_errors_total(const sl_json_errors *errs);

/*
 * Appends an error for `field` (NULL means "") with a printf-formatted message. When `errs` is
 * full, only `dropped` is incremented. Over-long strings are cut on a UTF-8 boundary.
 * `errs` may be NULL (the error is discarded).
 */
SL_API void sl_json_errors_add(sl_json_errors *errs, const char *field, const char *fmt, ...)
    SL_PRINTF(3, 4);

/* ---- Parsing -------------------------------------------------------------------------------- */

#define SL_JSON_DEFAULT_MAX_BYTES ((size_t)1 << 20)
#define SL_JSON_DEFAULT_MAX_DEPTH 32u

/* Limits for sl_json_parse(). Zero members take the defaults, so `{0}` (or NULL) is sane. */
typedef struct sl_json_limits {
    size_t max_bytes;   /* whole input; 0 → SL_JSON_DEFAULT_MAX_BYTES */
    unsigned max_depth; /* nested arrays/objects; 0 → SL_JSON_DEFAULT_MAX_DEPTH */
    bool allow_any_top; /* accept any value at the top level, not only an object */
} sl_json_limits;

/*
 * Parses `len` bytes of `buf` (not necessarily NUL-terminated) as one JSON document.
 * Duplicate object keys, invalid UTF-8 and "\u0000" are rejected. Depth is checked before
 * jansson runs, by an iterative scan that skips strings, so hostile nesting costs nothing.
 *
 * `lim` may be NULL (defaults). On failure one error is added to `errs` (may be NULL) with
 * field "" and a message such as "invalid JSON at line 2, column 8: unexpected token near '}'".
 *
 * Returns 0 and stores a new reference in `*out` (returns owned: free with json_decref());
 * SL_ELIMIT when the input is larger than max_bytes or nests deeper than max_depth (the
 * caller can tell them apart by comparing `len` with its own size limit: 413 versus 400);
 * SL_EPARSE for malformed JSON; SL_EINVAL when the top level is not an object (and
 * allow_any_top is false). On failure `*out` is set to NULL.
 */
SL_API SL_MUST_CHECK int sl_json_parse(const char *buf, size_t len, const sl_json_limits *lim,
                                       json_t **out, sl_json_errors *errs);

/*
 * A cheap check for hot paths that only need to know that bytes are JSON: returns 1 when it
 * proves that `len` bytes of `buf` are one JSON value (any type) that jansson accepts with
 * JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, and 0 when it cannot tell. It proves the plain
 * cases only (no unicode escapes, no exponents, integers within 64 bits, nesting up to
 * SL_JSON_QUICK_MAX_DEPTH, up to 64 keys open at once, no escapes in keys): on 0 ask jansson,
 * whose verdict stands. No allocation; never reads past `len`.
 */
SL_API int sl_json_quick_valid(const char *buf, size_t len);

/*
 * The same proof, making the value on the way: returns 1 with `*out` a new reference equal
 * (json_equal, same types) to what json_loadb(buf, len, JSON_REJECT_DUPLICATES |
 * JSON_DECODE_ANY) returns, or 0 with `*out` NULL when it cannot tell or memory ran out: then
 * ask jansson. It also proves the simple escapes (\" \\ \/ \b \f \n \r \t) in string values,
 * and reads decimals only where the locale's decimal point is '.'.
 */
SL_API int sl_json_quick_load(const char *buf, size_t len, json_t **out) SL_MUST_CHECK;

/* The nesting sl_json_quick_valid proves: one level below SL_JSON_DEFAULT_MAX_DEPTH, so that a
 * value it proves still parses under the default limit when it sits one level inside another
 * document (as an event's data inside its envelope). */
#define SL_JSON_QUICK_MAX_DEPTH (SL_JSON_DEFAULT_MAX_DEPTH - 1)

/* ---- Table-driven validation ---------------------------------------------------------------- */

typedef enum sl_json_kind {
    SL_JSON_STRING, /* out: const char ** (borrowed from the json_t, valid while it lives) */
    SL_JSON_INT,    /* out: int64_t *; reals ("2.0") are rejected */
    SL_JSON_BOOL,   /* out: bool * */
    SL_JSON_NUMBER, /* out: double *; integers and reals */
    SL_JSON_OBJECT, /* out: json_t ** (borrowed) */
    SL_JSON_ARRAY,  /* out: json_t ** (borrowed) */
} sl_json_kind;

/* sl_json_field.flags */
#define SL_JSON_REQUIRED 0x1u /* absence is an error ("is required") */
#define SL_JSON_NULLABLE 0x2u /* null is accepted and treated like absence */

/*
 * One row of a validation table. Write rows with designated initialisers.
 *
 * Bounds, by kind (`min == 0 && max == 0` means "no bound"):
 *   INT, NUMBER: value in [min, max];
 *   STRING: length in Unicode code points in [min, max]; `max_bytes` (0: none) bounds the
 *           UTF-8 length as well, for storage columns sized in bytes;
 *   ARRAY: number of items in [min, max].
 * For STRING, `allowed` may point to a NULL-terminated list of accepted values (an enum).
 *
 * `out` may be NULL (validate only). It is written only when the field is present, non-null
 * and valid, so initialise it with the default first.
 */
typedef struct sl_json_field {
    const char *name;
    sl_json_kind kind;
    unsigned flags;
    int64_t min;
    int64_t max;
    size_t max_bytes;
    const char *const *allowed;
    void *out;
} sl_json_field;

/* sl_json_read() flags */
#define SL_JSON_REJECT_UNKNOWN 0x1u /* keys not in the table are errors ("is not allowed") */

/*
 * Validates the object `obj` (borrows it) against the `n` rows of `fields` and stores the
 * values of valid fields through their `out` pointers. Collects every error, in table order,
 * then unknown keys in object order. Error paths are `prefix.name` (or `name` when `prefix`
 * is NULL or ""); pass "shipping_address" or "items[2]" to validate nested values. When `obj`
 * is not an object, a single error "must be an object" is recorded for `prefix`.
 *
 * Returns 0 when no error was found, SL_EINVAL otherwise (details in `errs`, which may be NULL).
 * Errors already in `errs` are kept, so one `errs` can gather several calls.
 */
SL_API SL_MUST_CHECK int sl_json_read_at(const json_t *obj, const char *prefix,
                                         const sl_json_field *fields, size_t n, unsigned flags,
                                         sl_json_errors *errs);

/* sl_json_read_at() with no prefix. */
SL_API SL_MUST_CHECK int sl_json_read(const json_t *obj, const sl_json_field *fields, size_t n,
                                      unsigned flags, sl_json_errors *errs);

/*
 * Writes "prefix[index]" (or "prefix.key" when `key` is non-NULL) into `buf` of `cap` bytes,
 * for building prefixes of nested values. Returns 0, or SL_ELIMIT when it does not fit.
 */
SL_API SL_MUST_CHECK int sl_json_path_index(char *buf, size_t cap, const char *prefix,
                                            size_t index);
SL_API SL_MUST_CHECK int sl_json_path_key(char *buf, size_t cap, const char *prefix,
                                          const char *key);

/*
 * Reads the money object `v` (borrows it) found at `path` ("price", "items[2].unit_price"):
 * {"amount": an integer in [amount_min, amount_max] (minor units; amount_min < amount_max),
 * "currency": three upper-case letters (ISO 4217)}; other members are ignored. Errors are added
 * to `errs` (may be NULL) as sl_json_read_at() adds them under `path`; only when those checks
 * pass, a currency of other characters adds "`path`.currency" with the message "must be three
 * upper-case letters (ISO 4217)".
 *
 * Returns 0 and stores the amount in `*amount` and the currency plus a NUL in `currency`, or
 * SL_EINVAL with both untouched.
 */
SL_API SL_MUST_CHECK int sl_json_read_money(const json_t *v, const char *path, int64_t amount_min,
                                            int64_t amount_max, int64_t *amount, char currency[4],
                                            sl_json_errors *errs);

/* ---- Problem details (RFC 9457) -------------------------------------------------------------- */

/* All members but `status` may be NULL: `type` defaults to "about:blank", `title` to
 * sl_problem_title(status); absent `detail`/`instance` and empty `errs` are omitted. */
typedef struct sl_problem {
    int status;
    const char *type;
    const char *title;
    const char *detail;
    const char *instance;
    const sl_json_errors *errs;
} sl_problem;

/*
 * Builds an `application/problem+json` body: {"type","title","status","detail","instance",
 * "errors":[{"field","message"}...]} plus "errors_dropped" when errors were dropped.
 * Strings that are not valid UTF-8 are replaced by "" rather than failing.
 * Returns owned NUL-terminated text (free with free()), its length in `*len` (may be NULL),
 * or NULL when out of memory.
 */
SL_API char *sl_problem_body_ex(const sl_problem *p, size_t *len);

/* sl_problem_body_ex() with type "about:blank" and no instance. */
SL_API char *sl_problem_body(int status, const char *title, const char *detail,
                             const sl_json_errors *errs, size_t *len);

/* Returns the RFC 9110 reason phrase for `status` ("Bad Request"), static storage, or NULL
 * for a code it does not know. */
SL_API const char *sl_problem_title(int status);

/* ---- Writing ----------------------------------------------------------------------------------
 */

/*
 * Serialises `v` (borrows it; any type) compactly, keys in insertion order. Returns owned
 * NUL-terminated text (free with free()), its length in `*len` (may be NULL), or NULL when
 * out of memory or `v` holds something unserialisable.
 */
SL_API char *sl_json_dump(const json_t *v, size_t *len);

/*
 * Escapes `len` bytes of `s` for use inside a JSON string literal (the quotes are not added):
 * `"` and `\` are backslash-escaped, control characters become \n, \t, ... or \u00XX, and
 * every byte that is not part of valid UTF-8 becomes \ufffd. Writes at most `cap` bytes
 * including a terminating NUL (when cap > 0). Returns the length the full result needs,
 * without the NUL, like snprintf: the output is complete only when the result is < cap.
 */
SL_API size_t sl_json_escape(const char *s, size_t len, char *out, size_t cap);

/* Returns 1 when `len` bytes of `s` are valid UTF-8 (no overlongs, surrogates, > U+10FFFF). */
SL_API int sl_utf8_valid(const char *s, size_t len);

#endif /* SHOAL_JSON_H */
