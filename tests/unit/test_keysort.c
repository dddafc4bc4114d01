/*  test_keysort.c — keysort() against a plain comparison sort with LMDB's
    comparator, on the shapes that break radix sorts: keys that are
    prefixes of others, zero bytes where the padding goes, 0xff bytes,
    long shared prefixes, duplicates, every length around the 8-byte steps;
    and keysort_cmp() against memcmp-then-length.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nerve/error.h>

#include "keysort.h"

#define S_MAXLEN 48

static uint64_t s_rng;

static uint32_t s_rand(void)
{
    s_rng = s_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(s_rng >> 33);
}

/*  LMDB's mdb_cmp_memn, written the obvious way. */
static int s_ref_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c != 0)
        return c;
    return al < bl ? -1 : al > bl;
}

static int s_sign(int x)
{
    return (x > 0) - (x < 0);
}

typedef struct {
    uint8_t bytes[S_MAXLEN];
    size_t len;
} key_t_;

/*  Keys drawn from a small alphabet {0x00, 0x01, 'a', 0xff} over shared
    prefixes, so equal chunks, prefixes and padding collisions are common. */
static void s_make(key_t_ *k, int shape)
{
    static const uint8_t alpha[] = {0x00, 0x01, 'a', 0xff};
    static const char *prefixes[] = {"", "Rbench/metric", "Rbench/metric1\0", "R"};
    const char *pre = prefixes[s_rand() % 4];
    size_t plen = strlen(pre) + (pre == prefixes[2] ? 1 : 0);
    if (shape == 1)
        plen = 0;
    memcpy(k->bytes, pre, plen);
    size_t extra = s_rand() % (S_MAXLEN - plen + 1);
    if (plen + extra == 0)
        extra = 1;
    for (size_t i = 0; i < extra; i++)
        k->bytes[plen + i] = alpha[s_rand() % 4];
    k->len = plen + extra;
}

static void s_check_sorted(key_t_ *keys, size_t n)
{
    keysort_key_t *kk = malloc(n * sizeof *kk);
    uint32_t *order = malloc(n * sizeof *order);
    uint8_t *seen = calloc(n, 1);
    assert_non_null(kk);
    assert_non_null(order);
    assert_non_null(seen);
    for (size_t i = 0; i < n; i++)
        kk[i] = (keysort_key_t){keys[i].bytes, keys[i].len};
    assert_int_equal(keysort(kk, n, order), NERVE_OK);
    for (size_t i = 0; i < n; i++) { /* a permutation */
        assert_true(order[i] < n);
        assert_false(seen[order[i]]);
        seen[order[i]] = 1;
    }
    for (size_t i = 1; i < n; i++) {
        const key_t_ *a = &keys[order[i - 1]], *b = &keys[order[i]];
        if (s_ref_cmp(a->bytes, a->len, b->bytes, b->len) > 0)
            fail_msg("out of order at %zu (lengths %zu, %zu)", i, a->len, b->len);
    }
    free(kk);
    free(order);
    free(seen);
}

static void test_keysort_matches_the_reference_order(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 5, 12, 13, 40, 1000, 20000};
    for (unsigned seed = 1; seed <= 4; seed++) {
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            s_rng = seed * 7919 + s;
            size_t n = sizes[s];
            key_t_ *keys = calloc(n ? n : 1, sizeof *keys);
            assert_non_null(keys);
            for (size_t i = 0; i < n; i++) {
                s_make(&keys[i], (int)(seed % 2));
                if (i > 0 && s_rand() % 8 == 0) /* duplicates */
                    keys[i] = keys[s_rand() % i];
            }
            s_check_sorted(keys, n);
            free(keys);
        }
    }
}

/*  Every length from 1 to 40 of one byte value, and of zeros: each key is
    a prefix of the next, and zero keys look like padding. */
static void test_keysort_orders_prefixes_by_length(void **state)
{
    (void)state;
    for (int fill = 0; fill < 3; fill++) {
        key_t_ keys[80];
        size_t n = 0;
        for (size_t len = 40; len >= 1; len--) {
            memset(keys[n].bytes, fill == 0 ? 0 : fill == 1 ? 'x' : 0xff, len);
            keys[n++].len = len;
            memset(keys[n].bytes, fill == 0 ? 0 : 'x', len);
            keys[n].bytes[len - 1] = 0x01;
            keys[n++].len = len;
        }
        s_check_sorted(keys, n);
    }
}

static void test_keysort_of_the_manager_shape(void **state)
{
    (void)state;
    size_t n = 100 * 100;
    key_t_ *keys = calloc(n, sizeof *keys);
    assert_non_null(keys);
    s_rng = 99;
    for (size_t i = 0; i < n; i++) {
        size_t m = s_rand() % 100, h = s_rand() % 1000;
        char *b = (char *)keys[i].bytes;
        int a = snprintf(b, S_MAXLEN, "Rbench/metric%zu", m);
        b[a] = '\0';
        int c = snprintf(b + a + 1, S_MAXLEN - (size_t)a - 1, "host%zu", h);
        keys[i].len = (size_t)a + 1 + (size_t)c;
    }
    s_check_sorted(keys, n);
    free(keys);
}

/*  Keys already in order, in reverse, and rotated (as a partition leaves
    its parts): the orders a batch dirtied host by host arrives in, and the
    ones that break a first/middle/last pivot. 8-byte keys that differ
    within one chunk, and the manager's shape. */
static void test_keysort_sorted_reversed_and_rotated_inputs(void **state)
{
    (void)state;
    enum { N = 50000 };
    key_t_ *keys = calloc(N, sizeof *keys);
    key_t_ *tmp = calloc(N, sizeof *tmp);
    assert_non_null(keys);
    assert_non_null(tmp);
    for (int shape = 0; shape < 2; shape++) {
        for (size_t i = 0; i < N; i++) {
            char *b = (char *)keys[i].bytes;
            if (shape == 0) {
                snprintf(b, S_MAXLEN, "%08zu", i);
                keys[i].len = 8;
            } else {
                int a = snprintf(b, S_MAXLEN, "Rcpu.load");
                b[a] = '\0';
                keys[i].len = (size_t)a + 1 +
                              (size_t)snprintf(b + a + 1, S_MAXLEN - (size_t)a - 1, "web%06zu", i);
            }
        }
        s_check_sorted(keys, N); /* sorted */
        for (size_t i = 0; i < N; i++)
            tmp[i] = keys[N - 1 - i];
        s_check_sorted(tmp, N); /* reversed */
        for (size_t i = 0; i < N; i++)
            tmp[i] = keys[(i + N / 3) % N];
        s_check_sorted(tmp, N); /* rotated */
    }
    free(keys);
    free(tmp);
}

static void test_keysort_cmp_agrees_with_memcmp_then_length(void **state)
{
    (void)state;
    s_rng = 5;
    for (int i = 0; i < 200000; i++) {
        key_t_ a, b;
        s_make(&a, i % 2);
        if (i % 3 == 0) { /* b shares a prefix of a */
            b = a;
            b.len = 1 + s_rand() % S_MAXLEN;
            for (size_t j = a.len; j < b.len; j++)
                b.bytes[j] = (uint8_t)s_rand();
        } else {
            s_make(&b, i % 2);
        }
        assert_int_equal(s_sign(keysort_cmp(a.bytes, a.len, b.bytes, b.len)),
                         s_sign(s_ref_cmp(a.bytes, a.len, b.bytes, b.len)));
    }
}

static void test_keysort_refuses_null(void **state)
{
    (void)state;
    uint32_t order[1];
    assert_int_equal(keysort(NULL, 1, order), NERVE_EINVAL);
    keysort_key_t k = {(const uint8_t *)"a", 1};
    assert_int_equal(keysort(&k, 1, NULL), NERVE_EINVAL);
    assert_int_equal(keysort(NULL, 0, NULL), NERVE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keysort_matches_the_reference_order),
        cmocka_unit_test(test_keysort_orders_prefixes_by_length),
        cmocka_unit_test(test_keysort_of_the_manager_shape),
        cmocka_unit_test(test_keysort_sorted_reversed_and_rotated_inputs),
        cmocka_unit_test(test_keysort_cmp_agrees_with_memcmp_then_length),
        cmocka_unit_test(test_keysort_refuses_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
