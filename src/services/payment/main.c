/* shoal-payment: hosts the wallet service (docs/services/payment.md). */
#include "payment.h"

int main(int argc, char **argv)
{
    return sl_service_main(&payment_service, argc, argv);
}
