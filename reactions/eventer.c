/*  reactions/eventer.c — reactions.eventer: turn a decision into an event.

        fire_event   emits event `tag` with `data` (default an empty map)

    The seed's reaction: a rule on /client/load/<host> fires /reconfig/lb, and
    rules on /reconfig/lb decide what reconfiguring means. On the manager the
    event is re-injected through api->emit with its hop count raised (the
    manager drops an event re-fired more than eight times, so two rules that
    fire each other cannot loop forever); on an actor it goes to the
    manager's events socket.

    The tag is checked when the rules load, unless it is a template
    ("/deploy/{{event.host}}"); then it is checked again once rendered, and a
    bad one fails this reaction with the reason in its output.
*/
#define _GNU_SOURCE /* memmem */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <nerve/module.h>

/*  Copies the `tag` arg into buf and checks it. Returns 0, or a negative
    nerve_err with a reason in why. A template is accepted unchecked when
    `templates` is set (at load time, before rendering). */
static int s_tag(const msgpack_object *args, bool templates, char *buf, size_t bufsize, char *why,
                 size_t whysize)
{
    const msgpack_object *t = nerve_obj_get(args, "tag");
    const char *s;
    size_t n;
    if (!t || !nerve_obj_str(t, &s, &n)) {
        snprintf(why, whysize, "fire_event needs 'tag' (an event tag like /app/deployed)");
        return NERVE_EINVAL;
    }
    if (templates && memmem(s, n, "{{", 2))
        return 0;
    nerve_wire_reason_t r = nerve_wire_check_tag(s, n);
    if (r != NERVE_WIRE_OK) {
        snprintf(why, whysize, "fire_event: 'tag' \"%.*s\" is not a valid tag (%s)",
                 (int)(n > 80 ? 80 : n), s, nerve_wire_reason_name(r));
        return NERVE_EINVAL;
    }
    if (n >= bufsize) /* cannot happen after check_tag; keeps the copy bounded */
        return NERVE_ERANGE;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

static int s_prepare_fire_event(const msgpack_object *args, void **prepared, char *err,
                                size_t errsize)
{
    *prepared = NULL;
    char tag[NERVE_TAG_MAX + 1];
    char why[256];
    int rc = s_tag(args, true, tag, sizeof tag, why, sizeof why);
    if (rc != 0 && err && errsize)
        snprintf(err, errsize, "%s", why);
    return rc;
}

static int s_fire_event(nerve_reaction_call_t *call)
{
    char tag[NERVE_TAG_MAX + 1];
    char why[256];
    int rc = s_tag(call->args, false, tag, sizeof tag, why, sizeof why);
    if (rc != 0)
        return nerve_reaction_say(call, rc, "%s", why);
    static const msgpack_object empty = {.type = MSGPACK_OBJECT_MAP};
    const msgpack_object *data = nerve_obj_get(call->args, "data");
    if (!data)
        data = &empty;
    if (!NERVE_API_HAS(call->api, emit))
        return nerve_reaction_say(call, NERVE_ESTATE, "fire_event: this daemon cannot emit events");
    rc = call->api->emit(call->host, tag, data);
    if (rc != 0)
        return nerve_reaction_say(call, rc < 0 ? rc : NERVE_EMODULE, "fire_event %s failed: %s", tag,
                     nerve_strerror(rc));
    return nerve_reaction_say(call, 0, "fired %s", tag);
}

static const nerve_module_fn_t s_functions[] = {
    {"fire_event",
     {.reaction = s_fire_event},
     "emits event `tag` with `data` (default {}) back into the manager",
     s_prepare_fire_event,
     NULL},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_REACTIONS, "eventer", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
