/*  test_log.c — error names, log levels and the rate limiter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include <nerve/error.h>
#include <nerve/log.h>

static void test_strerror_names_every_code(void **state)
{
    for (int e = NERVE_OK; e >= NERVE_EMODULE; e--)
        assert_string_not_equal(nerve_strerror(e), "unknown error");
    assert_string_equal(nerve_strerror(-999), "unknown error");
}

static void test_log_level_parse_accepts_names_and_rejects_garbage(void **state)
{
    nerve_log_level_t level;
    assert_int_equal(nerve_log_level_parse("debug", &level), 0);
    assert_int_equal(level, NERVE_LOG_DEBUG);
    assert_int_equal(nerve_log_level_parse("WARN", &level), 0);
    assert_int_equal(level, NERVE_LOG_WARN);
    assert_int_equal(nerve_log_level_parse("loud", &level), NERVE_EINVAL);
    assert_int_equal(nerve_log_level_parse(NULL, &level), NERVE_EINVAL);
}

static void test_ratelimit_passes_one_line_per_interval_and_counts_the_rest(void **state)
{
    nerve_ratelimit_t rl = NERVE_RATELIMIT_INIT(60000);
    assert_int_equal(nerve_ratelimit_take(&rl), 1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(nerve_ratelimit_take(&rl), 0);
    assert_int_equal(rl.suppressed, 5);
    rl.next_ms = 0; /* the interval has passed */
    assert_int_equal(nerve_ratelimit_take(&rl), 6);
    assert_int_equal(rl.suppressed, 0);
}

static void test_log_rl_does_not_crash_when_suppressing(void **state)
{
    nerve_ratelimit_t rl = NERVE_RATELIMIT_INIT(60000);
    for (int i = 0; i < 100; i++)
        NERVE_LOG_RL(&rl, NERVE_LOG_WARN, "test", "line %d", i);
    assert_int_equal(rl.suppressed, 99);
}

static void test_clocks_move_forward(void **state)
{
    uint64_t a = nerve_clock_mono_ns(), b = nerve_clock_mono_ns();
    assert_true(b >= a);
    assert_true(nerve_clock_wall_ns() > 1600000000ull * 1000000000ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror_names_every_code),
        cmocka_unit_test(test_log_level_parse_accepts_names_and_rejects_garbage),
        cmocka_unit_test(test_ratelimit_passes_one_line_per_interval_and_counts_the_rest),
        cmocka_unit_test(test_log_rl_does_not_crash_when_suppressing),
        cmocka_unit_test(test_clocks_move_forward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
