/*
 * Password hashing for the auth module: Argon2id through libsodium's
 * crypto_pwhash_str family (the measured cost is in include/shoal/auth.h), and an
 * asynchronous wrapper that runs the hashing on the libuv threadpool with a
 * caller-owned bound on the operations in flight, so a login storm gets
 * SL_EBUSY (503) instead of exhausting memory at 64 MiB per hash.
 */
#include <shoal/auth.h>

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

sl_password_cost sl_password_cost_interactive(void)
{
    return (sl_password_cost){crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE};
}

sl_password_cost sl_password_cost_min(void)
{
    return (sl_password_cost){crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN};
}

static int check_cost(const sl_password_cost *c)
{
    if (c->opslimit < crypto_pwhash_OPSLIMIT_MIN || c->opslimit > crypto_pwhash_OPSLIMIT_MAX ||
        c->memlimit < crypto_pwhash_MEMLIMIT_MIN || c->memlimit > crypto_pwhash_MEMLIMIT_MAX)
        return SL_EINVAL;
    return 0;
}

/* Accepts the strings crypto_pwhash_str_verify() understands: NUL-terminated within
 * SL_PASSWORD_HASH_MAX and starting with an Argon2id or Argon2i prefix. */
static bool looks_like_hash(const char *s)
{
    if (strnlen(s, SL_PASSWORD_HASH_MAX) >= SL_PASSWORD_HASH_MAX) return false;
    return strncmp(s, crypto_pwhash_argon2id_STRPREFIX, strlen(crypto_pwhash_argon2id_STRPREFIX)) ==
               0 ||
           strncmp(s, crypto_pwhash_argon2i_STRPREFIX, strlen(crypto_pwhash_argon2i_STRPREFIX)) ==
               0;
}

int sl_password_hash(const char *pw, size_t len, const sl_password_cost *cost,
                     char out[SL_PASSWORD_HASH_MAX])
{
    SL_ASSERT((pw != NULL || len == 0) && out != NULL);
    _Static_assert(SL_PASSWORD_HASH_MAX == crypto_pwhash_STRBYTES, "hash buffer size");
    out[0] = '\0';
    if (len > SL_PASSWORD_MAX_BYTES) return SL_ELIMIT;
    sl_password_cost c = cost ? *cost : sl_password_cost_interactive();
    if (check_cost(&c) != 0) return SL_EINVAL;
    /* libsodium's documented precondition; idempotent and thread-safe. */
    if (sodium_init() < 0) return SL_EIO;
    /* crypto_pwhash_str uses the default algorithm, Argon2id v1.3 in 1.0.18. Its only runtime
     * failure is the allocation of memlimit bytes. */
    if (crypto_pwhash_str(out, pw ? pw : "", len, c.opslimit, c.memlimit) != 0) {
        out[0] = '\0';
        return SL_ENOMEM;
    }
    return 0;
}

int sl_password_verify(const char *stored, const char *pw, size_t len)
{
    SL_ASSERT(stored != NULL && (pw != NULL || len == 0));
    if (len > SL_PASSWORD_MAX_BYTES) return SL_ELIMIT;
    if (!looks_like_hash(stored)) return SL_EPARSE;
    if (sodium_init() < 0) return SL_EIO;
    /* Constant-time comparison of the recomputed hash inside libsodium. */
    return crypto_pwhash_str_verify(stored, pw ? pw : "", len) == 0 ? 0 : SL_EINVAL;
}

int sl_password_needs_rehash(const char *stored, const sl_password_cost *cost)
{
    SL_ASSERT(stored != NULL);
    if (!looks_like_hash(stored)) return SL_EPARSE;
    sl_password_cost c = cost ? *cost : sl_password_cost_interactive();
    if (sodium_init() < 0) return SL_EIO;
    /* 1 for other parameters or an Argon2i hash, 0 when current, -1 when undecodable. */
    int r = crypto_pwhash_str_needs_rehash(stored, c.opslimit, c.memlimit);
    return r < 0 ? SL_EPARSE : r;
}

void sl_password_limiter_init(sl_password_limiter *lim, uint32_t max)
{
    SL_ASSERT(lim != NULL && max >= 1);
    lim->in_flight = 0;
    lim->max = max;
}

/* One asynchronous operation. Owned by the module from submission until its callback ran. */
typedef struct pw_work {
    uv_work_t req;
    sl_password_limiter *lim;
    bool is_hash;
    sl_password_cost cost;
    int status;
    sl_password_hash_cb hash_cb;
    sl_password_verify_cb verify_cb;
    void *data;
    char stored[SL_PASSWORD_HASH_MAX]; /* verify: the stored hash; hash: the result */
    size_t pw_len;
    char pw[SL_PASSWORD_MAX_BYTES]; /* the copy of the password, wiped before free */
} pw_work;

/* On a threadpool thread. */
static void pw_run(uv_work_t *req)
{
    pw_work *w = req->data;
    if (w->is_hash)
        w->status = sl_password_hash(w->pw, w->pw_len, &w->cost, w->stored);
    else
        w->status = sl_password_verify(w->stored, w->pw, w->pw_len);
    sodium_memzero(w->pw, sizeof w->pw);
}

/* On the loop thread. */
static void pw_done(uv_work_t *req, int status)
{
    pw_work *w = req->data;
    SL_ASSERT(w->lim->in_flight > 0);
    w->lim->in_flight--; /* before the callback, so it can submit the next operation */
    if (status == UV_ECANCELED) w->status = SL_ECANCELED;
    if (w->is_hash)
        w->hash_cb(w->status, w->status == 0 ? w->stored : NULL, w->data);
    else
        w->verify_cb(w->status, w->data);
    sodium_memzero(w, sizeof *w);
    free(w);
}

/* Allocates an operation holding a copy of the password and submits it. */
static int submit(uv_loop_t *loop, sl_password_limiter *lim, pw_work *tmpl, const char *pw,
                  size_t len)
{
    if (len > SL_PASSWORD_MAX_BYTES) return SL_ELIMIT;
    if (lim->in_flight >= lim->max) return SL_EBUSY;
    pw_work *w = malloc(sizeof *w);
    if (!w) return SL_ENOMEM;
    *w = *tmpl;
    w->lim = lim;
    w->pw_len = len;
    if (len) memcpy(w->pw, pw, len);
    w->req.data = w;
    int rc = uv_queue_work(loop, &w->req, pw_run, pw_done);
    if (rc != 0) {
        sodium_memzero(w, sizeof *w);
        free(w);
        return rc;
    }
    lim->in_flight++;
    return 0;
}

int sl_password_hash_async(uv_loop_t *loop, sl_password_limiter *lim, const char *pw, size_t len,
                           const sl_password_cost *cost, sl_password_hash_cb cb, void *data)
{
    SL_ASSERT(loop != NULL && lim != NULL && cb != NULL && (pw != NULL || len == 0));
    pw_work t = {.is_hash = true, .hash_cb = cb, .data = data};
    t.cost = cost ? *cost : sl_password_cost_interactive();
    if (check_cost(&t.cost) != 0) return SL_EINVAL;
    return submit(loop, lim, &t, pw, len);
}

int sl_password_verify_async(uv_loop_t *loop, sl_password_limiter *lim, const char *stored,
                             const char *pw, size_t len, sl_password_verify_cb cb, void *data)
{
    SL_ASSERT(loop != NULL && lim != NULL && stored != NULL && cb != NULL);
    SL_ASSERT(pw != NULL || len == 0);
    pw_work t = {.is_hash = false, .verify_cb = cb, .data = data};
    /* A hash that does not fit cannot be valid: answer now rather than on the pool. */
    if (!looks_like_hash(stored)) return SL_EPARSE;
    memcpy(t.stored, stored, strlen(stored) + 1);
    return submit(loop, lim, &t, pw, len);
}
