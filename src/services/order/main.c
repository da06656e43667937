/* shoal-order: hosts the order service definition (order.c) as its own process. */
#include "order.h"

int main(int argc, char **argv)
{
    return sl_service_main(&order_service, argc, argv);
}
