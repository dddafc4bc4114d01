/*  beacons/net.c — beacons.net: can this host reach a TCP service.

        tcp_check   connect to host:port within `timeout`; value = 1 if the
                    connection was accepted, 0 if not

    A refused or timed-out connection, or a name that does not resolve, is
    the answer the probe exists to give (value 0, data.error says why), not
    a failure of the probe. The connection is closed as soon as it is made;
    nothing is sent. Each address the name resolves to is tried in turn
    until one accepts or the timeout, shared by all, runs out.

    Args: `host` (name or address, required), `port` (1–65535, required),
    `timeout` (default 3s; seconds or "500ms"). Event data: {value, ok,
    latency_ms (time to connect, when ok), host, port, error (when not ok)}.

    The run blocks beacond's loop for up to `timeout` (and for name
    resolution, which the system resolver bounds): keep timeouts short
    beside the intervals, or give slow targets their own numeric address.
*/
#include "probe.h"

#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>

#define S_FN "beacons.net.tcp_check"

typedef struct net_state {
    char host[256];
    char port[8];
    uint64_t timeout_ms;
} net_state_t;

static int s_prepare(const msgpack_object *params, void **prepared, char *err, size_t errsize)
{
    static const char *const keys[] = {"host", "port", "timeout", NULL};
    net_state_t *self = calloc(1, sizeof *self);
    if (!self)
        return NERVE_ENOMEM;
    int64_t port = 0;
    bool have_host = false;
    int rc = probe_check_keys(params, keys, S_FN, err, errsize);
    rc = rc ? rc
            : probe_param_str(params, "host", NULL, self->host, sizeof self->host, &have_host, S_FN,
                              err, errsize);
    rc = rc ? rc : probe_param_int(params, "port", 0, 1, 65535, &port, S_FN, err, errsize);
    rc = rc ? rc
            : probe_param_duration(params, "timeout", 3000, 600000, &self->timeout_ms, S_FN, err,
                                   errsize);
    if (rc == 0 && (!have_host || port == 0)) {
        snprintf(err, errsize, "%s: needs 'host' and 'port'", S_FN);
        rc = NERVE_EINVAL;
    }
    if (rc != 0) {
        free(self);
        return rc;
    }
    snprintf(self->port, sizeof self->port, "%d", (int)port);
    *prepared = self;
    return 0;
}

static void s_release(void *prepared)
{
    free(prepared);
}

/*  One non-blocking connect, waited for until deadline. 0 when accepted,
    else an errno value. */
static int s_connect(const struct addrinfo *ai, uint64_t deadline_ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return errno;
    int e = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        e = errno;
        while (e == EINPROGRESS || e == EINTR) {
            uint64_t now = nerve_clock_mono_ms();
            if (now >= deadline_ms) {
                e = ETIMEDOUT;
                break;
            }
            struct pollfd p = {fd, POLLOUT, 0};
            int n = poll(&p, 1, (int)(deadline_ms - now));
            if (n < 0 && errno == EINTR)
                continue;
            if (n == 0) {
                e = ETIMEDOUT;
                break;
            }
            socklen_t len = sizeof e;
            if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
                e = errno;
        }
    }
    close(fd);
    return e;
}

static int s_tcp_check(nerve_beacon_call_t *call)
{
    net_state_t *self = call->prepared;
    uint64_t start_ns = nerve_clock_mono_ns();
    uint64_t deadline = start_ns / 1000000 + self->timeout_ms;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char why[256] = "";
    bool ok = false;
    uint64_t connect_start = 0;
    int g = getaddrinfo(self->host, self->port, &hints, &res);
    if (g != 0)
        snprintf(why, sizeof why, "cannot resolve %.150s: %s", self->host,
                 g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
    for (struct addrinfo *ai = res; ai && !ok; ai = ai->ai_next) {
        connect_start = nerve_clock_mono_ns();
        int e = s_connect(ai, deadline);
        if (e == 0)
            ok = true;
        else
            snprintf(why, sizeof why, "%s", e == ETIMEDOUT ? "timed out" : strerror(e));
        if (nerve_clock_mono_ms() >= deadline)
            break;
    }
    if (res)
        freeaddrinfo(res);
    char buf[1024];
    nerve_data_t d;
    nerve_data_init(&d, buf, sizeof buf);
    nerve_data_int(&d, "value", ok ? 1 : 0);
    nerve_data_bool(&d, "ok", ok);
    if (ok)
        nerve_data_num(&d, "latency_ms", (double)(nerve_clock_mono_ns() - connect_start) / 1e6);
    nerve_data_str(&d, "host", self->host);
    nerve_data_int(&d, "port", atoi(self->port));
    if (!ok)
        nerve_data_str(&d, "error", why);
    return probe_emit(call, call->tag, &d);
}

static const nerve_module_fn_t s_functions[] = {
    {"tcp_check",
     {.beacon = s_tcp_check},
     "TCP connect to host:port within a timeout; value = 1 if accepted, else 0",
     s_prepare,
     s_release},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_BEACONS, "net", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
