/* shoal-traces: the local OTLP/HTTP trace receiver and its JSON API (traces.h). */
#include "traces.h"

#include <sys/stat.h>

int main(int argc, char **argv)
{
    /* Owner-only files: spans carry ids, paths and attributes of every request. */
    umask(077);
    return sl_service_main(&traces_service, argc, argv);
}
