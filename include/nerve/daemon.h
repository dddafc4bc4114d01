/*  nerve/daemon.h — telling the service manager a daemon is ready.

    nerve's systemd units are Type=notify: each daemon calls
    nerve_daemon_ready() once its sockets are bound and its rules or config
    loaded, and systemd starts dependent units only then. The protocol is
    one datagram ("READY=1") to the unix socket named by $NOTIFY_SOCKET;
    without that variable (not under systemd) the call does nothing.
*/
#ifndef NERVE_DAEMON_H
#define NERVE_DAEMON_H

#ifdef __cplusplus
extern "C" {
#endif

/*  Sends READY=1 (and STATUS=<status> when given). Returns 0, or a negative
    nerve_err when $NOTIFY_SOCKET is set but the datagram could not be
    sent. */
int nerve_daemon_ready(const char *status);

/*  Sends STOPPING=1. */
int nerve_daemon_stopping(void);

#ifdef __cplusplus
}
#endif
#endif
