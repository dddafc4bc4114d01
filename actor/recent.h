/*  recent.h — the reaction ids an actor has seen lately, and their results.

    The manager delivers a host's reaction at least once: it re-publishes it
    with the same id until a result comes back. The actor turns that into
    "runs once" by remembering each id it took:

      - a new id is claimed (RECENT_NEW) and marked pending while it waits
        for a worker and runs;
      - a repeat of a pending id is ignored (RECENT_PENDING): its result is
        on the way;
      - a repeat of a finished id (RECENT_DONE) gets the very same result
        event back, without running again — the first result was probably
        lost with a restarting publisher or manager.

    Memory is bounded twice: at most `capacity` ids and `max_bytes` of
    stored results. The oldest finished entries go first; pending ones are
    never evicted (there are at most queue + workers of them). Forgetting
    an old id is safe once its reaction's deadline has passed, because the
    actor drops a reaction past its deadline before asking here; the
    bounds only need to cover the ids of one deadline window (60 s by
    default), which 16k ids do at hundreds of reactions per second.

    Lookups are a hash of the id (seeded per process, so ids chosen to
    collide cannot slow it down) with linear probing; order is a linked
    list over the slots. Nothing allocates per lookup; storing a result
    copies it once.

    Threading: one thread (the actor's loop) owns a cache.
*/
#ifndef NERVE_ACTOR_RECENT_H
#define NERVE_ACTOR_RECENT_H

#include <stddef.h>
#include <stdint.h>

#include <nerve/wire.h>

#define RECENT_DEFAULT_CAPACITY  16384
#define RECENT_DEFAULT_MAX_BYTES (64u << 20)

typedef enum recent_state {
    RECENT_NEW = 0, /* not seen: now claimed, pending */
    RECENT_PENDING, /* claimed earlier, no result yet */
    RECENT_DONE,    /* finished: *out holds its result event */
    RECENT_FULL,    /* not seen, and every slot is pending: not claimed */
} recent_state_t;

/*  A stored result event: its two frames. Points into the cache; valid
    until the next call that changes the cache. */
typedef struct recent_result {
    const char *tag;
    size_t tag_len;
    const void *payload;
    size_t payload_len;
} recent_result_t;

typedef struct recent recent_t;

/*  Returns a cache of at most `capacity` ids (≥ 1) and `max_bytes` of
    stored results, or NULL on OOM. */
recent_t *recent_new(size_t capacity, size_t max_bytes);

/*  Frees the cache and sets *self to NULL. Safe on NULL and twice. */
void recent_destroy(recent_t **self);

/*  Looks `id` up; claims it when new (see recent_state_t). For RECENT_DONE
    fills *out (out may be NULL). A new claim may evict the oldest finished
    id. */
recent_state_t recent_claim(recent_t *self, const uint8_t id[NERVE_ID_SIZE], recent_result_t *out);

/*  Stores the result event of `id` (a copy of both frames) and marks it
    done; an id not present is added. Then evicts the oldest other finished
    ids while the stored bytes exceed max_bytes. Returns 0, NERVE_EFULL (an
    id not present, and every slot pending), NERVE_ERANGE (frames over
    2 GiB) or NERVE_ENOMEM (the id is then forgotten, so a repeat runs
    again rather than be ignored forever). */
int recent_complete(recent_t *self, const uint8_t id[NERVE_ID_SIZE], const char *tag,
                    size_t tag_len, const void *payload, size_t payload_len);

/*  Forgets `id` (e.g. its job was dropped unrun at shutdown). */
void recent_forget(recent_t *self, const uint8_t id[NERVE_ID_SIZE]);

/*  Ids held, stored result bytes, and ids evicted since creation. */
size_t recent_count(const recent_t *self);
size_t recent_bytes(const recent_t *self);
uint64_t recent_evicted(const recent_t *self);

#endif
