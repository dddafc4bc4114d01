/*  presence.h — which actors are alive, from their heartbeats.

    Every actor sends /nerve/actor/<id>/alive every `heartbeat` seconds with
    data {groups, version, uptime_s, heartbeat_ms}. The manager keeps one
    entry per actor; the first heartbeat (or the first after being lost)
    makes it "joined", three silent intervals — the actor's own when it says
    (heartbeat_ms), else the manager's `heartbeat` — make it "lost". The caller turns those
    transitions into the events /nerve/actor/<id>/joined and …/lost, which
    rules may react to like any other.

    `target: glob:<pattern>` expands against the live actors here.
    Engine thread only.
*/
#ifndef NERVE_MANAGER_PRESENCE_H
#define NERVE_MANAGER_PRESENCE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nerve/wire.h>

#define PRESENCE_GROUPS_MAX 16

typedef struct actor_info {
    char id[NERVE_HOST_MAX + 1];
    char version[32];
    char groups[PRESENCE_GROUPS_MAX][64];
    size_t ngroups;
    uint64_t uptime_s;
    uint64_t heartbeat_ms;   /* the actor's own interval (data.heartbeat_ms), 0: unknown */
    uint64_t last_seen_ms;   /* monotonic */
    uint64_t last_seen_ns;   /* wall clock, for display */
    uint64_t joined_ns;
} actor_info_t;

typedef struct presence presence_t;

presence_t *presence_new(uint64_t heartbeat_ms);
void presence_destroy(presence_t **self);

/*  If `tag` is /nerve/actor/<id>/alive, records the heartbeat and returns
    true; *joined is set when the actor was not live before. */
bool presence_on_event(presence_t *self, const char *tag, const msgpack_object *data,
                       uint64_t now_ms, bool *joined, char *id, size_t idsize);

/*  Removes actors silent for three heartbeats; calls lost(arg, id) for
    each. */
void presence_expire(presence_t *self, uint64_t now_ms,
                     void (*lost)(void *arg, const char *id), void *arg);

/*  Calls fn for each live actor whose id matches the glob (fnmatch). */
size_t presence_match(const presence_t *self, const char *glob,
                      void (*fn)(void *arg, const actor_info_t *actor), void *arg);

/*  All live actors, for `nerve actors`. */
size_t presence_count(const presence_t *self);
const actor_info_t *presence_at(const presence_t *self, size_t i);

#endif
