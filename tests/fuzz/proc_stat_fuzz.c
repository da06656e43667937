/*
 * libFuzzer target for the /proc/<pid>/stat parser behind the process
 * metrics (sl_metrics_proc_stat_parse): any input is refused or parsed
 * without reading past it, and an accepted line parses again to the same
 * values.
 */
#include <shoal/metrics.h>

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, so a read past the end is caught by the sanitizer. */
    char *text = malloc(size ? size : 1);
    if (!text) return 0;
    if (size) memcpy(text, data, size);
    sl_proc_stat a, b;
    if (sl_metrics_proc_stat_parse(text, size, &a) == 0) {
        if (sl_metrics_proc_stat_parse(text, size, &b) != 0) abort();
        if (memcmp(&a, &b, sizeof a) != 0) abort();
    }
    free(text);
    return 0;
}
