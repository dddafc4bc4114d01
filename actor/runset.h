/*  runset.h — what the actor's reactions run with: its module set and its
    secrets, loaded together and replaced together.

    The actor resolves every reaction's `fn` from one runset and fills the
    job's {{secret.NAME}} args from the same one. It loads a runset at
    start and a new one beside the running one on every reload (SIGHUP):

      - every <dir>/reactions/<name>.so along the `modules` path is loaded
        and checked at once, not lazily on first use (the first directory
        holding a name wins, as for any lookup), so a broken module fails
        the reload that brings it rather than a reaction an hour later;
      - the `secrets:` file is read again.

    The set is closed: a reaction names a module of its runset or is
    refused, even when a file of that name has appeared on disk since. The
    modules an actor runs change only when it reloads, and all at once, so
    a tree being copied in is never half in use.

    A job holds a reference to the runset it was resolved from, so the code
    it runs and the secret strings in its args stay mapped and allocated
    until it is done, however many reloads happen meanwhile (the manager
    keeps its old ruleset alive for its local reactions the same way). The
    last runset_unref(), on whichever thread, unloads the modules no other
    runset holds (running their fini()) and wipes the secrets.

    Threading: runset_load() and runset_resolve() belong to one thread (the
    actor's loop); runset_ref() and runset_unref() may be called from any.
*/
#ifndef NERVE_ACTOR_RUNSET_H
#define NERVE_ACTOR_RUNSET_H

#include "secrets.h"

#include <stddef.h>

#include <nerve/module.h>

typedef struct runset runset_t;

/*  Loads a runset: every reactions module along `dirs` (ndirs entries,
    copied) and the secrets file `secrets_path` (NULL: none). Returns 0
    with *out set when everything loaded. Otherwise returns a negative
    nerve_err with a one-line reason in err, and:
      - *out NULL when nothing usable was made: out of memory, a module
        directory the loader refuses, or the secrets file refused (err
        names the file and why);
      - *out set when only modules were refused (each is logged with its
        file and reason; err names them, as room allows): *out holds the
        modules that did load, and answers a reaction for a refused one
        with that module's reason. The caller may run it (at start, when
        there is nothing else) or drop it (a reload keeps the old one).
    A role directory that cannot be listed (other than for being absent)
    counts as a refused module. The caller owns the reference in *out. */
int runset_load(const char *const *dirs, size_t ndirs, const char *secrets_path, runset_t **out,
                char *err, size_t errsize);

/*  Takes another reference; returns self. Any thread. */
runset_t *runset_ref(runset_t *self);

/*  Drops a reference and sets *self to NULL; the last one frees the
    runset. Any thread; safe on NULL and twice. */
void runset_unref(runset_t **self);

/*  Resolves `dotted` (reactions.module.function) without touching the
    disk. Returns 0 and fills *out (valid while a reference is held), or a
    negative nerve_err with a one-line reason in err naming the function:
      NERVE_EINVAL   not reactions.module.function (nerve_modset_resolve_role)
      NERVE_ENOENT   no such module in this runset (it says how a new one is
                     taken in), or no such function in the module
      other          the module was refused when the runset loaded: its
                     code (NERVE_EABI, NERVE_EPERM, …) and reason. */
int runset_resolve(runset_t *self, const char *dotted, nerve_resolved_t *out, char *err,
                   size_t errsize);

/*  The secrets (NULL when there is no secrets file), for secrets_resolve();
    the strings it puts into args live as long as the runset. */
const secrets_t *runset_secrets(const runset_t *self);

/*  Reactions modules loaded, and refused. */
size_t runset_loaded(const runset_t *self);
size_t runset_refused(const runset_t *self);

/*  The module path, "dir1:dir2", for messages. */
const char *runset_path(const runset_t *self);

#endif
