/*  config.c — nerve-publisher's configuration (see config.h).
 */
#include "config.h"

#include <nerve/daemon.h>
#include <nerve/log.h>
#include <nerve/paths.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CONFIG "/etc/nerve/publisher.yaml"

int relay_config_defaults(relay_config_t *cfg)
{
    char path[PATH_MAX], ep[PATH_MAX + 8];
    memset(cfg, 0, sizeof *cfg);
    cfg->hwm = 200000;
    cfg->scheduling = NERVE_SCHED_BATCH;
    if (nerve_security_init(&cfg->security, "publisher") != 0)
        return -1;
    if (nerve_home_path("run/publisher.sock", path, sizeof path) != 0)
        return -1;
    snprintf(ep, sizeof ep, "ipc://%s", path);
    if (nerve_conf_set_str(&cfg->input, ep) != 0 ||
        nerve_conf_set_str(&cfg->output, "tcp://*:7451") != 0)
        return -1;
    if (nerve_home_path("run/publisher-control.sock", path, sizeof path) != 0)
        return -1;
    snprintf(ep, sizeof ep, "ipc://%s", path);
    return nerve_conf_set_str(&cfg->control, ep);
}

int relay_config_load(relay_config_t *cfg, const char *path, nerve_conf_error_t *err)
{
    nerve_conf_t *root;
    const char *used;
    int rc = nerve_conf_load_daemon(path, DEFAULT_CONFIG, &root, &used, err);
    if (rc != 0 || !root)
        return rc;
    static const char *const keys[] = {"input",   "output",   "control",    "hwm", "log_level",
                                       "metrics", "security", "scheduling", NULL};
    rc = nerve_conf_check_keys(root, keys, err);
    const char *names[] = {"input", "output", "control", "metrics"};
    char **slots[] = {&cfg->input, &cfg->output, &cfg->control, &cfg->metrics};
    for (int i = 0; rc == 0 && i < 4; i++)
        rc = nerve_conf_get_str(root, names[i], slots[i], err);
    const nerve_conf_t *n;
    int64_t v;
    if (rc == 0 && (n = nerve_conf_get(root, "hwm")) &&
        (rc = nerve_conf_as_int(n, 1000, 100000000, &v, err)) == 0)
        cfg->hwm = (int)v;
    if (rc == 0)
        rc = nerve_daemon_log_level_conf(root, err);
    if (rc == 0)
        rc = nerve_security_parse(&cfg->security, nerve_conf_get(root, "security"), err);
    if (rc == 0)
        rc = nerve_daemon_sched_conf(root, &cfg->scheduling, err);
    nerve_conf_destroy(&root);
    return rc;
}

void relay_config_free(relay_config_t *cfg)
{
    free(cfg->input);
    free(cfg->output);
    free(cfg->control);
    free(cfg->metrics);
    cfg->input = cfg->output = cfg->control = cfg->metrics = NULL;
}
