#!/usr/bin/env python3
"""Mutation loop over the real palm detectors for tools/convert_palm.py's TFLite reader.

    tflite_mutation.py [--models DIR] [--seconds S | --iterations N] [--seed K]
                       [--cli-every N] [--run-every N] [--keep DIR]

Takes palm_detection_full.tflite and palm_detection_lite.tflite (DIR defaults to
$HANDGRAPH_SHARED_DATA/../mediapipe), damages one at a time and checks the outcome:

  mutations  byte changes anywhere (mostly weight data) and biased to the flatbuffer's
             structure (every table, vtable, vector length, string and offset the reader
             visits on the original file), 32-bit words of the structure set to extreme
             or nearby values, truncations, and byte runs deleted or inserted.
  in-process convert_palm.TFLiteModel + build (the converter's whole path but the write)
             under a time and memory limit: the outcome must be a ConvertError with a
             one-line printable message, or a valid palm-detector file: the safetensors
             container as DEVELOPERS.md describes it (read back by an independent check),
             the metadata, and a graph whose every op's output shape, weights and inputs
             agree with the op's definition (checked here again, not with the
             converter's code). Every --run-every-th valid result is also run by
             tests/reference/palm_reference.py's numpy kernels on a fixed input (finite
             outputs of the right shapes). Any other exception, a hang, a memory
             blow-up, or an invalid result is a finding.
  CLI        every --cli-every-th mutant also goes through the real command
             (convert_palm.py IN -o OUT): exit 1 with exactly one line `error: ...` on
             stderr and no output (nor temporary) file, or exit 0 and a valid file.

Prints a summary (mutants by kind, refusals, valid results, findings); a reproducer of
each finding is written to --keep (default: a temporary folder, printed). Exit status 0
when nothing was found, 1 otherwise, 77 when numpy or the models are missing.
"""
import argparse
import collections
import json
import os
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

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("HANDGRAPH_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
CONVERTER = os.path.join(SOURCE_DIR, "tools", "convert_palm.py")
sys.path.insert(0, os.path.join(SOURCE_DIR, "tools"))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "reference"))

try:
    import numpy as np
except ImportError as e:  # pragma: no cover
    print("skipped: %s" % e)
    sys.exit(77)

import convert_palm as cp  # noqa: E402

MEMORY_LIMIT = 4 << 30   # address space of this process and of the CLI runs
STEP_SECONDS = 60        # one in-process mutant; longer is a hang
CLI_SECONDS = 120
EXTREME_WORDS = (0, 1, 2, 3, 4, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFF, 0x10000, 0x1000000)


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


# ---------------------------------------------------------------------------------
# Where the structure lies: every range the reader checks on the original file
# ---------------------------------------------------------------------------------

_FLAT = cp.Flat


class RecordingFlat(_FLAT):
    def __init__(self, raw, log):
        _FLAT.__init__(self, raw)
        self.log = log

    def check(self, pos, n, what, align=1):
        if n <= 64:
            self.log.append((pos, n))
        return _FLAT.check(self, pos, n, what, align)


def structure_ranges(raw):
    log = []
    cp.Flat = lambda r: RecordingFlat(r, log)
    try:
        cp.TFLiteModel(raw)
    finally:
        cp.Flat = _FLAT
    ranges = sorted(set(log))
    return [r for r in ranges if r[0] + r[1] <= len(raw)]


class Model(object):
    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path)
        with open(path, "rb") as f:
            self.raw = f.read()
        self.structure = structure_ranges(self.raw)
        self.words = sorted(set(p - p % 4 for p, n in self.structure))


# ---------------------------------------------------------------------------------
# Mutations
# ---------------------------------------------------------------------------------

def mutate(model, rng):
    raw = bytearray(model.raw)
    kind = rng.choice(("flip", "flip", "structure", "structure", "structure", "word", "word", "truncate", "splice"))
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            p = rng.randrange(len(raw))
            raw[p] = raw[p] ^ (1 << rng.randrange(8)) if rng.random() < 0.5 else rng.randrange(256)
    elif kind == "structure":
        for _ in range(rng.randint(1, 4)):
            p, n = rng.choice(model.structure)
            q = p + rng.randrange(n)
            raw[q] = raw[q] ^ (1 << rng.randrange(8)) if rng.random() < 0.5 else rng.randrange(256)
    elif kind == "word":
        p = rng.choice(model.words)
        (old,) = struct.unpack_from("<I", raw, p)
        r = rng.random()
        if r < 0.4:
            new = rng.choice(EXTREME_WORDS)
        elif r < 0.8:
            new = (old + rng.choice((-8, -4, -2, -1, 1, 2, 4, 8, 16, 1024, -1024))) & 0xFFFFFFFF
        else:
            new = rng.randrange(1 << 32)
        struct.pack_into("<I", raw, p, new)
    elif kind == "truncate":
        cut = rng.choice((rng.randrange(len(raw)), rng.randrange(64), len(raw) - 1 - rng.randrange(64)))
        del raw[max(cut, 0):]
    else:  # delete or insert a run of bytes
        p = rng.randrange(len(raw))
        n = rng.choice((1, 2, 4, 8, 16, 256))
        if rng.random() < 0.5:
            del raw[p:p + n]
        else:
            raw[p:p] = bytes(rng.randrange(256) for _ in range(n))
    return kind, bytes(raw)


# ---------------------------------------------------------------------------------
# What a valid result is (checked independently of the converter's code)
# ---------------------------------------------------------------------------------

class Invalid(Exception):
    pass


def _need(cond, msg):
    if not cond:
        raise Invalid(msg)


def check_container(blob):
    """DEVELOPERS.md "Weight file": 8-byte LE header length, JSON header, data at a
    multiple of 64, tensors contiguous without holes and sorted by name, string metadata."""
    _need(len(blob) >= 8, "shorter than 8 bytes")
    (n,) = struct.unpack_from("<Q", blob, 0)
    _need(8 + n <= len(blob) and (8 + n) % 64 == 0, "header length %d" % n)
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__")
    _need(all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()), "metadata not all strings")
    names = list(header)
    _need(names == sorted(names), "tensors not sorted")
    offset = 0
    out = {}
    for name in names:
        t = header[name]
        _need(t["dtype"] == "F32", "%s dtype %s" % (name, t["dtype"]))
        count = 1
        for d in t["shape"]:
            _need(isinstance(d, int) and d >= 1, "%s shape %s" % (name, t["shape"]))
            count *= d
        b, e = t["data_offsets"]
        _need(b == offset and e == b + 4 * count, "%s offsets %s" % (name, t["data_offsets"]))
        offset = e
        out[name] = np.frombuffer(blob[8 + n + b:8 + n + e], "<f4").reshape(t["shape"])
    _need(8 + n + offset == len(blob), "data does not end the file")
    return out, meta


def same_pad(size, k, s, d):
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return out, total // 2, total - total // 2


def check_graph(tensors, meta):
    _need(meta["format"] == "handgraph-palm-detector" and meta["format_version"] == "1", "format")
    g = json.loads(meta["graph"])
    post = json.loads(meta["postprocess"])
    shapes = {v["id"]: tuple(v["shape"]) for v in g["values"]}
    _need(sorted(shapes) == list(range(len(shapes))), "value ids not 0..N-1")
    _need(shapes[g["input"]] == (1, 192, 192, 3), "input shape %s" % (shapes[g["input"]],))
    nb = post["decode"]["num_boxes"]
    _need(shapes[g["outputs"]["regressors"]] == (1, nb, 18) and shapes[g["outputs"]["scores"]] == (1, nb, 1), "output shapes")
    _need(tensors["anchors"].shape == (nb, 4), "anchors")
    known = {g["input"]}
    used = set(["anchors"])
    for op in g["ops"]:
        for i in op["inputs"]:
            _need(i in known, "op %d reads value %d before it is made" % (op["index"], i))
        (o,) = op["outputs"]
        _need(o not in known, "value %d made twice" % o)
        xs = [shapes[i] for i in op["inputs"]]
        kind = op["op"]
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D"):
            x = xs[0]
            kh, kw = op["kernel"] if kind != "MAX_POOL_2D" else op["filter"]
            (sh, sw), (dh, dw) = op["stride"], op.get("dilation", [1, 1])
            if op["padding"] == "SAME":
                oh, pt, pb = same_pad(x[1], kh, sh, dh)
                ow, pl, pr = same_pad(x[2], kw, sw, dw)
            else:
                oh, ow, pt, pb, pl, pr = (x[1] - (kh - 1) * dh - 1) // sh + 1, (x[2] - (kw - 1) * dw - 1) // sw + 1, 0, 0, 0, 0
            _need(op["pad"] == [pt, pb, pl, pr], "op %d pads %s" % (op["index"], op["pad"]))
            if kind == "CONV_2D":
                f = tensors[op["filter"]].shape
                _need(f[1:3] == (kh, kw) and f[3] == x[3], "op %d filter %s" % (op["index"], f))
                want = (1, oh, ow, f[0])
            elif kind == "DEPTHWISE_CONV_2D":
                f = tensors[op["filter"]].shape
                _need(f == (1, kh, kw, x[3]), "op %d filter %s" % (op["index"], f))
                want = (1, oh, ow, x[3])
            else:
                want = (1, oh, ow, x[3])
            if kind != "MAX_POOL_2D":
                used.add(op["filter"])
                if op["bias"] is not None:
                    _need(tensors[op["bias"]].shape == (want[3],), "op %d bias" % op["index"])
                    used.add(op["bias"])
        elif kind == "PRELU":
            _need(tensors[op["alpha"]].shape == (xs[0][-1],), "op %d alpha" % op["index"])
            used.add(op["alpha"])
            want = xs[0]
        elif kind == "ADD":
            _need(xs[0] == xs[1], "op %d add shapes" % op["index"])
            want = xs[0]
        elif kind == "PAD":
            want = tuple(d + a + b for d, (a, b) in zip(xs[0], op["paddings"]))
        elif kind == "RESIZE_BILINEAR":
            want = (xs[0][0], op["size"][0], op["size"][1], xs[0][3])
        elif kind == "RESHAPE":
            want = tuple(op["shape"])
            _need(np.prod(want) == np.prod(xs[0]), "op %d reshape" % op["index"])
        elif kind == "CONCATENATION":
            a = op["axis"]
            want = list(xs[0])
            want[a] = sum(x[a] for x in xs)
            want = tuple(want)
            _need(all(len(x) == len(xs[0]) and all(x[k] == xs[0][k] for k in range(len(x)) if k != a) for x in xs), "concat")
        else:
            raise Invalid("unknown op %s" % kind)
        _need(shapes[o] == tuple(want), "op %d (%s) output %s, expected %s" % (op["index"], kind, shapes[o], want))
        known.add(o)
    _need(used == set(tensors), "tensors unused by the graph: %s" % sorted(set(tensors) - used)[:3])
    for name, a in tensors.items():
        _need(np.isfinite(a).all(), "%s not finite" % name)
    return g


def check_result(tensors, metadata, run_it, zero_input):
    head, blobs = cp.safetensors_bytes(tensors, metadata)
    blob = head + b"".join(blobs)
    arrays, meta = check_container(blob)
    check_graph(arrays, meta)
    if run_it:
        import palm_reference
        reg, logit = palm_reference.run_converted((arrays, meta, json.loads(meta["graph"])), zero_input)
        _need(reg.shape[1] == 18 and logit.shape == (reg.shape[0],), "output shapes when run")
        # (outputs may be inf/NaN: the mutated weights are finite but may be huge)


# ---------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------

def in_process(raw):
    """('refused', message) or ('valid', (tensors, metadata)); other exceptions propagate."""
    try:
        model = cp.TFLiteModel(raw)
        tensors, metadata = cp.build(raw, model)
    except cp.ConvertError as e:
        return "refused", str(e)
    return "valid", (tensors, metadata)


def run_cli(raw, workdir):
    src = os.path.join(workdir, "mutant.tflite")
    out_dir = os.path.join(workdir, "out")
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.mkdir(out_dir)
    out = os.path.join(out_dir, "palm.safetensors")
    with open(src, "wb") as f:
        f.write(raw)

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    try:
        p = subprocess.run([sys.executable, CONVERTER, src, "-o", out], capture_output=True, timeout=CLI_SECONDS,
                           preexec_fn=limit)
    except subprocess.TimeoutExpired:
        return "CLI hang"
    err = p.stderr.decode("utf-8", "replace")
    left = os.listdir(out_dir)
    if p.returncode == 1:
        if err.count("\n") != 1 or not err.startswith("error: ") or "Traceback" in err or "internal error" in err:
            return "CLI exit 1 with stderr %r" % err[:300]
        if left:
            return "CLI refused but left %s" % left
        return "refused"
    if p.returncode == 0:
        if left != ["palm.safetensors"]:
            return "CLI left %s" % left
        with open(out, "rb") as f:
            blob = f.read()
        try:
            arrays, meta = check_container(blob)
            check_graph(arrays, meta)
        except (Invalid, KeyError, ValueError, TypeError) as e:
            return "CLI wrote an invalid file: %s" % e
        return "valid"
    return "CLI exit %d, stderr %r" % (p.returncode, err[:300])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_models = os.path.join(os.environ.get("HANDGRAPH_SHARED_DATA") or os.path.join(SOURCE_DIR, "..", "shared", "data", "hand-graph-cnn"),
                                  "..", "mediapipe")
    ap.add_argument("--models", default=default_models)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--iterations", type=int)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--cli-every", type=int, default=25)
    ap.add_argument("--run-every", type=int, default=10)
    ap.add_argument("--keep")
    args = ap.parse_args(argv)
    paths = [os.path.join(args.models, "palm_detection_%s.tflite" % m) for m in ("full", "lite")]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        print("skipped: %s not found (set HANDGRAPH_SHARED_DATA or --models)" % missing[0])
        return 77
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    signal.signal(signal.SIGALRM, _alarm)
    models = [Model(p) for p in paths]
    rng = random.Random(args.seed)
    keep = args.keep or tempfile.mkdtemp(prefix="tflite_mutation_keep.")
    os.makedirs(keep, exist_ok=True)
    work = tempfile.mkdtemp(prefix="tflite_mutation.")
    zero = np.zeros((1, 192, 192, 3))
    kinds, outcomes, findings = collections.Counter(), collections.Counter(), []
    cli = collections.Counter()
    valid_seen = 0
    start = time.time()
    i = 0
    print("seed %d; structure ranges: %s" % (args.seed, ", ".join("%s %d" % (m.name, len(m.structure)) for m in models)))
    try:
        while True:
            if args.iterations is not None and i >= args.iterations:
                break
            if args.iterations is None and time.time() - start >= args.seconds:
                break
            m = models[i % len(models)]
            kind, raw = mutate(m, rng)
            kinds[kind] += 1
            problem = None
            signal.alarm(STEP_SECONDS)
            try:
                outcome, detail = in_process(raw)
                if outcome == "refused":
                    if "\n" in detail or not detail or "internal error" in detail:
                        problem = "refusal message %r" % detail[:300]
                else:
                    valid_seen += 1
                    try:
                        check_result(detail[0], detail[1], valid_seen % args.run_every == 0, zero)
                    except (Invalid, KeyError, ValueError, TypeError) as e:
                        problem = "accepted an invalid model: %s: %s" % (type(e).__name__, e)
                outcomes[outcome] += 1
            except Hang:
                problem = "hang (over %d s)" % STEP_SECONDS
            except MemoryError:
                problem = "memory blow-up"
            except Exception as e:
                problem = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc(limit=4))
            finally:
                signal.alarm(0)
            if problem is None and args.cli_every and i % args.cli_every == 0:
                r = run_cli(raw, work)
                cli[r if r in ("refused", "valid") else "finding"] += 1
                if r not in ("refused", "valid"):
                    problem = r
            if problem is not None:
                outcomes["finding"] += 1
                path = os.path.join(keep, "finding_%04d_%s_%s" % (len(findings), m.name, kind))
                with open(path, "wb") as f:
                    f.write(raw)
                findings.append((path, problem))
                print("FINDING %s: %s" % (path, problem.splitlines()[0]))
            i += 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.time() - start
    print("%d mutants in %.0f s (%s): refused cleanly %d, valid results %d, findings %d; through the CLI: %s"
          % (i, elapsed, ", ".join("%s %d" % kv for kv in sorted(kinds.items())), outcomes["refused"],
             outcomes["valid"], len(findings), ", ".join("%s %d" % kv for kv in sorted(cli.items())) or "none"))
    if findings:
        print("reproducers in %s" % keep)
        for path, problem in findings:
            print("  %s\n    %s" % (path, problem.replace("\n", "\n    ")))
        return 1
    if not args.keep:
        shutil.rmtree(keep, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
