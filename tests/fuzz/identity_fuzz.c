/*
 * libFuzzer target for the identity proof parser: the input is split at the
 * first newline into an x-shoal-identity value and a request body, verified
 * against a fixed key ring (the result must be one of the documented codes,
 * and a 0 only for a proof that re-signs to the same value). The same input
 * is also read as an edge key file.
 */
#include <shoal/identity.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sl_identity_keyring ring;
    static sl_identity_replay *replay;
    if (ring.n == 0) {
        sl_identity_key master;
        memset(master.k, 9, sizeof master.k);
        if (sl_identity_edge_derive(&master, "gateway", "payment", "customer,admin", &ring.e[0]) ||
            sl_identity_edge_derive(&master, "order", "payment", "service", &ring.e[1]) ||
            sl_identity_replay_new(1024, &replay))
            abort();
        ring.n = 2;
    }
    const char *s = (const char *)data;
    const char *nl = memchr(s, '\n', size);
    size_t plen = nl ? (size_t)(nl - s) : size;
    const char *body = nl ? nl + 1 : s + size;
    size_t blen = size - plen - (nl ? 1 : 0);
    sl_http_header h[3] = {{SL_SLICE_LIT("x-user-id"), SL_SLICE_LIT("u-1")},
                           {SL_SLICE_LIT("x-user-role"), SL_SLICE_LIT("customer")},
                           {SL_SLICE_LIT("x-shoal-identity"), {s, plen}}};
    sl_identity_msg m = {.callee = "payment",
                         .method = SL_HTTP_POST,
                         .target = SL_SLICE_LIT("/charges?x=1"),
                         .body = body,
                         .body_len = blen};
    sl_identity id;
    int rc = sl_identity_verify(&ring, h, 3, &m, 1795869296000, 10000, replay, &id);
    if (rc != 0 && rc != SL_EINVAL && rc != SL_ECONFLICT && rc != SL_EEXIST && rc != SL_ELIMIT)
        abort();
    if (rc == 0 && (strcmp(id.user_id, "u-1") != 0 || strcmp(id.role, "customer") != 0)) abort();

    /* The same bytes as a key file. */
    char path[] = "/tmp/shoal-idfuzz-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        sl_identity_keyring r;
        char err[256];
        int lrc = sl_identity_keyring_load(path, &r, err);
        if (lrc != 0 && lrc != SL_EINVAL && lrc != SL_EIO) abort();
        if (lrc == 0 && r.n > SL_IDENTITY_EDGES_MAX) abort();
    }
    close(fd);
    unlink(path);
    return 0;
}
