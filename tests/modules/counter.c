/*  counter.c — a registers module for the loader tests ("register.counter.count"
    must find registers/counter.so): counts the events it has seen. */
#include <nerve/module.h>

#include <string.h>

static int s_count(nerve_register_call_t *call)
{
    uint64_t n = 0;
    if (call->state && call->state_len == sizeof n)
        memcpy(&n, call->state, sizeof n);
    n++;
    if (call->new_state_cap < sizeof n)
        return NERVE_ERANGE;
    memcpy(call->new_state, &n, sizeof n);
    call->new_state_len = sizeof n;
    call->out.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    call->out.via.u64 = n;
    return NERVE_OK;
}

static const nerve_module_fn_t s_functions[] = {
    {"count", {.reg = s_count}, "number of events seen", NULL, NULL},
    {NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_REGISTERS, "counter", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
