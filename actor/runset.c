/*  runset.c — the actor's module set and secrets, loaded together (see
    runset.h).

    nerve_modset_load_role() loads every reactions module along the path,
    and nothing of the other roles: an actor has no business running the
    init() of rules or beacon modules. It reports each file it refused
    with the file, the loader's code and the reason.

    The outcome for every name is also kept here, so that runset_resolve()
    passes to the loader only names it holds loaded. Asked about a name it
    has never seen, the loader would look on the disk, and the set would
    not be closed.
*/
#include "runset.h"

#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/wire.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REASON_MAX 1024
#define ROLE_DIR   "reactions"

/*  One name found under a reactions/ directory. */
typedef struct module_state {
    char *name;
    int rc;    /* 0: loaded; otherwise the loader's code for refusing it… */
    char *why; /* …and "<file>: <reason>" */
} module_state_t;

struct runset {
    atomic_size_t refs;
    nerve_modset_t *mods;
    secrets_t *secrets;
    module_state_t *modules; /* every name the loader reported */
    size_t nmodules, capmodules;
    size_t loaded, refused;
};

/* ----------------------------------------------------------------- names */

/*  Splits "reactions.<module>.<fn>" exactly as the loader checks it. False
    for anything the loader would refuse before it looks for the module
    (too long, not three parts, another role, a bad name): such names can
    go to the loader, which answers them without touching the disk. */
static bool s_split(const char *dotted, const char **module, size_t *module_len)
{
    size_t len = strlen(dotted);
    if (len > NERVE_NAME_MAX)
        return false;
    const char *dot1 = strchr(dotted, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot2 || strchr(dot2 + 1, '.'))
        return false;
    if ((size_t)(dot1 - dotted) != strlen(ROLE_DIR) ||
        memcmp(dotted, ROLE_DIR, strlen(ROLE_DIR)) != 0)
        return false;
    *module = dot1 + 1;
    *module_len = (size_t)(dot2 - *module);
    return nerve_module_name_ok(*module, *module_len) &&
           nerve_module_name_ok(dot2 + 1, len - (size_t)(dot2 + 1 - dotted));
}

static module_state_t *s_find(runset_t *self, const char *name, size_t len)
{
    for (size_t i = 0; i < self->nmodules; i++)
        if (strlen(self->modules[i].name) == len && memcmp(self->modules[i].name, name, len) == 0)
            return &self->modules[i];
    return NULL;
}

/* --------------------------------------------------------------- loading */

/*  Appends "; text" (or "text" first) to the refusal summary. */
static void s_note(char *sum, size_t size, size_t *len, const char *text)
{
    if (*len >= size)
        return;
    int n = snprintf(sum + *len, size - *len, "%s%s", *len ? "; " : "", text);
    if (n > 0)
        *len += (size_t)n < size - *len ? (size_t)n : size - *len;
}

static int s_record(runset_t *self, const char *name, int rc, const char *why)
{
    if (self->nmodules == self->capmodules) {
        size_t cap = self->capmodules ? self->capmodules * 2 : 16;
        module_state_t *m = realloc(self->modules, cap * sizeof *m);
        if (!m)
            return NERVE_ENOMEM;
        self->modules = m;
        self->capmodules = cap;
    }
    module_state_t *m = &self->modules[self->nmodules];
    m->name = strdup(name);
    m->rc = rc;
    m->why = rc ? strdup(why) : NULL;
    if (!m->name || (rc && !m->why)) {
        free(m->name);
        free(m->why);
        return NERVE_ENOMEM;
    }
    self->nmodules++;
    if (rc)
        self->refused++;
    else
        self->loaded++;
    return 0;
}

/*  What one runset_load() gathers from the loader's reports. */
typedef struct loading {
    runset_t *self;
    char sum[2048]; /* the refusals, for err */
    size_t sumlen;
    int rc; /* NERVE_ENOMEM once a name could not be kept */
} loading_t;

/*  The loader did not load `path`: a module refused (kept, with its code
    and reason, so a reaction for it is answered with them), a role
    directory it could not list (counted), or a file that cannot be a
    module name (ignored, as nothing could call it). */
static void s_on_refused(void *arg, const char *path, int rc, const char *reason)
{
    loading_t *l = arg;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strlen(base);
    bool file = len > 3 && strcmp(base + len - 3, ".so") == 0;
    if (file && !nerve_module_name_ok(base, len - 3)) {
        NERVE_WARN("actor", "%s: ignored: %s", path, reason);
        return;
    }
    char text[REASON_MAX];
    snprintf(text, sizeof text, "%s: %s", path, reason);
    NERVE_ERROR("actor", "reactions module%s refused: %s", file ? "" : "s", text);
    s_note(l->sum, sizeof l->sum, &l->sumlen, text);
    if (!file) {
        l->self->refused++;
        return;
    }
    char name[NERVE_NAME_MAX + 1];
    snprintf(name, sizeof name, "%.*s", (int)(len - 3), base);
    if (l->rc == 0 && s_record(l->self, name, rc, text) != 0)
        l->rc = NERVE_ENOMEM;
}

static void s_on_loaded(void *arg, const nerve_module_t *m, const char *path)
{
    loading_t *l = arg;
    if (m->role == NERVE_ROLE_REACTIONS && l->rc == 0 && s_record(l->self, m->name, 0, NULL) != 0)
        l->rc = NERVE_ENOMEM;
}

static void s_free(runset_t *self)
{
    nerve_modset_destroy(&self->mods);
    secrets_destroy(&self->secrets);
    for (size_t i = 0; i < self->nmodules; i++) {
        free(self->modules[i].name);
        free(self->modules[i].why);
    }
    free(self->modules);
    free(self);
}

int runset_load(const char *const *dirs, size_t ndirs, const char *secrets_path, runset_t **out,
                char *err, size_t errsize)
{
    *out = NULL;
    runset_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errsize, "out of memory");
        return NERVE_ENOMEM;
    }
    atomic_init(&self->refs, 1);
    /*  The secrets first: a file refused there refuses everything, and
        reading it costs less than loading modules. */
    if (secrets_path && !(self->secrets = secrets_load(secrets_path, err, errsize))) {
        s_free(self);
        return NERVE_EINVAL;
    }
    if (!(self->mods = nerve_modset_new(dirs, ndirs))) {
        snprintf(err, errsize, "cannot use the module path (see the log above)");
        s_free(self);
        return NERVE_EINVAL;
    }
    loading_t l = {.self = self};
    int rc = nerve_modset_load_role(self->mods, NERVE_ROLE_REACTIONS, s_on_refused, &l);
    if (rc >= 0)
        nerve_modset_foreach(self->mods, s_on_loaded, &l);
    if (rc >= 0 && l.rc != 0)
        rc = l.rc;
    if (rc < 0) {
        snprintf(err, errsize, "loading modules: %s", nerve_strerror(rc));
        s_free(self);
        return rc;
    }
    *out = self;
    if (self->refused == 0)
        return 0;
    snprintf(err, errsize, "%zu reactions module%s refused: %s", self->refused,
             self->refused == 1 ? "" : "s", l.sum);
    return NERVE_EMODULE;
}

runset_t *runset_ref(runset_t *self)
{
    if (self)
        atomic_fetch_add_explicit(&self->refs, 1, memory_order_relaxed);
    return self;
}

void runset_unref(runset_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    runset_t *self = *self_p;
    *self_p = NULL;
    /*  acq_rel: whatever the other holders did with the runset happens
        before it is freed. */
    if (atomic_fetch_sub_explicit(&self->refs, 1, memory_order_acq_rel) == 1)
        s_free(self);
}

int runset_resolve(runset_t *self, const char *dotted, nerve_resolved_t *out, char *err,
                   size_t errsize)
{
    const char *module;
    size_t module_len;
    if (!self || !dotted || !s_split(dotted, &module, &module_len))
        return nerve_modset_resolve_role(self ? self->mods : NULL, NERVE_ROLE_REACTIONS, dotted,
                                         out, err, errsize);
    const module_state_t *m = s_find(self, module, module_len);
    if (!m) {
        const char *path = nerve_modset_path_string(self->mods);
        snprintf(err, errsize,
                 "%s: no module " ROLE_DIR "/%.*s.so was loaded from %s (the actor loads its "
                 "modules at start and on reload: SIGHUP nerve-actor to take in a new one)",
                 dotted, (int)module_len, module, *path ? path : "(empty module path)");
        return NERVE_ENOENT;
    }
    if (m->rc != 0) {
        snprintf(err, errsize, "%s: %s", dotted, m->why);
        return m->rc;
    }
    return nerve_modset_resolve_role(self->mods, NERVE_ROLE_REACTIONS, dotted, out, err, errsize);
}

const secrets_t *runset_secrets(const runset_t *self)
{
    return self ? self->secrets : NULL;
}

size_t runset_loaded(const runset_t *self)
{
    return self ? self->loaded : 0;
}

size_t runset_refused(const runset_t *self)
{
    return self ? self->refused : 0;
}

const char *runset_path(const runset_t *self)
{
    return self ? nerve_modset_path_string(self->mods) : "";
}
