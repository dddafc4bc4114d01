/*  nerve/value.h — reading msgpack values without ceremony.

    nerve passes values (event data, rule params, reaction args, register
    outputs) as msgpack-c's msgpack_object: a read-only tree whose memory
    belongs to a msgpack_zone or to the buffer it was unpacked from. These
    helpers look values up by key and by dotted path and convert numbers, so
    module code never walks msgpack by hand.

    Ownership: every returned pointer points into the object given; it lives
    as long as that object. Nothing here allocates except nerve_obj_*_new and
    nerve_obj_copy, which allocate from the zone given.
*/
#ifndef NERVE_VALUE_H
#define NERVE_VALUE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  Nesting limits. Values nested deeper than NERVE_OBJ_DEPTH_MAX are refused
    by nerve_obj_copy and nerve_obj_to_json (NERVE_ERANGE), compare unequal,
    and print as "…" (format) or null (nerve_obj_to_json_buf), so no helper
    here can exhaust the stack on a hand-built or hostile value. JSON text
    nested deeper than NERVE_JSON_DEPTH_MAX is a parse error. */
#define NERVE_OBJ_DEPTH_MAX 256
#define NERVE_JSON_DEPTH_MAX 64

/*  Returns the value of `key` in map `map`, or NULL if `map` is NULL, not a
    map, or has no such key. Keys compare as exact byte strings. */
const msgpack_object *nerve_obj_get(const msgpack_object *map, const char *key);

/*  Same, with a key given as pointer and length. */
const msgpack_object *nerve_obj_getn(const msgpack_object *map, const char *key, size_t len);

/*  Follows a dotted path ("a.b.c") through nested maps. A segment that is a
    decimal number also indexes an array ("items.0.name"). Returns NULL when
    any step is missing. An empty path returns `obj` itself. */
const msgpack_object *nerve_obj_path(const msgpack_object *obj, const char *path);

/*  True if obj is an integer or float; stores it as double in *out. */
bool nerve_obj_number(const msgpack_object *obj, double *out);

/*  True if obj is a boolean, or a number (non-zero is true). */
bool nerve_obj_bool(const msgpack_object *obj, bool *out);

/*  True if obj is a str; *ptr and *len point into obj (not NUL-terminated). */
bool nerve_obj_str(const msgpack_object *obj, const char **ptr, size_t *len);

/*  Copies a str value into buf (NUL-terminated). False if not a str or if
    it does not fit in bufsize (buf is then untouched). */
bool nerve_obj_strcpy(const msgpack_object *obj, char *buf, size_t bufsize);

/*  True if obj is a str equal to the C string s. */
bool nerve_obj_str_eq(const msgpack_object *obj, const char *s);

/*  Number params: the value of key as a double, or `dflt` when the key is
    absent or not a number. */
double nerve_obj_get_number(const msgpack_object *map, const char *key, double dflt);

/*  Deep equality (numbers compare by value across int/float, exactly: an
    integer equals a float only if the float is that integer; NaN equals
    NaN so a value always equals its copy). Maps compare regardless of key
    order; maps of more than 128 entries must also have the same key order
    (keeps comparison of hostile input linear). */
bool nerve_obj_equal(const msgpack_object *a, const msgpack_object *b);

/*  Builders, allocating from zone. Return a value of type NIL on OOM. */
msgpack_object nerve_obj_double_new(double d);
msgpack_object nerve_obj_int_new(int64_t i);
msgpack_object nerve_obj_bool_new(bool b);
msgpack_object nerve_obj_str_new(msgpack_zone *zone, const char *s, size_t len);

/*  Deep copy into zone (strings, maps, arrays included). 0, NERVE_ENOMEM,
    NERVE_ERANGE (nested deeper than NERVE_OBJ_DEPTH_MAX) or NERVE_EINVAL
    (NULL argument); *dst is NIL on error. src and dst may be the same. */
int nerve_obj_copy(msgpack_zone *zone, const msgpack_object *src, msgpack_object *dst);

/*  A reaction arg of msgpack ext type NERVE_EXT_SECRET (payload: the
    secret's NAME) stands for the secret NAME, resolved by the actor that
    runs the reaction from its own root-only file, so the secret's value
    never travels on the bus. The manager makes one only from a lone
    '{{secret.NAME}}' in a rules file; values copied from events never
    carry one (nerve_obj_copy_data), so an event cannot ask for a secret. */
#define NERVE_EXT_SECRET 83 /* 'S' */

/*  Like nerve_obj_copy, for values that came from the network: any ext
    value of type NERVE_EXT_SECRET in src becomes nil in the copy. */
int nerve_obj_copy_data(msgpack_zone *zone, const msgpack_object *src, msgpack_object *dst);

/*  How many containers are nested in obj, obj included (0 for a scalar),
    counted up to limit + 1 at most, so the walk stays bounded. msgpack-c
    parses 32 levels: whatever nests received values inside its own must
    keep the sum within that, or its readers cannot parse it. */
size_t nerve_obj_depth(const msgpack_object *obj, size_t limit);

/*  Writes a short human form of obj into buf (JSON-like, truncated with
    "…" when it does not fit). Returns buf. For logs and explain output. */
char *nerve_obj_format(const msgpack_object *obj, char *buf, size_t bufsize);

/*  Appends obj as JSON to a growable buffer (bin as base64 is not needed:
    bin becomes a hex string). Floats use the shortest form that reads back
    to the same double, with ".0" added when that form looks like an
    integer (so a float stays a float through from_json); NaN and infinities
    become null. Invalid UTF-8 in a str becomes U+FFFD. Non-str map keys
    become their JSON text as a string; ext becomes {"ext":type,"data":hex}.
    Returns 0, NERVE_ENOMEM or NERVE_ERANGE (too deep); on error nothing is
    appended. */
int nerve_obj_to_json(const msgpack_object *obj, msgpack_sbuffer *out);

/*  The same JSON, written snprintf-style into buf: at most bufsize - 1
    bytes and a NUL (nothing when bufsize is 0, and buf may then be NULL).
    Returns the length of the whole text without the NUL; a result >=
    bufsize means buf holds a truncated prefix. Allocates nothing, so a
    caller can measure with bufsize 0, allocate, and write. */
size_t nerve_obj_to_json_buf(const msgpack_object *obj, char *buf, size_t bufsize);

/*  Parses JSON text (as accepted from the CLI and files) into a msgpack
    value allocated in zone. Strict RFC 8259: one value, optional
    whitespace around it, UTF-8 strings; \uXXXX escapes (with surrogate
    pairs) become UTF-8. Integers stay integers (POSITIVE_INTEGER, or
    NEGATIVE_INTEGER below zero; integers beyond 64 bits become FLOAT64);
    other numbers are FLOAT64. Duplicate object keys are kept (lookups find
    the first). Nesting is limited to NERVE_JSON_DEPTH_MAX. Returns 0, or
    NERVE_EPARSE with a message in err naming the byte offset ("expected ','
    or ']' at offset 7"), or NERVE_ENOMEM; *out is NIL on error. err may be
    NULL. */
int nerve_obj_from_json(msgpack_zone *zone, const char *text, size_t len, msgpack_object *out,
                        char *err, size_t errsize);

#ifdef __cplusplus
}
#endif
#endif
