/*  test_module.c — the module loader, through real .so files.

    Every test builds a module tree in a fresh mkdtemp directory: the test
    modules (the .c files in tests/modules/, built into
    NERVE_TEST_MODULE_DIR) are copied to <tmp>/<role>/<name>.so with safe
    modes, installed as install(1) does (temporary name, then rename), and
    the bad cases are made by chmod, symlink or a file that is no shared
    object at all.
*/
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nerve/error.h>
#include <nerve/module.h>

typedef struct tree {
    char root[64];
    char err[2048];
} tree_t;

/* ------------------------------------------------------------------------
   Helpers
   ------------------------------------------------------------------------ */
static int s_setup(void **state)
{
    tree_t *t = calloc(1, sizeof *t);
    assert_non_null(t);
    strcpy(t->root, "/tmp/nerve-test-module.XXXXXX");
    assert_non_null(mkdtemp(t->root));
    *state = t;
    return 0;
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int s_teardown(void **state)
{
    tree_t *t = *state;
    nftw(t->root, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(t);
    return 0;
}

static void s_path(char *buf, size_t size, const char *root, const char *sub)
{
    int n = snprintf(buf, size, "%s/%s", root, sub);
    assert_true(n > 0 && (size_t)n < size);
}

/*  mkdir -p for one level below root, with an exact mode. */
static void s_mkdir(const char *root, const char *sub, mode_t mode)
{
    char path[512];
    s_path(path, sizeof path, root, sub);
    if (mkdir(path, 0700) != 0)
        assert_int_equal(errno, EEXIST);
    assert_int_equal(chmod(path, mode), 0);
}

/*  Installs NERVE_TEST_MODULE_DIR/<src>.so as <root>/<role>/<dst>.so with
    `mode`, by writing a temporary file and renaming it over, like
    install(1). */
static void s_install(const char *root, const char *role, const char *src, const char *dst,
                      mode_t mode)
{
    char from[512], tmp[512], to[512], buf[8192];
    snprintf(from, sizeof from, "%s/%s.so", NERVE_TEST_MODULE_DIR, src);
    snprintf(tmp, sizeof tmp, "%s/%s/.%s.so.tmp", root, role, dst);
    snprintf(to, sizeof to, "%s/%s/%s.so", root, role, dst);
    s_mkdir(root, role, 0755);
    FILE *in = fopen(from, "rb");
    assert_non_null(in);
    FILE *out = fopen(tmp, "wb");
    assert_non_null(out);
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(chmod(tmp, mode), 0);
    assert_int_equal(rename(tmp, to), 0);
}

static nerve_modset_t *s_set1(const char *dir)
{
    const char *dirs[] = {dir};
    nerve_modset_t *set = nerve_modset_new(dirs, 1);
    assert_non_null(set);
    return set;
}

static int s_env_count(const char *var)
{
    const char *v = getenv(var);
    return v ? atoi(v) : 0;
}

/*  A params map {threshold: t}. */
typedef struct params {
    msgpack_object_kv kv;
    msgpack_object map;
} params_t;

static void s_params(params_t *p, uint64_t threshold)
{
    p->kv.key.type = MSGPACK_OBJECT_STR;
    p->kv.key.via.str.ptr = "threshold";
    p->kv.key.via.str.size = 9;
    p->kv.val.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    p->kv.val.via.u64 = threshold;
    p->map.type = MSGPACK_OBJECT_MAP;
    p->map.via.map.size = 1;
    p->map.via.map.ptr = &p->kv;
}

/*  Runs rules.good.gt (value > threshold) through prepare, call, release. */
static bool s_call_gt(const nerve_resolved_t *r, uint64_t threshold, uint64_t value)
{
    params_t p;
    s_params(&p, threshold);
    void *prepared = NULL;
    char err[256] = "";
    assert_non_null(r->fn->prepare);
    assert_int_equal(r->fn->prepare(&p.map, &prepared, err, sizeof err), NERVE_OK);
    msgpack_object v = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = value};
    nerve_rule_call_t call = {.params = &p.map, .prepared = prepared, .value = &v};
    bool result = false;
    assert_int_equal(r->fn->fn.rule(&call, &result), NERVE_OK);
    r->fn->release(prepared);
    return result;
}

/*  Installs `module` under rules/ and checks that resolving `dotted`
    fails with `code`, naming the name, the file and `why`. */
static void s_expect_refused(tree_t *t, const char *module, const char *dotted, int code,
                             const char *why)
{
    char path[512];
    snprintf(path, sizeof path, "%s/rules/%s.so", t->root, module);
    s_install(t->root, "rules", module, module, 0644);
    nerve_modset_t *set = s_set1(t->root);
    nerve_resolved_t r;
    assert_int_equal(nerve_modset_resolve(set, dotted, &r, t->err, sizeof t->err), code);
    assert_non_null(strstr(t->err, dotted));
    assert_non_null(strstr(t->err, path));
    if (!strstr(t->err, why))
        fail_msg("error '%s' does not say '%s'", t->err, why);
    nerve_modset_destroy(&set);
    assert_null(set);
}

/* ------------------------------------------------------------------------
   Roles
   ------------------------------------------------------------------------ */
static void test_role_name_and_parse_round_trip(void **state)
{
    for (int r = NERVE_ROLE_BEACONS; r <= NERVE_ROLE_REACTIONS; r++) {
        const char *name = nerve_role_name((nerve_role_t)r);
        nerve_role_t back = 0;
        assert_non_null(name);
        assert_int_equal(nerve_role_parse(name, strlen(name), &back), NERVE_OK);
        assert_int_equal(back, r);
    }
    assert_string_equal(nerve_role_name(NERVE_ROLE_REGISTERS), "registers");
    assert_null(nerve_role_name((nerve_role_t)0));
    assert_null(nerve_role_name((nerve_role_t)5));
}

static void test_role_parse_accepts_register_and_rejects_others(void **state)
{
    nerve_role_t role = 0;
    assert_int_equal(nerve_role_parse("register", 8, &role), NERVE_OK);
    assert_int_equal(role, NERVE_ROLE_REGISTERS);
    /* Only the first `len` bytes count: "rules.simple.gt" starts with a role. */
    assert_int_equal(nerve_role_parse("rules.simple.gt", 5, &role), NERVE_OK);
    assert_int_equal(role, NERVE_ROLE_RULES);
    assert_int_equal(nerve_role_parse("rule", 4, &role), NERVE_ENOENT);
    assert_int_equal(nerve_role_parse("rulesx", 6, &role), NERVE_ENOENT);
    assert_int_equal(nerve_role_parse("", 0, &role), NERVE_ENOENT);
    assert_int_equal(nerve_role_parse(NULL, 0, &role), NERVE_ENOENT);
}

/* ------------------------------------------------------------------------
   Resolving
   ------------------------------------------------------------------------ */
static void test_resolve_loads_module_and_calls_its_function(void **state)
{
    tree_t *t = *state;
    char path[512];
    s_install(t->root, "rules", "good", "good", 0644);
    snprintf(path, sizeof path, "%s/rules/good.so", t->root);
    nerve_modset_t *set = s_set1(t->root);
    nerve_resolved_t r;
    assert_int_equal(nerve_modset_resolve(set, "rules.good.gt", &r, t->err, sizeof t->err),
                     NERVE_OK);
    assert_int_equal(r.role, NERVE_ROLE_RULES);
    assert_string_equal(r.module->name, "good");
    assert_string_equal(r.module->version, "1.0.0");
    assert_string_equal(r.fn->name, "gt");
    assert_string_equal(r.fn->doc, "value > threshold");
    assert_string_equal(r.path, path);
    assert_true(s_call_gt(&r, 3, 5));
    assert_false(s_call_gt(&r, 3, 2));

    /* prepare() refusals reach the caller with the module's reason. */
    void *prepared = NULL;
    char err[128] = "";
    assert_int_equal(r.fn->prepare(NULL, &prepared, err, sizeof err), NERVE_EINVAL);
    assert_string_equal(err, "threshold: a number is required");

    nerve_resolved_t never;
    assert_int_equal(nerve_modset_resolve(set, "rules.good.never", &never, t->err, sizeof t->err),
                     NERVE_OK);
    assert_ptr_equal(never.module, r.module);
    bool result = true;
    nerve_rule_call_t call = {0};
    assert_int_equal(never.fn->fn.rule(&call, &result), NERVE_OK);
    assert_false(result);
    nerve_modset_destroy(&set);
}

static void test_resolve_refuses_bad_magic(void **state)
{
    s_expect_refused(*state, "badmagic", "rules.badmagic.yes", NERVE_EABI, "bad magic 0xdeadbeef");
}

static void test_resolve_refuses_other_abi_major(void **state)
{
    s_expect_refused(*state, "badabi", "rules.badabi.yes", NERVE_EABI, "module ABI 2.0");
}

static void test_resolve_refuses_newer_abi_minor(void **state)
{
    s_expect_refused(*state, "newminor", "rules.newminor.yes", NERVE_EABI,
                     "newer than this loader's");
}

static void test_resolve_refuses_descriptor_smaller_than_the_loaders(void **state)
{
    s_expect_refused(*state, "smalldesc", "rules.smalldesc.yes", NERVE_EABI,
                     "descriptor is 8 bytes");
}

static void test_resolve_refuses_descriptor_name_that_disagrees_with_file(void **state)
{
    s_expect_refused(*state, "badname", "rules.badname.yes", NERVE_EINVAL,
                     "descriptor says name 'other' but the file is badname.so");
}

static void test_resolve_refuses_descriptor_role_that_disagrees_with_directory(void **state)
{
    s_expect_refused(*state, "badrole", "rules.badrole.yes", NERVE_EINVAL,
                     "descriptor says role 'reactions' but the file is in rules/");
}

static void test_resolve_refuses_empty_function_table(void **state)
{
    s_expect_refused(*state, "emptytable", "rules.emptytable.yes", NERVE_EINVAL,
                     "empty function table");
}

static void test_resolve_refuses_duplicate_function_name(void **state)
{
    s_expect_refused(*state, "dupfn", "rules.dupfn.yes", NERVE_EINVAL, "duplicate function 'yes'");
}

static void test_resolve_refuses_module_whose_init_fails(void **state)
{
    s_expect_refused(*state, "initfail", "rules.initfail.yes", NERVE_EMODULE,
                     "init() failed with -1");
}

static void test_resolve_refuses_shared_object_without_entry_point(void **state)
{
    s_expect_refused(*state, "nosym", "rules.nosym.yes", NERVE_EABI, "no nerve_module() symbol");
}

static void test_resolve_refuses_file_that_is_not_a_shared_object(void **state)
{
    tree_t *t = *state;
    char path[512];
    s_mkdir(t->root, "rules", 0755);
    snprintf(path, sizeof path, "%s/rules/junk.so", t->root);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\necho not a module\n", f);
    fclose(f);
    assert_int_equal(chmod(path, 0644), 0);
    nerve_modset_t *set = s_set1(t->root);
    nerve_resolved_t r;
    assert_int_equal(nerve_modset_resolve(set, "rules.junk.x", &r, t->err, sizeof t->err),
                     NERVE_EINVAL);
    assert_non_null(strstr(t->err, path));
    assert_non_null(strstr(t->err, "cannot load"));
    /* The operator sees the file's name, not the loader's /proc detour. */
    assert_null(strstr(t->err, "/proc/self/fd"));
    nerve_modset_destroy(&set);
}

static void test_resolve_missing_function_names_module_and_lists_its_functions(void **state)
{
    tree_t *t = *state;
    s_install(t->root, "rules", "good", "good", 0644);
    nerve_modset_t *set = s_set1(t->root);
    nerve_resolved_t r;
    assert_int_equal(nerve_modset_resolve(set, "rules.good.lt", &r, t->err, sizeof t->err),
                     NERVE_ENOENT);
    assert_non_null(strstr(t->err, "rules.good.lt"));
    assert_non_null(strstr(t->err, "has no function 'lt'"));
    assert_non_null(strstr(t->err, "it has: gt, never"));
    nerve_modset_destroy(&set);
}

/* ------------------------------------------------------------------------
   Permissions
   ------------------------------------------------------------------------ */
static void test_resolve_refuses_group_writable_file(void **state)
{
    tree_t *t = *state;
    char path[512];
    s_install(t->root, "rules", "good", "good", 0664);
    snprintf(path, sizeof path, "%s/rules/good.so", t->root);
    nerve_modset_t *set = s_set1(t->root);
    nerve_resolved_t r;
    assert_int_equal(nerve_modset_resolve(set, "rules.good.gt", &r, t->err, sizeof t->err),
                     NERVE_EPERM);
    assert_non_null(strstr(t->err, path));
    assert_non_null(strstr(t->err, "writable by group (mode 0664)"));
    nerve_modset_destroy(&set);
}

static void test_resolve_refuses_world_writable_role_directory(void **state)
{
    tree_t *t = *state;
    char path[512], dir[512];
    s_install(t->root, "rules", "good", "good", 0644);
    s_mkdir(t->root, "rules", 0777);
    snprintf(path, sizeof path, "%s/rules/good.so", t->root);
    snprintf(dir, sizeof dir, "directory %s/rules is writable by group and others", t->root);
    nerve_modset_t *set = s_set1(t->root);
    nerve_resolved_t r;
    assert_int_equal(nerve_modset_resolve(set, "rules.good.gt", &r, t->err, sizeof t->err),
                     NERVE_EPERM);
    assert_non_null(strstr(t->err, path));
    assert_non_null(strstr(t->err, dir));
    nerve_modset_destroy(&set);

    /* Sticky /tmp-style dirs are no exception: others may add files. */
    s_mkdir(t->root, "rules", 01757);
    set = s_set1(t->root);
    assert_int_equal(nerve_modset_resolve(set, "rules.good.gt", &r, t->err, sizeof t->err),
                     NERVE_EPERM);
    assert_non_null(strstr(t->err, "writable by others"));
    nerve_modset_destroy(&set);
}

static void test_resolve_refuses_group_writable_search_directory(void **state)
{
    tree_t *t = *state;
    s_install(t->root, "rules", "good", "good", 0644);
    assert_int_equal(chmod(t->root, 0770), 0);
    nerve_modset_t *set = s_set1(t->root);
    nerve_resolved_t r;
    assert_int_equal(nerve_modset_resolve(set, "rules.good.gt", &r, t->err, sizeof t->err),
                     NERVE_EPERM);
    assert_non_null(strstr(t->err, "writable by group"));
    nerve_modset_destroy(&set);
}

static void test_resolve_refuses_symlinked_file(void **state)
{
    tree_t *t = *state;
    char path[512], target[512];
    s_install(t->root, "rules", "good", "real", 0644);
    snprintf(target, sizeof target, "%s/rules/real.so", t->root);
    snprintf(path, sizeof path, "%s/rules/good.so", t->root);
    assert_int_equal(symlink(target, path), 0);
    nerve_modset_t *set = s_set1(t->root);
    nerve_resolved_t r;
    assert_int_equal(nerve_modset_resolve(set, "rules.good.gt", &r, t->err, sizeof t->err),
                     NERVE_EPERM);
    assert_non_null(strstr(t->err, path));
    assert_non_null(strstr(t->err, "symbolic link"));
    nerve_modset_destroy(&set);
}

static void test_resolve_accepts_symlinked_role_directory(void **state)
{
    tree_t *t = *state;
    char link[512], target[512];
    s_mkdir(t->root, "a", 0755);
    s_mkdir(t->root, "b", 0755);
    snprintf(target, sizeof target, "%s/b", t->root);
    s_install(target, "rules", "good", "good", 0644);
    snprintf(target, sizeof target, "%s/b/rules", t->root);
    snprintf(link, sizeof link, "%s/a/rules", t->root);
    assert_int_equal(symlink(target, link), 0);
    snprintf(link, sizeof link, "%s/a", t->root);
    nerve_modset_t *set = s_set1(link);
    nerve_resolved_t r;
    assert_int_equal(nerve_modset_resolve(set, "rules.good.gt", &r, t->err, sizeof t->err),
                     NERVE_OK);
    nerve_modset_destroy(&set);
}

/* ------------------------------------------------------------------------
   The search path
   ------------------------------------------------------------------------ */
static void test_resolve_missing_module_lists_every_searched_directory(void **state)
{
    tree_t *t = *state;
    char a[512], b[512];
    s_path(a, sizeof a, t->root, "a");
    s_path(b, sizeof b, t->root, "b-does-not-exist");
    s_mkdir(t->root, "a", 0755);
    const char *dirs[] = {a, b};
    nerve_modset_t *set = nerve_modset_new(dirs, 2);
    assert_non_null(set);
    nerve_resolved_t r;
    assert_int_equal(nerve_modset_resolve(set, "rules.nope.gt", &r, t->err, sizeof t->err),
                     NERVE_ENOENT);
    assert_non_null(strstr(t->err, "rules.nope.gt"));
    assert_non_null(strstr(t->err, "rules/nope.so"));
    assert_non_null(strstr(t->err, a));
    assert_non_null(strstr(t->err, b));
    nerve_modset_destroy(&set);
}

static void test_resolve_first_directory_on_the_path_wins(void **state)
{
    tree_t *t = *state;
    char a[512], b[512], path[600];
    s_path(a, sizeof a, t->root, "a");
    s_path(b, sizeof b, t->root, "b");
    s_mkdir(t->root, "a", 0755);
    s_mkdir(t->root, "b", 0755);
    s_install(a, "rules", "good", "good", 0644);
    s_install(b, "rules", "good_v2", "good", 0644);

    const char *ab[] = {a, b}, *ba[] = {b, a};
    nerve_modset_t *set = nerve_modset_new(ab, 2);
    nerve_resolved_t r;
    assert_int_equal(nerve_modset_resolve(set, "rules.good.gt", &r, t->err, sizeof t->err),
                     NERVE_OK);
    assert_string_equal(r.module->version, "1.0.0");
    snprintf(path, sizeof path, "%s/rules/good.so", a);
    assert_string_equal(r.path, path);
    nerve_modset_destroy(&set);

    set = nerve_modset_new(ba, 2);
    assert_int_equal(nerve_modset_resolve(set, "rules.good.gt", &r, t->err, sizeof t->err),
                     NERVE_OK);
    assert_string_equal(r.module->version, "2.0.0");
    nerve_modset_destroy(&set);
}

static void test_resolve_first_directory_decides_even_by_refusing(void **state)
{
    tree_t *t = *state;
    char a[512], b[512];
    s_path(a, sizeof a, t->root, "a");
    s_path(b, sizeof b, t->root, "b");
    s_mkdir(t->root, "a", 0755);
    s_mkdir(t->root, "b", 0755);
    s_install(a, "rules", "good", "good", 0666);
    s_install(b, "rules", "good", "good", 0644);
    const char *dirs[] = {a, b};
    nerve_modset_t *set = nerve_modset_new(dirs, 2);
    nerve_resolved_t r;
    assert_int_equal(nerve_modset_resolve(set, "rules.good.gt", &r, t->err, sizeof t->err),
                     NERVE_EPERM);
    assert_non_null(strstr(t->err, a));
    nerve_modset_destroy(&set);
}

static void test_resolve_register_prefix_finds_registers_directory(void **state)
{
    tree_t *t = *state;
    s_install(t->root, "registers", "counter", "counter", 0644);
    nerve_modset_t *set = s_set1(t->root);
    nerve_resolved_t r1, r2;
    assert_int_equal(
        nerve_modset_resolve(set, "register.counter.count", &r1, t->err, sizeof t->err), NERVE_OK);
    assert_int_equal(r1.role, NERVE_ROLE_REGISTERS);
    assert_non_null(strstr(r1.path, "/registers/counter.so"));
    assert_int_equal(
        nerve_modset_resolve(set, "registers.counter.count", &r2, t->err, sizeof t->err), NERVE_OK);
    assert_ptr_equal(r1.fn, r2.fn);

    uint8_t state_buf[16];
    nerve_register_call_t call = {
        .new_state = state_buf, .new_state_cap = sizeof state_buf, .new_state_len = SIZE_MAX};
    assert_int_equal(r1.fn->fn.reg(&call), NERVE_OK);
    assert_int_equal(call.out.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(call.out.via.u64, 1);
    nerve_modset_destroy(&set);
}

static void test_resolve_rejects_malformed_dotted_names(void **state)
{
    tree_t *t = *state;
    static const char *const bad[] = {
        "",
        "rules",
        "rules.good",
        "rules.good.gt.x",
        "rules..gt",
        "rules.good.",
        ".good.gt",
        "rule.good.gt",
        "rules.../x.gt",
        "rules.a/b.gt",
        "rules.good.g t",
    };
    nerve_modset_t *set = s_set1(t->root);
    nerve_resolved_t r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = nerve_modset_resolve(set, bad[i], &r, t->err, sizeof t->err);
        if (rc != NERVE_EINVAL)
            fail_msg("'%s' gave %d (%s)", bad[i], rc, t->err);
    }
    char longname[400];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    memcpy(longname, "rules.x.", 8);
    assert_int_equal(nerve_modset_resolve(set, longname, &r, t->err, sizeof t->err), NERVE_EINVAL);
    assert_int_equal(nerve_modset_resolve(set, NULL, &r, t->err, sizeof t->err), NERVE_EINVAL);
    assert_int_equal(nerve_modset_resolve(NULL, "rules.good.gt", &r, NULL, 0), NERVE_EINVAL);
    nerve_modset_destroy(&set);
}

static void test_resolve_role_refuses_function_of_another_role(void **state)
{
    tree_t *t = *state;
    s_install(t->root, "rules", "good", "good", 0644);
    nerve_modset_t *set = s_set1(t->root);
    nerve_resolved_t r;
    assert_int_equal(nerve_modset_resolve_role(set, NERVE_ROLE_REACTIONS, "rules.good.gt", &r,
                                               t->err, sizeof t->err),
                     NERVE_EINVAL);
    assert_non_null(strstr(t->err, "is not a reactions function"));
    assert_int_equal(nerve_modset_resolve_role(set, NERVE_ROLE_RULES, "rules.good.gt", &r, t->err,
                                               sizeof t->err),
                     NERVE_OK);
    nerve_modset_destroy(&set);
}

static void test_refused_module_stays_refused_without_reloading(void **state)
{
    tree_t *t = *state;
    char first[2048], path[512];
    s_install(t->root, "rules", "badmagic", "badmagic", 0644);
    nerve_modset_t *set = s_set1(t->root);
    nerve_resolved_t r;
    assert_int_equal(nerve_modset_resolve(set, "rules.badmagic.yes", &r, first, sizeof first),
                     NERVE_EABI);

    /* With the file gone, a reload would say "no module": the set must
       answer from what it remembers. */
    snprintf(path, sizeof path, "%s/rules/badmagic.so", t->root);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(nerve_modset_resolve(set, "rules.badmagic.yes", &r, t->err, sizeof t->err),
                     NERVE_EABI);
    assert_string_equal(t->err, first);
    assert_int_equal(nerve_modset_resolve(set, "rules.badmagic.other", &r, t->err, sizeof t->err),
                     NERVE_EABI);
    assert_non_null(strstr(t->err, "rules.badmagic.other"));
    assert_non_null(strstr(t->err, "bad magic"));
    nerve_modset_destroy(&set);

    /* A new set looks again. */
    set = s_set1(t->root);
    assert_int_equal(nerve_modset_resolve(set, "rules.badmagic.yes", &r, t->err, sizeof t->err),
                     NERVE_ENOENT);
    nerve_modset_destroy(&set);
}

/* ------------------------------------------------------------------------
   Sets side by side (reload)
   ------------------------------------------------------------------------ */
static void test_two_sets_share_a_module_and_outlive_each_other(void **state)
{
    tree_t *t = *state;
    s_install(t->root, "rules", "good", "good", 0644);
    int inits = s_env_count("NERVE_TESTMOD_GOOD_INIT");
    int finis = s_env_count("NERVE_TESTMOD_GOOD_FINI");

    nerve_modset_t *old = s_set1(t->root), *new = s_set1(t->root);
    nerve_resolved_t a, b;
    assert_int_equal(nerve_modset_resolve(old, "rules.good.gt", &a, t->err, sizeof t->err),
                     NERVE_OK);
    assert_int_equal(nerve_modset_resolve(new, "rules.good.gt", &b, t->err, sizeof t->err),
                     NERVE_OK);
    /* One file, one load, one init(). */
    assert_ptr_equal(a.fn->fn.rule, b.fn->fn.rule);
    assert_int_equal(s_env_count("NERVE_TESTMOD_GOOD_INIT"), inits + 1);

    /* The old set goes after a reload; the new one keeps running it. */
    nerve_modset_destroy(&old);
    assert_int_equal(s_env_count("NERVE_TESTMOD_GOOD_FINI"), finis);
    assert_true(s_call_gt(&b, 1, 2));

    nerve_modset_destroy(&new);
    assert_int_equal(s_env_count("NERVE_TESTMOD_GOOD_FINI"), finis + 1);
}

static void test_set_keeps_its_module_when_the_file_is_renamed_over(void **state)
{
    tree_t *t = *state;
    s_install(t->root, "rules", "good", "good", 0644);
    nerve_modset_t *old = s_set1(t->root);
    nerve_resolved_t a, b;
    assert_int_equal(nerve_modset_resolve(old, "rules.good.gt", &a, t->err, sizeof t->err),
                     NERVE_OK);

    s_install(t->root, "rules", "good_v2", "good", 0644);
    nerve_modset_t *new = s_set1(t->root);
    assert_int_equal(nerve_modset_resolve(new, "rules.good.gt", &b, t->err, sizeof t->err),
                     NERVE_OK);
    assert_string_equal(b.module->version, "2.0.0");
    assert_string_equal(a.module->version, "1.0.0");
    assert_ptr_not_equal(a.fn->fn.rule, b.fn->fn.rule);

    /* Both run side by side: v1 compares, v2 always says true. */
    assert_false(s_call_gt(&a, 5, 1));
    bool result = false;
    nerve_rule_call_t call = {0};
    assert_int_equal(b.fn->fn.rule(&call, &result), NERVE_OK);
    assert_true(result);

    nerve_modset_destroy(&old);
    assert_int_equal(b.fn->fn.rule(&call, &result), NERVE_OK);
    nerve_modset_destroy(&new);
}

/*  Each module is dlopen()ed as /proc/self/fd/N; were N closed and reused,
    glibc would hand back the first module for the second file. */
static void test_modules_loaded_in_turn_stay_distinct(void **state)
{
    tree_t *t = *state;
    s_install(t->root, "rules", "good", "good", 0644);
    s_install(t->root, "registers", "counter", "counter", 0644);
    s_install(t->root, "rules", "badmagic", "badmagic", 0644);
    nerve_modset_t *set = s_set1(t->root);
    nerve_resolved_t r;
    for (int round = 0; round < 3; round++) {
        nerve_modset_t *other = s_set1(t->root);
        assert_int_equal(nerve_modset_resolve(other, "rules.good.gt", &r, t->err, sizeof t->err),
                         NERVE_OK);
        nerve_modset_destroy(&other);
    }
    assert_int_equal(nerve_modset_resolve(set, "rules.badmagic.yes", &r, t->err, sizeof t->err),
                     NERVE_EABI);
    assert_int_equal(nerve_modset_resolve(set, "rules.good.never", &r, t->err, sizeof t->err),
                     NERVE_OK);
    assert_string_equal(r.module->name, "good");
    assert_int_equal(
        nerve_modset_resolve(set, "registers.counter.count", &r, t->err, sizeof t->err), NERVE_OK);
    assert_string_equal(r.module->name, "counter");
    assert_int_equal(r.module->role, NERVE_ROLE_REGISTERS);
    nerve_modset_destroy(&set);
}

static int s_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/*  A loaded module holds one descriptor; a refused one holds none, and a
    destroyed set gives every one back. */
static void test_destroy_closes_every_descriptor(void **state)
{
    tree_t *t = *state;
    s_install(t->root, "rules", "good", "good", 0644);
    s_install(t->root, "rules", "badmagic", "badmagic", 0644);
    s_install(t->root, "rules", "initfail", "initfail", 0644);
    s_install(t->root, "registers", "counter", "counter", 0644);
    int before = s_open_fds();
    nerve_modset_t *a = s_set1(t->root), *b = s_set1(t->root);
    nerve_resolved_t r;
    assert_int_equal(nerve_modset_resolve(a, "rules.good.gt", &r, t->err, sizeof t->err), 0);
    assert_int_equal(nerve_modset_resolve(b, "rules.good.gt", &r, t->err, sizeof t->err), 0);
    assert_int_equal(nerve_modset_resolve(a, "rules.badmagic.yes", &r, t->err, sizeof t->err),
                     NERVE_EABI);
    assert_int_equal(nerve_modset_resolve(a, "rules.initfail.yes", &r, t->err, sizeof t->err),
                     NERVE_EMODULE);
    assert_int_equal(nerve_modset_resolve(b, "register.counter.count", &r, t->err, sizeof t->err),
                     0);
    assert_int_equal(s_open_fds(), before + 2);
    nerve_modset_destroy(&a);
    assert_int_equal(s_open_fds(), before + 2);
    nerve_modset_destroy(&b);
    assert_int_equal(s_open_fds(), before);
}

/*  A module dlclose() leaves mapped (-z nodelete, or C++ with unique
    symbols) keeps one descriptor for good, not one more per reload: a
    manager reloaded a thousand times must not run out of them. */
static void test_reloading_a_module_that_stays_mapped_keeps_one_descriptor(void **state)
{
    tree_t *t = *state;
    s_install(t->root, "rules", "nodelete", "nodelete", 0644);
    int before = s_open_fds();
    for (int i = 0; i < 50; i++) {
        nerve_modset_t *set = s_set1(t->root);
        nerve_resolved_t r;
        assert_int_equal(nerve_modset_resolve(set, "rules.nodelete.yes", &r, t->err, sizeof t->err),
                         0);
        bool result = false;
        assert_int_equal(r.fn->fn.rule(NULL, &result), 0);
        assert_true(result);
        nerve_modset_destroy(&set);
    }
    assert_int_equal(s_open_fds(), before + 1);
}

/* ------------------------------------------------------------------------
   load_file, load_all, load_role, foreach, path_string
   ------------------------------------------------------------------------ */
static void test_load_file_checks_the_files_place_in_the_tree(void **state)
{
    tree_t *t = *state;
    char path[512];
    const nerve_module_t *m = NULL, *again = NULL;
    s_install(t->root, "rules", "good", "good", 0644);
    s_install(t->root, "reactions", "good", "good", 0644);
    nerve_modset_t *set = s_set1(t->root);

    snprintf(path, sizeof path, "%s/rules/good.so", t->root);
    assert_int_equal(nerve_modset_load_file(set, path, &m, t->err, sizeof t->err), NERVE_OK);
    assert_string_equal(m->name, "good");
    assert_int_equal(nerve_modset_load_file(set, path, &again, t->err, sizeof t->err), NERVE_OK);
    assert_ptr_equal(m, again);

    /* The same file under reactions/ disagrees with its descriptor. */
    snprintf(path, sizeof path, "%s/reactions/good.so", t->root);
    assert_int_equal(nerve_modset_load_file(set, path, &m, t->err, sizeof t->err), NERVE_EINVAL);
    assert_non_null(strstr(t->err, path));
    assert_non_null(strstr(t->err, "role 'rules'"));

    snprintf(path, sizeof path, "%s/good.so", t->root);
    assert_int_equal(nerve_modset_load_file(set, path, &m, t->err, sizeof t->err), NERVE_EINVAL);
    assert_non_null(strstr(t->err, "not in a role directory"));
    snprintf(path, sizeof path, "%s/rules/missing.so", t->root);
    assert_int_equal(nerve_modset_load_file(set, path, &m, t->err, sizeof t->err), NERVE_ENOENT);
    assert_non_null(strstr(t->err, path));
    snprintf(path, sizeof path, "%s/rules/good.txt", t->root);
    assert_int_equal(nerve_modset_load_file(set, path, &m, t->err, sizeof t->err), NERVE_EINVAL);
    nerve_modset_destroy(&set);
}

typedef struct collected {
    int errors;
    char paths[4][512];
    int modules;
    char names[8][64];
} collected_t;

static void s_on_error(void *arg, const char *path, const char *reason)
{
    collected_t *c = arg;
    assert_non_null(reason);
    assert_true(c->errors < 4);
    snprintf(c->paths[c->errors++], sizeof c->paths[0], "%s", path);
}

static void s_on_module(void *arg, const nerve_module_t *m, const char *path)
{
    collected_t *c = arg;
    assert_true(c->modules < 8);
    assert_non_null(strstr(path, m->name));
    snprintf(c->names[c->modules++], sizeof c->names[0], "%s", m->name);
}

static void test_load_all_loads_each_module_once_and_reports_refusals(void **state)
{
    tree_t *t = *state;
    char a[512], b[512], path[600];
    s_path(a, sizeof a, t->root, "a");
    s_path(b, sizeof b, t->root, "b");
    s_mkdir(t->root, "a", 0755);
    s_mkdir(t->root, "b", 0755);
    s_install(a, "rules", "good", "good", 0644);
    s_install(a, "rules", "badmagic", "badmagic", 0644);
    s_install(a, "rules", "good", "bad.name", 0644);
    s_install(b, "rules", "good_v2", "good", 0644); /* shadowed by a/ */
    s_install(b, "registers", "counter", "counter", 0644);
    const char *dirs[] = {a, b};
    nerve_modset_t *set = nerve_modset_new(dirs, 2);

    collected_t c = {0};
    assert_int_equal(nerve_modset_load_all(set, s_on_error, &c), 2);
    assert_int_equal(c.errors, 2);
    snprintf(path, sizeof path, "%s/rules/bad.name.so", a);
    assert_string_equal(c.paths[0], path);
    snprintf(path, sizeof path, "%s/rules/badmagic.so", a);
    assert_string_equal(c.paths[1], path);

    nerve_modset_foreach(set, s_on_module, &c);
    assert_int_equal(c.modules, 2);
    assert_string_equal(c.names[0], "good");
    assert_string_equal(c.names[1], "counter");
    nerve_resolved_t r;
    assert_int_equal(nerve_modset_resolve(set, "rules.good.gt", &r, t->err, sizeof t->err),
                     NERVE_OK);
    assert_string_equal(r.module->version, "1.0.0");

    /* Again: the same count and the same refusals, nothing loaded twice. */
    memset(&c, 0, sizeof c);
    assert_int_equal(nerve_modset_load_all(set, NULL, NULL), 2);
    assert_int_equal(nerve_modset_load_all(set, s_on_error, &c), 2);
    assert_int_equal(c.errors, 2);
    nerve_modset_foreach(set, s_on_module, &c);
    assert_int_equal(c.modules, 2);
    nerve_modset_destroy(&set);
}

/*  What load_role reported, in order. */
typedef struct refusals {
    int n;
    char paths[4][512];
    int rcs[4];
    char reasons[4][512];
} refusals_t;

static void s_on_refused(void *arg, const char *path, int rc, const char *reason)
{
    refusals_t *c = arg;
    assert_non_null(path);
    assert_non_null(reason);
    assert_true(c->n < 4);
    snprintf(c->paths[c->n], sizeof c->paths[0], "%s", path);
    c->rcs[c->n] = rc;
    snprintf(c->reasons[c->n], sizeof c->reasons[0], "%s", reason);
    c->n++;
}

static void test_load_role_loads_its_modules_and_never_inits_another_roles(void **state)
{
    tree_t *t = *state;
    char path[512];
    s_install(t->root, "reactions", "slow", "slow", 0644);
    s_install(t->root, "reactions", "badrole", "badrole", 0644); /* a reactions module */
    s_install(t->root, "reactions", "badmagic", "badmagic", 0644);
    s_install(t->root, "rules", "good", "good", 0644);         /* init() counts in the env */
    s_install(t->root, "rules", "initfail", "initfail", 0644); /* loaded, it would be reported */
    s_install(t->root, "registers", "counter", "counter", 0644);
    int inits = s_env_count("NERVE_TESTMOD_GOOD_INIT");
    int finis = s_env_count("NERVE_TESTMOD_GOOD_FINI");
    nerve_modset_t *set = s_set1(t->root);

    refusals_t c = {0};
    assert_int_equal(nerve_modset_load_role(set, NERVE_ROLE_REACTIONS, s_on_refused, &c), 2);
    assert_int_equal(c.n, 1);
    snprintf(path, sizeof path, "%s/reactions/badmagic.so", t->root);
    assert_string_equal(c.paths[0], path);
    assert_int_equal(c.rcs[0], NERVE_EABI);
    assert_non_null(strstr(c.reasons[0], "bad magic 0xdeadbeef"));
    assert_null(strstr(c.reasons[0], path)); /* the path is given apart */

    /* Only the role's modules are in the set; rules/good.so never ran. */
    collected_t m = {0};
    nerve_modset_foreach(set, s_on_module, &m);
    assert_int_equal(m.modules, 2);
    assert_string_equal(m.names[0], "badrole");
    assert_string_equal(m.names[1], "slow");
    assert_int_equal(s_env_count("NERVE_TESTMOD_GOOD_INIT"), inits);

    nerve_resolved_t r;
    assert_int_equal(nerve_modset_resolve(set, "reactions.slow.sleep", &r, t->err, sizeof t->err),
                     NERVE_OK);
    assert_string_equal(r.module->name, "slow");

    /* The refusal is remembered: gone from the disk, it answers the same. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(nerve_modset_resolve(set, "reactions.badmagic.yes", &r, t->err, sizeof t->err),
                     NERVE_EABI);
    assert_non_null(strstr(t->err, path));
    assert_non_null(strstr(t->err, "bad magic"));

    /* The trace is live: loading the rules role does run good's init(). */
    memset(&c, 0, sizeof c);
    assert_int_equal(nerve_modset_load_role(set, NERVE_ROLE_RULES, s_on_refused, &c), 1);
    assert_int_equal(s_env_count("NERVE_TESTMOD_GOOD_INIT"), inits + 1);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.rcs[0], NERVE_EMODULE);
    assert_non_null(strstr(c.paths[0], "/rules/initfail.so"));
    assert_string_equal(c.reasons[0], "init() failed with -1");
    nerve_modset_destroy(&set);
    assert_int_equal(s_env_count("NERVE_TESTMOD_GOOD_FINI"), finis + 1);
}

static void test_load_role_first_directory_wins_and_reports_each_name_once(void **state)
{
    tree_t *t = *state;
    char a[512], b[512], path[600];
    s_path(a, sizeof a, t->root, "a");
    s_path(b, sizeof b, t->root, "b");
    s_mkdir(t->root, "a", 0755);
    s_mkdir(t->root, "b", 0755);
    s_install(a, "reactions", "slow", "slow", 0644);
    s_install(a, "reactions", "badrole", "badrole", 0664); /* group-writable: refused */
    s_install(b, "reactions", "badmagic", "slow", 0644);   /* shadowed by a/: never opened */
    s_install(b, "reactions", "badrole", "badrole", 0644); /* shadowed by a/'s refusal */
    const char *dirs[] = {a, b};
    nerve_modset_t *set = nerve_modset_new(dirs, 2);
    assert_non_null(set);

    for (int round = 0; round < 2; round++) {
        refusals_t c = {0};
        assert_int_equal(nerve_modset_load_role(set, NERVE_ROLE_REACTIONS, s_on_refused, &c), 1);
        assert_int_equal(c.n, 1);
        snprintf(path, sizeof path, "%s/reactions/badrole.so", a);
        assert_string_equal(c.paths[0], path);
        assert_int_equal(c.rcs[0], NERVE_EPERM);
        assert_non_null(strstr(c.reasons[0], "writable by group (mode 0664)"));
    }
    nerve_resolved_t r;
    assert_int_equal(nerve_modset_resolve(set, "reactions.slow.sleep", &r, t->err, sizeof t->err),
                     NERVE_OK);
    snprintf(path, sizeof path, "%s/reactions/slow.so", a);
    assert_string_equal(r.path, path);
    /* NULL on_error: counted all the same. */
    assert_int_equal(nerve_modset_load_role(set, NERVE_ROLE_REACTIONS, NULL, NULL), 1);
    nerve_modset_destroy(&set);
}

static void test_load_role_reports_bad_file_names_and_unlistable_directories(void **state)
{
    tree_t *t = *state;
    char a[512], b[512], path[600];
    s_path(a, sizeof a, t->root, "a");
    s_path(b, sizeof b, t->root, "b");
    s_mkdir(t->root, "a", 0755);
    s_mkdir(t->root, "b", 0755);
    s_install(a, "reactions", "slow", "slow.old", 0644); /* slow.old.so */
    /* A role directory that exists but cannot be listed (root lists
       anything it may read, but not a symbolic link loop). */
    snprintf(path, sizeof path, "%s/reactions", b);
    assert_int_equal(symlink("reactions", path), 0);
    const char *dirs[] = {a, b, "/nonexistent/nerve/modules"};
    nerve_modset_t *set = nerve_modset_new(dirs, 3);
    assert_non_null(set);

    refusals_t c = {0};
    assert_int_equal(nerve_modset_load_role(set, NERVE_ROLE_REACTIONS, s_on_refused, &c), 0);
    assert_int_equal(c.n, 2);
    snprintf(path, sizeof path, "%s/reactions/slow.old.so", a);
    assert_string_equal(c.paths[0], path);
    assert_int_equal(c.rcs[0], NERVE_EINVAL);
    assert_non_null(strstr(c.reasons[0], "not a module name"));
    snprintf(path, sizeof path, "%s/reactions", b);
    assert_string_equal(c.paths[1], path);
    assert_int_equal(c.rcs[1], NERVE_EIO);
    assert_non_null(strstr(c.reasons[1], "cannot list: "));
    assert_non_null(strstr(c.reasons[1], strerror(ELOOP)));

    collected_t m = {0};
    nerve_modset_foreach(set, s_on_module, &m);
    assert_int_equal(m.modules, 0);
    nerve_modset_destroy(&set);
}

static void test_load_role_refuses_unknown_role_and_null_set(void **state)
{
    tree_t *t = *state;
    refusals_t c = {0};
    nerve_modset_t *set = s_set1(t->root);
    assert_int_equal(nerve_modset_load_role(set, (nerve_role_t)0, s_on_refused, &c), NERVE_EINVAL);
    assert_int_equal(nerve_modset_load_role(set, (nerve_role_t)5, s_on_refused, &c), NERVE_EINVAL);
    assert_int_equal(nerve_modset_load_role(NULL, NERVE_ROLE_RULES, s_on_refused, &c),
                     NERVE_EINVAL);
    assert_int_equal(c.n, 0);
    /* An empty tree loads nothing and reports nothing. */
    assert_int_equal(nerve_modset_load_role(set, NERVE_ROLE_BEACONS, s_on_refused, &c), 0);
    assert_int_equal(c.n, 0);
    nerve_modset_destroy(&set);
}

static void test_path_string_joins_directories_in_order(void **state)
{
    const char *dirs[] = {"/etc/nerve/modules", "/usr/lib/nerve/modules"};
    nerve_modset_t *set = nerve_modset_new(dirs, 2);
    assert_string_equal(nerve_modset_path_string(set), "/etc/nerve/modules:/usr/lib/nerve/modules");
    nerve_modset_destroy(&set);
    set = nerve_modset_new(NULL, 0);
    assert_non_null(set);
    assert_string_equal(nerve_modset_path_string(set), "");
    nerve_resolved_t r;
    char err[256];
    assert_int_equal(nerve_modset_resolve(set, "rules.x.y", &r, err, sizeof err), NERVE_ENOENT);
    assert_non_null(strstr(err, "empty module path"));
    nerve_modset_destroy(&set);
}

static void test_new_refuses_empty_directory_and_destroy_is_safe_twice(void **state)
{
    const char *dirs[] = {"/a", ""};
    assert_null(nerve_modset_new(dirs, 2));
    const char *none[] = {NULL};
    assert_null(nerve_modset_new(none, 1));
    assert_null(nerve_modset_new(NULL, 3));
    nerve_modset_t *set = nerve_modset_new(dirs, 1);
    assert_non_null(set);
    nerve_modset_destroy(&set);
    assert_null(set);
    nerve_modset_destroy(&set);
    nerve_modset_destroy(NULL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, s_setup, s_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_role_name_and_parse_round_trip),
        T(test_role_parse_accepts_register_and_rejects_others),
        T(test_resolve_loads_module_and_calls_its_function),
        T(test_resolve_refuses_bad_magic),
        T(test_resolve_refuses_other_abi_major),
        T(test_resolve_refuses_newer_abi_minor),
        T(test_resolve_refuses_descriptor_smaller_than_the_loaders),
        T(test_resolve_refuses_descriptor_name_that_disagrees_with_file),
        T(test_resolve_refuses_descriptor_role_that_disagrees_with_directory),
        T(test_resolve_refuses_empty_function_table),
        T(test_resolve_refuses_duplicate_function_name),
        T(test_resolve_refuses_module_whose_init_fails),
        T(test_resolve_refuses_shared_object_without_entry_point),
        T(test_resolve_refuses_file_that_is_not_a_shared_object),
        T(test_resolve_missing_function_names_module_and_lists_its_functions),
        T(test_resolve_refuses_group_writable_file),
        T(test_resolve_refuses_world_writable_role_directory),
        T(test_resolve_refuses_group_writable_search_directory),
        T(test_resolve_refuses_symlinked_file),
        T(test_resolve_accepts_symlinked_role_directory),
        T(test_resolve_missing_module_lists_every_searched_directory),
        T(test_resolve_first_directory_on_the_path_wins),
        T(test_resolve_first_directory_decides_even_by_refusing),
        T(test_resolve_register_prefix_finds_registers_directory),
        T(test_resolve_rejects_malformed_dotted_names),
        T(test_resolve_role_refuses_function_of_another_role),
        T(test_refused_module_stays_refused_without_reloading),
        T(test_two_sets_share_a_module_and_outlive_each_other),
        T(test_set_keeps_its_module_when_the_file_is_renamed_over),
        T(test_modules_loaded_in_turn_stay_distinct),
        T(test_destroy_closes_every_descriptor),
        T(test_reloading_a_module_that_stays_mapped_keeps_one_descriptor),
        T(test_load_file_checks_the_files_place_in_the_tree),
        T(test_load_all_loads_each_module_once_and_reports_refusals),
        T(test_load_role_loads_its_modules_and_never_inits_another_roles),
        T(test_load_role_first_directory_wins_and_reports_each_name_once),
        T(test_load_role_reports_bad_file_names_and_unlistable_directories),
        T(test_load_role_refuses_unknown_role_and_null_set),
        T(test_path_string_joins_directories_in_order),
        T(test_new_refuses_empty_directory_and_destroy_is_safe_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
