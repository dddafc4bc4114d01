/*  bench_latency.c — end-to-end latency, beacon → manager → publisher →
    actor, beside a raw 3-hop libzmq pipeline of the same frames.

    Issue 4 ("Performance") asks that nerve's p50 and p99, at 10,000 events
    a second, stay within 1.5 times those of raw libzmq moving the same
    frames over the same hops. Both figures come from one run of this
    program, so they share the machine, its load and the transports:

    1. nerve: nerve-manager, nerve-publisher and one nerve-actor run as
       real processes (fork/exec from the build tree, scratch endpoints in
       a temp dir, `security: {insecure: true}`: one machine, loopback).
       This process PUSHes events over TCP to the manager's `events`; its
       one rule (rules.simple.exists on data.t, no register) fires, for
       every event, reaction `reactions.probe.mark` targeted at
       host:lat1; the manager PUSHes it over ipc:// to the publisher,
       whose PUB sends it over TCP to the actor's SUB; the actor runs it
       on a worker thread. The probe is an operator module this program
       writes and compiles (`cc`) into a scratch module directory: it
       reads CLOCK_REALTIME first thing and writes {seq, send time, its
       time} to a FIFO this process reads (s_collector). The send time
       travels in the event's data (`t`) and reaches the probe through
       the reaction's args (`t: '{{event.data.t}}'` keeps its type).
    2. raw: threads of this process, each stage with its own ZeroMQ
       context (its own I/O thread, as a process has): PUSH → (TCP) →
       PULL | relay | PUSH → (ipc) → PULL | relay | PUB → (TCP) → SUB.
       The first relay, in the manager's place, sends the payload frame it
       received on under the actor's topic (`@host/lat1/`), so the SUB
       subscribes exactly as the actor does; the second, in the
       publisher's place, moves both frames untouched. The SUB thread reads
       CLOCK_REALTIME as soon as a message is in, decodes seq and t, and
       reports as the probe does (one write to the same FIFO), so that
       measuring costs both sides the same.

    The sender is the same code for both: at each tick of a fixed schedule
    (clock_nanosleep, 1 ns timer slack) it reads CLOCK_REALTIME, packs
    data {seq, t}, encodes the event with nerve_wire_encode_event() and
    sends the two frames. Latency = receive time − t, on one clock.

    The machine is shared and its load moves from second to second, so
    the sides take turns: one-second phases raw, nerve, nerve, raw, raw,
    nerve, … (see s_side_of; the daemons run through all of them). The
    percentiles pool every phase of a side, without each phase's first
    50 ms; the ratios are also shown phase pair by phase pair, whose
    spread says how far to trust them. A phase ends when all its events
    have arrived, or S_DRAIN_MS after its last send (the rest count as
    lost, and the actor's counters, printed at the end, say whether it
    refused them).

    Readiness is asked for, never slept on: the daemons answer `status` on
    their control sockets, and each side is warmed up by sending flagged
    events every 20 ms until one arrives at the far end (that is also when
    the actor's subscription is known to be in place). Everything is
    stopped at the end, on failure too, and the daemons die with this
    process (PR_SET_PDEATHSIG). Each daemon's CPU time per event is read
    from /proc, to say where the time goes.

    Usage: bench_latency [events/s [seconds a side]], default 10000 and 10
    (twenty one-second phases, ~20 s in all). NERVE_BENCH_BUILD_DIR
    overrides where the daemons and modules/ are looked up; CC names the
    compiler (default cc).
*/
#define _GNU_SOURCE /* nftw(), setenv(), PR_SET_TIMERSLACK */
#include <nerve/log.h>
#include <nerve/value.h>
#include <nerve/wire.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
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

#define BENCH_NAME "bench_latency"
#include "benchlib.h"

#define S_RATE      10000
#define S_SECONDS   10
#define S_PAIRS_MAX 30           /* phases alternate raw, nerve: one pair per second a side */
#define S_WARM_FLAG (1ull << 62) /* seq of warm-up events: not samples… */
#define S_WARM_RAW  (1ull << 61) /* …sent through the raw pipeline */
#define S_READY_MS  15000        /* a daemon answers status within this */
#define S_DRAIN_MS  5000         /* after the last send, missing = lost */
#define S_TARGET    1.5
#define S_ACTOR     "lat1"
#define S_TOPIC     "@host/" S_ACTOR "/"
#define S_HWM       200000 /* the daemons' queues (publisher, manager) */
#define S_TAG       "/bench/lat/src1"
#define S_TIDS_MAX  64

enum { S_RAW = 0, S_NERVE = 1 };
static const char *const s_side_name[] = {"raw", "nerve"};

/*  Phases go raw, nerve, nerve, raw, raw, nerve, …: each pair (2k, 2k+1)
    holds one of each, and the order flips every pair, so a load that
    rises or falls through the run weighs on both sides alike. */
static int s_side_of(uint64_t phase)
{
    return (int)((phase + phase / 2) % 2);
}

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

/* ------------------------------------------------------------------ probe */

/*  The operator module that marks arrival on the actor. Built by s_build
    with the tree's headers only: it needs nothing from libnerve. */
static const char s_probe_src[] =
    "/* probe.c: written and compiled by bench_latency (bench/bench_latency.c).\n"
    "   reactions.probe.mark reads the wall clock first, then writes the record\n"
    "   {args.seq, args.t, now} (24 bytes: one atomic write) to the FIFO args.fifo. */\n"
    "#include <nerve/module.h>\n"
    "#include <fcntl.h>\n"
    "#include <string.h>\n"
    "#include <time.h>\n"
    "#include <unistd.h>\n"
    "\n"
    "static const msgpack_object *s_arg(const msgpack_object *args, const char *key)\n"
    "{\n"
    "    size_t len = strlen(key);\n"
    "    if (!args || args->type != MSGPACK_OBJECT_MAP)\n"
    "        return NULL;\n"
    "    for (uint32_t i = 0; i < args->via.map.size; i++) {\n"
    "        const msgpack_object_kv *kv = &args->via.map.ptr[i];\n"
    "        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == len &&\n"
    "            memcmp(kv->key.via.str.ptr, key, len) == 0)\n"
    "            return &kv->val;\n"
    "    }\n"
    "    return NULL;\n"
    "}\n"
    "\n"
    "static int s_mark(nerve_reaction_call_t *call)\n"
    "{\n"
    "    struct timespec now;\n"
    "    clock_gettime(CLOCK_REALTIME, &now);\n"
    "    const msgpack_object *seq = s_arg(call->args, \"seq\"), *t = s_arg(call->args, \"t\");\n"
    "    const msgpack_object *fifo = s_arg(call->args, \"fifo\");\n"
    "    char path[256];\n"
    "    if (!seq || seq->type != MSGPACK_OBJECT_POSITIVE_INTEGER || !t ||\n"
    "        t->type != MSGPACK_OBJECT_POSITIVE_INTEGER || !fifo ||\n"
    "        fifo->type != MSGPACK_OBJECT_STR || fifo->via.str.size >= sizeof path)\n"
    "        return NERVE_EINVAL;\n"
    "    memcpy(path, fifo->via.str.ptr, fifo->via.str.size);\n"
    "    path[fifo->via.str.size] = '\\0';\n"
    "    uint64_t rec[3] = {seq->via.u64, t->via.u64,\n"
    "                       (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec};\n"
    "    static __thread int fd = -1; /* one per worker, for the actor's lifetime */\n"
    "    if (fd < 0 && (fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)\n"
    "        return NERVE_EIO;\n"
    "    return write(fd, rec, sizeof rec) == (ssize_t)sizeof rec ? NERVE_OK : NERVE_EIO;\n"
    "}\n"
    "\n"
    "static const nerve_module_fn_t s_functions[] = {\n"
    "    {\"mark\", {.reaction = s_mark}, \"bench: write {seq, t, now} to args.fifo\",\n"
    "     NULL, NULL},\n"
    "    {NULL, {NULL}, NULL, NULL, NULL},\n"
    "};\n"
    "\n"
    "static const nerve_module_t s_module = {NERVE_MODULE_HEADER, NERVE_ROLE_REACTIONS,\n"
    "                                        \"probe\", \"1.0.0\", s_functions, NULL, NULL};\n"
    "\n"
    "NERVE_MODULE_EXPORT(s_module)\n";

/*  Runs argv to completion with its output to `log`. 0 if it exited 0. */
static int s_run(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/*  Writes probe.c and compiles it to <dir>/modules/reactions/probe.so,
    directories and file 0755 (the loader refuses what others may write). */
static int s_build_probe(const char *dir)
{
    char src[PATH_MAX], mods[PATH_MAX], role[PATH_MAX], so[PATH_MAX], log[PATH_MAX];
    char inc[PATH_MAX];
    snprintf(src, sizeof src, "%s/probe.c", dir);
    snprintf(mods, sizeof mods, "%s/modules", dir);
    snprintf(role, sizeof role, "%s/modules/reactions", dir);
    snprintf(so, sizeof so, "%s/modules/reactions/probe.so", dir);
    snprintf(log, sizeof log, "%s/cc.log", dir);
    snprintf(inc, sizeof inc, "-I%s/include", NERVE_SOURCE_DIR);
    FILE *f = fopen(src, "w");
    if (!f || fputs(s_probe_src, f) < 0) {
        if (f)
            fclose(f);
        fprintf(stderr, "bench_latency: cannot write %s: %s\n", src, strerror(errno));
        return -1;
    }
    if (fclose(f) != 0 || mkdir(mods, 0755) != 0 || mkdir(role, 0755) != 0 ||
        chmod(mods, 0755) != 0 || chmod(role, 0755) != 0) {
        fprintf(stderr, "bench_latency: cannot make %s: %s\n", role, strerror(errno));
        return -1;
    }
    const char *cc = getenv("CC");
    char *argv[] = {(char *)(cc && *cc ? cc : "cc"),
                    "-std=gnu11",
                    "-O2",
                    "-fPIC",
                    "-shared",
                    "-Wall",
                    "-Werror",
                    inc,
                    "-o",
                    so,
                    src,
                    NULL};
    if (s_run(argv, log) != 0 || chmod(so, 0755) != 0) {
        fprintf(stderr, "bench_latency: could not compile the probe module (%s %s ...):\n", argv[0],
                src);
        FILE *l = fopen(log, "r");
        char line[512];
        for (int i = 0; l && i < 20 && fgets(line, sizeof line, l); i++)
            fprintf(stderr, "  %s", line);
        if (l)
            fclose(l);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- samples */

/*  Latencies by seq (0: not arrived). Phase p holds seqs [p·n, (p+1)·n). */
typedef struct samples {
    uint64_t *lat;
    uint64_t per_phase, total, settle;
    uint64_t got[2 * S_PAIRS_MAX];
    uint64_t warm[2];   /* warm-up events arrived, per side */
    uint64_t dups[2];   /* a seq seen twice: a retry ran again */
    uint64_t strays;    /* seq out of range */
    uint64_t backwards; /* receive time before send time (clock step) */
    pthread_mutex_t lock;
    pthread_cond_t cond;
} samples_t;

/*  One arrival, from either side: the side is the phase's (see
    s_side_of), or the warm-up flag's. */
static void s_record(samples_t *self, uint64_t seq, uint64_t t_send, uint64_t t_recv)
{
    int side =
        seq & S_WARM_FLAG ? (seq & S_WARM_RAW ? S_RAW : S_NERVE) : s_side_of(seq / self->per_phase);
    pthread_mutex_lock(&self->lock);
    if (seq & S_WARM_FLAG)
        self->warm[side]++;
    else if (seq >= self->total || side != s_side_of(seq / self->per_phase))
        self->strays++;
    else if (self->lat[seq])
        self->dups[side]++;
    else {
        if (t_recv <= t_send)
            self->backwards++;
        self->lat[seq] = t_recv > t_send ? t_recv - t_send : 1;
        self->got[seq / self->per_phase]++;
    }
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
}

/*  Waits until *counter >= want, the deadline passes, or check() fails
    (asked at most every 100 ms). Returns the counter's value. */
static uint64_t s_wait_count(samples_t *self, const uint64_t *counter, uint64_t want,
                             uint64_t deadline_ms, bool (*check)(void *), void *arg)
{
    uint64_t checked = 0;
    pthread_mutex_lock(&self->lock);
    while (*counter < want && !s_interrupted && nerve_clock_mono_ms() < deadline_ms) {
        if (check && nerve_clock_mono_ms() - checked >= 100) {
            pthread_mutex_unlock(&self->lock);
            bool ok = check(arg);
            checked = nerve_clock_mono_ms();
            pthread_mutex_lock(&self->lock);
            if (!ok)
                break;
        }
        uint64_t left_ms = deadline_ms - nerve_clock_mono_ms();
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(left_ms < 100 ? left_ms : 100) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        if (*counter < want)
            pthread_cond_timedwait(&self->cond, &self->lock, &ts);
    }
    uint64_t v = *counter;
    pthread_mutex_unlock(&self->lock);
    return v;
}

/* -------------------------------------------------------------- collector */

/*  Reads the records both sides write to one FIFO: 24-byte writes, so
    each is atomic (< PIPE_BUF) and whole, whoever writes it; the pipe holds
    tens of thousands of them, so a writer never waits on a busy reader
    (a unix datagram socket queues only net.unix.max_dgram_qlen, often 10,
    and would stall the writers). poll()'s timeout lets it see `stop`
    within 100 ms. */
typedef struct collector {
    int fd;
    samples_t *samples;
    volatile int stop;
} collector_t;

static void *s_collector(void *arg)
{
    s_block_signals();
    collector_t *self = arg;
    uint64_t rec[3 * 256];
    size_t have = 0; /* bytes in rec; a whole record is always written at once */
    while (!self->stop) {
        struct pollfd pfd = {self->fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t n = read(self->fd, (char *)rec + have, sizeof rec - have);
        if (n <= 0)
            continue;
        have += (size_t)n;
        size_t whole = have / sizeof(uint64_t[3]);
        for (size_t i = 0; i < whole; i++)
            s_record(self->samples, rec[3 * i], rec[3 * i + 1], rec[3 * i + 2]);
        have -= whole * sizeof(uint64_t[3]);
        memmove(rec, rec + 3 * whole, have);
    }
    return NULL;
}

/*  Makes the FIFO and opens it for reading and writing, so that it never
    reads end-of-file and writers' open() never waits. */
static int s_collector_open(collector_t *self, const char *path)
{
    if (mkfifo(path, 0600) != 0 || (self->fd = open(path, O_RDWR | O_CLOEXEC)) < 0) {
        fprintf(stderr, "bench_latency: FIFO %s: %s\n", path, strerror(errno));
        return -1;
    }
    fcntl(self->fd, F_SETPIPE_SZ, 1 << 20); /* best effort: 1 MiB, ~44,000 records */
    return 0;
}

/* -------------------------------------------------------------------- raw */

/*  This process's thread ids, at most max. Returns how many. */
static size_t s_tasks(pid_t *out, size_t max)
{
    DIR *d = opendir("/proc/self/task");
    size_t n = 0;
    struct dirent *e;
    while (d && n < max && (e = readdir(d)))
        if (e->d_name[0] != '.')
            out[n++] = (pid_t)atoi(e->d_name);
    if (d)
        closedir(d);
    return n;
}

/*  Three stages, three contexts: see the prose at the top. */
typedef struct raw {
    void *ctx[3];             /* relay 1, relay 2, SUB */
    void *in_pull, *in_push;  /* relay 1, the manager's place */
    void *mid_pull, *out_pub; /* relay 2, the publisher's place */
    void *sub;                /* the actor's place */
    char in_ep[256], mid_ep[PATH_MAX + 16], out_ep[256];
    pthread_t threads[3];
    int nthreads;
    char fifo[PATH_MAX]; /* the collector's */
    uint64_t decode_errors, report_errors;
    pid_t tids[S_TIDS_MAX]; /* its threads, libzmq's included, for CPU time */
    size_t ntids;
} raw_t;

/*  Receives one message of up to 2 frames into parts; extra frames are
    dropped. Returns the frame count, or -1 (ETERM at shutdown). */
static int s_recv_msg(void *sock, zmq_msg_t parts[2])
{
    int n = 0;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0) {
            zmq_msg_close(&m);
            for (int i = 0; i < n && i < 2; i++)
                zmq_msg_close(&parts[i]);
            return -1;
        }
        int more = zmq_msg_more(&m);
        if (n < 2)
            parts[n] = m;
        else
            zmq_msg_close(&m);
        n++;
        if (!more)
            return n < 2 ? n : 2;
    }
}

static void *s_raw_relay1(void *arg)
{
    s_block_signals();
    raw_t *self = arg;
    zmq_msg_t parts[2];
    int n;
    while ((n = s_recv_msg(self->in_pull, parts)) >= 0) {
        if (n == 2) {
            zmq_send_const(self->in_push, S_TOPIC, strlen(S_TOPIC), ZMQ_SNDMORE);
            zmq_msg_send(&parts[1], self->in_push, 0);
        }
        for (int i = 0; i < n; i++)
            zmq_msg_close(&parts[i]);
    }
    return NULL;
}

static void *s_raw_relay2(void *arg)
{
    s_block_signals();
    raw_t *self = arg;
    zmq_msg_t parts[2];
    int n;
    while ((n = s_recv_msg(self->mid_pull, parts)) >= 0) {
        if (n == 2) {
            zmq_msg_send(&parts[0], self->out_pub, ZMQ_SNDMORE);
            zmq_msg_send(&parts[1], self->out_pub, 0);
        }
        for (int i = 0; i < n; i++)
            zmq_msg_close(&parts[i]);
    }
    return NULL;
}

static void *s_raw_sub(void *arg)
{
    s_block_signals();
    raw_t *self = arg;
    zmq_msg_t parts[2];
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int n, fd = -1;
    while ((n = s_recv_msg(self->sub, parts)) >= 0) {
        uint64_t now = nerve_clock_wall_ns();
        const msgpack_object *seq = NULL, *t = NULL;
        if (n == 2 && msgpack_unpack_next(&u, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]),
                                          NULL) == MSGPACK_UNPACK_SUCCESS) {
            seq = nerve_obj_path(&u.data, "data.seq");
            t = nerve_obj_path(&u.data, "data.t");
        }
        if (seq && t && seq->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            t->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            /* reported as the probe reports, so both sides cost the same */
            uint64_t rec[3] = {seq->via.u64, t->via.u64, now};
            if (fd < 0)
                fd = open(self->fifo, O_WRONLY | O_CLOEXEC);
            if (fd < 0 || write(fd, rec, sizeof rec) != (ssize_t)sizeof rec)
                self->report_errors++;
        } else
            self->decode_errors++;
        for (int i = 0; i < n; i++)
            zmq_msg_close(&parts[i]);
    }
    msgpack_unpacked_destroy(&u);
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void *s_sock(void *ctx, int type, const char *endpoint, bool bind, char *bound,
                    size_t boundsize)
{
    void *s = zmq_socket(ctx, type);
    int hwm = S_HWM, zero = 0;
    if (!s)
        return NULL;
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (type == ZMQ_SUB)
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, S_TOPIC, strlen(S_TOPIC));
    if ((bind ? zmq_bind(s, endpoint) : zmq_connect(s, endpoint)) != 0) {
        fprintf(stderr, "bench_latency: raw %s %s: %s\n", bind ? "bind" : "connect", endpoint,
                zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    if (bound) {
        size_t len = boundsize;
        zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, bound, &len);
    }
    return s;
}

static int s_raw_start(raw_t *self, const char *dir, const char *fifo)
{
    memset(self, 0, sizeof *self);
    snprintf(self->fifo, sizeof self->fifo, "%s", fifo);
    pid_t before[S_TIDS_MAX];
    size_t nbefore = s_tasks(before, S_TIDS_MAX);
    snprintf(self->mid_ep, sizeof self->mid_ep, "ipc://%s/raw-mid.sock", dir);
    for (int i = 0; i < 3; i++)
        if (!(self->ctx[i] = zmq_ctx_new()))
            return -1;
    if (!(self->in_pull = s_sock(self->ctx[0], ZMQ_PULL, "tcp://127.0.0.1:*", true, self->in_ep,
                                 sizeof self->in_ep)) ||
        !(self->mid_pull = s_sock(self->ctx[1], ZMQ_PULL, self->mid_ep, true, NULL, 0)) ||
        !(self->in_push = s_sock(self->ctx[0], ZMQ_PUSH, self->mid_ep, false, NULL, 0)) ||
        !(self->out_pub = s_sock(self->ctx[1], ZMQ_PUB, "tcp://127.0.0.1:*", true, self->out_ep,
                                 sizeof self->out_ep)) ||
        !(self->sub = s_sock(self->ctx[2], ZMQ_SUB, self->out_ep, false, NULL, 0)))
        return -1;
    void *(*fns[3])(void *) = {s_raw_relay1, s_raw_relay2, s_raw_sub};
    for (int i = 0; i < 3; i++) {
        if (pthread_create(&self->threads[i], NULL, fns[i], self) != 0)
            return -1;
        self->nthreads = i + 1;
    }
    /* Every thread that is new since `before` is the pipeline's. */
    pid_t now[S_TIDS_MAX];
    size_t nnow = s_tasks(now, S_TIDS_MAX);
    for (size_t i = 0; i < nnow; i++) {
        bool old = false;
        for (size_t j = 0; j < nbefore && !old; j++)
            old = now[i] == before[j];
        if (!old && self->ntids < S_TIDS_MAX)
            self->tids[self->ntids++] = now[i];
    }
    return 0;
}

/*  Shutting a context down makes its blocked calls fail with ETERM: the
    threads return, then the sockets close and the contexts end. */
static void s_raw_stop(raw_t *self)
{
    for (int i = 0; i < 3; i++)
        if (self->ctx[i])
            zmq_ctx_shutdown(self->ctx[i]);
    for (int i = 0; i < self->nthreads; i++)
        pthread_join(self->threads[i], NULL);
    void *socks[] = {self->in_pull, self->in_push, self->mid_pull, self->out_pub, self->sub};
    for (size_t i = 0; i < sizeof socks / sizeof *socks; i++)
        if (socks[i])
            zmq_close(socks[i]);
    for (int i = 0; i < 3; i++)
        if (self->ctx[i])
            zmq_ctx_term(self->ctx[i]);
}

/* ---------------------------------------------------------------- daemons */

/*  Prints the actor's last words, its counters ("stopped: N received, N
    run, N refused, …"): they say where a lost reaction went. */
static void s_print_stopped(const daemon_t *self)
{
    FILE *f = fopen(self->log, "r");
    char line[1024], last[1024] = "";
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "stopped:"))
            snprintf(last, sizeof last, "%s", strstr(line, "stopped:"));
    if (f)
        fclose(f);
    if (last[0])
        printf("  %s %s", self->name, last);
}

/*  The three daemons, for liveness checks while waiting. */
typedef struct fleet {
    daemon_t pub, mgr, actor;
} fleet_t;

static bool s_fleet_alive(void *arg)
{
    fleet_t *self = arg;
    return s_alive(&self->pub) && s_alive(&self->mgr) && s_alive(&self->actor);
}

/*  The raw pipeline's CPU time: its threads and its contexts' threads. */
static uint64_t s_raw_cpu_us(const raw_t *self)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < self->ntids; i++) {
        char path[64];
        uint64_t us = 0;
        snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)self->tids[i]);
        if (s_proc_stat(path, NULL, 0, &us))
            sum += us;
    }
    return sum;
}

/* ---------------------------------------------------------------- control */

/* ----------------------------------------------------------------- sender */

typedef struct sender {
    void *ctx;
    void *push[2]; /* by side */
    msgpack_sbuffer data, payload;
    uint64_t rate;
} sender_t;

/*  One event: t is read, then data {seq, t} packed, the event encoded and
    sent. The socket's send timeout (1 s) returns control while a queue
    is full, to notice a dead receiver. */
static int s_send_event(sender_t *self, int side, uint64_t seq, fleet_t *fleet)
{
    uint64_t t = nerve_clock_wall_ns();
    msgpack_sbuffer_clear(&self->data);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &self->data, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "seq", 3);
    msgpack_pack_uint64(&pk, seq);
    msgpack_pack_str_with_body(&pk, "t", 1);
    msgpack_pack_uint64(&pk, t);
    nerve_event_t ev;
    memset(&ev, 0, sizeof ev);
    memcpy(ev.tag, S_TAG, sizeof S_TAG);
    ev.tag_len = sizeof S_TAG - 1;
    memcpy(ev.host, "src1", 5);
    nerve_wire_new_id(ev.id);
    ev.ts = t;
    ev.data_raw = self->data.data;
    ev.data_raw_len = self->data.size;
    if (nerve_wire_encode_event(&ev, &self->payload) != 0) {
        fprintf(stderr, "bench_latency: cannot encode an event\n");
        return -1;
    }
    void *push = self->push[side];
    for (int frame = 0; frame < 2;) {
        int rc = frame == 0 ? zmq_send(push, S_TAG, sizeof S_TAG - 1, ZMQ_SNDMORE)
                            : zmq_send(push, self->payload.data, self->payload.size, 0);
        if (rc >= 0) {
            frame++;
            continue;
        }
        if (errno != EAGAIN && errno != EINTR) {
            fprintf(stderr, "bench_latency: send: %s\n", zmq_strerror(errno));
            return -1;
        }
        if (s_interrupted || !s_fleet_alive(fleet))
            return -1;
    }
    return 0;
}

/*  Sends `count` events from seq `first` on the schedule. Returns 0 and the
    rate achieved, or -1. */
static int s_send_paced(sender_t *self, int side, uint64_t first, uint64_t count, fleet_t *fleet,
                        double *achieved)
{
    uint64_t period = 1000000000ull / self->rate, t0 = s_mono_ns();
    for (uint64_t i = 0; i < count; i++) {
        uint64_t due = t0 + i * period;
        if (s_mono_ns() < due) {
            struct timespec ts = {(time_t)(due / 1000000000ull), (long)(due % 1000000000ull)};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR &&
                   !s_interrupted)
                ;
        }
        if (s_send_event(self, side, first + i, fleet) != 0)
            return -1;
        if (i % 1000 == 999 && (s_interrupted || !s_fleet_alive(fleet)))
            return -1;
    }
    *achieved = (double)count * 1e9 / (double)(s_mono_ns() - t0);
    return 0;
}

/*  Flagged events every 20 ms until one arrives at the far end. */
static int s_warm_up(sender_t *self, samples_t *samples, int side, fleet_t *fleet)
{
    uint64_t deadline = nerve_clock_mono_ms() + S_READY_MS;
    for (uint64_t k = 0; !s_interrupted; k++) {
        uint64_t seq = S_WARM_FLAG | (side == S_RAW ? S_WARM_RAW : 0) | k;
        if (s_send_event(self, side, seq, fleet) != 0)
            return -1;
        uint64_t due = nerve_clock_mono_ms() + 20;
        if (s_wait_count(samples, &samples->warm[side], 1, due, s_fleet_alive, fleet) >= 1)
            return 0;
        if (!s_fleet_alive(fleet))
            return -1;
        if (nerve_clock_mono_ms() > deadline) {
            fprintf(stderr, "bench_latency: no %s warm-up event reached the end in %d ms\n",
                    s_side_name[side], S_READY_MS);
            return -1;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------ setup */

/*  Configs and the rule. */
static int s_write_configs(const char *dir, int events_port, int pub_port, const char *build)
{
    char path[PATH_MAX], text[4096];
    snprintf(path, sizeof path, "%s/rules", dir);
    if (mkdir(path, 0700) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/rules/latency.yaml", dir);
    snprintf(text, sizeof text,
             "# bench_latency: every event fires one reaction at the one actor.\n"
             "/bench/lat/*:\n"
             "  rules:\n"
             "    - probe:\n"
             "        rule: rules.simple.exists\n"
             "        field: t\n"
             "        reactions:\n"
             "          - reactions.probe.mark:\n"
             "              target: host:%s\n"
             "              seq: '{{event.data.seq}}'\n"
             "              t: '{{event.data.t}}'\n"
             "              fifo: '%s/probe.fifo'\n",
             S_ACTOR, dir);
    if (s_write_file(path, text) != 0)
        return -1;
    if (s_write_daemon_configs(dir, build, events_port, pub_port, 0) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/actor.yaml", dir);
    snprintf(text, sizeof text,
             "id: %s\n"
             "publisher: tcp://127.0.0.1:%d\n"
             "manager: tcp://127.0.0.1:%d\n"
             "modules: [%s/modules]\n"
             "log_level: info # a few lines, and the counters at the end\n"
             "security:\n  insecure: true\n",
             S_ACTOR, pub_port, events_port, dir);
    return s_write_file(path, text);
}

/* ------------------------------------------------------------------ stats */

typedef struct summary {
    uint64_t n, lost;
    double p50, p90, p99, p999, max; /* µs */
} summary_t;

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double s_median(const double *v, size_t n)
{
    double sorted[S_PAIRS_MAX];
    memcpy(sorted, v, n * sizeof *v);
    qsort(sorted, n, sizeof *sorted, s_cmp_double);
    return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

/*  Nearest rank: the smallest sample with at least q of them at or below. */
static double s_rank(const uint64_t *sorted, uint64_t n, double q)
{
    uint64_t k = (uint64_t)(q * (double)n + 0.999999);
    k = k == 0 ? 0 : k - 1;
    return (double)sorted[k < n ? k : n - 1] / 1000.0;
}

/*  Percentiles over the phases of `side` in [first, end), each without
    its first `settle` events. */
static int s_summarize(const samples_t *s, int side, uint64_t first, uint64_t end, summary_t *out)
{
    memset(out, 0, sizeof *out);
    uint64_t *v = malloc(s->total * sizeof *v);
    if (!v)
        return -1;
    for (uint64_t p = first; p < end; p++)
        for (uint64_t i = s->settle; i < s->per_phase && s_side_of(p) == side; i++) {
            uint64_t lat = s->lat[(uint64_t)p * s->per_phase + i];
            if (lat)
                v[out->n++] = lat;
            else
                out->lost++;
        }
    if (out->n) {
        qsort(v, out->n, sizeof *v, s_cmp_u64);
        out->p50 = s_rank(v, out->n, 0.50);
        out->p90 = s_rank(v, out->n, 0.90);
        out->p99 = s_rank(v, out->n, 0.99);
        out->p999 = s_rank(v, out->n, 0.999);
        out->max = (double)v[out->n - 1] / 1000.0;
    }
    free(v);
    return 0;
}

/* ------------------------------------------------------------------- main */

/*  The 1-minute load average, for the record (0 if unreadable). */
static void s_loadavg(double *out)
{
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f || fscanf(f, "%lf", out) != 1)
        *out = 0;
    if (f)
        fclose(f);
}

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(int argc, char **argv)
{
    uint64_t rate = argc > 1 ? strtoull(argv[1], NULL, 10) : S_RATE;
    uint64_t pairs = argc > 2 ? strtoull(argv[2], NULL, 10) : S_SECONDS;
    if (rate < 100 || rate > 1000000 || pairs == 0 || pairs > S_PAIRS_MAX) {
        fprintf(stderr, "usage: bench_latency [events/s (100..1000000) [seconds a side (1..%d)]]\n",
                S_PAIRS_MAX);
        return 2;
    }
    uint64_t per_phase = rate, nphases = 2 * pairs; /* one second a phase */
    const char *build = s_bench_init();
    prctl(PR_SET_TIMERSLACK, 1UL); /* wake on the schedule, not 50 µs late */

    char dir[] = "/tmp/nerve-bench-latency-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("bench_latency: mkdtemp");
        return 1;
    }
    int rc = 1;
    samples_t samples;
    memset(&samples, 0, sizeof samples);
    pthread_mutex_init(&samples.lock, NULL);
    pthread_cond_init(&samples.cond, NULL);
    samples.per_phase = per_phase;
    samples.total = per_phase * nphases;
    samples.settle = rate / 20; /* 50 ms */
    samples.lat = calloc(samples.total, sizeof *samples.lat);
    collector_t col = {.fd = -1, .samples = &samples};
    bool col_started = false, raw_started = false;
    pthread_t col_thread;
    raw_t raw;
    memset(&raw, 0, sizeof raw);
    fleet_t fleet = {
        {.name = "nerve-publisher"}, {.name = "nerve-manager"}, {.name = "nerve-actor"}};
    sender_t snd = {.rate = rate};
    msgpack_sbuffer_init(&snd.data);
    msgpack_sbuffer_init(&snd.payload);
    reply_t st;
    s_reply_init(&st);
    void *mctl = NULL, *pctl = NULL;
    double achieved[2 * S_PAIRS_MAX] = {0};
    double load[2] = {0};
    uint64_t mgr_accepted = 0, mgr_sent = 0, mgr_retried = 0, mgr_acked = 0, mgr_dropped = 0;
    uint64_t pub_relayed = 0, pub_dropped = 0;
    int linger = 0;

    char probe_fifo[PATH_MAX], run[PATH_MAX], events_ep[64], control[PATH_MAX + 16];
    char pub_control[PATH_MAX + 16], manager[PATH_MAX], publisher[PATH_MAX], actor[PATH_MAX];
    char mgr_conf[PATH_MAX], pub_conf[PATH_MAX], actor_conf[PATH_MAX];
    snprintf(probe_fifo, sizeof probe_fifo, "%s/probe.fifo", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(control, sizeof control, "ipc://%s/run/control.sock", dir);
    snprintf(pub_control, sizeof pub_control, "ipc://%s/run/publisher-control.sock", dir);
    snprintf(manager, sizeof manager, "%s/nerve-manager", build);
    snprintf(publisher, sizeof publisher, "%s/nerve-publisher", build);
    snprintf(actor, sizeof actor, "%s/nerve-actor", build);
    snprintf(mgr_conf, sizeof mgr_conf, "%s/manager.yaml", dir);
    snprintf(pub_conf, sizeof pub_conf, "%s/publisher.yaml", dir);
    snprintf(actor_conf, sizeof actor_conf, "%s/actor.yaml", dir);
    snprintf(fleet.pub.log, sizeof fleet.pub.log, "%s/publisher.log", dir);
    snprintf(fleet.mgr.log, sizeof fleet.mgr.log, "%s/manager.log", dir);
    snprintf(fleet.actor.log, sizeof fleet.actor.log, "%s/actor.log", dir);
    int events_port = s_free_port(), pub_port = s_free_port();
    snprintf(events_ep, sizeof events_ep, "tcp://127.0.0.1:%d", events_port);

    if (!samples.lat) {
        fprintf(stderr, "bench_latency: out of memory\n");
        goto done;
    }
    if (access(manager, X_OK) != 0 || access(publisher, X_OK) != 0 || access(actor, X_OK) != 0) {
        fprintf(stderr, "bench_latency: needs %s, %s and %s (build them first)\n", manager,
                publisher, actor);
        goto done;
    }
    if (events_port < 0 || pub_port < 0 || events_port == pub_port) {
        fprintf(stderr, "bench_latency: no free TCP port on 127.0.0.1\n");
        goto done;
    }
    if (mkdir(run, 0700) != 0 || s_build_probe(dir) != 0 ||
        s_write_configs(dir, events_port, pub_port, build) != 0)
        goto done;
    if (s_collector_open(&col, probe_fifo) != 0 ||
        pthread_create(&col_thread, NULL, s_collector, &col) != 0)
        goto done;
    col_started = true;
    raw_started = true; /* s_raw_stop undoes a partial start too */
    if (s_raw_start(&raw, dir, probe_fifo) != 0) {
        fprintf(stderr, "bench_latency: cannot set up the raw pipeline\n");
        goto done;
    }

    snd.ctx = zmq_ctx_new();
    mctl = snd.ctx ? zmq_socket(snd.ctx, ZMQ_DEALER) : NULL;
    pctl = snd.ctx ? zmq_socket(snd.ctx, ZMQ_DEALER) : NULL;
    if (!mctl || !pctl || zmq_setsockopt(mctl, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(pctl, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_connect(mctl, control) != 0 || zmq_connect(pctl, pub_control) != 0 ||
        !(snd.push[S_RAW] = s_sock(snd.ctx, ZMQ_PUSH, raw.in_ep, false, NULL, 0)) ||
        !(snd.push[S_NERVE] = s_sock(snd.ctx, ZMQ_PUSH, events_ep, false, NULL, 0))) {
        fprintf(stderr, "bench_latency: sender sockets: %s\n", zmq_strerror(errno));
        goto done;
    }
    int timeout = 1000;
    zmq_setsockopt(snd.push[S_RAW], ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(snd.push[S_NERVE], ZMQ_SNDTIMEO, &timeout, sizeof timeout);

    char *pub_argv[] = {publisher, "-c", pub_conf, NULL};
    char *mgr_argv[] = {manager, "-c", mgr_conf, NULL};
    char *actor_argv[] = {actor, "-c", actor_conf, NULL};
    if (s_spawn(&fleet.pub, dir, pub_argv) != 0 ||
        s_wait_ready(pctl, &fleet.pub, &st, S_READY_MS, &s_interrupted) != 0 ||
        s_spawn(&fleet.mgr, dir, mgr_argv) != 0 ||
        s_wait_ready(mctl, &fleet.mgr, &st, S_READY_MS, &s_interrupted) != 0)
        goto done;
    if (s_u64(&st, "rules.count") != 1) {
        fprintf(stderr, "bench_latency: the manager loaded %llu rules, not 1\n",
                (unsigned long long)s_u64(&st, "rules.count"));
        goto done;
    }
    if (s_spawn(&fleet.actor, dir, actor_argv) != 0 ||
        s_warm_up(&snd, &samples, S_RAW, &fleet) != 0 ||
        s_warm_up(&snd, &samples, S_NERVE, &fleet) != 0)
        goto done;

    s_loadavg(&load[0]);
    uint64_t cpu0[4] = {s_cpu_us(&fleet.mgr), s_cpu_us(&fleet.pub), s_cpu_us(&fleet.actor),
                        s_raw_cpu_us(&raw)};
    for (uint64_t p = 0; p < nphases; p++) {
        int side = s_side_of(p);
        if (s_send_paced(&snd, side, p * per_phase, per_phase, &fleet, &achieved[p]) != 0)
            goto done;
        uint64_t got = s_wait_count(&samples, &samples.got[p], per_phase,
                                    nerve_clock_mono_ms() + S_DRAIN_MS, s_fleet_alive, &fleet);
        if (s_interrupted || !s_fleet_alive(&fleet))
            goto done;
        if (got < per_phase)
            fprintf(stderr, "bench_latency: %s phase %llu: %llu of %llu events arrived\n",
                    s_side_name[side], (unsigned long long)p + 1, (unsigned long long)got,
                    (unsigned long long)per_phase);
    }
    s_loadavg(&load[1]);
    uint64_t cpu1[4] = {s_cpu_us(&fleet.mgr), s_cpu_us(&fleet.pub), s_cpu_us(&fleet.actor),
                        s_raw_cpu_us(&raw)};

    if (s_wait_ready(mctl, &fleet.mgr, &st, S_READY_MS, &s_interrupted) != 0)
        goto done;
    mgr_accepted = s_u64(&st, "events.accepted");
    mgr_sent = s_u64(&st, "reactions.sent");
    mgr_retried = s_u64(&st, "reactions.retried");
    mgr_acked = s_u64(&st, "reactions.acked");
    mgr_dropped = s_u64(&st, "reactions.send_dropped");
    if (s_wait_ready(pctl, &fleet.pub, &st, S_READY_MS, &s_interrupted) != 0)
        goto done;
    pub_relayed = s_u64(&st, "relayed");
    pub_dropped = s_u64(&st, "dropped");

    summary_t sum[2];
    if (s_summarize(&samples, S_RAW, 0, nphases, &sum[S_RAW]) != 0 ||
        s_summarize(&samples, S_NERVE, 0, nphases, &sum[S_NERVE]) != 0)
        goto done;
    /* The same ratios pair by pair (phase 2k and 2k+1, a second apart):
       the spread says how much the machine's load moved them. */
    double pair50[S_PAIRS_MAX], pair99[S_PAIRS_MAX];
    for (uint64_t k = 0; k < pairs; k++) {
        summary_t a, b;
        if (s_summarize(&samples, S_RAW, 2 * k, 2 * k + 2, &a) != 0 ||
            s_summarize(&samples, S_NERVE, 2 * k, 2 * k + 2, &b) != 0)
            goto done;
        pair50[k] = a.p50 > 0 ? b.p50 / a.p50 : 0;
        pair99[k] = a.p99 > 0 ? b.p99 / a.p99 : 0;
    }
    double r50 = sum[S_RAW].p50 > 0 ? sum[S_NERVE].p50 / sum[S_RAW].p50 : 0;
    double r90 = sum[S_RAW].p90 > 0 ? sum[S_NERVE].p90 / sum[S_RAW].p90 : 0;
    double r99 = sum[S_RAW].p99 > 0 ? sum[S_NERVE].p99 / sum[S_RAW].p99 : 0;
    double r999 = sum[S_RAW].p999 > 0 ? sum[S_NERVE].p999 / sum[S_RAW].p999 : 0;
    bool met = r50 > 0 && r99 > 0 && r50 <= S_TARGET && r99 <= S_TARGET && sum[S_NERVE].lost == 0 &&
               sum[S_RAW].lost == 0;
    double lo_s = achieved[0], hi_s = achieved[0];
    for (uint64_t p = 1; p < nphases; p++) {
        lo_s = achieved[p] < lo_s ? achieved[p] : lo_s;
        hi_s = achieved[p] > hi_s ? achieved[p] : hi_s;
    }
    printf("end-to-end latency, send → reaction running on the actor: events over TCP →\n"
           "nerve-manager → ipc:// → nerve-publisher → TCP → nerve-actor → probe module, beside\n"
           "the same frames through raw libzmq PUSH→PULL | PUSH→(ipc)→PULL | PUB→SUB threads;\n"
           "%llu events/s (sent at %.0f–%.0f), %llu one-second phases raw, nerve, nerve, raw, …;\n"
           "the first %llu events of each phase not counted; load average %.2f → %.2f\n",
           (unsigned long long)rate, lo_s, hi_s, (unsigned long long)nphases,
           (unsigned long long)samples.settle, load[0], load[1]);
    printf("                       samples       p50       p90       p99     p99.9       max "
           " lost\n");
    for (int side = 0; side < 2; side++)
        printf("  %-18s %9llu %7.1f µs %7.1f µs %7.1f µs %7.1f µs %7.0f µs %5llu\n",
               side == S_RAW ? "raw libzmq 3 hops" : "nerve", (unsigned long long)sum[side].n,
               sum[side].p50, sum[side].p90, sum[side].p99, sum[side].p999, sum[side].max,
               (unsigned long long)sum[side].lost);
    printf("  %-18s %9s %7.2f ×  %7.2f ×  %7.2f ×  %7.2f ×\n", "nerve / raw", "", r50, r90, r99,
           r999);
    printf("  target: nerve p50 and p99 <= %.1f × raw, nothing lost: %s\n", S_TARGET,
           met ? "met" : "NOT MET");
    printf("  per pair of phases, nerve/raw p50:");
    for (uint64_t k = 0; k < pairs; k++)
        printf(" %.2f", pair50[k]);
    printf(" (median %.2f); p99:", s_median(pair50, pairs));
    for (uint64_t k = 0; k < pairs; k++)
        printf(" %.2f", pair99[k]);
    printf(" (median %.2f)\n", s_median(pair99, pairs));
    printf("  manager: %llu events accepted (%llu sent + the actor's results and heartbeats), "
           "%llu reactions sent, %llu acked, %llu retried, %llu send-dropped; publisher "
           "relayed %llu, dropped %llu\n",
           (unsigned long long)mgr_accepted, (unsigned long long)(per_phase * pairs),
           (unsigned long long)mgr_sent, (unsigned long long)mgr_acked,
           (unsigned long long)mgr_retried, (unsigned long long)mgr_dropped,
           (unsigned long long)pub_relayed, (unsigned long long)pub_dropped);
    double ev = (double)(per_phase * pairs);
    double cpu[4];
    for (int i = 0; i < 4; i++)
        cpu[i] = (double)(cpu1[i] - cpu0[i]) / ev;
    printf("  CPU time per event (all threads, /proc): nerve %.1f µs (manager %.1f, publisher "
           "%.1f, actor %.1f); raw pipeline %.1f µs\n",
           cpu[0] + cpu[1] + cpu[2], cpu[0], cpu[1], cpu[2], cpu[3]);
    if (samples.dups[0] || samples.dups[1] || samples.strays || samples.backwards ||
        raw.decode_errors || raw.report_errors)
        printf("  anomalies: %llu raw / %llu nerve repeats, %llu strays, %llu clock steps, "
               "%llu undecodable, %llu unreported\n",
               (unsigned long long)samples.dups[0], (unsigned long long)samples.dups[1],
               (unsigned long long)samples.strays, (unsigned long long)samples.backwards,
               (unsigned long long)raw.decode_errors, (unsigned long long)raw.report_errors);
    rc = 0;
done:
    if (mctl)
        zmq_close(mctl);
    if (pctl)
        zmq_close(pctl);
    for (int i = 0; i < 2; i++)
        if (snd.push[i])
            zmq_close(snd.push[i]);
    int actor_exit = s_stop(&fleet.actor);
    if (rc == 0)
        s_print_stopped(&fleet.actor);
    int mgr_exit = s_stop(&fleet.mgr);
    int pub_exit = s_stop(&fleet.pub);
    if (rc != 0 && !s_interrupted) {
        s_show_log(&fleet.mgr);
        s_show_log(&fleet.pub);
        s_show_log(&fleet.actor);
    } else if (rc == 0 && (actor_exit != 0 || mgr_exit != 0 || pub_exit != 0)) {
        fprintf(stderr,
                "bench_latency: a daemon did not stop cleanly (actor %d, manager %d, "
                "publisher %d)\n",
                actor_exit, mgr_exit, pub_exit);
        s_show_log(&fleet.mgr);
        s_show_log(&fleet.pub);
        s_show_log(&fleet.actor);
        rc = 1;
    }
    if (snd.ctx)
        zmq_ctx_term(snd.ctx);
    if (raw_started)
        s_raw_stop(&raw);
    if (col_started) {
        col.stop = 1;
        pthread_join(col_thread, NULL);
    }
    if (col.fd >= 0)
        close(col.fd);
    s_reply_destroy(&st);
    msgpack_sbuffer_destroy(&snd.data);
    msgpack_sbuffer_destroy(&snd.payload);
    free(samples.lat);
    pthread_mutex_destroy(&samples.lock);
    pthread_cond_destroy(&samples.cond);
    nftw(dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    if (s_interrupted)
        fprintf(stderr, "bench_latency: interrupted; daemons stopped, %s removed\n", dir);
    return rc;
}
