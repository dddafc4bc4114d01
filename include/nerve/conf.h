/*  nerve/conf.h — YAML configuration and rules files, with positions.

    nerve_conf_load() parses a YAML file (libyaml) into a tree of nodes that
    remember file, line and column (1-based), so every later error — a bad
    key, an unknown module, a chain cycle — can name `file:line:column`.
    Anchors and aliases are resolved; duplicate keys in one map are errors.

    Scalars keep their text; nerve_conf_to_obj() converts a subtree to a
    msgpack value with YAML 1.2 core-schema typing for plain scalars (null,
    true/false, integers, floats; everything else and all quoted scalars
    are strings). That is how rule params and reaction args reach modules.

    Ownership: the tree belongs to the root; nerve_conf_destroy(&root)
    frees every node. Node pointers and strings stay valid until then.
*/
#ifndef NERVE_CONF_H
#define NERVE_CONF_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nerve_conf_type {
    NERVE_CONF_SCALAR = 1,
    NERVE_CONF_MAP = 2,
    NERVE_CONF_SEQ = 3,
} nerve_conf_type_t;

typedef struct nerve_conf nerve_conf_t;
struct nerve_conf {
    nerve_conf_type_t type;
    const char *file;  /* shared by every node of one load */
    size_t line;       /* 1-based */
    size_t column;     /* 1-based */
    /* SCALAR */
    const char *text;  /* NUL-terminated scalar text */
    size_t text_len;
    bool quoted;       /* single- or double-quoted, or block scalar */
    /* MAP and SEQ: `count` children in document order. For a MAP,
       keys[i] is the key node of items[i] (keys are scalars). */
    size_t count;
    nerve_conf_t **keys;
    nerve_conf_t **items;
};

/*  An error with its position. `message` is the full line
    "file:line:column: what went wrong". */
typedef struct nerve_conf_error {
    char file[256];
    size_t line;
    size_t column;
    char message[768];
} nerve_conf_error_t;

/*  Parses the YAML file at `path`. Returns 0 and *root (NULL for an empty
    document), or NERVE_ENOENT/NERVE_EIO (cannot read) or NERVE_EPARSE
    (syntax, duplicate key, non-scalar key) with *err filled. */
int nerve_conf_load(const char *path, nerve_conf_t **root, nerve_conf_error_t *err);

/*  Opens a daemon's config file: `path` when given (it must exist), else
    `default_path` when that file exists. Returns 0 with *root NULL when
    there is nothing to read (the daemon runs on built-in defaults) or the
    file is empty; *used is set to the path read, or NULL. Errors as
    nerve_conf_load. */
int nerve_conf_load_daemon(const char *path, const char *default_path, nerve_conf_t **root,
                           const char **used, nerve_conf_error_t *err);

/*  Same from a string; `name` stands for the file in positions. */
int nerve_conf_parse(const char *name, const char *text, size_t len, nerve_conf_t **root,
                     nerve_conf_error_t *err);

/*  Frees the tree from its root; sets *root to NULL. Safe on NULL. */
void nerve_conf_destroy(nerve_conf_t **root);

/*  Fills err with "file:line:column: <formatted message>" at node's place
    and returns NERVE_EINVAL (so callers can `return nerve_conf_fail(…)`). */
int nerve_conf_fail(const nerve_conf_t *node, nerve_conf_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*  Map lookup: the value node of `key`, or NULL if node is not a map or has
    no such key. */
const nerve_conf_t *nerve_conf_get(const nerve_conf_t *node, const char *key);

/*  Typed getters for a scalar node. Each returns 0, or fills err (at the
    node's position) and returns NERVE_ETYPE/NERVE_ERANGE. nerve_conf_as_str
    refuses (NERVE_ETYPE) a scalar holding a NUL character (a quoted "\0"):
    *out is a C string, and one cut short would not be what the file says. */
int nerve_conf_as_str(const nerve_conf_t *node, const char **out, nerve_conf_error_t *err);
int nerve_conf_as_int(const nerve_conf_t *node, int64_t min, int64_t max, int64_t *out,
                      nerve_conf_error_t *err);
int nerve_conf_as_double(const nerve_conf_t *node, double *out, nerve_conf_error_t *err);
int nerve_conf_as_bool(const nerve_conf_t *node, bool *out, nerve_conf_error_t *err);

/*  Daemon config structs keep strings as malloc'd copies; these fill them.

    nerve_conf_set_str: replaces *slot with a copy of value (NULL: none).
    Returns 0, or NERVE_ENOMEM with *slot unchanged.

    nerve_conf_get_str: the string `key` of map `root` into *slot (a copy);
    an absent key leaves *slot as it is. Returns 0, NERVE_EINVAL (not a
    string: err says where) or NERVE_ENOMEM.

    nerve_conf_get_module_dirs: `modules` as one directory or a list of at most `max`
    (none is fine: the list can be empty), each a non-empty string, into
    dirs[] as copies, replacing the *n there; an absent key leaves them.
    Returns 0, or NERVE_EINVAL / NERVE_ENOMEM with err naming the item. */
int nerve_conf_set_str(char **slot, const char *value);
int nerve_conf_get_str(const nerve_conf_t *root, const char *key, char **slot,
                       nerve_conf_error_t *err);
int nerve_conf_get_module_dirs(const nerve_conf_t *root, char **dirs, size_t max, size_t *n,
                               nerve_conf_error_t *err);

/*  Durations: "250ms", "30s", "5m", "2h", "1d", or a plain number of
    seconds (fractions allowed). Result in milliseconds. */
int nerve_conf_as_duration_ms(const nerve_conf_t *node, uint64_t *out_ms,
                              nerve_conf_error_t *err);

/*  Parses the duration syntax above from a string. 0 or NERVE_EINVAL. */
int nerve_duration_parse_ms(const char *text, uint64_t *out_ms);

/*  Converts a subtree to a msgpack value allocated in zone (see typing
    above). Returns 0 or NERVE_ENOMEM. */
int nerve_conf_to_obj(const nerve_conf_t *node, msgpack_zone *zone, msgpack_object *out);

/*  Checks that every key of map `node` is one of `allowed` (NULL-ended).
    The first unknown key fails with "unknown key 'x' (expected one of: …)". */
int nerve_conf_check_keys(const nerve_conf_t *node, const char *const *allowed,
                          nerve_conf_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
