/*  config.h — nerve-manager's configuration: DESIGN.md keys, defaults for
    one machine under $NERVE_HOME, and command-line overrides.

    Keys: id, events, publisher, control, tap, rules, modules, data,
    commit_interval, metrics, worker_queue, map_size_mb, log_level, security,
    publisher_key, scheduling (batch or normal, <nerve/daemon.h>).

    `security:` is read by nerve_security_parse (<nerve/security.h>): CURVE
    on by default with the keys in $NERVE_HOME/keys and this daemon's own
    keypair named "manager". `publisher_key:` says which key to pin when
    the `publisher` link is TCP (a key name in the keys directory, a zcert
    path, or 40 Z85 characters; default "publisher").
*/
#ifndef NERVE_MANAGER_CONFIG_H
#define NERVE_MANAGER_CONFIG_H

#include <nerve/conf.h>
#include <nerve/daemon.h>
#include <nerve/security.h>
#include <stdbool.h>
#include <stdint.h>

#define MANAGER_MAX_MODULE_DIRS 16

typedef struct manager_config {
    char *id;                 /* this manager's host id (results, tap) */
    char *events;             /* bind, PULL */
    char *publisher;          /* connect, PUSH */
    char *control;            /* bind, ROUTER */
    char *tap;                /* bind, PUB */
    char *rules;              /* file or directory */
    char *data;               /* LMDB directory */
    char *metrics;            /* host:port or NULL (off) */
    char *modules[MANAGER_MAX_MODULE_DIRS];
    size_t nmodules;
    uint64_t commit_interval_ms;
    uint64_t heartbeat_s;     /* expected actor heartbeat, for presence */
    size_t worker_queue;      /* local reactions waiting, at most */
    size_t map_size_mb;
    nerve_security_t security; /* `security:`; own key name "manager" */
    char *publisher_key;       /* pinned on a TCP `publisher` link */
    nerve_sched_t scheduling;  /* default batch */
    bool rules_default;       /* `rules` was not configured: create it if missing */
    char *config_path;        /* the file read, or NULL for defaults */
} manager_config_t;

/*  Fills cfg with the defaults. 0 or NERVE_ENOMEM. */
int manager_config_defaults(manager_config_t *cfg);

/*  Reads `path` over the defaults. When `path` is NULL, reads
    /etc/nerve/manager.yaml if it exists. 0, or an error in err. */
int manager_config_load(manager_config_t *cfg, const char *path, nerve_conf_error_t *err);


void manager_config_free(manager_config_t *cfg);

#endif
