/*  delivery.c — pending host reactions and their retries (see delivery.h).

    Pending reactions sit in an array; acks find theirs through an open
    addressing hash on the id (ids are random, so their first 8 bytes are
    a good hash). A tick walks the array only when something is due: the
    earliest retry time (monotonic) and the earliest deadline (wall clock,
    as the reactions carry it) are cached, each in its own clock.
*/
#include "delivery.h"

#include <nerve/error.h>

#include <stdlib.h>
#include <string.h>

#define FIRST_BACKOFF_MS 500
#define MAX_BACKOFF_MS 10000

struct delivery {
    pending_t **items;       /* dense array of pending */
    size_t count, cap;
    size_t *slots;           /* hash: index+1 into items, 0 = empty, SIZE_MAX = deleted */
    size_t nslots;
    size_t tombs;            /* deleted slots, cleared by a rehash */
    uint64_t next_due_ms;       /* earliest retry, monotonic */
    uint64_t next_deadline_ns;  /* earliest deadline, wall clock */
    delivery_stats_t stats;
};

delivery_t *delivery_new(void)
{
    delivery_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->nslots = 1024;
    self->slots = calloc(self->nslots, sizeof *self->slots);
    if (!self->slots) {
        free(self);
        return NULL;
    }
    return self;
}

void delivery_destroy(delivery_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    delivery_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++) {
        free(self->items[i]->payload);
        free(self->items[i]);
    }
    free(self->items);
    free(self->slots);
    free(self);
    *self_p = NULL;
}

static size_t s_hash(const uint8_t *id)
{
    uint64_t h;
    memcpy(&h, id, sizeof h);
    return (size_t)(h ^ (h >> 29));
}

/*  The slot holding id, or the first free one on its probe path. */
static size_t *s_slot(delivery_t *self, const uint8_t *id, bool for_insert)
{
    size_t mask = self->nslots - 1, i = s_hash(id) & mask;
    size_t *tomb = NULL;
    for (size_t probes = 0; probes < self->nslots; probes++, i = (i + 1) & mask) {
        size_t v = self->slots[i];
        if (v == 0)
            return for_insert && tomb ? tomb : &self->slots[i];
        if (v == SIZE_MAX) {
            if (!tomb)
                tomb = &self->slots[i];
            continue;
        }
        if (memcmp(self->items[v - 1]->id, id, NERVE_ID_SIZE) == 0)
            return &self->slots[i];
    }
    return tomb;
}

static int s_rehash(delivery_t *self, size_t nslots)
{
    size_t *slots = calloc(nslots, sizeof *slots);
    if (!slots)
        return NERVE_ENOMEM;
    free(self->slots);
    self->slots = slots;
    self->nslots = nslots;
    self->tombs = 0;
    for (size_t i = 0; i < self->count; i++)
        *s_slot(self, self->items[i]->id, true) = i + 1;
    return 0;
}

int delivery_track(delivery_t *self, const char *topic, const uint8_t id[NERVE_ID_SIZE],
                   const char *rule, const char *fn, const void *payload, size_t len,
                   uint64_t deadline_ns, uint64_t now_ms)
{
    if ((self->count + self->tombs + 1) * 2 > self->nslots) {
        size_t nslots = (self->count + 1) * 4 > self->nslots ? self->nslots * 2 : self->nslots;
        if (s_rehash(self, nslots) != 0)
            return NERVE_ENOMEM;
    }
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 64;
        pending_t **grown = realloc(self->items, cap * sizeof *grown);
        if (!grown)
            return NERVE_ENOMEM;
        self->items = grown;
        self->cap = cap;
    }
    pending_t *p = calloc(1, sizeof *p);
    void *copy = malloc(len ? len : 1);
    if (!p || !copy) {
        free(p);
        free(copy);
        return NERVE_ENOMEM;
    }
    memcpy(copy, payload, len);
    memcpy(p->id, id, NERVE_ID_SIZE);
    strncpy(p->topic, topic, sizeof p->topic - 1);
    strncpy(p->rule, rule, sizeof p->rule - 1);
    strncpy(p->fn, fn, sizeof p->fn - 1);
    p->payload = copy;
    p->payload_len = len;
    p->deadline_ns = deadline_ns;
    p->backoff_ms = FIRST_BACKOFF_MS;
    p->next_try_ms = now_ms + p->backoff_ms;
    p->tries = 1;
    self->items[self->count++] = p;
    size_t *slot = s_slot(self, id, true);
    if (*slot == SIZE_MAX)
        self->tombs--;
    *slot = self->count;
    if (!self->next_due_ms || p->next_try_ms < self->next_due_ms)
        self->next_due_ms = p->next_try_ms;
    if (!self->next_deadline_ns || deadline_ns < self->next_deadline_ns)
        self->next_deadline_ns = deadline_ns;
    self->stats.tracked++;
    return 0;
}

/*  Removes items[i], keeping the array dense and the hash right. */
static void s_remove(delivery_t *self, size_t i)
{
    pending_t *p = self->items[i];
    size_t *slot = s_slot(self, p->id, false);
    if (slot) {
        *slot = SIZE_MAX;
        self->tombs++;
    }
    size_t last = self->count - 1;
    if (i != last) {
        self->items[i] = self->items[last];
        size_t *moved = s_slot(self, self->items[i]->id, false);
        if (moved)
            *moved = i + 1;
    }
    self->count--;
    free(p->payload);
    free(p);
}

/*  True if topic is "@host/<host>/". */
static bool s_topic_is_host(const char *topic, const char *host)
{
    size_t n = strlen(host);
    return strncmp(topic, "@host/", 6) == 0 && strncmp(topic + 6, host, n) == 0 &&
           strcmp(topic + 6 + n, "/") == 0;
}

bool delivery_ack(delivery_t *self, const uint8_t id[NERVE_ID_SIZE], const char *host)
{
    size_t *slot = s_slot(self, id, false);
    if (!slot || *slot == 0 || *slot == SIZE_MAX)
        return false;
    if (!host || !s_topic_is_host(self->items[*slot - 1]->topic, host))
        return false;
    s_remove(self, *slot - 1);
    self->stats.acked++;
    return true;
}

void delivery_tick(delivery_t *self, uint64_t now_ms, uint64_t now_ns,
                   int (*resend)(void *arg, const pending_t *p),
                   void (*expired)(void *arg, const pending_t *p), void *arg)
{
    if (self->count == 0 || (now_ms < self->next_due_ms && now_ns < self->next_deadline_ns))
        return;
    uint64_t next = 0, next_deadline = 0;
    for (size_t i = 0; i < self->count;) {
        pending_t *p = self->items[i];
        if (now_ns >= p->deadline_ns) {
            self->stats.expired++;
            expired(arg, p);
            s_remove(self, i);
            continue;
        }
        if (now_ms >= p->next_try_ms) {
            if (resend(arg, p) == 0) {
                p->tries++;
                self->stats.retried++;
            }
            p->backoff_ms = p->backoff_ms * 2 > MAX_BACKOFF_MS ? MAX_BACKOFF_MS
                                                               : p->backoff_ms * 2;
            p->next_try_ms = now_ms + p->backoff_ms;
        }
        if (!next || p->next_try_ms < next)
            next = p->next_try_ms;
        if (!next_deadline || p->deadline_ns < next_deadline)
            next_deadline = p->deadline_ns;
        i++;
    }
    self->next_due_ms = next;
    self->next_deadline_ns = next_deadline;
}

void delivery_stats(const delivery_t *self, delivery_stats_t *out)
{
    *out = self->stats;
    out->pending = self->count;
}
