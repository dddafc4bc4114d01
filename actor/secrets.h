/*  secrets.h — the values behind {{secret.NAME}} in reaction args.

    A rule may write a lone '{{secret.NAME}}' as a reaction arg. The manager
    does not render it: the reaction carries a msgpack ext value of type
    NERVE_EXT_SECRET whose payload is NAME (<nerve/value.h>), so the value
    itself never travels on the bus and never shows in the tap, the
    manager's logs or a result. The actor that runs the reaction swaps it
    for the value from its own secrets file just before the job is queued.

    The file (`secrets:` in the actor's config) is a YAML map of names to
    scalar values:

        db_password: "hunter2"
        api_token: abc123

    It must be a regular file owned by the actor's user or root and
    readable by nobody else (mode 0600 or 0400): anything looser is refused
    with the reason, and the actor does not start. Names are 1–128 of
    [A-Za-z0-9_.-], what the manager's templates accept. The file is read
    once, at start; the values live in memory the store owns and are wiped
    when it is destroyed.

    Threading: secrets_resolve() may be called from one thread at a time;
    the resolved strings point into the store, which must outlive every
    job that uses them.
*/
#ifndef NERVE_ACTOR_SECRETS_H
#define NERVE_ACTOR_SECRETS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#define SECRETS_MAX      1024  /* entries in one file */
#define SECRETS_FILE_MAX 65536 /* bytes */

typedef struct secrets secrets_t;

/*  Reads and checks the file. Returns NULL with one line in err ("PATH:
    readable by group or others (mode 0644); chmod 600 it", "PATH:3:1:
    …") on any error. */
secrets_t *secrets_load(const char *path, char *err, size_t errsize);

/*  Wipes the values and frees the store; *self becomes NULL. Safe on
    NULL and twice. */
void secrets_destroy(secrets_t **self);

/*  Number of secrets held (0 for NULL). */
size_t secrets_count(const secrets_t *self);

/*  True if obj holds a NERVE_EXT_SECRET value anywhere inside. */
bool secrets_wanted(const msgpack_object *obj);

/*  Replaces every NERVE_EXT_SECRET value inside *obj, in place, by a
    string that points into the store (no copy is made). `self` may be
    NULL (no secrets file). Returns 0, or NERVE_ENOENT with the reason in
    `why` (a name the file does not hold, or no file at all) and *obj
    partly resolved. The reason names the secret, never a value. */
int secrets_resolve(const secrets_t *self, msgpack_object *obj, char *why, size_t whysize);

#endif
