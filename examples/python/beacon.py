#!/usr/bin/env python3
"""Send nerve events from Python: the wire protocol v1 (docs/protocol.md), CURVE included.

    beacon.py [--client-key KEY] [--server-key KEY] [--keys DIR] [--insecure]
              ENDPOINT TAG [VALUE]        (--help says more)

An event is two ZeroMQ frames on a PUSH socket: the tag, and a msgpack map
{v: 1, id: 16 random bytes, ts: ns since the epoch, host, data}. Over TCP the
socket is a CURVE client, as every nerve client is (docs/security.md): it pins
the manager's public key and presents a keypair the manager has accepted, both
czmq zcert files as `nerve keys gen` writes them. Needs pyzmq and msgpack
(Debian: python3-zmq python3-msgpack).
"""
import argparse, errno, os, socket, sys, time
import msgpack, zmq, zmq.auth, zmq.utils.z85
from zmq.utils.monitor import parse_monitor_message

Z85 = zmq.utils.z85.Z85CHARS


def check_tag(tag):
    if not tag.startswith("/") or not 0 < len(tag.encode()) <= 255 or "\0" in tag:
        raise ValueError("bad tag %r: 1-255 bytes starting with /" % tag)


class Beacon:
    def __init__(self, endpoint, server_key=None, keypair=None, host=None, hwm=10000):
        """server_key (the manager's public key) and keypair ((public, secret)),
        Z85 bytes as load_key() returns them, make the socket a CURVE client."""
        self.host = host or socket.gethostname()
        self.ctx = zmq.Context()
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, hwm)      # bounded queue while the manager is away
        self.push.setsockopt(zmq.LINGER, 2000)     # close() waits up to 2 s to deliver
        if server_key:
            self.push.curve_serverkey = server_key  # pinned: no other server can finish the handshake
            self.push.curve_publickey, self.push.curve_secretkey = keypair
        self.monitor = self.push.get_monitor_socket(
            zmq.EVENT_CONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED |
            zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
        self.push.connect(endpoint)

    def wait_handshake(self, timeout):
        """Waits for the manager's answer: 'ok'; 'refused' (it does not know our
        key); 'failed' (a protocol error); 'silent' (connected, but no handshake:
        the server holds another key than the one pinned, or is not a manager);
        'timeout' (not even connected). libzmq never retries a refused handshake,
        so a long-running sender that was refused makes a new Beacon later."""
        deadline, connected = time.monotonic() + timeout, False
        while self.monitor.poll(max(0, int((deadline - time.monotonic()) * 1000))):
            event = parse_monitor_message(self.monitor.recv_multipart())["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                return "ok"
            if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                return "refused"
            if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                return "failed"
            connected = True
        return "silent" if connected else "timeout"

    def send(self, tag, data):
        """Queues one event; returns False (dropped) if the queue is full. Never blocks."""
        check_tag(tag)
        payload = msgpack.packb({"v": 1, "id": os.urandom(16), "ts": time.time_ns(),
                                 "host": self.host, "data": data}, use_bin_type=True)
        try:
            self.push.send_multipart([tag.encode(), payload], flags=zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def close(self):
        self.push.disable_monitor()
        self.monitor.close()
        self.push.close()
        self.ctx.term()


def keys_dir():
    """Where the C side keeps keys: $NERVE_HOME/keys, $NERVE_HOME defaulting to
    /var/lib/nerve for root and ~/.nerve for anyone else."""
    home = os.environ.get("NERVE_HOME") or (
        "/var/lib/nerve" if os.geteuid() == 0 else os.path.expanduser("~/.nerve"))
    return os.path.join(home, "keys")


def load_key(key, keys, secret):
    """(public, secret) Z85 bytes from a zcert file: `key` is a path, or a name
    in `keys` (NAME.secret for our keypair, NAME.pub for the manager's key).
    Raises ValueError saying what is wrong with which file."""
    path = key if "/" in key else os.path.join(keys, key + (".secret" if secret else ".pub"))
    try:
        mode = os.stat(path).st_mode
        public, secret_key = zmq.auth.load_certificate(path)
    except OSError as e:
        hint = ""
        if e.errno == errno.ENOENT and "/" not in key:
            hint = (" (make it: `nerve keys gen %s --keys %s`, then accept it on the manager)"
                    % (key, keys) if secret else " (copy the manager's %s.pub there)" % key)
        raise ValueError("%s: %s%s" % (path, e.strerror, hint)) from None
    except ValueError:  # no public-key line
        public = secret_key = None
    for k in (public, secret_key) if secret else (public,):
        if not k or len(k) != 40 or not all(c in Z85 for c in k):
            raise ValueError("%s: no CURVE %s key in zcert format" %
                             (path, "secret" if secret else "public"))
    if secret and mode & 0o077:  # as the C side: a secret others can read is refused
        raise ValueError("%s: secret key readable by group or others (mode %03o); chmod 600 "
                         "it and consider the key exposed" % (path, mode & 0o777))
    return public, secret_key


def main():
    p = argparse.ArgumentParser(
        description="Send one event {value: VALUE} to nerve-manager.",
        epilog="On tcp:// the link is CURVE: KEY is a name in the keys directory "
               "(default $NERVE_HOME/keys) or a zcert file's path. ipc:// never uses "
               "CURVE. Exit 0 sent, 1 dropped or refused, 2 bad usage or key file, "
               "3 no manager answered.")
    p.add_argument("endpoint", help="the manager's events endpoint, e.g. tcp://manager:7450")
    p.add_argument("tag", help="e.g. /app/deploys")
    p.add_argument("value", nargs="?", type=float, default=1, help="default 1")
    p.add_argument("--server-key", metavar="KEY", default="manager",
                   help="the manager's public key to pin (default: manager, its manager.pub)")
    p.add_argument("--client-key", metavar="KEY", default="beacon",
                   help="this program's keypair (default: beacon, its beacon.secret)")
    p.add_argument("--keys", metavar="DIR", default=keys_dir(), help="the keys directory")
    p.add_argument("--insecure", action="store_true",
                   help="no CURVE on TCP: only for a manager that runs insecure: true")
    p.add_argument("--host", help="the event's host (default: this machine's name)")
    p.add_argument("--timeout", metavar="S", type=float, default=5,
                   help="seconds to wait for the manager (default 5)")
    a = p.parse_args()
    try:
        check_tag(a.tag)
    except ValueError as e:
        p.exit(2, "beacon.py: %s\n" % e)

    server_key = keypair = None
    if a.endpoint.startswith(("ipc://", "inproc://")):
        pass  # the socket directory's permissions are the access control
    elif a.insecure:
        print("beacon.py: --insecure: CURVE is off; the event goes unencrypted to whoever "
              "listens at %s" % a.endpoint, file=sys.stderr)
    else:
        try:
            keypair = load_key(a.client_key, a.keys, secret=True)
            server_key = load_key(a.server_key, a.keys, secret=False)[0]
        except ValueError as e:
            p.exit(2, "beacon.py: %s\n" % e)
    try:
        beacon = Beacon(a.endpoint, server_key, keypair, host=a.host)
    except zmq.ZMQError as e:
        p.exit(2, "beacon.py: %s: %s\n" % (a.endpoint, e))
    try:
        answer = beacon.wait_handshake(a.timeout)
        if answer == "timeout":
            print("beacon.py: no manager answered at %s within %gs" % (a.endpoint, a.timeout),
                  file=sys.stderr)
            sys.exit(3)
        if answer != "ok":
            if a.insecure:
                why = "it runs CURVE: leave out --insecure"
            elif answer == "refused" and keypair:
                why = ("it does not know this key: on its host, `nerve keys accept %s` lets it in"
                       % zmq.utils.z85.decode(keypair[0])[:6].hex())
            else:
                why = "it does not hold the key pinned for it (%s), or does not run CURVE" % (
                    a.server_key)
            sys.exit("beacon.py: the manager at %s refused the connection: %s" % (a.endpoint, why))
        sys.exit(0 if beacon.send(a.tag, {"value": a.value}) else 1)
    finally:
        beacon.close()


if __name__ == "__main__":
    main()
