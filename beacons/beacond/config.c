/*  config.c — nerve-beacond configuration (see config.h).

    The beacons list is checked here as far as it can be without loading
    modules: fn is a beacons.* name, tag a valid tag, durations in range.
    Whether fn exists and accepts its args is the scheduler's business when
    it resolves and prepares each beacon (scheduler.c), with the entry's
    file:line:column kept in `where` for its messages.
*/
#include "config.h"

#include <nerve/daemon.h>
#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/paths.h>
#include <nerve/wire.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_CONFIG "/etc/nerve/beacond.yaml"

bool beacond_host_ok(const char *host)
{
    return nerve_name_ok(host, BEACOND_HOST_MAX);
}

int beacond_config_defaults(beacond_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    int rc = nerve_conf_set_str(&cfg->manager, "tcp://127.0.0.1:7450");
    rc = rc ? rc : nerve_conf_set_str(&cfg->host, nerve_hostname());
    rc = rc ? rc : nerve_conf_set_str(&cfg->manager_key, "manager");
    if (rc == 0 && nerve_security_init(&cfg->security, "beacond") != 0)
        rc = NERVE_ERANGE;
    cfg->nmodules = nerve_default_module_dirs(cfg->modules, BEACOND_MAX_MODULE_DIRS);
    cfg->interval_ms = 10000;
    cfg->hwm = 10000;
    cfg->zone = msgpack_zone_new(4096);
    if (!cfg->zone)
        rc = NERVE_ENOMEM;
    return rc;
}

static int s_modules(const nerve_conf_t *root, beacond_config_t *cfg, nerve_conf_error_t *err)
{
    const nerve_conf_t *n = nerve_conf_get(root, "modules");
    if (n && n->type == NERVE_CONF_SEQ && n->count == 0) /* beacons need a module */
        return nerve_conf_fail(n, err, "modules: list 1 to %d directories",
                               BEACOND_MAX_MODULE_DIRS);
    return nerve_conf_get_module_dirs(root, cfg->modules, BEACOND_MAX_MODULE_DIRS, &cfg->nmodules,
                                      err);
}

static int s_duration(const nerve_conf_t *n, uint64_t *out, nerve_conf_error_t *err)
{
    uint64_t ms;
    int rc = nerve_conf_as_duration_ms(n, &ms, err);
    if (rc != 0)
        return rc;
    if (ms < BEACOND_INTERVAL_MIN_MS || ms > BEACOND_INTERVAL_MAX_MS)
        return nerve_conf_fail(n, err, "expected a duration from %dms to 7d",
                               BEACOND_INTERVAL_MIN_MS);
    *out = ms;
    return 0;
}

/*  By length, as nerve_conf_get finds them: a quoted "fn\0x" is not fn. */
static bool s_structural(const nerve_conf_t *key)
{
    static const char *const keys[] = {"fn",    "interval", "tag", "onchange",
                                       "delta", "refresh",  NULL};
    for (const char *const *k = keys; *k; k++)
        if (key->text_len == strlen(*k) && memcmp(*k, key->text, key->text_len) == 0)
            return true;
    return false;
}

/*  One entry of `beacons:`. */
static int s_beacon(const nerve_conf_t *node, beacond_config_t *cfg, beacond_beacon_conf_t *b,
                    nerve_conf_error_t *err)
{
    snprintf(b->where, sizeof b->where, "%s:%zu:%zu", node->file ? node->file : "?", node->line,
             node->column);
    if (node->type != NERVE_CONF_MAP)
        return nerve_conf_fail(node, err, "a beacon is a map with at least 'fn'");
    const nerve_conf_t *n = nerve_conf_get(node, "fn");
    if (!n)
        return nerve_conf_fail(node, err, "beacon without 'fn' (e.g. fn: beacons.load.avg)");
    const char *s;
    if (nerve_conf_as_str(n, &s, err) != 0)
        return NERVE_EINVAL;
    if (strncmp(s, "beacons.", 8) != 0 || !strchr(s + 8, '.') || strchr(s + 8, '.')[1] == '\0')
        return nerve_conf_fail(n, err, "fn '%s': expected beacons.<module>.<function>", s);
    snprintf(b->where, sizeof b->where, "%s:%zu:%zu", n->file ? n->file : "?", n->line, n->column);
    if (!(b->fn = strdup(s)))
        return NERVE_ENOMEM;
    if ((n = nerve_conf_get(node, "tag"))) {
        if (nerve_conf_as_str(n, &s, err) != 0)
            return NERVE_EINVAL;
        nerve_wire_reason_t r = nerve_wire_check_tag(s, strlen(s));
        if (r != NERVE_WIRE_OK)
            return nerve_conf_fail(n, err, "tag '%s' is not a valid tag (%s)", s,
                                   nerve_wire_reason_name(r));
        if (!(b->tag = strdup(s)))
            return NERVE_ENOMEM;
    }
    int rc = 0;
    if ((n = nerve_conf_get(node, "interval")))
        rc = s_duration(n, &b->interval_ms, err);
    if (rc == 0 && (n = nerve_conf_get(node, "onchange")))
        rc = nerve_conf_as_bool(n, &b->onchange, err);
    if (rc == 0 && (n = nerve_conf_get(node, "delta"))) {
        rc = nerve_conf_as_double(n, &b->delta, err);
        if (rc == 0 && !(b->delta >= 0))
            rc = nerve_conf_fail(n, err, "delta must be a number >= 0");
        if (rc == 0 && !nerve_conf_get(node, "onchange"))
            rc = nerve_conf_fail(n, err, "delta only means something with onchange: true");
    }
    if (rc == 0 && (n = nerve_conf_get(node, "refresh"))) {
        rc = s_duration(n, &b->refresh_ms, err);
        if (rc == 0 && !b->onchange)
            rc = nerve_conf_fail(n, err, "refresh only means something with onchange: true");
    }
    if (rc != 0)
        return rc;
    /* Everything else is the probe's. */
    size_t nparams = 0;
    for (size_t i = 0; i < node->count; i++)
        nparams += !s_structural(node->keys[i]);
    b->params.type = MSGPACK_OBJECT_MAP;
    b->params.via.map.size = (uint32_t)nparams;
    b->params.via.map.ptr = NULL;
    if (nparams) {
        msgpack_object_kv *kv = msgpack_zone_malloc(cfg->zone, nparams * sizeof *kv);
        if (!kv)
            return NERVE_ENOMEM;
        b->params.via.map.ptr = kv;
        for (size_t i = 0, j = 0; i < node->count; i++) {
            if (s_structural(node->keys[i]))
                continue;
            /* a key is its text (`1: x` too), copied: the tree goes away */
            const nerve_conf_t *k = node->keys[i];
            char *text = msgpack_zone_malloc(cfg->zone, k->text_len + 1);
            if (!text || nerve_conf_to_obj(node->items[i], cfg->zone, &kv[j].val) != 0)
                return NERVE_ENOMEM;
            memcpy(text, k->text, k->text_len + 1);
            kv[j].key.type = MSGPACK_OBJECT_STR;
            kv[j].key.via.str.ptr = text;
            kv[j].key.via.str.size = (uint32_t)k->text_len;
            j++;
        }
    }
    return 0;
}

static int s_beacons(const nerve_conf_t *root, beacond_config_t *cfg, nerve_conf_error_t *err)
{
    const nerve_conf_t *n = nerve_conf_get(root, "beacons");
    if (!n)
        return 0;
    if (n->type != NERVE_CONF_SEQ)
        return nerve_conf_fail(n, err, "beacons: expected a list of {fn: …, interval: …}");
    if (n->count > BEACOND_MAX_BEACONS)
        return nerve_conf_fail(n, err, "beacons: at most %d", BEACOND_MAX_BEACONS);
    if (n->count == 0)
        return 0;
    cfg->beacons = calloc(n->count, sizeof *cfg->beacons);
    if (!cfg->beacons)
        return NERVE_ENOMEM;
    for (size_t i = 0; i < n->count; i++) {
        cfg->nbeacons = i + 1;
        int rc = s_beacon(n->items[i], cfg, &cfg->beacons[i], err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int s_security(const nerve_conf_t *root, beacond_config_t *cfg, nerve_conf_error_t *err)
{
    return nerve_security_parse(&cfg->security, nerve_conf_get(root, "security"), err);
}

int beacond_config_load(beacond_config_t *cfg, const char *path, nerve_conf_error_t *err)
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
        rc = nerve_conf_fail(root, err, "expected a map of beacond settings");
        nerve_conf_destroy(&root);
        return rc;
    }
    static const char *const keys[] = {"manager", "host",      "modules",  "interval",
                                       "hwm",     "log_level", "security", "manager_key",
                                       "beacons", "metrics",   NULL};
    rc = nerve_conf_check_keys(root, keys, err);
    rc = rc ? rc : nerve_conf_get_str(root, "manager", &cfg->manager, err);
    rc = rc ? rc : nerve_conf_get_str(root, "host", &cfg->host, err);
    const nerve_conf_t *n;
    if (rc == 0 && (n = nerve_conf_get(root, "host")) && !beacond_host_ok(cfg->host))
        rc = nerve_conf_fail(n, err,
                             "host '%.80s' must be 1-%d bytes of letters, digits and . _ - : @",
                             cfg->host, BEACOND_HOST_MAX);
    rc = rc ? rc : s_modules(root, cfg, err);
    rc = rc ? rc : s_security(root, cfg, err);
    rc = rc ? rc : nerve_conf_get_str(root, "manager_key", &cfg->manager_key, err);
    rc = rc ? rc : nerve_conf_get_str(root, "metrics", &cfg->metrics, err);
    if (rc == 0 && (n = nerve_conf_get(root, "interval")))
        rc = s_duration(n, &cfg->interval_ms, err);
    int64_t v;
    if (rc == 0 && (n = nerve_conf_get(root, "hwm")) &&
        (rc = nerve_conf_as_int(n, 1, 100000000, &v, err)) == 0)
        cfg->hwm = (int)v;
    if (rc == 0)
        rc = nerve_daemon_log_level_conf(root, err);
    rc = rc ? rc : s_beacons(root, cfg, err);
    nerve_conf_destroy(&root);
    return rc;
}

void beacond_config_free(beacond_config_t *cfg)
{
    free(cfg->manager);
    free(cfg->host);
    free(cfg->config_path);
    free(cfg->manager_key);
    free(cfg->metrics);
    cfg->manager = cfg->host = cfg->config_path = cfg->manager_key = NULL;
    for (size_t i = 0; i < cfg->nmodules; i++)
        free(cfg->modules[i]);
    cfg->nmodules = 0;
    for (size_t i = 0; i < cfg->nbeacons; i++) {
        free(cfg->beacons[i].fn);
        free(cfg->beacons[i].tag);
    }
    free(cfg->beacons);
    cfg->beacons = NULL;
    cfg->nbeacons = 0;
    if (cfg->zone)
        msgpack_zone_free(cfg->zone);
    cfg->zone = NULL;
}
