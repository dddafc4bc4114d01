/*  registers/aggregate.c — registers.aggregate: numbers over a time window.

    The register the seed's example uses (`register: register.aggregate.avg`)
    and its siblings. Each turns the stream of numbers one rule sees for one
    key into one number:

        avg sum count min max   over the last `period` seconds (default 60)
        rate                    per-second increase of a counter, resets handled
        delta                   newest minus oldest value in the window
        last                    the value itself
        ewma                    exponentially weighted mean, `alpha` (default
                                0.3); not windowed
        percentile              the `p`th percentile (0–100) of the window

    This runs on every event the rule sees, hundreds of thousands of times a
    second, so the state is a small fixed-size binary blob the manager keeps
    in LMDB, and a call touches nothing but that blob: copy the previous
    state into new_state, expire what left the window, add the sample, read
    the answer. No allocation, no sort (percentile uses a selection).

    The window is a ring of N time buckets, each period/N wide, N being the
    period in seconds clamped to 10…60 (one bucket a second for periods up
    to a minute); a sample lands in the bucket of its receive time
    (call->now_ns). A bucket keeps only what its function needs (count, and
    sum, or min, or first/last…). So the window's edge moves in steps of
    period/N: a sample counts for between (N-1)/N and N/N of the period
    after it arrived. Within that,
    avg, sum, count, min, max and delta are exact. rate sums every increase
    between consecutive samples (a drop counts from 0, as Prometheus does
    for counter resets) and divides by the time from the window's first
    sample to its newest; it needs two samples, and answers nothing before.
    percentile keeps the 256 most recent samples in the window and
    interpolates linearly between ranks (numpy's default); with more than
    256 samples in a window it is the percentile of the newest 256.

    State layout (native byte order; first byte = format version):

        header   u8 version, u8 function, u8 buckets, u8 ring start,
                 u32 samples in the ring, u64 bucket width ns,
                 u64 time of the newest sample ns              24 bytes
        buckets  N × (u32 count [, u32 offset of the first sample
                 (rate), as a fraction of the width in 1/2^32], f64 fields)
        ring     percentile only: 60 × u16 counts, then 256 × f64 samples

    avg/sum/min/max 744 bytes, count 264, delta 1224, rate 1944, percentile
    2192, ewma 16 (u8 version, u8 function, pad, f64 mean); last keeps none.
    Bytes that are not a state of this function and period — another
    version, another size, a changed `period`, a clock far behind the newest
    sample, garbage — are dropped and the window starts again; nothing in
    them is trusted further than that.

    A value that is not a number leaves the state and the output untouched
    and returns NERVE_ETYPE (counted by the manager); an infinite or NaN one
    NERVE_ERANGE, so it cannot poison a window. No value at all is quietly
    no update.
*/
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nerve/conf.h>
#include <nerve/module.h>

#define S_VERSION          1
#define S_BUCKETS_MAX      60u /* one bucket per second up to a minute's period… */
#define S_BUCKETS_MIN      10u /* …and at least ten, however short the period */
#define S_SAMPLES          256u
#define S_PERIOD_DEFAULT_S 60.0
#define S_PERIOD_MAX_S     (366.0 * 86400.0)
#define S_ALPHA_DEFAULT    0.3

typedef enum {
    S_AVG = 1,
    S_SUM,
    S_COUNT,
    S_MIN,
    S_MAX,
    S_LAST,
    S_RATE,
    S_DELTA,
    S_EWMA,
    S_PERCENTILE,
} s_fn_t;

static const char *const s_fn_names[] = {
    [S_AVG] = "avg",     [S_SUM] = "sum",
    [S_COUNT] = "count", [S_MIN] = "min",
    [S_MAX] = "max",     [S_LAST] = "last",
    [S_RATE] = "rate",   [S_DELTA] = "delta",
    [S_EWMA] = "ewma",   [S_PERCENTILE] = "percentile",
};

/*  Params, checked once by prepare(). */
typedef struct s_params {
    uint64_t width_ns; /* one bucket: period / nbuckets */
    uint8_t nbuckets;  /* clamp(period in seconds, 10, 60) */
    double alpha;      /* ewma */
    double p;          /* percentile, 0–100 */
} s_params_t;

typedef struct s_header {
    uint8_t version;
    uint8_t fn;
    uint8_t nbuckets;
    uint8_t ring_start; /* percentile: slot of the oldest sample */
    uint32_t nsamples;  /* percentile: samples in the ring */
    uint64_t width_ns;
    uint64_t last_ns; /* receive time of the newest sample; never goes back */
} s_header_t;

_Static_assert(sizeof(s_header_t) == 24, "the state header is 24 bytes on every ABI");

/*  Bucket fields by function. */
enum { F_SUM = 0, F_MIN = 0, F_MAX = 0, F_FIRST = 0, F_LAST = 1, F_INC = 2 };

static unsigned s_nfields(s_fn_t fn)
{
    switch (fn) {
    case S_COUNT:
        return 0;
    case S_DELTA:
        return 2;
    case S_RATE:
        return 3;
    default:
        return 1;
    }
}

/*  Bytes before a bucket's f64 fields: the count, and for rate the offset
    of its first sample. */
static size_t s_fbase(s_fn_t fn)
{
    return fn == S_RATE ? 8 : 4;
}

static size_t s_stride(s_fn_t fn)
{
    return s_fbase(fn) + 8 * s_nfields(fn);
}

static size_t s_state_size(s_fn_t fn, unsigned nbuckets)
{
    if (fn == S_EWMA)
        return 16;
    if (fn == S_PERCENTILE)
        return sizeof(s_header_t) + nbuckets * 2 + S_SAMPLES * 8;
    return sizeof(s_header_t) + nbuckets * s_stride(fn);
}

/* --- unaligned access: state bytes come from LMDB pages, any alignment --- */

static uint32_t s_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void s_put_u32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, sizeof v);
}

static uint16_t s_u16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void s_put_u16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, sizeof v);
}

static double s_f64(const uint8_t *p)
{
    double v;
    memcpy(&v, p, sizeof v);
    return v;
}

static void s_put_f64(uint8_t *p, double v)
{
    memcpy(p, &v, sizeof v);
}

/* --- params --- */

static int s_fail(int rc, char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*  Writes the one-line reason for the loader and returns rc. */
static int s_fail(int rc, char *err, size_t errsize, const char *fmt, ...)
{
    if (err && errsize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsize, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/*  `period`: seconds as a number, or a duration string ("30s", "5m"). */
static int s_parse_period(const char *name, const msgpack_object *params, uint64_t *period_ns,
                          char *err, size_t errsize)
{
    const msgpack_object *o = nerve_obj_get(params, "period");
    double s = S_PERIOD_DEFAULT_S;
    if (o && o->type == MSGPACK_OBJECT_STR) {
        char text[64];
        uint64_t ms;
        if (!nerve_obj_strcpy(o, text, sizeof text) || nerve_duration_parse_ms(text, &ms) != 0)
            return s_fail(NERVE_EINVAL, err, errsize,
                          "%s: 'period' is not a duration (e.g. 60, \"30s\", \"5m\")", name);
        s = (double)ms / 1e3;
    } else if (o && !nerve_obj_number(o, &s)) {
        return s_fail(NERVE_EINVAL, err, errsize, "%s needs 'period' (seconds, a number)", name);
    }
    if (!(s > 0) || s > S_PERIOD_MAX_S)
        return s_fail(NERVE_ERANGE, err, errsize,
                      "%s: 'period' must be more than 0 and at most 366 days (got %g s)", name, s);
    *period_ns = (uint64_t)(s * 1e9);
    return 0;
}

static int s_parse(s_fn_t fn, const msgpack_object *params, s_params_t *out, char *err,
                   size_t errsize)
{
    const char *name = s_fn_names[fn];
    memset(out, 0, sizeof *out);
    if (fn != S_EWMA && fn != S_LAST) {
        uint64_t period_ns = 0;
        int rc = s_parse_period(name, params, &period_ns, err, errsize);
        if (rc != 0)
            return rc;
        /* Buckets of a second keep short windows exact to the second and
           states small: the seed's period of 10 s is 10 buckets (144 bytes
           for avg), where 60 would copy and commit 744 per event. */
        uint64_t secs = (period_ns + 999999999ull) / 1000000000ull;
        out->nbuckets = (uint8_t)(secs < S_BUCKETS_MIN   ? S_BUCKETS_MIN
                                  : secs > S_BUCKETS_MAX ? S_BUCKETS_MAX
                                                         : secs);
        out->width_ns = period_ns / out->nbuckets ? period_ns / out->nbuckets : 1;
    }
    if (fn == S_EWMA) {
        const msgpack_object *a = nerve_obj_get(params, "alpha");
        out->alpha = S_ALPHA_DEFAULT;
        if (a && !nerve_obj_number(a, &out->alpha))
            return s_fail(NERVE_EINVAL, err, errsize, "ewma: 'alpha' must be a number");
        if (!(out->alpha > 0 && out->alpha <= 1))
            return s_fail(NERVE_ERANGE, err, errsize, "ewma needs 0 < 'alpha' <= 1 (got %g)",
                          out->alpha);
    }
    if (fn == S_PERCENTILE) {
        const msgpack_object *p = nerve_obj_get(params, "p");
        if (!p || !nerve_obj_number(p, &out->p))
            return s_fail(NERVE_EINVAL, err, errsize,
                          "percentile needs 'p' (a number from 0 to 100)");
        if (!(out->p >= 0 && out->p <= 100))
            return s_fail(NERVE_ERANGE, err, errsize, "percentile needs 'p' from 0 to 100 (got %g)",
                          out->p);
    }
    return 0;
}

/* --- the window --- */

/*  The ring of one state, split into its parts. */
typedef struct s_window {
    s_fn_t fn;
    s_header_t h;
    uint8_t *buckets; /* h.nbuckets × stride (percentile: × u16) */
    size_t stride;
    uint8_t *samples; /* percentile: S_SAMPLES × f64 */
} s_window_t;

static void s_window_map(s_window_t *w, s_fn_t fn, uint8_t *state)
{
    w->fn = fn;
    memcpy(&w->h, state, sizeof w->h);
    w->buckets = state + sizeof(s_header_t);
    w->stride = fn == S_PERCENTILE ? 2 : s_stride(fn);
    w->samples = fn == S_PERCENTILE ? w->buckets + w->h.nbuckets * 2 : NULL;
}

static uint32_t s_bucket_count(const s_window_t *w, size_t slot)
{
    const uint8_t *b = w->buckets + slot * w->stride;
    return w->fn == S_PERCENTILE ? s_u16(b) : s_u32(b);
}

/*  True if `state` is a state of this function and bucket width that
    can be trusted as far as indexes go. Values inside are never trusted
    further: they only feed arithmetic. */
static bool s_window_valid(s_fn_t fn, const s_params_t *p, const void *state, size_t len,
                           uint64_t now_ns)
{
    if (!state || len != s_state_size(fn, p->nbuckets))
        return false;
    s_header_t h;
    memcpy(&h, state, sizeof h);
    if (h.version != S_VERSION || h.fn != fn || h.nbuckets != p->nbuckets ||
        h.width_ns != p->width_ns)
        return false;
    /* A clock stepped back by more than a window (or a state from the
       future) would freeze the window until the clock catches up. */
    if (h.last_ns > now_ns && h.last_ns - now_ns > (uint64_t)h.nbuckets * h.width_ns)
        return false;
    if (fn != S_PERCENTILE)
        return true;
    if (h.nsamples > S_SAMPLES)
        return false;
    s_window_t w;
    s_window_map(&w, fn, (uint8_t *)state);
    uint32_t total = 0;
    for (size_t i = 0; i < h.nbuckets; i++)
        total += s_bucket_count(&w, i);
    return total == h.nsamples;
}

static void s_window_fresh(s_fn_t fn, const s_params_t *p, uint8_t *state, uint64_t now_ns)
{
    memset(state, 0, s_state_size(fn, p->nbuckets));
    s_header_t h = {.version = S_VERSION,
                    .fn = (uint8_t)fn,
                    .nbuckets = p->nbuckets,
                    .width_ns = p->width_ns,
                    .last_ns = now_ns};
    memcpy(state, &h, sizeof h);
}

/*  Empties one bucket. The ring's buckets expire oldest first and its
    samples are in arrival order, so a percentile bucket's samples are the
    oldest `count` of the ring. */
static void s_bucket_expire(s_window_t *w, size_t slot)
{
    uint8_t *b = w->buckets + slot * w->stride;
    if (w->fn == S_PERCENTILE) {
        uint16_t c = s_u16(b);
        w->h.ring_start = (uint8_t)((w->h.ring_start + c) % S_SAMPLES);
        w->h.nsamples -= c;
    }
    memset(b, 0, w->stride);
}

/*  Moves the window to now: every bucket that fell out of it is emptied.
    A clock that went back (within a window) files the sample under the
    newest bucket instead. */
static void s_window_advance(s_window_t *w, uint64_t now_ns)
{
    uint64_t width = w->h.width_ns;
    uint64_t t = now_ns > w->h.last_ns ? now_ns : w->h.last_ns;
    uint64_t head = w->h.last_ns / width, next = t / width;
    uint64_t nb = w->h.nbuckets;
    uint64_t n = next - head < nb ? next - head : nb;
    size_t slot = (size_t)(head % nb); /* one division; the loop wraps by hand */
    for (uint64_t i = 1; i <= n; i++) {
        slot = slot + 1 == nb ? 0 : slot + 1;
        s_bucket_expire(w, slot);
    }
    w->h.last_ns = t;
}

static void s_percentile_add(s_window_t *w, uint8_t *b, double x)
{
    if (w->h.nsamples == S_SAMPLES) {
        /* Full: the oldest sample leaves, and its bucket's count with it. */
        uint64_t head = w->h.last_ns / w->h.width_ns;
        size_t slot = (size_t)(head % w->h.nbuckets);
        for (uint64_t i = 1; i <= w->h.nbuckets; i++) {
            slot = slot + 1 == w->h.nbuckets ? 0 : slot + 1;
            uint8_t *old = w->buckets + slot * w->stride;
            uint16_t c = s_u16(old);
            if (c) {
                s_put_u16(old, (uint16_t)(c - 1));
                break;
            }
        }
        w->h.ring_start = (uint8_t)((w->h.ring_start + 1) % S_SAMPLES);
        w->h.nsamples--;
    }
    size_t slot = (w->h.ring_start + w->h.nsamples) % S_SAMPLES;
    s_put_f64(w->samples + slot * 8, x);
    w->h.nsamples++;
    s_put_u16(b, (uint16_t)(s_u16(b) + 1));
}

/*  Adds sample x at w->h.last_ns to the newest bucket. */
static void s_window_add(s_window_t *w, double x)
{
    uint64_t width = w->h.width_ns;
    uint8_t *b = w->buckets + ((w->h.last_ns / width) % w->h.nbuckets) * w->stride;
    if (w->fn == S_PERCENTILE) {
        s_percentile_add(w, b, x);
        return;
    }
    uint32_t c = s_u32(b);
    uint8_t *f = b + s_fbase(w->fn);
    bool first = c == 0;
    switch (w->fn) {
    case S_AVG:
    case S_SUM:
        s_put_f64(f + 8 * F_SUM, first ? x : s_f64(f + 8 * F_SUM) + x);
        break;
    case S_MIN:
        s_put_f64(f + 8 * F_MIN, first ? x : fmin(s_f64(f + 8 * F_MIN), x));
        break;
    case S_MAX:
        s_put_f64(f + 8 * F_MAX, first ? x : fmax(s_f64(f + 8 * F_MAX), x));
        break;
    case S_RATE:
        if (first) {
            /* Where in the bucket the first sample fell, so rate divides by
               the time actually covered, not by whole buckets. */
            uint64_t into = w->h.last_ns % width;
            s_put_u32(b + 4, (uint32_t)(((unsigned __int128)into << 32) / width));
            s_put_f64(f + 8 * F_INC, 0);
        } else {
            double prev = s_f64(f + 8 * F_LAST);
            double inc = x >= prev ? x - prev : x; /* a reset counts from 0 */
            s_put_f64(f + 8 * F_INC, s_f64(f + 8 * F_INC) + inc);
        }
        /* rate keeps first and last as delta does */
        /* fall through */
    case S_DELTA:
        if (first)
            s_put_f64(f + 8 * F_FIRST, x);
        s_put_f64(f + 8 * F_LAST, x);
        break;
    default:
        break;
    }
    s_put_u32(b, c == UINT32_MAX ? c : c + 1);
}

/*  Wirth's selection: the k-th smallest of a[0..n-1], partially ordering
    a so that everything after index k is >= a[k]. Values are finite. */
static double s_select(double *a, size_t n, size_t k)
{
    ptrdiff_t l = 0, m = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;
    while (l < m) {
        double x = a[kk];
        ptrdiff_t i = l, j = m;
        do {
            while (a[i] < x)
                i++;
            while (x < a[j])
                j--;
            if (i <= j) {
                double t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        } while (i <= j);
        if (j < kk)
            l = i;
        if (kk < i)
            m = j;
    }
    return a[k];
}

static double s_percentile_of(const s_window_t *w, double p)
{
    double a[S_SAMPLES] = {0}; /* only n are read; zeroed to keep -O3 sure of it */
    size_t n = w->h.nsamples;
    if (n == 0 || n > S_SAMPLES)
        return NAN;
    for (size_t i = 0; i < n; i++)
        a[i] = s_f64(w->samples + ((w->h.ring_start + i) % S_SAMPLES) * 8);
    double rank = p / 100.0 * (double)(n - 1);
    size_t lo = (size_t)rank;
    if (lo >= n - 1)
        return s_select(a, n, n - 1);
    double low = s_select(a, n, lo);
    double high = a[lo + 1];
    for (size_t i = lo + 2; i < n; i++)
        high = a[i] < high ? a[i] : high;
    return low + (high - low) * (rank - (double)lo);
}

/*  Reads the function's answer from the window. Returns false when there
    is none yet (rate with fewer than two samples). */
static bool s_window_read(const s_window_t *w, const s_params_t *p, msgpack_object *out)
{
    if (w->fn == S_PERCENTILE) {
        if (w->h.nsamples == 0)
            return false;
        *out = nerve_obj_double_new(s_percentile_of(w, p->p));
        return true;
    }
    uint64_t head = w->h.last_ns / w->h.width_ns;
    uint64_t count = 0;
    double acc = 0, first = 0, last = 0;
    uint64_t first_ns = 0;
    size_t fb = s_fbase(w->fn);
    uint64_t nb = w->h.nbuckets;
    /* One division, not one per bucket (this runs on every event). */
    size_t slot = (size_t)(head % nb);
    for (uint64_t i = 1; i <= nb; i++) {
        /* oldest bucket first: slot head+1 holds the bucket nb-1 ago */
        slot = slot + 1 == nb ? 0 : slot + 1;
        const uint8_t *b = w->buckets + slot * w->stride;
        uint32_t c = s_u32(b);
        if (c == 0)
            continue;
        const uint8_t *f = b + fb;
        double v = s_f64(f); /* field 0: sum, min, max or first */
        switch (w->fn) {
        case S_AVG:
        case S_SUM:
            acc += v;
            break;
        case S_MIN:
            acc = count ? fmin(acc, v) : v;
            break;
        case S_MAX:
            acc = count ? fmax(acc, v) : v;
            break;
        case S_RATE:
            if (count == 0) {
                uint64_t start = (head + i - nb) * w->h.width_ns;
                first_ns =
                    start + (uint64_t)(((unsigned __int128)s_u32(b + 4) * w->h.width_ns) >> 32);
            } else {
                acc += v >= last ? v - last : v; /* between buckets */
            }
            acc += s_f64(f + 8 * F_INC);
            /* fall through */
        case S_DELTA:
            if (count == 0)
                first = v;
            last = s_f64(f + 8 * F_LAST);
            break;
        default:
            break;
        }
        count += c;
    }
    switch (w->fn) {
    case S_AVG:
        *out = nerve_obj_double_new(count ? acc / (double)count : 0);
        return true;
    case S_COUNT:
        *out = nerve_obj_int_new((int64_t)count);
        return true;
    case S_DELTA:
        *out = nerve_obj_double_new(last - first);
        return true;
    case S_RATE: {
        uint64_t end = w->h.last_ns;
        if (count < 2 || first_ns >= end)
            return false;
        *out = nerve_obj_double_new(acc / ((double)(end - first_ns) / 1e9));
        return true;
    }
    default:
        *out = nerve_obj_double_new(acc);
        return true;
    }
}

/* --- the calls --- */

static int s_ewma_update(const s_params_t *p, nerve_register_call_t *call, double x)
{
    uint8_t *st = call->new_state;
    const uint8_t *old = call->state;
    double mean = x;
    if (old && call->state_len == 16 && old[0] == S_VERSION && old[1] == S_EWMA) {
        double prev = s_f64(old + 8);
        if (isfinite(prev))
            mean = p->alpha * x + (1 - p->alpha) * prev;
    }
    memset(st, 0, 16);
    st[0] = S_VERSION;
    st[1] = S_EWMA;
    s_put_f64(st + 8, mean);
    call->new_state_len = 16;
    call->out = nerve_obj_double_new(mean);
    return 0;
}

static int s_aggregate(s_fn_t fn, nerve_register_call_t *call)
{
    const s_params_t *p = call->prepared;
    s_params_t local;
    if (!p) {
        /* Called without prepare() (a tool, a test): parse on the spot. */
        if (s_parse(fn, call->params, &local, NULL, 0) != 0)
            return NERVE_EINVAL;
        p = &local;
    }
    const msgpack_object *v = call->value;
    if (!v || v->type == MSGPACK_OBJECT_NIL)
        return 0; /* nothing to add, nothing to say */
    double x;
    if (!nerve_obj_number(v, &x))
        return NERVE_ETYPE;
    if (!isfinite(x))
        return NERVE_ERANGE;

    if (fn == S_LAST) {
        if (call->state)
            call->new_state_len = 0; /* left by another function: drop it */
        call->out = nerve_obj_double_new(x);
        return 0;
    }
    size_t size = s_state_size(fn, p->nbuckets);
    if (!call->new_state || call->new_state_cap < size)
        return NERVE_ERANGE;
    if (fn == S_EWMA)
        return s_ewma_update(p, call, x);

    uint8_t *st = call->new_state;
    if (s_window_valid(fn, p, call->state, call->state_len, call->now_ns))
        memmove(st, call->state, size);
    else
        s_window_fresh(fn, p, st, call->now_ns);
    s_window_t w;
    s_window_map(&w, fn, st);
    s_window_advance(&w, call->now_ns);
    s_window_add(&w, x);
    memcpy(st, &w.h, sizeof w.h);
    call->new_state_len = size;
    if (!s_window_read(&w, p, &call->out))
        call->out.type = MSGPACK_OBJECT_NIL;
    return 0;
}

static int s_prepare(s_fn_t fn, const msgpack_object *params, void **prepared, char *err,
                     size_t errsize)
{
    *prepared = NULL;
    s_params_t *p = malloc(sizeof *p);
    if (!p)
        return s_fail(NERVE_ENOMEM, err, errsize, "%s: out of memory", s_fn_names[fn]);
    int rc = s_parse(fn, params, p, err, errsize);
    if (rc != 0) {
        free(p);
        return rc;
    }
    *prepared = p;
    return 0;
}

static void s_release(void *prepared)
{
    free(prepared);
}

#define S_REGISTER(name, fn)                                                                       \
    static int s_##name(nerve_register_call_t *call)                                               \
    {                                                                                              \
        return s_aggregate(fn, call);                                                              \
    }                                                                                              \
    static int s_prepare_##name(const msgpack_object *params, void **prepared, char *err,          \
                                size_t errsize)                                                    \
    {                                                                                              \
        return s_prepare(fn, params, prepared, err, errsize);                                      \
    }

S_REGISTER(avg, S_AVG)
S_REGISTER(sum, S_SUM)
S_REGISTER(count, S_COUNT)
S_REGISTER(min, S_MIN)
S_REGISTER(max, S_MAX)
S_REGISTER(last, S_LAST)
S_REGISTER(rate, S_RATE)
S_REGISTER(delta, S_DELTA)
S_REGISTER(ewma, S_EWMA)
S_REGISTER(percentile, S_PERCENTILE)

static const nerve_module_fn_t s_functions[] = {
    {"avg",
     {.reg = s_avg},
     "mean over the last `period` seconds (default 60)",
     s_prepare_avg,
     s_release},
    {"sum", {.reg = s_sum}, "sum over the last `period` seconds", s_prepare_sum, s_release},
    {"count",
     {.reg = s_count},
     "number of values in the last `period` seconds (an integer)",
     s_prepare_count,
     s_release},
    {"min",
     {.reg = s_min},
     "smallest value in the last `period` seconds",
     s_prepare_min,
     s_release},
    {"max", {.reg = s_max}, "largest value in the last `period` seconds", s_prepare_max, s_release},
    {"last", {.reg = s_last}, "the value itself, as a float", s_prepare_last, s_release},
    {"rate",
     {.reg = s_rate},
     "per-second increase of a counter over `period` seconds, resets counted from 0",
     s_prepare_rate,
     s_release},
    {"delta",
     {.reg = s_delta},
     "newest minus oldest value in the last `period` seconds",
     s_prepare_delta,
     s_release},
    {"ewma",
     {.reg = s_ewma},
     "exponentially weighted moving average, weight `alpha` (0.3)",
     s_prepare_ewma,
     s_release},
    {"percentile",
     {.reg = s_percentile},
     "`p`th percentile (0-100) of the last `period` seconds (newest 256 values)",
     s_prepare_percentile,
     s_release},
    {NULL, {NULL}, NULL, NULL, NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_REGISTERS, "aggregate", "1.0.0", s_functions, NULL, NULL,
};

NERVE_MODULE_EXPORT(s_module)
