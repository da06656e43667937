/* The mesh's local hop (identity.h): the token a sidecar proves itself with, and the caller
 * service it names. */
#include <shoal/identity.h>

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sl_identity_peer_token_load(const char *path, sl_identity_key *token, char *err)
{
    /* One open file for the check and the read (no symlink followed), so neither can be
     * swapped between them. */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, 256, "%.200s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return SL_EIO;
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
        snprintf(err, 256, "%.200s: must be a regular file of mode 0600 or stricter", path);
        close(fd);
        return SL_EINVAL;
    }
    char buf[80];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    size_t len = n > 0 ? (size_t)n : 0, bin_len = 0;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    int ok = len == 2 * SL_IDENTITY_KEY_BYTES &&
             sodium_hex2bin(token->k, sizeof token->k, buf, len, NULL, &bin_len, NULL) == 0 &&
             bin_len == SL_IDENTITY_KEY_BYTES;
    sodium_memzero(buf, sizeof buf);
    if (!ok) {
        snprintf(err, 256, "%.200s: not a token (64 hex characters expected)", path);
        return SL_EINVAL;
    }
    return 0;
}

void sl_identity_peer_token_hex(const sl_identity_key *token, char out[65])
{
    sodium_bin2hex(out, 65, token->k, sizeof token->k);
}

/* The value of the only `name` header: 1, 0 when absent, -1 when repeated. */
static int only(const sl_http_header *h, size_t n, const char *name, sl_slice *v)
{
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (!sl_slice_case_eq(h[i].name, name)) continue;
        if (found++) return -1;
        *v = h[i].value;
    }
    return found;
}

static int peer_name_ok(sl_slice s)
{
    if (s.len == 0 || s.len > SL_IDENTITY_PEER_MAX || s.ptr[0] == '-') return 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return 0;
    }
    return 1;
}

int sl_identity_peer_verify(const sl_identity_key *token, const sl_http_header *headers,
                            size_t nheaders, char *out, size_t cap)
{
    SL_ASSERT(token && out && cap > SL_IDENTITY_PEER_MAX);
    out[0] = '\0';
    sl_slice tok = {NULL, 0}, svc = {NULL, 0};
    int nt = only(headers, nheaders, SL_IDENTITY_PEER_TOKEN_HEADER, &tok);
    int ns = only(headers, nheaders, SL_IDENTITY_PEER_SERVICE_HEADER, &svc);
    if (nt == 0 && ns == 0) return SL_ENOTFOUND;
    if (nt != 1 || ns != 1) return SL_EINVAL;
    char want[65];
    sl_identity_peer_token_hex(token, want);
    int same = tok.len == 64 && sodium_memcmp(want, tok.ptr, 64) == 0;
    sodium_memzero(want, sizeof want);
    if (!same || !peer_name_ok(svc)) return SL_EINVAL;
    memcpy(out, svc.ptr, svc.len);
    out[svc.len] = '\0';
    return 0;
}
