// test_tag_index.c — the manager's tag index: glob semantics, values
// reported once and sorted, refused globs, and 10,000 globs checked against
// a plain recursive matcher.
//
// (Line comments: globs such as /a/** open a C block comment.)
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nerve/error.h>

#include "tag_index.h"

#define S_OUT_MAX 16384

static uint32_t s_out[S_OUT_MAX];

static size_t s_match(const tag_index_t *index, const char *tag)
{
    return tag_index_match(index, tag, strlen(tag), s_out, S_OUT_MAX);
}

static bool s_matches(const tag_index_t *index, const char *tag)
{
    return s_match(index, tag) > 0;
}

// Asserts that `tag` gives exactly the values listed, in that order.
static void s_expect(const tag_index_t *index, const char *tag, size_t n, const uint32_t *want)
{
    size_t got = s_match(index, tag);
    if (got != n)
        fail_msg("tag %s: %zu values, expected %zu", tag, got, n);
    for (size_t i = 0; i < n; i++)
        if (s_out[i] != want[i])
            fail_msg("tag %s: value %zu is %u, expected %u", tag, i, s_out[i], want[i]);
}

static tag_index_t *s_index_with(const char *glob, uint32_t value)
{
    tag_index_t *index = tag_index_new();
    assert_non_null(index);
    assert_int_equal(tag_index_add(index, glob, value), 0);
    return index;
}

static void test_tag_index_literal_matches_only_the_same_tag(void **state)
{
    tag_index_t *index = s_index_with("/client/load/web1", 7);
    s_expect(index, "/client/load/web1", 1, (uint32_t[]){7});
    assert_false(s_matches(index, "/client/load/web2"));
    assert_false(s_matches(index, "/client/load/web10"));
    assert_false(s_matches(index, "/client/load"));
    assert_false(s_matches(index, "/client/load/web1/cpu"));
    assert_false(s_matches(index, "/Client/load/web1"));
    // Only `len` bytes count: a longer buffer is cut where the caller says.
    assert_int_equal(tag_index_match(index, "/client/load/web1/x", 17, s_out, 4), 1);
    tag_index_destroy(&index);
}

static void test_tag_index_star_stays_within_segment(void **state)
{
    tag_index_t *index = s_index_with("/client/load/*", 3);
    s_expect(index, "/client/load/web1", 1, (uint32_t[]){3});
    s_expect(index, "/client/load/x.y-z", 1, (uint32_t[]){3});
    assert_false(s_matches(index, "/client/load/web1/cpu"));
    assert_false(s_matches(index, "/client/load"));
    assert_false(s_matches(index, "/client/loadx/web1"));
    tag_index_destroy(&index);
}

static void test_tag_index_star_needs_a_non_empty_segment(void **state)
{
    tag_index_t *index = s_index_with("/a/*/b", 1);
    assert_true(s_matches(index, "/a/x/b"));
    assert_false(s_matches(index, "/a//b"));
    assert_false(s_matches(index, "/a/b"));
    tag_index_destroy(&index);

    index = s_index_with("/a/*", 1);
    assert_true(s_matches(index, "/a/x"));
    assert_false(s_matches(index, "/a"));
    assert_false(s_matches(index, "/a/")); // the trailing '/' is not a segment
    tag_index_destroy(&index);
}

static void test_tag_index_double_star_matches_zero_or_more_segments(void **state)
{
    tag_index_t *index = s_index_with("/a/**", 4);
    s_expect(index, "/a", 1, (uint32_t[]){4});
    s_expect(index, "/a/b", 1, (uint32_t[]){4});
    s_expect(index, "/a/b/c", 1, (uint32_t[]){4});
    s_expect(index, "/a//c", 1, (uint32_t[]){4}); // empty segments too
    assert_false(s_matches(index, "/ab"));
    assert_false(s_matches(index, "/b/a"));
    assert_false(s_matches(index, "/"));
    tag_index_destroy(&index);

    index = s_index_with("/**", 9);
    s_expect(index, "/", 1, (uint32_t[]){9});
    s_expect(index, "/x", 1, (uint32_t[]){9});
    s_expect(index, "/x/y/z/w", 1, (uint32_t[]){9});
    tag_index_destroy(&index);
}

static void test_tag_index_double_star_in_the_middle(void **state)
{
    tag_index_t *index = s_index_with("/a/**/z", 2);
    assert_true(s_matches(index, "/a/z"));
    assert_true(s_matches(index, "/a/b/z"));
    assert_true(s_matches(index, "/a/b/c/z"));
    assert_true(s_matches(index, "/a/z/z"));
    assert_false(s_matches(index, "/a/b/c"));
    assert_false(s_matches(index, "/a/z/y"));
    assert_false(s_matches(index, "/a"));
    assert_false(s_matches(index, "/b/z"));
    tag_index_destroy(&index);
}

static void test_tag_index_several_double_stars(void **state)
{
    tag_index_t *index = s_index_with("/**/x/**/y", 1);
    assert_true(s_matches(index, "/x/y"));
    assert_true(s_matches(index, "/p/x/q/r/y"));
    assert_true(s_matches(index, "/x/x/y/y"));
    assert_false(s_matches(index, "/y/x"));
    assert_false(s_matches(index, "/x/y/z"));
    tag_index_destroy(&index);

    // "**/**" is "**": added both ways, the pair is counted once.
    index = s_index_with("/a/**/**/b", 1);
    assert_int_equal(tag_index_add(index, "/a/**/b", 1), 0);
    assert_int_equal(tag_index_size(index), 1);
    assert_true(s_matches(index, "/a/b"));
    assert_true(s_matches(index, "/a/q/b"));
    tag_index_destroy(&index);
}

static void test_tag_index_many_double_stars_do_not_backtrack_exponentially(void **state)
{
    // A backtracking matcher needs ~C(100, 6) steps here; the index needs
    // about 100 × 7. The test would time out if that broke.
    tag_index_t *index = s_index_with("/**/a/**/a/**/a/**/a/**/a/**/a/**/b", 1);
    char tag[256] = "";
    for (int i = 0; i < 100; i++)
        strcat(tag, "/a");
    assert_false(s_matches(index, tag));
    strcat(tag, "/b");
    assert_true(s_matches(index, tag));
    tag_index_destroy(&index);
}

static void test_tag_index_in_segment_globs_stay_within_one_segment(void **state)
{
    tag_index_t *index = tag_index_new();
    assert_non_null(index);
    assert_int_equal(tag_index_add(index, "/host/web*/load", 1), 0);
    assert_int_equal(tag_index_add(index, "/logs/*.log", 2), 0);
    assert_int_equal(tag_index_add(index, "/x/a*b*c", 3), 0);

    s_expect(index, "/host/web12/load", 1, (uint32_t[]){1});
    s_expect(index, "/host/web/load", 1, (uint32_t[]){1}); // '*' may be empty
    assert_false(s_matches(index, "/host/db1/load"));
    assert_false(s_matches(index, "/host/web1/x/load"));
    assert_false(s_matches(index, "/host/aweb1/load"));

    s_expect(index, "/logs/app.log", 1, (uint32_t[]){2});
    s_expect(index, "/logs/.log", 1, (uint32_t[]){2});
    assert_false(s_matches(index, "/logs/app.txt"));
    assert_false(s_matches(index, "/logs/app.log.1"));
    assert_false(s_matches(index, "/logs/a/b.log"));

    assert_true(s_matches(index, "/x/abc"));
    assert_true(s_matches(index, "/x/aXXbYYc"));
    assert_true(s_matches(index, "/x/abbc"));
    assert_false(s_matches(index, "/x/acb"));
    assert_false(s_matches(index, "/x/abcd"));

    // '?' and '[' are literal, not fnmatch classes.
    assert_int_equal(tag_index_add(index, "/q/a?[b]*", 4), 0);
    assert_true(s_matches(index, "/q/a?[b]zz"));
    assert_false(s_matches(index, "/q/axbzz"));

    // Runs of '*' inside a segment collapse: "a**b" is "a*b".
    size_t before = tag_index_size(index);
    assert_int_equal(tag_index_add(index, "/x/a**b**c", 3), 0);
    assert_int_equal(tag_index_size(index), before);
    tag_index_destroy(&index);
}

static void test_tag_index_in_segment_globs_are_found_by_their_prefix(void **state)
{
    // 1,000 globs under one parent: each is tried only on segments that
    // start with its literal prefix, and every one that matches is found.
    tag_index_t *index = tag_index_new();
    assert_non_null(index);
    char glob[64];
    for (uint32_t i = 0; i < 1000; i++) {
        snprintf(glob, sizeof(glob), "/host/web%u*", i);
        assert_int_equal(tag_index_add(index, glob, i), 0);
    }
    assert_int_equal(tag_index_add(index, "/host/*7x", 5000), 0);
    assert_int_equal(tag_index_add(index, "/host/w*", 6000), 0);
    s_expect(index, "/host/web77x", 4, (uint32_t[]){7, 77, 5000, 6000});
    s_expect(index, "/host/web123", 4, (uint32_t[]){1, 12, 123, 6000});
    s_expect(index, "/host/web", 1, (uint32_t[]){6000});
    assert_false(s_matches(index, "/host/db7x1"));
    tag_index_destroy(&index);
}

static void test_tag_index_segments_with_equal_hashes_stay_apart(void **state)
{
    // "gwzx" and "16cd" have the same 32-bit FNV-1a hash, the index's hash.
    tag_index_t *index = tag_index_new();
    assert_non_null(index);
    assert_int_equal(tag_index_add(index, "/gwzx", 1), 0);
    assert_int_equal(tag_index_add(index, "/16cd", 2), 0);
    assert_int_equal(tag_index_add(index, "/x/gwzx*", 3), 0);
    assert_int_equal(tag_index_add(index, "/x/16cd*", 4), 0);
    s_expect(index, "/gwzx", 1, (uint32_t[]){1});
    s_expect(index, "/16cd", 1, (uint32_t[]){2});
    s_expect(index, "/x/gwzx1", 1, (uint32_t[]){3});
    s_expect(index, "/x/16cd1", 1, (uint32_t[]){4});
    tag_index_destroy(&index);
}

static void test_tag_index_overlapping_globs_report_each_value_once_sorted(void **state)
{
    tag_index_t *index = tag_index_new();
    assert_non_null(index);
    assert_int_equal(tag_index_add(index, "/client/**", 5), 0);
    assert_int_equal(tag_index_add(index, "/client/load/*", 2), 0);
    assert_int_equal(tag_index_add(index, "/client/load/web1", 9), 0);
    assert_int_equal(tag_index_add(index, "/**", 0), 0);
    assert_int_equal(tag_index_add(index, "/client/*/web1", 2), 0);
    assert_int_equal(tag_index_add(index, "/client/load/web*", 5), 0);
    assert_int_equal(tag_index_add(index, "/client/load/web1", 1), 0);
    assert_int_equal(tag_index_add(index, "/other", 3), 0);
    assert_int_equal(tag_index_size(index), 8);

    s_expect(index, "/client/load/web1", 5, (uint32_t[]){0, 1, 2, 5, 9});
    s_expect(index, "/client/load/db1", 3, (uint32_t[]){0, 2, 5});
    s_expect(index, "/client", 2, (uint32_t[]){0, 5});
    s_expect(index, "/nothing", 1, (uint32_t[]){0});

    // A short buffer gets the smallest values; the return counts them all.
    uint32_t small[3] = {77, 77, 77};
    assert_int_equal(tag_index_match(index, "/client/load/web1", 17, small, 2), 5);
    assert_int_equal(small[0], 0);
    assert_int_equal(small[1], 1);
    assert_int_equal(small[2], 77); // untouched past cap
    assert_int_equal(tag_index_match(index, "/client/load/web1", 17, NULL, 0), 5);
    tag_index_destroy(&index);
}

static void test_tag_index_same_pair_added_twice_is_kept_once(void **state)
{
    tag_index_t *index = s_index_with("/a/b", 1);
    assert_int_equal(tag_index_add(index, "/a/b", 1), 0);
    assert_int_equal(tag_index_add(index, "/a/b/", 1), 0);
    assert_int_equal(tag_index_size(index), 1);
    s_expect(index, "/a/b", 1, (uint32_t[]){1});
    tag_index_destroy(&index);
}

static void test_tag_index_no_match_and_bad_tags_return_zero(void **state)
{
    tag_index_t *index = tag_index_new();
    assert_non_null(index);
    assert_int_equal(tag_index_size(index), 0);
    assert_false(s_matches(index, "/a"));
    assert_false(s_matches(index, "/"));

    assert_int_equal(tag_index_add(index, "/**", 1), 0);
    assert_int_equal(tag_index_match(index, "a/b", 3, s_out, 4), 0);
    assert_int_equal(tag_index_match(index, "", 0, s_out, 4), 0);
    assert_int_equal(tag_index_match(index, NULL, 3, s_out, 4), 0);
    assert_int_equal(tag_index_match(NULL, "/a", 2, s_out, 4), 0);
    assert_int_equal(tag_index_size(NULL), 0);
    // Bytes a tag should not hold do no harm: the tag is just bytes.
    assert_int_equal(tag_index_match(index, "/a\0b/c", 6, s_out, 4), 1);
    tag_index_destroy(&index);
}

static void test_tag_index_invalid_globs_are_refused(void **state)
{
    tag_index_t *index = tag_index_new();
    assert_non_null(index);
    const char *bad[] = {
        "",          // empty
        "a/b",       // no leading '/'
        "*",         // no leading '/'
        "/a//b",     // empty segment
        "//",        // empty segment, not "/"
        "/a//",      // empty segment before the trailing '/'
        "/***",      // three stars alone: neither * nor **
        "/a/****/b", //
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (tag_index_add(index, bad[i], 1) != NERVE_EINVAL)
            fail_msg("glob \"%s\" was not refused", bad[i]);
    assert_int_equal(tag_index_add(index, NULL, 1), NERVE_EINVAL);
    assert_int_equal(tag_index_add(NULL, "/a", 1), NERVE_EINVAL);

    char glob[300];
    memset(glob, 'x', sizeof(glob));
    glob[0] = '/';
    glob[256] = '\0'; // 256 bytes: one too many
    assert_int_equal(tag_index_add(index, glob, 1), NERVE_EINVAL);
    assert_int_equal(tag_index_size(index), 0);
    glob[255] = '\0'; // 255 bytes: the longest tag
    assert_int_equal(tag_index_add(index, glob, 1), 0);
    assert_int_equal(tag_index_match(index, glob, 255, s_out, 4), 1);
    assert_int_equal(tag_index_size(index), 1);
    tag_index_destroy(&index);
}

static void test_tag_index_trailing_slash_is_insignificant(void **state)
{
    tag_index_t *index = s_index_with("/a/b/", 1);
    assert_true(s_matches(index, "/a/b"));
    assert_true(s_matches(index, "/a/b/"));
    assert_false(s_matches(index, "/a/b/c"));
    tag_index_destroy(&index);

    index = s_index_with("/a/b", 1);
    assert_true(s_matches(index, "/a/b/"));
    tag_index_destroy(&index);

    index = s_index_with("/", 1);
    assert_true(s_matches(index, "/"));
    assert_false(s_matches(index, "/a"));
    tag_index_destroy(&index);
}

static void test_tag_index_destroy_is_safe_twice(void **state)
{
    tag_index_t *index = s_index_with("/a/**/b*", 1);
    tag_index_destroy(&index);
    assert_null(index);
    tag_index_destroy(&index);
    tag_index_destroy(NULL);
}

static void test_tag_index_10000_realistic_globs_match_exactly(void **state)
{
    tag_index_t *index = tag_index_new();
    assert_non_null(index);
    char glob[64];
    for (uint32_t i = 0; i < 5000; i++) {
        snprintf(glob, sizeof(glob), "/client/metric%u/*", i);
        assert_int_equal(tag_index_add(index, glob, 2 * i), 0);
        snprintf(glob, sizeof(glob), "/app/%u/**", i);
        assert_int_equal(tag_index_add(index, glob, 2 * i + 1), 0);
    }
    assert_int_equal(tag_index_add(index, "/client/**", 10000), 0);
    assert_int_equal(tag_index_size(index), 10001);

    char tag[64];
    for (uint32_t i = 0; i < 5000; i += 7) {
        snprintf(tag, sizeof(tag), "/client/metric%u/web%u", i, i % 13);
        s_expect(index, tag, 2, (uint32_t[]){2 * i, 10000});
        snprintf(tag, sizeof(tag), "/app/%u/deploy/done", i);
        s_expect(index, tag, 1, (uint32_t[]){2 * i + 1});
        snprintf(tag, sizeof(tag), "/app/%u", i);
        s_expect(index, tag, 1, (uint32_t[]){2 * i + 1});
    }
    s_expect(index, "/client/metric5000/web1", 1, (uint32_t[]){10000});
    s_expect(index, "/client/metric12", 1, (uint32_t[]){10000});
    assert_false(s_matches(index, "/app/5000/x"));
    assert_false(s_matches(index, "/app"));
    tag_index_destroy(&index);
}

// ---- 10,000 random globs against a plain recursive matcher ---------------

typedef struct {
    const char *p[130];
    size_t n[130];
    size_t count;
} s_split_t;

// Splits after the leading '/', dropping one trailing '/' (the contract).
static void s_split(const char *s, s_split_t *out)
{
    size_t len = strlen(s);
    if (len > 1 && s[len - 1] == '/')
        len--;
    out->count = 0;
    if (len <= 1)
        return;
    const char *p = s + 1, *end = s + len;
    while (p <= end) {
        const char *q = memchr(p, '/', (size_t)(end - p));
        if (!q)
            q = end;
        out->p[out->count] = p;
        out->n[out->count++] = (size_t)(q - p);
        p = q + 1;
    }
}

static bool s_ref_seg(const char *pat, size_t plen, const char *seg, size_t slen)
{
    char pb[300], sb[300];
    memcpy(pb, pat, plen);
    pb[plen] = '\0';
    memcpy(sb, seg, slen);
    sb[slen] = '\0';
    if (strcmp(pb, "*") == 0)
        return slen > 0;
    return fnmatch(pb, sb, 0) == 0;
}

static bool s_ref(const s_split_t *g, size_t gi, const s_split_t *t, size_t ti)
{
    if (gi == g->count)
        return ti == t->count;
    if (g->n[gi] == 2 && memcmp(g->p[gi], "**", 2) == 0) {
        for (size_t k = ti; k <= t->count; k++)
            if (s_ref(g, gi + 1, t, k))
                return true;
        return false;
    }
    return ti < t->count && s_ref_seg(g->p[gi], g->n[gi], t->p[ti], t->n[ti]) &&
           s_ref(g, gi + 1, t, ti + 1);
}

static uint64_t s_rng = 0x9e3779b97f4a7c15ull;

static uint32_t s_rand(uint32_t n)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t)(s_rng % n);
}

static const char *const s_words[] = {"a", "b", "c", "ab", "ba", "abc"};
static const char *const s_globs[] = {"a*", "*b", "a*c", "*a*", "ab*", "ba*c", "abc*", "b*a*"};

static void s_random_glob(char *buf)
{
    size_t nseg = 1 + s_rand(4);
    buf[0] = '\0';
    for (size_t i = 0; i < nseg; i++) {
        uint32_t r = s_rand(100);
        const char *seg = r < 70   ? s_words[s_rand(6)]
                          : r < 80 ? "*"
                          : r < 90 ? "**"
                                   : s_globs[s_rand(8)];
        strcat(buf, "/");
        strcat(buf, seg);
    }
    if (s_rand(10) == 0)
        strcat(buf, "/");
}

static void s_random_tag(char *buf)
{
    size_t nseg = s_rand(6);
    buf[0] = '\0';
    for (size_t i = 0; i < nseg; i++) {
        strcat(buf, "/");
        if (s_rand(30) != 0) // now and then an empty segment
            strcat(buf, s_words[s_rand(6)]);
    }
    if (nseg == 0)
        strcat(buf, "/");
}

static void test_tag_index_10000_random_globs_agree_with_a_recursive_matcher(void **state)
{
    enum { NGLOBS = 10000, NVALUES = 3000, NTAGS = 400 };
    static char globs[NGLOBS][40];
    static s_split_t split[NGLOBS];
    static bool want[NVALUES];
    tag_index_t *index = tag_index_new();
    assert_non_null(index);
    for (uint32_t i = 0; i < NGLOBS; i++) {
        s_random_glob(globs[i]);
        s_split(globs[i], &split[i]);
        // Values repeat across globs: each must still come out once.
        assert_int_equal(tag_index_add(index, globs[i], i % NVALUES), 0);
    }
    for (int t = 0; t < NTAGS; t++) {
        char tag[64];
        s_random_tag(tag);
        s_split_t ts;
        s_split(tag, &ts);
        memset(want, 0, sizeof(want));
        size_t nwant = 0;
        for (uint32_t i = 0; i < NGLOBS; i++)
            if (!want[i % NVALUES] && s_ref(&split[i], 0, &ts, 0)) {
                want[i % NVALUES] = true;
                nwant++;
            }
        size_t got = s_match(index, tag);
        if (got != nwant)
            fail_msg("tag %s: %zu values, the reference finds %zu", tag, got, nwant);
        for (size_t k = 0; k < got; k++) {
            if (!want[s_out[k]])
                fail_msg("tag %s: value %u does not match", tag, s_out[k]);
            if (k && s_out[k] <= s_out[k - 1])
                fail_msg("tag %s: values not strictly ascending at %zu", tag, k);
        }
    }
    tag_index_destroy(&index);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tag_index_literal_matches_only_the_same_tag),
        cmocka_unit_test(test_tag_index_star_stays_within_segment),
        cmocka_unit_test(test_tag_index_star_needs_a_non_empty_segment),
        cmocka_unit_test(test_tag_index_double_star_matches_zero_or_more_segments),
        cmocka_unit_test(test_tag_index_double_star_in_the_middle),
        cmocka_unit_test(test_tag_index_several_double_stars),
        cmocka_unit_test(test_tag_index_many_double_stars_do_not_backtrack_exponentially),
        cmocka_unit_test(test_tag_index_in_segment_globs_stay_within_one_segment),
        cmocka_unit_test(test_tag_index_in_segment_globs_are_found_by_their_prefix),
        cmocka_unit_test(test_tag_index_segments_with_equal_hashes_stay_apart),
        cmocka_unit_test(test_tag_index_overlapping_globs_report_each_value_once_sorted),
        cmocka_unit_test(test_tag_index_same_pair_added_twice_is_kept_once),
        cmocka_unit_test(test_tag_index_no_match_and_bad_tags_return_zero),
        cmocka_unit_test(test_tag_index_invalid_globs_are_refused),
        cmocka_unit_test(test_tag_index_trailing_slash_is_insignificant),
        cmocka_unit_test(test_tag_index_destroy_is_safe_twice),
        cmocka_unit_test(test_tag_index_10000_realistic_globs_match_exactly),
        cmocka_unit_test(test_tag_index_10000_random_globs_agree_with_a_recursive_matcher),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
