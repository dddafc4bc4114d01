/*  allow.h — what reactions on this actor may touch: the `allow:` policy.

    An actor runs whatever its publisher tells it to, so the commands,
    services and files a reaction may use are listed in the actor's own
    config and nowhere else:

        allow:
          commands: [/usr/local/bin/deploy, /bin/echo]   # exact absolute paths
          services: [nginx.service, app@1.service]        # exact unit names
          paths: [/etc/app, /srv/www]                     # directory prefixes

    Reaction functions ask through the host API, allowed(host, kind, what);
    the answer comes from actor_allow_check(). Everything not listed is
    refused; an empty list refuses everything of that kind.

    Threading: an actor_allow_t is filled before the worker threads start and
    read-only afterwards, so checks may run on any thread at once.
*/
#ifndef NERVE_ACTOR_ALLOW_H
#define NERVE_ACTOR_ALLOW_H

#include <stdbool.h>
#include <stddef.h>

typedef struct actor_allow {
    char **commands; /* absolute paths, compared exactly */
    size_t ncommands;
    char **services; /* unit names, compared exactly */
    size_t nservices;
    char **paths; /* directory prefixes, canonical (realpath) when they exist */
    size_t npaths;
} actor_allow_t;

/*  Adds one entry of `kind` ("commands", "services" or "paths"), checking
    its form: a command is an absolute path without "." or ".." segments;
    a service looks like a unit name (actor_unit_name_ok); a path is
    absolute, and is stored as its realpath when it exists (so a prefix
    written through a symlink, /var/run → /run, still matches), else with
    trailing slashes removed. Returns 0, NERVE_EINVAL (the reason in why),
    or NERVE_ENOMEM. */
int actor_allow_add(actor_allow_t *self, const char *kind, const char *value, char *why,
                    size_t whysize);

/*  Answers whether `what` may be used for `kind`:
      commands  `what` equals a listed path exactly (no normalisation: a
                reaction naming /bin/../bin/sh is refused even if /bin/sh
                is listed);
      services  `what` equals a listed unit name and looks like one;
      paths     `what` is absolute, has no "." or ".." segment, names a
                file (not a directory: no trailing '/'), and the realpath
                of its directory is a listed prefix or lies under one
                (component-wise: /srv/www allows /srv/www/a/x, not
                /srv/wwwx/y). The file itself is not resolved: writers
                replace it with rename(2), which never follows it.
    Returns 0 when allowed, NERVE_EPERM otherwise with a one-line reason
    in why (why may be NULL). Unknown kinds are refused. */
int actor_allow_check(const actor_allow_t *self, const char *kind, const char *what, char *why,
                      size_t whysize);

/*  True if `name` looks like a systemd unit name: 1–255 bytes of letters,
    digits and : _ . @ - \ (systemd's escapes), not starting with '-' or
    '.'. No '/', no space, no shell metacharacter can pass. */
bool actor_unit_name_ok(const char *name);

/*  Frees every list; the struct is empty afterwards. Safe twice. */
void actor_allow_free(actor_allow_t *self);

#endif
