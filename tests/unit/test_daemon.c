/*  test_daemon.c — the READY=1 datagram systemd's Type=notify waits for,
    the daemons' first pass over their flags, and their scheduling policy. */
#define _GNU_SOURCE /* SCHED_BATCH, SCHED_IDLE, SCHED_RESET_ON_FORK */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <nerve/daemon.h>
#include <nerve/error.h>

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int s_listen(const char *path) /* path < 96 bytes */
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof addr.sun_path);
    memcpy(addr.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    return fd;
}

static void test_ready_sends_ready_and_status_to_notify_socket(void **state)
{
    char dir[] = "/tmp/nerve-notify-XXXXXX", path[96], buf[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/notify.sock", dir);
    int fd = s_listen(path);
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(nerve_daemon_ready("deciding"), 0);
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "READY=1\nSTATUS=deciding");
    assert_int_equal(nerve_daemon_stopping(), 0);
    n = recv(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    assert_string_equal(buf, "STOPPING=1");
    close(fd);
    unlink(path);
    rmdir(dir);
    unsetenv("NOTIFY_SOCKET");
}

static void test_ready_is_a_no_op_outside_systemd(void **state)
{
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(nerve_daemon_ready(NULL), 0);
}

static void test_ready_refuses_a_relative_socket_path(void **state)
{
    setenv("NOTIFY_SOCKET", "relative.sock", 1);
    assert_int_equal(nerve_daemon_ready(NULL), NERVE_EINVAL);
    unsetenv("NOTIFY_SOCKET");
}

static int s_usage_calls;
static void s_usage(FILE *out)
{
    (void)out;
    s_usage_calls++;
}

static const struct option s_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"data", required_argument, NULL, 300},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/*  The first pass finds the config file among other flags (unknown ones
    too: the second pass reports them), leaves getopt ready for that pass,
    and answers --help and --version with exit code 0. */
static void test_first_pass_finds_config_and_answers_help_and_version(void **state)
{
    (void)state;
    char *a1[] = {"d", "--data", "/x", "--bogus", "-c", "/etc/d.yaml", NULL};
    const char *config = NULL;
    assert_int_equal(nerve_daemon_first_pass(6, a1, s_opts, "d", s_usage, &config), -1);
    assert_string_equal(config, "/etc/d.yaml");
    assert_int_equal(optind, 1);
    assert_int_equal(opterr, 1);
    assert_int_equal(s_usage_calls, 0);

    char *a2[] = {"d", "--data", "/x", "--help", NULL};
    config = NULL;
    assert_int_equal(nerve_daemon_first_pass(4, a2, s_opts, "d", s_usage, &config), 0);
    assert_int_equal(s_usage_calls, 1);
    assert_null(config);

    char *a3[] = {"d", "-V", NULL};
    assert_int_equal(nerve_daemon_first_pass(2, a3, s_opts, "d", s_usage, &config), 0);
    assert_int_equal(s_usage_calls, 1);
}

/* --------------------------------------------------------------- signals */

static volatile sig_atomic_t s_stops, s_hups;

static void s_count_stop(int sig)
{
    (void)sig;
    s_stops++;
}

static void s_count_hup(int sig)
{
    (void)sig;
    s_hups++;
}

static void test_signals_route_stop_and_hup_and_ignore_sigpipe(void **state)
{
    (void)state;
    struct sigaction old[4];
    const int sigs[4] = {SIGTERM, SIGINT, SIGHUP, SIGPIPE};
    for (int i = 0; i < 4; i++)
        sigaction(sigs[i], NULL, &old[i]);
    nerve_daemon_signals(s_count_stop, s_count_hup);
    raise(SIGTERM);
    raise(SIGINT);
    raise(SIGHUP);
    raise(SIGPIPE); /* ignored: the test would die otherwise */
    assert_int_equal(s_stops, 2);
    assert_int_equal(s_hups, 1);
    struct sigaction now;
    sigaction(SIGTERM, NULL, &now);
    assert_false(now.sa_flags & SA_RESTART); /* blocked calls see EINTR */
    for (int i = 0; i < 4; i++)
        sigaction(sigs[i], &old[i], NULL);
}

/* ------------------------------------------------------------ scheduling */

static void test_sched_parse_takes_batch_and_normal_only(void **state)
{
    (void)state;
    nerve_sched_t p = NERVE_SCHED_NORMAL;
    assert_int_equal(nerve_daemon_sched_parse("batch", &p), 0);
    assert_int_equal(p, NERVE_SCHED_BATCH);
    assert_string_equal(nerve_daemon_sched_name(p), "batch");
    assert_int_equal(nerve_daemon_sched_parse("normal", &p), 0);
    assert_int_equal(p, NERVE_SCHED_NORMAL);
    assert_string_equal(nerve_daemon_sched_name(p), "normal");
    const char *bad[] = {"", "Batch", "fifo", "idle", "batch ", "other"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(nerve_daemon_sched_parse(bad[i], &p), NERVE_EINVAL);
        assert_int_equal(p, NERVE_SCHED_NORMAL); /* untouched */
    }
}

static void *s_policy_of_new_thread(void *arg)
{
    *(int *)arg = sched_getscheduler(0);
    return NULL;
}

/*  The policy of a thread started now by the calling thread. */
static int s_inherited_policy(void)
{
    pthread_t t;
    int policy = -1;
    assert_int_equal(pthread_create(&t, NULL, s_policy_of_new_thread, &policy), 0);
    pthread_join(t, NULL);
    return policy;
}

/*  Each case runs on a thread of its own, so the test program's own
    thread keeps its policy. */
typedef struct {
    int start_policy; /* set before the call */
    nerve_sched_t ask;
    int rc, after, inherited, again;
} sched_case_t;

static void *s_run_sched_case(void *arg)
{
    sched_case_t *c = arg;
    struct sched_param sp = {.sched_priority = 0};
    /* Always set: the test may itself run under another policy (chrt). */
    assert_int_equal(sched_setscheduler(0, c->start_policy, &sp), 0);
    c->rc = nerve_daemon_schedule(c->ask, "test");
    c->after = sched_getscheduler(0);
    c->inherited = s_inherited_policy();
    c->again = nerve_daemon_schedule(c->ask, "test");
    return NULL;
}

static sched_case_t s_sched_case(int start_policy, nerve_sched_t ask)
{
    sched_case_t c = {.start_policy = start_policy, .ask = ask, .rc = -100};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_run_sched_case, &c), 0);
    pthread_join(t, NULL);
    return c;
}

static int s_runner_policy; /* this program's own, read in main() */

static void test_schedule_batch_applies_to_the_caller_and_the_threads_it_starts(void **state)
{
    (void)state;
    sched_case_t c = s_sched_case(SCHED_OTHER, NERVE_SCHED_BATCH);
    assert_int_equal(c.rc, 1);
    assert_int_equal(c.after, SCHED_BATCH);
    assert_int_equal(c.inherited, SCHED_BATCH);
    assert_int_equal(c.again, 0); /* already batch: nothing to do */
    assert_int_equal(sched_getscheduler(0), s_runner_policy); /* this thread is untouched */
}

static void test_schedule_normal_leaves_the_policy_alone(void **state)
{
    (void)state;
    sched_case_t c = s_sched_case(SCHED_OTHER, NERVE_SCHED_NORMAL);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.after, SCHED_OTHER);
    assert_int_equal(c.inherited, SCHED_OTHER);
}

/*  A unit's CPUSchedulingResetOnFork=yes is kept through the switch. */
static void test_schedule_batch_keeps_reset_on_fork(void **state)
{
    (void)state;
    sched_case_t c = s_sched_case(SCHED_OTHER | SCHED_RESET_ON_FORK, NERVE_SCHED_BATCH);
    assert_int_equal(c.rc, 1);
    assert_int_equal(c.after, SCHED_BATCH | SCHED_RESET_ON_FORK);
    assert_int_equal(c.inherited, SCHED_BATCH); /* the flag itself is not inherited */
    assert_int_equal(c.again, 0);
}

/*  A process started under another policy (a unit's
    CPUSchedulingPolicy=idle, say) keeps the operator's choice. */
static void test_schedule_batch_keeps_a_policy_the_operator_chose(void **state)
{
    (void)state;
    sched_case_t c = s_sched_case(SCHED_IDLE, NERVE_SCHED_BATCH);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.after, SCHED_IDLE);
    assert_int_equal(c.inherited, SCHED_IDLE);
}

static void *s_read_mask(void *arg)
{
    pthread_sigmask(SIG_BLOCK, NULL, (sigset_t *)arg);
    return NULL;
}

/*  A helper thread blocks the daemon's signals but not the faults, and
    the caller's own mask is left as it was. */
static void test_daemon_thread_blocks_signals_but_not_faults(void **state)
{
    sigset_t before, after, seen;
    pthread_sigmask(SIG_BLOCK, NULL, &before);
    pthread_t t;
    assert_int_equal(nerve_daemon_thread(&t, s_read_mask, &seen), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(sigismember(&seen, SIGTERM));
    assert_true(sigismember(&seen, SIGHUP));
    assert_true(sigismember(&seen, SIGINT));
    assert_false(sigismember(&seen, SIGSEGV));
    assert_false(sigismember(&seen, SIGBUS));
    assert_false(sigismember(&seen, SIGABRT));
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    assert_int_equal(sigismember(&after, SIGTERM), sigismember(&before, SIGTERM));
    assert_int_equal(sigismember(&after, SIGHUP), sigismember(&before, SIGHUP));
}

int main(void)
{
    s_runner_policy = sched_getscheduler(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_sends_ready_and_status_to_notify_socket),
        cmocka_unit_test(test_ready_is_a_no_op_outside_systemd),
        cmocka_unit_test(test_ready_refuses_a_relative_socket_path),
        cmocka_unit_test(test_first_pass_finds_config_and_answers_help_and_version),
        cmocka_unit_test(test_signals_route_stop_and_hup_and_ignore_sigpipe),
        cmocka_unit_test(test_sched_parse_takes_batch_and_normal_only),
        cmocka_unit_test(test_schedule_batch_applies_to_the_caller_and_the_threads_it_starts),
        cmocka_unit_test(test_schedule_normal_leaves_the_policy_alone),
        cmocka_unit_test(test_schedule_batch_keeps_a_policy_the_operator_chose),
        cmocka_unit_test(test_schedule_batch_keeps_reset_on_fork),
        cmocka_unit_test(test_daemon_thread_blocks_signals_but_not_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
