#!/usr/bin/python3
"""make_corpus_control.py — writes fuzz_control's seeds into corpus/control/.

Each seed is one fuzz_control input (the layout is at the top of
fuzz_control.c): a verb's index, then the args frame. One seed per verb
with the args the CLI sends, registers.set seeds that leave odd values
as the state of each register the target's rules use, explains that run
those rules, and a few malformed requests. Run with Debian's python3
(python3-msgpack); rerun when the verbs or the layout change.
"""
import os
import shutil

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "control")
VERBS = ["status", "reload", "rules.list", "registers.list", "registers.get",
         "registers.set", "registers.del", "explain", "actors"]
SCOPES = ["s/avg", "s/rate", "s/pct", "s/changed", "s/flap", "s/store"]


def seed(verb, args=b""):
    if isinstance(args, (dict, list, int, str)):
        args = msgpack.packb(args)
    return bytes([VERBS.index(verb)]) + args


def raw_verb(verb, args=b""):
    return bytes([0xff, len(verb)]) + verb + args


def main():
    seeds = {}
    for v in ("status", "reload", "rules.list", "actors"):
        seeds[v] = seed(v, {})
    seeds["registers_list_all"] = seed("registers.list", {})
    seeds["registers_list_prefix"] = seed("registers.list", {"prefix": "s/"})
    for scope in SCOPES:
        name = scope.split("/")[1]
        for i, value in enumerate([1.5, "down", [1, 2], {"a": 1}, None, b"\x01\x0a\x00\x00"]):
            seeds[f"set_{name}_{i}"] = seed("registers.set",
                                            {"scope": scope, "key": "web1", "value": value})
        seeds[f"get_{name}"] = seed("registers.get", {"scope": scope, "key": "web1"})
        seeds[f"del_{name}"] = seed("registers.del", {"scope": scope, "key": "web1"})
    for i, data in enumerate([{"value": 7, "name": "web1"}, 3, "x", {"value": 1e308},
                              {"value": float("nan")}, {}]):
        seeds[f"explain_{i}"] = seed("explain", {"tag": "/m/load/web1", "host": "web1",
                                                 "data": data})
    seeds["explain_bad_tag"] = seed("explain", {"tag": "no-slash"})
    seeds["explain_no_tag"] = seed("explain", {"host": "web1"})
    seeds["args_not_map"] = seed("status", [1, 2, 3])
    seeds["args_garbage"] = seed("registers.set", b"\xc1\xff\x00")
    seeds["args_empty"] = seed("explain", b"")
    seeds["verb_unknown"] = raw_verb(b"registers.nuke", msgpack.packb({}))
    seeds["verb_empty"] = raw_verb(b"", b"")
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"make_corpus_control: wrote {len(seeds)} seeds to {OUT}")


if __name__ == "__main__":
    main()
