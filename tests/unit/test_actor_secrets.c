/*  test_actor_secrets.c — the actor's secrets file and {{secret.NAME}}
    resolution (actor/secrets.c).

    Files are written into a mkdtemp directory with the mode under test;
    reaction args are built as the manager sends them, with each secret an
    ext value of type NERVE_EXT_SECRET naming it.
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
#include <unistd.h>

#include <nerve/error.h>
#include <nerve/value.h>

#include "../../actor/secrets.h"

static char s_dir[64];
static char s_path[128];

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int s_setup(void **state)
{
    strcpy(s_dir, "/tmp/nerve-test-secrets.XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    snprintf(s_path, sizeof s_path, "%s/secrets.yaml", s_dir);
    return 0;
}

static int s_teardown(void **state)
{
    nftw(s_dir, s_rm, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void s_write(const char *text, mode_t mode)
{
    unlink(s_path);
    FILE *fp = fopen(s_path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chmod(s_path, mode), 0);
}

static msgpack_object s_secret(const char *name)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_EXT};
    o.via.ext.type = NERVE_EXT_SECRET;
    o.via.ext.ptr = name;
    o.via.ext.size = (uint32_t)strlen(name);
    return o;
}

static msgpack_object s_str(const char *s)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_STR};
    o.via.str.ptr = s;
    o.via.str.size = (uint32_t)strlen(s);
    return o;
}

static void s_assert_str(const msgpack_object *o, const char *want)
{
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, strlen(want));
    assert_memory_equal(o->via.str.ptr, want, strlen(want));
}

static void test_secrets_resolve_every_reference_in_nested_args(void **state)
{
    s_write("db_password: \"hunter2\"\napi.token: abc-123\n", 0600);
    char err[512];
    secrets_t *sec = secrets_load(s_path, err, sizeof err);
    if (!sec)
        fail_msg("%s", err);
    assert_int_equal(secrets_count(sec), 2);

    /* {argv: ["/bin/x", secret(db_password)], env: {TOKEN: secret(api.token)}, n: "plain"} */
    msgpack_object argv_items[2] = {s_str("/bin/x"), s_secret("db_password")};
    msgpack_object_kv env_kv[1] = {{s_str("TOKEN"), s_secret("api.token")}};
    msgpack_object_kv kv[3] = {
        {s_str("argv"), {.type = MSGPACK_OBJECT_ARRAY, .via.array = {2, argv_items}}},
        {s_str("env"), {.type = MSGPACK_OBJECT_MAP, .via.map = {1, env_kv}}},
        {s_str("n"), s_str("plain")},
    };
    msgpack_object args = {.type = MSGPACK_OBJECT_MAP, .via.map = {3, kv}};
    assert_true(secrets_wanted(&args));
    char why[256] = "";
    assert_int_equal(secrets_resolve(sec, &args, why, sizeof why), 0);
    s_assert_str(&argv_items[0], "/bin/x");
    s_assert_str(&argv_items[1], "hunter2");
    s_assert_str(&env_kv[0].val, "abc-123");
    s_assert_str(&kv[2].val, "plain");
    assert_false(secrets_wanted(&args));
    secrets_destroy(&sec);
    secrets_destroy(&sec); /* safe twice */
    assert_null(sec);
}

static void test_secrets_unknown_name_is_refused_without_any_value(void **state)
{
    s_write("db_password: hunter2\n", 0600);
    char err[512], why[256] = "";
    secrets_t *sec = secrets_load(s_path, err, sizeof err);
    assert_non_null(sec);
    msgpack_object o = s_secret("nope");
    assert_int_equal(secrets_resolve(sec, &o, why, sizeof why), NERVE_ENOENT);
    assert_string_equal(why, "{{secret.nope}}: no such secret in this actor's secrets file");
    assert_null(strstr(why, "hunter2"));
    /* no secrets file at all */
    o = s_secret("db_password");
    assert_int_equal(secrets_resolve(NULL, &o, why, sizeof why), NERVE_ENOENT);
    assert_non_null(strstr(why, "this actor has no secrets file"));
    /* args without a secret need no file */
    o = s_str("plain");
    assert_int_equal(secrets_resolve(NULL, &o, why, sizeof why), 0);
    secrets_destroy(&sec);
}

static void test_secrets_file_others_can_read_is_refused(void **state)
{
    char err[512];
    s_write("db_password: hunter2\n", 0640);
    assert_null(secrets_load(s_path, err, sizeof err));
    assert_non_null(strstr(err, "mode 640"));
    assert_non_null(strstr(err, "chmod 600"));
    assert_null(strstr(err, "hunter2"));
    s_write("db_password: hunter2\n", 0400); /* read-only for the owner is fine */
    secrets_t *sec = secrets_load(s_path, err, sizeof err);
    assert_non_null(sec);
    secrets_destroy(&sec);
}

static void test_secrets_bad_files_are_refused_with_the_position(void **state)
{
    char err[512];
    s_write("- a\n- b\n", 0600);
    assert_null(secrets_load(s_path, err, sizeof err));
    assert_non_null(strstr(err, "secrets.yaml:1:1: a secrets file is a map"));
    s_write("ok: 1\n\"bad name\": x\n", 0600);
    assert_null(secrets_load(s_path, err, sizeof err));
    assert_non_null(strstr(err, "secrets.yaml:2:1: secret name 'bad name'"));
    s_write("nested: {a: b}\n", 0600);
    assert_null(secrets_load(s_path, err, sizeof err));
    assert_non_null(strstr(err, "secrets.yaml:1:9: secret 'nested': the value must be a scalar"));
    unlink(s_path);
    assert_null(secrets_load(s_path, err, sizeof err));
    assert_non_null(strstr(err, "No such file"));
    assert_int_equal(symlink("/etc/hostname", s_path), 0);
    assert_null(secrets_load(s_path, err, sizeof err)); /* never through a symlink */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_secrets_resolve_every_reference_in_nested_args,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_secrets_unknown_name_is_refused_without_any_value,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_secrets_file_others_can_read_is_refused, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_secrets_bad_files_are_refused_with_the_position,
                                        s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
