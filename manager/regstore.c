/*  regstore.c — register state: a hash table in front of LMDB, and a writer
    thread that group-commits what changed.

    The engine thread owns the cache. Each entry holds a key, its value (or
    "absent"), and two marks: `dirty` (changed since it was last handed to
    the writer) and `flight` (the sequence number of the last batch that
    carried its value). An entry may be evicted only when it is clean and
    that batch has come back committed; otherwise a miss would read a stale
    value from LMDB. Dirty entries wait in a FIFO list, so a flush costs the
    size of the dirty set, not of the cache.

    The engine and the writer share one batch and a three-state handshake
    under a mutex: IDLE (the engine may fill the batch), BUSY (the writer
    owns it), DONE (the writer is finished; the engine collects the result).
    Only one batch is in flight, so a flush that finds the writer BUSY just
    returns, and the batch's buffers are reused from tick to tick. A batch
    holds copies, so puts made while it is written need no care. A failed
    batch (map full, I/O error) sends its entries back to the dirty list
    unless they were changed again meanwhile.

    The cache is an open-addressing table (linear probing, at most half
    full) of 8-byte slots, each an entry's address with 8 bits of its hash
    (slot_t below): a lookup costs one cache miss for the slot and one for
    the entry, where chained buckets cost one more per link — with 100,000
    live states that was a fifth of the engine's time. The server hides
    even those two by prefetching a group of events' states ahead
    (regstore_prefetch()).

    Eviction is a CLOCK sweep over the slots: an access sets `ref`, the
    sweep clears it, and drops clean entries it finds already cleared. It
    runs only from regstore_flush(), which is what lets regstore_get() hand
    out pointers into the cache.
*/
#define _GNU_SOURCE /* pthread_setname_np() */
#include "regstore.h"

#include "keysort.h"

#include <nerve/daemon.h>
#include <nerve/error.h>
#include <nerve/log.h>

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_LOG_ID           "regstore"
#define S_SLOTS_MIN        2048
#define S_BATCH_MAX_RECS   65536
#define S_BATCH_MAX_BYTES  ((size_t)64 << 20)
#define S_EVICT_MAX_VISITS ((size_t)1 << 18)
#define S_SUBMIT_AHEAD     8 /* entries s_submit() prefetches ahead */

static nerve_ratelimit_t s_rl_address = NERVE_RATELIMIT_INIT(1000);
/* Arenas up to this size are kept between batches: under steady load every
   batch is about as large as the last, and freeing and faulting the pages
   back in cost the engine thread more than the memory is worth. */
#define S_BATCH_KEEP_BYTES S_BATCH_MAX_BYTES

/*  One allocation holds the entry, its key and, right after, room for the
    value it was created with: register states keep their size, so a get
    usually touches one or two cache lines. A value that outgrows the room
    moves to a buffer of its own (`val` then no longer points inside). */
typedef struct s_entry {
    uint64_t hash;
    uint64_t flight; /* seq of the last batch that carried the value; 0: none */
    uint8_t *val;    /* the inline room, or an own buffer */
    uint32_t vlen, vcap;
    uint16_t klen;
    uint8_t present; /* 0: the key has no value ("absent" is cached too) */
    uint8_t dirty;
    uint8_t ref; /* accessed since the CLOCK hand last passed */
    uint8_t key[];
} entry_t;

static inline uint8_t *s_inline_val(entry_t *e)
{
    return e->key + ((e->klen + 7u) & ~7u);
}

/*  A slot of the table: the entry's address with 8 bits of its hash in
    bits 48-55, so that a probe past other keys rarely touches their
    entries; 0 is empty. Bits 48-55 of a user-space address are 0 on
    x86-64 and arm64, and the top byte, where arm64 memory tagging (and
    x86 LAM57) put a pointer's tag, is kept as it is. Eight bytes a slot
    keep the table small enough to stay in cache: it is read on every
    event. */
typedef uint64_t slot_t;

#define S_SLOT_TAG_SHIFT 48
#define S_SLOT_TAG_MASK  (UINT64_C(0xff) << S_SLOT_TAG_SHIFT)

static inline entry_t *s_slot_entry(slot_t sl)
{
    return (entry_t *)(uintptr_t)(sl & ~S_SLOT_TAG_MASK);
}

/*  LeakSanitizer finds live blocks by the pointers it sees in memory, and
    a tagged slot is not one: under ASan every tag is 0, so a store kept
    open between a test's checks (fuzz_control) is not reported as leaks.
    Lookups then compare more keys, and find the same entries. */
#if defined(__SANITIZE_ADDRESS__)
#define S_SLOT_TAGS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define S_SLOT_TAGS 0
#endif
#endif
#ifndef S_SLOT_TAGS
#define S_SLOT_TAGS 1
#endif

static inline uint64_t s_slot_tag(uint64_t hash)
{
    return S_SLOT_TAGS ? hash >> 56 : 0; /* bits the table index (the low ones) does not use */
}

static inline uint64_t s_slot_tag_of(slot_t sl)
{
    return (sl & S_SLOT_TAG_MASK) >> S_SLOT_TAG_SHIFT;
}

static inline slot_t s_slot_make(entry_t *e)
{
    return (s_slot_tag(e->hash) << S_SLOT_TAG_SHIFT) | (uint64_t)(uintptr_t)e;
}

typedef struct {
    uint64_t hash;
    size_t off;  /* value at arena + off */
    uint32_t koff; /* key at keys + koff */
    uint32_t klen, vlen;
    bool del;
} record_t;

typedef struct {
    uint64_t seq;
    record_t *recs;
    size_t nrecs, rcap;
    uint8_t *arena; /* values */
    size_t used, acap;
    uint8_t *keys; /* keys, apart so that sorting them stays in cache */
    size_t kused, kcap;
    /* The writer's sort scratch (s_sort_batch()). */
    keysort_key_t *skeys;
    uint32_t *order;
    size_t scap;
    int rc; /* set by the writer: 0 or a nerve_err */
} batch_t;

typedef enum { WRITER_IDLE, WRITER_BUSY, WRITER_DONE } writer_state_t;

struct regstore {
    char *dir;
    int dirfd; /* holds the flock that keeps other openers out */
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *rtxn; /* the engine's read txn for misses, reset when idle */
    size_t maxkey;
    size_t mapsize;
    uint64_t seed;

    /* The cache: engine thread only. */
    slot_t *slots;
    size_t nslots; /* a power of two, at least twice count */
    size_t count;
    size_t hand; /* CLOCK hand: the next slot the sweep visits */
    entry_t *last; /* the entry the last lookup found: a get and then a
                      put of the same key (the engine's pattern) probe once */
    size_t max_entries;
    entry_t **dirty; /* FIFO of dirty entries */
    size_t ndirty, dirty_cap;
    uint64_t next_seq; /* seq of the next batch (starts at 1) */
    uint64_t done_seq; /* seq of the last batch collected */
    size_t inflight;   /* records in the batch the writer holds */
    batch_t batch;

    /* Shared with the writer, under mutex. */
    pthread_t writer;
    bool writer_started;
    pthread_mutex_t mutex;
    pthread_cond_t wake; /* engine → writer: a batch or stop */
    pthread_cond_t done; /* writer → engine: the batch is done */
    writer_state_t wstate;
    bool stop;
    uint64_t commits, commit_errors, entries_written;
    uint64_t last_commit_us, max_commit_us, total_commit_us;
    nerve_histo_t commit_seconds;

    /* Writer thread only. */
    bool failing;
    nerve_ratelimit_t rl;
};

/* ---------------------------------------------------------------------- */
/*  Hashing: a seeded multiply-mix (wyhash's core). Keys come from event
    hosts and tags, so the seed is random per store to keep chains short
    against crafted names. */

static inline uint64_t s_mum(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t s_read8(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t s_read4(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/*  wyhash's shape: 16 bytes a round, and the tail read as (overlapping)
    fixed-size words, so that no byte count reaches memcpy() as a variable
    (which would be a call per key). */
static uint64_t s_hash(uint64_t seed, const uint8_t *p, size_t n)
{
    const uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull;
    uint64_t h = seed, len = n;
    const uint8_t *end = p + n;
    while (n > 16) {
        h = s_mum(s_read8(p) ^ k0, s_read8(p + 8) ^ h);
        p += 16;
        n -= 16;
    }
    uint64_t a = 0, b = 0;
    if (n > 8) {
        a = s_read8(p);
        b = s_read8(end - 8); /* overlaps a when n < 16 */
    } else if (n >= 4) {
        a = s_read4(p) << 32 | s_read4(end - 4);
    } else if (n > 0) {
        a = (uint64_t)p[0] << 16 | (uint64_t)p[n >> 1] << 8 | p[n - 1];
    }
    h = s_mum(a ^ k0, b ^ h ^ k1);
    return s_mum(h ^ k1, len ^ k0);
}

static uint64_t s_random_seed(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = nerve_clock_mono_ns() ^ ((uint64_t)getpid() << 32);
    return seed | 1;
}

/* ---------------------------------------------------------------------- */
/*  The cache. */

static entry_t *s_find(regstore_t *self, const uint8_t *key, size_t klen, uint64_t hash)
{
    entry_t *last = self->last;
    if (last && last->hash == hash && last->klen == klen && memcmp(last->key, key, klen) == 0)
        return last;
    size_t mask = self->nslots - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        slot_t sl = self->slots[i];
        if (!sl)
            return NULL;
        entry_t *e = s_slot_entry(sl);
        if (s_slot_tag_of(sl) == s_slot_tag(hash) && e->hash == hash && e->klen == klen &&
            memcmp(e->key, key, klen) == 0)
            return self->last = e;
    }
}

/*  The entry for key, or NULL, and the key's hash in *hash. The memo
    is checked first by the key itself, so the engine's put after a get
    of the same key costs no hashing at all. */
static entry_t *s_lookup(regstore_t *self, const uint8_t *key, size_t klen, uint64_t *hash)
{
    entry_t *last = self->last;
    if (last && last->klen == klen && memcmp(last->key, key, klen) == 0) {
        *hash = last->hash;
        return last;
    }
    *hash = s_hash(self->seed, key, klen);
    return s_find(self, key, klen, *hash);
}

/*  Puts e in the first free slot of its probe sequence. */
static void s_place(slot_t *slots, size_t mask, entry_t *e)
{
    size_t i = e->hash & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = s_slot_make(e);
}

/*  Doubles the table. A failed allocation leaves it fuller than half,
    which only lengthens probes, so it is not an error. */
static void s_grow(regstore_t *self)
{
    size_t n = self->nslots * 2;
    slot_t *slots = calloc(n, sizeof *slots);
    if (!slots)
        return;
    for (size_t i = 0; i < self->nslots; i++)
        if (self->slots[i])
            s_place(slots, n - 1, s_slot_entry(self->slots[i]));
    free(self->slots);
    self->slots = slots;
    self->nslots = n;
    self->hand &= n - 1;
}

/*  Empties slot i and moves later entries of its probe run back, so that
    no lookup meets a hole before its key (backward-shift deletion). */
static void s_unslot(regstore_t *self, size_t i)
{
    size_t mask = self->nslots - 1;
    size_t j = i;
    for (;;) {
        self->slots[i] = 0;
        for (;;) {
            j = (j + 1) & mask;
            if (!self->slots[j])
                return;
            size_t home = s_slot_entry(self->slots[j])->hash & mask;
            /* Stays if its home lies cyclically in (i, j]. */
            if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
                continue;
            break;
        }
        self->slots[i] = self->slots[j];
        i = j;
    }
}

/*  Creates a clean, absent entry with inline room for a vcap-byte value and
    inserts it. Returns NULL (inserting nothing) when out of memory. */
static entry_t *s_entry_new(regstore_t *self, const uint8_t *key, size_t klen, uint64_t hash,
                            size_t vcap)
{
    if (2 * (self->count + 1) > self->nslots)
        s_grow(self);
    if (self->count + 1 >= self->nslots)
        return NULL; /* could not grow, and no free slot would be left */
    vcap = (vcap + 15) & ~(size_t)15;
    entry_t *e = malloc(sizeof *e + ((klen + 7) & ~(size_t)7) + vcap);
    if (!e)
        return NULL;
    if ((uint64_t)(uintptr_t)e & S_SLOT_TAG_MASK) {
        /* A 57-bit address space (5-level paging) with an address above
           2^48: Linux hands those out only to a process that asks. */
        NERVE_LOG_RL(&s_rl_address, NERVE_LOG_ERROR, S_LOG_ID,
                     "%s: malloc returned an address using bits 48-55: register states "
                     "cannot be cached",
                     self->dir);
        free(e);
        return NULL;
    }
    *e = (entry_t){.hash = hash, .klen = (uint16_t)klen, .vcap = (uint32_t)vcap};
    memcpy(e->key, key, klen);
    e->val = s_inline_val(e);
    s_place(self->slots, self->nslots - 1, e);
    self->count++;
    return self->last = e;
}

static void s_entry_free(entry_t *e)
{
    if (e->val != s_inline_val(e))
        free(e->val);
    free(e);
}

/*  Copies a value into e. On NERVE_ENOMEM e keeps its old value. */
static int s_entry_set(entry_t *e, const void *val, size_t vlen)
{
    if (vlen > e->vcap) {
        size_t cap = (vlen + 31) & ~(size_t)31;
        bool own = e->val != s_inline_val(e);
        uint8_t *p = own ? realloc(e->val, cap) : malloc(cap);
        if (!p)
            return NERVE_ENOMEM;
        e->val = p;
        e->vcap = (uint32_t)cap;
    }
    if (vlen > 0)
        memcpy(e->val, val, vlen);
    e->vlen = (uint32_t)vlen;
    e->present = 1;
    return NERVE_OK;
}

/*  Makes sure the dirty list can take one more entry, plus every entry of
    the batch in flight, which a failed commit sends back: that path cannot
    fail for lack of memory. */
static int s_dirty_reserve(regstore_t *self)
{
    size_t need = self->ndirty + self->inflight + 1;
    if (need <= self->dirty_cap)
        return NERVE_OK;
    size_t cap = self->dirty_cap ? self->dirty_cap : 1024;
    while (cap < need)
        cap *= 2;
    entry_t **p = realloc(self->dirty, cap * sizeof *p);
    if (!p)
        return NERVE_ENOMEM;
    self->dirty = p;
    self->dirty_cap = cap;
    return NERVE_OK;
}

static void s_mark_dirty(regstore_t *self, entry_t *e)
{
    e->ref = 1;
    if (!e->dirty) {
        e->dirty = 1;
        self->dirty[self->ndirty++] = e;
    }
}

static int s_check_key(regstore_t *self, const void *key, size_t klen)
{
    if (!self || !key || klen == 0)
        return NERVE_EINVAL;
    if (klen > self->maxkey)
        return NERVE_ERANGE;
    return NERVE_OK;
}

/*  Reads a key missing from the cache from LMDB and caches the answer. */
static int s_load(regstore_t *self, const uint8_t *key, size_t klen, uint64_t hash, entry_t **out)
{
    int rc = mdb_txn_renew(self->rtxn);
    if (rc != 0) {
        NERVE_ERROR(S_LOG_ID, "%s: cannot start a read txn: %s", self->dir, mdb_strerror(rc));
        return NERVE_EIO;
    }
    MDB_val k = {.mv_size = klen, .mv_data = (void *)key}, v = {0};
    rc = mdb_get(self->rtxn, self->dbi, &k, &v);
    int ret = NERVE_OK;
    entry_t *e = NULL;
    if (rc == 0 && v.mv_size > UINT32_MAX) {
        NERVE_ERROR(S_LOG_ID, "%s: stored value of %zu bytes is too large", self->dir, v.mv_size);
        ret = NERVE_EIO;
    } else if (rc == 0 || rc == MDB_NOTFOUND) {
        e = s_entry_new(self, key, klen, hash, rc == 0 ? v.mv_size : 0);
        if (!e)
            ret = NERVE_ENOMEM;
        else if (rc == 0)
            s_entry_set(e, v.mv_data, v.mv_size); /* cannot fail: room was made */
    } else {
        NERVE_ERROR(S_LOG_ID, "%s: cannot read a register: %s", self->dir, mdb_strerror(rc));
        ret = NERVE_EIO;
    }
    /* Reset at once: an open read txn would pin old pages and grow the file. */
    mdb_txn_reset(self->rtxn);
    *out = e;
    return ret;
}

/*  Drops clean, committed, unreferenced entries until the cache is 1/8
    below its limit. The work per call is bounded (two sweeps, and never
    more than S_EVICT_MAX_VISITS slots): a cache that is mostly dirty
    because the writer is failing costs each flush a millisecond at most,
    and the sweep goes on at the next flush. */
static void s_evict(regstore_t *self)
{
    if (self->count <= self->max_entries)
        return;
    if (self->count <= self->ndirty + self->inflight)
        return; /* nothing can go */
    size_t target = self->max_entries - self->max_entries / 8;
    size_t budget = 8 * (self->count - target);
    if (budget < 4096)
        budget = 4096;
    if (budget > 2 * self->nslots)
        budget = 2 * self->nslots;
    if (budget > S_EVICT_MAX_VISITS)
        budget = S_EVICT_MAX_VISITS;
    self->last = NULL;
    /* The budget counts slots passed; a drop stays on its slot. */
    while (self->count > target && budget > 0) {
        entry_t *e = s_slot_entry(self->slots[self->hand]);
        bool pinned = e && (e->dirty || e->flight > self->done_seq);
        if (!e || pinned || e->ref) {
            if (e && !pinned)
                e->ref = 0;
            self->hand = (self->hand + 1) & (self->nslots - 1);
            budget--;
        } else {
            /* The slot gets a later entry of its run: look at it again. */
            s_unslot(self, self->hand);
            s_entry_free(e);
            self->count--;
        }
    }
}

/* ---------------------------------------------------------------------- */
/*  Batches: the engine fills one, the writer commits it. */

/*  Grows *buf (capacity *cap) to hold need bytes, doubling. */
static int s_bytes_reserve(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return NERVE_OK;
    size_t n = *cap ? *cap : 64 * 1024;
    while (n < need)
        n *= 2;
    uint8_t *p = realloc(*buf, n);
    if (!p)
        return NERVE_ENOMEM;
    *buf = p;
    *cap = n;
    return NERVE_OK;
}

static int s_batch_reserve(batch_t *b, size_t klen, size_t vlen)
{
    if (b->nrecs == b->rcap) {
        size_t cap = b->rcap ? b->rcap * 2 : 1024;
        record_t *p = realloc(b->recs, cap * sizeof *p);
        if (!p)
            return NERVE_ENOMEM;
        b->recs = p;
        b->rcap = cap;
    }
    if (s_bytes_reserve(&b->keys, &b->kcap, b->kused + klen) < 0)
        return NERVE_ENOMEM;
    return s_bytes_reserve(&b->arena, &b->acap, b->used + vlen);
}

/*  Moves dirty entries, oldest first, into the batch and wakes the writer.
    The writer must be IDLE. Returns NERVE_ENOMEM if not even one entry
    fit; the entries left over simply stay dirty. */
static int s_submit(regstore_t *self)
{
    batch_t *b = &self->batch;
    b->nrecs = 0;
    b->used = 0;
    b->kused = 0;
    b->rc = 0;
    b->seq = self->next_seq;
    size_t taken = 0;
    while (taken < self->ndirty && b->nrecs < S_BATCH_MAX_RECS &&
           b->used + b->kused < S_BATCH_MAX_BYTES) {
        entry_t *e = self->dirty[taken];
        if (taken + S_SUBMIT_AHEAD < self->ndirty) {
            /* The entries were last touched long ago (a commit's worth of
               events): load a few ahead so their misses overlap. */
            const char *next = (const char *)self->dirty[taken + S_SUBMIT_AHEAD];
            __builtin_prefetch(next);
            __builtin_prefetch(next + 64);
            __builtin_prefetch(next + 128);
            __builtin_prefetch(next + 192);
        }
        size_t vlen = e->present ? e->vlen : 0;
        if (s_batch_reserve(b, e->klen, vlen) < 0)
            break;
        record_t *r = &b->recs[b->nrecs++];
        *r = (record_t){.hash = e->hash,
                        .off = b->used,
                        .koff = (uint32_t)b->kused,
                        .klen = e->klen,
                        .vlen = (uint32_t)vlen,
                        .del = !e->present};
        memcpy(b->keys + b->kused, e->key, e->klen);
        if (vlen > 0)
            memcpy(b->arena + b->used, e->val, vlen);
        b->kused += e->klen;
        b->used += vlen;
        e->dirty = 0;
        e->flight = b->seq;
        taken++;
    }
    if (taken == 0) {
        if (self->ndirty == 0)
            return NERVE_OK;
        NERVE_ERROR(S_LOG_ID, "%s: out of memory building a commit batch", self->dir);
        return NERVE_ENOMEM;
    }
    self->ndirty -= taken;
    memmove(self->dirty, self->dirty + taken, self->ndirty * sizeof *self->dirty);
    self->next_seq++;
    self->inflight = b->nrecs;

    pthread_mutex_lock(&self->mutex);
    self->wstate = WRITER_BUSY;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->mutex);
    return NERVE_OK;
}

/*  A batch failed: its entries are dirty again, except those changed since
    (already dirty, or carried by a later batch). In-flight entries are
    never evicted, so each is still in the cache. */
static void s_redirty(regstore_t *self, const batch_t *b)
{
    for (size_t i = 0; i < b->nrecs; i++) {
        const record_t *r = &b->recs[i];
        entry_t *e = s_find(self, b->keys + r->koff, r->klen, r->hash);
        if (e && e->flight == b->seq && !e->dirty) {
            e->dirty = 1;
            self->dirty[self->ndirty++] = e; /* room reserved by s_dirty_reserve */
        }
    }
}

/*  Takes the writer's result if it has one, waiting for it if `wait`.
    Returns true if the writer is idle afterwards; *batch_rc gets the
    collected batch's result (0 if none was collected). */
static bool s_collect(regstore_t *self, bool wait, int *batch_rc)
{
    *batch_rc = NERVE_OK;
    pthread_mutex_lock(&self->mutex);
    while (wait && self->wstate == WRITER_BUSY)
        pthread_cond_wait(&self->done, &self->mutex);
    writer_state_t state = self->wstate;
    if (state == WRITER_DONE)
        self->wstate = WRITER_IDLE;
    pthread_mutex_unlock(&self->mutex);
    if (state == WRITER_BUSY)
        return false;
    if (state == WRITER_DONE) {
        batch_t *b = &self->batch;
        *batch_rc = b->rc;
        if (b->rc < 0)
            s_redirty(self, b);
        self->done_seq = b->seq;
        self->inflight = 0;
        if (b->acap + b->kcap > S_BATCH_KEEP_BYTES) { /* a burst: give the memory back */
            free(b->arena);
            b->arena = NULL;
            b->acap = 0;
            free(b->keys);
            b->keys = NULL;
            b->kcap = 0;
            free(b->recs);
            b->recs = NULL;
            b->rcap = 0;
            b->nrecs = 0;
        }
    }
    return true;
}

/* ---------------------------------------------------------------------- */
/*  The writer thread. */

/*  Puts the batch's records in key order into b->order (the writer's
    scratch, kept between batches). Returns false if there was no memory
    for it: the batch is then written in the order it came. */
static bool s_sort_batch(batch_t *b)
{
    if (b->nrecs > b->scap) {
        keysort_key_t *k = realloc(b->skeys, b->nrecs * sizeof *k);
        if (k)
            b->skeys = k;
        uint32_t *o = realloc(b->order, b->nrecs * sizeof *o);
        if (o)
            b->order = o;
        if (!k || !o)
            return false;
        b->scap = b->nrecs;
    }
    for (size_t i = 0; i < b->nrecs; i++)
        b->skeys[i] = (keysort_key_t){b->keys + b->recs[i].koff, b->recs[i].klen};
    return keysort(b->skeys, b->nrecs, b->order) == NERVE_OK;
}

/*  Writes the batch in one transaction. The records are sorted first and
    written through one cursor: LMDB then finds each key from the leaf the
    previous one left it on instead of descending from the root, and the
    pages it copies are touched in order — under load a batch covers most
    of the store, and this makes a commit several times cheaper. */
static int s_commit(regstore_t *self, batch_t *b, int *lmdb_rc)
{
    bool sorted = s_sort_batch(b);
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (rc == 0)
        rc = mdb_cursor_open(txn, self->dbi, &cur);
    for (size_t i = 0; rc == 0 && i < b->nrecs; i++) {
        const record_t *r = &b->recs[sorted ? b->order[i] : i];
        MDB_val k = {.mv_size = r->klen, .mv_data = b->keys + r->koff};
        if (r->del) {
            MDB_val v;
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET);
            if (rc == 0)
                rc = mdb_cursor_del(cur, 0);
            else if (rc == MDB_NOTFOUND)
                rc = 0;
        } else {
            MDB_val v = {.mv_size = r->vlen, .mv_data = b->arena + r->off};
            rc = mdb_cursor_put(cur, &k, &v, 0);
        }
    }
    if (cur)
        mdb_cursor_close(cur);
    if (txn) {
        if (rc == 0)
            rc = mdb_txn_commit(txn); /* frees txn even on failure */
        else
            mdb_txn_abort(txn);
    }
    /* MDB_NOMETASYNC synced the data pages; this makes the meta durable. */
    if (rc == 0)
        rc = mdb_env_sync(self->env, 1);
    *lmdb_rc = rc;
    if (rc == 0)
        return NERVE_OK;
    return rc == MDB_MAP_FULL ? NERVE_EFULL : NERVE_EIO;
}

static void *s_writer(void *arg)
{
    regstore_t *self = arg;
    pthread_mutex_lock(&self->mutex);
    for (;;) {
        while (!self->stop && self->wstate != WRITER_BUSY)
            pthread_cond_wait(&self->wake, &self->mutex);
        if (self->wstate != WRITER_BUSY)
            break; /* stop, and nothing left to write */
        pthread_mutex_unlock(&self->mutex);

        batch_t *b = &self->batch;
        uint64_t start = nerve_clock_mono_ns();
        int lmdb_rc = 0;
        int rc = s_commit(self, b, &lmdb_rc);
        uint64_t us = (nerve_clock_mono_ns() - start) / 1000;
        if (rc < 0) {
            char hint[96] = "";
            if (lmdb_rc == MDB_MAP_FULL)
                snprintf(hint, sizeof hint, " (the map size is %zu KiB: raise it)",
                         self->mapsize / 1024);
            NERVE_LOG_RL(&self->rl, NERVE_LOG_ERROR, S_LOG_ID,
                         "%s: commit of %zu register changes failed: %s%s; they are kept "
                         "and retried",
                         self->dir, b->nrecs, mdb_strerror(lmdb_rc), hint);
            self->failing = true;
        } else if (self->failing) {
            NERVE_INFO(S_LOG_ID, "%s: commits succeed again", self->dir);
            self->failing = false;
        }

        pthread_mutex_lock(&self->mutex);
        b->rc = rc;
        if (rc == 0) {
            self->commits++;
            self->entries_written += b->nrecs;
            self->last_commit_us = us;
            if (us > self->max_commit_us)
                self->max_commit_us = us;
            self->total_commit_us += us;
            nerve_histo_observe(&self->commit_seconds, (double)us / 1e6);
        } else {
            self->commit_errors++;
        }
        self->wstate = WRITER_DONE;
        pthread_cond_broadcast(&self->done);
    }
    pthread_mutex_unlock(&self->mutex);
    return NULL;
}

/* ---------------------------------------------------------------------- */
/*  Opening and closing. */

/*  mkdir -p with mode 0700 for every directory it creates. */
static int s_mkdirs(const char *dir)
{
    char path[4096];
    size_t n = strlen(dir);
    if (n >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -1;
        path[i] = c;
    }
    return 0;
}

static void s_close(regstore_t *self)
{
    if (self->writer_started) {
        pthread_mutex_lock(&self->mutex);
        self->stop = true;
        pthread_cond_signal(&self->wake);
        pthread_mutex_unlock(&self->mutex);
        pthread_join(self->writer, NULL);
        self->writer_started = false;
    }
    if (self->slots) {
        for (size_t i = 0; i < self->nslots; i++)
            if (self->slots[i])
                s_entry_free(s_slot_entry(self->slots[i]));
        free(self->slots);
    }
    free(self->dirty);
    free(self->batch.recs);
    free(self->batch.arena);
    free(self->batch.keys);
    free(self->batch.skeys);
    free(self->batch.order);
    if (self->rtxn)
        mdb_txn_abort(self->rtxn);
    if (self->env)
        mdb_env_close(self->env);
    if (self->dirfd >= 0)
        close(self->dirfd);
    pthread_cond_destroy(&self->done);
    pthread_cond_destroy(&self->wake);
    pthread_mutex_destroy(&self->mutex);
    free(self->dir);
    free(self);
}

static void s_error(char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_error(char *err, size_t errsize, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (err && errsize > 0)
        snprintf(err, errsize, "%s", line);
    else
        NERVE_ERROR(S_LOG_ID, "%s", line);
}

/*  Why LMDB refused the files, in words an operator can act on. */
static const char *s_open_hint(int rc)
{
    switch (rc) {
    case MDB_INVALID:
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_VERSION_MISMATCH:
        return " (corrupt, or not a register store: move data.mdb aside to start empty)";
    case EACCES:
    case EPERM:
        return " (check the owner and mode of the directory and its files)";
    default:
        return "";
    }
}

/*  Touches the first and last keys, so a damaged tree is found at open
    instead of at the first miss. */
static int s_check_env(regstore_t *self)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = mdb_cursor_open(txn, self->dbi, &cur);
    MDB_val k, v;
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == MDB_NOTFOUND)
        rc = 0;
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

regstore_t *regstore_open(const char *dir, size_t mapsize, char *err, size_t errsize)
{
    if (!dir || !*dir) {
        s_error(err, errsize, "register store: no directory given");
        return NULL;
    }
    regstore_t *self = calloc(1, sizeof *self);
    if (!self) {
        s_error(err, errsize, "register store %s: out of memory", dir);
        return NULL;
    }
    self->dirfd = -1;
    pthread_mutex_init(&self->mutex, NULL);
    pthread_cond_init(&self->wake, NULL);
    pthread_cond_init(&self->done, NULL);
    self->rl = (nerve_ratelimit_t)NERVE_RATELIMIT_INIT(1000);
    self->max_entries = REGSTORE_MAX_ENTRIES_DEFAULT;
    self->next_seq = 1;
    self->seed = s_random_seed();
    self->dir = strdup(dir);
    self->nslots = S_SLOTS_MIN;
    self->slots = calloc(self->nslots, sizeof *self->slots);
    if (!self->dir || !self->slots) {
        s_error(err, errsize, "register store %s: out of memory", dir);
        goto fail;
    }

    struct stat st;
    if (s_mkdirs(dir) != 0) {
        s_error(err, errsize, "register store %s: cannot create the directory: %s", dir,
                strerror(errno));
        goto fail;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        s_error(err, errsize, "register store %s: not a directory", dir);
        goto fail;
    }
    self->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->dirfd < 0) {
        s_error(err, errsize, "register store %s: cannot open the directory: %s%s", dir,
                strerror(errno), s_open_hint(errno));
        goto fail;
    }
    /* LMDB's own locks allow several processes; two managers writing one
       store, or one process opening it twice, would be wrong. */
    if (flock(self->dirfd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            s_error(err, errsize,
                    "register store %s: already open (by another manager, or twice in this "
                    "process)",
                    dir);
        else
            s_error(err, errsize, "register store %s: cannot lock the directory: %s", dir,
                    strerror(errno));
        goto fail;
    }

    long page = sysconf(_SC_PAGESIZE);
    size_t psize = page > 0 ? (size_t)page : 4096;
    if (mapsize == 0)
        mapsize = REGSTORE_MAPSIZE_DEFAULT;
    mapsize = (mapsize + psize - 1) / psize * psize;
    self->mapsize = mapsize;

    int rc = mdb_env_create(&self->env);
    if (rc == 0)
        rc = mdb_env_set_mapsize(self->env, mapsize);
    if (rc == 0)
        rc = mdb_env_open(self->env, dir, MDB_NOMETASYNC | MDB_NOTLS, 0600);
    if (rc != 0) {
        s_error(err, errsize, "register store %s: cannot open the LMDB env: %s%s", dir,
                mdb_strerror(rc), s_open_hint(rc));
        goto fail;
    }
    int dead = 0;
    mdb_reader_check(self->env, &dead); /* slots left by a killed process */
    self->maxkey = (size_t)mdb_env_get_maxkeysize(self->env);

    MDB_txn *txn = NULL;
    rc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, NULL, 0, &self->dbi);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc == 0)
        rc = s_check_env(self);
    if (rc == 0)
        rc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &self->rtxn);
    if (rc != 0) {
        s_error(err, errsize, "register store %s: cannot use the LMDB env: %s%s", dir,
                mdb_strerror(rc), s_open_hint(rc));
        goto fail;
    }
    mdb_txn_reset(self->rtxn);

    /* Signals belong to the daemon's main thread, whose poll they
       interrupt (nerve_daemon_thread). */
    if (nerve_daemon_thread(&self->writer, s_writer, self) != 0) {
        s_error(err, errsize, "register store %s: cannot start the writer thread", dir);
        goto fail;
    }
    self->writer_started = true;
    pthread_setname_np(self->writer, "regstore"); /* for top -H and perf */
    return self;

fail:
    s_close(self);
    return NULL;
}

void regstore_destroy(regstore_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    regstore_t *self = *self_p;
    *self_p = NULL;
    int rc = regstore_sync(self);
    if (rc < 0)
        NERVE_ERROR(S_LOG_ID, "%s: %zu register changes could not be written and are lost: %s",
                    self->dir, self->ndirty,
                    rc == NERVE_EFULL ? "the map is full (raise the store's map size)"
                                      : nerve_strerror(rc));
    s_close(self);
}

void regstore_set_max_entries(regstore_t *self, size_t max_entries)
{
    if (self)
        self->max_entries = max_entries ? max_entries : REGSTORE_MAX_ENTRIES_DEFAULT;
}

/* ---------------------------------------------------------------------- */
/*  Reads and writes: the engine's hot path. */

int regstore_get(regstore_t *self, const void *key, size_t klen, const void **val, size_t *vlen)
{
    int rc = s_check_key(self, key, klen);
    if (rc < 0)
        return rc;
    uint64_t hash;
    entry_t *e = s_lookup(self, key, klen, &hash);
    if (!e) {
        rc = s_load(self, key, klen, hash, &e);
        if (rc < 0)
            return rc;
    }
    e->ref = 1;
    if (!e->present)
        return NERVE_ENOENT;
    if (val)
        *val = e->val;
    if (vlen)
        *vlen = e->vlen;
    return NERVE_OK;
}

uint64_t regstore_prefetch(regstore_t *self, const void *key, size_t klen)
{
    uint64_t hash = s_hash(self->seed, key, klen);
    __builtin_prefetch(&self->slots[hash & (self->nslots - 1)]);
    return hash;
}

void regstore_prefetch_entry(regstore_t *self, uint64_t hash)
{
    size_t mask = self->nslots - 1;
    size_t i = hash & mask;
    for (int probe = 0; probe < 4; probe++, i = (i + 1) & mask) {
        slot_t sl = self->slots[i];
        if (!sl)
            return;
        if (s_slot_tag_of(sl) == s_slot_tag(hash)) {
            const char *e = (const char *)s_slot_entry(sl);
            __builtin_prefetch(e);
            __builtin_prefetch(e + 64);
            __builtin_prefetch(e + 128);
            __builtin_prefetch(e + 192);
            return;
        }
    }
}

int regstore_put(regstore_t *self, const void *key, size_t klen, const void *val, size_t vlen)
{
    int rc = s_check_key(self, key, klen);
    if (rc < 0)
        return rc;
    if (!val && vlen > 0)
        return NERVE_EINVAL;
    if (vlen > REGSTORE_VALUE_MAX)
        return NERVE_ERANGE;
    if (s_dirty_reserve(self) < 0)
        return NERVE_ENOMEM;
    uint64_t hash;
    entry_t *e = s_lookup(self, key, klen, &hash);
    /* A new entry gets its value's room before it is inserted: an entry
       that could not take the value would claim the key is absent. */
    if (!e && !(e = s_entry_new(self, key, klen, hash, vlen)))
        return NERVE_ENOMEM;
    if (s_entry_set(e, val, vlen) < 0)
        return NERVE_ENOMEM;
    s_mark_dirty(self, e);
    return NERVE_OK;
}

int regstore_del(regstore_t *self, const void *key, size_t klen)
{
    int rc = s_check_key(self, key, klen);
    if (rc < 0)
        return rc;
    if (s_dirty_reserve(self) < 0)
        return NERVE_ENOMEM;
    uint64_t hash;
    entry_t *e = s_lookup(self, key, klen, &hash);
    if (!e && !(e = s_entry_new(self, key, klen, hash, 0)))
        return NERVE_ENOMEM;
    e->present = 0;
    e->vlen = 0;
    s_mark_dirty(self, e);
    return NERVE_OK;
}

int regstore_flush(regstore_t *self)
{
    if (!self)
        return NERVE_EINVAL;
    int batch_rc;
    if (s_collect(self, false, &batch_rc) && self->ndirty > 0)
        s_submit(self); /* out of memory: logged; the entries stay dirty */
    s_evict(self);
    return NERVE_OK;
}

int regstore_sync(regstore_t *self)
{
    if (!self)
        return NERVE_EINVAL;
    /* A batch that failed before this call is back in the dirty list and
       is retried below; only failures from here on are reported. */
    int rc;
    s_collect(self, true, &rc);
    while (self->ndirty > 0) {
        rc = s_submit(self);
        if (rc < 0)
            return rc;
        s_collect(self, true, &rc);
        if (rc < 0)
            return rc;
    }
    return NERVE_OK;
}

int regstore_foreach(regstore_t *self, const void *prefix, size_t plen,
                     int (*cb)(void *arg, const void *k, size_t kl, const void *v, size_t vl),
                     void *arg)
{
    if (!self || !cb || (!prefix && plen > 0))
        return NERVE_EINVAL;
    int sync_rc = regstore_sync(self);
    if (plen > self->maxkey)
        return sync_rc; /* no stored key can be that long */

    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int ret = NERVE_OK;
    int rc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0)
        rc = mdb_cursor_open(txn, self->dbi, &cur);
    MDB_val k = {.mv_size = plen, .mv_data = (void *)prefix}, v = {0};
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, &v, plen > 0 ? MDB_SET_RANGE : MDB_FIRST);
    while (rc == 0) {
        if (plen > 0 && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0))
            break;
        ret = cb(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
        if (ret != 0)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND) {
        NERVE_ERROR(S_LOG_ID, "%s: cannot list registers: %s", self->dir, mdb_strerror(rc));
        ret = NERVE_EIO;
    }
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    return ret != 0 ? ret : sync_rc;
}

void regstore_stats(regstore_t *self, regstore_stats_t *out)
{
    if (!out)
        return;
    *out = (regstore_stats_t){0};
    if (!self)
        return;
    pthread_mutex_lock(&self->mutex);
    out->commits = self->commits;
    out->commit_errors = self->commit_errors;
    out->entries_written = self->entries_written;
    out->last_commit_us = self->last_commit_us;
    out->max_commit_us = self->max_commit_us;
    out->total_commit_us = self->total_commit_us;
    out->commit_seconds = self->commit_seconds;
    pthread_mutex_unlock(&self->mutex);
    out->dirty = self->ndirty;
    out->cached = self->count;
}
