/*  client.c — how the CLI finds and talks to the daemons.

    Endpoints come from flags, else from the manager's own config file
    (so `nerve -c /etc/nerve/manager.yaml status` talks to exactly the
    sockets that manager bound), else from the defaults every daemon uses
    under $NERVE_HOME. Reading the config through manager/config.c means
    the CLI and the manager can never disagree on what a key means.

    The control round trip is a DEALER (not REQ): a DEALER can give up on a
    dead manager after the timeout without the REQ state machine wedging,
    and the manager's ROUTER answers both the same way. Events go out on a
    PUSH with ZMQ_IMMEDIATE, so a send to a manager that is not there
    times out instead of sitting in a queue and being reported as sent.

    Any endpoint on TCP is reached over CURVE (docs/security.md), pinned to
    the daemon's public key from the keys directory the manager's config
    names, with this CLI's own keypair "cli" there (made on first need):
    on the manager's host, sharing its keys directory, that keypair is
    trusted without any setup.

    A refused CURVE handshake never reaches the socket itself: libzmq only
    tells a socket monitor. So every CURVE socket here is watched while its
    handshake is under way (cli_handshake_t; `nerve watch` follows its
    tap's handshakes the same way), and a refusal is said at once,
    as what it is, instead of waiting out the timeout and calling a
    manager that answered "unreachable". What a client can tell apart
    (libzmq 4.3):
      - ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, value = the ZAP status: the
        server's ZAP handler said no to our key (nerve's says 400 to an
        unknown or rejected key). Certain; libzmq does not retry it.
      - ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: the server speaks another
        mechanism (MECHANISM_MISMATCH: an insecure manager), or broke the
        CURVE exchange. Certain, but rare in practice: see the next case.
      - ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, value = errno: the server
        hung up mid-handshake. A server that does not hold the secret of
        the key we pin cannot open our HELLO and hangs up without a word
        (it alone sees ZMTP_CRYPTOGRAPHIC); a NULL-mechanism server
        usually hangs up before we read its greeting. libzmq reconnects
        and it happens again every ~100 ms, so CLI_HANGUPS_MAX of them in a
        row mean a wrong pinned key or no CURVE there; one could be a
        daemon that is just stopping, so we wait for the repeat.
    No TCP connection at all stays "unreachable" (exit 3).
*/
#include "cli.h"
#include "config.h"

#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/paths.h>
#include <nerve/value.h>
#include <nerve/wire.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zmq.h>

static void *s_ctx;

void *cli_zmq(void)
{
    if (!s_ctx) {
        s_ctx = zmq_ctx_new();
        if (!s_ctx)
            fprintf(stderr, "nerve: cannot create a ZeroMQ context: %s\n", zmq_strerror(errno));
    }
    return s_ctx;
}

void cli_zmq_term(void)
{
    if (s_ctx) {
        zmq_ctx_term(s_ctx);
        s_ctx = NULL;
    }
}

/* ---------------------------------------------------------- endpoints */

/*  A bind address as a local connect address: the wildcard hosts a
    daemon binds ("*", "0.0.0.0", "[::]") are not addresses one can
    connect to. */
static char *s_connect_address(const char *bind)
{
    static const struct {
        const char *from, *to;
    } map[] = {
        {"tcp://*:", "tcp://127.0.0.1:"},
        {"tcp://0.0.0.0:", "tcp://127.0.0.1:"},
        {"tcp://[::]:", "tcp://[::1]:"},
        {"tcp://[*]:", "tcp://[::1]:"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        size_t n = strlen(map[i].from);
        if (strncmp(bind, map[i].from, n) == 0) {
            size_t len = strlen(map[i].to) + strlen(bind + n) + 1;
            char *out = malloc(len);
            if (out)
                snprintf(out, len, "%s%s", map[i].to, bind + n);
            return out;
        }
    }
    return strdup(bind);
}

/*  The publisher's control socket: when the manager pushes to
    ".../publisher.sock", the publisher's defaults put its control socket
    beside it as ".../publisher-control.sock". */
static char *s_pubctl_default(const char *publisher)
{
    const char *slash = strrchr(publisher, '/');
    if (strncmp(publisher, "ipc://", 6) == 0 && slash && strcmp(slash, "/publisher.sock") == 0) {
        size_t dir = (size_t)(slash - publisher);
        size_t len = dir + sizeof "/publisher-control.sock";
        char *out = malloc(len);
        if (out)
            snprintf(out, len, "%.*s/publisher-control.sock", (int)dir, publisher);
        return out;
    }
    char path[PATH_MAX], ep[PATH_MAX + 8];
    if (nerve_home_path("run/publisher-control.sock", path, sizeof path) != 0)
        return NULL;
    snprintf(ep, sizeof ep, "ipc://%s", path);
    return strdup(ep);
}

static int s_load_config(manager_config_t *mc, const char *path)
{
    nerve_conf_error_t err;
    if (manager_config_defaults(mc) != 0) {
        fprintf(stderr, "nerve: out of memory\n");
        return CLI_FAIL;
    }
    int rc = manager_config_load(mc, path, &err);
    if (rc == 0)
        return CLI_OK;
    if (path) {
        fprintf(stderr, "nerve: %s\n", err.message[0] ? err.message : nerve_strerror(rc));
        return CLI_FAIL;
    }
    /* The system default file is read only when present; a broken one must
       not stop an operator from asking a manager started with flags. */
    fprintf(stderr, "nerve: ignoring /etc/nerve/manager.yaml: %s\n",
            err.message[0] ? err.message : nerve_strerror(rc));
    manager_config_free(mc);
    return manager_config_defaults(mc) == 0 ? CLI_OK : CLI_FAIL;
}

int cli_resolve(cli_t *self)
{
    if (self->resolved)
        return CLI_OK;
    manager_config_t mc;
    int rc = s_load_config(&mc, self->opt_config);
    if (rc != CLI_OK) {
        manager_config_free(&mc);
        return rc;
    }
    self->control = s_connect_address(self->opt_control ? self->opt_control : mc.control);
    self->tap = s_connect_address(self->opt_tap ? self->opt_tap : mc.tap);
    self->events = s_connect_address(self->opt_events ? self->opt_events : mc.events);
    self->pubctl = self->opt_pubctl ? s_connect_address(self->opt_pubctl)
                                    : s_pubctl_default(mc.publisher);
    self->rules = mc.rules ? strdup(mc.rules) : NULL;
    self->security = mc.security;
    snprintf(self->security.name, sizeof self->security.name, "cli");
    if (self->opt_keys)
        snprintf(self->security.keys, sizeof self->security.keys, "%s", self->opt_keys);
    self->manager_key = strdup(self->opt_manager_key ? self->opt_manager_key : "manager");
    self->publisher_key = strdup(self->opt_publisher_key ? self->opt_publisher_key
                                 : mc.publisher_key      ? mc.publisher_key
                                                         : "publisher");
    self->key_ready = false;
    for (size_t i = 0; i < mc.nmodules && i < CLI_MODULE_DIRS_MAX; i++)
        self->modules[self->nmodules++] = strdup(mc.modules[i]);
    manager_config_free(&mc);
    bool oom = !self->control || !self->tap || !self->events || !self->pubctl || !self->rules ||
               !self->manager_key || !self->publisher_key;
    for (size_t i = 0; i < self->nmodules; i++)
        oom = oom || !self->modules[i];
    self->resolved = true;
    if (oom) {
        fprintf(stderr, "nerve: out of memory\n");
        return CLI_FAIL;
    }
    return CLI_OK;
}

void cli_free(cli_t *self)
{
    char **strs[] = {&self->control, &self->tap,         &self->events,       &self->pubctl,
                     &self->rules,   &self->manager_key, &self->publisher_key};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
    for (size_t i = 0; i < self->nmodules; i++)
        free(self->modules[i]);
    self->nmodules = 0;
    self->resolved = false;
}

void cli_print_unreachable(const char *who, const char *endpoint, const char *what,
                           uint64_t timeout_ms)
{
    char took[32];
    cli_fmt_duration_ms(timeout_ms, took, sizeof took);
    const char *hint = "";
    struct stat st;
    if (strncmp(endpoint, "ipc://", 6) == 0 && stat(endpoint + 6, &st) != 0)
        hint = "; no socket file there: is it running, and are the endpoint flags or -c right?";
    fprintf(stderr, "nerve: %s unreachable at %s (%s within %s%s)\n", who, endpoint, what, took,
            hint);
}

/* --------------------------------------------------------------- CURVE */

bool cli_curve(const cli_t *cli, const char *endpoint)
{
    return !cli->security.insecure && strncmp(endpoint, "ipc://", 6) != 0 &&
           strncmp(endpoint, "inproc://", 9) != 0;
}

int cli_secure(cli_t *cli, void *sock, const char *endpoint, const char *server_key)
{
    if (!cli_curve(cli, endpoint))
        return CLI_OK;
    char err[1024];
    if (!cli->key_ready) {
        bool made = false;
        if (nerve_keys_ensure(cli->security.keys, cli->security.name, &made, err, sizeof err) !=
            0) {
            fprintf(stderr, "nerve: CURVE for %s: %s\n", endpoint, err);
            return CLI_FAIL;
        }
        cli->key_ready = true;
        /*  A daemon sharing this keys directory trusts the new keypair
            once its ZAP handler has looked again (once a second). */
        if (made) {
            fprintf(stderr, "nerve: made this CLI's keypair %s/%s.secret\n", cli->security.keys,
                    cli->security.name);
            struct timespec settle = {1, 200000000};
            while (nanosleep(&settle, &settle) != 0 && errno == EINTR)
                ;
        }
    }
    if (nerve_sec_client(sock, &cli->security, server_key, err, sizeof err) != 0) {
        fprintf(stderr, "nerve: CURVE for %s: %s\n", endpoint, err);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/*  The key pinned for `who`, as "Z85 (where it came from)" in buf. */
static const char *s_pinned(const cli_t *cli, const char *who, char *buf, size_t size)
{
    const char *spec = strcmp(who, "publisher") == 0 ? cli->publisher_key : cli->manager_key;
    char z85[NERVE_Z85_KEY_LEN + 1], err[256];
    if (!spec)
        spec = "?";
    if (nerve_keys_resolve(cli->security.keys, spec, z85, err, sizeof err) != 0)
        snprintf(buf, size, "%s", spec);
    else if (nerve_key_name_valid(spec))
        snprintf(buf, size, "%s from %s/%s.pub", z85, cli->security.keys, spec);
    else if (strcmp(spec, z85) == 0)
        snprintf(buf, size, "%s", z85);
    else
        snprintf(buf, size, "%s from %s", z85, spec);
    return buf;
}

static const char *s_protocol_error(uint32_t value)
{
    switch (value) {
    case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return "a message did not decrypt";
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_WELCOME:
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_READY:
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_ERROR:
    case ZMQ_PROTOCOL_ERROR_ZMTP_MALFORMED_COMMAND_UNSPECIFIED:
        return "a malformed CURVE command";
    case ZMQ_PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND:
    case ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_SEQUENCE:
        return "a CURVE command out of turn";
    default:
        return "a ZMTP protocol error";
    }
}

void cli_print_refused(cli_t *cli, const char *who, const char *endpoint, uint16_t event,
                       uint32_t value)
{
    char pinned[NERVE_KEYS_DIR_MAX + 128];
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && value == 400) {
        char pub[NERVE_Z85_KEY_LEN + 1] = "?", pending[NERVE_KEY_PENDING_NAME_LEN + 1] = "?";
        char err[256];
        if (nerve_keys_resolve(cli->security.keys, cli->security.name, pub, err, sizeof err) == 0)
            nerve_keys_pending_name(pub, pending);
        fprintf(stderr,
                "nerve: the %s at %s refused this CLI's key %s (%s/%s.pub; ZAP status 400)\n"
                "nerve: on the %s's host, `nerve keys accept %s` lets it in (its keys "
                "directory holds a refused key in pending/, a revoked one in rejected/); or run "
                "this CLI with the keys directory of a key the %s accepts (--keys DIR, or "
                "security.keys in the -c config)\n",
                who, endpoint, pub, cli->security.keys, cli->security.name, who, pending, who);
    } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        fprintf(stderr,
                "nerve: the %s at %s could not check this CLI's key (ZAP status %u: %s); its "
                "log says why\n",
                who, endpoint, (unsigned)value,
                value == 300 ? "a temporary failure, try again" : "its ZAP handler failed");
    } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
               value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
        fprintf(stderr,
                "nerve: the %s at %s does not run CURVE on that socket (`insecure: true` in "
                "its config?), and this CLI runs CURVE on every TCP endpoint: give it that "
                "config with -c, or use the IPC endpoint on its host\n",
                who, endpoint);
    } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
        bool crypto = value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC;
        fprintf(stderr,
                "nerve: the CURVE handshake with the %s at %s failed (%s, 0x%08x): %s the "
                "secret of the key pinned for it, %s%s\n",
                who, endpoint, s_protocol_error(value), (unsigned)value,
                crypto ? "it does not hold" : "is it a nerve daemon holding",
                s_pinned(cli, who, pinned, sizeof pinned), crypto ? "" : "?");
    } else {
        fprintf(stderr,
                "nerve: the %s at %s hangs up in the middle of the CURVE handshake (%s)\n"
                "nerve: it does not hold the secret of the key this CLI pins for it, %s "
                "(--%s-key picks another); or it does not run CURVE there (`insecure: true`), "
                "or it is not a nerve daemon\n",
                who, endpoint, value ? strerror((int)value) : "no reason given",
                s_pinned(cli, who, pinned, sizeof pinned),
                strcmp(who, "publisher") == 0 ? "publisher" : "manager");
    }
}

/* ------------------------------------------------------------ handshake */

int cli_monitor_read(void *monitor, uint16_t *event, uint32_t *value)
{
    *event = 0;
    *value = 0;
    bool more = true, got = false;
    for (int frame = 0; more; frame++) { /* [event u16, value u32][endpoint] */
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        if (frame == 0 && zmq_msg_size(&m) >= 6) {
            memcpy(event, zmq_msg_data(&m), sizeof *event);
            memcpy(value, (const uint8_t *)zmq_msg_data(&m) + 2, sizeof *value);
            got = true;
        }
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    return got ? 0 : -1;
}

int cli_handshake_on(cli_handshake_t *self, cli_t *cli, const char *who, const char *endpoint,
                     uint16_t event, uint32_t value)
{
    switch (event) {
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        self->done = true;
        self->hangups = 0;
        return CLI_OK;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        cli_print_refused(cli, who, endpoint, event, value);
        return CLI_FAIL;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        self->hangup_errno = value;
        if (++self->hangups < CLI_HANGUPS_MAX)
            return CLI_OK;
        cli_print_refused(cli, who, endpoint, event, value);
        return CLI_FAIL;
    default:
        return CLI_OK;
    }
}

int cli_handshake_timeout(const cli_handshake_t *self, cli_t *cli, const char *who,
                          const char *endpoint)
{
    if (self->done || self->hangups == 0)
        return CLI_UNREACHABLE;
    cli_print_refused(cli, who, endpoint, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL, self->hangup_errno);
    return CLI_FAIL;
}

/*  A CURVE socket's handshake, followed through its socket monitor, for
    the sockets that wait for one handshake (control, events). */
typedef struct handshake {
    void *monitor; /* PAIR on the socket's monitor; NULL when not CURVE */
    cli_handshake_t state;
} handshake_t;

/*  Starts watching `sock` (call before zmq_connect). 0, or -1 (printed). */
static int s_handshake_watch(handshake_t *self, void *sock)
{
    memset(self, 0, sizeof *self);
    char addr[64];
    snprintf(addr, sizeof addr, "inproc://nerve-cli-handshake-%p", sock);
    int linger = 0;
    int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    self->monitor = zmq_socket(cli_zmq(), ZMQ_PAIR);
    if (!self->monitor || zmq_setsockopt(self->monitor, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_socket_monitor(sock, addr, events) != 0 || zmq_connect(self->monitor, addr) != 0) {
        fprintf(stderr, "nerve: cannot monitor a socket: %s\n", zmq_strerror(errno));
        if (self->monitor)
            zmq_close(self->monitor);
        self->monitor = NULL;
        return -1;
    }
    return 0;
}

static void s_handshake_close(handshake_t *self)
{
    if (self->monitor)
        zmq_close(self->monitor);
    self->monitor = NULL;
}

/*  True while the handshake is to be waited for. */
static bool s_handshake_pending(const handshake_t *self)
{
    return self->monitor && !self->state.done;
}

/*  Reads one monitor event. CLI_OK (go on waiting, or done), or CLI_FAIL
    when the server refused us or hung up CLI_HANGUPS_MAX times (printed). */
static int s_handshake_event(handshake_t *self, cli_t *cli, const char *who, const char *endpoint)
{
    uint16_t event;
    uint32_t value;
    if (cli_monitor_read(self->monitor, &event, &value) != 0)
        return CLI_OK;
    return cli_handshake_on(&self->state, cli, who, endpoint, event, value);
}

/*  At the deadline: a handshake the server hung up on is said as such
    (CLI_FAIL, printed), even before CLI_HANGUPS_MAX; otherwise
    CLI_UNREACHABLE, for the caller to say. */
static int s_handshake_timeout(handshake_t *self, cli_t *cli, const char *who, const char *endpoint)
{
    if (!s_handshake_pending(self))
        return CLI_UNREACHABLE;
    return cli_handshake_timeout(&self->state, cli, who, endpoint);
}

/* ------------------------------------------------------ control socket */

struct cli_conn {
    void *sock;
    cli_t *cli;      /* for the refusal message */
    const char *who; /* "manager" or "publisher" (static) */
    char *endpoint;
    handshake_t hs; /* CURVE only */
};

cli_conn_t *cli_conn_new(cli_t *cli, const char *endpoint, const char *server_key)
{
    void *ctx = cli_zmq();
    if (!ctx)
        return NULL;
    cli_conn_t *self = calloc(1, sizeof *self);
    if (!self || !(self->sock = zmq_socket(ctx, ZMQ_DEALER))) {
        fprintf(stderr, "nerve: cannot create a socket: %s\n", zmq_strerror(errno));
        free(self);
        return NULL;
    }
    int linger = 0;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
    self->cli = cli;
    self->who = cli->pubctl && strcmp(endpoint, cli->pubctl) == 0 ? "publisher" : "manager";
    self->endpoint = strdup(endpoint);
    if (!self->endpoint) {
        fprintf(stderr, "nerve: out of memory\n");
        cli_conn_destroy(&self);
        return NULL;
    }
    if (cli_secure(cli, self->sock, endpoint, server_key) != CLI_OK ||
        (cli_curve(cli, endpoint) && s_handshake_watch(&self->hs, self->sock) != 0)) {
        cli_conn_destroy(&self);
        return NULL;
    }
    if (zmq_connect(self->sock, endpoint) != 0) {
        fprintf(stderr, "nerve: bad endpoint '%s': %s\n", endpoint, zmq_strerror(errno));
        cli_conn_destroy(&self);
        return NULL;
    }
    return self;
}

void cli_conn_destroy(cli_conn_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cli_conn_t *self = *self_p;
    if (self->sock)
        zmq_close(self->sock);
    s_handshake_close(&self->hs);
    free(self->endpoint);
    free(self);
    *self_p = NULL;
}

int cli_conn_send(cli_conn_t *self, const char *verb, const msgpack_sbuffer *args)
{
    static const char empty_map = (char)0x80;
    const void *data = args ? args->data : &empty_map;
    size_t size = args ? args->size : 1;
    if (zmq_send(self->sock, verb, strlen(verb), ZMQ_SNDMORE) < 0 ||
        zmq_send(self->sock, data, size, 0) < 0)
        return NERVE_EIO;
    return 0;
}

void cli_reply_free(cli_reply_t *reply)
{
    if (!reply)
        return;
    if (reply->zone)
        msgpack_zone_free(reply->zone);
    free(reply->buf);
    memset(reply, 0, sizeof *reply);
}

const char *cli_reply_error(const cli_reply_t *reply, char *buf, size_t size)
{
    const char *p;
    size_t n;
    if (nerve_obj_str(nerve_obj_get(&reply->body, "error"), &p, &n))
        snprintf(buf, size, "%.*s", (int)(n < size ? n : size - 1), p);
    else
        snprintf(buf, size, "(the reply names no error)");
    return buf;
}

/*  Reads the frames of one reply. A reply is [status][body]; anything else
    is drained and refused. */
static int s_read_reply(void *sock, cli_reply_t *reply)
{
    zmq_msg_t parts[2];
    size_t n = 0;
    bool more = true;
    int rc = 0;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0) {
            zmq_msg_close(&m);
            rc = NERVE_EIO;
            break;
        }
        more = zmq_msg_more(&m);
        if (n < 2)
            parts[n++] = m;
        else {
            zmq_msg_close(&m);
            rc = NERVE_EPARSE;
        }
    }
    if (rc == 0 && n != 2)
        rc = NERVE_EPARSE;
    if (rc == 0) {
        size_t sl = zmq_msg_size(&parts[0]);
        const char *status = zmq_msg_data(&parts[0]);
        if (sl == 2 && memcmp(status, "ok", 2) == 0)
            reply->ok = true;
        else if (sl == 5 && memcmp(status, "error", 5) == 0)
            reply->ok = false;
        else
            rc = NERVE_EPARSE;
    }
    if (rc == 0) {
        size_t len = zmq_msg_size(&parts[1]);
        reply->buf = malloc(len ? len : 1);
        reply->zone = msgpack_zone_new(4096);
        size_t off = 0;
        if (!reply->buf || !reply->zone)
            rc = NERVE_ENOMEM;
        else {
            memcpy(reply->buf, zmq_msg_data(&parts[1]), len);
            if (msgpack_unpack(reply->buf, len, &off, reply->zone, &reply->body) !=
                    MSGPACK_UNPACK_SUCCESS ||
                off != len)
                rc = NERVE_EPARSE;
        }
    }
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
    if (rc != 0)
        cli_reply_free(reply);
    return rc;
}

int cli_conn_recv(cli_conn_t *self, uint64_t deadline_ms, cli_reply_t *reply)
{
    memset(reply, 0, sizeof *reply);
    for (;;) {
        /* Polls at least once: a reply that is already here counts even
           when the deadline passed while waiting for another daemon. */
        uint64_t now = nerve_clock_mono_ms();
        bool handshake = s_handshake_pending(&self->hs);
        zmq_pollitem_t items[2] = {{self->sock, 0, ZMQ_POLLIN, 0},
                                   {self->hs.monitor, 0, ZMQ_POLLIN, 0}};
        long wait = deadline_ms > now ? (long)(deadline_ms - now) : 0;
        int n = zmq_poll(items, handshake ? 2 : 1, wait);
        if (n < 0 && errno == EINTR)
            return NERVE_ETIMEDOUT;
        if (n < 0)
            return NERVE_EIO;
        if (items[0].revents & ZMQ_POLLIN)
            return s_read_reply(self->sock, reply);
        if (n == 0) {
            int rc = s_handshake_timeout(&self->hs, self->cli, self->who, self->endpoint);
            return rc == CLI_FAIL ? NERVE_EPERM : NERVE_ETIMEDOUT;
        }
        if ((items[1].revents & ZMQ_POLLIN) &&
            s_handshake_event(&self->hs, self->cli, self->who, self->endpoint) != CLI_OK)
            return NERVE_EPERM;
    }
}

int cli_conn_call(cli_t *cli, cli_conn_t *conn, const char *who, const char *endpoint,
                  const char *verb, const msgpack_sbuffer *args, cli_reply_t *reply)
{
    memset(reply, 0, sizeof *reply);
    if (cli_conn_send(conn, verb, args) != 0) {
        fprintf(stderr, "nerve: cannot send to %s at %s: %s\n", who, endpoint,
                zmq_strerror(errno));
        return CLI_FAIL;
    }
    int rc = cli_conn_recv(conn, nerve_clock_mono_ms() + cli->timeout_ms, reply);
    if (rc == NERVE_EPERM)
        return CLI_FAIL; /* refused at the handshake: said */
    if (rc == NERVE_ETIMEDOUT) {
        cli_print_unreachable(who, endpoint, "no answer", cli->timeout_ms);
        return CLI_UNREACHABLE;
    }
    if (rc != 0) {
        fprintf(stderr, "nerve: %s at %s sent a reply that is not [ok|error][msgpack]\n", who,
                endpoint);
        return CLI_FAIL;
    }
    return CLI_OK;
}

int cli_call(cli_t *cli, const char *verb, const msgpack_sbuffer *args, cli_reply_t *reply)
{
    memset(reply, 0, sizeof *reply);
    int rc = cli_resolve(cli);
    if (rc != CLI_OK)
        return rc;
    cli_conn_t *conn = cli_conn_new(cli, cli->control, cli->manager_key);
    if (!conn)
        return CLI_FAIL;
    rc = cli_conn_call(cli, conn, "manager", cli->control, verb, args, reply);
    cli_conn_destroy(&conn);
    return rc;
}

/* --------------------------------------------------------------- events */

/*  The events socket's handshake (CURVE only): the CLI has one events
    socket at a time. */
static handshake_t s_events_hs;

/*  Waits for the CURVE handshake on the events socket. CLI_OK when it is
    done, CLI_FAIL (printed) when the manager refused us, CLI_UNREACHABLE
    (printed) when nothing happened within the timeout. */
static int s_events_wait(cli_t *cli)
{
    uint64_t deadline = nerve_clock_mono_ms() + cli->timeout_ms;
    while (s_handshake_pending(&s_events_hs)) {
        uint64_t now = nerve_clock_mono_ms();
        zmq_pollitem_t item = {s_events_hs.monitor, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&item, 1, deadline > now ? (long)(deadline - now) : 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int rc = s_handshake_timeout(&s_events_hs, cli, "manager", cli->events);
            if (rc == CLI_UNREACHABLE)
                cli_print_unreachable("manager", cli->events, "no CURVE handshake",
                                      cli->timeout_ms);
            return rc;
        }
        if (s_handshake_event(&s_events_hs, cli, "manager", cli->events) != CLI_OK)
            return CLI_FAIL;
    }
    return CLI_OK;
}

void *cli_events_socket(cli_t *cli)
{
    void *ctx = cli_zmq();
    if (!ctx || cli_resolve(cli) != CLI_OK)
        return NULL;
    void *sock = zmq_socket(ctx, ZMQ_PUSH);
    if (!sock) {
        fprintf(stderr, "nerve: cannot create a socket: %s\n", zmq_strerror(errno));
        return NULL;
    }
    int one = 1, linger = 0;
    int timeout = cli->timeout_ms > INT_MAX ? INT_MAX : (int)cli->timeout_ms;
    zmq_setsockopt(sock, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(sock, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    memset(&s_events_hs, 0, sizeof s_events_hs);
    if (cli_curve(cli, cli->events) &&
        (cli_secure(cli, sock, cli->events, cli->manager_key) != CLI_OK ||
         s_handshake_watch(&s_events_hs, sock) != 0)) {
        zmq_close(sock);
        return NULL;
    }
    if (zmq_connect(sock, cli->events) != 0) {
        fprintf(stderr, "nerve: bad events endpoint '%s': %s\n", cli->events,
                zmq_strerror(errno));
        cli_events_close(cli, &sock);
        return NULL;
    }
    return sock;
}

static const char *s_tag_problem(nerve_wire_reason_t reason)
{
    switch (reason) {
    case NERVE_WIRE_TAG_EMPTY: return "a tag cannot be empty";
    case NERVE_WIRE_TAG_TOO_LONG: return "a tag is at most 255 bytes";
    case NERVE_WIRE_TAG_NO_SLASH: return "a tag starts with '/', as in /app/deploy/done";
    case NERVE_WIRE_TAG_NUL: return "a tag cannot contain a NUL byte";
    case NERVE_WIRE_TAG_UTF8: return "a tag must be valid UTF-8";
    default: return nerve_wire_reason_name(reason);
    }
}

int cli_send_event(cli_t *cli, void *sock, const char *tag, const char *host,
                   const msgpack_object *data, uint32_t hops, uint8_t id_out[16])
{
    nerve_wire_reason_t why = nerve_wire_check_tag(tag, strlen(tag));
    if (why != NERVE_WIRE_OK) {
        fprintf(stderr, "nerve: invalid tag '%s': %s\n", tag, s_tag_problem(why));
        return CLI_USAGE;
    }
    size_t hl = strlen(host);
    if (hl == 0 || hl > NERVE_HOST_MAX) {
        fprintf(stderr, "nerve: invalid host '%s': 1 to %d bytes\n", host, NERVE_HOST_MAX);
        return CLI_USAGE;
    }
    nerve_event_t ev;
    memset(&ev, 0, sizeof ev);
    memcpy(ev.tag, tag, strlen(tag) + 1);
    ev.tag_len = strlen(tag);
    memcpy(ev.host, host, hl + 1);
    nerve_wire_new_id(ev.id);
    ev.ts = nerve_clock_wall_ns();
    ev.data = *data;
    ev.hops = hops;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    int rc = nerve_wire_encode_event(&ev, &buf);
    if (rc != 0) {
        fprintf(stderr, "nerve: cannot send %s: %s\n", tag,
                rc == NERVE_EINVAL ? "it breaks the wire's limits (payload at most 1 MiB, data "
                                     "nested at most 31 deep, hops at most 8)"
                                   : nerve_strerror(rc));
        msgpack_sbuffer_destroy(&buf);
        return CLI_USAGE;
    }
    rc = s_events_wait(cli);
    if (rc != CLI_OK) {
        msgpack_sbuffer_destroy(&buf);
        return rc;
    }
    if (zmq_send(sock, ev.tag, ev.tag_len, ZMQ_SNDMORE) < 0 ||
        zmq_send(sock, buf.data, buf.size, 0) < 0) {
        if (errno == EAGAIN) {
            cli_print_unreachable("manager", cli->events, "no connection took the event",
                                  cli->timeout_ms);
            rc = CLI_UNREACHABLE;
        } else {
            fprintf(stderr, "nerve: cannot send to %s: %s\n", cli->events, zmq_strerror(errno));
            rc = CLI_FAIL;
        }
    }
    msgpack_sbuffer_destroy(&buf);
    if (rc == CLI_OK && id_out)
        memcpy(id_out, ev.id, NERVE_ID_SIZE);
    return rc;
}

void cli_events_close(cli_t *cli, void **sock)
{
    if (!sock || !*sock)
        return;
    int linger = cli->timeout_ms > INT_MAX ? INT_MAX : (int)cli->timeout_ms;
    zmq_setsockopt(*sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(*sock);
    *sock = NULL;
    s_handshake_close(&s_events_hs);
}
