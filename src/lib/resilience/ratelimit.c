/*
 * Keyed rate limiter (include/shoal/ratelimit.h). Storage, all allocated at
 * creation: an entry array (one GCRA arrival time per key, LRU links, hash
 * chain link), a key blob of max_keys * key_max_len bytes, chain heads, and
 * the ghost array that keeps evicted keys' debts. Entries are referred to by
 * 32-bit index; NIL ends a list.
 */
#include <shoal/ratelimit.h>

#include "resilience_int.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX

typedef struct entry {
    uint64_t hash;
    int64_t tat; /* theoretical arrival time (GCRA), monotonic ns */
    uint32_t lru_prev, lru_next;
    uint32_t chain_next;
    uint32_t key_len;
} entry;

struct sl_ratelimit {
    sl_ratelimit_config cfg;
    const sl_clock *clock;
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    int64_t interval_ns;  /* T: time one token takes to come back */
    int64_t tolerance_ns; /* tau = (burst - 1) * T */
    entry *entries;
    char *keys;          /* key i at keys + i * key_max_len */
    uint32_t *chains;    /* chain heads, nbuckets of them */
    int64_t *ghosts;     /* nghosts of them: a power of two >= max(2 * max_keys, 1024) */
    uint32_t mask;       /* nbuckets - 1 */
    uint32_t ghost_mask; /* nghosts - 1 */
    uint32_t used;
    uint32_t lru_head, lru_tail; /* most / least recently used */
    sl_ratelimit_stats stats;
};

void sl_ratelimit_config_default(sl_ratelimit_config *cfg)
{
    *cfg = (sl_ratelimit_config){
        .rate = 10, .period_ms = 1000, .burst = 20, .max_keys = 10000, .key_max_len = 128};
}

static int config_valid(const sl_ratelimit_config *c)
{
    return c->rate > 0 && c->period_ms > 0 && c->period_ms <= SL_RATELIMIT_MAX_PERIOD_MS &&
           c->burst > 0 && c->max_keys > 0 && c->max_keys <= SL_RATELIMIT_MAX_KEYS &&
           c->key_max_len > 0 && c->key_max_len <= SL_RATELIMIT_MAX_KEY_LEN;
}

int sl_ratelimit_new(const sl_ratelimit_config *cfg, const sl_clock *clock, sl_rand *rand,
                     sl_ratelimit **out)
{
    if (cfg == NULL || clock == NULL || rand == NULL || out == NULL || !config_valid(cfg))
        return SL_ECONFIG;
    /* libsodium's documented precondition; idempotent and thread-safe. */
    if (sodium_init() < 0) return SL_EIO;
    sl_ratelimit *rl = calloc(1, sizeof *rl);
    if (rl == NULL) return SL_ENOMEM;
    rl->cfg = *cfg;
    rl->clock = clock;
    for (size_t i = 0; i < sizeof rl->hash_key; i += 8) {
        uint64_t r = sl_rand_next(rand);
        memcpy(rl->hash_key + i, &r, 8);
    }
    /* Round the interval up: a slightly slower refill never admits more than promised. */
    int64_t period_ns = cfg->period_ms * SL_NS_PER_MS;
    rl->interval_ns = (period_ns + cfg->rate - 1) / cfg->rate;
    /* A day-long period with a huge burst would overflow the arrival-time arithmetic. */
    if ((int64_t)(cfg->burst - 1) > (INT64_MAX / 4) / rl->interval_ns) {
        sl_ratelimit_free(rl);
        return SL_ECONFIG;
    }
    rl->tolerance_ns = (int64_t)(cfg->burst - 1) * rl->interval_ns;
    uint32_t nbuckets = 1;
    while (nbuckets < cfg->max_keys)
        nbuckets <<= 1;
    rl->mask = nbuckets - 1;
    /* Ghosts shared by two keys make both stricter: keep them sparse. */
    uint32_t nghosts = 1024;
    while (nghosts < 2 * cfg->max_keys)
        nghosts <<= 1;
    rl->ghost_mask = nghosts - 1;
    rl->entries = calloc(cfg->max_keys, sizeof *rl->entries);
    rl->keys = malloc((size_t)cfg->max_keys * cfg->key_max_len);
    rl->chains = malloc(sizeof *rl->chains * nbuckets);
    rl->ghosts = malloc(sizeof *rl->ghosts * nghosts);
    if (!rl->entries || !rl->keys || !rl->chains || !rl->ghosts) {
        sl_ratelimit_free(rl);
        return SL_ENOMEM;
    }
    for (uint32_t i = 0; i < nbuckets; i++)
        rl->chains[i] = NIL;
    for (uint32_t i = 0; i < nghosts; i++)
        rl->ghosts[i] = INT64_MIN;
    rl->lru_head = rl->lru_tail = NIL;
    *out = rl;
    return 0;
}

void sl_ratelimit_free(sl_ratelimit *rl)
{
    if (rl == NULL) return;
    free(rl->entries);
    free(rl->keys);
    free(rl->chains);
    free(rl->ghosts);
    free(rl);
}

static uint64_t hash_key(const sl_ratelimit *rl, const char *key, size_t len)
{
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash(out, (const unsigned char *)key, len, rl->hash_key);
    uint64_t h;
    memcpy(&h, out, sizeof h);
    return h;
}

/* Chains use the low bits, ghosts the high bits, so the two groupings differ. */
static uint32_t chain_of(const sl_ratelimit *rl, uint64_t h)
{
    return (uint32_t)h & rl->mask;
}
static uint32_t ghost_of(const sl_ratelimit *rl, uint64_t h)
{
    return (uint32_t)(h >> 32) & rl->ghost_mask;
}

static void lru_unlink(sl_ratelimit *rl, uint32_t i)
{
    entry *e = &rl->entries[i];
    if (e->lru_prev != NIL)
        rl->entries[e->lru_prev].lru_next = e->lru_next;
    else
        rl->lru_head = e->lru_next;
    if (e->lru_next != NIL)
        rl->entries[e->lru_next].lru_prev = e->lru_prev;
    else
        rl->lru_tail = e->lru_prev;
}

static void lru_push_front(sl_ratelimit *rl, uint32_t i)
{
    entry *e = &rl->entries[i];
    e->lru_prev = NIL;
    e->lru_next = rl->lru_head;
    if (rl->lru_head != NIL) rl->entries[rl->lru_head].lru_prev = i;
    rl->lru_head = i;
    if (rl->lru_tail == NIL) rl->lru_tail = i;
}

static uint32_t lookup(const sl_ratelimit *rl, uint64_t h, const char *key, size_t len)
{
    for (uint32_t i = rl->chains[chain_of(rl, h)]; i != NIL; i = rl->entries[i].chain_next) {
        const entry *e = &rl->entries[i];
        if (e->hash == h && e->key_len == len &&
            memcmp(rl->keys + (size_t)i * rl->cfg.key_max_len, key, len) == 0)
            return i;
    }
    return NIL;
}

static void chain_remove(sl_ratelimit *rl, uint32_t i)
{
    uint32_t *link = &rl->chains[chain_of(rl, rl->entries[i].hash)];
    while (*link != i)
        link = &rl->entries[*link].chain_next;
    *link = rl->entries[i].chain_next;
}

/* Frees the least recently used entry, keeping its debt in its ghost. Returns its index. */
static uint32_t evict(sl_ratelimit *rl, int64_t now)
{
    uint32_t i = rl->lru_tail;
    entry *e = &rl->entries[i];
    if (e->tat > now) {
        int64_t *g = &rl->ghosts[ghost_of(rl, e->hash)];
        if (e->tat > *g) *g = e->tat;
    }
    lru_unlink(rl, i);
    chain_remove(rl, i);
    rl->stats.evictions++;
    return i;
}

static uint32_t insert(sl_ratelimit *rl, uint64_t h, const char *key, size_t len, int64_t now)
{
    uint32_t i = rl->used < rl->cfg.max_keys ? rl->used++ : evict(rl, now);
    entry *e = &rl->entries[i];
    e->hash = h;
    e->key_len = (uint32_t)len;
    e->tat = rl->ghosts[ghost_of(rl, h)]; /* INT64_MIN unless an evicted key left a debt */
    memcpy(rl->keys + (size_t)i * rl->cfg.key_max_len, key, len);
    uint32_t *head = &rl->chains[chain_of(rl, h)];
    e->chain_next = *head;
    *head = i;
    lru_push_front(rl, i);
    return i;
}

int sl_ratelimit_take(sl_ratelimit *rl, const char *key, size_t len, int64_t *retry_after_ms)
{
    if (key == NULL || len == 0 || len > rl->cfg.key_max_len) return SL_EINVAL;
    int64_t now = sl_clock_mono_ns(rl->clock);
    uint64_t h = hash_key(rl, key, len);
    uint32_t i = lookup(rl, h, key, len);
    if (i == NIL) {
        i = insert(rl, h, key, len, now);
    } else {
        lru_unlink(rl, i);
        lru_push_front(rl, i);
    }
    entry *e = &rl->entries[i];
    /* GCRA: admit when the bucket's arrival time is at most tau ahead of now. */
    int64_t tat = e->tat > now ? e->tat : now;
    if (tat - now > rl->tolerance_ns) {
        int64_t wait = tat - rl->tolerance_ns - now;
        if (retry_after_ms) *retry_after_ms = wait / SL_NS_PER_MS + (wait % SL_NS_PER_MS != 0);
        rl->stats.refused++;
        return SL_ELIMIT;
    }
    e->tat = tat + rl->interval_ns;
    rl->stats.admitted++;
    return 0;
}

void sl_ratelimit_stats_get(const sl_ratelimit *rl, sl_ratelimit_stats *out)
{
    *out = rl->stats;
    out->keys = rl->used;
}
