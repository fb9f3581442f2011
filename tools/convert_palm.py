#!/usr/bin/env python3
"""Convert one of MediaPipe's palm detectors (.tflite) into one handgraph palm-detector file.

    convert_palm.py palm_detection_full.tflite -o weights/palm_detection_full.safetensors

Reads the TFLite flatbuffer by its schema (tensorflow/lite/schema/schema.fbs, version 3)
with a small reader of its own: every table, vtable, vector and string is checked against
the file's bounds and alignment before it is used, vectors against the bytes left, counts
against fixed caps. Python standard library only: no numpy, no flatbuffers package.

The graph must be a palm detector made of the ops below (anything else is refused by
name): DEQUANTIZE (float16 constants; widened to float32 here, so the op disappears),
CONV_2D, DEPTHWISE_CONV_2D, PRELU, ADD, MAX_POOL_2D, PAD, RESIZE_BILINEAR, RESHAPE,
CONCATENATION; one float32 input [1, H, W, 3], two float32 outputs [1, N, 18] (box and
keypoint regressors) and [1, N, 1] (score logits). Every op's inputs, outputs, options and
shapes are checked (each output shape is recomputed from the op's definition), every
constant buffer's size against its tensor's shape, and the ops' order against their data
flow.

The output is a safetensors file (8-byte LE header length, JSON header, data aligned to
64, tensors sorted by name, like handgraph's weight files): the float32 weights named by
op (`op012.filter`, `op012.bias`, `op013.alpha`), the 2016 SSD anchors MediaPipe uses with
this model (`anchors`), and in `__metadata__` (string values) `format` =
`handgraph-palm-detector`, the graph (ops in execution order with their inputs, outputs,
shapes and options) as JSON, MediaPipe's pre- and post-processing settings as JSON, and
the source's sha256. Layout: weights/PALM_FORMAT.md. Written to a temporary file beside
the output and renamed only on success. Errors: one line `error: <file>: ...` on stderr,
exit status 1, no output file.
"""
import argparse
import collections
import hashlib
import json
import math
import os
import struct
import sys
import tempfile

CONVERTER_VERSION = "1"
FORMAT_NAME = "handgraph-palm-detector"
FORMAT_VERSION = "1"
HAND_FORMAT_NAME = "handgraph-weights"   # tools/convert_weights.py's files

# The two models of @mediapipe/hands 0.4.1675469240 (../shared/data/mediapipe/README.md).
KNOWN_MODELS = {
    "2f25e740121983f68ffc05f99991d524dc0ea812134f6316a26125816941ee85": "palm_detection_full",
    "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18": "palm_detection_lite",
}

# Caps that no palm detector comes near (full: 2.3 MB, 413 tensors, 272 ops); they keep a
# damaged count from turning into a long loop or a huge allocation.
MAX_FILE_BYTES = 256 << 20
MAX_OPERATOR_CODES = 1000
MAX_TENSORS = 100000
MAX_OPERATORS = 100000
MAX_BUFFERS = 100000
MAX_METADATA = 1000
MAX_RANK = 8
MAX_TENSOR_ELEMENTS = 1 << 26     # 256 MiB of float32 for one activation or weight
MAX_OP_TENSORS = 64               # inputs or outputs of one op

# ---------------------------------------------------------------------------------
# Schema facts (tensorflow/lite/schema/schema.fbs): enum values and field indices
# ---------------------------------------------------------------------------------

_BUILTIN_NAMES = (
    "ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE "
    "EMBEDDING_LOOKUP FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D "
    "LOCAL_RESPONSE_NORMALIZATION LOGISTIC LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU "
    "RELU_N1_TO_1 RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH SVDF TANH "
    "CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD "
    "UNIDIRECTIONAL_SEQUENCE_RNN GATHER BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN "
    "SUB DIV SQUEEZE UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN "
    "EXP TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM "
    "ARG_MAX MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN "
    "TRANSPOSE_CONV SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT "
    "SHAPE POW ARG_MIN FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND "
    "LOGICAL_NOT UNPACK REDUCE_MIN FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD "
    "RANGE RESIZE_NEAREST_NEIGHBOR LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V "
    "UNIQUE CEIL REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG "
    "QUANTIZE MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE NON_MAX_SUPPRESSION_V4 "
    "NON_MAX_SUPPRESSION_V5 SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM BATCH_MATMUL "
    "PLACEHOLDER_FOR_GREATER_OP_CODES CUMSUM CALL_ONCE BROADCAST_TO RFFT2D CONV_3D IMAG "
    "REAL COMPLEX_ABS HASHTABLE HASHTABLE_FIND HASHTABLE_IMPORT HASHTABLE_SIZE REDUCE_ALL "
    "CONV_3D_TRANSPOSE VAR_HANDLE READ_VARIABLE ASSIGN_VARIABLE BROADCAST_ARGS "
    "RANDOM_STANDARD_NORMAL BUCKETIZE RANDOM_UNIFORM MULTINOMIAL GELU DYNAMIC_UPDATE_SLICE "
    "RELU_0_TO_1 UNSORTED_SEGMENT_PROD UNSORTED_SEGMENT_MAX UNSORTED_SEGMENT_SUM ATAN2 "
    "UNSORTED_SEGMENT_MIN SIGN BITCAST BITWISE_XOR RIGHT_SHIFT").split()
BUILTIN_CUSTOM = 32


def builtin_name(code):
    if 0 <= code < len(_BUILTIN_NAMES):
        return _BUILTIN_NAMES[code]
    return "builtin operator code %d" % code


# TensorType
T_FLOAT32, T_FLOAT16, T_INT32 = 0, 1, 2
_TYPE_NAMES = ("FLOAT32 FLOAT16 INT32 UINT8 INT64 STRING BOOL INT16 COMPLEX64 INT8 FLOAT64 "
               "COMPLEX128 UINT64 RESOURCE VARIANT UINT32 UINT16 INT4").split()
_TYPE_SIZES = {T_FLOAT32: 4, T_FLOAT16: 2, T_INT32: 4}


def type_name(t):
    return _TYPE_NAMES[t] if 0 <= t < len(_TYPE_NAMES) else "tensor type %d" % t


# BuiltinOptions union members used here
OPT_NONE, OPT_CONV2D, OPT_DEPTHWISE, OPT_POOL2D, OPT_CONCAT, OPT_ADD = 0, 1, 2, 5, 10, 11
OPT_RESIZE_BILINEAR, OPT_RESHAPE, OPT_PAD, OPT_DEQUANTIZE = 15, 17, 22, 38
_OPTION_NAMES = {OPT_NONE: "NONE", OPT_CONV2D: "Conv2DOptions", OPT_DEPTHWISE: "DepthwiseConv2DOptions",
                 OPT_POOL2D: "Pool2DOptions", OPT_CONCAT: "ConcatenationOptions", OPT_ADD: "AddOptions",
                 OPT_RESIZE_BILINEAR: "ResizeBilinearOptions", OPT_RESHAPE: "ReshapeOptions",
                 OPT_PAD: "PadOptions", OPT_DEQUANTIZE: "DequantizeOptions"}

PADDINGS = ("SAME", "VALID")
# Fused activations accepted (each a clamp); TANH and SIGN_BIT are refused.
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}

# The ops this converter knows: name -> (accepted BuiltinOptions types, inputs, outputs)
SUPPORTED = {
    "DEQUANTIZE": ((OPT_NONE, OPT_DEQUANTIZE), (1, 1), 1),
    "CONV_2D": ((OPT_CONV2D,), (2, 3), 1),
    "DEPTHWISE_CONV_2D": ((OPT_DEPTHWISE,), (2, 3), 1),
    "PRELU": ((OPT_NONE,), (2, 2), 1),
    "ADD": ((OPT_ADD,), (2, 2), 1),
    "MAX_POOL_2D": ((OPT_POOL2D,), (1, 1), 1),
    "PAD": ((OPT_NONE, OPT_PAD), (2, 2), 1),
    "RESIZE_BILINEAR": ((OPT_RESIZE_BILINEAR,), (2, 2), 1),
    "RESHAPE": ((OPT_NONE, OPT_RESHAPE), (1, 2), 1),
    "CONCATENATION": ((OPT_CONCAT,), (1, MAX_OP_TENSORS), 1),
}


class ConvertError(Exception):
    """A refusal; str() is the one-line message after `error: `."""


# ---------------------------------------------------------------------------------
# Flatbuffer reader
#
# A flatbuffer starts with a uoffset (uint32) to the root table; a table starts with an
# soffset (int32) back to its vtable: uint16 vtable size, uint16 table size, then one
# uint16 offset per field (0 or beyond the vtable: absent, default value). A field that
# refers to a table, vector or string holds a uoffset relative to the field's own
# position; a vector is a uint32 count and its elements, a string a uint32 length, the
# bytes and a NUL; a vector of tables holds one uoffset per element; a union is a ubyte
# type field followed by a uoffset field. uoffsets are unsigned, so references only lead
# forward, and this reader walks the fixed TFLite schema, never a structure of the file's
# choosing: a damaged file cannot make it loop.
# ---------------------------------------------------------------------------------

class Flat(object):
    def __init__(self, raw):
        self.raw = raw
        self.size = len(raw)

    def check(self, pos, n, what, align=1):
        if pos < 0 or n < 0 or pos + n > self.size:
            raise ConvertError("%s at byte %d (%d bytes) lies outside the file (%d bytes): truncated or damaged"
                               % (what, pos, n, self.size))
        if align > 1 and pos % align:
            raise ConvertError("%s at byte %d is not aligned to %d bytes: damaged file" % (what, pos, align))

    def scalar(self, fmt, pos, what):
        n = struct.calcsize("<" + fmt)
        self.check(pos, n, what, n)
        return struct.unpack_from("<" + fmt, self.raw, pos)[0]

    def root(self, what):
        return Table(self, self.scalar("I", 0, "root offset"), what)


class Table(object):
    def __init__(self, flat, pos, what):
        self.flat, self.pos, self.what = flat, pos, what
        flat.check(pos, 4, what + " table", 4)
        soff = struct.unpack_from("<i", flat.raw, pos)[0]
        vt = pos - soff
        flat.check(vt, 4, what + " vtable", 2)
        self.vt = vt
        self.vt_size, self.size = struct.unpack_from("<HH", flat.raw, vt)
        if self.vt_size < 4 or self.vt_size % 2:
            raise ConvertError("%s vtable at byte %d has a bad size %d: damaged file" % (what, vt, self.vt_size))
        flat.check(vt, self.vt_size, what + " vtable", 2)
        if self.size < 4:
            raise ConvertError("%s table at byte %d has a bad size %d: damaged file" % (what, pos, self.size))
        flat.check(pos, self.size, what + " table", 4)

    def _field(self, index, nbytes, name):
        slot = 4 + 2 * index
        if slot + 2 > self.vt_size:
            return None
        off = struct.unpack_from("<H", self.flat.raw, self.vt + slot)[0]
        if off == 0:
            return None
        if off + nbytes > self.size:
            raise ConvertError("%s field %s at offset %d runs past its table (%d bytes): damaged file"
                               % (self.what, name, off, self.size))
        pos = self.pos + off
        if pos % nbytes:
            raise ConvertError("%s field %s at byte %d is not aligned to %d bytes: damaged file"
                               % (self.what, name, pos, nbytes))
        return pos

    def has(self, index):
        slot = 4 + 2 * index
        return slot + 2 <= self.vt_size and struct.unpack_from("<H", self.flat.raw, self.vt + slot)[0] != 0

    def scalar(self, index, fmt, default, name):
        pos = self._field(index, struct.calcsize("<" + fmt), name)
        if pos is None:
            return default
        return struct.unpack_from("<" + fmt, self.flat.raw, pos)[0]

    def _target(self, index, name):
        pos = self._field(index, 4, name)
        if pos is None:
            return None
        return pos + struct.unpack_from("<I", self.flat.raw, pos)[0]

    def table(self, index, name):
        t = self._target(index, name)
        return None if t is None else Table(self.flat, t, "%s.%s" % (self.what, name))

    def _vector(self, index, itemsize, name, cap):
        t = self._target(index, name)
        if t is None:
            return None, 0
        what = "%s.%s" % (self.what, name)
        self.flat.check(t, 4, what + " vector length", 4)
        count = struct.unpack_from("<I", self.flat.raw, t)[0]
        if count * itemsize > self.flat.size - (t + 4):
            raise ConvertError("%s: vector of %d elements (%d bytes) runs past the end of the file (%d bytes left): "
                               "truncated or damaged" % (what, count, count * itemsize, self.flat.size - (t + 4)))
        if cap is not None and count > cap:
            raise ConvertError("%s: %d elements, more than the %d this converter accepts: damaged file" % (what, count, cap))
        if itemsize > 1 and (t + 4) % itemsize:
            raise ConvertError("%s: vector at byte %d not aligned to %d bytes: damaged file" % (what, t + 4, itemsize))
        return t + 4, count

    def vector(self, index, fmt, name, cap=None):
        """A vector of scalars as a tuple (None when absent)."""
        size = struct.calcsize("<" + fmt)
        start, count = self._vector(index, size, name, cap)
        if start is None:
            return None
        return struct.unpack_from("<%d%s" % (count, fmt), self.flat.raw, start)

    def bytes_vector(self, index, name):
        """A [ubyte] vector as (file offset, length), or (None, 0) when absent."""
        return self._vector(index, 1, name, None)

    def tables(self, index, name, cap):
        start, count = self._vector(index, 4, name, cap)
        if start is None:
            return []
        raw, out = self.flat.raw, []
        for i in range(count):
            p = start + 4 * i
            out.append(Table(self.flat, p + struct.unpack_from("<I", raw, p)[0], "%s.%s[%d]" % (self.what, name, i)))
        return out

    def string(self, index, name):
        t = self._target(index, name)
        if t is None:
            return None
        what = "%s.%s" % (self.what, name)
        self.flat.check(t, 4, what + " string length", 4)
        n = struct.unpack_from("<I", self.flat.raw, t)[0]
        if n + 1 > self.flat.size - (t + 4):
            raise ConvertError("%s: string of %d bytes runs past the end of the file: truncated or damaged" % (what, n))
        if self.flat.raw[t + 4 + n] != 0:
            raise ConvertError("%s: string at byte %d is not NUL-terminated: damaged file" % (what, t))
        try:
            return self.flat.raw[t + 4:t + 4 + n].decode("utf-8")
        except UnicodeDecodeError:
            raise ConvertError("%s: string at byte %d is not UTF-8: damaged file" % (what, t))

    def union_type(self, index, name):
        return self.scalar(index, "B", 0, name)


# ---------------------------------------------------------------------------------
# The TFLite model (schema version 3) as plain Python objects
# ---------------------------------------------------------------------------------

TensorInfo = collections.namedtuple("TensorInfo", "index name shape type buffer")
OpInfo = collections.namedtuple("OpInfo", "index code name version inputs outputs options_type options")
BufferInfo = collections.namedtuple("BufferInfo", "offset size")


class TFLiteModel(object):
    """What the converter reads of a .tflite: operator codes, the one subgraph's tensors,
    inputs, outputs and operators, buffers (file offset and size of each data vector)."""

    def __init__(self, raw):
        if len(raw) < 8:
            raise ConvertError("not a TFLite model (%d bytes, shorter than a flatbuffer header)" % len(raw))
        if raw[4:8] != b"TFL3":
            raise ConvertError(_not_tflite_reason(raw))
        flat = Flat(raw)
        model = flat.root("Model")
        self.version = model.scalar(0, "I", 0, "version")
        if self.version != 3:
            raise ConvertError("TFLite schema version %d, this converter reads version 3" % self.version)
        self.description = model.string(3, "description") or ""

        self.buffers = []
        for b in model.tables(4, "buffers", MAX_BUFFERS):
            start, n = b.bytes_vector(0, "data")
            ext_offset = b.scalar(1, "Q", 0, "offset")
            ext_size = b.scalar(2, "Q", 0, "size")
            if ext_offset or ext_size:
                raise ConvertError("%s keeps its data outside the flatbuffer (offset %d, size %d): not supported"
                                   % (b.what, ext_offset, ext_size))
            self.buffers.append(BufferInfo(start, n))
        if not self.buffers:
            raise ConvertError("Model.buffers is empty (buffer 0, the empty sentinel, is required)")

        self.metadata = []
        for m in model.tables(6, "metadata", MAX_METADATA):
            name = m.string(0, "name") or ""
            buf = m.scalar(1, "I", 0, "buffer")
            if buf >= len(self.buffers):
                raise ConvertError("%s (%r) refers to buffer %d of %d" % (m.what, name, buf, len(self.buffers)))
            self.metadata.append((name, buf))
        mb = model.vector(5, "i", "metadata_buffer", MAX_BUFFERS) or ()
        for b in mb:
            if not 0 <= b < len(self.buffers):
                raise ConvertError("Model.metadata_buffer refers to buffer %d of %d" % (b, len(self.buffers)))

        self.codes = []
        for oc in model.tables(1, "operator_codes", MAX_OPERATOR_CODES):
            deprecated = oc.scalar(0, "b", 0, "deprecated_builtin_code")
            extended = oc.scalar(3, "i", 0, "builtin_code")
            # schema.fbs: the builtin is the larger of the two fields (the byte field is
            # kept for old readers and saturates at 127).
            code = max(deprecated, extended)
            if code == BUILTIN_CUSTOM or oc.has(1):
                custom = oc.string(1, "custom_code")
                raise ConvertError("%s is a custom op (%r): not supported" % (oc.what, custom))
            self.codes.append((code, oc.scalar(2, "i", 1, "version")))

        _, nsub = model._vector(2, 4, "subgraphs", None)
        if nsub != 1:
            raise ConvertError("model has %d subgraphs, expected 1" % nsub)
        sg = model.tables(2, "subgraphs", 1)[0]
        self.tensors = []
        for i, t in enumerate(sg.tables(0, "tensors", MAX_TENSORS)):
            t.what = "tensor %d" % i
            self.tensors.append(self._tensor(i, t))
        nt = len(self.tensors)
        self.inputs = self._indices(sg.vector(1, "i", "inputs", MAX_OP_TENSORS) or (), nt, "subgraph inputs")
        self.outputs = self._indices(sg.vector(2, "i", "outputs", MAX_OP_TENSORS) or (), nt, "subgraph outputs")
        self.ops = []
        for i, op in enumerate(sg.tables(3, "operators", MAX_OPERATORS)):
            op.what = "operator %d" % i
            self.ops.append(self._operator(i, op, nt))
        if not self.ops:
            raise ConvertError("model has no operators")

    def _tensor(self, i, t):
        name = t.string(3, "name") or ""
        shape = t.vector(0, "i", "shape", MAX_RANK)
        if shape is None:
            raise ConvertError("tensor %d (%s) has no shape" % (i, name))
        ttype = t.scalar(1, "b", 0, "type")
        buf = t.scalar(2, "I", 0, "buffer")
        if buf >= len(self.buffers):
            raise ConvertError("tensor %d (%s) refers to buffer %d, the model has %d" % (i, name, buf, len(self.buffers)))
        q = t.table(4, "quantization")
        if q is not None:
            scale = q.vector(2, "f", "scale")
            zero = q.vector(3, "q", "zero_point")
            if scale or zero or q.union_type(4, "details_type"):
                raise ConvertError("tensor %d (%s) is quantized: not supported" % (i, name))
            q.vector(0, "f", "min")
            q.vector(1, "f", "max")
        if t.scalar(5, "B", 0, "is_variable"):
            raise ConvertError("tensor %d (%s) is a variable: not supported" % (i, name))
        if t.has(6):
            raise ConvertError("tensor %d (%s) is sparse: not supported" % (i, name))
        t.vector(7, "i", "shape_signature", MAX_RANK)
        for d in shape:
            if d < 1:
                raise ConvertError("tensor %d (%s) has shape %s: every dimension must be at least 1" % (i, name, list(shape)))
        if _numel(shape) > MAX_TENSOR_ELEMENTS:
            raise ConvertError("tensor %d (%s) has shape %s: over %d elements" % (i, name, list(shape), MAX_TENSOR_ELEMENTS))
        nbytes = self.buffers[buf].size
        if nbytes:
            if ttype not in _TYPE_SIZES:
                raise ConvertError("tensor %d (%s): constant of type %s: not supported" % (i, name, type_name(ttype)))
            want = _numel(shape) * _TYPE_SIZES[ttype]
            if nbytes != want:
                raise ConvertError("tensor %d (%s) %s %s: its buffer %d holds %d bytes, the shape needs %d"
                                   % (i, name, type_name(ttype), list(shape), buf, nbytes, want))
        return TensorInfo(i, name, tuple(shape), ttype, buf)

    @staticmethod
    def _indices(values, nt, what):
        for v in values:
            if not 0 <= v < nt:
                raise ConvertError("%s: tensor index %d, the model has %d tensors" % (what, v, nt))
        return tuple(values)

    def _operator(self, i, op, nt):
        ci = op.scalar(0, "I", 0, "opcode_index")
        if ci >= len(self.codes):
            raise ConvertError("operator %d: opcode index %d, the model has %d operator codes" % (i, ci, len(self.codes)))
        code, version = self.codes[ci]
        name = builtin_name(code)
        if name not in SUPPORTED:
            raise ConvertError("operator %d is %s, which this converter does not know (it runs %s)"
                               % (i, name, ", ".join(sorted(SUPPORTED))))
        inputs = op.vector(1, "i", "inputs", MAX_OP_TENSORS) or ()
        outputs = op.vector(2, "i", "outputs", MAX_OP_TENSORS) or ()
        for v in inputs + outputs:
            if not 0 <= v < nt:
                raise ConvertError("operator %d (%s): tensor index %d, the model has %d tensors" % (i, name, v, nt))
        otype = op.union_type(3, "builtin_options_type")
        options = op.table(4, "builtin_options") if otype != OPT_NONE else None
        if otype != OPT_NONE and options is None:
            raise ConvertError("operator %d (%s): options of type %d without a table" % (i, name, otype))
        if op.has(5):
            raise ConvertError("operator %d (%s) has custom options: not supported" % (i, name))
        if op.vector(8, "i", "intermediates", MAX_OP_TENSORS):
            raise ConvertError("operator %d (%s) has intermediate tensors: not supported" % (i, name))
        if any(op.vector(7, "B", "mutating_variable_inputs", MAX_OP_TENSORS) or ()):
            raise ConvertError("operator %d (%s) mutates a variable: not supported" % (i, name))
        if op.has(9) or op.has(10) or op.union_type(11, "builtin_options_2_type"):
            raise ConvertError("operator %d (%s) has large custom options or second options: not supported" % (i, name))
        return OpInfo(i, code, name, version, inputs, outputs, otype, options)


def _not_tflite_reason(raw):
    if len(raw) >= 10:
        (n,) = struct.unpack_from("<Q", raw, 0)
        if raw[8:9] == b"{" and 2 <= n <= len(raw) - 8:
            try:
                header = json.loads(raw[8:8 + n].decode("utf-8"))
                fmt = header.get("__metadata__", {}).get("format")
            except Exception:
                fmt = None
            if fmt == HAND_FORMAT_NAME:
                return ("a handgraph hand-network weight file (format %r), not a TFLite model: give the palm "
                        "detector's .tflite (tools/get_palm_detector.sh fetches it)" % fmt)
            if fmt == FORMAT_NAME:
                return "already a converted palm-detector file (format %r), not a TFLite model" % fmt
            return "a safetensors file, not a TFLite model"
    if raw[:2] == b"\x80\x02" or raw[:4] == b"PK\x03\x04":
        return "a PyTorch checkpoint or zip archive, not a TFLite model"
    return "not a TFLite model (no \"TFL3\" file identifier at byte 4)"


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _shape(s):
    return "[" + ", ".join(str(d) for d in s) + "]"


def widen_float16(data):
    """float16 bytes (little-endian) -> float32 bytes, exact (every float16 is a float32)."""
    n = len(data) // 2
    return struct.pack("<%df" % n, *struct.unpack("<%de" % n, data))


# ---------------------------------------------------------------------------------
# The graph: validation of every op and the description the C++ runs
# ---------------------------------------------------------------------------------

def same_padding(size, kernel, stride, dilation):
    """TFLite's SAME rule (kernels/padding.h): output ceil(size / stride); the total padding
    (out - 1) * stride + effective kernel - size, at least 0, split with the odd pixel after."""
    out = (size + stride - 1) // stride
    effective = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + effective - size, 0)
    return out, total // 2, total - total // 2


def valid_output(size, kernel, stride, dilation):
    effective = (kernel - 1) * dilation + 1
    return (size - effective + stride) // stride


class GraphBuilder(object):
    def __init__(self, model, raw):
        self.m = model
        self.raw = raw
        self.constants = {}     # tensor index -> ("F32", bytes) or ("I32", tuple of ints)
        self.values = {}        # tensor index -> dense value id (activations)
        self.value_list = []    # [{"id", "shape", "name", "tflite_tensor"}]
        self.produced = set()   # tensor indices made by an op so far
        self.ops = []           # graph ops (JSON-ready dicts)
        self.weights = {}       # safetensors name -> (shape, float32 bytes)

    # -- tensors ------------------------------------------------------------------
    def tensor(self, i):
        return self.m.tensors[i]

    def describe(self, i):
        t = self.tensor(i)
        return "tensor %d (%s)" % (i, t.name)

    def const_bytes(self, t):
        b = self.m.buffers[t.buffer]
        return self.raw[b.offset:b.offset + b.size] if b.size else b""

    def is_const(self, i):
        return i in self.constants or self.m.buffers[self.tensor(i).buffer].size > 0

    def float_const(self, i, what):
        """float32 bytes of a constant: a FLOAT32 buffer or a DEQUANTIZE'd FLOAT16 one."""
        if i in self.constants:
            kind, data = self.constants[i]
            if kind == "F32":
                return data
        t = self.tensor(i)
        data = self.const_bytes(t)
        if data and t.type == T_FLOAT32:
            return data
        raise ConvertError("%s of %s must be a float32 constant (or a dequantized float16 one)" % (what, self.describe(i)))

    def int_const(self, i, what):
        t = self.tensor(i)
        data = self.const_bytes(t)
        if not data or t.type != T_INT32:
            raise ConvertError("%s of %s must be an int32 constant" % (what, self.describe(i)))
        return struct.unpack("<%di" % (len(data) // 4), data)

    def value(self, i, what):
        """An activation input: float32, not constant, made by an earlier op or the graph input."""
        t = self.tensor(i)
        if self.is_const(i):
            raise ConvertError("%s %s is a constant, expected an activation" % (what, self.describe(i)))
        if t.type != T_FLOAT32:
            raise ConvertError("%s %s is %s, expected FLOAT32" % (what, self.describe(i), type_name(t.type)))
        if i not in self.values:
            raise ConvertError("%s %s is used before any operator makes it (operators out of order)" % (what, self.describe(i)))
        return self.values[i]

    def new_value(self, i, expected_shape, what):
        t = self.tensor(i)
        if self.is_const(i):
            raise ConvertError("%s %s has constant data" % (what, self.describe(i)))
        if t.type != T_FLOAT32:
            raise ConvertError("%s %s is %s, expected FLOAT32" % (what, self.describe(i), type_name(t.type)))
        if i in self.values:
            raise ConvertError("%s %s is written twice" % (what, self.describe(i)))
        if expected_shape is not None and tuple(expected_shape) != t.shape:
            raise ConvertError("%s %s has shape %s, the op makes %s" % (what, self.describe(i), _shape(t.shape), _shape(expected_shape)))
        vid = len(self.value_list)
        self.values[i] = vid
        self.value_list.append(collections.OrderedDict([("id", vid), ("shape", list(t.shape)),
                                                        ("tflite_tensor", i), ("name", t.name)]))
        return vid

    def add_weight(self, op_index, role, shape, data, source):
        name = "op%03d.%s" % (op_index, role)
        values = struct.unpack("<%df" % (len(data) // 4), data)
        for k, v in enumerate(values):
            if not math.isfinite(v):
                raise ConvertError("%s (from %s) has a non-finite value %r at element %d" % (name, self.describe(source), v, k))
        self.weights[name] = (tuple(shape), data)
        return name

    # -- ops ----------------------------------------------------------------------
    def run(self):
        m = self.m
        if len(m.inputs) != 1:
            raise ConvertError("model has %d inputs, a palm detector has 1" % len(m.inputs))
        i0 = m.inputs[0]
        t0 = self.tensor(i0)
        if t0.type != T_FLOAT32 or len(t0.shape) != 4 or t0.shape[0] != 1 or t0.shape[3] != 3:
            raise ConvertError("input %s is %s %s, a palm detector takes FLOAT32 [1, H, W, 3]"
                               % (self.describe(i0), type_name(t0.type), _shape(t0.shape)))
        self.new_value(i0, None, "graph input")
        for op in m.ops:
            self.op(op)
        return self.finish()

    def op(self, op):
        accepted, (nmin, nmax), nout = SUPPORTED[op.name]
        where = "operator %d (%s)" % (op.index, op.name)
        if op.options_type not in accepted:
            raise ConvertError("%s has options of type %s, expected %s" % (
                where, _OPTION_NAMES.get(op.options_type, str(op.options_type)),
                " or ".join(_OPTION_NAMES[a] for a in accepted)))
        inputs = list(op.inputs)
        while inputs and inputs[-1] == -1 and len(inputs) > nmin:
            inputs.pop()  # omitted optional inputs (-1)
        if any(v == -1 for v in inputs) or not nmin <= len(inputs) <= nmax:
            raise ConvertError("%s has inputs %s, expected %d to %d tensors" % (where, list(op.inputs), nmin, nmax))
        if len(op.outputs) != nout or any(v == -1 for v in op.outputs):
            raise ConvertError("%s has outputs %s, expected %d tensor" % (where, list(op.outputs), nout))
        try:
            getattr(self, "op_" + op.name.lower())(op, inputs, op.outputs[0], op.options)
        except ConvertError as e:
            msg = str(e)
            raise ConvertError(msg if msg.startswith(where) else "%s: %s" % (where, msg))

    def emit(self, op, name, inputs, output, **fields):
        index = len(self.ops)
        entry = collections.OrderedDict([("index", index), ("op", name), ("tflite_op", op.index),
                                         ("inputs", inputs), ("outputs", [output])])
        entry.update(fields)
        self.ops.append(entry)
        return entry

    def op_dequantize(self, op, inputs, out, options):
        src = self.tensor(inputs[0])
        data = self.const_bytes(src)
        if not data or src.type != T_FLOAT16:
            raise ConvertError("input %s is not a float16 constant (only float16 weights are dequantized)" % self.describe(inputs[0]))
        dst = self.tensor(out)
        if dst.type != T_FLOAT32 or dst.shape != src.shape:
            raise ConvertError("output %s is %s %s, expected FLOAT32 %s" % (self.describe(out), type_name(dst.type), _shape(dst.shape), _shape(src.shape)))
        if out in self.constants or out in self.values or self.m.buffers[dst.buffer].size:
            raise ConvertError("output %s is written twice" % self.describe(out))
        self.constants[out] = ("F32", widen_float16(data))

    def _activation(self, options, index, where="fused activation"):
        a = options.scalar(index, "b", 0, "fused_activation_function")
        if a not in ACTIVATIONS:
            raise ConvertError("%s %d (TANH/SIGN_BIT or unknown) is not supported" % (where, a))
        return ACTIVATIONS[a]

    def _window(self, h, w, kh, kw, padding, sh, sw, dh, dw):
        if padding == "SAME":
            oh, pt, pb = same_padding(h, kh, sh, dh)
            ow, pl, pr = same_padding(w, kw, sw, dw)
        else:
            oh, ow = valid_output(h, kh, sh, dh), valid_output(w, kw, sw, dw)
            pt = pb = pl = pr = 0
        if oh < 1 or ow < 1:
            raise ConvertError("window %dx%d (stride %d, %d) does not fit the %dx%d input" % (kh, kw, sh, sw, h, w))
        return oh, ow, [pt, pb, pl, pr]

    def _conv_common(self, options, depthwise):
        padding = options.scalar(0, "b", 0, "padding")
        if padding not in (0, 1):
            raise ConvertError("padding %d is neither SAME nor VALID" % padding)
        sw = options.scalar(1, "i", 0, "stride_w")
        sh = options.scalar(2, "i", 0, "stride_h")
        if depthwise:
            multiplier = options.scalar(3, "i", 0, "depth_multiplier")
            act = self._activation(options, 4)
            dw = options.scalar(5, "i", 1, "dilation_w_factor")
            dh = options.scalar(6, "i", 1, "dilation_h_factor")
        else:
            multiplier = None
            act = self._activation(options, 3)
            dw = options.scalar(4, "i", 1, "dilation_w_factor")
            dh = options.scalar(5, "i", 1, "dilation_h_factor")
        for v, n in ((sw, "stride_w"), (sh, "stride_h"), (dw, "dilation_w_factor"), (dh, "dilation_h_factor")):
            if not 1 <= v <= 64:
                raise ConvertError("%s %d is outside 1..64" % (n, v))
        return PADDINGS[padding], sh, sw, dh, dw, act, multiplier

    def _bias(self, op, inputs, channels):
        if len(inputs) < 3:
            return None
        b = self.tensor(inputs[2])
        data = self.float_const(inputs[2], "bias")
        if b.shape != (channels,):
            raise ConvertError("bias %s has shape %s, expected [%d]" % (self.describe(inputs[2]), _shape(b.shape), channels))
        return self.add_weight(len(self.ops), "bias", b.shape, data, inputs[2])

    def op_conv_2d(self, op, inputs, out, options):
        x = self.value(inputs[0], "input")
        xs = self.tensor(inputs[0]).shape
        f = self.tensor(inputs[1])
        fdata = self.float_const(inputs[1], "filter")
        if len(xs) != 4 or len(f.shape) != 4:
            raise ConvertError("input %s and filter %s must be 4-D" % (_shape(xs), _shape(f.shape)))
        cout, kh, kw, cin = f.shape
        if cin != xs[3]:
            raise ConvertError("filter %s takes %d channels, the input %s has %d" % (_shape(f.shape), cin, _shape(xs), xs[3]))
        padding, sh, sw, dh, dw, act, _ = self._conv_common(options, False)
        oh, ow, pads = self._window(xs[1], xs[2], kh, kw, padding, sh, sw, dh, dw)
        index = len(self.ops)
        filt = self.add_weight(index, "filter", f.shape, fdata, inputs[1])
        bias = self._bias(op, inputs, cout)
        y = self.new_value(out, (xs[0], oh, ow, cout), "output")
        self.emit(op, "CONV_2D", [x], y, filter=filt, bias=bias, kernel=[kh, kw], stride=[sh, sw],
                  dilation=[dh, dw], padding=padding, pad=pads, activation=act)

    def op_depthwise_conv_2d(self, op, inputs, out, options):
        x = self.value(inputs[0], "input")
        xs = self.tensor(inputs[0]).shape
        f = self.tensor(inputs[1])
        fdata = self.float_const(inputs[1], "filter")
        if len(xs) != 4 or len(f.shape) != 4 or f.shape[0] != 1:
            raise ConvertError("input %s and filter %s must be 4-D, the filter [1, KH, KW, C]" % (_shape(xs), _shape(f.shape)))
        _, kh, kw, c = f.shape
        padding, sh, sw, dh, dw, act, multiplier = self._conv_common(options, True)
        if multiplier != 1 or c != xs[3]:
            raise ConvertError("depth multiplier %d with a %s filter on %d channels: only multiplier 1 "
                               "(filter channels = input channels) is supported" % (multiplier, _shape(f.shape), xs[3]))
        oh, ow, pads = self._window(xs[1], xs[2], kh, kw, padding, sh, sw, dh, dw)
        index = len(self.ops)
        filt = self.add_weight(index, "filter", f.shape, fdata, inputs[1])
        bias = self._bias(op, inputs, c)
        y = self.new_value(out, (xs[0], oh, ow, c), "output")
        self.emit(op, "DEPTHWISE_CONV_2D", [x], y, filter=filt, bias=bias, kernel=[kh, kw], stride=[sh, sw],
                  dilation=[dh, dw], padding=padding, pad=pads, activation=act)

    def op_prelu(self, op, inputs, out, options):
        x = self.value(inputs[0], "input")
        xs = self.tensor(inputs[0]).shape
        a = self.tensor(inputs[1])
        adata = self.float_const(inputs[1], "alpha")
        c = xs[-1]
        if len(a.shape) > len(xs) or a.shape[-1] != c or _numel(a.shape) != c:
            raise ConvertError("alpha %s is not one value per channel of the input %s" % (_shape(a.shape), _shape(xs)))
        alpha = self.add_weight(len(self.ops), "alpha", (c,), adata, inputs[1])
        y = self.new_value(out, xs, "output")
        self.emit(op, "PRELU", [x], y, alpha=alpha)

    def op_add(self, op, inputs, out, options):
        a = self.value(inputs[0], "input")
        b = self.value(inputs[1], "input")
        sa, sb = self.tensor(inputs[0]).shape, self.tensor(inputs[1]).shape
        if sa != sb:
            raise ConvertError("inputs of shapes %s and %s: broadcasting is not supported" % (_shape(sa), _shape(sb)))
        act = self._activation(options, 0)
        y = self.new_value(out, sa, "output")
        self.emit(op, "ADD", [a, b], y, activation=act)

    def op_max_pool_2d(self, op, inputs, out, options):
        x = self.value(inputs[0], "input")
        xs = self.tensor(inputs[0]).shape
        if len(xs) != 4:
            raise ConvertError("input %s must be 4-D" % _shape(xs))
        padding = options.scalar(0, "b", 0, "padding")
        if padding not in (0, 1):
            raise ConvertError("padding %d is neither SAME nor VALID" % padding)
        sw, sh = options.scalar(1, "i", 0, "stride_w"), options.scalar(2, "i", 0, "stride_h")
        fw, fh = options.scalar(3, "i", 0, "filter_width"), options.scalar(4, "i", 0, "filter_height")
        for v, n in ((sw, "stride_w"), (sh, "stride_h"), (fw, "filter_width"), (fh, "filter_height")):
            if not 1 <= v <= 64:
                raise ConvertError("%s %d is outside 1..64" % (n, v))
        act = self._activation(options, 5)
        oh, ow, pads = self._window(xs[1], xs[2], fh, fw, PADDINGS[padding], sh, sw, 1, 1)
        y = self.new_value(out, (xs[0], oh, ow, xs[3]), "output")
        self.emit(op, "MAX_POOL_2D", [x], y, filter=[fh, fw], stride=[sh, sw], padding=PADDINGS[padding],
                  pad=pads, activation=act)

    def op_pad(self, op, inputs, out, options):
        x = self.value(inputs[0], "input")
        xs = self.tensor(inputs[0]).shape
        p = self.tensor(inputs[1])
        pv = self.int_const(inputs[1], "paddings")
        if p.shape != (len(xs), 2):
            raise ConvertError("paddings %s, expected [%d, 2]" % (_shape(p.shape), len(xs)))
        pads = [[pv[2 * k], pv[2 * k + 1]] for k in range(len(xs))]
        if any(v < 0 or v > 4096 for pair in pads for v in pair):
            raise ConvertError("paddings %s: each must be in 0..4096" % pads)
        y = self.new_value(out, tuple(d + a + b for d, (a, b) in zip(xs, pads)), "output")
        self.emit(op, "PAD", [x], y, paddings=pads)

    def op_resize_bilinear(self, op, inputs, out, options):
        x = self.value(inputs[0], "input")
        xs = self.tensor(inputs[0]).shape
        s = self.tensor(inputs[1])
        size = self.int_const(inputs[1], "size")
        if len(xs) != 4 or s.shape != (2,):
            raise ConvertError("input %s must be 4-D and size %s [2]" % (_shape(xs), _shape(s.shape)))
        if not all(1 <= v <= 16384 for v in size):
            raise ConvertError("size %s must be in 1..16384" % list(size))
        align = bool(options.scalar(2, "B", 0, "align_corners"))
        half = bool(options.scalar(3, "B", 0, "half_pixel_centers"))
        if align and half:
            raise ConvertError("align_corners and half_pixel_centers are both set (TFLite refuses this)")
        y = self.new_value(out, (xs[0], size[0], size[1], xs[3]), "output")
        self.emit(op, "RESIZE_BILINEAR", [x], y, size=list(size), align_corners=align, half_pixel_centers=half)

    def op_reshape(self, op, inputs, out, options):
        x = self.value(inputs[0], "input")
        xs = self.tensor(inputs[0]).shape
        ys = self.tensor(out).shape
        if _numel(xs) != _numel(ys):
            raise ConvertError("output %s %s does not hold the %d elements of the input %s"
                               % (self.describe(out), _shape(ys), _numel(xs), _shape(xs)))
        wanted = None
        if len(inputs) == 2:
            wanted = self.int_const(inputs[1], "shape")
        elif options is not None and options.has(0):
            wanted = options.vector(0, "i", "new_shape", MAX_RANK)
        if wanted is not None:
            free = [k for k, v in enumerate(wanted) if v == -1]
            if len(wanted) != len(ys) or len(free) > 1 or any(v < 1 and v != -1 for v in wanted) or \
                    any(v != -1 and v != d for v, d in zip(wanted, ys)):
                raise ConvertError("new shape %s does not match the output %s" % (list(wanted), _shape(ys)))
        y = self.new_value(out, ys, "output")
        self.emit(op, "RESHAPE", [x], y, shape=list(ys))

    def op_concatenation(self, op, inputs, out, options):
        xs = [self.value(i, "input") for i in inputs]
        shapes = [self.tensor(i).shape for i in inputs]
        rank = len(shapes[0])
        axis = options.scalar(0, "i", 0, "axis")
        if not -rank <= axis < rank:
            raise ConvertError("axis %d outside a rank-%d tensor" % (axis, rank))
        axis %= rank
        for s in shapes:
            if len(s) != rank or any(a != b for k, (a, b) in enumerate(zip(s, shapes[0])) if k != axis):
                raise ConvertError("inputs of shapes %s do not concatenate on axis %d" % (", ".join(_shape(s) for s in shapes), axis))
        act = self._activation(options, 1)
        ys = list(shapes[0])
        ys[axis] = sum(s[axis] for s in shapes)
        y = self.new_value(out, ys, "output")
        self.emit(op, "CONCATENATION", xs, y, axis=axis, activation=act)

    # -- the palm-detector contract ------------------------------------------------
    def finish(self):
        m = self.m
        if len(m.outputs) != 2:
            raise ConvertError("model has %d outputs, a palm detector has 2 (regressors, scores)" % len(m.outputs))
        named = {}
        for i in m.outputs:
            if i not in self.values:
                raise ConvertError("output %s is made by no operator" % self.describe(i))
            s = self.tensor(i).shape
            if len(s) != 3 or s[0] != 1 or s[2] not in (18, 1):
                raise ConvertError("output %s has shape %s, a palm detector gives [1, N, 18] and [1, N, 1]"
                                   % (self.describe(i), _shape(s)))
            role = "regressors" if s[2] == 18 else "scores"
            if role in named:
                raise ConvertError("two outputs of shape %s" % _shape(s))
            named[role] = i
        nr, ns = self.tensor(named["regressors"]).shape[1], self.tensor(named["scores"]).shape[1]
        if nr != ns:
            raise ConvertError("regressors for %d boxes but scores for %d" % (nr, ns))
        used = set(v for op in self.ops for v in op["inputs"])
        outs = set(self.values[i] for i in m.outputs)
        for op in self.ops:
            if op["outputs"][0] not in used and op["outputs"][0] not in outs:
                raise ConvertError("operator %d (%s) makes %s, which nothing uses" % (
                    op["tflite_op"], op["op"], self.value_list[op["outputs"][0]]["name"]))
        return named, nr


# ---------------------------------------------------------------------------------
# MediaPipe's settings for the palm detectors (see weights/PALM_FORMAT.md for sources)
# ---------------------------------------------------------------------------------

ANCHOR_SETTINGS = collections.OrderedDict([
    ("num_layers", 4), ("min_scale", 0.1484375), ("max_scale", 0.75),
    ("input_size_height", 192), ("input_size_width", 192),
    ("anchor_offset_x", 0.5), ("anchor_offset_y", 0.5),
    ("strides", [8, 16, 16, 16]), ("aspect_ratios", [1.0]),
    ("interpolated_scale_aspect_ratio", 1.0), ("reduce_boxes_in_lowest_layer", False),
    ("fixed_anchor_size", True)])


def ssd_anchors(s=ANCHOR_SETTINGS):
    """MediaPipe's SSD anchor rule (SsdAnchorsCalculator) -> [(x_center, y_center, w, h)].
    Layers of equal stride share one grid; each contributes one anchor per aspect ratio
    and one at the interpolated scale; with fixed_anchor_size every width and height is 1."""
    strides = s["strides"]
    n = s["num_layers"]

    def scale(i):
        return (s["min_scale"] + s["max_scale"]) * 0.5 if n == 1 else \
            s["min_scale"] + (s["max_scale"] - s["min_scale"]) * i / (n - 1.0)

    anchors = []
    layer = 0
    while layer < n:
        sizes = []
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            sc = scale(last)
            if last == 0 and s["reduce_boxes_in_lowest_layer"]:
                sizes += [(0.1, 1.0), (sc, 2.0), (sc, 0.5)]
            else:
                sizes += [(sc, ar) for ar in s["aspect_ratios"]]
                if s["interpolated_scale_aspect_ratio"] > 0:
                    nxt = 1.0 if last == len(strides) - 1 else scale(last + 1)
                    sizes.append((math.sqrt(sc * nxt), s["interpolated_scale_aspect_ratio"]))
            last += 1
        stride = strides[layer]
        fh = int(math.ceil(s["input_size_height"] / float(stride)))
        fw = int(math.ceil(s["input_size_width"] / float(stride)))
        for y in range(fh):
            for x in range(fw):
                for sc, ar in sizes:
                    xc = (x + s["anchor_offset_x"]) / fw
                    yc = (y + s["anchor_offset_y"]) / fh
                    if s["fixed_anchor_size"]:
                        w = h = 1.0
                    else:
                        w, h = sc * math.sqrt(ar), sc / math.sqrt(ar)
                    anchors.append((xc, yc, w, h))
        layer = last
    return anchors


def postprocess_settings(num_boxes):
    return collections.OrderedDict([
        ("input", collections.OrderedDict([
            ("width", 192), ("height", 192), ("color", "RGB"), ("range", [0.0, 1.0]),
            ("keep_aspect_ratio", True), ("border", "zero"), ("resample", "bilinear_pixel_centres")])),
        ("anchors", ANCHOR_SETTINGS),
        ("decode", collections.OrderedDict([
            ("num_boxes", num_boxes), ("num_coords", 18), ("box_coord_offset", 0),
            ("keypoint_coord_offset", 4), ("num_keypoints", 7), ("num_values_per_keypoint", 2),
            ("box_format", "xywh"), ("x_scale", 192.0), ("y_scale", 192.0), ("w_scale", 192.0),
            ("h_scale", 192.0), ("apply_exponential_on_box_size", False), ("sigmoid_score", True),
            ("score_clipping_thresh", 100.0), ("min_score_thresh", 0.5)])),
        ("nms", collections.OrderedDict([
            ("algorithm", "WEIGHTED"), ("overlap_type", "INTERSECTION_OVER_UNION"),
            ("min_suppression_threshold", 0.3)])),
        ("hand_region", collections.OrderedDict([
            ("rotation_start_keypoint", 0), ("rotation_end_keypoint", 2), ("target_angle_degrees", 90.0),
            ("scale_x", 2.6), ("scale_y", 2.6), ("shift_x", 0.0), ("shift_y", -0.5), ("square_long", True)])),
    ])


# ---------------------------------------------------------------------------------
# Conversion and output
# ---------------------------------------------------------------------------------

def read_model(path):
    """(raw bytes, TFLiteModel); refusals as ConvertError (without the file name)."""
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise ConvertError("cannot read (%s)" % (e.strerror or e))
    if size > MAX_FILE_BYTES:
        raise ConvertError("%d bytes, more than the %d a palm detector could need: not a palm detector" % (size, MAX_FILE_BYTES))
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ConvertError("cannot read (%s)" % (e.strerror or e))
    return raw, TFLiteModel(raw)


def build(raw, model):
    """(tensors {name: (dtype, shape, bytes)}, metadata {str: str})."""
    g = GraphBuilder(model, raw)
    named, num_boxes = g.run()
    anchors = ssd_anchors()
    if len(anchors) != num_boxes:
        raise ConvertError("the model gives %d boxes, MediaPipe's anchors for a 192x192 palm detector are %d"
                           % (num_boxes, len(anchors)))
    ih, iw = g.tensor(model.inputs[0]).shape[1:3]
    if (ih, iw) != (192, 192):
        raise ConvertError("input is %dx%d, MediaPipe's palm detectors take 192x192" % (ih, iw))
    tensors = {name: ("F32", shape, data) for name, (shape, data) in g.weights.items()}
    tensors["anchors"] = ("F32", (len(anchors), 4), b"".join(struct.pack("<4f", *a) for a in anchors))
    graph = collections.OrderedDict([
        ("input", g.values[model.inputs[0]]),
        ("outputs", collections.OrderedDict([("regressors", g.values[named["regressors"]]),
                                             ("scores", g.values[named["scores"]])])),
        ("values", g.value_list),
        ("ops", g.ops)])
    counts = collections.Counter(op["op"] for op in g.ops)
    sha = hashlib.sha256(raw).hexdigest()
    metadata = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "converter_version": CONVERTER_VERSION,
        "model": KNOWN_MODELS.get(sha, "unrecognised"),
        "sha256.source": sha,
        "source_bytes": str(len(raw)),
        "tflite_schema_version": str(model.version),
        "tflite_description": model.description,
        "num_ops": str(len(g.ops)),
        "op_counts": ",".join("%s=%d" % (k, counts[k]) for k in sorted(counts)),
        "num_boxes": str(num_boxes),
        "input_shape": ",".join(str(d) for d in g.tensor(model.inputs[0]).shape),
        "graph": json.dumps(graph, separators=(",", ":")),
        "postprocess": json.dumps(postprocess_settings(num_boxes), separators=(",", ":")),
    }
    return tensors, metadata


def safetensors_bytes(tensors, metadata):
    """tensors: {name: (dtype, shape, bytes)} -> (header bytes, [data blobs])."""
    header = collections.OrderedDict()
    header["__metadata__"] = collections.OrderedDict(sorted(metadata.items()))
    blobs, offset = [], 0
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        header[name] = collections.OrderedDict(
            [("dtype", dtype), ("shape", list(shape)), ("data_offsets", [offset, offset + len(data)])])
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((-(8 + len(h))) % 64)
    return struct.pack("<Q", len(h)) + h, blobs


def write_atomic(path, head, blobs):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConvertError("%s: output directory %s does not exist" % (path, directory))
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    except OSError as e:
        raise ConvertError("%s: cannot write (%s)" % (path, e.strerror or e))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            for b in blobs:
                f.write(b)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise ConvertError("%s: cannot write (%s)" % (path, e.strerror or e))
        raise


def convert(source, output):
    name = os.path.basename(source)
    try:
        raw, model = read_model(source)
        tensors, metadata = build(raw, model)
    except ConvertError as e:
        raise ConvertError("%s: %s" % (name, e))
    except RecursionError:
        raise ConvertError("%s: structure nested too deeply" % name)
    metadata["source_file"] = name
    head, blobs = safetensors_bytes(tensors, metadata)
    write_atomic(output, head, blobs)
    return metadata, len(tensors), len(head) + sum(len(b) for b in blobs)


def _printable(message):
    """One printable line: characters a file put into a name (newlines, terminal escape
    sequences, other separators) are shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write("error: %s (see --help)\n" % message)
        sys.exit(1)


def main(argv=None):
    p = _Parser(
        prog="convert_palm.py",
        description="Convert MediaPipe's palm detector (palm_detection_full.tflite or "
                    "palm_detection_lite.tflite) into one handgraph palm-detector file (safetensors: "
                    "float32 weights, the graph and MediaPipe's settings in its metadata; "
                    "weights/PALM_FORMAT.md). Python standard library only.",
        epilog="example: convert_palm.py palm_detection_full.tflite -o weights/palm_detection_full.safetensors. "
               "Exit status 0 on success; otherwise one line 'error: ...' on stderr, status 1, "
               "and no output file.")
    p.add_argument("input", help="the .tflite model")
    p.add_argument("-o", "--output", required=True, help="output .safetensors file (replaced atomically)")
    args = p.parse_args(argv)
    try:
        if not os.path.isfile(args.input):
            raise ConvertError("%s: no such file" % args.input)
        if os.path.exists(args.output) and os.path.samefile(args.input, args.output):
            raise ConvertError("%s: the output would replace the input" % args.output)
        metadata, count, size = convert(args.input, args.output)
    except ConvertError as e:
        sys.stderr.write("error: %s\n" % _printable(str(e)))
        return 1
    except MemoryError:
        sys.stderr.write("error: out of memory\n")
        return 1
    except Exception as e:  # a bug: still one line, never a partial output
        sys.stderr.write("error: internal error (%s: %s)\n" % (type(e).__name__, _printable(str(e))))
        return 1
    print("wrote %s: %s, %s ops, %d tensors, %d bytes" % (args.output, metadata["model"], metadata["num_ops"], count, size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
