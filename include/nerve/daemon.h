/*  nerve/daemon.h — what every nerve daemon does the same way: telling
    the service manager it is ready, the first pass over its command line,
    and how its threads are scheduled.

    nerve's systemd units are Type=notify: each daemon calls
    nerve_daemon_ready() once its sockets are bound and its rules or config
    loaded, and systemd starts dependent units only then. The protocol is
    one datagram ("READY=1") to the unix socket named by $NOTIFY_SOCKET;
    without that variable (not under systemd) the call does nothing.
*/
#ifndef NERVE_DAEMON_H
#define NERVE_DAEMON_H

#include <nerve/conf.h>

#include <getopt.h>
#include <pthread.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  Sends READY=1 (and STATUS=<status> when given). Returns 0, or a negative
    nerve_err when $NOTIFY_SOCKET is set but the datagram could not be
    sent. */
int nerve_daemon_ready(const char *status);

/*  Sends STOPPING=1. */
int nerve_daemon_stopping(void);

/*  The first pass over a daemon's command line, before its config file is
    read (flags given then override the file's keys in a second pass):
    sets *config to -c/--config's FILE (left alone when absent), answers
    -h/--help with usage(stdout) and -V/--version with "NAME VERSION".
    Other options are skipped silently here; the second pass reports
    them. `opts` is the daemon's getopt_long table, short options "c:hV".

    Returns -1 to go on, with getopt reset for the second pass (optind 1,
    opterr 1), or 0 after -h or -V: the exit code. */
int nerve_daemon_first_pass(int argc, char **argv, const struct option *opts, const char *name,
                            void (*usage)(FILE *out), const char **config);

/*  The daemons' signals: SIGTERM and SIGINT call on_stop, SIGHUP on_hup
    (both without SA_RESTART, so a blocked call returns EINTR), SIGPIPE is
    ignored. The handlers should only set a flag. */
void nerve_daemon_signals(void (*on_stop)(int), void (*on_hup)(int));

/*  pthread_create() for a daemon's helper thread (a worker, the register
    writer, the ZAP handler): the thread starts with every signal blocked
    but the faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP,
    SIGSYS). SIGTERM and SIGHUP then reach the main thread, whose poll they
    interrupt; a handler run on another thread would only set a flag the
    loop reads late. A fault in the thread still reports as one (with a
    blocked SIGSEGV the kernel kills the process silently, and a
    sanitizer's report is lost). The caller's mask is left as it was.
    Returns pthread_create()'s result. */
int nerve_daemon_thread(pthread_t *thread, void *(*fn)(void *), void *arg);

/*  How a throughput daemon's threads are scheduled (the manager's and the
    publisher's `scheduling:` key, `--scheduling`).

    NERVE_SCHED_BATCH (the default): Linux's SCHED_BATCH at nice 0. The
    manager and the publisher are pipelines of threads that hand work to
    each other (libzmq's I/O threads, the engine, the register writer, the
    relay). Under normal scheduling each hand-off wakes a thread that
    preempts the one doing the work; on a saturated two-core host that
    costs about a tenth of the throughput in switches and in batches cut
    short (bench/RESULTS.md). A batch thread runs at once on an idle CPU
    and gets the same share of CPU; it only does not preempt on wakeup, so
    under contention it may wait up to one scheduler slice (about a
    millisecond). A process a module starts inherits it, as threads do.

    NERVE_SCHED_NORMAL: leave the process as it was started. */
typedef enum { NERVE_SCHED_BATCH, NERVE_SCHED_NORMAL } nerve_sched_t;

/*  "batch" or "normal" into *out. 0, or NERVE_EINVAL. */
int nerve_daemon_sched_parse(const char *name, nerve_sched_t *out);

/*  Reads the `scheduling:` key of a daemon's config into *out, when it is
    there. 0, or an error naming the key's position in err. */
int nerve_daemon_sched_conf(const nerve_conf_t *root, nerve_sched_t *out,
                            nerve_conf_error_t *err);

/*  Applies the `log_level:` key of a daemon's config (error, warn, info or
    debug), when it is there. 0, or an error naming the key's position. */
int nerve_daemon_log_level_conf(const nerve_conf_t *root, nerve_conf_error_t *err);

/*  Applies `policy` to the calling thread and logs what it did under
    `log_id`. Call it before any thread is started (libzmq's I/O threads
    included): threads inherit it. BATCH changes only a thread under
    normal scheduling (SCHED_OTHER); one a unit's CPUSchedulingPolicy= put
    elsewhere (fifo, rr, idle) is left as the operator chose. Returns 1 if
    it changed the policy, 0 if it left it alone, or NERVE_EIO if the
    kernel refused (logged as a warning: the daemon goes on, it only costs
    throughput). */
int nerve_daemon_schedule(nerve_sched_t policy, const char *log_id);

/*  "batch", "normal": the name nerve_daemon_sched_parse() takes. */
const char *nerve_daemon_sched_name(nerve_sched_t policy);

#ifdef __cplusplus
}
#endif
#endif
