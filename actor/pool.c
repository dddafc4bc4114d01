/*  pool.c — the actor's reaction workers (see pool.h).

    The queue and its threads are a nerve_pool (lib/pool.c); this file is
    what runs on them. Each thread keeps its own PUSH socket, output
    buffer and pack buffer (its pool thread state), so the host API needs
    no lock.
*/
#include "pool.h"

#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/pool.h>
#include <nerve/value.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define OUTPUT_CAP NERVE_RESULT_OUTPUT_MAX
#define INBOX_HWM  10000

typedef struct thread_ctx {
    struct pool *pool;
    void *push;
    const pool_job_t *job; /* the job running, for the host API */
    msgpack_sbuffer buf;   /* packing emitted data */
    msgpack_sbuffer frame; /* an encoded event */
    char *output;
} thread_ctx_t;

struct pool {
    void *zmq_ctx;
    char *inbox;
    char *host_id;
    const actor_allow_t *allow;
    uint32_t timeout_ms;
    nerve_pool_t *workers;
    pthread_mutex_t lock; /* stats */
    pool_stats_t stats;   /* ok failed late emitted emit_full; the rest from workers */
};

static nerve_ratelimit_t s_rl_refused = NERVE_RATELIMIT_INIT(1000);
static nerve_ratelimit_t s_rl_failed = NERVE_RATELIMIT_INIT(1000);

pool_job_t *pool_job_new(const nerve_reaction_t *r, const nerve_resolved_t *fn, runset_t *runset)
{
    pool_job_t *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->r = *r;
    job->fn = *fn;
    job->runset = runset_ref(runset);
    job->zone = msgpack_zone_new(1024);
    if (!job->zone || nerve_obj_copy(job->zone, &r->args, &job->r.args) != 0) {
        pool_job_free(&job);
        return NULL;
    }
    return job;
}

void pool_job_free(pool_job_t **job_p)
{
    if (!job_p || !*job_p)
        return;
    if ((*job_p)->zone)
        msgpack_zone_free((*job_p)->zone);
    runset_unref(&(*job_p)->runset);
    free(*job_p);
    *job_p = NULL;
}

/* ------------------------------------------------------ host API (thread) */

static int s_send(thread_ctx_t *t, const void *const *parts, const size_t *sizes, size_t n,
                  int flags)
{
    for (size_t i = 0; i < n; i++) {
        int more = i + 1 < n ? ZMQ_SNDMORE : 0;
        /* Only the first frame may fail with EAGAIN: once it is queued, the
           rest of a multipart message always follows. */
        if (zmq_send(t->push, parts[i], sizes[i], (i ? 0 : flags) | more) < 0)
            return errno == EAGAIN ? NERVE_EFULL : NERVE_EIO;
    }
    return 0;
}

/*  Encodes an event from this actor into t->frame; fills ev. */
static int s_encode(thread_ctx_t *t, nerve_event_t *ev, const char *tag, const void *data,
                    size_t len, uint32_t hops)
{
    size_t tl = tag ? strlen(tag) : 0;
    if (!tag || nerve_wire_check_tag(tag, tl) != NERVE_WIRE_OK)
        return NERVE_EINVAL;
    memset(ev, 0, sizeof *ev);
    memcpy(ev->tag, tag, tl + 1);
    ev->tag_len = tl;
    nerve_wire_new_id(ev->id);
    ev->ts = nerve_clock_wall_ns();
    snprintf(ev->host, sizeof ev->host, "%s", t->pool->host_id);
    ev->data_raw = data;
    ev->data_raw_len = len;
    ev->hops = hops;
    return nerve_wire_encode_event(ev, &t->frame);
}

static int s_api_emit_raw(void *host, const char *tag, const void *data, size_t len)
{
    thread_ctx_t *t = host;
    if (!data || !len)
        return NERVE_EINVAL;
    nerve_event_t ev;
    /*  An event fired by a reaction is one hop further than the event that
        caused the reaction (the reaction carries its hops): a loop through
        actors stops at NERVE_HOPS_MAX like one on the manager. */
    uint32_t hops = t->job ? t->job->r.hops + 1 : 1;
    if (hops > NERVE_HOPS_MAX)
        return NERVE_ERANGE;
    int rc = s_encode(t, &ev, tag, data, len, hops);
    if (rc != 0)
        return rc;
    const void *parts[] = {"event", ev.tag, t->frame.data};
    size_t sizes[] = {5, ev.tag_len, t->frame.size};
    rc = s_send(t, parts, sizes, 3, ZMQ_DONTWAIT);
    pthread_mutex_lock(&t->pool->lock);
    if (rc == 0)
        t->pool->stats.emitted++;
    else if (rc == NERVE_EFULL)
        t->pool->stats.emit_full++;
    pthread_mutex_unlock(&t->pool->lock);
    return rc;
}

static int s_api_emit(void *host, const char *tag, const msgpack_object *data)
{
    thread_ctx_t *t = host;
    t->buf.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &t->buf, msgpack_sbuffer_write);
    int err = data ? msgpack_pack_object(&pk, *data) : msgpack_pack_map(&pk, 0);
    if (err)
        return NERVE_ENOMEM;
    return s_api_emit_raw(host, tag, t->buf.data, t->buf.size);
}

static int s_api_register_set(void *host, const char *scope, const char *key,
                              const msgpack_object *value)
{
    return NERVE_ESTATE; /* registers live in the manager's LMDB */
}

static int s_api_allowed(void *host, const char *kind, const char *what)
{
    thread_ctx_t *t = host;
    char why[512];
    int rc = actor_allow_check(t->pool->allow, kind, what, why, sizeof why);
    if (rc != 0) {
        char hex[33] = "?";
        if (t->job)
            nerve_wire_id_hex(t->job->r.id, hex);
        NERVE_LOG_RL(&s_rl_refused, NERVE_LOG_WARN, "actor", "%s (reaction %s, rule '%s'): %s",
                     t->job ? t->job->r.fn : "?", hex, t->job ? t->job->r.rule : "", why);
    }
    return rc;
}

static const char *s_api_host_id(void *host)
{
    return ((thread_ctx_t *)host)->pool->host_id;
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

/*  Sends the result of one run to the loop. Blocking: a result is never
    dropped (the loop always drains its inbox). */
static void s_send_result(thread_ctx_t *t, const pool_job_t *job, bool ok, int64_t rc,
                          const char *output, size_t output_len, uint64_t took_us)
{
    nerve_event_t ev;
    msgpack_sbuffer data;
    msgpack_sbuffer_init(&data);
    if (nerve_wire_result_event(&ev, &data, t->pool->host_id, job->r.id, job->r.fn, ok, rc, output,
                                output_len, took_us) != 0 ||
        nerve_wire_encode_event(&ev, &t->frame) != 0) {
        NERVE_ERROR("actor", "cannot encode the result of %s", job->r.fn);
        msgpack_sbuffer_destroy(&data);
        return;
    }
    const void *parts[] = {"result", job->r.id, ev.tag, t->frame.data};
    size_t sizes[] = {6, NERVE_ID_SIZE, ev.tag_len, t->frame.size};
    if (s_send(t, parts, sizes, 4, 0) != 0)
        NERVE_ERROR("actor", "cannot hand over the result of %s: %s", job->r.fn,
                    zmq_strerror(errno));
    msgpack_sbuffer_destroy(&data);
}

static void s_run(thread_ctx_t *t, pool_job_t *job)
{
    const nerve_module_fn_t *fn = job->fn.fn;
    nerve_reaction_call_t call = {
        .fn = job->r.fn,
        .args = &job->r.args,
        .event = &job->r.event,
        .data = NULL,
        .rule = job->r.rule,
        .reaction_id = job->r.id,
        .timeout_ms = t->pool->timeout_ms,
        .api = &s_api,
        .host = t,
        .output = t->output,
        .output_cap = OUTPUT_CAP,
    };
    t->output[0] = '\0';
    t->job = job;
    uint64_t start = nerve_clock_mono_ns();
    int rc = 0;
    uint64_t now = nerve_clock_wall_ns();
    if (now > job->r.deadline) {
        /*  It waited in the queue past its deadline: the manager has given
            up on it (and said so), so it must not happen late. */
        int n = snprintf(t->output, OUTPUT_CAP,
                         "not run: its deadline passed %.3f s ago while it waited for a worker",
                         (double)(now - job->r.deadline) / 1e9);
        call.output_len = n > 0 ? (size_t)n : 0;
        rc = NERVE_ETIMEDOUT;
        pthread_mutex_lock(&t->pool->lock);
        t->pool->stats.late++;
        pthread_mutex_unlock(&t->pool->lock);
    } else if (fn->prepare) {
        char why[512] = "";
        rc = fn->prepare(&job->r.args, &call.prepared, why, sizeof why);
        if (rc != 0) {
            int n = snprintf(t->output, OUTPUT_CAP, "%s: bad args: %s", job->r.fn,
                             why[0] ? why : nerve_strerror(rc));
            call.output_len = n > 0 ? (size_t)n : 0;
            call.prepared = NULL;
        }
    }
    if (rc == 0)
        rc = fn->fn.reaction(&call);
    if (call.prepared && fn->release)
        fn->release(call.prepared);
    uint64_t took_us = (nerve_clock_mono_ns() - start) / 1000;
    t->job = NULL;
    if (call.output_len > OUTPUT_CAP)
        call.output_len = OUTPUT_CAP;
    /*  rc of the result: what the function reported (an exit status), or
        its error code when it failed without saying more. */
    int64_t result_rc = rc != 0 && call.rc == 0 ? rc : call.rc;
    if (rc != 0) {
        char hex[33];
        NERVE_LOG_RL(&s_rl_failed, NERVE_LOG_WARN, "actor",
                     "%s (reaction %s, rule '%s') failed: %s, rc %lld: %.*s", job->r.fn,
                     nerve_wire_id_hex(job->r.id, hex), job->r.rule, nerve_strerror(rc),
                     (long long)result_rc, (int)(call.output_len > 300 ? 300 : call.output_len),
                     call.output);
    }
    s_send_result(t, job, rc == 0, result_rc, call.output, call.output_len, took_us);
    pthread_mutex_lock(&t->pool->lock);
    if (rc == 0)
        t->pool->stats.ok++;
    else
        t->pool->stats.failed++;
    pthread_mutex_unlock(&t->pool->lock);
}

/* ------------------------------------------------------ pool callbacks */

static void s_pool_run(void *arg, void *thread_state, void *job)
{
    pool_job_t *j = job;
    s_run(thread_state, j);
    pool_job_free(&j);
}

static void s_pool_drop(void *arg, void *job)
{
    pool_job_t *j = job;
    pool_job_free(&j);
}

static void s_thread_destroy(void *arg, void *thread_state)
{
    thread_ctx_t *t = thread_state;
    if (t->push)
        zmq_close(t->push);
    msgpack_sbuffer_destroy(&t->buf);
    msgpack_sbuffer_destroy(&t->frame);
    free(t->output);
    free(t);
}

/*  A thread's state: its socket to the loop's inbox, connected here. */
static void *s_thread_new(void *arg, size_t index)
{
    pool_t *self = arg;
    thread_ctx_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->pool = self;
    msgpack_sbuffer_init(&t->buf);
    msgpack_sbuffer_init(&t->frame);
    t->output = malloc(OUTPUT_CAP + 1);
    t->push = zmq_socket(self->zmq_ctx, ZMQ_PUSH);
    int linger = 1000, hwm = INBOX_HWM;
    if (t->push) {
        zmq_setsockopt(t->push, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(t->push, ZMQ_SNDHWM, &hwm, sizeof hwm);
    }
    if (!t->output || !t->push || zmq_connect(t->push, self->inbox) != 0) {
        NERVE_ERROR("actor", "worker thread %zu: cannot connect to %s: %s", index, self->inbox,
                    zmq_strerror(errno));
        s_thread_destroy(self, t);
        return NULL;
    }
    return t;
}

/* ------------------------------------------------------------------ pool */

static void s_free(pool_t *self)
{
    pthread_mutex_destroy(&self->lock);
    free(self->inbox);
    free(self->host_id);
    free(self);
}

pool_t *pool_new(const pool_config_t *cfg)
{
    pool_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->zmq_ctx = cfg->zmq_ctx;
    self->allow = cfg->allow;
    self->timeout_ms = cfg->timeout_ms;
    self->inbox = strdup(cfg->inbox);
    self->host_id = strdup(cfg->host_id);
    pthread_mutex_init(&self->lock, NULL);
    if (!self->inbox || !self->host_id) {
        NERVE_ERROR("actor", "out of memory starting the workers");
        s_free(self);
        return NULL;
    }
    nerve_pool_config_t pc = {
        .name = "worker", /* for top -H and perf */
        .threads = cfg->threads,
        .queue_max = cfg->queue_max,
        .arg = self,
        .thread_new = s_thread_new,
        .thread_destroy = s_thread_destroy,
        .run = s_pool_run,
        .drop = s_pool_drop,
    };
    if (!(self->workers = nerve_pool_new(&pc))) {
        s_free(self);
        return NULL;
    }
    return self;
}

int pool_submit(pool_t *self, pool_job_t **job)
{
    if (nerve_pool_submit(self->workers, *job) != 0)
        return NERVE_EFULL;
    *job = NULL;
    return 0;
}

size_t pool_busy(pool_t *self)
{
    return nerve_pool_busy(self->workers);
}

typedef struct drop_ctx {
    void (*dropped)(void *arg, const uint8_t *id);
    void *arg;
} drop_ctx_t;

static void s_close_drop(void *drop_arg, void *job)
{
    drop_ctx_t *d = drop_arg;
    pool_job_t *j = job;
    if (d->dropped)
        d->dropped(d->arg, j->r.id);
    pool_job_free(&j);
}

void pool_close(pool_t *self, void (*dropped)(void *arg, const uint8_t *id), void *arg)
{
    drop_ctx_t d = {dropped, arg};
    nerve_pool_close(self->workers, s_close_drop, &d);
}

int pool_destroy(pool_t **self_p, uint64_t wait_ms)
{
    if (!self_p || !*self_p)
        return 0;
    pool_t *self = *self_p;
    *self_p = NULL;
    if (nerve_pool_destroy(&self->workers, wait_ms) != 0)
        return NERVE_ETIMEDOUT; /* its threads still use self */
    s_free(self);
    return 0;
}

void pool_stats(pool_t *self, pool_stats_t *out)
{
    nerve_pool_stats_t ps;
    nerve_pool_stats(self->workers, &ps);
    pthread_mutex_lock(&self->lock);
    *out = self->stats;
    pthread_mutex_unlock(&self->lock);
    out->refused = ps.refused;
    out->dropped = ps.dropped;
    out->queued = ps.queued;
    out->running = ps.running;
}
