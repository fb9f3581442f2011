#!/usr/bin/env python3
"""handgraph vs PyTorch vs ONNX Runtime on the same network, weights and crop, in one run.

    /usr/bin/python3 benchmarks/compare/compare.py [--checkpoints DIR --template OBJ]
                                                   [--rounds 5] [--threads 1,2] [--no-batch]

(benchmarks/compare/run.sh builds hand_bench and compare_dump and installs
onnxruntime-node first; see README.md.)

1. Weights: DIR/net_hm.pth, net_feat_mesh.pth, net_mesh_pose.pth (the released ones), or
   a random released-style checkpoint (tests/reference/handnet.py build_nets, randomize,
   save_release_style; --seed). Converted with tools/convert_weights.py for handgraph,
   loaded with torch.load for PyTorch, exported with torch.onnx.export (dense Laplacians)
   for ONNX Runtime. Everything derived is cached in --work, keyed by its inputs.
2. Agreement: one crop (handgraph's demo crop, the one hand_bench times) through all
   three at every thread count, each compared with a float64 evaluation of the reference.
3. Timing, interleaved: each round runs one timing block per (engine, threads) in a
   rotating order; a block is warm-up calls then K timed calls, summarised by their
   median; the reported time is the median over rounds of the block medians.
4. Prints the tables, writes --json and --md (default benchmarks/compare/last_run.*).
Exit status: 0, or 1 when the outputs disagree (the tables are still written).
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
REFERENCE_DIR = os.path.join(SOURCE_DIR, "tests", "reference")
CONVERTER = os.path.join(SOURCE_DIR, "tools", "convert_weights.py")
SHARED_TEMPLATE = os.path.join(SOURCE_DIR, "..", "shared", "data", "hand-graph-cnn", "0214_lowP_vn_g.0001.obj")
ENGINES = ("handgraph", "pytorch", "ort")
LABELS = {"handgraph": "handgraph", "pytorch": "PyTorch", "ort": "ONNX Runtime"}
# Agreement bound, relative to each tensor's largest magnitude, against float64: the
# issue's ceiling for any float32 algorithm (Winograd included).
REL_TOL = 1e-4
# Layout of compare_dump's and the workers' dumps (batch 1): name, dtype, count.
HG_LAYOUT = [("heatmaps", "<f4", 2 * 21 * 64 * 64), ("mesh_raw", "<f4", 1280 * 3), ("depths", "<f4", 20),
             ("uv", "<i4", 42), ("pose_xyz", "<f4", 63), ("mesh_xyz", "<f4", 954 * 3)]
WORKER_LAYOUT = [("heatmaps_0", "<f4", 21 * 64 * 64), ("heatmaps_1", "<f4", 21 * 64 * 64), ("mesh_raw", "<f4", 1280 * 3),
                 ("depths", "<f4", 20), ("uv", "<i8", 42), ("pose_xyz", "<f4", 63), ("mesh_xyz", "<f4", 954 * 3)]


def log(msg=""):
    print(msg, flush=True)


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return None


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stamp_of(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(str(p).encode() + b"\0")
    return h.hexdigest()


def cached(path, stamp):
    try:
        with open(path + ".stamp") as f:
            return f.read().strip() == stamp and os.path.exists(path)
    except OSError:
        return False


def mark(path, stamp):
    with open(path + ".stamp", "w") as f:
        f.write(stamp + "\n")


def git_state():
    """HEAD and whether the sources hand_bench is built from differ from it."""
    def git(*a):
        r = subprocess.run(["git", "-C", SOURCE_DIR] + list(a), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True)
        return r.stdout.strip() if r.returncode == 0 else None
    head = git("rev-parse", "--short=12", "HEAD")
    dirty = git("status", "--porcelain", "--", "include", "tools/runtime", "benchmarks/hand_bench.cpp", "CMakeLists.txt", "cmake")
    return {"head": head, "engine_sources_modified": bool(dirty) if dirty is not None else None}


def cpu_model():
    """The CPU's name with its family and model (a VM often names it "AMD EPYC" only: the
    family tells Zen 1/2 (23), Zen 3/4 (25) and Zen 5 (26) apart) and its widest vector
    instructions."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or "unknown"
    flags = set(fields.get("flags", "").split())
    if "cpu family" in fields:
        name += " (family %s model %s)" % (fields["cpu family"], fields.get("model", "?"))
    if flags:
        name += ", " + ("AVX-512" if "avx512f" in flags else "AVX2, no AVX-512" if "avx2" in flags else "no AVX2")
    return name


def read_dump(path, layout):
    import numpy as np
    raw = open(path, "rb").read()
    out, off = {}, 0
    for name, dt, n in layout:
        size = np.dtype(dt).itemsize * n
        out[name] = np.frombuffer(raw[off:off + size], dtype=dt).copy()
        off += size
    if off != len(raw):
        raise RuntimeError("%s: %d bytes, expected %d" % (path, len(raw), off))
    if "heatmaps" in out:
        hm = out.pop("heatmaps").reshape(2, 21, 64, 64)
        out["heatmaps_0"], out["heatmaps_1"] = hm[0].ravel(), hm[1].ravel()
    out["uv"] = out["uv"].astype(np.int64).reshape(21, 2)
    return out


# ---------------------------------------------------------------- preparation

def prepare_weights(args):
    """-> dict(ckpt=DIR, template=OBJ, weights=.safetensors, onnx={1: path, 8: path}, desc=...)"""
    sys.path.insert(0, REFERENCE_DIR)
    sys.path.insert(0, HERE)
    import torch
    torch.set_num_threads(2)
    import compare_model
    import handnet
    os.makedirs(args.work, exist_ok=True)
    ref_sources = [os.path.join(REFERENCE_DIR, n) for n in ("handnet.py", "hand_graph.py", "synthetic_template.py")]
    src_stamp = stamp_of(*[sha256_file(p) for p in ref_sources], torch.__version__)

    if args.checkpoints:
        ckpt = os.path.abspath(args.checkpoints)
        template = args.template or SHARED_TEMPLATE
        if not os.path.isfile(template):
            sys.exit("error: --checkpoints needs --template OBJ (the release's 0214_lowP_vn_g.0001.obj)")
        desc = "checkpoints %s" % ckpt
        tag = "ckpt-" + stamp_of(ckpt)[:12]
    else:
        template = args.template or SHARED_TEMPLATE
        tag = "seed%d" % args.seed
        if not os.path.isfile(template):
            import synthetic_template
            template = os.path.join(args.work, "synthetic_template.obj")
            synthetic_template.write_obj(template)
            log("template: the release's is absent (%s); using the generated stand-in %s" % (SHARED_TEMPLATE, template))
            tag += "-synthetic"
        ckpt = os.path.join(args.work, tag, "checkpoints")
        stamp = stamp_of(src_stamp, args.seed)
        if not cached(ckpt, stamp):
            log("weights: generating a random released-style checkpoint (handnet.randomize, seed %d) ..." % args.seed)
            t0 = time.time()
            shutil.rmtree(ckpt, ignore_errors=True)
            graph = compare_model.build_graph(template)
            nets = handnet.randomize(handnet.build_nets(graph["laplacians"]), args.seed)
            handnet.save_release_style(nets, ckpt)
            mark(ckpt, stamp)
            log("  done in %.1f s" % (time.time() - t0))
        desc = "random released-style checkpoint (tests/reference/handnet.py randomize, seed %d)" % args.seed
    for stem in handnet.STEMS:
        if not os.path.isfile(os.path.join(ckpt, stem + ".pth")):
            sys.exit("error: %s: missing %s.pth" % (ckpt, stem))
    wdir = os.path.join(args.work, tag)
    os.makedirs(wdir, exist_ok=True)
    ckpt_stamp = stamp_of(*[sha256_file(os.path.join(ckpt, s + ".pth")) for s in handnet.STEMS], sha256_file(template))

    weights = os.path.join(wdir, "weights.safetensors")
    stamp = stamp_of(ckpt_stamp, sha256_file(CONVERTER))
    if not cached(weights, stamp):
        log("weights: tools/convert_weights.py -> %s" % weights)
        r = subprocess.run([sys.executable, CONVERTER, ckpt, "--template", template, "-o", weights],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        if r.returncode != 0:
            sys.exit("error: convert_weights.py: " + r.stderr.strip())
        mark(weights, stamp)

    onnx = {}
    export_stamp = stamp_of(ckpt_stamp, src_stamp, sha256_file(os.path.join(HERE, "compare_model.py")))
    pipe = None
    for batch in (1, 8) if args.batch else (1,):
        path = os.path.join(wdir, "pipeline_b%d.onnx" % batch)
        onnx[batch] = path
        if cached(path, export_stamp):
            continue
        if pipe is None:
            graph = compare_model.build_graph(template)
            nets = compare_model.load_checkpoints(ckpt, compare_model.dense_laplacians(graph))
            pipe = compare_model.HandPipeline(nets, graph)
        log("onnx: torch.onnx.export (dense Laplacians, batch %d, opset 17) -> %s ..." % (batch, path))
        t0 = time.time()
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compare_model.export_onnx(pipe, path, batch)
        mark(path, export_stamp)
        log("  done in %.1f s" % (time.time() - t0))
    return dict(ckpt=ckpt, template=os.path.abspath(template), weights=weights, onnx=onnx, desc=desc, dir=wdir)


# ---------------------------------------------------------------- workers

class Worker(object):
    """A long-lived process answering one JSON line per JSON request line."""

    def __init__(self, name, argv, env=None):
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True,
                                     bufsize=1, env=env)

    def ask(self, **req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("%s worker exited (status %s)" % (self.name, self.proc.wait()))
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError("%s worker: %s" % (self.name, reply["error"]))
        return reply

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()


def torch_worker_main(args):
    """`compare.py --worker torch`: the PyTorch side (sparse Laplacians, as the reference)."""
    import numpy as np
    import torch
    torch.set_num_interop_threads(1)
    sys.path.insert(0, HERE)
    import compare_model
    graph = compare_model.build_graph(args.template)
    nets = compare_model.load_checkpoints(args.checkpoints, graph["laplacians"])
    pipe = compare_model.HandPipeline(nets, graph)
    crop = np.fromfile(args.crop, dtype=np.uint8).reshape(1, 256, 256, 3)
    with open(args.params) as f:
        params = compare_model.params_row(json.load(f)).reshape(1, 12)
    inputs = {}

    def batch_inputs(b):
        if b not in inputs:
            inputs[b] = (np.ascontiguousarray(np.repeat(crop, b, axis=0)), np.ascontiguousarray(np.repeat(params, b, axis=0)))
        return inputs[b]

    def run_once(b):
        c, p = batch_inputs(b)
        with torch.inference_mode():
            return pipe(torch.from_numpy(c), torch.from_numpy(p))

    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            if req["cmd"] == "info":
                reply = {"version": torch.__version__, "threads_default": torch.get_num_threads(),
                         "mkldnn": bool(torch.backends.mkldnn.is_available()), "parallel": torch.__config__.parallel_info().splitlines()[:6]}
            elif req["cmd"] == "time":
                torch.set_num_threads(int(req["threads"]))
                for _ in range(int(req.get("warmup", 1))):
                    run_once(int(req["batch"]))
                times = []
                for _ in range(int(req["iters"])):
                    t0 = time.perf_counter()
                    run_once(int(req["batch"]))
                    times.append((time.perf_counter() - t0) * 1e3)
                reply = {"times_ms": times}
            elif req["cmd"] == "dump":
                torch.set_num_threads(int(req["threads"]))
                outs = run_once(1)
                with open(req["out"], "wb") as f:
                    for t in outs:
                        f.write(np.ascontiguousarray(t.numpy()).tobytes())
                reply = {"ok": True}
            else:
                reply = {"error": "unknown command %r" % req["cmd"]}
        except Exception as e:  # reported to the driver, which stops
            import traceback
            reply = {"error": "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc())}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


class HandBench(object):
    """handgraph's timing blocks: one hand_bench process each (load and warm-up untimed)."""

    def __init__(self, exe, weights, converted):
        self.exe, self.weights, self.converted = exe, weights, converted
        self.reports = []  # every hand_bench JSON line (of `weights`, the prepared file)
        self.converted_reports = []  # converted_loads()

    def converted_loads(self, n=3):
        """Model load of the converted file (read and packed, not mapped): n fresh processes."""
        for _ in range(n):
            self.converted_reports.append(self._run(1, 1, 0, 0, weights=self.converted, keep=False))

    def _run(self, threads, iters, warmup, batch, weights=None, keep=True):
        argv = [self.exe, "--weights", weights or self.weights, "--threads", str(threads), "--batch", str(batch),
                "--iters", str(iters), "--warmup", str(warmup), "--json"]
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        if r.returncode != 0:
            raise RuntimeError("hand_bench failed: %s" % r.stderr.strip())
        j = json.loads(r.stdout.strip().splitlines()[-1])
        if keep:
            self.reports.append(j)
        return j

    def info(self):
        if not self.reports:
            return {}
        return {"arch": self.reports[-1].get("arch"), "load_ms_median": median([j["load_ms"] for j in self.reports]),
                "load_processes": len(self.reports), "weights_timed": self.weights,
                "load_ms_converted_median": median([j["load_ms"] for j in self.converted_reports]) if self.converted_reports else float("nan"),
                "load_processes_converted": len(self.converted_reports),
                "peak_rss_mb_single_image_max": max(j["peak_rss_mb"] for j in self.reports if not j.get("batch")),
                "gflop_per_image": self.reports[-1]["gflops"] * self.reports[-1]["ms_per_image"] / 1000.0}

    def block(self, threads, iters, warmup):
        j = self._run(threads, iters, warmup, 0)
        return j["ms_per_image"], j

    def batch_block(self, threads, batch):
        j = self._run(threads, 1, 1, batch)
        return j["batch_images_per_s"], j


# ---------------------------------------------------------------- agreement

def rel_error(a, b):
    import numpy as np
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    mag = np.abs(b).max()
    err = np.abs(a - b).max()
    return float(err / mag) if mag > 0 else float(err)


def agreement(results, ref, up64):
    """results: {(engine, threads): outputs}; ref: float64 outputs. -> rows, ok."""
    import numpy as np
    rows, ok = [], True
    hm_mag = float(np.abs(ref["heatmaps_1"]).max())
    for (engine, threads), out in results.items():
        row = {"engine": engine, "threads": threads}
        for k in ("heatmaps_0", "heatmaps_1", "mesh_raw", "depths", "mesh_xyz"):
            row[k] = rel_error(out[k], ref[k])
        # uv: equal to float64's, or a near-tie: the float64 upsampled values at the two
        # positions differ by at most what this engine's heat-map error can reverse.
        hm_err = float(np.abs(out["heatmaps_1"].astype(np.float64) - ref["heatmaps_1"].ravel()).max())
        diff = np.nonzero((out["uv"] != ref["uv"]).any(axis=1))[0]
        ties, bad = [], []
        for j in diff:
            flat = up64[j].ravel()
            ru, rv = ref["uv"][j]
            ou, ov = out["uv"][j]
            gap = flat[rv * 256 + ru] - flat[ov * 256 + ou]
            (ties if gap <= 2.0 * hm_err * 1.01 + 1e-7 * hm_mag else bad).append(int(j))
        row["uv_differ"], row["uv_near_ties"], row["uv_wrong"] = len(diff), ties, bad
        same = np.ones(21, bool)
        same[diff] = False
        row["pose_xyz"] = rel_error(out["pose_xyz"].reshape(21, 3)[same], ref["pose_xyz"].reshape(21, 3)[same])
        row["ok"] = (not bad) and all(row[k] <= REL_TOL for k in ("heatmaps_0", "heatmaps_1", "mesh_raw", "depths", "mesh_xyz", "pose_xyz"))
        ok = ok and row["ok"]
        rows.append(row)
    return rows, ok


def float64_reference(prep, crop_path, params):
    import numpy as np
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, REFERENCE_DIR)
    sys.path.insert(0, HERE)
    import compare_model
    import pipeline
    graph = compare_model.build_graph(prep["template"])
    nets = compare_model.load_checkpoints(prep["ckpt"], graph["laplacians"])
    crop = np.fromfile(crop_path, dtype=np.uint8).reshape(256, 256, 3)
    r = pipeline.run_f64(pipeline.as_double(nets), graph, crop, params["cam"], params["bbox"], params["root"], params["scale"])
    ref = {k[:-len("_f64")]: v for k, v in r.items()}
    ref["uv"] = np.asarray(ref["uv"], np.int64).reshape(21, 2)
    hm = torch.as_tensor(ref["heatmaps_1"], dtype=torch.float64)
    up64 = F.interpolate(hm.unsqueeze(0), size=(256, 256), mode="bilinear", align_corners=False)[0].numpy()
    return ref, up64


# ---------------------------------------------------------------- timing

def median(v):
    return statistics.median(v) if v else float("nan")


def choose_iters(ms, block_s, lo=3, hi=50):
    return int(max(lo, min(hi, round(block_s * 1000.0 / max(ms, 1e-3)))))


def fmt_ms(x):
    return "%.1f" % x if x == x else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--checkpoints", help="folder with net_hm.pth, net_feat_mesh.pth, net_mesh_pose.pth (default: random, --seed)")
    ap.add_argument("--template", help="template OBJ (default: ../shared/data/hand-graph-cnn/0214_lowP_vn_g.0001.obj, "
                                       "else the generated stand-in for random weights)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the random checkpoint (default 1)")
    ap.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved single-image rounds (default 5)")
    ap.add_argument("--block-s", type=float, default=2.0, help="target seconds per timing block (default 2)")
    ap.add_argument("--min-iters", type=int, default=3, help="fewest timed calls per block (default 3)")
    ap.add_argument("--batch", type=int, default=8, help="batch size for the throughput rounds; 0: skip them (default 8)")
    ap.add_argument("--batch-rounds", type=int, default=2, help="interleaved batch rounds (default 2)")
    ap.add_argument("--no-batch", action="store_true", help="skip the batch throughput rounds")
    ap.add_argument("--build", default=os.path.join(SOURCE_DIR, "build-compare"), help="build folder of benchmarks/compare/CMakeLists.txt")
    ap.add_argument("--hand-bench", help="hand_bench binary (default BUILD/handgraph/benchmarks/hand_bench)")
    ap.add_argument("--compare-dump", help="compare_dump binary (default BUILD/compare_dump)")
    ap.add_argument("--hand-prepare", help="hand_prepare binary (default BUILD/hand_prepare)")
    ap.add_argument("--work", help="cache of weights and ONNX models (default BUILD/compare-work)")
    ap.add_argument("--json", dest="out_json", default=os.path.join(HERE, "last_run.json"))
    ap.add_argument("--md", dest="out_md", default=os.path.join(HERE, "last_run.md"))
    # worker mode (internal)
    ap.add_argument("--worker", choices=["torch"], help=argparse.SUPPRESS)
    ap.add_argument("--crop", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return torch_worker_main(args)
    if args.no_batch:
        args.batch = 0
    if args.batch not in (0, 8):
        sys.exit("error: --batch: the exported ONNX model is batch 8 (or 0 to skip)")
    args.work = args.work or os.path.join(args.build, "compare-work")
    hand_bench = args.hand_bench or os.path.join(args.build, "handgraph", "benchmarks", "hand_bench")
    compare_dump = args.compare_dump or os.path.join(args.build, "compare_dump")
    hand_prepare = args.hand_prepare or os.path.join(args.build, "hand_prepare")
    for exe in (hand_bench, compare_dump, hand_prepare):
        if not os.access(exe, os.X_OK):
            sys.exit("error: %s not built (run benchmarks/compare/run.sh, or see README.md)" % exe)
    ort_dir = os.path.join(HERE, "node_modules", "onnxruntime-node")
    if not os.path.isdir(ort_dir):
        sys.exit("error: %s missing: cd benchmarks/compare && npm install --ignore-scripts" % ort_dir)
    threads = [int(t) for t in args.threads.split(",")]

    started = datetime.datetime.now().astimezone()
    command = os.environ.get("HANDGRAPH_COMPARE_COMMAND") or " ".join(
        ["/usr/bin/python3", os.path.relpath(os.path.abspath(sys.argv[0]), SOURCE_DIR)] + sys.argv[1:])
    load_start = loadavg()
    log("handgraph comparison, %s" % started.strftime("%Y-%m-%d %H:%M:%S %Z"))
    log("cpu: %s, %d logical cores; load average at start: %s" % (cpu_model(), os.cpu_count(), load_start))
    git = git_state()
    tuning = {k: v for k, v in sorted(os.environ.items()) if k.startswith(("OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_"))}
    log("threading environment: %s" % (tuning or "none set (library defaults)"))
    log("handgraph: commit %s%s" % (git["head"], " + uncommitted changes to the engine's sources" if git["engine_sources_modified"] else ""))

    prep = prepare_weights(args)
    log("weights: %s" % prep["desc"])
    # hand_bench times the prepared file (made here each run: it follows the engine's packing),
    # which gives the converted file's results bit for bit (tests/test_prepared.cpp) and
    # loads faster; the converted file's load is measured too (HandBench.converted_loads).
    prep["prepared"] = os.path.join(prep["dir"], "prepared.safetensors")
    r = subprocess.run([hand_prepare, prep["weights"], "-o", prep["prepared"]], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    if r.returncode != 0:
        sys.exit("error: hand_prepare: " + r.stderr.strip())
    log("weights: hand_prepare -> %s" % prep["prepared"])
    log("template: %s" % prep["template"])

    # ---- handgraph's outputs and the crop
    dump_dir = tempfile.mkdtemp(prefix="handgraph-compare.")
    try:
        for t in threads:
            r = subprocess.run([compare_dump, "--weights", prep["weights"], "--out", dump_dir, "--threads", str(t)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
            if r.returncode != 0:
                sys.exit("error: compare_dump: " + r.stderr.strip())
        crop_path, params_path = os.path.join(dump_dir, "crop.bgr"), os.path.join(dump_dir, "params.json")
        with open(params_path) as f:
            params = json.load(f)
        return run_all(args, prep, threads, hand_bench, dump_dir, crop_path, params_path, params, started, command, load_start, git, tuning)
    finally:
        shutil.rmtree(dump_dir, ignore_errors=True)


def run_all(args, prep, threads, hand_bench, dump_dir, crop_path, params_path, params, started, command, load_start, git, tuning):
    env = dict(os.environ)
    tw = Worker("pytorch", [sys.executable, os.path.abspath(__file__), "--worker", "torch", "--checkpoints", prep["ckpt"],
                            "--template", prep["template"], "--crop", crop_path, "--params", params_path], env)
    ow = Worker("ort", ["node", os.path.join(HERE, "ort_worker.mjs"), crop_path, params_path, prep["onnx"][1]]
                + ([prep["onnx"][8]] if 8 in prep["onnx"] else []), env)
    hb = HandBench(hand_bench, prep["prepared"], prep["weights"])
    try:
        tinfo, oinfo = tw.ask(cmd="info"), ow.ask(cmd="info")
        log("pytorch %s (mkldnn %s); onnxruntime-node %s on node %s" % (tinfo["version"], tinfo["mkldnn"], oinfo["version"], oinfo["node"]))

        # ---- agreement
        log("\n== agreement: demo crop, every engine and thread count vs a float64 evaluation of the reference ==")
        results = {}
        for t in threads:
            results[("handgraph", t)] = read_dump(os.path.join(dump_dir, "handgraph_t%d.bin" % t), HG_LAYOUT)
            for engine, w in (("pytorch", tw), ("ort", ow)):
                path = os.path.join(dump_dir, "%s_t%d.bin" % (engine, t))
                w.ask(cmd="dump", threads=t, out=path)
                results[(engine, t)] = read_dump(path, WORKER_LAYOUT)
        results = {k: results[k] for k in sorted(results, key=lambda k: (ENGINES.index(k[0]), k[1]))}
        ref, up64 = float64_reference(prep, crop_path, params)
        rows, agree = agreement(results, ref, up64)
        # pairwise with PyTorch float32 (information)
        for row in rows:
            base = results[("pytorch", row["threads"])]
            out = results[(row["engine"], row["threads"])]
            row["vs_pytorch_f32"] = {k: rel_error(out[k], base[k]) for k in ("heatmaps_1", "mesh_raw", "depths")}
        agree_lines = agreement_table(rows)
        for line in agree_lines:
            log(line)
        log("agreement: %s (bound %.0e relative to each tensor's largest magnitude; uv equal up to near-ties)"
            % ("OK" if agree else "FAILED", REL_TOL))

        # ---- timing
        blocks = {(e, t): [] for e in ENGINES for t in threads}
        iters = {}
        log("\n== single-image latency: calibration, then %d interleaved rounds ==" % args.rounds)
        for t in threads:  # calibration block (not counted): picks K per engine and thread count
            ms, _ = hb.block(t, 2, 1)
            iters[("handgraph", t)] = choose_iters(ms, args.block_s, args.min_iters)
            for engine, w in (("pytorch", tw), ("ort", ow)):
                ms = median(w.ask(cmd="time", threads=t, batch=1, iters=1, warmup=1)["times_ms"])
                iters[(engine, t)] = choose_iters(ms, args.block_s, args.min_iters)
        log("timed calls per block: " + ", ".join("%s %dt: %d" % (LABELS[e], t, iters[(e, t)]) for (e, t) in blocks))
        order = list(blocks)
        loads = []
        for r in range(args.rounds):
            k = r % len(order)
            rot = order[k:] + order[:k]
            if r % 2:
                rot = rot[::-1]
            for key in rot:
                engine, t = key
                if engine == "handgraph":
                    ms, _ = hb.block(t, iters[key], 2)
                else:
                    w = tw if engine == "pytorch" else ow
                    ms = median(w.ask(cmd="time", threads=t, batch=1, iters=iters[key], warmup=1)["times_ms"])
                blocks[key].append(ms)
            loads.append(loadavg())
            log("round %d/%d (load %s): %s" % (r + 1, args.rounds, loads[-1],
                                               ", ".join("%s %dt %.1f" % (LABELS[e], t, blocks[(e, t)][-1]) for (e, t) in order)))

        batch_blocks = {}
        if args.batch:
            log("\n== batch %d throughput: %d interleaved rounds ==" % (args.batch, args.batch_rounds))
            batch_blocks = {(e, t): [] for e in ENGINES for t in threads}
            border = list(batch_blocks)
            for r in range(args.batch_rounds):
                rot = border if r % 2 == 0 else border[::-1]
                for key in rot:
                    engine, t = key
                    if engine == "handgraph":
                        ips, _ = hb.batch_block(t, args.batch)
                    else:
                        w = tw if engine == "pytorch" else ow
                        n = 2 if median(blocks[key]) * args.batch < 3000 else 1
                        ms = median(w.ask(cmd="time", threads=t, batch=args.batch, iters=n, warmup=1)["times_ms"])
                        ips = args.batch / (ms / 1000.0)
                    batch_blocks[key].append(ips)
                loads.append(loadavg())
                log("batch round %d/%d (load %s): %s" % (r + 1, args.batch_rounds, loads[-1],
                                                         ", ".join("%s %dt %.2f/s" % (LABELS[e], t, batch_blocks[(e, t)][-1]) for (e, t) in border)))
    finally:
        tw.close()
        ow.close()

    hb.converted_loads()
    load_end = loadavg()
    hinfo = hb.info()
    log("handgraph: kernels %s, model load %.1f ms (prepared file, median of %d processes; converted file %.1f ms, median of %d), "
        "peak RSS %.0f MB (single-image hand_bench process)"
        % (hinfo.get("arch"), hinfo.get("load_ms_median", float("nan")), hinfo.get("load_processes", 0),
           hinfo.get("load_ms_converted_median", float("nan")), hinfo.get("load_processes_converted", 0),
           hinfo.get("peak_rss_mb_single_image_max", float("nan"))))
    summary = summarize(blocks, batch_blocks, threads)
    table = timing_table(summary, threads, args.batch)
    log("")
    for line in table:
        log(line)
    log("load average: start %s, end %s" % (load_start, load_end))

    report = {
        "date": started.isoformat(timespec="seconds"), "command": command, "git": git, "threading_environment": tuning, "cpu": cpu_model(), "logical_cores": os.cpu_count(),
        "load_average_start": load_start, "load_average_end": load_end, "load_average_per_round": loads,
        "weights": prep["desc"], "template": prep["template"], "versions": {"pytorch": tinfo["version"], "onnxruntime_node": oinfo["version"], "node": oinfo["node"]},
        "rounds": args.rounds, "batch_rounds": args.batch_rounds if args.batch else 0, "iters_per_block": {"%s_%dt" % k: v for k, v in iters.items()},
        "agreement_ok": agree, "agreement_bound": REL_TOL, "agreement": rows,
        "latency_ms_blocks": {"%s_%dt" % k: v for k, v in blocks.items()},
        "batch": args.batch, "batch_images_per_s_blocks": {"%s_%dt" % k: v for k, v in batch_blocks.items()},
        "summary": summary, "scope": SCOPE, "handgraph": hb.info(),
    }
    with open(args.out_json, "w") as f:
        json.dump(report, f, indent=1, default=float)
        f.write("\n")
    with open(args.out_md, "w") as f:
        f.write(markdown(report, table, agree_lines))
    log("wrote %s and %s" % (os.path.relpath(args.out_json), os.path.relpath(args.out_md)))
    return 0 if agree else 1


SCOPE = ("Every time is one whole pipeline call, crop in, outputs out: the 256x256x3 uint8 BGR crop -> input "
         "normalisation -> net_hm (heat-maps) -> feature + mesh net -> pose net (depths) -> 2D joints (bilinear x4 "
         "upsampling of the last heat-maps, first maximum) -> 3D joints and the 954-vertex mesh in camera space (cm). "
         "handgraph: one model.estimate() call timed inside hand_bench (model load, warm-up not timed; heat-maps are "
         "not copied out). PyTorch: one eager HandPipeline forward under torch.inference_mode() (tests/reference networks, "
         "sparse Laplacians as the reference builds them), torch.set_num_threads(n), interop threads 1. ONNX Runtime: "
         "wrapping the crop and params in ort.Tensors plus one await session.run() of the exported HandPipeline (dense "
         "Laplacians; the outputs are copied into JS arrays), intraOpNumThreads n, interOpNumThreads 1, "
         "graphOptimizationLevel 'all', executionMode 'sequential'. Batch: handgraph estimate_batch() of 8 copies of "
         "the crop (with 2 threads, crops side by side, one thread each); PyTorch and ONNX Runtime: one call on a "
         "batch-8 tensor.")


def summarize(blocks, batch_blocks, threads):
    s = {}
    for t in threads:
        row = {}
        for e in ENGINES:
            v = blocks[(e, t)]
            row[e + "_ms"] = median(v)
            row[e + "_ms_best_round"] = min(v) if v else float("nan")
            row[e + "_ms_worst_round"] = max(v) if v else float("nan")
            if batch_blocks:
                row[e + "_batch_ips"] = median(batch_blocks[(e, t)])
        row["handgraph_over_ort"] = row["handgraph_ms"] / row["ort_ms"]
        row["handgraph_over_pytorch"] = row["handgraph_ms"] / row["pytorch_ms"]
        # the same ratios within each round (blocks run minutes apart at most), then the median
        for other in ("ort", "pytorch"):
            per_round = [a / b for a, b in zip(blocks[("handgraph", t)], blocks[(other, t)])]
            row["handgraph_over_%s_per_round" % other] = per_round
            row["handgraph_over_%s_per_round_median" % other] = median(per_round)
        if batch_blocks:
            row["batch_handgraph_over_ort"] = row["handgraph_batch_ips"] / row["ort_batch_ips"]
            row["batch_handgraph_over_pytorch"] = row["handgraph_batch_ips"] / row["pytorch_batch_ips"]
        s["%d" % t] = row
    return s


def timing_table(summary, threads, batch):
    lines = ["Single image, ms per image: median over rounds of each block's median (best..worst round)", "",
             "| threads | handgraph | ONNX Runtime | PyTorch | handgraph/ORT | handgraph/PyTorch |",
             "|---:|---:|---:|---:|---:|---:|"]
    for t in threads:
        r = summary["%d" % t]
        cell = lambda e: "%s (%s..%s)" % (fmt_ms(r[e + "_ms"]), fmt_ms(r[e + "_ms_best_round"]), fmt_ms(r[e + "_ms_worst_round"]))
        lines.append("| %d | %s | %s | %s | %.2f | %.2f |" % (t, cell("handgraph"), cell("ort"), cell("pytorch"),
                                                           r["handgraph_over_ort"], r["handgraph_over_pytorch"]))
    lines += ["", "Ratios within each round, median (range): " + "; ".join(
        "%dt handgraph/ORT %.2f (%.2f..%.2f), handgraph/PyTorch %.2f (%.2f..%.2f)" % (
            t, summary["%d" % t]["handgraph_over_ort_per_round_median"], min(summary["%d" % t]["handgraph_over_ort_per_round"]),
            max(summary["%d" % t]["handgraph_over_ort_per_round"]), summary["%d" % t]["handgraph_over_pytorch_per_round_median"],
            min(summary["%d" % t]["handgraph_over_pytorch_per_round"]), max(summary["%d" % t]["handgraph_over_pytorch_per_round"]))
        for t in threads)]
    if batch:
        lines += ["", "Batch %d throughput, images/s (median over rounds; higher is better; ratios are handgraph's "
                      "throughput over the other's)" % batch, "",
                  "| threads | handgraph | ONNX Runtime | PyTorch | handgraph/ORT | handgraph/PyTorch |", "|---:|---:|---:|---:|---:|---:|"]
        for t in threads:
            r = summary["%d" % t]
            lines.append("| %d | %.2f | %.2f | %.2f | %.2f | %.2f |" % (t, r["handgraph_batch_ips"], r["ort_batch_ips"], r["pytorch_batch_ips"],
                                                                    r["batch_handgraph_over_ort"], r["batch_handgraph_over_pytorch"]))
    return lines


def agreement_table(rows):
    lines = ["| engine | threads | heatmaps_0 | heatmaps_1 | mesh_raw | depths | mesh_xyz | pose_xyz | uv vs f64 | ok |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        uv = "equal" if not r["uv_differ"] else "%d differ: near-ties %s%s" % (r["uv_differ"], r["uv_near_ties"], (", WRONG %s" % r["uv_wrong"]) if r["uv_wrong"] else "")
        lines.append("| %s | %d | %.1e | %.1e | %.1e | %.1e | %.1e | %.1e | %s | %s |" % (
            LABELS[r["engine"]], r["threads"], r["heatmaps_0"], r["heatmaps_1"], r["mesh_raw"], r["depths"], r["mesh_xyz"], r["pose_xyz"],
            uv, "yes" if r["ok"] else "NO"))
    return lines


def markdown(report, table, agree_lines):
    v = report["versions"]
    out = ["# benchmarks/compare: last run", "",
           "- date: %s" % report["date"],
           "- command: `%s`" % report["command"],
           "- handgraph: commit %s%s" % (report["git"]["head"], " + uncommitted changes to the engine's sources" if report["git"]["engine_sources_modified"] else ""),
           "- cpu: %s, %d logical cores; load average at start %s, at end %s" % (report["cpu"], report["logical_cores"],
                                                                                report["load_average_start"], report["load_average_end"]),
           "- threading environment: %s" % (report["threading_environment"] or "none set (library defaults)"),
           "- weights: %s" % report["weights"],
           "- versions: PyTorch %s, onnxruntime-node %s (node %s); handgraph kernels %s" % (
               v["pytorch"], v["onnxruntime_node"], v["node"], report["handgraph"].get("arch")),
           "- handgraph model load (hand_bench `load_ms`): prepared file (hand_prepare) %.1f ms, median of %d processes; "
           "converted file %.1f ms, median of %d; peak RSS of load + one image %.1f MB" % (
               report["handgraph"].get("load_ms_median", float("nan")), report["handgraph"].get("load_processes", 0),
               report["handgraph"].get("load_ms_converted_median", float("nan")), report["handgraph"].get("load_processes_converted", 0),
               report["handgraph"].get("peak_rss_mb_single_image_max", float("nan"))),
           "- rounds: %d single-image, %d batch; timed calls per block: %s" % (
               report["rounds"], report["batch_rounds"], ", ".join("%s %s" % kv for kv in report["iters_per_block"].items())),
           ""] + table + ["", "What each time includes: " + report["scope"], "",
                          "Agreement on the demo crop vs a float64 evaluation of the reference (max |a - b| / max |b|; bound %.0e): %s"
                          % (report["agreement_bound"], "OK" if report["agreement_ok"] else "FAILED"), ""] + agree_lines
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
