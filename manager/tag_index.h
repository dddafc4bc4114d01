// tag_index.h — the manager's tag index: which rule blocks want this tag?
//
// (Line comments in this file: tag globs such as /a/** contain the two
// characters that open a C block comment.)
//
// Every rules block is keyed by a tag glob ("/client/load/*"); every event
// carries a tag ("/client/load/web1"). For each event the manager asks the
// index for the blocks whose glob matches the tag. The index is a trie over
// '/'-separated segments, so the cost of a match depends on the tag and on
// how many globs overlap it, not on how many globs there are: 10,000 globs
// match about as fast as 10 (bench/bench_tag_index.c measures it).
//
// Glob syntax. A glob is a tag pattern split on '/':
//
//   literal     "load"   matches exactly that segment, byte for byte ('?',
//                        '[' and '\' have no special meaning).
//   star        "*"      matches exactly one segment: any content, non-empty.
//   double star "**"     matches zero or more whole segments of any content
//                        (empty ones too), anywhere in the glob, any number
//                        of times: "/a/**" matches "/a", "/a/b" and "/a/b/c";
//                        "/a/**/z" matches "/a/z" and "/a/b/c/z".
//   in-segment  "web*", "*.log", "a*b*c": each '*' matches any run of bytes,
//                        possibly empty, within that one segment; it never
//                        crosses '/'. "web*" matches "web" and "web12".
//
// A valid glob starts with '/', is at most NERVE_TAG_MAX (255) bytes and has
// no empty segment ("/a//b" is refused). One trailing '/' is insignificant,
// on globs and on tags alike: the glob "/a/b/" is the glob "/a/b", and the
// tag "/a/b/" is matched as "/a/b" (so "/a/*" does not match the tag "/a/").
// The glob "/" matches only the tag "/"; "/**" matches every tag. A segment
// of three or more stars alone ("***") is refused as ambiguous. Consecutive
// "**" segments mean the same as one.
//
// Tags are matched as the bytes given (the manager validates them with
// nerve_wire_check_tag() first). A tag that does not start with '/' matches
// nothing. Empty tag segments ("/a//b") are matched only by "**".
//
// Values. Each glob carries uint32 values (rule block numbers, in file
// order). A match reports the values of every matching glob, each value
// once, ascending. The same value may be added under several globs; adding
// the same (glob, value) pair again keeps one.
//
// Cost. A match walks the trie once, left to right, keeping the set of trie
// nodes the tag so far can be in (a "**" node stays in the set while
// segments pass, so several "**" never backtrack exponentially). Literal
// children are found by hash; "*" and "**" are single children; in-segment
// globs are hashed by their literal prefix (the text before the first '*'),
// so "web12*" is tried only on segments that start with "web12". In-segment
// globs that start with '*' ("*.log") are tried one by one: keep those few
// under any one parent.
// A match allocates nothing: its scratch lives in the index and is sized as
// globs are added.
//
// Threading: an index belongs to one thread at a time (the manager's engine
// thread). tag_index_match() takes a const index but writes the index's
// scratch: two threads may not match against one index at once.
#ifndef NERVE_MANAGER_TAG_INDEX_H
#define NERVE_MANAGER_TAG_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include <nerve/error.h>

typedef struct tag_index tag_index_t;

// Creates an empty index. Returns NULL (and logs why) on OOM.
tag_index_t *tag_index_new(void);

// Frees the index and everything in it, and sets *self to NULL. Safe on
// NULL and on a pointer to NULL, so safe twice.
void tag_index_destroy(tag_index_t **self);

// Adds `value` under `glob`, a NUL-terminated string that is copied (the
// caller keeps its own).
//
// Returns:
//   0             added, or the pair was already there (counted once);
//   NERVE_EINVAL  self or glob is NULL, or glob is not a valid pattern: no
//                 leading '/', longer than 255 bytes, an empty segment, a
//                 segment of three or more stars alone. Nothing is logged:
//                 the caller knows the file and line to report.
//   NERVE_ENOMEM  out of memory. The pair is not added; the index stays
//                 valid and matches exactly as before.
int tag_index_add(tag_index_t *self, const char *glob, uint32_t value);

// Matches `tag` (`len` bytes, need not be NUL-terminated) against every
// glob in the index. Writes to `out` the values of every matching glob, each
// once, ascending, at most `cap` of them, and returns how many there are in
// all. A return greater than `cap` means `out` holds only the `cap` smallest;
// call again with a larger buffer for the rest. `out` may be NULL when `cap`
// is 0. A NULL self or tag returns 0.
//
// Allocates nothing. Two matches may not run at once on one index (see
// Threading above).
size_t tag_index_match(const tag_index_t *self, const char *tag, size_t len, uint32_t *out,
                       size_t cap);

// Returns the number of distinct (glob, value) pairs in the index, globs
// compared after normalisation ("/a/b/" is "/a/b", "/a/**/**" is "/a/**").
// 0 for NULL.
size_t tag_index_size(const tag_index_t *self);

#endif
