/*  allow.c — the actor's `allow:` policy (see allow.h).

    Checks are string comparisons on purpose: a command or unit is allowed
    when it is written exactly as the operator wrote it, so no clever
    spelling (/bin/./sh, a relative name, a trailing space) can reach
    something else. Paths are the one place where the file system must be
    asked, because a directory may be a symlink out of the allowed tree:
    the directory is resolved with realpath(3) and the result compared
    component-wise with the canonical prefixes.
*/
#include "allow.h"

#include <nerve/error.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_say(char *why, size_t whysize, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int s_say(char *why, size_t whysize, int rc, const char *fmt, ...)
{
    if (why && whysize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whysize, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/*  True if the absolute path has a "." or ".." segment (or an empty one
    other than the leading '/': "//" hides nothing, but is refused so that
    exact matches stay exact). */
static bool s_has_dot_segment(const char *path)
{
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return true;
        p += n;
    }
    return false;
}

static bool s_has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

bool actor_unit_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 255 || name[0] == '-' || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == ':' || c == '_' || c == '.' || c == '@' || c == '-' || c == '\\';
        if (!ok)
            return false;
    }
    return true;
}

static int s_push(char ***list, size_t *n, const char *value)
{
    char *copy = strdup(value);
    char **grown = copy ? realloc(*list, (*n + 1) * sizeof **list) : NULL;
    if (!grown) {
        free(copy);
        return NERVE_ENOMEM;
    }
    grown[(*n)++] = copy;
    *list = grown;
    return 0;
}

int actor_allow_add(actor_allow_t *self, const char *kind, const char *value, char *why,
                    size_t whysize)
{
    if (!value || !*value)
        return s_say(why, whysize, NERVE_EINVAL, "an empty entry allows nothing");
    if (s_has_control(value))
        return s_say(why, whysize, NERVE_EINVAL, "control characters are not allowed");
    if (strcmp(kind, "commands") == 0) {
        if (value[0] != '/' || s_has_dot_segment(value) || value[strlen(value) - 1] == '/')
            return s_say(why, whysize, NERVE_EINVAL,
                         "command '%s' must be an absolute path to a file, without '.' or "
                         "'..' segments",
                         value);
        return s_push(&self->commands, &self->ncommands, value);
    }
    if (strcmp(kind, "services") == 0) {
        if (!actor_unit_name_ok(value))
            return s_say(why, whysize, NERVE_EINVAL,
                         "service '%s' is not a unit name (letters, digits, ':_.@-\\', not "
                         "starting with '-' or '.')",
                         value);
        return s_push(&self->services, &self->nservices, value);
    }
    if (strcmp(kind, "paths") == 0) {
        if (value[0] != '/' || s_has_dot_segment(value))
            return s_say(why, whysize, NERVE_EINVAL,
                         "path '%s' must be an absolute directory without '.' or '..' segments",
                         value);
        char canon[PATH_MAX];
        if (!realpath(value, canon)) {
            if (strlen(value) >= sizeof canon)
                return s_say(why, whysize, NERVE_EINVAL, "path '%.64s…' is too long", value);
            snprintf(canon, sizeof canon, "%s", value);
            size_t n = strlen(canon);
            while (n > 1 && canon[n - 1] == '/')
                canon[--n] = '\0';
        }
        return s_push(&self->paths, &self->npaths, canon);
    }
    return s_say(why, whysize, NERVE_EINVAL,
                 "unknown allow kind '%s' (expected commands, services or paths)", kind);
}

static bool s_listed(char *const *list, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], what) == 0)
            return true;
    return false;
}

/*  True if `dir` (canonical) is `prefix` or below it. */
static bool s_under(const char *dir, const char *prefix)
{
    size_t n = strlen(prefix);
    if (n == 1 && prefix[0] == '/')
        return true;
    return strncmp(dir, prefix, n) == 0 && (dir[n] == '\0' || dir[n] == '/');
}

static int s_check_path(const actor_allow_t *self, const char *what, char *why, size_t whysize)
{
    size_t len = strlen(what);
    if (what[0] != '/')
        return s_say(why, whysize, NERVE_EPERM, "path '%.200s' is not absolute", what);
    if (len >= PATH_MAX)
        return s_say(why, whysize, NERVE_EPERM, "path '%.64s…' is too long", what);
    if (s_has_dot_segment(what))
        return s_say(why, whysize, NERVE_EPERM, "path '%.200s' has a '.' or '..' segment", what);
    if (what[len - 1] == '/')
        return s_say(why, whysize, NERVE_EPERM, "path '%.200s' names a directory, not a file",
                     what);
    char dir[PATH_MAX], real[PATH_MAX];
    memcpy(dir, what, len + 1);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (!realpath(dir, real))
        return s_say(why, whysize, NERVE_EPERM, "directory of '%.200s' cannot be resolved: %s",
                     what, strerror(errno));
    for (size_t i = 0; i < self->npaths; i++)
        if (s_under(real, self->paths[i]))
            return 0;
    if (strcmp(real, dir) != 0)
        return s_say(why, whysize, NERVE_EPERM,
                     "path '%.200s' is not under allow.paths (its directory is really %.200s)",
                     what, real);
    return s_say(why, whysize, NERVE_EPERM, "path '%.200s' is not under allow.paths", what);
}

int actor_allow_check(const actor_allow_t *self, const char *kind, const char *what, char *why,
                      size_t whysize)
{
    if (!self || !kind || !what || !*what)
        return s_say(why, whysize, NERVE_EPERM, "nothing to check");
    if (s_has_control(what))
        return s_say(why, whysize, NERVE_EPERM, "'%s' refused: it contains control characters",
                     kind);
    if (strcmp(kind, "commands") == 0) {
        if (what[0] != '/')
            return s_say(why, whysize, NERVE_EPERM, "command '%.200s' is not an absolute path",
                         what);
        if (!s_listed(self->commands, self->ncommands, what))
            return s_say(why, whysize, NERVE_EPERM, "command '%.200s' is not in allow.commands",
                         what);
        return 0;
    }
    if (strcmp(kind, "services") == 0) {
        if (!actor_unit_name_ok(what))
            return s_say(why, whysize, NERVE_EPERM, "service '%.200s' is not a unit name", what);
        if (!s_listed(self->services, self->nservices, what))
            return s_say(why, whysize, NERVE_EPERM, "service '%.200s' is not in allow.services",
                         what);
        return 0;
    }
    if (strcmp(kind, "paths") == 0)
        return s_check_path(self, what, why, whysize);
    return s_say(why, whysize, NERVE_EPERM, "unknown kind '%.40s'", kind);
}

static void s_free_list(char ***list, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*list)[i]);
    free(*list);
    *list = NULL;
    *n = 0;
}

void actor_allow_free(actor_allow_t *self)
{
    if (!self)
        return;
    s_free_list(&self->commands, &self->ncommands);
    s_free_list(&self->services, &self->nservices);
    s_free_list(&self->paths, &self->npaths);
}
