"""nerve-publisher end to end: relays two-frame reactions untouched to the
subscribers whose topics match, drops malformed messages and counts them,
and reports both on its control socket and /metrics. Its TCP output is
CURVE: the subscribers here hold a keypair in its keys directory and pin
its public key."""
import os
import shutil
import signal
import tempfile
import unittest
import urllib.request

import msgpack
import zmq

from nervetest import (BUILD, Daemon, curve_client, free_port, keys_dir, main,
                       normal_scheduling_only, thread_policies, wait_until,
                       write_keypair)


class Publisher(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="nerve-pub-")
        os.chmod(self.dir, 0o700)
        run = os.path.join(self.dir, "run")
        self.input = "ipc://%s/publisher.sock" % run
        self.output = "tcp://127.0.0.1:%d" % free_port()
        self.control = "ipc://%s/publisher-control.sock" % run
        self.metrics = free_port()
        self.keys = keys_dir(self.dir)
        for name in ("publisher", "sub"):  # before it starts: its ZAP handler trusts them
            write_keypair(self.keys, name)
        self.pub = Daemon("publisher", [os.path.join(BUILD, "nerve-publisher"),
                                        "--input", self.input, "--output", self.output,
                                        "--control", self.control,
                                        "--metrics", "127.0.0.1:%d" % self.metrics],
                          self.dir, env={"NERVE_HOME": self.dir}).start()
        self.ctx = zmq.Context()

    def tearDown(self):
        self.ctx.destroy(linger=0)
        rc = self.pub.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.assertEqual(rc, 0, self.pub.output())

    def status(self):
        s = self.ctx.socket(zmq.DEALER)
        s.connect(self.control)
        s.send_multipart([b"status", msgpack.packb({})])
        self.assertTrue(s.poll(5000), "publisher control did not answer")
        ok, body = s.recv_multipart()
        s.close(linger=0)
        self.assertEqual(ok, b"ok")
        return msgpack.unpackb(body)

    def test_relays_by_topic_untouched_and_counts_drops(self):
        web1 = curve_client(self.ctx.socket(zmq.SUB), self.keys, "sub", "publisher")
        web1.setsockopt(zmq.SUBSCRIBE, b"@host/web1/")
        web1.connect(self.output)
        web10 = curve_client(self.ctx.socket(zmq.SUB), self.keys, "sub", "publisher")
        web10.setsockopt(zmq.SUBSCRIBE, b"@host/web10/")
        web10.connect(self.output)
        wait_until(lambda: self.pub.alive() and os.path.exists(self.control[6:]),
                   what="publisher control socket")
        wait_until(lambda: self.status()["subscriptions"] >= 2, what="two subscriptions")
        push = self.ctx.socket(zmq.PUSH)
        push.connect(self.input)
        payload = msgpack.packb({"v": 1, "fn": "reactions.cmd.run", "blob": b"\x00\xff"})
        push.send_multipart([b"@host/web1/", payload])
        push.send_multipart([b"@host/web1/", payload, b"third frame"])
        push.send_multipart([b"only one frame"])
        self.assertTrue(web1.poll(5000))
        self.assertEqual(web1.recv_multipart(), [b"@host/web1/", payload])
        self.assertFalse(web10.poll(300), "@host/web1/ reached web10")
        wait_until(lambda: self.status()["dropped"] == 2, what="two drops counted")
        st = self.status()
        self.assertEqual(st["relayed"], 1)
        self.assertEqual(st["daemon"], "nerve-publisher")
        self.assertEqual(st["security"]["mode"], "curve")
        self.assertFalse(st["insecure"])
        self.assertGreaterEqual(st["security"]["admitted"], 2)

        def metrics():
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics) as r:
                return r.read().decode()
        wait_until(lambda: "nerve_publisher_dropped_total 2" in metrics(),
                   what="drops in /metrics")
        self.assertIn("nerve_publisher_relayed_total 1", metrics())

    def test_sighup_is_logged_and_changes_nothing(self):
        """systemd and ops scripts send SIGHUP to every nerve daemon: the
        publisher must keep running and relaying (it used to die)."""
        sub = curve_client(self.ctx.socket(zmq.SUB), self.keys, "sub", "publisher")
        sub.setsockopt(zmq.SUBSCRIBE, b"@all/")
        sub.connect(self.output)
        wait_until(lambda: self.pub.alive() and os.path.exists(self.control[6:]),
                   what="publisher control socket")
        wait_until(lambda: self.status()["subscriptions"] >= 1, what="a subscription")
        self.pub.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "nothing to reload" in self.pub.output(), what="SIGHUP logged")
        self.assertTrue(self.pub.alive(), self.pub.output())
        push = self.ctx.socket(zmq.PUSH)
        push.connect(self.input)
        push.send_multipart([b"@all/", b"\x80"])
        self.assertTrue(sub.poll(5000), "nothing relayed after SIGHUP")
        self.assertEqual(sub.recv_multipart(), [b"@all/", b"\x80"])
        self.assertEqual(self.status()["relayed"], 1)

    @normal_scheduling_only
    def test_threads_run_batch_scheduled_and_a_bad_policy_is_refused(self):
        wait_until(lambda: self.pub.alive() and os.path.exists(self.control[6:]),
                   what="publisher control socket")
        self.status()  # ready: its I/O threads exist
        got = thread_policies(self.pub.proc.pid)
        self.assertTrue(any(n.startswith("ZMQbg/") for n in got), got)
        self.assertEqual(set(got.values()), {os.SCHED_BATCH}, got)
        bad = Daemon("publisher-bad", [os.path.join(BUILD, "nerve-publisher"),
                                       "--scheduling", "fifo"], self.dir,
                     env={"NERVE_HOME": self.dir}).start()
        self.addCleanup(bad.stop)
        self.assertEqual(bad.proc.wait(10), 2)
        self.assertIn("--scheduling: expected batch or normal", bad.output())
        conf = os.path.join(self.dir, "publisher.yaml")
        with open(conf, "w") as f:
            f.write("hwm: 5000\nscheduling: fifo\n")
        bad = Daemon("publisher-bad-conf", [os.path.join(BUILD, "nerve-publisher"), "-c", conf],
                     self.dir, env={"NERVE_HOME": self.dir}).start()
        self.addCleanup(bad.stop)
        self.assertEqual(bad.proc.wait(10), 2)
        self.assertIn("%s:2:13: scheduling must be batch or normal" % conf, bad.output())


if __name__ == "__main__":
    main()
