/*  bench_fanout.c — reactions per second delivered to 50 actors, beside
    raw PUB/SUB of the same frames to 50 SUB sockets.

    Issue 4 ("Performance"): fan-out, reactions/s delivered to 50 actors
    (target `all`), beside raw PUB/SUB. All figures come from one run of
    this program, so they share the machine and its load.

    Four cases. In the first three the 50 actors are 50 SUB sockets in
    this process (two threads), each subscribed to exactly what a
    nerve-actor with id fan<i> in group `fan` subscribes to (`@all/`,
    `@host/fan<i>/`, `@group/fan/`), counting the messages that arrive on
    `@all/`: what actors receive, which is what fan-out is about.

    1. raw: a relay process (this program re-executed with --relay),
       PULL (ipc://) → PUB (TCP, SNDHWM as the publisher's): the shape of
       nerve-publisher in plain libzmq. This process PUSHes one
       pre-encoded reaction (a real wire-v1 reaction to `@all/` from
       nerve_wire_encode_reaction(), 180 bytes) over and over with
       zmq_send_const().
    2. publisher: the same PUSH of the same frames into a real
       nerve-publisher's input; its output PUB is what the 50 SUBs
       connect to.
    3. manager + publisher: real nerve-manager too. This process PUSHes
       events over TCP to its `events`; the one rule (rules.simple.exists
       on `value`, no register) fires `reactions.log.write` with
       `target: all` for every event; the manager PUSHes the reaction to
       the publisher, which fans it out. A reaction here is what the
       manager made of one event: rates are events in = reactions out.
    4. real actors: 50 nerve-actor processes (act<i>, group `act`) on the
       same publisher, each running every reaction (`target: group:act`,
       reactions.log.write at level debug: nothing written) and sending
       its result event back to the manager. On a 2-core machine this
       measures 50 actors' work per reaction and the manager's 50 results
       per reaction sharing two cores, where real actors have a host
       each: it is shown beside the fan-out, not instead of it.

    A round sends for S_ROUND_MS, never more than S_WINDOW messages ahead
    of the slowest subscriber (so the queues stay far below every
    high-water mark and nothing may be dropped), then waits until all 50
    have every message. Rate = messages / (first send → the last
    subscriber's last message); deliveries = 50 × that. Real actors: at
    most S_ACT_WINDOW reactions not yet answered by all (below an actor's
    queue of 256, so none is refused), and a reaction is delivered when
    all 50 results are in (see s_round_actors); the actors' own counters
    at the end must show every reaction run by every actor. The relay's
    and the publisher's CPU time per reaction (all threads, from /proc)
    is shown beside the rates: on two cores the 50 subscribers may well
    be what bounds them, and the CPU figure still tells the relays apart.

    Rounds run raw, publisher, manager, then publisher, manager, raw, …
    (S_ROUNDS of each, each case first in turn), then the real actors'
    S_ROUNDS: they are started only then, since they subscribe to `@all/`
    too. The figures are medians. A case that stops making progress for
    S_STALL_MS fails the run: something was dropped.

    Readiness is asked for, never slept on: the daemons answer `status`
    on their control sockets; each SUB case is warmed up by sending on
    `@group/fan/` (for the manager case: an event whose rule targets
    group:fan) every 20 ms until every one of the 50 has one (the relay
    has no control socket: this is its readiness); the real actors are
    ready once the publisher counts their subscriptions, the manager
    their heartbeats, and one reaction has come back from all of them.
    Everything is stopped at the end, on failure too, and the daemons die
    with this process (PR_SET_PDEATHSIG).

    Usage: bench_fanout [rounds of each case [actors]], default 3 and 50;
    ~20 s. NERVE_BENCH_BUILD_DIR overrides where nerve-manager,
    nerve-publisher, nerve-actor and modules/ are looked up.
*/
#define _GNU_SOURCE /* nftw(), setenv() */
#include <nerve/log.h>
#include <nerve/value.h>
#include <nerve/wire.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define BENCH_NAME "bench_fanout"
#include "benchlib.h"

#define S_SUBS         50
#define S_SUBS_MAX     200
#define S_FARM_THREADS 2
#define S_ROUNDS       3
#define S_ROUNDS_MAX   10
#define S_ROUND_MS     1500
#define S_WINDOW       20000  /* messages ahead of the slowest subscriber, at most */
#define S_HWM          200000 /* nerve-publisher's default --hwm */
#define S_READY_MS     15000
#define S_STALL_MS     5000
#define S_POOL         1024 /* distinct events for the manager case */
#define S_ALL          "@all/"
#define S_ACT_WINDOW   100 /* reactions not yet answered by every actor, at most */

enum { S_RAW, S_PUB, S_MGR, S_CASES, S_ACT = S_CASES /* real actors, after the rest */ };
static const char *const s_case_name[] = {"raw libzmq PUB/SUB", "nerve-publisher",
                                          "nerve-manager + publisher"};

/* ------------------------------------------------------------------- farm */

/*  The subscribers: S_FARM_THREADS threads, each polling its share of the
    sockets and counting what arrives, in a context of their own. */
typedef struct farm {
    void *ctx;
    void *subs[S_SUBS_MAX];
    size_t nsubs;
    _Atomic uint64_t all[S_SUBS_MAX];     /* messages on @all/ */
    _Atomic uint64_t other[S_SUBS_MAX];   /* on the warm-up topic */
    _Atomic uint64_t last_ns[S_SUBS_MAX]; /* monotonic time of the last @all/ message */
    pthread_t threads[S_FARM_THREADS];
    size_t nthreads;
} farm_t;

typedef struct farm_part {
    farm_t *farm;
    size_t from, to;
} farm_part_t;

static farm_part_t s_parts[2][S_FARM_THREADS]; /* [farm][thread] */

/*  Helper threads leave SIGINT and SIGTERM to the main thread, whose
    handler sets s_interrupted; blocking calls there return EINTR. */
static void s_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static uint64_t s_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*  Drains every readable socket of the part; returns on ETERM (context
    shut down). Counting is all it does: what a SUB costs is libzmq's. */
static void *s_farm_thread(void *arg)
{
    s_block_signals();
    farm_part_t *part = arg;
    farm_t *self = part->farm;
    size_t n = part->to - part->from;
    zmq_pollitem_t items[S_SUBS_MAX];
    for (size_t i = 0; i < n; i++)
        items[i] = (zmq_pollitem_t){self->subs[part->from + i], 0, ZMQ_POLLIN, 0};
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    for (;;) {
        if (zmq_poll(items, (int)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break; /* ETERM */
        }
        for (size_t i = 0; i < n; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            size_t k = part->from + i;
            uint64_t all = 0, other = 0;
            char topic[16];
            int len;
            while ((len = zmq_recv(self->subs[k], topic, sizeof topic, ZMQ_DONTWAIT)) >= 0) {
                int more = 0;
                size_t sz = sizeof more;
                zmq_getsockopt(self->subs[k], ZMQ_RCVMORE, &more, &sz);
                while (more) {
                    if (zmq_msg_recv(&msg, self->subs[k], 0) < 0)
                        goto out;
                    more = zmq_msg_more(&msg);
                }
                if (len == (int)strlen(S_ALL) && memcmp(topic, S_ALL, (size_t)len) == 0)
                    all++;
                else
                    other++;
            }
            if (errno == ETERM)
                goto out;
            if (all) {
                atomic_store_explicit(&self->last_ns[k], s_mono_ns(), memory_order_relaxed);
                atomic_fetch_add_explicit(&self->all[k], all, memory_order_release);
            }
            if (other)
                atomic_fetch_add_explicit(&self->other[k], other, memory_order_release);
        }
    }
out:
    zmq_msg_close(&msg);
    return NULL;
}

/*  nsubs SUB sockets connected to `endpoint`, subscribed as actor fan<i>. */
static int s_farm_start(farm_t *self, int which, const char *endpoint, size_t nsubs)
{
    memset(self, 0, sizeof *self);
    self->ctx = zmq_ctx_new();
    if (!self->ctx)
        return -1;
    zmq_ctx_set(self->ctx, ZMQ_IO_THREADS, S_FARM_THREADS);
    int hwm = S_HWM, zero = 0;
    for (size_t i = 0; i < nsubs; i++) {
        void *s = zmq_socket(self->ctx, ZMQ_SUB);
        if (!s)
            return -1;
        self->subs[self->nsubs++] = s;
        char host[32];
        snprintf(host, sizeof host, "@host/fan%zu/", i);
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
        if (zmq_setsockopt(s, ZMQ_SUBSCRIBE, S_ALL, strlen(S_ALL)) != 0 ||
            zmq_setsockopt(s, ZMQ_SUBSCRIBE, host, strlen(host)) != 0 ||
            zmq_setsockopt(s, ZMQ_SUBSCRIBE, "@group/fan/", 11) != 0 ||
            zmq_connect(s, endpoint) != 0) {
            fprintf(stderr, "bench_fanout: SUB to %s: %s\n", endpoint, zmq_strerror(errno));
            return -1;
        }
    }
    for (size_t t = 0; t < S_FARM_THREADS; t++) {
        farm_part_t *part = &s_parts[which][t];
        part->farm = self;
        part->from = nsubs * t / S_FARM_THREADS;
        part->to = nsubs * (t + 1) / S_FARM_THREADS;
        if (pthread_create(&self->threads[t], NULL, s_farm_thread, part) != 0)
            return -1;
        self->nthreads = t + 1;
    }
    return 0;
}

static void s_farm_stop(farm_t *self)
{
    if (self->ctx)
        zmq_ctx_shutdown(self->ctx);
    for (size_t t = 0; t < self->nthreads; t++)
        pthread_join(self->threads[t], NULL);
    for (size_t i = 0; i < self->nsubs; i++)
        zmq_close(self->subs[i]);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    self->ctx = NULL;
}

/*  The fewest @all/ (or warm-up) messages any subscriber has. */
static uint64_t s_farm_min(farm_t *self, bool warm)
{
    uint64_t min = UINT64_MAX;
    for (size_t i = 0; i < self->nsubs; i++) {
        uint64_t v =
            atomic_load_explicit(warm ? &self->other[i] : &self->all[i], memory_order_acquire);
        min = v < min ? v : min;
    }
    return min;
}

/* -------------------------------------------------------------- raw relay */

/*  `bench_fanout --relay IN OUT`: this program re-executed as the raw
    case's relay, a process like nerve-publisher, so that its CPU time can
    be set beside the publisher's. PULL (bound on IN) → PUB (bound on
    OUT), frames moved untouched, until SIGTERM. */
static int s_relay_main(const char *in_ep, const char *out_ep)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal; /* no SA_RESTART: zmq_msg_recv returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int hwm = S_HWM, zero = 0, rc = 1;
    void *ctx = zmq_ctx_new();
    void *pull = ctx ? zmq_socket(ctx, ZMQ_PULL) : NULL,
         *pub = ctx ? zmq_socket(ctx, ZMQ_PUB) : NULL;
    if (!pull || !pub) {
        fprintf(stderr, "bench_fanout --relay: %s\n", zmq_strerror(errno));
        goto done;
    }
    zmq_setsockopt(pull, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(pub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(pull, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(pub, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(pull, in_ep) != 0 || zmq_bind(pub, out_ep) != 0) {
        fprintf(stderr, "bench_fanout --relay: bind %s, %s: %s\n", in_ep, out_ep,
                zmq_strerror(errno));
        goto done;
    }
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (!s_interrupted) {
        if (zmq_msg_recv(&m, pull, 0) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (zmq_msg_send(&m, pub, zmq_msg_more(&m) ? ZMQ_SNDMORE : 0) < 0)
            break;
    }
    zmq_msg_close(&m);
    rc = s_interrupted ? 0 : 1;
done:
    if (pull)
        zmq_close(pull);
    if (pub)
        zmq_close(pub);
    if (ctx)
        zmq_ctx_term(ctx);
    return rc;
}

/* ---------------------------------------------------------------- daemons */

/* ---------------------------------------------------------------- control */

/* ----------------------------------------------------------------- frames */

/*  What is sent: for raw and publisher, reaction frames (all the same;
    the subscribers only count); for the manager, S_POOL events. */
typedef struct frames {
    msgpack_sbuffer reaction; /* to @all/ */
    msgpack_sbuffer warm;     /* the same payload, sent on @group/fan/ */
    msgpack_sbuffer events;   /* S_POOL payloads, concatenated */
    size_t off[S_POOL], len[S_POOL];
    msgpack_sbuffer warm_event;
} frames_t;

static int s_frames_build(frames_t *self)
{
    msgpack_sbuffer_init(&self->reaction);
    msgpack_sbuffer_init(&self->warm);
    msgpack_sbuffer_init(&self->events);
    msgpack_sbuffer_init(&self->warm_event);
    msgpack_sbuffer args, one, data;
    msgpack_sbuffer_init(&args);
    msgpack_sbuffer_init(&one);
    msgpack_sbuffer_init(&data);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "message", 7);
    msgpack_pack_str_with_body(&pk, "fan-out from src1: 1", 20);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = -1;
    if (msgpack_unpack_next(&u, args.data, args.size, NULL) != MSGPACK_UNPACK_SUCCESS)
        goto done;

    /* What the manager makes of an event under the rule below. */
    nerve_reaction_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.topic, sizeof r.topic, "%s", S_ALL);
    nerve_wire_new_id(r.id);
    snprintf(r.fn, sizeof r.fn, "reactions.log.write");
    r.args = u.data;
    snprintf(r.rule, sizeof r.rule, "fan");
    snprintf(r.event.tag, sizeof r.event.tag, "/bench/fan/src1");
    nerve_wire_new_id(r.event.id);
    snprintf(r.event.host, sizeof r.event.host, "src1");
    r.ts = nerve_clock_wall_ns();
    r.deadline = r.ts + 3600ull * 1000000000ull;
    if (nerve_wire_encode_reaction(&r, &self->reaction) != 0 ||
        nerve_wire_encode_reaction(&r, &self->warm) != 0)
        goto done;

    nerve_event_t ev;
    for (size_t j = 0; j <= S_POOL; j++) {
        memset(&ev, 0, sizeof ev);
        snprintf(ev.host, sizeof ev.host, "src%zu", j % 100);
        ev.tag_len = (size_t)snprintf(ev.tag, sizeof ev.tag, "%s/%s",
                                      j < S_POOL ? "/bench/fan" : "/bench/fanwarm", ev.host);
        nerve_wire_new_id(ev.id);
        ev.ts = nerve_clock_wall_ns();
        msgpack_sbuffer_clear(&data);
        msgpack_packer dp;
        msgpack_packer_init(&dp, &data, msgpack_sbuffer_write);
        msgpack_pack_map(&dp, 1);
        msgpack_pack_str_with_body(&dp, "value", 5);
        msgpack_pack_uint64(&dp, j);
        ev.data_raw = data.data;
        ev.data_raw_len = data.size;
        if (nerve_wire_encode_event(&ev, &one) != 0)
            goto done;
        if (j == S_POOL) {
            if (msgpack_sbuffer_write(&self->warm_event, one.data, one.size) != 0)
                goto done;
            break;
        }
        self->off[j] = self->events.size;
        self->len[j] = one.size;
        if (msgpack_sbuffer_write(&self->events, one.data, one.size) != 0)
            goto done;
    }
    rc = 0;
done:
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&args);
    msgpack_sbuffer_destroy(&one);
    msgpack_sbuffer_destroy(&data);
    return rc;
}

static void s_frames_free(frames_t *self)
{
    msgpack_sbuffer_destroy(&self->reaction);
    msgpack_sbuffer_destroy(&self->warm);
    msgpack_sbuffer_destroy(&self->events);
    msgpack_sbuffer_destroy(&self->warm_event);
}

/* ------------------------------------------------------------------ rounds */

typedef struct bench {
    frames_t frames;
    void *push[S_CASES]; /* raw relay input, publisher input, manager events */
    farm_t *farm[S_CASES];
    daemon_t pub, mgr, relay;
    daemon_t actors[S_SUBS_MAX]; /* the real-actor case */
    char actor_names[S_SUBS_MAX][32];
    size_t nactors;
    uint64_t actors_checked_ms;
    void *mctl, *pctl; /* control DEALERs */
    reply_t st;        /* the last status */
} bench_t;

/*  The actors are checked at most every 100 ms: 50 waitpid calls each. */
static bool s_daemons_alive(bench_t *self)
{
    if (!s_alive(&self->pub) || !s_alive(&self->mgr) || !s_alive(&self->relay))
        return false;
    uint64_t now = nerve_clock_mono_ms();
    if (self->nactors && now - self->actors_checked_ms >= 100) {
        self->actors_checked_ms = now;
        for (size_t i = 0; i < self->nactors; i++)
            if (!s_alive(&self->actors[i]))
                return false;
    }
    return true;
}

/*  One message of case c: the reaction frames, or event j of the pool.
    zmq_send_const: the buffers outlive the sockets. The send timeout
    (1 s) returns control to notice a dead daemon. */
static int s_send_one(bench_t *self, int c, bool warm, uint64_t j)
{
    const char *f1;
    const void *f2;
    size_t l1, l2;
    char tag[64];
    void *push = self->push[c == S_ACT ? S_MGR : c];
    if (c == S_MGR || c == S_ACT) {
        /* the tag frame is rebuilt from the payload's host: cheap and exact */
        size_t k = (size_t)(j % S_POOL);
        snprintf(tag, sizeof tag, "%s/src%zu",
                 c == S_ACT ? "/bench/act"
                 : warm     ? "/bench/fanwarm"
                            : "/bench/fan",
                 (warm ? S_POOL : k) % 100);
        f1 = tag;
        l1 = strlen(tag);
        f2 = warm ? self->frames.warm_event.data : self->frames.events.data + self->frames.off[k];
        l2 = warm ? self->frames.warm_event.size : self->frames.len[k];
    } else {
        f1 = warm ? "@group/fan/" : S_ALL;
        l1 = strlen(f1);
        f2 = warm ? self->frames.warm.data : self->frames.reaction.data;
        l2 = warm ? self->frames.warm.size : self->frames.reaction.size;
    }
    for (int frame = 0; frame < 2;) {
        int rc = frame == 0 ? (f1 == tag ? zmq_send(push, f1, l1, ZMQ_SNDMORE)
                                         : zmq_send_const(push, f1, l1, ZMQ_SNDMORE))
                            : zmq_send_const(push, f2, l2, 0);
        if (rc >= 0) {
            frame++;
            continue;
        }
        if (errno != EAGAIN && errno != EINTR) {
            fprintf(stderr, "bench_fanout: send: %s\n", zmq_strerror(errno));
            return -1;
        }
        if (s_interrupted || !s_daemons_alive(self))
            return -1;
    }
    return 0;
}

/*  Warm-up messages every 20 ms until every subscriber has one more than
    before (the publisher and manager cases share subscribers). */
static int s_warm_up(bench_t *self, int c)
{
    uint64_t deadline = nerve_clock_mono_ms() + S_READY_MS;
    uint64_t before = s_farm_min(self->farm[c], true);
    while (s_farm_min(self->farm[c], true) <= before) {
        if (s_interrupted || !s_daemons_alive(self) || s_send_one(self, c, true, 0) != 0)
            return -1;
        if (nerve_clock_mono_ms() > deadline) {
            fprintf(stderr,
                    "bench_fanout: %s: not every subscriber got a warm-up message in %d ms"
                    " (the slowest has %llu)\n",
                    s_case_name[c], S_READY_MS,
                    (unsigned long long)s_farm_min(self->farm[c], true));
            return -1;
        }
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/*  One round of case c; *rate is messages a second into every subscriber.
    Every earlier round ended with every subscriber holding every @all/
    message, so they all start from the same count. */
static int s_round(bench_t *self, int c, double *rate, uint64_t *count, double cpu[2])
{
    farm_t *farm = self->farm[c];
    daemon_t *relay = c == S_RAW ? &self->relay : &self->pub;
    uint64_t cpu0[2] = {s_cpu_us(relay), s_cpu_us(&self->mgr)};
    uint64_t base = s_farm_min(farm, false), n = 0, floor = 0;
    uint64_t t0 = s_mono_ns(), stop = t0 + (uint64_t)S_ROUND_MS * 1000000ull;
    for (;;) {
        if ((n & 255) == 0) {
            if (s_mono_ns() >= stop)
                break;
            uint64_t since = nerve_clock_mono_ms();
            /* the window: the slowest subscriber is at most S_WINDOW behind */
            while (n - floor >= S_WINDOW) {
                floor = s_farm_min(farm, false) - base;
                if (n - floor < S_WINDOW)
                    break;
                if (s_interrupted || !s_daemons_alive(self))
                    return -1;
                if (nerve_clock_mono_ms() - since > S_STALL_MS) {
                    fprintf(stderr,
                            "bench_fanout: %s: a subscriber is stuck %llu messages "
                            "behind\n",
                            s_case_name[c], (unsigned long long)(n - floor));
                    return -1;
                }
                struct timespec ts = {0, 100000};
                nanosleep(&ts, NULL);
            }
        }
        if (s_send_one(self, c, false, n) != 0)
            return -1;
        n++;
    }
    /* every subscriber gets all n; progress at least every S_STALL_MS */
    uint64_t last = 0, last_change = nerve_clock_mono_ms();
    for (;;) {
        uint64_t min = s_farm_min(farm, false);
        if (min >= base + n)
            break;
        if (s_interrupted || !s_daemons_alive(self))
            return -1;
        if (min != last) {
            last = min;
            last_change = nerve_clock_mono_ms();
        } else if (nerve_clock_mono_ms() - last_change > S_STALL_MS) {
            fprintf(stderr,
                    "bench_fanout: %s: the slowest subscriber is stuck at %llu of %llu "
                    "messages: some were dropped\n",
                    s_case_name[c], (unsigned long long)(min - base), (unsigned long long)n);
            return -1;
        }
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    uint64_t end = 0;
    for (size_t i = 0; i < farm->nsubs; i++) {
        uint64_t t = atomic_load_explicit(&farm->last_ns[i], memory_order_relaxed);
        end = t > end ? t : end;
    }
    *rate = (double)n * 1e9 / (double)(end - t0);
    *count = n;
    cpu[0] = (double)(s_cpu_us(relay) - cpu0[0]) / (double)n;
    cpu[1] = (double)(s_cpu_us(&self->mgr) - cpu0[1]) / (double)n;
    return 0;
}

/* ------------------------------------------------------------ real actors */

/*  Events the manager has accepted so far: those sent here, the actors'
    results (one per actor per reaction) and their heartbeats. */
static int s_accepted(bench_t *self, uint64_t *out)
{
    if (s_wait_ready(self->mctl, &self->mgr, &self->st, S_READY_MS, &s_interrupted) != 0)
        return -1;
    *out = s_u64(&self->st, "events.accepted");
    return 0;
}

/*  Starts n nerve-actor processes, act0 … act<n-1> in group `act`, and
    waits until the publisher counts `subs` subscriptions (theirs and the
    subscribers' of the other cases) and the manager n live actors. */
static int s_actors_start(bench_t *self, const char *dir, char *exe, char *conf, size_t n,
                          uint64_t subs)
{
    for (size_t i = 0; i < n; i++) {
        daemon_t *a = &self->actors[i];
        char id[16];
        snprintf(id, sizeof id, "act%zu", i % 1000);
        snprintf(self->actor_names[i], sizeof self->actor_names[i], "nerve-actor %s", id);
        a->name = self->actor_names[i];
        snprintf(a->log, sizeof a->log, "%s/actor-%s.log", dir, id);
        char *argv[] = {exe, "-c", conf, "--id", id, NULL};
        if (s_spawn(a, dir, argv) != 0)
            return -1;
        self->nactors = i + 1;
    }
    uint64_t deadline = nerve_clock_mono_ms() + S_READY_MS, have = 0, live = 0;
    while (!s_interrupted && s_daemons_alive(self)) {
        if (s_wait_ready(self->pctl, &self->pub, &self->st, S_READY_MS, &s_interrupted) != 0)
            return -1;
        have = s_u64(&self->st, "subscriptions");
        if (s_wait_ready(self->mctl, &self->mgr, &self->st, S_READY_MS, &s_interrupted) != 0)
            return -1;
        live = s_u64(&self->st, "actors.live");
        if (have >= subs && live >= n)
            return 0;
        if (nerve_clock_mono_ms() > deadline) {
            fprintf(stderr,
                    "bench_fanout: after %d ms the publisher has %llu of %llu subscriptions and "
                    "the manager %llu of %zu actors live\n",
                    S_READY_MS, (unsigned long long)have, (unsigned long long)subs,
                    (unsigned long long)live, n);
            return -1;
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

/*  Total CPU time of the actor processes, µs. */
static uint64_t s_actors_cpu_us(const bench_t *self)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < self->nactors; i++)
        sum += s_cpu_us(&self->actors[i]);
    return sum;
}

/*  One round of the actor case, or the warm-up (one event at a time until
    its answers are in, `warm`). Events go out for S_ROUND_MS, at most
    S_ACT_WINDOW beyond those every actor has answered (far below an
    actor's queue of 256, so that none is refused), then the round waits
    for every answer. A reaction counts as delivered when all n actors
    have answered it: the manager has accepted 1 + n events per event
    sent (heartbeats add a few a second, which the counters at the end
    make up for: they must show every reaction run by every actor). */
static int s_round_actors(bench_t *self, bool warm, double *rate, uint64_t *count, double cpu[3])
{
    size_t na = self->nactors;
    uint64_t base, acc = 0, n = 0, done = 0;
    if (s_accepted(self, &base) != 0)
        return -1;
    uint64_t cpu0[3] = {s_cpu_us(&self->mgr), s_cpu_us(&self->pub), s_actors_cpu_us(self)};
    uint64_t t0 = s_mono_ns(), stop = t0 + (uint64_t)S_ROUND_MS * 1000000ull;
    uint64_t last_change = nerve_clock_mono_ms();
    while (warm ? n < 1 : s_mono_ns() < stop) {
        if (n - done >= S_ACT_WINDOW || (n & 63) == 0) {
            if (s_accepted(self, &acc) != 0)
                return -1;
            uint64_t d = acc - base > n ? (acc - base - n) / na : 0;
            if (d > done) {
                done = d;
                last_change = nerve_clock_mono_ms();
            }
            if (n - done >= S_ACT_WINDOW) {
                if (s_interrupted || !s_daemons_alive(self))
                    return -1;
                if (nerve_clock_mono_ms() - last_change > S_STALL_MS) {
                    fprintf(stderr, "bench_fanout: the actors answer nothing more (%llu of %llu)\n",
                            (unsigned long long)done, (unsigned long long)n);
                    return -1;
                }
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
                continue;
            }
        }
        if (s_send_one(self, S_ACT, false, n) != 0)
            return -1;
        n++;
    }
    uint64_t want = base + n + na * n, last = 0;
    last_change = nerve_clock_mono_ms();
    for (;;) {
        if (s_accepted(self, &acc) != 0)
            return -1;
        if (acc >= want)
            break;
        if (s_interrupted || !s_daemons_alive(self))
            return -1;
        if (acc != last) {
            last = acc;
            last_change = nerve_clock_mono_ms();
        } else if (nerve_clock_mono_ms() - last_change > (warm ? S_READY_MS : S_STALL_MS)) {
            fprintf(stderr,
                    "bench_fanout: %llu of the %llu answers to %llu reactions never came (an "
                    "actor refused or lost them?)\n",
                    (unsigned long long)(want - acc), (unsigned long long)(na * n),
                    (unsigned long long)n);
            return -1;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    uint64_t end = s_mono_ns();
    if (rate)
        *rate = (double)n * 1e9 / (double)(end - t0);
    if (count)
        *count = n;
    if (cpu) {
        cpu[0] = (double)(s_cpu_us(&self->mgr) - cpu0[0]) / (double)n;
        cpu[1] = (double)(s_cpu_us(&self->pub) - cpu0[1]) / (double)n;
        cpu[2] = (double)(s_actors_cpu_us(self) - cpu0[2]) / (double)n / (double)na;
    }
    return 0;
}

/*  SIGTERM to every actor at once, then waits for each; sums their
    closing counters ("stopped: N received, N run, N refused, …"). Returns
    how many stopped cleanly. */
static size_t s_actors_stop(bench_t *self, uint64_t *received, uint64_t *run, uint64_t *refused)
{
    size_t clean = 0;
    *received = *run = *refused = 0;
    for (size_t i = 0; i < self->nactors; i++)
        if (self->actors[i].pid > 0)
            kill(self->actors[i].pid, SIGTERM);
    for (size_t i = 0; i < self->nactors; i++) {
        clean += s_stop(&self->actors[i]) == 0;
        FILE *f = fopen(self->actors[i].log, "r");
        char line[1024];
        unsigned long long a, b, c;
        while (f && fgets(line, sizeof line, f)) {
            const char *p = strstr(line, "stopped: ");
            if (p && sscanf(p, "stopped: %llu received, %llu run, %llu refused", &a, &b, &c) == 3) {
                *received += a;
                *run += b;
                *refused += c;
            }
        }
        if (f)
            fclose(f);
    }
    self->nactors = 0;
    return clean;
}

/* ------------------------------------------------------------------- main */

static int s_write_configs(const char *dir, const char *build, int events_port, int pub_port)
{
    char path[PATH_MAX], text[4096];
    snprintf(path, sizeof path, "%s/rules", dir);
    if (mkdir(path, 0700) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/rules/fanout.yaml", dir);
    if (s_write_file(path,
                     "# bench_fanout: every event fires one reaction to all actors.\n"
                     "/bench/fan/*:\n"
                     "  rules:\n"
                     "    - fan:\n"
                     "        rule: rules.simple.exists\n"
                     "        field: value\n"
                     "        reactions:\n"
                     "          - reactions.log.write:\n"
                     "              target: all\n"
                     "              message: 'fan-out from {{event.host}}: {{value}}'\n"
                     "/bench/fanwarm/*:\n"
                     "  rules:\n"
                     "    - warm:\n"
                     "        rule: rules.simple.exists\n"
                     "        field: value\n"
                     "        reactions:\n"
                     "          - reactions.log.write:\n"
                     "              target: group:fan\n"
                     "              message: 'warm-up'\n"
                     "/bench/act/*:\n"
                     "  rules:\n"
                     "    - act:\n"
                     "        rule: rules.simple.exists\n"
                     "        field: value\n"
                     "        reactions:\n"
                     "          - reactions.log.write:\n"
                     "              target: group:act\n"
                     "              level: debug\n"
                     "              message: 'fan-out from {{event.host}}: {{value}}'\n") != 0)
        return -1;
    if (s_write_daemon_configs(dir, build, events_port, pub_port, S_HWM) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/actor.yaml", dir);
    snprintf(text, sizeof text,
             "# the real-actor case; each gets --id act<i>\n"
             "groups: [act]\n"
             "publisher: tcp://127.0.0.1:%d\n"
             "manager: tcp://127.0.0.1:%d\n"
             "modules: [%s/modules]\n"
             "log_level: info # a few lines, and the counters at the end\n"
             "security:\n  insecure: true\n",
             pub_port, events_port, build);
    return s_write_file(path, text);
}

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double s_median(const double *v, size_t n)
{
    double sorted[S_ROUNDS_MAX];
    memcpy(sorted, v, n * sizeof *v);
    qsort(sorted, n, sizeof *sorted, s_cmp_double);
    return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

static void s_loadavg(double *out)
{
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f || fscanf(f, "%lf", out) != 1)
        *out = 0;
    if (f)
        fclose(f);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--relay") == 0)
        return s_relay_main(argv[2], argv[3]);
    size_t rounds = argc > 1 ? strtoul(argv[1], NULL, 10) : S_ROUNDS;
    size_t nsubs = argc > 2 ? strtoul(argv[2], NULL, 10) : S_SUBS;
    if (rounds == 0 || rounds > S_ROUNDS_MAX || nsubs < S_FARM_THREADS || nsubs > S_SUBS_MAX) {
        fprintf(stderr,
                "usage: bench_fanout [rounds of each case (1..%d) [subscribers (%d..%d)]]\n",
                S_ROUNDS_MAX, S_FARM_THREADS, S_SUBS_MAX);
        return 2;
    }
    const char *build = s_bench_init();

    char dir[] = "/tmp/nerve-bench-fanout-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("bench_fanout: mkdtemp");
        return 1;
    }
    int rc = 1, linger = 0, timeout = 1000;
    bench_t *b = calloc(1, sizeof *b);
    farm_t *farms = calloc(2, sizeof *farms); /* [0] the raw relay's, [1] the publisher's */
    void *ctx = zmq_ctx_new();
    bool frames_built = false;
    double rates[S_CASES][S_ROUNDS_MAX], cpu_relay[S_CASES][S_ROUNDS_MAX];
    double cpu_mgr[S_ROUNDS_MAX], act_rates[S_ROUNDS_MAX], act_cpu[3][S_ROUNDS_MAX];
    uint64_t act_sent = 0, act_received = 0, act_run = 0, act_refused = 0;
    size_t act_clean = 0;
    uint64_t counts[S_CASES] = {0};
    double load[2] = {0};
    uint64_t mgr_accepted = 0, mgr_sent = 0, mgr_dropped = 0, pub_relayed = 0, pub_dropped = 0;
    uint64_t pub_subs = 0;

    char run[PATH_MAX], control[PATH_MAX + 16], pub_control[PATH_MAX + 16];
    char pub_in[PATH_MAX + 16], raw_in[PATH_MAX + 16], events_ep[64], pub_out[64], raw_out[64];
    char manager[PATH_MAX], publisher[PATH_MAX], mgr_conf[PATH_MAX], pub_conf[PATH_MAX];
    char actor[PATH_MAX], actor_conf[PATH_MAX];
    int events_port = s_free_port(), pub_port = s_free_port(), raw_port = s_free_port();
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(control, sizeof control, "ipc://%s/run/control.sock", dir);
    snprintf(pub_control, sizeof pub_control, "ipc://%s/run/publisher-control.sock", dir);
    snprintf(pub_in, sizeof pub_in, "ipc://%s/run/publisher.sock", dir);
    snprintf(raw_in, sizeof raw_in, "ipc://%s/run/raw.sock", dir);
    snprintf(events_ep, sizeof events_ep, "tcp://127.0.0.1:%d", events_port);
    snprintf(pub_out, sizeof pub_out, "tcp://127.0.0.1:%d", pub_port);
    snprintf(raw_out, sizeof raw_out, "tcp://127.0.0.1:%d", raw_port);
    snprintf(manager, sizeof manager, "%s/nerve-manager", build);
    snprintf(publisher, sizeof publisher, "%s/nerve-publisher", build);
    snprintf(mgr_conf, sizeof mgr_conf, "%s/manager.yaml", dir);
    snprintf(pub_conf, sizeof pub_conf, "%s/publisher.yaml", dir);
    snprintf(actor, sizeof actor, "%s/nerve-actor", build);
    snprintf(actor_conf, sizeof actor_conf, "%s/actor.yaml", dir);

    if (!b || !farms || !ctx) {
        fprintf(stderr, "bench_fanout: out of memory\n");
        goto done;
    }
    s_reply_init(&b->st);
    b->pub.name = "nerve-publisher";
    b->mgr.name = "nerve-manager";
    b->relay.name = "raw relay";
    snprintf(b->pub.log, sizeof b->pub.log, "%s/publisher.log", dir);
    snprintf(b->mgr.log, sizeof b->mgr.log, "%s/manager.log", dir);
    snprintf(b->relay.log, sizeof b->relay.log, "%s/relay.log", dir);
    if (access(manager, X_OK) != 0 || access(publisher, X_OK) != 0 || access(actor, X_OK) != 0) {
        fprintf(stderr, "bench_fanout: needs %s, %s and %s (build them first)\n", manager,
                publisher, actor);
        goto done;
    }
    if (events_port < 0 || pub_port < 0 || raw_port < 0 || events_port == pub_port ||
        raw_port == pub_port || raw_port == events_port) {
        fprintf(stderr, "bench_fanout: no free TCP ports on 127.0.0.1\n");
        goto done;
    }
    frames_built = true;
    if (s_frames_build(&b->frames) != 0) {
        fprintf(stderr, "bench_fanout: cannot encode the frames\n");
        goto done;
    }
    if (mkdir(run, 0700) != 0 || s_write_configs(dir, build, events_port, pub_port) != 0)
        goto done;

    char *pub_argv[] = {publisher, "-c", pub_conf, NULL};
    char *mgr_argv[] = {manager, "-c", mgr_conf, NULL};
    char *relay_argv[] = {"/proc/self/exe", "--relay", raw_in, raw_out, NULL};
    if (!(b->mctl = zmq_socket(ctx, ZMQ_DEALER)) || !(b->pctl = zmq_socket(ctx, ZMQ_DEALER)) ||
        zmq_setsockopt(b->mctl, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(b->pctl, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_connect(b->mctl, control) != 0 || zmq_connect(b->pctl, pub_control) != 0) {
        fprintf(stderr, "bench_fanout: control sockets: %s\n", zmq_strerror(errno));
        goto done;
    }
    if (s_spawn(&b->relay, dir, relay_argv) != 0 || s_spawn(&b->pub, dir, pub_argv) != 0 ||
        s_wait_ready(b->pctl, &b->pub, &b->st, S_READY_MS, &s_interrupted) != 0 ||
        s_spawn(&b->mgr, dir, mgr_argv) != 0 ||
        s_wait_ready(b->mctl, &b->mgr, &b->st, S_READY_MS, &s_interrupted) != 0)
        goto done;
    if (s_farm_start(&farms[0], 0, raw_out, nsubs) != 0 ||
        s_farm_start(&farms[1], 1, pub_out, nsubs) != 0) {
        fprintf(stderr, "bench_fanout: cannot set up the subscribers\n");
        goto done;
    }
    b->farm[S_RAW] = &farms[0];
    b->farm[S_PUB] = b->farm[S_MGR] = &farms[1];
    const char *push_ep[S_CASES] = {raw_in, pub_in, events_ep};
    for (int c = 0; c < S_CASES; c++) {
        int hwm = S_HWM;
        if (!(b->push[c] = zmq_socket(ctx, ZMQ_PUSH)) ||
            zmq_setsockopt(b->push[c], ZMQ_LINGER, &linger, sizeof linger) != 0 ||
            zmq_setsockopt(b->push[c], ZMQ_SNDTIMEO, &timeout, sizeof timeout) != 0 ||
            zmq_setsockopt(b->push[c], ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
            zmq_connect(b->push[c], push_ep[c]) != 0) {
            fprintf(stderr, "bench_fanout: PUSH to %s: %s\n", push_ep[c], zmq_strerror(errno));
            goto done;
        }
    }
    for (int c = 0; c < S_CASES; c++)
        if (s_warm_up(b, c) != 0)
            goto done;
    if (s_wait_ready(b->pctl, &b->pub, &b->st, S_READY_MS, &s_interrupted) != 0)
        goto done;
    pub_subs = s_u64(&b->st, "subscriptions");

    s_loadavg(&load[0]);
    for (size_t r = 0; r < rounds; r++)
        for (int i = 0; i < S_CASES; i++) {
            int c = (int)((r + (size_t)i) % S_CASES); /* each case leads a round in turn */
            uint64_t n;
            double cpu[2];
            if (s_round(b, c, &rates[c][r], &n, cpu) != 0)
                goto done;
            counts[c] += n;
            cpu_relay[c][r] = cpu[0];
            if (c == S_MGR)
                cpu_mgr[r] = cpu[1];
        }

    /* Then the real actors: started only now, since they subscribe to
       @all/ and would otherwise run every reaction of the cases above. */
    if (s_actors_start(b, dir, actor, actor_conf, nsubs, 6 * nsubs) != 0 ||
        s_round_actors(b, true, NULL, NULL, NULL) != 0)
        goto done;
    for (size_t r = 0; r < rounds; r++) {
        uint64_t n;
        double cpu[3];
        if (s_round_actors(b, false, &act_rates[r], &n, cpu) != 0)
            goto done;
        act_sent += n;
        for (int i = 0; i < 3; i++)
            act_cpu[i][r] = cpu[i];
    }
    s_loadavg(&load[1]);

    if (s_wait_ready(b->mctl, &b->mgr, &b->st, S_READY_MS, &s_interrupted) != 0)
        goto done;
    mgr_accepted = s_u64(&b->st, "events.accepted");
    mgr_sent = s_u64(&b->st, "reactions.sent");
    mgr_dropped = s_u64(&b->st, "reactions.send_dropped");
    if (s_wait_ready(b->pctl, &b->pub, &b->st, S_READY_MS, &s_interrupted) != 0)
        goto done;
    pub_relayed = s_u64(&b->st, "relayed");
    pub_dropped = s_u64(&b->st, "dropped");
    act_clean = s_actors_stop(b, &act_received, &act_run, &act_refused);

    printf("fan-out to %zu actors, TCP, target all (a group for the real actors), reaction\n"
           "payload %zu bytes; rounds of %d ms, %zu a case (the first three taking turns, the\n"
           "real actors after them), medians; load average %.2f → %.2f\n",
           nsubs, b->frames.reaction.size, S_ROUND_MS, rounds, load[0], load[1]);
    printf("                             reactions/s  deliveries/s  × raw  publisher CPU  "
           "rounds\n");
    double med_raw = s_median(rates[S_RAW], rounds);
    for (int c = 0; c <= S_ACT; c++) {
        const double *v = c == S_ACT ? act_rates : rates[c];
        char list[256];
        size_t off = 0;
        list[0] = '\0';
        for (size_t r = 0; r < rounds && off < sizeof list; r++)
            off += (size_t)snprintf(list + off, sizeof list - off, "%s%.1fk", r ? " " : "",
                                    v[r] / 1000);
        double med = s_median(v, rounds);
        printf("  %-26s %12.0f %13.0f %6.2f %9.1f µs  %s\n",
               c == S_ACT ? "nerve, real actors" : s_case_name[c], med, med * (double)nsubs,
               med_raw > 0 ? med / med_raw : 0,
               c == S_ACT ? s_median(act_cpu[1], rounds) : s_median(cpu_relay[c], rounds), list);
    }
    printf("  raw: PUSH → ipc:// → a relay process (PULL → PUB, plain libzmq) → %zu SUB sockets;\n"
           "  nerve-publisher: the same PUSH of the same frames into nerve-publisher, → %zu SUB\n"
           "  sockets; nerve-manager + publisher: events over TCP → nerve-manager, whose rule\n"
           "  fires one reaction (target: all) per event → nerve-publisher → %zu SUB sockets.\n"
           "  The SUB sockets live in this process (2 threads), each subscribed as an actor is\n"
           "  (@all/, @host/fan<i>/, @group/fan/), counting: what actors receive, not what they\n"
           "  do. At most %d messages ahead of the slowest. Publisher CPU: the relay's or\n"
           "  nerve-publisher's CPU time (all threads) per reaction; the manager used %.1f µs.\n",
           nsubs, nsubs, nsubs, S_WINDOW, s_median(cpu_mgr, rounds));
    printf("  real actors: %zu nerve-actor processes (group act) on these same 2 cores, each\n"
           "  running every reaction (reactions.log.write at debug: no output) and sending its\n"
           "  result to the manager; a reaction counts once all %zu results are in, at most %d\n"
           "  reactions ahead. CPU per reaction: manager %.1f µs (1 event + %zu results), each\n"
           "  actor %.1f µs.\n",
           nsubs, nsubs, S_ACT_WINDOW, s_median(act_cpu[0], rounds), nsubs,
           s_median(act_cpu[2], rounds));
    bool all_ran = act_run == act_sent * nsubs + nsubs && act_refused == 0;
    printf("  every SUB socket got every message (%llu raw, %llu publisher, %llu manager); "
           "publisher\n  subscriptions %llu (%zu expected); actors: %llu received, %llu run, %llu "
           "refused\n  (%llu reactions + 1 warm-up × %zu: %s); manager: %llu events accepted, "
           "%llu reactions\n  sent, %llu send-dropped; publisher relayed %llu, dropped %llu\n",
           (unsigned long long)counts[S_RAW], (unsigned long long)counts[S_PUB],
           (unsigned long long)counts[S_MGR], (unsigned long long)pub_subs, 3 * nsubs,
           (unsigned long long)act_received, (unsigned long long)act_run,
           (unsigned long long)act_refused, (unsigned long long)act_sent, nsubs,
           all_ran ? "all ran" : "NOT all ran", (unsigned long long)mgr_accepted,
           (unsigned long long)mgr_sent, (unsigned long long)mgr_dropped,
           (unsigned long long)pub_relayed, (unsigned long long)pub_dropped);
    if (act_clean != nsubs)
        fprintf(stderr, "bench_fanout: %zu of %zu actors did not stop cleanly\n", nsubs - act_clean,
                nsubs);
    rc = all_ran && act_clean == nsubs ? 0 : 1;
done:
    if (b && b->mctl)
        zmq_close(b->mctl);
    if (b && b->pctl)
        zmq_close(b->pctl);
    for (int c = 0; b && c < S_CASES; c++)
        if (b->push[c])
            zmq_close(b->push[c]);
    if (b) {
        if (b->nactors) {
            uint64_t x, y, z;
            if (rc != 0 && !s_interrupted)
                s_show_log(&b->actors[0]);
            s_actors_stop(b, &x, &y, &z);
        }
        daemon_t *ds[] = {&b->mgr, &b->pub, &b->relay};
        int exits[3];
        for (int i = 0; i < 3; i++)
            exits[i] = s_stop(ds[i]);
        for (int i = 0; i < 3; i++)
            if ((rc != 0 && !s_interrupted) || (rc == 0 && exits[i] != 0)) {
                if (rc == 0)
                    fprintf(stderr, "bench_fanout: %s did not stop cleanly (%d)\n", ds[i]->name,
                            exits[i]);
                s_show_log(ds[i]);
            }
        for (int i = 0; i < 3 && rc == 0; i++)
            if (exits[i] != 0)
                rc = 1;
    }
    if (farms) {
        s_farm_stop(&farms[0]);
        s_farm_stop(&farms[1]);
    }
    if (ctx)
        zmq_ctx_term(ctx);
    if (b)
        s_reply_destroy(&b->st);
    if (frames_built)
        s_frames_free(&b->frames);
    free(farms);
    free(b);
    nftw(dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    if (s_interrupted)
        fprintf(stderr, "bench_fanout: interrupted; daemons stopped, %s removed\n", dir);
    return rc;
}
