/*  nerve-actor — runs the reactions addressed to this host.

    Parses flags and the config file (config.c), then runs the actor loop
    (actor.c) until SIGTERM or SIGINT, which stop it cleanly: nothing new is
    taken, running reactions finish (bounded by the reaction timeout), and
    the process exits 0. SIGHUP reloads the modules and the secrets file
    (all of it or nothing; see actor.h). Flags override the config file's
    keys; a bad config or flag exits 2 with the reason (file:line:column
    for the file).
*/
#include "actor.h"
#include "config.h"

#include <nerve/daemon.h>
#include <nerve/log.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static actor_t *s_actor;

/* clang-format off: the help text is laid out as it prints */
static void s_usage(FILE *out)
{
    fprintf(
        out,
        "usage: nerve-actor [options]\n"
        "\n"
        "Runs the reactions nerve-manager addresses to this host (through\n"
        "nerve-publisher), reports their results and sends heartbeats.\n"
        "\n"
        "  -c, --config FILE        config file (default /etc/nerve/actor.yaml if present)\n"
        "      --id NAME            this actor's id (default: the host name)\n"
        "      --group NAME         a group to join; repeat for several (replaces groups:)\n"
        "      --publisher EP       connect SUB to the publisher (default tcp://127.0.0.1:7451)\n"
        "      --manager EP         connect PUSH to the manager's events (default "
        "tcp://127.0.0.1:7450)\n"
        "      --modules DIR        module directory; repeat for a search path (replaces "
        "modules:)\n"
        "      --heartbeat DUR      time between heartbeats (default 5s)\n"
        "      --allow-command PATH allow reactions to run this absolute path (adds to allow:)\n"
        "      --allow-service UNIT allow reactions.service.* on this unit (adds to allow:)\n"
        "      --allow-path DIR     allow reactions.file.write under this directory (adds to "
        "allow:)\n"
        "      --workers N          reaction threads (default 4)\n"
        "      --queue N            reactions waiting for a thread, at most (default 256)\n"
        "      --timeout DUR        time limit of one reaction (default 60s)\n"
        "      --metrics HOST:PORT  Prometheus /metrics (off by default)\n"
        "      --systemctl PATH     systemctl used by reactions.service.* (default "
        "/usr/bin/systemctl)\n"
        "      --log-level LEVEL    error, warn, info (default) or debug\n"
        "      --check              load the config, print it, and exit\n"
        "  -h, --help               this help\n"
        "  -V, --version            print the version\n"
        "\n"
        "Durations: 250ms, 30s, 5m, or a number of seconds.\n"
        "Signals: SIGTERM/SIGINT stop cleanly (running reactions finish first);\n"
        "SIGHUP reloads the modules and the secrets file (all or nothing).\n");
}
/* clang-format on */

static void s_on_stop(int sig)
{
    if (s_actor)
        actor_request_stop(s_actor);
}

static void s_on_hup(int sig)
{
    if (s_actor)
        actor_request_reload(s_actor);
}

enum {
    OPT_ID = 256,
    OPT_GROUP,
    OPT_PUBLISHER,
    OPT_MANAGER,
    OPT_MODULES,
    OPT_HEARTBEAT,
    OPT_ALLOW_COMMAND,
    OPT_ALLOW_SERVICE,
    OPT_ALLOW_PATH,
    OPT_WORKERS,
    OPT_QUEUE,
    OPT_TIMEOUT,
    OPT_SYSTEMCTL,
    OPT_METRICS,
    OPT_LOG,
    OPT_CHECK,
};

static int s_fail(const char *what, const char *why)
{
    fprintf(stderr, "nerve-actor: %s: %s\n", what, why);
    return 2;
}

static int s_number(const char *flag, const char *text, size_t max, size_t *out)
{
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (!*text || *end || v == 0 || v > max) {
        char why[128];
        snprintf(why, sizeof why, "expected 1..%zu, got '%s'", max, text);
        return s_fail(flag, why);
    }
    *out = (size_t)v;
    return 0;
}

static int s_duration(const char *flag, const char *text, uint64_t min, uint64_t *out)
{
    uint64_t ms;
    if (nerve_duration_parse_ms(text, &ms) != 0 || ms < min) {
        char why[160];
        snprintf(why, sizeof why,
                 "expected a duration of at least %llu ms (250ms, 5s, 1m), "
                 "got '%s'",
                 (unsigned long long)min, text);
        return s_fail(flag, why);
    }
    *out = ms;
    return 0;
}

/*  Applies one flag of the second pass. 0, or the exit code. */
static int s_flag(actor_config_t *cfg, int c, const char *arg, bool *groups_reset,
                  bool *modules_reset, bool *check)
{
    char why[512] = "";
    int rc = 0;
    switch (c) {
    case 'c':
        return 0;
    case OPT_ID:
        rc = nerve_conf_set_str(&cfg->id, arg);
        break;
    case OPT_PUBLISHER:
        rc = nerve_conf_set_str(&cfg->publisher, arg);
        break;
    case OPT_MANAGER:
        rc = nerve_conf_set_str(&cfg->manager, arg);
        break;
    case OPT_SYSTEMCTL:
        rc = nerve_conf_set_str(&cfg->systemctl, arg);
        break;
    case OPT_METRICS:
        rc = nerve_conf_set_str(&cfg->metrics, arg);
        break;
    case OPT_CHECK:
        *check = true;
        return 0;
    case OPT_GROUP:
        if (!*groups_reset) {
            for (size_t i = 0; i < cfg->ngroups; i++)
                free(cfg->groups[i]);
            cfg->ngroups = 0;
            *groups_reset = true;
        }
        if (actor_config_add_group(cfg, arg, why, sizeof why) != 0)
            return s_fail("--group", why[0] ? why : "out of memory");
        return 0;
    case OPT_MODULES:
        if (!*modules_reset) {
            for (size_t i = 0; i < cfg->nmodules; i++)
                free(cfg->modules[i]);
            cfg->nmodules = 0;
            *modules_reset = true;
        }
        if (!*arg || cfg->nmodules == ACTOR_MAX_MODULE_DIRS)
            return s_fail("--modules", "expected a directory (at most 16)");
        if (!(cfg->modules[cfg->nmodules] = strdup(arg)))
            return s_fail("--modules", "out of memory");
        cfg->nmodules++;
        return 0;
    case OPT_ALLOW_COMMAND:
    case OPT_ALLOW_SERVICE:
    case OPT_ALLOW_PATH: {
        const char *kind = c == OPT_ALLOW_COMMAND   ? "commands"
                           : c == OPT_ALLOW_SERVICE ? "services"
                                                    : "paths";
        if (actor_allow_add(&cfg->allow, kind, arg, why, sizeof why) != 0)
            return s_fail("--allow", why[0] ? why : "out of memory");
        return 0;
    }
    case OPT_HEARTBEAT:
        return s_duration("--heartbeat", arg, 100, &cfg->heartbeat_ms);
    case OPT_TIMEOUT:
        return s_duration("--timeout", arg, 10, &cfg->timeout_ms);
    case OPT_WORKERS:
        return s_number("--workers", arg, ACTOR_WORKERS_MAX, &cfg->workers);
    case OPT_QUEUE:
        return s_number("--queue", arg, ACTOR_QUEUE_MAX, &cfg->queue);
    case OPT_LOG: {
        nerve_log_level_t level;
        if (nerve_log_level_parse(arg, &level) != 0)
            return s_fail("--log-level", "expected error, warn, info or debug");
        nerve_log_set_level(level);
        return 0;
    }
    default:
        s_usage(stderr);
        return 2;
    }
    return rc == 0 ? 0 : s_fail("flags", "out of memory");
}

static void s_print(const actor_config_t *cfg)
{
    printf("id: %s\ngroups: [", cfg->id);
    for (size_t i = 0; i < cfg->ngroups; i++)
        printf("%s%s", i ? ", " : "", cfg->groups[i]);
    printf("]\npublisher: %s\nmanager: %s\nmodules: [", cfg->publisher, cfg->manager);
    for (size_t i = 0; i < cfg->nmodules; i++)
        printf("%s%s", i ? ", " : "", cfg->modules[i]);
    printf("]\nheartbeat: %llums\nworkers: %zu\nqueue: %zu\ntimeout: %llums\nsystemctl: %s\n",
           (unsigned long long)cfg->heartbeat_ms, cfg->workers, cfg->queue,
           (unsigned long long)cfg->timeout_ms, cfg->systemctl);
    printf("security: {mode: %s, keys: %s, key: %s}\npublisher_key: %s\nmanager_key: %s\n"
           "secrets: %s\n",
           nerve_security_mode(&cfg->security), cfg->security.keys, cfg->security.name,
           cfg->publisher_key, cfg->manager_key, cfg->secrets ? cfg->secrets : "none");
    const char *kinds[] = {"commands", "services", "paths"};
    char *const *lists[] = {cfg->allow.commands, cfg->allow.services, cfg->allow.paths};
    size_t counts[] = {cfg->allow.ncommands, cfg->allow.nservices, cfg->allow.npaths};
    printf("allow:\n");
    for (int k = 0; k < 3; k++) {
        printf("  %s: [", kinds[k]);
        for (size_t i = 0; i < counts[k]; i++)
            printf("%s%s", i ? ", " : "", lists[k][i]);
        printf("]\n");
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"id", required_argument, NULL, OPT_ID},
        {"group", required_argument, NULL, OPT_GROUP},
        {"publisher", required_argument, NULL, OPT_PUBLISHER},
        {"manager", required_argument, NULL, OPT_MANAGER},
        {"modules", required_argument, NULL, OPT_MODULES},
        {"heartbeat", required_argument, NULL, OPT_HEARTBEAT},
        {"allow-command", required_argument, NULL, OPT_ALLOW_COMMAND},
        {"allow-service", required_argument, NULL, OPT_ALLOW_SERVICE},
        {"allow-path", required_argument, NULL, OPT_ALLOW_PATH},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"queue", required_argument, NULL, OPT_QUEUE},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"systemctl", required_argument, NULL, OPT_SYSTEMCTL},
        {"metrics", required_argument, NULL, OPT_METRICS},
        {"log-level", required_argument, NULL, OPT_LOG},
        {"check", no_argument, NULL, OPT_CHECK},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    /* First pass: the config file, so flags can override it. */
    const char *config = NULL;
    int c, done = nerve_daemon_first_pass(argc, argv, opts, "nerve-actor", s_usage, &config);
    if (done >= 0)
        return done;
    actor_config_t cfg;
    nerve_conf_error_t err;
    if (actor_config_defaults(&cfg) != 0 || actor_config_load(&cfg, config, &err) != 0) {
        fprintf(stderr, "nerve-actor: %s\n", err.message[0] ? err.message : "out of memory");
        actor_config_free(&cfg);
        return 2;
    }
    bool groups_reset = false, modules_reset = false, check = false;
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        int rc = s_flag(&cfg, c, optarg, &groups_reset, &modules_reset, &check);
        if (rc != 0) {
            actor_config_free(&cfg);
            return rc;
        }
    }
    char why[512];
    if (optind < argc) {
        fprintf(stderr, "nerve-actor: unexpected argument '%s' (see --help)\n", argv[optind]);
        actor_config_free(&cfg);
        return 2;
    }
    if (actor_config_check(&cfg, why, sizeof why) != 0) {
        fprintf(stderr, "nerve-actor: %s\n", why);
        actor_config_free(&cfg);
        return 2;
    }
    if (check) {
        s_print(&cfg);
        actor_config_free(&cfg);
        return 0;
    }
    nerve_daemon_signals(s_on_stop, s_on_hup);
    s_actor = actor_new(&cfg);
    if (!s_actor) {
        actor_config_free(&cfg);
        return 1;
    }
    int rc = actor_run(s_actor);
    actor_t *actor = s_actor;
    s_actor = NULL; /* a late signal finds nothing to stop */
    if (actor_destroy(&actor) != 0) {
        /* A reaction still runs module code on a worker: exit() would run
           atexit handlers and unload libraries under it. */
        fflush(NULL);
        _exit(rc == 0 ? 0 : 1);
    }
    actor_config_free(&cfg);
    return rc == 0 ? 0 : 1;
}
