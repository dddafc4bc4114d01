/*  config.h — nerve-beacond's configuration: DESIGN.md keys, defaults for
    one machine, and command-line overrides.

    Keys (all optional):
      manager     the manager's events endpoint (default tcp://127.0.0.1:7450)
      host        this host's id in events and default tags (default: the
                  host name); letters, digits and . _ - : @, up to 200 bytes
      modules     list of module directories (default nerve_default_module_dirs())
      interval    default interval of every beacon (default 10s)
      hwm         events queued while the manager is away (default 10000)
      log_level   error, warn, info or debug
      security    {curve, keys, insecure, auto_accept}: nerve_security_parse
                  (<nerve/security.h>); a TCP manager is reached over CURVE
                  with this host's keypair <keys>/beacond.secret (made on
                  first start)
      manager_key the manager's public key to pin: a key name in the keys
                  directory, a zcert path, or 40 Z85 characters (default
                  "manager")
      beacons     list of beacons, each a map:
        fn        role.module.function, role beacons (required)
        interval  how often it runs (default: the top-level interval)
        tag       where its events go (default /<module>/<function>/<host>)
        onchange  true: send an event only when data.value changed …
        delta     … by more than this (default 0: any change)
        refresh   with onchange: send anyway after this long unchanged
                  (default: never)
        anything else is an arg of the probe (its params), checked by the
        probe's prepare() when the config loads.
*/
#ifndef NERVE_BEACOND_CONFIG_H
#define NERVE_BEACOND_CONFIG_H

#include <nerve/conf.h>
#include <nerve/security.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BEACOND_MAX_MODULE_DIRS 16
#define BEACOND_MAX_BEACONS     1024
#define BEACOND_HOST_MAX        200
#define BEACOND_INTERVAL_MIN_MS 10
#define BEACOND_INTERVAL_MAX_MS (7ull * 24 * 3600 * 1000)

typedef struct beacond_beacon_conf {
    char *fn;             /* "beacons.load.avg" */
    char *tag;            /* NULL: the default tag */
    uint64_t interval_ms; /* 0: the top-level interval */
    bool onchange;
    double delta;
    uint64_t refresh_ms;   /* 0: never */
    msgpack_object params; /* a map, in the config's zone */
    char where[320];       /* "file:line:column" of the entry */
} beacond_beacon_conf_t;

typedef struct beacond_config {
    char *manager;
    char *host;
    char *modules[BEACOND_MAX_MODULE_DIRS];
    size_t nmodules;
    uint64_t interval_ms;
    int hwm;
    nerve_security_t security; /* own key name "beacond" */
    char *manager_key;         /* pinned (default "manager") */
    char *metrics;             /* host:port for Prometheus /metrics, or NULL (off) */
    bool check_only;           /* --check: resolve and prepare, never connect */
    beacond_beacon_conf_t *beacons;
    size_t nbeacons;
    msgpack_zone *zone; /* params live here */
    char *config_path;  /* the file read, or NULL for defaults */
} beacond_config_t;

/*  Fills cfg with the defaults. 0 or NERVE_ENOMEM. */
int beacond_config_defaults(beacond_config_t *cfg);

/*  Reads `path` over the defaults. When `path` is NULL, reads
    /etc/nerve/beacond.yaml if it exists. Returns 0, or a negative nerve_err
    with "file:line:column: what" in err->message. */
int beacond_config_load(beacond_config_t *cfg, const char *path, nerve_conf_error_t *err);


/*  True if `host` may be a beacond host id (see above). */
bool beacond_host_ok(const char *host);

void beacond_config_free(beacond_config_t *cfg);

#endif
