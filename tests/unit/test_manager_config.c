/*  test_manager_config.c — nerve-manager's configuration (manager/config.c).

    Defaults are checked under a scratch $NERVE_HOME; config files are
    written into the same mkdtemp directory. Every key DESIGN.md and
    config.h name is read at least once, and errors must name the file,
    line and column of the offending node (full message asserted).
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
#include <nerve/paths.h>

#include "config.h"

typedef struct {
    char home[64];
    char path[128];
    manager_config_t cfg;
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
    strcpy(fx->home, "/tmp/nerve-mgrconf-XXXXXX");
    assert_non_null(mkdtemp(fx->home));
    assert_int_equal(setenv("NERVE_HOME", fx->home, 1), 0);
    fx->level = nerve_log_get_level();
    assert_int_equal(manager_config_defaults(&fx->cfg), 0);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    manager_config_free(&fx->cfg);
    nerve_log_set_level(fx->level);
    unsetenv("NERVE_HOME");
    nftw(fx->home, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static const char *s_write(fixture_t *fx, const char *text)
{
    snprintf(fx->path, sizeof fx->path, "%s/manager.yaml", fx->home);
    FILE *f = fopen(fx->path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    return fx->path;
}

static void s_load_ok(fixture_t *fx, const char *text)
{
    int rc = manager_config_load(&fx->cfg, s_write(fx, text), &fx->err);
    if (rc != 0)
        fail_msg("load failed (%s): %s", nerve_strerror(rc), fx->err.message);
}

/*  The load must fail with exactly "<path>:<line>:<col>: <what>". */
static void s_load_fails(fixture_t *fx, const char *text, size_t line, size_t col, const char *what)
{
    const char *path = s_write(fx, text);
    if (manager_config_load(&fx->cfg, path, &fx->err) == 0)
        fail_msg("load succeeded; expected '%s'", what);
    char want[1024];
    snprintf(want, sizeof want, "%s:%zu:%zu: %s", path, line, col, what);
    assert_string_equal(fx->err.message, want);
    assert_int_equal(fx->err.line, line);
    assert_int_equal(fx->err.column, col);
}

/* ---------------------------------------------------------------- defaults */

static void test_manager_config_defaults_live_under_nerve_home(void **state)
{
    fixture_t *fx = *state;
    const manager_config_t *c = &fx->cfg;
    char want[256];
    assert_string_equal(c->id, nerve_hostname());
    assert_string_equal(c->events, "tcp://*:7450");
    snprintf(want, sizeof want, "ipc://%s/run/publisher.sock", fx->home);
    assert_string_equal(c->publisher, want);
    snprintf(want, sizeof want, "ipc://%s/run/control.sock", fx->home);
    assert_string_equal(c->control, want);
    snprintf(want, sizeof want, "ipc://%s/run/tap.sock", fx->home);
    assert_string_equal(c->tap, want);
    snprintf(want, sizeof want, "%s/rules", fx->home);
    assert_string_equal(c->rules, want);
    snprintf(want, sizeof want, "%s/data", fx->home);
    assert_string_equal(c->data, want);
    assert_true(c->nmodules >= 2);
    snprintf(want, sizeof want, "%s/modules", fx->home);
    assert_string_equal(c->modules[0], want);
    assert_string_equal(c->modules[c->nmodules - 1], NERVE_MODULE_SYSTEM_DIR);
    assert_null(c->metrics);
    assert_int_equal(c->commit_interval_ms, 50);
    assert_int_equal(c->heartbeat_s, 5);
    assert_int_equal(c->worker_queue, 1024);
    assert_int_equal(c->map_size_mb, 1024);
    assert_false(c->security.insecure); /* CURVE unless written out */
    assert_false(c->security.auto_accept);
    snprintf(want, sizeof want, "%s/keys", fx->home);
    assert_string_equal(c->security.keys, want);
    assert_string_equal(c->security.name, "manager");
    assert_string_equal(c->publisher_key, "publisher");
    assert_true(c->rules_default); /* the manager may create it */
    assert_int_equal(c->scheduling, NERVE_SCHED_BATCH);
    assert_null(c->config_path);
}

static void test_manager_config_empty_file_keeps_the_defaults(void **state)
{
    fixture_t *fx = *state;
    s_load_ok(fx, "# nothing set\n");
    assert_string_equal(fx->cfg.config_path, fx->path);
    assert_string_equal(fx->cfg.events, "tcp://*:7450");
    assert_int_equal(fx->cfg.commit_interval_ms, 50);
    assert_true(fx->cfg.rules_default);
}

/* -------------------------------------------------------------------- keys */

static void test_manager_config_reads_every_key(void **state)
{
    fixture_t *fx = *state;
    s_load_ok(fx, "id: mgr1\n"
                  "events: tcp://*:9450\n"
                  "publisher: ipc:///run/nerve/pub.sock\n"
                  "control: ipc:///run/nerve/ctl.sock\n"
                  "tap: tcp://127.0.0.1:9452\n"
                  "rules: /etc/nerve/rules\n"
                  "modules: [/opt/nerve/modules, /usr/lib/nerve/modules]\n"
                  "data: /var/lib/nerve/data\n"
                  "commit_interval: 250ms\n"
                  "metrics: 127.0.0.1:9100\n"
                  "heartbeat: 2s\n"
                  "worker_queue: 64\n"
                  "map_size_mb: 4096\n"
                  "log_level: debug\n"
                  "security: {curve: false, keys: /etc/nerve/keys, insecure: true,\n"
                  "           auto_accept: false}\n"
                  "publisher_key: /etc/nerve/keys/publisher.pub\n"
                  "scheduling: normal\n");
    const manager_config_t *c = &fx->cfg;
    assert_string_equal(c->id, "mgr1");
    assert_string_equal(c->events, "tcp://*:9450");
    assert_string_equal(c->publisher, "ipc:///run/nerve/pub.sock");
    assert_string_equal(c->control, "ipc:///run/nerve/ctl.sock");
    assert_string_equal(c->tap, "tcp://127.0.0.1:9452");
    assert_string_equal(c->rules, "/etc/nerve/rules");
    assert_false(c->rules_default); /* configured: never created for the operator */
    assert_int_equal(c->nmodules, 2);
    assert_string_equal(c->modules[0], "/opt/nerve/modules");
    assert_string_equal(c->modules[1], "/usr/lib/nerve/modules");
    assert_string_equal(c->data, "/var/lib/nerve/data");
    assert_int_equal(c->commit_interval_ms, 250);
    assert_string_equal(c->metrics, "127.0.0.1:9100");
    assert_int_equal(c->heartbeat_s, 2);
    assert_int_equal(c->worker_queue, 64);
    assert_int_equal(c->map_size_mb, 4096);
    assert_int_equal(nerve_log_get_level(), NERVE_LOG_DEBUG);
    assert_true(c->security.insecure);
    assert_string_equal(c->security.keys, "/etc/nerve/keys");
    assert_string_equal(c->publisher_key, "/etc/nerve/keys/publisher.pub");
    assert_int_equal(c->scheduling, NERVE_SCHED_NORMAL);
    assert_string_equal(c->config_path, fx->path);
}

/*  The example shipped for /etc/nerve/manager.yaml loads as it is. */
static void test_manager_config_example_file_loads(void **state)
{
    fixture_t *fx = *state;
    const char *path = NERVE_SOURCE_DIR "/examples/etc/manager.yaml";
    int rc = manager_config_load(&fx->cfg, path, &fx->err);
    if (rc != 0)
        fail_msg("%s: %s", path, fx->err.message);
    assert_string_equal(fx->cfg.id, "manager1");
    assert_int_equal(fx->cfg.scheduling, NERVE_SCHED_BATCH);
    assert_int_equal(fx->cfg.commit_interval_ms, 50);
}

static void test_manager_config_modules_may_be_one_string(void **state)
{
    fixture_t *fx = *state;
    s_load_ok(fx, "modules: /opt/nerve/modules\n");
    assert_int_equal(fx->cfg.nmodules, 1);
    assert_string_equal(fx->cfg.modules[0], "/opt/nerve/modules");
}

static void test_manager_config_heartbeat_under_a_second_rounds_up_to_one(void **state)
{
    fixture_t *fx = *state;
    s_load_ok(fx, "heartbeat: 500ms\ncommit_interval: 2\n");
    assert_int_equal(fx->cfg.heartbeat_s, 1);
    assert_int_equal(fx->cfg.commit_interval_ms, 2000);
}

/* ------------------------------------------------------------------ errors */

static void test_manager_config_unknown_key_fails_with_its_position(void **state)
{
    s_load_fails(*state,
                 "id: mgr1\n"
                 "events: tcp://*:7450\n"
                 "event: tcp://*:7451\n",
                 3, 1,
                 "unknown key 'event' (expected one of: id, events, publisher, control, tap, "
                 "rules, modules, data, commit_interval, metrics, heartbeat, worker_queue, "
                 "map_size_mb, log_level, security, publisher_key, scheduling)");
}

static void test_manager_config_unknown_security_key_fails_with_its_position(void **state)
{
    s_load_fails(*state,
                 "security:\n"
                 "  curve: true\n"
                 "  insecrue: true\n",
                 3, 3,
                 "unknown key 'insecrue' (expected one of: curve, insecure, keys, auto_accept)");
}

static void test_manager_config_wrong_types_fail_with_their_position(void **state)
{
    fixture_t *fx = *state;
    s_load_fails(fx, "events: [tcp://*:7450]\n", 1, 9, "expected a string, got a sequence");
    s_load_fails(fx, "worker_queue: 0\n", 1, 15,
                 "expected an integer between 1 and 16777216, got '0'");
    s_load_fails(fx, "map_size_mb: lots\n", 1, 14,
                 "expected an integer between 1 and 1048576, got 'lots'");
    s_load_fails(fx, "log_level: loud\n", 1, 12, "log_level must be error, warn, info or debug");
    s_load_fails(fx, "scheduling: fifo\n", 1, 13, "scheduling must be batch or normal");
    assert_int_equal(fx->cfg.scheduling, NERVE_SCHED_BATCH);
    s_load_fails(fx, "security: {insecure: maybe}\n", 1, 22, "expected true or false, got 'maybe'");
    s_load_fails(fx, "security: {curve: false}\n", 1, 19,
                 "curve: false turns encryption and authentication off; write insecure: true "
                 "as well to mean it");
    s_load_fails(fx, "modules: [/a, [/b]]\n", 1, 15, "expected a string, got a sequence");
    s_load_fails(fx,
                 "modules: [/1, /2, /3, /4, /5, /6, /7, /8, /9, /10, /11, /12, /13, /14, /15,\n"
                 "          /16, /17]\n",
                 1, 10, "at most 16 module directories");
}

static void test_manager_config_bad_heartbeat_fails_and_keeps_the_setting(void **state)
{
    fixture_t *fx = *state;
    s_load_fails(fx, "heartbeat: soon\n", 1, 12,
                 "expected a duration (250ms, 30s, 5m, 2h, 1d or seconds), got 'soon'");
    assert_int_equal(fx->cfg.heartbeat_s, 5);
    s_load_fails(fx, "commit_interval: -1s\n", 1, 18,
                 "expected a duration that is not negative and fits in 64-bit milliseconds, "
                 "got '-1s'");
    assert_int_equal(fx->cfg.commit_interval_ms, 50);
}

static void test_manager_config_missing_file_fails_naming_it(void **state)
{
    fixture_t *fx = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/nosuch.yaml", fx->home);
    assert_int_equal(manager_config_load(&fx->cfg, path, &fx->err), NERVE_ENOENT);
    assert_non_null(strstr(fx->err.message, path));
    assert_null(fx->cfg.config_path);
}

static void test_manager_config_set_replaces_and_clears(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(nerve_conf_set_str(&fx->cfg.metrics, "127.0.0.1:9100"), 0);
    assert_string_equal(fx->cfg.metrics, "127.0.0.1:9100");
    assert_int_equal(nerve_conf_set_str(&fx->cfg.metrics, "[::1]:9100"), 0);
    assert_string_equal(fx->cfg.metrics, "[::1]:9100");
    assert_int_equal(nerve_conf_set_str(&fx->cfg.metrics, NULL), 0);
    assert_null(fx->cfg.metrics);
    manager_config_free(&fx->cfg);
    assert_null(fx->cfg.id);
    assert_int_equal(fx->cfg.nmodules, 0);
    manager_config_free(&fx->cfg); /* safe twice (teardown frees again) */
}

#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_manager_config_defaults_live_under_nerve_home),
        T(test_manager_config_empty_file_keeps_the_defaults),
        T(test_manager_config_reads_every_key),
        T(test_manager_config_example_file_loads),
        T(test_manager_config_modules_may_be_one_string),
        T(test_manager_config_heartbeat_under_a_second_rounds_up_to_one),
        T(test_manager_config_unknown_key_fails_with_its_position),
        T(test_manager_config_unknown_security_key_fails_with_its_position),
        T(test_manager_config_wrong_types_fail_with_their_position),
        T(test_manager_config_bad_heartbeat_fails_and_keeps_the_setting),
        T(test_manager_config_missing_file_fails_naming_it),
        T(test_manager_config_set_replaces_and_clears),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
