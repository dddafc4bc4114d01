/*  test_daemon.c — the READY=1 datagram systemd's Type=notify waits for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <nerve/daemon.h>
#include <nerve/error.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_sends_ready_and_status_to_notify_socket),
        cmocka_unit_test(test_ready_is_a_no_op_outside_systemd),
        cmocka_unit_test(test_ready_refuses_a_relative_socket_path),
        cmocka_unit_test(test_first_pass_finds_config_and_answers_help_and_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
