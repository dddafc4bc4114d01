/*  nerve — the operator's command-line tool.

    Git-style: `nerve [global options] VERB [verb options and words]`.
    This file parses the global options, picks the verb and returns its
    exit code; each verb lives in the file of its group (status.c, watch.c,
    explain.c, rules.c, registers.c, fire.c, replay.c, keys.c). Exit codes: 0 ok,
    1 an error reported by the manager or a failed check, 2 usage error,
    3 the daemon could not be reached within the timeout.
*/
#include "cli.h"

#include <nerve/log.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int (*run)(cli_t *cli, int argc, char **argv);
    const char *summary;
} s_verbs[] = {
    {"status", cli_status, "health, counters and last reload of the manager and publisher"},
    {"watch", cli_watch, "follow events, reactions and results live (tap)"},
    {"explain", cli_explain, "run one event through the live rules, with no side effects"},
    {"rules", cli_rules, "rules check PATH (offline) | rules list"},
    {"registers", cli_registers, "registers list [PREFIX] | get | set | del"},
    {"actors", cli_actors, "live actors: groups, version, last heartbeat"},
    {"reload", cli_reload, "reload the manager's rules and modules now"},
    {"fire", cli_fire, "send one event"},
    {"replay", cli_replay, "send recorded events again, or --dry-run explain them"},
    {"keys", cli_keys, "keys gen NAME | list | accept | reject | revoke NAME (CURVE)"},
};

static void s_usage(FILE *out)
{
    fprintf(out, "usage: nerve [options] VERB [args]\n"
                 "\n"
                 "The nerve operator's tool. Verbs (each has --help):\n");
    for (size_t i = 0; i < sizeof s_verbs / sizeof s_verbs[0]; i++)
        fprintf(out, "  %-10s %s\n", s_verbs[i].name, s_verbs[i].summary);
    fprintf(out,
            "\n"
            "Options (before the verb, or after it):\n"
            "  -c, --config FILE          take endpoints from the manager's config file\n"
            "                             (default /etc/nerve/manager.yaml if present)\n"
            "      --control EP           manager control\n"
            "                             (default ipc://$NERVE_HOME/run/control.sock)\n"
            "      --tap EP               manager tap (default ipc://$NERVE_HOME/run/tap.sock)\n"
            "      --events EP            manager events (default tcp://127.0.0.1:7450)\n"
            "      --publisher-control EP publisher control\n"
            "                             (default ipc://$NERVE_HOME/run/publisher-control.sock)\n"
            "      --timeout DURATION     how long to wait for a daemon (default 5s)\n"
            "      --keys DIR             CURVE keys directory (default: the manager config's\n"
            "                             security.keys, else $NERVE_HOME/keys)\n"
            "      --manager-key KEY      the manager's key to pin on TCP endpoints: a name\n"
            "                             in the keys directory, a path or Z85 (default manager)\n"
            "      --publisher-key KEY    the same for the publisher (default publisher)\n"
            "  -h, --help                 this help\n"
            "  -V, --version              print the version\n"
            "\n"
            "Exit codes: 0 ok, 1 error reported or check failed, 2 usage error,\n"
            "3 daemon unreachable within the timeout.\n");
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* `nerve watch | head` ends on EPIPE, not a signal */
    if (!getenv("NERVE_LOG_LEVEL"))
        nerve_log_set_level(NERVE_LOG_WARN);
    cli_t cli = {.timeout_ms = CLI_DEFAULT_TIMEOUT_MS};
    static const cli_opt_t opts[] = {
        {"version", 'V', false, OPT_VERB},
        {NULL, 0, false, 0},
    };
    cli_args_t it;
    cli_args_init(&it, "nerve", argc, argv, 1);
    const char *value;
    int rc = CLI_USAGE;
    for (;;) {
        int at = it.i;
        int id = cli_args_next(&it, opts, &value);
        if (id == CLI_ARG_ERR)
            return CLI_USAGE;
        if (id == CLI_ARG_END) {
            s_usage(stderr);
            return CLI_USAGE;
        }
        if (id == OPT_HELP) {
            s_usage(stdout);
            return CLI_OK;
        }
        if (id == OPT_VERB) {
            printf("nerve %s\n", NERVE_VERSION);
            return CLI_OK;
        }
        if (id != CLI_ARG_POS) {
            if ((rc = cli_common_opt(&cli, "nerve", id, value)) != CLI_OK)
                return rc;
            continue;
        }
        for (size_t i = 0; i < sizeof s_verbs / sizeof s_verbs[0]; i++) {
            if (strcmp(value, s_verbs[i].name) == 0) {
                rc = s_verbs[i].run(&cli, argc - at, argv + at);
                cli_free(&cli);
                cli_zmq_term();
                fflush(stdout);
                if (ferror(stdout) && rc == CLI_OK)
                    rc = CLI_FAIL; /* output lost (full disk, closed pipe) */
                return rc;
            }
        }
        return cli_usage_error("nerve", "unknown verb '%s'", value);
    }
}
