/*  test_presence.c — the live actor table (manager/presence.c).

    Heartbeats are fed as the server feeds them: the event's tag and data
    and a monotonic time in ms, chosen by the test, so "three silent
    intervals" is checked to the millisecond without sleeping. The sweep
    runs at most once a second (presence.c), which the expiry tests step
    around explicitly.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nerve/value.h>

#include "presence.h"

#define HB 1000 /* heartbeat, ms */

typedef struct {
    presence_t *p;
    msgpack_zone *zone;
    char lost[8][NERVE_HOST_MAX + 1]; /* the first 8 names lost */
    size_t nlost;
    char matched[8][NERVE_HOST_MAX + 1];
    size_t nmatched;
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->p = presence_new(HB);
    assert_non_null(fx->p);
    fx->zone = msgpack_zone_new(1024);
    assert_non_null(fx->zone);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    presence_destroy(&fx->p);
    presence_destroy(&fx->p); /* safe twice */
    msgpack_zone_free(fx->zone);
    free(fx);
    return 0;
}

static msgpack_object s_json(fixture_t *fx, const char *json)
{
    msgpack_object o;
    char err[128];
    if (nerve_obj_from_json(fx->zone, json, strlen(json), &o, err, sizeof err) != 0)
        fail_msg("bad test JSON %s: %s", json, err);
    return o;
}

/*  Feeds one event; returns whether presence took it as a heartbeat and
    sets *joined. */
static bool s_beat(fixture_t *fx, const char *tag, const char *json, uint64_t now_ms, bool *joined,
                   char *id, size_t idsize)
{
    msgpack_object data = s_json(fx, json);
    return presence_on_event(fx->p, tag, &data, now_ms, joined, id, idsize);
}

/*  A heartbeat from `id` that must be taken; returns `joined`. */
static bool s_alive(fixture_t *fx, const char *id, uint64_t now_ms)
{
    char tag[300], got[NERVE_HOST_MAX + 1] = "";
    snprintf(tag, sizeof tag, "/nerve/actor/%s/alive", id);
    bool joined = true;
    assert_true(s_beat(fx, tag, "{\"groups\":[\"web\"],\"version\":\"0.1.0\",\"uptime_s\":5}",
                       now_ms, &joined, got, sizeof got));
    assert_string_equal(got, id);
    return joined;
}

static void s_on_lost(void *arg, const char *id)
{
    fixture_t *fx = arg;
    if (fx->nlost < 8)
        snprintf(fx->lost[fx->nlost], sizeof fx->lost[0], "%s", id);
    fx->nlost++;
}

static void s_on_match(void *arg, const actor_info_t *a)
{
    fixture_t *fx = arg;
    assert_true(fx->nmatched < 8);
    snprintf(fx->matched[fx->nmatched++], sizeof fx->matched[0], "%s", a->id);
}

static const actor_info_t *s_find(const fixture_t *fx, const char *id)
{
    for (size_t i = 0; i < presence_count(fx->p); i++)
        if (strcmp(presence_at(fx->p, i)->id, id) == 0)
            return presence_at(fx->p, i);
    return NULL;
}

/* ------------------------------------------------------------------ alive */

static void test_presence_alive_tag_records_the_actor_and_its_data(void **state)
{
    fixture_t *fx = *state;
    char id[64] = "";
    bool joined = false;
    assert_true(s_beat(fx, "/nerve/actor/web1/alive",
                       "{\"groups\":[\"web\",\"eu\",7],\"version\":\"1.2.3\",\"uptime_s\":42.9}",
                       100, &joined, id, sizeof id));
    assert_true(joined);
    assert_string_equal(id, "web1");
    assert_int_equal(presence_count(fx->p), 1);
    const actor_info_t *a = presence_at(fx->p, 0);
    assert_string_equal(a->id, "web1");
    assert_string_equal(a->version, "1.2.3");
    assert_int_equal(a->uptime_s, 42);
    assert_int_equal(a->ngroups, 2); /* 7 is not a group name */
    assert_string_equal(a->groups[0], "web");
    assert_string_equal(a->groups[1], "eu");
    assert_int_equal(a->last_seen_ms, 100);
    assert_true(a->joined_ns > 0);
    assert_null(presence_at(fx->p, 1));
}

static void test_presence_only_actor_alive_tags_are_heartbeats(void **state)
{
    fixture_t *fx = *state;
    static const char *const not_alive[] = {
        "/nerve/actor/web1/joined",
        "/nerve/actor/web1/lost",
        "/nerve/actor//alive",    /* empty id */
        "/nerve/actor/alive",     /* no id at all */
        "/nerve/actor/a/b/alive", /* an id may not contain '/' */
        "/nerve/actors/web1/alive",
        "/nerve/actor/web1/alive/x",
        "/nerve/actor/web1/alivex",
        "/client/nerve/actor/web1/alive",
        "nerve/actor/web1/alive",
        "/nerve/result/web1",
        "",
    };
    for (size_t i = 0; i < sizeof not_alive / sizeof not_alive[0]; i++) {
        char id[64] = "untouched";
        bool joined = true;
        if (s_beat(fx, not_alive[i], "{}", 100, &joined, id, sizeof id))
            fail_msg("'%s' taken as a heartbeat", not_alive[i]);
        assert_false(joined);
    }
    assert_int_equal(presence_count(fx->p), 0);

    /* Odd but legal ids: one segment, any other bytes. */
    assert_true(s_alive(fx, "a", 1));
    assert_true(s_alive(fx, "db-1.eu.example.com", 1));
    assert_true(s_alive(fx, "alive", 1));
    assert_int_equal(presence_count(fx->p), 3);
}

static void test_presence_heartbeat_data_of_the_wrong_shape_is_harmless(void **state)
{
    fixture_t *fx = *state;
    char id[64];
    bool joined;
    assert_true(s_beat(fx, "/nerve/actor/web1/alive", "42", 1, &joined, id, sizeof id));
    assert_true(joined);
    assert_true(s_beat(fx, "/nerve/actor/web1/alive",
                       "{\"groups\":\"web\",\"version\":7,\"uptime_s\":-3}", 2, &joined, id,
                       sizeof id));
    assert_false(joined);
    const actor_info_t *a = presence_at(fx->p, 0);
    assert_int_equal(a->ngroups, 0);
    assert_string_equal(a->version, "");
    assert_int_equal(a->uptime_s, 0);
    assert_int_equal(a->last_seen_ms, 2);
}

static void test_presence_actor_joins_once(void **state)
{
    fixture_t *fx = *state;
    assert_true(s_alive(fx, "web1", 0));
    assert_false(s_alive(fx, "web1", HB));
    assert_false(s_alive(fx, "web1", 2 * HB));
    assert_true(s_alive(fx, "web2", 2 * HB));
    assert_int_equal(presence_count(fx->p), 2);
    assert_int_equal(s_find(fx, "web1")->last_seen_ms, 2 * HB);
}

/* ----------------------------------------------------------------- expiry */

static void test_presence_actor_is_lost_after_three_silent_intervals(void **state)
{
    fixture_t *fx = *state;
    s_alive(fx, "web1", 0);
    s_alive(fx, "web2", 0);
    /* Exactly three intervals of silence is not yet lost… */
    presence_expire(fx->p, 3 * HB, s_on_lost, fx);
    assert_int_equal(fx->nlost, 0);
    s_alive(fx, "web2", 3 * HB);
    /* …more than three is (the next sweep, a second later). */
    presence_expire(fx->p, 4 * HB, s_on_lost, fx);
    assert_int_equal(fx->nlost, 1);
    assert_string_equal(fx->lost[0], "web1");
    assert_int_equal(presence_count(fx->p), 1);
    assert_null(s_find(fx, "web1"));
    assert_non_null(s_find(fx, "web2"));
    /* Lost once: the next sweep does not report it again. */
    presence_expire(fx->p, 5 * HB, s_on_lost, fx);
    assert_int_equal(fx->nlost, 1);
}

static void test_presence_uses_the_actors_own_heartbeat_when_it_says(void **state)
{
    fixture_t *fx = *state;
    bool joined;
    char got[NERVE_HOST_MAX + 1];
    /* slow beats every 10 s (the manager's default here is HB = 1 s) */
    assert_true(s_beat(fx, "/nerve/actor/slow/alive", "{\"heartbeat_ms\":10000}", 0, &joined,
                       got, sizeof got));
    s_alive(fx, "fast", 0);
    presence_expire(fx->p, 5 * HB, s_on_lost, fx);
    assert_int_equal(fx->nlost, 1);
    assert_string_equal(fx->lost[0], "fast");
    assert_non_null(s_find(fx, "slow"));
    assert_int_equal(s_find(fx, "slow")->heartbeat_ms, 10000);
    presence_expire(fx->p, 31 * HB, s_on_lost, fx);
    assert_int_equal(fx->nlost, 2);
    assert_string_equal(fx->lost[1], "slow");
}

static void test_presence_lost_actor_joins_again(void **state)
{
    fixture_t *fx = *state;
    s_alive(fx, "web1", 0);
    presence_expire(fx->p, 4 * HB, s_on_lost, fx);
    assert_int_equal(fx->nlost, 1);
    assert_true(s_alive(fx, "web1", 5 * HB));
    assert_int_equal(presence_count(fx->p), 1);
}

static void test_presence_expiry_sweeps_at_most_once_a_second(void **state)
{
    fixture_t *fx = *state;
    s_alive(fx, "web1", 0);
    presence_expire(fx->p, 2999, s_on_lost, fx); /* sweeps; next not before 3999 */
    presence_expire(fx->p, 3500, s_on_lost, fx); /* silent 3.5 s, but no sweep yet */
    assert_int_equal(fx->nlost, 0);
    presence_expire(fx->p, 3999, s_on_lost, fx);
    assert_int_equal(fx->nlost, 1);
}

static void test_presence_default_heartbeat_is_five_seconds(void **state)
{
    fixture_t *fx = *state;
    presence_destroy(&fx->p);
    fx->p = presence_new(0);
    s_alive(fx, "web1", 0);
    presence_expire(fx->p, 15000, s_on_lost, fx);
    assert_int_equal(fx->nlost, 0);
    presence_expire(fx->p, 16000, s_on_lost, fx);
    assert_int_equal(fx->nlost, 1);
}

static void test_presence_many_actors_expire_independently(void **state)
{
    fixture_t *fx = *state;
    char id[32];
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "host%03d", i);
        assert_true(s_alive(fx, id, 0));
    }
    for (int i = 0; i < 100; i += 2) { /* the even ones keep beating */
        snprintf(id, sizeof id, "host%03d", i);
        assert_false(s_alive(fx, id, 3 * HB));
    }
    presence_expire(fx->p, 4 * HB, s_on_lost, fx);
    assert_int_equal(fx->nlost, 50);
    assert_int_equal(presence_count(fx->p), 50);
    for (size_t i = 0; i < presence_count(fx->p); i++) {
        int n = atoi(presence_at(fx->p, i)->id + 4);
        assert_int_equal(n % 2, 0);
    }
}

/* ----------------------------------------------------------------- match */

static void test_presence_glob_matches_live_actor_ids(void **state)
{
    fixture_t *fx = *state;
    s_alive(fx, "web1", 0);
    s_alive(fx, "web10", 0);
    s_alive(fx, "db1", 0);
    s_alive(fx, "web2", 0);
    assert_int_equal(presence_match(fx->p, "web?", s_on_match, fx), 2);
    assert_string_equal(fx->matched[0], "web1");
    assert_string_equal(fx->matched[1], "web2");
    fx->nmatched = 0;
    assert_int_equal(presence_match(fx->p, "web*", s_on_match, fx), 3);
    fx->nmatched = 0;
    assert_int_equal(presence_match(fx->p, "*", s_on_match, fx), 4);
    fx->nmatched = 0;
    assert_int_equal(presence_match(fx->p, "[dw]*1", s_on_match, fx), 2);
    fx->nmatched = 0;
    assert_int_equal(presence_match(fx->p, "cache*", s_on_match, fx), 0);
    assert_int_equal(fx->nmatched, 0);
    /* A lost actor is matched no more. */
    s_alive(fx, "web1", 3500);
    presence_expire(fx->p, 3500, s_on_lost, fx);
    assert_int_equal(fx->nlost, 3);
    fx->nmatched = 0;
    assert_int_equal(presence_match(fx->p, "*", s_on_match, fx), 1);
    assert_string_equal(fx->matched[0], "web1");
}

#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_presence_alive_tag_records_the_actor_and_its_data),
        T(test_presence_only_actor_alive_tags_are_heartbeats),
        T(test_presence_heartbeat_data_of_the_wrong_shape_is_harmless),
        T(test_presence_actor_joins_once),
        T(test_presence_actor_is_lost_after_three_silent_intervals),
        T(test_presence_uses_the_actors_own_heartbeat_when_it_says),
        T(test_presence_lost_actor_joins_again),
        T(test_presence_expiry_sweeps_at_most_once_a_second),
        T(test_presence_default_heartbeat_is_five_seconds),
        T(test_presence_many_actors_expire_independently),
        T(test_presence_glob_matches_live_actor_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
