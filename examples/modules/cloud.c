/*  cloud.c — an operator's reaction module, built out of tree: the seed's
    `reactions.cloud.scale_up`.

    It stands in for a call to a cloud API: it logs what it would scale and
    fires `/cloud/scale_up` with the machine id, so rules (and `nerve watch`)
    see that it ran. Build it against an installed nerve:

        cc -shared -fPIC -o reactions/cloud.so cloud.c $(pkg-config --cflags --libs nerve)

    and put reactions/cloud.so under a directory on the manager's `modules`
    path (the file and its directory must not be group- or world-writable).
*/
#include <nerve/module.h>

#include <stdio.h>
#include <string.h>

static int s_scale_up(nerve_reaction_call_t *call)
{
    char machine[256] = "";
    const msgpack_object *id = nerve_obj_get(call->args, "machine_id");
    if (!id || !nerve_obj_strcpy(id, machine, sizeof machine)) {
        return nerve_reaction_say(call, NERVE_EINVAL, "scale_up needs 'machine_id' (a string)");
    }
    NERVE_INFO("cloud", "scale_up: would add capacity next to %s (rule %s, event %s from %s)",
               machine, call->rule, call->event->tag, call->event->host);

    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "machine_id", 10);
    msgpack_pack_str_with_body(&pk, machine, strlen(machine));
    msgpack_pack_str_with_body(&pk, "value", 5);
    msgpack_pack_int(&pk, 1);
    int rc = call->api->emit_raw(call->host, "/cloud/scale_up", buf.data, buf.size);
    msgpack_sbuffer_destroy(&buf);

    return nerve_reaction_say(call, rc, "scale_up %s: %s", machine,
                              rc == 0 ? "requested" : nerve_strerror(rc));
}

static const nerve_module_fn_t s_functions[] = {
    {"scale_up", {.reaction = s_scale_up}, "add capacity next to machine_id (example)", NULL,
     NULL},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_REACTIONS, "cloud", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
