"""Beacons end to end: examples/python/beacon.py and nerve-beacond with real
probes, both sending into a real manager whose rules fire on their events.

The probes read fixture trees copied into the test's temp dir (a fake /proc
whose loadavg the test rewrites), so the values are known. nerve-beacond
reaches the manager's TCP events socket over CURVE, with its keypair in the
keys directory it shares with the manager ($NERVE_HOME is the temp dir).
The Python example is an app on another host: its own $NERVE_HOME (<dir>/app)
holds its keypair, made by `nerve keys gen`, and a copy of the manager's
public key; the manager admits it only once its key is in accepted/."""
import os
import shutil
import signal
import subprocess
import time

from nervetest import (BUILD, MODULES, SOURCE, Daemon, ManagerTest, free_port, main,
                       pending_name, read_public, wait_until, write_keypair)

PYTHON = "/usr/bin/python3"
EXAMPLE = os.path.join(SOURCE, "examples", "python", "beacon.py")
BEACOND = os.path.join(BUILD, "nerve-beacond")
NERVE = os.path.join(BUILD, "nerve")
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

    def setUp(self):
        super().setUp()
        self.app = os.path.join(self.dir, "app")  # the app host's $NERVE_HOME
        self.app_keys = os.path.join(self.app, "keys")
        os.makedirs(self.app, mode=0o700)

    def example(self, *args, home=None):
        return subprocess.run([PYTHON, EXAMPLE] + list(args), capture_output=True, text=True,
                              timeout=30, env=dict(os.environ, NERVE_HOME=home or self.app))

    def nerve_keys(self, *args):
        r = subprocess.run([NERVE, "keys"] + list(args), capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)

    def setup_app_keys(self, accept):
        """As an operator would: `nerve keys gen beacon` on the app host, the
        manager's public key copied there to pin, and (accept) the app's key
        copied into the manager's accepted/. Returns the app's public key."""
        self.nerve_keys("gen", "beacon", "--keys", self.app_keys)
        shutil.copy(os.path.join(self.keys, "manager.pub"), self.app_keys)
        if accept:
            os.makedirs(os.path.join(self.keys, "accepted"), mode=0o700, exist_ok=True)
            shutil.copy(os.path.join(self.app_keys, "beacon.pub"),
                        os.path.join(self.keys, "accepted", "app1.pub"))
        return read_public(self.app_keys, "beacon")

    def assert_fired(self, bus, value):
        _, ev = bus.wait_for(tag_is("/py/latency"), what="the python event on the tap")
        self.assertEqual(ev["data"], {"value": value})
        self.assertEqual(len(ev["id"]), 16)
        _, out = bus.wait_for(tag_is("/out/py"), what="the rule's reaction")
        self.assertEqual(out["data"]["v"], value)
        self.assertEqual(out["data"]["from"], ev["host"])
        return ev

    def assert_nothing_accepted(self, bus):
        bus.barrier()  # the bus's own probe comes back: anything sent before it is handled
        bus.expect_none(lambda t, p: t in ("/py/latency", "/out/py"), within=0.2)
        st = bus.control("status")[1]
        self.assertEqual(st["rules"]["fired"], 0)
        return st

    def test_python_example_over_curve_with_an_accepted_key_fires_a_rule(self):
        self.setup_app_keys(accept=True)
        bus = self.start_manager()  # TCP events: CURVE
        self.assertTrue(self.manager.events.startswith("tcp://"))
        r = self.example(self.manager.events, "/py/latency", "42", "--host", "app1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        ev = self.assert_fired(bus, 42.0)
        self.assertEqual(ev["host"], "app1")
        st = bus.control("status")[1]
        self.assertEqual(st["rules"]["fired"], 1)
        self.assertEqual(st["security"]["mode"], "curve")
        self.assertEqual(st["security"]["zap"]["refused_unknown"], 0)
        self.assertGreaterEqual(st["security"]["zap"]["admitted"], 2)  # the test's bus, the app

    def test_python_example_key_not_accepted_sends_nothing_until_nerve_keys_accept(self):
        public = self.setup_app_keys(accept=False)
        pending = pending_name(public)
        bus = self.start_manager()
        # key files by path this time, and a $NERVE_HOME that holds none
        paths = ["--client-key", os.path.join(self.app_keys, "beacon.secret"),
                 "--server-key", os.path.join(self.app_keys, "manager.pub")]
        empty = os.path.join(self.dir, "empty")
        r = self.example(self.manager.events, "/py/latency", "42", *paths, home=empty)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("refused the connection", r.stderr)
        self.assertIn("`nerve keys accept %s`" % pending, r.stderr)
        st = self.assert_nothing_accepted(bus)
        self.assertEqual(st["security"]["zap"]["refused_unknown"], 1)
        self.assertEqual(st["events"]["accepted"], st["events"]["received"])
        self.assertTrue(os.path.exists(os.path.join(self.keys, "pending", pending + ".pub")))

        self.nerve_keys("accept", pending, "--keys", self.keys)
        # the ZAP handler looks at the directory once a second: until then, refused
        tries = []
        wait_until(lambda: tries.append(self.example(self.manager.events, "/py/latency", "42",
                                                     *paths, home=empty)) or
                   tries[-1].returncode == 0, timeout=15, interval=0.2, what="the key admitted")
        self.assertTrue(all(t.returncode == 1 for t in tries[:-1]), [t.stderr for t in tries])
        self.assert_fired(bus, 42.0)

    def test_python_example_pinning_another_server_key_sends_nothing(self):
        self.setup_app_keys(accept=True)
        bus = self.start_manager()
        # the manager does not hold this key's secret: a rogue manager, as seen by the app
        write_keypair(self.app_keys, "rogue")
        r = self.example(self.manager.events, "/py/latency", "42", "--server-key", "rogue",
                         "--timeout", "1")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("does not hold the key pinned for it (rogue)", r.stderr)
        self.assert_nothing_accepted(bus)

    def test_python_example_insecure_is_refused_by_a_curve_manager(self):
        bus = self.start_manager()
        r = self.example(self.manager.events, "/py/latency", "42", "--insecure")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("--insecure: CURVE is off", r.stderr)
        self.assertIn("it runs CURVE: leave out --insecure", r.stderr)
        self.assert_nothing_accepted(bus)

    def test_python_example_over_ipc_needs_no_keys(self):
        bus = self.start_manager(events="ipc")
        r = self.example(self.manager.events, "/py/latency", "42")  # app home has no keys
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(self.app_keys))
        self.assert_fired(bus, 42.0)
        _, st = bus.control("status")
        self.assertEqual(st["rules"]["fired"], 1)

    def test_python_example_key_file_errors_name_the_file(self):
        ep = "tcp://127.0.0.1:%d" % free_port()  # never reached: keys are read first
        r = self.example(ep, "/py/latency")
        self.assertEqual(r.returncode, 2)
        self.assertIn("%s/beacon.secret: No such file or directory" % self.app_keys, r.stderr)
        self.assertIn("`nerve keys gen beacon --keys %s`" % self.app_keys, r.stderr)

        write_keypair(self.app_keys, "beacon")
        r = self.example(ep, "/py/latency")
        self.assertEqual(r.returncode, 2)
        self.assertIn("%s/manager.pub: No such file or directory (copy the manager's "
                      "manager.pub there)" % self.app_keys, r.stderr)

        secret = os.path.join(self.app_keys, "beacon.secret")
        os.chmod(secret, 0o640)
        r = self.example(ep, "/py/latency")
        self.assertEqual(r.returncode, 2)
        self.assertIn("%s: secret key readable by group or others (mode 640)" % secret, r.stderr)
        os.chmod(secret, 0o600)

        r = self.example(ep, "/py/latency", "--client-key",
                         os.path.join(self.app_keys, "beacon.pub"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("beacon.pub: no CURVE secret key in zcert format", r.stderr)

        r = self.example(ep, "/py/latency", "--keys", self.dir + "/nowhere")
        self.assertEqual(r.returncode, 2)
        self.assertIn("%s/nowhere/beacon.secret: No such file" % self.dir, r.stderr)

    def test_python_example_without_a_manager_exits_3(self):
        write_keypair(self.app_keys, "beacon")
        shutil.copy(os.path.join(self.keys, "manager.pub"), self.app_keys)
        ep = "tcp://127.0.0.1:%d" % free_port()
        r = self.example(ep, "/py/latency", "--timeout", "0.3")
        self.assertEqual(r.returncode, 3)
        self.assertIn("no manager answered at %s within 0.3s" % ep, r.stderr)

    def test_python_example_refuses_a_bad_tag(self):
        r = self.example("ipc://%s/none.sock" % self.dir, "no-slash", "1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad tag 'no-slash'", r.stderr)
        r = self.example("ipc://%s/none.sock" % self.dir, "/py/x", "many")
        self.assertEqual(r.returncode, 2)
        self.assertIn("invalid float value: 'many'", r.stderr)


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
