/*  rules.c — `nerve rules check|list` and `nerve reload`.

    `rules check` is offline: it runs the manager's own loader
    (manager/rules.c ruleset_load) on the files, so it accepts and refuses
    exactly what a reload would — YAML, module resolution along the module
    path, chain references and cycles, template syntax — and reports the
    same "file:line:column: message". It needs no running manager, which
    is what a CI job or a pre-commit hook wants. `rules list` and `reload`
    ask the running manager.
*/
#include "cli.h"
#include "rules.h"

#include <nerve/conf.h>
#include <nerve/error.h>
#include <nerve/value.h>

#include <string.h>

enum { OPT_JSON = OPT_VERB, OPT_MODULES };

static const cli_opt_t s_opts[] = {
    {"json", 0, false, OPT_JSON},
    {"modules", 'm', true, OPT_MODULES},
    {NULL, 0, false, 0},
};

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: nerve rules check [PATH] [--modules DIR ...] [--json]\n"
            "       nerve rules list [--json]\n"
            "\n"
            "check   validates a rules file, or a directory of *.yaml, offline with the\n"
            "        manager's loader: YAML, modules resolve, chain references and cycles,\n"
            "        template syntax. Errors read file:line:column: message. Exit 1 on error.\n"
            "        PATH defaults to the manager's `rules`; modules are searched in each\n"
            "        --modules DIR (repeatable), else the manager's `modules` path.\n"
            "list    every rule the running manager has loaded: where it is, its glob,\n"
            "        rule and register functions, chain, and counters.\n"
            "\n"
            "  --json   machine-readable output\n");
}

static int s_print_check_json(bool ok, const char *path, const ruleset_t *rs, const char *error)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, ok ? 5 : 3);
    msgpack_pack_str_with_body(&pk, "ok", 2);
    ok ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    msgpack_pack_str_with_body(&pk, "path", 4);
    msgpack_pack_str_with_body(&pk, path, strlen(path));
    if (ok) {
        msgpack_pack_str_with_body(&pk, "rules", 5);
        msgpack_pack_uint64(&pk, rs->nrules);
        msgpack_pack_str_with_body(&pk, "blocks", 6);
        msgpack_pack_uint64(&pk, rs->nblocks);
        msgpack_pack_str_with_body(&pk, "files", 5);
        msgpack_pack_array(&pk, rs->nfiles);
        for (size_t i = 0; i < rs->nfiles; i++)
            msgpack_pack_str_with_body(&pk, rs->files[i], strlen(rs->files[i]));
    } else {
        msgpack_pack_str_with_body(&pk, "error", 5);
        msgpack_pack_str_with_body(&pk, error, strlen(error));
    }
    cli_print_packed(stdout, &buf);
    msgpack_sbuffer_destroy(&buf);
    return ok ? CLI_OK : CLI_FAIL;
}

static int s_check(cli_t *cli, const char *path, const char **dirs, size_t ndirs, bool json)
{
    int rc = cli_resolve(cli);
    if (rc != CLI_OK)
        return rc;
    if (!path)
        path = cli->rules;
    if (ndirs == 0) {
        dirs = (const char **)cli->modules;
        ndirs = cli->nmodules;
    }
    ruleset_t *rs = NULL;
    nerve_conf_error_t err;
    memset(&err, 0, sizeof err);
    int lrc = ruleset_load(path, dirs, ndirs, &rs, &err);
    if (lrc != 0) {
        const char *msg = err.message[0] ? err.message : nerve_strerror(lrc);
        if (json)
            rc = s_print_check_json(false, path, NULL, msg);
        else
            fprintf(stderr, "%s\n", msg);
        ruleset_destroy(&rs);
        return CLI_FAIL;
    }
    if (json)
        rc = s_print_check_json(true, path, rs, NULL);
    else
        printf("%s: ok, %zu rule%s in %zu block%s from %zu file%s\n", path, rs->nrules,
               rs->nrules == 1 ? "" : "s", rs->nblocks, rs->nblocks == 1 ? "" : "s", rs->nfiles,
               rs->nfiles == 1 ? "" : "s");
    ruleset_destroy(&rs);
    return rc;
}

/*  Joins a msgpack array of strings with sep into buf. */
static const char *s_join(const msgpack_object *arr, const char *sep, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; arr && arr->type == MSGPACK_OBJECT_ARRAY && i < arr->via.array.size;
         i++) {
        const char *p;
        size_t n;
        if (nerve_obj_str(&arr->via.array.ptr[i], &p, &n) && len < size)
            len += (size_t)snprintf(buf + len, size - len, "%s%.*s", i ? sep : "", (int)n, p);
    }
    return buf;
}

static int s_list(cli_t *cli, bool json)
{
    cli_reply_t reply;
    int rc = cli_call(cli, "rules.list", NULL, &reply);
    if (rc != CLI_OK)
        return rc;
    char err[1024];
    const msgpack_object *list = &reply.body;
    if (!reply.ok) {
        fprintf(stderr, "nerve rules list: %s\n", cli_reply_error(&reply, err, sizeof err));
        rc = CLI_FAIL;
    } else if (json) {
        cli_print_json(stdout, list);
    } else if (list->type != MSGPACK_OBJECT_ARRAY || list->via.array.size == 0) {
        printf("no rules loaded\n");
    } else {
        /* Column widths from the data, capped so one long name cannot push
           the counters off the screen. */
        static const char *cols[] = {"name", "glob", "rule", "register", "where"};
        static const char *heads[] = {"NAME", "GLOB", "RULE", "REGISTER", "WHERE"};
        int width[5];
        for (int c = 0; c < 5; c++)
            width[c] = (int)strlen(heads[c]);
        for (uint32_t i = 0; i < list->via.array.size; i++) {
            for (int c = 0; c < 5; c++) {
                char v[300];
                int w = (int)strlen(cli_get_str(&list->via.array.ptr[i], cols[c], v, sizeof v));
                if (w > width[c])
                    width[c] = w > 48 ? 48 : w;
            }
        }
        for (int c = 0; c < 5; c++)
            printf("%-*s  ", width[c], heads[c]);
        printf("%9s %9s\n", "EVALUATED", "FIRED");
        for (uint32_t i = 0; i < list->via.array.size; i++) {
            const msgpack_object *r = &list->via.array.ptr[i];
            for (int c = 0; c < 5; c++) {
                char v[300];
                cli_get_str(r, cols[c], v, sizeof v);
                printf("%-*s  ", width[c], v[0] ? v : "-");
            }
            printf("%9llu %9llu\n", (unsigned long long)cli_get_u64(r, "evaluated"),
                   (unsigned long long)cli_get_u64(r, "fired"));
            char chain[1024], reactions[1024], extra[128] = "", d[32];
            s_join(nerve_obj_get(r, "chain"), ", ", chain, sizeof chain);
            s_join(nerve_obj_get(r, "reactions"), ", ", reactions, sizeof reactions);
            uint64_t for_n = cli_get_u64(r, "for"), cd = cli_get_u64(r, "cooldown_ms");
            size_t el = 0;
            if (for_n > 1)
                el += (size_t)snprintf(extra + el, sizeof extra - el, "  for %llu",
                                       (unsigned long long)for_n);
            if (cd && el < sizeof extra)
                snprintf(extra + el, sizeof extra - el, "  cooldown %s",
                         cli_fmt_duration_ms(cd, d, sizeof d));
            if (chain[0] || reactions[0] || extra[0])
                printf("    %s%s%s%s%s\n", chain[0] ? "chain: " : "", chain,
                       chain[0] && reactions[0] ? "  " : "", reactions[0] ? "→ " : "", reactions);
            if (extra[0])
                printf("   %s\n", extra);
        }
    }
    cli_reply_free(&reply);
    return rc;
}

int cli_rules(cli_t *cli, int argc, char **argv)
{
    const char *cmd = "nerve rules";
    const char *sub = NULL, *path = NULL;
    const char **dirs = calloc((size_t)argc + 1, sizeof *dirs);
    size_t ndirs = 0;
    bool json = false;
    if (!dirs) {
        fprintf(stderr, "%s: out of memory\n", cmd);
        return CLI_FAIL;
    }
    cli_args_t it;
    cli_args_init(&it, cmd, argc, argv, 1);
    const char *value;
    int rc = CLI_OK;
    for (bool parsing = true; parsing && rc == CLI_OK;) {
        int id = cli_args_next(&it, s_opts, &value);
        switch (id) {
        case CLI_ARG_END: parsing = false; break;
        case CLI_ARG_ERR: rc = CLI_USAGE; break;
        case OPT_HELP: s_usage(stdout); rc = -1; break;
        case OPT_JSON: json = true; break;
        case OPT_MODULES: dirs[ndirs++] = value; break;
        case CLI_ARG_POS:
            if (!sub)
                sub = value;
            else if (strcmp(sub, "check") == 0 && !path)
                path = value;
            else
                rc = cli_usage_error(cmd, "unexpected argument '%s'", value);
            break;
        default: rc = cli_common_opt(cli, cmd, id, value); break;
        }
    }
    if (rc == CLI_OK) {
        if (!sub)
            rc = cli_usage_error(cmd, "check or list?");
        else if (strcmp(sub, "check") == 0)
            rc = s_check(cli, path, dirs, ndirs, json);
        else if (strcmp(sub, "list") == 0 && ndirs == 0)
            rc = s_list(cli, json);
        else if (strcmp(sub, "list") == 0)
            rc = cli_usage_error(cmd, "--modules is for 'rules check'");
        else
            rc = cli_usage_error(cmd, "unknown subcommand '%s' (check or list)", sub);
    }
    free(dirs);
    return rc < 0 ? CLI_OK : rc;
}

/* ------------------------------------------------------------------ reload */

static void s_reload_usage(FILE *out)
{
    fprintf(out, "usage: nerve reload\n"
                 "\n"
                 "Reloads the manager's rules and modules now. A reload is atomic: when\n"
                 "anything fails to load, the old rules keep running, the error is printed\n"
                 "(file:line:column: message) and the exit code is 1.\n");
}

int cli_reload(cli_t *cli, int argc, char **argv)
{
    const char *cmd = "nerve reload";
    cli_args_t it;
    cli_args_init(&it, cmd, argc, argv, 1);
    const char *value;
    int rc = CLI_OK;
    for (bool parsing = true; parsing && rc == CLI_OK;) {
        int id = cli_args_next(&it, NULL, &value);
        switch (id) {
        case CLI_ARG_END: parsing = false; break;
        case CLI_ARG_ERR: rc = CLI_USAGE; break;
        case OPT_HELP: s_reload_usage(stdout); return CLI_OK;
        case CLI_ARG_POS: rc = cli_usage_error(cmd, "unexpected argument '%s'", value); break;
        default: rc = cli_common_opt(cli, cmd, id, value); break;
        }
    }
    if (rc != CLI_OK)
        return rc;
    cli_reply_t reply;
    if ((rc = cli_call(cli, "reload", NULL, &reply)) != CLI_OK)
        return rc;
    char err[1200];
    if (!reply.ok) {
        fprintf(stderr, "nerve reload: failed, the previous rules keep running:\n%s\n",
                cli_reply_error(&reply, err, sizeof err));
        rc = CLI_FAIL;
    } else {
        printf("reloaded: %llu rules in %llu blocks\n",
               (unsigned long long)cli_get_u64(&reply.body, "rules"),
               (unsigned long long)cli_get_u64(&reply.body, "blocks"));
    }
    cli_reply_free(&reply);
    return rc;
}
