/*  relay.c — nerve-publisher's loop (see relay.h).

    Three handlers: s_on_input forwards a batch of reactions, s_on_output
    tracks subscriptions (XPUB tells us when actors subscribe), s_on_control
    answers `status`; after each poll s_rebind cuts revoked subscribers off
    (see relay.h). Frames are moved with zmq_msg_send, never copied.
*/
#include "relay.h"

#include <nerve/log.h>
#include <nerve/metrics.h>
#include <nerve/paths.h>
#include <nerve/wire.h>

#include <errno.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define BATCH 4096

static volatile sig_atomic_t s_stop;
static volatile sig_atomic_t s_hup;
static nerve_ratelimit_t s_rl = NERVE_RATELIMIT_INIT(1000);
static nerve_ratelimit_t s_rl_unauth = NERVE_RATELIMIT_INIT(1000);

struct relay {
    void *ctx, *input, *output, *control;
    nerve_security_t security;
    nerve_zap_t *zap; /* NULL when no socket is a CURVE server */
    bool input_curve, output_curve;
    char public_key[NERVE_Z85_KEY_LEN + 1];
    char output_bound[512]; /* the bound endpoint (a wildcard port resolved) */
    uint64_t generation;    /* the zap generation output was bound at */
    uint64_t rebind_due_ms; /* a re-bind that failed is tried again then */
    relay_counters_t counters;
    uint64_t start_ns;
    char *control_path;
    nerve_metrics_t *metrics;
    nerve_mtext_t *mtext;
};

void relay_request_stop(void)
{
    s_stop = 1;
}

void relay_note_hup(void)
{
    s_hup = 1;
}

static int s_bind(void *sock, const char *endpoint, const char *what)
{
    char err[512];
    if (nerve_ipc_dir_prepare(endpoint, err, sizeof err) != 0) {
        NERVE_ERROR("publisher", "%s: %s", what, err);
        return -1;
    }
    if (strncmp(endpoint, "ipc://", 6) == 0)
        unlink(endpoint + 6);
    if (zmq_bind(sock, endpoint) != 0) {
        NERVE_ERROR("publisher", "%s: cannot bind %s: %s", what, endpoint, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

/*  Everything but IPC and inproc crosses a network: those sockets are
    CURVE. IPC sockets rely on their 0700 directory instead. */
static bool s_networked(const char *endpoint)
{
    return strncmp(endpoint, "ipc://", 6) != 0 && strncmp(endpoint, "inproc://", 9) != 0;
}

/*  Keypair (made on first start), ZAP handler, CURVE options: before any
    socket binds. */
static int s_secure(relay_t *self, const relay_config_t *cfg)
{
    self->security = cfg->security;
    nerve_security_warn("publisher", &self->security);
    bool curve = !self->security.insecure;
    self->output_curve = curve && s_networked(cfg->output);
    self->input_curve = curve && s_networked(cfg->input);
    if (!self->output_curve && !self->input_curve)
        return 0;
    char err[1024];
    const nerve_security_t *sec = &self->security;
    if (nerve_keys_ensure(sec->keys, sec->name, NULL, err, sizeof err) != 0 ||
        nerve_keys_resolve(sec->keys, sec->name, self->public_key, err, sizeof err) != 0 ||
        !(self->zap = nerve_zap_start(self->ctx, sec, err, sizeof err)) ||
        (self->output_curve && nerve_sec_server(self->output, sec, err, sizeof err) != 0) ||
        (self->input_curve && nerve_sec_server(self->input, sec, err, sizeof err) != 0)) {
        NERVE_ERROR("publisher", "security: %s", err);
        return -1;
    }
    self->generation = nerve_zap_generation(self->zap);
    NERVE_INFO("publisher", "CURVE on%s%s; public key %s", self->output_curve ? " output" : "",
               self->input_curve ? " input" : "", self->public_key);
    return 0;
}

relay_t *relay_new(const relay_config_t *cfg)
{
    relay_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->start_ns = nerve_clock_wall_ns();
    self->ctx = zmq_ctx_new();
    self->input = zmq_socket(self->ctx, ZMQ_PULL);
    self->output = zmq_socket(self->ctx, ZMQ_XPUB);
    self->control = cfg->control ? zmq_socket(self->ctx, ZMQ_ROUTER) : NULL;
    if (!self->input || !self->output || (cfg->control && !self->control)) {
        relay_destroy(&self);
        return NULL;
    }
    int zero = 0, hwm = cfg->hwm, ivl = 2000, ttl = 6000;
    zmq_setsockopt(self->input, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->output, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->output, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(self->output, ZMQ_HEARTBEAT_TIMEOUT, &ttl, sizeof ttl);
    int verbose = 1; /* see every subscription, for the count */
    zmq_setsockopt(self->output, ZMQ_XPUB_VERBOSER, &verbose, sizeof verbose);
    void *socks[] = {self->input, self->output, self->control};
    for (int i = 0; i < 3; i++)
        if (socks[i])
            zmq_setsockopt(socks[i], ZMQ_LINGER, &zero, sizeof zero);
    if (s_secure(self, cfg) != 0 || s_bind(self->input, cfg->input, "input") != 0 ||
        s_bind(self->output, cfg->output, "output") != 0 ||
        (self->control && s_bind(self->control, cfg->control, "control") != 0)) {
        relay_destroy(&self);
        return NULL;
    }
    size_t len = sizeof self->output_bound;
    if (zmq_getsockopt(self->output, ZMQ_LAST_ENDPOINT, self->output_bound, &len) != 0)
        snprintf(self->output_bound, sizeof self->output_bound, "%s", cfg->output);
    if (cfg->control && strncmp(cfg->control, "ipc://", 6) == 0)
        self->control_path = strdup(cfg->control + 6);
    if (cfg->metrics) {
        char err[256];
        self->metrics = nerve_metrics_start(cfg->metrics, err, sizeof err);
        self->mtext = nerve_mtext_new();
        if (!self->metrics || !self->mtext) {
            NERVE_ERROR("publisher", "metrics: %s", self->metrics ? "out of memory" : err);
            relay_destroy(&self);
            return NULL;
        }
    }
    NERVE_INFO("publisher", "ready: input %s, output %s", cfg->input, self->output_bound);
    return self;
}

void relay_destroy(relay_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    relay_t *self = *self_p;
    nerve_metrics_stop(&self->metrics);
    nerve_mtext_destroy(&self->mtext);
    void *socks[] = {self->input, self->output, self->control};
    for (int i = 0; i < 3; i++)
        if (socks[i])
            zmq_close(socks[i]);
    nerve_zap_stop(&self->zap); /* after its sockets, before the context */
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    if (self->control_path)
        unlink(self->control_path);
    free(self->control_path);
    free(self);
    *self_p = NULL;
}

/*  Forwards one message: frame one with SNDMORE, frame two, untouched. */
static void s_forward(relay_t *self, zmq_msg_t *frames)
{
    if (zmq_msg_send(&frames[0], self->output, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_msg_send(&frames[1], self->output, ZMQ_DONTWAIT) < 0) {
        self->counters.dropped++;
        NERVE_LOG_RL(&s_rl, NERVE_LOG_WARN, "publisher", "output refused a reaction: %s",
                     zmq_strerror(errno));
        return;
    }
    self->counters.relayed++;
}

static void s_on_input(relay_t *self)
{
    for (int i = 0; i < BATCH; i++) {
        zmq_msg_t frames[2];
        size_t n;
        if (nerve_wire_recv_parts(self->input, frames, 2, &n, ZMQ_DONTWAIT) != 0)
            return;
        if (self->input_curve && n >= 1 &&
            !nerve_zap_allowed(self->zap, zmq_msg_gets(&frames[0], "User-Id"))) {
            self->counters.dropped++;
            self->counters.unauthorized++;
            NERVE_LOG_RL(&s_rl_unauth, NERVE_LOG_WARN, "publisher",
                         "dropped a message on input from a key no longer admitted");
        } else if (n == 2) {
            s_forward(self, frames);
        } else {
            self->counters.dropped++;
            NERVE_LOG_RL(&s_rl, NERVE_LOG_WARN, "publisher",
                         "dropped a message of %zu frames (reactions have 2)", n);
        }
        nerve_wire_close_parts(frames, n, 2);
    }
}

static void s_on_output(relay_t *self)
{
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->output, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        const uint8_t *d = zmq_msg_data(&m);
        if (zmq_msg_size(&m) >= 1) {
            if (d[0] == 1)
                self->counters.subscriptions++;
            else if (d[0] == 0 && self->counters.subscriptions)
                self->counters.subscriptions--;
        }
        zmq_msg_close(&m);
    }
}

static void s_pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_uint64(pk, v);
}

static void s_pack_str(msgpack_packer *pk, const char *s)
{
    if (s)
        msgpack_pack_str_with_body(pk, s, strlen(s));
    else
        msgpack_pack_nil(pk);
}

/*  "insecure" and "security": the mode, the key, and the ZAP handler's
    decisions, for `nerve status`. */
static void s_pack_security(relay_t *self, msgpack_packer *pk)
{
    nerve_zap_stats_t zs;
    nerve_zap_stats(self->zap, &zs);
    s_pack_str(pk, "insecure");
    self->security.insecure ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    s_pack_str(pk, "security");
    msgpack_pack_map(pk, 9);
    s_pack_str(pk, "mode");
    s_pack_str(pk, nerve_security_mode(&self->security));
    s_pack_str(pk, "keys");
    s_pack_str(pk, self->security.keys);
    s_pack_str(pk, "public_key");
    s_pack_str(pk, self->public_key[0] ? self->public_key : NULL);
    s_pack_kv_u64(pk, "admitted", zs.admitted);
    s_pack_kv_u64(pk, "refused_unknown", zs.refused_unknown);
    s_pack_kv_u64(pk, "refused_rejected", zs.refused_rejected);
    s_pack_kv_u64(pk, "recorded_pending", zs.recorded_pending);
    s_pack_kv_u64(pk, "rebinds", self->counters.rebinds);
    s_pack_kv_u64(pk, "unauthorized", self->counters.unauthorized);
}

static void s_on_control(relay_t *self)
{
    zmq_msg_t parts[4];
    size_t n = 0;
    bool more = true;
    while (more && n < 4) {
        zmq_msg_init(&parts[n]);
        if (zmq_msg_recv(&parts[n], self->control, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&parts[n]);
            break;
        }
        more = zmq_msg_more(&parts[n]);
        n++;
    }
    if (n < 2)
        goto done;
    size_t nenv = zmq_msg_size(&parts[1]) == 0 ? 2 : 1;
    bool status = n > nenv && zmq_msg_size(&parts[nenv]) == 6 &&
                  memcmp(zmq_msg_data(&parts[nenv]), "status", 6) == 0;
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    if (status) {
        msgpack_pack_map(&pk, 8);
        msgpack_pack_str_with_body(&pk, "daemon", 6);
        msgpack_pack_str_with_body(&pk, "nerve-publisher", 15);
        msgpack_pack_str_with_body(&pk, "version", 7);
        msgpack_pack_str_with_body(&pk, NERVE_VERSION, strlen(NERVE_VERSION));
        s_pack_kv_u64(&pk, "uptime_s", (nerve_clock_wall_ns() - self->start_ns) / 1000000000ull);
        s_pack_kv_u64(&pk, "relayed", self->counters.relayed);
        s_pack_kv_u64(&pk, "dropped", self->counters.dropped);
        s_pack_kv_u64(&pk, "subscriptions", self->counters.subscriptions);
        s_pack_security(self, &pk);
    } else {
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "error", 5);
        msgpack_pack_str_with_body(&pk, "the publisher answers only 'status'", 35);
    }
    for (size_t i = 0; i < nenv; i++)
        zmq_send(self->control, zmq_msg_data(&parts[i]), zmq_msg_size(&parts[i]),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(self->control, status ? "ok" : "error", status ? 2 : 5, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(self->control, body.data, body.size, ZMQ_DONTWAIT);
    msgpack_sbuffer_destroy(&body);
done:
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
    /* drain any frames past the fourth */
    int more_flag = 0;
    size_t sz = sizeof more_flag;
    while (zmq_getsockopt(self->control, ZMQ_RCVMORE, &more_flag, &sz) == 0 && more_flag) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, self->control, ZMQ_DONTWAIT);
        zmq_msg_close(&m);
    }
}

static void s_render_metrics(relay_t *self)
{
    nerve_mtext_t *t = self->mtext;
    nerve_mtext_reset(t);
    nerve_mtext_gauge(t, "nerve_start_time_seconds", "When this publisher started (Unix time).",
                      NULL, (double)self->start_ns / 1e9);
    nerve_mtext_counter(t, "nerve_publisher_relayed_total", "Reactions relayed to actors.", NULL,
                        self->counters.relayed);
    nerve_mtext_counter(t, "nerve_publisher_dropped_total",
                        "Messages dropped: malformed, or refused by the output socket.", NULL,
                        self->counters.dropped);
    nerve_mtext_gauge(t, "nerve_publisher_subscriptions", "Topics actors subscribe to now.",
                      NULL, (double)self->counters.subscriptions);
    nerve_metrics_publish(self->metrics, t);
}

/*  When the admitted set lost a key, drop every output connection by
    unbinding; actors reconnect through the ZAP handler, which now refuses
    the revoked key. Unbinding is asynchronous, so the bind may find the
    port still taken for a moment: it is tried again 100 ms later. */
static void s_rebind(relay_t *self, uint64_t now_ms)
{
    uint64_t gen = nerve_zap_generation(self->zap);
    if (!self->output_curve || (gen == self->generation && !self->rebind_due_ms) ||
        (self->rebind_due_ms && now_ms < self->rebind_due_ms))
        return;
    if (!self->rebind_due_ms) {
        zmq_unbind(self->output, self->output_bound);
        self->counters.rebinds++;
    }
    self->generation = gen;
    if (zmq_bind(self->output, self->output_bound) != 0) {
        self->rebind_due_ms = now_ms + 100;
        NERVE_LOG_RL(&s_rl, NERVE_LOG_WARN, "publisher", "output: re-binding %s: %s",
                     self->output_bound, zmq_strerror(errno));
        return;
    }
    self->rebind_due_ms = 0;
    NERVE_INFO("publisher",
               "output re-bound on %s: a key was revoked; actors reconnect and are admitted "
               "again only if their key still is",
               self->output_bound);
}

int relay_run(relay_t *self)
{
    zmq_pollitem_t items[] = {
        {self->input, 0, ZMQ_POLLIN, 0},
        {self->output, 0, ZMQ_POLLIN, 0},
        {self->control, 0, ZMQ_POLLIN, 0},
    };
    int nitems = self->control ? 3 : 2;
    while (!s_stop) {
        int rc = zmq_poll(items, nitems, self->rebind_due_ms ? 100 : 500);
        if (rc < 0 && errno != EINTR) {
            NERVE_ERROR("publisher", "poll: %s", zmq_strerror(errno));
            return -1;
        }
        if (s_hup) {
            s_hup = 0;
            /* Keys are read as peers connect (a revoke applies at once);
               the rest of the configuration needs a restart. */
            NERVE_INFO("publisher", "SIGHUP: nothing to reload (it keeps no rules or modules); "
                                    "restart it to change its configuration");
        }
        s_rebind(self, nerve_clock_mono_ms());
        if (nerve_metrics_due(self->metrics, nerve_clock_mono_ms()))
            s_render_metrics(self);
        if (rc <= 0)
            continue;
        if (items[0].revents & ZMQ_POLLIN)
            s_on_input(self);
        if (items[1].revents & ZMQ_POLLIN)
            s_on_output(self);
        if (nitems > 2 && (items[2].revents & ZMQ_POLLIN))
            s_on_control(self);
    }
    return 0;
}

void relay_counters(const relay_t *self, relay_counters_t *out)
{
    *out = self->counters;
}
