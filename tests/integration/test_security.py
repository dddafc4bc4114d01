"""Security end to end (docs/security.md): CURVE on every TCP link, the
allowlist, revocation without a restart, module permissions, hostile event
fields in templates, and secrets that only the actor sees.

Real daemons on one machine share $NERVE_HOME = the test's temp dir, so one
keys directory: their keypairs there trust each other. Attackers are Python
sockets with keys of their own that no directory knows, or a second
nerve-publisher with a $NERVE_HOME (and so a key) of its own. Every wait is
on a tap message, a control answer or a file, never a bare sleep."""
import json
import os
import re
import shutil
import stat
import subprocess
import time
import urllib.request
import uuid

import msgpack
import zmq

from nervetest import (BUILD, MODULES, Actor, Bus, Daemon, Manager, ManagerTest, Publisher,
                       curve_client, free_port, is_event, keys_dir, main, pending_name,
                       read_public, wait_until, write_keypair, write_public)

NERVE = os.path.join(BUILD, "nerve")
SECRET = "s3cr3t-Value!"

RULES = """
/sec/fire:
  rules:
    - fire:
        rule: rules.simple.gt
        threshold: 0
        reactions:
          - reactions.eventer.fire_event: {tag: /sec/fired, data: {mark: "{{event.data.mark}}"}}
/sec/all:
  rules:
    - all:
        rule: rules.simple.gt
        threshold: 0
        reactions:
          - reactions.log.write: {target: all, message: "to everyone"}
/sec/run:
  rules:
    - run:
        rule: rules.simple.gt
        threshold: 0
        reactions:
          - reactions.cmd.run:
              target: "host:{{event.data.host}}"
              deadline: 3s
              argv: [%(record)s, "run"]
/sec/inject/cmd:
  rules:
    - inject_cmd:
        rule: rules.simple.gt
        threshold: 0
        reactions:
          - reactions.cmd.run:
              target: host:web1
              argv: [%(record)s, "{{event.data.x}}", "pre-{{event.data.x}}-post"]
/sec/inject/unit:
  rules:
    - inject_unit:
        rule: rules.simple.gt
        threshold: 0
        reactions:
          - reactions.service.restart: {target: host:web1, unit: "{{event.data.x}}"}
/sec/inject/file:
  rules:
    - inject_file:
        rule: rules.simple.gt
        threshold: 0
        reactions:
          - reactions.file.write: {target: host:web1, path: "{{event.data.x}}", content: pwned}
/sec/secret:
  rules:
    - secret:
        rule: rules.simple.gt
        threshold: 0
        reactions:
          - reactions.cmd.run:
              target: host:web1
              argv: [%(record)s, "{{secret.%(secret_name)s}}"]
"""

# Writes its arguments, NUL-separated, to args-<reaction id>: what the program
# really received, byte for byte.
RECORD = """#!/bin/sh
for a in "$@"; do printf '%%s\\0' "$a"; done > "%(dir)s/args-$NERVE_REACTION_ID"
echo "$NERVE_ACTOR ran" >> "%(dir)s/runs.log"
"""

FAKE_SYSTEMCTL = """#!/bin/sh
for a in "$@"; do printf '%%s\\0' "$a"; done >> "%(dir)s/systemctl.calls"
"""

HOSTILE = ["; rm -rf /", "$(touch %(mark)s)", "`touch %(mark)s`", "| touch %(mark)s",
           "&& touch %(mark)s", "../../etc/passwd", "a\nb\ttouch %(mark)s", "'\"\\"]


def reaction_payload(fn, args, host="web1"):
    """A reaction as the manager encodes it (DESIGN.md, wire protocol v1)."""
    now = time.time_ns()
    return msgpack.packb({"v": 1, "id": uuid.uuid4().bytes, "ts": now, "fn": fn, "args": args,
                          "rule": "rogue", "event": {"tag": "/rogue", "id": uuid.uuid4().bytes,
                                                     "host": host},
                          "deadline": now + 60 * 10**9}, use_bin_type=True)


class Security(ManagerTest):
    client_keys = ManagerTest.client_keys + ("web1",)

    def setUp(self):
        super().setUp()
        self.record = os.path.join(self.dir, "record.sh")
        with open(self.record, "w") as f:
            f.write(RECORD % {"dir": self.dir})
        os.chmod(self.record, 0o755)
        self.write_rules("sec.yaml", RULES % {"record": self.record, "secret_name": "db_password"})
        self.daemons = []
        self.ctx = zmq.Context()

    def tearDown(self):
        self.ctx.destroy(linger=0)
        failures = []
        for d in reversed(self.daemons):
            rc = d.stop()
            if rc not in (0, None) and not getattr(d, "may_fail", False):
                failures.append("%s exited %s:\n%s" % (d.name, rc, d.output()[-3000:]))
        super().tearDown()
        if failures:
            raise AssertionError("\n".join(failures))

    # ---------------------------------------------------------- helpers

    def nerve(self, *args, timeout=30):
        p = subprocess.run([NERVE, "--control", self.manager.control_ep,
                            "--events", self.manager.events] + list(args),
                           capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, NERVE_HOME=self.dir))
        return p.returncode, p.stdout, p.stderr

    def status(self):
        status, st = self.bus.control("status")
        self.assertEqual(status, "ok")
        return st

    def pub_security(self):
        st = self.publisher.status(self.ctx, 0.5)
        return st["security"] if st else {}

    def start(self, daemon):
        self.daemons.append(daemon)
        return daemon.start()

    def start_publisher(self):
        self.publisher = self.start(Publisher(self.dir, self.manager))
        wait_until(lambda: self.publisher.status(self.ctx, 0.5) is not None,
                   what="publisher status")
        return self.publisher

    def start_actor(self, ident="web1", **kw):
        a = self.start(Actor(self.dir, ident, [], self.publisher.output, self.manager.events,
                             **kw))
        self.bus.wait_for(is_event("/nerve/actor/%s/joined" % ident), timeout=20,
                          what="%s joined" % ident)
        self.publisher.wait_subscriptions(self.ctx, 2)
        return a

    def stranger(self, socket_type, server_key):
        """A socket with a fresh key that no keys directory knows."""
        s = self.ctx.socket(socket_type)
        s.setsockopt(zmq.LINGER, 0)
        curve_client(s, None, None, server_key, secret_pair=zmq.curve_keypair())
        return s

    def reaction_to(self, topic, timeout=10):
        _, p = self.bus.wait_for(lambda t, p: t == topic, timeout=timeout,
                                 what="a reaction on " + topic)
        return p

    def result_of(self, rid, timeout=15):
        _, p = self.bus.wait_for(lambda t, p: t.startswith("/nerve/result/") and
                                 p["data"].get("reaction") == rid, timeout=timeout,
                                 what="the result of " + rid.hex())
        return p["data"]

    def args_of(self, rid):
        path = os.path.join(self.dir, "args-" + rid.hex())
        with open(path, "rb") as f:
            return f.read().split(b"\0")[:-1]

    # ------------------------------------------ unknown keys and revocation

    def test_unknown_key_sending_events_is_refused_counted_and_fires_nothing(self):
        bus = self.start_manager()
        manager_key = read_public(self.keys, "manager")
        t0 = time.monotonic()
        strangers = []
        for i in range(12):
            s = self.stranger(zmq.PUSH, manager_key)
            s.connect(self.manager.events)
            s.send_multipart([b"/sec/fire", msgpack.packb(
                {"v": 1, "id": uuid.uuid4().bytes, "ts": time.time_ns(), "host": "evil",
                 "data": {"value": 1, "mark": "stranger"}}, use_bin_type=True)], zmq.NOBLOCK)
            strangers.append(s)
        wait_until(lambda: self.status()["security"]["zap"]["refused_unknown"] >= 12,
                   what="12 refusals counted")
        elapsed = time.monotonic() - t0
        bus.barrier()
        bus.expect_none(lambda t, p: t in ("/sec/fire", "/sec/fired"), within=0.3)
        st = self.status()
        self.assertEqual(st["security"]["mode"], "curve")
        self.assertEqual(st["security"]["curve"], ["events"])
        self.assertEqual(st["events"]["accepted"], st["events"]["received"])  # none got that far
        self.assertGreaterEqual(st["security"]["zap"]["recorded_pending"], 5)
        self.assertTrue(os.listdir(os.path.join(self.keys, "pending")))
        # logged, but at most once a second (plus the first)
        lines = [l for l in self.manager.output().splitlines() if "refused unknown key" in l]
        self.assertGreaterEqual(len(lines), 1)
        self.assertLessEqual(len(lines), int(elapsed) + 2, "\n".join(lines))
        # and the legitimate client still gets through
        bus.send("/sec/fire", {"value": 1, "mark": "friend"})
        _, p = bus.wait_for(is_event("/sec/fired"))
        self.assertEqual(p["data"]["mark"], "friend")

    def test_revoked_client_key_is_cut_off_without_restart(self):
        # client1's public key is in accepted/ before the manager starts
        public, secret = zmq.curve_keypair()
        write_public(os.path.join(self.keys, "accepted", "client1.pub"), public, "client1")
        port = free_port()
        self.extra = ["--metrics", "127.0.0.1:%d" % port]
        bus = self.start_manager()
        client = self.ctx.socket(zmq.PUSH)
        curve_client(client, self.keys, None, "manager", secret_pair=(public, secret))
        client.connect(self.manager.events)

        def send(mark):
            client.send_multipart([b"/sec/fire", msgpack.packb(
                {"v": 1, "id": uuid.uuid4().bytes, "ts": time.time_ns(), "host": "client1",
                 "data": {"value": 1, "mark": mark}}, use_bin_type=True)])
        send("before")
        _, p = bus.wait_for(is_event("/sec/fired"), what="the accepted key's event firing")
        self.assertEqual(p["data"]["mark"], "before")

        rc, out, err = self.nerve("keys", "revoke", "client1")
        self.assertEqual(rc, 0, err)
        self.assertIn("revoked", out)
        self.assertTrue(os.path.exists(os.path.join(self.keys, "rejected", "client1.pub")))
        # the connection is still open: its events are now dropped one by one
        n = 0

        def dropped():
            nonlocal n
            n += 1
            send("during-%d" % n)
            by = self.status()["events"]["rejected_by"]
            return by.get("unauthorized", 0) >= 1
        wait_until(dropped, timeout=10, interval=0.1, what="events of the revoked key dropped")
        send("after")
        bus.barrier()
        bus.expect_none(lambda t, p: t == "/sec/fired" and p["data"]["mark"] == "after",
                        within=0.3)
        st = self.status()
        self.assertEqual(st["events"]["rejected"], st["events"]["rejected_by"]["unauthorized"])
        self.assertGreaterEqual(st["security"]["zap"]["unauthorized"], 1)
        def metrics():  # rendered on a timer: wait for the next render
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
                return re.search(r'nerve_events_rejected_total\{reason="unauthorized"\} [1-9]',
                                 r.read().decode())
        wait_until(metrics, what="unauthorized in the rejected metric")
        self.assertIn("dropped a message from key", self.manager.output())
        # and a new connection with that key is refused outright
        again = self.ctx.socket(zmq.PUSH)
        curve_client(again, self.keys, None, "manager", secret_pair=(public, secret))
        again.setsockopt(zmq.LINGER, 0)
        again.connect(self.manager.events)
        wait_until(lambda: self.status()["security"]["zap"]["refused_rejected"] >= 1,
                   what="the revoked key refused at the handshake")

    def test_unknown_key_subscribing_to_the_publisher_receives_nothing(self):
        bus = self.start_manager()
        self.start_publisher()
        pub_key = read_public(self.keys, "publisher")
        friend = curve_client(self.ctx.socket(zmq.SUB), self.keys, "test", pub_key)
        stranger = self.stranger(zmq.SUB, pub_key)
        for s in (friend, stranger):
            s.setsockopt(zmq.SUBSCRIBE, b"@all/")
            s.connect(self.publisher.output)
        self.publisher.wait_subscriptions(self.ctx, 1)

        def friend_got_one():
            bus.send("/sec/all", {"value": 1})
            return friend.poll(200)
        wait_until(friend_got_one, what="the trusted subscriber receiving")
        topic, payload = friend.recv_multipart()
        self.assertEqual(topic, b"@all/")
        self.assertEqual(msgpack.unpackb(payload)["fn"], "reactions.log.write")
        for _ in range(3):
            bus.send("/sec/all", {"value": 1})
        self.assertEqual(stranger.poll(500), 0, "an unknown key received a reaction")
        st = self.publisher.status(self.ctx)
        self.assertGreaterEqual(st["security"]["refused_unknown"], 1)
        self.assertEqual(st["security"]["mode"], "curve")

    def test_rogue_publisher_with_its_own_key_is_ignored_by_the_actor(self):
        self.start_manager()
        self.start_publisher()
        # The rogue: a real nerve-publisher, with a keys directory (so a key) of its own.
        rogue_home = os.path.join(self.dir, "rogue")
        os.makedirs(rogue_home, mode=0o700)
        rogue_run = os.path.join(rogue_home, "run")
        rogue_in = "ipc://%s/publisher.sock" % rogue_run
        rogue_out = "tcp://127.0.0.1:%d" % free_port()
        rogue_ctl = "ipc://%s/control.sock" % rogue_run
        rogue = self.start(Daemon("rogue", [os.path.join(BUILD, "nerve-publisher"), "--input",
                                            rogue_in, "--output", rogue_out, "--control",
                                            rogue_ctl], self.dir, env={"NERVE_HOME": rogue_home}))
        wait_until(lambda: os.path.exists(os.path.join(rogue_home, "keys", "publisher.pub")),
                   what="the rogue's key")
        self.assertNotEqual(read_public(os.path.join(rogue_home, "keys"), "publisher"),
                            read_public(self.keys, "publisher"))
        marker = os.path.join(self.dir, "pwned")
        # web1 pins the real publisher's key (the default, from the shared keys
        # directory) but is pointed at the rogue
        actor = self.start(Actor(self.dir, "web1", [], rogue_out, self.manager.events,
                                 allow={"commands": ["/bin/touch"]}))
        self.bus.wait_for(is_event("/nerve/actor/web1/joined"), timeout=20,
                          what="web1 joined (its manager link is fine)")
        push = self.ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.connect(rogue_in)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # a few seconds of reconnects and attempts
            push.send_multipart([b"@host/web1/", reaction_payload(
                "reactions.cmd.run", {"argv": ["/bin/touch", marker]})])
            self.bus.expect_none(lambda t, p: t == "/nerve/result/web1", within=0.25)
        self.assertFalse(os.path.exists(marker), "the actor obeyed a rogue publisher")
        st = _status(self.ctx, rogue_ctl)
        self.assertEqual(st["subscriptions"], 0)  # the actor never completed a handshake
        self.assertTrue(actor.alive())

    def test_revoked_actor_stops_receiving(self):
        bus = self.start_manager()
        self.start_publisher()
        self.start_actor("web1", allow={"commands": [self.record]})
        bus.send("/sec/run", {"value": 1, "host": "web1"})
        rid = self.reaction_to("@host/web1/")["id"]
        self.assertTrue(self.result_of(rid)["ok"])

        rc, out, err = self.nerve("keys", "revoke", "web1")
        self.assertEqual(rc, 0, err)
        # the publisher re-binds its output: web1 reconnects and is refused
        wait_until(lambda: self.pub_security().get("rebinds", 0) >= 1,
                   what="the publisher re-binding its output")
        wait_until(lambda: self.pub_security().get("refused_rejected", 0) >= 1,
                   what="web1 refused by the publisher")
        bus.seen.clear()
        bus.send("/sec/run", {"value": 1, "host": "web1"})
        rid2 = self.reaction_to("@host/web1/")["id"]
        self.assertNotEqual(rid, rid2)
        _, p = bus.wait_for(lambda t, p: t == "/nerve/reaction/expired" and
                            p["data"]["reaction"] == rid2, timeout=15,
                            what="the reaction to the revoked actor expiring")
        with open(os.path.join(self.dir, "runs.log")) as f:
            self.assertEqual(f.read().splitlines(), ["web1 ran"])  # the first one only
        # its heartbeats, on the connection it already had, are dropped too
        wait_until(lambda: self.status()["events"]["rejected_by"].get("unauthorized", 0) >= 1,
                   what="the revoked actor's events dropped")
        self.assertIn("refused this actor's key", self.daemons[-1].output())

    def test_unknown_actor_is_pending_then_joins_once_accepted_without_restart(self):
        bus = self.start_manager()
        self.start_publisher()
        # Another host: its own keys directory, holding copies of the servers' public keys.
        far = os.path.join(self.dir, "far")
        os.makedirs(far, mode=0o700)
        far_keys = keys_dir(far)
        for name in ("manager", "publisher"):
            shutil.copy(os.path.join(self.keys, name + ".pub"), far_keys)
        actor = self.start(Actor(self.dir, "far1", [], self.publisher.output,
                                 self.manager.events, home=far))
        name = pending_name(read_public(far_keys, "far1"))
        pending = os.path.join(self.keys, "pending", name + ".pub")
        wait_until(lambda: os.path.exists(pending), what="far1's key recorded as pending")
        wait_until(lambda: "nerve keys accept %s" % name in actor.output(),
                   what="the actor logging the name to accept")
        bus.expect_none(is_event("/nerve/actor/far1/joined"), within=0.3)
        rc, out, err = self.nerve("keys", "list", "--json")
        self.assertEqual(rc, 0, err)
        self.assertIn(name, [k["name"] for k in json.loads(out)["pending"]])

        rc, out, err = self.nerve("keys", "accept", name)
        self.assertEqual(rc, 0, err)
        # no restart: the actor's next attempt gets in, to both servers
        bus.wait_for(is_event("/nerve/actor/far1/joined"), timeout=40,
                     what="far1 joined once accepted")
        self.publisher.wait_subscriptions(self.ctx, 2, timeout=40)

    # ---------------------------------------------------------- modules

    def test_group_writable_module_is_refused_on_reload_with_the_reason(self):
        mods = os.path.join(self.dir, "mods")
        os.makedirs(os.path.join(mods, "rules"), mode=0o700)
        simple = os.path.join(mods, "rules", "simple.so")
        shutil.copy(os.path.join(MODULES, "rules", "simple.so"), simple)
        os.chmod(simple, 0o755)
        bus = self.start_manager(modules=[mods, MODULES])
        os.chmod(simple, 0o775)
        status, body = bus.control("reload")
        self.assertEqual(status, "error")
        self.assertIn(simple, body["error"])
        self.assertIn("writable by group", body["error"])
        st = self.status()
        self.assertFalse(st["reload"]["ok"])
        self.assertIn(simple, st["reload"]["error"])
        _, p = bus.wait_for(is_event("/nerve/manager/reload/failed"))
        self.assertIn("writable by group", p["data"]["reason"])
        # the running rules go on
        bus.send("/sec/fire", {"value": 1, "mark": "still"})
        bus.wait_for(lambda t, p: t == "/sec/fired" and p["data"]["mark"] == "still")
        os.chmod(simple, 0o755)
        status, _ = bus.control("reload")
        self.assertEqual(status, "ok")

    # ---------------------------------------------------------- templates

    def start_injection_actor(self, **kw):
        self.out = os.path.join(self.dir, "out")
        os.makedirs(self.out, mode=0o700)
        self.mark = os.path.join(self.dir, "pwned")
        systemctl = os.path.join(self.dir, "systemctl")
        with open(systemctl, "w") as f:
            f.write(FAKE_SYSTEMCTL % {"dir": self.dir})
        os.chmod(systemctl, 0o755)
        self.start_manager()
        self.start_publisher()
        return self.start_actor("web1", allow={"commands": [self.record],
                                               "services": ["nginx.service"],
                                               "paths": [self.out]},
                                extra_config=["systemctl: %s" % systemctl], **kw)

    def fire_and_result(self, tag, x):
        self.bus.seen.clear()
        self.bus.send(tag, {"value": 1, "x": x})
        rid = self.reaction_to("@host/web1/")["id"]
        return rid, self.result_of(rid)

    def test_hostile_event_fields_reach_a_command_only_as_literal_arguments(self):
        self.start_injection_actor()
        for text in HOSTILE:
            x = text % {"mark": self.mark}
            rid, res = self.fire_and_result("/sec/inject/cmd", x)
            self.assertTrue(res["ok"], res)
            self.assertEqual(self.args_of(rid), [x.encode(), ("pre-%s-post" % x).encode()])
        self.assertFalse(os.path.exists(self.mark), "a hostile field ran a command")

    def test_hostile_unit_names_never_reach_systemctl(self):
        self.start_injection_actor()
        calls = os.path.join(self.dir, "systemctl.calls")
        for text in HOSTILE + ["nginx.service; touch %(mark)s", "--root=/ nginx.service"]:
            _, res = self.fire_and_result("/sec/inject/unit", text % {"mark": self.mark})
            self.assertFalse(res["ok"], res)
            self.assertFalse(os.path.exists(calls), "systemctl ran for %r" % text)
        # the allowed unit does reach it, exactly as written: the refusals above meant something
        _, res = self.fire_and_result("/sec/inject/unit", "nginx.service")
        self.assertTrue(res["ok"], res)
        with open(calls, "rb") as f:
            self.assertEqual(f.read(), b"restart\0nginx.service\0")
        self.assertFalse(os.path.exists(self.mark))

    def test_hostile_paths_cannot_write_outside_the_allowed_directory(self):
        self.start_injection_actor()
        passwd = open("/etc/passwd", "rb").read()
        for path in ["../../etc/passwd", "/etc/passwd", self.out + "/../escaped",
                     self.out + "/./x", "%s/../%s/x" % (self.out, os.path.basename(self.out)),
                     "out/x", self.dir + "/escaped"]:
            _, res = self.fire_and_result("/sec/inject/file", path)
            self.assertFalse(res["ok"], "%r: %r" % (path, res))
        self.assertEqual(open("/etc/passwd", "rb").read(), passwd)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "escaped")))
        # a control character is refused even inside the allowed directory
        _, res = self.fire_and_result("/sec/inject/file", os.path.join(self.out, "a\nb"))
        self.assertFalse(res["ok"], res)
        self.assertIn("control character", res["output"])
        # shell syntax inside the allowed directory is just a file name
        name = "$(touch %s); `id`" % os.path.basename(self.mark)
        _, res = self.fire_and_result("/sec/inject/file", os.path.join(self.out, name))
        self.assertTrue(res["ok"], res)
        with open(os.path.join(self.out, name)) as f:
            self.assertEqual(f.read(), "pwned")
        self.assertFalse(os.path.exists(self.mark))
        self.assertEqual(os.listdir(self.out), [name])

    # ------------------------------------------------------------ secrets

    def test_secret_is_resolved_on_the_actor_and_never_on_the_bus(self):
        secrets = os.path.join(self.dir, "secrets.yaml")
        fd = os.open(secrets, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write('db_password: "%s"\n' % SECRET)
        self.start_manager()
        self.start_publisher()
        actor = self.start_actor("web1", allow={"commands": [self.record]},
                                 extra_config=["secrets: %s" % secrets])
        self.bus.send("/sec/secret", {"value": 1})
        reaction = self.reaction_to("@host/web1/")
        ref = reaction["args"]["argv"][1]
        self.assertIsInstance(ref, msgpack.ExtType)  # the name travels, not the value
        self.assertEqual((ref.code, ref.data), (83, b"db_password"))
        first = res = self.result_of(reaction["id"])
        self.assertTrue(res["ok"], res)
        self.assertEqual(self.args_of(reaction["id"]), [SECRET.encode()])  # the program has it
        # an event cannot name a secret: the same ext value in its data is not one
        tapped = list(self.bus.seen)
        self.bus.seen.clear()
        self.bus.send("/sec/inject/cmd", {"value": 1, "x": msgpack.ExtType(83, b"db_password")})
        rid = self.reaction_to("@host/web1/")["id"]
        res = self.result_of(rid)
        self.assertFalse(res["ok"], res)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "args-" + rid.hex())))
        self.bus.drain(0.2)
        everything = (repr([reaction, first] + tapped + self.bus.seen) + self.manager.output() +
                      actor.output())
        self.assertNotIn(SECRET, everything)
        rc, out, err = self.nerve("status", "--json")
        self.assertNotIn(SECRET, out + err)

    def test_actor_refuses_to_start_with_a_secrets_file_others_can_read(self):
        secrets = os.path.join(self.dir, "secrets.yaml")
        with open(secrets, "w") as f:
            f.write('db_password: "%s"\n' % SECRET)
        os.chmod(secrets, 0o644)
        self.start_manager()
        self.start_publisher()
        actor = Actor(self.dir, "web1", [], self.publisher.output, self.manager.events,
                      extra_config=["secrets: %s" % secrets])
        actor.may_fail = True
        self.start(actor)
        wait_until(lambda: not actor.alive(), what="the actor refusing to start")
        self.assertNotEqual(actor.proc.returncode, 0)
        self.assertIn("chmod 600", actor.output())
        self.assertNotIn(SECRET, actor.output())


def _status(ctx, endpoint):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    try:
        s.send_multipart([b"status", msgpack.packb({})])
        assert s.poll(5000), "no status from " + endpoint
        return msgpack.unpackb(s.recv_multipart()[-1], raw=False)
    finally:
        s.close()


class KeysAndModes(ManagerTest):
    """Keypairs made on first start, `nerve keys`, and what `nerve status`
    says about the mode."""

    def nerve(self, *args):
        argv = [NERVE, "--control", self.manager.control_ep] if self.manager else [NERVE]
        p = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, NERVE_HOME=self.dir))
        return p.returncode, p.stdout, p.stderr

    def test_manager_makes_its_keypair_on_first_start_and_status_shows_curve(self):
        for ext in (".pub", ".secret"):
            os.remove(os.path.join(self.keys, "manager" + ext))
        m = Manager(self.dir, self.rules_dir)
        for ext in (".pub", ".secret"):  # the helper writes one: this test wants none
            os.remove(os.path.join(self.keys, "manager" + ext))
        self.manager = m.start()
        wait_until(lambda: os.path.exists(os.path.join(self.keys, "manager.pub")),
                   what="the manager's keypair")
        self.bus = Bus(m)
        self.bus.wait_ready()
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.keys, "manager.secret")).st_mode),
                         0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.keys).st_mode), 0o700)
        self.assertIn("made keypair", m.output())
        self.assertIn("CURVE on", m.output())
        rc, out, err = self.nerve("status", "--json")
        self.assertEqual(rc, 1, err)  # no publisher running: 1, but the manager answered
        st = json.loads(out)["manager"]
        self.assertEqual(st["security"]["mode"], "curve")
        self.assertFalse(st["insecure"])
        self.assertEqual(st["security"]["public_key"], read_public(self.keys, "manager").decode())
        rc, out, err = self.nerve("status")
        self.assertRegex(out, r"security   curve \(events\)  key \S{40}")

    def test_keys_verbs_manage_the_directory(self):
        keys = os.path.join(self.dir, "k2")
        rc, out, err = self.nerve("keys", "gen", "web9", "--keys", keys)
        self.assertEqual(rc, 0, err)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(keys, "web9.secret")).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(keys).st_mode), 0o700)
        rc, _, err = self.nerve("keys", "gen", "web9", "--keys", keys)
        self.assertEqual(rc, 1)
        self.assertIn("already exists", err)
        rc, _, err = self.nerve("keys", "gen", "../evil", "--keys", keys)
        self.assertEqual(rc, 1)
        self.assertIn("invalid key name", err)
        # a key another host sent: pending, then accepted, rejected, accepted, revoked
        public, _ = zmq.curve_keypair()
        write_public(os.path.join(keys, "pending", "far.pub"), public, "far")
        rc, out, err = self.nerve("keys", "list", "--json", "--keys", keys)
        self.assertEqual(rc, 0, err)
        listed = json.loads(out)
        self.assertEqual(listed["dir"], keys)
        self.assertEqual([k["name"] for k in listed["local"]], ["web9"])
        self.assertEqual(listed["pending"], [{"name": "far", "key": public.decode()}])
        self.assertEqual(listed["accepted"], [])
        for verb, state in (("accept", "accepted"), ("reject", "rejected"),
                            ("accept", "accepted"), ("revoke", "rejected")):
            rc, out, err = self.nerve("keys", verb, "far", "--keys", keys)
            self.assertEqual(rc, 0, err)
            listed = json.loads(self.nerve("keys", "list", "--json", "--keys", keys)[1])
            self.assertEqual([k["name"] for k in listed[state]], ["far"], verb)
        rc, out, err = self.nerve("keys", "list", "--keys", keys)
        self.assertIn("Rejected keys:\n  far", out)
        rc, _, err = self.nerve("keys", "accept", "nosuch", "--keys", keys)
        self.assertEqual(rc, 1)
        self.assertIn("no key 'nosuch'", err)
        rc, _, err = self.nerve("keys", "revoke", "--keys", keys)
        self.assertEqual(rc, 2)

    def test_insecure_must_be_written_out_and_is_warned_and_shown(self):
        conf = os.path.join(self.dir, "manager.yaml")
        with open(conf, "w") as f:
            f.write("security: {curve: false}\n")
        p = subprocess.run([os.path.join(BUILD, "nerve-manager"), "-c", conf, "--check"],
                           capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, NERVE_HOME=self.dir))
        self.assertEqual(p.returncode, 2)
        self.assertIn("write insecure: true", p.stderr)
        with open(conf, "w") as f:
            f.write("security: {insecure: true}\n")
        m = Manager(self.dir, self.rules_dir, extra=["-c", conf])
        self.manager = m.start()
        self.bus = Bus(m, curve=False)  # a plain client gets in: nothing checks
        self.bus.wait_ready()
        self.assertRegex(m.output(), r"WARN.*insecure: true")
        rc, out, err = self.nerve("status", "--json")
        st = json.loads(out)["manager"]
        self.assertTrue(st["insecure"])
        self.assertEqual(st["security"]["mode"], "insecure")
        self.assertEqual(st["security"]["curve"], [])
        rc, out, err = self.nerve("status")
        self.assertIn("INSECURE", out)

    def test_keys_directory_others_can_write_stops_the_manager(self):
        os.chmod(self.keys, 0o770)
        m = Manager(self.dir, self.rules_dir)
        os.chmod(self.keys, 0o770)
        self.manager = m.start()
        wait_until(lambda: not m.alive(), what="the manager refusing to start")
        self.assertNotEqual(m.proc.returncode, 0)
        self.assertIn("writable by group or others", m.output())
        m.stop()
        self.manager = None


if __name__ == "__main__":
    main()
