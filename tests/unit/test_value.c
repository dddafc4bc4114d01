/*  test_value.c — msgpack value helpers: lookups, paths, conversions,
    equality, copies, printing, and the JSON parser with its errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nerve/error.h>
#include <nerve/value.h>

static msgpack_zone *g_zone;

static int s_setup(void **state)
{
    g_zone = msgpack_zone_new(4096);
    return g_zone ? 0 : -1;
}

static int s_teardown(void **state)
{
    msgpack_zone_free(g_zone);
    g_zone = NULL;
    return 0;
}

/*  Parses JSON that the test knows is valid. */
static msgpack_object s_json(const char *text)
{
    msgpack_object o;
    char err[128];
    int rc = nerve_obj_from_json(g_zone, text, strlen(text), &o, err, sizeof err);
    if (rc)
        fail_msg("bad test JSON %s: %s", text, err);
    return o;
}

/*  JSON out of a value, as a heap string the caller frees. */
static char *s_to_json(const msgpack_object *o)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(nerve_obj_to_json(o, &sb), 0);
    char *s = strndup(sb.data ? sb.data : "", sb.size);
    msgpack_sbuffer_destroy(&sb);
    return s;
}

static void s_assert_json(const msgpack_object *o, const char *expected)
{
    char *s = s_to_json(o);
    assert_string_equal(s, expected);
    free(s);
}

/*  Parses text expecting failure, returns the message. */
static const char *s_json_error(const char *text, size_t len)
{
    static char err[256];
    msgpack_object o;
    assert_int_equal(nerve_obj_from_json(g_zone, text, len, &o, err, sizeof err), NERVE_EPARSE);
    assert_int_equal(o.type, MSGPACK_OBJECT_NIL);
    return err;
}

/* ------------------------------------------------------------------------ */

static void test_obj_get_finds_str_keys_and_refuses_non_maps(void **state)
{
    msgpack_object m = s_json("{\"a\":1,\"\":2,\"ab\":3}");
    assert_int_equal(nerve_obj_get(&m, "a")->via.u64, 1);
    assert_int_equal(nerve_obj_get(&m, "")->via.u64, 2);
    assert_int_equal(nerve_obj_getn(&m, "abc", 2)->via.u64, 3);
    assert_null(nerve_obj_get(&m, "b"));
    assert_null(nerve_obj_get(&m, NULL));
    assert_null(nerve_obj_get(NULL, "a"));
    msgpack_object arr = s_json("[\"a\"]");
    assert_null(nerve_obj_get(&arr, "a"));
}

static void test_obj_path_follows_maps_and_array_indexes(void **state)
{
    msgpack_object o = s_json("{\"a\":{\"b\":{\"c\":7}},\"items\":[{\"name\":\"x\"},"
                              "{\"name\":\"y\"}],\"0\":\"zero\"}");
    assert_int_equal(nerve_obj_path(&o, "a.b.c")->via.u64, 7);
    assert_true(nerve_obj_str_eq(nerve_obj_path(&o, "items.1.name"), "y"));
    assert_true(nerve_obj_str_eq(nerve_obj_path(&o, "items.0.name"), "x"));
    assert_true(nerve_obj_str_eq(nerve_obj_path(&o, "0"), "zero")); /* a map key "0" */
    assert_ptr_equal(nerve_obj_path(&o, ""), &o);
    assert_ptr_equal(nerve_obj_path(&o, NULL), &o);
    assert_null(nerve_obj_path(&o, "items.2.name"));  /* out of range */
    assert_null(nerve_obj_path(&o, "items.-1"));
    assert_null(nerve_obj_path(&o, "items.x"));
    assert_null(nerve_obj_path(&o, "a.b.c.d"));       /* through a number */
    assert_null(nerve_obj_path(&o, "a..b"));
    assert_null(nerve_obj_path(&o, "a.b."));
    assert_null(nerve_obj_path(&o, ".a"));
    assert_null(nerve_obj_path(&o, "items.99999999999"));
    assert_null(nerve_obj_path(NULL, "a"));
}

static void test_obj_path_decimal_segment_finds_integer_map_keys(void **state)
{
    msgpack_object_kv kv[2];
    kv[0].key = nerve_obj_int_new(5);
    kv[0].val = nerve_obj_str_new(g_zone, "five", 4);
    kv[1].key = nerve_obj_str_new(g_zone, "x", 1);
    kv[1].val = nerve_obj_bool_new(true);
    msgpack_object m = {.type = MSGPACK_OBJECT_MAP};
    m.via.map.size = 2;
    m.via.map.ptr = kv;
    assert_true(nerve_obj_str_eq(nerve_obj_path(&m, "5"), "five"));
    assert_null(nerve_obj_path(&m, "6"));
}

static void test_obj_number_bool_and_str_conversions(void **state)
{
    msgpack_object o = s_json("{\"i\":3,\"n\":-4,\"f\":2.5,\"t\":true,\"z\":0,\"s\":\"hi\","
                              "\"nil\":null}");
    double d = 0;
    bool b = false;
    assert_true(nerve_obj_number(nerve_obj_get(&o, "i"), &d));
    assert_true(d == 3.0);
    assert_true(nerve_obj_number(nerve_obj_get(&o, "n"), &d));
    assert_true(d == -4.0);
    assert_true(nerve_obj_number(nerve_obj_get(&o, "f"), &d));
    assert_true(d == 2.5);
    assert_false(nerve_obj_number(nerve_obj_get(&o, "s"), &d));
    assert_false(nerve_obj_number(nerve_obj_get(&o, "t"), &d));
    assert_false(nerve_obj_number(NULL, &d));

    assert_true(nerve_obj_bool(nerve_obj_get(&o, "t"), &b));
    assert_true(b);
    assert_true(nerve_obj_bool(nerve_obj_get(&o, "z"), &b));
    assert_false(b);
    assert_true(nerve_obj_bool(nerve_obj_get(&o, "f"), &b));
    assert_true(b);
    assert_false(nerve_obj_bool(nerve_obj_get(&o, "s"), &b));
    assert_false(nerve_obj_bool(nerve_obj_get(&o, "nil"), &b));

    const char *p;
    size_t n;
    assert_true(nerve_obj_str(nerve_obj_get(&o, "s"), &p, &n));
    assert_int_equal(n, 2);
    assert_memory_equal(p, "hi", 2);
    assert_false(nerve_obj_str(nerve_obj_get(&o, "i"), &p, &n));
    assert_true(nerve_obj_str_eq(nerve_obj_get(&o, "s"), "hi"));
    assert_false(nerve_obj_str_eq(nerve_obj_get(&o, "s"), "h"));
    assert_false(nerve_obj_str_eq(nerve_obj_get(&o, "s"), "hii"));

    assert_true(nerve_obj_get_number(&o, "f", 9) == 2.5);
    assert_true(nerve_obj_get_number(&o, "s", 9) == 9);
    assert_true(nerve_obj_get_number(&o, "missing", -1) == -1);
}

static void test_obj_strcpy_leaves_buf_untouched_when_too_small(void **state)
{
    msgpack_object s = s_json("\"hello\"");
    char buf[6] = "XXXXX";
    assert_false(nerve_obj_strcpy(&s, buf, 5));
    assert_string_equal(buf, "XXXXX");
    assert_true(nerve_obj_strcpy(&s, buf, 6));
    assert_string_equal(buf, "hello");
    msgpack_object i = s_json("1");
    assert_false(nerve_obj_strcpy(&i, buf, sizeof buf));
    assert_string_equal(buf, "hello");
}

static void test_obj_equal_compares_numbers_by_value_across_types(void **state)
{
    msgpack_object one = nerve_obj_int_new(1), onef = nerve_obj_double_new(1.0);
    msgpack_object m1 = nerve_obj_int_new(-1), m1f = nerve_obj_double_new(-1.0);
    msgpack_object half = nerve_obj_double_new(0.5), zero = nerve_obj_int_new(0);
    msgpack_object negzero = nerve_obj_double_new(-0.0);
    assert_true(nerve_obj_equal(&one, &onef));
    assert_true(nerve_obj_equal(&onef, &one));
    assert_true(nerve_obj_equal(&m1, &m1f));
    assert_false(nerve_obj_equal(&one, &m1));
    assert_false(nerve_obj_equal(&one, &m1f));
    assert_false(nerve_obj_equal(&zero, &half));
    assert_true(nerve_obj_equal(&zero, &negzero));

    /* 2^53 + 1 has no double: the int must not round to equal 2^53. */
    msgpack_object big = nerve_obj_int_new(9007199254740993LL);
    msgpack_object bigf = nerve_obj_double_new(9007199254740992.0);
    assert_false(nerve_obj_equal(&big, &bigf));
    msgpack_object umax = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = UINT64_MAX};
    msgpack_object two64 = nerve_obj_double_new(18446744073709551616.0);
    assert_false(nerve_obj_equal(&umax, &two64));
    msgpack_object imin = nerve_obj_int_new(INT64_MIN);
    msgpack_object imin_f = nerve_obj_double_new(-9223372036854775808.0);
    assert_true(nerve_obj_equal(&imin, &imin_f));

    msgpack_object nan1 = nerve_obj_double_new(NAN), nan2 = nerve_obj_double_new(NAN);
    assert_true(nerve_obj_equal(&nan1, &nan2)); /* a value equals its copy */
    assert_false(nerve_obj_equal(&nan1, &one));

    msgpack_object t = nerve_obj_bool_new(true);
    assert_false(nerve_obj_equal(&t, &one)); /* bool is not a number */
}

static void test_obj_equal_is_deep_and_ignores_map_key_order(void **state)
{
    msgpack_object a = s_json("{\"x\":[1,2,{\"k\":\"v\"}],\"y\":null,\"z\":1.0}");
    msgpack_object b = s_json("{\"z\":1,\"y\":null,\"x\":[1.0,2,{\"k\":\"v\"}]}");
    msgpack_object c = s_json("{\"z\":1,\"y\":null,\"x\":[2,1,{\"k\":\"v\"}]}");
    msgpack_object d = s_json("{\"z\":1,\"y\":null,\"x\":[1,2,{\"k\":\"w\"}]}");
    msgpack_object e = s_json("{\"z\":1,\"y\":null}");
    msgpack_object dup = s_json("{\"z\":1,\"z\":1,\"x\":[1,2,{\"k\":\"v\"}]}");
    assert_true(nerve_obj_equal(&a, &b));
    assert_false(nerve_obj_equal(&a, &c)); /* arrays keep order */
    assert_false(nerve_obj_equal(&a, &d));
    assert_false(nerve_obj_equal(&a, &e));
    assert_false(nerve_obj_equal(&a, &dup)); /* a duplicate cannot stand in for "y" */
    assert_false(nerve_obj_equal(&dup, &a));

    msgpack_object s = nerve_obj_str_new(g_zone, "ab", 2);
    msgpack_object bin = s;
    bin.type = MSGPACK_OBJECT_BIN;
    assert_false(nerve_obj_equal(&s, &bin));
    assert_false(nerve_obj_equal(&s, NULL));
    assert_true(nerve_obj_equal(NULL, NULL));
}

static void test_obj_builders_make_the_right_types(void **state)
{
    msgpack_object o = nerve_obj_int_new(-5);
    assert_int_equal(o.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal(o.via.i64, -5);
    o = nerve_obj_int_new(5);
    assert_int_equal(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    o = nerve_obj_double_new(1.5);
    assert_int_equal(o.type, MSGPACK_OBJECT_FLOAT64);
    o = nerve_obj_bool_new(false);
    assert_int_equal(o.type, MSGPACK_OBJECT_BOOLEAN);
    assert_false(o.via.boolean);
    char src[] = "abc";
    o = nerve_obj_str_new(g_zone, src, 3);
    src[0] = 'X'; /* the builder copied */
    assert_true(nerve_obj_str_eq(&o, "abc"));
    o = nerve_obj_str_new(g_zone, NULL, 0);
    assert_true(nerve_obj_str_eq(&o, ""));
    o = nerve_obj_str_new(NULL, "a", 1);
    assert_int_equal(o.type, MSGPACK_OBJECT_NIL);
}

static void test_obj_copy_is_deep_and_outlives_the_source(void **state)
{
    msgpack_zone *src_zone = msgpack_zone_new(1024);
    const char *text = "{\"a\":[1,-2,3.5,\"s\",true,null],\"b\":{\"c\":\"deep\"},\"e\":\"\"}";
    msgpack_object src, dst;
    assert_int_equal(nerve_obj_from_json(src_zone, text, strlen(text), &src, NULL, 0), 0);
    msgpack_object bin = {.type = MSGPACK_OBJECT_BIN};
    bin.via.bin.ptr = "\x01\x02";
    bin.via.bin.size = 2;
    src.via.map.ptr[2].val = bin;
    assert_int_equal(nerve_obj_copy(g_zone, &src, &dst), 0);
    assert_true(nerve_obj_equal(&src, &dst));
    msgpack_zone_free(src_zone); /* ASan would catch a pointer left behind */
    assert_true(nerve_obj_str_eq(nerve_obj_path(&dst, "b.c"), "deep"));
    assert_true(nerve_obj_path(&dst, "a.2")->via.f64 == 3.5);
    assert_int_equal(nerve_obj_get(&dst, "e")->type, MSGPACK_OBJECT_BIN);
    assert_memory_equal(nerve_obj_get(&dst, "e")->via.bin.ptr, "\x01\x02", 2);

    /* Copy onto itself is allowed. */
    assert_int_equal(nerve_obj_copy(g_zone, &dst, &dst), 0);
    assert_true(nerve_obj_str_eq(nerve_obj_path(&dst, "b.c"), "deep"));
    assert_int_equal(nerve_obj_copy(NULL, &dst, &dst), NERVE_EINVAL);
    assert_int_equal(dst.type, MSGPACK_OBJECT_NIL);
}

/*  A chain of n one-item arrays, built by hand (deeper than any parser
    would allow). */
static msgpack_object s_deep(size_t n)
{
    msgpack_object *items = msgpack_zone_malloc(g_zone, n * sizeof *items);
    items[n - 1] = nerve_obj_int_new(1);
    for (size_t i = n - 1; i > 0; i--) {
        items[i - 1].type = MSGPACK_OBJECT_ARRAY;
        items[i - 1].via.array.size = 1;
        items[i - 1].via.array.ptr = &items[i];
    }
    return items[0];
}

static void test_obj_helpers_refuse_values_nested_too_deep(void **state)
{
    msgpack_object ok = s_deep(NERVE_OBJ_DEPTH_MAX);
    msgpack_object deep = s_deep(NERVE_OBJ_DEPTH_MAX + 10);
    msgpack_object dst;
    assert_int_equal(nerve_obj_copy(g_zone, &ok, &dst), 0);
    assert_true(nerve_obj_equal(&ok, &dst));
    assert_int_equal(nerve_obj_copy(g_zone, &deep, &dst), NERVE_ERANGE);
    assert_int_equal(dst.type, MSGPACK_OBJECT_NIL);

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, "x", 1);
    assert_int_equal(nerve_obj_to_json(&deep, &sb), NERVE_ERANGE);
    assert_int_equal(sb.size, 1); /* nothing appended */
    msgpack_sbuffer_destroy(&sb);

    msgpack_object deep2 = s_deep(NERVE_OBJ_DEPTH_MAX + 10);
    assert_false(nerve_obj_equal(&deep, &deep2));
    char buf[64];
    nerve_obj_format(&deep, buf, sizeof buf);
    assert_int_equal(strncmp(buf, "[[[[", 4), 0);
}

static void test_obj_format_fits_or_truncates_with_ellipsis(void **state)
{
    msgpack_object o = s_json("{\"a\":[1,2.5,\"x\"],\"b\":true}");
    char buf[64];
    assert_string_equal(nerve_obj_format(&o, buf, sizeof buf), "{\"a\":[1,2.5,\"x\"],\"b\":true}");
    char small[12];
    nerve_obj_format(&o, small, sizeof small);
    assert_string_equal(small, "{\"a\":[1,\xe2\x80\xa6"); /* 8 bytes + "…" + NUL */
    char tiny[3] = "XX";
    nerve_obj_format(&o, tiny, sizeof tiny);
    assert_string_equal(tiny, "");

    /* Never cuts a UTF-8 character in half. */
    msgpack_object s = s_json("\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"");
    char cut[8];
    nerve_obj_format(&s, cut, sizeof cut); /* room for 4 bytes + "…" */
    assert_string_equal(cut, "\"\xc3\xa9\xe2\x80\xa6");

    msgpack_object f = nerve_obj_double_new(3.0), n = nerve_obj_double_new(NAN);
    assert_string_equal(nerve_obj_format(&f, buf, sizeof buf), "3");
    assert_string_equal(nerve_obj_format(&n, buf, sizeof buf), "nan");
    assert_string_equal(nerve_obj_format(NULL, buf, sizeof buf), "null");
}

static void test_obj_to_json_escapes_strings(void **state)
{
    const char *text = "q\"b\\n\n\t\x01\x7f/\xc3\xa9";
    msgpack_object s = nerve_obj_str_new(g_zone, text, strlen(text));
    s_assert_json(&s, "\"q\\\"b\\\\n\\n\\t\\u0001\x7f/\xc3\xa9\"");
    /* Invalid UTF-8 (a lone continuation byte, an overlong '/', a surrogate)
       becomes U+FFFD so the output is always valid JSON. */
    const char *invalid = "a\x80" "b\xc0\xaf" "c\xed\xa0\x80";
    msgpack_object bad = nerve_obj_str_new(g_zone, invalid, strlen(invalid));
    s_assert_json(&bad, "\"a\\ufffdb\\ufffd\\ufffdc\\ufffd\\ufffd\\ufffd\"");
}

static void test_obj_to_json_writes_bin_as_hex_and_non_str_keys_as_strings(void **state)
{
    msgpack_object bin = {.type = MSGPACK_OBJECT_BIN};
    bin.via.bin.ptr = "\x00\xff\x10";
    bin.via.bin.size = 3;
    s_assert_json(&bin, "\"00ff10\"");

    msgpack_object_kv kv[2];
    kv[0].key = nerve_obj_int_new(-3);
    kv[0].val = bin;
    kv[1].key = nerve_obj_bool_new(true);
    kv[1].val.type = MSGPACK_OBJECT_NIL;
    msgpack_object m = {.type = MSGPACK_OBJECT_MAP};
    m.via.map.size = 2;
    m.via.map.ptr = kv;
    s_assert_json(&m, "{\"-3\":\"00ff10\",\"true\":null}");

    msgpack_object ext = {.type = MSGPACK_OBJECT_EXT};
    ext.via.ext.type = 5;
    ext.via.ext.ptr = "\xab";
    ext.via.ext.size = 1;
    s_assert_json(&ext, "{\"ext\":5,\"data\":\"ab\"}");
}

static void test_obj_to_json_prints_floats_in_shortest_round_trip_form(void **state)
{
    static const struct {
        double d;
        const char *json;
    } cases[] = {
        {0.1, "0.1"},       {1.0, "1.0"},   {-2.0, "-2.0"},  {1e300, "1e+300"},
        {2.5e-8, "2.5e-08"}, {-0.0, "-0.0"}, {123456.75, "123456.75"},
        {1.0 / 3.0, "0.3333333333333333"}, {0.1 + 0.2, "0.30000000000000004"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgpack_object f = nerve_obj_double_new(cases[i].d);
        s_assert_json(&f, cases[i].json);
        /* ... and read back to the very same double, still a float. */
        msgpack_object back = s_json(cases[i].json);
        assert_int_equal(back.type, MSGPACK_OBJECT_FLOAT64);
        assert_memory_equal(&back.via.f64, &cases[i].d, sizeof(double));
    }
    msgpack_object f32 = {.type = MSGPACK_OBJECT_FLOAT32, .via.f64 = (double)0.1f};
    s_assert_json(&f32, "0.1");
    msgpack_object inf = nerve_obj_double_new(INFINITY);
    s_assert_json(&inf, "null");
    msgpack_object big = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = UINT64_MAX};
    s_assert_json(&big, "18446744073709551615");
    msgpack_object min = nerve_obj_int_new(INT64_MIN);
    s_assert_json(&min, "-9223372036854775808");
}

static void test_obj_to_json_buf_measures_and_truncates_like_snprintf(void **state)
{
    msgpack_object o = s_json("{\"k\":[1,\"two\"]}");
    size_t n = nerve_obj_to_json_buf(&o, NULL, 0);
    assert_int_equal(n, strlen("{\"k\":[1,\"two\"]}"));
    char buf[32];
    assert_int_equal(nerve_obj_to_json_buf(&o, buf, sizeof buf), n);
    assert_string_equal(buf, "{\"k\":[1,\"two\"]}");
    char small[6];
    assert_int_equal(nerve_obj_to_json_buf(&o, small, sizeof small), n);
    assert_string_equal(small, "{\"k\":");
}

static void test_obj_json_round_trips(void **state)
{
    static const char *const docs[] = {
        "null", "true", "false", "0", "-1", "18446744073709551615", "-9223372036854775808",
        "1.5", "\"\"", "\"a\\\"b\\\\c\\n\\u0000\"", "[]", "{}",
        "{\"a\":[1,2,{\"b\":null}],\"c\":\"\xe2\x82\xac\",\"d\":-0.5,\"e\":[[],{}]}",
        "\"\xf0\x9f\x98\x80\"",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        msgpack_object a = s_json(docs[i]);
        char *out = s_to_json(&a);
        assert_string_equal(out, docs[i]); /* compact input comes back byte for byte */
        msgpack_object b = s_json(out);
        assert_true(nerve_obj_equal(&a, &b));
        assert_int_equal(a.type, b.type);
        free(out);
    }
}

static void test_obj_from_json_keeps_integers_integers(void **state)
{
    msgpack_object o = s_json(" 5 ");
    assert_int_equal(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(o.via.u64, 5);
    o = s_json("-5");
    assert_int_equal(o.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal(o.via.i64, -5);
    o = s_json("-0");
    assert_int_equal(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(o.via.u64, 0);
    o = s_json("18446744073709551615");
    assert_int_equal(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_true(o.via.u64 == UINT64_MAX);
    o = s_json("-9223372036854775808");
    assert_int_equal(o.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_true(o.via.i64 == INT64_MIN);
    o = s_json("18446744073709551616"); /* past 64 bits: a float */
    assert_int_equal(o.type, MSGPACK_OBJECT_FLOAT64);
    assert_true(o.via.f64 == 18446744073709551616.0);
    o = s_json("-9223372036854775809");
    assert_int_equal(o.type, MSGPACK_OBJECT_FLOAT64);
    o = s_json("1e2");
    assert_int_equal(o.type, MSGPACK_OBJECT_FLOAT64);
    assert_true(o.via.f64 == 100.0);
    o = s_json("2.50E-1");
    assert_true(o.via.f64 == 0.25);
    o = s_json("1e-400"); /* underflow is zero, not an error */
    assert_true(o.via.f64 == 0.0);
}

static void test_obj_from_json_decodes_escapes_and_surrogate_pairs(void **state)
{
    msgpack_object o = s_json("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20AC\\ud83d\\ude00\\u0041\"");
    const char expect[] = "\"\\/\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" "A";
    assert_int_equal(o.type, MSGPACK_OBJECT_STR);
    assert_int_equal(o.via.str.size, sizeof expect - 1);
    assert_memory_equal(o.via.str.ptr, expect, sizeof expect - 1);
    o = s_json("\"a\\u0000b\"");
    assert_int_equal(o.via.str.size, 3);
    assert_memory_equal(o.via.str.ptr, "a\0b", 3);
}

static void test_obj_from_json_errors_name_the_offset(void **state)
{
    static const struct {
        const char *text;
        const char *message;
    } cases[] = {
        {"", "unexpected end of input, expected a value at offset 0"},
        {"  ", "unexpected end of input, expected a value at offset 2"},
        {"[1,]", "unexpected ']', expected a value at offset 3"},
        {"[1 2]", "unexpected '2', expected ',' or ']' at offset 3"},
        {"[1", "unexpected end of input, expected ',' or ']' at offset 2"},
        {"{\"a\" 1}", "unexpected '1', expected ':' at offset 5"},
        {"{\"a\":1,}", "unexpected '}', expected a string key at offset 7"},
        {"{a:1}", "unexpected 'a', expected a string key at offset 1"},
        {"\"abc", "unterminated string at offset 0"},
        {"\"ab\\", "unterminated string at offset 0"},
        {"01", "leading zero in number at offset 0"},
        {"-", "unexpected end of input, expected a digit at offset 1"},
        {"1.", "unexpected end of input, expected a digit after '.' at offset 2"},
        {"1e+", "unexpected end of input, expected a digit in the exponent at offset 3"},
        {"+1", "unexpected '+', expected a value at offset 0"},
        {".5", "unexpected '.', expected a value at offset 0"},
        {"1 2", "unexpected '2', expected end of input at offset 2"},
        {"tru", "unexpected 't', expected a value at offset 0"},
        {"nul1", "unexpected 'n', expected a value at offset 0"},
        {"NaN", "unexpected 'N', expected a value at offset 0"},
        {"1e999", "number out of range at offset 0"},
        {"[\"\\x\"]", "invalid escape at offset 2"},
        {"\"\\u12g4\"", "invalid \\u escape at offset 1"},
        {"\"\\u12\"", "invalid \\u escape at offset 1"},
        {"\"\\ud800\"", "unpaired UTF-16 surrogate \\ud800 at offset 1"},
        {"\"\\ud800\\u0041\"", "unpaired UTF-16 surrogate \\ud800 at offset 1"},
        {"\"\\udc00\"", "unpaired UTF-16 surrogate \\udc00 at offset 1"},
        {"\"a\tb\"", "control character 0x09 in string at offset 2"},
        {"\"a\xff\"", "invalid UTF-8 in string at offset 2"},
        {"\"\xc0\xaf\"", "invalid UTF-8 in string at offset 1"},
        {"\xef\xbb\xbf{}", "unexpected byte 0xef, expected a value at offset 0"},
        {"[]]", "unexpected ']', expected end of input at offset 2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *err = s_json_error(cases[i].text, strlen(cases[i].text));
        if (strcmp(err, cases[i].message) != 0)
            fail_msg("JSON %s: got \"%s\", expected \"%s\"", cases[i].text, err,
                     cases[i].message);
    }
    /* A NUL byte inside the given length is input, not the end. */
    assert_string_equal(s_json_error("[1,\0]", 5), "unexpected byte 0x00, expected a value at offset 3");
}

static void test_obj_from_json_limits_nesting_depth(void **state)
{
    char text[2 * (NERVE_JSON_DEPTH_MAX + 1) + 1];
    size_t n = NERVE_JSON_DEPTH_MAX;
    memset(text, '[', n);
    memset(text + n, ']', n);
    text[2 * n] = '\0';
    msgpack_object o = s_json(text); /* exactly the limit parses */
    assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);

    n = NERVE_JSON_DEPTH_MAX + 1;
    memset(text, '[', n);
    memset(text + n, ']', n);
    text[2 * n] = '\0';
    assert_string_equal(s_json_error(text, 2 * n), "nesting deeper than 64 at offset 64");

    /* Maps count too. */
    char maps[8 * (NERVE_JSON_DEPTH_MAX + 1) + 8] = "";
    for (int i = 0; i <= NERVE_JSON_DEPTH_MAX; i++)
        strcat(maps, "{\"a\":");
    assert_string_equal(s_json_error(maps, strlen(maps)), "nesting deeper than 64 at offset 320");
}

static void test_obj_from_json_reports_bad_arguments(void **state)
{
    msgpack_object o;
    char err[64];
    assert_int_equal(nerve_obj_from_json(NULL, "1", 1, &o, err, sizeof err), NERVE_EINVAL);
    assert_int_equal(nerve_obj_from_json(g_zone, NULL, 1, &o, err, sizeof err), NERVE_EINVAL);
    assert_int_equal(nerve_obj_from_json(g_zone, "1", 1, NULL, NULL, 0), NERVE_EINVAL);
    /* A tiny error buffer is fine. */
    assert_int_equal(nerve_obj_from_json(g_zone, "x", 1, &o, err, 4), NERVE_EPARSE);
    assert_string_equal(err, "une");
}

/*  Deterministic mutations of valid documents: every outcome is a clean
    success or a parse error, never a crash, hang or leak (ASan run). */
static void test_obj_from_json_survives_mutated_input(void **state)
{
    static const char *const seeds[] = {
        "{\"a\":[1,-2.5e3,\"x\\u00e9\\ud83d\\ude00\",true,null,{}],\"b\":{\"c\":[[]]}}",
        "[\"\\n\\\"\",0,1e-5,18446744073709551616]",
    };
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    char buf[128];
    for (size_t s = 0; s < 2; s++) {
        size_t len = strlen(seeds[s]);
        for (int round = 0; round < 20000; round++) {
            memcpy(buf, seeds[s], len);
            size_t n = len;
            for (int k = 0; k < 3; k++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                size_t at = (size_t)(rng >> 33) % n;
                switch ((rng >> 20) % 3) {
                case 0: buf[at] = (char)(rng >> 40); break;           /* flip a byte */
                case 1: n = at ? at : 1; break;                        /* truncate */
                default: buf[at] = "[]{}\",:\\u0e"[(rng >> 44) % 11]; /* syntax */
                }
            }
            msgpack_zone *z = msgpack_zone_new(512);
            msgpack_object o;
            char err[128];
            int rc = nerve_obj_from_json(z, buf, n, &o, err, sizeof err);
            assert_true(rc == 0 || rc == NERVE_EPARSE);
            if (rc == 0) { /* whatever parsed prints and parses back equal */
                msgpack_sbuffer sb;
                msgpack_sbuffer_init(&sb);
                assert_int_equal(nerve_obj_to_json(&o, &sb), 0);
                msgpack_object back;
                assert_int_equal(nerve_obj_from_json(z, sb.data, sb.size, &back, err, sizeof err), 0);
                assert_true(nerve_obj_equal(&o, &back));
                msgpack_sbuffer_destroy(&sb);
            } else {
                assert_non_null(strstr(err, " at offset "));
            }
            msgpack_zone_free(z);
        }
    }
}

static void test_obj_depth_counts_containers_up_to_the_limit(void **state)
{
    msgpack_object scalar = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = 1};
    assert_int_equal(nerve_obj_depth(&scalar, 10), 0);
    msgpack_object levels[40];
    levels[0] = scalar;
    for (int i = 1; i < 40; i++) {
        levels[i].type = MSGPACK_OBJECT_ARRAY;
        levels[i].via.array.size = 1;
        levels[i].via.array.ptr = &levels[i - 1];
    }
    assert_int_equal(nerve_obj_depth(&levels[1], 10), 1);
    assert_int_equal(nerve_obj_depth(&levels[39], 100), 39);
    assert_int_equal(nerve_obj_depth(&levels[39], 30), 31); /* stops at limit + 1 */
    msgpack_object_kv kv = {.key = scalar, .val = levels[5]};
    msgpack_object map = {.type = MSGPACK_OBJECT_MAP, .via.map = {.size = 1, .ptr = &kv}};
    assert_int_equal(nerve_obj_depth(&map, 100), 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_obj_depth_counts_containers_up_to_the_limit),
        cmocka_unit_test(test_obj_get_finds_str_keys_and_refuses_non_maps),
        cmocka_unit_test(test_obj_path_follows_maps_and_array_indexes),
        cmocka_unit_test(test_obj_path_decimal_segment_finds_integer_map_keys),
        cmocka_unit_test(test_obj_number_bool_and_str_conversions),
        cmocka_unit_test(test_obj_strcpy_leaves_buf_untouched_when_too_small),
        cmocka_unit_test(test_obj_equal_compares_numbers_by_value_across_types),
        cmocka_unit_test(test_obj_equal_is_deep_and_ignores_map_key_order),
        cmocka_unit_test(test_obj_builders_make_the_right_types),
        cmocka_unit_test(test_obj_copy_is_deep_and_outlives_the_source),
        cmocka_unit_test(test_obj_helpers_refuse_values_nested_too_deep),
        cmocka_unit_test(test_obj_format_fits_or_truncates_with_ellipsis),
        cmocka_unit_test(test_obj_to_json_escapes_strings),
        cmocka_unit_test(test_obj_to_json_writes_bin_as_hex_and_non_str_keys_as_strings),
        cmocka_unit_test(test_obj_to_json_prints_floats_in_shortest_round_trip_form),
        cmocka_unit_test(test_obj_to_json_buf_measures_and_truncates_like_snprintf),
        cmocka_unit_test(test_obj_json_round_trips),
        cmocka_unit_test(test_obj_from_json_keeps_integers_integers),
        cmocka_unit_test(test_obj_from_json_decodes_escapes_and_surrogate_pairs),
        cmocka_unit_test(test_obj_from_json_errors_name_the_offset),
        cmocka_unit_test(test_obj_from_json_limits_nesting_depth),
        cmocka_unit_test(test_obj_from_json_reports_bad_arguments),
        cmocka_unit_test(test_obj_from_json_survives_mutated_input),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
