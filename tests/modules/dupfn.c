/*  dupfn.c — loader test: function "yes" twice in the table (refused,
    NERVE_EINVAL). */
#include <nerve/module.h>

static int s_yes(const nerve_rule_call_t *call, bool *result)
{
    *result = true;
    return NERVE_OK;
}

static const nerve_module_fn_t s_functions[] = {
    {"yes", {.rule = s_yes}, "always true", NULL, NULL},
    {"yes", {.rule = s_yes}, "again", NULL, NULL},
    {NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_RULES, "dupfn", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
