/*  test_publisher_config.c — nerve-publisher's configuration
    (publisher/config.c).

    Defaults are checked under a scratch $NERVE_HOME; config files are
    written into the same mkdtemp directory. Every key config.h names is
    read at least once, the shipped example loads, and errors name the
    file, line and column of the offending node (full message asserted).
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
#include <nerve/log.h>

#include "../../publisher/config.h" /* manager/ and actor/ have a config.h too */

typedef struct {
    char home[64];
    char path[128];
    relay_config_t cfg;
    nerve_conf_error_t err;
    nerve_log_level_t level; /* restored in teardown */
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
    strcpy(fx->home, "/tmp/nerve-pubconf-XXXXXX");
    assert_non_null(mkdtemp(fx->home));
    assert_int_equal(setenv("NERVE_HOME", fx->home, 1), 0);
    fx->level = nerve_log_get_level();
    assert_int_equal(relay_config_defaults(&fx->cfg), 0);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    relay_config_free(&fx->cfg);
    nerve_log_set_level(fx->level);
    unsetenv("NERVE_HOME");
    nftw(fx->home, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static const char *s_write(fixture_t *fx, const char *text)
{
    snprintf(fx->path, sizeof fx->path, "%s/publisher.yaml", fx->home);
    FILE *f = fopen(fx->path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    return fx->path;
}

static void s_load_fails(fixture_t *fx, const char *text, size_t line, size_t col, const char *what)
{
    const char *path = s_write(fx, text);
    assert_int_not_equal(relay_config_load(&fx->cfg, path, &fx->err), 0);
    char want[1024];
    snprintf(want, sizeof want, "%s:%zu:%zu: %s", path, line, col, what);
    assert_string_equal(fx->err.message, want);
}

static void test_publisher_config_defaults_live_under_nerve_home(void **state)
{
    fixture_t *fx = *state;
    char want[256];
    snprintf(want, sizeof want, "ipc://%s/run/publisher.sock", fx->home);
    assert_string_equal(fx->cfg.input, want);
    snprintf(want, sizeof want, "ipc://%s/run/publisher-control.sock", fx->home);
    assert_string_equal(fx->cfg.control, want);
    assert_string_equal(fx->cfg.output, "tcp://*:7451");
    assert_null(fx->cfg.metrics);
    assert_int_equal(fx->cfg.hwm, 200000);
    assert_int_equal(fx->cfg.scheduling, NERVE_SCHED_BATCH);
}

static void test_publisher_config_reads_every_key(void **state)
{
    fixture_t *fx = *state;
    const char *path = s_write(fx, "input: ipc:///tmp/in.sock\n"
                                   "output: tcp://127.0.0.1:9999\n"
                                   "control: ipc:///tmp/ctl.sock\n"
                                   "hwm: 5000\n"
                                   "metrics: 127.0.0.1:9100\n"
                                   "log_level: warn\n"
                                   "scheduling: normal\n"
                                   "security: {keys: /tmp/pubkeys}\n");
    int rc = relay_config_load(&fx->cfg, path, &fx->err);
    if (rc != 0)
        fail_msg("load failed: %s", fx->err.message);
    assert_string_equal(fx->cfg.input, "ipc:///tmp/in.sock");
    assert_string_equal(fx->cfg.output, "tcp://127.0.0.1:9999");
    assert_string_equal(fx->cfg.control, "ipc:///tmp/ctl.sock");
    assert_string_equal(fx->cfg.metrics, "127.0.0.1:9100");
    assert_int_equal(fx->cfg.hwm, 5000);
    assert_int_equal(fx->cfg.scheduling, NERVE_SCHED_NORMAL);
    assert_int_equal(nerve_log_get_level(), NERVE_LOG_WARN);
    assert_string_equal(fx->cfg.security.keys, "/tmp/pubkeys");
}

static void test_publisher_config_errors_name_file_line_and_column(void **state)
{
    fixture_t *fx = *state;
    s_load_fails(fx, "hwm: 10\n", 1, 6, "expected an integer between 1000 and 100000000, got '10'");
    s_load_fails(fx, "output: tcp://*:1\nlog_level: loud\n", 2, 12,
                 "log_level must be error, warn, info or debug");
    s_load_fails(fx, "inputs: x\n", 1, 1,
                 "unknown key 'inputs' (expected one of: input, output, control, hwm, log_level, "
                 "metrics, security, scheduling)");
}

static void test_publisher_config_example_file_loads(void **state)
{
    fixture_t *fx = *state;
    int rc = relay_config_load(&fx->cfg, NERVE_SOURCE_DIR "/examples/etc/publisher.yaml", &fx->err);
    if (rc != 0)
        fail_msg("examples/etc/publisher.yaml: %s", fx->err.message);
    assert_string_equal(fx->cfg.output, "tcp://*:7451");
    assert_int_equal(fx->cfg.hwm, 200000);
    assert_int_equal(fx->cfg.scheduling, NERVE_SCHED_BATCH);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_publisher_config_defaults_live_under_nerve_home),
        T(test_publisher_config_reads_every_key),
        T(test_publisher_config_errors_name_file_line_and_column),
        T(test_publisher_config_example_file_loads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
