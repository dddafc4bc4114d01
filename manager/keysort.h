/*  keysort.h — sorting byte-string keys into LMDB's order, fast.

    The register store's writer sorts every batch before it commits it
    (regstore.c): LMDB then finds each key from the leaf the previous one
    left its cursor on. Batches are large (tens of thousands of keys under
    load) and their keys share long prefixes — "R<scope>\0<host>", where
    the scope is the same for every key of a rule — which is the worst
    case for a comparison sort calling memcmp: each comparison walks the
    shared prefix again, from memory scattered over the batch.

    keysort() is a three-way radix quicksort (Bentley and Sedgewick) over
    8-byte big-endian chunks: it partitions on the chunk at the current
    depth, and only the keys equal there move on to the next chunk, so a
    shared prefix is read once per key, not once per comparison, and the
    partitioning touches a compact array of (chunk, index) pairs.

    The order is LMDB's default (mdb_cmp_memn): bytes as unsigned, and a
    key that is a prefix of another comes first.
*/
#ifndef NERVE_MANAGER_KEYSORT_H
#define NERVE_MANAGER_KEYSORT_H

#include <stddef.h>
#include <stdint.h>

typedef struct keysort_key {
    const uint8_t *bytes;
    size_t len;
} keysort_key_t;

/*  Writes to order[0..n-1] the indices of keys[] in ascending key order
    (ties, equal keys, in any order). n must be below 2^32. Returns 0, or
    NERVE_ENOMEM (order is then untouched) — its scratch is 16 bytes per
    key. */
int keysort(const keysort_key_t *keys, size_t n, uint32_t *order);

/*  LMDB's order for two keys: < 0, 0 or > 0, as memcmp. */
int keysort_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

#endif
