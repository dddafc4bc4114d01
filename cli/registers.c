/*  registers.c — `nerve registers list|get|set|del`: the state rules keep.

    A register state is addressed by SCOPE (a rule's `scope:`, by default
    "<file stem>/<rule name>") and KEY (the rule's `key:`, by default the
    event's host). The manager shows a state as its msgpack value when it
    is one (registers.store), else as {"state_bytes": N}; set writes a
    JSON value, which is how an operator seeds or repairs a store.
*/
#include "cli.h"

#include <nerve/error.h>
#include <nerve/value.h>

#include <string.h>

enum { OPT_JSON = OPT_VERB };

static const cli_opt_t s_opts[] = {
    {"json", 0, false, OPT_JSON},
    {NULL, 0, false, 0},
};

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: nerve registers list [PREFIX] [--json]\n"
            "       nerve registers get SCOPE KEY\n"
            "       nerve registers set SCOPE KEY VALUE\n"
            "       nerve registers del SCOPE KEY\n"
            "\n"
            "Register states in the manager's store. SCOPE is a rule's scope (its `scope:`,\n"
            "or \"<file stem>/<rule name>\"), KEY the rule's key (default: the event's host).\n"
            "\n"
            "list    states whose scope starts with PREFIX (all without one)\n"
            "get     one state, as JSON\n"
            "set     writes VALUE, a JSON value ('{\"n\": 1}', 5, '\"text\"')\n"
            "del     removes one state\n"
            "\n"
            "  --json   list as one JSON line\n");
}

static void s_pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static int s_print_list(const msgpack_object *list, bool json)
{
    if (json)
        return cli_print_json(stdout, list) == 0 ? CLI_OK : CLI_FAIL;
    if (list->type != MSGPACK_OBJECT_ARRAY || list->via.array.size == 0) {
        printf("no registers\n");
        return CLI_OK;
    }
    int ws = 5, wk = 3;
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        char v[300];
        int n = (int)strlen(cli_get_str(&list->via.array.ptr[i], "scope", v, sizeof v));
        ws = n > ws ? (n > 48 ? 48 : n) : ws;
        n = (int)strlen(cli_get_str(&list->via.array.ptr[i], "key", v, sizeof v));
        wk = n > wk ? (n > 40 ? 40 : n) : wk;
    }
    printf("%-*s  %-*s  %s\n", ws, "SCOPE", wk, "KEY", "VALUE");
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        const msgpack_object *r = &list->via.array.ptr[i];
        char scope[300], key[300], value[1024];
        const msgpack_object *v = nerve_obj_get(r, "value");
        printf("%-*s  %-*s  %s\n", ws, cli_get_str(r, "scope", scope, sizeof scope), wk,
               cli_get_str(r, "key", key, sizeof key),
               v ? cli_json(v, value, sizeof value) : "null");
    }
    return CLI_OK;
}

int cli_registers(cli_t *cli, int argc, char **argv)
{
    const char *cmd = "nerve registers";
    const char *words[4];
    size_t nwords = 0;
    bool json = false;
    cli_args_t it;
    cli_args_init(&it, cmd, argc, argv, 1);
    const char *value;
    int rc = CLI_OK;
    for (bool parsing = true; parsing && rc == CLI_OK;) {
        int id = cli_args_next(&it, s_opts, &value);
        switch (id) {
        case CLI_ARG_END: parsing = false; break;
        case CLI_ARG_ERR: rc = CLI_USAGE; break;
        case OPT_HELP: s_usage(stdout); return CLI_OK;
        case OPT_JSON: json = true; break;
        case CLI_ARG_POS:
            if (nwords < 4)
                words[nwords++] = value;
            else
                rc = cli_usage_error(cmd, "unexpected argument '%s'", value);
            break;
        default: rc = cli_common_opt(cli, cmd, id, value); break;
        }
    }
    if (rc != CLI_OK)
        return rc;
    if (nwords == 0)
        return cli_usage_error(cmd, "list, get, set or del?");

    static const struct {
        const char *sub, *verb;
        size_t nargs; /* words after the subcommand */
        const char *args;
    } subs[] = {
        {"list", "registers.list", 1, "[PREFIX]"},
        {"get", "registers.get", 2, "SCOPE KEY"},
        {"set", "registers.set", 3, "SCOPE KEY VALUE"},
        {"del", "registers.del", 2, "SCOPE KEY"},
    };
    size_t s = 0;
    while (s < 4 && strcmp(words[0], subs[s].sub) != 0)
        s++;
    if (s == 4)
        return cli_usage_error(cmd, "unknown subcommand '%s' (list, get, set or del)", words[0]);
    size_t nargs = nwords - 1;
    if (s == 0 ? nargs > 1 : nargs != subs[s].nargs)
        return cli_usage_error(cmd, "usage: registers %s %s", subs[s].sub, subs[s].args);

    msgpack_sbuffer req;
    msgpack_sbuffer_init(&req);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &req, msgpack_sbuffer_write);
    msgpack_zone *zone = msgpack_zone_new(1024);
    if (!zone) {
        fprintf(stderr, "%s: out of memory\n", cmd);
        msgpack_sbuffer_destroy(&req);
        return CLI_FAIL;
    }
    if (s == 0) {
        msgpack_pack_map(&pk, nargs);
        if (nargs) {
            s_pack_str(&pk, "prefix");
            s_pack_str(&pk, words[1]);
        }
    } else {
        msgpack_pack_map(&pk, s == 2 ? 3 : 2);
        s_pack_str(&pk, "scope");
        s_pack_str(&pk, words[1]);
        s_pack_str(&pk, "key");
        s_pack_str(&pk, words[2]);
        if (s == 2) {
            char err[256];
            msgpack_object v;
            if (nerve_obj_from_json(zone, words[3], strlen(words[3]), &v, err, sizeof err) != 0) {
                rc = cli_usage_error(cmd,
                                     "VALUE must be JSON (%s); quote a string as '\"%s\"'", err,
                                     words[3]);
                goto done;
            }
            s_pack_str(&pk, "value");
            msgpack_pack_object(&pk, v);
        }
    }
    cli_reply_t reply;
    if ((rc = cli_call(cli, subs[s].verb, &req, &reply)) != CLI_OK)
        goto done;
    char err[1024];
    if (!reply.ok) {
        fprintf(stderr, "nerve registers %s: %s\n", subs[s].sub,
                cli_reply_error(&reply, err, sizeof err));
        rc = CLI_FAIL;
    } else if (s == 0) {
        rc = s_print_list(&reply.body, json);
    } else if (s == 1) {
        cli_print_json(stdout, &reply.body);
    }
    cli_reply_free(&reply);
done:
    msgpack_zone_free(zone);
    msgpack_sbuffer_destroy(&req);
    return rc;
}
