// nerve/tagglob.h — matching one tag against one tag glob.
//
// (Line comments in this file: globs such as /a/** contain the two
// characters that open a C block comment.)
//
// The manager matches events against thousands of globs at once through
// its tag index (manager/tag_index.h). A client that holds a single glob —
// `nerve watch /client/**`, a beacon that filters what it sends — needs
// the same language for one pattern, with no index to build. These
// functions give exactly the tag index's answers, so a glob means one
// thing everywhere in nerve.
//
// Glob syntax (the tag index's, restated). A glob is split on '/':
//
//   literal     "load"    matches exactly that segment, byte for byte.
//   star        "*"       matches exactly one segment, any non-empty content.
//   double star "**"      matches zero or more whole segments (empty ones
//                         too): "/a/**" matches "/a", "/a/b", "/a/b/c".
//   in-segment  "web*"    each '*' matches any run of bytes, possibly
//                         empty, within one segment, never across '/'.
//
// A valid glob starts with '/', is at most NERVE_TAG_MAX (255) bytes, has
// no empty segment ("/a//b") and no segment of three or more stars alone.
// One trailing '/' is insignificant on globs and tags alike. The glob "/"
// matches only the tag "/"; "/**" matches every tag.
//
// Nothing here allocates; the functions are pure and safe from any thread.
#ifndef NERVE_TAGGLOB_H
#define NERVE_TAGGLOB_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Checks that `glob` (NUL-terminated) is a valid glob. Returns 0, or
// NERVE_EINVAL with a one-line reason in err ("empty segment at byte 3")
// when err is not NULL and errsize > 0. A NULL glob is NERVE_EINVAL.
int nerve_tagglob_check(const char *glob, char *err, size_t errsize);

// True if `tag` (`len` bytes, need not be NUL-terminated) matches `glob`.
// False when glob is NULL or invalid, when tag is NULL, does not start
// with '/', or is longer than NERVE_TAG_MAX bytes. Worst case O(glob
// segments × tag segments) segment comparisons; no recursion.
bool nerve_tagglob_match(const char *glob, const char *tag, size_t len);

// The length of the literal text every tag matching `glob` starts with:
// the bytes before the first '*', less a trailing '/'. Use glob[0..n) as
// a ZeroMQ SUB prefix and filter exactly with nerve_tagglob_match(). 0
// for NULL or for a glob that starts with a wildcard segment ("/**").
size_t nerve_tagglob_prefix_len(const char *glob);

// True if `text` (tlen bytes) matches the in-segment glob `pat` (plen
// bytes): each '*' any run of bytes, possibly empty; every other byte
// itself. Neither is a whole tag: the caller has split on '/'. Greedy
// with one backtrack point (the last star): no recursion, at most
// plen × tlen steps. Inline because the tag index runs it per candidate.
static inline bool nerve_tagglob_segment(const char *pat, size_t plen, const char *text,
                                         size_t tlen)
{
    size_t p = 0, t = 0, star_p = (size_t)-1, star_t = 0;
    while (t < tlen) {
        if (p < plen && pat[p] == '*') {
            star_p = ++p;
            star_t = t;
        } else if (p < plen && pat[p] == text[t]) {
            p++;
            t++;
        } else if (star_p != (size_t)-1) {
            p = star_p;
            t = ++star_t;
        } else {
            return false;
        }
    }
    while (p < plen && pat[p] == '*')
        p++;
    return p == plen;
}

#ifdef __cplusplus
}
#endif
#endif
