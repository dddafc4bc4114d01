/*  initfail.c — loader test: init() returns -1 (refused, NERVE_EMODULE). */
#include <nerve/module.h>

static int s_yes(const nerve_rule_call_t *call, bool *result)
{
    *result = true;
    return NERVE_OK;
}

static int s_init(void)
{
    return -1;
}

static const nerve_module_fn_t s_functions[] = {
    {"yes", {.rule = s_yes}, "always true", NULL, NULL},
    {NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_RULES, "initfail", "1.0.0", s_functions, s_init, NULL,
};

NERVE_MODULE_EXPORT(s_module)
