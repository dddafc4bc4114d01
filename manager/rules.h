/*  rules.h — a compiled ruleset: the manager's rules files, loaded and
    resolved, ready for the engine.

    ruleset_load() reads a rules file, or every *.yaml in a directory (in
    name order), in the seed's format:

        /client/load/web*:              # a block: tag glob → rules
          rules:
            - load_avg:                 # rule name, unique in its file
                rule: rules.simple.gt
                register: register.aggregate.avg
                threshold: 20           # params: to the register and the rule
                period: 10
                reactions:
                  - reactions.eventer.fire_event: {tag: /reconfig/lb}
                chain:
                  - OR: io_avg

    and compiles it: every module function resolved and prepared through a
    module set of its own, every template compiled, chains resolved to rule
    indexes and checked for cycles, tag globs put in a tag index. Any error
    fails the whole load with "file:line:column: message", so a reload is
    atomic: the caller swaps in a new ruleset only when it loaded fully.

    Structural rule keys: rule, register, reactions, chain, for, cooldown,
    key, field, scope. Every other key is a param, passed (as one msgpack
    map) to both the register and the rule.

    Ownership: a ruleset owns everything it points to, including its module
    set. Immutable after load; used by the engine thread only.
*/
#ifndef NERVE_MANAGER_RULES_H
#define NERVE_MANAGER_RULES_H

#include <nerve/conf.h>
#include <nerve/module.h>
#include <nerve/template.h>

#include "tag_index.h"

#include <stdatomic.h>

typedef enum chain_op {
    CHAIN_AND = 0,
    CHAIN_OR,
    CHAIN_AND_NOT,
    CHAIN_OR_NOT,
} chain_op_t;

const char *chain_op_name(chain_op_t op);

typedef struct chain_link {
    chain_op_t op;
    uint32_t rule; /* index into ruleset->rules */
} chain_link_t;

/*  Where a reaction runs: on the manager's worker, or sent to actors. */
typedef struct reaction_def {
    char *fn;                /* "reactions.cmd.run" */
    bool local;              /* no target: runs on the manager */
    nerve_resolved_t resolved; /* local only */
    void *prepared;          /* local only, from prepare() */
    nerve_tmpl_t *args;      /* args map, target and deadline removed */
    nerve_tmpl_t *target;    /* "host:…", "group:…", "all", "glob:…"; NULL if local */
    uint64_t deadline_ms;    /* delivery bound, default 60 s */
    const char *file;
    size_t line, column;
} reaction_def_t;

typedef struct rule_def {
    char *name;
    char *scope;             /* register scope: `scope:` or "<file stem>/<name>" */
    uint32_t index;
    uint32_t block;
    char *rule_name;         /* "rules.simple.gt" as written */
    nerve_resolved_t rule;
    void *rule_prepared;
    char *register_name;     /* NULL when the rule has no register */
    nerve_resolved_t reg;
    void *reg_prepared;
    msgpack_object params;   /* map, allocated in the ruleset's zone */
    char *field;             /* dotted path into data, or NULL */
    nerve_tmpl_t *key;       /* default "{{event.host}}" */
    uint32_t for_n;          /* fire after N consecutive trues; 0 or 1: at once */
    uint64_t cooldown_ms;    /* after firing, silent this long per key */
    chain_link_t *chain;
    size_t nchain;
    reaction_def_t *reactions;
    size_t nreactions;
    const char *file;
    size_t line, column;
} rule_def_t;

typedef struct block_def {
    char *glob;
    uint32_t *rules;         /* indexes of the rules listed under this glob */
    size_t nrules;
    const char *file;
    size_t line, column;
} block_def_t;

typedef struct ruleset {
    rule_def_t *rules;
    size_t nrules;
    block_def_t *blocks;
    size_t nblocks;
    tag_index_t *index;      /* glob → block index */
    nerve_modset_t *modules;
    msgpack_zone *zone;      /* params */
    char **files;            /* every file loaded, for messages */
    size_t nfiles;
    uint64_t loaded_ns;      /* wall clock of the load */
    _Atomic int refs;        /* ruleset_ref/unref; 1 after load */
} ruleset_t;

/*  Loads `path` (a file, or a directory of *.yaml) resolving modules along
    `dirs`. Returns 0 and *out, or a negative nerve_err with err filled.
    A missing path is an error; an empty directory is an empty ruleset. */
int ruleset_load(const char *path, const char *const *dirs, size_t ndirs, ruleset_t **out,
                 nerve_conf_error_t *err);

/*  Releases every prepared state, template and module. Safe on NULL. */
void ruleset_destroy(ruleset_t **self);

/*  Reference counting, for local reactions still queued or running when a
    reload swaps rulesets: their functions and prepared state must outlive
    the swap. unref destroys at zero and sets *self to NULL. Thread-safe. */
ruleset_t *ruleset_ref(ruleset_t *self);
void ruleset_unref(ruleset_t **self);

/*  Finds a rule by name (first in load order). NULL if none. */
const rule_def_t *ruleset_find(const ruleset_t *self, const char *name);

#endif
