#!/usr/bin/env python3
"""Mutation loop over real checkpoints for tools/convert_weights.py's restricted unpickler.

    unpickler_mutation.py [--testdata DIR] [--seconds S | --iterations N] [--seed K]
                          [--cli-every N] [--keep DIR]

Takes the fixture's checkpoints (DIR/seed1/legacy/*.pth, release style, and
DIR/seed1/zip/*.pth, PyTorch >= 1.6; made by tests/reference/make_testdata.py;
DIR defaults to $HANDGRAPH_TESTDATA), damages one at a time and checks the outcome:

  mutations  byte changes (biased to the pickles, storage headers and zip records),
             truncations, pickle-level edits (opcode replaced, swapped, deleted or
             duplicated; integers set to extreme values; strings and globals renamed),
             and data.pkl edits repacked into a valid zip (correct CRCs), so that the
             damage reaches the unpickler rather than zipfile's CRC check.
  in-process read_checkpoint + validate (the converter's reading path) under a time
             and memory limit: the outcome must be a ConvertError with a one-line
             message, or tensors equal, bit for bit, to torch.load(weights_only=True)
             of the same damaged file. Any other exception, a hang, a memory blow-up,
             or a result that differs from (or is refused by) torch is a finding.
  CLI        every --cli-every-th mutant also goes through the real command
             (convert_weights.py DIR --template T -o OUT): exit 1 with exactly one
             line `error: ...` on stderr and no output (nor temporary) file, or exit 0
             with an output whose tensors equal torch.load's.

Prints a summary (mutants by kind, refusals, correct results, findings); a reproducer of
each finding is written to --keep (default: a temporary folder, printed). Exit status 0
when nothing was found, 1 otherwise, 77 when torch or the fixture is missing.
"""
import argparse
import collections
import gc
import io
import os
import pickle
import pickletools
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("HANDGRAPH_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
CONVERTER = os.path.join(SOURCE_DIR, "tools", "convert_weights.py")
sys.path.insert(0, os.path.join(SOURCE_DIR, "tools"))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "reference"))

import convert_weights as cw  # noqa: E402

STEMS = cw.STEMS
MEMORY_LIMIT = 6 << 30   # address space of this process and of the CLI runs
STEP_SECONDS = 60        # one in-process mutant; longer is a hang
CLI_SECONDS = 300


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


# ---------------------------------------------------------------------------------
# The checkpoints and where their structure lies
# ---------------------------------------------------------------------------------

class Checkpoint(object):
    """One original file: bytes, format, and the byte ranges holding structure."""

    def __init__(self, path, stem, fmt):
        self.path, self.stem, self.fmt = path, stem, fmt
        with open(path, "rb") as f:
            self.raw = f.read()
        self.structure = []  # [(begin, end)] pickles, storage headers, zip records
        self.pickles = []    # legacy: [(begin, end)] of the five pickles
        if fmt == "legacy":
            self._map_legacy()
        else:
            self._map_zip()

    def _map_legacy(self):
        f = io.BytesIO(self.raw)
        for _ in range(5):
            begin = f.tell()
            end = begin
            for op, arg, pos in pickletools.genops(f):
                end = pos + 1
            end = f.tell()
            self.pickles.append((begin, end))
            self.structure.append((begin, end))
        _, storages = cw._read_legacy(self.raw)
        keys = pickle.loads(self.raw[self.pickles[4][0]:self.pickles[4][1]])
        pos = self.pickles[4][1]
        for key in keys:
            self.structure.append((pos, pos + 8))
            (count,) = struct.unpack_from("<q", self.raw, pos)
            pos += 8 + count * storages[key].stype.itemsize

    def _map_zip(self):
        zf = zipfile.ZipFile(io.BytesIO(self.raw))
        self.entries = [(i.filename, zf.read(i.filename)) for i in zf.infolist()]
        self.pkl_name = [n for n, _ in self.entries if n.endswith("/data.pkl")][0]
        self.pkl = dict(self.entries)[self.pkl_name]
        for info in zf.infolist():
            h = info.header_offset
            n, m = struct.unpack_from("<HH", self.raw, h + 26)
            self.structure.append((h, h + 30 + n + m))
            if info.filename == self.pkl_name:
                self.structure.append((h + 30 + n + m, h + 30 + n + m + info.compress_size))
        end_of_data = max(i.header_offset + 30 + len(i.filename) + len(i.extra) + i.compress_size for i in zf.infolist())
        self.structure.append((end_of_data, len(self.raw)))

    def structure_position(self, rng):
        sizes = [e - b for b, e in self.structure]
        r = rng.randrange(sum(sizes))
        for (b, e), s in zip(self.structure, sizes):
            if r < s:
                return b + r
            r -= s
        return 0

    def repack(self, pkl):
        """The zip with data.pkl replaced (stored, correct CRCs), as torch writes it."""
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
            for name, data in self.entries:
                z.writestr(name, pkl if name == self.pkl_name else data)
        return out.getvalue()


# ---------------------------------------------------------------------------------
# Mutators: (bytes, description)
# ---------------------------------------------------------------------------------

INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF)
INTERESTING_INTS = (0, -1, 1, 255, 256, 65535, 2 ** 31 - 1, -2 ** 31, 2 ** 32, 2 ** 40, 2 ** 62, 10 ** 30, -10 ** 12)
STRINGS = ("", "storage", "module.", "cpu", "os\nsystem", "builtins\neval", "posix\nsystem",
           "torch\nDoubleStorage", "torch\nHalfStorage", "torch._utils\n_rebuild_tensor",
           "collections\nOrderedDict", "num_batches_tracked", "x" * 300, "\u00e9\u4e2d")
GLOBALS = (b"os\nsystem\n", b"builtins\neval\n", b"subprocess\nPopen\n", b"torch\nDoubleStorage\n",
           b"torch\nLongStorage\n", b"torch\nHalfStorage\n", b"torch._utils\n_rebuild_tensor\n",
           b"torch.nn.parameter\nParameter\n", b"collections\nOrderedDict\n", b"builtins\nset\n")
OPCODES = sorted({op.code.encode("latin-1")[0] for op in pickletools.opcodes})


def flip(ck, rng):
    data = bytearray(ck.raw)
    what = []
    for _ in range(rng.choice((1, 1, 2, 3, 4, 8))):
        pos = ck.structure_position(rng) if rng.random() < 0.85 else rng.randrange(len(data))
        old = data[pos]
        r = rng.random()
        data[pos] = (old ^ (1 << rng.randrange(8))) if r < 0.4 else rng.choice(INTERESTING_BYTES) if r < 0.7 else rng.randrange(256)
        what.append("%d:%02x->%02x" % (pos, old, data[pos]))
    return bytes(data), "flip " + ",".join(what)


def truncate(ck, rng):
    r = rng.random()
    if r < 0.6:
        cut = ck.structure_position(rng)
    elif r < 0.8:
        cut = len(ck.raw) - 1 - rng.randrange(min(4096, len(ck.raw)))
    else:
        cut = rng.randrange(len(ck.raw))
    return ck.raw[:cut], "truncate at %d of %d" % (cut, len(ck.raw))


def _ops(pkl):
    ops = list(pickletools.genops(pkl))
    bounds = [pos for _, _, pos in ops] + [len(pkl)]
    return [(op, arg, bounds[i], bounds[i + 1]) for i, (op, arg, _) in enumerate(ops)]


def _encode_int(v):
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    if -2 ** 31 <= v < 2 ** 31:
        return b"J" + struct.pack("<i", v)
    n = (v.bit_length() + 8) // 8
    return b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)


def _encode_str(s, short):
    b = s.encode("utf-8")
    if short and len(b) < 256:
        return b"\x8c" + bytes([len(b)]) + b
    return b"X" + struct.pack("<I", len(b)) + b


def edit_pickle(pkl, rng):
    """One pickle-level edit; returns (new pickle bytes, description)."""
    ops = _ops(pkl)
    body = ops[:-1] if ops and ops[-1][0].name == "STOP" else ops
    if not body:
        return pkl, "pickle without ops"
    kind = rng.random()
    i = rng.randrange(len(body))
    op, arg, b, e = body[i]
    if kind < 0.25:  # replace an opcode byte (its argument bytes stay)
        new = rng.choice(OPCODES)
        return pkl[:b] + bytes([new]) + pkl[b + 1:], "opcode %s at %d -> %r" % (op.name, b, bytes([new]))
    if kind < 0.4 and i + 1 < len(body):  # swap two adjacent ops
        _, _, b2, e2 = body[i + 1]
        return pkl[:b] + pkl[b2:e2] + pkl[b:e] + pkl[e2:], "swap ops at %d and %d" % (b, b2)
    if kind < 0.5:  # delete an op
        return pkl[:b] + pkl[e:], "delete %s at %d" % (op.name, b)
    if kind < 0.6:  # duplicate an op
        return pkl[:e] + pkl[b:e] + pkl[e:], "duplicate %s at %d" % (op.name, b)
    ints = [o for o in body if o[0].name in ("BININT", "BININT1", "BININT2", "LONG1", "INT", "LONG")]
    if kind < 0.8 and ints:  # an integer (sizes, strides, offsets, numel) to an extreme
        op, arg, b, e = rng.choice(ints)
        v = rng.choice(INTERESTING_INTS) if rng.random() < 0.7 else arg + rng.choice((-1, 1, 2, -2))
        return pkl[:b] + _encode_int(v) + pkl[e:], "int %r at %d -> %d" % (arg, b, v)
    strs = [o for o in body if o[0].name in ("BINUNICODE", "SHORT_BINUNICODE", "BINSTRING", "SHORT_BINSTRING", "GLOBAL")]
    if strs:
        op, arg, b, e = rng.choice(strs)
        if op.name == "GLOBAL":
            g = rng.choice(GLOBALS)
            return pkl[:b] + b"c" + g + pkl[e:], "global %r at %d -> %r" % (arg, b, g)
        s = rng.choice(STRINGS)
        return pkl[:b] + _encode_str(s, rng.random() < 0.5) + pkl[e:], "string %r at %d -> %r" % (arg, b, s)
    return pkl[:b] + pkl[e:], "delete %s at %d" % (op.name, b)


def pickle_edit(ck, rng):
    if ck.fmt == "zip":
        new, what = edit_pickle(ck.pkl, rng)
        return ck.repack(new), "zip data.pkl: " + what
    # legacy: the object pickle most often, sometimes magic/protocol/sys_info/key list
    k = rng.choice((3, 3, 3, 3, 0, 1, 2, 4))
    b, e = ck.pickles[k]
    new, what = edit_pickle(ck.raw[b:e], rng)
    return ck.raw[:b] + new + ck.raw[e:], "legacy pickle %d: %s" % (k, what)


def repacked_flip(ck, rng):
    if ck.fmt != "zip":
        return flip(ck, rng)
    pkl = bytearray(ck.pkl)
    what = []
    for _ in range(rng.choice((1, 1, 2, 4))):
        pos = rng.randrange(len(pkl))
        old = pkl[pos]
        pkl[pos] = rng.randrange(256) if rng.random() < 0.5 else old ^ (1 << rng.randrange(8))
        what.append("%d:%02x->%02x" % (pos, old, pkl[pos]))
    return ck.repack(bytes(pkl)), "zip data.pkl flip " + ",".join(what)


MUTATORS = (("flip", flip, 3), ("truncate", truncate, 1), ("pickle", pickle_edit, 3), ("repacked_flip", repacked_flip, 2))


# ---------------------------------------------------------------------------------
# Oracles
# ---------------------------------------------------------------------------------

DTYPES = {"F32": "float32", "F64": "float64", "I64": "int64", "I32": "int32", "U8": "uint8"}


def torch_reference(path):
    """{short key: (dtype name, shape, bytes)} from torch.load(weights_only=True)."""
    import torch
    sd = torch.load(path, map_location="cpu", weights_only=True)
    out = {}
    for k, t in sd.items():
        short = k[len("module."):] if k.startswith("module.") else k
        if short.endswith("num_batches_tracked"):
            continue
        out[short] = (str(t.dtype).replace("torch.", ""), tuple(t.shape), t.contiguous().numpy().tobytes())
    return out


_ORIGINALS = {}


def structure_restored_reference(ck, data, path):
    """What torch.load reads from the damaged file once the bytes of its structure
    (pickles, storage headers, zip records) are the original's again: the original's
    tensors with the damage to tensor data kept. Used when torch.load refuses the damaged
    file itself."""
    if len(data) == len(ck.raw):
        fixed = bytearray(data)
        for b, e in ck.structure:
            fixed[b:e] = ck.raw[b:e]
        if bytes(fixed) != ck.raw:
            ref_path = path + ".restored"
            with open(ref_path, "wb") as f:
                f.write(fixed)
            try:
                return torch_reference(ref_path)
            finally:
                os.remove(ref_path)
    # Edits that changed the length touched the structure only: the original's tensors.
    if ck.path not in _ORIGINALS:
        _ORIGINALS[ck.path] = torch_reference(ck.path)
    return _ORIGINALS[ck.path]


def compare(converted, path, ck, data):
    """(verdict, why): 'correct' when converted [(key, st dtype, shape, bytes)] equals
    torch.load of the damaged file; 'lenient' when torch.load refuses the damaged file
    (its zip reader and restricted unpickler are stricter about bytes that carry no
    tensor data: disk numbers, sys_info, opcode variants) and the converter read exactly
    the tensors torch reads once the structure is repaired; else ('finding', why)."""
    mine = {k: (DTYPES.get(d, d), tuple(s), b) for k, d, s, b in converted}
    try:
        ref = torch_reference(path)
        verdict = "correct"
    except Exception as e:  # torch refuses a file the converter accepted
        refusal = "%s: %s" % (type(e).__name__, str(e)[:160])
        try:
            ref = structure_restored_reference(ck, data, path)
        except Exception as e2:
            return "finding", "converter accepted what torch.load refuses (%s), even repaired (%s)" % (refusal, e2)
        verdict = "lenient"
    why = _differs(mine, ref)
    if why is None:
        return verdict, None
    if verdict == "lenient":
        return "finding", "converter accepted what torch.load refuses (%s), and %s" % (refusal, why)
    return "finding", why


def _differs(mine, ref):
    if set(mine) != set(ref):
        return "keys differ from torch.load: %s" % sorted(set(mine) ^ set(ref))[:5]
    for k in mine:
        if mine[k] != ref[k]:
            return "tensor %s differs from torch.load (dtype %s/%s, shape %s/%s)" % (
                k, mine[k][0], ref[k][0], mine[k][1], ref[k][1])
    return None


def in_process(path, stem):
    """('refused', message) | ('converted', tensors) | ('finding', why)."""
    table = cw.model_table()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(STEP_SECONDS)
    try:
        state, _fmt = cw.read_checkpoint(path)
        tensors = cw.validate(stem + ".pth", state, table[stem])
        return "converted", tensors
    except cw.ConvertError as e:
        msg = str(e)  # names may hold anything; the CLI prints it escaped, on one line
        if not msg.startswith(stem + ".pth: "):
            return "finding", "refusal message does not name the file: %r" % msg[:300]
        return "refused", msg
    except Hang:
        return "finding", "hang: no outcome within %d s" % STEP_SECONDS
    except MemoryError:
        return "finding", "memory blow-up (MemoryError under a %d GiB address-space limit)" % (MEMORY_LIMIT >> 30)
    except RecursionError:
        return "finding", "RecursionError escaped"
    except Exception as e:
        return "finding", "uncaught %s: %s | %s" % (type(e).__name__, str(e)[:200],
                                                   traceback.format_exc().strip().splitlines()[-3].strip())
    finally:
        signal.alarm(0)


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def cli(ckdir, template, outdir):
    """Runs the command; ('refused', line) | ('converted', path) | ('finding', why)."""
    out = os.path.join(outdir, "weights.safetensors")
    try:
        p = subprocess.run([sys.executable, CONVERTER, ckdir, "--template", template, "-o", out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=CLI_SECONDS, preexec_fn=_limit_memory)
    except subprocess.TimeoutExpired:
        return "finding", "CLI hang: no exit within %d s" % CLI_SECONDS
    err = p.stderr.decode("utf-8", "replace")
    left = sorted(os.listdir(outdir))
    if p.returncode == 1:
        lines = err.splitlines()
        if len(lines) != 1 or not lines[0].startswith("error: ") or not lines[0].isprintable():
            return "finding", "exit 1 but stderr is not one printable 'error:' line: %r" % err[:400]
        if "internal error" in lines[0]:
            return "finding", "refused through the internal-error path: " + lines[0][:300]
        if left:
            return "finding", "refusal left files behind: %s" % left
        return "refused", lines[0]
    if p.returncode == 0:
        if left != ["weights.safetensors"]:
            return "finding", "exit 0 but output folder holds %s" % left
        return "converted", out
    return "finding", "exit status %d (stderr %r)" % (p.returncode, err[-400:])


def check_cli_output(out, ckdir, ck, data):
    """The CLI's file equals torch.load of the three checkpoints (float tensors); for the
    damaged one, of the repaired file when torch.load refuses the damaged one (compare)."""
    import st_numpy
    arrays = st_numpy.load(out)
    arrays = arrays[0] if isinstance(arrays, tuple) else arrays
    for stem in STEMS:
        try:
            ref = torch_reference(os.path.join(ckdir, stem + ".pth"))
        except Exception:
            if stem != ck.stem:
                raise
            ref = structure_restored_reference(ck, data, os.path.join(ckdir, stem + ".pth"))
        for k, (dt, shape, data) in ref.items():
            a = arrays.get(stem + "." + k)
            if a is None:
                return "output lacks %s.%s" % (stem, k)
            if str(a.dtype) != dt or tuple(a.shape) != shape or a.tobytes() != data:
                return "output tensor %s.%s differs from torch.load" % (stem, k)
    return None


# ---------------------------------------------------------------------------------

def find_template(testdata):
    synthetic = os.path.join(testdata, "synthetic_template.obj")
    if os.path.isfile(synthetic):
        return synthetic
    shared = os.environ.get("HANDGRAPH_SHARED_DATA") or os.path.join(SOURCE_DIR, "..", "shared", "data", "hand-graph-cnn")
    t = os.path.join(shared, "0214_lowP_vn_g.0001.obj")
    return t if os.path.isfile(t) else None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--testdata", default=os.environ.get("HANDGRAPH_TESTDATA", ""))
    p.add_argument("--seconds", type=float, default=None, help="run for this long (default 300 s)")
    p.add_argument("--iterations", type=int, default=None, help="run this many mutants (instead of --seconds)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cli-every", type=int, default=25, help="every N-th mutant also through the CLI (0: never)")
    p.add_argument("--keep", default=None, help="folder for reproducers of findings")
    p.add_argument("--verbose", action="store_true", help="print every mutant and its outcome")
    args = p.parse_args()
    if args.seconds is None and args.iterations is None:
        args.seconds = 300.0
    try:
        import torch  # noqa: F401
    except ImportError as e:
        print("skipped: %s" % e)
        return 77
    seed_dir = os.path.join(args.testdata, "seed1")
    files = [(os.path.join(seed_dir, fmt, stem + ".pth"), stem, fmt) for fmt in ("legacy", "zip") for stem in STEMS]
    template = find_template(args.testdata)
    if not all(os.path.isfile(f) for f, _, _ in files) or not template:
        print("skipped: fixture checkpoints or template not found under %r (run tests/reference/make_testdata.py)" % args.testdata)
        return 77
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    rng = random.Random(args.seed)
    checkpoints = [Checkpoint(*f) for f in files]
    work = tempfile.mkdtemp(prefix="unpickler_mutation_")
    keep = args.keep or os.path.join(work, "findings")
    os.makedirs(keep, exist_ok=True)
    counts = collections.Counter()
    findings = []
    t0 = time.time()
    n = 0
    try:
        while True:
            if args.iterations is not None and n >= args.iterations:
                break
            if args.seconds is not None and time.time() - t0 >= args.seconds:
                break
            n += 1
            ck = rng.choice(checkpoints)
            name, mutate, _ = rng.choices(MUTATORS, weights=[w for _, _, w in MUTATORS])[0]
            data, what = mutate(ck, rng)
            counts["mutants " + name] += 1
            ckdir = os.path.join(work, "ck")
            shutil.rmtree(ckdir, ignore_errors=True)
            os.makedirs(ckdir)
            for other in checkpoints:
                if other.fmt == ck.fmt and other.stem != ck.stem:
                    os.symlink(other.path, os.path.join(ckdir, other.stem + ".pth"))
            path = os.path.join(ckdir, ck.stem + ".pth")
            with open(path, "wb") as f:
                f.write(data)

            # The converter must print nothing itself (the CLI's one line is main()'s),
            # not even from destructors of what the pickle built (collected here).
            saved, sys.stderr = sys.stderr, io.StringIO()
            try:
                outcome, detail = in_process(path, ck.stem)
                gc.collect()
                printed = sys.stderr.getvalue()
            finally:
                sys.stderr = saved
            if printed and outcome != "finding":
                outcome, detail = "finding", "printed to stderr: %r" % printed[:300]
            if outcome == "converted":
                outcome, detail = compare(detail, path, ck, data)
            counts[outcome] += 1
            if args.cli_every and n % args.cli_every == 0:
                outdir = os.path.join(work, "out")
                shutil.rmtree(outdir, ignore_errors=True)
                os.makedirs(outdir)
                c_outcome, c_detail = cli(ckdir, template, outdir)
                counts["cli runs"] += 1
                if c_outcome == "converted":
                    why = check_cli_output(c_detail, ckdir, ck, data)
                    c_outcome, c_detail = ("correct", None) if why is None else ("finding", why)
                if c_outcome != "finding" and (c_outcome == "refused") != (outcome == "refused") and outcome != "finding":
                    c_outcome, c_detail = "finding", "CLI and in-process disagree (%s / %s)" % (c_outcome, outcome)
                counts["cli " + c_outcome] += 1
                if c_outcome == "finding":
                    outcome, detail = "finding", "CLI: " + c_detail
            if args.verbose:
                print("%d %s/%s.pth %s -> %s %s" % (n, ck.fmt, ck.stem, what[:120], outcome,
                                                    detail[:160] if isinstance(detail, str) else ""), flush=True)
            if outcome == "finding":
                repro = os.path.join(keep, "%04d_%s_%s.pth" % (n, ck.fmt, ck.stem))
                with open(repro, "wb") as f:
                    f.write(data)
                findings.append((n, ck.fmt, ck.stem, what, detail, repro))
                print("FINDING %d: %s/%s.pth, %s: %s (reproducer %s)" % (n, ck.fmt, ck.stem, what, detail, repro), flush=True)
    finally:
        shutil.rmtree(os.path.join(work, "ck"), ignore_errors=True)
        shutil.rmtree(os.path.join(work, "out"), ignore_errors=True)
        if not findings and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.time() - t0
    kinds = ", ".join("%s %d" % (k[len("mutants "):], v) for k, v in sorted(counts.items()) if k.startswith("mutants "))
    print("unpickler_mutation: %d mutants in %.0f s (%s): %d refused cleanly, %d converted correctly "
          "(+%d where torch.load refuses but the tensors are the original's), %d findings; "
          "CLI runs %d (refused %d, correct %d)" % (n, elapsed, kinds, counts["refused"], counts["correct"], counts["lenient"],
                                                   len(findings), counts["cli runs"], counts["cli refused"], counts["cli correct"]))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
