/*  fuzz_control.c — libFuzzer target for the manager's control socket
    (manager/control.c), through a real server over ZeroMQ.

    The control socket answers the `nerve` CLI: whoever holds an admitted
    key can send it anything, and a request must never take the manager
    down. One input is one request:

        byte 0   the verb: one of the manager's verbs (status, reload,
                 rules.list, registers.list/get/set/del, explain, actors)
                 by index, or, past them, a verb of the next byte's length
                 taken from the input
        rest     the args frame, as it is (msgpack, or not)

    A real server runs in this process (server_start() on scratch IPC
    endpoints, under a scratch $NERVE_HOME, with the built-in modules and
    rules that use every register function under scopes a request can
    name: "s/avg", "s/rate", "s/pct", "s/changed", "s/store"). The request
    goes from a DEALER, framed as REQ frames it, to its ROUTER;
    control_handle() answers it as the loop would. So a registers.set can leave any value as a
   register's state, which a later explain hands to that register's function.

    Checked: every request gets a reply of two frames, status
    "ok" or "error", and a body that is one msgpack value; an error's body
    is {error: "<message>"}. Any crash, leak, sanitizer report, or a
    request left unanswered for a second, is a failure. Seeds are in
    corpus/control/ (made by make_corpus_control.py).
*/
#include "../../manager/config.h" /* actor/ and others have a config.h too */
#include "../../manager/control.h"
#include "../../manager/server.h"

#include <nerve/error.h>
#include <nerve/log.h>

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const s_verbs[] = {
    "status",        "reload",        "rules.list", "registers.list", "registers.get",
    "registers.set", "registers.del", "explain",    "actors",
};
#define S_NVERBS (sizeof s_verbs / sizeof s_verbs[0])

static const char s_rules[] =
    "/m/**:\n"
    "  rules:\n"
    "    - avg: {rule: rules.simple.gt, register: registers.aggregate.avg, threshold: 5,\n"
    "            period: 10, scope: s/avg}\n"
    "    - rate: {rule: rules.simple.gt, register: registers.aggregate.rate, threshold: 1,\n"
    "             scope: s/rate}\n"
    "    - pct: {rule: rules.simple.gt, register: registers.aggregate.percentile, p: 90,\n"
    "            threshold: 1, scope: s/pct}\n"
    "    - changed: {rule: rules.simple.eq, register: registers.state.changed, value: 1,\n"
    "                scope: s/changed}\n"
    "    - flap: {rule: rules.simple.eq, register: registers.state.flapping, value: 1,\n"
    "             limit: 2, scope: s/flap}\n"
    "    - store: {rule: rules.simple.exists, register: registers.store.get, scope: s/store,\n"
    "              key: '{{event.data.name}}'}\n"
    "    - both:\n"
    "        rule: rules.simple.gt\n"
    "        field: value\n"
    "        threshold: 0\n"
    "        for: 2\n"
    "        cooldown: 1s\n"
    "        chain: [{AND: avg}, {OR_NOT: store}]\n"
    "        reactions:\n"
    "          - reactions.log.write: {message: '{{rule}} {{event.host}} {{value}}'}\n"
    "          - reactions.cmd.run: {target: 'host:{{event.host}}', argv: [/bin/true]}\n";

/*  The last requests, printed when one fails: a failure may be the
    doing of the request before it. */
#define S_HISTORY 8
static char s_history[S_HISTORY][80];
static size_t s_requests;

static void s_note(const char *verb, size_t vlen, size_t alen)
{
    snprintf(s_history[s_requests++ % S_HISTORY], sizeof s_history[0], "%.*s (%zu arg bytes)",
             (int)(vlen > 40 ? 40 : vlen), verb, alen);
}

static void s_dump_history(void)
{
    size_t n = s_requests < S_HISTORY ? s_requests : S_HISTORY;
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "fuzz_control: request -%zu: %s\n", n - i,
                s_history[(s_requests - n + i) % S_HISTORY]);
}

static char s_home[64];
static manager_config_t s_cfg;
static server_t s_server;
static void *s_ctx, *s_dealer;

static void s_dump_history(void);

static void s_require(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_control: %s\n", what);
        s_dump_history();
        abort();
    }
}

static void s_cleanup(void)
{
    if (s_dealer)
        zmq_close(s_dealer);
    if (s_ctx)
        zmq_ctx_term(s_ctx);
    server_stop(&s_server);
    manager_config_free(&s_cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_home);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_control: could not remove %s\n", s_home);
}

static void s_set(char **slot, const char *fmt, const char *arg)
{
    char buf[256];
    snprintf(buf, sizeof buf, fmt, arg);
    s_require(nerve_conf_set_str(slot, buf) == 0, "nerve_conf_set_str");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    nerve_log_set_level(NERVE_LOG_ERROR);
    bool shm = access("/dev/shm", W_OK) == 0;
    snprintf(s_home, sizeof s_home, "%s/nerve-fuzz-control.XXXXXX", shm ? "/dev/shm" : "/tmp");
    s_require(mkdtemp(s_home) != NULL, "mkdtemp");
    s_require(setenv("NERVE_HOME", s_home, 1) == 0, "setenv");
    s_require(manager_config_defaults(&s_cfg) == 0, "manager_config_defaults");

    char rules[128];
    snprintf(rules, sizeof rules, "%s/rules.yaml", s_home);
    FILE *f = fopen(rules, "w");
    s_require(f && fputs(s_rules, f) >= 0 && fclose(f) == 0, "cannot write the rules");
    s_set(&s_cfg.rules, "%s", rules);
    s_set(&s_cfg.events, "ipc://%s/events.sock", s_home);
    s_set(&s_cfg.publisher, "ipc://%s/publisher.sock", s_home);
    s_set(&s_cfg.control, "ipc://%s/control.sock", s_home);
    s_set(&s_cfg.tap, "ipc://%s/tap.sock", s_home);
    s_set(&s_cfg.data, "%s/data", s_home);
    for (size_t i = 0; i < s_cfg.nmodules; i++)
        free(s_cfg.modules[i]);
    s_cfg.modules[0] = NULL;
    s_set(&s_cfg.modules[0], "%s", NERVE_MODULE_BUILD_DIR);
    s_cfg.nmodules = 1;
    s_cfg.map_size_mb = 256;
    s_require(server_start(&s_server, &s_cfg) == 0, "server_start");

    s_ctx = zmq_ctx_new();
    s_dealer = zmq_socket(s_ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s_dealer, ZMQ_LINGER, &linger, sizeof linger);
    s_require(zmq_connect(s_dealer, s_cfg.control) == 0, "connect to control");
    atexit(s_cleanup);
    return 0;
}

/*  Waits up to a second for `sock` to be readable. libFuzzer's SIGALRM
    (its -timeout watchdog) interrupts the poll now and then: go on. */
static bool s_readable(void *sock)
{
    zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (spent >= 1000)
            return false;
        int rc = zmq_poll(&item, 1, 1000 - spent);
        if (rc == 1)
            return true;
        if (rc == 0 || errno != EINTR)
            return false;
    }
}

/*  Reads the reply: [""][status][body], and checks it. */
static void s_check_reply(void)
{
    s_require(s_readable(s_dealer), "no reply within a second");
    zmq_msg_t status, body;
    zmq_msg_init(&status);
    zmq_msg_init(&body);
    s_require(zmq_msg_recv(&status, s_dealer, 0) == 0 && zmq_msg_more(&status),
              "a reply without the delimiter it was sent with");
    s_require(zmq_msg_recv(&status, s_dealer, 0) >= 0 && zmq_msg_more(&status),
              "a reply without a body");
    s_require(zmq_msg_recv(&body, s_dealer, 0) >= 0 && !zmq_msg_more(&body),
              "a reply of more than two frames");
    size_t sn = zmq_msg_size(&status);
    const char *st = zmq_msg_data(&status);
    bool ok = sn == 2 && memcmp(st, "ok", 2) == 0;
    s_require(ok || (sn == 5 && memcmp(st, "error", 5) == 0), "a status neither ok nor error");

    msgpack_zone zone;
    msgpack_zone_init(&zone, 2048);
    msgpack_object obj;
    size_t off = 0;
    s_require(msgpack_unpack(zmq_msg_data(&body), zmq_msg_size(&body), &off, &zone, &obj) ==
                      MSGPACK_UNPACK_SUCCESS &&
                  off == zmq_msg_size(&body),
              "a body that is not one msgpack value");
    if (!ok) {
        bool has_error = obj.type == MSGPACK_OBJECT_MAP && obj.via.map.size == 1 &&
                         obj.via.map.ptr[0].key.type == MSGPACK_OBJECT_STR &&
                         obj.via.map.ptr[0].key.via.str.size == 5 &&
                         memcmp(obj.via.map.ptr[0].key.via.str.ptr, "error", 5) == 0 &&
                         obj.via.map.ptr[0].val.type == MSGPACK_OBJECT_STR &&
                         obj.via.map.ptr[0].val.via.str.size > 0;
        s_require(has_error, "an error without {error: message}");
    }
    msgpack_zone_destroy(&zone);
    zmq_msg_close(&status);
    zmq_msg_close(&body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 64 * 1024)
        return 0;
    const char *verb;
    size_t vlen;
    const uint8_t *args = data + 1;
    size_t alen = size - 1;
    if (data[0] < S_NVERBS) {
        verb = s_verbs[data[0]];
        vlen = strlen(verb);
    } else {
        if (size < 2)
            return 0;
        vlen = data[1] < size - 2 ? data[1] : size - 2;
        verb = (const char *)data + 2;
        args = data + 2 + vlen;
        alen = size - 2 - vlen;
    }
    s_note(verb, vlen, alen);
    /* As REQ sends it: an empty delimiter first, so that an empty verb
       is a verb and not a delimiter. */
    s_require(zmq_send(s_dealer, "", 0, ZMQ_SNDMORE) >= 0 &&
                  zmq_send(s_dealer, verb, vlen, ZMQ_SNDMORE) >= 0 &&
                  zmq_send(s_dealer, args, alen, 0) >= 0,
              "cannot send the request");
    s_require(s_readable(s_server.control), "the request did not arrive within a second");
    control_handle(&s_server);
    s_check_reply();
    return 0;
}
