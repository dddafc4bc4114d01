/*  badname.c — loader test: its descriptor says "other" but the file is
    badname.so (refused, NERVE_EINVAL). */
#include <nerve/module.h>

static int s_yes(const nerve_rule_call_t *call, bool *result)
{
    *result = true;
    return NERVE_OK;
}

static const nerve_module_fn_t s_functions[] = {
    {"yes", {.rule = s_yes}, "always true", NULL, NULL},
    {NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_RULES, "other", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
