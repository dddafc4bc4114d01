"""nerve-actor reloads its modules on SIGHUP, all of them or none.

One manager, one publisher and one actor (a1) on one machine, every TCP link
CURVE. The actor's module path is the built-in modules plus a directory of
the test's own, into which the test installs test modules (tests/modules/,
built into NERVE_TEST_MODULE_DIR) the way an operator should: a copy under
a temporary name, then rename(2). Events to the manager fire
reactions.slow.sleep {ms} at host:a1; the reaction and its result are
followed on the manager's tap. A reload is seen in the heartbeat the actor
sends right after it ({reload: {ok, attempts, failures, modules, error}}),
and a failed one in /nerve/actor/a1/reload/failed. Nothing sleeps: every
wait is on a tap message or the actor's /metrics.
"""
import os
import shutil
import signal

from nervetest import (Actor, BUILD, ManagerTest, MODULES, Publisher, free_port, main, scrape,
                       wait_until)

TEST_MODULES = os.environ.get("NERVE_TEST_MODULE_DIR", os.path.join(BUILD, "test-modules"))

RULES = """
/it/slow:
  rules:
    - slow:
        rule: rules.simple.gt
        threshold: 0
        reactions:
          - reactions.slow.sleep:
              target: host:a1
              deadline: 60s
              ms: "{{event.data.ms}}"
"""

ENOENT = -4




class ActorReload(ManagerTest):
    rules_text = RULES
    client_keys = ManagerTest.client_keys + ("a1",)

    def setUp(self):
        super().setUp()
        config = os.path.join(self.dir, "manager.yaml")
        with open(config, "w") as f:
            f.write("heartbeat: 1s\n")
        self.extra = ["-c", config]
        self.mods = os.path.join(self.dir, "mods")
        os.makedirs(os.path.join(self.mods, "reactions"))
        for d in (self.mods, os.path.join(self.mods, "reactions")):
            os.chmod(d, 0o755)  # the loader refuses group- or world-writable ones
        self.metrics_port = free_port()
        self.publisher = None
        self.actor = None
        self.known = set()
        self.start_manager()
        self.publisher = Publisher(self.dir, self.manager).start()

    def tearDown(self):
        failure = None
        if self.actor:
            rc = self.actor.stop()
            if rc not in (0, None):
                failure = "actor exited %s:\n%s" % (rc, self.actor.output()[-4000:])
        if self.publisher:
            self.publisher.stop()
        super().tearDown()
        if failure:
            raise AssertionError(failure)

    # ------------------------------------------------------------ helpers

    def install(self, name, as_name=None):
        """Copies test module `name`.so to mods/reactions/<as_name>.so."""
        dst = os.path.join(self.mods, "reactions", (as_name or name) + ".so")
        tmp = dst + ".tmp"
        shutil.copyfile(os.path.join(TEST_MODULES, name + ".so"), tmp)
        os.chmod(tmp, 0o755)
        os.rename(tmp, dst)

    def uninstall(self, name):
        os.unlink(os.path.join(self.mods, "reactions", name + ".so"))

    def start_actor(self):
        self.actor = Actor(self.dir, "a1", [], self.publisher.output, self.manager.events,
                           modules=[MODULES, self.mods],
                           extra_config=["metrics: 127.0.0.1:%d" % self.metrics_port]).start()
        self.publisher.wait_subscriptions(self.bus.ctx, self.actor.topics())
        self.bus.wait_for(lambda t, p: t == "/nerve/actor/a1/joined", timeout=15,
                          what="a1 joined\n" + self.actor.output())

    def fire(self, ms):
        """Fires one reactions.slow.sleep at a1; returns its reaction id."""
        self.bus.send("/it/slow", {"value": 1, "ms": ms})
        _, p = self.bus.wait_for(lambda t, p: t == "@host/a1/" and p["id"] not in self.known,
                                 what="the reaction to a1")
        self.known.add(p["id"])
        self.assertEqual(p["fn"], "reactions.slow.sleep")
        return p["id"]

    def result(self, rid, timeout=15):
        _, p = self.bus.wait_for(lambda t, p: t == "/nerve/result/a1" and
                                 p["data"].get("reaction") == rid, timeout=timeout,
                                 what="the result of %s\n%s" % (rid.hex(), self.actor.output()))
        return p["data"]

    def call(self, ms=1):
        return self.result(self.fire(ms))

    def reload(self, attempts):
        """SIGHUPs the actor and returns the `reload` status of the heartbeat
        it sends right after (the one whose attempts count this reload)."""
        self.actor.proc.send_signal(signal.SIGHUP)
        _, p = self.bus.wait_for(lambda t, p: t == "/nerve/actor/a1/alive" and
                                 p["data"].get("reload", {}).get("attempts") == attempts,
                                 what="a heartbeat after reload %d\n%s" % (attempts,
                                                                           self.actor.output()))
        return p["data"]["reload"]

    # -------------------------------------------------------------- tests

    def test_sighup_takes_in_a_module_dropped_into_the_modules_dir(self):
        self.start_actor()
        before = self.call()
        self.assertFalse(before["ok"], before)
        self.assertEqual(before["rc"], ENOENT)
        self.assertEqual(before["fn"], "reactions.slow.sleep")
        self.assertIn("reactions.slow.sleep: no module reactions/slow.so was loaded",
                      before["output"])
        self.assertIn(self.mods, before["output"])

        # On disk now, but the actor's set changes only when it reloads.
        self.install("slow")
        waiting = self.call()
        self.assertFalse(waiting["ok"], waiting)
        self.assertIn("SIGHUP", waiting["output"])

        status = self.reload(attempts=1)
        self.assertTrue(status["ok"], status)
        self.assertEqual(status["failures"], 0)
        self.assertNotIn("error", status)

        after = self.call()
        self.assertTrue(after["ok"], after)
        self.assertEqual(after["rc"], 0)
        self.assertEqual(after["output"], "slept 1 ms")
        m = wait_until(lambda: (lambda v: v if v and
                                v.get("nerve_actor_reload_attempts_total") == 1 else None)(
                                    scrape(self.metrics_port)), what="reload metrics")
        self.assertEqual(m["nerve_actor_reload_failures_total"], 0)
        self.assertEqual(m["nerve_actor_reload_last_ok"], 1)

    def test_broken_module_on_reload_keeps_the_old_set_working(self):
        self.install("slow")
        self.start_actor()
        self.assertTrue(self.call()["ok"])

        self.install("badmagic")  # refused by the loader: wrong magic
        self.actor.proc.send_signal(signal.SIGHUP)
        _, failed = self.bus.wait_for(lambda t, p: t == "/nerve/actor/a1/reload/failed",
                                      what="the reload failure event\n" + self.actor.output())
        reason = failed["data"]["reason"]
        self.assertIn(os.path.join(self.mods, "reactions", "badmagic.so"), reason)
        self.assertIn("bad magic", reason)
        self.assertEqual(failed["data"]["trigger"], "SIGHUP")
        self.assertEqual(failed["data"]["value"], 1)
        _, beat = self.bus.wait_for(lambda t, p: t == "/nerve/actor/a1/alive" and
                                    p["data"]["reload"]["attempts"] == 1,
                                    what="the heartbeat after the failed reload")
        status = beat["data"]["reload"]
        self.assertFalse(status["ok"])
        self.assertEqual(status["failures"], 1)
        self.assertIn("badmagic.so", status["error"])
        self.assertIn("failed, the running modules are kept", self.actor.output())

        # The old set runs on, and a module the failed reload would have
        # brought is not half taken in.
        kept = self.call()
        self.assertTrue(kept["ok"], kept)
        self.assertEqual(kept["output"], "slept 1 ms")

        # Fixed: the next reload goes through.
        self.uninstall("badmagic")
        status = self.reload(attempts=2)
        self.assertTrue(status["ok"], status)
        self.assertEqual(status["failures"], 1)
        self.assertTrue(self.call()["ok"])

    def test_reaction_running_across_a_reload_finishes_on_its_module(self):
        self.install("slow")
        self.start_actor()
        rid = self.fire(3000)
        wait_until(lambda: (lambda v: v and v.get("nerve_actor_reactions_running") == 1)(
            scrape(self.metrics_port)), timeout=10, what="the slow reaction running")

        # The reload drops the module: no newer set holds it, so only the
        # running job's reference keeps its code mapped.
        self.uninstall("slow")
        status = self.reload(attempts=1)
        self.assertTrue(status["ok"], status)

        done = self.result(rid, timeout=20)
        self.assertTrue(done["ok"], done)
        self.assertEqual(done["output"], "slept 3000 ms")
        gone = self.call()
        self.assertFalse(gone["ok"], gone)
        self.assertEqual(gone["rc"], ENOENT)
        self.assertTrue(self.actor.alive())


if __name__ == "__main__":
    main()
