/*  config.c — nerve-actor configuration (see config.h).

    Follows manager/config.c: defaults first, then the YAML file over them,
    every error naming file:line:column; main.c applies flags last and
    calls actor_config_check() for what flags may have broken.
*/
#include "config.h"

#include <nerve/daemon.h>
#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/paths.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CONFIG "/etc/nerve/actor.yaml"

bool actor_name_ok(const char *name, size_t max)
{
    return nerve_name_ok(name, max);
}

int actor_config_defaults(actor_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    int rc = nerve_conf_set_str(&cfg->id, nerve_hostname());
    rc = rc ? rc : nerve_conf_set_str(&cfg->publisher, "tcp://127.0.0.1:7451");
    rc = rc ? rc : nerve_conf_set_str(&cfg->manager, "tcp://127.0.0.1:7450");
    rc = rc ? rc : nerve_conf_set_str(&cfg->systemctl, "/usr/bin/systemctl");
    rc = rc ? rc : nerve_conf_set_str(&cfg->publisher_key, "publisher");
    rc = rc ? rc : nerve_conf_set_str(&cfg->manager_key, "manager");
    char name[NERVE_KEY_NAME_MAX + 1];
    actor_config_key_name(cfg->id, name);
    if (rc == 0 && nerve_security_init(&cfg->security, name) == NERVE_ERANGE)
        rc = NERVE_ERANGE;
    cfg->nmodules = nerve_default_module_dirs(cfg->modules, ACTOR_MAX_MODULE_DIRS);
    cfg->heartbeat_ms = 5000;
    cfg->workers = 4;
    cfg->queue = 256;
    cfg->timeout_ms = 60000;
    return rc;
}

int actor_config_add_group(actor_config_t *cfg, const char *group, char *why, size_t whysize)
{
    if (!actor_name_ok(group, ACTOR_GROUP_MAX)) {
        snprintf(why, whysize, "group '%.80s' must be 1-%d bytes of letters, digits and . _ - : @",
                 group, ACTOR_GROUP_MAX);
        return NERVE_EINVAL;
    }
    for (size_t i = 0; i < cfg->ngroups; i++)
        if (strcmp(cfg->groups[i], group) == 0)
            return 0; /* listed twice: one subscription is enough */
    if (cfg->ngroups == ACTOR_MAX_GROUPS) {
        snprintf(why, whysize, "at most %d groups", ACTOR_MAX_GROUPS);
        return NERVE_EINVAL;
    }
    if (!(cfg->groups[cfg->ngroups] = strdup(group)))
        return NERVE_ENOMEM;
    cfg->ngroups++;
    return 0;
}

void actor_config_key_name(const char *id, char name[NERVE_KEY_NAME_MAX + 1])
{
    size_t n = 0;
    for (; id && id[n] && n < NERVE_KEY_NAME_MAX; n++) {
        char c = id[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        name[n] = ok && !(n == 0 && (c == '.' || c == '-')) ? c : '_';
    }
    name[n] = '\0';
    if (n == 0)
        snprintf(name, NERVE_KEY_NAME_MAX + 1, "actor");
}

int actor_config_check(actor_config_t *cfg, char *why, size_t whysize)
{
    if (!actor_name_ok(cfg->id, ACTOR_ID_MAX)) {
        snprintf(why, whysize,
                 "id '%.80s' must be 1-%d bytes of letters, digits and . _ - : @ (set id: or "
                 "--id)",
                 cfg->id ? cfg->id : "", ACTOR_ID_MAX);
        return NERVE_EINVAL;
    }
    if (!cfg->systemctl || cfg->systemctl[0] != '/') {
        snprintf(why, whysize, "systemctl must be an absolute path");
        return NERVE_EINVAL;
    }
    if (cfg->nmodules == 0) {
        snprintf(why, whysize, "no module directory (set modules: or --modules)");
        return NERVE_EINVAL;
    }
    actor_config_key_name(cfg->id, cfg->security.name);
    return 0;
}

/* ------------------------------------------------------------------ file */

static int s_str(const nerve_conf_t *root, const char *key, char **slot, nerve_conf_error_t *err)
{
    const nerve_conf_t *n = nerve_conf_get(root, key);
    const char *s;
    if (n && nerve_conf_as_str(n, &s, NULL) == 0 && !*s)
        return nerve_conf_fail(n, err, "%s must not be empty", key);
    return nerve_conf_get_str(root, key, slot, err);
}

/*  A list, or one scalar standing for a list of one. Calls fn for each
    item; fn fills why on error, which is reported at the item. */
static int s_each(const nerve_conf_t *n, nerve_conf_error_t *err,
                  int (*fn)(void *arg, const char *value, char *why, size_t whysize), void *arg)
{
    size_t count = n->type == NERVE_CONF_SEQ ? n->count : 1;
    if (n->type == NERVE_CONF_MAP)
        return nerve_conf_fail(n, err, "expected a list");
    for (size_t i = 0; i < count; i++) {
        const nerve_conf_t *one = n->type == NERVE_CONF_SEQ ? n->items[i] : n;
        const char *s;
        if (nerve_conf_as_str(one, &s, err) != 0)
            return NERVE_EINVAL;
        char why[512] = "";
        int rc = fn(arg, s, why, sizeof why);
        if (rc == NERVE_ENOMEM)
            return nerve_conf_fail(one, err, "out of memory");
        if (rc != 0)
            return nerve_conf_fail(one, err, "%s", why);
    }
    return 0;
}

static int s_add_group(void *arg, const char *value, char *why, size_t whysize)
{
    return actor_config_add_group(arg, value, why, whysize);
}

typedef struct {
    actor_allow_t *allow;
    const char *kind;
} allow_add_t;

static int s_add_allow(void *arg, const char *value, char *why, size_t whysize)
{
    allow_add_t *a = arg;
    return actor_allow_add(a->allow, a->kind, value, why, whysize);
}

static int s_groups(const nerve_conf_t *root, actor_config_t *cfg, nerve_conf_error_t *err)
{
    const nerve_conf_t *n = nerve_conf_get(root, "groups");
    if (!n)
        return 0;
    for (size_t i = 0; i < cfg->ngroups; i++)
        free(cfg->groups[i]);
    cfg->ngroups = 0;
    if (n->type == NERVE_CONF_SCALAR && n->text_len == 0 && !n->quoted)
        return 0; /* "groups:" with nothing: none */
    return s_each(n, err, s_add_group, cfg);
}

static int s_allow(const nerve_conf_t *root, actor_config_t *cfg, nerve_conf_error_t *err)
{
    const nerve_conf_t *allow = nerve_conf_get(root, "allow");
    if (!allow)
        return 0;
    if (allow->type != NERVE_CONF_MAP)
        return nerve_conf_fail(allow, err,
                               "allow must be a map of commands, services and paths lists");
    static const char *const keys[] = {"commands", "services", "paths", NULL};
    if (nerve_conf_check_keys(allow, keys, err) != 0)
        return NERVE_EINVAL;
    for (size_t i = 0; keys[i]; i++) {
        const nerve_conf_t *n = nerve_conf_get(allow, keys[i]);
        if (!n || (n->type == NERVE_CONF_SCALAR && n->text_len == 0 && !n->quoted))
            continue;
        allow_add_t a = {&cfg->allow, keys[i]};
        int rc = s_each(n, err, s_add_allow, &a);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int s_security(const nerve_conf_t *root, actor_config_t *cfg, nerve_conf_error_t *err)
{
    return nerve_security_parse(&cfg->security, nerve_conf_get(root, "security"), err);
}

static int s_size(const nerve_conf_t *root, const char *key, int64_t max, size_t *out,
                  nerve_conf_error_t *err)
{
    const nerve_conf_t *n = nerve_conf_get(root, key);
    int64_t v;
    if (!n)
        return 0;
    if (nerve_conf_as_int(n, 1, max, &v, err) != 0)
        return NERVE_EINVAL;
    *out = (size_t)v;
    return 0;
}

static int s_duration(const nerve_conf_t *root, const char *key, uint64_t min_ms, uint64_t max_ms,
                      uint64_t *out, nerve_conf_error_t *err)
{
    const nerve_conf_t *n = nerve_conf_get(root, key);
    uint64_t ms;
    if (!n)
        return 0;
    if (nerve_conf_as_duration_ms(n, &ms, err) != 0)
        return NERVE_EINVAL;
    if (ms < min_ms || ms > max_ms)
        return nerve_conf_fail(n, err, "%s must be between %llu ms and %llu ms", key,
                               (unsigned long long)min_ms, (unsigned long long)max_ms);
    *out = ms;
    return 0;
}

int actor_config_load(actor_config_t *cfg, const char *path, nerve_conf_error_t *err)
{
    nerve_conf_t *root;
    const char *used;
    int rc = nerve_conf_load_daemon(path, DEFAULT_CONFIG, &root, &used, err);
    if (rc != 0 || !used)
        return rc;
    if ((rc = nerve_conf_set_str(&cfg->config_path, used)) != 0 || !root) {
        nerve_conf_destroy(&root);
        return rc;
    }
    if (root->type != NERVE_CONF_MAP) {
        rc = nerve_conf_fail(root, err, "the actor config must be a map of keys");
        nerve_conf_destroy(&root);
        return rc;
    }
    static const char *const keys[] = {
        "id",       "groups",        "publisher",   "manager", "modules",   "heartbeat",
        "allow",    "workers",       "queue",       "timeout", "systemctl", "log_level",
        "security", "publisher_key", "manager_key", "secrets", "metrics",   NULL};
    rc = nerve_conf_check_keys(root, keys, err);
    rc = rc ? rc : s_str(root, "id", &cfg->id, err);
    if (rc == 0 && nerve_conf_get(root, "id") && !actor_name_ok(cfg->id, ACTOR_ID_MAX))
        rc =
            nerve_conf_fail(nerve_conf_get(root, "id"), err,
                            "id must be 1-%d bytes of letters, digits and . _ - : @", ACTOR_ID_MAX);
    rc = rc ? rc : s_groups(root, cfg, err);
    rc = rc ? rc : s_str(root, "publisher", &cfg->publisher, err);
    rc = rc ? rc : s_str(root, "manager", &cfg->manager, err);
    rc = rc ? rc
            : nerve_conf_get_module_dirs(root, cfg->modules, ACTOR_MAX_MODULE_DIRS, &cfg->nmodules,
                                         err);
    rc = rc ? rc : s_duration(root, "heartbeat", 100, 3600 * 1000ull, &cfg->heartbeat_ms, err);
    rc = rc ? rc : s_allow(root, cfg, err);
    rc = rc ? rc : s_size(root, "workers", ACTOR_WORKERS_MAX, &cfg->workers, err);
    rc = rc ? rc : s_size(root, "queue", ACTOR_QUEUE_MAX, &cfg->queue, err);
    rc = rc ? rc : s_duration(root, "timeout", 10, 24 * 3600 * 1000ull, &cfg->timeout_ms, err);
    rc = rc ? rc : s_str(root, "systemctl", &cfg->systemctl, err);
    if (rc == 0 && nerve_conf_get(root, "systemctl") && cfg->systemctl[0] != '/')
        rc = nerve_conf_fail(nerve_conf_get(root, "systemctl"), err,
                             "systemctl must be an absolute path");
    rc = rc ? rc : nerve_daemon_log_level_conf(root, err);
    rc = rc ? rc : s_security(root, cfg, err);
    rc = rc ? rc : s_str(root, "publisher_key", &cfg->publisher_key, err);
    rc = rc ? rc : s_str(root, "manager_key", &cfg->manager_key, err);
    rc = rc ? rc : s_str(root, "secrets", &cfg->secrets, err);
    rc = rc ? rc : s_str(root, "metrics", &cfg->metrics, err);
    nerve_conf_destroy(&root);
    return rc;
}

void actor_config_free(actor_config_t *cfg)
{
    char **strs[] = {&cfg->id,          &cfg->publisher,   &cfg->manager,
                     &cfg->systemctl,   &cfg->config_path, &cfg->publisher_key,
                     &cfg->manager_key, &cfg->secrets,     &cfg->metrics};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
    for (size_t i = 0; i < cfg->ngroups; i++)
        free(cfg->groups[i]);
    cfg->ngroups = 0;
    for (size_t i = 0; i < cfg->nmodules; i++)
        free(cfg->modules[i]);
    cfg->nmodules = 0;
    actor_allow_free(&cfg->allow);
}
