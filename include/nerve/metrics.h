/*  nerve/metrics.h — a Prometheus endpoint for a nerve daemon.

    A daemon with `metrics: host:port` in its config serves its counters in
    the Prometheus text format (version 0.0.4) at http://host:port/metrics.
    It is off by default; a bare port means 127.0.0.1, because the page
    tells whoever reads it how busy and how broken the site is.

    The work is split by thread. The daemon's own thread owns its counters
    and renders them: it fills a text builder (nerve_mtext_t) with
    nerve_mtext_counter/gauge/histogram and hands it to
    nerve_metrics_publish(), which copies the finished text and swaps it in.
    libmicrohttpd's thread only ever sends the latest published copy. So a
    scrape never sees a half-built text, never reads a counter while the
    daemon writes it, and a slow client never holds the daemon up: publish
    waits at most for another thread's pointer copy.

    A daemon loop looks like this:

        if (nerve_metrics_due(self->metrics, nerve_clock_mono_ms())) {
            nerve_mtext_reset(self->mtext);
            nerve_mtext_counter(self->mtext, "nerve_events_received_total",
                                "Events accepted from the wire.", NULL,
                                self->events_received);
            for (each reason r)
                nerve_mtext_counter(self->mtext, "nerve_events_rejected_total",
                                    "Events dropped, by reason.",
                                    NERVE_LABELS("reason", reason_name(r)),
                                    self->rejected[r]);
            nerve_mtext_histogram(self->mtext, "nerve_engine_latency_seconds",
                                  "Receive to decision.", NULL, &self->latency);
            nerve_metrics_publish(self->metrics, self->mtext);
        }

    With metrics off self->metrics is NULL and nerve_metrics_due() is
    always false, so the same code runs either way.

    Names follow the Prometheus conventions (docs/metrics.md): `nerve_`
    prefix, snake_case, base units, counters end in `_total`, latency
    histograms in `_seconds`. Labels take only values from a small, fixed
    set (a reason, a rule name), never an event's host, tag or id.

    Threading: nerve_metrics_start/stop, _due and _next_ms belong to the
    daemon's thread; _publish, _port and _scrapes may be called from any
    thread. A builder belongs to one thread at a time. A histogram is
    observed by one thread; it may be rendered from another.
*/
#ifndef NERVE_METRICS_H
#define NERVE_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  The Content-Type of GET /metrics. */
#define NERVE_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*  The URL path served; every other path answers 404. */
#define NERVE_METRICS_PATH "/metrics"

/*  nerve_metrics_due() is true at most once per this many milliseconds. */
#define NERVE_METRICS_INTERVAL_MS 1000

/*  Host used when `metrics:` is a bare port. */
#define NERVE_METRICS_DEFAULT_HOST "127.0.0.1"

/*  Labels: a NULL-ended array of name, value, name, value, …
    NERVE_LABELS("reason", "tag_empty", "role", "rules") builds one in place
    (a compound literal: it lives until the end of the enclosing block). */
#define NERVE_LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---------------------------------------------------------------------------
   Latency histograms
   ------------------------------------------------------------------------ */

/*  Fixed log-scale buckets for durations in seconds: 1, 2.5 and 5 per
    decade from 1 µs to 10 s (upper bounds 1e-06, 2.5e-06, 5e-06, 1e-05,
    … 1, 2.5, 5, 10), plus +Inf. Fixed bounds keep every nerve histogram
    comparable and aggregatable across daemons and hosts. */
#define NERVE_HISTO_BUCKETS 22

/*  A histogram. Zero-initialise it (`nerve_histo_t h = {0};`, a static, or
    calloc) or call nerve_histo_reset(). The fields are private: use the
    functions below. The counts are per bucket, not cumulative; the text
    builder makes them cumulative. Atomics with relaxed order cost the same
    as plain loads and stores here (there is one writer, so no locked
    read-modify-write), yet let another thread render without a data race. */
typedef struct nerve_histo {
    _Atomic uint64_t counts[NERVE_HISTO_BUCKETS + 1]; /* last: above 10 s */
    _Atomic double sum;
} nerve_histo_t;

/*  Records one duration in seconds. A value equal to a bound counts in
    that bucket (Prometheus `le` is "less or equal"). Negative values (a
    clock that stepped back) count as 0; NaN and infinities are ignored,
    since one would poison _sum forever. Cheap: a binary search over the
    bounds and two stores, no lock, no allocation. One thread only. */
void nerve_histo_observe(nerve_histo_t *h, double seconds);

/*  Zeroes every count and the sum. Same thread as observe. */
void nerve_histo_reset(nerve_histo_t *h);

/*  Total observations (the sum of every bucket) and their sum in seconds. */
uint64_t nerve_histo_count(const nerve_histo_t *h);
double nerve_histo_sum(const nerve_histo_t *h);

/*  The upper bound of bucket i in seconds (i < NERVE_HISTO_BUCKETS), or
    +Inf for i >= NERVE_HISTO_BUCKETS. */
double nerve_histo_bound(size_t i);

/* ---------------------------------------------------------------------------
   The text builder
   ------------------------------------------------------------------------ */

typedef struct nerve_mtext nerve_mtext_t;

/*  A new, empty builder, or NULL on out of memory. Keep one per daemon and
    nerve_mtext_reset() it before each render: its buffers keep their size,
    so a steady render does not allocate. */
nerve_mtext_t *nerve_mtext_new(void);

/*  Frees the builder; sets *self to NULL. Safe on NULL and twice. */
void nerve_mtext_destroy(nerve_mtext_t **self);

/*  Empties the builder, keeping its memory. */
void nerve_mtext_reset(nerve_mtext_t *self);

/*  Each adds one series (a histogram: its _bucket, _sum and _count lines)
    to the family `name`:

    - `name` matches [a-zA-Z_:][a-zA-Z0-9_:]*; a counter's ends in "_total".
    - `help` is the family's one-line description; the first call for a
      family sets it (NULL: no # HELP line). Backslashes and newlines are
      escaped.
    - `labels` is NULL or a NULL-ended name/value array (NERVE_LABELS).
      Names match [a-zA-Z_][a-zA-Z0-9_]*, do not start with "__", do not
      repeat, and a histogram may not use "le". Values are any text: a
      backslash, double quote and newline are escaped as the format
      requires, and bytes that are not UTF-8 become U+FFFD, so a rule name
      or a reason cannot break the page.

    # HELP and # TYPE are written once per family. Families come out in
    the order first seen and each family's series stay together even when
    calls for different families interleave (one loop over the rules may
    emit both nerve_rule_evaluations_total and nerve_rule_firings_total). The
    caller must not add the same name and labels twice.

    Gauge values may be NaN or ±Inf (written NaN, +Inf, -Inf). Numbers are
    written in the shortest form that reads back to the same double.

    Returns 0; NERVE_EINVAL for a NULL self or name, a bad metric or label
    name, a label name without a value, a counter name without "_total",
    or a name already used by a family of another type (each also logged,
    rate-limited: they are programming errors); NERVE_ENOMEM. On error
    the builder is unchanged. */
int nerve_mtext_counter(nerve_mtext_t *self, const char *name, const char *help,
                        const char *const *labels, uint64_t value);
int nerve_mtext_gauge(nerve_mtext_t *self, const char *name, const char *help,
                      const char *const *labels, double value);
int nerve_mtext_histogram(nerve_mtext_t *self, const char *name, const char *help,
                          const char *const *labels, const nerve_histo_t *h);

/*  The size in bytes of the text the builder holds now. */
size_t nerve_mtext_size(const nerve_mtext_t *self);

/*  Returns the text as a NUL-terminated malloc'd string (the caller frees
    it) and its length in *len (len may be NULL), or NULL on out of memory.
    For tests and for tools that print metrics without HTTP. */
char *nerve_mtext_dup(const nerve_mtext_t *self, size_t *len);

/* ---------------------------------------------------------------------------
   The endpoint
   ------------------------------------------------------------------------ */

typedef struct nerve_metrics nerve_metrics_t;

/*  Parses a `metrics:` value without resolving or binding anything, so a
    config loader can reject it with the file position. Accepted forms:

        9100               127.0.0.1:9100
        10.0.0.5:9100      an IPv4 address or a host name, and a port
        *:9100             every IPv4 interface (0.0.0.0)
        [::1]:9100         an IPv6 address in brackets ([::] for all)

    Port 0 asks the kernel for a free port (tests). ":9100" is refused
    rather than guessed: some tools read it as "every interface", and
    exposing the page by accident is worse than a clear error.
    Writes the host (without brackets, "*" as 0.0.0.0) into host and the
    port into *port; either may be NULL to only check the syntax.
    Returns 0, or NERVE_EINVAL with a message naming the value and what
    is wrong in err ("bad metrics address '9x': port must be a number
    from 0 to 65535"), or NERVE_ERANGE if host does not fit. err may be
    NULL. */
int nerve_metrics_listen_parse(const char *address, char *host, size_t hostsize, uint16_t *port,
                               char *err, size_t errsize);

/*  Binds `address` (syntax above) and starts serving on libmicrohttpd's own
    thread:

        GET or HEAD /metrics   200, NERVE_METRICS_CONTENT_TYPE, the text
                               last published (503 until the first publish)
        other methods          405 with Allow: GET, HEAD
        any other path         404

    Connections are capped (32 in all, 8 per client address) and idle ones
    closed after 10 s, so stray or hostile clients cannot pile up.
    Returns the endpoint, or NULL with the reason in err ("cannot bind
    metrics address 127.0.0.1:9100: Address already in use"); with err
    NULL the reason is logged instead. Host names are resolved here, once:
    call it at startup, not on a hot path. */
nerve_metrics_t *nerve_metrics_start(const char *address, char *err, size_t errsize);

/*  Stops the HTTP thread (closing open connections), frees everything and
    sets *self to NULL. Safe on NULL and twice. */
void nerve_metrics_stop(nerve_metrics_t **self);

/*  The bound TCP port (the kernel's choice when the port was 0), or 0 for
    a NULL self. */
uint16_t nerve_metrics_port(const nerve_metrics_t *self);

/*  Copies the builder's text and makes it what scrapes get from now on.
    The builder is not changed; the caller may reset and reuse it at once.
    Scrapes in flight finish with the text they started with. Returns 0,
    NERVE_EINVAL (NULL argument) or NERVE_ENOMEM (the previous text stays
    published). Publish whenever it suits the daemon (after a reload, say);
    nerve_metrics_due() only paces the routine renders. */
int nerve_metrics_publish(nerve_metrics_t *self, const nerve_mtext_t *text);

/*  True if the daemon should render and publish now: on the first call and
    then at most once per NERVE_METRICS_INTERVAL_MS of `now_ms` (a monotonic
    clock, nerve_clock_mono_ms()). A true answer starts the next interval,
    so call it only when you will render. False for a NULL self (metrics
    off). */
bool nerve_metrics_due(nerve_metrics_t *self, uint64_t now_ms);

/*  Milliseconds from now_ms until nerve_metrics_due() turns true (0 if it
    is true now), to bound a poll timeout; UINT64_MAX for a NULL self. */
uint64_t nerve_metrics_next_ms(const nerve_metrics_t *self, uint64_t now_ms);

/*  How many scrapes got a 200 so far (from any thread; a daemon may export
    it as nerve_metrics_scrapes_total). 0 for a NULL self. */
uint64_t nerve_metrics_scrapes(const nerve_metrics_t *self);

#ifdef __cplusplus
}
#endif
#endif
