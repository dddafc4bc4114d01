/*  nerve-beacond — runs beacon modules on this host and sends their events.

    Parses flags and the config file, builds the scheduler (scheduler.c)
    and runs it until SIGTERM or SIGINT. SIGHUP re-reads the config: the
    new set of beacons replaces the old only if all of it loads, and takes
    over its counters (beacond_carry: they never go back for Prometheus);
    otherwise the old keeps running and /nerve/beacon/<host>/reload/failed
    says why. Flags override the config file's keys.
*/
#include "config.h"
#include "scheduler.h"

#include <nerve/daemon.h>
#include <nerve/log.h>
#include <nerve/metrics.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_usage(FILE *out)
{
    fprintf(
        out,
        "usage: nerve-beacond [options]\n"
        "\n"
        "Runs beacon modules (beacons.load.avg, beacons.log.match, …) on their\n"
        "intervals and sends their events to the nerve manager.\n"
        "\n"
        "  -c, --config FILE      config file (default /etc/nerve/beacond.yaml if present)\n"
        "      --manager EP       the manager's events endpoint (default tcp://127.0.0.1:7450)\n"
        "      --host NAME        host id in events and default tags (default: hostname)\n"
        "      --metrics HOST:PORT  Prometheus /metrics (off by default)\n"
        "      --modules DIR      module directory; repeat for a search path\n"
        "      --log-level LEVEL  error, warn, info (default) or debug\n"
        "      --check            load the config, resolve and prepare every beacon, exit\n"
        "      --once             run every beacon once, deliver, exit (1 if one failed)\n"
        "  -h, --help             this help\n"
        "  -V, --version          print the version\n"
        "\n"
        "Signals: SIGTERM/SIGINT stop; SIGHUP reloads the config.\n");
}

static void s_on_stop(int sig)
{
    beacond_request_stop();
}

static void s_on_hup(int sig)
{
    beacond_request_reload();
}

enum { OPT_MANAGER = 256, OPT_HOST, OPT_MODULES, OPT_LOG, OPT_CHECK, OPT_ONCE, OPT_METRICS };

static const struct option s_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"manager", required_argument, NULL, OPT_MANAGER},
    {"host", required_argument, NULL, OPT_HOST},
    {"metrics", required_argument, NULL, OPT_METRICS},
    {"modules", required_argument, NULL, OPT_MODULES},
    {"log-level", required_argument, NULL, OPT_LOG},
    {"check", no_argument, NULL, OPT_CHECK},
    {"once", no_argument, NULL, OPT_ONCE},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

typedef struct flags {
    const char *config;
    bool check, once;
} flags_t;

/*  Reads the config file, then applies the flags over it (again on every
    reload, so a flag keeps winning). Returns 0 or 2 (message printed). */
static int s_load(int argc, char **argv, flags_t *flags, beacond_config_t *cfg)
{
    nerve_conf_error_t err;
    if (beacond_config_defaults(cfg) != 0 || beacond_config_load(cfg, flags->config, &err) != 0) {
        NERVE_ERROR("beacond", "%s", err.message[0] ? err.message : "out of memory");
        return 2;
    }
    bool modules_reset = false;
    int c;
    optind = 1;
    opterr = 1;
    while ((c = getopt_long(argc, argv, "c:hV", s_opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            break;
        case OPT_METRICS:
            nerve_conf_set_str(&cfg->metrics, optarg);
            break;
        case OPT_MANAGER:
            nerve_conf_set_str(&cfg->manager, optarg);
            break;
        case OPT_HOST:
            if (!beacond_host_ok(optarg)) {
                NERVE_ERROR("beacond", "--host '%s': use 1-%d letters, digits and . _ - : @",
                            optarg, BEACOND_HOST_MAX);
                return 2;
            }
            nerve_conf_set_str(&cfg->host, optarg);
            break;
        case OPT_MODULES:
            if (!modules_reset) {
                for (size_t i = 0; i < cfg->nmodules; i++)
                    free(cfg->modules[i]);
                cfg->nmodules = 0;
                modules_reset = true;
            }
            if (cfg->nmodules >= BEACOND_MAX_MODULE_DIRS) {
                NERVE_ERROR("beacond", "--modules: at most %d directories", BEACOND_MAX_MODULE_DIRS);
                return 2;
            }
            if (!(cfg->modules[cfg->nmodules] = strdup(optarg))) {
                NERVE_ERROR("beacond", "--modules: out of memory");
                return 2;
            }
            cfg->nmodules++;
            break;
        case OPT_LOG: {
            nerve_log_level_t level;
            if (nerve_log_level_parse(optarg, &level) != 0) {
                NERVE_ERROR("beacond", "--log-level: expected error, warn, info or debug");
                return 2;
            }
            nerve_log_set_level(level);
            break;
        }
        case OPT_CHECK:
            flags->check = true;
            break;
        case OPT_ONCE:
            flags->once = true;
            break;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        NERVE_ERROR("beacond", "unexpected argument '%s' (see --help)", argv[optind]);
        return 2;
    }
    return 0;
}

/*  /metrics outlives reloads: each new scheduler renders into it. */
static nerve_metrics_t *s_metrics;

/*  SIGHUP: a new scheduler from the re-read config, or the old one kept. */
static void s_reload(int argc, char **argv, flags_t *flags, beacond_t **running)
{
    beacond_config_t cfg;
    char err[2048] = "see the log above";
    beacond_t *next = NULL;
    if (s_load(argc, argv, flags, &cfg) == 0)
        next = beacond_new(&cfg, err, sizeof err);
    beacond_config_free(&cfg);
    if (!next) {
        NERVE_ERROR("beacond", "reload failed, the previous beacons keep running: %s", err);
        beacond_report_reload_failure(*running, err);
        return;
    }
    beacond_set_metrics(next, s_metrics);
    beacond_carry(next, *running);
    beacond_destroy(running);
    *running = next;
    NERVE_INFO("beacond", "reloaded: %zu beacons", beacond_count(next));
}

int main(int argc, char **argv)
{
    flags_t flags = {0};
    int done = nerve_daemon_first_pass(argc, argv, s_opts, "nerve-beacond", s_usage, &flags.config);
    if (done >= 0)
        return done;
    beacond_config_t cfg;
    if (s_load(argc, argv, &flags, &cfg) != 0) {
        beacond_config_free(&cfg);
        return 2;
    }
    char err[2048] = "";
    cfg.check_only = flags.check;
    if (!flags.check)
        nerve_security_warn("beacond", &cfg.security);
    beacond_t *self = beacond_new(&cfg, err, sizeof err);
    char *manager = strdup(cfg.manager ? cfg.manager : "");
    if (self && cfg.metrics && !flags.check && !flags.once) {
        s_metrics = nerve_metrics_start(cfg.metrics, err, sizeof err);
        if (!s_metrics)
            beacond_destroy(&self);
        else
            beacond_set_metrics(self, s_metrics);
    }
    beacond_config_free(&cfg);
    if (!self) {
        NERVE_ERROR("beacond", "%s", err);
        free(manager);
        return 2;
    }
    if (flags.check) {
        printf("ok: %zu beacons\n", beacond_count(self));
        beacond_destroy(&self);
        free(manager);
        return 0;
    }
    nerve_daemon_signals(s_on_stop, s_on_hup);
    int rc = 0;
    if (flags.once) {
        rc = beacond_run_once(self) ? 1 : 0;
    } else {
        if (beacond_count(self) == 0)
            NERVE_WARN("beacond", "no beacons configured: nothing to do until a reload");
        NERVE_INFO("beacond", "running %zu beacons, sending to %s", beacond_count(self), manager);
        nerve_daemon_ready("running");
        while (beacond_run(self) == BEACOND_RELOAD)
            s_reload(argc, argv, &flags, &self);
        nerve_daemon_stopping();
    }
    beacond_stats_t st;
    beacond_stats(self, &st);
    NERVE_INFO("beacond",
               "stopped: %llu runs, %llu failed, %llu events sent, %llu held back "
               "(onchange), %llu dropped",
               (unsigned long long)st.runs, (unsigned long long)st.failures,
               (unsigned long long)st.emitted, (unsigned long long)st.suppressed,
               (unsigned long long)st.dropped);
    beacond_destroy(&self);
    nerve_metrics_stop(&s_metrics);
    free(manager);
    return rc;
}
