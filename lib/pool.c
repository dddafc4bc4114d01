/*  pool.c — a bounded queue of jobs served by a few threads (see
    nerve/pool.h). The manager's local reactions (manager/worker.c) and the
    actor's (actor/pool.c) both run on one.

    A mutex and two condition variables guard a ring of job pointers:
    `wake` tells threads there is work (or that they must end), `idle`
    tells nerve_pool_destroy() that nothing runs any more.
*/
#define _GNU_SOURCE /* pthread_setname_np() */
#include <nerve/daemon.h>
#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/pool.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct thread {
    struct nerve_pool *pool;
    pthread_t id;
    void *state;
    bool started;
} thread_t;

struct nerve_pool {
    nerve_pool_config_t cfg;
    char name[16];
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t idle; /* CLOCK_MONOTONIC, for the bounded wait */
    void **ring;
    size_t cap, head, count;
    size_t running;
    bool closed;   /* no more submits */
    bool stopping; /* threads end */
    thread_t *threads;
    size_t nthreads;
    nerve_pool_stats_t stats;
};

/*  Takes the oldest waiting job. Called with the lock held, count > 0. */
static void *s_take(nerve_pool_t *self)
{
    void *job = self->ring[self->head];
    self->ring[self->head] = NULL;
    self->head = (self->head + 1) % self->cap;
    self->count--;
    return job;
}

static void *s_thread(void *arg)
{
    thread_t *t = arg;
    nerve_pool_t *self = t->pool;
    for (;;) {
        pthread_mutex_lock(&self->lock);
        while (!self->stopping && self->count == 0)
            pthread_cond_wait(&self->wake, &self->lock);
        if (self->stopping) {
            pthread_mutex_unlock(&self->lock);
            return NULL;
        }
        void *job = s_take(self);
        self->running++;
        pthread_mutex_unlock(&self->lock);

        self->cfg.run(self->cfg.arg, t->state, job);

        pthread_mutex_lock(&self->lock);
        self->running--;
        if (self->running == 0 && self->count == 0)
            pthread_cond_broadcast(&self->idle);
        pthread_mutex_unlock(&self->lock);
    }
}

/*  Starts thread `t` with the daemon's signals blocked (nerve/daemon.h).
    Returns pthread_create()'s error number. */
static int s_start(nerve_pool_t *self, thread_t *t)
{
    int rc = nerve_daemon_thread(&t->id, s_thread, t);
    if (rc != 0)
        return rc;
    t->started = true;
    pthread_setname_np(t->id, self->name);
    return 0;
}

/*  Frees what nerve_pool_new() made; every thread has ended. */
static void s_free(nerve_pool_t *self)
{
    while (self->count)
        self->cfg.drop(self->cfg.arg, s_take(self));
    for (size_t i = 0; i < self->nthreads; i++)
        if (self->threads[i].state && self->cfg.thread_destroy)
            self->cfg.thread_destroy(self->cfg.arg, self->threads[i].state);
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->wake);
    pthread_cond_destroy(&self->idle);
    free(self->threads);
    free(self->ring);
    free(self);
}

nerve_pool_t *nerve_pool_new(const nerve_pool_config_t *cfg)
{
    nerve_pool_t *self = calloc(1, sizeof *self);
    if (!self) {
        NERVE_ERROR(cfg->name ? cfg->name : "pool", "out of memory starting the pool");
        return NULL;
    }
    self->cfg = *cfg;
    snprintf(self->name, sizeof self->name, "%s", cfg->name ? cfg->name : "pool");
    self->cap = cfg->queue_max ? cfg->queue_max : 1;
    size_t threads = cfg->threads ? cfg->threads : 1;
    self->ring = calloc(self->cap, sizeof *self->ring);
    self->threads = calloc(threads, sizeof *self->threads);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    pthread_cond_init(&self->idle, &ca);
    pthread_condattr_destroy(&ca);
    if (!self->ring || !self->threads) {
        NERVE_ERROR(self->name, "out of memory starting %zu threads", threads);
        s_free(self);
        return NULL;
    }
    for (size_t i = 0; i < threads; i++) {
        thread_t *t = &self->threads[i];
        t->pool = self;
        self->nthreads++;
        if (cfg->thread_new && !(t->state = cfg->thread_new(cfg->arg, i))) {
            NERVE_ERROR(self->name, "cannot set up thread %zu", i);
            nerve_pool_destroy(&self, 0);
            return NULL;
        }
        int rc = s_start(self, t);
        if (rc != 0) {
            NERVE_ERROR(self->name, "cannot start thread %zu: %s", i, strerror(rc));
            nerve_pool_destroy(&self, 0);
            return NULL;
        }
    }
    return self;
}

int nerve_pool_submit(nerve_pool_t *self, void *job)
{
    pthread_mutex_lock(&self->lock);
    if (self->count == self->cap || self->closed) {
        self->stats.refused++;
        pthread_mutex_unlock(&self->lock);
        return NERVE_EFULL;
    }
    self->ring[(self->head + self->count) % self->cap] = job;
    self->count++;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    return 0;
}

size_t nerve_pool_busy(nerve_pool_t *self)
{
    pthread_mutex_lock(&self->lock);
    size_t n = self->count + self->running;
    pthread_mutex_unlock(&self->lock);
    return n;
}

void nerve_pool_close(nerve_pool_t *self, void (*drop)(void *drop_arg, void *job), void *drop_arg)
{
    if (!drop) {
        drop = self->cfg.drop;
        drop_arg = self->cfg.arg;
    }
    pthread_mutex_lock(&self->lock);
    self->closed = true;
    while (self->count) {
        self->stats.dropped++;
        drop(drop_arg, s_take(self));
    }
    if (self->running == 0)
        pthread_cond_broadcast(&self->idle);
    pthread_mutex_unlock(&self->lock);
}

/*  CLOCK_MONOTONIC now + ms. */
static struct timespec s_deadline(uint64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    return until;
}

int nerve_pool_destroy(nerve_pool_t **self_p, uint64_t wait_ms)
{
    if (!self_p || !*self_p)
        return 0;
    nerve_pool_t *self = *self_p;
    *self_p = NULL;
    nerve_pool_close(self, NULL, NULL);
    struct timespec until = s_deadline(wait_ms);
    pthread_mutex_lock(&self->lock);
    while (self->running > 0)
        if (pthread_cond_timedwait(&self->idle, &self->lock, &until) == ETIMEDOUT)
            break;
    if (self->running > 0) {
        size_t running = self->running;
        pthread_mutex_unlock(&self->lock);
        NERVE_WARN(self->name, "%zu job(s) still running after %llu ms; leaving them", running,
                   (unsigned long long)wait_ms);
        return NERVE_ETIMEDOUT;
    }
    self->stopping = true;
    pthread_cond_broadcast(&self->wake);
    pthread_mutex_unlock(&self->lock);
    for (size_t i = 0; i < self->nthreads; i++)
        if (self->threads[i].started)
            pthread_join(self->threads[i].id, NULL);
    s_free(self);
    return 0;
}

void nerve_pool_stats(nerve_pool_t *self, nerve_pool_stats_t *out)
{
    pthread_mutex_lock(&self->lock);
    *out = self->stats;
    out->queued = self->count;
    out->running = self->running;
    pthread_mutex_unlock(&self->lock);
}
