/*  test_template.c — compiling and rendering `{{…}}` templates in
    reaction args: every reference, type kept for a lone template, text,
    nested args, missing values, compile errors, and hostile data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include <nerve/error.h>
#include <nerve/template.h>
#include <nerve/value.h>

static msgpack_zone *g_zone;
static msgpack_object g_data, g_value;
static const uint8_t g_id[NERVE_ID_SIZE] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                            0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
static nerve_tmpl_ctx_t g_ctx;

static msgpack_object s_json(const char *text)
{
    msgpack_object o;
    char err[128];
    if (nerve_obj_from_json(g_zone, text, strlen(text), &o, err, sizeof err))
        fail_msg("bad test JSON %s: %s", text, err);
    return o;
}

static int s_setup(void **state)
{
    g_zone = msgpack_zone_new(4096);
    g_data = s_json("{\"n\":42,\"neg\":-3,\"f\":2.5,\"whole\":4.0,\"ok\":true,"
                    "\"m\":{\"a\":1,\"b\":[\"x\",null]},\"arr\":[1,\"two\",3.5],"
                    "\"s\":\"text\",\"nil\":null,\"evil\":\"{{event.host}}\","
                    "\"utf\":\"\xc3\xa9\xc3\xa9\"}");
    g_value = s_json("{\"avg\":21.5,\"count\":3}");
    g_ctx = (nerve_tmpl_ctx_t){.tag = "/client/load/web1", .host = "web1", .id = g_id,
                               .data = &g_data, .value = &g_value, .rule = "load_avg"};
    return 0;
}

static int s_teardown(void **state)
{
    msgpack_zone_free(g_zone);
    return 0;
}

static nerve_tmpl_t *s_compile(const msgpack_object *src)
{
    nerve_tmpl_t *t = NULL;
    char err[256];
    if (nerve_tmpl_compile(src, &t, err, sizeof err))
        fail_msg("compile failed: %s", err);
    return t;
}

/*  Compiles the JSON string value `tmpl` (a single str) and renders it. */
static msgpack_object s_render_str(const char *tmpl, const nerve_tmpl_ctx_t *ctx)
{
    msgpack_object src = nerve_obj_str_new(g_zone, tmpl, strlen(tmpl));
    nerve_tmpl_t *t = s_compile(&src);
    msgpack_object out;
    assert_int_equal(nerve_tmpl_render(t, ctx, g_zone, &out), 0);
    nerve_tmpl_destroy(&t);
    return out;
}

static void s_assert_str(const msgpack_object *o, const char *expected)
{
    if (!nerve_obj_str_eq(o, expected)) {
        char buf[256];
        fail_msg("got %s, expected \"%s\"", nerve_obj_format(o, buf, sizeof buf), expected);
    }
}

static void s_assert_equal_json(const msgpack_object *o, const char *json)
{
    msgpack_object expected = s_json(json);
    if (!nerve_obj_equal(o, &expected)) {
        char buf[512];
        fail_msg("got %s, expected %s", nerve_obj_format(o, buf, sizeof buf), json);
    }
}

/*  Compiles a str expecting NERVE_EPARSE; returns the message. */
static const char *s_compile_error(const msgpack_object *src)
{
    static char err[256];
    nerve_tmpl_t *t = (nerve_tmpl_t *)0x1;
    assert_int_equal(nerve_tmpl_compile(src, &t, err, sizeof err), NERVE_EPARSE);
    assert_null(t);
    return err;
}

static const char *s_str_error(const char *tmpl)
{
    msgpack_object src = nerve_obj_str_new(g_zone, tmpl, strlen(tmpl));
    return s_compile_error(&src);
}

/* ------------------------------------------------------------------------ */

static void test_tmpl_renders_every_reference_kind(void **state)
{
    msgpack_object o = s_render_str("{{event.host}}", &g_ctx);
    s_assert_str(&o, "web1");
    o = s_render_str("{{event.tag}}", &g_ctx);
    s_assert_str(&o, "/client/load/web1");
    o = s_render_str("{{event.id}}", &g_ctx);
    s_assert_str(&o, "00112233445566778899aabbccddeeff");
    o = s_render_str("{{rule}}", &g_ctx);
    s_assert_str(&o, "load_avg");
    o = s_render_str("{{event.data}}", &g_ctx);
    assert_true(nerve_obj_equal(&o, &g_data));
    o = s_render_str("{{event.data.m.b.0}}", &g_ctx);
    s_assert_str(&o, "x");
    o = s_render_str("{{value}}", &g_ctx);
    assert_true(nerve_obj_equal(&o, &g_value));
    o = s_render_str("{{value.avg}}", &g_ctx);
    assert_int_equal(o.type, MSGPACK_OBJECT_FLOAT64);
    assert_true(o.via.f64 == 21.5);
}

static void test_tmpl_lone_template_keeps_the_value_type(void **state)
{
    msgpack_object o = s_render_str("{{event.data.n}}", &g_ctx);
    assert_int_equal(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(o.via.u64, 42);
    o = s_render_str("{{event.data.neg}}", &g_ctx);
    assert_int_equal(o.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal(o.via.i64, -3);
    o = s_render_str("{{ event.data.f }}", &g_ctx);
    assert_int_equal(o.type, MSGPACK_OBJECT_FLOAT64);
    assert_true(o.via.f64 == 2.5);
    o = s_render_str("{{event.data.ok}}", &g_ctx);
    assert_int_equal(o.type, MSGPACK_OBJECT_BOOLEAN);
    assert_true(o.via.boolean);
    o = s_render_str("{{event.data.m}}", &g_ctx);
    assert_int_equal(o.type, MSGPACK_OBJECT_MAP);
    s_assert_equal_json(&o, "{\"a\":1,\"b\":[\"x\",null]}");
    o = s_render_str("{{event.data.arr}}", &g_ctx);
    assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);
    s_assert_equal_json(&o, "[1,\"two\",3.5]");
    o = s_render_str("{{event.data.s}}", &g_ctx);
    s_assert_str(&o, "text");
    o = s_render_str("{{event.data.nil}}", &g_ctx);
    assert_int_equal(o.type, MSGPACK_OBJECT_NIL);
}

static void test_tmpl_mixed_text_renders_a_string(void **state)
{
    msgpack_object o = s_render_str("host={{event.host}} n={{event.data.n}} neg={{event.data.neg}}"
                                    " f={{event.data.f}} w={{event.data.whole}} ok={{event.data.ok}}"
                                    " m={{event.data.m}} a={{event.data.arr}} nil=[{{event.data.nil}}]"
                                    " id={{event.id}} rule={{rule}} v={{value.avg}}",
                                    &g_ctx);
    s_assert_str(&o, "host=web1 n=42 neg=-3 f=2.5 w=4 ok=true m={\"a\":1,\"b\":[\"x\",null]}"
                     " a=[1,\"two\",3.5] nil=[] id=00112233445566778899aabbccddeeff"
                     " rule=load_avg v=21.5");
    o = s_render_str("{{event.host}}{{rule}}", &g_ctx); /* two refs and no text: still text */
    s_assert_str(&o, "web1load_avg");
    o = s_render_str(" {{event.data.n}}", &g_ctx);
    s_assert_str(&o, " 42");
}

static void test_tmpl_renders_nested_maps_and_arrays(void **state)
{
    msgpack_object args = s_json(
        "{\"cmd\":\"restart {{event.host}}\",\"count\":\"{{event.data.n}}\","
        "\"env\":[\"A={{rule}}\",7,{\"k\":\"{{value.count}}\",\"lit\":\"plain\"}],"
        "\"fixed\":{\"x\":[1,2],\"y\":\"no refs\"},\"{{event.host}}\":\"key kept\",\"e\":[]}");
    nerve_tmpl_t *t = s_compile(&args);
    assert_true(nerve_tmpl_has_refs(t));
    msgpack_object out;
    assert_int_equal(nerve_tmpl_render(t, &g_ctx, g_zone, &out), 0);
    s_assert_equal_json(&out, "{\"cmd\":\"restart web1\",\"count\":42,"
                              "\"env\":[\"A=load_avg\",7,{\"k\":3,\"lit\":\"plain\"}],"
                              "\"fixed\":{\"x\":[1,2],\"y\":\"no refs\"},"
                              "\"{{event.host}}\":\"key kept\",\"e\":[]}");
    assert_int_equal(nerve_obj_get(&out, "count")->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    nerve_tmpl_destroy(&t);
}

static void test_tmpl_missing_reference_is_nil_alone_and_empty_in_text(void **state)
{
    msgpack_object o = s_render_str("{{event.data.nope}}", &g_ctx);
    assert_int_equal(o.type, MSGPACK_OBJECT_NIL);
    o = s_render_str("{{value.avg.deeper}}", &g_ctx);
    assert_int_equal(o.type, MSGPACK_OBJECT_NIL);
    o = s_render_str("a{{event.data.nope}}b", &g_ctx);
    s_assert_str(&o, "ab");

    nerve_tmpl_ctx_t empty = {0};
    static const char *const lone[] = {"{{event.host}}", "{{event.tag}}", "{{event.id}}",
                                       "{{event.data}}", "{{event.data.n}}", "{{value}}",
                                       "{{value.x}}", "{{rule}}"};
    for (size_t i = 0; i < sizeof lone / sizeof lone[0]; i++) {
        o = s_render_str(lone[i], &empty);
        assert_int_equal(o.type, MSGPACK_OBJECT_NIL);
        o = s_render_str(lone[i], NULL);
        assert_int_equal(o.type, MSGPACK_OBJECT_NIL);
    }
    o = s_render_str("<{{event.host}}|{{event.id}}|{{value}}|{{rule}}>", &empty);
    s_assert_str(&o, "<|||>");
}

static void test_tmpl_compile_errors_name_the_reference_and_offset(void **state)
{
    assert_string_equal(s_str_error("x {{event.host"),
                        "unclosed '{{' at offset 2 in 'x {{event.host'");
    assert_string_equal(s_str_error("{{event.host}} and {{ rule }"),
                        "unclosed '{{' at offset 19 in '{{event.host}} and {{ rule }'");
    assert_string_equal(s_str_error("{{"), "unclosed '{{' at offset 0 in '{{'");
    assert_string_equal(s_str_error("ab{{  }}"), "empty reference at offset 2 in 'ab{{  }}'");
    const char *err = s_str_error("go {{evnt.host}}");
    assert_non_null(strstr(err, "unknown reference 'evnt.host' at offset 3"));
    static const char *const bad[] = {
        "{{event}}",         "{{event.hostname}}", "{{event.host.x}}", "{{event.data.}}",
        "{{event.data..a}}", "{{value x}}",        "{{values}}",       "{{rule.name}}",
        "{{Event.host}}",    "{{{event.host}}}",   "{{event.id.0}}",   "{{value.a b}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err = s_str_error(bad[i]);
        if (strncmp(err, "unknown reference '", 19) != 0)
            fail_msg("%s: %s", bad[i], err);
    }
    err = s_str_error("{{event.data..a}}");
    assert_non_null(strstr(err, "'event.data..a' at offset 0"));

    /* Inside args, the message says where. */
    msgpack_object args = s_json("{\"env\":[\"ok {{rule}}\",\"{{valu}}\"]}");
    err = s_compile_error(&args);
    assert_non_null(strstr(err, "unknown reference 'valu' at offset 0"));
    assert_non_null(strstr(err, "(at 'env.1')"));

    /* Control bytes in the quoted text are made printable. */
    err = s_str_error("\n{{");
    assert_string_equal(err, "unclosed '{{' at offset 1 in '?{{'");
}

static void test_tmpl_allows_spaces_inside_braces(void **state)
{
    static const char *const forms[] = {"{{event.host}}", "{{ event.host }}",
                                        "{{event.host   }}", "{{\tevent.host}}",
                                        "{{   event.host}}"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        msgpack_object o = s_render_str(forms[i], &g_ctx);
        s_assert_str(&o, "web1");
    }
}

static void test_tmpl_single_braces_are_literal_text(void **state)
{
    static const char *const texts[] = {"{", "}", "}}", "a } b { c", "{x}", "{ {event.host} }",
                                        "json {\"a\": 1}", "}}{"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        msgpack_object src = nerve_obj_str_new(g_zone, texts[i], strlen(texts[i]));
        nerve_tmpl_t *t = s_compile(&src);
        assert_false(nerve_tmpl_has_refs(t));
        msgpack_object o;
        assert_int_equal(nerve_tmpl_render(t, &g_ctx, g_zone, &o), 0);
        s_assert_str(&o, texts[i]);
        nerve_tmpl_destroy(&t);
    }
}

static void test_tmpl_values_are_data_not_syntax(void **state)
{
    /* The event's data holds "{{event.host}}": it must come out as those
       characters, never expanded again. */
    msgpack_object o = s_render_str("{{event.data.evil}}", &g_ctx);
    s_assert_str(&o, "{{event.host}}");
    o = s_render_str("x {{event.data.evil}} y", &g_ctx);
    s_assert_str(&o, "x {{event.host}} y");
    char buf[64];
    msgpack_object src = nerve_obj_str_new(g_zone, "{{event.data.evil}}", 19);
    nerve_tmpl_t *t = s_compile(&src);
    assert_int_equal(nerve_tmpl_render_text(t, &g_ctx, buf, sizeof buf), 0);
    assert_string_equal(buf, "{{event.host}}");
    nerve_tmpl_destroy(&t);

    /* A host name with braces is data too. */
    nerve_tmpl_ctx_t ctx = g_ctx;
    ctx.host = "{{rule}}";
    o = s_render_str("h={{event.host}}", &ctx);
    s_assert_str(&o, "h={{rule}}");
}

static void test_tmpl_numbers_in_text_use_fifteen_significant_digits(void **state)
{
    static const struct {
        double d;
        const char *text;
    } cases[] = {
        {0.1 + 0.2, "v=0.3"},          {23.456, "v=23.456"},
        {5.0, "v=5"},                  {-2.5, "v=-2.5"},
        {0.00012, "v=0.00012"},        {123456.789, "v=123456.789"},
        {9.9999999999999995, "v=10"},  {0.9999999999999999, "v=1"},
        {1e20, "v=1e+20"},             {1e-5, "v=1e-05"},
        {0.0, "v=0"},                  {999999999999999.0, "v=999999999999999"},
        {1.0 / 3.0, "v=0.333333333333333"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgpack_object value = nerve_obj_double_new(cases[i].d);
        nerve_tmpl_ctx_t ctx = g_ctx;
        ctx.value = &value;
        msgpack_object o = s_render_str("v={{value}}", &ctx);
        s_assert_str(&o, cases[i].text);
    }
}

static void test_tmpl_number_text_stays_within_the_fifteenth_digit(void **state)
{
    /* A fixed-seed sweep over magnitudes 1e-4 … 1e15: the text reads back
       within one unit of the 15th significant digit, like "%.15g". */
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double mant = (double)(x >> 11) / 9007199254740992.0; /* [0, 1) */
        int exp10 = (int)(x % 19) - 4;
        double d = (1 + 9 * mant) * pow(10, exp10) * (x & 1 ? -1 : 1);
        msgpack_object value = nerve_obj_double_new(d);
        nerve_tmpl_ctx_t ctx = g_ctx;
        ctx.value = &value;
        msgpack_object o = s_render_str("{{value}}x", &ctx);
        char text[80];
        assert_true(o.via.str.size < sizeof text);
        memcpy(text, o.via.str.ptr, o.via.str.size - 1);
        text[o.via.str.size - 1] = '\0';
        double back = strtod(text, NULL);
        if (fabs(back - d) > fabs(d) * 1e-14)
            fail_msg("%.17g rendered as %s", d, text);
    }
}

static void test_tmpl_number_rounding_up_to_1e15_keeps_its_magnitude(void **state)
{
    /* Found by fuzz_template: rounding to 15 digits carried into a 16th
       digit, and the text came out as "100000000000000" (1e14, with a NUL
       byte after it). */
    static const double cases[] = {999999999999999.9, 999999999999999.5, -999999999999999.9};
    static const char *const texts[] = {"v=1e+15", "v=1e+15", "v=-1e+15"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgpack_object value = nerve_obj_double_new(cases[i]);
        nerve_tmpl_ctx_t ctx = g_ctx;
        ctx.value = &value;
        msgpack_object o = s_render_str("v={{value}}", &ctx);
        assert_int_equal(o.via.str.size, strlen(texts[i]));
        s_assert_str(&o, texts[i]);
    }
}

static void test_tmpl_number_text_rounds_near_halves_like_printf(void **state)
{
    /* The 16th digit just below a half (the long double product rounded
       it up to one) and exact halves (printf rounds those to even). */
    static const struct {
        double d;
        const char *text;
    } cases[] = {
        {-0.0003484536557326775, "v=-0.000348453655732677"},
        {-907164439.6923455, "v=-907164439.692345"},
        {328510699971236.5, "v=328510699971236"},
        {67784084277694.25, "v=67784084277694.2"},
        {-0.0, "v=0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char want[64];
        if (cases[i].d != 0) { /* the cases are what "%.15g" writes */
            snprintf(want, sizeof want, "v=%.15g", cases[i].d);
            assert_string_equal(want, cases[i].text);
        }
        msgpack_object value = nerve_obj_double_new(cases[i].d);
        nerve_tmpl_ctx_t ctx = g_ctx;
        ctx.value = &value;
        msgpack_object o = s_render_str("v={{value}}", &ctx);
        s_assert_str(&o, cases[i].text);
    }
}

static void test_tmpl_lone_secret_renders_as_a_secret_ext_naming_it(void **state)
{
    msgpack_object o = s_render_str("{{ secret.db_password }}", &g_ctx);
    assert_int_equal(o.type, MSGPACK_OBJECT_EXT);
    assert_int_equal(o.via.ext.type, NERVE_EXT_SECRET);
    assert_int_equal(o.via.ext.size, 11);
    assert_memory_equal(o.via.ext.ptr, "db_password", 11);
}

static void test_tmpl_secret_inside_text_is_a_compile_error(void **state)
{
    const char *err = s_str_error("pw={{secret.db}}");
    assert_non_null(strstr(err, "a secret must be a whole value"));
    assert_non_null(strstr(s_str_error("{{secret.}}"), "unknown reference"));
    assert_non_null(strstr(s_str_error("{{secret.a/b}}"), "unknown reference"));
}

static void test_tmpl_event_data_can_never_name_a_secret(void **state)
{
    /* An event carrying a secret ext (forged by a sender) renders it as
       nil, alone, nested, or through value: only rules files name secrets. */
    msgpack_object data = s_json("{\"x\": 1, \"nested\": {\"y\": 2}}");
    msgpack_object forged = {.type = MSGPACK_OBJECT_EXT};
    forged.via.ext.type = NERVE_EXT_SECRET;
    forged.via.ext.ptr = "db_password";
    forged.via.ext.size = 11;
    data.via.map.ptr[0].val = forged;
    data.via.map.ptr[1].val.via.map.ptr[0].val = forged;
    nerve_tmpl_ctx_t ctx = g_ctx;
    ctx.data = &data;
    ctx.value = &forged;
    msgpack_object o = s_render_str("{{event.data.x}}", &ctx);
    assert_int_equal(o.type, MSGPACK_OBJECT_NIL);
    o = s_render_str("{{event.data}}", &ctx);
    assert_int_equal(o.via.map.ptr[0].val.type, MSGPACK_OBJECT_NIL);
    assert_int_equal(o.via.map.ptr[1].val.via.map.ptr[0].val.type, MSGPACK_OBJECT_NIL);
    o = s_render_str("{{value}}", &ctx);
    assert_int_equal(o.type, MSGPACK_OBJECT_NIL);
}

static void test_tmpl_render_text_writes_text_and_reports_truncation(void **state)
{
    msgpack_object src = nerve_obj_str_new(g_zone, "{{event.host}}", 14);
    nerve_tmpl_t *t = s_compile(&src);
    char buf[5];
    assert_int_equal(nerve_tmpl_render_text(t, &g_ctx, buf, sizeof buf), 0);
    assert_string_equal(buf, "web1"); /* exactly fits */
    assert_int_equal(nerve_tmpl_render_text(t, &g_ctx, buf, 4), NERVE_ERANGE);
    assert_string_equal(buf, "web");
    assert_int_equal(nerve_tmpl_render_text(t, &g_ctx, NULL, 0), NERVE_ERANGE);
    nerve_tmpl_destroy(&t);

    /* Numbers, maps and missing values as text, as in render. */
    src = nerve_obj_str_new(g_zone, "{{event.data.n}}/{{event.data.m}}/{{event.data.no}}", 51);
    t = s_compile(&src);
    char big[64];
    assert_int_equal(nerve_tmpl_render_text(t, &g_ctx, big, sizeof big), 0);
    assert_string_equal(big, "42/{\"a\":1,\"b\":[\"x\",null]}/");
    /* Truncated inside the JSON of a map. */
    assert_int_equal(nerve_tmpl_render_text(t, &g_ctx, big, 8), NERVE_ERANGE);
    assert_string_equal(big, "42/{\"a\"");
    nerve_tmpl_destroy(&t);

    /* Never half a UTF-8 character. */
    src = nerve_obj_str_new(g_zone, "{{event.data.utf}}", 18);
    t = s_compile(&src);
    assert_int_equal(nerve_tmpl_render_text(t, &g_ctx, buf, 4), NERVE_ERANGE);
    assert_string_equal(buf, "\xc3\xa9");
    nerve_tmpl_destroy(&t);

    /* A literal str works; a map does not. */
    src = nerve_obj_str_new(g_zone, "fixed", 5);
    t = s_compile(&src);
    assert_int_equal(nerve_tmpl_render_text(t, &g_ctx, big, sizeof big), 0);
    assert_string_equal(big, "fixed");
    nerve_tmpl_destroy(&t);
    msgpack_object map = s_json("{\"a\":\"{{rule}}\"}");
    t = s_compile(&map);
    assert_int_equal(nerve_tmpl_render_text(t, &g_ctx, big, sizeof big), NERVE_EINVAL);
    nerve_tmpl_destroy(&t);
}

static void test_tmpl_default_key_template_renders_the_host(void **state)
{
    msgpack_object src = nerve_obj_str_new(g_zone, "{{event.host}}", 14);
    nerve_tmpl_t *t = s_compile(&src);
    char key[NERVE_HOST_MAX + 1];
    assert_int_equal(nerve_tmpl_render_text(t, &g_ctx, key, sizeof key), 0);
    assert_string_equal(key, "web1");
    nerve_tmpl_destroy(&t);
}

static void test_tmpl_render_output_lives_in_the_callers_zone(void **state)
{
    /* Render from data in a scratch zone, then free the data and the
       template: the output must not point into either (ASan checks). */
    msgpack_zone *scratch = msgpack_zone_new(512);
    msgpack_object data;
    const char *json = "{\"s\":\"hello\",\"m\":{\"k\":[1,\"v\"]}}";
    assert_int_equal(nerve_obj_from_json(scratch, json, strlen(json), &data, NULL, 0), 0);
    char host[] = "web9";
    nerve_tmpl_ctx_t ctx = {.host = host, .data = &data};
    msgpack_object args = s_json("{\"a\":\"{{event.data.s}}\",\"b\":\"{{event.data.m}}\","
                                 "\"c\":\"{{event.host}}\",\"d\":\"lit\",\"e\":[1,\"x\"]}");
    nerve_tmpl_t *t = s_compile(&args);
    msgpack_zone *out_zone = msgpack_zone_new(512);
    msgpack_object out;
    assert_int_equal(nerve_tmpl_render(t, &ctx, out_zone, &out), 0);
    nerve_tmpl_destroy(&t);
    msgpack_zone_free(scratch);
    memset(host, 'X', 4);
    s_assert_equal_json(&out, "{\"a\":\"hello\",\"b\":{\"k\":[1,\"v\"]},\"c\":\"web9\","
                              "\"d\":\"lit\",\"e\":[1,\"x\"]}");
    msgpack_zone_free(out_zone);
}

static void test_tmpl_compile_copies_its_source(void **state)
{
    msgpack_zone *src_zone = msgpack_zone_new(512);
    msgpack_object args;
    const char *json = "{\"a\":\"x {{rule}} y\",\"b\":\"{{event.data.n}}\"}";
    assert_int_equal(nerve_obj_from_json(src_zone, json, strlen(json), &args, NULL, 0), 0);
    nerve_tmpl_t *t = s_compile(&args);
    msgpack_zone_free(src_zone);
    msgpack_object out;
    assert_int_equal(nerve_tmpl_render(t, &g_ctx, g_zone, &out), 0);
    s_assert_equal_json(&out, "{\"a\":\"x load_avg y\",\"b\":42}");
    nerve_tmpl_destroy(&t);
}

static void test_tmpl_has_refs_and_destroy_are_safe(void **state)
{
    msgpack_object plain = s_json("{\"a\":[1,{\"b\":\"c\"}],\"d\":null}");
    nerve_tmpl_t *t = s_compile(&plain);
    assert_false(nerve_tmpl_has_refs(t));
    msgpack_object out;
    assert_int_equal(nerve_tmpl_render(t, &g_ctx, g_zone, &out), 0);
    assert_true(nerve_obj_equal(&out, &plain));
    nerve_tmpl_destroy(&t);
    assert_null(t);
    nerve_tmpl_destroy(&t);
    nerve_tmpl_destroy(NULL);
    assert_false(nerve_tmpl_has_refs(NULL));
    assert_int_equal(nerve_tmpl_render(NULL, &g_ctx, g_zone, &out), NERVE_EINVAL);
    assert_int_equal(nerve_tmpl_compile(NULL, &t, NULL, 0), NERVE_EINVAL);
}

static void test_tmpl_refuses_args_nested_too_deep(void **state)
{
    size_t n = NERVE_OBJ_DEPTH_MAX + 5;
    msgpack_object *items = msgpack_zone_malloc(g_zone, n * sizeof *items);
    items[n - 1] = nerve_obj_str_new(g_zone, "{{rule}}", 8);
    for (size_t i = n - 1; i > 0; i--) {
        items[i - 1].type = MSGPACK_OBJECT_ARRAY;
        items[i - 1].via.array.size = 1;
        items[i - 1].via.array.ptr = &items[i];
    }
    const char *err = s_compile_error(&items[0]);
    assert_non_null(strstr(err, "nested deeper than 256"));
}

/*  Found by fuzz_template in CI: a literal map whose key is nested past
    NERVE_OBJ_DEPTH_MAX came back as NERVE_ERANGE, which the header does
    not promise; it is a parse error like any value nested too deep. */
static void test_tmpl_compile_refuses_a_key_nested_too_deep_as_a_parse_error(void **state)
{
    static msgpack_object levels[NERVE_OBJ_DEPTH_MAX + 8];
    levels[0].type = MSGPACK_OBJECT_NIL;
    for (size_t i = 1; i < sizeof levels / sizeof levels[0]; i++) {
        levels[i].type = MSGPACK_OBJECT_ARRAY;
        levels[i].via.array.size = 1;
        levels[i].via.array.ptr = &levels[i - 1];
    }
    msgpack_object_kv kv;
    kv.key = levels[sizeof levels / sizeof levels[0] - 1];
    kv.val.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    kv.val.via.u64 = 1;
    msgpack_object map = {.type = MSGPACK_OBJECT_MAP, .via.map = {.size = 1, .ptr = &kv}};
    nerve_tmpl_t *t = NULL;
    char err[256];
    assert_int_equal(nerve_tmpl_compile(&map, &t, err, sizeof err), NERVE_EPARSE);
    assert_null(t);
    assert_non_null(strstr(err, "map key nested deeper than 256"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tmpl_compile_refuses_a_key_nested_too_deep_as_a_parse_error),
        cmocka_unit_test(test_tmpl_renders_every_reference_kind),
        cmocka_unit_test(test_tmpl_lone_template_keeps_the_value_type),
        cmocka_unit_test(test_tmpl_mixed_text_renders_a_string),
        cmocka_unit_test(test_tmpl_renders_nested_maps_and_arrays),
        cmocka_unit_test(test_tmpl_missing_reference_is_nil_alone_and_empty_in_text),
        cmocka_unit_test(test_tmpl_compile_errors_name_the_reference_and_offset),
        cmocka_unit_test(test_tmpl_allows_spaces_inside_braces),
        cmocka_unit_test(test_tmpl_single_braces_are_literal_text),
        cmocka_unit_test(test_tmpl_values_are_data_not_syntax),
        cmocka_unit_test(test_tmpl_numbers_in_text_use_fifteen_significant_digits),
        cmocka_unit_test(test_tmpl_number_text_stays_within_the_fifteenth_digit),
        cmocka_unit_test(test_tmpl_number_rounding_up_to_1e15_keeps_its_magnitude),
        cmocka_unit_test(test_tmpl_number_text_rounds_near_halves_like_printf),
        cmocka_unit_test(test_tmpl_lone_secret_renders_as_a_secret_ext_naming_it),
        cmocka_unit_test(test_tmpl_secret_inside_text_is_a_compile_error),
        cmocka_unit_test(test_tmpl_event_data_can_never_name_a_secret),
        cmocka_unit_test(test_tmpl_render_text_writes_text_and_reports_truncation),
        cmocka_unit_test(test_tmpl_default_key_template_renders_the_host),
        cmocka_unit_test(test_tmpl_render_output_lives_in_the_callers_zone),
        cmocka_unit_test(test_tmpl_compile_copies_its_source),
        cmocka_unit_test(test_tmpl_has_refs_and_destroy_are_safe),
        cmocka_unit_test(test_tmpl_refuses_args_nested_too_deep),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
