/*  config.c — nerve-manager configuration (see config.h). */
#include "config.h"

#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/paths.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CONFIG "/etc/nerve/manager.yaml"

static int s_home_default(char **slot, const char *prefix, const char *name)
{
    char path[PATH_MAX], full[PATH_MAX + 8];
    if (nerve_home_path(name, path, sizeof path) != 0)
        return NERVE_ERANGE;
    snprintf(full, sizeof full, "%s%s", prefix, path);
    return nerve_conf_set_str(slot, full);
}

int manager_config_defaults(manager_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    int rc = nerve_conf_set_str(&cfg->id, nerve_hostname());
    rc = rc ? rc : nerve_conf_set_str(&cfg->events, "tcp://*:7450");
    rc = rc ? rc : s_home_default(&cfg->publisher, "ipc://", "run/publisher.sock");
    rc = rc ? rc : s_home_default(&cfg->control, "ipc://", "run/control.sock");
    rc = rc ? rc : s_home_default(&cfg->tap, "ipc://", "run/tap.sock");
    rc = rc ? rc : s_home_default(&cfg->rules, "", "rules");
    rc = rc ? rc : s_home_default(&cfg->data, "", "data");
    rc = rc ? rc : nerve_conf_set_str(&cfg->publisher_key, "publisher");
    if (rc == 0)
        rc = nerve_security_init(&cfg->security, "manager");
    cfg->nmodules = nerve_default_module_dirs(cfg->modules, MANAGER_MAX_MODULE_DIRS);
    cfg->rules_default = true;
    cfg->commit_interval_ms = 50;
    cfg->scheduling = NERVE_SCHED_BATCH;
    cfg->heartbeat_s = 5;
    cfg->worker_queue = 1024;
    cfg->map_size_mb = 1024;
    return rc;
}

static int s_security(const nerve_conf_t *root, manager_config_t *cfg, nerve_conf_error_t *err)
{
    return nerve_security_parse(&cfg->security, nerve_conf_get(root, "security"), err);
}

int manager_config_load(manager_config_t *cfg, const char *path, nerve_conf_error_t *err)
{
    nerve_conf_t *root;
    const char *used;
    int rc = nerve_conf_load_daemon(path, DEFAULT_CONFIG, &root, &used, err);
    if (rc != 0 || !used)
        return rc;
    nerve_conf_set_str(&cfg->config_path, used);
    if (!root)
        return 0;
    static const char *const keys[] = {
        "id",          "events",    "publisher",       "control",       "tap",       "rules",
        "modules",     "data",      "commit_interval", "metrics",       "heartbeat", "worker_queue",
        "map_size_mb", "log_level", "security",        "publisher_key", "scheduling", NULL};
    rc = nerve_conf_check_keys(root, keys, err);
    rc = rc ? rc : nerve_conf_get_str(root, "id", &cfg->id, err);
    rc = rc ? rc : nerve_conf_get_str(root, "events", &cfg->events, err);
    rc = rc ? rc : nerve_conf_get_str(root, "publisher", &cfg->publisher, err);
    rc = rc ? rc : nerve_conf_get_str(root, "control", &cfg->control, err);
    rc = rc ? rc : nerve_conf_get_str(root, "tap", &cfg->tap, err);
    if (nerve_conf_get(root, "rules"))
        cfg->rules_default = false;
    rc = rc ? rc : nerve_conf_get_str(root, "rules", &cfg->rules, err);
    rc = rc ? rc : nerve_conf_get_str(root, "data", &cfg->data, err);
    rc = rc ? rc : nerve_conf_get_str(root, "metrics", &cfg->metrics, err);
    rc = rc ? rc : nerve_conf_get_str(root, "publisher_key", &cfg->publisher_key, err);
    rc = rc ? rc
            : nerve_conf_get_module_dirs(root, cfg->modules, MANAGER_MAX_MODULE_DIRS,
                                         &cfg->nmodules, err);
    rc = rc ? rc : s_security(root, cfg, err);
    rc = rc ? rc : nerve_daemon_sched_conf(root, &cfg->scheduling, err);
    const nerve_conf_t *n;
    int64_t v;
    if (rc == 0 && (n = nerve_conf_get(root, "commit_interval")))
        rc = nerve_conf_as_duration_ms(n, &cfg->commit_interval_ms, err);
    if (rc == 0 && (n = nerve_conf_get(root, "heartbeat"))) {
        uint64_t ms = 0;
        /* ms is only set on success: a bad value must not leave garbage. */
        if ((rc = nerve_conf_as_duration_ms(n, &ms, err)) == 0)
            cfg->heartbeat_s = ms < 1000 ? 1 : ms / 1000;
    }
    if (rc == 0 && (n = nerve_conf_get(root, "worker_queue")) &&
        (rc = nerve_conf_as_int(n, 1, 1 << 24, &v, err)) == 0)
        cfg->worker_queue = (size_t)v;
    if (rc == 0 && (n = nerve_conf_get(root, "map_size_mb")) &&
        (rc = nerve_conf_as_int(n, 1, 1 << 20, &v, err)) == 0)
        cfg->map_size_mb = (size_t)v;
    if (rc == 0)
        rc = nerve_daemon_log_level_conf(root, err);
    nerve_conf_destroy(&root);
    return rc;
}

void manager_config_free(manager_config_t *cfg)
{
    char **strs[] = {&cfg->id,          &cfg->events,       &cfg->publisher, &cfg->control,
                     &cfg->tap,         &cfg->rules,        &cfg->data,      &cfg->metrics,
                     &cfg->config_path, &cfg->publisher_key};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
    for (size_t i = 0; i < cfg->nmodules; i++)
        free(cfg->modules[i]);
    cfg->nmodules = 0;
}
