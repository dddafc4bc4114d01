/*  module.c — the module loader: `role.module.function` → a checked .so.

    A module set maps dotted names to functions of shared objects found
    along a search path (<dir>/<role>/<module>.so, the first directory that
    has the file wins), loading each module lazily on first use, or, asked
    to, every module of one role or of all at once by listing the role
    directories (a daemon that runs only reactions loads nothing else).

    Before anything in a file runs, the loader makes sure nobody but its
    owner could have written it. It opens the search directory, the role
    directory in it and the file in that (O_NOFOLLOW), checks each with
    fstat(), and dlopen()s "/proc/self/fd/N": the file loaded is the file
    checked, not whatever the path names a moment later. Then it checks the
    descriptor nerve_module() returns (magic, ABI, size, role, name, the
    function table), runs init(), and caches the outcome in the set:
    a module refused once stays refused, with the same reason.

    Loaded files are shared between sets through one process-wide table
    keyed by (device, inode). A reload builds a new set while the old one
    still runs, and both may hold the same file: the table keeps one dlopen
    handle per file, runs init() once when the file is first loaded and
    fini() when the last set lets go of it. The table also keeps fd N of
    "/proc/self/fd/N" open while the object is loaded, because glibc knows
    an object by the name it was opened under: were N closed and reused
    for another file, dlopen() would hand back the old object.
*/
#define _GNU_SOURCE
#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/module.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_ID "loader"

/*  A table longer than this has most likely lost its {NULL} end; reading
    on would wander through the module's data. */
#define FUNCTIONS_MAX 1024

/*  Room for one refusal reason, and for one whole error line. */
#define REASON_MAX  512
#define MESSAGE_MAX 2048

/*  A search directory leaves room for "/reactions/<255-byte name>.so". */
#define DIR_MAX (PATH_MAX - 300)

/* ------------------------------------------------------------------------
   The process-wide table of loaded files.
   ------------------------------------------------------------------------ */
typedef struct object object_t;
struct object {
    dev_t dev;
    ino_t ino;
    int fd; /* the N of "/proc/self/fd/N" it was loaded as */
    void *handle;
    const nerve_module_t *desc;
    size_t refs; /* set entries holding it */
    bool inited; /* init() ran and succeeded: fini() is owed */
    object_t *next;
};

static pthread_mutex_t s_objects_lock = PTHREAD_MUTEX_INITIALIZER;
static object_t *s_objects;

/*  Files that stayed mapped after their last dlclose() (a module linked
    with -z nodelete, or a C++ one with STB_GNU_UNIQUE symbols, which glibc
    never unloads), with the fd N they are known by. The next load of the
    same file goes through that same "/proc/self/fd/N", so a reload takes
    no new descriptor: otherwise every reload would keep one more fd open
    for good, and a manager reloaded a thousand times would run out. */
typedef struct resident resident_t;
struct resident {
    dev_t dev;
    ino_t ino;
    int fd;
    resident_t *next;
};
static resident_t *s_resident; /* under s_objects_lock */

static resident_t *s_resident_find(dev_t dev, ino_t ino)
{
    for (resident_t *r = s_resident; r; r = r->next)
        if (r->dev == dev && r->ino == ino)
            return r;
    return NULL;
}

/*  Remembers that `fd` names a file still mapped. False if there was no
    memory for it: the fd is then simply never closed. */
static bool s_resident_add(dev_t dev, ino_t ino, int fd)
{
    resident_t *r = malloc(sizeof *r);
    if (!r)
        return false;
    *r = (resident_t){.dev = dev, .ino = ino, .fd = fd, .next = s_resident};
    s_resident = r;
    return true;
}

static void s_resident_remove(resident_t *gone)
{
    for (resident_t **p = &s_resident; *p; p = &(*p)->next) {
        if (*p == gone) {
            *p = gone->next;
            free(gone);
            return;
        }
    }
}

/* ------------------------------------------------------------------------
   A set: what one configuration loaded, or refused.
   ------------------------------------------------------------------------ */
typedef struct entry entry_t;
struct entry {
    nerve_role_t role;
    char *name;       /* module name, the file's base name */
    char *path;       /* the .so file */
    bool searched;    /* found along the path (not by load_file) */
    int rc;           /* 0: loaded; otherwise why it was refused… */
    char *reason;     /* …in words, without the path */
    object_t *object; /* loaded: the shared object */
    unsigned pass;    /* the load_all pass that last reported it */
    entry_t *next;    /* load order */
};

struct nerve_modset {
    char **dirs;
    size_t ndirs;
    char *path_string; /* "dir1:dir2" */
    entry_t *entries;
    entry_t *last;
    unsigned pass;
};

static const char *const s_role_names[] = {NULL, "beacons", "rules", "registers", "reactions"};

const char *nerve_role_name(nerve_role_t role)
{
    if (role < NERVE_ROLE_BEACONS || role > NERVE_ROLE_REACTIONS)
        return NULL;
    return s_role_names[role];
}

int nerve_role_parse(const char *name, size_t len, nerve_role_t *role)
{
    if (!name || !role)
        return NERVE_ENOENT;
    for (int r = NERVE_ROLE_BEACONS; r <= NERVE_ROLE_REACTIONS; r++) {
        if (strlen(s_role_names[r]) == len && memcmp(name, s_role_names[r], len) == 0) {
            *role = (nerve_role_t)r;
            return NERVE_OK;
        }
    }
    /* The seed writes `register.aggregate.avg`. */
    if (len == 8 && memcmp(name, "register", 8) == 0) {
        *role = NERVE_ROLE_REGISTERS;
        return NERVE_OK;
    }
    return NERVE_ENOENT;
}

__attribute__((format(printf, 4, 5))) static int s_fail(char *err, size_t errsize, int rc,
                                                        const char *fmt, ...)
{
    if (err && errsize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsize, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/*  Module and function names become path components and parts of dotted
    names, so they are kept to a safe alphabet: no '/', no '.', no "..". */
bool nerve_module_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > NERVE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/*  "a/b" into buf; false when it does not fit. */
static bool s_join(char *buf, size_t size, const char *a, const char *b)
{
    int n = snprintf(buf, size, "%s/%s", a, b);
    return n >= 0 && (size_t)n < size;
}

/*  Whoever may write the file, or a directory above it in the tree, may
    run code as this process. `dir` names the directory checked, or is
    NULL for the file itself (the caller names the file). */
static int s_check_mode(const struct stat *st, const char *dir, char *reason, size_t size)
{
    mode_t w = st->st_mode & (S_IWGRP | S_IWOTH);
    if (!w)
        return NERVE_OK;
    const char *who = w == (S_IWGRP | S_IWOTH) ? "group and others"
                      : w == S_IWGRP           ? "group"
                                               : "others";
    return s_fail(reason, size, NERVE_EPERM,
                  "refused: %s%s%swritable by %s (mode %04o); chmod go-w it",
                  dir ? "directory " : "", dir ? dir : "", dir ? " is " : "", who,
                  (unsigned)(st->st_mode & 07777));
}

/*  Checks the descriptor against the loader's ABI and the file's place in
    the tree. Reads nothing beyond the header fields until the size check
    has shown that the module's struct is at least as large as ours. */
static int s_check_desc(const nerve_module_t *m, nerve_role_t role, const char *name, char *reason,
                        size_t size)
{
    if (m->magic != NERVE_MODULE_MAGIC)
        return s_fail(reason, size, NERVE_EABI,
                      "bad magic 0x%08x in its descriptor (expected 0x%08x): not a nerve module",
                      (unsigned)m->magic, (unsigned)NERVE_MODULE_MAGIC);
    if (m->abi_major != NERVE_MODULE_ABI_MAJOR)
        return s_fail(reason, size, NERVE_EABI,
                      "built for module ABI %u.%u, this loader speaks %u.%u (majors must match); "
                      "rebuild it against this nerve",
                      m->abi_major, m->abi_minor, NERVE_MODULE_ABI_MAJOR, NERVE_MODULE_ABI_MINOR);
    if (m->abi_minor > NERVE_MODULE_ABI_MINOR)
        return s_fail(reason, size, NERVE_EABI,
                      "built for module ABI %u.%u, newer than this loader's %u.%u; upgrade nerve",
                      m->abi_major, m->abi_minor, NERVE_MODULE_ABI_MAJOR, NERVE_MODULE_ABI_MINOR);
    if (m->size < sizeof(nerve_module_t))
        return s_fail(reason, size, NERVE_EABI,
                      "descriptor is %u bytes, smaller than the %zu this loader reads",
                      (unsigned)m->size, sizeof(nerve_module_t));
    if (!nerve_role_name(m->role))
        return s_fail(reason, size, NERVE_EINVAL, "descriptor has unknown role %d", (int)m->role);
    if (m->role != role)
        return s_fail(reason, size, NERVE_EINVAL,
                      "descriptor says role '%s' but the file is in %s/", nerve_role_name(m->role),
                      nerve_role_name(role));
    if (!m->name)
        return s_fail(reason, size, NERVE_EINVAL, "descriptor has no name");
    if (strcmp(m->name, name) != 0)
        return s_fail(reason, size, NERVE_EINVAL,
                      "descriptor says name '%.64s' but the file is %s.so", m->name, name);
    if (!m->version)
        return s_fail(reason, size, NERVE_EINVAL, "descriptor has no version string");
    if (!m->functions || !m->functions[0].name)
        return s_fail(reason, size, NERVE_EINVAL, "empty function table");

    size_t n = 0;
    for (; n < FUNCTIONS_MAX && m->functions[n].name; n++) {
        const nerve_module_fn_t *f = &m->functions[n];
        if (!nerve_module_name_ok(f->name, strlen(f->name)))
            return s_fail(reason, size, NERVE_EINVAL,
                          "function name '%.64s' is not 1-255 of [A-Za-z0-9_-]", f->name);
        if (!f->fn.rule)
            return s_fail(reason, size, NERVE_EINVAL, "function '%s' has a NULL pointer", f->name);
        if (!f->doc)
            return s_fail(reason, size, NERVE_EINVAL, "function '%s' has no doc line", f->name);
        for (size_t j = 0; j < n; j++) {
            if (strcmp(m->functions[j].name, f->name) == 0)
                return s_fail(reason, size, NERVE_EINVAL,
                              "duplicate function '%s' in the function table", f->name);
        }
    }
    if (n == FUNCTIONS_MAX)
        return s_fail(reason, size, NERVE_EINVAL,
                      "function table has %d entries or more: is its {NULL} end missing?",
                      FUNCTIONS_MAX);
    return NERVE_OK;
}

/*  dlerror() names "/proc/self/fd/N", which means nothing to an operator:
    the caller already names the real file. */
static const char *s_dlerror(const char *procname)
{
    const char *e = dlerror();
    if (!e)
        return "unknown dynamic loader error";
    size_t n = strlen(procname);
    if (strncmp(e, procname, n) == 0 && strncmp(e + n, ": ", 2) == 0)
        e += n + 2;
    return e;
}

/*  Drops one reference; the last one runs fini() and unloads. Called with
    s_objects_lock held. */
static void s_object_release_locked(object_t *obj)
{
    if (--obj->refs > 0)
        return;
    for (object_t **p = &s_objects; *p; p = &(*p)->next) {
        if (*p == obj) {
            *p = obj->next;
            break;
        }
    }
    if (obj->inited && obj->desc->fini)
        obj->desc->fini();
    dlclose(obj->handle);

    /*  An object can outlive dlclose() (marked NODELETE, or opened by
        someone else too). Its name would then still be "/proc/self/fd/N":
        keep N open so no other file is ever loaded under it, and remember
        it, so that loading the file again reuses N (s_resident). */
    char procname[64];
    snprintf(procname, sizeof procname, "/proc/self/fd/%d", obj->fd);
    void *still = dlopen(procname, RTLD_NOW | RTLD_NOLOAD);
    resident_t *r = s_resident_find(obj->dev, obj->ino);
    if (still) {
        dlclose(still);
        if (!r) {
            s_resident_add(obj->dev, obj->ino, obj->fd);
            NERVE_DEBUG(LOG_ID, "module %s stays mapped after dlclose; keeping fd %d",
                        obj->desc->name, obj->fd);
        }
    } else {
        if (r)
            s_resident_remove(r);
        close(obj->fd);
    }
    free(obj);
}

static void s_object_release(object_t *obj)
{
    pthread_mutex_lock(&s_objects_lock);
    s_object_release_locked(obj);
    pthread_mutex_unlock(&s_objects_lock);
}

/*  Loads the file open on `fd` (already checked), or takes another
    reference on it if it is loaded already. Takes `fd` in every case. */
static int s_object_acquire(int fd, const struct stat *st, object_t **out, char *reason,
                            size_t size)
{
    int rc = NERVE_OK;
    pthread_mutex_lock(&s_objects_lock);
    for (object_t *o = s_objects; o; o = o->next) {
        if (o->dev == st->st_dev && o->ino == st->st_ino) {
            o->refs++;
            close(fd);
            *out = o;
            goto done;
        }
    }

    /*  Still mapped from an earlier load: load it by the name it has. */
    resident_t *resident = s_resident_find(st->st_dev, st->st_ino);
    if (resident) {
        close(fd);
        fd = resident->fd;
    }
    char procname[64];
    snprintf(procname, sizeof procname, "/proc/self/fd/%d", fd);
    dlerror();
    void *handle = dlopen(procname, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        rc = s_fail(reason, size, NERVE_EINVAL, "cannot load: %s", s_dlerror(procname));
        if (!resident)
            close(fd);
        goto done;
    }
    /*  A handle we already hold means glibc matched a stale name rather
        than this file; never run the wrong code. */
    for (object_t *o = s_objects; o; o = o->next) {
        if (o->handle == handle) {
            rc = s_fail(reason, size, NERVE_EIO,
                        "the dynamic loader returned an object loaded from another file");
            goto unload;
        }
    }

    nerve_module_entry_t entry;
    void *sym = dlsym(handle, "nerve_module");
    if (!sym) {
        rc = s_fail(reason, size, NERVE_EABI,
                    "no nerve_module() symbol: not a nerve module (see NERVE_MODULE_EXPORT)");
        goto unload;
    }
    memcpy(&entry, &sym, sizeof entry); /* POSIX: dlsym's void * is a function pointer */
    const nerve_module_t *desc = entry();
    if (!desc) {
        rc = s_fail(reason, size, NERVE_EABI, "nerve_module() returned NULL");
        goto unload;
    }
    object_t *obj = calloc(1, sizeof *obj);
    if (!obj) {
        rc = s_fail(reason, size, NERVE_ENOMEM, "out of memory");
        goto unload;
    }
    obj->dev = st->st_dev;
    obj->ino = st->st_ino;
    obj->fd = fd;
    obj->handle = handle;
    obj->desc = desc;
    obj->refs = 1;
    obj->next = s_objects;
    s_objects = obj;
    *out = obj;
    goto done;

unload:
    dlclose(handle);
    if (!resident)
        close(fd);
done:
    pthread_mutex_unlock(&s_objects_lock);
    return rc;
}

/*  Runs init() once per loaded file. Under the lock so that two sets on
    two threads cannot both run it. */
static int s_object_init(object_t *obj, char *reason, size_t size)
{
    int rc = NERVE_OK;
    pthread_mutex_lock(&s_objects_lock);
    if (!obj->inited) {
        int irc = obj->desc->init ? obj->desc->init() : 0;
        if (irc != 0)
            rc = s_fail(reason, size, NERVE_EMODULE, "init() failed with %d", irc);
        else
            obj->inited = true;
    }
    pthread_mutex_unlock(&s_objects_lock);
    return rc;
}

/*  Checks the three opened levels — search directory, role directory,
    file — and loads the file into entry `e`. Takes `fd`; leaves the
    directory fds to the caller. */
static int s_load_fds(entry_t *e, int dir_fd, const char *dir_path, int role_fd,
                      const char *role_path, int fd, char *reason, size_t size)
{
    struct stat st;
    int rc;
    if (fstat(dir_fd, &st) != 0)
        rc = s_fail(reason, size, NERVE_EIO, "cannot stat %s: %s", dir_path, strerror(errno));
    else
        rc = s_check_mode(&st, dir_path, reason, size);
    if (rc == NERVE_OK) {
        if (fstat(role_fd, &st) != 0)
            rc = s_fail(reason, size, NERVE_EIO, "cannot stat %s: %s", role_path, strerror(errno));
        else
            rc = s_check_mode(&st, role_path, reason, size);
    }
    if (rc == NERVE_OK) {
        if (fstat(fd, &st) != 0)
            rc = s_fail(reason, size, NERVE_EIO, "cannot stat: %s", strerror(errno));
        else if (!S_ISREG(st.st_mode))
            rc = s_fail(reason, size, NERVE_EINVAL, "not a regular file");
        else
            rc = s_check_mode(&st, NULL, reason, size);
    }
    if (rc != NERVE_OK) {
        close(fd);
        return rc;
    }

    object_t *obj = NULL;
    rc = s_object_acquire(fd, &st, &obj, reason, size);
    if (rc != NERVE_OK)
        return rc;
    rc = s_check_desc(obj->desc, e->role, e->name, reason, size);
    if (rc == NERVE_OK)
        rc = s_object_init(obj, reason, size);
    if (rc != NERVE_OK) {
        s_object_release(obj);
        return rc;
    }
    e->object = obj;
    NERVE_DEBUG(LOG_ID, "loaded %s.%s %s from %s", nerve_role_name(e->role), e->name,
                obj->desc->version, e->path);
    return NERVE_OK;
}

static entry_t *s_entry_new(nerve_modset_t *self, nerve_role_t role, const char *name,
                            size_t name_len, const char *path, bool searched)
{
    entry_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->role = role;
    e->name = strndup(name, name_len);
    e->path = strdup(path);
    e->searched = searched;
    if (!e->name || !e->path) {
        free(e->name);
        free(e->path);
        free(e);
        return NULL;
    }
    if (self->last)
        self->last->next = e;
    else
        self->entries = e;
    self->last = e;
    return e;
}

/*  Records the outcome of a load in the entry, so that a refusal is
    remembered. Returns the entry's rc, or NERVE_ENOMEM when even the
    reason could not be kept (the entry then stays refused). */
static int s_entry_settle(entry_t *e, int rc, const char *reason)
{
    e->rc = rc;
    if (rc != NERVE_OK) {
        e->reason = strdup(reason);
        if (!e->reason)
            return NERVE_ENOMEM;
    }
    return rc;
}

/*  Opens <dir>/<role>/<name>.so along the search path. Returns the entry
    (loaded or refused, cached), or NERVE_ENOENT with `missing` saying
    where it looked, or NERVE_ENOMEM. */
static int s_get(nerve_modset_t *self, nerve_role_t role, const char *name, size_t name_len,
                 entry_t **out, char *missing, size_t missing_size)
{
    *out = NULL;
    for (entry_t *e = self->entries; e; e = e->next) {
        if (e->searched && e->role == role && strlen(e->name) == name_len &&
            memcmp(e->name, name, name_len) == 0) {
            *out = e;
            return e->rc;
        }
    }

    const char *role_name = nerve_role_name(role);
    char file[NERVE_NAME_MAX + 4];
    snprintf(file, sizeof file, "%.*s.so", (int)name_len, name);

    /*  The "not found" message lists every directory, and says why one
        could not be searched when that was not simply its absence. */
    char notes[MESSAGE_MAX / 2] = "";
    size_t notes_len = 0;

    for (size_t i = 0; i < self->ndirs; i++) {
        const char *dir = self->dirs[i];
        int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int role_fd = -1, fd = -1, open_errno = 0;
        if (dir_fd < 0) {
            open_errno = errno;
        } else {
            role_fd = openat(dir_fd, role_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (role_fd < 0) {
                open_errno = errno;
            } else {
                fd = openat(role_fd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                    open_errno = errno;
            }
        }
        if (fd < 0 && (open_errno == ENOENT || open_errno == ENOTDIR || role_fd < 0)) {
            if (open_errno != ENOENT && open_errno != ENOTDIR && notes_len < sizeof notes) {
                int n = snprintf(notes + notes_len, sizeof notes - notes_len, "; %s%s%s: %s", dir,
                                 role_fd < 0 && dir_fd >= 0 ? "/" : "",
                                 role_fd < 0 && dir_fd >= 0 ? role_name : "", strerror(open_errno));
                if (n > 0)
                    notes_len += (size_t)n;
            }
            if (role_fd >= 0)
                close(role_fd);
            if (dir_fd >= 0)
                close(dir_fd);
            continue;
        }

        /* The first directory holding the file decides, even by refusing:
           falling through to the next one would hide the problem. */
        char path[PATH_MAX], role_path[PATH_MAX];
        /* Cannot fail: nerve_modset_new() refuses directories that long. */
        if (!s_join(role_path, sizeof role_path, dir, role_name) ||
            !s_join(path, sizeof path, role_path, file))
            path[0] = '\0';
        entry_t *e = s_entry_new(self, role, name, name_len, path, true);
        if (!e) {
            if (fd >= 0)
                close(fd);
            close(role_fd);
            close(dir_fd);
            return NERVE_ENOMEM;
        }
        char reason[REASON_MAX];
        int rc;
        if (fd < 0 && open_errno == ELOOP)
            rc = s_fail(reason, sizeof reason, NERVE_EPERM,
                        "refused: a symbolic link (install the file itself; the role "
                        "directory may be a link)");
        else if (fd < 0)
            rc = s_fail(reason, sizeof reason, NERVE_EIO, "cannot open: %s", strerror(open_errno));
        else
            rc = s_load_fds(e, dir_fd, dir, role_fd, role_path, fd, reason, sizeof reason);
        close(role_fd);
        close(dir_fd);
        *out = e;
        return s_entry_settle(e, rc, reason);
    }

    char dirs[MESSAGE_MAX / 2] = "";
    size_t len = 0;
    for (size_t i = 0; i < self->ndirs && len < sizeof dirs; i++) {
        int n = snprintf(dirs + len, sizeof dirs - len, "%s%s", i ? ", " : "", self->dirs[i]);
        if (n > 0)
            len += (size_t)n;
    }
    s_fail(missing, missing_size, NERVE_ENOENT, "no module %s/%s in %s%s", role_name, file,
           self->ndirs ? dirs : "(empty module path)", notes);
    return NERVE_ENOENT;
}

/* ------------------------------------------------------------------------
   Public API.
   ------------------------------------------------------------------------ */
nerve_modset_t *nerve_modset_new(const char *const *dirs, size_t ndirs)
{
    if (ndirs && !dirs) {
        NERVE_ERROR(LOG_ID, "module set: %zu directories but no list", ndirs);
        return NULL;
    }
    nerve_modset_t *self = calloc(1, sizeof *self);
    if (!self)
        goto oom;
    size_t total = 1;
    if (ndirs) {
        self->dirs = calloc(ndirs, sizeof *self->dirs);
        if (!self->dirs)
            goto oom;
    }
    for (size_t i = 0; i < ndirs; i++) {
        if (!dirs[i] || !*dirs[i]) {
            NERVE_ERROR(LOG_ID, "module set: directory %zu is empty", i);
            goto fail;
        }
        /* Room for /<role>/<name>.so after it, so paths never truncate. */
        if (strlen(dirs[i]) > DIR_MAX) {
            NERVE_ERROR(LOG_ID, "module set: directory %zu is longer than %d bytes", i, DIR_MAX);
            goto fail;
        }
        self->dirs[i] = strdup(dirs[i]);
        if (!self->dirs[i])
            goto oom;
        self->ndirs = i + 1;
        total += strlen(dirs[i]) + 1;
    }
    self->path_string = malloc(total);
    if (!self->path_string)
        goto oom;
    self->path_string[0] = '\0';
    for (size_t i = 0; i < ndirs; i++) {
        if (i)
            strcat(self->path_string, ":");
        strcat(self->path_string, self->dirs[i]);
    }
    return self;

oom:
    NERVE_ERROR(LOG_ID, "module set: out of memory");
fail:
    nerve_modset_destroy(&self);
    return NULL;
}

void nerve_modset_destroy(nerve_modset_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nerve_modset_t *self = *self_p;

    /* Last loaded, first unloaded, as with constructors and destructors. */
    entry_t *rev = NULL;
    while (self->entries) {
        entry_t *e = self->entries;
        self->entries = e->next;
        e->next = rev;
        rev = e;
    }
    while (rev) {
        entry_t *e = rev;
        rev = e->next;
        if (e->object)
            s_object_release(e->object);
        free(e->name);
        free(e->path);
        free(e->reason);
        free(e);
    }
    for (size_t i = 0; i < self->ndirs; i++)
        free(self->dirs[i]);
    free(self->dirs);
    free(self->path_string);
    free(self);
    *self_p = NULL;
}

static int s_find_function(const entry_t *e, const char *dotted, const char *fn, size_t fn_len,
                           nerve_resolved_t *out, char *err, size_t errsize)
{
    const nerve_module_t *m = e->object->desc;
    char have[MESSAGE_MAX / 2] = "";
    size_t len = 0;
    for (size_t i = 0; m->functions[i].name; i++) {
        const nerve_module_fn_t *f = &m->functions[i];
        if (strlen(f->name) == fn_len && memcmp(f->name, fn, fn_len) == 0) {
            out->role = e->role;
            out->module = m;
            out->fn = f;
            out->path = e->path;
            return NERVE_OK;
        }
        if (len < sizeof have) {
            int n = snprintf(have + len, sizeof have - len, "%s%s", i ? ", " : "", f->name);
            if (n > 0)
                len += (size_t)n;
        }
    }
    return s_fail(err, errsize, NERVE_ENOENT,
                  "%s: module %s (%s) has no function '%.*s'; it has: %s", dotted, m->name, e->path,
                  (int)fn_len, fn, have);
}

static int s_resolve(nerve_modset_t *self, const nerve_role_t *want, const char *dotted,
                     nerve_resolved_t *out, char *err, size_t errsize)
{
    if (!self || !dotted || !out)
        return s_fail(err, errsize, NERVE_EINVAL, "resolve: NULL argument");
    size_t len = strlen(dotted);
    if (len > NERVE_NAME_MAX)
        return s_fail(err, errsize, NERVE_EINVAL, "'%.64s…' is longer than %d bytes", dotted,
                      NERVE_NAME_MAX);
    const char *dot1 = memchr(dotted, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - dotted)) : NULL;
    if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - dotted)))
        return s_fail(err, errsize, NERVE_EINVAL, "'%s' is not role.module.function", dotted);
    const char *module = dot1 + 1, *fn = dot2 + 1;
    size_t role_len = (size_t)(dot1 - dotted), module_len = (size_t)(dot2 - module);
    size_t fn_len = len - (size_t)(fn - dotted);

    nerve_role_t role;
    if (nerve_role_parse(dotted, role_len, &role) != NERVE_OK)
        return s_fail(err, errsize, NERVE_EINVAL,
                      "'%s': unknown role '%.*s' (expected beacons, rules, registers or "
                      "reactions)",
                      dotted, (int)role_len, dotted);
    if (!nerve_module_name_ok(module, module_len) || !nerve_module_name_ok(fn, fn_len))
        return s_fail(err, errsize, NERVE_EINVAL,
                      "'%s': module and function names are made of [A-Za-z0-9_-]", dotted);
    if (want && role != *want)
        return s_fail(err, errsize, NERVE_EINVAL, "'%s' is not a %s function", dotted,
                      nerve_role_name(*want) ? nerve_role_name(*want) : "(unknown role)");

    entry_t *e = NULL;
    char missing[MESSAGE_MAX];
    int rc = s_get(self, role, module, module_len, &e, missing, sizeof missing);
    if (!e) {
        if (rc == NERVE_ENOMEM)
            return s_fail(err, errsize, rc, "%s: out of memory", dotted);
        return s_fail(err, errsize, rc, "%s: %s", dotted, missing);
    }
    if (e->rc != NERVE_OK)
        return s_fail(err, errsize, e->rc, "%s: %s: %s", dotted, e->path,
                      e->reason ? e->reason : nerve_strerror(e->rc));
    return s_find_function(e, dotted, fn, fn_len, out, err, errsize);
}

int nerve_modset_resolve(nerve_modset_t *self, const char *dotted, nerve_resolved_t *out, char *err,
                         size_t errsize)
{
    return s_resolve(self, NULL, dotted, out, err, errsize);
}

int nerve_modset_resolve_role(nerve_modset_t *self, nerve_role_t role, const char *dotted,
                              nerve_resolved_t *out, char *err, size_t errsize)
{
    return s_resolve(self, &role, dotted, out, err, errsize);
}

int nerve_modset_load_file(nerve_modset_t *self, const char *path, const nerve_module_t **out,
                           char *err, size_t errsize)
{
    if (!self || !path || !out)
        return s_fail(err, errsize, NERVE_EINVAL, "load: NULL argument");
    size_t len = strlen(path);
    if (len >= PATH_MAX)
        return s_fail(err, errsize, NERVE_EINVAL, "load: path longer than %d bytes", PATH_MAX);

    /* <dir>/<role>/<name>.so: the place says what the file must be. */
    char role_path[PATH_MAX], dir_path[PATH_MAX];
    const char *base = strrchr(path, '/');
    if (!base || base == path)
        return s_fail(err, errsize, NERVE_EINVAL,
                      "%s: not in a role directory (<dir>/<role>/<name>.so)", path);
    memcpy(role_path, path, (size_t)(base - path));
    role_path[base - path] = '\0';
    base++;
    size_t base_len = strlen(base);
    if (base_len <= 3 || strcmp(base + base_len - 3, ".so") != 0 ||
        !nerve_module_name_ok(base, base_len - 3))
        return s_fail(err, errsize, NERVE_EINVAL,
                      "%s: not <name>.so with a name made of [A-Za-z0-9_-]", path);
    char *slash = strrchr(role_path, '/');
    const char *role_comp = slash ? slash + 1 : role_path;
    if (!slash)
        strcpy(dir_path, ".");
    else if (slash == role_path)
        strcpy(dir_path, "/");
    else {
        memcpy(dir_path, role_path, (size_t)(slash - role_path));
        dir_path[slash - role_path] = '\0';
    }
    nerve_role_t role;
    if (nerve_role_parse(role_comp, strlen(role_comp), &role) != NERVE_OK ||
        strcmp(role_comp, nerve_role_name(role)) != 0)
        return s_fail(err, errsize, NERVE_EINVAL,
                      "%s: not in a role directory (beacons, rules, registers or reactions)", path);

    for (entry_t *e = self->entries; e; e = e->next) {
        if (strcmp(e->path, path) == 0) {
            if (e->rc != NERVE_OK)
                return s_fail(err, errsize, e->rc, "%s: %s", path,
                              e->reason ? e->reason : nerve_strerror(e->rc));
            *out = e->object->desc;
            return NERVE_OK;
        }
    }

    int dir_fd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        return s_fail(err, errsize, errno == ENOENT ? NERVE_ENOENT : NERVE_EIO, "%s: %s: %s", path,
                      dir_path, strerror(errno));
    int role_fd = openat(dir_fd, role_comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (role_fd < 0) {
        int e = errno;
        close(dir_fd);
        return s_fail(err, errsize, e == ENOENT ? NERVE_ENOENT : NERVE_EIO, "%s: %s: %s", path,
                      role_path, strerror(e));
    }
    int fd = openat(role_fd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    int open_errno = errno;
    if (fd < 0 && open_errno == ENOENT) {
        close(role_fd);
        close(dir_fd);
        return s_fail(err, errsize, NERVE_ENOENT, "%s: no such file", path);
    }
    entry_t *e = s_entry_new(self, role, base, base_len - 3, path, false);
    if (!e) {
        if (fd >= 0)
            close(fd);
        close(role_fd);
        close(dir_fd);
        return s_fail(err, errsize, NERVE_ENOMEM, "%s: out of memory", path);
    }
    char reason[REASON_MAX];
    int rc;
    if (fd < 0 && open_errno == ELOOP)
        rc = s_fail(reason, sizeof reason, NERVE_EPERM, "refused: a symbolic link");
    else if (fd < 0)
        rc = s_fail(reason, sizeof reason, NERVE_EIO, "cannot open: %s", strerror(open_errno));
    else
        rc = s_load_fds(e, dir_fd, dir_path, role_fd, role_path, fd, reason, sizeof reason);
    close(role_fd);
    close(dir_fd);
    rc = s_entry_settle(e, rc, reason);
    if (rc != NERVE_OK)
        return s_fail(err, errsize, rc, "%s: %s", path, e->reason ? e->reason : reason);
    *out = e->object->desc;
    return NERVE_OK;
}

static int s_is_so(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 3 && strcmp(d->d_name + n - 3, ".so") == 0;
}

/*  Where load_all and load_role report a file they did not load: their
    callbacks differ only in that load_role's is also given the code. */
typedef struct report {
    void (*on_error)(void *arg, const char *path, const char *reason);
    void (*on_refused)(void *arg, const char *path, int rc, const char *reason);
    void *arg;
} report_t;

static void s_report(const report_t *r, const char *path, int rc, const char *reason)
{
    if (r->on_refused)
        r->on_refused(r->arg, path, rc, reason);
    else if (r->on_error)
        r->on_error(r->arg, path, reason);
}

/*  One file found by a listing: loads it (through the search, so the first
    copy along the path is the one) unless this pass has seen it. */
static int s_load_listed(nerve_modset_t *self, nerve_role_t role, const char *role_path,
                         const char *file, int *loaded, const report_t *report)
{
    char path[PATH_MAX], missing[MESSAGE_MAX];
    size_t name_len = strlen(file) - 3;
    if (!s_join(path, sizeof path, role_path, file) || !nerve_module_name_ok(file, name_len)) {
        s_report(report, path, NERVE_EINVAL, "not a module name: use [A-Za-z0-9_-] before .so");
        return NERVE_OK;
    }
    entry_t *e = NULL;
    int rc = s_get(self, role, file, name_len, &e, missing, sizeof missing);
    if (!e) {
        if (rc == NERVE_ENOMEM)
            return rc;
        /* gone between the listing and the load */
        s_report(report, path, rc, missing);
        return NERVE_OK;
    }
    if (e->pass == self->pass)
        return NERVE_OK;
    e->pass = self->pass;
    if (e->rc == NERVE_OK)
        (*loaded)++;
    else
        s_report(report, e->path, e->rc, e->reason ? e->reason : nerve_strerror(e->rc));
    return NERVE_OK;
}

/*  Lists <dir>/<role>/ for each directory and each role from `first` to
    `last`, and loads what it finds. Returns the number loaded or
    NERVE_ENOMEM. */
static int s_load_roles(nerve_modset_t *self, nerve_role_t first, nerve_role_t last,
                        const report_t *report)
{
    /* Each module is counted or reported once per call, however many
       directories hold a copy. */
    self->pass++;
    int loaded = 0, rc = NERVE_OK;
    for (size_t i = 0; i < self->ndirs && rc == NERVE_OK; i++) {
        for (int r = (int)first; r <= (int)last && rc == NERVE_OK; r++) {
            char role_path[PATH_MAX], reason[REASON_MAX];
            s_join(role_path, sizeof role_path, self->dirs[i], s_role_names[r]);
            struct dirent **names = NULL;
            int n = scandir(role_path, &names, s_is_so, alphasort);
            if (n < 0) {
                /* No such directory: nothing of that role there. */
                if (errno != ENOENT && errno != ENOTDIR) {
                    s_fail(reason, sizeof reason, NERVE_EIO, "cannot list: %s", strerror(errno));
                    s_report(report, role_path, NERVE_EIO, reason);
                }
                continue;
            }
            for (int k = 0; k < n; k++) {
                if (rc == NERVE_OK)
                    rc = s_load_listed(self, (nerve_role_t)r, role_path, names[k]->d_name, &loaded,
                                       report);
                free(names[k]);
            }
            free(names);
        }
    }
    return rc != NERVE_OK ? rc : loaded;
}

int nerve_modset_load_all(nerve_modset_t *self,
                          void (*on_error)(void *arg, const char *path, const char *reason),
                          void *arg)
{
    if (!self)
        return NERVE_EINVAL;
    report_t report = {.on_error = on_error, .arg = arg};
    return s_load_roles(self, NERVE_ROLE_BEACONS, NERVE_ROLE_REACTIONS, &report);
}

int nerve_modset_load_role(nerve_modset_t *self, nerve_role_t role,
                           void (*on_error)(void *arg, const char *path, int rc,
                                            const char *reason),
                           void *arg)
{
    if (!self || !nerve_role_name(role))
        return NERVE_EINVAL;
    report_t report = {.on_refused = on_error, .arg = arg};
    return s_load_roles(self, role, role, &report);
}

void nerve_modset_foreach(nerve_modset_t *self,
                          void (*fn)(void *arg, const nerve_module_t *m, const char *path),
                          void *arg)
{
    if (!self || !fn)
        return;
    for (entry_t *e = self->entries; e; e = e->next) {
        if (e->rc == NERVE_OK)
            fn(arg, e->object->desc, e->path);
    }
}

const char *nerve_modset_path_string(nerve_modset_t *self)
{
    return self && self->path_string ? self->path_string : "";
}
