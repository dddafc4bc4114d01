/*  actor.h — nerve-actor's loop: reactions in, results and heartbeats out.

    One actor per host. It connects a SUB socket to the publisher,
    subscribed to exactly @all/, @host/<id>/ and @group/<g>/ for each of
    its groups, and a PUSH socket to the manager's events. For each
    message on the SUB it:

      1. checks that frame 1 is exactly one of its own topics (a prefix
         subscription alone would let @host/web1/x reach web1);
      2. decodes the reaction (nerve_wire_decode_reaction); a malformed one
         is dropped and counted by reason;
      3. drops it when its deadline has passed (counted);
      4. asks the recent-id cache (recent.h): a repeat of an id still
         queued or running is ignored, a repeat of a finished one gets the
         same result event again, without running;
      5. resolves `fn` from its runset (runset.h: the reactions modules
         along its own module path, loaded at start, and its secrets) and
         hands it to the worker pool (pool.h).

    Every reaction it runs or refuses (unknown function, queue full)
    produces one result event /nerve/result/<id>; every `heartbeat` it
    sends /nerve/actor/<id>/alive with {groups, version, uptime_s}. Both
    sockets reconnect by themselves (ZeroMQ), with ZMTP heartbeats so a
    vanished peer is noticed and reconnected.

    Reloading (actor_request_reload, SIGHUP in nerve-actor): the loop
    loads a new runset beside the running one, reading the modules along
    `modules` and the `secrets:` file again. If all of it loads, reactions
    from then on get the new one; reactions already queued or running
    finish with the runset they were dispatched with (each job holds a
    reference). Otherwise nothing changes, and the failure, with each
    refused file and why, is logged, sent as /nerve/actor/<id>/reload/failed
    {reason, trigger, value: failures so far}, and kept for the status: the
    next heartbeat carries it in `reload`, and the metrics in
    nerve_actor_reload_*. The other keys of the config (id, groups,
    endpoints, allow, workers, …) need a restart.

    Stopping (actor_request_stop, SIGTERM in nerve-actor): the SUB is
    closed first, so nothing new is taken; queued reactions are dropped
    unrun (the manager retries host reactions after the restart); running
    ones get up to `timeout` + 1 s to finish, and their results are sent.

    Threading: actor_run() runs the loop on the calling thread; the pool's
    threads run the reactions. actor_request_stop() and
    actor_request_reload() may be called from any thread or a signal
    handler.
*/
#ifndef NERVE_ACTOR_ACTOR_H
#define NERVE_ACTOR_ACTOR_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nerve/wire.h>

typedef struct actor_stats {
    uint64_t received;                              /* messages taken from the SUB */
    uint64_t not_mine;                              /* topic not exactly one of ours: ignored */
    uint64_t malformed;                             /* refused by the decoder… */
    uint64_t malformed_by[NERVE_WIRE_REASON_COUNT]; /* …by reason */
    uint64_t expired;                               /* past their deadline: dropped */
    uint64_t repeats_done;                          /* repeat of a finished id: result re-sent */
    uint64_t repeats_pending;                       /* repeat of a queued or running id: ignored */
    uint64_t submitted;                             /* given to the workers */
    uint64_t refused;                               /* answered ok:false without running */
    uint64_t results;                               /* result events sent (first sends) */
    uint64_t events;                                /* events reactions emitted, forwarded */
    uint64_t heartbeats;
    uint64_t send_dropped; /* messages the manager socket refused (queue full) */
} actor_stats_t;

/*  How the last load of the runset went (at start, then each reload). */
typedef struct actor_reload_status {
    uint64_t attempts; /* reloads tried since start */
    uint64_t failures; /* reloads that failed: the running runset was kept */
    bool ok;           /* the last load had no error (a start may have refused a module) */
    uint64_t at_ns;    /* when it was, wall clock */
    size_t modules;    /* reactions modules loaded in the running runset */
    size_t refused;    /* modules the running runset refused (only after a start) */
    char error[1024];  /* the last load's error, each refused file and why; "" when ok */
} actor_reload_status_t;

typedef struct actor actor_t;

/*  Creates the actor: the module set, the recent-id cache, the sockets
    (connected; peers may come later) and the worker pool. Sets
    NERVE_SYSTEMCTL in the environment to cfg->systemctl, before any of
    its threads start, for reactions.service. `cfg` must outlive the
    actor. Returns NULL (logged) on failure. */
actor_t *actor_new(const actor_config_t *cfg);

/*  Runs the loop until actor_request_stop(), then stops as described
    above. Returns 0, or NERVE_EIO if polling failed. */
int actor_run(actor_t *self);

/*  Asks the loop to stop. Async-signal-safe. */
void actor_request_stop(actor_t *self);

/*  Asks the loop to reload its runset, as described above, at its next
    turn (within 100 ms). Async-signal-safe. */
void actor_request_reload(actor_t *self);

/*  How the last load went. Call from the loop's thread or after
    actor_run returned. */
void actor_reload_status(const actor_t *self, actor_reload_status_t *out);

/*  Closes everything (waiting up to 2 s for messages still queued to the
    manager) and sets *self to NULL. Returns 0, or NERVE_ETIMEDOUT when a
    reaction was still running and was left behind: its thread still runs
    module code, so the process should leave with _exit() rather than
    exit(). Safe on NULL and twice. */
int actor_destroy(actor_t **self);

/*  The counters. Call from the loop's thread or after actor_run returned. */
void actor_stats(const actor_t *self, actor_stats_t *out);

#endif
