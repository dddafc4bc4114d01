/*  test_reactions_manager.c — the manager-side reactions (eventer, log,
    store) through the real module loader.

    The daemon's half of the ABI is faked here, legitimately: a host api
    that records every emitted event and register write, and can be told
    to fail. Log lines are read back from stderr redirected into a file in
    a scratch directory.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nerve/module.h>

static nerve_modset_t *s_modules;

/*  What the reactions asked of the daemon. */
typedef struct host {
    int emit_rc;
    int set_rc;
    int emits;
    char tag[NERVE_TAG_MAX + 1];
    msgpack_zone *zone; /* copies of what was passed */
    msgpack_object data;
    int sets;
    char scope[512];
    char key[512];
    msgpack_object value;
} host_t;

static int s_emit(void *arg, const char *tag, const msgpack_object *data)
{
    host_t *h = arg;
    h->emits++;
    snprintf(h->tag, sizeof h->tag, "%s", tag);
    assert_int_equal(nerve_obj_copy(h->zone, data, &h->data), 0);
    return h->emit_rc;
}

static int s_emit_raw(void *arg, const char *tag, const void *data, size_t len)
{
    fail_msg("emit_raw is not used by these reactions");
    return NERVE_EINVAL;
}

static int s_register_set(void *arg, const char *scope, const char *key,
                          const msgpack_object *value)
{
    host_t *h = arg;
    h->sets++;
    snprintf(h->scope, sizeof h->scope, "%s", scope);
    snprintf(h->key, sizeof h->key, "%s", key);
    assert_int_equal(nerve_obj_copy(h->zone, value, &h->value), 0);
    return h->set_rc;
}

static int s_allowed(void *arg, const char *kind, const char *what)
{
    return NERVE_EPERM;
}

static const char *s_host_id(void *arg)
{
    return "manager1";
}

static const nerve_host_api_t s_api = {
    sizeof(nerve_host_api_t), s_emit, s_emit_raw, s_register_set, s_allowed, s_host_id,
};

/*  One prepared reaction call site, with its host and output. */
typedef struct {
    nerve_resolved_t res;
    void *prepared;
    msgpack_zone *zone;
    msgpack_object args;
    char err[256];
    host_t host;
    nerve_host_api_t api;
    char output[512];
    size_t output_cap;
    size_t output_len;
    int64_t rc;
} site_t;

static int s_group_setup(void **state)
{
    unsetenv("JOURNAL_STREAM"); /* plain "LEVEL id: message" lines */
    const char *dirs[] = {NERVE_MODULE_BUILD_DIR};
    s_modules = nerve_modset_new(dirs, 1);
    return s_modules ? 0 : -1;
}

static int s_group_teardown(void **state)
{
    nerve_modset_destroy(&s_modules);
    return 0;
}

static msgpack_object s_json(msgpack_zone *zone, const char *json)
{
    msgpack_object o;
    char err[128];
    if (nerve_obj_from_json(zone, json, strlen(json), &o, err, sizeof err) != 0)
        fail_msg("bad test JSON %s: %s", json, err);
    return o;
}

/*  Resolves reactions.<dotted> and prepares it with args (JSON, as the
    rules loader passes them: unrendered). Returns prepare's code. */
static int s_open(site_t *site, const char *dotted, const char *args)
{
    memset(site, 0, sizeof *site);
    char name[96], why[512];
    snprintf(name, sizeof name, "reactions.%s", dotted);
    if (nerve_modset_resolve(s_modules, name, &site->res, why, sizeof why) != 0)
        fail_msg("resolve %s: %s", name, why);
    assert_int_equal(site->res.role, NERVE_ROLE_REACTIONS);
    site->zone = msgpack_zone_new(4096);
    site->host.zone = msgpack_zone_new(4096);
    assert_non_null(site->zone);
    assert_non_null(site->host.zone);
    site->args = s_json(site->zone, args);
    site->api = s_api;
    site->output_cap = sizeof site->output;
    if (!site->res.fn->prepare)
        return 0;
    return site->res.fn->prepare(&site->args, &site->prepared, site->err, sizeof site->err);
}

static void s_close(site_t *site)
{
    if (site->prepared && site->res.fn->release)
        site->res.fn->release(site->prepared);
    msgpack_zone_free(site->zone);
    msgpack_zone_free(site->host.zone);
}

/*  Runs the reaction with args rendered as JSON (NULL: the prepared ones). */
static int s_run(site_t *site, const char *rendered)
{
    msgpack_object args = rendered ? s_json(site->zone, rendered) : site->args;
    nerve_event_ref_t ev;
    memset(&ev, 0, sizeof ev);
    snprintf(ev.tag, sizeof ev.tag, "/client/load/web1");
    snprintf(ev.host, sizeof ev.host, "web1");
    uint8_t id[NERVE_ID_SIZE] = {1, 2, 3};
    memset(site->output, 0x55, sizeof site->output);
    nerve_reaction_call_t call = {
        .fn = site->res.fn->name,
        .args = &args,
        .prepared = site->prepared,
        .event = &ev,
        .rule = "load_avg",
        .reaction_id = id,
        .timeout_ms = 1000,
        .api = &site->api,
        .host = &site->host,
        .output = site->output,
        .output_cap = site->output_cap,
    };
    int rc = site->res.fn->fn.reaction(&call);
    site->output_len = call.output_len;
    site->rc = call.rc;
    if (site->output_cap) {
        assert_true(call.output_len < site->output_cap);
        assert_int_equal(site->output[call.output_len], '\0');
    }
    return rc;
}

static void s_refused(const char *dotted, const char *args, const char *reason)
{
    site_t site;
    assert_int_not_equal(s_open(&site, dotted, args), 0);
    assert_null(site.prepared);
    if (!strstr(site.err, reason))
        fail_msg("%s %s: reason '%s' lacks '%s'", dotted, args, site.err, reason);
    s_close(&site);
}

/*  Runs the reaction with fd 2 redirected into a scratch file; returns
    what was logged (static buffer). */
static const char *s_run_logged(site_t *site, const char *rendered, int *rc)
{
    static char logged[4096];
    char dir[] = "/tmp/nerve-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/stderr", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    dup2(fd, STDERR_FILENO);
    *rc = s_run(site, rendered);
    dup2(saved, STDERR_FILENO);
    close(saved);
    ssize_t n = pread(fd, logged, sizeof logged - 1, 0);
    logged[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    rmdir(dir);
    return logged;
}

/* --- eventer --- */

static void test_eventer_fire_event_emits_tag_and_data(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "eventer.fire_event",
                            "{\"tag\": \"/reconfig/lb\", \"data\": {\"x\": \"y\", \"n\": 2}}"),
                     0);
    assert_int_equal(s_run(&s, NULL), 0);
    assert_int_equal(s.rc, 0);
    assert_int_equal(s.host.emits, 1);
    assert_string_equal(s.host.tag, "/reconfig/lb");
    msgpack_object want = s_json(s.zone, "{\"x\": \"y\", \"n\": 2}");
    assert_true(nerve_obj_equal(&s.host.data, &want));
    assert_string_equal(s.output, "fired /reconfig/lb");
    assert_int_equal(s.output_len, strlen("fired /reconfig/lb"));
    s_close(&s);
}

static void test_eventer_fire_event_defaults_data_to_an_empty_map(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "eventer.fire_event", "{\"tag\": \"/deploy/done\"}"), 0);
    assert_int_equal(s_run(&s, NULL), 0);
    assert_int_equal(s.host.emits, 1);
    assert_int_equal(s.host.data.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(s.host.data.via.map.size, 0);
    s_close(&s);
}

static void test_eventer_fire_event_checks_a_rendered_tag(void **state)
{
    site_t s;
    /* A template cannot be checked at load time… */
    assert_int_equal(s_open(&s, "eventer.fire_event", "{\"tag\": \"{{event.data.next}}\"}"), 0);
    /* …so a bad rendering fails the reaction, naming the reason. */
    assert_int_equal(s_run(&s, "{\"tag\": \"deploy/done\"}"), NERVE_EINVAL);
    assert_int_equal(s.rc, NERVE_EINVAL);
    assert_int_equal(s.host.emits, 0);
    assert_non_null(strstr(s.output, "tag_no_slash"));
    assert_int_equal(s_run(&s, "{\"tag\": null}"), NERVE_EINVAL);
    assert_non_null(strstr(s.output, "fire_event needs 'tag'"));
    assert_int_equal(s.host.emits, 0);
    assert_int_equal(s_run(&s, "{\"tag\": \"/deploy/web1\"}"), 0);
    assert_string_equal(s.host.tag, "/deploy/web1");
    s_close(&s);
}

static void test_eventer_fire_event_reports_a_full_queue(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "eventer.fire_event", "{\"tag\": \"/x\"}"), 0);
    s.host.emit_rc = NERVE_EFULL;
    assert_int_equal(s_run(&s, NULL), NERVE_EFULL);
    assert_int_equal(s.rc, NERVE_EFULL);
    assert_string_equal(s.output, "fire_event /x failed: queue full");
    s_close(&s);
}

static void test_eventer_fire_event_needs_an_api_that_can_emit(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "eventer.fire_event", "{\"tag\": \"/x\"}"), 0);
    s.api.size = offsetof(nerve_host_api_t, emit); /* an older, smaller api */
    assert_int_equal(s_run(&s, NULL), NERVE_ESTATE);
    assert_int_equal(s.host.emits, 0);
    assert_non_null(strstr(s.output, "cannot emit"));
    s_close(&s);
}

static void test_eventer_prepare_refuses_a_missing_or_bad_tag(void **state)
{
    s_refused("eventer.fire_event", "{}", "fire_event needs 'tag' (an event tag");
    s_refused("eventer.fire_event", "{\"tag\": 5}", "fire_event needs 'tag'");
    s_refused("eventer.fire_event", "{\"tag\": \"reconfig\"}",
              "fire_event: 'tag' \"reconfig\" is not a valid tag (tag_no_slash)");
    s_refused("eventer.fire_event", "{\"tag\": \"\"}", "(tag_empty)");
}

/* --- log --- */

static void test_log_write_logs_the_message_with_rule_and_event(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "log.write",
                            "{\"message\": \"{{event.host}} is hot\", "
                            "\"level\": \"warn\"}"),
                     0);
    int rc;
    const char *logged =
        s_run_logged(&s, "{\"message\": \"web1 is hot\", \"level\": \"warn\"}", &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(s.rc, 0);
    assert_string_equal(s.output, "web1 is hot");
    assert_non_null(strstr(logged, "WARN reaction: web1 is hot (rule load_avg, event "
                                   "/client/load/web1 from web1)\n"));
    /* The default level is info. */
    logged = s_run_logged(&s, "{\"message\": \"plain\"}", &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(logged, "INFO reaction: plain"));
    s_close(&s);
}

static void test_log_write_keeps_control_characters_out_of_the_log_line(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "log.write", "{\"message\": \"{{event.data.msg}}\"}"), 0);
    int rc;
    const char *logged =
        s_run_logged(&s, "{\"message\": \"ok\\nERROR forged: line\\u001b[2J\"}", &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(logged, "ok ERROR forged: line [2J (rule"));
    assert_int_equal(strchr(logged, '\n') - logged, (long)strlen(logged) - 1); /* one line */
    assert_string_equal(s.output, "ok\nERROR forged: line\x1b[2J"); /* output as rendered */
    s_close(&s);
}

static void test_log_write_shows_a_message_that_is_not_a_string(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "log.write", "{\"message\": \"{{value}}\"}"), 0);
    int rc;
    const char *logged = s_run_logged(&s, "{\"message\": 42}", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(s.output, "42");
    assert_non_null(strstr(logged, "reaction: 42 (rule"));
    s_close(&s);
}

static void test_log_write_truncates_output_to_its_cap(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "log.write", "{\"message\": \"hello world\"}"), 0);
    s.output_cap = 6;
    int rc;
    s_run_logged(&s, NULL, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(s.output_len, 5);
    assert_string_equal(s.output, "hello");
    s_close(&s);
}

static void test_log_write_refuses_a_bad_rendered_level(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "log.write", "{\"message\": \"m\", \"level\": \"{{x}}\"}"), 0);
    int rc;
    const char *logged = s_run_logged(&s, "{\"message\": \"m\", \"level\": \"loud\"}", &rc);
    assert_int_equal(rc, NERVE_EINVAL);
    assert_int_equal(s.rc, NERVE_EINVAL);
    assert_non_null(strstr(s.output, "'level' must be one of error, warn, info, debug"));
    assert_null(strstr(logged, "reaction: m"));
    s_close(&s);
}

static void test_log_prepare_refuses_a_missing_message_or_bad_level(void **state)
{
    s_refused("log.write", "{}", "write needs 'message' (a string)");
    s_refused("log.write", "{\"message\": 5}", "write needs 'message' (a string)");
    s_refused("log.write", "{\"message\": \"m\", \"level\": \"loud\"}",
              "write: 'level' must be one of error, warn, info, debug");
    s_refused("log.write", "{\"message\": \"m\", \"level\": 3}", "write: 'level' must be one of");
}

/* --- store --- */

static void test_store_set_writes_value_under_scope_and_key(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "store.set",
                            "{\"register\": \"maintenance\", \"key\": "
                            "\"{{event.data.host}}\", \"value\": true}"),
                     0);
    assert_int_equal(
        s_run(&s, "{\"register\": \"maintenance\", \"key\": \"db2\", \"value\": {\"on\": true}}"),
        0);
    assert_int_equal(s.rc, 0);
    assert_int_equal(s.host.sets, 1);
    assert_string_equal(s.host.scope, "maintenance");
    assert_string_equal(s.host.key, "db2");
    msgpack_object want = s_json(s.zone, "{\"on\": true}");
    assert_true(nerve_obj_equal(&s.host.value, &want));
    assert_non_null(strstr(s.output, "set maintenance/db2 = "));
    s_close(&s);
}

static void test_store_set_defaults_key_to_the_event_host(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "store.set", "{\"register\": \"deploys\", \"value\": 7}"), 0);
    assert_int_equal(s_run(&s, NULL), 0);
    assert_string_equal(s.host.scope, "deploys");
    assert_string_equal(s.host.key, "web1");
    assert_int_equal(s.host.value.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(s.host.value.via.u64, 7);
    assert_string_equal(s.output, "set deploys/web1 = 7");
    /* A key rendered from a number is written as its decimal text. */
    assert_int_equal(s_run(&s, "{\"register\": \"deploys\", \"key\": -12, \"value\": 1}"), 0);
    assert_string_equal(s.host.key, "-12");
    s_close(&s);
}

static void test_store_set_reports_a_failed_write(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "store.set", "{\"register\": \"r\", \"value\": 1}"), 0);
    s.host.set_rc = NERVE_ESTATE; /* what an actor's api answers */
    assert_int_equal(s_run(&s, NULL), NERVE_ESTATE);
    assert_int_equal(s.rc, NERVE_ESTATE);
    assert_string_equal(s.output, "set r/web1 failed: invalid state");
    s.api.size = offsetof(nerve_host_api_t, register_set);
    assert_int_equal(s_run(&s, NULL), NERVE_ESTATE);
    assert_int_equal(s.host.sets, 1);
    assert_non_null(strstr(s.output, "keeps no registers"));
    s_close(&s);
}

static void test_store_set_refuses_bad_rendered_args(void **state)
{
    site_t s;
    assert_int_equal(s_open(&s, "store.set", "{\"register\": \"{{x}}\", \"value\": 1}"), 0);
    assert_int_equal(s_run(&s, "{\"register\": \"\", \"value\": 1}"), NERVE_EINVAL);
    assert_non_null(strstr(s.output, "set needs 'register'"));
    assert_int_equal(s_run(&s, "{\"register\": \"r\", \"key\": [1], \"value\": 1}"), NERVE_EINVAL);
    assert_non_null(strstr(s.output, "'key' must be a string"));
    assert_int_equal(s_run(&s, "{\"register\": \"r\"}"), NERVE_EINVAL);
    assert_non_null(strstr(s.output, "set needs 'value'"));
    assert_int_equal(s.host.sets, 0);
    s_close(&s);
}

static void test_store_prepare_refuses_missing_or_bad_args(void **state)
{
    s_refused("store.set", "{\"value\": 1}", "set needs 'register'");
    s_refused("store.set", "{\"register\": \"\", \"value\": 1}", "set needs 'register'");
    s_refused("store.set", "{\"register\": [\"a\"], \"value\": 1}", "set needs 'register'");
    s_refused("store.set", "{\"register\": \"r\", \"key\": {}, \"value\": 1}",
              "set: 'key' must be a string of 1 to 255 bytes");
    s_refused("store.set", "{\"register\": \"r\"}", "set needs 'value' (what to store)");
    char longname[400];
    snprintf(longname, sizeof longname, "{\"register\": \"%0300d\", \"value\": 1}", 0);
    s_refused("store.set", longname, "at most 255 bytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eventer_fire_event_emits_tag_and_data),
        cmocka_unit_test(test_eventer_fire_event_defaults_data_to_an_empty_map),
        cmocka_unit_test(test_eventer_fire_event_checks_a_rendered_tag),
        cmocka_unit_test(test_eventer_fire_event_reports_a_full_queue),
        cmocka_unit_test(test_eventer_fire_event_needs_an_api_that_can_emit),
        cmocka_unit_test(test_eventer_prepare_refuses_a_missing_or_bad_tag),
        cmocka_unit_test(test_log_write_logs_the_message_with_rule_and_event),
        cmocka_unit_test(test_log_write_keeps_control_characters_out_of_the_log_line),
        cmocka_unit_test(test_log_write_shows_a_message_that_is_not_a_string),
        cmocka_unit_test(test_log_write_truncates_output_to_its_cap),
        cmocka_unit_test(test_log_write_refuses_a_bad_rendered_level),
        cmocka_unit_test(test_log_prepare_refuses_a_missing_message_or_bad_level),
        cmocka_unit_test(test_store_set_writes_value_under_scope_and_key),
        cmocka_unit_test(test_store_set_defaults_key_to_the_event_host),
        cmocka_unit_test(test_store_set_reports_a_failed_write),
        cmocka_unit_test(test_store_set_refuses_bad_rendered_args),
        cmocka_unit_test(test_store_prepare_refuses_missing_or_bad_args),
    };
    return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
