/* shoal-user: hosts the user service definition (user.c) as its own process. */
#include "user.h"

int main(int argc, char **argv)
{
    return sl_service_main(&user_service, argc, argv);
}
