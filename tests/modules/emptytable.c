/*  emptytable.c — loader test: a function table with no functions (refused,
    NERVE_EINVAL). */
#include <nerve/module.h>

static const nerve_module_fn_t s_functions[] = {
    {NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_RULES, "emptytable", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
