/*  metrics.c — the Prometheus text a daemon renders, and the HTTP endpoint
    that serves it.

    Two threads meet here and share one pointer. The daemon's thread owns
    its counters and renders them into a builder it keeps. The builder has
    one buffer per metric family, in first-seen order, so a daemon can emit
    several families from one loop over its rules and still produce the
    grouped output the format requires, with # HELP and # TYPE once each;
    reset keeps the buffers, so a steady render does not allocate.
    nerve_metrics_publish() then copies the text into an immutable,
    reference-counted blob (the only allocation per render) and swaps it in
    under a mutex held for a pointer store.

    libmicrohttpd's internal thread answers scrapes. It takes a reference
    to the current blob under the same mutex and gives the bytes to MHD
    as they are; the reference drops when MHD destroys the response, after
    the last byte went out. A slow client therefore keeps an old blob
    alive, never the daemon waiting, and a scrape always sends one whole
    rendering.

    We bind the listening socket ourselves and hand it to MHD, so a bad
    address fails with errno's words and the address, not MHD's guess.
*/
#include <nerve/metrics.h>
#include <nerve/error.h>
#include <nerve/log.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

/*  Limits on clients. Prometheus keeps one connection per target; a few
    servers (an HA pair, a curl by hand) fit comfortably. */
#define S_CONN_MAX       32u
#define S_CONN_PER_IP    8u
#define S_CONN_TIMEOUT_S 10u
#define S_LISTEN_BACKLOG 64

/*  First capacity of a family's buffers: a few series. */
#define S_BUF_FIRST 256

/*  Bucket upper bounds, seconds: 1, 2.5, 5 per decade, 1 µs to 10 s. */
static const double s_bounds[NERVE_HISTO_BUCKETS] = {
    1e-6, 2.5e-6, 5e-6,   1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3,
    5e-3, 1e-2,   2.5e-2, 5e-2, 0.1,    0.25, 0.5,  1,      2.5,  5,    10,
};

/*  A malformed name is a programming error, but a daemon must not flood
    its log with one line per render. */
static nerve_ratelimit_t s_rl_misuse = NERVE_RATELIMIT_INIT(10000);
static nerve_ratelimit_t s_rl_http = NERVE_RATELIMIT_INIT(1000);

/* ---------------------------------------------------------------------------
   Growable buffers
   ------------------------------------------------------------------------ */

typedef struct s_buf {
    char *data;
    size_t len;
    size_t cap;
} s_buf_t;

/*  Makes room for `more` bytes and a NUL. */
static int s_buf_reserve(s_buf_t *b, size_t more)
{
    if (more > SIZE_MAX / 2 - b->len)
        return NERVE_ENOMEM;
    size_t need = b->len + more + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : S_BUF_FIRST;
    while (cap < need)
        cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data)
        return NERVE_ENOMEM;
    b->data = data;
    b->cap = cap;
    return 0;
}

static int s_buf_add(s_buf_t *b, const char *s, size_t n)
{
    if (s_buf_reserve(b, n))
        return NERVE_ENOMEM;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int s_buf_adds(s_buf_t *b, const char *s)
{
    return s_buf_add(b, s, strlen(s));
}

static void s_buf_free(s_buf_t *b)
{
    free(b->data);
    *b = (s_buf_t){0};
}

/*  Length of the valid UTF-8 sequence at p (at most n bytes), or 0 if the
    bytes there are not one: overlong forms, surrogates and code points
    past U+10FFFF are refused like truncated sequences. */
static size_t s_utf8_len(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2;
        cp = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3;
        cp = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/*  Appends s escaped for a label value (quote true: \\ \" \n) or for
    # HELP text (quote false: \\ \n). Bytes that are not UTF-8 become
    U+FFFD, since the format is UTF-8 and a parser may reject the page. */
static int s_buf_escape(s_buf_t *b, const char *s, bool quote)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    size_t i = 0;
    while (i < n) {
        /* Copy the longest run that needs nothing done in one go. */
        size_t run = i;
        while (run < n && p[run] < 0x80 && p[run] != '\\' && p[run] != '\n' &&
               !(quote && p[run] == '"'))
            run++;
        if (run > i && s_buf_add(b, s + i, run - i))
            return NERVE_ENOMEM;
        i = run;
        if (i >= n)
            break;
        int rc;
        if (p[i] == '\\')
            rc = s_buf_add(b, "\\\\", 2);
        else if (p[i] == '\n')
            rc = s_buf_add(b, "\\n", 2);
        else if (p[i] == '"')
            rc = s_buf_add(b, "\\\"", 2);
        else {
            size_t len = s_utf8_len(p + i, n - i);
            if (len == 0) {
                rc = s_buf_add(b, "\xef\xbf\xbd", 3);
                len = 1;
            } else {
                rc = s_buf_add(b, s + i, len);
            }
            i += len;
            if (rc)
                return rc;
            continue;
        }
        if (rc)
            return rc;
        i++;
    }
    return 0;
}

/*  Writes d in the format's float syntax: NaN, +Inf, -Inf, or the shortest
    %g form that reads back to the same double. */
static void s_fmt_double(char *buf, size_t size, double d)
{
    if (isnan(d)) {
        snprintf(buf, size, "NaN");
        return;
    }
    if (isinf(d)) {
        snprintf(buf, size, d > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

/* ---------------------------------------------------------------------------
   Histograms
   ------------------------------------------------------------------------ */

void nerve_histo_observe(nerve_histo_t *h, double seconds)
{
    if (!h || !isfinite(seconds))
        return;
    if (seconds < 0)
        seconds = 0;
    /* First bound >= seconds; NERVE_HISTO_BUCKETS when above them all. */
    size_t lo = 0, hi = NERVE_HISTO_BUCKETS;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s_bounds[mid] < seconds)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* One writer: load + store is an increment without a locked RMW. */
    uint64_t c = atomic_load_explicit(&h->counts[lo], memory_order_relaxed);
    atomic_store_explicit(&h->counts[lo], c + 1, memory_order_relaxed);
    double sum = atomic_load_explicit(&h->sum, memory_order_relaxed);
    atomic_store_explicit(&h->sum, sum + seconds, memory_order_relaxed);
}

void nerve_histo_reset(nerve_histo_t *h)
{
    if (!h)
        return;
    for (size_t i = 0; i <= NERVE_HISTO_BUCKETS; i++)
        atomic_store_explicit(&h->counts[i], 0, memory_order_relaxed);
    atomic_store_explicit(&h->sum, 0.0, memory_order_relaxed);
}

uint64_t nerve_histo_count(const nerve_histo_t *h)
{
    uint64_t total = 0;
    if (!h)
        return 0;
    for (size_t i = 0; i <= NERVE_HISTO_BUCKETS; i++)
        total += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    return total;
}

double nerve_histo_sum(const nerve_histo_t *h)
{
    return h ? atomic_load_explicit(&h->sum, memory_order_relaxed) : 0.0;
}

double nerve_histo_bound(size_t i)
{
    return i < NERVE_HISTO_BUCKETS ? s_bounds[i] : INFINITY;
}

/* ---------------------------------------------------------------------------
   The text builder
   ------------------------------------------------------------------------ */

typedef enum s_type {
    S_COUNTER,
    S_GAUGE,
    S_HISTOGRAM,
} s_type_t;

static const char *const s_type_names[] = {"counter", "gauge", "histogram"};

/*  One family: its name, its # HELP/# TYPE lines and its series. Slots
    past nfams keep their buffers for the next render. */
typedef struct s_family {
    s_buf_t name;
    s_buf_t head;
    s_buf_t body;
    s_type_t type;
} s_family_t;

struct nerve_mtext {
    s_family_t *fams;
    size_t nfams; /* in use */
    size_t cap;   /* allocated slots */
    size_t last;  /* the family used last: renders mostly repeat it */
};

nerve_mtext_t *nerve_mtext_new(void)
{
    nerve_mtext_t *self = calloc(1, sizeof *self);
    if (!self)
        NERVE_ERROR("metrics", "out of memory creating a metrics text");
    return self;
}

void nerve_mtext_destroy(nerve_mtext_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nerve_mtext_t *self = *self_p;
    for (size_t i = 0; i < self->cap; i++) {
        s_buf_free(&self->fams[i].name);
        s_buf_free(&self->fams[i].head);
        s_buf_free(&self->fams[i].body);
    }
    free(self->fams);
    free(self);
    *self_p = NULL;
}

void nerve_mtext_reset(nerve_mtext_t *self)
{
    if (!self)
        return;
    for (size_t i = 0; i < self->nfams; i++) {
        self->fams[i].name.len = 0;
        self->fams[i].head.len = 0;
        self->fams[i].body.len = 0;
    }
    self->nfams = 0;
    self->last = 0;
}

size_t nerve_mtext_size(const nerve_mtext_t *self)
{
    size_t size = 0;
    if (!self)
        return 0;
    for (size_t i = 0; i < self->nfams; i++)
        size += self->fams[i].head.len + self->fams[i].body.len;
    return size;
}

/*  Writes the text (exactly nerve_mtext_size() bytes) to out. */
static void s_compose(const nerve_mtext_t *self, char *out)
{
    for (size_t i = 0; i < self->nfams; i++) {
        const s_family_t *f = &self->fams[i];
        if (f->head.len)
            memcpy(out, f->head.data, f->head.len);
        out += f->head.len;
        if (f->body.len)
            memcpy(out, f->body.data, f->body.len);
        out += f->body.len;
    }
}

char *nerve_mtext_dup(const nerve_mtext_t *self, size_t *len)
{
    size_t size = nerve_mtext_size(self);
    char *text = malloc(size + 1);
    if (!text)
        return NULL;
    if (self)
        s_compose(self, text);
    text[size] = '\0';
    if (len)
        *len = size;
    return text;
}

static bool s_is_alpha_(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool s_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool s_metric_name_ok(const char *name)
{
    if (!name || !*name || !(s_is_alpha_(name[0]) || name[0] == ':'))
        return false;
    for (const char *p = name + 1; *p; p++)
        if (!(s_is_alpha_(*p) || s_is_digit(*p) || *p == ':'))
            return false;
    return true;
}

static bool s_label_name_ok(const char *name)
{
    if (!name || !*name || !s_is_alpha_(name[0]) || strncmp(name, "__", 2) == 0)
        return false;
    for (const char *p = name + 1; *p; p++)
        if (!(s_is_alpha_(*p) || s_is_digit(*p)))
            return false;
    return true;
}

static bool s_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/*  Checks a call's name and labels before anything is written, so a bad
    call leaves no trace. Logs what is wrong (rate-limited). */
static int s_check(const char *name, s_type_t type, const char *const *labels)
{
    if (!s_metric_name_ok(name)) {
        NERVE_LOG_RL(&s_rl_misuse, NERVE_LOG_WARN, "metrics", "invalid metric name '%s'",
                     name ? name : "(null)");
        return NERVE_EINVAL;
    }
    if (type == S_COUNTER && !s_ends_with(name, "_total")) {
        NERVE_LOG_RL(&s_rl_misuse, NERVE_LOG_WARN, "metrics", "counter '%s' must be named *_total",
                     name);
        return NERVE_EINVAL;
    }
    for (size_t i = 0; labels && labels[i]; i += 2) {
        const char *label = labels[i];
        const char *why = NULL;
        if (!s_label_name_ok(label))
            why = "is not a valid label name";
        else if (!labels[i + 1])
            why = "has no value";
        else if (type == S_HISTOGRAM && strcmp(label, "le") == 0)
            why = "is reserved for histogram buckets";
        for (size_t j = 0; !why && j < i; j += 2)
            if (strcmp(labels[j], label) == 0)
                why = "is given twice";
        if (why) {
            NERVE_LOG_RL(&s_rl_misuse, NERVE_LOG_WARN, "metrics", "metric '%s': label '%s' %s",
                         name, label, why);
            return NERVE_EINVAL;
        }
    }
    return 0;
}

/*  Finds the family `name` or adds it (with its # HELP/# TYPE lines).
    Sets *added so the caller can drop it again if the series fails. */
static int s_family(nerve_mtext_t *self, const char *name, const char *help, s_type_t type,
                    s_family_t **out, bool *added)
{
    *added = false;
    s_family_t *f = NULL;
    if (self->last < self->nfams && strcmp(self->fams[self->last].name.data, name) == 0)
        f = &self->fams[self->last];
    for (size_t i = 0; !f && i < self->nfams; i++)
        if (strcmp(self->fams[i].name.data, name) == 0) {
            f = &self->fams[i];
            self->last = i;
        }
    if (f) {
        if (f->type != type) {
            NERVE_LOG_RL(&s_rl_misuse, NERVE_LOG_WARN, "metrics", "metric '%s' is a %s, not a %s",
                         name, s_type_names[f->type], s_type_names[type]);
            return NERVE_EINVAL;
        }
        *out = f;
        return 0;
    }
    if (self->nfams == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        s_family_t *fams = realloc(self->fams, cap * sizeof *fams);
        if (!fams)
            return NERVE_ENOMEM;
        memset(fams + self->cap, 0, (cap - self->cap) * sizeof *fams);
        self->fams = fams;
        self->cap = cap;
    }
    f = &self->fams[self->nfams];
    f->name.len = f->head.len = f->body.len = 0;
    f->type = type;
    int rc = s_buf_adds(&f->name, name);
    if (!rc && help) {
        rc = s_buf_adds(&f->head, "# HELP ");
        rc = rc ? rc : s_buf_adds(&f->head, name);
        rc = rc ? rc : s_buf_add(&f->head, " ", 1);
        rc = rc ? rc : s_buf_escape(&f->head, help, false);
        rc = rc ? rc : s_buf_add(&f->head, "\n", 1);
    }
    rc = rc ? rc : s_buf_adds(&f->head, "# TYPE ");
    rc = rc ? rc : s_buf_adds(&f->head, name);
    rc = rc ? rc : s_buf_add(&f->head, " ", 1);
    rc = rc ? rc : s_buf_adds(&f->head, s_type_names[type]);
    rc = rc ? rc : s_buf_add(&f->head, "\n", 1);
    if (rc)
        return rc;
    self->last = self->nfams++;
    *added = true;
    *out = f;
    return 0;
}

/*  Writes `name[suffix]{labels[,le="..."]} ` (the space included). */
static int s_series(s_buf_t *b, const char *name, const char *suffix, const char *const *labels,
                    const char *le)
{
    int rc = s_buf_adds(b, name);
    rc = rc ? rc : s_buf_adds(b, suffix);
    bool any = (labels && labels[0]) || le;
    if (!rc && any) {
        rc = s_buf_add(b, "{", 1);
        bool first = true;
        for (size_t i = 0; !rc && labels && labels[i]; i += 2) {
            rc = first ? 0 : s_buf_add(b, ",", 1);
            rc = rc ? rc : s_buf_adds(b, labels[i]);
            rc = rc ? rc : s_buf_add(b, "=\"", 2);
            rc = rc ? rc : s_buf_escape(b, labels[i + 1], true);
            rc = rc ? rc : s_buf_add(b, "\"", 1);
            first = false;
        }
        if (!rc && le) {
            rc = first ? 0 : s_buf_add(b, ",", 1);
            rc = rc ? rc : s_buf_add(b, "le=\"", 4);
            rc = rc ? rc : s_buf_adds(b, le);
            rc = rc ? rc : s_buf_add(b, "\"", 1);
        }
        rc = rc ? rc : s_buf_add(b, "}", 1);
    }
    return rc ? rc : s_buf_add(b, " ", 1);
}

/*  Appends a value and the line's end. */
static int s_value_u64(s_buf_t *b, uint64_t v)
{
    char num[32];
    int n = snprintf(num, sizeof num, "%" PRIu64 "\n", v);
    return s_buf_add(b, num, (size_t)n);
}

static int s_value_double(s_buf_t *b, double v)
{
    char num[40];
    s_fmt_double(num, sizeof num, v);
    int rc = s_buf_adds(b, num);
    return rc ? rc : s_buf_add(b, "\n", 1);
}

typedef struct s_sample {
    s_type_t type;
    uint64_t u64;
    double dbl;
    const nerve_histo_t *histo;
} s_sample_t;

static int s_body(s_buf_t *b, const char *name, const char *const *labels, const s_sample_t *s)
{
    if (s->type == S_COUNTER) {
        int rc = s_series(b, name, "", labels, NULL);
        return rc ? rc : s_value_u64(b, s->u64);
    }
    if (s->type == S_GAUGE) {
        int rc = s_series(b, name, "", labels, NULL);
        return rc ? rc : s_value_double(b, s->dbl);
    }
    /* Snapshot the buckets once: _count is the +Inf bucket by
       construction, even while another thread observes. */
    uint64_t counts[NERVE_HISTO_BUCKETS + 1];
    for (size_t i = 0; i <= NERVE_HISTO_BUCKETS; i++)
        counts[i] = atomic_load_explicit(&s->histo->counts[i], memory_order_relaxed);
    double sum = atomic_load_explicit(&s->histo->sum, memory_order_relaxed);
    uint64_t cumulative = 0;
    int rc = 0;
    for (size_t i = 0; !rc && i <= NERVE_HISTO_BUCKETS; i++) {
        char le[40];
        if (i < NERVE_HISTO_BUCKETS)
            s_fmt_double(le, sizeof le, s_bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        cumulative += counts[i];
        rc = s_series(b, name, "_bucket", labels, le);
        rc = rc ? rc : s_value_u64(b, cumulative);
    }
    rc = rc ? rc : s_series(b, name, "_sum", labels, NULL);
    rc = rc ? rc : s_value_double(b, sum);
    rc = rc ? rc : s_series(b, name, "_count", labels, NULL);
    return rc ? rc : s_value_u64(b, cumulative);
}

static int s_add(nerve_mtext_t *self, const char *name, const char *help, const char *const *labels,
                 const s_sample_t *sample)
{
    if (!self)
        return NERVE_EINVAL;
    int rc = s_check(name, sample->type, labels);
    if (rc)
        return rc;
    s_family_t *f;
    bool added;
    rc = s_family(self, name, help, sample->type, &f, &added);
    if (rc)
        return rc;
    size_t mark = f->body.len;
    rc = s_body(&f->body, name, labels, sample);
    if (rc) {
        /* Undo the partial line (and the family, if this call made it). */
        f->body.len = mark;
        if (f->body.data)
            f->body.data[mark] = '\0';
        if (added) {
            self->nfams--;
            self->last = 0;
        }
    }
    return rc;
}

int nerve_mtext_counter(nerve_mtext_t *self, const char *name, const char *help,
                        const char *const *labels, uint64_t value)
{
    s_sample_t s = {.type = S_COUNTER, .u64 = value};
    return s_add(self, name, help, labels, &s);
}

int nerve_mtext_gauge(nerve_mtext_t *self, const char *name, const char *help,
                      const char *const *labels, double value)
{
    s_sample_t s = {.type = S_GAUGE, .dbl = value};
    return s_add(self, name, help, labels, &s);
}

int nerve_mtext_histogram(nerve_mtext_t *self, const char *name, const char *help,
                          const char *const *labels, const nerve_histo_t *h)
{
    if (!h)
        return NERVE_EINVAL;
    s_sample_t s = {.type = S_HISTOGRAM, .histo = h};
    return s_add(self, name, help, labels, &s);
}

/* ---------------------------------------------------------------------------
   The endpoint
   ------------------------------------------------------------------------ */

/*  One published rendering. Immutable once published; freed by whoever
    drops the last reference (publish, or MHD's thread after a send). */
typedef struct s_blob {
    atomic_uint refs;
    size_t len;
    char data[];
} s_blob_t;

struct nerve_metrics {
    struct MHD_Daemon *mhd;
    pthread_mutex_t lock; /* guards current */
    s_blob_t *current;    /* NULL until the first publish */
    _Atomic uint64_t scrapes;
    uint64_t next_due_ms; /* daemon thread only */
    bool rendered;        /* due() answered true at least once */
    uint16_t port;
};

static void s_blob_unref(void *cls)
{
    s_blob_t *blob = cls;
    if (blob && atomic_fetch_sub_explicit(&blob->refs, 1, memory_order_acq_rel) == 1)
        free(blob);
}

static void s_fail(char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*  Fills err, or logs when the caller gave no buffer. */
static void s_fail(char *err, size_t errsize, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (err && errsize)
        snprintf(err, errsize, "%s", msg);
    else
        NERVE_ERROR("metrics", "%s", msg);
}

/*  Parses a port: 1 to 5 digits, at most 65535. */
static bool s_port_parse(const char *s, uint16_t *port)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5)
        return false;
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!s_is_digit(s[i]))
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

int nerve_metrics_listen_parse(const char *address, char *host, size_t hostsize, uint16_t *port,
                               char *err, size_t errsize)
{
    if (err && errsize)
        err[0] = '\0';
    if (!address || !*address) {
        if (err && errsize)
            snprintf(err, errsize, "bad metrics address '': expected a port or host:port");
        return NERVE_EINVAL;
    }
    const char *host_start, *port_text;
    size_t host_len;
    const char *why = NULL;
    const char *colon = strrchr(address, ':');
    if (address[0] == '[') {
        const char *close = strchr(address, ']');
        host_start = address + 1;
        host_len = close ? (size_t)(close - host_start) : 0;
        port_text = close && close[1] == ':' ? close + 2 : NULL;
        if (!close)
            why = "missing ']' after an IPv6 address";
        else if (!port_text)
            why = "expected ':port' after ']'";
        else if (host_len == 0)
            why = "empty IPv6 address in '[]'";
    } else if (!colon) {
        host_start = NERVE_METRICS_DEFAULT_HOST;
        host_len = strlen(host_start);
        port_text = address;
        if (!s_is_digit(address[0]))
            why = "expected a port or host:port";
    } else {
        host_start = address;
        host_len = (size_t)(colon - address);
        port_text = colon + 1;
        if (memchr(address, ':', host_len))
            why = "write an IPv6 address in brackets, as [::1]:9100";
        else if (host_len == 0)
            why = "no host before ':' (write 127.0.0.1:PORT, or *:PORT for every interface)";
    }
    uint16_t p = 0;
    if (!why && !s_port_parse(port_text, &p))
        why = "port must be a number from 0 to 65535";
    if (why) {
        if (err && errsize)
            snprintf(err, errsize, "bad metrics address '%s': %s", address, why);
        return NERVE_EINVAL;
    }
    if (host_len == 1 && host_start[0] == '*') {
        host_start = "0.0.0.0";
        host_len = strlen(host_start);
    }
    if (host) {
        if (host_len >= hostsize) {
            if (err && errsize)
                snprintf(err, errsize, "bad metrics address '%s': host name too long", address);
            return NERVE_ERANGE;
        }
        memcpy(host, host_start, host_len);
        host[host_len] = '\0';
    }
    if (port)
        *port = p;
    return 0;
}

/*  Resolves host (numeric, or a name looked up once at startup) and
    returns a bound, listening, non-blocking socket, or -1 with err set. */
static int s_bind(const char *address, const char *host, uint16_t port, uint16_t *bound, bool *ipv6,
                  char *err, size_t errsize)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    int gai = getaddrinfo(host, service, &hints, &res);
    if (gai != 0) {
        s_fail(err, errsize, "bad metrics address '%s': cannot resolve '%s': %s", address, host,
               gai_strerror(gai));
        return -1;
    }
    /* A name may give both families; IPv4 first, as "localhost" users mean. */
    struct addrinfo *ai = res;
    for (struct addrinfo *it = res; it; it = it->ai_next)
        if (it->ai_family == AF_INET) {
            ai = it;
            break;
        }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        s_fail(err, errsize, "cannot create the metrics socket for '%s': %s", address,
               strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    /* A restarted daemon must get its port back while old connections sit
       in TIME_WAIT. */
    int on = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, S_LISTEN_BACKLOG) != 0) {
        s_fail(err, errsize, "cannot bind metrics address '%s': %s", address, strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    *ipv6 = ai->ai_family == AF_INET6;
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0) {
        s_fail(err, errsize, "cannot read the metrics socket's address for '%s': %s", address,
               strerror(errno));
        close(fd);
        return -1;
    }
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/*  MHD's own complaints (a client that sent garbage, a failed accept). */
static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    NERVE_LOG_RL(&s_rl_http, NERVE_LOG_WARN, "metrics", "http: %s", msg);
}

/*  Queues a short fixed text answer. */
static enum MHD_Result s_reply(struct MHD_Connection *conn, unsigned int status, const char *body,
                               const char *allow)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    enum MHD_Result ok =
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    if (ok == MHD_YES && allow)
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (ok == MHD_YES)
        ok = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ok;
}

/*  Every request, on MHD's thread. Answers on the first call (headers
    read); MHD discards any body a client sends and closes after. */
static enum MHD_Result s_answer(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **req_cls)
{
    (void)version, (void)upload_data, (void)upload_data_size, (void)req_cls;
    nerve_metrics_t *self = cls;
    if (strcmp(url, NERVE_METRICS_PATH) != 0)
        return s_reply(conn, MHD_HTTP_NOT_FOUND, "not found: metrics are at /metrics\n", NULL);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return s_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", "GET, HEAD");

    pthread_mutex_lock(&self->lock);
    s_blob_t *blob = self->current;
    if (blob)
        atomic_fetch_add_explicit(&blob->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&self->lock);
    if (!blob)
        return s_reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "metrics not rendered yet\n", NULL);

    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback_cls(
        blob->len, blob->data, s_blob_unref, blob);
    if (!resp) {
        s_blob_unref(blob);
        return MHD_NO;
    }
    enum MHD_Result ok =
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, NERVE_METRICS_CONTENT_TYPE);
    if (ok == MHD_YES)
        ok = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    if (ok == MHD_YES)
        atomic_fetch_add_explicit(&self->scrapes, 1, memory_order_relaxed);
    return ok;
}

nerve_metrics_t *nerve_metrics_start(const char *address, char *err, size_t errsize)
{
    char host[256];
    uint16_t port;
    char why[512];
    if (nerve_metrics_listen_parse(address, host, sizeof host, &port, why, sizeof why)) {
        s_fail(err, errsize, "%s", why);
        return NULL;
    }
    uint16_t bound = 0;
    bool ipv6 = false;
    int fd = s_bind(address, host, port, &bound, &ipv6, err, errsize);
    if (fd < 0)
        return NULL;

    nerve_metrics_t *self = calloc(1, sizeof *self);
    if (!self || pthread_mutex_init(&self->lock, NULL) != 0) {
        s_fail(err, errsize, "out of memory starting metrics on '%s'", address);
        free(self);
        close(fd);
        return NULL;
    }
    self->port = bound;
    unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (ipv6)
        flags |= MHD_USE_IPv6;
    /* The logger goes first so MHD never prints on its own. From here MHD
       owns fd; it closes it on stop, and on every start failure past its
       option parsing, which ours always passes, so we never close it. */
    self->mhd = MHD_start_daemon(flags, 0, NULL, NULL, s_answer, self, MHD_OPTION_EXTERNAL_LOGGER,
                                 s_mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                                 MHD_OPTION_CONNECTION_LIMIT, S_CONN_MAX,
                                 MHD_OPTION_PER_IP_CONNECTION_LIMIT, S_CONN_PER_IP,
                                 MHD_OPTION_CONNECTION_TIMEOUT, S_CONN_TIMEOUT_S, MHD_OPTION_END);
    if (!self->mhd) {
        s_fail(err, errsize, "cannot start the metrics HTTP server on '%s' (see the log)", address);
        pthread_mutex_destroy(&self->lock);
        free(self);
        return NULL;
    }
    NERVE_INFO("metrics", "serving http://%s%s%s:%u%s", ipv6 ? "[" : "", host, ipv6 ? "]" : "",
               (unsigned)bound, NERVE_METRICS_PATH);
    return self;
}

void nerve_metrics_stop(nerve_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nerve_metrics_t *self = *self_p;
    /* Joins MHD's thread; responses in flight are destroyed, dropping
       their references, before it returns. */
    MHD_stop_daemon(self->mhd);
    s_blob_unref(self->current);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

uint16_t nerve_metrics_port(const nerve_metrics_t *self)
{
    return self ? self->port : 0;
}

int nerve_metrics_publish(nerve_metrics_t *self, const nerve_mtext_t *text)
{
    if (!self || !text)
        return NERVE_EINVAL;
    size_t len = nerve_mtext_size(text);
    if (len > SIZE_MAX - sizeof(s_blob_t) - 1)
        return NERVE_ENOMEM;
    s_blob_t *blob = malloc(sizeof *blob + len + 1);
    if (!blob)
        return NERVE_ENOMEM;
    atomic_init(&blob->refs, 1);
    blob->len = len;
    s_compose(text, blob->data);
    blob->data[len] = '\0';

    pthread_mutex_lock(&self->lock);
    s_blob_t *old = self->current;
    self->current = blob;
    pthread_mutex_unlock(&self->lock);
    /* Outside the lock: free() may take a while for a large text. */
    s_blob_unref(old);
    return 0;
}

bool nerve_metrics_due(nerve_metrics_t *self, uint64_t now_ms)
{
    if (!self)
        return false;
    if (self->rendered && now_ms < self->next_due_ms)
        return false;
    self->rendered = true;
    self->next_due_ms = now_ms + NERVE_METRICS_INTERVAL_MS;
    return true;
}

uint64_t nerve_metrics_next_ms(const nerve_metrics_t *self, uint64_t now_ms)
{
    if (!self)
        return UINT64_MAX;
    if (!self->rendered || now_ms >= self->next_due_ms)
        return 0;
    return self->next_due_ms - now_ms;
}

uint64_t nerve_metrics_scrapes(const nerve_metrics_t *self)
{
    return self ? atomic_load_explicit(&self->scrapes, memory_order_relaxed) : 0;
}
