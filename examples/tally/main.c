/* shoal-tally: hosts the tally service definition (tally.c) as its own process. */
#include "tally.h"

int main(int argc, char **argv)
{
    return sl_service_main(&tally_service, argc, argv);
}
