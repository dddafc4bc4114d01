/*  bench_regstore.c — the register store's two costs, beside raw LMDB.

    The manager keeps register states in a cache in front of LMDB
    (manager/regstore.c): the engine thread reads and writes the cache on
    every event, and a writer thread group-commits what changed. Under
    sustained load (bench_manager: 100 rules × 1,000 hosts, every event
    updating one of 100,000 states) a commit carries most of the store, so
    both sides matter on a 2-core machine, where the writer's CPU time is
    taken from the engine.

    1. commit: µs of writer time per entry committed. 100,000 keys shaped
       as the engine makes them ("R" scope NUL host, scope
       "bench/metric<i>") with 144-byte values (the avg state of
       registers.aggregate at period 10). Each round changes 60,000 of
       them, in random order, and waits for regstore_sync(). Beside it, in
       the same run: raw LMDB doing the same rounds the plain way, one
       mdb_put() per key in the order they changed, one txn, committed
       and synced as the store does (MDB_NOMETASYNC + mdb_env_sync).
    2. engine: ns per get + put through the cache, cycling the 100,000 keys
       in the manager bench's order, with the writer committing behind
       (regstore_flush() every 50 ms of the loop, as the server does).
    3. miss: ns per get with an empty cache (the store just reopened), each
       key read once from LMDB — what the first event of a key costs after
       a restart.

    Usage: bench_regstore [rounds], default 12. Medians of rounds.
*/
#define _GNU_SOURCE
#include "../manager/regstore.h"

#include <nerve/log.h>

#include <ftw.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_KEYS    100000
#define S_HOSTS   1000
#define S_CHANGED 60000
#define S_VALUE   144
#define S_KEY_MAX 64

typedef struct {
    char bytes[S_KEY_MAX];
    size_t len;
} key_t_;

static key_t_ s_keys[S_KEYS];

static void s_make_keys(void)
{
    /* Host-major, as the manager bench sends: host h's metrics in turn. */
    for (size_t i = 0; i < S_KEYS; i++) {
        size_t metric = i % (S_KEYS / S_HOSTS), host = i / (S_KEYS / S_HOSTS);
        char *b = s_keys[i].bytes;
        int n = snprintf(b, S_KEY_MAX, "Rbench/metric%zu", metric);
        b[n] = '\0';
        int m = snprintf(b + n + 1, S_KEY_MAX - (size_t)n - 1, "host%zu", host);
        s_keys[i].len = (size_t)n + 1 + (size_t)m;
    }
}

static uint64_t s_rng = 0x9e3779b97f4a7c15ull;

static uint64_t s_next(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

/*  The first S_CHANGED of a fresh random permutation of the keys. */
static void s_pick(uint32_t *order)
{
    for (uint32_t i = 0; i < S_KEYS; i++)
        order[i] = i;
    for (uint32_t i = S_KEYS - 1; i > 0; i--) {
        uint32_t j = (uint32_t)(s_next() % (i + 1));
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

static void s_value(uint8_t *v, uint64_t round, uint32_t k)
{
    memset(v, (int)(round + k), S_VALUE);
    memcpy(v, &round, sizeof round);
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double s_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, s_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* ---------------------------------------------------------------- raw LMDB */

typedef struct {
    MDB_env *env;
    MDB_dbi dbi;
} raw_t;

static int s_raw_open(raw_t *r, const char *dir)
{
    int rc = mdb_env_create(&r->env);
    if (rc == 0)
        rc = mdb_env_set_mapsize(r->env, (size_t)1 << 30);
    if (rc == 0)
        rc = mdb_env_open(r->env, dir, MDB_NOMETASYNC | MDB_NOTLS, 0600);
    MDB_txn *txn = NULL;
    if (rc == 0)
        rc = mdb_txn_begin(r->env, NULL, 0, &txn);
    if (rc == 0)
        rc = mdb_dbi_open(txn, NULL, 0, &r->dbi);
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    if (rc != 0)
        fprintf(stderr, "bench_regstore: raw LMDB in %s: %s\n", dir, mdb_strerror(rc));
    return rc;
}

/*  One round the plain way; returns its µs. */
static double s_raw_round(raw_t *r, const uint32_t *order, size_t n, uint64_t round)
{
    uint8_t v[S_VALUE];
    uint64_t t0 = nerve_clock_mono_ns();
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(r->env, NULL, 0, &txn);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        s_value(v, round, order[i]);
        MDB_val k = {.mv_size = s_keys[order[i]].len, .mv_data = s_keys[order[i]].bytes};
        MDB_val d = {.mv_size = S_VALUE, .mv_data = v};
        rc = mdb_put(txn, r->dbi, &k, &d, 0);
    }
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc == 0)
        rc = mdb_env_sync(r->env, 1);
    if (rc != 0) {
        fprintf(stderr, "bench_regstore: raw LMDB round: %s\n", mdb_strerror(rc));
        exit(1);
    }
    return (double)(nerve_clock_mono_ns() - t0) / 1e3;
}

/* ------------------------------------------------------------- the store */

static void s_store_round(regstore_t *s, const uint32_t *order, size_t n, uint64_t round)
{
    uint8_t v[S_VALUE];
    for (size_t i = 0; i < n; i++) {
        s_value(v, round, order[i]);
        if (regstore_put(s, s_keys[order[i]].bytes, s_keys[order[i]].len, v, S_VALUE) != 0) {
            fprintf(stderr, "bench_regstore: regstore_put failed\n");
            exit(1);
        }
    }
    if (regstore_sync(s) != 0) {
        fprintf(stderr, "bench_regstore: regstore_sync failed\n");
        exit(1);
    }
}

/*  µs of writer time for the last round, from the store's own counters. */
static double s_store_commit_us(regstore_t *s, uint64_t *last_total, uint64_t *last_entries,
                                size_t *entries)
{
    regstore_stats_t st;
    regstore_stats(s, &st);
    double us = (double)(st.total_commit_us - *last_total);
    *entries = st.entries_written - *last_entries;
    *last_total = st.total_commit_us;
    *last_entries = st.entries_written;
    return us;
}

/*  get + put over every key in order, `passes` times; ns per update. */
static double s_engine_pass(regstore_t *s, int passes, uint64_t round)
{
    uint64_t t0 = nerve_clock_mono_ns(), next_flush = t0 + 50000000ull;
    uint8_t v[S_VALUE];
    for (int p = 0; p < passes; p++) {
        for (uint32_t i = 0; i < S_KEYS; i++) {
            const void *old;
            size_t olen;
            if (regstore_get(s, s_keys[i].bytes, s_keys[i].len, &old, &olen) == 0 &&
                olen == S_VALUE)
                memcpy(v, old, S_VALUE);
            v[0] = (uint8_t)(v[0] + 1 + round);
            regstore_put(s, s_keys[i].bytes, s_keys[i].len, v, S_VALUE);
            if ((i & 1023) == 0) {
                uint64_t now = nerve_clock_mono_ns();
                if (now >= next_flush) {
                    regstore_flush(s);
                    next_flush = now + 50000000ull;
                }
            }
        }
    }
    return (double)(nerve_clock_mono_ns() - t0) / ((double)passes * S_KEYS);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 12;
    if (rounds < 1 || rounds > 1000) {
        fprintf(stderr, "usage: bench_regstore [rounds 1..1000]\n");
        return 2;
    }
    nerve_log_set_level(NERVE_LOG_WARN);
    char tmp[] = "/tmp/bench_regstore.XXXXXX";
    if (!mkdtemp(tmp)) {
        perror("bench_regstore: mkdtemp");
        return 1;
    }
    char store_dir[sizeof tmp + 16], raw_dir[sizeof tmp + 16];
    snprintf(store_dir, sizeof store_dir, "%s/store", tmp);
    snprintf(raw_dir, sizeof raw_dir, "%s/raw", tmp);
    mkdir(raw_dir, 0700);
    s_make_keys();

    char err[256];
    regstore_t *s = regstore_open(store_dir, 0, err, sizeof err);
    raw_t raw = {0};
    int rc = s ? s_raw_open(&raw, raw_dir) : 1;
    if (!s)
        fprintf(stderr, "bench_regstore: %s\n", err);
    uint32_t *order = malloc(S_KEYS * sizeof *order);
    double *store_us = calloc((size_t)rounds, sizeof(double));
    double *raw_us = calloc((size_t)rounds, sizeof(double));
    double *engine_ns = calloc((size_t)rounds, sizeof(double));
    if (rc != 0 || !order || !store_us || !raw_us || !engine_ns)
        return 1;

    /* Fill both with every key first: a round then updates, as under load. */
    for (uint32_t i = 0; i < S_KEYS; i++)
        order[i] = i;
    uint64_t total = 0, entries_before = 0;
    size_t entries = 0;
    s_store_round(s, order, S_KEYS, 0);
    s_raw_round(&raw, order, S_KEYS, 0);
    s_store_commit_us(s, &total, &entries_before, &entries);

    for (int r = 0; r < rounds; r++) {
        s_pick(order);
        /* Alternate which goes first, so both see the same drift. */
        if (r % 2) {
            raw_us[r] = s_raw_round(&raw, order, S_CHANGED, (uint64_t)r + 1) / S_CHANGED;
            s_store_round(s, order, S_CHANGED, (uint64_t)r + 1);
        } else {
            s_store_round(s, order, S_CHANGED, (uint64_t)r + 1);
            raw_us[r] = s_raw_round(&raw, order, S_CHANGED, (uint64_t)r + 1) / S_CHANGED;
        }
        store_us[r] = s_store_commit_us(s, &total, &entries_before, &entries) /
                      (double)(entries ? entries : 1);
        engine_ns[r] = s_engine_pass(s, 2, (uint64_t)r);
        regstore_sync(s);
        s_store_commit_us(s, &total, &entries_before, &entries);
    }

    double st = s_median(store_us, (size_t)rounds), rw = s_median(raw_us, (size_t)rounds);
    printf("register store: %d keys, %d-byte values, %d changed per commit; median of %d "
           "rounds\n",
           S_KEYS, S_VALUE, S_CHANGED, rounds);
    printf("  commit, raw LMDB mdb_put loop   %7.3f us/entry\n", rw);
    printf("  commit, regstore writer         %7.3f us/entry   (%.2fx raw)\n", st, st / rw);
    printf("  engine, get + put in the cache  %7.1f ns/update  (writer committing behind)\n",
           s_median(engine_ns, (size_t)rounds));

    regstore_destroy(&s);
    s = regstore_open(store_dir, 0, err, sizeof err);
    if (!s) {
        fprintf(stderr, "bench_regstore: reopen: %s\n", err);
        return 1;
    }
    s_pick(order);
    uint64_t t0 = nerve_clock_mono_ns();
    for (uint32_t i = 0; i < S_KEYS; i++) {
        const void *v;
        size_t vl;
        if (regstore_get(s, s_keys[order[i]].bytes, s_keys[order[i]].len, &v, &vl) != 0) {
            fprintf(stderr, "bench_regstore: a key is missing after reopening\n");
            return 1;
        }
    }
    printf("  miss, LMDB read (cold cache)    %7.1f ns/get\n",
           (double)(nerve_clock_mono_ns() - t0) / S_KEYS);
    regstore_destroy(&s);
    mdb_env_close(raw.env);
    nftw(tmp, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(order);
    free(store_us);
    free(raw_us);
    free(engine_ns);
    return 0;
}
