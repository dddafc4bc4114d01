/*  regstore.h — the manager's register store: register state in LMDB,
    cached in memory, written by a group-committing writer thread.

    Every event the engine handles may read and rewrite one register state
    (a small byte blob under a key like "<scope>\0<key>"), hundreds of
    thousands of times a second. The engine thread must never wait for a
    disk, so the store splits the work:

      - an in-memory hash table is authoritative for reads. A miss reads
        LMDB once (mdb_get in a short read-only txn) and caches the answer,
        "absent" included;
      - regstore_put() and regstore_del() only change the cache and mark the
        entry dirty;
      - regstore_flush(), called by the engine every commit_interval, copies
        the dirty set into a batch and hands it to a writer thread, which
        puts it in one write txn, commits and syncs. If the writer is still
        busy with the previous batch, flush leaves the entries dirty for the
        next tick: it never blocks.

    Durability (DESIGN.md): at most commit_interval of updates is lost to a
    crash of the machine, nothing already committed is lost to kill -9 (the
    page cache survives), nothing at all to a clean stop (regstore_destroy()
    syncs), and LMDB is never corrupted: the env uses MDB_NOMETASYNC, so
    data pages reach the disk before the meta page that points to them, and
    the writer's mdb_env_sync() after each commit makes the meta durable.
    Both fsyncs run on the writer thread.

    Threading: a regstore_t belongs to one thread (the engine); none of the
    functions below may be called concurrently. The writer thread is
    internal. Only one process may open a store directory at a time
    (regstore_open() takes a lock on it).
*/
#ifndef NERVE_MANAGER_REGSTORE_H
#define NERVE_MANAGER_REGSTORE_H

#include <nerve/metrics.h>
#include <stddef.h>
#include <stdint.h>

typedef struct regstore regstore_t;

/*  The largest value regstore_put() takes (NERVE_REGISTER_STATE_MAX). */
#define REGSTORE_VALUE_MAX (64u * 1024)

/*  Defaults for regstore_open(mapsize = 0) and regstore_set_max_entries(0). */
#define REGSTORE_MAPSIZE_DEFAULT     ((size_t)1 << 30)
#define REGSTORE_MAX_ENTRIES_DEFAULT ((size_t)1000000)

/*  Opens (creating it if needed) the store in directory `dir` and starts
    its writer thread. A missing directory is created with mode 0700 (and
    its missing parents too); the LMDB files are created 0600.

    mapsize: the most bytes the store may hold on disk (LMDB's map size),
    rounded up to the page size; 0 means REGSTORE_MAPSIZE_DEFAULT (1 GiB).
    A full map does not crash anything: commits fail with NERVE_EFULL, are
    logged, and the entries stay dirty (see regstore_flush()).

    On failure returns NULL and writes a one-line reason naming the
    directory into err (when err is not NULL and errsize > 0; the reason is
    logged otherwise): a directory that cannot be created or opened
    (permissions), a file there that is not an LMDB env or is corrupt, a
    store already open in another process or elsewhere in this one. */
regstore_t *regstore_open(const char *dir, size_t mapsize, char *err, size_t errsize);

/*  Flushes and syncs every pending change, stops the writer thread, closes
    LMDB and frees the store; sets *self to NULL. Safe on NULL and twice.
    Changes that cannot be written (map full, I/O error) are logged with
    their count and lost. */
void regstore_destroy(regstore_t **self);

/*  Sets how many entries the cache keeps (0: REGSTORE_MAX_ENTRIES_DEFAULT,
    one million). It is a soft limit, enforced by regstore_flush(), which
    drops clean entries (least recently used first, roughly: a CLOCK sweep)
    until the cache is 1/8 below it. Dirty entries and entries whose last
    write is not yet committed are never dropped, so the cache may exceed
    the limit while the writer falls behind. */
void regstore_set_max_entries(regstore_t *self, size_t max_entries);

/*  Looks up `key` (klen bytes, 1 to 511). On success sets *val and *vlen to
    the current value (a put not yet committed included) and returns 0.

    *val points into the cache: it stays valid until the next put or del of
    the same key or the next regstore_flush() (which may evict it),
    whichever comes first. Do not write through it.

    Returns NERVE_ENOENT if the key has no value, NERVE_EINVAL for a NULL or
    empty key, NERVE_ERANGE for a key longer than LMDB allows, NERVE_ENOMEM,
    or NERVE_EIO if LMDB could not be read (logged). */
int regstore_get(regstore_t *self, const void *key, size_t klen, const void **val, size_t *vlen);

/*  Sets `key` to the vlen bytes at val (copied; vlen may be 0, then val may
    be NULL). The change is visible to regstore_get() at once and written to
    LMDB by a later flush. Returns 0, NERVE_EINVAL, NERVE_ERANGE (key too
    long, or vlen > REGSTORE_VALUE_MAX) or NERVE_ENOMEM. */
int regstore_put(regstore_t *self, const void *key, size_t klen, const void *val, size_t vlen);

/*  Prefetching, for a caller that knows a few keys ahead which it will
    read (the server drains events in small groups): with 100,000 live
    states a lookup is two cache misses, the slot and the entry, and these
    let them overlap with other work. Both are hints: they read nothing
    that could fail and change nothing.

    regstore_prefetch() starts loading the slot where `key` lives and
    returns its hash; regstore_prefetch_entry(hash), called once the slot
    has had time to arrive, starts loading the entry it points to. */
uint64_t regstore_prefetch(regstore_t *self, const void *key, size_t klen);
void regstore_prefetch_entry(regstore_t *self, uint64_t hash);

/*  Deletes `key` (no error if it has no value). Same returns as put. */
int regstore_del(regstore_t *self, const void *key, size_t klen);

/*  Hands the dirty entries to the writer thread as one batch and returns at
    once; then evicts clean entries if the cache is over its limit. If the
    writer is still committing the previous batch, the entries stay dirty
    until the next call. A very large dirty set is written over several
    calls (a batch holds at most 65536 entries or 64 MiB).

    Returns 0. A failed commit is not reported here (it happened on the
    writer thread): it is logged (at most once a second), counted in
    regstore_stats().commit_errors, and its entries become dirty again so
    the next flush retries them. Returns NERVE_EINVAL for a NULL self. */
int regstore_flush(regstore_t *self);

/*  Blocks until every put and del made so far is committed and synced to
    disk. For a clean stop, tests and the control socket, never for the
    engine's event path.

    Returns 0, or the error of the commit that failed (NERVE_EFULL when the
    map is full, NERVE_EIO otherwise); the entries it held stay dirty. */
int regstore_sync(regstore_t *self);

/*  Calls cb(arg, key, klen, value, vlen) for every stored key that starts
    with the plen bytes at prefix (every key if plen is 0), in key order,
    after syncing (regstore_sync()). key and value point into LMDB's map:
    valid only during the call. cb may call regstore_get/put/del; changes it
    makes are not seen by this iteration. A non-zero return from cb stops
    the iteration and is returned.

    Returns 0, cb's non-zero return, NERVE_EIO if LMDB could not be read,
    or the error of the sync (the iteration then shows the last committed
    state). */
int regstore_foreach(regstore_t *self, const void *prefix, size_t plen,
                     int (*cb)(void *arg, const void *k, size_t kl, const void *v, size_t vl),
                     void *arg);

/*  Counters for metrics and `nerve status`. Commit times are from the
    start of the write txn to the end of its sync, in microseconds. */
typedef struct {
    uint64_t commits;         /* batches committed and synced */
    uint64_t commit_errors;   /* batches that failed (and were retried) */
    uint64_t entries_written; /* puts and dels in committed batches */
    uint64_t dirty;           /* entries changed but not yet handed to the writer */
    uint64_t cached;          /* entries in the cache, "absent" ones included */
    uint64_t last_commit_us;
    uint64_t max_commit_us;
    uint64_t total_commit_us;
    nerve_histo_t commit_seconds; /* every commit's latency */
} regstore_stats_t;

/*  Fills *out with a snapshot of the counters. */
void regstore_stats(regstore_t *self, regstore_stats_t *out);

#endif
