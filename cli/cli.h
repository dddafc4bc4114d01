/*  cli.h — the parts of the `nerve` CLI that every verb shares.

    `nerve` is one binary with git-style verbs (main.c dispatches them).
    Each verb group lives in its own file and has one entry point taking
    the shared state and its own argv (argv[0] is the verb). Around them:

      client.c     endpoints (defaults, -c MANAGER.yaml, flags), CURVE for
                   the ones on TCP, and the control round trip
                   [verb][msgpack] → [ok|error][msgpack]
      keys.c       `nerve keys`: the keys directory (lib/security.c)
      args.c       option parsing shared by every verb
      eventdata.c  an event's data from `key=value` words and --data JSON
      format.c     JSON, times and durations as people read them

    Exit codes are a contract with scripts: CLI_OK, CLI_FAIL (the manager
    reported an error or refused this CLI's CURVE key, or a check failed),
    CLI_USAGE (bad command line), CLI_UNREACHABLE (no answer within the
    timeout).

    Threading: the CLI is single-threaded; nothing here is thread-safe.
*/
#ifndef NERVE_CLI_H
#define NERVE_CLI_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <nerve/security.h>

#define CLI_OK          0
#define CLI_FAIL        1
#define CLI_USAGE       2
#define CLI_UNREACHABLE 3

#define CLI_DEFAULT_TIMEOUT_MS 5000
#define CLI_MODULE_DIRS_MAX    16

/*  The state every verb gets. Flags fill the opt_* fields (not owned: they
    point into argv); cli_resolve() turns them, the manager's config and
    the built-in defaults into endpoints. */
typedef struct cli {
    const char *opt_control;
    const char *opt_tap;
    const char *opt_events;
    const char *opt_pubctl;
    const char *opt_config;
    const char *opt_keys;          /* --keys DIR */
    const char *opt_manager_key;   /* --manager-key KEY */
    const char *opt_publisher_key; /* --publisher-key KEY */
    uint64_t timeout_ms;

    bool resolved;
    char *control;   /* connect: the manager's control ROUTER */
    char *tap;       /* connect: the manager's tap PUB */
    char *events;    /* connect: the manager's events PULL */
    char *pubctl;    /* connect: the publisher's control ROUTER */
    char *rules;     /* the manager's rules path (default for `rules check`) */
    char *modules[CLI_MODULE_DIRS_MAX];
    size_t nmodules;
    /*  CURVE for TCP endpoints: the manager config's `security:` (keys
        directory, insecure), --keys over it; this CLI's keypair is named
        "cli" there (made on first need). */
    nerve_security_t security;
    char *manager_key;   /* pinned on control, tap, events (default "manager") */
    char *publisher_key; /* pinned on the publisher's control (default: the
                            manager config's publisher_key, "publisher") */
    bool key_ready;      /* the keypair was checked (or made) */
} cli_t;

/* ------------------------------------------------------------- verbs */

int cli_status(cli_t *cli, int argc, char **argv);
int cli_actors(cli_t *cli, int argc, char **argv);
int cli_watch(cli_t *cli, int argc, char **argv);
int cli_explain(cli_t *cli, int argc, char **argv);
int cli_rules(cli_t *cli, int argc, char **argv);
int cli_reload(cli_t *cli, int argc, char **argv);
int cli_registers(cli_t *cli, int argc, char **argv);
int cli_fire(cli_t *cli, int argc, char **argv);
int cli_replay(cli_t *cli, int argc, char **argv);
int cli_keys(cli_t *cli, int argc, char **argv);

/* ------------------------------------------------------------ client.c */

/*  Fills the endpoints: a flag wins, then the file given with -c (or
    /etc/nerve/manager.yaml when it exists and no -c was given), then the
    defaults under $NERVE_HOME. A bind address from the config
    (tcp port 7450 on "*" or "0.0.0.0") becomes a local connect address
    ("tcp://127.0.0.1:7450"). Idempotent. Returns CLI_OK, or CLI_FAIL with
    the config error printed ("file:line:column: message"). */
int cli_resolve(cli_t *self);

/*  Frees what cli_resolve() allocated. Safe twice. */
void cli_free(cli_t *self);

/*  The process's ZeroMQ context, created on first use (NULL if that
    fails, with the reason printed). cli_zmq_term() closes it; every socket
    must be closed first. */
void *cli_zmq(void);
void cli_zmq_term(void);

/*  A control reply. `body` points into `buf` and `zone`, both owned. */
typedef struct cli_reply {
    bool ok;               /* status frame "ok"; false for "error" */
    msgpack_object body;
    char *buf;
    msgpack_zone *zone;
} cli_reply_t;

void cli_reply_free(cli_reply_t *reply);

/*  The error message of an "error" reply (body.error), as a NUL-terminated
    string in buf. */
const char *cli_reply_error(const cli_reply_t *reply, char *buf, size_t size);

/*  Makes `sock` a CURVE client pinned to `server_key` when `endpoint` is
    on a network transport (not ipc:// or inproc://) and the config does
    not say insecure: with this CLI's own keypair, made on first need.
    Call before zmq_connect(). Returns CLI_OK, or CLI_FAIL with the reason
    printed (no keys directory, no server key file to pin, …). */
int cli_secure(cli_t *cli, void *sock, const char *endpoint, const char *server_key);

/*  True when cli_secure() makes a socket for `endpoint` a CURVE client. */
bool cli_curve(const cli_t *cli, const char *endpoint);

/*  Prints why a CURVE server refused us and what to do about it, from a
    socket-monitor event and its value: ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
    (the ZAP status: 400 names this CLI's key, its file and the
    `nerve keys accept NAME` to run), _PROTOCOL (a ZMQ_PROTOCOL_ERROR_*:
    no CURVE there, or a broken exchange) or _NO_DETAIL (errno: the
    server hung up mid-handshake, as one without the pinned key's secret
    does; names the pinned key). `who` is "manager" or "publisher". */
void cli_print_refused(cli_t *cli, const char *who, const char *endpoint, uint16_t event,
                       uint32_t value);

/*  What a CURVE client's socket monitor said about its handshakes, for a
    socket that follows them itself (`nerve watch`: its monitor also
    reports connects and disconnects). Zero it to start. client.c's top
    comment says what libzmq lets a client tell apart. */
typedef struct cli_handshake {
    bool done;             /* a handshake succeeded */
    unsigned hangups;      /* handshakes hung up mid-way since the last success */
    uint32_t hangup_errno; /* the last hang-up's errno */
} cli_handshake_t;

/*  Handshakes hung up in a row before the key pinned is called wrong
    (client.c's top comment): ~300 ms at libzmq's reconnect interval. */
#define CLI_HANGUPS_MAX 3

/*  Reads one socket-monitor event, [event u16 value u32][endpoint],
    without waiting. 0, or -1 when none was there. */
int cli_monitor_read(void *monitor, uint16_t *event, uint32_t *value);

/*  Takes one monitor event of a CURVE client's socket. CLI_OK to go on (a
    handshake done, one hang-up that could be a daemon stopping, any other
    event), or CLI_FAIL, printed (cli_print_refused) for `who` at
    `endpoint`: the server refused this CLI's key, broke the CURVE
    exchange, or hung up CLI_HANGUPS_MAX handshakes in a row (the key
    pinned is wrong). */
int cli_handshake_on(cli_handshake_t *self, cli_t *cli, const char *who, const char *endpoint,
                     uint16_t event, uint32_t value);

/*  At a deadline with no handshake done: CLI_FAIL (printed) when the
    server hung up on one, so the pinned key is named rather than the
    daemon called unreachable; else CLI_UNREACHABLE, for the caller to say. */
int cli_handshake_timeout(const cli_handshake_t *self, cli_t *cli, const char *who,
                          const char *endpoint);

/*  A DEALER connected to one control endpoint, for one or many requests in
    turn, pinned to `server_key` when the endpoint is TCP (cli_secure), its
    CURVE handshake watched by a socket monitor. NULL on failure (printed). */
typedef struct cli_conn cli_conn_t;
cli_conn_t *cli_conn_new(cli_t *cli, const char *endpoint, const char *server_key);
void cli_conn_destroy(cli_conn_t **self);

/*  Sends [verb][args]; `args` is a packed msgpack map (NULL sends {}).
    Returns 0 or NERVE_EIO. */
int cli_conn_send(cli_conn_t *self, const char *verb, const msgpack_sbuffer *args);

/*  Waits until `deadline_ms` (nerve_clock_mono_ms) for the reply. Returns
    0 with *reply filled, NERVE_ETIMEDOUT, NERVE_EPARSE (not a reply of
    the protocol), or NERVE_EPERM: on CURVE, the daemon refused this CLI's
    key or kept hanging up the handshake (printed, cli_print_refused), as
    soon as that is known rather than at the deadline. */
int cli_conn_recv(cli_conn_t *self, uint64_t deadline_ms, cli_reply_t *reply);

/*  One round trip with the manager (cli->control): send, wait
    cli->timeout_ms. Returns CLI_OK with *reply filled (check reply->ok),
    or CLI_UNREACHABLE / CLI_FAIL (also a refused key) with the reason
    printed. */
int cli_call(cli_t *cli, const char *verb, const msgpack_sbuffer *args, cli_reply_t *reply);

/*  The same on an open connection; `who` and `endpoint` name the peer in
    messages ("manager unreachable at EP"). */
int cli_conn_call(cli_t *cli, cli_conn_t *conn, const char *who, const char *endpoint,
                  const char *verb, const msgpack_sbuffer *args, cli_reply_t *reply);

/*  Prints "<who> unreachable at <endpoint> (<what> within <timeout>)",
    with a hint when an IPC endpoint's socket file does not exist. */
void cli_print_unreachable(const char *who, const char *endpoint, const char *what,
                           uint64_t timeout_ms);

/*  Opens a PUSH socket to the manager's events endpoint with ZMQ_IMMEDIATE
    (messages go only to a live connection) and a send timeout of
    cli->timeout_ms, for `fire` and `replay`; on TCP a CURVE client whose
    first send waits for the handshake, so a refused key is reported as
    such (exit 1) rather than as a timeout. NULL on failure (printed). */
void *cli_events_socket(cli_t *cli);

/*  Sends one event (tag, host, data; id and ts set here) on that socket.
    Returns CLI_OK, CLI_UNREACHABLE (nobody took it within the timeout;
    printed), CLI_USAGE (the event breaks the protocol: bad tag or host;
    printed) or CLI_FAIL. */
int cli_send_event(cli_t *cli, void *sock, const char *tag, const char *host,
                   const msgpack_object *data, uint32_t hops, uint8_t id_out[16]);

/*  Closes the events socket, giving queued events up to the timeout to
    leave. */
void cli_events_close(cli_t *cli, void **sock);

/*  From an explain report: the names of the rules whose verdict is
    "fire", comma-separated in buf, and how many in *count. (explain.c) */
const char *cli_explain_fires(const msgpack_object *report, char *buf, size_t size,
                              size_t *count);

/* -------------------------------------------------------------- args.c */

/*  One option of a verb: "--name", "-x", with or without a value. */
typedef struct cli_opt {
    const char *name;
    char short_name;
    bool has_value;
    int id;
} cli_opt_t;

/*  Option ids every verb understands (endpoints and timeout may be given
    before or after the verb). Verbs number their own from OPT_VERB. */
enum {
    OPT_HELP = 1,
    OPT_CONTROL,
    OPT_TAP,
    OPT_EVENTS,
    OPT_PUBCTL,
    OPT_CONFIG,
    OPT_TIMEOUT,
    OPT_KEYS,
    OPT_MANAGER_KEY,
    OPT_PUBLISHER_KEY,
    OPT_VERB = 100,
};

/*  What cli_args_next() returns besides option ids. */
enum { CLI_ARG_END = -1, CLI_ARG_POS = -2, CLI_ARG_ERR = -3 };

typedef struct cli_args {
    int argc;
    char **argv;
    int i;
    bool only_positional; /* after "--" */
    const char *cmd;      /* "nerve watch", for messages */
} cli_args_t;

/*  Starts parsing argv[first..argc). */
void cli_args_init(cli_args_t *self, const char *cmd, int argc, char **argv, int first);

/*  The next item: an option id (its value in *value when it takes one),
    CLI_ARG_POS (a positional word in *value; "-5" and "-" are words),
    CLI_ARG_END, or CLI_ARG_ERR (unknown option, missing value: printed).
    Looks in `opts` (ending with a zero entry) first, then in the common
    options. */
int cli_args_next(cli_args_t *self, const cli_opt_t *opts, const char **value);

/*  Applies a common option (OPT_CONTROL … OPT_PUBLISHER_KEY) to cli. Returns
    CLI_OK, or CLI_USAGE (bad value; printed). */
int cli_common_opt(cli_t *cli, const char *cmd, int id, const char *value);

/*  Prints "<cmd>: <message>" and the --help hint; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*  Number and duration arguments. 0, or NERVE_EINVAL. */
int cli_parse_u64(const char *text, uint64_t *out);
int cli_parse_double(const char *text, double *out);

/* --------------------------------------------------------- eventdata.c */

/*  An event's `data` built from the command line: --data JSON, then
    key=value words, which override it. Values parse as JSON when they can
    (n=5 is an integer, ok=true a boolean, a=[1,2] an array), else they are
    strings; dotted keys nest (a.b=1 → {"a":{"b":1}}). Setting one key
    twice, or a key both to a value and as a map, is an error. */
typedef struct cli_data cli_data_t;

#define CLI_DATA_DEPTH_MAX 31 /* containers in data: the wire parses 32 with the payload */

cli_data_t *cli_data_new(void);
void cli_data_destroy(cli_data_t **self);

/*  Starts from a JSON value. 0, or NERVE_EPARSE with the reason in err. */
int cli_data_set_json(cli_data_t *self, const char *json, size_t len, char *err, size_t errsize);

/*  Starts from a value (deep-copied). 0 or NERVE_ENOMEM. */
int cli_data_set_obj(cli_data_t *self, const msgpack_object *obj);

/*  Applies one key=value word. 0, or NERVE_EINVAL with the reason in err. */
int cli_data_set_kv(cli_data_t *self, const char *word, char *err, size_t errsize);

/*  The data as one msgpack value (a map unless --data gave something
    else), valid until the next call or destroy. Returns 0, NERVE_ERANGE
    (nested deeper than msgpack-c parses, so no event could carry it) or
    NERVE_ENOMEM. */
int cli_data_get(cli_data_t *self, msgpack_object *out);

/*  Prints why cli_data_get() failed, for `cmd`, and returns the exit
    code: CLI_USAGE for data nested too deep, CLI_FAIL for OOM. */
int cli_data_error(const char *cmd, int err);

/* ------------------------------------------------------------ format.c */

/*  Writes obj as one line of JSON to out ('\n' ended). 0 or an error. */
int cli_print_json(FILE *out, const msgpack_object *obj);

/*  The same for one packed msgpack value. */
int cli_print_packed(FILE *out, const msgpack_sbuffer *packed);

/*  Compact JSON of obj in buf, cut with "…" when longer than bufsize. */
const char *cli_json(const msgpack_object *obj, char *buf, size_t bufsize);

/*  "HH:MM:SS.mmm" (local time) of ns since the epoch. */
const char *cli_fmt_clock(uint64_t ns, char *buf, size_t size);

/*  "2024-05-01 12:00:00" (local time) of ns since the epoch. */
const char *cli_fmt_date(uint64_t ns, char *buf, size_t size);

/*  A duration as people say it: "850ms", "4.2s", "3m12s", "2h05m", "3d4h". */
const char *cli_fmt_duration_ms(uint64_t ms, char *buf, size_t size);

/*  A string field of a map as a NUL-terminated copy in buf ("" when
    absent or not a string). */
const char *cli_get_str(const msgpack_object *map, const char *key, char *buf, size_t size);

/*  An unsigned field of a map, or 0. */
uint64_t cli_get_u64(const msgpack_object *map, const char *key);

/*  A boolean field of a map, or `dflt`. */
bool cli_get_bool(const msgpack_object *map, const char *key, bool dflt);

#endif
