/*  control.c — answers the CLI on the control socket (see control.h).

    Each verb is one handler that packs its reply body; s_dispatch picks it
    by name. Requests come from operators, not the network at large, but
    they are still checked: a malformed request gets an error reply, never
    a crash.
*/
#include "control.h"
#include "server.h"

#include <nerve/log.h>
#include <nerve/value.h>
#include <nerve/wire.h>

#include <stdio.h>
#include <string.h>
#include <zmq.h>

#define LIST_MAX 100000

typedef struct request {
    server_t *srv;
    const msgpack_object *args;
    msgpack_packer *pk;
    char error[1536];
} request_t;

static void s_str(msgpack_packer *pk, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (!s) {
        msgpack_pack_nil(pk);
        return;
    }
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void s_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    s_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void s_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    s_str(pk, k);
    s_str(pk, v);
}

static void s_kv_bool(msgpack_packer *pk, const char *k, bool v)
{
    s_str(pk, k);
    v ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

/* ------------------------------------------------------------------ status */

/*  "security": how this manager is secured, which sockets are CURVE, and
    what its ZAP handler decided: enough for an operator to see a refused
    host without reading the log. */
static void s_security(server_t *srv, msgpack_packer *pk)
{
    const nerve_security_t *sec = &srv->cfg->security;
    nerve_zap_stats_t zs;
    nerve_zap_stats(srv->zap, &zs);
    s_str(pk, "security");
    msgpack_pack_map(pk, 5);
    s_kv_str(pk, "mode", nerve_security_mode(sec));
    s_kv_str(pk, "keys", sec->keys);
    s_kv_str(pk, "public_key", srv->public_key[0] ? srv->public_key : NULL);
    s_str(pk, "curve");
    const char *names[] = {"events", "control", "tap", "publisher"};
    bool on[] = {srv->events_curve, srv->control_curve, srv->tap_curve, srv->publisher_curve};
    size_t n = 0;
    for (size_t i = 0; i < 4; i++)
        n += on[i];
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < 4; i++)
        if (on[i])
            s_str(pk, names[i]);
    s_str(pk, "zap");
    msgpack_pack_map(pk, 8);
    s_kv_u64(pk, "admitted", zs.admitted);
    s_kv_u64(pk, "refused_unknown", zs.refused_unknown);
    s_kv_u64(pk, "refused_rejected", zs.refused_rejected);
    s_kv_u64(pk, "refused_other", zs.refused_other);
    s_kv_u64(pk, "recorded_pending", zs.recorded_pending);
    s_kv_u64(pk, "auto_accepted", zs.auto_accepted);
    s_kv_u64(pk, "keys", zs.keys);
    s_kv_u64(pk, "unauthorized", srv->counters.rejected_unauthorized);
}

static int s_status(request_t *req)
{
    server_t *srv = req->srv;
    msgpack_packer *pk = req->pk;
    server_counters_t *c = &srv->counters;
    engine_stats_t es;
    engine_stats(srv->engine, &es);
    worker_stats_t ws;
    worker_stats(srv->worker, &ws);
    regstore_stats_t rs;
    regstore_stats(srv->store, &rs);
    uint64_t now = nerve_clock_wall_ns();

    delivery_stats_t ds;
    delivery_stats(srv->delivery, &ds);
    msgpack_pack_map(pk, 12);
    s_kv_str(pk, "daemon", "nerve-manager");
    s_kv_str(pk, "id", srv->cfg->id);
    s_kv_str(pk, "version", NERVE_VERSION);
    s_kv_u64(pk, "uptime_s", (now - srv->start_ns) / 1000000000ull);
    s_kv_bool(pk, "insecure", srv->cfg->security.insecure);
    s_security(srv, pk);

    s_str(pk, "events");
    msgpack_pack_map(pk, 6);
    s_kv_u64(pk, "received", c->received);
    s_kv_u64(pk, "accepted", c->accepted);
    s_kv_u64(pk, "injected", c->injected);
    s_kv_u64(pk, "matched", es.matched);
    s_kv_u64(pk, "rejected", c->rejected);
    s_str(pk, "rejected_by");
    size_t nreasons = c->rejected_unauthorized != 0;
    for (int r = 1; r < NERVE_WIRE_REASON_COUNT; r++)
        nreasons += c->rejected_by[r] != 0;
    msgpack_pack_map(pk, nreasons);
    for (int r = 1; r < NERVE_WIRE_REASON_COUNT; r++)
        if (c->rejected_by[r])
            s_kv_u64(pk, nerve_wire_reason_name((nerve_wire_reason_t)r), c->rejected_by[r]);
    if (c->rejected_unauthorized)
        s_kv_u64(pk, SERVER_REASON_UNAUTHORIZED, c->rejected_unauthorized);

    s_str(pk, "rules");
    msgpack_pack_map(pk, 8);
    s_kv_u64(pk, "count", srv->rules ? srv->rules->nrules : 0);
    s_kv_u64(pk, "evaluated", es.rules_evaluated);
    s_kv_u64(pk, "true", es.rules_true);
    s_kv_u64(pk, "fired", es.rules_fired);
    s_kv_u64(pk, "errors", es.rule_errors);
    s_kv_u64(pk, "waiting_for", es.suppressed_for);
    s_kv_u64(pk, "cooldown", es.suppressed_cooldown);
    s_kv_u64(pk, "blocks", srv->rules ? srv->rules->nblocks : 0);

    s_str(pk, "actors");
    msgpack_pack_map(pk, 3);
    s_kv_u64(pk, "live", presence_count(srv->presence));
    s_kv_u64(pk, "joined", c->actors_joined);
    s_kv_u64(pk, "lost", c->actors_lost);

    s_str(pk, "reactions");
    msgpack_pack_map(pk, 13);
    s_kv_u64(pk, "produced", es.reactions);
    s_kv_u64(pk, "local_waiting", ws.depth);
    s_kv_u64(pk, "pending", ds.pending);
    s_kv_u64(pk, "acked", ds.acked);
    s_kv_u64(pk, "retried", ds.retried);
    s_kv_u64(pk, "expired", ds.expired);
    s_kv_u64(pk, "sent", c->reactions_sent);
    s_kv_u64(pk, "send_dropped", c->reactions_send_dropped);
    s_kv_u64(pk, "unroutable", c->reactions_unroutable);
    s_kv_u64(pk, "local_queued", c->reactions_local);
    s_kv_u64(pk, "local_refused", c->reactions_local_refused);
    s_kv_u64(pk, "local_done", ws.done);
    s_kv_u64(pk, "local_failed", ws.failed);

    s_str(pk, "registers");
    msgpack_pack_map(pk, 6);
    s_kv_u64(pk, "commits", rs.commits);
    s_kv_u64(pk, "commit_errors", rs.commit_errors);
    s_kv_u64(pk, "entries_written", rs.entries_written);
    s_kv_u64(pk, "dirty", rs.dirty);
    s_kv_u64(pk, "cached", rs.cached);
    s_kv_u64(pk, "max_commit_us", rs.max_commit_us);

    s_str(pk, "reload");
    msgpack_pack_map(pk, 5);
    s_kv_bool(pk, "ok", srv->reload.ok);
    s_kv_u64(pk, "at_ns", srv->reload.at_ns);
    s_kv_u64(pk, "attempts", srv->reload.attempts);
    s_kv_u64(pk, "failures", srv->reload.failures);
    s_kv_str(pk, "error", srv->reload.error[0] ? srv->reload.error : NULL);
    return 0;
}

static int s_reload(request_t *req)
{
    int rc = server_reload(req->srv, "control");
    if (rc != 0) {
        snprintf(req->error, sizeof req->error, "%s", req->srv->reload.error);
        return rc;
    }
    msgpack_pack_map(req->pk, 2);
    s_kv_u64(req->pk, "rules", req->srv->rules->nrules);
    s_kv_u64(req->pk, "blocks", req->srv->rules->nblocks);
    return 0;
}

/* ------------------------------------------------------------------- rules */

static void s_pack_rule(msgpack_packer *pk, const ruleset_t *rs, const rule_def_t *rule,
                        const engine_rule_stats_t *st)
{
    char where[512];
    snprintf(where, sizeof where, "%s:%zu:%zu", rule->file, rule->line, rule->column);
    msgpack_pack_map(pk, 12);
    s_kv_str(pk, "name", rule->name);
    s_kv_str(pk, "scope", rule->scope);
    s_kv_str(pk, "where", where);
    s_kv_str(pk, "glob", rs->blocks[rule->block].glob);
    s_kv_str(pk, "rule", rule->rule_name);
    s_kv_str(pk, "register", rule->register_name);
    s_kv_u64(pk, "for", rule->for_n);
    s_kv_u64(pk, "cooldown_ms", rule->cooldown_ms);
    s_str(pk, "chain");
    msgpack_pack_array(pk, rule->nchain);
    for (size_t i = 0; i < rule->nchain; i++) {
        char step[300];
        snprintf(step, sizeof step, "%s %s", chain_op_name(rule->chain[i].op),
                 rs->rules[rule->chain[i].rule].name);
        s_str(pk, step);
    }
    s_str(pk, "reactions");
    msgpack_pack_array(pk, rule->nreactions);
    for (size_t i = 0; i < rule->nreactions; i++)
        s_str(pk, rule->reactions[i].fn);
    s_kv_u64(pk, "evaluated", st ? st->evaluated : 0);
    s_kv_u64(pk, "fired", st ? st->fired : 0);
}

static int s_rules_list(request_t *req)
{
    const ruleset_t *rs = req->srv->rules;
    size_t nstats;
    const engine_rule_stats_t *st = engine_rule_stats(req->srv->engine, &nstats);
    msgpack_pack_array(req->pk, rs ? rs->nrules : 0);
    for (size_t i = 0; rs && i < rs->nrules; i++)
        s_pack_rule(req->pk, rs, &rs->rules[i], i < nstats ? &st[i] : NULL);
    return 0;
}

/* --------------------------------------------------------------- registers */

static bool s_arg_str(request_t *req, const char *key, char *buf, size_t size, bool required)
{
    const msgpack_object *o = nerve_obj_get(req->args, key);
    buf[0] = '\0';
    if (!o) {
        if (required)
            snprintf(req->error, sizeof req->error, "missing '%s'", key);
        return !required;
    }
    if (!nerve_obj_strcpy(o, buf, size)) {
        snprintf(req->error, sizeof req->error, "'%s' must be a string under %zu bytes", key,
                 size);
        return false;
    }
    return true;
}

/*  msgpack-c, which the CLI reads replies with, parses 32 levels. */
#define REPLY_DEPTH_MAX 32

/*  A register's state as shown to people: the value itself when the state
    is one msgpack value (registers.store) that fits in the `room` levels
    the reply has left for it, else its size. */
static void s_pack_state(msgpack_packer *pk, const void *v, size_t vlen, size_t room)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object obj;
    if (nerve_wire_unpack(v, vlen, &zone, &obj) == NERVE_WIRE_OK &&
        nerve_obj_depth(&obj, room) <= room) {
        msgpack_pack_object(pk, obj);
    } else {
        msgpack_pack_map(pk, 1);
        s_kv_u64(pk, "state_bytes", vlen);
    }
    msgpack_zone_destroy(&zone);
}

typedef struct list_ctx {
    msgpack_packer *pk;
    size_t count;
    bool packing;
} list_ctx_t;

static int s_list_one(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    list_ctx_t *ctx = arg;
    if (ctx->count >= LIST_MAX)
        return 1;
    ctx->count++;
    if (!ctx->packing)
        return 0;
    const char *key = k;
    size_t scope_len = strnlen(key + 1, kl - 1);
    msgpack_pack_map(ctx->pk, 3);
    s_str(ctx->pk, "scope");
    msgpack_pack_str_with_body(ctx->pk, key + 1, scope_len);
    s_str(ctx->pk, "key");
    size_t rest = kl > scope_len + 2 ? kl - scope_len - 2 : 0;
    msgpack_pack_str_with_body(ctx->pk, key + 2 + scope_len, rest);
    s_str(ctx->pk, "value");
    s_pack_state(ctx->pk, v, vl, REPLY_DEPTH_MAX - 2); /* inside the array and the entry */
    return 0;
}

static int s_registers_list(request_t *req)
{
    char prefix[512], full[520];
    if (!s_arg_str(req, "prefix", prefix, sizeof prefix, false))
        return NERVE_EINVAL;
    size_t plen = (size_t)snprintf(full, sizeof full, "R%s", prefix);
    list_ctx_t ctx = {.pk = req->pk};
    regstore_foreach(req->srv->store, full, plen, s_list_one, &ctx); /* count */
    msgpack_pack_array(req->pk, ctx.count);
    ctx.count = 0;
    ctx.packing = true;
    regstore_foreach(req->srv->store, full, plen, s_list_one, &ctx);
    return 0;
}

typedef struct regkey {
    char scope[256];
    char key[256];
    char bytes[600]; /* "R" scope "\0" key, not NUL-terminated */
    size_t len;
} regkey_t;

static int s_register_key(request_t *req, regkey_t *rk)
{
    if (!s_arg_str(req, "scope", rk->scope, sizeof rk->scope, true) ||
        !s_arg_str(req, "key", rk->key, sizeof rk->key, true))
        return NERVE_EINVAL;
    rk->len = engine_register_key('R', rk->scope, rk->key, rk->bytes, sizeof rk->bytes);
    return 0;
}

static int s_registers_get(request_t *req)
{
    regkey_t rk;
    const void *v;
    size_t vl;
    if (s_register_key(req, &rk) != 0)
        return NERVE_EINVAL;
    if (regstore_get(req->srv->store, rk.bytes, rk.len, &v, &vl) != 0) {
        snprintf(req->error, sizeof req->error, "no register '%s' with key '%s'", rk.scope,
                 rk.key);
        return NERVE_ENOENT;
    }
    s_pack_state(req->pk, v, vl, REPLY_DEPTH_MAX);
    return 0;
}

static int s_registers_set(request_t *req)
{
    regkey_t rk;
    if (s_register_key(req, &rk) != 0)
        return NERVE_EINVAL;
    const msgpack_object *value = nerve_obj_get(req->args, "value");
    if (!value) {
        snprintf(req->error, sizeof req->error, "missing 'value'");
        return NERVE_EINVAL;
    }
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *value);
    int rc = regstore_put(req->srv->store, rk.bytes, rk.len, buf.data, buf.size);
    msgpack_sbuffer_destroy(&buf);
    if (rc == 0)
        rc = regstore_flush(req->srv->store);
    msgpack_pack_true(req->pk);
    return rc < 0 ? rc : 0;
}

static int s_registers_del(request_t *req)
{
    regkey_t rk;
    if (s_register_key(req, &rk) != 0)
        return NERVE_EINVAL;
    int rc = regstore_del(req->srv->store, rk.bytes, rk.len);
    if (rc == 0)
        regstore_flush(req->srv->store);
    msgpack_pack_true(req->pk);
    return 0;
}

/* ------------------------------------------------------------------ actors */

static int s_actors(request_t *req)
{
    const presence_t *p = req->srv->presence;
    size_t n = presence_count(p);
    uint64_t now_ms = nerve_clock_mono_ms();
    msgpack_pack_array(req->pk, n);
    for (size_t i = 0; i < n; i++) {
        const actor_info_t *a = presence_at(p, i);
        msgpack_pack_map(req->pk, 6);
        s_kv_str(req->pk, "id", a->id);
        s_kv_str(req->pk, "version", a->version);
        s_str(req->pk, "groups");
        msgpack_pack_array(req->pk, a->ngroups);
        for (size_t g = 0; g < a->ngroups; g++)
            s_str(req->pk, a->groups[g]);
        s_kv_u64(req->pk, "uptime_s", a->uptime_s);
        s_kv_u64(req->pk, "last_seen_ms_ago", now_ms - a->last_seen_ms);
        s_kv_u64(req->pk, "joined_ns", a->joined_ns);
    }
    return 0;
}

/* ----------------------------------------------------------------- explain */

static int s_explain(request_t *req)
{
    nerve_event_t ev;
    memset(&ev, 0, sizeof ev);
    if (!s_arg_str(req, "tag", ev.tag, sizeof ev.tag, true))
        return NERVE_EINVAL;
    ev.tag_len = strlen(ev.tag);
    if (nerve_wire_check_tag(ev.tag, ev.tag_len) != NERVE_WIRE_OK) {
        snprintf(req->error, sizeof req->error, "'%s' is not a valid tag", ev.tag);
        return NERVE_EINVAL;
    }
    if (!s_arg_str(req, "host", ev.host, sizeof ev.host, false))
        return NERVE_EINVAL;
    if (!ev.host[0])
        snprintf(ev.host, sizeof ev.host, "%s", req->srv->cfg->id);
    const msgpack_object *data = nerve_obj_get(req->args, "data");
    ev.data = data ? *data : (msgpack_object){.type = MSGPACK_OBJECT_MAP};
    nerve_wire_new_id(ev.id);
    ev.ts = nerve_clock_wall_ns();
    return engine_explain(req->srv->engine, &ev, ev.ts, req->pk);
}

/* ---------------------------------------------------------------- dispatch */

static const struct {
    const char *verb;
    int (*handler)(request_t *req);
} s_verbs[] = {
    {"status", s_status},
    {"reload", s_reload},
    {"rules.list", s_rules_list},
    {"registers.list", s_registers_list},
    {"registers.get", s_registers_get},
    {"registers.set", s_registers_set},
    {"registers.del", s_registers_del},
    {"explain", s_explain},
    {"actors", s_actors},
};

static int s_dispatch(request_t *req, const char *verb, size_t vlen)
{
    for (size_t i = 0; i < sizeof s_verbs / sizeof s_verbs[0]; i++)
        if (strlen(s_verbs[i].verb) == vlen && memcmp(s_verbs[i].verb, verb, vlen) == 0)
            return s_verbs[i].handler(req);
    snprintf(req->error, sizeof req->error, "unknown verb '%.*s'", (int)(vlen > 64 ? 64 : vlen),
             verb);
    return NERVE_EINVAL;
}

static void s_reply(void *sock, zmq_msg_t *envelope, size_t nenv, const char *status,
                    const msgpack_sbuffer *body)
{
    for (size_t i = 0; i < nenv; i++)
        zmq_send(sock, zmq_msg_data(&envelope[i]), zmq_msg_size(&envelope[i]),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(sock, status, strlen(status), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(sock, body->data, body->size, ZMQ_DONTWAIT);
}

void control_handle(server_t *srv)
{
    for (int round = 0; round < 64; round++) {
        /* [identity] [""]? [verb] [args] */
        zmq_msg_t parts[5];
        size_t n;
        if (nerve_wire_recv_parts(srv->control, parts, 5, &n, ZMQ_DONTWAIT) != 0)
            return;
        if (n > 5) /* frames past the fifth were dropped */
            n = 5;
        srv->counters.control_requests++;
        size_t nenv = (n >= 2 && zmq_msg_size(&parts[1]) == 0) ? 2 : 1;
        msgpack_sbuffer body;
        msgpack_sbuffer_init(&body);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        request_t req = {.srv = srv, .pk = &pk};
        msgpack_zone zone;
        msgpack_zone_init(&zone, 2048);
        msgpack_object args = {.type = MSGPACK_OBJECT_MAP};
        int rc = NERVE_EINVAL;
        if (n < nenv + 1) {
            snprintf(req.error, sizeof req.error, "empty request");
        } else {
            if (n >= nenv + 2) {
                zmq_msg_t *a = &parts[nenv + 1];
                if (zmq_msg_size(a) && nerve_wire_unpack(zmq_msg_data(a), zmq_msg_size(a), &zone,
                                                         &args) != NERVE_WIRE_OK)
                    args.type = MSGPACK_OBJECT_NIL;
            }
            req.args = &args;
            if (!server_peer_allowed(srv, &parts[nenv], srv->control_curve))
                snprintf(req.error, sizeof req.error,
                         "unauthorized: this key is no longer admitted");
            else if (args.type != MSGPACK_OBJECT_MAP)
                snprintf(req.error, sizeof req.error, "arguments must be a msgpack map");
            else
                rc = s_dispatch(&req, zmq_msg_data(&parts[nenv]), zmq_msg_size(&parts[nenv]));
        }
        if (rc != 0) {
            body.size = 0;
            msgpack_pack_map(&pk, 1);
            s_kv_str(&pk, "error", req.error[0] ? req.error : nerve_strerror(rc));
        }
        s_reply(srv->control, parts, nenv, rc == 0 ? "ok" : "error", &body);
        msgpack_zone_destroy(&zone);
        msgpack_sbuffer_destroy(&body);
        for (size_t i = 0; i < n; i++)
            zmq_msg_close(&parts[i]);
    }
}
