/*  beacon.c — the beacon API: apps send events to the manager (beacon.h).

    The hot path is nerve_beacon_send() with the beacon's own builder, and it
    is built to cost little more than the zmq_send() calls it ends in:

    - The payload's head never changes but for `id` and `ts`: the map
      header, `v`, `host` and the `data` key are packed once, when the beacon
      is made, into a template (`prefix`) with `id` as bin 16 and `ts` as a
      fixed-width uint64, so a send copies ~40 bytes plus the host and
      patches 24 of them.
    - The beacon's builder writes `data` into the send buffer just after
      room for that head. A map's element count is only known at its end,
      so every container starts with a 5-byte header (the map32/array32
      size) reserved; closing it writes the smallest header msgpack allows
      and slides the body down over the spare bytes. The outermost map is
      not slid: its header is written right-aligned into its reserved bytes
      and the template copied in just before it, so the payload is one
      contiguous run of bytes ending where the data ends.
    - Tags are checked by nerve_wire_check_tag() (one pass, ASCII fast);
      data built here is well-formed by construction, nested no deeper than
      the manager parses and at most NERVE_PAYLOAD_MAX, so it needs no
      second scan.
    Raw (already packed) data goes through nerve_wire_encode_event(), whose
    scanner checks it is exactly one value the manager will accept.

    On TCP the socket is a CURVE client (beacon.h, Security). libzmq gives
    up on a connection whose handshake the manager refused, so a beacon
    watches its socket's handshake failures — only those, so its monitor
    queue can never fill — and only when a send finds no connection to
    queue on (EAGAIN): the hot path pays nothing. After a refusal the
    socket is closed and made again on the first send after a pause.

    Every beacon of a process shares one ZeroMQ context (one I/O thread),
    reference-counted under a mutex and re-created in a forked child. The
    counters are relaxed atomics written only by the owning thread, so
    nerve_beacon_stats() can be read from anywhere at no cost to sends.
*/
#include <nerve/beacon.h>
#include <nerve/conf.h>
#include <nerve/error.h>
#include <nerve/log.h>
#include <nerve/paths.h>
#include <nerve/security.h>
#include <nerve/wire.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define S_HDR         5  /* reserved container header: 0xdf/0xdd + uint32 */
#define S_DATA_MIN    16 /* smallest caller buffer nerve_data_init accepts */
#define S_BUF_INITIAL 1024
#define S_PREFIX_MAX  (1 + 2 + 2 + 3 + 2 + NERVE_ID_SIZE + 3 + 9 + 5 + 3 + NERVE_HOST_MAX + 5)
#define S_DROP_LOG_MS 60000
#define S_RETRY_MS      1000
#define S_RETRY_MAX_MS  30000
#define S_KEY_SETTLE_MS 1200 /* a new key reaches the ZAP handlers' next look (1 s) */
#define S_LINK_EVENTS   (ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)

struct nerve_beacon {
    void *sock; /* NULL while waiting to make it again (CURVE refused) */
    void *ctx;
    bool shared_ctx;
    int hwm, linger;
    bool curve;                                   /* a CURVE client: TCP and not insecure */
    nerve_security_t sec;                         /* keys directory and own key name */
    char *server_key;                             /* what to pin */
    char pending[NERVE_KEY_PENDING_NAME_LEN + 1]; /* our key's name in a server's pending/ */
    void *monitor;                                /* PAIR: the socket's handshake failures */
    unsigned monitor_seq;
    uint64_t retry_ms; /* sock NULL: when to make it again */
    uint64_t backoff_ms;
    nerve_ratelimit_t link_rl;
    char *endpoint; /* for messages */
    char host[NERVE_HOST_MAX + 1];
    uint8_t prefix[S_PREFIX_MAX]; /* {v, id, ts, host, "data": — everything before data */
    size_t prefix_len;
    size_t id_off, ts_off; /* where the template's id and ts bytes are */
    uint8_t *buf;          /* send buffer: [room for prefix + S_HDR][data body] */
    size_t cap;
    nerve_data_t data; /* the beacon's builder, over buf + prefix_len */
    nerve_event_t ev;  /* raw sends go through the codec */
    msgpack_sbuffer raw;
    _Atomic uint64_t sent, dropped, invalid;
    nerve_ratelimit_t drop_rl;
};

/* ------------------------------------------------------------------------
   Bytes
   ------------------------------------------------------------------------ */

static inline void s_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void s_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void s_be64(uint8_t *p, uint64_t v)
{
    s_be32(p, (uint32_t)(v >> 32));
    s_be32(p + 4, (uint32_t)v);
}

/*  True if s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code
    points past U+10FFFF): what a msgpack str must hold for other languages
    to decode it. */
static bool s_utf8_valid(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    /* Nearly every key and value is ASCII: skip it a word at a time. */
    for (uint64_t w; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ull)
            break;
    }
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf)
            len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else
            return false;
        if (n - i < len || p[i + 1] < lo || p[i + 1] > hi)
            return false;
        for (size_t k = 2; k < len; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
        i += len;
    }
    return true;
}

/*  Length and validity of a C string in one pass (keys are short: a
    separate strlen and scan would cost more than the string). */
static inline bool s_cstr(const char *s, size_t *len)
{
    size_t n = 0;
    unsigned high = 0;
    while (s[n])
        high |= (unsigned char)s[n++];
    *len = n;
    return n <= NERVE_PAYLOAD_MAX && (!(high & 0x80) || s_utf8_valid(s, n));
}

/* ------------------------------------------------------------------------
   The data builder
   ------------------------------------------------------------------------ */

static int s_beacon_reserve(nerve_beacon_t *self, size_t size);

static int s_fail(nerve_data_t *d, int err)
{
    if (!d->err)
        d->err = err;
    return d->err;
}

static int s_grow(nerve_data_t *d, size_t n)
{
    if (!d->owner || n > NERVE_PAYLOAD_MAX || d->len + n > NERVE_PAYLOAD_MAX)
        return s_fail(d, NERVE_ERANGE);
    nerve_beacon_t *b = d->owner;
    if (s_beacon_reserve(b, b->prefix_len + d->len + n) != 0)
        return s_fail(d, NERVE_ENOMEM);
    return 0;
}

/*  Makes room for n more bytes. Caller buffers are fixed; the beacon's
    buffer grows up to the payload limit. */
static inline int s_need(nerve_data_t *d, size_t n)
{
    return d->cap - d->len >= n ? 0 : s_grow(d, n);
}

static inline void s_put_str_hdr(nerve_data_t *d, size_t n)
{
    uint8_t *p = d->buf + d->len;
    if (n <= 31) {
        p[0] = (uint8_t)(0xa0 | n);
        d->len += 1;
    } else if (n <= 0xff) {
        p[0] = 0xd9;
        p[1] = (uint8_t)n;
        d->len += 2;
    } else if (n <= 0xffff) {
        p[0] = 0xda;
        s_be16(p + 1, (uint16_t)n);
        d->len += 3;
    } else {
        p[0] = 0xdb;
        s_be32(p + 1, (uint32_t)n);
        d->len += 5;
    }
}

static inline void s_put_str(nerve_data_t *d, const char *s, size_t n)
{
    s_put_str_hdr(d, n);
    if (n)
        memcpy(d->buf + d->len, s, n);
    d->len += n;
}

/*  Starts one entry of the innermost container: checks the key against
    the container's kind, reserves the key and `value_max` bytes, writes
    the key. Returns 0 or the sticky error. */
static inline int s_item(nerve_data_t *d, const char *key, size_t value_max)
{
    if (d->err)
        return d->err;
    bool array = d->open[d->depth].array;
    size_t klen = 0;
    if (array != !key)
        return s_fail(d, NERVE_EINVAL);
    if (key && !s_cstr(key, &klen))
        return s_fail(d, NERVE_EINVAL);
    if (d->open[d->depth].count == UINT32_MAX)
        return s_fail(d, NERVE_ERANGE);
    if (s_need(d, (key ? klen + 5 : 0) + value_max) != 0)
        return d->err;
    if (key)
        s_put_str(d, key, klen);
    d->open[d->depth].count++;
    return 0;
}

void nerve_data_reset(nerve_data_t *d)
{
    if (!d)
        return;
    d->err = d->cap >= S_DATA_MIN && d->buf ? 0 : NERVE_ERANGE;
    d->len = S_HDR;
    d->depth = 0;
    d->open[0].start = 0;
    d->open[0].count = 0;
    d->open[0].array = false;
}

void nerve_data_init(nerve_data_t *d, void *buf, size_t size)
{
    if (!d)
        return;
    memset(d, 0, sizeof *d);
    d->buf = buf;
    d->cap = buf ? size : 0;
    nerve_data_reset(d);
}

int nerve_data_num(nerve_data_t *d, const char *key, double value)
{
    if (!d)
        return NERVE_EINVAL;
    if (s_item(d, key, 9) != 0)
        return d->err;
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    d->buf[d->len] = 0xcb;
    s_be64(d->buf + d->len + 1, bits);
    d->len += 9;
    return 0;
}

int nerve_data_int(nerve_data_t *d, const char *key, int64_t v)
{
    if (!d)
        return NERVE_EINVAL;
    if (s_item(d, key, 9) != 0)
        return d->err;
    uint8_t *p = d->buf + d->len;
    if (v >= 0) {
        uint64_t u = (uint64_t)v;
        if (u <= 0x7f) {
            p[0] = (uint8_t)u;
            d->len += 1;
        } else if (u <= 0xff) {
            p[0] = 0xcc;
            p[1] = (uint8_t)u;
            d->len += 2;
        } else if (u <= 0xffff) {
            p[0] = 0xcd;
            s_be16(p + 1, (uint16_t)u);
            d->len += 3;
        } else if (u <= 0xffffffffu) {
            p[0] = 0xce;
            s_be32(p + 1, (uint32_t)u);
            d->len += 5;
        } else {
            p[0] = 0xcf;
            s_be64(p + 1, u);
            d->len += 9;
        }
    } else if (v >= -32) {
        p[0] = (uint8_t)(int8_t)v;
        d->len += 1;
    } else if (v >= INT8_MIN) {
        p[0] = 0xd0;
        p[1] = (uint8_t)(int8_t)v;
        d->len += 2;
    } else if (v >= INT16_MIN) {
        p[0] = 0xd1;
        s_be16(p + 1, (uint16_t)(int16_t)v);
        d->len += 3;
    } else if (v >= INT32_MIN) {
        p[0] = 0xd2;
        s_be32(p + 1, (uint32_t)(int32_t)v);
        d->len += 5;
    } else {
        p[0] = 0xd3;
        s_be64(p + 1, (uint64_t)v);
        d->len += 9;
    }
    return 0;
}

int nerve_data_bool(nerve_data_t *d, const char *key, bool value)
{
    if (!d)
        return NERVE_EINVAL;
    if (s_item(d, key, 1) != 0)
        return d->err;
    d->buf[d->len++] = value ? 0xc3 : 0xc2;
    return 0;
}

int nerve_data_nil(nerve_data_t *d, const char *key)
{
    if (!d)
        return NERVE_EINVAL;
    if (s_item(d, key, 1) != 0)
        return d->err;
    d->buf[d->len++] = 0xc0;
    return 0;
}

static int s_strn(nerve_data_t *d, const char *key, const char *value, size_t len)
{
    if (d->err)
        return d->err;
    if ((!value && len) || len > NERVE_PAYLOAD_MAX)
        return s_fail(d, !value ? NERVE_EINVAL : NERVE_ERANGE);
    if (!s_utf8_valid(value, len))
        return s_fail(d, NERVE_EINVAL);
    if (s_item(d, key, 5 + len) != 0)
        return d->err;
    s_put_str(d, value, len);
    return 0;
}

int nerve_data_strn(nerve_data_t *d, const char *key, const char *value, size_t len)
{
    return d ? s_strn(d, key, value, len) : NERVE_EINVAL;
}

int nerve_data_str(nerve_data_t *d, const char *key, const char *value)
{
    if (!d)
        return NERVE_EINVAL;
    if (!value)
        return s_fail(d, NERVE_EINVAL);
    return s_strn(d, key, value, strlen(value));
}

static int s_begin(nerve_data_t *d, const char *key, bool array)
{
    if (!d)
        return NERVE_EINVAL;
    if (!d->err && d->depth >= NERVE_DATA_DEPTH_MAX)
        return s_fail(d, NERVE_ERANGE);
    if (s_item(d, key, S_HDR) != 0)
        return d->err;
    d->depth++;
    d->open[d->depth].start = d->len;
    d->open[d->depth].count = 0;
    d->open[d->depth].array = array;
    d->len += S_HDR;
    return 0;
}

/*  Size of the smallest map or array header for `count` elements. */
static size_t s_hdr_len(uint32_t count)
{
    return count <= 15 ? 1 : count <= 0xffff ? 3 : 5;
}

/*  Writes the header of a container of `count` elements at p (hdr_len
    bytes, from s_hdr_len). */
static void s_put_hdr(uint8_t *p, uint32_t count, bool array)
{
    if (count <= 15)
        p[0] = (uint8_t)((array ? 0x90 : 0x80) | count);
    else if (count <= 0xffff) {
        p[0] = array ? 0xdc : 0xde;
        s_be16(p + 1, (uint16_t)count);
    } else {
        p[0] = array ? 0xdd : 0xdf;
        s_be32(p + 1, count);
    }
}

static int s_end(nerve_data_t *d, bool array)
{
    if (!d)
        return NERVE_EINVAL;
    if (d->err)
        return d->err;
    if (d->depth == 0 || d->open[d->depth].array != array)
        return s_fail(d, NERVE_EINVAL);
    size_t start = d->open[d->depth].start;
    uint32_t count = d->open[d->depth].count;
    size_t hdr = s_hdr_len(count);
    s_put_hdr(d->buf + start, count, array);
    if (hdr < S_HDR) {
        memmove(d->buf + start + hdr, d->buf + start + S_HDR, d->len - start - S_HDR);
        d->len -= S_HDR - hdr;
    }
    d->depth--;
    return 0;
}

int nerve_data_map_begin(nerve_data_t *d, const char *key)
{
    return s_begin(d, key, false);
}

int nerve_data_map_end(nerve_data_t *d)
{
    return s_end(d, false);
}

int nerve_data_array_begin(nerve_data_t *d, const char *key)
{
    return s_begin(d, key, true);
}

int nerve_data_array_end(nerve_data_t *d)
{
    return s_end(d, true);
}

int nerve_data_error(const nerve_data_t *d)
{
    return d ? d->err : NERVE_EINVAL;
}

/*  Writes the outer map's header right-aligned in its reserved bytes.
    Returns the header's length, or 0 with the error in *err. */
static size_t s_finish_top(nerve_data_t *d, int *err)
{
    if (d->err) {
        *err = d->err;
        return 0;
    }
    if (d->depth != 0) {
        *err = NERVE_EINVAL;
        return 0;
    }
    size_t hdr = s_hdr_len(d->open[0].count);
    s_put_hdr(d->buf + S_HDR - hdr, d->open[0].count, false);
    return hdr;
}

int nerve_data_bytes(nerve_data_t *d, const void **bytes, size_t *len)
{
    if (!d || !bytes || !len)
        return NERVE_EINVAL;
    int err = 0;
    size_t hdr = s_finish_top(d, &err);
    if (!hdr)
        return err;
    *bytes = d->buf + S_HDR - hdr;
    *len = d->len - S_HDR + hdr;
    return 0;
}

/* ------------------------------------------------------------------------
   The shared context
   ------------------------------------------------------------------------ */

static pthread_mutex_t s_ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static void *s_ctx;
static size_t s_ctx_refs;
static pid_t s_ctx_pid;

/*  A context inherited through fork() belongs to the parent (its I/O
    thread did not survive): a child starts its own and leaves the
    parent's alone. */
static void *s_ctx_acquire(void)
{
    pthread_mutex_lock(&s_ctx_lock);
    pid_t pid = getpid();
    if (s_ctx && s_ctx_pid != pid) {
        s_ctx = NULL;
        s_ctx_refs = 0;
    }
    if (!s_ctx) {
        s_ctx = zmq_ctx_new();
        s_ctx_pid = pid;
    }
    void *ctx = s_ctx;
    if (ctx)
        s_ctx_refs++;
    pthread_mutex_unlock(&s_ctx_lock);
    return ctx;
}

static void s_ctx_release(void *ctx)
{
    pthread_mutex_lock(&s_ctx_lock);
    bool last = ctx == s_ctx && s_ctx_pid == getpid() && --s_ctx_refs == 0;
    if (last)
        s_ctx = NULL;
    pthread_mutex_unlock(&s_ctx_lock);
    if (last) /* waits up to each socket's linger for queued events */
        while (zmq_ctx_term(ctx) != 0 && errno == EINTR)
            ;
}

/* ------------------------------------------------------------------------
   Beacons
   ------------------------------------------------------------------------ */

static int s_beacon_reserve(nerve_beacon_t *self, size_t size)
{
    if (size <= self->cap)
        return 0;
    size_t cap = self->cap ? self->cap : S_BUF_INITIAL;
    while (cap < size)
        cap *= 2;
    uint8_t *buf = realloc(self->buf, cap);
    if (!buf)
        return NERVE_ENOMEM;
    self->buf = buf;
    self->cap = cap;
    self->data.buf = buf + self->prefix_len;
    self->data.cap = cap - self->prefix_len;
    return 0;
}

/*  Packs the template: fixmap 5 {"v": 1, "id": bin16, "ts": uint64,
    "host": str, "data": — the same keys in the same order as the codec. */
static void s_template(nerve_beacon_t *self)
{
    nerve_data_t d;
    nerve_data_init(&d, self->prefix, sizeof self->prefix);
    d.len = 0;
    d.buf[d.len++] = 0x85;
    s_put_str(&d, "v", 1);
    d.buf[d.len++] = NERVE_WIRE_VERSION;
    s_put_str(&d, "id", 2);
    d.buf[d.len++] = 0xc4;
    d.buf[d.len++] = NERVE_ID_SIZE;
    self->id_off = d.len;
    d.len += NERVE_ID_SIZE;
    s_put_str(&d, "ts", 2);
    d.buf[d.len++] = 0xcf;
    self->ts_off = d.len;
    d.len += 8;
    s_put_str(&d, "host", 4);
    s_put_str(&d, self->host, strlen(self->host));
    s_put_str(&d, "data", 4);
    self->prefix_len = d.len;
}

static void s_inc(_Atomic uint64_t *counter)
{
    /* one writer: a relaxed load and store, no locked instruction */
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static int s_invalid(nerve_beacon_t *self, int err)
{
    s_inc(&self->invalid);
    return err;
}

static int s_dropped(nerve_beacon_t *self, int zerr)
{
    s_inc(&self->dropped);
    uint64_t n = nerve_ratelimit_take(&self->drop_rl);
    if (n)
        NERVE_WARN("beacon", "%s: %s; %llu event%s dropped since the last report (%llu in all)",
                   self->endpoint,
                   zerr == EAGAIN ? "queue full (manager slow or unreachable)" : zmq_strerror(zerr),
                   (unsigned long long)n, n == 1 ? "" : "s",
                   (unsigned long long)atomic_load_explicit(&self->dropped, memory_order_relaxed));
    return zerr == EAGAIN ? NERVE_EFULL : zerr == ENOMEM ? NERVE_ENOMEM : NERVE_EIO;
}

static int s_reopen(nerve_beacon_t *self);
static void s_check_refused(nerve_beacon_t *self);

static int s_send_frames(nerve_beacon_t *self, const char *tag, size_t tag_len, const void *payload,
                         size_t len)
{
    if (!self->sock && s_reopen(self) != 0)
        return s_dropped(self, EAGAIN);
    if (zmq_send(self->sock, tag, tag_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        int e = errno;
        if (e == EAGAIN && self->curve)
            s_check_refused(self);
        return s_dropped(self, e);
    }
    /* Once the first frame is in, libzmq takes the rest of the message
       (the high-water mark is checked per message); this fails only when
       the connection is torn down in between, and libzmq then drops the
       half-sent message itself. */
    if (zmq_send(self->sock, payload, len, ZMQ_DONTWAIT) < 0)
        return s_dropped(self, errno);
    s_inc(&self->sent);
    return 0;
}

/*  Everything but IPC and inproc crosses a network: CURVE there. */
static bool s_networked(const char *endpoint)
{
    return strncmp(endpoint, "ipc://", 6) != 0 && strncmp(endpoint, "inproc://", 9) != 0;
}

/*  The transports libzmq connects to over a network, and for tcp the
    "host:port" shape (port a number or '*'), checked before any key is
    made or looked for: a beacon may be made before its server's key
    file exists, and its endpoint must still be refused when malformed. */
static bool s_endpoint_ok(const char *endpoint)
{
    static const char *const schemes[] = {"tcp://",  "ipc://",  "inproc://", "pgm://", "epgm://",
                                          "tipc://", "vmci://", "ws://",     "wss://", "udp://"};
    bool known = false;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0] && !known; i++)
        known = strncmp(endpoint, schemes[i], strlen(schemes[i])) == 0;
    if (!known)
        return false;
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return endpoint[strcspn(endpoint, ":") + 3] != '\0';
    const char *colon = strrchr(endpoint + 6, ':');
    if (!colon || colon == endpoint + 6 || !colon[1])
        return false;
    if (strcmp(colon + 1, "*") == 0)
        return true;
    size_t digits = strspn(colon + 1, "0123456789");
    return digits > 0 && digits <= 5 && colon[1 + digits] == '\0';
}

/*  Settles CURVE: the keys directory, our keypair (made on first use),
    the key to pin. Returns 0 or a negative nerve_err (logged). */
static int s_security(nerve_beacon_t *self, const nerve_beacon_options_t *o)
{
    self->curve = !o->insecure && s_networked(self->endpoint);
    if (!s_networked(self->endpoint))
        return 0;
    if (o->insecure) {
        NERVE_WARN("beacon",
                   "%s: insecure: CURVE is off; events go unencrypted to whoever listens there",
                   self->endpoint);
        return 0;
    }
    const char *name = o->client_key ? o->client_key : "beacon";
    int rc = nerve_security_init(&self->sec, name);
    if (rc == NERVE_EINVAL) {
        NERVE_ERROR("beacon", "client_key '%.80s': not a key name (1-%d of A-Z a-z 0-9 . _ -)",
                    name, NERVE_KEY_NAME_MAX);
        return rc;
    }
    if (o->keys) {
        if (!o->keys[0] || strlen(o->keys) > NERVE_KEYS_DIR_MAX) {
            NERVE_ERROR("beacon", "keys: '%.80s' is not a usable directory name", o->keys);
            return NERVE_EINVAL;
        }
        snprintf(self->sec.keys, sizeof self->sec.keys, "%s", o->keys);
    } else if (rc != 0) {
        NERVE_ERROR("beacon", "$NERVE_HOME/keys: path too long");
        return rc;
    }
    if (!(self->server_key = strdup(o->server_key ? o->server_key : "manager")))
        return NERVE_ENOMEM;
    char err[1024], z85[NERVE_Z85_KEY_LEN + 1];
    bool made = false;
    if ((rc = nerve_keys_ensure(self->sec.keys, self->sec.name, &made, err, sizeof err)) != 0 ||
        (rc = nerve_keys_resolve(self->sec.keys, self->sec.name, z85, err, sizeof err)) != 0) {
        NERVE_ERROR("beacon", "%s: %s", self->endpoint, err);
        return rc;
    }
    nerve_keys_pending_name(z85, self->pending);
    char pinned[NERVE_Z85_KEY_LEN + 1];
    rc = nerve_keys_resolve(self->sec.keys, self->server_key, pinned, err, sizeof err);
    if (rc != 0 && rc != NERVE_ENOENT) { /* a key file may come later; a bad key never works */
        NERVE_ERROR("beacon", "%s: %s", self->endpoint, err);
        return rc;
    }
    /*  A keypair made a moment ago, in a keys directory the manager on
        this host shares, is seen by its ZAP handler within a second:
        connecting before that would only get it refused. */
    if (made)
        self->retry_ms = nerve_clock_mono_ms() + S_KEY_SETTLE_MS;
    NERVE_INFO("beacon",
               "%s: CURVE with key %s/%s.pub (%s); a manager that does not know it records it "
               "as pending/%s.pub",
               self->endpoint, self->sec.keys, self->sec.name, made ? "made now" : "existing",
               self->pending);
    return 0;
}

static void s_close(nerve_beacon_t *self)
{
    if (self->sock)
        zmq_close(self->sock); /* ends its monitor too */
    if (self->monitor)
        zmq_close(self->monitor);
    self->sock = self->monitor = NULL;
}

/*  Makes and connects the socket: options, CURVE pinned to the server's
    key, the monitor of handshake failures. Returns 0, NERVE_ENOENT (the
    server's key file is not there yet) or another negative nerve_err,
    logged. */
static int s_open(nerve_beacon_t *self)
{
    if (!(self->sock = zmq_socket(self->ctx, ZMQ_PUSH))) {
        NERVE_ERROR("beacon", "%s: cannot create a ZeroMQ socket: %s", self->endpoint,
                    zmq_strerror(errno));
        return NERVE_EIO;
    }
    int off = 0, on = 1;
    zmq_setsockopt(self->sock, ZMQ_SNDHWM, &self->hwm, sizeof self->hwm);
    zmq_setsockopt(self->sock, ZMQ_LINGER, &self->linger, sizeof self->linger);
    zmq_setsockopt(self->sock, ZMQ_IMMEDIATE, &off, sizeof off);
    zmq_setsockopt(self->sock, ZMQ_IPV6, &on, sizeof on);
    zmq_setsockopt(self->sock, ZMQ_TCP_KEEPALIVE, &on, sizeof on);
    if (self->curve) {
        char err[1024], ep[96];
        int rc = nerve_sec_client(self->sock, &self->sec, self->server_key, err, sizeof err);
        if (rc != 0) {
            NERVE_LOG_RL(&self->link_rl, rc == NERVE_ENOENT ? NERVE_LOG_WARN : NERVE_LOG_ERROR,
                         "beacon", "%s: %s%s", self->endpoint, err,
                         rc == NERVE_ENOENT ? " (looking again later; events are dropped "
                                              "meanwhile)"
                                            : "");
            s_close(self);
            return rc;
        }
        snprintf(ep, sizeof ep, "inproc://nerve-beacon-monitor-%p-%u", (void *)self,
                 self->monitor_seq++);
        self->monitor = zmq_socket(self->ctx, ZMQ_PAIR);
        int zero = 0;
        if (!self->monitor || zmq_socket_monitor(self->sock, ep, S_LINK_EVENTS) != 0 ||
            zmq_setsockopt(self->monitor, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
            zmq_connect(self->monitor, ep) != 0) {
            NERVE_ERROR("beacon", "%s: cannot monitor the socket: %s", self->endpoint,
                        zmq_strerror(errno));
            s_close(self);
            return NERVE_EIO;
        }
    }
    if (zmq_connect(self->sock, self->endpoint) != 0) {
        NERVE_ERROR("beacon", "cannot connect to '%s': %s", self->endpoint, zmq_strerror(errno));
        s_close(self);
        return NERVE_EINVAL;
    }
    return 0;
}

static void s_retry_later(nerve_beacon_t *self)
{
    s_close(self);
    self->retry_ms = nerve_clock_mono_ms() + self->backoff_ms;
    self->backoff_ms =
        self->backoff_ms * 2 > S_RETRY_MAX_MS ? S_RETRY_MAX_MS : self->backoff_ms * 2;
}

/*  No socket: make it again once the pause is over. 0 when there is one. */
static int s_reopen(nerve_beacon_t *self)
{
    if (nerve_clock_mono_ms() < self->retry_ms)
        return -1;
    if (s_open(self) != 0) {
        s_retry_later(self);
        return -1;
    }
    return 0;
}

/*  A send found no connection: was the handshake refused? Then libzmq
    will not try again, so the socket is dropped and made again later. */
static void s_check_refused(nerve_beacon_t *self)
{
    while (self->monitor) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        bool more = zmq_msg_more(&m);
        if (zmq_msg_size(&m) >= 6) {
            memcpy(&event, zmq_msg_data(&m), 2);
            memcpy(&value, (const uint8_t *)zmq_msg_data(&m) + 2, 4);
        }
        zmq_msg_close(&m);
        while (more) { /* the endpoint frame */
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, self->monitor, ZMQ_DONTWAIT) < 0)
                more = false;
            else
                more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            NERVE_LOG_RL(&self->link_rl, NERVE_LOG_WARN, "beacon",
                         "%s refused this beacon's key %s/%s.pub (status %u): on the manager run "
                         "`nerve keys accept %s`; trying again in %llus",
                         self->endpoint, self->sec.keys, self->sec.name, (unsigned)value,
                         self->pending, (unsigned long long)(self->backoff_ms + 999) / 1000);
        else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
            NERVE_LOG_RL(&self->link_rl, NERVE_LOG_WARN, "beacon",
                         "%s: CURVE handshake failed (is it the manager whose key is pinned, "
                         "and does it run CURVE?); trying again in %llus",
                         self->endpoint, (unsigned long long)(self->backoff_ms + 999) / 1000);
        else
            continue;
        s_retry_later(self);
        return;
    }
}

nerve_beacon_t *nerve_beacon_new(const char *endpoint, const nerve_beacon_options_t *options)
{
    static const nerve_beacon_options_t defaults;
    const nerve_beacon_options_t *o = options ? options : &defaults;
    if (!endpoint)
        endpoint = NERVE_BEACON_ENDPOINT_DEFAULT;
    const char *host = o->host ? o->host : nerve_hostname();
    size_t host_len = strnlen(host, NERVE_HOST_MAX + 1);
    if (host_len == 0 || host_len > NERVE_HOST_MAX || !s_utf8_valid(host, host_len)) {
        NERVE_ERROR("beacon", "host '%.64s%s': must be 1-%d bytes of UTF-8", host,
                    host_len > 64 ? "…" : "", NERVE_HOST_MAX);
        return NULL;
    }
    if (o->hwm < 0) {
        NERVE_ERROR("beacon", "hwm %d: must be positive (0 for the default %d)", o->hwm,
                    NERVE_BEACON_HWM_DEFAULT);
        return NULL;
    }
    int hwm = o->hwm ? o->hwm : NERVE_BEACON_HWM_DEFAULT;
    int linger = o->linger_ms == 0  ? NERVE_BEACON_LINGER_DEFAULT
                 : o->linger_ms < 0 ? 0
                                    : o->linger_ms;

    nerve_beacon_t *self = calloc(1, sizeof *self);
    if (!self || !(self->endpoint = strdup(endpoint))) {
        NERVE_ERROR("beacon", "out of memory");
        free(self);
        return NULL;
    }
    memcpy(self->host, host, host_len);
    self->drop_rl = (nerve_ratelimit_t)NERVE_RATELIMIT_INIT(S_DROP_LOG_MS);
    msgpack_sbuffer_init(&self->raw);
    memcpy(self->ev.host, host, host_len);
    s_template(self);
    nerve_data_init(&self->data, NULL, 0);
    self->data.owner = self;
    if (s_beacon_reserve(self, S_BUF_INITIAL) != 0) {
        NERVE_ERROR("beacon", "out of memory");
        nerve_beacon_destroy(&self);
        return NULL;
    }
    nerve_data_reset(&self->data);

    self->shared_ctx = !o->zmq_context;
    self->ctx = o->zmq_context ? o->zmq_context : s_ctx_acquire();
    self->hwm = hwm;
    self->linger = linger;
    self->backoff_ms = S_RETRY_MS;
    self->link_rl = (nerve_ratelimit_t)NERVE_RATELIMIT_INIT(1000);
    if (!self->ctx) {
        NERVE_ERROR("beacon", "%s: cannot create a ZeroMQ context: %s", endpoint,
                    zmq_strerror(errno));
        nerve_beacon_destroy(&self);
        return NULL;
    }
    if (!s_endpoint_ok(endpoint)) {
        NERVE_ERROR("beacon",
                    "cannot connect to '%s': not an endpoint (tcp://host:port, "
                    "ipc://path)",
                    endpoint);
        nerve_beacon_destroy(&self);
        return NULL;
    }
    int rc = s_security(self, o);
    if (rc == 0 && self->retry_ms) /* a new key: let it settle (s_security) */
        return self;
    if (rc == 0)
        rc = s_open(self);
    if (rc == NERVE_ENOENT) /* the server's key is not there yet: look again later */
        s_retry_later(self);
    else if (rc != 0) {
        nerve_beacon_destroy(&self);
        return NULL;
    }
    return self;
}

void nerve_beacon_destroy(nerve_beacon_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nerve_beacon_t *self = *self_p;
    *self_p = NULL;
    s_close(self);
    free(self->server_key);
    if (self->ctx && self->shared_ctx)
        s_ctx_release(self->ctx);
    msgpack_sbuffer_destroy(&self->raw);
    free(self->buf);
    free(self->endpoint);
    free(self);
}

nerve_data_t *nerve_beacon_data(nerve_beacon_t *self)
{
    if (!self)
        return NULL;
    nerve_data_reset(&self->data);
    return &self->data;
}

/*  Length and validity of a tag in one pass: an ASCII tag needs nothing
    more than its first byte and its length; others go to the codec's
    check. */
static int s_check_tag(nerve_beacon_t *self, const char *tag, size_t *len)
{
    if (!tag)
        return s_invalid(self, NERVE_EINVAL);
    size_t n = 0;
    unsigned high = 0;
    while (n <= NERVE_TAG_MAX && tag[n])
        high |= (unsigned char)tag[n++];
    *len = n;
    if (n == 0 || n > NERVE_TAG_MAX || tag[0] != '/' ||
        ((high & 0x80) && nerve_wire_check_tag(tag, n) != NERVE_WIRE_OK))
        return s_invalid(self, NERVE_EINVAL);
    return 0;
}

/*  Sends the beacon's own builder or a caller's (copied in): [prefix][map
    header][body], contiguous, ending where the data ends. */
static int s_send(nerve_beacon_t *self, const char *tag, size_t tag_len, nerve_data_t *data)
{
    int err = 0;
    size_t hdr = s_finish_top(data, &err);
    if (!hdr)
        return s_invalid(self, err);
    size_t body = data->len - S_HDR;
    size_t payload = self->prefix_len + hdr + body;
    if (payload > NERVE_PAYLOAD_MAX)
        return s_invalid(self, NERVE_ERANGE);
    if (data != &self->data) {
        if (s_beacon_reserve(self, self->prefix_len + S_HDR + body) != 0)
            return s_dropped(self, ENOMEM);
        memcpy(self->buf + self->prefix_len + S_HDR - hdr, data->buf + S_HDR - hdr, hdr + body);
    }
    uint8_t *p = self->buf + S_HDR - hdr;
    memcpy(p, self->prefix, self->prefix_len);
    nerve_wire_new_id(p + self->id_off);
    s_be64(p + self->ts_off, nerve_clock_wall_ns());
    return s_send_frames(self, tag, tag_len, p, payload);
}

int nerve_beacon_send(nerve_beacon_t *self, const char *tag, nerve_data_t *data)
{
    if (!self)
        return NERVE_EINVAL;
    size_t tag_len;
    if (s_check_tag(self, tag, &tag_len) != 0)
        return NERVE_EINVAL;
    if (!data) {
        nerve_data_reset(&self->data);
        data = &self->data;
    }
    return s_send(self, tag, tag_len, data);
}

int nerve_beacon_send_value(nerve_beacon_t *self, const char *tag, double value)
{
    if (!self)
        return NERVE_EINVAL;
    size_t tag_len;
    if (s_check_tag(self, tag, &tag_len) != 0)
        return NERVE_EINVAL;
    /* {"value": float64}, written straight into the beacon's builder */
    static const uint8_t key[] = {0xa5, 'v', 'a', 'l', 'u', 'e', 0xcb};
    nerve_data_t *d = &self->data;
    nerve_data_reset(d);
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    memcpy(d->buf + S_HDR, key, sizeof key);
    s_be64(d->buf + S_HDR + sizeof key, bits);
    d->len = S_HDR + sizeof key + 8;
    d->open[0].count = 1;
    return s_send(self, tag, tag_len, d);
}

int nerve_beacon_send_raw(nerve_beacon_t *self, const char *tag, const void *data, size_t len)
{
    if (!self)
        return NERVE_EINVAL;
    size_t tag_len;
    if (s_check_tag(self, tag, &tag_len) != 0)
        return NERVE_EINVAL;
    if (!data || len == 0 || len > NERVE_PAYLOAD_MAX)
        return s_invalid(self, NERVE_EINVAL);
    nerve_event_t *ev = &self->ev;
    memcpy(ev->tag, tag, tag_len);
    ev->tag[tag_len] = '\0';
    ev->tag_len = tag_len;
    nerve_wire_new_id(ev->id);
    ev->ts = nerve_clock_wall_ns();
    ev->data_raw = data;
    ev->data_raw_len = len;
    int rc = nerve_wire_encode_event(ev, &self->raw);
    ev->data_raw = NULL;
    if (rc == NERVE_ENOMEM)
        return s_dropped(self, ENOMEM);
    if (rc != 0)
        return s_invalid(self, rc);
    return s_send_frames(self, tag, tag_len, self->raw.data, self->raw.size);
}

int nerve_beacon_stats(const nerve_beacon_t *self, nerve_beacon_stats_t *out)
{
    if (!self || !out)
        return NERVE_EINVAL;
    out->sent = atomic_load_explicit(&self->sent, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&self->dropped, memory_order_relaxed);
    out->invalid = atomic_load_explicit(&self->invalid, memory_order_relaxed);
    return 0;
}

const char *nerve_beacon_host(const nerve_beacon_t *self)
{
    return self ? self->host : NULL;
}

/* ------------------------------------------------------------------------
   From a config file
   ------------------------------------------------------------------------ */

static int s_conf_str(const nerve_conf_t *map, const char *key, const char **out,
                      nerve_conf_error_t *err)
{
    const nerve_conf_t *n = nerve_conf_get(map, key);
    return n ? nerve_conf_as_str(n, out, err) : 0;
}

nerve_beacon_t *nerve_beacon_new_from_config(const char *path)
{
    if (!path) {
        NERVE_ERROR("beacon", "no config file given");
        return NULL;
    }
    nerve_conf_t *root = NULL;
    nerve_conf_error_t err;
    memset(&err, 0, sizeof err);
    nerve_beacon_options_t o;
    memset(&o, 0, sizeof o);
    const char *manager = NULL;
    nerve_security_t sec;
    nerve_security_init(&sec, "beacon");
    int rc = nerve_conf_load(path, &root, &err);
    if (rc == 0 && root && root->type != NERVE_CONF_MAP)
        rc = nerve_conf_fail(root, &err, "expected a map of beacon settings");
    static const char *const keys[] = {"manager",  "host",        "hwm", "linger",
                                       "security", "manager_key", "key", NULL};
    if (rc == 0 && root)
        rc = nerve_conf_check_keys(root, keys, &err);
    rc = rc ? rc : s_conf_str(root, "manager", &manager, &err);
    rc = rc ? rc : s_conf_str(root, "host", &o.host, &err);
    rc = rc ? rc : s_conf_str(root, "manager_key", &o.server_key, &err);
    rc = rc ? rc : s_conf_str(root, "key", &o.client_key, &err);
    const nerve_conf_t *n;
    if (rc == 0 && (n = nerve_conf_get(root, "hwm"))) {
        int64_t v;
        if ((rc = nerve_conf_as_int(n, 1, INT_MAX, &v, &err)) == 0)
            o.hwm = (int)v;
    }
    if (rc == 0 && (n = nerve_conf_get(root, "linger"))) {
        uint64_t ms;
        if ((rc = nerve_conf_as_duration_ms(n, &ms, &err)) == 0)
            o.linger_ms = ms == 0 ? -1 : ms > INT_MAX ? INT_MAX : (int)ms;
    }
    if (rc == 0 && (n = nerve_conf_get(root, "security"))) {
        rc = nerve_security_parse(&sec, n, &err);
        o.insecure = sec.insecure;
        if (nerve_conf_get(n, "keys"))
            o.keys = sec.keys;
    }
    nerve_beacon_t *self = NULL;
    if (rc != 0)
        NERVE_ERROR("beacon", "%s", err.message[0] ? err.message : nerve_strerror(rc));
    else
        self = nerve_beacon_new(manager, &o);
    nerve_conf_destroy(&root);
    return self;
}
