/*  test_beacond_scheduler.c — nerve-beacond's counters across a reload
    (beacons/beacond/scheduler.c: beacond_carry).

    Schedulers are built from real config files with the built-in probes
    (beacons.load.avg reading the fixture /proc in tests/fixtures/proc/basic,
    beacons.log.match failing on a file that is not there), run with
    beacond_run_once(), and send to a PULL the test binds on an IPC path in
    a scratch directory. A reload is what nerve-beacond does on SIGHUP: a
    new scheduler from the new config, beacond_carry(next, prev), then
    prev destroyed.
*/
#define _GNU_SOURCE /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include <nerve/error.h>

#include "../../beacons/beacond/config.h"
#include "../../beacons/beacond/scheduler.h"

#pragma GCC diagnostic ignored "-Wformat-truncation" /* scratch paths are short */

#define FIXTURE_PROC NERVE_SOURCE_DIR "/tests/fixtures/proc/basic"

typedef struct fixture {
    char dir[256];
    char events[400];
    void *ctx, *pull;
} fixture_t;

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) == 0 ? 0 : -1;
}

/*  A scheduler for `beacons` (the YAML list's lines). */
static beacond_t *s_new(fixture_t *f, const char *beacons)
{
    char path[400];
    snprintf(path, sizeof path, "%s/beacond.yaml", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "manager: %s\nhost: u1\nmodules: [%s]\nbeacons:\n%s", f->events,
            NERVE_MODULE_BUILD_DIR, beacons);
    fclose(fp);
    beacond_config_t cfg;
    nerve_conf_error_t cerr;
    assert_int_equal(beacond_config_defaults(&cfg), 0);
    if (beacond_config_load(&cfg, path, &cerr) != 0)
        fail_msg("config: %s", cerr.message);
    char err[2048] = "";
    beacond_t *b = beacond_new(&cfg, err, sizeof err);
    beacond_config_free(&cfg);
    if (!b)
        fail_msg("beacond_new: %s", err);
    return b;
}

/*  What nerve-beacond does when a SIGHUP's config loaded. */
static beacond_t *s_reload(fixture_t *f, beacond_t **prev, const char *beacons)
{
    beacond_t *next = s_new(f, beacons);
    beacond_carry(next, *prev);
    beacond_destroy(prev);
    return next;
}

static beacond_beacon_stats_t s_beacon(const beacond_t *b, size_t i)
{
    beacond_beacon_stats_t st;
    assert_int_equal(beacond_beacon_stats(b, i, &st), 0);
    return st;
}

static int s_setup(void **state)
{
    unsetenv("JOURNAL_STREAM");
    fixture_t *f = calloc(1, sizeof *f);
    char tmpl[] = "/tmp/nerve-beacond-XXXXXX";
    if (!f || !mkdtemp(tmpl))
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s", tmpl);
    setenv("NERVE_HOME", f->dir, 1);
    snprintf(f->events, sizeof f->events, "ipc://%s/events.sock", f->dir);
    f->ctx = zmq_ctx_new();
    f->pull = zmq_socket(f->ctx, ZMQ_PULL);
    int zero = 0;
    zmq_setsockopt(f->pull, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(f->pull, f->events) != 0)
        return -1;
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    zmq_close(f->pull);
    zmq_ctx_term(f->ctx);
    nftw(f->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ------------------------------------------------------------------ tests */

#define LOAD_AVG        "  - fn: beacons.load.avg\n    proc: " FIXTURE_PROC "\n"
#define LOAD_AVG_TAG(t) "  - fn: beacons.load.avg\n    tag: " t "\n    proc: " FIXTURE_PROC "\n"

static void test_beacond_reload_keeps_daemon_totals_and_kept_beacons_counters(void **state)
{
    fixture_t *f = *state;
    char missing[400];
    snprintf(missing, sizeof missing, "%s/missing.log", f->dir);
    char beacons[1024];
    snprintf(beacons, sizeof beacons,
             LOAD_AVG "  - fn: beacons.log.match\n    path: %s\n    pattern: ERROR\n", missing);
    beacond_t *b = s_new(f, beacons);
    assert_int_equal(beacond_run_once(b), 1); /* log.match fails: no file */
    assert_int_equal(beacond_run_once(b), 1);
    beacond_stats_t st;
    beacond_stats(b, &st);
    assert_int_equal(st.runs, 4);
    assert_int_equal(st.failures, 2);
    uint64_t emitted = st.emitted; /* two load events and the error event */
    assert_true(emitted >= 3);
    assert_int_equal(st.reloads, 0);

    /* load.avg stays (same fn, default tag), log.match goes, a load.avg on
       another tag comes. */
    b = s_reload(f, &b, LOAD_AVG_TAG("/load/other") LOAD_AVG);
    beacond_stats(b, &st);
    assert_int_equal(st.runs, 4);
    assert_int_equal(st.failures, 2);
    assert_int_equal(st.emitted, emitted);
    assert_int_equal(st.reloads, 1);
    assert_int_equal(s_beacon(b, 0).runs, 0); /* new */
    assert_int_equal(s_beacon(b, 1).runs, 2); /* kept, now second in the file */
    assert_int_equal(s_beacon(b, 1).emitted, 2);
    assert_int_equal(s_beacon(b, 1).failures, 0);

    assert_int_equal(beacond_run_once(b), 0);
    beacond_stats(b, &st);
    assert_int_equal(st.runs, 6);
    assert_int_equal(st.failures, 2);
    assert_int_equal(s_beacon(b, 0).runs, 1);
    assert_int_equal(s_beacon(b, 1).runs, 3);
    beacond_destroy(&b);
}

static void test_beacond_beacon_with_another_tag_starts_from_zero(void **state)
{
    fixture_t *f = *state;
    beacond_t *b = s_new(f, LOAD_AVG);
    beacond_run_once(b);
    assert_int_equal(s_beacon(b, 0).runs, 1);
    b = s_reload(f, &b, LOAD_AVG_TAG("/load/moved"));
    assert_int_equal(s_beacon(b, 0).runs, 0);
    beacond_stats_t st;
    beacond_stats(b, &st);
    assert_int_equal(st.runs, 1); /* the daemon's total keeps it */
    beacond_beacon_stats_t none;
    assert_int_equal(beacond_beacon_stats(b, 1, &none), NERVE_ERANGE);
    beacond_destroy(&b);
}

static void test_beacond_reload_failures_are_counted_and_carried(void **state)
{
    fixture_t *f = *state;
    beacond_t *b = s_new(f, LOAD_AVG);
    beacond_report_reload_failure(b, "beacond.yaml:3:9: no such module");
    beacond_stats_t st;
    beacond_stats(b, &st);
    assert_int_equal(st.reload_failures, 1);
    assert_int_equal(st.reloads, 0);
    b = s_reload(f, &b, LOAD_AVG);
    b = s_reload(f, &b, LOAD_AVG);
    beacond_stats(b, &st);
    assert_int_equal(st.reload_failures, 1);
    assert_int_equal(st.reloads, 2);
    beacond_destroy(&b);
}

static void test_beacond_beacon_listed_twice_keeps_each_ones_counters_in_order(void **state)
{
    fixture_t *f = *state;
    beacond_t *b = s_new(f, LOAD_AVG);
    beacond_run_once(b);
    beacond_run_once(b);
    /* A second copy of the same beacon starts from 0; the first keeps 2. */
    b = s_reload(f, &b, LOAD_AVG LOAD_AVG_TAG("/x") LOAD_AVG);
    assert_int_equal(s_beacon(b, 0).runs, 2);
    assert_int_equal(s_beacon(b, 2).runs, 0);
    beacond_run_once(b);
    /* The k-th copy takes the k-th copy's counters, wherever they moved. */
    b = s_reload(f, &b, LOAD_AVG LOAD_AVG);
    assert_int_equal(s_beacon(b, 0).runs, 3);
    assert_int_equal(s_beacon(b, 1).runs, 1);
    beacond_stats_t st;
    beacond_stats(b, &st);
    assert_int_equal(st.runs, 5);
    beacond_destroy(&b);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_beacond_reload_keeps_daemon_totals_and_kept_beacons_counters),
        T(test_beacond_beacon_with_another_tag_starts_from_zero),
        T(test_beacond_reload_failures_are_counted_and_carried),
        T(test_beacond_beacon_listed_twice_keeps_each_ones_counters_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
