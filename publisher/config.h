/*  config.h — nerve-publisher's configuration: the keys of its config
    file, over defaults for one machine under $NERVE_HOME.

    Keys: input, output, control, hwm, metrics, log_level, security,
    scheduling (batch or normal, <nerve/daemon.h>). `security:` is
    nerve_security_parse's map; the publisher's own keypair is
    <keys>/publisher.secret, made on first start. Command-line flags
    override the keys (main.c).
*/
#ifndef NERVE_PUBLISHER_CONFIG_H
#define NERVE_PUBLISHER_CONFIG_H

#include "relay.h"

#include <nerve/conf.h>

/*  Fills cfg with the defaults. 0, or -1 (out of memory, or no
    $NERVE_HOME path). */
int relay_config_defaults(relay_config_t *cfg);

/*  Reads `path` over the defaults; when `path` is NULL, reads
    /etc/nerve/publisher.yaml if it exists. A `log_level:` key takes
    effect at once. 0, or an error in err (file:line:col: message). */
int relay_config_load(relay_config_t *cfg, const char *path, nerve_conf_error_t *err);

/*  Frees the strings cfg holds. Safe twice. */
void relay_config_free(relay_config_t *cfg);

#endif
