/*  test_wire.c — the wire protocol v1 codec (lib/wire.c).

    Round trips of events and reactions, the bytes a Python client would
    send, ids, result events, and one test per way a message can be
    malformed, each asserting the exact reason the manager would count it
    under. Bad payloads are built with msgpack_packer so each breaks one
    rule and keeps every other field valid.
*/
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nerve/error.h>
#include <nerve/wire.h>

/* ------------------------------------------------------------------------
   Fixture and payload builders
   ------------------------------------------------------------------------ */

typedef struct {
    nerve_wire_decoder_t *dec;
    msgpack_sbuffer buf; /* the payload under test */
    msgpack_packer pk;   /* packs into buf */
    msgpack_sbuffer out; /* encoder output */
    msgpack_zone zone;   /* for values the tests build */
} fx_t;

static int s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->dec = nerve_wire_decoder_new();
    assert_non_null(fx->dec);
    msgpack_sbuffer_init(&fx->buf);
    msgpack_sbuffer_init(&fx->out);
    msgpack_packer_init(&fx->pk, &fx->buf, msgpack_sbuffer_write);
    assert_true(msgpack_zone_init(&fx->zone, 4096));
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fx_t *fx = *state;
    nerve_wire_decoder_destroy(&fx->dec);
    nerve_wire_decoder_destroy(&fx->dec); /* safe twice */
    assert_null(fx->dec);
    msgpack_sbuffer_destroy(&fx->buf);
    msgpack_sbuffer_destroy(&fx->out);
    msgpack_zone_destroy(&fx->zone);
    free(fx);
    return 0;
}

static const uint8_t s_id[NERVE_ID_SIZE] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static void s_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void s_bin(msgpack_packer *pk, const void *p, size_t n)
{
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, p, n);
}

static void s_raw(fx_t *fx, const char *bytes, size_t n)
{
    msgpack_sbuffer_write(&fx->buf, bytes, n);
}

enum { EV_V = 1, EV_ID = 2, EV_TS = 4, EV_HOST = 8, EV_DATA = 16, EV_ALL = 31 };

/*  Starts an event payload: a map of the valid fields named in `fields`
    plus `extra` entries the caller packs next. */
static void s_event_begin(fx_t *fx, unsigned fields, size_t extra)
{
    msgpack_packer *pk = &fx->pk;
    fx->buf.size = 0;
    size_t n = extra;
    for (unsigned f = fields; f; f &= f - 1)
        n++;
    msgpack_pack_map(pk, n);
    if (fields & EV_V)
        s_str(pk, "v"), msgpack_pack_uint8(pk, 1);
    if (fields & EV_ID)
        s_str(pk, "id"), s_bin(pk, s_id, 16);
    if (fields & EV_TS)
        s_str(pk, "ts"), msgpack_pack_uint64(pk, 1700000000123456789ull);
    if (fields & EV_HOST)
        s_str(pk, "host"), s_str(pk, "web1");
    if (fields & EV_DATA) {
        s_str(pk, "data");
        msgpack_pack_map(pk, 1);
        s_str(pk, "value");
        msgpack_pack_double(pk, 1.5);
    }
}

enum {
    RE_V = 1,
    RE_ID = 2,
    RE_TS = 4,
    RE_FN = 8,
    RE_ARGS = 16,
    RE_RULE = 32,
    RE_EVENT = 64,
    RE_DEADLINE = 128,
    RE_ALL = 255
};

static void s_event_ref(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 3);
    s_str(pk, "tag"), s_str(pk, "/client/load/web1");
    s_str(pk, "id"), s_bin(pk, s_id, 16);
    s_str(pk, "host"), s_str(pk, "web1");
}

static void s_reaction_begin(fx_t *fx, unsigned fields, size_t extra)
{
    msgpack_packer *pk = &fx->pk;
    fx->buf.size = 0;
    size_t n = extra;
    for (unsigned f = fields; f; f &= f - 1)
        n++;
    msgpack_pack_map(pk, n);
    if (fields & RE_V)
        s_str(pk, "v"), msgpack_pack_uint8(pk, 1);
    if (fields & RE_ID)
        s_str(pk, "id"), s_bin(pk, s_id, 16);
    if (fields & RE_TS)
        s_str(pk, "ts"), msgpack_pack_uint64(pk, 5);
    if (fields & RE_FN)
        s_str(pk, "fn"), s_str(pk, "reactions.cmd.run");
    if (fields & RE_ARGS) {
        s_str(pk, "args");
        msgpack_pack_map(pk, 1);
        s_str(pk, "cmd"), s_str(pk, "uptime");
    }
    if (fields & RE_RULE)
        s_str(pk, "rule"), s_str(pk, "load_avg");
    if (fields & RE_EVENT)
        s_str(pk, "event"), s_event_ref(pk);
    if (fields & RE_DEADLINE)
        s_str(pk, "deadline"), msgpack_pack_uint64(pk, 6);
}

static nerve_wire_reason_t s_decode_event_tag(fx_t *fx, const char *tag, size_t tag_len,
                                              nerve_event_t *ev)
{
    nerve_frame_t frames[2] = {{tag, tag_len}, {fx->buf.data, fx->buf.size}};
    return nerve_wire_decode_event(fx->dec, frames, 2, ev);
}

static nerve_wire_reason_t s_decode_event(fx_t *fx, nerve_event_t *ev)
{
    return s_decode_event_tag(fx, "/client/load", 12, ev);
}

static nerve_wire_reason_t s_decode_reaction_topic(fx_t *fx, const char *topic, size_t len,
                                                   nerve_reaction_t *r)
{
    nerve_frame_t frames[2] = {{topic, len}, {fx->buf.data, fx->buf.size}};
    return nerve_wire_decode_reaction(fx->dec, frames, 2, r);
}

static nerve_wire_reason_t s_decode_reaction(fx_t *fx, nerve_reaction_t *r)
{
    return s_decode_reaction_topic(fx, "@host/web1/", 11, r);
}

/*  Packs a payload of the valid fields except those in `omit`, plus one
    entry: `key` and the value the remaining arguments pack. */
#define EVENT_WITH(fx, omit, key, ...)                                                             \
    do {                                                                                           \
        s_event_begin((fx), EV_ALL & ~(unsigned)(omit), 1);                                        \
        s_str(&(fx)->pk, (key));                                                                   \
        __VA_ARGS__;                                                                               \
    } while (0)

#define REACTION_WITH(fx, omit, key, ...)                                                          \
    do {                                                                                           \
        s_reaction_begin((fx), RE_ALL & ~(unsigned)(omit), 1);                                     \
        s_str(&(fx)->pk, (key));                                                                   \
        __VA_ARGS__;                                                                               \
    } while (0)

/*  An encoder-side value: a map {key: str}. */
static msgpack_object s_map1(fx_t *fx, const char *key, const char *val)
{
    msgpack_object_kv *kv = msgpack_zone_malloc(&fx->zone, sizeof *kv);
    assert_non_null(kv);
    kv->key.type = MSGPACK_OBJECT_STR;
    kv->key.via.str.ptr = key;
    kv->key.via.str.size = (uint32_t)strlen(key);
    kv->val.type = MSGPACK_OBJECT_STR;
    kv->val.via.str.ptr = val;
    kv->val.via.str.size = (uint32_t)strlen(val);
    msgpack_object m = {.type = MSGPACK_OBJECT_MAP};
    m.via.map.size = 1;
    m.via.map.ptr = kv;
    return m;
}

/*  Unpacks fx->buf into fx->zone (a value to hand to the encoder). */
static msgpack_object s_unpacked(fx_t *fx)
{
    msgpack_object obj;
    size_t off = 0;
    assert_int_equal(msgpack_unpack(fx->buf.data, fx->buf.size, &off, &fx->zone, &obj),
                     MSGPACK_UNPACK_SUCCESS);
    return obj;
}

static void s_valid_event(nerve_event_t *ev)
{
    memset(ev, 0, sizeof *ev);
    strcpy(ev->tag, "/client/load/web1");
    ev->tag_len = strlen(ev->tag);
    memcpy(ev->id, s_id, 16);
    ev->ts = 1700000000123456789ull;
    strcpy(ev->host, "web1");
}

static void s_valid_reaction(fx_t *fx, nerve_reaction_t *r)
{
    memset(r, 0, sizeof *r);
    strcpy(r->topic, "@host/web1/");
    memset(r->id, 0, 16);
    strcpy(r->fn, "reactions.cmd.run");
    r->args = s_map1(fx, "cmd", "uptime");
    strcpy(r->rule, "load_avg");
    strcpy(r->event.tag, "/client/load/web1");
    memcpy(r->event.id, s_id, 16);
    strcpy(r->event.host, "web1");
    r->ts = 5;
    r->deadline = 6;
}

/*  Encodes ev, then decodes the result into *back. */
static void s_event_round_trip(fx_t *fx, const nerve_event_t *ev, nerve_event_t *back)
{
    assert_int_equal(nerve_wire_encode_event(ev, &fx->out), NERVE_OK);
    nerve_frame_t frames[2] = {{ev->tag, strlen(ev->tag)}, {fx->out.data, fx->out.size}};
    memset(back, 0xa5, sizeof *back);
    assert_int_equal(nerve_wire_decode_event(fx->dec, frames, 2, back), NERVE_WIRE_OK);
    assert_string_equal(back->tag, ev->tag);
    assert_int_equal(back->tag_len, strlen(ev->tag));
    assert_memory_equal(back->id, ev->id, 16);
    assert_true(back->ts == ev->ts);
    assert_string_equal(back->host, ev->host);
    assert_int_equal(back->hops, ev->hops);
    assert_null(back->data_raw);
}

static void s_reaction_round_trip(fx_t *fx, const nerve_reaction_t *r, nerve_reaction_t *back)
{
    assert_int_equal(nerve_wire_encode_reaction(r, &fx->out), NERVE_OK);
    nerve_frame_t frames[2] = {{r->topic, strlen(r->topic)}, {fx->out.data, fx->out.size}};
    memset(back, 0xa5, sizeof *back);
    assert_int_equal(nerve_wire_decode_reaction(fx->dec, frames, 2, back), NERVE_WIRE_OK);
    assert_string_equal(back->topic, r->topic);
    assert_memory_equal(back->id, r->id, 16);
    assert_string_equal(back->fn, r->fn);
    assert_true(msgpack_object_equal(back->args, r->args));
    assert_string_equal(back->rule, r->rule);
    assert_string_equal(back->event.tag, r->event.tag);
    assert_memory_equal(back->event.id, r->event.id, 16);
    assert_string_equal(back->event.host, r->event.host);
    assert_true(back->ts == r->ts);
    assert_true(back->deadline == r->deadline);
    assert_int_equal(back->hops, r->hops);
}

static char *s_hex(const void *p, size_t n)
{
    char *s = malloc(2 * n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        sprintf(s + 2 * i, "%02x", ((const uint8_t *)p)[i]);
    return s;
}

/* ------------------------------------------------------------------------
   Round trips
   ------------------------------------------------------------------------ */

static void test_event_round_trip_keeps_every_field(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev, back;
    s_valid_event(&ev);
    ev.hops = 3;
    ev.data = s_map1(fx, "state", "up");
    s_event_round_trip(fx, &ev, &back);
    assert_int_equal(back.hops, 3);
    assert_int_equal(back.data.type, MSGPACK_OBJECT_MAP);
    assert_true(msgpack_object_equal(back.data, ev.data));
}

static void test_event_round_trip_data_number_string_and_nil(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev, back;
    s_valid_event(&ev);

    ev.data.type = MSGPACK_OBJECT_FLOAT64;
    ev.data.via.f64 = 42.25;
    s_event_round_trip(fx, &ev, &back);
    assert_int_equal(back.data.type, MSGPACK_OBJECT_FLOAT64);
    assert_true(back.data.via.f64 == 42.25);

    ev.data.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    ev.data.via.i64 = -7;
    s_event_round_trip(fx, &ev, &back);
    assert_int_equal(back.data.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal(back.data.via.i64, -7);

    ev.data.type = MSGPACK_OBJECT_STR;
    ev.data.via.str.ptr = "hello";
    ev.data.via.str.size = 5;
    s_event_round_trip(fx, &ev, &back);
    assert_int_equal(back.data.type, MSGPACK_OBJECT_STR);
    assert_int_equal(back.data.via.str.size, 5);
    assert_memory_equal(back.data.via.str.ptr, "hello", 5);

    memset(&ev.data, 0, sizeof ev.data); /* NIL */
    s_event_round_trip(fx, &ev, &back);
    assert_int_equal(back.data.type, MSGPACK_OBJECT_NIL);
}

static void test_event_round_trip_nested_data(void **state)
{
    fx_t *fx = *state;
    /* {"value": 3, "disks": [{"mount": "/", "free": 0.5}, true], "bin": b"\0\1"} */
    fx->buf.size = 0;
    msgpack_pack_map(&fx->pk, 3);
    s_str(&fx->pk, "value"), msgpack_pack_uint8(&fx->pk, 3);
    s_str(&fx->pk, "disks"), msgpack_pack_array(&fx->pk, 2);
    msgpack_pack_map(&fx->pk, 2);
    s_str(&fx->pk, "mount"), s_str(&fx->pk, "/");
    s_str(&fx->pk, "free"), msgpack_pack_double(&fx->pk, 0.5);
    msgpack_pack_true(&fx->pk);
    s_str(&fx->pk, "bin"), s_bin(&fx->pk, "\0\1", 2);

    nerve_event_t ev, back;
    s_valid_event(&ev);
    ev.data = s_unpacked(fx);
    s_event_round_trip(fx, &ev, &back);
    assert_true(msgpack_object_equal(back.data, ev.data));
    const msgpack_object *disks = &back.data.via.map.ptr[1].val;
    assert_int_equal(disks->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(disks->via.array.size, 2);
    assert_int_equal(disks->via.array.ptr[1].type, MSGPACK_OBJECT_BOOLEAN);
}

static void test_event_round_trip_data_raw_is_written_verbatim(void **state)
{
    fx_t *fx = *state;
    fx->buf.size = 0;
    msgpack_pack_map(&fx->pk, 1);
    s_str(&fx->pk, "value"), msgpack_pack_int64(&fx->pk, -12345678);

    nerve_event_t ev, back;
    s_valid_event(&ev);
    ev.data_raw = fx->buf.data;
    ev.data_raw_len = fx->buf.size;
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_OK);
    /* The raw bytes sit right after the "data" key, unchanged. */
    static const char data_key[] = {(char)0xa4, 'd', 'a', 't', 'a'};
    assert_non_null(memmem(fx->out.data, fx->out.size, data_key, sizeof data_key));
    assert_non_null(memmem(fx->out.data, fx->out.size, fx->buf.data, fx->buf.size));

    s_event_round_trip(fx, &ev, &back);
    assert_int_equal(back.data.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(back.data.via.map.ptr[0].val.via.i64, -12345678);
}

static void test_event_without_hops_omits_the_key_and_decodes_zero(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev, back;
    s_valid_event(&ev);
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_OK);
    assert_null(memmem(fx->out.data, fx->out.size, "hops", 4));
    s_event_round_trip(fx, &ev, &back);
    assert_int_equal(back.hops, 0);
}

static void test_event_hops_at_max_is_accepted(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    EVENT_WITH(fx, 0, "hops", msgpack_pack_uint8(&fx->pk, NERVE_HOPS_MAX));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_OK);
    assert_int_equal(ev.hops, NERVE_HOPS_MAX);
}

static void test_reaction_round_trip_keeps_every_field_for_each_topic_kind(void **state)
{
    fx_t *fx = *state;
    static const char *const topics[] = {"@all/", "@host/web1/", "@group/db/"};
    for (size_t i = 0; i < 3; i++) {
        nerve_reaction_t r, back;
        s_valid_reaction(fx, &r);
        strcpy(r.topic, topics[i]);
        nerve_wire_new_id(r.id);
        r.ts = 1700000000000000000ull + i;
        r.deadline = r.ts + 60000000000ull;
        s_reaction_round_trip(fx, &r, &back);
        assert_int_equal(back.args.type, MSGPACK_OBJECT_MAP);
        assert_int_equal(back.args.via.map.size, 1);
    }
}

static void test_reaction_hops_round_trip_and_past_eight_are_refused(void **state)
{
    fx_t *fx = *state;
    nerve_reaction_t r, back;
    s_valid_reaction(fx, &r);
    r.hops = 8;
    s_reaction_round_trip(fx, &r, &back);
    r.hops = 0; /* absent on the wire: decodes as 0 */
    s_reaction_round_trip(fx, &r, &back);
    r.hops = 9;
    assert_int_equal(nerve_wire_encode_reaction(&r, &fx->out), NERVE_EINVAL);
}

static void test_reaction_with_empty_rule_round_trips(void **state)
{
    fx_t *fx = *state;
    nerve_reaction_t r, back;
    s_valid_reaction(fx, &r);
    r.rule[0] = '\0';
    s_reaction_round_trip(fx, &r, &back);
    assert_string_equal(back.rule, "");
}

static void test_reaction_without_rule_key_decodes_empty_rule(void **state)
{
    fx_t *fx = *state;
    nerve_reaction_t r;
    s_reaction_begin(fx, RE_ALL & ~RE_RULE, 0);
    memset(r.rule, 'x', sizeof r.rule);
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_OK);
    assert_string_equal(r.rule, "");
    assert_string_equal(r.fn, "reactions.cmd.run");
    assert_string_equal(r.topic, "@host/web1/");
}

static void test_event_encoding_matches_python_msgpack_bytes(void **state)
{
    fx_t *fx = *state;
    /* msgpack.packb({'v': 1, 'id': bytes(range(16)), 'ts': 1700000000123456789,
                      'host': 'web1', 'data': {'value': 1.5}, 'hops': 2}) */
    static const char python[] =
        "86a17601a26964c410000102030405060708090a0b0c0d0e0fa27473cf17979cfe3d85cd15a4686f7374"
        "a477656231a46461746181a576616c7565cb3ff8000000000000a4686f707302";
    fx->buf.size = 0;
    msgpack_pack_map(&fx->pk, 1);
    s_str(&fx->pk, "value"), msgpack_pack_double(&fx->pk, 1.5);
    nerve_event_t ev;
    s_valid_event(&ev);
    ev.data = s_unpacked(fx);
    ev.hops = 2;
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_OK);
    char *hex = s_hex(fx->out.data, fx->out.size);
    assert_string_equal(hex, python);
    free(hex);
}

static void test_reaction_encoding_matches_python_msgpack_bytes(void **state)
{
    fx_t *fx = *state;
    /* msgpack.packb({'v': 1, 'id': bytes(16), 'fn': 'reactions.cmd.run',
         'args': {'cmd': 'uptime'}, 'rule': 'load_avg', 'event': {'tag':
         '/client/load/web1', 'id': bytes(range(16)), 'host': 'web1'},
         'ts': 5, 'deadline': 6}) */
    static const char python[] =
        "88a17601a26964c41000000000000000000000000000000000a2666eb17265616374696f6e732e636d"
        "642e72756ea46172677381a3636d64a6757074696d65a472756c65a86c6f61645f617667a56576656e"
        "7483a3746167b12f636c69656e742f6c6f61642f77656231a26964c410000102030405060708090a0b"
        "0c0d0e0fa4686f7374a477656231a2747305a8646561646c696e6506";
    nerve_reaction_t r;
    s_valid_reaction(fx, &r);
    assert_int_equal(nerve_wire_encode_reaction(&r, &fx->out), NERVE_OK);
    char *hex = s_hex(fx->out.data, fx->out.size);
    assert_string_equal(hex, python);
    free(hex);
}

/*  What a Python client sees: msgpack.unpackb(payload) is a dict with str
    keys v, id, ts, host, data and the values sent. Walked here with plain
    msgpack_unpack, no nerve code involved. */
static void test_encoded_event_unpacks_to_the_same_plain_map(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_valid_event(&ev);
    ev.data.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    ev.data.via.u64 = 99;
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_OK);

    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object root;
    size_t off = 0;
    assert_int_equal(msgpack_unpack(fx->out.data, fx->out.size, &off, &zone, &root),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, fx->out.size);
    assert_int_equal(root.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(root.via.map.size, 5);
    static const char *const keys[] = {"v", "id", "ts", "host", "data"};
    for (uint32_t i = 0; i < 5; i++) {
        const msgpack_object_kv *kv = &root.via.map.ptr[i];
        assert_int_equal(kv->key.type, MSGPACK_OBJECT_STR); /* str, not bin: Python str */
        assert_int_equal(kv->key.via.str.size, strlen(keys[i]));
        assert_memory_equal(kv->key.via.str.ptr, keys[i], strlen(keys[i]));
    }
    const msgpack_object_kv *kv = root.via.map.ptr;
    assert_int_equal(kv[0].val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(kv[0].val.via.u64, 1);
    assert_int_equal(kv[1].val.type, MSGPACK_OBJECT_BIN);
    assert_int_equal(kv[1].val.via.bin.size, 16);
    assert_memory_equal(kv[1].val.via.bin.ptr, s_id, 16);
    assert_int_equal(kv[2].val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_true(kv[2].val.via.u64 == 1700000000123456789ull);
    assert_int_equal(kv[3].val.type, MSGPACK_OBJECT_STR);
    assert_int_equal(kv[3].val.via.str.size, 4);
    assert_memory_equal(kv[3].val.via.str.ptr, "web1", 4);
    assert_int_equal(kv[4].val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(kv[4].val.via.u64, 99);
    msgpack_zone_destroy(&zone);
}

static void test_decoded_data_outlives_the_payload_frame(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_event_begin(fx, EV_ALL & ~EV_DATA, 1);
    s_str(&fx->pk, "data"), s_str(&fx->pk, "kept");
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_OK);
    memset(fx->buf.data, 0, fx->buf.size); /* the caller closes its zmq_msg_t */
    assert_int_equal(ev.data.type, MSGPACK_OBJECT_STR);
    assert_int_equal(ev.data.via.str.size, 4);
    assert_memory_equal(ev.data.via.str.ptr, "kept", 4);
}

static void test_decoder_reuses_its_memory_for_each_decode(void **state)
{
    fx_t *fx = *state;
    nerve_event_t a, b;
    s_event_begin(fx, EV_ALL, 0);
    assert_int_equal(s_decode_event(fx, &a), NERVE_WIRE_OK);
    for (int i = 0; i < 100; i++)
        assert_int_equal(s_decode_event(fx, &b), NERVE_WIRE_OK);
    /* Same message, same addresses: the zone and copy buffer are reused. */
    assert_ptr_equal(a.data.via.map.ptr, b.data.via.map.ptr);
    assert_ptr_equal(a.data.via.map.ptr[0].key.via.str.ptr, b.data.via.map.ptr[0].key.via.str.ptr);
}

static void test_unknown_and_non_str_keys_are_ignored(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_event_begin(fx, EV_ALL, 3);
    s_str(&fx->pk, "future"), msgpack_pack_array(&fx->pk, 0);
    msgpack_pack_uint8(&fx->pk, 7), msgpack_pack_nil(&fx->pk);
    s_bin(&fx->pk, "v", 1), s_str(&fx->pk, "not the version");
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_OK);
    assert_string_equal(ev.host, "web1");

    nerve_reaction_t r;
    REACTION_WITH(fx, 0, "priority", msgpack_pack_uint8(&fx->pk, 1));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_OK);
}

static void test_signed_encoding_of_small_uint_is_accepted(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    /* Some encoders write 1 as int8 (d0 01); it is still the number 1. */
    s_event_begin(fx, EV_ALL & ~EV_V, 1);
    s_str(&fx->pk, "v");
    s_raw(fx, "\xd0\x01", 2);
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_OK);
}

static void test_tag_of_255_bytes_and_multibyte_tags_are_accepted(void **state)
{
    char tag[NERVE_TAG_MAX];
    tag[0] = '/';
    memset(tag + 1, 'a', sizeof tag - 1);
    assert_int_equal(nerve_wire_check_tag(tag, sizeof tag), NERVE_WIRE_OK);
    const char *utf8 = "/caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac/\xf0\x9f\x98\x80/\xef\xbf\xbd";
    assert_int_equal(nerve_wire_check_tag(utf8, strlen(utf8)), NERVE_WIRE_OK);
    assert_int_equal(nerve_wire_check_tag("/", 1), NERVE_WIRE_OK);

    fx_t *fx = *state;
    nerve_event_t ev;
    s_event_begin(fx, EV_ALL, 0);
    assert_int_equal(s_decode_event_tag(fx, tag, sizeof tag, &ev), NERVE_WIRE_OK);
    assert_int_equal(ev.tag_len, NERVE_TAG_MAX);
    assert_int_equal(strlen(ev.tag), NERVE_TAG_MAX);
}

static void test_payload_of_exactly_max_size_is_accepted(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_event_begin(fx, EV_ALL & ~EV_DATA, 1);
    s_str(&fx->pk, "data");
    size_t head = fx->buf.size + 5; /* str 32 header */
    size_t n = NERVE_PAYLOAD_MAX - head;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, 'x', n);
    msgpack_pack_str(&fx->pk, n);
    msgpack_pack_str_body(&fx->pk, big, n);
    free(big);
    assert_int_equal(fx->buf.size, NERVE_PAYLOAD_MAX);
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_OK);
    assert_int_equal(ev.data.via.str.size, n);
}

static void test_nesting_32_containers_deep_is_accepted(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    /* The payload map plus 31 nested arrays. */
    s_event_begin(fx, EV_ALL & ~EV_DATA, 1);
    s_str(&fx->pk, "data");
    for (int i = 0; i < 30; i++)
        msgpack_pack_array(&fx->pk, 1);
    msgpack_pack_array(&fx->pk, 0);
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_OK);
    /* And it encodes again. */
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_OK);
}

/* ------------------------------------------------------------------------
   Malformed events: one test per reason
   ------------------------------------------------------------------------ */

static void test_event_with_wrong_frame_count_is_frame_count(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_event_begin(fx, EV_ALL, 0);
    nerve_frame_t frames[3] = {{"/a", 2}, {fx->buf.data, fx->buf.size}, {"", 0}};
    assert_int_equal(nerve_wire_decode_event(fx->dec, frames, 2, &ev), NERVE_WIRE_OK);
    assert_int_equal(nerve_wire_decode_event(fx->dec, frames, 0, &ev), NERVE_WIRE_FRAME_COUNT);
    assert_int_equal(nerve_wire_decode_event(fx->dec, frames, 1, &ev), NERVE_WIRE_FRAME_COUNT);
    assert_int_equal(nerve_wire_decode_event(fx->dec, frames, 3, &ev), NERVE_WIRE_FRAME_COUNT);
    assert_int_equal(nerve_wire_decode_event(fx->dec, NULL, 2, &ev), NERVE_WIRE_FRAME_COUNT);
}

static void test_event_with_empty_tag_is_tag_empty(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_event_begin(fx, EV_ALL, 0);
    assert_int_equal(s_decode_event_tag(fx, "", 0, &ev), NERVE_WIRE_TAG_EMPTY);
    assert_int_equal(s_decode_event_tag(fx, NULL, 0, &ev), NERVE_WIRE_TAG_EMPTY);
}

static void test_event_with_256_byte_tag_is_tag_too_long(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    char tag[NERVE_TAG_MAX + 1];
    tag[0] = '/';
    memset(tag + 1, 'a', sizeof tag - 1);
    s_event_begin(fx, EV_ALL, 0);
    assert_int_equal(s_decode_event_tag(fx, tag, sizeof tag, &ev), NERVE_WIRE_TAG_TOO_LONG);
}

static void test_event_with_tag_not_starting_with_slash_is_tag_no_slash(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_event_begin(fx, EV_ALL, 0);
    assert_int_equal(s_decode_event_tag(fx, "client/load", 11, &ev), NERVE_WIRE_TAG_NO_SLASH);
    assert_int_equal(s_decode_event_tag(fx, "@all/", 5, &ev), NERVE_WIRE_TAG_NO_SLASH);
}

static void test_event_with_nul_in_tag_is_tag_nul(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_event_begin(fx, EV_ALL, 0);
    assert_int_equal(s_decode_event_tag(fx, "/client\0/load", 13, &ev), NERVE_WIRE_TAG_NUL);
    assert_int_equal(s_decode_event_tag(fx, "/client\0", 8, &ev), NERVE_WIRE_TAG_NUL);
}

static void test_event_with_invalid_utf8_tag_is_tag_utf8(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_event_begin(fx, EV_ALL, 0);
    assert_int_equal(s_decode_event_tag(fx, "/a\xff", 3, &ev), NERVE_WIRE_TAG_UTF8);
}

static void test_tag_utf8_rejects_overlongs(void **state)
{
    /* "/" written in two and three bytes, and U+FFFF in four. */
    assert_int_equal(nerve_wire_check_tag("/\xc0\xaf", 3), NERVE_WIRE_TAG_UTF8);
    assert_int_equal(nerve_wire_check_tag("/\xc1\xbf", 3), NERVE_WIRE_TAG_UTF8);
    assert_int_equal(nerve_wire_check_tag("/\xe0\x80\xaf", 4), NERVE_WIRE_TAG_UTF8);
    assert_int_equal(nerve_wire_check_tag("/\xf0\x8f\xbf\xbf", 5), NERVE_WIRE_TAG_UTF8);
}

static void test_tag_utf8_rejects_surrogates(void **state)
{
    assert_int_equal(nerve_wire_check_tag("/\xed\xa0\x80", 4), NERVE_WIRE_TAG_UTF8);
    assert_int_equal(nerve_wire_check_tag("/\xed\xbf\xbf", 4), NERVE_WIRE_TAG_UTF8);
    assert_int_equal(nerve_wire_check_tag("/\xed\x9f\xbf", 4), NERVE_WIRE_OK); /* U+D7FF */
}

static void test_tag_utf8_rejects_truncated_sequences_and_stray_continuations(void **state)
{
    assert_int_equal(nerve_wire_check_tag("/\xc3", 2), NERVE_WIRE_TAG_UTF8);
    assert_int_equal(nerve_wire_check_tag("/\xe6\x97", 3), NERVE_WIRE_TAG_UTF8);
    assert_int_equal(nerve_wire_check_tag("/\xf0\x9f\x98", 4), NERVE_WIRE_TAG_UTF8);
    assert_int_equal(nerve_wire_check_tag("/\x80", 2), NERVE_WIRE_TAG_UTF8);
    assert_int_equal(nerve_wire_check_tag("/\xc3\x28", 3), NERVE_WIRE_TAG_UTF8);
}

static void test_tag_utf8_rejects_code_points_past_u10ffff(void **state)
{
    assert_int_equal(nerve_wire_check_tag("/\xf4\x90\x80\x80", 5), NERVE_WIRE_TAG_UTF8);
    assert_int_equal(nerve_wire_check_tag("/\xf5\x80\x80\x80", 5), NERVE_WIRE_TAG_UTF8);
    assert_int_equal(nerve_wire_check_tag("/\xf4\x8f\xbf\xbf", 5), NERVE_WIRE_OK);
}

static void test_event_payload_over_max_is_payload_too_large(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    char *big = calloc(1, NERVE_PAYLOAD_MAX + 1);
    assert_non_null(big);
    nerve_frame_t frames[2] = {{"/a", 2}, {big, NERVE_PAYLOAD_MAX + 1}};
    assert_int_equal(nerve_wire_decode_event(fx->dec, frames, 2, &ev),
                     NERVE_WIRE_PAYLOAD_TOO_LARGE);
    free(big);
}

static void test_event_payload_cut_short_is_payload_truncated(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_event_begin(fx, EV_ALL, 0);
    size_t full = fx->buf.size;
    for (size_t n = 0; n < full; n++) {
        fx->buf.size = n;
        assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_PAYLOAD_TRUNCATED);
    }
}

static void test_event_with_huge_container_count_is_truncated_without_allocating(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    /* Five bytes claiming 4 billion entries: refused before msgpack-c
       would ask for ~100 GB (ASan would abort this test if it did). */
    s_event_begin(fx, EV_ALL & ~EV_DATA, 1);
    s_str(&fx->pk, "data");
    s_raw(fx, "\xdd\xff\xff\xff\xff", 5);
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_PAYLOAD_TRUNCATED);
    fx->buf.size = 0;
    s_raw(fx, "\xdf\xff\xff\xff\xff", 5);
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_PAYLOAD_TRUNCATED);
    fx->buf.size = 0;
    s_raw(fx, "\xdb\xff\xff\xff\xff", 5); /* str 32 */
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_PAYLOAD_TRUNCATED);
}

static void test_event_payload_with_never_used_byte_is_payload_invalid(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_event_begin(fx, EV_ALL & ~EV_DATA, 1);
    s_str(&fx->pk, "data");
    s_raw(fx, "\xc1", 1);
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_PAYLOAD_INVALID);
}

static void test_event_payload_nested_33_deep_is_payload_invalid(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_event_begin(fx, EV_ALL & ~EV_DATA, 1);
    s_str(&fx->pk, "data");
    for (int i = 0; i < 31; i++)
        msgpack_pack_array(&fx->pk, 1);
    msgpack_pack_array(&fx->pk, 0);
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_PAYLOAD_INVALID);
}

static void test_event_payload_with_trailing_bytes_is_payload_trailing(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_event_begin(fx, EV_ALL, 0);
    msgpack_pack_nil(&fx->pk);
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_PAYLOAD_TRAILING);
}

static void test_event_payload_not_a_map_is_payload_not_map(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    fx->buf.size = 0;
    msgpack_pack_array(&fx->pk, 2);
    s_str(&fx->pk, "v"), msgpack_pack_uint8(&fx->pk, 1);
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_PAYLOAD_NOT_MAP);
    fx->buf.size = 0;
    msgpack_pack_uint8(&fx->pk, 1);
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_PAYLOAD_NOT_MAP);
}

static void test_event_with_duplicate_known_key_is_payload_invalid(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    EVENT_WITH(fx, 0, "host", s_str(&fx->pk, "web2"));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_PAYLOAD_INVALID);
    EVENT_WITH(fx, 0, "data", msgpack_pack_nil(&fx->pk));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_PAYLOAD_INVALID);
}

static void test_event_without_v_is_v_missing(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_event_begin(fx, EV_ALL & ~EV_V, 0);
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_V_MISSING);
}

static void test_event_with_non_uint_v_is_v_type(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    EVENT_WITH(fx, EV_V, "v", s_str(&fx->pk, "1"));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_V_TYPE);
    EVENT_WITH(fx, EV_V, "v", msgpack_pack_int8(&fx->pk, -1));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_V_TYPE);
    EVENT_WITH(fx, EV_V, "v", msgpack_pack_double(&fx->pk, 1.0));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_V_TYPE);
}

static void test_event_with_v_2_is_v_unsupported(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    EVENT_WITH(fx, EV_V, "v", msgpack_pack_uint8(&fx->pk, 2));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_V_UNSUPPORTED);
    EVENT_WITH(fx, EV_V, "v", msgpack_pack_uint8(&fx->pk, 0));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_V_UNSUPPORTED);
}

static void test_event_without_id_is_id_missing(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_event_begin(fx, EV_ALL & ~EV_ID, 0);
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_ID_MISSING);
}

static void test_event_with_id_not_bin16_is_id_type(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    EVENT_WITH(fx, EV_ID, "id", s_bin(&fx->pk, s_id, 15));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_ID_TYPE);
    EVENT_WITH(fx, EV_ID, "id", msgpack_pack_str(&fx->pk, 16),
               msgpack_pack_str_body(&fx->pk, "0123456789abcdef", 16));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_ID_TYPE);
}

static void test_event_without_ts_is_ts_missing(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_event_begin(fx, EV_ALL & ~EV_TS, 0);
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_TS_MISSING);
}

static void test_event_with_non_uint_ts_is_ts_type(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    EVENT_WITH(fx, EV_TS, "ts", msgpack_pack_int64(&fx->pk, -5));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_TS_TYPE);
    EVENT_WITH(fx, EV_TS, "ts", msgpack_pack_double(&fx->pk, 1.7e18));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_TS_TYPE);
}

static void test_event_without_host_is_host_missing(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_event_begin(fx, EV_ALL & ~EV_HOST, 0);
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_HOST_MISSING);
}

static void test_event_with_non_str_host_is_host_type(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    EVENT_WITH(fx, EV_HOST, "host", s_bin(&fx->pk, "web1", 4));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_HOST_TYPE);
    EVENT_WITH(fx, EV_HOST, "host", msgpack_pack_str(&fx->pk, 5),
               msgpack_pack_str_body(&fx->pk, "we\0b1", 5));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_HOST_TYPE);
}

static void test_event_with_empty_or_256_byte_host_is_host_length(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    EVENT_WITH(fx, EV_HOST, "host", s_str(&fx->pk, ""));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_HOST_LENGTH);
    char host[NERVE_HOST_MAX + 2];
    memset(host, 'h', sizeof host - 1);
    host[sizeof host - 1] = '\0';
    EVENT_WITH(fx, EV_HOST, "host", s_str(&fx->pk, host));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_HOST_LENGTH);
    host[NERVE_HOST_MAX] = '\0'; /* 255 bytes is fine */
    EVENT_WITH(fx, EV_HOST, "host", s_str(&fx->pk, host));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_OK);
    assert_string_equal(ev.host, host);
}

static void test_event_without_data_is_data_missing(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_event_begin(fx, EV_ALL & ~EV_DATA, 0);
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_DATA_MISSING);
}

static void test_event_with_non_uint_hops_is_hops_type(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    EVENT_WITH(fx, 0, "hops", s_str(&fx->pk, "1"));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_HOPS_TYPE);
    EVENT_WITH(fx, 0, "hops", msgpack_pack_int8(&fx->pk, -1));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_HOPS_TYPE);
}

static void test_event_with_hops_over_max_is_hops_exceeded(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    EVENT_WITH(fx, 0, "hops", msgpack_pack_uint8(&fx->pk, NERVE_HOPS_MAX + 1));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_HOPS_EXCEEDED);
    EVENT_WITH(fx, 0, "hops", msgpack_pack_uint64(&fx->pk, UINT64_MAX));
    assert_int_equal(s_decode_event(fx, &ev), NERVE_WIRE_HOPS_EXCEEDED);
}

/* ------------------------------------------------------------------------
   Malformed reactions
   ------------------------------------------------------------------------ */

static void test_reaction_with_wrong_frame_count_is_frame_count(void **state)
{
    fx_t *fx = *state;
    nerve_reaction_t r;
    s_reaction_begin(fx, RE_ALL, 0);
    nerve_frame_t frames[3] = {{"@all/", 5}, {fx->buf.data, fx->buf.size}, {"", 0}};
    assert_int_equal(nerve_wire_decode_reaction(fx->dec, frames, 2, &r), NERVE_WIRE_OK);
    assert_int_equal(nerve_wire_decode_reaction(fx->dec, frames, 1, &r), NERVE_WIRE_FRAME_COUNT);
    assert_int_equal(nerve_wire_decode_reaction(fx->dec, frames, 3, &r), NERVE_WIRE_FRAME_COUNT);
}

static void test_reaction_with_bad_topic_is_topic_invalid(void **state)
{
    fx_t *fx = *state;
    nerve_reaction_t r;
    static const char *const bad[] = {
        "",           "@all",         "@all/x",      "@all//",  "@host/",
        "@host//",    "@host/web1",   "@host/a/b/",  "@group/", "@group/db",
        "@nobody/x/", "/client/load", "@HOST/web1/", "all/",
    };
    s_reaction_begin(fx, RE_ALL, 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(s_decode_reaction_topic(fx, bad[i], strlen(bad[i]), &r),
                         NERVE_WIRE_TOPIC_INVALID);
    }
    assert_int_equal(s_decode_reaction_topic(fx, "@host/we\0b1/", 12, &r),
                     NERVE_WIRE_TOPIC_INVALID);
    assert_int_equal(s_decode_reaction_topic(fx, NULL, 0, &r), NERVE_WIRE_TOPIC_INVALID);

    char topic[NERVE_TOPIC_MAX + 2];
    memcpy(topic, "@group/", 7);
    memset(topic + 7, 'g', sizeof topic - 7);
    topic[NERVE_TOPIC_MAX - 1] = '/'; /* exactly NERVE_TOPIC_MAX bytes */
    assert_int_equal(s_decode_reaction_topic(fx, topic, NERVE_TOPIC_MAX, &r), NERVE_WIRE_OK);
    topic[NERVE_TOPIC_MAX - 1] = 'g';
    topic[NERVE_TOPIC_MAX] = '/';
    assert_int_equal(s_decode_reaction_topic(fx, topic, NERVE_TOPIC_MAX + 1, &r),
                     NERVE_WIRE_TOPIC_INVALID);
}

static void test_reaction_payload_problems_use_the_payload_reasons(void **state)
{
    fx_t *fx = *state;
    nerve_reaction_t r;
    s_reaction_begin(fx, RE_ALL, 0);
    fx->buf.size--;
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_PAYLOAD_TRUNCATED);
    s_reaction_begin(fx, RE_ALL, 0);
    msgpack_pack_nil(&fx->pk);
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_PAYLOAD_TRAILING);
    fx->buf.size = 0;
    msgpack_pack_array(&fx->pk, 0);
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_PAYLOAD_NOT_MAP);
    REACTION_WITH(fx, 0, "fn", s_str(&fx->pk, "reactions.cmd.other"));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_PAYLOAD_INVALID);
}

static void test_reaction_field_checks_share_the_event_reasons(void **state)
{
    fx_t *fx = *state;
    nerve_reaction_t r;
    s_reaction_begin(fx, RE_ALL & ~RE_V, 0);
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_V_MISSING);
    REACTION_WITH(fx, RE_V, "v", msgpack_pack_uint8(&fx->pk, 3));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_V_UNSUPPORTED);
    s_reaction_begin(fx, RE_ALL & ~RE_ID, 0);
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_ID_MISSING);
    REACTION_WITH(fx, RE_ID, "id", s_bin(&fx->pk, s_id, 8));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_ID_TYPE);
    s_reaction_begin(fx, RE_ALL & ~RE_TS, 0);
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_TS_MISSING);
    REACTION_WITH(fx, RE_TS, "ts", s_str(&fx->pk, "now"));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_TS_TYPE);
}

static void test_reaction_without_fn_is_fn_missing(void **state)
{
    fx_t *fx = *state;
    nerve_reaction_t r;
    s_reaction_begin(fx, RE_ALL & ~RE_FN, 0);
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_FN_MISSING);
}

static void test_reaction_with_bad_fn_is_fn_type(void **state)
{
    fx_t *fx = *state;
    nerve_reaction_t r;
    REACTION_WITH(fx, RE_FN, "fn", msgpack_pack_uint8(&fx->pk, 1));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_FN_TYPE);
    REACTION_WITH(fx, RE_FN, "fn", s_str(&fx->pk, ""));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_FN_TYPE);
    char fn[NERVE_NAME_MAX + 2];
    memset(fn, 'f', sizeof fn - 1);
    fn[sizeof fn - 1] = '\0';
    REACTION_WITH(fx, RE_FN, "fn", s_str(&fx->pk, fn));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_FN_TYPE);
    REACTION_WITH(fx, RE_FN, "fn", msgpack_pack_str(&fx->pk, 3),
                  msgpack_pack_str_body(&fx->pk, "a\0b", 3));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_FN_TYPE);
}

static void test_reaction_without_args_is_args_missing(void **state)
{
    fx_t *fx = *state;
    nerve_reaction_t r;
    s_reaction_begin(fx, RE_ALL & ~RE_ARGS, 0);
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_ARGS_MISSING);
}

static void test_reaction_with_non_map_args_is_args_type(void **state)
{
    fx_t *fx = *state;
    nerve_reaction_t r;
    REACTION_WITH(fx, RE_ARGS, "args", msgpack_pack_array(&fx->pk, 0));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_ARGS_TYPE);
    REACTION_WITH(fx, RE_ARGS, "args", msgpack_pack_nil(&fx->pk));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_ARGS_TYPE);
}

static void test_reaction_with_bad_rule_is_rule_type(void **state)
{
    fx_t *fx = *state;
    nerve_reaction_t r;
    REACTION_WITH(fx, RE_RULE, "rule", msgpack_pack_uint8(&fx->pk, 1));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_RULE_TYPE);
    char rule[NERVE_NAME_MAX + 2];
    memset(rule, 'r', sizeof rule - 1);
    rule[sizeof rule - 1] = '\0';
    REACTION_WITH(fx, RE_RULE, "rule", s_str(&fx->pk, rule));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_RULE_TYPE);
}

static void test_reaction_without_event_is_event_missing(void **state)
{
    fx_t *fx = *state;
    nerve_reaction_t r;
    s_reaction_begin(fx, RE_ALL & ~RE_EVENT, 0);
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_EVENT_MISSING);
}

static void test_reaction_with_bad_event_ref_is_event_type(void **state)
{
    fx_t *fx = *state;
    msgpack_packer *pk = &fx->pk;
    nerve_reaction_t r;

    REACTION_WITH(fx, RE_EVENT, "event", s_str(pk, "/client/load"));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_EVENT_TYPE);

    REACTION_WITH(fx, RE_EVENT, "event", msgpack_pack_map(pk, 2), s_str(pk, "id"),
                  s_bin(pk, s_id, 16), s_str(pk, "host"), s_str(pk, "web1"));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_EVENT_TYPE); /* no tag */

    REACTION_WITH(fx, RE_EVENT, "event", msgpack_pack_map(pk, 3), s_str(pk, "tag"),
                  msgpack_pack_uint8(pk, 1), s_str(pk, "id"), s_bin(pk, s_id, 16),
                  s_str(pk, "host"), s_str(pk, "web1"));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_EVENT_TYPE); /* tag not str */

    REACTION_WITH(fx, RE_EVENT, "event", msgpack_pack_map(pk, 3), s_str(pk, "tag"),
                  s_str(pk, "no-slash"), s_str(pk, "id"), s_bin(pk, s_id, 16), s_str(pk, "host"),
                  s_str(pk, "web1"));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_EVENT_TYPE); /* tag invalid */

    REACTION_WITH(fx, RE_EVENT, "event", msgpack_pack_map(pk, 3), s_str(pk, "tag"), s_str(pk, "/a"),
                  s_str(pk, "id"), s_bin(pk, s_id, 15), s_str(pk, "host"), s_str(pk, "web1"));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_EVENT_TYPE); /* id bin15 */

    REACTION_WITH(fx, RE_EVENT, "event", msgpack_pack_map(pk, 3), s_str(pk, "tag"), s_str(pk, "/a"),
                  s_str(pk, "id"), s_bin(pk, s_id, 16), s_str(pk, "host"), s_str(pk, ""));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_EVENT_TYPE); /* host empty */

    REACTION_WITH(fx, RE_EVENT, "event", msgpack_pack_map(pk, 2), s_str(pk, "tag"), s_str(pk, "/a"),
                  s_str(pk, "id"), s_bin(pk, s_id, 16));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_EVENT_TYPE); /* no host */

    REACTION_WITH(fx, RE_EVENT, "event", msgpack_pack_map(pk, 4), s_str(pk, "tag"), s_str(pk, "/a"),
                  s_str(pk, "id"), s_bin(pk, s_id, 16), s_str(pk, "host"), s_str(pk, "web1"),
                  s_str(pk, "tag"), s_str(pk, "/b"));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_EVENT_TYPE); /* tag twice */

    REACTION_WITH(fx, RE_EVENT, "event", msgpack_pack_map(pk, 4), s_str(pk, "tag"), s_str(pk, "/a"),
                  s_str(pk, "id"), s_bin(pk, s_id, 16), s_str(pk, "host"), s_str(pk, "web1"),
                  s_str(pk, "data"), msgpack_pack_nil(pk));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_OK); /* unknown key ignored */
    assert_string_equal(r.event.tag, "/a");
    assert_string_equal(r.event.host, "web1");
    assert_memory_equal(r.event.id, s_id, 16);
}

static void test_reaction_without_deadline_is_deadline_missing(void **state)
{
    fx_t *fx = *state;
    nerve_reaction_t r;
    s_reaction_begin(fx, RE_ALL & ~RE_DEADLINE, 0);
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_DEADLINE_MISSING);
}

static void test_reaction_with_non_uint_deadline_is_deadline_type(void **state)
{
    fx_t *fx = *state;
    nerve_reaction_t r;
    REACTION_WITH(fx, RE_DEADLINE, "deadline", msgpack_pack_int8(&fx->pk, -1));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_DEADLINE_TYPE);
    REACTION_WITH(fx, RE_DEADLINE, "deadline", s_str(&fx->pk, "60s"));
    assert_int_equal(s_decode_reaction(fx, &r), NERVE_WIRE_DEADLINE_TYPE);
}

/* ------------------------------------------------------------------------
   Encoders refuse what decoders would refuse
   ------------------------------------------------------------------------ */

static void test_encode_event_refuses_bad_tag_host_and_hops(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_valid_event(&ev);
    strcpy(ev.tag, "no-slash");
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_EINVAL);
    ev.tag[0] = '\0';
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_EINVAL);
    strcpy(ev.tag, "/a\xff");
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_EINVAL);
    memset(ev.tag, '/', sizeof ev.tag); /* not NUL-terminated */
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_EINVAL);

    s_valid_event(&ev);
    ev.host[0] = '\0';
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_EINVAL);
    memset(ev.host, 'h', sizeof ev.host);
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_EINVAL);

    s_valid_event(&ev);
    ev.hops = NERVE_HOPS_MAX + 1;
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_EINVAL);
}

static void test_encode_event_refuses_data_raw_that_is_not_one_value(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_valid_event(&ev);
    ev.data_raw = "\x92\x01"; /* array of 2 with one item */
    ev.data_raw_len = 2;
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_EINVAL);
    ev.data_raw = "\x01\x02"; /* two values */
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_EINVAL);
    ev.data_raw_len = 0;
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_EINVAL);
    ev.data_raw = "\xc1";
    ev.data_raw_len = 1;
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_EINVAL);
}

static void test_encode_event_refuses_data_nested_deeper_than_decoders_parse(void **state)
{
    fx_t *fx = *state;
    fx->buf.size = 0;
    for (int i = 0; i < 31; i++)
        msgpack_pack_array(&fx->pk, 1);
    msgpack_pack_array(&fx->pk, 0);
    nerve_event_t ev;
    s_valid_event(&ev);
    ev.data_raw = fx->buf.data; /* 32 deep alone, 33 inside the payload */
    ev.data_raw_len = fx->buf.size;
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_EINVAL);
    ev.data_raw = NULL;
    ev.data = s_unpacked(fx);
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_EINVAL);
}

/*  args are packed inside the payload's map: 31 containers deep fit (32
    with the map, what the decoders parse), 32 do not, and what the
    encoder accepts decodes. */
static void test_encode_reaction_refuses_args_nested_deeper_than_decoders_parse(void **state)
{
    fx_t *fx = *state;
    for (int deep = 31; deep <= 32; deep++) { /* 33 would not even unpack */
        fx->buf.size = 0;
        msgpack_pack_map(&fx->pk, 1); /* args itself: 1 */
        msgpack_pack_str_with_body(&fx->pk, "k", 1);
        for (int i = 0; i < deep - 2; i++)
            msgpack_pack_array(&fx->pk, 1);
        msgpack_pack_array(&fx->pk, 0);
        nerve_reaction_t r;
        s_valid_reaction(fx, &r);
        r.args = s_unpacked(fx);
        int rc = nerve_wire_encode_reaction(&r, &fx->out);
        if (deep <= 31) {
            assert_int_equal(rc, NERVE_OK);
            nerve_frame_t frames[2] = {{r.topic, strlen(r.topic)}, {fx->out.data, fx->out.size}};
            nerve_reaction_t back;
            assert_int_equal(nerve_wire_decode_reaction(fx->dec, frames, 2, &back), NERVE_WIRE_OK);
        } else {
            assert_int_equal(rc, NERVE_EINVAL);
        }
    }
}

/*  The reaction encoder writes its fields directly; its bytes must be
    exactly what msgpack-c's packer makes of the same fields in the same
    order (minimal forms), at every length and number boundary. */
static void test_encode_reaction_bytes_equal_msgpack_c_packer(void **state)
{
    fx_t *fx = *state;
    static const size_t lens[] = {0, 1, 31, 32, 255};
    static const uint64_t nums[] = {0, 127, 128, 255, 256, 65535, 65536, 4294967295ull,
                                    4294967296ull, UINT64_MAX};
    msgpack_sbuffer want;
    msgpack_sbuffer_init(&want);
    for (size_t a = 0; a < 5; a++) {
        for (size_t b = 0; b < 10; b++) {
            nerve_reaction_t r;
            s_valid_reaction(fx, &r);
            size_t fl = lens[a] ? lens[a] : 1; /* fn may not be empty */
            memset(r.fn, 'f', fl);
            r.fn[fl] = '\0';
            memset(r.rule, 'r', lens[(a + 1) % 5]);
            r.rule[lens[(a + 1) % 5]] = '\0';
            size_t tl = lens[(a + 2) % 5] > 2 ? lens[(a + 2) % 5] : 2;
            r.event.tag[0] = '/';
            memset(r.event.tag + 1, 't', tl - 1);
            r.event.tag[tl] = '\0';
            size_t hl = lens[(a + 3) % 5] ? lens[(a + 3) % 5] : 1;
            memset(r.event.host, 'h', hl);
            r.event.host[hl] = '\0';
            r.ts = nums[b];
            r.deadline = nums[9 - b];
            r.hops = (uint32_t)(b % 3 == 0 ? 0 : b % 3 == 1 ? 1 : NERVE_HOPS_MAX);
            assert_int_equal(nerve_wire_encode_reaction(&r, &fx->out), NERVE_OK);

            want.size = 0;
            msgpack_packer pk;
            msgpack_packer_init(&pk, &want, msgpack_sbuffer_write);
            msgpack_pack_map(&pk, r.hops ? 9 : 8);
#define KEY(k) msgpack_pack_str_with_body(&pk, k, strlen(k))
#define STR(v) msgpack_pack_str_with_body(&pk, v, strlen(v))
            KEY("v");
            msgpack_pack_uint8(&pk, NERVE_WIRE_VERSION);
            KEY("id");
            msgpack_pack_bin_with_body(&pk, r.id, NERVE_ID_SIZE);
            KEY("fn");
            STR(r.fn);
            KEY("args");
            msgpack_pack_object(&pk, r.args);
            KEY("rule");
            STR(r.rule);
            KEY("event");
            msgpack_pack_map(&pk, 3);
            KEY("tag");
            STR(r.event.tag);
            KEY("id");
            msgpack_pack_bin_with_body(&pk, r.event.id, NERVE_ID_SIZE);
            KEY("host");
            STR(r.event.host);
            KEY("ts");
            msgpack_pack_uint64(&pk, r.ts);
            KEY("deadline");
            msgpack_pack_uint64(&pk, r.deadline);
            if (r.hops) {
                KEY("hops");
                msgpack_pack_uint32(&pk, r.hops);
            }
#undef KEY
#undef STR
            assert_int_equal(fx->out.size, want.size);
            assert_memory_equal(fx->out.data, want.data, want.size);
        }
    }
    msgpack_sbuffer_destroy(&want);
}

static void test_encode_event_refuses_payload_over_max(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_valid_event(&ev);
    size_t n = NERVE_PAYLOAD_MAX;
    char *big = calloc(1, n);
    assert_non_null(big);
    ev.data.type = MSGPACK_OBJECT_BIN;
    ev.data.via.bin.ptr = big;
    ev.data.via.bin.size = (uint32_t)n;
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_EINVAL);
    free(big);
}

static void test_encode_reaction_refuses_bad_fields(void **state)
{
    fx_t *fx = *state;
    nerve_reaction_t r;
    s_valid_reaction(fx, &r);
    strcpy(r.topic, "@host/web1");
    assert_int_equal(nerve_wire_encode_reaction(&r, &fx->out), NERVE_EINVAL);
    s_valid_reaction(fx, &r);
    r.fn[0] = '\0';
    assert_int_equal(nerve_wire_encode_reaction(&r, &fx->out), NERVE_EINVAL);
    s_valid_reaction(fx, &r);
    r.args.type = MSGPACK_OBJECT_ARRAY;
    r.args.via.array.size = 0;
    assert_int_equal(nerve_wire_encode_reaction(&r, &fx->out), NERVE_EINVAL);
    s_valid_reaction(fx, &r);
    strcpy(r.event.tag, "x");
    assert_int_equal(nerve_wire_encode_reaction(&r, &fx->out), NERVE_EINVAL);
    s_valid_reaction(fx, &r);
    r.event.host[0] = '\0';
    assert_int_equal(nerve_wire_encode_reaction(&r, &fx->out), NERVE_EINVAL);
    s_valid_reaction(fx, &r);
    memset(r.rule, 'r', sizeof r.rule);
    assert_int_equal(nerve_wire_encode_reaction(&r, &fx->out), NERVE_EINVAL);
}

static void test_encode_clears_the_buffer_first(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev;
    s_valid_event(&ev);
    msgpack_sbuffer_write(&fx->out, "junk", 4);
    assert_int_equal(nerve_wire_encode_event(&ev, &fx->out), NERVE_OK);
    assert_int_equal((uint8_t)fx->out.data[0], 0x85); /* fixmap of 5 */
}

/* ------------------------------------------------------------------------
   Reason names, ids, result events
   ------------------------------------------------------------------------ */

static void test_reason_names_are_stable_snake_case(void **state)
{
    assert_string_equal(nerve_wire_reason_name(NERVE_WIRE_OK), "ok");
    assert_string_equal(nerve_wire_reason_name(NERVE_WIRE_TAG_NO_SLASH), "tag_no_slash");
    assert_string_equal(nerve_wire_reason_name(NERVE_WIRE_PAYLOAD_TRUNCATED), "payload_truncated");
    assert_string_equal(nerve_wire_reason_name(NERVE_WIRE_HOPS_EXCEEDED), "hops_exceeded");
    assert_string_equal(nerve_wire_reason_name(NERVE_WIRE_DEADLINE_TYPE), "deadline_type");
    assert_string_equal(nerve_wire_reason_name(NERVE_WIRE_REASON_COUNT), "unknown");
    assert_string_equal(nerve_wire_reason_name((nerve_wire_reason_t)-1), "unknown");
    for (int i = 0; i < NERVE_WIRE_REASON_COUNT; i++) {
        const char *name = nerve_wire_reason_name((nerve_wire_reason_t)i);
        assert_string_not_equal(name, "unknown");
        assert_int_equal(strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_"), strlen(name));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(name, nerve_wire_reason_name((nerve_wire_reason_t)j));
    }
}

static int s_cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, NERVE_ID_SIZE);
}

#define IDS_PER_THREAD 20000
#define ID_THREADS     4

static void *s_make_ids(void *arg)
{
    uint8_t(*ids)[NERVE_ID_SIZE] = arg;
    for (int i = 0; i < IDS_PER_THREAD; i++)
        nerve_wire_new_id(ids[i]);
    return NULL;
}

static void test_new_id_is_unique_within_and_across_threads(void **state)
{
    size_t total = (size_t)IDS_PER_THREAD * (ID_THREADS + 1);
    uint8_t(*ids)[NERVE_ID_SIZE] = calloc(total, NERVE_ID_SIZE);
    assert_non_null(ids);
    pthread_t threads[ID_THREADS];
    for (int t = 0; t < ID_THREADS; t++)
        assert_int_equal(
            pthread_create(&threads[t], NULL, s_make_ids, ids + (size_t)t * IDS_PER_THREAD), 0);
    s_make_ids(ids + (size_t)ID_THREADS * IDS_PER_THREAD);
    for (int t = 0; t < ID_THREADS; t++)
        pthread_join(threads[t], NULL);
    qsort(ids, total, NERVE_ID_SIZE, s_cmp_id);
    for (size_t i = 1; i < total; i++)
        assert_true(memcmp(ids[i - 1], ids[i], NERVE_ID_SIZE) != 0);
    free(ids);
}

static void test_new_id_in_a_forked_child_differs_from_the_parent(void **state)
{
    uint8_t warm[NERVE_ID_SIZE], mine[NERVE_ID_SIZE], theirs[NERVE_ID_SIZE];
    nerve_wire_new_id(warm); /* the parent's generator is seeded */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uint8_t id[NERVE_ID_SIZE];
        nerve_wire_new_id(id);
        ssize_t n = write(fds[1], id, sizeof id);
        _exit(n == (ssize_t)sizeof id ? 0 : 1);
    }
    close(fds[1]);
    nerve_wire_new_id(mine);
    assert_int_equal(read(fds[0], theirs, sizeof theirs), sizeof theirs);
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(memcmp(mine, theirs, NERVE_ID_SIZE) != 0);
}

static void test_id_hex_is_32_lowercase_digits(void **state)
{
    char hex[33];
    assert_ptr_equal(nerve_wire_id_hex(s_id, hex), hex);
    assert_string_equal(hex, "000102030405060708090a0b0c0d0e0f");
    uint8_t ff[NERVE_ID_SIZE];
    memset(ff, 0xab, sizeof ff);
    assert_string_equal(nerve_wire_id_hex(ff, hex), "abababababababababababababababab");
}

/*  Finds key in a decoded map. */
static const msgpack_object *s_get(const msgpack_object *map, const char *key)
{
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
            memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0)
            return &kv->val;
    }
    return NULL;
}

static void test_result_event_round_trip(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev, back;
    msgpack_sbuffer scratch;
    msgpack_sbuffer_init(&scratch);
    assert_int_equal(nerve_wire_result_event(&ev, &scratch, "web1", s_id, "reactions.cmd.run",
                                             false, -3, "oops\n", 5, 1234),
                     NERVE_OK);
    assert_string_equal(ev.tag, "/nerve/result/web1");
    assert_int_equal(ev.tag_len, strlen("/nerve/result/web1"));
    assert_string_equal(ev.host, "web1");
    assert_int_equal(ev.hops, 0);
    assert_true(ev.ts > 1600000000ull * 1000000000ull);
    assert_ptr_equal(ev.data_raw, scratch.data);
    assert_int_equal(ev.data_raw_len, scratch.size);

    s_event_round_trip(fx, &ev, &back);
    const msgpack_object *d = &back.data;
    assert_int_equal(d->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(d->via.map.size, 6);
    const msgpack_object *v = s_get(d, "reaction");
    assert_non_null(v);
    assert_int_equal(v->type, MSGPACK_OBJECT_BIN);
    assert_memory_equal(v->via.bin.ptr, s_id, 16);
    v = s_get(d, "fn");
    assert_int_equal(v->type, MSGPACK_OBJECT_STR);
    assert_memory_equal(v->via.str.ptr, "reactions.cmd.run", 17);
    v = s_get(d, "ok");
    assert_int_equal(v->type, MSGPACK_OBJECT_BOOLEAN);
    assert_false(v->via.boolean);
    v = s_get(d, "rc");
    assert_int_equal(v->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal(v->via.i64, -3);
    v = s_get(d, "output");
    assert_int_equal(v->type, MSGPACK_OBJECT_STR);
    assert_int_equal(v->via.str.size, 5);
    assert_memory_equal(v->via.str.ptr, "oops\n", 5);
    v = s_get(d, "took_us");
    assert_int_equal(v->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(v->via.u64, 1234);

    /* Empty output, ok = true. */
    assert_int_equal(nerve_wire_result_event(&ev, &scratch, "web1", s_id, "f", true, 0, NULL, 0, 0),
                     NERVE_OK);
    s_event_round_trip(fx, &ev, &back);
    assert_true(s_get(&back.data, "ok")->via.boolean);
    assert_int_equal(s_get(&back.data, "output")->via.str.size, 0);
    msgpack_sbuffer_destroy(&scratch);
}

static void test_result_event_truncates_output_to_64k_on_a_char_boundary(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev, back;
    msgpack_sbuffer scratch;
    msgpack_sbuffer_init(&scratch);
    size_t n = NERVE_RESULT_OUTPUT_MAX + 100;
    char *out = malloc(n);
    assert_non_null(out);
    memset(out, 'x', n);
    assert_int_equal(nerve_wire_result_event(&ev, &scratch, "web1", s_id, "f", true, 0, out, n, 1),
                     NERVE_OK);
    s_event_round_trip(fx, &ev, &back);
    assert_int_equal(s_get(&back.data, "output")->via.str.size, NERVE_RESULT_OUTPUT_MAX);

    /* A 3-byte character straddling the limit is left out whole. */
    memcpy(out + NERVE_RESULT_OUTPUT_MAX - 1, "\xe2\x82\xac", 3);
    assert_int_equal(nerve_wire_result_event(&ev, &scratch, "web1", s_id, "f", true, 0, out, n, 1),
                     NERVE_OK);
    s_event_round_trip(fx, &ev, &back);
    assert_int_equal(s_get(&back.data, "output")->via.str.size, NERVE_RESULT_OUTPUT_MAX - 1);
    free(out);
    msgpack_sbuffer_destroy(&scratch);
}

static void test_result_event_output_becomes_valid_utf8(void **state)
{
    fx_t *fx = *state;
    nerve_event_t ev, back;
    msgpack_sbuffer scratch;
    msgpack_sbuffer_init(&scratch);
    assert_int_equal(nerve_wire_result_event(&ev, &scratch, "web1", s_id, "f", true, 0,
                                             "a\xff\x62\xc3" /* a, bad, b, cut */, 4, 1),
                     NERVE_OK);
    s_event_round_trip(fx, &ev, &back);
    const msgpack_object *o = s_get(&back.data, "output");
    assert_int_equal(o->via.str.size, 8);
    assert_memory_equal(o->via.str.ptr, "a\xef\xbf\xbd\x62\xef\xbf\xbd", 8);
    msgpack_sbuffer_destroy(&scratch);
}

static void test_result_event_refuses_bad_host_and_fn(void **state)
{
    nerve_event_t ev;
    msgpack_sbuffer scratch;
    msgpack_sbuffer_init(&scratch);
    assert_int_equal(nerve_wire_result_event(&ev, &scratch, "", s_id, "f", true, 0, NULL, 0, 0),
                     NERVE_EINVAL);
    assert_int_equal(nerve_wire_result_event(&ev, &scratch, "a/b", s_id, "f", true, 0, NULL, 0, 0),
                     NERVE_EINVAL);
    assert_int_equal(nerve_wire_result_event(&ev, &scratch, NULL, s_id, "f", true, 0, NULL, 0, 0),
                     NERVE_EINVAL);
    assert_int_equal(nerve_wire_result_event(&ev, &scratch, "web1", s_id, "", true, 0, NULL, 0, 0),
                     NERVE_EINVAL);
    assert_int_equal(nerve_wire_result_event(&ev, &scratch, "web1", s_id, "f", true, 0, NULL, 3, 0),
                     NERVE_EINVAL);
    char host[NERVE_TAG_MAX];
    memset(host, 'h', sizeof host - 1);
    host[sizeof host - 1] = '\0'; /* fits as a host, not inside the result tag */
    assert_int_equal(nerve_wire_result_event(&ev, &scratch, host, s_id, "f", true, 0, NULL, 0, 0),
                     NERVE_EINVAL);
    msgpack_sbuffer_destroy(&scratch);
}

/*  nerve_wire_recv_parts keeps the first max frames, reads and drops the
    rest of the message, counts them all, and returns -1 when nothing
    waits; the next message starts clean. */
static void test_recv_parts_keeps_max_frames_and_counts_all(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PAIR), *b = zmq_socket(ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(a, "inproc://recv-parts"), 0);
    assert_int_equal(zmq_connect(b, "inproc://recv-parts"), 0);
    zmq_msg_t parts[2];
    size_t n = 99;
    assert_int_equal(nerve_wire_recv_parts(a, parts, 2, &n, ZMQ_DONTWAIT), -1);
    assert_int_equal(n, 0);
    zmq_send(b, "one", 3, ZMQ_SNDMORE);
    zmq_send(b, "two", 3, ZMQ_SNDMORE);
    zmq_send(b, "three", 5, 0);
    zmq_send(b, "next", 4, 0);
    assert_int_equal(nerve_wire_recv_parts(a, parts, 2, &n, 0), 0);
    assert_int_equal(n, 3);
    assert_int_equal(zmq_msg_size(&parts[0]), 3);
    assert_memory_equal(zmq_msg_data(&parts[0]), "one", 3);
    assert_memory_equal(zmq_msg_data(&parts[1]), "two", 3);
    nerve_wire_close_parts(parts, n, 2);
    assert_int_equal(nerve_wire_recv_parts(a, parts, 2, &n, 0), 0);
    assert_int_equal(n, 1);
    assert_memory_equal(zmq_msg_data(&parts[0]), "next", 4);
    nerve_wire_close_parts(parts, n, 2);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

/*  nerve_wire_unpack: one value, checked before anything is built. */
static void test_unpack_builds_one_value_pointing_into_the_bytes(void **state)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    const uint8_t map[] = {0x82, 0xa1, 'a', 0x01, 0xa1, 'b', 0x92, 0xc0, 0xa2, 'h', 'i'};
    msgpack_object o;
    assert_int_equal(nerve_wire_unpack(map, sizeof map, &zone, &o), NERVE_WIRE_OK);
    assert_int_equal(o.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(o.via.map.size, 2);
    const msgpack_object *b = &o.via.map.ptr[1].val;
    assert_int_equal(b->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(b->via.array.ptr[1].type, MSGPACK_OBJECT_STR);
    assert_ptr_equal(b->via.array.ptr[1].via.str.ptr, (const char *)map + 9);
    const uint8_t scalar[] = {0xcb, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18};
    assert_int_equal(nerve_wire_unpack(scalar, sizeof scalar, &zone, &o), NERVE_WIRE_OK);
    assert_int_equal(o.type, MSGPACK_OBJECT_FLOAT64);
    msgpack_zone_destroy(&zone);
}

static void test_unpack_refuses_claims_trailing_bytes_and_depth(void **state)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object o;
    /* four billion entries announced in five bytes */
    const uint8_t claim[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(nerve_wire_unpack(claim, sizeof claim, &zone, &o),
                     NERVE_WIRE_PAYLOAD_TRUNCATED);
    const uint8_t trailing[] = {0x01, 0x02};
    assert_int_equal(nerve_wire_unpack(trailing, sizeof trailing, &zone, &o),
                     NERVE_WIRE_PAYLOAD_TRAILING);
    const uint8_t invalid[] = {0xc1};
    assert_int_equal(nerve_wire_unpack(invalid, sizeof invalid, &zone, &o),
                     NERVE_WIRE_PAYLOAD_INVALID);
    uint8_t deep[40];
    memset(deep, 0x91, sizeof deep); /* arrays of one, 40 deep */
    deep[sizeof deep - 1] = 0x00;
    assert_int_equal(nerve_wire_unpack(deep, sizeof deep, &zone, &o), NERVE_WIRE_PAYLOAD_INVALID);
    assert_int_equal(nerve_wire_unpack(deep, 0, &zone, &o), NERVE_WIRE_PAYLOAD_TRUNCATED);
    static uint8_t big[NERVE_PAYLOAD_MAX + 1];
    assert_int_equal(nerve_wire_unpack(big, sizeof big, &zone, &o),
                     NERVE_WIRE_PAYLOAD_TOO_LARGE);
    msgpack_zone_destroy(&zone);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_event_round_trip_keeps_every_field),
        T(test_unpack_builds_one_value_pointing_into_the_bytes),
        T(test_unpack_refuses_claims_trailing_bytes_and_depth),
        T(test_event_round_trip_data_number_string_and_nil),
        T(test_event_round_trip_nested_data),
        T(test_event_round_trip_data_raw_is_written_verbatim),
        T(test_event_without_hops_omits_the_key_and_decodes_zero),
        T(test_event_hops_at_max_is_accepted),
        T(test_reaction_round_trip_keeps_every_field_for_each_topic_kind),
        T(test_reaction_hops_round_trip_and_past_eight_are_refused),
        T(test_reaction_with_empty_rule_round_trips),
        T(test_reaction_without_rule_key_decodes_empty_rule),
        T(test_event_encoding_matches_python_msgpack_bytes),
        T(test_reaction_encoding_matches_python_msgpack_bytes),
        T(test_encoded_event_unpacks_to_the_same_plain_map),
        T(test_decoded_data_outlives_the_payload_frame),
        T(test_decoder_reuses_its_memory_for_each_decode),
        T(test_unknown_and_non_str_keys_are_ignored),
        T(test_signed_encoding_of_small_uint_is_accepted),
        T(test_tag_of_255_bytes_and_multibyte_tags_are_accepted),
        T(test_payload_of_exactly_max_size_is_accepted),
        T(test_nesting_32_containers_deep_is_accepted),
        T(test_event_with_wrong_frame_count_is_frame_count),
        T(test_event_with_empty_tag_is_tag_empty),
        T(test_event_with_256_byte_tag_is_tag_too_long),
        T(test_event_with_tag_not_starting_with_slash_is_tag_no_slash),
        T(test_event_with_nul_in_tag_is_tag_nul),
        T(test_event_with_invalid_utf8_tag_is_tag_utf8),
        T(test_tag_utf8_rejects_overlongs),
        T(test_tag_utf8_rejects_surrogates),
        T(test_tag_utf8_rejects_truncated_sequences_and_stray_continuations),
        T(test_tag_utf8_rejects_code_points_past_u10ffff),
        T(test_event_payload_over_max_is_payload_too_large),
        T(test_event_payload_cut_short_is_payload_truncated),
        T(test_event_with_huge_container_count_is_truncated_without_allocating),
        T(test_event_payload_with_never_used_byte_is_payload_invalid),
        T(test_event_payload_nested_33_deep_is_payload_invalid),
        T(test_event_payload_with_trailing_bytes_is_payload_trailing),
        T(test_event_payload_not_a_map_is_payload_not_map),
        T(test_event_with_duplicate_known_key_is_payload_invalid),
        T(test_event_without_v_is_v_missing),
        T(test_event_with_non_uint_v_is_v_type),
        T(test_event_with_v_2_is_v_unsupported),
        T(test_event_without_id_is_id_missing),
        T(test_event_with_id_not_bin16_is_id_type),
        T(test_event_without_ts_is_ts_missing),
        T(test_event_with_non_uint_ts_is_ts_type),
        T(test_event_without_host_is_host_missing),
        T(test_event_with_non_str_host_is_host_type),
        T(test_event_with_empty_or_256_byte_host_is_host_length),
        T(test_event_without_data_is_data_missing),
        T(test_event_with_non_uint_hops_is_hops_type),
        T(test_event_with_hops_over_max_is_hops_exceeded),
        T(test_reaction_with_wrong_frame_count_is_frame_count),
        T(test_reaction_with_bad_topic_is_topic_invalid),
        T(test_reaction_payload_problems_use_the_payload_reasons),
        T(test_reaction_field_checks_share_the_event_reasons),
        T(test_reaction_without_fn_is_fn_missing),
        T(test_reaction_with_bad_fn_is_fn_type),
        T(test_reaction_without_args_is_args_missing),
        T(test_reaction_with_non_map_args_is_args_type),
        T(test_reaction_with_bad_rule_is_rule_type),
        T(test_reaction_without_event_is_event_missing),
        T(test_reaction_with_bad_event_ref_is_event_type),
        T(test_reaction_without_deadline_is_deadline_missing),
        T(test_reaction_with_non_uint_deadline_is_deadline_type),
        T(test_encode_event_refuses_bad_tag_host_and_hops),
        T(test_encode_event_refuses_data_raw_that_is_not_one_value),
        T(test_encode_event_refuses_data_nested_deeper_than_decoders_parse),
        T(test_encode_reaction_refuses_args_nested_deeper_than_decoders_parse),
        T(test_encode_reaction_bytes_equal_msgpack_c_packer),
        T(test_recv_parts_keeps_max_frames_and_counts_all),
        T(test_encode_event_refuses_payload_over_max),
        T(test_encode_reaction_refuses_bad_fields),
        T(test_encode_clears_the_buffer_first),
        T(test_reason_names_are_stable_snake_case),
        T(test_new_id_is_unique_within_and_across_threads),
        T(test_new_id_in_a_forked_child_differs_from_the_parent),
        T(test_id_hex_is_32_lowercase_digits),
        T(test_result_event_round_trip),
        T(test_result_event_truncates_output_to_64k_on_a_char_boundary),
        T(test_result_event_output_becomes_valid_utf8),
        T(test_result_event_refuses_bad_host_and_fn),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
