/*  fuzz_wire.c — libFuzzer target for the wire codec (lib/wire.c).

    The codec is what every remote peer talks to, so it must survive any
    bytes: no crash, no leak, no hang, no undefined behaviour, and no
    message that decodes but does not survive a round trip. One input is:

        byte 0   bit 0     0 = event decoder, 1 = reaction decoder
                 bits 1–3  frame count: 0 → 0, 1 → 1, 2 → 3 (an empty
                           third frame), anything else → 2
                 bit 4     also build a result event, with the tag bytes
                           as host and the payload as output
        byte 1   tag length L (cut to what the input holds)
        L bytes  frame 1: the tag or topic
        rest     frame 2: the payload

    What decodes is encoded again and decoded by a second decoder; the
    fields must be equal and a second encoding must give the same bytes.
    The decoded data/args tree must also equal, type for type, what
    msgpack-c's msgpack_unpack() makes of the same payload (the codec
    builds trees with its own one-pass builder).
    Tags are also checked against an independent UTF-8 reference
    (fuzz_utf8.h). Any disagreement aborts. Run with scripts/fuzz.sh;
    seeds are in corpus/wire/ (made by make_corpus.py).
*/
#include "fuzz_utf8.h"

#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/wire.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static nerve_wire_decoder_t *s_dec;  /* decodes the input */
static nerve_wire_decoder_t *s_dec2; /* decodes our re-encoding */
static msgpack_sbuffer s_enc, s_enc2, s_scratch;

static void s_require(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_wire: %s\n", what);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    nerve_log_set_level(NERVE_LOG_ERROR);
    s_dec = nerve_wire_decoder_new();
    s_dec2 = nerve_wire_decoder_new();
    s_require(s_dec && s_dec2, "decoder_new failed");
    msgpack_sbuffer_init(&s_enc);
    msgpack_sbuffer_init(&s_enc2);
    msgpack_sbuffer_init(&s_scratch);
    return 0;
}

static nerve_wire_reason_t s_ref_tag(const uint8_t *p, size_t n)
{
    if (n == 0)
        return NERVE_WIRE_TAG_EMPTY;
    if (n > NERVE_TAG_MAX)
        return NERVE_WIRE_TAG_TOO_LONG;
    if (p[0] != '/')
        return NERVE_WIRE_TAG_NO_SLASH;
    if (memchr(p, 0, n))
        return NERVE_WIRE_TAG_NUL;
    return fuzz_utf8_valid(p, n) ? NERVE_WIRE_OK : NERVE_WIRE_TAG_UTF8;
}

/*  Packs a value into buf (cleared first) to compare trees byte for byte:
    unlike msgpack_object_equal this treats NaN as equal to itself. */
static void s_pack(msgpack_sbuffer *buf, const msgpack_object *obj)
{
    msgpack_packer pk;
    buf->size = 0;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    s_require(msgpack_pack_object(&pk, *obj) == 0, "pack failed");
}

static void s_same_value(const msgpack_object *a, const msgpack_object *b, const char *what)
{
    static msgpack_sbuffer pa, pb; /* grown once, kept */
    s_pack(&pa, a);
    s_pack(&pb, b);
    s_require(pa.size == pb.size && memcmp(pa.data, pb.data, pa.size) == 0, what);
}

/*  Types equal all the way down (packing alone would not tell a
    NEGATIVE_INTEGER holding 5 from a POSITIVE_INTEGER 5). */
static bool s_same_types(const msgpack_object *a, const msgpack_object *b)
{
    if (a->type != b->type)
        return false;
    if (a->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < a->via.array.size; i++)
            if (!s_same_types(&a->via.array.ptr[i], &b->via.array.ptr[i]))
                return false;
    } else if (a->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < a->via.map.size; i++)
            if (!s_same_types(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
                !s_same_types(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
                return false;
    }
    return true;
}

/*  lib/wire.c builds object trees with its own one-pass builder; this
    checks it against msgpack-c's msgpack_unpack() on the same payload:
    the value under `key` (data or args) must be the same tree. */
static void s_same_as_msgpack(const nerve_frame_t *payload, const char *key,
                              const msgpack_object *ours)
{
    static msgpack_zone zone;
    static bool ready;
    if (!ready)
        ready = msgpack_zone_init(&zone, 64 * 1024);
    msgpack_zone_clear(&zone);
    msgpack_object root;
    size_t off = 0;
    s_require(msgpack_unpack(payload->data, payload->size, &off, &zone, &root) ==
                  MSGPACK_UNPACK_SUCCESS,
              "msgpack_unpack refuses a payload the decoder accepted");
    s_require(root.type == MSGPACK_OBJECT_MAP, "msgpack_unpack: not a map");
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < root.via.map.size; i++) {
        const msgpack_object *k = &root.via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
            memcmp(k->via.str.ptr, key, klen) == 0) {
            const msgpack_object *theirs = &root.via.map.ptr[i].val;
            s_require(s_same_types(ours, theirs), "decoder's tree differs from msgpack-c's");
            s_same_value(ours, theirs, "decoder's tree differs from msgpack-c's");
            return;
        }
    }
    s_require(false, "msgpack_unpack: key missing");
}

static void s_event(const nerve_frame_t *frames, size_t nframes)
{
    nerve_event_t ev, ev2;
    nerve_wire_reason_t r = nerve_wire_decode_event(s_dec, frames, nframes, &ev);
    s_require(strcmp(nerve_wire_reason_name(r), "unknown") != 0, "reason without a name");
    if (nframes == 2 && r != NERVE_WIRE_FRAME_COUNT) {
        nerve_wire_reason_t ref = s_ref_tag(frames[0].data, frames[0].size);
        s_require(ref == NERVE_WIRE_OK ? r == NERVE_WIRE_OK || r > NERVE_WIRE_TAG_UTF8 : r == ref,
                  "tag check disagrees with the reference");
    }
    if (r != NERVE_WIRE_OK)
        return;
    s_require(nframes == 2, "decoded with the wrong frame count");
    s_require(ev.tag_len == strlen(ev.tag) && ev.hops <= NERVE_HOPS_MAX, "bad decoded event");
    s_same_as_msgpack(&frames[1], "data", &ev.data);

    s_require(nerve_wire_encode_event(&ev, &s_enc) == NERVE_OK, "encode refused a decoded event");
    nerve_frame_t again[2] = {{ev.tag, ev.tag_len}, {s_enc.data, s_enc.size}};
    s_require(nerve_wire_decode_event(s_dec2, again, 2, &ev2) == NERVE_WIRE_OK,
              "re-encoded event does not decode");
    s_require(strcmp(ev.tag, ev2.tag) == 0 && ev.tag_len == ev2.tag_len &&
                  memcmp(ev.id, ev2.id, NERVE_ID_SIZE) == 0 && ev.ts == ev2.ts &&
                  strcmp(ev.host, ev2.host) == 0 && ev.hops == ev2.hops,
              "event fields changed in a round trip");
    s_same_value(&ev.data, &ev2.data, "event data changed in a round trip");
    s_require(nerve_wire_encode_event(&ev2, &s_enc2) == NERVE_OK && s_enc.size == s_enc2.size &&
                  memcmp(s_enc.data, s_enc2.data, s_enc.size) == 0,
              "event encoding is not a fixpoint");
}

static void s_reaction(const nerve_frame_t *frames, size_t nframes)
{
    nerve_reaction_t re, re2;
    nerve_wire_reason_t r = nerve_wire_decode_reaction(s_dec, frames, nframes, &re);
    s_require(strcmp(nerve_wire_reason_name(r), "unknown") != 0, "reason without a name");
    if (r != NERVE_WIRE_OK)
        return;
    s_require(nframes == 2, "decoded with the wrong frame count");
    s_require(re.topic[0] == '@' && re.fn[0] && re.args.type == MSGPACK_OBJECT_MAP,
              "bad decoded reaction");
    s_same_as_msgpack(&frames[1], "args", &re.args);

    s_require(nerve_wire_encode_reaction(&re, &s_enc) == NERVE_OK,
              "encode refused a decoded reaction");
    nerve_frame_t again[2] = {{re.topic, strlen(re.topic)}, {s_enc.data, s_enc.size}};
    s_require(nerve_wire_decode_reaction(s_dec2, again, 2, &re2) == NERVE_WIRE_OK,
              "re-encoded reaction does not decode");
    s_require(strcmp(re.topic, re2.topic) == 0 && memcmp(re.id, re2.id, NERVE_ID_SIZE) == 0 &&
                  strcmp(re.fn, re2.fn) == 0 && strcmp(re.rule, re2.rule) == 0 &&
                  strcmp(re.event.tag, re2.event.tag) == 0 &&
                  memcmp(re.event.id, re2.event.id, NERVE_ID_SIZE) == 0 &&
                  strcmp(re.event.host, re2.event.host) == 0 && re.ts == re2.ts &&
                  re.deadline == re2.deadline,
              "reaction fields changed in a round trip");
    s_same_value(&re.args, &re2.args, "reaction args changed in a round trip");
    s_require(nerve_wire_encode_reaction(&re2, &s_enc2) == NERVE_OK && s_enc.size == s_enc2.size &&
                  memcmp(s_enc.data, s_enc2.data, s_enc.size) == 0,
              "reaction encoding is not a fixpoint");
}

/*  Any host and output: either refused, or a result event whose output
    is valid UTF-8 within the limit. */
static void s_result(const uint8_t *host_bytes, size_t host_len, const uint8_t *out, size_t n)
{
    char host[NERVE_TAG_MAX + 1];
    memcpy(host, host_bytes, host_len); /* host_len ≤ 255 */
    host[host_len] = '\0';
    static const uint8_t rid[NERVE_ID_SIZE] = {1};
    nerve_event_t ev, back;
    int rc = nerve_wire_result_event(&ev, &s_scratch, host, rid, "reactions.cmd.run", n & 1,
                                     -(int64_t)n, (const char *)out, n, n);
    if (rc != NERVE_OK)
        return;
    s_require(nerve_wire_encode_event(&ev, &s_enc) == NERVE_OK, "result event does not encode");
    nerve_frame_t frames[2] = {{ev.tag, ev.tag_len}, {s_enc.data, s_enc.size}};
    s_require(nerve_wire_decode_event(s_dec2, frames, 2, &back) == NERVE_WIRE_OK,
              "result event does not decode");
    const msgpack_object *d = &back.data;
    s_require(d->type == MSGPACK_OBJECT_MAP && d->via.map.size == 6, "result data not a map");
    const msgpack_object *o = &d->via.map.ptr[4].val; /* "output" */
    s_require(o->type == MSGPACK_OBJECT_STR && o->via.str.size <= NERVE_RESULT_OUTPUT_MAX &&
                  fuzz_utf8_valid((const uint8_t *)o->via.str.ptr, o->via.str.size),
              "result output is not UTF-8 within the limit");
    if (fuzz_utf8_valid((const uint8_t *)out, n) && n <= NERVE_RESULT_OUTPUT_MAX)
        s_require(o->via.str.size == n && memcmp(o->via.str.ptr, out, n) == 0,
                  "valid output was changed");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0];
    size_t tag_len = data[1];
    data += 2, size -= 2;
    if (tag_len > size)
        tag_len = size;
    static const size_t counts[8] = {0, 1, 3, 2, 2, 2, 2, 2};
    size_t nframes = counts[(mode >> 1) & 7];
    nerve_frame_t frames[3] = {{data, tag_len}, {data + tag_len, size - tag_len}, {"", 0}};

    if (mode & 1)
        s_reaction(frames, nframes);
    else
        s_event(frames, nframes);
    if (mode & 0x10)
        s_result(data, tag_len, data + tag_len, size - tag_len);
    return 0;
}
