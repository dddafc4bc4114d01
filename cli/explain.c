/*  explain.c — `nerve explain`: why would this event fire, or not?

    The manager runs the event through its live rules with no side effects
    (control verb `explain`, engine_explain) and returns a report; this
    file draws it as a tree an operator can read top to bottom, the way
    the engine decided:

      event /t/ops  host web1
      ├─ block /t/ops  rules.yaml:2:1
      │  └─ rule r_and  rules.yaml:9:7  key web1
      │     ├─ input     1
      │     ├─ rule      rules.simple.gt → true
      │     ├─ chain     true AND false = false  (other)
      │     ├─ result    false
      │     └─ verdict   false
      └─ evaluated through chains
         └─ rule other …
      nothing would fire

    The event is given as TAG key=value… (the same words as `nerve fire`),
    or as a JSON file: an object with "tag" (and "host", "data") such as a
    line `nerve watch --record` wrote, or any JSON value taken as the data
    of TAG. --json prints the manager's report untouched.
*/
#include "cli.h"

#include <nerve/error.h>
#include <nerve/value.h>
#include <nerve/wire.h>

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define FILE_MAX (4u << 20) /* an event file larger than this is a mistake */

enum { OPT_JSON = OPT_VERB, OPT_FILE, OPT_HOST, OPT_DATA };

static const cli_opt_t s_opts[] = {
    {"json", 0, false, OPT_JSON}, {"file", 'f', true, OPT_FILE}, {"host", 0, true, OPT_HOST},
    {"data", 'd', true, OPT_DATA}, {NULL, 0, false, 0},
};

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: nerve explain TAG [key=value ...] [--data JSON] [--host H] [--json]\n"
            "       nerve explain --file EVENT.json [TAG] [--host H] [--json]\n"
            "\n"
            "Runs one event through the manager's live rules with no side effects (nothing\n"
            "is written, nothing fires) and prints, as a tree, the tag blocks that match,\n"
            "each rule's input, register value, result and chain arithmetic, for/cooldown\n"
            "state, verdict, and the reactions (resolved args and targets) that would fire.\n"
            "\n"
            "  key=value       data fields: values parse as JSON when they can (n=5 is a\n"
            "                  number, ok=true a boolean), else strings; a.b=1 nests\n"
            "  -d, --data JSON the data as JSON (key=value words override its fields)\n"
            "  -f, --file F    the event as JSON: {\"tag\", \"host\", \"data\"} (a line of\n"
            "                  `nerve watch --record`), or any value as TAG's data; - is stdin\n"
            "  --host H        the event's host (default: the manager's id)\n"
            "  --json          print the manager's report as JSON\n");
}

/* ----------------------------------------------------------- the tree */

typedef struct tree {
    char prefix[1024];
    size_t len;
} tree_t;

static void s_item(tree_t *t, bool last, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_item(tree_t *t, bool last, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%.*s%s", (int)t->len, t->prefix, last ? "└─ " : "├─ ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static size_t s_push(tree_t *t, bool last)
{
    size_t was = t->len;
    const char *more = last ? "   " : "│  ";
    size_t n = strlen(more);
    if (t->len + n < sizeof t->prefix) {
        memcpy(t->prefix + t->len, more, n);
        t->len += n;
    }
    return was;
}

/* ------------------------------------------------------------- rules */

#define RULE_LINES_MAX 64
#define RULE_LINE_LEN 1400

typedef struct lines {
    char text[RULE_LINES_MAX][RULE_LINE_LEN];
    size_t n;
} lines_t;

static void s_line(lines_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_line(lines_t *l, const char *fmt, ...)
{
    if (l->n >= RULE_LINES_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->text[l->n++], RULE_LINE_LEN, fmt, ap);
    va_end(ap);
}

static const char *s_tf(bool v)
{
    return v ? "true" : "false";
}

static void s_rule_lines(const msgpack_object *r, lines_t *l)
{
    char buf[512], name[300], json[1024];
    const msgpack_object *input = nerve_obj_get(r, "input");
    const msgpack_object *value = nerve_obj_get(r, "value");
    const char *verdict = cli_get_str(r, "verdict", (char[32]){0}, 32);
    bool chained_only = strcmp(verdict, "chained_only") == 0;

    s_line(l, "input     %s",
           input && input->type != MSGPACK_OBJECT_NIL ? cli_json(input, json, sizeof json)
                                                      : "(none: no number in the event)");
    if (cli_get_str(r, "register", name, sizeof name)[0])
        s_line(l, "register  %s = %s  (%s)", name,
               value && value->type != MSGPACK_OBJECT_NIL ? cli_json(value, json, sizeof json)
                                                          : "(no output)",
               cli_get_bool(r, "register_had_state", false) ? "had state" : "first value");
    s_line(l, "rule      %s → %s", cli_get_str(r, "rule", name, sizeof name),
           s_tf(cli_get_bool(r, "own", false)));
    const msgpack_object *chain = nerve_obj_get(r, "chain");
    for (uint32_t i = 0; chain && chain->type == MSGPACK_OBJECT_ARRAY && i < chain->via.array.size;
         i++) {
        const msgpack_object *c = &chain->via.array.ptr[i];
        char op[16];
        s_line(l, "chain     %s %s %s = %s  (%s)", s_tf(cli_get_bool(c, "before", false)),
               cli_get_str(c, "op", op, sizeof op), s_tf(cli_get_bool(c, "value", false)),
               s_tf(cli_get_bool(c, "after", false)), cli_get_str(c, "rule", name, sizeof name));
    }
    s_line(l, "result    %s", s_tf(cli_get_bool(r, "result", false)));
    const msgpack_object *f = nerve_obj_get(r, "for");
    const msgpack_object *cd = nerve_obj_get(r, "cooldown");
    uint64_t need = cli_get_u64(f, "need"), streak = cli_get_u64(f, "streak");
    uint64_t cd_ms = cli_get_u64(cd, "ms"), left_ms = cli_get_u64(cd, "remaining_ms");
    char d1[32], d2[32];
    if (!chained_only && need > 1)
        s_line(l, "for       %llu consecutive true so far, %llu needed",
               (unsigned long long)streak, (unsigned long long)need);
    if (!chained_only && cd_ms) {
        if (left_ms)
            s_line(l, "cooldown  %s, %s left", cli_fmt_duration_ms(cd_ms, d1, sizeof d1),
                   cli_fmt_duration_ms(left_ms, d2, sizeof d2));
        else
            s_line(l, "cooldown  %s, not cooling down", cli_fmt_duration_ms(cd_ms, d1, sizeof d1));
    }
    if (cli_get_str(r, "error", buf, sizeof buf)[0])
        s_line(l, "error     %s", buf);
    if (chained_only)
        s_line(l, "verdict   chained only (its own block did not match: it cannot fire)");
    else if (strcmp(verdict, "waiting_for") == 0)
        s_line(l, "verdict   waiting_for (%llu of %llu consecutive)", (unsigned long long)streak,
               (unsigned long long)need);
    else if (strcmp(verdict, "cooldown") == 0)
        s_line(l, "verdict   cooldown (silent for %s more)",
               cli_fmt_duration_ms(left_ms, d2, sizeof d2));
    else
        s_line(l, "verdict   %s", verdict);
    const msgpack_object *re = nerve_obj_get(r, "reactions");
    for (uint32_t i = 0; re && re->type == MSGPACK_OBJECT_ARRAY && i < re->via.array.size; i++) {
        const msgpack_object *x = &re->via.array.ptr[i];
        char target[320];
        const msgpack_object *args = nerve_obj_get(x, "args");
        s_line(l, "reaction  %s → %s  %s", cli_get_str(x, "fn", name, sizeof name),
               cli_get_str(x, "target", target, sizeof target),
               args ? cli_json(args, json, sizeof json) : "{}");
    }
}

static void s_print_rule(tree_t *t, bool last, const msgpack_object *r)
{
    char name[300], where[600], key[300];
    s_item(t, last, "rule %s  %s  key %s", cli_get_str(r, "name", name, sizeof name),
           cli_get_str(r, "where", where, sizeof where), cli_get_str(r, "key", key, sizeof key));
    size_t was = s_push(t, last);
    lines_t *l = calloc(1, sizeof *l);
    if (l) {
        s_rule_lines(r, l);
        for (size_t i = 0; i < l->n; i++)
            s_item(t, i + 1 == l->n, "%s", l->text[i]);
        free(l);
    }
    t->len = was;
}

static bool s_str_eq(const msgpack_object *o, const char *p, size_t n)
{
    const char *q;
    size_t m;
    return nerve_obj_str(o, &q, &m) && m == n && memcmp(p, q, n) == 0;
}

const char *cli_explain_fires(const msgpack_object *report, char *buf, size_t size,
                              size_t *count)
{
    const msgpack_object *rules = nerve_obj_get(report, "rules");
    size_t len = 0;
    *count = 0;
    buf[0] = '\0';
    for (uint32_t r = 0; rules && rules->type == MSGPACK_OBJECT_ARRAY && r < rules->via.array.size;
         r++) {
        char v[32], name[300];
        const msgpack_object *ro = &rules->via.array.ptr[r];
        if (strcmp(cli_get_str(ro, "verdict", v, sizeof v), "fire") != 0)
            continue;
        if (len < size)
            len += (size_t)snprintf(buf + len, size - len, "%s%s", *count ? ", " : "",
                                    cli_get_str(ro, "name", name, sizeof name));
        (*count)++;
    }
    return buf;
}

static void s_print_report(const msgpack_object *rep)
{
    char tag[300], host[300], glob[300], where[600];
    const msgpack_object *blocks = nerve_obj_get(rep, "blocks");
    const msgpack_object *rules = nerve_obj_get(rep, "rules");
    uint32_t nb = blocks && blocks->type == MSGPACK_OBJECT_ARRAY ? blocks->via.array.size : 0;
    uint32_t nr = rules && rules->type == MSGPACK_OBJECT_ARRAY ? rules->via.array.size : 0;
    bool *shown = calloc(nr ? nr : 1, sizeof *shown);
    if (!shown) {
        fprintf(stderr, "nerve explain: out of memory\n");
        return;
    }
    uint32_t chained = 0;
    for (uint32_t i = 0; i < nr; i++) {
        char v[32];
        chained += strcmp(cli_get_str(&rules->via.array.ptr[i], "verdict", v, sizeof v),
                          "chained_only") == 0;
    }
    printf("event %s  host %s\n", cli_get_str(rep, "tag", tag, sizeof tag),
           cli_get_str(rep, "host", host, sizeof host));
    tree_t t = {.len = 0};
    if (nb == 0)
        s_item(&t, true, "no rules block matches this tag");
    for (uint32_t b = 0; b < nb; b++) {
        const msgpack_object *blk = &blocks->via.array.ptr[b];
        bool last_block = b + 1 == nb && chained == 0;
        s_item(&t, last_block, "block %s  %s", cli_get_str(blk, "glob", glob, sizeof glob),
               cli_get_str(blk, "where", where, sizeof where));
        size_t was = s_push(&t, last_block);
        const msgpack_object *names = nerve_obj_get(blk, "rules");
        uint32_t nn = names && names->type == MSGPACK_OBJECT_ARRAY ? names->via.array.size : 0;
        for (uint32_t i = 0; i < nn; i++) {
            const char *p;
            size_t n;
            if (!nerve_obj_str(&names->via.array.ptr[i], &p, &n))
                continue;
            /* The report lists rules by name; take the first one of that
               name not yet drawn that was evaluated as part of a block. */
            uint32_t found = nr;
            for (uint32_t r = 0; r < nr && found == nr; r++) {
                char v[32];
                const msgpack_object *ro = &rules->via.array.ptr[r];
                if (!shown[r] && s_str_eq(nerve_obj_get(ro, "name"), p, n) &&
                    strcmp(cli_get_str(ro, "verdict", v, sizeof v), "chained_only") != 0)
                    found = r;
            }
            if (found == nr) {
                s_item(&t, i + 1 == nn, "rule %.*s  (not evaluated)", (int)n, p);
                continue;
            }
            shown[found] = true;
            s_print_rule(&t, i + 1 == nn, &rules->via.array.ptr[found]);
        }
        t.len = was;
    }
    if (chained) {
        s_item(&t, true, "evaluated through chains");
        size_t was = s_push(&t, true);
        uint32_t done = 0;
        for (uint32_t r = 0; r < nr; r++) {
            char v[32];
            const msgpack_object *ro = &rules->via.array.ptr[r];
            if (strcmp(cli_get_str(ro, "verdict", v, sizeof v), "chained_only") != 0)
                continue;
            s_print_rule(&t, ++done == chained, ro);
        }
        t.len = was;
    }
    /* The one line an operator looks for first. */
    char fires[2048];
    size_t firing;
    cli_explain_fires(rep, fires, sizeof fires, &firing);
    printf(firing ? "would fire: %s\n" : "nothing would fire\n", fires);
    free(shown);
}

/* ------------------------------------------------------------ the event */

/*  Reads a whole file (or stdin for "-") into a malloc'd buffer. */
static char *s_slurp(const char *path, size_t *len, char *err, size_t errsize)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        snprintf(err, errsize, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            if (cap >= FILE_MAX) {
                snprintf(err, errsize, "%s is larger than %u MiB", path, FILE_MAX >> 20);
                free(buf);
                buf = NULL;
                break;
            }
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    if (buf && ferror(f)) {
        snprintf(err, errsize, "cannot read %s: %s", path, strerror(errno));
        free(buf);
        buf = NULL;
    } else if (!buf && !err[0]) {
        snprintf(err, errsize, "out of memory reading %s", path);
    }
    if (f != stdin)
        fclose(f);
    *len = n;
    return buf;
}

typedef struct explain_args {
    const char *tag;
    const char *host;
    const char *file;
    const char *data_json;
    bool json;
} explain_args_t;

/*  Packs {tag, host, data} for the control verb from the command line.
    Returns CLI_OK or the exit code (message printed). */
static int s_build_request(const explain_args_t *a, const char **words, size_t nwords,
                           msgpack_sbuffer *out)
{
    const char *cmd = "nerve explain";
    char err[512] = "", tagbuf[NERVE_TAG_MAX + 1] = "", hostbuf[NERVE_HOST_MAX + 1] = "";
    const char *tag = a->tag, *host = a->host;
    int rc = CLI_OK;
    msgpack_zone *zone = msgpack_zone_new(4096);
    cli_data_t *data = cli_data_new();
    char *text = NULL;
    if (!zone || !data) {
        fprintf(stderr, "%s: out of memory\n", cmd);
        rc = CLI_FAIL;
        goto done;
    }
    if (a->file) {
        size_t len;
        msgpack_object v;
        if (!(text = s_slurp(a->file, &len, err, sizeof err))) {
            fprintf(stderr, "%s: %s\n", cmd, err);
            rc = CLI_FAIL;
            goto done;
        }
        if (nerve_obj_from_json(zone, text, len, &v, err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s: %s\n", cmd, a->file, err);
            rc = CLI_FAIL;
            goto done;
        }
        const msgpack_object *ftag = nerve_obj_get(&v, "tag");
        if (ftag) { /* an event: {tag, host, data} */
            if (!nerve_obj_strcpy(ftag, tagbuf, sizeof tagbuf)) {
                fprintf(stderr, "%s: %s: \"tag\" must be a string of at most %d bytes\n", cmd,
                        a->file, NERVE_TAG_MAX);
                rc = CLI_FAIL;
                goto done;
            }
            if (!tag)
                tag = tagbuf;
            if (!host && nerve_obj_strcpy(nerve_obj_get(&v, "host"), hostbuf, sizeof hostbuf))
                host = hostbuf[0] ? hostbuf : NULL;
            const msgpack_object *d = nerve_obj_get(&v, "data");
            if (d && cli_data_set_obj(data, d) != 0)
                rc = CLI_FAIL;
        } else if (cli_data_set_obj(data, &v) != 0) {
            rc = CLI_FAIL;
        }
        if (rc != CLI_OK) {
            fprintf(stderr, "%s: out of memory\n", cmd);
            goto done;
        }
    }
    if (a->data_json && cli_data_set_json(data, a->data_json, strlen(a->data_json), err,
                                          sizeof err) != 0) {
        rc = cli_usage_error(cmd, "--data is not JSON: %s", err);
        goto done;
    }
    for (size_t i = 0; i < nwords; i++) {
        if (cli_data_set_kv(data, words[i], err, sizeof err) != 0) {
            rc = cli_usage_error(cmd, "%s", err);
            goto done;
        }
    }
    if (!tag) {
        rc = cli_usage_error(cmd, "which event? give a TAG or --file");
        goto done;
    }
    nerve_wire_reason_t why = nerve_wire_check_tag(tag, strlen(tag));
    if (why != NERVE_WIRE_OK) {
        rc = cli_usage_error(cmd, "invalid tag '%s' (%s): a tag starts with '/', as in "
                                  "/client/load/web1",
                             tag, nerve_wire_reason_name(why));
        goto done;
    }
    msgpack_object d;
    int derr = cli_data_get(data, &d);
    if (derr != 0) {
        rc = cli_data_error(cmd, derr);
        goto done;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, host ? 3 : 2);
    msgpack_pack_str_with_body(&pk, "tag", 3);
    msgpack_pack_str_with_body(&pk, tag, strlen(tag));
    if (host) {
        msgpack_pack_str_with_body(&pk, "host", 4);
        msgpack_pack_str_with_body(&pk, host, strlen(host));
    }
    msgpack_pack_str_with_body(&pk, "data", 4);
    msgpack_pack_object(&pk, d);
done:
    free(text);
    cli_data_destroy(&data);
    if (zone)
        msgpack_zone_free(zone);
    return rc;
}

int cli_explain(cli_t *cli, int argc, char **argv)
{
    const char *cmd = "nerve explain";
    explain_args_t a = {0};
    const char **words = calloc((size_t)argc + 1, sizeof *words);
    size_t nwords = 0;
    if (!words) {
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
        case OPT_JSON: a.json = true; break;
        case OPT_FILE: a.file = value; break;
        case OPT_HOST: a.host = value; break;
        case OPT_DATA: a.data_json = value; break;
        case CLI_ARG_POS:
            /* The first word is the tag unless it is a key=value; a tag
               with '=' in it is still a tag when it starts with '/'. */
            if (!a.tag && (value[0] == '/' || !strchr(value, '=')))
                a.tag = value;
            else
                words[nwords++] = value;
            break;
        default: rc = cli_common_opt(cli, cmd, id, value); break;
        }
    }
    if (rc == CLI_OK && a.host && (!a.host[0] || strlen(a.host) > NERVE_HOST_MAX))
        rc = cli_usage_error(cmd, "--host wants 1 to %d bytes", NERVE_HOST_MAX);
    msgpack_sbuffer req;
    msgpack_sbuffer_init(&req);
    if (rc == CLI_OK)
        rc = s_build_request(&a, words, nwords, &req);
    free(words);
    cli_reply_t reply;
    if (rc == CLI_OK && (rc = cli_call(cli, "explain", &req, &reply)) == CLI_OK) {
        char err[1024];
        if (!reply.ok) {
            fprintf(stderr, "%s: %s\n", cmd, cli_reply_error(&reply, err, sizeof err));
            rc = CLI_FAIL;
        } else if (a.json) {
            cli_print_json(stdout, &reply.body);
        } else {
            s_print_report(&reply.body);
        }
        cli_reply_free(&reply);
    }
    msgpack_sbuffer_destroy(&req);
    return rc < 0 ? CLI_OK : rc;
}
