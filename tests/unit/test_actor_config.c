/*  test_actor_config.c — nerve-actor's config file (actor/config.c):
    defaults, every key, and errors that name file:line:column. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nerve/error.h>
#include <nerve/paths.h>

#include "../../actor/config.h" /* manager/ has a config.h too */

static char s_dir[PATH_MAX];
static char s_file[PATH_MAX + 32];

static int s_group_setup(void **state)
{
    char tmpl[] = "/tmp/nerve-actorcfg-XXXXXX";
    if (!mkdtemp(tmpl))
        return -1;
    snprintf(s_dir, sizeof s_dir, "%s", tmpl);
    snprintf(s_file, sizeof s_file, "%s/actor.yaml", s_dir);
    return 0;
}

static int s_group_teardown(void **state)
{
    unlink(s_file);
    rmdir(s_dir);
    return 0;
}

/*  Writes text as the config file and loads it over the defaults. */
static int s_load(actor_config_t *cfg, nerve_conf_error_t *err, const char *text)
{
    FILE *f = fopen(s_file, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(actor_config_defaults(cfg), 0);
    return actor_config_load(cfg, s_file, err);
}

static void test_actor_config_defaults_for_one_machine(void **state)
{
    actor_config_t cfg;
    assert_int_equal(actor_config_defaults(&cfg), 0);
    assert_string_equal(cfg.id, nerve_hostname());
    assert_string_equal(cfg.publisher, "tcp://127.0.0.1:7451");
    assert_string_equal(cfg.manager, "tcp://127.0.0.1:7450");
    assert_string_equal(cfg.systemctl, "/usr/bin/systemctl");
    assert_int_equal(cfg.heartbeat_ms, 5000);
    assert_int_equal(cfg.workers, 4);
    assert_int_equal(cfg.queue, 256);
    assert_int_equal(cfg.timeout_ms, 60000);
    assert_int_equal(cfg.ngroups, 0);
    assert_true(cfg.nmodules >= 1);
    assert_false(cfg.security.insecure);
    assert_false(cfg.security.auto_accept);
    assert_string_equal(cfg.publisher_key, "publisher");
    assert_string_equal(cfg.manager_key, "manager");
    assert_null(cfg.secrets);
    assert_int_equal(cfg.allow.ncommands + cfg.allow.nservices + cfg.allow.npaths, 0);
    char why[256];
    assert_int_equal(actor_config_check(&cfg, why, sizeof why), 0);
    actor_config_free(&cfg);
    actor_config_free(&cfg); /* safe twice */
}

static void test_actor_config_reads_every_key(void **state)
{
    actor_config_t cfg;
    nerve_conf_error_t err;
    int rc = s_load(&cfg, &err,
                    "id: web1\n"
                    "groups: [web, eu-west]\n"
                    "publisher: ipc:///run/nerve/pub.sock\n"
                    "manager: tcp://10.0.0.1:7450\n"
                    "modules: [/opt/nerve/modules, /usr/lib/nerve/modules]\n"
                    "heartbeat: 1s\n"
                    "allow:\n"
                    "  commands: [/bin/echo, /usr/local/bin/deploy]\n"
                    "  services: [nginx.service]\n"
                    "  paths: [/tmp]\n"
                    "workers: 8\n"
                    "queue: 1000\n"
                    "timeout: 90s\n"
                    "systemctl: /bin/systemctl\n"
                    "log_level: info\n"
                    "security: {insecure: true, keys: /etc/nerve/keys}\n"
                    "publisher_key: /etc/nerve/keys/pub.pub\n"
                    "manager_key: mgr1\n"
                    "secrets: /etc/nerve/secrets.yaml\n");
    if (rc != 0)
        fail_msg("%s", err.message);
    assert_string_equal(cfg.id, "web1");
    assert_int_equal(cfg.ngroups, 2);
    assert_string_equal(cfg.groups[0], "web");
    assert_string_equal(cfg.groups[1], "eu-west");
    assert_string_equal(cfg.publisher, "ipc:///run/nerve/pub.sock");
    assert_string_equal(cfg.manager, "tcp://10.0.0.1:7450");
    assert_int_equal(cfg.nmodules, 2);
    assert_string_equal(cfg.modules[1], "/usr/lib/nerve/modules");
    assert_int_equal(cfg.heartbeat_ms, 1000);
    assert_int_equal(cfg.allow.ncommands, 2);
    assert_string_equal(cfg.allow.commands[1], "/usr/local/bin/deploy");
    assert_int_equal(cfg.allow.nservices, 1);
    assert_int_equal(cfg.allow.npaths, 1);
    assert_int_equal(cfg.workers, 8);
    assert_int_equal(cfg.queue, 1000);
    assert_int_equal(cfg.timeout_ms, 90000);
    assert_string_equal(cfg.systemctl, "/bin/systemctl");
    assert_true(cfg.security.insecure);
    assert_string_equal(cfg.security.keys, "/etc/nerve/keys");
    assert_string_equal(cfg.publisher_key, "/etc/nerve/keys/pub.pub");
    assert_string_equal(cfg.manager_key, "mgr1");
    assert_string_equal(cfg.secrets, "/etc/nerve/secrets.yaml");
    char why[256];
    assert_int_equal(actor_config_check(&cfg, why, sizeof why), 0);
    assert_string_equal(cfg.security.name, "web1"); /* the key is named after the id */
    assert_string_equal(cfg.config_path, s_file);
    actor_config_free(&cfg);
}

static void test_actor_config_single_group_may_be_a_scalar(void **state)
{
    actor_config_t cfg;
    nerve_conf_error_t err;
    assert_int_equal(s_load(&cfg, &err, "groups: db\n"), 0);
    assert_int_equal(cfg.ngroups, 1);
    assert_string_equal(cfg.groups[0], "db");
    actor_config_free(&cfg);
}

/*  Loads text expecting failure with a message containing each of `want`. */
static void s_expect_error(const char *text, const char *where, const char *what)
{
    actor_config_t cfg;
    nerve_conf_error_t err;
    int rc = s_load(&cfg, &err, text);
    actor_config_free(&cfg);
    if (rc == 0)
        fail_msg("expected an error for:\n%s", text);
    char pos[PATH_MAX + 64];
    snprintf(pos, sizeof pos, "%s:%s:", s_file, where);
    if (!strstr(err.message, pos) || !strstr(err.message, what))
        fail_msg("expected '%s' and '%s' in: %s", pos, what, err.message);
}

static void test_actor_config_unknown_key_names_its_position(void **state)
{
    s_expect_error("id: web1\nheartbaet: 1s\n", "2:1", "heartbaet");
}

static void test_actor_config_relative_command_is_refused_at_its_item(void **state)
{
    s_expect_error("allow:\n  commands: [/bin/echo, echo]\n", "2:25", "absolute");
}

static void test_actor_config_bad_service_name_is_refused(void **state)
{
    s_expect_error("allow:\n  services:\n    - \"nginx; rm -rf /\"\n", "3:7", "unit name");
}

static void test_actor_config_unknown_allow_kind_is_refused(void **state)
{
    s_expect_error("allow:\n  files: [/tmp]\n", "2:3", "files");
}

static void test_actor_config_bad_values_are_refused(void **state)
{
    s_expect_error("heartbeat: often\n", "1:12", "duration");
    s_expect_error("heartbeat: 10ms\n", "1:12", "heartbeat");
    s_expect_error("workers: 0\n", "1:10", "");
    s_expect_error("queue: lots\n", "1:8", "");
    s_expect_error("id: web/1\n", "1:5", "id");
    s_expect_error("groups: [web, \"a b\"]\n", "1:15", "group");
    s_expect_error("systemctl: systemctl\n", "1:12", "absolute");
    s_expect_error("log_level: loud\n", "1:12", "log_level");
    s_expect_error("security: {insecure: maybe}\n", "1:22", "true or false");
    s_expect_error("security: {curvy: true}\n", "1:12", "curvy");
    /* CURVE goes off only with insecure: true written out */
    s_expect_error("security: {curve: false}\n", "1:19", "insecure: true");
    s_expect_error("manager_key: [a]\n", "1:14", "string");
    s_expect_error("- a\n- b\n", "1:1", "map");
}

static void test_actor_config_key_name_replaces_what_a_key_name_cannot_hold(void **state)
{
    char name[NERVE_KEY_NAME_MAX + 1];
    actor_config_key_name("web1", name);
    assert_string_equal(name, "web1");
    actor_config_key_name("db:1@eu", name);
    assert_string_equal(name, "db_1_eu");
    actor_config_key_name("-x", name);
    assert_string_equal(name, "_x");
    assert_true(nerve_key_name_valid(name));
}

static void test_actor_config_at_most_sixteen_groups(void **state)
{
    char text[512] = "groups: [";
    for (int i = 0; i < 17; i++) {
        char g[16];
        snprintf(g, sizeof g, "%sg%d", i ? ", " : "", i);
        strcat(text, g);
    }
    strcat(text, "]\n");
    s_expect_error(text, "1:80", "at most 16"); /* at the 17th */
}

static void test_actor_config_missing_file_is_an_error(void **state)
{
    actor_config_t cfg;
    nerve_conf_error_t err;
    assert_int_equal(actor_config_defaults(&cfg), 0);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/none.yaml", s_dir);
    assert_int_not_equal(actor_config_load(&cfg, path, &err), 0);
    assert_non_null(strstr(err.message, "none.yaml"));
    actor_config_free(&cfg);
}

static void test_actor_config_check_refuses_a_bad_id_from_flags(void **state)
{
    actor_config_t cfg;
    char why[256];
    assert_int_equal(actor_config_defaults(&cfg), 0);
    assert_int_equal(nerve_conf_set_str(&cfg.id, "web 1"), 0);
    assert_int_equal(actor_config_check(&cfg, why, sizeof why), NERVE_EINVAL);
    assert_non_null(strstr(why, "web 1"));
    assert_int_equal(nerve_conf_set_str(&cfg.id, ""), 0);
    assert_int_equal(actor_config_check(&cfg, why, sizeof why), NERVE_EINVAL);
    assert_int_equal(nerve_conf_set_str(&cfg.id, "web1"), 0);
    assert_int_equal(actor_config_check(&cfg, why, sizeof why), 0);
    assert_int_equal(actor_config_add_group(&cfg, "web", why, sizeof why), 0);
    assert_int_equal(actor_config_add_group(&cfg, "web", why, sizeof why), 0); /* once */
    assert_int_equal(cfg.ngroups, 1);
    assert_int_equal(actor_config_add_group(&cfg, "we/b", why, sizeof why), NERVE_EINVAL);
    actor_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_actor_config_defaults_for_one_machine),
        cmocka_unit_test(test_actor_config_reads_every_key),
        cmocka_unit_test(test_actor_config_single_group_may_be_a_scalar),
        cmocka_unit_test(test_actor_config_unknown_key_names_its_position),
        cmocka_unit_test(test_actor_config_relative_command_is_refused_at_its_item),
        cmocka_unit_test(test_actor_config_bad_service_name_is_refused),
        cmocka_unit_test(test_actor_config_unknown_allow_kind_is_refused),
        cmocka_unit_test(test_actor_config_bad_values_are_refused),
        cmocka_unit_test(test_actor_config_key_name_replaces_what_a_key_name_cannot_hold),
        cmocka_unit_test(test_actor_config_at_most_sixteen_groups),
        cmocka_unit_test(test_actor_config_missing_file_is_an_error),
        cmocka_unit_test(test_actor_config_check_refuses_a_bad_id_from_flags),
    };
    return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
