/*  actor.c — nerve-actor's loop (see actor.h).

    Handlers, each small and named for what it reacts to:
      s_on_reaction  one message from the publisher: check, decode, dedupe,
                     dispatch
      s_on_inbox     what the workers send back: results (remembered, then
                     forwarded) and emitted events (forwarded)
      s_on_tick      the heartbeat
    Nothing here blocks: sends to the manager are non-blocking and a full
    queue is counted (the manager retries host reactions, and a repeat is
    answered from the cache).
*/
#include "actor.h"
#include "pool.h"
#include "recent.h"

#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/module.h>
#include <nerve/value.h>

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define BATCH                1024
#define SUB_HWM              200000
#define MANAGER_HWM          100000
#define INBOX_HWM            10000
#define RECONNECT_IVL_MS     100
#define RECONNECT_IVL_MAX_MS 2000
#define ZMTP_HEARTBEAT_MS    2000
#define POLL_MAX_MS          100
#define MAX_TOPICS           (2 + ACTOR_MAX_GROUPS)

#ifndef NERVE_VERSION
#define NERVE_VERSION "0.0.0"
#endif

struct actor {
    const actor_config_t *cfg;
    void *ctx;
    void *sub;   /* reactions from the publisher */
    void *push;  /* events to the manager */
    void *inbox; /* results and events from the workers */
    char inbox_ep[64];
    char topics[MAX_TOPICS][NERVE_TOPIC_MAX + 1];
    size_t ntopics;
    nerve_wire_decoder_t *decoder;
    recent_t *recent;
    pool_t *pool;
    bool pool_abandoned; /* a reaction outlived the stop: keep ctx alive */
    nerve_modset_t *modules;
    msgpack_sbuffer data;  /* a result's or heartbeat's data */
    msgpack_sbuffer frame; /* an encoded event */
    uint64_t start_ms;
    uint64_t next_beat_ms;
    _Atomic int stop;
    actor_stats_t stats;
};

static nerve_ratelimit_t s_rl_malformed = NERVE_RATELIMIT_INIT(1000);
static nerve_ratelimit_t s_rl_not_mine = NERVE_RATELIMIT_INIT(1000);
static nerve_ratelimit_t s_rl_expired = NERVE_RATELIMIT_INIT(1000);
static nerve_ratelimit_t s_rl_refused = NERVE_RATELIMIT_INIT(1000);
static nerve_ratelimit_t s_rl_send = NERVE_RATELIMIT_INIT(1000);

/* ----------------------------------------------------------------- sending */

/*  Sends one event (two frames) to the manager, never waiting. */
static int s_send(actor_t *self, const void *tag, size_t tag_len, const void *payload, size_t len)
{
    if (zmq_send(self->push, tag, tag_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        self->stats.send_dropped++;
        NERVE_LOG_RL(&s_rl_send, NERVE_LOG_WARN, "actor",
                     "manager queue full (%s unreachable?): %.*s not sent", self->cfg->manager,
                     (int)(tag_len > 200 ? 200 : tag_len), (const char *)tag);
        return NERVE_EFULL;
    }
    zmq_send(self->push, payload, len, 0); /* the second frame always follows */
    return 0;
}

/*  Encodes ev (data_raw set) and sends it. */
static int s_send_event(actor_t *self, const nerve_event_t *ev)
{
    int rc = nerve_wire_encode_event(ev, &self->frame);
    if (rc != 0)
        return rc;
    return s_send(self, ev->tag, ev->tag_len, self->frame.data, self->frame.size);
}

/*  Answers a reaction without running it: ok false, rc, and why. The result
    is remembered like any other, so a repeat gets the same answer. */
static void s_refuse(actor_t *self, const nerve_reaction_t *r, bool remember, int rc,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void s_refuse(actor_t *self, const nerve_reaction_t *r, bool remember, int rc,
                     const char *fmt, ...)
{
    char why[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    char hex[33];
    self->stats.refused++;
    NERVE_LOG_RL(&s_rl_refused, NERVE_LOG_WARN, "actor", "reaction %s (%s, rule '%s') refused: %s",
                 nerve_wire_id_hex(r->id, hex), r->fn, r->rule, why);
    nerve_event_t ev;
    if (nerve_wire_result_event(&ev, &self->data, self->cfg->id, r->id, r->fn, false, rc, why,
                                strlen(why), 0) != 0 ||
        nerve_wire_encode_event(&ev, &self->frame) != 0) {
        if (remember)
            recent_forget(self->recent, r->id);
        return;
    }
    if (remember && recent_complete(self->recent, r->id, ev.tag, ev.tag_len, self->frame.data,
                                    self->frame.size) != 0)
        recent_forget(self->recent, r->id);
    self->stats.results++;
    s_send(self, ev.tag, ev.tag_len, self->frame.data, self->frame.size);
}

/* --------------------------------------------------------------- reactions */

static bool s_is_mine(const actor_t *self, const void *topic, size_t len)
{
    for (size_t i = 0; i < self->ntopics; i++)
        if (strlen(self->topics[i]) == len && memcmp(self->topics[i], topic, len) == 0)
            return true;
    return false;
}

static void s_dispatch(actor_t *self, const nerve_reaction_t *r)
{
    nerve_resolved_t fn;
    char why[768];
    int rc =
        nerve_modset_resolve_role(self->modules, NERVE_ROLE_REACTIONS, r->fn, &fn, why, sizeof why);
    if (rc != 0) {
        s_refuse(self, r, true, rc, "%s", why);
        return;
    }
    pool_job_t *job = pool_job_new(r, &fn);
    if (!job) {
        s_refuse(self, r, true, NERVE_ENOMEM, "actor out of memory");
        return;
    }
    if (pool_submit(self->pool, &job) != 0) {
        pool_job_free(&job);
        s_refuse(self, r, true, NERVE_EFULL, "actor queue full (%zu reactions waiting)",
                 self->cfg->queue);
        return;
    }
    self->stats.submitted++;
}

/*  Handles one message of `n` frames from the publisher. */
static void s_handle(actor_t *self, const nerve_frame_t *frames, size_t n)
{
    self->stats.received++;
    if (n >= 1 && !s_is_mine(self, frames[0].data, frames[0].size)) {
        self->stats.not_mine++;
        NERVE_LOG_RL(&s_rl_not_mine, NERVE_LOG_WARN, "actor",
                     "ignored a message on topic '%.*s': not one of this actor's",
                     (int)(frames[0].size > 80 ? 80 : frames[0].size),
                     (const char *)frames[0].data);
        return;
    }
    nerve_reaction_t r;
    nerve_wire_reason_t reason = nerve_wire_decode_reaction(self->decoder, frames, n, &r);
    if (reason != NERVE_WIRE_OK) {
        self->stats.malformed++;
        self->stats.malformed_by[reason]++;
        NERVE_LOG_RL(&s_rl_malformed, NERVE_LOG_WARN, "actor", "reaction dropped: %s",
                     nerve_wire_reason_name(reason));
        return;
    }
    char hex[33];
    uint64_t now = nerve_clock_wall_ns();
    if (r.deadline <= now) {
        self->stats.expired++;
        NERVE_LOG_RL(&s_rl_expired, NERVE_LOG_INFO, "actor",
                     "reaction %s (%s, rule '%s') arrived %.3f s past its deadline: dropped",
                     nerve_wire_id_hex(r.id, hex), r.fn, r.rule, (double)(now - r.deadline) / 1e9);
        return;
    }
    recent_result_t done;
    switch (recent_claim(self->recent, r.id, &done)) {
    case RECENT_PENDING:
        self->stats.repeats_pending++;
        NERVE_DEBUG("actor", "reaction %s repeated while queued or running: ignored",
                    nerve_wire_id_hex(r.id, hex));
        return;
    case RECENT_DONE:
        self->stats.repeats_done++;
        NERVE_DEBUG("actor", "reaction %s repeated after it ran: result sent again",
                    nerve_wire_id_hex(r.id, hex));
        s_send(self, done.tag, done.tag_len, done.payload, done.payload_len);
        return;
    case RECENT_FULL:
        s_refuse(self, &r, false, NERVE_EFULL,
                 "actor busy: every remembered reaction is "
                 "still queued or running");
        return;
    case RECENT_NEW:
        break;
    }
    s_dispatch(self, &r);
}

/*  Reads one multipart message without waiting: up to `max` frames kept,
    the count of all in *n. -1 when nothing was waiting. */
static int s_recv(void *sock, zmq_msg_t *parts, size_t max, size_t *n)
{
    *n = 0;
    int flags = ZMQ_DONTWAIT;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, flags) < 0) {
            zmq_msg_close(&m);
            return *n ? 0 : -1;
        }
        bool more = zmq_msg_more(&m);
        if (*n < max)
            parts[*n] = m;
        else
            zmq_msg_close(&m);
        (*n)++;
        if (!more)
            return 0;
        flags = 0;
    }
}

static void s_close_parts(zmq_msg_t *parts, size_t n, size_t max)
{
    for (size_t i = 0; i < n && i < max; i++)
        zmq_msg_close(&parts[i]);
}

static void s_on_reaction(actor_t *self)
{
    for (int i = 0; i < BATCH && self->sub; i++) {
        zmq_msg_t parts[3];
        size_t n;
        if (s_recv(self->sub, parts, 3, &n) != 0)
            return;
        nerve_frame_t frames[3];
        for (size_t j = 0; j < n && j < 3; j++) {
            frames[j].data = zmq_msg_data(&parts[j]);
            frames[j].size = zmq_msg_size(&parts[j]);
        }
        s_handle(self, frames, n);
        s_close_parts(parts, n, 3);
    }
}

/* -------------------------------------------------------------------- inbox */

static void s_on_inbox(actor_t *self)
{
    for (int i = 0; i < BATCH; i++) {
        zmq_msg_t parts[4];
        size_t n;
        if (s_recv(self->inbox, parts, 4, &n) != 0)
            return;
        const char *kind = zmq_msg_data(&parts[0]);
        size_t klen = zmq_msg_size(&parts[0]);
        if (n == 3 && klen == 5 && memcmp(kind, "event", 5) == 0) {
            self->stats.events++;
            s_send(self, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), zmq_msg_data(&parts[2]),
                   zmq_msg_size(&parts[2]));
        } else if (n == 4 && klen == 6 && memcmp(kind, "result", 6) == 0 &&
                   zmq_msg_size(&parts[1]) == NERVE_ID_SIZE) {
            const uint8_t *id = zmq_msg_data(&parts[1]);
            if (recent_complete(self->recent, id, zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]),
                                zmq_msg_data(&parts[3]), zmq_msg_size(&parts[3])) != 0)
                recent_forget(self->recent, id);
            self->stats.results++;
            s_send(self, zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]), zmq_msg_data(&parts[3]),
                   zmq_msg_size(&parts[3]));
        }
        s_close_parts(parts, n, 4);
    }
}

/* ---------------------------------------------------------------- heartbeat */

static void s_pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void s_heartbeat(actor_t *self, uint64_t now_ms)
{
    const actor_config_t *cfg = self->cfg;
    self->data.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &self->data, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    s_pack_str(&pk, "heartbeat_ms"); /* so the manager knows when we are lost */
    msgpack_pack_uint64(&pk, cfg->heartbeat_ms);
    s_pack_str(&pk, "groups");
    msgpack_pack_array(&pk, cfg->ngroups);
    for (size_t i = 0; i < cfg->ngroups; i++)
        s_pack_str(&pk, cfg->groups[i]);
    s_pack_str(&pk, "version");
    s_pack_str(&pk, NERVE_VERSION);
    s_pack_str(&pk, "uptime_s");
    msgpack_pack_uint64(&pk, (now_ms - self->start_ms) / 1000);

    nerve_event_t ev;
    memset(&ev, 0, sizeof ev);
    snprintf(ev.tag, sizeof ev.tag, "/nerve/actor/%s/alive", cfg->id);
    ev.tag_len = strlen(ev.tag);
    nerve_wire_new_id(ev.id);
    ev.ts = nerve_clock_wall_ns();
    snprintf(ev.host, sizeof ev.host, "%s", cfg->id);
    ev.data_raw = self->data.data;
    ev.data_raw_len = self->data.size;
    if (s_send_event(self, &ev) == 0)
        self->stats.heartbeats++;
}

static void s_on_tick(actor_t *self, uint64_t now_ms)
{
    if (now_ms < self->next_beat_ms)
        return;
    s_heartbeat(self, now_ms);
    self->next_beat_ms = now_ms + self->cfg->heartbeat_ms;
}

/* --------------------------------------------------------------------- stop */

static void s_forget_dropped(void *arg, const uint8_t *id)
{
    recent_forget(((actor_t *)arg)->recent, id);
}

/*  Stops taking reactions, lets the running ones finish (bounded), and
    forwards their results. */
static void s_shutdown(actor_t *self)
{
    if (self->sub)
        zmq_close(self->sub);
    self->sub = NULL;
    if (!self->pool)
        return;
    pool_close(self->pool, s_forget_dropped, self);
    uint64_t until = nerve_clock_mono_ms() + self->cfg->timeout_ms + 1000;
    size_t busy = pool_busy(self->pool);
    if (busy)
        NERVE_INFO("actor", "stopping: waiting for %zu running reaction(s)", busy);
    zmq_pollitem_t item = {self->inbox, 0, ZMQ_POLLIN, 0};
    while (pool_busy(self->pool) > 0 && nerve_clock_mono_ms() < until) {
        if (zmq_poll(&item, 1, 50) > 0)
            s_on_inbox(self);
    }
    s_on_inbox(self);
    if (pool_destroy(&self->pool, 0) != 0)
        self->pool_abandoned = true;
    s_on_inbox(self);
}

/* ------------------------------------------------------------------ sockets */

static void *s_socket(actor_t *self, int type, int hwm_opt, int hwm)
{
    void *s = zmq_socket(self->ctx, type);
    if (!s)
        return NULL;
    int linger = 0, ivl = RECONNECT_IVL_MS, ivl_max = RECONNECT_IVL_MAX_MS;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, hwm_opt, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(s, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    /*  ZMTP heartbeats: a peer that vanished (host down, cable pulled) is
        noticed within a few seconds and the socket reconnects. */
    int hb = ZMTP_HEARTBEAT_MS, hb_timeout = 3 * ZMTP_HEARTBEAT_MS;
    zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
    zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout);
    return s;
}

static int s_topics(actor_t *self)
{
    const actor_config_t *cfg = self->cfg;
    snprintf(self->topics[self->ntopics++], NERVE_TOPIC_MAX + 1, "@all/");
    snprintf(self->topics[self->ntopics++], NERVE_TOPIC_MAX + 1, "@host/%s/", cfg->id);
    for (size_t i = 0; i < cfg->ngroups && self->ntopics < MAX_TOPICS; i++)
        snprintf(self->topics[self->ntopics++], NERVE_TOPIC_MAX + 1, "@group/%s/", cfg->groups[i]);
    for (size_t i = 0; i < self->ntopics; i++)
        if (zmq_setsockopt(self->sub, ZMQ_SUBSCRIBE, self->topics[i], strlen(self->topics[i])) != 0)
            return NERVE_EIO;
    return 0;
}

static int s_open_sockets(actor_t *self)
{
    const actor_config_t *cfg = self->cfg;
    self->sub = s_socket(self, ZMQ_SUB, ZMQ_RCVHWM, SUB_HWM);
    self->push = s_socket(self, ZMQ_PUSH, ZMQ_SNDHWM, MANAGER_HWM);
    self->inbox = zmq_socket(self->ctx, ZMQ_PULL);
    if (!self->sub || !self->push || !self->inbox)
        return NERVE_ENOMEM;
    int linger = 0, hwm = INBOX_HWM;
    zmq_setsockopt(self->inbox, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(self->inbox, ZMQ_RCVHWM, &hwm, sizeof hwm);
    linger = 2000; /* results and heartbeats still queued get a moment at exit */
    zmq_setsockopt(self->push, ZMQ_LINGER, &linger, sizeof linger);
    snprintf(self->inbox_ep, sizeof self->inbox_ep, "inproc://nerve-actor-%p", (void *)self);
    if (zmq_bind(self->inbox, self->inbox_ep) != 0) {
        NERVE_ERROR("actor", "inbox: cannot bind %s: %s", self->inbox_ep, zmq_strerror(errno));
        return NERVE_EIO;
    }
    if (s_topics(self) != 0)
        return NERVE_EIO;
    if (zmq_connect(self->sub, cfg->publisher) != 0) {
        NERVE_ERROR("actor", "publisher: cannot connect %s: %s", cfg->publisher,
                    zmq_strerror(errno));
        return NERVE_EIO;
    }
    if (zmq_connect(self->push, cfg->manager) != 0) {
        NERVE_ERROR("actor", "manager: cannot connect %s: %s", cfg->manager, zmq_strerror(errno));
        return NERVE_EIO;
    }
    return 0;
}

/* ------------------------------------------------------------------- public */

actor_t *actor_new(const actor_config_t *cfg)
{
    actor_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    msgpack_sbuffer_init(&self->data);
    msgpack_sbuffer_init(&self->frame);
    if (setenv("NERVE_SYSTEMCTL", cfg->systemctl, 1) != 0) {
        NERVE_ERROR("actor", "cannot set NERVE_SYSTEMCTL: %s", strerror(errno));
        goto fail;
    }
    /*  The cache must hold every id in flight (queued or running) plus a
        deadline window of finished ones. */
    size_t capacity = RECENT_DEFAULT_CAPACITY;
    if (capacity < 2 * (cfg->queue + cfg->workers))
        capacity = 2 * (cfg->queue + cfg->workers);
    self->modules = nerve_modset_new((const char *const *)cfg->modules, cfg->nmodules);
    self->decoder = nerve_wire_decoder_new();
    self->recent = recent_new(capacity, RECENT_DEFAULT_MAX_BYTES);
    self->ctx = zmq_ctx_new();
    if (!self->modules || !self->decoder || !self->recent || !self->ctx) {
        NERVE_ERROR("actor", "out of memory");
        goto fail;
    }
    if (s_open_sockets(self) != 0)
        goto fail;
    pool_config_t pc = {
        .zmq_ctx = self->ctx,
        .inbox = self->inbox_ep,
        .host_id = cfg->id,
        .allow = &cfg->allow,
        .threads = cfg->workers,
        .queue_max = cfg->queue,
        .timeout_ms = cfg->timeout_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)cfg->timeout_ms,
    };
    if (!(self->pool = pool_new(&pc)))
        goto fail;
    return self;
fail:
    actor_destroy(&self);
    return NULL;
}

int actor_run(actor_t *self)
{
    const actor_config_t *cfg = self->cfg;
    self->start_ms = nerve_clock_mono_ms();
    self->next_beat_ms = self->start_ms; /* announce ourselves at once */
    NERVE_INFO("actor",
               "%s ready: publisher %s, manager %s, %zu group(s), %zu worker(s), "
               "modules %s",
               cfg->id, cfg->publisher, cfg->manager, cfg->ngroups, cfg->workers,
               nerve_modset_path_string(self->modules));
    int rc = 0;
    while (!atomic_load(&self->stop)) {
        uint64_t now = nerve_clock_mono_ms();
        s_on_tick(self, now);
        long timeout = (long)(self->next_beat_ms > now ? self->next_beat_ms - now : 0);
        if (timeout > POLL_MAX_MS)
            timeout = POLL_MAX_MS;
        zmq_pollitem_t items[] = {
            {self->sub, 0, ZMQ_POLLIN, 0},
            {self->inbox, 0, ZMQ_POLLIN, 0},
        };
        int n = zmq_poll(items, 2, timeout);
        if (n < 0 && errno != EINTR) {
            NERVE_ERROR("actor", "poll: %s", zmq_strerror(errno));
            rc = NERVE_EIO;
            break;
        }
        if (n > 0 && (items[1].revents & ZMQ_POLLIN))
            s_on_inbox(self);
        if (n > 0 && (items[0].revents & ZMQ_POLLIN))
            s_on_reaction(self);
    }
    s_shutdown(self);
    const actor_stats_t *s = &self->stats;
    NERVE_INFO("actor",
               "stopped: %llu received, %llu run, %llu refused, %llu repeats answered, %llu "
               "repeats ignored, %llu expired, %llu malformed, %llu not ours, %llu unsent",
               (unsigned long long)s->received, (unsigned long long)s->submitted,
               (unsigned long long)s->refused, (unsigned long long)s->repeats_done,
               (unsigned long long)s->repeats_pending, (unsigned long long)s->expired,
               (unsigned long long)s->malformed, (unsigned long long)s->not_mine,
               (unsigned long long)s->send_dropped);
    return rc;
}

void actor_request_stop(actor_t *self)
{
    atomic_store(&self->stop, 1);
}

void actor_destroy(actor_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    actor_t *self = *self_p;
    if (self->pool && pool_destroy(&self->pool, 0) != 0)
        self->pool_abandoned = true;
    void **socks[] = {&self->sub, &self->inbox, &self->push};
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++) {
        if (*socks[i])
            zmq_close(*socks[i]);
        *socks[i] = NULL;
    }
    /*  A worker still inside a reaction holds a socket of this context:
        terminating it would wait for that reaction forever. */
    if (self->ctx && !self->pool_abandoned)
        zmq_ctx_term(self->ctx);
    self->ctx = NULL;
    nerve_wire_decoder_destroy(&self->decoder);
    recent_destroy(&self->recent);
    if (!self->pool_abandoned) /* the running reaction's code lives in the set */
        nerve_modset_destroy(&self->modules);
    msgpack_sbuffer_destroy(&self->data);
    msgpack_sbuffer_destroy(&self->frame);
    free(self);
    *self_p = NULL;
}

void actor_stats(const actor_t *self, actor_stats_t *out)
{
    *out = self->stats;
}
