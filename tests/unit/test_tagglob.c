// test_tagglob.c — one-pattern tag globs (lib/tagglob.c).
//
// (Line comments: globs such as /a/** contain the two characters that open
// a C block comment.)
//
// Besides the cases the header documents, the glob language must be the
// manager's: test_tagglob_agrees_with_tag_index throws thousands of
// generated (glob, tag) pairs at both this matcher and the tag index and
// requires the same answer for each.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <nerve/error.h>
#include <nerve/tagglob.h>
#include <nerve/wire.h>

#include "tag_index.h"

static bool s_match(const char *glob, const char *tag)
{
    return nerve_tagglob_match(glob, tag, strlen(tag));
}

static void test_tagglob_literal_matches_exactly(void **state)
{
    assert_true(s_match("/client/load/web1", "/client/load/web1"));
    assert_false(s_match("/client/load/web1", "/client/load/web10"));
    assert_false(s_match("/client/load/web1", "/client/load"));
    assert_false(s_match("/client/load", "/client/load/web1"));
    // '?', '[' and '\' are ordinary bytes.
    assert_true(s_match("/a/b?[c]\\", "/a/b?[c]\\"));
    assert_false(s_match("/a/b?", "/a/bx"));
}

static void test_tagglob_star_stays_within_segment(void **state)
{
    assert_true(s_match("/client/load/*", "/client/load/web1"));
    assert_false(s_match("/client/load/*", "/client/load/web1/cpu"));
    assert_false(s_match("/client/load/*", "/client/load"));
    assert_true(s_match("/*/load/*", "/x/load/y"));
    assert_false(s_match("/*/load", "/x/y/load"));
}

static void test_tagglob_star_does_not_match_an_empty_segment(void **state)
{
    assert_false(s_match("/a/*/b", "/a//b"));
    assert_true(s_match("/a/**/b", "/a//b"));
    // "/a/" is the tag "/a": no second segment for the star.
    assert_false(s_match("/a/*", "/a/"));
}

static void test_tagglob_double_star_matches_zero_or_more_segments(void **state)
{
    assert_true(s_match("/a/**", "/a"));
    assert_true(s_match("/a/**", "/a/b"));
    assert_true(s_match("/a/**", "/a/b/c/d"));
    assert_false(s_match("/a/**", "/ab"));
    assert_true(s_match("/a/**/z", "/a/z"));
    assert_true(s_match("/a/**/z", "/a/b/c/z"));
    assert_false(s_match("/a/**/z", "/a/b/c/z/y"));
    assert_true(s_match("/**", "/"));
    assert_true(s_match("/**", "/anything/at/all"));
    assert_true(s_match("/**/z/**/z", "/z/z"));
    assert_true(s_match("/**/z/**/z", "/a/z/b/c/z"));
    assert_false(s_match("/**/z/**/z", "/a/z/b/c"));
}

static void test_tagglob_in_segment_glob_never_crosses_a_slash(void **state)
{
    assert_true(s_match("/client/web*", "/client/web"));
    assert_true(s_match("/client/web*", "/client/web12"));
    assert_false(s_match("/client/web*", "/client/db1"));
    assert_false(s_match("/client/web*", "/client/web1/x"));
    assert_true(s_match("/logs/*.log", "/logs/app.log"));
    assert_false(s_match("/logs/*.log", "/logs/app.log.1"));
    assert_true(s_match("/x/a*b*c", "/x/aXbYc"));
    assert_true(s_match("/x/a*b*c", "/x/abc"));
    assert_false(s_match("/x/a*b*c", "/x/acb"));
    assert_true(s_match("/x/a**b", "/x/ab"));
}

static void test_tagglob_trailing_slash_is_insignificant(void **state)
{
    assert_true(s_match("/a/b/", "/a/b"));
    assert_true(s_match("/a/b", "/a/b/"));
    assert_true(s_match("/a/*/", "/a/x/"));
}

static void test_tagglob_root_glob_matches_only_the_root(void **state)
{
    assert_true(s_match("/", "/"));
    assert_false(s_match("/", "/a"));
}

static void test_tagglob_bad_tags_never_match(void **state)
{
    assert_false(s_match("/**", ""));
    assert_false(s_match("/**", "a/b"));
    assert_false(nerve_tagglob_match("/**", NULL, 0));
    char long_tag[NERVE_TAG_MAX + 2];
    memset(long_tag, 'a', sizeof long_tag);
    long_tag[0] = '/';
    long_tag[sizeof long_tag - 1] = '\0';
    assert_false(s_match("/**", long_tag)); // 256 bytes
    long_tag[NERVE_TAG_MAX] = '\0';
    assert_true(s_match("/**", long_tag)); // 255 bytes
    // len counts: a NUL inside the given length is just a byte.
    assert_false(nerve_tagglob_match("/a", "/a\0", 3));
    assert_true(nerve_tagglob_match("/a", "/ab", 2));
}

static void test_tagglob_invalid_globs_are_refused_with_a_reason(void **state)
{
    char err[128];
    assert_int_equal(nerve_tagglob_check("/a/b", err, sizeof err), 0);
    assert_int_equal(nerve_tagglob_check("/", err, sizeof err), 0);

    assert_int_equal(nerve_tagglob_check("", err, sizeof err), NERVE_EINVAL);
    assert_string_equal(err, "glob is empty");
    assert_int_equal(nerve_tagglob_check("a/b", err, sizeof err), NERVE_EINVAL);
    assert_string_equal(err, "glob must start with '/'");
    assert_int_equal(nerve_tagglob_check("/a//b", err, sizeof err), NERVE_EINVAL);
    assert_string_equal(err, "empty segment at byte 3");
    assert_int_equal(nerve_tagglob_check("//", err, sizeof err), NERVE_EINVAL);
    assert_int_equal(nerve_tagglob_check("/a/***", err, sizeof err), NERVE_EINVAL);
    assert_string_equal(err, "segment of three or more stars at byte 3 is ambiguous");
    char long_glob[NERVE_TAG_MAX + 2];
    memset(long_glob, 'g', sizeof long_glob);
    long_glob[0] = '/';
    long_glob[sizeof long_glob - 1] = '\0';
    assert_int_equal(nerve_tagglob_check(long_glob, err, sizeof err), NERVE_EINVAL);
    assert_string_equal(err, "glob is longer than 255 bytes");
    assert_int_equal(nerve_tagglob_check(NULL, NULL, 0), NERVE_EINVAL);
    // An invalid glob matches nothing, even a tag it "looks like".
    assert_false(s_match("/a//b", "/a//b"));
    assert_false(s_match("/***", "/x"));
    assert_false(nerve_tagglob_match(NULL, "/a", 2));
}

static void test_tagglob_prefix_is_what_every_match_starts_with(void **state)
{
    assert_int_equal(nerve_tagglob_prefix_len("/client/load/*"), strlen("/client/load"));
    assert_int_equal(nerve_tagglob_prefix_len("/client/web*"), strlen("/client/web"));
    assert_int_equal(nerve_tagglob_prefix_len("/a/**"), strlen("/a"));
    assert_int_equal(nerve_tagglob_prefix_len("/a/b"), strlen("/a/b"));
    // "/a/b/" matches the tag "/a/b": the trailing '/' must not be required.
    assert_int_equal(nerve_tagglob_prefix_len("/a/b/"), strlen("/a/b"));
    assert_int_equal(nerve_tagglob_prefix_len("/**"), 0);
    assert_int_equal(nerve_tagglob_prefix_len("/"), 0);
    assert_int_equal(nerve_tagglob_prefix_len(NULL), 0);
}

static void test_tagglob_many_double_stars_stay_linear(void **state)
{
    // A pattern that makes naive recursive matchers exponential.
    char glob[256] = "", tag[256] = "";
    for (int i = 0; i < 20; i++)
        strcat(glob, "/**/a");
    strcat(glob, "/b");
    for (int i = 0; i < 60; i++)
        strcat(tag, "/a");
    assert_false(s_match(glob, tag));
    strcat(tag, "/b");
    assert_true(s_match(glob, tag));
}

// Deterministic generator (xorshift) so a failure reproduces.
static uint64_t s_rng = 0x9e3779b97f4a7c15ull;
static uint32_t s_rand(uint32_t n)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t)(s_rng % n);
}

static void test_tagglob_agrees_with_tag_index(void **state)
{
    static const char *glob_segs[] = {"a", "b", "ab", "*", "**", "a*", "*b", "a*b", "*a*"};
    static const char *tag_segs[] = {"a", "b", "ab", "aab", "ba", "", "x"};
    size_t ng = sizeof glob_segs / sizeof glob_segs[0];
    size_t nt = sizeof tag_segs / sizeof tag_segs[0];
    size_t compared = 0, matched = 0;
    for (int round = 0; round < 400; round++) {
        char glob[128] = "";
        size_t segs = s_rand(5);
        for (size_t i = 0; i < segs; i++) {
            strcat(glob, "/");
            strcat(glob, glob_segs[s_rand((uint32_t)ng)]);
        }
        if (segs == 0 || s_rand(8) == 0)
            strcat(glob, "/");
        assert_int_equal(nerve_tagglob_check(glob, NULL, 0), 0);
        tag_index_t *index = tag_index_new();
        assert_non_null(index);
        assert_int_equal(tag_index_add(index, glob, 7), 0);
        for (int t = 0; t < 40; t++) {
            char tag[128] = "";
            size_t tsegs = s_rand(6);
            for (size_t i = 0; i < tsegs; i++) {
                strcat(tag, "/");
                strcat(tag, tag_segs[s_rand((uint32_t)nt)]);
            }
            if (tsegs == 0 || s_rand(8) == 0)
                strcat(tag, "/");
            uint32_t v;
            bool want = tag_index_match(index, tag, strlen(tag), &v, 1) == 1;
            bool got = s_match(glob, tag);
            if (want != got)
                fail_msg("glob '%s' tag '%s': tag index says %d, tagglob says %d", glob, tag,
                         want, got);
            compared++;
            matched += got;
        }
        tag_index_destroy(&index);
    }
    // The generator must exercise both answers, or the test proves nothing.
    assert_true(matched > compared / 20);
    assert_true(matched < compared - compared / 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tagglob_literal_matches_exactly),
        cmocka_unit_test(test_tagglob_star_stays_within_segment),
        cmocka_unit_test(test_tagglob_star_does_not_match_an_empty_segment),
        cmocka_unit_test(test_tagglob_double_star_matches_zero_or_more_segments),
        cmocka_unit_test(test_tagglob_in_segment_glob_never_crosses_a_slash),
        cmocka_unit_test(test_tagglob_trailing_slash_is_insignificant),
        cmocka_unit_test(test_tagglob_root_glob_matches_only_the_root),
        cmocka_unit_test(test_tagglob_bad_tags_never_match),
        cmocka_unit_test(test_tagglob_invalid_globs_are_refused_with_a_reason),
        cmocka_unit_test(test_tagglob_prefix_is_what_every_match_starts_with),
        cmocka_unit_test(test_tagglob_many_double_stars_stay_linear),
        cmocka_unit_test(test_tagglob_agrees_with_tag_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
