/*
 * The user context's pure rules (no I/O): email normalisation and syntax,
 * name and password policy, roles, who may read whom, the JWT claims a login
 * issues, the read-your-writes test, and the data of the user events
 * (building it for the outbox, validating it when applying it).
 *
 * Everything here is thread-safe and allocation-free except the event data
 * builder, which returns a jansson object.
 */
#ifndef SHOAL_SVC_USER_DOMAIN_H
#define SHOAL_SVC_USER_DOMAIN_H

#include <shoal/auth.h>
#include <shoal/clock.h>
#include <shoal/common.h>
#include <shoal/db.h>

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define USER_EMAIL_MAX          254 /* bytes (RFC 5321 path limit minus the brackets) */
#define USER_EMAIL_LOCAL_MAX    64
#define USER_EMAIL_INPUT_MAX    320 /* characters accepted before trimming */
#define USER_NAME_MAX_CHARS     100
#define USER_NAME_MAX_BYTES     400
#define USER_PASSWORD_MIN_CHARS 8
#define USER_PASSWORD_MAX_CHARS 128
#define USER_PASSWORD_MAX_BYTES 512 /* 128 characters of at most 4 bytes */
#define USER_ROLE_MAX           16
#define USER_ID_MAX             (SL_DB_UUID_STR - 1)

#define USER_EVENT_REGISTERED "shop.user.registered.v1"
#define USER_EVENT_UPDATED    "shop.user.updated.v1"

/*
 * Normalises and validates an email address (`len` bytes of `in`, borrowed):
 * ASCII whitespace is trimmed from both ends and the whole address is
 * lower-cased (the local part too: we treat addresses as case-insensitive,
 * as every mail provider in practice does, so "Ann@X.org" and "ann@x.org"
 * are one account). Accepted syntax: one '@'; a local part of 1..64
 * characters from RFC 5322 atext and '.', without a leading, trailing or
 * doubled dot; a domain of at least two dot-separated labels of 1..63
 * characters [a-z0-9-], not starting or ending with '-'; at most 254 bytes in
 * all. Non-ASCII is refused (internationalised domains must come as
 * punycode). Returns 0 with the result in `out`; SL_EINVAL with a static
 * message in *why (never containing the input) and `out` empty.
 */
int user_email_normalize(const char *in, size_t len, char out[USER_EMAIL_MAX + 1],
                         const char **why) SL_MUST_CHECK;

/*
 * Validates a display name (`len` bytes of valid UTF-8): trims ASCII
 * whitespace, then requires 1..100 characters and no control characters
 * (C0, DEL, C1). Returns 0 with the trimmed name in `out`; SL_EINVAL with a
 * static message in *why.
 */
int user_name_check(const char *in, size_t len, char out[USER_NAME_MAX_BYTES + 1],
                    const char **why) SL_MUST_CHECK;

/*
 * The password policy (`len` bytes of valid UTF-8, borrowed, never copied):
 * 8..128 characters, at most 512 bytes. Any characters are allowed (spaces
 * too, and no composition rules: length is what matters). Returns 0 or
 * SL_EINVAL with a static message in *why (never containing the password).
 */
int user_password_check(const char *pw, size_t len, const char **why) SL_MUST_CHECK;

/* Returns 1 for "customer" or "admin", else 0. */
int user_role_valid(const char *role);

/* Returns 1 when `s` (`len` bytes) is a canonical lower-case UUID string. */
int user_id_valid(const char *s, size_t len);

/*
 * Who may read user `target_id`: the user itself, an admin, or another
 * service (role "service"). Returns 1 when allowed. Everyone else gets 404,
 * not 403, so that a customer cannot probe which ids exist.
 */
int user_may_read(const char *caller_id, const char *caller_role, const char *target_id);

/*
 * Fills the claims of a login token: sub = user id, role, iss, iat = now,
 * exp = now + ttl. Strings are borrowed into *out. Returns 0, or SL_EINVAL for
 * an empty id, an unknown role, an empty issuer or ttl outside [1, 7 days].
 */
int user_claims_make(const char *user_id, const char *role, const char *issuer, int64_t now_s,
                     int64_t ttl_s, sl_jwt_claims *out) SL_MUST_CHECK;

/*
 * Read-your-writes: a read that asked for `min_position` may be served once
 * the view's watermark (every position up to it applied) reaches it, or, for
 * a single user, once that user's row carries a position at least as large
 * (per-user events are applied in order, so the row then holds every write
 * of that user up to min_position). `row_position` < 0 means "no row".
 * Returns 1 when the read may be served.
 */
int user_position_reached(int64_t min_position, int64_t watermark, int64_t row_position);

/* Seconds for a Retry-After header from a wait in ms: rounded up, at least 1. */
int64_t user_retry_after_s(int64_t wait_ms);

/* A user as the events carry it (all strings NUL-terminated). */
typedef struct user_state {
    char id[USER_ID_MAX + 1];
    char email[USER_EMAIL_MAX + 1];
    char name[USER_NAME_MAX_BYTES + 1];
    char role[USER_ROLE_MAX + 1];
    char created_at[SL_RFC3339_MAX];
    char updated_at[SL_RFC3339_MAX];
    int64_t position; /* the write that produced this state */
} user_state;

/*
 * The data of shop.user.registered.v1 and shop.user.updated.v1: the whole
 * state, {user_id, email, name, role, created_at, updated_at, position}, so a
 * consumer needs no other call (the payment service opens a wallet from it).
 * Returns a new object (returns owned: json_decref) or NULL when out of memory.
 */
json_t *user_event_data(const user_state *u);

/*
 * Validates event data (borrowed) and copies it into *out. `subject` (may be
 * NULL) must equal user_id when given. Returns 0, or SL_EPARSE with a reason
 * in `reason` (`cap` bytes) for data that can never be applied (dead letter).
 */
int user_event_parse(const json_t *data, const char *subject, user_state *out, char *reason,
                     size_t cap) SL_MUST_CHECK;

/* ---- login failure throttling (pure; the counters live in the user database) -------------- */

/*
 * The policy. An account's backoff is short (it only slows guessing down; a long one would
 * let anybody lock a victim out); a client address's backoff is long (it stops the guesser);
 * the global budget bounds guessing spread over many addresses. An account in backoff still
 * admits a client with no recent failure, so the owner can log in while it is attacked.
 */
typedef struct user_login_policy {
    int64_t account_free;    /* failures of an account before its backoff starts */
    int64_t account_base_ms; /* the first backoff; doubles with each further failure */
    int64_t account_max_ms;
    int64_t client_free; /* the same for a client address */
    int64_t client_base_ms;
    int64_t client_max_ms;
    int64_t window_ms;        /* an account's or client's counter resets after this long quiet */
    int64_t global_budget;    /* failures per global window before only clean clients pass */
    int64_t global_window_ms; /* fixed windows */
} user_login_policy;

/* One counter (an account, a client address, or the global one). For the global counter,
 * `last_ms` is the start of the current window and `blocked_until_ms` is unused. */
typedef struct user_login_counter {
    int64_t failures;
    int64_t last_ms;
    int64_t blocked_until_ms;
} user_login_counter;

/* The backoff after `failures` failures: 0 below `free`, then base, 2·base, ... up to max. */
int64_t user_login_backoff_ms(int64_t failures, int64_t free, int64_t base_ms, int64_t max_ms);

/*
 * Decides one login attempt at `now_ms` for the counters of its account (NULL: the email is
 * malformed and names none), its client address, and the global budget. Admitted: returns 0
 * and counts the attempt as a failure in all three (before the password is checked, so that
 * concurrent attempts cannot all pass the check); user_login_succeeded() undoes it.
 * Refused: returns SL_ELIMIT with the wait in *retry_ms and the counters unchanged (except
 * decayed ones reset).
 */
int user_login_admit(const user_login_policy *p, int64_t now_ms, user_login_counter *account,
                     user_login_counter *client, user_login_counter *global,
                     int64_t *retry_ms) SL_MUST_CHECK;

/* A verified password: the account's counter resets; the client's and the global one lose
 * the failure user_login_admit() counted (a success never erases a client's real failures,
 * so an attacker cannot reset its address by logging into an account of its own). */
void user_login_succeeded(const user_login_policy *p, user_login_counter *account,
                          user_login_counter *client, user_login_counter *global);

#endif /* SHOAL_SVC_USER_DOMAIN_H */
