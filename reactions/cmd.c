/*  reactions/cmd.c — reactions.cmd: run a program on an actor.

        run   argv: [/abs/path, arg, …]   the program and its arguments
              timeout: 30s | 30           optional; at most the actor's timeout
              data: {…}                   optional; passed as NERVE_DATA (JSON)

    The program must be listed, exactly, in the actor's allow.commands; it
    is started without a shell (spawn.h), so arguments are never
    interpreted: "; rm -rf /" is one argument. Its environment holds only
    NERVE_TAG, NERVE_HOST, NERVE_EVENT_ID, NERVE_RULE, NERVE_REACTION_ID,
    NERVE_ACTOR, NERVE_DATA and PATH. The wire carries only the event's
    tag, id and host to actors, so a rule passes what else the program
    needs through args, e.g. `data: "{{event.data}}"`.

    stdout and stderr are captured together (the first 64 KiB). The result
    is ok when the exit status is 0; rc is the exit status, or 128 + the
    signal that ended it; a program killed at its timeout fails with rc
    137 and a note in the output. A refused or malformed call runs nothing.
*/
#define _GNU_SOURCE
#include "spawn.h"

#include <nerve/module.h>

#define ARGV_MAX 1024

static void s_free_argv(char **argv, size_t n)
{
    if (!argv)
        return;
    for (size_t i = 0; i < n; i++)
        free(argv[i]);
    free(argv);
}

/*  Copies the argv arg into a NULL-ended array. Returns 0, or a negative
    nerve_err with the reason in the output. */
static int s_argv(nerve_reaction_call_t *call, char ***out, size_t *count)
{
    const msgpack_object *a = nerve_obj_get(call->args, "argv");
    if (!a || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size == 0)
        return nerve_reaction_say(call, NERVE_EINVAL,
                         "cmd.run needs 'argv': a list of strings, the first an absolute path");
    uint32_t n = a->via.array.size;
    if (n > ARGV_MAX)
        return nerve_reaction_say(call, NERVE_EINVAL, "cmd.run: argv has %u items (at most %d)", n,
                         ARGV_MAX);
    char **argv = calloc((size_t)n + 1, sizeof *argv);
    if (!argv)
        return nerve_reaction_say(call, NERVE_ENOMEM, "cmd.run: out of memory");
    for (uint32_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        if (!nerve_obj_str(&a->via.array.ptr[i], &s, &len)) {
            s_free_argv(argv, i);
            return nerve_reaction_say(call, NERVE_EINVAL, "cmd.run: argv[%u] is not a string", i);
        }
        if (memchr(s, '\0', len)) {
            s_free_argv(argv, i);
            return nerve_reaction_say(call, NERVE_EINVAL, "cmd.run: argv[%u] contains a NUL byte", i);
        }
        if (!(argv[i] = strndup(s, len))) {
            s_free_argv(argv, i);
            return nerve_reaction_say(call, NERVE_ENOMEM, "cmd.run: out of memory");
        }
    }
    *out = argv;
    *count = n;
    return 0;
}

static int s_run(nerve_reaction_call_t *call)
{
    char **argv = NULL;
    size_t argc = 0;
    int rc = s_argv(call, &argv, &argc);
    if (rc != 0)
        return rc;
    if (!NERVE_API_HAS(call->api, allowed) ||
        call->api->allowed(call->host, "commands", argv[0]) != 0) {
        rc = nerve_reaction_say(call, NERVE_EPERM,
                       "not allowed: '%.300s' is not in this actor's allow.commands (an exact "
                       "absolute path); nothing was run",
                       argv[0]);
        s_free_argv(argv, argc);
        return rc;
    }
    uint32_t timeout_ms = 0;
    if ((rc = spawn_timeout(call, &timeout_ms)) != 0) {
        s_free_argv(argv, argc);
        return rc;
    }
    spawn_env_t env;
    if ((rc = spawn_env_build(&env, call)) != 0) {
        s_free_argv(argv, argc);
        return nerve_reaction_say(call, rc, "cmd.run: cannot build the environment: %s", nerve_strerror(rc));
    }
    spawn_outcome_t o;
    rc = spawn_run(call, argv, env.vars, timeout_ms, &o);
    if (rc == 0)
        rc = spawn_finish(call, argv[0], timeout_ms, &o);
    spawn_env_free(&env);
    s_free_argv(argv, argc);
    return rc;
}

static const nerve_module_fn_t s_functions[] = {
    {"run",
     {.reaction = s_run},
     "runs argv (an allowed absolute path, no shell) with a timeout; output is stdout+stderr",
     NULL,
     NULL},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_REACTIONS, "cmd", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
