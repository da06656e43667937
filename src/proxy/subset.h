/*
 * Version subsets of a cluster (canary and blue/green): a cluster's
 * endpoints may carry a version label ("127.0.0.1:9001@v2"); its `split`
 * gives each version a weight. For each request the gateway chooses a subset
 * here, then an endpoint within it (cluster.c). Pure: no I/O, no clock; the
 * random number comes from the caller.
 *
 * The choice, in order:
 *   1. the canary header (`x-shoal-canary: 1`) names the canary subset, when
 *      that subset has a usable endpoint;
 *   2. sticky: a hash of the user id (when the request carries one) picks a
 *      point on the weight line, so the same user lands on the same subset
 *      for given weights; otherwise the random number does;
 *   3. subsets without a usable endpoint are left out; when every weighted
 *      subset is out, the usable subset with the most weight (then the
 *      first) is taken, and when none is usable the weights alone decide.
 */
#ifndef SHOAL_PROXY_SUBSET_H
#define SHOAL_PROXY_SUBSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PX_SUBSETS_MAX       4
#define PX_SUBSET_NAME_MAX   15
#define PX_SUBSET_WEIGHT_MAX 1000000

/* What one choice needs. `usable[s]`: subset s has at least one endpoint to send to. */
typedef struct px_subset_input {
    size_t n;                    /* subsets, 1..PX_SUBSETS_MAX */
    const uint32_t *weights;     /* [n] */
    const unsigned char *usable; /* [n] */
    int canary;                  /* the header's subset, or -1 */
    bool canary_header;          /* the request asked for the canary */
    bool sticky;                 /* hash the user id */
    const char *user_id;         /* NULL or "": none */
    size_t user_id_len;
    uint64_t random; /* any 64-bit random number */
} px_subset_input;

/* Returns the chosen subset index (0..n-1). */
int px_subset_choose(const px_subset_input *in);

/* True when `s` is a valid version label: 1..PX_SUBSET_NAME_MAX of [a-z0-9._-]. */
bool px_subset_name_ok(const char *s, size_t len);

/*
 * Splits "host:port@version" at the last '@'. Returns the length of the
 * address part and points *version at the label (NULL when there is none).
 */
size_t px_subset_split_endpoint(const char *ep, const char **version);

#endif
