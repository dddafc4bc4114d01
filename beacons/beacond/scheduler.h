/*  scheduler.h — nerve-beacond's loop: run each configured beacon on its
    interval and send what it emits to the manager.

    beacond_new() resolves every beacon's function through the module
    loader (role beacons), runs its prepare() with the beacon's args and
    opens the connection to the manager (a nerve_beacon_t from
    <nerve/beacon.h>, so events queue while the manager is away and the
    loop never waits for it). Anything wrong is reported with the config
    entry's file:line:column and nothing runs.

    beacond_run() calls each beacon when it is due, in one thread, and
    sleeps in between (poll() on a wake-up pipe, so a signal ends the
    sleep at once). What a beacon emits goes through the host API:
    - onchange: an event whose data.value is within `delta` of the last
      value sent on that tag is not sent (unless `refresh` has passed);
    - a run that fails sends /nerve/beacon/<host>/error {fn, tag, error}
      — on the first failure, when the reason changes, and once a minute
      while it lasts — and the beacon is run again at its next interval.

    Counters are monotonic across reloads, as Prometheus expects: a reload
    makes a new scheduler, and beacond_carry() hands it the old one's
    daemon totals, and each beacon's counters when the new config still has
    that beacon (the same fn and tag).

    Threading: one scheduler per process (signals reach it through
    beacond_request_stop/reload, which are async-signal-safe); everything
    else runs on the thread that calls beacond_run().
*/
#ifndef NERVE_BEACOND_SCHEDULER_H
#define NERVE_BEACOND_SCHEDULER_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>

typedef struct beacond beacond_t;

/*  What beacond_run() came back for. */
#define BEACOND_STOPPED 0
#define BEACOND_RELOAD  1

/*  Builds the scheduler for cfg (which it does not keep: everything needed
    is copied). Returns NULL with a one-line reason in err. */
beacond_t *beacond_new(const beacond_config_t *cfg, char *err, size_t errsize);

/*  Runs until beacond_request_stop() (BEACOND_STOPPED) or
    beacond_request_reload() (BEACOND_RELOAD; call again to go on). The
    first run of every beacon is immediate. */
int beacond_run(beacond_t *self);

/*  Runs every beacon once, in config order. Returns the number of runs
    that failed. */
size_t beacond_run_once(beacond_t *self);

/*  Sends /nerve/beacon/<host>/reload/failed {error} (a reload that kept
    the old configuration running) and counts the failure. */
void beacond_report_reload_failure(beacond_t *self, const char *why);

/*  Makes `next`, the scheduler a reload built, go on counting where
    `prev`, the one it replaces, stopped: next's daemon totals become
    prev's (beacond_stats, reload_failures included) plus one reload; each
    beacon of next takes the counters of prev's beacon with the same fn and
    tag (the k-th such beacon of prev for the k-th of next, when a config
    lists one twice). A beacon new in next starts from 0; one gone from
    prev is dropped (its series leaves /metrics). Call once, before
    anything runs on next and before prev is destroyed. */
void beacond_carry(beacond_t *next, const beacond_t *prev);

/*  Serves this scheduler's counters at /metrics through m (not owned; it
    outlives reloads, which make a new scheduler): rendered by
    beacond_run() at most once a second. NULL turns it off. */
struct nerve_metrics;
void beacond_set_metrics(beacond_t *self, struct nerve_metrics *m);

/*  Counters since the daemon started (carried over reloads). */
typedef struct beacond_stats {
    uint64_t runs;            /* beacon function calls */
    uint64_t failures;        /* calls that returned an error */
    uint64_t emitted;         /* events handed to the connection (error events too) */
    uint64_t suppressed;      /* events onchange kept back */
    uint64_t dropped;         /* events the connection's full queue dropped */
    uint64_t reloads;         /* reloads that replaced the configuration */
    uint64_t reload_failures; /* reloads that failed: the old one kept running */
} beacond_stats_t;

void beacond_stats(const beacond_t *self, beacond_stats_t *out);

/*  One beacon's counters (carried over reloads while its fn and tag stay). */
typedef struct beacond_beacon_stats {
    uint64_t runs;       /* calls of its function */
    uint64_t failures;   /* calls that returned an error */
    uint64_t emitted;    /* events it emitted that were queued */
    uint64_t suppressed; /* events onchange held back */
    uint64_t dropped;    /* events the full queue dropped */
} beacond_beacon_stats_t;

/*  The counters of beacon i (config order, i < beacond_count()). 0, or
    NERVE_ERANGE for an i out of range. */
int beacond_beacon_stats(const beacond_t *self, size_t i, beacond_beacon_stats_t *out);

/*  Number of beacons configured. */
size_t beacond_count(const beacond_t *self);

/*  Releases every beacon (their release() functions), the modules and the
    connection (waiting up to a second for queued events); sets *self to
    NULL. Safe on NULL and twice. */
void beacond_destroy(beacond_t **self);

/*  Async-signal-safe: end the current beacond_run(). */
void beacond_request_stop(void);
void beacond_request_reload(void);

#endif
