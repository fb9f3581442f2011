"""Tests of tools/convert_weights.py: bit-exact conversion of both PyTorch serialisations,
the embedded key table, and refusals (hostile pickles, bad keys/shapes/dtypes, truncated
or foreign files, bad templates) that leave no output behind.

Self-contained: checkpoints come from tests/reference/handnet.py with random weights; the
template is the release's when HANDGRAPH_SHARED_DATA has it, else a synthetic OBJ.
Exit 77 (skipped) only when torch/numpy are missing.
"""
import collections
import io
import json
import os
import pickle
import pickletools
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("HANDGRAPH_SOURCE_DIR") or os.path.dirname(HERE)
CONVERTER = os.path.join(SOURCE_DIR, "tools", "convert_weights.py")
TSV = os.path.join(SOURCE_DIR, "..", "shared", "docs", "checkpoint-keys.tsv")
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "reference"))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tools"))

try:
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover
    print("SKIPPED: %s" % e)
    sys.exit(77)

import convert_weights  # noqa: E402
import handnet  # noqa: E402
import st_numpy  # noqa: E402

STEMS = handnet.STEMS


def shared_template():
    d = os.environ.get("HANDGRAPH_SHARED_DATA") or os.path.join(SOURCE_DIR, "..", "shared", "data", "hand-graph-cnn")
    p = os.path.join(d, "0214_lowP_vn_g.0001.obj")
    return p if os.path.isfile(p) else None


def write_synthetic_obj(path, faces=None, vertices=1010, extra=""):
    rng = np.random.RandomState(3)
    lines = ["# synthetic template", "mtllib none.mtl"]
    lines += ["v %.6f %.6f %.6f" % tuple(rng.uniform(-10, 10, 3)) for _ in range(vertices)]
    lines += ["vn 0 0 1", "vt 0.5 0.5"]
    if faces is None:
        faces = [(i % vertices + 1, (i * 7 + 1) % vertices + 1, (i * 13 + 2) % vertices + 1) for i in range(2004)]
    lines += ["f %d/1/1 %d/1/1 %d/1/1" % f for f in faces]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + extra)


def parse_obj_numpy(path):
    v, f = [], []
    with open(path) as fh:
        lines = fh.read().splitlines()
    for line in lines:
        t = line.split()
        if t and t[0] == "v":
            v.append([float(x) for x in t[1:4]])
        elif t and t[0] == "f":
            f.append([int(c.split("/")[0]) - 1 for c in t[1:]])
    return np.array(v, np.float32), np.array(f, np.int32)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def run_converter(ckpt_dir, template, out, *extra):
    return subprocess.run([sys.executable, CONVERTER, ckpt_dir, "--template", template, "-o", out] + list(extra),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)


# ------------------------------------------------------------------------------
# Hand-made pickles: a pure-Python pickler that writes chosen GLOBALs verbatim, so a
# test can emit `torch FloatStorage`, `os system`, ... without importing them.

class Global(object):
    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle wants REDUCE's callable to be callable; never run
        raise AssertionError("not to be called")


class Call(object):
    """Pickles as REDUCE of a Global on args."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


class StorageRef(object):
    def __init__(self, stype, key, numel, view=None, legacy=True):
        self.stype, self.key, self.numel, self.view, self.legacy = stype, key, numel, view, legacy


class RawPickler(pickle._Pickler):
    def __init__(self, f):
        super().__init__(f, protocol=2)

    def save_global(self, obj, name=None):
        if isinstance(obj, Global):
            self.write(pickle.GLOBAL + ("%s\n%s\n" % (obj.module, obj.name)).encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, Global):
            if id(obj) in self.memo:
                self.write(self.get(self.memo[id(obj)][0]))
                return
            return self.save_global(obj)
        return super().save(obj, save_persistent_id)

    def persistent_id(self, obj):
        if isinstance(obj, StorageRef):
            pid = ("storage", Global("torch", obj.stype), obj.key, "cpu", obj.numel)
            return pid + (obj.view,) if obj.legacy else pid
        return None


def raw_pickle(obj):
    f = io.BytesIO()
    RawPickler(f).dump(obj)
    return f.getvalue()


REBUILD = Global("torch._utils", "_rebuild_tensor_v2")
ORDERED = Global("collections", "OrderedDict")


def tensor_call(storage, offset, size, stride):
    return Call(REBUILD, storage, offset, tuple(size), tuple(stride), False, Call(ORDERED))


def state_pickle(items):
    """OrderedDict built by REDUCE + SETITEMS like torch's, values being Call/anything."""
    class OD(object):
        def __reduce__(self):
            return (ORDERED, (), None, None, iter(items))
    return OD()


def legacy_file(obj, storages):
    """Legacy serialisation: magic, protocol, sys info, obj, keys, then raw storages.
    storages: [(key, bytes, itemsize)] in file order."""
    out = io.BytesIO()
    for p in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True,
                                             "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(p, out, protocol=2)
    out.write(raw_pickle(obj))
    pickle.dump([k for k, _, _ in storages], out, protocol=2)
    for _, data, itemsize in storages:
        out.write(struct.pack("<q", len(data) // itemsize))
        out.write(data)
    return out.getvalue()


def zip_file(obj, records, archive="archive"):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr(archive + "/data.pkl", raw_pickle(obj))
        for key, data in records:
            z.writestr(archive + "/data/" + key, data)
        z.writestr(archive + "/version", "3\n")
    return out.getvalue()


# ------------------------------------------------------------------------------

class ConverterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        cls.tmp = tempfile.mkdtemp(prefix="test_convert.")
        cls.template = shared_template()
        if cls.template is None:
            cls.template = os.path.join(cls.tmp, "template.obj")
            write_synthetic_obj(cls.template)
        nets = handnet.randomize(handnet.build_nets(), 11)
        cls.legacy = os.path.join(cls.tmp, "legacy")
        cls.zip = os.path.join(cls.tmp, "zip")
        handnet.save_release_style(nets, cls.legacy)
        handnet.save_modern(nets, cls.zip)
        cls.state = {s: nets[i].state_dict() for i, s in enumerate(STEMS)}
        cls.table = convert_weights.model_table()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- helpers
    def variant(self, name, replace):
        """A checkpoint folder: the zip files, with some files replaced by given bytes."""
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        for stem in STEMS:
            dst = os.path.join(d, stem + ".pth")
            if stem in replace:
                with open(dst, "wb") as f:
                    f.write(replace[stem])
            else:
                os.symlink(os.path.join(self.zip, stem + ".pth"), dst)
        return d

    def saved(self, sd, legacy=False):
        f = io.BytesIO()
        torch.save(sd, f, _use_new_zipfile_serialization=not legacy)
        return f.getvalue()

    def assertRefused(self, ckpt_dir, *needles, template=None):
        outdir = tempfile.mkdtemp(dir=self.tmp)
        out = os.path.join(outdir, "w.safetensors")
        r = run_converter(ckpt_dir, template or self.template, out)
        self.assertEqual(r.returncode, 1, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("error: "), r.stderr)
        for n in needles:
            self.assertIn(n, lines[0])
        self.assertEqual(os.listdir(outdir), [], "output or temporary file left behind")
        return lines[0]

    def check_bit_exact(self, out, ckpt_dir):
        arrays, meta = st_numpy.load(out)
        expected_names = {"template.vertices", "template.faces"}
        for stem in STEMS:
            sd = torch.load(os.path.join(ckpt_dir, stem + ".pth"))
            for key, value in sd.items():
                key = key[len("module."):] if key.startswith("module.") else key
                if key.endswith("num_batches_tracked"):
                    continue
                name = stem + "." + key
                expected_names.add(name)
                a = arrays[name]
                self.assertEqual(a.dtype, np.float32, name)
                self.assertEqual(a.shape, tuple(value.shape), name)
                self.assertEqual(a.tobytes(), value.contiguous().numpy().tobytes(), name)
        self.assertEqual(set(arrays), expected_names)
        v, f = parse_obj_numpy(self.template)
        self.assertEqual(arrays["template.vertices"].tobytes(), v.tobytes())
        self.assertEqual(arrays["template.faces"].tobytes(), f.tobytes())
        self.assertEqual(arrays["template.vertices"].shape, (1010, 3))
        import hashlib
        for stem in STEMS:
            with open(os.path.join(ckpt_dir, stem + ".pth"), "rb") as fh:
                self.assertEqual(meta["sha256.%s.pth" % stem], hashlib.sha256(fh.read()).hexdigest())
        with open(self.template, "rb") as fh:
            self.assertEqual(meta["sha256.template"], hashlib.sha256(fh.read()).hexdigest())
        for k, v in {"format": "handgraph-weights", "format_version": "1", "num_joints": "21",
                     "num_stacks": "2", "num_features": "256"}.items():
            self.assertEqual(meta[k], v)
        self.assertIn("converter_version", meta)
        return arrays

    def check_layout(self, out):
        with open(out, "rb") as f:
            raw = f.read()
        (n,) = struct.unpack("<Q", raw[:8])
        self.assertEqual((8 + n) % 64, 0, "data must start at a multiple of 64")
        text = raw[8:8 + n].decode("utf-8")
        self.assertEqual(text, text.rstrip(" ") + " " * (len(text) - len(text.rstrip(" "))))
        header = json.loads(text)
        meta = header.pop("__metadata__")
        self.assertTrue(all(isinstance(v, str) for v in meta.values()))
        names = sorted(header)
        offset = 0
        for name in names:  # sorted by name, contiguous, no holes
            t = header[name]
            self.assertEqual(t["data_offsets"][0], offset, name)
            size = {"F32": 4, "I32": 4}[t["dtype"]] * int(np.prod(t["shape"], dtype=np.int64))
            self.assertEqual(t["data_offsets"][1], offset + size, name)
            offset += size
        self.assertEqual(len(raw), 8 + n + offset)

    # -- conversions
    def test_legacy_release_style_bit_exact(self):
        out = os.path.join(self.tmp, "legacy.safetensors")
        r = run_converter(self.legacy, self.template, out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        self.check_bit_exact(out, self.legacy)
        self.check_layout(out)
        with open(self.legacy + "/net_hm.pth", "rb") as f:
            self.assertEqual(f.read(2), b"\x80\x02")  # really the legacy format
        self.assertTrue(any(k.startswith("module.") for k in torch.load(self.legacy + "/net_hm.pth")))

    def test_zip_bit_exact_and_same_tensors_as_legacy(self):
        out = os.path.join(self.tmp, "zip.safetensors")
        r = run_converter(self.zip, self.template, out)
        self.assertEqual(r.returncode, 0, r.stderr)
        a = self.check_bit_exact(out, self.zip)
        self.check_layout(out)
        self.assertTrue(zipfile.is_zipfile(self.zip + "/net_hm.pth"))
        legacy_out = os.path.join(self.tmp, "legacy2.safetensors")
        self.assertEqual(run_converter(self.legacy, self.template, legacy_out).returncode, 0)
        b, _ = st_numpy.load(legacy_out)
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            self.assertEqual(a[k].tobytes(), b[k].tobytes(), k)

    def test_output_replaced_atomically(self):
        out = os.path.join(self.tmp, "replace", "w.safetensors")
        os.makedirs(os.path.dirname(out))
        with open(out, "w") as f:
            f.write("old")
        self.assertEqual(run_converter(self.zip, self.template, out).returncode, 0)
        self.assertEqual(os.listdir(os.path.dirname(out)), ["w.safetensors"])
        self.check_layout(out)
        # a failing conversion leaves the previous file as it was
        bad = self.variant("replace_bad", {"net_hm": b"not a checkpoint"})
        before = read_bytes(out)
        self.assertEqual(run_converter(bad, self.template, out).returncode, 1)
        self.assertEqual(read_bytes(out), before)
        self.assertEqual(os.listdir(os.path.dirname(out)), ["w.safetensors"])

    def test_views_offsets_and_strides(self):
        """Non-contiguous tensors, offsets into shared storages, stride 0: both formats."""
        sd = collections.OrderedDict((k, v.clone()) for k, v in self.state["net_mesh_pose"].items())
        g = torch.Generator().manual_seed(5)
        base = torch.randn(512, 40, generator=g)
        sd["fc.fc_2.fc.weight"] = base[:, 7:27].t()  # (20, 512), strides (1, 40), offset 7
        sd["fc.fc_2.fc.bias"] = torch.randn(100, generator=g)[10:70:3]  # stride 3
        shared = torch.randn(5 + 288 + 32, generator=g)
        sd["cl.0.weight"] = shared[5:293].view(32, 9)  # offset 5 into a shared storage
        sd["cl.0.bias"] = shared[293:325]
        sd["cl.1.weight"] = torch.randn(32, 1, generator=g).expand(32, 96)  # stride 0
        sd["cl.1.bias"] = torch.randn(1, generator=g).expand(32)
        sd["cl.3.weight"] = torch.randn(3, 192, 64, generator=g)[1].t()  # (64, 192) offset 12288
        self.assertFalse(sd["fc.fc_2.fc.weight"].is_contiguous())
        for legacy in (True, False):
            d = self.variant("views_%d" % legacy, {"net_mesh_pose": self.saved(sd, legacy)})
            out = os.path.join(self.tmp, "views_%d.safetensors" % legacy)
            r = run_converter(d, self.template, out)
            self.assertEqual(r.returncode, 0, r.stderr)
            arrays, _ = st_numpy.load(out)
            loaded = torch.load(os.path.join(d, "net_mesh_pose.pth"))
            self.assertEqual(loaded["cl.0.weight"].storage_offset(), 5)
            for k in ("fc.fc_2.fc.weight", "fc.fc_2.fc.bias", "cl.0.weight", "cl.0.bias", "cl.1.weight",
                      "cl.1.bias", "cl.3.weight", "fc.fc_1.fc.weight"):
                self.assertEqual(arrays["net_mesh_pose." + k].tobytes(), loaded[k].contiguous().numpy().tobytes(), k)

    def test_legacy_storage_view_metadata(self):
        """Legacy files of PyTorch < 1.?? may reference storage views; torch.load agrees."""
        data = np.arange(400, dtype=np.float32) * 0.5
        items = []
        for key, (shape, dtype) in self.table["net_mesh_pose"].items():
            if key.endswith("num_batches_tracked"):
                continue
            n = int(np.prod(shape))
            items.append((key, n, shape))
        storages, calls, k = [], [], 0
        for key, n, shape in items:
            blob = np.random.RandomState(k).standard_normal(n).astype(np.float32)
            if key == "cl.0.bias":  # a view [100, 132) of storage 'root'
                ref = StorageRef("FloatStorage", "root", 400, ("view0", 100, 32))
                calls.append((key, tensor_call(ref, 0, shape, (1,))))
                continue
            if key == "cl.0.weight":
                ref = StorageRef("FloatStorage", "root", 400, None)
                calls.append((key, tensor_call(ref, 3, shape, (9, 1))))
                continue
            skey = "s%d" % k
            k += 1
            strides = tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape)))
            calls.append((key, tensor_call(StorageRef("FloatStorage", skey, n), 0, shape, strides)))
            storages.append((skey, blob.tobytes(), 4))
        storages.append(("root", data.tobytes(), 4))
        raw = legacy_file(state_pickle(calls), sorted(storages))
        d = self.variant("viewmeta", {"net_mesh_pose": raw})
        out = os.path.join(self.tmp, "viewmeta.safetensors")
        r = run_converter(d, self.template, out)
        self.assertEqual(r.returncode, 0, r.stderr)
        arrays, _ = st_numpy.load(out)
        loaded = torch.load(os.path.join(d, "net_mesh_pose.pth"))
        for key, _, _ in items:
            self.assertEqual(arrays["net_mesh_pose." + key].tobytes(), loaded[key].contiguous().numpy().tobytes(), key)
        self.assertEqual(arrays["net_mesh_pose.cl.0.bias"].tolist(), (np.arange(100, 132) * 0.5).tolist())

    def test_tensor_bytes_against_numpy(self):
        """The strided gather equals numpy's as_strided for every element size."""
        rng = np.random.RandomState(2)
        cases = [((3, 4), (1, 3), 2), ((2, 3, 4), (12, 1, 3), 0), ((5,), (0,), 1), ((4, 2), (0, 1), 3),
                 ((2, 2, 3), (1, 6, 2), 5), ((), (), 7), ((3, 0), (1, 3), 0), ((6, 1), (1, 9), 4)]
        stypes = [("ByteStorage", np.uint8), ("HalfStorage", np.float16), ("FloatStorage", np.float32),
                  ("DoubleStorage", np.float64), ("ComplexDoubleStorage", np.complex128)]
        for size, stride, offset in cases:
            for name, dt in stypes:
                stype = convert_weights._STORAGE_TYPES[name]
                numel = offset + sum((a - 1) * b for a, b in zip(size, stride)) + 1 if all(size) else offset
                base = rng.standard_normal(numel * 2).astype(np.float64).view(np.uint8)[:numel * np.dtype(dt).itemsize]
                arr = np.frombuffer(base.tobytes(), dtype=dt)
                st = convert_weights.Storage("k", stype, numel)
                st.data = memoryview(arr.tobytes())
                t = convert_weights.TensorRef(st, offset, size, stride)
                expected = np.lib.stride_tricks.as_strided(
                    arr[offset:], shape=size, strides=[b * arr.itemsize for b in stride]).copy() if numel else np.zeros(size, dt)
                self.assertEqual(convert_weights.tensor_bytes(t), expected.tobytes(), (size, stride, offset, name))
        st = convert_weights.Storage("k", convert_weights._STORAGE_TYPES["FloatStorage"], 10)
        st.data = memoryview(b"\0" * 40)
        with self.assertRaises(convert_weights.ConvertError):
            convert_weights.tensor_bytes(convert_weights.TensorRef(st, 2, (3, 3), (3, 1)))

    # -- the embedded table
    def test_embedded_table_matches_tsv(self):
        if not os.path.isfile(TSV):
            self.skipTest("checkpoint-keys.tsv absent")
        tsv = handnet.read_key_table(TSV)
        self.assertEqual(list(tsv), list(STEMS))
        for stem in STEMS:
            self.assertEqual([(k, s, d) for k, (s, d) in self.table[stem].items()], tsv[stem], stem)

    def test_reference_networks_match_table(self):
        for stem in STEMS:
            got = [(k, tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in self.state[stem].items()]
            self.assertEqual(got, [(k, s, d) for k, (s, d) in self.table[stem].items()], stem)

    def test_stdlib_only(self):
        src = read_bytes(CONVERTER).decode()
        for mod in ("torch", "numpy"):
            self.assertNotRegex(src, r"(?m)^\s*(import|from)\s+%s\b" % mod)
        code = ("import sys; sys.modules['torch'] = None; sys.modules['numpy'] = None; "
                "sys.argv = %r; import runpy; runpy.run_path(%r, run_name='__main__')"
                % ([CONVERTER, self.legacy, "--template", self.template, "-o", os.path.join(self.tmp, "nt.safetensors")],
                   CONVERTER))
        r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_help(self):
        r = subprocess.run([sys.executable, CONVERTER, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
        self.assertEqual(r.returncode, 0)
        self.assertIn("--template", r.stdout)
        self.assertIn("safetensors", r.stdout)
        r = subprocess.run([sys.executable, CONVERTER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr)

    # -- refusals
    def test_refuses_os_system_legacy(self):
        marker = os.path.join(self.tmp, "pwned_os_system")
        evil = Call(Global("os", "system"), "touch " + marker)
        raw = legacy_file(state_pickle([("conv1_.weight", evil)]), [])
        self.assertIn("GLOBAL     'os system'", self.disassemble(raw[raw.index(b"\x80\x02c"):]))
        d = self.variant("evil_os", {"net_hm": raw})
        self.assertRefused(d, "net_hm.pth", "refusing global os.system")
        self.assertFalse(os.path.exists(marker), "the hostile pickle ran")

    def test_refuses_builtins_eval_zip(self):
        marker = os.path.join(self.tmp, "pwned_eval")

        class Evil(object):
            def __reduce__(self):
                return (eval, ("open(%r, 'w').close()" % marker,))
        sd = collections.OrderedDict([("cl.0.weight", Evil())])
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            z.writestr("net_mesh_pose/data.pkl", pickle.dumps(sd, protocol=2, fix_imports=False))
        self.assertIn("builtins eval", self.disassemble(pickle.dumps(sd, protocol=2, fix_imports=False)))
        d = self.variant("evil_eval", {"net_mesh_pose": buf.getvalue()})
        self.assertRefused(d, "net_mesh_pose.pth", "refusing global builtins.eval")
        self.assertFalse(os.path.exists(marker), "the hostile pickle ran")

    def test_refuses_load_from_bytes_and_foreign_persistent_ids(self):
        lfb = Call(Global("torch.storage", "_load_from_bytes"), b"\x80\x02N.")
        d = self.variant("lfb", {"net_hm": legacy_file(state_pickle([("conv1_.weight", lfb)]), [])})
        self.assertRefused(d, "net_hm.pth", "refusing global torch.storage._load_from_bytes")

        class Module(object):
            pass

        class P(RawPickler):
            def persistent_id(self, obj):
                return ("module", "x", "y", "z") if isinstance(obj, Module) else None
        f = io.BytesIO()
        P(f).dump(collections.OrderedDict([("conv1_.weight", Module())]))
        d = self.variant("modpid", {"net_hm": zip_file_bytes(f.getvalue())})
        self.assertRefused(d, "net_hm.pth", "refusing persistent id 'module'")

    def test_refuses_build_on_storage(self):
        """A pickle's BUILD opcode applied to a storage placeholder is refused."""
        pid = StorageRef("FloatStorage", "0", 1, legacy=False)
        head = raw_pickle(pid)[:-1]  # PROTO, the persistent id, BINPERSID; no STOP
        body = head + pickle.EMPTY_DICT + pickle.BUILD + pickle.STOP
        self.assertIn("BUILD", self.disassemble(body))
        d = self.variant("build", {"net_hm": zip_file_bytes(body)})
        self.assertRefused(d, "net_hm.pth", "refusing to set state on storage 0")

    def test_refuses_missing_key(self):
        sd = collections.OrderedDict(self.state["net_mesh_pose"])
        del sd["cl.2.bias"]
        d = self.variant("missing", {"net_mesh_pose": self.saved(sd)})
        self.assertRefused(d, "net_mesh_pose.pth", "missing key cl.2.bias")

    def test_refuses_unexpected_key(self):
        sd = collections.OrderedDict(self.state["net_feat_mesh"])
        sd["mesh_net.cl.4.weight"] = torch.zeros(3, 9)
        d = self.variant("unexpected", {"net_feat_mesh": self.saved(sd, legacy=True)})
        self.assertRefused(d, "net_feat_mesh.pth", "unexpected key mesh_net.cl.4.weight")

    def test_refuses_wrong_shape(self):
        sd = collections.OrderedDict(self.state["net_mesh_pose"])
        sd["fc.fc_2.fc.weight"] = torch.zeros(21, 512)
        d = self.variant("shape", {"net_mesh_pose": self.saved(sd)})
        self.assertRefused(d, "net_mesh_pose.pth", "fc.fc_2.fc.weight", "wrong shape (21, 512)", "(20, 512)")

    def test_refuses_wrong_dtype(self):
        sd = collections.OrderedDict(self.state["net_mesh_pose"])
        sd["cl.1.bias"] = sd["cl.1.bias"].double()
        d = self.variant("dtype", {"net_mesh_pose": self.saved(sd, legacy=True)})
        self.assertRefused(d, "net_mesh_pose.pth", "cl.1.bias", "wrong dtype float64", "float32")

    def test_refuses_duplicate_after_prefix(self):
        sd = collections.OrderedDict(self.state["net_mesh_pose"])
        sd["module.cl.1.bias"] = sd["cl.1.bias"]
        d = self.variant("dup", {"net_mesh_pose": self.saved(sd)})
        self.assertRefused(d, "net_mesh_pose.pth", "duplicate key cl.1.bias")

    def test_refuses_truncated_legacy(self):
        raw = read_bytes(os.path.join(self.legacy, "net_feat_mesh.pth"))
        d = self.variant("trunc_legacy", {"net_feat_mesh": raw[:len(raw) * 2 // 3]})
        msg = self.assertRefused(d, "net_feat_mesh.pth", "truncated storage")
        self.assertRegex(msg, r"key (feat_net|mesh_net)\.")
        d = self.variant("trunc_legacy_pickle", {"net_feat_mesh": raw[:3000]})
        self.assertRefused(d, "net_feat_mesh.pth", "truncated")

    def test_refuses_truncated_zip(self):
        raw = read_bytes(os.path.join(self.zip, "net_hm.pth"))
        d = self.variant("trunc_zip", {"net_hm": raw[:len(raw) // 2]})
        self.assertRefused(d, "net_hm.pth", "zip")

    def test_refuses_short_storage_record(self):
        """A zip whose storage record holds fewer bytes than the tensor needs."""
        src = zipfile.ZipFile(os.path.join(self.zip, "net_mesh_pose.pth"))
        self.addCleanup(src.close)
        buf = io.BytesIO()
        loaded = torch.load(os.path.join(self.zip, "net_mesh_pose.pth"))
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            for info in src.infolist():
                data = src.read(info)
                if info.filename.endswith("/data/0"):
                    data = data[:len(data) - 8]
                z.writestr(info.filename, data)
        first = next(iter(loaded))
        d = self.variant("short_record", {"net_mesh_pose": buf.getvalue()})
        self.assertRefused(d, "net_mesh_pose.pth", "truncated storage", "key " + first)

    def test_refuses_record_marked_as_folder(self):
        """A storage record whose central-directory entry carries the MS-DOS folder bit
        (0x10): torch.load (miniz) reads nothing for it and gives zeros; the converter
        refuses (found by tests/fuzz/unpickler_mutation.py)."""
        raw = bytearray(read_bytes(os.path.join(self.zip, "net_mesh_pose.pth")))
        name = next(i.filename for i in zipfile.ZipFile(io.BytesIO(bytes(raw))).infolist() if i.filename.endswith("/data/0"))
        entry = bytes(raw).index(name.encode(), bytes(raw).index(b"PK\x01\x02")) - 46  # its central-directory entry
        self.assertEqual(bytes(raw[entry:entry + 4]), b"PK\x01\x02")
        raw[entry + 38] = 0xFF  # external attributes, low byte
        d = self.variant("folder_record", {"net_mesh_pose": bytes(raw)})
        self.assertRefused(d, "net_mesh_pose.pth", name, "marked as a folder")

    def test_refuses_tensor_beyond_storage(self):
        """The tensor's offset + extent exceeds its (complete) storage."""
        calls, records = [], []
        for i, (key, value) in enumerate(self.state["net_mesh_pose"].items()):
            if key.endswith("num_batches_tracked"):
                continue
            data = value.contiguous().numpy().tobytes()
            offset = 4 if key == "cl.0.weight" else 0
            ref = StorageRef("FloatStorage", str(i), value.numel(), legacy=False)
            calls.append((key, tensor_call(ref, offset, value.shape, value.stride())))
            records.append((str(i), data))
        d = self.variant("beyond", {"net_mesh_pose": zip_file(state_pickle(calls), records)})
        self.assertRefused(d, "net_mesh_pose.pth", "key cl.0.weight", "truncated storage")
        # the same file without the offset converts (the hand-made zip itself is sound)
        calls[0] = (calls[0][0], tensor_call(StorageRef("FloatStorage", "0", 32 * 9, legacy=False), 0, (32, 9), (9, 1)))
        self.assertEqual(calls[0][0], "cl.0.weight")
        d = self.variant("beyond_ok", {"net_mesh_pose": zip_file(state_pickle(calls), records)})
        r = run_converter(d, self.template, os.path.join(self.tmp, "beyond_ok.safetensors"))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_refuses_non_checkpoints(self):
        d = self.variant("text", {"net_hm": b"hello, world\n" * 100})
        self.assertRefused(d, "net_hm.pth", "not a PyTorch checkpoint")
        d = self.variant("empty", {"net_feat_mesh": b""})
        self.assertRefused(d, "net_feat_mesh.pth", "not a PyTorch checkpoint")
        d = self.variant("list", {"net_hm": self.saved([torch.zeros(3)])})
        self.assertRefused(d, "net_hm.pth", "not a state dict")
        d = self.variant("pickle", {"net_hm": pickle.dumps({"a": 1}, protocol=2)})
        self.assertRefused(d, "net_hm.pth")
        d = os.path.join(self.tmp, "absent_ckpt")
        os.makedirs(d)
        self.assertRefused(d, "net_hm.pth", "no such checkpoint")

    def test_refuses_bad_templates(self):
        self.assertRefused(self.zip, "no_such.obj", template=os.path.join(self.tmp, "no_such.obj"))
        quad = os.path.join(self.tmp, "quad.obj")
        write_synthetic_obj(quad, extra="f 1 2 3 4\n")
        self.assertRefused(self.zip, "quad.obj", "line", "expected a triangle", template=quad)
        badv = os.path.join(self.tmp, "badv.obj")
        write_synthetic_obj(badv, extra="v 1.0 abc 2.0\n")
        self.assertRefused(self.zip, "badv.obj", "malformed vertex", template=badv)
        few = os.path.join(self.tmp, "few.obj")
        write_synthetic_obj(few, vertices=20, faces=[(1, 2, 3)])
        self.assertRefused(self.zip, "few.obj", "20 vertices", template=few)
        far = os.path.join(self.tmp, "far.obj")
        write_synthetic_obj(far, extra="f 1 2 5000\n")
        self.assertRefused(self.zip, "far.obj", "5000", template=far)

    @staticmethod
    def disassemble(raw):
        out = io.StringIO()
        try:
            pickletools.dis(raw, out)
        except Exception:
            pass
        return out.getvalue()


def zip_file_bytes(pkl, archive="archive"):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr(archive + "/data.pkl", pkl)
    return out.getvalue()


if __name__ == "__main__":
    import unittest_support
    unittest_support.main()
