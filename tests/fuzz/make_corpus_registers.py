#!/usr/bin/python3
"""make_corpus_registers.py — writes fuzz_registers' seeds into corpus/registers/.

Each seed is one fuzz_registers input (the layout is at the top of
fuzz_registers.c): a function, a parameter set, no starting state, then
steps that feed it numbers a second or so apart, so that the fuzzer starts
from states each function really writes. A few seeds start from bytes that
are not a state. Rerun when the layout or the function list changes.
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "registers")

NAMES = ["avg", "sum", "count", "min", "max", "last", "rate", "delta", "ewma",
         "percentile", "changed", "flapping", "get", "set"]
# Parameter variants (indexes into s_params in fuzz_registers.c) worth a seed each.
PARAMS = {"avg": [1, 2, 3, 6], "rate": [1, 4], "ewma": [11, 12], "percentile": [15, 16, 17],
          "flapping": [20, 21, 22], "changed": [0]}


def step(value, tick=10, kind=0):
    if kind == 0:
        bits = struct.pack("<d", value)
    else:
        bits = struct.pack("<q", int(value))
    return bytes([kind]) + bits + bytes([tick])


def seed(fn, params, state=b"", steps=()):
    return bytes([fn, params]) + struct.pack("<H", len(state)) + state + b"".join(steps)


def main():
    seeds = {}
    values = [1.0, 5.5, 3.0, 100.0, 0.0, 42.0, 7.25, 7.25, 9.0, 2.0]
    for fn, name in enumerate(NAMES):
        for p in PARAMS.get(name, [1]):
            seeds[f"{name}_p{p}"] = seed(fn, p, steps=[step(v) for v in values])
        # a counter that resets, and a clock that goes back
        seeds[f"{name}_reset_back"] = seed(fn, 1, steps=[
            step(10), step(20), step(5), step(30, tick=0x85), step(40), step(1, kind=1)])
        seeds[f"{name}_junk_state"] = seed(fn, 1, state=bytes([1, fn + 1, 10, 0]) + bytes(60),
                                           steps=[step(1.0)])
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"make_corpus_registers: wrote {len(seeds)} seeds to {OUT}")


if __name__ == "__main__":
    main()
