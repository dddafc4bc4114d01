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

/*  True if obj is a str; *ptr/*len point into obj (not NUL-terminated). */
bool nerve_obj_str(const msgpack_object *obj, const char **ptr, size_t *len);

/*  Copies a str value into buf (NUL-terminated). False if not a str or if
    it does not fit in bufsize (buf is then untouched). */
bool nerve_obj_strcpy(const msgpack_object *obj, char *buf, size_t bufsize);

/*  True if obj is a str equal to the C string s. */
bool nerve_obj_str_eq(const msgpack_object *obj, const char *s);

/*  Number params: the value of key as a double, or `dflt` when the key is
    absent or not a number. */
double nerve_obj_get_number(const msgpack_object *map, const char *key, double dflt);

/*  Deep equality (numbers compare by value across int/float). */
bool nerve_obj_equal(const msgpack_object *a, const msgpack_object *b);

/*  Builders, allocating from zone. Return a value of type NIL on OOM. */
msgpack_object nerve_obj_double_new(double d);
msgpack_object nerve_obj_int_new(int64_t i);
msgpack_object nerve_obj_bool_new(bool b);
msgpack_object nerve_obj_str_new(msgpack_zone *zone, const char *s, size_t len);

/*  Deep copy into zone (strings, maps, arrays included). 0 or NERVE_ENOMEM. */
int nerve_obj_copy(msgpack_zone *zone, const msgpack_object *src, msgpack_object *dst);

/*  Writes a short human form of obj into buf (JSON-like, truncated with
    "…" when it does not fit). Returns buf. For logs and explain output. */
char *nerve_obj_format(const msgpack_object *obj, char *buf, size_t bufsize);

/*  Appends obj as JSON to a growable buffer (bin as base64 is not needed:
    bin becomes a hex string). Returns 0 or NERVE_ENOMEM. */
int nerve_obj_to_json(const msgpack_object *obj, msgpack_sbuffer *out);

/*  Parses JSON text (as accepted from the CLI and files) into a msgpack
    value allocated in zone. Integers stay integers. Returns 0, or
    NERVE_EPARSE with a message in err naming the byte offset. */
int nerve_obj_from_json(msgpack_zone *zone, const char *text, size_t len, msgpack_object *out,
                        char *err, size_t errsize);

#ifdef __cplusplus
}
#endif
#endif
