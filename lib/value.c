/*  value.c — reading, comparing, copying and printing msgpack values.

    Every value nerve handles (event data, rule params, reaction args,
    register outputs) is a msgpack_object. Module code should never walk
    msgpack by hand, so this file holds the few operations everyone needs:
    lookup by key and dotted path, number conversions, deep equality, deep
    copy into a zone, a short human form for logs, JSON out, and a small
    strict JSON parser for the CLI and files.

    All of it runs on untrusted values: recursion is bounded by
    NERVE_OBJ_DEPTH_MAX (NERVE_JSON_DEPTH_MAX for JSON text), every length
    is checked before it is used, and invalid UTF-8 never reaches JSON out.
    The JSON parser needs no library: it is a recursive descent over the
    bytes with a heap scratch stack for the items of the containers being
    parsed, so each array and map is allocated once, at its exact size,
    from the caller's zone.
*/
#include <nerve/value.h>
#include <nerve/error.h>

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*  Maps up to this size compare regardless of key order (quadratic);
    bigger ones must match position by position. */
#define S_UNORDERED_MAX 128

/*  Longest number token the JSON parser converts (a double written out in
    full has at most ~330 characters). */
#define S_NUMBER_MAX 400

/*  msgpack objects of size 0 still get a readable pointer, so callers may
    memcmp or print them without a NULL check. */
static const char s_empty[1] = "";

/* ------------------------------------------------------------------------
   Lookup
   ------------------------------------------------------------------------ */

const msgpack_object *nerve_obj_get(const msgpack_object *map, const char *key)
{
    if (!key)
        return NULL;
    return nerve_obj_getn(map, key, strlen(key));
}

const msgpack_object *nerve_obj_getn(const msgpack_object *map, const char *key, size_t len)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP || (!key && len))
        return NULL;
    const msgpack_object_kv *kv = map->via.map.ptr;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &kv[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == len
            && (len == 0 || memcmp(k->via.str.ptr, key, len) == 0))
            return &kv[i].val;
    }
    return NULL;
}

/*  A path segment that is all digits, as an index. Ten digits cover every
    msgpack array size (at most 2^32 - 1). */
static bool s_parse_index(const char *seg, size_t len, uint64_t *out)
{
    if (len == 0 || len > 10)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (seg[i] < '0' || seg[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(seg[i] - '0');
    }
    *out = v;
    return true;
}

static const msgpack_object *s_step(const msgpack_object *cur, const char *seg, size_t len)
{
    uint64_t index = 0;
    bool is_index = s_parse_index(seg, len, &index);
    if (cur->type == MSGPACK_OBJECT_MAP) {
        const msgpack_object *v = nerve_obj_getn(cur, seg, len);
        if (v || !is_index)
            return v;
        /* Senders in other languages may key maps by integers; a decimal
           segment finds those too. */
        for (uint32_t i = 0; i < cur->via.map.size; i++) {
            const msgpack_object *k = &cur->via.map.ptr[i].key;
            if (k->type == MSGPACK_OBJECT_POSITIVE_INTEGER && k->via.u64 == index)
                return &cur->via.map.ptr[i].val;
        }
        return NULL;
    }
    if (cur->type == MSGPACK_OBJECT_ARRAY && is_index && index < cur->via.array.size)
        return &cur->via.array.ptr[index];
    return NULL;
}

const msgpack_object *nerve_obj_path(const msgpack_object *obj, const char *path)
{
    if (!obj || !path || !*path)
        return obj;
    const msgpack_object *cur = obj;
    const char *seg = path;
    for (;;) {
        const char *dot = strchr(seg, '.');
        size_t len = dot ? (size_t)(dot - seg) : strlen(seg);
        if (len == 0)
            return NULL; /* "a..b", ".a", "a." name nothing */
        cur = s_step(cur, seg, len);
        if (!cur || !dot)
            return cur;
        seg = dot + 1;
    }
}

/* ------------------------------------------------------------------------
   Conversions
   ------------------------------------------------------------------------ */

static bool s_is_number(const msgpack_object *obj)
{
    switch (obj->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return true;
    default:
        return false;
    }
}

bool nerve_obj_number(const msgpack_object *obj, double *out)
{
    if (!obj)
        return false;
    double d;
    switch (obj->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        d = (double)obj->via.u64;
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        d = (double)obj->via.i64;
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        d = obj->via.f64;
        break;
    default:
        return false;
    }
    if (out)
        *out = d;
    return true;
}

bool nerve_obj_bool(const msgpack_object *obj, bool *out)
{
    if (!obj)
        return false;
    bool b;
    double d;
    if (obj->type == MSGPACK_OBJECT_BOOLEAN)
        b = obj->via.boolean;
    else if (nerve_obj_number(obj, &d))
        b = d != 0;
    else
        return false;
    if (out)
        *out = b;
    return true;
}

bool nerve_obj_str(const msgpack_object *obj, const char **ptr, size_t *len)
{
    if (!obj || obj->type != MSGPACK_OBJECT_STR)
        return false;
    if (ptr)
        *ptr = obj->via.str.size ? obj->via.str.ptr : s_empty;
    if (len)
        *len = obj->via.str.size;
    return true;
}

bool nerve_obj_strcpy(const msgpack_object *obj, char *buf, size_t bufsize)
{
    const char *p;
    size_t n;
    if (!buf || !nerve_obj_str(obj, &p, &n) || n >= bufsize)
        return false;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return true;
}

bool nerve_obj_str_eq(const msgpack_object *obj, const char *s)
{
    const char *p;
    size_t n;
    if (!s || !nerve_obj_str(obj, &p, &n))
        return false;
    return strlen(s) == n && memcmp(p, s, n) == 0;
}

double nerve_obj_get_number(const msgpack_object *map, const char *key, double dflt)
{
    double d;
    return nerve_obj_number(nerve_obj_get(map, key), &d) ? d : dflt;
}

/* ------------------------------------------------------------------------
   Equality
   ------------------------------------------------------------------------ */

/*  An integer as sign and magnitude, so every int64 and uint64 compares
    exactly (a NEGATIVE_INTEGER holding a non-negative value is tolerated). */
static void s_int_parts(const msgpack_object *obj, bool *neg, uint64_t *mag)
{
    if (obj->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && obj->via.i64 < 0) {
        *neg = true;
        *mag = (uint64_t)0 - (uint64_t)obj->via.i64;
    } else {
        *neg = false;
        *mag = obj->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? (uint64_t)obj->via.i64
                                                            : obj->via.u64;
    }
}

/*  Converting the integer to double would round (2^53 + 1 == 2^53), so the
    float is converted instead, after checking that it is an integer in
    range. */
static bool s_int_equals_double(bool neg, uint64_t mag, double d)
{
    if (isnan(d))
        return false;
    if (!neg) {
        if (d < 0 || d >= 18446744073709551616.0)
            return false;
        uint64_t u = (uint64_t)d;
        return (double)u == d && u == mag;
    }
    if (d >= 0 || d < -9223372036854775808.0)
        return false;
    int64_t i = (int64_t)d;
    return (double)i == d && (uint64_t)0 - (uint64_t)i == mag;
}

static bool s_number_equal(const msgpack_object *a, const msgpack_object *b)
{
    bool af = a->type == MSGPACK_OBJECT_FLOAT32 || a->type == MSGPACK_OBJECT_FLOAT64;
    bool bf = b->type == MSGPACK_OBJECT_FLOAT32 || b->type == MSGPACK_OBJECT_FLOAT64;
    bool aneg, bneg;
    uint64_t amag, bmag;
    if (af && bf) {
        if (isnan(a->via.f64) && isnan(b->via.f64))
            return true;
        return a->via.f64 == b->via.f64;
    }
    if (af) {
        s_int_parts(b, &bneg, &bmag);
        return s_int_equals_double(bneg, bmag, a->via.f64);
    }
    s_int_parts(a, &aneg, &amag);
    if (bf)
        return s_int_equals_double(aneg, amag, b->via.f64);
    s_int_parts(b, &bneg, &bmag);
    return aneg == bneg && amag == bmag;
}

static bool s_equal(const msgpack_object *a, const msgpack_object *b, int depth);

/*  The first entry of b[from, size) whose key equals key, or -1. */
static int64_t s_find_key(const msgpack_object_map *m, uint32_t from, const msgpack_object *key,
                          int depth)
{
    for (uint32_t j = from; j < m->size; j++)
        if (s_equal(&m->ptr[j].key, key, depth))
            return j;
    return -1;
}

/*  Every key of x from `from` on is in y, with an equal value. */
static bool s_map_covers(const msgpack_object_map *x, const msgpack_object_map *y, uint32_t from,
                         int depth)
{
    for (uint32_t i = from; i < x->size; i++) {
        int64_t j = s_find_key(y, from, &x->ptr[i].key, depth);
        if (j < 0 || !s_equal(&x->ptr[i].val, &y->ptr[j].val, depth))
            return false;
    }
    return true;
}

static bool s_map_equal(const msgpack_object_map *a, const msgpack_object_map *b, int depth)
{
    if (a->size != b->size)
        return false;
    uint32_t i = 0;
    /* Most maps being compared were built the same way: match by position
       first and fall back to lookups only from the first difference. */
    for (; i < a->size; i++) {
        if (!s_equal(&a->ptr[i].key, &b->ptr[i].key, depth))
            break;
        if (!s_equal(&a->ptr[i].val, &b->ptr[i].val, depth))
            return false;
    }
    if (i == a->size)
        return true;
    if (a->size > S_UNORDERED_MAX)
        return false;
    /* Both directions, so a duplicate key on one side cannot stand in for
       a missing key. */
    return s_map_covers(a, b, i, depth) && s_map_covers(b, a, i, depth);
}

static bool s_equal(const msgpack_object *a, const msgpack_object *b, int depth)
{
    if (a == b)
        return true;
    if (!a || !b || depth > NERVE_OBJ_DEPTH_MAX)
        return false;
    bool an = s_is_number(a), bn = s_is_number(b);
    if (an || bn)
        return an && bn && s_number_equal(a, b);
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case MSGPACK_OBJECT_NIL:
        return true;
    case MSGPACK_OBJECT_BOOLEAN:
        return a->via.boolean == b->via.boolean;
    case MSGPACK_OBJECT_STR:
        return a->via.str.size == b->via.str.size
               && (a->via.str.size == 0
                   || memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) == 0);
    case MSGPACK_OBJECT_BIN:
        return a->via.bin.size == b->via.bin.size
               && (a->via.bin.size == 0
                   || memcmp(a->via.bin.ptr, b->via.bin.ptr, a->via.bin.size) == 0);
    case MSGPACK_OBJECT_EXT:
        return a->via.ext.type == b->via.ext.type && a->via.ext.size == b->via.ext.size
               && (a->via.ext.size == 0
                   || memcmp(a->via.ext.ptr, b->via.ext.ptr, a->via.ext.size) == 0);
    case MSGPACK_OBJECT_ARRAY:
        if (a->via.array.size != b->via.array.size)
            return false;
        for (uint32_t i = 0; i < a->via.array.size; i++)
            if (!s_equal(&a->via.array.ptr[i], &b->via.array.ptr[i], depth + 1))
                return false;
        return true;
    case MSGPACK_OBJECT_MAP:
        return s_map_equal(&a->via.map, &b->via.map, depth + 1);
    default:
        return false;
    }
}

bool nerve_obj_equal(const msgpack_object *a, const msgpack_object *b)
{
    return s_equal(a, b, 0);
}

/* ------------------------------------------------------------------------
   Builders and copy
   ------------------------------------------------------------------------ */

msgpack_object nerve_obj_double_new(double d)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_FLOAT64};
    o.via.f64 = d;
    return o;
}

msgpack_object nerve_obj_int_new(int64_t i)
{
    msgpack_object o;
    if (i >= 0) {
        o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o.via.u64 = (uint64_t)i;
    } else {
        o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o.via.i64 = i;
    }
    return o;
}

msgpack_object nerve_obj_bool_new(bool b)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_BOOLEAN};
    o.via.boolean = b;
    return o;
}

msgpack_object nerve_obj_str_new(msgpack_zone *zone, const char *s, size_t len)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_NIL};
    if (!zone || (!s && len) || len > UINT32_MAX)
        return o;
    char *p = (char *)s_empty;
    if (len) {
        p = msgpack_zone_malloc(zone, len);
        if (!p)
            return o;
        memcpy(p, s, len);
    }
    o.type = MSGPACK_OBJECT_STR;
    o.via.str.ptr = p;
    o.via.str.size = (uint32_t)len;
    return o;
}

/*  Copies n bytes into zone; size 0 gives the shared empty string. */
static const char *s_dup_bytes(msgpack_zone *zone, const char *p, uint32_t n)
{
    if (n == 0)
        return s_empty;
    char *q = msgpack_zone_malloc(zone, n);
    if (q)
        memcpy(q, p, n);
    return q;
}

static int s_copy(msgpack_zone *zone, const msgpack_object *src, msgpack_object *dst, int depth,
                  bool strip_secrets)
{
    msgpack_object o = *src; /* src may be dst */
    if (depth > NERVE_OBJ_DEPTH_MAX)
        return NERVE_ERANGE;
    if (strip_secrets && o.type == MSGPACK_OBJECT_EXT && o.via.ext.type == NERVE_EXT_SECRET) {
        dst->type = MSGPACK_OBJECT_NIL;
        return 0;
    }
    switch (o.type) {
    case MSGPACK_OBJECT_STR:
        o.via.str.ptr = s_dup_bytes(zone, o.via.str.ptr, o.via.str.size);
        if (!o.via.str.ptr)
            return NERVE_ENOMEM;
        break;
    case MSGPACK_OBJECT_BIN:
        o.via.bin.ptr = s_dup_bytes(zone, o.via.bin.ptr, o.via.bin.size);
        if (!o.via.bin.ptr)
            return NERVE_ENOMEM;
        break;
    case MSGPACK_OBJECT_EXT:
        o.via.ext.ptr = s_dup_bytes(zone, o.via.ext.ptr, o.via.ext.size);
        if (!o.via.ext.ptr)
            return NERVE_ENOMEM;
        break;
    case MSGPACK_OBJECT_ARRAY: {
        uint32_t n = o.via.array.size;
        msgpack_object *items = NULL;
        if (n) {
            items = msgpack_zone_malloc(zone, (size_t)n * sizeof *items);
            if (!items)
                return NERVE_ENOMEM;
            for (uint32_t i = 0; i < n; i++) {
                int rc = s_copy(zone, &o.via.array.ptr[i], &items[i], depth + 1, strip_secrets);
                if (rc)
                    return rc;
            }
        }
        o.via.array.ptr = items;
        break;
    }
    case MSGPACK_OBJECT_MAP: {
        uint32_t n = o.via.map.size;
        msgpack_object_kv *kv = NULL;
        if (n) {
            kv = msgpack_zone_malloc(zone, (size_t)n * sizeof *kv);
            if (!kv)
                return NERVE_ENOMEM;
            for (uint32_t i = 0; i < n; i++) {
                int rc = s_copy(zone, &o.via.map.ptr[i].key, &kv[i].key, depth + 1,
                                strip_secrets);
                if (!rc)
                    rc = s_copy(zone, &o.via.map.ptr[i].val, &kv[i].val, depth + 1,
                                strip_secrets);
                if (rc)
                    return rc;
            }
        }
        o.via.map.ptr = kv;
        break;
    }
    default:
        break;
    }
    *dst = o;
    return 0;
}

static int s_copy_checked(msgpack_zone *zone, const msgpack_object *src, msgpack_object *dst,
                          bool strip_secrets)
{
    if (!dst)
        return NERVE_EINVAL;
    if (!zone || !src) {
        dst->type = MSGPACK_OBJECT_NIL;
        return NERVE_EINVAL;
    }
    int rc = s_copy(zone, src, dst, 0, strip_secrets);
    if (rc)
        dst->type = MSGPACK_OBJECT_NIL;
    return rc;
}

int nerve_obj_copy(msgpack_zone *zone, const msgpack_object *src, msgpack_object *dst)
{
    return s_copy_checked(zone, src, dst, false);
}

size_t nerve_obj_depth(const msgpack_object *o, size_t limit)
{
    if (o->type != MSGPACK_OBJECT_ARRAY && o->type != MSGPACK_OBJECT_MAP)
        return 0;
    if (limit == 0)
        return 1;
    size_t deepest = 0, d;
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size && deepest < limit; i++)
            if ((d = nerve_obj_depth(&o->via.array.ptr[i], limit - 1)) > deepest)
                deepest = d;
    } else {
        for (uint32_t i = 0; i < o->via.map.size && deepest < limit; i++) {
            if ((d = nerve_obj_depth(&o->via.map.ptr[i].key, limit - 1)) > deepest)
                deepest = d;
            if ((d = nerve_obj_depth(&o->via.map.ptr[i].val, limit - 1)) > deepest)
                deepest = d;
        }
    }
    return 1 + deepest;
}

int nerve_obj_copy_data(msgpack_zone *zone, const msgpack_object *src, msgpack_object *dst)
{
    return s_copy_checked(zone, src, dst, true);
}

/* ------------------------------------------------------------------------
   Printing: one writer for JSON (growable or fixed buffer) and the human
   form. The human form differs only in spelling NaN and infinities, in
   floats without the ".0" JSON needs to stay floats, and in stopping as
   soon as the buffer is full.
   ------------------------------------------------------------------------ */

typedef struct s_out {
    msgpack_sbuffer *sbuf; /* growable target, or NULL for buf/cap */
    char *buf;             /* fixed target with room for cap bytes */
    size_t cap;
    size_t len;            /* bytes produced so far; past cap means truncated */
    bool human;            /* nerve_obj_format */
    int rc;                /* first error: NERVE_ENOMEM or NERVE_ERANGE */
} s_out_t;

static void s_put(s_out_t *o, const char *p, size_t n)
{
    if (n == 0)
        return;
    if (o->sbuf) {
        if (!o->rc && msgpack_sbuffer_write(o->sbuf, p, n) != 0)
            o->rc = NERVE_ENOMEM;
    } else if (o->len < o->cap) {
        size_t room = o->cap - o->len;
        memcpy(o->buf + o->len, p, n < room ? n : room);
    }
    o->len += n;
}

static void s_puts(s_out_t *o, const char *s)
{
    s_put(o, s, strlen(s));
}

/*  The human form only needs what fits; JSON into a fixed buffer must
    still count the whole length. */
static bool s_done(const s_out_t *o)
{
    return o->human && o->len > o->cap;
}

/*  Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t s_utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* beyond U+10FFFF */
    } else
        return 0;
    if (n < need || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return need;
}

static void s_put_json_str(s_out_t *o, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0; /* start of bytes that need no escaping */
    size_t i = 0;
    s_put(o, "\"", 1);
    while (i < n && !s_done(o)) {
        unsigned c = p[i];
        const char *esc = NULL;
        char ubuf[8];
        size_t step = 1;
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c < 0x20) {
            switch (c) {
            case '\b': esc = "\\b"; break;
            case '\f': esc = "\\f"; break;
            case '\n': esc = "\\n"; break;
            case '\r': esc = "\\r"; break;
            case '\t': esc = "\\t"; break;
            default:
                snprintf(ubuf, sizeof ubuf, "\\u%04x", c);
                esc = ubuf;
            }
        } else if (c >= 0x80) {
            step = s_utf8_len(p + i, n - i);
            if (step == 0) {
                esc = "\\ufffd"; /* JSON must be UTF-8: a bad byte is replaced */
                step = 1;
            }
        }
        if (esc) {
            s_put(o, s + run, i - run);
            s_puts(o, esc);
            run = i + step;
        }
        i += step;
    }
    if (i > run)
        s_put(o, s + run, i - run);
    s_put(o, "\"", 1);
}

static void s_put_hex(s_out_t *o, const char *s, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char chunk[64];
    size_t k = 0;
    for (size_t i = 0; i < n && !s_done(o); i++) {
        unsigned char c = (unsigned char)s[i];
        chunk[k++] = digits[c >> 4];
        chunk[k++] = digits[c & 15];
        if (k == sizeof chunk) {
            s_put(o, chunk, k);
            k = 0;
        }
    }
    s_put(o, chunk, k);
}

/*  The shortest "%.Ng" that reads back as the same value: short forms for
    short numbers (0.1, not 0.10000000000000001), and exact round trips.
    A FLOAT32 is printed at float precision. out holds at least 32 bytes. */
static size_t s_fmt_double(double d, bool single, char *out)
{
    if (isnan(d))
        return (size_t)snprintf(out, 32, "nan");
    if (isinf(d))
        return (size_t)snprintf(out, 32, d < 0 ? "-inf" : "inf");
    int n = 0;
    int lo = single ? 6 : 15, hi = single ? 9 : 17;
    for (int prec = lo; prec <= hi; prec++) {
        n = snprintf(out, 32, "%.*g", prec, d);
        if (single ? strtof(out, NULL) == (float)d : strtod(out, NULL) == d)
            break;
    }
    return (size_t)n;
}

static void s_write(s_out_t *o, const msgpack_object *obj, int depth);

/*  JSON object keys must be strings: a non-str key is written as the
    string of its own JSON text (a bin key as its hex). */
static void s_write_key(s_out_t *o, const msgpack_object *key, int depth)
{
    if (key->type == MSGPACK_OBJECT_STR) {
        s_put_json_str(o, key->via.str.ptr, key->via.str.size);
        return;
    }
    if (key->type == MSGPACK_OBJECT_BIN) {
        s_put(o, "\"", 1);
        s_put_hex(o, key->via.bin.ptr, key->via.bin.size);
        s_put(o, "\"", 1);
        return;
    }
    char text[256];
    s_out_t sub = {.buf = text, .cap = sizeof text, .human = o->human};
    s_write(&sub, key, depth);
    if (sub.rc && !o->rc)
        o->rc = sub.rc;
    s_put_json_str(o, text, sub.len < sub.cap ? sub.len : sub.cap);
}

static void s_write(s_out_t *o, const msgpack_object *obj, int depth)
{
    char num[40];
    if (s_done(o))
        return;
    if (depth > NERVE_OBJ_DEPTH_MAX) {
        if (!o->rc)
            o->rc = NERVE_ERANGE;
        s_puts(o, o->human ? "\xe2\x80\xa6" : "null");
        return;
    }
    switch (obj->type) {
    case MSGPACK_OBJECT_NIL:
        s_puts(o, "null");
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        s_puts(o, obj->via.boolean ? "true" : "false");
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        s_put(o, num, (size_t)snprintf(num, sizeof num, "%" PRIu64, obj->via.u64));
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        s_put(o, num, (size_t)snprintf(num, sizeof num, "%" PRId64, obj->via.i64));
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        double d = obj->via.f64;
        size_t n = s_fmt_double(d, obj->type == MSGPACK_OBJECT_FLOAT32, num);
        if (o->human) {
            s_put(o, num, n);
        } else if (isnan(d) || isinf(d)) {
            s_puts(o, "null"); /* JSON has no NaN or infinity */
        } else {
            s_put(o, num, n);
            if (!strpbrk(num, ".e"))
                s_put(o, ".0", 2); /* stays a float when read back */
        }
        break;
    }
    case MSGPACK_OBJECT_STR:
        s_put_json_str(o, obj->via.str.ptr, obj->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        s_put(o, "\"", 1);
        s_put_hex(o, obj->via.bin.ptr, obj->via.bin.size);
        s_put(o, "\"", 1);
        break;
    case MSGPACK_OBJECT_EXT:
        s_put(o, num, (size_t)snprintf(num, sizeof num, "{\"ext\":%d,\"data\":\"",
                                       (int)obj->via.ext.type));
        s_put_hex(o, obj->via.ext.ptr, obj->via.ext.size);
        s_put(o, "\"}", 2);
        break;
    case MSGPACK_OBJECT_ARRAY:
        s_put(o, "[", 1);
        for (uint32_t i = 0; i < obj->via.array.size && !s_done(o); i++) {
            if (i)
                s_put(o, ",", 1);
            s_write(o, &obj->via.array.ptr[i], depth + 1);
        }
        s_put(o, "]", 1);
        break;
    case MSGPACK_OBJECT_MAP:
        s_put(o, "{", 1);
        for (uint32_t i = 0; i < obj->via.map.size && !s_done(o); i++) {
            if (i)
                s_put(o, ",", 1);
            s_write_key(o, &obj->via.map.ptr[i].key, depth + 1);
            s_put(o, ":", 1);
            s_write(o, &obj->via.map.ptr[i].val, depth + 1);
        }
        s_put(o, "}", 1);
        break;
    default:
        s_puts(o, "null");
        break;
    }
}

char *nerve_obj_format(const msgpack_object *obj, char *buf, size_t bufsize)
{
    static const char ellipsis[] = "\xe2\x80\xa6";
    if (!buf || bufsize == 0)
        return buf;
    s_out_t o = {.buf = buf, .cap = bufsize - 1, .human = true};
    if (obj)
        s_write(&o, obj, 0);
    else
        s_puts(&o, "null");
    if (o.len <= o.cap) {
        buf[o.len] = '\0';
        return buf;
    }
    if (bufsize < sizeof ellipsis) {
        buf[0] = '\0'; /* no room even for the mark */
        return buf;
    }
    /* Cut on a character boundary: the output is valid UTF-8 (bad bytes
       were escaped), so back up over continuation bytes. */
    size_t cut = bufsize - sizeof ellipsis;
    while (cut > 0 && ((unsigned char)buf[cut] & 0xC0) == 0x80)
        cut--;
    memcpy(buf + cut, ellipsis, sizeof ellipsis);
    return buf;
}

int nerve_obj_to_json(const msgpack_object *obj, msgpack_sbuffer *out)
{
    if (!out)
        return NERVE_EINVAL;
    size_t start = out->size;
    s_out_t o = {.sbuf = out};
    if (obj)
        s_write(&o, obj, 0);
    else
        s_puts(&o, "null");
    if (o.rc)
        out->size = start; /* all or nothing */
    return o.rc;
}

size_t nerve_obj_to_json_buf(const msgpack_object *obj, char *buf, size_t bufsize)
{
    if (!buf)
        bufsize = 0;
    s_out_t o = {.buf = buf, .cap = bufsize ? bufsize - 1 : 0};
    if (obj)
        s_write(&o, obj, 0);
    else
        s_puts(&o, "null");
    if (bufsize)
        buf[o.len < o.cap ? o.len : o.cap] = '\0';
    return o.len;
}

/* ------------------------------------------------------------------------
   JSON in
   ------------------------------------------------------------------------ */

typedef struct s_parser {
    const unsigned char *text;
    size_t len;
    size_t pos;
    msgpack_zone *zone;
    msgpack_object *stack; /* items of the containers being parsed (heap) */
    size_t top;
    size_t cap;
    char *err;
    size_t errsize;
} s_parser_t;

static int s_fail(s_parser_t *self, int rc, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int s_fail(s_parser_t *self, int rc, size_t offset, const char *fmt, ...)
{
    if (self->err && self->errsize) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(self->err, self->errsize, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < self->errsize)
            snprintf(self->err + n, self->errsize - (size_t)n, " at offset %zu", offset);
    }
    return rc;
}

/*  "unexpected 'x', expected …" or "unexpected end of input, expected …",
    at the current position. */
static int s_unexpected(s_parser_t *self, const char *expected)
{
    if (self->pos >= self->len)
        return s_fail(self, NERVE_EPARSE, self->pos, "unexpected end of input, expected %s",
                      expected);
    unsigned c = self->text[self->pos];
    if (c > 0x20 && c < 0x7f)
        return s_fail(self, NERVE_EPARSE, self->pos, "unexpected '%c', expected %s", (char)c,
                      expected);
    return s_fail(self, NERVE_EPARSE, self->pos, "unexpected byte 0x%02x, expected %s", c,
                  expected);
}

static int s_oom(s_parser_t *self)
{
    return s_fail(self, NERVE_ENOMEM, self->pos, "out of memory");
}

static void s_skip_ws(s_parser_t *self)
{
    while (self->pos < self->len) {
        unsigned char c = self->text[self->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        self->pos++;
    }
}

static int s_peek(const s_parser_t *self)
{
    return self->pos < self->len ? self->text[self->pos] : -1;
}

static int s_push(s_parser_t *self, const msgpack_object *item)
{
    if (self->top == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 32;
        msgpack_object *stack = realloc(self->stack, cap * sizeof *stack);
        if (!stack)
            return s_oom(self);
        self->stack = stack;
        self->cap = cap;
    }
    self->stack[self->top++] = *item;
    return 0;
}

static int s_parse_value(s_parser_t *self, msgpack_object *out, int depth);

static int s_parse_array(s_parser_t *self, msgpack_object *out, int depth)
{
    if (depth > NERVE_JSON_DEPTH_MAX)
        return s_fail(self, NERVE_EPARSE, self->pos, "nesting deeper than %d",
                      NERVE_JSON_DEPTH_MAX);
    size_t base = self->top;
    self->pos++; /* '[' */
    s_skip_ws(self);
    if (s_peek(self) == ']')
        self->pos++;
    else
        for (;;) {
            msgpack_object item;
            int rc = s_parse_value(self, &item, depth);
            if (!rc)
                rc = s_push(self, &item);
            if (rc)
                return rc;
            s_skip_ws(self);
            int c = s_peek(self);
            self->pos++;
            if (c == ']')
                break;
            if (c != ',') {
                self->pos--;
                return s_unexpected(self, "',' or ']'");
            }
        }
    size_t n = self->top - base;
    if (n > UINT32_MAX)
        return s_fail(self, NERVE_EPARSE, self->pos, "array too long");
    out->type = MSGPACK_OBJECT_ARRAY;
    out->via.array.size = (uint32_t)n;
    out->via.array.ptr = NULL;
    if (n) {
        out->via.array.ptr = msgpack_zone_malloc(self->zone, n * sizeof(msgpack_object));
        if (!out->via.array.ptr)
            return s_oom(self);
        memcpy(out->via.array.ptr, self->stack + base, n * sizeof(msgpack_object));
    }
    self->top = base;
    return 0;
}

static int s_parse_string(s_parser_t *self, msgpack_object *out);

static int s_parse_map(s_parser_t *self, msgpack_object *out, int depth)
{
    if (depth > NERVE_JSON_DEPTH_MAX)
        return s_fail(self, NERVE_EPARSE, self->pos, "nesting deeper than %d",
                      NERVE_JSON_DEPTH_MAX);
    size_t base = self->top;
    self->pos++; /* '{' */
    s_skip_ws(self);
    if (s_peek(self) == '}')
        self->pos++;
    else
        for (;;) {
            msgpack_object key, val;
            s_skip_ws(self);
            if (s_peek(self) != '"')
                return s_unexpected(self, "a string key");
            int rc = s_parse_string(self, &key);
            if (rc)
                return rc;
            s_skip_ws(self);
            if (s_peek(self) != ':')
                return s_unexpected(self, "':'");
            self->pos++;
            rc = s_parse_value(self, &val, depth);
            if (!rc)
                rc = s_push(self, &key);
            if (!rc)
                rc = s_push(self, &val);
            if (rc)
                return rc;
            s_skip_ws(self);
            int c = s_peek(self);
            self->pos++;
            if (c == '}')
                break;
            if (c != ',') {
                self->pos--;
                return s_unexpected(self, "',' or '}'");
            }
        }
    size_t n = (self->top - base) / 2;
    if (n > UINT32_MAX)
        return s_fail(self, NERVE_EPARSE, self->pos, "object too long");
    out->type = MSGPACK_OBJECT_MAP;
    out->via.map.size = (uint32_t)n;
    out->via.map.ptr = NULL;
    if (n) {
        msgpack_object_kv *kv = msgpack_zone_malloc(self->zone, n * sizeof *kv);
        if (!kv)
            return s_oom(self);
        for (size_t i = 0; i < n; i++) {
            kv[i].key = self->stack[base + 2 * i];
            kv[i].val = self->stack[base + 2 * i + 1];
        }
        out->via.map.ptr = kv;
    }
    self->top = base;
    return 0;
}

/*  Four hex digits at p, or -1. */
static long s_hex4(const unsigned char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

static size_t s_utf8_put(char *dst, unsigned long cp)
{
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xC0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/*  Decodes the \u escape at t[i] (the backslash), pairing surrogates.
    Returns the bytes consumed, or 0 after reporting the error. */
static size_t s_parse_u_escape(s_parser_t *self, size_t i, size_t end, char *dst, size_t *n)
{
    const unsigned char *t = self->text;
    long cp = i + 6 <= end ? s_hex4(t + i + 2) : -1;
    if (cp < 0) {
        s_fail(self, NERVE_EPARSE, i, "invalid \\u escape");
        return 0;
    }
    size_t used = 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        long lo = -1;
        if (i + 12 <= end && t[i + 6] == '\\' && t[i + 7] == 'u')
            lo = s_hex4(t + i + 8);
        if (lo < 0xDC00 || lo > 0xDFFF) {
            s_fail(self, NERVE_EPARSE, i, "unpaired UTF-16 surrogate \\u%04lx", cp);
            return 0;
        }
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        used = 12;
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        s_fail(self, NERVE_EPARSE, i, "unpaired UTF-16 surrogate \\u%04lx", cp);
        return 0;
    }
    *n += s_utf8_put(dst + *n, (unsigned long)cp);
    return used;
}

static int s_parse_string(s_parser_t *self, msgpack_object *out)
{
    const unsigned char *t = self->text;
    size_t start = self->pos; /* the opening quote */
    /* Find the closing quote first: the decoded string is never longer
       than its source, so one allocation of that size is enough. */
    size_t end = start + 1;
    while (end < self->len && t[end] != '"') {
        if (t[end] == '\\')
            end++;
        end++;
    }
    if (end >= self->len)
        return s_fail(self, NERVE_EPARSE, start, "unterminated string");
    size_t raw = end - start - 1;
    if (raw > UINT32_MAX)
        return s_fail(self, NERVE_EPARSE, start, "string too long");
    char *dst = (char *)s_empty;
    if (raw) {
        dst = msgpack_zone_malloc(self->zone, raw);
        if (!dst)
            return s_oom(self);
    }
    size_t n = 0;
    size_t i = start + 1;
    while (i < end) {
        unsigned c = t[i];
        if (c == '\\') {
            /* i + 1 < end: the scan above skipped the byte after every
               backslash, so none is right before the closing quote. */
            static const char escapes[] = "\"\\/bfnrt";
            static const char decoded[] = "\"\\/\b\f\n\r\t";
            char e = (char)t[i + 1];
            const char *simple = e ? strchr(escapes, e) : NULL;
            if (simple) {
                dst[n++] = decoded[simple - escapes];
                i += 2;
            } else if (e == 'u') {
                size_t used = s_parse_u_escape(self, i, end, dst, &n);
                if (!used)
                    return NERVE_EPARSE;
                i += used;
            } else {
                self->pos = i + 1;
                return s_fail(self, NERVE_EPARSE, i, "invalid escape");
            }
        } else if (c < 0x20) {
            return s_fail(self, NERVE_EPARSE, i, "control character 0x%02x in string", c);
        } else if (c < 0x80) {
            dst[n++] = (char)c;
            i++;
        } else {
            size_t k = s_utf8_len(t + i, end - i);
            if (!k)
                return s_fail(self, NERVE_EPARSE, i, "invalid UTF-8 in string");
            memcpy(dst + n, t + i, k);
            n += k;
            i += k;
        }
    }
    self->pos = end + 1;
    out->type = MSGPACK_OBJECT_STR;
    out->via.str.ptr = n ? dst : s_empty;
    out->via.str.size = (uint32_t)n;
    return 0;
}

static bool s_digit_at(const s_parser_t *self, size_t i)
{
    return i < self->len && self->text[i] >= '0' && self->text[i] <= '9';
}

static int s_parse_number(s_parser_t *self, msgpack_object *out)
{
    const unsigned char *t = self->text;
    size_t start = self->pos, i = start;
    bool neg = false, integral = true;
    if (t[i] == '-') {
        neg = true;
        i++;
    }
    if (!s_digit_at(self, i)) {
        self->pos = i;
        return s_unexpected(self, "a digit");
    }
    if (t[i] == '0') {
        i++;
        if (s_digit_at(self, i))
            return s_fail(self, NERVE_EPARSE, i - 1, "leading zero in number");
    } else
        while (s_digit_at(self, i))
            i++;
    if (i < self->len && t[i] == '.') {
        integral = false;
        i++;
        if (!s_digit_at(self, i)) {
            self->pos = i;
            return s_unexpected(self, "a digit after '.'");
        }
        while (s_digit_at(self, i))
            i++;
    }
    if (i < self->len && (t[i] == 'e' || t[i] == 'E')) {
        integral = false;
        i++;
        if (i < self->len && (t[i] == '+' || t[i] == '-'))
            i++;
        if (!s_digit_at(self, i)) {
            self->pos = i;
            return s_unexpected(self, "a digit in the exponent");
        }
        while (s_digit_at(self, i))
            i++;
    }
    self->pos = i;
    if (integral) {
        uint64_t mag = 0;
        bool fits = true;
        for (size_t j = start + (neg ? 1 : 0); j < i && fits; j++) {
            unsigned d = t[j] - '0';
            if (mag > (UINT64_MAX - d) / 10)
                fits = false;
            else
                mag = mag * 10 + d;
        }
        if (fits && (!neg || mag == 0)) {
            out->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            out->via.u64 = mag;
            return 0;
        }
        if (fits && mag <= (uint64_t)INT64_MAX + 1) {
            out->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
            out->via.i64 = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
            return 0;
        }
        /* Beyond 64 bits: a float, as most JSON readers do. */
    }
    char tmp[S_NUMBER_MAX + 1];
    size_t n = i - start;
    if (n > S_NUMBER_MAX)
        return s_fail(self, NERVE_EPARSE, start, "number too long");
    memcpy(tmp, t + start, n);
    tmp[n] = '\0';
    double d = strtod(tmp, NULL);
    if (isinf(d))
        return s_fail(self, NERVE_EPARSE, start, "number out of range");
    out->type = MSGPACK_OBJECT_FLOAT64;
    out->via.f64 = d;
    return 0;
}

static int s_parse_literal(s_parser_t *self, const char *word, msgpack_object *out,
                           msgpack_object value)
{
    size_t n = strlen(word);
    if (self->len - self->pos < n || memcmp(self->text + self->pos, word, n) != 0)
        return s_unexpected(self, "a value");
    self->pos += n;
    *out = value;
    return 0;
}

static int s_parse_value(s_parser_t *self, msgpack_object *out, int depth)
{
    static const msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    s_skip_ws(self);
    switch (s_peek(self)) {
    case '{':
        return s_parse_map(self, out, depth + 1);
    case '[':
        return s_parse_array(self, out, depth + 1);
    case '"':
        return s_parse_string(self, out);
    case 't':
        return s_parse_literal(self, "true", out, nerve_obj_bool_new(true));
    case 'f':
        return s_parse_literal(self, "false", out, nerve_obj_bool_new(false));
    case 'n':
        return s_parse_literal(self, "null", out, nil);
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return s_parse_number(self, out);
    default:
        return s_unexpected(self, "a value");
    }
}

int nerve_obj_from_json(msgpack_zone *zone, const char *text, size_t len, msgpack_object *out,
                        char *err, size_t errsize)
{
    s_parser_t p = {.text = (const unsigned char *)text, .len = len, .zone = zone,
                    .err = err, .errsize = errsize};
    if (err && errsize)
        err[0] = '\0';
    if (!out)
        return s_fail(&p, NERVE_EINVAL, 0, "no output value");
    out->type = MSGPACK_OBJECT_NIL;
    if (!zone || (!text && len))
        return s_fail(&p, NERVE_EINVAL, 0, "no zone or text");
    msgpack_object v;
    int rc = s_parse_value(&p, &v, 0);
    if (!rc) {
        s_skip_ws(&p);
        if (p.pos < p.len)
            rc = s_unexpected(&p, "end of input");
    }
    free(p.stack);
    if (!rc)
        *out = v;
    return rc;
}
