/*  beacons/proc.c — beacons.proc: is a process running, and how many.

        running   value = the number of matching processes (0: down)

    Two ways to say which process:
    - `name`: every process whose command name (<proc>/<pid>/comm, what ps
      -o comm shows) equals it. The kernel keeps the first 15 bytes of a
      name, so only those are compared.
    - `pidfile`: the pid written in that file is alive (<proc>/<pid>
      exists); with `name` too, it must also have that name, so a pid
      recycled by another program does not count. A missing pidfile means
      the service is down (value 0), not that the probe failed; an
      unreadable or garbled one fails the run.
    Event data: {value, name?, pidfile?, pids: [first 32 pids]}. Arg `proc`
    (default /proc).
*/
#include "probe.h"

#include <ctype.h>
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

#define S_FN            "beacons.proc.running"
#define S_COMM_MAX      15 /* TASK_COMM_LEN - 1 */
#define S_PIDS_REPORTED 32

typedef struct proc_state {
    char proc[PATH_MAX];
    char name[S_COMM_MAX + 1]; /* truncated as the kernel does */
    char full_name[256];       /* as configured, for the event */
    char pidfile[PATH_MAX];
    bool by_name, by_pidfile;
} proc_state_t;

static int s_prepare(const msgpack_object *params, void **prepared, char *err, size_t errsize)
{
    static const char *const keys[] = {"name", "pidfile", "proc", NULL};
    proc_state_t *self = calloc(1, sizeof *self);
    if (!self)
        return NERVE_ENOMEM;
    int rc = probe_check_keys(params, keys, S_FN, err, errsize);
    rc = rc ? rc
            : probe_param_str(params, "proc", "/proc", self->proc, sizeof self->proc - 64, NULL,
                              S_FN, err, errsize);
    rc = rc ? rc
            : probe_param_str(params, "name", NULL, self->full_name, sizeof self->full_name,
                              &self->by_name, S_FN, err, errsize);
    rc = rc ? rc
            : probe_param_str(params, "pidfile", NULL, self->pidfile, sizeof self->pidfile,
                              &self->by_pidfile, S_FN, err, errsize);
    if (rc == 0 && !self->by_name && !self->by_pidfile) {
        snprintf(err, errsize, "%s: needs 'name' (a process name) or 'pidfile' (a path)", S_FN);
        rc = NERVE_EINVAL;
    }
    if (rc != 0) {
        free(self);
        return rc;
    }
    memcpy(self->name, self->full_name, S_COMM_MAX); /* the kernel's cut */
    self->name[S_COMM_MAX] = '\0';
    *prepared = self;
    return 0;
}

static void s_release(void *prepared)
{
    free(prepared);
}

/*  True if <proc>/<pid>/comm names our process. A process that vanished
    between listing and reading simply does not match. */
static bool s_comm_matches(const proc_state_t *self, const char *pid)
{
    char rel[64], path[PATH_MAX], comm[64];
    snprintf(rel, sizeof rel, "%s/comm", pid);
    ssize_t n = probe_read_file(self->proc, rel, path, sizeof path, comm, sizeof comm);
    if (n <= 0)
        return false;
    if (comm[n - 1] == '\n')
        comm[--n] = '\0';
    return strcmp(comm, self->name) == 0;
}

static bool s_numeric(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

static int s_by_name(nerve_beacon_call_t *call, const proc_state_t *self, long *pids, size_t *count)
{
    DIR *dir = opendir(self->proc);
    if (!dir)
        return probe_fail(call, NERVE_EIO, "%s: %s", self->proc, strerror(errno));
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (!s_numeric(de->d_name) || strlen(de->d_name) > 20 || !s_comm_matches(self, de->d_name))
            continue;
        if (*count < S_PIDS_REPORTED)
            pids[*count] = strtol(de->d_name, NULL, 10);
        (*count)++;
    }
    closedir(dir);
    return 0;
}

static int s_by_pidfile(nerve_beacon_call_t *call, const proc_state_t *self, long *pids,
                        size_t *count, bool *missing)
{
    char text[64], path[PATH_MAX];
    int fd = open(self->pidfile, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        *missing = true; /* not started, or stopped cleanly: down */
        return 0;
    }
    if (fd < 0)
        return probe_fail(call, NERVE_EIO, "%s: %s", self->pidfile, strerror(errno));
    ssize_t n = read(fd, text, sizeof text - 1);
    int e = errno;
    close(fd);
    if (n < 0)
        return probe_fail(call, NERVE_EIO, "%s: %s", self->pidfile, strerror(e));
    text[n] = '\0';
    char *end;
    errno = 0;
    long pid = strtol(text, &end, 10);
    while (*end == '\n' || *end == ' ' || *end == '\r' || *end == '\t')
        end++;
    if (errno || end == text || *end || pid <= 0 || pid > 0x7fffffff)
        return probe_fail(call, NERVE_EPARSE, "%s: expected a process id, got \"%.20s\"",
                          self->pidfile, text);
    char pidstr[24];
    snprintf(pidstr, sizeof pidstr, "%ld", pid);
    if (snprintf(path, sizeof path, "%s/%s", self->proc, pidstr) >= (int)sizeof path)
        return probe_fail(call, NERVE_ERANGE, "%.200s: path too long", self->proc);
    struct stat st;
    if (stat(path, &st) != 0)
        return 0; /* stale pidfile: down */
    if (self->by_name && !s_comm_matches(self, pidstr))
        return 0; /* the pid now belongs to someone else */
    pids[0] = pid;
    *count = 1;
    return 0;
}

static int s_running(nerve_beacon_call_t *call)
{
    proc_state_t *self = call->prepared;
    long pids[S_PIDS_REPORTED];
    size_t count = 0;
    bool missing = false;
    int rc = self->by_pidfile ? s_by_pidfile(call, self, pids, &count, &missing)
                              : s_by_name(call, self, pids, &count);
    if (rc != 0)
        return rc;
    char buf[2048];
    nerve_data_t d;
    nerve_data_init(&d, buf, sizeof buf);
    nerve_data_int(&d, "value", (int64_t)count);
    if (self->by_name)
        nerve_data_str(&d, "name", self->full_name);
    if (self->by_pidfile) {
        nerve_data_str(&d, "pidfile", self->pidfile);
        if (missing)
            nerve_data_bool(&d, "pidfile_missing", true);
    }
    nerve_data_array_begin(&d, "pids");
    for (size_t i = 0; i < count && i < S_PIDS_REPORTED; i++)
        nerve_data_int(&d, NULL, pids[i]);
    nerve_data_array_end(&d);
    return probe_emit(call, call->tag, &d);
}

static const nerve_module_fn_t s_functions[] = {
    {"running",
     {.beacon = s_running},
     "processes by name or pidfile; value = how many run (0: down)",
     s_prepare,
     s_release},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_BEACONS, "proc", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
