/*
 * libFuzzer target for the body of PUT /admin/clusters/{name}/split
 * (px_board_set_split, src/proxy/cluster.c) against a cluster with subsets
 * v1 and v2. Besides memory safety: an accepted body leaves weights in
 * bounds and not all 0; a refused one answers 400, 404 or 422 with a message
 * and leaves the weights as they were.
 */
#include "cluster.h"
#include "gwconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static px_config *cfg;
static px_board board;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg) {
        char err[PX_ERR_MAX];
        static const char yaml[] =
            "clusters:\n"
            "  hello:\n"
            "    endpoints: ['127.0.0.1:9001@v1', '127.0.0.1:9002@v2']\n"
            "    split: [{subset: v1, weight: 90}, {subset: v2, weight: 10}]\n";
        if (px_config_load_string("fuzz.yaml", yaml, NULL, &cfg, err) != 0) abort();
        if (px_board_init(&board, cfg, 1) != 0) abort();
    }
    uint32_t before[2] = {atomic_load(&board.weights[0]), atomic_load(&board.weights[1])};
    char msg[256] = "";
    int st = px_board_set_split(&board, cfg, 0, (const char *)data, size, msg);
    uint32_t w0 = atomic_load(&board.weights[0]), w1 = atomic_load(&board.weights[1]);
    if (st == 0) {
        if (w0 > PX_SUBSET_WEIGHT_MAX || w1 > PX_SUBSET_WEIGHT_MAX || w0 + w1 == 0) abort();
    } else {
        if ((st != 400 && st != 404 && st != 422) || !msg[0]) abort();
        if (w0 != before[0] || w1 != before[1]) abort();
    }
    return 0;
}
