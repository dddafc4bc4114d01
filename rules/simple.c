/*  rules/simple.c — rules.simple: compare, range and string-match rules.

    The rule functions most rules files use, built as an ordinary module
    (rules/simple.so) against <nerve/module.h>, exactly as an operator's
    module would be:

        gt ge lt le      value against `threshold` (or `value` when given)
        eq ne            same, also for strings and booleans
        between outside  value against `low` and `high` (between is inclusive)
        match            fnmatch(3) glob `pattern` on a string value
        regex            POSIX extended regex `pattern` on a string value
        exists           a value is present and not nil

    Every parameter is checked once, when the rules load (prepare), so a typo
    fails the load with a one-line reason instead of every evaluation; the
    regex is compiled there too. The call itself allocates nothing except
    for a glob over a string longer than a stack buffer.

    A missing value answers false without an error (the event simply does not
    carry it). A value of the wrong type answers false too, except for the
    numeric rules, which return NERVE_ETYPE so the manager counts and logs a
    rule fed strings where numbers were meant.

    Integers compare exactly (a counter near 2^63 is not rounded through a
    double); anything involving a float compares as double, where NaN is
    neither greater, smaller nor equal.
*/
#define _GNU_SOURCE /* FNM_CASEFOLD, REG_STARTEND */
#include <fnmatch.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nerve/module.h>

typedef enum {
    S_GT,
    S_GE,
    S_LT,
    S_LE,
    S_EQ,
    S_NE,
    S_BETWEEN,
    S_OUTSIDE,
    S_MATCH,
    S_REGEX,
    S_EXISTS,
} s_op_t;

static const char *const s_op_names[] = {
    [S_GT] = "gt",       [S_GE] = "ge",       [S_LT] = "lt",           [S_LE] = "le",
    [S_EQ] = "eq",       [S_NE] = "ne",       [S_BETWEEN] = "between", [S_OUTSIDE] = "outside",
    [S_MATCH] = "match", [S_REGEX] = "regex", [S_EXISTS] = "exists",
};

/*  What prepare() keeps for one call site. Scalars are copied by value
    (msgpack_object holds numbers and booleans inline); strings are owned. */
typedef struct s_prep {
    msgpack_object operand; /* threshold/value: a number, or for eq/ne a bool */
    msgpack_object low, high;
    char *text; /* eq/ne string operand, or the glob pattern */
    size_t text_len;
    bool nocase;
    bool compiled; /* regex holds a compiled pattern */
    regex_t regex;
} s_prep_t;

/*  Comparison of two numbers: -1, 0, 1, or 2 when unordered (NaN). */
static int s_cmp_number(const msgpack_object *a, const msgpack_object *b)
{
    bool aint =
        a->type == MSGPACK_OBJECT_POSITIVE_INTEGER || a->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
    bool bint =
        b->type == MSGPACK_OBJECT_POSITIVE_INTEGER || b->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
    if (aint && bint) {
        bool aneg = a->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        bool bneg = b->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        if (aneg != bneg)
            return aneg ? -1 : 1;
        if (aneg)
            return a->via.i64 < b->via.i64 ? -1 : a->via.i64 > b->via.i64;
        return a->via.u64 < b->via.u64 ? -1 : a->via.u64 > b->via.u64;
    }
    double x, y;
    nerve_obj_number(a, &x);
    nerve_obj_number(b, &y);
    if (x < y)
        return -1;
    if (x > y)
        return 1;
    return x == y ? 0 : 2;
}

static bool s_is_number(const msgpack_object *o)
{
    double d;
    return o && nerve_obj_number(o, &d);
}

static const char *s_type_name(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return "nil";
    case MSGPACK_OBJECT_BOOLEAN:
        return "a bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return "a number";
    case MSGPACK_OBJECT_STR:
        return "a string";
    case MSGPACK_OBJECT_ARRAY:
        return "a list";
    case MSGPACK_OBJECT_MAP:
        return "a map";
    default:
        return "binary";
    }
}

static void s_clear(s_prep_t *p)
{
    if (p->compiled)
        regfree(&p->regex);
    free(p->text);
    memset(p, 0, sizeof *p);
}

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

/*  A string param copied NUL-terminated into p->text. */
/*  What regcomp() will build, estimated before it runs. glibc compiles
    `x+` as `xx*` and `x{m,n}` as n copies of x, so quantifiers applied to
    quantified parts multiply: `t+++++++++++++++++++x` (20 `+`) takes
    700 MB, and each more `+` doubles it; `((t)+)+…` nests the same way.
    s_regex_size() walks the ERE once and counts the atoms the compiled
    expression holds, each duplication multiplying what it applies to; a
    pattern past S_REGEX_SIZE_MAX is refused with the loader's error,
    which beats an out-of-memory manager. Counting is generous (any
    bracket expression is one atom, `*` and `?` copy nothing), and
    malformed syntax is left for regcomp() to name. */
#define S_REGEX_SIZE_MAX 20000u

typedef struct {
    const char *p, *end;
    int depth;
} s_rx_t;

static unsigned long s_rx_alt(s_rx_t *x);

static unsigned long s_rx_cap(unsigned long v)
{
    return v > S_REGEX_SIZE_MAX ? S_REGEX_SIZE_MAX + 1 : v;
}

/*  One atom: a group, a bracket expression, an escape or a character. */
static unsigned long s_rx_atom(s_rx_t *x)
{
    char c = *x->p++;
    if (c == '(') {
        if (++x->depth > 64)
            return S_REGEX_SIZE_MAX + 1;
        unsigned long n = s_rx_alt(x);
        x->depth--;
        if (x->p < x->end && *x->p == ')')
            x->p++;
        return n ? n : 1;
    }
    if (c == '[') {
        if (x->p < x->end && *x->p == '^')
            x->p++;
        if (x->p < x->end && *x->p == ']')
            x->p++;
        while (x->p < x->end && *x->p != ']') {
            if (*x->p == '[' && x->p + 1 < x->end &&
                (x->p[1] == ':' || x->p[1] == '.' || x->p[1] == '=')) {
                char close = x->p[1];
                x->p += 2;
                while (x->p + 1 < x->end && !(x->p[0] == close && x->p[1] == ']'))
                    x->p++;
                x->p += x->p + 1 < x->end ? 2 : 1;
            } else {
                x->p++;
            }
        }
        if (x->p < x->end)
            x->p++;
        return 1;
    }
    if (c == '\\' && x->p < x->end)
        x->p++;
    return 1;
}

/*  A {m,n} bound's copies (n, or m + 1 when open), or 0 if malformed. */
static unsigned long s_rx_bound(s_rx_t *x)
{
    unsigned long m = 0, n = 0;
    bool comma = false, digits = false;
    while (x->p < x->end && *x->p != '}') {
        char c = *x->p++;
        if (c == ',' && !comma)
            comma = true;
        else if (c >= '0' && c <= '9') {
            unsigned long *v = comma ? &n : &m;
            *v = *v * 10 + (unsigned long)(c - '0');
            if (*v > S_REGEX_SIZE_MAX)
                return S_REGEX_SIZE_MAX + 1;
            digits = true;
        } else
            return 0;
    }
    if (x->p < x->end)
        x->p++;
    if (!digits)
        return 0;
    return !comma ? (m ? m : 1) : n ? n : m + 1;
}

/*  A run of atoms with their quantifiers, up to `|` or `)`. */
static unsigned long s_rx_seq(s_rx_t *x)
{
    unsigned long total = 0;
    while (x->p < x->end && *x->p != '|' && *x->p != ')') {
        unsigned long n = s_rx_atom(x);
        while (x->p < x->end) {
            char q = *x->p;
            if (q == '*' || q == '?')
                x->p++;
            else if (q == '+')
                x->p++, n = s_rx_cap(n * 2);
            else if (q == '{') {
                x->p++;
                unsigned long copies = s_rx_bound(x);
                n = s_rx_cap(n * (copies ? copies : 1));
            } else
                break;
        }
        total = s_rx_cap(total + n);
    }
    return total;
}

static unsigned long s_rx_alt(s_rx_t *x)
{
    unsigned long total = s_rx_seq(x);
    while (x->p < x->end && *x->p == '|') {
        x->p++;
        total = s_rx_cap(total + s_rx_seq(x));
    }
    return total;
}

/*  Atoms the compiled pattern holds, S_REGEX_SIZE_MAX + 1 at most. */
static unsigned long s_regex_size(const char *pattern, size_t len)
{
    s_rx_t x = {pattern, pattern + len, 0};
    unsigned long total = 0;
    while (x.p < x.end) {
        total = s_rx_cap(total + s_rx_alt(&x));
        if (x.p < x.end) /* a stray ')': regcomp() will say so */
            x.p++;
    }
    return total;
}

static int s_take_text(s_prep_t *p, const msgpack_object *o)
{
    const char *s;
    size_t n;
    if (!nerve_obj_str(o, &s, &n))
        return NERVE_ETYPE;
    if (memchr(s, '\0', n))
        return NERVE_EINVAL; /* fnmatch and regcomp would see a shorter pattern */
    if (!(p->text = strndup(s, n)))
        return NERVE_ENOMEM;
    p->text_len = n;
    return 0;
}

/*  Reads and checks the params of `op` into *p (zeroed first). On error
    fills err (when given) and leaves nothing to free. */
static int s_parse(s_op_t op, const msgpack_object *params, s_prep_t *p, char *err, size_t errsize)
{
    const char *name = s_op_names[op];
    memset(p, 0, sizeof *p);
    const msgpack_object *nocase = nerve_obj_get(params, "nocase");
    if (nocase && !nerve_obj_bool(nocase, &p->nocase))
        return s_fail(NERVE_EINVAL, err, errsize, "%s: 'nocase' must be true or false", name);

    switch (op) {
    case S_GT:
    case S_GE:
    case S_LT:
    case S_LE:
    case S_EQ:
    case S_NE: {
        const char *key = "value";
        const msgpack_object *o = nerve_obj_get(params, key);
        if (!o) {
            key = "threshold";
            o = nerve_obj_get(params, key);
        }
        bool equality = op == S_EQ || op == S_NE;
        const char *want = equality ? "a number, string or bool" : "a number";
        if (!o)
            return s_fail(NERVE_EINVAL, err, errsize, "%s needs 'threshold' (%s)", name, want);
        if (s_is_number(o)) {
            double d;
            nerve_obj_number(o, &d);
            if (d != d)
                return s_fail(NERVE_EINVAL, err, errsize, "%s: '%s' is NaN", name, key);
            p->operand = *o;
            return 0;
        }
        if (equality && o->type == MSGPACK_OBJECT_BOOLEAN) {
            p->operand = *o;
            return 0;
        }
        if (equality && o->type == MSGPACK_OBJECT_STR) {
            p->operand = *o;
            int rc = s_take_text(p, o);
            if (rc == NERVE_ENOMEM)
                return s_fail(NERVE_ENOMEM, err, errsize, "%s: out of memory", name);
            if (rc != 0)
                return s_fail(NERVE_EINVAL, err, errsize, "%s: '%s' contains a NUL byte", name,
                              key);
            return 0;
        }
        char what[160];
        snprintf(what, sizeof what, "'%s' (%s), got %s", key, want, s_type_name(o));
        return s_fail(NERVE_EINVAL, err, errsize, "%s needs %s", name, what);
    }
    case S_BETWEEN:
    case S_OUTSIDE: {
        const msgpack_object *lo = nerve_obj_get(params, "low");
        const msgpack_object *hi = nerve_obj_get(params, "high");
        if (!s_is_number(lo) || !s_is_number(hi))
            return s_fail(NERVE_EINVAL, err, errsize, "%s needs 'low' and 'high' (numbers)", name);
        if (s_cmp_number(lo, hi) > 0)
            return s_fail(NERVE_EINVAL, err, errsize, "%s needs 'low' <= 'high'", name);
        p->low = *lo;
        p->high = *hi;
        return 0;
    }
    case S_MATCH:
    case S_REGEX: {
        const msgpack_object *pat = nerve_obj_get(params, "pattern");
        int rc = pat ? s_take_text(p, pat) : NERVE_ETYPE;
        if (rc == NERVE_ENOMEM)
            return s_fail(NERVE_ENOMEM, err, errsize, "%s: out of memory", name);
        if (rc == NERVE_EINVAL)
            return s_fail(NERVE_EINVAL, err, errsize, "%s: 'pattern' contains a NUL byte", name);
        if (rc != 0)
            return s_fail(NERVE_EINVAL, err, errsize, "%s needs 'pattern' (a string)", name);
        if (op == S_MATCH)
            return 0;
        if (s_regex_size(p->text, p->text_len) > S_REGEX_SIZE_MAX) {
            char quoted[160];
            snprintf(quoted, sizeof quoted, "'%.120s'%s", p->text, p->text_len > 120 ? "…" : "");
            s_clear(p);
            return s_fail(NERVE_EINVAL, err, errsize,
                          "regex: 'pattern' %s would compile to more than %u parts (quantifiers "
                          "on quantified parts, like 'a++' or '((a)+)+', multiply)",
                          quoted, S_REGEX_SIZE_MAX);
        }
        int flags = REG_EXTENDED | REG_NOSUB | (p->nocase ? REG_ICASE : 0);
        int rerr = regcomp(&p->regex, p->text, flags);
        if (rerr != 0) {
            char why[128];
            regerror(rerr, &p->regex, why, sizeof why);
            char quoted[160];
            snprintf(quoted, sizeof quoted, "'%.120s'%s", p->text, p->text_len > 120 ? "…" : "");
            s_clear(p);
            return s_fail(NERVE_EINVAL, err, errsize, "regex: bad 'pattern' %s: %s", quoted, why);
        }
        p->compiled = true;
        return 0;
    }
    case S_EXISTS:
        return 0;
    }
    return NERVE_EINVAL;
}

/*  fnmatch(3) wants a C string; event strings are not NUL-terminated. */
static int s_glob(const s_prep_t *p, const char *s, size_t n, bool *result)
{
    char stack[512];
    char *buf = n < sizeof stack ? stack : malloc(n + 1);
    if (!buf)
        return NERVE_ENOMEM;
    memcpy(buf, s, n);
    buf[n] = '\0';
    *result = fnmatch(p->text, buf, p->nocase ? FNM_CASEFOLD : 0) == 0;
    if (buf != stack)
        free(buf);
    return 0;
}

static int s_regex_match(const s_prep_t *p, const char *s, size_t n, bool *result)
{
#ifdef REG_STARTEND
    /* glibc and the BSDs match [rm_so, rm_eo) without a terminating NUL. */
    regmatch_t range = {.rm_so = 0, .rm_eo = (regoff_t)n};
    *result = regexec(&p->regex, s, 1, &range, REG_STARTEND) == 0;
    return 0;
#else
    char *buf = strndup(s, n);
    if (!buf)
        return NERVE_ENOMEM;
    *result = regexec(&p->regex, buf, 0, NULL, 0) == 0;
    free(buf);
    return 0;
#endif
}

static int s_decide(s_op_t op, const s_prep_t *p, const msgpack_object *v, bool *result)
{
    if (op == S_EXISTS) {
        *result = v && v->type != MSGPACK_OBJECT_NIL;
        return 0;
    }
    if (!v || v->type == MSGPACK_OBJECT_NIL)
        return 0; /* no value: false, not an error */

    const char *s;
    size_t n;
    int c;
    switch (op) {
    case S_GT:
    case S_GE:
    case S_LT:
    case S_LE:
        if (!s_is_number(v))
            return NERVE_ETYPE;
        c = s_cmp_number(v, &p->operand);
        *result = op == S_GT   ? c == 1
                  : op == S_GE ? (c == 1 || c == 0)
                  : op == S_LT ? c == -1
                               : (c == -1 || c == 0);
        return 0;
    case S_BETWEEN:
    case S_OUTSIDE: {
        if (!s_is_number(v))
            return NERVE_ETYPE;
        int lo = s_cmp_number(v, &p->low), hi = s_cmp_number(v, &p->high);
        if (lo == 2 || hi == 2)
            return 0; /* NaN is in no range and outside none */
        *result = op == S_BETWEEN ? (lo >= 0 && hi <= 0) : (lo < 0 || hi > 0);
        return 0;
    }
    case S_EQ:
    case S_NE: {
        bool same;
        if (p->operand.type == MSGPACK_OBJECT_STR) {
            if (!nerve_obj_str(v, &s, &n))
                return 0;
            same = n == p->text_len && memcmp(s, p->text, n) == 0;
        } else if (p->operand.type == MSGPACK_OBJECT_BOOLEAN) {
            if (v->type != MSGPACK_OBJECT_BOOLEAN)
                return 0;
            same = v->via.boolean == p->operand.via.boolean;
        } else {
            if (!s_is_number(v))
                return 0;
            c = s_cmp_number(v, &p->operand);
            if (c == 2)
                return 0; /* NaN: neither equal nor different */
            same = c == 0;
        }
        *result = op == S_EQ ? same : !same;
        return 0;
    }
    case S_MATCH:
        if (!nerve_obj_str(v, &s, &n))
            return 0;
        return s_glob(p, s, n, result);
    case S_REGEX:
        if (!nerve_obj_str(v, &s, &n))
            return 0;
        return s_regex_match(p, s, n, result);
    case S_EXISTS:
        break;
    }
    return NERVE_EINVAL;
}

static int s_eval(s_op_t op, const nerve_rule_call_t *call, bool *result)
{
    *result = false;
    const s_prep_t *p = call->prepared;
    s_prep_t local;
    if (!p) {
        /* Called without prepare() (a tool, a test): parse on the spot. */
        int rc = s_parse(op, call->params, &local, NULL, 0);
        if (rc != 0)
            return rc;
        p = &local;
    }
    int rc = s_decide(op, p, call->value, result);
    if (p == &local)
        s_clear(&local);
    return rc;
}

static int s_prepare(s_op_t op, const msgpack_object *params, void **prepared, char *err,
                     size_t errsize)
{
    *prepared = NULL;
    s_prep_t *p = malloc(sizeof *p);
    if (!p)
        return s_fail(NERVE_ENOMEM, err, errsize, "%s: out of memory", s_op_names[op]);
    int rc = s_parse(op, params, p, err, errsize);
    if (rc != 0) {
        free(p);
        return rc;
    }
    *prepared = p;
    return 0;
}

static void s_release(void *prepared)
{
    s_prep_t *p = prepared;
    if (!p)
        return;
    s_clear(p);
    free(p);
}

#define S_RULE(name, op)                                                                           \
    static int s_##name(const nerve_rule_call_t *call, bool *result)                               \
    {                                                                                              \
        return s_eval(op, call, result);                                                           \
    }                                                                                              \
    static int s_prepare_##name(const msgpack_object *params, void **prepared, char *err,          \
                                size_t errsize)                                                    \
    {                                                                                              \
        return s_prepare(op, params, prepared, err, errsize);                                      \
    }

S_RULE(gt, S_GT)
S_RULE(ge, S_GE)
S_RULE(lt, S_LT)
S_RULE(le, S_LE)
S_RULE(eq, S_EQ)
S_RULE(ne, S_NE)
S_RULE(between, S_BETWEEN)
S_RULE(outside, S_OUTSIDE)
S_RULE(match, S_MATCH)
S_RULE(regex, S_REGEX)

static int s_exists(const nerve_rule_call_t *call, bool *result)
{
    *result = call->value && call->value->type != MSGPACK_OBJECT_NIL;
    return 0;
}

static const nerve_module_fn_t s_functions[] = {
    {"gt", {.rule = s_gt}, "value > threshold (or `value`)", s_prepare_gt, s_release},
    {"ge", {.rule = s_ge}, "value >= threshold (or `value`)", s_prepare_ge, s_release},
    {"lt", {.rule = s_lt}, "value < threshold (or `value`)", s_prepare_lt, s_release},
    {"le", {.rule = s_le}, "value <= threshold (or `value`)", s_prepare_le, s_release},
    {"eq", {.rule = s_eq}, "value == threshold: number, string or bool", s_prepare_eq, s_release},
    {"ne", {.rule = s_ne}, "value != threshold: number, string or bool", s_prepare_ne, s_release},
    {"between", {.rule = s_between}, "low <= value <= high", s_prepare_between, s_release},
    {"outside", {.rule = s_outside}, "value < low or value > high", s_prepare_outside, s_release},
    {"match",
     {.rule = s_match},
     "string value matches the glob `pattern` (fnmatch)",
     s_prepare_match,
     s_release},
    {"regex",
     {.rule = s_regex},
     "string value matches the POSIX extended regex `pattern`",
     s_prepare_regex,
     s_release},
    {"exists", {.rule = s_exists}, "a value is present and not nil", NULL, NULL},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_RULES, "simple", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
