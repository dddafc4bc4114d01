/*  reactions/service.c — reactions.service: start, stop, restart or reload
    a systemd unit on an actor.

        start | stop | restart | reload   unit: nginx.service
                                          timeout: 30s (optional)

    The unit must look like a unit name (letters, digits and : _ . @ - \,
    not starting with '-' or '.', so it can never be read as an option or
    a path) and be listed, exactly, in the actor's allow.services. The
    reaction runs `<systemctl> <verb> <unit>` without a shell, like
    reactions.cmd.run (spawn.h): same environment, output capture and
    timeout; ok when systemctl exits 0.

    <systemctl> is the actor's `systemctl:` setting (default
    /usr/bin/systemctl), which nerve-actor puts in the environment variable
    NERVE_SYSTEMCTL when it starts; reaction args cannot change it.
*/
#define _GNU_SOURCE
#include "spawn.h"

#include <nerve/module.h>

#define SYSTEMCTL_DEFAULT "/usr/bin/systemctl"

/*  Same rule as the actor's allow check (actor/allow.c), kept here so a
    malformed unit is refused before the policy is even asked. */
static bool s_unit_ok(const char *s, size_t n)
{
    if (n == 0 || n > 255 || s[0] == '-' || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == ':' || c == '_' || c == '.' || c == '@' || c == '-' || c == '\\';
        if (!ok)
            return false;
    }
    return true;
}

static int s_systemctl(nerve_reaction_call_t *call, const char *verb)
{
    const msgpack_object *u = nerve_obj_get(call->args, "unit");
    const char *s;
    size_t n;
    if (!u || !nerve_obj_str(u, &s, &n))
        return nerve_reaction_say(call, NERVE_EINVAL, "service.%s needs 'unit' (e.g. nginx.service)", verb);
    if (!s_unit_ok(s, n))
        return nerve_reaction_say(call, NERVE_EINVAL,
                         "service.%s: '%.*s' is not a unit name (letters, digits, ':_.@-\\', "
                         "not starting with '-' or '.'); nothing was run",
                         verb, (int)(n > 200 ? 200 : n), s);
    char unit[256];
    memcpy(unit, s, n);
    unit[n] = '\0';
    if (!NERVE_API_HAS(call->api, allowed) || call->api->allowed(call->host, "services", unit) != 0)
        return nerve_reaction_say(call, NERVE_EPERM,
                         "not allowed: service '%s' is not in this actor's allow.services; "
                         "nothing was run",
                         unit);
    uint32_t timeout_ms = 0;
    int rc = spawn_timeout(call, &timeout_ms);
    if (rc != 0)
        return rc;
    const char *systemctl = getenv("NERVE_SYSTEMCTL");
    if (!systemctl || systemctl[0] != '/')
        systemctl = SYSTEMCTL_DEFAULT;
    char path[4096];
    snprintf(path, sizeof path, "%s", systemctl);
    char verb_copy[16];
    snprintf(verb_copy, sizeof verb_copy, "%s", verb);
    char *argv[] = {path, verb_copy, unit, NULL};
    spawn_env_t env;
    if ((rc = spawn_env_build(&env, call)) != 0)
        return nerve_reaction_say(call, rc, "service.%s: cannot build the environment: %s", verb,
                         nerve_strerror(rc));
    spawn_outcome_t o;
    rc = spawn_run(call, argv, env.vars, timeout_ms, &o);
    if (rc == 0)
        rc = spawn_finish(call, "systemctl", timeout_ms, &o);
    spawn_env_free(&env);
    return rc;
}

static int s_start(nerve_reaction_call_t *call)
{
    return s_systemctl(call, "start");
}

static int s_stop(nerve_reaction_call_t *call)
{
    return s_systemctl(call, "stop");
}

static int s_restart(nerve_reaction_call_t *call)
{
    return s_systemctl(call, "restart");
}

static int s_reload(nerve_reaction_call_t *call)
{
    return s_systemctl(call, "reload");
}

static const nerve_module_fn_t s_functions[] = {
    {"start", {.reaction = s_start}, "systemctl start <unit> (unit in allow.services)", NULL, NULL},
    {"stop", {.reaction = s_stop}, "systemctl stop <unit> (unit in allow.services)", NULL, NULL},
    {"restart",
     {.reaction = s_restart},
     "systemctl restart <unit> (unit in allow.services)",
     NULL,
     NULL},
    {"reload",
     {.reaction = s_reload},
     "systemctl reload <unit> (unit in allow.services)",
     NULL,
     NULL},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_REACTIONS, "service", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
