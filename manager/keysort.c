/*  keysort.c — three-way radix quicksort of byte-string keys, 8 bytes per
    step (see keysort.h).

    Each key is represented by an item: the 8 bytes of the key at the
    current depth d, as a big-endian number (zero-padded past the key's
    end), and the key's index. s_sort() partitions items three ways on
    that chunk. The "equal" part goes to s_sort_equal(), which puts the
    keys that end within this chunk first (a key that is a prefix of
    another sorts before it, shorter first) and sorts the rest on the next
    chunk. Small parts are finished by insertion sort on whole keys.

    Recursion: s_sort() recurses into the smaller of its "less" and
    "greater" parts and loops on the larger (so its depth is O(log n)), and
    s_sort_equal() goes one chunk deeper per level (at most a key's length
    / 8 levels: keys are at most 511 bytes in the store).
*/
#include "keysort.h"

#include <nerve/error.h>
#include <nerve/log.h>

#include <stdlib.h>
#include <string.h>

#define S_SMALL 12 /* parts this small are insertion-sorted */

typedef struct {
    uint64_t chunk; /* key bytes [d, d+8) big-endian, zero-padded */
    uint32_t idx;
    uint32_t len; /* the key's length, copied here to spare a lookup */
} item_t;

static inline uint64_t s_load8(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t s_big_endian(uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return __builtin_bswap64(v);
#else
    return v;
#endif
}

static inline uint64_t s_chunk(const keysort_key_t *k, size_t d)
{
    if (d >= k->len)
        return 0;
    size_t n = k->len - d;
    if (n >= 8)
        return s_big_endian(s_load8(k->bytes + d));
    uint8_t buf[8] = {0};
    memcpy(buf, k->bytes + d, n);
    return s_big_endian(s_load8(buf));
}

int keysort_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    for (; n >= 8; n -= 8, a += 8, b += 8, alen -= 8, blen -= 8) {
        uint64_t u = s_load8(a), v = s_load8(b);
        if (u != v)
            return s_big_endian(u) < s_big_endian(v) ? -1 : 1;
    }
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static inline void s_swap(item_t *x, item_t *y)
{
    item_t t = *x;
    *x = *y;
    *y = t;
}

/*  Items whose keys agree on their first d bytes. */
static void s_insertion(item_t *a, size_t n, size_t d, const keysort_key_t *keys)
{
    for (size_t i = 1; i < n; i++) {
        item_t x = a[i];
        const keysort_key_t *kx = &keys[x.idx];
        size_t j = i;
        while (j > 0) {
            const item_t *y = &a[j - 1];
            int c;
            if (y->chunk != x.chunk) {
                c = y->chunk < x.chunk ? -1 : 1;
            } else {
                const keysort_key_t *ky = &keys[y->idx];
                c = keysort_cmp(ky->bytes + d, ky->len - d, kx->bytes + d, kx->len - d);
            }
            if (c <= 0)
                break;
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
}

/*  Pivots are the median of three chunks at random positions: the first,
    middle and last would do for shuffled keys, but a batch dirtied in key
    order (or rotated, as the partition leaves its parts) then gets the
    smallest key as pivot every time, and the sort grows as n^1.5. */
static inline uint64_t s_rand(uint64_t *rng)
{
    uint64_t x = *rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *rng = x;
}

static uint64_t s_median3(uint64_t x, uint64_t y, uint64_t z)
{
    if (x < y)
        return y < z ? y : (x < z ? z : x);
    return x < z ? x : (y < z ? z : y);
}

static void s_sort(item_t *a, size_t n, size_t d, const keysort_key_t *keys, uint64_t *rng);

/*  Items whose chunks at depth d are all equal. */
static void s_sort_equal(item_t *a, size_t n, size_t d, const keysort_key_t *keys,
                         uint64_t *rng)
{
    if (n <= 1)
        return;
    /* Keys that end within this chunk first, by length: each is a prefix
       of the longer ones here (zero padding made the chunks equal). */
    size_t done = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i].len <= d + 8)
            s_swap(&a[done++], &a[i]);
    if (done > 1) { /* order them by length: one pass per length left */
        size_t sorted = 0;
        for (size_t len = d; len <= d + 8 && sorted < done; len++)
            for (size_t i = sorted; i < done; i++)
                if (a[i].len == len)
                    s_swap(&a[sorted++], &a[i]);
    }
    item_t *rest = a + done;
    size_t m = n - done;
    for (size_t i = 0; i < m; i++)
        rest[i].chunk = s_chunk(&keys[rest[i].idx], d + 8);
    s_sort(rest, m, d + 8, keys, rng);
}

static void s_sort(item_t *a, size_t n, size_t d, const keysort_key_t *keys, uint64_t *rng)
{
    while (n > S_SMALL) {
        uint64_t p = s_median3(a[s_rand(rng) % n].chunk, a[s_rand(rng) % n].chunk,
                               a[s_rand(rng) % n].chunk);
        size_t lt = 0, i = 0, gt = n;
        while (i < gt) {
            uint64_t c = a[i].chunk;
            if (c < p)
                s_swap(&a[lt++], &a[i++]);
            else if (c > p)
                s_swap(&a[i], &a[--gt]);
            else
                i++;
        }
        s_sort_equal(a + lt, gt - lt, d, keys, rng);
        if (lt < n - gt) {
            s_sort(a, lt, d, keys, rng);
            a += gt;
            n -= gt;
        } else {
            s_sort(a + gt, n - gt, d, keys, rng);
            n = lt;
        }
    }
    s_insertion(a, n, d, keys);
}

int keysort(const keysort_key_t *keys, size_t n, uint32_t *order)
{
    if (n == 0)
        return NERVE_OK;
    if (!keys || !order || n > UINT32_MAX)
        return NERVE_EINVAL;
    item_t *a = malloc(n * sizeof *a);
    if (!a)
        return NERVE_ENOMEM;
    for (size_t i = 0; i < n; i++)
        a[i] = (item_t){.chunk = s_chunk(&keys[i], 0),
                        .idx = (uint32_t)i,
                        .len = keys[i].len > UINT32_MAX ? UINT32_MAX : (uint32_t)keys[i].len};
    uint64_t rng = nerve_clock_mono_ns() | 1; /* a new sequence per call */
    s_sort(a, n, 0, keys, &rng);
    for (size_t i = 0; i < n; i++)
        order[i] = a[i].idx;
    free(a);
    return NERVE_OK;
}
