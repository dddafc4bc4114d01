"""nerve-beacond's counters never go back when SIGHUP reloads its config.

A real manager and a real nerve-beacond (CURVE over TCP, keypairs in the
temp dir they share as $NERVE_HOME) with /metrics on a port the OS picked.
The probes read a fixture /proc copied into the temp dir, and one fails on
a file that is not there. The test reads /metrics before a reload that
drops the failing beacon, keeps one and adds another, and after it:
Prometheus counters must be monotonic, so every daemon total, and the kept
beacon's own counter, is at least what it was. Waits are on tap messages
and /metrics, never sleeps.
"""
import os
import shutil
import signal

from nervetest import (BUILD, Daemon, ManagerTest, MODULES, SOURCE, free_port, main, scrape,
                       wait_until)

BEACOND = os.path.join(BUILD, "nerve-beacond")
FIXTURES = os.path.join(SOURCE, "tests", "fixtures", "proc", "basic")
LOAD = 'nerve_beacond_beacon_runs_total{fn="beacons.load.avg",tag="/load/avg/itest"}'
NEW = 'nerve_beacond_beacon_runs_total{fn="beacons.load.avg",tag="/load/new"}'
GONE = 'nerve_beacond_beacon_runs_total{fn="beacons.log.match",tag="/log/match/itest"}'




def scraped(port, pred):
    """A wait_until predicate: the scrape when pred holds on it."""
    def check():
        m = scrape(port)
        return m if m and pred(m) else None
    return check


class BeacondReload(ManagerTest):
    def setUp(self):
        super().setUp()
        self.proc = os.path.join(self.dir, "proc")
        shutil.copytree(FIXTURES, self.proc)
        self.port = free_port()
        self.config = os.path.join(self.dir, "beacond.yaml")
        self.beacond = None

    def tearDown(self):
        if self.beacond:
            rc = self.beacond.stop()
            if rc not in (0, None):
                raise AssertionError("beacond exited %s:\n%s" % (rc, self.beacond.output()))
        super().tearDown()

    def write_config(self, beacons):
        tmp = self.config + ".tmp"
        with open(tmp, "w") as f:
            f.write("manager: %s\nhost: itest\nmodules: [%s]\nmetrics: 127.0.0.1:%d\n"
                    "beacons:\n%s" % (self.manager.events, MODULES, self.port, beacons))
        os.rename(tmp, self.config)

    def test_beacond_counters_never_go_back_across_a_reload(self):
        bus = self.start_manager()
        missing = os.path.join(self.dir, "missing.log")
        self.write_config(
            "  - fn: beacons.load.avg\n    interval: 50ms\n    proc: %s\n"
            "  - fn: beacons.log.match\n    interval: 50ms\n    path: %s\n    pattern: E\n"
            % (self.proc, missing))
        self.beacond = Daemon("beacond", [BEACOND, "-c", self.config], self.dir,
                              env={"NERVE_HOME": self.dir}).start()
        before = wait_until(scraped(self.port, lambda m: m.get(LOAD, 0) >= 3 and
                                    m["nerve_beacond_failures_total"] >= 2),
                            what="beacond metrics\n" + self.beacond.output())
        self.assertEqual(before["nerve_beacond_reloads_total"], 0)

        # The failing beacon goes, the load one stays, a new one comes.
        self.write_config("  - fn: beacons.load.avg\n    interval: 50ms\n    proc: %s\n"
                          "  - fn: beacons.load.avg\n    interval: 50ms\n    tag: /load/new\n"
                          "    proc: %s\n" % (self.proc, self.proc))
        self.beacond.proc.send_signal(signal.SIGHUP)
        bus.wait_for(lambda t, p: t == "/load/new", what="events of the reloaded config")
        after = wait_until(scraped(self.port, lambda m: m["nerve_beacond_reloads_total"] == 1 and
                                   NEW in m), what="the reload on /metrics")

        for name in ("runs", "failures", "events", "suppressed", "dropped"):
            key = "nerve_beacond_%s_total" % name
            self.assertGreaterEqual(after[key], before[key], key)
        # No beacon fails any more: a reset would have put this back to 0.
        self.assertGreaterEqual(after["nerve_beacond_failures_total"], 2)
        self.assertGreaterEqual(after[LOAD], before[LOAD])
        self.assertLess(after[NEW], after[LOAD])  # the new one started from 0
        self.assertNotIn(GONE, after)
        self.assertEqual(after["nerve_beacond_reload_failures_total"], 0)
        self.assertEqual(after["nerve_beacond_reload_last_ok"], 1)

        # A reload that fails is counted too, and keeps everything running.
        self.write_config("  - fn: beacons.nope.avg\n")
        self.beacond.proc.send_signal(signal.SIGHUP)
        bus.wait_for(lambda t, p: t == "/nerve/beacon/itest/reload/failed",
                     what="the reload failure")
        failed = wait_until(scraped(self.port, lambda m:
                                    m["nerve_beacond_reload_failures_total"] == 1),
                            what="the failure on /metrics")
        self.assertEqual(failed["nerve_beacond_reload_last_ok"], 0)
        self.assertEqual(failed["nerve_beacond_reloads_total"], 1)
        self.assertEqual(failed["nerve_beacond_reload_attempts_total"], 2)
        self.assertGreaterEqual(failed[LOAD], after[LOAD])


if __name__ == "__main__":
    main()
