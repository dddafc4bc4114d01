/*  good.c — a well-formed rules module for the loader tests.

    Two functions, "gt" with prepare/release (it needs a numeric
    `threshold`) and "never". init() and fini() count their calls in the
    environment (NERVE_TESTMOD_GOOD_INIT / _FINI), where a test can still
    read them after the module has been unloaded.
*/
#include <nerve/module.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gt {
    double threshold;
} gt_t;

static void s_bump(const char *var)
{
    const char *now = getenv(var);
    char next[32];
    snprintf(next, sizeof next, "%d", (now ? atoi(now) : 0) + 1);
    setenv(var, next, 1);
}

static int s_init(void)
{
    s_bump("NERVE_TESTMOD_GOOD_INIT");
    return 0;
}

static void s_fini(void)
{
    s_bump("NERVE_TESTMOD_GOOD_FINI");
}

/*  Standalone on purpose: a test module depends on nothing in libnerve
    but the ABI header. */
static bool s_number(const msgpack_object *o, double *out)
{
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *out = (double)o->via.u64;
        return true;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *out = (double)o->via.i64;
        return true;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        *out = o->via.f64;
        return true;
    default:
        return false;
    }
}

static int s_gt_prepare(const msgpack_object *params, void **prepared, char *err, size_t errsize)
{
    const msgpack_object *t = NULL;
    if (params && params->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < params->via.map.size; i++) {
            const msgpack_object_kv *kv = &params->via.map.ptr[i];
            if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 9 &&
                memcmp(kv->key.via.str.ptr, "threshold", 9) == 0)
                t = &kv->val;
        }
    }
    gt_t *gt = malloc(sizeof *gt);
    if (!gt)
        return NERVE_ENOMEM;
    if (!t || !s_number(t, &gt->threshold)) {
        snprintf(err, errsize, "threshold: a number is required");
        free(gt);
        return NERVE_EINVAL;
    }
    *prepared = gt;
    return NERVE_OK;
}

static void s_gt_release(void *prepared)
{
    free(prepared);
}

static int s_gt(const nerve_rule_call_t *call, bool *result)
{
    const gt_t *gt = call->prepared;
    double v;
    if (!gt)
        return NERVE_ESTATE;
    *result = false;
    if (!call->value)
        return NERVE_OK;
    if (!s_number(call->value, &v))
        return NERVE_ETYPE;
    *result = v > gt->threshold;
    return NERVE_OK;
}

static int s_never(const nerve_rule_call_t *call, bool *result)
{
    *result = false;
    return NERVE_OK;
}

static const nerve_module_fn_t s_functions[] = {
    {"gt", {.rule = s_gt}, "value > threshold", s_gt_prepare, s_gt_release},
    {"never", {.rule = s_never}, "always false", NULL, NULL},
    {NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_RULES, "good", "1.0.0", s_functions, s_init, s_fini,
};

NERVE_MODULE_EXPORT(s_module)
