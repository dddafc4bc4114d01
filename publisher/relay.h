/*  relay.h — nerve-publisher: reactions from the manager to every actor.

    The manager PUSHes reactions to `input` (PULL, bound on IPC); the relay
    forwards each two-frame message untouched to `output` (XPUB, bound on
    TCP), where every actor's SUB socket receives what its subscriptions
    (@all/, @host/<id>/, @group/<g>/) select. The relay keeps no state: a
    restart loses at most what was in flight, which the manager's retry
    recovers.

    A message without exactly two frames is dropped and counted. PUB
    semantics apply per subscriber: one slow actor whose queue (SNDHWM)
    fills loses messages without slowing the others; ZMTP heartbeats cut
    peers that stopped answering so their queues are freed.

    Security (docs/security.md): `output`, and `input` when it is TCP, are
    CURVE servers unless `insecure: true`; the ZAP handler admits the keys
    in the keys directory's accepted/ and this host's own keypairs (the
    manager's, when it shares the directory). A PUB cannot check who each
    message goes to, so when the admitted set loses a key (revoke, reject)
    the relay unbinds and re-binds `output`: every actor reconnects through
    the ZAP handler, which refuses the revoked one.
*/
#ifndef NERVE_PUBLISHER_RELAY_H
#define NERVE_PUBLISHER_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include <nerve/daemon.h>
#include <nerve/security.h>

typedef struct relay_config {
    char *input;      /* bind, PULL (default ipc://$NERVE_HOME/run/publisher.sock) */
    char *output;     /* bind, XPUB (default tcp, port 7451, all interfaces) */
    char *control;    /* bind, ROUTER for `nerve status` */
    char *metrics;    /* host:port for Prometheus /metrics, or NULL */
    int hwm;          /* per-subscriber and input queue, messages */
    nerve_security_t security; /* own key name "publisher" */
    nerve_sched_t scheduling;  /* `scheduling:`, default batch (<nerve/daemon.h>) */
} relay_config_t;

typedef struct relay_counters {
    uint64_t relayed;
    uint64_t dropped;        /* malformed (frame count) or refused by the socket */
    uint64_t subscriptions;  /* topics currently subscribed */
    uint64_t rebinds;        /* output re-bound to cut revoked keys off */
    uint64_t unauthorized;   /* input messages from keys no longer admitted */
} relay_counters_t;

typedef struct relay relay_t;

relay_t *relay_new(const relay_config_t *cfg);
void relay_destroy(relay_t **self);

/*  Runs until relay_request_stop(); returns 0 on a clean stop. */
int relay_run(relay_t *self);
void relay_request_stop(void);

/*  SIGHUP: logged by the loop, nothing else. (systemd and ops scripts send
    it to every nerve daemon; it must not stop this one.) */
void relay_note_hup(void);
void relay_counters(const relay_t *self, relay_counters_t *out);

#endif
