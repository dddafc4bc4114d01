/*  test_rules_simple.c — rules.simple through the real module loader.

    Every function is resolved from the built rules/simple.so, prepared
    with params as the rules loader would pass them, and called with values
    of every type a beacon may send. Every refusal prepare() can give is
    checked for its reason.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nerve/module.h>

static nerve_modset_t *s_modules;

/*  One prepared call site. */
typedef struct {
    nerve_resolved_t res;
    void *prepared;
    msgpack_zone *zone;
    msgpack_object params;
    char err[256];
} site_t;

static int s_group_setup(void **state)
{
    const char *dirs[] = {NERVE_MODULE_BUILD_DIR};
    s_modules = nerve_modset_new(dirs, 1);
    return s_modules ? 0 : -1;
}

static int s_group_teardown(void **state)
{
    nerve_modset_destroy(&s_modules);
    return 0;
}

static msgpack_object s_json(msgpack_zone *zone, const char *json)
{
    msgpack_object o;
    char err[128];
    int rc = nerve_obj_from_json(zone, json, strlen(json), &o, err, sizeof err);
    if (rc != 0)
        fail_msg("bad test JSON %s: %s", json, err);
    return o;
}

/*  Resolves rules.simple.<fn> and runs its prepare() on params (JSON).
    Returns prepare's code; the reason is in site->err. */
static int s_open(site_t *site, const char *fn, const char *params)
{
    memset(site, 0, sizeof *site);
    char dotted[64], why[512];
    snprintf(dotted, sizeof dotted, "rules.simple.%s", fn);
    int rc = nerve_modset_resolve(s_modules, dotted, &site->res, why, sizeof why);
    if (rc != 0)
        fail_msg("resolve %s: %s", dotted, why);
    assert_int_equal(site->res.role, NERVE_ROLE_RULES);
    site->zone = msgpack_zone_new(4096);
    assert_non_null(site->zone);
    site->params = s_json(site->zone, params);
    if (!site->res.fn->prepare)
        return 0;
    return site->res.fn->prepare(&site->params, &site->prepared, site->err, sizeof site->err);
}

static void s_close(site_t *site)
{
    if (site->prepared && site->res.fn->release)
        site->res.fn->release(site->prepared);
    msgpack_zone_free(site->zone);
}

/*  Calls the rule with a value (JSON, or NULL for "absent"). */
static int s_call(site_t *site, const msgpack_object *value, bool *result)
{
    nerve_event_t ev;
    memset(&ev, 0, sizeof ev);
    nerve_rule_call_t call = {&site->params, site->prepared, value, &ev};
    *result = true; /* the rule must set it */
    return site->res.fn->fn.rule(&call, result);
}

static bool s_true(site_t *site, const char *value)
{
    msgpack_object v = s_json(site->zone, value);
    bool result;
    int rc = s_call(site, &v, &result);
    if (rc != 0)
        fail_msg("%s(%s) returned %d", site->res.fn->name, value, rc);
    return result;
}

static void s_refused(const char *fn, const char *params, const char *reason)
{
    site_t site;
    int rc = s_open(&site, fn, params);
    assert_int_not_equal(rc, 0);
    assert_null(site.prepared);
    if (!strstr(site.err, reason))
        fail_msg("%s %s: reason '%s' lacks '%s'", fn, params, site.err, reason);
    s_close(&site);
}

static void test_simple_exports_every_function_with_a_doc(void **state)
{
    const char *names[] = {"gt",      "ge",      "lt",    "le",    "eq",    "ne",
                           "between", "outside", "match", "regex", "exists"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        site_t site;
        char dotted[64], why[512];
        snprintf(dotted, sizeof dotted, "rules.simple.%s", names[i]);
        assert_int_equal(nerve_modset_resolve(s_modules, dotted, &site.res, why, sizeof why), 0);
        assert_string_equal(site.res.module->name, "simple");
        assert_non_null(site.res.fn->doc);
        assert_true(strlen(site.res.fn->doc) > 5);
    }
}

static void test_simple_gt_compares_value_with_threshold(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "gt", "{\"threshold\": 20, \"period\": 10}"), 0);
    assert_true(s_true(&s, "21"));
    assert_false(s_true(&s, "20"));
    assert_false(s_true(&s, "19"));
    assert_true(s_true(&s, "20.5"));
    assert_false(s_true(&s, "-3"));
    s_close(&s);
}

static void test_simple_ge_lt_le_include_or_exclude_the_boundary(void **state)
{
    site_t ge, lt, le;
    assert_int_equal(s_open(&ge, "ge", "{\"threshold\": 2.5}"), 0);
    assert_int_equal(s_open(&lt, "lt", "{\"threshold\": 2.5}"), 0);
    assert_int_equal(s_open(&le, "le", "{\"threshold\": 2.5}"), 0);
    assert_true(s_true(&ge, "2.5"));
    assert_false(s_true(&ge, "2"));
    assert_false(s_true(&lt, "2.5"));
    assert_true(s_true(&lt, "2"));
    assert_true(s_true(&le, "2.5"));
    assert_false(s_true(&le, "3"));
    s_close(&ge);
    s_close(&lt);
    s_close(&le);
}

static void test_simple_value_param_takes_precedence_over_threshold(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "gt", "{\"threshold\": 100, \"value\": 10}"), 0);
    assert_true(s_true(&s, "50"));
    s_close(&s);
}

static void test_simple_integers_compare_exactly_beyond_double_precision(void **state)
{
    site_t eq, gt;
    /* 2^53 + 1 and 2^53 are one double apart only in exact arithmetic. */
    assert_int_equal(s_open(&eq, "eq", "{\"threshold\": 9007199254740993}"), 0);
    assert_int_equal(s_open(&gt, "gt", "{\"threshold\": 9007199254740992}"), 0);
    assert_true(s_true(&eq, "9007199254740993"));
    assert_false(s_true(&eq, "9007199254740992"));
    assert_true(s_true(&gt, "9007199254740993"));
    assert_true(s_true(&gt, "18446744073709551615"));
    s_close(&eq);
    s_close(&gt);

    site_t neg;
    assert_int_equal(s_open(&neg, "lt", "{\"threshold\": -5}"), 0);
    assert_true(s_true(&neg, "-6"));
    assert_false(s_true(&neg, "-5"));
    assert_false(s_true(&neg, "3"));
    s_close(&neg);
}

static void test_simple_eq_and_ne_compare_numbers_strings_and_bools(void **state)
{
    site_t n, str, b, ne;
    assert_int_equal(s_open(&n, "eq", "{\"threshold\": 3}"), 0);
    assert_true(s_true(&n, "3"));
    assert_true(s_true(&n, "3.0"));
    assert_false(s_true(&n, "4"));
    assert_int_equal(s_open(&str, "eq", "{\"threshold\": \"running\"}"), 0);
    assert_true(s_true(&str, "\"running\""));
    assert_false(s_true(&str, "\"runnin\""));
    assert_false(s_true(&str, "\"running \""));
    assert_int_equal(s_open(&b, "eq", "{\"value\": true}"), 0);
    assert_true(s_true(&b, "true"));
    assert_false(s_true(&b, "false"));
    assert_int_equal(s_open(&ne, "ne", "{\"threshold\": \"running\"}"), 0);
    assert_true(s_true(&ne, "\"stopped\""));
    assert_false(s_true(&ne, "\"running\""));
    s_close(&n);
    s_close(&str);
    s_close(&b);
    s_close(&ne);
}

static void test_simple_eq_with_another_type_is_false_without_error(void **state)
{
    site_t eq, ne;
    assert_int_equal(s_open(&eq, "eq", "{\"threshold\": \"1\"}"), 0);
    assert_int_equal(s_open(&ne, "ne", "{\"threshold\": 1}"), 0);
    assert_false(s_true(&eq, "1"));
    assert_false(s_true(&eq, "true"));
    assert_false(s_true(&ne, "\"x\""));
    assert_false(s_true(&ne, "[1]"));
    s_close(&eq);
    s_close(&ne);
}

static void test_simple_numeric_rule_on_a_string_returns_etype(void **state)
{
    const char *fns[] = {"gt", "ge", "lt", "le"};
    for (size_t i = 0; i < 4; i++) {
        site_t s;
        assert_int_equal(s_open(&s, fns[i], "{\"threshold\": 1}"), 0);
        msgpack_object v = s_json(s.zone, "\"12\"");
        bool result;
        assert_int_equal(s_call(&s, &v, &result), NERVE_ETYPE);
        assert_false(result);
        v = s_json(s.zone, "{\"value\": 12}");
        assert_int_equal(s_call(&s, &v, &result), NERVE_ETYPE);
        assert_false(result);
        s_close(&s);
    }
    site_t b;
    assert_int_equal(s_open(&b, "between", "{\"low\": 1, \"high\": 2}"), 0);
    msgpack_object v = s_json(b.zone, "true");
    bool result;
    assert_int_equal(s_call(&b, &v, &result), NERVE_ETYPE);
    assert_false(result);
    s_close(&b);
}

static void test_simple_missing_or_nil_value_is_false_without_error(void **state)
{
    const char *cases[][2] = {
        {"gt", "{\"threshold\": 1}"},
        {"eq", "{\"threshold\": \"a\"}"},
        {"ne", "{\"threshold\": \"a\"}"},
        {"between", "{\"low\": 0, \"high\": 1}"},
        {"outside", "{\"low\": 0, \"high\": 1}"},
        {"match", "{\"pattern\": \"*\"}"},
        {"regex", "{\"pattern\": \".*\"}"},
        {"exists", "{}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        site_t s;
        assert_int_equal(s_open(&s, cases[i][0], cases[i][1]), 0);
        bool result;
        assert_int_equal(s_call(&s, NULL, &result), 0);
        assert_false(result);
        msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
        assert_int_equal(s_call(&s, &nil, &result), 0);
        assert_false(result);
        s_close(&s);
    }
}

static void test_simple_between_is_inclusive_and_outside_is_its_complement(void **state)
{
    site_t in, out;
    assert_int_equal(s_open(&in, "between", "{\"low\": 10, \"high\": 20.5}"), 0);
    assert_int_equal(s_open(&out, "outside", "{\"low\": 10, \"high\": 20.5}"), 0);
    const char *values[] = {"9.99", "10", "15", "20.5", "20.6", "-1"};
    const bool inside[] = {false, true, true, true, false, false};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(s_true(&in, values[i]), inside[i]);
        assert_int_equal(s_true(&out, values[i]), !inside[i]);
    }
    s_close(&in);
    s_close(&out);
}

static void test_simple_nan_is_in_no_range_and_equal_to_nothing(void **state)
{
    site_t in, out, ne;
    assert_int_equal(s_open(&in, "between", "{\"low\": 0, \"high\": 1}"), 0);
    assert_int_equal(s_open(&out, "outside", "{\"low\": 0, \"high\": 1}"), 0);
    assert_int_equal(s_open(&ne, "ne", "{\"threshold\": 1}"), 0);
    msgpack_object nan = {.type = MSGPACK_OBJECT_FLOAT64, .via.f64 = NAN};
    bool r;
    assert_int_equal(s_call(&in, &nan, &r), 0);
    assert_false(r);
    assert_int_equal(s_call(&out, &nan, &r), 0);
    assert_false(r);
    assert_int_equal(s_call(&ne, &nan, &r), 0);
    assert_false(r);
    s_close(&in);
    s_close(&out);
    s_close(&ne);
}

static void test_simple_match_globs_string_values(void **state)
{
    site_t s, nc;
    assert_int_equal(s_open(&s, "match", "{\"pattern\": \"web[0-9]*.example.*\"}"), 0);
    assert_true(s_true(&s, "\"web12.example.com\""));
    assert_false(s_true(&s, "\"db1.example.com\""));
    assert_false(s_true(&s, "\"WEB1.example.com\""));
    assert_false(s_true(&s, "12")); /* not a string: false, no error */
    assert_int_equal(s_open(&nc, "match", "{\"pattern\": \"web*\", \"nocase\": true}"), 0);
    assert_true(s_true(&nc, "\"WEB1\""));
    s_close(&s);
    s_close(&nc);
}

static void test_simple_match_handles_strings_longer_than_its_stack_buffer(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "match", "{\"pattern\": \"a*z\"}"), 0);
    char big[3000];
    memset(big, 'a', sizeof big);
    big[sizeof big - 1] = 'z';
    msgpack_object v = {.type = MSGPACK_OBJECT_STR};
    v.via.str.ptr = big;
    v.via.str.size = sizeof big;
    bool r;
    assert_int_equal(s_call(&s, &v, &r), 0);
    assert_true(r);
    v.via.str.size = sizeof big - 1; /* now it ends in 'a' */
    assert_int_equal(s_call(&s, &v, &r), 0);
    assert_false(r);
    s_close(&s);
}

static void test_simple_regex_uses_extended_syntax_and_string_bounds(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "regex", "{\"pattern\": \"^(web|db)[0-9]+$\"}"), 0);
    assert_true(s_true(&s, "\"web12\""));
    assert_true(s_true(&s, "\"db3\""));
    assert_false(s_true(&s, "\"web\""));
    assert_false(s_true(&s, "\"xweb1\""));
    assert_false(s_true(&s, "7"));
    /* Event strings are not NUL-terminated: only the first 5 bytes count. */
    const char raw[] = "web12extra";
    msgpack_object v = {.type = MSGPACK_OBJECT_STR};
    v.via.str.ptr = raw;
    v.via.str.size = 5;
    bool r;
    assert_int_equal(s_call(&s, &v, &r), 0);
    assert_true(r);
    s_close(&s);

    site_t nc;
    assert_int_equal(s_open(&nc, "regex", "{\"pattern\": \"error\", \"nocase\": true}"), 0);
    assert_true(s_true(&nc, "\"disk ERROR on sda\""));
    s_close(&nc);
}

static void test_simple_exists_is_true_for_any_present_value(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "exists", "{}"), 0);
    assert_true(s_true(&s, "0"));
    assert_true(s_true(&s, "false"));
    assert_true(s_true(&s, "\"\""));
    assert_true(s_true(&s, "{}"));
    assert_false(s_true(&s, "null"));
    s_close(&s);
}

static void test_simple_works_without_prepare(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "regex", "{\"pattern\": \"^a+$\"}"), 0);
    s.res.fn->release(s.prepared);
    s.prepared = NULL;
    assert_true(s_true(&s, "\"aaa\""));
    assert_false(s_true(&s, "\"ab\""));
    s_close(&s);

    assert_int_equal(s_open(&s, "gt", "{\"threshold\": 1}"), 0);
    s.res.fn->release(s.prepared);
    s.prepared = NULL;
    assert_true(s_true(&s, "2"));
    s.params = s_json(s.zone, "{}"); /* unpreparable: the error, not a crash */
    msgpack_object v = s_json(s.zone, "2");
    bool r;
    assert_int_equal(s_call(&s, &v, &r), NERVE_EINVAL);
    assert_false(r);
    s_close(&s);
}

static void test_simple_prepare_refuses_bad_params_with_a_reason(void **state)
{
    s_refused("gt", "{}", "gt needs 'threshold' (a number)");
    s_refused("le", "{\"period\": 10}", "le needs 'threshold' (a number)");
    s_refused("gt", "{\"threshold\": \"20\"}", "gt needs 'threshold' (a number), got a string");
    s_refused("lt", "{\"value\": [1]}", "lt needs 'value' (a number), got a list");
    s_refused("ge", "{\"threshold\": true}", "ge needs 'threshold' (a number), got a bool");
    s_refused("eq", "{}", "eq needs 'threshold' (a number, string or bool)");
    s_refused("ne", "{\"threshold\": {\"a\": 1}}", "got a map");
    s_refused("between", "{\"low\": 1}", "between needs 'low' and 'high' (numbers)");
    s_refused("outside", "{\"low\": \"1\", \"high\": 2}", "outside needs 'low' and 'high'");
    s_refused("between", "{\"low\": 5, \"high\": 1}", "between needs 'low' <= 'high'");
    s_refused("match", "{}", "match needs 'pattern' (a string)");
    s_refused("regex", "{\"pattern\": 5}", "regex needs 'pattern' (a string)");
    s_refused("regex", "{\"pattern\": \"(unclosed\"}", "regex: bad 'pattern' '(unclosed'");
    s_refused("match", "{\"pattern\": \"*\", \"nocase\": \"yes\"}",
              "match: 'nocase' must be true or false");
    s_refused("eq", "{\"threshold\": \"a\\u0000b\"}", "eq: 'threshold' contains a NUL byte");
    s_refused("match", "{\"pattern\": \"a\\u0000*\"}", "match: 'pattern' contains a NUL byte");

    /* NaN cannot be written in JSON; a YAML .nan arrives as this. */
    site_t s;
    assert_int_equal(s_open(&s, "exists", "{}"), 0);
    nerve_resolved_t gt;
    char why[256];
    assert_int_equal(nerve_modset_resolve(s_modules, "rules.simple.gt", &gt, why, sizeof why), 0);
    msgpack_object_kv kv = {.key = s_json(s.zone, "\"threshold\""),
                            .val = {.type = MSGPACK_OBJECT_FLOAT64, .via.f64 = NAN}};
    msgpack_object params = {.type = MSGPACK_OBJECT_MAP};
    params.via.map.size = 1;
    params.via.map.ptr = &kv;
    void *prepared = NULL;
    why[0] = '\0';
    assert_int_equal(gt.fn->prepare(&params, &prepared, why, sizeof why), NERVE_EINVAL);
    assert_null(prepared);
    assert_string_equal(why, "gt: 'threshold' is NaN");
    /* No params map at all: refused, not a crash. */
    assert_int_not_equal(gt.fn->prepare(NULL, &prepared, why, sizeof why), 0);
    assert_null(prepared);
    s_close(&s);
}

/*  Found by fuzz_rules: glibc compiles `x+` as `xx*`, so quantifiers on
    quantified parts double what they apply to; 20 stacked `+` took 700 MB
    in regcomp(), 30 would take hundreds of GB, and a rules file or a
    reload could take the manager down. Such patterns are refused at load,
    with the reason; ordinary ones (bounds, classes, groups) still load. */
static void test_simple_regex_refuses_a_pattern_that_compiles_exponentially(void **state)
{
    s_refused("regex", "{\"pattern\": \"t++++++++++++++++++++++++++++++x\"}",
              "would compile to more than 20000 parts");
    s_refused("regex", "{\"pattern\": \"((((((((((((((((t)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+x\"}",
              "would compile to more than 20000 parts");
    s_refused("regex", "{\"pattern\": \"(a{200}){200}\"}", "would compile to more than 20000");
    s_refused("regex", "{\"pattern\": \"a{99999}\"}", "would compile to more than 20000");
    const char *fine[] = {
        "^(web|db)[0-9]+$", "^[[:alpha:]_]{1,64}\\\\.log$", "(e|a)b{2,3}[]a-z]+", "a{300}",
        "((a+)+)+", "x*+?", "[(+*]+", "\\\\(+\\\\)+",
    };
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        char params[256];
        snprintf(params, sizeof params, "{\"pattern\": \"%s\"}", fine[i]);
        site_t r;
        if (s_open(&r, "regex", params) != 0)
            fail_msg("refused '%s'", fine[i]);
        s_close(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_exports_every_function_with_a_doc),
        cmocka_unit_test(test_simple_gt_compares_value_with_threshold),
        cmocka_unit_test(test_simple_ge_lt_le_include_or_exclude_the_boundary),
        cmocka_unit_test(test_simple_value_param_takes_precedence_over_threshold),
        cmocka_unit_test(test_simple_integers_compare_exactly_beyond_double_precision),
        cmocka_unit_test(test_simple_eq_and_ne_compare_numbers_strings_and_bools),
        cmocka_unit_test(test_simple_eq_with_another_type_is_false_without_error),
        cmocka_unit_test(test_simple_numeric_rule_on_a_string_returns_etype),
        cmocka_unit_test(test_simple_missing_or_nil_value_is_false_without_error),
        cmocka_unit_test(test_simple_between_is_inclusive_and_outside_is_its_complement),
        cmocka_unit_test(test_simple_nan_is_in_no_range_and_equal_to_nothing),
        cmocka_unit_test(test_simple_match_globs_string_values),
        cmocka_unit_test(test_simple_match_handles_strings_longer_than_its_stack_buffer),
        cmocka_unit_test(test_simple_regex_uses_extended_syntax_and_string_bounds),
        cmocka_unit_test(test_simple_regex_refuses_a_pattern_that_compiles_exponentially),
        cmocka_unit_test(test_simple_exists_is_true_for_any_present_value),
        cmocka_unit_test(test_simple_works_without_prepare),
        cmocka_unit_test(test_simple_prepare_refuses_bad_params_with_a_reason),
    };
    return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
