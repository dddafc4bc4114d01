/*  worker.h — local reactions, run off the engine thread.

    A reaction without `target:` runs on the manager. The engine must never
    wait for one, so it submits a job to a bounded queue served by a small
    pool of threads; when the queue is full the job is refused, and the
    caller counts it (nothing is dropped silently).

    Whatever a reaction sends back — events it fires, registers it sets, and
    its own result event (/nerve/result/<manager id>) — goes to the engine
    over an inproc PUSH socket per worker thread, as multipart messages:

        ["event", tag, payload]          an event (wire v1 frames)
        ["regset", scope, key, value]    value = packed msgpack

    so the engine thread stays the only writer of registers.
*/
#ifndef NERVE_MANAGER_WORKER_H
#define NERVE_MANAGER_WORKER_H

#include <msgpack.h>
#include <nerve/wire.h>
#include <stdint.h>

#include "rules.h"

/*  The timeout_ms every local reaction is called with. */
#define WORKER_REACTION_TIMEOUT_MS 30000

typedef struct worker_job {
    ruleset_t *rs;                 /* a reference, released after the run */
    const rule_def_t *rule;
    const reaction_def_t *def;
    msgpack_zone *zone;            /* owns args and data */
    msgpack_object args;
    msgpack_object data;
    nerve_event_ref_t event;
    uint32_t hops;                 /* the triggering event's hops */
    uint8_t reaction_id[NERVE_ID_SIZE];
} worker_job_t;

typedef struct worker_stats {
    uint64_t done;       /* ran and succeeded */
    uint64_t failed;     /* ran and returned an error */
    uint64_t refused;    /* queue full at submit */
    uint64_t depth;      /* waiting now */
} worker_stats_t;

typedef struct worker worker_t;

/*  Starts `threads` threads serving a queue of at most `queue_max` jobs.
    Each connects a PUSH socket to `inject_endpoint` (inproc, on zmq_ctx).
    `host_id` is the manager's id (results, emitted events). */
worker_t *worker_new(void *zmq_ctx, const char *inject_endpoint, const char *host_id,
                     size_t threads, size_t queue_max);

/*  Queues a job; on 0 the worker owns *job (and sets it to NULL). On
    NERVE_EFULL (full, or self NULL: destroyed) the caller still owns it
    (free with worker_job_free). */
int worker_submit(worker_t *self, worker_job_t **job);

/*  Frees a job: its zone, its ruleset reference. */
void worker_job_free(worker_job_t **job);

/*  Stops taking jobs, drops the queued ones (counted in `refused`), and
    waits up to wait_ms for the running ones; *self becomes NULL. Returns
    0, or NERVE_ETIMEDOUT when a reaction still runs (stuck in a module):
    the worker is then left alive for it, and its sockets keep the ZeroMQ
    context from terminating, so the caller must not zmq_ctx_term() it.
    Safe on NULL and twice. */
int worker_destroy(worker_t **self, uint64_t wait_ms);

void worker_stats(worker_t *self, worker_stats_t *out);

/*  Jobs waiting or running now. */
size_t worker_busy(worker_t *self);

#endif
