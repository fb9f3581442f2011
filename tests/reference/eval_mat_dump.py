"""Dump what scipy.io.loadmat reads from a MAT file, in a text format tests/test_mat.cpp parses.

usage: eval_mat_dump.py IN.mat OUT.txt [--resave RESAVED.mat]

One block per variable, in file order:
    var <name> <class> <ndims> <d0> <d1> ...
    num <n>      then n lines, the values in C (numpy) order: float.hex() for floats, decimal for ints
    str <n>      then n lines, hex of the UTF-8 of each char row (char) or cell element (cell of strings)
    unsupported
Classes are MATLAB's (double, single, int32, char, cell, ...), from loadmat(mat_dtype=True).
--resave writes the loaded variables back with scipy.io.savemat (round trip through scipy).
"""
import sys

import numpy as np
import scipy.io as sio

_CLASS = {"f8": "double", "f4": "single", "i1": "int8", "u1": "uint8", "i2": "int16", "u2": "uint16",
          "i4": "int32", "u4": "uint32", "i8": "int64", "u8": "uint64", "b1": "uint8"}


def _char_rows(a):
    if a.ndim != 2:
        raise ValueError("char array not 2-D")
    return ["".join(row) for row in a]


def _block(name, v, out):
    if isinstance(v, np.ndarray) and v.dtype.kind == "U":
        out.append(f"var {name} char {v.ndim} " + " ".join(str(d) for d in v.shape))
        rows = _char_rows(v) if v.size else ([""] * v.shape[0] if v.ndim == 2 else [])
        out.append(f"str {len(rows)}")
        out += [r.encode("utf-8").hex() or "-" for r in rows]
    elif isinstance(v, np.ndarray) and v.dtype == object:
        out.append(f"var {name} cell {v.ndim} " + " ".join(str(d) for d in v.shape))
        items = []
        for c in v.flatten(order="F"):
            if isinstance(c, np.ndarray) and c.size == 0:  # empty element ([] or ''): an empty string
                items.append("")
                continue
            if not (isinstance(c, np.ndarray) and c.dtype.kind == "U"):
                raise ValueError(f"{name}: cell holds {type(c)}")
            rows = _char_rows(c) if c.size else []
            if len(rows) > 1:
                raise ValueError(f"{name}: cell holds a char matrix")
            items.append(rows[0] if rows else "")
        out.append(f"str {len(items)}")
        out += [s.encode("utf-8").hex() or "-" for s in items]
    elif isinstance(v, np.ndarray) and v.dtype.str[1:] in _CLASS:
        out.append(f"var {name} {_CLASS[v.dtype.str[1:]]} {v.ndim} " + " ".join(str(d) for d in v.shape))
        flat = v.flatten(order="C")
        out.append(f"num {flat.size}")
        if v.dtype.kind == "f":
            out += [float(x).hex() for x in flat]
        else:
            out += [str(int(x)) for x in flat]
    else:
        out.append(f"var {name} other 0")
        out.append("unsupported")


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        big_endian = f.read(128)[126:128] == b"MI"
    # miUINT16 char data are UTF-16 code units (MATLAB); scipy's default codec is utf-8.
    codec = "utf-16-be" if big_endian else "utf-16-le"
    m = sio.loadmat(src, mat_dtype=True, chars_as_strings=False, uint16_codec=codec)
    names = [k for k in m if not k.startswith("__")]
    out = []
    for k in names:
        _block(k, m[k], out)
    with open(dst, "w") as f:
        f.write("\n".join(out) + "\n")
    if len(sys.argv) > 4 and sys.argv[3] == "--resave":
        m2 = sio.loadmat(src, mat_dtype=True)
        sio.savemat(sys.argv[4], {k: m2[k] for k in names})


if __name__ == "__main__":
    main()
