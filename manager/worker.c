/*  worker.c — the local reaction pool (see worker.h).

    A mutex and condition variable guard a ring of job pointers. Each thread
    owns one PUSH socket back to the engine; the host API given to reaction
    functions writes to that socket, so a module may call api->emit from
    the thread it was called on and nowhere else.
*/
#define _GNU_SOURCE /* pthread_setname_np() */
#include "worker.h"

#include <nerve/log.h>
#include <nerve/value.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define OUTPUT_CAP NERVE_RESULT_OUTPUT_MAX

typedef struct thread_ctx {
    struct worker *worker;
    pthread_t thread;
    void *push;
    const worker_job_t *job;   /* the job running, for the host API */
    msgpack_sbuffer buf;
    char *output;
} thread_ctx_t;

struct worker {
    void *ctx;
    char *inject;
    char *host_id;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    worker_job_t **ring;
    size_t cap, head, count;
    bool stopping;
    thread_ctx_t *threads;
    size_t nthreads;
    worker_stats_t stats;
    nerve_ratelimit_t rl_emit;
};

void worker_job_free(worker_job_t **job_p)
{
    if (!job_p || !*job_p)
        return;
    worker_job_t *job = *job_p;
    if (job->zone)
        msgpack_zone_free(job->zone);
    ruleset_unref(&job->rs);
    free(job);
    *job_p = NULL;
}

/* ------------------------------------------------------ host API (thread) */

static int s_send_parts(thread_ctx_t *t, const void *const *parts, const size_t *sizes,
                        size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int flags = i + 1 < n ? ZMQ_SNDMORE : 0;
        if (zmq_send(t->push, parts[i], sizes[i], flags) < 0)
            return NERVE_EIO;
    }
    return 0;
}

static int s_emit_packed(thread_ctx_t *t, const char *tag, const void *data, size_t len)
{
    const worker_job_t *job = t->job;
    nerve_event_t ev;
    memset(&ev, 0, sizeof ev);
    size_t tl = strlen(tag);
    if (nerve_wire_check_tag(tag, tl) != NERVE_WIRE_OK)
        return NERVE_EINVAL;
    memcpy(ev.tag, tag, tl + 1);
    ev.tag_len = tl;
    nerve_wire_new_id(ev.id);
    ev.ts = nerve_clock_wall_ns();
    snprintf(ev.host, sizeof ev.host, "%s", t->worker->host_id);
    ev.data_raw = data;
    ev.data_raw_len = len;
    ev.hops = job ? job->hops + 1 : 0;
    if (ev.hops > NERVE_HOPS_MAX) {
        NERVE_LOG_RL(&t->worker->rl_emit, NERVE_LOG_WARN, "worker",
                     "%s not fired: it would be hop %u (a reaction loop?); the limit is %d",
                     tag, ev.hops, NERVE_HOPS_MAX);
        return NERVE_ERANGE;
    }
    msgpack_sbuffer payload;
    msgpack_sbuffer_init(&payload);
    int rc = nerve_wire_encode_event(&ev, &payload);
    if (rc == 0) {
        const void *parts[] = {"event", ev.tag, payload.data};
        size_t sizes[] = {5, ev.tag_len, payload.size};
        rc = s_send_parts(t, parts, sizes, 3);
    }
    msgpack_sbuffer_destroy(&payload);
    return rc;
}

static int s_api_emit_raw(void *host, const char *tag, const void *data, size_t len)
{
    return s_emit_packed(host, tag, data, len);
}

static int s_api_emit(void *host, const char *tag, const msgpack_object *data)
{
    thread_ctx_t *t = host;
    t->buf.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &t->buf, msgpack_sbuffer_write);
    if (data)
        msgpack_pack_object(&pk, *data);
    else
        msgpack_pack_map(&pk, 0);
    return s_emit_packed(t, tag, t->buf.data, t->buf.size);
}

static int s_api_register_set(void *host, const char *scope, const char *key,
                              const msgpack_object *value)
{
    thread_ctx_t *t = host;
    if (!scope || !*scope || !key || !value)
        return NERVE_EINVAL;
    t->buf.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &t->buf, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *value);
    const void *parts[] = {"regset", scope, key, t->buf.data};
    size_t sizes[] = {6, strlen(scope), strlen(key), t->buf.size};
    return s_send_parts(t, parts, sizes, 4);
}

static int s_api_allowed(void *host, const char *kind, const char *what)
{
    return NERVE_EPERM; /* the manager runs no commands, services or files */
}

static const char *s_api_host_id(void *host)
{
    return ((thread_ctx_t *)host)->worker->host_id;
}

static const nerve_host_api_t s_api = {
    .size = sizeof(nerve_host_api_t),
    .emit = s_api_emit,
    .emit_raw = s_api_emit_raw,
    .register_set = s_api_register_set,
    .allowed = s_api_allowed,
    .host_id = s_api_host_id,
};

/* ------------------------------------------------------------- the thread */

static void s_send_result(thread_ctx_t *t, const worker_job_t *job, int rc,
                          const nerve_reaction_call_t *call, uint64_t took_us)
{
    nerve_event_t ev;
    msgpack_sbuffer scratch;
    msgpack_sbuffer_init(&scratch);
    if (nerve_wire_result_event(&ev, &scratch, t->worker->host_id, job->reaction_id,
                                job->def->fn, rc == 0, rc == 0 ? call->rc : rc, call->output,
                                call->output_len, took_us) == 0) {
        const worker_job_t *saved = t->job;
        t->job = NULL; /* a result is not a re-fired event: hops stay 0 */
        s_emit_packed(t, ev.tag, ev.data_raw, ev.data_raw_len);
        t->job = saved;
    }
    msgpack_sbuffer_destroy(&scratch);
}

static void s_run(thread_ctx_t *t, worker_job_t *job)
{
    t->job = job;
    nerve_reaction_call_t call = {
        .fn = job->def->fn,
        .args = &job->args,
        .prepared = job->def->prepared,
        .event = &job->event,
        .data = &job->data,
        .rule = job->rule->name,
        .reaction_id = job->reaction_id,
        .timeout_ms = 30000,
        .api = &s_api,
        .host = t,
        .output = t->output,
        .output_cap = OUTPUT_CAP,
    };
    t->output[0] = '\0';
    uint64_t start = nerve_clock_mono_ns();
    int rc = job->def->resolved.fn->fn.reaction(&call);
    uint64_t took_us = (nerve_clock_mono_ns() - start) / 1000;
    if (call.output_len > OUTPUT_CAP)
        call.output_len = OUTPUT_CAP;
    if (rc != 0)
        NERVE_LOG_RL(&t->worker->rl_emit, NERVE_LOG_WARN, "worker",
                     "%s (rule '%s') failed: %s: %.*s", job->def->fn, job->rule->name,
                     nerve_strerror(rc), (int)call.output_len, call.output);
    s_send_result(t, job, rc, &call, took_us);
    t->job = NULL;
    pthread_mutex_lock(&t->worker->lock);
    if (rc == 0)
        t->worker->stats.done++;
    else
        t->worker->stats.failed++;
    pthread_mutex_unlock(&t->worker->lock);
}

static void *s_thread(void *arg)
{
    thread_ctx_t *t = arg;
    worker_t *self = t->worker;
    for (;;) {
        pthread_mutex_lock(&self->lock);
        while (!self->stopping && self->count == 0)
            pthread_cond_wait(&self->wake, &self->lock);
        if (self->stopping) {
            pthread_mutex_unlock(&self->lock);
            break;
        }
        worker_job_t *job = self->ring[self->head];
        self->head = (self->head + 1) % self->cap;
        self->count--;
        pthread_mutex_unlock(&self->lock);
        s_run(t, job);
        worker_job_free(&job);
    }
    return NULL;
}

worker_t *worker_new(void *zmq_ctx, const char *inject_endpoint, const char *host_id,
                     size_t threads, size_t queue_max)
{
    worker_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->ctx = zmq_ctx;
    self->cap = queue_max ? queue_max : 1;
    self->inject = strdup(inject_endpoint);
    self->host_id = strdup(host_id);
    self->ring = calloc(self->cap, sizeof *self->ring);
    self->threads = calloc(threads ? threads : 1, sizeof *self->threads);
    self->rl_emit = (nerve_ratelimit_t)NERVE_RATELIMIT_INIT(1000);
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    if (!self->inject || !self->host_id || !self->ring || !self->threads) {
        worker_destroy(&self);
        return NULL;
    }
    for (size_t i = 0; i < (threads ? threads : 1); i++) {
        thread_ctx_t *t = &self->threads[i];
        t->worker = self;
        msgpack_sbuffer_init(&t->buf);
        t->output = malloc(OUTPUT_CAP + 1);
        t->push = zmq_socket(zmq_ctx, ZMQ_PUSH);
        int linger = 0, hwm = 0; /* never drop what a reaction sends back */
        if (t->push) {
            zmq_setsockopt(t->push, ZMQ_LINGER, &linger, sizeof linger);
            zmq_setsockopt(t->push, ZMQ_SNDHWM, &hwm, sizeof hwm);
        }
        if (!t->output || !t->push || zmq_connect(t->push, self->inject) != 0 ||
            pthread_create(&t->thread, NULL, s_thread, t) != 0) {
            NERVE_ERROR("worker", "cannot start worker thread %zu", i);
            if (t->push)
                zmq_close(t->push);
            t->push = NULL;
            free(t->output);
            t->output = NULL;
            msgpack_sbuffer_destroy(&t->buf);
            worker_destroy(&self);
            return NULL;
        }
        pthread_setname_np(t->thread, "worker"); /* for top -H and perf */
        self->nthreads++;
    }
    return self;
}

int worker_submit(worker_t *self, worker_job_t **job)
{
    pthread_mutex_lock(&self->lock);
    if (self->count == self->cap || self->stopping) {
        self->stats.refused++;
        pthread_mutex_unlock(&self->lock);
        return NERVE_EFULL;
    }
    self->ring[(self->head + self->count) % self->cap] = *job;
    self->count++;
    *job = NULL;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    return 0;
}

void worker_destroy(worker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    worker_t *self = *self_p;
    pthread_mutex_lock(&self->lock);
    self->stopping = true;
    pthread_cond_broadcast(&self->wake);
    pthread_mutex_unlock(&self->lock);
    for (size_t i = 0; i < self->nthreads; i++) {
        thread_ctx_t *t = &self->threads[i];
        pthread_join(t->thread, NULL);
        zmq_close(t->push);
        msgpack_sbuffer_destroy(&t->buf);
        free(t->output);
    }
    while (self->count) {
        worker_job_t *job = self->ring[self->head];
        self->head = (self->head + 1) % self->cap;
        self->count--;
        self->stats.refused++;
        worker_job_free(&job);
    }
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->wake);
    free(self->threads);
    free(self->ring);
    free(self->inject);
    free(self->host_id);
    free(self);
    *self_p = NULL;
}

void worker_stats(worker_t *self, worker_stats_t *out)
{
    pthread_mutex_lock(&self->lock);
    *out = self->stats;
    out->depth = self->count;
    pthread_mutex_unlock(&self->lock);
}
