/*  server.c — nerve-manager's loop (see server.h).

    Handlers, each small and named for what it reacts to:
      s_on_events    drain up to BATCH events from the events socket
      s_on_inject    what local reactions sent back (events, register sets)
      s_on_tap       subscriptions arriving on the tap (XPUB), so the tap
                     costs nothing while nobody watches
      s_on_control   one CLI request (control.c)
      s_on_inotify   a rules or module file changed: reload soon
      s_on_tick      group-commit registers; due reloads; re-bind the tap
                     when a key was revoked
    Everything they share is in server_t; nothing blocks: sends are
    non-blocking and a full queue is counted.

    Security is set up in s_secure() before any socket binds: the keypair
    (made on first start), the ZAP handler, then each CURVE socket's
    options (see server.h).
*/
#include "server.h"
#include "control.h"
#include "metrics.h"

#include <nerve/log.h>
#include <nerve/paths.h>
#include <nerve/value.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define BATCH 4096
#define RELOAD_DEBOUNCE_MS 300
/* The loop wakes at least this often, whatever commit_interval says:
   actors' presence, delivery retries, a signal that landed on another
   thread (its handler only sets a flag) and the tap's re-bind are all
   looked at on a tick. */
#define TICK_MAX_MS 100
#define WORKER_THREADS 4
/* A stop waits for running local reactions as long as they are given,
   and a second, then goes on without them. */
#define WORKER_STOP_WAIT_MS (WORKER_REACTION_TIMEOUT_MS + 1000)
#define EVENTS_HWM 200000
#define PUBLISHER_HWM 1000000
#define TAP_HWM 100000

static volatile sig_atomic_t s_stop;
static volatile sig_atomic_t s_hup;
static nerve_ratelimit_t s_rl_reject = NERVE_RATELIMIT_INIT(1000);
static nerve_ratelimit_t s_rl_drop = NERVE_RATELIMIT_INIT(1000);
static nerve_ratelimit_t s_rl_unauth = NERVE_RATELIMIT_INIT(1000);

/*  The tap's subscriber count, maintained from XPUB (un)subscriptions. */
static int64_t s_tap_topics;

void server_request_stop(void)
{
    s_stop = 1;
}

void server_request_reload(void)
{
    s_hup = 1;
}

/* ----------------------------------------------------------------- sockets */

static void *s_socket(server_t *self, int type, int hwm_opt, int hwm)
{
    void *s = zmq_socket(self->ctx, type);
    if (!s)
        return NULL;
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (hwm_opt)
        zmq_setsockopt(s, hwm_opt, &hwm, sizeof hwm);
    return s;
}

static int s_bind(void *sock, const char *endpoint, const char *what)
{
    char err[512];
    int rc = nerve_ipc_dir_prepare(endpoint, err, sizeof err);
    if (rc != 0) {
        NERVE_ERROR("manager", "%s: %s", what, err);
        return rc;
    }
    if (strncmp(endpoint, "ipc://", 6) == 0)
        unlink(endpoint + 6); /* a socket file left by a crash */
    if (zmq_bind(sock, endpoint) != 0) {
        NERVE_ERROR("manager", "%s: cannot bind %s: %s", what, endpoint, zmq_strerror(errno));
        return NERVE_EIO;
    }
    return 0;
}

/*  Everything but IPC and inproc crosses a network: those sockets are
    CURVE. IPC sockets rely on their 0700 directory instead. */
static bool s_networked(const char *endpoint)
{
    return strncmp(endpoint, "ipc://", 6) != 0 && strncmp(endpoint, "inproc://", 9) != 0;
}

/*  Makes `sock` a CURVE server when `curve`. */
static int s_curve_server(server_t *self, void *sock, bool curve, const char *what)
{
    char err[512];
    if (!curve || nerve_sec_server(sock, &self->cfg->security, err, sizeof err) == 0)
        return 0;
    NERVE_ERROR("manager", "%s: %s", what, err);
    return NERVE_EPERM;
}

bool server_peer_allowed(server_t *self, zmq_msg_t *msg, bool curve)
{
    if (!curve)
        return true;
    const char *uid = zmq_msg_gets(msg, "User-Id");
    uint64_t gen = nerve_zap_generation(self->zap);
    auth_cache_t *c = &self->auth;
    if (uid && c->valid && c->generation == gen && strcmp(c->user_id, uid) == 0)
        return c->allowed;
    bool allowed = nerve_zap_allowed(self->zap, uid);
    if (uid && strlen(uid) == NERVE_Z85_KEY_LEN) {
        memcpy(c->user_id, uid, NERVE_Z85_KEY_LEN + 1);
        c->generation = gen;
        c->allowed = allowed;
        c->valid = true;
    }
    if (!allowed) {
        char pending[NERVE_KEY_PENDING_NAME_LEN + 1] = "?";
        if (uid)
            nerve_keys_pending_name(uid, pending);
        NERVE_LOG_RL(&s_rl_unauth, NERVE_LOG_WARN, "manager",
                     "dropped a message from key %s (%s): no longer admitted (revoked or "
                     "rejected since it connected)",
                     uid ? uid : "(none)", pending);
    }
    return allowed;
}

static void s_tap_send(server_t *self, const void *f1, size_t n1, const void *f2, size_t n2)
{
    if (s_tap_topics <= 0)
        return;
    if (zmq_send(self->tap, f1, n1, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(self->tap, f2, n2, ZMQ_DONTWAIT);
}

static void s_emit_internal(server_t *self, const char *tag, const msgpack_sbuffer *data);

/* --------------------------------------------------------------- reactions */

static bool s_name_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= NERVE_HOST_MAX && !strchr(s, '/');
}

/*  "host:web1" → "@host/web1/". False for targets that cannot be routed. */
static bool s_topic(const char *target, char *topic, size_t size)
{
    if (strcmp(target, "all") == 0)
        return snprintf(topic, size, "@all/") > 0;
    if (strncmp(target, "host:", 5) == 0 && s_name_ok(target + 5))
        return snprintf(topic, size, "@host/%s/", target + 5) < (int)size;
    if (strncmp(target, "group:", 6) == 0 && s_name_ok(target + 6))
        return snprintf(topic, size, "@group/%s/", target + 6) < (int)size;
    return false;
}

/*  snprintf("%s") without the formatting engine (it is on the reaction
    path): copies what fits, always terminates, returns the length copied. */
static size_t s_copy(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

static void s_event_ref(const nerve_event_t *ev, nerve_event_ref_t *ref)
{
    memcpy(ref->tag, ev->tag, ev->tag_len + 1); /* the strings, not their arrays */
    memcpy(ref->id, ev->id, sizeof ref->id);
    s_copy(ref->host, sizeof ref->host, ev->host);
}

static void s_unroutable(server_t *self, const rule_def_t *rule, const reaction_def_t *def,
                         const char *target, const char *why)
{
    self->counters.reactions_unroutable++;
    NERVE_LOG_RL(&s_rl_drop, NERVE_LOG_WARN, "manager",
                 "rule '%s' (%s:%zu): reaction %s: target '%s' %s", rule->name, def->file,
                 def->line, def->fn, target, why);
}


/*  Sends one reaction to one topic; host topics are tracked for retry. */
static void s_send_topic(server_t *self, const rule_def_t *rule, const reaction_def_t *def,
                         const nerve_event_t *ev, const msgpack_object *args,
                         const char *topic)
{
    nerve_reaction_t r; /* every field set below: no memset of its 1.3 KB */
    size_t tl = s_copy(r.topic, sizeof r.topic, topic);
    nerve_wire_new_id(r.id);
    s_copy(r.fn, sizeof r.fn, def->fn);
    s_copy(r.rule, sizeof r.rule, rule->name);
    r.args = *args;
    s_event_ref(ev, &r.event);
    r.ts = nerve_clock_wall_ns();
    r.deadline = r.ts + def->deadline_ms * 1000000ull;
    r.hops = ev->hops;
    if (nerve_wire_encode_reaction(&r, &self->buf) != 0) {
        self->counters.reactions_unroutable++;
        return;
    }
    /* Host reactions are tracked before the send: a full queue now is
       retried like a lost message. */
    if (strncmp(r.topic, "@host/", 6) == 0)
        delivery_track(self->delivery, r.topic, r.id, r.rule, r.fn, self->buf.data,
                       self->buf.size, r.deadline, nerve_clock_mono_ms());
    if (zmq_send(self->publisher, r.topic, tl, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(self->publisher, self->buf.data, self->buf.size, ZMQ_DONTWAIT) < 0) {
        self->counters.reactions_send_dropped++;
        NERVE_LOG_RL(&s_rl_drop, NERVE_LOG_WARN, "manager",
                     "publisher queue full: reaction %s for %s not sent now", def->fn, topic);
        return;
    }
    self->counters.reactions_sent++;
    s_tap_send(self, r.topic, tl, self->buf.data, self->buf.size);
}

typedef struct glob_send {
    server_t *self;
    const rule_def_t *rule;
    const reaction_def_t *def;
    const nerve_event_t *ev;
    const msgpack_object *args;
} glob_send_t;

static void s_send_glob_one(void *arg, const actor_info_t *actor)
{
    glob_send_t *g = arg;
    char topic[NERVE_TOPIC_MAX + 1];
    if (snprintf(topic, sizeof topic, "@host/%s/", actor->id) < (int)sizeof topic)
        s_send_topic(g->self, g->rule, g->def, g->ev, g->args, topic);
}

static void s_send_remote(server_t *self, const rule_def_t *rule, const reaction_def_t *def,
                          const nerve_event_t *ev, const msgpack_object *args,
                          const char *target)
{
    if (strncmp(target, "glob:", 5) == 0 && target[5]) {
        glob_send_t g = {self, rule, def, ev, args};
        if (presence_match(self->presence, target + 5, s_send_glob_one, &g) == 0)
            s_unroutable(self, rule, def, target, "matched no live actor");
        return;
    }
    char topic[NERVE_TOPIC_MAX + 1];
    if (!s_topic(target, topic, sizeof topic)) {
        s_unroutable(self, rule, def, target, "cannot be routed");
        return;
    }
    s_send_topic(self, rule, def, ev, args, topic);
}

static void s_send_local(server_t *self, const rule_def_t *rule, const reaction_def_t *def,
                         const nerve_event_t *ev, const msgpack_object *args)
{
    if (!self->worker) { /* stopping: what the last reactions sent back runs no more */
        self->counters.reactions_local_refused++;
        return;
    }
    worker_job_t *job = calloc(1, sizeof *job);
    if (!job || !(job->zone = msgpack_zone_new(2048)) ||
        nerve_obj_copy(job->zone, args, &job->args) != 0 ||
        nerve_obj_copy(job->zone, &ev->data, &job->data) != 0) {
        worker_job_free(&job);
        self->counters.reactions_local_refused++;
        return;
    }
    job->rs = ruleset_ref(self->rules);
    job->rule = rule;
    job->def = def;
    s_event_ref(ev, &job->event);
    job->hops = ev->hops;
    nerve_wire_new_id(job->reaction_id);
    if (worker_submit(self->worker, &job) != 0) {
        self->counters.reactions_local_refused++;
        NERVE_LOG_RL(&s_rl_drop, NERVE_LOG_WARN, "manager",
                     "local reaction queue full (%zu): %s for rule '%s' refused",
                     self->cfg->worker_queue, def->fn, rule->name);
        worker_job_free(&job);
        return;
    }
    self->counters.reactions_local++;
}

static void s_on_reaction(void *arg, const rule_def_t *rule, const reaction_def_t *def,
                          const nerve_event_t *ev, const msgpack_object *value,
                          const msgpack_object *args, const char *target)
{
    server_t *self = arg;
    if (target)
        s_send_remote(self, rule, def, ev, args, target);
    else
        s_send_local(self, rule, def, ev, args);
}

/* ------------------------------------------------------------------ events */

static void s_handle_event(server_t *self, const nerve_frame_t *frames, size_t n,
                           zmq_msg_t *msgs, uint64_t now_ns);

static void s_pack_str(msgpack_packer *pk, const char *k, const char *v)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_str_with_body(pk, v, strlen(v));
}

/*  What the manager itself learns from an event: actor heartbeats
    (presence) and results (delivery acknowledgements). */
static void s_observe(server_t *self, const nerve_event_t *ev)
{
    if (strncmp(ev->tag, "/nerve/result/", 14) == 0) {
        const msgpack_object *id = nerve_obj_get(&ev->data, "reaction");
        if (id && id->type == MSGPACK_OBJECT_BIN && id->via.bin.size == NERVE_ID_SIZE)
            delivery_ack(self->delivery, (const uint8_t *)id->via.bin.ptr, ev->host);
        return;
    }
    if (strncmp(ev->tag, "/nerve/actor/", 13) != 0)
        return;
    bool joined;
    char id[NERVE_HOST_MAX + 1];
    if (!presence_on_event(self->presence, ev->tag, &ev->data, nerve_clock_mono_ms(), &joined,
                           id, sizeof id) ||
        !joined)
        return;
    self->counters.actors_joined++;
    NERVE_INFO("manager", "actor %s joined", id);
    msgpack_sbuffer data;
    msgpack_sbuffer_init(&data);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &data, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    s_pack_str(&pk, "id", id);
    msgpack_pack_str_with_body(&pk, "groups", 6);
    const msgpack_object *groups = nerve_obj_get(&ev->data, "groups");
    if (groups)
        msgpack_pack_object(&pk, *groups);
    else
        msgpack_pack_array(&pk, 0);
    char tag[NERVE_TAG_MAX + 64];
    snprintf(tag, sizeof tag, "/nerve/actor/%s/joined", id);
    if (strlen(tag) > NERVE_TAG_MAX) { /* an id this long cannot make a tag */
        msgpack_sbuffer_destroy(&data);
        return;
    }
    s_emit_internal(self, tag, &data);
    msgpack_sbuffer_destroy(&data);
}

static void s_run_internal(server_t *self, const char *tag, const msgpack_sbuffer *data)
{
    nerve_event_t ev;
    memset(&ev, 0, sizeof ev);
    snprintf(ev.tag, sizeof ev.tag, "%s", tag);
    ev.tag_len = strlen(ev.tag);
    nerve_wire_new_id(ev.id);
    ev.ts = nerve_clock_wall_ns();
    snprintf(ev.host, sizeof ev.host, "%s", self->cfg->id);
    ev.data_raw = data->data;
    ev.data_raw_len = data->size;
    msgpack_sbuffer payload;
    msgpack_sbuffer_init(&payload);
    if (nerve_wire_encode_event(&ev, &payload) == 0) {
        nerve_frame_t frames[2] = {{ev.tag, ev.tag_len}, {payload.data, payload.size}};
        self->counters.injected++;
        s_handle_event(self, frames, 2, NULL, ev.ts);
    }
    msgpack_sbuffer_destroy(&payload);
}

/*  Runs queued internal events, in order; each may queue more. */
static void s_flush_internal(server_t *self)
{
    for (size_t i = 0; i < self->ninternal; i++) {
        internal_event_t ie = self->internal[i];
        self->handling = true;
        s_run_internal(self, ie.tag, &ie.data);
        self->handling = false;
        msgpack_sbuffer_destroy(&ie.data);
    }
    self->ninternal = 0;
}

/*  Sends an event the manager itself produces (reload failures, actors
    joined and lost, expired reactions) through the same path as any
    other: tap, then rules. Inside an event's handling it waits its turn. */
static void s_emit_internal(server_t *self, const char *tag, const msgpack_sbuffer *data)
{
    if (self->ninternal == self->internal_cap) {
        size_t cap = self->internal_cap ? self->internal_cap * 2 : 16;
        internal_event_t *grown = realloc(self->internal, cap * sizeof *grown);
        if (!grown)
            return;
        self->internal = grown;
        self->internal_cap = cap;
    }
    internal_event_t *ie = &self->internal[self->ninternal++];
    snprintf(ie->tag, sizeof ie->tag, "%s", tag);
    msgpack_sbuffer_init(&ie->data);
    msgpack_sbuffer_write(&ie->data, data->data, data->size);
    if (!self->handling)
        s_flush_internal(self);
}

static void s_reject(server_t *self, nerve_wire_reason_t reason)
{
    self->counters.rejected++;
    self->counters.rejected_by[reason]++;
    NERVE_LOG_RL(&s_rl_reject, NERVE_LOG_WARN, "manager", "event dropped: %s",
                 nerve_wire_reason_name(reason));
}

/*  Taps and decides one decoded event received at now_ns (wall clock).
    msgs, when not NULL, are its two frames as received (tapped without a
    copy of the bytes). */
static void s_accept(server_t *self, const nerve_event_t *ev, const engine_match_t *match,
                     const nerve_frame_t *frames, zmq_msg_t *msgs, uint64_t now_ns)
{
    self->counters.accepted++;
    s_observe(self, ev);
    if (s_tap_topics > 0) {
        if (msgs) {
            zmq_msg_t copy[2];
            zmq_msg_init(&copy[0]);
            zmq_msg_init(&copy[1]);
            zmq_msg_copy(&copy[0], &msgs[0]);
            zmq_msg_copy(&copy[1], &msgs[1]);
            if (zmq_msg_send(&copy[0], self->tap, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
                zmq_msg_close(&copy[0]);
            else if (zmq_msg_send(&copy[1], self->tap, ZMQ_DONTWAIT) >= 0)
                zmq_msg_init(&copy[1]);
            zmq_msg_close(&copy[1]);
        } else {
            s_tap_send(self, frames[0].data, frames[0].size, frames[1].data, frames[1].size);
        }
    }
    engine_sink_t sink = {.arg = self, .reaction = s_on_reaction};
    bool nested = self->handling;
    self->handling = true;
    if (match)
        engine_process_matched(self->engine, ev, match, now_ns, &sink);
    else
        engine_process(self->engine, ev, now_ns, &sink);
    self->handling = nested;
    if (!nested)
        s_flush_internal(self);
}

/*  Decodes, taps and decides one event given as frames, received at
    now_ns (wall clock). */
static void s_handle_event(server_t *self, const nerve_frame_t *frames, size_t n,
                           zmq_msg_t *msgs, uint64_t now_ns)
{
    nerve_event_t ev;
    nerve_wire_reason_t reason = nerve_wire_decode_event(self->decoder, frames, n, &ev);
    if (reason != NERVE_WIRE_OK)
        s_reject(self, reason);
    else
        s_accept(self, &ev, NULL, frames, msgs, now_ns);
}

/*  The receive time of a drained batch is read every RECV_CLOCK_EVERY
    events, not per event: the events were all waiting already, the skew
    is a few tens of microseconds, and the clock read was 3% of the
    engine's time. */
#define RECV_CLOCK_EVERY 32
#define GROUP_HINTS      32 /* register states prefetched per group */

/*  An event read and decoded, waiting for its group to be decided. */
typedef struct grouped {
    zmq_msg_t parts[3];
    size_t n;
    nerve_frame_t frames[2];
    nerve_event_t ev;
    engine_match_t match; /* made while prefetching, used to decide */
    uint64_t read_ns;     /* for the latency histogram */
} grouped_t;

/*  Reads and decodes up to SERVER_GROUP events into g (each with its own
    decoder, so that all stay valid together). Rejected ones are counted
    and dropped here. Sets *drained when the socket had no more; *taken
    counts every message read. Returns how many are in g. */
static size_t s_read_group(server_t *self, grouped_t *g, int budget, int *taken, bool *drained)
{
    size_t k = 0;
    *drained = false;
    while (k < SERVER_GROUP && *taken < budget) {
        grouped_t *x = &g[k];
        if (nerve_wire_recv_parts(self->events, x->parts, 3, &x->n, ZMQ_DONTWAIT) != 0) {
            *drained = true;
            break;
        }
        (*taken)++;
        self->counters.received++;
        x->read_ns = self->metrics ? nerve_clock_mono_ns() : 0;
        if (!server_peer_allowed(self, &x->parts[0], self->events_curve)) {
            self->counters.rejected++;
            self->counters.rejected_unauthorized++;
            nerve_wire_close_parts(x->parts, x->n, 3);
            continue;
        }
        nerve_frame_t frames[3];
        for (size_t j = 0; j < x->n && j < 3; j++) {
            frames[j].data = zmq_msg_data(&x->parts[j]);
            frames[j].size = zmq_msg_size(&x->parts[j]);
        }
        nerve_wire_reason_t reason =
            nerve_wire_decode_event(self->group_decoder[k], frames, x->n, &x->ev);
        if (reason != NERVE_WIRE_OK) {
            s_reject(self, reason);
            nerve_wire_close_parts(x->parts, x->n, 3);
            continue;
        }
        x->frames[0] = frames[0];
        x->frames[1] = frames[1];
        k++;
    }
    return k;
}

/*  Drains up to BATCH events, SERVER_GROUP at a time: a group is read and
    decoded first, then the register states its events will need are
    prefetched (two steps: the hash slots, then the entries they point
    to), then each is decided in order. With 100,000 live states each
    lookup is two cache misses; this way a group's misses overlap instead
    of stalling the engine one after another. */
static void s_on_events(server_t *self)
{
    grouped_t g[SERVER_GROUP];
    uint64_t now_ns = 0;
    int taken = 0;
    size_t decided = 0;
    bool drained = false;
    while (!drained && taken < BATCH) {
        size_t k = s_read_group(self, g, BATCH, &taken, &drained);
        uint64_t hints[GROUP_HINTS];
        size_t nh = 0;
        for (size_t i = 0; i < k; i++)
            nh += engine_prefetch(self->engine, &g[i].ev, &g[i].match, hints + nh,
                                  GROUP_HINTS - nh);
        for (size_t j = 0; j < nh; j++)
            regstore_prefetch_entry(self->store, hints[j]);
        for (size_t i = 0; i < k; i++) {
            if (decided++ % RECV_CLOCK_EVERY == 0)
                now_ns = nerve_clock_wall_ns();
            s_accept(self, &g[i].ev, &g[i].match, g[i].frames, g[i].parts, now_ns);
            nerve_wire_close_parts(g[i].parts, g[i].n, 3);
            if (self->metrics)
                nerve_histo_observe(&self->latency,
                                    (double)(nerve_clock_mono_ns() - g[i].read_ns) / 1e9);
        }
    }
}

static void s_apply_regset(server_t *self, zmq_msg_t *parts)
{
    char scope[512], key[512], skey[1100];
    size_t ls = zmq_msg_size(&parts[1]), lk = zmq_msg_size(&parts[2]);
    if (ls >= sizeof scope || lk >= sizeof key)
        return;
    memcpy(scope, zmq_msg_data(&parts[1]), ls);
    scope[ls] = '\0';
    memcpy(key, zmq_msg_data(&parts[2]), lk);
    key[lk] = '\0';
    size_t n = engine_register_key('R', scope, key, skey, sizeof skey);
    if (n)
        regstore_put(self->store, skey, n, zmq_msg_data(&parts[3]), zmq_msg_size(&parts[3]));
}

static void s_on_inject(server_t *self)
{
    for (int i = 0; i < BATCH; i++) {
        zmq_msg_t parts[4];
        size_t n;
        if (nerve_wire_recv_parts(self->inject, parts, 4, &n, ZMQ_DONTWAIT) != 0)
            break;
        const char *kind = n ? zmq_msg_data(&parts[0]) : "";
        size_t klen = n ? zmq_msg_size(&parts[0]) : 0;
        if (n == 3 && klen == 5 && memcmp(kind, "event", 5) == 0) {
            nerve_frame_t frames[2];
            for (int j = 0; j < 2; j++) {
                frames[j].data = zmq_msg_data(&parts[j + 1]);
                frames[j].size = zmq_msg_size(&parts[j + 1]);
            }
            self->counters.injected++;
            s_handle_event(self, frames, 2, &parts[1], nerve_clock_wall_ns());
        } else if (n == 4 && klen == 6 && memcmp(kind, "regset", 6) == 0) {
            s_apply_regset(self, parts);
        }
        nerve_wire_close_parts(parts, n, 4);
    }
}

static void s_on_tap(server_t *self)
{
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->tap, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        const uint8_t *d = zmq_msg_data(&m);
        if (zmq_msg_size(&m) >= 1)
            s_tap_topics += d[0] == 1 ? 1 : -1;
        zmq_msg_close(&m);
    }
}

/* ------------------------------------------------------------------ reload */

static void s_watch(server_t *self, const char *path)
{
    struct stat st;
    if (self->inotify_fd < 0 || stat(path, &st) != 0)
        return;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    if (!S_ISDIR(st.st_mode)) {
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
    }
    inotify_add_watch(self->inotify_fd, dir,
                      IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE);
}

static void s_watch_all(server_t *self)
{
    s_watch(self, self->cfg->rules);
    static const char *roles[] = {"rules", "registers", "reactions"};
    for (size_t i = 0; i < self->cfg->nmodules; i++) {
        s_watch(self, self->cfg->modules[i]);
        for (size_t r = 0; r < 3; r++) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/%s", self->cfg->modules[i], roles[r]);
            s_watch(self, path);
        }
    }
}

static void s_reload_failed_event(server_t *self, const char *why)
{
    msgpack_sbuffer data;
    msgpack_sbuffer_init(&data);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &data, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    const char *kv[][2] = {{"reason", self->reload.error}, {"trigger", why}};
    for (int i = 0; i < 2; i++) {
        msgpack_pack_str_with_body(&pk, kv[i][0], strlen(kv[i][0]));
        msgpack_pack_str_with_body(&pk, kv[i][1], strlen(kv[i][1]));
    }
    msgpack_pack_str_with_body(&pk, "value", 5);
    msgpack_pack_uint64(&pk, self->reload.failures);
    s_emit_internal(self, "/nerve/manager/reload/failed", &data);
    msgpack_sbuffer_destroy(&data);
}

int server_reload(server_t *self, const char *why)
{
    ruleset_t *rs = NULL;
    nerve_conf_error_t err;
    self->reload.attempts++;
    self->reload.at_ns = nerve_clock_wall_ns();
    int rc = ruleset_load(self->cfg->rules, (const char *const *)self->cfg->modules,
                          self->cfg->nmodules, &rs, &err);
    if (rc == 0 && (rc = engine_set_ruleset(self->engine, rs)) != 0)
        snprintf(err.message, sizeof err.message, "out of memory installing the rules");
    if (rc != 0) {
        ruleset_unref(&rs);
        self->reload.ok = false;
        self->reload.failures++;
        snprintf(self->reload.error, sizeof self->reload.error, "%s", err.message);
        NERVE_ERROR("manager", "reload (%s) failed, keeping the running rules: %s", why,
                    err.message);
        s_reload_failed_event(self, why);
        return rc;
    }
    ruleset_unref(&self->rules);
    self->rules = rs;
    self->reload.ok = true;
    self->reload.error[0] = '\0';
    NERVE_INFO("manager", "rules loaded (%s): %zu rules in %zu tag blocks from %zu files", why,
               rs->nrules, rs->nblocks, rs->nfiles);
    s_watch_all(self);
    return 0;
}

static void s_on_inotify(server_t *self)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    while (read(self->inotify_fd, buf, sizeof buf) > 0)
        ;
    self->reload_due_ms = nerve_clock_mono_ms() + RELOAD_DEBOUNCE_MS;
}

static void s_on_lost(void *arg, const char *id)
{
    server_t *self = arg;
    self->counters.actors_lost++;
    NERVE_WARN("manager", "actor %s lost: no heartbeat for three intervals", id);
    msgpack_sbuffer data;
    msgpack_sbuffer_init(&data);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &data, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    s_pack_str(&pk, "id", id);
    char tag[NERVE_TAG_MAX + 64];
    snprintf(tag, sizeof tag, "/nerve/actor/%s/lost", id);
    if (strlen(tag) > NERVE_TAG_MAX) { /* an id this long cannot make a tag */
        msgpack_sbuffer_destroy(&data);
        return;
    }
    s_emit_internal(self, tag, &data);
    msgpack_sbuffer_destroy(&data);
}

static int s_resend(void *arg, const pending_t *p)
{
    server_t *self = arg;
    size_t tl = strlen(p->topic);
    if (zmq_send(self->publisher, p->topic, tl, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(self->publisher, p->payload, p->payload_len, ZMQ_DONTWAIT) < 0)
        return NERVE_EFULL;
    s_tap_send(self, p->topic, tl, p->payload, p->payload_len);
    return 0;
}

static void s_on_expired(void *arg, const pending_t *p)
{
    server_t *self = arg;
    char hex[33];
    NERVE_WARN("manager", "reaction %s (%s, rule '%s') to %s expired after %u tries",
               nerve_wire_id_hex(p->id, hex), p->fn, p->rule, p->topic, p->tries);
    msgpack_sbuffer data;
    msgpack_sbuffer_init(&data);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &data, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    msgpack_pack_str_with_body(&pk, "reaction", 8);
    msgpack_pack_bin_with_body(&pk, p->id, NERVE_ID_SIZE);
    s_pack_str(&pk, "target", p->topic);
    s_pack_str(&pk, "rule", p->rule);
    s_pack_str(&pk, "fn", p->fn);
    msgpack_pack_str_with_body(&pk, "tries", 5);
    msgpack_pack_uint32(&pk, p->tries);
    s_emit_internal(self, "/nerve/reaction/expired", &data);
    msgpack_sbuffer_destroy(&data);
}

/*  A PUB cannot check who each message goes to: when a key was revoked,
    unbinding drops every tap connection and subscribers reconnect through
    the ZAP handler, which refuses the revoked one. */
static void s_tap_rebind(server_t *self, uint64_t now_ms)
{
    uint64_t gen = nerve_zap_generation(self->zap);
    if (!self->tap_curve || (gen == self->tap_generation && !self->tap_rebind_due_ms) ||
        (self->tap_rebind_due_ms && now_ms < self->tap_rebind_due_ms))
        return;
    if (!self->tap_rebind_due_ms) /* its subscribers' unsubscriptions keep the count */
        zmq_unbind(self->tap, self->tap_bound);
    self->tap_generation = gen;
    if (zmq_bind(self->tap, self->tap_bound) != 0) {
        /* the old listener closes in the background: try again shortly */
        self->tap_rebind_due_ms = now_ms + 100;
        NERVE_LOG_RL(&s_rl_drop, NERVE_LOG_WARN, "manager", "tap: re-binding %s: %s",
                     self->tap_bound, zmq_strerror(errno));
        return;
    }
    self->tap_rebind_due_ms = 0;
    NERVE_INFO("manager", "tap re-bound on %s: a key was revoked, subscribers reconnect",
               self->tap_bound);
}

static void s_on_tick(server_t *self, uint64_t now_ms)
{
    s_tap_rebind(self, now_ms);
    presence_expire(self->presence, now_ms, s_on_lost, self);
    delivery_tick(self->delivery, now_ms, nerve_clock_wall_ns(), s_resend, s_on_expired, self);
    if (now_ms >= self->next_commit_ms) {
        regstore_flush(self->store);
        self->next_commit_ms = now_ms + self->cfg->commit_interval_ms;
    }
    if (self->reload_due_ms && now_ms >= self->reload_due_ms) {
        self->reload_due_ms = 0;
        server_reload(self, "file change");
    }
    if (s_hup) {
        s_hup = 0;
        server_reload(self, "SIGHUP");
    }
    if (nerve_metrics_due(self->metrics, now_ms)) {
        manager_metrics_render(self, self->mtext);
        nerve_metrics_publish(self->metrics, self->mtext);
    }
}

/* ------------------------------------------------------------------- start */

static int s_open_sockets(server_t *self)
{
    manager_config_t *cfg = self->cfg;
    self->events = s_socket(self, ZMQ_PULL, ZMQ_RCVHWM, EVENTS_HWM);
    self->publisher = s_socket(self, ZMQ_PUSH, ZMQ_SNDHWM, PUBLISHER_HWM);
    self->tap = s_socket(self, ZMQ_XPUB, ZMQ_SNDHWM, TAP_HWM);
    self->control = s_socket(self, ZMQ_ROUTER, 0, 0);
    self->inject = s_socket(self, ZMQ_PULL, ZMQ_RCVHWM, 0);
    if (!self->events || !self->publisher || !self->tap || !self->control || !self->inject)
        return NERVE_ENOMEM;
    int linger = 2000; /* give queued reactions a moment to reach the publisher */
    zmq_setsockopt(self->publisher, ZMQ_LINGER, &linger, sizeof linger);
    snprintf(self->inject_endpoint, sizeof self->inject_endpoint, "inproc://nerve-inject-%p",
             (void *)self);
    int rc = s_bind(self->inject, self->inject_endpoint, "inject");
    rc = rc ? rc : s_curve_server(self, self->events, self->events_curve, "events");
    rc = rc ? rc : s_bind(self->events, cfg->events, "events");
    rc = rc ? rc : s_curve_server(self, self->tap, self->tap_curve, "tap");
    rc = rc ? rc : s_bind(self->tap, cfg->tap, "tap");
    rc = rc ? rc : s_curve_server(self, self->control, self->control_curve, "control");
    rc = rc ? rc : s_bind(self->control, cfg->control, "control");
    size_t len = sizeof self->tap_bound;
    if (rc == 0 && zmq_getsockopt(self->tap, ZMQ_LAST_ENDPOINT, self->tap_bound, &len) != 0)
        snprintf(self->tap_bound, sizeof self->tap_bound, "%s", cfg->tap);
    char err[512];
    if (rc == 0 && self->publisher_curve &&
        nerve_sec_client(self->publisher, &cfg->security, cfg->publisher_key, err, sizeof err) !=
            0) {
        NERVE_ERROR("manager", "publisher: %s", err);
        rc = NERVE_EPERM;
    }
    if (rc == 0 && zmq_connect(self->publisher, cfg->publisher) != 0) {
        NERVE_ERROR("manager", "publisher: cannot connect %s: %s", cfg->publisher,
                    zmq_strerror(errno));
        rc = NERVE_EIO;
    }
    return rc;
}

/*  Decides which sockets are CURVE, makes this manager's keypair on
    first start and starts the ZAP handler: all before anything binds. */
static int s_secure(server_t *self)
{
    manager_config_t *cfg = self->cfg;
    nerve_security_t *sec = &cfg->security;
    nerve_security_warn("manager", sec);
    bool curve = !sec->insecure;
    self->events_curve = curve && s_networked(cfg->events);
    self->control_curve = curve && s_networked(cfg->control);
    self->tap_curve = curve && s_networked(cfg->tap);
    self->publisher_curve = curve && s_networked(cfg->publisher);
    bool server = self->events_curve || self->control_curve || self->tap_curve;
    if (!server && !self->publisher_curve)
        return 0;
    char err[1024];
    if (nerve_keys_ensure(sec->keys, sec->name, NULL, err, sizeof err) != 0 ||
        nerve_keys_resolve(sec->keys, sec->name, self->public_key, err, sizeof err) != 0) {
        NERVE_ERROR("manager", "security: %s", err);
        return NERVE_EPERM;
    }
    if (server && !(self->zap = nerve_zap_start(self->ctx, sec, err, sizeof err))) {
        NERVE_ERROR("manager", "security: %s", err);
        return NERVE_EPERM;
    }
    self->tap_generation = nerve_zap_generation(self->zap);
    NERVE_INFO("manager", "CURVE on%s%s%s%s; public key %s", self->events_curve ? " events" : "",
               self->control_curve ? " control" : "", self->tap_curve ? " tap" : "",
               self->publisher_curve ? " publisher-link" : "", self->public_key);
    return 0;
}

int server_start(server_t *self, manager_config_t *cfg)
{
    memset(self, 0, sizeof *self);
    self->cfg = cfg;
    self->inotify_fd = -1;
    self->start_ns = nerve_clock_wall_ns();
    s_tap_topics = 0;
    msgpack_sbuffer_init(&self->buf);
    char err[512];
    if (nerve_private_dir(cfg->data, err, sizeof err) != 0) {
        NERVE_ERROR("manager", "data: %s", err);
        return NERVE_EIO;
    }
    self->store = regstore_open(cfg->data, cfg->map_size_mb << 20, err, sizeof err);
    if (!self->store) {
        NERVE_ERROR("manager", "registers: %s", err);
        return NERVE_EIO;
    }
    self->engine = engine_new(self->store);
    self->decoder = nerve_wire_decoder_new();
    bool decoders_ok = true;
    for (size_t i = 0; i < SERVER_GROUP; i++)
        decoders_ok = (self->group_decoder[i] = nerve_wire_decoder_new()) && decoders_ok;
    self->ctx = zmq_ctx_new();
    self->presence = presence_new(cfg->heartbeat_s * 1000);
    self->delivery = delivery_new();
    if (!self->engine || !self->decoder || !decoders_ok || !self->ctx || !self->presence || !self->delivery)
        return NERVE_ENOMEM;
    self->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    struct stat st;
    if (cfg->rules_default && stat(cfg->rules, &st) != 0) {
        if (nerve_private_dir(cfg->rules, err, sizeof err) == 0)
            NERVE_INFO("manager", "created %s: no rules yet; add *.yaml files there",
                       cfg->rules);
    }
    int rc = server_reload(self, "start");
    if (rc != 0)
        return rc;
    if ((rc = s_secure(self)) != 0 || (rc = s_open_sockets(self)) != 0)
        return rc;
    self->worker = worker_new(self->ctx, self->inject_endpoint, cfg->id, WORKER_THREADS,
                              cfg->worker_queue);
    if (!self->worker)
        return NERVE_ENOMEM;
    if (cfg->metrics) {
        self->metrics = nerve_metrics_start(cfg->metrics, err, sizeof err);
        self->mtext = nerve_mtext_new();
        if (!self->metrics || !self->mtext) {
            NERVE_ERROR("manager", "metrics: %s", self->metrics ? "out of memory" : err);
            return NERVE_EIO;
        }
        NERVE_INFO("manager", "metrics on http://%s/metrics", cfg->metrics);
    }
    NERVE_INFO("manager", "%s ready: events %s, publisher %s, tap %s, control %s, data %s",
               cfg->id, cfg->events, cfg->publisher, cfg->tap, cfg->control, cfg->data);
    return 0;
}

int server_run(server_t *self)
{
    zmq_pollitem_t items[] = {
        {self->events, 0, ZMQ_POLLIN, 0},  {self->inject, 0, ZMQ_POLLIN, 0},
        {self->control, 0, ZMQ_POLLIN, 0}, {self->tap, 0, ZMQ_POLLIN, 0},
        {NULL, self->inotify_fd, ZMQ_POLLIN, 0},
    };
    int nitems = self->inotify_fd >= 0 ? 5 : 4;
    self->next_commit_ms = nerve_clock_mono_ms() + self->cfg->commit_interval_ms;
    while (!s_stop) {
        uint64_t now = nerve_clock_mono_ms();
        long timeout = (long)(self->next_commit_ms > now ? self->next_commit_ms - now : 0);
        if (timeout > TICK_MAX_MS)
            timeout = TICK_MAX_MS;
        if (self->metrics) {
            uint64_t due = nerve_metrics_next_ms(self->metrics, now);
            if ((long)(due > now ? due - now : 0) < timeout)
                timeout = (long)(due > now ? due - now : 0);
        }
        if (self->reload_due_ms && (long)(self->reload_due_ms - now) < timeout)
            timeout = self->reload_due_ms > now ? (long)(self->reload_due_ms - now) : 0;
        int rc = zmq_poll(items, nitems, timeout);
        if (rc < 0 && errno != EINTR) {
            NERVE_ERROR("manager", "poll: %s", zmq_strerror(errno));
            return NERVE_EIO;
        }
        if (rc > 0) {
            if (items[0].revents & ZMQ_POLLIN)
                s_on_events(self);
            if (items[1].revents & ZMQ_POLLIN)
                s_on_inject(self);
            if (items[2].revents & ZMQ_POLLIN)
                control_handle(self);
            if (items[3].revents & ZMQ_POLLIN)
                s_on_tap(self);
            if (nitems > 4 && (items[4].revents & ZMQ_POLLIN))
                s_on_inotify(self);
        }
        s_on_tick(self, nerve_clock_mono_ms());
    }
    return 0;
}

void server_stop(server_t *self)
{
    nerve_metrics_stop(&self->metrics);
    nerve_mtext_destroy(&self->mtext);
    /*  What the engine decided is committed before waiting on reactions: a
        stop that ends in SIGKILL, because a reaction hung, loses none of it. */
    if (self->store)
        regstore_sync(self->store);
    size_t busy = self->worker ? worker_busy(self->worker) : 0;
    if (busy)
        NERVE_INFO("manager", "stopping: registers committed; waiting up to %d s for %zu local "
                   "reaction(s)", WORKER_STOP_WAIT_MS / 1000, busy);
    if (self->worker && worker_destroy(&self->worker, WORKER_STOP_WAIT_MS) != 0) {
        NERVE_WARN("manager", "stopping without the local reaction(s) still running after %d s",
                   WORKER_STOP_WAIT_MS / 1000);
        self->worker_abandoned = true;
    }
    if (self->inject)
        s_on_inject(self); /* registers set by the last reactions */
    void **socks[] = {&self->events, &self->publisher, &self->tap, &self->control,
                      &self->inject};
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++) {
        if (*socks[i])
            zmq_close(*socks[i]);
        *socks[i] = NULL;
    }
    nerve_zap_stop(&self->zap); /* after its sockets, before the context */
    if (self->ctx && !self->worker_abandoned)
        zmq_ctx_term(self->ctx); /* would wait for an abandoned worker's sockets */
    self->ctx = NULL;
    regstore_destroy(&self->store); /* flush + sync: SIGTERM loses nothing */
    engine_destroy(&self->engine);
    ruleset_unref(&self->rules);
    nerve_wire_decoder_destroy(&self->decoder);
    for (size_t i = 0; i < SERVER_GROUP; i++)
        nerve_wire_decoder_destroy(&self->group_decoder[i]);
    msgpack_sbuffer_destroy(&self->buf);
    presence_destroy(&self->presence);
    delivery_destroy(&self->delivery);
    for (size_t i = 0; i < self->ninternal; i++)
        msgpack_sbuffer_destroy(&self->internal[i].data);
    free(self->internal);
    self->internal = NULL;
    self->ninternal = 0;
    if (self->inotify_fd >= 0)
        close(self->inotify_fd);
    self->inotify_fd = -1;
    if (self->cfg && strncmp(self->cfg->control, "ipc://", 6) == 0)
        unlink(self->cfg->control + 6);
}
