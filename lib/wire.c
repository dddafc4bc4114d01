/*  wire.c — the wire protocol v1 codec: events and reactions to and from
    two ZeroMQ frames (DESIGN.md "Wire protocol v1").

    Everything that crosses a socket passes through here, so decoding is
    strict and cheap. A payload is first walked by s_scan(), a small
    allocation-free msgpack validator that tells a truncated value from
    invalid bytes and from trailing bytes, and checks that every container
    could fit in the bytes that remain. Only then does s_build() build the
    object tree msgpack_unpack() would (in one pass, without its callback
    machinery): five bytes announcing a 4-billion-entry array are refused as
    truncated instead of asking the zone for 96 GB. The payload is
    copied into a buffer the decoder owns, so `data` and `args` (whose
    strings point into the bytes they were parsed from) live exactly
    as long as the header promises — until the next decode — and not as long
    as the caller's zmq_msg_t. The copy buffer and the zone are reused by
    every decode: once the buffer has grown to the working size, a decode
    whose object tree fits the zone's first 64 KiB chunk (any ordinary
    event, ~2700 values) does not touch the heap.

    Decisions the header leaves open, fixed here:
    - Keys are msgpack str; a key of another type is an unknown key and is
      ignored, like any unknown str key.
    - A known key given twice in the payload is PAYLOAD_INVALID: the map
      has no single meaning. Inside a reaction's `event` map a duplicated
      tag/id/host is EVENT_TYPE.
    - Strings copied into C arrays (host, fn, rule, the event ref's tag and
      host) must not contain NUL; one that does is that field's *_TYPE.
    - Containers may nest 32 deep (msgpack-c's own parser limit); deeper is
      PAYLOAD_INVALID.
    - A reaction's `rule` may be absent (decoded as ""); its `event.tag`
      must be a valid tag.
    Encoders refuse (NERVE_EINVAL) anything the decoders would refuse, so
    what nerve sends, nerve accepts: tests/fuzz/fuzz_wire.c checks that
    decode → encode → decode is the identity.
*/
#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/value.h>
#include <nerve/wire.h>

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define S_DEPTH_MAX     32           /* msgpack-c's MSGPACK_EMBED_STACK_SIZE */
#define S_ZONE_CHUNK    (64u * 1024) /* kept across decodes; bigger trees allocate */
#define S_BUF_MIN       4096
#define S_RESULT_PREFIX "/nerve/result/"

#if defined(MSGPACK_EMBED_STACK_SIZE)
_Static_assert(S_DEPTH_MAX <= MSGPACK_EMBED_STACK_SIZE, "scan deeper than msgpack parses");
#endif

struct nerve_wire_decoder {
    msgpack_zone zone; /* object tree of the last decode */
    char *buf;         /* copy of the last payload; str/bin values point here */
    size_t cap;
};

static nerve_ratelimit_t s_oom_rl = NERVE_RATELIMIT_INIT(1000);

/* ------------------------------------------------------------------------
   Reason names
   ------------------------------------------------------------------------ */

static const char *const s_reason_names[] = {
    [NERVE_WIRE_OK] = "ok",
    [NERVE_WIRE_FRAME_COUNT] = "frame_count",
    [NERVE_WIRE_TAG_EMPTY] = "tag_empty",
    [NERVE_WIRE_TAG_TOO_LONG] = "tag_too_long",
    [NERVE_WIRE_TAG_NO_SLASH] = "tag_no_slash",
    [NERVE_WIRE_TAG_NUL] = "tag_nul",
    [NERVE_WIRE_TAG_UTF8] = "tag_utf8",
    [NERVE_WIRE_PAYLOAD_TOO_LARGE] = "payload_too_large",
    [NERVE_WIRE_PAYLOAD_TRUNCATED] = "payload_truncated",
    [NERVE_WIRE_PAYLOAD_INVALID] = "payload_invalid",
    [NERVE_WIRE_PAYLOAD_TRAILING] = "payload_trailing",
    [NERVE_WIRE_PAYLOAD_NOT_MAP] = "payload_not_map",
    [NERVE_WIRE_V_MISSING] = "v_missing",
    [NERVE_WIRE_V_TYPE] = "v_type",
    [NERVE_WIRE_V_UNSUPPORTED] = "v_unsupported",
    [NERVE_WIRE_ID_MISSING] = "id_missing",
    [NERVE_WIRE_ID_TYPE] = "id_type",
    [NERVE_WIRE_TS_MISSING] = "ts_missing",
    [NERVE_WIRE_TS_TYPE] = "ts_type",
    [NERVE_WIRE_HOST_MISSING] = "host_missing",
    [NERVE_WIRE_HOST_TYPE] = "host_type",
    [NERVE_WIRE_HOST_LENGTH] = "host_length",
    [NERVE_WIRE_DATA_MISSING] = "data_missing",
    [NERVE_WIRE_HOPS_TYPE] = "hops_type",
    [NERVE_WIRE_HOPS_EXCEEDED] = "hops_exceeded",
    [NERVE_WIRE_TOPIC_INVALID] = "topic_invalid",
    [NERVE_WIRE_FN_MISSING] = "fn_missing",
    [NERVE_WIRE_FN_TYPE] = "fn_type",
    [NERVE_WIRE_ARGS_MISSING] = "args_missing",
    [NERVE_WIRE_ARGS_TYPE] = "args_type",
    [NERVE_WIRE_RULE_TYPE] = "rule_type",
    [NERVE_WIRE_EVENT_MISSING] = "event_missing",
    [NERVE_WIRE_EVENT_TYPE] = "event_type",
    [NERVE_WIRE_DEADLINE_MISSING] = "deadline_missing",
    [NERVE_WIRE_DEADLINE_TYPE] = "deadline_type",
};
_Static_assert(sizeof s_reason_names / sizeof s_reason_names[0] == NERVE_WIRE_REASON_COUNT,
               "every wire reason needs a name");

const char *nerve_wire_reason_name(nerve_wire_reason_t reason)
{
    if ((unsigned)reason >= NERVE_WIRE_REASON_COUNT || !s_reason_names[reason])
        return "unknown";
    return s_reason_names[reason];
}

/* ------------------------------------------------------------------------
   Validation shared by decoding and encoding
   ------------------------------------------------------------------------ */

/*  Length of the well-formed UTF-8 sequence at p (1–4), or 0 if the bytes
    there are not one: stray continuation bytes, overlong forms, UTF-16
    surrogates (U+D800–DFFF), code points past U+10FFFF, or a sequence cut
    short by the end of the input. */
static size_t s_utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    if (c < 0xc2) /* continuation byte, or C0/C1: overlong 2-byte form */
        return 0;
    if (c < 0xe0)
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c < 0xf0) {
        uint8_t lo = c == 0xe0 ? 0xa0 : 0x80; /* E0 80–9F: overlong */
        uint8_t hi = c == 0xed ? 0x9f : 0xbf; /* ED A0–BF: surrogates */
        if (n < 3 || p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80)
            return 0;
        return 3;
    }
    if (c < 0xf5) {
        uint8_t lo = c == 0xf0 ? 0x90 : 0x80; /* F0 80–8F: overlong */
        uint8_t hi = c == 0xf4 ? 0x8f : 0xbf; /* F4 90+: past U+10FFFF */
        if (n < 4 || p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        return 4;
    }
    return 0;
}

nerve_wire_reason_t nerve_wire_check_tag(const char *tag, size_t len)
{
    if (len == 0)
        return NERVE_WIRE_TAG_EMPTY;
    if (len > NERVE_TAG_MAX)
        return NERVE_WIRE_TAG_TOO_LONG;
    if (tag[0] != '/')
        return NERVE_WIRE_TAG_NO_SLASH;
    if (memchr(tag, '\0', len))
        return NERVE_WIRE_TAG_NUL;
    const uint8_t *p = (const uint8_t *)tag;
    for (size_t i = 0; i < len;) {
        if (p[i] < 0x80) { /* tags are nearly always ASCII */
            i++;
            continue;
        }
        size_t n = s_utf8_seq(p + i, len - i);
        if (n == 0)
            return NERVE_WIRE_TAG_UTF8;
        i += n;
    }
    return NERVE_WIRE_OK;
}

/*  "@all/", "@host/<h>/" or "@group/<g>/": a non-empty name without '/'
    and the trailing '/' that keeps @host/web1/ from matching @host/web10/. */
static bool s_topic_valid(const char *topic, size_t len)
{
    if (len == 0 || len > NERVE_TOPIC_MAX || memchr(topic, '\0', len))
        return false;
    if (len == 5 && memcmp(topic, "@all/", 5) == 0)
        return true;
    size_t prefix;
    if (len > 6 && memcmp(topic, "@host/", 6) == 0)
        prefix = 6;
    else if (len > 7 && memcmp(topic, "@group/", 7) == 0)
        prefix = 7;
    else
        return false;
    const char *name = topic + prefix;
    size_t name_len = len - prefix - 1;
    return name_len > 0 && name[name_len] == '/' && !memchr(name, '/', name_len);
}

/*  Length of the C string in a fixed array of `cap` bytes, or SIZE_MAX if
    it is not NUL-terminated inside it. */
static size_t s_cstr_len(const char *s, size_t cap)
{
    size_t len = strnlen(s, cap);
    return len < cap ? len : SIZE_MAX;
}

/*  A big-endian integer of n (1 to 8) bytes. */
static uint64_t s_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/*  Walks one msgpack value at p without building it. Returns OK and the
    bytes it spans in *used, or TRUNCATED / INVALID, by the same rules as
    msgpack_unpack(). It allocates nothing and only accepts a container
    once every entry it announces has been seen, so msgpack-c, which
    allocates a container's entries up front, never runs on a count the
    bytes do not back. */
static nerve_wire_reason_t s_scan_value(const uint8_t *p, size_t len, size_t *used,
                                        size_t depth0)
{
    uint64_t stack[S_DEPTH_MAX]; /* enclosing containers' items left */
    size_t depth = depth0;       /* containers open around the value, counted */
    uint64_t left = 1; /* items left at this level, the current one included */
    size_t pos = 0;

    for (;;) {
        if (pos >= len)
            return NERVE_WIRE_PAYLOAD_TRUNCATED;
        uint8_t b = p[pos++];
        size_t field = 0;   /* bytes of the length/count field after b */
        uint64_t body = 0;  /* fixed body bytes */
        uint64_t extra = 0; /* added to a length field (ext's type byte) */
        int kind = 0;       /* 0 scalar, 1 array, 2 map, 3 length-prefixed */

        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
            ;
        else if (b <= 0x8f)
            kind = 2, body = b & 0x0f;
        else if (b <= 0x9f)
            kind = 1, body = b & 0x0f;
        else if (b <= 0xbf)
            body = b & 0x1f;
        else {
            /* clang-format off: one line per type reads as the spec's table */
            switch (b) {
            case 0xc4:
            case 0xc5:
            case 0xc6: /* bin 8/16/32 */
                kind = 3, field = (size_t)1 << (b - 0xc4);
                break;
            case 0xc7:
            case 0xc8:
            case 0xc9: /* ext 8/16/32 */
                kind = 3, field = (size_t)1 << (b - 0xc7), extra = 1;
                break;
            case 0xca:
                body = 4;
                break;
            case 0xcb:
                body = 8;
                break;
            case 0xcc:
            case 0xd0:
                body = 1;
                break;
            case 0xcd:
            case 0xd1:
                body = 2;
                break;
            case 0xce:
            case 0xd2:
                body = 4;
                break;
            case 0xcf:
            case 0xd3:
                body = 8;
                break;
            case 0xd4:
                body = 2;
                break; /* fixext: type byte + 1/2/4/8/16 */
            case 0xd5:
                body = 3;
                break;
            case 0xd6:
                body = 5;
                break;
            case 0xd7:
                body = 9;
                break;
            case 0xd8:
                body = 17;
                break;
            case 0xd9:
            case 0xda:
            case 0xdb: /* str 8/16/32 */
                kind = 3, field = (size_t)1 << (b - 0xd9);
                break;
            case 0xdc:
                kind = 1, field = 2;
                break;
            case 0xdd:
                kind = 1, field = 4;
                break;
            case 0xde:
                kind = 2, field = 2;
                break;
            case 0xdf:
                kind = 2, field = 4;
                break;
            default: /* 0xc1: never used */
                return NERVE_WIRE_PAYLOAD_INVALID;
            }
            /* clang-format on */
        }
        if (field) {
            if (len - pos < field)
                return NERVE_WIRE_PAYLOAD_TRUNCATED;
            uint64_t n = s_be(p + pos, field);
            pos += field;
            if (kind == 3)
                body = n + extra;
            else
                body = n;
        }
        if (kind == 1 || kind == 2) {
            uint64_t items = kind == 2 ? body * 2 : body;
            if (depth >= S_DEPTH_MAX)
                return NERVE_WIRE_PAYLOAD_INVALID;
            if (items > len - pos) /* each entry takes a byte: fail fast */
                return NERVE_WIRE_PAYLOAD_TRUNCATED;
            if (items > 0) {
                stack[depth++] = left;
                left = items;
                continue;
            }
        } else {
            if (body > len - pos)
                return NERVE_WIRE_PAYLOAD_TRUNCATED;
            pos += (size_t)body;
        }
        /* A value ended: close every container it completes. */
        while (--left == 0) {
            if (depth == depth0) {
                *used = pos;
                return NERVE_WIRE_OK;
            }
            left = stack[--depth];
        }
    }
}

/*  One whole value and nothing after it, nested in depth0 containers (0
    for a payload; 1 for what an encoder puts inside one). */
static nerve_wire_reason_t s_scan_in(const void *data, size_t len, size_t depth0)
{
    size_t used = 0;
    nerve_wire_reason_t reason = s_scan_value(data, len, &used, depth0);
    if (reason == NERVE_WIRE_OK && used != len)
        reason = NERVE_WIRE_PAYLOAD_TRAILING;
    return reason;
}

/*  One whole payload. */
static nerve_wire_reason_t s_scan(const void *data, size_t len)
{
    return s_scan_in(data, len, 0);
}

/*  True if o fits inside a payload's top map: the decoders parse
    S_DEPTH_MAX containers deep, the map included. */
static bool s_fits_in_payload(const msgpack_object *o)
{
    return nerve_obj_depth(o, S_DEPTH_MAX - 1) <= S_DEPTH_MAX - 1;
}

static void s_build_int(msgpack_object *o, int64_t v)
{
    if (v >= 0) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = (uint64_t)v;
    } else {
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = v;
    }
}

static void s_build_ext(msgpack_object *o, const uint8_t *p, size_t size)
{
    o->type = MSGPACK_OBJECT_EXT;
    o->via.ext.type = (int8_t)p[0];
    o->via.ext.ptr = (const char *)p + 1;
    o->via.ext.size = (uint32_t)size;
}

/*  Builds the object tree of one value at *pp, which s_scan_value() has
    accepted: every length is backed by bytes, nesting is at most
    S_DEPTH_MAX, so nothing here is checked again. The tree is the one
    msgpack_unpack() would build — the same types (a signed integer that
    is not negative is POSITIVE_INTEGER, float32 is FLOAT32 holding the
    value as a double), strings, bins and exts pointing into the bytes —
    in one pass with no callbacks, at about half msgpack-c's cost on
    event-sized payloads (tests/fuzz/fuzz_wire.c checks it against
    msgpack_unpack()). Returns false when the zone is out of memory. */
static bool s_build(const uint8_t **pp, msgpack_zone *zone, msgpack_object *o)
{
    const uint8_t *p = *pp;
    uint8_t b = *p++;
    uint32_t n = 0; /* a container's entries, or a str/bin/ext's bytes */
    int kind = 0;   /* 1 array, 2 map, 3 str, 4 bin, 5 ext */
    if (b <= 0x7f) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = b;
    } else if (b >= 0xe0) {
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = (int8_t)b;
    } else if (b <= 0x8f) {
        kind = 2, n = b & 0x0f;
    } else if (b <= 0x9f) {
        kind = 1, n = b & 0x0f;
    } else if (b <= 0xbf) {
        kind = 3, n = b & 0x1f;
    } else {
        /* clang-format off */
        switch (b) {
        case 0xc0: o->type = MSGPACK_OBJECT_NIL; break;
        case 0xc2:
        case 0xc3: o->type = MSGPACK_OBJECT_BOOLEAN; o->via.boolean = b == 0xc3; break;
        case 0xc4: kind = 4, n = p[0], p += 1; break;
        case 0xc5: kind = 4, n = (uint32_t)s_be(p, 2), p += 2; break;
        case 0xc6: kind = 4, n = (uint32_t)s_be(p, 4), p += 4; break;
        case 0xc7: kind = 5, n = p[0], p += 1; break;
        case 0xc8: kind = 5, n = (uint32_t)s_be(p, 2), p += 2; break;
        case 0xc9: kind = 5, n = (uint32_t)s_be(p, 4), p += 4; break;
        case 0xca: {
            uint32_t u = (uint32_t)s_be(p, 4);
            float f;
            memcpy(&f, &u, 4);
            o->type = MSGPACK_OBJECT_FLOAT32;
            o->via.f64 = f;
            p += 4;
            break;
        }
        case 0xcb: {
            uint64_t u = s_be(p, 8);
            o->type = MSGPACK_OBJECT_FLOAT64;
            memcpy(&o->via.f64, &u, 8);
            p += 8;
            break;
        }
        case 0xcc: o->type = MSGPACK_OBJECT_POSITIVE_INTEGER; o->via.u64 = p[0]; p += 1; break;
        case 0xcd: o->type = MSGPACK_OBJECT_POSITIVE_INTEGER; o->via.u64 = s_be(p, 2); p += 2; break;
        case 0xce: o->type = MSGPACK_OBJECT_POSITIVE_INTEGER; o->via.u64 = s_be(p, 4); p += 4; break;
        case 0xcf: o->type = MSGPACK_OBJECT_POSITIVE_INTEGER; o->via.u64 = s_be(p, 8); p += 8; break;
        case 0xd0: s_build_int(o, (int8_t)p[0]); p += 1; break;
        case 0xd1: s_build_int(o, (int16_t)s_be(p, 2)); p += 2; break;
        case 0xd2: s_build_int(o, (int32_t)s_be(p, 4)); p += 4; break;
        case 0xd3: s_build_int(o, (int64_t)s_be(p, 8)); p += 8; break;
        case 0xd4: s_build_ext(o, p, 1); p += 2; break;
        case 0xd5: s_build_ext(o, p, 2); p += 3; break;
        case 0xd6: s_build_ext(o, p, 4); p += 5; break;
        case 0xd7: s_build_ext(o, p, 8); p += 9; break;
        case 0xd8: s_build_ext(o, p, 16); p += 17; break;
        case 0xd9: kind = 3, n = p[0], p += 1; break;
        case 0xda: kind = 3, n = (uint32_t)s_be(p, 2), p += 2; break;
        case 0xdb: kind = 3, n = (uint32_t)s_be(p, 4), p += 4; break;
        case 0xdc: kind = 1, n = (uint32_t)s_be(p, 2), p += 2; break;
        case 0xdd: kind = 1, n = (uint32_t)s_be(p, 4), p += 4; break;
        case 0xde: kind = 2, n = (uint32_t)s_be(p, 2), p += 2; break;
        case 0xdf: kind = 2, n = (uint32_t)s_be(p, 4), p += 4; break;
        default: return false; /* 0xc1: s_scan_value refused it already */
        }
        /* clang-format on */
    }
    switch (kind) {
    case 1: {
        msgpack_object *items = msgpack_zone_malloc(zone, (size_t)n * sizeof *items);
        if (!items)
            return false;
        for (uint32_t i = 0; i < n; i++)
            if (!s_build(&p, zone, &items[i]))
                return false;
        o->type = MSGPACK_OBJECT_ARRAY;
        o->via.array.size = n;
        o->via.array.ptr = items;
        break;
    }
    case 2: {
        msgpack_object_kv *kv = msgpack_zone_malloc(zone, (size_t)n * sizeof *kv);
        if (!kv)
            return false;
        for (uint32_t i = 0; i < n; i++)
            if (!s_build(&p, zone, &kv[i].key) || !s_build(&p, zone, &kv[i].val))
                return false;
        o->type = MSGPACK_OBJECT_MAP;
        o->via.map.size = n;
        o->via.map.ptr = kv;
        break;
    }
    case 3:
    case 4:
        o->type = kind == 3 ? MSGPACK_OBJECT_STR : MSGPACK_OBJECT_BIN;
        o->via.str.size = n; /* str and bin share the layout */
        o->via.str.ptr = (const char *)p;
        p += n;
        break;
    case 5:
        s_build_ext(o, p, n);
        p += 1 + (size_t)n;
        break;
    default:
        break;
    }
    *pp = p;
    return true;
}

/* ------------------------------------------------------------------------
   Decoding
   ------------------------------------------------------------------------ */

nerve_wire_decoder_t *nerve_wire_decoder_new(void)
{
    nerve_wire_decoder_t *self = calloc(1, sizeof *self);
    if (!self || !msgpack_zone_init(&self->zone, S_ZONE_CHUNK)) {
        NERVE_ERROR("wire", "cannot allocate a decoder: out of memory");
        free(self);
        return NULL;
    }
    return self;
}

void nerve_wire_decoder_destroy(nerve_wire_decoder_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nerve_wire_decoder_t *self = *self_p;
    msgpack_zone_destroy(&self->zone);
    free(self->buf);
    free(self);
    *self_p = NULL;
}

/*  Validates the payload frame and unpacks it into the decoder's zone. */
static nerve_wire_reason_t s_unpack(nerve_wire_decoder_t *self, const nerve_frame_t *frame,
                                    msgpack_object *root)
{
    if (frame->size > NERVE_PAYLOAD_MAX)
        return NERVE_WIRE_PAYLOAD_TOO_LARGE;
    nerve_wire_reason_t reason = s_scan(frame->data, frame->size);
    if (reason != NERVE_WIRE_OK)
        return reason;

    if (frame->size > self->cap) {
        size_t cap = self->cap ? self->cap : S_BUF_MIN;
        while (cap < frame->size)
            cap *= 2;
        char *buf = realloc(self->buf, cap);
        if (!buf) {
            /* No reason fits "we are out of memory"; this one at least
               says the payload was more than we could take. */
            NERVE_LOG_RL(&s_oom_rl, NERVE_LOG_ERROR, "wire", "out of memory for a %zu-byte payload",
                         frame->size);
            return NERVE_WIRE_PAYLOAD_TOO_LARGE;
        }
        self->buf = buf;
        self->cap = cap;
    }
    memcpy(self->buf, frame->data, frame->size);
    msgpack_zone_clear(&self->zone);

    const uint8_t *p = (const uint8_t *)self->buf;
    if (!s_build(&p, &self->zone, root)) {
        /* s_scan accepted it, so only a failed allocation gets here (a
           zone is at most ~24 bytes per payload byte). */
        NERVE_LOG_RL(&s_oom_rl, NERVE_LOG_ERROR, "wire",
                     "out of memory building a %zu-byte payload", frame->size);
        return NERVE_WIRE_PAYLOAD_INVALID;
    }
    return root->type == MSGPACK_OBJECT_MAP ? NERVE_WIRE_OK : NERVE_WIRE_PAYLOAD_NOT_MAP;
}

nerve_wire_reason_t nerve_wire_unpack(const void *data, size_t len, msgpack_zone *zone,
                                      msgpack_object *out)
{
    if (len > NERVE_PAYLOAD_MAX)
        return NERVE_WIRE_PAYLOAD_TOO_LARGE;
    nerve_wire_reason_t reason = s_scan(data, len);
    if (reason != NERVE_WIRE_OK)
        return reason;
    const uint8_t *p = data;
    if (!s_build(&p, zone, out)) {
        NERVE_LOG_RL(&s_oom_rl, NERVE_LOG_ERROR, "wire", "out of memory building a %zu-byte value",
                     len);
        return NERVE_WIRE_PAYLOAD_INVALID;
    }
    return NERVE_WIRE_OK;
}

/*  Finds the known keys of a map: found[i] is the value of names[i], or
    NULL. Returns false if a known key appears twice. */
static bool s_collect(const msgpack_object *map, const char *const *names, size_t count,
                      const msgpack_object **found)
{
    for (size_t i = 0; i < count; i++)
        found[i] = NULL;
    for (uint32_t k = 0; k < map->via.map.size; k++) {
        const msgpack_object *key = &map->via.map.ptr[k].key;
        if (key->type != MSGPACK_OBJECT_STR)
            continue;
        for (size_t i = 0; i < count; i++) {
            size_t n = strlen(names[i]);
            if (key->via.str.size == n && memcmp(key->via.str.ptr, names[i], n) == 0) {
                if (found[i])
                    return false;
                found[i] = &map->via.map.ptr[k].val;
                break;
            }
        }
    }
    return true;
}

static bool s_is_uint(const msgpack_object *obj)
{
    return obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
}

/*  Copies a str of min..cap-1 bytes without NUL into dst. */
static bool s_copy_str(const msgpack_object *obj, char *dst, size_t cap, size_t min)
{
    if (obj->type != MSGPACK_OBJECT_STR)
        return false;
    size_t n = obj->via.str.size;
    if (n < min || n >= cap || (n && memchr(obj->via.str.ptr, '\0', n)))
        return false;
    if (n)
        memcpy(dst, obj->via.str.ptr, n);
    dst[n] = '\0';
    return true;
}

static bool s_copy_id(const msgpack_object *obj, uint8_t id[NERVE_ID_SIZE])
{
    if (obj->type != MSGPACK_OBJECT_BIN || obj->via.bin.size != NERVE_ID_SIZE)
        return false;
    memcpy(id, obj->via.bin.ptr, NERVE_ID_SIZE);
    return true;
}

static nerve_wire_reason_t s_check_version(const msgpack_object *v)
{
    if (!v)
        return NERVE_WIRE_V_MISSING;
    if (!s_is_uint(v))
        return NERVE_WIRE_V_TYPE;
    if (v->via.u64 != NERVE_WIRE_VERSION)
        return NERVE_WIRE_V_UNSUPPORTED;
    return NERVE_WIRE_OK;
}

enum { S_EV_V, S_EV_ID, S_EV_TS, S_EV_HOST, S_EV_DATA, S_EV_HOPS, S_EV_COUNT };
static const char *const s_event_keys[S_EV_COUNT] = {"v", "id", "ts", "host", "data", "hops"};

nerve_wire_reason_t nerve_wire_decode_event(nerve_wire_decoder_t *self, const nerve_frame_t *frames,
                                            size_t nframes, nerve_event_t *out)
{
    assert(self && out);
    if (nframes != 2 || !frames)
        return NERVE_WIRE_FRAME_COUNT;
    const nerve_frame_t *tag = &frames[0];
    nerve_wire_reason_t reason = nerve_wire_check_tag(tag->data, tag->size);
    if (reason != NERVE_WIRE_OK)
        return reason;

    msgpack_object root;
    if ((reason = s_unpack(self, &frames[1], &root)) != NERVE_WIRE_OK)
        return reason;
    const msgpack_object *f[S_EV_COUNT];
    if (!s_collect(&root, s_event_keys, S_EV_COUNT, f))
        return NERVE_WIRE_PAYLOAD_INVALID;

    if ((reason = s_check_version(f[S_EV_V])) != NERVE_WIRE_OK)
        return reason;
    if (!f[S_EV_ID])
        return NERVE_WIRE_ID_MISSING;
    if (!s_copy_id(f[S_EV_ID], out->id))
        return NERVE_WIRE_ID_TYPE;
    if (!f[S_EV_TS])
        return NERVE_WIRE_TS_MISSING;
    if (!s_is_uint(f[S_EV_TS]))
        return NERVE_WIRE_TS_TYPE;
    out->ts = f[S_EV_TS]->via.u64;

    const msgpack_object *host = f[S_EV_HOST];
    if (!host)
        return NERVE_WIRE_HOST_MISSING;
    if (host->type != MSGPACK_OBJECT_STR)
        return NERVE_WIRE_HOST_TYPE;
    if (host->via.str.size == 0 || host->via.str.size > NERVE_HOST_MAX)
        return NERVE_WIRE_HOST_LENGTH;
    if (!s_copy_str(host, out->host, sizeof out->host, 1))
        return NERVE_WIRE_HOST_TYPE; /* a NUL inside */

    if (!f[S_EV_DATA])
        return NERVE_WIRE_DATA_MISSING;
    out->data = *f[S_EV_DATA];
    out->data_raw = NULL;
    out->data_raw_len = 0;

    out->hops = 0;
    if (f[S_EV_HOPS]) {
        if (!s_is_uint(f[S_EV_HOPS]))
            return NERVE_WIRE_HOPS_TYPE;
        if (f[S_EV_HOPS]->via.u64 > NERVE_HOPS_MAX)
            return NERVE_WIRE_HOPS_EXCEEDED;
        out->hops = (uint32_t)f[S_EV_HOPS]->via.u64;
    }

    memcpy(out->tag, tag->data, tag->size);
    out->tag[tag->size] = '\0';
    out->tag_len = tag->size;
    return NERVE_WIRE_OK;
}

enum { S_REF_TAG, S_REF_ID, S_REF_HOST, S_REF_COUNT };
static const char *const s_ref_keys[S_REF_COUNT] = {"tag", "id", "host"};

/*  The `event` map of a reaction: {tag: str, id: bin16, host: str}. */
static bool s_decode_ref(const msgpack_object *obj, nerve_event_ref_t *ref)
{
    const msgpack_object *f[S_REF_COUNT];
    if (obj->type != MSGPACK_OBJECT_MAP || !s_collect(obj, s_ref_keys, S_REF_COUNT, f))
        return false;
    if (!f[S_REF_TAG] || !f[S_REF_ID] || !f[S_REF_HOST])
        return false;
    const msgpack_object *tag = f[S_REF_TAG];
    if (tag->type != MSGPACK_OBJECT_STR ||
        nerve_wire_check_tag(tag->via.str.ptr, tag->via.str.size) != NERVE_WIRE_OK)
        return false;
    return s_copy_str(tag, ref->tag, sizeof ref->tag, 1) && s_copy_id(f[S_REF_ID], ref->id) &&
           s_copy_str(f[S_REF_HOST], ref->host, sizeof ref->host, 1);
}

enum {
    S_RE_V,
    S_RE_ID,
    S_RE_TS,
    S_RE_FN,
    S_RE_ARGS,
    S_RE_RULE,
    S_RE_EVENT,
    S_RE_DEADLINE,
    S_RE_HOPS,
    S_RE_COUNT
};
static const char *const s_reaction_keys[S_RE_COUNT] = {
    "v", "id", "ts", "fn", "args", "rule", "event", "deadline", "hops"};

nerve_wire_reason_t nerve_wire_decode_reaction(nerve_wire_decoder_t *self,
                                               const nerve_frame_t *frames, size_t nframes,
                                               nerve_reaction_t *out)
{
    assert(self && out);
    if (nframes != 2 || !frames)
        return NERVE_WIRE_FRAME_COUNT;
    const nerve_frame_t *topic = &frames[0];
    if (!s_topic_valid(topic->data, topic->size))
        return NERVE_WIRE_TOPIC_INVALID;

    msgpack_object root;
    nerve_wire_reason_t reason = s_unpack(self, &frames[1], &root);
    if (reason != NERVE_WIRE_OK)
        return reason;
    const msgpack_object *f[S_RE_COUNT];
    if (!s_collect(&root, s_reaction_keys, S_RE_COUNT, f))
        return NERVE_WIRE_PAYLOAD_INVALID;

    if ((reason = s_check_version(f[S_RE_V])) != NERVE_WIRE_OK)
        return reason;
    if (!f[S_RE_ID])
        return NERVE_WIRE_ID_MISSING;
    if (!s_copy_id(f[S_RE_ID], out->id))
        return NERVE_WIRE_ID_TYPE;
    if (!f[S_RE_TS])
        return NERVE_WIRE_TS_MISSING;
    if (!s_is_uint(f[S_RE_TS]))
        return NERVE_WIRE_TS_TYPE;
    out->ts = f[S_RE_TS]->via.u64;

    if (!f[S_RE_FN])
        return NERVE_WIRE_FN_MISSING;
    if (!s_copy_str(f[S_RE_FN], out->fn, sizeof out->fn, 1))
        return NERVE_WIRE_FN_TYPE;
    if (!f[S_RE_ARGS])
        return NERVE_WIRE_ARGS_MISSING;
    if (f[S_RE_ARGS]->type != MSGPACK_OBJECT_MAP)
        return NERVE_WIRE_ARGS_TYPE;
    out->args = *f[S_RE_ARGS];
    out->rule[0] = '\0';
    if (f[S_RE_RULE] && !s_copy_str(f[S_RE_RULE], out->rule, sizeof out->rule, 0))
        return NERVE_WIRE_RULE_TYPE;
    if (!f[S_RE_EVENT])
        return NERVE_WIRE_EVENT_MISSING;
    if (!s_decode_ref(f[S_RE_EVENT], &out->event))
        return NERVE_WIRE_EVENT_TYPE;
    if (!f[S_RE_DEADLINE])
        return NERVE_WIRE_DEADLINE_MISSING;
    if (!s_is_uint(f[S_RE_DEADLINE]))
        return NERVE_WIRE_DEADLINE_TYPE;
    out->deadline = f[S_RE_DEADLINE]->via.u64;
    out->hops = 0;
    if (f[S_RE_HOPS]) {
        if (!s_is_uint(f[S_RE_HOPS]))
            return NERVE_WIRE_HOPS_TYPE;
        if (f[S_RE_HOPS]->via.u64 > NERVE_HOPS_MAX)
            return NERVE_WIRE_HOPS_EXCEEDED;
        out->hops = (uint32_t)f[S_RE_HOPS]->via.u64;
    }

    memcpy(out->topic, topic->data, topic->size);
    out->topic[topic->size] = '\0';
    return NERVE_WIRE_OK;
}

/* ------------------------------------------------------------------------
   Encoding
   ------------------------------------------------------------------------ */

static int s_pack_key(msgpack_packer *pk, const char *key)
{
    size_t n = strlen(key);
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, key, n);
}

static int s_pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    if (msgpack_pack_str(pk, n))
        return -1;
    return n ? msgpack_pack_str_body(pk, s, n) : 0;
}

static int s_pack_id(msgpack_packer *pk, const uint8_t id[NERVE_ID_SIZE])
{
    return msgpack_pack_bin(pk, NERVE_ID_SIZE) || msgpack_pack_bin_body(pk, id, NERVE_ID_SIZE);
}

/*  A finished payload must be one the decoders accept: within the size
    limit (the encoders check the nesting of what they embed before they
    pack it: s_fits_in_payload(), s_scan_in(…, 1)). */
static int s_finish(msgpack_sbuffer *buf, int packed)
{
    if (packed)
        return NERVE_ENOMEM;
    if (buf->size > NERVE_PAYLOAD_MAX)
        return NERVE_EINVAL;
    return NERVE_OK;
}

int nerve_wire_encode_event(const nerve_event_t *ev, msgpack_sbuffer *buf)
{
    assert(ev && buf);
    buf->size = 0;
    size_t tag_len = s_cstr_len(ev->tag, sizeof ev->tag);
    size_t host_len = s_cstr_len(ev->host, sizeof ev->host);
    if (tag_len == SIZE_MAX || nerve_wire_check_tag(ev->tag, tag_len) != NERVE_WIRE_OK)
        return NERVE_EINVAL;
    if (host_len == SIZE_MAX || host_len == 0 || ev->hops > NERVE_HOPS_MAX)
        return NERVE_EINVAL;
    if (ev->data_raw &&
        (ev->data_raw_len > NERVE_PAYLOAD_MAX || s_scan_in(ev->data_raw, ev->data_raw_len, 1)))
        return NERVE_EINVAL;
    if (!ev->data_raw && !s_fits_in_payload(&ev->data))
        return NERVE_EINVAL;

    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    int err = msgpack_pack_map(&pk, ev->hops ? 6 : 5);
    err = err || s_pack_key(&pk, "v") || msgpack_pack_uint8(&pk, NERVE_WIRE_VERSION);
    err = err || s_pack_key(&pk, "id") || s_pack_id(&pk, ev->id);
    err = err || s_pack_key(&pk, "ts") || msgpack_pack_uint64(&pk, ev->ts);
    err = err || s_pack_key(&pk, "host") || s_pack_str(&pk, ev->host, host_len);
    err = err || s_pack_key(&pk, "data");
    if (ev->data_raw)
        err = err || msgpack_sbuffer_write(buf, ev->data_raw, ev->data_raw_len);
    else
        err = err || msgpack_pack_object(&pk, ev->data);
    if (ev->hops)
        err = err || s_pack_key(&pk, "hops") || msgpack_pack_uint32(&pk, ev->hops);
    return s_finish(buf, err);
}

static bool s_ref_valid(const nerve_event_ref_t *ref)
{
    size_t tag_len = s_cstr_len(ref->tag, sizeof ref->tag);
    size_t host_len = s_cstr_len(ref->host, sizeof ref->host);
    return tag_len != SIZE_MAX && nerve_wire_check_tag(ref->tag, tag_len) == NERVE_WIRE_OK &&
           host_len != SIZE_MAX && host_len > 0;
}

/*  Direct writers into an sbuffer, for the reaction encoder: each writes
    the bytes msgpack-c's packer would and returns non-zero when out of
    memory (as the packer's calls do). */
static int s_w_raw(msgpack_sbuffer *buf, const void *p, size_t n)
{
    if (buf->alloc - buf->size < n)
        return msgpack_sbuffer_write(buf, p, n); /* grows it */
    memcpy(buf->data + buf->size, p, n);
    buf->size += n;
    return 0;
}

static int s_w_be(msgpack_sbuffer *buf, uint8_t type, uint64_t v, size_t n)
{
    uint8_t b[9];
    b[0] = type;
    for (size_t i = 0; i < n; i++)
        b[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return s_w_raw(buf, b, 1 + n);
}

static int s_w_uint(msgpack_sbuffer *buf, uint64_t v)
{
    if (v < 128) {
        uint8_t b = (uint8_t)v;
        return s_w_raw(buf, &b, 1);
    }
    if (v < 256)
        return s_w_be(buf, 0xcc, v, 1);
    if (v < 65536)
        return s_w_be(buf, 0xcd, v, 2);
    if (v <= UINT32_MAX)
        return s_w_be(buf, 0xce, v, 4);
    return s_w_be(buf, 0xcf, v, 8);
}

static int s_w_str(msgpack_sbuffer *buf, const char *s, size_t n)
{
    int err;
    if (n < 32) {
        uint8_t b = (uint8_t)(0xa0 | n);
        err = s_w_raw(buf, &b, 1);
    } else if (n < 256) {
        err = s_w_be(buf, 0xd9, n, 1);
    } else if (n < 65536) {
        err = s_w_be(buf, 0xda, n, 2);
    } else {
        err = s_w_be(buf, 0xdb, n, 4);
    }
    return err || (n ? s_w_raw(buf, s, n) : 0);
}

static int s_w_id(msgpack_sbuffer *buf, const uint8_t id[NERVE_ID_SIZE])
{
    static const uint8_t head[2] = {0xc4, NERVE_ID_SIZE}; /* bin 8 */
    return s_w_raw(buf, head, 2) || s_w_raw(buf, id, NERVE_ID_SIZE);
}

int nerve_wire_encode_reaction(const nerve_reaction_t *r, msgpack_sbuffer *buf)
{
    assert(r && buf);
    buf->size = 0;
    size_t topic_len = s_cstr_len(r->topic, sizeof r->topic);
    size_t fn_len = s_cstr_len(r->fn, sizeof r->fn);
    size_t rule_len = s_cstr_len(r->rule, sizeof r->rule);
    if (topic_len == SIZE_MAX || !s_topic_valid(r->topic, topic_len))
        return NERVE_EINVAL;
    if (fn_len == SIZE_MAX || fn_len == 0 || rule_len == SIZE_MAX)
        return NERVE_EINVAL;
    if (r->args.type != MSGPACK_OBJECT_MAP || !s_fits_in_payload(&r->args) ||
        !s_ref_valid(&r->event) || r->hops > NERVE_HOPS_MAX)
        return NERVE_EINVAL;

    /* Written straight into buf but for args: the same bytes msgpack-c's
       packer makes (minimal forms), without a callback per field. */
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    uint8_t map = (uint8_t)(0x80 | (r->hops ? 9 : 8));
    int err = s_w_raw(buf, &map, 1);
    _Static_assert(NERVE_WIRE_VERSION == 1, "the reaction encoder writes v: 1 as a literal");
    err = err || s_w_raw(buf, "\xa1v\x01", 3); /* v: NERVE_WIRE_VERSION */
    err = err || s_w_raw(buf, "\xa2id", 3) || s_w_id(buf, r->id);
    err = err || s_w_raw(buf, "\xa2" "fn", 3) || s_w_str(buf, r->fn, fn_len);
    err = err || s_w_raw(buf, "\xa4" "args", 5) || msgpack_pack_object(&pk, r->args);
    err = err || s_w_raw(buf, "\xa4rule", 5) || s_w_str(buf, r->rule, rule_len);
    err = err || s_w_raw(buf, "\xa5" "event\x83", 7); /* a map of 3 */
    err = err || s_w_raw(buf, "\xa3tag", 4) || s_w_str(buf, r->event.tag, strlen(r->event.tag));
    err = err || s_w_raw(buf, "\xa2id", 3) || s_w_id(buf, r->event.id);
    err = err || s_w_raw(buf, "\xa4host", 5) ||
          s_w_str(buf, r->event.host, strlen(r->event.host));
    err = err || s_w_raw(buf, "\xa2ts", 3) || s_w_uint(buf, r->ts);
    err = err || s_w_raw(buf, "\xa8" "deadline", 9) || s_w_uint(buf, r->deadline);
    if (r->hops)
        err = err || s_w_raw(buf, "\xa4hops", 5) || s_w_uint(buf, r->hops);
    return s_finish(buf, err);
}

/* ------------------------------------------------------------------------
   Result events
   ------------------------------------------------------------------------ */

/*  Packs (pk != NULL) or measures (pk == NULL) `src` as UTF-8 text of at
    most `cap` bytes: invalid bytes become U+FFFD, so a Python client that
    decodes str strictly can read any command's output, and truncation
    falls on a character boundary. Returns the byte count, or SIZE_MAX if
    packing failed. */
static size_t s_pack_text(msgpack_packer *pk, const char *src, size_t len, size_t cap)
{
    static const char replacement[] = "\xef\xbf\xbd";
    const uint8_t *p = (const uint8_t *)src;
    size_t out = 0, run = 0, i = 0; /* run: valid bytes not yet written */
    while (i < len) {
        size_t n = s_utf8_seq(p + i, len - i);
        size_t add = n ? n : 3;
        if (out + add > cap)
            break;
        if (n) {
            run += n;
        } else {
            if (pk && ((run && msgpack_pack_str_body(pk, p + i - run, run)) ||
                       msgpack_pack_str_body(pk, replacement, 3)))
                return SIZE_MAX;
            run = 0;
            n = 1;
        }
        out += add;
        i += n;
    }
    if (pk && run && msgpack_pack_str_body(pk, p + i - run, run))
        return SIZE_MAX;
    return out;
}

int nerve_wire_result_event(nerve_event_t *ev, msgpack_sbuffer *scratch, const char *host,
                            const uint8_t reaction_id[NERVE_ID_SIZE], const char *fn, bool ok,
                            int64_t rc, const char *output, size_t output_len, uint64_t took_us)
{
    assert(ev && scratch && reaction_id);
    scratch->size = 0;
    if (!host || !fn || (!output && output_len))
        return NERVE_EINVAL;
    size_t host_len = strlen(host);
    size_t fn_len = strlen(fn);
    size_t prefix = sizeof S_RESULT_PREFIX - 1;
    /* The host is one tag segment, and one topic name (@host/<h>/). */
    if (host_len == 0 || host_len > NERVE_HOST_MAX || prefix + host_len > NERVE_TAG_MAX ||
        strchr(host, '/') || fn_len == 0 || fn_len > NERVE_NAME_MAX)
        return NERVE_EINVAL;

    memset(ev, 0, sizeof *ev);
    memcpy(ev->tag, S_RESULT_PREFIX, prefix);
    memcpy(ev->tag + prefix, host, host_len + 1);
    ev->tag_len = prefix + host_len;
    if (nerve_wire_check_tag(ev->tag, ev->tag_len) != NERVE_WIRE_OK)
        return NERVE_EINVAL;
    memcpy(ev->host, host, host_len + 1);
    nerve_wire_new_id(ev->id);
    ev->ts = nerve_clock_wall_ns();

    msgpack_packer pk;
    msgpack_packer_init(&pk, scratch, msgpack_sbuffer_write);
    size_t text_len = s_pack_text(NULL, output, output_len, NERVE_RESULT_OUTPUT_MAX);
    int err = msgpack_pack_map(&pk, 6);
    err = err || s_pack_key(&pk, "reaction") || s_pack_id(&pk, reaction_id);
    err = err || s_pack_key(&pk, "fn") || s_pack_str(&pk, fn, fn_len);
    err = err || s_pack_key(&pk, "ok") || (ok ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk));
    err = err || s_pack_key(&pk, "rc") || msgpack_pack_int64(&pk, rc);
    err = err || s_pack_key(&pk, "output") || msgpack_pack_str(&pk, text_len) ||
          s_pack_text(&pk, output, output_len, NERVE_RESULT_OUTPUT_MAX) == SIZE_MAX;
    err = err || s_pack_key(&pk, "took_us") || msgpack_pack_uint64(&pk, took_us);
    if (err)
        return NERVE_ENOMEM;
    ev->data_raw = scratch->data;
    ev->data_raw_len = scratch->size;
    return NERVE_OK;
}

/* ------------------------------------------------------------------------
   Ids: xoshiro256** per thread, seeded from getrandom(2)

   Ids must be unique, not secret, and cheap: the manager makes one per
   reaction. A forked child would inherit its parent's generator state and
   repeat its ids, so a fork bumps a generation counter (pthread_atfork)
   and each thread reseeds when it sees a new generation.
   ------------------------------------------------------------------------ */

typedef struct {
    uint64_t s[4];
    unsigned gen; /* s_fork_gen when seeded; 0 = never */
} s_rng_t;

static _Thread_local s_rng_t s_rng;
static _Atomic unsigned s_fork_gen = 1;
static pthread_once_t s_atfork_once = PTHREAD_ONCE_INIT;
static _Atomic uint64_t s_fallback_counter;

static void s_on_fork_child(void)
{
    atomic_fetch_add(&s_fork_gen, 1);
}

static void s_register_atfork(void)
{
    pthread_atfork(NULL, NULL, s_on_fork_child);
}

static uint64_t s_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t s_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void s_rng_seed(s_rng_t *rng)
{
    pthread_once(&s_atfork_once, s_register_atfork);
    size_t got = 0;
    uint8_t *seed = (uint8_t *)rng->s;
    while (got < sizeof rng->s) {
        ssize_t n = getrandom(seed + got, sizeof rng->s - got, GRND_NONBLOCK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < sizeof rng->s) {
        /* Early boot or no getrandom: the clocks, the process, the thread
           and a counter still make a seed no other thread shares. */
        uint64_t x = nerve_clock_wall_ns() ^ nerve_clock_mono_ns() ^ ((uint64_t)getpid() << 32) ^
                     (uint64_t)(uintptr_t)rng ^ (atomic_fetch_add(&s_fallback_counter, 1) << 48);
        for (int i = 0; i < 4; i++)
            rng->s[i] ^= s_splitmix64(&x);
    }
    if (!(rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]))
        rng->s[0] = 1; /* the one state xoshiro never leaves */
    rng->gen = atomic_load(&s_fork_gen);
}

static uint64_t s_rng_next(s_rng_t *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = s_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl(s[3], 45);
    return result;
}

void nerve_wire_new_id(uint8_t id[NERVE_ID_SIZE])
{
    s_rng_t *rng = &s_rng;
    if (rng->gen != atomic_load_explicit(&s_fork_gen, memory_order_relaxed))
        s_rng_seed(rng);
    uint64_t a = s_rng_next(rng), b = s_rng_next(rng);
    memcpy(id, &a, 8);
    memcpy(id + 8, &b, 8);
}

char *nerve_wire_id_hex(const uint8_t id[NERVE_ID_SIZE], char out[33])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < NERVE_ID_SIZE; i++) {
        out[2 * i] = digits[id[i] >> 4];
        out[2 * i + 1] = digits[id[i] & 0x0f];
    }
    out[32] = '\0';
    return out;
}
