/*  secrets.c — the actor's secrets file and {{secret.NAME}} (see secrets.h).

    The file is opened once, checked on the descriptor it was opened with
    (so the file checked is the file read), read into a buffer that is
    wiped after parsing, and its values copied into one allocation the
    store owns and wipes at the end. Lookups are a linear scan: a file
    holds a handful of secrets, and a reaction a few references.
*/
#define _GNU_SOURCE
#include "secrets.h"

#include <nerve/conf.h>
#include <nerve/error.h>
#include <nerve/value.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_MAX_LEN 128
#define DEPTH_MAX    64

typedef struct entry {
    char *name;
    char *value;
    size_t len;
} entry_t;

struct secrets {
    entry_t *entries;
    size_t count;
    char *arena; /* every name and value, NUL-terminated */
    size_t arena_size;
};

static void s_err(char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_err(char *err, size_t errsize, const char *fmt, ...)
{
    if (!err || !errsize)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsize, fmt, ap);
    va_end(ap);
}

static bool s_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/*  Reads the whole file from an fd whose owner and mode were checked. */
static char *s_read(const char *path, size_t *len, char *err, size_t errsize)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
    if (fd < 0) {
        s_err(err, errsize, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *text = NULL;
    if (fstat(fd, &st) != 0) {
        s_err(err, errsize, "%s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        s_err(err, errsize, "%s: not a regular file", path);
    } else if (st.st_mode & 077) {
        s_err(err, errsize,
              "%s: secrets readable or writable by group or others (mode %03o); chmod 600 it "
              "and consider its secrets exposed",
              path, (unsigned)(st.st_mode & 0777));
    } else if (st.st_uid != geteuid() && st.st_uid != 0) {
        s_err(err, errsize, "%s: owned by uid %u, not by this user (uid %u) or root", path,
              (unsigned)st.st_uid, (unsigned)geteuid());
    } else if (st.st_size > SECRETS_FILE_MAX) {
        s_err(err, errsize, "%s: %lld bytes; a secrets file holds at most %d", path,
              (long long)st.st_size, SECRETS_FILE_MAX);
    } else if (!(text = malloc((size_t)st.st_size + 1))) {
        s_err(err, errsize, "%s: out of memory", path);
    } else {
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        text[got] = '\0';
        *len = got;
    }
    close(fd);
    return text;
}

static int s_fill(secrets_t *self, const nerve_conf_t *root, nerve_conf_error_t *cerr)
{
    if (root->type != NERVE_CONF_MAP)
        return nerve_conf_fail(root, cerr, "a secrets file is a map of NAME: value");
    if (root->count > SECRETS_MAX)
        return nerve_conf_fail(root, cerr, "at most %d secrets", SECRETS_MAX);
    size_t size = 0;
    for (size_t i = 0; i < root->count; i++) {
        const nerve_conf_t *k = root->keys[i], *v = root->items[i];
        if (!s_name_ok(k->text, k->text_len))
            return nerve_conf_fail(k, cerr,
                                   "secret name '%.80s': 1-%d of letters, digits, '_', '-', '.'",
                                   k->text, NAME_MAX_LEN);
        if (v->type != NERVE_CONF_SCALAR)
            return nerve_conf_fail(v, cerr, "secret '%s': the value must be a scalar", k->text);
        size += k->text_len + 1 + v->text_len + 1;
    }
    self->entries = calloc(root->count ? root->count : 1, sizeof *self->entries);
    self->arena = malloc(size ? size : 1);
    if (!self->entries || !self->arena)
        return NERVE_ENOMEM;
    self->arena_size = size;
    char *p = self->arena;
    for (size_t i = 0; i < root->count; i++) {
        const nerve_conf_t *k = root->keys[i], *v = root->items[i];
        entry_t *e = &self->entries[self->count++];
        e->name = p;
        memcpy(p, k->text, k->text_len + 1);
        p += k->text_len + 1;
        e->value = p;
        e->len = v->text_len;
        memcpy(p, v->text, v->text_len + 1);
        p += v->text_len + 1;
    }
    return 0;
}

secrets_t *secrets_load(const char *path, char *err, size_t errsize)
{
    size_t len = 0;
    char *text = s_read(path, &len, err, errsize);
    if (!text)
        return NULL;
    secrets_t *self = calloc(1, sizeof *self);
    nerve_conf_t *root = NULL;
    nerve_conf_error_t cerr;
    memset(&cerr, 0, sizeof cerr);
    int rc = self ? nerve_conf_parse(path, text, len, &root, &cerr) : NERVE_ENOMEM;
    explicit_bzero(text, len);
    free(text);
    if (rc == 0 && root)
        rc = s_fill(self, root, &cerr);
    nerve_conf_destroy(&root);
    if (rc != 0) {
        if (rc == NERVE_ENOMEM && !cerr.message[0])
            s_err(err, errsize, "%s: out of memory", path);
        else
            s_err(err, errsize, "%s", cerr.message);
        secrets_destroy(&self);
    }
    return self;
}

void secrets_destroy(secrets_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    secrets_t *self = *self_p;
    if (self->arena)
        explicit_bzero(self->arena, self->arena_size);
    free(self->arena);
    free(self->entries);
    free(self);
    *self_p = NULL;
}

size_t secrets_count(const secrets_t *self)
{
    return self ? self->count : 0;
}

static bool s_is_secret(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_EXT && o->via.ext.type == NERVE_EXT_SECRET;
}

static bool s_wanted(const msgpack_object *o, int depth)
{
    if (depth > DEPTH_MAX)
        return false;
    if (s_is_secret(o))
        return true;
    if (o->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (s_wanted(&o->via.array.ptr[i], depth + 1))
                return true;
    if (o->type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < o->via.map.size; i++)
            if (s_wanted(&o->via.map.ptr[i].val, depth + 1))
                return true;
    return false;
}

bool secrets_wanted(const msgpack_object *obj)
{
    return obj && s_wanted(obj, 0);
}

static int s_resolve(const secrets_t *self, msgpack_object *o, int depth, char *why, size_t whysize)
{
    if (depth > DEPTH_MAX)
        return 0;
    if (s_is_secret(o)) {
        const char *name = o->via.ext.ptr;
        uint32_t n = o->via.ext.size;
        for (size_t i = 0; self && i < self->count; i++) {
            if (strlen(self->entries[i].name) == n && memcmp(self->entries[i].name, name, n) == 0) {
                o->type = MSGPACK_OBJECT_STR;
                o->via.str.ptr = self->entries[i].value;
                o->via.str.size = (uint32_t)self->entries[i].len;
                return 0;
            }
        }
        char shown[NAME_MAX_LEN + 1];
        size_t len = n > NAME_MAX_LEN ? NAME_MAX_LEN : n;
        for (size_t i = 0; i < len; i++) /* a name from the wire: print it tamely */
            shown[i] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
        shown[len] = '\0';
        if (self)
            s_err(why, whysize, "{{secret.%s}}: no such secret in this actor's secrets file",
                  shown);
        else
            s_err(why, whysize,
                  "{{secret.%s}}: this actor has no secrets file (set secrets: in its config)",
                  shown);
        return NERVE_ENOENT;
    }
    int rc = 0;
    if (o->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; rc == 0 && i < o->via.array.size; i++)
            rc = s_resolve(self, &o->via.array.ptr[i], depth + 1, why, whysize);
    if (o->type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; rc == 0 && i < o->via.map.size; i++)
            rc = s_resolve(self, &o->via.map.ptr[i].val, depth + 1, why, whysize);
    return rc;
}

int secrets_resolve(const secrets_t *self, msgpack_object *obj, char *why, size_t whysize)
{
    if (!obj)
        return 0;
    return s_resolve(self, obj, 0, why, whysize);
}
