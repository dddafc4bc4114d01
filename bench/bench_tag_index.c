// bench_tag_index.c — what one tag match costs with 10 globs and with 10,000.
//
// (Line comments: globs such as /app/x/** open a C block comment.)
//
// The index promises that a match costs about the same however many globs
// it holds. This measures it: two indexes built from the same generator of
// realistic globs (/client/<metric>/*, /app/<name>/**, /logs/<svc>/*.log,
// /svc/<name>/**/error, plus the presence rule every site has), each matched
// against tags of the same shapes — nine in ten hit one of its globs, one in
// ten misses — so both do the same work per tag and only the size differs.
// A second shape puts every glob under one parent as an in-segment glob
// (/host/web<i>-*/load), the case a list of globs would make linear.
// Each figure is the best of several runs, in ns per match.
//
// Usage: bench_tag_index [matches per run], default 2,000,000.
#include "tag_index.h"

#include <nerve/log.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TAGS 4096 // distinct tags cycled through; a power of two
#define S_RUNS 7

typedef enum { S_MIXED, S_PREFIXED } s_shape_t;

// One glob of the i-th kind; every fourth glob has the same shape.
static void s_glob(s_shape_t shape, char *buf, size_t size, uint32_t i)
{
    if (shape == S_PREFIXED) {
        snprintf(buf, size, "/host/web%u-*/load", i);
        return;
    }
    switch (i % 4) {
    case 0:
        snprintf(buf, size, "/client/metric%u/*", i);
        break;
    case 1:
        snprintf(buf, size, "/app/app%u/**", i);
        break;
    case 2:
        snprintf(buf, size, "/logs/svc%u/*.log", i);
        break;
    default:
        snprintf(buf, size, "/svc/svc%u/**/error", i);
        break;
    }
}

// A tag that glob i matches, or (miss) one of the same shape that none does.
static void s_tag(s_shape_t shape, char *buf, size_t size, uint32_t i, int miss)
{
    uint32_t host = (uint32_t)rand() % 500;
    if (shape == S_PREFIXED) {
        snprintf(buf, size, miss ? "/host/db%u-x/load" : "/host/web%u-x/load", i);
        return;
    }
    if (miss) {
        snprintf(buf, size, "/client/nosuch%u/web%u", i, host);
        return;
    }
    switch (i % 4) {
    case 0:
        snprintf(buf, size, "/client/metric%u/web%u", i, host);
        break;
    case 1:
        snprintf(buf, size, "/app/app%u/deploy/web%u/done", i, host);
        break;
    case 2:
        snprintf(buf, size, "/logs/svc%u/web%u.log", i, host);
        break;
    default:
        snprintf(buf, size, "/svc/svc%u/web%u/error", i, host);
        break;
    }
}

typedef struct {
    double ns;   // best ns per match
    double hits; // fraction of tags that matched something
} s_result_t;

static int s_measure(s_shape_t shape, uint32_t nglobs, size_t matches, s_result_t *result)
{
    static char tags[S_TAGS][96];
    static size_t lens[S_TAGS];
    char glob[96];
    uint32_t out[64];

    tag_index_t *index = tag_index_new();
    if (!index)
        return -1;
    for (uint32_t i = 0; i < nglobs; i++) {
        s_glob(shape, glob, sizeof(glob), i);
        if (tag_index_add(index, glob, i) != 0) {
            fprintf(stderr, "bench_tag_index: cannot add %s\n", glob);
            tag_index_destroy(&index);
            return -1;
        }
    }
    tag_index_add(index, "/nerve/actor/*/lost", nglobs);
    srand(42);
    for (uint32_t t = 0; t < S_TAGS; t++) {
        uint32_t target = (uint32_t)rand() % nglobs;
        s_tag(shape, tags[t], sizeof(tags[t]), target, t % 10 == 9);
        lens[t] = strlen(tags[t]);
    }

    size_t hit = 0;
    for (uint32_t t = 0; t < S_TAGS; t++)
        hit += tag_index_match(index, tags[t], lens[t], out, 64) > 0;
    result->hits = (double)hit / S_TAGS;

    double best = 1e30;
    volatile size_t sink = 0;
    for (int run = 0; run < S_RUNS; run++) {
        size_t sum = 0;
        uint64_t start = nerve_clock_mono_ns();
        for (size_t m = 0; m < matches; m++) {
            size_t t = m & (S_TAGS - 1);
            sum += tag_index_match(index, tags[t], lens[t], out, 64);
        }
        uint64_t took = nerve_clock_mono_ns() - start;
        sink += sum;
        double ns = (double)took / (double)matches;
        if (ns < best)
            best = ns;
    }
    (void)sink;
    result->ns = best;
    tag_index_destroy(&index);
    return 0;
}

static int s_report(s_shape_t shape, const char *name, size_t matches)
{
    s_result_t small, large;
    if (s_measure(shape, 10, matches, &small) != 0 || s_measure(shape, 10000, matches, &large) != 0)
        return -1;
    printf("tag_index: %-9s %6u globs  %7.1f ns/match  (%.0f%% of tags match)\n", name, 10,
           small.ns, small.hits * 100);
    printf("tag_index: %-9s %6u globs  %7.1f ns/match  (%.0f%% of tags match)\n", name, 10000,
           large.ns, large.hits * 100);
    printf("tag_index: %-9s ratio 10000/10  %.2f\n", name, large.ns / small.ns);
    return 0;
}

int main(int argc, char **argv)
{
    size_t matches = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    if (matches == 0)
        matches = 2000000;
    if (s_report(S_MIXED, "mixed", matches) != 0 || s_report(S_PREFIXED, "web<i>-*", matches) != 0)
        return 1;
    printf("tag_index: best of %d runs of %zu matches each\n", S_RUNS, matches);
    return 0;
}
