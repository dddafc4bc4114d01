/*  keys.c — `nerve keys`: the CURVE keys of this host, like salt-key.

        nerve keys gen NAME        a keypair NAME.pub + NAME.secret (0600)
        nerve keys list [--json]   local, accepted, pending, rejected
        nerve keys accept NAME     pending/ or rejected/ → accepted/
        nerve keys reject NAME     pending/ or accepted/ → rejected/
        nerve keys revoke NAME     accepted/ → rejected/

    Everything is lib/security.c on the keys directory: --keys DIR, else
    the manager config's `security: keys:`, else $NERVE_HOME/keys. The
    daemons' ZAP handlers watch that directory, so accept, reject and
    revoke take effect within about a second, without a restart; this
    verb talks to no daemon.
*/
#include "cli.h"

#include <nerve/error.h>
#include <nerve/security.h>

#include <string.h>

enum { OPT_JSON = OPT_VERB };

static const cli_opt_t s_opts[] = {
    {"json", 0, false, OPT_JSON},
    {NULL, 0, false, 0},
};

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: nerve keys gen NAME | list [--json] | accept NAME | reject NAME |\n"
            "                  revoke NAME   [--keys DIR]\n"
            "\n"
            "Manages the CURVE keys of this host (docs/security.md):\n"
            "  gen NAME      make a keypair NAME.pub and NAME.secret (mode 0600); never\n"
            "                overwrites\n"
            "  list          keys by state: local (keypairs of this host, and servers' keys to\n"
            "                pin), accepted, pending (unknown keys that tried to connect),\n"
            "                rejected; --json prints one JSON line\n"
            "  accept NAME   let a pending (or rejected) key in\n"
            "  reject NAME   refuse a key for good\n"
            "  revoke NAME   take an accepted key back; connected peers are cut off\n"
            "\n"
            "  --keys DIR    the keys directory (default: the manager config's\n"
            "                security.keys, else $NERVE_HOME/keys)\n"
            "\n"
            "Running daemons pick up accept, reject and revoke within about a second.\n"
            "Exit 0 done; 1 failed (no such key, unsafe permissions, …); 2 usage.\n");
}

typedef struct list_ctx {
    bool json;
    nerve_key_state_t state; /* the section printed last (text), or 0 */
    bool first;              /* JSON: no entry in the current array yet */
    size_t count;
} list_ctx_t;

static const char *s_section(nerve_key_state_t state)
{
    switch (state) {
    case NERVE_KEY_LOCAL:
        return "Local keys (keypairs of this host, servers' keys to pin):";
    case NERVE_KEY_ACCEPTED:
        return "Accepted keys:";
    case NERVE_KEY_PENDING:
        return "Pending keys (`nerve keys accept NAME` lets one in):";
    case NERVE_KEY_REJECTED:
        return "Rejected keys:";
    }
    return "?";
}

/*  Opens the JSON arrays (and text sections) up to `state`, so empty
    states show too. */
static void s_advance(list_ctx_t *ctx, nerve_key_state_t state)
{
    while (ctx->state < state) {
        if (ctx->json)
            printf("%s\"%s\":[", ctx->state ? "]," : "",
                   nerve_key_state_name((nerve_key_state_t)(ctx->state + 1)));
        else
            printf("%s%s\n", ctx->state ? "\n" : "",
                   s_section((nerve_key_state_t)(ctx->state + 1)));
        ctx->state++;
        ctx->first = true;
    }
}

static int s_list_one(nerve_key_state_t state, const char *name, const char *z85, void *arg)
{
    list_ctx_t *ctx = arg;
    s_advance(ctx, state);
    ctx->count++;
    /* Names are key names and Z85 has neither '"' nor '\': safe in JSON as is. */
    if (ctx->json)
        printf("%s{\"name\":\"%s\",\"key\":%s%s%s}", ctx->first ? "" : ",", name, z85 ? "\"" : "",
               z85 ? z85 : "null", z85 ? "\"" : "");
    else
        printf("  %-24s %s\n", name, z85 ? z85 : "(unreadable: check its permissions)");
    ctx->first = false;
    return 0;
}

static int s_list(cli_t *cli, bool json)
{
    const char *dir = cli->security.keys;
    list_ctx_t ctx = {.json = json};
    char err[1024] = "";
    if (json)
        printf("{\"dir\":\"");
    if (json) {
        for (const char *p = dir; *p; p++) /* a path: escape what JSON needs */
            if (*p == '"' || *p == '\\')
                printf("\\%c", *p);
            else if ((unsigned char)*p < 0x20)
                printf("\\u%04x", (unsigned)(unsigned char)*p);
            else
                putchar(*p);
        printf("\",");
    } else {
        printf("keys directory %s\n\n", dir);
    }
    int rc = nerve_keys_list(dir, s_list_one, &ctx, err, sizeof err);
    s_advance(&ctx, NERVE_KEY_REJECTED);
    printf(json ? "]}\n" : "");
    if (rc != 0) {
        fprintf(stderr, "nerve keys list: %s\n", err[0] ? err : nerve_strerror(rc));
        return CLI_FAIL;
    }
    return CLI_OK;
}

typedef int (*key_op_t)(const char *dir, const char *name, char *err, size_t errsize);

static int s_op(cli_t *cli, const char *verb, const char *name)
{
    static const struct {
        const char *verb;
        key_op_t op;
        const char *done, *where, *ext;
    } ops[] = {
        {"gen", nerve_keys_gen, "made keypair", "", ".pub and .secret"},
        {"accept", nerve_keys_accept, "accepted", "accepted/", ".pub"},
        {"reject", nerve_keys_reject, "rejected", "rejected/", ".pub"},
        {"revoke", nerve_keys_revoke, "revoked", "rejected/", ".pub"},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (strcmp(ops[i].verb, verb) != 0)
            continue;
        char err[1024] = "";
        int rc = ops[i].op(cli->security.keys, name, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "nerve keys %s: %s\n", verb, err[0] ? err : nerve_strerror(rc));
            return CLI_FAIL;
        }
        printf("%s %s/%s%s%s\n", ops[i].done, cli->security.keys, ops[i].where, name, ops[i].ext);
        return CLI_OK;
    }
    return cli_usage_error("nerve keys",
                           "unknown keys verb '%s' (gen, list, accept, reject, "
                           "revoke)",
                           verb);
}

int cli_keys(cli_t *cli, int argc, char **argv)
{
    const char *cmd = "nerve keys";
    const char *words[3] = {NULL, NULL, NULL};
    size_t nwords = 0;
    bool json = false;
    cli_args_t it;
    cli_args_init(&it, cmd, argc, argv, 1);
    const char *value;
    for (;;) {
        int id = cli_args_next(&it, s_opts, &value);
        if (id == CLI_ARG_END)
            break;
        if (id == CLI_ARG_ERR)
            return CLI_USAGE;
        if (id == OPT_HELP) {
            s_usage(stdout);
            return CLI_OK;
        }
        if (id == OPT_JSON) {
            json = true;
        } else if (id == CLI_ARG_POS) {
            if (nwords == 2)
                return cli_usage_error(cmd, "unexpected argument '%s'", value);
            words[nwords++] = value;
        } else {
            int rc = cli_common_opt(cli, cmd, id, value);
            if (rc != CLI_OK)
                return rc;
        }
    }
    if (nwords == 0)
        return cli_usage_error(cmd, "which? gen NAME, list, accept NAME, reject NAME or "
                                    "revoke NAME");
    int rc = cli_resolve(cli);
    if (rc != CLI_OK)
        return rc;
    if (strcmp(words[0], "list") == 0) {
        if (nwords != 1)
            return cli_usage_error(cmd, "list takes no name");
        return s_list(cli, json);
    }
    if (json)
        return cli_usage_error(cmd, "--json goes with list");
    if (nwords != 2)
        return cli_usage_error(cmd, "%s needs a key NAME (as `nerve keys list` shows it)",
                               words[0]);
    return s_op(cli, words[0], words[1]);
}
