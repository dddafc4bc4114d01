"""Beacons end to end: examples/python/beacon.py and nerve-beacond with real
probes, both sending into a real manager whose rules fire on their events.

The probes read fixture trees copied into the test's temp dir (a fake /proc
whose loadavg the test rewrites), so the values are known. nerve-beacond
reaches the manager's TCP events socket over CURVE, with its keypair in the
keys directory it shares with the manager ($NERVE_HOME is the temp dir).
The Python example speaks the wire protocol without CURVE, so its manager
takes events on an IPC socket (IPC is never CURVE: its 0700 directory is the
access control)."""
import os
import shutil
import signal
import subprocess
import time

from nervetest import BUILD, MODULES, SOURCE, Daemon, ManagerTest, main

PYTHON = "/usr/bin/python3"
EXAMPLE = os.path.join(SOURCE, "examples", "python", "beacon.py")
BEACOND = os.path.join(BUILD, "nerve-beacond")
FIXTURES = os.path.join(SOURCE, "tests", "fixtures", "proc", "basic")

RULES = """
/py/*:
  rules:
    - py_high:
        rule: rules.simple.gt
        threshold: 10
        reactions:
          - reactions.eventer.fire_event: {tag: /out/py, data: {from: "{{event.host}}", v: "{{value}}"}}
/load/avg/*:
  rules:
    - load_high:
        rule: rules.simple.gt
        threshold: 0.5
        reactions:
          - reactions.eventer.fire_event: {tag: /out/load, data: {host: "{{event.host}}"}}
"""


def tag_is(tag):
    return lambda t, p: t == tag


class PythonExample(ManagerTest):
    rules_text = RULES

    def test_python_example_event_fires_a_rule(self):
        bus = self.start_manager(events="ipc")
        r = subprocess.run([PYTHON, EXAMPLE, self.manager.events, "/py/latency", "42"],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        _, ev = bus.wait_for(tag_is("/py/latency"), what="the python event on the tap")
        self.assertEqual(ev["data"], {"value": 42.0})
        self.assertEqual(len(ev["id"]), 16)
        _, out = bus.wait_for(tag_is("/out/py"), what="the rule's reaction")
        self.assertEqual(out["data"]["v"], 42.0)
        self.assertEqual(out["data"]["from"], ev["host"])
        _, st = bus.control("status")
        self.assertEqual(st["rules"]["fired"], 1)

    def test_python_example_refuses_a_bad_tag(self):
        r = subprocess.run([PYTHON, EXAMPLE, "ipc://%s/none.sock" % self.dir, "no-slash", "1"],
                           capture_output=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"bad tag", r.stderr)


class Beacond(ManagerTest):
    rules_text = RULES

    def setUp(self):
        super().setUp()
        self.proc = os.path.join(self.dir, "proc")
        shutil.copytree(FIXTURES, self.proc)
        self.beacond = None

    def tearDown(self):
        if self.beacond:
            rc = self.beacond.stop()
            if rc not in (0, None):
                raise AssertionError("beacond exited %s:\n%s" % (rc, self.beacond.output()))
        super().tearDown()

    def set_load(self, load1):
        tmp = os.path.join(self.proc, "loadavg.tmp")
        with open(tmp, "w") as f:
            f.write("%.2f 0.58 0.59 2/1234 5678\n" % load1)
        os.rename(tmp, os.path.join(self.proc, "loadavg"))

    def write_config(self, beacons, name="beacond.yaml"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write("manager: %s\nhost: itest\nmodules: [%s]\n"
                    "beacons:\n%s" % (self.manager.events, MODULES, beacons))
        return path

    def start_beacond(self, beacons):
        self.config = self.write_config(beacons)
        self.beacond = Daemon("beacond", [BEACOND, "-c", self.config], self.dir,
                              env={"NERVE_HOME": self.dir}).start()
        return self.beacond

    def test_beacond_probe_event_fires_a_rule(self):
        bus = self.start_manager()
        self.start_beacond("  - fn: beacons.load.avg\n    interval: 100ms\n    proc: %s\n"
                           % self.proc)
        _, ev = bus.wait_for(tag_is("/load/avg/itest"), what="a load event from beacond")
        self.assertEqual(ev["host"], "itest")
        self.assertEqual(ev["data"]["value"], 0.52)
        self.assertEqual(ev["data"]["load15"], 0.59)
        _, out = bus.wait_for(tag_is("/out/load"), what="the rule firing on it")
        self.assertEqual(out["data"], {"host": "itest"})

    def test_beacond_onchange_sends_only_changes_beyond_delta(self):
        bus = self.start_manager()
        self.start_beacond("  - fn: beacons.load.avg\n    interval: 20ms\n    onchange: true\n"
                           "    delta: 0.1\n    proc: %s\n" % self.proc)
        _, ev = bus.wait_for(tag_is("/load/avg/itest"), what="the first load event")
        self.assertEqual(ev["data"]["value"], 0.52)
        self.set_load(0.55)  # within delta: held back
        bus.expect_none(tag_is("/load/avg/itest"), within=0.5)
        self.set_load(0.90)
        _, ev = bus.wait_for(tag_is("/load/avg/itest"), what="the changed load")
        self.assertEqual(ev["data"]["value"], 0.90)

    def test_beacond_onchange_refresh_resends_a_steady_value(self):
        bus = self.start_manager()
        self.start_beacond("  - fn: beacons.load.avg\n    interval: 20ms\n    onchange: true\n"
                           "    refresh: 150ms\n    proc: %s\n" % self.proc)
        t0 = time.monotonic()
        for _ in range(3):  # the same 0.52 every time: only refresh sends it again
            _, ev = bus.wait_for(tag_is("/load/avg/itest"), what="a refreshed load event")
            self.assertEqual(ev["data"]["value"], 0.52)
        # 3 events at >= 150 ms apart, where 20 ms runs without onchange would
        # have sent ~15
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)

    def test_beacond_failing_probe_sends_an_error_and_others_keep_running(self):
        bus = self.start_manager()
        missing = os.path.join(self.dir, "missing.log")
        self.start_beacond(
            "  - fn: beacons.log.match\n    interval: 50ms\n    path: %s\n    pattern: ERROR\n"
            "  - fn: beacons.load.avg\n    interval: 50ms\n    proc: %s\n" % (missing, self.proc))
        _, err = bus.wait_for(tag_is("/nerve/beacon/itest/error"), what="the error event")
        self.assertEqual(err["data"]["fn"], "beacons.log.match")
        self.assertEqual(err["data"]["tag"], "/log/match/itest")
        self.assertIn(missing, err["data"]["error"])
        self.assertIn("No such file", err["data"]["error"])
        # the other beacon keeps running, and the failing one is not repeated every run
        for _ in range(3):
            bus.wait_for(tag_is("/load/avg/itest"), what="load events after the error")
        bus.expect_none(tag_is("/nerve/beacon/itest/error"), within=0.3)
        # once the file exists, its lines are read
        with open(missing, "w") as f:
            f.write("ERROR found\n")
        _, ev = bus.wait_for(tag_is("/log/match/itest"), what="the log line")
        self.assertEqual(ev["data"]["line"], "ERROR found")

    def test_beacond_reload_keeps_old_beacons_on_a_bad_config(self):
        bus = self.start_manager()
        self.start_beacond("  - fn: beacons.load.avg\n    interval: 50ms\n    proc: %s\n"
                           % self.proc)
        bus.wait_for(tag_is("/load/avg/itest"), what="load events")
        self.write_config("  - fn: beacons.nope.avg\n")
        self.beacond.proc.send_signal(signal.SIGHUP)
        _, failed = bus.wait_for(tag_is("/nerve/beacon/itest/reload/failed"),
                                 what="the reload failure event")
        self.assertIn("beacons.nope.avg", failed["data"]["error"])
        bus.seen.clear()
        bus.wait_for(tag_is("/load/avg/itest"), what="load events after the failed reload")
        self.write_config("  - fn: beacons.load.avg\n    interval: 50ms\n    tag: /load/new\n"
                          "    proc: %s\n" % self.proc)
        self.beacond.proc.send_signal(signal.SIGHUP)
        _, ev = bus.wait_for(tag_is("/load/new"), what="events on the reloaded tag")
        self.assertEqual(ev["data"]["value"], 0.52)

    def test_beacond_check_names_the_bad_entry(self):
        self.start_manager()
        path = self.write_config("  - fn: beacons.load.avg\n    proc: /x\n"
                                 "  - fn: beacons.log.match\n    path: /var/log/x\n")
        r = subprocess.run([BEACOND, "-c", path, "--check"], capture_output=True, timeout=30,
                           env=dict(os.environ, NERVE_HOME=self.dir))
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"beacond.yaml:7:9", r.stderr)
        self.assertIn(b"'pattern'", r.stderr)
        path = self.write_config("  - fn: beacons.load.avg\n    proc: /x\n    intervl: 5s\n")
        r = subprocess.run([BEACOND, "-c", path, "--check"], capture_output=True, timeout=30,
                           env=dict(os.environ, NERVE_HOME=self.dir))
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"unknown key 'intervl'", r.stderr)

    def test_beacond_once_runs_each_beacon_and_exits(self):
        bus = self.start_manager()
        path = self.write_config("  - fn: beacons.load.avg\n    proc: %s\n"
                                 "  - fn: beacons.mem.usage\n    proc: %s\n" % (self.proc, self.proc))
        r = subprocess.run([BEACOND, "-c", path, "--once"], capture_output=True, timeout=30,
                           env=dict(os.environ, NERVE_HOME=self.dir))
        self.assertEqual(r.returncode, 0, r.stderr)
        _, mem = bus.wait_for(tag_is("/mem/usage/itest"), what="the mem event")
        self.assertEqual(mem["data"]["value"], 75.0)
        bus.wait_for(tag_is("/load/avg/itest"), what="the load event")


if __name__ == "__main__":
    main()
