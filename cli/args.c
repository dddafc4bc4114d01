/*  args.c — the CLI's option parser.

    getopt_long would permute arguments and read "-3" as an option, and
    `nerve registers set s k -3` or `nerve fire /t n=-1` must not break.
    So this parser knows exactly the options a verb declares: "--name",
    "--name=value", "-x value"; "--" ends the options; a word that starts
    with '-' followed by a digit, or "-" alone, is a positional word.
    Endpoints and the timeout are understood by every verb, so they can be
    written before or after it.
*/
#include "cli.h"

#include <nerve/conf.h>
#include <nerve/error.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const cli_opt_t s_common[] = {
    {"help", 'h', false, OPT_HELP},
    {"control", 0, true, OPT_CONTROL},
    {"tap", 0, true, OPT_TAP},
    {"events", 0, true, OPT_EVENTS},
    {"publisher-control", 0, true, OPT_PUBCTL},
    {"config", 'c', true, OPT_CONFIG},
    {"timeout", 0, true, OPT_TIMEOUT},
    {"keys", 0, true, OPT_KEYS},
    {"manager-key", 0, true, OPT_MANAGER_KEY},
    {"publisher-key", 0, true, OPT_PUBLISHER_KEY},
    {NULL, 0, false, 0},
};

void cli_args_init(cli_args_t *self, const char *cmd, int argc, char **argv, int first)
{
    memset(self, 0, sizeof *self);
    self->cmd = cmd;
    self->argc = argc;
    self->argv = argv;
    self->i = first;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see '%s --help')\n", cmd);
    va_end(ap);
    return CLI_USAGE;
}

static const cli_opt_t *s_find_long(const cli_opt_t *opts, const char *name, size_t len)
{
    for (const cli_opt_t *o = opts; o && o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

static const cli_opt_t *s_find_short(const cli_opt_t *opts, char c)
{
    for (const cli_opt_t *o = opts; o && o->name; o++)
        if (o->short_name && o->short_name == c)
            return o;
    return NULL;
}

int cli_args_next(cli_args_t *self, const cli_opt_t *opts, const char **value)
{
    *value = NULL;
    if (self->i >= self->argc)
        return CLI_ARG_END;
    const char *arg = self->argv[self->i++];
    bool number = (arg[1] >= '0' && arg[1] <= '9') ||
                  (arg[1] == '.' && arg[2] >= '0' && arg[2] <= '9');
    bool word = self->only_positional || arg[0] != '-' || arg[1] == '\0' || number;
    if (word) {
        *value = arg;
        return CLI_ARG_POS;
    }
    if (strcmp(arg, "--") == 0) {
        self->only_positional = true;
        return cli_args_next(self, opts, value);
    }
    const cli_opt_t *o = NULL;
    const char *inline_value = NULL;
    if (arg[1] == '-') {
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        o = s_find_long(opts, name, len);
        if (!o)
            o = s_find_long(s_common, name, len);
        if (eq)
            inline_value = eq + 1;
    } else if (arg[2] == '\0') {
        o = s_find_short(opts, arg[1]);
        if (!o)
            o = s_find_short(s_common, arg[1]);
    }
    if (!o) {
        cli_usage_error(self->cmd, "unknown option '%s'", arg);
        return CLI_ARG_ERR;
    }
    if (!o->has_value) {
        if (inline_value) {
            cli_usage_error(self->cmd, "option '--%s' takes no value", o->name);
            return CLI_ARG_ERR;
        }
        return o->id;
    }
    if (inline_value) {
        *value = inline_value;
        return o->id;
    }
    if (self->i >= self->argc) {
        cli_usage_error(self->cmd, "option '%s' needs a value", arg);
        return CLI_ARG_ERR;
    }
    *value = self->argv[self->i++];
    return o->id;
}

int cli_common_opt(cli_t *cli, const char *cmd, int id, const char *value)
{
    switch (id) {
    case OPT_CONTROL: cli->opt_control = value; break;
    case OPT_TAP: cli->opt_tap = value; break;
    case OPT_EVENTS: cli->opt_events = value; break;
    case OPT_PUBCTL: cli->opt_pubctl = value; break;
    case OPT_CONFIG: cli->opt_config = value; break;
    case OPT_KEYS:
        cli->opt_keys = value;
        break;
    case OPT_MANAGER_KEY:
        cli->opt_manager_key = value;
        break;
    case OPT_PUBLISHER_KEY:
        cli->opt_publisher_key = value;
        break;
    case OPT_TIMEOUT: {
        uint64_t ms;
        if (nerve_duration_parse_ms(value, &ms) != 0 || ms == 0)
            return cli_usage_error(cmd, "--timeout wants a duration such as 5s or 500ms, not '%s'",
                                   value);
        cli->timeout_ms = ms;
        break;
    }
    default: return cli_usage_error(cmd, "option not valid here");
    }
    if (cli->resolved && id != OPT_TIMEOUT)
        cli_free(cli); /* endpoints change: resolve again */
    return CLI_OK;
}

int cli_parse_u64(const char *text, uint64_t *out)
{
    if (!text || !*text || *text == '-' || *text == '+')
        return NERVE_EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end)
        return NERVE_EINVAL;
    *out = v;
    return 0;
}

int cli_parse_double(const char *text, double *out)
{
    if (!text || !*text)
        return NERVE_EINVAL;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || *end || !isfinite(v))
        return NERVE_EINVAL;
    *out = v;
    return 0;
}
