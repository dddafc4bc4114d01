/*  config.h — nerve-actor's configuration: DESIGN.md keys, defaults for one
    machine, and command-line overrides.

    Keys (all optional):
      id          this host's actor id (default: the host name)
      groups      list of group names (@group/<g>/ topics)
      publisher   connect SUB (default tcp://127.0.0.1:7451)
      manager     connect PUSH to the manager's events (default tcp://127.0.0.1:7450)
      modules     list of module directories (default nerve_default_module_dirs())
      heartbeat   duration between /nerve/actor/<id>/alive events (default 5s)
      allow       {commands: [...], services: [...], paths: [...]} (allow.h)
      workers     reaction threads (default 4)
      queue       reactions waiting for a thread, at most (default 256)
      timeout     per-reaction time limit (default 60s)
      systemctl   path of systemctl for reactions.service.* (default /usr/bin/systemctl)
      log_level   error, warn, info or debug
      security    {curve, keys, insecure, auto_accept}: nerve_security_parse
                  (<nerve/security.h>); CURVE on by default for TCP links
      publisher_key  the publisher's public key to pin: a key name in the
                  keys directory, a zcert path, or 40 Z85 characters
                  (default "publisher")
      manager_key    the same for the manager (default "manager")
      secrets     a YAML map NAME: value, readable only by its owner
                  (this user or root), for {{secret.NAME}} in reaction args
                  (default: none; such reactions are then refused)

    The actor's own keypair is <keys>/<id>.secret, made on first start
    (characters of the id that a key name cannot hold become '_').

    Ids and group names become topic and tag segments, so they are limited
    to letters, digits and . _ - : @ (ids up to ACTOR_ID_MAX bytes, so that
    /nerve/actor/<id>/alive fits a tag; groups up to ACTOR_GROUP_MAX, what
    the manager's presence register keeps).
*/
#ifndef NERVE_ACTOR_CONFIG_H
#define NERVE_ACTOR_CONFIG_H

#include "allow.h"

#include <nerve/conf.h>
#include <nerve/security.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACTOR_MAX_MODULE_DIRS 16
#define ACTOR_MAX_GROUPS      16
#define ACTOR_ID_MAX          200
#define ACTOR_GROUP_MAX       63
#define ACTOR_WORKERS_MAX     256
#define ACTOR_QUEUE_MAX       65536

typedef struct actor_config {
    char *id;
    char *groups[ACTOR_MAX_GROUPS];
    size_t ngroups;
    char *publisher; /* connect, SUB */
    char *manager;   /* connect, PUSH */
    char *modules[ACTOR_MAX_MODULE_DIRS];
    size_t nmodules;
    uint64_t heartbeat_ms;
    actor_allow_t allow;
    size_t workers;
    size_t queue;
    uint64_t timeout_ms;
    char *systemctl;
    nerve_security_t security; /* `security:`; name set by actor_config_check */
    char *publisher_key;       /* pinned on the SUB (default "publisher") */
    char *manager_key;         /* pinned on the PUSH (default "manager") */
    char *secrets;             /* the secrets file, or NULL */
    char *metrics;             /* host:port for Prometheus /metrics, or NULL (off) */
    char *config_path; /* the file read, or NULL for defaults */
} actor_config_t;

/*  Fills cfg with the defaults. 0 or NERVE_ENOMEM. */
int actor_config_defaults(actor_config_t *cfg);

/*  Reads `path` over the defaults. When `path` is NULL, reads
    /etc/nerve/actor.yaml if it exists. Returns 0, or a negative nerve_err
    with "file:line:column: what" in err->message. */
int actor_config_load(actor_config_t *cfg, const char *path, nerve_conf_error_t *err);


/*  Adds a group (for --group). 0, NERVE_EINVAL (reason in why) or
    NERVE_ENOMEM. */
int actor_config_add_group(actor_config_t *cfg, const char *group, char *why, size_t whysize);

/*  Checks the values that flags may have changed (id, groups) and fills
    `why`, and names the actor's key after its id (security.name). 0 or
    NERVE_EINVAL. */
int actor_config_check(actor_config_t *cfg, char *why, size_t whysize);

/*  The key name for an actor id: the id with every character a key name
    cannot hold (':', '@') made '_'. */
void actor_config_key_name(const char *id, char name[NERVE_KEY_NAME_MAX + 1]);

/*  True if `name` may be an actor id (max ACTOR_ID_MAX) or a group name
    (max ACTOR_GROUP_MAX): 1..max bytes of [A-Za-z0-9._:@-]. */
bool actor_name_ok(const char *name, size_t max);

void actor_config_free(actor_config_t *cfg);

#endif
