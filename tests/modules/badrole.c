/*  badrole.c — loader test: a reactions module installed under rules/
    (refused, NERVE_EINVAL: the descriptor's role disagrees with the path). */
#include <nerve/module.h>

static int s_noop(nerve_reaction_call_t *call)
{
    return NERVE_OK;
}

static const nerve_module_fn_t s_functions[] = {
    {"yes", {.reaction = s_noop}, "does nothing", NULL, NULL},
    {NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_REACTIONS, "badrole", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
