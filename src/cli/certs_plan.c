/* The pure decisions of `shoal certs` (certs.h). */
#include "certs.h"

#include <shoal/common.h>

#include <errno.h>
#include <stdlib.h>

int cli_certs_window(int64_t now, int64_t hours, int64_t backdate_h, int64_t *not_before,
                     int64_t *not_after)
{
    if (hours < 1 || hours > CLI_CERTS_HOURS_MAX || backdate_h < 0 ||
        backdate_h > CLI_CERTS_HOURS_MAX || now < 0)
        return SL_EINVAL;
    *not_before = now - backdate_h * 3600;
    *not_after = *not_before + hours * 3600;
    return 0;
}

bool cli_certs_should_renew(int64_t now, int64_t not_before, int64_t not_after, bool by_current_ca)
{
    if (!by_current_ca || not_after <= not_before) return true;
    return now >= cli_certs_renew_at(not_before, not_after);
}

int64_t cli_certs_renew_at(int64_t not_before, int64_t not_after)
{
    if (not_after <= not_before) return not_before;
    return not_after - (not_after - not_before) / 3;
}

int64_t cli_certs_next_check_ms(int64_t now_ms, int64_t due_ms)
{
    int64_t wait = due_ms - now_ms;
    return wait < 200 ? 200 : wait > 60000 ? 60000 : wait;
}

int cli_certs_parse_hours(const char *s, int64_t *out)
{
    if (!s || !*s) return SL_EINVAL;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 0 || v > CLI_CERTS_HOURS_MAX || s[0] == '+' || s[0] == ' ')
        return SL_EINVAL;
    *out = v;
    return 0;
}
