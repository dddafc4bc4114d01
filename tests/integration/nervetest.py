"""nervetest — starts real nerve daemons for integration tests.

Every daemon runs on IPC endpoints in a fresh temp directory (or TCP ports
the OS picks), readiness is awaited by asking (the control socket answers, a
probe event comes back on the tap), never by sleeping, and everything is
stopped and removed at the end. Run by ctest under Debian's /usr/bin/python3
(python3-zmq, python3-msgpack).
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import uuid

import msgpack
import zmq

BUILD = os.environ.get("NERVE_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
SOURCE = os.environ.get("NERVE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
MODULES = os.environ.get("NERVE_MODULE_BUILD_DIR", os.path.join(BUILD, "modules"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def event_payload(tag, data, host="test", hops=None, ts=None, eid=None):
    m = {"v": 1, "id": eid or uuid.uuid4().bytes, "ts": ts or time.time_ns(),
         "host": host, "data": data}
    if hops is not None:
        m["hops"] = hops
    return [tag.encode(), msgpack.packb(m, use_bin_type=True)]


def unpack(frames):
    """(routing frame as str, payload as dict) from a tap message."""
    return frames[0].decode(errors="replace"), msgpack.unpackb(frames[1], raw=False)


def wait_until(pred, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out waiting for " + what)


class Daemon:
    """A nerve process with its log captured to a file."""

    def __init__(self, name, argv, workdir, env=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(workdir, name + ".log")
        self.env = dict(os.environ, **(env or {}))
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=self.env)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def output(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""


class Manager(Daemon):
    def __init__(self, workdir, rules, modules=None, extra=None, data=None, ident="mgr"):
        self.dir = workdir
        run = os.path.join(workdir, "run")
        os.makedirs(run, mode=0o700, exist_ok=True)
        self.events = "ipc://%s/events.sock" % run
        self.publisher = "ipc://%s/publisher.sock" % run
        self.control_ep = "ipc://%s/control.sock" % run
        self.tap = "ipc://%s/tap.sock" % run
        self.data = data or os.path.join(workdir, "data")
        self.rules = rules
        argv = [os.path.join(BUILD, "nerve-manager"), "--events", self.events,
                "--publisher", self.publisher, "--control", self.control_ep,
                "--tap", self.tap, "--rules", rules, "--data", self.data, "--id", ident]
        for m in (modules or [MODULES]):
            argv += ["--modules", m]
        argv += extra or []
        super().__init__("manager", argv, workdir, env={"NERVE_HOME": workdir})


class Bus:
    """The test's side of a manager: a PUSH to events, a SUB on the tap, a
    DEALER on control."""

    def __init__(self, manager):
        self.m = manager
        self.ctx = zmq.Context()
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 1000)
        self.push.connect(manager.events)
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(manager.tap)
        self.seen = []

    def close(self):
        self.ctx.destroy(linger=0)

    def control(self, verb, args=None, timeout=5.0):
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(self.m.control_ep)
        try:
            s.send_multipart([verb.encode(), msgpack.packb(args or {}, use_bin_type=True)])
            if not s.poll(int(timeout * 1000)):
                raise AssertionError("control %s: no answer" % verb)
            status, body = s.recv_multipart()
            return status.decode(), msgpack.unpackb(body, raw=False)
        finally:
            s.close()

    def wait_ready(self, timeout=15.0):
        """The control socket answers, and a probe event comes back on the tap
        (so the tap subscription is live)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.m.alive():
                raise AssertionError("manager exited:\n" + self.m.output())
            try:
                status, _ = self.control("status", timeout=0.5)
                if status == "ok":
                    break
            except AssertionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("manager not ready:\n" + self.m.output())
        probe = "/nerve/test/probe/" + uuid.uuid4().hex
        while True:
            self.send(probe, {"value": 0})
            if self.sub.poll(100):
                got = self.drain(0.05)
                if any(t == probe for t, _ in got):
                    return
            if time.monotonic() > deadline:
                raise AssertionError("tap not live:\n" + self.m.output())

    def send(self, tag, data, host="test", hops=None, ts=None):
        self.push.send_multipart(event_payload(tag, data, host=host, hops=hops, ts=ts))

    def send_raw(self, frames):
        self.push.send_multipart(frames)

    def drain(self, wait=0.0):
        out = []
        while self.sub.poll(int(wait * 1000)):
            out.append(unpack(self.sub.recv_multipart()))
            wait = 0
        self.seen.extend(out)
        return out

    def wait_for(self, pred, timeout=10.0, what="a tap message"):
        """Returns the first tap message (topic, payload) for which pred is true,
        looking at what was already seen first."""
        for msg in self.seen:
            if pred(*msg):
                self.seen.remove(msg)
                return msg
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sub.poll(50):
                msg = unpack(self.sub.recv_multipart())
                if pred(*msg):
                    return msg
                self.seen.append(msg)
        raise AssertionError("timed out waiting for " + what + "; seen: " +
                             repr([t for t, _ in self.seen][-20:]) + "\nmanager log:\n" +
                             self.m.output()[-3000:])

    def expect_none(self, pred, within=0.5):
        """Asserts no tap message matching pred arrives within `within` s."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.sub.poll(20):
                msg = unpack(self.sub.recv_multipart())
                if pred(*msg):
                    raise AssertionError("unexpected tap message: %r" % (msg,))
                self.seen.append(msg)
        for msg in self.seen:
            if pred(*msg):
                raise AssertionError("unexpected tap message: %r" % (msg,))

    def barrier(self):
        """Every event sent before this call has been processed when it returns
        (events are handled in order; a probe sent now comes back last)."""
        probe = "/nerve/test/barrier/" + uuid.uuid4().hex
        self.send(probe, {"value": 0})
        self.wait_for(lambda t, p: t == probe, what="barrier " + probe)


class ManagerTest(unittest.TestCase):
    """Base: a temp dir, a manager on it, a bus; torn down after each test."""

    rules_text = None   # YAML of one rules file, or None for no rules
    extra = None

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="nerve-it-")
        os.chmod(self.dir, 0o700)
        self.rules_dir = os.path.join(self.dir, "rules")
        os.makedirs(self.rules_dir)
        if self.rules_text:
            self.write_rules("rules.yaml", self.rules_text)
        self.manager = None
        self.bus = None

    def write_rules(self, name, text):
        path = os.path.join(self.rules_dir, name)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, path)
        return path

    def start_manager(self, **kw):
        self.manager = Manager(self.dir, self.rules_dir, extra=self.extra, **kw).start()
        self.bus = Bus(self.manager)
        self.bus.wait_ready()
        return self.bus

    def restart_manager(self, sig=signal.SIGTERM, **kw):
        self.bus.close()
        self.manager.stop(sig)
        return self.start_manager(**kw)

    def tearDown(self):
        if self.bus:
            self.bus.close()
        if self.manager:
            rc = self.manager.stop()
            if self._outcome_ok() and rc not in (0, None, -9):
                raise AssertionError("manager exited %s:\n%s" % (rc, self.manager.output()))
        shutil.rmtree(self.dir, ignore_errors=True)

    def _outcome_ok(self):
        return True


def is_event(tag):
    return lambda t, p: t == tag


def main():
    unittest.main(verbosity=2)


# --------------------------------------------------------------------------
# Reaction delivery: the publisher and actors (appended for nerve-actor).
# --------------------------------------------------------------------------

def _control(ctx, endpoint, verb, timeout=1.0):
    """One request on a daemon's control socket: (status, body) or None."""
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    try:
        s.send_multipart([verb.encode(), msgpack.packb({}, use_bin_type=True)])
        if not s.poll(int(timeout * 1000)):
            return None
        status, body = s.recv_multipart()[-2:]
        return status.decode(), msgpack.unpackb(body, raw=False)
    finally:
        s.close()


class Publisher(Daemon):
    """nerve-publisher between a Manager (its publisher IPC endpoint) and
    actors (a TCP port the OS picked). Restartable on the same endpoints."""

    def __init__(self, workdir, manager, output=None):
        run = os.path.join(workdir, "run")
        self.input = manager.publisher
        self.output = output or "tcp://127.0.0.1:%d" % free_port()
        self.control_ep = "ipc://%s/publisher-control.sock" % run
        argv = [os.path.join(BUILD, "nerve-publisher"), "--input", self.input,
                "--output", self.output, "--control", self.control_ep]
        super().__init__("publisher", argv, workdir, env={"NERVE_HOME": workdir})

    def status(self, ctx, timeout=1.0):
        got = _control(ctx, self.control_ep, "status", timeout)
        return got[1] if got and got[0] == "ok" else None

    def wait_subscriptions(self, ctx, count, timeout=15.0):
        """Waits until `count` subscriptions reached the publisher (each
        actor makes 2 + one per group)."""
        def enough():
            if not self.alive():
                raise AssertionError("publisher exited:\n" + self.output())
            st = self.status(ctx, timeout=0.5)
            return st is not None and st.get("subscriptions", 0) >= count
        wait_until(enough, timeout=timeout, interval=0.05,
                   what="%d subscriptions at the publisher" % count)


class Actor(Daemon):
    """nerve-actor run from a YAML config file written into the temp dir."""

    def __init__(self, workdir, ident, groups, publisher, manager, allow=None,
                 heartbeat="1s", modules=None, extra_config=None):
        import json
        self.ident = ident
        self.groups = list(groups)
        self.config_path = os.path.join(workdir, "actor-%s.yaml" % ident)
        allow = allow or {}
        lines = ["id: %s" % json.dumps(ident),
                 "groups: %s" % json.dumps(self.groups),
                 "publisher: %s" % json.dumps(publisher),
                 "manager: %s" % json.dumps(manager),
                 "modules: %s" % json.dumps(modules or [MODULES]),
                 "heartbeat: %s" % heartbeat,
                 "allow:"]
        for kind in ("commands", "services", "paths"):
            lines.append("  %s: %s" % (kind, json.dumps(list(allow.get(kind, [])))))
        lines += extra_config or []
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        argv = [os.path.join(BUILD, "nerve-actor"), "-c", self.config_path]
        super().__init__("actor-" + ident, argv, workdir, env={"NERVE_HOME": workdir})

    def topics(self):
        return 2 + len(self.groups)
