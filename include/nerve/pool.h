/*  nerve/pool.h — a bounded queue of jobs served by a few threads.

    Reactions run off the thread that decides them: the manager's engine
    and the actor's loop each hand jobs to a pool and never wait for one.
    A full queue refuses the job at once, so a burst cannot make the
    submitter wait; what to say about a refused job is the submitter's
    business (nerve_pool_submit() tells it).

    A job is an opaque pointer. The pool calls `run` with it on one of its
    threads, and from then on the job is run's to free. A job that will
    never run (the pool was closed while it waited) goes to `drop`, which
    frees it too. Each thread may have state of its own (a socket, buffers),
    made by `thread_new` on the thread that starts the pool and passed to
    every run on that thread, so a job's code needs no lock to use it.

    Pool threads start with the daemon's signals blocked (faults aside:
    nerve_daemon_thread() in nerve/daemon.h): signals go to the main
    thread, whose poll they must interrupt, and a process a job spawns
    starts from a known mask (it resets it).

    Stopping: nerve_pool_destroy() closes the queue, drops what waits, and
    waits a bounded time for what runs. A job that does not finish in time
    (a reaction stuck in an operator's module) is left running: the pool
    is then kept alive for it on purpose, and the daemon goes on shutting
    down without it.
*/
#ifndef NERVE_POOL_H
#define NERVE_POOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nerve_pool nerve_pool_t;

typedef struct nerve_pool_config {
    const char *name; /* thread name for top -H and perf (≤ 15 bytes), and log id */
    size_t threads;   /* ≥ 1 (0 means 1) */
    size_t queue_max; /* jobs waiting at most (0 means 1) */
    void *arg;        /* passed to every callback */
    /*  Makes thread `index`'s state, on the thread calling nerve_pool_new().
        NULL fails the pool. Optional: without it the state is NULL. */
    void *(*thread_new)(void *arg, size_t index);
    /*  Frees a thread's state after the thread ended. Optional. */
    void (*thread_destroy)(void *arg, void *thread_state);
    /*  Runs one job on a pool thread, and frees it. Required. */
    void (*run)(void *arg, void *thread_state, void *job);
    /*  Frees a job that will never run. Required. */
    void (*drop)(void *arg, void *job);
} nerve_pool_config_t;

typedef struct nerve_pool_stats {
    uint64_t refused; /* submits refused: queue full, or closed */
    uint64_t dropped; /* queued, never run: the pool was closed */
    size_t queued;    /* waiting now */
    size_t running;   /* running now */
} nerve_pool_stats_t;

/*  Starts the threads. Returns NULL (logged) on failure: out of memory, a
    thread_new that failed, or a thread that could not start. */
nerve_pool_t *nerve_pool_new(const nerve_pool_config_t *cfg);

/*  Queues `job`. Returns 0 (the pool owns it now) or NERVE_EFULL when the
    queue is full or the pool closed (the caller still owns it). */
int nerve_pool_submit(nerve_pool_t *self, void *job);

/*  Jobs waiting or running now. */
size_t nerve_pool_busy(nerve_pool_t *self);

/*  Stops taking jobs, and drops every waiting one: drop(drop_arg, job) for
    each, in queue order, under the pool's lock (it must not call the
    pool), or the configured drop when `drop` is NULL. Jobs running now go
    on. */
void nerve_pool_close(nerve_pool_t *self, void (*drop)(void *drop_arg, void *job), void *drop_arg);

/*  Closes the pool, waits up to wait_ms for the running jobs, ends the
    threads and frees everything (thread_destroy for each state); *self
    becomes NULL. Returns 0, or NERVE_ETIMEDOUT when a job still runs: the
    pool is then left alive on purpose, for its threads, which still use it
    and their states (a ZeroMQ socket in a state keeps its context from
    terminating: skip zmq_ctx_term then). Safe on NULL. */
int nerve_pool_destroy(nerve_pool_t **self, uint64_t wait_ms);

void nerve_pool_stats(nerve_pool_t *self, nerve_pool_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif
