/*  daemon.c — sd_notify's READY=1 without libsystemd, the daemons' shared
    first pass over their flags, and their scheduling policy (see
    daemon.h).

    The notify protocol is a stable, documented datagram to a unix socket;
    an abstract socket name starts with '@'.
*/
#define _GNU_SOURCE /* SCHED_BATCH, SCHED_IDLE, SCHED_RESET_ON_FORK */
#include <nerve/daemon.h>
#include <nerve/error.h>
#include <nerve/log.h>

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int s_notify(const char *message)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len >= sizeof addr.sun_path || (path[0] != '/' && path[0] != '@'))
        return NERVE_EINVAL;
    memcpy(addr.sun_path, path, len);
    if (path[0] == '@')
        addr.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NERVE_EIO;
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    ssize_t n = sendto(fd, message, strlen(message), MSG_NOSIGNAL, (struct sockaddr *)&addr,
                       alen);
    close(fd);
    return n < 0 ? NERVE_EIO : 0;
}

int nerve_daemon_ready(const char *status)
{
    char message[512];
    if (status)
        snprintf(message, sizeof message, "READY=1\nSTATUS=%s", status);
    else
        snprintf(message, sizeof message, "READY=1");
    return s_notify(message);
}

int nerve_daemon_stopping(void)
{
    return s_notify("STOPPING=1");
}

int nerve_daemon_first_pass(int argc, char **argv, const struct option *opts, const char *name,
                            void (*usage)(FILE *out), const char **config)
{
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        if (c == 'c') {
            *config = optarg;
        } else if (c == 'h') {
            usage(stdout);
            return 0;
        } else if (c == 'V') {
            printf("%s %s\n", name, NERVE_VERSION);
            return 0;
        }
    }
    optind = 1;
    opterr = 1;
    return -1;
}

void nerve_daemon_signals(void (*on_stop)(int), void (*on_hup)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

const char *nerve_daemon_sched_name(nerve_sched_t policy)
{
    return policy == NERVE_SCHED_BATCH ? "batch" : "normal";
}

int nerve_daemon_sched_parse(const char *name, nerve_sched_t *out)
{
    if (strcmp(name, "batch") == 0)
        *out = NERVE_SCHED_BATCH;
    else if (strcmp(name, "normal") == 0)
        *out = NERVE_SCHED_NORMAL;
    else
        return NERVE_EINVAL;
    return 0;
}

int nerve_daemon_sched_conf(const nerve_conf_t *root, nerve_sched_t *out, nerve_conf_error_t *err)
{
    const nerve_conf_t *n = nerve_conf_get(root, "scheduling");
    if (!n)
        return 0;
    const char *s;
    int rc = nerve_conf_as_str(n, &s, err);
    if (rc == 0 && nerve_daemon_sched_parse(s, out) != 0)
        rc = nerve_conf_fail(n, err, "scheduling must be batch or normal");
    return rc;
}

int nerve_daemon_log_level_conf(const nerve_conf_t *root, nerve_conf_error_t *err)
{
    const nerve_conf_t *n = nerve_conf_get(root, "log_level");
    if (!n)
        return 0;
    const char *s;
    nerve_log_level_t level;
    int rc = nerve_conf_as_str(n, &s, err);
    if (rc == 0 && nerve_log_level_parse(s, &level) != 0)
        rc = nerve_conf_fail(n, err, "log_level must be error, warn, info or debug");
    if (rc == 0)
        nerve_log_set_level(level);
    return rc;
}

static const char *s_policy_name(int policy)
{
    switch (policy) {
    case SCHED_OTHER: return "normal";
    case SCHED_BATCH: return "batch";
    case SCHED_IDLE: return "idle";
    case SCHED_FIFO: return "fifo";
    case SCHED_RR: return "rr";
    default: return "another policy";
    }
}

int nerve_daemon_schedule(nerve_sched_t policy, const char *log_id)
{
    if (policy != NERVE_SCHED_BATCH)
        return 0;
    int current = sched_getscheduler(0);
    if (current < 0) {
        NERVE_WARN(log_id, "scheduling: cannot read the policy (%s); left as it is",
                   strerror(errno));
        return NERVE_EIO;
    }
    int reset_on_fork = current & SCHED_RESET_ON_FORK; /* a unit's CPUSchedulingResetOnFork= */
    current &= ~SCHED_RESET_ON_FORK;
    if (current == SCHED_BATCH)
        return 0; /* a unit's CPUSchedulingPolicy=batch, or a second call */
    if (current != SCHED_OTHER) {
        NERVE_INFO(log_id, "scheduling: started under %s; left as it is, not batch",
                   s_policy_name(current));
        return 0;
    }
    struct sched_param param = {.sched_priority = 0};
    if (sched_setscheduler(0, SCHED_BATCH | reset_on_fork, &param) != 0) {
        NERVE_WARN(log_id, "scheduling: cannot switch to SCHED_BATCH (%s); going on under "
                           "normal scheduling", strerror(errno));
        return NERVE_EIO;
    }
    NERVE_INFO(log_id, "scheduling: %s (threads do not preempt on wakeup)",
                nerve_daemon_sched_name(policy));
    return 1;
}

int nerve_daemon_thread(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS};
    sigset_t mask, old;
    sigfillset(&mask);
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        sigdelset(&mask, faults[i]);
    pthread_sigmask(SIG_BLOCK, &mask, &old);
    int rc = pthread_create(thread, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
