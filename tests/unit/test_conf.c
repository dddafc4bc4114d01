/*  test_conf.c — YAML config and rules files: tree, positions, errors,
    typing and getters. Every position is asserted as exact line AND column,
    because "file:line:column" is the promise every later error relies on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nerve/conf.h>
#include <nerve/error.h>

/*  The seed's two rules examples, indented as DESIGN.md "Rules files" does:
    the rules list under its tag block. */
static const char s_seed_single[] =
    "/client/load/*:\n"                                    /* 1 */
    "  rules:\n"                                           /* 2 */
    "    - load_avg:\n"                                    /* 3 */
    "        rule: rules.simple.gt\n"                      /* 4 */
    "        register: register.aggregate.avg\n"           /* 5 */
    "        threshold: 20\n"                              /* 6 */
    "        period: 10\n"                                 /* 7 */
    "        reactions:\n"                                 /* 8 */
    "          # Have the LB turn down the traffic\n"      /* 9 */
    "          - reactions.eventer.fire_event:\n"          /* 10 */
    "              tag: '/reconfig/lb'\n"                  /* 11 */
    "              data:\n"                                /* 12 */
    "                turn_down_the_hose: originating_host\n" /* 13 */
    "          - reactions.cloud.scale_up:\n"              /* 14 */
    "              machine_id: originating_host\n";        /* 15 */

static const char s_seed_chain[] =
    "/client/load/*:\n"                                    /* 1 */
    "  rules:\n"                                           /* 2 */
    "    - load_avg:\n"                                    /* 3 */
    "        rule: rules.simple.gt\n"                      /* 4 */
    "        register: register.aggregate.avg\n"           /* 5 */
    "        threshold: 20\n"                              /* 6 */
    "        period: 10\n"                                 /* 7 */
    "        reactions:\n"                                 /* 8 */
    "          - reactions.eventer.fire_event:\n"          /* 9 */
    "              tag: '/reconfig/lb'\n"                  /* 10 */
    "              data:\n"                                /* 11 */
    "                some_reconfig_data: 'dummy_data'\n"   /* 12 */
    "        chain:\n"                                     /* 13 */
    "          - OR: io_avg\n"                             /* 14 */
    "    - io_avg:\n"                                      /* 15 */
    "        rule: rules.simple.gt\n"                      /* 16 */
    "        register: register.aggregate.avg\n"           /* 17 */
    "        threshold: 20\n"                              /* 18 */
    "        period: 10\n"                                 /* 19 */
    "        reactions:\n"                                 /* 20 */
    "          - reactions.eventer.fire_event:\n"          /* 21 */
    "              tag: '/reconfig/lb'\n"                  /* 22 */
    "              data:\n"                                /* 23 */
    "                some_reconfig_data: 'dummy_data'\n";  /* 24 */

static nerve_conf_t *s_parse_ok(const char *text)
{
    nerve_conf_t *root = NULL;
    nerve_conf_error_t err;
    int rc = nerve_conf_parse("t.yaml", text, strlen(text), &root, &err);
    if (rc)
        fail_msg("unexpected parse error %d: %s", rc, err.message);
    assert_non_null(root);
    return root;
}

/*  Parses text that must fail; returns the code, err filled. */
static int s_parse_bad(const char *text, nerve_conf_error_t *err)
{
    nerve_conf_t *root = (nerve_conf_t *) 0x1;
    int rc = nerve_conf_parse("t.yaml", text, strlen(text), &root, err);
    assert_null(root);
    assert_int_not_equal(rc, 0);
    return rc;
}

static void s_assert_at(const nerve_conf_t *node, size_t line, size_t column)
{
    assert_non_null(node);
    assert_int_equal(node->line, line);
    assert_int_equal(node->column, column);
    assert_string_equal(node->file, "t.yaml");
}

static void s_assert_scalar(const nerve_conf_t *node, const char *text, size_t line,
                            size_t column)
{
    s_assert_at(node, line, column);
    assert_int_equal(node->type, NERVE_CONF_SCALAR);
    assert_string_equal(node->text, text);
    assert_int_equal(node->text_len, strlen(text));
}

static void s_assert_err(const nerve_conf_error_t *err, size_t line, size_t column,
                         const char *message)
{
    assert_string_equal(err->message, message);
    assert_int_equal(err->line, line);
    assert_int_equal(err->column, column);
}

//  --------------------------------------------------------------------------
//  Tree and positions

static void test_conf_seed_single_rule_parses_with_keys_in_order_and_positions(void **state)
{
    nerve_conf_t *root = s_parse_ok(s_seed_single);
    s_assert_at(root, 1, 1);
    assert_int_equal(root->type, NERVE_CONF_MAP);
    assert_int_equal(root->count, 1);
    s_assert_scalar(root->keys[0], "/client/load/*", 1, 1);

    const nerve_conf_t *block = nerve_conf_get(root, "/client/load/*");
    s_assert_at(block, 2, 3);
    const nerve_conf_t *rules = nerve_conf_get(block, "rules");
    s_assert_at(rules, 3, 5);
    assert_int_equal(rules->type, NERVE_CONF_SEQ);
    assert_int_equal(rules->count, 1);

    const nerve_conf_t *item = rules->items[0];
    s_assert_at(item, 3, 7);
    assert_int_equal(item->type, NERVE_CONF_MAP);
    s_assert_scalar(item->keys[0], "load_avg", 3, 7);
    const nerve_conf_t *rule = item->items[0];
    s_assert_at(rule, 4, 9);
    assert_int_equal(rule->count, 5);
    const char *order[] = {"rule", "register", "threshold", "period", "reactions"};
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(rule->keys[i]->text, order[i]);
    assert_null(nerve_conf_get(rule, "chain"));
    s_assert_scalar(rule->keys[1], "register", 5, 9);
    s_assert_scalar(nerve_conf_get(rule, "rule"), "rules.simple.gt", 4, 15);
    s_assert_scalar(nerve_conf_get(rule, "register"), "register.aggregate.avg", 5, 19);
    s_assert_scalar(nerve_conf_get(rule, "threshold"), "20", 6, 20);
    s_assert_scalar(nerve_conf_get(rule, "period"), "10", 7, 17);

    const nerve_conf_t *reactions = nerve_conf_get(rule, "reactions");
    s_assert_at(reactions, 10, 11); /* the comment line is not a node */
    assert_int_equal(reactions->count, 2);
    const nerve_conf_t *fire = reactions->items[0];
    s_assert_scalar(fire->keys[0], "reactions.eventer.fire_event", 10, 13);
    const nerve_conf_t *args = fire->items[0];
    s_assert_at(args, 11, 15);
    const nerve_conf_t *tag = nerve_conf_get(args, "tag");
    s_assert_scalar(tag, "/reconfig/lb", 11, 20);
    assert_true(tag->quoted);
    s_assert_scalar(nerve_conf_get(nerve_conf_get(args, "data"), "turn_down_the_hose"),
                    "originating_host", 13, 37);
    const nerve_conf_t *scale = reactions->items[1];
    s_assert_scalar(scale->keys[0], "reactions.cloud.scale_up", 14, 13);
    s_assert_scalar(nerve_conf_get(scale->items[0], "machine_id"), "originating_host", 15, 27);
    assert_false(nerve_conf_get(scale->items[0], "machine_id")->quoted);

    nerve_conf_destroy(&root);
    assert_null(root);
    nerve_conf_destroy(&root); /* safe twice */
}

static void test_conf_seed_chained_rules_parse_with_positions(void **state)
{
    nerve_conf_t *root = s_parse_ok(s_seed_chain);
    const nerve_conf_t *rules = nerve_conf_get(nerve_conf_get(root, "/client/load/*"), "rules");
    assert_int_equal(rules->count, 2);
    s_assert_scalar(rules->items[0]->keys[0], "load_avg", 3, 7);
    s_assert_scalar(rules->items[1]->keys[0], "io_avg", 15, 7);

    const nerve_conf_t *load = rules->items[0]->items[0];
    const char *order[] = {"rule", "register", "threshold", "period", "reactions", "chain"};
    assert_int_equal(load->count, 6);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(load->keys[i]->text, order[i]);
    s_assert_scalar(load->keys[5], "chain", 13, 9);
    const nerve_conf_t *chain = nerve_conf_get(load, "chain");
    s_assert_at(chain, 14, 11);
    assert_int_equal(chain->count, 1);
    s_assert_scalar(chain->items[0]->keys[0], "OR", 14, 13);
    s_assert_scalar(chain->items[0]->items[0], "io_avg", 14, 17);
    const nerve_conf_t *data = nerve_conf_get(
        nerve_conf_get(nerve_conf_get(load, "reactions")->items[0], "reactions.eventer.fire_event"),
        "data");
    s_assert_scalar(nerve_conf_get(data, "some_reconfig_data"), "dummy_data", 12, 37);

    const nerve_conf_t *io = rules->items[1]->items[0];
    s_assert_at(io, 16, 9);
    assert_int_equal(io->count, 5);
    s_assert_scalar(nerve_conf_get(io, "threshold"), "20", 18, 20);
    s_assert_scalar(nerve_conf_get(io, "period"), "10", 19, 17);
    nerve_conf_destroy(&root);
}

static void test_conf_flow_collections_keep_positions(void **state)
{
    nerve_conf_t *root = s_parse_ok("r:\n  - fire: {tag: /x, data: [1, two]}\n");
    const nerve_conf_t *args = nerve_conf_get(nerve_conf_get(root, "r")->items[0], "fire");
    s_assert_at(args, 2, 11);
    s_assert_scalar(nerve_conf_get(args, "tag"), "/x", 2, 17);
    const nerve_conf_t *data = nerve_conf_get(args, "data");
    s_assert_at(data, 2, 27);
    s_assert_scalar(data->items[1], "two", 2, 31);
    nerve_conf_destroy(&root);
}

//  --------------------------------------------------------------------------
//  Syntax and structure errors

static void test_conf_tab_indent_reports_line_and_column(void **state)
{
    nerve_conf_error_t err;
    assert_int_equal(s_parse_bad("a: 1\nb:\n\tc: 2\n", &err), NERVE_EPARSE);
    s_assert_err(&err, 3, 1,
                 "t.yaml:3:1: found character that cannot start any token "
                 "(a tab: indent YAML with spaces)");
    assert_string_equal(err.file, "t.yaml");
}

static void test_conf_bad_indent_reports_line_and_column(void **state)
{
    nerve_conf_error_t err;
    assert_int_equal(s_parse_bad("a:\n  b: 1\n c: 2\n", &err), NERVE_EPARSE);
    s_assert_err(&err, 3, 2,
                 "t.yaml:3:2: did not find expected key "
                 "(while parsing a block mapping at 1:1)");
}

static void test_conf_mapping_value_in_plain_scalar_reports_problem_mark(void **state)
{
    nerve_conf_error_t err;
    assert_int_equal(s_parse_bad("a: 1\nb: c: d\n", &err), NERVE_EPARSE);
    s_assert_err(&err, 2, 5, "t.yaml:2:5: mapping values are not allowed in this context");
}

static void test_conf_invalid_utf8_reports_the_byte_position(void **state)
{
    nerve_conf_error_t err;
    assert_int_equal(s_parse_bad("a: 1\nb: x\xff\n", &err), NERVE_EPARSE);
    s_assert_err(&err, 2, 5, "t.yaml:2:5: invalid leading UTF-8 octet (byte 0xff)");
}

static void test_conf_duplicate_key_reports_second_position(void **state)
{
    nerve_conf_error_t err;
    assert_int_equal(s_parse_bad("a: 1\nrule:\n  x: 1\n  y: 2\n  x: 3\n  x: 4\n", &err),
                     NERVE_EPARSE);
    s_assert_err(&err, 5, 3, "t.yaml:5:3: duplicate key 'x' (first defined at 3:3)");

    /*  `1` and "1" become the same msgpack key, so they collide too. */
    assert_int_equal(s_parse_bad("{b: 0, 1: a, z: 9, '1': b}", &err), NERVE_EPARSE);
    s_assert_err(&err, 1, 20, "t.yaml:1:20: duplicate key '1' (first defined at 1:8)");

    /*  The earliest repeat wins even when another key sorts first. */
    assert_int_equal(s_parse_bad("z: 1\na: 1\nz: 2\na: 2\n", &err), NERVE_EPARSE);
    s_assert_err(&err, 3, 1, "t.yaml:3:1: duplicate key 'z' (first defined at 1:1)");
}

static void test_conf_same_key_in_different_maps_is_fine(void **state)
{
    nerve_conf_t *root = s_parse_ok("a: {x: 1}\nb: {x: 2}\n");
    assert_string_equal(nerve_conf_get(nerve_conf_get(root, "b"), "x")->text, "2");
    nerve_conf_destroy(&root);
}

static void test_conf_non_scalar_keys_are_errors(void **state)
{
    nerve_conf_error_t err;
    assert_int_equal(s_parse_bad("a: 1\n? [k]\n: v\n", &err), NERVE_EPARSE);
    s_assert_err(&err, 2, 3, "t.yaml:2:3: a mapping key must be a scalar, not a sequence");
    assert_int_equal(s_parse_bad("{{a: 1}: v}", &err), NERVE_EPARSE);
    s_assert_err(&err, 1, 2, "t.yaml:1:2: a mapping key must be a scalar, not a map");
    assert_int_equal(s_parse_bad("m: &m {a: 1}\n*m : v\n", &err), NERVE_EPARSE);
    s_assert_err(&err, 2, 1,
                 "t.yaml:2:1: a mapping key must be a scalar, but alias '*m' is a map");
}

static void test_conf_second_document_is_an_error(void **state)
{
    nerve_conf_error_t err;
    assert_int_equal(s_parse_bad("a: 1\n---\nb: 2\n", &err), NERVE_EPARSE);
    s_assert_err(&err, 2, 1,
                 "t.yaml:2:1: a second YAML document; a nerve file holds exactly one");

    /*  One explicit document, with its end marker, is fine. */
    nerve_conf_t *root = s_parse_ok("---\na: 1\n...\n");
    s_assert_scalar(nerve_conf_get(root, "a"), "1", 2, 4);
    nerve_conf_destroy(&root);
}

static void test_conf_empty_input_gives_null_root(void **state)
{
    const char *empties[] = {"", "\n\n", "# only a comment\n", "---\n", "--- \n...\n"};
    for (size_t i = 0; i < sizeof empties / sizeof *empties; i++) {
        nerve_conf_t *root = (nerve_conf_t *) 0x1;
        nerve_conf_error_t err;
        assert_int_equal(nerve_conf_parse("e.yaml", empties[i], strlen(empties[i]), &root, &err),
                         0);
        assert_null(root);
    }
    /*  A document holding an explicit scalar is not empty. */
    nerve_conf_t *root = s_parse_ok("''\n");
    assert_int_equal(root->type, NERVE_CONF_SCALAR);
    assert_true(root->quoted);
    nerve_conf_destroy(&root);
}

static void test_conf_unsupported_tag_is_an_error(void **state)
{
    nerve_conf_error_t err;
    assert_int_equal(s_parse_bad("a: 1\nb: !vault secret\n", &err), NERVE_EPARSE);
    s_assert_err(&err, 2, 4, "t.yaml:2:4: unsupported tag '!vault'");
}

static void test_conf_deep_nesting_is_refused(void **state)
{
    size_t depth = 300;
    char *text = malloc(2 * depth + 1);
    assert_non_null(text);
    memset(text, '[', depth);
    memset(text + depth, ']', depth);
    text[2 * depth] = '\0';
    nerve_conf_error_t err;
    assert_int_equal(s_parse_bad(text, &err), NERVE_ERANGE);
    s_assert_err(&err, 1, 257, "t.yaml:1:257: nesting is deeper than 256 levels");
    free(text);
}

//  --------------------------------------------------------------------------
//  Anchors and aliases

static void test_conf_aliases_resolve_to_maps_seqs_and_scalars(void **state)
{
    nerve_conf_t *root = s_parse_ok("defaults: &d {period: 10, threshold: 20}\n"
                                    "hosts: &h [web1, web2]\n"
                                    "name: &n load\n"
                                    "a: *d\n"
                                    "b: *d\n"
                                    "c: {hosts: *h, name: *n}\n");
    const nerve_conf_t *a = nerve_conf_get(root, "a"), *b = nerve_conf_get(root, "b");
    assert_int_equal(a->type, NERVE_CONF_MAP);
    s_assert_at(a, 4, 4); /* the place of use, not of the anchor */
    s_assert_at(b, 5, 4);
    assert_int_equal(a->count, 2);
    s_assert_scalar(nerve_conf_get(b, "threshold"), "20", 1, 38);
    assert_ptr_equal(a->items, b->items); /* shared, freed once */

    const nerve_conf_t *c = nerve_conf_get(root, "c");
    const nerve_conf_t *hosts = nerve_conf_get(c, "hosts");
    assert_int_equal(hosts->type, NERVE_CONF_SEQ);
    assert_int_equal(hosts->count, 2);
    s_assert_scalar(hosts->items[1], "web2", 2, 18);
    s_assert_at(hosts, 6, 12);
    s_assert_scalar(nerve_conf_get(c, "name"), "load", 6, 22);

    /*  A scalar alias can be a key. */
    nerve_conf_destroy(&root);
    root = s_parse_ok("k: &k key\n*k : v\n");
    s_assert_scalar(nerve_conf_get(root, "key"), "v", 2, 6);
    nerve_conf_destroy(&root);
}

static void test_conf_bad_aliases_are_errors(void **state)
{
    nerve_conf_error_t err;
    assert_int_equal(s_parse_bad("a: 1\nb: *nope\n", &err), NERVE_EPARSE);
    s_assert_err(&err, 2, 4, "t.yaml:2:4: unknown alias '*nope'");
    assert_int_equal(s_parse_bad("a: &x [1, *x]\n", &err), NERVE_EPARSE);
    s_assert_err(&err, 1, 11, "t.yaml:1:11: alias '*x' refers to a node that contains it");
}

static void test_conf_alias_bomb_is_refused_without_hanging(void **state)
{
    const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                       "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                       "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                       "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                       "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
                       "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n";
    nerve_conf_error_t err;
    assert_int_equal(s_parse_bad(bomb, &err), NERVE_ERANGE);
    assert_int_equal(err.line, 6); /* f: a million x's and more */
    assert_non_null(strstr(err.message, "too large"));
}

/*  Found by fuzz_conf: few nodes, but each alias stands for one long
    string, and nerve_conf_to_obj() copies every one (3 KB of YAML were
    gigabytes of text, an out-of-memory or a hang). Text is now counted
    too, aliases expanded. */
static void test_conf_alias_text_bomb_is_refused_by_its_bytes(void **state)
{
    char *text = malloc(8192);
    assert_non_null(text);
    int n = snprintf(text, 8192, "a: &a \"");
    memset(text + n, 'x', 3000);
    n += 3000;
    n += snprintf(text + n, 8192 - (size_t)n, "\"\n");
    const char *prev = "a";
    static const char *const names[] = {"b", "c", "d", "e", "f", "g"};
    for (size_t i = 0; i < 6; i++) {
        n += snprintf(text + n, 8192 - (size_t)n, "%s: &%s [", names[i], names[i]);
        for (int k = 0; k < 10; k++)
            n += snprintf(text + n, 8192 - (size_t)n, "%s*%s", k ? ", " : "", prev);
        n += snprintf(text + n, 8192 - (size_t)n, "]\n");
        prev = names[i];
    }
    nerve_conf_error_t err;
    assert_int_equal(s_parse_bad(text, &err), NERVE_ERANGE);
    /*  e stands for 30 MB; the third *e in f's list passes 64 MiB. */
    assert_int_equal(err.line, 6);
    assert_int_equal(err.column, 16);
    assert_non_null(strstr(err.message, "more than 64 MiB of text once aliases are expanded"));
    free(text);
}

//  --------------------------------------------------------------------------
//  Typing through nerve_conf_to_obj

static msgpack_object s_obj(const nerve_conf_t *root, const char *key, msgpack_zone *zone)
{
    msgpack_object obj;
    const nerve_conf_t *node = nerve_conf_get(root, key);
    assert_non_null(node);
    assert_int_equal(nerve_conf_to_obj(node, zone, &obj), 0);
    return obj;
}

static void s_assert_str_obj(msgpack_object obj, const char *text)
{
    assert_int_equal(obj.type, MSGPACK_OBJECT_STR);
    assert_int_equal(obj.via.str.size, strlen(text));
    assert_memory_equal(obj.via.str.ptr, text, strlen(text));
}

static void test_conf_to_obj_types_plain_scalars_by_core_schema(void **state)
{
    nerve_conf_t *root = s_parse_ok("int: 20\nplus: +7\nneg: -5\nzero: -0\nhex: 0x1F\noct: 0o17\n"
                                    "big: 18446744073709551615\nmin: -9223372036854775808\n"
                                    "f: 1.5\nexp: -2e3\ndot: .5\ninf: .inf\nninf: -.Inf\n"
                                    "nan: .NaN\nhuge: 99999999999999999999\n"
                                    "t: true\nT: True\nF: FALSE\nyes: yes\n"
                                    "n1: ~\nn2: null\nn3: NULL\nn4:\n"
                                    "s: hello\nbadhex: 0xZZ\nver: 1.2.3\n");
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object o;

    o = s_obj(root, "int", &zone);
    assert_int_equal(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(o.via.u64, 20);
    o = s_obj(root, "plus", &zone);
    assert_int_equal(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(o.via.u64, 7);
    o = s_obj(root, "neg", &zone);
    assert_int_equal(o.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal(o.via.i64, -5);
    o = s_obj(root, "zero", &zone);
    assert_int_equal(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(o.via.u64, 0);
    o = s_obj(root, "hex", &zone);
    assert_int_equal(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(o.via.u64, 31);
    o = s_obj(root, "oct", &zone);
    assert_int_equal(o.via.u64, 15);
    o = s_obj(root, "big", &zone);
    assert_int_equal(o.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_true(o.via.u64 == UINT64_MAX);
    o = s_obj(root, "min", &zone);
    assert_int_equal(o.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_true(o.via.i64 == INT64_MIN);

    o = s_obj(root, "f", &zone);
    assert_int_equal(o.type, MSGPACK_OBJECT_FLOAT64);
    assert_true(o.via.f64 == 1.5);
    o = s_obj(root, "exp", &zone);
    assert_int_equal(o.type, MSGPACK_OBJECT_FLOAT64);
    assert_true(o.via.f64 == -2000.0);
    o = s_obj(root, "dot", &zone);
    assert_true(o.via.f64 == 0.5);
    o = s_obj(root, "inf", &zone);
    assert_int_equal(o.type, MSGPACK_OBJECT_FLOAT64);
    assert_true(isinf(o.via.f64) && o.via.f64 > 0);
    o = s_obj(root, "ninf", &zone);
    assert_true(isinf(o.via.f64) && o.via.f64 < 0);
    o = s_obj(root, "nan", &zone);
    assert_int_equal(o.type, MSGPACK_OBJECT_FLOAT64);
    assert_true(isnan(o.via.f64));
    o = s_obj(root, "huge", &zone);
    assert_int_equal(o.type, MSGPACK_OBJECT_FLOAT64);
    assert_true(o.via.f64 == 1e20);

    o = s_obj(root, "t", &zone);
    assert_int_equal(o.type, MSGPACK_OBJECT_BOOLEAN);
    assert_true(o.via.boolean);
    o = s_obj(root, "T", &zone);
    assert_true(o.via.boolean);
    o = s_obj(root, "F", &zone);
    assert_int_equal(o.type, MSGPACK_OBJECT_BOOLEAN);
    assert_false(o.via.boolean);
    s_assert_str_obj(s_obj(root, "yes", &zone), "yes"); /* YAML 1.2: not a bool */

    assert_int_equal(s_obj(root, "n1", &zone).type, MSGPACK_OBJECT_NIL);
    assert_int_equal(s_obj(root, "n2", &zone).type, MSGPACK_OBJECT_NIL);
    assert_int_equal(s_obj(root, "n3", &zone).type, MSGPACK_OBJECT_NIL);
    assert_int_equal(s_obj(root, "n4", &zone).type, MSGPACK_OBJECT_NIL);

    s_assert_str_obj(s_obj(root, "s", &zone), "hello");
    s_assert_str_obj(s_obj(root, "badhex", &zone), "0xZZ");
    s_assert_str_obj(s_obj(root, "ver", &zone), "1.2.3");
    msgpack_zone_destroy(&zone);
    nerve_conf_destroy(&root);
}

static void test_conf_to_obj_quoted_and_block_scalars_stay_strings(void **state)
{
    nerve_conf_t *root = s_parse_ok("dq: \"20\"\nsq: 'true'\nnul: '~'\ntagged: !!str 1.5\n"
                                    "block: |\n  20\nfolded: >-\n  null\n");
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    s_assert_str_obj(s_obj(root, "dq", &zone), "20");
    s_assert_str_obj(s_obj(root, "sq", &zone), "true");
    s_assert_str_obj(s_obj(root, "nul", &zone), "~");
    s_assert_str_obj(s_obj(root, "tagged", &zone), "1.5");
    s_assert_str_obj(s_obj(root, "block", &zone), "20\n");
    s_assert_str_obj(s_obj(root, "folded", &zone), "null");
    msgpack_zone_destroy(&zone);
    nerve_conf_destroy(&root);
}

static void test_conf_to_obj_builds_maps_and_arrays_that_outlive_the_tree(void **state)
{
    nerve_conf_t *root = s_parse_ok("args: {tag: /reconfig/lb, data: {x: y}, n: [1, -2, 2.5]}\n"
                                    "1: int-looking key\n");
    msgpack_zone zone;
    msgpack_zone_init(&zone, 256);
    msgpack_object args, whole;
    assert_int_equal(nerve_conf_to_obj(nerve_conf_get(root, "args"), &zone, &args), 0);
    assert_int_equal(nerve_conf_to_obj(root, &zone, &whole), 0);
    nerve_conf_destroy(&root); /* the msgpack value lives in the zone */

    assert_int_equal(args.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(args.via.map.size, 3);
    s_assert_str_obj(args.via.map.ptr[0].key, "tag");
    s_assert_str_obj(args.via.map.ptr[0].val, "/reconfig/lb");
    msgpack_object data = args.via.map.ptr[1].val;
    assert_int_equal(data.type, MSGPACK_OBJECT_MAP);
    s_assert_str_obj(data.via.map.ptr[0].key, "x");
    s_assert_str_obj(data.via.map.ptr[0].val, "y");
    msgpack_object n = args.via.map.ptr[2].val;
    assert_int_equal(n.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(n.via.array.size, 3);
    assert_int_equal(n.via.array.ptr[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(n.via.array.ptr[1].type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal(n.via.array.ptr[2].type, MSGPACK_OBJECT_FLOAT64);

    /*  Keys are always strings, so modules find "1" by name. */
    assert_int_equal(whole.via.map.size, 2);
    s_assert_str_obj(whole.via.map.ptr[1].key, "1");
    msgpack_zone_destroy(&zone);

    msgpack_object nil;
    msgpack_zone_init(&zone, 64);
    assert_int_equal(nerve_conf_to_obj(NULL, &zone, &nil), 0);
    assert_int_equal(nil.type, MSGPACK_OBJECT_NIL);
    msgpack_zone_destroy(&zone);
}

//  --------------------------------------------------------------------------
//  Getters

static void test_conf_as_int_accepts_range_and_names_what_it_expected(void **state)
{
    nerve_conf_t *root = s_parse_ok("port: 7450\nbad: abc\nhigh: 70000\nneg: -3\nhex: 0x10\n"
                                    "quoted: \"80\"\nhuge: 99999999999999999999\nf: 1.5\n"
                                    "map: {a: 1}\n");
    nerve_conf_error_t err;
    int64_t v = 0;
    assert_int_equal(nerve_conf_as_int(nerve_conf_get(root, "port"), 1, 65535, &v, &err), 0);
    assert_int_equal(v, 7450);
    assert_int_equal(nerve_conf_as_int(nerve_conf_get(root, "hex"), 1, 65535, &v, &err), 0);
    assert_int_equal(v, 16);
    assert_int_equal(nerve_conf_as_int(nerve_conf_get(root, "quoted"), 1, 65535, &v, &err), 0);
    assert_int_equal(v, 80);
    assert_int_equal(nerve_conf_as_int(nerve_conf_get(root, "neg"), INT64_MIN, INT64_MAX, &v,
                                       &err),
                     0);
    assert_int_equal(v, -3);

    v = 99;
    assert_int_equal(nerve_conf_as_int(nerve_conf_get(root, "bad"), 1, 65535, &v, &err),
                     NERVE_ETYPE);
    s_assert_err(&err, 2, 6, "t.yaml:2:6: expected an integer between 1 and 65535, got 'abc'");
    assert_int_equal(v, 99); /* untouched on error */
    assert_int_equal(nerve_conf_as_int(nerve_conf_get(root, "high"), 1, 65535, &v, &err),
                     NERVE_ERANGE);
    s_assert_err(&err, 3, 7,
                 "t.yaml:3:7: expected an integer between 1 and 65535, got '70000'");
    assert_int_equal(nerve_conf_as_int(nerve_conf_get(root, "neg"), 0, 10, &v, &err),
                     NERVE_ERANGE);
    s_assert_err(&err, 4, 6, "t.yaml:4:6: expected an integer between 0 and 10, got '-3'");
    assert_int_equal(nerve_conf_as_int(nerve_conf_get(root, "huge"), INT64_MIN, INT64_MAX, &v,
                                       &err),
                     NERVE_ERANGE);
    s_assert_err(&err, 7, 7, "t.yaml:7:7: expected an integer, got '99999999999999999999'");
    assert_int_equal(nerve_conf_as_int(nerve_conf_get(root, "f"), 0, 10, &v, &err),
                     NERVE_ETYPE);
    s_assert_err(&err, 8, 4, "t.yaml:8:4: expected an integer between 0 and 10, got '1.5'");
    assert_int_equal(nerve_conf_as_int(nerve_conf_get(root, "map"), 0, 10, &v, &err),
                     NERVE_ETYPE);
    s_assert_err(&err, 9, 6, "t.yaml:9:6: expected an integer between 0 and 10, got a map");
    assert_int_equal(nerve_conf_as_int(NULL, 0, 10, &v, &err), NERVE_ETYPE);
    s_assert_err(&err, 0, 0, "expected an integer between 0 and 10, got nothing");
    nerve_conf_destroy(&root);
}

static void test_conf_as_str_double_bool_report_errors_at_the_node(void **state)
{
    nerve_conf_t *root = s_parse_ok("name: web1\nlist: [a]\nf: -2.5e1\nn: '3'\nbad: 1.2.3\n"
                                    "inf: .inf\nb: TRUE\nyes: yes\n");
    nerve_conf_error_t err;
    const char *s = NULL;
    assert_int_equal(nerve_conf_as_str(nerve_conf_get(root, "name"), &s, &err), 0);
    assert_string_equal(s, "web1");
    assert_int_equal(nerve_conf_as_str(nerve_conf_get(root, "list"), &s, &err), NERVE_ETYPE);
    s_assert_err(&err, 2, 7, "t.yaml:2:7: expected a string, got a sequence");

    double d = 0;
    assert_int_equal(nerve_conf_as_double(nerve_conf_get(root, "f"), &d, &err), 0);
    assert_true(d == -25.0);
    assert_int_equal(nerve_conf_as_double(nerve_conf_get(root, "n"), &d, &err), 0);
    assert_true(d == 3.0);
    assert_int_equal(nerve_conf_as_double(nerve_conf_get(root, "bad"), &d, &err), NERVE_ETYPE);
    s_assert_err(&err, 5, 6, "t.yaml:5:6: expected a number, got '1.2.3'");
    assert_int_equal(nerve_conf_as_double(nerve_conf_get(root, "inf"), &d, &err), NERVE_ERANGE);
    s_assert_err(&err, 6, 6, "t.yaml:6:6: expected a finite number, got '.inf'");

    bool b = false;
    assert_int_equal(nerve_conf_as_bool(nerve_conf_get(root, "b"), &b, &err), 0);
    assert_true(b);
    assert_int_equal(nerve_conf_as_bool(nerve_conf_get(root, "yes"), &b, &err), NERVE_ETYPE);
    s_assert_err(&err, 8, 6, "t.yaml:8:6: expected true or false, got 'yes'");
    nerve_conf_destroy(&root);
}

/*  An error quotes the operator's text back; a control character in it
    (a quoted "\n") becomes '?', so one error is one line in a log. */
static void test_conf_fail_keeps_an_error_on_one_line(void **state)
{
    nerve_conf_t *root = s_parse_ok("id: \"web\\n1\\tx\"\n");
    const nerve_conf_t *id = nerve_conf_get(root, "id");
    assert_string_equal(id->text, "web\n1\tx");
    nerve_conf_error_t err;
    assert_int_equal(nerve_conf_fail(id, &err, "bad id '%s'", id->text), NERVE_EINVAL);
    s_assert_err(&err, 1, 5, "t.yaml:1:5: bad id 'web?1?x'");
    nerve_conf_destroy(&root);
}

/*  Found by fuzz_conf: `id: "web\0x"` read as "web", silently. */
static void test_conf_as_str_refuses_a_nul_character(void **state)
{
    static const char text[] = "id: \"web\\0x\"\nok: \"w\\x01\"\n";
    nerve_conf_t *root = s_parse_ok(text);
    const nerve_conf_t *id = nerve_conf_get(root, "id");
    assert_int_equal(id->text_len, 5); /* the tree keeps every byte */
    nerve_conf_error_t err;
    const char *s = NULL;
    assert_int_equal(nerve_conf_as_str(id, &s, &err), NERVE_ETYPE);
    assert_null(s);
    s_assert_err(&err, 1, 5, "t.yaml:1:5: expected a string without NUL characters, got 'web?x'");
    char *slot = NULL;
    assert_int_equal(nerve_conf_get_str(root, "id", &slot, &err), NERVE_EINVAL);
    assert_null(slot);
    assert_int_equal(err.line, 1);
    assert_int_equal(nerve_conf_as_str(nerve_conf_get(root, "ok"), &s, &err), 0);
    assert_string_equal(s, "w\x01");
    nerve_conf_destroy(&root);
}

static void test_conf_error_text_is_shortened_and_sanitised(void **state)
{
    /*  70 bytes of text are shown as their first 64 and "...". */
    char text[128], want[160], a64[65];
    memset(a64, 'a', 64);
    a64[64] = '\0';
    snprintf(text, sizeof text, "x: \"%s%s\"\ny: \"a\\tb\"\n", a64, "aaaaaa");
    nerve_conf_t *root = s_parse_ok(text);
    nerve_conf_error_t err;
    bool b;
    assert_int_equal(nerve_conf_as_bool(nerve_conf_get(root, "x"), &b, &err), NERVE_ETYPE);
    snprintf(want, sizeof want, "t.yaml:1:4: expected true or false, got '%s...'", a64);
    assert_string_equal(err.message, want);
    /*  A control character (here a tab from "\t") never reaches the log raw. */
    assert_int_equal(nerve_conf_as_bool(nerve_conf_get(root, "y"), &b, &err), NERVE_ETYPE);
    assert_string_equal(err.message, "t.yaml:2:4: expected true or false, got 'a?b'");
    nerve_conf_destroy(&root);
}

static void test_conf_durations_parse_units_and_reject_garbage(void **state)
{
    struct {
        const char *text;
        uint64_t ms;
    } good[] = {{"250ms", 250},       {"30s", 30000},     {"5m", 300000},
                {"2h", 7200000},      {"1d", 86400000},   {"10", 10000},
                {"0.5", 500},         {"0.1s", 100},      {"1.5h", 5400000},
                {"0", 0},             {"0ms", 0},         {"18446744073709551615ms", UINT64_MAX}};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        uint64_t ms = 1;
        if (nerve_duration_parse_ms(good[i].text, &ms) != 0)
            fail_msg("'%s' was rejected", good[i].text);
        if (ms != good[i].ms)
            fail_msg("'%s' gave %llu ms", good[i].text, (unsigned long long) ms);
    }
    const char *bad[] = {"",     "-5s", "abc", "5 s",  "5x",  "s",    "1.",    "ms",
                         "5S",   "1e3", "+5s", " 5s",  "5s ", "0x10", "1h30m", ".",
                         "18446744073709551616ms", "213503982334602d", "-0.5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint64_t ms = 77;
        if (nerve_duration_parse_ms(bad[i], &ms) != NERVE_EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_int_equal(ms, 77);
    }
    assert_int_equal(nerve_duration_parse_ms(NULL, NULL), NERVE_EINVAL);
}

static void test_conf_as_duration_reports_garbage_negative_and_overflow(void **state)
{
    nerve_conf_t *root = s_parse_ok("ok: 30s\nbad: soon\nneg: -5s\nbig: 300000000000000d\n"
                                    "map: {}\n");
    nerve_conf_error_t err;
    uint64_t ms = 0;
    assert_int_equal(nerve_conf_as_duration_ms(nerve_conf_get(root, "ok"), &ms, &err), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(nerve_conf_as_duration_ms(nerve_conf_get(root, "bad"), &ms, &err),
                     NERVE_ETYPE);
    s_assert_err(&err, 2, 6,
                 "t.yaml:2:6: expected a duration (250ms, 30s, 5m, 2h, 1d or seconds), "
                 "got 'soon'");
    assert_int_equal(nerve_conf_as_duration_ms(nerve_conf_get(root, "neg"), &ms, &err),
                     NERVE_ERANGE);
    s_assert_err(&err, 3, 6,
                 "t.yaml:3:6: expected a duration that is not negative and fits in 64-bit "
                 "milliseconds, got '-5s'");
    assert_int_equal(nerve_conf_as_duration_ms(nerve_conf_get(root, "big"), &ms, &err),
                     NERVE_ERANGE);
    assert_int_equal(err.line, 4);
    assert_int_equal(err.column, 6);
    assert_int_equal(nerve_conf_as_duration_ms(nerve_conf_get(root, "map"), &ms, &err),
                     NERVE_ETYPE);
    s_assert_err(&err, 5, 6,
                 "t.yaml:5:6: expected a duration (250ms, 30s, 5m, 2h, 1d or seconds), "
                 "got a map");
    assert_int_equal(ms, 30000);
    nerve_conf_destroy(&root);
}

static void test_conf_check_keys_names_unknown_key_and_expected_list(void **state)
{
    nerve_conf_t *root = s_parse_ok("rule: rules.simple.gt\nthreshold: 20\nthresold: 30\n");
    nerve_conf_error_t err;
    const char *const ok[] = {"rule", "threshold", "thresold", NULL};
    assert_int_equal(nerve_conf_check_keys(root, ok, &err), 0);
    const char *const allowed[] = {"rule", "register", "threshold", NULL};
    assert_int_equal(nerve_conf_check_keys(root, allowed, &err), NERVE_EINVAL);
    s_assert_err(&err, 3, 1,
                 "t.yaml:3:1: unknown key 'thresold' "
                 "(expected one of: rule, register, threshold)");
    assert_int_equal(nerve_conf_check_keys(nerve_conf_get(root, "rule"), allowed, &err),
                     NERVE_ETYPE);
    s_assert_err(&err, 1, 7, "t.yaml:1:7: expected a map, got 'rules.simple.gt'");
    nerve_conf_destroy(&root);
}

static void test_conf_fail_formats_file_line_column(void **state)
{
    nerve_conf_t *root = s_parse_ok("chain:\n  - OR: io_avg\n");
    const nerve_conf_t *name = nerve_conf_get(nerve_conf_get(root, "chain")->items[0], "OR");
    nerve_conf_error_t err;
    assert_int_equal(nerve_conf_fail(name, &err, "unknown rule '%s' in chain", name->text),
                     NERVE_EINVAL);
    s_assert_err(&err, 2, 9, "t.yaml:2:9: unknown rule 'io_avg' in chain");
    assert_string_equal(err.file, "t.yaml");
    assert_int_equal(nerve_conf_fail(NULL, &err, "no node %d", 1), NERVE_EINVAL);
    s_assert_err(&err, 0, 0, "no node 1");
    assert_null(nerve_conf_get(name, "x")); /* not a map */
    assert_null(nerve_conf_get(NULL, "x"));
    nerve_conf_destroy(&root);
}

//  --------------------------------------------------------------------------
//  Files

static char s_dir[64];

static int s_tmpdir_setup(void **state)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/nerve-conf-XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_tmpdir_teardown(void **state)
{
    char path[128];
    const char *names[] = {"ok.yaml", "empty.yaml", "bad.yaml"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", s_dir, names[i]);
        unlink(path);
    }
    return rmdir(s_dir);
}

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_conf_load_missing_file_is_enoent_with_the_path(void **state)
{
    char path[128];
    snprintf(path, sizeof path, "%s/missing.yaml", s_dir);
    nerve_conf_t *root = (nerve_conf_t *) 0x1;
    nerve_conf_error_t err;
    assert_int_equal(nerve_conf_load(path, &root, &err), NERVE_ENOENT);
    assert_null(root);
    char want[256];
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
    assert_string_equal(err.message, want);
    assert_string_equal(err.file, path);

    assert_int_equal(nerve_conf_load(s_dir, &root, &err), NERVE_EIO);
    assert_non_null(strstr(err.message, "is a directory"));
}

static void test_conf_load_daemon_uses_the_default_only_when_it_exists(void **state)
{
    char missing[128], present[128];
    snprintf(missing, sizeof missing, "%s/no-such-default.yaml", s_dir);
    snprintf(present, sizeof present, "%s/daemon.yaml", s_dir);
    s_write(present, "events: tcp://*:7450\n");
    nerve_conf_t *root;
    const char *used;
    nerve_conf_error_t err;
    /* No -c and no default file: built-in defaults, nothing read. */
    assert_int_equal(nerve_conf_load_daemon(NULL, missing, &root, &used, &err), 0);
    assert_null(root);
    assert_null(used);
    /* No -c, the default exists: it is read. */
    assert_int_equal(nerve_conf_load_daemon(NULL, present, &root, &used, &err), 0);
    assert_string_equal(used, present);
    assert_string_equal(nerve_conf_get(root, "events")->text, "tcp://*:7450");
    nerve_conf_destroy(&root);
    /* -c names a file that is not there: an error, not silent defaults. */
    assert_int_equal(nerve_conf_load_daemon(missing, present, &root, &used, &err), NERVE_ENOENT);
    assert_null(used);
    unlink(present);
}

static void test_conf_load_reads_files_and_names_them_in_positions(void **state)
{
    char path[128];
    snprintf(path, sizeof path, "%s/ok.yaml", s_dir);
    s_write(path, s_seed_chain);
    nerve_conf_t *root = NULL;
    nerve_conf_error_t err;
    assert_int_equal(nerve_conf_load(path, &root, &err), 0);
    const nerve_conf_t *rules = nerve_conf_get(nerve_conf_get(root, "/client/load/*"), "rules");
    assert_string_equal(rules->file, path);
    assert_int_equal(rules->count, 2);
    nerve_conf_destroy(&root);

    snprintf(path, sizeof path, "%s/empty.yaml", s_dir);
    s_write(path, "");
    root = (nerve_conf_t *) 0x1;
    assert_int_equal(nerve_conf_load(path, &root, &err), 0);
    assert_null(root);

    snprintf(path, sizeof path, "%s/bad.yaml", s_dir);
    s_write(path, "a: [1, 2\n");
    assert_int_equal(nerve_conf_load(path, &root, &err), NERVE_EPARSE);
    assert_null(root);
    assert_string_equal(err.file, path);
    assert_int_equal(err.line, 2);
    assert_int_equal(err.column, 1);
    assert_true(strncmp(err.message, path, strlen(path)) == 0);
}

/*  The helpers daemon configs fill their structs with: strings copied
    (an absent key leaves the default), module directories replaced as a
    whole, errors at the offending node. */
static void test_conf_get_str_and_module_dirs_fill_a_config(void **state)
{
    (void)state;
    nerve_conf_t *root = s_parse_ok("id: web1\nport: [1]\nmodules: [/a, /b]\n");
    nerve_conf_error_t err;
    char *id = NULL, *other = NULL;
    assert_int_equal(nerve_conf_set_str(&other, "default"), 0);
    assert_int_equal(nerve_conf_get_str(root, "id", &id, &err), 0);
    assert_string_equal(id, "web1");
    assert_int_equal(nerve_conf_get_str(root, "absent", &other, &err), 0);
    assert_string_equal(other, "default");
    assert_int_equal(nerve_conf_get_str(root, "port", &other, &err), NERVE_EINVAL);
    assert_string_equal(other, "default");
    assert_int_equal(err.line, 2);
    assert_int_equal(nerve_conf_set_str(&other, NULL), 0);
    assert_null(other);

    char *dirs[2] = {NULL, NULL};
    size_t n = 0;
    assert_int_equal(nerve_conf_set_str(&dirs[0], "/default"), 0);
    n = 1;
    assert_int_equal(nerve_conf_get_module_dirs(root, dirs, 2, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(dirs[0], "/a");
    assert_string_equal(dirs[1], "/b");
    assert_int_equal(nerve_conf_get_module_dirs(root, dirs, 1, &n, &err), NERVE_EINVAL);
    assert_non_null(strstr(err.message, "at most 1 module directories"));
    nerve_conf_destroy(&root);

    root = s_parse_ok("modules: /one\n");
    assert_int_equal(nerve_conf_get_module_dirs(root, dirs, 2, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(dirs[0], "/one");
    nerve_conf_destroy(&root);
    root = s_parse_ok("modules: [/one, '']\n");
    assert_int_equal(nerve_conf_get_module_dirs(root, dirs, 2, &n, &err), NERVE_EINVAL);
    assert_non_null(strstr(err.message, "an empty module directory"));
    nerve_conf_destroy(&root);
    root = s_parse_ok("modules: {a: 1}\n");
    assert_int_equal(nerve_conf_get_module_dirs(root, dirs, 2, &n, &err), NERVE_EINVAL);
    nerve_conf_destroy(&root);
    for (size_t i = 0; i < n; i++)
        free(dirs[i]);
    free(id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_seed_single_rule_parses_with_keys_in_order_and_positions),
        cmocka_unit_test(test_conf_seed_chained_rules_parse_with_positions),
        cmocka_unit_test(test_conf_flow_collections_keep_positions),
        cmocka_unit_test(test_conf_tab_indent_reports_line_and_column),
        cmocka_unit_test(test_conf_bad_indent_reports_line_and_column),
        cmocka_unit_test(test_conf_mapping_value_in_plain_scalar_reports_problem_mark),
        cmocka_unit_test(test_conf_invalid_utf8_reports_the_byte_position),
        cmocka_unit_test(test_conf_duplicate_key_reports_second_position),
        cmocka_unit_test(test_conf_same_key_in_different_maps_is_fine),
        cmocka_unit_test(test_conf_non_scalar_keys_are_errors),
        cmocka_unit_test(test_conf_second_document_is_an_error),
        cmocka_unit_test(test_conf_empty_input_gives_null_root),
        cmocka_unit_test(test_conf_unsupported_tag_is_an_error),
        cmocka_unit_test(test_conf_deep_nesting_is_refused),
        cmocka_unit_test(test_conf_aliases_resolve_to_maps_seqs_and_scalars),
        cmocka_unit_test(test_conf_bad_aliases_are_errors),
        cmocka_unit_test(test_conf_alias_bomb_is_refused_without_hanging),
        cmocka_unit_test(test_conf_alias_text_bomb_is_refused_by_its_bytes),
        cmocka_unit_test(test_conf_to_obj_types_plain_scalars_by_core_schema),
        cmocka_unit_test(test_conf_to_obj_quoted_and_block_scalars_stay_strings),
        cmocka_unit_test(test_conf_to_obj_builds_maps_and_arrays_that_outlive_the_tree),
        cmocka_unit_test(test_conf_as_int_accepts_range_and_names_what_it_expected),
        cmocka_unit_test(test_conf_as_str_double_bool_report_errors_at_the_node),
        cmocka_unit_test(test_conf_as_str_refuses_a_nul_character),
        cmocka_unit_test(test_conf_fail_keeps_an_error_on_one_line),
        cmocka_unit_test(test_conf_error_text_is_shortened_and_sanitised),
        cmocka_unit_test(test_conf_durations_parse_units_and_reject_garbage),
        cmocka_unit_test(test_conf_as_duration_reports_garbage_negative_and_overflow),
        cmocka_unit_test(test_conf_check_keys_names_unknown_key_and_expected_list),
        cmocka_unit_test(test_conf_fail_formats_file_line_column),
        cmocka_unit_test(test_conf_load_missing_file_is_enoent_with_the_path),
        cmocka_unit_test(test_conf_load_daemon_uses_the_default_only_when_it_exists),
        cmocka_unit_test(test_conf_load_reads_files_and_names_them_in_positions),
        cmocka_unit_test(test_conf_get_str_and_module_dirs_fill_a_config),
    };
    return cmocka_run_group_tests(tests, s_tmpdir_setup, s_tmpdir_teardown);
}
