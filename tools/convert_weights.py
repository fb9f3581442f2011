#!/usr/bin/env python3
"""Convert the released hand-graph-cnn checkpoints into one handgraph weight file.

    convert_weights.py CHECKPOINT_DIR --template 0214_lowP_vn_g.0001.obj -o weights.safetensors

CHECKPOINT_DIR holds net_hm.pth, net_feat_mesh.pth and net_mesh_pose.pth, saved by
PyTorch in either serialisation: the legacy one (PyTorch 0.4-1.5, a sequence of
pickles followed by raw storages) or the zip one (PyTorch >= 1.6). Keys may carry the
`module.` prefix of DataParallel; `num_batches_tracked` entries are dropped.

Python standard library only: no torch, no numpy. Checkpoints are unpickled with a
restricted unpickler that builds placeholders for the few globals a state dict needs
(OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter, torch.*Storage)
and refuses every other global by name, so no code in the files ever runs.

Every key, shape and dtype is checked against the model table below (the three
networks of Ge et al. CVPR 2019, as in checkpoint-keys.tsv). The output is the
safetensors file described in DEVELOPERS.md, written to a temporary file beside the
output and renamed only on success. Errors: one line `error: <file>: ...` on stderr,
exit status 1.
"""
import argparse
import collections
import hashlib
import io
import json
import math
import os
import pickle
import pickletools
import struct
import sys
import tempfile
import zipfile

CONVERTER_VERSION = "1"
FORMAT_NAME = "handgraph-weights"
FORMAT_VERSION = "1"
STEMS = ("net_hm", "net_feat_mesh", "net_mesh_pose")
TEMPLATE_VERTICES = 1010
NUM_JOINTS, NUM_STACKS, NUM_FEATURES = 21, 2, 256

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


class ConvertError(Exception):
    """A refusal; str() is the one-line message after `error: `."""


# ---------------------------------------------------------------------------------
# Model table: every state-dict key of the three networks, in state_dict() order.
# ---------------------------------------------------------------------------------

def _conv(t, p, cout, cin, k):
    t[p + ".weight"] = ((cout, cin, k, k), "float32")
    t[p + ".bias"] = ((cout,), "float32")


def _linear(t, p, fout, fin):
    t[p + ".weight"] = ((fout, fin), "float32")
    t[p + ".bias"] = ((fout,), "float32")


def _bn(t, p, c):
    for name in ("weight", "bias", "running_mean", "running_var"):
        t[p + "." + name] = ((c,), "float32")
    t[p + ".num_batches_tracked"] = ((), "int64")


def _residual(t, p, cin, cout):
    mid = cout // 2
    _bn(t, p + ".bn", cin)
    _conv(t, p + ".conv1", mid, cin, 1)
    _bn(t, p + ".bn1", mid)
    _conv(t, p + ".conv2", mid, mid, 3)
    _bn(t, p + ".bn2", mid)
    _conv(t, p + ".conv3", cout, mid, 1)
    if cin != cout:
        _conv(t, p + ".conv4", cout, cin, 1)


def _hourglass(t, p, depth, f):
    for part in ("up1_", "low1_"):
        for i in range(2):
            _residual(t, "%s.%s.%d" % (p, part, i), f, f)
    if depth > 1:
        _hourglass(t, p + ".low2", depth - 1, f)
    else:
        for i in range(2):
            _residual(t, "%s.low2_.%d" % (p, i), f, f)
    for i in range(2):
        _residual(t, "%s.low3_.%d" % (p, i), f, f)


def _net_hm(t):
    f, j = NUM_FEATURES, NUM_JOINTS
    _conv(t, "conv1_", 64, 3, 7)
    _bn(t, "bn1", 64)
    _residual(t, "r1", 64, 128)
    _residual(t, "r4", 128, 128)
    _residual(t, "r5", 128, f)
    for s in range(NUM_STACKS):
        _hourglass(t, "hourglass.%d" % s, 4, f)
    for i in range(2 * NUM_STACKS):
        _residual(t, "Residual.%d" % i, f, f)
    for s in range(NUM_STACKS):
        _conv(t, "lin_.%d.0" % s, f, f, 1)
        _bn(t, "lin_.%d.1" % s, f)
    for s in range(NUM_STACKS):
        _conv(t, "tmpOut.%d" % s, j, f, 1)
    for s in range(NUM_STACKS - 1):
        _conv(t, "ll_.%d" % s, f, f, 1)
    for s in range(NUM_STACKS - 1):
        _conv(t, "tmpOut_.%d" % s, f, j, 1)


def _net_feat_mesh(t):
    f, j = NUM_FEATURES, NUM_JOINTS
    _conv(t, "feat_net.heatmap_conv", f, j, 1)
    _conv(t, "feat_net.encoding_conv", f, f, 1)
    for i in range(8):
        _residual(t, "feat_net.reg_.%d" % i, f, f)
    _linear(t, "mesh_net.fc.fc_1.fc", 512, 4096)
    _linear(t, "mesh_net.fc.fc_2.fc", 80 * 64, 512)
    for i, (fout, fin) in enumerate([(64, 64), (32, 64), (32, 32), (3, 32)]):
        _linear(t, "mesh_net.cl.%d" % i, fout, fin * 3)
    for i, c in enumerate([64, 32, 32]):
        _bn(t, "mesh_net.bn.%d" % i, c)


def _net_mesh_pose(t):
    channels = [(32, 3), (32, 32), (64, 32), (64, 64)]
    for i, (fout, fin) in enumerate(channels):
        _linear(t, "cl.%d" % i, fout, fin * 3)
    for i, (fout, _) in enumerate(channels):
        _bn(t, "bn.%d" % i, fout)
    _linear(t, "fc.fc_1.fc", 512, 80 * 64)
    _linear(t, "fc.fc_2.fc", NUM_JOINTS - 1, 512)


def model_table():
    """{stem: OrderedDict(key -> (shape tuple, dtype name))}, keys in state_dict order."""
    table = collections.OrderedDict()
    for stem, build in zip(STEMS, (_net_hm, _net_feat_mesh, _net_mesh_pose)):
        t = collections.OrderedDict()
        build(t)
        table[stem] = t
    return table


# ---------------------------------------------------------------------------------
# Placeholders built by the restricted unpickler. Immutable (tuples, no __dict__) or
# refusing __setstate__, so that a pickle's BUILD opcode cannot alter them.
# ---------------------------------------------------------------------------------

# torch storage class name -> (dtype name, element size, safetensors dtype)
_STORAGE_DTYPES = {
    "FloatStorage": ("float32", 4, "F32"),
    "DoubleStorage": ("float64", 8, "F64"),
    "HalfStorage": ("float16", 2, "F16"),
    "BFloat16Storage": ("bfloat16", 2, "BF16"),
    "LongStorage": ("int64", 8, "I64"),
    "IntStorage": ("int32", 4, "I32"),
    "ShortStorage": ("int16", 2, "I16"),
    "CharStorage": ("int8", 1, "I8"),
    "ByteStorage": ("uint8", 1, "U8"),
    "BoolStorage": ("bool", 1, "BOOL"),
    "ComplexFloatStorage": ("complex64", 8, None),
    "ComplexDoubleStorage": ("complex128", 16, None),
}
_ITEM_FORMAT = {1: "B", 2: "H", 4: "I", 8: "Q"}


class StorageType(collections.namedtuple("StorageType", "name dtype itemsize")):
    __slots__ = ()


_STORAGE_TYPES = {n: StorageType(n, d[0], d[1]) for n, d in _STORAGE_DTYPES.items()}


class Storage(object):
    """One storage of a checkpoint: raw bytes filled in after the object pickle."""
    __slots__ = ("key", "stype", "numel", "data", "users")

    def __init__(self, key, stype, numel):
        self.key, self.stype, self.numel, self.data, self.users = key, stype, numel, None, []

    def __setstate__(self, state):  # a pickle's BUILD opcode must not alter a storage
        raise ConvertError("refusing to set state on storage %s" % self.key)


class StorageView(collections.namedtuple("StorageView", "root offset numel")):
    """Legacy-format view into a root storage (element offset and length)."""
    __slots__ = ()


class TensorRef(collections.namedtuple("TensorRef", "storage offset size stride")):
    __slots__ = ()


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _int_tuple(x, what):
    if isinstance(x, (tuple, list)) and all(_is_int(v) for v in x):
        return tuple(x)
    raise ConvertError("malformed tensor %s %r" % (what, x))


class _Callable(object):
    """A safe stand-in for an allowed torch function (no __dict__: immune to BUILD)."""
    __slots__ = ("_fn",)

    def __init__(self, fn):
        object.__setattr__(self, "_fn", fn)

    def __setattr__(self, name, value):
        raise AttributeError("read-only")

    def __call__(self, *args):
        return self._fn(*args)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *rest):
    if not isinstance(storage, (Storage, StorageView)):
        raise ConvertError("malformed tensor: storage is %s" % type(storage).__name__)
    if not _is_int(storage_offset) or storage_offset < 0:
        raise ConvertError("malformed tensor offset %r" % (storage_offset,))
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size) != len(stride) or any(v < 0 for v in size + stride):
        raise ConvertError("malformed tensor size %r / stride %r" % (size, stride))
    return TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *rest):
    if not isinstance(data, TensorRef):
        raise ConvertError("malformed parameter")
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _Callable(_rebuild_tensor_v2),
    ("torch._utils", "_rebuild_parameter"): _Callable(_rebuild_parameter),
}


def _ascii(x):
    return x.decode("ascii") if isinstance(x, bytes) else x


class RestrictedUnpickler(pickle.Unpickler):
    """Allows the globals of a state dict only; storages through persistent ids."""

    def __init__(self, file, storages, legacy):
        super().__init__(file, encoding="utf-8")
        self.storages = storages  # key -> Storage, shared by the pickles of one file
        self.legacy = legacy

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_TYPES:
            return _STORAGE_TYPES[name]
        raise ConvertError("refusing global %s.%s" % (module, name))

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or _ascii(pid[0]) != "storage":
            what = _ascii(pid[0]) if isinstance(pid, tuple) and pid else type(pid).__name__
            raise ConvertError("refusing persistent id %r (only storages are allowed)" % (what,))
        if self.legacy and len(pid) == 6:
            _, stype, key, _location, numel, view = pid
        elif not self.legacy and len(pid) == 5:
            _, stype, key, _location, numel = pid
            view = None
        else:
            raise ConvertError("malformed storage reference of %d fields" % len(pid))
        key = _ascii(key)
        if not isinstance(stype, StorageType):
            raise ConvertError("storage %r: unknown storage type %r" % (key, stype))
        if not isinstance(key, str) or not _is_int(numel) or numel < 0:
            raise ConvertError("malformed storage reference %r" % (key,))
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = Storage(key, stype, numel)
        elif storage.stype != stype or storage.numel != numel:
            raise ConvertError("storage %s referenced with conflicting type or size" % key)
        if view is None:
            return storage
        if not (isinstance(view, tuple) and len(view) == 3 and _is_int(view[1]) and _is_int(view[2])):
            raise ConvertError("storage %s: malformed view" % key)
        _view_key, offset, vnumel = view
        if offset < 0 or vnumel < 0 or offset + vnumel > numel:
            raise ConvertError("storage %s: view [%d, %d) outside its %d elements" % (key, offset, offset + vnumel, numel))
        return StorageView(storage, offset, vnumel)


# ---------------------------------------------------------------------------------
# The two serialisations
# ---------------------------------------------------------------------------------

# Opcodes no state dict uses and the C unpickler mishandles on damaged input: protocol 5's
# bytearray and out-of-band buffers (a huge BYTEARRAY8 length left CPython 3.11 printing
# "SystemError: deallocated bytearray object has exported buffers" to stderr; found by
# tests/fuzz/unpickler_mutation.py). Refused by a pass over the opcodes before unpickling.
_REFUSED_OPCODES = frozenset(("BYTEARRAY8", "NEXT_BUFFER", "READONLY_BUFFER"))


def _unpickle(f, storages, legacy):
    start = f.tell()
    try:
        for op, _arg, _pos in pickletools.genops(f):
            if op.name in _REFUSED_OPCODES:
                raise ConvertError("refusing pickle opcode %s (not used by a state dict)" % op.name)
    except ConvertError:
        raise
    except Exception as e:  # truncated or corrupt pickle stream
        raise ConvertError("corrupt or truncated pickle (%s: %s)" % (type(e).__name__, e))
    f.seek(start)
    try:
        return RestrictedUnpickler(f, storages, legacy).load()
    except ConvertError:
        raise
    except RecursionError:
        raise ConvertError("pickle nested too deeply")
    except Exception as e:  # truncated or corrupt pickle stream
        raise ConvertError("corrupt or truncated pickle (%s: %s)" % (type(e).__name__, e))


def _read_legacy(raw):
    f = io.BytesIO(raw)
    storages = {}
    magic = _unpickle(f, storages, True)
    if magic != LEGACY_MAGIC:
        raise ConvertError("not a PyTorch checkpoint (no legacy magic number)")
    protocol = _unpickle(f, storages, True)
    if protocol != LEGACY_PROTOCOL:
        raise ConvertError("unsupported legacy protocol version %r" % (protocol,))
    sys_info = _unpickle(f, storages, True)
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise ConvertError("legacy checkpoint not written little-endian")
    obj = _unpickle(f, storages, True)
    _register_users(obj)
    keys = _unpickle(f, storages, True)
    if not isinstance(keys, list):
        raise ConvertError("corrupt storage key list")
    pos = f.tell()
    for key in keys:
        key = _ascii(key)
        storage = storages.get(key) if isinstance(key, str) else None
        if storage is None:
            raise ConvertError("storage %r listed but never referenced" % (key,))
        if pos + 8 > len(raw):
            raise ConvertError("truncated storage %s%s: file ends before its size" % (key, _users(storage)))
        (count,) = struct.unpack_from("<q", raw, pos)
        pos += 8
        if count != storage.numel:
            raise ConvertError("storage %s%s has %d elements in the file, %d expected" % (key, _users(storage), count, storage.numel))
        nbytes = count * storage.stype.itemsize
        if pos + nbytes > len(raw):
            raise ConvertError("truncated storage %s%s: %d bytes expected, %d left in the file" % (key, _users(storage), nbytes, len(raw) - pos))
        storage.data = memoryview(raw)[pos:pos + nbytes]
        pos += nbytes
    return obj, storages


def _read_zip(path, raw):
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
    except Exception as e:  # BadZipFile, a damaged UTF-8 name, an unknown zip version, ...
        raise ConvertError("corrupt or truncated zip archive (%s: %s)" % (type(e).__name__, e))
    with zf:
        names = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(names) != 1:
            raise ConvertError("zip archive without exactly one <archive>/data.pkl")
        prefix = names[0][:-len("data.pkl")]
        storages = {}
        _require_file_entry(zf.getinfo(names[0]))
        try:
            pkl = zf.read(names[0])
        except Exception as e:
            raise ConvertError("cannot read %s (%s)" % (names[0], e))
        obj = _unpickle(io.BytesIO(pkl), storages, False)
        _register_users(obj)
        for key, storage in sorted(storages.items()):
            record = prefix + "data/" + key
            try:
                info = zf.getinfo(record)
            except KeyError:
                raise ConvertError("missing storage record %s%s" % (record, _users(storage)))
            _require_file_entry(info)
            if info.compress_type != zipfile.ZIP_STORED:
                raise ConvertError("storage record %s is compressed" % record)
            try:
                data = zf.read(record)
            except Exception as e:
                raise ConvertError("cannot read storage record %s%s (%s)" % (record, _users(storage), e))
            nbytes = storage.numel * storage.stype.itemsize
            if len(data) < nbytes:
                raise ConvertError("truncated storage %s%s: %d bytes, %d expected" % (key, _users(storage), len(data), nbytes))
            storage.data = memoryview(data)[:nbytes]
    return obj, storages


def _require_file_entry(info):
    """Refuse a record that the zip directory marks as a folder (MS-DOS attribute 0x10):
    PyTorch's reader (miniz) extracts nothing for it, so torch.load would give zeros
    (found by tests/fuzz/unpickler_mutation.py)."""
    if info.external_attr & 0x10:
        raise ConvertError("zip record %s is marked as a folder (external attributes 0x%x): damaged archive"
                           % (info.filename, info.external_attr))


def _users(storage):
    if not storage.users:
        return ""
    more = " and %d more" % (len(storage.users) - 1) if len(storage.users) > 1 else ""
    return " (key %s%s)" % (storage.users[0], more)


def _register_users(state):
    """Remember which keys use each storage, to name them in truncation errors."""
    if not isinstance(state, dict):
        return
    for key, t in state.items():
        if isinstance(t, TensorRef) and isinstance(key, str):
            root = t.storage.root if isinstance(t.storage, StorageView) else t.storage
            root.users.append(key[len("module."):] if key.startswith("module.") else key)


def read_checkpoint(path):
    """Return (OrderedDict key -> TensorRef with storage data loaded, format name)."""
    name = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConvertError("%s: cannot read (%s)" % (path, e.strerror or e))
    try:
        if raw[:4] == b"PK\x03\x04":
            fmt = "zip"
            obj, _ = _read_zip(path, raw)
        elif raw[:2] == b"\x80\x02":
            fmt = "legacy"
            obj, _ = _read_legacy(raw)
        else:
            raise ConvertError("not a PyTorch checkpoint (neither zip nor legacy pickle header)")
        return _state_dict(obj), fmt
    except ConvertError as e:
        raise ConvertError("%s: %s" % (name, e))


def _state_dict(obj):
    if not isinstance(obj, dict):
        raise ConvertError("top-level object is %s, not a state dict" % type(obj).__name__)
    state = collections.OrderedDict()
    for key, value in obj.items():
        if not isinstance(key, str):
            raise ConvertError("non-string key %r" % (key,))
        short = key[len("module."):] if key.startswith("module.") else key
        if short in state:
            raise ConvertError("duplicate key %s (with and without module. prefix)" % short)
        if not isinstance(value, TensorRef):
            raise ConvertError("key %s: %s is not a tensor" % (key, type(value).__name__))
        state[short] = value
    return state


# ---------------------------------------------------------------------------------
# Tensors: validation against the table and contiguous bytes
# ---------------------------------------------------------------------------------

def _fmt_shape(shape):
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def tensor_bytes(t):
    """The tensor's elements in row-major order, honouring storage offset and strides."""
    storage, offset = t.storage, t.offset
    if isinstance(storage, StorageView):
        offset += storage.offset
        limit = storage.offset + storage.numel
        storage = storage.root
    else:
        limit = storage.numel
    itemsize = storage.stype.itemsize
    numel = 1
    for s in t.size:
        numel *= s
    if numel == 0:
        return b""
    last = offset + sum((s - 1) * st for s, st in zip(t.size, t.stride))
    if last >= limit or storage.data is None or (last + 1) * itemsize > len(storage.data):
        raise ConvertError("truncated storage %s: tensor needs elements [%d, %d], storage has %d"
                           % (storage.key, offset, last, limit))
    data = storage.data
    # Contiguous (dimensions of size 1 may carry any stride).
    expect, contiguous = 1, True
    for s, st in zip(reversed(t.size), reversed(t.stride)):
        if s != 1 and st != expect:
            contiguous = False
            break
        expect *= s
    if contiguous:
        return bytes(data[offset * itemsize:(offset + numel) * itemsize])
    size, stride = list(t.size), list(t.stride)
    if not size:
        return bytes(data[offset * itemsize:(offset + 1) * itemsize])
    n_last, s_last = size[-1], stride[-1]
    starts = [offset]
    for s, st in zip(size[:-1], stride[:-1]):
        starts = [b + i * st for b in starts for i in range(s)]
    out = bytearray()
    if itemsize in _ITEM_FORMAT:  # strided slices of a typed view, raw bytes kept
        items = data[:len(data) // itemsize * itemsize].cast("B").cast(_ITEM_FORMAT[itemsize])
        for b in starts:
            if s_last == 0:
                out += items[b:b + 1].tobytes() * n_last
            else:
                out += items[b:b + (n_last - 1) * s_last + 1:s_last].tobytes()
    else:
        for b in starts:
            for i in range(n_last):
                e = (b + i * s_last) * itemsize
                out += data[e:e + itemsize]
    return bytes(out)


def validate(name, state, expected):
    """Check keys, shapes and dtypes; return [(key, safetensors dtype, shape, bytes)]."""
    wanted = [(k, v) for k, v in expected.items() if not k.endswith("num_batches_tracked")]
    missing = [k for k, _ in wanted if k not in state]
    if missing:
        more = " (and %d more)" % (len(missing) - 1) if len(missing) > 1 else ""
        raise ConvertError("%s: missing key %s%s" % (name, missing[0], more))
    unexpected = [k for k in state if k not in expected and not k.endswith("num_batches_tracked")]
    if unexpected:
        more = " (and %d more)" % (len(unexpected) - 1) if len(unexpected) > 1 else ""
        raise ConvertError("%s: unexpected key %s%s" % (name, unexpected[0], more))
    out = []
    for key, (shape, dtype) in wanted:
        t = state[key]
        if t.size != shape:
            raise ConvertError("%s: key %s: wrong shape %s, expected %s" % (name, key, _fmt_shape(t.size), _fmt_shape(shape)))
        stype = (t.storage.root if isinstance(t.storage, StorageView) else t.storage).stype
        if stype.dtype != dtype:
            raise ConvertError("%s: key %s: wrong dtype %s, expected %s" % (name, key, stype.dtype, dtype))
        try:
            data = tensor_bytes(t)
        except ConvertError as e:
            raise ConvertError("%s: key %s: %s" % (name, key, e))
        out.append((key, _STORAGE_DTYPES[stype.name][2], shape, data))
    # num_batches_tracked entries are dropped, but their storages must be sound too.
    for key, t in state.items():
        if key.endswith("num_batches_tracked"):
            try:
                tensor_bytes(t)
            except ConvertError as e:
                raise ConvertError("%s: key %s: %s" % (name, key, e))
    return out


# ---------------------------------------------------------------------------------
# Template OBJ
# ---------------------------------------------------------------------------------

def read_template(path):
    """(vertices bytes F32 (V,3), faces bytes I32 (F,3), V, F) from a Wavefront OBJ."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConvertError("%s: cannot read template (%s)" % (path, e.strerror or e))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConvertError("%s: template is not a text OBJ file" % path)
    vertices, faces = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        tok = line.split()
        if not tok or tok[0].startswith("#"):
            continue
        if tok[0] == "v":
            try:
                xyz = [float(v) for v in tok[1:]]
            except ValueError:
                xyz = []
            if len(xyz) < 3 or not all(math.isfinite(v) and abs(v) < 3.4e38 for v in xyz[:3]):
                raise ConvertError("%s: line %d: malformed vertex %r" % (path, lineno, line.strip()))
            vertices.append(xyz[:3])
        elif tok[0] == "f":
            if len(tok) != 4:
                raise ConvertError("%s: line %d: face with %d corners, expected a triangle" % (path, lineno, len(tok) - 1))
            idx = []
            for corner in tok[1:]:
                first = corner.split("/")[0]
                try:
                    i = int(first)
                except ValueError:
                    raise ConvertError("%s: line %d: malformed face index %r" % (path, lineno, corner))
                if i < 1:
                    raise ConvertError("%s: line %d: face index %d (only positive indices are supported)" % (path, lineno, i))
                idx.append(i - 1)
            faces.append((lineno, idx))
    if len(vertices) != TEMPLATE_VERTICES:
        raise ConvertError("%s: template has %d vertices, expected %d (0214_lowP_vn_g.0001.obj)"
                           % (path, len(vertices), TEMPLATE_VERTICES))
    if not faces:
        raise ConvertError("%s: template has no faces" % path)
    for lineno, idx in faces:
        if max(idx) >= len(vertices):
            raise ConvertError("%s: line %d: face index %d beyond the %d vertices" % (path, lineno, max(idx) + 1, len(vertices)))
    vbytes = b"".join(struct.pack("<3f", *v) for v in vertices)
    fbytes = b"".join(struct.pack("<3i", *idx) for _, idx in faces)
    return vbytes, fbytes, len(vertices), len(faces), raw


# ---------------------------------------------------------------------------------
# safetensors output
# ---------------------------------------------------------------------------------

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
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
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


def convert(checkpoint_dir, template, output):
    table = model_table()
    tensors, metadata = {}, {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
        "converter_version": CONVERTER_VERSION, "num_joints": str(NUM_JOINTS),
        "num_stacks": str(NUM_STACKS), "num_features": str(NUM_FEATURES)}
    vbytes, fbytes, nv, nf, traw = read_template(template)
    metadata["sha256.template"] = hashlib.sha256(traw).hexdigest()
    tensors["template.vertices"] = ("F32", (nv, 3), vbytes)
    tensors["template.faces"] = ("I32", (nf, 3), fbytes)
    for stem in STEMS:
        name = stem + ".pth"
        path = os.path.join(checkpoint_dir, name)
        if not os.path.isfile(path):
            raise ConvertError("%s: no such checkpoint in %s" % (name, checkpoint_dir))
        with open(path, "rb") as f:
            metadata["sha256." + name] = hashlib.sha256(f.read()).hexdigest()
        state, _fmt = read_checkpoint(path)
        for key, dtype, shape, data in validate(name, state, table[stem]):
            tensors[stem + "." + key] = (dtype, shape, data)
        del state
    head, blobs = safetensors_bytes(tensors, metadata)
    write_atomic(output, head, blobs)
    return len(tensors), len(head) + sum(len(b) for b in blobs)


def _printable(message):
    """One printable line: characters a checkpoint put into a key or storage name
    (newlines, terminal escape sequences, other separators) are shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write("error: %s (see --help)\n" % message)
        sys.exit(1)


def main(argv=None):
    p = _Parser(
        prog="convert_weights.py",
        description="Convert the released hand-graph-cnn PyTorch checkpoints (net_hm.pth, "
                    "net_feat_mesh.pth, net_mesh_pose.pth; legacy or zip serialisation) and the "
                    "hand template mesh into one handgraph weight file (safetensors). Uses the "
                    "Python standard library only; the checkpoints are unpickled with a restricted "
                    "unpickler that refuses every global a state dict does not need.",
        epilog="example: convert_weights.py hand-graph-cnn/model/STB_finetuned_models "
               "--template hand-graph-cnn/data/0214_lowP_vn_g.0001.obj -o weights/hand_graph_stb.safetensors. "
               "Exit status 0 on success; otherwise one line 'error: ...' on stderr, status 1, "
               "and no output file.")
    p.add_argument("checkpoint_dir", help="folder holding net_hm.pth, net_feat_mesh.pth, net_mesh_pose.pth")
    p.add_argument("--template", required=True, help="the template mesh 0214_lowP_vn_g.0001.obj")
    p.add_argument("-o", "--output", required=True, help="output .safetensors file (replaced atomically)")
    args = p.parse_args(argv)
    try:
        if not os.path.isdir(args.checkpoint_dir):
            raise ConvertError("%s: not a directory" % args.checkpoint_dir)
        count, size = convert(args.checkpoint_dir, args.template, args.output)
    except ConvertError as e:
        sys.stderr.write("error: %s\n" % _printable(str(e)))
        return 1
    except MemoryError:
        sys.stderr.write("error: out of memory\n")
        return 1
    except Exception as e:  # a bug: still one line, never a partial output
        sys.stderr.write("error: internal error (%s: %s)\n" % (type(e).__name__, _printable(str(e))))
        return 1
    print("wrote %s: %d tensors, %d bytes" % (args.output, count, size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
