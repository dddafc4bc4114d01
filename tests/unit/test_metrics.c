/*  test_metrics.c — the Prometheus text builder, latency histograms and
    the HTTP endpoint: exact text for families, labels and escapes; every
    page checked against the text-format grammar (HELP/TYPE once, families
    grouped, cumulative buckets, +Inf == _count); real scrapes over TCP
    from this process (status, headers, 404/405/503, HEAD, garbage); bad
    listen addresses; and publishing while other threads scrape. Servers
    bind 127.0.0.1:0, so no port is fixed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <nerve/error.h>
#include <nerve/metrics.h>

/* ---------------------------------------------------------------------------
   A checker for the Prometheus text format 0.0.4
   ------------------------------------------------------------------------ */

typedef struct s_fam {
    char name[128];
    char type[16];
    bool help, typed, sampled, closed;
} s_fam_t;

typedef struct s_hseries {
    char key[800]; /* family and labels without le */
    double last_le;
    uint64_t last_cum;
    bool any, have_inf;
    uint64_t inf;
} s_hseries_t;

typedef struct s_expo {
    s_fam_t fams[64];
    size_t nfams;
    s_hseries_t hs[64];
    size_t nhs;
    long current;
    size_t samples;
} s_expo_t;

static bool s_metric_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

static bool s_label_char(char c, bool first)
{
    return c != ':' && s_metric_char(c, first);
}

static s_fam_t *s_fam(s_expo_t *e, const char *name, size_t len, bool add)
{
    for (size_t i = 0; i < e->nfams; i++)
        if (strlen(e->fams[i].name) == len && memcmp(e->fams[i].name, name, len) == 0)
            return &e->fams[i];
    if (!add || e->nfams == 64 || len >= sizeof e->fams[0].name)
        return NULL;
    s_fam_t *f = &e->fams[e->nfams++];
    memset(f, 0, sizeof *f);
    memcpy(f->name, name, len);
    return f;
}

static bool s_parse_float(const char *s, size_t n, double *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (!strcmp(buf, "+Inf")) {
        *out = INFINITY;
        return true;
    }
    if (!strcmp(buf, "-Inf")) {
        *out = -INFINITY;
        return true;
    }
    if (!strcmp(buf, "NaN")) {
        *out = NAN;
        return true;
    }
    /* strtod also takes "inf", "nan" and hex: the format does not. */
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789+-.eE", buf[i]))
            return false;
    char *end;
    *out = strtod(buf, &end);
    return end == buf + n;
}

#define S_BAD(...)                                                                                 \
    do {                                                                                           \
        snprintf(why, whysize, __VA_ARGS__);                                                       \
        return -1;                                                                                 \
    } while (0)

/*  One sample line: name{labels} value [timestamp]. */
static int s_expo_sample(s_expo_t *e, const char *line, size_t len, char *why, size_t whysize)
{
    const char *p = line, *end = line + len;
    while (p < end && s_metric_char(*p, p == line))
        p++;
    size_t name_len = (size_t)(p - line);
    if (name_len == 0)
        S_BAD("no metric name in '%.*s'", (int)len, line);
    char key[600];
    size_t key_len = 0;
    char le[256] = "";
    bool has_le = false;
    char names[16][64];
    size_t nlabels = 0;
    key[0] = '\0';
    if (p < end && *p == '{') {
        p++;
        while (p < end && *p != '}') {
            const char *ln = p;
            while (p < end && s_label_char(*p, p == ln))
                p++;
            size_t ln_len = (size_t)(p - ln);
            if (ln_len == 0 || ln_len >= 64 || p + 1 >= end || p[0] != '=' || p[1] != '"')
                S_BAD("bad label in '%.*s'", (int)len, line);
            for (size_t i = 0; i < nlabels; i++)
                if (strlen(names[i]) == ln_len && !memcmp(names[i], ln, ln_len))
                    S_BAD("label repeated in '%.*s'", (int)len, line);
            if (nlabels == 16)
                S_BAD("too many labels");
            memcpy(names[nlabels], ln, ln_len);
            names[nlabels++][ln_len] = '\0';
            p += 2;
            char val[256];
            size_t vlen = 0;
            while (p < end && *p != '"') {
                char c = *p;
                if (c == '\\') {
                    if (p + 1 >= end || !strchr("\\\"n", p[1]))
                        S_BAD("bad escape in '%.*s'", (int)len, line);
                    c = p[1] == 'n' ? '\n' : p[1];
                    p++;
                }
                if (vlen + 1 < sizeof val)
                    val[vlen++] = c;
                p++;
            }
            val[vlen] = '\0';
            if (p >= end)
                S_BAD("unterminated label value in '%.*s'", (int)len, line);
            p++;
            if (ln_len == 2 && !memcmp(ln, "le", 2)) {
                has_le = true;
                snprintf(le, sizeof le, "%s", val);
            } else {
                key_len += (size_t)snprintf(key + key_len, sizeof key - key_len, "%.*s=%s,",
                                            (int)ln_len, ln, val);
                if (key_len >= sizeof key)
                    S_BAD("labels too long for the checker");
            }
            if (p < end && *p == ',')
                p++;
            else if (p >= end || *p != '}')
                S_BAD("expected ',' or '}' in '%.*s'", (int)len, line);
        }
        if (p >= end)
            S_BAD("unterminated labels in '%.*s'", (int)len, line);
        p++;
    }
    if (p >= end || *p != ' ')
        S_BAD("expected a space before the value in '%.*s'", (int)len, line);
    p++;
    const char *v = p;
    while (p < end && *p != ' ')
        p++;
    double value;
    if (!s_parse_float(v, (size_t)(p - v), &value))
        S_BAD("bad value in '%.*s'", (int)len, line);
    if (p < end) {
        p++;
        const char *ts = p;
        if (p < end && *p == '-')
            p++;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p != end || p == ts)
            S_BAD("bad timestamp in '%.*s'", (int)len, line);
    }

    /* Which family: a histogram's samples carry a suffix. */
    s_fam_t *fam = NULL;
    const char *suffix = "";
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    for (size_t i = 0; i < 3 && !fam; i++) {
        size_t sl = strlen(suffixes[i]);
        if (name_len > sl && !memcmp(line + name_len - sl, suffixes[i], sl)) {
            s_fam_t *base = s_fam(e, line, name_len - sl, false);
            if (base && !strcmp(base->type, "histogram")) {
                fam = base;
                suffix = suffixes[i];
            }
        }
    }
    if (!fam)
        fam = s_fam(e, line, name_len, false);
    if (!fam || !fam->typed)
        S_BAD("sample '%.*s' has no # TYPE before it", (int)name_len, line);
    long idx = (long)(fam - e->fams);
    if (idx != e->current) {
        if (fam->closed)
            S_BAD("family %s is not grouped together", fam->name);
        if (e->current >= 0)
            e->fams[e->current].closed = true;
        e->current = idx;
    }
    fam->sampled = true;
    e->samples++;
    if (!strcmp(fam->type, "counter") && (isnan(value) || value < 0))
        S_BAD("counter %s has value %g", fam->name, value);
    if (strcmp(fam->type, "histogram"))
        return 0;

    if (!*suffix)
        S_BAD("histogram %s sample without a suffix", fam->name);
    char fkey[sizeof key + 130];
    snprintf(fkey, sizeof fkey, "%s|%s", fam->name, key);
    s_hseries_t *hs = NULL;
    for (size_t i = 0; i < e->nhs && !hs; i++)
        if (!strcmp(e->hs[i].key, fkey))
            hs = &e->hs[i];
    if (!hs) {
        if (e->nhs == 64)
            S_BAD("too many histogram series for the checker");
        hs = &e->hs[e->nhs++];
        memset(hs, 0, sizeof *hs);
        snprintf(hs->key, sizeof hs->key, "%s", fkey);
    }
    if (!strcmp(suffix, "_bucket")) {
        double bound;
        if (!has_le || !s_parse_float(le, strlen(le), &bound))
            S_BAD("bucket without a valid le in '%.*s'", (int)len, line);
        if (hs->have_inf || (hs->any && !(bound > hs->last_le)))
            S_BAD("le not increasing in '%.*s'", (int)len, line);
        if (hs->any && (uint64_t)value < hs->last_cum)
            S_BAD("buckets not cumulative at '%.*s'", (int)len, line);
        hs->any = true;
        hs->last_le = bound;
        hs->last_cum = (uint64_t)value;
        if (isinf(bound)) {
            hs->have_inf = true;
            hs->inf = (uint64_t)value;
        }
    } else if (!strcmp(suffix, "_count")) {
        if (!hs->have_inf)
            S_BAD("%s: _count before a +Inf bucket", fkey);
        if ((uint64_t)value != hs->inf)
            S_BAD("%s: _count %g != +Inf bucket %" PRIu64, fkey, value, hs->inf);
    }
    return 0;
}

/*  Checks a whole page. Returns 0, or -1 with the first problem in why. */
static int s_expo_check(const char *text, char *why, size_t whysize)
{
    s_expo_t *e = calloc(1, sizeof *e);
    assert_non_null(e);
    e->current = -1;
    int rc = 0;
    size_t n = strlen(text);
    if (n && text[n - 1] != '\n') {
        snprintf(why, whysize, "text does not end with a newline");
        rc = -1;
    }
    for (const char *line = text; !rc && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len == 0) {
            /* blank lines are allowed */
        } else if (line[0] == '#') {
            bool help = len > 7 && !strncmp(line, "# HELP ", 7);
            bool type = len > 7 && !strncmp(line, "# TYPE ", 7);
            if (help || type) {
                const char *name = line + 7, *p = name;
                while (p < line + len && s_metric_char(*p, p == name))
                    p++;
                if (p == name || (p < line + len && *p != ' ')) {
                    snprintf(why, whysize, "bad name in '%.*s'", (int)len, line);
                    rc = -1;
                    break;
                }
                s_fam_t *f = s_fam(e, name, (size_t)(p - name), true);
                if (!f || f->sampled || (help && f->help) || (type && f->typed)) {
                    snprintf(why, whysize, "'%.*s' repeated or after samples", (int)len, line);
                    rc = -1;
                    break;
                }
                if (help) {
                    f->help = true;
                } else {
                    size_t tl = (size_t)(line + len - p);
                    static const char *const types[] = {"counter", "gauge", "histogram", "summary",
                                                        "untyped"};
                    bool known = false;
                    for (size_t i = 0; tl > 1 && i < 5; i++)
                        if (tl - 1 == strlen(types[i]) && !memcmp(p + 1, types[i], tl - 1))
                            known = true;
                    if (!known) {
                        snprintf(why, whysize, "unknown type in '%.*s'", (int)len, line);
                        rc = -1;
                        break;
                    }
                    memcpy(f->type, p + 1, tl - 1);
                    f->typed = true;
                }
            }
        } else {
            rc = s_expo_sample(e, line, len, why, whysize);
        }
        line += len + (nl ? 1 : 0);
    }
    /* Every histogram series must have finished with its +Inf and _count. */
    for (size_t i = 0; !rc && i < e->nhs; i++)
        if (!e->hs[i].have_inf) {
            snprintf(why, whysize, "%s has no +Inf bucket", e->hs[i].key);
            rc = -1;
        }
    free(e);
    return rc;
}

static void s_assert_valid(const char *text)
{
    char why[1024];
    if (s_expo_check(text, why, sizeof why))
        fail_msg("invalid exposition: %s\n---\n%s---", why, text);
}

/*  The checker must itself catch what it is there to catch. */
static void test_checker_rejects_broken_pages(void **state)
{
    (void)state;
    char why[1024];
    const char *bad[] = {
        "x_total 1\n",                                     /* no TYPE */
        "# TYPE x counter\n# TYPE x counter\nx 1\n",       /* TYPE twice */
        "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na 2\n", /* not grouped */
        "# TYPE a gauge\na{l=\"x} 1\n",                    /* unterminated */
        "# TYPE a gauge\na{l=\"\\t\"} 1\n",                /* bad escape */
        "# TYPE a gauge\na one\n",                         /* bad value */
        "# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_bucket{le=\"+Inf\"} 4\n"
        "h_sum 1\nh_count 4\n", /* not cumulative */
        "# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_bucket{le=\"+Inf\"} 5\n"
        "h_sum 1\nh_count 6\n", /* count != +Inf */
        "# TYPE a gauge\na 1",  /* no final newline */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (s_expo_check(bad[i], why, sizeof why) == 0)
            fail_msg("checker accepted page %zu:\n%s", i, bad[i]);
}

/* ---------------------------------------------------------------------------
   Histograms
   ------------------------------------------------------------------------ */

static void test_histo_bounds_are_log_scale_from_1us_to_10s(void **state)
{
    (void)state;
    assert_true(nerve_histo_bound(0) == 1e-6);
    assert_true(nerve_histo_bound(1) == 2.5e-6);
    assert_true(nerve_histo_bound(2) == 5e-6);
    assert_true(nerve_histo_bound(NERVE_HISTO_BUCKETS - 1) == 10.0);
    assert_true(isinf(nerve_histo_bound(NERVE_HISTO_BUCKETS)));
    for (size_t i = 1; i < NERVE_HISTO_BUCKETS; i++)
        assert_true(nerve_histo_bound(i) > nerve_histo_bound(i - 1));
}

static void test_histo_observe_counts_bounds_inclusively_and_ignores_nonfinite(void **state)
{
    (void)state;
    nerve_histo_t h = {0};
    nerve_histo_observe(&h, 1e-3);      /* exactly a bound: that bucket */
    nerve_histo_observe(&h, 1.0001e-3); /* just above: the next one */
    nerve_histo_observe(&h, -2);        /* clock stepped back: counts as 0 */
    nerve_histo_observe(&h, 0);
    nerve_histo_observe(&h, 11); /* past 10 s: only +Inf */
    nerve_histo_observe(&h, NAN);
    nerve_histo_observe(&h, INFINITY);
    nerve_histo_observe(NULL, 1);
    assert_int_equal(nerve_histo_count(&h), 5);
    assert_true(fabs(nerve_histo_sum(&h) - (1e-3 + 1.0001e-3 + 11)) < 1e-12);

    nerve_mtext_t *t = nerve_mtext_new();
    assert_int_equal(nerve_mtext_histogram(t, "lat_seconds", "Latency.", NULL, &h), 0);
    char *text = nerve_mtext_dup(t, NULL);
    s_assert_valid(text);
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"1e-06\"} 2\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"0.0005\"} 2\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"0.001\"} 3\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"0.0025\"} 4\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"10\"} 4\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"+Inf\"} 5\n"));
    assert_non_null(strstr(text, "lat_seconds_count 5\n"));
    const char *sum = strstr(text, "lat_seconds_sum ");
    assert_non_null(sum);
    assert_true(strtod(sum + strlen("lat_seconds_sum "), NULL) == nerve_histo_sum(&h));
    free(text);

    nerve_histo_reset(&h);
    assert_int_equal(nerve_histo_count(&h), 0);
    assert_true(nerve_histo_sum(&h) == 0.0);
    nerve_mtext_destroy(&t);
}

static void test_mtext_histogram_is_cumulative_with_inf_equal_to_count(void **state)
{
    (void)state;
    nerve_histo_t h = {0};
    /* A spread over every decade, some in each bucket. */
    uint64_t n = 0;
    for (double v = 5e-7; v < 30; v *= 1.37, n++)
        nerve_histo_observe(&h, v);
    nerve_histo_t empty = {0};
    nerve_mtext_t *t = nerve_mtext_new();
    assert_int_equal(nerve_mtext_histogram(t, "nerve_engine_latency_seconds",
                                           "Receive to decision.", NERVE_LABELS("stage", "match"),
                                           &h),
                     0);
    assert_int_equal(nerve_mtext_histogram(t, "nerve_engine_latency_seconds", NULL,
                                           NERVE_LABELS("stage", "commit"), &empty),
                     0);
    char *text = nerve_mtext_dup(t, NULL);
    s_assert_valid(text);
    char want[128];
    snprintf(want, sizeof want,
             "nerve_engine_latency_seconds_bucket{stage=\"match\",le=\"+Inf\"} %" PRIu64 "\n", n);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof want, "nerve_engine_latency_seconds_count{stage=\"match\"} %" PRIu64 "\n",
             n);
    assert_non_null(strstr(text, want));
    assert_non_null(strstr(text, "nerve_engine_latency_seconds_count{stage=\"commit\"} 0\n"));
    assert_non_null(strstr(text, "nerve_engine_latency_seconds_sum{stage=\"commit\"} 0\n"));
    /* 23 bucket lines per series, two series, HELP once, TYPE once. */
    size_t buckets = 0;
    for (const char *p = text; (p = strstr(p, "_bucket{")); p++)
        buckets++;
    assert_int_equal(buckets, 2 * (NERVE_HISTO_BUCKETS + 1));
    assert_null(strstr(strstr(text, "# TYPE") + 1, "# TYPE"));
    assert_null(strstr(strstr(text, "# HELP") + 1, "# HELP"));
    free(text);
    nerve_mtext_destroy(&t);
}

/* ---------------------------------------------------------------------------
   The text builder
   ------------------------------------------------------------------------ */

static void test_mtext_help_and_type_once_per_family_when_calls_interleave(void **state)
{
    (void)state;
    nerve_mtext_t *t = nerve_mtext_new();
    assert_non_null(t);
    /* One loop over the rules emits two families: the output still groups
       them, in first-seen order. */
    const char *rules[] = {"load_avg", "io_avg"};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(nerve_mtext_counter(t, "nerve_rule_evaluations_total", "Rule evaluations.",
                                             NERVE_LABELS("rule", rules[i]), 10 + i),
                         0);
        assert_int_equal(nerve_mtext_counter(t, "nerve_rule_firings_total", "Rule firings.",
                                             NERVE_LABELS("rule", rules[i]), i),
                         0);
    }
    assert_int_equal(nerve_mtext_gauge(t, "nerve_queue_depth", "Items waiting.", NULL, 3), 0);
    assert_int_equal(nerve_mtext_counter(t, "nerve_events_received_total", NULL, NULL, UINT64_MAX),
                     0);
    const char *want = "# HELP nerve_rule_evaluations_total Rule evaluations.\n"
                       "# TYPE nerve_rule_evaluations_total counter\n"
                       "nerve_rule_evaluations_total{rule=\"load_avg\"} 10\n"
                       "nerve_rule_evaluations_total{rule=\"io_avg\"} 11\n"
                       "# HELP nerve_rule_firings_total Rule firings.\n"
                       "# TYPE nerve_rule_firings_total counter\n"
                       "nerve_rule_firings_total{rule=\"load_avg\"} 0\n"
                       "nerve_rule_firings_total{rule=\"io_avg\"} 1\n"
                       "# HELP nerve_queue_depth Items waiting.\n"
                       "# TYPE nerve_queue_depth gauge\n"
                       "nerve_queue_depth 3\n"
                       "# TYPE nerve_events_received_total counter\n"
                       "nerve_events_received_total 18446744073709551615\n";
    size_t len;
    char *text = nerve_mtext_dup(t, &len);
    assert_string_equal(text, want);
    assert_int_equal(len, strlen(want));
    assert_int_equal(nerve_mtext_size(t), strlen(want));
    s_assert_valid(text);
    free(text);
    nerve_mtext_destroy(&t);
    nerve_mtext_destroy(&t);
    assert_null(t);
}

static void test_mtext_escapes_label_values_and_help(void **state)
{
    (void)state;
    nerve_mtext_t *t = nerve_mtext_new();
    assert_int_equal(nerve_mtext_counter(t, "x_total", "Back\\slash and\nnewline \"kept\".",
                                         NERVE_LABELS("rule", "a\\b\"c\nd", "empty", ""), 1),
                     0);
    /* Not UTF-8: a lone continuation byte, a truncated sequence, an
       overlong '/', a surrogate. Valid multi-byte text stays as it is. */
    assert_int_equal(
        nerve_mtext_counter(t, "x_total", NULL,
                            NERVE_LABELS("rule", "\x80|\xc3|\xc0\xaf|\xed\xa0\x80|\xc3\xa9"), 2),
        0);
    char *text = nerve_mtext_dup(t, NULL);
    assert_string_equal(text, "# HELP x_total Back\\\\slash and\\nnewline \"kept\".\n"
                              "# TYPE x_total counter\n"
                              "x_total{rule=\"a\\\\b\\\"c\\nd\",empty=\"\"} 1\n"
                              "x_total{rule=\"\xef\xbf\xbd|\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|"
                              "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|\xc3\xa9\"} 2\n");
    s_assert_valid(text);
    free(text);
    nerve_mtext_destroy(&t);
}

static void test_mtext_refuses_bad_names_and_stays_unchanged(void **state)
{
    (void)state;
    nerve_mtext_t *t = nerve_mtext_new();
    nerve_histo_t h = {0};
    assert_int_equal(nerve_mtext_gauge(t, "ok", "Fine.", NULL, 1), 0);
    size_t before = nerve_mtext_size(t);

    assert_int_equal(nerve_mtext_gauge(t, "", NULL, NULL, 1), NERVE_EINVAL);
    assert_int_equal(nerve_mtext_gauge(t, NULL, NULL, NULL, 1), NERVE_EINVAL);
    assert_int_equal(nerve_mtext_gauge(t, "1abc", NULL, NULL, 1), NERVE_EINVAL);
    assert_int_equal(nerve_mtext_gauge(t, "a-b", NULL, NULL, 1), NERVE_EINVAL);
    assert_int_equal(nerve_mtext_gauge(t, "a b", NULL, NULL, 1), NERVE_EINVAL);
    assert_int_equal(nerve_mtext_counter(t, "events", NULL, NULL, 1), NERVE_EINVAL);
    assert_int_equal(nerve_mtext_gauge(t, "g", NULL, NERVE_LABELS("bad-name", "v"), 1),
                     NERVE_EINVAL);
    assert_int_equal(nerve_mtext_gauge(t, "g", NULL, NERVE_LABELS("__reserved", "v"), 1),
                     NERVE_EINVAL);
    assert_int_equal(nerve_mtext_gauge(t, "g", NULL, NERVE_LABELS("a:b", "v"), 1), NERVE_EINVAL);
    assert_int_equal(nerve_mtext_gauge(t, "g", NULL, NERVE_LABELS("a", "1", "a", "2"), 1),
                     NERVE_EINVAL);
    const char *odd[] = {"rule", NULL};
    assert_int_equal(nerve_mtext_gauge(t, "g", NULL, odd, 1), NERVE_EINVAL);
    assert_int_equal(nerve_mtext_histogram(t, "h_seconds", NULL, NERVE_LABELS("le", "1"), &h),
                     NERVE_EINVAL);
    assert_int_equal(nerve_mtext_histogram(t, "h_seconds", NULL, NULL, NULL), NERVE_EINVAL);
    /* Same name, another type. */
    assert_int_equal(nerve_mtext_counter(t, "ok", NULL, NULL, 1), NERVE_EINVAL);
    assert_int_equal(nerve_mtext_histogram(t, "ok", NULL, NULL, &h), NERVE_EINVAL);
    assert_int_equal(nerve_mtext_gauge(NULL, "g", NULL, NULL, 1), NERVE_EINVAL);

    assert_int_equal(nerve_mtext_size(t), before);
    char *text = nerve_mtext_dup(t, NULL);
    assert_string_equal(text, "# HELP ok Fine.\n# TYPE ok gauge\nok 1\n");
    free(text);
    nerve_mtext_destroy(&t);
}

static void test_mtext_gauge_writes_special_values_and_shortest_numbers(void **state)
{
    (void)state;
    nerve_mtext_t *t = nerve_mtext_new();
    const struct {
        const char *label;
        double v;
        const char *want;
    } cases[] = {
        {"nan", NAN, "NaN"},         {"pinf", INFINITY, "+Inf"},
        {"ninf", -INFINITY, "-Inf"}, {"tenth", 0.1, "0.1"},
        {"three", 3, "3"},           {"neg", -0.5, "-0.5"},
        {"big", 1e300, "1e+300"},    {"third", 1.0 / 3, "0.3333333333333333"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(
            nerve_mtext_gauge(t, "g", "G.", NERVE_LABELS("c", cases[i].label), cases[i].v), 0);
    char *text = nerve_mtext_dup(t, NULL);
    s_assert_valid(text);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char line[128];
        snprintf(line, sizeof line, "g{c=\"%s\"} %s\n", cases[i].label, cases[i].want);
        if (!strstr(text, line))
            fail_msg("missing '%s' in:\n%s", line, text);
        if (!isnan(cases[i].v) && !isinf(cases[i].v))
            assert_true(strtod(cases[i].want, NULL) == cases[i].v);
    }
    free(text);
    nerve_mtext_destroy(&t);
}

static void test_mtext_reset_empties_and_next_render_starts_fresh(void **state)
{
    (void)state;
    nerve_mtext_t *t = nerve_mtext_new();
    for (int round = 0; round < 3; round++) {
        nerve_mtext_reset(t);
        assert_int_equal(nerve_mtext_size(t), 0);
        assert_int_equal(nerve_mtext_gauge(t, "b", "B.", NULL, round), 0);
        assert_int_equal(nerve_mtext_counter(t, "a_total", "A.", NULL, (uint64_t)round), 0);
        char *text = nerve_mtext_dup(t, NULL);
        char want[200];
        snprintf(want, sizeof want,
                 "# HELP b B.\n# TYPE b gauge\nb %d\n# HELP a_total A.\n# TYPE a_total counter\n"
                 "a_total %d\n",
                 round, round);
        assert_string_equal(text, want);
        free(text);
    }
    /* A family may change type across renders: reset forgets families. */
    nerve_mtext_reset(t);
    assert_int_equal(nerve_mtext_counter(t, "b_total", NULL, NULL, 1), 0);
    assert_int_equal(nerve_mtext_gauge(t, "a_total", NULL, NULL, 1), 0);
    nerve_mtext_reset(t);
    char *empty = nerve_mtext_dup(t, NULL);
    assert_string_equal(empty, "");
    free(empty);
    nerve_mtext_destroy(&t);
}

static void test_mtext_many_families_and_series_stay_valid(void **state)
{
    (void)state;
    nerve_mtext_t *t = nerve_mtext_new();
    char name[64], rule[64];
    /* More families than the first allocation, interleaved series. */
    for (int s = 0; s < 50; s++)
        for (int f = 0; f < 40; f++) {
            snprintf(name, sizeof name, "fam%02d_total", f);
            snprintf(rule, sizeof rule, "rule%d", s);
            assert_int_equal(nerve_mtext_counter(t, name, "Help.", NERVE_LABELS("rule", rule),
                                                 (uint64_t)(s * f)),
                             0);
        }
    char *text = nerve_mtext_dup(t, NULL);
    s_assert_valid(text);
    assert_non_null(strstr(text, "fam39_total{rule=\"rule49\"} 1911\n"));
    free(text);
    nerve_mtext_destroy(&t);
}

/* ---------------------------------------------------------------------------
   Listen addresses
   ------------------------------------------------------------------------ */

static void test_metrics_listen_parse_accepts_documented_forms(void **state)
{
    (void)state;
    const struct {
        const char *in, *host;
        uint16_t port;
    } ok[] = {
        {"9100", "127.0.0.1", 9100},         {"0", "127.0.0.1", 0},
        {"10.0.0.5:9100", "10.0.0.5", 9100}, {"*:9100", "0.0.0.0", 9100},
        {"[::1]:9100", "::1", 9100},         {"[::]:65535", "::", 65535},
        {"localhost:1", "localhost", 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char host[64] = "", err[256] = "x";
        uint16_t port = 1234;
        assert_int_equal(
            nerve_metrics_listen_parse(ok[i].in, host, sizeof host, &port, err, sizeof err), 0);
        assert_string_equal(host, ok[i].host);
        assert_int_equal(port, ok[i].port);
        assert_string_equal(err, "");
    }
    assert_int_equal(nerve_metrics_listen_parse("9100", NULL, 0, NULL, NULL, 0), 0);
}

static void test_metrics_listen_parse_refuses_bad_addresses_with_reason(void **state)
{
    (void)state;
    const struct {
        const char *in, *why;
    } bad[] = {
        {"", "expected a port or host:port"},
        {"localhost", "expected a port or host:port"},
        {"9x", "port must be a number from 0 to 65535"},
        {"65536", "port must be a number from 0 to 65535"},
        {"-1", "expected a port or host:port"},
        {"host:", "port must be a number from 0 to 65535"},
        {"host:123456", "port must be a number from 0 to 65535"},
        {":9100", "no host before ':'"},
        {"::1:9100", "write an IPv6 address in brackets"},
        {"[::1]9100", "expected ':port' after ']'"},
        {"[::1:9100", "missing ']'"},
        {"[]:9100", "empty IPv6 address"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char host[64], err[256] = "";
        uint16_t port;
        assert_int_equal(
            nerve_metrics_listen_parse(bad[i].in, host, sizeof host, &port, err, sizeof err),
            NERVE_EINVAL);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "'%s'", bad[i].in);
        if (!strstr(err, quoted) || !strstr(err, bad[i].why))
            fail_msg("'%s': got \"%s\", want the value and \"%s\"", bad[i].in, err, bad[i].why);
    }
    char err[256];
    assert_int_equal(nerve_metrics_listen_parse(NULL, NULL, 0, NULL, err, sizeof err),
                     NERVE_EINVAL);
    char tiny[4];
    assert_int_equal(
        nerve_metrics_listen_parse("example.org:1", tiny, sizeof tiny, NULL, err, sizeof err),
        NERVE_ERANGE);
    assert_non_null(strstr(err, "too long"));
}

/*  A socket listening on 127.0.0.1 at a kernel-chosen port. */
static int s_listener(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void test_metrics_start_refuses_bad_and_busy_addresses(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(nerve_metrics_start("not-a-port", err, sizeof err));
    assert_non_null(strstr(err, "bad metrics address 'not-a-port'"));

    uint16_t port;
    int fd = s_listener(&port);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
    err[0] = '\0';
    assert_null(nerve_metrics_start(addr, err, sizeof err));
    assert_non_null(strstr(err, addr));
    assert_non_null(strstr(err, strerror(EADDRINUSE)));
    /* A bare port means 127.0.0.1: the same port is busy there too. */
    snprintf(addr, sizeof addr, "%u", (unsigned)port);
    assert_null(nerve_metrics_start(addr, err, sizeof err));
    assert_non_null(strstr(err, strerror(EADDRINUSE)));
    close(fd);

    /* TEST-NET-1 is no address of this machine. */
    assert_null(nerve_metrics_start("192.0.2.1:0", err, sizeof err));
    assert_non_null(strstr(err, "cannot bind metrics address '192.0.2.1:0'"));
    assert_non_null(strstr(err, strerror(EADDRNOTAVAIL)));
    /* No err buffer: still NULL (the reason goes to the log). */
    assert_null(nerve_metrics_start("", NULL, 0));
}

/* ---------------------------------------------------------------------------
   HTTP
   ------------------------------------------------------------------------ */

typedef struct s_resp {
    char *raw;
    size_t len;
    int status;
    const char *body;
    size_t body_len;
} s_resp_t;

/*  Sends `request` as it is to 127.0.0.1:port (then, with half_close,
    shuts our sending side) and reads until the server closes. False if
    it cannot connect or gets no answer within 10 s, so a broken server
    fails the test instead of hanging it. Safe from any thread. */
static bool s_http_raw(uint16_t port, const char *request, size_t reqlen, bool half_close,
                       s_resp_t *r)
{
    memset(r, 0, sizeof *r);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return false;
    }
    size_t sent = 0;
    while (sent < reqlen) {
        ssize_t n = send(fd, request + sent, reqlen - sent, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    if (half_close)
        shutdown(fd, SHUT_WR);
    size_t cap = 4096;
    r->raw = malloc(cap + 1);
    for (;;) {
        if (r->len == cap) {
            cap *= 2;
            r->raw = realloc(r->raw, cap + 1);
        }
        ssize_t n = recv(fd, r->raw + r->len, cap - r->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            r->raw[r->len] = '\0';
            close(fd);
            return false;
        }
        if (n <= 0)
            break;
        r->len += (size_t)n;
    }
    r->raw[r->len] = '\0';
    close(fd);
    if (sscanf(r->raw, "HTTP/1.%*d %d", &r->status) != 1)
        r->status = 0;
    char *sep = strstr(r->raw, "\r\n\r\n");
    if (sep) {
        r->body = sep + 4;
        r->body_len = r->len - (size_t)(r->body - r->raw);
    }
    return true;
}

static s_resp_t s_http(uint16_t port, const char *method, const char *path)
{
    char req[256];
    int n =
        snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                 method, path);
    s_resp_t r;
    if (!s_http_raw(port, req, (size_t)n, false, &r))
        fail_msg("%s %s: no answer", method, path);
    return r;
}

/*  The value of header `name` (case-insensitive), copied into out. */
static bool s_header(const s_resp_t *r, const char *name, char *out, size_t size)
{
    size_t nl = strlen(name);
    const char *end = r->body ? r->body : r->raw + r->len;
    for (const char *p = strstr(r->raw, "\r\n"); p && p + 2 < end; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (!strncasecmp(line, name, nl) && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            snprintf(out, size, "%.*s", (int)(e - v), v);
            return true;
        }
    }
    return false;
}

static nerve_metrics_t *s_start(void)
{
    char err[256] = "";
    nerve_metrics_t *m = nerve_metrics_start("127.0.0.1:0", err, sizeof err);
    if (!m)
        fail_msg("start: %s", err);
    assert_int_not_equal(nerve_metrics_port(m), 0);
    return m;
}

/*  A page like a manager's, with every kind of family. */
static nerve_mtext_t *s_sample_text(uint64_t events)
{
    static nerve_histo_t h;
    nerve_histo_reset(&h);
    for (uint64_t i = 0; i < events; i++)
        nerve_histo_observe(&h, 1e-6 * (double)(i % 5000));
    nerve_mtext_t *t = nerve_mtext_new();
    assert_int_equal(nerve_mtext_counter(t, "nerve_events_received_total",
                                         "Events accepted from the wire.", NULL, events),
                     0);
    const char *reasons[] = {"tag_empty", "payload_invalid", "hops_exceeded"};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(nerve_mtext_counter(t, "nerve_events_rejected_total",
                                             "Events dropped, by reason.",
                                             NERVE_LABELS("reason", reasons[i]), i * events),
                         0);
    assert_int_equal(nerve_mtext_gauge(t, "nerve_queue_depth", "Items waiting.",
                                       NERVE_LABELS("queue", "reactions"), 2.5),
                     0);
    assert_int_equal(
        nerve_mtext_histogram(t, "nerve_engine_latency_seconds", "Receive to decision.", NULL, &h),
        0);
    return t;
}

static void test_metrics_get_serves_published_text_as_prometheus(void **state)
{
    (void)state;
    nerve_metrics_t *m = s_start();
    nerve_mtext_t *t = s_sample_text(1000);
    assert_int_equal(nerve_metrics_publish(m, t), 0);
    size_t len;
    char *want = nerve_mtext_dup(t, &len);
    /* The builder is the caller's again at once: changing it now must not
       change what is served. */
    nerve_mtext_reset(t);

    s_resp_t r = s_http(nerve_metrics_port(m), "GET", "/metrics");
    assert_int_equal(r.status, 200);
    assert_true(strncmp(r.raw, "HTTP/1.1 200", 12) == 0);
    char ctype[128], clen[32];
    assert_true(s_header(&r, "Content-Type", ctype, sizeof ctype));
    assert_string_equal(ctype, NERVE_METRICS_CONTENT_TYPE);
    assert_non_null(strstr(ctype, "text/plain; version=0.0.4"));
    assert_true(s_header(&r, "Content-Length", clen, sizeof clen));
    assert_int_equal(strtoul(clen, NULL, 10), len);
    assert_int_equal(r.body_len, len);
    assert_memory_equal(r.body, want, len);
    s_assert_valid(r.body);
    assert_non_null(strstr(r.body, "nerve_events_received_total 1000\n"));
    assert_non_null(strstr(r.body, "nerve_events_rejected_total{reason=\"hops_exceeded\"} 2000\n"));
    assert_non_null(strstr(r.body, "nerve_engine_latency_seconds_count 1000\n"));
    assert_int_equal(nerve_metrics_scrapes(m), 1);
    free(r.raw);

    /* A query string does not change the path. */
    r = s_http(nerve_metrics_port(m), "GET", "/metrics?name[]=x");
    assert_int_equal(r.status, 200);
    free(r.raw);

    /* Counters move: the next publish is what the next scrape gets. */
    nerve_mtext_destroy(&t);
    t = s_sample_text(1500);
    assert_int_equal(nerve_metrics_publish(m, t), 0);
    r = s_http(nerve_metrics_port(m), "GET", "/metrics");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "nerve_events_received_total 1500\n"));
    s_assert_valid(r.body);
    free(r.raw);

    free(want);
    nerve_mtext_destroy(&t);
    nerve_metrics_stop(&m);
    assert_null(m);
}

static void test_metrics_answers_503_before_first_publish(void **state)
{
    (void)state;
    nerve_metrics_t *m = s_start();
    s_resp_t r = s_http(nerve_metrics_port(m), "GET", "/metrics");
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "not rendered yet"));
    assert_int_equal(nerve_metrics_scrapes(m), 0);
    free(r.raw);

    /* An empty page is a valid page. */
    nerve_mtext_t *t = nerve_mtext_new();
    assert_int_equal(nerve_metrics_publish(m, t), 0);
    r = s_http(nerve_metrics_port(m), "GET", "/metrics");
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    free(r.raw);
    nerve_mtext_destroy(&t);
    nerve_metrics_stop(&m);
}

static void test_metrics_other_paths_404_and_other_methods_405(void **state)
{
    (void)state;
    nerve_metrics_t *m = s_start();
    nerve_mtext_t *t = s_sample_text(10);
    assert_int_equal(nerve_metrics_publish(m, t), 0);
    uint16_t port = nerve_metrics_port(m);
    const char *paths[] = {"/", "/metrics/", "/metric", "/METRICS", "/metrics/x", "/favicon.ico"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        s_resp_t r = s_http(port, "GET", paths[i]);
        if (r.status != 404)
            fail_msg("GET %s: status %d, want 404", paths[i], r.status);
        free(r.raw);
    }
    const char *methods[] = {"POST", "PUT", "DELETE"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        s_resp_t r = s_http(port, methods[i], "/metrics");
        assert_int_equal(r.status, 405);
        char allow[64];
        assert_true(s_header(&r, "Allow", allow, sizeof allow));
        assert_string_equal(allow, "GET, HEAD");
        free(r.raw);
    }
    /* A POST with a body: answered, body discarded, server fine after. */
    const char *post = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                       "Connection: close\r\n\r\nhello";
    s_resp_t r;
    assert_true(s_http_raw(port, post, strlen(post), false, &r));
    assert_int_equal(r.status, 405);
    free(r.raw);
    assert_int_equal(nerve_metrics_scrapes(m), 0);
    r = s_http(port, "GET", "/metrics");
    assert_int_equal(r.status, 200);
    free(r.raw);
    nerve_mtext_destroy(&t);
    nerve_metrics_stop(&m);
}

static void test_metrics_head_sends_headers_without_body(void **state)
{
    (void)state;
    nerve_metrics_t *m = s_start();
    nerve_mtext_t *t = s_sample_text(10);
    assert_int_equal(nerve_metrics_publish(m, t), 0);
    s_resp_t r = s_http(nerve_metrics_port(m), "HEAD", "/metrics");
    assert_int_equal(r.status, 200);
    char ctype[128], clen[32];
    assert_true(s_header(&r, "Content-Type", ctype, sizeof ctype));
    assert_string_equal(ctype, NERVE_METRICS_CONTENT_TYPE);
    assert_true(s_header(&r, "Content-Length", clen, sizeof clen));
    assert_int_equal(strtoul(clen, NULL, 10), nerve_mtext_size(t));
    assert_int_equal(r.body_len, 0);
    free(r.raw);
    nerve_mtext_destroy(&t);
    nerve_metrics_stop(&m);
}

static void test_metrics_garbage_requests_do_not_break_the_server(void **state)
{
    (void)state;
    nerve_metrics_t *m = s_start();
    nerve_mtext_t *t = s_sample_text(10);
    assert_int_equal(nerve_metrics_publish(m, t), 0);
    uint16_t port = nerve_metrics_port(m);
    const char *garbage[] = {
        "\x01\x02\x03 garbage\r\n\r\n",
        "GET\r\n\r\n",
        "GET /metrics HTTP/9.9\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n",
        "",
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        s_resp_t r;
        char req[256];
        size_t n = (size_t)snprintf(req, sizeof req, "%s", garbage[i]);
        /* We half-close, so the server sees the end of the input and
           must answer or close, not wait. */
        assert_true(s_http_raw(port, req, n, true, &r));
        if (r.len)
            assert_true(r.status >= 400 && r.status < 600);
        free(r.raw);
    }
    /* A header far larger than the connection's memory. */
    size_t big = 200 * 1024;
    char *huge = malloc(big + 64);
    int n = snprintf(huge, 64, "GET /metrics HTTP/1.1\r\nX: ");
    memset(huge + n, 'a', big);
    memcpy(huge + n + big, "\r\n\r\n", 5);
    s_resp_t r;
    (void)s_http_raw(port, huge, (size_t)n + big + 4, true, &r);
    if (r.len)
        assert_true(r.status >= 400 && r.status < 600);
    free(r.raw);
    free(huge);

    r = s_http(port, "GET", "/metrics");
    assert_int_equal(r.status, 200);
    s_assert_valid(r.body);
    free(r.raw);
    nerve_mtext_destroy(&t);
    nerve_metrics_stop(&m);
}

static void test_metrics_serves_ipv6_loopback_when_available(void **state)
{
    (void)state;
    char err[256] = "";
    nerve_metrics_t *m = nerve_metrics_start("[::1]:0", err, sizeof err);
    if (!m) {
        /* A host without IPv6 says so clearly; nothing else may fail. */
        assert_non_null(strstr(err, "[::1]:0"));
        skip();
    }
    nerve_mtext_t *t = s_sample_text(3);
    assert_int_equal(nerve_metrics_publish(m, t), 0);
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                             .sin6_port = htons(nerve_metrics_port(m)),
                             .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    const char *req = "GET /metrics HTTP/1.0\r\n\r\n";
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    char buf[64] = "";
    assert_true(recv(fd, buf, sizeof buf - 1, 0) > 12);
    assert_true(strncmp(buf, "HTTP/1.0 200", 12) == 0 || strncmp(buf, "HTTP/1.1 200", 12) == 0);
    close(fd);
    nerve_mtext_destroy(&t);
    nerve_metrics_stop(&m);
}

static void test_metrics_due_paces_renders_to_one_per_interval(void **state)
{
    (void)state;
    assert_false(nerve_metrics_due(NULL, 0));
    assert_int_equal(nerve_metrics_next_ms(NULL, 0), UINT64_MAX);
    nerve_metrics_t *m = s_start();
    uint64_t t0 = 5000000;
    assert_int_equal(nerve_metrics_next_ms(m, t0), 0);
    assert_true(nerve_metrics_due(m, t0)); /* first call: render at once */
    assert_false(nerve_metrics_due(m, t0));
    assert_false(nerve_metrics_due(m, t0 + NERVE_METRICS_INTERVAL_MS - 1));
    assert_int_equal(nerve_metrics_next_ms(m, t0 + 400), NERVE_METRICS_INTERVAL_MS - 400);
    assert_true(nerve_metrics_due(m, t0 + NERVE_METRICS_INTERVAL_MS));
    assert_false(nerve_metrics_due(m, t0 + NERVE_METRICS_INTERVAL_MS + 10));
    /* A long pause does not cause a burst of catch-up renders. */
    assert_true(nerve_metrics_due(m, t0 + 60000));
    assert_false(nerve_metrics_due(m, t0 + 60001));
    nerve_metrics_stop(&m);
}

static void test_metrics_stop_and_publish_handle_null(void **state)
{
    (void)state;
    nerve_metrics_t *m = NULL;
    nerve_metrics_stop(&m);
    nerve_metrics_stop(NULL);
    nerve_mtext_destroy(NULL);
    assert_int_equal(nerve_metrics_port(NULL), 0);
    assert_int_equal(nerve_metrics_scrapes(NULL), 0);
    nerve_mtext_t *t = nerve_mtext_new();
    assert_int_equal(nerve_metrics_publish(NULL, t), NERVE_EINVAL);
    m = s_start();
    assert_int_equal(nerve_metrics_publish(m, NULL), NERVE_EINVAL);
    /* Stopping with a published text and no scrape frees it. */
    assert_int_equal(nerve_metrics_publish(m, t), 0);
    nerve_metrics_stop(&m);
    nerve_metrics_stop(&m);
    assert_null(m);
    nerve_mtext_destroy(&t);
}

static void test_metrics_stop_releases_the_port_for_a_restart(void **state)
{
    (void)state;
    nerve_metrics_t *m = s_start();
    nerve_mtext_t *t = s_sample_text(1);
    assert_int_equal(nerve_metrics_publish(m, t), 0);
    uint16_t port = nerve_metrics_port(m);
    s_resp_t r = s_http(port, "GET", "/metrics");
    assert_int_equal(r.status, 200);
    free(r.raw);
    nerve_metrics_stop(&m);

    /* A daemon restarting on its configured port gets it back at once,
       even with the last scrape's connection in TIME_WAIT. */
    char addr[32], err[256] = "";
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
    m = nerve_metrics_start(addr, err, sizeof err);
    if (!m)
        fail_msg("restart on %s: %s", addr, err);
    assert_int_equal(nerve_metrics_port(m), port);
    nerve_metrics_stop(&m);
    nerve_mtext_destroy(&t);
}

/* ---------------------------------------------------------------------------
   Publishing while scraping
   ------------------------------------------------------------------------ */

typedef struct s_scraper {
    uint16_t port;
    const char *texts[2];
    size_t lens[2];
    int rounds;
    int ok;
    atomic_int *finished;
    char failure[256];
} s_scraper_t;

static void *s_scrape_once(s_scraper_t *s);

static void *s_scrape_loop(void *arg)
{
    s_scraper_t *s = arg;
    s_scrape_once(s);
    atomic_fetch_add(s->finished, 1);
    return NULL;
}

static void *s_scrape_once(s_scraper_t *s)
{
    const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for (int i = 0; i < s->rounds; i++) {
        s_resp_t r;
        if (!s_http_raw(s->port, req, strlen(req), false, &r)) {
            snprintf(s->failure, sizeof s->failure, "scrape %d: no answer", i);
            free(r.raw);
            return NULL;
        }
        bool whole = r.status == 200 &&
                     ((r.body_len == s->lens[0] && !memcmp(r.body, s->texts[0], s->lens[0])) ||
                      (r.body_len == s->lens[1] && !memcmp(r.body, s->texts[1], s->lens[1])));
        if (!whole) {
            snprintf(s->failure, sizeof s->failure, "scrape %d: status %d, %zu bytes", i, r.status,
                     r.body_len);
            free(r.raw);
            return NULL;
        }
        s->ok++;
        free(r.raw);
    }
    return NULL;
}

static void test_metrics_publish_while_scraping_serves_only_whole_texts(void **state)
{
    (void)state;
    nerve_metrics_t *m = s_start();
    /* Two renderings of very different sizes: a torn read would show. */
    nerve_mtext_t *small = s_sample_text(7);
    nerve_mtext_t *large = nerve_mtext_new();
    char rule[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(rule, sizeof rule, "rule_%d", i);
        assert_int_equal(nerve_mtext_counter(large, "nerve_rule_firings_total", "Firings.",
                                             NERVE_LABELS("rule", rule), (uint64_t)i),
                         0);
    }
    assert_int_equal(nerve_metrics_publish(m, small), 0);

    enum { THREADS = 3 };
    atomic_int finished = 0;
    s_scraper_t sc[THREADS];
    pthread_t th[THREADS];
    char *texts[2] = {nerve_mtext_dup(small, NULL), nerve_mtext_dup(large, NULL)};
    for (int i = 0; i < THREADS; i++) {
        sc[i] = (s_scraper_t){.port = nerve_metrics_port(m),
                              .rounds = 40,
                              .texts = {texts[0], texts[1]},
                              .lens = {strlen(texts[0]), strlen(texts[1])},
                              .finished = &finished};
        assert_int_equal(pthread_create(&th[i], NULL, s_scrape_loop, &sc[i]), 0);
    }
    /* Publish as fast as we can until every scraper is done. */
    for (uint64_t n = 0; atomic_load(&finished) < THREADS; n++)
        assert_int_equal(nerve_metrics_publish(m, n % 2 ? large : small), 0);
    int total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        if (sc[i].failure[0])
            fail_msg("scraper %d: %s", i, sc[i].failure);
        total += sc[i].ok;
    }
    assert_int_equal(total, THREADS * 40);
    assert_int_equal(nerve_metrics_scrapes(m), THREADS * 40);
    free(texts[0]);
    free(texts[1]);
    nerve_mtext_destroy(&small);
    nerve_mtext_destroy(&large);
    nerve_metrics_stop(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checker_rejects_broken_pages),
        cmocka_unit_test(test_histo_bounds_are_log_scale_from_1us_to_10s),
        cmocka_unit_test(test_histo_observe_counts_bounds_inclusively_and_ignores_nonfinite),
        cmocka_unit_test(test_mtext_histogram_is_cumulative_with_inf_equal_to_count),
        cmocka_unit_test(test_mtext_help_and_type_once_per_family_when_calls_interleave),
        cmocka_unit_test(test_mtext_escapes_label_values_and_help),
        cmocka_unit_test(test_mtext_refuses_bad_names_and_stays_unchanged),
        cmocka_unit_test(test_mtext_gauge_writes_special_values_and_shortest_numbers),
        cmocka_unit_test(test_mtext_reset_empties_and_next_render_starts_fresh),
        cmocka_unit_test(test_mtext_many_families_and_series_stay_valid),
        cmocka_unit_test(test_metrics_listen_parse_accepts_documented_forms),
        cmocka_unit_test(test_metrics_listen_parse_refuses_bad_addresses_with_reason),
        cmocka_unit_test(test_metrics_start_refuses_bad_and_busy_addresses),
        cmocka_unit_test(test_metrics_get_serves_published_text_as_prometheus),
        cmocka_unit_test(test_metrics_answers_503_before_first_publish),
        cmocka_unit_test(test_metrics_other_paths_404_and_other_methods_405),
        cmocka_unit_test(test_metrics_head_sends_headers_without_body),
        cmocka_unit_test(test_metrics_garbage_requests_do_not_break_the_server),
        cmocka_unit_test(test_metrics_serves_ipv6_loopback_when_available),
        cmocka_unit_test(test_metrics_due_paces_renders_to_one_per_interval),
        cmocka_unit_test(test_metrics_stop_and_publish_handle_null),
        cmocka_unit_test(test_metrics_stop_releases_the_port_for_a_restart),
        cmocka_unit_test(test_metrics_publish_while_scraping_serves_only_whole_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
