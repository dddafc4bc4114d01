/*  good_v2.c — the next release of good.c: installed as rules/good.so
    (its descriptor says "good") to test first-match order and a module
    renamed over while an older set still runs the old one. */
#include <nerve/module.h>

static int s_gt(const nerve_rule_call_t *call, bool *result)
{
    *result = true;
    return NERVE_OK;
}

static const nerve_module_fn_t s_functions[] = {
    {"gt", {.rule = s_gt}, "always true (v2)", NULL, NULL},
    {NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_RULES, "good", "2.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
