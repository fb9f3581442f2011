#!/usr/bin/env python3
"""Seed corpora for the libFuzzer targets of tests/fuzz (nothing binary is committed).

    make_seeds.py --out DIR          (writes DIR/safetensors, DIR/mat, DIR/obj, DIR/image)

Small valid files of every flavour each reader handles, written from scratch with the
standard library (struct, zlib), so that the fuzzer starts inside the formats:
  safetensors  handgraph weight files (F32/I32/F64/I64/U8 tensors, metadata, the
               synthetic template mesh as template.vertices/faces), the header of a
               converted fixture weight file when HANDGRAPH_TESTDATA has one
  mat          MAT v5: double/single/int/uint/logical arrays, char (UTF-8/16), cells,
               small data elements, little and big endian, miCOMPRESSED
  obj          the synthetic hand template (1010 vertices), OBJ with vt/vn, a/b/c faces,
               negative indices, comments
  image        PNG (grey, grey+alpha, RGB, RGBA, palette, 16-bit; stored and deflated),
               BMP (8/24/32-bit), TGA (raw, RLE), PGM/PPM, GIF, Radiance HDR (refused),
               JPEG (baseline, progressive, grey) when OpenCV is importable
Deterministic: the same files every run.
"""
import argparse
import json
import os
import random
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(os.path.dirname(HERE), "reference")


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------------

def safetensors(tensors, metadata=None, align=64):
    """tensors: [(name, dtype, shape, bytes)] -> file bytes."""
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    if align:
        h += b" " * ((-(8 + len(h))) % align)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


HANDGRAPH_META = {"format": "handgraph-weights", "format_version": "1", "num_joints": "21",
                  "num_stacks": "2", "num_features": "256"}


def synthetic_template():
    """(vertices as flat floats, faces as flat ints) of the synthetic template, or None."""
    sys.path.insert(0, REFERENCE)
    try:
        import synthetic_template as st  # needs numpy
    except ImportError:
        return None
    v, f = st.synthetic_template()
    return [float(x) for x in v.reshape(-1)], [int(x) for x in f.reshape(-1)]


def seeds_safetensors(out):
    rng = random.Random(1)
    f32 = lambda n: struct.pack("<%df" % n, *[rng.uniform(-1, 1) for _ in range(n)])
    write(os.path.join(out, "empty_header.st"), safetensors([], None))
    write(os.path.join(out, "metadata_only.st"), safetensors([], HANDGRAPH_META))
    write(os.path.join(out, "small.st"), safetensors([
        ("a.bias", "F32", (4,), f32(4)),
        ("a.weight", "F32", (4, 3, 1, 1), f32(12)),
        ("b.count", "I64", (), struct.pack("<q", 7)),
        ("b.index", "I32", (2, 3), struct.pack("<6i", 0, 1, 2, 2, 1, 0)),
        ("c.double", "F64", (2,), struct.pack("<2d", 0.5, -2.0)),
        ("d.bytes", "U8", (5,), b"\x00\x01\x02\xfe\xff"),
        ("e.empty", "F32", (0, 3), b""),
    ], dict(HANDGRAPH_META, note="seed")))
    write(os.path.join(out, "unaligned.st"), safetensors([("x", "F32", (2, 2), f32(4))], HANDGRAPH_META, align=0))
    write(os.path.join(out, "not_finite.st"), safetensors(
        [("x", "F32", (3,), struct.pack("<3f", 1.0, float("nan"), float("inf")))], HANDGRAPH_META))
    tmpl = synthetic_template()
    if tmpl:
        v, f = tmpl
        write(os.path.join(out, "template.st"), safetensors([
            ("template.faces", "I32", (len(f) // 3, 3), struct.pack("<%di" % len(f), *f)),
            ("template.vertices", "F32", (len(v) // 3, 3), struct.pack("<%df" % len(v), *v)),
        ], HANDGRAPH_META))
    # The header of a real converted weight file (every tensor name of the network), with
    # the data cut to the first tensor.
    testdata = os.environ.get("HANDGRAPH_TESTDATA", "")
    real = os.path.join(testdata, "seed1", "weights.safetensors") if testdata else ""
    if real and os.path.isfile(real):
        with open(real, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n < (8 << 20):
                head = fh.read(n)
                write(os.path.join(out, "fixture_header.st"), struct.pack("<Q", n) + head + fh.read(256))


# ---------------------------------------------------------------------------------
# MAT v5
# ---------------------------------------------------------------------------------

MI = dict(int8=1, uint8=2, int16=3, uint16=4, int32=5, uint32=6, single=7, double=9,
          int64=12, uint64=13, matrix=14, compressed=15, utf8=16, utf16=17)
MX = dict(cell=1, struct=2, char=4, double=6, single=7, int8=8, uint8=9, int16=10,
          uint16=11, int32=12, uint32=13, int64=14, uint64=15)
FMT = {1: "b", 2: "B", 3: "h", 4: "H", 5: "i", 6: "I", 7: "f", 9: "d", 12: "q", 13: "Q", 16: "B", 17: "H"}


class Mat(object):
    def __init__(self, endian="<"):
        self.e = endian

    def element(self, mi, payload, small_ok=True):
        if small_ok and len(payload) <= 4 and mi != MI["matrix"]:
            # small data element: nbytes in the upper 16 bits of the tag
            if self.e == "<":
                tag = struct.pack("<I", (len(payload) << 16) | mi)
            else:
                tag = struct.pack(">HH", len(payload), mi)
            return tag + payload + b"\0" * (4 - len(payload))
        return struct.pack(self.e + "II", mi, len(payload)) + payload + b"\0" * ((-len(payload)) % 8)

    def values(self, mi, vals):
        return self.element(mi, struct.pack(self.e + "%d%s" % (len(vals), FMT[mi]), *vals))

    def matrix(self, name, mx, dims, body, flags=0):
        payload = self.element(MI["uint32"], struct.pack(self.e + "II", (flags << 8) | mx, 0), small_ok=False)
        payload += self.element(MI["int32"], struct.pack(self.e + "%di" % len(dims), *dims), small_ok=False)
        payload += self.element(MI["int8"], name.encode())
        payload += body
        return self.element(MI["matrix"], payload)

    def numeric(self, name, mx, dims, mi, vals, flags=0):
        return self.matrix(name, mx, dims, self.values(mi, vals), flags)

    def char(self, name, text, mi=MI["utf8"]):
        if mi == MI["utf8"]:
            data = self.element(mi, text.encode("utf-8"))
        else:
            data = self.values(mi, [ord(c) for c in text])
        return self.matrix(name, MX["char"], (1, len(text)), data)

    def cell(self, name, dims, items):
        return self.matrix(name, MX["cell"], dims, b"".join(items))

    def compressed(self, element):
        data = zlib.compress(element)  # not padded: the next element follows at once
        return struct.pack(self.e + "II", MI["compressed"], len(data)) + data

    def file(self, elements, text="MATLAB 5.0 MAT-file, handgraph fuzz seed"):
        head = text.encode().ljust(116, b" ") + b"\0" * 8
        head += struct.pack(self.e + "H", 0x0100) + (b"IM" if self.e == "<" else b"MI")
        return head + b"".join(elements)


def seeds_mat(out):
    for e, tag in (("<", "le"), (">", "be")):
        m = Mat(e)
        boxes = m.numeric("boxes", MX["double"], (3, 4), MI["double"], [float(i) * 1.5 for i in range(12)])
        small = m.numeric("small_ints", MX["double"], (2, 3), MI["uint8"], [1, 2, 3, 250, 0, 7])
        single = m.numeric("single", MX["single"], (2, 2, 2), MI["single"], [0.25 * i for i in range(8)])
        ints = m.numeric("i16", MX["int16"], (1, 3), MI["int16"], [-3, 0, 32000])
        logical = m.numeric("flag", MX["uint8"], (1, 2), MI["uint8"], [1, 0], flags=0x02)
        u64 = m.numeric("big", MX["uint64"], (1, 1), MI["uint64"], [2 ** 63 + 5])
        text = m.char("name", "hand_graph")
        text16 = m.char("wide", "h\u00e4nd", MI["utf16"])
        cells = m.cell("files", (1, 2), [m.char("", "a.png"), m.char("", "b.png")])
        nested = m.cell("nested", (2, 1), [cells, m.numeric("", MX["double"], (1, 1), MI["double"], [4.0])])
        empty = m.numeric("empty", MX["double"], (0, 0), MI["double"], [])
        write(os.path.join(out, "plain_%s.mat" % tag), m.file([boxes, small, single, ints, logical, u64, text, text16, cells, nested, empty]))
        write(os.path.join(out, "compressed_%s.mat" % tag), m.file([m.compressed(boxes), m.compressed(nested), m.compressed(text)]))
        write(os.path.join(out, "one_%s.mat" % tag), m.file([boxes]))
    m = Mat("<")
    field = m.numeric("", MX["double"], (1, 1), MI["double"], [2.0])
    unsupported = m.matrix("s", MX["struct"], (1, 1), m.element(MI["int32"], struct.pack("<i", 8)) +
                           m.element(MI["int8"], b"a".ljust(8, b"\0")) + field)
    write(os.path.join(out, "struct.mat"), m.file([unsupported, m.numeric("x", MX["double"], (1, 1), MI["double"], [1.0])]))


# ---------------------------------------------------------------------------------
# OBJ
# ---------------------------------------------------------------------------------

def seeds_obj(out):
    sys.path.insert(0, REFERENCE)
    try:
        import synthetic_template as st
        st.write_obj(os.path.join(out, "synthetic_template.obj"))
    except ImportError:
        pass
    write(os.path.join(out, "quad.obj"), b"# two triangles\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0.5\n"
          b"vt 0 0\nvn 0 0 1\ng hand\ns off\nf 1/1/1 2/1/1 3/1/1\nf 1//1 3//1 4//1\n")
    write(os.path.join(out, "negative.obj"), b"v 0 0 0 1\nv 1 0 0 1 0.5 0.5 0.5\nv 0 1 0\nf -3 -2 -1\r\n")
    write(os.path.join(out, "exponents.obj"), b"v 1e-3 -2.5E+2 .5\nv +1 -0 3.\nv 4 5 6\n\tf 1 2 3  # tail\n")


# ---------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------

def png(width, height, color_type, depth, rows, palette=None, level=6):
    """rows: list of bytes per row (unfiltered). Filter type per row cycles through 0..4
    only when level > 0 (stored seeds keep the raw bytes visible to the fuzzer)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\0" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0))
    if palette:
        out += chunk(b"PLTE", palette)
    out += chunk(b"IDAT", zlib.compress(raw, level)) + chunk(b"IEND", b"")
    return out


def bmp(width, height, bpp, pixel, palette=None):
    stride = (width * bpp // 8 + 3) & ~3
    body = b""
    for y in range(height):
        row = b"".join(pixel(x, y) for x in range(width))
        body += row + b"\0" * (stride - len(row))
    pal = palette or b""
    offset = 14 + 40 + len(pal)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bpp, 0, len(body), 2835, 2835,
                       len(pal) // 4, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset) + info + pal + body


def tga(width, height, rle):
    head = struct.pack("<BBBHHBHHHHBB", 0, 0, 10 if rle else 2, 0, 0, 0, 0, 0, width, height, 24, 0x20)
    body = b""
    for y in range(height):
        if rle:
            body += bytes([0x80 | (width - 1)]) + bytes([y * 20, 100, 200])  # one run per row
        else:
            body += b"".join(bytes([x * 30, y * 30, 128]) for x in range(width))
    return head + body


def gif(width, height, pixels):
    """Uncompressed-style GIF: every code a literal, a clear code every 200 codes."""
    palette = b"".join(bytes([i * 60, 255 - i * 60, (i * 97) & 255]) for i in range(4))
    min_size = 2
    clear, end = 1 << min_size, (1 << min_size) + 1
    bits, nbits = 0, 0
    out = bytearray()

    def emit(code, size):
        nonlocal bits, nbits
        bits |= code << nbits
        nbits += size
        while nbits >= 8:
            out.append(bits & 255)
            bits >>= 8
            nbits -= 8

    size, next_code, first = min_size + 1, end + 1, True
    emit(clear, size)
    for i, p in enumerate(pixels):
        if i and i % 200 == 0:
            emit(clear, size)
            size, next_code, first = min_size + 1, end + 1, True
        emit(p, size)
        if not first:
            next_code += 1
            if next_code == (1 << size) and size < 12:
                size += 1
        first = False
    emit(end, size)
    if nbits:
        out.append(bits & 255)
    blocks = b"".join(bytes([len(out[i:i + 255])]) + bytes(out[i:i + 255]) for i in range(0, len(out), 255))
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0x81, 0, 0) + palette +
            b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + bytes([min_size]) + blocks + b"\0;")


def seeds_image(out):
    w, h = 7, 5
    grey = [bytes((x * 37 + y * 11) & 255 for x in range(w)) for y in range(h)]
    rgb = [bytes(v for x in range(w) for v in (x * 36, y * 50, 128)) for y in range(h)]
    rgba = [bytes(v for x in range(w) for v in (x * 36, y * 50, 128, 200)) for y in range(h)]
    ga = [bytes(v for x in range(w) for v in ((x * 30) & 255, 255 - x)) for y in range(h)]
    grey16 = [b"".join(struct.pack(">H", (x * 9000 + y * 300) & 0xFFFF) for x in range(w)) for y in range(h)]
    rgb16 = [b"".join(struct.pack(">3H", x * 9000, y * 12000, 40000) for x in range(w)) for y in range(h)]
    rgba16 = [b"".join(struct.pack(">4H", x * 9000, y * 12000, 40000, 65535 - x) for x in range(w)) for y in range(h)]
    pal_rows = [bytes((x + y) % 4 for x in range(w)) for y in range(h)]
    palette = bytes([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    for level, tag in ((0, "stored"), (6, "deflate")):
        write(os.path.join(out, "grey_%s.png" % tag), png(w, h, 0, 8, grey, level=level))
        write(os.path.join(out, "rgb_%s.png" % tag), png(w, h, 2, 8, rgb, level=level))
        write(os.path.join(out, "rgba_%s.png" % tag), png(w, h, 6, 8, rgba, level=level))
    write(os.path.join(out, "grey_alpha.png"), png(w, h, 4, 8, ga))
    write(os.path.join(out, "grey16.png"), png(w, h, 0, 16, grey16, level=0))
    write(os.path.join(out, "rgb16.png"), png(w, h, 2, 16, rgb16))
    write(os.path.join(out, "rgba16.png"), png(w, h, 6, 16, rgba16))
    write(os.path.join(out, "palette.png"), png(w, h, 3, 8, pal_rows, palette=palette, level=0))
    write(os.path.join(out, "rgb24.bmp"), bmp(w, h, 24, lambda x, y: bytes([x * 30, y * 40, 90])))
    write(os.path.join(out, "rgba32.bmp"), bmp(w, h, 32, lambda x, y: bytes([x * 30, y * 40, 90, 255])))
    write(os.path.join(out, "pal8.bmp"), bmp(w, h, 8, lambda x, y: bytes([(x + y) % 4]),
                                             palette=b"".join(bytes([i * 60, 0, 255 - i * 60, 0]) for i in range(4))))
    write(os.path.join(out, "raw.tga"), tga(w, h, False))
    write(os.path.join(out, "rle.tga"), tga(w, h, True))
    write(os.path.join(out, "grey.pgm"), b"P5\n%d %d\n255\n" % (w, h) + b"".join(grey))
    write(os.path.join(out, "rgb.ppm"), b"P6\n# comment\n%d %d\n255\n" % (w, h) + b"".join(rgb))
    write(os.path.join(out, "small.gif"), gif(w, h, [(x + y) % 4 for y in range(h) for x in range(w)]))
    write(os.path.join(out, "tiny.hdr"), b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 2 +X 2\n" + bytes(range(16)))
    try:
        import cv2
        import numpy as np
    except ImportError:
        return
    img = np.zeros((16, 24, 3), np.uint8)
    img[..., 0] = np.arange(24)[None, :] * 10
    img[..., 1] = np.arange(16)[:, None] * 15
    img[4:12, 6:18, 2] = 200
    for name, params, src in (("baseline.jpg", [cv2.IMWRITE_JPEG_QUALITY, 90], img),
                              ("progressive.jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], img),
                              ("grey.jpg", [cv2.IMWRITE_JPEG_QUALITY, 75], img[..., 1].copy())):
        ok, buf = cv2.imencode(".jpg", src, params)
        if ok:
            write(os.path.join(out, name), buf.tobytes())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    args = p.parse_args()
    for kind, make in (("safetensors", seeds_safetensors), ("mat", seeds_mat), ("obj", seeds_obj), ("image", seeds_image)):
        d = os.path.join(args.out, kind)
        os.makedirs(d, exist_ok=True)
        make(d)
        print("%s: %d seeds" % (kind, len(os.listdir(d))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
