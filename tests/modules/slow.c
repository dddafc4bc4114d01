/*  slow.c — a test reaction module (reactions.slow.sleep) that takes as long
    as its `ms` arg says, to show a slow reaction never stalls the engine. */
#include <nerve/module.h>

#include <stdio.h>
#include <time.h>

static int s_sleep(nerve_reaction_call_t *call)
{
    double ms = nerve_obj_get_number(call->args, "ms", 1000);
    struct timespec ts = {(time_t)(ms / 1000), (long)((long long)ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    call->output_len = (size_t)snprintf(call->output, call->output_cap, "slept %.0f ms", ms);
    return NERVE_OK;
}

static const nerve_module_fn_t s_functions[] = {
    {"sleep", {.reaction = s_sleep}, "sleeps `ms` milliseconds (tests)", NULL, NULL},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_REACTIONS, "slow", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
