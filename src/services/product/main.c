/*
 * shoal-product: hosts the catalogue service. `--rebuild-read-model` drops
 * and rebuilds the read model from the events, then exits (0 on success).
 */
#include "product.h"

#include <shoal/service.h>

#include <string.h>

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--rebuild-read-model") == 0) return product_rebuild_main(argc, argv);
    return sl_service_main(&product_service, argc, argv);
}
