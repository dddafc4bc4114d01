/*  tagglob.c — one tag against one glob (see nerve/tagglob.h).

    Both sides are first cut into segments, on the stack: a tag of at most
    255 bytes has at most 255 segments. Then the classic wildcard walk runs
    at the segment level, with "**" as the only wildcard that spans a
    variable number of segments: on a mismatch the walk returns to the last
    "**" seen and lets it swallow one more segment. Because every other
    segment kind consumes exactly one segment, remembering only the last
    "**" is enough (a later "**" can absorb whatever an earlier one would
    have), so the walk never backtracks further and stays O(n × m). The
    same walk, one level down, matches in-segment globs like "web*" with
    '*' as the spanning wildcard.

    The splitting rules copy manager/tag_index.c exactly (trailing '/',
    "//" as an empty segment, "*" never matching an empty segment), and
    tests/unit/test_tagglob.c checks the two against each other.
*/
#include <nerve/error.h>
#include <nerve/tagglob.h>
#include <nerve/wire.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef enum s_kind {
    S_LITERAL = 0,
    S_STAR,  /* "*": one non-empty segment */
    S_DSTAR, /* "**": zero or more segments */
    S_GLOB,  /* literal text with '*' inside: one segment */
} s_kind_t;

typedef struct s_seg {
    const char *p;
    size_t len;
    s_kind_t kind;
} s_seg_t;

#define S_SEGS_MAX (NERVE_TAG_MAX + 1)

static int s_fail(char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail(char *err, size_t errsize, const char *fmt, ...)
{
    if (err && errsize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsize, fmt, ap);
        va_end(ap);
    }
    return NERVE_EINVAL;
}

/*  Cuts a glob into segments. Returns the count, or NERVE_EINVAL with a
    reason in err. */
static int s_parse_glob(const char *glob, s_seg_t *segs, char *err, size_t errsize)
{
    if (!glob)
        return s_fail(err, errsize, "no glob given");
    size_t len = strnlen(glob, NERVE_TAG_MAX + 1);
    if (len == 0)
        return s_fail(err, errsize, "glob is empty");
    if (len > NERVE_TAG_MAX)
        return s_fail(err, errsize, "glob is longer than %d bytes", NERVE_TAG_MAX);
    if (glob[0] != '/')
        return s_fail(err, errsize, "glob must start with '/'");
    /* One trailing '/' is insignificant; "//" is an empty segment, not "/". */
    if (len > 1 && glob[len - 1] == '/' && glob[len - 2] != '/')
        len--;
    if (len == 1)
        return 0;
    int n = 0;
    const char *p = glob + 1, *end = glob + len;
    for (;;) {
        const char *q = memchr(p, '/', (size_t)(end - p));
        if (!q)
            q = end;
        size_t seglen = (size_t)(q - p);
        if (seglen == 0)
            return s_fail(err, errsize, "empty segment at byte %zu", (size_t)(p - glob));
        size_t stars = 0;
        for (size_t i = 0; i < seglen; i++)
            stars += p[i] == '*';
        s_seg_t seg = {p, seglen, S_LITERAL};
        if (stars == seglen) {
            if (seglen > 2)
                return s_fail(err, errsize,
                              "segment of three or more stars at byte %zu is ambiguous",
                              (size_t)(p - glob));
            seg.kind = seglen == 1 ? S_STAR : S_DSTAR;
        } else if (stars) {
            seg.kind = S_GLOB;
        }
        segs[n++] = seg;
        if (q == end)
            return n;
        p = q + 1;
    }
}

/*  Cuts a tag into segments the way the tag index walks it. Returns the
    count, or -1 if the tag cannot match anything. */
static int s_parse_tag(const char *tag, size_t len, s_seg_t *segs)
{
    if (!tag || len == 0 || len > NERVE_TAG_MAX || tag[0] != '/')
        return -1;
    if (len > 1 && tag[len - 1] == '/')
        len--;
    if (len == 1)
        return 0;
    int n = 0;
    const char *p = tag + 1, *end = tag + len;
    for (;;) {
        const char *q = memchr(p, '/', (size_t)(end - p));
        if (!q)
            q = end;
        segs[n++] = (s_seg_t){p, (size_t)(q - p), S_LITERAL};
        if (q == end)
            return n;
        p = q + 1;
    }
}

static bool s_seg_match(const s_seg_t *g, const s_seg_t *t)
{
    switch (g->kind) {
    case S_LITERAL: return g->len == t->len && memcmp(g->p, t->p, t->len) == 0;
    case S_STAR: return t->len > 0;
    case S_GLOB: return nerve_tagglob_segment(g->p, g->len, t->p, t->len);
    case S_DSTAR: break;
    }
    return false;
}

bool nerve_tagglob_match(const char *glob, const char *tag, size_t len)
{
    s_seg_t gs[S_SEGS_MAX], ts[S_SEGS_MAX];
    int ng = s_parse_glob(glob, gs, NULL, 0);
    int nt = ng < 0 ? -1 : s_parse_tag(tag, len, ts);
    if (ng < 0 || nt < 0)
        return false;
    size_t g = 0, t = 0, star_g = SIZE_MAX, star_t = 0;
    while (t < (size_t)nt) {
        if (g < (size_t)ng && gs[g].kind == S_DSTAR) {
            star_g = ++g;
            star_t = t;
        } else if (g < (size_t)ng && s_seg_match(&gs[g], &ts[t])) {
            g++;
            t++;
        } else if (star_g != SIZE_MAX) {
            g = star_g;
            t = ++star_t;
        } else {
            return false;
        }
    }
    while (g < (size_t)ng && gs[g].kind == S_DSTAR)
        g++;
    return g == (size_t)ng;
}

int nerve_tagglob_check(const char *glob, char *err, size_t errsize)
{
    s_seg_t segs[S_SEGS_MAX];
    int n = s_parse_glob(glob, segs, err, errsize);
    return n < 0 ? NERVE_EINVAL : 0;
}

size_t nerve_tagglob_prefix_len(const char *glob)
{
    if (!glob)
        return 0;
    size_t n = strcspn(glob, "*");
    if (n > 0 && glob[n - 1] == '/')
        n--;
    return n;
}
