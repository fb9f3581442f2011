"""Write MAT v5 test files for tests/test_mat.cpp, built from the format description.

usage: eval_mat_make.py OUT_DIR

  scipy_plain.mat        scipy.io.savemat: every numeric class, char, unicode, cell, empty, 3-D
  matlab_compressed.mat  hand-built like MATLAB -v7: each variable a zlib miCOMPRESSED element;
                         doubles stored as miUINT8/miINT16, small data elements, miUINT16 chars,
                         a cell of strings with an empty element, a struct (unsupported), logicals
  matlab_bigendian.mat   the same variables, uncompressed, big-endian ("MI")
  bomb_small_budget.mat  a valid compressed element of 64 MiB of zeros (about 64 KiB on disk)
  bomb_liar.mat          a compressed element whose stream is far longer than its inner tag says
  bad_zlib.mat           a compressed element with a corrupt zlib stream
"""
import os
import struct
import sys
import zlib

import numpy as np
import scipy.io as sio

mi = dict(INT8=1, UINT8=2, INT16=3, UINT16=4, INT32=5, UINT32=6, SINGLE=7, DOUBLE=9, INT64=12, UINT64=13,
          MATRIX=14, COMPRESSED=15, UTF8=16, UTF16=17, UTF32=18)
mx = dict(CELL=1, STRUCT=2, CHAR=4, DOUBLE=6, SINGLE=7, INT8=8, UINT8=9, INT16=10, UINT16=11, INT32=12, UINT32=13)
_NP = {mi["INT8"]: "i1", mi["UINT8"]: "u1", mi["INT16"]: "i2", mi["UINT16"]: "u2", mi["INT32"]: "i4",
       mi["UINT32"]: "u4", mi["SINGLE"]: "f4", mi["DOUBLE"]: "f8", mi["INT64"]: "i8", mi["UINT64"]: "u8"}


class Builder:
    def __init__(self, endian):
        self.e = endian

    def u32(self, v):
        return struct.pack(self.e + "I", v)

    def element(self, mtype, data, small_ok=True):
        if small_ok and 0 < len(data) <= 4:
            return self.u32((len(data) << 16) | mtype) + data + b"\0" * (4 - len(data))
        pad = b"\0" * ((-len(data)) % 8)
        return self.u32(mtype) + self.u32(len(data)) + data + pad

    def array(self, values, mtype):
        return np.asarray(values).astype(np.dtype(_NP[mtype]).newbyteorder(self.e)).tobytes(order="F")

    def header(self, name, cls, dims, flags=0):
        return (self.element(mi["UINT32"], self.u32(cls | flags) + self.u32(0), small_ok=False)
                + self.element(mi["INT32"], b"".join(struct.pack(self.e + "i", d) for d in dims), small_ok=False)
                + self.element(mi["INT8"], name.encode()))

    def matrix(self, body):
        return self.u32(mi["MATRIX"]) + self.u32(len(body)) + body

    def numeric(self, name, cls, values, mtype, flags=0):
        v = np.asarray(values)
        dims = v.shape if v.ndim >= 2 else (1, v.size)
        return self.matrix(self.header(name, cls, dims, flags) + self.element(mtype, self.array(v, mtype)))

    def chars(self, name, rows, mtype):
        if not rows or not any(rows):
            return self.matrix(self.header(name, mx["CHAR"], (0, 0)) + self.element(mi["UTF8"], b""))
        width = max(len(r) for r in rows)
        a = np.array([list(r.ljust(width)) for r in rows])
        text = "".join(a.flatten(order="F"))
        if mtype == mi["UTF8"]:
            data = text.encode("utf-8")
        else:
            data = np.array([ord(c) for c in text], dtype=np.dtype("u2").newbyteorder(self.e)).tobytes()
        return self.matrix(self.header(name, mx["CHAR"], a.shape) + self.element(mtype, data))

    def cell(self, name, items):
        body = self.header(name, mx["CELL"], (1, len(items)))
        for it in items:
            body += it
        return self.matrix(body)

    def struct(self, name):
        fields = b"a".ljust(32, b"\0") + b"bb".ljust(32, b"\0")
        body = (self.header(name, mx["STRUCT"], (1, 1)) + self.element(mi["INT32"], struct.pack(self.e + "i", 32))
                + self.element(mi["INT8"], fields)
                + self.numeric("", mx["DOUBLE"], [[1.5]], mi["DOUBLE"])
                + self.chars("", ["hi"], mi["UTF8"]))
        return self.matrix(body)


def variables(b):
    rng = np.random.default_rng(7)
    pose = rng.normal(0, 30, (3, 21, 4))
    return [
        b.numeric("dbl_u8", mx["DOUBLE"], np.array([[0, 1, 2], [200, 254, 255]]), mi["UINT8"]),
        b.numeric("dbl_i16", mx["DOUBLE"], np.array([[-300, 7], [12000, -1]]), mi["INT16"]),
        b.numeric("i32_i16", mx["INT32"], np.array([[-5, 6, 30000, -32768]]), mi["INT16"]),
        b.numeric("i32", mx["INT32"], np.array([[2147483647], [-2147483648], [0]]), mi["INT32"]),
        b.numeric("sgl", mx["SINGLE"], np.array([[1.25, -2.5], [3.1, 1e-30], [np.inf, 7]], np.float32), mi["SINGLE"]),
        b.numeric("pose", mx["DOUBLE"], pose, mi["DOUBLE"]),
        b.numeric("s1", mx["DOUBLE"], np.array([[5]]), mi["UINT8"]),
        b.numeric("ab", mx["UINT8"], np.array([[9, 8, 7, 6]]), mi["UINT8"]),
        b.numeric("lg", mx["UINT8"], np.array([[1, 0, 1]]), mi["UINT8"], flags=0x200),
        b.chars("txt", ["hello", "abc"], mi["UTF8"]),
        b.chars("wide", ["h\u00e9llo \u2192", "x"], mi["UINT16"]),
        b.chars("empty_txt", [], mi["UTF8"]),
        b.cell("cel", [b.chars("", ["ab"], mi["UTF8"]), b.u32(mi["MATRIX"]) + b.u32(0), b.chars("", ["xyz"], mi["UTF8"])]),
        b.struct("st"),
        b.numeric("empty_dbl", mx["DOUBLE"], np.zeros((0, 3)), mi["DOUBLE"]),
    ]


def header(text, endian):
    h = text.encode().ljust(116, b" ") + b"\0" * 8
    return h + (struct.pack("<H", 0x0100) + b"IM" if endian == "<" else struct.pack(">H", 0x0100) + b"MI")


def compressed(b, element):
    z = zlib.compress(element)
    return b.u32(mi["COMPRESSED"]) + b.u32(len(z)) + z


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(3)
    sio.savemat(os.path.join(out, "scipy_plain.mat"), {
        "d": rng.normal(size=(3, 4)),
        "s": rng.normal(size=(2, 3, 4)).astype(np.float32),
        "i32": np.array([[-7], [0], [2**31 - 1], [-2**31], [12]], np.int32),
        "u8": np.arange(250, 257, dtype=np.int64).clip(0, 255).astype(np.uint8).reshape(1, 7),
        "i8": np.array([[-128, 127, 0]], np.int8),
        "i16": np.array([[-32768, 32767]], np.int16),
        "u16": np.array([[65535, 1]], np.uint16),
        "u32": np.array([[4294967295, 3]], np.uint32),
        "i64": np.array([[-2**40, 5]], np.int64),
        "u64": np.array([[2**50, 6]], np.uint64),
        "chars": np.array(["abc", "de ", "fgh"]),
        "ustr": "h\u00e9llo \u2192 \u2713",
        "cellstr": np.array(["one", "three", ""], dtype=object).reshape(1, 3),
        "empty": np.zeros((0, 0)),
        "scalar": 3.5,
        "big3d": rng.normal(size=(4, 5, 6)),
    })
    le, be = Builder("<"), Builder(">")
    with open(os.path.join(out, "matlab_compressed.mat"), "wb") as f:
        f.write(header("MATLAB 5.0 MAT-file, Platform: PCWIN64, Created on: test", "<"))
        for v in variables(le):
            f.write(compressed(le, v))
    with open(os.path.join(out, "matlab_bigendian.mat"), "wb") as f:
        f.write(header("MATLAB 5.0 MAT-file, Platform: SOL2, Created on: test", ">"))
        for v in variables(be):
            f.write(v)
    # 64 MiB of zeros: a valid uint8 array; compresses to about 64 KiB.
    n = 64 << 20
    big = le.matrix(le.header("zeros", mx["UINT8"], (1, n)) + le.u32(mi["UINT8"]) + le.u32(n) + bytes(n))
    with open(os.path.join(out, "bomb_small_budget.mat"), "wb") as f:
        f.write(header("MATLAB 5.0 MAT-file, bomb", "<"))
        f.write(compressed(le, big))
    small = le.numeric("x", mx["DOUBLE"], np.array([[1.0]]), mi["DOUBLE"])
    with open(os.path.join(out, "bomb_liar.mat"), "wb") as f:
        f.write(header("MATLAB 5.0 MAT-file, liar", "<"))
        f.write(compressed(le, small + bytes(n)))
    z = bytearray(zlib.compress(small))
    z[len(z) // 2] ^= 0x5A
    z[3] ^= 0xFF
    with open(os.path.join(out, "bad_zlib.mat"), "wb") as f:
        f.write(header("MATLAB 5.0 MAT-file, bad zlib", "<"))
        f.write(le.u32(mi["COMPRESSED"]) + le.u32(len(z)) + bytes(z))


if __name__ == "__main__":
    main()
