/*  nerve/paths.h — where nerve keeps things on one machine by default.

    $NERVE_HOME (default /var/lib/nerve for root, ~/.nerve otherwise) holds
    data/ (LMDB), rules/, modules/, keys/ and run/ — the 0700 directory of
    the IPC sockets (publisher.sock, control.sock, tap.sock). Daemons refuse
    a run directory that group or others can write, since whoever can
    connect to those sockets can drive the manager.
*/
#ifndef NERVE_PATHS_H
#define NERVE_PATHS_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  Writes $NERVE_HOME (or its default) into buf. Returns 0 or NERVE_ERANGE. */
int nerve_home(char *buf, size_t size);

/*  Writes "$NERVE_HOME/<name>" into buf. */
int nerve_home_path(const char *name, char *buf, size_t size);

/*  Creates `dir` and its parents as needed (mode 0700 for the last one),
    and checks that it is not writable by group or others. Returns 0,
    NERVE_EIO (with errno) or NERVE_EPERM (unsafe mode; the message says
    which). err may be NULL. */
int nerve_private_dir(const char *dir, char *err, size_t errsize);

/*  For an "ipc://PATH" endpoint, makes PATH's directory private as above.
    Other transports: 0. */
int nerve_ipc_dir_prepare(const char *endpoint, char *err, size_t errsize);

/*  The default module search path: $NERVE_HOME/modules, <dir of the
    running executable>/modules when it exists (a build tree), and the
    installed system directory. Writes up to `max` malloc'd strings into
    dirs and returns how many (the caller frees them). */
size_t nerve_default_module_dirs(char **dirs, size_t max);

/*  True if `name` is 1–max bytes of letters, digits and . _ - : @ — the
    names that become topic and tag segments (actor ids, groups, hosts). */
bool nerve_name_ok(const char *name, size_t max);

/*  This machine's host name (cached), for ids. */
const char *nerve_hostname(void);

#ifdef __cplusplus
}
#endif
#endif
