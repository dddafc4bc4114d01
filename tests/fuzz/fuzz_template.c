/*  fuzz_template.c — libFuzzer target for `{{…}}` templates (lib/template.c).

    Templates are written by operators in rules files and rendered with
    event data from the network, so both sides are untrusted: no crash,
    no leak, no hang, no undefined behaviour, no write outside a buffer.
    One input is:

        byte 0     mode: bit 0  also compile the msgpack object as a tree
                                template (a reaction's args)
                         bit 1  the event's host is the template text
                         bits 2–3  the rule's value: 0 → 21.5, 1 → the
                                data itself, 2 → data.a, 3 → -7
                         bit 4  when the rest holds two msgpack objects,
                                the second is the tree template (else the
                                data is both)
                         bit 5  wrap the tree (and the data) in 200, 220,
                                240 or 260 one-item arrays (bits 6–7):
                                msgpack-c unpacks 32 levels at most, rules
                                files nest deeper, and compile refuses more
                                than NERVE_OBJ_DEPTH_MAX
        bytes 1–2  template text length L, big-endian (cut to what the
                   input holds)
        L bytes    the template text, compiled as a msgpack str
        rest       msgpack bytes: the event's data (an empty map when they
                   do not unpack)

    Each template that compiles is rendered with a full context, with one
    whose pointers are all NULL, and with no context at all, and checked:
    rendering twice gives the same bytes; nerve_tmpl_has_refs is true
    exactly when a templated string (a str value, not a key) holds `{{`;
    a template without `{{` renders as itself; text from
    nerve_tmpl_render_text equals the str that nerve_tmpl_render gives
    (or "" for nil), is NUL-terminated inside buffers of every size, is
    refused with NERVE_ERANGE when it does not fit and then holds the
    longest prefix that ends on a UTF-8 character boundary. Buffers are
    allocated at their exact size so ASan sees any overrun. A compile
    error always leaves a NUL-terminated message, however small err is.
    Numbers in text are checked against printf, with the input's last 8
    bytes taken as a double and as integers.
    Any disagreement aborts. Run with scripts/fuzz.sh; seeds are in
    corpus/template/ (named for what they exercise).
*/
#include "fuzz_utf8.h"

#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/template.h>
#include <nerve/value.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*  Room for the text form of one value from a few KB of input: the worst
    expansion is JSON's \u00XX for control bytes in strings (×6). Longer
    texts (many references) are checked against nerve_tmpl_render's str. */
#define S_BIG (1u << 20)

static char *s_big, *s_big2;       /* the full text, twice */
static msgpack_sbuffer s_pa, s_pb; /* packed renders, compared */
static msgpack_zone *s_zone;       /* the unpacked input */
static msgpack_zone *s_rz, *s_rz2; /* renders */
static nerve_tmpl_t *s_number;     /* "{{value}}" */

static void s_require(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_template: %s\n", what);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    nerve_log_set_level(NERVE_LOG_ERROR);
    s_big = malloc(S_BIG);
    s_big2 = malloc(S_BIG);
    s_zone = msgpack_zone_new(8192);
    s_rz = msgpack_zone_new(8192);
    s_rz2 = msgpack_zone_new(8192);
    s_require(s_big && s_big2 && s_zone && s_rz && s_rz2, "out of memory");
    msgpack_object src = {.type = MSGPACK_OBJECT_STR, .via.str = {9, "{{value}}"}};
    s_require(nerve_tmpl_compile(&src, &s_number, NULL, 0) == 0, "cannot compile {{value}}");
    msgpack_sbuffer_init(&s_pa);
    msgpack_sbuffer_init(&s_pb);
    return 0;
}

static bool s_has_open(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (p[i] == '{' && p[i + 1] == '{')
            return true;
    return false;
}

/*  Whether compiling obj should find a reference: a str value holding
    `{{` anywhere in the tree (map keys are not templated). */
static bool s_tree_has_open(const msgpack_object *obj)
{
    switch (obj->type) {
    case MSGPACK_OBJECT_STR:
        return s_has_open(obj->via.str.ptr, obj->via.str.size);
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < obj->via.array.size; i++)
            if (s_tree_has_open(&obj->via.array.ptr[i]))
                return true;
        return false;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < obj->via.map.size; i++)
            if (s_tree_has_open(&obj->via.map.ptr[i].val))
                return true;
        return false;
    default:
        return false;
    }
}

static void s_pack(msgpack_sbuffer *buf, const msgpack_object *obj)
{
    msgpack_packer pk;
    buf->size = 0;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    s_require(msgpack_pack_object(&pk, *obj) == 0, "pack failed");
}

static bool s_same_bytes(const msgpack_object *a, const msgpack_object *b)
{
    s_pack(&s_pa, a);
    s_pack(&s_pb, b);
    return s_pa.size == s_pb.size && memcmp(s_pa.data, s_pb.data, s_pa.size) == 0;
}

/*  The longest prefix of text[0..n) no longer than max that does not end
    inside a UTF-8 character — for valid UTF-8, where that is defined. */
static size_t s_utf8_cut(const char *text, size_t n, size_t max)
{
    if (max >= n)
        return n;
    size_t k = max;
    while (k > 0 && ((unsigned char)text[k] & 0xc0) == 0x80)
        k--;
    return k;
}

/*  render_text into a buffer of exactly size bytes (ASan sees any write
    past it); full[0..n) is the whole text. */
static void s_text_sized(const nerve_tmpl_t *t, const nerve_tmpl_ctx_t *ctx, const char *full,
                         size_t n, size_t size)
{
    char *buf = malloc(size ? size : 1);
    s_require(buf != NULL, "out of memory");
    memset(buf, 0x5a, size ? size : 1);
    int rc = nerve_tmpl_render_text(t, ctx, buf, size);
    if (n < size) {
        s_require(rc == 0, "render_text refused text that fits");
        s_require(memcmp(buf, full, n) == 0 && buf[n] == '\0',
                  "render_text's text differs with a bigger buffer");
    } else if (size == 0) {
        s_require(rc == NERVE_ERANGE, "render_text did not report truncation");
        s_require((unsigned char)buf[0] == 0x5a, "render_text wrote into a 0-byte buffer");
    } else if (fuzz_utf8_valid((const uint8_t *)full, n)) {
        s_require(rc == NERVE_ERANGE, "render_text did not report truncation");
        size_t want = s_utf8_cut(full, n, size - 1);
        s_require(buf[want] == '\0' && memcmp(buf, full, want) == 0,
                  "truncated text is not the longest whole-character prefix");
    } else {
        /* Invalid UTF-8 has no characters to keep whole: a prefix cut at
           size - 1 bytes or at most 3 earlier. Text may hold NUL bytes of
           its own, so look for the cut where it may be. */
        s_require(rc == NERVE_ERANGE, "render_text did not report truncation");
        bool found = false;
        for (size_t c = size - 1;; c--) {
            if (buf[c] == '\0' && memcmp(buf, full, c) == 0)
                found = true;
            if (found || c == 0 || c + 3 == size - 1)
                break;
        }
        s_require(found, "truncated text is not a prefix cut within 3 bytes");
    }
    free(buf);
}

/*  Renders a str template as text into buffers of every interesting size;
    rendered is what nerve_tmpl_render made of it with the same context:
    a str (the text itself, which may hold NUL bytes), nil ("") or a lone
    reference's other value (its text form: short, and without NULs). */
static void s_text(const nerve_tmpl_t *t, const nerve_tmpl_ctx_t *ctx,
                   const msgpack_object *rendered)
{
    const char *full = s_big;
    size_t n;
    if (rendered->type == MSGPACK_OBJECT_STR) {
        n = rendered->via.str.size;
        full = rendered->via.str.ptr;
        char *buf = malloc(n + 1);
        s_require(buf != NULL, "out of memory");
        s_require(nerve_tmpl_render_text(t, ctx, buf, n + 1) == 0, "render_text refused");
        s_require(memcmp(buf, full, n) == 0 && buf[n] == '\0',
                  "render_text differs from render's str");
        free(buf);
    } else {
        s_require(nerve_tmpl_render_text(t, ctx, s_big, S_BIG) == 0, "render_text refused");
        s_require(nerve_tmpl_render_text(t, ctx, s_big2, S_BIG) == 0, "render_text refused");
        n = strlen(s_big);
        s_require(memcmp(s_big, s_big2, n + 1) == 0, "render_text is not deterministic");
        /* Nil is a missing value, or a secret ext in the event's data,
           which a lone reference drops (nerve_obj_copy_data) and text
           shows as the JSON it is. */
        if (rendered->type == MSGPACK_OBJECT_NIL)
            s_require(n == 0 || strncmp(s_big, "{\"ext\":83,", 10) == 0,
                      "nil does not render as empty text");
    }
    s_require(nerve_tmpl_render_text(t, ctx, NULL, 0) == NERVE_ERANGE,
              "render_text with no buffer");

    /* Fixed sizes meet the text's characters at every offset as the
       fuzzer varies it; n + 1 just fits, n and below just do not. */
    static const size_t sizes[] = {0, 1, 2, 5, 16};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        s_text_sized(t, ctx, full, n, sizes[i]);
    for (size_t d = 0; d <= 3; d++)
        if (n + 1 >= d)
            s_text_sized(t, ctx, full, n, n + 1 - d); /* n+1, n, n-1, n-2 */
}

/*  Renders with ctx twice (into two zones) and checks what it can. */
static void s_render(const nerve_tmpl_t *t, const nerve_tmpl_ctx_t *ctx, const msgpack_object *src)
{
    msgpack_object a, b;
    msgpack_zone_clear(s_rz);
    msgpack_zone_clear(s_rz2);
    int rc = nerve_tmpl_render(t, ctx, s_rz, &a);
    int rc2 = nerve_tmpl_render(t, ctx, s_rz2, &b);
    s_require(rc == rc2, "render is not deterministic");
    s_require(rc == 0 || rc == NERVE_ERANGE || rc == NERVE_ENOMEM, "render: unexpected error");
    if (rc) {
        s_require(a.type == MSGPACK_OBJECT_NIL, "render failed but out is not nil");
        return;
    }
    s_require(s_same_bytes(&a, &b), "render is not deterministic");
    if (!nerve_tmpl_has_refs(t))
        s_require(s_same_bytes(&a, src), "a template without references changed");
    if (src->type == MSGPACK_OBJECT_STR) {
        s_text(t, ctx, &a);
    } else {
        char one[1] = {'x'};
        s_require(nerve_tmpl_render_text(t, ctx, one, sizeof one) == NERVE_EINVAL && !one[0],
                  "render_text of a non-str template");
    }
}

static void s_compile_render(const msgpack_object *src, const nerve_tmpl_ctx_t *full)
{
    char err[256], small[8];
    nerve_tmpl_t *t = NULL, *t2 = NULL;
    int rc = nerve_tmpl_compile(src, &t, err, sizeof err);
    int rc2 = nerve_tmpl_compile(src, &t2, small, sizeof small);
    nerve_tmpl_destroy(&t2);
    s_require(rc == rc2, "compile depends on the size of err");
    s_require(nerve_tmpl_compile(src, &t2, NULL, 0) == rc, "compile depends on err");
    nerve_tmpl_destroy(&t2);
    if (rc) {
        s_require(rc == NERVE_EPARSE || rc == NERVE_ENOMEM, "compile: unexpected error");
        s_require(t == NULL, "failed compile left a template");
        s_require(memchr(err, 0, sizeof err) && err[0], "compile error without a message");
        s_require(memchr(small, 0, sizeof small) != NULL, "error message not terminated");
        return;
    }
    s_require(nerve_tmpl_has_refs(t) == s_tree_has_open(src), "has_refs disagrees with '{{'");

    nerve_tmpl_ctx_t none = {0};
    nerve_tmpl_ctx_t no_data = *full;
    no_data.data = NULL, no_data.value = NULL, no_data.id = NULL;
    s_render(t, full, src);
    s_render(t, &no_data, src);
    s_render(t, &none, src);
    s_render(t, NULL, src);
    nerve_tmpl_destroy(&t);
    nerve_tmpl_destroy(&t); /* documented as safe twice */
}

/*  Numbers in text against printf: the last 8 input bytes as a double
    ("%.15g", but -0 is "0"), an unsigned and a negative integer. */
static void s_numbers(const uint8_t *p)
{
    uint64_t u;
    double d;
    memcpy(&u, p, 8);
    memcpy(&d, p, 8);
    msgpack_object v[3] = {
        {.type = MSGPACK_OBJECT_FLOAT64, .via.f64 = d},
        {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = u},
        {.type = MSGPACK_OBJECT_NEGATIVE_INTEGER, .via.i64 = (int64_t)(u | 1ull << 63)},
    };
    char want[3][64], got[64];
    snprintf(want[0], sizeof want[0], "%.15g", d == 0 ? 0.0 : d);
    snprintf(want[1], sizeof want[1], "%llu", (unsigned long long)u);
    snprintf(want[2], sizeof want[2], "%lld", (long long)v[2].via.i64);
    for (int i = 0; i < 3; i++) {
        nerve_tmpl_ctx_t ctx = {.value = &v[i]};
        s_require(nerve_tmpl_render_text(s_number, &ctx, got, sizeof got) == 0 &&
                      strcmp(got, want[i]) == 0,
                  i ? "an integer's text is not printf's" : "a double's text is not %.15g");
    }
}

static uint64_t s_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/*  Where the msgpack value at p[from..n) ends, or 0 if it is cut short,
    malformed, or declares a container of more items than there are bytes
    left: msgpack_unpack() allocates a container's items before reading
    them, so a 5-byte "array of 2^32 items" would exhaust memory in this
    harness (lib/wire.c refuses those the same way). */
static size_t s_msgpack_end(const uint8_t *p, size_t n, size_t from)
{
    uint64_t pending = 1; /* values still to read */
    size_t i = from;
    while (pending) {
        if (i >= n)
            return 0;
        uint8_t b = p[i++];
        uint64_t skip = 0, items = 0;
        if (b <= 0x7f || b >= 0xe0 || (b >= 0xc0 && b <= 0xc3 && b != 0xc1))
            ;
        else if (b <= 0x8f)
            items = 2 * (uint64_t)(b & 0x0f);
        else if (b <= 0x9f)
            items = b & 0x0f;
        else if (b <= 0xbf)
            skip = b & 0x1f;
        else if (b == 0xc1)
            return 0;
        else {
            static const uint8_t len_size[] = {
                [0x04] = 1, [0x05] = 2, [0x06] = 4, [0x07] = 1, [0x08] = 2, [0x09] = 4, [0x19] = 1,
                [0x1a] = 2, [0x1b] = 4, [0x1c] = 2, [0x1d] = 4, [0x1e] = 2, [0x1f] = 4};
            static const uint8_t fixed[] = {
                [0x0a] = 4, [0x0b] = 8, [0x0c] = 1, [0x0d] = 2, [0x0e] = 4,
                [0x0f] = 8, [0x10] = 1, [0x11] = 2, [0x12] = 4, [0x13] = 8,
                [0x14] = 2, [0x15] = 3, [0x16] = 5, [0x17] = 9, [0x18] = 17};
            size_t k = b - 0xc0, ls = len_size[k];
            if (ls) {
                if (n - i < ls)
                    return 0;
                uint64_t len = s_be(p + i, ls);
                i += ls;
                if (b >= 0xdc)
                    items = b >= 0xde ? 2 * len : len;
                else
                    skip = len + (b >= 0xc7 && b <= 0xc9); /* ext: the type byte */
            } else {
                skip = fixed[k];
            }
        }
        if (skip > n - i || items > n - i)
            return 0;
        i += (size_t)skip;
        pending += items - 1;
    }
    return i;
}

/*  The msgpack value at p[*off..n) into s_zone; *off moves past it. */
static bool s_unpack(const uint8_t *p, size_t n, size_t *off, msgpack_object *out)
{
    size_t end = s_msgpack_end(p, n, *off);
    if (!end)
        return false;
    msgpack_unpack_return r = msgpack_unpack((const char *)p, end, off, s_zone, out);
    return r == MSGPACK_UNPACK_SUCCESS;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint8_t mode = data[0];
    size_t tlen = (size_t)data[1] << 8 | data[2];
    data += 3, size -= 3;
    if (tlen > size)
        tlen = size;
    const char *text = (const char *)data;
    const uint8_t *rest = data + tlen;
    size_t rest_len = size - tlen;

    msgpack_zone_clear(s_zone);
    msgpack_object obj, tree;
    size_t off = 0;
    if (!s_unpack(rest, rest_len, &off, &obj)) {
        obj = (msgpack_object){.type = MSGPACK_OBJECT_MAP};
        off = 0;
    }
    tree = obj;
    if ((mode & 0x10) && off && off < rest_len && !s_unpack(rest, rest_len, &off, &tree))
        tree = obj;

    static msgpack_object wraps[260];
    if (mode & 0x20) {
        size_t levels = 200 + 20 * (size_t)(mode >> 6);
        msgpack_object inner = tree;
        for (size_t i = 0; i < levels; i++) {
            wraps[i] = inner;
            inner = (msgpack_object){.type = MSGPACK_OBJECT_ARRAY, .via.array = {1, &wraps[i]}};
        }
        tree = obj = inner;
    }

    /* The host is NUL-terminated text: the template's text up to a NUL. */
    char host[256];
    size_t hlen = tlen < sizeof host - 1 ? tlen : sizeof host - 1;
    memcpy(host, text, hlen);
    host[hlen] = '\0';

    msgpack_object values[4] = {
        {.type = MSGPACK_OBJECT_FLOAT64, .via.f64 = 21.5},
        obj,
        {.type = MSGPACK_OBJECT_NIL},
        {.type = MSGPACK_OBJECT_NEGATIVE_INTEGER, .via.i64 = -7},
    };
    const msgpack_object *a = nerve_obj_path(&obj, "a");
    if (a)
        values[2] = *a;
    static const uint8_t id[16] = {0xde, 0xad, 0xbe, 0xef, 0, 1, 2,    3,
                                   4,    5,    6,    7,    8, 9, 0xfe, 0xff};
    nerve_tmpl_ctx_t ctx = {
        .tag = "/client/load/web-1",
        .host = (mode & 2) ? host : "web-1",
        .id = id,
        .data = &obj,
        .value = &values[(mode >> 2) & 3],
        .rule = "load_avg",
    };

    msgpack_object src = {.type = MSGPACK_OBJECT_STR};
    src.via.str.ptr = tlen ? text : NULL;
    src.via.str.size = (uint32_t)tlen;
    s_compile_render(&src, &ctx);
    if (mode & 1)
        s_compile_render(&tree, &ctx);
    if (size >= 8)
        s_numbers(data + size - 8);
    return 0;
}
