/*  replay.c — `nerve replay FILE`: send recorded events again, or explain
    them.

    FILE holds JSON lines as `nerve watch --record` (or `watch --json`)
    writes them: {"type": "event", "tag", "host", "ts", "data", "hops"?};
    reaction lines are skipped. The whole file is read and checked before
    anything is sent, so a typo on line 900 does not leave a half-replayed
    incident behind. Events keep their original spacing, divided by
    --speed (0: as fast as the socket takes them), and get a fresh id and
    timestamp: they are new events that happen to look like old ones.

    --dry-run sends nothing: each event goes through the manager's explain
    (no side effects) and one line says which rules would fire. Registers
    are not advanced between the events of a dry run, so a rule that needs
    several events (averages, `for:`) is judged against today's state for
    each one — the offline rule test, not a simulation.
*/
#include "cli.h"

#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/paths.h>
#include <nerve/value.h>
#include <nerve/wire.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { OPT_SPEED = OPT_VERB, OPT_DRY_RUN, OPT_JSON };

static const cli_opt_t s_opts[] = {
    {"speed", 0, true, OPT_SPEED},
    {"dry-run", 'n', false, OPT_DRY_RUN},
    {"json", 0, false, OPT_JSON},
    {NULL, 0, false, 0},
};

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: nerve replay FILE [--speed X] [--dry-run] [--json]\n"
            "\n"
            "Sends the events recorded in FILE (JSON lines from `nerve watch --record`)\n"
            "to the manager again, with fresh ids and timestamps.\n"
            "\n"
            "  --speed X     original spacing divided by X (default 1; 0 = as fast as\n"
            "                possible; 10 = ten times faster)\n"
            "  -n, --dry-run send nothing: explain each event against the live rules and\n"
            "                print which rules would fire (registers are not advanced\n"
            "                between events)\n"
            "  --json        with --dry-run, print each explain report as a JSON line\n"
            "\n"
            "Exit 1 for a bad file (FILE:LINE: why) or a failed explain; 3 when the\n"
            "manager cannot be reached within the timeout.\n");
}

typedef struct record {
    const char *tag;
    const char *host;
    uint64_t ts;
    uint32_t hops;
    msgpack_object data;
    size_t line;
} record_t;

typedef struct recording {
    record_t *recs;
    size_t n, cap;
    size_t skipped; /* reaction lines */
    msgpack_zone *zone;
} recording_t;

static const char *s_zone_str(msgpack_zone *zone, const msgpack_object *o, size_t max)
{
    const char *p;
    size_t n;
    if (!nerve_obj_str(o, &p, &n) || n > max || memchr(p, '\0', n))
        return NULL;
    char *s = msgpack_zone_malloc(zone, n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/*  Checks one parsed line and appends it. Returns 0, 1 (skipped), or -1
    with the reason in err. */
static int s_add(recording_t *rec, const msgpack_object *v, size_t line, char *err, size_t size)
{
    if (v->type != MSGPACK_OBJECT_MAP) {
        snprintf(err, size, "not a JSON object");
        return -1;
    }
    const msgpack_object *type = nerve_obj_get(v, "type");
    if (type && !nerve_obj_str_eq(type, "event")) {
        if (nerve_obj_str_eq(type, "reaction")) {
            rec->skipped++;
            return 1;
        }
        snprintf(err, size, "\"type\" must be \"event\" (or \"reaction\", skipped)");
        return -1;
    }
    record_t r = {.line = line, .data = {.type = MSGPACK_OBJECT_MAP}};
    const msgpack_object *tag = nerve_obj_get(v, "tag");
    if (!tag || !(r.tag = s_zone_str(rec->zone, tag, NERVE_TAG_MAX))) {
        snprintf(err, size, "\"tag\" must be a string of 1 to %d bytes", NERVE_TAG_MAX);
        return -1;
    }
    nerve_wire_reason_t why = nerve_wire_check_tag(r.tag, strlen(r.tag));
    if (why != NERVE_WIRE_OK) {
        snprintf(err, size, "invalid tag '%s' (%s)", r.tag, nerve_wire_reason_name(why));
        return -1;
    }
    const msgpack_object *host = nerve_obj_get(v, "host");
    if (!host)
        r.host = nerve_hostname();
    else if (!(r.host = s_zone_str(rec->zone, host, NERVE_HOST_MAX)) || !r.host[0]) {
        snprintf(err, size, "\"host\" must be a string of 1 to %d bytes", NERVE_HOST_MAX);
        return -1;
    }
    const msgpack_object *ts = nerve_obj_get(v, "ts");
    if (ts && ts->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        snprintf(err, size, "\"ts\" must be nanoseconds since the epoch");
        return -1;
    }
    r.ts = ts ? ts->via.u64 : 0;
    const msgpack_object *hops = nerve_obj_get(v, "hops");
    if (hops && (hops->type != MSGPACK_OBJECT_POSITIVE_INTEGER || hops->via.u64 > NERVE_HOPS_MAX)) {
        snprintf(err, size, "\"hops\" must be 0 to %d", NERVE_HOPS_MAX);
        return -1;
    }
    r.hops = hops ? (uint32_t)hops->via.u64 : 0;
    const msgpack_object *data = nerve_obj_get(v, "data");
    if (data)
        r.data = *data;
    if (rec->n == rec->cap) {
        size_t cap = rec->cap ? rec->cap * 2 : 64;
        record_t *recs = realloc(rec->recs, cap * sizeof *recs);
        if (!recs) {
            snprintf(err, size, "out of memory");
            return -1;
        }
        rec->recs = recs;
        rec->cap = cap;
    }
    rec->recs[rec->n++] = r;
    return 0;
}

static int s_load(recording_t *rec, const char *path)
{
    const char *cmd = "nerve replay";
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot read %s: %s\n", cmd, path, strerror(errno));
        return CLI_FAIL;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    int rc = CLI_OK;
    while (rc == CLI_OK && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        size_t skip = strspn(line, " \t");
        if ((size_t)len == skip)
            continue;
        char err[512];
        msgpack_object v;
        if (nerve_obj_from_json(rec->zone, line, (size_t)len, &v, err, sizeof err) != 0 ||
            s_add(rec, &v, lineno, err, sizeof err) < 0) {
            fprintf(stderr, "%s:%zu: %s\n", path, lineno, err);
            rc = CLI_FAIL;
        }
    }
    if (rc == CLI_OK && ferror(f)) {
        fprintf(stderr, "%s: cannot read %s: %s\n", cmd, path, strerror(errno));
        rc = CLI_FAIL;
    }
    free(line);
    if (f != stdin)
        fclose(f);
    return rc;
}

/*  Sleeps until the monotonic clock reads `target_ns`. */
static void s_sleep_until(uint64_t target_ns)
{
    for (;;) {
        uint64_t now = nerve_clock_mono_ns();
        if (now >= target_ns)
            return;
        uint64_t left = target_ns - now;
        struct timespec ts = {(time_t)(left / 1000000000ull), (long)(left % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
}

static int s_send_all(cli_t *cli, const recording_t *rec, double speed)
{
    void *sock = cli_events_socket(cli);
    if (!sock)
        return CLI_FAIL;
    int rc = CLI_OK;
    uint64_t start = nerve_clock_mono_ns();
    uint64_t base = rec->n ? rec->recs[0].ts : 0;
    size_t sent = 0;
    for (size_t i = 0; i < rec->n && rc == CLI_OK; i++) {
        const record_t *r = &rec->recs[i];
        if (speed > 0 && r->ts > base) {
            double offset = (double)(r->ts - base) / speed;
            if (offset < 1e18)
                s_sleep_until(start + (uint64_t)offset);
        }
        rc = cli_send_event(cli, sock, r->tag, r->host, &r->data, r->hops, NULL);
        if (rc == CLI_OK)
            sent++;
        else if (rc == CLI_USAGE) { /* the event itself is bad: a bad file */
            fprintf(stderr, "nerve replay: line %zu cannot be sent\n", r->line);
            rc = CLI_FAIL;
        }
    }
    cli_events_close(cli, &sock);
    if (rc == CLI_OK)
        printf("replayed %zu event%s to %s\n", sent, sent == 1 ? "" : "s", cli->events);
    else
        fprintf(stderr, "nerve replay: stopped after %zu of %zu events\n", sent, rec->n);
    return rc;
}

static int s_explain_all(cli_t *cli, const recording_t *rec, bool json)
{
    cli_conn_t *conn = cli_conn_new(cli, cli->control, cli->manager_key);
    if (!conn)
        return CLI_FAIL;
    int rc = CLI_OK;
    msgpack_sbuffer req;
    msgpack_sbuffer_init(&req);
    for (size_t i = 0; i < rec->n; i++) {
        const record_t *r = &rec->recs[i];
        msgpack_sbuffer_clear(&req);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &req, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 3);
        msgpack_pack_str_with_body(&pk, "tag", 3);
        msgpack_pack_str_with_body(&pk, r->tag, strlen(r->tag));
        msgpack_pack_str_with_body(&pk, "host", 4);
        msgpack_pack_str_with_body(&pk, r->host, strlen(r->host));
        msgpack_pack_str_with_body(&pk, "data", 4);
        msgpack_pack_object(&pk, r->data);
        cli_reply_t reply;
        int crc = cli_conn_call(cli, conn, "manager", cli->control, "explain", &req, &reply);
        if (crc != CLI_OK) {
            rc = crc;
            break;
        }
        char text[2048];
        if (!reply.ok) {
            fprintf(stderr, "line %zu: %s: %s\n", r->line, r->tag,
                    cli_reply_error(&reply, text, sizeof text));
            rc = CLI_FAIL;
        } else if (json) {
            cli_print_json(stdout, &reply.body);
        } else {
            size_t firing;
            cli_explain_fires(&reply.body, text, sizeof text, &firing);
            printf("line %zu  %s  %s  → %s%s\n", r->line, r->tag, r->host,
                   firing ? "fires " : "nothing fires", text);
        }
        cli_reply_free(&reply);
    }
    msgpack_sbuffer_destroy(&req);
    cli_conn_destroy(&conn);
    return rc;
}

int cli_replay(cli_t *cli, int argc, char **argv)
{
    const char *cmd = "nerve replay";
    const char *path = NULL;
    double speed = 1.0;
    bool dry_run = false, json = false;
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
        case OPT_DRY_RUN: dry_run = true; break;
        case OPT_JSON: json = true; break;
        case OPT_SPEED:
            if (cli_parse_double(value, &speed) != 0 || speed < 0)
                rc = cli_usage_error(cmd, "--speed wants a number >= 0, not '%s'", value);
            break;
        case CLI_ARG_POS:
            if (!path)
                path = value;
            else
                rc = cli_usage_error(cmd, "one FILE at most ('%s' is a second)", value);
            break;
        default: rc = cli_common_opt(cli, cmd, id, value); break;
        }
    }
    if (rc != CLI_OK)
        return rc;
    if (!path)
        return cli_usage_error(cmd, "which file? as written by `nerve watch --record FILE`");
    if (json && !dry_run)
        return cli_usage_error(cmd, "--json goes with --dry-run");
    recording_t rec = {.zone = msgpack_zone_new(64 * 1024)};
    if (!rec.zone) {
        fprintf(stderr, "%s: out of memory\n", cmd);
        return CLI_FAIL;
    }
    rc = s_load(&rec, path);
    if (rc == CLI_OK)
        rc = cli_resolve(cli);
    if (rc == CLI_OK && rec.n == 0)
        fprintf(stderr, "%s: no events in %s%s\n", cmd, path,
                rec.skipped ? " (only reactions)" : "");
    else if (rc == CLI_OK)
        rc = dry_run ? s_explain_all(cli, &rec, json) : s_send_all(cli, &rec, speed);
    free(rec.recs);
    msgpack_zone_free(rec.zone);
    return rc;
}
