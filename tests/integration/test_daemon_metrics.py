"""Every daemon serves Prometheus text on `metrics:`: the actor and beacond
(the manager's and publisher's are tested with them). Real processes on IPC
endpoints in a temp dir; the manager side is not needed for their counters
to move (heartbeats queue, probes run)."""
import os
import shutil
import tempfile
import unittest

from nervetest import BUILD, Daemon, free_port, main, scrape, wait_until





class DaemonMetrics(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="nerve-metrics-")
        os.chmod(self.dir, 0o700)
        os.makedirs(os.path.join(self.dir, "run"), mode=0o700)
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            d.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, name, argv):
        d = Daemon(name, argv, self.dir, env={"NERVE_HOME": self.dir}).start()
        self.daemons.append(d)
        return d

    def test_actor_counts_heartbeats(self):
        port = free_port()
        run = os.path.join(self.dir, "run")
        d = self.start("actor", [os.path.join(BUILD, "nerve-actor"), "--id", "m1",
                                 "--publisher", "ipc://%s/pub.sock" % run,
                                 "--manager", "ipc://%s/events.sock" % run,
                                 "--heartbeat", "1s", "--metrics", "127.0.0.1:%d" % port])
        m = wait_until(lambda: (lambda v: v if v and v.get("nerve_actor_heartbeats_total", 0) >= 1
                                else None)(scrape(port)), what="actor metrics\n" + d.output())
        self.assertEqual(m["nerve_actor_reactions_received_total"], 0)
        self.assertIn('nerve_actor_reactions_malformed_total{reason="topic_invalid"}', m)

    def test_beacond_counts_probe_runs(self):
        port = free_port()
        cfg = os.path.join(self.dir, "beacond.yaml")
        with open(cfg, "w") as f:
            f.write("manager: ipc://%s/run/events.sock\nhost: m1\n"
                    "beacons:\n  - fn: beacons.load.avg\n    interval: 1s\n" % self.dir)
        d = self.start("beacond", [os.path.join(BUILD, "nerve-beacond"), "-c", cfg,
                                   "--metrics", "127.0.0.1:%d" % port])
        m = wait_until(lambda: (lambda v: v if v and v.get("nerve_beacond_runs_total", 0) >= 2
                                else None)(scrape(port)), what="beacond metrics\n" + d.output())
        self.assertEqual(m["nerve_beacond_beacons"], 1)
        self.assertEqual(m["nerve_beacond_failures_total"], 0)


if __name__ == "__main__":
    main()
