/* shoal-cart: hosts the cart service definition (cart.c) as its own process. */
#include "cart.h"

int main(int argc, char **argv)
{
    return sl_service_main(&cart_service, argc, argv);
}
