/*  reactions/spawn.h — running a program for the built-in reactions that
    need one (reactions.cmd, reactions.service).

    Each reaction module is its own .so built from one .c file, so the two
    that start processes share this header of static functions instead of
    a library. What it guarantees, because an actor runs whatever a rule
    tells it to:

      - no shell, ever: the program is posix_spawn()ed by absolute path
        with the argv given, so "; rm -rf /" or "$(…)" is just an argument;
      - a clean start: stdin is /dev/null, stdout and stderr go to one pipe,
        every other descriptor is closed, signal mask and dispositions are
        reset, and the environment is only what spawn_env_build() makes;
      - its own process group, so a timeout kills the program and whatever
        it started (SIGKILL to the group);
      - bounded output: the first `cap` bytes are kept, the rest is read
        and counted but dropped, so a chatty program never blocks on a
        full pipe;
      - bounded time: the program is killed at the timeout. After it exits,
        a descendant still holding the pipe gets 200 ms before the reaction
        stops reading (it is not killed: it may be a legitimate daemon).
*/
#ifndef NERVE_REACTIONS_SPAWN_H
#define NERVE_REACTIONS_SPAWN_H

#include <nerve/conf.h>
#include <nerve/module.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SPAWN_DEFAULT_PATH       "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SPAWN_DEFAULT_TIMEOUT_MS 60000u
#define SPAWN_DRAIN_GRACE_MS     200
#define SPAWN_ENV_MAX            12

/*  Appends a note to the output, overwriting its tail when there is no
    room, so the note is always seen. */
static inline void spawn_note(nerve_reaction_call_t *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline void spawn_note(nerve_reaction_call_t *call, const char *fmt, ...)
{
    char note[160];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(note, sizeof note, fmt, ap);
    va_end(ap);
    if (n <= 0 || !call->output || call->output_cap <= 1)
        return;
    size_t len = (size_t)n < sizeof note ? (size_t)n : sizeof note - 1;
    if (len >= call->output_cap)
        len = call->output_cap - 1;
    size_t at = call->output_len;
    if (at + len > call->output_cap - 1)
        at = call->output_cap - 1 - len;
    memcpy(call->output + at, note, len);
    call->output_len = at + len;
    call->output[call->output_len] = '\0';
}

/*  The environment of a spawned program: NERVE_TAG, NERVE_HOST,
    NERVE_EVENT_ID, NERVE_RULE, NERVE_REACTION_ID, NERVE_ACTOR (this
    actor's id), NERVE_DATA (JSON of args.data, or "{}") and PATH (the
    actor's, or a standard one). Nothing else of the actor's leaks. */
typedef struct spawn_env {
    char *vars[SPAWN_ENV_MAX + 1]; /* NULL-ended */
    size_t n;
} spawn_env_t;

static inline void spawn_env_free(spawn_env_t *env)
{
    for (size_t i = 0; i < env->n; i++)
        free(env->vars[i]);
    env->n = 0;
    env->vars[0] = NULL;
}

static inline int spawn_env_add(spawn_env_t *env, const char *name, const char *value, size_t len)
{
    if (env->n >= SPAWN_ENV_MAX)
        return NERVE_ERANGE;
    size_t nl = strlen(name);
    char *v = malloc(nl + 1 + len + 1);
    if (!v)
        return NERVE_ENOMEM;
    memcpy(v, name, nl);
    v[nl] = '=';
    if (len)
        memcpy(v + nl + 1, value, len);
    v[nl + 1 + len] = '\0';
    env->vars[env->n++] = v;
    env->vars[env->n] = NULL;
    return 0;
}

static inline int spawn_env_build(spawn_env_t *env, const nerve_reaction_call_t *call)
{
    memset(env, 0, sizeof *env);
    char event_id[33] = "", reaction_id[33] = "";
    const nerve_event_ref_t *ev = call->event;
    if (ev)
        nerve_wire_id_hex(ev->id, event_id);
    if (call->reaction_id)
        nerve_wire_id_hex(call->reaction_id, reaction_id);
    const char *actor = NERVE_API_HAS(call->api, host_id) ? call->api->host_id(call->host) : "";
    const char *path = getenv("PATH");
    const char *rule = call->rule ? call->rule : "";
    int rc = spawn_env_add(env, "NERVE_TAG", ev ? ev->tag : "", ev ? strlen(ev->tag) : 0);
    rc = rc ? rc : spawn_env_add(env, "NERVE_HOST", ev ? ev->host : "", ev ? strlen(ev->host) : 0);
    rc = rc ? rc : spawn_env_add(env, "NERVE_EVENT_ID", event_id, strlen(event_id));
    rc = rc ? rc : spawn_env_add(env, "NERVE_RULE", rule, strlen(rule));
    rc = rc ? rc : spawn_env_add(env, "NERVE_REACTION_ID", reaction_id, strlen(reaction_id));
    rc = rc ? rc : spawn_env_add(env, "NERVE_ACTOR", actor ? actor : "", actor ? strlen(actor) : 0);
    if (!path || !*path)
        path = SPAWN_DEFAULT_PATH;
    rc = rc ? rc : spawn_env_add(env, "PATH", path, strlen(path));
    if (rc == 0) {
        const msgpack_object *data = nerve_obj_get(call->args, "data");
        msgpack_sbuffer json;
        msgpack_sbuffer_init(&json);
        if (!data)
            rc = spawn_env_add(env, "NERVE_DATA", "{}", 2);
        else if ((rc = nerve_obj_to_json(data, &json)) == 0)
            rc = spawn_env_add(env, "NERVE_DATA", json.data ? json.data : "", json.size);
        msgpack_sbuffer_destroy(&json);
    }
    if (rc != 0)
        spawn_env_free(env);
    return rc;
}

/*  Reads the `timeout` arg (a duration string or a number of seconds) and
    bounds it by call->timeout_ms, the actor's limit. Returns 0 or
    NERVE_EINVAL with the reason in the output. */
static inline int spawn_timeout(nerve_reaction_call_t *call, uint32_t *out_ms)
{
    uint64_t limit = call->timeout_ms ? call->timeout_ms : SPAWN_DEFAULT_TIMEOUT_MS;
    uint64_t ms = limit;
    const msgpack_object *t = nerve_obj_get(call->args, "timeout");
    if (t) {
        double secs;
        char text[64];
        if (nerve_obj_strcpy(t, text, sizeof text)) {
            if (nerve_duration_parse_ms(text, &ms) != 0)
                return nerve_reaction_say(call, NERVE_EINVAL,
                                 "timeout '%s' is not a duration (250ms, 30s, 5m)", text);
        } else if (nerve_obj_number(t, &secs) && secs >= 0 && secs < 1e9) {
            ms = (uint64_t)(secs * 1000.0 + 0.5);
        } else {
            return nerve_reaction_say(call, NERVE_EINVAL,
                             "timeout must be a duration string or a number of seconds");
        }
        if (ms == 0)
            return nerve_reaction_say(call, NERVE_EINVAL, "timeout must be more than 0");
    }
    *out_ms = (uint32_t)(ms < limit ? ms : limit);
    return 0;
}

typedef struct spawn_outcome {
    int64_t rc;     /* exit status, or 128 + signal */
    bool timed_out; /* killed at the timeout */
    uint64_t total; /* output bytes produced (kept or not) */
} spawn_outcome_t;

static inline uint64_t spawn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*  Reads what the pipe has: keeps up to the output's room, counts the
    rest. False at end of file or on a read error. */
static inline bool spawn_drain(int fd, nerve_reaction_call_t *call, spawn_outcome_t *o)
{
    char scratch[4096];
    for (;;) {
        size_t room =
            call->output_cap > call->output_len + 1 ? call->output_cap - 1 - call->output_len : 0;
        char *dst = room ? call->output + call->output_len : scratch;
        size_t want = room ? room : sizeof scratch;
        ssize_t n = read(fd, dst, want);
        if (n > 0) {
            o->total += (uint64_t)n;
            if (room)
                call->output_len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
}

/*  Runs argv[0] (an absolute path) with argv and envp, capturing stdout and
    stderr into call->output. Returns 0 when the program ran (whatever its
    exit status, in *o), or a negative nerve_err when it could not start
    (the reason in the output). */
static inline int spawn_run(nerve_reaction_call_t *call, char *const argv[], char *const envp[],
                            uint32_t timeout_ms, spawn_outcome_t *o)
{
    memset(o, 0, sizeof *o);
    call->output_len = 0;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return nerve_reaction_say(call, NERVE_EIO, "cannot make a pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int err = posix_spawn(&pid, argv[0], &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(fds[1]);
    if (err != 0) {
        close(fds[0]);
        return nerve_reaction_say(call, NERVE_EIO, "cannot run %s: %s", argv[0], strerror(err));
    }
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    int pidfd = -1;
#ifdef SYS_pidfd_open
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
    uint64_t deadline = spawn_now_ms() + (timeout_ms ? timeout_ms : SPAWN_DEFAULT_TIMEOUT_MS);
    uint64_t exited_at = 0;
    bool exited = false, pipe_open = true;
    int status = 0;
    for (;;) {
        if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
            exited = true;
            exited_at = spawn_now_ms();
        }
        uint64_t now = spawn_now_ms();
        if (exited && (!pipe_open || now >= exited_at + SPAWN_DRAIN_GRACE_MS))
            break;
        if (!exited && now >= deadline) {
            kill(-pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            o->timed_out = true;
            if (pipe_open)
                spawn_drain(fds[0], call, o);
            break;
        }
        uint64_t until = exited ? exited_at + SPAWN_DRAIN_GRACE_MS : deadline;
        int wait = (int)(until - now);
        if (!exited && pidfd < 0 && wait > 20)
            wait = 20; /* no pidfd: look at the child now and then */
        struct pollfd p[2];
        nfds_t n = 0;
        if (pipe_open)
            p[n++] = (struct pollfd){.fd = fds[0], .events = POLLIN};
        if (!exited && pidfd >= 0)
            p[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        if (poll(p, n, wait) > 0 && pipe_open && p[0].revents)
            pipe_open = spawn_drain(fds[0], call, o);
    }
    close(fds[0]);
    if (pidfd >= 0)
        close(pidfd);
    if (call->output && call->output_cap)
        call->output[call->output_len] = '\0';
    if (WIFEXITED(status))
        o->rc = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        o->rc = 128 + WTERMSIG(status);
    else
        o->rc = 255;
    return 0;
}

/*  Turns an outcome into the reaction's answer: notes for truncation and
    timeouts, call->rc = the exit status, 0 only when it is 0. */
static inline int spawn_finish(nerve_reaction_call_t *call, const char *what, uint32_t timeout_ms,
                               const spawn_outcome_t *o)
{
    if (o->total > call->output_len)
        spawn_note(call, "\n[nerve: output truncated: %llu bytes in all]",
                   (unsigned long long)o->total);
    call->rc = o->rc;
    if (o->timed_out) {
        spawn_note(call, "\n[nerve: %s killed after the %u ms timeout]", what, timeout_ms);
        return NERVE_ETIMEDOUT;
    }
    return o->rc == 0 ? 0 : NERVE_EMODULE;
}

#endif
