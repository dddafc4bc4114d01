/*  test_pool.c — the bounded job pool (lib/pool.c) under the manager's
    and the actor's reaction workers.

    Jobs here are small structs whose run can be held at a gate, so a test
    decides what is running, what waits, and when it ends. Each test checks
    who ran what, on which thread state, and what the counters say.
*/
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <nerve/error.h>
#include <nerve/pool.h>

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct world {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    bool gate_open;   /* held jobs wait for this */
    int running;      /* held jobs inside run now */
    int ran, dropped; /* jobs run to the end, jobs dropped */
    int order[16];    /* ids in the order they were dropped */
    int states_made, states_freed;
    int fail_state_at;    /* thread_new fails for this index (-1: never) */
    bool signals_blocked; /* every run saw SIGTERM and SIGHUP blocked */
    bool faults_blocked;  /* some run saw SIGSEGV or SIGABRT blocked */
    char name[16];        /* a run's thread name */
    int stateless_runs;   /* runs given no thread state */
} world_t;

typedef struct job {
    int id;
    bool hold;  /* wait at the gate */
    void *seen; /* the thread state run was given */
} job_t;

static world_t *s_world(void)
{
    world_t *w = calloc(1, sizeof *w);
    assert_non_null(w);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->changed, NULL);
    w->fail_state_at = -1;
    w->signals_blocked = true;
    return w;
}

static void s_world_free(world_t *w)
{
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->changed);
    free(w);
}

static job_t *s_job(int id, bool hold)
{
    job_t *j = calloc(1, sizeof *j);
    assert_non_null(j);
    j->id = id;
    j->hold = hold;
    return j;
}

static void *s_thread_new(void *arg, size_t index)
{
    world_t *w = arg;
    pthread_mutex_lock(&w->lock);
    bool fail = (int)index == w->fail_state_at;
    if (!fail)
        w->states_made++;
    pthread_mutex_unlock(&w->lock);
    if (fail)
        return NULL;
    int *state = malloc(sizeof *state);
    assert_non_null(state);
    *state = (int)index;
    return state;
}

static void s_thread_destroy(void *arg, void *state)
{
    world_t *w = arg;
    pthread_mutex_lock(&w->lock);
    w->states_freed++;
    pthread_mutex_unlock(&w->lock);
    free(state);
}

static void s_run(void *arg, void *state, void *job)
{
    world_t *w = arg;
    job_t *j = job;
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    char name[16] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    pthread_mutex_lock(&w->lock);
    if (!sigismember(&mask, SIGTERM) || !sigismember(&mask, SIGHUP))
        w->signals_blocked = false;
    if (sigismember(&mask, SIGSEGV) || sigismember(&mask, SIGABRT))
        w->faults_blocked = true; /* a crash in a job would die silently */
    if (!state)
        w->stateless_runs++; /* cmocka's asserts belong on the test's thread */
    memcpy(w->name, name, sizeof name);
    if (j->hold) {
        w->running++;
        pthread_cond_broadcast(&w->changed);
        while (!w->gate_open)
            pthread_cond_wait(&w->changed, &w->lock);
        w->running--;
    }
    w->ran++;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
    free(j);
}

static void s_drop(void *arg, void *job)
{
    world_t *w = arg;
    job_t *j = job;
    if (w->dropped < 16)
        w->order[w->dropped] = j->id;
    w->dropped++;
    free(j);
}

static nerve_pool_t *s_pool(world_t *w, size_t threads, size_t queue_max)
{
    nerve_pool_config_t cfg = {
        .name = "testpool",
        .threads = threads,
        .queue_max = queue_max,
        .arg = w,
        .thread_new = s_thread_new,
        .thread_destroy = s_thread_destroy,
        .run = s_run,
        .drop = s_drop,
    };
    return nerve_pool_new(&cfg);
}

/*  Waits (up to 5 s) until `field` of w reaches `want`. */
#define WAIT_FOR(w, field, want)                                                                   \
    do {                                                                                           \
        struct timespec until;                                                                     \
        clock_gettime(CLOCK_REALTIME, &until);                                                     \
        until.tv_sec += 5;                                                                         \
        pthread_mutex_lock(&(w)->lock);                                                            \
        while ((w)->field != (want) &&                                                             \
               pthread_cond_timedwait(&(w)->changed, &(w)->lock, &until) == 0)                     \
            ;                                                                                      \
        int got_ = (w)->field;                                                                     \
        pthread_mutex_unlock(&(w)->lock);                                                          \
        assert_int_equal(got_, (want));                                                            \
    } while (0)

static void s_open_gate(world_t *w)
{
    pthread_mutex_lock(&w->lock);
    w->gate_open = true;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
}

static void test_pool_runs_every_job_on_a_named_thread_with_signals_but_faults_blocked(void **state)
{
    world_t *w = s_world();
    nerve_pool_t *p = s_pool(w, 3, 64);
    assert_non_null(p);
    assert_int_equal(w->states_made, 3);
    for (int i = 0; i < 50; i++)
        assert_int_equal(nerve_pool_submit(p, s_job(i, false)), 0);
    WAIT_FOR(w, ran, 50);
    assert_true(w->signals_blocked);
    assert_false(w->faults_blocked);
    assert_int_equal(w->stateless_runs, 0);
    assert_string_equal(w->name, "testpool");
    assert_int_equal(nerve_pool_destroy(&p, 1000), 0);
    assert_null(p);
    assert_int_equal(w->states_freed, 3);
    assert_int_equal(w->dropped, 0);
    s_world_free(w);
}

/*  One thread held at the gate, two waiting: the fourth is refused and
    stays the caller's. */
static void test_pool_refuses_a_job_when_the_queue_is_full(void **state)
{
    world_t *w = s_world();
    nerve_pool_t *p = s_pool(w, 1, 2);
    assert_int_equal(nerve_pool_submit(p, s_job(0, true)), 0);
    WAIT_FOR(w, running, 1);
    assert_int_equal(nerve_pool_submit(p, s_job(1, false)), 0);
    assert_int_equal(nerve_pool_submit(p, s_job(2, false)), 0);
    job_t *extra = s_job(3, false);
    assert_int_equal(nerve_pool_submit(p, extra), NERVE_EFULL);
    free(extra);
    nerve_pool_stats_t st;
    nerve_pool_stats(p, &st);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.queued, 2);
    assert_int_equal(st.running, 1);
    assert_int_equal(nerve_pool_busy(p), 3);
    s_open_gate(w);
    WAIT_FOR(w, ran, 3);
    assert_int_equal(nerve_pool_destroy(&p, 1000), 0);
    s_world_free(w);
}

static void s_drop_other(void *arg, void *job)
{
    int *count = arg;
    (*count)++;
    free(job);
}

/*  Close drops what waits, in order, through the callback given (or the
    configured one); what runs goes on; submits are refused after. */
static void test_pool_close_drops_waiting_jobs_in_order_and_refuses_new_ones(void **state)
{
    world_t *w = s_world();
    nerve_pool_t *p = s_pool(w, 1, 8);
    assert_int_equal(nerve_pool_submit(p, s_job(0, true)), 0);
    WAIT_FOR(w, running, 1);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(nerve_pool_submit(p, s_job(i, false)), 0);
    nerve_pool_close(p, NULL, NULL);
    assert_int_equal(w->dropped, 3);
    assert_int_equal(w->order[0], 1);
    assert_int_equal(w->order[1], 2);
    assert_int_equal(w->order[2], 3);
    job_t *late = s_job(9, false);
    assert_int_equal(nerve_pool_submit(p, late), NERVE_EFULL);
    free(late);
    nerve_pool_close(p, s_drop_other, NULL); /* nothing left: not called */
    nerve_pool_stats_t st;
    nerve_pool_stats(p, &st);
    assert_int_equal(st.dropped, 3);
    assert_int_equal(st.refused, 1);
    s_open_gate(w);
    WAIT_FOR(w, ran, 1);
    assert_int_equal(nerve_pool_destroy(&p, 1000), 0);
    s_world_free(w);
}

static void test_pool_close_uses_the_drop_callback_it_is_given(void **state)
{
    world_t *w = s_world();
    nerve_pool_t *p = s_pool(w, 1, 8);
    assert_int_equal(nerve_pool_submit(p, s_job(0, true)), 0);
    WAIT_FOR(w, running, 1);
    assert_int_equal(nerve_pool_submit(p, s_job(1, false)), 0);
    assert_int_equal(nerve_pool_submit(p, s_job(2, false)), 0);
    int count = 0;
    nerve_pool_close(p, s_drop_other, &count);
    assert_int_equal(count, 2);
    assert_int_equal(w->dropped, 0);
    s_open_gate(w);
    assert_int_equal(nerve_pool_destroy(&p, 1000), 0);
    s_world_free(w);
}

/*  A job that does not end in time is left running: destroy says so at
    once after wait_ms instead of hanging the daemon's stop. */
static void test_pool_destroy_leaves_a_stuck_job_after_the_wait(void **state)
{
    world_t *w = s_world();
    nerve_pool_t *p = s_pool(w, 2, 8);
    assert_int_equal(nerve_pool_submit(p, s_job(0, true)), 0);
    assert_int_equal(nerve_pool_submit(p, s_job(1, false)), 0);
    WAIT_FOR(w, running, 1);
    WAIT_FOR(w, ran, 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(nerve_pool_destroy(&p, 200), NERVE_ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_null(p);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(took >= 0.19 && took < 4.0);
    assert_int_equal(w->states_freed, 0); /* the stuck thread still uses its state */
    s_open_gate(w);                       /* the job ends; its pool stays allocated, on purpose */
    WAIT_FOR(w, ran, 2);
    /* w is shared with the abandoned pool's threads: not freed */
}

static void test_pool_new_fails_when_a_thread_state_cannot_be_made(void **state)
{
    world_t *w = s_world();
    w->fail_state_at = 2;
    assert_null(s_pool(w, 4, 8));
    assert_int_equal(w->states_made, 2);
    assert_int_equal(w->states_freed, 2);
    s_world_free(w);
}

static void test_pool_destroy_is_safe_on_null(void **state)
{
    nerve_pool_t *p = NULL;
    assert_int_equal(nerve_pool_destroy(&p, 0), 0);
    assert_int_equal(nerve_pool_destroy(NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_runs_every_job_on_a_named_thread_with_signals_but_faults_blocked),
        cmocka_unit_test(test_pool_refuses_a_job_when_the_queue_is_full),
        cmocka_unit_test(test_pool_close_drops_waiting_jobs_in_order_and_refuses_new_ones),
        cmocka_unit_test(test_pool_close_uses_the_drop_callback_it_is_given),
        cmocka_unit_test(test_pool_destroy_leaves_a_stuck_job_after_the_wait),
        cmocka_unit_test(test_pool_new_fails_when_a_thread_state_cannot_be_made),
        cmocka_unit_test(test_pool_destroy_is_safe_on_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
