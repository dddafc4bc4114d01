/*  watch.c — `nerve watch [GLOB]`: follow the bus live on the manager's tap.

    The tap republishes every accepted event, every reaction (topic "@…")
    and every result, so this is a SUB socket and a printer. With a GLOB,
    the socket subscribes only to the glob's literal prefix, to reactions
    and to results, and the exact match happens here (nerve/tagglob.h):
    an event shows when its tag matches, a reaction when the event that
    caused it matched, a result when it answers a reaction shown. So
    a watch on one glob tells one story: event → reaction → result.

    A SUB socket cannot tell a dead manager from a quiet one, so a socket
    monitor reports the connection: no connection within the timeout is
    exit 3, and a manager that goes away mid-watch is said on stderr. A tap
    on TCP is CURVE (cli_secure), and there a TCP connection is not yet a
    tap: the watch is connected once the CURVE handshake succeeds. The
    monitor follows every handshake the way the control socket's is
    followed (cli_handshake_on): a refused key, or handshakes hung up
    again and again (the key pinned for the manager is wrong), is exit 1
    at once, naming the key; a manager that restarts is a disconnect and
    then a good handshake, so the watch just carries on.

    --record FILE writes each event shown as one JSON line that `nerve
    replay` reads back (the same line `--json` prints for an event).
*/
#include "cli.h"

#include <nerve/conf.h>
#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/tagglob.h>
#include <nerve/value.h>
#include <nerve/wire.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define RESULT_PREFIX "/nerve/result/"
#define SHOWN_IDS     1024 /* reactions remembered to match their results */
#define PRETTY_DATA   512  /* bytes of data JSON on a pretty line */

enum { OPT_JSON = OPT_VERB, OPT_RECORD, OPT_COUNT, OPT_DURATION };

static const cli_opt_t s_opts[] = {
    {"json", 0, false, OPT_JSON},
    {"record", 0, true, OPT_RECORD},
    {"count", 'n', true, OPT_COUNT},
    {"duration", 0, true, OPT_DURATION},
    {NULL, 0, false, 0},
};

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    s_stop = 1;
}

typedef struct watch {
    cli_t *cli;
    const char *glob;
    bool json;
    FILE *record;
    const char *record_path;
    uint64_t count;      /* stop after this many lines; 0 = never */
    uint64_t shown;
    void *sub, *monitor;
    nerve_wire_decoder_t *decoder;
    msgpack_sbuffer line;
    uint8_t ids[SHOWN_IDS][NERVE_ID_SIZE];
    size_t nids, next_id;
    bool curve;     /* the tap is on TCP: connected means a CURVE handshake done */
    bool up;        /* connected now */
    bool connected; /* connected once: the timeout no longer applies */
    bool tcp;       /* a TCP connection was made (CURVE: maybe no handshake yet) */
    cli_handshake_t hs;
    bool refused; /* the CURVE handshake was refused: nothing will come */
    int rc;
} watch_t;

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: nerve watch [GLOB] [--json] [--record FILE] [--count N] [--duration D]\n"
            "\n"
            "Follows the manager's tap: every event, reaction and result, one per line\n"
            "(time, tag or topic, host, data as compact JSON). With GLOB (tag glob: * within a\n"
            "segment, ** across), shows matching events, the reactions they caused and the\n"
            "results of those reactions. Stops on Ctrl-C.\n"
            "\n"
            "  --json          one JSON object per line: {\"type\": \"event\"|\"reaction\", …}\n"
            "  --record FILE   also write the events shown to FILE as JSON lines for\n"
            "                  `nerve replay` (tag, host, ts, data; bin values as hex)\n"
            "  -n, --count N   stop after N lines\n"
            "  --duration D    stop after D (30s, 5m)\n"
            "\n"
            "Exit 0 when stopped; 1 when the manager refuses this CLI's key, or does not\n"
            "hold the one pinned for it (TCP); 3 when the tap cannot be reached within the\n"
            "timeout.\n");
}

static void s_remember(watch_t *self, const uint8_t id[NERVE_ID_SIZE])
{
    memcpy(self->ids[self->next_id], id, NERVE_ID_SIZE);
    self->next_id = (self->next_id + 1) % SHOWN_IDS;
    if (self->nids < SHOWN_IDS)
        self->nids++;
}

static bool s_remembered(const watch_t *self, const msgpack_object *id)
{
    if (!id || id->type != MSGPACK_OBJECT_BIN || id->via.bin.size != NERVE_ID_SIZE)
        return false;
    for (size_t i = 0; i < self->nids; i++)
        if (memcmp(self->ids[i], id->via.bin.ptr, NERVE_ID_SIZE) == 0)
            return true;
    return false;
}

static void s_pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void s_pack_event(watch_t *self, const nerve_event_t *ev)
{
    msgpack_sbuffer_clear(&self->line);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &self->line, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, ev->hops ? 7 : 6);
    s_pack_str(&pk, "type");
    s_pack_str(&pk, "event");
    s_pack_str(&pk, "tag");
    s_pack_str(&pk, ev->tag);
    s_pack_str(&pk, "host");
    s_pack_str(&pk, ev->host);
    s_pack_str(&pk, "ts");
    msgpack_pack_uint64(&pk, ev->ts);
    s_pack_str(&pk, "id");
    msgpack_pack_bin_with_body(&pk, ev->id, NERVE_ID_SIZE);
    s_pack_str(&pk, "data");
    msgpack_pack_object(&pk, ev->data);
    if (ev->hops) {
        s_pack_str(&pk, "hops");
        msgpack_pack_uint32(&pk, ev->hops);
    }
}

static void s_pack_reaction(watch_t *self, const nerve_reaction_t *r)
{
    msgpack_sbuffer_clear(&self->line);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &self->line, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 9);
    s_pack_str(&pk, "type");
    s_pack_str(&pk, "reaction");
    s_pack_str(&pk, "topic");
    s_pack_str(&pk, r->topic);
    s_pack_str(&pk, "id");
    msgpack_pack_bin_with_body(&pk, r->id, NERVE_ID_SIZE);
    s_pack_str(&pk, "fn");
    s_pack_str(&pk, r->fn);
    s_pack_str(&pk, "rule");
    s_pack_str(&pk, r->rule);
    s_pack_str(&pk, "args");
    msgpack_pack_object(&pk, r->args);
    s_pack_str(&pk, "event");
    msgpack_pack_map(&pk, 3);
    s_pack_str(&pk, "tag");
    s_pack_str(&pk, r->event.tag);
    s_pack_str(&pk, "id");
    msgpack_pack_bin_with_body(&pk, r->event.id, NERVE_ID_SIZE);
    s_pack_str(&pk, "host");
    s_pack_str(&pk, r->event.host);
    s_pack_str(&pk, "ts");
    msgpack_pack_uint64(&pk, r->ts);
    s_pack_str(&pk, "deadline");
    msgpack_pack_uint64(&pk, r->deadline);
}

/*  One line out; false when stdout is gone (a closed pipe ends the watch). */
static bool s_flush(watch_t *self)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        clearerr(stdout);
        return false;
    }
    self->shown++;
    return true;
}

static bool s_show_event(watch_t *self, const nerve_event_t *ev)
{
    if (self->glob) {
        bool match = nerve_tagglob_match(self->glob, ev->tag, ev->tag_len);
        if (!match && strncmp(ev->tag, RESULT_PREFIX, strlen(RESULT_PREFIX)) == 0)
            match = s_remembered(self, nerve_obj_get(&ev->data, "reaction"));
        if (!match)
            return true;
    }
    s_pack_event(self, ev);
    if (self->record) {
        if (cli_print_packed(self->record, &self->line) != 0 || fflush(self->record) != 0) {
            fprintf(stderr, "nerve watch: cannot write %s: %s\n", self->record_path,
                    strerror(errno));
            self->rc = CLI_FAIL;
            return false;
        }
    }
    if (self->json) {
        cli_print_packed(stdout, &self->line);
    } else {
        char when[32], data[PRETTY_DATA];
        printf("%s  %s  %s  %s%s\n", cli_fmt_clock(ev->ts, when, sizeof when), ev->tag, ev->host,
               cli_json(&ev->data, data, sizeof data), ev->hops ? "  (re-fired)" : "");
    }
    return s_flush(self);
}

static bool s_show_reaction(watch_t *self, const nerve_reaction_t *r)
{
    if (self->glob && !nerve_tagglob_match(self->glob, r->event.tag, strlen(r->event.tag)))
        return true;
    s_remember(self, r->id);
    if (self->json) {
        s_pack_reaction(self, r);
        cli_print_packed(stdout, &self->line);
    } else {
        char when[32], args[PRETTY_DATA];
        printf("%s  %s  %s  %s %s  (rule %s, event %s)\n", cli_fmt_clock(r->ts, when, sizeof when),
               r->topic, r->event.host, r->fn, cli_json(&r->args, args, sizeof args),
               r->rule[0] ? r->rule : "-", r->event.tag);
    }
    return s_flush(self);
}

/*  Reads one tap message. False when the watch should stop. */
static bool s_on_message(watch_t *self)
{
    zmq_msg_t parts[2];
    size_t n = 0;
    bool more = true, extra = false;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->sub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        if (n < 2) {
            parts[n++] = m;
        } else {
            zmq_msg_close(&m);
            extra = true; /* not a nerve message */
        }
    }
    bool go_on = true;
    if (n == 2 && !extra) {
        nerve_frame_t frames[2] = {
            {zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0])},
            {zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1])},
        };
        bool reaction = frames[0].size > 0 && ((const char *)frames[0].data)[0] == '@';
        if (reaction) {
            nerve_reaction_t r;
            if (nerve_wire_decode_reaction(self->decoder, frames, 2, &r) == NERVE_WIRE_OK)
                go_on = s_show_reaction(self, &r);
        } else {
            nerve_event_t ev;
            if (nerve_wire_decode_event(self->decoder, frames, 2, &ev) == NERVE_WIRE_OK)
                go_on = s_show_event(self, &ev);
        }
    }
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
    return go_on && !(self->count && self->shown >= self->count);
}

/*  Reads one socket-monitor event: connected, disconnected, or how a
    handshake went. On CURVE a TCP connection is only the start: the tap
    is up when the handshake succeeds, and each hang-up in the middle of
    one counts towards calling the pinned key wrong (libzmq reports it as
    a handshake failure and then a disconnect, so a wrong key is never
    mistaken for a manager that came and went). */
static void s_on_monitor(watch_t *self)
{
    uint16_t event;
    uint32_t value;
    if (cli_monitor_read(self->monitor, &event, &value) != 0)
        return;
    /* Without CURVE a hang-up is no handshake of ours to judge: only a
       refusal (ZAP, a mechanism mismatch) is certain. */
    if ((self->curve || event != ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) &&
        cli_handshake_on(&self->hs, self->cli, "manager", self->cli->tap, event, value) != CLI_OK) {
        self->refused = true;
        return;
    }
    if (event == ZMQ_EVENT_CONNECTED)
        self->tcp = true;
    if (event == (self->curve ? ZMQ_EVENT_HANDSHAKE_SUCCEEDED : ZMQ_EVENT_CONNECTED)) {
        if (self->connected)
            fprintf(stderr, "nerve watch: reconnected to %s\n", self->cli->tap);
        self->connected = self->up = true;
    } else if (event == ZMQ_EVENT_DISCONNECTED && self->up) {
        fprintf(stderr, "nerve watch: lost the tap at %s; waiting for the manager\n",
                self->cli->tap);
        self->up = false;
    }
}

static int s_open(watch_t *self)
{
    void *ctx = cli_zmq();
    if (!ctx)
        return CLI_FAIL;
    self->sub = zmq_socket(ctx, ZMQ_SUB);
    self->monitor = zmq_socket(ctx, ZMQ_PAIR);
    if (!self->sub || !self->monitor) {
        fprintf(stderr, "nerve watch: cannot create a socket: %s\n", zmq_strerror(errno));
        return CLI_FAIL;
    }
    int zero = 0;
    zmq_setsockopt(self->sub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(self->monitor, ZMQ_LINGER, &zero, sizeof zero);
    char addr[64];
    snprintf(addr, sizeof addr, "inproc://nerve-watch-monitor-%p", (void *)self);
    int events = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    self->curve = cli_curve(self->cli, self->cli->tap);
    if (cli_secure(self->cli, self->sub, self->cli->tap, self->cli->manager_key) != CLI_OK)
        return CLI_FAIL;
    if (zmq_socket_monitor(self->sub, addr, events) != 0 || zmq_connect(self->monitor, addr) != 0) {
        fprintf(stderr, "nerve watch: cannot monitor the socket: %s\n", zmq_strerror(errno));
        return CLI_FAIL;
    }
    if (self->glob) {
        /* The literal prefix, reactions, results: the rest is filtered here. */
        size_t plen = nerve_tagglob_prefix_len(self->glob);
        zmq_setsockopt(self->sub, ZMQ_SUBSCRIBE, self->glob, plen);
        if (plen)
            zmq_setsockopt(self->sub, ZMQ_SUBSCRIBE, "@", 1);
        if (plen)
            zmq_setsockopt(self->sub, ZMQ_SUBSCRIBE, RESULT_PREFIX, strlen(RESULT_PREFIX));
    } else {
        zmq_setsockopt(self->sub, ZMQ_SUBSCRIBE, "", 0);
    }
    if (zmq_connect(self->sub, self->cli->tap) != 0) {
        fprintf(stderr, "nerve watch: bad tap endpoint '%s': %s\n", self->cli->tap,
                zmq_strerror(errno));
        return CLI_FAIL;
    }
    return CLI_OK;
}

static int s_run(watch_t *self, uint64_t duration_ms)
{
    uint64_t start = nerve_clock_mono_ms();
    uint64_t connect_by = start + self->cli->timeout_ms;
    uint64_t stop_at = duration_ms ? start + duration_ms : UINT64_MAX;
    while (!s_stop) {
        uint64_t now = nerve_clock_mono_ms();
        if (now >= stop_at)
            break;
        if (!self->connected && now >= connect_by) {
            /* Hung up on before the limit of hang-ups: still the key. */
            if (self->curve && cli_handshake_timeout(&self->hs, self->cli, "manager",
                                                     self->cli->tap) != CLI_UNREACHABLE)
                return CLI_FAIL;
            cli_print_unreachable("manager tap", self->cli->tap,
                                  self->tcp ? "no CURVE handshake" : "no connection",
                                  self->cli->timeout_ms);
            return CLI_UNREACHABLE;
        }
        uint64_t until = self->connected ? stop_at : (connect_by < stop_at ? connect_by : stop_at);
        long wait = until == UINT64_MAX ? -1 : (long)(until - now);
        zmq_pollitem_t items[] = {
            {self->sub, 0, ZMQ_POLLIN, 0},
            {self->monitor, 0, ZMQ_POLLIN, 0},
        };
        int n = zmq_poll(items, 2, wait);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "nerve watch: poll failed: %s\n", zmq_strerror(errno));
            return CLI_FAIL;
        }
        if (items[1].revents & ZMQ_POLLIN)
            s_on_monitor(self);
        if (self->refused)
            return CLI_FAIL;
        if (items[0].revents & ZMQ_POLLIN) {
            for (int burst = 0; burst < 256 && !s_stop; burst++) {
                int more_events = 0;
                size_t sz = sizeof more_events;
                if (!s_on_message(self))
                    return self->rc;
                if (zmq_getsockopt(self->sub, ZMQ_EVENTS, &more_events, &sz) != 0 ||
                    !(more_events & ZMQ_POLLIN))
                    break;
            }
        }
    }
    return self->rc;
}

static void s_close(watch_t *self)
{
    if (self->sub) {
        zmq_socket_monitor(self->sub, NULL, 0);
        zmq_close(self->sub);
    }
    if (self->monitor)
        zmq_close(self->monitor);
    if (self->record && self->record != stdout)
        fclose(self->record);
    nerve_wire_decoder_destroy(&self->decoder);
    msgpack_sbuffer_destroy(&self->line);
}

int cli_watch(cli_t *cli, int argc, char **argv)
{
    const char *cmd = "nerve watch";
    watch_t *self = calloc(1, sizeof *self);
    if (!self) {
        fprintf(stderr, "%s: out of memory\n", cmd);
        return CLI_FAIL;
    }
    self->cli = cli;
    msgpack_sbuffer_init(&self->line);
    uint64_t duration_ms = 0;
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
        case OPT_JSON: self->json = true; break;
        case OPT_RECORD: self->record_path = value; break;
        case OPT_COUNT:
            if (cli_parse_u64(value, &self->count) != 0 || self->count == 0)
                rc = cli_usage_error(cmd, "--count wants a positive number, not '%s'", value);
            break;
        case OPT_DURATION:
            if (nerve_duration_parse_ms(value, &duration_ms) != 0 || duration_ms == 0)
                rc = cli_usage_error(cmd, "--duration wants a duration such as 30s, not '%s'",
                                     value);
            break;
        case CLI_ARG_POS: {
            char err[128];
            if (self->glob)
                rc = cli_usage_error(cmd, "one GLOB at most ('%s' is a second)", value);
            else if (nerve_tagglob_check(value, err, sizeof err) != 0)
                rc = cli_usage_error(cmd, "bad glob '%s': %s", value, err);
            else
                self->glob = value;
            break;
        }
        default: rc = cli_common_opt(cli, cmd, id, value); break;
        }
    }
    if (rc == CLI_OK)
        rc = cli_resolve(cli);
    if (rc == CLI_OK && !(self->decoder = nerve_wire_decoder_new())) {
        fprintf(stderr, "%s: out of memory\n", cmd);
        rc = CLI_FAIL;
    }
    if (rc == CLI_OK && self->record_path && !(self->record = fopen(self->record_path, "w"))) {
        fprintf(stderr, "%s: cannot write %s: %s\n", cmd, self->record_path, strerror(errno));
        rc = CLI_FAIL;
    }
    if (rc == CLI_OK)
        rc = s_open(self);
    if (rc == CLI_OK) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = s_on_signal; /* no SA_RESTART: zmq_poll returns EINTR */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        rc = s_run(self, duration_ms);
    }
    s_close(self);
    free(self);
    return rc < 0 ? CLI_OK : rc;
}
