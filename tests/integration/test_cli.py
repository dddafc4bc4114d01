"""The `nerve` CLI against a real manager (and publisher): every verb through
the built binary, checking its output, its --json and its exit code (0 ok,
1 error reported or check failed, 2 usage, 3 unreachable)."""
import json
import os
import select
import signal
import subprocess
import time

import zmq

from nervetest import (BUILD, MODULES, Bus, Daemon, Manager, ManagerTest, free_port, is_event,
                       main, pending_name, read_public, wait_until, write_keypair, write_public)

NERVE = os.path.join(BUILD, "nerve")
FIRE = "reactions.eventer.fire_event"

RULES = """
/t/ops:
  rules:
    - other:
        rule: rules.simple.gt
        field: y
        threshold: 0
    - r_and:
        rule: rules.simple.gt
        field: x
        threshold: 0
        chain:
          - AND: other
        reactions:
          - %(fire)s: {tag: /out/and}
    - r_or:
        rule: rules.simple.gt
        field: x
        threshold: 0
        chain:
          - OR: other
        reactions:
          - %(fire)s: {tag: /out/or, data: {x: '{{event.data.x}}'}}
/t/cli/react:
  rules:
    - shout:
        rule: rules.simple.gt
        threshold: 0
        reactions:
          - reactions.log.write: {target: all, message: 'hi {{event.host}}'}
""" % {"fire": FIRE}


class Cli(ManagerTest):
    rules_text = RULES

    def setUp(self):
        super().setUp()
        self.publisher = None
        self.watchers = []

    def tearDown(self):
        for w in self.watchers:
            if w.poll() is None:
                w.kill()
            w.wait()
            w.stdout.close()
        if self.publisher:
            self.publisher.stop()
        super().tearDown()

    # ---------------------------------------------------------- helpers

    def endpoints(self):
        m = self.manager
        return ["--control", m.control_ep, "--tap", m.tap, "--events", m.events,
                "--publisher-control", "ipc://%s/run/publisher-control.sock" % self.dir]

    def nerve(self, *args, timeout="5s", stdin=None, endpoints=True):
        argv = [NERVE, "--timeout", timeout] + (self.endpoints() if endpoints else []) + list(args)
        p = subprocess.run(argv, capture_output=True, text=True, input=stdin, timeout=60,
                           env=dict(os.environ, NERVE_HOME=self.dir))
        return p.returncode, p.stdout, p.stderr

    def start_publisher(self):
        run = os.path.join(self.dir, "run")
        self.publisher = Daemon("publisher", [
            os.path.join(BUILD, "nerve-publisher"), "--input", self.manager.publisher,
            "--output", "ipc://%s/publisher-out.sock" % run,
            "--control", "ipc://%s/publisher-control.sock" % run], self.dir).start()
        deadline = time.monotonic() + 15
        while True:  # ready when it answers status (the CLI's own question)
            rc, out, _ = self.nerve("status", "--json", timeout="200ms")
            if rc == 0 and "nerve-publisher" in out:
                return
            if time.monotonic() > deadline or not self.publisher.alive():
                raise AssertionError("publisher not ready:\n" + self.publisher.output())

    def watch(self, *args):
        argv = [NERVE] + self.endpoints() + ["watch"] + list(args)
        # Unbuffered: select() must see every line Python has not read yet.
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0,
                             env=dict(os.environ, NERVE_HOME=self.dir))
        self.watchers.append(p)
        return p

    def read_line(self, proc, timeout=10.0):
        """One line of a watch's output, waiting at most `timeout`."""
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError("watch printed nothing in %.0f s" % timeout)
        return proc.stdout.readline().decode()

    def sync_watch(self, proc, tag):
        """Fires `tag` (sync=1, 2, …) until the watch shows one, then reads
        through the last one fired: from then on the subscription is live
        and the next line is whatever the test sends next."""
        deadline = time.monotonic() + 15
        n = 0
        while time.monotonic() < deadline:
            n += 1
            rc, _, err = self.nerve("fire", tag, "sync=%d" % n)
            self.assertEqual(rc, 0, err)
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                break
        else:
            raise AssertionError("watch never saw " + tag)
        while True:
            line = self.read_line(proc)
            self.assertIn(tag, line)
            if '"sync":%d}' % n in line:
                return n

    # ----------------------------------------------------------- status

    def test_status_shows_both_daemons_and_json_has_the_fields(self):
        self.start_manager()
        self.start_publisher()
        rc, out, err = self.nerve("status", "--json")
        self.assertEqual(rc, 0, err)
        st = json.loads(out)
        m, p = st["manager"], st["publisher"]
        self.assertEqual(m["daemon"], "nerve-manager")
        self.assertEqual(m["id"], "mgr")
        self.assertEqual(m["rules"]["count"], 4)
        self.assertEqual(m["rules"]["blocks"], 2)
        self.assertEqual(m["actors"]["live"], 0)
        self.assertTrue(m["reload"]["ok"])
        self.assertIsNone(m["reload"]["error"])
        self.assertIn("received", m["events"])
        self.assertIn("uptime_s", m)
        self.assertEqual(p["daemon"], "nerve-publisher")
        self.assertIn("relayed", p)

        rc, out, err = self.nerve("status")
        self.assertEqual(rc, 0, err)
        self.assertIn("manager    mgr  nerve-manager", out)
        self.assertIn("rules      4 in 2 blocks", out)
        self.assertIn("actors     0 live", out)
        self.assertIn("reload     ok", out)
        self.assertIn("publisher  nerve-publisher", out)

    def test_status_without_publisher_exits_1_and_says_so(self):
        self.start_manager()
        rc, out, _ = self.nerve("status", timeout="300ms")
        self.assertEqual(rc, 1)
        self.assertIn("manager    mgr", out)
        self.assertIn("publisher  unreachable at ipc://", out)
        rc, out, _ = self.nerve("status", "--json", timeout="300ms")
        self.assertEqual(rc, 1)
        self.assertIn("unreachable", json.loads(out)["publisher"]["error"])

    def test_dead_manager_exits_3_within_the_timeout(self):
        self.start_manager()
        dead = ["--control", "ipc://%s/run/nobody.sock" % self.dir]
        t0 = time.monotonic()
        rc, _, err = self.nerve(*(dead + ["status"]), timeout="500ms", endpoints=False)
        self.assertEqual(rc, 3)
        self.assertLess(time.monotonic() - t0, 4.0)
        self.assertIn("manager unreachable at ipc://%s/run/nobody.sock" % self.dir, err)
        rc, _, err = self.nerve(*(dead + ["registers", "list"]), timeout="300ms",
                                endpoints=False)
        self.assertEqual(rc, 3)

    # ------------------------------------------- CURVE on a TCP control

    def start_manager_tcp_control(self):
        """A manager whose control socket is on a scratch TCP port, so a CURVE
        server, and a publisher; ready when the CLI, with the keypair the
        manager trusts (its own keys directory), gets both statuses."""
        ctl = "tcp://127.0.0.1:%d" % free_port()
        m = Manager(self.dir, self.rules_dir, extra=["--control", ctl])
        m.control_ep = ctl
        self.manager = m.start()

        def answers():
            if not m.alive():
                raise AssertionError("manager exited:\n" + m.output())
            return '"nerve-manager"' in self.nerve("status", "--json", timeout="300ms")[1]
        wait_until(answers, timeout=15, what="the manager answering on " + ctl)
        self.start_publisher()
        return ctl

    def elsewhere(self):
        """The keys directory of a CLI on another host: its own keypair `cli`
        (unknown to the manager) and the manager's public key, copied there
        to pin it."""
        keys = os.path.join(self.dir, "elsewhere")
        public, _ = write_keypair(keys, "cli")
        write_public(os.path.join(keys, "manager.pub"), read_public(self.keys, "manager"),
                     "manager")
        return keys, public.decode()

    def test_status_names_a_refused_key_at_once_and_works_after_keys_accept(self):
        ctl = self.start_manager_tcp_control()
        keys, public = self.elsewhere()
        name = pending_name(public.encode())
        t0 = time.monotonic()
        rc, out, err = self.nerve("--keys", keys, "status", timeout="10s")
        took = time.monotonic() - t0
        self.assertEqual(rc, 1, err)
        self.assertLess(took, 3.0, "a refusal is known at the handshake, not at the timeout")
        self.assertEqual(out, "")
        self.assertIn("nerve: the manager at %s refused this CLI's key %s (%s/cli.pub; "
                      "ZAP status 400)" % (ctl, public, keys), err)
        self.assertIn("on the manager's host, `nerve keys accept %s` lets it in" % name, err)
        self.assertNotIn("unreachable", err)
        # the same for a verb on the control socket through cli_call
        rc, _, err = self.nerve("--keys", keys, "rules", "list", timeout="10s")
        self.assertEqual(rc, 1, err)
        self.assertIn("refused this CLI's key %s" % public, err)
        # and for `fire`, on the manager's events socket (TCP, so CURVE too)
        rc, _, err = self.nerve("--keys", keys, "fire", "/t/refused", timeout="10s")
        self.assertEqual(rc, 1, err)
        self.assertIn("the manager at %s refused this CLI's key %s" % (self.manager.events, public),
                      err)

        # the manager filed it under the name the CLI gave; accepting it there
        # lets this CLI in once the ZAP handler looks again (within a second)
        self.assertTrue(os.path.exists(os.path.join(self.keys, "pending", name + ".pub")))
        rc, _, err = self.nerve("keys", "accept", name, endpoints=False)
        self.assertEqual(rc, 0, err)
        got = {}

        def works():
            got["rc"], got["out"], got["err"] = self.nerve("--keys", keys, "status",
                                                           timeout="2s")
            return got["rc"] == 0
        wait_until(works, timeout=10, interval=0.1, what="status after keys accept")
        self.assertIn("manager    mgr  nerve-manager", got["out"])
        self.assertIn("publisher  nerve-publisher", got["out"])

    def test_status_pinning_the_wrong_manager_key_says_so_not_unreachable(self):
        ctl = self.start_manager_tcp_control()
        wrong = zmq.curve_keypair()[0].decode()
        t0 = time.monotonic()
        rc, out, err = self.nerve("--manager-key", wrong, "status", timeout="10s")
        took = time.monotonic() - t0
        self.assertEqual(rc, 1, err)
        self.assertLess(took, 3.0, "a hung-up handshake is told apart before the timeout")
        self.assertEqual(out, "")
        self.assertIn("nerve: the manager at %s hangs up in the middle of the CURVE handshake"
                      % ctl, err)
        self.assertIn("does not hold the secret of the key this CLI pins for it, %s" % wrong, err)
        self.assertNotIn("unreachable", err)
        # the right key, from the keys directory, still works
        rc, _, err = self.nerve("status", timeout="5s")
        self.assertEqual(rc, 0, err)

    # ---------------------------------------------------------- explain

    def test_explain_prints_the_chain_arithmetic_and_what_would_fire(self):
        bus = self.start_manager()
        rc, out, err = self.nerve("explain", "/t/ops", "x=1", "y=0", "--host", "web1")
        self.assertEqual(rc, 0, err)
        self.assertIn("event /t/ops  host web1", out)
        self.assertIn("block /t/ops  ", out)
        self.assertIn("rule r_and  ", out)
        self.assertIn("chain     true AND false = false  (other)", out)
        self.assertIn("chain     true OR false = true  (other)", out)
        self.assertIn("reaction  %s → manager  {\"tag\":\"/out/or\",\"data\":{\"x\":1}}" % FIRE,
                      out)
        self.assertIn("key web1", out)
        self.assertTrue(out.rstrip().endswith("would fire: r_or"), out)
        # No side effects: nothing was fired, nothing counted.
        bus.expect_none(is_event("/out/or"), within=0.3)
        _, st = bus.control("status")
        self.assertEqual(st["rules"]["fired"], 0)

        rc, out, err = self.nerve("explain", "/t/ops", "x=1", "y=0", "--json")
        self.assertEqual(rc, 0, err)
        rules = {r["name"]: r for r in json.loads(out)["rules"]}
        self.assertEqual(rules["r_and"]["chain"], [{"op": "AND", "rule": "other",
                                                     "before": True, "value": False,
                                                     "after": False}])

    def test_explain_reads_an_event_file_and_refuses_a_bad_tag(self):
        self.start_manager()
        path = os.path.join(self.dir, "ev.json")
        with open(path, "w") as f:
            json.dump({"tag": "/t/ops", "host": "h9", "data": {"x": 0, "y": 1}}, f)
        rc, out, err = self.nerve("explain", "--file", path)
        self.assertEqual(rc, 0, err)
        self.assertIn("event /t/ops  host h9", out)
        self.assertIn("chain     false OR true = true  (other)", out)
        rc, _, err = self.nerve("explain", "no-slash", "x=1")
        self.assertEqual(rc, 2)
        self.assertIn("invalid tag 'no-slash'", err)
        rc, out, _ = self.nerve("explain", "/nothing/here")
        self.assertEqual(rc, 0)
        self.assertIn("no rules block matches this tag", out)
        self.assertIn("nothing would fire", out)

    # ------------------------------------------------------------ rules

    def test_rules_check_names_line_and_column_and_exits_1(self):
        good = os.path.join(self.dir, "good.yaml")
        with open(good, "w") as f:
            f.write(RULES)
        rc, out, err = self.nerve("rules", "check", good, "--modules", MODULES, endpoints=False)
        self.assertEqual(rc, 0, err)
        self.assertIn("good.yaml: ok, 4 rules in 2 blocks from 1 file", out)

        bad_yaml = os.path.join(self.dir, "bad_yaml.yaml")
        with open(bad_yaml, "w") as f:
            f.write("/t/a:\n  rules:\n    - first:\n        rule: [oops\n")
        rc, _, err = self.nerve("rules", "check", bad_yaml, "--modules", MODULES,
                                endpoints=False)
        self.assertEqual(rc, 1)
        self.assertIn("bad_yaml.yaml:5:1: did not find expected ',' or ']'", err)

        bad_module = os.path.join(self.dir, "bad_module.yaml")
        with open(bad_module, "w") as f:
            f.write("/t/a:\n  rules:\n    - first:\n        rule: rules.nosuch.gt\n")
        rc, _, err = self.nerve("rules", "check", bad_module, "--modules", MODULES,
                                endpoints=False)
        self.assertEqual(rc, 1)
        self.assertIn("bad_module.yaml:4:15:", err)
        self.assertIn("rules.nosuch.gt", err)

        cycle = os.path.join(self.dir, "cycle.yaml")
        with open(cycle, "w") as f:
            f.write("/t/a:\n  rules:\n"
                    "    - a:\n        rule: rules.simple.gt\n        chain:\n          - OR: b\n"
                    "    - b:\n        rule: rules.simple.gt\n        chain:\n          - OR: a\n")
        rc, out, err = self.nerve("rules", "check", cycle, "--modules", MODULES, "--json",
                                  endpoints=False)
        self.assertEqual(rc, 1)
        report = json.loads(out)
        self.assertFalse(report["ok"])
        self.assertRegex(report["error"], r"cycle\.yaml:\d+:\d+: ")

        rc, _, err = self.nerve("rules", "check", os.path.join(self.dir, "missing.yaml"),
                                "--modules", MODULES, endpoints=False)
        self.assertEqual(rc, 1)
        self.assertIn("missing.yaml", err)

    def test_rules_list_shows_every_rule(self):
        self.start_manager()
        rc, out, err = self.nerve("rules", "list", "--json")
        self.assertEqual(rc, 0, err)
        rules = {r["name"]: r for r in json.loads(out)}
        self.assertEqual(sorted(rules), ["other", "r_and", "r_or", "shout"])
        self.assertEqual(rules["r_and"]["chain"], ["AND other"])
        rc, out, _ = self.nerve("rules", "list")
        self.assertEqual(rc, 0)
        self.assertIn("chain: AND other", out)
        self.assertRegex(out, r"r_or\s+/t/ops\s+rules\.simple\.gt")

    def test_reload_error_exits_1_and_keeps_the_old_rules(self):
        bus = self.start_manager()
        self.write_rules("rules.yaml", "/t/a:\n  rules:\n    - first:\n        rule: [oops\n")
        rc, _, err = self.nerve("reload")
        self.assertEqual(rc, 1)
        self.assertIn("rules.yaml:5:1: did not find expected ',' or ']'", err)
        rc, out, _ = self.nerve("status")
        self.assertEqual(rc, 1)  # the last reload failed: not healthy
        self.assertIn("reload     FAILED", out)
        self.assertIn("rules.yaml:5:1:", out)
        self.write_rules("rules.yaml", RULES)
        rc, out, err = self.nerve("reload")
        self.assertEqual(rc, 0, err)
        self.assertIn("reloaded: 4 rules in 2 blocks", out)

    # -------------------------------------------------------- registers

    def test_registers_set_get_list_del_round_trip(self):
        self.start_manager()
        rc, _, err = self.nerve("registers", "set", "s", "k", '{"a": [1, 2.5], "b": "x"}')
        self.assertEqual(rc, 0, err)
        rc, out, err = self.nerve("registers", "get", "s", "k")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), {"a": [1, 2.5], "b": "x"})
        self.nerve("registers", "set", "other", "k", "7")
        rc, out, _ = self.nerve("registers", "list", "s", "--json")
        self.assertEqual(rc, 0)
        self.assertEqual(json.loads(out), [{"scope": "s", "key": "k",
                                            "value": {"a": [1, 2.5], "b": "x"}}])
        rc, out, _ = self.nerve("registers", "list")
        self.assertRegex(out, r"s\s+k\s+\{\"a\":\[1,2\.5\],\"b\":\"x\"\}")
        self.assertRegex(out, r"other\s+k\s+7")
        rc, _, err = self.nerve("registers", "del", "s", "k")
        self.assertEqual(rc, 0, err)
        rc, _, err = self.nerve("registers", "get", "s", "k")
        self.assertEqual(rc, 1)
        self.assertIn("no register", err)
        rc, _, err = self.nerve("registers", "set", "s", "k", "not json")
        self.assertEqual(rc, 2)
        self.assertIn("VALUE must be JSON", err)
        rc, _, _ = self.nerve("registers", "get", "s")
        self.assertEqual(rc, 2)

    # ------------------------------------------------------ fire, watch

    def test_fire_then_watch_sees_it_with_typed_data(self):
        self.start_manager()
        w = self.watch("/t/cli/**", "--json")
        self.sync_watch(w, "/t/cli/sync")
        rc, out, err = self.nerve("fire", "/t/cli/x", "n=5", "ok=true", "s=hello", "a.b=-1",
                                  "--host", "h1")
        self.assertEqual(rc, 0, err)
        self.assertIn("fired /t/cli/x from h1", out)
        while True:
            ev = json.loads(self.read_line(w))
            if ev["tag"] == "/t/cli/x":
                break
        self.assertEqual(ev["type"], "event")
        self.assertEqual(ev["host"], "h1")
        self.assertEqual(ev["data"], {"n": 5, "ok": True, "s": "hello", "a": {"b": -1}})
        self.assertEqual(len(ev["id"]), 32)

    def test_watch_glob_follows_an_event_to_its_reaction(self):
        self.start_manager()
        self.start_publisher()
        w = self.watch("/t/cli/**")
        self.sync_watch(w, "/t/cli/sync")
        self.nerve("fire", "/t/ops", "x=1")          # outside the glob: not shown
        rc, _, err = self.nerve("fire", "/t/cli/react", "value=3", "--host", "h7")
        self.assertEqual(rc, 0, err)
        event = self.read_line(w)
        reaction = self.read_line(w)
        self.assertRegex(event, r"^\d\d:\d\d:\d\d\.\d{3}  /t/cli/react  h7  \{\"value\":3\}$")
        self.assertIn("  @all/  h7  reactions.log.write {\"message\":\"hi h7\"}", reaction)
        self.assertIn("(rule shout, event /t/cli/react)", reaction)
        w.send_signal(signal.SIGINT)
        self.assertEqual(w.wait(10), 0)  # Ctrl-C is a normal stop

    def test_watch_count_stops_after_n_lines(self):
        self.start_manager()
        w = self.watch("/t/cnt/*", "--count", "1", "--json")
        deadline = time.monotonic() + 15
        while w.poll() is None and time.monotonic() < deadline:
            self.nerve("fire", "/t/cnt/x", "n=1")
            try:
                w.wait(0.2)
            except subprocess.TimeoutExpired:
                pass
        self.assertEqual(w.wait(10), 0)
        lines = w.stdout.read().decode().splitlines()
        self.assertEqual(len(lines), 1)
        self.assertEqual(json.loads(lines[0])["tag"], "/t/cnt/x")

    def test_watch_with_no_manager_exits_3(self):
        argv = [NERVE, "--timeout", "300ms", "--tap", "ipc://%s/run/nobody.sock" % self.dir,
                "watch"]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 3)
        self.assertIn("manager tap unreachable", p.stderr)

    # ----------------------------------------------- CURVE on a TCP tap

    def start_manager_tcp_tap(self):
        """A manager whose tap is on a scratch TCP port, so a CURVE server;
        ready when a watch with the keypair it trusts shows an event fired
        through it. Returns the tap and that watch (live)."""
        tap = "tcp://127.0.0.1:%d" % free_port()
        m = Manager(self.dir, self.rules_dir, extra=["--tap", tap])
        m.tap = tap
        self.manager = m.start()
        w = self.watch("/t/tap/**")
        self.sync_watch(w, "/t/tap/sync")
        return tap, w

    def test_watch_pinning_the_wrong_manager_key_exits_1_at_once_naming_it(self):
        tap, _ = self.start_manager_tcp_tap()
        wrong = zmq.curve_keypair()[0].decode()
        t0 = time.monotonic()
        rc, out, err = self.nerve("--manager-key", wrong, "watch", timeout="10s")
        took = time.monotonic() - t0
        self.assertEqual(rc, 1, err)
        self.assertLess(took, 3.0, "a hung-up handshake is told apart before the timeout")
        self.assertEqual(out, "")
        self.assertIn("nerve: the manager at %s hangs up in the middle of the CURVE handshake"
                      % tap, err)
        self.assertIn("does not hold the secret of the key this CLI pins for it, %s" % wrong, err)
        # a hung-up handshake is not a connection that came and went
        self.assertNotIn("lost the tap", err)
        self.assertNotIn("reconnected", err)
        self.assertNotIn("unreachable", err)

    def test_watch_names_a_refused_key_at_once(self):
        tap, _ = self.start_manager_tcp_tap()
        keys, public = self.elsewhere()
        t0 = time.monotonic()
        rc, out, err = self.nerve("--keys", keys, "watch", timeout="10s")
        took = time.monotonic() - t0
        self.assertEqual(rc, 1, err)
        self.assertLess(took, 3.0, "a refusal is known at the handshake, not at the timeout")
        self.assertEqual(out, "")
        self.assertIn("nerve: the manager at %s refused this CLI's key %s (%s/cli.pub; "
                      "ZAP status 400)" % (tap, public, keys), err)
        self.assertIn("`nerve keys accept %s` lets it in" % pending_name(public.encode()), err)
        self.assertNotIn("lost the tap", err)
        self.assertNotIn("unreachable", err)

    def test_watch_on_a_curve_tap_rides_out_a_manager_restart(self):
        tap, w = self.start_manager_tcp_tap()
        events = self.manager.events
        self.manager.stop()
        self.assertIn("lost the tap at %s; waiting for the manager" % tap, self.read_line(w))
        # the same endpoints and keys: a disconnect, then a good handshake
        m = Manager(self.dir, self.rules_dir, extra=["--tap", tap], events=events)
        m.tap = tap
        self.manager = m.start()
        self.assertIn("reconnected to " + tap, self.read_line(w, timeout=15))
        self.sync_watch(w, "/t/tap/again")
        self.assertIsNone(w.poll())

    def test_fire_to_a_dead_endpoint_exits_3_within_the_timeout(self):
        dead = "ipc://%s/run/nobody.sock" % self.dir
        t0 = time.monotonic()
        rc, _, err = self.nerve("fire", "/t/x", "--events", dead, timeout="500ms",
                                endpoints=False)
        self.assertEqual(rc, 3)
        self.assertLess(time.monotonic() - t0, 4.0)
        self.assertIn("manager unreachable at " + dead, err)

    def test_bad_tag_and_bad_words_exit_2(self):
        for args, says in ((["fire", "no-slash"], "invalid tag 'no-slash'"),
                           (["fire", ""], "invalid tag ''"),
                           (["fire", "/t/x", "novalue"], "expected key=value"),
                           (["fire", "/t/x", "a=1", "a=2"], "'a' is given twice"),
                           (["fire", "/t/x", "--data", "{bad"], "--data is not JSON"),
                           (["fire"], "which tag?"),
                           (["nosuchverb"], "unknown verb"),
                           (["status", "--nosuch"], "unknown option '--nosuch'"),
                           (["watch", "/a//b"], "bad glob")):
            rc, _, err = self.nerve(*args, endpoints=False)
            self.assertEqual(rc, 2, args)
            self.assertIn(says, err, args)

    def test_config_file_bind_addresses_become_local_connects(self):
        # The manager binds events on TCP; its config says "tcp://*:PORT",
        # which the CLI must turn into a connect to 127.0.0.1.
        port = free_port()
        m = Manager(self.dir, self.rules_dir, extra=["--events", "tcp://127.0.0.1:%d" % port])
        m.events = "tcp://127.0.0.1:%d" % port
        self.manager = m.start()
        self.bus = bus = Bus(m)
        bus.wait_ready()
        conf = os.path.join(self.dir, "manager.yaml")
        with open(conf, "w") as f:
            f.write("events: tcp://*:%d\ncontrol: %s\ntap: %s\n"
                    % (port, m.control_ep, m.tap))
        rc, _, err = self.nerve("-c", conf, "fire", "/t/conf", "v=1", endpoints=False)
        self.assertEqual(rc, 0, err)
        _, p = bus.wait_for(is_event("/t/conf"))
        self.assertEqual(p["data"], {"v": 1})
        rc, out, err = self.nerve("-c", conf, "rules", "list", "--json", endpoints=False)
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(json.loads(out)), 4)
        rc, _, err = self.nerve("-c", os.path.join(self.dir, "nope.yaml"), "status",
                                endpoints=False)
        self.assertEqual(rc, 1)
        self.assertIn("nope.yaml", err)

    # ------------------------------------------------------------ replay

    def test_watch_record_then_replay_sends_the_events_again(self):
        bus = self.start_manager()
        record = os.path.join(self.dir, "rec.jsonl")
        w = self.watch("/t/rec/**", "--record", record)
        self.sync_watch(w, "/t/rec/sync")
        self.nerve("fire", "/t/rec/a", "v=1", "--host", "ha")
        self.nerve("fire", "/t/rec/b", "--data", '{"v": 2, "blob": [true, null]}', "--host", "hb")
        self.assertIn("/t/rec/a", self.read_line(w))
        self.assertIn("/t/rec/b", self.read_line(w))
        w.send_signal(signal.SIGINT)
        self.assertEqual(w.wait(10), 0)
        with open(record) as f:
            lines = [json.loads(line) for line in f]
        lines = [r for r in lines if r["tag"] != "/t/rec/sync"]
        self.assertEqual([r["tag"] for r in lines], ["/t/rec/a", "/t/rec/b"])
        self.assertEqual(lines[1]["data"], {"v": 2, "blob": [True, None]})
        self.assertEqual(lines[1]["host"], "hb")
        self.assertEqual(lines[1]["type"], "event")

        bus.barrier()  # the original events are behind us on the bus…
        bus.seen.clear()  # …and forgotten: what arrives now is the replay
        rc, out, err = self.nerve("replay", record, "--speed", "0")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"replayed \d+ events")
        _, a = bus.wait_for(is_event("/t/rec/a"))
        _, b = bus.wait_for(is_event("/t/rec/b"))
        self.assertEqual((a["host"], a["data"]), ("ha", {"v": 1}))
        self.assertEqual((b["host"], b["data"]), ("hb", {"v": 2, "blob": [True, None]}))
        self.assertNotEqual(b["id"].hex(), lines[1]["id"])  # a new event, not a copy

    def test_replay_keeps_the_spacing_divided_by_speed(self):
        bus = self.start_manager()
        record = os.path.join(self.dir, "spaced.jsonl")
        with open(record, "w") as f:
            for i, ts in enumerate((0, 400000000)):  # 0.4 s apart
                f.write(json.dumps({"type": "event", "tag": "/t/sp/%d" % i, "host": "h",
                                    "ts": 1700000000000000000 + ts, "data": {}}) + "\n")
        t0 = time.monotonic()
        rc, _, err = self.nerve("replay", record, "--speed", "2")
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, err)
        self.assertGreaterEqual(took, 0.2)
        bus.wait_for(is_event("/t/sp/1"))

    def test_replay_dry_run_explains_and_sends_nothing(self):
        bus = self.start_manager()
        record = os.path.join(self.dir, "dry.jsonl")
        with open(record, "w") as f:
            f.write(json.dumps({"type": "event", "tag": "/t/ops", "host": "h1",
                                "ts": 1, "data": {"x": 1, "y": 1}}) + "\n")
            f.write(json.dumps({"type": "reaction", "topic": "@all/"}) + "\n")
            f.write("\n")
            f.write(json.dumps({"tag": "/t/ops", "host": "h2", "data": {"x": 0, "y": 0}}) + "\n")
        rc, out, err = self.nerve("replay", record, "--dry-run")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.splitlines(), [
            "line 1  /t/ops  h1  → fires other, r_and, r_or",
            "line 4  /t/ops  h2  → nothing fires",
        ])
        bus.barrier()
        bus.expect_none(lambda t, p: t in ("/t/ops", "/out/or", "/out/and"), within=0.3)

        with open(record, "a") as f:
            f.write('{"tag": "no-slash"}\n')
        rc, _, err = self.nerve("replay", record, "--dry-run")
        self.assertEqual(rc, 1)
        self.assertIn("dry.jsonl:5: invalid tag 'no-slash'", err)


if __name__ == "__main__":
    main()
