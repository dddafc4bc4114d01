/*  test_delivery.c — at-least-once delivery bookkeeping (manager/delivery.c).

    The clocks are the test's: now_ms (monotonic) and now_ns (wall) move
    together from W, so retry times and deadlines are exact. Callbacks
    record what delivery asked for; the resend callback can be told to
    fail, as it does when the publisher queue is full.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nerve/error.h>
#include <nerve/wire.h>

#include "delivery.h"

#define W       1700000000000000000ull /* wall clock at now_ms = 0 */
#define MS      1000000ull
#define LATER   (W + 3600000 * MS) /* a deadline that never comes in a test */
#define LOG_MAX 64

typedef struct {
    delivery_t *d;
    int resend_rc;  /* what resend returns */
    size_t nresent; /* resend calls */
    uint64_t resent_at[LOG_MAX];
    uint32_t resent_tries[LOG_MAX];
    size_t nexpired;
    pending_t expired[4]; /* copies of the first ones (payload not kept) */
    uint8_t payload[64];  /* the last resent payload */
    size_t payload_len;
    uint64_t now_ms; /* of the current tick */
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->d = delivery_new();
    assert_non_null(fx->d);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    delivery_destroy(&fx->d); /* frees whatever is still pending */
    delivery_destroy(&fx->d);
    free(fx);
    return 0;
}

static int s_resend(void *arg, const pending_t *p)
{
    fixture_t *fx = arg;
    if (fx->nresent < LOG_MAX) {
        fx->resent_at[fx->nresent] = fx->now_ms;
        fx->resent_tries[fx->nresent] = p->tries;
    }
    fx->nresent++;
    assert_true(p->payload_len <= sizeof fx->payload);
    memcpy(fx->payload, p->payload, p->payload_len);
    fx->payload_len = p->payload_len;
    return fx->resend_rc;
}

static void s_expired(void *arg, const pending_t *p)
{
    fixture_t *fx = arg;
    if (fx->nexpired < 4) {
        fx->expired[fx->nexpired] = *p;
        fx->expired[fx->nexpired].payload = NULL;
    }
    fx->nexpired++;
}

static void s_tick(fixture_t *fx, uint64_t now_ms)
{
    fx->now_ms = now_ms;
    delivery_tick(fx->d, now_ms, W + now_ms * MS, s_resend, s_expired, fx);
}

static void s_id(uint8_t id[NERVE_ID_SIZE], unsigned n)
{
    memset(id, 0, NERVE_ID_SIZE);
    memcpy(id, &n, sizeof n);
}

static void s_track(fixture_t *fx, const uint8_t id[NERVE_ID_SIZE], uint64_t deadline_ns,
                    uint64_t now_ms)
{
    static const char payload[] = "encoded reaction";
    assert_int_equal(delivery_track(fx->d, "@host/web1/", id, "restart_nginx", "reactions.cmd.run",
                                    payload, sizeof payload, deadline_ns, now_ms),
                     0);
}

static delivery_stats_t s_stats(const fixture_t *fx)
{
    delivery_stats_t st;
    delivery_stats(fx->d, &st);
    return st;
}

/* --------------------------------------------------------------- track/ack */

static void test_delivery_ack_forgets_a_tracked_reaction_once(void **state)
{
    fixture_t *fx = *state;
    uint8_t a[NERVE_ID_SIZE], b[NERVE_ID_SIZE], other[NERVE_ID_SIZE];
    s_id(a, 1), s_id(b, 2), s_id(other, 3);
    s_track(fx, a, LATER, 0);
    s_track(fx, b, LATER, 0);
    assert_int_equal(s_stats(fx).tracked, 2);
    assert_int_equal(s_stats(fx).pending, 2);

    assert_true(delivery_ack(fx->d, a, "web1"));
    assert_false(delivery_ack(fx->d, a, "web1")); /* a repeated result */
    assert_false(delivery_ack(fx->d, other, "web1"));
    assert_int_equal(s_stats(fx).acked, 1);
    assert_int_equal(s_stats(fx).pending, 1);

    /* Only b is still retried. */
    s_tick(fx, 500);
    assert_int_equal(fx->nresent, 1);
    assert_true(delivery_ack(fx->d, b, "web1"));
    s_tick(fx, 1500);
    assert_int_equal(fx->nresent, 1);
    assert_int_equal(s_stats(fx).pending, 0);
}

static void test_delivery_ack_counts_only_a_result_from_the_addressed_host(void **state)
{
    fixture_t *fx = *state;
    uint8_t id[NERVE_ID_SIZE];
    s_id(id, 9);
    s_track(fx, id, LATER, 0); /* to @host/web1/ */
    assert_false(delivery_ack(fx->d, id, "web10"));
    assert_false(delivery_ack(fx->d, id, "web"));
    assert_false(delivery_ack(fx->d, id, NULL));
    assert_int_equal(s_stats(fx).pending, 1);
    assert_true(delivery_ack(fx->d, id, "web1"));
    assert_int_equal(s_stats(fx).pending, 0);
}

static void test_delivery_track_copies_payload_and_names(void **state)
{
    fixture_t *fx = *state;
    uint8_t id[NERVE_ID_SIZE];
    s_id(id, 7);
    char payload[] = "original bytes";
    char topic[] = "@host/web1/", rule[] = "r", fn[] = "reactions.cmd.run";
    assert_int_equal(
        delivery_track(fx->d, topic, id, rule, fn, payload, sizeof payload, W + 1000 * MS, 0), 0);
    memset(payload, 'x', sizeof payload - 1); /* the caller's buffer is reused */
    topic[1] = rule[0] = fn[0] = '?';
    s_tick(fx, 500);
    assert_int_equal(fx->payload_len, sizeof payload);
    assert_memory_equal(fx->payload, "original bytes", sizeof payload);
    s_tick(fx, 1000);
    assert_int_equal(fx->nexpired, 1);
    assert_string_equal(fx->expired[0].topic, "@host/web1/");
    assert_string_equal(fx->expired[0].rule, "r");
    assert_string_equal(fx->expired[0].fn, "reactions.cmd.run");
    assert_memory_equal(fx->expired[0].id, id, NERVE_ID_SIZE);
}

/* ------------------------------------------------------------------ retry */

static void test_delivery_retry_backoff_doubles_up_to_ten_seconds(void **state)
{
    fixture_t *fx = *state;
    uint8_t id[NERVE_ID_SIZE];
    s_id(id, 1);
    s_track(fx, id, LATER, 0);
    /* Due at 0.5 s, then 1, 2, 4, 8 s later, then every 10 s. */
    static const uint64_t due[] = {500, 1500, 3500, 7500, 15500, 25500, 35500, 45500};
    for (size_t i = 0; i < sizeof due / sizeof due[0]; i++) {
        s_tick(fx, due[i] - 1);
        assert_int_equal(fx->nresent, i);
        s_tick(fx, due[i]);
        assert_int_equal(fx->nresent, i + 1);
        assert_int_equal(fx->resent_at[i], due[i]);
        assert_int_equal(fx->resent_tries[i], i + 1); /* the first send was try 1 */
    }
    delivery_stats_t st = s_stats(fx);
    assert_int_equal(st.retried, 8);
    assert_int_equal(st.pending, 1);
    assert_int_equal(st.expired, 0);
}

static void test_delivery_failed_resend_is_not_a_retry_and_tries_again(void **state)
{
    fixture_t *fx = *state;
    uint8_t id[NERVE_ID_SIZE];
    s_id(id, 1);
    s_track(fx, id, W + 2000 * MS, 0);
    fx->resend_rc = NERVE_EFULL; /* the publisher queue is full */
    s_tick(fx, 500);
    assert_int_equal(fx->nresent, 1);
    assert_int_equal(s_stats(fx).retried, 0);
    assert_int_equal(s_stats(fx).pending, 1);

    fx->resend_rc = 0;
    s_tick(fx, 1500);
    assert_int_equal(fx->nresent, 2);
    assert_int_equal(fx->resent_tries[1], 1); /* the failed attempt did not count */
    assert_int_equal(s_stats(fx).retried, 1);

    /* Failing to the end still expires at the deadline, with its tries. */
    fx->resend_rc = NERVE_EFULL;
    s_tick(fx, 2000);
    assert_int_equal(fx->nexpired, 1);
    assert_int_equal(fx->expired[0].tries, 2);
    assert_int_equal(s_stats(fx).pending, 0);
}

/* ----------------------------------------------------------------- expiry */

static void test_delivery_expires_exactly_at_the_deadline(void **state)
{
    fixture_t *fx = *state;
    uint8_t id[NERVE_ID_SIZE];
    s_id(id, 1);
    s_track(fx, id, W + 2200 * MS, 0);
    s_tick(fx, 500);
    s_tick(fx, 1500);
    s_tick(fx, 2199);
    assert_int_equal(fx->nexpired, 0);
    s_tick(fx, 2200);
    assert_int_equal(fx->nexpired, 1);
    assert_int_equal(fx->nresent, 2);
    delivery_stats_t st = s_stats(fx);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.pending, 0);
    assert_false(delivery_ack(fx->d, id, "web1")); /* a late result finds nothing */
    s_tick(fx, 5000);
    assert_int_equal(fx->nexpired, 1);
}

static void test_delivery_deadline_before_the_first_retry_expires_on_time(void **state)
{
    fixture_t *fx = *state;
    uint8_t id[NERVE_ID_SIZE];
    s_id(id, 1);
    s_track(fx, id, W + 100 * MS, 0); /* `deadline: 100ms` */
    s_tick(fx, 99);
    assert_int_equal(fx->nexpired, 0);
    s_tick(fx, 100);
    assert_int_equal(fx->nexpired, 1);
    assert_int_equal(fx->nresent, 0);
}

static void test_delivery_expiry_keeps_the_others(void **state)
{
    fixture_t *fx = *state;
    uint8_t a[NERVE_ID_SIZE], b[NERVE_ID_SIZE], c[NERVE_ID_SIZE];
    s_id(a, 1), s_id(b, 2), s_id(c, 3);
    s_track(fx, a, W + 1000 * MS, 0);
    s_track(fx, b, LATER, 0);
    s_track(fx, c, W + 1000 * MS, 0);
    s_tick(fx, 1000);
    assert_int_equal(fx->nexpired, 2);
    assert_int_equal(s_stats(fx).pending, 1);
    assert_false(delivery_ack(fx->d, a, "web1"));
    assert_false(delivery_ack(fx->d, c, "web1"));
    assert_true(delivery_ack(fx->d, b, "web1"));
}

/* ------------------------------------------------------------------- hash */

static void test_delivery_hash_stays_right_over_many_adds_and_acks(void **state)
{
    fixture_t *fx = *state;
    enum { N = 10000 };
    uint8_t(*ids)[NERVE_ID_SIZE] = malloc(2 * N * sizeof *ids);
    size_t *order = malloc(N * sizeof *order);
    assert_non_null(ids);
    assert_non_null(order);
    for (size_t i = 0; i < 2 * N; i++)
        nerve_wire_new_id(ids[i]);
    /* 200 ids that agree on the 8 bytes the hash reads: one long probe
       chain, with removals from its middle. */
    for (size_t i = 0; i < 200; i++) {
        memcpy(ids[i * 7], ids[0], 8);
        memcpy(ids[N + i * 11], ids[0], 8);
    }
    for (size_t i = 0; i < N; i++)
        s_track(fx, ids[i], LATER, 0);
    assert_int_equal(s_stats(fx).pending, N);

    /* Ack half of them in a shuffled order (a fixed seed: reproducible). */
    for (size_t i = 0; i < N; i++)
        order[i] = i;
    srand(42);
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = (size_t)rand() % (i + 1), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    for (size_t k = 0; k < N / 2; k++)
        assert_true(delivery_ack(fx->d, ids[order[k]], "web1"));
    for (size_t k = 0; k < N / 2; k++)
        assert_false(delivery_ack(fx->d, ids[order[k]], "web1"));
    assert_int_equal(s_stats(fx).pending, N / 2);

    /* Add N more over the tombstones, then ack everything left. */
    for (size_t i = N; i < 2 * N; i++)
        s_track(fx, ids[i], LATER, 0);
    assert_int_equal(s_stats(fx).pending, N / 2 + N);
    s_tick(fx, 500); /* every pending one is resent, once */
    assert_int_equal(fx->nresent, N / 2 + N);
    for (size_t k = N / 2; k < N; k++)
        assert_true(delivery_ack(fx->d, ids[order[k]], "web1"));
    for (size_t i = 2 * N; i-- > N;) /* newest first: the other end of the array */
        assert_true(delivery_ack(fx->d, ids[i], "web1"));
    delivery_stats_t st = s_stats(fx);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.tracked, 2 * N);
    assert_int_equal(st.acked, 2 * N);
    for (size_t i = 0; i < 2 * N; i += 97)
        assert_false(delivery_ack(fx->d, ids[i], "web1"));
    free(ids);
    free(order);
}

static void test_delivery_destroy_frees_what_is_pending(void **state)
{
    fixture_t *fx = *state;
    uint8_t id[NERVE_ID_SIZE];
    for (unsigned i = 0; i < 100; i++) {
        s_id(id, i);
        s_track(fx, id, LATER, 0);
    }
    delivery_destroy(&fx->d); /* ASan's leak check is the assertion */
    assert_null(fx->d);
}

#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_delivery_ack_forgets_a_tracked_reaction_once),
        T(test_delivery_ack_counts_only_a_result_from_the_addressed_host),
        T(test_delivery_track_copies_payload_and_names),
        T(test_delivery_retry_backoff_doubles_up_to_ten_seconds),
        T(test_delivery_failed_resend_is_not_a_retry_and_tries_again),
        T(test_delivery_expires_exactly_at_the_deadline),
        T(test_delivery_deadline_before_the_first_retry_expires_on_time),
        T(test_delivery_expiry_keeps_the_others),
        T(test_delivery_hash_stays_right_over_many_adds_and_acks),
        T(test_delivery_destroy_frees_what_is_pending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
