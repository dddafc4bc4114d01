/*  nerve/module.h — the module ABI: how a .so becomes `role.module.function`.

    Everything pluggable in nerve is a shared object. `rules.simple.gt` is
    function "gt" of <dir>/rules/simple.so, found along a search path of
    directories (the first match wins). Built-in modules are built exactly
    like operators' modules, against this header and libnerve.

    A module exports one symbol, nerve_module(), returning a pointer to a
    static const descriptor. The loader checks the descriptor before anything
    in it runs (as PostgreSQL's PG_MODULE_MAGIC and nginx's ngx_module_t do):

      magic == NERVE_MODULE_MAGIC, abi_major == NERVE_MODULE_ABI_MAJOR,
      abi_minor <= the loader's NERVE_MODULE_ABI_MINOR, size >= the size the
      loader knows, role and name equal to the file's place
      (<dir>/<role>/<name>.so), a non-empty function table without
      duplicate names, every entry with a name of [A-Za-z0-9_-], a
      function pointer and a doc line.

    It also refuses a file, or the directory holding it, that group or
    others may write: whoever can write there could run code as nerve.

    A complete module:

        #include <nerve/module.h>

        static int s_gt(const nerve_rule_call_t *call, bool *result)
        {
            double v, t;
            if (!nerve_obj_number(call->value, &v))
                return NERVE_ETYPE;
            t = nerve_obj_get_number(call->params, "threshold", 0);
            *result = v > t;
            return NERVE_OK;
        }

        static const nerve_module_fn_t s_functions[] = {
            {"gt", {.rule = s_gt}, "value > threshold", NULL, NULL},
            {NULL}
        };

        static const nerve_module_t s_module = {
            NERVE_MODULE_HEADER, NERVE_ROLE_RULES, "mine", "1.0.0",
            s_functions, NULL, NULL
        };

        NERVE_MODULE_EXPORT(s_module)

    Build: cc -shared -fPIC mine.c -o rules/mine.so $(pkg-config --cflags --libs nerve)

    Threading: the manager calls rule and register functions from its one
    engine thread. Reaction functions run on worker threads (several at once
    on an actor): they must be reentrant, and keep mutable state only in what
    prepare() returned for one call site, or guarded by their own locks.
*/
#ifndef NERVE_MODULE_H
#define NERVE_MODULE_H

#include <msgpack.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/value.h>
#include <nerve/wire.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NERVE_MODULE_MAGIC 0x4e52564du /* "NRVM" */
#define NERVE_MODULE_ABI_MAJOR 1
#define NERVE_MODULE_ABI_MINOR 0

typedef enum nerve_role {
    NERVE_ROLE_BEACONS = 1,
    NERVE_ROLE_RULES = 2,
    NERVE_ROLE_REGISTERS = 3,
    NERVE_ROLE_REACTIONS = 4,
} nerve_role_t;

/*  "beacons", "rules", "registers", "reactions"; NULL for an unknown role. */
const char *nerve_role_name(nerve_role_t role);

/*  Parses a role directory name. "register" is accepted for "registers" (the
    seed writes it so). Returns 0 or NERVE_ENOENT. */
int nerve_role_parse(const char *name, size_t len, nerve_role_t *role);

/* ------------------------------------------------------------------------
   What the daemon offers to module functions. Passed in every call as
   `api` with an opaque `host` pointer. Check api->size before using a
   member added in a later minor ABI version.
   ------------------------------------------------------------------------ */
typedef struct nerve_host_api {
    size_t size; /* sizeof(nerve_host_api_t) as the daemon knows it */

    /*  Sends an event into the manager (from the manager: re-injected with
        hops + 1; from an actor or beacond: sent over the events socket).
        `data` may be any msgpack value. Returns 0 or a negative nerve_err
        (NERVE_EFULL when the queue is full: the event is counted as
        dropped). */
    int (*emit)(void *host, const char *tag, const msgpack_object *data);

    /*  Same with data already packed as msgpack bytes. */
    int (*emit_raw)(void *host, const char *tag, const void *data, size_t len);

    /*  Writes register state (manager only; NERVE_ESTATE elsewhere): the
        value is stored as the state of `scope`/`key`, the format that
        registers.store reads. */
    int (*register_set)(void *host, const char *scope, const char *key,
                        const msgpack_object *value);

    /*  Asks the daemon's policy whether `what` (a command path, a unit name,
        a file path) may be used for `kind` ("commands", "services",
        "paths"). Returns 0 if allowed, NERVE_EPERM otherwise. Actors answer
        from their `allow:` config; the manager allows nothing by default. */
    int (*allowed)(void *host, const char *kind, const char *what);

    /*  This host's id (actor id or hostname). */
    const char *(*host_id)(void *host);
} nerve_host_api_t;

/* ------------------------------------------------------------------------
   Rules: decide true or false about a value.
   ------------------------------------------------------------------------ */
typedef struct nerve_rule_call {
    const msgpack_object *params;  /* the rule's keys from YAML, a map */
    void *prepared;                /* what prepare() made, or NULL */
    const msgpack_object *value;   /* value under test; NULL when absent */
    const nerve_event_t *event;    /* the event being decided */
} nerve_rule_call_t;

/*  Sets *result. Returns 0, or a negative nerve_err (the rule then counts
    as false and the error is counted and logged, rate-limited). A missing
    value is not an error for most rules: they answer false. */
typedef int (*nerve_rule_fn_t)(const nerve_rule_call_t *call, bool *result);

/* ------------------------------------------------------------------------
   Registers: state kept per (scope, key) in LMDB by the manager.

   A register function is pure with respect to storage: it reads the
   previous state as bytes, writes the new state into a buffer the manager
   provides, and returns its output. The manager does the LMDB reads, the
   batched writes and the commit, so `nerve explain` can run a register
   without side effects. State bytes are the module's own format; version
   it if it may change.
   ------------------------------------------------------------------------ */
#define NERVE_REGISTER_STATE_MAX (64u * 1024)

typedef struct nerve_register_call {
    const msgpack_object *params;  /* the rule's keys from YAML (period, p…) */
    void *prepared;
    const msgpack_object *value;   /* input value; NULL when absent */
    const nerve_event_t *event;
    uint64_t now_ns;               /* manager receive time (wall clock) */
    const void *state;             /* previous state; NULL the first time */
    size_t state_len;
    void *new_state;               /* out: write the new state here… */
    size_t new_state_cap;          /* …at most this many bytes… */
    size_t new_state_len;          /* …and set its length. Leave it at
                                      SIZE_MAX (its value on entry) to keep
                                      the state unchanged, 0 to delete it. */
    msgpack_zone *zone;            /* allocate `out` strings/maps here */
    msgpack_object out;            /* out: the register's output. Leave NIL
                                      for "no value yet" (the rule then sees
                                      no value and answers false). */
} nerve_register_call_t;

typedef int (*nerve_register_fn_t)(nerve_register_call_t *call);

/* ------------------------------------------------------------------------
   Reactions: do something. On the manager (no target) or on an actor.
   ------------------------------------------------------------------------ */
typedef struct nerve_reaction_call {
    const char *fn;                /* the dotted name called */
    const msgpack_object *args;    /* resolved args, a map (target and
                                      deadline removed) */
    void *prepared;
    const nerve_event_ref_t *event; /* what caused it: tag, id, host */
    const msgpack_object *data;    /* the event's data when known (on the
                                      manager); NULL on actors */
    const char *rule;              /* the rule that fired; may be "" */
    const uint8_t *reaction_id;    /* 16 bytes */
    uint32_t timeout_ms;           /* run no longer than this */
    const nerve_host_api_t *api;
    void *host;
    char *output;                  /* out: text for the result (≤ cap) */
    size_t output_cap;
    size_t output_len;
    int64_t rc;                    /* out: exit-code style result, 0 = ok */
} nerve_reaction_call_t;

/*  Returns 0 when the reaction succeeded (result ok = true), or a negative
    nerve_err (ok = false; output should say why). */
typedef int (*nerve_reaction_fn_t)(nerve_reaction_call_t *call);

/*  True if the host API has `member` and it is set: a daemon built
    against an older ABI minor has a smaller table (api->size says how
    large). Check before calling an optional member:
        if (!NERVE_API_HAS(call->api, emit)) return …; */
#define NERVE_API_HAS(api, member)                                                                 \
    ((api) && (api)->size >= offsetof(nerve_host_api_t, member) + sizeof((api)->member) &&         \
     (api)->member)

/*  Writes printf-style text as the reaction's output (cut to output_cap)
    and returns rc, which becomes the result's rc too:
        return nerve_reaction_say(call, NERVE_EINVAL, "needs 'path'"); */
static inline int nerve_reaction_say(nerve_reaction_call_t *call, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline int nerve_reaction_say(nerve_reaction_call_t *call, int rc, const char *fmt, ...)
{
    call->rc = rc;
    if (!call->output || call->output_cap == 0)
        return rc;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(call->output, call->output_cap, fmt, ap);
    va_end(ap);
    call->output_len = n < 0 ? 0 : (size_t)n < call->output_cap ? (size_t)n : call->output_cap - 1;
    return rc;
}

/* ------------------------------------------------------------------------
   Beacons: sense something and emit events (run by nerve-beacond on an
   interval). The default tag is given; a beacon may emit several events
   per run (one per mount point, per changed file) or none.
   ------------------------------------------------------------------------ */
typedef struct nerve_beacon_call {
    const msgpack_object *params;  /* the beacon's keys from config */
    void *prepared;                /* e.g. an inotify fd, a file offset */
    const char *tag;               /* the configured or default tag */
    const nerve_host_api_t *api;   /* api->emit / emit_raw send events */
    void *host;
    msgpack_zone *zone;            /* scratch, cleared after each run */
    char *error;                   /* out: when the run fails, one line
                                      saying why ("/proc/loadavg: No such
                                      file or directory"), NUL-terminated
                                      in at most error_cap bytes; beacond
                                      sends it in /nerve/beacon/<host>/error */
    size_t error_cap;
} nerve_beacon_call_t;

/*  Returns 0 (whether or not it emitted anything), or a negative nerve_err
    with the reason in call->error: beacond then emits the error event and
    keeps running this beacon and the others on their intervals. */
typedef int (*nerve_beacon_fn_t)(nerve_beacon_call_t *call);

/* ------------------------------------------------------------------------
   The descriptor.
   ------------------------------------------------------------------------ */

/*  Optional per call site set-up, run when rules or config load: validate
    params and precompute (compile a regex, open an inotify fd). On error,
    write a one-line reason into err (the loader prefixes file:line:col)
    and return a negative nerve_err: the load fails. *prepared is passed
    back as `prepared` in every call and to release(). */
typedef int (*nerve_prepare_fn_t)(const msgpack_object *params, void **prepared, char *err,
                                  size_t errsize);
typedef void (*nerve_release_fn_t)(void *prepared);

typedef struct nerve_module_fn {
    const char *name; /* "gt"; NULL ends the table */
    union {
        nerve_rule_fn_t rule;
        nerve_register_fn_t reg;
        nerve_reaction_fn_t reaction;
        nerve_beacon_fn_t beacon;
    } fn;             /* the member matching the module's role */
    const char *doc;  /* one line for `nerve rules` and docs */
    nerve_prepare_fn_t prepare; /* optional */
    nerve_release_fn_t release; /* optional */
} nerve_module_fn_t;

typedef struct nerve_module {
    uint32_t magic;     /* NERVE_MODULE_MAGIC */
    uint16_t abi_major; /* NERVE_MODULE_ABI_MAJOR */
    uint16_t abi_minor; /* NERVE_MODULE_ABI_MINOR */
    uint32_t size;      /* sizeof(nerve_module_t) */
    nerve_role_t role;
    const char *name;    /* must equal the file's base name */
    const char *version; /* the module's own version, free text */
    const nerve_module_fn_t *functions; /* ended by an entry with name NULL */
    int (*init)(void);   /* optional: once after load; non-zero refuses */
    void (*fini)(void);  /* optional: once before unload */
} nerve_module_t;

#define NERVE_MODULE_HEADER                                                                   \
    NERVE_MODULE_MAGIC, NERVE_MODULE_ABI_MAJOR, NERVE_MODULE_ABI_MINOR,                       \
        (uint32_t)sizeof(nerve_module_t)

/*  Defines the one exported entry point. */
#define NERVE_MODULE_EXPORT(desc)                                                             \
    __attribute__((visibility("default"))) const nerve_module_t *nerve_module(void);          \
    const nerve_module_t *nerve_module(void)                                                  \
    {                                                                                         \
        return &(desc);                                                                       \
    }

typedef const nerve_module_t *(*nerve_module_entry_t)(void);

/* ------------------------------------------------------------------------
   The loader (daemon side).

   A module set is every module loaded for one configuration. A reload
   builds a new set beside the old one; when everything in it resolves, the
   daemon swaps sets and destroys the old one; otherwise it destroys the new
   one and keeps running the old. Function pointers resolved from a set stay
   valid until that set is destroyed.

   Loading is lazy by name: nerve_modset_resolve() finds and dlopens
   <dir>/<role>/<module>.so along the search path on first use of that
   module, and caches it in the set. nerve_modset_load_all() loads every
   module found under the path (for `nerve rules list` and docs);
   nerve_modset_load_role() every module of one role, and no other (an
   actor loads its reactions so at start and on reload).

   Threading: a set is used from one thread at a time; resolved function
   pointers may be called from any thread.

   Sets share files: a file (device and inode) is loaded once per process
   however many sets hold it. Its init() runs when the first set loads it,
   its fini() when the last set holding it is destroyed.

   Replacing a module: write the new file under another name in the same
   directory and rename(2) it over the old one (install(1) does this).
   Never rewrite a module file in place (cp onto it, an editor): a loaded
   .so is mapped into the running daemon and must not change under it.
   Renamed over, the old file lives on for the running set while the next
   reload loads the new one.

   The loader opens the directories and the file (the file itself must not
   be a symbolic link; a directory may be), checks them with fstat() and
   dlopen()s the open file through /proc/self/fd, so /proc must be mounted.
   ------------------------------------------------------------------------ */
typedef struct nerve_modset nerve_modset_t;

/*  What one function resolves to. */
typedef struct nerve_resolved {
    nerve_role_t role;
    const nerve_module_t *module;
    const nerve_module_fn_t *fn;   /* fn->fn.<role>, fn->prepare, … */
    const char *path;              /* the .so file it came from */
} nerve_resolved_t;

/*  Creates an empty set searching `dirs` (ndirs entries, copied) in order.
    Returns NULL on OOM, or (logged) when a directory is NULL, empty or
    longer than PATH_MAX - 300 bytes. */
nerve_modset_t *nerve_modset_new(const char *const *dirs, size_t ndirs);

/*  Lets go of every module the set loaded (the last set holding a file
    runs its fini and dlcloses it), frees the set and sets *self to NULL.
    Safe on NULL and twice. */
void nerve_modset_destroy(nerve_modset_t **self);

/*  Resolves a dotted name "role.module.function" (role may be "register").
    On success fills *out and returns 0. On failure returns a negative
    nerve_err and writes a one-line reason into err naming the dotted name,
    the file, and the directories searched:
      NERVE_EINVAL   the name is not role.module.function
      NERVE_ENOENT   no such module along the path / no such function
      NERVE_EABI     wrong magic, ABI version or descriptor size
      NERVE_EPERM    the file, its role directory or the search directory
                     holding that is writable by group/others
      NERVE_EINVAL   role or name in the descriptor disagree with the path,
                     empty or duplicate function table, dlopen failed
      NERVE_EPERM    the file is a symbolic link
      NERVE_EIO      the file is there but cannot be opened or checked
      NERVE_EMODULE  the module's init() returned non-zero
    A module refused once stays refused in this set, with the same reason,
    until the set is destroyed (a reload builds a new set). */
int nerve_modset_resolve(nerve_modset_t *self, const char *dotted, nerve_resolved_t *out,
                         char *err, size_t errsize);

/*  Same, but the role is required to be `role` (NERVE_EINVAL otherwise). */
int nerve_modset_resolve_role(nerve_modset_t *self, nerve_role_t role, const char *dotted,
                              nerve_resolved_t *out, char *err, size_t errsize);

/*  Loads one .so by path, checking it as above, with role/name expected
    from its place in the tree. For tools and tests. */
int nerve_modset_load_file(nerve_modset_t *self, const char *path, const nerve_module_t **out,
                           char *err, size_t errsize);

/*  Loads every <dir>/<role>/<name>.so file under the path. Refused files are
    reported through `on_error` (may be NULL) and skipped. Returns the
    number loaded, or a negative nerve_err. */
int nerve_modset_load_all(nerve_modset_t *self,
                          void (*on_error)(void *arg, const char *path, const char *reason),
                          void *arg);

/*  True if s (len bytes) is a module or function name the loader accepts:
    1 to NERVE_NAME_MAX letters, digits, '_' and '-' (names become path
    components and parts of dotted names: no '/', no '.', no ".."). */
bool nerve_module_name_ok(const char *s, size_t len);

/*  Loads every <dir>/<role>/<name>.so of one role along the path, each
    checked and its init() run now, as a daemon that runs only that role
    needs it (an actor loads its reactions, and must not run the init() of
    a rules or beacons module): nothing under another role's directory is
    opened. The first directory holding a name wins, as for a lookup, and
    each name is counted or reported once per call however many
    directories hold a copy.

    Every file of the role not loaded is reported through `on_error` (may
    be NULL) and skipped. `path` is the file, `rc` the negative nerve_err
    it was refused with (the codes of nerve_modset_resolve()), `reason`
    one line without the path. Also reported:
      NERVE_EINVAL   a <name>.so whose name is not [A-Za-z0-9_-] (no
                     dotted name could call it); nothing was opened
      NERVE_ENOENT   a file listed but gone before it was opened
      NERVE_EIO      a role directory that exists but cannot be listed
                     (`path` is the directory)
    A refusal is remembered as for a resolve: resolving a function of that
    module later answers the same code and reason without the disk.

    Loading stays lazy for names no listing found: a later resolve of one
    still searches the path. A caller that wants the set closed keeps the
    names it was told about (nerve_modset_foreach() gives the loaded ones).

    Returns the number of modules of `role` the path holds loaded (those
    loaded earlier included), or NERVE_EINVAL (NULL set, unknown role) or
    NERVE_ENOMEM, after which the set holds what loaded so far. */
int nerve_modset_load_role(nerve_modset_t *self, nerve_role_t role,
                           void (*on_error)(void *arg, const char *path, int rc,
                                            const char *reason),
                           void *arg);

/*  Calls fn for each loaded module, in load order. */
void nerve_modset_foreach(nerve_modset_t *self,
                          void (*fn)(void *arg, const nerve_module_t *m, const char *path),
                          void *arg);

/*  The directories searched, for messages. Returns a static-per-set string
    "dir1:dir2". */
const char *nerve_modset_path_string(nerve_modset_t *self);

#ifdef __cplusplus
}
#endif
#endif
