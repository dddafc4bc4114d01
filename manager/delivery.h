/*  delivery.h — at-least-once delivery of reactions to hosts.

    A reaction sent to one host (target host:<h>, or each host a glob:
    matched) is remembered until its result comes back
    (/nerve/result/<host> with data.reaction = its id) or its deadline
    passes. Until then it is re-published with the same id — the actor
    runs an id at most once and answers a repeat with its earlier result —
    after 0.5 s, 1 s, 2 s, … (doubling, at most 10 s apart). One that
    reaches its deadline is given up, and the caller emits
    /nerve/reaction/expired with the id, target and rule.

    Reactions to groups and to all actors are sent once: the manager does
    not know which hosts should answer them.
    Engine thread only.
*/
#ifndef NERVE_MANAGER_DELIVERY_H
#define NERVE_MANAGER_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nerve/wire.h>

typedef struct pending {
    uint8_t id[NERVE_ID_SIZE];
    char topic[NERVE_TOPIC_MAX + 1];
    char rule[NERVE_NAME_MAX + 1];
    char fn[NERVE_NAME_MAX + 1];
    void *payload;            /* the encoded reaction, re-sent as is */
    size_t payload_len;
    uint64_t deadline_ns;     /* wall clock */
    uint64_t next_try_ms;     /* monotonic */
    uint64_t backoff_ms;
    uint32_t tries;
} pending_t;

typedef struct delivery_stats {
    uint64_t tracked;     /* ever added */
    uint64_t acked;       /* result received */
    uint64_t retried;     /* re-sends */
    uint64_t expired;
    uint64_t pending;     /* now */
} delivery_stats_t;

typedef struct delivery delivery_t;

delivery_t *delivery_new(void);
void delivery_destroy(delivery_t **self);

/*  Remembers a reaction just sent (copies the payload). 0 or NERVE_ENOMEM. */
int delivery_track(delivery_t *self, const char *topic, const uint8_t id[NERVE_ID_SIZE],
                   const char *rule, const char *fn, const void *payload, size_t len,
                   uint64_t deadline_ns, uint64_t now_ms);

/*  A result for `id` arrived from `host`: forget the reaction, if it was
    sent to that host (@host/<host>/). A result from any other host is
    ignored, so whoever can send events cannot cancel another host's
    retries. True if it was pending and is now acknowledged. */
bool delivery_ack(delivery_t *self, const uint8_t id[NERVE_ID_SIZE], const char *host);

/*  Re-sends what is due through resend(arg, p) (which returns 0 if the
    message was queued) and gives up what passed its deadline through
    expired(arg, p). */
void delivery_tick(delivery_t *self, uint64_t now_ms, uint64_t now_ns,
                   int (*resend)(void *arg, const pending_t *p),
                   void (*expired)(void *arg, const pending_t *p), void *arg);

void delivery_stats(const delivery_t *self, delivery_stats_t *out);

#endif
