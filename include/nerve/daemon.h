/*  nerve/daemon.h — what every nerve daemon does the same way: telling
    the service manager it is ready, and the first pass over its command
    line.

    nerve's systemd units are Type=notify: each daemon calls
    nerve_daemon_ready() once its sockets are bound and its rules or config
    loaded, and systemd starts dependent units only then. The protocol is
    one datagram ("READY=1") to the unix socket named by $NOTIFY_SOCKET;
    without that variable (not under systemd) the call does nothing.
*/
#ifndef NERVE_DAEMON_H
#define NERVE_DAEMON_H

#include <getopt.h>
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

#ifdef __cplusplus
}
#endif
#endif
