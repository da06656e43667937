/*
 * shoal-shop: hosts several of the shop's service definitions in one process
 * (`--services user,product,...`, default all seven). Each keeps its own port,
 * database, configuration, logs and metrics; see docs/architecture.md
 * ("Hosting") for the shapes `shoal up` runs.
 */
#include <shoal/service.h>

extern const sl_service_def user_service, product_service, cart_service, inventory_service,
    order_service, payment_service, notification_service;

int main(int argc, char **argv)
{
    static const sl_service_def *const all[] = {
        &user_service,  &product_service, &cart_service,        &inventory_service,
        &order_service, &payment_service, &notification_service};
    return sl_service_host_main(all, SL_ARRAY_LEN(all), argc, argv);
}
