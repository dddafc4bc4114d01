/*  test_registers.c — registers.aggregate, registers.store and
    registers.state through the real module loader.

    A register is driven as the manager drives it: a sequence of
    (now_ns, value) calls, the state each call writes copied into our own
    buffer and handed back on the next call. Times start on a whole minute,
    so the 1-second buckets of a 60-second period line up with them.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nerve/module.h>

#define SEC 1000000000ull
#define T0  (1700000040ull * SEC) /* a whole minute */

static nerve_modset_t *s_modules;

/*  One register call site and the state the manager would keep for it. */
typedef struct {
    nerve_resolved_t res;
    void *prepared;
    msgpack_zone *zone; /* params, values and outputs */
    msgpack_object params;
    uint8_t state[NERVE_REGISTER_STATE_MAX];
    size_t state_len;
    bool has_state;
    uint8_t scratch[NERVE_REGISTER_STATE_MAX];
    size_t cap;     /* new_state_cap to offer */
    size_t written; /* new_state_len the last call left */
    msgpack_object out;
    char err[256];
} reg_t;

static int s_group_setup(void **state)
{
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

/*  Resolves registers.<dotted> and prepares it; returns prepare's code. */
static int s_open(reg_t *r, const char *dotted, const char *params)
{
    memset(r, 0, sizeof *r);
    char name[96], why[512];
    snprintf(name, sizeof name, "registers.%s", dotted);
    if (nerve_modset_resolve(s_modules, name, &r->res, why, sizeof why) != 0)
        fail_msg("resolve %s: %s", name, why);
    assert_int_equal(r->res.role, NERVE_ROLE_REGISTERS);
    r->zone = msgpack_zone_new(4096);
    assert_non_null(r->zone);
    r->params = s_json(r->zone, params);
    r->cap = sizeof r->scratch;
    if (!r->res.fn->prepare)
        return 0;
    return r->res.fn->prepare(&r->params, &r->prepared, r->err, sizeof r->err);
}

static reg_t *s_new(const char *dotted, const char *params)
{
    reg_t *r = malloc(sizeof *r);
    assert_non_null(r);
    int rc = s_open(r, dotted, params);
    if (rc != 0)
        fail_msg("prepare %s %s: %s", dotted, params, r->err);
    return r;
}

static void s_free(reg_t *r)
{
    if (r->prepared && r->res.fn->release)
        r->res.fn->release(r->prepared);
    msgpack_zone_free(r->zone);
    free(r);
}

/*  One call at now_ns with value (NULL: absent). Threads the state. */
static int s_feed(reg_t *r, uint64_t now_ns, const msgpack_object *value)
{
    nerve_event_t ev;
    memset(&ev, 0, sizeof ev);
    nerve_register_call_t call = {
        .params = &r->params,
        .prepared = r->prepared,
        .value = value,
        .event = &ev,
        .now_ns = now_ns,
        .state = r->has_state ? r->state : NULL,
        .state_len = r->has_state ? r->state_len : 0,
        .new_state = r->scratch,
        .new_state_cap = r->cap,
        .new_state_len = SIZE_MAX,
        .zone = r->zone,
        .out = {.type = MSGPACK_OBJECT_NIL},
    };
    int rc = r->res.fn->fn.reg(&call);
    r->written = call.new_state_len;
    if (call.new_state_len == 0) {
        r->has_state = false;
    } else if (call.new_state_len != SIZE_MAX) {
        assert_true(call.new_state_len <= r->cap);
        memcpy(r->state, r->scratch, call.new_state_len);
        r->state_len = call.new_state_len;
        r->has_state = true;
    }
    r->out = call.out;
    return rc;
}

/*  Feeds a number and returns the output, which must be a float. */
static double s_num(reg_t *r, uint64_t now_ns, double v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_FLOAT64, .via.f64 = v};
    int rc = s_feed(r, now_ns, &o);
    if (rc != 0)
        fail_msg("%s(%g) at %llu returned %d", r->res.fn->name, v, (unsigned long long)now_ns, rc);
    if (r->out.type != MSGPACK_OBJECT_FLOAT64)
        fail_msg("%s(%g): output type %d, not a float", r->res.fn->name, v, r->out.type);
    return r->out.via.f64;
}

static int64_t s_int_out(reg_t *r, uint64_t now_ns, const char *json)
{
    msgpack_object o = s_json(r->zone, json);
    int rc = s_feed(r, now_ns, &o);
    if (rc != 0)
        fail_msg("%s(%s) returned %d", r->res.fn->name, json, rc);
    if (r->out.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        fail_msg("%s(%s): output type %d, not an integer", r->res.fn->name, json, r->out.type);
    return (int64_t)r->out.via.u64;
}

static void s_assert_close(double got, double want, int line)
{
    if (!(fabs(got - want) <= 1e-9 * (1 + fabs(want))))
        fail_msg("line %d: got %.17g, want %.17g", line, got, want);
}

#define assert_close(got, want) s_assert_close((got), (want), __LINE__)

static void s_refused(const char *dotted, const char *params, const char *reason)
{
    reg_t *r = malloc(sizeof *r);
    assert_non_null(r);
    assert_int_not_equal(s_open(r, dotted, params), 0);
    assert_null(r->prepared);
    if (!strstr(r->err, reason))
        fail_msg("%s %s: reason '%s' lacks '%s'", dotted, params, r->err, reason);
    s_free(r);
}

/* --- aggregate --- */

static void test_aggregate_resolves_under_the_seeds_register_spelling(void **state)
{
    nerve_resolved_t a, b;
    char why[512];
    assert_int_equal(nerve_modset_resolve(s_modules, "register.aggregate.avg", &a, why, sizeof why),
                     0);
    assert_int_equal(
        nerve_modset_resolve(s_modules, "registers.aggregate.avg", &b, why, sizeof why), 0);
    assert_ptr_equal(a.fn, b.fn);
    assert_string_equal(a.module->name, "aggregate");
}

static void test_aggregate_avg_forgets_values_older_than_period(void **state)
{
    reg_t *r = s_new("aggregate.avg", "{\"period\": 60, \"threshold\": 20}");
    assert_close(s_num(r, T0, 10), 10);
    assert_close(s_num(r, T0 + 1 * SEC, 20), 15);
    assert_close(s_num(r, T0 + 2 * SEC, 30), 20);
    assert_close(s_num(r, T0 + 59 * SEC, 40), 25);
    /* 60 s after the first sample, it has left the window. */
    assert_close(s_num(r, T0 + 60 * SEC, 50), (20 + 30 + 40 + 50) / 4.0);
    /* Far later, only the new sample remains. */
    assert_close(s_num(r, T0 + 3600 * SEC, 7), 7);
    s_free(r);
}

static void test_aggregate_sum_count_min_max_follow_the_window(void **state)
{
    reg_t *sum = s_new("aggregate.sum", "{\"period\": 10}");
    reg_t *count = s_new("aggregate.count", "{\"period\": 10}");
    reg_t *min = s_new("aggregate.min", "{\"period\": 10}");
    reg_t *max = s_new("aggregate.max", "{\"period\": 10}");
    const double values[] = {5, 1, 9, 3};
    const uint64_t at[] = {0, 2, 4, 11}; /* seconds after T0 */
    const double sums[] = {5, 6, 15, 13}, mins[] = {5, 1, 1, 1}, maxs[] = {5, 5, 9, 9};
    const int64_t counts[] = {1, 2, 3, 3};
    for (int i = 0; i < 4; i++) {
        uint64_t t = T0 + at[i] * SEC;
        char json[32];
        snprintf(json, sizeof json, "%g", values[i]);
        assert_close(s_num(sum, t, values[i]), sums[i]);
        assert_int_equal(s_int_out(count, t, json), counts[i]);
        assert_close(s_num(min, t, values[i]), mins[i]);
        assert_close(s_num(max, t, values[i]), maxs[i]);
    }
    /* At +13 s the 1 (at +2 s) has gone: min rises, max is still 9. */
    assert_close(s_num(min, T0 + 13 * SEC, 4), 3);
    assert_close(s_num(max, T0 + 13 * SEC, 4), 9);
    /* At +15 s the 9 (at +4 s) has gone too. */
    assert_close(s_num(max, T0 + 15 * SEC, 2), 4);
    s_free(sum);
    s_free(count);
    s_free(min);
    s_free(max);
}

static void test_aggregate_last_is_the_value_and_keeps_no_state(void **state)
{
    reg_t *r = s_new("aggregate.last", "{}");
    assert_close(s_num(r, T0, 3), 3);
    assert_int_equal(r->written, SIZE_MAX);
    msgpack_object i = s_json(r->zone, "42");
    assert_int_equal(s_feed(r, T0 + SEC, &i), 0);
    assert_int_equal(r->out.type, MSGPACK_OBJECT_FLOAT64);
    assert_close(r->out.via.f64, 42);
    /* A state another function left behind is dropped. */
    r->has_state = true;
    r->state_len = 3;
    assert_close(s_num(r, T0 + 2 * SEC, 1), 1);
    assert_int_equal(r->written, 0);
    assert_false(r->has_state);
    s_free(r);
}

static void test_aggregate_rate_is_per_second_increase(void **state)
{
    reg_t *r = s_new("aggregate.rate", "{\"period\": 60}");
    msgpack_object v = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = 100};
    assert_int_equal(s_feed(r, T0, &v), 0);
    assert_int_equal(r->out.type, MSGPACK_OBJECT_NIL); /* one sample: no rate yet */
    assert_close(s_num(r, T0 + 10 * SEC, 110), 1.0);
    assert_close(s_num(r, T0 + 20 * SEC, 150), 2.5);
    s_free(r);
}

static void test_aggregate_rate_counts_a_counter_reset_from_zero(void **state)
{
    reg_t *r = s_new("aggregate.rate", "{\"period\": 60}");
    s_feed(r, T0, &(msgpack_object){.type = MSGPACK_OBJECT_FLOAT64, .via.f64 = 100});
    s_num(r, T0 + 10 * SEC, 110);
    /* The process restarted: the counter starts again at 0 and is now 5. */
    assert_close(s_num(r, T0 + 20 * SEC, 5), (10 + 5) / 20.0);
    assert_close(s_num(r, T0 + 30 * SEC, 15), (10 + 5 + 10) / 30.0);
    /* A reset between two samples in the same bucket counts the same way. */
    assert_close(s_num(r, T0 + 30 * SEC + SEC / 2, 3), (10 + 5 + 10 + 3) / 30.5);
    s_free(r);
}

static void test_aggregate_rate_measures_from_the_oldest_sample_in_the_window(void **state)
{
    reg_t *r = s_new("aggregate.rate", "{\"period\": 60}");
    /* The first sample falls a quarter into its bucket: the rate divides
       by the time since that sample, not since the bucket began. */
    msgpack_object zero = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = 0};
    assert_int_equal(s_feed(r, T0 + SEC / 4, &zero), 0);
    assert_close(s_num(r, T0 + 10 * SEC + SEC / 4, 20), 2.0);
    /* At +60.5 s the first sample's bucket has left; +10.25 s is oldest. */
    assert_close(s_num(r, T0 + 60 * SEC + SEC / 2, 120), 100 / 50.25);
    s_free(r);
}

static void test_aggregate_delta_is_newest_minus_oldest_in_window(void **state)
{
    reg_t *r = s_new("aggregate.delta", "{\"period\": 30}");
    assert_close(s_num(r, T0, 100), 0);
    assert_close(s_num(r, T0 + 10 * SEC, 90), -10);
    assert_close(s_num(r, T0 + 20 * SEC, 130), 30);
    /* At +30 s the 100 has left: oldest is 90. */
    assert_close(s_num(r, T0 + 30 * SEC, 95), 5);
    s_free(r);
}

static void test_aggregate_ewma_weights_new_values_by_alpha(void **state)
{
    reg_t *r = s_new("aggregate.ewma", "{\"alpha\": 0.5}");
    assert_close(s_num(r, T0, 10), 10);
    assert_close(s_num(r, T0 + SEC, 20), 15);
    assert_close(s_num(r, T0 + 2 * SEC, 30), 22.5);
    /* Not windowed: an hour later it carries on. */
    assert_close(s_num(r, T0 + 3600 * SEC, 22.5), 22.5);
    s_free(r);

    r = s_new("aggregate.ewma", "{}"); /* alpha 0.3 */
    s_num(r, T0, 0);
    assert_close(s_num(r, T0, 10), 3);
    s_free(r);
}

static void test_aggregate_percentile_interpolates_between_ranks(void **state)
{
    reg_t *p50 = s_new("aggregate.percentile", "{\"p\": 50}");
    reg_t *p90 = s_new("aggregate.percentile", "{\"p\": 90}");
    reg_t *p0 = s_new("aggregate.percentile", "{\"p\": 0}");
    reg_t *p100 = s_new("aggregate.percentile", "{\"p\": 100}");
    const double values[] = {7, 1, 10, 3, 9, 2, 8, 5, 4, 6}; /* 1..10 shuffled */
    for (int i = 0; i < 10; i++) {
        uint64_t t = T0 + (uint64_t)i * SEC;
        s_num(p50, t, values[i]);
        s_num(p90, t, values[i]);
        s_num(p0, t, values[i]);
        s_num(p100, t, values[i]);
    }
    assert_close(p50->out.via.f64, 5.5);
    assert_close(p90->out.via.f64, 9.1);
    assert_close(p0->out.via.f64, 1);
    assert_close(p100->out.via.f64, 10);
    /* At +68 s only the last (6, at +9 s) is left; at +69 s none. */
    assert_close(s_num(p50, T0 + 68 * SEC, 100), 53);
    assert_close(s_num(p50, T0 + 69 * SEC, 100), 100);
    s_free(p50);
    s_free(p90);
    s_free(p0);
    s_free(p100);
}

static void test_aggregate_percentile_keeps_the_newest_256_samples(void **state)
{
    reg_t *r = s_new("aggregate.percentile", "{\"p\": 0, \"period\": 60}");
    /* 300 samples, 1..300, spread over 30 s. */
    for (int i = 1; i <= 300; i++)
        s_num(r, T0 + (uint64_t)i * (SEC / 10), i);
    assert_close(r->out.via.f64, 45); /* the newest 256 are 45..300 */
    assert_true(r->state_len <= 2200);
    /* At +80 s the buckets up to +20 s (samples up to 209) have left. */
    assert_close(s_num(r, T0 + 80 * SEC, 1000), 210);
    assert_close(s_num(r, T0 + 200 * SEC, 1000), 1000);
    s_free(r);
}

static void test_aggregate_duration_string_period(void **state)
{
    reg_t *r = s_new("aggregate.count", "{\"period\": \"2m\"}");
    assert_int_equal(s_int_out(r, T0, "1"), 1);
    assert_int_equal(s_int_out(r, T0 + 100 * SEC, "1"), 2);
    assert_int_equal(s_int_out(r, T0 + 120 * SEC, "1"), 2);
    s_free(r);
}

static void test_aggregate_non_number_leaves_state_and_output_alone(void **state)
{
    reg_t *r = s_new("aggregate.avg", "{}");
    s_num(r, T0, 4);
    uint8_t before[4096];
    size_t len = r->state_len;
    memcpy(before, r->state, len);
    msgpack_object s = s_json(r->zone, "\"12\"");
    assert_int_equal(s_feed(r, T0 + SEC, &s), NERVE_ETYPE);
    assert_int_equal(r->out.type, MSGPACK_OBJECT_NIL);
    assert_int_equal(r->written, SIZE_MAX);
    msgpack_object nan = {.type = MSGPACK_OBJECT_FLOAT64, .via.f64 = NAN};
    assert_int_equal(s_feed(r, T0 + SEC, &nan), NERVE_ERANGE);
    assert_int_equal(r->written, SIZE_MAX);
    assert_int_equal(s_feed(r, T0 + SEC, NULL), 0); /* absent: no update */
    assert_int_equal(r->out.type, MSGPACK_OBJECT_NIL);
    assert_int_equal(r->written, SIZE_MAX);
    assert_int_equal(r->state_len, len);
    assert_memory_equal(r->state, before, len);
    assert_close(s_num(r, T0 + 2 * SEC, 8), 6);
    s_free(r);
}

static void test_aggregate_states_stay_small_and_versioned(void **state)
{
    const char *fns[] = {"avg",  "sum",   "count", "min",       "max",
                         "rate", "delta", "ewma",  "percentile"};
    for (size_t i = 0; i < sizeof fns / sizeof *fns; i++) {
        char name[64];
        snprintf(name, sizeof name, "aggregate.%s", fns[i]);
        reg_t *r = s_new(name, "{\"p\": 50}");
        msgpack_object v = s_json(r->zone, "1");
        assert_int_equal(s_feed(r, T0, &v), 0);
        assert_true(r->has_state);
        assert_true(r->state_len <= 2200);
        assert_int_equal(r->state[0], 1);
        s_free(r);
    }
}

static void test_aggregate_state_too_big_for_the_buffer_is_an_error(void **state)
{
    reg_t *r = s_new("aggregate.percentile", "{\"p\": 50}");
    r->cap = 100;
    msgpack_object v = s_json(r->zone, "1");
    assert_int_equal(s_feed(r, T0, &v), NERVE_ERANGE);
    assert_int_equal(r->written, SIZE_MAX);
    s_free(r);
}

static void test_aggregate_corrupt_or_foreign_state_starts_fresh(void **state)
{
    const char *fns[] = {"avg", "sum", "min", "max", "rate", "delta", "ewma", "percentile"};
    for (size_t i = 0; i < sizeof fns / sizeof *fns; i++) {
        char name[64];
        snprintf(name, sizeof name, "aggregate.%s", fns[i]);
        reg_t *r = s_new(name, "{\"p\": 50}");
        bool rate = strcmp(fns[i], "rate") == 0;
        msgpack_object one = {.type = MSGPACK_OBJECT_FLOAT64, .via.f64 = 1};
        msgpack_object two = {.type = MSGPACK_OBJECT_FLOAT64, .via.f64 = 2};
        assert_int_equal(s_feed(r, T0, &one), 0);
        size_t good_len = r->state_len;

        /* Wrong version: the 1 is forgotten, as if the key were new. */
        r->state[0] = 99;
        assert_int_equal(s_feed(r, T0 + SEC, &two), 0);
        if (rate) {
            assert_int_equal(r->out.type, MSGPACK_OBJECT_NIL); /* one sample again */
        } else {
            assert_int_equal(r->out.type, MSGPACK_OBJECT_FLOAT64);
            assert_close(r->out.via.f64, strcmp(fns[i], "delta") == 0 ? 0 : 2);
        }
        /* Truncated, and garbage of another length. */
        r->state_len = good_len - 1;
        assert_int_equal(s_feed(r, T0 + 2 * SEC, &two), 0);
        assert_int_equal(r->state_len, good_len);
        r->state_len = 5;
        memset(r->state, 0xff, 5);
        assert_int_equal(s_feed(r, T0 + 3 * SEC, &two), 0);
        assert_int_equal(r->state_len, good_len);
        s_free(r);
    }
    /* A state of another function is not read as this one's. */
    reg_t *sum = s_new("aggregate.sum", "{}");
    reg_t *max = s_new("aggregate.max", "{}");
    s_num(sum, T0, 100);
    memcpy(max->state, sum->state, sum->state_len);
    max->state_len = sum->state_len;
    max->has_state = true;
    assert_close(s_num(max, T0 + SEC, 1), 1);
    s_free(sum);
    s_free(max);
    /* A changed period (a reload) starts the window again. */
    reg_t *a60 = s_new("aggregate.avg", "{\"period\": 60}");
    reg_t *a10 = s_new("aggregate.avg", "{\"period\": 10}");
    s_num(a60, T0, 100);
    memcpy(a10->state, a60->state, a60->state_len);
    a10->state_len = a60->state_len;
    a10->has_state = true;
    assert_close(s_num(a10, T0 + SEC, 2), 2);
    s_free(a60);
    s_free(a10);
}

static void test_aggregate_random_state_bytes_never_crash(void **state)
{
    const char *fns[] = {"avg",  "sum",   "count", "min",       "max",
                         "rate", "delta", "ewma",  "percentile"};
    srand(7);
    for (size_t i = 0; i < sizeof fns / sizeof *fns; i++) {
        char name[64];
        snprintf(name, sizeof name, "aggregate.%s", fns[i]);
        reg_t *r = s_new(name, "{\"p\": 50, \"period\": 60}");
        msgpack_object v = s_json(r->zone, "1");
        assert_int_equal(s_feed(r, T0, &v), 0);
        size_t good_len = r->state_len;
        uint8_t header[24];
        memcpy(header, r->state, sizeof header);
        for (int round = 0; round < 300; round++) {
            /* Right size and a believable header, random everything else:
               the hardest case, since the header checks pass. */
            r->state_len = round % 3 == 0 ? (size_t)rand() % (good_len + 8) : good_len;
            for (size_t b = 0; b < r->state_len; b++)
                r->state[b] = (uint8_t)rand();
            if (round % 3 == 1 && r->state_len >= 24) {
                memcpy(r->state, header, 16); /* version…width; last_ns random */
            } else if (round % 3 == 2 && r->state_len >= 24) {
                memcpy(r->state, header, 24);
                r->state[3] = (uint8_t)rand();
            }
            r->has_state = true;
            int rc = s_feed(r, T0 + (uint64_t)round * SEC, &v);
            assert_int_equal(rc, 0);
            assert_true(r->out.type == MSGPACK_OBJECT_FLOAT64 ||
                        r->out.type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                        r->out.type == MSGPACK_OBJECT_NIL);
        }
        s_free(r);
    }
}

static void test_aggregate_clock_steps_back_within_or_beyond_a_window(void **state)
{
    reg_t *r = s_new("aggregate.count", "{\"period\": 60}");
    assert_int_equal(s_int_out(r, T0 + 100 * SEC, "1"), 1);
    /* 5 s back: counted with the newest bucket. */
    assert_int_equal(s_int_out(r, T0 + 95 * SEC, "1"), 2);
    /* An hour back: the state would freeze the window, so it starts again. */
    assert_int_equal(s_int_out(r, T0, "1"), 1);
    assert_int_equal(s_int_out(r, T0 + SEC, "1"), 2);
    s_free(r);
}

static void test_aggregate_prepare_refuses_bad_params_with_a_reason(void **state)
{
    s_refused("aggregate.avg", "{\"period\": 0}", "avg: 'period' must be more than 0");
    s_refused("aggregate.sum", "{\"period\": -5}", "sum: 'period' must be more than 0");
    s_refused("aggregate.max", "{\"period\": 99999999}", "at most 366 days");
    s_refused("aggregate.min", "{\"period\": \"soon\"}", "min: 'period' is not a duration");
    s_refused("aggregate.count", "{\"period\": [1]}", "count needs 'period' (seconds, a number)");
    s_refused("aggregate.rate", "{\"period\": true}", "rate needs 'period'");
    s_refused("aggregate.ewma", "{\"alpha\": 0}", "ewma needs 0 < 'alpha' <= 1 (got 0)");
    s_refused("aggregate.ewma", "{\"alpha\": 1.5}", "ewma needs 0 < 'alpha' <= 1 (got 1.5)");
    s_refused("aggregate.ewma", "{\"alpha\": \"x\"}", "ewma: 'alpha' must be a number");
    s_refused("aggregate.percentile", "{}", "percentile needs 'p' (a number from 0 to 100)");
    s_refused("aggregate.percentile", "{\"p\": \"95\"}", "percentile needs 'p'");
    s_refused("aggregate.percentile", "{\"p\": 101}", "'p' from 0 to 100 (got 101)");
    s_refused("aggregate.percentile", "{\"p\": -1}", "'p' from 0 to 100 (got -1)");
}

/* --- store --- */

static void test_store_set_keeps_the_packed_value_and_get_returns_it(void **state)
{
    reg_t *set = s_new("store.set", "{}");
    msgpack_object v = s_json(set->zone, "{\"mode\": \"maintenance\", \"until\": 1700000000}");
    assert_int_equal(s_feed(set, T0, &v), 0);
    assert_true(nerve_obj_equal(&set->out, &v));
    /* The state is exactly msgpack_pack_object's bytes: the shared format. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, v);
    assert_int_equal(set->state_len, sb.size);
    assert_memory_equal(set->state, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);

    reg_t *get = s_new("store.get", "{}");
    assert_int_equal(s_feed(get, T0, &v), 0);
    assert_int_equal(get->out.type, MSGPACK_OBJECT_NIL); /* nothing stored yet */
    memcpy(get->state, set->state, set->state_len);
    get->state_len = set->state_len;
    get->has_state = true;
    msgpack_object other = s_json(get->zone, "5");
    assert_int_equal(s_feed(get, T0 + SEC, &other), 0);
    assert_int_equal(get->written, SIZE_MAX);
    assert_true(nerve_obj_equal(&get->out, &v));
    /* The output lives in the zone, not in the state buffer. */
    memset(get->state, 0, get->state_len);
    assert_true(nerve_obj_str_eq(nerve_obj_get(&get->out, "mode"), "maintenance"));
    s_free(set);
    s_free(get);
}

static void test_store_get_on_corrupt_bytes_says_nothing(void **state)
{
    reg_t *get = s_new("store.get", "{}");
    const uint8_t truncated[] = {0x82, 0xa1, 'a'};
    memcpy(get->state, truncated, sizeof truncated);
    get->state_len = sizeof truncated;
    get->has_state = true;
    assert_int_equal(s_feed(get, T0, NULL), NERVE_EPARSE);
    assert_int_equal(get->out.type, MSGPACK_OBJECT_NIL);
    const uint8_t trailing[] = {0x01, 0x02};
    memcpy(get->state, trailing, sizeof trailing);
    get->state_len = sizeof trailing;
    assert_int_equal(s_feed(get, T0, NULL), NERVE_EPARSE);
    assert_int_equal(get->out.type, MSGPACK_OBJECT_NIL);
    const uint8_t invalid[] = {0xc1};
    memcpy(get->state, invalid, sizeof invalid);
    get->state_len = sizeof invalid;
    assert_int_equal(s_feed(get, T0, NULL), NERVE_EPARSE);
    assert_int_equal(get->written, SIZE_MAX);
    /* Five bytes that claim four billion entries: refused as they are,
       not by failing to allocate ~100 GB for them first (NERVE_ENOMEM). */
    const uint8_t claim[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    memcpy(get->state, claim, sizeof claim);
    get->state_len = sizeof claim;
    assert_int_equal(s_feed(get, T0, NULL), NERVE_EPARSE);
    assert_int_equal(get->out.type, MSGPACK_OBJECT_NIL);
    s_free(get);
}

static void test_store_set_refuses_a_value_larger_than_the_state_buffer(void **state)
{
    reg_t *set = s_new("store.set", "{}");
    set->cap = 8;
    msgpack_object v = s_json(set->zone, "\"a string longer than eight bytes\"");
    assert_int_equal(s_feed(set, T0, &v), NERVE_ERANGE);
    assert_int_equal(set->written, SIZE_MAX);
    assert_int_equal(s_feed(set, T0, NULL), 0); /* absent: nothing stored */
    assert_int_equal(set->written, SIZE_MAX);
    s_free(set);
}

/* --- state --- */

static void test_state_changed_reports_a_differing_value(void **state)
{
    reg_t *r = s_new("state.changed", "{}");
    assert_int_equal(s_int_out(r, T0, "\"running\""), 0); /* first value */
    assert_int_equal(s_int_out(r, T0 + SEC, "\"running\""), 0);
    assert_int_equal(r->written, SIZE_MAX); /* unchanged: nothing written */
    assert_int_equal(s_int_out(r, T0 + 2 * SEC, "\"stopped\""), 1);
    assert_int_equal(s_int_out(r, T0 + 3 * SEC, "\"stopped\""), 0);
    assert_int_equal(s_int_out(r, T0 + 4 * SEC, "1"), 1);
    assert_int_equal(s_int_out(r, T0 + 5 * SEC, "1.0"), 0); /* same number */
    assert_int_equal(s_int_out(r, T0 + 6 * SEC, "-2"), 1);
    assert_int_equal(s_int_out(r, T0 + 7 * SEC, "-2.0"), 0);
    assert_int_equal(s_int_out(r, T0 + 8 * SEC, "{\"a\": [1, 2]}"), 1);
    assert_int_equal(s_int_out(r, T0 + 9 * SEC, "{\"a\": [1, 2.0]}"), 0);
    assert_int_equal(s_int_out(r, T0 + 10 * SEC, "{\"a\": [1, 3]}"), 1);
    assert_int_equal(s_feed(r, T0, NULL), 0); /* absent: no answer, no change */
    assert_int_equal(r->out.type, MSGPACK_OBJECT_NIL);
    assert_int_equal(r->written, SIZE_MAX);
    s_free(r);
}

static void test_state_changed_compares_large_values_by_hash(void **state)
{
    reg_t *r = s_new("state.changed", "{}");
    char big[400], big2[400];
    snprintf(big, sizeof big, "\"%0300d\"", 1);
    snprintf(big2, sizeof big2, "\"%0300d\"", 2);
    assert_int_equal(s_int_out(r, T0, big), 0);
    assert_true(r->state_len < 32); /* a hash, not 300 bytes */
    assert_int_equal(s_int_out(r, T0, big), 0);
    assert_int_equal(s_int_out(r, T0, big2), 1);
    assert_int_equal(s_int_out(r, T0, "\"small\""), 1);
    assert_int_equal(s_int_out(r, T0, big2), 1);
    s_free(r);
}

static void test_state_changed_with_corrupt_state_starts_fresh(void **state)
{
    reg_t *r = s_new("state.changed", "{}");
    const uint8_t bad[][6] = {
        {1, 1, 0, 0, 0, 0}, {1, 1, 7, 1, 2, 3}, {9, 1, 0, 1, 1, 1}, {1, 1, 1, 1, 2, 3}};
    for (size_t i = 0; i < 4; i++) {
        memcpy(r->state, bad[i], 6);
        r->state_len = i == 0 ? 3 : 6;
        r->has_state = true;
        assert_int_equal(s_int_out(r, T0, "5"), 0);
        assert_int_equal(s_int_out(r, T0, "6"), 1);
    }
    s_free(r);
}

static void test_state_flapping_counts_changes_within_the_period(void **state)
{
    reg_t *r = s_new("state.flapping", "{\"period\": 60, \"limit\": 2}");
    assert_int_equal(s_int_out(r, T0, "\"up\""), 0);
    assert_int_equal(s_int_out(r, T0 + 1 * SEC, "\"down\""), 0); /* 1 change */
    assert_int_equal(s_int_out(r, T0 + 2 * SEC, "\"up\""), 0);   /* 2 */
    assert_int_equal(s_int_out(r, T0 + 3 * SEC, "\"up\""), 0);
    assert_int_equal(s_int_out(r, T0 + 4 * SEC, "\"down\""), 1); /* 3 > 2 */
    /* The change at +1 s leaves at +61 s: 2 left, not flapping. */
    assert_int_equal(s_int_out(r, T0 + 60 * SEC, "\"down\""), 1);
    assert_int_equal(s_int_out(r, T0 + 61 * SEC, "\"down\""), 0);
    /* The count is kept in the state header. */
    uint32_t changes;
    memcpy(&changes, r->state + 4, 4);
    assert_int_equal(changes, 2);
    assert_int_equal(s_int_out(r, T0 + 200 * SEC, "\"down\""), 0);
    memcpy(&changes, r->state + 4, 4);
    assert_int_equal(changes, 0);
    s_free(r);
}

static void test_state_flapping_default_limit_is_five(void **state)
{
    reg_t *r = s_new("state.flapping", "{}");
    int64_t out = 0;
    for (int i = 0; i <= 5; i++)
        out = s_int_out(r, T0 + (uint64_t)i * SEC, i % 2 ? "1" : "0");
    assert_int_equal(out, 0); /* 5 changes */
    assert_int_equal(s_int_out(r, T0 + 6 * SEC, "0"), 1);
    s_free(r);
}

static void test_state_flapping_with_corrupt_state_starts_fresh(void **state)
{
    reg_t *r = s_new("state.flapping", "{\"limit\": 0}");
    srand(11);
    for (int round = 0; round < 200; round++) {
        r->state_len = 264 + (size_t)(rand() % 80);
        for (size_t b = 0; b < r->state_len; b++)
            r->state[b] = (uint8_t)rand();
        r->state[0] = 1;
        r->state[1] = 2;
        r->state[2] = 60;
        r->has_state = true;
        msgpack_object v = s_json(r->zone, "\"x\"");
        assert_int_equal(s_feed(r, T0 + (uint64_t)round * SEC, &v), 0);
        assert_int_equal(r->out.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    }
    s_free(r);
}

static void test_state_prepare_refuses_bad_params_with_a_reason(void **state)
{
    s_refused("state.flapping", "{\"limit\": -1}", "flapping: 'limit' must be 0 or more");
    s_refused("state.flapping", "{\"limit\": \"many\"}", "flapping: 'limit' must be a number");
    s_refused("state.flapping", "{\"period\": 0}", "flapping: 'period' must be more than 0");
    s_refused("state.flapping", "{\"period\": \"often\"}", "flapping: 'period' is not a duration");
    s_refused("state.flapping", "{\"period\": {}}", "flapping needs 'period'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aggregate_resolves_under_the_seeds_register_spelling),
        cmocka_unit_test(test_aggregate_avg_forgets_values_older_than_period),
        cmocka_unit_test(test_aggregate_sum_count_min_max_follow_the_window),
        cmocka_unit_test(test_aggregate_last_is_the_value_and_keeps_no_state),
        cmocka_unit_test(test_aggregate_rate_is_per_second_increase),
        cmocka_unit_test(test_aggregate_rate_counts_a_counter_reset_from_zero),
        cmocka_unit_test(test_aggregate_rate_measures_from_the_oldest_sample_in_the_window),
        cmocka_unit_test(test_aggregate_delta_is_newest_minus_oldest_in_window),
        cmocka_unit_test(test_aggregate_ewma_weights_new_values_by_alpha),
        cmocka_unit_test(test_aggregate_percentile_interpolates_between_ranks),
        cmocka_unit_test(test_aggregate_percentile_keeps_the_newest_256_samples),
        cmocka_unit_test(test_aggregate_duration_string_period),
        cmocka_unit_test(test_aggregate_non_number_leaves_state_and_output_alone),
        cmocka_unit_test(test_aggregate_states_stay_small_and_versioned),
        cmocka_unit_test(test_aggregate_state_too_big_for_the_buffer_is_an_error),
        cmocka_unit_test(test_aggregate_corrupt_or_foreign_state_starts_fresh),
        cmocka_unit_test(test_aggregate_random_state_bytes_never_crash),
        cmocka_unit_test(test_aggregate_clock_steps_back_within_or_beyond_a_window),
        cmocka_unit_test(test_aggregate_prepare_refuses_bad_params_with_a_reason),
        cmocka_unit_test(test_store_set_keeps_the_packed_value_and_get_returns_it),
        cmocka_unit_test(test_store_get_on_corrupt_bytes_says_nothing),
        cmocka_unit_test(test_store_set_refuses_a_value_larger_than_the_state_buffer),
        cmocka_unit_test(test_state_changed_reports_a_differing_value),
        cmocka_unit_test(test_state_changed_compares_large_values_by_hash),
        cmocka_unit_test(test_state_changed_with_corrupt_state_starts_fresh),
        cmocka_unit_test(test_state_flapping_counts_changes_within_the_period),
        cmocka_unit_test(test_state_flapping_default_limit_is_five),
        cmocka_unit_test(test_state_flapping_with_corrupt_state_starts_fresh),
        cmocka_unit_test(test_state_prepare_refuses_bad_params_with_a_reason),
    };
    return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
