/* Version subset choice (subset.h). */
#include "subset.h"

#include <shoal/common.h>

#include <string.h>

/* FNV-1a, then a final mix so that close ids spread over the weight line. */
static uint64_t hash_id(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static int on_line(const uint32_t *w, const unsigned char *ok, size_t n, uint64_t point)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (!ok || ok[i]) total += w[i];
    if (total == 0) return -1;
    uint64_t p = point % total, acc = 0;
    for (size_t i = 0; i < n; i++) {
        if (ok && !ok[i]) continue;
        acc += w[i];
        if (p < acc) return (int)i;
    }
    return -1; /* not reached */
}

int px_subset_choose(const px_subset_input *in)
{
    SL_ASSERT(in && in->n >= 1 && in->n <= PX_SUBSETS_MAX && in->weights && in->usable);
    size_t n = in->n;
    if (in->canary_header && in->canary >= 0 && (size_t)in->canary < n && in->usable[in->canary])
        return in->canary;
    uint64_t point = in->random;
    if (in->sticky && in->user_id && in->user_id_len) point = hash_id(in->user_id, in->user_id_len);
    int s = on_line(in->weights, in->usable, n, point);
    if (s >= 0) return s;
    /* Every weighted subset is out: the usable one with the most weight. */
    int best = -1;
    for (size_t i = 0; i < n; i++)
        if (in->usable[i] && (best < 0 || in->weights[i] > in->weights[best])) best = (int)i;
    if (best >= 0) return best;
    s = on_line(in->weights, NULL, n, point);
    return s >= 0 ? s : 0;
}

bool px_subset_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > PX_SUBSET_NAME_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

size_t px_subset_split_endpoint(const char *ep, const char **version)
{
    const char *at = strrchr(ep, '@');
    *version = at ? at + 1 : NULL;
    return at ? (size_t)(at - ep) : strlen(ep);
}
