// tag_index.c — a trie over tag segments that maps tags to rule blocks.
//
// (Line comments in this file: tag globs such as /a/** contain the two
// characters that open a C block comment.)
//
// Each trie node is a position between segments of a glob. Its children are
// split by kind: literal segments in a small open-addressed hash table, one
// "*" child, one "**" child, and in-segment globs. Those with a literal
// prefix ("web*", "db1*.log") sit in a second hash table keyed by that
// prefix, so a segment is tried only against globs whose prefix it starts
// with: one probe per distinct prefix length. Those that start with '*'
// ("*.log") are a short list tried one by one. A glob's values live on the
// node where it ends.
//
// Matching simulates the trie as an automaton instead of backtracking: the
// tag is read segment by segment while a set of active nodes is carried
// along. A "**" node is entered without consuming a segment (so it joins
// the set together with its parent) and loops on any segment (so it stays
// in the set). Each node enters a set at most once per step, marked with a
// generation number, so a step costs at most the number of nodes and the
// usual case — a few literal lookups — costs a few hash probes, however many
// globs the index holds. The two sets and the array that gathers values are
// scratch owned by the index and grown in tag_index_add(), never in a match.
#include "tag_index.h"

#include <nerve/log.h>
#include <nerve/tagglob.h>
#include <nerve/wire.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

// A glob of NERVE_TAG_MAX bytes has at most this many segments ("/a/a/…").
#define S_MAX_SEGMENTS (NERVE_TAG_MAX / 2 + 1)

typedef enum {
    S_LITERAL,
    S_STAR,  // "*": one non-empty segment
    S_DSTAR, // "**": zero or more segments
    S_GLOB,  // '*' within a segment
} s_kind_t;

typedef struct node node_t;

// Open addressing with linear probing, at most half full. Keyed by each
// child's `hash`; several children may share a key (globs with one prefix).
typedef struct {
    node_t **slots; // NULL until the first child
    uint32_t cap;   // 0 or a power of two
    uint32_t count;
} s_table_t;

struct node {
    uint64_t mark;           // generation of the set this node was last put in
    s_table_t lit;           // literal children, by hash of the segment
    s_table_t prefixed;      // in-segment globs with a literal prefix, by its hash
    uint64_t prefix_lens[4]; // bit L: some glob in `prefixed` has an L-byte prefix
    node_t *star;
    node_t *dstar;
    node_t **globs; // in-segment globs that start with '*', in order added
    uint32_t glob_count;
    uint32_t value_count;
    uint32_t value_cap;
    uint32_t *values;   // ascending, distinct
    uint32_t hash;      // literal: of seg; in-segment glob: of its prefix
    bool is_dstar;      // reached through "**": loops on every segment
    uint8_t prefix_len; // in-segment glob: bytes before the first '*'
    uint16_t seg_len;
    char seg[]; // literal or in-segment glob text, NUL-terminated
};

// Written by tag_index_match() through a const index: kept behind a pointer
// so that the index itself stays const-correct.
typedef struct {
    uint64_t gen;
    node_t **set_a;
    node_t **set_b;
    size_t set_cap; // entries in each of set_a and set_b
    uint32_t *vals;
    size_t vals_cap;
} s_scratch_t;

struct tag_index {
    node_t *root;
    size_t nodes;       // every node, the root included
    size_t pairs;       // distinct (glob, value) pairs
    size_t value_slots; // sum of value_count over all nodes
    s_scratch_t *scratch;
};

typedef struct {
    s_kind_t kind;
    const char *text; // points into the caller's buffer
    size_t len;
} s_segment_t;

// FNV-1a: short keys, no setup, and it extends byte by byte, so the hashes
// of every prefix of a segment come out of one pass.
#define S_HASH_INIT 2166136261u

static uint32_t s_hash_more(uint32_t h, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t s_hash(const char *s, size_t len)
{
    return s_hash_more(S_HASH_INIT, s, len);
}

// `prefix_len` is the length of the literal prefix of an in-segment glob,
// and 0 for other nodes; the node's hash covers that prefix or, for a
// literal, the whole segment.
static node_t *s_node_new(const char *seg, size_t len, size_t prefix_len, bool is_dstar)
{
    node_t *node = calloc(1, sizeof(*node) + len + 1);
    if (!node)
        return NULL;
    if (len)
        memcpy(node->seg, seg, len);
    node->seg_len = (uint16_t)len;
    node->prefix_len = (uint8_t)prefix_len;
    node->hash = s_hash(seg, prefix_len ? prefix_len : len);
    node->is_dstar = is_dstar;
    return node;
}

static void s_node_destroy(node_t *node)
{
    if (!node)
        return;
    for (uint32_t i = 0; i < node->lit.cap; i++)
        s_node_destroy(node->lit.slots[i]);
    for (uint32_t i = 0; i < node->prefixed.cap; i++)
        s_node_destroy(node->prefixed.slots[i]);
    for (uint32_t i = 0; i < node->glob_count; i++)
        s_node_destroy(node->globs[i]);
    s_node_destroy(node->star);
    s_node_destroy(node->dstar);
    free(node->lit.slots);
    free(node->prefixed.slots);
    free(node->globs);
    free(node->values);
    free(node);
}

static node_t *s_lit_find(const node_t *node, const char *seg, size_t len, uint32_t hash)
{
    uint32_t mask = node->lit.cap - 1;
    for (uint32_t i = hash & mask;; i = (i + 1) & mask) {
        node_t *child = node->lit.slots[i];
        if (!child)
            return NULL;
        if (child->hash == hash && child->seg_len == len && memcmp(child->seg, seg, len) == 0)
            return child;
    }
}

static void s_table_place(node_t **slots, uint32_t cap, node_t *child)
{
    uint32_t mask = cap - 1;
    uint32_t i = child->hash & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = child;
}

// Keeps the table at most half full, so probes stay short.
static int s_table_insert(s_table_t *table, node_t *child)
{
    if ((table->count + 1) * 2 > table->cap) {
        uint32_t cap = table->cap ? table->cap * 2 : 4;
        node_t **slots = calloc(cap, sizeof(*slots));
        if (!slots)
            return NERVE_ENOMEM;
        for (uint32_t i = 0; i < table->cap; i++)
            if (table->slots[i])
                s_table_place(slots, cap, table->slots[i]);
        free(table->slots);
        table->slots = slots;
        table->cap = cap;
    }
    s_table_place(table->slots, table->cap, child);
    table->count++;
    return 0;
}

// Splits and checks a glob. In-segment globs are written to `buf` with runs
// of '*' collapsed, so "a**b" and "a*b" land on one node. Returns the number
// of segments, or NERVE_EINVAL.
static int s_parse(const char *glob, s_segment_t *segs, char *buf)
{
    size_t len = strnlen(glob, NERVE_TAG_MAX + 1);
    if (len == 0 || len > NERVE_TAG_MAX || glob[0] != '/')
        return NERVE_EINVAL;
    // One trailing '/' is insignificant; "//" is an empty segment, not "/".
    if (len > 1 && glob[len - 1] == '/' && glob[len - 2] != '/')
        len--;
    int nsegs = 0;
    if (len == 1)
        return 0;
    const char *p = glob + 1, *end = glob + len;
    char *out = buf;
    while (p <= end) {
        const char *q = memchr(p, '/', (size_t)(end - p));
        if (!q)
            q = end;
        size_t seglen = (size_t)(q - p);
        if (seglen == 0)
            return NERVE_EINVAL;
        size_t stars = 0;
        for (size_t i = 0; i < seglen; i++)
            stars += p[i] == '*';
        s_segment_t seg = {S_LITERAL, p, seglen};
        if (stars == seglen) {
            if (seglen > 2)
                return NERVE_EINVAL;
            seg.kind = seglen == 1 ? S_STAR : S_DSTAR;
        } else if (stars) {
            seg.kind = S_GLOB;
            seg.text = out;
            for (size_t i = 0; i < seglen; i++)
                if (p[i] != '*' || i == 0 || p[i - 1] != '*')
                    *out++ = p[i];
            seg.len = (size_t)(out - seg.text);
        }
        // "**/**" means what "**" means; keeping one saves a node per step.
        if (!(seg.kind == S_DSTAR && nsegs && segs[nsegs - 1].kind == S_DSTAR))
            segs[nsegs++] = seg;
        p = q + 1;
    }
    return nsegs;
}

// Sizes the scratch for `nodes` nodes and `slots` values before anything is
// added, so that a match never needs more than what is there.
static int s_reserve(s_scratch_t *s, size_t nodes, size_t slots)
{
    if (nodes > s->set_cap) {
        size_t want = s->set_cap ? s->set_cap : 16;
        while (want < nodes)
            want *= 2;
        // A grown set_a with a failed set_b is fine: set_cap stays the
        // smaller size, which both still hold.
        node_t **a = realloc(s->set_a, want * sizeof(*a));
        if (!a)
            return NERVE_ENOMEM;
        s->set_a = a;
        node_t **b = realloc(s->set_b, want * sizeof(*b));
        if (!b)
            return NERVE_ENOMEM;
        s->set_b = b;
        s->set_cap = want;
    }
    if (slots > s->vals_cap) {
        size_t want = s->vals_cap ? s->vals_cap : 16;
        while (want < slots)
            want *= 2;
        uint32_t *vals = realloc(s->vals, want * sizeof(*vals));
        if (!vals)
            return NERVE_ENOMEM;
        s->vals = vals;
        s->vals_cap = want;
    }
    return 0;
}

// The bytes of an in-segment glob before its first '*'.
static size_t s_prefix_len(const char *text, size_t len)
{
    const char *star = memchr(text, '*', len);
    return star ? (size_t)(star - text) : len;
}

// The in-segment glob child of `node` with exactly this text, or NULL.
static node_t *s_glob_find(const node_t *node, const char *text, size_t len)
{
    size_t prefix = s_prefix_len(text, len);
    if (prefix == 0) {
        for (uint32_t i = 0; i < node->glob_count; i++)
            if (node->globs[i]->seg_len == len && memcmp(node->globs[i]->seg, text, len) == 0)
                return node->globs[i];
        return NULL;
    }
    if (!node->prefixed.count)
        return NULL;
    uint32_t hash = s_hash(text, prefix), mask = node->prefixed.cap - 1;
    for (uint32_t i = hash & mask; node->prefixed.slots[i]; i = (i + 1) & mask) {
        node_t *child = node->prefixed.slots[i];
        if (child->hash == hash && child->seg_len == len && memcmp(child->seg, text, len) == 0)
            return child;
    }
    return NULL;
}

static int s_glob_insert(node_t *node, node_t *child)
{
    if (child->prefix_len == 0) {
        node_t **globs = realloc(node->globs, (node->glob_count + 1) * sizeof(*globs));
        if (!globs)
            return NERVE_ENOMEM;
        node->globs = globs;
        node->globs[node->glob_count++] = child;
        return 0;
    }
    int rc = s_table_insert(&node->prefixed, child);
    if (rc == 0)
        node->prefix_lens[child->prefix_len / 64] |= 1ull << (child->prefix_len % 64);
    return rc;
}

// Finds the child of `node` for `seg`, or makes it.
static int s_child(tag_index_t *self, node_t *node, const s_segment_t *seg, node_t **out)
{
    node_t *child = NULL;
    switch (seg->kind) {
    case S_LITERAL:
        if (node->lit.count)
            child = s_lit_find(node, seg->text, seg->len, s_hash(seg->text, seg->len));
        break;
    case S_STAR:
        child = node->star;
        break;
    case S_DSTAR:
        child = node->dstar;
        break;
    case S_GLOB:
        child = s_glob_find(node, seg->text, seg->len);
        break;
    }
    if (child) {
        *out = child;
        return 0;
    }
    int rc = 0;
    if (seg->kind == S_LITERAL) {
        child = s_node_new(seg->text, seg->len, 0, false);
        rc = child ? s_table_insert(&node->lit, child) : NERVE_ENOMEM;
    } else if (seg->kind == S_GLOB) {
        child = s_node_new(seg->text, seg->len, s_prefix_len(seg->text, seg->len), false);
        rc = child ? s_glob_insert(node, child) : NERVE_ENOMEM;
    } else {
        child = s_node_new("", 0, 0, seg->kind == S_DSTAR);
        if (!child)
            rc = NERVE_ENOMEM;
        else if (seg->kind == S_STAR)
            node->star = child;
        else
            node->dstar = child;
    }
    if (rc) {
        free(child);
        return rc;
    }
    self->nodes++;
    *out = child;
    return 0;
}

// Inserts into the node's sorted value list. Returns 1 if it was there.
static int s_value_insert(node_t *node, uint32_t value)
{
    uint32_t lo = 0, hi = node->value_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (node->values[mid] < value)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < node->value_count && node->values[lo] == value)
        return 1;
    if (node->value_count == node->value_cap) {
        uint32_t cap = node->value_cap ? node->value_cap * 2 : 2;
        uint32_t *values = realloc(node->values, cap * sizeof(*values));
        if (!values)
            return NERVE_ENOMEM;
        node->values = values;
        node->value_cap = cap;
    }
    memmove(node->values + lo + 1, node->values + lo,
            (node->value_count - lo) * sizeof(*node->values));
    node->values[lo] = value;
    node->value_count++;
    return 0;
}

tag_index_t *tag_index_new(void)
{
    tag_index_t *self = calloc(1, sizeof(*self));
    if (self) {
        self->scratch = calloc(1, sizeof(*self->scratch));
        self->root = s_node_new("", 0, 0, false);
        self->nodes = 1;
    }
    if (!self || !self->scratch || !self->root || s_reserve(self->scratch, 1, 1) != 0) {
        NERVE_ERROR("tags", "out of memory creating the tag index");
        tag_index_destroy(&self);
        return NULL;
    }
    return self;
}

void tag_index_destroy(tag_index_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tag_index_t *self = *self_p;
    s_node_destroy(self->root);
    if (self->scratch) {
        free(self->scratch->set_a);
        free(self->scratch->set_b);
        free(self->scratch->vals);
        free(self->scratch);
    }
    free(self);
    *self_p = NULL;
}

int tag_index_add(tag_index_t *self, const char *glob, uint32_t value)
{
    if (!self || !glob)
        return NERVE_EINVAL;
    s_segment_t segs[S_MAX_SEGMENTS];
    char buf[NERVE_TAG_MAX + 1];
    int nsegs = s_parse(glob, segs, buf);
    if (nsegs < 0)
        return nsegs;
    // Room for every node this glob could create and for its value.
    int rc = s_reserve(self->scratch, self->nodes + (size_t)nsegs, self->value_slots + 1);
    if (rc)
        return rc;
    node_t *node = self->root;
    for (int i = 0; i < nsegs; i++) {
        rc = s_child(self, node, &segs[i], &node);
        if (rc)
            return rc; // nodes made so far hold no value: they match nothing
    }
    rc = s_value_insert(node, value);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        self->pairs++;
        self->value_slots++;
    }
    return 0;
}

// Puts `node` in the set of this generation, with the "**" child it reaches
// without consuming a segment.
static inline void s_enter(s_scratch_t *s, node_t **set, size_t *n, node_t *node)
{
    while (node && node->mark != s->gen) {
        node->mark = s->gen;
        set[(*n)++] = node;
        node = node->dstar;
    }
}

// Enters every glob in node->prefixed that matches `seg`: for each prefix
// length in use, one probe for the globs with exactly seg's first L bytes as
// their prefix, then the wildcard match of the rest.
static void s_enter_prefixed(s_scratch_t *s, node_t **set, size_t *n, const node_t *node,
                             const char *seg, size_t seglen)
{
    uint32_t mask = node->prefixed.cap - 1;
    uint32_t hash = S_HASH_INIT;
    size_t hashed = 0;
    for (size_t w = 0; w < 4 && w * 64 <= seglen; w++) {
        for (uint64_t bits = node->prefix_lens[w]; bits; bits &= bits - 1) {
            size_t len = w * 64 + (size_t)__builtin_ctzll(bits);
            if (len > seglen)
                return;
            hash = s_hash_more(hash, seg + hashed, len - hashed);
            hashed = len;
            for (uint32_t i = hash & mask; node->prefixed.slots[i]; i = (i + 1) & mask) {
                node_t *glob = node->prefixed.slots[i];
                if (glob->hash == hash && glob->prefix_len == len &&
                    memcmp(glob->seg, seg, len) == 0 &&
                    nerve_tagglob_segment(glob->seg + len, glob->seg_len - len, seg + len, seglen - len))
                    s_enter(s, set, n, glob);
            }
        }
    }
}

static void s_sort(uint32_t *v, size_t n)
{
    if (n <= 24) {
        for (size_t i = 1; i < n; i++) {
            uint32_t x = v[i];
            size_t j = i;
            for (; j > 0 && v[j - 1] > x; j--)
                v[j] = v[j - 1];
            v[j] = x;
        }
        return;
    }
    // Heapsort: in place and O(n log n) with no allocation, which glibc's
    // qsort does not promise.
    for (size_t start = n / 2; start-- > 0;) {
        for (size_t root = start, child; (child = 2 * root + 1) < n; root = child) {
            if (child + 1 < n && v[child] < v[child + 1])
                child++;
            if (v[root] >= v[child])
                break;
            uint32_t t = v[root];
            v[root] = v[child];
            v[child] = t;
        }
    }
    for (size_t end = n - 1; end > 0; end--) {
        uint32_t t = v[0];
        v[0] = v[end];
        v[end] = t;
        for (size_t root = 0, child; (child = 2 * root + 1) < end; root = child) {
            if (child + 1 < end && v[child] < v[child + 1])
                child++;
            if (v[root] >= v[child])
                break;
            t = v[root];
            v[root] = v[child];
            v[child] = t;
        }
    }
}

size_t tag_index_match(const tag_index_t *self, const char *tag, size_t len, uint32_t *out,
                       size_t cap)
{
    if (!self || !tag || len == 0 || tag[0] != '/')
        return 0;
    if (len > 1 && tag[len - 1] == '/')
        len--;
    s_scratch_t *s = self->scratch;
    node_t **cur = s->set_a, **next = s->set_b;
    size_t ncur = 0;
    s->gen++;
    s_enter(s, cur, &ncur, self->root);

    const char *p = tag + 1, *end = tag + len;
    while (len > 1) {
        const char *q = memchr(p, '/', (size_t)(end - p));
        if (!q)
            q = end;
        size_t seglen = (size_t)(q - p);
        uint32_t hash = s_hash(p, seglen);
        size_t nnext = 0;
        s->gen++;
        for (size_t i = 0; i < ncur; i++) {
            node_t *node = cur[i];
            if (node->is_dstar)
                s_enter(s, next, &nnext, node);
            if (node->lit.count)
                s_enter(s, next, &nnext, s_lit_find(node, p, seglen, hash));
            if (node->star && seglen)
                s_enter(s, next, &nnext, node->star);
            if (node->prefixed.count)
                s_enter_prefixed(s, next, &nnext, node, p, seglen);
            for (uint32_t g = 0; g < node->glob_count; g++)
                if (nerve_tagglob_segment(node->globs[g]->seg, node->globs[g]->seg_len, p, seglen))
                    s_enter(s, next, &nnext, node->globs[g]);
        }
        node_t **swap = cur;
        cur = next;
        next = swap;
        ncur = nnext;
        if (ncur == 0 || q == end)
            break;
        p = q + 1;
    }

    // Each node's values are sorted and distinct; only values from several
    // nodes need merging.
    const uint32_t *values = NULL;
    size_t count = 0;
    for (size_t i = 0; i < ncur; i++) {
        if (!cur[i]->value_count)
            continue;
        if (count == 0 && !values) {
            values = cur[i]->values;
            count = cur[i]->value_count;
            continue;
        }
        if (values != s->vals) {
            memcpy(s->vals, values, count * sizeof(*values));
            values = s->vals;
        }
        memcpy(s->vals + count, cur[i]->values, cur[i]->value_count * sizeof(*values));
        count += cur[i]->value_count;
    }
    if (values == s->vals) {
        s_sort(s->vals, count);
        size_t unique = 1;
        for (size_t i = 1; i < count; i++)
            if (s->vals[i] != s->vals[unique - 1])
                s->vals[unique++] = s->vals[i];
        count = unique;
    }
    if (count && out && cap)
        memcpy(out, values, (count < cap ? count : cap) * sizeof(*out));
    return count;
}

size_t tag_index_size(const tag_index_t *self)
{
    return self ? self->pairs : 0;
}
