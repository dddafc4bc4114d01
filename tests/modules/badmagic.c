/*  badmagic.c — loader test: wrong magic number (refused, NERVE_EABI). */
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
    0xdeadbeefu,
    NERVE_MODULE_ABI_MAJOR,
    NERVE_MODULE_ABI_MINOR,
    (uint32_t)sizeof(nerve_module_t),
    NERVE_ROLE_RULES,
    "badmagic",
    "1.0.0",
    s_functions,
    NULL,
    NULL,
};

NERVE_MODULE_EXPORT(s_module)
