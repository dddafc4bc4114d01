/*  nerve/wire.h — wire protocol v1: events and reactions on ZeroMQ.

    Every nerve message is two frames: a routing frame (the event's tag, or a
    reaction's topic) and a msgpack map. This codec is the only place that
    knows the layout; everything else works on nerve_event_t and
    nerve_reaction_t. The contract is fixed in DESIGN.md ("Wire protocol v1")
    and language-neutral: a Python client with pyzmq and msgpack must
    interoperate.

    Decoding never trusts its input. Each way a message can be malformed has
    its own reason code (nerve_wire_reason_t), so the manager can count drops
    by reason. Decoding does not allocate from the heap per message once the
    decoder's zone has grown to the working size: strings that are copied
    (tag, host, fn, rule) go into fixed arrays inside the struct, and `data`
    and `args` point into the decoder's zone, which the next decode reuses.

    Threading: a decoder or encoder belongs to one thread at a time.
*/
#ifndef NERVE_WIRE_H
#define NERVE_WIRE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NERVE_WIRE_VERSION 1
#define NERVE_TAG_MAX 255          /* bytes, not counting the NUL */
#define NERVE_HOST_MAX 255
#define NERVE_TOPIC_MAX 300        /* "@host/" + host + "/" fits */
#define NERVE_NAME_MAX 255         /* fn and rule names */
#define NERVE_ID_SIZE 16
#define NERVE_HOPS_MAX 8           /* an event re-fired more often is dropped */
#define NERVE_PAYLOAD_MAX (1u << 20) /* 1 MiB: larger payloads are refused */
#define NERVE_RESULT_OUTPUT_MAX (64u * 1024)

/*  Why a message was refused. 0 is "valid". Stable: the manager exports
    counters named after nerve_wire_reason_name(). */
typedef enum nerve_wire_reason {
    NERVE_WIRE_OK = 0,
    NERVE_WIRE_FRAME_COUNT,      /* not exactly two frames */
    NERVE_WIRE_TAG_EMPTY,        /* tag frame is empty */
    NERVE_WIRE_TAG_TOO_LONG,     /* tag longer than 255 bytes */
    NERVE_WIRE_TAG_NO_SLASH,     /* tag does not start with '/' */
    NERVE_WIRE_TAG_NUL,          /* tag contains a NUL byte */
    NERVE_WIRE_TAG_UTF8,         /* tag is not valid UTF-8 */
    NERVE_WIRE_PAYLOAD_TOO_LARGE,/* payload larger than NERVE_PAYLOAD_MAX */
    NERVE_WIRE_PAYLOAD_TRUNCATED,/* msgpack ends before the value does */
    NERVE_WIRE_PAYLOAD_INVALID,  /* bytes that are not msgpack */
    NERVE_WIRE_PAYLOAD_TRAILING, /* bytes after the payload's value */
    NERVE_WIRE_PAYLOAD_NOT_MAP,  /* payload value is not a map */
    NERVE_WIRE_V_MISSING,
    NERVE_WIRE_V_TYPE,           /* v is not an unsigned integer */
    NERVE_WIRE_V_UNSUPPORTED,    /* v is not 1 */
    NERVE_WIRE_ID_MISSING,
    NERVE_WIRE_ID_TYPE,          /* id is not bin of 16 bytes */
    NERVE_WIRE_TS_MISSING,
    NERVE_WIRE_TS_TYPE,          /* ts is not an unsigned integer */
    NERVE_WIRE_HOST_MISSING,
    NERVE_WIRE_HOST_TYPE,        /* host is not a str */
    NERVE_WIRE_HOST_LENGTH,      /* host is empty or longer than 255 bytes */
    NERVE_WIRE_DATA_MISSING,
    NERVE_WIRE_HOPS_TYPE,        /* hops present but not an unsigned integer */
    NERVE_WIRE_HOPS_EXCEEDED,    /* hops greater than NERVE_HOPS_MAX */
    NERVE_WIRE_TOPIC_INVALID,    /* reaction topic not @all/, @host/<h>/, @group/<g>/ */
    NERVE_WIRE_FN_MISSING,
    NERVE_WIRE_FN_TYPE,          /* fn not a str of 1–255 bytes */
    NERVE_WIRE_ARGS_MISSING,
    NERVE_WIRE_ARGS_TYPE,        /* args not a map */
    NERVE_WIRE_RULE_TYPE,        /* rule present but not a str ≤ 255 */
    NERVE_WIRE_EVENT_MISSING,
    NERVE_WIRE_EVENT_TYPE,       /* event not a map with str tag/host and bin16 id */
    NERVE_WIRE_DEADLINE_MISSING,
    NERVE_WIRE_DEADLINE_TYPE,    /* deadline not an unsigned integer */
    NERVE_WIRE_REASON_COUNT
} nerve_wire_reason_t;

/*  Stable snake_case name of a reason ("tag_no_slash"), for counters and
    logs. Never NULL. */
const char *nerve_wire_reason_name(nerve_wire_reason_t reason);

/*  One received frame: bytes and length, not owned. */
typedef struct nerve_frame {
    const void *data;
    size_t size;
} nerve_frame_t;

/*  An event. Strings are NUL-terminated copies. `data` points into the
    decoder's zone (after decode) or into the caller's memory (before
    encode); for encoding, `data_raw` may instead hold already-packed msgpack
    (data_raw_len bytes), which is written verbatim. */
typedef struct nerve_event {
    char tag[NERVE_TAG_MAX + 1];
    size_t tag_len;
    uint8_t id[NERVE_ID_SIZE];
    uint64_t ts;                   /* ns since the Unix epoch, sender's clock */
    char host[NERVE_HOST_MAX + 1];
    msgpack_object data;
    const void *data_raw;          /* encode only; NULL to pack `data` */
    size_t data_raw_len;
    uint32_t hops;                 /* 0 unless re-fired by a reaction */
} nerve_event_t;

/*  The event a reaction carries back to the actor: who caused it. */
typedef struct nerve_event_ref {
    char tag[NERVE_TAG_MAX + 1];
    uint8_t id[NERVE_ID_SIZE];
    char host[NERVE_HOST_MAX + 1];
} nerve_event_ref_t;

/*  A reaction addressed to actors. */
typedef struct nerve_reaction {
    char topic[NERVE_TOPIC_MAX + 1]; /* "@all/", "@host/web1/", "@group/db/" */
    uint8_t id[NERVE_ID_SIZE];       /* the same on every retry of one delivery */
    char fn[NERVE_NAME_MAX + 1];     /* "reactions.cmd.run" */
    msgpack_object args;             /* map; templates already resolved */
    char rule[NERVE_NAME_MAX + 1];   /* may be empty */
    nerve_event_ref_t event;
    uint64_t ts;                     /* ns since the epoch, when produced */
    uint64_t deadline;               /* ns since the epoch; drop after */
    uint32_t hops;                   /* the triggering event's hops (optional
                                        on the wire, 0 when absent): events a
                                        reaction fires carry hops + 1, so a
                                        loop through actors stops too */
} nerve_reaction_t;

/*  Decoder: owns the zone that decoded values point into. */
typedef struct nerve_wire_decoder nerve_wire_decoder_t;

/*  Reads one multipart message from a ZeroMQ socket: its first `max`
    frames into parts (each to be closed by the caller, with
    nerve_wire_close_parts()), the rest read and dropped, and the count of
    all its frames into *n, so a message with too many frames can be told
    and refused. `flags` applies to the first frame (ZMQ_DONTWAIT: return
    at once when nothing waits); the others are part of the same message.
    Returns 0, or -1 when no message was read (errno as zmq_msg_recv's). */
int nerve_wire_recv_parts(void *socket, zmq_msg_t *parts, size_t max, size_t *n, int flags);

/*  Closes the frames nerve_wire_recv_parts() kept (min(n, max) of them). */
void nerve_wire_close_parts(zmq_msg_t *parts, size_t n, size_t max);

/*  Returns a new decoder, or NULL on OOM. */
nerve_wire_decoder_t *nerve_wire_decoder_new(void);

/*  Frees the decoder and sets *self to NULL. Safe on NULL and twice.
    Values from earlier decodes become invalid. */
void nerve_wire_decoder_destroy(nerve_wire_decoder_t **self);

/*  Decodes an event from `nframes` frames into *out. Returns NERVE_WIRE_OK
    or the first reason the message is malformed; *out is then unspecified.
    out->data stays valid until the next decode with this decoder.
    A hops value over NERVE_HOPS_MAX is reported as HOPS_EXCEEDED. */
nerve_wire_reason_t nerve_wire_decode_event(nerve_wire_decoder_t *self,
                                            const nerve_frame_t *frames, size_t nframes,
                                            nerve_event_t *out);

/*  Unpacks the one msgpack value that fills `len` bytes at `data` into
    `zone`, checked as payloads are before anything is built: at most
    NERVE_PAYLOAD_MAX bytes, nesting within msgpack-c's limit, nothing
    after the value, and every container backed by the entries it
    announces. Use it instead of msgpack_unpack() on bytes from outside
    (a request, a stored state): msgpack_unpack() allocates what a
    container announces before reading it, so 5 bytes claiming four
    billion entries make it ask for ~100 GB. Strings, bins and exts point
    into `data`: keep it alive as long as *out. Returns NERVE_WIRE_OK, or
    why the bytes were refused (NERVE_WIRE_PAYLOAD_TOO_LARGE, _TRUNCATED,
    _TRAILING, or _INVALID: not msgpack, too deep, or out of memory,
    which is logged). */
nerve_wire_reason_t nerve_wire_unpack(const void *data, size_t len, msgpack_zone *zone,
                                      msgpack_object *out);

/*  Decodes a reaction. out->args valid until the next decode. */
nerve_wire_reason_t nerve_wire_decode_reaction(nerve_wire_decoder_t *self,
                                               const nerve_frame_t *frames, size_t nframes,
                                               nerve_reaction_t *out);

/*  Validates a tag (the rules of frame 1): returns NERVE_WIRE_OK or a TAG_*
    reason. `len` bytes, need not be NUL-terminated. */
nerve_wire_reason_t nerve_wire_check_tag(const char *tag, size_t len);

/*  Encoding. `buf` is cleared and receives the msgpack payload (frame 2);
    frame 1 is ev->tag / r->topic. Returns 0, NERVE_EINVAL if a field breaks
    the protocol (bad tag, empty host, oversize strings), or NERVE_ENOMEM. */
int nerve_wire_encode_event(const nerve_event_t *ev, msgpack_sbuffer *buf);
int nerve_wire_encode_reaction(const nerve_reaction_t *r, msgpack_sbuffer *buf);

/*  Fills `id` with 16 random bytes (a fast per-thread generator seeded
    from getrandom; ids need to be unique, not secret). */
void nerve_wire_new_id(uint8_t id[NERVE_ID_SIZE]);

/*  Writes the id as 32 lowercase hex chars + NUL into out (33 bytes). */
char *nerve_wire_id_hex(const uint8_t id[NERVE_ID_SIZE], char out[33]);

/*  Result events (DESIGN.md "Result"): fills ev (tag "/nerve/result/<host>")
    with the data map {reaction, fn, ok, rc, output, took_us} packed into
    `scratch` (cleared first) and referenced through ev->data_raw. Output
    longer than 64 KiB is truncated. Returns 0 or NERVE_EINVAL/NERVE_ENOMEM. */
int nerve_wire_result_event(nerve_event_t *ev, msgpack_sbuffer *scratch, const char *host,
                            const uint8_t reaction_id[NERVE_ID_SIZE], const char *fn, bool ok,
                            int64_t rc, const char *output, size_t output_len,
                            uint64_t took_us);

#ifdef __cplusplus
}
#endif
#endif
