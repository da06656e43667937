/*
 * `shoal up`'s last readiness step (ready.c): the shop is announced ready only
 * when the README's walk can run, that is when a catalogue read through the
 * gateway (`ready_stock_path` in the topology, e.g. /api/v1/products?per_page=1)
 * lists a product with stock. Every service answering /readyz is not enough:
 * the catalogue's stock reaches the product read model through the bus a
 * moment later.
 */
#ifndef SHOAL_CLI_READY_H
#define SHOAL_CLI_READY_H

#include <stddef.h>

/* 1 when `body` (a product list: {"items":[{..., "available": N}, ...]}) has an item with
 * available > 0; 0 otherwise (no such item, not that shape, not JSON). Pure. */
int cli_ready_body_has_stock(const char *body, size_t len);

/* One blocking GET `path` on 127.0.0.1:`port` (1 s send and receive timeouts, at most 256 KiB
 * read): 1 when it answers 200 with a body that has stock, else 0. */
int cli_ready_stock(int port, const char *path);

#endif
