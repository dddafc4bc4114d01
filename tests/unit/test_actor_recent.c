/*  test_actor_recent.c — the actor's recent-id cache (actor/recent.c):
    run once, answer repeats with the same result, stay bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../actor/recent.h"

static void s_id(uint8_t id[NERVE_ID_SIZE], uint32_t n)
{
    memset(id, 0, NERVE_ID_SIZE);
    memcpy(id, &n, sizeof n);
    id[15] = 0xa5;
}

static void s_done(recent_t *r, uint32_t n, const char *payload)
{
    uint8_t id[NERVE_ID_SIZE];
    s_id(id, n);
    assert_int_equal(recent_complete(r, id, "/nerve/result/a", 15, payload, strlen(payload)), 0);
}

static recent_state_t s_claim(recent_t *r, uint32_t n)
{
    uint8_t id[NERVE_ID_SIZE];
    s_id(id, n);
    return recent_claim(r, id, NULL);
}

static void test_recent_new_id_is_claimed_then_pending(void **state)
{
    recent_t *r = recent_new(8, 1 << 20);
    assert_non_null(r);
    assert_int_equal(s_claim(r, 1), RECENT_NEW);
    assert_int_equal(s_claim(r, 1), RECENT_PENDING);
    assert_int_equal(s_claim(r, 2), RECENT_NEW);
    assert_int_equal(recent_count(r), 2);
    recent_destroy(&r);
    assert_null(r);
    recent_destroy(&r); /* safe twice */
}

static void test_recent_done_id_returns_the_same_result_bytes(void **state)
{
    recent_t *r = recent_new(8, 1 << 20);
    uint8_t id[NERVE_ID_SIZE];
    s_id(id, 7);
    assert_int_equal(recent_claim(r, id, NULL), RECENT_NEW);
    const uint8_t payload[] = {0x86, 0x00, 0xff, 0x10};
    assert_int_equal(recent_complete(r, id, "/nerve/result/web1", 18, payload, sizeof payload), 0);
    recent_result_t out;
    memset(&out, 0, sizeof out);
    assert_int_equal(recent_claim(r, id, &out), RECENT_DONE);
    assert_int_equal(out.tag_len, 18);
    assert_memory_equal(out.tag, "/nerve/result/web1", 18);
    assert_int_equal(out.payload_len, sizeof payload);
    assert_memory_equal(out.payload, payload, sizeof payload);
    /* Asking again does not change it. */
    assert_int_equal(recent_claim(r, id, &out), RECENT_DONE);
    assert_int_equal(recent_bytes(r), 18 + sizeof payload);
    recent_destroy(&r);
}

static void test_recent_complete_of_unknown_id_adds_it_done(void **state)
{
    recent_t *r = recent_new(4, 1 << 20);
    s_done(r, 42, "x");
    assert_int_equal(s_claim(r, 42), RECENT_DONE);
    recent_destroy(&r);
}

static void test_recent_forget_makes_an_id_new_again(void **state)
{
    recent_t *r = recent_new(4, 1 << 20);
    assert_int_equal(s_claim(r, 1), RECENT_NEW);
    s_done(r, 1, "abc");
    uint8_t id[NERVE_ID_SIZE];
    s_id(id, 1);
    recent_forget(r, id);
    assert_int_equal(recent_count(r), 0);
    assert_int_equal(recent_bytes(r), 0);
    assert_int_equal(s_claim(r, 1), RECENT_NEW);
    recent_forget(r, id);
    recent_forget(r, id); /* absent: nothing happens */
    recent_destroy(&r);
}

static void test_recent_capacity_evicts_oldest_finished_first(void **state)
{
    recent_t *r = recent_new(3, 1 << 20);
    s_done(r, 1, "a");
    s_done(r, 2, "b");
    s_done(r, 3, "c");
    assert_int_equal(s_claim(r, 4), RECENT_NEW); /* evicts 1 */
    assert_int_equal(recent_count(r), 3);
    assert_int_equal(recent_evicted(r), 1);
    assert_int_equal(s_claim(r, 2), RECENT_DONE);
    assert_int_equal(s_claim(r, 3), RECENT_DONE);
    assert_int_equal(s_claim(r, 4), RECENT_PENDING);
    assert_int_equal(s_claim(r, 1), RECENT_NEW); /* gone, so new: evicts 2 */
    assert_int_equal(s_claim(r, 2), RECENT_NEW); /* evicts 3 */
    recent_destroy(&r);
}

static void test_recent_pending_ids_are_never_evicted(void **state)
{
    recent_t *r = recent_new(3, 1 << 20);
    assert_int_equal(s_claim(r, 1), RECENT_NEW); /* oldest, and pending */
    s_done(r, 2, "b");
    s_done(r, 3, "c");
    assert_int_equal(s_claim(r, 4), RECENT_NEW); /* evicts 2, not 1 */
    assert_int_equal(s_claim(r, 1), RECENT_PENDING);
    assert_int_equal(s_claim(r, 5), RECENT_NEW); /* evicts 3 */
    assert_int_equal(s_claim(r, 1), RECENT_PENDING);
    assert_int_equal(s_claim(r, 4), RECENT_PENDING);
    assert_int_equal(s_claim(r, 5), RECENT_PENDING);
    /* Every slot pending: a new id cannot be claimed. */
    assert_int_equal(s_claim(r, 6), RECENT_FULL);
    assert_int_equal(s_claim(r, 6), RECENT_FULL);
    assert_int_equal(recent_count(r), 3);
    s_done(r, 4, "d");
    assert_int_equal(s_claim(r, 6), RECENT_NEW);  /* 4 was the only finished one */
    assert_int_equal(s_claim(r, 4), RECENT_FULL); /* forgotten, and no room again */
    recent_destroy(&r);
}

static void test_recent_byte_budget_evicts_old_results(void **state)
{
    recent_t *r = recent_new(100, 100);
    char big[41];
    memset(big, 'x', 40);
    big[40] = '\0';
    s_done(r, 1, big); /* 15 + 40 = 55 bytes */
    assert_int_equal(recent_bytes(r), 55);
    s_done(r, 2, big); /* 110 > 100: 1 goes */
    assert_int_equal(recent_bytes(r), 55);
    assert_int_equal(s_claim(r, 1), RECENT_NEW);
    assert_int_equal(s_claim(r, 2), RECENT_DONE);
    /* A result bigger than the budget alone is still kept: it is the
       newest, and the budget only pushes older ones out. */
    char huge[201];
    memset(huge, 'y', 200);
    huge[200] = '\0';
    s_done(r, 3, huge);
    assert_int_equal(s_claim(r, 3), RECENT_DONE);
    assert_int_equal(s_claim(r, 2), RECENT_NEW);
    recent_destroy(&r);
}

/*  Many ids through a small cache: the index stays consistent through
    evictions (backward-shift deletion), so the last `cap` finished ids are
    always found and older ones never are. */
static void test_recent_index_stays_consistent_under_churn(void **state)
{
    const uint32_t cap = 257, total = 50000;
    recent_t *r = recent_new(cap, SIZE_MAX);
    for (uint32_t i = 0; i < total; i++) {
        uint8_t id[NERVE_ID_SIZE];
        s_id(id, i * 2654435761u); /* spread, but deterministic */
        assert_int_equal(recent_claim(r, id, NULL), RECENT_NEW);
        char p[16];
        snprintf(p, sizeof p, "%u", i);
        assert_int_equal(recent_complete(r, id, "/t", 2, p, strlen(p)), 0);
        if (i % 97 == 0) {
            for (uint32_t k = i >= cap ? i - cap + 1 : 0; k <= i; k++) {
                uint8_t kid[NERVE_ID_SIZE];
                s_id(kid, k * 2654435761u);
                recent_result_t out;
                assert_int_equal(recent_claim(r, kid, &out), RECENT_DONE);
                snprintf(p, sizeof p, "%u", k);
                assert_int_equal(out.payload_len, strlen(p));
                assert_memory_equal(out.payload, p, strlen(p));
            }
        }
    }
    assert_int_equal(recent_count(r), cap);
    assert_int_equal(recent_evicted(r), total - cap);
    uint8_t old[NERVE_ID_SIZE];
    s_id(old, 0);
    assert_int_equal(recent_claim(r, old, NULL), RECENT_NEW);
    recent_destroy(&r);
}

static void test_recent_refuses_zero_capacity(void **state)
{
    assert_null(recent_new(0, 100));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recent_new_id_is_claimed_then_pending),
        cmocka_unit_test(test_recent_done_id_returns_the_same_result_bytes),
        cmocka_unit_test(test_recent_complete_of_unknown_id_adds_it_done),
        cmocka_unit_test(test_recent_forget_makes_an_id_new_again),
        cmocka_unit_test(test_recent_capacity_evicts_oldest_finished_first),
        cmocka_unit_test(test_recent_pending_ids_are_never_evicted),
        cmocka_unit_test(test_recent_byte_budget_evicts_old_results),
        cmocka_unit_test(test_recent_index_stays_consistent_under_churn),
        cmocka_unit_test(test_recent_refuses_zero_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
