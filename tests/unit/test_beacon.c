/*  test_beacon.c — the beacon API (lib/beacon.c) against the real codec.

    A PULL socket bound on an IPC path in a fresh mkdtemp directory plays
    the manager: every event a beacon sends is received and decoded with
    nerve_wire_decode_event(), so "what a beacon sends, the manager
    accepts" is checked byte for byte, not assumed. The tests with no
    listener never bind: the beacon must queue, then drop and count,
    without ever blocking the caller. The CURVE tests bind a CURVE server
    with a real ZAP handler (lib/security.c) on a TCP port the OS picks,
    with its keys in the fixture's directory.
*/
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include <nerve/beacon.h>
#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/security.h>
#include <nerve/value.h>
#include <nerve/wire.h>

typedef struct fixture {
    char dir[64];
    char endpoint[128];
    void *ctx;
    void *pull;
    nerve_wire_decoder_t *dec;
    zmq_msg_t parts[2];
    nerve_event_t ev;
} fixture_t;

/* ------------------------------------------------------------------------
   Helpers
   ------------------------------------------------------------------------ */

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/nerve-test-beacon.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->endpoint, sizeof f->endpoint, "ipc://%s/events.sock", f->dir);
    setenv("NERVE_HOME", f->dir, 1); /* default keys land here, never in ~ */
    f->ctx = zmq_ctx_new();
    assert_non_null(f->ctx);
    f->dec = nerve_wire_decoder_new();
    assert_non_null(f->dec);
    zmq_msg_init(&f->parts[0]);
    zmq_msg_init(&f->parts[1]);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    zmq_msg_close(&f->parts[0]);
    zmq_msg_close(&f->parts[1]);
    if (f->pull)
        zmq_close(f->pull);
    zmq_ctx_term(f->ctx);
    nerve_wire_decoder_destroy(&f->dec);
    nftw(f->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/*  The manager's side: a PULL bound on the fixture's endpoint. */
static void s_bind(fixture_t *f)
{
    f->pull = zmq_socket(f->ctx, ZMQ_PULL);
    assert_non_null(f->pull);
    int timeout = 10000, linger = 0;
    zmq_setsockopt(f->pull, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(f->pull, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(f->pull, f->endpoint), 0);
}

static nerve_beacon_t *s_beacon(fixture_t *f, const char *host)
{
    nerve_beacon_options_t o = {.host = host, .linger_ms = -1};
    nerve_beacon_t *b = nerve_beacon_new(f->endpoint, &o);
    assert_non_null(b);
    return b;
}

/*  Receives one message and decodes it into f->ev; fails the test unless
    it is a valid two-frame event. */
static void s_recv(fixture_t *f)
{
    for (int i = 0; i < 2; i++) {
        assert_true(zmq_msg_recv(&f->parts[i], f->pull, 0) >= 0);
        assert_int_equal(zmq_msg_more(&f->parts[i]), i == 0);
    }
    nerve_frame_t frames[2] = {
        {zmq_msg_data(&f->parts[0]), zmq_msg_size(&f->parts[0])},
        {zmq_msg_data(&f->parts[1]), zmq_msg_size(&f->parts[1])},
    };
    nerve_wire_reason_t r = nerve_wire_decode_event(f->dec, frames, 2, &f->ev);
    if (r != NERVE_WIRE_OK)
        fail_msg("decode: %s", nerve_wire_reason_name(r));
}

static double s_num(const msgpack_object *obj, const char *path)
{
    double v = -12345;
    const msgpack_object *o = nerve_obj_path(obj, path);
    if (!o || !nerve_obj_number(o, &v))
        fail_msg("no number at %s", path);
    return v;
}

static void s_assert_str(const msgpack_object *obj, const char *path, const char *want)
{
    const msgpack_object *o = nerve_obj_path(obj, path);
    const char *s = "";
    size_t n = 0;
    if (!o || !nerve_obj_str(o, &s, &n))
        fail_msg("no string at %s", path);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(s, want, n);
}

static void s_stats(nerve_beacon_t *b, uint64_t sent, uint64_t dropped, uint64_t invalid)
{
    nerve_beacon_stats_t st;
    assert_int_equal(nerve_beacon_stats(b, &st), 0);
    assert_int_equal(st.sent, sent);
    assert_int_equal(st.dropped, dropped);
    assert_int_equal(st.invalid, invalid);
}

/* ------------------------------------------------------------------------
   Encoding matches the codec
   ------------------------------------------------------------------------ */

static void test_beacon_send_decodes_with_the_codec(void **state)
{
    fixture_t *f = *state;
    s_bind(f);
    nerve_beacon_t *b = s_beacon(f, "web1");
    nerve_data_t *d = nerve_beacon_data(b);
    nerve_data_num(d, "value", 3.25);
    nerve_data_int(d, "count", -7);
    nerve_data_str(d, "route", "/login");
    nerve_data_bool(d, "ok", true);
    nerve_data_nil(d, "none");
    nerve_data_map_begin(d, "db");
    nerve_data_int(d, "pool", 8);
    nerve_data_map_begin(d, "replica");
    nerve_data_str(d, "name", "db2");
    nerve_data_map_end(d);
    nerve_data_map_end(d);
    nerve_data_array_begin(d, "codes");
    nerve_data_int(d, NULL, 200);
    nerve_data_str(d, NULL, "x");
    nerve_data_map_begin(d, NULL);
    nerve_data_bool(d, "deep", false);
    nerve_data_map_end(d);
    nerve_data_array_end(d);
    uint64_t before = nerve_clock_wall_ns();
    assert_int_equal(nerve_beacon_send(b, "/app/latency/web1", d), 0);
    uint64_t after = nerve_clock_wall_ns();

    s_recv(f);
    assert_string_equal(f->ev.tag, "/app/latency/web1");
    assert_string_equal(f->ev.host, "web1");
    assert_int_equal(f->ev.hops, 0);
    assert_true(f->ev.ts >= before && f->ev.ts <= after);
    const msgpack_object *data = &f->ev.data;
    assert_int_equal(data->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(data->via.map.size, 7);
    assert_true(s_num(data, "value") == 3.25);
    assert_true(s_num(data, "count") == -7);
    s_assert_str(data, "route", "/login");
    bool ok = false;
    assert_true(nerve_obj_bool(nerve_obj_get(data, "ok"), &ok) && ok);
    assert_int_equal(nerve_obj_get(data, "none")->type, MSGPACK_OBJECT_NIL);
    assert_true(s_num(data, "db.pool") == 8);
    s_assert_str(data, "db.replica.name", "db2");
    const msgpack_object *codes = nerve_obj_get(data, "codes");
    assert_int_equal(codes->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(codes->via.array.size, 3);
    assert_true(s_num(data, "codes.0") == 200);
    s_assert_str(data, "codes.1", "x");
    assert_true(nerve_obj_bool(nerve_obj_path(data, "codes.2.deep"), &ok) && !ok);
    s_stats(b, 1, 0, 0);
    nerve_beacon_destroy(&b);
}

static void test_beacon_each_event_gets_a_fresh_random_id(void **state)
{
    fixture_t *f = *state;
    s_bind(f);
    nerve_beacon_t *b = s_beacon(f, "web1");
    assert_int_equal(nerve_beacon_send_value(b, "/a", 1), 0);
    assert_int_equal(nerve_beacon_send_value(b, "/a", 2), 0);
    s_recv(f);
    uint8_t first[NERVE_ID_SIZE], zero[NERVE_ID_SIZE] = {0};
    memcpy(first, f->ev.id, sizeof first);
    uint64_t ts1 = f->ev.ts;
    s_recv(f);
    assert_memory_not_equal(first, f->ev.id, NERVE_ID_SIZE);
    assert_memory_not_equal(zero, f->ev.id, NERVE_ID_SIZE);
    assert_true(f->ev.ts >= ts1);
    assert_true(s_num(&f->ev.data, "value") == 2);
    nerve_beacon_destroy(&b);
}

static void test_beacon_send_value_sends_a_value_map(void **state)
{
    fixture_t *f = *state;
    s_bind(f);
    nerve_beacon_t *b = s_beacon(f, "h");
    assert_int_equal(nerve_beacon_send_value(b, "/app/queue/depth", 12.5), 0);
    s_recv(f);
    assert_string_equal(f->ev.tag, "/app/queue/depth");
    assert_int_equal(f->ev.data.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(f->ev.data.via.map.size, 1);
    assert_true(s_num(&f->ev.data, "value") == 12.5);
    nerve_beacon_destroy(&b);
}

static void test_beacon_send_without_data_sends_an_empty_map(void **state)
{
    fixture_t *f = *state;
    s_bind(f);
    nerve_beacon_t *b = s_beacon(f, "h");
    assert_int_equal(nerve_beacon_send(b, "/app/started", NULL), 0);
    s_recv(f);
    assert_int_equal(f->ev.data.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(f->ev.data.via.map.size, 0);
    nerve_beacon_destroy(&b);
}

/*  Map and array headers take the smallest form for their count: fixmap up
    to 15, map16 up to 65535, map32 beyond; the decoder must agree. */
static void test_beacon_container_headers_shrink_to_their_count(void **state)
{
    fixture_t *f = *state;
    s_bind(f);
    nerve_beacon_t *b = s_beacon(f, "h");
    static const uint32_t sizes[] = {0, 1, 15, 16, 300, 65535, 65536, 70000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        nerve_data_t *d = nerve_beacon_data(b);
        nerve_data_array_begin(d, "a");
        for (uint32_t i = 0; i < sizes[k]; i++)
            nerve_data_int(d, NULL, i);
        nerve_data_array_end(d);
        nerve_data_map_begin(d, "m");
        for (uint32_t i = 0; i < sizes[k] && i < 20; i++) {
            char key[16];
            snprintf(key, sizeof key, "k%u", i);
            nerve_data_int(d, key, i);
        }
        nerve_data_map_end(d);
        for (uint32_t i = 0; i < 16 && sizes[k] >= 16; i++) { /* outer map past 15 */
            char key[16];
            snprintf(key, sizeof key, "top%u", i);
            nerve_data_bool(d, key, true);
        }
        assert_int_equal(nerve_beacon_send(b, "/sizes", d), 0);
        s_recv(f);
        const msgpack_object *a = nerve_obj_get(&f->ev.data, "a");
        assert_non_null(a);
        assert_int_equal(a->via.array.size, sizes[k]);
        if (sizes[k])
            assert_int_equal(a->via.array.ptr[sizes[k] - 1].via.u64, sizes[k] - 1);
        const msgpack_object *m = nerve_obj_get(&f->ev.data, "m");
        assert_int_equal(m->via.map.size, sizes[k] < 20 ? sizes[k] : 20);
        assert_int_equal(f->ev.data.via.map.size, sizes[k] >= 16 ? 18 : 2);
    }
    nerve_beacon_destroy(&b);
}

static void test_data_int_uses_every_integer_width_correctly(void **state)
{
    fixture_t *f = *state;
    s_bind(f);
    nerve_beacon_t *b = s_beacon(f, "h");
    static const int64_t v[] = {
        0,         1,  127, 128, 255,  256,  65535,  65536,  4294967295LL, 4294967296LL,
        INT64_MAX, -1, -32, -33, -128, -129, -32768, -32769, INT32_MIN,    (int64_t)INT32_MIN - 1,
        INT64_MIN};
    size_t n = sizeof v / sizeof v[0];
    nerve_data_t *d = nerve_beacon_data(b);
    nerve_data_array_begin(d, "v");
    for (size_t i = 0; i < n; i++)
        nerve_data_int(d, NULL, v[i]);
    nerve_data_array_end(d);
    assert_int_equal(nerve_beacon_send(b, "/ints", d), 0);
    s_recv(f);
    const msgpack_object *arr = nerve_obj_get(&f->ev.data, "v");
    assert_int_equal(arr->via.array.size, n);
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *o = &arr->via.array.ptr[i];
        if (v[i] >= 0) {
            assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
            assert_true(o->via.u64 == (uint64_t)v[i]);
        } else {
            assert_int_equal(o->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
            assert_true(o->via.i64 == v[i]);
        }
    }
    nerve_beacon_destroy(&b);
}

static void test_beacon_stack_builder_is_copied_into_the_event(void **state)
{
    fixture_t *f = *state;
    s_bind(f);
    nerve_beacon_t *b = s_beacon(f, "h");
    char buf[128];
    nerve_data_t d;
    nerve_data_init(&d, buf, sizeof buf);
    nerve_data_num(&d, "value", 0.5);
    nerve_data_str(&d, "unit", "s");
    assert_int_equal(nerve_beacon_send(b, "/stack", &d), 0);
    /* the builder is untouched and can be sent again */
    assert_int_equal(nerve_beacon_send(b, "/stack/again", &d), 0);
    for (int i = 0; i < 2; i++) {
        s_recv(f);
        assert_string_equal(f->ev.tag, i ? "/stack/again" : "/stack");
        assert_true(s_num(&f->ev.data, "value") == 0.5);
        s_assert_str(&f->ev.data, "unit", "s");
    }
    nerve_beacon_destroy(&b);
}

static void test_beacon_send_raw_accepts_one_msgpack_value(void **state)
{
    fixture_t *f = *state;
    s_bind(f);
    nerve_beacon_t *b = s_beacon(f, "h");
    /* {"value": 5} and a bare number 7 */
    static const uint8_t map[] = {0x81, 0xa5, 'v', 'a', 'l', 'u', 'e', 0x05};
    static const uint8_t num[] = {0x07};
    assert_int_equal(nerve_beacon_send_raw(b, "/raw", map, sizeof map), 0);
    assert_int_equal(nerve_beacon_send_raw(b, "/raw/num", num, sizeof num), 0);
    s_recv(f);
    assert_string_equal(f->ev.tag, "/raw");
    assert_string_equal(f->ev.host, "h");
    assert_true(s_num(&f->ev.data, "value") == 5);
    s_recv(f);
    assert_int_equal(f->ev.data.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(f->ev.data.via.u64, 7);
    s_stats(b, 2, 0, 0);
    nerve_beacon_destroy(&b);
}

static void test_beacon_send_raw_refuses_malformed_msgpack(void **state)
{
    fixture_t *f = *state;
    s_bind(f);
    nerve_beacon_t *b = s_beacon(f, "h");
    static const uint8_t truncated[] = {0x82, 0xa1, 'a'}; /* map of 2, 1 key */
    static const uint8_t trailing[] = {0x01, 0x02};       /* two values */
    static const uint8_t invalid[] = {0xc1};              /* never used */
    assert_int_equal(nerve_beacon_send_raw(b, "/r", truncated, sizeof truncated), NERVE_EINVAL);
    assert_int_equal(nerve_beacon_send_raw(b, "/r", trailing, sizeof trailing), NERVE_EINVAL);
    assert_int_equal(nerve_beacon_send_raw(b, "/r", invalid, sizeof invalid), NERVE_EINVAL);
    assert_int_equal(nerve_beacon_send_raw(b, "/r", NULL, 0), NERVE_EINVAL);
    s_stats(b, 0, 0, 4);
    assert_int_equal(nerve_beacon_send_value(b, "/after", 1), 0);
    s_recv(f);
    assert_string_equal(f->ev.tag, "/after"); /* nothing of the above went out */
    nerve_beacon_destroy(&b);
}

/* ------------------------------------------------------------------------
   Refusals
   ------------------------------------------------------------------------ */

static void test_beacon_bad_tag_is_refused_and_counted(void **state)
{
    fixture_t *f = *state;
    s_bind(f);
    nerve_beacon_t *b = s_beacon(f, "h");
    char long_tag[NERVE_TAG_MAX + 2];
    memset(long_tag, 'a', sizeof long_tag);
    long_tag[0] = '/';
    long_tag[sizeof long_tag - 1] = '\0'; /* 256 bytes */
    const char *bad[] = {"", "no/slash", "/bad\xff", long_tag, NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(nerve_beacon_send_value(b, bad[i], 1), NERVE_EINVAL);
        assert_int_equal(nerve_beacon_send(b, bad[i], NULL), NERVE_EINVAL);
        static const uint8_t one[] = {0x01};
        assert_int_equal(nerve_beacon_send_raw(b, bad[i], one, 1), NERVE_EINVAL);
    }
    s_stats(b, 0, 0, 15);
    long_tag[NERVE_TAG_MAX] = '\0'; /* 255 bytes: the longest valid tag */
    assert_int_equal(nerve_beacon_send_value(b, long_tag, 2), 0);
    s_recv(f);
    assert_int_equal(f->ev.tag_len, NERVE_TAG_MAX);
    assert_true(s_num(&f->ev.data, "value") == 2);
    s_stats(b, 1, 0, 15);
    assert_int_equal(nerve_beacon_send_value(b, "/caf\xc3\xa9/\xe2\x82\xac", 3), 0); /* UTF-8 */
    s_recv(f);
    assert_string_equal(f->ev.tag, "/caf\xc3\xa9/\xe2\x82\xac");
    s_stats(b, 2, 0, 15);
    nerve_beacon_destroy(&b);
}

static void test_data_errors_are_sticky_and_refuse_the_send(void **state)
{
    fixture_t *f = *state;
    s_bind(f);
    nerve_beacon_t *b = s_beacon(f, "h");

    nerve_data_t *d = nerve_beacon_data(b);
    assert_int_equal(nerve_data_num(d, NULL, 1), NERVE_EINVAL);    /* map needs keys */
    assert_int_equal(nerve_data_num(d, "value", 1), NERVE_EINVAL); /* sticky */
    assert_int_equal(nerve_data_error(d), NERVE_EINVAL);
    assert_int_equal(nerve_beacon_send(b, "/x", d), NERVE_EINVAL);

    d = nerve_beacon_data(b); /* emptied, error cleared */
    assert_int_equal(nerve_data_error(d), 0);
    nerve_data_array_begin(d, "a");
    assert_int_equal(nerve_data_int(d, "key", 1), NERVE_EINVAL); /* array takes no keys */
    assert_int_equal(nerve_beacon_send(b, "/x", d), NERVE_EINVAL);

    d = nerve_beacon_data(b);
    assert_int_equal(nerve_data_str(d, "s", "bad \xc3\x28 utf8"), NERVE_EINVAL);
    d = nerve_beacon_data(b);
    assert_int_equal(nerve_data_str(d, "\xed\xa0\x80", "surrogate key"), NERVE_EINVAL);
    d = nerve_beacon_data(b);
    assert_int_equal(nerve_data_str(d, "s", NULL), NERVE_EINVAL);
    d = nerve_beacon_data(b);
    assert_int_equal(nerve_data_strn(d, "s", "a\0b", 3), 0); /* NUL is valid UTF-8 */
    assert_int_equal(nerve_data_str(d, "e", "h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), 0);

    d = nerve_beacon_data(b);
    assert_int_equal(nerve_data_map_end(d), NERVE_EINVAL); /* nothing open */
    d = nerve_beacon_data(b);
    nerve_data_map_begin(d, "m");
    assert_int_equal(nerve_data_array_end(d), NERVE_EINVAL); /* other kind */
    d = nerve_beacon_data(b);
    nerve_data_map_begin(d, "m");
    assert_int_equal(nerve_beacon_send(b, "/x", d), NERVE_EINVAL); /* left open */
    const void *bytes;
    size_t len;
    assert_int_equal(nerve_data_bytes(d, &bytes, &len), NERVE_EINVAL);

    s_stats(b, 0, 0, 3);
    nerve_beacon_destroy(&b);
}

static void test_data_nesting_stops_at_the_depth_limit(void **state)
{
    char buf[512];
    nerve_data_t d;
    nerve_data_init(&d, buf, sizeof buf);
    for (int i = 0; i < NERVE_DATA_DEPTH_MAX; i++)
        assert_int_equal(nerve_data_map_begin(&d, "m"), 0);
    assert_int_equal(nerve_data_map_begin(&d, "m"), NERVE_ERANGE);
    assert_int_equal(nerve_data_error(&d), NERVE_ERANGE);

    nerve_data_reset(&d);
    for (int i = 0; i < NERVE_DATA_DEPTH_MAX; i++)
        assert_int_equal(nerve_data_array_begin(&d, i ? NULL : "a"), 0);
    assert_int_equal(nerve_data_int(&d, NULL, 1), 0);
    for (int i = 0; i < NERVE_DATA_DEPTH_MAX; i++)
        assert_int_equal(nerve_data_array_end(&d), 0);
    const void *bytes;
    size_t len;
    assert_int_equal(nerve_data_bytes(&d, &bytes, &len), 0);
    /* {"a": [[[…[1]…]]]}: fixmap, key, 16 fixarrays, the int */
    assert_int_equal(len, 1 + 2 + NERVE_DATA_DEPTH_MAX + 1);
}

static void test_data_caller_buffer_overflow_is_erange_and_sticky(void **state)
{
    fixture_t *f = *state;
    s_bind(f);
    nerve_beacon_t *b = s_beacon(f, "h");
    char buf[40];
    nerve_data_t d;
    nerve_data_init(&d, buf, sizeof buf);
    assert_int_equal(nerve_data_str(&d, "a", "0123456789"), 0);
    assert_int_equal(nerve_data_str(&d, "b", "0123456789012345678901234"), NERVE_ERANGE);
    assert_int_equal(nerve_data_bool(&d, "c", true), NERVE_ERANGE);
    assert_int_equal(nerve_beacon_send(b, "/x", &d), NERVE_ERANGE);
    s_stats(b, 0, 0, 1);

    nerve_data_t tiny;
    nerve_data_init(&tiny, buf, 8); /* below the minimum */
    assert_int_equal(nerve_data_error(&tiny), NERVE_ERANGE);
    nerve_data_init(&tiny, NULL, 100);
    assert_int_equal(nerve_data_bool(&tiny, "x", true), NERVE_ERANGE);
    nerve_beacon_destroy(&b);
}

static void test_data_bytes_unpack_to_the_same_map(void **state)
{
    char buf[256];
    nerve_data_t d;
    nerve_data_init(&d, buf, sizeof buf);
    nerve_data_num(&d, "value", 1.5);
    nerve_data_array_begin(&d, "c");
    nerve_data_str(&d, NULL, "x");
    nerve_data_array_end(&d);
    const void *bytes;
    size_t len;
    assert_int_equal(nerve_data_bytes(&d, &bytes, &len), 0);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object obj;
    size_t off = 0;
    assert_int_equal(msgpack_unpack(bytes, len, &off, &zone, &obj), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, len);
    assert_int_equal(obj.via.map.size, 2);
    assert_true(s_num(&obj, "value") == 1.5);
    s_assert_str(&obj, "c.0", "x");
    /* still open for more, and bytes reflect the addition */
    nerve_data_bool(&d, "more", true);
    assert_int_equal(nerve_data_bytes(&d, &bytes, &len), 0);
    off = 0;
    assert_int_equal(msgpack_unpack(bytes, len, &off, &zone, &obj), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(obj.via.map.size, 3);
    msgpack_zone_destroy(&zone);
}

static void test_beacon_large_data_grows_up_to_the_payload_limit(void **state)
{
    fixture_t *f = *state;
    s_bind(f);
    nerve_beacon_t *b = s_beacon(f, "h");
    size_t n = 200 * 1024;
    char *big = malloc(NERVE_PAYLOAD_MAX + 1);
    assert_non_null(big);
    memset(big, 'z', NERVE_PAYLOAD_MAX);
    big[n] = '\0';
    nerve_data_t *d = nerve_beacon_data(b);
    assert_int_equal(nerve_data_str(d, "blob", big), 0);
    assert_int_equal(nerve_beacon_send(b, "/big", d), 0);
    s_recv(f);
    const msgpack_object *blob = nerve_obj_get(&f->ev.data, "blob");
    assert_int_equal(blob->via.str.size, n);
    assert_memory_equal(blob->via.str.ptr, big, n);

    big[n] = 'z';
    big[NERVE_PAYLOAD_MAX] = '\0'; /* 1 MiB of data cannot fit a 1 MiB payload */
    d = nerve_beacon_data(b);
    assert_int_equal(nerve_data_str(d, "blob", big), NERVE_ERANGE);
    assert_int_equal(nerve_beacon_send(b, "/big", d), NERVE_ERANGE);
    free(big);
    s_stats(b, 1, 0, 1);
    nerve_beacon_destroy(&b);
}

static void test_beacon_new_refuses_bad_arguments(void **state)
{
    fixture_t *f = *state;
    assert_null(nerve_beacon_new("nope://where", NULL));
    assert_null(nerve_beacon_new("tcp://", NULL));
    nerve_beacon_options_t o = {.host = ""};
    assert_null(nerve_beacon_new(f->endpoint, &o));
    char long_host[NERVE_HOST_MAX + 2];
    memset(long_host, 'h', sizeof long_host - 1);
    long_host[sizeof long_host - 1] = '\0';
    o.host = long_host;
    assert_null(nerve_beacon_new(f->endpoint, &o));
    o.host = "bad\xff";
    assert_null(nerve_beacon_new(f->endpoint, &o));
    o = (nerve_beacon_options_t){.hwm = -1};
    assert_null(nerve_beacon_new(f->endpoint, &o));
    o = (nerve_beacon_options_t){.client_key = "/etc/nerve/keys/me.key"};
    assert_null(nerve_beacon_new("tcp://127.0.0.1:1", &o)); /* a key name, not a path */
    char keys[128];
    snprintf(keys, sizeof keys, "%s/keys", f->dir);
    o = (nerve_beacon_options_t){.keys = keys, .server_key = "not a key!"};
    assert_null(nerve_beacon_new("tcp://127.0.0.1:1", &o)); /* no name, path or Z85 key */
}

static void test_beacon_destroy_is_safe_twice_and_on_null(void **state)
{
    fixture_t *f = *state;
    nerve_beacon_t *b = s_beacon(f, "h");
    nerve_beacon_destroy(&b);
    assert_null(b);
    nerve_beacon_destroy(&b);
    nerve_beacon_destroy(NULL);
    assert_int_equal(nerve_beacon_send_value(NULL, "/x", 1), NERVE_EINVAL);
    assert_null(nerve_beacon_data(NULL));
    nerve_beacon_stats_t st;
    assert_int_equal(nerve_beacon_stats(NULL, &st), NERVE_EINVAL);
}

/* ------------------------------------------------------------------------
   Never blocking
   ------------------------------------------------------------------------ */

/*  No manager at all: the first `hwm` events queue, the rest are dropped
    and counted, and the caller is never held up (the time limit is a
    generous "it returned", not a performance figure). */
static void test_beacon_full_queue_drops_and_counts_without_blocking(void **state)
{
    fixture_t *f = *state;
    nerve_beacon_options_t o = {.host = "h", .hwm = 100, .linger_ms = -1};
    nerve_beacon_t *b = nerve_beacon_new(f->endpoint, &o);
    assert_non_null(b);
    const int total = 20000;
    int full = 0, ok = 0;
    uint64_t start = nerve_clock_mono_ms();
    for (int i = 0; i < total; i++) {
        int rc = nerve_beacon_send_value(b, "/app/load", i);
        if (rc == NERVE_EFULL)
            full++;
        else if (rc == 0)
            ok++;
        else
            fail_msg("send %d: %s", i, nerve_strerror(rc));
    }
    assert_true(nerve_clock_mono_ms() - start < 20000);
    nerve_beacon_stats_t st;
    nerve_beacon_stats(b, &st);
    assert_int_equal(st.sent, ok);
    assert_int_equal(st.dropped, full);
    assert_int_equal(st.invalid, 0);
    assert_int_equal(ok + full, total);
    assert_true(ok >= 1 && ok <= 2 * 100); /* the queue, not the whole stream */
    assert_true(full >= total - 200);
    nerve_beacon_destroy(&b); /* linger -1: returns at once */
}

/*  Events sent while the manager is away are queued and delivered, in
    order, once it binds (ZMQ_IMMEDIATE off). */
static void test_beacon_queues_until_the_manager_appears(void **state)
{
    fixture_t *f = *state;
    nerve_beacon_t *b = s_beacon(f, "h");
    for (int i = 0; i < 5; i++)
        assert_int_equal(nerve_beacon_send_value(b, "/early", i), 0);
    s_bind(f);
    for (int i = 0; i < 5; i++) {
        s_recv(f);
        assert_string_equal(f->ev.tag, "/early");
        assert_true(s_num(&f->ev.data, "value") == i);
    }
    s_stats(b, 5, 0, 0);
    nerve_beacon_destroy(&b);
}

/* ------------------------------------------------------------------------
   Config
   ------------------------------------------------------------------------ */

static void s_write(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_beacon_from_config_uses_manager_and_host(void **state)
{
    fixture_t *f = *state;
    s_bind(f);
    char path[128], text[512];
    snprintf(path, sizeof path, "%s/beacon.yaml", f->dir);
    snprintf(text, sizeof text,
             "manager: %s\nhost: cfg-host\nhwm: 50\nlinger: 0\nsecurity: {insecure: true}\n",
             f->endpoint);
    s_write(path, text);
    nerve_beacon_t *b = nerve_beacon_new_from_config(path);
    assert_non_null(b);
    assert_string_equal(nerve_beacon_host(b), "cfg-host");
    assert_int_equal(nerve_beacon_send_value(b, "/cfg", 9), 0);
    s_recv(f);
    assert_string_equal(f->ev.host, "cfg-host");
    assert_true(s_num(&f->ev.data, "value") == 9);
    nerve_beacon_destroy(&b);
}

static void test_beacon_from_config_refuses_bad_files(void **state)
{
    fixture_t *f = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/beacon.yaml", f->dir);
    static const char *const bad[] = {
        "manager: ipc:///tmp/x\nhots: typo\n",      /* unknown key */
        "hwm: lots\n",                              /* not an integer */
        "hwm: 0\n",                                 /* out of range */
        "linger: forever\n",                        /* not a duration */
        "security: {server_key: /k/manager.pub}\n", /* not a security key */
        "security: {insecure: maybe}\n",            /* not a bool */
        "security: {curve: false}\n",               /* off only with insecure: true */
        "manager: tcp://127.0.0.1:1\nkey: ../x\n",  /* not a key name */
        "- a list\n",                               /* not a map */
        "manager: [1, 2\n",                         /* YAML syntax */
        "manager: nope://x\n",                      /* endpoint */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_write(path, bad[i]);
        nerve_beacon_t *b = nerve_beacon_new_from_config(path);
        if (b)
            fail_msg("config accepted: %s", bad[i]);
    }
    snprintf(path, sizeof path, "%s/missing.yaml", f->dir);
    assert_null(nerve_beacon_new_from_config(path));
    assert_null(nerve_beacon_new_from_config(NULL));
}

/* ------------------------------------------------------------------------
   CURVE
   ------------------------------------------------------------------------ */

/*  A CURVE manager: keys in <dir>/<sub>, its keypair "manager", a ZAP
    handler, a PULL bound on TCP. Returns the endpoint in ep. */
typedef struct curve_server {
    nerve_security_t sec;
    nerve_zap_t *zap;
} curve_server_t;

static void s_curve_bind(fixture_t *f, curve_server_t *srv, const char *sub, char *ep,
                         size_t epsize)
{
    char err[512];
    assert_int_equal(nerve_security_init(&srv->sec, "manager"), 0);
    snprintf(srv->sec.keys, sizeof srv->sec.keys, "%s/%s", f->dir, sub);
    if (nerve_keys_gen(srv->sec.keys, "manager", err, sizeof err) != 0)
        fail_msg("%s", err);
    srv->zap = nerve_zap_start(f->ctx, &srv->sec, err, sizeof err);
    if (!srv->zap)
        fail_msg("%s", err);
    f->pull = zmq_socket(f->ctx, ZMQ_PULL);
    int timeout = 10000, linger = 0;
    zmq_setsockopt(f->pull, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(f->pull, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(nerve_sec_server(f->pull, &srv->sec, err, sizeof err), 0);
    assert_int_equal(zmq_bind(f->pull, "tcp://127.0.0.1:*"), 0);
    size_t len = epsize;
    assert_int_equal(zmq_getsockopt(f->pull, ZMQ_LAST_ENDPOINT, ep, &len), 0);
}

static void s_curve_stop(fixture_t *f, curve_server_t *srv)
{
    zmq_close(f->pull);
    f->pull = NULL;
    nerve_zap_stop(&srv->zap);
}

static void test_beacon_curve_reaches_the_pinned_manager_with_its_own_key(void **state)
{
    fixture_t *f = *state;
    curve_server_t srv;
    char ep[128], keys[128], err[512];
    snprintf(keys, sizeof keys, "%s/keys", f->dir);
    /* The beacon's keypair beside the manager's: a local keypair, which
       the manager's ZAP handler trusts without an accept. */
    if (nerve_keys_gen(keys, "app", err, sizeof err) != 0)
        fail_msg("%s", err);
    s_curve_bind(f, &srv, "keys", ep, sizeof ep);
    nerve_beacon_options_t o = {.host = "c1", .linger_ms = -1, .keys = keys, .client_key = "app"};
    nerve_beacon_t *b = nerve_beacon_new(ep, &o);
    assert_non_null(b);
    assert_int_equal(nerve_beacon_send_value(b, "/curve/ok", 7), 0);
    s_recv(f);
    assert_string_equal(f->ev.tag, "/curve/ok");
    assert_true(s_num(&f->ev.data, "value") == 7);
    /* the message carries the beacon's key as its User-Id */
    char want[NERVE_Z85_KEY_LEN + 1];
    assert_int_equal(nerve_keys_resolve(keys, "app", want, NULL, 0), 0);
    const char *uid = zmq_msg_gets(&f->parts[0], "User-Id");
    assert_non_null(uid);
    assert_string_equal(uid, want);
    assert_true(nerve_zap_allowed(srv.zap, uid));
    nerve_beacon_destroy(&b);
    s_curve_stop(f, &srv);
}

static void test_beacon_curve_refused_key_is_pending_then_gets_in_after_accept(void **state)
{
    fixture_t *f = *state;
    curve_server_t srv;
    char ep[128], keys[128], err[512], pinned[NERVE_Z85_KEY_LEN + 1];
    char mine[NERVE_Z85_KEY_LEN + 1], pending[NERVE_KEY_PENDING_NAME_LEN + 1], path[1200];
    s_curve_bind(f, &srv, "server", ep, sizeof ep);
    /* Another host: its own keys directory, the manager's key given as Z85. */
    snprintf(keys, sizeof keys, "%s/client", f->dir);
    assert_int_equal(nerve_keys_resolve(srv.sec.keys, "manager", pinned, NULL, 0), 0);
    nerve_beacon_options_t o = {.host = "c2", .linger_ms = -1, .keys = keys, .server_key = pinned};
    nerve_beacon_t *b = nerve_beacon_new(ep, &o);
    assert_non_null(b);
    assert_int_equal(nerve_keys_resolve(keys, "beacon", mine, NULL, 0), 0);
    assert_int_equal(nerve_keys_pending_name(mine, pending), 0);
    snprintf(path, sizeof path, "%s/pending/%s.pub", srv.sec.keys, pending);
    /* Refused: nothing arrives, and the manager records the key as pending. */
    int timeout = 100;
    zmq_setsockopt(f->pull, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    bool recorded = false;
    for (int i = 0; i < 100 && !recorded; i++) {
        nerve_beacon_send_value(b, "/curve/refused", 1);
        zmq_msg_t m;
        zmq_msg_init(&m);
        assert_true(zmq_msg_recv(&m, f->pull, 0) < 0); /* never let through */
        zmq_msg_close(&m);
        recorded = access(path, F_OK) == 0;
    }
    assert_true(recorded);
    nerve_zap_stats_t zs;
    nerve_zap_stats(srv.zap, &zs);
    assert_true(zs.refused_unknown >= 1);
    /* Accepted: the beacon's next socket (after its pause) gets in. */
    if (nerve_keys_accept(srv.sec.keys, pending, err, sizeof err) != 0)
        fail_msg("%s", err);
    bool arrived = false;
    for (int i = 0; i < 150 && !arrived; i++) { /* up to 15 s: the pauses are 1 s, 2 s, … */
        nerve_beacon_send_value(b, "/curve/accepted", 2);
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, f->pull, 0) >= 0) {
            arrived = zmq_msg_size(&m) == strlen("/curve/accepted") &&
                      memcmp(zmq_msg_data(&m), "/curve/accepted", zmq_msg_size(&m)) == 0;
            if (zmq_msg_more(&m)) {
                zmq_msg_t rest;
                zmq_msg_init(&rest);
                zmq_msg_recv(&rest, f->pull, 0);
                zmq_msg_close(&rest);
            }
        }
        zmq_msg_close(&m);
    }
    assert_true(arrived);
    nerve_beacon_stats_t st;
    nerve_beacon_stats(b, &st);
    assert_true(st.dropped >= 1); /* what was sent while refused is counted, not hidden */
    nerve_beacon_destroy(&b);
    s_curve_stop(f, &srv);
}

static void test_beacon_curve_refuses_an_unsafe_keys_directory(void **state)
{
    fixture_t *f = *state;
    char keys[128];
    snprintf(keys, sizeof keys, "%s/open", f->dir);
    assert_int_equal(mkdir(keys, 0700), 0);
    assert_int_equal(chmod(keys, 0777), 0);
    nerve_beacon_options_t o = {.keys = keys, .server_key = "manager"};
    assert_null(nerve_beacon_new("tcp://127.0.0.1:1", &o));
    /* IPC is never CURVE: the same options are fine there */
    nerve_beacon_t *b = nerve_beacon_new(f->endpoint, &o);
    assert_non_null(b);
    nerve_beacon_destroy(&b);
}

#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)

int main(void)
{
    nerve_log_set_level(NERVE_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        T(test_beacon_send_decodes_with_the_codec),
        T(test_beacon_curve_reaches_the_pinned_manager_with_its_own_key),
        T(test_beacon_curve_refused_key_is_pending_then_gets_in_after_accept),
        T(test_beacon_curve_refuses_an_unsafe_keys_directory),
        T(test_beacon_each_event_gets_a_fresh_random_id),
        T(test_beacon_send_value_sends_a_value_map),
        T(test_beacon_send_without_data_sends_an_empty_map),
        T(test_beacon_container_headers_shrink_to_their_count),
        T(test_data_int_uses_every_integer_width_correctly),
        T(test_beacon_stack_builder_is_copied_into_the_event),
        T(test_beacon_send_raw_accepts_one_msgpack_value),
        T(test_beacon_send_raw_refuses_malformed_msgpack),
        T(test_beacon_bad_tag_is_refused_and_counted),
        T(test_data_errors_are_sticky_and_refuse_the_send),
        T(test_data_nesting_stops_at_the_depth_limit),
        T(test_data_caller_buffer_overflow_is_erange_and_sticky),
        T(test_data_bytes_unpack_to_the_same_map),
        T(test_beacon_large_data_grows_up_to_the_payload_limit),
        T(test_beacon_new_refuses_bad_arguments),
        T(test_beacon_destroy_is_safe_twice_and_on_null),
        T(test_beacon_full_queue_drops_and_counts_without_blocking),
        T(test_beacon_queues_until_the_manager_appears),
        T(test_beacon_from_config_uses_manager_and_host),
        T(test_beacon_from_config_refuses_bad_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
