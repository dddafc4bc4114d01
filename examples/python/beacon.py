#!/usr/bin/env python3
"""Send nerve events from Python: the wire protocol v1 (DESIGN.md) in a page.

    usage: beacon.py ENDPOINT TAG [VALUE]     beacon.py tcp://manager:7450 /app/deploys 1

An event is two ZeroMQ frames on a PUSH socket: the tag, and a msgpack map
{v: 1, id: 16 random bytes, ts: ns since the epoch, host, data}. Needs pyzmq
and msgpack (Debian: python3-zmq python3-msgpack).
"""
import os, socket, sys, time
import msgpack, zmq


class Beacon:
    def __init__(self, endpoint, host=None, hwm=10000):
        self.host = host or socket.gethostname()
        self.ctx = zmq.Context()
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, hwm)      # bounded queue while the manager is away
        self.push.setsockopt(zmq.LINGER, 2000)     # close() waits up to 2 s to deliver
        self.push.connect(endpoint)

    def send(self, tag, data):
        """Queues one event; returns False (dropped) if the queue is full. Never blocks."""
        if not tag.startswith("/") or not 0 < len(tag.encode()) <= 255 or "\0" in tag:
            raise ValueError("bad tag %r: 1-255 bytes starting with /" % tag)
        payload = msgpack.packb({"v": 1, "id": os.urandom(16), "ts": time.time_ns(),
                                 "host": self.host, "data": data}, use_bin_type=True)
        try:
            self.push.send_multipart([tag.encode(), payload], flags=zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def close(self):
        self.push.close()
        self.ctx.term()


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.split("\n\n")[1])
    beacon = Beacon(sys.argv[1])
    value = float(sys.argv[3]) if len(sys.argv) == 4 else 1
    sent = beacon.send(sys.argv[2], {"value": value})
    beacon.close()
    sys.exit(0 if sent else 1)
