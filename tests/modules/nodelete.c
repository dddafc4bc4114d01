/*  nodelete.c — loader test: a module the dynamic loader never unloads.

    It is linked with -z nodelete (tests/CMakeLists.txt), as glibc treats
    any C++ module with STB_GNU_UNIQUE symbols: dlclose() leaves it mapped.
    Loading and releasing it over and over must not cost a descriptor
    each time (lib/module.c, s_resident). */
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
    NERVE_MODULE_MAGIC,
    NERVE_MODULE_ABI_MAJOR,
    NERVE_MODULE_ABI_MINOR,
    (uint32_t)sizeof(nerve_module_t),
    NERVE_ROLE_RULES,
    "nodelete",
    "1.0.0",
    s_functions,
    NULL,
    NULL,
};

NERVE_MODULE_EXPORT(s_module)
