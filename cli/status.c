/*  status.c — `nerve status` and `nerve actors`: is everything healthy?

    status asks the manager and the publisher at the same time (two
    DEALERs, one deadline), so a dead publisher costs one timeout, not
    two, and prints one summary an SRE can read at a glance: uptime,
    event and reaction counters with average rates, the last reload and
    its error, live actors. Exit 0 when both answered and the last reload
    worked; 1 when the manager answered but something is wrong (publisher
    unreachable, last reload failed); 3 when the manager did not answer.
*/
#include "cli.h"

#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/value.h>

#include <string.h>

enum { OPT_JSON = OPT_VERB };

static const cli_opt_t s_opts[] = {
    {"json", 0, false, OPT_JSON},
    {NULL, 0, false, 0},
};

static void s_status_usage(FILE *out)
{
    fprintf(out, "usage: nerve status [--json]\n"
                 "\n"
                 "Health of the manager (control socket) and the publisher (its control\n"
                 "socket): uptime, version, event and reaction counters, last reload and its\n"
                 "error, live actors.\n"
                 "\n"
                 "  --json   print {\"manager\": …, \"publisher\": …} as one JSON line\n"
                 "\n"
                 "Exit 0 all healthy; 1 publisher unreachable or last reload failed;\n"
                 "3 manager unreachable.\n");
}

/*  Parses a verb's options when its only option is --json (and the
    common ones). Returns CLI_OK, or the exit code to return now (with
    *done set). */
static int s_parse_json_only(cli_t *cli, const char *cmd, int argc, char **argv,
                             void (*usage)(FILE *), bool *json, bool *done)
{
    cli_args_t it;
    cli_args_init(&it, cmd, argc, argv, 1);
    const char *value;
    *done = true;
    for (;;) {
        int id = cli_args_next(&it, s_opts, &value);
        switch (id) {
        case CLI_ARG_END: *done = false; return CLI_OK;
        case CLI_ARG_ERR: return CLI_USAGE;
        case CLI_ARG_POS: return cli_usage_error(cmd, "unexpected argument '%s'", value);
        case OPT_HELP: usage(stdout); return CLI_OK;
        case OPT_JSON: *json = true; break;
        default: {
            int rc = cli_common_opt(cli, cmd, id, value);
            if (rc != CLI_OK)
                return rc;
        }
        }
    }
}

static double s_rate(uint64_t count, uint64_t uptime_s)
{
    return uptime_s ? (double)count / (double)uptime_s : 0.0;
}

/*  "  security   curve (events)  key …  admitted 3  refused 1 unknown,
    0 rejected  pending 1  unauthorized 0". */
static void s_print_security(const msgpack_object *sec)
{
    char mode[64], key[64];
    if (!sec || sec->type != MSGPACK_OBJECT_MAP)
        return;
    const msgpack_object *curve = nerve_obj_get(sec, "curve");
    const msgpack_object *zap = nerve_obj_get(sec, "zap");
    printf("  security   %s", cli_get_str(sec, "mode", mode, sizeof mode));
    if (curve && curve->type == MSGPACK_OBJECT_ARRAY && curve->via.array.size) {
        printf(" (");
        for (uint32_t i = 0; i < curve->via.array.size; i++) {
            const char *p;
            size_t n;
            if (nerve_obj_str(&curve->via.array.ptr[i], &p, &n))
                printf("%s%.*s", i ? ", " : "", (int)n, p);
        }
        printf(")");
    }
    if (cli_get_str(sec, "public_key", key, sizeof key)[0])
        printf("  key %s", key);
    if (zap && zap->type == MSGPACK_OBJECT_MAP)
        printf("  admitted %llu  refused %llu unknown, %llu rejected  pending %llu"
               "  unauthorized %llu",
               (unsigned long long)cli_get_u64(zap, "admitted"),
               (unsigned long long)cli_get_u64(zap, "refused_unknown"),
               (unsigned long long)cli_get_u64(zap, "refused_rejected"),
               (unsigned long long)cli_get_u64(zap, "recorded_pending"),
               (unsigned long long)cli_get_u64(zap, "unauthorized"));
    printf("\n");
}

static void s_print_manager(const msgpack_object *st)
{
    char id[256], version[64], up[32], err[1100], when[64];
    uint64_t uptime = cli_get_u64(st, "uptime_s");
    const msgpack_object *ev = nerve_obj_get(st, "events");
    const msgpack_object *ru = nerve_obj_get(st, "rules");
    const msgpack_object *re = nerve_obj_get(st, "reactions");
    const msgpack_object *rg = nerve_obj_get(st, "registers");
    const msgpack_object *ac = nerve_obj_get(st, "actors");
    const msgpack_object *rl = nerve_obj_get(st, "reload");

    printf("manager    %s  nerve-manager %s  up %s%s\n", cli_get_str(st, "id", id, sizeof id),
           cli_get_str(st, "version", version, sizeof version),
           cli_fmt_duration_ms(uptime * 1000, up, sizeof up),
           cli_get_bool(st, "insecure", false) ? "  (INSECURE: no CURVE)" : "");
    s_print_security(nerve_obj_get(st, "security"));
    /* accepted counts the manager's own events too (injected: fired by
       reactions, presence, reloads), so it can exceed received. */
    printf("  events     received %llu (%.1f/s)  injected %llu  accepted %llu  matched %llu  "
           "rejected %llu",
           (unsigned long long)cli_get_u64(ev, "received"),
           s_rate(cli_get_u64(ev, "received"), uptime),
           (unsigned long long)cli_get_u64(ev, "injected"),
           (unsigned long long)cli_get_u64(ev, "accepted"),
           (unsigned long long)cli_get_u64(ev, "matched"),
           (unsigned long long)cli_get_u64(ev, "rejected"));
    const msgpack_object *by = nerve_obj_get(ev, "rejected_by");
    if (by && by->type == MSGPACK_OBJECT_MAP && by->via.map.size) {
        printf(" (");
        for (uint32_t i = 0; i < by->via.map.size; i++) {
            char name[64];
            const msgpack_object *k = &by->via.map.ptr[i].key;
            const msgpack_object *v = &by->via.map.ptr[i].val;
            if (!nerve_obj_strcpy(k, name, sizeof name))
                snprintf(name, sizeof name, "?");
            printf("%s%s %llu", i ? ", " : "", name,
                   (unsigned long long)(v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? v->via.u64
                                                                                   : 0));
        }
        printf(")");
    }
    printf("\n");
    printf("  rules      %llu in %llu blocks  evaluated %llu  fired %llu  errors %llu"
           "  waiting (for) %llu  cooldown %llu\n",
           (unsigned long long)cli_get_u64(ru, "count"),
           (unsigned long long)cli_get_u64(ru, "blocks"),
           (unsigned long long)cli_get_u64(ru, "evaluated"),
           (unsigned long long)cli_get_u64(ru, "fired"),
           (unsigned long long)cli_get_u64(ru, "errors"),
           (unsigned long long)cli_get_u64(ru, "waiting_for"),
           (unsigned long long)cli_get_u64(ru, "cooldown"));
    printf("  reactions  produced %llu (%.1f/s)  sent %llu  pending %llu  acked %llu"
           "  retried %llu  expired %llu  unroutable %llu\n",
           (unsigned long long)cli_get_u64(re, "produced"),
           s_rate(cli_get_u64(re, "produced"), uptime),
           (unsigned long long)cli_get_u64(re, "sent"),
           (unsigned long long)cli_get_u64(re, "pending"),
           (unsigned long long)cli_get_u64(re, "acked"),
           (unsigned long long)cli_get_u64(re, "retried"),
           (unsigned long long)cli_get_u64(re, "expired"),
           (unsigned long long)cli_get_u64(re, "unroutable"));
    printf("  local      queued %llu  done %llu  failed %llu  refused %llu\n",
           (unsigned long long)cli_get_u64(re, "local_queued"),
           (unsigned long long)cli_get_u64(re, "local_done"),
           (unsigned long long)cli_get_u64(re, "local_failed"),
           (unsigned long long)cli_get_u64(re, "local_refused"));
    printf("  registers  commits %llu  errors %llu  dirty %llu  cached %llu  slowest commit %s\n",
           (unsigned long long)cli_get_u64(rg, "commits"),
           (unsigned long long)cli_get_u64(rg, "commit_errors"),
           (unsigned long long)cli_get_u64(rg, "dirty"),
           (unsigned long long)cli_get_u64(rg, "cached"),
           cli_fmt_duration_ms(cli_get_u64(rg, "max_commit_us") / 1000, up, sizeof up));
    printf("  actors     %llu live  (joined %llu, lost %llu)\n",
           (unsigned long long)cli_get_u64(ac, "live"),
           (unsigned long long)cli_get_u64(ac, "joined"),
           (unsigned long long)cli_get_u64(ac, "lost"));
    uint64_t at = cli_get_u64(rl, "at_ns");
    printf("  reload     %s", cli_get_bool(rl, "ok", true) ? "ok" : "FAILED");
    if (at)
        printf(" at %s", cli_fmt_date(at, when, sizeof when));
    printf("  (attempts %llu, failures %llu)\n", (unsigned long long)cli_get_u64(rl, "attempts"),
           (unsigned long long)cli_get_u64(rl, "failures"));
    if (!cli_get_bool(rl, "ok", true))
        printf("             %s\n", cli_get_str(rl, "error", err, sizeof err));
}

static void s_print_publisher(const msgpack_object *st)
{
    char version[64], up[32], mode[64];
    const msgpack_object *sec = nerve_obj_get(st, "security");
    printf("publisher  nerve-publisher %s  up %s  relayed %llu  dropped %llu  "
           "subscriptions %llu  security %s%s\n",
           cli_get_str(st, "version", version, sizeof version),
           cli_fmt_duration_ms(cli_get_u64(st, "uptime_s") * 1000, up, sizeof up),
           (unsigned long long)cli_get_u64(st, "relayed"),
           (unsigned long long)cli_get_u64(st, "dropped"),
           (unsigned long long)cli_get_u64(st, "subscriptions"),
           cli_get_str(sec, "mode", mode, sizeof mode)[0] ? mode : "?",
           cli_get_bool(st, "insecure", false) ? " (INSECURE: no CURVE)" : "");
}

/*  {"error": msg, "endpoint": ep} for a daemon that did not answer. */
static void s_pack_down(msgpack_packer *pk, const char *msg, const char *ep)
{
    msgpack_pack_map(pk, 2);
    msgpack_pack_str_with_body(pk, "error", 5);
    msgpack_pack_str_with_body(pk, msg, strlen(msg));
    msgpack_pack_str_with_body(pk, "endpoint", 8);
    msgpack_pack_str_with_body(pk, ep, strlen(ep));
}

int cli_status(cli_t *cli, int argc, char **argv)
{
    bool json = false, done;
    int rc = s_parse_json_only(cli, "nerve status", argc, argv, s_status_usage, &json, &done);
    if (done)
        return rc;
    if ((rc = cli_resolve(cli)) != CLI_OK)
        return rc;
    cli_conn_t *mgr = cli_conn_new(cli, cli->control, cli->manager_key);
    cli_conn_t *pub = cli_conn_new(cli, cli->pubctl, cli->publisher_key);
    if (!mgr || !pub) {
        cli_conn_destroy(&mgr);
        cli_conn_destroy(&pub);
        return CLI_FAIL;
    }
    /* Both requests in flight at once: one deadline for both. */
    uint64_t deadline = nerve_clock_mono_ms() + cli->timeout_ms;
    cli_reply_t mrep, prep;
    int mrc = cli_conn_send(mgr, "status", NULL);
    int prc = cli_conn_send(pub, "status", NULL);
    mrc = mrc ? mrc : cli_conn_recv(mgr, deadline, &mrep);
    if (mrc == NERVE_EPERM) {
        /* The manager refused this CLI's key (cli_conn_recv said so): that
           is the whole answer, no use waiting for the publisher. */
        cli_conn_destroy(&mgr);
        cli_conn_destroy(&pub);
        return CLI_FAIL;
    }
    prc = prc ? prc : cli_conn_recv(pub, deadline, &prep);
    cli_conn_destroy(&mgr);
    cli_conn_destroy(&pub);

    char perr[1024] = "";
    if (prc == NERVE_ETIMEDOUT)
        snprintf(perr, sizeof perr, "unreachable at %s (no answer)", cli->pubctl);
    else if (prc == NERVE_EPERM)
        snprintf(perr, sizeof perr, "refused this CLI at %s (see above)", cli->pubctl);
    else if (prc != 0)
        snprintf(perr, sizeof perr, "bad reply from %s", cli->pubctl);
    else if (!prep.ok)
        cli_reply_error(&prep, perr, sizeof perr);

    if (mrc == NERVE_ETIMEDOUT) {
        cli_print_unreachable("manager", cli->control, "no answer", cli->timeout_ms);
        rc = CLI_UNREACHABLE;
    } else if (mrc != 0 || !mrep.ok) {
        char err[1024] = "not a reply of the control protocol";
        if (mrc == 0)
            cli_reply_error(&mrep, err, sizeof err);
        fprintf(stderr, "nerve: manager at %s: %s\n", cli->control, err);
        rc = CLI_FAIL;
    } else if (json) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init(&buf);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "manager", 7);
        msgpack_pack_object(&pk, mrep.body);
        msgpack_pack_str_with_body(&pk, "publisher", 9);
        if (perr[0])
            s_pack_down(&pk, perr, cli->pubctl);
        else
            msgpack_pack_object(&pk, prep.body);
        cli_print_packed(stdout, &buf);
        msgpack_sbuffer_destroy(&buf);
    } else {
        s_print_manager(&mrep.body);
        if (perr[0])
            printf("publisher  %s\n", perr);
        else
            s_print_publisher(&prep.body);
    }
    if (rc == CLI_OK) {
        const msgpack_object *rl = nerve_obj_get(&mrep.body, "reload");
        if (perr[0] || !cli_get_bool(rl, "ok", true))
            rc = CLI_FAIL;
    }
    if (mrc == 0)
        cli_reply_free(&mrep);
    if (prc == 0)
        cli_reply_free(&prep);
    return rc;
}

/* ------------------------------------------------------------------ actors */

static void s_actors_usage(FILE *out)
{
    fprintf(out, "usage: nerve actors [--json]\n"
                 "\n"
                 "Live actors the manager knows from their heartbeats: id, groups, version,\n"
                 "when it was last heard from, uptime.\n"
                 "\n"
                 "  --json   print the manager's list as one JSON line\n");
}

int cli_actors(cli_t *cli, int argc, char **argv)
{
    bool json = false, done;
    int rc = s_parse_json_only(cli, "nerve actors", argc, argv, s_actors_usage, &json, &done);
    if (done)
        return rc;
    cli_reply_t reply;
    if ((rc = cli_call(cli, "actors", NULL, &reply)) != CLI_OK)
        return rc;
    char err[1024];
    const msgpack_object *list = &reply.body;
    if (!reply.ok) {
        fprintf(stderr, "nerve: %s\n", cli_reply_error(&reply, err, sizeof err));
        rc = CLI_FAIL;
    } else if (json) {
        cli_print_json(stdout, list);
    } else if (list->type != MSGPACK_OBJECT_ARRAY || list->via.array.size == 0) {
        printf("no live actors\n");
    } else {
        printf("%-24s %-28s %-10s %-10s %s\n", "ID", "GROUPS", "VERSION", "LAST SEEN", "UPTIME");
        for (uint32_t i = 0; i < list->via.array.size; i++) {
            const msgpack_object *a = &list->via.array.ptr[i];
            char id[256], version[64], groups[256], seen[32], up[32], ago[40];
            const msgpack_object *g = nerve_obj_get(a, "groups");
            size_t len = 0;
            groups[0] = '\0';
            for (uint32_t j = 0; g && g->type == MSGPACK_OBJECT_ARRAY && j < g->via.array.size;
                 j++) {
                const char *p;
                size_t n;
                if (nerve_obj_str(&g->via.array.ptr[j], &p, &n) && len < sizeof groups)
                    len += (size_t)snprintf(groups + len, sizeof groups - len, "%s%.*s",
                                            j ? "," : "", (int)n, p);
            }
            cli_fmt_duration_ms(cli_get_u64(a, "last_seen_ms_ago"), seen, sizeof seen);
            snprintf(ago, sizeof ago, "%s ago", seen);
            printf("%-24s %-28s %-10s %-10s %s\n", cli_get_str(a, "id", id, sizeof id),
                   groups[0] ? groups : "-", cli_get_str(a, "version", version, sizeof version),
                   ago,
                   cli_fmt_duration_ms(cli_get_u64(a, "uptime_s") * 1000, up, sizeof up));
        }
    }
    cli_reply_free(&reply);
    return rc;
}
