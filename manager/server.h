/*  server.h — the nerve-manager daemon: sockets, the engine loop, reload,
    and the control socket.

    One thread runs the loop: it polls the events socket (PULL), the inject
    socket (what local reactions send back), the control socket (ROUTER)
    and an inotify descriptor on the rules and module directories; drains
    events in batches through the engine; publishes accepted events,
    reactions and results on the tap (PUB); pushes targeted reactions to
    the publisher (PUSH, queued while it is down); and hands the register
    store a flush every commit_interval.

    The struct is visible to control.c, which answers the CLI's requests;
    nothing else reaches inside.
*/
#ifndef NERVE_MANAGER_SERVER_H
#define NERVE_MANAGER_SERVER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <nerve/metrics.h>
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

typedef struct server {
    manager_config_t *cfg;
    void *ctx;
    void *events, *publisher, *tap, *control, *inject;
    char inject_endpoint[64];
    regstore_t *store;
    engine_t *engine;
    ruleset_t *rules;
    worker_t *worker;
    nerve_wire_decoder_t *decoder;
    msgpack_sbuffer buf;
    presence_t *presence;
    delivery_t *delivery;
    internal_event_t *internal;   /* queue of internal events */
    size_t ninternal, internal_cap;
    bool handling;                /* inside s_handle_event */
    nerve_metrics_t *metrics;     /* NULL when `metrics:` is off */
    nerve_mtext_t *mtext;
    nerve_histo_t latency;        /* read → decision, per event */
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

/*  Async-signal-safe: ask the loop to stop, or to reload. */
void server_request_stop(void);
void server_request_reload(void);

/*  Reloads rules and modules now; atomic (see DESIGN.md). Returns 0 or the
    error (also kept in self->reload and emitted as an event). */
int server_reload(server_t *self, const char *why);

#endif
