/*  reactions/store.c — reactions.store: set a register from a reaction.

        set   stores `value` as the state of register scope `register`,
              key `key` (default: the event's host)

    The write half of registers.store: a reaction on one event records
    something ("web1 is in maintenance", "last deploy id") that rules on
    later events read back with `register: registers.store.get` and the same
    scope (`scope:` on that rule). The value goes through api->register_set,
    which stores its packed msgpack — exactly registers.store's format — in
    the manager's register store, so it is batched and committed like every
    other register write and outlives restarts.

    Manager only: an actor's api answers NERVE_ESTATE, which this reaction
    reports as its failure. Scope and key are at most 255 bytes each.
*/
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <nerve/module.h>

#define S_NAME_MAX 255

/*  A name arg (register, key) as a C string: a non-empty string without
    NUL bytes, or an integer (a key rendered from "{{event.data.id}}").
    Returns 0, NERVE_ENOENT when absent, NERVE_EINVAL otherwise. */
static int s_name(const msgpack_object *args, const char *key, char *buf, size_t bufsize)
{
    const msgpack_object *o = nerve_obj_get(args, key);
    const char *s;
    size_t n;
    if (!o)
        return NERVE_ENOENT;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        snprintf(buf, bufsize, "%" PRIu64, o->via.u64);
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        snprintf(buf, bufsize, "%" PRId64, o->via.i64);
        return 0;
    }
    if (!nerve_obj_str(o, &s, &n) || n == 0 || n >= bufsize || memchr(s, '\0', n))
        return NERVE_EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

static int s_prepare_set(const msgpack_object *args, void **prepared, char *err, size_t errsize)
{
    *prepared = NULL;
    char name[S_NAME_MAX + 1];
    const char *why = NULL;
    if (s_name(args, "register", name, sizeof name) != 0)
        why = "set needs 'register' (the register scope to write, at most 255 bytes)";
    else if (s_name(args, "key", name, sizeof name) == NERVE_EINVAL)
        why = "set: 'key' must be a string of 1 to 255 bytes";
    else if (!nerve_obj_get(args, "value"))
        why = "set needs 'value' (what to store)";
    if (!why)
        return 0;
    if (err && errsize)
        snprintf(err, errsize, "%s", why);
    return NERVE_EINVAL;
}

static int s_set(nerve_reaction_call_t *call)
{
    char scope[S_NAME_MAX + 1], key[S_NAME_MAX + 1];
    if (s_name(call->args, "register", scope, sizeof scope) != 0)
        return nerve_reaction_say(call, NERVE_EINVAL, "set needs 'register' (a string of 1 to 255 bytes)");
    int rc = s_name(call->args, "key", key, sizeof key);
    if (rc == NERVE_ENOENT) {
        if (!call->event || !call->event->host[0])
            return nerve_reaction_say(call, NERVE_EINVAL, "set: no 'key' and no event host to default to");
        snprintf(key, sizeof key, "%s", call->event->host);
    } else if (rc != 0) {
        return nerve_reaction_say(call, NERVE_EINVAL, "set: 'key' must be a string of 1 to 255 bytes");
    }
    const msgpack_object *value = nerve_obj_get(call->args, "value");
    if (!value)
        return nerve_reaction_say(call, NERVE_EINVAL, "set needs 'value'");
    if (!NERVE_API_HAS(call->api, register_set))
        return nerve_reaction_say(call, NERVE_ESTATE, "set: this daemon keeps no registers");
    rc = call->api->register_set(call->host, scope, key, value);
    if (rc != 0)
        return nerve_reaction_say(call, rc < 0 ? rc : NERVE_EMODULE, "set %s/%s failed: %s", scope, key,
                     nerve_strerror(rc));
    char shown[128];
    nerve_obj_format(value, shown, sizeof shown);
    return nerve_reaction_say(call, 0, "set %s/%s = %s", scope, key, shown);
}

static const nerve_module_fn_t s_functions[] = {
    {"set",
     {.reaction = s_set},
     "stores `value` in register scope `register` under `key` (default: the event's host)",
     s_prepare_set,
     NULL},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_REACTIONS, "store", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
