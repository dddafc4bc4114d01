"""Reaction delivery end to end: one manager, one publisher and three actors
(web1 [web], web10 [web], db1 [db]) on one machine, every TCP link CURVE
(each actor's keypair in the shared keys directory, so trusted).

Events sent to the manager fire reactions.cmd.run of a script (allowed on
every actor) that appends "$NERVE_REACTION_ID $NERVE_ACTOR" to a log file,
so the log says exactly which actor ran which reaction how often. Results
and presence events are followed on the manager's tap. Every wait is on a
tap message, a control answer or the publisher's subscription count; a
"fence" (a host reaction to each live actor, whose results must come back)
proves that anything sent before it has been handled, since each actor
takes reactions in order.
"""
import os
import signal
import time
import uuid

from nervetest import (Actor, Bus, Manager, ManagerTest, Publisher, main, wait_until)

RECORD = """#!/bin/sh
echo "$NERVE_REACTION_ID $NERVE_ACTOR" >> "$1"
echo "ran on $NERVE_ACTOR"
"""

RULES = """
/it/run:
  rules:
    - run:
        rule: rules.simple.gt
        threshold: 0
        reactions:
          - reactions.cmd.run:
              target: "{{event.data.target}}"
              argv: [%(script)s, %(log)s]
/it/short:
  rules:
    - short:
        rule: rules.simple.gt
        threshold: 0
        reactions:
          - reactions.cmd.run:
              target: "{{event.data.target}}"
              deadline: 2s
              argv: [%(script)s, %(log)s]
/it/refused:
  rules:
    - refused:
        rule: rules.simple.gt
        threshold: 0
        reactions:
          - reactions.cmd.run:
              target: "{{event.data.target}}"
              argv: [/bin/sh, -c, "touch %(marker)s"]
"""

ACTORS = (("web1", ["web"]), ("web10", ["web"]), ("db1", ["db"]))


def hexid(b):
    return b.hex()


class Delivery(ManagerTest):
    # the actors' keypairs exist before the manager and publisher start
    client_keys = ManagerTest.client_keys + tuple(ident for ident, _ in ACTORS)

    def setUp(self):
        super().setUp()
        self.script = os.path.join(self.dir, "record.sh")
        self.log = os.path.join(self.dir, "runs.log")
        self.marker = os.path.join(self.dir, "pwned")
        with open(self.script, "w") as f:
            f.write(RECORD)
        os.chmod(self.script, 0o755)
        self.write_rules("delivery.yaml", RULES % {"script": self.script, "log": self.log,
                                                   "marker": self.marker})
        config = os.path.join(self.dir, "manager.yaml")
        with open(config, "w") as f:
            f.write("heartbeat: 1s\n")
        self.extra = ["-c", config]
        self.publisher = None
        self.actors = {}
        self.known = set()  # reaction ids seen on the tap
        self.start_manager()
        self.publisher = Publisher(self.dir, self.manager).start()
        for ident, groups in ACTORS:
            self.actors[ident] = Actor(self.dir, ident, groups, self.publisher.output,
                                       self.manager.events,
                                       allow={"commands": [self.script]}).start()
        self.wait_subscribed()
        for ident in self.actors:
            self.bus.wait_for(lambda t, p, i=ident: t == "/nerve/actor/%s/joined" % i,
                              timeout=15, what="%s joined" % ident)

    def tearDown(self):
        failures = []
        for a in self.actors.values():
            rc = a.stop()
            if rc not in (0, None):
                failures.append("%s exited %s:\n%s" % (a.name, rc, a.output()[-3000:]))
        if self.publisher:
            self.publisher.stop()
        super().tearDown()
        if failures:
            raise AssertionError("\n".join(failures))

    # ------------------------------------------------------------ helpers

    def wait_subscribed(self):
        want = sum(a.topics() for a in self.actors.values() if a.alive())
        self.publisher.wait_subscriptions(self.bus.ctx, want)

    def fire(self, target, tag="/it/run"):
        self.bus.send(tag, {"value": 1, "target": target})

    def reactions(self, n, timeout=10):
        """The next n new reactions on the tap: [(topic, id)]. Retries of
        reactions seen before (same id) are not new."""
        got = []
        while len(got) < n:
            t, p = self.bus.wait_for(lambda t, p: t.startswith("@") and p["id"] not in self.known,
                                     timeout=timeout, what="reaction %d of %d" % (len(got) + 1, n))
            self.known.add(p["id"])
            got.append((t, p["id"]))
        return got

    def result(self, rid, actor=None, timeout=15):
        def match(t, p):
            return (t.startswith("/nerve/result/") and p["data"].get("reaction") == rid and
                    (actor is None or p["host"] == actor))
        _, p = self.bus.wait_for(match, timeout=timeout,
                                 what="result of %s from %s" % (hexid(rid), actor or "any"))
        return p

    def fence(self):
        """Every reaction published before has been handled by every live actor
        when this returns: a host reaction to each (retried until it arrives)
        comes back, and an actor takes reactions in order."""
        live = [i for i, a in self.actors.items() if a.alive()]
        for ident in live:
            self.fire("host:" + ident)
        for topic, rid in self.reactions(len(live)):
            self.result(rid, topic.split("/")[1], timeout=30)

    def runs(self):
        """{reaction id hex: [actor, ...]} from the log."""
        out = {}
        if not os.path.exists(self.log):
            return out
        with open(self.log) as f:
            for line in f:
                rid, actor = line.split()
                out.setdefault(rid, []).append(actor)
        return out

    def assert_ran(self, rid, actors):
        self.assertEqual(sorted(self.runs().get(hexid(rid), [])), sorted(actors),
                         "reaction %s ran on the wrong actors" % hexid(rid))

    # -------------------------------------------------------------- tests

    def test_targets_reach_exactly_the_right_actors(self):
        cases = [("host:web1", 1, ["web1"]), ("host:web10", 1, ["web10"]),
                 ("host:db1", 1, ["db1"]), ("group:web", 1, ["web1", "web10"]),
                 ("group:db", 1, ["db1"]), ("all", 1, ["web1", "web10", "db1"]),
                 ("glob:web*", 2, ["web1", "web10"]), ("glob:web1", 1, ["web1"]),
                 ("glob:*1", 2, ["web1", "db1"])]
        sent = []
        for target, nreactions, actors in cases:
            self.fire(target)
            got = self.reactions(nreactions)
            if target.startswith("host:") or target.startswith("glob:"):
                self.assertEqual(sorted(t for t, _ in got),
                                 sorted("@host/%s/" % a for a in actors), target)
            sent.append((target, got, actors))
        for target, got, actors in sent:
            if len(got) == 1:
                rid = got[0][1]
                for a in actors:
                    p = self.result(rid, a)
                    self.assertTrue(p["data"]["ok"], p)
                    self.assertEqual(p["data"]["rc"], 0)
                    self.assertEqual(p["data"]["fn"], "reactions.cmd.run")
                    self.assertEqual(p["data"]["output"], "ran on %s\n" % a)
            else:
                for topic, rid in got:
                    self.result(rid, topic.split("/")[1])
        self.fence()
        for target, got, actors in sent:
            if len(got) == 1:
                self.assert_ran(got[0][1], actors)
            else:
                for topic, rid in got:
                    self.assert_ran(rid, [topic.split("/")[1]])
        # @host/web1/ never reached web10, nor anything else the wrong actor.
        self.bus.expect_none(lambda t, p: t.startswith("/nerve/result/") and
                             not p["data"]["ok"], within=0.2)

    def test_publisher_restart_mid_stream_runs_each_host_reaction_once(self):
        targets = ["host:web1", "host:web10", "host:db1"]
        for i in range(15):
            self.fire(targets[i % 3])
        self.publisher.stop(signal.SIGKILL)
        for i in range(15, 30):
            self.fire(targets[i % 3])
        got = self.reactions(30)
        self.publisher.start()
        for topic, rid in got:
            self.result(rid, topic.split("/")[1], timeout=40)
        self.wait_subscribed()
        self.fence()
        runs = self.runs()
        for topic, rid in got:
            self.assertEqual(runs.get(hexid(rid)), [topic.split("/")[1]],
                             "reaction %s to %s" % (hexid(rid), topic))
        status, counters = self.bus.control("status")
        self.assertEqual(status, "ok")

    def test_actor_down_then_back_before_the_deadline_runs_it_once(self):
        web10 = self.actors["web10"]
        web10.stop()
        self.fire("host:web10")
        (_, rid), = self.reactions(1)
        # The manager retries while web10 is away: see at least one retry.
        self.bus.wait_for(lambda t, p: t == "@host/web10/" and p["id"] == rid, timeout=5,
                          what="a retry of the reaction to web10")
        web10.start()
        p = self.result(rid, "web10", timeout=30)
        self.assertTrue(p["data"]["ok"])
        self.wait_subscribed()
        self.fence()
        self.assert_ran(rid, ["web10"])

    def test_actor_down_past_the_deadline_yields_expired(self):
        db1 = self.actors["db1"]
        db1.stop()
        self.fire("host:db1", tag="/it/short")
        (_, rid), = self.reactions(1)
        t, p = self.bus.wait_for(lambda t, p: t == "/nerve/reaction/expired" and
                                 p["data"]["reaction"] == rid, timeout=15,
                                 what="/nerve/reaction/expired")
        self.assertEqual(p["data"]["target"], "@host/db1/")
        self.assertEqual(p["data"]["rule"], "short")
        db1.start()
        self.wait_subscribed()
        self.fence()
        self.assert_ran(rid, [])
        self.bus.expect_none(lambda t, p: t.startswith("/nerve/result/") and
                             p["data"].get("reaction") == rid, within=0.3)

    def test_allow_refusal_gives_ok_false_and_runs_nothing(self):
        self.fire("host:web1", tag="/it/refused")
        (_, rid), = self.reactions(1)
        p = self.result(rid, "web1")
        self.assertFalse(p["data"]["ok"])
        self.assertEqual(p["data"]["rc"], -5)
        self.assertIn("not allowed", p["data"]["output"])
        self.assertIn("/bin/sh", p["data"]["output"])
        self.assertFalse(os.path.exists(self.marker))
        # Refused, not failed to arrive: no retry makes it run later.
        self.fence()
        self.assertFalse(os.path.exists(self.marker))

    def test_presence_joined_and_lost(self):
        # joined for all three was awaited in setUp; a stopped actor is lost
        # after three silent heartbeats.
        self.actors["db1"].stop()
        start = time.monotonic()
        t, p = self.bus.wait_for(lambda t, p: t == "/nerve/actor/db1/lost", timeout=15,
                                 what="/nerve/actor/db1/lost")
        self.assertGreaterEqual(time.monotonic() - start, 1.5)
        self.assertEqual(p["data"]["id"], "db1")
        self.bus.expect_none(lambda t, p: t in ("/nerve/actor/web1/lost",
                                                "/nerve/actor/web10/lost"), within=0.5)
        # Back, it joins again.
        self.actors["db1"].start()
        self.bus.wait_for(lambda t, p: t == "/nerve/actor/db1/joined", timeout=15,
                          what="db1 joined again")
        # Heartbeats carry groups and version.
        t, p = self.bus.wait_for(lambda t, p: t == "/nerve/actor/web10/alive", timeout=5,
                                 what="a web10 heartbeat")
        self.assertEqual(p["data"]["groups"], ["web"])
        self.assertIn("version", p["data"])
        self.assertIn("uptime_s", p["data"])


if __name__ == "__main__":
    main()
