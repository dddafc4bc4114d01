/*  nerve-manager — the decision engine daemon.

    Parses flags and the config file, then runs the server (server.c) until
    SIGTERM or SIGINT; SIGHUP reloads rules and modules. Flags override the
    config file's keys.
*/
#include "config.h"
#include "server.h"

#include <nerve/daemon.h>
#include <nerve/log.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: nerve-manager [options]\n"
            "\n"
            "The nerve decision engine: receives events, matches them against rules,\n"
            "keeps registers in LMDB and produces reactions.\n"
            "\n"
            "  -c, --config FILE        config file (default /etc/nerve/manager.yaml if present,\n"
            "                           else built-in defaults under $NERVE_HOME)\n"
            "      --events EP          bind events PULL (default tcp://*:7450)\n"
            "      --publisher EP       connect publisher PUSH (default ipc://$NERVE_HOME/run/publisher.sock)\n"
            "      --control EP         bind control ROUTER (default ipc://$NERVE_HOME/run/control.sock)\n"
            "      --tap EP             bind tap PUB (default ipc://$NERVE_HOME/run/tap.sock)\n"
            "      --rules PATH         rules file or directory of *.yaml ($NERVE_HOME/rules)\n"
            "      --modules DIR        module directory; repeat for a search path\n"
            "      --data DIR           LMDB directory for registers ($NERVE_HOME/data)\n"
            "      --commit-interval MS group-commit interval for registers (default 50)\n"
            "      --id NAME            this manager's id (default: hostname)\n"
            "      --metrics HOST:PORT  serve Prometheus metrics at /metrics (off by default;\n"
            "                           a bare port means 127.0.0.1)\n"
            "      --log-level LEVEL    error, warn, info (default) or debug\n"
            "      --scheduling POLICY  batch (default: threads do not preempt on wakeup) or\n"
            "                           normal (as started)\n"
            "      --check              load config and rules, report, and exit\n"
            "  -h, --help               this help\n"
            "  -V, --version            print the version\n"
            "\n"
            "Signals: SIGTERM/SIGINT stop cleanly (registers flushed); SIGHUP reloads.\n");
}

static void s_on_stop(int sig)
{
    server_request_stop();
}

static void s_on_hup(int sig)
{
    server_request_reload();
}

enum {
    OPT_EVENTS = 256,
    OPT_PUBLISHER,
    OPT_CONTROL,
    OPT_TAP,
    OPT_RULES,
    OPT_MODULES,
    OPT_DATA,
    OPT_COMMIT,
    OPT_ID,
    OPT_LOG,
    OPT_CHECK,
    OPT_METRICS,
    OPT_SCHED,
};

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"events", required_argument, NULL, OPT_EVENTS},
        {"publisher", required_argument, NULL, OPT_PUBLISHER},
        {"control", required_argument, NULL, OPT_CONTROL},
        {"tap", required_argument, NULL, OPT_TAP},
        {"rules", required_argument, NULL, OPT_RULES},
        {"modules", required_argument, NULL, OPT_MODULES},
        {"data", required_argument, NULL, OPT_DATA},
        {"commit-interval", required_argument, NULL, OPT_COMMIT},
        {"id", required_argument, NULL, OPT_ID},
        {"log-level", required_argument, NULL, OPT_LOG},
        {"check", no_argument, NULL, OPT_CHECK},
        {"metrics", required_argument, NULL, OPT_METRICS},
        {"scheduling", required_argument, NULL, OPT_SCHED},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    /* First pass: the config file, so flags can override it. */
    const char *config = NULL;
    int c, done = nerve_daemon_first_pass(argc, argv, opts, "nerve-manager", s_usage, &config);
    if (done >= 0)
        return done;
    manager_config_t cfg;
    nerve_conf_error_t err;
    if (manager_config_defaults(&cfg) != 0 || manager_config_load(&cfg, config, &err) != 0) {
        fprintf(stderr, "nerve-manager: %s\n", err.message[0] ? err.message : "out of memory");
        manager_config_free(&cfg);
        return 2;
    }
    bool check = false, modules_reset = false;
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': break;
        case OPT_EVENTS: nerve_conf_set_str(&cfg.events, optarg); break;
        case OPT_PUBLISHER: nerve_conf_set_str(&cfg.publisher, optarg); break;
        case OPT_CONTROL: nerve_conf_set_str(&cfg.control, optarg); break;
        case OPT_TAP: nerve_conf_set_str(&cfg.tap, optarg); break;
        case OPT_RULES:
            nerve_conf_set_str(&cfg.rules, optarg);
            cfg.rules_default = false;
            break;
        case OPT_DATA: nerve_conf_set_str(&cfg.data, optarg); break;
        case OPT_ID: nerve_conf_set_str(&cfg.id, optarg); break;
        case OPT_CHECK: check = true; break;
        case OPT_METRICS: nerve_conf_set_str(&cfg.metrics, optarg); break;
        case OPT_SCHED:
            if (nerve_daemon_sched_parse(optarg, &cfg.scheduling) != 0) {
                fprintf(stderr, "nerve-manager: --scheduling: expected batch or normal, got "
                                "'%s'\n",
                        optarg);
                manager_config_free(&cfg);
                return 2;
            }
            break;
        case OPT_MODULES:
            if (!modules_reset) {
                for (size_t i = 0; i < cfg.nmodules; i++)
                    free(cfg.modules[i]);
                cfg.nmodules = 0;
                modules_reset = true;
            }
            if (cfg.nmodules < MANAGER_MAX_MODULE_DIRS)
                cfg.modules[cfg.nmodules++] = strdup(optarg);
            break;
        case OPT_COMMIT: {
            char *end;
            unsigned long ms = strtoul(optarg, &end, 10);
            if (*end || ms == 0 || ms > 60000) {
                fprintf(stderr, "nerve-manager: --commit-interval: expected 1..60000 ms, got "
                                "'%s'\n",
                        optarg);
                manager_config_free(&cfg);
                return 2;
            }
            cfg.commit_interval_ms = ms;
            break;
        }
        case OPT_LOG: {
            nerve_log_level_t level;
            if (nerve_log_level_parse(optarg, &level) != 0) {
                fprintf(stderr, "nerve-manager: --log-level: expected error, warn, info or "
                                "debug\n");
                manager_config_free(&cfg);
                return 2;
            }
            nerve_log_set_level(level);
            break;
        }
        default:
            s_usage(stderr);
            manager_config_free(&cfg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "nerve-manager: unexpected argument '%s' (see --help)\n", argv[optind]);
        manager_config_free(&cfg);
        return 2;
    }
    if (check) {
        ruleset_t *rs = NULL;
        int rc = ruleset_load(cfg.rules, (const char *const *)cfg.modules, cfg.nmodules, &rs,
                              &err);
        if (rc != 0)
            fprintf(stderr, "%s\n", err.message);
        else
            printf("ok: %zu rules in %zu tag blocks from %zu files\n", rs->nrules, rs->nblocks,
                   rs->nfiles);
        ruleset_unref(&rs);
        manager_config_free(&cfg);
        return rc == 0 ? 0 : 1;
    }

    nerve_daemon_signals(s_on_stop, s_on_hup);
    nerve_daemon_schedule(cfg.scheduling, "manager"); /* before any thread starts */
    server_t server;
    int rc = server_start(&server, &cfg);
    if (rc == 0) {
        nerve_daemon_ready("deciding");
        rc = server_run(&server);
        nerve_daemon_stopping();
    }
    server_stop(&server);
    NERVE_INFO("manager", "stopped");
    if (server.worker_abandoned) {
        /* A reaction still runs module code on a worker: exit() would run
           atexit handlers and unload libraries under it. Registers are
           committed and the sockets closed; leave now. */
        fflush(NULL);
        _exit(rc == 0 ? 0 : 1);
    }
    manager_config_free(&cfg);
    return rc == 0 ? 0 : 1;
}
