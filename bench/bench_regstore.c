/*  bench_regstore.c — what the engine pays per register update.

    Every event that feeds a register costs the engine one regstore_get()
    and one regstore_put() of that key's state. This measures the cycle
    over 100,000 keys of the manager's shape ("<scope>\0<host>", a 64-byte
    state), with regstore_flush() called as the engine would every
    commit_interval (here every 70,000 cycles: 100 ms at 700k events/s),
    so the figure includes building the batches and the writer competing
    for the machine. It also reports a miss (an empty cache reading LMDB)
    and the writer's commit latency.

    Usage: bench_regstore [cycles per run], default 2,000,000.
*/
#define _GNU_SOURCE /* nftw() */
#include "regstore.h"

#include <nerve/log.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_KEYS        100000
#define S_VLEN        64
#define S_FLUSH_EVERY 70000
#define S_RUNS        5

static char s_keys[S_KEYS][32];
static size_t s_klens[S_KEYS];

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static regstore_t *s_open(const char *dir)
{
    char err[256];
    regstore_t *store = regstore_open(dir, 0, err, sizeof err);
    if (!store)
        fprintf(stderr, "bench_regstore: %s\n", err);
    return store;
}

/*  One engine step: read the state, update it, write it back. */
static int s_cycle(regstore_t *store, size_t k)
{
    const void *val;
    size_t vlen;
    uint8_t state[S_VLEN] = {0};
    if (regstore_get(store, s_keys[k], s_klens[k], &val, &vlen) == 0 && vlen == S_VLEN)
        memcpy(state, val, S_VLEN);
    uint64_t count;
    memcpy(&count, state, sizeof count);
    count++;
    memcpy(state, &count, sizeof count);
    return regstore_put(store, s_keys[k], s_klens[k], state, S_VLEN);
}

int main(int argc, char **argv)
{
    size_t cycles = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    if (cycles == 0)
        cycles = 2000000;
    char dir[] = "/tmp/nerve-bench-regstore-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("bench_regstore: mkdtemp");
        return 1;
    }
    for (size_t k = 0; k < S_KEYS; k++) {
        int n = snprintf(s_keys[k], sizeof s_keys[k], "load_avg");
        n += 1 + snprintf(s_keys[k] + n + 1, sizeof s_keys[k] - (size_t)n - 1, "web%zu", k);
        s_klens[k] = (size_t)n;
    }

    int rc = 1;
    regstore_t *store = s_open(dir);
    if (!store)
        goto done;
    for (size_t k = 0; k < S_KEYS; k++)
        s_cycle(store, k);
    if (regstore_sync(store) != 0)
        goto done;

    /* Keys in a scattered order, as events from many hosts arrive. */
    uint32_t *order = malloc(S_KEYS * sizeof *order);
    if (!order)
        goto done;
    for (uint32_t k = 0; k < S_KEYS; k++)
        order[k] = k;
    srand(42);
    for (uint32_t k = S_KEYS - 1; k > 0; k--) {
        uint32_t j = (uint32_t)rand() % (k + 1), t = order[k];
        order[k] = order[j];
        order[j] = t;
    }

    double best = 1e30;
    for (int run = 0; run < S_RUNS; run++) {
        uint64_t start = nerve_clock_mono_ns();
        for (size_t c = 0; c < cycles; c++) {
            s_cycle(store, order[c % S_KEYS]);
            if (c % S_FLUSH_EVERY == S_FLUSH_EVERY - 1)
                regstore_flush(store);
        }
        double ns = (double)(nerve_clock_mono_ns() - start) / (double)cycles;
        if (ns < best)
            best = ns;
        if (regstore_sync(store) != 0)
            break;
    }
    regstore_stats_t st;
    regstore_stats(store, &st);

    /* A miss: reopen with an empty cache and read every key once. */
    regstore_destroy(&store);
    store = s_open(dir);
    if (!store) {
        free(order);
        goto done;
    }
    uint64_t start = nerve_clock_mono_ns();
    for (size_t k = 0; k < S_KEYS; k++) {
        const void *val;
        size_t vlen;
        regstore_get(store, s_keys[order[k]], s_klens[order[k]], &val, &vlen);
    }
    double miss_ns = (double)(nerve_clock_mono_ns() - start) / S_KEYS;
    free(order);

    printf("regstore: get+put cycle, %d keys, %d-byte state  %7.1f ns/cycle  (%.2f M/s)\n", S_KEYS,
           S_VLEN, best, 1000.0 / best);
    printf("regstore: miss (empty cache, LMDB read)           %7.1f ns/get\n", miss_ns);
    printf("regstore: commits %llu, %llu entries, commit+sync avg %.1f ms, max %.1f ms\n",
           (unsigned long long)st.commits, (unsigned long long)st.entries_written,
           st.commits ? (double)st.total_commit_us / (double)st.commits / 1000.0 : 0.0,
           (double)st.max_commit_us / 1000.0);
    printf("regstore: best of %d runs of %zu cycles each, flush every %d cycles\n", S_RUNS, cycles,
           S_FLUSH_EVERY);
    rc = 0;

done:
    regstore_destroy(&store);
    nftw(dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
