/*  fuzz_registers.c — libFuzzer target for the built-in register
    functions (registers/aggregate.c, state.c, store.c) and the previous
    state they are handed.

    A register's state is bytes in LMDB: written by the function itself,
    but also by `nerve registers set`, by another version of the module, or
    left behind by a rule whose parameters changed. The modules promise to
    trust none of it: bytes that are not their state are dropped and the
    window starts again. One input is:

        byte 0      which function (every registers.* function, in turn)
        byte 1      which parameters (a table of ordinary and edge values:
                    periods of 0.001 s to a year, alpha and p at and past
                    their bounds, limits of 0 and 1…)
        bytes 2–3   L, the length of the starting state (cut to what the
                    input holds)
        L bytes     the starting state, handed over as it is (none if L
                    is 0)
        then steps of 10 bytes, each one call:
          byte 0    the value's type: double, integer, string, nil, map,
                    or none at all
          bytes 1–8 the value's number (a double's bits, or an integer)
          byte 9    the clock's step: v × 100 ms forward, or with the top
                    bit set (v & 0x7f) s backwards

    The function runs through the real module loader
    (NERVE_MODULE_BUILD_DIR) as the engine calls it: prepare(params),
    which may refuse as a rules file would be refused, then one call per
    step with new_state_cap of NERVE_REGISTER_STATE_MAX, each step handed
    the state the last one left. Checked after every call: the new state
    fits its buffer (or is kept: SIZE_MAX); an aggregate's or state
    function's output is NIL, a number or a boolean (registers.store
    passes on any value); and a finite number on a state the function
    wrote itself is never refused. Any crash, leak or sanitizer report is
    a failure. Seeds are in corpus/registers/.
*/
#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/module.h>
#include <nerve/wire.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_EPOCH 1700000000000000000ull
#define S_STEP  10

static const char *const s_names[] = {
    "registers.aggregate.avg",   "registers.aggregate.sum",
    "registers.aggregate.count", "registers.aggregate.min",
    "registers.aggregate.max",   "registers.aggregate.last",
    "registers.aggregate.rate",  "registers.aggregate.delta",
    "registers.aggregate.ewma",  "registers.aggregate.percentile",
    "registers.state.changed",   "registers.state.flapping",
    "registers.store.get",       "registers.store.set",
};
#define S_NFUNCTIONS (sizeof s_names / sizeof s_names[0])

/*  Parameters as a rules file would give them: up to two {key: number}. */
typedef struct {
    const char *key1;
    double v1;
    const char *key2;
    double v2;
} params_t;

static const params_t s_params[] = {
    {NULL, 0, NULL, 0},          {"period", 10, NULL, 0},
    {"period", 60, NULL, 0},     {"period", 0.001, NULL, 0},
    {"period", 1, NULL, 0},      {"period", 61, NULL, 0},
    {"period", 3600, NULL, 0},   {"period", 366.0 * 86400.0, NULL, 0},
    {"period", 1e300, NULL, 0},  {"period", -1, NULL, 0},
    {"period", 0, NULL, 0},      {"alpha", 0.3, NULL, 0},
    {"alpha", 1, NULL, 0},       {"alpha", 0, NULL, 0},
    {"alpha", 1e-300, NULL, 0},  {"p", 0, "period", 10},
    {"p", 50, "period", 60},     {"p", 100, "period", 3},
    {"p", 99.9, "period", 120},  {"p", 101, NULL, 0},
    {"limit", 0, "period", 60},  {"limit", 1, "period", 10},
    {"limit", 3, "period", 0.5}, {"limit", 1e12, "period", 86400},
};
#define S_NPARAMS (sizeof s_params / sizeof s_params[0])

static nerve_modset_t *s_set;
static nerve_resolved_t s_fns[S_NFUNCTIONS];

static void s_require(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_registers: %s\n", what);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    nerve_log_set_level(NERVE_LOG_ERROR);
    const char *dirs[] = {NERVE_MODULE_BUILD_DIR};
    s_set = nerve_modset_new(dirs, 1);
    s_require(s_set != NULL, "nerve_modset_new");
    for (size_t i = 0; i < S_NFUNCTIONS; i++) {
        char err[1024];
        if (nerve_modset_resolve(s_set, s_names[i], &s_fns[i], err, sizeof err) != 0) {
            fprintf(stderr, "fuzz_registers: %s\n", err);
            abort();
        }
    }
    return 0;
}

static uint64_t s_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/*  The params map of variant `i`, in `zone`. */
static void s_params_obj(size_t i, msgpack_zone *zone, msgpack_object *out)
{
    const params_t *p = &s_params[i % S_NPARAMS];
    uint32_t n = (p->key1 != NULL) + (p->key2 != NULL);
    out->type = MSGPACK_OBJECT_MAP;
    out->via.map.size = n;
    out->via.map.ptr = n ? msgpack_zone_malloc(zone, n * sizeof(msgpack_object_kv)) : NULL;
    s_require(n == 0 || out->via.map.ptr != NULL, "msgpack_zone_malloc");
    const char *keys[2] = {p->key1, p->key2};
    double vals[2] = {p->v1, p->v2};
    for (uint32_t k = 0; k < n; k++) {
        msgpack_object_kv *kv = &out->via.map.ptr[k];
        kv->key.type = MSGPACK_OBJECT_STR;
        kv->key.via.str.ptr = keys[k];
        kv->key.via.str.size = (uint32_t)strlen(keys[k]);
        kv->val.type = MSGPACK_OBJECT_FLOAT64;
        kv->val.via.f64 = vals[k];
    }
}

/*  The value of type `t` with number bits `bits`; false for "no value". */
static bool s_value(uint8_t t, uint64_t bits, msgpack_object *v)
{
    switch (t % 6) {
    case 0:
        v->type = MSGPACK_OBJECT_FLOAT64;
        memcpy(&v->via.f64, &bits, 8);
        return true;
    case 1:
        v->type =
            (int64_t)bits < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER : MSGPACK_OBJECT_POSITIVE_INTEGER;
        v->via.i64 = (int64_t)bits;
        return true;
    case 2:
        v->type = MSGPACK_OBJECT_STR;
        v->via.str.ptr = "down";
        v->via.str.size = 4;
        return true;
    case 3:
        v->type = MSGPACK_OBJECT_NIL;
        return true;
    case 4:
        v->type = MSGPACK_OBJECT_MAP;
        v->via.map.size = 0;
        v->via.map.ptr = NULL;
        return true;
    default:
        return false;
    }
}

/*  What a register hands its rule: aggregates and state functions give a
    number or nothing; registers.store passes on whatever it holds. */
static void s_check_out(const nerve_resolved_t *r, const msgpack_object *out)
{
    if (strcmp(r->module->name, "store") == 0)
        return;
    s_require(out->type == MSGPACK_OBJECT_NIL || out->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                  out->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ||
                  out->type == MSGPACK_OBJECT_FLOAT64 || out->type == MSGPACK_OBJECT_FLOAT32 ||
                  out->type == MSGPACK_OBJECT_BOOLEAN,
              "an aggregate or state output that is not a number");
}

/*  One call, as the engine makes it; returns its rc and leaves the new
    state in `next` (*next_len: its length, or SIZE_MAX for "kept"). */
static int s_call(const nerve_resolved_t *r, const msgpack_object *params, void *prepared,
                  const msgpack_object *value, uint64_t now, const void *state, size_t state_len,
                  uint8_t *next, size_t *next_len)
{
    nerve_event_t ev;
    memset(&ev, 0, sizeof ev);
    strcpy(ev.tag, "/fuzz/registers");
    ev.tag_len = strlen(ev.tag);
    strcpy(ev.host, "web1");
    ev.ts = now;
    msgpack_zone *zone = msgpack_zone_new(1024);
    s_require(zone != NULL, "msgpack_zone_new");
    nerve_register_call_t call = {
        .params = params,
        .prepared = prepared,
        .value = value,
        .event = &ev,
        .now_ns = now,
        .state = state,
        .state_len = state_len,
        .new_state = next,
        .new_state_cap = NERVE_REGISTER_STATE_MAX,
        .new_state_len = SIZE_MAX,
        .zone = zone,
    };
    call.out.type = MSGPACK_OBJECT_NIL;
    int rc = r->fn->fn.reg(&call);
    s_require(call.new_state_len == SIZE_MAX || call.new_state_len <= NERVE_REGISTER_STATE_MAX,
              "a new state longer than its buffer");
    s_check_out(r, &call.out);
    *next_len = call.new_state_len;
    msgpack_zone_free(zone);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    const nerve_resolved_t *r = &s_fns[data[0] % S_NFUNCTIONS];
    size_t state_len = (size_t)data[2] | (size_t)data[3] << 8;
    if (state_len > size - 4)
        state_len = size - 4;
    const uint8_t *steps = data + 4 + state_len;
    size_t nsteps = (size - 4 - state_len) / S_STEP;

    msgpack_zone *zone = msgpack_zone_new(1024);
    s_require(zone != NULL, "msgpack_zone_new");
    msgpack_object params;
    s_params_obj(data[1], zone, &params);
    void *prepared = NULL;
    char err[512] = "";
    if (r->fn->prepare && r->fn->prepare(&params, &prepared, err, sizeof err) != 0) {
        s_require(err[0] != '\0', "prepare refused without a reason");
        msgpack_zone_free(zone);
        return 0;
    }

    /* The state is always a buffer of exactly its bytes, so that ASan
       sees any read past its end. */
    uint8_t *state = state_len ? malloc(state_len) : NULL;
    uint8_t *next = malloc(NERVE_REGISTER_STATE_MAX);
    s_require(next && (state || !state_len), "malloc");
    if (state_len)
        memcpy(state, data + 4, state_len);
    bool own = false; /* the state is one the function wrote */
    uint64_t now = S_EPOCH;
    for (size_t i = 0; i < nsteps; i++) {
        const uint8_t *st = steps + i * S_STEP;
        msgpack_object value;
        bool has_value = s_value(st[0], s_u64(st + 1), &value);
        if (st[9] & 0x80)
            now -= (uint64_t)(st[9] & 0x7f) * 1000000000ull;
        else
            now += (uint64_t)st[9] * 100000000ull;
        size_t next_len;
        int rc = s_call(r, &params, prepared, has_value ? &value : NULL, now, state, state_len,
                        next, &next_len);
        if (own && has_value && value.type == MSGPACK_OBJECT_FLOAT64 && isfinite(value.via.f64))
            s_require(rc == 0, "a finite number refused on the function's own state");
        if (rc != 0 || next_len == SIZE_MAX)
            continue;
        free(state);
        state = NULL;
        state_len = next_len;
        if (next_len) {
            state = malloc(next_len);
            s_require(state != NULL, "malloc");
            memcpy(state, next, next_len);
        }
        own = true;
    }
    if (r->fn->release)
        r->fn->release(prepared);
    free(state);
    free(next);
    msgpack_zone_free(zone);
    return 0;
}
