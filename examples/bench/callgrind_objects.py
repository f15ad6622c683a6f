#!/usr/bin/env python3
"""Instructions of a callgrind output file, by the object (executable or shared library) that
executed them: self cost only, every thread summed. Used by bound.sh to split a request's
instructions into the codec libraries' and the rest (docs/performance.md, "What bounds the
codec-bound requests").

Usage: callgrind_objects.py FILE            one line per object: instructions, name
       callgrind_objects.py --codec FILE    two numbers: codec instructions, all instructions

The codec objects are the image libraries both servers call for the same work: libjpeg-turbo
(libturbojpeg, libjpeg), libwebp and libsharpyuv, libopenjp2, libpng, zlib, libdeflate.
"""
import re
import sys
from collections import defaultdict

CODEC = re.compile(r"lib(turbojpeg|jpeg|webp|sharpyuv|openjp2|png16|z|deflate)\.so")


def by_object(path):
    names = {}  # compressed name ids of ob=/cob=
    cost = defaultdict(int)
    ob = "???"
    skip_next = False  # the cost line after calls= is the call's inclusive cost
    with open(path, errors="replace") as f:
        for line in f:
            if not line or line[0] == "#":
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) >= 2:
                    cost[ob] += int(parts[1])
                continue
            if line.startswith("ob="):
                ob = resolve(names, line[3:].strip())
            elif line.startswith("cob="):
                resolve(names, line[4:].strip())
            elif line.startswith("calls="):
                skip_next = True
    return cost


def resolve(names, spec):
    m = re.match(r"\((\d+)\)\s*(.*)", spec)
    if not m:
        return spec
    key, name = m.group(1), m.group(2)
    if name:
        names[key] = name
    return names.get(key, "???")


def main():
    args = sys.argv[1:]
    codec_only = args[:1] == ["--codec"]
    if codec_only:
        args = args[1:]
    if len(args) != 1:
        sys.exit(__doc__)
    cost = by_object(args[0])
    if codec_only:
        codec = sum(v for k, v in cost.items() if CODEC.search(k))
        print(codec, sum(cost.values()))
        return
    for name, v in sorted(cost.items(), key=lambda kv: -kv[1]):
        print(v, name)


if __name__ == "__main__":
    main()
