/*
 * Structured logging for libshoal: one JSON object per line with `ts` (RFC
 * 3339, milliseconds), `level`, `service`, `msg`, `trace_id` and `span_id`
 * (when a trace context is given), then the caller's fields. This is the one
 * logging entry point; library code never prints.
 *
 * The SL_LOG_* macros check the level before building anything, so a
 * disabled line costs one atomic load. A line is built in a bounded stack
 * buffer (SL_LOG_LINE_MAX) and handed to the sink in ONE call (the default
 * sink is one write(2) to stderr), so lines from concurrent threads never
 * interleave. Strings are JSON-escaped; invalid UTF-8 becomes U+FFFD; a line
 * that does not fit is cut at a field boundary, ends with "truncated":true and
 * stays valid JSON.
 *
 * SECRETS: callers must never pass secrets (passwords, tokens, card numbers,
 * full Authorization headers) as messages or fields. Nothing here filters them.
 */
#ifndef SHOAL_LOG_H
#define SHOAL_LOG_H

#include <shoal/clock.h>
#include <shoal/common.h>
#include <shoal/trace.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Maximum bytes of one line, newline included. */
#define SL_LOG_LINE_MAX 8192
/* Service names are truncated to this many bytes. */
#define SL_LOG_SERVICE_MAX 63

/* The level table: enum name, printable name. */
#define SL_LOG_LEVEL_MAP(X)                                                                        \
    X(DEBUG, "debug")                                                                              \
    X(INFO, "info")                                                                                \
    X(WARN, "warn")                                                                                \
    X(ERROR, "error")

typedef enum sl_log_level {
#define SL_LOG_LEVEL_ENUM_(name, text) SL_LOG_LEVEL_##name,
    SL_LOG_LEVEL_MAP(SL_LOG_LEVEL_ENUM_)
#undef SL_LOG_LEVEL_ENUM_
} sl_log_level;

/* Returns "debug", "info", ...; "unknown" for an out-of-range value. Static storage. */
SL_API const char *sl_log_level_name(sl_log_level level);

/*
 * Parses a level name ("debug", "info", "warn", "error"; ASCII case-insensitive,
 * "warning" accepted for warn). Returns 0 and sets *out, or SL_EINVAL. Thread-safe.
 */
SL_API int sl_log_level_parse(const char *s, sl_log_level *out) SL_MUST_CHECK;

/*
 * Receives one complete line (`len` bytes, ending in '\n', not NUL-terminated;
 * borrowed for the call). Called on the logging thread, possibly from several
 * threads at once: a sink must be thread-safe.
 */
typedef void (*sl_log_sink_fn)(void *data, const char *line, size_t len);

typedef struct sl_logger sl_logger;

/*
 * Creates a logger. `service` is copied (truncated to SL_LOG_SERVICE_MAX).
 * `sink` NULL means one write(2) per line to stderr (fd 2). `clock` is
 * borrowed and must outlive the logger. Returns 0 and *out (returns owned:
 * free with sl_logger_free), SL_EINVAL or SL_ENOMEM. The logger is
 * thread-safe: any thread may log and change the level.
 */
SL_API int sl_logger_new(const char *service, sl_log_level level, sl_log_sink_fn sink,
                         void *sink_data, const sl_clock *clock, sl_logger **out) SL_MUST_CHECK;

/* Frees the logger (no thread may still be logging through it). NULL is a no-op. */
SL_API void sl_logger_free(sl_logger *logger);

/* Sets / returns the minimum level; atomic, any thread. */
SL_API void sl_logger_set_level(sl_logger *logger, sl_log_level level);
SL_API sl_log_level sl_logger_level(const sl_logger *logger);

/* Returns true when a line at `level` would be written. */
SL_API bool sl_log_enabled(const sl_logger *logger, sl_log_level level);

typedef enum sl_log_field_type {
    SL_LOG_FIELD_NONE = 0, /* the macros' placeholder; skipped */
    SL_LOG_FIELD_STR,
    SL_LOG_FIELD_INT,
    SL_LOG_FIELD_DBL,
    SL_LOG_FIELD_BOOL,
} sl_log_field_type;

/* One key/value pair. Keys and string values are borrowed for the call. */
typedef struct sl_log_field {
    const char *key;
    sl_log_field_type type;
    union {
        const char *s; /* NULL is written as JSON null */
        int64_t i;
        double d; /* NaN and infinities are written as null */
        bool b;
    } v;
} sl_log_field;

#define SL_LOG_STR(k, val)  ((sl_log_field){.key = (k), .type = SL_LOG_FIELD_STR, .v.s = (val)})
#define SL_LOG_INT(k, val)  ((sl_log_field){.key = (k), .type = SL_LOG_FIELD_INT, .v.i = (val)})
#define SL_LOG_DBL(k, val)  ((sl_log_field){.key = (k), .type = SL_LOG_FIELD_DBL, .v.d = (val)})
#define SL_LOG_BOOL(k, val) ((sl_log_field){.key = (k), .type = SL_LOG_FIELD_BOOL, .v.b = (val)})

/*
 * Formats and writes one line, whatever the level (the macros check it).
 * `tc` may be NULL; `msg` is borrowed; `fields` is `n` entries, borrowed.
 * Keys duplicating the fixed members are written as given (callers avoid them).
 * Never fails: oversize lines are truncated, and sink errors are ignored.
 */
SL_API void sl_log_write(sl_logger *logger, sl_log_level level, const sl_trace_ctx *tc,
                         const char *msg, const sl_log_field *fields, size_t n);

/*
 * SL_LOG_INFO(logger, tc, "msg", SL_LOG_STR("k", v), ...): checks the level
 * first, then builds the field array on the stack. Zero fields work:
 * SL_LOG_INFO(l, NULL, "started"). The leading placeholder entry lets the
 * initializer be valid with an empty __VA_ARGS__; it is skipped.
 */
#define SL_LOG_AT(logger, level, tc, msg, ...)                                                     \
    do {                                                                                           \
        if (sl_log_enabled((logger), (level))) {                                                   \
            const sl_log_field sl_log_fields_[] = {{0}, __VA_ARGS__};                              \
            sl_log_write((logger), (level), (tc), (msg), sl_log_fields_ + 1,                       \
                         SL_ARRAY_LEN(sl_log_fields_) - 1);                                        \
        }                                                                                          \
    } while (0)

#define SL_LOG_DEBUG(logger, tc, ...) SL_LOG_AT((logger), SL_LOG_LEVEL_DEBUG, (tc), __VA_ARGS__)
#define SL_LOG_INFO(logger, tc, ...)  SL_LOG_AT((logger), SL_LOG_LEVEL_INFO, (tc), __VA_ARGS__)
#define SL_LOG_WARN(logger, tc, ...)  SL_LOG_AT((logger), SL_LOG_LEVEL_WARN, (tc), __VA_ARGS__)
#define SL_LOG_ERROR(logger, tc, ...) SL_LOG_AT((logger), SL_LOG_LEVEL_ERROR, (tc), __VA_ARGS__)

#endif /* SHOAL_LOG_H */
