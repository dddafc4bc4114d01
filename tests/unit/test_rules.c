/*  test_rules.c — the manager's rules loader (manager/rules.c).

    Rules files are loaded exactly as the manager loads them: through
    ruleset_load(), with the built-in modules of this build resolved by the
    real module loader (NERVE_MODULE_BUILD_DIR). Both of the seed's
    examples must load. Every way a rules file can be wrong must fail the
    whole load with one line naming file:line:column, and each test below
    asserts that line in full, so a message that loses its position or its
    meaning fails here.

    Broken files are written into a fresh mkdtemp directory per test, next
    to the message they must produce; well-formed multi-file sets live in
    tests/fixtures/rules/.
*/
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nerve/conf.h>
#include <nerve/error.h>
#include <nerve/template.h>
#include <nerve/value.h>

#include "rules.h"

#define FIXTURES NERVE_SOURCE_DIR "/tests/fixtures/rules"

typedef struct {
    char dir[64];   /* scratch directory, removed in teardown */
    char path[256]; /* the rules file last written */
    ruleset_t *rs;  /* destroyed in teardown */
    nerve_conf_error_t err;
} fixture_t;

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    strcpy(fx->dir, "/tmp/nerve-rules-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    ruleset_destroy(&fx->rs);
    nftw(fx->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/*  Writes `text` to <scratch>/<name> and remembers its path. */
static const char *s_write(fixture_t *fx, const char *name, const char *text)
{
    snprintf(fx->path, sizeof fx->path, "%s/%s", fx->dir, name);
    FILE *f = fopen(fx->path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return fx->path;
}

static int s_load_dirs(fixture_t *fx, const char *path, const char *const *dirs, size_t ndirs)
{
    ruleset_destroy(&fx->rs);
    return ruleset_load(path, dirs, ndirs, &fx->rs, &fx->err);
}

static int s_load(fixture_t *fx, const char *path)
{
    const char *dirs[] = {NERVE_MODULE_BUILD_DIR};
    return s_load_dirs(fx, path, dirs, 1);
}

/*  Loads `text` as rules.yaml and asserts success. */
static ruleset_t *s_load_ok(fixture_t *fx, const char *text)
{
    int rc = s_load(fx, s_write(fx, "rules.yaml", text));
    if (rc != 0)
        fail_msg("load failed (%s): %s", nerve_strerror(rc), fx->err.message);
    return fx->rs;
}

/*  Loads `text` as rules.yaml and asserts that the load fails with exactly
    "<path>:<line>:<col>: <what>" and leaves no ruleset behind. */
static void s_load_fails(fixture_t *fx, const char *text, size_t line, size_t col, const char *what)
{
    const char *path = s_write(fx, "rules.yaml", text);
    int rc = s_load(fx, path);
    if (rc == 0)
        fail_msg("load succeeded; expected '%s'", what);
    assert_null(fx->rs);
    char want[1024];
    snprintf(want, sizeof want, "%s:%zu:%zu: %s", path, line, col, what);
    assert_string_equal(fx->err.message, want);
    assert_string_equal(fx->err.file, path);
    assert_int_equal(fx->err.line, line);
    assert_int_equal(fx->err.column, col);
}

static const rule_def_t *s_rule(const ruleset_t *rs, const char *name)
{
    const rule_def_t *r = ruleset_find(rs, name);
    if (!r)
        fail_msg("no rule '%s'", name);
    return r;
}

/*  A value as JSON, for compact assertions on params and args. */
static void s_assert_json(const msgpack_object *o, const char *want)
{
    char buf[1024];
    size_t n = nerve_obj_to_json_buf(o, buf, sizeof buf);
    assert_true(n < sizeof buf);
    assert_string_equal(buf, want);
}

/*  Renders a compiled args tree with an event from host web1. */
static void s_assert_args(const nerve_tmpl_t *args, const char *want)
{
    msgpack_zone *zone = msgpack_zone_new(1024);
    assert_non_null(zone);
    nerve_tmpl_ctx_t ctx = {.tag = "/t", .host = "web1", .rule = "r"};
    msgpack_object out;
    assert_int_equal(nerve_tmpl_render(args, &ctx, zone, &out), 0);
    s_assert_json(&out, want);
    msgpack_zone_free(zone);
}

/* ------------------------------------------------------------ the seed */

static void test_rules_seed_chain_example_loads_with_its_chain_resolved(void **state)
{
    fixture_t *fx = *state;
    const char *path = NERVE_SOURCE_DIR "/examples/rules/seed_chain.yaml";
    int rc = s_load(fx, path);
    if (rc != 0)
        fail_msg("%s", fx->err.message);
    const ruleset_t *rs = fx->rs;
    assert_int_equal(rs->nblocks, 1);
    assert_string_equal(rs->blocks[0].glob, "/client/load/*");
    assert_int_equal(rs->blocks[0].line, 4);
    assert_int_equal(rs->blocks[0].column, 1);
    assert_int_equal(rs->blocks[0].nrules, 2);
    assert_int_equal(rs->nrules, 2);
    assert_int_equal(rs->nfiles, 1);
    assert_string_equal(rs->files[0], path);

    const rule_def_t *load = &rs->rules[0], *io = &rs->rules[1];
    assert_string_equal(load->name, "load_avg");
    assert_string_equal(io->name, "io_avg");
    assert_int_equal(load->line, 6);
    assert_int_equal(load->column, 7);
    assert_string_equal(load->rule_name, "rules.simple.gt");
    assert_string_equal(load->register_name, "register.aggregate.avg");
    assert_int_equal(load->rule.role, NERVE_ROLE_RULES);
    assert_string_equal(load->rule.fn->name, "gt");
    assert_int_equal(load->reg.role, NERVE_ROLE_REGISTERS);
    assert_string_equal(load->reg.fn->name, "avg");
    s_assert_json(&load->params, "{\"threshold\":20,\"period\":10}");
    assert_string_equal(load->scope, "seed_chain/load_avg");

    assert_int_equal(load->nchain, 1);
    assert_int_equal(load->chain[0].op, CHAIN_OR);
    assert_int_equal(load->chain[0].rule, io->index);
    assert_int_equal(io->nchain, 0);

    assert_int_equal(load->nreactions, 1);
    const reaction_def_t *r = &load->reactions[0];
    assert_string_equal(r->fn, "reactions.eventer.fire_event");
    assert_true(r->local);
    assert_null(r->target);
    assert_int_equal(r->deadline_ms, 60000);
    assert_string_equal(r->resolved.fn->name, "fire_event");
    s_assert_args(r->args, "{\"tag\":\"/reconfig/lb\",\"data\":{\"some_reconfig_data\":"
                           "\"dummy_data\"}}");
}

/*  Runs cc (no shell) to build examples/modules/cloud.c as
    <dir>/reactions/cloud.so, as an operator would out of tree. */
static void s_build_cloud_module(const char *dir)
{
    char role[256], so[300];
    snprintf(role, sizeof role, "%s/reactions", dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(mkdir(role, 0755), 0);
    assert_int_equal(chmod(dir, 0755), 0); /* whatever the umask: not group-writable */
    assert_int_equal(chmod(role, 0755), 0);
    snprintf(so, sizeof so, "%s/cloud.so", role);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execlp("cc", "cc", "-shared", "-fPIC", "-o", so,
               NERVE_SOURCE_DIR "/examples/modules/cloud.c", "-I" NERVE_SOURCE_DIR "/include",
               (char *)NULL);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("cc could not build examples/modules/cloud.c (status %d)", status);
    assert_int_equal(chmod(so, 0755), 0);
}

static void test_rules_seed_single_example_loads_with_the_operators_cloud_module(void **state)
{
    fixture_t *fx = *state;
    const char *path = NERVE_SOURCE_DIR "/examples/rules/seed_single.yaml";
    char modules[128];
    snprintf(modules, sizeof modules, "%s/modules", fx->dir);

    /* Without the operator's module the load names what is missing. */
    const char *dirs[] = {NERVE_MODULE_BUILD_DIR, modules};
    assert_int_equal(s_load_dirs(fx, path, dirs, 2), NERVE_EINVAL);
    char want[1024];
    snprintf(want, sizeof want,
             "%s:18:13: reactions.cloud.scale_up: no module reactions/cloud.so in %s, %s", path,
             NERVE_MODULE_BUILD_DIR, modules);
    assert_string_equal(fx->err.message, want);

    s_build_cloud_module(modules);
    int rc = s_load_dirs(fx, path, dirs, 2);
    if (rc != 0)
        fail_msg("%s", fx->err.message);
    const rule_def_t *load = s_rule(fx->rs, "load_avg");
    assert_int_equal(fx->rs->nrules, 1);
    assert_int_equal(load->nchain, 0);
    assert_int_equal(load->nreactions, 2);
    assert_string_equal(load->reactions[0].fn, "reactions.eventer.fire_event");
    s_assert_args(load->reactions[0].args,
                  "{\"tag\":\"/reconfig/lb\",\"data\":{\"turn_down_the_hose\":"
                  "\"originating_host\"}}");
    const reaction_def_t *cloud = &load->reactions[1];
    assert_string_equal(cloud->fn, "reactions.cloud.scale_up");
    assert_true(cloud->local);
    assert_string_equal(cloud->resolved.module->name, "cloud");
    char so[256];
    snprintf(so, sizeof so, "%s/reactions/cloud.so", modules);
    assert_string_equal(cloud->resolved.path, so);
    s_assert_args(cloud->args, "{\"machine_id\":\"originating_host\"}");
}

/* ------------------------------------------------- file and block shape */

static void test_rules_file_that_is_not_a_map_fails_at_its_root(void **state)
{
    s_load_fails(*state, "- /a\n- /b\n", 1, 1,
                 "a rules file is a map of tag globs to {rules: [...]}");
}

static void test_rules_block_that_is_not_a_map_fails_at_its_value(void **state)
{
    s_load_fails(*state, "/a/b: 5\n", 1, 7, "tag block '/a/b' must be a map with 'rules:'");
}

static void test_rules_block_without_rules_fails_at_its_glob(void **state)
{
    s_load_fails(*state, "/a/b: {}\n", 1, 1, "tag block '/a/b' needs 'rules:' as a list");
}

static void test_rules_block_whose_rules_is_not_a_list_fails_at_the_value(void **state)
{
    s_load_fails(*state, "/a/b:\n  rules: 3\n", 2, 10, "tag block '/a/b' needs 'rules:' as a list");
}

static void test_rules_block_with_another_key_fails_naming_it(void **state)
{
    s_load_fails(*state,
                 "/a/b:\n"
                 "  rule:\n"
                 "    - r: {rule: rules.simple.exists}\n",
                 2, 3, "unknown key 'rule' (expected one of: rules)");
}

static void test_rules_invalid_tag_glob_fails_at_the_glob(void **state)
{
    fixture_t *fx = *state;
    s_load_fails(fx,
                 "client/load:\n"
                 "  rules: []\n",
                 1, 1,
                 "'client/load' is not a tag glob (starts with '/', '*' within a segment, "
                 "'**' across segments)");
    s_load_fails(fx,
                 "/ok:\n"
                 "  rules: []\n"
                 "/a/***:\n"
                 "  rules: []\n",
                 3, 1,
                 "'/a/***' is not a tag glob (starts with '/', '*' within a segment, "
                 "'**' across segments)");
}

/* ------------------------------------------------------------ rule shape */

static void test_rules_entry_with_two_keys_is_not_a_rule(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "      r2:\n"
                 "        rule: rules.simple.exists\n",
                 3, 7, "each entry under 'rules' is a one-key map: '- rule_name: {...}'");
}

static void test_rules_entry_that_is_a_bare_name_is_not_a_rule(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - just_a_name\n",
                 3, 7, "each entry under 'rules' is a one-key map: '- rule_name: {...}'");
}

static void test_rules_rule_body_that_is_not_a_map_fails_at_the_body(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1: rules.simple.exists\n",
                 3, 11, "rule 'r1' must be a map of settings");
}

static void test_rules_rule_without_rule_key_fails_at_its_name(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        threshold: 3\n",
                 3, 7, "rule 'r1' has no 'rule:' (e.g. rules.simple.gt)");
}

static void test_rules_rule_key_that_is_not_a_string_fails_at_it(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: [rules.simple.gt]\n",
                 4, 15, "rule must be a string");
}

static void test_rules_unknown_module_fails_listing_every_directory_searched(void **state)
{
    fixture_t *fx = *state;
    const char *path = s_write(fx, "rules.yaml",
                               "/a:\n"
                               "  rules:\n"
                               "    - r1:\n"
                               "        rule: rules.nosuch.gt\n");
    char empty[128];
    snprintf(empty, sizeof empty, "%s/empty", fx->dir);
    assert_int_equal(mkdir(empty, 0700), 0);
    const char *dirs[] = {empty, NERVE_MODULE_BUILD_DIR};
    assert_int_equal(s_load_dirs(fx, path, dirs, 2), NERVE_EINVAL);
    assert_null(fx->rs);
    char want[1024];
    snprintf(want, sizeof want, "%s:4:15: rules.nosuch.gt: no module rules/nosuch.so in %s, %s",
             path, empty, NERVE_MODULE_BUILD_DIR);
    assert_string_equal(fx->err.message, want);
}

static void test_rules_unknown_function_fails_listing_what_the_module_has(void **state)
{
    fixture_t *fx = *state;
    const char *path = s_write(fx, "rules.yaml",
                               "/a:\n"
                               "  rules:\n"
                               "    - r1:\n"
                               "        rule: rules.simple.nosuch\n");
    assert_int_equal(s_load(fx, path), NERVE_EINVAL);
    char prefix[512];
    snprintf(prefix, sizeof prefix,
             "%s:4:15: rules.simple.nosuch: module simple (" NERVE_MODULE_BUILD_DIR
             "/rules/simple.so) has no function 'nosuch'; it has: gt, ",
             path);
    assert_memory_equal(fx->err.message, prefix, strlen(prefix));
}

static void test_rules_register_module_named_as_rule_is_refused(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: registers.aggregate.avg\n",
                 4, 15, "'registers.aggregate.avg' is not a rules function");
}

static void test_rules_rule_module_named_as_register_is_refused(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "        register: rules.simple.gt\n",
                 5, 19, "'rules.simple.gt' is not a registers function");
}

static void test_rules_prepare_refusal_fails_with_the_modules_reason(void **state)
{
    fixture_t *fx = *state;
    s_load_fails(fx,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.gt\n",
                 4, 15, "rules.simple.gt: gt needs 'threshold' (a number)");
    /* The register's prepare sees the same params and can refuse too. */
    s_load_fails(fx,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.gt\n"
                 "        threshold: 1\n"
                 "        register: registers.aggregate.percentile\n",
                 6, 19,
                 "registers.aggregate.percentile: percentile needs 'p' (a number from 0 to 100)");
}

static void test_rules_duplicate_rule_name_in_a_file_fails_naming_the_first(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "/b:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n",
                 7, 7, "rule name 'r1' already used at line 3 (names are unique in a file)");
}

/* ---------------------------------------------------------------- chains */

static void test_rules_chain_ops_parse_all_four_and_resolve_names(void **state)
{
    fixture_t *fx = *state;
    const ruleset_t *rs = s_load_ok(fx, "/a:\n"
                                        "  rules:\n"
                                        "    - r:\n"
                                        "        rule: rules.simple.exists\n"
                                        "        chain:\n"
                                        "          - AND: x\n"
                                        "          - OR: y\n"
                                        "          - AND_NOT: x\n"
                                        "          - or_not: y\n"
                                        "    - x: {rule: rules.simple.exists}\n"
                                        "/b:\n"
                                        "  rules:\n"
                                        "    - y: {rule: rules.simple.exists}\n");
    const rule_def_t *r = s_rule(rs, "r");
    uint32_t x = s_rule(rs, "x")->index, y = s_rule(rs, "y")->index;
    assert_int_equal(r->nchain, 4);
    assert_int_equal(r->chain[0].op, CHAIN_AND);
    assert_int_equal(r->chain[0].rule, x);
    assert_int_equal(r->chain[1].op, CHAIN_OR);
    assert_int_equal(r->chain[1].rule, y);
    assert_int_equal(r->chain[2].op, CHAIN_AND_NOT);
    assert_int_equal(r->chain[3].op, CHAIN_OR_NOT);
    assert_int_equal(r->chain[3].rule, y);
    assert_string_equal(chain_op_name(CHAIN_AND_NOT), "AND_NOT");
    assert_string_equal(chain_op_name(CHAIN_OR_NOT), "OR_NOT");
}

static void test_rules_unknown_chain_op_fails_at_the_op(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "        chain:\n"
                 "          - XOR: r2\n"
                 "    - r2: {rule: rules.simple.exists}\n",
                 6, 13, "unknown chain operator 'XOR' (expected AND, OR, AND_NOT, OR_NOT)");
}

static void test_rules_chain_step_that_is_not_a_one_key_map_fails(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "        chain:\n"
                 "          - r2\n"
                 "    - r2: {rule: rules.simple.exists}\n",
                 6, 13, "a chain step is a one-key map: '- OR: name'");
}

static void test_rules_chain_to_unknown_rule_fails_at_the_name(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "        chain:\n"
                 "          - OR: nope\n",
                 6, 17, "chain refers to unknown rule 'nope'");
}

static void test_rules_chain_does_not_reach_rules_of_another_file(void **state)
{
    fixture_t *fx = *state;
    s_write(fx, "a.yaml",
            "/a:\n"
            "  rules:\n"
            "    - other: {rule: rules.simple.exists}\n");
    const char *b = s_write(fx, "b.yaml",
                            "/b:\n"
                            "  rules:\n"
                            "    - r1:\n"
                            "        rule: rules.simple.exists\n"
                            "        chain:\n"
                            "          - OR: other\n");
    char want[512];
    snprintf(want, sizeof want, "%s:6:17: chain refers to unknown rule 'other'", b);
    assert_int_equal(s_load(fx, fx->dir), NERVE_EINVAL);
    assert_string_equal(fx->err.message, want);
}

static void test_rules_chain_cycle_through_two_rules_fails(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - a:\n"
                 "        rule: rules.simple.exists\n"
                 "        chain:\n"
                 "          - OR: b\n"
                 "    - b:\n"
                 "        rule: rules.simple.exists\n"
                 "        chain:\n"
                 "          - AND: a\n",
                 7, 7, "chain cycle: rule 'b' leads back to 'a'");
}

static void test_rules_chain_to_itself_is_a_cycle(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - a:\n"
                 "        rule: rules.simple.exists\n"
                 "        chain:\n"
                 "          - OR: a\n",
                 3, 7, "chain cycle: rule 'a' leads back to 'a'");
}

static void test_rules_chain_diamond_is_not_a_cycle(void **state)
{
    fixture_t *fx = *state;
    const ruleset_t *rs = s_load_ok(fx, "/a:\n"
                                        "  rules:\n"
                                        "    - top:\n"
                                        "        rule: rules.simple.exists\n"
                                        "        chain: [{OR: left}, {OR: right}]\n"
                                        "    - left:\n"
                                        "        rule: rules.simple.exists\n"
                                        "        chain: [{AND: bottom}]\n"
                                        "    - right:\n"
                                        "        rule: rules.simple.exists\n"
                                        "        chain: [{AND: bottom}]\n"
                                        "    - bottom: {rule: rules.simple.exists}\n");
    assert_int_equal(rs->nrules, 4);
    assert_int_equal(s_rule(rs, "left")->chain[0].rule, s_rule(rs, "bottom")->index);
}

/* ------------------------------------------------------- for, cooldown, key */

static void test_rules_for_cooldown_key_field_and_scope_are_read(void **state)
{
    fixture_t *fx = *state;
    const ruleset_t *rs = s_load_ok(fx, "/a:\n"
                                        "  rules:\n"
                                        "    - r1:\n"
                                        "        rule: rules.simple.exists\n"
                                        "        for: 3\n"
                                        "        cooldown: 1m\n"
                                        "        key: '{{event.data.disk}}'\n"
                                        "        field: disk.used\n"
                                        "        scope: shared/disk\n"
                                        "    - r2: {rule: rules.simple.exists}\n");
    const rule_def_t *r1 = s_rule(rs, "r1"), *r2 = s_rule(rs, "r2");
    assert_int_equal(r1->for_n, 3);
    assert_int_equal(r1->cooldown_ms, 60000);
    assert_string_equal(r1->field, "disk.used");
    assert_string_equal(r1->scope, "shared/disk");
    assert_null(r1->register_name);

    char key[64];
    msgpack_zone *zone = msgpack_zone_new(256);
    msgpack_object data;
    assert_int_equal(nerve_obj_from_json(zone, "{\"disk\":\"sda\"}", 14, &data, NULL, 0), 0);
    nerve_tmpl_ctx_t ctx = {.host = "web1", .data = &data};
    assert_int_equal(nerve_tmpl_render_text(r1->key, &ctx, key, sizeof key), 0);
    assert_string_equal(key, "sda");
    /* Defaults: no for, no cooldown, keyed by host. */
    assert_int_equal(r2->for_n, 0);
    assert_int_equal(r2->cooldown_ms, 0);
    assert_null(r2->field);
    assert_int_equal(nerve_tmpl_render_text(r2->key, &ctx, key, sizeof key), 0);
    assert_string_equal(key, "web1");
    msgpack_zone_free(zone);
}

static void test_rules_for_below_one_fails_at_the_value(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "        for: 0\n",
                 5, 14, "expected an integer between 1 and 1000000, got '0'");
}

static void test_rules_for_that_is_not_a_number_fails_at_the_value(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "        for: often\n",
                 5, 14, "expected an integer between 1 and 1000000, got 'often'");
}

static void test_rules_bad_cooldown_fails_at_the_value(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "        cooldown: soon\n",
                 5, 19, "expected a duration (250ms, 30s, 5m, 2h, 1d or seconds), got 'soon'");
}

static void test_rules_bad_key_template_fails_at_the_key(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "        key: '{{event.host'\n",
                 5, 14, "unclosed '{{' at offset 0 in '{{event.host'");
}

/* ------------------------------------------------------------- reactions */

static void test_rules_reaction_target_and_deadline_are_the_managers(void **state)
{
    fixture_t *fx = *state;
    const ruleset_t *rs = s_load_ok(
        fx, "/a:\n"
            "  rules:\n"
            "    - r1:\n"
            "        rule: rules.simple.exists\n"
            "        reactions:\n"
            "          - reactions.cmd.run: {target: 'host:{{event.host}}', deadline: 5s,\n"
            "                                cmd: [systemctl, restart, nginx]}\n"
            "          - reactions.cmd.run: {target: all, cmd: [uptime]}\n"
            "          - reactions.eventer.fire_event: {tag: /out, deadline: 2s}\n");
    const rule_def_t *r = s_rule(rs, "r1");
    assert_int_equal(r->nreactions, 3);

    const reaction_def_t *host = &r->reactions[0];
    assert_false(host->local);
    assert_non_null(host->target);
    assert_int_equal(host->deadline_ms, 5000);
    assert_int_equal(host->line, 6);
    assert_int_equal(host->column, 13);
    s_assert_args(host->args, "{\"cmd\":[\"systemctl\",\"restart\",\"nginx\"]}");
    char target[64];
    nerve_tmpl_ctx_t ctx = {.host = "web7"};
    assert_int_equal(nerve_tmpl_render_text(host->target, &ctx, target, sizeof target), 0);
    assert_string_equal(target, "host:web7");

    assert_false(r->reactions[1].local);
    assert_int_equal(r->reactions[1].deadline_ms, 60000);

    const reaction_def_t *local = &r->reactions[2];
    assert_true(local->local);
    assert_null(local->target);
    assert_int_equal(local->deadline_ms, 2000);
    assert_string_equal(local->resolved.fn->name, "fire_event");
    s_assert_args(local->args, "{\"tag\":\"/out\"}");
}

static void test_rules_bad_target_fails_at_the_target(void **state)
{
    fixture_t *fx = *state;
    s_load_fails(fx,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "        reactions:\n"
                 "          - reactions.cmd.run: {target: 'hosts:web1', cmd: [uptime]}\n",
                 6, 41, "target 'hosts:web1' is not host:<h>, group:<g>, all or glob:<pattern>");
    s_load_fails(fx,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "        reactions:\n"
                 "          - reactions.cmd.run: {target: 'host:', cmd: [uptime]}\n",
                 6, 41, "target 'host:' is not host:<h>, group:<g>, all or glob:<pattern>");
    s_load_fails(fx,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "        reactions:\n"
                 "          - reactions.cmd.run: {target: [all], cmd: [uptime]}\n",
                 6, 41, "target must be a string");
}

static void test_rules_remote_reaction_must_name_a_reactions_function(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "        reactions:\n"
                 "          - rules.simple.gt: {target: all}\n",
                 6, 13, "'rules.simple.gt' is not a reactions.module.function name");
}

static void test_rules_bad_deadline_fails_at_the_value(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "        reactions:\n"
                 "          - reactions.cmd.run: {target: all, deadline: later}\n",
                 6, 56, "expected a duration (250ms, 30s, 5m, 2h, 1d or seconds), got 'later'");
}

static void test_rules_bad_template_in_args_fails_at_the_args(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "        reactions:\n"
                 "          - reactions.eventer.fire_event:\n"
                 "              tag: /out\n"
                 "              data: {who: '{{evnt.host}}'}\n",
                 7, 15,
                 "reactions.eventer.fire_event: unknown reference 'evnt.host' at offset 0 "
                 "(expected event.host, event.tag, event.id, event.data[.path], value[.path], "
                 "rule or secret.NAME) (at 'data.who')");
}

static void test_rules_reaction_args_that_are_not_a_map_fail(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "        reactions:\n"
                 "          - reactions.eventer.fire_event: /out\n",
                 6, 43, "args of reactions.eventer.fire_event must be a map");
}

static void test_rules_local_reaction_prepare_refusal_fails_at_its_name(void **state)
{
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "        reactions:\n"
                 "          - reactions.eventer.fire_event: {tag: no-slash}\n",
                 6, 13,
                 "reactions.eventer.fire_event: fire_event: 'tag' \"no-slash\" is not a valid "
                 "tag (tag_no_slash)");
    /* No args at all reach prepare() as an empty map. */
    s_load_fails(*state,
                 "/a:\n"
                 "  rules:\n"
                 "    - r1:\n"
                 "        rule: rules.simple.exists\n"
                 "        reactions:\n"
                 "          - reactions.log.write:\n",
                 6, 13, "reactions.log.write: write needs 'message' (a string)");
}

/* ---------------------------------------------------------------- params */

static void test_rules_params_exclude_structural_keys(void **state)
{
    fixture_t *fx = *state;
    const ruleset_t *rs = s_load_ok(fx, "/a:\n"
                                        "  rules:\n"
                                        "    - r1:\n"
                                        "        rule: rules.simple.gt\n"
                                        "        threshold: 20\n"
                                        "        register: registers.aggregate.avg\n"
                                        "        period: 30s\n"
                                        "        reactions: []\n"
                                        "        chain: [{OR: r2}]\n"
                                        "        for: 2\n"
                                        "        cooldown: 10s\n"
                                        "        key: '{{event.host}}'\n"
                                        "        field: load.1m\n"
                                        "        scope: s\n"
                                        "        note: 'free text'\n"
                                        "    - r2: {rule: rules.simple.exists}\n");
    s_assert_json(&s_rule(rs, "r1")->params,
                  "{\"threshold\":20,\"period\":\"30s\",\"note\":\"free text\"}");
    s_assert_json(&s_rule(rs, "r2")->params, "{}");
}

static void test_rules_scope_defaults_to_file_stem_and_rule_name(void **state)
{
    fixture_t *fx = *state;
    s_write(fx, "web-checks.yaml", "/a:\n  rules:\n    - load: {rule: rules.simple.exists}\n");
    s_write(fx, "db.yml", "/b:\n  rules:\n    - load: {rule: rules.simple.exists}\n");
    assert_int_equal(s_load(fx, fx->dir), 0);
    assert_int_equal(fx->rs->nrules, 2);
    assert_string_equal(fx->rs->rules[0].scope, "db/load");
    assert_string_equal(fx->rs->rules[1].scope, "web-checks/load");
}

/* ------------------------------------------------------ files and folders */

static void test_rules_directory_loads_yaml_files_in_name_order(void **state)
{
    fixture_t *fx = *state;
#define ORDERED FIXTURES "/ordered"
    const char *dir = ORDERED;
    int rc = s_load(fx, dir);
    if (rc != 0)
        fail_msg("%s", fx->err.message);
    const ruleset_t *rs = fx->rs;
    /* 10-first.yaml, 20-second.yaml, 30-third.yml; notes.txt and the
       dotfile (which is not even YAML) are not rules files. */
    assert_int_equal(rs->nfiles, 3);
    assert_string_equal(rs->files[0], ORDERED "/10-first.yaml");
    assert_string_equal(rs->files[1], ORDERED "/20-second.yaml");
    assert_string_equal(rs->files[2], ORDERED "/30-third.yml");
    assert_int_equal(rs->nrules, 5);
    const char *names[] = {"alpha", "shared", "entry", "shared", "omega"};
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(rs->rules[i].name, names[i]);
        assert_int_equal(rs->rules[i].index, i);
    }
    assert_int_equal(rs->nblocks, 3);
    assert_string_equal(rs->blocks[2].glob, "/third/**");
    /* The same name in two files is two rules, with two scopes. */
    assert_string_equal(rs->rules[1].scope, "10-first/shared");
    assert_string_equal(rs->rules[3].scope, "20-second/shared");
    assert_string_equal(rs->rules[3].file, ORDERED "/20-second.yaml");
    assert_string_equal(rs->rules[4].scope, "30-third/omega");
    /* A chain resolves within its own file: entry's 'shared' is the one
       beside it, not the first-loaded one. */
    assert_int_equal(rs->rules[2].nchain, 1);
    assert_int_equal(rs->rules[2].chain[0].rule, 3);
}

static void test_rules_find_returns_the_first_in_load_order(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(s_load(fx, FIXTURES "/ordered"), 0);
    const rule_def_t *r = ruleset_find(fx->rs, "shared");
    assert_non_null(r);
    assert_int_equal(r->index, 1);
    assert_null(ruleset_find(fx->rs, "nosuch"));
}

static void test_rules_empty_directory_is_an_empty_ruleset(void **state)
{
    fixture_t *fx = *state;
    char empty[128];
    snprintf(empty, sizeof empty, "%s/empty", fx->dir);
    assert_int_equal(mkdir(empty, 0700), 0);
    assert_int_equal(s_load(fx, empty), 0);
    assert_int_equal(fx->rs->nrules, 0);
    assert_int_equal(fx->rs->nblocks, 0);
}

static void test_rules_empty_file_is_an_empty_ruleset(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(s_load(fx, s_write(fx, "empty.yaml", "# nothing yet\n")), 0);
    assert_int_equal(fx->rs->nrules, 0);
}

static void test_rules_missing_path_fails_naming_it(void **state)
{
    fixture_t *fx = *state;
    char path[128], want[256];
    snprintf(path, sizeof path, "%s/nosuch.yaml", fx->dir);
    assert_int_equal(s_load(fx, path), NERVE_ENOENT);
    assert_null(fx->rs);
    snprintf(want, sizeof want, "%s: No such file or directory", path);
    assert_string_equal(fx->err.message, want);
}

static void test_rules_error_in_a_later_file_fails_the_whole_directory(void **state)
{
    fixture_t *fx = *state;
    s_write(fx, "a.yaml", "/a:\n  rules:\n    - ok: {rule: rules.simple.exists}\n");
    const char *b = s_write(fx, "b.yaml", "/b:\n  rules:\n    - bad: {rule: rules.simple.gt}\n");
    char want[512];
    snprintf(want, sizeof want, "%s:3:19: rules.simple.gt: gt needs 'threshold' (a number)", b);
    assert_int_equal(s_load(fx, fx->dir), NERVE_EINVAL);
    assert_null(fx->rs);
    assert_string_equal(fx->err.message, want);
}

/* -------------------------------------------------------------- lifetime */

static void test_rules_ref_keeps_the_ruleset_until_the_last_unref(void **state)
{
    fixture_t *fx = *state;
    ruleset_t *rs = s_load_ok(fx, "/a:\n  rules:\n    - r: {rule: rules.simple.exists}\n");
    fx->rs = NULL; /* the references below own it now */
    assert_int_equal(atomic_load(&rs->refs), 1);
    ruleset_t *worker = ruleset_ref(rs);
    assert_ptr_equal(worker, rs);
    assert_int_equal(atomic_load(&rs->refs), 2);

    ruleset_t *engine = rs;
    ruleset_unref(&engine); /* a reload swapped it out: the worker still runs */
    assert_null(engine);
    assert_int_equal(atomic_load(&worker->refs), 1);
    assert_string_equal(worker->rules[0].name, "r"); /* still readable (ASan checks) */
    ruleset_unref(&worker);
    assert_null(worker);

    ruleset_unref(&worker); /* safe on NULL */
    assert_null(ruleset_ref(NULL));
    ruleset_destroy(&worker);
}

#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)

/*  A rule's name is in logs, metrics, scopes and on the wire: empty, too
    long for the wire, or with a control character, it is refused where
    it is written (found by fuzz_rules: YAML gives `- &a: {...}` an empty
    key). */
static void test_rule_name_empty_too_long_or_with_control_character_is_refused(void **state)
{
    s_load_fails(*state, "/a:\n  rules:\n    - \"\": {rule: rules.simple.exists}\n", 3, 7,
                 "a rule needs a name: '- rule_name: {...}'");
    s_load_fails(*state, "/a:\n  rules:\n    - &x : {rule: rules.simple.exists}\n", 3, 7,
                 "a rule needs a name: '- rule_name: {...}'");
    char text[512];
    snprintf(text, sizeof text, "/a:\n  rules:\n    - %0256d: {rule: rules.simple.exists}\n", 0);
    s_load_fails(*state, text, 3, 7, "rule name of 256 bytes: at most 255");
    s_load_fails(*state, "/a:\n  rules:\n    - \"a\\nb\": {rule: rules.simple.exists}\n", 3, 7,
                 "rule name has a control character (byte 2)");
    s_load_fails(*state, "/a:\n  rules:\n    - \"ab\\0cd\": {rule: rules.simple.exists}\n", 3, 7,
                 "rule name has a control character (byte 3)");
    snprintf(text, sizeof text, "/a:\n  rules:\n    - %0255d: {rule: rules.simple.exists}\n", 0);
    fixture_t *fx = *state;
    assert_int_equal(s_load(fx, s_write(fx, "ok.yaml", text)), 0);
    assert_int_equal(strlen(fx->rs->rules[0].name), 255);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_rules_seed_chain_example_loads_with_its_chain_resolved),
        T(test_rules_seed_single_example_loads_with_the_operators_cloud_module),
        T(test_rules_file_that_is_not_a_map_fails_at_its_root),
        T(test_rules_block_that_is_not_a_map_fails_at_its_value),
        T(test_rules_block_without_rules_fails_at_its_glob),
        T(test_rules_block_whose_rules_is_not_a_list_fails_at_the_value),
        T(test_rules_block_with_another_key_fails_naming_it),
        T(test_rules_invalid_tag_glob_fails_at_the_glob),
        T(test_rules_entry_with_two_keys_is_not_a_rule),
        T(test_rules_entry_that_is_a_bare_name_is_not_a_rule),
        T(test_rules_rule_body_that_is_not_a_map_fails_at_the_body),
        T(test_rules_rule_without_rule_key_fails_at_its_name),
        T(test_rules_rule_key_that_is_not_a_string_fails_at_it),
        T(test_rules_unknown_module_fails_listing_every_directory_searched),
        T(test_rules_unknown_function_fails_listing_what_the_module_has),
        T(test_rules_register_module_named_as_rule_is_refused),
        T(test_rules_rule_module_named_as_register_is_refused),
        T(test_rules_prepare_refusal_fails_with_the_modules_reason),
        T(test_rules_duplicate_rule_name_in_a_file_fails_naming_the_first),
        T(test_rules_chain_ops_parse_all_four_and_resolve_names),
        T(test_rules_unknown_chain_op_fails_at_the_op),
        T(test_rules_chain_step_that_is_not_a_one_key_map_fails),
        T(test_rules_chain_to_unknown_rule_fails_at_the_name),
        T(test_rules_chain_does_not_reach_rules_of_another_file),
        T(test_rules_chain_cycle_through_two_rules_fails),
        T(test_rules_chain_to_itself_is_a_cycle),
        T(test_rules_chain_diamond_is_not_a_cycle),
        T(test_rules_for_cooldown_key_field_and_scope_are_read),
        T(test_rules_for_below_one_fails_at_the_value),
        T(test_rules_for_that_is_not_a_number_fails_at_the_value),
        T(test_rules_bad_cooldown_fails_at_the_value),
        T(test_rules_bad_key_template_fails_at_the_key),
        T(test_rules_reaction_target_and_deadline_are_the_managers),
        T(test_rules_bad_target_fails_at_the_target),
        T(test_rules_remote_reaction_must_name_a_reactions_function),
        T(test_rules_bad_deadline_fails_at_the_value),
        T(test_rules_bad_template_in_args_fails_at_the_args),
        T(test_rules_reaction_args_that_are_not_a_map_fail),
        T(test_rules_local_reaction_prepare_refusal_fails_at_its_name),
        T(test_rules_params_exclude_structural_keys),
        T(test_rules_scope_defaults_to_file_stem_and_rule_name),
        T(test_rules_directory_loads_yaml_files_in_name_order),
        T(test_rules_find_returns_the_first_in_load_order),
        T(test_rules_empty_directory_is_an_empty_ruleset),
        T(test_rules_empty_file_is_an_empty_ruleset),
        T(test_rules_missing_path_fails_naming_it),
        T(test_rules_error_in_a_later_file_fails_the_whole_directory),
        T(test_rules_ref_keeps_the_ruleset_until_the_last_unref),
        T(test_rule_name_empty_too_long_or_with_control_character_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
