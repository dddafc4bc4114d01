/*  actor.c — nerve-actor's loop (see actor.h).

    Handlers, each small and named for what it reacts to:
      s_on_reaction  one message from the publisher: check, decode, dedupe,
                     dispatch
      s_on_inbox     what the workers send back: results (remembered, then
                     forwarded) and emitted events (forwarded)
      s_on_tick      the heartbeat, and links due to be made again
      s_on_monitor   a link's handshake events (CURVE)
      s_reload       SIGHUP: a new runset (modules, secrets) or the old kept
    Nothing here blocks: sends to the manager are non-blocking and a full
    queue is counted (the manager retries host reactions, and a repeat is
    answered from the cache).

    The two links (SUB to the publisher, PUSH to the manager) are CURVE
    clients on TCP, each pinned to its server's public key, so nothing but
    the holder of the publisher's secret key can make this actor act, and
    its results go only to the real manager. libzmq never retries a
    handshake the server refused (our key unknown or rejected), so each
    link watches its socket's handshake events and, after a refusal, makes
    a new socket after a pause that doubles up to LINK_RETRY_MAX_MS,
    logging the name under which the server recorded our key as pending.
*/
#include "actor.h"
#include "pool.h"
#include "recent.h"
#include "runset.h"

#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/metrics.h>
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
#define LINK_RETRY_MS        1000
#define LINK_RETRY_MAX_MS    30000
#define KEY_SETTLE_MS        1200 /* a new key reaches the ZAP handlers' next look (1 s) */
#define LINK_EVENTS                                                                                \
    (ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |                             \
     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)

#ifndef NERVE_VERSION
#define NERVE_VERSION "0.0.0"
#endif

/*  One connection to a server: its socket (NULL while waiting to retry),
    and the PAIR that receives the socket's handshake events. */
typedef struct link {
    const char *what; /* "publisher", "manager" */
    const char *endpoint;
    const char *server_key; /* what to pin (nerve_keys_resolve) */
    int type;               /* ZMQ_SUB or ZMQ_PUSH */
    bool curve;
    void *sock;
    void *monitor;
    uint64_t retry_ms;   /* when to make the socket again (sock NULL), or 0 */
    uint64_t backoff_ms; /* the next pause after a refusal */
    bool up;             /* a handshake succeeded since the socket was made */
    unsigned seq;
} link_t;

struct actor {
    const actor_config_t *cfg;
    void *ctx;
    link_t pub; /* reactions from the publisher (SUB) */
    link_t mgr; /* events to the manager (PUSH) */
    void *sub;  /* pub.sock */
    void *push; /* mgr.sock */
    nerve_security_t sec;
    char pending_name[NERVE_KEY_PENDING_NAME_LEN + 1]; /* ours, as servers record it */
    void *inbox;                                       /* results and events from the workers */
    char inbox_ep[64];
    char topics[MAX_TOPICS][NERVE_TOPIC_MAX + 1];
    size_t ntopics;
    nerve_wire_decoder_t *decoder;
    recent_t *recent;
    pool_t *pool;
    bool pool_abandoned; /* a reaction outlived the stop: keep ctx alive */
    runset_t *runset;    /* modules and secrets new reactions get; jobs hold refs */
    _Atomic int reload;  /* asked for by actor_request_reload() */
    actor_reload_status_t reload_status;
    msgpack_sbuffer data;  /* a result's or heartbeat's data */
    msgpack_sbuffer frame; /* an encoded event */
    uint64_t start_ms;
    uint64_t next_beat_ms;
    _Atomic int stop;
    actor_stats_t stats;
    nerve_metrics_t *metrics; /* NULL when `metrics:` is off */
    nerve_mtext_t *mtext;
};

static nerve_ratelimit_t s_rl_malformed = NERVE_RATELIMIT_INIT(1000);
static nerve_ratelimit_t s_rl_not_mine = NERVE_RATELIMIT_INIT(1000);
static nerve_ratelimit_t s_rl_expired = NERVE_RATELIMIT_INIT(1000);
static nerve_ratelimit_t s_rl_refused = NERVE_RATELIMIT_INIT(1000);
static nerve_ratelimit_t s_rl_send = NERVE_RATELIMIT_INIT(1000);
static nerve_ratelimit_t s_rl_link = NERVE_RATELIMIT_INIT(1000);

/* ----------------------------------------------------------------- sending */

/*  Sends one event (two frames) to the manager, never waiting. */
static int s_send(actor_t *self, const void *tag, size_t tag_len, const void *payload, size_t len)
{
    if (!self->push || zmq_send(self->push, tag, tag_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
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
    char why[1024];
    int rc = runset_resolve(self->runset, r->fn, &fn, why, sizeof why);
    if (rc != 0) {
        s_refuse(self, r, true, rc, "%s", why);
        return;
    }
    pool_job_t *job = pool_job_new(r, &fn, self->runset);
    if (!job) {
        s_refuse(self, r, true, NERVE_ENOMEM, "actor out of memory");
        return;
    }
    /*  Secrets are put in only now, in the job's own copy of the args:
        nothing that is logged, remembered or sent back holds them. */
    if (secrets_resolve(runset_secrets(self->runset), &job->r.args, why, sizeof why) != 0) {
        pool_job_free(&job);
        s_refuse(self, r, true, NERVE_ENOENT, "%s", why);
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

static void s_on_reaction(actor_t *self)
{
    for (int i = 0; i < BATCH && self->sub; i++) {
        zmq_msg_t parts[3];
        size_t n;
        if (nerve_wire_recv_parts(self->sub, parts, 3, &n, ZMQ_DONTWAIT) != 0)
            return;
        nerve_frame_t frames[3];
        for (size_t j = 0; j < n && j < 3; j++) {
            frames[j].data = zmq_msg_data(&parts[j]);
            frames[j].size = zmq_msg_size(&parts[j]);
        }
        s_handle(self, frames, n);
        nerve_wire_close_parts(parts, n, 3);
    }
}

/* -------------------------------------------------------------------- inbox */

static void s_on_inbox(actor_t *self)
{
    for (int i = 0; i < BATCH; i++) {
        zmq_msg_t parts[4];
        size_t n;
        if (nerve_wire_recv_parts(self->inbox, parts, 4, &n, ZMQ_DONTWAIT) != 0)
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
        nerve_wire_close_parts(parts, n, 4);
    }
}

/* ---------------------------------------------------------------- heartbeat */

static void s_pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/*  {ok, attempts, failures, modules[, error]}: how the last load of the
    runset went, so whoever follows the heartbeats sees a reload that
    failed (or a start that refused a module) without reading the log. */
static void s_pack_reload(msgpack_packer *pk, const actor_reload_status_t *st)
{
    msgpack_pack_map(pk, st->ok ? 4 : 5);
    s_pack_str(pk, "ok");
    if (st->ok)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    s_pack_str(pk, "attempts");
    msgpack_pack_uint64(pk, st->attempts);
    s_pack_str(pk, "failures");
    msgpack_pack_uint64(pk, st->failures);
    s_pack_str(pk, "modules");
    msgpack_pack_uint64(pk, st->modules);
    if (!st->ok) {
        s_pack_str(pk, "error");
        s_pack_str(pk, st->error);
    }
}

/*  Sends self->data as the data of an event of this actor on `tag`. */
static int s_send_own(actor_t *self, const char *tag)
{
    nerve_event_t ev;
    memset(&ev, 0, sizeof ev);
    snprintf(ev.tag, sizeof ev.tag, "%s", tag);
    ev.tag_len = strlen(ev.tag);
    nerve_wire_new_id(ev.id);
    ev.ts = nerve_clock_wall_ns();
    snprintf(ev.host, sizeof ev.host, "%s", self->cfg->id);
    ev.data_raw = self->data.data;
    ev.data_raw_len = self->data.size;
    return s_send_event(self, &ev);
}

static void s_heartbeat(actor_t *self, uint64_t now_ms)
{
    const actor_config_t *cfg = self->cfg;
    self->data.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &self->data, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
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
    s_pack_str(&pk, "reload");
    s_pack_reload(&pk, &self->reload_status);

    char tag[NERVE_TAG_MAX + 1];
    snprintf(tag, sizeof tag, "/nerve/actor/%s/alive", cfg->id);
    if (s_send_own(self, tag) == 0)
        self->stats.heartbeats++;
}

static void s_render_metrics(actor_t *self)
{
    nerve_mtext_t *t = self->mtext;
    const actor_stats_t *st = &self->stats;
    pool_stats_t ps;
    pool_stats(self->pool, &ps);
    nerve_mtext_reset(t);
    const struct {
        const char *name, *help;
        uint64_t v;
    } counters[] = {
        {"nerve_actor_reactions_received_total", "Messages taken from the publisher.",
         st->received},
        {"nerve_actor_reactions_not_mine_total", "Messages on a topic not exactly ours: ignored.",
         st->not_mine},
        {"nerve_actor_reactions_expired_total", "Reactions past their deadline: dropped.",
         st->expired},
        {"nerve_actor_reactions_repeated_total",
         "Repeats of a finished reaction: the result was sent again, nothing ran.",
         st->repeats_done},
        {"nerve_actor_reactions_submitted_total", "Reactions given to the workers.", st->submitted},
        {"nerve_actor_reactions_refused_total",
         "Reactions answered ok:false without running (allow, queue full, unknown fn).",
         st->refused},
        {"nerve_actor_reactions_ok_total", "Reactions that ran and succeeded.", ps.ok},
        {"nerve_actor_reactions_failed_total", "Reactions that ran and failed.", ps.failed},
        {"nerve_actor_results_total", "Result events sent to the manager.", st->results},
        {"nerve_actor_heartbeats_total", "Heartbeats sent.", st->heartbeats},
        {"nerve_actor_send_dropped_total", "Messages the manager socket refused (queue full).",
         st->send_dropped},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        nerve_mtext_counter(t, counters[i].name, counters[i].help, NULL, counters[i].v);
    for (int r = 1; r < NERVE_WIRE_REASON_COUNT; r++)
        nerve_mtext_counter(t, "nerve_actor_reactions_malformed_total",
                            "Reactions the decoder refused, by reason.",
                            NERVE_LABELS("reason", nerve_wire_reason_name((nerve_wire_reason_t)r)),
                            st->malformed_by[r]);
    nerve_mtext_gauge(t, "nerve_actor_reactions_queued", "Reactions waiting for a worker.", NULL,
                      (double)ps.queued);
    nerve_mtext_gauge(t, "nerve_actor_reactions_running", "Reactions running now.", NULL,
                      (double)ps.running);
    const actor_reload_status_t *rs = &self->reload_status;
    nerve_mtext_counter(t, "nerve_actor_reload_attempts_total", "Reloads tried (SIGHUP).", NULL,
                        rs->attempts);
    nerve_mtext_counter(t, "nerve_actor_reload_failures_total",
                        "Reloads that failed: the running modules and secrets were kept.", NULL,
                        rs->failures);
    nerve_mtext_gauge(t, "nerve_actor_reload_last_ok",
                      "1 when the last load (start or reload) had no error.", NULL,
                      rs->ok ? 1.0 : 0.0);
    nerve_mtext_gauge(t, "nerve_actor_modules", "Reactions modules loaded and in use.", NULL,
                      (double)rs->modules);
    nerve_metrics_publish(self->metrics, t);
}

static void s_on_tick(actor_t *self, uint64_t now_ms)
{
    if (nerve_metrics_due(self->metrics, now_ms))
        s_render_metrics(self);
    if (now_ms < self->next_beat_ms)
        return;
    s_heartbeat(self, now_ms);
    self->next_beat_ms = now_ms + self->cfg->heartbeat_ms;
}

/* ------------------------------------------------------------------ reload */

/*  Records how a load went: the running runset's counts, and why it
    failed (or nothing). */
static void s_reload_note(actor_t *self, int rc, const char *err)
{
    actor_reload_status_t *st = &self->reload_status;
    st->at_ns = nerve_clock_wall_ns();
    st->ok = rc == 0;
    st->modules = runset_loaded(self->runset);
    st->refused = runset_refused(self->runset);
    snprintf(st->error, sizeof st->error, "%s", rc == 0 ? "" : err);
}

/*  /nerve/actor/<id>/reload/failed {reason, trigger, value}: the shape of
    the manager's /nerve/manager/reload/failed, so one rule alerts on both. */
static void s_reload_failed_event(actor_t *self, const char *trigger)
{
    const actor_reload_status_t *st = &self->reload_status;
    self->data.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &self->data, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    s_pack_str(&pk, "reason");
    s_pack_str(&pk, st->error);
    s_pack_str(&pk, "trigger");
    s_pack_str(&pk, trigger);
    s_pack_str(&pk, "value");
    msgpack_pack_uint64(&pk, st->failures);
    char tag[NERVE_TAG_MAX + 1];
    snprintf(tag, sizeof tag, "/nerve/actor/%s/reload/failed", self->cfg->id);
    s_send_own(self, tag);
}

/*  Loads a new runset beside the running one and swaps them only when all
    of it loaded. The old one lives on in the jobs still holding it. */
static void s_reload(actor_t *self, const char *trigger)
{
    const actor_config_t *cfg = self->cfg;
    actor_reload_status_t *st = &self->reload_status;
    char err[sizeof st->error];
    runset_t *next = NULL;
    st->attempts++;
    int rc = runset_load((const char *const *)cfg->modules, cfg->nmodules, cfg->secrets, &next, err,
                         sizeof err);
    self->next_beat_ms = nerve_clock_mono_ms(); /* the new status goes out now */
    if (rc != 0) {
        runset_unref(&next);
        st->failures++;
        s_reload_note(self, rc, err);
        NERVE_ERROR("actor", "reload (%s) failed, the running modules%s are kept: %s", trigger,
                    cfg->secrets ? " and secrets" : "", err);
        s_reload_failed_event(self, trigger);
        return;
    }
    runset_unref(&self->runset);
    self->runset = next;
    s_reload_note(self, 0, NULL);
    NERVE_INFO("actor", "reloaded (%s): %zu reactions module%s from %s%s", trigger,
               runset_loaded(next), runset_loaded(next) == 1 ? "" : "s", runset_path(next),
               cfg->secrets ? ", secrets read again" : "");
}

/* --------------------------------------------------------------------- stop */

static void s_forget_dropped(void *arg, const uint8_t *id)
{
    recent_forget(((actor_t *)arg)->recent, id);
}

/*  Stops taking reactions, lets the running ones finish (bounded), and
    forwards their results. */
static void s_link_close(actor_t *self, link_t *link);

static void s_shutdown(actor_t *self)
{
    s_link_close(self, &self->pub);
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

static void s_topics(actor_t *self)
{
    const actor_config_t *cfg = self->cfg;
    snprintf(self->topics[self->ntopics++], NERVE_TOPIC_MAX + 1, "@all/");
    snprintf(self->topics[self->ntopics++], NERVE_TOPIC_MAX + 1, "@host/%s/", cfg->id);
    for (size_t i = 0; i < cfg->ngroups && self->ntopics < MAX_TOPICS; i++)
        snprintf(self->topics[self->ntopics++], NERVE_TOPIC_MAX + 1, "@group/%s/", cfg->groups[i]);
}

/*  Everything but IPC and inproc crosses a network: those links are
    CURVE. IPC sockets rely on their 0700 directory instead. */
static bool s_networked(const char *endpoint)
{
    return strncmp(endpoint, "ipc://", 6) != 0 && strncmp(endpoint, "inproc://", 9) != 0;
}

static void s_link_close(actor_t *self, link_t *link)
{
    if (link->sock)
        zmq_close(link->sock); /* stops its monitor too */
    if (link->monitor)
        zmq_close(link->monitor);
    link->sock = link->monitor = NULL;
    link->up = false;
    self->sub = self->pub.sock;
    self->push = self->mgr.sock;
}

/*  Makes the link's socket: options, CURVE pinned to its server's key,
    the handshake monitor, subscriptions, connect. Returns 0; NERVE_ENOENT
    when the server's key file is not there (yet: the daemon that makes it
    may not have started), to be tried again later; other errors are
    configuration errors. */
static int s_link_open(actor_t *self, link_t *link)
{
    int hwm_opt = link->type == ZMQ_SUB ? ZMQ_RCVHWM : ZMQ_SNDHWM;
    int hwm = link->type == ZMQ_SUB ? SUB_HWM : MANAGER_HWM;
    char err[1024];
    int rc = 0;
    link->retry_ms = 0;
    if (!(link->sock = s_socket(self, link->type, hwm_opt, hwm))) {
        NERVE_ERROR("actor", "%s: cannot make a socket: %s", link->what, zmq_strerror(errno));
        return NERVE_ENOMEM;
    }
    if (link->type == ZMQ_PUSH) {
        int linger = 2000; /* results and heartbeats still queued get a moment at exit */
        zmq_setsockopt(link->sock, ZMQ_LINGER, &linger, sizeof linger);
    }
    if (link->curve) {
        rc = nerve_sec_client(link->sock, &self->sec, link->server_key, err, sizeof err);
        if (rc != 0) {
            NERVE_LOG_RL(&s_rl_link, rc == NERVE_ENOENT ? NERVE_LOG_WARN : NERVE_LOG_ERROR, "actor",
                         "%s: %s%s", link->what, err, rc == NERVE_ENOENT ? " (trying again)" : "");
            s_link_close(self, link);
            return rc;
        }
        char ep[96];
        snprintf(ep, sizeof ep, "inproc://nerve-actor-monitor-%p-%s-%u", (void *)self, link->what,
                 link->seq++);
        link->monitor = zmq_socket(self->ctx, ZMQ_PAIR);
        int zero = 0;
        if (!link->monitor || zmq_socket_monitor(link->sock, ep, LINK_EVENTS) != 0 ||
            zmq_setsockopt(link->monitor, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
            zmq_connect(link->monitor, ep) != 0) {
            NERVE_ERROR("actor", "%s: cannot monitor the socket: %s", link->what,
                        zmq_strerror(errno));
            s_link_close(self, link);
            return NERVE_EIO;
        }
    }
    for (size_t i = 0; link->type == ZMQ_SUB && i < self->ntopics; i++)
        if (zmq_setsockopt(link->sock, ZMQ_SUBSCRIBE, self->topics[i], strlen(self->topics[i])) !=
            0)
            rc = NERVE_EIO;
    if (rc == 0 && zmq_connect(link->sock, link->endpoint) != 0) {
        NERVE_ERROR("actor", "%s: cannot connect %s: %s", link->what, link->endpoint,
                    zmq_strerror(errno));
        rc = NERVE_EIO;
    }
    if (rc != 0)
        s_link_close(self, link);
    self->sub = self->pub.sock;
    self->push = self->mgr.sock;
    return rc;
}

/*  Drops the link's socket and makes a new one after the pause. */
static void s_link_retry(actor_t *self, link_t *link, uint64_t now_ms)
{
    s_link_close(self, link);
    link->retry_ms = now_ms + link->backoff_ms;
    link->backoff_ms =
        link->backoff_ms * 2 > LINK_RETRY_MAX_MS ? LINK_RETRY_MAX_MS : link->backoff_ms * 2;
}

/*  The handshake events of one link's socket. */
static void s_on_monitor(actor_t *self, link_t *link)
{
    while (link->monitor) {
        zmq_msg_t parts[2];
        size_t n;
        if (nerve_wire_recv_parts(link->monitor, parts, 2, &n, ZMQ_DONTWAIT) != 0)
            return;
        uint16_t event = 0;
        uint32_t value = 0;
        if (n >= 1 && zmq_msg_size(&parts[0]) >= 6) {
            memcpy(&event, zmq_msg_data(&parts[0]), 2);
            memcpy(&value, (const uint8_t *)zmq_msg_data(&parts[0]) + 2, 4);
        }
        nerve_wire_close_parts(parts, n, 2);
        uint64_t now = nerve_clock_mono_ms();
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            if (!link->up)
                NERVE_INFO("actor", "%s: CURVE handshake with %s done (its key is the one pinned)",
                           link->what, link->endpoint);
            link->up = true;
            link->backoff_ms = LINK_RETRY_MS;
        } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            NERVE_LOG_RL(&s_rl_link, NERVE_LOG_WARN, "actor",
                         "%s at %s refused this actor's key %s/%s.pub (status %u): on that host "
                         "run `nerve keys accept %s` to let it in; trying again in %llus",
                         link->what, link->endpoint, self->sec.keys, self->sec.name,
                         (unsigned)value, self->pending_name,
                         (unsigned long long)(link->backoff_ms + 999) / 1000);
            s_link_retry(self, link, now);
        } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
            NERVE_LOG_RL(&s_rl_link, NERVE_LOG_WARN, "actor",
                         "%s at %s: CURVE handshake failed (is it the server whose key is pinned, "
                         "and does it run CURVE too?); trying again in %llus",
                         link->what, link->endpoint,
                         (unsigned long long)(link->backoff_ms + 999) / 1000);
            s_link_retry(self, link, now);
        }
    }
}

/*  Links waiting for their pause to end. */
static void s_links_due(actor_t *self, uint64_t now_ms)
{
    link_t *links[] = {&self->pub, &self->mgr};
    for (int i = 0; i < 2; i++) {
        link_t *l = links[i];
        if (l->sock || !l->retry_ms || now_ms < l->retry_ms)
            continue;
        if (l == &self->pub && atomic_load(&self->stop))
            continue; /* stopping: the SUB stays closed */
        if (s_link_open(self, l) != 0)
            s_link_retry(self, l, now_ms);
    }
}

static void s_link_init(actor_t *self, link_t *link, const char *what, const char *endpoint,
                        const char *server_key, int type)
{
    link->what = what;
    link->endpoint = endpoint;
    link->server_key = server_key;
    link->type = type;
    link->curve = !self->sec.insecure && s_networked(endpoint);
    link->backoff_ms = LINK_RETRY_MS;
}

/*  This actor's keypair (made on first start) and what to log about it.
 *made tells whether it was made just now. */
static int s_own_key(actor_t *self, bool *made_now)
{
    char err[1024], z85[NERVE_Z85_KEY_LEN + 1];
    bool made = false;
    if (nerve_keys_ensure(self->sec.keys, self->sec.name, &made, err, sizeof err) != 0 ||
        nerve_keys_resolve(self->sec.keys, self->sec.name, z85, err, sizeof err) != 0) {
        NERVE_ERROR("actor", "security: %s", err);
        return NERVE_EPERM;
    }
    nerve_keys_pending_name(z85, self->pending_name);
    *made_now = made;
    NERVE_INFO("actor",
               "%s key %s/%s.pub, public key %s: a manager or publisher that does not know it "
               "records it as pending/%s.pub (`nerve keys accept %s` there lets it in)",
               made ? "made" : "using", self->sec.keys, self->sec.name, z85, self->pending_name,
               self->pending_name);
    return 0;
}

static int s_open_sockets(actor_t *self)
{
    const actor_config_t *cfg = self->cfg;
    self->inbox = zmq_socket(self->ctx, ZMQ_PULL);
    if (!self->inbox)
        return NERVE_ENOMEM;
    int linger = 0, hwm = INBOX_HWM;
    zmq_setsockopt(self->inbox, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(self->inbox, ZMQ_RCVHWM, &hwm, sizeof hwm);
    snprintf(self->inbox_ep, sizeof self->inbox_ep, "inproc://nerve-actor-%p", (void *)self);
    if (zmq_bind(self->inbox, self->inbox_ep) != 0) {
        NERVE_ERROR("actor", "inbox: cannot bind %s: %s", self->inbox_ep, zmq_strerror(errno));
        return NERVE_EIO;
    }
    s_topics(self);
    s_link_init(self, &self->pub, "publisher", cfg->publisher, cfg->publisher_key, ZMQ_SUB);
    s_link_init(self, &self->mgr, "manager", cfg->manager, cfg->manager_key, ZMQ_PUSH);
    nerve_security_warn("actor", &self->sec);
    bool made = false;
    if ((self->pub.curve || self->mgr.curve) && s_own_key(self, &made) != 0)
        return NERVE_EPERM;
    link_t *links[] = {&self->pub, &self->mgr};
    for (int i = 0; i < 2; i++) {
        /*  A keypair made a moment ago, in a keys directory this host's
            servers share, is seen by their ZAP handlers within a second:
            connecting before that would only get it refused. */
        if (made && links[i]->curve) {
            links[i]->retry_ms = nerve_clock_mono_ms() + KEY_SETTLE_MS;
            continue;
        }
        int rc = s_link_open(self, links[i]);
        if (rc == NERVE_ENOENT) /* its server has not made its key yet */
            s_link_retry(self, links[i], nerve_clock_mono_ms());
        else if (rc != 0)
            return rc;
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
    self->sec = cfg->security;
    msgpack_sbuffer_init(&self->data);
    msgpack_sbuffer_init(&self->frame);
    /*  A module refused at start does not stop the actor: there is no
        older set to keep, and refusing every reaction would be worse than
        refusing that module's (with its reason). A reload, by contrast,
        keeps the running set rather than take in a refusal. */
    char err[sizeof self->reload_status.error];
    int rc = runset_load((const char *const *)cfg->modules, cfg->nmodules, cfg->secrets,
                         &self->runset, err, sizeof err);
    if (!self->runset) {
        NERVE_ERROR("actor", "%s", err);
        goto fail;
    }
    s_reload_note(self, rc, err);
    if (rc != 0)
        NERVE_ERROR("actor", "start: %s; the other modules run", err);
    if (cfg->secrets)
        NERVE_INFO("actor", "secrets: %zu from %s", secrets_count(runset_secrets(self->runset)),
                   cfg->secrets);
    if (setenv("NERVE_SYSTEMCTL", cfg->systemctl, 1) != 0) {
        NERVE_ERROR("actor", "cannot set NERVE_SYSTEMCTL: %s", strerror(errno));
        goto fail;
    }
    /*  The cache must hold every id in flight (queued or running) plus a
        deadline window of finished ones. */
    size_t capacity = RECENT_DEFAULT_CAPACITY;
    if (capacity < 2 * (cfg->queue + cfg->workers))
        capacity = 2 * (cfg->queue + cfg->workers);
    self->decoder = nerve_wire_decoder_new();
    self->recent = recent_new(capacity, RECENT_DEFAULT_MAX_BYTES);
    self->ctx = zmq_ctx_new();
    if (!self->decoder || !self->recent || !self->ctx) {
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
    if (cfg->metrics) {
        self->metrics = nerve_metrics_start(cfg->metrics, err, sizeof err);
        self->mtext = nerve_mtext_new();
        if (!self->metrics || !self->mtext) {
            NERVE_ERROR("actor", "metrics: %s", self->metrics ? "out of memory" : err);
            goto fail;
        }
    }
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
               "%zu reactions module(s) from %s",
               cfg->id, cfg->publisher, cfg->manager, cfg->ngroups, cfg->workers,
               runset_loaded(self->runset), runset_path(self->runset));
    int rc = 0;
    while (!atomic_load(&self->stop)) {
        if (atomic_exchange(&self->reload, 0))
            s_reload(self, "SIGHUP");
        uint64_t now = nerve_clock_mono_ms();
        s_links_due(self, now);
        s_on_tick(self, now);
        long timeout = (long)(self->next_beat_ms > now ? self->next_beat_ms - now : 0);
        if (timeout > POLL_MAX_MS)
            timeout = POLL_MAX_MS;
        /*  A link waiting to retry has no socket: its slot polls nothing. */
        zmq_pollitem_t items[] = {
            {self->inbox, 0, ZMQ_POLLIN, 0},
            {self->sub, 0, ZMQ_POLLIN, 0},
            {self->pub.monitor, 0, ZMQ_POLLIN, 0},
            {self->mgr.monitor, 0, ZMQ_POLLIN, 0},
        };
        zmq_pollitem_t live[4];
        int nlive = 0;
        for (int i = 0; i < 4; i++)
            if (items[i].socket)
                live[nlive++] = items[i];
        int n = zmq_poll(live, nlive, timeout);
        if (n < 0 && errno != EINTR) {
            NERVE_ERROR("actor", "poll: %s", zmq_strerror(errno));
            rc = NERVE_EIO;
            break;
        }
        for (int i = 0; n > 0 && i < nlive; i++) {
            if (!(live[i].revents & ZMQ_POLLIN))
                continue;
            if (live[i].socket == self->inbox)
                s_on_inbox(self);
            else if (live[i].socket == self->sub)
                s_on_reaction(self);
            else if (live[i].socket == self->pub.monitor)
                s_on_monitor(self, &self->pub);
            else if (live[i].socket == self->mgr.monitor)
                s_on_monitor(self, &self->mgr);
        }
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

void actor_request_reload(actor_t *self)
{
    atomic_store(&self->reload, 1);
}

void actor_reload_status(const actor_t *self, actor_reload_status_t *out)
{
    *out = self->reload_status;
}

int actor_destroy(actor_t **self_p)
{
    if (!self_p || !*self_p)
        return 0;
    actor_t *self = *self_p;
    nerve_metrics_stop(&self->metrics);
    nerve_mtext_destroy(&self->mtext);
    if (self->pool && pool_destroy(&self->pool, 0) != 0)
        self->pool_abandoned = true;
    s_link_close(self, &self->pub);
    s_link_close(self, &self->mgr);
    if (self->inbox)
        zmq_close(self->inbox);
    self->inbox = NULL;
    /*  A worker still inside a reaction holds a socket of this context:
        terminating it would wait for that reaction forever. */
    if (self->ctx && !self->pool_abandoned)
        zmq_ctx_term(self->ctx);
    self->ctx = NULL;
    nerve_wire_decoder_destroy(&self->decoder);
    recent_destroy(&self->recent);
    runset_unref(&self->runset); /* a reaction that outlived the stop holds its own */
    msgpack_sbuffer_destroy(&self->data);
    msgpack_sbuffer_destroy(&self->frame);
    bool abandoned = self->pool_abandoned;
    free(self);
    *self_p = NULL;
    return abandoned ? NERVE_ETIMEDOUT : 0;
}

void actor_stats(const actor_t *self, actor_stats_t *out)
{
    *out = self->stats;
}
