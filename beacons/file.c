/*  beacons/file.c — beacons.file: files that changed.

        changed   one event per file and kind of change since the last run:
                  {value: 1, path, kind}

    Kinds: "created" (created, or moved/renamed into place), "modified"
    (written), "deleted" (removed, or moved away), "attrib" (mode, owner,
    times). Within one run each (path, kind) is reported once however many
    writes made it, so a file written in a thousand pieces is one event.
    When the kernel's queue overflowed, one event {kind: "overflow"}
    says some changes were lost.

    Watching. A path that is a directory is watched itself: every change to
    an entry in it is reported with that entry's path. Any other path (a
    file, or one that does not exist yet) is watched through its parent
    directory, filtered to its name, so a file replaced by rename (an
    editor, a config management tool, logrotate) or deleted and created
    again keeps being watched. A path whose directory cannot be watched
    (missing, no permission) fails the run with the reason, after the
    changes to the others are sent, and is tried again at every run.

    Arg: `paths` (a list of paths, or one path), or `path`. The inotify
    descriptor is opened when the config loads and read, without waiting,
    at each run: changes are reported at the beacon's interval.
*/
#include "probe.h"

#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#define S_FN        "beacons.file.changed"
#define S_PATHS_MAX 256
#define S_SEEN_MAX  1024 /* distinct (path, kind) reported per run */
#define S_MASK                                                                                     \
    (IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM | IN_MODIFY | IN_CLOSE_WRITE |            \
     IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

typedef struct file_watch {
    char path[PATH_MAX]; /* as configured */
    char dir[PATH_MAX];  /* what is watched */
    const char *base;    /* name filtered on in dir, or NULL (the dir itself) */
    int wd;              /* -1: not watched yet */
} file_watch_t;

typedef struct file_seen {
    char *path;
    const char *kind;
} file_seen_t;

typedef struct file_state {
    int fd;
    size_t nwatches;
    file_seen_t seen[S_SEEN_MAX];
    size_t nseen;
    bool overflow;
    file_watch_t watches[];
} file_state_t;

static int s_add(file_state_t *self, const msgpack_object *v, char *err, size_t errsize)
{
    const char *s;
    size_t n;
    if (!nerve_obj_str(v, &s, &n) || n == 0 || n >= PATH_MAX || s[0] != '/' || memchr(s, '\0', n)) {
        snprintf(err, errsize, "%s: 'paths' must hold absolute paths", S_FN);
        return NERVE_EINVAL;
    }
    file_watch_t *w = &self->watches[self->nwatches++];
    memcpy(w->path, s, n);
    while (n > 1 && w->path[n - 1] == '/') /* "/etc/nginx/" is the directory */
        n--;
    w->path[n] = '\0';
    w->wd = -1;
    return 0;
}

/*  Decides what to watch for w (the path itself if it is a directory,
    else its parent) and adds the watch. Returns 0 or an errno value. */
static int s_watch(file_state_t *self, file_watch_t *w)
{
    struct stat st;
    if (stat(w->path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(w->dir, sizeof w->dir, "%s", w->path);
        w->base = NULL;
    } else {
        snprintf(w->dir, sizeof w->dir, "%s", w->path);
        char *slash = strrchr(w->dir, '/');
        w->base = w->path + (slash - w->dir) + 1;
        if (slash == w->dir)
            slash[1] = '\0'; /* a file in / */
        else
            *slash = '\0';
    }
    int wd = inotify_add_watch(self->fd, w->dir, S_MASK | IN_ONLYDIR);
    if (wd < 0)
        return errno;
    w->wd = wd;
    return 0;
}

static int s_prepare(const msgpack_object *params, void **prepared, char *err, size_t errsize)
{
    static const char *const keys[] = {"paths", "path", NULL};
    int rc = probe_check_keys(params, keys, S_FN, err, errsize);
    if (rc != 0)
        return rc;
    const msgpack_object *paths = nerve_obj_get(params, "paths");
    const msgpack_object *path = nerve_obj_get(params, "path");
    if (!paths == !path) {
        snprintf(err, errsize, "%s: needs 'paths' (a list of paths) or 'path', not both", S_FN);
        return NERVE_EINVAL;
    }
    if (!paths)
        paths = path;
    size_t count = paths->type == MSGPACK_OBJECT_ARRAY ? paths->via.array.size : 1;
    if (count == 0 || count > S_PATHS_MAX) {
        snprintf(err, errsize, "%s: 'paths' must list 1 to %d paths", S_FN, S_PATHS_MAX);
        return NERVE_EINVAL;
    }
    file_state_t *self = calloc(1, sizeof *self + count * sizeof self->watches[0]);
    if (!self)
        return NERVE_ENOMEM;
    if (paths->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; rc == 0 && i < count; i++)
            rc = s_add(self, &paths->via.array.ptr[i], err, errsize);
    else
        rc = s_add(self, paths, err, errsize);
    if (rc == 0 && (self->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
        snprintf(err, errsize, "%s: inotify_init1: %s", S_FN, strerror(errno));
        rc = NERVE_EIO;
    }
    if (rc != 0) {
        free(self);
        return rc;
    }
    /* Watch from now on, so a change between loading and the first run is
       seen. Paths that cannot be watched yet are retried at each run. */
    for (size_t i = 0; i < self->nwatches; i++)
        s_watch(self, &self->watches[i]);
    *prepared = self;
    return 0;
}

static void s_release(void *prepared)
{
    file_state_t *self = prepared;
    if (!self)
        return;
    if (self->fd >= 0)
        close(self->fd);
    for (size_t i = 0; i < self->nseen; i++)
        free(self->seen[i].path);
    free(self);
}

/*  Remembers (path, kind) for this run's events, once. */
static void s_note(file_state_t *self, const char *dir, const char *name, const char *kind)
{
    char path[PATH_MAX * 2];
    if (name && *name)
        snprintf(path, sizeof path, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", name);
    else
        snprintf(path, sizeof path, "%s", dir);
    for (size_t i = 0; i < self->nseen; i++)
        if (self->seen[i].kind == kind && strcmp(self->seen[i].path, path) == 0)
            return;
    if (self->nseen == S_SEEN_MAX) {
        self->overflow = true;
        return;
    }
    char *copy = strdup(path);
    if (!copy) {
        self->overflow = true;
        return;
    }
    self->seen[self->nseen].path = copy;
    self->seen[self->nseen].kind = kind;
    self->nseen++;
}

static const char *s_kind(uint32_t mask)
{
    if (mask & (IN_CREATE | IN_MOVED_TO))
        return "created";
    if (mask & (IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF))
        return "deleted";
    if (mask & (IN_MODIFY | IN_CLOSE_WRITE))
        return "modified";
    if (mask & IN_ATTRIB)
        return "attrib";
    return NULL;
}

static void s_on_event(file_state_t *self, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        self->overflow = true;
        return;
    }
    if (ev->mask & IN_IGNORED) { /* the directory went away: watch it again later */
        for (size_t i = 0; i < self->nwatches; i++)
            if (self->watches[i].wd == ev->wd)
                self->watches[i].wd = -1;
        return;
    }
    if (ev->mask & IN_MOVE_SELF) /* the watch follows the inode: drop it, re-add by path */
        inotify_rm_watch(self->fd, ev->wd);
    const char *kind = s_kind(ev->mask);
    if (!kind)
        return;
    const char *name = ev->len ? ev->name : NULL;
    for (size_t i = 0; i < self->nwatches; i++) {
        const file_watch_t *w = &self->watches[i];
        if (w->wd != ev->wd)
            continue;
        if (!w->base) { /* a watched directory: its entries, and itself */
            s_note(self, w->dir, name, kind);
            break; /* several paths in one directory: reported once */
        }
        if (name && strcmp(name, w->base) == 0) {
            s_note(self, w->path, NULL, kind);
            break;
        }
    }
}

static int s_changed(nerve_beacon_call_t *call)
{
    file_state_t *self = call->prepared;
    char why[512] = "";
    int failed = 0;
    for (size_t i = 0; i < self->nwatches; i++) {
        file_watch_t *w = &self->watches[i];
        int e = w->wd < 0 ? s_watch(self, w) : 0;
        if (e && !failed++)
            snprintf(why, sizeof why, "cannot watch %.400s: %s", w->dir, strerror(e));
    }
    char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(self->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            s_on_event(self, ev);
            p += sizeof *ev + ev->len;
        }
    }
    char dbuf[PATH_MAX * 2 + 128];
    nerve_data_t d;
    for (size_t i = 0; i < self->nseen; i++) {
        nerve_data_init(&d, dbuf, sizeof dbuf);
        nerve_data_int(&d, "value", 1);
        nerve_data_str(&d, "path", self->seen[i].path);
        nerve_data_str(&d, "kind", self->seen[i].kind);
        if (probe_emit(call, call->tag, &d) == NERVE_EINVAL && !failed++)
            snprintf(why, sizeof why, "%.400s: cannot be sent (not UTF-8?)", self->seen[i].path);
        free(self->seen[i].path);
    }
    self->nseen = 0;
    if (self->overflow) {
        self->overflow = false;
        nerve_data_init(&d, dbuf, sizeof dbuf);
        nerve_data_int(&d, "value", 1);
        nerve_data_str(&d, "kind", "overflow");
        probe_emit(call, call->tag, &d);
    }
    if (failed)
        return probe_fail(call, NERVE_EIO, "%s%s", why, failed > 1 ? " (and other paths)" : "");
    return 0;
}

static const nerve_module_fn_t s_functions[] = {
    {"changed",
     {.beacon = s_changed},
     "inotify on paths; one event per changed file {path, kind}, value = 1",
     s_prepare,
     s_release},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_BEACONS, "file", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
