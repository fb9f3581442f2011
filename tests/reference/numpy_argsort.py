"""numpy.argsort (default kind) of float32 arrays, for tests/test_graph.cpp.

usage: numpy_argsort.py IN OUT
IN: uint32 count, then per array uint32 n and n float32 (little-endian).
OUT: the argsort of each array, int64 little-endian, concatenated.
Exit 77 (skip) when numpy is newer than 1.24: its argsort is no longer the classic
introsort the release relied on, so there is nothing to compare with.
"""
import struct
import sys

import numpy as np

if tuple(int(x) for x in np.__version__.split(".")[:2]) > (1, 24):
    print(f"numpy {np.__version__} > 1.24: default argsort differs from the release's", file=sys.stderr)
    sys.exit(77)

with open(sys.argv[1], "rb") as f:
    raw = f.read()
(count,) = struct.unpack_from("<I", raw, 0)
pos, out = 4, []
for _ in range(count):
    (n,) = struct.unpack_from("<I", raw, pos)
    pos += 4
    values = np.frombuffer(raw, dtype="<f4", count=n, offset=pos)
    pos += 4 * n
    out.append(np.argsort(values).astype("<i8"))
with open(sys.argv[2], "wb") as f:
    for a in out:
        f.write(a.tobytes())
