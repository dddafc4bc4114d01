/*  test_engine.c — the decision engine (manager/engine.c) over real parts.

    Each test loads a rules file through the real loader (built-in modules
    from NERVE_MODULE_BUILD_DIR), opens a real register store in a scratch
    directory, and feeds hand-built events to engine_process(). A sink
    records every reaction handed out — rule, function, rendered target and
    args, the value — as JSON, so assertions read like the rules they test.

    Remote reactions (`target:`) are never resolved on the manager, so the
    tests use made-up names like reactions.test.capture for them: only the
    sink sees them. Local reactions use real modules (eventer).

    Receive times are explicit (T0 + offsets), so `for`, `cooldown` and the
    registers' windows are deterministic: no sleeps.
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

#include "engine.h"
#include "regstore.h"
#include "rules.h"

#define T0        1700000000000000000ull /* a receive time, ns since the epoch */
#define SEC       1000000000ull
#define FIRES_MAX 64

/*  One reaction the sink received. */
typedef struct fire {
    char rule[64];
    char fn[64];
    char target[128]; /* "(local)" for a local reaction */
    char args[512];   /* JSON */
    char value[64];   /* JSON, "(none)" when the rule saw no value */
    const nerve_event_t *ev;
} fire_t;

typedef struct {
    char dir[64];
    char rules_path[128];
    regstore_t *store;
    engine_t *engine;
    ruleset_t *rs;
    msgpack_zone *zone; /* event data */
    nerve_event_t ev;
    fire_t fires[FIRES_MAX];
    size_t nfires;
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
    strcpy(fx->dir, "/tmp/nerve-engine-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    char store[128], err[256] = "";
    snprintf(store, sizeof store, "%s/store", fx->dir);
    fx->store = regstore_open(store, 0, err, sizeof err);
    if (!fx->store)
        fail_msg("regstore_open: %s", err);
    fx->engine = engine_new(fx->store);
    assert_non_null(fx->engine);
    fx->zone = msgpack_zone_new(4096);
    assert_non_null(fx->zone);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    engine_destroy(&fx->engine);
    engine_destroy(&fx->engine); /* safe twice */
    ruleset_destroy(&fx->rs);
    regstore_destroy(&fx->store);
    msgpack_zone_free(fx->zone);
    nftw(fx->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/*  Writes `text` as <scratch>/rules.yaml (scopes are "rules/<name>"),
    loads it and hands it to the engine. */
static void s_rules(fixture_t *fx, const char *text)
{
    snprintf(fx->rules_path, sizeof fx->rules_path, "%s/rules.yaml", fx->dir);
    FILE *f = fopen(fx->rules_path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    const char *dirs[] = {NERVE_MODULE_BUILD_DIR};
    nerve_conf_error_t err;
    if (ruleset_load(fx->rules_path, dirs, 1, &fx->rs, &err) != 0)
        fail_msg("rules: %s", err.message);
    assert_int_equal(engine_set_ruleset(fx->engine, fx->rs), 0);
    assert_ptr_equal(engine_ruleset(fx->engine), fx->rs);
}

/*  Fills fx->ev: tag, host, data from JSON. */
static const nerve_event_t *s_event(fixture_t *fx, const char *tag, const char *host,
                                    const char *json)
{
    nerve_event_t *ev = &fx->ev;
    memset(ev, 0, sizeof *ev);
    snprintf(ev->tag, sizeof ev->tag, "%s", tag);
    ev->tag_len = strlen(ev->tag);
    snprintf(ev->host, sizeof ev->host, "%s", host);
    memset(ev->id, 0xab, sizeof ev->id);
    ev->ts = T0;
    char err[128];
    if (nerve_obj_from_json(fx->zone, json, strlen(json), &ev->data, err, sizeof err) != 0)
        fail_msg("bad test JSON %s: %s", json, err);
    return ev;
}

static void s_json(const msgpack_object *o, char *buf, size_t size)
{
    size_t n = nerve_obj_to_json_buf(o, buf, size);
    assert_true(n < size);
}

static void s_sink_reaction(void *arg, const rule_def_t *rule, const reaction_def_t *def,
                            const nerve_event_t *ev, const msgpack_object *value,
                            const msgpack_object *args, const char *target)
{
    fixture_t *fx = arg;
    assert_true(fx->nfires < FIRES_MAX);
    fire_t *f = &fx->fires[fx->nfires++];
    snprintf(f->rule, sizeof f->rule, "%s", rule->name);
    snprintf(f->fn, sizeof f->fn, "%s", def->fn);
    snprintf(f->target, sizeof f->target, "%s", target ? target : "(local)");
    assert_int_equal(target == NULL, def->local);
    s_json(args, f->args, sizeof f->args);
    if (value)
        s_json(value, f->value, sizeof f->value);
    else
        snprintf(f->value, sizeof f->value, "(none)");
    f->ev = ev;
}

/*  Processes one event at T0 + at_s seconds; returns how many reactions
    it handed to the sink (they are in fx->fires from the old count on). */
static size_t s_process_at(fixture_t *fx, uint64_t at_ns, const char *tag, const char *host,
                           const char *json)
{
    size_t before = fx->nfires;
    engine_sink_t sink = {.arg = fx, .reaction = s_sink_reaction};
    engine_process(fx->engine, s_event(fx, tag, host, json), T0 + at_ns, &sink);
    return fx->nfires - before;
}

static size_t s_process(fixture_t *fx, const char *tag, const char *host, const char *json)
{
    return s_process_at(fx, 0, tag, host, json);
}

static const fire_t *s_last(const fixture_t *fx)
{
    assert_true(fx->nfires > 0);
    return &fx->fires[fx->nfires - 1];
}

static const engine_rule_stats_t *s_rule_stats(const fixture_t *fx, const char *name)
{
    size_t n;
    const engine_rule_stats_t *st = engine_rule_stats(fx->engine, &n);
    const rule_def_t *r = ruleset_find(fx->rs, name);
    assert_non_null(r);
    assert_true(r->index < n);
    return &st[r->index];
}

/*  The stored bytes of a register ('R') or gate ('F') state, copied into
    buf; returns the length, or -1 when there is none. */
static long s_stored(fixture_t *fx, char kind, const char *scope, const char *key, void *buf,
                     size_t size)
{
    char skey[512];
    size_t klen = engine_register_key(kind, scope, key, skey, sizeof skey);
    assert_true(klen > 0);
    const void *val;
    size_t vlen;
    int rc = regstore_get(fx->store, skey, klen, &val, &vlen);
    if (rc == NERVE_ENOENT)
        return -1;
    assert_int_equal(rc, 0);
    assert_true(vlen <= size);
    memcpy(buf, val, vlen);
    return (long)vlen;
}

/*  Runs engine_explain and returns the report as JSON. */
static void s_explain_at(fixture_t *fx, uint64_t at_ns, const char *tag, const char *host,
                         const char *json, char *out, size_t outsize)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    assert_int_equal(engine_explain(fx->engine, s_event(fx, tag, host, json), T0 + at_ns, &pk), 0);
    msgpack_zone *zone = msgpack_zone_new(4096);
    msgpack_object report;
    size_t off = 0;
    assert_int_equal(msgpack_unpack(buf.data, buf.size, &off, zone, &report),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, buf.size); /* exactly one value: the map counts are right */
    s_json(&report, out, outsize);
    msgpack_zone_free(zone);
    msgpack_sbuffer_destroy(&buf);
}

/* -------------------------------------------------------- value selection */

static const char s_value_rules[] =
    "/v/field:\n"
    "  rules:\n"
    "    - by_field:\n"
    "        rule: rules.simple.exists\n"
    "        field: disk.used\n"
    "        reactions:\n"
    "          - reactions.test.capture: {target: all, v: '{{value}}'}\n"
    "/v/plain:\n"
    "  rules:\n"
    "    - plain:\n"
    "        rule: rules.simple.exists\n"
    "        reactions:\n"
    "          - reactions.test.capture: {target: all, v: '{{value}}'}\n";

static void test_engine_value_is_the_field_path_when_field_is_set(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx, s_value_rules);
    assert_int_equal(s_process(fx, "/v/field", "web1", "{\"disk\":{\"used\":91},\"value\":1}"), 1);
    assert_string_equal(s_last(fx)->args, "{\"v\":91}");
    assert_string_equal(s_last(fx)->value, "91");
    /* The field is missing: no value, even though data.value exists. */
    assert_int_equal(s_process(fx, "/v/field", "web1", "{\"value\":1}"), 0);
    assert_int_equal(s_process(fx, "/v/field", "web1", "{\"disk\":\"sda\"}"), 0);
}

static void test_engine_value_is_data_when_data_is_a_number(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx, s_value_rules);
    assert_int_equal(s_process(fx, "/v/plain", "web1", "7.5"), 1);
    assert_string_equal(s_last(fx)->args, "{\"v\":7.5}");
    assert_int_equal(s_process(fx, "/v/plain", "web1", "-4"), 1);
    assert_string_equal(s_last(fx)->args, "{\"v\":-4}");
}

static void test_engine_value_is_data_value_when_data_is_a_map(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx, s_value_rules);
    assert_int_equal(s_process(fx, "/v/plain", "web1", "{\"other\":9,\"value\":3}"), 1);
    assert_string_equal(s_last(fx)->args, "{\"v\":3}");
    /* Neither a number nor a map with value: the rule sees nothing. */
    assert_int_equal(s_process(fx, "/v/plain", "web1", "{\"other\":9}"), 0);
    assert_int_equal(s_process(fx, "/v/plain", "web1", "\"text\""), 0);
    assert_int_equal(s_process(fx, "/v/plain", "web1", "[1,2]"), 0);
}

/* --------------------------------------------------------------- registers */

static void test_engine_register_state_is_kept_per_rule_and_key(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx, "/reg:\n"
                "  rules:\n"
                "    - last:\n"
                "        rule: rules.simple.exists\n"
                "        register: registers.store.set\n"
                "    - by_disk:\n"
                "        rule: rules.simple.exists\n"
                "        register: registers.store.set\n"
                "        key: '{{event.data.disk}}'\n");
    s_process(fx, "/reg", "web1", "{\"value\":1,\"disk\":\"sda\"}");
    s_process(fx, "/reg", "web2", "{\"value\":2,\"disk\":\"sdb\"}");
    s_process(fx, "/reg", "web1", "{\"value\":3,\"disk\":\"sdb\"}");

    /* registers.store keeps the packed value: positive fixints here. */
    uint8_t v[16];
    assert_int_equal(s_stored(fx, 'R', "rules/last", "web1", v, sizeof v), 1);
    assert_int_equal(v[0], 3);
    assert_int_equal(s_stored(fx, 'R', "rules/last", "web2", v, sizeof v), 1);
    assert_int_equal(v[0], 2);
    assert_int_equal(s_stored(fx, 'R', "rules/by_disk", "sda", v, sizeof v), 1);
    assert_int_equal(v[0], 1);
    assert_int_equal(s_stored(fx, 'R', "rules/by_disk", "sdb", v, sizeof v), 1);
    assert_int_equal(v[0], 3);
    assert_int_equal(s_stored(fx, 'R', "rules/by_disk", "web1", v, sizeof v), -1);
    /* No for/cooldown: no gate state is written at all. */
    assert_int_equal(s_stored(fx, 'F', "rules/last", "web1", v, sizeof v), -1);
}

static void test_engine_rule_sees_the_registers_output_for_its_key(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx, "/sum:\n"
                "  rules:\n"
                "    - total:\n"
                "        rule: rules.simple.gt\n"
                "        threshold: 10\n"
                "        register: registers.aggregate.sum\n"
                "        period: 3600\n"
                "        reactions:\n"
                "          - reactions.test.capture: {target: all, total: '{{value}}'}\n");
    assert_int_equal(s_process_at(fx, 0, "/sum", "web1", "6"), 0);
    assert_int_equal(s_process_at(fx, 1 * SEC, "/sum", "web2", "6"), 0);
    assert_int_equal(s_process_at(fx, 2 * SEC, "/sum", "web1", "6"), 1);
    assert_string_equal(s_last(fx)->args, "{\"total\":12.0}");
    assert_string_equal(s_last(fx)->value, "12.0");
    assert_int_equal(s_process_at(fx, 3 * SEC, "/sum", "web2", "4.5"), 1);
    assert_string_equal(s_last(fx)->args, "{\"total\":10.5}");
}

/* ------------------------------------------------------------------ chains */

static void test_engine_chains_fold_all_four_ops(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx,
            "/t/ops:\n"
            "  rules:\n"
            "    - r_and:\n"
            "        {rule: rules.simple.gt, threshold: 0, field: x, chain: [{AND: other}],\n"
            "         reactions: [{reactions.test.and: {target: all}}]}\n"
            "    - r_or:\n"
            "        {rule: rules.simple.gt, threshold: 0, field: x, chain: [{OR: other}],\n"
            "         reactions: [{reactions.test.or: {target: all}}]}\n"
            "    - r_and_not:\n"
            "        {rule: rules.simple.gt, threshold: 0, field: x,\n"
            "         chain: [{AND_NOT: other}],\n"
            "         reactions: [{reactions.test.and_not: {target: all}}]}\n"
            "    - r_or_not:\n"
            "        {rule: rules.simple.gt, threshold: 0, field: x, chain: [{OR_NOT: other}],\n"
            "         reactions: [{reactions.test.or_not: {target: all}}]}\n"
            "/never:\n"
            "  rules:\n"
            "    - other: {rule: rules.simple.gt, threshold: 0, field: y}\n");
    static const struct {
        const char *data;
        const char *fired;
    } cases[] = {
        {"{\"x\":1,\"y\":1}", "r_and r_or r_or_not "},
        {"{\"x\":1,\"y\":0}", "r_or r_and_not r_or_not "},
        {"{\"x\":0,\"y\":1}", "r_or "},
        {"{\"x\":0,\"y\":0}", "r_or_not "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fx->nfires = 0;
        s_process(fx, "/t/ops", "web1", cases[i].data);
        char fired[128] = "";
        for (size_t f = 0; f < fx->nfires; f++) {
            strcat(fired, fx->fires[f].rule);
            strcat(fired, " ");
        }
        if (strcmp(fired, cases[i].fired) != 0)
            fail_msg("%s: fired '%s', expected '%s'", cases[i].data, fired, cases[i].fired);
    }
    /* `other` was evaluated once per event, not once per rule naming it. */
    assert_int_equal(s_rule_stats(fx, "other")->evaluated, 4);
    assert_int_equal(s_rule_stats(fx, "other")->fired, 0);
}

static void test_engine_chained_rule_is_evaluated_at_most_once_per_event(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx, "/t/once:\n"
                "  rules:\n"
                "    - a:\n"
                "        rule: rules.simple.exists\n"
                "        chain: [{OR: counted}]\n"
                "    - b:\n"
                "        rule: rules.simple.exists\n"
                "        chain: [{AND: counted}]\n"
                "    - counted:\n"
                "        rule: rules.simple.ge\n"
                "        threshold: 1\n"
                "        register: registers.aggregate.count\n"
                "        period: 3600\n"
                "        reactions:\n"
                "          - reactions.test.capture: {target: all, n: '{{value}}'}\n");
    /* a and b both ask for `counted` before its own turn in the block:
       its register must still count this event once. */
    fx->nfires = 0;
    s_process_at(fx, 0, "/t/once", "web1", "5");
    assert_int_equal(fx->nfires, 1);
    assert_string_equal(fx->fires[0].rule, "counted");
    assert_string_equal(fx->fires[0].args, "{\"n\":1}");
    assert_int_equal(s_rule_stats(fx, "a")->evaluated, 1);
    assert_int_equal(s_rule_stats(fx, "b")->evaluated, 1);
    assert_int_equal(s_rule_stats(fx, "counted")->evaluated, 1);
    engine_stats_t st;
    engine_stats(fx->engine, &st);
    assert_int_equal(st.rules_evaluated, 3);

    fx->nfires = 0;
    s_process_at(fx, 1 * SEC, "/t/once", "web1", "5");
    assert_string_equal(fx->fires[0].args, "{\"n\":2}");
    assert_int_equal(s_rule_stats(fx, "counted")->evaluated, 2);
}

static void test_engine_rule_reached_only_through_chains_counts_once(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx, "/t/once:\n"
                "  rules:\n"
                "    - a:\n"
                "        rule: rules.simple.exists\n"
                "        chain: [{OR: counted}]\n"
                "    - b:\n"
                "        rule: rules.simple.exists\n"
                "        chain: [{OR: counted}]\n"
                "/never:\n"
                "  rules:\n"
                "    - counted:\n"
                "        rule: rules.simple.ge\n"
                "        threshold: 1\n"
                "        register: registers.aggregate.count\n"
                "        period: 3600\n");
    s_process_at(fx, 0, "/t/once", "web1", "5");
    assert_int_equal(s_rule_stats(fx, "counted")->evaluated, 1);
    /* The store holds a count of 1: explain adds this event without
       storing it, so it reports 2 (3 if the first event counted twice). */
    char report[4096];
    s_explain_at(fx, 1 * SEC, "/t/once", "web1", "5", report, sizeof report);
    const char *counted = strstr(report, "{\"name\":\"counted\"");
    assert_non_null(counted);
    assert_non_null(strstr(counted, "\"register_had_state\":true,\"value\":2,"));
    assert_non_null(strstr(counted, "\"verdict\":\"chained_only\""));
}

/* ------------------------------------------------------------ for, cooldown */

static void test_engine_for_fires_after_n_consecutive_trues_and_resets(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx, "/t/for:\n"
                "  rules:\n"
                "    - three:\n"
                "        rule: rules.simple.gt\n"
                "        threshold: 5\n"
                "        for: 3\n"
                "        reactions:\n"
                "          - reactions.test.capture: {target: all, h: '{{event.host}}'}\n");
    assert_int_equal(s_process(fx, "/t/for", "web1", "9"), 0);
    assert_int_equal(s_process(fx, "/t/for", "web1", "9"), 0);
    assert_int_equal(s_process(fx, "/t/for", "web2", "9"), 0); /* its own streak: 1 */
    assert_int_equal(s_process(fx, "/t/for", "web1", "9"), 1);
    assert_string_equal(s_last(fx)->args, "{\"h\":\"web1\"}");
    assert_int_equal(s_process(fx, "/t/for", "web1", "9"), 1); /* still true: still firing */
    assert_int_equal(s_process(fx, "/t/for", "web1", "1"), 0); /* resets the streak */
    assert_int_equal(s_process(fx, "/t/for", "web1", "9"), 0);
    assert_int_equal(s_process(fx, "/t/for", "web1", "9"), 0);
    assert_int_equal(s_process(fx, "/t/for", "web1", "9"), 1);
    assert_int_equal(s_process(fx, "/t/for", "web2", "9"), 0);
    assert_int_equal(s_process(fx, "/t/for", "web2", "9"), 1);
    assert_string_equal(s_last(fx)->args, "{\"h\":\"web2\"}");

    engine_stats_t st;
    engine_stats(fx->engine, &st);
    assert_int_equal(st.events, 11);
    assert_int_equal(st.rules_true, 10);
    assert_int_equal(st.rules_fired, 4);
    assert_int_equal(st.suppressed_for, 6);
    assert_int_equal(st.reactions, 4);
}

static void test_engine_cooldown_silences_each_key_on_its_own(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx, "/t/cool:\n"
                "  rules:\n"
                "    - cool:\n"
                "        rule: rules.simple.gt\n"
                "        threshold: 5\n"
                "        cooldown: 30s\n"
                "        reactions:\n"
                "          - reactions.test.capture: {target: all, h: '{{event.host}}'}\n");
    assert_int_equal(s_process_at(fx, 0, "/t/cool", "web1", "9"), 1);
    assert_int_equal(s_process_at(fx, 1 * SEC, "/t/cool", "web1", "9"), 0);
    assert_int_equal(s_process_at(fx, 1 * SEC, "/t/cool", "web2", "9"), 1);
    assert_int_equal(s_process_at(fx, 30 * SEC - 1, "/t/cool", "web1", "9"), 0);
    assert_int_equal(s_process_at(fx, 30 * SEC, "/t/cool", "web1", "9"), 1);
    assert_int_equal(s_process_at(fx, 30 * SEC, "/t/cool", "web2", "9"), 0);
    assert_int_equal(s_process_at(fx, 31 * SEC, "/t/cool", "web2", "9"), 1);
    /* A false evaluation in between does not end the cooldown. */
    assert_int_equal(s_process_at(fx, 40 * SEC, "/t/cool", "web1", "1"), 0);
    assert_int_equal(s_process_at(fx, 45 * SEC, "/t/cool", "web1", "9"), 0);
    assert_int_equal(s_process_at(fx, 60 * SEC, "/t/cool", "web1", "9"), 1);

    engine_stats_t st;
    engine_stats(fx->engine, &st);
    assert_int_equal(st.rules_fired, 5);
    assert_int_equal(st.suppressed_cooldown, 4);
    assert_int_equal(s_rule_stats(fx, "cool")->fired, 5);
    assert_int_equal(s_rule_stats(fx, "cool")->evaluated, 10);
}

/* -------------------------------------------------------------------- sink */

static void test_engine_sink_receives_rendered_args_and_targets(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx,
            "/t/sink:\n"
            "  rules:\n"
            "    - r:\n"
            "        rule: rules.simple.gt\n"
            "        threshold: 0\n"
            "        reactions:\n"
            "          - reactions.test.remote:\n"
            "              target: 'host:{{event.host}}'\n"
            "              deadline: 5s\n"
            "              n: '{{event.data.n}}'\n"
            "              text: '{{rule}} saw {{value}} on {{event.host}} at {{event.tag}}'\n"
            "              value: '{{value}}'\n"
            "              nested: {list: ['{{event.data.n}}', fixed]}\n"
            "          - reactions.test.group: {target: 'group:db'}\n"
            "          - reactions.eventer.fire_event: {tag: /out, data: {h: '{{event.host}}'}}\n");
    assert_int_equal(s_process(fx, "/t/sink", "web1", "{\"value\":2.5,\"n\":42}"), 3);

    const fire_t *f = &fx->fires[0];
    assert_string_equal(f->rule, "r");
    assert_string_equal(f->fn, "reactions.test.remote");
    assert_string_equal(f->target, "host:web1");
    assert_string_equal(f->args, "{\"n\":42,\"text\":\"r saw 2.5 on web1 at /t/sink\","
                                 "\"value\":2.5,\"nested\":{\"list\":[42,\"fixed\"]}}");
    assert_string_equal(f->value, "2.5");
    assert_ptr_equal(f->ev, &fx->ev);

    assert_string_equal(fx->fires[1].target, "group:db");
    assert_string_equal(fx->fires[1].args, "{}");

    assert_string_equal(fx->fires[2].fn, "reactions.eventer.fire_event");
    assert_string_equal(fx->fires[2].target, "(local)");
    assert_string_equal(fx->fires[2].args, "{\"tag\":\"/out\",\"data\":{\"h\":\"web1\"}}");
}

/* ----------------------------------------------------------------- explain */

static const char s_gated_rules[] =
    "/t/x:\n"
    "  rules:\n"
    "    - gated:\n"
    "        rule: rules.simple.gt\n"
    "        threshold: 5\n"
    "        register: registers.aggregate.max\n"
    "        period: 3600\n"
    "        for: 3\n"
    "        cooldown: 1h\n"
    "        chain: [{OR: helper}]\n"
    "        reactions:\n"
    "          - reactions.test.capture: {target: 'host:{{event.host}}', v: '{{value}}'}\n"
    "          - reactions.eventer.fire_event: {tag: /out}\n"
    "/never:\n"
    "  rules:\n"
    "    - helper:\n"
    "        rule: rules.simple.exists\n"
    "        field: nothing\n";

/*  Found by fuzz_control: explain nests what it shows up to five levels
    down, so data nested within the wire's 32 levels could make a report
    of 33 that the CLI (msgpack-c) cannot read. Such a value is shown as a
    note; the report stays readable. */
static void test_engine_explain_of_deeply_nested_data_stays_readable(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx, "/d/x:\n"
                "  rules:\n"
                "    - deep:\n"
                "        rule: rules.simple.exists\n"
                "        reactions:\n"
                "          - reactions.eventer.fire_event: {tag: /out, data: '{{value}}'}\n");
    char json[256] = "{\"value\": ";
    size_t n = strlen(json);
    for (int i = 0; i < 29; i++)
        json[n++] = '[';
    json[n++] = '1';
    for (int i = 0; i < 29; i++)
        json[n++] = ']';
    json[n++] = '}';
    json[n] = '\0';
    char report[16384];
    s_explain_at(fx, 1 * SEC, "/d/x", "web1", json, report, sizeof report);
    assert_non_null(strstr(report, "(a value nested too deep to show)"));
}

static void test_engine_explain_changes_no_register_or_gate_state(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx, s_gated_rules);
    assert_int_equal(s_process_at(fx, 0, "/t/x", "web1", "9"), 0); /* streak 1 */

    uint8_t reg[4096], gate[64], reg2[4096], gate2[64];
    long reglen = s_stored(fx, 'R', "rules/gated", "web1", reg, sizeof reg);
    long gatelen = s_stored(fx, 'F', "rules/gated", "web1", gate, sizeof gate);
    assert_true(reglen > 0);
    assert_true(gatelen > 0);
    engine_stats_t before, after;
    engine_stats(fx->engine, &before);
    uint64_t evaluated = s_rule_stats(fx, "gated")->evaluated;

    /* Twice: a written streak would read 3 ("fire") the second time. */
    char report[4096];
    for (int i = 0; i < 2; i++) {
        s_explain_at(fx, 1 * SEC, "/t/x", "web1", "20", report, sizeof report);
        assert_non_null(strstr(report, "\"verdict\":\"waiting_for\",\"for\":{\"need\":3,"
                                       "\"streak\":2}"));
    }
    s_explain_at(fx, 1 * SEC, "/t/x", "web9", "20", report, sizeof report);

    assert_int_equal(s_stored(fx, 'R', "rules/gated", "web1", reg2, sizeof reg2), reglen);
    assert_memory_equal(reg, reg2, (size_t)reglen);
    assert_int_equal(s_stored(fx, 'F', "rules/gated", "web1", gate2, sizeof gate2), gatelen);
    assert_memory_equal(gate, gate2, (size_t)gatelen);
    assert_int_equal(s_stored(fx, 'R', "rules/gated", "web9", reg2, sizeof reg2), -1);
    assert_int_equal(s_stored(fx, 'F', "rules/gated", "web9", gate2, sizeof gate2), -1);
    engine_stats(fx->engine, &after);
    assert_memory_equal(&before, &after, sizeof before);
    assert_int_equal(s_rule_stats(fx, "gated")->evaluated, evaluated);
    assert_int_equal(fx->nfires, 0);

    /* Processing goes on as if explain never ran: streak 2, then 3 fires,
       with max 9 (the explained 20 was never stored). */
    assert_int_equal(s_process_at(fx, 2 * SEC, "/t/x", "web1", "9"), 0);
    assert_int_equal(s_process_at(fx, 3 * SEC, "/t/x", "web1", "9"), 2);
    assert_string_equal(fx->fires[0].args, "{\"v\":9.0}");

    /* Now in cooldown; explaining shows it and still does not fire. */
    s_explain_at(fx, 4 * SEC, "/t/x", "web1", "9", report, sizeof report);
    assert_non_null(strstr(report, "\"verdict\":\"cooldown\",\"for\":{\"need\":3,\"streak\":4},"
                                   "\"cooldown\":{\"ms\":3600000,\"remaining_ms\":3599000}"));
    assert_int_equal(fx->nfires, 2);
}

static void test_engine_explain_report_has_every_step(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx, s_gated_rules);
    s_process_at(fx, 0, "/t/x", "web1", "9");
    s_process_at(fx, 1 * SEC, "/t/x", "web1", "9");

    char report[4096], want[4096];
    s_explain_at(fx, 2 * SEC, "/t/x", "web1", "{\"value\":20}", report, sizeof report);
    const char *p = fx->rules_path;
    snprintf(want, sizeof want,
             "{\"tag\":\"/t/x\",\"host\":\"web1\","
             "\"blocks\":[{\"glob\":\"/t/x\",\"where\":\"%s:1:1\",\"rules\":[\"gated\"]}],"
             "\"rules\":["
             "{\"name\":\"gated\",\"where\":\"%s:3:7\",\"key\":\"web1\",\"input\":20,"
             "\"register\":\"registers.aggregate.max\",\"register_had_state\":true,"
             "\"value\":20.0,\"rule\":\"rules.simple.gt\",\"own\":true,"
             "\"chain\":[{\"op\":\"OR\",\"rule\":\"helper\",\"before\":true,\"value\":false,"
             "\"after\":true}],"
             "\"result\":true,\"error\":null,\"verdict\":\"fire\","
             "\"for\":{\"need\":3,\"streak\":3},\"cooldown\":{\"ms\":3600000,\"remaining_ms\":0},"
             "\"reactions\":["
             "{\"fn\":\"reactions.test.capture\",\"target\":\"host:web1\",\"args\":{\"v\":20.0}},"
             "{\"fn\":\"reactions.eventer.fire_event\",\"target\":\"manager\","
             "\"args\":{\"tag\":\"/out\"}}]},"
             "{\"name\":\"helper\",\"where\":\"%s:16:7\",\"key\":\"web1\",\"input\":null,"
             "\"register\":null,\"register_had_state\":false,\"value\":null,"
             "\"rule\":\"rules.simple.exists\",\"own\":false,\"chain\":[],\"result\":false,"
             "\"error\":null,\"verdict\":\"chained_only\",\"for\":{\"need\":0,\"streak\":0},"
             "\"cooldown\":{\"ms\":0,\"remaining_ms\":0},\"reactions\":[]}]}",
             p, p, p);
    assert_string_equal(report, want);
    assert_int_equal(fx->nfires, 0);
}

static void test_engine_explain_of_an_unmatched_event_is_empty(void **state)
{
    fixture_t *fx = *state;
    char report[512];
    s_explain_at(fx, 0, "/t/x", "web1", "1", report, sizeof report); /* no ruleset at all */
    assert_string_equal(report, "{\"tag\":\"/t/x\",\"host\":\"web1\",\"blocks\":[],\"rules\":[]}");
    s_rules(fx, s_gated_rules);
    s_explain_at(fx, 0, "/other", "web1", "1", report, sizeof report);
    assert_string_equal(report,
                        "{\"tag\":\"/other\",\"host\":\"web1\",\"blocks\":[],\"rules\":[]}");
}

static void test_engine_explain_reports_a_rule_error(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx, "/t/e:\n"
                "  rules:\n"
                "    - numeric: {rule: rules.simple.gt, threshold: 1}\n");
    char report[4096];
    s_explain_at(fx, 0, "/t/e", "web1", "{\"value\":\"high\"}", report, sizeof report);
    assert_non_null(strstr(report, "\"own\":false,\"chain\":[],\"result\":false,"
                                   "\"error\":\"wrong type\",\"verdict\":\"false\""));
    engine_stats_t st;
    engine_stats(fx->engine, &st);
    assert_int_equal(st.rule_errors, 0); /* explain counts nothing */
}

/* ------------------------------------------------------------ errors, stats */

static void test_engine_rule_error_is_counted_and_does_not_fire(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx, "/t/e:\n"
                "  rules:\n"
                "    - numeric:\n"
                "        rule: rules.simple.gt\n"
                "        threshold: 1\n"
                "        reactions: [{reactions.test.capture: {target: all}}]\n");
    assert_int_equal(s_process(fx, "/t/e", "web1", "{\"value\":\"high\"}"), 0);
    assert_int_equal(s_process(fx, "/t/e", "web1", "{\"value\":2}"), 1);
    engine_stats_t st;
    engine_stats(fx->engine, &st);
    assert_int_equal(st.rule_errors, 1);
    assert_int_equal(st.rules_evaluated, 2);
    assert_int_equal(st.rules_true, 1);
}

static void test_engine_register_refusing_a_value_is_counted_as_an_error(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx, "/t/e:\n"
                "  rules:\n"
                "    - mean:\n"
                "        rule: rules.simple.gt\n"
                "        threshold: 1\n"
                "        register: registers.aggregate.avg\n"
                "        reactions: [{reactions.test.capture: {target: all}}]\n");
    /* registers.aggregate returns NERVE_ETYPE for a string and promises
       the manager counts it; the rule then sees no value (false). */
    assert_int_equal(s_process(fx, "/t/e", "web1", "{\"value\":\"high\"}"), 0);
    engine_stats_t st;
    engine_stats(fx->engine, &st);
    assert_int_equal(st.rule_errors, 1);
    assert_int_equal(s_process(fx, "/t/e", "web1", "{\"value\":2}"), 1);
    engine_stats(fx->engine, &st);
    assert_int_equal(st.rule_errors, 1);
}

static void test_engine_counts_events_that_match_nothing(void **state)
{
    fixture_t *fx = *state;
    engine_sink_t sink = {.arg = fx, .reaction = s_sink_reaction};
    engine_process(fx->engine, s_event(fx, "/a", "web1", "1"), T0, &sink); /* no ruleset */
    s_rules(fx, s_value_rules);
    assert_int_equal(s_process(fx, "/nothing/here", "web1", "1"), 0);
    assert_int_equal(s_process(fx, "/v/plain", "web1", "1"), 1);
    engine_stats_t st;
    engine_stats(fx->engine, &st);
    assert_int_equal(st.events, 3);
    assert_int_equal(st.matched, 1);
    assert_int_equal(st.rules_evaluated, 1);
}

static void test_engine_new_ruleset_resets_rule_stats(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx, s_value_rules);
    s_process(fx, "/v/plain", "web1", "1");
    assert_int_equal(s_rule_stats(fx, "plain")->evaluated, 1);
    assert_int_equal(engine_set_ruleset(fx->engine, NULL), 0);
    size_t n = 99;
    engine_rule_stats(fx->engine, &n);
    assert_int_equal(n, 0);
    assert_int_equal(engine_set_ruleset(fx->engine, fx->rs), 0);
    assert_int_equal(s_rule_stats(fx, "plain")->evaluated, 0);
}

/*  engine_prefetch() + engine_process_matched() decide exactly as
    engine_process() does (the server's grouped path), prefetch hints are
    one per register or gate state of the matched rules, and a match made
    against an older ruleset is not trusted: the event is matched again. */
static void test_engine_prefetch_then_process_matched_decides_the_same(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx, "/p/*:\n"
                "  rules:\n"
                "    - avg:\n"
                "        rule: rules.simple.gt\n"
                "        register: registers.aggregate.avg\n"
                "        period: 10\n"
                "        threshold: 5\n"
                "        cooldown: 30s\n"
                "        reactions:\n"
                "          - reactions.test.capture: {target: all, h: '{{event.host}}'}\n"
                "    - plain:\n"
                "        rule: rules.simple.gt\n"
                "        threshold: 100\n");
    engine_match_t m;
    uint64_t hints[8];
    engine_sink_t sink = {.arg = fx, .reaction = s_sink_reaction};
    const nerve_event_t *ev = s_event(fx, "/p/x", "web1", "9");
    /* avg: its register and its cooldown gate; plain: nothing to load. */
    assert_int_equal(engine_prefetch(fx->engine, ev, &m, hints, 8), 2);
    assert_true(m.matched);
    assert_int_equal(m.n, 1);
    /* The store keys it rendered, kept for deciding: register, then gate. */
    assert_int_equal(m.nkeys, 2);
    char want[512];
    size_t wlen = engine_register_key('R', "rules/avg", "web1", want, sizeof want);
    assert_int_equal(m.keys[0].kind, 'R');
    assert_int_equal(m.keys[0].len, wlen);
    assert_memory_equal(m.keys[0].bytes, want, wlen);
    wlen = engine_register_key('F', "rules/avg", "web1", want, sizeof want);
    assert_int_equal(m.keys[1].kind, 'F');
    assert_memory_equal(m.keys[1].bytes, want, wlen);
    for (int i = 0; i < 2; i++)
        regstore_prefetch_entry(fx->store, hints[i]);
    engine_process_matched(fx->engine, ev, &m, T0, &sink);
    assert_int_equal(fx->nfires, 1);
    assert_string_equal(s_last(fx)->args, "{\"h\":\"web1\"}");
    char buf[512];
    assert_true(s_stored(fx, 'R', "rules/avg", "web1", buf, sizeof buf) > 0);
    assert_true(s_stored(fx, 'F', "rules/avg", "web1", buf, sizeof buf) > 0);
    /* The cooldown state written above is seen on the grouped path too. */
    ev = s_event(fx, "/p/x", "web1", "9");
    assert_int_equal(engine_prefetch(fx->engine, ev, &m, hints, 1), 1); /* max respected */
    engine_process_matched(fx->engine, ev, &m, T0 + SEC, &sink);
    assert_int_equal(fx->nfires, 1);
    /* No match at all: nothing to prefetch, the event is still counted. */
    ev = s_event(fx, "/q/x", "web1", "9");
    assert_int_equal(engine_prefetch(fx->engine, ev, &m, hints, 8), 0);
    engine_process_matched(fx->engine, ev, &m, T0, &sink);
    engine_stats_t st;
    engine_stats(fx->engine, &st);
    assert_int_equal(st.events, 3);
    assert_int_equal(st.matched, 2);
    /* A match made before the ruleset changed is redone against the new
       one, even when the new one is at the same address (here: the same
       ruleset set again, with a match whose blocks are made wrong). */
    ev = s_event(fx, "/p/x", "web2", "9");
    assert_int_equal(engine_prefetch(fx->engine, ev, &m, hints, 8), 2);
    assert_int_equal(engine_set_ruleset(fx->engine, NULL), 0);
    engine_process_matched(fx->engine, ev, &m, T0, &sink);
    assert_int_equal(fx->nfires, 1); /* no rules now: nothing fires */
    assert_int_equal(engine_set_ruleset(fx->engine, fx->rs), 0);
    m.n = 0; /* stale, and would match nothing if it were trusted */
    engine_process_matched(fx->engine, ev, &m, T0, &sink);
    assert_int_equal(fx->nfires, 2);
    assert_string_equal(s_last(fx)->args, "{\"h\":\"web2\"}");
}

/*  A store key too long to keep from prefetching is rendered again when
    deciding: the state lands under the same key either way. */
static void test_engine_prefetch_long_key_is_rendered_again(void **state)
{
    fixture_t *fx = *state;
    s_rules(fx, "/p/*:\n"
                "  rules:\n"
                "    - avg:\n"
                "        rule: rules.simple.gt\n"
                "        register: registers.aggregate.sum\n"
                "        threshold: 100\n"
                "        key: '{{event.host}}-{{event.host}}-{{event.host}}'\n");
    char host[64];
    memset(host, 'h', 60);
    host[60] = '\0';
    const nerve_event_t *ev = s_event(fx, "/p/x", host, "9");
    engine_match_t m;
    uint64_t hints[4];
    engine_sink_t sink = {.arg = fx, .reaction = s_sink_reaction};
    assert_int_equal(engine_prefetch(fx->engine, ev, &m, hints, 4), 1);
    assert_int_equal(m.nkeys, 0); /* 1 + 9 + 1 + 182 bytes: over ENGINE_KEY_AHEAD_MAX */
    engine_process_matched(fx->engine, ev, &m, T0, &sink);
    char key[256], buf[4096];
    snprintf(key, sizeof key, "%s-%s-%s", host, host, host);
    assert_true(s_stored(fx, 'R', "rules/avg", key, buf, sizeof buf) > 0);
}

static void test_engine_register_key_is_kind_scope_nul_key(void **state)
{
    (void)state;
    char buf[16];
    assert_int_equal(engine_register_key('R', "s/r", "web1", buf, sizeof buf), 9);
    assert_memory_equal(buf, "Rs/r\0web1", 9);
    assert_int_equal(engine_register_key('F', "", "", buf, sizeof buf), 2);
    assert_memory_equal(buf, "F\0", 2);
    assert_int_equal(engine_register_key('R', "scope", "0123456789", buf, sizeof buf), 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_engine_value_is_the_field_path_when_field_is_set),
        T(test_engine_value_is_data_when_data_is_a_number),
        T(test_engine_value_is_data_value_when_data_is_a_map),
        T(test_engine_register_state_is_kept_per_rule_and_key),
        T(test_engine_rule_sees_the_registers_output_for_its_key),
        T(test_engine_chains_fold_all_four_ops),
        T(test_engine_chained_rule_is_evaluated_at_most_once_per_event),
        T(test_engine_rule_reached_only_through_chains_counts_once),
        T(test_engine_for_fires_after_n_consecutive_trues_and_resets),
        T(test_engine_cooldown_silences_each_key_on_its_own),
        T(test_engine_sink_receives_rendered_args_and_targets),
        T(test_engine_explain_changes_no_register_or_gate_state),
        T(test_engine_explain_of_deeply_nested_data_stays_readable),
        T(test_engine_explain_report_has_every_step),
        T(test_engine_explain_of_an_unmatched_event_is_empty),
        T(test_engine_explain_reports_a_rule_error),
        T(test_engine_rule_error_is_counted_and_does_not_fire),
        T(test_engine_register_refusing_a_value_is_counted_as_an_error),
        T(test_engine_counts_events_that_match_nothing),
        T(test_engine_new_ruleset_resets_rule_stats),
        T(test_engine_prefetch_then_process_matched_decides_the_same),
        T(test_engine_prefetch_long_key_is_rendered_again),
        T(test_engine_register_key_is_kind_scope_nul_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
