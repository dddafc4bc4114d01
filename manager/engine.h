/*  engine.h — the decision engine: one event through the current rules.

    For each event the engine finds the tag blocks whose glob matches (tag
    index), evaluates each of their rules — select the value, update the
    register, call the rule function, fold in the chain — and, where the
    combined result is true and `for`/`cooldown` allow, renders the rule's
    reactions and hands them to a sink. A rule is evaluated at most once per
    event, however many chains name it.

    State lives in the register store under two key spaces:
      "R" scope "\0" key   register state (what `nerve registers` shows)
      "F" scope "\0" key   for/cooldown state {streak, last fired}

    engine_explain() runs the same evaluation with no side effects (nothing
    written, nothing sent) and packs a report of every step as msgpack.

    Threading: one engine, one thread (the manager's engine thread).
*/
#ifndef NERVE_MANAGER_ENGINE_H
#define NERVE_MANAGER_ENGINE_H

#include <msgpack.h>
#include <nerve/wire.h>

#include "regstore.h"
#include "rules.h"

/*  Where fired reactions go. `args` and `value` live in the engine's
    per-event zone: copy what must outlive the call. `target` is the
    rendered target ("host:web1"), or NULL for a local reaction. */
typedef struct engine_sink {
    void *arg;
    void (*reaction)(void *arg, const rule_def_t *rule, const reaction_def_t *def,
                     const nerve_event_t *ev, const msgpack_object *value,
                     const msgpack_object *args, const char *target);
} engine_sink_t;

typedef struct engine_stats {
    uint64_t events;          /* events processed */
    uint64_t matched;         /* events that matched at least one block */
    uint64_t rules_evaluated;
    uint64_t rules_true;
    uint64_t rules_fired;
    uint64_t rule_errors;     /* rule or register function returned an error */
    uint64_t reactions;       /* reactions handed to the sink */
    uint64_t suppressed_for;      /* true but `for` not yet reached */
    uint64_t suppressed_cooldown; /* true but in cooldown */
} engine_stats_t;

/*  Per-rule counters, indexed like ruleset->rules; reset on a new ruleset. */
typedef struct engine_rule_stats {
    uint64_t evaluated;
    uint64_t fired;
} engine_rule_stats_t;

typedef struct engine engine_t;

/*  Creates an engine over a register store (not owned). NULL on OOM. */
engine_t *engine_new(regstore_t *store);
void engine_destroy(engine_t **self);

/*  Uses `rs` (not owned; the caller keeps it alive until replaced) from the
    next event on. NULL means no rules. */
int engine_set_ruleset(engine_t *self, const ruleset_t *rs);
const ruleset_t *engine_ruleset(const engine_t *self);

/*  Processes one event received at now_ns (wall clock). */
void engine_process(engine_t *self, const nerve_event_t *ev, uint64_t now_ns,
                    const engine_sink_t *sink);

/*  The rule blocks an event's tag matched, kept between engine_prefetch()
    and engine_process_matched() so that the tag is matched once. */
#define ENGINE_MATCH_MAX 256

#define ENGINE_KEYS_AHEAD    4   /* store keys kept per event… */
#define ENGINE_KEY_AHEAD_MAX 160 /* …when this short (longer ones are rendered again) */

/*  A register ('R') or gate ('F') store key engine_prefetch() rendered. */
typedef struct engine_key {
    uint32_t rule; /* rule index in the ruleset */
    char kind;
    uint16_t len;
    char bytes[ENGINE_KEY_AHEAD_MAX];
} engine_key_t;

typedef struct engine_match {
    bool matched;    /* false: engine_process_matched() matches itself */
    uint64_t rs_gen; /* the ruleset it was matched against (a generation,
                        not a pointer: a new ruleset may reuse the address) */
    size_t n;
    uint32_t blocks[ENGINE_MATCH_MAX];
    size_t nkeys; /* keys rendered while prefetching, used when deciding */
    engine_key_t keys[ENGINE_KEYS_AHEAD];
} engine_match_t;

/*  Starts loading the register states engine_process(ev) will read (the
    registers and for/cooldown gates of the rules in the blocks ev's tag
    matches): writes up to max hints for regstore_prefetch_entry() and
    returns how many, and the match into *m (when not NULL) for
    engine_process_matched(). A hint only: it changes nothing, and the
    caller may skip the second step. */
size_t engine_prefetch(engine_t *self, const nerve_event_t *ev, engine_match_t *m,
                       uint64_t *hints, size_t max);

/*  engine_process() with the match engine_prefetch() made; matches again
    if engine_set_ruleset() has been called since. */
void engine_process_matched(engine_t *self, const nerve_event_t *ev, const engine_match_t *m,
                            uint64_t now_ns, const engine_sink_t *sink);

/*  Explains one event: packs a map {tag, host, blocks: [{glob, where,
    rules}], rules: [...]} into pk, one entry per rule evaluated (chained
    ones too): {name, where, key, input, register, register_had_state,
    value, rule, own, chain: [{op, rule, before, value, after}], result,
    error, verdict ("fire", "false", "waiting_for", "cooldown",
    "chained_only"), for: {need, streak}, cooldown: {ms, remaining_ms},
    reactions: [{fn, target, args}]}. Nothing is written or sent. */
int engine_explain(engine_t *self, const nerve_event_t *ev, uint64_t now_ns, msgpack_packer *pk);

void engine_stats(const engine_t *self, engine_stats_t *out);
const engine_rule_stats_t *engine_rule_stats(const engine_t *self, size_t *count);

/*  Builds a register store key ("R" scope \0 key) into buf; returns its
    length, or 0 if it does not fit. */
size_t engine_register_key(char kind, const char *scope, const char *key, char *buf,
                           size_t bufsize);

#endif
