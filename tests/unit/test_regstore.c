/*  test_regstore.c — the register store: cache semantics, group commit,
    durability across close, clean stop and kill -9, prefix listing,
    eviction, and the errors an operator meets (permissions, a corrupt
    file, a full map, a store opened twice).

    Crash tests fork a child that opens its own store and is killed with
    SIGKILL; the parent then reopens the directory. Children report with
    their exit code (cmocka's asserts must not run there). Every test works
    in its own mkdtemp directory, removed afterwards.
*/
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nerve/error.h>
#include <nerve/log.h>

#include "regstore.h"

typedef struct {
    char root[64];
    char dir[128]; /* root/store: the store's directory, created by open */
} fixture_t;

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    chmod(path, 0700); /* a test may have locked it */
    return remove(path);
}

static int s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    strcpy(fx->root, "/tmp/nerve-regstore-XXXXXX");
    assert_non_null(mkdtemp(fx->root));
    snprintf(fx->dir, sizeof fx->dir, "%s/store", fx->root);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *fx = *state;
    chmod(fx->root, 0700);
    nftw(fx->root, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static regstore_t *s_open(const fixture_t *fx, size_t mapsize)
{
    char err[256] = "";
    regstore_t *store = regstore_open(fx->dir, mapsize, err, sizeof err);
    if (!store)
        fail_msg("regstore_open: %s", err);
    return store;
}

/*  Keys look like the manager's: "<scope>\0<key>", NUL inside. */
static size_t s_key(char *buf, size_t size, const char *scope, unsigned i)
{
    int n = snprintf(buf, size, "%s", scope);
    n += 1 + snprintf(buf + n + 1, size - (size_t)n - 1, "host%u", i);
    return (size_t)n;
}

static size_t s_val(char *buf, size_t size, unsigned i, unsigned gen)
{
    return (size_t)snprintf(buf, size, "value-%u-gen-%u", i, gen);
}

static void s_assert_value(regstore_t *store, const char *scope, unsigned i, unsigned gen)
{
    char key[64], want[64];
    size_t klen = s_key(key, sizeof key, scope, i), wlen = s_val(want, sizeof want, i, gen);
    const void *val = NULL;
    size_t vlen = 0;
    int rc = regstore_get(store, key, klen, &val, &vlen);
    if (rc != 0)
        fail_msg("%s/host%u: %s", scope, i, nerve_strerror(rc));
    assert_int_equal(vlen, wlen);
    assert_memory_equal(val, want, wlen);
}

static void s_put(regstore_t *store, const char *scope, unsigned i, unsigned gen)
{
    char key[64], val[64];
    size_t klen = s_key(key, sizeof key, scope, i), vlen = s_val(val, sizeof val, i, gen);
    assert_int_equal(regstore_put(store, key, klen, val, vlen), 0);
}

static int s_get_rc(regstore_t *store, const char *scope, unsigned i)
{
    char key[64];
    size_t klen = s_key(key, sizeof key, scope, i);
    const void *val;
    size_t vlen;
    return regstore_get(store, key, klen, &val, &vlen);
}

/*  Runs fn in a child process and returns its wait status. */
static int s_in_child(int (*fn)(const fixture_t *fx), const fixture_t *fx)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(fn(fx));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

/* ---------------------------------------------------------------------- */

static void test_regstore_put_get_del_round_trip(void **state)
{
    fixture_t *fx = *state;
    regstore_t *store = s_open(fx, 0);
    const void *val = NULL;
    size_t vlen = 0;

    assert_int_equal(regstore_get(store, "r\0a", 3, &val, &vlen), NERVE_ENOENT);
    assert_int_equal(regstore_put(store, "r\0a", 3, "first", 5), 0);
    assert_int_equal(regstore_get(store, "r\0a", 3, &val, &vlen), 0);
    assert_int_equal(vlen, 5);
    assert_memory_equal(val, "first", 5);

    /* The NUL is part of the key: "r\0a" and "r" are different keys. */
    assert_int_equal(regstore_get(store, "r", 1, &val, &vlen), NERVE_ENOENT);

    /* Overwrite with a longer value, then a shorter one. */
    char big[3000];
    memset(big, 'x', sizeof big);
    assert_int_equal(regstore_put(store, "r\0a", 3, big, sizeof big), 0);
    assert_int_equal(regstore_get(store, "r\0a", 3, &val, &vlen), 0);
    assert_int_equal(vlen, sizeof big);
    assert_memory_equal(val, big, sizeof big);
    assert_int_equal(regstore_put(store, "r\0a", 3, "2nd", 3), 0);
    assert_int_equal(regstore_get(store, "r\0a", 3, &val, &vlen), 0);
    assert_int_equal(vlen, 3);
    assert_memory_equal(val, "2nd", 3);

    /* An empty value is a value, not a delete. */
    assert_int_equal(regstore_put(store, "r\0e", 3, NULL, 0), 0);
    assert_int_equal(regstore_get(store, "r\0e", 3, &val, &vlen), 0);
    assert_int_equal(vlen, 0);
    assert_non_null(val);

    assert_int_equal(regstore_del(store, "r\0a", 3), 0);
    assert_int_equal(regstore_get(store, "r\0a", 3, &val, &vlen), NERVE_ENOENT);
    assert_int_equal(regstore_del(store, "r\0never", 7), 0);

    /* The same after the round trip through LMDB and an empty cache. */
    assert_int_equal(regstore_sync(store), 0);
    regstore_destroy(&store);
    store = s_open(fx, 0);
    assert_int_equal(regstore_get(store, "r\0a", 3, &val, &vlen), NERVE_ENOENT);
    assert_int_equal(regstore_get(store, "r\0e", 3, &val, &vlen), 0);
    assert_int_equal(vlen, 0);
    assert_int_equal(regstore_get(store, "r\0never", 7, &val, &vlen), NERVE_ENOENT);
    regstore_destroy(&store);
    assert_null(store);
    regstore_destroy(&store); /* safe twice */
}

static void test_regstore_rejects_bad_keys_and_values(void **state)
{
    fixture_t *fx = *state;
    regstore_t *store = s_open(fx, 0);
    const void *val;
    size_t vlen;
    char key[600];
    memset(key, 'k', sizeof key);
    static char huge[REGSTORE_VALUE_MAX + 1];

    assert_int_equal(regstore_put(store, NULL, 3, "v", 1), NERVE_EINVAL);
    assert_int_equal(regstore_put(store, "k", 0, "v", 1), NERVE_EINVAL);
    assert_int_equal(regstore_put(store, "k", 1, NULL, 1), NERVE_EINVAL);
    assert_int_equal(regstore_put(store, key, 512, "v", 1), NERVE_ERANGE);
    assert_int_equal(regstore_put(store, "k", 1, huge, sizeof huge), NERVE_ERANGE);
    assert_int_equal(regstore_put(store, "k", 1, huge, REGSTORE_VALUE_MAX), 0);
    assert_int_equal(regstore_put(store, key, 511, "v", 1), 0);
    assert_int_equal(regstore_get(store, key, 512, &val, &vlen), NERVE_ERANGE);
    assert_int_equal(regstore_get(store, "", 0, &val, &vlen), NERVE_EINVAL);
    assert_int_equal(regstore_del(store, key, 600), NERVE_ERANGE);
    assert_int_equal(regstore_put(NULL, "k", 1, "v", 1), NERVE_EINVAL);
    assert_int_equal(regstore_flush(NULL), NERVE_EINVAL);
    assert_int_equal(regstore_sync(NULL), NERVE_EINVAL);

    /* The largest key and value make it through LMDB. */
    assert_int_equal(regstore_sync(store), 0);
    regstore_destroy(&store);
    store = s_open(fx, 0);
    assert_int_equal(regstore_get(store, "k", 1, &val, &vlen), 0);
    assert_int_equal(vlen, REGSTORE_VALUE_MAX);
    assert_int_equal(regstore_get(store, key, 511, &val, &vlen), 0);
    regstore_destroy(&store);
}

static void test_regstore_values_survive_close_and_reopen(void **state)
{
    fixture_t *fx = *state;
    regstore_t *store = s_open(fx, 0);
    for (unsigned i = 0; i < 2000; i++)
        s_put(store, "avg", i, 1);
    assert_int_equal(regstore_sync(store), 0);
    for (unsigned i = 0; i < 2000; i += 2) /* rewrite the even ones */
        s_put(store, "avg", i, 2);
    for (unsigned i = 0; i < 2000; i += 5) {
        char key[64];
        assert_int_equal(regstore_del(store, key, s_key(key, sizeof key, "avg", i)), 0);
    }
    regstore_destroy(&store);

    store = s_open(fx, 0);
    for (unsigned i = 0; i < 2000; i++) {
        if (i % 5 == 0)
            assert_int_equal(s_get_rc(store, "avg", i), NERVE_ENOENT);
        else
            s_assert_value(store, "avg", i, i % 2 == 0 ? 2 : 1);
    }
    regstore_stats_t st;
    regstore_stats(store, &st);
    assert_int_equal(st.cached, 2000); /* hits and cached misses alike */
    assert_int_equal(st.dirty, 0);
    assert_int_equal(st.commits, 0);
    regstore_destroy(&store);
}

/*  Child: flushes a batch without waiting, puts more, syncs, checks the
    counters, then dies by SIGKILL, so only sync can have made it durable. */
static int s_child_flush_then_sync(const fixture_t *fx)
{
    regstore_t *store = regstore_open(fx->dir, 0, NULL, 0);
    if (!store)
        return 2;
    char key[64], val[64];
    for (unsigned i = 0; i < 500; i++)
        regstore_put(store, key, s_key(key, sizeof key, "a", i), val, s_val(val, sizeof val, i, 1));
    if (regstore_flush(store) != 0)
        return 3;
    for (unsigned i = 0; i < 300; i++)
        regstore_put(store, key, s_key(key, sizeof key, "b", i), val, s_val(val, sizeof val, i, 1));
    if (regstore_sync(store) != 0)
        return 4;
    regstore_stats_t st;
    regstore_stats(store, &st);
    if (st.dirty != 0 || st.entries_written != 800 || st.commits != 2 || st.commit_errors != 0)
        return 5;
    if (st.total_commit_us < st.max_commit_us || st.max_commit_us < st.last_commit_us)
        return 6;
    raise(SIGKILL);
    return 7;
}

static void test_regstore_flush_without_sync_then_sync_persists(void **state)
{
    fixture_t *fx = *state;
    int status = s_in_child(s_child_flush_then_sync, fx);
    if (WIFEXITED(status))
        fail_msg("child exited with %d instead of being killed", WEXITSTATUS(status));
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    regstore_t *store = s_open(fx, 0);
    for (unsigned i = 0; i < 500; i++)
        s_assert_value(store, "a", i, 1);
    for (unsigned i = 0; i < 300; i++)
        s_assert_value(store, "b", i, 1);
    regstore_destroy(&store);
}

/*  A value the crash test can check for tearing: its bytes derive from
    its key index and generation, both stored in it. */
#define CRASH_VLEN 216
static void s_crash_value(uint8_t *v, uint32_t k, uint32_t gen)
{
    memcpy(v, &k, 4);
    memcpy(v + 4, &gen, 4);
    for (size_t i = 8; i < CRASH_VLEN; i++)
        v[i] = (uint8_t)(k + gen + i);
}

static bool s_crash_value_ok(const uint8_t *v, size_t len, uint32_t k)
{
    uint32_t kk, gen;
    if (len != CRASH_VLEN)
        return false;
    memcpy(&kk, v, 4);
    memcpy(&gen, v + 4, 4);
    for (size_t i = 8; i < CRASH_VLEN; i++)
        if (v[i] != (uint8_t)(k + gen + i))
            return false;
    return kk == k;
}

static int s_crash_pipe = -1;

/*  Child: commits batch A, then keeps writing batch B, flushing every 100
    puts without syncing, and tells the parent when commits are flowing;
    the parent kills it in the middle of that. */
static int s_child_crash(const fixture_t *fx)
{
    regstore_t *store = regstore_open(fx->dir, 0, NULL, 0);
    if (!store)
        return 2;
    char key[64], val[64];
    for (unsigned i = 0; i < 1000; i++)
        regstore_put(store, key, s_key(key, sizeof key, "A", i), val, s_val(val, sizeof val, i, 1));
    if (regstore_flush(store) != 0 || regstore_sync(store) != 0)
        return 3;
    uint8_t v[CRASH_VLEN];
    bool told = false;
    for (uint32_t j = 0; j < 100000000; j++) {
        uint32_t k = j % 3000;
        s_crash_value(v, k, j);
        if (regstore_put(store, key, s_key(key, sizeof key, "B", k), v, sizeof v) != 0)
            return 4;
        if (j % 100 == 99)
            regstore_flush(store);
        if (!told && j > 30000) {
            regstore_stats_t st;
            regstore_stats(store, &st);
            if (st.commits >= 5) {
                told = write(s_crash_pipe, "r", 1) == 1;
                if (!told)
                    return 5;
            }
        }
    }
    return 6; /* the parent should have killed us long ago */
}

typedef struct {
    unsigned count;
    bool ok;
} crash_scan_t;

static int s_scan_b(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    crash_scan_t *scan = arg;
    char name[32] = "";
    unsigned idx = 0;
    if (kl > 2 && kl - 2 < sizeof name) /* keys are not NUL-terminated */
        memcpy(name, (const char *)k + 2, kl - 2);
    if (sscanf(name, "host%u", &idx) != 1 || idx >= 3000 || !s_crash_value_ok(v, vl, idx))
        scan->ok = false;
    scan->count++;
    return 0;
}

static int s_count(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    (*(unsigned *)arg)++;
    return 0;
}

static void test_regstore_kill_9_keeps_synced_batch_and_never_corrupts(void **state)
{
    fixture_t *fx = *state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    s_crash_pipe = fds[1];
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        _exit(s_child_crash(fx));
    }
    close(fds[1]);
    char c = 0;
    ssize_t n = read(fds[0], &c, 1); /* blocks until commits are flowing */
    close(fds[0]);
    kill(pid, SIGKILL);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (n != 1)
        fail_msg("crash child failed before it was killed (status %d)", status);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    /* The store opens, batch A is whole, and any B value that made it is
       one the child wrote, never a torn one. */
    regstore_t *store = s_open(fx, 0);
    for (unsigned i = 0; i < 1000; i++)
        s_assert_value(store, "A", i, 1);
    unsigned a_count = 0;
    assert_int_equal(regstore_foreach(store, "A", 2, s_count, &a_count), 0);
    assert_int_equal(a_count, 1000);
    crash_scan_t scan = {0, true};
    assert_int_equal(regstore_foreach(store, "B", 2, s_scan_b, &scan), 0);
    assert_true(scan.ok);
    assert_true(scan.count <= 3000);
    for (unsigned i = 0; i < 3000; i++) {
        char key[64];
        const void *val;
        size_t vlen;
        int rc = regstore_get(store, key, s_key(key, sizeof key, "B", i), &val, &vlen);
        assert_true(rc == 0 || rc == NERVE_ENOENT);
        if (rc == 0)
            assert_true(s_crash_value_ok(val, vlen, i));
    }

    /* And it still takes writes. */
    s_put(store, "C", 1, 9);
    assert_int_equal(regstore_sync(store), 0);
    regstore_destroy(&store);
    store = s_open(fx, 0);
    s_assert_value(store, "C", 1, 9);
    regstore_destroy(&store);
}

static void test_regstore_destroy_persists_everything_without_sync(void **state)
{
    fixture_t *fx = *state;
    regstore_t *store = s_open(fx, 0);
    for (unsigned i = 0; i < 1000; i++)
        s_put(store, "s", i, 1);
    regstore_flush(store); /* one batch may be in flight at destroy */
    for (unsigned i = 0; i < 1000; i++)
        s_put(store, "s", i, 2);
    for (unsigned i = 1000; i < 1500; i++)
        s_put(store, "s", i, 3);
    regstore_destroy(&store);

    store = s_open(fx, 0);
    for (unsigned i = 0; i < 1000; i++)
        s_assert_value(store, "s", i, 2);
    for (unsigned i = 1000; i < 1500; i++)
        s_assert_value(store, "s", i, 3);
    regstore_destroy(&store);
}

static void test_regstore_put_during_commit_keeps_the_newest_value(void **state)
{
    fixture_t *fx = *state;
    regstore_t *store = s_open(fx, 0);
    for (unsigned gen = 1; gen <= 50; gen++) {
        for (unsigned i = 0; i < 200; i++)
            s_put(store, "n", i, gen);
        regstore_flush(store);
    }
    assert_int_equal(regstore_sync(store), 0);
    regstore_stats_t st;
    regstore_stats(store, &st);
    assert_int_equal(st.dirty, 0);
    assert_true(st.commits >= 1);
    assert_int_equal(st.commit_errors, 0);
    regstore_destroy(&store);

    store = s_open(fx, 0);
    for (unsigned i = 0; i < 200; i++)
        s_assert_value(store, "n", i, 50);
    regstore_destroy(&store);
}

typedef struct {
    char keys[8][16];
    size_t lens[8];
    unsigned n;
    unsigned stop_after;
} listing_t;

static int s_list(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    listing_t *l = arg;
    if (l->n < 8 && kl <= sizeof l->keys[0]) {
        memcpy(l->keys[l->n], k, kl);
        l->lens[l->n] = kl;
    }
    l->n++;
    return l->stop_after && l->n == l->stop_after ? 42 : 0;
}

static void test_regstore_foreach_visits_keys_with_the_prefix_in_order(void **state)
{
    fixture_t *fx = *state;
    regstore_t *store = s_open(fx, 0);
    assert_int_equal(regstore_put(store, "ab\0z", 4, "3", 1), 0);
    assert_int_equal(regstore_put(store, "a\0y", 3, "2", 1), 0);
    assert_int_equal(regstore_put(store, "a\0x", 3, "1", 1), 0);
    assert_int_equal(regstore_put(store, "b\0q", 3, "4", 1), 0);
    assert_int_equal(regstore_put(store, "a", 1, "0", 1), 0);
    assert_int_equal(regstore_put(store, "a\0gone", 6, "5", 1), 0);
    assert_int_equal(regstore_sync(store), 0);
    assert_int_equal(regstore_del(store, "a\0gone", 6), 0); /* not flushed: foreach syncs */

    listing_t l = {0};
    assert_int_equal(regstore_foreach(store, "a\0", 2, s_list, &l), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.lens[0], 3);
    assert_memory_equal(l.keys[0], "a\0x", 3);
    assert_memory_equal(l.keys[1], "a\0y", 3);

    memset(&l, 0, sizeof l);
    assert_int_equal(regstore_foreach(store, "a", 1, s_list, &l), 0);
    assert_int_equal(l.n, 4); /* "a", "a\0x", "a\0y", "ab\0z" */
    assert_memory_equal(l.keys[0], "a", 1);
    assert_memory_equal(l.keys[3], "ab\0z", 4);

    memset(&l, 0, sizeof l);
    assert_int_equal(regstore_foreach(store, NULL, 0, s_list, &l), 0);
    assert_int_equal(l.n, 5);

    memset(&l, 0, sizeof l);
    assert_int_equal(regstore_foreach(store, "c", 1, s_list, &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(regstore_foreach(store, "zz", 2, s_list, &l), 0);
    assert_int_equal(l.n, 0);

    memset(&l, 0, sizeof l);
    l.stop_after = 2;
    assert_int_equal(regstore_foreach(store, NULL, 0, s_list, &l), 42);
    assert_int_equal(l.n, 2);
    assert_int_equal(regstore_foreach(store, NULL, 0, NULL, NULL), NERVE_EINVAL);
    regstore_destroy(&store);
}

static void test_regstore_eviction_drops_clean_entries_and_reloads_them(void **state)
{
    fixture_t *fx = *state;
    regstore_t *store = s_open(fx, 0);
    regstore_set_max_entries(store, 100);
    for (unsigned i = 0; i < 1000; i++)
        s_put(store, "e", i, 1);
    assert_int_equal(regstore_sync(store), 0);
    assert_int_equal(regstore_flush(store), 0);
    regstore_stats_t st;
    regstore_stats(store, &st);
    assert_true(st.cached <= 100 - 100 / 8);
    assert_true(st.cached > 0);
    for (unsigned i = 0; i < 1000; i++) /* evicted ones come back from LMDB */
        s_assert_value(store, "e", i, 1);
    regstore_stats(store, &st);
    assert_int_equal(st.cached, 1000);
    regstore_destroy(&store);
}

/*  A full map keeps commits failing, so dirty entries stay dirty and are
    in the cache only: evicting one would lose it, which get would show. */
static void test_regstore_eviction_keeps_dirty_entries(void **state)
{
    fixture_t *fx = *state;
    regstore_t *store = s_open(fx, 64 * 1024);
    for (unsigned i = 0; i < 10; i++)
        s_put(store, "clean", i, 1);
    assert_int_equal(regstore_sync(store), 0);

    char key[64], big[4000];
    for (unsigned i = 0; i < 200; i++) {
        memset(big, (int)i, sizeof big);
        assert_int_equal(
            regstore_put(store, key, s_key(key, sizeof key, "dirty", i), big, sizeof big), 0);
    }
    assert_int_equal(regstore_sync(store), NERVE_EFULL);
    regstore_set_max_entries(store, 5);
    assert_int_equal(regstore_flush(store), 0);
    regstore_stats_t st;
    regstore_stats(store, &st);
    assert_int_equal(st.cached, 200); /* every clean one went, no dirty one */
    for (unsigned i = 0; i < 200; i++) {
        const void *val;
        size_t vlen;
        assert_int_equal(regstore_get(store, key, s_key(key, sizeof key, "dirty", i), &val, &vlen),
                         0);
        assert_int_equal(vlen, sizeof big);
        assert_int_equal(((const uint8_t *)val)[0], (uint8_t)i);
        assert_int_equal(((const uint8_t *)val)[sizeof big - 1], (uint8_t)i);
    }
    for (unsigned i = 0; i < 10; i++)
        s_assert_value(store, "clean", i, 1);
    regstore_destroy(&store); /* logs the loss of the 200: expected */
}

static void test_regstore_map_full_is_reported_and_keeps_entries(void **state)
{
    fixture_t *fx = *state;
    regstore_t *store = s_open(fx, 64 * 1024);
    char key[64], big[4000];
    memset(big, 'm', sizeof big);
    for (unsigned i = 0; i < 100; i++)
        assert_int_equal(regstore_put(store, key, s_key(key, sizeof key, "m", i), big, sizeof big),
                         0);
    assert_int_equal(regstore_flush(store), 0);
    assert_int_equal(regstore_sync(store), NERVE_EFULL);
    assert_int_equal(regstore_sync(store), NERVE_EFULL); /* retried, same answer */
    regstore_stats_t st;
    regstore_stats(store, &st);
    assert_true(st.commit_errors >= 2);
    assert_int_equal(st.commits, 0);
    assert_int_equal(st.dirty, 100);
    const void *val;
    size_t vlen;
    assert_int_equal(regstore_get(store, key, s_key(key, sizeof key, "m", 7), &val, &vlen), 0);
    assert_int_equal(vlen, sizeof big);

    /* Changes made while a doomed batch is at the writer win over it, and
       deleting what does not fit makes room: the store recovers. */
    assert_int_equal(regstore_flush(store), 0); /* the retry, failing again */
    for (unsigned i = 2; i < 100; i++)
        assert_int_equal(regstore_del(store, key, s_key(key, sizeof key, "m", i)), 0);
    assert_int_equal(regstore_put(store, key, s_key(key, sizeof key, "m", 1), "small", 5), 0);
    assert_int_equal(regstore_sync(store), 0);
    regstore_stats(store, &st);
    assert_int_equal(st.dirty, 0);
    assert_int_equal(st.commits, 1);
    assert_true(st.commit_errors >= 3);
    regstore_destroy(&store);

    store = s_open(fx, 64 * 1024);
    assert_int_equal(regstore_get(store, key, s_key(key, sizeof key, "m", 0), &val, &vlen), 0);
    assert_int_equal(vlen, sizeof big);
    assert_int_equal(regstore_get(store, key, s_key(key, sizeof key, "m", 1), &val, &vlen), 0);
    assert_int_equal(vlen, 5);
    assert_memory_equal(val, "small", 5);
    assert_int_equal(regstore_get(store, key, s_key(key, sizeof key, "m", 2), &val, &vlen),
                     NERVE_ENOENT);
    unsigned n = 0;
    assert_int_equal(regstore_foreach(store, "m", 2, s_count, &n), 0);
    assert_int_equal(n, 2);
    regstore_destroy(&store);
}

/*  Runs as an unprivileged user (root ignores modes): both a store that
    cannot be created and one that cannot be opened must say where and why. */
static int s_child_no_permission(const fixture_t *fx)
{
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
        return 2;
    char path[192], err[256] = "";
    snprintf(path, sizeof path, "%s/locked/store", fx->root);
    if (regstore_open(path, 0, err, sizeof err))
        return 3;
    if (!strstr(err, path) || !strstr(err, "Permission denied"))
        return 4;
    snprintf(path, sizeof path, "%s/locked", fx->root);
    err[0] = '\0';
    if (regstore_open(path, 0, err, sizeof err))
        return 5;
    if (!strstr(err, path) || !strstr(err, "Permission denied"))
        return 6;
    return 0;
}

static void test_regstore_unwritable_dir_gives_a_clear_error(void **state)
{
    fixture_t *fx = *state;
    char locked[128];
    snprintf(locked, sizeof locked, "%s/locked", fx->root);
    assert_int_equal(mkdir(locked, 0700), 0);
    assert_int_equal(chmod(fx->root, 0755), 0);
    if (geteuid() != 0)
        assert_int_equal(chmod(locked, 0), 0);
    int status = s_in_child(s_child_no_permission, fx);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_regstore_corrupt_file_gives_a_clear_error(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(mkdir(fx->dir, 0700), 0);
    char path[192];
    snprintf(path, sizeof path, "%s/data.mdb", fx->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 64 * 1024; i++)
        fputc(0x5a, f);
    fclose(f);
    char err[256] = "";
    assert_null(regstore_open(fx->dir, 0, err, sizeof err));
    assert_non_null(strstr(err, fx->dir));
    assert_non_null(strstr(err, "corrupt"));
}

static void test_regstore_refuses_a_second_open_of_one_dir(void **state)
{
    fixture_t *fx = *state;
    regstore_t *store = s_open(fx, 0);
    char err[256] = "";
    assert_null(regstore_open(fx->dir, 0, err, sizeof err));
    assert_non_null(strstr(err, "already open"));
    regstore_destroy(&store);
    store = s_open(fx, 0); /* the lock goes with the store */
    regstore_destroy(&store);

    assert_null(regstore_open("", 0, err, sizeof err));
    assert_null(regstore_open(NULL, 0, err, sizeof err));
}

static void test_regstore_creates_its_directory_private(void **state)
{
    fixture_t *fx = *state;
    char deep[192];
    snprintf(deep, sizeof deep, "%s/a/b", fx->root);
    char err[256] = "";
    regstore_t *store = regstore_open(deep, 0, err, sizeof err);
    assert_non_null(store);
    struct stat st;
    assert_int_equal(stat(deep, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    regstore_destroy(&store);
}

/*  Random puts, dels and gets against a plain array, with a small cache
    limit so that evictions empty slots in the middle of probe runs all the
    time, flushes and syncs in between, and a full check of every key
    (from the cache or reloaded from LMDB) at the end and after reopening. */
static void test_regstore_random_operations_match_a_model(void **state)
{
    fixture_t *fx = *state;
    enum { KEYS = 3000, OPS = 60000 };
    static unsigned gen[KEYS]; /* 0: absent, else the generation stored */
    memset(gen, 0, sizeof gen);
    regstore_t *store = s_open(fx, 0);
    regstore_set_max_entries(store, 200);
    uint64_t rng = 12345;
    for (unsigned op = 1; op <= OPS; op++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(rng >> 33), i = r % KEYS;
        switch ((r >> 16) % 8) {
        case 0:
        case 1:
        case 2:
            s_put(store, "m", i, op);
            gen[i] = op;
            break;
        case 3: {
            char key[64];
            size_t klen = s_key(key, sizeof key, "m", i);
            assert_int_equal(regstore_del(store, key, klen), 0);
            gen[i] = 0;
            break;
        }
        case 4:
            if (op % 7 == 0)
                assert_int_equal(regstore_sync(store), 0);
            assert_int_equal(regstore_flush(store), 0);
            break;
        default:
            if (gen[i])
                s_assert_value(store, "m", i, gen[i]);
            else
                assert_int_equal(s_get_rc(store, "m", i), NERVE_ENOENT);
        }
    }
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < KEYS; i++) {
            if (gen[i])
                s_assert_value(store, "m", i, gen[i]);
            else
                assert_int_equal(s_get_rc(store, "m", i), NERVE_ENOENT);
        }
        regstore_destroy(&store);
        if (pass == 0)
            store = s_open(fx, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)
        T(test_regstore_put_get_del_round_trip),
        T(test_regstore_rejects_bad_keys_and_values),
        T(test_regstore_values_survive_close_and_reopen),
        T(test_regstore_flush_without_sync_then_sync_persists),
        T(test_regstore_kill_9_keeps_synced_batch_and_never_corrupts),
        T(test_regstore_destroy_persists_everything_without_sync),
        T(test_regstore_put_during_commit_keeps_the_newest_value),
        T(test_regstore_foreach_visits_keys_with_the_prefix_in_order),
        T(test_regstore_eviction_drops_clean_entries_and_reloads_them),
        T(test_regstore_eviction_keeps_dirty_entries),
        T(test_regstore_random_operations_match_a_model),
        T(test_regstore_map_full_is_reported_and_keeps_entries),
        T(test_regstore_unwritable_dir_gives_a_clear_error),
        T(test_regstore_corrupt_file_gives_a_clear_error),
        T(test_regstore_refuses_a_second_open_of_one_dir),
        T(test_regstore_creates_its_directory_private),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
