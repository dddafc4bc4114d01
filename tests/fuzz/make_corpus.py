#!/usr/bin/python3
"""make_corpus.py — writes the fuzz_wire seed corpus into corpus/wire/.

Each seed is one fuzz_wire input (see the layout at the top of
fuzz_wire.c): a mode byte, a tag-length byte, the tag or topic, then the
msgpack payload. Valid events and reactions give the fuzzer the shape of
real traffic; one malformed seed per decoder reason gives it a head start
on every error path. Payloads are made with Python's msgpack, the same
library a Python client uses, so the seeds are also the bytes such a
client sends.

Run with Debian's python3 (python3-msgpack): tests/fuzz/make_corpus.py.
The files are committed; rerun only when the wire protocol changes.
"""
import os
import shutil

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "wire")

EVENT, REACTION = 0, 1
TWO_FRAMES = 3 << 1  # frame-count code for two frames
RESULT = 0x10

ID = bytes(range(16))
TS = 1700000000123456789


def seed(mode, tag, payload):
    tag = tag.encode() if isinstance(tag, str) else tag
    assert len(tag) < 256
    return bytes([mode, len(tag)]) + tag + payload


def event(**over):
    m = {"v": 1, "id": ID, "ts": TS, "host": "web1", "data": {"value": 1.5}}
    for k, v in over.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    return m


def reaction(**over):
    m = {
        "v": 1, "id": ID, "fn": "reactions.cmd.run", "args": {"cmd": "uptime"},
        "rule": "load_avg",
        "event": {"tag": "/client/load/web1", "id": ID, "host": "web1"},
        "ts": TS, "deadline": TS + 60 * 10**9,
    }
    for k, v in over.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    return m


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def main():
    seeds = {}
    ev, re = EVENT | TWO_FRAMES, REACTION | TWO_FRAMES
    tag = "/client/load/web1"

    # Valid events.
    seeds["event_map"] = seed(ev, tag, pack(event()))
    seeds["event_number"] = seed(ev, tag, pack(event(data=42)))
    seeds["event_string"] = seed(ev, tag, pack(event(data="up")))
    seeds["event_nil"] = seed(ev, tag, pack({**event(), "data": None}))
    seeds["event_nested"] = seed(ev, "/disk/usage", pack(event(data={
        "value": 0.93, "mounts": [{"path": "/", "free": 1 << 40}, {"path": "/var"}],
        "ok": True, "raw": b"\x00\x01", "neg": -5, "f32": 0.5})))
    seeds["event_hops"] = seed(ev, tag, pack(event(hops=3)))
    seeds["event_unknown_keys"] = seed(ev, tag, pack(event(future=[1, 2], extra={"a": 1})))
    seeds["event_utf8_tag"] = seed(ev, "/café/日本/😀", pack(event()))
    seeds["event_long_tag"] = seed(ev, "/" + "a" * 254, pack(event()))

    # Malformed events, one per reason.
    seeds["event_frames_1"] = seed(EVENT | (1 << 1), tag, pack(event()))
    seeds["event_frames_3"] = seed(EVENT | (2 << 1), tag, pack(event()))
    seeds["event_tag_empty"] = seed(ev, "", pack(event()))
    seeds["event_tag_no_slash"] = seed(ev, "client/load", pack(event()))
    seeds["event_tag_nul"] = seed(ev, b"/client\x00/load", pack(event()))
    seeds["event_tag_utf8_overlong"] = seed(ev, b"/\xc0\xaf", pack(event()))
    seeds["event_tag_utf8_surrogate"] = seed(ev, b"/\xed\xa0\x80", pack(event()))
    seeds["event_tag_utf8_truncated"] = seed(ev, b"/\xe6\x97", pack(event()))
    seeds["event_truncated"] = seed(ev, tag, pack(event())[:-3])
    seeds["event_huge_array"] = seed(ev, tag, b"\xdd\xff\xff\xff\xff")
    seeds["event_invalid_byte"] = seed(ev, tag, b"\x81\xa1v\xc1")
    seeds["event_trailing"] = seed(ev, tag, pack(event()) + b"\xc0")
    seeds["event_not_map"] = seed(ev, tag, pack([1, 2, 3]))
    deep = 1
    for _ in range(40):
        deep = [deep]
    seeds["event_too_deep"] = seed(ev, tag, pack(event(data=deep)))
    seeds["event_v_missing"] = seed(ev, tag, pack(event(v=None)))
    seeds["event_v_type"] = seed(ev, tag, pack(event(v="1")))
    seeds["event_v_unsupported"] = seed(ev, tag, pack(event(v=2)))
    seeds["event_id_missing"] = seed(ev, tag, pack(event(id=None)))
    seeds["event_id_type"] = seed(ev, tag, pack(event(id=ID[:15])))
    seeds["event_ts_missing"] = seed(ev, tag, pack(event(ts=None)))
    seeds["event_ts_type"] = seed(ev, tag, pack(event(ts=-1)))
    seeds["event_host_missing"] = seed(ev, tag, pack(event(host=None)))
    seeds["event_host_type"] = seed(ev, tag, pack(event(host=b"web1")))
    seeds["event_host_empty"] = seed(ev, tag, pack(event(host="")))
    seeds["event_host_long"] = seed(ev, tag, pack(event(host="h" * 256)))
    seeds["event_data_missing"] = seed(ev, tag, pack(event(data=None)))
    seeds["event_hops_type"] = seed(ev, tag, pack(event(hops="1")))
    seeds["event_hops_exceeded"] = seed(ev, tag, pack(event(hops=9)))
    dup = pack(event())
    seeds["event_duplicate_key"] = seed(ev, tag, bytes([dup[0] + 1]) + dup[1:] + pack("v") + pack(1))

    # Valid reactions.
    seeds["reaction_all"] = seed(re, "@all/", pack(reaction()))
    seeds["reaction_host"] = seed(re, "@host/web1/", pack(reaction()))
    seeds["reaction_group"] = seed(re, "@group/db/", pack(reaction()))
    seeds["reaction_no_rule"] = seed(re, "@all/", pack(reaction(rule=None)))
    seeds["reaction_nested_args"] = seed(re, "@host/web1/", pack(reaction(
        args={"cmd": "systemctl", "argv": ["restart", "nginx"], "timeout": 30})))

    # Malformed reactions.
    seeds["reaction_frames_1"] = seed(REACTION | (1 << 1), "@all/", pack(reaction()))
    for name, topic in [("noslash", "@host/web1"), ("empty_name", "@group//"),
                        ("slash_in_name", "@host/a/b/"), ("unknown", "@nobody/x/"),
                        ("tag", "/client/load")]:
        seeds["reaction_topic_" + name] = seed(re, topic, pack(reaction()))
    seeds["reaction_fn_missing"] = seed(re, "@all/", pack(reaction(fn=None)))
    seeds["reaction_fn_type"] = seed(re, "@all/", pack(reaction(fn=1)))
    seeds["reaction_args_missing"] = seed(re, "@all/", pack(reaction(args=None)))
    seeds["reaction_args_type"] = seed(re, "@all/", pack(reaction(args=[1])))
    seeds["reaction_rule_type"] = seed(re, "@all/", pack(reaction(rule=7)))
    seeds["reaction_event_missing"] = seed(re, "@all/", pack(reaction(event=None)))
    seeds["reaction_event_type"] = seed(re, "@all/", pack(reaction(
        event={"tag": "/a", "id": ID[:8], "host": "web1"})))
    seeds["reaction_deadline_missing"] = seed(re, "@all/", pack(reaction(deadline=None)))
    seeds["reaction_deadline_type"] = seed(re, "@all/", pack(reaction(deadline=-1)))

    # Result events built from the input.
    seeds["result_text"] = seed(RESULT | ev, "web1", b"load average: 0.42\n")
    seeds["result_bad_utf8"] = seed(RESULT | ev, "web1", b"a\xff\xc3(b\xed\xa0\x80")
    seeds["result_bad_host"] = seed(RESULT | ev, "a/b", b"x")

    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"make_corpus: wrote {len(seeds)} seeds to {OUT}")


if __name__ == "__main__":
    main()
