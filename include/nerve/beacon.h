/*  nerve/beacon.h — sending events from an application: the beacon API.

    A beacon is one connection to the manager's `events` socket. An app
    creates one, then sends events with a tag and a small data map:

        nerve_beacon_t *b = nerve_beacon_new("tcp://manager:7450", NULL);

        nerve_beacon_send_value(b, "/app/queue/depth", 12);     // {value: 12}

        nerve_data_t *d = nerve_beacon_data(b);                 // {value: 3.2,
        nerve_data_num(d, "value", 3.2);                        //  route: "/login",
        nerve_data_str(d, "route", "/login");                   //  db: {ok: true,
        nerve_data_map_begin(d, "db");                          //       pool: 8}}
        nerve_data_bool(d, "ok", true);
        nerve_data_int(d, "pool", 8);
        nerve_data_map_end(d);
        nerve_beacon_send(b, "/app/latency/web1", d);

        nerve_beacon_destroy(&b);

    Link with `pkg-config --cflags --libs nerve`. Nothing here exposes
    msgpack: the data builder writes the wire format directly.

    The beacon fills in what the wire protocol (DESIGN.md, "Wire protocol
    v1 — Event") asks of a sender: `v` = 1, a random 16-byte `id`, `ts` (ns
    since the epoch, this machine's clock) and `host` (the host name, or
    the one given in the options). It checks the tag (nerve_wire_check_tag)
    and the data before sending, and returns NERVE_EINVAL instead of putting
    something on the wire that the manager would drop.

    Never blocking the caller. Sending queues the event in the beacon's
    ZeroMQ socket and returns; libzmq's I/O thread does the network work.
    The queue is bounded (`hwm`, default 10,000 events). The socket keeps
    queueing while the manager is unreachable or restarting (it is
    connected with ZMQ_IMMEDIATE off), and delivers the backlog when the
    manager comes back. When the queue is full the event is dropped, counted
    (nerve_beacon_stats) and the send returns NERVE_EFULL at once: an app
    never waits for the manager. A dropped event is logged, at most once a
    minute per beacon.

    Cost. A send encodes into a buffer the beacon owns and reuses, so once
    that buffer has grown to the working size no send allocates in libnerve
    (libzmq itself copies each frame longer than 33 bytes into a message it
    allocates). bench/bench_beacon.c measures a send beside a raw zmq_send
    of the same two frames; bench/RESULTS.md has the figures.

    Threading. A beacon belongs to one thread at a time, like the ZeroMQ
    socket inside it, which is not thread-safe: give each thread that sends
    its own beacon (they are cheap: one socket; all beacons of a process
    share one ZeroMQ context and its I/O thread), or serialise calls with
    your own lock. nerve_beacon_stats() is the exception: it may be called
    from any thread while the owner sends. A nerve_data_t belongs to one
    thread too. A beacon must not be used across fork(): create it in the
    process that sends.

    Security. A beacon on a TCP endpoint is a CURVE client by default
    (docs/security.md): its events are encrypted, and it talks only to the
    holder of the manager's secret key, whose public key it pins
    (`server_key`, default the file manager.pub in the keys directory). It
    authenticates with its own keypair (`client_key`, default "beacon",
    made in the keys directory on first use); the manager lets it in when
    that key is in its accepted/ directory, or is a keypair of the
    manager's own host (one machine sharing $NERVE_HOME). A manager that
    does not know the key refuses it and records it as pending under the
    name nerve_beacon_new() logs (`nerve keys accept NAME` on the manager);
    libzmq does not retry a refused handshake, so the beacon makes a new
    socket after a pause (1 s, doubling up to 30 s) — events sent
    meanwhile are dropped and counted. IPC endpoints are never encrypted:
    their directory's permissions are the access control. `insecure`
    turns CURVE off and is logged as a warning.

    Return codes: 0 (NERVE_OK) or a negative nerve_err (<nerve/error.h>).
*/
#ifndef NERVE_BEACON_H
#define NERVE_BEACON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NERVE_BEACON_HWM_DEFAULT      10000 /* events queued at most */
#define NERVE_BEACON_LINGER_DEFAULT   1000  /* ms destroy may wait to deliver */
#define NERVE_BEACON_ENDPOINT_DEFAULT "tcp://127.0.0.1:7450"
#define NERVE_DATA_DEPTH_MAX          16 /* nested maps/arrays inside data */

typedef struct nerve_beacon nerve_beacon_t;

/*  Options for nerve_beacon_new(). A zeroed struct (or NULL) means every
    default. Strings are copied; the struct need not outlive the call. */
typedef struct nerve_beacon_options {
    /*  The event's `host`: 1–255 bytes of UTF-8. NULL: this machine's host
        name (nerve_hostname()). */
    const char *host;
    /*  Events queued at most while the manager is slow or away. 0:
        NERVE_BEACON_HWM_DEFAULT. */
    int hwm;
    /*  How long destroying the last beacon of the process may wait for
        queued events to reach the manager, in ms. 0: the default (1000);
        negative: do not wait, discard what is queued. */
    int linger_ms;
    /*  A libzmq context to create the socket in (the beacon never
        terminates it). NULL: a context shared by every beacon of this
        process, created with the first and terminated with the last. */
    void *zmq_context;
    /*  CURVE, for TCP endpoints (see Security above). The manager's
        public key to pin: a key name in `keys` (<keys>/<name>.pub), a
        zcert file path, or 40 Z85 characters. NULL: "manager". */
    const char *server_key;
    /*  This client's keypair: its name in `keys` (<keys>/<name>.secret,
        mode 0600), made there if missing. NULL: "beacon". */
    const char *client_key;
    /*  The keys directory (mode 0700). NULL: $NERVE_HOME/keys. */
    const char *keys;
    /*  true: no CURVE, events in the clear. Only ever set on purpose: a
        warning is logged when a TCP beacon is made this way. */
    bool insecure;
} nerve_beacon_options_t;

/*  What a beacon did since it was created. */
typedef struct nerve_beacon_stats {
    uint64_t sent;    /* events handed to the socket's queue */
    uint64_t dropped; /* events refused because the queue was full (or the
                         socket failed) */
    uint64_t invalid; /* sends refused before queueing: bad tag, bad data */
} nerve_beacon_stats_t;

/* ------------------------------------------------------------------------
   The data builder.

   Builds the event's `data` map: keys and values added in order, maps and
   arrays nested with _begin/_end. Inside a map every value needs a key;
   inside an array the key must be NULL. The outermost map is implicit:
   a fresh builder is an empty map ready for keys.

   Errors are sticky: the first failure (a NULL key in a map, a string
   that is not UTF-8, nesting deeper than NERVE_DATA_DEPTH_MAX, the buffer
   full) is remembered, later calls do nothing and return it, and sending
   the builder returns it too (counted as invalid). So a sequence of calls
   needs one check, at the send. Every function returns 0 or that error.

   Two ways to get a builder:
   - nerve_beacon_data(b): the beacon's own, writing straight into the
     buffer it sends from. No copy, grows as needed (up to the wire's 1 MiB
     payload limit). Valid until the next send on that beacon.
   - nerve_data_init(&d, buf, size) over memory of the caller (a stack
     array): never allocates; a value that does not fit fails with
     NERVE_ERANGE. Sending it copies the bytes into the beacon.

   The fields are private: use the functions.
   ------------------------------------------------------------------------ */
typedef struct nerve_data {
    uint8_t *buf; /* packed bytes; buf[0..5) is the outer map's header */
    size_t cap;
    size_t len;
    nerve_beacon_t *owner; /* the beacon whose buffer this is, or NULL */
    int err;               /* first error, sticky */
    unsigned depth;        /* containers open beside the outer map */
    struct {
        size_t start;   /* offset of the container's reserved header */
        uint32_t count; /* entries so far */
        bool array;
    } open[NERVE_DATA_DEPTH_MAX + 1];
} nerve_data_t;

/*  Starts an empty map in buf (size bytes, at least 16; the builder keeps
    5 of them for the map's header). Never fails: a buffer too small makes
    the builder's sticky error NERVE_ERANGE. */
void nerve_data_init(nerve_data_t *d, void *buf, size_t size);

/*  Empties the builder (keeps its buffer) and clears its error. */
void nerve_data_reset(nerve_data_t *d);

/*  Adds key: value. `key` is a NUL-terminated UTF-8 string in a map, NULL
    in an array. nerve_data_num writes a float64, nerve_data_int the
    smallest msgpack integer, nerve_data_str a UTF-8 string (NERVE_EINVAL
    if it is not valid UTF-8; nerve_data_strn takes a length and may hold
    NUL bytes), nerve_data_nil a nil. */
int nerve_data_num(nerve_data_t *d, const char *key, double value);
int nerve_data_int(nerve_data_t *d, const char *key, int64_t value);
int nerve_data_bool(nerve_data_t *d, const char *key, bool value);
int nerve_data_str(nerve_data_t *d, const char *key, const char *value);
int nerve_data_strn(nerve_data_t *d, const char *key, const char *value, size_t len);
int nerve_data_nil(nerve_data_t *d, const char *key);

/*  Opens a nested map or array as the value of `key`; _end closes the
    innermost open one (NERVE_EINVAL if it is of the other kind or none is
    open). At most NERVE_DATA_DEPTH_MAX may be open (NERVE_ERANGE). */
int nerve_data_map_begin(nerve_data_t *d, const char *key);
int nerve_data_map_end(nerve_data_t *d);
int nerve_data_array_begin(nerve_data_t *d, const char *key);
int nerve_data_array_end(nerve_data_t *d);

/*  The builder's sticky error, or 0. */
int nerve_data_error(const nerve_data_t *d);

/*  The finished map as msgpack bytes, for nerve_beacon_send_raw(), a
    module's api->emit_raw, or any other transport. *bytes points into the
    builder's buffer and stays valid until the builder changes. Returns 0,
    the sticky error, or NERVE_EINVAL if a nested map or array is still
    open. The builder may go on being filled afterwards. */
int nerve_data_bytes(nerve_data_t *d, const void **bytes, size_t *len);

/* ------------------------------------------------------------------------
   Beacons
   ------------------------------------------------------------------------ */

/*  Creates a beacon connected (PUSH) to the manager's events endpoint
    (NULL: NERVE_BEACON_ENDPOINT_DEFAULT). `options` may be NULL. The
    connection is made in the background: the manager need not be up.
    Returns NULL, logged with the reason, on a malformed endpoint, a bad
    host, unusable CURVE keys (a keys directory others can write, a secret
    readable by others, a server key that is not a key), or out of memory.
    A server key file that does not exist yet is not an error: the beacon
    looks for it again after a pause, dropping events meanwhile. Free with
    nerve_beacon_destroy(). */
nerve_beacon_t *nerve_beacon_new(const char *endpoint, const nerve_beacon_options_t *options);

/*  Creates a beacon from a YAML file. Keys (all optional):

        manager: tcp://manager:7450     # events endpoint
        host: web1                      # the events' host
        hwm: 10000                      # events queued at most
        linger: 1s                      # destroy waits this long to flush
        manager_key: manager            # the manager's key to pin
        key: beacon                     # this client's keypair name
        security: {keys: /var/lib/nerve/keys}   # or {insecure: true}

    `security:` is the map every nerve daemon reads (curve, insecure,
    keys, auto_accept; nerve_security_parse in <nerve/security.h>). A key
    not listed is an error. Returns NULL on any error, logged as
    "file:line:column: what". */
nerve_beacon_t *nerve_beacon_new_from_config(const char *path);

/*  Closes the beacon and sets *self to NULL; safe on NULL and twice. When
    it is the last beacon of the process (shared context), it waits up to
    its linger time for queued events to be delivered. */
void nerve_beacon_destroy(nerve_beacon_t **self);

/*  The beacon's own builder, emptied. Its contents are what
    nerve_beacon_send(self, tag, that builder) sends without a copy; they
    are lost at the next send of any kind on this beacon. */
nerve_data_t *nerve_beacon_data(nerve_beacon_t *self);

/*  Sends one event with tag `tag` (NUL-terminated) and `data` (NULL: an
    empty map). Returns:
      0              queued
      NERVE_EINVAL   bad tag or unbalanced data (nothing sent; counted
                     invalid), or the builder's own sticky error
      NERVE_ERANGE   the payload would pass the wire's 1 MiB limit
                     (counted invalid)
      NERVE_EFULL    the queue is full; the event is dropped and counted
      NERVE_EIO      the socket failed (context terminated); dropped
      NERVE_ENOMEM   copying a caller's builder in failed; dropped */
int nerve_beacon_send(nerve_beacon_t *self, const char *tag, nerve_data_t *data);

/*  Sends {value: value}: the common case in one call. */
int nerve_beacon_send_value(nerve_beacon_t *self, const char *tag, double value);

/*  Sends data given as one packed msgpack value of `len` bytes (any type,
    by convention a map with `value`). It is checked to be exactly one
    well-formed value nested no deeper than the manager parses
    (NERVE_EINVAL otherwise). Same returns as nerve_beacon_send(). */
int nerve_beacon_send_raw(nerve_beacon_t *self, const char *tag, const void *data, size_t len);

/*  Copies the counters into *out. 0, or NERVE_EINVAL on NULL. Safe from
    any thread. */
int nerve_beacon_stats(const nerve_beacon_t *self, nerve_beacon_stats_t *out);

/*  The event host this beacon sends as. Valid while the beacon lives. */
const char *nerve_beacon_host(const nerve_beacon_t *self);

#ifdef __cplusplus
}
#endif
#endif
