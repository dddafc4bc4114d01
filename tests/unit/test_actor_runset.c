/*  test_actor_runset.c — the actor's runset (actor/runset.c): every
    reactions module along the path loaded at once through the real loader,
    a closed set afterwards, refusals named by file and reason, the secrets
    file read with it, and the reference a job holds keeping its code
    mapped after a reload dropped the runset.

    Modules are the test modules (tests/modules/, built into
    NERVE_TEST_MODULE_DIR) copied into <scratch>/<dir>/<role>/ as the
    loader wants them.
*/
#define _GNU_SOURCE /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nerve/error.h>
#include <nerve/module.h>
#include <nerve/value.h>

#include "../../actor/pool.h"
#include "../../actor/runset.h"

#pragma GCC diagnostic ignored "-Wformat-truncation" /* scratch paths are short */

typedef struct fixture {
    char dir[256];
    char a[300], b[300]; /* two module directories */
} fixture_t;

/* ---------------------------------------------------------------- helpers */

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) == 0 ? 0 : -1;
}

/*  Copies test module `name`.so to <dir>/<role>/<as>.so (mode 0755),
    through a temporary name and rename(2), as an operator should. */
static void s_install(const char *dir, const char *role, const char *name, const char *as)
{
    char src[512], role_dir[512], tmp[600], dst[600];
    snprintf(src, sizeof src, "%s/%s.so", NERVE_TEST_MODULE_DIR, name);
    snprintf(role_dir, sizeof role_dir, "%s/%s", dir, role);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", role_dir, as);
    snprintf(dst, sizeof dst, "%s/%s.so", role_dir, as);
    mkdir(role_dir, 0755);
    FILE *in = fopen(src, "rb");
    assert_non_null(in);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    assert_true(fd >= 0);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(write(fd, buf, n), (ssize_t)n);
    fclose(in);
    assert_int_equal(fchmod(fd, 0755), 0);
    close(fd);
    assert_int_equal(rename(tmp, dst), 0);
}

static void s_write(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/*  Runs reactions.slow.sleep as resolved, for 1 ms; returns its output. */
static void s_call_sleep(const nerve_resolved_t *fn, char *output, size_t cap)
{
    msgpack_zone *zone = msgpack_zone_new(256);
    msgpack_object args;
    char err[128];
    assert_int_equal(nerve_obj_from_json(zone, "{\"ms\": 1}", 9, &args, err, sizeof err), 0);
    nerve_reaction_call_t call = {
        .fn = "reactions.slow.sleep",
        .args = &args,
        .output = output,
        .output_cap = cap,
    };
    output[0] = '\0';
    assert_int_equal(fn->fn->fn.reaction(&call), 0);
    output[call.output_len < cap ? call.output_len : cap - 1] = '\0';
    msgpack_zone_free(zone);
}

static int s_setup(void **state)
{
    unsetenv("JOURNAL_STREAM");
    fixture_t *f = calloc(1, sizeof *f);
    char tmpl[] = "/tmp/nerve-runset-XXXXXX";
    if (!f || !mkdtemp(tmpl))
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s", tmpl);
    snprintf(f->a, sizeof f->a, "%s/a", f->dir);
    snprintf(f->b, sizeof f->b, "%s/b", f->dir);
    if (mkdir(f->a, 0755) != 0 || mkdir(f->b, 0755) != 0)
        return -1;
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    nftw(f->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ------------------------------------------------------------------ tests */

static void test_runset_loads_every_reactions_module_and_no_other_role(void **state)
{
    fixture_t *f = *state;
    s_install(f->a, "reactions", "slow", "slow");
    s_install(f->a, "rules", "good", "good"); /* its init() would count in the env */
    unsetenv("NERVE_TESTMOD_GOOD_INIT");
    const char *dirs[] = {f->a};
    runset_t *rs = NULL;
    char err[1024] = "";
    assert_int_equal(runset_load(dirs, 1, NULL, &rs, err, sizeof err), 0);
    assert_non_null(rs);
    assert_int_equal(runset_loaded(rs), 1);
    assert_int_equal(runset_refused(rs), 0);
    assert_null(getenv("NERVE_TESTMOD_GOOD_INIT"));
    assert_null(runset_secrets(rs));
    assert_string_equal(runset_path(rs), f->a);

    nerve_resolved_t fn;
    assert_int_equal(runset_resolve(rs, "reactions.slow.sleep", &fn, err, sizeof err), 0);
    assert_string_equal(fn.module->name, "slow");
    char out[64];
    s_call_sleep(&fn, out, sizeof out);
    assert_string_equal(out, "slept 1 ms");

    /* A module that loaded, asked for a function it lacks. */
    assert_int_equal(runset_resolve(rs, "reactions.slow.nap", &fn, err, sizeof err), NERVE_ENOENT);
    assert_non_null(strstr(err, "has no function 'nap'"));
    runset_unref(&rs);
    assert_null(rs);
    runset_unref(&rs); /* safe twice */
}

static void test_runset_is_closed_to_a_module_added_after_it_loaded(void **state)
{
    fixture_t *f = *state;
    const char *dirs[] = {f->a};
    runset_t *rs = NULL;
    char err[1024] = "";
    assert_int_equal(runset_load(dirs, 1, NULL, &rs, err, sizeof err), 0);
    assert_int_equal(runset_loaded(rs), 0);

    s_install(f->a, "reactions", "slow", "slow");
    nerve_resolved_t fn;
    assert_int_equal(runset_resolve(rs, "reactions.slow.sleep", &fn, err, sizeof err),
                     NERVE_ENOENT);
    assert_non_null(strstr(err, "reactions.slow.sleep: no module reactions/slow.so was loaded"));
    assert_non_null(strstr(err, f->a));
    assert_non_null(strstr(err, "SIGHUP"));

    /* The next load (a reload) takes it in. */
    runset_t *next = NULL;
    assert_int_equal(runset_load(dirs, 1, NULL, &next, err, sizeof err), 0);
    assert_int_equal(runset_loaded(next), 1);
    assert_int_equal(runset_resolve(next, "reactions.slow.sleep", &fn, err, sizeof err), 0);
    runset_unref(&next);
    runset_unref(&rs);
}

static void test_runset_names_each_refused_module_file_and_reason(void **state)
{
    fixture_t *f = *state;
    s_install(f->a, "reactions", "slow", "slow");
    s_install(f->a, "reactions", "badmagic", "badmagic");
    s_install(f->b, "reactions", "good", "wrongrole"); /* a rules module, and misnamed */
    const char *dirs[] = {f->a, f->b};
    runset_t *rs = NULL;
    char err[2048] = "";
    assert_int_equal(runset_load(dirs, 2, NULL, &rs, err, sizeof err), NERVE_EMODULE);
    assert_non_null(rs); /* what loaded is usable, for a start */
    assert_int_equal(runset_loaded(rs), 1);
    assert_int_equal(runset_refused(rs), 2);
    assert_non_null(strstr(err, "2 reactions modules refused"));
    char path[600];
    snprintf(path, sizeof path, "%s/reactions/badmagic.so: bad magic", f->a);
    assert_non_null(strstr(err, path));
    snprintf(path, sizeof path, "%s/reactions/wrongrole.so: ", f->b);
    assert_non_null(strstr(err, path));
    assert_null(strstr(err, ".-")); /* the probe's name is not shown */

    /* A reaction for a refused module gets the loader's code and reason. */
    nerve_resolved_t fn;
    assert_int_equal(runset_resolve(rs, "reactions.badmagic.yes", &fn, err, sizeof err),
                     NERVE_EABI);
    assert_non_null(strstr(err, "reactions.badmagic.yes: "));
    assert_non_null(strstr(err, "badmagic.so: bad magic"));
    assert_int_equal(runset_resolve(rs, "reactions.slow.sleep", &fn, err, sizeof err), 0);
    runset_unref(&rs);
}

static void test_runset_first_directory_holding_a_name_wins(void **state)
{
    fixture_t *f = *state;
    s_install(f->a, "reactions", "slow", "slow");
    s_install(f->b, "reactions", "badmagic", "slow"); /* shadowed: never loaded */
    const char *dirs[] = {f->a, f->b};
    runset_t *rs = NULL;
    char err[1024] = "";
    assert_int_equal(runset_load(dirs, 2, NULL, &rs, err, sizeof err), 0);
    assert_int_equal(runset_loaded(rs), 1);
    nerve_resolved_t fn;
    assert_int_equal(runset_resolve(rs, "reactions.slow.sleep", &fn, err, sizeof err), 0);
    char want[600];
    snprintf(want, sizeof want, "%s/reactions/slow.so", f->a);
    assert_string_equal(fn.path, want);
    runset_unref(&rs);
}

static void test_runset_ignores_a_file_that_cannot_be_a_module_name(void **state)
{
    fixture_t *f = *state;
    s_install(f->a, "reactions", "slow", "slow.old"); /* slow.old.so */
    const char *dirs[] = {f->a, "/nonexistent/nerve/modules"};
    runset_t *rs = NULL;
    char err[1024] = "";
    assert_int_equal(runset_load(dirs, 2, NULL, &rs, err, sizeof err), 0);
    assert_int_equal(runset_loaded(rs), 0);
    assert_int_equal(runset_refused(rs), 0);
    runset_unref(&rs);
}

static void test_runset_resolve_refuses_other_roles_and_bad_names(void **state)
{
    fixture_t *f = *state;
    s_install(f->a, "rules", "good", "good");
    const char *dirs[] = {f->a};
    runset_t *rs = NULL;
    char err[1024] = "";
    assert_int_equal(runset_load(dirs, 1, NULL, &rs, err, sizeof err), 0);
    nerve_resolved_t fn;
    assert_int_equal(runset_resolve(rs, "rules.good.gt", &fn, err, sizeof err), NERVE_EINVAL);
    assert_non_null(strstr(err, "not a reactions function"));
    assert_int_equal(runset_resolve(rs, "reactions.slow", &fn, err, sizeof err), NERVE_EINVAL);
    assert_int_equal(runset_resolve(rs, "reactions.s/low.x", &fn, err, sizeof err), NERVE_EINVAL);
    assert_int_equal(runset_resolve(rs, "reactions.a.b.c", &fn, err, sizeof err), NERVE_EINVAL);
    runset_unref(&rs);
}

static void test_runset_reads_the_secrets_file_and_refuses_a_loose_one(void **state)
{
    fixture_t *f = *state;
    char path[400];
    snprintf(path, sizeof path, "%s/secrets.yaml", f->dir);
    s_write(path, "db_password: hunter2\napi: abc\n", 0600);
    const char *dirs[] = {f->a};
    runset_t *rs = NULL;
    char err[1024] = "";
    assert_int_equal(runset_load(dirs, 1, path, &rs, err, sizeof err), 0);
    assert_int_equal(secrets_count(runset_secrets(rs)), 2);
    runset_unref(&rs);

    s_write(path, "db_password: hunter2\n", 0644);
    assert_int_not_equal(runset_load(dirs, 1, path, &rs, err, sizeof err), 0);
    assert_null(rs);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "mode 644"));
}

/*  A job's reference keeps the code it runs mapped after a reload dropped
    the runset it came from and no newer runset holds the module: were the
    module unloaded, the call below would jump into unmapped memory. */
static void test_runset_job_reference_keeps_its_module_after_a_reload(void **state)
{
    fixture_t *f = *state;
    s_install(f->a, "reactions", "slow", "slow");
    const char *dirs[] = {f->a};
    runset_t *running = NULL;
    char err[1024] = "";
    assert_int_equal(runset_load(dirs, 1, NULL, &running, err, sizeof err), 0);
    nerve_resolved_t fn;
    assert_int_equal(runset_resolve(running, "reactions.slow.sleep", &fn, err, sizeof err), 0);
    nerve_reaction_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.fn, sizeof r.fn, "reactions.slow.sleep");
    r.args.type = MSGPACK_OBJECT_NIL;
    pool_job_t *job = pool_job_new(&r, &fn, running);
    assert_non_null(job);
    assert_ptr_equal(job->runset, running);

    /* The module goes away on disk and a reload swaps in a runset without it. */
    char so[600];
    snprintf(so, sizeof so, "%s/reactions/slow.so", f->a);
    assert_int_equal(unlink(so), 0);
    runset_t *next = NULL;
    assert_int_equal(runset_load(dirs, 1, NULL, &next, err, sizeof err), 0);
    assert_int_equal(runset_loaded(next), 0);
    runset_unref(&running);
    running = next;

    char out[64];
    s_call_sleep(&job->fn, out, sizeof out);
    assert_string_equal(out, "slept 1 ms");
    pool_job_free(&job); /* the last reference: unloads it now */
    assert_null(job);
    assert_int_equal(runset_resolve(running, "reactions.slow.sleep", &fn, err, sizeof err),
                     NERVE_ENOENT);
    runset_unref(&running);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_runset_loads_every_reactions_module_and_no_other_role),
        T(test_runset_is_closed_to_a_module_added_after_it_loaded),
        T(test_runset_names_each_refused_module_file_and_reason),
        T(test_runset_first_directory_holding_a_name_wins),
        T(test_runset_ignores_a_file_that_cannot_be_a_module_name),
        T(test_runset_resolve_refuses_other_roles_and_bad_names),
        T(test_runset_reads_the_secrets_file_and_refuses_a_loose_one),
        T(test_runset_job_reference_keeps_its_module_after_a_reload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
