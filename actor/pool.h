/*  pool.h — the actor's reaction workers.

    The actor's loop never runs a reaction itself: it resolves the function
    from its own module path and submits a job to a bounded queue served by
    a few threads. A full queue refuses the job at once (the loop answers
    "actor queue full"), so a burst can never make the loop wait.

    Each thread owns an inproc PUSH socket to the loop's inbox (a PULL the
    loop binds). Everything a reaction produces goes there, as multipart
    messages the loop forwards to the manager:

        ["event", tag, payload]             api->emit / emit_raw (wire v1)
        ["result", id(16), tag, payload]    the reaction's result event

    so the loop can remember each result (recent.h) before sending it. The
    host API given to reaction functions (module.h) is implemented here:
    emit sends an event as this actor (host = actor id), register_set is
    NERVE_ESTATE (registers live on the manager), allowed() answers from
    the actor's allow: policy, host_id is the actor id. A function may call
    the API only from the thread it was called on, during the call.

    A job whose deadline passed while it waited in the queue is not run;
    its result (ok false, rc NERVE_ETIMEDOUT) says so.

    Worker threads block every signal: SIGTERM reaches the loop, and the
    processes reactions spawn start from a clean mask (they reset it).
*/
#ifndef NERVE_ACTOR_POOL_H
#define NERVE_ACTOR_POOL_H

#include "allow.h"
#include "runset.h"

#include <msgpack.h>
#include <stdint.h>

#include <nerve/module.h>
#include <nerve/wire.h>

/*  One reaction to run. `r.args` points into `zone`, which the job owns.
    `fn` and the secret strings in `r.args` come from `runset`, of which the
    job holds a reference: a reload while the job waits or runs does not
    pull its code or its args from under it. */
typedef struct pool_job {
    nerve_reaction_t r;
    msgpack_zone *zone;
    nerve_resolved_t fn;
    runset_t *runset;
} pool_job_t;

typedef struct pool_config {
    void *zmq_ctx;
    const char *inbox;          /* the loop's inproc PULL endpoint */
    const char *host_id;        /* this actor's id (copied) */
    const actor_allow_t *allow; /* read-only, outlives the pool */
    size_t threads;             /* ≥ 1 */
    size_t queue_max;           /* ≥ 1 */
    uint32_t timeout_ms;        /* given to every call as timeout_ms */
} pool_config_t;

typedef struct pool_stats {
    uint64_t ok;        /* ran and succeeded */
    uint64_t failed;    /* ran and returned an error (prepare errors too) */
    uint64_t refused;   /* queue full (or closing) at submit */
    uint64_t dropped;   /* queued but never run: the pool was closed */
    uint64_t late;      /* not run: the deadline passed while queued (failed too) */
    uint64_t emitted;   /* events sent through api->emit/emit_raw */
    uint64_t emit_full; /* emits refused: the loop's inbox was full */
    size_t queued;      /* waiting now */
    size_t running;     /* running now */
} pool_stats_t;

typedef struct pool pool_t;

/*  Starts the threads. Returns NULL (logged) on failure. */
pool_t *pool_new(const pool_config_t *cfg);

/*  Makes a job from a decoded reaction: copies the struct, deep-copies
    args into the job's own zone, and takes a reference on `runset` (where
    fn was resolved; may be NULL in tests). NULL on OOM. */
pool_job_t *pool_job_new(const nerve_reaction_t *r, const nerve_resolved_t *fn, runset_t *runset);

/*  Frees a job, dropping its runset reference (the last one unloads that
    runset's modules: on a worker thread, after the job ran), and sets *job
    to NULL. Safe on NULL. */
void pool_job_free(pool_job_t **job);

/*  Queues a job. On 0 the pool owns it and *job is NULL; on NERVE_EFULL
    (queue full or pool closed) the caller still owns it. */
int pool_submit(pool_t *self, pool_job_t **job);

/*  Jobs queued or running now. */
size_t pool_busy(pool_t *self);

/*  Stops taking jobs and drops the queued ones, calling dropped(arg, id)
    for each (dropped may be NULL). Running jobs go on. */
void pool_close(pool_t *self, void (*dropped)(void *arg, const uint8_t *id), void *arg);

/*  Closes the pool, waits up to wait_ms for the running jobs, joins the
    threads and frees everything; *self becomes NULL. Returns 0, or
    NERVE_ETIMEDOUT when a job is still running: the pool is then left
    alive on purpose (its threads still use it) and the caller must not
    terminate the ZeroMQ context. Safe on NULL. */
int pool_destroy(pool_t **self, uint64_t wait_ms);

void pool_stats(pool_t *self, pool_stats_t *out);

#endif
