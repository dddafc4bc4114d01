/*  registers/state.c — registers.state: has the value changed, is it
    flapping?

        changed    1 when the value differs from the previous one seen for
                   this key, else 0 (the first value seen answers 0)
        flapping   1 when the value changed more than `limit` times (default
                   5) in the last `period` seconds (default 60), else 0

    Typical uses: a service status string that went from "running" to
    anything else (changed + rules.simple.eq), a link that keeps going up
    and down (flapping).

    Values are compared by a canonical msgpack encoding: numbers by value
    (1 and 1.0 are the same value), strings and binaries by bytes, lists
    and maps element by element in order. An encoding of up to 64 bytes is
    kept as is; a longer one as its 64-bit FNV-1a hash, so the state stays
    small whatever the value. A changed key is then "differs by hash":
    two different large values collide with probability 2^-64.

    flapping counts changes in a ring of 60 buckets of period/60 each (a
    ring like registers.aggregate's, which uses 10–60 buckets), so a change
    stops counting between 59/60 and 60/60 of the period after it happened. The count of changes in the
    window is kept in the state (the header's u32) for `nerve registers`.

    States (native byte order, first byte = format version):
        changed   u8 version, u8 function, u8 encoding (0 raw, 1 hash),
                  then the encoding (≤ 64 bytes) or the hash
        flapping  u8 version, u8 function, u8 buckets, u8 encoding,
                  u32 changes in the window, u64 bucket width ns,
                  u64 newest time ns, 60 × u32 changes, then the value
                  as above

    To spare the manager's store a write per event, a call that changes
    nothing (same value, no change leaving the window) leaves the state
    untouched. Bytes that are not a state of this function and period start
    afresh, as if the key were new.
*/
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nerve/conf.h>
#include <nerve/module.h>

#define S_VERSION          1
#define S_RAW_MAX          64
#define S_BUCKETS          60u
#define S_PERIOD_DEFAULT_S 60.0
#define S_PERIOD_MAX_S     (366.0 * 86400.0)
#define S_LIMIT_DEFAULT    5.0
#define S_FNV_OFFSET       14695981039346656037ull
#define S_FNV_PRIME        1099511628211ull

typedef enum { S_CHANGED = 1, S_FLAPPING = 2 } s_fn_t;
enum { S_ENC_RAW = 0, S_ENC_HASH = 1 };

typedef struct s_params {
    uint64_t width_ns; /* flapping: one bucket, period / S_BUCKETS */
    double limit;      /* flapping: answer 1 above this many changes */
} s_params_t;

typedef struct s_header {
    uint8_t version;
    uint8_t fn;
    uint8_t nbuckets;
    uint8_t encoding;
    uint32_t changes; /* in the window: the sum of the buckets */
    uint64_t width_ns;
    uint64_t last_ns;
} s_header_t;

_Static_assert(sizeof(s_header_t) == 24, "the state header is 24 bytes on every ABI");

#define S_CHANGED_HEAD 3
#define S_FLAP_HEAD    (sizeof(s_header_t) + S_BUCKETS * 4)

/* --- the value's identity --- */

/*  What a value is, compared: its canonical encoding when short, else a
    hash of it. Both are computed in one pass by the packer's writer. */
typedef struct s_ident {
    uint8_t encoding;
    uint8_t bytes[S_RAW_MAX];
    size_t len; /* of the whole encoding, may exceed S_RAW_MAX */
    uint64_t hash;
} s_ident_t;

static int s_ident_write(void *data, const char *buf, size_t len)
{
    s_ident_t *self = data;
    for (size_t i = 0; i < len; i++)
        self->hash = (self->hash ^ (uint8_t)buf[i]) * S_FNV_PRIME;
    if (self->len + len <= S_RAW_MAX)
        memcpy(self->bytes + self->len, buf, len);
    self->len += len;
    return 0;
}

/*  Packs numbers by value: an integral float as the integer it equals, so
    a beacon that sends 1 and then 1.0 has not changed anything. */
static void s_pack_canonical(msgpack_packer *pk, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        double d = o->via.f64;
        if (d == trunc(d) && d >= -9.2e18 && d <= 1.8e19) {
            if (d >= 0)
                msgpack_pack_uint64(pk, (uint64_t)d);
            else
                msgpack_pack_int64(pk, (int64_t)d);
        } else {
            msgpack_pack_double(pk, d);
        }
        break;
    }
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        msgpack_pack_uint64(pk, o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        msgpack_pack_int64(pk, o->via.i64);
        break;
    case MSGPACK_OBJECT_ARRAY:
        msgpack_pack_array(pk, o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size; i++)
            s_pack_canonical(pk, &o->via.array.ptr[i]);
        break;
    case MSGPACK_OBJECT_MAP:
        msgpack_pack_map(pk, o->via.map.size);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            s_pack_canonical(pk, &o->via.map.ptr[i].key);
            s_pack_canonical(pk, &o->via.map.ptr[i].val);
        }
        break;
    default:
        msgpack_pack_object(pk, *o);
        break;
    }
}

static void s_ident_of(const msgpack_object *value, s_ident_t *id)
{
    id->len = 0;
    id->hash = S_FNV_OFFSET;
    msgpack_packer pk;
    msgpack_packer_init(&pk, id, s_ident_write);
    s_pack_canonical(&pk, value);
    id->encoding = id->len <= S_RAW_MAX ? S_ENC_RAW : S_ENC_HASH;
}

/*  The bytes an identity is stored as. */
static size_t s_ident_bytes(const s_ident_t *id, uint8_t *out)
{
    if (id->encoding == S_ENC_RAW) {
        memcpy(out, id->bytes, id->len);
        return id->len;
    }
    memcpy(out, &id->hash, sizeof id->hash);
    return sizeof id->hash;
}

/*  True if the stored identity (encoding + n bytes at p) is the same as id. */
static bool s_ident_same(const s_ident_t *id, uint8_t encoding, const uint8_t *p, size_t n)
{
    uint8_t mine[S_RAW_MAX];
    size_t len = s_ident_bytes(id, mine);
    return encoding == id->encoding && n == len && memcmp(p, mine, n) == 0;
}

/*  True if a stored identity of n bytes is well-formed. */
static bool s_ident_valid(uint8_t encoding, size_t n)
{
    return encoding == S_ENC_RAW ? (n >= 1 && n <= S_RAW_MAX)
                                 : (encoding == S_ENC_HASH && n == sizeof(uint64_t));
}

/* --- params --- */

static int s_fail(int rc, char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*  Writes the one-line reason for the loader and returns rc. */
static int s_fail(int rc, char *err, size_t errsize, const char *fmt, ...)
{
    if (err && errsize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsize, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int s_parse(s_fn_t fn, const msgpack_object *params, s_params_t *out, char *err,
                   size_t errsize)
{
    memset(out, 0, sizeof *out);
    if (fn != S_FLAPPING)
        return 0;
    const msgpack_object *o = nerve_obj_get(params, "period");
    double s = S_PERIOD_DEFAULT_S;
    if (o && o->type == MSGPACK_OBJECT_STR) {
        char text[64];
        uint64_t ms;
        if (!nerve_obj_strcpy(o, text, sizeof text) || nerve_duration_parse_ms(text, &ms) != 0)
            return s_fail(NERVE_EINVAL, err, errsize,
                          "flapping: 'period' is not a duration (e.g. 60, \"30s\", \"5m\")");
        s = (double)ms / 1e3;
    } else if (o && !nerve_obj_number(o, &s)) {
        return s_fail(NERVE_EINVAL, err, errsize, "flapping needs 'period' (seconds, a number)");
    }
    if (!(s > 0) || s > S_PERIOD_MAX_S)
        return s_fail(NERVE_ERANGE, err, errsize,
                      "flapping: 'period' must be more than 0 and at most 366 days (got %g s)", s);
    uint64_t period_ns = (uint64_t)(s * 1e9);
    out->width_ns = period_ns / S_BUCKETS ? period_ns / S_BUCKETS : 1;

    const msgpack_object *l = nerve_obj_get(params, "limit");
    out->limit = S_LIMIT_DEFAULT;
    if (l && !nerve_obj_number(l, &out->limit))
        return s_fail(NERVE_EINVAL, err, errsize, "flapping: 'limit' must be a number");
    if (!(out->limit >= 0 && out->limit < 4294967295.0))
        return s_fail(NERVE_ERANGE, err, errsize, "flapping: 'limit' must be 0 or more (got %g)",
                      out->limit);
    return 0;
}

/* --- changed --- */

static int s_changed_run(nerve_register_call_t *call)
{
    const msgpack_object *v = call->value;
    if (!v)
        return 0; /* no value: nothing to compare */
    s_ident_t id;
    s_ident_of(v, &id);
    const uint8_t *old = call->state;
    bool known = old && call->state_len > S_CHANGED_HEAD && old[0] == S_VERSION &&
                 old[1] == S_CHANGED && s_ident_valid(old[2], call->state_len - S_CHANGED_HEAD);
    bool same =
        known && s_ident_same(&id, old[2], old + S_CHANGED_HEAD, call->state_len - S_CHANGED_HEAD);
    call->out = nerve_obj_int_new(known && !same);
    if (same)
        return 0; /* nothing new to write */
    if (!call->new_state || call->new_state_cap < S_CHANGED_HEAD + S_RAW_MAX)
        return NERVE_ERANGE;
    uint8_t *st = call->new_state;
    st[0] = S_VERSION;
    st[1] = S_CHANGED;
    st[2] = id.encoding;
    call->new_state_len = S_CHANGED_HEAD + s_ident_bytes(&id, st + S_CHANGED_HEAD);
    return 0;
}

/* --- flapping --- */

static bool s_flap_valid(const s_params_t *p, const uint8_t *st, size_t len, uint64_t now_ns)
{
    if (!st || len <= S_FLAP_HEAD)
        return false;
    s_header_t h;
    memcpy(&h, st, sizeof h);
    if (h.version != S_VERSION || h.fn != S_FLAPPING || h.nbuckets != S_BUCKETS ||
        h.width_ns != p->width_ns || !s_ident_valid(h.encoding, len - S_FLAP_HEAD))
        return false;
    if (h.last_ns > now_ns && h.last_ns - now_ns > S_BUCKETS * h.width_ns)
        return false; /* from a clock far ahead: would freeze the window */
    uint64_t total = 0;
    for (size_t i = 0; i < S_BUCKETS; i++) {
        uint32_t c;
        memcpy(&c, st + sizeof h + i * 4, 4);
        total += c;
    }
    return total == h.changes;
}

static int s_flapping_run(nerve_register_call_t *call, const s_params_t *p)
{
    const msgpack_object *v = call->value;
    if (!v)
        return 0;
    if (!call->new_state || call->new_state_cap < S_FLAP_HEAD + S_RAW_MAX)
        return NERVE_ERANGE;
    s_ident_t id;
    s_ident_of(v, &id);
    uint8_t *st = call->new_state;
    bool known = s_flap_valid(p, call->state, call->state_len, call->now_ns);
    bool dirty = !known;
    s_header_t h = {S_VERSION, S_FLAPPING, S_BUCKETS, 0, 0, p->width_ns, call->now_ns};
    if (known) {
        memmove(st, call->state, call->state_len);
        memcpy(&h, st, sizeof h);
    } else {
        memset(st, 0, S_FLAP_HEAD);
    }

    /* Move the window to now; changes in buckets that left it stop counting. */
    uint8_t *buckets = st + sizeof h;
    uint64_t t = call->now_ns > h.last_ns ? call->now_ns : h.last_ns;
    uint64_t head = h.last_ns / h.width_ns, next = t / h.width_ns;
    uint64_t n = next - head < S_BUCKETS ? next - head : S_BUCKETS;
    for (uint64_t i = 1; i <= n; i++) {
        uint8_t *b = buckets + ((head + i) % S_BUCKETS) * 4;
        uint32_t c;
        memcpy(&c, b, 4);
        if (c) {
            h.changes -= c;
            memset(b, 0, 4);
            dirty = true;
        }
    }
    h.last_ns = t;

    if (known && !s_ident_same(&id, h.encoding, st + S_FLAP_HEAD, call->state_len - S_FLAP_HEAD)) {
        uint8_t *b = buckets + (next % S_BUCKETS) * 4;
        uint32_t c;
        memcpy(&c, b, 4);
        if (c < UINT32_MAX && h.changes < UINT32_MAX) {
            c++;
            h.changes++;
            memcpy(b, &c, 4);
        }
        dirty = true;
    }
    call->out = nerve_obj_int_new((double)h.changes > p->limit);
    if (!dirty)
        return 0; /* same value, nothing expired: the stored state still holds */
    h.encoding = id.encoding;
    memcpy(st, &h, sizeof h);
    call->new_state_len = S_FLAP_HEAD + s_ident_bytes(&id, st + S_FLAP_HEAD);
    return 0;
}

/* --- the calls --- */

static int s_changed(nerve_register_call_t *call)
{
    return s_changed_run(call);
}

static int s_flapping(nerve_register_call_t *call)
{
    const s_params_t *p = call->prepared;
    s_params_t local;
    if (!p) {
        /* Called without prepare() (a tool, a test): parse on the spot. */
        if (s_parse(S_FLAPPING, call->params, &local, NULL, 0) != 0)
            return NERVE_EINVAL;
        p = &local;
    }
    return s_flapping_run(call, p);
}

static int s_prepare_flapping(const msgpack_object *params, void **prepared, char *err,
                              size_t errsize)
{
    *prepared = NULL;
    s_params_t *p = malloc(sizeof *p);
    if (!p)
        return s_fail(NERVE_ENOMEM, err, errsize, "flapping: out of memory");
    int rc = s_parse(S_FLAPPING, params, p, err, errsize);
    if (rc != 0) {
        free(p);
        return rc;
    }
    *prepared = p;
    return 0;
}

static void s_release(void *prepared)
{
    free(prepared);
}

static const nerve_module_fn_t s_functions[] = {
    {"changed",
     {.reg = s_changed},
     "1 when the value differs from the previous one, else 0",
     NULL,
     NULL},
    {"flapping",
     {.reg = s_flapping},
     "1 when the value changed more than `limit` (5) times in `period` seconds (60), else 0",
     s_prepare_flapping,
     s_release},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_REGISTERS, "state", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
