/* shoal-notification: hosts the notification service (docs/services/notification.md). */
#include "notification.h"

int main(int argc, char **argv)
{
    return sl_service_main(&notification_service, argc, argv);
}
