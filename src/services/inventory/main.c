/* shoal-inventory: hosts the inventory service definition (inventory.c) as its own process. */
#include "inventory.h"

int main(int argc, char **argv)
{
    return sl_service_main(&inventory_service, argc, argv);
}
