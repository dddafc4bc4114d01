/*  template.c — `{{…}}` references in reaction args: compiled once when
    rules load, rendered per firing without parsing.

    Compiling walks the args tree. A subtree with no reference anywhere in
    it becomes one literal (a deep copy); a str with references becomes a
    list of parts, literal text and references, with each reference's kind
    decided and its path copied. Maps and arrays that hold references keep
    their shape as nodes. Everything compiled lives in the template's own
    zone, so destroying it is one free.

    Rendering walks the nodes and resolves references against the context.
    It allocates only from the caller's zone: a lone reference copies the
    referenced value (keeping its msgpack type); text is measured first and
    written second, into one exact allocation. Substituted values are data:
    the output is never scanned again, so event data that contains
    "{{event.host}}" renders those characters as they are.
*/
#include <nerve/template.h>
#include <nerve/error.h>
#include <nerve/value.h>

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*  Chunks of the template's zone: most templates are a few short strings. */
#define S_ZONE_CHUNK 1024

/*  How much of an offending string or reference an error message quotes. */
#define S_QUOTE_MAX 60

typedef enum s_ref {
    S_REF_HOST,
    S_REF_TAG,
    S_REF_ID,
    S_REF_DATA,  /* event.data[.path] */
    S_REF_VALUE, /* value[.path] */
    S_REF_RULE,
    S_REF_SECRET, /* secret.NAME: a lone value, rendered as NERVE_EXT_SECRET */
} s_ref_t;

typedef struct s_part {
    bool is_ref;
    s_ref_t ref;
    const char *text; /* literal text, or the NUL-terminated path ("" for none) */
    size_t len;
} s_part_t;

typedef enum s_kind {
    S_NODE_LITERAL, /* no references below: render is a copy */
    S_NODE_STR,     /* a str with references */
    S_NODE_ARRAY,
    S_NODE_MAP,
} s_kind_t;

typedef struct s_node s_node_t;
struct s_node {
    s_kind_t kind;
    msgpack_object literal;      /* LITERAL */
    const s_part_t *parts;       /* STR */
    size_t nparts;
    s_node_t *items;             /* ARRAY, MAP: values */
    const msgpack_object *keys;  /* MAP: keys, copied as they are */
    uint32_t count;
};

struct nerve_tmpl {
    msgpack_zone *zone; /* every node, part and literal */
    s_node_t root;
    bool has_refs;
};

typedef struct s_compiler {
    msgpack_zone *zone;
    char *err;
    size_t errsize;
    bool has_refs;
} s_compiler_t;

/*  The references a template may use. Those with a path take ".a.b". */
static const struct {
    const char *name;
    s_ref_t ref;
    bool path;
} s_refs[] = {
    {"event.host", S_REF_HOST, false}, {"event.tag", S_REF_TAG, false},
    {"event.id", S_REF_ID, false},     {"event.data", S_REF_DATA, true},
    {"value", S_REF_VALUE, true},      {"rule", S_REF_RULE, false},
};

/* ------------------------------------------------------------------------
   Compile
   ------------------------------------------------------------------------ */

static int s_error(s_compiler_t *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_error(s_compiler_t *c, int rc, const char *fmt, ...)
{
    if (c->err && c->errsize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errsize, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/*  A printable excerpt of s for messages: control bytes become '?', long
    text ends in "…". */
static const char *s_quote(char *out, size_t outsize, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && i < S_QUOTE_MAX && k + 1 < outsize; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[k++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    out[k] = '\0';
    if (n > S_QUOTE_MAX && k + 4 <= outsize)
        memcpy(out + k, "\xe2\x80\xa6", 4);
    return out;
}

/*  " (at 'env.0')" for values below the root, "" at the root. */
static const char *s_at(char *out, size_t outsize, const char *where)
{
    if (!*where)
        return "";
    snprintf(out, outsize, " (at '%s')", where);
    return out;
}

/*  A path after "event.data." or "value.": dot-separated, no empty
    segment, no space or brace (those are almost certainly typos). */
static bool s_path_ok(const char *p, size_t n)
{
    if (n == 0 || p[0] == '.' || p[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch <= 0x20 || ch == 0x7f || ch == '{' || ch == '}')
            return false;
        if (ch == '.' && i + 1 < n && p[i + 1] == '.')
            return false;
    }
    return true;
}

/*  Fills part from the text between the braces (spaces trimmed). False if
    it names nothing we know; 0 or NERVE_ENOMEM through *rc. */
/*  A secret's name: letters, digits, '_', '-' and '.', 1–128 bytes. */
static bool s_secret_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

static bool s_parse_ref(s_compiler_t *c, const char *s, size_t n, s_part_t *part, int *rc)
{
    *rc = 0;
    if (n > 7 && memcmp(s, "secret.", 7) == 0 && s_secret_name_ok(s + 7, n - 7)) {
        char *name = msgpack_zone_malloc(c->zone, n - 7 + 1);
        if (!name) {
            *rc = NERVE_ENOMEM;
            return true;
        }
        memcpy(name, s + 7, n - 7);
        name[n - 7] = '\0';
        part->is_ref = true;
        part->ref = S_REF_SECRET;
        part->text = name;
        part->len = n - 7;
        return true;
    }
    for (size_t r = 0; r < sizeof s_refs / sizeof s_refs[0]; r++) {
        size_t k = strlen(s_refs[r].name);
        if (n < k || memcmp(s, s_refs[r].name, k) != 0)
            continue;
        const char *path = "";
        size_t plen = 0;
        if (n > k) {
            if (!s_refs[r].path || s[k] != '.' || !s_path_ok(s + k + 1, n - k - 1))
                continue;
            plen = n - k - 1;
            char *copy = msgpack_zone_malloc(c->zone, plen + 1);
            if (!copy) {
                *rc = NERVE_ENOMEM;
                return true;
            }
            memcpy(copy, s + k + 1, plen);
            copy[plen] = '\0';
            path = copy;
        }
        part->is_ref = true;
        part->ref = s_refs[r].ref;
        part->text = path;
        part->len = plen;
        return true;
    }
    return false;
}

static bool s_is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

/*  Where the next "{{" or "}}" (open = '{' or '}') starts at or after
    from, or n. */
static size_t s_find2(const char *s, size_t n, size_t from, char open)
{
    for (size_t i = from; i + 1 < n; i++)
        if (s[i] == open && s[i + 1] == open)
            return i;
    return n;
}

static int s_compile_str(s_compiler_t *c, const msgpack_object *src, s_node_t *node,
                         const char *where)
{
    const char *s = src->via.str.size ? src->via.str.ptr : "";
    size_t n = src->via.str.size;
    char quoted[S_QUOTE_MAX + 8], at[300];

    size_t opens = 0;
    for (size_t i = s_find2(s, n, 0, '{'); i < n; i = s_find2(s, n, i + 2, '{'))
        opens++;
    if (opens == 0) {
        if (nerve_obj_copy(c->zone, src, &node->literal) != 0)
            return s_error(c, NERVE_ENOMEM, "out of memory");
        return 0;
    }

    /* Parts point into one copy of the string; at most text before each
       reference, the reference, and text after the last. */
    char *copy = msgpack_zone_malloc(c->zone, n);
    s_part_t *parts = msgpack_zone_malloc(c->zone, (2 * opens + 1) * sizeof *parts);
    if (!copy || !parts)
        return s_error(c, NERVE_ENOMEM, "out of memory");
    memcpy(copy, s, n);

    size_t np = 0, pos = 0;
    for (;;) {
        size_t open = s_find2(copy, n, pos, '{');
        if (open > pos)
            parts[np++] = (s_part_t){.text = copy + pos, .len = open - pos};
        if (open == n)
            break;
        size_t close = s_find2(copy, n, open + 2, '}');
        if (close == n)
            return s_error(c, NERVE_EPARSE, "unclosed '{{' at offset %zu in '%s'%s", open,
                           s_quote(quoted, sizeof quoted, s, n), s_at(at, sizeof at, where));
        size_t a = open + 2, b = close;
        while (a < b && s_is_space(copy[a]))
            a++;
        while (b > a && s_is_space(copy[b - 1]))
            b--;
        if (a == b)
            return s_error(c, NERVE_EPARSE, "empty reference at offset %zu in '%s'%s", open,
                           s_quote(quoted, sizeof quoted, s, n), s_at(at, sizeof at, where));
        int rc;
        if (!s_parse_ref(c, copy + a, b - a, &parts[np], &rc))
            return s_error(c, NERVE_EPARSE,
                           "unknown reference '%s' at offset %zu (expected event.host, "
                           "event.tag, event.id, event.data[.path], value[.path], rule or "
                           "secret.NAME)%s",
                           s_quote(quoted, sizeof quoted, copy + a, b - a), open,
                           s_at(at, sizeof at, where));
        if (rc)
            return s_error(c, rc, "out of memory");
        np++;
        pos = close + 2;
    }
    for (size_t i = 0; i < np; i++)
        if (parts[i].is_ref && parts[i].ref == S_REF_SECRET && np != 1)
            return s_error(c, NERVE_EPARSE,
                           "a secret must be a whole value: write '{{secret.%s}}' alone, not "
                           "inside other text%s",
                           parts[i].text, s_at(at, sizeof at, where));
    c->has_refs = true;
    node->kind = S_NODE_STR;
    node->parts = parts;
    node->nparts = np;
    return 0;
}

/*  where.key, for messages: str keys as text, integers as numbers. */
static void s_child_where(char *out, size_t outsize, const char *where, const msgpack_object *key,
                          uint32_t index)
{
    const char *dot = *where ? "." : "";
    if (!key)
        snprintf(out, outsize, "%s%s%u", where, dot, index);
    else if (key->type == MSGPACK_OBJECT_STR) {
        char quoted[S_QUOTE_MAX + 8];
        snprintf(out, outsize, "%s%s%s", where, dot,
                 s_quote(quoted, sizeof quoted, key->via.str.ptr, key->via.str.size));
    } else if (key->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        snprintf(out, outsize, "%s%s%llu", where, dot, (unsigned long long)key->via.u64);
    else
        snprintf(out, outsize, "%s%s?", where, dot);
}

static int s_compile_node(s_compiler_t *c, const msgpack_object *src, s_node_t *node, int depth,
                          const char *where);

/*  A map or array with at least one item. Leaves node LITERAL when nothing
    below it references anything: the caller then copies the subtree whole
    (the compiled children are dropped with the zone). */
static int s_compile_container(s_compiler_t *c, const msgpack_object *src, s_node_t *node,
                               int depth, const char *where)
{
    bool is_map = src->type == MSGPACK_OBJECT_MAP;
    uint32_t n = is_map ? src->via.map.size : src->via.array.size;
    s_node_t *items = msgpack_zone_malloc(c->zone, (size_t)n * sizeof *items);
    msgpack_object *keys = is_map ? msgpack_zone_malloc(c->zone, (size_t)n * sizeof *keys) : NULL;
    if (!items || (is_map && !keys))
        return s_error(c, NERVE_ENOMEM, "out of memory");
    bool refs = false;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *key = is_map ? &src->via.map.ptr[i].key : NULL;
        const msgpack_object *val = is_map ? &src->via.map.ptr[i].val : &src->via.array.ptr[i];
        char child[256];
        s_child_where(child, sizeof child, where, key, i);
        int rc = s_compile_node(c, val, &items[i], depth + 1, child);
        if (rc)
            return rc;
        if (key && (rc = nerve_obj_copy(c->zone, key, &keys[i])) != 0)
            return rc == NERVE_ERANGE ? s_error(c, NERVE_EPARSE, "map key nested deeper than %d%s",
                                                NERVE_OBJ_DEPTH_MAX, s_at(child, sizeof child, where))
                                      : s_error(c, NERVE_ENOMEM, "out of memory");
        refs = refs || items[i].kind != S_NODE_LITERAL;
    }
    if (refs) {
        node->kind = is_map ? S_NODE_MAP : S_NODE_ARRAY;
        node->items = items;
        node->keys = keys;
        node->count = n;
    }
    return 0;
}

static int s_compile_node(s_compiler_t *c, const msgpack_object *src, s_node_t *node, int depth,
                          const char *where)
{
    char at[300];
    memset(node, 0, sizeof *node);
    node->kind = S_NODE_LITERAL;
    if (depth > NERVE_OBJ_DEPTH_MAX)
        return s_error(c, NERVE_EPARSE, "value nested deeper than %d%s", NERVE_OBJ_DEPTH_MAX,
                       s_at(at, sizeof at, where));
    if (src->type == MSGPACK_OBJECT_STR)
        return s_compile_str(c, src, node, where);
    if ((src->type == MSGPACK_OBJECT_MAP && src->via.map.size)
        || (src->type == MSGPACK_OBJECT_ARRAY && src->via.array.size)) {
        int rc = s_compile_container(c, src, node, depth, where);
        if (rc || node->kind != S_NODE_LITERAL)
            return rc;
    }
    int rc = nerve_obj_copy(c->zone, src, &node->literal);
    if (rc == NERVE_ERANGE) /* a map key nested too deep: keys are not walked above */
        return s_error(c, NERVE_EPARSE, "value nested deeper than %d%s", NERVE_OBJ_DEPTH_MAX,
                       s_at(at, sizeof at, where));
    if (rc)
        return s_error(c, rc, "cannot copy value: %s%s", nerve_strerror(rc),
                       s_at(at, sizeof at, where));
    return 0;
}

int nerve_tmpl_compile(const msgpack_object *src, nerve_tmpl_t **out, char *err,
                       size_t errsize)
{
    s_compiler_t c = {.err = err, .errsize = errsize};
    if (err && errsize)
        err[0] = '\0';
    if (!out)
        return s_error(&c, NERVE_EINVAL, "no output");
    *out = NULL;
    if (!src)
        return s_error(&c, NERVE_EINVAL, "no value to compile");
    nerve_tmpl_t *self = calloc(1, sizeof *self);
    if (self)
        self->zone = msgpack_zone_new(S_ZONE_CHUNK);
    if (!self || !self->zone) {
        free(self);
        return s_error(&c, NERVE_ENOMEM, "out of memory");
    }
    c.zone = self->zone;
    int rc = s_compile_node(&c, src, &self->root, 0, "");
    if (rc) {
        nerve_tmpl_destroy(&self);
        return rc;
    }
    self->has_refs = c.has_refs;
    *out = self;
    return 0;
}

bool nerve_tmpl_has_refs(const nerve_tmpl_t *self)
{
    return self && self->has_refs;
}

void nerve_tmpl_destroy(nerve_tmpl_t **self)
{
    if (!self || !*self)
        return;
    msgpack_zone_free((*self)->zone);
    free(*self);
    *self = NULL;
}

/* ------------------------------------------------------------------------
   Render
   ------------------------------------------------------------------------ */

static const msgpack_object *s_cstr(const char *s, msgpack_object *scratch)
{
    if (!s)
        return NULL;
    size_t n = strlen(s);
    scratch->type = MSGPACK_OBJECT_STR;
    scratch->via.str.ptr = s;
    scratch->via.str.size = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    return scratch;
}

/*  The value a reference names, or NULL when it is missing. Strings from
    the context are wrapped in scratch (and the id spelled into hex), so
    nothing is allocated here. */
static const msgpack_object *s_resolve(const s_part_t *part, const nerve_tmpl_ctx_t *ctx,
                                       msgpack_object *scratch, char hex[2 * NERVE_ID_SIZE + 1])
{
    static const char digits[] = "0123456789abcdef";
    if (!ctx)
        return NULL;
    switch (part->ref) {
    case S_REF_HOST:
        return s_cstr(ctx->host, scratch);
    case S_REF_TAG:
        return s_cstr(ctx->tag, scratch);
    case S_REF_RULE:
        return s_cstr(ctx->rule, scratch);
    case S_REF_ID:
        if (!ctx->id)
            return NULL;
        for (size_t i = 0; i < NERVE_ID_SIZE; i++) {
            hex[2 * i] = digits[ctx->id[i] >> 4];
            hex[2 * i + 1] = digits[ctx->id[i] & 15];
        }
        hex[2 * NERVE_ID_SIZE] = '\0';
        return s_cstr(hex, scratch);
    case S_REF_DATA:
        return ctx->data ? nerve_obj_path(ctx->data, part->text) : NULL;
    case S_REF_VALUE:
        return ctx->value ? nerve_obj_path(ctx->value, part->text) : NULL;
    case S_REF_SECRET:
        scratch->type = MSGPACK_OBJECT_EXT;
        scratch->via.ext.type = NERVE_EXT_SECRET;
        scratch->via.ext.ptr = part->text;
        scratch->via.ext.size = (uint32_t)part->len;
        return scratch;
    }
    return NULL;
}

/*  A snprintf-style text writer: counts every byte, stores what fits in
    cap bytes (the NUL goes after them). */
typedef struct s_sink {
    char *buf;
    size_t cap;
    size_t len;
} s_sink_t;

static void s_sink_put(s_sink_t *s, const char *p, size_t n)
{
    if (s->len < s->cap && n) {
        size_t room = s->cap - s->len;
        memcpy(s->buf + s->len, p, n < room ? n : room);
    }
    s->len += n;
}

/*  Writes the decimal digits of v (no sign) into the end of buf[0..32);
    returns a pointer to the first digit. */
static char *s_utoa(uint64_t v, char end[32])
{
    char *p = end + 31;
    *p = '\0';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

/*  A double as text for people and commands: at most 15 significant
    digits, so sums and averages show as 0.3, not 0.30000000000000004, and
    without printf's multi-precision path on the hot path: integers and
    numbers from 1e-4 to 1e15 are formatted with integer arithmetic; the
    rest, and the rare number whose 16th digit is too close to a half for
    the long double product to round it right, fall back to "%.15g", so
    the text is always what "%.15g" gives (but -0 is "0"). JSON output
    (nerve_obj_to_json) stays exact. */
static size_t s_fmt_text_double(double d, char out[64])
{
    double a = fabs(d);
    char digits[32];
    if (!isfinite(d) || (a != 0 && (a < 1e-4 || a >= 1e15)))
        return (size_t)snprintf(out, 64, "%.15g", d);
    size_t n = 0;
    if (d < 0)
        out[n++] = '-';
    if (a == floor(a)) { /* integral, below 1e15 */
        const char *p = s_utoa((uint64_t)a, digits);
        size_t len = strlen(p);
        memcpy(out + n, p, len + 1);
        return n + len;
    }
#if LDBL_MANT_DIG < 64
    /* The integer path needs an x87-style 64-bit (or wider) long double:
       where long double is double (arm32, ppc64le's double-double) the
       product below cannot tell a 16th digit's half. */
    return (size_t)snprintf(out, 64, "%.15g", d);
#endif
    /* 15 significant digits: m = a × 10^(14 - e) rounded, e = floor(log10 a),
       with exact powers of ten (long double holds 10^0…10^19 exactly). */
    static const long double pow10[] = {
        1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,  1e8L,  1e9L,
        1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L,
    };
    int e = -4;
    while (e < 14 && (e + 1 >= 0 ? a >= (double)pow10[e + 1] : a * (double)pow10[-(e + 1)] >= 1))
        e++;
    long double x = (long double)a * pow10[14 - e];
    if (x < 1e14L && e > -4) { /* e guessed one too high */
        e--;
        x = (long double)a * pow10[14 - e];
    }
    /* x carries about 14 bits below the point at 1e15 and is rounded
       itself: a fraction that near a half may be on the wrong side of it
       (and an exact half is printf's to round, to even). */
    long double whole = floorl(x);
    if (fabsl(x - whole - 0.5L) < 0x1p-12L)
        return (size_t)snprintf(out, 64, "%.15g", d);
    uint64_t m = (uint64_t)whole + (x - whole > 0.5L);
    if (m >= 1000000000000000ull) { /* rounding carried into a new digit */
        m = (m + 5) / 10;
        e++;
    }
    /* Rounded up to 1e15 (999999999999999.5 and above): more digits than
       the 15 we hold, and "%.15g" switches to an exponent there. */
    if (e >= 15)
        return (size_t)snprintf(out, 64, "%.15g", d);
    const char *p = s_utoa(m, digits); /* exactly 15 digits */
    int point = e + 1;                 /* digits before the decimal point */
    size_t last = 15;
    while (last > 1 && p[last - 1] == '0')
        last--; /* trailing zeros of the fraction */
    if (point <= 0) {
        out[n++] = '0';
        out[n++] = '.';
        for (int i = 0; i < -point; i++)
            out[n++] = '0';
        memcpy(out + n, p, last);
        n += last;
    } else {
        size_t ip = (size_t)point;
        memcpy(out + n, p, ip);
        n += ip;
        if (last > ip) {
            out[n++] = '.';
            memcpy(out + n, p + ip, last - ip);
            n += last - ip;
        }
    }
    out[n] = '\0';
    return n;
}

/*  A value as text: str as its bytes, numbers in short form, bin as
    hex, nil as nothing, maps, arrays and ext as JSON. */
static void s_sink_value(s_sink_t *s, const msgpack_object *v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[64];
    switch (v->type) {
    case MSGPACK_OBJECT_NIL:
        break;
    case MSGPACK_OBJECT_STR:
        s_sink_put(s, v->via.str.ptr, v->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        for (uint32_t i = 0; i < v->via.bin.size; i++) {
            unsigned char b = (unsigned char)v->via.bin.ptr[i];
            char pair[2] = {digits[b >> 4], digits[b & 15]};
            s_sink_put(s, pair, 2);
        }
        break;
    case MSGPACK_OBJECT_FLOAT64:
        s_sink_put(s, tmp, s_fmt_text_double(v->via.f64, tmp));
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: {
        char *p = s_utoa(v->via.u64, tmp);
        s_sink_put(s, p, strlen(p));
        break;
    }
    case MSGPACK_OBJECT_BOOLEAN:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT32:
        nerve_obj_format(v, tmp, sizeof tmp); /* shortest form, never truncated at 64 */
        s_sink_put(s, tmp, strlen(tmp));
        break;
    default: {
        /* JSON straight into the buffer: the room left plus the NUL's byte. */
        size_t room = s->len < s->cap ? s->cap - s->len : 0;
        s->len += nerve_obj_to_json_buf(v, room ? s->buf + s->len : NULL, room ? room + 1 : 0);
        break;
    }
    }
}

/*  Writes a str node (or a literal) as text into buf, snprintf-style.
    Returns the full length. */
static size_t s_text(const s_node_t *node, const nerve_tmpl_ctx_t *ctx, char *buf,
                     size_t bufsize)
{
    s_sink_t s = {.buf = buf, .cap = bufsize ? bufsize - 1 : 0};
    if (node->kind == S_NODE_LITERAL) {
        s_sink_value(&s, &node->literal);
    } else {
        for (size_t i = 0; i < node->nparts; i++) {
            const s_part_t *part = &node->parts[i];
            msgpack_object scratch;
            char hex[2 * NERVE_ID_SIZE + 1];
            const msgpack_object *v;
            if (!part->is_ref)
                s_sink_put(&s, part->text, part->len);
            else if ((v = s_resolve(part, ctx, &scratch, hex)))
                s_sink_value(&s, v);
        }
    }
    if (bufsize)
        buf[s.len < s.cap ? s.len : s.cap] = '\0';
    return s.len;
}

static int s_render_str(const s_node_t *node, const nerve_tmpl_ctx_t *ctx, msgpack_zone *zone,
                        msgpack_object *out)
{
    if (node->nparts == 1 && node->parts[0].is_ref) {
        /* A lone reference keeps the referenced value's type. */
        msgpack_object scratch;
        char hex[2 * NERVE_ID_SIZE + 1];
        const msgpack_object *v = s_resolve(&node->parts[0], ctx, &scratch, hex);
        if (!v) {
            out->type = MSGPACK_OBJECT_NIL;
            return 0;
        }
        /* Values from the event are data: they can never name a secret. */
        if (node->parts[0].ref == S_REF_SECRET)
            return nerve_obj_copy(zone, v, out);
        return nerve_obj_copy_data(zone, v, out);
    }
    size_t n = s_text(node, ctx, NULL, 0);
    if (n > UINT32_MAX)
        return NERVE_ERANGE;
    char *p = msgpack_zone_malloc(zone, n + 1);
    if (!p)
        return NERVE_ENOMEM;
    s_text(node, ctx, p, n + 1);
    out->type = MSGPACK_OBJECT_STR;
    out->via.str.ptr = p;
    out->via.str.size = (uint32_t)n;
    return 0;
}

static int s_render_node(const s_node_t *node, const nerve_tmpl_ctx_t *ctx, msgpack_zone *zone,
                         msgpack_object *out)
{
    switch (node->kind) {
    case S_NODE_LITERAL:
        return nerve_obj_copy(zone, &node->literal, out);
    case S_NODE_STR:
        return s_render_str(node, ctx, zone, out);
    case S_NODE_ARRAY: {
        msgpack_object *items = msgpack_zone_malloc(zone, (size_t)node->count * sizeof *items);
        if (!items)
            return NERVE_ENOMEM;
        for (uint32_t i = 0; i < node->count; i++) {
            int rc = s_render_node(&node->items[i], ctx, zone, &items[i]);
            if (rc)
                return rc;
        }
        out->type = MSGPACK_OBJECT_ARRAY;
        out->via.array.ptr = items;
        out->via.array.size = node->count;
        return 0;
    }
    case S_NODE_MAP: {
        msgpack_object_kv *kv = msgpack_zone_malloc(zone, (size_t)node->count * sizeof *kv);
        if (!kv)
            return NERVE_ENOMEM;
        for (uint32_t i = 0; i < node->count; i++) {
            int rc = nerve_obj_copy(zone, &node->keys[i], &kv[i].key);
            if (!rc)
                rc = s_render_node(&node->items[i], ctx, zone, &kv[i].val);
            if (rc)
                return rc;
        }
        out->type = MSGPACK_OBJECT_MAP;
        out->via.map.ptr = kv;
        out->via.map.size = node->count;
        return 0;
    }
    }
    return NERVE_EINVAL;
}

int nerve_tmpl_render(const nerve_tmpl_t *self, const nerve_tmpl_ctx_t *ctx,
                      msgpack_zone *zone, msgpack_object *out)
{
    if (!out)
        return NERVE_EINVAL;
    out->type = MSGPACK_OBJECT_NIL;
    if (!self || !zone)
        return NERVE_EINVAL;
    int rc = s_render_node(&self->root, ctx, zone, out);
    if (rc)
        out->type = MSGPACK_OBJECT_NIL;
    return rc;
}

int nerve_tmpl_render_text(const nerve_tmpl_t *self, const nerve_tmpl_ctx_t *ctx, char *buf,
                           size_t bufsize)
{
    if (!buf)
        bufsize = 0;
    if (bufsize)
        buf[0] = '\0';
    if (!self
        || !(self->root.kind == S_NODE_STR
             || (self->root.kind == S_NODE_LITERAL
                 && self->root.literal.type == MSGPACK_OBJECT_STR)))
        return NERVE_EINVAL;
    size_t n = s_text(&self->root, ctx, buf, bufsize);
    if (n < bufsize)
        return 0;
    /* Truncated: do not leave half a UTF-8 character at the end. */
    if (bufsize > 1) {
        size_t end = bufsize - 1, lead = end, cont = 0;
        while (lead > 0 && cont < 3 && ((unsigned char)buf[lead - 1] & 0xC0) == 0x80) {
            lead--;
            cont++;
        }
        if (lead > 0) {
            unsigned char b = (unsigned char)buf[lead - 1];
            size_t need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
            if (need > cont + 1)
                buf[lead - 1] = '\0';
        }
    }
    return NERVE_ERANGE;
}
