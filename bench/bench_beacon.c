/*  bench_beacon.c — what an app pays per nerve_beacon_send(), beside raw ZeroMQ.

    The promise of the beacon API is that an event hook costs the app little
    more than the socket send it ends in. This measures, in the calling
    thread, the median cost of one send over batches of S_BATCH events:

      send_value   nerve_beacon_send_value(b, tag, v)      ({value: v})
      prebuilt     nerve_beacon_send() of a map built once on the stack
                   ({value, route, code, ok}: the send alone, with the copy)
      send_map     nerve_beacon_data() + the same 4 fields + send
      raw          zmq_send() of the same two frames (tag, then the payload
                   bytes the beacon produced for that case), with the
                   payload already encoded — the floor for any sender

    Both sockets are PUSH, connected over inproc to one PULL that a second
    thread drains, in the same ZeroMQ context (the beacon is given it
    through nerve_beacon_options_t.zmq_context). Batches of the three
    alternate, so they share the machine's state; between batches the
    drainer catches up, so no send ever meets a full queue (a drop would be
    cheaper than a send and flatter the figure; drops are counted and must
    be 0).

    Usage: bench_beacon [batches], default 2000 batches of 1000 events per
    case.
*/
#include <nerve/beacon.h>
#include <nerve/log.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_BATCH    1000
#define S_ENDPOINT "inproc://bench-beacon"
#define S_TAG      "/app/latency/web1"

/*  The drainer: receives `s_todo` messages each time it is asked, so no
    reader competes with the timed sends for the pipe. */
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t s_cond = PTHREAD_COND_INITIALIZER;
static uint64_t s_todo; /* messages to receive; UINT64_MAX: stop */
static bool s_idle = true;

static void *s_drain(void *pull)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    pthread_mutex_lock(&s_lock);
    for (;;) {
        while (s_todo == 0)
            pthread_cond_wait(&s_cond, &s_lock);
        if (s_todo == UINT64_MAX)
            break;
        uint64_t n = s_todo;
        s_idle = false;
        pthread_mutex_unlock(&s_lock);
        for (uint64_t i = 0; i < n;) {
            if (zmq_msg_recv(&m, pull, 0) < 0)
                break;
            i += !zmq_msg_more(&m);
        }
        pthread_mutex_lock(&s_lock);
        s_todo = 0;
        s_idle = true;
        pthread_cond_broadcast(&s_cond);
    }
    pthread_mutex_unlock(&s_lock);
    zmq_msg_close(&m);
    return NULL;
}

/*  Has the drainer receive n messages, and waits until it has. */
static void s_drain_batch(uint64_t n)
{
    pthread_mutex_lock(&s_lock);
    s_todo = n;
    pthread_cond_broadcast(&s_cond);
    while (!(s_todo == 0 && s_idle))
        pthread_cond_wait(&s_cond, &s_lock);
    pthread_mutex_unlock(&s_lock);
}

static void s_drain_stop(void)
{
    pthread_mutex_lock(&s_lock);
    s_todo = UINT64_MAX;
    pthread_cond_broadcast(&s_cond);
    pthread_mutex_unlock(&s_lock);
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef enum {
    CASE_VALUE,
    CASE_PREBUILT,
    CASE_MAP,
    CASE_RAW_VALUE,
    CASE_RAW_MAP,
    CASE_COUNT
} case_t;

static const char *const s_names[CASE_COUNT] = {
    "nerve_beacon_send_value", "nerve_beacon_send (4-field map, built once)",
    "build 4-field map + send", "raw zmq_send (value frames)", "raw zmq_send (map frames)"};

static int s_send_map(nerve_beacon_t *b, int i)
{
    nerve_data_t *d = nerve_beacon_data(b);
    nerve_data_num(d, "value", 12.5 + i);
    nerve_data_str(d, "route", "/login");
    nerve_data_int(d, "code", 200);
    nerve_data_bool(d, "ok", true);
    return nerve_beacon_send(b, S_TAG, d);
}

/*  Receives one message on pull (nothing drains it yet) and keeps its
    payload: the exact bytes the raw case will send. */
static size_t s_capture(void *pull, void *payload, size_t cap)
{
    char tag[256];
    int n = zmq_recv(pull, tag, sizeof tag, 0);
    int m = zmq_recv(pull, payload, cap, 0);
    return n > 0 && m > 0 && (size_t)m <= cap ? (size_t)m : 0;
}

int main(int argc, char **argv)
{
    long batches = argc > 1 ? strtol(argv[1], NULL, 10) : 2000;
    if (batches <= 0)
        batches = 2000;
    nerve_log_set_level(NERVE_LOG_WARN);
    void *ctx = zmq_ctx_new();
    void *pull = zmq_socket(ctx, ZMQ_PULL);
    void *raw = zmq_socket(ctx, ZMQ_PUSH);
    int hwm = 1000000, zero = 0;
    zmq_setsockopt(pull, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(raw, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(raw, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(pull, S_ENDPOINT) != 0 || zmq_connect(raw, S_ENDPOINT) != 0) {
        fprintf(stderr, "bench_beacon: zmq: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    nerve_beacon_options_t o = {.host = "web1", .hwm = hwm, .linger_ms = -1, .zmq_context = ctx};
    nerve_beacon_t *b = nerve_beacon_new(S_ENDPOINT, &o);
    if (!b)
        return 1;

    /* The frames the raw cases send: what the beacon itself produced. */
    static char value_payload[512], map_payload[512];
    nerve_beacon_send_value(b, S_TAG, 12.5);
    size_t value_len = s_capture(pull, value_payload, sizeof value_payload);
    s_send_map(b, 0);
    size_t map_len = s_capture(pull, map_payload, sizeof map_payload);
    if (!value_len || !map_len) {
        fprintf(stderr, "bench_beacon: could not capture the beacon's frames\n");
        return 1;
    }
    size_t tag_len = strlen(S_TAG);
    char stack[256];
    nerve_data_t prebuilt;
    nerve_data_init(&prebuilt, stack, sizeof stack);
    nerve_data_num(&prebuilt, "value", 12.5);
    nerve_data_str(&prebuilt, "route", "/login");
    nerve_data_int(&prebuilt, "code", 200);
    nerve_data_bool(&prebuilt, "ok", true);

    pthread_t drainer;
    pthread_create(&drainer, NULL, s_drain, pull);
    double *samples[CASE_COUNT];
    for (int c = 0; c < CASE_COUNT; c++)
        samples[c] = calloc((size_t)batches, sizeof(double));
    uint64_t failed = 0;
    for (long r = -batches / 10; r < batches; r++) { /* the first tenth warms up */
        for (int c = 0; c < CASE_COUNT; c++) {
            uint64_t start = nerve_clock_mono_ns();
            for (int i = 0; i < S_BATCH; i++) {
                int rc;
                switch (c) {
                case CASE_VALUE:
                    rc = nerve_beacon_send_value(b, S_TAG, 12.5 + i);
                    break;
                case CASE_MAP:
                    rc = s_send_map(b, i);
                    break;
                case CASE_PREBUILT:
                    rc = nerve_beacon_send(b, S_TAG, &prebuilt);
                    break;
                case CASE_RAW_VALUE:
                    rc = zmq_send(raw, S_TAG, tag_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
                         zmq_send(raw, value_payload, value_len, ZMQ_DONTWAIT) < 0;
                    break;
                default:
                    rc = zmq_send(raw, S_TAG, tag_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
                         zmq_send(raw, map_payload, map_len, ZMQ_DONTWAIT) < 0;
                    break;
                }
                failed += rc != 0;
            }
            uint64_t ns = nerve_clock_mono_ns() - start;
            if (r >= 0)
                samples[c][r] = (double)ns / S_BATCH;
            s_drain_batch(S_BATCH);
        }
    }
    s_drain_stop();
    pthread_join(drainer, NULL);

    double median[CASE_COUNT];
    for (int c = 0; c < CASE_COUNT; c++) {
        qsort(samples[c], (size_t)batches, sizeof(double), s_cmp);
        median[c] = samples[c][batches / 2];
    }
    nerve_beacon_stats_t st;
    nerve_beacon_stats(b, &st);
    printf("beacon: median ns per event, %ld batches of %d, inproc PUSH→PULL drained by a "
           "thread\n",
           batches, S_BATCH);
    for (int c = 0; c < CASE_COUNT; c++)
        printf("beacon: %-44s %7.1f ns\n", s_names[c], median[c]);
    printf("beacon: send_value        / raw = %.2f   (payload %zu bytes)\n",
           median[CASE_VALUE] / median[CASE_RAW_VALUE], value_len);
    printf("beacon: send (built once) / raw = %.2f   (payload %zu bytes)\n",
           median[CASE_PREBUILT] / median[CASE_RAW_MAP], map_len);
    printf("beacon: build + send      / raw = %.2f\n", median[CASE_MAP] / median[CASE_RAW_MAP]);
    printf("beacon: sends refused or dropped: %llu (beacon counted %llu dropped, %llu invalid)\n",
           (unsigned long long)failed, (unsigned long long)st.dropped,
           (unsigned long long)st.invalid);
    for (int c = 0; c < CASE_COUNT; c++)
        free(samples[c]);
    nerve_beacon_destroy(&b);
    zmq_close(raw);
    zmq_close(pull);
    zmq_ctx_term(ctx);
    return failed ? 1 : 0;
}
