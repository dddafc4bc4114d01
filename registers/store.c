/*  registers/store.c — registers.store: one value kept per key.

        get   the rule sees the stored value; the state is not touched
        set   the value is stored; the rule sees it too

    The state is exactly the packed msgpack of the value — no header, no
    version — because it is a contract shared with others: the reaction
    reactions.store.set writes it through api->register_set, and `nerve
    registers` shows it as is. That is how a reaction on one event can set a
    flag ("maintenance", "last deploy") that rules on later events read with
    registers.store.get.

    get copies the bytes into the call's zone before decoding, because the
    state points into the manager's cache, which may move after the call,
    and the output must live as long as the zone. Bytes that are not one
    msgpack value answer nothing and return NERVE_EPARSE; they stay as they
    are until the next set. They are checked before anything is built
    (nerve_wire_unpack): a state is bytes in LMDB, and a few bytes that
    claim billions of entries must not make a register allocate them.
*/
#include <string.h>

#include <nerve/module.h>

/*  A msgpack writer into the manager's fixed state buffer. */
typedef struct s_fixed {
    uint8_t *buf;
    size_t cap;
    size_t len;
} s_fixed_t;

static int s_fixed_write(void *data, const char *buf, size_t len)
{
    s_fixed_t *self = data;
    if (len > self->cap - self->len)
        return -1; /* the packer stops at the first failed write */
    memcpy(self->buf + self->len, buf, len);
    self->len += len;
    return 0;
}

static int s_get(nerve_register_call_t *call)
{
    if (!call->state || call->state_len == 0)
        return 0; /* nothing stored yet: no value */
    if (!call->zone)
        return NERVE_EINVAL;
    char *copy = msgpack_zone_malloc(call->zone, call->state_len);
    if (!copy)
        return NERVE_ENOMEM;
    memcpy(copy, call->state, call->state_len);
    msgpack_object out;
    if (nerve_wire_unpack(copy, call->state_len, call->zone, &out) != NERVE_WIRE_OK)
        return NERVE_EPARSE; /* not one msgpack value: say nothing */
    call->out = out;
    return 0;
}

static int s_set(nerve_register_call_t *call)
{
    if (!call->value)
        return 0; /* no value to store: keep what is there */
    if (!call->new_state)
        return NERVE_EINVAL;
    s_fixed_t w = {call->new_state, call->new_state_cap, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w, s_fixed_write);
    if (msgpack_pack_object(&pk, *call->value) != 0)
        return NERVE_ERANGE; /* larger than a state may be: keep the old one */
    if (call->zone) {
        int rc = nerve_obj_copy(call->zone, call->value, &call->out);
        if (rc != 0) {
            call->out.type = MSGPACK_OBJECT_NIL;
            return rc;
        }
    } else {
        call->out = *call->value;
    }
    call->new_state_len = w.len;
    return 0;
}

static const nerve_module_fn_t s_functions[] = {
    {"get",
     {.reg = s_get},
     "the value stored for this key (by set or reactions.store.set)",
     NULL,
     NULL},
    {"set", {.reg = s_set}, "stores the value for this key and passes it on", NULL, NULL},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_REGISTERS, "store", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
