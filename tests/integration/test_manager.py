"""nerve-manager end to end: a real manager on scratch endpoints (events on
TCP, over CURVE; control and tap on IPC), events sent over ZeroMQ, results
followed on the tap and the control socket."""
import os
import re
import shutil
import signal
import time

import msgpack

from nervetest import (ManagerTest, MODULES, free_port, is_event, main, scrape,
                       normal_scheduling_only, thread_policies, wait_until)

TEST_MODULES = os.environ.get("NERVE_TEST_MODULE_DIR",
                              os.path.join(os.path.dirname(MODULES), "test-modules"))

FIRE = "reactions.eventer.fire_event"


def fire(tag, extra=""):
    return "          - %s: {tag: %s%s}\n" % (FIRE, tag, extra)


OPS_RULES = """
/t/ops:
  rules:
    - other:
        rule: rules.simple.gt
        field: y
        threshold: 0
""" + "".join("""    - r_%s:
        rule: rules.simple.gt
        field: x
        threshold: 0
        chain:
          - %s: other
        reactions:
%s""" % (op.lower(), op, fire("/out/" + op.lower())) for op in
              ("AND", "OR", "AND_NOT", "OR_NOT"))


class Chains(ManagerTest):
    rules_text = OPS_RULES

    def test_each_chain_operator_folds_left_to_right(self):
        bus = self.start_manager()
        expected = {  # (x > 0, y > 0) -> ops that fire
            (1, 1): {"and", "or", "or_not"},
            (1, 0): {"or", "and_not", "or_not"},
            (0, 1): {"or"},
            (0, 0): {"or_not"},
        }
        for (x, y), fired in expected.items():
            bus.seen.clear()
            bus.send("/t/ops", {"x": x, "y": y})
            bus.barrier()
            # Re-fired events come back through the worker: wait for each
            # expected one, then make sure no other shows up.
            for op in fired:
                bus.wait_for(is_event("/out/" + op), what="/out/%s for x=%d y=%d" % (op, x, y))
            for op in {"and", "or", "and_not", "or_not"} - fired:
                bus.expect_none(is_event("/out/" + op), within=0.2)

    def test_explain_shows_chain_arithmetic_without_side_effects(self):
        bus = self.start_manager()
        status, report = bus.control("explain", {"tag": "/t/ops", "data": {"x": 1, "y": 0}})
        self.assertEqual(status, "ok", report)
        rules = {r["name"]: r for r in report["rules"]}
        r_and = rules["r_and"]
        self.assertTrue(r_and["own"])
        self.assertEqual(r_and["chain"], [{"op": "AND", "rule": "other", "before": True,
                                           "value": False, "after": False}])
        self.assertFalse(r_and["result"])
        self.assertEqual(rules["r_or"]["verdict"], "fire")
        self.assertEqual(rules["r_or"]["reactions"][0]["fn"], FIRE)
        self.assertEqual(rules["r_or"]["reactions"][0]["args"], {"tag": "/out/or"})
        self.assertEqual(rules["r_or"]["reactions"][0]["target"], "manager")
        bus.expect_none(is_event("/out/or"), within=0.3)
        _, st = bus.control("status")
        self.assertEqual(st["rules"]["fired"], 0)


class ForCooldownKey(ManagerTest):
    rules_text = """
/t/for:
  rules:
    - three_in_a_row:
        rule: rules.simple.gt
        threshold: 5
        for: 3
        reactions:
""" + fire("/out/for") + """
/t/cool:
  rules:
    - once_an_hour:
        rule: rules.simple.gt
        threshold: 5
        cooldown: 1h
        reactions:
""" + fire("/out/cool", ", data: {host: '{{event.host}}'}") + """
/t/region:
  rules:
    - busy_region:
        rule: rules.simple.ge
        register: registers.aggregate.count
        period: 3600
        key: '{{event.data.region}}'
        threshold: 3
        reactions:
""" + fire("/out/region", ", data: {region: '{{event.data.region}}', n: '{{value}}'}")

    def test_for_fires_only_after_n_consecutive_trues(self):
        bus = self.start_manager()
        for v in (9, 9, 1, 9, 9):  # the false in the middle resets the streak
            bus.send("/t/for", v)
        bus.barrier()
        bus.expect_none(is_event("/out/for"), within=0.3)
        bus.send("/t/for", 9)  # third true in a row
        bus.wait_for(is_event("/out/for"))

    def test_cooldown_silences_a_key_but_not_others(self):
        bus = self.start_manager()
        bus.send("/t/cool", 9, host="a")
        bus.wait_for(lambda t, p: t == "/out/cool" and p["data"]["host"] == "a")
        bus.send("/t/cool", 9, host="a")
        bus.send("/t/cool", 9, host="b")
        bus.wait_for(lambda t, p: t == "/out/cool" and p["data"]["host"] == "b")
        bus.barrier()
        bus.expect_none(lambda t, p: t == "/out/cool" and p["data"]["host"] == "a", 0.3)

    def test_key_template_groups_register_state(self):
        bus = self.start_manager()
        bus.send("/t/region", {"region": "eu", "value": 1}, host="h1")
        bus.send("/t/region", {"region": "us", "value": 1}, host="h2")
        bus.send("/t/region", {"region": "eu", "value": 1}, host="h3")
        bus.barrier()
        bus.expect_none(is_event("/out/region"), within=0.2)
        bus.send("/t/region", {"region": "eu", "value": 1}, host="h4")
        _, p = bus.wait_for(is_event("/out/region"))
        self.assertEqual(p["data"], {"region": "eu", "n": 3})


class Durability(ManagerTest):
    rules_text = """
/t/sum:
  rules:
    - total:
        rule: rules.simple.gt
        register: registers.aggregate.sum
        period: 3600
        threshold: 25
        reactions:
""" + fire("/out/sum", ", data: {total: '{{value}}'}")

    def _committed(self, bus):
        def done():
            _, st = bus.control("status")
            return st["registers"]["dirty"] == 0 and st["registers"]["commits"] > 0
        wait_until(done, what="registers committed")

    def test_registers_survive_kill_9(self):
        bus = self.start_manager()
        bus.send("/t/sum", 10, host="web1")
        bus.send("/t/sum", 10, host="web1")
        bus.barrier()
        self._committed(bus)
        bus = self.restart_manager(sig=signal.SIGKILL)
        bus.send("/t/sum", 10, host="web1")
        _, p = bus.wait_for(is_event("/out/sum"))
        self.assertEqual(p["data"]["total"], 30)

    def test_sigterm_loses_nothing(self):
        bus = self.start_manager()
        for _ in range(2):
            bus.send("/t/sum", 10, host="web2")
        bus.barrier()
        bus = self.restart_manager(sig=signal.SIGTERM)
        bus.send("/t/sum", 10, host="web2")
        _, p = bus.wait_for(is_event("/out/sum"))
        self.assertEqual(p["data"]["total"], 30)

    def test_registers_round_trip_through_control(self):
        bus = self.start_manager()
        self.assertEqual(bus.control("registers.set", {"scope": "s", "key": "k",
                                                       "value": {"a": 1}})[0], "ok")
        self.assertEqual(bus.control("registers.get", {"scope": "s", "key": "k"}),
                         ("ok", {"a": 1}))
        status, listing = bus.control("registers.list", {"prefix": "s"})
        self.assertEqual(status, "ok")
        self.assertEqual(listing, [{"scope": "s", "key": "k", "value": {"a": 1}}])
        self.assertEqual(bus.control("registers.del", {"scope": "s", "key": "k"})[0], "ok")
        self.assertEqual(bus.control("registers.get", {"scope": "s", "key": "k"}),
                         ("error", {"error": "no register 's' with key 'k'"}))


class DeepRegisterValues(ManagerTest):
    rules_text = ""

    def test_a_listing_stays_readable_with_a_deeply_nested_value(self):
        # 31 levels fit a request (its args map is the 32nd) and come back
        # whole from registers.get; in a listing, two levels down, they would
        # make a 33-level reply that msgpack-c (the CLI) cannot parse, so
        # the listing shows the state's size instead.
        deep = 1
        for _ in range(31):
            deep = [deep]
        bus = self.start_manager()
        self.assertEqual(bus.control("registers.set", {"scope": "s", "key": "deep",
                                                       "value": deep})[0], "ok")
        self.assertEqual(bus.control("registers.get", {"scope": "s", "key": "deep"}),
                         ("ok", deep))
        status, listing = bus.control("registers.list", {"prefix": "s"})
        self.assertEqual(status, "ok")
        self.assertEqual(listing, [{"scope": "s", "key": "deep",
                                    "value": {"state_bytes": 32}}])


class Reload(ManagerTest):
    rules_text = """
/t/a:
  rules:
    - first:
        rule: rules.simple.gt
        threshold: 0
        reactions:
""" + fire("/out/first")

    def test_broken_rules_keep_the_old_ones_running(self):
        bus = self.start_manager()
        self.write_rules("rules.yaml", "/t/a:\n  rules:\n    - first:\n        rule: [oops\n")
        status, body = bus.control("reload")
        self.assertEqual(status, "error")
        # libyaml reports the unclosed flow sequence where the file ends.
        self.assertIn("rules.yaml:5:1: did not find expected ',' or ']'", body["error"])
        _, p = bus.wait_for(is_event("/nerve/manager/reload/failed"))
        self.assertIn("rules.yaml:5:1:", p["data"]["reason"])
        bus.send("/t/a", 1)
        bus.wait_for(is_event("/out/first"))
        _, st = bus.control("status")
        self.assertFalse(st["reload"]["ok"])
        self.assertIn("rules.yaml:5:1:", st["reload"]["error"])

    def test_unknown_module_names_the_dotted_name_and_directories(self):
        bus = self.start_manager()
        self.write_rules("rules.yaml", "/t/a:\n  rules:\n    - first:\n"
                                       "        rule: rules.nosuch.gt\n")
        status, body = bus.control("reload")
        self.assertEqual(status, "error")
        self.assertIn("rules.nosuch.gt", body["error"])
        self.assertIn("rules.yaml:4:15", body["error"])
        self.assertIn(os.environ.get("NERVE_MODULE_BUILD_DIR", "modules"), body["error"])

    def test_sighup_and_file_change_load_new_rules(self):
        bus = self.start_manager()
        self.write_rules("more.yaml", "/t/b:\n  rules:\n    - second:\n"
                                      "        rule: rules.simple.gt\n        threshold: 0\n"
                                      "        reactions:\n" + fire("/out/second"))
        # The directory watch picks the file up by itself…
        def loaded():
            _, st = bus.control("status")
            return st["rules"]["count"] == 2
        wait_until(loaded, what="rules reloaded after a file change")
        bus.send("/t/b", 1)
        bus.wait_for(is_event("/out/second"))
        # …and SIGHUP reloads too.
        _, before = bus.control("status")
        self.manager.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: bus.control("status")[1]["reload"]["attempts"] >
                   before["reload"]["attempts"], what="SIGHUP reload")


class BadInput(ManagerTest):
    rules_text = Reload.rules_text

    def test_garbage_is_counted_by_reason_and_valid_events_still_flow(self):
        bus = self.start_manager()
        ok = msgpack.packb({"v": 1, "id": b"0" * 16, "ts": 1, "host": "h", "data": 1})
        garbage = [
            [b"/t/a"],                                   # frame_count
            [b"/t/a", ok, b"extra"],                     # frame_count
            [b"t/a", ok],                                # tag_no_slash
            [b"", ok],                                   # tag_empty
            [b"/t/\xff", ok],                            # tag_utf8
            [b"/t/a", b"\xc1\xc1"],                      # payload_invalid
            [b"/t/a", ok[:-3]],                          # payload_truncated
            [b"/t/a", ok + b"\x00"],                     # payload_trailing
            [b"/t/a", msgpack.packb([1, 2])],            # payload_not_map
            [b"/t/a", msgpack.packb({"v": 2, "id": b"0" * 16, "ts": 1, "host": "h",
                                     "data": 1})],      # v_unsupported
            [b"/t/a", msgpack.packb({"v": 1, "id": b"0" * 15, "ts": 1, "host": "h",
                                     "data": 1})],      # id_type
            [b"/t/a", msgpack.packb({"v": 1, "id": b"0" * 16, "ts": 1, "host": "h",
                                     "data": 1, "hops": 9})],  # hops_exceeded
        ]
        for frames in garbage:
            bus.send_raw(frames)
        bus.send("/t/a", 1)
        bus.wait_for(is_event("/out/first"))
        _, st = bus.control("status")
        by = st["events"]["rejected_by"]
        self.assertEqual(st["events"]["rejected"], len(garbage))
        self.assertEqual(by.get("frame_count"), 2)
        for reason in ("tag_no_slash", "tag_empty", "tag_utf8", "payload_invalid",
                       "payload_truncated", "payload_trailing", "payload_not_map",
                       "v_unsupported", "id_type", "hops_exceeded"):
            self.assertEqual(by.get(reason), 1, reason)

    def test_bad_control_requests_get_errors_not_crashes(self):
        bus = self.start_manager()
        self.assertEqual(bus.control("nosuchverb")[0], "error")
        self.assertEqual(bus.control("explain", {"tag": "no-slash"})[0], "error")
        self.assertEqual(bus.control("registers.get", {"scope": 1})[0], "error")
        self.assertEqual(bus.control("status")[0], "ok")


class Hops(ManagerTest):
    rules_text = """
/t/loop:
  rules:
    - echo:
        rule: rules.simple.exists
        reactions:
""" + fire("/t/loop", ", data: {value: 1}")

    def test_a_reaction_loop_stops_at_eight_hops(self):
        bus = self.start_manager()
        bus.send("/t/loop", {"value": 1})
        _, p = bus.wait_for(lambda t, p: t == "/t/loop" and p.get("hops") == 8,
                            what="the 8th hop")
        # The reaction to hop 8 is refused: its result says why.
        _, r = bus.wait_for(lambda t, p: t.startswith("/nerve/result/") and
                            not p["data"]["ok"], what="the refused 9th hop")
        self.assertEqual(r["data"]["fn"], FIRE)
        self.assertIn("out of range", r["data"]["output"])
        bus.barrier()
        bus.seen.clear()  # hops 0–8 were expected; nothing may follow them
        bus.expect_none(lambda t, p: t == "/t/loop", within=0.3)


class Targets(ManagerTest):
    rules_text = """
/t/remote:
  rules:
    - remediate:
        rule: rules.simple.gt
        threshold: 90
        reactions:
          - reactions.cmd.run:
              target: 'host:{{event.host}}'
              deadline: 30s
              argv: [/usr/bin/systemctl, restart, nginx]
              why: '{{rule}} saw {{value}}'
          - reactions.cmd.run:
              target: group:web
              argv: [/bin/true]
"""

    def test_targeted_reactions_are_published_with_topic_and_resolved_args(self):
        bus = self.start_manager()
        before = time.time_ns()
        bus.send("/t/remote", 95, host="web1")
        topic, r = bus.wait_for(lambda t, p: t == "@host/web1/")
        self.assertEqual(r["v"], 1)
        self.assertEqual(r["fn"], "reactions.cmd.run")
        self.assertEqual(r["rule"], "remediate")
        self.assertEqual(r["args"], {"argv": ["/usr/bin/systemctl", "restart", "nginx"],
                                     "why": "remediate saw 95"})
        self.assertEqual(r["event"]["tag"], "/t/remote")
        self.assertEqual(r["event"]["host"], "web1")
        self.assertEqual(len(r["id"]), 16)
        self.assertGreaterEqual(r["deadline"] - before, 29 * 10**9)
        self.assertLessEqual(r["deadline"] - r["ts"], 30 * 10**9)
        topic, r = bus.wait_for(lambda t, p: t == "@group/web/")
        self.assertEqual(r["args"], {"argv": ["/bin/true"]})
        _, st = bus.control("status")
        self.assertEqual(st["reactions"]["sent"], 2)


def with_slow_module(test, config):
    """Writes `config` as the test's manager.yaml (passed with -c) and
    copies the test module reactions.slow into a module directory of the
    test's own, with modes the loader accepts (test.mods)."""
    cfg = os.path.join(test.dir, "manager.yaml")
    with open(cfg, "w") as f:
        f.write(config)
    test.extra = ["-c", cfg]
    mods = os.path.join(test.dir, "mods")
    os.makedirs(os.path.join(mods, "reactions"))
    os.chmod(mods, 0o755)
    os.chmod(os.path.join(mods, "reactions"), 0o755)
    shutil.copy(os.path.join(TEST_MODULES, "slow.so"), os.path.join(mods, "reactions", "slow.so"))
    os.chmod(os.path.join(mods, "reactions", "slow.so"), 0o755)
    test.mods = mods


class SlowReactions(ManagerTest):
    rules_text = """
/t/slow:
  rules:
    - nap:
        rule: rules.simple.exists
        reactions:
          - reactions.slow.sleep: {ms: 4000}
"""

    def setUp(self):
        super().setUp()
        with_slow_module(self, "worker_queue: 2\n")

    def test_slow_reactions_never_stall_the_engine_and_a_full_queue_is_counted(self):
        bus = self.start_manager(modules=[self.mods, MODULES])
        for _ in range(10):
            bus.send("/t/slow", 1)
        # At most four workers sleep and two jobs wait (how many were taken
        # before the queue filled depends on scheduling); the rest are
        # refused and counted, and the engine answers at once all the same.
        bus.barrier()
        _, st = bus.control("status")
        r = st["reactions"]
        self.assertEqual(r["local_done"], 0)
        self.assertEqual(r["local_queued"] + r["local_refused"], 10)
        self.assertLessEqual(r["local_queued"], 6)
        self.assertGreaterEqual(r["local_refused"], 4)






class StopWithAHungReaction(ManagerTest):
    """A local reaction stuck in a module must not cost the registers on
    stop: they are committed before the manager waits for it, so the
    SIGKILL that ends a stop that waits too long (systemd's stop timeout)
    loses none of them. Ticks never commit here (commit_interval: 1h)."""
    rules_text = """
/t/sum:
  rules:
    - total:
        rule: rules.simple.gt
        register: registers.aggregate.sum
        period: 3600
        threshold: 0
        reactions:
""" + fire("/out/sum", ", data: {total: '{{value}}'}") + """
/t/hang:
  rules:
    - hang:
        rule: rules.simple.exists
        reactions:
          - reactions.slow.sleep: {ms: 120000}
"""

    def setUp(self):
        super().setUp()
        with_slow_module(self, "commit_interval: 1h\n")

    def test_registers_are_committed_before_waiting_for_a_hung_reaction(self):
        bus = self.start_manager(modules=[self.mods, MODULES])
        bus.send("/t/sum", 7, host="web1")
        bus.wait_for(is_event("/out/sum"))
        bus.send("/t/hang", 1)
        def running():
            r = bus.control("status")[1]["reactions"]
            # fire_event for /out/sum ran; the sleep is taken, not waiting
            return r["local_queued"] == 2 and r["local_done"] == 1 and r["local_waiting"] == 0
        wait_until(running, what="the slow reaction taken by a worker")
        bus.close()
        self.bus = None
        self.manager.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "registers committed; waiting up to" in self.manager.output(),
                   what="the stop committing registers, then waiting")
        self.assertTrue(self.manager.alive())  # still waiting for the reaction
        self.manager.stop(signal.SIGKILL)
        bus = self.start_manager(modules=[self.mods, MODULES])
        bus.send("/t/sum", 5, host="web1")
        _, p = bus.wait_for(is_event("/out/sum"))
        self.assertEqual(p["data"]["total"], 12)


class StopWhileResultsStillFire(ManagerTest):
    """A reaction that ends during the stop sends its result, which rules
    still see; a local reaction they fire then has no worker to go to.
    It is refused and counted: the manager used to hand it to the
    destroyed worker and die of SIGSEGV."""
    rules_text = """
/t/slow:
  rules:
    - nap:
        rule: rules.simple.exists
        reactions:
          - reactions.slow.sleep: {ms: 1500}
/nerve/result/**:
  rules:
    - on_result:
        rule: rules.simple.exists
        field: took_us
        reactions:
""" + fire("/out/result")

    def setUp(self):
        super().setUp()
        with_slow_module(self, "log_level: info\n")

    def test_a_result_during_the_stop_does_not_crash_it(self):
        bus = self.start_manager(modules=[self.mods, MODULES])
        bus.send("/t/slow", 1)

        def running():
            r = bus.control("status")[1]["reactions"]
            return r["local_queued"] == 1 and r["local_waiting"] == 0
        wait_until(running, what="the slow reaction taken by a worker")
        bus.close()
        self.bus = None
        self.assertEqual(self.manager.stop(signal.SIGTERM, timeout=20), 0,
                         self.manager.output())
        self.manager = None


class QuietLoopWithALongCommitInterval(ManagerTest):
    """The loop wakes on a tick whatever commit_interval says: with
    commit_interval: 1h and nothing arriving, an actor that stops beating
    is still declared lost (it used to wait for the next commit, an hour
    away), and SIGTERM still stops the manager at once."""
    rules_text = ""

    def setUp(self):
        super().setUp()
        cfg = os.path.join(self.dir, "manager.yaml")
        with open(cfg, "w") as f:
            f.write("commit_interval: 1h\n")
        self.extra = ["-c", cfg]

    def test_an_actor_is_lost_and_a_stop_is_prompt_without_traffic(self):
        bus = self.start_manager()
        bus.send("/nerve/actor/quiet1/alive", {"heartbeat_ms": 200, "groups": [],
                                               "version": "t"}, host="quiet1")
        bus.wait_for(is_event("/nerve/actor/quiet1/joined"))
        start = time.monotonic()
        bus.wait_for(is_event("/nerve/actor/quiet1/lost"), timeout=5)
        self.assertGreaterEqual(time.monotonic() - start, 0.5)  # 3 heartbeats of silence
        bus.close()
        self.bus = None
        start = time.monotonic()
        self.assertEqual(self.manager.stop(signal.SIGTERM), 0)
        self.manager = None
        self.assertLess(time.monotonic() - start, 3)


class Metrics(ManagerTest):
    rules_text = Reload.rules_text

    def test_metrics_are_valid_prometheus_text_and_counters_move(self):
        port = free_port()
        self.extra = ["--metrics", "127.0.0.1:%d" % port]
        bus = self.start_manager()
        bus.send_raw([b"no-slash", b"\x80"])
        bus.send("/t/a", 1)
        bus.wait_for(is_event("/out/first"))
        m = wait_until(lambda: (lambda v: v if v.get('nerve_rules_fired_total{rule="rules/first"}')
                                == 1 else None)(scrape(port)), what="metrics rendered")
        self.assertEqual(m['nerve_events_rejected_total{reason="tag_no_slash"}'], 1)
        self.assertGreaterEqual(m["nerve_events_accepted_total"], 2)
        self.assertEqual(m["nerve_reload_last_ok"], 1)
        self.assertGreaterEqual(m["nerve_engine_latency_seconds_count"], 2)
        self.assertEqual(m['nerve_engine_latency_seconds_bucket{le="+Inf"}'],
                         m["nerve_engine_latency_seconds_count"])
        before = m["nerve_events_accepted_total"]
        for _ in range(5):
            bus.send("/t/a", 1)
        wait_until(lambda: scrape(port)["nerve_events_accepted_total"] >= before + 5,
                   what="the accepted counter to move")


class RegistersAcrossReload(ManagerTest):
    rules_text = Durability.rules_text

    def test_register_state_survives_a_reload(self):
        bus = self.start_manager()
        bus.send("/t/sum", 10, host="r1")
        bus.send("/t/sum", 10, host="r1")
        bus.barrier()
        self.assertEqual(bus.control("reload")[0], "ok")
        bus.send("/t/sum", 10, host="r1")
        _, p = bus.wait_for(is_event("/out/sum"))
        self.assertEqual(p["data"]["total"], 30)


class Scheduling(ManagerTest):
    @normal_scheduling_only
    def test_threads_run_batch_scheduled_unless_configured_normal(self):
        """Every thread (engine, libzmq's, regstore, workers) inherits
        SCHED_BATCH from main(); `--scheduling normal` leaves them as
        started."""
        self.start_manager()
        got = thread_policies(self.manager.proc.pid)
        self.assertTrue(any(n.startswith("regstore/") for n in got), got)
        self.assertTrue(any(n.startswith("ZMQbg/") for n in got), got)
        self.assertEqual(set(got.values()), {os.SCHED_BATCH}, got)

        self.extra = ["--scheduling", "normal"]
        self.restart_manager()
        got = thread_policies(self.manager.proc.pid)
        self.assertEqual(set(got.values()), {os.SCHED_OTHER}, got)


if __name__ == "__main__":
    main()
