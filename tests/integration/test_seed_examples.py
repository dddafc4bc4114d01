"""The seed's two rules examples, loaded verbatim from examples/rules/, with
the seed's reactions.cloud.scale_up built out of tree from examples/modules/
against an installed nerve (pkg-config), as an operator would."""
import os
import shutil
import subprocess
import tempfile
import unittest

from nervetest import BUILD, MODULES, SOURCE, ManagerTest, is_event, main

_prefix_dir = None
_operator_modules = None


def setUpModule():
    global _prefix_dir, _operator_modules
    _prefix_dir = tempfile.mkdtemp(prefix="nerve-seed-")
    prefix = os.path.join(_prefix_dir, "prefix")
    subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], check=True,
                   stdout=subprocess.DEVNULL)
    pcdirs = [os.path.join(root) for root, _, files in os.walk(prefix) if "nerve.pc" in files]
    assert pcdirs, "nerve.pc not installed"
    env = dict(os.environ, PKG_CONFIG_PATH=pcdirs[0])
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "nerve"], env=env, check=True,
                           capture_output=True, text=True).stdout.split()
    _operator_modules = os.path.join(_prefix_dir, "operator-modules")
    out = os.path.join(_operator_modules, "reactions")
    os.makedirs(out, mode=0o755)
    os.chmod(_operator_modules, 0o755)
    subprocess.run(["cc", "-shared", "-fPIC", "-Wall", "-Werror", "-o",
                    os.path.join(out, "cloud.so"),
                    os.path.join(SOURCE, "examples/modules/cloud.c")] + flags, check=True)
    os.chmod(os.path.join(out, "cloud.so"), 0o755)


def tearDownModule():
    shutil.rmtree(_prefix_dir, ignore_errors=True)


class SeedExample(ManagerTest):
    example = None

    def setUp(self):
        super().setUp()
        shutil.copy(os.path.join(SOURCE, "examples/rules", self.example),
                    os.path.join(self.rules_dir, self.example))

    def start(self):
        return self.start_manager(modules=[_operator_modules, MODULES])


class SeedSingle(SeedExample):
    example = "seed_single.yaml"

    def test_average_above_20_turns_down_the_lb_and_scales_up(self):
        bus = self.start()
        bus.send("/client/load/web2", 10, host="web2")
        bus.barrier()
        bus.expect_none(is_event("/reconfig/lb"), within=0.3)

        bus.send("/client/load/web1", {"value": 30}, host="web1")
        _, lb = bus.wait_for(is_event("/reconfig/lb"))
        self.assertEqual(lb["data"], {"turn_down_the_hose": "originating_host"})
        self.assertEqual(lb["hops"], 1)
        _, up = bus.wait_for(is_event("/cloud/scale_up"))
        self.assertEqual(up["data"]["machine_id"], "originating_host")
        results = [bus.wait_for(lambda t, p: t.startswith("/nerve/result/"))[1]
                   for _ in range(2)]
        fns = sorted(r["data"]["fn"] for r in results)
        self.assertEqual(fns, ["reactions.cloud.scale_up", "reactions.eventer.fire_event"])
        self.assertTrue(all(r["data"]["ok"] for r in results), results)

    def test_the_average_is_over_the_period_per_host(self):
        bus = self.start()
        bus.send("/client/load/web3", 30, host="web3")
        bus.wait_for(is_event("/reconfig/lb"))
        # web4's own average stays at 12: web3's load does not count for it.
        bus.send("/client/load/web4", 12, host="web4")
        bus.barrier()
        bus.expect_none(is_event("/reconfig/lb"), within=0.3)
        # web3: avg(30, 0) = 15, under the threshold.
        bus.send("/client/load/web3", 0, host="web3")
        bus.barrier()
        bus.expect_none(is_event("/reconfig/lb"), within=0.3)


class SeedChain(SeedExample):
    example = "seed_chain.yaml"

    def test_both_rules_fire_on_high_load_and_neither_on_low(self):
        bus = self.start()
        bus.send("/client/load/db1", 5, host="db1")
        bus.barrier()
        bus.expect_none(is_event("/reconfig/lb"), within=0.3)
        bus.send("/client/load/db2", 50, host="db2")
        for _ in range(2):
            _, p = bus.wait_for(is_event("/reconfig/lb"))
            self.assertEqual(p["data"], {"some_reconfig_data": "dummy_data"})
        _, st = bus.control("status")
        # Two /client/load events, two rules each: io_avg is evaluated once
        # per event although load_avg's chain names it too.
        self.assertEqual(st["rules"]["evaluated"], 4)
        _, rules = bus.control("rules.list")
        by = {r["name"]: r for r in rules}
        self.assertEqual(by["io_avg"]["evaluated"], 2)
        self.assertEqual(by["load_avg"]["evaluated"], 2)
        self.assertEqual(by["load_avg"]["fired"], 1)
        self.assertEqual(by["load_avg"]["chain"], ["OR io_avg"])


if __name__ == "__main__":
    main()
