/*  recent.c — the actor's recent-id cache (see recent.h).

    Slots live in one array; a doubly linked list over slot numbers keeps
    them oldest-first, and a free list holds unused ones. The index is an
    open-addressing table of slot numbers + 1 (0 = empty), at least twice
    the capacity and a power of two, probed linearly; deletion shifts the
    following run back (no tombstones, so probes stay short however many
    ids come and go).
*/
#include "recent.h"

#include <nerve/error.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define NIL UINT32_MAX

typedef struct slot {
    uint8_t id[NERVE_ID_SIZE];
    bool used;
    bool done;
    uint32_t prev, next; /* age order; NIL ends */
    char *blob;          /* tag then payload, when done */
    uint32_t tag_len;
    uint32_t payload_len;
} slot_t;

struct recent {
    slot_t *slots;
    uint32_t cap;
    uint32_t count;
    uint32_t oldest, newest;
    uint32_t free_head; /* through slot.next */
    uint32_t *index;    /* slot + 1, 0 = empty */
    size_t index_mask;
    size_t bytes, max_bytes;
    uint64_t evicted;
    uint64_t seed[2];
};

static size_t s_hash(const recent_t *self, const uint8_t *id)
{
    uint64_t a, b;
    memcpy(&a, id, 8);
    memcpy(&b, id + 8, 8);
    uint64_t h = (a ^ self->seed[0]) * 0x9e3779b97f4a7c15ull;
    h ^= (b ^ self->seed[1]) + (h >> 29);
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return (size_t)h & self->index_mask;
}

/*  The index position holding `id`, or SIZE_MAX. */
static size_t s_find(const recent_t *self, const uint8_t *id)
{
    for (size_t i = s_hash(self, id);; i = (i + 1) & self->index_mask) {
        uint32_t v = self->index[i];
        if (v == 0)
            return SIZE_MAX;
        if (memcmp(self->slots[v - 1].id, id, NERVE_ID_SIZE) == 0)
            return i;
    }
}

static void s_index_put(recent_t *self, uint32_t slot)
{
    size_t i = s_hash(self, self->slots[slot].id);
    while (self->index[i])
        i = (i + 1) & self->index_mask;
    self->index[i] = slot + 1;
}

/*  Removes index position i and shifts back the entries after it that
    would no longer be found. */
static void s_index_del(recent_t *self, size_t i)
{
    size_t hole = i;
    for (size_t j = (i + 1) & self->index_mask; self->index[j]; j = (j + 1) & self->index_mask) {
        size_t home = s_hash(self, self->slots[self->index[j] - 1].id);
        /* Entry j may move to the hole if its home is not in (hole, j]. */
        bool between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!between) {
            self->index[hole] = self->index[j];
            hole = j;
        }
    }
    self->index[hole] = 0;
}

static void s_unlink(recent_t *self, uint32_t s)
{
    slot_t *e = &self->slots[s];
    if (e->prev != NIL)
        self->slots[e->prev].next = e->next;
    else
        self->oldest = e->next;
    if (e->next != NIL)
        self->slots[e->next].prev = e->prev;
    else
        self->newest = e->prev;
    e->prev = e->next = NIL;
}

static void s_append(recent_t *self, uint32_t s)
{
    slot_t *e = &self->slots[s];
    e->prev = self->newest;
    e->next = NIL;
    if (self->newest != NIL)
        self->slots[self->newest].next = s;
    else
        self->oldest = s;
    self->newest = s;
}

static void s_release(recent_t *self, uint32_t s)
{
    slot_t *e = &self->slots[s];
    size_t at = s_find(self, e->id);
    if (at != SIZE_MAX)
        s_index_del(self, at);
    s_unlink(self, s);
    self->bytes -= (size_t)e->tag_len + e->payload_len;
    free(e->blob);
    memset(e, 0, sizeof *e);
    e->prev = NIL;
    e->next = self->free_head;
    self->free_head = s;
    self->count--;
}

/*  Evicts the oldest finished entry. False if every entry is pending. */
static bool s_evict_one(recent_t *self, uint32_t keep)
{
    for (uint32_t s = self->oldest; s != NIL; s = self->slots[s].next) {
        if (self->slots[s].done && s != keep) {
            s_release(self, s);
            self->evicted++;
            return true;
        }
    }
    return false;
}

/*  A free slot holding `id`, newest, pending; NIL when all are pending. */
static uint32_t s_insert(recent_t *self, const uint8_t *id)
{
    if (self->count == self->cap && !s_evict_one(self, NIL))
        return NIL;
    uint32_t s = self->free_head;
    self->free_head = self->slots[s].next;
    slot_t *e = &self->slots[s];
    memset(e, 0, sizeof *e);
    memcpy(e->id, id, NERVE_ID_SIZE);
    e->used = true;
    s_append(self, s);
    s_index_put(self, s);
    self->count++;
    return s;
}

recent_t *recent_new(size_t capacity, size_t max_bytes)
{
    if (capacity == 0 || capacity > (1u << 30))
        return NULL;
    recent_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    size_t isize = 4;
    while (isize < capacity * 2)
        isize <<= 1;
    self->slots = calloc(capacity, sizeof *self->slots);
    self->index = calloc(isize, sizeof *self->index);
    if (!self->slots || !self->index) {
        recent_destroy(&self);
        return NULL;
    }
    self->cap = (uint32_t)capacity;
    self->index_mask = isize - 1;
    self->max_bytes = max_bytes;
    self->oldest = self->newest = NIL;
    for (uint32_t i = 0; i < self->cap; i++) {
        self->slots[i].prev = NIL;
        self->slots[i].next = i + 1 < self->cap ? i + 1 : NIL;
    }
    self->free_head = 0;
    if (getrandom(self->seed, sizeof self->seed, GRND_NONBLOCK) != (ssize_t)sizeof self->seed) {
        /* Without entropy the hash still works; it is only less hardened. */
        self->seed[0] = (uint64_t)(uintptr_t)self ^ 0x243f6a8885a308d3ull;
        self->seed[1] = (uint64_t)(uintptr_t)self->slots ^ 0x13198a2e03707344ull;
    }
    return self;
}

void recent_destroy(recent_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    recent_t *self = *self_p;
    if (self->slots)
        for (uint32_t i = 0; i < self->cap; i++)
            free(self->slots[i].blob);
    free(self->slots);
    free(self->index);
    free(self);
    *self_p = NULL;
}

recent_state_t recent_claim(recent_t *self, const uint8_t id[NERVE_ID_SIZE], recent_result_t *out)
{
    size_t at = s_find(self, id);
    if (at != SIZE_MAX) {
        const slot_t *e = &self->slots[self->index[at] - 1];
        if (!e->done)
            return RECENT_PENDING;
        if (out) {
            out->tag = e->blob;
            out->tag_len = e->tag_len;
            out->payload = e->blob + e->tag_len;
            out->payload_len = e->payload_len;
        }
        return RECENT_DONE;
    }
    return s_insert(self, id) == NIL ? RECENT_FULL : RECENT_NEW;
}

int recent_complete(recent_t *self, const uint8_t id[NERVE_ID_SIZE], const char *tag,
                    size_t tag_len, const void *payload, size_t payload_len)
{
    if (tag_len > UINT32_MAX / 2 || payload_len > UINT32_MAX / 2)
        return NERVE_ERANGE;
    size_t at = s_find(self, id);
    uint32_t s = at != SIZE_MAX ? self->index[at] - 1 : s_insert(self, id);
    if (s == NIL)
        return NERVE_EFULL;
    slot_t *e = &self->slots[s];
    char *blob = malloc(tag_len + payload_len + 1);
    if (!blob) {
        s_release(self, s);
        return NERVE_ENOMEM;
    }
    memcpy(blob, tag, tag_len);
    if (payload_len)
        memcpy(blob + tag_len, payload, payload_len);
    self->bytes -= (size_t)e->tag_len + e->payload_len;
    free(e->blob);
    e->blob = blob;
    e->tag_len = (uint32_t)tag_len;
    e->payload_len = (uint32_t)payload_len;
    e->done = true;
    self->bytes += tag_len + payload_len;
    while (self->bytes > self->max_bytes && s_evict_one(self, s))
        ;
    return 0;
}

void recent_forget(recent_t *self, const uint8_t id[NERVE_ID_SIZE])
{
    size_t at = s_find(self, id);
    if (at != SIZE_MAX)
        s_release(self, self->index[at] - 1);
}

size_t recent_count(const recent_t *self)
{
    return self->count;
}

size_t recent_bytes(const recent_t *self)
{
    return self->bytes;
}

uint64_t recent_evicted(const recent_t *self)
{
    return self->evicted;
}
