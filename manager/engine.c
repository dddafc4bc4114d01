/*  engine.c — evaluates events against a compiled ruleset (see engine.h).

    The hot path, per event: a tag index lookup, then per matched rule a key
    render into a stack buffer, one register store get and put (in memory;
    the store batches LMDB writes on its own thread), two module calls. Per
    event memory comes from one zone cleared at the start of the next event;
    per rule memo arrays use a generation counter, so nothing is cleared per
    event.

    Chains: a rule's result is its own result folded left to right with the
    (memoized) results of the rules its chain names. Cycles were refused at
    load, so the recursion terminates. `for` and `cooldown` gate firing only,
    not the result other rules' chains see.
*/
#include "engine.h"

#include <nerve/log.h>
#include <nerve/template.h>
#include <nerve/value.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 512
#define STORE_KEY_MAX 1024
#define MATCH_MAX ENGINE_MATCH_MAX

/*  What one evaluation of one rule found, kept for the event. */
typedef struct memo {
    uint32_t gen;          /* == engine->gen when valid for this event */
    bool result;           /* combined result (own folded with chain) */
    bool own;              /* the rule function's answer */
    int rc;                /* rule or register error, 0 if none */
    const msgpack_object *input; /* the event's value, NULL if none */
    msgpack_object seen;   /* what the rule saw (register output or input) */
    bool has_seen;
    bool reg_existed;      /* the register had state before this event */
} memo_t;

/*  for/cooldown state as stored under "F": versioned, little-endian. */
typedef struct gate_state {
    uint8_t version;
    uint8_t pad[3];
    uint32_t streak;
    uint64_t last_fired_ns;
} gate_state_t;

struct engine {
    regstore_t *store;
    const ruleset_t *rs;
    uint64_t rs_gen; /* bumped by every engine_set_ruleset(): matches say which they used */
    const engine_match_t *cur; /* the match of the event being decided, or NULL */
    memo_t *memo;
    engine_rule_stats_t *rule_stats;
    size_t nrules;
    uint32_t gen;
    bool explaining;       /* no side effects */
    msgpack_zone *zone;    /* per event */
    uint8_t *state_buf;    /* register output state, NERVE_REGISTER_STATE_MAX */
    engine_stats_t stats;
    nerve_ratelimit_t rl_rule_error;
};

engine_t *engine_new(regstore_t *store)
{
    engine_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->store = store;
    self->zone = msgpack_zone_new(16384);
    self->state_buf = malloc(NERVE_REGISTER_STATE_MAX);
    self->rl_rule_error = (nerve_ratelimit_t)NERVE_RATELIMIT_INIT(1000);
    if (!self->zone || !self->state_buf) {
        engine_destroy(&self);
        return NULL;
    }
    return self;
}

void engine_destroy(engine_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    engine_t *self = *self_p;
    if (self->zone)
        msgpack_zone_free(self->zone);
    free(self->state_buf);
    free(self->memo);
    free(self->rule_stats);
    free(self);
    *self_p = NULL;
}

int engine_set_ruleset(engine_t *self, const ruleset_t *rs)
{
    size_t n = rs ? rs->nrules : 0;
    memo_t *memo = calloc(n ? n : 1, sizeof *memo);
    engine_rule_stats_t *stats = calloc(n ? n : 1, sizeof *stats);
    if (!memo || !stats) {
        free(memo);
        free(stats);
        return NERVE_ENOMEM;
    }
    free(self->memo);
    free(self->rule_stats);
    self->rs_gen++;
    self->memo = memo;
    self->rule_stats = stats;
    self->nrules = n;
    self->rs = rs;
    self->gen = 0;
    return 0;
}

const ruleset_t *engine_ruleset(const engine_t *self)
{
    return self->rs;
}

size_t engine_register_key(char kind, const char *scope, const char *key, char *buf,
                           size_t bufsize)
{
    size_t ls = strlen(scope), lk = strlen(key);
    size_t n = 1 + ls + 1 + lk;
    if (n > bufsize)
        return 0;
    buf[0] = kind;
    memcpy(buf + 1, scope, ls);
    buf[1 + ls] = '\0';
    memcpy(buf + 2 + ls, key, lk);
    return n;
}

/*  The value a rule sees without a register: `field:`, a number `data`, or
    `data.value`. */
static const msgpack_object *s_select_value(const rule_def_t *rule, const nerve_event_t *ev)
{
    const msgpack_object *data = &ev->data;
    if (rule->field)
        return nerve_obj_path(data, rule->field);
    if (data->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
        data->type == MSGPACK_OBJECT_NEGATIVE_INTEGER || data->type == MSGPACK_OBJECT_FLOAT32 ||
        data->type == MSGPACK_OBJECT_FLOAT64)
        return data;
    return nerve_obj_get(data, "value");
}

static void s_tmpl_ctx(const nerve_event_t *ev, const rule_def_t *rule,
                       const msgpack_object *value, nerve_tmpl_ctx_t *ctx)
{
    ctx->tag = ev->tag;
    ctx->host = ev->host;
    ctx->id = ev->id;
    ctx->data = &ev->data;
    ctx->value = value;
    ctx->rule = rule->name;
}

static void s_render_key(const rule_def_t *rule, const nerve_event_t *ev, char *buf,
                         size_t size)
{
    nerve_tmpl_ctx_t ctx;
    s_tmpl_ctx(ev, rule, NULL, &ctx);
    if (nerve_tmpl_render_text(rule->key, &ctx, buf, size) != 0)
        buf[size - 1] = '\0'; /* truncated keys still key consistently */
}

static void s_rule_error(engine_t *self, const rule_def_t *rule, const char *what, int rc)
{
    if (self->explaining)
        return;
    self->stats.rule_errors++;
    NERVE_LOG_RL(&self->rl_rule_error, NERVE_LOG_WARN, "engine",
                 "%s:%zu: rule '%s': %s failed: %s", rule->file, rule->line, rule->name, what,
                 nerve_strerror(rc));
}

/*  The store key of kind 'R' (register) or 'F' (gate) for this rule and
    event: the one engine_prefetch() rendered when there is one, else
    rendered now into buf (STORE_KEY_MAX). Sets *len (0: does not fit). */
static const char *s_store_key(engine_t *self, const rule_def_t *rule, char kind,
                               const nerve_event_t *ev, char *buf, size_t *len)
{
    const engine_match_t *m = self->cur;
    for (size_t i = 0; m && i < m->nkeys; i++)
        if (m->keys[i].rule == rule->index && m->keys[i].kind == kind) {
            *len = m->keys[i].len;
            return m->keys[i].bytes;
        }
    char key[KEY_MAX];
    s_render_key(rule, ev, key, sizeof key);
    *len = engine_register_key(kind, rule->scope, key, buf, STORE_KEY_MAX);
    return buf;
}

/*  Runs the rule's register: reads state, calls the function, writes the
    new state unless explaining. Sets memo->seen to the register's output. */
static void s_run_register(engine_t *self, const rule_def_t *rule, const nerve_event_t *ev,
                           uint64_t now_ns, memo_t *m)
{
    char buf[STORE_KEY_MAX];
    size_t sklen;
    const char *skey = s_store_key(self, rule, 'R', ev, buf, &sklen);
    const void *state = NULL;
    size_t state_len = 0;
    if (sklen && regstore_get(self->store, skey, sklen, &state, &state_len) == 0)
        m->reg_existed = true;
    else
        state = NULL, state_len = 0;

    nerve_register_call_t call = {
        .params = &rule->params,
        .prepared = rule->reg_prepared,
        .value = m->input,
        .event = ev,
        .now_ns = now_ns,
        .state = state,
        .state_len = state_len,
        .new_state = self->state_buf,
        .new_state_cap = NERVE_REGISTER_STATE_MAX,
        .new_state_len = SIZE_MAX,
        .zone = self->zone,
        .out = {.type = MSGPACK_OBJECT_NIL},
    };
    int rc = rule->reg.fn->fn.reg(&call);
    if (rc != 0) {
        /* NERVE_ETYPE included: a register fed a string where it keeps
           numbers is the operator's mistake to see in the error count. */
        s_rule_error(self, rule, rule->register_name, rc);
        m->rc = rc;
    }
    if (!self->explaining && sklen && call.new_state_len != SIZE_MAX) {
        if (call.new_state_len == 0)
            regstore_del(self->store, skey, sklen);
        else if (call.new_state_len <= NERVE_REGISTER_STATE_MAX)
            regstore_put(self->store, skey, sklen, self->state_buf, call.new_state_len);
    }
    if (call.out.type != MSGPACK_OBJECT_NIL) {
        m->seen = call.out;
        m->has_seen = true;
    }
}

static bool s_fold(chain_op_t op, bool acc, bool v)
{
    switch (op) {
    case CHAIN_AND: return acc && v;
    case CHAIN_OR: return acc || v;
    case CHAIN_AND_NOT: return acc && !v;
    case CHAIN_OR_NOT: return acc || !v;
    }
    return false;
}

static bool s_eval(engine_t *self, uint32_t r, const nerve_event_t *ev, uint64_t now_ns)
{
    memo_t *m = &self->memo[r];
    if (m->gen == self->gen)
        return m->result;
    const rule_def_t *rule = &self->rs->rules[r];
    memset(m, 0, sizeof *m);
    m->gen = self->gen;
    m->input = s_select_value(rule, ev);
    if (m->input) {
        m->seen = *m->input;
        m->has_seen = true;
    }
    if (!self->explaining) {
        self->stats.rules_evaluated++;
        self->rule_stats[r].evaluated++;
    }

    if (rule->register_name) {
        m->has_seen = false;
        s_run_register(self, rule, ev, now_ns, m);
    }
    nerve_rule_call_t call = {
        .params = &rule->params,
        .prepared = rule->rule_prepared,
        .value = m->has_seen ? &m->seen : NULL,
        .event = ev,
    };
    bool own = false;
    int rc = rule->rule.fn->fn.rule(&call, &own);
    if (rc != 0) {
        own = false;
        m->rc = rc;
        s_rule_error(self, rule, rule->rule_name, rc);
    }
    m->own = own;
    bool acc = own;
    for (size_t i = 0; i < rule->nchain; i++)
        acc = s_fold(rule->chain[i].op, acc, s_eval(self, rule->chain[i].rule, ev, now_ns));
    m->result = acc;
    if (acc && !self->explaining)
        self->stats.rules_true++;
    return acc;
}

typedef enum gate_verdict {
    GATE_FIRE = 0,
    GATE_FALSE,
    GATE_FOR,      /* true, but fewer than `for` consecutive trues */
    GATE_COOLDOWN, /* true, but fired less than `cooldown` ago */
} gate_verdict_t;

static const char *s_gate_name(gate_verdict_t v)
{
    static const char *names[] = {"fire", "false", "waiting_for", "cooldown"};
    return names[v];
}

/*  Applies for/cooldown for this rule and key; updates the stored gate
    state unless explaining. */
static gate_verdict_t s_gate(engine_t *self, const rule_def_t *rule, bool result,
                             const nerve_event_t *ev, uint64_t now_ns, gate_state_t *out)
{
    memset(out, 0, sizeof *out);
    if (rule->for_n <= 1 && rule->cooldown_ms == 0)
        return result ? GATE_FIRE : GATE_FALSE;

    char buf[STORE_KEY_MAX];
    size_t sklen;
    const char *skey = s_store_key(self, rule, 'F', ev, buf, &sklen);
    const void *v;
    size_t vlen;
    gate_state_t st = {.version = 1};
    if (sklen && regstore_get(self->store, skey, sklen, &v, &vlen) == 0 && vlen == sizeof st) {
        memcpy(&st, v, sizeof st);
        if (st.version != 1)
            st = (gate_state_t){.version = 1};
    }
    st.streak = result ? st.streak + 1 : 0;
    gate_verdict_t verdict = GATE_FIRE;
    if (!result)
        verdict = GATE_FALSE;
    else if (rule->for_n > 1 && st.streak < rule->for_n)
        verdict = GATE_FOR;
    else if (rule->cooldown_ms && st.last_fired_ns &&
             now_ns < st.last_fired_ns + rule->cooldown_ms * 1000000ull)
        verdict = GATE_COOLDOWN;
    if (verdict == GATE_FIRE)
        st.last_fired_ns = now_ns;
    if (!self->explaining && sklen)
        regstore_put(self->store, skey, sklen, &st, sizeof st);
    *out = st;
    return verdict;
}

/*  Renders a reaction's args and target. Returns false if a target
    rendered to something that is not a target (counted as an error). */
static bool s_render_reaction(engine_t *self, const rule_def_t *rule, const reaction_def_t *def,
                              const nerve_event_t *ev, const msgpack_object *value,
                              msgpack_object *args, char *target, size_t target_size)
{
    nerve_tmpl_ctx_t ctx;
    s_tmpl_ctx(ev, rule, value, &ctx);
    if (nerve_tmpl_render(def->args, &ctx, self->zone, args) != 0)
        return false;
    target[0] = '\0';
    if (def->target && nerve_tmpl_render_text(def->target, &ctx, target, target_size) != 0)
        return false;
    return true;
}

static void s_fire(engine_t *self, const rule_def_t *rule, const nerve_event_t *ev,
                   const engine_sink_t *sink)
{
    const memo_t *m = &self->memo[rule->index];
    const msgpack_object *value = m->has_seen ? &m->seen : NULL;
    self->stats.rules_fired++;
    self->rule_stats[rule->index].fired++;
    for (size_t i = 0; i < rule->nreactions; i++) {
        const reaction_def_t *def = &rule->reactions[i];
        msgpack_object args;
        char target[NERVE_TOPIC_MAX + 16];
        if (!s_render_reaction(self, rule, def, ev, value, &args, target, sizeof target)) {
            s_rule_error(self, rule, def->fn, NERVE_ENOMEM);
            continue;
        }
        self->stats.reactions++;
        if (sink && sink->reaction)
            sink->reaction(sink->arg, rule, def, ev, value, &args, def->local ? NULL : target);
    }
}

/*  Starts a new event: clears the zone, moves the memo generation. */
static void s_begin(engine_t *self)
{
    msgpack_zone_clear(self->zone);
    if (++self->gen == 0) {
        for (size_t i = 0; i < self->nrules; i++)
            self->memo[i].gen = 0;
        self->gen = 1;
    }
}

static size_t s_match(engine_t *self, const nerve_event_t *ev, uint32_t *blocks)
{
    size_t n = tag_index_match(self->rs->index, ev->tag, ev->tag_len, blocks, MATCH_MAX);
    return n > MATCH_MAX ? MATCH_MAX : n;
}

/*  Runs the rules of the matched blocks, in block order. */
static void s_process(engine_t *self, const nerve_event_t *ev, const uint32_t *blocks, size_t nb,
                      uint64_t now_ns, const engine_sink_t *sink)
{
    if (nb == 0)
        return;
    self->stats.matched++;
    s_begin(self);
    for (size_t b = 0; b < nb; b++) {
        const block_def_t *block = &self->rs->blocks[blocks[b]];
        for (size_t i = 0; i < block->nrules; i++) {
            const rule_def_t *rule = &self->rs->rules[block->rules[i]];
            bool result = s_eval(self, rule->index, ev, now_ns);
            gate_state_t st;
            gate_verdict_t verdict = s_gate(self, rule, result, ev, now_ns, &st);
            if (verdict == GATE_FOR)
                self->stats.suppressed_for++;
            else if (verdict == GATE_COOLDOWN)
                self->stats.suppressed_cooldown++;
            else if (verdict == GATE_FIRE)
                s_fire(self, rule, ev, sink);
        }
    }
}

void engine_process(engine_t *self, const nerve_event_t *ev, uint64_t now_ns,
                    const engine_sink_t *sink)
{
    self->stats.events++;
    if (!self->rs || self->rs->nblocks == 0)
        return;
    uint32_t blocks[MATCH_MAX];
    size_t nb = s_match(self, ev, blocks);
    s_process(self, ev, blocks, nb, now_ns, sink);
}

void engine_process_matched(engine_t *self, const nerve_event_t *ev, const engine_match_t *m,
                            uint64_t now_ns, const engine_sink_t *sink)
{
    if (!m || !m->matched || m->rs_gen != self->rs_gen || !self->rs) {
        engine_process(self, ev, now_ns, sink);
        return;
    }
    self->stats.events++;
    self->cur = m;
    s_process(self, ev, m->blocks, m->n, now_ns, sink);
    self->cur = NULL;
}

size_t engine_prefetch(engine_t *self, const nerve_event_t *ev, engine_match_t *m,
                       uint64_t *hints, size_t max)
{
    if (m) {
        m->matched = false;
        m->nkeys = 0;
    }
    if (!self->rs || self->rs->nblocks == 0)
        return 0;
    uint32_t local[MATCH_MAX];
    uint32_t *blocks = m ? m->blocks : local;
    size_t nb = s_match(self, ev, blocks), n = 0;
    if (m) {
        m->matched = true;
        m->rs_gen = self->rs_gen;
        m->n = nb;
    }
    if (!self->store)
        return 0;
    for (size_t b = 0; b < nb; b++) {
        const block_def_t *block = &self->rs->blocks[blocks[b]];
        for (size_t i = 0; i < block->nrules && n < max; i++) {
            const rule_def_t *rule = &self->rs->rules[block->rules[i]];
            bool gate = rule->for_n > 1 || rule->cooldown_ms > 0;
            if (!rule->register_name && !gate)
                continue;
            char key[KEY_MAX], skey[STORE_KEY_MAX];
            s_render_key(rule, ev, key, sizeof key);
            for (int k = 0; k < 2 && n < max; k++) {
                char kind = k == 0 ? 'R' : 'F';
                if ((kind == 'R' && !rule->register_name) || (kind == 'F' && !gate))
                    continue;
                size_t sklen = engine_register_key(kind, rule->scope, key, skey, sizeof skey);
                if (!sklen)
                    continue;
                hints[n++] = regstore_prefetch(self->store, skey, sklen);
                if (m && m->nkeys < ENGINE_KEYS_AHEAD && sklen <= ENGINE_KEY_AHEAD_MAX) {
                    engine_key_t *ek = &m->keys[m->nkeys++];
                    ek->rule = rule->index;
                    ek->kind = kind;
                    ek->len = (uint16_t)sklen;
                    memcpy(ek->bytes, skey, sklen);
                }
            }
        }
    }
    return n;
}

/* ---------------------------------------------------------------- explain */

static void s_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void s_pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    s_pack_str(pk, k);
    if (v)
        s_pack_str(pk, v);
    else
        msgpack_pack_nil(pk);
}

/*  An explanation nests a value at most 5 levels down (reply, rules, rule,
    reactions, reaction), and a reader built on msgpack-c (the CLI) parses
    32 levels at most: a value nested deeper than the difference is shown
    as a note, or the whole reply could not be read. */
#define EXPLAIN_VALUE_DEPTH_MAX (32 - 5)

static void s_pack_kv_obj(msgpack_packer *pk, const char *k, const msgpack_object *v)
{
    s_pack_str(pk, k);
    if (!v)
        msgpack_pack_nil(pk);
    else if (nerve_obj_depth(v, EXPLAIN_VALUE_DEPTH_MAX) > EXPLAIN_VALUE_DEPTH_MAX)
        s_pack_str(pk, "(a value nested too deep to show)");
    else
        msgpack_pack_object(pk, *v);
}

static void s_pack_kv_bool(msgpack_packer *pk, const char *k, bool v)
{
    s_pack_str(pk, k);
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

static void s_pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    s_pack_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void s_explain_chain(engine_t *self, const rule_def_t *rule, msgpack_packer *pk)
{
    s_pack_str(pk, "chain");
    msgpack_pack_array(pk, rule->nchain);
    bool acc = self->memo[rule->index].own;
    for (size_t i = 0; i < rule->nchain; i++) {
        const chain_link_t *l = &rule->chain[i];
        bool v = self->memo[l->rule].result;
        bool before = acc;
        acc = s_fold(l->op, acc, v);
        msgpack_pack_map(pk, 5);
        s_pack_kv_str(pk, "op", chain_op_name(l->op));
        s_pack_kv_str(pk, "rule", self->rs->rules[l->rule].name);
        s_pack_kv_bool(pk, "before", before);
        s_pack_kv_bool(pk, "value", v);
        s_pack_kv_bool(pk, "after", acc);
    }
}

static void s_explain_reactions(engine_t *self, const rule_def_t *rule, const nerve_event_t *ev,
                                msgpack_packer *pk)
{
    const memo_t *m = &self->memo[rule->index];
    const msgpack_object *value = m->has_seen ? &m->seen : NULL;
    s_pack_str(pk, "reactions");
    msgpack_pack_array(pk, rule->nreactions);
    for (size_t i = 0; i < rule->nreactions; i++) {
        const reaction_def_t *def = &rule->reactions[i];
        msgpack_object args = {.type = MSGPACK_OBJECT_NIL};
        char target[NERVE_TOPIC_MAX + 16];
        s_render_reaction(self, rule, def, ev, value, &args, target, sizeof target);
        msgpack_pack_map(pk, 3);
        s_pack_kv_str(pk, "fn", def->fn);
        s_pack_kv_str(pk, "target", def->local ? "manager" : target);
        s_pack_kv_obj(pk, "args", &args);
    }
}

static void s_explain_rule(engine_t *self, const rule_def_t *rule, const nerve_event_t *ev,
                           uint64_t now_ns, bool in_block, msgpack_packer *pk)
{
    const memo_t *m = &self->memo[rule->index];
    char key[KEY_MAX];
    s_render_key(rule, ev, key, sizeof key);
    gate_state_t st;
    gate_verdict_t verdict = in_block ? s_gate(self, rule, m->result, ev, now_ns, &st)
                                      : GATE_FALSE;
    char where[512];
    snprintf(where, sizeof where, "%s:%zu:%zu", rule->file, rule->line, rule->column);

    msgpack_pack_map(pk, 16);
    s_pack_kv_str(pk, "name", rule->name);
    s_pack_kv_str(pk, "where", where);
    s_pack_kv_str(pk, "key", key);
    s_pack_kv_obj(pk, "input", m->input);
    s_pack_kv_str(pk, "register", rule->register_name);
    s_pack_kv_bool(pk, "register_had_state", m->reg_existed);
    s_pack_kv_obj(pk, "value", m->has_seen ? &m->seen : NULL);
    s_pack_kv_str(pk, "rule", rule->rule_name);
    s_pack_kv_bool(pk, "own", m->own);
    s_explain_chain(self, rule, pk);
    s_pack_kv_bool(pk, "result", m->result);
    s_pack_kv_str(pk, "error", m->rc ? nerve_strerror(m->rc) : NULL);
    s_pack_kv_str(pk, "verdict", in_block ? s_gate_name(verdict) : "chained_only");
    s_pack_str(pk, "for");
    msgpack_pack_map(pk, 2);
    s_pack_kv_u64(pk, "need", rule->for_n);
    s_pack_kv_u64(pk, "streak", in_block ? st.streak : 0);
    s_pack_str(pk, "cooldown");
    msgpack_pack_map(pk, 2);
    s_pack_kv_u64(pk, "ms", rule->cooldown_ms);
    uint64_t remaining = 0;
    if (in_block && verdict == GATE_COOLDOWN)
        remaining = (st.last_fired_ns + rule->cooldown_ms * 1000000ull - now_ns) / 1000000ull;
    s_pack_kv_u64(pk, "remaining_ms", remaining);
    if (in_block && verdict == GATE_FIRE)
        s_explain_reactions(self, rule, ev, pk);
    else {
        s_pack_str(pk, "reactions");
        msgpack_pack_array(pk, 0);
    }
}

int engine_explain(engine_t *self, const nerve_event_t *ev, uint64_t now_ns, msgpack_packer *pk)
{
    self->explaining = true;
    uint32_t blocks[MATCH_MAX];
    size_t nb = self->rs ? s_match(self, ev, blocks) : 0;
    s_begin(self);
    for (size_t b = 0; b < nb; b++) {
        const block_def_t *block = &self->rs->blocks[blocks[b]];
        for (size_t i = 0; i < block->nrules; i++)
            s_eval(self, block->rules[i], ev, now_ns);
    }
    /* Which evaluated rules belong to a matched block (they may fire);
       the others were evaluated only through a chain. */
    size_t nevaluated = 0;
    for (size_t r = 0; r < self->nrules; r++)
        if (self->memo[r].gen == self->gen)
            nevaluated++;

    msgpack_pack_map(pk, 4);
    s_pack_kv_str(pk, "tag", ev->tag);
    s_pack_kv_str(pk, "host", ev->host);
    s_pack_str(pk, "blocks");
    msgpack_pack_array(pk, nb);
    for (size_t b = 0; b < nb; b++) {
        const block_def_t *block = &self->rs->blocks[blocks[b]];
        char where[512];
        snprintf(where, sizeof where, "%s:%zu:%zu", block->file, block->line, block->column);
        msgpack_pack_map(pk, 3);
        s_pack_kv_str(pk, "glob", block->glob);
        s_pack_kv_str(pk, "where", where);
        s_pack_str(pk, "rules");
        msgpack_pack_array(pk, block->nrules);
        for (size_t i = 0; i < block->nrules; i++)
            s_pack_str(pk, self->rs->rules[block->rules[i]].name);
    }
    s_pack_str(pk, "rules");
    msgpack_pack_array(pk, nevaluated);
    for (size_t r = 0; r < self->nrules; r++) {
        if (self->memo[r].gen != self->gen)
            continue;
        bool in_block = false;
        for (size_t b = 0; b < nb && !in_block; b++)
            in_block = self->rs->rules[r].block == blocks[b];
        s_explain_rule(self, &self->rs->rules[r], ev, now_ns, in_block, pk);
    }
    self->explaining = false;
    return 0;
}

void engine_stats(const engine_t *self, engine_stats_t *out)
{
    *out = self->stats;
}

const engine_rule_stats_t *engine_rule_stats(const engine_t *self, size_t *count)
{
    *count = self->nrules;
    return self->rule_stats;
}
