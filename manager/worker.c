/*  worker.c — the local reaction pool (see worker.h).

    The queue and its threads are a nerve_pool (lib/pool.c); this file is
    what runs on them. Each thread owns one PUSH socket back to the engine
    (its pool thread state); the host API given to reaction functions
    writes to that socket, so a module may call api->emit from the thread
    it was called on and nowhere else.
*/
#include "worker.h"

#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/pool.h>
#include <nerve/value.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define OUTPUT_CAP NERVE_RESULT_OUTPUT_MAX

typedef struct thread_ctx {
    struct worker *worker;
    void *push;
    const worker_job_t *job;   /* the job running, for the host API */
    msgpack_sbuffer buf;
    char *output;
} thread_ctx_t;

struct worker {
    void *ctx;
    char *inject;
    char *host_id;
    nerve_pool_t *pool;
    pthread_mutex_t lock; /* done, failed */
    uint64_t done, failed;
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
        .timeout_ms = WORKER_REACTION_TIMEOUT_MS,
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
        t->worker->done++;
    else
        t->worker->failed++;
    pthread_mutex_unlock(&t->worker->lock);
}

/* ------------------------------------------------------ pool callbacks */

static void s_pool_run(void *arg, void *thread_state, void *job)
{
    worker_job_t *j = job;
    s_run(thread_state, j);
    worker_job_free(&j);
}

static void s_pool_drop(void *arg, void *job)
{
    worker_job_t *j = job;
    worker_job_free(&j);
}

static void s_thread_destroy(void *arg, void *thread_state)
{
    thread_ctx_t *t = thread_state;
    if (t->push)
        zmq_close(t->push);
    msgpack_sbuffer_destroy(&t->buf);
    free(t->output);
    free(t);
}

/*  A thread's state: its socket to the engine, connected here. */
static void *s_thread_new(void *arg, size_t index)
{
    worker_t *self = arg;
    thread_ctx_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->worker = self;
    msgpack_sbuffer_init(&t->buf);
    t->output = malloc(OUTPUT_CAP + 1);
    t->push = zmq_socket(self->ctx, ZMQ_PUSH);
    int linger = 0, hwm = 0; /* never drop what a reaction sends back */
    if (t->push) {
        zmq_setsockopt(t->push, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(t->push, ZMQ_SNDHWM, &hwm, sizeof hwm);
    }
    if (!t->output || !t->push || zmq_connect(t->push, self->inject) != 0) {
        s_thread_destroy(self, t);
        return NULL;
    }
    return t;
}

/* ------------------------------------------------------------------ worker */

static void s_free(worker_t *self)
{
    pthread_mutex_destroy(&self->lock);
    free(self->inject);
    free(self->host_id);
    free(self);
}

worker_t *worker_new(void *zmq_ctx, const char *inject_endpoint, const char *host_id,
                     size_t threads, size_t queue_max)
{
    worker_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->ctx = zmq_ctx;
    self->inject = strdup(inject_endpoint);
    self->host_id = strdup(host_id);
    self->rl_emit = (nerve_ratelimit_t)NERVE_RATELIMIT_INIT(1000);
    pthread_mutex_init(&self->lock, NULL);
    nerve_pool_config_t pc = {
        .name = "worker", /* for top -H and perf */
        .threads = threads,
        .queue_max = queue_max,
        .arg = self,
        .thread_new = s_thread_new,
        .thread_destroy = s_thread_destroy,
        .run = s_pool_run,
        .drop = s_pool_drop,
    };
    if (!self->inject || !self->host_id || !(self->pool = nerve_pool_new(&pc))) {
        s_free(self);
        return NULL;
    }
    return self;
}

int worker_submit(worker_t *self, worker_job_t **job)
{
    if (!self || nerve_pool_submit(self->pool, *job) != 0)
        return NERVE_EFULL;
    *job = NULL;
    return 0;
}

int worker_destroy(worker_t **self_p, uint64_t wait_ms)
{
    if (!self_p || !*self_p)
        return 0;
    worker_t *self = *self_p;
    *self_p = NULL;
    if (nerve_pool_destroy(&self->pool, wait_ms) != 0)
        return NERVE_ETIMEDOUT; /* its threads still use self */
    s_free(self);
    return 0;
}

void worker_stats(worker_t *self, worker_stats_t *out)
{
    nerve_pool_stats_t ps;
    nerve_pool_stats(self->pool, &ps);
    pthread_mutex_lock(&self->lock);
    out->done = self->done;
    out->failed = self->failed;
    pthread_mutex_unlock(&self->lock);
    out->refused = ps.refused + ps.dropped;
    out->depth = ps.queued;
}

size_t worker_busy(worker_t *self)
{
    return nerve_pool_busy(self->pool);
}
