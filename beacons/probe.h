/*  probe.h — what the built-in beacon modules (the .c files of beacons/) share.

    Each built-in probe is its own .so built against <nerve/module.h> like an
    operator's module; this header only spares them writing the same few
    helpers seven times: failing a run with a reason, emitting a builder's
    map through api->emit_raw, checking and reading params, and reading a
    small file under a configurable root (the `proc`/`root` arg that lets
    tests point a probe at a fixture tree). Everything is static inline, so
    each module carries only what it uses. Not installed; not an API.
*/
#ifndef NERVE_BEACONS_PROBE_H
#define NERVE_BEACONS_PROBE_H

#include <nerve/beacon.h>
#include <nerve/conf.h>
#include <nerve/module.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROBE_API_HAS(api, member)                                                                 \
    ((api) && (api)->size >= offsetof(nerve_host_api_t, member) + sizeof((api)->member) &&         \
     (api)->member)

/*  Fails the run: writes the reason into call->error and returns rc. */
static inline int probe_fail(nerve_beacon_call_t *call, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int probe_fail(nerve_beacon_call_t *call, int rc, const char *fmt, ...)
{
    if (call->error && call->error_cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(call->error, call->error_cap, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/*  Sends the builder's map as one event with `tag`. Returns 0 or the
    error (a builder error, NERVE_EFULL when the daemon's queue is full). */
static inline int probe_emit(nerve_beacon_call_t *call, const char *tag, nerve_data_t *d)
{
    const void *bytes;
    size_t len;
    int rc = nerve_data_bytes(d, &bytes, &len);
    if (rc != 0)
        return rc;
    if (!PROBE_API_HAS(call->api, emit_raw))
        return NERVE_ESTATE;
    return call->api->emit_raw(call->host, tag, bytes, len);
}

/*  Checks that every key of params (a map, or absent) is in `allowed`
    (NULL-ended). */
static inline int probe_check_keys(const msgpack_object *params, const char *const *allowed,
                                   const char *fn, char *err, size_t errsize)
{
    if (!params || params->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (params->type != MSGPACK_OBJECT_MAP) {
        snprintf(err, errsize, "%s: params must be a map", fn);
        return NERVE_EINVAL;
    }
    for (uint32_t i = 0; i < params->via.map.size; i++) {
        const msgpack_object *k = &params->via.map.ptr[i].key;
        const char *s = "";
        size_t n = 0;
        bool known = false;
        if (nerve_obj_str(k, &s, &n))
            for (const char *const *a = allowed; *a && !known; a++)
                known = strlen(*a) == n && memcmp(*a, s, n) == 0;
        if (!known) {
            char list[256] = "";
            size_t used = 0;
            for (const char *const *a = allowed; *a; a++) {
                int w =
                    snprintf(list + used, sizeof list - used, "%s%s", a == allowed ? "" : ", ", *a);
                if (w < 0 || (size_t)w >= sizeof list - used)
                    break;
                used += (size_t)w;
            }
            snprintf(err, errsize, "%s: unknown key '%.*s' (expected %s%s)", fn,
                     (int)(n > 64 ? 64 : n), s, *allowed ? "one of: " : "none", list);
            return NERVE_EINVAL;
        }
    }
    return 0;
}

/*  A string param copied into buf. Returns 0 (absent: buf = dflt, or ""
    when dflt is NULL, and *found false), or NERVE_EINVAL with a reason
    when it is not a string that fits. */
static inline int probe_param_str(const msgpack_object *params, const char *key, const char *dflt,
                                  char *buf, size_t size, bool *found, const char *fn, char *err,
                                  size_t errsize)
{
    const msgpack_object *v = nerve_obj_get(params, key);
    if (found)
        *found = v != NULL;
    if (!v) {
        snprintf(buf, size, "%s", dflt ? dflt : "");
        return 0;
    }
    const char *s;
    size_t n;
    if (!nerve_obj_str(v, &s, &n) || n == 0 || memchr(s, '\0', n) || n >= size) {
        snprintf(err, errsize, "%s: '%s' must be a non-empty string (at most %zu bytes)", fn, key,
                 size - 1);
        return NERVE_EINVAL;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

/*  A boolean param. */
static inline int probe_param_bool(const msgpack_object *params, const char *key, bool dflt,
                                   bool *out, const char *fn, char *err, size_t errsize)
{
    const msgpack_object *v = nerve_obj_get(params, key);
    *out = dflt;
    if (!v)
        return 0;
    if (v->type != MSGPACK_OBJECT_BOOLEAN) {
        snprintf(err, errsize, "%s: '%s' must be true or false", fn, key);
        return NERVE_EINVAL;
    }
    *out = v->via.boolean;
    return 0;
}

/*  An integer param in [min, max]. */
static inline int probe_param_int(const msgpack_object *params, const char *key, int64_t dflt,
                                  int64_t min, int64_t max, int64_t *out, const char *fn, char *err,
                                  size_t errsize)
{
    const msgpack_object *v = nerve_obj_get(params, key);
    *out = dflt;
    if (!v)
        return 0;
    bool ok = (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= (uint64_t)INT64_MAX) ||
              v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
    int64_t i = ok ? v->via.i64 : 0;
    if (!ok || i < min || i > max) {
        snprintf(err, errsize, "%s: '%s' must be an integer from %lld to %lld", fn, key,
                 (long long)min, (long long)max);
        return NERVE_EINVAL;
    }
    *out = i;
    return 0;
}

/*  A duration param: a number of seconds (fractions allowed) or a string
    "250ms", "3s", "1m". Result in ms, at least 1 and at most max_ms. */
static inline int probe_param_duration(const msgpack_object *params, const char *key,
                                       uint64_t dflt_ms, uint64_t max_ms, uint64_t *out_ms,
                                       const char *fn, char *err, size_t errsize)
{
    const msgpack_object *v = nerve_obj_get(params, key);
    *out_ms = dflt_ms;
    if (!v)
        return 0;
    double secs;
    const char *s;
    size_t n;
    uint64_t ms = 0;
    bool ok = false;
    if (nerve_obj_number(v, &secs))
        ok = secs > 0 && secs * 1000.0 <= (double)max_ms && (ms = (uint64_t)(secs * 1000.0)) > 0;
    else if (nerve_obj_str(v, &s, &n) && n < 64) {
        char text[64];
        memcpy(text, s, n);
        text[n] = '\0';
        ok = nerve_duration_parse_ms(text, &ms) == 0 && ms > 0 && ms <= max_ms;
    }
    if (!ok) {
        snprintf(err, errsize, "%s: '%s' must be a duration from 1ms to %llus (\"500ms\", 3)", fn,
                 key, (unsigned long long)(max_ms / 1000));
        return NERVE_EINVAL;
    }
    *out_ms = ms;
    return 0;
}

/*  The state of a probe whose only param is `proc` (default "/proc"): the
    root it reads its files under, so tests can point it at a fixture. */
typedef struct probe_proc_root {
    char proc[PATH_MAX];
} probe_proc_root_t;

/*  prepare() for such a probe (`fn` names it in errors); free() releases. */
static inline int probe_prepare_proc_root(const msgpack_object *params, void **prepared,
                                          const char *fn, char *err, size_t errsize)
{
    static const char *const keys[] = {"proc", NULL};
    probe_proc_root_t *self = calloc(1, sizeof *self);
    if (!self)
        return NERVE_ENOMEM;
    int rc = probe_check_keys(params, keys, fn, err, errsize);
    rc = rc ? rc
            : probe_param_str(params, "proc", "/proc", self->proc, sizeof self->proc - 16, NULL,
                              fn, err, errsize);
    if (rc != 0) {
        free(self);
        return rc;
    }
    *prepared = self;
    return 0;
}

/*  Reads up to size - 1 bytes of root/rel into buf, NUL-terminated.
    Returns the length, or -1 with errno set (path in `path`). */
static inline ssize_t probe_read_file(const char *root, const char *rel, char *path,
                                      size_t pathsize, char *buf, size_t size)
{
    if (snprintf(path, pathsize, "%s/%s", root, rel) >= (int)pathsize) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t used = 0;
    while (used < size - 1) {
        ssize_t n = read(fd, buf + used, size - 1 - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    close(fd);
    buf[used] = '\0';
    return (ssize_t)used;
}

#endif
