/* Names for call outcomes (include/shoal/outcome.h), generated from the X-macro table. */
#include <shoal/outcome.h>

const char *sl_outcome_kind_name(sl_outcome_kind kind)
{
    switch (kind) {
#define SL_OUTCOME_NAME_(name, text)                                                               \
    case SL_OUTCOME_##name:                                                                        \
        return text;
        SL_OUTCOME_KIND_MAP(SL_OUTCOME_NAME_)
#undef SL_OUTCOME_NAME_
    default:
        return "unknown";
    }
}
