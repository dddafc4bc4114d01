/*  benchlib.h — running nerve's daemons during a benchmark.

    bench_manager, bench_latency and bench_fanout all start the real
    daemons (nerve-manager, nerve-publisher, nerve-actor) from the build
    tree and ask their control sockets for `status`. These are the helpers
    they share, as static functions: each bench_*.c is built as its own
    executable (bench/CMakeLists.txt), so a header needs no library.

    A daemon_t is one child process: s_spawn() fork/execs it with stdout
    and stderr to its log file, NERVE_HOME set to the bench's scratch dir
    and SIGTERM on our death (PR_SET_PDEATHSIG), so a killed bench leaves
    nothing running. s_alive() polls it and, once it has exited, says how;
    s_show_log() prints the start of its log when a run failed; s_stop()
    sends SIGTERM, then SIGKILL after 5 s.

    The control protocol (manager/control.h; the publisher and the actor
    answer the same verb) is a DEALER sending [verb][msgpack map] and
    receiving [ok|error][msgpack map]. s_status_recv() copies the body into
    a reply_t that owns it, because the unpacked strings point into the
    bytes they came from and must outlive the frame.

    Also shared: the process set-up every bench's main() starts with
    (s_bench_init(): SIGINT/SIGTERM set s_interrupted, which the loops
    check; the build directory to take daemons from), CPU time from /proc
    (s_proc_stat(), s_cpu_us()), and a free loopback port (s_free_port()).

    The includer defines BENCH_NAME, its program name as a string literal
    ("bench_manager"), before including this: every message is prefixed
    with it, as the benches' own messages are. It also needs _GNU_SOURCE
    (setenv()), defined before any system header.
*/
#ifndef NERVE_BENCHLIB_H
#define NERVE_BENCHLIB_H

#ifndef BENCH_NAME
#error "define BENCH_NAME (the program name, a string literal) before including benchlib.h"
#endif

#include <nerve/log.h>
#include <nerve/value.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* ----------------------------------------------------------------- process */

static volatile sig_atomic_t s_interrupted; /* SIGINT/SIGTERM: clean up, exit */

static void s_on_signal(int sig)
{
    (void)sig;
    s_interrupted = 1;
}

/*  What every bench's main() does first: SIGPIPE ignored, SIGINT and
    SIGTERM set s_interrupted (without SA_RESTART, so blocked calls return
    EINTR and the loops see it). Returns the build directory the daemons
    and modules are taken from: $NERVE_BENCH_BUILD_DIR, else the one this
    was compiled in. */
static const char *s_bench_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    const char *build = getenv("NERVE_BENCH_BUILD_DIR");
    return build && *build ? build : NERVE_BUILD_DIR;
}

/*  A /proc/<pid>[/task/<tid>]/stat file: the name in parentheses (into
    name, when not NULL) and the CPU time used so far, user + system, in
    µs. Returns false if it cannot be read. */
static bool s_proc_stat(const char *path, char *name, size_t cap, uint64_t *cpu_us)
{
    char buf[1024];
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *open = strchr(buf, '('), *close = strrchr(buf, ')'); /* names may hold spaces */
    unsigned long long utime = 0, stime = 0;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt
       majflt cmajflt utime stime */
    if (!open || !close || close < open ||
        sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
               &stime) != 2)
        return false;
    if (name)
        snprintf(name, cap, "%.*s", (int)(close - open - 1), open + 1);
    long hz = sysconf(_SC_CLK_TCK);
    *cpu_us = (utime + stime) * 1000000ull / (uint64_t)(hz > 0 ? hz : 100);
    return true;
}

/*  A TCP port free on 127.0.0.1 right now, for a daemon to bind (the
    daemons take an endpoint, not a wildcard they could report back). */
__attribute__((unused)) /* bench_manager runs on IPC */
static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* ----------------------------------------------------------------- daemons */

typedef struct daemon {
    const char *name; /* for messages: "nerve-manager" */
    pid_t pid;        /* 0 once it has exited and been reaped */
    char log[PATH_MAX];
} daemon_t;

/*  Starts argv[0] with stdout and stderr to self->log, NERVE_HOME set to
    the scratch dir, and SIGTERM on our death. */
static int s_spawn(daemon_t *self, const char *home, char *const argv[])
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, BENCH_NAME ": fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        /*  The parent may have died before prctl(): then nothing would
            ever stop us. */
        if (getppid() != parent)
            _exit(127);
        int fd = open(self->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        setenv("NERVE_HOME", home, 1);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    self->pid = pid;
    return 0;
}

/*  True while the daemon runs; when it has exited, says how. */
static bool s_alive(daemon_t *self)
{
    if (self->pid <= 0)
        return false;
    int status;
    pid_t r = waitpid(self->pid, &status, WNOHANG);
    if (r == 0)
        return true;
    if (r == self->pid) {
        if (WIFSIGNALED(status))
            fprintf(stderr, BENCH_NAME ": %s died of signal %d\n", self->name, WTERMSIG(status));
        else
            fprintf(stderr, BENCH_NAME ": %s exited with %d\n", self->name, WEXITSTATUS(status));
    }
    self->pid = 0;
    return false;
}

/*  Prints the first 40 lines of the daemon's log: after a failure they
    usually say why (a config error, a module that did not load). */
static void s_show_log(const daemon_t *self)
{
    FILE *f = fopen(self->log, "r");
    if (!f)
        return;
    char line[1024];
    for (int lines = 0; fgets(line, sizeof line, f) && lines < 40; lines++) {
        if (lines == 0)
            fprintf(stderr, BENCH_NAME ": %s's log (%s):\n", self->name, self->log);
        fprintf(stderr, "  %s", line);
    }
    fclose(f);
}

/*  SIGTERM, then SIGKILL if it has not exited within 5 s. Returns the exit
    code (0 for a clean stop), or -1. */
static int s_stop(daemon_t *self)
{
    if (self->pid <= 0)
        return -1;
    kill(self->pid, SIGTERM);
    int status = 0;
    uint64_t deadline = nerve_clock_mono_ms() + 5000;
    pid_t r;
    while ((r = waitpid(self->pid, &status, WNOHANG)) == 0 && nerve_clock_mono_ms() < deadline) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    if (r == 0) {
        fprintf(stderr, BENCH_NAME ": %s ignored SIGTERM for 5 s; killing it\n", self->name);
        kill(self->pid, SIGKILL);
        waitpid(self->pid, &status, 0);
    }
    self->pid = 0;
    return r == 0 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*  CPU time (user + system, all threads) the daemon has used so far, in
    µs; 0 if it cannot be read. */
__attribute__((unused)) /* bench_manager reads it thread by thread */
static uint64_t s_cpu_us(const daemon_t *self)
{
    char path[64];
    uint64_t us = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)self->pid);
    if (self->pid <= 0 || !s_proc_stat(path, NULL, 0, &us))
        return 0;
    return us;
}

/* ----------------------------------------------------------------- control */

/*  A decoded control reply. The strings in `u` point into `body`, which
    is kept until the next reply (or s_reply_destroy). */
typedef struct reply {
    msgpack_unpacked u;
    char *body;
} reply_t;

static void s_reply_init(reply_t *self)
{
    msgpack_unpacked_init(&self->u);
    self->body = NULL;
}

static void s_reply_destroy(reply_t *self)
{
    msgpack_unpacked_destroy(&self->u);
    free(self->body);
    self->body = NULL;
}

/*  "status" with an empty map (manager/control.h; the publisher answers the
    same verb). */
static int s_status_send(void *dealer)
{
    static const uint8_t empty_map = 0x80;
    if (zmq_send(dealer, "status", 6, ZMQ_SNDMORE) < 0 || zmq_send(dealer, &empty_map, 1, 0) < 0) {
        fprintf(stderr, BENCH_NAME ": control send: %s\n", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

/*  Reads one answer into *out; `who` names the daemon in messages.
    Returns 0 when it is "ok" with a map, 1 when none came within
    timeout_ms or a signal interrupted the wait (the request stays
    outstanding and its answer is the next one read; the caller checks
    its interrupt flag), or -1. */
static int s_status_recv(void *dealer, int timeout_ms, reply_t *out, const char *who)
{
    zmq_pollitem_t item = {dealer, 0, ZMQ_POLLIN, 0};
    int n = zmq_poll(&item, 1, timeout_ms);
    if (n < 0 && errno != EINTR) {
        fprintf(stderr, BENCH_NAME ": poll: %s\n", zmq_strerror(errno));
        return -1;
    }
    if (n <= 0)
        return 1;
    char status[8] = "";
    zmq_msg_t body;
    zmq_msg_init(&body);
    int len = zmq_recv(dealer, status, sizeof status - 1, 0);
    int more = 0;
    size_t sz = sizeof more;
    zmq_getsockopt(dealer, ZMQ_RCVMORE, &more, &sz);
    int rc = -1;
    if (len < 0 || !more || zmq_msg_recv(&body, dealer, 0) < 0) {
        fprintf(stderr, BENCH_NAME ": %s: malformed control reply\n", who);
        goto done;
    }
    status[len < (int)sizeof status ? len : (int)sizeof status - 1] = '\0';
    s_reply_destroy(out);
    s_reply_init(out);
    size_t size = zmq_msg_size(&body);
    if (!(out->body = malloc(size ? size : 1))) {
        fprintf(stderr, BENCH_NAME ": out of memory\n");
        goto done;
    }
    memcpy(out->body, zmq_msg_data(&body), size);
    if (msgpack_unpack_next(&out->u, out->body, size, NULL) != MSGPACK_UNPACK_SUCCESS ||
        out->u.data.type != MSGPACK_OBJECT_MAP) {
        fprintf(stderr, BENCH_NAME ": %s: control reply is not a msgpack map\n", who);
        goto done;
    }
    if (strcmp(status, "ok") != 0) {
        char text[512];
        fprintf(stderr, BENCH_NAME ": %s: status: %s\n", who,
                nerve_obj_format(&out->u.data, text, sizeof text));
        goto done;
    }
    rc = 0;
done:
    zmq_msg_close(&body);
    return rc;
}

/*  The status reply's counter at a dotted path, 0 if absent. */
static uint64_t s_u64(const reply_t *st, const char *path)
{
    const msgpack_object *o = nerve_obj_path(&st->u.data, path);
    return o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? o->via.u64 : 0;
}

/*  Asks `status` and waits for the answer: 0 when it came, -1 when the
    daemon died, *interrupted was set, or nothing came within ready_ms. */
static int s_wait_ready(void *dealer, daemon_t *d, reply_t *out, int ready_ms,
                        volatile sig_atomic_t *interrupted)
{
    if (s_status_send(dealer) != 0)
        return -1;
    uint64_t deadline = nerve_clock_mono_ms() + (uint64_t)ready_ms;
    for (;;) {
        int rc = s_status_recv(dealer, 100, out, d->name);
        if (rc <= 0)
            return rc;
        if (*interrupted || !s_alive(d))
            return -1;
        if (nerve_clock_mono_ms() > deadline) {
            fprintf(stderr, BENCH_NAME ": %s did not answer status within %d ms\n", d->name,
                    ready_ms);
            return -1;
        }
    }
}

/* ----------------------------------------------------------------- configs */

static int s_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0) {
        if (f)
            fclose(f);
        fprintf(stderr, BENCH_NAME ": cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}

/*  dir/manager.yaml and dir/publisher.yaml for one machine: events on
    loopback TCP port events_port without CURVE (as the raw sides), IPC
    between the daemons under dir/run, the publisher's output on pub_port,
    rules in dir/rules, modules from build/modules. hwm 0 keeps the
    publisher's default. */
__attribute__((unused)) /* bench_manager runs its daemons on flags */
static int s_write_daemon_configs(const char *dir, const char *build, int events_port, int pub_port,
                                  int hwm)
{
    char path[PATH_MAX], text[4096], hwm_line[32] = "";
    snprintf(path, sizeof path, "%s/manager.yaml", dir);
    snprintf(text, sizeof text,
             "# one machine: loopback TCP without CURVE, as the raw side\n"
             "events: tcp://127.0.0.1:%d\n"
             "publisher: ipc://%s/run/publisher.sock\n"
             "control: ipc://%s/run/control.sock\n"
             "tap: ipc://%s/run/tap.sock\n"
             "rules: %s/rules\n"
             "data: %s/data\n"
             "modules: [%s/modules]\n"
             "log_level: warn\n"
             "security:\n  insecure: true\n",
             events_port, dir, dir, dir, dir, dir, build);
    if (s_write_file(path, text) != 0)
        return -1;
    if (hwm > 0)
        snprintf(hwm_line, sizeof hwm_line, "hwm: %d\n", hwm);
    snprintf(path, sizeof path, "%s/publisher.yaml", dir);
    snprintf(text, sizeof text,
             "input: ipc://%s/run/publisher.sock\n"
             "output: tcp://127.0.0.1:%d\n"
             "control: ipc://%s/run/publisher-control.sock\n"
             "%s"
             "log_level: warn\n"
             "security:\n  insecure: true\n",
             dir, pub_port, dir, hwm_line);
    return s_write_file(path, text);
}

#endif
