/*  nerve-publisher — relays reactions from the manager to every actor.

    Reads the config file (config.c), lets flags override its keys, and
    runs the relay (relay.c) until SIGTERM/SIGINT.
*/
#include "config.h"
#include "relay.h"

#include <nerve/conf.h>
#include <nerve/daemon.h>
#include <nerve/log.h>
#include <nerve/paths.h>

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: nerve-publisher [options]\n"
            "\n"
            "Relays reactions from nerve-manager (input, IPC) to nerve-actor on every\n"
            "host (output, PUB over TCP).\n"
            "\n"
            "  -c, --config FILE     config file (default /etc/nerve/publisher.yaml if present)\n"
            "      --input EP        bind PULL for the manager (default ipc://$NERVE_HOME/run/publisher.sock)\n"
            "      --output EP       bind PUB for actors (default tcp://*:7451)\n"
            "      --control EP      bind control for `nerve status` (default ipc://$NERVE_HOME/run/publisher-control.sock)\n"
            "      --hwm N           queue per subscriber, in messages (default 200000)\n"
            "      --metrics HOST:PORT  Prometheus /metrics (off by default)\n"
            "      --log-level LEVEL error, warn, info or debug\n"
            "      --scheduling POLICY batch (default: threads do not preempt on wakeup)\n"
            "                        or normal (as started)\n"
            "  -h, --help            this help\n"
            "  -V, --version         print the version\n");
}

static void s_on_stop(int sig)
{
    relay_request_stop();
}

static void s_on_hup(int sig)
{
    relay_note_hup();
}

int main(int argc, char **argv)
{
    enum { OPT_INPUT = 256, OPT_OUTPUT, OPT_CONTROL, OPT_HWM, OPT_LOG, OPT_METRICS, OPT_SCHED };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},   {"input", required_argument, NULL, OPT_INPUT},
        {"output", required_argument, NULL, OPT_OUTPUT},
        {"control", required_argument, NULL, OPT_CONTROL},
        {"hwm", required_argument, NULL, OPT_HWM},  {"log-level", required_argument, NULL, OPT_LOG},
        {"metrics", required_argument, NULL, OPT_METRICS},
        {"scheduling", required_argument, NULL, OPT_SCHED},
        {"help", no_argument, NULL, 'h'},           {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    int c, done = nerve_daemon_first_pass(argc, argv, opts, "nerve-publisher", s_usage, &config);
    if (done >= 0)
        return done;
    relay_config_t cfg;
    nerve_conf_error_t err;
    if (relay_config_defaults(&cfg) != 0 || relay_config_load(&cfg, config, &err) != 0) {
        fprintf(stderr, "nerve-publisher: %s\n", err.message[0] ? err.message : "out of memory");
        relay_config_free(&cfg);
        return 2;
    }
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': break;
        case OPT_INPUT: nerve_conf_set_str(&cfg.input, optarg); break;
        case OPT_OUTPUT: nerve_conf_set_str(&cfg.output, optarg); break;
        case OPT_CONTROL: nerve_conf_set_str(&cfg.control, optarg); break;
        case OPT_METRICS: nerve_conf_set_str(&cfg.metrics, optarg); break;
        case OPT_SCHED:
            if (nerve_daemon_sched_parse(optarg, &cfg.scheduling) != 0) {
                fprintf(stderr,
                        "nerve-publisher: --scheduling: expected batch or normal, got '%s'\n",
                        optarg);
                relay_config_free(&cfg);
                return 2;
            }
            break;
        case OPT_HWM: {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1000) {
                fprintf(stderr, "nerve-publisher: --hwm: expected a number >= 1000\n");
                relay_config_free(&cfg);
                return 2;
            }
            cfg.hwm = (int)v;
            break;
        }
        case OPT_LOG: {
            nerve_log_level_t level;
            if (nerve_log_level_parse(optarg, &level) != 0) {
                fprintf(stderr, "nerve-publisher: --log-level: expected error, warn, info or "
                                "debug\n");
                relay_config_free(&cfg);
                return 2;
            }
            nerve_log_set_level(level);
            break;
        }
        default:
            s_usage(stderr);
            relay_config_free(&cfg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "nerve-publisher: unexpected argument '%s' (see --help)\n", argv[optind]);
        relay_config_free(&cfg);
        return 2;
    }
    nerve_daemon_signals(s_on_stop, s_on_hup);
    nerve_daemon_schedule(cfg.scheduling, "publisher"); /* before any thread starts */
    relay_t *relay = relay_new(&cfg);
    if (relay)
        nerve_daemon_ready("relaying");
    int rc = relay ? relay_run(relay) : 1;
    relay_destroy(&relay);
    relay_config_free(&cfg);
    return rc == 0 ? 0 : 1;
}
