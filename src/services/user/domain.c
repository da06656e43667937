/*
 * The user context's pure rules (domain.h): input policies, claims, the
 * read-your-writes test and the user events' data. No I/O; unit-tested by
 * tests/services/user/domain_test.c.
 */
#include "domain.h"

#include <shoal/json.h>

#include <stdio.h>
#include <string.h>

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && is_ws((unsigned char)(*s)[0])) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_ws((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* RFC 5322 §3.2.3 atext, after lower-casing. */
static int is_atext(unsigned char c)
{
    return is_alnum(c) || (c != 0 && strchr("!#$%&'*+/=?^_`{|}~-", c) != NULL);
}

static int check_local(const char *s, size_t n, const char **why)
{
    if (n == 0) return *why = "must have a part before the @", SL_EINVAL;
    if (n > USER_EMAIL_LOCAL_MAX)
        return *why = "must have at most 64 characters before the @", SL_EINVAL;
    if (s[0] == '.' || s[n - 1] == '.')
        return *why = "must not start or end the part before the @ with a dot", SL_EINVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.' && s[i + 1] == '.') return *why = "must not contain '..'", SL_EINVAL;
        if (c != '.' && !is_atext(c))
            return *why = "contains a character not allowed in an email address", SL_EINVAL;
    }
    return 0;
}

static int check_domain(const char *s, size_t n, const char **why)
{
    if (n == 0) return *why = "must have a domain after the @", SL_EINVAL;
    size_t labels = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            unsigned char c = (unsigned char)s[i];
            if (!is_alnum(c) && c != '-')
                return *why = "must have a domain of letters, digits, '-' and '.'", SL_EINVAL;
            continue;
        }
        size_t ln = i - start;
        if (ln == 0 || ln > 63)
            return *why = "must have a domain of dot-separated labels of 1 to 63 characters",
                   SL_EINVAL;
        if (s[start] == '-' || s[i - 1] == '-')
            return *why = "must not have a domain label that starts or ends with '-'", SL_EINVAL;
        labels++;
        start = i + 1;
    }
    if (labels < 2) return *why = "must have a dot in the domain", SL_EINVAL;
    return 0;
}

static int email_normalize(const char *in, size_t len, char out[USER_EMAIL_MAX + 1],
                           const char **why)
{
    trim(&in, &len);
    if (len == 0) return *why = "must not be empty", SL_EINVAL;
    if (len > USER_EMAIL_MAX) return *why = "must be at most 254 characters", SL_EINVAL;
    size_t at = len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c <= 0x20 || c == 0x7f)
            return *why = "must not contain spaces or control characters", SL_EINVAL;
        if (c >= 0x80) return *why = "must be ASCII (use punycode for the domain)", SL_EINVAL;
        if (c == '@') {
            if (at != len) return *why = "must contain exactly one @", SL_EINVAL;
            at = i;
        }
        out[i] = (char)lower(c);
    }
    out[len] = '\0';
    if (at == len) return *why = "must contain exactly one @", SL_EINVAL;
    int rc = check_local(out, at, why);
    if (rc == 0) rc = check_domain(out + at + 1, len - at - 1, why);
    return rc;
}

int user_email_normalize(const char *in, size_t len, char out[USER_EMAIL_MAX + 1], const char **why)
{
    static const char *unused;
    int rc = email_normalize(in, len, out, why ? why : &unused);
    if (rc != 0) out[0] = '\0'; /* never half an address */
    return rc;
}

/* Counts UTF-8 code points (the input is known to be valid UTF-8). */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) n++;
    return n;
}

int user_name_check(const char *in, size_t len, char out[USER_NAME_MAX_BYTES + 1], const char **why)
{
    static const char *unused;
    if (!why) why = &unused;
    trim(&in, &len);
    if (len == 0) return *why = "must not be empty", SL_EINVAL;
    if (!sl_utf8_valid(in, len)) return *why = "must be valid UTF-8", SL_EINVAL;
    if (len > USER_NAME_MAX_BYTES || utf8_chars(in, len) > USER_NAME_MAX_CHARS)
        return *why = "must be at most 100 characters", SL_EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        /* C1 controls U+0080..U+009F are encoded C2 80..C2 9F. */
        int c1 = c == 0xC2 && i + 1 < len && (unsigned char)in[i + 1] <= 0x9F;
        if (c < 0x20 || c == 0x7f || c1)
            return *why = "must not contain control characters", SL_EINVAL;
    }
    memcpy(out, in, len);
    out[len] = '\0';
    return 0;
}

int user_password_check(const char *pw, size_t len, const char **why)
{
    static const char *unused;
    if (!why) why = &unused;
    if (len > USER_PASSWORD_MAX_BYTES) return *why = "must be at most 128 characters", SL_EINVAL;
    if (!sl_utf8_valid(pw, len)) return *why = "must be valid UTF-8", SL_EINVAL;
    size_t n = utf8_chars(pw, len);
    if (n < USER_PASSWORD_MIN_CHARS) return *why = "must be at least 8 characters", SL_EINVAL;
    if (n > USER_PASSWORD_MAX_CHARS) return *why = "must be at most 128 characters", SL_EINVAL;
    return 0;
}

int user_role_valid(const char *role)
{
    return role && (strcmp(role, "customer") == 0 || strcmp(role, "admin") == 0);
}

int user_id_valid(const char *s, size_t len)
{
    if (len != USER_ID_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
    }
    return 1;
}

int user_may_read(const char *caller_id, const char *caller_role, const char *target_id)
{
    if (!caller_id || !caller_role || !target_id) return 0;
    if (strcmp(caller_role, "admin") == 0 || strcmp(caller_role, "service") == 0) return 1;
    return strcmp(caller_id, target_id) == 0;
}

int user_claims_make(const char *user_id, const char *role, const char *issuer, int64_t now_s,
                     int64_t ttl_s, sl_jwt_claims *out)
{
    memset(out, 0, sizeof *out);
    if (!user_id || !*user_id || !user_role_valid(role) || !issuer || !*issuer) return SL_EINVAL;
    if (ttl_s < 1 || ttl_s > 7 * 86400 || now_s < 0) return SL_EINVAL;
    out->sub = user_id;
    out->role = role;
    out->iss = issuer;
    out->iat = now_s;
    out->exp = now_s + ttl_s;
    return 0;
}

int user_position_reached(int64_t min_position, int64_t watermark, int64_t row_position)
{
    return min_position <= watermark || (row_position >= 0 && row_position >= min_position);
}

int64_t user_retry_after_s(int64_t wait_ms)
{
    if (wait_ms <= 1000) return 1;
    return (wait_ms + 999) / 1000;
}

json_t *user_event_data(const user_state *u)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "user_id", u->id, "email", u->email,
                     "name", u->name, "role", u->role, "created_at", u->created_at, "updated_at",
                     u->updated_at, "position", (json_int_t)u->position);
}

static int copy_str(const json_t *data, const char *key, char *out, size_t cap, char *reason,
                    size_t rcap)
{
    const json_t *v = json_object_get(data, key);
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= cap) {
        snprintf(reason, rcap, "data.%s: must be a non-empty string of fewer than %zu bytes", key,
                 cap);
        return SL_EPARSE;
    }
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

int user_event_parse(const json_t *data, const char *subject, user_state *out, char *reason,
                     size_t cap)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(data)) {
        snprintf(reason, cap, "data: must be an object");
        return SL_EPARSE;
    }
    int rc = copy_str(data, "user_id", out->id, sizeof out->id, reason, cap);
    if (rc == 0) rc = copy_str(data, "email", out->email, sizeof out->email, reason, cap);
    if (rc == 0) rc = copy_str(data, "name", out->name, sizeof out->name, reason, cap);
    if (rc == 0) rc = copy_str(data, "role", out->role, sizeof out->role, reason, cap);
    if (rc == 0)
        rc = copy_str(data, "created_at", out->created_at, sizeof out->created_at, reason, cap);
    if (rc != 0) return rc;
    if (json_object_get(data, "updated_at")) {
        rc = copy_str(data, "updated_at", out->updated_at, sizeof out->updated_at, reason, cap);
        if (rc != 0) return rc;
    } else {
        memcpy(out->updated_at, out->created_at, sizeof out->updated_at);
    }
    if (!user_id_valid(out->id, strlen(out->id))) {
        snprintf(reason, cap, "data.user_id: must be a UUID");
        return SL_EPARSE;
    }
    if (!user_role_valid(out->role)) {
        snprintf(reason, cap, "data.role: must be customer or admin");
        return SL_EPARSE;
    }
    const json_t *pos = json_object_get(data, "position");
    if (!json_is_integer(pos) || json_integer_value(pos) < 1) {
        snprintf(reason, cap, "data.position: must be a positive integer");
        return SL_EPARSE;
    }
    out->position = (int64_t)json_integer_value(pos);
    if (subject && strcmp(subject, out->id) != 0) {
        snprintf(reason, cap, "subject: must equal data.user_id");
        return SL_EPARSE;
    }
    return 0;
}

/* ---- login failure throttling -------------------------------------------------------------- */

int64_t user_login_backoff_ms(int64_t failures, int64_t free, int64_t base_ms, int64_t max_ms)
{
    if (failures < free || base_ms <= 0) return 0;
    int64_t d = base_ms;
    for (int64_t i = free; i < failures && d < max_ms; i++)
        d *= 2;
    return d < max_ms ? d : max_ms;
}

static void decay(user_login_counter *c, int64_t now_ms, int64_t window_ms)
{
    if (c && c->failures > 0 && now_ms - c->last_ms > window_ms && now_ms >= c->blocked_until_ms)
        *c = (user_login_counter){0, 0, 0};
}

static void count_failure(user_login_counter *c, int64_t now_ms, int64_t free, int64_t base_ms,
                          int64_t max_ms)
{
    c->failures++;
    c->last_ms = now_ms;
    int64_t b = user_login_backoff_ms(c->failures, free, base_ms, max_ms);
    c->blocked_until_ms = b > 0 ? now_ms + b : 0;
}

int user_login_admit(const user_login_policy *p, int64_t now_ms, user_login_counter *account,
                     user_login_counter *client, user_login_counter *global, int64_t *retry_ms)
{
    SL_ASSERT(p && client && global && retry_ms);
    *retry_ms = 0;
    decay(account, now_ms, p->window_ms);
    decay(client, now_ms, p->window_ms);
    if (now_ms - global->last_ms >= p->global_window_ms || now_ms < global->last_ms)
        *global = (user_login_counter){0, now_ms, 0};
    int clean = client->failures == 0;
    int64_t wait = 0;
    if (client->blocked_until_ms > now_ms) wait = client->blocked_until_ms - now_ms;
    if (!clean && account && account->blocked_until_ms > now_ms &&
        account->blocked_until_ms - now_ms > wait)
        wait = account->blocked_until_ms - now_ms;
    if (!clean && global->failures >= p->global_budget) {
        int64_t g = global->last_ms + p->global_window_ms - now_ms;
        if (g > wait) wait = g;
    }
    if (wait > 0) {
        *retry_ms = wait;
        return SL_ELIMIT;
    }
    if (account)
        count_failure(account, now_ms, p->account_free, p->account_base_ms, p->account_max_ms);
    count_failure(client, now_ms, p->client_free, p->client_base_ms, p->client_max_ms);
    global->failures++;
    return 0;
}

void user_login_succeeded(const user_login_policy *p, user_login_counter *account,
                          user_login_counter *client, user_login_counter *global)
{
    SL_ASSERT(p && client && global);
    if (account) *account = (user_login_counter){0, 0, 0};
    if (client->failures > 0) client->failures--;
    int64_t b = user_login_backoff_ms(client->failures, p->client_free, p->client_base_ms,
                                      p->client_max_ms);
    client->blocked_until_ms = b > 0 ? client->last_ms + b : 0;
    if (global->failures > 0) global->failures--;
}
