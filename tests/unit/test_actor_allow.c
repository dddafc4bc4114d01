/*  test_actor_allow.c — the actor's allow: policy (actor/allow.c): exact
    commands and units, and paths whose real directory must lie under a
    listed prefix, symlinks resolved. */
#define _GNU_SOURCE /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nerve/error.h>

#include "../../actor/allow.h"

typedef struct {
    char root[PATH_MAX]; /* realpath of a scratch dir */
    actor_allow_t allow;
} fixture_t;

static char s_path[PATH_MAX * 2];

static const char *s_at(fixture_t *f, const char *rel)
{
    snprintf(s_path, sizeof s_path, "%s/%s", f->root, rel);
    return s_path;
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) == 0 ? 0 : -1;
}

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    char tmpl[] = "/tmp/nerve-allow-XXXXXX";
    if (!f || !mkdtemp(tmpl) || !realpath(tmpl, f->root))
        return -1;
    mkdir(s_at(f, "allowed"), 0755);
    mkdir(s_at(f, "allowed/sub"), 0755);
    mkdir(s_at(f, "allowedx"), 0755);
    mkdir(s_at(f, "outside"), 0755);
    char target[PATH_MAX * 2];
    snprintf(target, sizeof target, "%s/outside", f->root);
    if (symlink(target, s_at(f, "allowed/escape")) != 0)
        return -1;
    snprintf(target, sizeof target, "%s/allowed/sub", f->root);
    if (symlink(target, s_at(f, "outside/into")) != 0)
        return -1;
    snprintf(target, sizeof target, "%s/allowed", f->root);
    if (symlink(target, s_at(f, "alias")) != 0)
        return -1;
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    nftw(f->root, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    actor_allow_free(&f->allow);
    actor_allow_free(&f->allow); /* safe twice */
    free(f);
    return 0;
}

static int s_check(fixture_t *f, const char *kind, const char *what)
{
    char why[512];
    return actor_allow_check(&f->allow, kind, what, why, sizeof why);
}

static void test_allow_commands_match_exactly(void **state)
{
    fixture_t *f = *state;
    char why[256];
    assert_int_equal(actor_allow_add(&f->allow, "commands", "/bin/echo", why, sizeof why), 0);
    assert_int_equal(s_check(f, "commands", "/bin/echo"), 0);
    assert_int_equal(s_check(f, "commands", "/bin/echo "), NERVE_EPERM);
    assert_int_equal(s_check(f, "commands", "echo"), NERVE_EPERM);
    assert_int_equal(s_check(f, "commands", "/bin/../bin/echo"), NERVE_EPERM);
    assert_int_equal(s_check(f, "commands", "/bin//echo"), NERVE_EPERM);
    assert_int_equal(s_check(f, "commands", "/bin/echo2"), NERVE_EPERM);
    assert_int_equal(s_check(f, "commands", "/bin/sh"), NERVE_EPERM);
    assert_int_equal(actor_allow_check(&f->allow, "commands", "/bin/sh", why, sizeof why),
                     NERVE_EPERM);
    assert_non_null(strstr(why, "/bin/sh"));
    assert_non_null(strstr(why, "allow.commands"));
}

static void test_allow_commands_must_be_clean_absolute_paths(void **state)
{
    fixture_t *f = *state;
    char why[256];
    assert_int_equal(actor_allow_add(&f->allow, "commands", "echo", why, sizeof why), NERVE_EINVAL);
    assert_non_null(strstr(why, "absolute"));
    assert_int_equal(actor_allow_add(&f->allow, "commands", "/usr/../bin/sh", why, sizeof why),
                     NERVE_EINVAL);
    assert_int_equal(actor_allow_add(&f->allow, "commands", "/usr/bin/", why, sizeof why),
                     NERVE_EINVAL);
    assert_int_equal(actor_allow_add(&f->allow, "commands", "", why, sizeof why), NERVE_EINVAL);
    assert_int_equal(actor_allow_add(&f->allow, "commands", "/bin/x\ny", why, sizeof why),
                     NERVE_EINVAL);
    assert_int_equal(f->allow.ncommands, 0);
}

static void test_allow_empty_policy_refuses_everything(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(s_check(f, "commands", "/bin/true"), NERVE_EPERM);
    assert_int_equal(s_check(f, "services", "nginx.service"), NERVE_EPERM);
    assert_int_equal(s_check(f, "paths", s_at(f, "allowed/a")), NERVE_EPERM);
    assert_int_equal(s_check(f, "unknown", "x"), NERVE_EPERM);
    assert_int_equal(s_check(f, "commands", ""), NERVE_EPERM);
    assert_int_equal(actor_allow_check(&f->allow, "commands", NULL, NULL, 0), NERVE_EPERM);
}

static void test_allow_services_match_exact_unit_names(void **state)
{
    fixture_t *f = *state;
    char why[256];
    assert_int_equal(actor_allow_add(&f->allow, "services", "nginx.service", why, sizeof why), 0);
    assert_int_equal(actor_allow_add(&f->allow, "services", "app@1.service", why, sizeof why), 0);
    assert_int_equal(s_check(f, "services", "nginx.service"), 0);
    assert_int_equal(s_check(f, "services", "app@1.service"), 0);
    assert_int_equal(s_check(f, "services", "nginx"), NERVE_EPERM);
    assert_int_equal(s_check(f, "services", "app@2.service"), NERVE_EPERM);
    const char *bad[] = {"-x.service", "a/b.service",     "a b", "a;b", "$(x)",
                         ".hidden",    "nginx.service\n", "",    NULL};
    for (int i = 0; bad[i]; i++) {
        assert_false(actor_unit_name_ok(bad[i]));
        assert_int_equal(actor_allow_add(&f->allow, "services", bad[i], why, sizeof why),
                         NERVE_EINVAL);
        assert_int_equal(s_check(f, "services", bad[i]), NERVE_EPERM);
    }
    assert_true(actor_unit_name_ok("dev-disk-by\\x2dlabel.device"));
    assert_true(actor_unit_name_ok("getty@tty1.service"));
}

static void test_allow_paths_under_a_prefix(void **state)
{
    fixture_t *f = *state;
    char why[512];
    assert_int_equal(actor_allow_add(&f->allow, "paths", s_at(f, "allowed"), why, sizeof why), 0);
    assert_int_equal(s_check(f, "paths", s_at(f, "allowed/file")), 0);
    assert_int_equal(s_check(f, "paths", s_at(f, "allowed/sub/file")), 0);
    assert_int_equal(s_check(f, "paths", s_at(f, "allowed/not-yet")), 0); /* file need not exist */
    /* A sibling whose name starts the same is not under it. */
    assert_int_equal(s_check(f, "paths", s_at(f, "allowedx/file")), NERVE_EPERM);
    assert_int_equal(s_check(f, "paths", s_at(f, "outside/file")), NERVE_EPERM);
    /* The prefix itself is a directory, not a file to write. */
    assert_int_equal(s_check(f, "paths", s_at(f, "allowed/")), NERVE_EPERM);
    /* A missing directory cannot be resolved. */
    assert_int_equal(s_check(f, "paths", s_at(f, "allowed/nodir/file")), NERVE_EPERM);
}

static void test_allow_paths_refuse_dot_segments_and_relative(void **state)
{
    fixture_t *f = *state;
    char why[512];
    assert_int_equal(actor_allow_add(&f->allow, "paths", s_at(f, "allowed"), why, sizeof why), 0);
    assert_int_equal(s_check(f, "paths", s_at(f, "allowed/../outside/file")), NERVE_EPERM);
    assert_int_equal(s_check(f, "paths", s_at(f, "allowed/../allowed/file")), NERVE_EPERM);
    assert_int_equal(s_check(f, "paths", s_at(f, "allowed/./file")), NERVE_EPERM);
    assert_int_equal(s_check(f, "paths", s_at(f, "allowed/..")), NERVE_EPERM);
    assert_int_equal(s_check(f, "paths", "../../etc/passwd"), NERVE_EPERM);
    assert_int_equal(s_check(f, "paths", "etc/passwd"), NERVE_EPERM);
    assert_int_equal(
        actor_allow_check(&f->allow, "paths", s_at(f, "allowed/a\nb"), why, sizeof why),
        NERVE_EPERM);
    assert_int_equal(actor_allow_add(&f->allow, "paths", "relative/dir", why, sizeof why),
                     NERVE_EINVAL);
    assert_int_equal(actor_allow_add(&f->allow, "paths", "/a/../b", why, sizeof why), NERVE_EINVAL);
}

static void test_allow_paths_resolve_symlinked_directories(void **state)
{
    fixture_t *f = *state;
    char why[512];
    assert_int_equal(actor_allow_add(&f->allow, "paths", s_at(f, "allowed"), why, sizeof why), 0);
    /* allowed/escape → outside: the real directory is not under the prefix. */
    assert_int_equal(
        actor_allow_check(&f->allow, "paths", s_at(f, "allowed/escape/file"), why, sizeof why),
        NERVE_EPERM);
    assert_non_null(strstr(why, "really"));
    /* outside/into → allowed/sub: really under the prefix. */
    assert_int_equal(s_check(f, "paths", s_at(f, "outside/into/file")), 0);
    /* The file itself is not resolved: writers rename over it. */
    assert_int_equal(s_check(f, "paths", s_at(f, "allowed/escape")), 0);
}

static void test_allow_paths_prefix_written_through_a_symlink_is_canonical(void **state)
{
    fixture_t *f = *state;
    char why[512];
    /* alias → allowed: the stored prefix is the real directory. */
    assert_int_equal(actor_allow_add(&f->allow, "paths", s_at(f, "alias"), why, sizeof why), 0);
    assert_int_equal(f->allow.npaths, 1);
    assert_string_equal(f->allow.paths[0], s_at(f, "allowed"));
    assert_int_equal(s_check(f, "paths", s_at(f, "allowed/file")), 0);
    assert_int_equal(s_check(f, "paths", s_at(f, "alias/file")), 0);
    /* A prefix that does not exist yet is kept as written, minus trailing '/'. */
    assert_int_equal(actor_allow_add(&f->allow, "paths", s_at(f, "later///"), why, sizeof why), 0);
    assert_string_equal(f->allow.paths[1], s_at(f, "later"));
}

static void test_allow_root_prefix_allows_any_directory(void **state)
{
    fixture_t *f = *state;
    char why[256];
    assert_int_equal(actor_allow_add(&f->allow, "paths", "/", why, sizeof why), 0);
    assert_int_equal(s_check(f, "paths", s_at(f, "outside/file")), 0);
    assert_int_equal(s_check(f, "paths", "/file-at-root"), 0);
}

static void test_allow_unknown_kind_is_a_config_error(void **state)
{
    fixture_t *f = *state;
    char why[256];
    assert_int_equal(actor_allow_add(&f->allow, "files", "/x", why, sizeof why), NERVE_EINVAL);
    assert_non_null(strstr(why, "files"));
}

#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_allow_commands_match_exactly),
        T(test_allow_commands_must_be_clean_absolute_paths),
        T(test_allow_empty_policy_refuses_everything),
        T(test_allow_services_match_exact_unit_names),
        T(test_allow_paths_under_a_prefix),
        T(test_allow_paths_refuse_dot_segments_and_relative),
        T(test_allow_paths_resolve_symlinked_directories),
        T(test_allow_paths_prefix_written_through_a_symlink_is_canonical),
        T(test_allow_root_prefix_allows_any_directory),
        T(test_allow_unknown_kind_is_a_config_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
