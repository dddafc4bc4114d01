/*  test_paths.c — $NERVE_HOME defaults, private directories, names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <nerve/error.h>
#include <nerve/paths.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_home_follows_the_environment(void **state)
{
    char buf[PATH_MAX];
    setenv("NERVE_HOME", "/srv/nerve", 1);
    assert_int_equal(nerve_home(buf, sizeof buf), 0);
    assert_string_equal(buf, "/srv/nerve");
    assert_int_equal(nerve_home_path("run/tap.sock", buf, sizeof buf), 0);
    assert_string_equal(buf, "/srv/nerve/run/tap.sock");
    assert_int_equal(nerve_home_path("x", buf, 8), NERVE_ERANGE);
    unsetenv("NERVE_HOME");
}

static void test_private_dir_is_made_0700_and_a_shared_one_is_refused(void **state)
{
    char base[] = "/tmp/nerve-paths-XXXXXX", dir[PATH_MAX], err[512];
    assert_non_null(mkdtemp(base));
    snprintf(dir, sizeof dir, "%s/a/b/run", base);
    assert_int_equal(nerve_private_dir(dir, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    chmod(dir, 0777);
    assert_int_equal(nerve_private_dir(dir, err, sizeof err), NERVE_EPERM);
    assert_non_null(strstr(err, "writable by group or others"));
    char ep[2 * PATH_MAX];
    snprintf(ep, sizeof ep, "ipc://%s/control.sock", dir);
    assert_int_equal(nerve_ipc_dir_prepare(ep, err, sizeof err), NERVE_EPERM);
    assert_int_equal(nerve_ipc_dir_prepare("tcp://*:7450", err, sizeof err), 0);
    chmod(dir, 0700);
    assert_int_equal(nerve_ipc_dir_prepare(ep, err, sizeof err), 0);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    assert_int_equal(system(cmd), 0);
}

static void test_names_are_letters_digits_and_a_few_marks(void **state)
{
    assert_true(nerve_name_ok("web1", 255));
    assert_true(nerve_name_ok("db-2.eu_west:a@b", 255));
    assert_false(nerve_name_ok("", 255));
    assert_false(nerve_name_ok(NULL, 255));
    assert_false(nerve_name_ok("web/1", 255)); /* would break @host/<h>/ topics */
    assert_false(nerve_name_ok("a b", 255));
    assert_false(nerve_name_ok("web1", 3));
}

static void test_module_dirs_default_ends_with_the_system_dir(void **state)
{
    char *dirs[8];
    size_t n = nerve_default_module_dirs(dirs, 8);
    assert_true(n >= 2);
    assert_non_null(strstr(dirs[n - 1], "nerve/modules"));
    for (size_t i = 0; i < n; i++)
        free(dirs[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_home_follows_the_environment),
        cmocka_unit_test(test_private_dir_is_made_0700_and_a_shared_one_is_refused),
        cmocka_unit_test(test_names_are_letters_digits_and_a_few_marks),
        cmocka_unit_test(test_module_dirs_default_ends_with_the_system_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
