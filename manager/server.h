/*  server.h — the nerve-manager daemon: sockets, the engine loop, reload,
    and the control socket.

    One thread runs the loop: it polls the events socket (PULL), the inject
    socket (what local reactions send back), the control socket (ROUTER)
    and an inotify descriptor on the rules and module directories; drains
    events in batches through the engine; publishes accepted events,
    reactions and results on the tap (PUB); pushes targeted reactions to
    the publisher (PUSH, queued while it is down); and hands the register
    store a flush every commit_interval.

    Security (docs/security.md): every socket on a network transport is
    CURVE unless `insecure: true`. `events`, and `control` and `tap` when
    they are TCP, are CURVE servers admitted by the ZAP handler (nerve_zap,
    started before they bind and stopped after they close); the link to
    the publisher, when TCP, is a CURVE client pinned to `publisher_key`.
    A key revoked while its peer is connected is cut off per message:
    events whose User-Id is no longer admitted are dropped and counted as
    rejected, reason "unauthorized"; the tap, which cannot check per
    message, is re-bound when the admitted set shrinks.

    The struct is visible to control.c, which answers the CLI's requests;
    nothing else reaches inside.
*/
#ifndef NERVE_MANAGER_SERVER_H
#define NERVE_MANAGER_SERVER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <zmq.h>

#include <nerve/metrics.h>
#include <nerve/security.h>
#include <nerve/wire.h>

#include "config.h"
#include "delivery.h"
#include "engine.h"
#include "presence.h"
#include "regstore.h"
#include "rules.h"
#include "worker.h"

typedef struct reload_status {
    bool ok;              /* the last attempt succeeded */
    uint64_t at_ns;       /* when it was tried */
    uint64_t attempts;
    uint64_t failures;
    char error[1024];     /* why the last one failed */
} reload_status_t;

typedef struct server_counters {
    uint64_t received;          /* messages read from the events socket */
    uint64_t accepted;
    uint64_t rejected;          /* sum of rejected_by[] */
    uint64_t rejected_by[NERVE_WIRE_REASON_COUNT];
    uint64_t rejected_unauthorized; /* User-Id no longer admitted (also in rejected) */
    uint64_t injected;          /* events from local reactions */
    uint64_t reactions_sent;    /* to the publisher */
    uint64_t reactions_send_dropped; /* publisher queue full */
    uint64_t reactions_unroutable;   /* target matched nobody, or invalid */
    uint64_t reactions_local;        /* queued for the worker */
    uint64_t reactions_local_refused;/* worker queue full */
    uint64_t control_requests;
    uint64_t actors_joined;
    uint64_t actors_lost;
} server_counters_t;

/*  An event the manager produced itself, waiting to go through the rules
    once the event being handled is done (they share the decoder). */
typedef struct internal_event {
    char tag[NERVE_TAG_MAX + 1];
    msgpack_sbuffer data;
} internal_event_t;

/*  The wire reasons' companion: the name status and metrics give events
    dropped because their sender's key is no longer admitted. */
#define SERVER_REASON_UNAUTHORIZED "unauthorized"

/*  The last User-Id checked and the verdict, valid while the ZAP
    handler's generation has not moved: a run of events from one peer
    costs one 40-byte compare each, not a decode and a lookup. */
typedef struct auth_cache {
    char user_id[NERVE_Z85_KEY_LEN + 1];
    uint64_t generation;
    bool allowed;
    bool valid;
} auth_cache_t;

/*  Events the engine loop decodes ahead of deciding them, so that their
    register states load from memory together (server.c, s_on_events). */
#define SERVER_GROUP 8

typedef struct server {
    manager_config_t *cfg;
    void *ctx;
    void *events, *publisher, *tap, *control, *inject;
    char inject_endpoint[64];
    regstore_t *store;
    engine_t *engine;
    ruleset_t *rules;
    worker_t *worker;
    bool worker_abandoned; /* a reaction outlived the stop: skip zmq_ctx_term */
    nerve_wire_decoder_t *decoder;
    nerve_wire_decoder_t *group_decoder[SERVER_GROUP]; /* s_on_events' look-ahead */
    msgpack_sbuffer buf;
    presence_t *presence;
    delivery_t *delivery;
    internal_event_t *internal;   /* queue of internal events */
    size_t ninternal, internal_cap;
    bool handling;                /* inside s_handle_event */
    nerve_metrics_t *metrics;     /* NULL when `metrics:` is off */
    nerve_mtext_t *mtext;
    nerve_histo_t latency;        /* read → decision, per event */
    nerve_zap_t *zap;             /* NULL when no socket is a CURVE server */
    bool events_curve, control_curve, tap_curve, publisher_curve;
    char public_key[NERVE_Z85_KEY_LEN + 1]; /* ours, when CURVE is used */
    char tap_bound[512];                    /* the tap's bound endpoint, for re-binding */
    uint64_t tap_generation;                /* zap generation the tap was bound at */
    uint64_t tap_rebind_due_ms;             /* a failed re-bind is tried again then */
    auth_cache_t auth;
    int inotify_fd;
    uint64_t reload_due_ms;     /* a file changed: reload at this time */
    uint64_t next_commit_ms;
    uint64_t start_ns;
    reload_status_t reload;
    server_counters_t counters;
} server_t;

/*  Opens the store, loads the rules (a failure here is fatal: the manager
    does not start with broken rules), binds and connects the sockets. */
int server_start(server_t *self, manager_config_t *cfg);

/*  Runs until server_request_stop(). Returns 0 on a clean stop. */
int server_run(server_t *self);

/*  Closes everything; registers are flushed and synced (a SIGTERM loses
    nothing). */
void server_stop(server_t *self);

/*  For a message received on a CURVE server socket (events, control):
    true if its sender's key (User-Id) is still admitted. Always true for
    sockets that are not CURVE (`curve` false). Cached per peer. */
bool server_peer_allowed(server_t *self, zmq_msg_t *msg, bool curve);

/*  Async-signal-safe: ask the loop to stop, or to reload. */
void server_request_stop(void);
void server_request_reload(void);

/*  Reloads rules and modules now; atomic (see DESIGN.md). Returns 0 or the
    error (also kept in self->reload and emitted as an event). */
int server_reload(server_t *self, const char *why);

#endif
